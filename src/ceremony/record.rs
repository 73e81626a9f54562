//! The run's own records: the environment, the start or resume of the
//! journal with the token's identity, and how a run failed.

use super::RunOptions;
use crate::audit::event::{Environment, Recovery};
use crate::audit::{self, Audit, Event, Journal};
use crate::error::CeremonyError;
use crate::operator::ui;
use crate::plan::LoadedPlan;
use crate::plan::inputs::Manifest;
use crate::token::Token;
use std::path::Path;
use ui::Ui;

/// The host's name, for the record (the kernel's own file; no libc call).
pub(crate) fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            // Bounded like every read (a host name is at most 64 bytes).
            crate::fsread::read_regular(Path::new(p), 1024, crate::fsread::Links::Follow)
                .ok()
                .map(|s| String::from_utf8_lossy(&s).trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "(unknown)".into())
}

/// SHA-256 of the running binary, or why it is unknown.
pub(crate) fn tool_sha256() -> String {
    use crate::fsread::{Links, cap, sha256_regular};
    match std::env::current_exe() {
        Ok(exe) => match sha256_regular(&exe, cap::HASHED, Links::Follow) {
            Ok(digest) => hex::encode(digest),
            Err(e) => format!("(unreadable: {})", e.why()),
        },
        Err(e) => format!("(unreadable: {e})"),
    }
}

/// Opens or continues the journal of this plan's output and records the
/// start (or the resume, with what was found) and the token's identity.
pub(super) fn start_record(
    opts: &RunOptions,
    loaded: &LoadedPlan,
    inputs: &Manifest,
    module: &Path,
    token: &dyn Token,
    ui: &Ui,
    previous: Option<&crate::audit::chain::PreviousCeremony>,
) -> Result<(Journal, Environment, Option<Recovery>), CeremonyError> {
    let env = Environment {
        tool_version: env!("CARGO_PKG_VERSION").into(),
        tool_sha256: tool_sha256(),
        module_path: module.display().to_string(),
        module_sha256: hex::encode(token.module_sha256()),
        host: host_name(),
        unattended: opts.yes,
    };
    // The journal belongs to these inputs: a rerun whose inputs changed
    // (a worker added, a CSR replaced) is refused before the token.
    let (mut journal, recovery) =
        Journal::open(&opts.out, &inputs.digest, &loaded.plan.recipients)?;
    let plan_sha256 = hex::encode(loaded.sha256);
    let inputs_sha256 = hex::encode(inputs.digest);
    let output = opts.out.display().to_string();
    // A journal without one intact record (the previous run died writing its
    // first) holds nothing done: the ceremony starts afresh, as itself.
    let recovery = recovery.filter(|r| r.records > 0);
    let resumed = recovery.clone();
    match recovery {
        None => journal.record(Event::CeremonyStarted {
            ceremony: loaded.plan.name.clone(),
            plan_path: loaded.path.display().to_string(),
            plan_sha256,
            inputs_sha256,
            output,
            administrator: loaded.plan.administrator.clone(),
            witnesses: loaded.plan.witnesses.clone(),
            env: env.clone(),
            previous: previous.cloned(),
        })?,
        Some(mut found) => {
            found.staging_discarded = audit::sibling(&opts.out, "staging").exists();
            ui.note(&format!(
                "Resuming: the audit journal {} holds {} records{}",
                journal.dir().display(),
                found.records,
                if found.torn_frame_bytes > 0 {
                    format!(
                        " (a torn last frame of {} bytes, written as the previous run died, is cut off)",
                        found.torn_frame_bytes
                    )
                } else {
                    String::new()
                }
            ));
            journal.record(Event::Resumed {
                plan_sha256,
                inputs_sha256,
                output,
                env: env.clone(),
                found,
            })?
        }
    }
    let id = token.identity();
    journal.record(Event::TokenIdentified {
        label: id.label.clone(),
        manufacturer: id.manufacturer.clone(),
        model: id.model.clone(),
        serial: id.serial.clone(),
        firmware: id.firmware.clone(),
        hardware: id.hardware.clone(),
    })?;
    Ok((journal, env, resumed))
}

/// Records how a run failed (cancelled, or the rendered error: never a PIN).
pub(super) fn record_failure(journal: &mut Journal, e: &CeremonyError, ui: &Ui) {
    let event = match e {
        CeremonyError::Cancelled(reason) => Event::Cancelled {
            reason: reason.clone(),
        },
        e => {
            let message = e.to_string();
            let mut causes = Vec::new();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let text = s.to_string();
                if text != message && !message.ends_with(&text) {
                    causes.push(text);
                }
                source = s.source();
            }
            Event::Error {
                message,
                causes,
                exit_code: e.exit_code(),
            }
        }
    };
    if let Err(x) = journal.append(event) {
        ui.warn(&format!(
            "the failure could not be added to the audit journal: {x}"
        ));
    }
}
