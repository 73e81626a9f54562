//! The templates of the objects the ceremony makes on a token: a key pair
//! (the private key on the token, private, sensitive and never extractable,
//! for signing only) and a CA certificate next to it.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, CertificateType, ObjectClass};
use der::Encode;

use crate::keytype::KeyType;
use crate::token::{KeyPair, TokenError};

/// The mechanism and the public and private key templates that make a key
/// pair of `key_type` labelled `label`, with CKA_ID `id` on both halves.
pub(super) fn key_pair(
    label: &str,
    key_type: KeyType,
    id: &[u8],
    backed_up: bool,
) -> Result<(Mechanism<'static>, Vec<Attribute>, Vec<Attribute>), TokenError> {
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
    // The private key: on the token, private, sensitive and never
    // extractable, for signing only; a backed-up key is extractable under a
    // trusted wrap key only (CKA_WRAP_WITH_TRUSTED cannot be cleared).
    let mut private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(backed_up),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        lab,
        Attribute::Id(id.clone()),
    ];
    if backed_up {
        private.push(Attribute::WrapWithTrusted(true));
    }
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
    Ok((mechanism, public, private))
}

/// A CA certificate, public and on the token, with the label and CKA_ID of
/// its key pair.
pub(super) fn certificate(key: &KeyPair, der: &[u8], subject_der: &[u8]) -> [Attribute; 8] {
    [
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(CertificateType::X_509),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Label(key.label.as_bytes().to_vec()),
        Attribute::Id(key.id.clone()),
        Attribute::Subject(subject_der.to_vec()),
        Attribute::Value(der.to_vec()),
    ]
}

/// A data object of the ceremony's: on the token, readable after the user
/// logs in only (so nobody without the PIN replaces it), not sensitive
/// (its value is a public hash), and not modifiable: it is replaced, never
/// edited.
pub(super) fn data(label: &str, value: &[u8]) -> [Attribute; 7] {
    [
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Modifiable(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Application(APPLICATION.to_vec()),
        Attribute::Value(value.to_vec()),
    ]
}

/// CKA_APPLICATION of the ceremony's data objects.
pub(super) const APPLICATION: &[u8] = b"ceremony";

/// The named curve of an ECDSA key type and its field size in bytes (the
/// length of each coordinate of a point, and of r and s).
pub(super) fn curve_of(key_type: KeyType) -> (der::oid::ObjectIdentifier, usize) {
    match key_type {
        KeyType::EcdsaP384 => (const_oid::db::rfc5912::SECP_384_R_1, 48),
        _ => (const_oid::db::rfc5912::SECP_256_R_1, 32),
    }
}
