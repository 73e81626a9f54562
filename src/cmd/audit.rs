//! `ceremony audit verify|show`: the auditor's reading of a sealed log.

use std::path::Path;

use crate::audit::inspect::SealRoot;
use crate::error::CeremonyError;

fn seal_root(root: Option<&Path>, chain_only: bool) -> SealRoot<'_> {
    if chain_only {
        SealRoot::ChainOnly
    } else {
        SealRoot::Required(root)
    }
}

/// `ceremony audit verify`: the verdict on stdout.
pub fn verify(
    file: &Path,
    identity: Option<&Path>,
    root: Option<&Path>,
    chain_only: bool,
) -> Result<(), CeremonyError> {
    print!(
        "{}",
        crate::audit::inspect::verify(file, identity, seal_root(root, chain_only))?
    );
    Ok(())
}

/// `ceremony audit show`: the timeline, then the verdict as the exit code.
pub fn show(
    file: &Path,
    identity: Option<&Path>,
    root: Option<&Path>,
    chain_only: bool,
) -> Result<(), CeremonyError> {
    let (timeline, verdict) =
        crate::audit::inspect::show(file, identity, seal_root(root, chain_only))?;
    print!("{timeline}");
    Ok(verdict?)
}
