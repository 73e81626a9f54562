//! A token in memory, for unit tests of the flow without SoftHSM: CA keys in
//! software (P-384, and P-256 for every other type: the flow's tests use EC
//! CAs), objects by label as a PKCS#11 token keeps them,
//! and faults to inject: an operation that fails on its n-th call, objects
//! left as a killed write leaves them, key flags a weak token reports, a
//! budget and a delay for the signing sessions, a checkpoint that says stop.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::Duration;

use der::Decode;
use spki::SubjectPublicKeyInfoOwned;

use super::pin::Pin;
use super::{
    KeyFlags, KeyPair, ObjectInfo, PinFlags, Signer, Token, TokenError, TokenIdentity, Unfinished,
};
use crate::keytype::KeyType;

/// A CA key in software, standing in for the token's.
#[derive(Clone)]
pub enum Soft {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

impl Soft {
    fn generate(key_type: KeyType) -> (Soft, Vec<u8>) {
        use p256::elliptic_curve::Generate;
        use spki::EncodePublicKey;
        match key_type {
            KeyType::EcdsaP384 => {
                let k = p384::ecdsa::SigningKey::from(
                    p384::SecretKey::try_generate().expect("OS random"),
                );
                let der = k.verifying_key().to_public_key_der().expect("SPKI");
                (Soft::P384(k), der.as_bytes().to_vec())
            }
            _ => {
                let k = p256::ecdsa::SigningKey::from(
                    p256::SecretKey::try_generate().expect("OS random"),
                );
                let der = k.verifying_key().to_public_key_der().expect("SPKI");
                (Soft::P256(k), der.as_bytes().to_vec())
            }
        }
    }

    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        use signature::Signer as _;
        match self {
            Soft::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(msg);
                s.to_der().as_bytes().to_vec()
            }
            Soft::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign(msg);
                s.to_der().as_bytes().to_vec()
            }
        }
    }
}

/// One object on the fake token.
#[derive(Clone)]
pub struct Object {
    /// "private-key", "public-key", "certificate", "data".
    pub class: &'static str,
    pub label: String,
    pub id: Vec<u8>,
    /// The certificate's DER (certificates only; empty: cut short).
    pub value: Vec<u8>,
    pub key_type: Option<KeyType>,
    pub spki: Option<SubjectPublicKeyInfoOwned>,
}

/// The flags a CA key generated in a token shows: what `KeyFlags::violation` wants.
pub fn strong_flags() -> KeyFlags {
    KeyFlags {
        token: Some(true),
        private: Some(true),
        sensitive: Some(true),
        extractable: Some(false),
        always_sensitive: Some(true),
        never_extractable: Some(true),
        wrap_with_trusted: Some(false),
    }
}

/// An in-memory token. Every field is a knob a test may turn.
pub struct Fake {
    pub id: TokenIdentity,
    pub objects: RefCell<Vec<Object>>,
    pub keys: RefCell<HashMap<Vec<u8>, Soft>>,
    /// The flags reported for every private key.
    pub flags: Cell<KeyFlags>,
    /// The user PIN; `login` with another is `PinIncorrect`.
    pub pin: String,
    pub pin_flags: Cell<PinFlags>,
    /// Calls of each operation so far, by name ("generate", "sign", "store", …).
    pub calls: RefCell<HashMap<&'static str, usize>>,
    /// (operation, n): the n-th call (1-based) of that operation fails.
    pub fail_at: RefCell<Option<(&'static str, usize)>>,
    /// Extra signing sessions offered (`signers`).
    pub sessions: Cell<usize>,
    /// Signatures the sessions make between them before they fail.
    pub budget: Cell<isize>,
    /// Checkpoints passed before one says stop.
    pub checkpoints: Cell<usize>,
    /// How long a signature on a session takes (an HSM's: the caller sleeps).
    pub delay: Cell<Duration>,
    /// Signatures being made on sessions now, and the most at once.
    pub signing: Arc<(AtomicUsize, AtomicUsize)>,
    counter: Cell<u64>,
}

impl Default for Fake {
    fn default() -> Self {
        Fake::new()
    }
}

impl Fake {
    pub fn new() -> Fake {
        Fake {
            id: TokenIdentity::fake("fake", "1"),
            objects: RefCell::default(),
            keys: RefCell::default(),
            flags: Cell::new(strong_flags()),
            pin: "123456".into(),
            pin_flags: Cell::new(PinFlags::default()),
            calls: RefCell::default(),
            fail_at: RefCell::new(None),
            sessions: Cell::new(0),
            budget: Cell::new(isize::MAX),
            checkpoints: Cell::new(usize::MAX),
            delay: Cell::new(Duration::ZERO),
            signing: Arc::default(),
            counter: Cell::new(0),
        }
    }

    /// Counts a call of `op` and fails it when `fail_at` says so.
    fn call(&self, op: &'static str) -> Result<(), TokenError> {
        let n = {
            let mut calls = self.calls.borrow_mut();
            let n = calls.entry(op).or_default();
            *n += 1;
            *n
        };
        if *self.fail_at.borrow() == Some((op, n)) {
            return Err(TokenError::BadSignature {
                label: self.id.label.clone(),
                what: format!("the fake token fails {op} call {n}"),
            });
        }
        Ok(())
    }

    /// Calls of `op` so far.
    pub fn calls(&self, op: &str) -> usize {
        self.calls.borrow().get(op).copied().unwrap_or(0)
    }

    /// Puts an object on the token as it is (a foreign one, or what a killed write left).
    pub fn put(&self, class: &'static str, label: &str, id: &[u8]) {
        self.objects.borrow_mut().push(Object {
            class,
            label: label.into(),
            id: id.to_vec(),
            value: Vec::new(),
            key_type: None,
            spki: None,
        });
    }

    /// The objects labelled `label`, by class.
    pub fn classes(&self, label: &str) -> Vec<&'static str> {
        self.objects
            .borrow()
            .iter()
            .filter(|o| o.label == label)
            .map(|o| o.class)
            .collect()
    }

    fn info(&self, o: &Object) -> ObjectInfo {
        ObjectInfo {
            class: o.class.into(),
            label: o.label.clone(),
            id: o.id.clone(),
            key_type: o.key_type.map(|k| k.name().to_string()),
            flags: (o.class == "private-key").then(|| self.flags.get()),
            unreadable: None,
            empty_value: false,
        }
    }
}

/// A signing session of the fake.
struct FakeSigner {
    keys: HashMap<Vec<u8>, Soft>,
    budget: Arc<AtomicIsize>,
    delay: Duration,
    signing: Arc<(AtomicUsize, AtomicUsize)>,
}

impl Signer for FakeSigner {
    fn sign(&mut self, key: &KeyPair, msg: &[u8]) -> Result<Vec<u8>, TokenError> {
        if self.budget.fetch_sub(1, Ordering::Relaxed) <= 0 {
            return Err(TokenError::BadSignature {
                label: key.label.clone(),
                what: "the fake token's budget is spent".into(),
            });
        }
        let (now, peak) = (&self.signing.0, &self.signing.1);
        peak.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        now.fetch_sub(1, Ordering::SeqCst);
        let soft = self
            .keys
            .get(&key.id)
            .ok_or_else(|| TokenError::BadSignature {
                label: key.label.clone(),
                what: "no such key on the fake token".into(),
            })?;
        Ok(soft.sign(msg))
    }
}

impl Token for Fake {
    fn identity(&self) -> &TokenIdentity {
        &self.id
    }
    fn module_sha256(&self) -> [u8; 32] {
        [0xfa; 32]
    }
    fn pin_flags(&self) -> Result<PinFlags, TokenError> {
        Ok(self.pin_flags.get())
    }
    fn login(&self, pin: Option<&Pin>) -> Result<(), TokenError> {
        self.call("login")?;
        match pin {
            Some(p) if p.expose() != self.pin => Err(TokenError::PinIncorrect {
                token: self.id.to_string(),
            }),
            _ => Ok(()),
        }
    }
    fn require_mechanisms(
        &self,
        key_types: &[KeyType],
    ) -> Result<Vec<(KeyType, String)>, TokenError> {
        Ok(key_types.iter().map(|k| (*k, "CKM_ECDSA".into())).collect())
    }
    fn objects_labelled(&self, label: &str) -> Result<Vec<ObjectInfo>, TokenError> {
        Ok(self
            .objects
            .borrow()
            .iter()
            .filter(|o| o.label == label)
            .map(|o| self.info(o))
            .collect())
    }
    fn find_key_pair(&self, label: &str, key_type: KeyType) -> Result<Option<KeyPair>, TokenError> {
        let objects = self.objects.borrow();
        let privates: Vec<&Object> = objects
            .iter()
            .filter(|o| o.label == label && o.class == "private-key")
            .collect();
        let public = objects
            .iter()
            .find(|o| o.label == label && o.class == "public-key");
        match (privates.as_slice(), public) {
            ([], _) => Ok(None),
            ([private], Some(public)) => {
                let spki = public
                    .spki
                    .clone()
                    .ok_or_else(|| TokenError::BadPublicKey {
                        label: label.into(),
                        what: "its public key has no value".into(),
                    })?;
                if public.key_type != Some(key_type) {
                    return Err(TokenError::BadPublicKey {
                        label: label.into(),
                        what: format!("it is not a {key_type} key"),
                    });
                }
                Ok(Some(KeyPair {
                    label: label.into(),
                    id: private.id.clone(),
                    key_type,
                    spki,
                    flags: self.flags.get(),
                }))
            }
            ([_], None) => Err(TokenError::BadPublicKey {
                label: label.into(),
                what: "its private key has no public key beside it".into(),
            }),
            _ => Err(TokenError::BadPublicKey {
                label: label.into(),
                what: "several private keys carry it".into(),
            }),
        }
    }
    fn generate_key_pair(
        &self,
        label: &str,
        key_type: KeyType,
        id: &[u8],
    ) -> Result<KeyPair, TokenError> {
        self.call("generate")?;
        let (soft, der) = Soft::generate(key_type);
        let spki =
            SubjectPublicKeyInfoOwned::from_der(&der).map_err(|e| TokenError::BadPublicKey {
                label: label.into(),
                what: e.to_string(),
            })?;
        self.keys.borrow_mut().insert(id.to_vec(), soft);
        for class in ["private-key", "public-key"] {
            self.objects.borrow_mut().push(Object {
                class,
                label: label.into(),
                id: id.to_vec(),
                value: Vec::new(),
                key_type: Some(key_type),
                spki: Some(spki.clone()),
            });
        }
        Ok(KeyPair {
            label: label.into(),
            id: id.to_vec(),
            key_type,
            spki,
            flags: self.flags.get(),
        })
    }
    fn sign(&self, key: &KeyPair, msg: &[u8]) -> Result<Vec<u8>, TokenError> {
        self.call("sign")?;
        let keys = self.keys.borrow();
        let soft = keys.get(&key.id).ok_or_else(|| TokenError::BadSignature {
            label: key.label.clone(),
            what: "no such key on the fake token".into(),
        })?;
        Ok(soft.sign(msg))
    }
    fn random(&self, len: usize) -> Result<Vec<u8>, TokenError> {
        // Distinct, not secret: a counter through SHA-256.
        let mut v = Vec::new();
        while v.len() < len {
            self.counter.set(self.counter.get() + 1);
            v.extend_from_slice(&crate::x509::sha256(&self.counter.get().to_le_bytes()));
        }
        v.truncate(len);
        Ok(v)
    }
    fn find_certificate(&self, label: &str) -> Result<Option<Vec<u8>>, TokenError> {
        Ok(self
            .objects
            .borrow()
            .iter()
            .find(|o| o.label == label && o.class == "certificate")
            .map(|o| o.value.clone()))
    }
    fn store_certificate(
        &self,
        key: &KeyPair,
        der: &[u8],
        _subject_der: &[u8],
    ) -> Result<(), TokenError> {
        self.call("store")?;
        self.objects.borrow_mut().push(Object {
            class: "certificate",
            label: key.label.clone(),
            id: key.id.clone(),
            value: der.to_vec(),
            key_type: None,
            spki: None,
        });
        Ok(())
    }
    fn list_objects(&self) -> Result<Vec<ObjectInfo>, TokenError> {
        Ok(self.objects.borrow().iter().map(|o| self.info(o)).collect())
    }
    fn find_data(&self, label: &str) -> Result<Vec<Vec<u8>>, TokenError> {
        Ok(self
            .objects
            .borrow()
            .iter()
            .filter(|o| o.label == label && o.class == "data")
            .map(|o| o.value.clone())
            .collect())
    }
    fn put_data(&self, label: &str, value: &[u8]) -> Result<(), TokenError> {
        self.call("put_data")?;
        let mut objects = self.objects.borrow_mut();
        let old = objects.len();
        objects.push(Object {
            class: "data",
            label: label.into(),
            id: Vec::new(),
            value: value.to_vec(),
            key_type: None,
            spki: None,
        });
        // The old ones go after the new one is there, as on a real token.
        let mut i = 0;
        objects.retain(|o| {
            i += 1;
            !(i <= old && o.label == label && o.class == "data")
        });
        Ok(())
    }
    fn remove_unfinished(
        &self,
        label: &str,
        what: Unfinished,
    ) -> Result<Vec<ObjectInfo>, TokenError> {
        self.call("remove")?;
        let classes: &[&str] = match what {
            Unfinished::KeyPair => &["private-key", "public-key"],
            Unfinished::Certificate => &["certificate"],
        };
        let mut removed = Vec::new();
        self.objects.borrow_mut().retain(|o| {
            let gone = o.label == label && classes.contains(&o.class);
            if gone {
                removed.push(self.info(o));
            }
            !gone
        });
        Ok(removed)
    }
    fn signers(&self, max: usize) -> Result<Vec<Box<dyn Signer + '_>>, TokenError> {
        let keys = self.keys.borrow().clone();
        let budget = Arc::new(AtomicIsize::new(self.budget.get()));
        Ok((0..self.sessions.get().min(max))
            .map(|_| {
                Box::new(FakeSigner {
                    keys: keys.clone(),
                    budget: budget.clone(),
                    delay: self.delay.get(),
                    signing: self.signing.clone(),
                }) as Box<dyn Signer>
            })
            .collect())
    }
    fn checkpoint(&self) -> Result<(), TokenError> {
        match self.checkpoints.get() {
            0 => Err(TokenError::BadSignature {
                label: "fake".into(),
                what: "the fake run stops".into(),
            }),
            n => {
                self.checkpoints.set(n - 1);
                Ok(())
            }
        }
    }
}
