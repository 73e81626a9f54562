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

/// A committed output and its sealed log.
pub(super) struct Sealed {
    pub(super) out: PathBuf,
    pub(super) records: u64,
    pub(super) final_hash: [u8; 32],
    /// Every file of OUT, for the end screen.
    pub(super) files: ui::Files,
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
    let listed = st.listing().len();
    // A journal frame (one fsync) per thousand outputs, not per output; the
    // list streamed from its file, never whole in memory, and counted on
    // the way for the end screen.
    let mut sums = None;
    let mut files = ui::Files::new(loaded.plan.cluster.as_ref());
    let mut frame = Vec::with_capacity(1024);
    st.each_written(|(path, sha, mode)| {
        if path == layout::SHA256SUMS {
            sums = Some(sha);
        }
        files.add(&path);
        frame.push(Event::OutputWritten {
            path,
            sha256: crate::fmt::hex(&sha),
            mode: format!("{mode:04o}"),
        });
        if frame.len() == 1024 {
            journal.record_all(std::mem::take(&mut frame))?;
        }
        Ok(())
    })?;
    if !frame.is_empty() {
        journal.record_all(frame)?;
    }
    let sums = sums.ok_or_else(|| CeremonyError::Internal("SHA256SUMS was not written".into()))?;
    let end = journal.append(Event::End {
        outputs: listed as u64,
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
        listed.saturating_sub(1) as u64,
        sums,
        records,
        end,
        &seal.algorithm,
    );
    if let Some(c) = continuation {
        let issued = c.selection.issued();
        facts.leaves = leaf_rows(loaded, Some(&issued));
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
    // What OUT holds besides: the sealed log, the transcript, the seal.
    for f in layout::AFTER_MANIFEST {
        files.add(f);
    }
    let out = st.commit()?;
    Ok(Sealed {
        out,
        records,
        final_hash: end,
        files,
        sha256sums: sums,
    })
}

/// The transcript's table of leaf certificates: a row per control-plane
/// node, and per worker up to a screenful; past that, a row per run of
/// consecutive workers with as many certificates each (a page to print and
/// sign, not 100,000 lines: the audit log lists every certificate).
/// `issued`: the nodes a continuing ceremony issued (None: all).
fn leaf_rows(
    loaded: &LoadedPlan,
    issued: Option<&std::collections::BTreeSet<String>>,
) -> Vec<audit::transcript::LeafRow> {
    use crate::profile::kubeadm::{control_plane_leaves, worker_leaves};
    use audit::transcript::LeafRow;
    let Some(cl) = &loaded.plan.cluster else {
        return Vec::new();
    };
    let wanted = |n: &str| issued.is_none_or(|i| i.contains(n));
    let one = |name: &str, certificates| LeafRow {
        first: name.to_string(),
        last: None,
        certificates,
    };
    let mut rows: Vec<LeafRow> = cl
        .control_plane
        .iter()
        .enumerate()
        .filter(|(_, n)| wanted(&n.name))
        .map(|(i, n)| one(&n.name, control_plane_leaves(cl, i).len()))
        .collect();
    // Runs of workers next to each other in the plan: a continuing
    // ceremony's w2 and w200 are never one row "w2 … w200".
    let workers = cl.workers.iter().enumerate().filter(|(_, w)| wanted(w));
    let grouped = workers.clone().nth(ui::SUMMARY_WORKERS).is_some();
    let first_worker = rows.len();
    let mut previous = None;
    for (i, w) in workers {
        let certificates = worker_leaves(cl, w).len();
        let in_a_run = grouped && rows.len() > first_worker && previous == Some(i.wrapping_sub(1));
        previous = Some(i);
        match rows.last_mut() {
            Some(run) if in_a_run && run.certificates == certificates => {
                let nodes = run.last.as_ref().map_or(1, |(_, n)| *n) + 1;
                run.last = Some((w.clone(), nodes));
            }
            _ => rows.push(one(w, certificates)),
        }
    }
    rows
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
    let leaves = leaf_rows(loaded, None);
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

#[cfg(test)]
mod tests {
    use super::*;
    use audit::transcript::LeafRow;

    fn demo() -> LoadedPlan {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/ceremony/plans/demo.toml");
        crate::plan::load(std::path::Path::new(path), SystemTime::now()).unwrap()
    }

    fn row(first: &str, last: Option<(&str, usize)>, certificates: usize) -> LeafRow {
        LeafRow {
            first: first.into(),
            last: last.map(|(l, n)| (l.into(), n)),
            certificates,
        }
    }

    /// A page to sign: workers one by one up to a screenful, past that in
    /// runs of consecutive workers with as many certificates each; a
    /// continuing ceremony's rows are those of the nodes it issued.
    #[test]
    fn the_transcript_lists_workers_one_by_one_then_in_runs() {
        let mut loaded = demo();
        let cl = loaded.plan.cluster.as_mut().unwrap();
        cl.control_plane.truncate(1);
        cl.kubelet_serving = false;
        cl.workers = (1..=3).map(|i| format!("w{i}")).collect();
        let cp1 = &cl.control_plane[0].name.clone();
        let cp_certs = crate::profile::kubeadm::control_plane_leaves(cl, 0).len();
        assert_eq!(
            leaf_rows(&loaded, None),
            [
                row(cp1, None, cp_certs),
                row("w1", None, 1),
                row("w2", None, 1),
                row("w3", None, 1)
            ]
        );
        // 25 workers: one run.
        let cl = loaded.plan.cluster.as_mut().unwrap();
        cl.workers = (1..=25).map(|i| format!("w{i}")).collect();
        cl.kubelet_serving = true;
        let each = crate::profile::kubeadm::worker_leaves(cl, "w1").len();
        let cp_certs = crate::profile::kubeadm::control_plane_leaves(cl, 0).len();
        assert_eq!(
            leaf_rows(&loaded, None),
            [row(cp1, None, cp_certs), row("w1", Some(("w25", 25)), each)]
        );
        // A continuing ceremony that issued twelve workers: runs only of
        // workers next to each other in the plan.
        let issued = [
            "w1", "w2", "w3", "w5", "w7", "w8", "w9", "w10", "w11", "w20", "w22", "w23",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            leaf_rows(&loaded, Some(&issued)),
            [
                row("w1", Some(("w3", 3)), each),
                row("w5", None, each),
                row("w7", Some(("w11", 5)), each),
                row("w20", None, each),
                row("w22", Some(("w23", 2)), each)
            ]
        );
        // A continuing ceremony that issued three workers and no
        // control-plane node: one row each.
        let issued = ["w2", "w12", "w20"].map(String::from).into();
        assert_eq!(
            leaf_rows(&loaded, Some(&issued)),
            [
                row("w2", None, each),
                row("w12", None, each),
                row("w20", None, each)
            ]
        );
    }
}
