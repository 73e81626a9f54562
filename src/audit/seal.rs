//! The seal: the root CA key signs, through the token, the hash of the last
//! (`end`) record, so anyone holding `root-ca.crt` can check the log was
//! closed by the ceremony's own root and not extended or cut since.
//!
//! Signed message: `"ceremony-audit-seal-v1\n" + <hex hash of the end record>`
//! (domain-separated, so a seal can never be mistaken for a certificate TBS,
//! which is DER and starts with 0x30). The token hashes nothing: `Token::sign`
//! hashes on the host as the root's key type requires (SHA-384 for P-384,
//! SHA-256 otherwise), exactly as for certificates.
//!
//! The sealed log's plaintext is every record's line, then one seal line:
//! `{"seal":{"hash":…,"algorithm":…,"signature":<base64>,"root_certificate_sha256":…}}`.

use base64::Engine;
use serde::{Deserialize, Serialize};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use super::AuditError;
use super::crypto::Recipients;
use crate::keytype::KeyType;

pub const DOMAIN: &str = "ceremony-audit-seal-v1\n";

/// The bytes the root signs.
pub fn message(end_hash: &[u8; 32]) -> Vec<u8> {
    format!("{DOMAIN}{}", hex::encode(end_hash)).into_bytes()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    /// Hex hash of the end record.
    pub hash: String,
    /// "ecdsa-with-SHA256", "ecdsa-with-SHA384" or "sha256WithRSAEncryption".
    pub algorithm: String,
    /// The signature as in an X.509 certificate (ECDSA: DER Ecdsa-Sig-Value), base64.
    pub signature: String,
    /// SHA-256 of the root certificate's DER.
    pub root_certificate_sha256: String,
}

/// The seal line: `{"seal":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealLine {
    pub seal: Seal,
}

const ALGORITHMS: [(&str, const_oid::ObjectIdentifier, bool); 3] = [
    (
        "ecdsa-with-SHA256",
        const_oid::db::rfc5912::ECDSA_WITH_SHA_256,
        false,
    ),
    (
        "ecdsa-with-SHA384",
        const_oid::db::rfc5912::ECDSA_WITH_SHA_384,
        false,
    ),
    (
        "sha256WithRSAEncryption",
        const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
        true,
    ),
];

/// The algorithm's name, for a key type.
pub fn algorithm_name(key_type: KeyType) -> &'static str {
    let oid = crate::x509::signature_algorithm(key_type).oid;
    ALGORITHMS
        .iter()
        .find(|(_, o, _)| *o == oid)
        .map_or("unknown", |(n, _, _)| n)
}

/// The AlgorithmIdentifier of a name (RFC 5758 §3.2: ECDSA without
/// parameters; RFC 4055 §5: RSA with NULL).
pub fn algorithm_identifier(name: &str) -> Option<AlgorithmIdentifierOwned> {
    ALGORITHMS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, oid, null)| AlgorithmIdentifierOwned {
            oid: *oid,
            parameters: null.then(|| der::asn1::Null.into()),
        })
}

impl Seal {
    /// Assembles the seal from the token's signature and checks it in
    /// software against the root's public key before anything is written
    /// (verify after every irreversible step).
    pub fn new(
        end_hash: &[u8; 32],
        key_type: KeyType,
        signature: &[u8],
        root_der: &[u8],
        root_spki: &SubjectPublicKeyInfoOwned,
    ) -> Result<Seal, AuditError> {
        let seal = Seal {
            hash: hex::encode(end_hash),
            algorithm: algorithm_name(key_type).into(),
            signature: base64::engine::general_purpose::STANDARD.encode(signature),
            root_certificate_sha256: hex::encode(crate::x509::sha256(root_der)),
        };
        seal.verify(root_spki)
            .map_err(|what| AuditError::Seal { what })?;
        Ok(seal)
    }

    /// Checks the signature over `message(hash)` with the root's public key.
    pub fn verify(&self, root_spki: &SubjectPublicKeyInfoOwned) -> Result<(), String> {
        let alg = algorithm_identifier(&self.algorithm)
            .ok_or_else(|| format!("unknown seal algorithm \"{}\"", self.algorithm))?;
        let hash: [u8; 32] = hex::decode(&self.hash)
            .ok()
            .and_then(|h| h.try_into().ok())
            .ok_or("the seal's hash is not 32 bytes of hex")?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .map_err(|e| format!("the seal's signature is not base64 ({e})"))?;
        crate::x509::verify_signature(root_spki, &alg, &message(&hash), &sig)
    }

    pub fn line(&self) -> Result<String, AuditError> {
        Ok(serde_json::to_string(&SealLine { seal: self.clone() })?)
    }
}

/// The sealed log's plaintext: each record line, then the seal line, each
/// followed by a newline.
pub fn plaintext(lines: &[String], seal: &Seal) -> Result<Vec<u8>, AuditError> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(seal.line()?.as_bytes());
    out.push(b'\n');
    Ok(out)
}

/// `audit.log.age`: one ordinary age file, to the plan's recipients only
/// (not to the journal-local identity, which dies with the journal).
pub fn sealed_log(
    lines: &[String],
    seal: &Seal,
    recipients: &[String],
) -> Result<Vec<u8>, AuditError> {
    Recipients::parse(recipients)?.encrypt(&plaintext(lines, seal)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::{Decode, Encode};

    /// A P-256 key in software standing in for the token's root key.
    fn p256() -> (p256::ecdsa::SigningKey, SubjectPublicKeyInfoOwned) {
        use p256::elliptic_curve::Generate;
        use p256::pkcs8::EncodePublicKey;
        let sk = p256::ecdsa::SigningKey::from(p256::SecretKey::try_generate().unwrap());
        let der = sk.verifying_key().to_public_key_der().unwrap();
        (
            sk,
            SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).unwrap(),
        )
    }

    #[test]
    fn a_seal_checks_and_a_forged_one_does_not() {
        use signature::Signer;
        let (sk, spki) = p256();
        let hash = [7u8; 32];
        let sig: p256::ecdsa::Signature = sk.sign(&message(&hash));
        let sig = sig.to_der();
        let seal = Seal::new(&hash, KeyType::EcdsaP256, sig.as_bytes(), b"root", &spki).unwrap();
        assert_eq!(seal.algorithm, "ecdsa-with-SHA256");
        assert!(seal.verify(&spki).is_ok());
        let mut other = seal.clone();
        other.hash = hex::encode([8u8; 32]);
        assert!(other.verify(&spki).is_err(), "the seal covers its hash");
        // Signed without the domain prefix: refused.
        let bare: p256::ecdsa::Signature = sk.sign(hex::encode(hash).as_bytes());
        let bare = bare.to_der();
        assert!(Seal::new(&hash, KeyType::EcdsaP256, bare.as_bytes(), b"root", &spki).is_err());
        let line = seal.line().unwrap();
        assert!(line.starts_with(r#"{"seal":{"hash":"0707"#), "{line}");
        let back: SealLine = serde_json::from_str(&line).unwrap();
        assert_eq!(back.seal, seal);
        let _ = spki.to_der().unwrap();
    }

    #[test]
    fn algorithm_names_round_trip() {
        for kt in KeyType::ALL {
            let name = algorithm_name(kt);
            assert_eq!(
                algorithm_identifier(name).unwrap(),
                crate::x509::signature_algorithm(kt)
            );
        }
    }
}
