//! Our own certificate profile: it emits exactly the extensions a
//! certificate profile lists, in Go's order, and nothing else. It is also an
//! x509-cert `BuilderProfile`, so that the tests can hold the TBS that
//! `x509::build` writes to the one x509-cert's builder makes.
//!
//! The ready-made CA/B profiles add what kubeadm does not (AKI on a
//! self-signed root, serverAuth on intermediates), so every certificate here
//! is described by a `CertProfile` value that `check` can print and `verify`
//! can compare against.

use der::asn1::{Ia5String, OctetString};
use der::oid::ObjectIdentifier;
use spki::SubjectPublicKeyInfoRef;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;

use super::san::San;

pub use const_oid::db::rfc5280::{ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH};

/// Everything in a certificate that the profile decides (not the key, serial or times).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertProfile {
    pub subject: Name,
    pub issuer: Name,
    /// Some(pathLen) for a CA, None for a leaf (CA:FALSE).
    pub ca_path_len: Option<u8>,
    pub key_usage: Vec<KeyUsages>,
    pub ext_key_usage: Vec<ObjectIdentifier>,
    pub sans: Vec<San>,
    /// The issuer certificate's SKI, copied into AKI; None for a self-signed root.
    pub authority_key_id: Option<Vec<u8>>,
    /// Whether to put an SKI in (CAs: yes; kubeadm's leaves carry none).
    pub subject_key_id: bool,
}

impl CertProfile {
    /// The X.509 extensions in the order Go's crypto/x509 writes them:
    /// KeyUsage, ExtKeyUsage, BasicConstraints, SKI, AKI, SAN.
    pub fn extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
    ) -> Result<Vec<Extension>, der::Error> {
        let mut out = Vec::new();
        let mut ku = flagset::FlagSet::<KeyUsages>::default();
        for u in &self.key_usage {
            ku |= *u;
        }
        // RFC 5280 §4.2.1.3: conforming CAs SHOULD mark key usage critical.
        out.push(ext(true, &KeyUsage(ku))?);
        if !self.ext_key_usage.is_empty() {
            out.push(ext(false, &ExtendedKeyUsage(self.ext_key_usage.clone()))?);
        }
        // RFC 5280 §4.2.1.9: critical in CA certificates; kubeadm marks leaves the same.
        let bc = BasicConstraints {
            ca: self.ca_path_len.is_some(),
            path_len_constraint: self.ca_path_len,
        };
        out.push(ext(true, &bc)?);
        if self.subject_key_id {
            out.push(ext(false, &ski(spk.subject_public_key.raw_bytes())?)?);
        }
        if let Some(aki) = &self.authority_key_id {
            let aki = AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(aki.clone())?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            };
            out.push(ext(false, &aki)?);
        }
        if !self.sans.is_empty() {
            let names = self
                .sans
                .iter()
                .map(|s| match s {
                    San::Dns(d) => Ia5String::new(d).map(GeneralName::DnsName),
                    San::Ip(ip) => Ok(GeneralName::from(*ip)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push(ext(false, &SubjectAltName(names))?);
        }
        Ok(out)
    }
}

/// One extension of `value`, for the CRL's extensions as for a profile's.
pub(crate) fn ext_value<T: der::Encode + const_oid::AssociatedOid>(
    critical: bool,
    value: &T,
) -> Result<Extension, der::Error> {
    ext(critical, value)
}

fn ext<T: der::Encode + const_oid::AssociatedOid>(
    critical: bool,
    value: &T,
) -> Result<Extension, der::Error> {
    (critical, value).to_extension(&Name::default(), &[])
}

/// RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING
/// bytes, as Go (and so kubeadm) computes it.
pub fn ski(public_key_bits: &[u8]) -> Result<SubjectKeyIdentifier, der::Error> {
    use sha1::Digest;
    Ok(SubjectKeyIdentifier(OctetString::new(
        sha1::Sha1::digest(public_key_bits).to_vec(),
    )?))
}

impl BuilderProfile for CertProfile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        Ok(self.extensions(spk)?)
    }
}

/// Human names of key usages, for `check` and `verify` messages.
pub fn key_usage_name(u: KeyUsages) -> &'static str {
    match u {
        KeyUsages::DigitalSignature => "digitalSignature",
        KeyUsages::NonRepudiation => "nonRepudiation",
        KeyUsages::KeyEncipherment => "keyEncipherment",
        KeyUsages::DataEncipherment => "dataEncipherment",
        KeyUsages::KeyAgreement => "keyAgreement",
        KeyUsages::KeyCertSign => "keyCertSign",
        KeyUsages::CRLSign => "cRLSign",
        KeyUsages::EncipherOnly => "encipherOnly",
        KeyUsages::DecipherOnly => "decipherOnly",
    }
}

pub fn eku_name(oid: &ObjectIdentifier) -> String {
    if *oid == ID_KP_SERVER_AUTH {
        "serverAuth".into()
    } else if *oid == ID_KP_CLIENT_AUTH {
        "clientAuth".into()
    } else {
        oid.to_string()
    }
}
