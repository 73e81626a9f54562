//! Resuming: what a run killed inside a token write left (found from the
//! journal's unfinished intents, removed and recorded), and an output that
//! was committed before its journal was removed.

use super::Run;
use crate::audit::{self, Audit, Event, Journal};
use crate::bundle::layout;
use crate::bundle::write;
use crate::error::CeremonyError;
use crate::operator::ui;
use crate::plan::{CaSpec, LoadedPlan};
use crate::token::{ObjectInfo, Token, Unfinished};
use crate::x509;
use std::path::Path;
use ui::Ui;

/// A run killed inside a token write may have left part of it: SoftHSM
/// writes a key pair as two object files one after the other, and each file
/// in steps (its attributes in type order: label first, CKA_ID later, the key
/// value or EC parameters last), so a kill can leave a public key alone, a
/// pair whose private key cannot sign, or a certificate without its value.
/// Where the journal shows such a write started and never done, what the
/// token holds under that CA's label is checked here, before
/// `preflight_label` would refuse it as foreign: anything but the complete
/// result is removed (the label held nothing when the write began, or the
/// preflight of that run would have stopped), recorded, and made again.
pub(super) fn remove_unfinished_writes(
    r: &Run<'_>,
    journal: &mut Journal,
) -> Result<(), CeremonyError> {
    for spec in &r.loaded.plan.cas {
        let role = spec.role.name();
        let key = r
            .interrupted_keys
            .iter()
            .rev()
            .find(|p| p.label == spec.label);
        let store = r.interrupted_stores.iter().rev().find(|p| p.role == role);
        if key.is_none() && store.is_none() {
            continue;
        }
        let objects = r.token.objects_labelled(&spec.label)?;
        let found = if let Some(p) = key
            && let Some(what) = unfinished_key(r.token, spec, &p.id, &objects)?
        {
            Some((Unfinished::KeyPair, what, Some(p.id.clone())))
        } else if let Some(p) = store
            && let Some(what) = unfinished_certificate(r.token, spec, &p.sha256, &objects)?
        {
            Some((Unfinished::Certificate, what, None))
        } else {
            None
        };
        let Some((kind, what, id)) = found else {
            continue;
        };
        let objects = r.token.remove_unfinished(&spec.label, kind)?.len() as u64;
        let (doing, again) = match kind {
            Unfinished::KeyPair => (format!("generated {role} key"), "the key is generated"),
            Unfinished::Certificate => (
                format!("stored the {role} certificate"),
                "the certificate is signed",
            ),
        };
        r.ui.note(&format!(
            "the previous run was stopped while the token {doing} \"{}\": removed what it left ({what}); {again} again",
            spec.label
        ));
        let (role, label) = (role.to_string(), spec.label.clone());
        journal.record(match id {
            Some(id) => Event::UnfinishedKeyRemoved {
                role,
                label,
                id,
                objects,
                what,
            },
            None => Event::UnfinishedCertificateRemoved {
                role,
                label,
                objects,
                what,
            },
        })?;
    }
    Ok(())
}

/// What is wrong with the key objects under the label of an interrupted
/// generation (recorded CKA_ID `id`, hex); None when there are none or they
/// are the complete pair, which passes its pairwise test.
pub(super) fn unfinished_key(
    token: &dyn Token,
    spec: &CaSpec,
    id: &str,
    objects: &[ObjectInfo],
) -> Result<Option<String>, CeremonyError> {
    let of = |class: &str| objects.iter().filter(|o| o.class == class).count();
    let (private, public) = (of("private-key"), of("public-key"));
    // A certificate under the label was not made by the generation: leave
    // everything to the preflight's judgement.
    if private + public == 0 || of("certificate") > 0 {
        return Ok(None);
    }
    let what = match (private, public) {
        (0, _) => "a public key without its private key".to_string(),
        (_, 0) => "a private key without its public key".to_string(),
        (1, 1) => {
            let ids_ok = objects
                .iter()
                .filter(|o| o.class.ends_with("-key"))
                .all(|o| hex::encode(&o.id) == id);
            if !ids_ok {
                "key objects without the recorded CKA_ID".to_string()
            } else {
                let checked = token
                    .find_key_pair(&spec.label, spec.key)
                    .and_then(|k| match k {
                        Some(k) => token.check_key(&k),
                        None => Ok(()),
                    });
                match checked {
                    Ok(()) => return Ok(None),
                    Err(e) => match e.key_fault() {
                        Some(why) => why,
                        None => return Err(e.into()),
                    },
                }
            }
        }
        _ => format!("{private} private and {public} public key objects"),
    };
    Ok(Some(what))
}

/// What is wrong with the certificate objects under the label of an
/// interrupted store of the certificate with SHA-256 `sha256` (hex); None
/// when there are none or it is that certificate, complete, beside its key.
pub(super) fn unfinished_certificate(
    token: &dyn Token,
    spec: &CaSpec,
    sha256: &str,
    objects: &[ObjectInfo],
) -> Result<Option<String>, CeremonyError> {
    let certs: Vec<&ObjectInfo> = objects
        .iter()
        .filter(|o| o.class == "certificate")
        .collect();
    let [cert] = certs.as_slice() else {
        return Ok((!certs.is_empty()).then(|| format!("{} certificate objects", certs.len())));
    };
    // SoftHSM answers an empty CKA_VALUE for a certificate whose file ends before it.
    match token
        .find_certificate(&spec.label)?
        .filter(|der| !der.is_empty())
    {
        None => return Ok(Some("a certificate without its value (CKA_VALUE)".into())),
        Some(der) if hex::encode(x509::sha256(&der)) != sha256 => {
            return Ok(Some(
                "a certificate whose value is not the one signed".into(),
            ));
        }
        Some(_) => {}
    }
    let key_id = objects
        .iter()
        .find(|o| o.class == "private-key")
        .map(|o| &o.id);
    Ok((key_id != Some(&cert.id)).then(|| "a certificate without its key's CKA_ID".into()))
}

/// A run killed after its output was committed but before its journal was
/// removed leaves OUT finished and the journal (with its journal-local
/// identity) beside it. A rerun of the same plan removes that journal and
/// reports the ceremony done: every record of the journal is in OUT's sealed
/// log, since nothing is appended after the commit, and no later run could
/// have appended (each stops at the existing OUT before opening the journal).
pub(super) fn finish_committed(
    out: &Path,
    loaded: &LoadedPlan,
    ui: &Ui,
) -> Result<bool, CeremonyError> {
    let committed = std::fs::read(out.join(layout::PLAN))
        .is_ok_and(|t| t == loaded.text.as_bytes())
        && out.join(layout::AUDIT_LOG).is_file()
        && out.join(layout::TRANSCRIPT).is_file();
    if !committed || !audit::journal::check_owner(out, &loaded.sha256)? {
        return Ok(false);
    }
    let dir = audit::journal::path(out);
    std::fs::remove_dir_all(&dir).map_err(audit::io(&dir))?;
    write::remove_stale_marker(out)?;
    ui.note(&format!(
        "{} is this plan's finished output, sealed; removed the journal {} the previous run left beside it",
        out.display(),
        dir.display()
    ));
    Ok(true)
}
