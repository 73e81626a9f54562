//! The token: a narrow trait over what a ceremony asks of a PKCS#11 token
//! (find, generate, public key, sign, random, store certificate), and its
//! cryptoki implementation.
//!
//! No function here returns, logs or exports private key material: the trait
//! has no such operation, and the key templates make CA keys sensitive and
//! non-extractable from the moment they exist.

#[cfg(test)]
pub mod fake;
pub mod pin;
pub mod pkcs11;
pub mod uri;

use std::path::PathBuf;

use spki::SubjectPublicKeyInfoOwned;

use crate::keytype::KeyType;

/// Who the token is, as C_GetTokenInfo says (trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub firmware: String,
    pub hardware: String,
    pub protected_auth_path: bool,
}

#[cfg(test)]
impl TokenIdentity {
    /// A token identity for unit tests' fake tokens.
    pub fn fake(label: &str, serial: &str) -> Self {
        TokenIdentity {
            label: label.into(),
            manufacturer: "m".into(),
            model: "x".into(),
            serial: serial.into(),
            firmware: "1".into(),
            hardware: "1".into(),
            protected_auth_path: false,
        }
    }
}

impl std::fmt::Display for TokenIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field is what the token says: escaped, as anything from outside.
        use crate::fmt::shown;
        write!(
            f,
            "\"{}\" (serial {}, {} {})",
            shown(&self.label),
            shown(&self.serial),
            shown(&self.manufacturer),
            shown(&self.model)
        )
    }
}

/// The security-relevant attributes of a private key, as read back from the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyFlags {
    pub token: Option<bool>,
    pub private: Option<bool>,
    pub sensitive: Option<bool>,
    pub extractable: Option<bool>,
    pub always_sensitive: Option<bool>,
    pub never_extractable: Option<bool>,
    /// CKA_WRAP_WITH_TRUSTED: only a trusted key (one the security officer
    /// made) may wrap it. Read-only once true.
    pub wrap_with_trusted: Option<bool>,
}

impl KeyFlags {
    /// Whether the key is backed up: extractable, but only wrapped under a
    /// trusted key.
    pub fn backed_up(&self) -> bool {
        self.extractable == Some(true) && self.wrap_with_trusted == Some(true)
    }

    /// What a CA key must show: on the token, private, sensitive, and
    /// either always sensitive and never extractable, or a backed-up key:
    /// extractable only under a trusted wrap key. (A key restored from its
    /// backup reads CKA_ALWAYS_SENSITIVE false, as PKCS#11 sets it for every
    /// unwrapped key: it was outside the token, wrapped under the trusted
    /// key only.) None when it does, else what is missing.
    pub fn violation(&self) -> Option<String> {
        let mut bad = Vec::new();
        let mut rules = vec![
            ("CKA_TOKEN", self.token, true),
            ("CKA_PRIVATE", self.private, true),
            ("CKA_SENSITIVE", self.sensitive, true),
        ];
        if !self.backed_up() {
            rules.push(("CKA_EXTRACTABLE", self.extractable, false));
            rules.push(("CKA_ALWAYS_SENSITIVE", self.always_sensitive, true));
            rules.push(("CKA_NEVER_EXTRACTABLE", self.never_extractable, true));
        }
        for (name, v, want) in rules {
            match v {
                Some(x) if x == want => {}
                Some(x) => bad.push(format!("{name} is {x}")),
                None => bad.push(format!("{name} is not reported")),
            }
        }
        (!bad.is_empty()).then(|| bad.join(", "))
    }
}

/// A CA key pair on the token, identified by label and CKA_ID.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub label: String,
    pub id: Vec<u8>,
    pub key_type: KeyType,
    pub spki: SubjectPublicKeyInfoOwned,
    pub flags: KeyFlags,
}

/// One object as `token list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub class: String,
    pub label: String,
    pub id: Vec<u8>,
    pub key_type: Option<String>,
    pub flags: Option<KeyFlags>,
    /// Why the token could not describe the object, when it could not.
    pub unreadable: Option<String>,
    /// A data object whose value is empty (read for data objects only).
    pub empty_value: bool,
}

impl ObjectInfo {
    /// An object the token lists but whose attributes it cannot return.
    pub fn unreadable(why: &str) -> ObjectInfo {
        ObjectInfo {
            class: "unreadable".into(),
            label: String::new(),
            id: Vec::new(),
            key_type: None,
            flags: None,
            unreadable: Some(why.into()),
            empty_value: false,
        }
    }

    /// Why the object looks half-written, if it does: what a process killed
    /// inside a token's write leaves (a key without its flags or its label,
    /// a data object without its value). `token list` marks it; the tool
    /// removes only the torn writes its own journal recorded.
    pub fn half_written(&self) -> Option<&'static str> {
        if self.unreadable.is_some() {
            return Some("the token cannot describe it");
        }
        let keyish = matches!(
            self.class.as_str(),
            "private-key" | "public-key" | "secret-key" | "certificate"
        );
        if self.class == "private-key" {
            let missing = self.flags.is_none_or(|f| {
                [
                    f.token,
                    f.private,
                    f.sensitive,
                    f.extractable,
                    f.always_sensitive,
                    f.never_extractable,
                ]
                .contains(&None)
            });
            if missing {
                return Some("a private key without all its flags");
            }
        }
        if keyish && self.label.is_empty() {
            return Some("no label");
        }
        if self.class == "data" && self.empty_value {
            return Some("an empty data object");
        }
        if self.class == "?" {
            return Some("no class");
        }
        None
    }
}

/// The pairwise consistency test (the idea of FIPS 140-3's): the private key
/// signs a fixed message on the token and the host verifies the signature
/// with the public key read from the token. Every key is tested when it is
/// generated and when it is found, before anything is signed with it: a
/// token can hold a private key that lists its label and flags but cannot
/// sign (SoftHSM keeps one when a kill cuts its object file short).
pub fn pairwise_test(
    key: &KeyPair,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, TokenError>,
) -> Result<(), TokenError> {
    let msg = [
        b"ceremony pairwise consistency test: ".as_slice(),
        key.label.as_bytes(),
        &key.id,
    ]
    .concat();
    let unusable = |what: String| TokenError::KeyUnusable {
        label: key.label.clone(),
        what,
    };
    let sig = sign(&msg).map_err(|e| match e.key_fault() {
        Some(why) => unusable(format!("its private key cannot sign ({why})")),
        None => e,
    })?;
    let alg = crate::x509::signature_algorithm(key.key_type);
    crate::x509::verify_signature(&key.spki, &alg, &msg, &sig).map_err(|e| {
        unusable(format!(
            "a signature by its private key does not verify with its public key ({e})"
        ))
    })
}

/// What a token write killed midway may have left under a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfinished {
    /// A key generation: private and public key objects.
    KeyPair,
    /// A certificate being stored.
    Certificate,
}

/// Bytes of a CA key's CKA_ID (random, from the token).
pub const KEY_ID_LEN: usize = 16;

/// The token's PIN counters, for warnings before login.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinFlags {
    /// A wrong PIN was entered recently.
    pub count_low: bool,
    /// The next wrong PIN locks the user PIN.
    pub final_try: bool,
    pub locked: bool,
}

/// What a ceremony needs of a token.
pub trait Token {
    fn identity(&self) -> &TokenIdentity;
    /// SHA-256 of the PKCS#11 module the token was reached through.
    fn module_sha256(&self) -> [u8; 32];
    /// The PIN counters now.
    fn pin_flags(&self) -> Result<PinFlags, TokenError>;
    /// Logs in as the user; `None` uses the protected authentication path
    /// (the token's PIN pad).
    fn login(&self, pin: Option<&pin::Pin>) -> Result<(), TokenError>;
    /// Destroys the objects labelled `label` of the classes `what` names
    /// and returns what it destroyed: what a token kept of a write killed
    /// midway. Only ever called for a label whose write this ceremony's
    /// journal recorded as started and never done; it destroys nothing else.
    fn remove_unfinished(
        &self,
        label: &str,
        what: Unfinished,
    ) -> Result<Vec<ObjectInfo>, TokenError>;
    /// Checks the token can generate and sign with each key type, before
    /// anything is generated; returns the mechanism chosen for each.
    fn require_mechanisms(
        &self,
        key_types: &[KeyType],
    ) -> Result<Vec<(KeyType, String)>, TokenError>;
    /// Every object carrying this label (bounded; used to refuse foreign objects).
    fn objects_labelled(&self, label: &str) -> Result<Vec<ObjectInfo>, TokenError>;
    /// The key pair with this label: None if there is none, an error if there are several.
    fn find_key_pair(&self, label: &str, key_type: KeyType) -> Result<Option<KeyPair>, TokenError>;
    /// Generates a CA key pair under `label` with CKA_ID `id`. The caller
    /// picks the id (from [`Token::random`], [`KEY_ID_LEN`] bytes) so that it
    /// can record the intent before the token acts (see `issue::ca`).
    fn generate_key_pair(
        &self,
        label: &str,
        key_type: KeyType,
        id: &[u8],
    ) -> Result<KeyPair, TokenError>;
    /// The X.509 signature value over `msg` (hashing on the host; ECDSA as DER).
    fn sign(&self, key: &KeyPair, msg: &[u8]) -> Result<Vec<u8>, TokenError>;
    /// The pairwise consistency test of `key` (see [`pairwise_test`]).
    fn check_key(&self, key: &KeyPair) -> Result<(), TokenError> {
        pairwise_test(key, |msg| self.sign(key, msg))
    }
    fn random(&self, len: usize) -> Result<Vec<u8>, TokenError>;
    fn find_certificate(&self, label: &str) -> Result<Option<Vec<u8>>, TokenError>;
    fn store_certificate(
        &self,
        key: &KeyPair,
        der: &[u8],
        subject_der: &[u8],
    ) -> Result<(), TokenError>;
    fn list_objects(&self) -> Result<Vec<ObjectInfo>, TokenError>;
    /// The values of the ceremony's data objects labelled `label` (public,
    /// on the token, CKA_APPLICATION "ceremony"): none, one, or, after a
    /// replacement cut short between its create and its destroy, several.
    fn find_data(&self, label: &str) -> Result<Vec<Vec<u8>>, TokenError>;
    /// Replaces the ceremony's data object labelled `label` with one holding
    /// `value`: the new object is created first, then the old ones are
    /// destroyed (PKCS#11 has no atomic replace), so a kill in between
    /// leaves both, never none.
    fn put_data(&self, label: &str, value: &[u8]) -> Result<(), TokenError>;
    /// Up to `max` signing handles, each on a session of its own, for other
    /// threads to sign with in parallel (a PKCS#11 session serves one thread
    /// at a time; the login is the process's). Empty when the token offers
    /// none, which is the default: callers then sign through [`Token::sign`].
    fn signers(&self, max: usize) -> Result<Vec<Box<dyn Signer + '_>>, TokenError> {
        let _ = max;
        Ok(Vec::new())
    }
    /// Whether the caller may go on with the next operation, asked between
    /// the signatures that [`Token::signers`] make elsewhere (a decorator
    /// stops the run here, e.g. on Ctrl-C). The default always says yes.
    fn checkpoint(&self) -> Result<(), TokenError> {
        Ok(())
    }

    // Backups (plan `[backup]`). A token without them says so from the
    // probe; the defaults are such a token.

    /// Checks, before anything is generated, that the token can wrap with
    /// AES key wrap with padding (RFC 5649, CKM_AES_KEY_WRAP_PAD); returns
    /// the mechanism's name.
    fn require_backup(&self) -> Result<&'static str, TokenError> {
        Err(TokenError::MechanismMissing {
            token: self.identity().to_string(),
            what: "back up CA keys".into(),
            missing: "CKM_AES_KEY_WRAP_PAD (AES key wrap with padding, RFC 5649)".into(),
        })
    }
    /// Key pairs generated from now on under these labels are extractable
    /// under a trusted wrap key only (CKA_WRAP_WITH_TRUSTED).
    fn back_up_labels(&self, labels: &[String]) {
        let _ = labels;
    }
    /// Every secret key the token marks CKA_TRUSTED: (label, CKA_ID).
    fn trusted_keys(&self) -> Result<Vec<(String, Vec<u8>)>, TokenError> {
        Ok(Vec::new())
    }
    /// Imports `value` as the trusted AES wrap key `label` with CKA_ID `id`
    /// (its check value), in a security-officer session: logs out, logs in
    /// as SO, creates, logs out. The caller logs in as the user after.
    fn import_wrap_key(
        &self,
        so_pin: &pin::Pin,
        label: &str,
        id: &[u8],
        value: &[u8],
    ) -> Result<(), TokenError> {
        let _ = (so_pin, label, id, value);
        self.require_backup().map(|_| ())
    }
    /// `key`'s private key wrapped (CKM_AES_KEY_WRAP_PAD) under the wrap key `wrap_label`.
    fn wrap(&self, wrap_label: &str, key: &KeyPair) -> Result<Vec<u8>, TokenError> {
        let _ = (wrap_label, key);
        self.require_backup().map(|_| Vec::new())
    }
    /// Unwraps `blob` under `wrap_label` as the private key of a CA key
    /// pair (sensitive, private, on the token, for signing, extractable under
    /// a trusted key only) and creates its public key from `spki`.
    fn unwrap_key_pair(
        &self,
        wrap_label: &str,
        blob: &[u8],
        label: &str,
        id: &[u8],
        key_type: KeyType,
        spki: &SubjectPublicKeyInfoOwned,
    ) -> Result<KeyPair, TokenError> {
        let _ = (wrap_label, blob, label, id, key_type, spki);
        Err(self
            .require_backup()
            .err()
            .unwrap_or(TokenError::Stopped { op: "C_UnwrapKey" }))
    }
    /// Destroys every object labelled `label` (a restore taking back what it made).
    fn destroy_labelled(&self, label: &str) -> Result<usize, TokenError> {
        let _ = label;
        Ok(0)
    }
    /// Logs out (a restore between its security-officer and user steps).
    fn logout(&self) {}
}

/// A signing handle for one thread (see [`Token::signers`]): the same
/// signatures as [`Token::sign`], with any key the token holds.
pub trait Signer: Send {
    fn sign(&mut self, key: &KeyPair, msg: &[u8]) -> Result<Vec<u8>, TokenError>;
}

/// A positive serial number of 20 bytes from the token's RNG (RFC 5280 §4.1.2.2:
/// at most 20 octets; CA/B BR §7.1: at least 64 bits of CSPRNG output).
pub fn random_serial(token: &dyn Token) -> Result<Vec<u8>, TokenError> {
    Ok(serial_from(&token.random(SERIAL_LEN)?))
}

/// Octets of a serial number.
pub const SERIAL_LEN: usize = 20;

/// A serial number of the first [`SERIAL_LEN`] bytes of `random` (the
/// caller's token RNG output), made positive with its length kept.
pub fn serial_from(random: &[u8]) -> Vec<u8> {
    let mut s = random[..SERIAL_LEN.min(random.len())].to_vec();
    if let Some(first) = s.first_mut() {
        *first &= 0x7f; // positive
        if *first == 0 {
            *first = 0x01; // keep the full 20 bytes so the encoding length never varies
        }
    }
    s
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("PKCS#11 module {} does not exist", .path.display())]
    ModuleMissing { path: PathBuf },
    #[error("{} is not a usable PKCS#11 module: {detail}", .path.display())]
    ModuleLoad { path: PathBuf, detail: String },
    #[error("PKCS#11 module {} has SHA-256 {got}, but the plan's token.module_sha256 is {expected}", .path.display())]
    ModuleHash {
        path: PathBuf,
        expected: String,
        got: String,
    },
    #[error("no token matches {uri}; tokens present: {}{}", list_or_none(.present), if *.uninitialised { DAMAGED } else { "" })]
    NoToken {
        uri: String,
        present: Vec<String>,
        /// An uninitialised token is among them: what a token whose store
        /// was cut short looks like (SoftHSM's free slot looks so too).
        uninitialised: bool,
    },
    #[error("{} tokens match {uri}: {}; make token.uri name exactly one (add serial=)", .matches.len(), .matches.join("; "))]
    AmbiguousToken { uri: String, matches: Vec<String> },
    #[error("token {serial} is in use by another ceremony process (lock {})", .lock.display())]
    Busy { serial: String, lock: PathBuf },
    #[error("wrong PIN for token {token}")]
    PinIncorrect { token: String },
    #[error("the user PIN of token {token} is locked")]
    PinLocked { token: String },
    #[error("token {token} cannot {what}: it lacks {missing}")]
    MechanismMissing {
        token: String,
        what: String,
        missing: String,
    },
    #[error("key \"{label}\" on the token is not protected as a CA key must be: {what}")]
    WeakKey { label: String, what: String },
    #[error(
        "{count} {what} objects on the token are labelled \"{label}\"; a label must name one key"
    )]
    AmbiguousLabel {
        label: String,
        what: &'static str,
        count: usize,
    },
    #[error("the public key of \"{label}\" on the token is unusable: {what}")]
    BadPublicKey { label: String, what: String },
    #[error("the token returned a malformed signature for \"{label}\": {what}")]
    BadSignature { label: String, what: String },
    #[error("key \"{label}\" on the token failed its pairwise test: {what}")]
    KeyUnusable { label: String, what: String },
    /// The caller's decorator (the operator's gate) stopped the run before
    /// `op`: Ctrl-C, a declined confirmation, a record it could not write.
    /// The token was not asked; the decorator holds the reason.
    #[error("{op} not called: the run stops here")]
    Stopped { op: &'static str },
    #[error("{op} failed on token {token}: {source}")]
    Pkcs11 {
        op: String,
        token: String,
        #[source]
        source: cryptoki::error::Error,
    },
}

/// Said when no token matches and an uninitialised one is present: SoftHSM
/// rewrites its token file in place at every login, and a process killed
/// there leaves the token uninitialised (or gone), its keys unreachable.
const DAMAGED: &str = "; if the token was initialised before, its store may be damaged (a token cut short while it saved shows as uninitialised or not at all)";

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join("; ")
    }
}

impl TokenError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            TokenError::ModuleMissing { .. } => {
                "install the token's PKCS#11 module (for SoftHSM: apt-get install softhsm2) or fix token.module / --module".into()
            }
            TokenError::ModuleLoad { .. } => "point token.module (or --module) at the vendor's PKCS#11 .so".into(),
            TokenError::ModuleHash { .. } => {
                "the module is not the reviewed one: restore it, or review the new one and update token.module_sha256".into()
            }
            TokenError::NoToken { uninitialised: false, .. } => "plug in the token, or fix token.uri (see `ceremony token list --uri pkcs11:...`)".into(),
            TokenError::NoToken { uninitialised: true, .. } => "plug in the token, or fix token.uri (see `ceremony token list --uri pkcs11:...`); if the token was there before, restore its store from the backup (SoftHSM: the token's directory), or re-initialise a rehearsal token (see docs/runbook.md)".into(),
            TokenError::AmbiguousToken { .. } => "add serial=<serial> to token.uri".into(),
            TokenError::Busy { .. } => "wait for the other run to finish; two runs must never share a token".into(),
            TokenError::PinIncorrect { .. } => "check the PIN and try again; repeated failures lock the user PIN".into(),
            TokenError::PinLocked { .. } => "the security officer must unlock or reset the user PIN (e.g. with the vendor tool)".into(),
            TokenError::MechanismMissing { what, .. } if what == "back up CA keys" => {
                "back up on a token with CKM_AES_KEY_WRAP_PAD and trusted keys (CKA_TRUSTED, CKA_WRAP_WITH_TRUSTED), or remove [backup] from the plan; nothing was generated".into()
            }
            TokenError::MechanismMissing { .. } => "choose a key type this token supports in the plan; nothing was generated".into(),
            TokenError::WeakKey { .. } => {
                "this key may have been exposed; do not use it: give the plan a new label so a fresh key is generated".into()
            }
            TokenError::AmbiguousLabel { .. } => "inspect with `ceremony token list` and give the plan an unused label".into(),
            TokenError::KeyUnusable { .. } => {
                "nothing was signed with it; inspect the token with `ceremony token list`, and give the plan a new label so a fresh key is generated".into()
            }
            TokenError::Pkcs11 { source, .. } if is_removed(source) => {
                "the token disappeared: reconnect it and run again; the ceremony resumes where it stopped".into()
            }
            _ => return None,
        })
    }
}

impl TokenError {
    /// Why the key itself (not the token, session or login) made this
    /// operation fail, when it did: a key object the token holds but cannot
    /// use, such as one SoftHSM wrote only in part.
    pub fn key_fault(&self) -> Option<String> {
        use cryptoki::error::{Error, RvError};
        match self {
            TokenError::BadPublicKey { what, .. }
            | TokenError::BadSignature { what, .. }
            | TokenError::KeyUnusable { what, .. } => Some(what.clone()),
            TokenError::Pkcs11 {
                op,
                source: Error::Pkcs11(rv, _),
                ..
            } if matches!(
                rv,
                RvError::GeneralError
                    | RvError::FunctionFailed
                    | RvError::KeyHandleInvalid
                    | RvError::KeyTypeInconsistent
                    | RvError::KeyFunctionNotPermitted
                    | RvError::KeySizeRange
                    | RvError::MechanismInvalid
                    | RvError::MechanismParamInvalid
                    | RvError::OperationNotInitialized
                    | RvError::AttributeValueInvalid
                    | RvError::AttributeTypeInvalid
                    | RvError::ObjectHandleInvalid
            ) =>
            {
                Some(format!("{op} answered {}", ckr_name(rv)))
            }
            _ => None,
        }
    }
}

/// `CKR_GENERAL_ERROR` for `RvError::GeneralError`: the name a PKCS#11
/// reader looks up, shorter than cryptoki's description.
pub fn ckr_name(rv: &cryptoki::error::RvError) -> String {
    let mut name = String::from("CKR");
    for c in format!("{rv:?}").chars() {
        if c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// Whether a cryptoki error says the token or device went away.
pub fn is_removed(e: &cryptoki::error::Error) -> bool {
    use cryptoki::error::{Error, RvError};
    matches!(
        e,
        Error::Pkcs11(
            RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::SessionHandleInvalid
                | RvError::DeviceError
                | RvError::SlotIdInvalid,
            _
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `token list` marks what a killed write leaves, and nothing whole.
    #[test]
    fn half_written_objects_are_told_apart() {
        let all = Some(true);
        let whole = ObjectInfo {
            class: "private-key".into(),
            label: "root-ca".into(),
            id: vec![1],
            key_type: Some("EC".into()),
            flags: Some(KeyFlags {
                token: all,
                private: all,
                sensitive: all,
                extractable: Some(false),
                always_sensitive: all,
                never_extractable: all,
                wrap_with_trusted: None,
            }),
            unreadable: None,
            empty_value: false,
        };
        assert_eq!(whole.half_written(), None);
        let no_flag = ObjectInfo {
            flags: whole.flags.map(|f| KeyFlags {
                never_extractable: None,
                ..f
            }),
            ..whole.clone()
        };
        assert_eq!(
            no_flag.half_written(),
            Some("a private key without all its flags")
        );
        let no_label = ObjectInfo {
            label: String::new(),
            ..whole.clone()
        };
        assert_eq!(no_label.half_written(), Some("no label"));
        let data = |empty_value| ObjectInfo {
            class: "data".into(),
            label: String::new(),
            key_type: None,
            flags: None,
            empty_value,
            ..whole.clone()
        };
        assert_eq!(data(true).half_written(), Some("an empty data object"));
        assert_eq!(data(false).half_written(), None);
        assert_eq!(
            ObjectInfo::unreadable("CKR_ATTRIBUTE_VALUE_INVALID").half_written(),
            Some("the token cannot describe it")
        );
    }

    /// No matching token and an uninitialised one present: the store may be
    /// damaged, and the hint says how to recover; otherwise neither.
    #[test]
    fn no_token_with_an_uninitialised_one_says_the_store_may_be_damaged() {
        let e = |uninitialised| TokenError::NoToken {
            uri: "pkcs11:token=t".into(),
            present: vec!["(an uninitialised token)".into()],
            uninitialised,
        };
        assert!(e(true).to_string().contains("its store may be damaged"));
        assert!(
            e(true)
                .hint()
                .unwrap()
                .contains("restore its store from the backup")
        );
        assert!(!e(false).to_string().contains("damaged"));
        assert!(!e(false).hint().unwrap().contains("backup"));
    }
}
