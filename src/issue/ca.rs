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
    /// A CA delegated to the control-plane nodes: its key is theirs, and
    /// `key` is its public half only.
    pub delegated: bool,
    /// Other certificates its trust files hold after its own (DER): the
    /// other key's during a rotation's overlap.
    pub also_trusted: Vec<Vec<u8>>,
}

impl CaState {
    /// How the end screens and the transcript describe what was done.
    pub fn provenance(&self, resumed: &'static str) -> &'static str {
        match (self.delegated, self.generated_key, self.signed_cert) {
            (true, _, _) => "delegated: key on the nodes, new certificate",
            (false, true, _) => "new key, new certificate",
            (false, false, true) => "existing key, new certificate",
            (false, false, false) => resumed,
        }
    }
}

impl CaState {
    /// What a trust file of this CA holds: its certificate (the one that
    /// signs the leaves: kubeadm reads the first), then the others trusted.
    pub fn trust_pem(&self) -> String {
        std::iter::once(&self.der)
            .chain(&self.also_trusted)
            .map(|d| x509::to_pem(d))
            .collect()
    }

    pub fn not_after(&self) -> SystemTime {
        self.cert
            .tbs_certificate()
            .validity()
            .not_after
            .to_system_time()
    }
}

/// A delegated CA never lives on the token: an object under its label is
/// refused before anything is signed (the plan, or the token, is not what
/// the witnesses think).
pub fn preflight_delegated_label(token: &dyn Token, spec: &CaSpec) -> Result<(), CeremonyError> {
    let objects = token.objects_labelled(&spec.label)?;
    if let Some(o) = objects.first() {
        return Err(CeremonyError::Foreign {
            label: spec.label.clone(),
            role: spec.role,
            what: format!(
                "the plan delegates this CA to the control-plane nodes, yet a {} object carries its label on the token",
                o.class
            ),
        });
    }
    Ok(())
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
///
/// `current` overrides what the token says of a CA: the end of the chain's
/// current certificate (one an earlier ceremony reissued), or None for a CA
/// this ceremony reissues (it ends as planned).
pub fn preflight_validity(
    token: &dyn Token,
    plan: &ValidPlan,
    now: SystemTime,
    current: &std::collections::BTreeMap<CaRole, Option<SystemTime>>,
) -> Result<(), CeremonyError> {
    let start = x509::truncate(now);
    // Each CA's end: its certificate's on the token, else as planned.
    let mut ends = Vec::with_capacity(plan.cas.len());
    for spec in &plan.cas {
        let on_token = match current.get(&spec.role) {
            Some(end) => *end,
            None => token
                .find_certificate(&spec.label)?
                .and_then(|der| Certificate::from_der(&der).ok()) // ensure_ca refuses it with the reason
                .map(|c| c.tbs_certificate().validity().not_after.to_system_time()),
        };
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
            .filter(|role| cl.issues(*role))
            .map(move |role| ("cluster.leaf_validity".to_string(), role, cl.leaf_validity))
    });
    let users = plan.users.iter().enumerate().map(|(i, u)| {
        (
            format!("users[{i}].validity"),
            CaRole::Kubernetes,
            u.validity,
        )
    });
    let signer = plan.kubelet_signer.iter().map(|s| {
        (
            "kubelet_signer.validity".to_string(),
            CaRole::Kubernetes,
            s.validity,
        )
    });
    for (field, issuer, validity) in leaves.chain(users).chain(signer) {
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
            delegated: false,
            also_trusted: Vec::new(),
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
        delegated: false,
        also_trusted: Vec::new(),
    })
}

/// The chain's current certificate of a CA: `previous` (the previous
/// output's) when it is another certificate for the same key and subject,
/// a CA certificate whose signature verifies under its issuer (an earlier
/// ceremony reissued it); the token's otherwise. The token keeps the
/// certificate object it was given first.
pub fn carry_current(
    state: CaState,
    previous: Option<&[u8]>,
    issuer: Option<&CaState>,
    audit: &mut dyn Audit,
) -> Result<CaState, CeremonyError> {
    let Some(der) = previous.filter(|d| *d != state.der.as_slice()) else {
        return Ok(state);
    };
    let role = state.role.name();
    let refuse = |what: String| {
        CeremonyError::Usage {
        message: format!(
            "the previous output's {role} CA certificate differs from the one on the token and {what}"
        ),
        hint: "ceremony.previous must name the intact output of the last ceremony made on this token; nothing was written".into(),
    }
    };
    let cert = Certificate::from_der(der).map_err(|e| refuse(format!("does not parse ({e})")))?;
    let tbs = cert.tbs_certificate();
    let mine = state.cert.tbs_certificate();
    if tbs.subject_public_key_info() != mine.subject_public_key_info()
        || tbs.subject() != mine.subject()
    {
        return Err(refuse("is not for the same key and subject".into()));
    }
    let issuer_spki = issuer.map_or(&state.key.spki, |i| &i.key.spki);
    let tbs_der = tbs.to_der().map_err(|e| refuse(e.to_string()))?;
    let sig = cert
        .signature()
        .as_bytes()
        .ok_or_else(|| refuse("its signature has unused bits".into()))?;
    x509::verify_signature(issuer_spki, cert.signature_algorithm(), &tbs_der, sig).map_err(
        |e| {
            refuse(format!(
                "is not signed by its issuer's key on the token: {e}"
            ))
        },
    )?;
    let ski = ski_of(&cert).ok_or_else(|| refuse("has no subjectKeyIdentifier".into()))?;
    audit.record(Event::CaCertificateCarried {
        role: role.into(),
        token_sha256: hex::encode(x509::sha256(&state.der)),
        certificate: cert_info(
            role,
            None,
            None,
            issuer.map_or(CaRole::Root, |i| i.role).name(),
            &cert,
            der,
        ),
    })?;
    Ok(CaState {
        cert,
        der: der.to_vec(),
        ski,
        ..state
    })
}

/// A new certificate for a CA whose key and certificate are at hand: the
/// plan's profile and lifetime from now, the same key, subject and
/// subjectKeyIdentifier, signed on the token by its issuer (the root by
/// itself) and checked like every certificate. Recorded as
/// `ca_certificate_reissued` (not `certificate_issued`: nothing is stored
/// on the token, so a resumed run has nothing to clean up).
pub fn reissue(
    token: &dyn Token,
    spec: &CaSpec,
    state: &CaState,
    issuer: Option<&CaState>,
    now: SystemTime,
    announce: &mut dyn FnMut(&str),
    audit: &mut dyn Audit,
) -> Result<CaState, CeremonyError> {
    let start = x509::truncate(now);
    let not_after = spec.lifetime.end(start);
    if let Some(iss) = issuer
        && not_after > iss.not_after()
    {
        return Err(CeremonyError::Outlives {
            role: spec.role,
            end: crate::fmt::utc(not_after),
            issuer_end: crate::fmt::utc(iss.not_after()),
        });
    }
    let profile = ca_profile(
        spec,
        issuer.map(|i| (i.cert.tbs_certificate().subject(), i.ski.as_slice())),
    );
    let signer = issuer.map_or(&state.key, |i| &i.key);
    let serial = random_serial(token)?;
    announce(&format!(
        "Reissue the {} certificate \"{}\" for its key \"{}\" (same key, valid to {}) with \"{}\" on the token",
        spec.role.name(),
        spec.subject,
        state.key.label,
        crate::fmt::utc(not_after),
        signer.label
    ));
    let issued = x509::issue(
        ToBeSigned {
            profile: &profile,
            serial: &serial,
            not_before: start - BACKDATE,
            not_after,
            subject_spki: &state.key.spki,
            issuer_spki: &signer.spki,
            issuer_key_type: signer.key_type,
        },
        |tbs| token.sign(signer, tbs),
    )?;
    let ski = ski_of(&issued.cert).ok_or_else(|| {
        CeremonyError::Internal("a reissued CA certificate has no subjectKeyIdentifier".into())
    })?;
    if ski != state.ski {
        return Err(CeremonyError::Internal(
            "a reissued CA certificate's subjectKeyIdentifier differs from its predecessor's"
                .into(),
        ));
    }
    audit.record(Event::CaCertificateReissued {
        previous_sha256: hex::encode(x509::sha256(&state.der)),
        certificate: cert_info(
            spec.role.name(),
            None,
            None,
            issuer.map_or(CaRole::Root, |i| i.role).name(),
            &issued.cert,
            &issued.der,
        ),
    })?;
    Ok(CaState {
        cert: issued.cert,
        der: issued.der,
        ski,
        signed_cert: true,
        ..state.clone()
    })
}

/// Signs the certificate of a CA delegated to the control-plane nodes from
/// the request they brought (checked by `csr::ca`): the plan's subject, the
/// request's public key, the CA profile (pathLen 0), signed by the root on
/// the token. Nothing is stored on the token: the key is the nodes', and a
/// resumed run signs it again. The CA it returns holds no token key: the
/// ceremony issues none of its leaves.
pub fn sign_delegated(
    token: &dyn Token,
    spec: &CaSpec,
    csr: &crate::csr::ca::CheckedCaCsr,
    root: &CaState,
    now: SystemTime,
    announce: &mut dyn FnMut(&str),
    audit: &mut dyn Audit,
) -> Result<CaState, CeremonyError> {
    let start = x509::truncate(now);
    let profile = ca_profile(
        spec,
        Some((root.cert.tbs_certificate().subject(), root.ski.as_slice())),
    );
    announce(&format!(
        "Sign the delegated {} CA certificate \"{}\" from {} with \"{}\" on the token",
        spec.role.name(),
        spec.subject,
        csr.file,
        root.key.label
    ));
    let issued = sign_request(
        token,
        &profile,
        csr,
        root,
        (start, spec.lifetime.end(start)),
        (spec.role, spec.role.name()),
        audit,
    )?;
    Ok(CaState {
        role: spec.role,
        // The public half only, under no token object: nothing signs with it.
        key: KeyPair {
            label: spec.label.clone(),
            id: Vec::new(),
            key_type: csr.key_type,
            spki: csr.spki.clone(),
            flags: Default::default(),
        },
        ski: ski_of(&issued.cert).ok_or_else(|| {
            CeremonyError::Internal(
                "the delegated CA's certificate has no subjectKeyIdentifier".into(),
            )
        })?,
        cert: issued.cert,
        der: issued.der,
        generated_key: false,
        signed_cert: true,
        delegated: true,
        also_trusted: Vec::new(),
    })
}

/// Signs the kubelet signer's certificate from the request the first
/// control-plane node brought, with the kubernetes CA on the token: short
/// lived, pathLen 0, clientAuth and serverAuth only. Never stored.
pub fn sign_kubelet_signer(
    token: &dyn Token,
    spec: &crate::plan::KubeletSignerSpec,
    csr: &crate::csr::ca::CheckedCaCsr,
    kubernetes: &CaState,
    now: SystemTime,
    announce: &mut dyn FnMut(&str),
    audit: &mut dyn Audit,
) -> Result<x509::Issued, CeremonyError> {
    let start = x509::truncate(now);
    let profile = crate::profile::kubelet_signer_profile(
        &spec.subject,
        (
            kubernetes.cert.tbs_certificate().subject(),
            kubernetes.ski.as_slice(),
        ),
    );
    announce(&format!(
        "Sign the kubelet signer's certificate \"{}\" from {} with the kubernetes CA \"{}\" on the token",
        spec.subject, csr.file, kubernetes.key.label
    ));
    sign_request(
        token,
        &profile,
        csr,
        kubernetes,
        (start, start + spec.validity),
        (CaRole::Kubernetes, KUBELET_SIGNER),
        audit,
    )
}

/// The kubelet signer's name in the audit log and in file names.
pub const KUBELET_SIGNER: &str = "kubelet-signer";

/// Signs a checked CA request with `issuer`'s key on the token, `span` =
/// (start, end); `who` = (the role a lifetime error names, the audit name).
fn sign_request(
    token: &dyn Token,
    profile: &crate::x509::CertProfile,
    csr: &crate::csr::ca::CheckedCaCsr,
    issuer: &CaState,
    (start, not_after): (SystemTime, SystemTime),
    (role, name): (CaRole, &str),
    audit: &mut dyn Audit,
) -> Result<x509::Issued, CeremonyError> {
    if not_after > issuer.not_after() {
        return Err(CeremonyError::Outlives {
            role,
            end: crate::fmt::utc(not_after),
            issuer_end: crate::fmt::utc(issuer.not_after()),
        });
    }
    let serial = random_serial(token)?;
    let issued = x509::issue(
        ToBeSigned {
            profile,
            serial: &serial,
            not_before: start - BACKDATE,
            not_after,
            subject_spki: &csr.spki,
            issuer_spki: &issuer.key.spki,
            issuer_key_type: issuer.key.key_type,
        },
        |tbs| token.sign(&issuer.key, tbs),
    )?;
    audit.record(Event::DelegatedCaIssued {
        certificate: cert_info(
            name,
            None,
            None,
            issuer.role.name(),
            &issued.cert,
            &issued.der,
        ),
        csr: csr.file.clone(),
        csr_sha256: hex::encode(csr.sha256),
    })?;
    Ok(issued)
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use der::{Decode, Encode};
    use x509_cert::certificate::Certificate;
    use x509_cert::name::Name;

    use super::*;
    use crate::audit::event::{cert_info, key_info};
    use crate::plan::{CaRole, Lifetime, UserSpec, ValidPlan};
    use crate::token::fake::{Fake, strong_flags};
    use crate::token::{KeyFlags, Token, TokenError};

    const ROOT: &str = "demo-root-2026";
    const K8S: &str = "demo-kubernetes-ca-2026";

    /// The demo plan, validated at `now`.
    fn demo(now: SystemTime) -> ValidPlan {
        let plan = concat!(env!("CARGO_MANIFEST_DIR"), "/ceremony/plans/demo.toml");
        crate::plan::load(std::path::Path::new(plan), now)
            .expect("the demo plan loads")
            .plan
    }

    /// One `ensure_ca`: its outcome, what it announced and what it recorded.
    fn ensure(
        token: &Fake,
        spec: &CaSpec,
        issuer: Option<&CaState>,
        now: SystemTime,
    ) -> (Result<CaState, CeremonyError>, Vec<String>, Vec<Event>) {
        let mut announced = Vec::new();
        let mut events: Vec<Event> = Vec::new();
        let outcome = ensure_ca(
            token,
            spec,
            issuer,
            now,
            &mut |what| announced.push(what.to_string()),
            &mut events,
        );
        (outcome, announced, events)
    }

    /// Every CA of `plan` made (or found) on `token`, root first.
    fn all(token: &Fake, plan: &ValidPlan, now: SystemTime) -> (Vec<CaState>, Vec<Event>) {
        let mut cas: Vec<CaState> = Vec::new();
        let mut events = Vec::new();
        for spec in &plan.cas {
            let issuer = cas.first().filter(|_| spec.role != CaRole::Root);
            let (ca, _, mut recorded) = ensure(token, spec, issuer, now);
            cas.push(ca.expect("the CA is made"));
            events.append(&mut recorded);
        }
        (cas, events)
    }

    /// Whether `der` is a certificate whose signature verifies with `issuer`.
    fn signed_by(der: &[u8], issuer: &spki::SubjectPublicKeyInfoOwned) -> Result<(), String> {
        let cert = Certificate::from_der(der).map_err(|e| e.to_string())?;
        let tbs = cert.tbs_certificate().to_der().map_err(|e| e.to_string())?;
        let sig = cert.signature().as_bytes().ok_or("unused bits")?;
        x509::verify_signature(issuer, cert.signature_algorithm(), &tbs, sig)
    }

    fn weak() -> KeyFlags {
        KeyFlags {
            extractable: Some(true),
            ..strong_flags()
        }
    }

    #[test]
    fn a_new_root_is_generated_signed_stored_and_recorded_in_that_order() {
        let now = SystemTime::now();
        let plan = demo(now);
        let token = Fake::new();
        let (ca, announced, events) = ensure(&token, &plan.cas[0], None, now);
        let ca = ca.expect("the root is made");
        assert!(ca.generated_key && ca.signed_cert);
        assert_eq!(ca.role, CaRole::Root);
        assert_eq!(ca.key.flags, strong_flags());
        assert_eq!(ca.key.id.len(), KEY_ID_LEN);
        assert_eq!(
            announced,
            [
                format!("Generate root key ecdsa-p384 \"{ROOT}\" on the token"),
                format!(
                    "Sign the root certificate \"CN=Demo Kubernetes Root CA,O=Demo\" with \"{ROOT}\" on the token"
                ),
            ]
        );
        assert_eq!(
            events,
            [
                Event::KeyGenerationStarted {
                    role: "root".into(),
                    label: ROOT.into(),
                    key_type: "ecdsa-p384".into(),
                    id: hex::encode(&ca.key.id),
                },
                Event::KeyGenerated(key_info("root", &ca.key)),
                Event::CertificateIssued(cert_info("root", None, None, "root", &ca.cert, &ca.der)),
                Event::CertificateStored {
                    role: "root".into(),
                    label: ROOT.into(),
                    sha256: hex::encode(x509::sha256(&ca.der)),
                },
            ]
        );
        // Self-signed, stored under the label beside its key, and what the token keeps.
        signed_by(&ca.der, &ca.key.spki).expect("the root verifies with its own key");
        assert_eq!(ca.cert.tbs_certificate().subject(), &plan.cas[0].subject);
        assert_eq!(
            token.find_certificate(ROOT).unwrap().as_deref(),
            Some(ca.der.as_slice())
        );
        assert_eq!(
            token.classes(ROOT),
            ["private-key", "public-key", "certificate"]
        );
        assert_eq!(
            (
                token.calls("generate"),
                token.calls("sign"),
                token.calls("store")
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn an_intermediate_is_signed_by_the_root_and_recorded_as_such() {
        let now = SystemTime::now();
        let plan = demo(now);
        let token = Fake::new();
        let (cas, events) = all(&token, &plan, now);
        assert_eq!(events.len(), 16, "four records per CA");
        let root = &cas[0];
        for ca in &cas[1..] {
            signed_by(&ca.der, &root.key.spki).expect("signed by the root");
            assert_eq!(
                ca.cert.tbs_certificate().issuer(),
                root.cert.tbs_certificate().subject()
            );
            assert!(ca.not_after() <= root.not_after());
            let issued = Event::CertificateIssued(cert_info(
                ca.role.name(),
                None,
                None,
                "root",
                &ca.cert,
                &ca.der,
            ));
            assert!(events.contains(&issued), "{issued:?}");
        }
        assert_eq!(token.calls("generate"), 4);
        assert_eq!(token.calls("store"), 4);
    }

    #[test]
    fn a_resumed_ca_is_found_and_nothing_is_generated_or_signed() {
        let now = SystemTime::now();
        let plan = demo(now);
        let token = Fake::new();
        let (made, _) = all(&token, &plan, now);
        let calls = |t: &Fake| (t.calls("generate"), t.calls("sign"), t.calls("store"));
        let before = calls(&token);
        let later = now + Duration::from_secs(3600);
        let mut found: Vec<CaState> = Vec::new();
        for (spec, m) in plan.cas.iter().zip(&made) {
            let issuer = found.first().filter(|_| spec.role != CaRole::Root);
            let (ca, announced, events) = ensure(&token, spec, issuer, later);
            let ca = ca.expect("found");
            assert!(!ca.generated_key && !ca.signed_cert);
            assert_eq!(ca.der, m.der);
            assert_eq!(ca.key.id, m.key.id);
            assert!(announced.is_empty(), "{announced:?}");
            assert_eq!(
                events,
                [
                    Event::KeyFound(key_info(spec.role.name(), &m.key)),
                    Event::CertificateFound(cert_info(
                        spec.role.name(),
                        None,
                        None,
                        "root",
                        &m.cert,
                        &m.der
                    )),
                ]
            );
            found.push(ca);
        }
        assert_eq!(calls(&token), before, "nothing generated, signed or stored");
    }

    #[test]
    fn a_key_found_without_its_certificate_is_signed_for_and_stored_only() {
        let now = SystemTime::now();
        let plan = demo(now);
        let token = Fake::new();
        let key = token
            .generate_key_pair(ROOT, plan.cas[0].key, &[7; KEY_ID_LEN])
            .unwrap();
        let (ca, announced, events) = ensure(&token, &plan.cas[0], None, now);
        let ca = ca.expect("the certificate is made");
        assert!(!ca.generated_key && ca.signed_cert);
        assert_eq!(ca.key.id, key.id);
        signed_by(&ca.der, &key.spki).expect("signed with the key found");
        assert_eq!(announced.len(), 1, "{announced:?}");
        assert!(announced[0].starts_with("Sign the root certificate"));
        assert_eq!(
            events,
            [
                Event::KeyFound(key_info("root", &key)),
                Event::CertificateIssued(cert_info("root", None, None, "root", &ca.cert, &ca.der)),
                Event::CertificateStored {
                    role: "root".into(),
                    label: ROOT.into(),
                    sha256: hex::encode(x509::sha256(&ca.der)),
                },
            ]
        );
        assert_eq!(token.calls("generate"), 1, "only the test's own key");
        assert_eq!(token.calls("store"), 1);
    }

    fn foreign(what: &str) -> String {
        format!("token label \"{ROOT}\" (root) does not belong to this plan: {what}")
    }

    /// The preflight's refusal of what `setup` left under the root's label.
    fn refused_by_preflight(setup: impl FnOnce(&Fake, &ValidPlan)) -> (CeremonyError, Fake) {
        let now = SystemTime::now();
        let plan = demo(now);
        let token = Fake::new();
        setup(&token, &plan);
        let generated = token.calls("generate");
        let e = preflight_label(&token, &plan.cas[0]).expect_err("foreign");
        assert_eq!(token.calls("generate"), generated, "nothing generated");
        (e, token)
    }

    /// What a test leaves on the fake token before the code under test runs.
    type Setup = fn(&Fake, &ValidPlan);

    #[test]
    fn foreign_objects_under_a_label_are_refused_before_anything_is_generated() {
        let cases: [(&str, Setup); 5] = [
            ("a data object carries it", |t, _| {
                t.put("data", ROOT, &[1]);
            }),
            (
                "2 objects carry it, more than one key pair and certificate",
                |t, _| {
                    t.put("private-key", ROOT, &[1]);
                    t.put("private-key", ROOT, &[1]);
                },
            ),
            ("2 objects with different CKA_IDs carry it", |t, _| {
                t.put("private-key", ROOT, &[1]);
                t.put("public-key", ROOT, &[2]);
            }),
            ("objects carry it but no private key does", |t, _| {
                t.put("certificate", ROOT, &[1]);
            }),
            ("its private key has no public key beside it", |t, _| {
                t.put("private-key", ROOT, &[1]);
            }),
        ];
        for (what, setup) in cases {
            let (e, _) = refused_by_preflight(setup);
            assert!(matches!(e, CeremonyError::Foreign { .. }), "{e:?}");
            assert_eq!(e.to_string(), foreign(what));
            assert_eq!(e.exit_code(), 3);
        }
    }

    /// The demo root made on `token` under another subject.
    fn root_with_subject(token: &Fake, plan: &ValidPlan, subject: &str) -> CaState {
        let mut other = plan.cas[0].clone();
        other.subject = subject.parse::<Name>().unwrap();
        let (ca, _, _) = ensure(token, &other, None, SystemTime::now());
        ca.expect("made")
    }

    #[test]
    fn a_certificate_with_another_subject_is_foreign_to_the_preflight_and_to_ensure_ca() {
        let want = foreign(
            "its certificate's subject is \"CN=Someone Else\", the plan says \"CN=Demo Kubernetes Root CA,O=Demo\"",
        );
        let (e, token) = refused_by_preflight(|t, p| {
            root_with_subject(t, p, "CN=Someone Else");
        });
        assert_eq!(e.to_string(), want);
        // ensure_ca alone refuses it too, after recording what it found.
        let now = SystemTime::now();
        let plan = demo(now);
        let (ca, announced, events) = ensure(&token, &plan.cas[0], None, now);
        let e = ca.expect_err("foreign");
        assert_eq!(e.to_string(), want);
        assert!(announced.is_empty());
        assert!(matches!(
            events.as_slice(),
            [Event::KeyFound(_), Event::CertificateFound(_)]
        ));
        assert_eq!(
            (token.calls("generate"), token.calls("store")),
            (1, 1),
            "only the foreign root's"
        );
    }

    #[test]
    fn a_certificate_for_another_key_is_foreign() {
        let want = foreign("its certificate is for another public key than the key beside it");
        let now = SystemTime::now();
        let plan = demo(now);
        let elsewhere = Fake::new();
        let (other, _, _) = ensure(&elsewhere, &plan.cas[0], None, now);
        let other = other.unwrap();
        let (e, token) = refused_by_preflight(|t, p| {
            ensure(t, &p.cas[0], None, SystemTime::now()).0.unwrap();
            // The certificate beside this key is the other token's.
            for o in t.objects.borrow_mut().iter_mut() {
                if o.class == "certificate" {
                    o.value = other.der.clone();
                }
            }
        });
        assert_eq!(e.to_string(), want);
        let (ca, _, _) = ensure(&token, &plan.cas[0], None, now);
        assert_eq!(ca.expect_err("foreign").to_string(), want);
        assert_eq!(token.calls("generate"), 1);
    }

    #[test]
    fn a_certificate_signed_for_another_validity_is_foreign_to_ensure_ca() {
        let now = SystemTime::now();
        let plan = demo(now);
        let token = Fake::new();
        let mut shorter = plan.cas[0].clone();
        shorter.lifetime = Lifetime::For(Duration::from_secs(86_400 * 365));
        let made = ensure(&token, &shorter, None, now).0.unwrap();
        let v = made.cert.tbs_certificate().validity();
        let (ca, _, _) = ensure(&token, &plan.cas[0], None, now);
        assert_eq!(
            ca.expect_err("foreign").to_string(),
            foreign(&format!(
                "its certificate runs {} to {}, which is not the plan's validity 20y",
                crate::fmt::utc(v.not_before.to_system_time()),
                crate::fmt::utc(v.not_after.to_system_time()),
            ))
        );
    }

    #[test]
    fn a_weak_key_found_is_refused_on_the_record_before_anything_is_signed() {
        let now = SystemTime::now();
        let plan = demo(now);
        let token = Fake::new();
        let key = token
            .generate_key_pair(ROOT, plan.cas[0].key, &[7; KEY_ID_LEN])
            .unwrap();
        token.flags.set(weak());
        let want = format!(
            "key \"{ROOT}\" on the token is not protected as a CA key must be: CKA_EXTRACTABLE is true"
        );
        let e = preflight_label(&token, &plan.cas[0]).expect_err("weak");
        assert!(
            matches!(e, CeremonyError::Token(TokenError::WeakKey { .. })),
            "{e:?}"
        );
        assert_eq!(e.to_string(), want);
        let (ca, announced, events) = ensure(&token, &plan.cas[0], None, now);
        let e = ca.expect_err("weak");
        assert_eq!(e.to_string(), want);
        assert!(announced.is_empty());
        // The refused key's flags are on the record.
        let weak_key = KeyPair {
            flags: weak(),
            ..key
        };
        assert_eq!(events, [Event::KeyFound(key_info("root", &weak_key))]);
        assert_eq!((token.calls("sign"), token.calls("store")), (0, 0));
        assert_eq!(token.classes(ROOT), ["private-key", "public-key"]);
    }

    #[test]
    fn a_token_that_fails_generation_leaves_only_the_intent_on_the_record() {
        let now = SystemTime::now();
        let plan = demo(now);
        let token = Fake::new();
        *token.fail_at.borrow_mut() = Some(("generate", 1));
        let (ca, _, events) = ensure(&token, &plan.cas[0], None, now);
        let e = ca.expect_err("fails");
        assert_eq!(
            e.to_string(),
            "the token returned a malformed signature for \"fake\": the fake token fails generate call 1"
        );
        assert!(
            matches!(events.as_slice(), [Event::KeyGenerationStarted { label, .. }] if label == ROOT),
            "{events:?}"
        );
        assert!(token.classes(ROOT).is_empty());
    }

    #[test]
    fn a_token_that_fails_to_sign_leaves_the_key_and_no_certificate() {
        let now = SystemTime::now();
        let plan = demo(now);
        let token = Fake::new();
        *token.fail_at.borrow_mut() = Some(("sign", 1));
        let (ca, _, events) = ensure(&token, &plan.cas[0], None, now);
        let e = ca.expect_err("fails");
        assert!(
            matches!(e, CeremonyError::X509(x509::X509Error::Sign { .. })),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "signing the certificate for CN=Demo Kubernetes Root CA,O=Demo failed"
        );
        assert_eq!(e.exit_code(), 3);
        assert!(
            matches!(
                events.as_slice(),
                [Event::KeyGenerationStarted { .. }, Event::KeyGenerated(_)]
            ),
            "{events:?}"
        );
        assert_eq!(token.classes(ROOT), ["private-key", "public-key"]);
        assert_eq!(token.calls("store"), 0);
    }

    #[test]
    fn a_token_that_fails_to_store_leaves_the_issue_on_the_record_and_a_rerun_signs_again() {
        let now = SystemTime::now();
        let plan = demo(now);
        let token = Fake::new();
        *token.fail_at.borrow_mut() = Some(("store", 1));
        let (ca, _, events) = ensure(&token, &plan.cas[0], None, now);
        assert_eq!(
            ca.expect_err("fails").to_string(),
            "the token returned a malformed signature for \"fake\": the fake token fails store call 1"
        );
        assert!(
            matches!(
                events.as_slice(),
                [
                    Event::KeyGenerationStarted { .. },
                    Event::KeyGenerated(_),
                    Event::CertificateIssued(_)
                ]
            ),
            "{events:?}"
        );
        assert_eq!(token.find_certificate(ROOT).unwrap(), None);
        // The next run finds the key and signs its certificate again.
        let (ca, _, events) = ensure(&token, &plan.cas[0], None, now);
        let ca = ca.expect("resumed");
        assert!(!ca.generated_key && ca.signed_cert);
        assert!(
            matches!(
                events.as_slice(),
                [
                    Event::KeyFound(_),
                    Event::CertificateIssued(_),
                    Event::CertificateStored { .. }
                ]
            ),
            "{events:?}"
        );
        assert_eq!(token.calls("generate"), 1);
    }

    /// The demo plan with its kubernetes CA already on `token`, signed for `days`.
    fn short_kubernetes_ca(token: &Fake, plan: &ValidPlan, now: SystemTime, days: u64) -> CaState {
        let root = ensure(token, &plan.cas[0], None, now).0.unwrap();
        let mut short = plan.ca(CaRole::Kubernetes).clone();
        short.lifetime = Lifetime::For(Duration::from_secs(86_400 * days));
        ensure(token, &short, Some(&root), now).0.unwrap()
    }

    #[test]
    fn leaves_that_would_outlive_an_intermediate_on_the_token_are_refused() {
        let now = SystemTime::now();
        let plan = demo(now);
        let token = Fake::new();
        // Nothing on the token: the plan's own validities fit.
        preflight_validity(&token, &plan, now, &Default::default()).expect("fits");
        let k8s = short_kubernetes_ca(&token, &plan, now, 100);
        let e = preflight_validity(&token, &plan, now, &Default::default()).expect_err("outlives");
        let end = x509::truncate(now) + Duration::from_secs(86_400 * 365);
        assert_eq!(
            e.to_string(),
            format!(
                "cluster.leaf_validity: certificates would end {}, after the kubernetes CA that issues them ({})",
                crate::fmt::utc(end),
                crate::fmt::utc(k8s.not_after())
            )
        );
        assert!(
            matches!(&e, CeremonyError::LeafOutlives { field, issuer: CaRole::Kubernetes, .. } if field == "cluster.leaf_validity")
        );
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            token.classes(K8S),
            ["private-key", "public-key", "certificate"]
        );
    }

    #[test]
    fn users_that_would_outlive_the_kubernetes_ca_on_the_token_are_refused() {
        let now = SystemTime::now();
        let mut plan = demo(now);
        plan.cluster = None;
        let user = |validity_days: u64| UserSpec {
            name: "alice".into(),
            groups: vec!["system:masters".into()],
            validity: Duration::from_secs(86_400 * validity_days),
            csr: None,
            allow_masters: true,
        };
        plan.users = vec![user(30), user(200)];
        let token = Fake::new();
        let k8s = short_kubernetes_ca(&token, &plan, now, 100);
        let e = preflight_validity(&token, &plan, now, &Default::default()).expect_err("outlives");
        let end = x509::truncate(now) + Duration::from_secs(86_400 * 200);
        assert_eq!(
            e.to_string(),
            format!(
                "users[1].validity: certificates would end {}, after the kubernetes CA that issues them ({})",
                crate::fmt::utc(end),
                crate::fmt::utc(k8s.not_after())
            )
        );
        plan.users.pop();
        preflight_validity(&token, &plan, now, &Default::default()).expect("30 days fit in 100");
    }

    #[test]
    fn an_intermediate_still_to_sign_must_end_before_the_root_on_the_token() {
        let now = SystemTime::now();
        let plan = demo(now);
        let token = Fake::new();
        let mut short_root = plan.cas[0].clone();
        short_root.lifetime = Lifetime::For(Duration::from_secs(86_400 * 365 * 5));
        let root = ensure(&token, &short_root, None, now).0.unwrap();
        let e = preflight_validity(&token, &plan, now, &Default::default()).expect_err("outlives");
        assert_eq!(
            e.to_string(),
            format!(
                "ca.kubernetes: the certificate would end {}, after its issuer ({})",
                crate::fmt::utc(
                    plan.ca(CaRole::Kubernetes)
                        .lifetime
                        .end(x509::truncate(now))
                ),
                crate::fmt::utc(root.not_after())
            )
        );
    }

    #[test]
    fn a_reissue_keeps_key_subject_and_ski_is_recorded_apart_and_leaves_the_token_alone() {
        let now = SystemTime::now();
        let plan = demo(now);
        let token = Fake::new();
        let (cas, _) = all(&token, &plan, now);
        let objects = token.objects.borrow().len();
        let etcd = &cas[CaRole::Etcd as usize];
        let mut events: Vec<Event> = Vec::new();
        let mut announced = Vec::new();
        let later = now + Duration::from_secs(86_400);
        let new = reissue(
            &token,
            plan.ca(CaRole::Etcd),
            etcd,
            Some(&cas[0]),
            later,
            &mut |w| announced.push(w.to_string()),
            &mut events,
        )
        .expect("reissued");
        let (old_tbs, new_tbs) = (etcd.cert.tbs_certificate(), new.cert.tbs_certificate());
        assert_eq!(new_tbs.subject(), old_tbs.subject());
        assert_eq!(new_tbs.issuer(), old_tbs.issuer());
        assert_eq!(
            new_tbs.subject_public_key_info(),
            old_tbs.subject_public_key_info()
        );
        assert_eq!(new.ski, etcd.ski);
        assert_ne!(new_tbs.serial_number(), old_tbs.serial_number());
        assert_ne!(new.der, etcd.der);
        signed_by(&new.der, &cas[0].key.spki).expect("signed by the root's key");
        assert_eq!(announced.len(), 1);
        assert!(
            announced[0].starts_with("Reissue the etcd certificate \"CN=etcd-ca\" for its key")
        );
        // Recorded as a reissue only: a resumed run must not take it for a
        // certificate store it interrupted (and remove the token's).
        let kinds: Vec<&str> = events.iter().map(Event::kind).collect();
        assert_eq!(kinds, ["ca_certificate_reissued"]);
        assert_eq!(token.objects.borrow().len(), objects, "nothing stored");

        // The next ceremony carries it: the token's certificate gives way to it.
        let mut events: Vec<Event> = Vec::new();
        let carried = carry_current(etcd.clone(), Some(&new.der), Some(&cas[0]), &mut events)
            .expect("carried");
        assert_eq!(carried.der, new.der);
        assert_eq!(
            events.iter().map(Event::kind).collect::<Vec<_>>(),
            ["ca_certificate_carried"]
        );
        // The same certificate: nothing to carry, nothing recorded.
        let mut events: Vec<Event> = Vec::new();
        let same =
            carry_current(etcd.clone(), Some(&etcd.der), Some(&cas[0]), &mut events).unwrap();
        assert_eq!(same.der, etcd.der);
        assert!(events.is_empty());
        // Another CA's certificate in its place is refused.
        let e = carry_current(etcd.clone(), Some(&cas[1].der), Some(&cas[0]), &mut events)
            .expect_err("another key");
        assert_eq!(
            e.to_string(),
            "the previous output's etcd CA certificate differs from the one on the token and is not for the same key and subject"
        );
        // A reissued intermediate may not outlive the root.
        let mut long = plan.ca(CaRole::Etcd).clone();
        long.lifetime = Lifetime::For(Duration::from_secs(40 * 365 * 86_400));
        let e = reissue(
            &token,
            &long,
            etcd,
            Some(&cas[0]),
            later,
            &mut |_| {},
            &mut events,
        )
        .expect_err("outlives");
        assert!(matches!(e, CeremonyError::Outlives { .. }), "{e}");
    }
}
