//! Backups of the CA keys, pure: the wrap key split among custodians
//! ([`share`]) and what a backup writes ([`manifest`]).

pub mod manifest;
pub mod share;
