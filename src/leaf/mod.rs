//! Leaf keys made on the laptop (kubeadm's encryptionAlgorithm), and the
//! service-account key pair.
//!
//! Private keys exist only as `Zeroizing` PEM text in a `LeafKey`, whose Debug
//! is redacted; the caller writes them (0600) and drops them, which wipes them.
//! RSA keys are PKCS#1 `RSA PRIVATE KEY` and EC keys SEC1 `EC PRIVATE KEY`,
//! exactly as kubeadm writes them.

pub mod csr;

use der::Encode;
use spki::{EncodePublicKey, SubjectPublicKeyInfoOwned};
use zeroize::Zeroizing;

use crate::keytype::KeyType;

/// A freshly generated leaf key: its private key PEM and public key.
pub struct LeafKey {
    pub key_type: KeyType,
    pub private_pem: Zeroizing<String>,
    pub spki: SubjectPublicKeyInfoOwned,
}

impl std::fmt::Debug for LeafKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LeafKey({}, [secret key elided])", self.key_type)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeafError {
    #[error("generating a {key_type} leaf key failed: {detail}")]
    Generate { key_type: KeyType, detail: String },
}

fn spki_of(public_der: der::Document) -> Result<SubjectPublicKeyInfoOwned, String> {
    use der::Decode;
    SubjectPublicKeyInfoOwned::from_der(public_der.as_bytes()).map_err(|e| e.to_string())
}

/// A leaf key being made on a thread of its own from the start of a run: the
/// service-account key (RSA-2048 by default, a fifth of a second of one
/// core) is then ready when the bundle needs it, where it used to stall the
/// leaf pipeline at its start. Dropped unjoined, the key is wiped all the
/// same (LeafKey's private part zeroizes on drop).
pub struct KeyInBackground {
    key_type: KeyType,
    /// None when no thread could be started: the key is made on `join`.
    handle: Option<std::thread::JoinHandle<Result<LeafKey, LeafError>>>,
}

impl KeyInBackground {
    pub fn spawn(key_type: KeyType) -> KeyInBackground {
        let handle = std::thread::Builder::new()
            .name("background-key".into())
            .spawn(move || generate(key_type))
            .ok();
        KeyInBackground { key_type, handle }
    }

    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The key, once made (waits for it).
    pub fn join(self) -> Result<LeafKey, LeafError> {
        match self.handle {
            Some(h) => h.join().unwrap_or_else(|_| {
                Err(LeafError::Generate {
                    key_type: self.key_type,
                    detail: "the thread making it panicked".into(),
                })
            }),
            None => generate(self.key_type),
        }
    }
}

impl std::fmt::Debug for KeyInBackground {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyInBackground({})", self.key_type)
    }
}

/// Generates a key with the operating system's CSPRNG.
pub fn generate(key_type: KeyType) -> Result<LeafKey, LeafError> {
    let fail = |detail: String| LeafError::Generate { key_type, detail };
    let le = pkcs1::LineEnding::LF;
    let (private_pem, public_der) = match key_type {
        KeyType::EcdsaP256 => {
            use p256::elliptic_curve::Generate;
            use p256::elliptic_curve::sec1::ToSec1Point;
            let sk = p256::SecretKey::try_generate().map_err(|e| fail(e.to_string()))?;
            // The one scalar multiplication; `to_sec1_pem` would do another.
            let pk = sk.public_key();
            let d = Zeroizing::new(sk.to_bytes());
            let point = pk.to_sec1_point(false);
            (
                sec1_pem(&d, const_oid::db::rfc5912::SECP_256_R_1, point.as_bytes())
                    .map_err(fail)?,
                pk.to_public_key_der().map_err(|e| fail(e.to_string()))?,
            )
        }
        KeyType::EcdsaP384 => {
            use p384::elliptic_curve::Generate;
            use p384::elliptic_curve::sec1::ToSec1Point;
            let sk = p384::SecretKey::try_generate().map_err(|e| fail(e.to_string()))?;
            let pk = sk.public_key();
            let d = Zeroizing::new(sk.to_bytes());
            let point = pk.to_sec1_point(false);
            (
                sec1_pem(&d, const_oid::db::rfc5912::SECP_384_R_1, point.as_bytes())
                    .map_err(fail)?,
                pk.to_public_key_der().map_err(|e| fail(e.to_string()))?,
            )
        }
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            use pkcs1::EncodeRsaPrivateKey;
            let bits = key_type.rsa_bits().unwrap_or(2048);
            let sk = rsa::PrivateKey::new(&mut rand::rngs::SysRng, bits)
                .map_err(|e| fail(e.to_string()))?;
            let pem = sk.to_pkcs1_pem(le).map_err(|e| fail(e.to_string()))?;
            (
                pem,
                sk.to_public_key()
                    .to_public_key_der()
                    .map_err(|e| fail(e.to_string()))?,
            )
        }
    };
    Ok(LeafKey {
        key_type,
        private_pem,
        spki: spki_of(public_der).map_err(fail)?,
    })
}

/// SEC1 `EC PRIVATE KEY` PEM (RFC 5915: version 1, the key, the named
/// curve, the public point), as `SecretKey::to_sec1_pem` writes it and
/// kubeadm too, from a public point computed once by the caller.
fn sec1_pem(
    d: &[u8],
    curve: der::oid::ObjectIdentifier,
    point: &[u8],
) -> Result<Zeroizing<String>, String> {
    let der = Zeroizing::new(
        sec1::EcPrivateKey {
            private_key: d,
            parameters: Some(sec1::EcParameters::NamedCurve(curve)),
            public_key: Some(point),
        }
        .to_der()
        .map_err(|e| e.to_string())?,
    );
    pem_rfc7468::encode_string("EC PRIVATE KEY", pem_rfc7468::LineEnding::LF, &der)
        .map(Zeroizing::new)
        .map_err(|e| e.to_string())
}

/// PKIX `PUBLIC KEY` PEM of a public key (sa.pub).
pub fn public_pem(spki: &SubjectPublicKeyInfoOwned) -> Result<String, der::Error> {
    let der = spki.to_der()?;
    pem_rfc7468::encode_string("PUBLIC KEY", pem_rfc7468::LineEnding::LF, &der)
        .map_err(der::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_keys_are_sec1_and_rsa_pkcs1() {
        let ec = generate(KeyType::EcdsaP256).unwrap();
        assert!(
            ec.private_pem
                .starts_with("-----BEGIN EC PRIVATE KEY-----\n")
        );
        assert!(!format!("{ec:?}").contains("BEGIN"));
        let ec384 = generate(KeyType::EcdsaP384).unwrap();
        assert_ne!(ec384.spki, ec.spki);
        let rsa = generate(KeyType::Rsa2048).unwrap();
        assert!(
            rsa.private_pem
                .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
        );
        assert!(
            public_pem(&rsa.spki)
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----\n")
        );
    }
}
