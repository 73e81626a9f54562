//! Keys outside the token: leaf keys made on the laptop (`leaf`), and the
//! one parser of public keys and key files that CSR intake and `verify`
//! share (`public`).

pub mod leaf;
pub mod public;
