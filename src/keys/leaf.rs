//! Leaf keys made on the laptop (kubeadm's encryptionAlgorithm), and the
//! service-account key pair.
//!
//! Private keys exist only as `Zeroizing` PEM text in a `LeafKey`, whose Debug
//! is redacted; the caller writes them (0600) and drops them, which wipes them.
//! RSA keys are PKCS#1 `RSA PRIVATE KEY` and EC keys SEC1 `EC PRIVATE KEY`,
//! exactly as kubeadm writes them.

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

/// Seeds AWS-LC's random generator on a thread of its own, from the start
/// of a run: its first use gathers CPU-jitter entropy, about 20 ms of one
/// core, which would otherwise delay the first leaf key (a tenth of a
/// 1,000-node bundle's leaf time on a fast token). Later uses are seeded.
pub fn seed_in_background() {
    let _ = std::thread::Builder::new()
        .name("rng-seed".into())
        .spawn(|| {
            let mut probe = Zeroizing::new([0u8; 32]);
            // A failure here shows again, as an error, at the first key.
            let _ = aws_lc_rs::rand::fill(&mut probe[..]);
        });
}

/// A leaf key being made on a thread of its own from the start of a run: the
/// service-account key (an RSA-2048 one takes a fifth of a second of one
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

/// Generates a key: EC keys from AWS-LC's DRBG (seeded by the operating
/// system), RSA keys from the operating system's CSPRNG.
pub fn generate(key_type: KeyType) -> Result<LeafKey, LeafError> {
    let fail = |detail: String| LeafError::Generate { key_type, detail };
    let (private_pem, spki) = match key_type {
        KeyType::EcdsaP256 | KeyType::EcdsaP384 => ec_key(key_type).map_err(fail)?,
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            use pkcs1::EncodeRsaPrivateKey;
            let bits = key_type.rsa_bits().unwrap_or(2048);
            let sk = rsa::PrivateKey::new(&mut rand::rngs::SysRng, bits)
                .map_err(|e| fail(e.to_string()))?;
            let pem = sk
                .to_pkcs1_pem(pkcs1::LineEnding::LF)
                .map_err(|e| fail(e.to_string()))?;
            let public = sk
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| fail(e.to_string()))?;
            (pem, spki_of(public).map_err(fail)?)
        }
    };
    Ok(LeafKey {
        key_type,
        private_pem,
        spki,
    })
}

/// An EC key by AWS-LC: SEC1 `EC PRIVATE KEY` PEM (RFC 5915: version 1,
/// the key padded to the order's size, the named curve, the uncompressed
/// public point, as kubeadm and `SecretKey::to_sec1_pem` write it) and the
/// SPKI. AWS-LC's fixed-base multiplication makes a P-256 key in a quarter
/// of the time of RustCrypto's, the largest host cost of a leaf after its
/// check; the public point is taken once and both documents are
/// encoded here, where AWS-LC's own encoders would each convert the point
/// again. The private key never sits in memory that is not wiped: the
/// EC_KEY is freed through AWS-LC's allocator, which cleanses what it
/// frees, the scalar is an aws-lc-rs buffer zeroized on drop, the DER and
/// the PEM are `Zeroizing`.
fn ec_key(key_type: KeyType) -> Result<(Zeroizing<String>, SubjectPublicKeyInfoOwned), String> {
    use aws_lc_rs::encoding::{AsBigEndian, EcPrivateKeyBin};
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    };
    let (alg, curve) = match key_type {
        KeyType::EcdsaP384 => (
            &ECDSA_P384_SHA384_ASN1_SIGNING,
            const_oid::db::rfc5912::SECP_384_R_1,
        ),
        _ => (
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            const_oid::db::rfc5912::SECP_256_R_1,
        ),
    };
    let unspecified = |what: &str| format!("AWS-LC could not {what}");
    let pair = EcdsaKeyPair::generate(alg).map_err(|_| unspecified("generate the key"))?;
    let d: EcPrivateKeyBin = pair
        .private_key()
        .as_be_bytes()
        .map_err(|_| unspecified("export the private key"))?;
    // Uncompressed, 04 || X || Y.
    let point = pair.public_key().as_ref();
    let der = Zeroizing::new(
        sec1::EcPrivateKey {
            private_key: d.as_ref(),
            parameters: Some(sec1::EcParameters::NamedCurve(curve)),
            public_key: Some(point),
        }
        .to_der()
        .map_err(|e| e.to_string())?,
    );
    let pem = pem_rfc7468::encode_string("EC PRIVATE KEY", pem_rfc7468::LineEnding::LF, &der)
        .map(Zeroizing::new)
        .map_err(|e| e.to_string())?;
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::ID_EC_PUBLIC_KEY,
            parameters: Some(der::Any::from(&curve)),
        },
        subject_public_key: der::asn1::BitString::from_bytes(point).map_err(|e| e.to_string())?,
    };
    Ok((pem, spki))
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

    /// AWS-LC's EC keys are exactly the SEC1 documents kubeadm writes, and
    /// an independent implementation (RustCrypto) derives from the private
    /// key the public key that goes into the certificate.
    #[test]
    fn ec_keys_are_kubeadm_sec1_and_match_their_public_key() {
        use der::Decode;
        for (kt, curve, len) in [
            (KeyType::EcdsaP256, const_oid::db::rfc5912::SECP_256_R_1, 32),
            (KeyType::EcdsaP384, const_oid::db::rfc5912::SECP_384_R_1, 48),
        ] {
            for _ in 0..32 {
                let k = generate(kt).unwrap();
                let (label, der) = pem_rfc7468::decode_vec(k.private_pem.as_bytes()).unwrap();
                assert_eq!(label, "EC PRIVATE KEY");
                let sec1 = sec1::EcPrivateKey::from_der(&der).unwrap();
                assert_eq!(sec1.private_key.len(), len, "{kt}: padded to the order");
                assert_eq!(
                    sec1.parameters,
                    Some(sec1::EcParameters::NamedCurve(curve)),
                    "{kt}"
                );
                let point = k.spki.subject_public_key.as_bytes().unwrap();
                assert_eq!(sec1.public_key, Some(point), "{kt}");
                assert_eq!(point.len(), 1 + 2 * len, "{kt}: uncompressed");
                let derived = match kt {
                    KeyType::EcdsaP256 => p256::SecretKey::from_sec1_der(&der)
                        .unwrap()
                        .public_key()
                        .to_public_key_der()
                        .unwrap(),
                    _ => p384::SecretKey::from_sec1_der(&der)
                        .unwrap()
                        .public_key()
                        .to_public_key_der()
                        .unwrap(),
                };
                assert_eq!(derived.as_bytes(), k.spki.to_der().unwrap(), "{kt}");
            }
        }
    }

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
