//! Certificates: building the TBS from a profile, handing its bytes to a
//! signer (the token), assembling, and verifying what came back.
//!
//! Pure but for the signing callback: no token, file or clock access here.
//! Nothing in this module ever sees a CA private key; it only sees the bytes
//! the token returned and checks them.

pub mod crl;
pub mod profile;
pub mod san;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::asn1::BitString;
use der::referenced::OwnedToRef;
use der::{Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::certificate::{Certificate, Version};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::keytype::{Hash, KeyType};
pub use profile::CertProfile;

/// Errors of building or checking a certificate. The signer's own error is
/// kept as the source, so a CKR code survives (the builder's error would lose it).
#[derive(Debug, thiserror::Error)]
pub enum X509Error {
    #[error("cannot encode the certificate for {subject}: {source}")]
    Encode {
        subject: String,
        #[source]
        source: der::Error,
    },
    #[error("{0}")]
    Der(#[from] der::Error),
    #[error("signing the certificate for {subject} failed")]
    Sign {
        subject: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the certificate for {subject} failed its post-signing check: {what}")]
    Check { subject: String, what: String },
    #[error("the CRL of {issuer} failed its post-signing check: {what}")]
    CrlCheck { issuer: String, what: String },
}

/// A signed certificate and the TBS bytes that were signed.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: Certificate,
    pub der: Vec<u8>,
    pub tbs_der: Vec<u8>,
}

/// RFC 5758 §3.2 (ECDSA: no parameters) and RFC 4055 §5 (RSA: NULL parameters).
pub fn signature_algorithm(key_type: KeyType) -> AlgorithmIdentifierOwned {
    use const_oid::db::rfc5912;
    match (key_type.is_rsa(), key_type.hash()) {
        (true, _) => AlgorithmIdentifierOwned {
            oid: rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        (false, Hash::Sha256) => AlgorithmIdentifierOwned {
            oid: rfc5912::ECDSA_WITH_SHA_256,
            parameters: None,
        },
        (false, Hash::Sha384) => AlgorithmIdentifierOwned {
            oid: rfc5912::ECDSA_WITH_SHA_384,
            parameters: None,
        },
    }
}

/// What to sign: the profile plus the fields a profile does not decide.
#[derive(Clone, Copy)]
pub struct ToBeSigned<'a> {
    pub profile: &'a CertProfile,
    pub serial: &'a [u8],
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub subject_spki: &'a SubjectPublicKeyInfoOwned,
    pub issuer_spki: &'a SubjectPublicKeyInfoOwned,
    pub issuer_key_type: KeyType,
}

/// Builds the TBS, has `sign` produce the signature over its DER, assembles the
/// certificate around those very bytes and checks it (`check_issued`) before
/// returning it.
pub fn issue<F, E>(tbs: ToBeSigned<'_>, sign: F) -> Result<Issued, X509Error>
where
    F: FnOnce(&[u8]) -> Result<Vec<u8>, E>,
    E: std::error::Error + Send + Sync + 'static,
{
    let tbs_der = build(&tbs)?;
    let signature = sign(&tbs_der).map_err(|e| sign_failed(&tbs, e))?;
    finish(&tbs, tbs_der, &signature)
}

/// The error of a signer that failed on `tbs`.
pub fn sign_failed<E>(tbs: &ToBeSigned<'_>, e: E) -> X509Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    X509Error::Sign {
        subject: name_text(&tbs.profile.subject),
        source: Box::new(e),
    }
}

/// The DER of the TBS certificate: the bytes to have signed. [`issue`]'s
/// first half, for callers that sign several TBSs in a row.
///
/// RFC 5280 §4.1's fields, each encoded by its x509-cert or spki type and
/// written in order under one SEQUENCE header: byte for byte what
/// x509-cert's `CertificateBuilder` makes of the same profile (tests hold
/// the two equal), without the builder's copies of the profile, the names
/// and both keys, nor its encoding and parsing back of the issuer's key:
/// together 5 µs of every leaf, four times the encoding itself (1.3 µs)
/// (measured in docs/performance.md).
pub fn build(tbs: &ToBeSigned<'_>) -> Result<Vec<u8>, X509Error> {
    // The subject as text only for an error: making it costs a leaf a few µs.
    let enc = |source| X509Error::Encode {
        subject: name_text(&tbs.profile.subject),
        source,
    };
    let serial = SerialNumber::new(tbs.serial).map_err(enc)?;
    let validity = Validity::new(
        rfc5280_time(tbs.not_before).map_err(enc)?,
        rfc5280_time(tbs.not_after).map_err(enc)?,
    );
    let extensions = tbs
        .profile
        .extensions(tbs.subject_spki.owned_to_ref())
        .map_err(enc)?;
    tbs_der(&TbsFields {
        serial: &serial,
        signature: &signature_algorithm(tbs.issuer_key_type),
        issuer: &tbs.profile.issuer,
        validity: &validity,
        subject: &tbs.profile.subject,
        spki: tbs.subject_spki,
        extensions: &extensions,
    })
    .map_err(enc)
}

/// A TBSCertificate's fields, by reference.
struct TbsFields<'a> {
    serial: &'a SerialNumber,
    signature: &'a AlgorithmIdentifierOwned,
    issuer: &'a x509_cert::name::Name,
    validity: &'a Validity,
    subject: &'a x509_cert::name::Name,
    spki: &'a SubjectPublicKeyInfoOwned,
    extensions: &'a Vec<x509_cert::ext::Extension>,
}

/// `TBSCertificate ::= SEQUENCE { version [0] EXPLICIT, serialNumber,
/// signature, issuer, validity, subject, subjectPublicKeyInfo, extensions
/// [3] EXPLICIT }` (RFC 5280 §4.1). A certificate with extensions is v3;
/// one without would be v1 with the version left out (its DEFAULT), as
/// x509-cert writes it. No unique identifiers (§4.1.2.8: CAs MUST NOT).
fn tbs_der(f: &TbsFields<'_>) -> der::Result<Vec<u8>> {
    use der::asn1::ContextSpecificRef;
    use der::{Header, Length, Tag, TagMode, TagNumber};
    let version = (!f.extensions.is_empty()).then_some(ContextSpecificRef {
        tag_number: TagNumber(0),
        tag_mode: TagMode::Explicit,
        value: &Version::V3,
    });
    let extensions = (!f.extensions.is_empty()).then_some(ContextSpecificRef {
        tag_number: TagNumber(3),
        tag_mode: TagMode::Explicit,
        value: f.extensions,
    });
    let len = [
        version.encoded_len()?,
        f.serial.encoded_len()?,
        f.signature.encoded_len()?,
        f.issuer.encoded_len()?,
        f.validity.encoded_len()?,
        f.subject.encoded_len()?,
        f.spki.encoded_len()?,
        extensions.encoded_len()?,
    ]
    .into_iter()
    .try_fold(Length::ZERO, |sum, l| sum + l)?;
    let header = Header::new(Tag::Sequence, len);
    let mut out = Vec::with_capacity(usize::try_from((header.encoded_len()? + len)?)?);
    header.encode(&mut out)?;
    version.encode(&mut out)?;
    f.serial.encode(&mut out)?;
    f.signature.encode(&mut out)?;
    f.issuer.encode(&mut out)?;
    f.validity.encode(&mut out)?;
    f.subject.encode(&mut out)?;
    f.spki.encode(&mut out)?;
    extensions.encode(&mut out)?;
    Ok(out)
}

/// [`issue`]'s second half: the certificate around `tbs_der` (built by
/// [`build`] from `tbs`) and `signature`, checked before it is returned.
pub fn finish(
    tbs: &ToBeSigned<'_>,
    tbs_der: Vec<u8>,
    signature: &[u8],
) -> Result<Issued, X509Error> {
    let der = assemble(
        &tbs_der,
        &signature_algorithm(tbs.issuer_key_type),
        signature,
    )?;
    let cert = check_issued(
        &der,
        &tbs_der,
        tbs.subject_spki,
        tbs.issuer_spki,
        tbs.issuer_key_type,
    )
    .map_err(|what| X509Error::Check {
        subject: name_text(&tbs.profile.subject),
        what,
    })?;
    Ok(Issued { cert, der, tbs_der })
}

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
/// signatureValue }` (RFC 5280 §4.1) around the TBS bytes exactly as they
/// were signed: nothing between the signature and the file is re-encoded.
pub(crate) fn assemble(
    tbs_der: &[u8],
    alg: &AlgorithmIdentifierOwned,
    signature: &[u8],
) -> Result<Vec<u8>, der::Error> {
    let alg = alg.to_der()?;
    let sig = BitString::from_bytes(signature)?.to_der()?;
    let len = der::Length::try_from(tbs_der.len() + alg.len() + sig.len())?;
    let header = der::Header::new(der::Tag::Sequence, len).to_der()?;
    Ok([header.as_slice(), tbs_der, &alg, &sig].concat())
}

/// The TBS of a signed structure (a certificate, a CRL) as it lies in its
/// DER: the first of the outer SEQUENCE's three elements (TBS, algorithm,
/// signature), for the caller to compare with the TBS it meant to sign.
pub(crate) fn signed_tbs(der: &[u8]) -> Result<&[u8], String> {
    use der::Reader;
    der::SliceReader::new(der)
        .and_then(|mut r| {
            r.sequence(|r| {
                let tbs = r.tlv_bytes()?;
                r.tlv_bytes()?;
                r.tlv_bytes()?;
                Ok(tbs)
            })
        })
        .map_err(|e: der::Error| format!("does not parse back: {e}"))
}

/// The post-signing check: parse the certificate back from its
/// DER, check that its TBS is, byte for byte, the one we meant to sign,
/// verify the signature over those bytes in software against the issuer's
/// public key read from the token, and check that the certified key is the
/// subject's key. Returns the parsed certificate.
pub fn check_issued(
    der: &[u8],
    expected_tbs: &[u8],
    subject_spki: &SubjectPublicKeyInfoOwned,
    issuer_spki: &SubjectPublicKeyInfoOwned,
    issuer_key_type: KeyType,
) -> Result<Certificate, String> {
    let cert = Certificate::from_der(der).map_err(|e| format!("does not parse back: {e}"))?;
    let tbs = signed_tbs(der)?;
    if tbs != expected_tbs {
        return Err("the signed TBS differs from the one built".into());
    }
    if cert.signature_algorithm() != &signature_algorithm(issuer_key_type)
        || cert.tbs_certificate().signature() != cert.signature_algorithm()
    {
        return Err("signature algorithm identifiers do not match the issuer key".into());
    }
    if cert.tbs_certificate().subject_public_key_info() != subject_spki {
        return Err("the certified public key is not the subject's key".into());
    }
    let sig = cert
        .signature()
        .as_bytes()
        .ok_or("signature has unused bits")?;
    verify_signature(issuer_spki, cert.signature_algorithm(), tbs, sig)?;
    Ok(cert)
}

/// Verifies `sig` over `msg` with `spki`, in software. Accepts exactly the
/// algorithms this tool issues with.
pub fn verify_signature(
    spki: &SubjectPublicKeyInfoOwned,
    alg: &AlgorithmIdentifierOwned,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    use const_oid::db::{rfc5912, rfc5912::SECP_256_R_1, rfc5912::SECP_384_R_1};
    use signature::Verifier;
    let bad = |e: signature::Error| {
        format!("signature does not verify with the issuer's public key ({e})")
    };
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<der::oid::ObjectIdentifier>().ok());
    match (spki.algorithm.oid, alg.oid) {
        // ECDSA through AWS-LC: an implementation independent of the
        // token's, and about five times faster than the RustCrypto one,
        // which matters when every leaf of a 10,000-node bundle is verified
        // (docs/performance.md).
        (rfc5912::ID_EC_PUBLIC_KEY, rfc5912::ECDSA_WITH_SHA_256) if curve == Some(SECP_256_R_1) => {
            ecdsa_verify(Parsed::P256, spki, msg, sig)
        }
        (rfc5912::ID_EC_PUBLIC_KEY, rfc5912::ECDSA_WITH_SHA_384) if curve == Some(SECP_384_R_1) => {
            ecdsa_verify(Parsed::P384, spki, msg, sig)
        }
        (rfc5912::RSA_ENCRYPTION, rfc5912::SHA_256_WITH_RSA_ENCRYPTION) => {
            // AWS-LC first: about five times faster than the rsa crate for
            // an RSA-3072 issuer (every leaf is verified). It takes
            // 2048 to 8192-bit keys only; anything it refuses gets the rsa
            // crate's verdict and message.
            if let Some(pkcs1) = spki.subject_public_key.as_bytes()
                && aws_lc_verify(Parsed::Rsa, pkcs1, msg, sig) == Some(true)
            {
                return Ok(());
            }
            let key = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::try_from(spki.owned_to_ref())
                .map_err(|e| e.to_string())?;
            let sig = rsa::pkcs1v15::Signature::try_from(sig)
                .map_err(|e| format!("bad RSA signature: {e}"))?;
            key.verify(msg, &sig).map_err(bad)
        }
        (k, a) => Err(format!(
            "unsupported key/signature algorithm pair {k} / {a}"
        )),
    }
}

/// An ECDSA signature (DER Ecdsa-Sig-Value) over `msg` by the uncompressed
/// point of `spki`; AWS-LC checks the point is on the curve.
fn ecdsa_verify(
    alg: Parsed,
    spki: &SubjectPublicKeyInfoOwned,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or("the public key has unused bits")?;
    match aws_lc_verify(alg, point, msg, sig) {
        Some(true) => Ok(()),
        Some(false) => Err("signature does not verify with the issuer's public key".into()),
        None => Err("the issuer's public key is not a valid point of its curve".into()),
    }
}

/// Issuer keys each thread keeps parsed; the oldest goes first.
const KEPT_KEYS: usize = 8;

/// The AWS-LC verification algorithms used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parsed {
    P256,
    P384,
    Rsa,
}

impl Parsed {
    fn algorithm(self) -> &'static dyn aws_lc_rs::signature::VerificationAlgorithm {
        use aws_lc_rs::signature as s;
        match self {
            Parsed::P256 => &s::ECDSA_P256_SHA256_ASN1,
            Parsed::P384 => &s::ECDSA_P384_SHA384_ASN1,
            Parsed::Rsa => &s::RSA_PKCS1_2048_8192_SHA256,
        }
    }
}

/// AWS-LC's verdict on `sig` over `msg` by `key` (an uncompressed point, or
/// a PKCS #1 RSAPublicKey); None if AWS-LC rejects the key itself. Each
/// thread keeps the keys it has parsed (a run's CAs, a few): parsing the
/// issuer's key again for every leaf was 4 of the 52 µs of its check.
fn aws_lc_verify(alg: Parsed, key: &[u8], msg: &[u8], sig: &[u8]) -> Option<bool> {
    use aws_lc_rs::signature::ParsedPublicKey;
    use std::cell::RefCell;

    thread_local! {
        static KEYS: RefCell<Vec<(Parsed, ParsedPublicKey)>> = const { RefCell::new(Vec::new()) };
    }
    KEYS.with_borrow_mut(|keys| {
        let at = match keys
            .iter()
            .position(|(a, k)| *a == alg && k.as_ref() == key)
        {
            Some(at) => at,
            None => {
                let parsed = ParsedPublicKey::new(alg.algorithm(), key).ok()?;
                if keys.len() == KEPT_KEYS {
                    keys.remove(0);
                }
                keys.push((alg, parsed));
                keys.len() - 1
            }
        };
        Some(keys[at].1.verify_sig(msg, sig).is_ok())
    })
}

/// `name` as RFC 4514 text, exactly as x509-cert's `Display` writes it, but
/// for the attribute types a ceremony writes without that `Display`'s scan of
/// the whole OID database per attribute (a tenth of a leaf's host time when
/// every leaf's subject and issuer go to the audit record). Any other
/// attribute is written by x509-cert itself.
pub fn name_text(name: &x509_cert::name::Name) -> String {
    use const_oid::db::rfc4519;
    use der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
    use der::{Tag, Tagged};
    use std::fmt::Write;
    // x509-cert's names: the shortest of the database's, upper-cased.
    let short = |oid| match oid {
        rfc4519::CN => Some("CN"),
        rfc4519::O => Some("O"),
        rfc4519::OU => Some("OU"),
        rfc4519::C => Some("C"),
        rfc4519::L => Some("L"),
        rfc4519::ST => Some("ST"),
        _ => None,
    };
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let v = &atv.value;
            let text = match v.tag() {
                Tag::PrintableString => PrintableStringRef::try_from(v).ok().map(|s| s.as_str()),
                Tag::Utf8String => Utf8StringRef::try_from(v).ok().map(|s| s.as_str()),
                Tag::Ia5String => Ia5StringRef::try_from(v).ok().map(|s| s.as_str()),
                Tag::TeletexString => TeletexStringRef::try_from(v).ok().map(|s| s.as_str()),
                _ => None,
            };
            let (Some(key), Some(text)) = (short(atv.oid), text) else {
                let _ = write!(out, "{atv}");
                continue;
            };
            out.push_str(key);
            out.push('=');
            let mut chars = text.char_indices().peekable();
            while let Some((k, c)) = chars.next() {
                match c {
                    '#' if k == 0 => out.push_str("\\#"),
                    ' ' if k == 0 || chars.peek().is_none() => out.push_str("\\ "),
                    '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                        out.push('\\');
                        out.push(c);
                    }
                    '\x00'..='\x1f' | '\x7f' => {
                        let _ = write!(out, "\\{:02x}", c as u8);
                    }
                    _ => out.push(c),
                }
            }
        }
    }
    out
}

/// Whole seconds only: X.509 times have no fractions, and a fraction would make
/// the TBS we build differ from the one that parses back.
pub fn truncate(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5), in
/// whole seconds.
fn rfc5280_time(t: SystemTime) -> Result<Time, der::Error> {
    use der::asn1::{GeneralizedTime, UtcTime};
    let dt = der::DateTime::from_unix_duration(
        truncate(t).duration_since(UNIX_EPOCH).unwrap_or_default(),
    )?;
    Ok(if dt.year() <= UtcTime::MAX_YEAR {
        Time::UtcTime(UtcTime::from_date_time(dt)?)
    } else {
        Time::GeneralTime(GeneralizedTime::from_date_time(dt))
    })
}

/// SHA-256 of a certificate's DER, the fingerprint witnesses compare.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// PEM of a certificate, as every file of the bundle holds it.
pub fn to_pem(der: &[u8]) -> String {
    pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, der).unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::str::FromStr;
    use std::time::{Duration, SystemTime};

    use der::{Decode, Encode};
    use spki::{DynSignatureAlgorithmIdentifier, EncodePublicKey, SubjectPublicKeyInfoOwned};
    use x509_cert::ext::pkix::KeyUsages;
    use x509_cert::name::Name;

    use super::*;

    /// The issuer's side, as x509-cert's builder wants it.
    struct IssuerKey {
        spki: SubjectPublicKeyInfoOwned,
        key_type: KeyType,
    }

    #[derive(Clone)]
    struct SpkiKey(SubjectPublicKeyInfoOwned);

    impl EncodePublicKey for SpkiKey {
        fn to_public_key_der(&self) -> spki::Result<der::Document> {
            Ok(der::Document::encode_msg(&self.0)?)
        }
    }

    impl signature::Keypair for IssuerKey {
        type VerifyingKey = SpkiKey;
        fn verifying_key(&self) -> SpkiKey {
            SpkiKey(self.spki.clone())
        }
    }

    impl DynSignatureAlgorithmIdentifier for IssuerKey {
        fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
            Ok(signature_algorithm(self.key_type))
        }
    }

    /// The TBS as x509-cert's `CertificateBuilder` makes it from the same
    /// profile (`CertProfile` is its `BuilderProfile`): what `build` must
    /// write, byte for byte.
    pub(crate) fn build_with_builder(tbs: &ToBeSigned<'_>) -> Vec<u8> {
        use x509_cert::builder::{Builder, CertificateBuilder};
        // GeneralizedTime throughout: the builder picks UTCTime itself
        // through 2049.
        let time = |t: SystemTime| {
            Time::GeneralTime(der::asn1::GeneralizedTime::from_date_time(
                der::DateTime::from_unix_duration(t.duration_since(UNIX_EPOCH).unwrap()).unwrap(),
            ))
        };
        let issuer = IssuerKey {
            spki: tbs.issuer_spki.clone(),
            key_type: tbs.issuer_key_type,
        };
        CertificateBuilder::new(
            tbs.profile.clone(),
            SerialNumber::new(tbs.serial).unwrap(),
            Validity::new(time(tbs.not_before), time(tbs.not_after)),
            tbs.subject_spki.clone(),
        )
        .unwrap()
        .finalize(&issuer)
        .unwrap()
    }

    /// `build` writes what x509-cert's builder writes: for a root, an
    /// intermediate, server and client leaves (DNS, IPv4 and IPv6 SANs,
    /// several organizations), an RSA leaf's key usage; under P-256, P-384
    /// and RSA issuers; across UTCTime's end (2049 to 2050); with the
    /// serials the token's random makes, and one that needs a zero octet.
    #[test]
    fn build_is_byte_for_byte_what_x509_certs_builder_makes() {
        use super::san::San;
        let (ca, leaf_spki, client) = fixture();
        let ca_spki = spki_of(&ca);
        let root = Name::from_str("CN=Ceremony Root CA,O=Example\\, Inc.,C=CH").unwrap();
        let ca = |role, subject: &Name| crate::plan::CaSpec {
            role,
            label: "ca".into(),
            subject: subject.clone(),
            key: KeyType::EcdsaP256,
            lifetime: crate::plan::Lifetime::For(Duration::from_secs(86_400)),
        };
        let self_signed = crate::profile::ca_profile(&ca(crate::plan::CaRole::Root, &root), None);
        let intermediate = crate::profile::ca_profile(
            &ca(
                crate::plan::CaRole::Kubernetes,
                &Name::from_str("CN=kubernetes-ca").unwrap(),
            ),
            Some((&root, &[9; 20])),
        );
        let server = CertProfile {
            subject: Name::from_str("CN=kube-apiserver").unwrap(),
            ext_key_usage: vec![profile::ID_KP_SERVER_AUTH],
            sans: vec![
                San::Dns("kubernetes.default.svc.cluster.local".into()),
                San::Ip("10.96.0.1".parse().unwrap()),
                San::Ip("fd00::1".parse().unwrap()),
            ],
            ..client.clone()
        };
        let mut rsa_leaf = client.clone();
        rsa_leaf.subject = Name::from_str(
            "CN=kube-apiserver-kubelet-client,O=kubeadm:cluster-admins,O=system:masters",
        )
        .unwrap();
        rsa_leaf.key_usage.push(KeyUsages::KeyEncipherment);
        rsa_leaf.ext_key_usage.push(profile::ID_KP_SERVER_AUTH);
        let profiles = [self_signed, intermediate, server, client, rsa_leaf];
        let at = |s: &str| UNIX_EPOCH + Duration::from_secs(s.parse().unwrap());
        let times = [
            (truncate(SystemTime::now()), at("1924991999")), // 2030-12-31
            (at("2524607999"), at("2524608000")),            // 2049-12-31T23:59:59, 2050-01-01
            (at("2556143999"), at("2587679999")),            // 2050 to 2051
        ];
        let mut n = 0;
        // The issuer's key type decides the signature algorithm; its key
        // itself is not in the TBS.
        for issuer_type in [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa2048] {
            for profile in &profiles {
                for (not_before, not_after) in times {
                    for serial in [
                        vec![0x42u8; 20],
                        crate::token::serial_from(&[0xff; 20]),
                        crate::token::serial_from(&[0x80; 20]),
                        // Positive only with a leading zero octet.
                        vec![0x80; 8],
                    ] {
                        let tbs = ToBeSigned {
                            profile,
                            serial: &serial,
                            not_before,
                            not_after,
                            subject_spki: &leaf_spki,
                            issuer_spki: &ca_spki,
                            issuer_key_type: issuer_type,
                        };
                        assert_eq!(
                            build(&tbs).unwrap_or_else(|e| panic!("{serial:x?}: {e}")),
                            build_with_builder(&tbs),
                            "{issuer_type} {:?}",
                            profile.subject
                        );
                        n += 1;
                    }
                }
            }
        }
        assert_eq!(n, 3 * 5 * 3 * 4);
    }

    fn spki_of(k: &p256::ecdsa::SigningKey) -> SubjectPublicKeyInfoOwned {
        let der = k.verifying_key().to_public_key_der().unwrap();
        SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).unwrap()
    }

    fn sign(k: &p256::ecdsa::SigningKey, msg: &[u8]) -> Result<Vec<u8>, std::io::Error> {
        use signature::Signer;
        let s: p256::ecdsa::Signature = k.sign(msg);
        Ok(s.to_der().as_bytes().to_vec())
    }

    #[test]
    fn kept_issuer_keys_verify_only_their_own_signatures() {
        use p256::elliptic_curve::Generate;
        let alg = AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::ECDSA_WITH_SHA_256,
            parameters: None,
        };
        let keys: Vec<_> = (0..KEPT_KEYS + 2)
            .map(|_| p256::ecdsa::SigningKey::from(p256::SecretKey::try_generate().unwrap()))
            .collect();
        // More keys than a thread keeps, each used twice, in turn: the
        // first round parses them all, the second finds or reparses them.
        for round in 0..2 {
            for (i, k) in keys.iter().enumerate() {
                let msg = format!("tbs {i} {round}");
                let sig = sign(k, msg.as_bytes()).unwrap();
                let other = &keys[(i + 1) % keys.len()];
                assert!(verify_signature(&spki_of(k), &alg, msg.as_bytes(), &sig).is_ok());
                let e = verify_signature(&spki_of(other), &alg, msg.as_bytes(), &sig).unwrap_err();
                assert!(e.contains("does not verify"), "{e}");
                assert!(verify_signature(&spki_of(k), &alg, b"another tbs", &sig).is_err());
            }
        }
        // A key that is not a point of the curve is refused as such.
        let mut bad = spki_of(&keys[0]);
        let mut point = bad.subject_public_key.raw_bytes().to_vec();
        point[64] ^= 1;
        bad.subject_public_key = der::asn1::BitString::from_bytes(&point).unwrap();
        let sig = sign(&keys[0], b"m").unwrap();
        let e = verify_signature(&bad, &alg, b"m", &sig).unwrap_err();
        assert!(e.contains("not a valid point"), "{e}");
    }

    /// A leaf issued by a software P-256 "CA", and the pieces to redo it.
    fn fixture() -> (
        p256::ecdsa::SigningKey,
        SubjectPublicKeyInfoOwned,
        CertProfile,
    ) {
        use p256::elliptic_curve::Generate;
        let ca = p256::ecdsa::SigningKey::from(p256::SecretKey::try_generate().unwrap());
        let leaf = p256::ecdsa::SigningKey::from(p256::SecretKey::try_generate().unwrap());
        let profile = CertProfile {
            subject: Name::from_str("CN=system:node:w1,O=system:nodes").unwrap(),
            issuer: Name::from_str("CN=kubernetes").unwrap(),
            ca_path_len: None,
            key_usage: vec![KeyUsages::DigitalSignature],
            ext_key_usage: vec![profile::ID_KP_CLIENT_AUTH],
            sans: Vec::new(),
            authority_key_id: Some(vec![7; 20]),
            subject_key_id: false,
        };
        (ca, spki_of(&leaf), profile)
    }

    /// The certificate is assembled around the very TBS bytes that were
    /// signed, and its DER is exactly x509-cert's own encoding of it; the
    /// check refuses a signature by another key, a damaged one, and a
    /// certificate whose TBS is not the one built.
    #[test]
    fn issued_certificates_are_the_signed_bytes_and_checked() {
        let (ca, leaf_spki, profile) = fixture();
        let ca_spki = spki_of(&ca);
        let now = truncate(SystemTime::now());
        let tbs = ToBeSigned {
            profile: &profile,
            serial: &[0x42; 20],
            not_before: now - Duration::from_secs(300),
            not_after: now + Duration::from_secs(86_400),
            subject_spki: &leaf_spki,
            issuer_spki: &ca_spki,
            issuer_key_type: KeyType::EcdsaP256,
        };
        let issued = issue(tbs, |m| sign(&ca, m)).unwrap();
        assert_eq!(issued.cert.to_der().unwrap(), issued.der);
        assert_eq!(
            issued.cert.tbs_certificate().to_der().unwrap(),
            issued.tbs_der
        );
        assert_eq!(
            name_text(issued.cert.tbs_certificate().subject()),
            "CN=system:node:w1,O=system:nodes"
        );

        // Signed by another key: refused, naming the subject.
        let (other, _, _) = fixture();
        let tbs_der = build(&tbs).unwrap();
        let bad = sign(&other, &tbs_der).unwrap();
        let e = finish(&tbs, tbs_der.clone(), &bad).unwrap_err().to_string();
        assert!(
            e.contains("CN=system:node:w1") && e.contains("does not verify"),
            "{e}"
        );
        // A damaged signature: refused.
        let mut sig = sign(&ca, &tbs_der).unwrap();
        let last = sig.len() - 1;
        sig[last] ^= 1;
        assert!(finish(&tbs, tbs_der.clone(), &sig).is_err());
        // A good signature over a TBS other than the one built: refused
        // before the signature is even looked at.
        let good = sign(&ca, &tbs_der).unwrap();
        let der = assemble(&tbs_der, &signature_algorithm(KeyType::EcdsaP256), &good).unwrap();
        let mut other_tbs = tbs_der.clone();
        let at = other_tbs.len() - 1;
        other_tbs[at] ^= 1;
        let e =
            check_issued(&der, &other_tbs, &leaf_spki, &ca_spki, KeyType::EcdsaP256).unwrap_err();
        assert_eq!(e, "the signed TBS differs from the one built");
        // The certified key must be the subject's.
        let e = check_issued(&der, &tbs_der, &ca_spki, &ca_spki, KeyType::EcdsaP256).unwrap_err();
        assert_eq!(e, "the certified public key is not the subject's key");
        assert!(check_issued(&der, &tbs_der, &leaf_spki, &ca_spki, KeyType::EcdsaP256).is_ok());
    }

    /// `name_text` is x509-cert's `Display`, to the byte.
    #[test]
    fn name_text_writes_what_x509_cert_writes() {
        for s in [
            "CN=kube-apiserver-kubelet-client,O=kubeadm:cluster-admins",
            "CN=system:node:worker-1,O=system:nodes",
            "CN=Ceremony Root CA,OU=Platform,O=Example\\, Inc.,L=Zürich,ST=ZH,C=CH",
            "CN=a+CN=b,O=x+OU=y",
            "CN=\\#hash,O=\\ lead,OU=trail\\ ",
            "CN=q\\\"u\\+o\\;t\\<e\\>s\\\\",
            "CN=ctl\\01char\\7f",
            "UID=alice,DC=example,DC=org",
            "CN=#0403414243",
        ] {
            let name = Name::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(super::name_text(&name), name.to_string(), "{s}");
        }
        assert_eq!(super::name_text(&Name::default()), "");
        let plain = "CN=system:node:worker-1,O=system:nodes";
        assert_eq!(super::name_text(&Name::from_str(plain).unwrap()), plain);
    }
}
