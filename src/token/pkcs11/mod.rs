//! The cryptoki implementation of `Token`: open a module, find exactly one
//! token by URI, lock it against a second process, log in, and do the few
//! operations a ceremony needs.
//!
//! Facts about tokens this relies on: SoftHSM renumbers slots (so the token
//! is found by label/serial), has no CKM_ECDSA_SHA* (so the host hashes),
//! returns CKA_EC_POINT wrapped in an OCTET STRING (other tokens raw), and
//! cryptoki's `get_attributes` silently drops attributes it cannot read.
//!
//! The templates of the objects it makes are in [`templates`]; reading
//! objects back from their attributes is in [`attributes`]; the signing
//! mechanisms, C_Sign and the pipeline's extra sessions in [`sign`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::{Limit, Slot};

use super::pin::Pin;
use super::uri::TokenUri;
use super::{KeyPair, ObjectInfo, PinFlags, Signer, Token, TokenError, TokenIdentity, Unfinished};
use crate::keytype::KeyType;
use attributes::unreadable_object;

mod attributes;
mod probe;
mod sign;
mod templates;
mod wrap;

pub use probe::Probe;
pub use sign::Pkcs11Signer;
use sign::{SignMech, choose_mechanism, sign_with};

/// A module opened and a single token found, but not yet logged in.
pub struct Pkcs11Token {
    ctx: Pkcs11,
    slot: Slot,
    session: Session,
    identity: TokenIdentity,
    mechs: RefCell<HashMap<KeyType, SignMech>>,
    /// CKA_ID → private key handle, filled by find/generate.
    handles: RefCell<HashMap<Vec<u8>, ObjectHandle>>,
    /// Labels whose key pairs are generated extractable under a trusted wrap key only.
    backed_up: RefCell<Vec<String>>,
    /// Held for the life of the value; the OS drops the lock with the process.
    _lock: File,
    pub module_sha256: [u8; 32],
}

/// SHA-256 of the module file, recorded in the audit log and checked against the plan.
pub fn module_digest(path: &Path) -> Result<[u8; 32], TokenError> {
    use crate::fsread::{Links, ReadError, cap, sha256_regular};
    // Streamed: hashed, not held; a device or FIFO is refused at once.
    sha256_regular(path, cap::HASHED, Links::Follow).map_err(|e| match e {
        ReadError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            TokenError::ModuleMissing {
                path: path.to_path_buf(),
            }
        }
        e => TokenError::ModuleLoad {
            path: path.to_path_buf(),
            detail: e.why(),
        },
    })
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
        let mut uninitialised = false;
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
                uninitialised = true;
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
                    uninitialised,
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
            backed_up: RefCell::default(),
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

/// What finds the ceremony's data objects labelled `label`.
fn data_template(label: &str) -> [Attribute; 3] {
    [
        Attribute::Class(ObjectClass::DATA),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Application(templates::APPLICATION.to_vec()),
    ]
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
        let backed_up = self.backed_up.borrow().iter().any(|l| l == label);
        let (mechanism, public, private) = templates::key_pair(label, key_type, id, backed_up)?;
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
        let template = templates::certificate(key, der, subject_der);
        self.session
            .create_object(&template)
            .map_err(self.err(&format!("C_CreateObject (certificate \"{}\")", key.label)))?;
        crate::failpoint::hit("token-store");
        Ok(())
    }

    fn find_data(&self, label: &str) -> Result<Vec<Vec<u8>>, TokenError> {
        let mut values = Vec::new();
        for h in self.find(&data_template(label), 16)? {
            let attrs = self
                .session
                .get_attributes(h, &[AttributeType::Value])
                .map_err(self.err("C_GetAttributeValue"))?;
            values.extend(attrs.into_iter().find_map(|a| match a {
                Attribute::Value(v) => Some(v),
                _ => None,
            }));
        }
        Ok(values)
    }

    fn put_data(&self, label: &str, value: &[u8]) -> Result<(), TokenError> {
        let old = self.find(&data_template(label), 16)?;
        self.session
            .create_object(&templates::data(label, value))
            .map_err(self.err(&format!("C_CreateObject (data \"{label}\")")))?;
        crate::failpoint::hit("token-data-created");
        for h in old {
            self.session
                .destroy_object(h)
                .map_err(self.err(&format!("C_DestroyObject (the old data \"{label}\")")))?;
        }
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
            // opencryptoki 3.8 fails C_GetTokenInfo as a whole: no limit is
            // known, so as many as asked.
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

    fn require_backup(&self) -> Result<&'static str, TokenError> {
        self.require_backup_mechanisms()
    }
    fn back_up_labels(&self, labels: &[String]) {
        *self.backed_up.borrow_mut() = labels.to_vec();
    }
    fn trusted_keys(&self) -> Result<Vec<(String, Vec<u8>)>, TokenError> {
        self.trusted_secret_keys()
    }
    fn import_wrap_key(
        &self,
        so_pin: &Pin,
        label: &str,
        id: &[u8],
        value: &[u8],
    ) -> Result<(), TokenError> {
        self.import_trusted(so_pin, label, id, value)
    }
    fn wrap(&self, wrap_label: &str, key: &KeyPair) -> Result<Vec<u8>, TokenError> {
        self.wrap_private(wrap_label, key)
    }
    fn unwrap_key_pair(
        &self,
        wrap_label: &str,
        blob: &[u8],
        label: &str,
        id: &[u8],
        key_type: KeyType,
        spki: &spki::SubjectPublicKeyInfoOwned,
    ) -> Result<KeyPair, TokenError> {
        self.unwrap_pair(wrap_label, blob, label, id, key_type, spki)
    }
    fn destroy_labelled(&self, label: &str) -> Result<usize, TokenError> {
        self.destroy_all_labelled(label)
    }
    fn logout(&self) {
        let _ = self.session.logout();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The module is hashed streamed and bounded: a device is refused at once.
    #[test]
    fn a_device_as_module_is_refused_unread() {
        let e = module_digest(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/zero is not a usable PKCS#11 module: not a regular file"
        );
    }

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
