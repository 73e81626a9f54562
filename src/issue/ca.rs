//! Making (or resuming) one CA: find or generate its key on the token, find
//! or sign its certificate through the token, and check everything found.
//!
//! Resume rule: token objects are found by label. What carries a plan label
//! must be exactly this plan's key pair (and optionally its certificate);
//! anything else under that label is foreign and stops the ceremony before it
//! generates or signs anything.

use std::time::{Duration, SystemTime};

use der::referenced::OwnedToRef;
use der::{Decode, Encode};
use x509_cert::certificate::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, SubjectKeyIdentifier};

use crate::audit::event::{cert_info, key_info};
use crate::audit::{Audit, Event};
use crate::error::CeremonyError;
use crate::plan::{CaRole, CaSpec, ValidPlan};
use crate::profile::{ca_path_len, ca_profile};
use crate::token::{KEY_ID_LEN, KeyPair, Token, TokenError, random_serial};
use crate::x509::{self, ToBeSigned};

/// Clock skew allowance: certificates start this much before the ceremony's clock.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// A CA ready to sign: its key on the token and its certificate.
#[derive(Debug, Clone)]
pub struct CaState {
    pub role: CaRole,
    pub key: KeyPair,
    pub cert: Certificate,
    pub der: Vec<u8>,
    pub ski: Vec<u8>,
    /// Whether this run generated the key / signed the certificate (false: resumed).
    pub generated_key: bool,
    pub signed_cert: bool,
}

impl CaState {
    pub fn not_after(&self) -> SystemTime {
        self.cert
            .tbs_certificate()
            .validity()
            .not_after
            .to_system_time()
    }
}

/// What is on the token under a label before we act, so foreign objects are
/// refused before anything is generated.
pub fn preflight_label(token: &dyn Token, spec: &CaSpec) -> Result<(), CeremonyError> {
    let objects = token.objects_labelled(&spec.label)?;
    let foreign = |what: String| CeremonyError::Foreign {
        label: spec.label.clone(),
        role: spec.role,
        what,
    };
    let mut ids = objects.iter().map(|o| &o.id).collect::<Vec<_>>();
    ids.dedup();
    if ids.len() > 1 {
        return Err(foreign(format!(
            "{} objects with different CKA_IDs carry it",
            objects.len()
        )));
    }
    let count = |class: &str| objects.iter().filter(|o| o.class == class).count();
    for o in &objects {
        if !matches!(
            o.class.as_str(),
            "private-key" | "public-key" | "certificate"
        ) {
            return Err(foreign(format!("a {} object carries it", o.class)));
        }
    }
    if count("private-key") > 1 || count("public-key") > 1 || count("certificate") > 1 {
        return Err(foreign(format!(
            "{} objects carry it, more than one key pair and certificate",
            objects.len()
        )));
    }
    if !objects.is_empty() && count("private-key") == 0 {
        return Err(foreign("objects carry it but no private key does".into()));
    }
    // A key (and certificate) already under the label must pass here what
    // ensure_ca checks later, or a later CA's foreign key would stop the run
    // only after earlier CAs were generated and signed.
    let key = token
        .find_key_pair(&spec.label, spec.key)
        .map_err(|e| match e {
            TokenError::BadPublicKey { what, .. } => foreign(what),
            e => e.into(),
        })?;
    if let Some(key) = key {
        if let Some(what) = key.flags.violation() {
            return Err(TokenError::WeakKey {
                label: spec.label.clone(),
                what,
            }
            .into());
        }
        // Before anything is generated or signed: a key found must sign for
        // its public key (ensure_ca relies on this for found keys; the token
        // layer tests the keys it generates).
        token.check_key(&key)?;
        if let Some(der) = token.find_certificate(&spec.label)? {
            let cert = Certificate::from_der(&der)
                .map_err(|e| foreign(format!("its certificate does not parse ({e})")))?;
            let tbs = cert.tbs_certificate();
            if tbs.subject() != &spec.subject {
                return Err(foreign(format!(
                    "its certificate's subject is \"{}\", the plan says \"{}\"",
                    tbs.subject(),
                    spec.subject
                )));
            }
            if tbs.subject_public_key_info() != &key.spki {
                return Err(foreign(
                    "its certificate is for another public key than the key beside it".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Before anything is generated: validation assumed CAs signed now; this
/// checks against the certificates already on the token (a resumed or later
/// ceremony). An intermediate still to be signed must end before the root;
/// the leaves (`cluster.leaf_validity`) and users' kubeconfigs must end
/// before their intermediate, as it is or as it will be signed.
pub fn preflight_validity(
    token: &dyn Token,
    plan: &ValidPlan,
    now: SystemTime,
) -> Result<(), CeremonyError> {
    let start = x509::truncate(now);
    // Each CA's end: its certificate's on the token, else as planned.
    let mut ends = Vec::with_capacity(plan.cas.len());
    for spec in &plan.cas {
        let on_token = token
            .find_certificate(&spec.label)?
            .and_then(|der| Certificate::from_der(&der).ok()) // ensure_ca refuses it with the reason
            .map(|c| c.tbs_certificate().validity().not_after.to_system_time());
        ends.push((spec.role, on_token, spec.lifetime.end(start)));
    }
    let end_of = |role: CaRole| {
        ends.iter()
            .find(|(r, _, _)| *r == role)
            .map(|(_, found, planned)| found.unwrap_or(*planned))
    };
    if let Some(root_end) = end_of(CaRole::Root) {
        for (role, found, planned) in &ends {
            if *role != CaRole::Root && found.is_none() && *planned > root_end {
                return Err(CeremonyError::Outlives {
                    role: *role,
                    end: crate::fmt::utc(*planned),
                    issuer_end: crate::fmt::utc(root_end),
                });
            }
        }
    }
    let leaves = plan.cluster.iter().flat_map(|cl| {
        CaRole::INTERMEDIATES
            .into_iter()
            .map(move |role| ("cluster.leaf_validity".to_string(), role, cl.leaf_validity))
    });
    let users = plan.users.iter().enumerate().map(|(i, u)| {
        (
            format!("users[{i}].validity"),
            CaRole::Kubernetes,
            u.validity,
        )
    });
    for (field, issuer, validity) in leaves.chain(users) {
        let Some(issuer_end) = end_of(issuer) else {
            continue;
        };
        let end = start + validity;
        if end > issuer_end {
            return Err(CeremonyError::LeafOutlives {
                field,
                issuer,
                end: crate::fmt::utc(end),
                issuer_end: crate::fmt::utc(issuer_end),
            });
        }
    }
    Ok(())
}

/// Finds or generates the CA's key, then finds or signs its certificate.
/// `issuer` is None for the root. `announce` is told before each irreversible
/// step; `audit` records each key and certificate found, generated, signed or
/// stored, right after it happens (before the next failpoint).
pub fn ensure_ca(
    token: &dyn Token,
    spec: &CaSpec,
    issuer: Option<&CaState>,
    now: SystemTime,
    announce: &mut dyn FnMut(&str),
    audit: &mut dyn Audit,
) -> Result<CaState, CeremonyError> {
    let role = spec.role.name();
    let signed_by = issuer.map_or(CaRole::Root, |i| i.role).name();
    let foreign = |what: String| CeremonyError::Foreign {
        label: spec.label.clone(),
        role: spec.role,
        what,
    };
    let existing = token.find_certificate(&spec.label)?;
    let start = x509::truncate(now);
    let not_after = spec.lifetime.end(start);
    // Checked before a key is generated, so a refusal leaves the token as it was.
    if existing.is_none()
        && let Some(iss) = issuer
        && not_after > iss.not_after()
    {
        return Err(CeremonyError::Outlives {
            role: spec.role,
            end: crate::fmt::utc(not_after),
            issuer_end: crate::fmt::utc(iss.not_after()),
        });
    }
    let (key, generated_key) = match token.find_key_pair(&spec.label, spec.key)? {
        Some(k) => {
            // Recorded before the check, so a refused key's flags are on the record too.
            audit.record(Event::KeyFound(key_info(role, &k)))?;
            if let Some(what) = k.flags.violation() {
                return Err(TokenError::WeakKey {
                    label: spec.label.clone(),
                    what,
                }
                .into());
            }
            (k, false)
        }
        None => {
            announce(&format!(
                "Generate {} key {} \"{}\" on the token",
                spec.role.name(),
                spec.key,
                spec.label
            ));
            // The intent (with the CKA_ID) is durable before the token acts:
            // a token that writes a pair as separate objects, each in steps
            // (SoftHSM), can keep part of a generation killed inside
            // C_GenerateKeyPair, and the resumed run removes exactly what
            // this label then holds (`remove_unfinished_writes`).
            let id = token.random(KEY_ID_LEN)?;
            audit.record(Event::KeyGenerationStarted {
                role: role.into(),
                label: spec.label.clone(),
                key_type: spec.key.name().into(),
                id: hex::encode(&id),
            })?;
            let k = token.generate_key_pair(&spec.label, spec.key, &id)?;
            audit.record(Event::KeyGenerated(key_info(role, &k)))?;
            crate::failpoint::hit(&format!("after-key:{}", spec.role.name()));
            (k, true)
        }
    };

    if let Some(der) = existing {
        let cert = Certificate::from_der(&der)
            .map_err(|e| foreign(format!("its certificate does not parse ({e})")))?;
        audit.record(Event::CertificateFound(cert_info(
            role, None, None, signed_by, &cert, &der,
        )))?;
        check_existing(spec, &key, issuer, &cert).map_err(foreign)?;
        let ski = ski_of(&cert)
            .ok_or_else(|| foreign("its certificate has no subjectKeyIdentifier".into()))?;
        return Ok(CaState {
            role: spec.role,
            key,
            cert,
            der,
            ski,
            generated_key,
            signed_cert: false,
        });
    }

    let not_before = start - BACKDATE;
    let profile = ca_profile(
        spec,
        issuer.map(|i| (i.cert.tbs_certificate().subject(), i.ski.as_slice())),
    );
    let (signer, issuer_type, issuer_spki) = match issuer {
        Some(i) => (&i.key, i.key.key_type, &i.key.spki),
        None => (&key, key.key_type, &key.spki),
    };
    let serial = random_serial(token)?;
    announce(&format!(
        "Sign the {} certificate \"{}\" with \"{}\" on the token",
        spec.role.name(),
        spec.subject,
        signer.label
    ));
    let issued = x509::issue(
        ToBeSigned {
            profile: &profile,
            serial: &serial,
            not_before,
            not_after,
            subject_spki: &key.spki,
            issuer_spki,
            issuer_key_type: issuer_type,
        },
        |tbs| token.sign(signer, tbs),
    )?;
    audit.record(Event::CertificateIssued(cert_info(
        role,
        None,
        None,
        signed_by,
        &issued.cert,
        &issued.der,
    )))?;
    crate::failpoint::hit(&format!("after-sign:{}", spec.role.name()));
    let subject_der = spec.subject.to_der().map_err(x509::X509Error::from)?;
    token.store_certificate(&key, &issued.der, &subject_der)?;
    audit.record(Event::CertificateStored {
        role: role.into(),
        label: spec.label.clone(),
        sha256: hex::encode(x509::sha256(&issued.der)),
    })?;
    crate::failpoint::hit(&format!("after-store:{}", spec.role.name()));
    let ski = ski_of(&issued.cert)
        .ok_or_else(|| foreign("the new certificate has no subjectKeyIdentifier".into()))?;
    Ok(CaState {
        role: spec.role,
        key,
        cert: issued.cert,
        der: issued.der,
        ski,
        generated_key,
        signed_cert: true,
    })
}

fn ski_of(cert: &Certificate) -> Option<Vec<u8>> {
    let (_, ski) = cert
        .tbs_certificate()
        .get_extension::<SubjectKeyIdentifier>()
        .ok()??;
    Some(ski.0.as_bytes().to_vec())
}

/// A certificate already on the token must be the one this plan would make:
/// same subject, the key it sits beside, issued and signed by the plan's
/// issuer, exactly the extensions of the CA profile, and the plan's lifetime.
fn check_existing(
    spec: &CaSpec,
    key: &KeyPair,
    issuer: Option<&CaState>,
    cert: &Certificate,
) -> Result<(), String> {
    let tbs = cert.tbs_certificate();
    if tbs.subject() != &spec.subject {
        return Err(format!(
            "its certificate's subject is \"{}\", the plan says \"{}\"",
            tbs.subject(),
            spec.subject
        ));
    }
    if tbs.subject_public_key_info() != &key.spki {
        return Err("its certificate is for another public key than the key beside it".into());
    }
    let (issuer_name, issuer_spki) = match issuer {
        Some(i) => (i.cert.tbs_certificate().subject(), &i.key.spki),
        None => (&spec.subject, &key.spki),
    };
    if tbs.issuer() != issuer_name {
        return Err(format!(
            "its certificate was issued by \"{}\", the plan's issuer is \"{issuer_name}\"",
            tbs.issuer()
        ));
    }
    let tbs_der = tbs.to_der().map_err(|e| e.to_string())?;
    let sig = cert
        .signature()
        .as_bytes()
        .ok_or("its certificate's signature has unused bits")?;
    x509::verify_signature(issuer_spki, cert.signature_algorithm(), &tbs_der, sig)
        .map_err(|e| format!("its certificate: {e}"))?;
    match tbs.get_extension::<BasicConstraints>() {
        Ok(Some((true, bc))) if bc.ca && bc.path_len_constraint == Some(ca_path_len(spec.role)) => {
        }
        _ => {
            return Err(format!(
                "its certificate is not a CA with pathLen {}",
                ca_path_len(spec.role)
            ));
        }
    }
    // The extensions must be exactly those this plan's profile makes (the
    // plan may have changed since the certificate was signed).
    let profile = ca_profile(
        spec,
        issuer.map(|i| (i.cert.tbs_certificate().subject(), i.ski.as_slice())),
    );
    let want = profile
        .extensions(tbs.subject_public_key_info().owned_to_ref())
        .map_err(|e| e.to_string())?;
    if tbs.extensions().map(|e| e.as_slice()) != Some(want.as_slice()) {
        return Err("its certificate's extensions differ from the plan's CA profile".into());
    }
    let v = tbs.validity();
    let (nb, na) = (v.not_before.to_system_time(), v.not_after.to_system_time());
    let lasts = |a: SystemTime, b: SystemTime| b.duration_since(a).unwrap_or_default();
    let matches = match spec.lifetime {
        crate::plan::Lifetime::For(d) => lasts(nb, na) == d + BACKDATE,
        crate::plan::Lifetime::Until(t) => na == x509::truncate(t),
    };
    if !matches {
        return Err(format!(
            "its certificate runs {} to {}, which is not the plan's validity {}",
            crate::fmt::utc(nb),
            crate::fmt::utc(na),
            spec.lifetime
        ));
    }
    Ok(())
}
