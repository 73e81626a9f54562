//! The certificate profiles of the ceremony: the CA hierarchy here, kubeadm's
//! leaves in the bundle issue. Pure: plan values in, `CertProfile` out.

pub mod kubeadm;

use x509_cert::ext::pkix::KeyUsages;
use x509_cert::name::Name;

use crate::plan::{CaRole, CaSpec};
use crate::x509::CertProfile;

/// Root: pathLen 1 (root → intermediate → leaf); intermediates: pathLen 0.
pub fn ca_path_len(role: CaRole) -> u8 {
    if role == CaRole::Root { 1 } else { 0 }
}

/// A CA certificate's profile: BasicConstraints and KeyUsage
/// (keyCertSign, cRLSign, digitalSignature) critical, SKI from the key, AKI =
/// the issuer's SKI except on the self-signed root, no EKU, no SAN.
pub fn ca_profile(spec: &CaSpec, issuer: Option<(&Name, &[u8])>) -> CertProfile {
    CertProfile {
        subject: spec.subject.clone(),
        issuer: issuer.map_or_else(|| spec.subject.clone(), |(n, _)| n.clone()),
        ca_path_len: Some(ca_path_len(spec.role)),
        key_usage: vec![
            KeyUsages::DigitalSignature,
            KeyUsages::KeyCertSign,
            KeyUsages::CRLSign,
        ],
        ext_key_usage: Vec::new(),
        sans: Vec::new(),
        authority_key_id: issuer.map(|(_, ski)| ski.to_vec()),
        subject_key_id: true,
    }
}

/// The kubelet signer's profile: a CA (pathLen 0) under the kubernetes CA,
/// limited by extended key usage to TLS client and server certificates (Go's
/// verifier refuses a chain whose CA lacks a leaf's usage), no SAN.
pub fn kubelet_signer_profile(subject: &Name, issuer: (&Name, &[u8])) -> CertProfile {
    use crate::x509::profile::{ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH};
    CertProfile {
        subject: subject.clone(),
        issuer: issuer.0.clone(),
        ca_path_len: Some(0),
        key_usage: vec![
            KeyUsages::DigitalSignature,
            KeyUsages::KeyCertSign,
            KeyUsages::CRLSign,
        ],
        ext_key_usage: vec![ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH],
        sans: Vec::new(),
        authority_key_id: Some(issuer.1.to_vec()),
        subject_key_id: true,
    }
}

/// One line per extension, as `check` prints them.
pub fn describe_extensions(p: &CertProfile) -> Vec<String> {
    use crate::x509::profile::{eku_name, key_usage_name};
    let mut out = vec![format!(
        "keyUsage (critical): {}",
        p.key_usage
            .iter()
            .map(|u| key_usage_name(*u))
            .collect::<Vec<_>>()
            .join(", ")
    )];
    if !p.ext_key_usage.is_empty() {
        out.push(format!(
            "extendedKeyUsage: {}",
            p.ext_key_usage
                .iter()
                .map(eku_name)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.push(match p.ca_path_len {
        Some(n) => format!("basicConstraints (critical): CA:TRUE, pathlen:{n}"),
        None => "basicConstraints (critical): CA:FALSE".into(),
    });
    if p.subject_key_id {
        out.push("subjectKeyIdentifier: SHA-1 of the public key (RFC 5280 method 1)".into());
    }
    if p.authority_key_id.is_some() {
        out.push("authorityKeyIdentifier: the issuer's subjectKeyIdentifier".into());
    }
    if !p.sans.is_empty() {
        out.push(format!(
            "subjectAltName: {}",
            p.sans
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keytype::KeyType;
    use crate::plan::Lifetime;
    use std::str::FromStr;

    fn spec(role: CaRole, cn: &str) -> CaSpec {
        CaSpec {
            role,
            label: "l".into(),
            subject: Name::from_str(cn).unwrap(),
            key: KeyType::EcdsaP256,
            lifetime: Lifetime::For(std::time::Duration::from_secs(3600)),
        }
    }

    #[test]
    fn root_is_self_issued_without_aki() {
        let p = ca_profile(&spec(CaRole::Root, "CN=Root"), None);
        assert_eq!(p.issuer, p.subject);
        assert_eq!(p.ca_path_len, Some(1));
        assert!(p.authority_key_id.is_none() && p.subject_key_id);
        assert!(p.ext_key_usage.is_empty() && p.sans.is_empty());
    }

    #[test]
    fn intermediate_points_at_the_root() {
        let root = Name::from_str("CN=Root").unwrap();
        let p = ca_profile(&spec(CaRole::Etcd, "CN=etcd-ca"), Some((&root, &[1, 2, 3])));
        assert_eq!(p.issuer, root);
        assert_eq!(p.ca_path_len, Some(0));
        assert_eq!(p.authority_key_id.as_deref(), Some(&[1u8, 2, 3][..]));
        let lines = describe_extensions(&p);
        assert!(
            lines
                .iter()
                .any(|l| l == "basicConstraints (critical): CA:TRUE, pathlen:0")
        );
    }
}
