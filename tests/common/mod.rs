//! The one integration-test fixture: a throwaway SoftHSM2 token per test,
//! guarded, and the helpers the suites share.

#![allow(dead_code)] // each test binary uses a different part of the fixture

mod softhsm;
pub mod x509;

#[allow(unused_imports)] // peers and reference use only the x509 helpers
pub use softhsm::*;
