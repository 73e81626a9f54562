//! Certificates requested by the nodes and users themselves: reading every
//! CSR and the files beside it with bounded reads (`intake`), and the pure
//! policy they are checked against (`policy`). Signing them is
//! `issue::from_csr`.

pub mod ca;
pub mod intake;
pub mod node;
pub mod policy;
