//! Backups on a PKCS#11 token: the trusted wrap key (created by the
//! security officer: CKA_TRUSTED, public, sensitive, never extractable),
//! CA private keys wrapped with CKM_AES_KEY_WRAP_PAD under it, and unwrapped
//! again onto a new token with the CA key template.

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType as CkKeyType, ObjectClass};
use cryptoki::session::UserType;
use der::Encode;
use spki::SubjectPublicKeyInfoOwned;

use super::Pkcs11Token;
use super::templates::curve_of;
use crate::keytype::KeyType;
use crate::token::pin::Pin;
use crate::token::{KeyPair, Token, TokenError};

impl Pkcs11Token {
    /// AES key wrap with padding (RFC 5649) as CKM_AES_KEY_WRAP_PAD, its
    /// name for the record. (PKCS#11 3.0's CKM_AES_KEY_WRAP_KWP, kryoptic's
    /// name for it, is one cryptoki 0.12 drops from the mechanism list and
    /// cannot call: such a token is refused here.)
    pub(super) fn require_backup_mechanisms(&self) -> Result<&'static str, TokenError> {
        let list = self
            .ctx
            .get_mechanism_list(self.slot)
            .map_err(self.err("C_GetMechanismList"))?;
        let hidden = crate::failpoint::hidden_mechanisms();
        let m = MechanismType::AES_KEY_WRAP_PAD;
        if !list.contains(&m) || hidden.contains(&m.to_string()) {
            return Err(TokenError::MechanismMissing {
                token: self.identity.to_string(),
                what: "back up CA keys".into(),
                missing: "CKM_AES_KEY_WRAP_PAD (AES key wrap with padding, RFC 5649)".into(),
            });
        }
        Ok("CKM_AES_KEY_WRAP_PAD")
    }

    pub(super) fn trusted_secret_keys(&self) -> Result<Vec<(String, Vec<u8>)>, TokenError> {
        let found = self.find(
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Trusted(true),
            ],
            64,
        )?;
        let mut out = Vec::new();
        for h in found {
            let attrs = self
                .session
                .get_attributes(h, &[AttributeType::Label, AttributeType::Id])
                .map_err(self.err("C_GetAttributeValue"))?;
            let (mut label, mut id) = (String::new(), Vec::new());
            for a in attrs {
                match a {
                    Attribute::Label(l) => label = String::from_utf8_lossy(&l).into_owned(),
                    Attribute::Id(i) => id = i,
                    _ => {}
                }
            }
            out.push((label, id));
        }
        Ok(out)
    }

    pub(super) fn import_trusted(
        &self,
        so_pin: &Pin,
        label: &str,
        id: &[u8],
        value: &[u8],
    ) -> Result<(), TokenError> {
        // One login state per application: the user's ends here.
        let _ = self.session.logout();
        let auth = cryptoki::types::AuthPin::new(Box::from(so_pin.expose()));
        match self.session.login(UserType::So, Some(&auth)) {
            Ok(()) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                return Err(TokenError::PinIncorrect {
                    token: format!("{} (security officer)", self.identity),
                });
            }
            Err(e) => return Err(self.err("C_Login (security officer)")(e)),
        }
        // Public (an SO session cannot create a private object), sensitive,
        // never extractable, trusted; for wrapping and unwrapping only.
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(CkKeyType::AES),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Trusted(true),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::Modifiable(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
            Attribute::Value(value.to_vec()),
        ];
        let made = self
            .session
            .create_object(&template)
            .map_err(self.err(&format!("C_CreateObject (trusted wrap key \"{label}\")")));
        let _ = self.session.logout();
        made.map(|_| ())
    }

    fn wrap_key_handle(
        &self,
        wrap_label: &str,
    ) -> Result<cryptoki::object::ObjectHandle, TokenError> {
        let found = self.find(
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(wrap_label.as_bytes().to_vec()),
                Attribute::Trusted(true),
            ],
            2,
        )?;
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(TokenError::BadPublicKey {
                label: wrap_label.into(),
                what: "the token holds no trusted wrap key under this label".into(),
            }),
            _ => Err(TokenError::AmbiguousLabel {
                label: wrap_label.into(),
                what: "trusted wrap key",
                count: found.len(),
            }),
        }
    }

    pub(super) fn wrap_private(
        &self,
        wrap_label: &str,
        key: &KeyPair,
    ) -> Result<Vec<u8>, TokenError> {
        let wrapping = self.wrap_key_handle(wrap_label)?;
        self.find_key_pair(&key.label, key.key_type)?;
        let handle = self.handles.borrow().get(&key.id).copied().ok_or_else(|| {
            TokenError::BadPublicKey {
                label: key.label.clone(),
                what: "the key is no longer on the token".into(),
            }
        })?;
        self.session
            .wrap_key(&Mechanism::AesKeyWrapPad, wrapping, handle)
            .map_err(self.err(&format!("C_WrapKey (\"{}\")", key.label)))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn unwrap_pair(
        &self,
        wrap_label: &str,
        blob: &[u8],
        label: &str,
        id: &[u8],
        key_type: KeyType,
        spki: &SubjectPublicKeyInfoOwned,
    ) -> Result<KeyPair, TokenError> {
        let unwrapping = self.wrap_key_handle(wrap_label)?;
        let bad = |what: String| TokenError::BadPublicKey {
            label: label.into(),
            what,
        };
        let lab = Attribute::Label(label.as_bytes().to_vec());
        let ck_type = if key_type.is_rsa() {
            CkKeyType::RSA
        } else {
            CkKeyType::EC
        };
        let mut private = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(ck_type),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::WrapWithTrusted(true),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            lab.clone(),
            Attribute::Id(id.to_vec()),
        ];
        if !key_type.is_rsa() {
            private.push(Attribute::SignRecover(false));
        }
        let priv_h = self
            .session
            .unwrap_key(&Mechanism::AesKeyWrapPad, unwrapping, blob, &private)
            .map_err(self.err(&format!("C_UnwrapKey (\"{label}\")")))?;
        let mut public = vec![
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(ck_type),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            lab,
            Attribute::Id(id.to_vec()),
        ];
        let key_bytes = spki.subject_public_key.raw_bytes();
        if key_type.is_rsa() {
            let pk =
                <pkcs1::RsaPublicKey<der::asn1::UintRef<'_>> as der::Decode>::from_der(key_bytes)
                    .map_err(|e| bad(format!("the certificate's RSA key does not parse ({e})")))?;
            public.push(Attribute::Modulus(pk.modulus.as_bytes().to_vec()));
            public.push(Attribute::PublicExponent(
                pk.public_exponent.as_bytes().to_vec(),
            ));
        } else {
            let (curve, _) = curve_of(key_type);
            public.push(Attribute::EcParams(
                curve.to_der().map_err(|e| bad(e.to_string()))?,
            ));
            let point = der::asn1::OctetString::new(key_bytes)
                .and_then(|o| o.to_der())
                .map_err(|e| bad(e.to_string()))?;
            public.push(Attribute::EcPoint(point));
        }
        let pub_h = match self.session.create_object(&public) {
            Ok(h) => h,
            Err(e) => {
                let _ = self.session.destroy_object(priv_h);
                return Err(self
                    .err(&format!("C_CreateObject (public key \"{label}\")"))(
                    e
                ));
            }
        };
        let made = self.key_pair_from(label, priv_h, key_type);
        if made.is_err() {
            let _ = self.session.destroy_object(priv_h);
            let _ = self.session.destroy_object(pub_h);
        }
        made
    }

    pub(super) fn destroy_all_labelled(&self, label: &str) -> Result<usize, TokenError> {
        let found = self.find(&[Attribute::Label(label.as_bytes().to_vec())], 64)?;
        for h in &found {
            self.session
                .destroy_object(*h)
                .map_err(self.err(&format!("C_DestroyObject (\"{label}\")")))?;
        }
        Ok(found.len())
    }
}
