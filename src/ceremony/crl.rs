//! Revocation in the chain: the previous output's CRLs and the plan's
//! `[[revoke]]` read and checked before the token is opened; then, once
//! the CAs are at hand, every CA's CRL signed through the token (checked
//! like every certificate) and written to OUT and to the etcd of every
//! control-plane bundle written.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use der::DecodePem;
use x509_cert::certificate::Certificate;

use super::chain::{self, Continuation};
use crate::audit::{Audit, Event};
use crate::bundle::layout;
use crate::bundle::write::{self, Staging};
use crate::error::CeremonyError;
use crate::issue::ca::CaState;
use crate::plan::spec::{RevokeSpec, RevokeTarget};
use crate::plan::{CaRole, LoadedPlan};
use crate::token::Token;
use crate::x509::crl::{self, CrlTbs, Entry, Reason};

/// The four roles, root first.
const ROLES: [CaRole; 4] = [
    CaRole::Root,
    CaRole::Kubernetes,
    CaRole::Etcd,
    CaRole::FrontProxy,
];

/// A revocation this ceremony adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub ca: CaRole,
    pub serial: Vec<u8>,
    pub reason: Reason,
    /// What the plan named, as the screens and the record say it.
    pub what: String,
}

impl Revocation {
    /// One line for the screens and the transcript.
    pub fn line(&self) -> String {
        format!(
            "{}: serial {}, {}, on the {} CA's CRL",
            self.what,
            serial_hex(&self.serial),
            self.reason,
            self.ca.name()
        )
    }
}

/// What this ceremony does with CRLs, checked before the token is opened.
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    /// Whether every CA signs its CRL in this ceremony.
    pub publish: bool,
    pub next_update: Duration,
    /// The previous output's CRLs, by issuing CA, each checked against its
    /// CA certificate there.
    pub previous: BTreeMap<CaRole, crl::Read>,
    /// This ceremony's, in plan order.
    pub new: Vec<Revocation>,
}

fn bad(message: String) -> CeremonyError {
    CeremonyError::Usage {
        message,
        hint: "a revocation names a certificate of the previous output that is not revoked yet (docs/plan.md, [[revoke]]); nothing was touched".into(),
    }
}

/// Hex of a serial, as `openssl x509 -serial` prints it.
pub fn serial_hex(serial: &[u8]) -> String {
    hex::encode_upper(serial)
}

/// The previous output's CA certificates, by role.
fn previous_cas(c: &Continuation) -> Result<BTreeMap<CaRole, Certificate>, CeremonyError> {
    let mut cas = BTreeMap::new();
    for role in ROLES {
        let rel = match role {
            CaRole::Root => layout::ROOT_CA.to_string(),
            r => layout::ca_file(r),
        };
        let pem = chain::read(&c.dir, &rel)?;
        let cert = Certificate::from_pem(crate::pem::first_certificate(&pem)).map_err(|e| {
            bad(format!(
                "{}: not a PEM certificate ({e})",
                c.dir.join(&rel).display()
            ))
        })?;
        cas.insert(role, cert);
    }
    Ok(cas)
}

/// Reads and checks what the plan and the previous output say of CRLs.
pub fn read(
    loaded: &LoadedPlan,
    continuation: Option<&Continuation>,
) -> Result<Revocations, CeremonyError> {
    let plan = &loaded.plan.crl;
    let mut r = Revocations {
        publish: plan.requested,
        next_update: plan.next_update,
        ..Revocations::default()
    };
    let Some(c) = continuation else {
        return Ok(r);
    };
    let cas = previous_cas(c)?;
    for (role, ca) in &cas {
        let rel = layout::crl_file(*role);
        if !c.listed.contains_key(&rel) {
            if c.dir.join(&rel).exists() {
                return Err(bad(format!(
                    "{}: not listed in the previous output's SHA256SUMS: the seal does not cover it",
                    c.dir.join(&rel).display()
                )));
            }
            continue;
        }
        let path = c.dir.join(&rel);
        let pem = chain::read(&c.dir, &rel)?;
        let read = crl::read_pem(&pem)
            .and_then(|read| {
                crl::check(
                    &read.der,
                    None,
                    ca.tbs_certificate().subject_public_key_info(),
                    None,
                )
                .map(|_| read)
            })
            .map_err(|e| bad(format!("{}: {e}", path.display())))?;
        if &read.issuer != ca.tbs_certificate().subject() {
            return Err(bad(format!(
                "{}: issued by \"{}\", not by the {} CA",
                path.display(),
                read.issuer,
                role.name()
            )));
        }
        r.previous.insert(*role, read);
    }
    // Once the chain publishes CRLs, every ceremony signs them again, so
    // that they never lapse.
    r.publish |= !r.previous.is_empty();
    for spec in &plan.revoke {
        let rev = resolve(c, &cas, spec)?;
        if loaded.plan.delegated(rev.ca).is_some() {
            return Err(bad(format!(
                "{}: issued by the {} CA, which is delegated to the control-plane nodes: its key is not on the token, so the ceremony signs no CRL for it",
                rev.what,
                rev.ca.name()
            )));
        }
        let on = r
            .previous
            .get(&rev.ca)
            .filter(|p| p.entries.iter().any(|e| e.serial == rev.serial));
        if let Some(p) = on {
            return Err(bad(format!(
                "{}: already revoked, on the {} CA's CRL number {} of {}",
                rev.what,
                rev.ca.name(),
                p.number,
                c.dir.display()
            )));
        }
        if r.new
            .iter()
            .any(|n| n.ca == rev.ca && n.serial == rev.serial)
        {
            return Err(bad(format!(
                "{}: named twice in [[revoke]] (serial {})",
                rev.what,
                serial_hex(&rev.serial)
            )));
        }
        r.new.push(rev);
    }
    Ok(r)
}

/// The CA and serial a `[[revoke]]` names, checked against the previous output.
fn resolve(
    c: &Continuation,
    cas: &BTreeMap<CaRole, Certificate>,
    spec: &RevokeSpec,
) -> Result<Revocation, CeremonyError> {
    let in_use = |ca: CaRole, serial: &[u8], what: &str| -> Result<(), CeremonyError> {
        match cas.iter().find(|(_, cert)| {
            crl::serial_digits(cert.tbs_certificate().serial_number().as_bytes()) == serial
                && ca == CaRole::Root
        }) {
            Some((role, _)) => Err(bad(format!(
                "{what}: is the {} CA's certificate the chain uses: revoking it distrusts every certificate it signed; rotate that CA first",
                role.name()
            ))),
            None => Ok(()),
        }
    };
    match &spec.target {
        RevokeTarget::Serial { ca, serial } => {
            let what = format!("serial {} of the {} CA", serial_hex(serial), ca.name());
            in_use(*ca, serial, &what)?;
            Ok(Revocation {
                ca: *ca,
                serial: serial.clone(),
                reason: spec.reason,
                what,
            })
        }
        RevokeTarget::File { node, file } => {
            let rel = format!("{}/{file}", layout::node_root(node));
            let shown = c.dir.join(&rel).display().to_string();
            let Some(want) = c.listed.get(&rel) else {
                return Err(bad(format!(
                    "{shown}: not a file of the previous output (its SHA256SUMS does not list it): name a certificate of an earlier output by ca and serial"
                )));
            };
            let pem = chain::read(&c.dir, &rel)?;
            if &hex::encode(crate::x509::sha256(&pem)) != want {
                return Err(bad(format!("{shown}: changed while it was read")));
            }
            let cert = Certificate::from_pem(&pem[..])
                .map_err(|e| bad(format!("{shown}: not a PEM certificate ({e})")))?;
            let issuer = cert.tbs_certificate().issuer();
            let found = cas
                .iter()
                .find(|(_, ca)| ca.tbs_certificate().subject() == issuer && signed_by(&cert, ca));
            let Some((role, _)) = found else {
                return Err(bad(format!(
                    "{shown}: not signed by a CA of the previous output (its issuer is \"{issuer}\")"
                )));
            };
            let serial =
                crl::serial_digits(cert.tbs_certificate().serial_number().as_bytes()).to_vec();
            in_use(*role, &serial, &shown)?;
            Ok(Revocation {
                ca: *role,
                serial,
                reason: spec.reason,
                what: shown,
            })
        }
    }
}

fn signed_by(cert: &Certificate, ca: &Certificate) -> bool {
    use der::Encode;
    let Ok(tbs) = cert.tbs_certificate().to_der() else {
        return false;
    };
    cert.signature().as_bytes().is_some_and(|sig| {
        crate::x509::verify_signature(
            ca.tbs_certificate().subject_public_key_info(),
            cert.signature_algorithm(),
            &tbs,
            sig,
        )
        .is_ok()
    })
}

/// One CA's next CRL, pure: the previous CRL's entries then this
/// ceremony's (revoked now), numbered one past the previous (1 without one).
pub fn next_list(
    role: CaRole,
    previous: Option<&crl::Read>,
    new: &[Revocation],
    now: SystemTime,
) -> (u64, Vec<Entry>) {
    let mut entries: Vec<Entry> = previous.map(|p| p.entries.clone()).unwrap_or_default();
    for n in new.iter().filter(|n| n.ca == role) {
        entries.push(Entry {
            serial: n.serial.clone(),
            revoked_at: crate::x509::truncate(now),
            reason: n.reason,
        });
    }
    (previous.map_or(1, |p| p.number.saturating_add(1)), entries)
}

/// Signs every CA's CRL through `token` (each announced first), checks it,
/// records it, and writes it to OUT (`crls/<role>-ca.crl`) and the etcd
/// CA's to every control-plane bundle in `etcd_nodes`.
#[allow(clippy::too_many_arguments)] // the run's parts, passed explicitly
pub fn sign_and_write(
    token: &dyn Token,
    announce: &dyn Fn(&str),
    st: &mut Staging,
    cas: &[CaState],
    r: &Revocations,
    now: SystemTime,
    etcd_nodes: &[String],
    audit: &mut dyn Audit,
) -> Result<(), CeremonyError> {
    if !r.publish {
        return Ok(());
    }
    for n in &r.new {
        audit.record(Event::CertificateRevoked {
            ca: n.ca.name().into(),
            serial: serial_hex(&n.serial),
            reason: n.reason.name().into(),
            what: n.what.clone(),
        })?;
    }
    let this_update = crate::x509::truncate(now);
    let next_update = this_update + r.next_update;
    // A delegated CA's key is on the nodes: it signs no CRL here.
    for ca in cas.iter().filter(|c| !c.delegated) {
        let (number, entries) = next_list(ca.role, r.previous.get(&ca.role), &r.new, now);
        announce(&format!(
            "Sign the {} CA's CRL number {number} ({} revoked) with \"{}\" on the token",
            ca.role.name(),
            entries.len(),
            ca.key.label
        ));
        let signed = crl::issue(
            &CrlTbs {
                issuer: ca.cert.tbs_certificate().subject(),
                issuer_ski: &ca.ski,
                issuer_key_type: ca.key.key_type,
                number,
                this_update,
                next_update,
                entries: &entries,
            },
            &ca.key.spki,
            |tbs| token.sign(&ca.key, tbs),
        )?;
        audit.record(Event::CrlSigned {
            ca: ca.role.name().into(),
            number,
            this_update: crate::fmt::utc(this_update),
            next_update: crate::fmt::utc(next_update),
            revoked: entries.len() as u64,
            sha256: hex::encode(crate::x509::sha256(&signed.der)),
        })?;
        let pem = crl::to_pem(&signed.der);
        st.write(&layout::crl_file(ca.role), pem.as_bytes(), write::PUBLIC)?;
        if ca.role == CaRole::Etcd {
            for node in etcd_nodes {
                let rel = format!("{}/{}", layout::node_root(node), layout::ETCD_CRL);
                st.write(&rel, pem.as_bytes(), write::PUBLIC)?;
            }
        }
    }
    Ok(())
}

/// The control-plane nodes this run writes (each serves etcd).
pub fn etcd_nodes(loaded: &LoadedPlan, continuation: Option<&Continuation>) -> Vec<String> {
    let only = continuation.map(|c| c.selection.issued());
    loaded
        .plan
        .cluster
        .iter()
        .flat_map(|cl| cl.control_plane.iter())
        .map(|n| n.name.clone())
        .filter(|n| only.as_ref().is_none_or(|o| o.contains(n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn rev(ca: CaRole, serial: u8) -> Revocation {
        Revocation {
            ca,
            serial: vec![serial],
            reason: Reason::KeyCompromise,
            what: format!("serial {serial}"),
        }
    }

    #[test]
    fn the_next_list_carries_the_previous_entries_and_numbers_one_past() {
        let then = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let previous = crl::Read {
            issuer: x509_cert::name::Name::default(),
            number: 7,
            this_update: then,
            next_update: None,
            entries: vec![Entry {
                serial: vec![1],
                revoked_at: then,
                reason: Reason::Superseded,
            }],
            der: Vec::new(),
        };
        let new = [rev(CaRole::Etcd, 2), rev(CaRole::Kubernetes, 3)];
        let (n, entries) = next_list(CaRole::Etcd, Some(&previous), &new, now);
        assert_eq!(n, 8);
        assert_eq!(
            entries,
            vec![
                previous.entries[0].clone(),
                Entry {
                    serial: vec![2],
                    revoked_at: now,
                    reason: Reason::KeyCompromise
                }
            ]
        );
        // No previous CRL: number 1; nothing revoked: an empty list, signed
        // again all the same.
        assert_eq!(next_list(CaRole::FrontProxy, None, &new, now), (1, vec![]));
    }

    /// The demo plan's CAs made on a fake token.
    fn cas(token: &crate::token::fake::Fake, now: SystemTime) -> Vec<CaState> {
        let plan = concat!(env!("CARGO_MANIFEST_DIR"), "/ceremony/plans/demo.toml");
        let loaded = crate::plan::load(std::path::Path::new(plan), now).unwrap();
        let mut cas: Vec<CaState> = Vec::new();
        for spec in &loaded.plan.cas {
            let issuer = cas.first().filter(|_| spec.role != CaRole::Root);
            let mut events: Vec<Event> = Vec::new();
            let ca =
                crate::issue::ca::ensure_ca(token, spec, issuer, now, &mut |_| {}, &mut events)
                    .unwrap();
            cas.push(ca);
        }
        cas
    }

    #[test]
    fn every_ca_signs_its_crl_on_the_token_checked_recorded_and_written() {
        let now = SystemTime::now();
        let token = crate::token::fake::Fake::new();
        let cas = cas(&token, now);
        let d = tempfile::tempdir().unwrap();
        let mut st = Staging::begin(&d.path().join("out"), &[1; 32]).unwrap();
        let r = Revocations {
            publish: true,
            next_update: Duration::from_secs(86_400),
            previous: BTreeMap::new(),
            new: vec![rev(CaRole::Etcd, 9)],
        };
        let mut events: Vec<Event> = Vec::new();
        let announced = std::cell::RefCell::new(Vec::new());
        sign_and_write(
            &token,
            &|w| announced.borrow_mut().push(w.to_string()),
            &mut st,
            &cas,
            &r,
            now,
            &["cp1".to_string()],
            &mut events,
        )
        .unwrap();
        let kinds: Vec<&str> = events.iter().map(Event::kind).collect();
        assert_eq!(
            kinds,
            [
                "certificate_revoked",
                "crl_signed",
                "crl_signed",
                "crl_signed",
                "crl_signed"
            ]
        );
        assert_eq!(
            announced.borrow()[2],
            "Sign the etcd CA's CRL number 1 (1 revoked) with \"demo-etcd-ca-2026\" on the token"
        );
        let written: Vec<String> = st
            .written()
            .unwrap()
            .iter()
            .map(|(p, _, _)| p.clone())
            .collect();
        assert_eq!(
            written,
            [
                "crls/root-ca.crl",
                "crls/kubernetes-ca.crl",
                "crls/etcd-ca.crl",
                "nodes/cp1/etc/kubernetes/pki/etcd/crl.pem",
                "crls/front-proxy-ca.crl"
            ]
        );
        // Each verifies with its CA's key.
        for ca in &cas {
            let pem = std::fs::read(
                d.path()
                    .join(".out.staging")
                    .join(layout::crl_file(ca.role)),
            )
            .unwrap();
            let read = crl::read_pem(&pem).unwrap();
            crl::check(&read.der, None, &ca.key.spki, Some(ca.key.key_type)).unwrap();
            assert_eq!(read.entries.len(), usize::from(ca.role == CaRole::Etcd));
        }

        // A token that signs with another key than the CA's: refused after
        // signing (exit 4), nothing written.
        let mut wrong = cas.clone();
        wrong[2].key = cas[1].key.clone();
        wrong[2].key.spki = cas[2].key.spki.clone();
        let mut st = Staging::begin(&d.path().join("out2"), &[2; 32]).unwrap();
        let e = sign_and_write(
            &token,
            &|_| {},
            &mut st,
            &wrong[2..3],
            &r,
            now,
            &[],
            &mut events,
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 4, "{e}");
        assert!(
            e.to_string()
                .starts_with("the CRL of CN=etcd-ca failed its post-signing check"),
            "{e}"
        );
        assert!(st.written().unwrap().is_empty());
    }
}
