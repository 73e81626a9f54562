//! Certificates: building the TBS from a profile, handing its bytes to a
//! signer (the token), assembling, and verifying what came back.
//!
//! Pure but for the signing callback: no token, file or clock access here.
//! Nothing in this module ever sees a CA private key; it only sees the bytes
//! the token returned and checks them.

pub mod profile;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::asn1::BitString;
use der::referenced::OwnedToRef;
use der::{Decode, Encode};
use spki::{
    AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey,
    SubjectPublicKeyInfoOwned,
};
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::Certificate;
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
        source: x509_cert::builder::Error,
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
}

/// A signed certificate and the TBS bytes that were signed.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: Certificate,
    pub der: Vec<u8>,
    pub tbs_der: Vec<u8>,
}

/// The signing side: the issuer's public key and key type.
#[derive(Clone)]
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
/// certificate and checks it (`check_issued`) before returning it.
pub fn issue<F, E>(tbs: ToBeSigned<'_>, sign: F) -> Result<Issued, X509Error>
where
    F: FnOnce(&[u8]) -> Result<Vec<u8>, E>,
    E: std::error::Error + Send + Sync + 'static,
{
    let subject = tbs.profile.subject.to_string();
    let enc = |source| X509Error::Encode {
        subject: subject.clone(),
        source,
    };
    let serial = SerialNumber::new(tbs.serial).map_err(|e| enc(e.into()))?;
    let validity = Validity::new(to_time(tbs.not_before)?, to_time(tbs.not_after)?);
    let issuer = IssuerKey {
        spki: tbs.issuer_spki.clone(),
        key_type: tbs.issuer_key_type,
    };
    let mut builder = CertificateBuilder::new(
        tbs.profile.clone(),
        serial,
        validity,
        tbs.subject_spki.clone(),
    )
    .map_err(enc)?;
    let tbs_der = builder.finalize(&issuer).map_err(enc)?;
    let signature = sign(&tbs_der).map_err(|e| X509Error::Sign {
        subject: subject.clone(),
        source: Box::new(e),
    })?;
    let cert = builder
        .assemble(BitString::from_bytes(&signature)?, &issuer)
        .map_err(enc)?;
    let der = cert.to_der()?;
    check_issued(
        &der,
        &tbs_der,
        tbs.subject_spki,
        tbs.issuer_spki,
        tbs.issuer_key_type,
    )
    .map_err(|what| X509Error::Check {
        subject: subject.clone(),
        what,
    })?;
    Ok(Issued { cert, der, tbs_der })
}

/// The post-signing check (style.md §4): parse the certificate back from its
/// DER, compare its TBS with the bytes we meant to sign, verify the signature
/// in software against the issuer's public key read from the token, and check
/// that the certified key is the subject's key.
pub fn check_issued(
    der: &[u8],
    expected_tbs: &[u8],
    subject_spki: &SubjectPublicKeyInfoOwned,
    issuer_spki: &SubjectPublicKeyInfoOwned,
    issuer_key_type: KeyType,
) -> Result<(), String> {
    let cert = Certificate::from_der(der).map_err(|e| format!("does not parse back: {e}"))?;
    let tbs = cert.tbs_certificate().to_der().map_err(|e| e.to_string())?;
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
    verify_signature(issuer_spki, cert.signature_algorithm(), &tbs, sig)
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
        // ECDSA through ring: an independent implementation of the check,
        // and about five times faster than the RustCrypto one, which matters
        // when every leaf of a 10,000-node bundle is verified (issue 7).
        (rfc5912::ID_EC_PUBLIC_KEY, rfc5912::ECDSA_WITH_SHA_256) if curve == Some(SECP_256_R_1) => {
            ecdsa_verify(&ring::signature::ECDSA_P256_SHA256_ASN1, spki, msg, sig)
        }
        (rfc5912::ID_EC_PUBLIC_KEY, rfc5912::ECDSA_WITH_SHA_384) if curve == Some(SECP_384_R_1) => {
            ecdsa_verify(&ring::signature::ECDSA_P384_SHA384_ASN1, spki, msg, sig)
        }
        (rfc5912::RSA_ENCRYPTION, rfc5912::SHA_256_WITH_RSA_ENCRYPTION) => {
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
/// point of `spki`; ring checks the point is on the curve.
fn ecdsa_verify(
    alg: &'static ring::signature::EcdsaVerificationAlgorithm,
    spki: &SubjectPublicKeyInfoOwned,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or("the public key has unused bits")?;
    ring::signature::UnparsedPublicKey::new(alg, point)
        .verify(msg, sig)
        .map_err(|_| "signature does not verify with the issuer's public key".to_string())
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

fn to_time(t: SystemTime) -> Result<Time, der::Error> {
    // UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5);
    // the builder adjusts the choice itself.
    let dt = der::DateTime::from_unix_duration(
        truncate(t).duration_since(UNIX_EPOCH).unwrap_or_default(),
    )?;
    Ok(Time::GeneralTime(
        der::asn1::GeneralizedTime::from_date_time(dt),
    ))
}

/// "2026-11-23 17:51:27 UTC"
pub fn fmt_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    match der::DateTime::from_unix_duration(Duration::from_secs(d.as_secs())) {
        Ok(dt) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minutes(),
            dt.seconds()
        ),
        Err(_) => format!("{} s after the epoch", d.as_secs()),
    }
}

/// Hex with a colon every byte, upper case, as openssl prints fingerprints.
pub fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
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
