//! Reading what the ceremony wrote: files and their modes, PEM,
//! certificates (x509-parser, independent of the crate), keys through
//! OpenSSL, and where kubeadm keeps each file.

use std::collections::BTreeSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::X509Name;

use super::peers::openssl;
use super::{read, write_secret};

/// `OUT/nodes/<node>/etc/kubernetes`.
pub fn node_dir(out: &Path, node: &str) -> PathBuf {
    out.join("nodes").join(node).join("etc/kubernetes")
}

/// Every PEM block in `data` (label, DER).
pub fn pem_blocks(data: &[u8]) -> Vec<Pem> {
    Pem::iter_from_buffer(data)
        .map(|p| p.expect("well-formed PEM"))
        .collect()
}

/// The DER of every CERTIFICATE block in `path`; panics on any other block.
pub fn certs_in(path: &Path) -> Vec<Vec<u8>> {
    pem_blocks(&read(path))
        .into_iter()
        .map(|p| {
            assert_eq!(
                p.label,
                "CERTIFICATE",
                "{} holds a {} block",
                path.display(),
                p.label
            );
            p.contents
        })
        .collect()
}

/// The only certificate in `path` (panics unless there is exactly one).
pub fn one_cert(path: &Path) -> Vec<u8> {
    let mut v = certs_in(path);
    assert_eq!(
        v.len(),
        1,
        "{} must hold exactly one certificate",
        path.display()
    );
    v.remove(0)
}

pub fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, c) = X509Certificate::from_der(der).expect("DER certificate");
    assert!(rest.is_empty(), "trailing bytes after the certificate");
    c
}

fn attr_name(oid: &str) -> &str {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        other => other,
    }
}

/// A name as its RDN sequence, each RDN's attributes sorted ("O=a+O=b").
pub fn rdns(name: &X509Name<'_>) -> Vec<String> {
    name.iter_rdn()
        .map(|rdn| {
            let mut v: Vec<String> = rdn
                .iter()
                .map(|a| {
                    format!(
                        "{}={}",
                        attr_name(&a.attr_type().to_id_string()),
                        a.as_str().expect("string attribute")
                    )
                })
                .collect();
            v.sort();
            v.join("+")
        })
        .collect()
}

pub fn cn(c: &X509Certificate<'_>) -> String {
    c.subject()
        .iter_common_name()
        .map(|a| a.as_str().expect("CN").to_string())
        .collect::<Vec<_>>()
        .join(",")
}

pub fn orgs(c: &X509Certificate<'_>) -> BTreeSet<String> {
    c.subject()
        .iter_organization()
        .map(|a| a.as_str().expect("O").to_string())
        .collect()
}

pub fn eku(c: &X509Certificate<'_>) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    if let Some(e) = c.extended_key_usage().expect("EKU") {
        let v = e.value;
        for (on, name) in [
            (v.any, "any"),
            (v.server_auth, "serverAuth"),
            (v.client_auth, "clientAuth"),
            (v.code_signing, "codeSigning"),
            (v.email_protection, "emailProtection"),
            (v.time_stamping, "timeStamping"),
            (v.ocsp_signing, "ocspSigning"),
        ] {
            if on {
                s.insert(name.to_string());
            }
        }
        for o in &v.other {
            s.insert(o.to_id_string());
        }
    }
    s
}

/// (critical, flags as text) of KeyUsage, if present.
pub fn key_usage(c: &X509Certificate<'_>) -> Option<(bool, String)> {
    c.key_usage()
        .expect("KeyUsage")
        .map(|k| (k.critical, k.value.to_string()))
}

/// (critical, CA, pathLen) of BasicConstraints, if present.
pub fn basic_constraints(c: &X509Certificate<'_>) -> Option<(bool, bool, Option<u32>)> {
    c.basic_constraints()
        .expect("BasicConstraints")
        .map(|b| (b.critical, b.value.ca, b.value.path_len_constraint))
}

/// The SANs as "DNS:x" / "IP:x" in certificate order (None: no extension).
pub fn sans(c: &X509Certificate<'_>) -> Option<Vec<String>> {
    c.subject_alternative_name().expect("SAN").map(|s| {
        s.value
            .general_names
            .iter()
            .map(|g| match g {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::IPAddress(b) if b.len() == 4 => {
                    let a: [u8; 4] = (*b).try_into().expect("4 bytes");
                    format!("IP:{}", IpAddr::from(Ipv4Addr::from(a)))
                }
                GeneralName::IPAddress(b) if b.len() == 16 => {
                    let a: [u8; 16] = (*b).try_into().expect("16 bytes");
                    format!("IP:{}", IpAddr::from(Ipv6Addr::from(a)))
                }
                other => format!("{other:?}"),
            })
            .collect()
    })
}

pub fn aki(c: &X509Certificate<'_>) -> Option<Vec<u8>> {
    c.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

pub fn ski(c: &X509Certificate<'_>) -> Option<Vec<u8>> {
    c.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

/// The extensions present, as "OID (critical)" / "OID", sorted.
pub fn extension_set(c: &X509Certificate<'_>) -> BTreeSet<String> {
    c.extensions()
        .iter()
        .map(|e| {
            let id = e.oid.to_id_string();
            if e.critical {
                format!("{id} (critical)")
            } else {
                id
            }
        })
        .collect()
}

/// "RSA-2048", "EC-256 (1.2.840.10045.3.1.7)".
pub fn key_type(c: &X509Certificate<'_>) -> String {
    let spki = c.public_key();
    match spki.parsed().expect("public key") {
        PublicKey::RSA(r) => format!("RSA-{}", r.key_size()),
        PublicKey::EC(e) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            format!("EC-{} ({curve})", e.key_size())
        }
        other => format!("{other:?}"),
    }
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn spki_der(c: &X509Certificate<'_>) -> Vec<u8> {
    c.public_key().raw.to_vec()
}

/// The DER SubjectPublicKeyInfo of a PEM private key, as OpenSSL computes it
/// (`openssl pkey -pubout`). The key is written to `scratch` (0600) first.
pub fn openssl_pubkey_of_private(key_pem: &[u8], scratch: &Path) -> Vec<u8> {
    write_secret(scratch, key_pem);
    let der_path = scratch.with_extension("pub.der");
    openssl(&[
        "pkey",
        "-in",
        &scratch.to_string_lossy(),
        "-pubout",
        "-outform",
        "DER",
        "-out",
        &der_path.to_string_lossy(),
    ])
    .expect_ok();
    let der = read(&der_path);
    let _ = fs::remove_file(scratch);
    let _ = fs::remove_file(&der_path);
    der
}

/// The DER of a PEM `PUBLIC KEY`, as OpenSSL reads it.
pub fn openssl_pubkey(pub_pem_path: &Path) -> Vec<u8> {
    let der_path = pub_pem_path.with_extension("der.tmp");
    openssl(&[
        "pkey",
        "-pubin",
        "-in",
        &pub_pem_path.to_string_lossy(),
        "-outform",
        "DER",
        "-out",
        &der_path.to_string_lossy(),
    ])
    .expect_ok();
    let der = read(&der_path);
    let _ = fs::remove_file(&der_path);
    der
}

pub fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).expect("ascii"));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}
