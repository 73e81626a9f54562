//! Backups of the CA keys: the wrap key split among custodians
//! ([`share`]), pure.

pub mod share;
