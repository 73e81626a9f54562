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
/// `--json`: one JSON object instead (docs/json.md), also when the log is
/// refused (`ok: false` and the error; the exit code is the same).
pub fn verify(
    files: &[PathBuf],
    identity: Option<&Path>,
    root: Option<&Path>,
    chain_only: bool,
    as_json: bool,
) -> Result<(), CeremonyError> {
    let result = verdict(files, identity, root, chain_only);
    if as_json {
        let v = match &result {
            Ok((_, v)) => {
                let mut v = v.clone();
                v["schema"] = super::JSON_SCHEMA.into();
                v["ok"] = true.into();
                v
            }
            Err(e) => super::json_failure(e),
        };
        super::write_json(&v)?;
        return result.map(|_| ());
    }
    let (text, _) = result?;
    // What the log says is the log's writer's: escaped.
    print!("{}", crate::fmt::shown_lines(&text));
    Ok(())
}

fn verdict(
    files: &[PathBuf],
    identity: Option<&Path>,
    root: Option<&Path>,
    chain_only: bool,
) -> Result<(String, serde_json::Value), CeremonyError> {
    Ok(match files {
        [file] => crate::audit::inspect::verify(file, identity, seal_root(root, chain_only))?,
        _ if chain_only => {
            return Err(CeremonyError::Usage {
                message: "--chain-only checks one log; a chain of ceremonies is checked with each seal's root".into(),
                hint: "give the logs without --chain-only, each beside its root-ca.crt".into(),
            });
        }
        _ => crate::audit::chain::verify(files, identity, root)?,
    })
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
