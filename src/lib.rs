//! ceremony: an offline, HSM-backed root CA ceremony for kubeadm clusters.
//!
//! What this crate never does: export a CA private key (the token layer has no
//! such operation and the key templates forbid it), accept a PIN from argv or
//! the plan, print a PIN or key in a log, error or audit record, or overwrite
//! an existing output.

#![forbid(unsafe_code)]

pub mod audit;
pub mod backup;
pub mod bundle;
pub mod ceremony;
pub mod cli;
pub mod cmd;
pub mod csr;
pub mod error;
pub mod failpoint;
pub mod fmt;
pub mod fsread;
pub mod harden;
pub mod issue;
pub mod keys;
pub mod keytype;

pub mod operator;
pub mod pem;
pub mod plan;
pub mod profile;
pub mod restore;
pub mod token;
pub mod verify;
pub mod x509;
