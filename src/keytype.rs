//! Key types the ceremony knows, for CA keys on the token and leaf keys on
//! the laptop alike, with the signature algorithm each one signs with.

use std::fmt;
use std::str::FromStr;

/// The five key types kubeadm's `encryptionAlgorithm` knows, also used for CAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

/// The hash a signature with this key uses (hashing is done on the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
}

impl KeyType {
    pub const ALL: [KeyType; 5] = [
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
        }
    }

    pub fn is_rsa(self) -> bool {
        self.rsa_bits().is_some()
    }

    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyType::Rsa2048 => Some(2048),
            KeyType::Rsa3072 => Some(3072),
            KeyType::Rsa4096 => Some(4096),
            _ => None,
        }
    }

    /// ecdsa-with-SHA384 for P-384 (RFC 5758 §3.2 pairs curve and hash);
    /// SHA-256 for P-256 and every RSA size, as kubeadm and Go do.
    pub fn hash(self) -> Hash {
        match self {
            KeyType::EcdsaP384 => Hash::Sha384,
            _ => Hash::Sha256,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        KeyType::ALL.into_iter().find(|k| k.name() == s).ok_or(())
    }
}

/// The accepted names, for error messages.
pub fn key_type_names() -> String {
    KeyType::ALL.map(KeyType::name).join(", ")
}
