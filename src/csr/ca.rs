//! The certificate request of a delegated CA: made with its key on the first
//! control-plane node, checked here before the root on the token signs it.
//!
//! Pure: bytes in, a decision out. Only the public key and the subject (which
//! must be the plan's exactly) reach the certificate; its extensions come
//! from the ceremony's CA profile, so the checks refuse a request that asks
//! for anything that profile would not give (a longer path, names, usages).

use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::name::Name;

use super::policy::{Refusal, parse_csr, requested_extensions, self_signature};
use crate::keys::public::PublicKey;
use crate::keytype::KeyType;

/// A delegated CA's request that passed every check.
#[derive(Debug, Clone)]
pub struct CheckedCaCsr {
    pub spki: SubjectPublicKeyInfoOwned,
    pub key_type: KeyType,
    /// The request's path as the plan names it.
    pub file: String,
    /// SHA-256 of the file's bytes as read and checked.
    pub sha256: [u8; 32],
}

/// Checks the request in `file` (named as the plan names it) for a CA with
/// this subject and key type: one PKCS#10 request, self-signed by its key,
/// the key of the plan's type, the subject exactly the plan's, no attribute
/// but an extension request, and no requested extension beyond
/// basicConstraints CA:TRUE (pathLen 0 or none) and keyUsage.
pub fn check_ca_csr(
    file: &str,
    bytes: &[u8],
    subject: &Name,
    key_type: KeyType,
) -> Result<CheckedCaCsr, Vec<Refusal>> {
    let refuse = |field: &str, expected: &str, got: String| {
        Refusal::new(file, field, expected.to_string(), got)
    };
    let req = parse_csr(bytes).map_err(|(f, e, g)| vec![Refusal::new(file, f, e, g)])?;
    let mut refusals = Vec::new();
    let spki = req.info.public_key.clone();
    let want_key = format!("{key_type}, the plan's key for this CA");
    let key = match PublicKey::from_spki(&spki) {
        Ok(k) if k.key_type == Some(key_type) => Some(k),
        Ok(k) => {
            refusals.push(refuse("key", &want_key, k.kind));
            None
        }
        Err(e) => {
            refusals.push(refuse("key", &want_key, e.to_string()));
            None
        }
    };
    if key.is_some()
        && let Err(got) = self_signature(&req, "request")
    {
        refusals.push(refuse(
            "signature",
            "a valid self-signature by the request's key",
            got,
        ));
    }
    let same_subject = matches!(
        (req.info.subject.to_der(), subject.to_der()),
        (Ok(a), Ok(b)) if a == b
    );
    if !same_subject {
        refusals.push(refuse(
            "subject",
            &format!("\"{subject}\" exactly, the plan's subject for this CA"),
            format!("\"{}\"", req.info.subject),
        ));
    }
    for attr in req.info.attributes.iter() {
        if attr.oid != const_oid::db::rfc5912::ID_EXTENSION_REQ {
            refusals.push(refuse(
                "attributes",
                "none but an extensionRequest",
                attr.oid.to_string(),
            ));
        }
    }
    match requested_extensions(&req) {
        Err(e) => refusals.push(refuse("extensionRequest", "valid extensions", e)),
        Ok(exts) => {
            for ext in exts {
                use const_oid::db::rfc5280::{ID_CE_BASIC_CONSTRAINTS, ID_CE_KEY_USAGE};
                match ext.extn_id {
                    ID_CE_BASIC_CONSTRAINTS => {
                        match BasicConstraints::from_der(ext.extn_value.as_bytes()) {
                            Ok(bc) if bc.ca && bc.path_len_constraint.unwrap_or(0) == 0 => {}
                            Ok(bc) if bc.ca => refusals.push(refuse(
                                "basicConstraints",
                                "CA:TRUE with pathlen:0 or none (a delegated CA signs leaves only)",
                                format!(
                                    "pathlen:{}",
                                    bc.path_len_constraint.unwrap_or_default()
                                ),
                            )),
                            Ok(_) => refusals.push(refuse(
                                "basicConstraints",
                                "CA:TRUE (a CA's request)",
                                "CA:FALSE".into(),
                            )),
                            Err(e) => refusals.push(refuse(
                                "basicConstraints",
                                "a valid extension",
                                format!("one that does not parse ({e})"),
                            )),
                        }
                    }
                    // Its own usages are never copied: the profile sets them.
                    ID_CE_KEY_USAGE => {}
                    other => refusals.push(refuse(
                        "extensionRequest",
                        "only basicConstraints and keyUsage (the certificate takes its extensions from the ceremony's CA profile)",
                        extension_name(&other),
                    )),
                }
            }
        }
    }
    match (key, refusals.is_empty()) {
        (Some(k), true) => Ok(CheckedCaCsr {
            spki,
            key_type: k.key_type.unwrap_or(key_type),
            file: file.to_string(),
            sha256: crate::x509::sha256(bytes),
        }),
        _ => Err(refusals),
    }
}

fn extension_name(oid: &der::oid::ObjectIdentifier) -> String {
    use const_oid::db::rfc5280::{
        ID_CE_EXT_KEY_USAGE, ID_CE_NAME_CONSTRAINTS, ID_CE_SUBJECT_ALT_NAME,
        ID_CE_SUBJECT_KEY_IDENTIFIER,
    };
    match *oid {
        ID_CE_SUBJECT_ALT_NAME => "subjectAltName".into(),
        ID_CE_EXT_KEY_USAGE => "extendedKeyUsage".into(),
        ID_CE_NAME_CONSTRAINTS => "nameConstraints".into(),
        ID_CE_SUBJECT_KEY_IDENTIFIER => "subjectKeyIdentifier".into(),
        other => other.to_string(),
    }
}
