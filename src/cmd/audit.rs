//! `ceremony audit verify|show`: the auditor's reading of a sealed log.

use std::path::{Path, PathBuf};

use crate::error::CeremonyError;

/// `ceremony audit verify`: the verdict on stdout; several logs are a chain.
pub fn verify(
    files: &[PathBuf],
    identity: Option<&Path>,
    root: Option<&Path>,
) -> Result<(), CeremonyError> {
    // What the log says is the log's writer's: escaped.
    let verdict = match files {
        [file] => crate::audit::inspect::verify(file, identity, root)?,
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
) -> Result<(), CeremonyError> {
    let (timeline, verdict) = crate::audit::inspect::show(file, identity, root)?;
    print!("{}", crate::fmt::shown_lines(&timeline));
    Ok(verdict?)
}
