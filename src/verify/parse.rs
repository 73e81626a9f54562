//! Parsing what a bundle holds: PEM blocks, certificates (the fields the
//! kubeadm profiles decide), private and public keys (normalised so that a
//! key file and a certificate can be compared).
//!
//! Pure: bytes in, values out. Private key material only lives in
//! `Zeroizing` buffers here and is reduced to its public key at once.

use std::net::IpAddr;
use std::time::SystemTime;

use der::oid::ObjectIdentifier;
use der::{Decode, Encode};
use flagset::FlagSet;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};

use crate::keys::public::{CSR_LABELS, PublicKey};

pub use crate::pem::Block;

/// Every PEM block of a file, in order (see `crate::pem`).
pub fn pem_blocks(bytes: &[u8]) -> Result<Vec<Block>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not PEM text (not UTF-8)".to_string())?;
    crate::pem::pem_blocks(text)
}

/// The public key of a PKCS#10 request file (one `CERTIFICATE REQUEST` block).
pub fn csr_public(bytes: &[u8]) -> Result<PublicKey, String> {
    let blocks = pem_blocks(bytes)?;
    match blocks.as_slice() {
        [one] if CSR_LABELS.contains(&one.label.as_str()) => {
            let req = x509_cert::request::CertReq::from_der(&one.der)
                .map_err(|e| format!("not a PKCS#10 request: {e}"))?;
            PublicKey::from_spki(&req.info.public_key).map_err(|e| e.to_string())
        }
        _ => Err(format!(
            "holds {} PEM blocks; expected one \"CERTIFICATE REQUEST\"",
            blocks.len()
        )),
    }
}

/// What `verify` compares in a certificate.
pub struct Cert {
    pub der: Vec<u8>,
    pub cert: Certificate,
    pub subject: String,
    pub issuer: String,
    pub subject_der: Vec<u8>,
    pub issuer_der: Vec<u8>,
    pub cn: Vec<String>,
    pub orgs: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// BasicConstraints: (cA, pathLen), or None when absent.
    pub basic_constraints: Option<(bool, Option<u8>)>,
    pub key_usage: Option<FlagSet<KeyUsages>>,
    pub eku: Option<Vec<ObjectIdentifier>>,
    /// "DNS:name" / "IP:addr" / "other:…", as `San` displays them.
    pub sans: Vec<String>,
    pub ski: Option<Vec<u8>>,
    pub aki: Option<Vec<u8>>,
    pub key: Result<PublicKey, String>,
    /// An extension that did not decode.
    pub bad_extension: Option<String>,
}

impl Cert {
    pub fn from_der(der: &[u8]) -> Result<Cert, String> {
        let cert =
            Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let tbs = cert.tbs_certificate();
        let mut bad = None;
        let mut note = |e: String| {
            if bad.is_none() {
                bad = Some(e);
            }
        };
        let strings = |oid: ObjectIdentifier| -> Vec<String> {
            tbs.subject()
                .iter()
                .filter(|a| a.oid == oid)
                .map(|a| {
                    x509_cert::ext::pkix::name::DirectoryString::try_from(&a.value)
                        .map(String::from)
                        .unwrap_or_else(|_| "(undecodable)".into())
                })
                .collect()
        };
        use const_oid::db::rfc4519::{COMMON_NAME, ORGANIZATION_NAME};
        let cn = strings(COMMON_NAME);
        let mut orgs = strings(ORGANIZATION_NAME);
        orgs.sort();
        let bc = tbs.get_extension::<BasicConstraints>().unwrap_or_else(|e| {
            note(format!("basicConstraints: {e}"));
            None
        });
        let ku = tbs.get_extension::<KeyUsage>().unwrap_or_else(|e| {
            note(format!("keyUsage: {e}"));
            None
        });
        let eku = tbs.get_extension::<ExtendedKeyUsage>().unwrap_or_else(|e| {
            note(format!("extendedKeyUsage: {e}"));
            None
        });
        let san = tbs.get_extension::<SubjectAltName>().unwrap_or_else(|e| {
            note(format!("subjectAltName: {e}"));
            None
        });
        let ski = tbs
            .get_extension::<SubjectKeyIdentifier>()
            .unwrap_or_else(|e| {
                note(format!("subjectKeyIdentifier: {e}"));
                None
            });
        let aki = tbs
            .get_extension::<AuthorityKeyIdentifier>()
            .unwrap_or_else(|e| {
                note(format!("authorityKeyIdentifier: {e}"));
                None
            });
        let sans = san
            .map(|(_, s)| s.0.iter().map(general_name).collect())
            .unwrap_or_default();
        Ok(Cert {
            der: der.to_vec(),
            subject: crate::x509::name_text(tbs.subject()),
            issuer: crate::x509::name_text(tbs.issuer()),
            subject_der: tbs.subject().to_der().map_err(|e| e.to_string())?,
            issuer_der: tbs.issuer().to_der().map_err(|e| e.to_string())?,
            cn,
            orgs,
            not_before: tbs.validity().not_before.to_system_time(),
            not_after: tbs.validity().not_after.to_system_time(),
            basic_constraints: bc.map(|(_, b)| (b.ca, b.path_len_constraint)),
            key_usage: ku.map(|(_, k)| k.0),
            eku: eku.map(|(_, e)| e.0),
            sans,
            ski: ski.map(|(_, s)| s.0.as_bytes().to_vec()),
            aki: aki.and_then(|(_, a)| a.key_identifier.map(|k| k.as_bytes().to_vec())),
            key: PublicKey::from_spki(tbs.subject_public_key_info()).map_err(|e| e.to_string()),
            bad_extension: bad,
            cert,
        })
    }

    /// Whether `issuer`'s key verifies this certificate's signature.
    pub fn signed_by(&self, issuer: &Cert) -> Result<(), String> {
        let tbs = self
            .cert
            .tbs_certificate()
            .to_der()
            .map_err(|e| e.to_string())?;
        let sig = self
            .cert
            .signature()
            .as_bytes()
            .ok_or("the signature has unused bits")?;
        crate::x509::verify_signature(
            issuer.cert.tbs_certificate().subject_public_key_info(),
            self.cert.signature_algorithm(),
            &tbs,
            sig,
        )
    }

    pub fn is_ca(&self) -> bool {
        matches!(self.basic_constraints, Some((true, _)))
    }

    pub fn self_issued(&self) -> bool {
        self.subject_der == self.issuer_der
    }
}

fn general_name(g: &GeneralName) -> String {
    match g {
        GeneralName::DnsName(d) => format!("DNS:{}", d.as_str()),
        GeneralName::IpAddress(o) => {
            let b = o.as_bytes();
            let ip = match b.len() {
                4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
                16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
                _ => None,
            };
            ip.map_or_else(
                || format!("IP:(bad {} bytes)", b.len()),
                |ip| format!("IP:{ip}"),
            )
        }
        GeneralName::Rfc822Name(e) => format!("email:{}", e.as_str()),
        GeneralName::UniformResourceIdentifier(u) => format!("URI:{}", u.as_str()),
        GeneralName::DirectoryName(n) => format!("DirName:{n}"),
        other => format!("other:{other:?}"),
    }
}

/// The certificates of a `.crt` file (or certificate-authority-data).
pub struct CertFile {
    /// Labels of every block, in order.
    pub labels: Vec<String>,
    /// The certificates that parsed, in order.
    pub certs: Vec<Cert>,
    /// Why a CERTIFICATE block did not parse, if one did not.
    pub error: Option<String>,
}

impl CertFile {
    pub fn parse(bytes: &[u8]) -> Result<CertFile, String> {
        let blocks = pem_blocks(bytes)?;
        let mut certs = Vec::new();
        let mut error = None;
        for b in blocks.iter().filter(|b| b.label == "CERTIFICATE") {
            match Cert::from_der(&b.der) {
                Ok(c) => certs.push(c),
                Err(e) => error = error.or(Some(e)),
            }
        }
        Ok(CertFile {
            labels: blocks.into_iter().map(|b| b.label).collect(),
            certs,
            error,
        })
    }
}

/// (host, port) of an `https://host:port[/path]` URL; Err says what is wrong.
pub fn https_host_port(url: &str) -> Result<(String, u16), String> {
    let rest = url.strip_prefix("https://").ok_or("not an https:// URL")?;
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once(']').ok_or("unclosed [ in the host")?;
        (h.to_string(), p.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?,
        None => 443,
    };
    Ok((host, port))
}

/// The SAN form ("IP:…" or "DNS:…") of a URL host.
pub fn host_san(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(ip) => format!("IP:{ip}"),
        Err(_) => format!("DNS:{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            https_host_port("https://10.0.0.1:6443").unwrap(),
            ("10.0.0.1".into(), 6443)
        );
        assert_eq!(
            https_host_port("https://[fd00::1]:6443").unwrap(),
            ("fd00::1".into(), 6443)
        );
        assert_eq!(
            https_host_port("https://k8s.example.com").unwrap(),
            ("k8s.example.com".into(), 443)
        );
        assert!(https_host_port("http://10.0.0.1:6443").is_err());
        assert!(https_host_port("https://:6443").is_err());
        assert_eq!(host_san("fd00::1"), "IP:fd00::1");
        assert_eq!(host_san("api.example"), "DNS:api.example");
    }

    #[test]
    fn pem_blocks_and_errors() {
        assert!(pem_blocks(b"junk\n").unwrap().is_empty());
        assert!(pem_blocks(b"-----BEGIN X-----\nAAAA\n").is_err());
        assert!(pem_blocks(b"-----BEGIN X-----\nAAAA\n-----END Y-----\n").is_err());
        let b = pem_blocks(b"x\n-----BEGIN X-----\nAAEC\n-----END X-----\n").unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].label, "X");
        assert_eq!(b[0].der.as_slice(), &[0, 1, 2]);
    }
}
