//! Keys outside the token: what CSR intake and `verify` read from files.

pub mod public;
