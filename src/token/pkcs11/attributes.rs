//! Reading objects back from their attributes: a key pair (its CKA_ID, its
//! type, its flags and its public key as a SubjectPublicKeyInfo, from an RSA
//! modulus and exponent or an EC point), and the class, label and ID of any
//! object, as `token list` and recovery show them.

use cryptoki::error::RvError;
use cryptoki::object::{Attribute, AttributeType, KeyType as CkKeyType, ObjectClass, ObjectHandle};
use der::asn1::{BitString, OctetString, UintRef};
use der::{Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use super::Pkcs11Token;
use super::templates::curve_of;
use crate::keytype::KeyType;
use crate::token::{KeyFlags, KeyPair, ObjectInfo, TokenError};

impl Pkcs11Token {
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
                    AttributeType::WrapWithTrusted,
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
                Attribute::WrapWithTrusted(v) => f.wrap_with_trusted = Some(v),
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

    pub(super) fn key_pair_from(
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

    pub(super) fn class_name(c: ObjectClass) -> String {
        match c {
            ObjectClass::PRIVATE_KEY => "private-key".into(),
            ObjectClass::PUBLIC_KEY => "public-key".into(),
            ObjectClass::CERTIFICATE => "certificate".into(),
            ObjectClass::SECRET_KEY => "secret-key".into(),
            ObjectClass::DATA => "data".into(),
            other => other.to_string(),
        }
    }

    pub(super) fn info(&self, h: ObjectHandle) -> Result<ObjectInfo, TokenError> {
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
            empty_value: false,
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
            if c == ObjectClass::DATA {
                // Data objects are small; a value the token will not give
                // is not counted as empty.
                info.empty_value = self
                    .session
                    .get_attributes(h, &[AttributeType::Value])
                    .is_ok_and(|a| {
                        a.iter()
                            .any(|a| matches!(a, Attribute::Value(v) if v.is_empty()))
                    });
            }
        }
        Ok(info)
    }
}

/// Return values by which a token says it cannot describe one object (and
/// not that the session or the token failed).
pub(super) fn unreadable_object(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::AttributeValueInvalid
            | RvError::ObjectHandleInvalid
            | RvError::AttributeTypeInvalid
            | RvError::AttributeSensitive
    )
}
