//! Resuming: what a run killed inside a token write left (found from the
//! journal's unfinished intents, removed and recorded), and an output that
//! was committed before its journal was removed.

use crate::audit::event::{PendingKey, PendingStore};
use crate::audit::{self, Audit, Event};
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
///
/// `cas` are the plan's CAs; `keys` and `stores` the interrupted run's
/// unfinished key generations and certificate stores; `note` tells the
/// operator, `audit` records each removal.
pub(super) fn remove_unfinished_writes(
    token: &dyn Token,
    cas: &[CaSpec],
    keys: &[PendingKey],
    stores: &[PendingStore],
    note: &mut dyn FnMut(&str),
    audit: &mut dyn Audit,
) -> Result<(), CeremonyError> {
    for spec in cas {
        let role = spec.role.name();
        let key = keys.iter().rev().find(|p| p.label == spec.label);
        let store = stores.iter().rev().find(|p| p.role == role);
        if key.is_none() && store.is_none() {
            continue;
        }
        let objects = token.objects_labelled(&spec.label)?;
        let found = if let Some(p) = key
            && let Some(what) = unfinished_key(token, spec, &p.id, &objects)?
        {
            Some((Unfinished::KeyPair, what, Some(p.id.clone())))
        } else if let Some(p) = store
            && let Some(what) = unfinished_certificate(token, spec, &p.sha256, &objects)?
        {
            Some((Unfinished::Certificate, what, None))
        } else {
            None
        };
        let Some((kind, what, id)) = found else {
            continue;
        };
        let objects = token.remove_unfinished(&spec.label, kind)?.len() as u64;
        let (doing, again) = match kind {
            Unfinished::KeyPair => (format!("generated {role} key"), "the key is generated"),
            Unfinished::Certificate => (
                format!("stored the {role} certificate"),
                "the certificate is signed",
            ),
        };
        note(&format!(
            "the previous run was stopped while the token {doing} \"{}\": removed what it left ({what}); {again} again",
            spec.label
        ));
        let (role, label) = (role.to_string(), spec.label.clone());
        audit.record(match id {
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
/// gone leaves OUT finished and the journal (with its journal-local
/// identity) beside it, whole or partly removed. A rerun of the same plan
/// finishes the removal (the identity first) and reports the ceremony done:
/// every record of the journal is in OUT's sealed log, since nothing is
/// appended after the commit, and no later run could have appended (each
/// stops at the existing OUT before opening the journal). The sealed log
/// cannot take a record after its seal: the operator is told instead.
pub(super) fn finish_committed(
    out: &Path,
    loaded: &LoadedPlan,
    ui: &Ui,
) -> Result<bool, CeremonyError> {
    let committed = crate::fsread::read_regular(
        &out.join(layout::PLAN),
        crate::fsread::cap::PLAN,
        crate::fsread::Links::Refuse,
    )
    .is_ok_and(|t| t.as_slice() == loaded.text.as_bytes())
        && out.join(layout::AUDIT_LOG).is_file()
        && out.join(layout::TRANSCRIPT).is_file();
    if !committed {
        return Ok(false);
    }
    // The journal's owner is the digest of the inputs that run read, which
    // OUT keeps as their manifest (an output written before inputs were
    // listed: its journal's owner was the plan's SHA-256). Not the inputs
    // as read now: they may have changed since, and the output is finished.
    let owner = match crate::fsread::read_regular(
        &out.join(layout::INPUTS),
        crate::fsread::cap::INPUTS,
        crate::fsread::Links::Refuse,
    ) {
        Ok(manifest) => x509::sha256(&manifest),
        Err(_) => loaded.sha256,
    };
    if !audit::journal::cleanup_underway(out, &owner)? {
        return Ok(false);
    }
    let dir = audit::journal::path(out);
    audit::journal::remove_dir(&dir)?;
    write::remove_stale_marker(out)?;
    ui.note(&format!(
        "{} is this plan's finished output, sealed; removed the journal {} the previous run left beside it",
        out.display(),
        dir.display()
    ));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::issue::ca::{CaState, ensure_ca, preflight_label};
    use crate::plan::ValidPlan;
    use crate::token::KEY_ID_LEN;
    use crate::token::fake::Fake;

    const ROOT: &str = "demo-root-2026";
    const ID: [u8; KEY_ID_LEN] = [0x1d; KEY_ID_LEN];

    fn demo() -> ValidPlan {
        let plan = concat!(env!("CARGO_MANIFEST_DIR"), "/ceremony/plans/demo.toml");
        crate::plan::load(Path::new(plan), SystemTime::now())
            .expect("the demo plan loads")
            .plan
    }

    fn intent(id: &[u8]) -> PendingKey {
        PendingKey {
            role: "root".into(),
            label: ROOT.into(),
            id: hex::encode(id),
        }
    }

    /// The root key pair generated under its label, as a finished generation leaves it.
    fn pair(token: &Fake, plan: &ValidPlan) {
        token
            .generate_key_pair(ROOT, plan.cas[0].key, &ID)
            .expect("generated");
    }

    /// The root made on `token`, key and certificate.
    fn root(token: &Fake, plan: &ValidPlan) -> CaState {
        let mut events: Vec<Event> = Vec::new();
        ensure_ca(
            token,
            &plan.cas[0],
            None,
            SystemTime::now(),
            &mut |_| {},
            &mut events,
        )
        .expect("the root is made")
    }

    fn key_verdict(token: &Fake, plan: &ValidPlan, id: &[u8]) -> Option<String> {
        let objects = token.objects_labelled(ROOT).unwrap();
        unfinished_key(token, &plan.cas[0], &hex::encode(id), &objects).expect("judged")
    }

    fn cert_verdict(token: &Fake, plan: &ValidPlan, sha256: &str) -> Option<String> {
        let objects = token.objects_labelled(ROOT).unwrap();
        unfinished_certificate(token, &plan.cas[0], sha256, &objects).expect("judged")
    }

    /// `remove_unfinished_writes` for the root's interrupted writes: the
    /// notes it gave and the events it recorded.
    fn recover(
        token: &Fake,
        plan: &ValidPlan,
        keys: &[PendingKey],
        stores: &[PendingStore],
    ) -> (Vec<String>, Vec<Event>) {
        let mut notes = Vec::new();
        let mut events: Vec<Event> = Vec::new();
        remove_unfinished_writes(
            token,
            &plan.cas,
            keys,
            stores,
            &mut |text| notes.push(text.to_string()),
            &mut events,
        )
        .expect("recovered");
        (notes, events)
    }

    #[test]
    fn what_a_killed_key_generation_leaves_is_judged_unfinished() {
        let plan = demo();
        type Setup = fn(&Fake, &ValidPlan);
        let cases: [(&str, Setup); 6] = [
            ("a public key without its private key", |t, _| {
                t.put("public-key", ROOT, &ID)
            }),
            ("a private key without its public key", |t, _| {
                t.put("private-key", ROOT, &ID)
            }),
            ("key objects without the recorded CKA_ID", |t, p| {
                t.generate_key_pair(ROOT, p.cas[0].key, &[2; KEY_ID_LEN])
                    .unwrap();
            }),
            ("its public key has no value", |t, _| {
                t.put("private-key", ROOT, &ID);
                t.put("public-key", ROOT, &ID);
            }),
            (
                "its private key cannot sign (no such key on the fake token)",
                |t, p| {
                    pair(t, p);
                    // The private key object is listed but holds no key.
                    t.keys.borrow_mut().clear();
                },
            ),
            ("2 private and 1 public key objects", |t, p| {
                pair(t, p);
                t.put("private-key", ROOT, &ID);
            }),
        ];
        for (want, setup) in cases {
            let token = Fake::new();
            setup(&token, &plan);
            assert_eq!(key_verdict(&token, &plan, &ID).as_deref(), Some(want));
        }
    }

    #[test]
    fn a_complete_key_pair_or_one_beside_a_certificate_is_not_unfinished() {
        let plan = demo();
        let token = Fake::new();
        assert_eq!(key_verdict(&token, &plan, &ID), None, "nothing there");
        pair(&token, &plan);
        assert_eq!(key_verdict(&token, &plan, &ID), None);
        assert_eq!(token.calls("sign"), 1, "the pair passed its pairwise test");
        // A certificate under the label is not the generation's: the
        // preflight judges it, even beside a lone public key.
        let token = Fake::new();
        token.put("public-key", ROOT, &ID);
        token.put("certificate", ROOT, &ID);
        assert_eq!(key_verdict(&token, &plan, &ID), None);
    }

    #[test]
    fn a_pair_whose_pairwise_signature_fails_is_unfinished_with_the_tokens_reason() {
        let plan = demo();
        let token = Fake::new();
        pair(&token, &plan);
        // The token refuses the pairwise test's signature (a key fault).
        *token.fail_at.borrow_mut() = Some(("sign", 1));
        let objects = token.objects_labelled(ROOT).unwrap();
        let verdict = unfinished_key(&token, &plan.cas[0], &hex::encode(ID), &objects).unwrap();
        assert_eq!(
            verdict.as_deref(),
            Some("its private key cannot sign (the fake token fails sign call 1)")
        );
    }

    #[test]
    fn what_a_killed_certificate_store_leaves_is_judged_unfinished() {
        let plan = demo();
        type Change = fn(&mut crate::token::fake::Object);
        let cases: [(&str, Change); 2] = [
            ("a certificate without its value (CKA_VALUE)", |o| {
                o.value.clear()
            }),
            ("a certificate without its key's CKA_ID", |o| {
                o.id = vec![9; KEY_ID_LEN]
            }),
        ];
        for (want, change) in cases {
            let token = Fake::new();
            let ca = root(&token, &plan);
            let sha = hex::encode(x509::sha256(&ca.der));
            assert_eq!(cert_verdict(&token, &plan, &sha), None, "complete");
            for o in token.objects.borrow_mut().iter_mut() {
                if o.class == "certificate" {
                    change(o);
                }
            }
            assert_eq!(cert_verdict(&token, &plan, &sha).as_deref(), Some(want));
        }
        let token = Fake::new();
        root(&token, &plan);
        assert_eq!(
            cert_verdict(&token, &plan, &hex::encode([0; 32])).as_deref(),
            Some("a certificate whose value is not the one signed")
        );
        token.put("certificate", ROOT, &ID);
        assert_eq!(
            cert_verdict(&token, &plan, &hex::encode([0; 32])).as_deref(),
            Some("2 certificate objects")
        );
        let token = Fake::new();
        pair(&token, &plan);
        assert_eq!(cert_verdict(&token, &plan, "00"), None, "no certificate");
    }

    #[test]
    fn an_unfinished_key_is_removed_noted_and_recorded_then_generated_again() {
        let plan = demo();
        let token = Fake::new();
        token.put("public-key", ROOT, &ID);
        // Another CA's objects, with no intent of their own, are left alone.
        token.put("public-key", "demo-etcd-ca-2026", &[3]);
        assert!(
            preflight_label(&token, &plan.cas[0]).is_err(),
            "foreign as it is"
        );
        let (notes, events) = recover(&token, &plan, &[intent(&ID)], &[]);
        assert_eq!(
            notes,
            [format!(
                "the previous run was stopped while the token generated root key \"{ROOT}\": removed what it left (a public key without its private key); the key is generated again"
            )]
        );
        assert_eq!(
            events,
            [Event::UnfinishedKeyRemoved {
                role: "root".into(),
                label: ROOT.into(),
                id: hex::encode(ID),
                objects: 1,
                what: "a public key without its private key".into(),
            }]
        );
        assert!(token.classes(ROOT).is_empty());
        assert_eq!(token.classes("demo-etcd-ca-2026"), ["public-key"]);
        preflight_label(&token, &plan.cas[0]).expect("the label is free again");
        let ca = root(&token, &plan);
        assert!(ca.generated_key && ca.signed_cert);
    }

    #[test]
    fn an_unfinished_certificate_is_removed_and_recorded_and_the_key_kept() {
        let plan = demo();
        let token = Fake::new();
        let ca = root(&token, &plan);
        for o in token.objects.borrow_mut().iter_mut() {
            if o.class == "certificate" {
                o.value.clear();
            }
        }
        let store = PendingStore {
            role: "root".into(),
            sha256: hex::encode(x509::sha256(&ca.der)),
        };
        // The key's intent is on the journal too: its pair is complete, so
        // the certificate is what is judged.
        let (notes, events) = recover(&token, &plan, &[intent(&ca.key.id)], &[store]);
        assert_eq!(
            notes,
            [format!(
                "the previous run was stopped while the token stored the root certificate \"{ROOT}\": removed what it left (a certificate without its value (CKA_VALUE)); the certificate is signed again"
            )]
        );
        assert_eq!(
            events,
            [Event::UnfinishedCertificateRemoved {
                role: "root".into(),
                label: ROOT.into(),
                objects: 1,
                what: "a certificate without its value (CKA_VALUE)".into(),
            }]
        );
        assert_eq!(token.classes(ROOT), ["private-key", "public-key"]);
        let again = root(&token, &plan);
        assert!(!again.generated_key && again.signed_cert);
        assert_eq!(again.key.id, ca.key.id);
    }

    #[test]
    fn finished_writes_and_writes_never_started_are_left_alone() {
        let plan = demo();
        let token = Fake::new();
        let ca = root(&token, &plan);
        let store = PendingStore {
            role: "root".into(),
            sha256: hex::encode(x509::sha256(&ca.der)),
        };
        let (notes, events) = recover(&token, &plan, &[intent(&ca.key.id)], &[store]);
        assert!(
            notes.is_empty() && events.is_empty(),
            "{notes:?} {events:?}"
        );
        // No intent: even a lone public key is left to the preflight.
        let token = Fake::new();
        token.put("public-key", ROOT, &ID);
        let (notes, events) = recover(&token, &plan, &[], &[]);
        assert!(notes.is_empty() && events.is_empty());
        assert_eq!(token.calls("remove"), 0);
        assert_eq!(token.classes(ROOT), ["public-key"]);
    }
}
