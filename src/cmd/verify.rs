//! `ceremony verify` and `ceremony inspect`: a bundle read once, checked or tabled.

use std::path::Path;

use crate::error::CeremonyError;

/// `ceremony verify DIR`.
pub fn run(dir: &Path, root: Option<&Path>, plan: Option<&Path>) -> Result<(), CeremonyError> {
    Ok(crate::verify::run_verify(dir, root, plan)?)
}

/// `ceremony inspect DIR`.
pub fn inspect(dir: &Path, json: bool) -> Result<(), CeremonyError> {
    Ok(crate::verify::run_inspect(dir, json)?)
}
