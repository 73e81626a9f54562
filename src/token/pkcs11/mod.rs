//! The cryptoki implementation of `Token`: open a module, find exactly one
//! token by URI, lock it against a second process, log in, and do the few
//! operations a ceremony needs.
//!
//! Facts this relies on are in pkcs11 notes: SoftHSM renumbers slots (so the
//! token is found by label/serial), has no CKM_ECDSA_SHA* (so the host hashes),
//! returns CKA_EC_POINT wrapped in an OCTET STRING (other tokens raw), and
//! cryptoki's `get_attributes` silently drops attributes it cannot read.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType as CkKeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::{Limit, Slot};
use der::asn1::{BitString, OctetString, UintRef};
use der::{Decode, Encode};
use sha2::Digest;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use super::pin::Pin;
use super::uri::TokenUri;
use super::{
    KeyFlags, KeyPair, ObjectInfo, PinFlags, Signer, Token, TokenError, TokenIdentity, Unfinished,
};
use crate::keytype::KeyType;

/// How a token signs for one key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignMech {
    /// CKM_ECDSA over a host-computed hash; the token returns r‖s.
    Ecdsa,
    /// CKM_SHA256_RSA_PKCS: the token hashes and wraps in DigestInfo.
    Sha256RsaPkcs,
    /// CKM_RSA_PKCS over a DigestInfo built on the host (tokens without the above).
    RsaPkcsDigestInfo,
}

/// A module opened and a single token found, but not yet logged in.
pub struct Pkcs11Token {
    ctx: Pkcs11,
    slot: Slot,
    session: Session,
    identity: TokenIdentity,
    mechs: RefCell<HashMap<KeyType, SignMech>>,
    /// CKA_ID → private key handle, filled by find/generate.
    handles: RefCell<HashMap<Vec<u8>, ObjectHandle>>,
    /// Held for the life of the value; the OS drops the lock with the process.
    _lock: File,
    pub module_sha256: [u8; 32],
}

/// SHA-256 of the module file, recorded in the audit log and checked against the plan.
pub fn module_digest(path: &Path) -> Result<[u8; 32], TokenError> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => TokenError::ModuleMissing {
            path: path.to_path_buf(),
        },
        _ => TokenError::ModuleLoad {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
    })?;
    Ok(sha2::Sha256::digest(&bytes).into())
}

fn ck(op: impl Into<String>, token: &str) -> impl FnOnce(CkError) -> TokenError {
    let op = op.into();
    let token = token.to_string();
    move |source| TokenError::Pkcs11 { op, token, source }
}

impl Pkcs11Token {
    /// Loads the module (checking its SHA-256 if the plan pins one), finds the
    /// one token `uri` names and takes the exclusive lock on it.
    pub fn open(
        module: &Path,
        uri: &TokenUri,
        expected_sha256: Option<[u8; 32]>,
    ) -> Result<Pkcs11Token, TokenError> {
        let digest = module_digest(module)?;
        if let Some(want) = expected_sha256
            && want != digest
        {
            return Err(TokenError::ModuleHash {
                path: module.to_path_buf(),
                expected: hex::encode(want),
                got: hex::encode(digest),
            });
        }
        let ctx = Pkcs11::new(module).map_err(|e| TokenError::ModuleLoad {
            path: module.to_path_buf(),
            detail: match e {
                // dlerror() starts with the path, which the message already names.
                CkError::LibraryLoading(l) => {
                    let text = l.to_string();
                    let prefix = format!("{}: ", module.display());
                    text.strip_prefix(&prefix)
                        .map(str::to_string)
                        .unwrap_or(text)
                }
                other => other.to_string(),
            },
        })?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .or_else(|e| match e {
                CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _) => Ok(()),
                e => Err(e),
            })
            .map_err(ck("C_Initialize", "(none yet)"))?;
        let slots = ctx
            .get_slots_with_token()
            .map_err(ck("C_GetSlotList", "(none yet)"))?;
        let mut present = Vec::new();
        let mut matches = Vec::new();
        for slot in slots {
            let Ok(info) = ctx.get_token_info(slot) else {
                present.push(format!("(unreadable token in slot {})", slot.id()));
                continue;
            };
            let id = TokenIdentity {
                label: info.label().trim_end().to_string(),
                manufacturer: info.manufacturer_id().trim_end().to_string(),
                model: info.model().trim_end().to_string(),
                serial: info.serial_number().trim_end().to_string(),
                firmware: info.firmware_version().to_string(),
                hardware: info.hardware_version().to_string(),
                protected_auth_path: info.protected_authentication_path(),
            };
            if !info.token_initialized() {
                // SoftHSM always offers one such token, with an empty serial, in its free slot.
                present.push(match id.serial.as_str() {
                    "" => "(an uninitialised token)".to_string(),
                    s => format!("(uninitialised token, serial {s})"),
                });
                continue;
            }
            present.push(id.to_string());
            if uri.matches(&id.label, &id.serial, &id.manufacturer, &id.model) {
                matches.push((slot, id));
            }
        }
        let (slot, identity) = match matches.len() {
            0 => {
                return Err(TokenError::NoToken {
                    uri: uri.to_string(),
                    present,
                });
            }
            1 => matches.remove(0),
            _ => {
                return Err(TokenError::AmbiguousToken {
                    uri: uri.to_string(),
                    matches: matches.iter().map(|(_, i)| i.to_string()).collect(),
                });
            }
        };
        let lock = lock_token(&identity.serial)?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(ck("C_OpenSession", &identity.serial))?;
        Ok(Pkcs11Token {
            ctx,
            slot,
            session,
            identity,
            mechs: RefCell::default(),
            handles: RefCell::default(),
            _lock: lock,
            module_sha256: digest,
        })
    }

    /// Destroys the objects labelled `label` of the classes `what` names
    /// and returns what it destroyed: what a token kept of a write killed
    /// midway (SoftHSM writes a key pair as two files, each in steps, so a
    /// kill can leave a public key alone, or an object without its later
    /// attributes). Only ever called for a label whose write this ceremony's
    /// journal recorded as started and never done; it destroys nothing else.
    fn remove_unfinished_objects(
        &self,
        label: &str,
        what: Unfinished,
    ) -> Result<Vec<ObjectInfo>, TokenError> {
        let classes: &[ObjectClass] = match what {
            Unfinished::KeyPair => &[ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY],
            Unfinished::Certificate => &[ObjectClass::CERTIFICATE],
        };
        let mut removed = Vec::new();
        for class in classes {
            let with = [
                Attribute::Class(*class),
                Attribute::Label(label.as_bytes().to_vec()),
            ];
            for h in self.find(&with, 16)? {
                let info = self.info(h).unwrap_or_else(|_| ObjectInfo {
                    class: Self::class_name(*class),
                    label: label.into(),
                    ..ObjectInfo::unreadable("cut short")
                });
                self.session.destroy_object(h).map_err(self.err(&format!(
                    "C_DestroyObject (an unfinished {} \"{label}\")",
                    info.class
                )))?;
                removed.push(info);
            }
        }
        Ok(removed)
    }

    fn pin_flags_now(&self) -> Result<PinFlags, TokenError> {
        let info = self
            .ctx
            .get_token_info(self.slot)
            .map_err(ck("C_GetTokenInfo", &self.identity.serial))?;
        Ok(PinFlags {
            count_low: info.user_pin_count_low(),
            final_try: info.user_pin_final_try(),
            locked: info.user_pin_locked(),
        })
    }

    fn login_user(&self, pin: Option<&Pin>) -> Result<(), TokenError> {
        let token = self.identity.serial.clone();
        let auth = pin.map(|p| cryptoki::types::AuthPin::new(Box::from(p.expose())));
        match self.session.login(UserType::User, auth.as_ref()) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(TokenError::PinIncorrect {
                token: self.identity.to_string(),
            }),
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(TokenError::PinLocked {
                token: self.identity.to_string(),
            }),
            Err(e) => Err(ck("C_Login", &token)(e)),
        }
    }

    fn err(&self, op: &str) -> impl FnOnce(CkError) -> TokenError {
        ck(op, &self.identity.serial)
    }

    /// Up to `limit` handles matching `template` (bounded C_FindObjects).
    fn find(&self, template: &[Attribute], limit: usize) -> Result<Vec<ObjectHandle>, TokenError> {
        let cache = NonZeroUsize::new(limit.clamp(1, 64)).unwrap_or(NonZeroUsize::MIN);
        let iter = self
            .session
            .iter_objects_with_cache_size(template, cache)
            .map_err(self.err("C_FindObjectsInit"))?;
        let mut out = Vec::new();
        for h in iter.take(limit) {
            out.push(h.map_err(self.err("C_FindObjects"))?);
        }
        Ok(out)
    }

    fn mech(&self, key_type: KeyType) -> Result<SignMech, TokenError> {
        if let Some(m) = self.mechs.borrow().get(&key_type) {
            return Ok(*m);
        }
        self.require_mechanisms(&[key_type])?;
        self.mechs
            .borrow()
            .get(&key_type)
            .copied()
            .ok_or_else(|| TokenError::MechanismMissing {
                token: self.identity.to_string(),
                what: format!("sign with {key_type}"),
                missing: "a signing mechanism".into(),
            })
    }

    fn flags(&self, private: ObjectHandle) -> Result<KeyFlags, TokenError> {
        let attrs = self
            .session
            .get_attributes(
                private,
                &[
                    AttributeType::Token,
                    AttributeType::Private,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                ],
            )
            .map_err(self.err("C_GetAttributeValue"))?;
        let mut f = KeyFlags::default();
        for a in attrs {
            match a {
                Attribute::Token(v) => f.token = Some(v),
                Attribute::Private(v) => f.private = Some(v),
                Attribute::Sensitive(v) => f.sensitive = Some(v),
                Attribute::Extractable(v) => f.extractable = Some(v),
                Attribute::AlwaysSensitive(v) => f.always_sensitive = Some(v),
                Attribute::NeverExtractable(v) => f.never_extractable = Some(v),
                _ => {}
            }
        }
        Ok(f)
    }

    /// SubjectPublicKeyInfo from the public key object's attributes.
    fn read_spki(
        &self,
        label: &str,
        public: ObjectHandle,
        key_type: KeyType,
    ) -> Result<SubjectPublicKeyInfoOwned, TokenError> {
        let bad = |what: String| TokenError::BadPublicKey {
            label: label.to_string(),
            what,
        };
        if let Some(bits) = key_type.rsa_bits() {
            let attrs = self
                .session
                .get_attributes(
                    public,
                    &[AttributeType::Modulus, AttributeType::PublicExponent],
                )
                .map_err(self.err("C_GetAttributeValue"))?;
            let (mut n, mut e) = (None, None);
            for a in attrs {
                match a {
                    Attribute::Modulus(v) => n = Some(v),
                    Attribute::PublicExponent(v) => e = Some(v),
                    _ => {}
                }
            }
            let (n, e) = n
                .zip(e)
                .ok_or_else(|| bad("CKA_MODULUS or CKA_PUBLIC_EXPONENT missing".into()))?;
            let n_trim: &[u8] = &n[n.iter().take_while(|b| **b == 0).count()..];
            if n_trim.len() * 8 != bits || n_trim[0] & 0x80 == 0 {
                return Err(bad(format!("modulus is not {bits} bits")));
            }
            let pk = pkcs1::RsaPublicKey {
                modulus: UintRef::new(n_trim).map_err(|e| bad(e.to_string()))?,
                public_exponent: UintRef::new(&e).map_err(|e| bad(e.to_string()))?,
            };
            let der = pk.to_der().map_err(|e| bad(e.to_string()))?;
            return Ok(SubjectPublicKeyInfoOwned {
                algorithm: AlgorithmIdentifierOwned {
                    oid: const_oid::db::rfc5912::RSA_ENCRYPTION,
                    parameters: Some(der::asn1::Null.into()),
                },
                subject_public_key: BitString::from_bytes(&der).map_err(|e| bad(e.to_string()))?,
            });
        }
        let attrs = self
            .session
            .get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
            .map_err(self.err("C_GetAttributeValue"))?;
        let (mut params, mut point) = (None, None);
        for a in attrs {
            match a {
                Attribute::EcParams(v) => params = Some(v),
                Attribute::EcPoint(v) => point = Some(v),
                _ => {}
            }
        }
        let (params, point) = params
            .zip(point)
            .ok_or_else(|| bad("CKA_EC_PARAMS or CKA_EC_POINT missing".into()))?;
        let (curve, field) = curve_of(key_type);
        let got_curve = der::oid::ObjectIdentifier::from_der(&params)
            .map_err(|_| bad("CKA_EC_PARAMS is not a named curve".into()))?;
        if got_curve != curve {
            // Name the curve as the plan would (ecdsa-p384), not by its OID.
            let got = [KeyType::EcdsaP256, KeyType::EcdsaP384]
                .into_iter()
                .find(|k| curve_of(*k).0 == got_curve)
                .map_or_else(|| format!("on the curve {got_curve}"), |k| k.to_string());
            return Err(bad(format!("the key is {got}, the plan says {key_type}")));
        }
        // Uncompressed point 04‖X‖Y: wrapped in an OCTET STRING (PKCS#11 v2.40) or raw (some tokens).
        let raw = if point.len() == 1 + 2 * field && point[0] == 0x04 {
            point
        } else {
            OctetString::from_der(&point)
                .map_err(|_| bad("CKA_EC_POINT is neither DER nor raw".into()))?
                .into_bytes()
                .into_vec()
        };
        if raw.len() != 1 + 2 * field || raw[0] != 0x04 {
            return Err(bad("CKA_EC_POINT is not an uncompressed point".into()));
        }
        Ok(SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: const_oid::db::rfc5912::ID_EC_PUBLIC_KEY,
                parameters: Some(der::Any::encode_from(&curve).map_err(|e| bad(e.to_string()))?),
            },
            subject_public_key: BitString::from_bytes(&raw).map_err(|e| bad(e.to_string()))?,
        })
    }

    fn key_pair_from(
        &self,
        label: &str,
        private: ObjectHandle,
        key_type: KeyType,
    ) -> Result<KeyPair, TokenError> {
        let attrs = self
            .session
            .get_attributes(private, &[AttributeType::Id, AttributeType::KeyType])
            .map_err(self.err("C_GetAttributeValue"))?;
        let mut id = None;
        let mut ck_type = None;
        for a in attrs {
            match a {
                Attribute::Id(v) => id = Some(v),
                Attribute::KeyType(t) => ck_type = Some(t),
                _ => {}
            }
        }
        let id = id
            .filter(|i| !i.is_empty())
            .ok_or_else(|| TokenError::BadPublicKey {
                label: label.into(),
                what: "the private key has no CKA_ID to pair it with its public key".into(),
            })?;
        let want = if key_type.is_rsa() {
            CkKeyType::RSA
        } else {
            CkKeyType::EC
        };
        if ck_type != Some(want) {
            return Err(TokenError::BadPublicKey {
                label: label.into(),
                what: format!(
                    "the key is of type {}, the plan says {key_type}",
                    ck_type.map_or("unknown".into(), |t| t.to_string())
                ),
            });
        }
        let publics = self.find(
            &[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::Id(id.clone()),
                Attribute::Label(label.as_bytes().to_vec()),
            ],
            2,
        )?;
        let public = match publics.as_slice() {
            [one] => *one,
            [] => {
                return Err(TokenError::BadPublicKey {
                    label: label.into(),
                    what: "no public key object with the same label and CKA_ID".into(),
                });
            }
            _ => {
                return Err(TokenError::AmbiguousLabel {
                    label: label.into(),
                    what: "public key",
                    count: publics.len(),
                });
            }
        };
        let spki = self.read_spki(label, public, key_type)?;
        let flags = self.flags(private)?;
        self.handles.borrow_mut().insert(id.clone(), private);
        Ok(KeyPair {
            label: label.to_string(),
            id,
            key_type,
            spki,
            flags,
        })
    }

    fn class_name(c: ObjectClass) -> String {
        match c {
            ObjectClass::PRIVATE_KEY => "private-key".into(),
            ObjectClass::PUBLIC_KEY => "public-key".into(),
            ObjectClass::CERTIFICATE => "certificate".into(),
            ObjectClass::SECRET_KEY => "secret-key".into(),
            ObjectClass::DATA => "data".into(),
            other => other.to_string(),
        }
    }

    fn info(&self, h: ObjectHandle) -> Result<ObjectInfo, TokenError> {
        let attrs = self
            .session
            .get_attributes(
                h,
                &[
                    AttributeType::Class,
                    AttributeType::Label,
                    AttributeType::Id,
                    AttributeType::KeyType,
                ],
            )
            .map_err(self.err("C_GetAttributeValue"))?;
        let mut info = ObjectInfo {
            class: "?".into(),
            label: String::new(),
            id: Vec::new(),
            key_type: None,
            flags: None,
            unreadable: None,
        };
        let mut class = None;
        for a in attrs {
            match a {
                Attribute::Class(c) => class = Some(c),
                Attribute::Label(l) => info.label = String::from_utf8_lossy(&l).into_owned(),
                Attribute::Id(i) => info.id = i,
                Attribute::KeyType(t) => info.key_type = Some(t.to_string()),
                _ => {}
            }
        }
        if let Some(c) = class {
            info.class = Self::class_name(c);
            if c == ObjectClass::PRIVATE_KEY {
                info.flags = Some(self.flags(h)?);
            }
        }
        Ok(info)
    }
}

/// The signing mechanism for `kt` among those a token lists, or what it
/// lacks as (what the ceremony needs to do, the missing mechanism).
/// `rsa_max_bits` is CKM_RSA_PKCS_KEY_PAIR_GEN's ulMaxKeySize (0: unknown).
fn choose_mechanism(
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

/// Return values by which a token says it cannot describe one object (and
/// not that the session or the token failed).
fn unreadable_object(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::AttributeValueInvalid
            | RvError::ObjectHandleInvalid
            | RvError::AttributeTypeInvalid
            | RvError::AttributeSensitive
    )
}

fn curve_of(key_type: KeyType) -> (der::oid::ObjectIdentifier, usize) {
    match key_type {
        KeyType::EcdsaP384 => (const_oid::db::rfc5912::SECP_384_R_1, 48),
        _ => (const_oid::db::rfc5912::SECP_256_R_1, 32),
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
fn sign_with(
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
    session: Session,
    serial: String,
    mechs: HashMap<KeyType, SignMech>,
    handles: HashMap<Vec<u8>, ObjectHandle>,
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

/// An exclusive advisory lock per token serial, so two ceremonies never share a
/// token (two SoftHSM processes on one store corrupt each other's view).
fn lock_token(serial: &str) -> Result<File, TokenError> {
    let dir = ["/run/lock", "/var/lock"]
        .iter()
        .map(PathBuf::from)
        .find(|d| d.is_dir() && std::fs::metadata(d).is_ok_and(|m| !m.permissions().readonly()))
        .unwrap_or_else(std::env::temp_dir);
    let safe: String = serial
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let path = dir.join(format!("ceremony-token-{safe}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| TokenError::ModuleLoad {
            path: path.clone(),
            detail: format!("cannot create the token lock: {e}"),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(_) => Err(TokenError::Busy {
            serial: serial.to_string(),
            lock: path,
        }),
    }
}

impl Token for Pkcs11Token {
    fn identity(&self) -> &TokenIdentity {
        &self.identity
    }
    fn module_sha256(&self) -> [u8; 32] {
        self.module_sha256
    }
    fn pin_flags(&self) -> Result<PinFlags, TokenError> {
        self.pin_flags_now()
    }
    fn login(&self, pin: Option<&Pin>) -> Result<(), TokenError> {
        self.login_user(pin)
    }
    fn remove_unfinished(
        &self,
        label: &str,
        what: Unfinished,
    ) -> Result<Vec<ObjectInfo>, TokenError> {
        self.remove_unfinished_objects(label, what)
    }

    fn require_mechanisms(
        &self,
        key_types: &[KeyType],
    ) -> Result<Vec<(KeyType, String)>, TokenError> {
        let mut list = self
            .ctx
            .get_mechanism_list(self.slot)
            .map_err(self.err("C_GetMechanismList"))?;
        let hidden = crate::failpoint::hidden_mechanisms();
        list.retain(|m| !hidden.contains(&m.to_string()));
        let mut chosen = Vec::new();
        for &kt in key_types {
            let rsa_max_bits = match kt.rsa_bits() {
                Some(_) => self
                    .ctx
                    .get_mechanism_info(self.slot, MechanismType::RSA_PKCS_KEY_PAIR_GEN)
                    .ok()
                    .map(|info| info.max_key_size()),
                None => None,
            };
            let (mech, name) =
                choose_mechanism(kt, &list, rsa_max_bits).map_err(|(what, missing)| {
                    TokenError::MechanismMissing {
                        token: self.identity.to_string(),
                        what,
                        missing,
                    }
                })?;
            self.mechs.borrow_mut().insert(kt, mech);
            chosen.push((kt, name.to_string()));
        }
        Ok(chosen)
    }

    fn objects_labelled(&self, label: &str) -> Result<Vec<ObjectInfo>, TokenError> {
        let handles = self.find(&[Attribute::Label(label.as_bytes().to_vec())], 16)?;
        handles.into_iter().map(|h| self.info(h)).collect()
    }

    fn find_key_pair(&self, label: &str, key_type: KeyType) -> Result<Option<KeyPair>, TokenError> {
        // Ask for two: one is the key, two means the label is ambiguous (boulder does the same).
        let found = self.find(
            &[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ],
            2,
        )?;
        match found.as_slice() {
            [] => Ok(None),
            [one] => self.key_pair_from(label, *one, key_type).map(Some),
            _ => Err(TokenError::AmbiguousLabel {
                label: label.into(),
                what: "private key",
                count: found.len(),
            }),
        }
    }

    fn generate_key_pair(
        &self,
        label: &str,
        key_type: KeyType,
        id: &[u8],
    ) -> Result<KeyPair, TokenError> {
        crate::failpoint::hit("token-keygen-start");
        self.mech(key_type)?;
        let id = id.to_vec();
        let lab = Attribute::Label(label.as_bytes().to_vec());
        let mut public = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            lab.clone(),
            Attribute::Id(id.clone()),
        ];
        // The private key template of design §2: on the token, private,
        // sensitive and never extractable, for signing only.
        let mut private = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            lab,
            Attribute::Id(id.clone()),
        ];
        let mechanism = if let Some(bits) = key_type.rsa_bits() {
            public.push(Attribute::ModulusBits((bits as u64).into()));
            public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            Mechanism::RsaPkcsKeyPairGen
        } else {
            let (curve, _) = curve_of(key_type);
            public.push(Attribute::EcParams(curve.to_der().map_err(|e| {
                TokenError::BadPublicKey {
                    label: label.into(),
                    what: e.to_string(),
                }
            })?));
            private.push(Attribute::SignRecover(false));
            Mechanism::EccKeyPairGen
        };
        let (pub_h, priv_h) = self
            .session
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(self.err(&format!("C_GenerateKeyPair ({key_type}, \"{label}\")")))?;
        let result = self
            .key_pair_from(label, priv_h, key_type)
            .and_then(|kp| match kp.flags.violation() {
                None => Ok(kp),
                Some(what) => Err(TokenError::WeakKey {
                    label: label.into(),
                    what,
                }),
            })
            .and_then(|kp| self.check_key(&kp).map(|()| kp));
        if result.is_err() {
            // A key this run just made and cannot vouch for goes again, so the
            // token is left as it was.
            let _ = self.session.destroy_object(priv_h);
            let _ = self.session.destroy_object(pub_h);
        }
        crate::failpoint::hit("token-keygen");
        result
    }

    fn sign(&self, key: &KeyPair, msg: &[u8]) -> Result<Vec<u8>, TokenError> {
        crate::failpoint::hit("token-sign");
        let handle = self.handles.borrow().get(&key.id).copied();
        let handle = match handle {
            Some(h) => h,
            None => {
                self.find_key_pair(&key.label, key.key_type)?;
                self.handles.borrow().get(&key.id).copied().ok_or_else(|| {
                    TokenError::BadPublicKey {
                        label: key.label.clone(),
                        what: "the key is no longer on the token".into(),
                    }
                })?
            }
        };
        sign_with(
            &self.session,
            handle,
            self.mech(key.key_type)?,
            key,
            msg,
            &self.identity.serial,
        )
    }

    fn random(&self, len: usize) -> Result<Vec<u8>, TokenError> {
        self.session
            .generate_random_vec(len as u32)
            .map_err(self.err("C_GenerateRandom"))
    }

    fn find_certificate(&self, label: &str) -> Result<Option<Vec<u8>>, TokenError> {
        let found = self.find(
            &[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::Label(label.as_bytes().to_vec()),
            ],
            2,
        )?;
        let h = match found.as_slice() {
            [] => return Ok(None),
            [one] => *one,
            _ => {
                return Err(TokenError::AmbiguousLabel {
                    label: label.into(),
                    what: "certificate",
                    count: found.len(),
                });
            }
        };
        let attrs = self
            .session
            .get_attributes(h, &[AttributeType::Value])
            .map_err(self.err("C_GetAttributeValue"))?;
        Ok(attrs.into_iter().find_map(|a| match a {
            Attribute::Value(v) => Some(v),
            _ => None,
        }))
    }

    fn store_certificate(
        &self,
        key: &KeyPair,
        der: &[u8],
        subject_der: &[u8],
    ) -> Result<(), TokenError> {
        crate::failpoint::hit("token-store-start");
        let template = [
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Label(key.label.as_bytes().to_vec()),
            Attribute::Id(key.id.clone()),
            Attribute::Subject(subject_der.to_vec()),
            Attribute::Value(der.to_vec()),
        ];
        self.session
            .create_object(&template)
            .map_err(self.err(&format!("C_CreateObject (certificate \"{}\")", key.label)))?;
        crate::failpoint::hit("token-store");
        Ok(())
    }

    fn list_objects(&self) -> Result<Vec<ObjectInfo>, TokenError> {
        // Bounded: a token holds at most a few thousand objects.
        let handles = self.find(&[], 100_000)?;
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            match self.info(h) {
                Ok(info) => out.push(info),
                // One object the token cannot describe (SoftHSM's object file
                // cut short by a process killed inside C_CreateObject or
                // C_GenerateKeyPair has no CKA_CLASS) must not hide the rest.
                Err(TokenError::Pkcs11 {
                    source: CkError::Pkcs11(rv, _),
                    ..
                }) if unreadable_object(rv) => out.push(ObjectInfo::unreadable(&rv.to_string())),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Read-only sessions (a user session signs in R/O state too), as many
    /// as asked and the token still allows (C_GetTokenInfo's session limit);
    /// a token that refuses one more session simply gets fewer signers.
    fn signers(&self, max: usize) -> Result<Vec<Box<dyn Signer + '_>>, TokenError> {
        let room = match self.ctx.get_token_info(self.slot) {
            Ok(info) => match (info.max_session_count(), info.session_count()) {
                (Limit::Max(m), Some(open)) => m.saturating_sub(open) as usize,
                (Limit::Max(m), None) => (m as usize).saturating_sub(1),
                _ => max,
            },
            // opencryptoki 3.8 fails C_GetTokenInfo as a whole (pkcs11 notes).
            Err(_) => max,
        };
        let mechs = self.mechs.borrow().clone();
        let mut out: Vec<Box<dyn Signer + '_>> = Vec::new();
        for _ in 0..max.min(room) {
            let Ok(session) = self.ctx.open_ro_session(self.slot) else {
                break;
            };
            out.push(Box::new(Pkcs11Signer {
                session,
                serial: self.identity.serial.clone(),
                mechs: mechs.clone(),
                handles: HashMap::new(),
            }));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [MechanismType; 5] = [
        MechanismType::RSA_PKCS_KEY_PAIR_GEN,
        MechanismType::SHA256_RSA_PKCS,
        MechanismType::RSA_PKCS,
        MechanismType::ECC_KEY_PAIR_GEN,
        MechanismType::ECDSA,
    ];

    fn without(gone: &[MechanismType]) -> Vec<MechanismType> {
        ALL.into_iter().filter(|m| !gone.contains(m)).collect()
    }

    #[test]
    fn chooses_the_signing_mechanism_a_token_has() {
        let ok = |kt, list: &[MechanismType]| choose_mechanism(kt, list, Some(4096)).unwrap();
        assert_eq!(ok(KeyType::Rsa2048, &ALL).0, SignMech::Sha256RsaPkcs);
        // Without the combined mechanism: the raw one, with the host's DigestInfo.
        let raw = ok(
            KeyType::Rsa4096,
            &without(&[MechanismType::SHA256_RSA_PKCS]),
        );
        assert_eq!(raw.0, SignMech::RsaPkcsDigestInfo);
        assert_eq!(
            ok(KeyType::EcdsaP256, &ALL).1,
            "CKM_ECDSA over a host SHA-256"
        );
        assert_eq!(
            ok(KeyType::EcdsaP384, &ALL).1,
            "CKM_ECDSA over a host SHA-384"
        );
        // An unknown maximum (0 or no answer) is not a refusal.
        assert!(choose_mechanism(KeyType::Rsa4096, &ALL, Some(0)).is_ok());
        assert!(choose_mechanism(KeyType::Rsa4096, &ALL, None).is_ok());
    }

    #[test]
    fn says_which_mechanism_is_missing() {
        let missing = |kt, gone: &[MechanismType], max| {
            choose_mechanism(kt, &without(gone), max).unwrap_err()
        };
        let cases = [
            (
                missing(KeyType::EcdsaP384, &[MechanismType::ECC_KEY_PAIR_GEN], None),
                ("generate ecdsa-p384 keys", "CKM_EC_KEY_PAIR_GEN"),
            ),
            (
                missing(KeyType::EcdsaP256, &[MechanismType::ECDSA], None),
                ("sign with ecdsa-p256 keys", "CKM_ECDSA"),
            ),
            (
                missing(
                    KeyType::Rsa3072,
                    &[MechanismType::RSA_PKCS_KEY_PAIR_GEN],
                    None,
                ),
                ("generate rsa-3072 keys", "CKM_RSA_PKCS_KEY_PAIR_GEN"),
            ),
            (
                missing(
                    KeyType::Rsa2048,
                    &[MechanismType::SHA256_RSA_PKCS, MechanismType::RSA_PKCS],
                    None,
                ),
                (
                    "sign with rsa-2048 keys",
                    "CKM_SHA256_RSA_PKCS and CKM_RSA_PKCS",
                ),
            ),
            (
                missing(KeyType::Rsa4096, &[], Some(2048)),
                (
                    "generate rsa-4096 keys",
                    "RSA keys of 4096 bits (its maximum is 2048)",
                ),
            ),
        ];
        for (got, (what, mech)) in cases {
            assert_eq!((got.0.as_str(), got.1.as_str()), (what, mech));
        }
    }
}
