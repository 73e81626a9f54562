//! The end of a run: the outputs recorded, the root's seal over the log,
//! the sealed log and transcript into OUT, and the commit.

use crate::audit::event::Environment;
use crate::audit::{self, Audit, Event, Journal};
use crate::bundle::layout;
use crate::bundle::write::{self, Staging};
use crate::error::CeremonyError;
use crate::issue::ca::CaState;
use crate::operator::ui;
use crate::plan::LoadedPlan;
use crate::plan::inputs::Manifest;
use crate::token::Token;
use crate::x509;
use std::path::PathBuf;
use std::time::SystemTime;
use ui::Ui;

/// Every file of OUT: path relative to OUT, SHA-256, mode.
pub(super) type Written = Vec<(String, [u8; 32], u32)>;

/// A committed output and its sealed log.
pub(super) struct Sealed {
    pub(super) out: PathBuf,
    pub(super) records: u64,
    pub(super) final_hash: [u8; 32],
    pub(super) written: Written,
    pub(super) sha256sums: [u8; 32],
}

/// Records every output, appends `end`, has the root seal it through the
/// token, writes `audit.log.age` and `transcript.md` into the staging
/// directory and commits it. Returns OUT, the record count, the final hash,
/// every file written and the SHA-256 of SHA256SUMS.
#[allow(clippy::too_many_arguments)] // the run's ends, passed explicitly
pub(super) fn seal_and_commit(
    mut st: Staging,
    token: &dyn Token,
    loaded: &LoadedPlan,
    inputs: &Manifest,
    cas: &[CaState],
    journal: &mut Journal,
    env: &Environment,
    ui: &Ui,
    continuation: Option<&super::chain::Continuation>,
    revocations: &super::crl::Revocations,
) -> Result<Sealed, CeremonyError> {
    let written = st.written().to_vec();
    let sums = written
        .iter()
        .find(|(p, _, _)| p == layout::SHA256SUMS)
        .map(|(_, sha, _)| *sha)
        .ok_or_else(|| CeremonyError::Internal("SHA256SUMS was not written".into()))?;
    // A journal frame (one fsync) per thousand outputs, not per output.
    for chunk in written.chunks(1024) {
        journal.record_all(
            chunk
                .iter()
                .map(|(path, sha, mode)| Event::OutputWritten {
                    path: path.clone(),
                    sha256: crate::fmt::hex(sha),
                    mode: format!("{mode:04o}"),
                })
                .collect(),
        )?;
    }
    let end = journal.append(Event::End {
        outputs: written.len() as u64,
        sha256sums_sha256: hex::encode(sums),
    })?;
    crate::failpoint::hit("before-seal");
    let root = cas
        .first()
        .ok_or_else(|| CeremonyError::Internal("no root CA to seal with".into()))?;
    ui.note(&format!(
        "Seal the audit log: the root key \"{}\" signs its final hash on the token",
        root.key.label
    ));
    let signature = token.sign(&root.key, &audit::seal::message(&end))?;
    crate::failpoint::hit("after-seal-sign");
    let seal = audit::seal::Seal::new(
        &end,
        root.key.key_type,
        &signature,
        &root.der,
        &root.key.spki,
    )?;
    // Streamed from the journal into the file: never the whole log in memory.
    let records = st.write_with(layout::AUDIT_LOG, write::PUBLIC, |w| {
        journal
            .write_sealed(&seal, &loaded.plan.recipients, w)
            .map_err(CeremonyError::from)
    })?;
    let mut facts = transcript_facts(
        loaded,
        inputs,
        token,
        cas,
        env,
        // The transcript counts the files SHA256SUMS lists: all written so
        // far but SHA256SUMS itself.
        written
            .iter()
            .filter(|(p, _, _)| p != layout::SHA256SUMS)
            .count() as u64,
        sums,
        records,
        end,
        &seal.algorithm,
    );
    if let Some(c) = continuation {
        let issued = c.selection.issued();
        facts.leaves.retain(|(n, _)| issued.contains(n));
        facts.continues = Some(audit::transcript::Continues {
            ceremony: c.previous.ceremony.clone(),
            output: c.previous.output.clone(),
            final_hash: c.previous.final_hash.clone(),
            renewed: c.selection.renewed.clone(),
            added: c.selection.added.clone(),
            untouched: c.selection.untouched.clone(),
            revoked: revocations
                .new
                .iter()
                .map(super::crl::Revocation::line)
                .collect(),
        });
    }
    let transcript = audit::transcript::render(&facts);
    st.write(layout::TRANSCRIPT, transcript.as_bytes(), write::PUBLIC)?;
    let end_line = journal
        .last_line()
        .ok_or_else(|| CeremonyError::Internal("the end record's line is not known".into()))?;
    let clear = audit::chain::SealRecord::new(end_line, &seal).text()?;
    st.write(layout::SEAL, clear.as_bytes(), write::PUBLIC)?;
    // The token's chain head names this ceremony before its output is
    // committed: a kill in between leaves the head ahead of OUT, which a
    // rerun of this journal accepts (its journal holds the hash it sealed).
    // Nothing is recorded of it: the log is sealed.
    token.put_data(super::chain::HEAD_LABEL, &end)?;
    crate::failpoint::hit("after-chain-head");
    // Everything OUT holds, the sealed log and transcript included.
    let all_written = st.written().to_vec();
    let out = st.commit()?;
    Ok(Sealed {
        out,
        records,
        final_hash: end,
        written: all_written,
        sha256sums: sums,
    })
}

/// What transcript.md states.
#[allow(clippy::too_many_arguments)] // plain facts, gathered in one place
pub(super) fn transcript_facts(
    loaded: &LoadedPlan,
    inputs: &Manifest,
    token: &dyn Token,
    cas: &[CaState],
    env: &Environment,
    outputs: u64,
    sums: [u8; 32],
    records: u64,
    final_hash: [u8; 32],
    algorithm: &str,
) -> audit::transcript::Facts {
    use der::Encode;
    let module_sha256 = hex::decode(&env.module_sha256)
        .ok()
        .and_then(|v| v.try_into().ok())
        .unwrap_or([0; 32]);
    let cas = cas
        .iter()
        .map(|ca| {
            let tbs = ca.cert.tbs_certificate();
            let v = tbs.validity();
            audit::transcript::CaFacts {
                role: ca.role.name().into(),
                label: ca.key.label.clone(),
                key_type: ca.key.key_type.name().into(),
                subject: crate::x509::name_text(tbs.subject()),
                serial: crate::fmt::colon_hex(tbs.serial_number().as_bytes()),
                not_before: crate::fmt::utc(v.not_before.to_system_time()),
                not_after: crate::fmt::utc(v.not_after.to_system_time()),
                cert_sha256: x509::sha256(&ca.der),
                spki_sha256: ca
                    .key
                    .spki
                    .to_der()
                    .map(|d| x509::sha256(&d))
                    .unwrap_or([0; 32]),
                provenance: ca
                    .provenance("existing key and certificate (resumed)")
                    .into(),
            }
        })
        .collect();
    let mut leaves = Vec::new();
    if let Some(cl) = &loaded.plan.cluster {
        for (i, n) in cl.control_plane.iter().enumerate() {
            leaves.push((
                n.name.clone(),
                crate::profile::kubeadm::control_plane_leaves(cl, i).len(),
            ));
        }
        for w in &cl.workers {
            leaves.push((
                w.clone(),
                crate::profile::kubeadm::worker_leaves(cl, w).len(),
            ));
        }
    }
    let id = token.identity();
    audit::transcript::Facts {
        ceremony: loaded.plan.name.clone(),
        date: crate::fmt::rfc3339(SystemTime::now()),
        plan_path: loaded.path.display().to_string(),
        plan_sha256: loaded.sha256,
        inputs_sha256: inputs.digest,
        administrator: loaded.plan.administrator.clone(),
        witnesses: loaded.plan.witnesses.clone(),
        tool_version: env.tool_version.clone(),
        tool_sha256: env.tool_sha256.clone(),
        module_path: env.module_path.clone(),
        module_sha256,
        token: id.to_string(),
        token_firmware: id.firmware.clone(),
        host: env.host.clone(),
        unattended: env.unattended,
        cas,
        leaves,
        outputs,
        sha256sums_sha256: sums,
        audit_records: records,
        audit_final_hash: final_hash,
        seal_algorithm: algorithm.into(),
        continues: None,
    }
}
