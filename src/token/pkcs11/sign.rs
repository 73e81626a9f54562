//! Signing on a token: which mechanism a key type takes on it, one X.509
//! signature through C_Sign (hashed on the host where the mechanism needs
//! it, ECDSA's r‖s checked and turned to DER), and the extra sessions the
//! pipeline signs on.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use sha2::Digest;

use super::ck;
use super::templates::curve_of;
use crate::keytype::KeyType;
use crate::token::{KeyPair, Signer, TokenError};

/// How a token signs for one key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SignMech {
    /// CKM_ECDSA over a host-computed hash; the token returns r‖s.
    Ecdsa,
    /// CKM_SHA256_RSA_PKCS: the token hashes and wraps in DigestInfo.
    Sha256RsaPkcs,
    /// CKM_RSA_PKCS over a DigestInfo built on the host (tokens without the above).
    RsaPkcsDigestInfo,
}

/// The signing mechanism for `kt` among those a token lists, or what it
/// lacks as (what the ceremony needs to do, the missing mechanism).
/// `rsa_max_bits` is CKM_RSA_PKCS_KEY_PAIR_GEN's ulMaxKeySize (0: unknown).
pub(super) fn choose_mechanism(
    kt: KeyType,
    list: &[MechanismType],
    rsa_max_bits: Option<usize>,
) -> Result<(SignMech, &'static str), (String, String)> {
    let has = |m: MechanismType| list.contains(&m);
    let gen_ = || format!("generate {kt} keys");
    if let Some(bits) = kt.rsa_bits() {
        if !has(MechanismType::RSA_PKCS_KEY_PAIR_GEN) {
            return Err((gen_(), "CKM_RSA_PKCS_KEY_PAIR_GEN".into()));
        }
        if let Some(max) = rsa_max_bits
            && max != 0
            && max < bits
        {
            return Err((
                gen_(),
                format!("RSA keys of {bits} bits (its maximum is {max})"),
            ));
        }
        if has(MechanismType::SHA256_RSA_PKCS) {
            Ok((SignMech::Sha256RsaPkcs, "CKM_SHA256_RSA_PKCS"))
        } else if has(MechanismType::RSA_PKCS) {
            Ok((
                SignMech::RsaPkcsDigestInfo,
                "CKM_RSA_PKCS with a host-built DigestInfo (SHA-256)",
            ))
        } else {
            Err((
                format!("sign with {kt} keys"),
                "CKM_SHA256_RSA_PKCS and CKM_RSA_PKCS".into(),
            ))
        }
    } else {
        if !has(MechanismType::ECC_KEY_PAIR_GEN) {
            return Err((gen_(), "CKM_EC_KEY_PAIR_GEN".into()));
        }
        if !has(MechanismType::ECDSA) {
            return Err((format!("sign with {kt} keys"), "CKM_ECDSA".into()));
        }
        if kt.hash() == crate::keytype::Hash::Sha384 {
            Ok((SignMech::Ecdsa, "CKM_ECDSA over a host SHA-384"))
        } else {
            Ok((SignMech::Ecdsa, "CKM_ECDSA over a host SHA-256"))
        }
    }
}

/// DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// One X.509 signature over `msg` with the private key `handle` in `session`:
/// hash on the host as the mechanism needs, C_Sign, and for ECDSA the raw
/// r‖s checked and converted to DER. Shared by the token's own session and
/// the [`Pkcs11Signer`]s.
pub(super) fn sign_with(
    session: &Session,
    handle: ObjectHandle,
    mech: SignMech,
    key: &KeyPair,
    msg: &[u8],
    serial: &str,
) -> Result<Vec<u8>, TokenError> {
    // Named only when a call fails: formatted per signature, it would cost
    // every leaf an allocation.
    let op = || format!("C_Sign with \"{}\"", key.label);
    let bad = |what: String| TokenError::BadSignature {
        label: key.label.clone(),
        what,
    };
    match mech {
        SignMech::Ecdsa => {
            let digest = match key.key_type {
                KeyType::EcdsaP384 => sha2::Sha384::digest(msg).to_vec(),
                _ => sha2::Sha256::digest(msg).to_vec(),
            };
            let raw = session
                .sign(&Mechanism::Ecdsa, handle, &digest)
                .map_err(|e| ck(&op(), serial)(e))?;
            let (_, field) = curve_of(key.key_type);
            if raw.len() != 2 * field {
                return Err(bad(format!(
                    "{} bytes of r‖s, expected {}",
                    raw.len(),
                    2 * field
                )));
            }
            // X.509 wants Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 §2.2.3).
            let der =
                match key.key_type {
                    KeyType::EcdsaP384 => p384::ecdsa::Signature::from_slice(&raw)
                        .map(|s| s.to_der().as_bytes().to_vec()),
                    _ => p256::ecdsa::Signature::from_slice(&raw)
                        .map(|s| s.to_der().as_bytes().to_vec()),
                };
            der.map_err(|e| bad(e.to_string()))
        }
        SignMech::Sha256RsaPkcs => session
            .sign(&Mechanism::Sha256RsaPkcs, handle, msg)
            .map_err(|e| ck(&op(), serial)(e)),
        SignMech::RsaPkcsDigestInfo => {
            let mut di = SHA256_DIGEST_INFO.to_vec();
            di.extend_from_slice(&sha2::Sha256::digest(msg));
            session
                .sign(&Mechanism::RsaPkcs, handle, &di)
                .map_err(|e| ck(&op(), serial)(e))
        }
    }
}

/// A session of its own on the logged-in token, for one thread at a time
/// (cryptoki's `Session` is Send, not Sync). Private key handles are looked
/// up in this session, by CKA_ID and label, the first time a key is used.
pub struct Pkcs11Signer {
    pub(super) session: Session,
    pub(super) serial: String,
    pub(super) mechs: HashMap<KeyType, SignMech>,
    pub(super) handles: HashMap<Vec<u8>, ObjectHandle>,
}

impl Pkcs11Signer {
    fn handle(&mut self, key: &KeyPair) -> Result<ObjectHandle, TokenError> {
        if let Some(h) = self.handles.get(&key.id) {
            return Ok(*h);
        }
        let template = [
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(key.id.clone()),
            Attribute::Label(key.label.as_bytes().to_vec()),
        ];
        let mut found = Vec::new();
        let iter = self
            .session
            .iter_objects_with_cache_size(&template, NonZeroUsize::MIN.saturating_add(1))
            .map_err(ck("C_FindObjectsInit", &self.serial))?;
        for h in iter.take(2) {
            found.push(h.map_err(ck("C_FindObjects", &self.serial))?);
        }
        match found.as_slice() {
            [one] => {
                self.handles.insert(key.id.clone(), *one);
                Ok(*one)
            }
            [] => Err(TokenError::BadPublicKey {
                label: key.label.clone(),
                what: "the key is no longer on the token".into(),
            }),
            _ => Err(TokenError::AmbiguousLabel {
                label: key.label.clone(),
                what: "private key",
                count: found.len(),
            }),
        }
    }
}

impl Signer for Pkcs11Signer {
    fn sign(&mut self, key: &KeyPair, msg: &[u8]) -> Result<Vec<u8>, TokenError> {
        crate::failpoint::hit("token-sign");
        let mech = *self
            .mechs
            .get(&key.key_type)
            .ok_or_else(|| TokenError::MechanismMissing {
                token: self.serial.clone(),
                what: format!("sign with {}", key.key_type),
                missing: "a signing mechanism chosen before the signing sessions opened".into(),
            })?;
        let handle = self.handle(key)?;
        sign_with(&self.session, handle, mech, key, msg, &self.serial)
    }
}
