//! One leaf certificate: the one path every leaf takes, whether its key was
//! made on the laptop (the generate pipeline), brought in a node's or a
//! user's CSR, or carried from an earlier ceremony.
//!
//! `prepare` checks the validity against the issuer, builds kubeadm's
//! profile and the TBS; the signature is the token's (`Token::sign`, or a
//! pipeline's signing thread); `finish` assembles the certificate around
//! the very TBS bytes and checks it (`x509::finish`); `issued_event` is its
//! `certificate_issued` record. `issue` runs the four in a row.
//! What it must not do: put anything in a certificate but the profile's
//! fields and the given key; return a certificate that was not checked.

use std::time::{Duration, SystemTime};

use spki::SubjectPublicKeyInfoOwned;

use super::ca::{BACKDATE, CaState};
use crate::audit::event::cert_info;
use crate::audit::{Audit, Event};
use crate::error::CeremonyError;
use crate::keytype::KeyType;
use crate::profile::kubeadm::{self, LeafSpec};
use crate::token::Token;
use crate::x509::{self, CertProfile, Issued, ToBeSigned};

/// What one leaf certifies (kubeadm's spec, the key, the validity) and
/// where it goes (the node, None for a user; the file relative to OUT).
pub struct Request<'a> {
    pub spec: &'a LeafSpec,
    pub spki: &'a SubjectPublicKeyInfoOwned,
    pub key_type: KeyType,
    pub validity: Duration,
    pub node: Option<&'a str>,
    pub file: &'a str,
}

/// A leaf between its TBS and its signature.
pub struct Prepared {
    pub profile: CertProfile,
    pub serial: Vec<u8>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The DER the token signs (taken by `finish`).
    pub tbs_der: Vec<u8>,
}

impl Prepared {
    fn tbs<'p>(
        &'p self,
        subject_spki: &'p SubjectPublicKeyInfoOwned,
        issuer: &'p CaState,
    ) -> ToBeSigned<'p> {
        ToBeSigned {
            profile: &self.profile,
            serial: &self.serial,
            not_before: self.not_before,
            not_after: self.not_after,
            subject_spki,
            issuer_spki: &issuer.key.spki,
            issuer_key_type: issuer.key.key_type,
        }
    }
}

/// The issuer of `role` among the run's CAs.
pub fn issuer_of(cas: &[CaState], role: crate::plan::CaRole) -> Result<&CaState, CeremonyError> {
    cas.iter()
        .find(|c| c.role == role)
        .ok_or_else(|| CeremonyError::Internal(format!("no {} CA to sign with", role.name())))
}

/// The validity, checked against the issuer's, and the profile: everything
/// that can refuse a leaf before its key is made or its serial drawn.
pub fn profile(
    spec: &LeafSpec,
    key_type: KeyType,
    validity: Duration,
    issuer: &CaState,
    now: SystemTime,
) -> Result<(CertProfile, SystemTime, SystemTime), CeremonyError> {
    let start = x509::truncate(now);
    let not_after = start + validity;
    if not_after > issuer.not_after() {
        return Err(CeremonyError::Outlives {
            role: spec.issuer,
            end: crate::fmt::utc(not_after),
            issuer_end: crate::fmt::utc(issuer.not_after()),
        });
    }
    let profile = kubeadm::leaf_profile(
        spec,
        issuer.cert.tbs_certificate().subject(),
        &issuer.ski,
        key_type,
    )
    .map_err(x509::X509Error::from)?;
    Ok((profile, start - BACKDATE, not_after))
}

/// The TBS of a leaf whose profile and validity `profile` gave.
pub fn prepare(
    profiled: (CertProfile, SystemTime, SystemTime),
    spki: &SubjectPublicKeyInfoOwned,
    issuer: &CaState,
    serial: Vec<u8>,
) -> Result<Prepared, CeremonyError> {
    let (profile, not_before, not_after) = profiled;
    let mut p = Prepared {
        profile,
        serial,
        not_before,
        not_after,
        tbs_der: Vec::new(),
    };
    p.tbs_der = x509::build(&p.tbs(spki, issuer))?;
    Ok(p)
}

/// The certificate around the token's signature of `p.tbs_der`, checked.
pub fn finish(
    p: &mut Prepared,
    spki: &SubjectPublicKeyInfoOwned,
    issuer: &CaState,
    signature: &[u8],
) -> Result<Issued, CeremonyError> {
    let tbs_der = std::mem::take(&mut p.tbs_der);
    Ok(x509::finish(&p.tbs(spki, issuer), tbs_der, signature)?)
}

/// The `certificate_issued` record of a checked leaf: `node` is None for a
/// user, `file` the output relative to OUT.
pub fn issued_event(spec: &LeafSpec, node: Option<&str>, file: &str, issued: &Issued) -> Event {
    Event::CertificateIssued(cert_info(
        &spec.display_name(),
        node,
        Some(file),
        spec.issuer.name(),
        &issued.cert,
        &issued.der,
    ))
}

/// One leaf, start to end: profile, serial from the token's RNG, TBS, the
/// token's signature, the check, the record. For the leaves issued one at
/// a time (CSR mode, users); the pipeline runs the same steps on threads.
pub fn issue(
    token: &dyn Token,
    cas: &[CaState],
    req: Request<'_>,
    now: SystemTime,
    audit: &mut dyn Audit,
) -> Result<Issued, CeremonyError> {
    let issuer = issuer_of(cas, req.spec.issuer)?;
    let (profile, not_before, not_after) =
        profile(req.spec, req.key_type, req.validity, issuer, now)?;
    let p = Prepared {
        profile,
        serial: crate::token::random_serial(token)?,
        not_before,
        not_after,
        tbs_der: Vec::new(),
    };
    let issued = x509::issue(p.tbs(req.spki, issuer), |tbs| token.sign(&issuer.key, tbs))?;
    audit.record(issued_event(req.spec, req.node, req.file, &issued))?;
    Ok(issued)
}
