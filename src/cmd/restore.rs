//! `ceremony restore` and `ceremony backup verify`.

use std::path::Path;

use crate::cli::RestoreArgs;
use crate::error::CeremonyError;
use crate::restore::{self, RestoreOptions};

/// `out`: the restore's record (restore); None: the drill (backup verify).
pub fn run(a: RestoreArgs, out: Option<&Path>) -> Result<(), CeremonyError> {
    let r = restore::run(&RestoreOptions {
        backup: a.backup,
        share_files: a.share_files,
        latest: a.latest,
        uri: a.uri,
        module: a.module,
        pin: a.pin.into(),
        so_pin: a.so_pin.into(),
        out: out.map(Path::to_path_buf),
    })?;
    let keys: Vec<String> = r
        .keys
        .iter()
        .map(|k| format!("{} \"{}\"", k.role, k.label))
        .collect();
    match out {
        Some(out) => println!(
            "restored onto token {}: {} from shares {:?} (wrap key {}); chain head {} ({}); record in {}",
            r.token,
            keys.join(", "),
            r.shares,
            r.check_value,
            r.chain_head,
            r.latest,
            out.display()
        ),
        None => println!(
            "backup of {} verified on token {}: {} restore from shares {:?} (wrap key {}) and prove against their certificates; everything removed again",
            r.ceremony,
            r.token,
            keys.join(", "),
            r.shares,
            r.check_value
        ),
    }
    Ok(())
}
