//! `ceremony audit verify|show`: the auditor's reading of a sealed log.

use std::path::{Path, PathBuf};

use crate::audit::inspect::SealRoot;
use crate::error::CeremonyError;

fn seal_root(root: Option<&Path>, chain_only: bool) -> SealRoot<'_> {
    if chain_only {
        SealRoot::ChainOnly
    } else {
        SealRoot::Required(root)
    }
}

/// `ceremony audit verify`: the verdict on stdout; several logs are a chain.
pub fn verify(
    files: &[PathBuf],
    identity: Option<&Path>,
    root: Option<&Path>,
    chain_only: bool,
) -> Result<(), CeremonyError> {
    // What the log says is the log's writer's: escaped.
    let verdict = match files {
        [file] => crate::audit::inspect::verify(file, identity, seal_root(root, chain_only))?,
        _ if chain_only => {
            return Err(CeremonyError::Usage {
                message: "--chain-only checks one log; a chain of ceremonies is checked with each seal's root".into(),
                hint: "give the logs without --chain-only, each beside its root-ca.crt".into(),
            });
        }
        _ => crate::audit::chain::verify(files, identity, root)?,
    };
    print!("{}", crate::fmt::shown_lines(&verdict));
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
    print!("{}", crate::fmt::shown_lines(&timeline));
    Ok(verdict?)
}
