//! Certificate revocation lists (RFC 5280 §5): building the TBSCertList,
//! handing its bytes to a signer (the token), assembling, and checking what
//! came back exactly as a certificate is checked: the TBS signed is the one
//! built, and the signature verifies with the issuer's public key.
//!
//! Pure but for the signing callback.

use std::time::SystemTime;

use der::asn1::{OctetString, Uint};
use der::{Decode, DecodePem, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::crl::CrlNumber;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlReason};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

use super::{X509Error, assemble, name_text, rfc5280_time, signature_algorithm, verify_signature};
use crate::keytype::KeyType;

/// Why a certificate is revoked: RFC 5280 §5.3.1's reasons a CA of this
/// tool states (certificateHold and removeFromCRL are not offered: a
/// revocation here is final).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    PrivilegeWithdrawn,
}

impl Reason {
    pub const ALL: [Reason; 7] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::CaCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::PrivilegeWithdrawn,
    ];

    /// The plan's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "key-compromise",
            Reason::CaCompromise => "ca-compromise",
            Reason::AffiliationChanged => "affiliation-changed",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessation-of-operation",
            Reason::PrivilegeWithdrawn => "privilege-withdrawn",
        }
    }

    pub fn from_name(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.name() == s)
    }

    fn code(self) -> CrlReason {
        match self {
            Reason::Unspecified => CrlReason::Unspecified,
            Reason::KeyCompromise => CrlReason::KeyCompromise,
            Reason::CaCompromise => CrlReason::CaCompromise,
            Reason::AffiliationChanged => CrlReason::AffiliationChanged,
            Reason::Superseded => CrlReason::Superseded,
            Reason::CessationOfOperation => CrlReason::CessationOfOperation,
            Reason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        }
    }

    fn of_code(c: CrlReason) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == c)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A serial's digits without leading zero bytes: how entries and
/// certificates are compared, whatever sign byte their DER carries.
pub fn serial_digits(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[first..]
}

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The certificate's serial ([`serial_digits`]).
    pub serial: Vec<u8>,
    pub revoked_at: SystemTime,
    pub reason: Reason,
}

/// What to sign: the issuing CA and the list.
pub struct CrlTbs<'a> {
    pub issuer: &'a Name,
    /// The issuer's subjectKeyIdentifier, the CRL's authorityKeyIdentifier.
    pub issuer_ski: &'a [u8],
    pub issuer_key_type: KeyType,
    pub number: u64,
    pub this_update: SystemTime,
    pub next_update: SystemTime,
    pub entries: &'a [Entry],
}

/// A signed CRL and the TBS bytes that were signed.
#[derive(Debug, Clone)]
pub struct SignedCrl {
    pub crl: CertificateList,
    pub der: Vec<u8>,
}

fn enc(t: &CrlTbs<'_>) -> impl Fn(der::Error) -> X509Error {
    let subject = format!("the CRL of {}", name_text(t.issuer));
    move |source| X509Error::Encode {
        subject: subject.clone(),
        source,
    }
}

/// The DER of the TBSCertList: v2, the issuer's signature algorithm and
/// name, thisUpdate, nextUpdate, the entries (each with its reasonCode
/// unless unspecified, as RFC 5280 §5.3.1 recommends), then the
/// authorityKeyIdentifier and cRLNumber extensions.
pub fn build(t: &CrlTbs<'_>) -> Result<Vec<u8>, X509Error> {
    let e = enc(t);
    let mut revoked: Vec<RevokedCert> = Vec::with_capacity(t.entries.len());
    for entry in t.entries {
        let crl_entry_extensions = match entry.reason {
            Reason::Unspecified => None,
            r => Some(vec![
                super::profile::ext_value(false, &r.code()).map_err(&e)?,
            ]),
        };
        revoked.push(RevokedCert {
            serial_number: SerialNumber::new(&entry.serial).map_err(&e)?,
            revocation_date: rfc5280_time(entry.revoked_at).map_err(&e)?,
            crl_entry_extensions,
        });
    }
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(t.issuer_ski).map_err(&e)?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    let number = CrlNumber(Uint::new(&t.number.to_be_bytes()).map_err(&e)?);
    let tbs = TbsCertList {
        version: x509_cert::Version::V2,
        signature: signature_algorithm(t.issuer_key_type),
        issuer: t.issuer.clone(),
        this_update: rfc5280_time(t.this_update).map_err(&e)?,
        next_update: Some(rfc5280_time(t.next_update).map_err(&e)?),
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: Some(vec![
            super::profile::ext_value(false, &aki).map_err(&e)?,
            super::profile::ext_value(false, &number).map_err(&e)?,
        ]),
    };
    tbs.to_der().map_err(e)
}

/// Builds the TBS, has `sign` sign it, assembles the CRL around those very
/// bytes and checks it ([`check`]) before returning it.
pub fn issue<F, E>(
    t: &CrlTbs<'_>,
    issuer_spki: &SubjectPublicKeyInfoOwned,
    sign: F,
) -> Result<SignedCrl, X509Error>
where
    F: FnOnce(&[u8]) -> Result<Vec<u8>, E>,
    E: std::error::Error + Send + Sync + 'static,
{
    let tbs_der = build(t)?;
    let signature = sign(&tbs_der).map_err(|e| X509Error::Sign {
        subject: format!("the CRL of {}", name_text(t.issuer)),
        source: Box::new(e),
    })?;
    let der = assemble(
        &tbs_der,
        &signature_algorithm(t.issuer_key_type),
        &signature,
    )?;
    let crl =
        check(&der, Some(&tbs_der), issuer_spki, Some(t.issuer_key_type)).map_err(|what| {
            X509Error::CrlCheck {
                issuer: name_text(t.issuer),
                what,
            }
        })?;
    Ok(SignedCrl { crl, der })
}

/// The post-signing check (and `verify`'s): the CRL parses back, its TBS is
/// byte for byte `expected_tbs` (when given), its algorithm identifiers are
/// the issuer key's (when its type is known), and its signature verifies
/// with `issuer_spki`.
pub fn check(
    der: &[u8],
    expected_tbs: Option<&[u8]>,
    issuer_spki: &SubjectPublicKeyInfoOwned,
    issuer_key_type: Option<KeyType>,
) -> Result<CertificateList, String> {
    let crl = CertificateList::from_der(der).map_err(|e| format!("does not parse back: {e}"))?;
    let tbs = super::signed_tbs(der)?;
    if expected_tbs.is_some_and(|want| want != tbs) {
        return Err("the signed TBS differs from the one built".into());
    }
    if issuer_key_type.is_some_and(|k| crl.signature_algorithm != signature_algorithm(k))
        || crl.tbs_cert_list.signature != crl.signature_algorithm
    {
        return Err("signature algorithm identifiers do not match the issuer key".into());
    }
    let sig = crl
        .signature
        .as_bytes()
        .ok_or("signature has unused bits")?;
    verify_signature(issuer_spki, &crl.signature_algorithm, tbs, sig)?;
    Ok(crl)
}

/// What a CRL says, read back (from the previous output, or by `verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub issuer: Name,
    pub number: u64,
    pub this_update: SystemTime,
    pub next_update: Option<SystemTime>,
    pub entries: Vec<Entry>,
    pub der: Vec<u8>,
}

/// Reads one PEM CRL ("X509 CRL"); Err says what is wrong with it.
pub fn read_pem(pem: &[u8]) -> Result<Read, String> {
    let crl = CertificateList::from_pem(pem).map_err(|e| format!("not a PEM CRL ({e})"))?;
    let der = crl
        .to_der()
        .map_err(|e| format!("does not re-encode ({e})"))?;
    read(&crl, der)
}

/// What `crl` says (its DER given beside it).
pub fn read(crl: &CertificateList, der: Vec<u8>) -> Result<Read, String> {
    let tbs = &crl.tbs_cert_list;
    let mut number = None;
    for ext in tbs.crl_extensions.iter().flatten() {
        if ext.extn_id == const_oid::db::rfc5280::ID_CE_CRL_NUMBER {
            let n = Uint::from_der(ext.extn_value.as_bytes())
                .map_err(|e| format!("its cRLNumber does not parse ({e})"))?;
            let b = n.as_bytes();
            if b.len() > 8 {
                return Err("its cRLNumber is beyond 2^64".into());
            }
            let mut buf = [0u8; 8];
            buf[8 - b.len()..].copy_from_slice(b);
            number = Some(u64::from_be_bytes(buf));
        }
    }
    let number = number.ok_or("it has no cRLNumber")?;
    let mut entries = Vec::new();
    for rc in tbs.revoked_certificates.iter().flatten() {
        let mut reason = Reason::Unspecified;
        for ext in rc.crl_entry_extensions.iter().flatten() {
            if ext.extn_id == const_oid::db::rfc5280::ID_CE_CRL_REASONS {
                let code = CrlReason::from_der(ext.extn_value.as_bytes())
                    .map_err(|e| format!("a reasonCode does not parse ({e})"))?;
                reason = Reason::of_code(code)
                    .ok_or_else(|| format!("a reasonCode this tool never writes ({code:?})"))?;
            }
        }
        entries.push(Entry {
            serial: serial_digits(rc.serial_number.as_bytes()).to_vec(),
            revoked_at: rc.revocation_date.to_system_time(),
            reason,
        });
    }
    Ok(Read {
        issuer: tbs.issuer.clone(),
        number,
        this_update: tbs.this_update.to_system_time(),
        next_update: tbs.next_update.map(|t| t.to_system_time()),
        entries,
        der,
    })
}

/// PEM of a CRL, as every CRL file holds it.
pub fn to_pem(der: &[u8]) -> String {
    pem_rfc7468::encode_string("X509 CRL", pem_rfc7468::LineEnding::LF, der).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::Duration;

    use super::*;

    fn p256() -> (p256::ecdsa::SigningKey, SubjectPublicKeyInfoOwned) {
        use spki::EncodePublicKey;
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let spki = SubjectPublicKeyInfoOwned::from_der(
            key.verifying_key().to_public_key_der().unwrap().as_bytes(),
        )
        .unwrap();
        (key, spki)
    }

    fn sign_with(
        key: &p256::ecdsa::SigningKey,
    ) -> impl FnOnce(&[u8]) -> Result<Vec<u8>, std::io::Error> + '_ {
        |tbs| {
            use signature::Signer;
            let sig: p256::ecdsa::Signature = key.sign(tbs);
            Ok(sig.to_der().as_bytes().to_vec())
        }
    }

    fn at(s: u64) -> SystemTime {
        std::time::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                serial: vec![0x01, 0x02],
                revoked_at: at(1_800_000_000),
                reason: Reason::KeyCompromise,
            },
            Entry {
                serial: vec![0x80, 0x01],
                revoked_at: at(1_800_000_100),
                reason: Reason::Unspecified,
            },
        ]
    }

    #[test]
    fn a_signed_crl_reads_back_as_built() {
        let (key, spki) = p256();
        let issuer = Name::from_str("CN=etcd-ca").unwrap();
        let es = entries();
        let t = CrlTbs {
            issuer: &issuer,
            issuer_ski: &[9; 20],
            issuer_key_type: KeyType::EcdsaP256,
            number: 300,
            this_update: at(1_800_000_200),
            next_update: at(1_802_592_200),
            entries: &es,
        };
        let signed = issue(&t, &spki, sign_with(&key)).unwrap();
        let back = read_pem(to_pem(&signed.der).as_bytes()).unwrap();
        assert_eq!(back.number, 300);
        assert_eq!(back.issuer, issuer);
        assert_eq!(back.entries, es);
        assert_eq!(back.this_update, at(1_800_000_200));
        assert_eq!(back.next_update, Some(at(1_802_592_200)));
        // The AKI is the issuer's SKI; an entry without a reason has no extension.
        let tbs = &signed.crl.tbs_cert_list;
        let exts = tbs.crl_extensions.as_ref().unwrap();
        assert_eq!(
            exts[0].extn_id,
            const_oid::db::rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER
        );
        let revoked = tbs.revoked_certificates.as_ref().unwrap();
        assert!(revoked[1].crl_entry_extensions.is_none());
        assert_eq!(tbs.version, x509_cert::Version::V2);
    }

    #[test]
    fn an_empty_crl_has_no_revoked_list() {
        let (key, spki) = p256();
        let issuer = Name::from_str("CN=kubernetes").unwrap();
        let t = CrlTbs {
            issuer: &issuer,
            issuer_ski: &[1; 20],
            issuer_key_type: KeyType::EcdsaP256,
            number: 1,
            this_update: at(1_800_000_000),
            next_update: at(1_800_086_400),
            entries: &[],
        };
        let signed = issue(&t, &spki, sign_with(&key)).unwrap();
        assert!(signed.crl.tbs_cert_list.revoked_certificates.is_none());
        assert!(
            read(&signed.crl, signed.der.clone())
                .unwrap()
                .entries
                .is_empty()
        );
    }

    #[test]
    fn a_signature_by_another_key_or_over_other_bytes_is_refused() {
        let (_, spki) = p256();
        let other = p256::ecdsa::SigningKey::from_slice(&[8u8; 32]).unwrap();
        let issuer = Name::from_str("CN=etcd-ca").unwrap();
        let t = CrlTbs {
            issuer: &issuer,
            issuer_ski: &[9; 20],
            issuer_key_type: KeyType::EcdsaP256,
            number: 2,
            this_update: at(1_800_000_000),
            next_update: at(1_800_086_400),
            entries: &[],
        };
        let err = issue(&t, &spki, sign_with(&other)).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "the CRL of CN=etcd-ca failed its post-signing check: signature does not verify"
            ),
            "{err}"
        );
        // A signer that signs some other TBS: its CRL is refused as well.
        let (key, spki) = p256();
        let err = issue(&t, &spki, |_: &[u8]| sign_with(&key)(b"other bytes")).unwrap_err();
        assert!(
            err.to_string().contains("signature does not verify"),
            "{err}"
        );
    }

    #[test]
    fn reasons_round_trip_by_name() {
        for r in Reason::ALL {
            assert_eq!(Reason::from_name(r.name()), Some(r));
            assert_eq!(Reason::of_code(r.code()), Some(r));
        }
        assert_eq!(Reason::from_name("certificate-hold"), None);
    }
}
