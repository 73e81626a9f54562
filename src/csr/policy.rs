//! CSR intake and policy: the PKCS#10 requests of `kubeadm certs
//! generate-csr` (and of workers and users), each checked against the kubeadm
//! profile the plan implies, and per node the decision what may be signed.
//!
//! Pure: file names and bytes in, typed decisions out; no file, token or
//! clock access. Nothing of a CSR but its public key ever reaches a
//! certificate: subject, SANs and extensions come from the profile, so the
//! checks here only decide whether the node asked for what the plan gives it.
//! Refusals carry the file, the field, what was expected and what was got,
//! never key material.

use std::collections::BTreeSet;
use std::net::IpAddr;

// One node's tree is checked in `node`; callers reach both through here.
pub use super::node::{
    Accepted, Entry, NodeCheck, SuppliedSa, check_node, sa_consistency, shared_keys,
};

use der::oid::ObjectIdentifier;
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::{DirectoryString, GeneralName};
use x509_cert::ext::pkix::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
};
use x509_cert::request::CertReq;
use zeroize::Zeroizing;

use crate::bundle::kubeconfig::{KubeconfigFile, base64_data};
use crate::keys::public::{CSR_LABELS, PublicKey};
use crate::keytype::KeyType;
use crate::plan::San;
use crate::profile::kubeadm::LeafSpec;
use crate::x509::profile::eku_name;

/// Largest file the intake reads (a CSR or kubeconfig is a few KiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Why a CSR (or a file beside it) is not signed: `file: field: expected …, got …`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    /// Relative to the CSR directory, e.g. `cp1/etc/kubernetes/pki/apiserver.csr`.
    pub file: String,
    pub field: String,
    pub expected: String,
    pub got: String,
}

impl Refusal {
    pub fn new(
        file: impl Into<String>,
        field: impl Into<String>,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Refusal {
        Refusal {
            file: file.into(),
            field: field.into(),
            expected: expected.into(),
            got: got.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: expected {}, got {}",
            self.file, self.field, self.expected, self.got
        )
    }
}

pub(crate) fn is_pem(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|t| t.contains("-----BEGIN "))
}

/// A refusal without its file, filled in by the caller.
type Why = (&'static str, String, String);

/// Parses a CSR file: exactly one PEM `CERTIFICATE REQUEST` block, or DER.
pub fn parse_csr(bytes: &[u8]) -> Result<CertReq, (String, String, String)> {
    parse_csr_inner(bytes).map_err(|(f, e, g)| (f.to_string(), e, g))
}

fn parse_csr_inner(bytes: &[u8]) -> Result<CertReq, Why> {
    const FIELD: &str = "file";
    let expected = || "one PKCS#10 certificate request (PEM or DER)".to_string();
    let der: Zeroizing<Vec<u8>> = match is_pem(bytes) {
        Some(text) => {
            let blocks = crate::pem::pem_blocks(text).map_err(|e| (FIELD, expected(), e))?;
            let csrs: Vec<&crate::pem::Block> = blocks
                .iter()
                .filter(|b| CSR_LABELS.contains(&b.label.as_str()))
                .collect();
            match csrs.as_slice() {
                [] => {
                    let labels: Vec<&str> = blocks.iter().map(|b| b.label.as_str()).collect();
                    return Err((
                        FIELD,
                        expected(),
                        format!("PEM {} and no CERTIFICATE REQUEST", labels.join(", ")),
                    ));
                }
                [one] if blocks.len() == 1 => one.der.clone(),
                [_] => {
                    let others: Vec<&str> = blocks
                        .iter()
                        .map(|b| b.label.as_str())
                        .filter(|l| !CSR_LABELS.contains(l))
                        .collect();
                    return Err((
                        FIELD,
                        "a file holding only the certificate request".into(),
                        format!("{} besides it", others.join(", ")),
                    ));
                }
                many => {
                    return Err((
                        FIELD,
                        "exactly one certificate request".into(),
                        format!("{} certificate requests", many.len()),
                    ));
                }
            }
        }
        None => Zeroizing::new(bytes.to_vec()),
    };
    CertReq::from_der(&der).map_err(|e| {
        let got = if is_pem(bytes).is_some() {
            format!("a CERTIFICATE REQUEST block that does not parse ({e})")
        } else {
            "neither PEM nor a DER certificate request".to_string()
        };
        (FIELD, expected(), got)
    })
}

/// A CSR that passed every check against its profile.
#[derive(Debug, Clone)]
pub struct CheckedCsr {
    pub spki: SubjectPublicKeyInfoOwned,
    pub key_type: KeyType,
    pub key_id: Vec<u8>,
    /// The request as a bundle holds it: PEM `CERTIFICATE REQUEST` of the
    /// DER that was checked, whatever the file's form (DER, PEM with text
    /// around it). kubeadm reads PEM only.
    pub pem: String,
}

/// The result of checking one CSR: its key when it parsed (for key-reuse
/// and key-file checks, also when refused) and every refusal.
#[derive(Debug, Clone)]
pub struct CsrCheck {
    pub key: Option<(SubjectPublicKeyInfoOwned, PublicKey)>,
    /// The canonical PEM of the request, when it parsed.
    pub pem: Option<String>,
    pub refusals: Vec<Refusal>,
}

impl CsrCheck {
    /// The checked CSR, when nothing was refused.
    pub fn accepted(&self) -> Option<CheckedCsr> {
        match (&self.key, &self.pem, self.refusals.is_empty()) {
            (Some((spki, info)), Some(pem), true) => info.key_type.map(|key_type| CheckedCsr {
                spki: spki.clone(),
                key_type,
                key_id: info.spki_der.clone(),
                pem: pem.clone(),
            }),
            _ => None,
        }
    }
}

pub(crate) fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

pub(crate) fn orgs_text(orgs: &BTreeSet<String>) -> String {
    if orgs.is_empty() {
        "none".into()
    } else {
        orgs.iter()
            .map(|o| format!("O={o}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn san_of(g: &GeneralName) -> Result<San, String> {
    match g {
        GeneralName::DnsName(d) => Ok(San::Dns(d.as_str().to_string())),
        GeneralName::IpAddress(o) => {
            let b = o.as_bytes();
            match b.len() {
                4 => <[u8; 4]>::try_from(b)
                    .map(|a| San::Ip(IpAddr::from(a)))
                    .map_err(|_| "IP:(bad)".to_string()),
                16 => <[u8; 16]>::try_from(b)
                    .map(|a| San::Ip(IpAddr::from(a)))
                    .map_err(|_| "IP:(bad)".to_string()),
                n => Err(format!("IP:({n} bytes)")),
            }
        }
        GeneralName::Rfc822Name(e) => Err(format!("email:{}", e.as_str())),
        GeneralName::UniformResourceIdentifier(u) => Err(format!("URI:{}", u.as_str())),
        GeneralName::DirectoryName(n) => Err(format!("DirName:{n}")),
        _ => Err("an otherName/registeredID SAN".into()),
    }
}

fn key_usage_text(u: KeyUsages) -> &'static str {
    match u {
        KeyUsages::KeyCertSign => "keyCertSign",
        KeyUsages::CRLSign => "cRLSign",
        _ => "other",
    }
}

/// The extensions a CSR requests (PKCS#9 extensionRequest, RFC 2985 §5.4.2).
pub(crate) fn requested_extensions(req: &CertReq) -> Result<Vec<Extension>, String> {
    let mut out = Vec::new();
    for attr in req.info.attributes.iter() {
        if attr.oid != const_oid::db::rfc5912::ID_EXTENSION_REQ {
            continue;
        }
        for v in attr.values.iter() {
            let der = v.to_der().map_err(|e| e.to_string())?;
            let exts = Vec::<Extension>::from_der(&der)
                .map_err(|e| format!("an extensionRequest that does not parse ({e})"))?;
            out.extend(exts);
        }
    }
    Ok(out)
}

/// Checks one CSR against its profile: parse, key type, self-signature,
/// exact CN and O, SANs a subset of the profile's, and no requested
/// extension that contradicts a leaf (CA:TRUE, keyCertSign, cRLSign, an EKU
/// the profile lacks). Every refusal is collected.
pub fn check_csr(file: &str, bytes: &[u8], spec: &LeafSpec, allowed: &[KeyType]) -> CsrCheck {
    let refuse =
        |field: &str, expected: String, got: String| Refusal::new(file, field, expected, got);
    let req = match parse_csr_inner(bytes) {
        Ok(r) => r,
        Err((field, expected, got)) => {
            return CsrCheck {
                key: None,
                pem: None,
                refusals: vec![refuse(field, expected, got)],
            };
        }
    };
    let mut refusals = Vec::new();
    // What the bundle will hold: the parsed request encoded again, never the
    // file's own bytes (DER, or PEM with text around the block).
    let pem = match req
        .to_der()
        .map_err(|e| e.to_string())
        .and_then(|der| crate::pem::encode(CSR_LABELS[0], &der))
    {
        Ok(text) => Some(text.to_string()),
        Err(e) => {
            refusals.push(refuse(
                "file",
                "a request that encodes again as DER".into(),
                e,
            ));
            None
        }
    };
    let spki = req.info.public_key.clone();

    // Key: one of the kubeadm key types the plan allows.
    let key = match PublicKey::from_spki(&spki) {
        Ok(k) => Some(k),
        Err(got) => {
            refusals.push(refuse("key", allowed_text(allowed), got.to_string()));
            None
        }
    };
    if let Some(k) = &key {
        match k.key_type {
            Some(kt) if allowed.contains(&kt) => {
                // The self-signature (RFC 2986 §3): over the DER of
                // certificationRequestInfo, with the requested key.
                if let Err(got) = self_signature(&req, "CSR") {
                    refusals.push(refuse(
                        "signature",
                        "a valid self-signature by the CSR's key".into(),
                        got,
                    ));
                }
            }
            _ => refusals.push(refuse("key", allowed_text(allowed), k.kind.clone())),
        }
    }

    // Subject: exactly the profile's CN and set of O, nothing else.
    let mut cns = Vec::new();
    let mut orgs = BTreeSet::new();
    let mut others = Vec::new();
    for atv in req.info.subject.iter() {
        let text = || {
            DirectoryString::try_from(&atv.value)
                .map(String::from)
                .unwrap_or_else(|_| "(undecodable)".into())
        };
        if atv.oid == const_oid::db::rfc4519::CN {
            cns.push(text());
        } else if atv.oid == const_oid::db::rfc4519::O {
            orgs.insert(text());
        } else {
            others.push(atv.to_string());
        }
    }
    if cns.len() != 1 || cns.first() != Some(&spec.cn) {
        let got = match cns.as_slice() {
            [] => "no CN".to_string(),
            [one] => format!("{one:?}"),
            many => format!(
                "{} CNs ({})",
                many.len(),
                many.iter()
                    .map(|c| format!("{c:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        refusals.push(refuse("subject CN", format!("{:?}", spec.cn), got));
    }
    let want: BTreeSet<String> = spec.orgs.iter().cloned().collect();
    if orgs != want {
        refusals.push(refuse("subject O", orgs_text(&want), orgs_text(&orgs)));
    }
    if !others.is_empty() {
        refusals.push(refuse("subject", "only CN and O".into(), others.join(", ")));
    }

    // Requested extensions: SANs within the profile; nothing that makes a CA.
    match requested_extensions(&req) {
        Err(e) => refusals.push(refuse("extensionRequest", "valid extensions".into(), e)),
        Ok(exts) => {
            for ext in &exts {
                check_extension(ext, spec, &mut |f, e, g| refusals.push(refuse(f, e, g)));
            }
        }
    }

    CsrCheck {
        key: key.map(|k| (spki, k)),
        pem,
        refusals,
    }
}

/// The self-signature check: `crate::x509::verify_signature` for the pairs
/// this tool signs with, plus the ones OpenSSL makes by default that it does
/// not (ecdsa-with-SHA256 on P-384, SHA-384/512 with RSA).
/// The request's self-signature (RFC 2986 §3: over the DER of
/// certificationRequestInfo, by the requested key); on failure, what was
/// found, for a refusal (`noun` names the request: "CSR", "request").
pub(crate) fn self_signature(req: &CertReq, noun: &str) -> Result<(), String> {
    let spki = &req.info.public_key;
    req.info
        .to_der()
        .map_err(|e| e.to_string())
        .and_then(|info| {
            let sig = req
                .signature
                .as_bytes()
                .ok_or("a signature BIT STRING with unused bits")?;
            verify_csr_signature(spki, &req.algorithm, &info, sig)
        })
        .map_err(|e| {
            if e.starts_with("signature does not verify") {
                format!("a signature that does not verify with the {noun}'s public key")
            } else {
                e
            }
        })
}

pub(crate) fn verify_csr_signature(
    spki: &SubjectPublicKeyInfoOwned,
    alg: &spki::AlgorithmIdentifierOwned,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    use const_oid::db::rfc5912::{
        ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP_256_R_1,
        SECP_384_R_1, SHA_384_WITH_RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION,
    };
    use der::referenced::OwnedToRef;
    use sha2::Digest;
    use signature::Verifier;
    use signature::hazmat::PrehashVerifier;
    let bad = |_| "signature does not verify".to_string();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let der = || spki.to_der().map_err(|e| e.to_string());
    match (spki.algorithm.oid, alg.oid, curve) {
        (ID_EC_PUBLIC_KEY, ECDSA_WITH_SHA_256, Some(SECP_384_R_1)) => {
            use p384::pkcs8::DecodePublicKey;
            let key = p384::ecdsa::VerifyingKey::from_public_key_der(&der()?)
                .map_err(|e| e.to_string())?;
            let sig = p384::ecdsa::DerSignature::from_bytes(sig)
                .map_err(|e| format!("bad ECDSA signature: {e}"))?;
            key.verify_prehash(&sha2::Sha256::digest(msg), &sig)
                .map_err(bad)
        }
        (ID_EC_PUBLIC_KEY, ECDSA_WITH_SHA_384, Some(SECP_256_R_1)) => {
            use p256::pkcs8::DecodePublicKey;
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(&der()?)
                .map_err(|e| e.to_string())?;
            let sig = p256::ecdsa::DerSignature::from_bytes(sig)
                .map_err(|e| format!("bad ECDSA signature: {e}"))?;
            key.verify_prehash(&sha2::Sha384::digest(msg), &sig)
                .map_err(bad)
        }
        (RSA_ENCRYPTION, SHA_384_WITH_RSA_ENCRYPTION, _) => {
            let key = rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::try_from(spki.owned_to_ref())
                .map_err(|e| e.to_string())?;
            let sig = rsa::pkcs1v15::Signature::try_from(sig)
                .map_err(|e| format!("bad RSA signature: {e}"))?;
            key.verify(msg, &sig).map_err(bad)
        }
        (RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION, _) => {
            let key = rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::try_from(spki.owned_to_ref())
                .map_err(|e| e.to_string())?;
            let sig = rsa::pkcs1v15::Signature::try_from(sig)
                .map_err(|e| format!("bad RSA signature: {e}"))?;
            key.verify(msg, &sig).map_err(bad)
        }
        _ => crate::x509::verify_signature(spki, alg, msg, sig),
    }
}

fn check_extension(ext: &Extension, spec: &LeafSpec, refuse: &mut dyn FnMut(&str, String, String)) {
    use const_oid::db::rfc5280::{
        ID_CE_BASIC_CONSTRAINTS, ID_CE_EXT_KEY_USAGE, ID_CE_KEY_USAGE, ID_CE_SUBJECT_ALT_NAME,
    };
    let value = ext.extn_value.as_bytes();
    let undecodable = |name: &str, e: der::Error| {
        (
            name.to_string(),
            "a valid extension".to_string(),
            format!("one that does not parse ({e})"),
        )
    };
    let bad = match ext.extn_id {
        ID_CE_SUBJECT_ALT_NAME => match SubjectAltName::from_der(value) {
            Err(e) => Some(undecodable("subjectAltName", e)),
            Ok(san) => {
                let extra: Vec<String> = san
                    .0
                    .iter()
                    .filter_map(|g| match san_of(g) {
                        Ok(s) if spec.sans.contains(&s) => None,
                        Ok(s) => Some(s.to_string()),
                        Err(other) => Some(other),
                    })
                    .collect();
                (!extra.is_empty()).then(|| {
                    let allowed: Vec<String> = spec.sans.iter().map(|s| s.to_string()).collect();
                    let expected = if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        format!("a subset of {}", allowed.join(", "))
                    };
                    ("subjectAltName".to_string(), expected, extra.join(", "))
                })
            }
        },
        ID_CE_BASIC_CONSTRAINTS => match BasicConstraints::from_der(value) {
            Err(e) => Some(undecodable("basicConstraints", e)),
            Ok(bc) => bc.ca.then(|| {
                (
                    "basicConstraints".to_string(),
                    "CA:FALSE (a leaf certificate)".to_string(),
                    "CA:TRUE".to_string(),
                )
            }),
        },
        ID_CE_KEY_USAGE => match KeyUsage::from_der(value) {
            Err(e) => Some(undecodable("keyUsage", e)),
            Ok(ku) => {
                let bad: Vec<&str> = [KeyUsages::KeyCertSign, KeyUsages::CRLSign]
                    .into_iter()
                    .filter(|u| ku.0.contains(*u))
                    .map(key_usage_text)
                    .collect();
                (!bad.is_empty()).then(|| {
                    (
                        "keyUsage".to_string(),
                        "no keyCertSign or cRLSign (a leaf certificate)".to_string(),
                        bad.join(", "),
                    )
                })
            }
        },
        ID_CE_EXT_KEY_USAGE => match ExtendedKeyUsage::from_der(value) {
            Err(e) => Some(undecodable("extendedKeyUsage", e)),
            Ok(eku) => {
                let extra: Vec<String> = eku
                    .0
                    .iter()
                    .filter(|o| !spec.eku.contains(o))
                    .map(eku_name)
                    .collect();
                (!extra.is_empty()).then(|| {
                    let allowed: Vec<String> = spec.eku.iter().map(eku_name).collect();
                    (
                        "extendedKeyUsage".to_string(),
                        format!("a subset of {}", list_or_none(&allowed)),
                        extra.join(", "),
                    )
                })
            }
        },
        // Anything else is never copied into the certificate, so it cannot
        // contradict the profile.
        _ => None,
    };
    if let Some((f, e, g)) = bad {
        refuse(&f, e, g);
    }
}

pub(crate) fn allowed_text(allowed: &[KeyType]) -> String {
    format!(
        "one of {}",
        allowed
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The private key PEM in a partial kubeconfig of `kubeadm certs
/// generate-csr` (its one user's `client-key-data`). Errors never quote it.
pub fn partial_client_key(bytes: &[u8]) -> Result<Zeroizing<String>, String> {
    // The reader's and base64's own messages may quote a value, and the
    // value here is a private key: say what is wrong, not where.
    let conf = KubeconfigFile::parse(bytes)
        .map_err(|_| "a file that does not parse as a kubeconfig".to_string())?;
    let keys: Vec<&Zeroizing<String>> = conf
        .users
        .iter()
        .flatten()
        .filter_map(|u| u.user.as_ref().and_then(|e| e.key_data.as_ref()))
        .collect();
    let [b64] = keys.as_slice() else {
        return Err(format!("{} users with client-key-data", keys.len()));
    };
    let pem = base64_data(b64).map_err(|_| "client-key-data that is not base64".to_string())?;
    let text =
        std::str::from_utf8(&pem).map_err(|_| "client-key-data that is not PEM".to_string())?;
    Ok(Zeroizing::new(text.to_string()))
}

/// A key file's one PEM block as a bundle holds it (see `pem::canonical_one`).
pub(crate) fn canonical_file(bytes: &[u8]) -> Result<Zeroizing<String>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not PEM text (not UTF-8)".to_string())?;
    crate::pem::canonical_one(text)
}

/// Where kubeadm writes the CSR of a profile, relative to etc/kubernetes:
/// `pki/apiserver.csr`, `admin.conf.csr`.
pub fn csr_path(spec: &LeafSpec) -> String {
    format!("{}.csr", spec.path)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::keys::public::private_key_file;
    use crate::plan::CaRole;
    use crate::profile::kubeadm::LeafOutput;
    use crate::x509::profile::{ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH};

    const GEN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/kubeadm/generate-csr/etc/kubernetes/"
    );

    /// A file of the vendored `kubeadm certs generate-csr` output. Missing
    /// is a failure: a test that skipped would pass without checking anything.
    fn read(rel: &str) -> Vec<u8> {
        let path = format!("{GEN}{rel}");
        std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
    }

    fn spec(path: &str, cn: &str, orgs: &[&str], sans: Vec<San>) -> LeafSpec {
        LeafSpec {
            path: path.into(),
            output: LeafOutput::CertAndKey,
            issuer: CaRole::Kubernetes,
            cn: cn.into(),
            orgs: orgs.iter().map(|s| s.to_string()).collect(),
            eku: vec![ID_KP_SERVER_AUTH],
            sans,
        }
    }

    fn apiserver_sans() -> Vec<San> {
        [
            "cp1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "10.96.0.1",
            "10.0.0.10",
            "127.0.0.1",
        ]
        .iter()
        .map(|s| San::parse(s).unwrap())
        .collect()
    }

    #[test]
    fn real_apiserver_csr_passes_and_mismatches_are_refused() {
        let csr = read("pki/apiserver.csr");
        let ok = check_csr(
            "f",
            &csr,
            &spec("pki/apiserver", "kube-apiserver", &[], apiserver_sans()),
            &KeyType::ALL,
        );
        assert!(ok.refusals.is_empty(), "{:?}", ok.refusals);
        assert_eq!(ok.accepted().unwrap().key_type, KeyType::Rsa2048);

        let mut fewer = apiserver_sans();
        fewer.pop();
        let bad = check_csr(
            "f",
            &csr,
            &spec("pki/apiserver", "kube-apiserver2", &["x"], fewer),
            &[KeyType::EcdsaP256],
        );
        let lines: Vec<String> = bad.refusals.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            lines,
            [
                "f: key: expected one of ecdsa-p256, got rsa-2048",
                "f: subject CN: expected \"kube-apiserver2\", got \"kube-apiserver\"",
                "f: subject O: expected O=x, got none",
                "f: subjectAltName: expected a subset of DNS:cp1, DNS:kubernetes, DNS:kubernetes.default, \
                 DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local, IP:10.96.0.1, \
                 IP:10.0.0.10, got IP:127.0.0.1",
            ]
        );
        assert!(bad.accepted().is_none());
    }

    #[test]
    fn bad_signature_and_not_a_csr() {
        let csr = read("pki/front-proxy-client.csr");
        let s = spec("pki/front-proxy-client", "front-proxy-client", &[], vec![]);
        let req = parse_csr(&csr).unwrap();
        let mut der = req.to_der().unwrap();
        let n = der.len();
        der[n - 1] ^= 1;
        let c = check_csr("f", &der, &s, &KeyType::ALL);
        assert_eq!(
            c.refusals[0].to_string(),
            "f: signature: expected a valid self-signature by the CSR's key, \
             got a signature that does not verify with the CSR's public key"
        );
        let c = check_csr("f", b"hello\n", &s, &KeyType::ALL);
        assert_eq!(
            c.refusals[0].to_string(),
            "f: file: expected one PKCS#10 certificate request (PEM or DER), \
             got neither PEM nor a DER certificate request"
        );
        let two = [csr.clone(), csr.clone()].concat();
        let c = check_csr("f", &two, &s, &KeyType::ALL);
        assert_eq!(
            c.refusals[0].to_string(),
            "f: file: expected exactly one certificate request, got 2 certificate requests"
        );
    }

    #[test]
    fn the_real_tree_maps_to_its_profiles_and_keys_match() {
        let mut files = BTreeMap::new();
        for rel in [
            "pki/front-proxy-client.csr",
            "pki/front-proxy-client.key",
            "scheduler.conf",
            "scheduler.conf.csr",
            "pki/apiserver.key",
        ] {
            files.insert(rel.to_string(), Zeroizing::new(read(rel)));
        }
        files.insert("junk.csr".into(), Zeroizing::new(b"x".to_vec()));
        let mut fp = spec("pki/front-proxy-client", "front-proxy-client", &[], vec![]);
        fp.eku = vec![ID_KP_CLIENT_AUTH];
        let sched = LeafSpec {
            path: "scheduler.conf".into(),
            output: LeafOutput::Kubeconfig {
                server: "https://10.0.0.10:6443".into(),
                cluster: "kubernetes".into(),
            },
            cn: "system:kube-scheduler".into(),
            ..fp.clone()
        };
        let missing = spec("pki/etcd/peer", "cp1", &[], vec![]);
        let n = check_node(
            "cp1",
            true,
            "cp1/etc/kubernetes/",
            &[fp, sched, missing],
            &files,
            &KeyType::ALL,
        );
        let lines: Vec<String> = n.refusals().iter().map(|r| r.to_string()).collect();
        assert_eq!(
            lines,
            [
                "cp1/etc/kubernetes/pki/etcd/peer.csr: file: expected the CSR of etcd/peer, got no such file",
                "cp1/etc/kubernetes/junk.csr: profile: expected one of the CSRs the plan signs for cp1 \
                 (pki/etcd/peer.csr, pki/front-proxy-client.csr, scheduler.conf.csr), \
                 got a CSR no profile of this node matches",
            ]
        );
        assert_eq!(n.accepted.len(), 2);
        assert_eq!(
            n.accepted[0].key_file.as_ref().map(|(f, _)| f.as_str()),
            Some("pki/front-proxy-client.key")
        );
        assert!(n.accepted[1].client_key_pem.is_some());
        assert_eq!(n.ignored, ["pki/apiserver.key"]);
        // The apiserver key is not the front-proxy-client CSR's key.
        files.insert(
            "pki/front-proxy-client.key".into(),
            Zeroizing::new(read("pki/apiserver.key")),
        );
        let n = check_node(
            "cp1",
            true,
            "",
            &[n.accepted[0].spec.clone()],
            &files,
            &KeyType::ALL,
        );
        assert_eq!(
            n.refusals()[0].to_string(),
            "pki/front-proxy-client.key: private key: expected the key of \
             pki/front-proxy-client.csr, got another key"
        );
    }

    #[test]
    fn shared_keys_refuse_the_later_one() {
        let keys = vec![
            ("a".to_string(), vec![1]),
            ("b".to_string(), vec![2]),
            ("c".to_string(), vec![1]),
        ];
        let r = shared_keys(&keys);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, 2);
        assert_eq!(
            r[0].1.to_string(),
            "c: public key: expected a key of its own, got the key of a"
        );
    }

    /// kubeadm's own key file and CSR name the same key (generated keys:
    /// `keys::public`'s tests).
    #[test]
    fn kubeadms_key_matches_its_csr() {
        let key = read("pki/apiserver.key");
        let csr = parse_csr(&read("pki/apiserver.csr")).unwrap();
        assert_eq!(
            private_key_file(&key).unwrap(),
            PublicKey::from_spki(&csr.info.public_key).unwrap()
        );
    }

    #[test]
    fn partial_kubeconfig_key() {
        let pem = partial_client_key(&read("admin.conf")).unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let e = partial_client_key(b"users: [{name: x, user: {}}]").unwrap_err();
        assert_eq!(e, "0 users with client-key-data");
        assert!(partial_client_key(b"{{{").is_err());
    }
}
