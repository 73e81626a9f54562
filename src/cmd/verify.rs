//! `ceremony verify` and `ceremony inspect`: a bundle read once, checked or tabled.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::CeremonyError;
use crate::plan::duration::format_lifetime;
use crate::verify::VerifyError;
use crate::verify::expiry::{self, ExpiringReport, Given};

/// The renewal plan's lead time without --expiring.
const DEFAULT_LEAD: Duration = Duration::from_secs(30 * 86400);

/// `ceremony verify DIR`.
pub fn run(
    dir: &Path,
    root: Option<&Path>,
    plan: Option<&Path>,
    identities: &[PathBuf],
) -> Result<(), CeremonyError> {
    let mut ids = Vec::new();
    for f in identities {
        ids.push(crate::audit::crypto::Identities::from_file(f)?);
    }
    Ok(crate::verify::run_verify(dir, root, plan, &ids)?)
}

fn json(v: &impl serde::Serialize) -> Result<(), CeremonyError> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| CeremonyError::Internal(format!("encoding JSON: {e}")))?;
    super::write_stdout((text + "\n").as_bytes())
}

/// `ceremony inspect DIR... [--json] [--expiring W] [--renewal-plan]`:
/// each directory read once (the trees, which hold keys, dropped as soon
/// as inventoried), then the pure merge, window and plan.
pub fn inspect(
    dirs: &[PathBuf],
    as_json: bool,
    expiring: Option<Duration>,
    renewal_plan: bool,
) -> Result<(), CeremonyError> {
    let now = SystemTime::now();
    let mut given = Vec::with_capacity(dirs.len());
    for d in dirs {
        let input = crate::verify::load(d, None, None)?;
        given.push(Given::new(&d.display().to_string(), &input, now).map_err(VerifyError::from)?);
    }
    let merged = expiry::merge(given).map_err(VerifyError::from)?;
    // A monitor must not stay quiet about nodes it cannot see.
    if (expiring.is_some() || renewal_plan) && !merged.not_given.is_empty() {
        return Err(VerifyError::NotGiven {
            newest: merged.newest.clone(),
            nodes: merged.not_given.clone(),
        }
        .into());
    }
    let due = expiring.map(|w| (w, expiry::expiring(&merged.inventory, now, w)));
    if renewal_plan {
        let plan = expiry::renewal_plan(&merged, now, expiring.unwrap_or(DEFAULT_LEAD));
        if as_json {
            json(&plan)?;
        } else {
            super::write_stdout(expiry::render_renewal_plan(&plan).as_bytes())?;
        }
    } else if let Some((w, due)) = &due {
        if as_json {
            let outputs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            json(&ExpiringReport {
                now: crate::fmt::rfc3339(now),
                window: format_lifetime(*w),
                until: crate::fmt::rfc3339(now + *w),
                outputs: &outputs,
                expiring: due,
            })?;
        } else {
            super::write_stdout(expiry::render_expiring(due, *w, now).as_bytes())?;
        }
    } else {
        if as_json {
            json(&merged.inventory)?;
        } else {
            super::write_stdout(crate::verify::inspect::render(&merged.inventory).as_bytes())?;
        }
        if !merged.not_given.is_empty() {
            eprintln!(
                "note: {} left {} untouched: their bundles are in the outputs before it; give those too, oldest first",
                merged.newest,
                merged.not_given.join(", ")
            );
        }
    }
    match due {
        Some((w, due)) if !due.is_empty() => Err(VerifyError::Expiring {
            count: due.len(),
            window: format_lifetime(w),
            planned: renewal_plan,
        }
        .into()),
        _ => Ok(()),
    }
}
