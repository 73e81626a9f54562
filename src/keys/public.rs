//! Public keys of what a node or a bundle brings: a SubjectPublicKeyInfo, a
//! private key file (reduced to its public half), a PKIX public key file,
//! and the PEM labels of a certificate request. The one parser for CSR
//! intake and `verify`, so both call the same key the same name.
//!
//! Pure: bytes in, values out. Private key material lives only in zeroizing
//! buffers and is reduced to its public key at once; errors name labels and
//! key types, never key material.

use der::oid::ObjectIdentifier;
use der::referenced::OwnedToRef;
use der::{Decode, Encode};
use spki::{EncodePublicKey, SubjectPublicKeyInfoOwned};

use crate::keytype::KeyType;
use crate::pem::Block;

/// PEM labels of a PKCS#10 request: OpenSSL's and the older Netscape one
/// that Go's and OpenSSL's readers also accept.
pub const CSR_LABELS: [&str; 2] = ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"];

/// Labels of PEM blocks that hold a private key.
pub fn is_private_key_label(label: &str) -> bool {
    label.ends_with("PRIVATE KEY")
}

/// Why a SubjectPublicKeyInfo yields no key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    #[error("bad RSA public key: {0}")]
    Rsa(String),
    #[error("bad {curve} key: {reason}")]
    Ec { curve: &'static str, reason: String },
    /// The key parsed but did not encode again (not expected of valid DER).
    #[error("{0}")]
    Encoding(String),
}

/// Why a key file yields no key. Display reads after "<file>: key: ", as
/// `verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    #[error("not PEM text (not UTF-8)")]
    NotUtf8,
    /// A malformed PEM block (the message names its label only).
    #[error("{0}")]
    Pem(String),
    #[error("holds no PEM block")]
    NoBlock,
    #[error("holds a \"{0}\" block, not a private key")]
    NotPrivateKey(String),
    #[error("holds {0} PEM blocks; a key file holds exactly one private key")]
    NotOnePrivateKey(usize),
    #[error("holds {count} PEM blocks ({labels}); expected one \"PUBLIC KEY\"")]
    NotOnePublicKey { count: usize, labels: String },
    /// PKCS#8 `ENCRYPTED PRIVATE KEY`: kubeadm reads only plain keys.
    #[error("is encrypted; kubeadm cannot read it")]
    Encrypted,
    #[error("unsupported private key type \"{0}\"")]
    UnsupportedLabel(String),
    #[error("not a valid PKCS#1 RSA key: {0}")]
    Pkcs1(String),
    #[error("not a valid SEC1 P-256 or P-384 key")]
    Sec1,
    #[error("not a valid PKCS#8 RSA, P-256 or P-384 key")]
    Pkcs8,
    #[error("not a PKIX public key: {0}")]
    Pkix(String),
    #[error(transparent)]
    Key(#[from] KeyParseError),
}

/// A public key in one canonical encoding, so that a key derived from a
/// private key, one read from a certificate and one from a CSR compare equal
/// exactly when they are the same key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// One of kubeadm's five key types, or None.
    pub key_type: Option<KeyType>,
    /// Human description: "rsa-2048", "ecdsa-p256", "rsa-1024 (unsupported)".
    pub kind: String,
    /// Canonical SubjectPublicKeyInfo DER (RSA with NULL parameters, EC uncompressed).
    pub spki_der: Vec<u8>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({}, {})", self.kind, self.fingerprint())
    }
}

fn enc(e: impl std::fmt::Display) -> KeyParseError {
    KeyParseError::Encoding(e.to_string())
}

/// Bits of a big-endian magnitude, leading zeros ignored.
fn bits_of(magnitude: &[u8]) -> usize {
    match magnitude.iter().position(|b| *b != 0) {
        None => 0,
        Some(i) => (magnitude.len() - i) * 8 - magnitude[i].leading_zeros() as usize,
    }
}

impl PublicKey {
    /// "sha256:" + the first 16 hex digits of the SHA-256 of the SPKI DER
    /// (`openssl pkey -pubout -outform DER | sha256sum` gives the whole value).
    pub fn fingerprint(&self) -> String {
        let h = hex::encode(crate::x509::sha256(&self.spki_der));
        format!("sha256:{}", &h[..16])
    }

    /// The key of a SubjectPublicKeyInfo (RFC 5280 §4.1.2.7; RSA per RFC 3279
    /// §2.3.1, EC per RFC 5480 §2). An algorithm, curve or size kubeadm does
    /// not make is a key with `key_type` None, not an error: callers say
    /// what they expected.
    pub fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<PublicKey, KeyParseError> {
        use const_oid::db::rfc5912::{
            ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP_256_R_1, SECP_384_R_1,
        };
        let der = spki.to_der().map_err(enc)?;
        match spki.algorithm.oid {
            RSA_ENCRYPTION => Self::rsa_spki(spki, der),
            ID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
                match curve {
                    Some(SECP_256_R_1) => {
                        use p256::pkcs8::DecodePublicKey;
                        let k = p256::PublicKey::from_public_key_der(&der).map_err(|e| {
                            KeyParseError::Ec {
                                curve: "P-256",
                                reason: e.to_string(),
                            }
                        })?;
                        Self::ec(k.to_public_key_der().map_err(enc)?, KeyType::EcdsaP256)
                    }
                    Some(SECP_384_R_1) => {
                        use p384::pkcs8::DecodePublicKey;
                        let k = p384::PublicKey::from_public_key_der(&der).map_err(|e| {
                            KeyParseError::Ec {
                                curve: "P-384",
                                reason: e.to_string(),
                            }
                        })?;
                        Self::ec(k.to_public_key_der().map_err(enc)?, KeyType::EcdsaP384)
                    }
                    other => Ok(PublicKey {
                        key_type: None,
                        kind: format!(
                            "EC curve {} (unsupported)",
                            other.map_or("?".into(), |o| o.to_string())
                        ),
                        spki_der: der,
                    }),
                }
            }
            other => Ok(PublicKey {
                key_type: None,
                kind: match other.to_string().as_str() {
                    // RFC 8410: named, since an operator may well try them.
                    "1.3.101.112" => "ed25519 (unsupported)".to_string(),
                    "1.3.101.113" => "ed448 (unsupported)".to_string(),
                    s => format!("algorithm {s} (unsupported)"),
                },
                spki_der: der,
            }),
        }
    }

    /// RSA: the size from the modulus itself, so that a key the `rsa` crate
    /// refuses to load (under 1024 or over 8192 bits) is still named by its
    /// size; the sizes kubeadm makes go through the `rsa` crate, which checks
    /// the exponent and gives the canonical encoding.
    fn rsa_spki(
        spki: &SubjectPublicKeyInfoOwned,
        der: Vec<u8>,
    ) -> Result<PublicKey, KeyParseError> {
        let bits_string = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| KeyParseError::Rsa(spki::Error::KeyMalformed.to_string()))?;
        let bits = pkcs1::RsaPublicKeyRef::from_der(bits_string)
            .map(|k| bits_of(k.modulus.as_bytes()))
            .map_err(|e| KeyParseError::Rsa(e.to_string()))?;
        let loaded = rsa::PublicKey::try_from(spki.owned_to_ref());
        match loaded {
            Ok(key) => Self::rsa(&key),
            Err(e) if matches!(bits, 2048 | 3072 | 4096) => Err(KeyParseError::Rsa(e.to_string())),
            Err(_) => Ok(PublicKey {
                key_type: None,
                kind: format!("rsa-{bits} (unsupported)"),
                spki_der: der,
            }),
        }
    }

    fn rsa(key: &rsa::PublicKey) -> Result<PublicKey, KeyParseError> {
        use rsa::traits::PublicKeyParts;
        let bits = key.n().bit_width();
        let key_type = match bits {
            2048 => Some(KeyType::Rsa2048),
            3072 => Some(KeyType::Rsa3072),
            4096 => Some(KeyType::Rsa4096),
            _ => None,
        };
        let kind = match key_type {
            Some(k) => k.name().to_string(),
            None => format!("rsa-{bits} (unsupported)"),
        };
        let der = key.to_public_key_der().map_err(enc)?;
        Ok(PublicKey {
            key_type,
            kind,
            spki_der: der.as_bytes().to_vec(),
        })
    }

    fn ec(doc: der::Document, kt: KeyType) -> Result<PublicKey, KeyParseError> {
        Ok(PublicKey {
            key_type: Some(kt),
            kind: kt.name().to_string(),
            spki_der: doc.as_bytes().to_vec(),
        })
    }

    /// The DER of a PKIX `PUBLIC KEY` block (sa.pub).
    pub fn from_pkix_der(der: &[u8]) -> Result<PublicKey, KeyFileError> {
        let spki = SubjectPublicKeyInfoOwned::from_der(der)
            .map_err(|e| KeyFileError::Pkix(e.to_string()))?;
        Ok(Self::from_spki(&spki)?)
    }
}

/// Every PEM block of a key file.
fn blocks(bytes: &[u8]) -> Result<Vec<Block>, KeyFileError> {
    let text = std::str::from_utf8(bytes).map_err(|_| KeyFileError::NotUtf8)?;
    crate::pem::pem_blocks(text).map_err(KeyFileError::Pem)
}

/// The public half of a private key block: PKCS#1 `RSA PRIVATE KEY`, SEC1
/// `EC PRIVATE KEY` or PKCS#8 `PRIVATE KEY`, as kubeadm reads them. The RSA
/// key is validated (n = p·q, e·d ≡ 1), so a tampered key does not pass as
/// its public half.
pub fn private_key_block(block: &Block) -> Result<PublicKey, KeyFileError> {
    let der = block.der.as_slice();
    let ec = |doc: spki::Result<der::Document>, kt| Ok(PublicKey::ec(doc.map_err(enc)?, kt)?);
    match block.label.as_str() {
        "RSA PRIVATE KEY" => {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            let k = rsa::PrivateKey::from_pkcs1_der(der)
                .map_err(|e| KeyFileError::Pkcs1(e.to_string()))?;
            Ok(PublicKey::rsa(&k.to_public_key())?)
        }
        "EC PRIVATE KEY" => {
            if let Ok(k) = p256::SecretKey::from_sec1_der(der) {
                ec(k.public_key().to_public_key_der(), KeyType::EcdsaP256)
            } else if let Ok(k) = p384::SecretKey::from_sec1_der(der) {
                ec(k.public_key().to_public_key_der(), KeyType::EcdsaP384)
            } else {
                Err(KeyFileError::Sec1)
            }
        }
        "PRIVATE KEY" => {
            use rsa::pkcs8::DecodePrivateKey as _;
            if let Ok(k) = rsa::PrivateKey::from_pkcs8_der(der) {
                return Ok(PublicKey::rsa(&k.to_public_key())?);
            }
            if let Ok(k) = p256::SecretKey::from_pkcs8_der(der) {
                return ec(k.public_key().to_public_key_der(), KeyType::EcdsaP256);
            }
            if let Ok(k) = p384::SecretKey::from_pkcs8_der(der) {
                return ec(k.public_key().to_public_key_der(), KeyType::EcdsaP384);
            }
            Err(KeyFileError::Pkcs8)
        }
        "ENCRYPTED PRIVATE KEY" => Err(KeyFileError::Encrypted),
        other => Err(KeyFileError::UnsupportedLabel(other.to_string())),
    }
}

/// The single private key of a key file (or of a kubeconfig's
/// client-key-data): exactly one PEM block, a private key.
pub fn private_key_file(bytes: &[u8]) -> Result<PublicKey, KeyFileError> {
    let blocks = blocks(bytes)?;
    let keys: Vec<&Block> = blocks
        .iter()
        .filter(|b| is_private_key_label(&b.label))
        .collect();
    match keys.as_slice() {
        [] => Err(match blocks.first() {
            Some(b) => KeyFileError::NotPrivateKey(b.label.clone()),
            None => KeyFileError::NoBlock,
        }),
        [one] if blocks.len() == 1 => private_key_block(one),
        _ => Err(KeyFileError::NotOnePrivateKey(blocks.len())),
    }
}

/// A public key file (sa.pub): exactly one PKIX `PUBLIC KEY` block.
pub fn public_key_file(bytes: &[u8]) -> Result<PublicKey, KeyFileError> {
    let blocks = blocks(bytes)?;
    match blocks.as_slice() {
        [one] if one.label == "PUBLIC KEY" => PublicKey::from_pkix_der(&one.der),
        _ => Err(KeyFileError::NotOnePublicKey {
            count: blocks.len(),
            labels: blocks
                .iter()
                .map(|b| b.label.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(label: &str, der: &[u8]) -> String {
        pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der).unwrap()
    }

    #[test]
    fn private_and_public_halves_agree() {
        for kt in [KeyType::EcdsaP256, KeyType::EcdsaP384] {
            let k = crate::keys::leaf::generate(kt).unwrap();
            let from_priv = private_key_file(k.private_pem.as_bytes()).unwrap();
            let from_spki = PublicKey::from_spki(&k.spki).unwrap();
            assert_eq!(from_priv, from_spki);
            assert_eq!(from_spki.key_type, Some(kt));
            assert_eq!(from_spki.kind, kt.name());
            let pub_pem = crate::keys::leaf::public_pem(&k.spki).unwrap();
            assert_eq!(public_key_file(pub_pem.as_bytes()).unwrap(), from_spki);
        }
    }

    #[test]
    fn file_errors_read_as_verify_reports_them() {
        let e = |b: &[u8]| private_key_file(b).unwrap_err().to_string();
        assert_eq!(e(b"junk\n"), "holds no PEM block");
        assert_eq!(e(&[0xff, 0xfe]), "not PEM text (not UTF-8)");
        let cert = pem("CERTIFICATE", &[1, 2, 3]);
        assert_eq!(
            e(cert.as_bytes()),
            "holds a \"CERTIFICATE\" block, not a private key"
        );
        let enc = pem("ENCRYPTED PRIVATE KEY", &[1, 2, 3]);
        assert_eq!(e(enc.as_bytes()), "is encrypted; kubeadm cannot read it");
        let two = format!("{}{}", pem("PRIVATE KEY", &[1]), cert);
        assert_eq!(
            e(two.as_bytes()),
            "holds 2 PEM blocks; a key file holds exactly one private key"
        );
        let bad_ec = pem("EC PRIVATE KEY", &[1, 2, 3]);
        assert_eq!(e(bad_ec.as_bytes()), "not a valid SEC1 P-256 or P-384 key");
        let dsa = pem("DSA PRIVATE KEY", &[1, 2, 3]);
        assert_eq!(
            e(dsa.as_bytes()),
            "unsupported private key type \"DSA PRIVATE KEY\""
        );
        assert_eq!(
            public_key_file(cert.as_bytes()).unwrap_err().to_string(),
            "holds 1 PEM blocks (CERTIFICATE); expected one \"PUBLIC KEY\""
        );
    }

    /// Sizes and algorithms kubeadm does not make are named, not refused.
    #[test]
    fn unsupported_keys_are_named() {
        use const_oid::db::rfc5912::RSA_ENCRYPTION;
        let rsa_of = |bits: usize| {
            let mut n = vec![0xffu8; bits / 8];
            n[bits / 8 - 1] = 0xfd;
            let key = pkcs1::RsaPublicKey {
                modulus: pkcs1::UintRef::new(&n).unwrap(),
                public_exponent: pkcs1::UintRef::new(&[1, 0, 1]).unwrap(),
            }
            .to_der()
            .unwrap();
            SubjectPublicKeyInfoOwned {
                algorithm: spki::AlgorithmIdentifierOwned {
                    oid: RSA_ENCRYPTION,
                    parameters: Some(der::asn1::Null.into()),
                },
                subject_public_key: der::asn1::BitString::from_bytes(&key).unwrap(),
            }
        };
        for bits in [512, 1024, 16384] {
            let k = PublicKey::from_spki(&rsa_of(bits)).unwrap();
            assert_eq!(k.kind, format!("rsa-{bits} (unsupported)"));
            assert_eq!(k.key_type, None);
        }
        let ed = SubjectPublicKeyInfoOwned {
            algorithm: spki::AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new_unwrap("1.3.101.112"),
                parameters: None,
            },
            subject_public_key: der::asn1::BitString::from_bytes(&[0; 32]).unwrap(),
        };
        assert_eq!(
            PublicKey::from_spki(&ed).unwrap().kind,
            "ed25519 (unsupported)"
        );
    }
}
