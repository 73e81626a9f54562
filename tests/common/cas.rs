//! The fixture plan's CA hierarchy checked end to end: the files a CA
//! ceremony writes (OpenSSL and x509-parser, independent of the crate) and
//! the twelve objects on the token.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::X509Version;

use super::{Fixture, Keys, LABELS, Node, Object, ROLES, certs_in, one_cert, parse, snapshot_tree};

pub const YEAR: i64 = 365 * 86400;
/// The ceremony starts certificates this long before its clock (clock skew).
pub const BACKDATE: i64 = 300;
/// Root CN/O of `plan_toml`.
pub const ROOT_CN: &str = "Test Kubernetes Root CA";
/// kubeadm's CNs for its three CAs, in role order.
pub const INTERMEDIATE_CNS: [&str; 3] = ["kubernetes", "etcd-ca", "front-proxy-ca"];

pub const OID_KEY_USAGE: &str = "2.5.29.15";
pub const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
pub const OID_SKI: &str = "2.5.29.14";
pub const OID_AKI: &str = "2.5.29.35";

/// The files a CA ceremony writes, relative to --out.
pub fn output_files() -> Vec<String> {
    let mut v = vec!["root-ca.crt".to_string()];
    for r in &ROLES[1..] {
        v.push(format!("cas/{r}-ca.crt"));
        v.push(format!("chains/{r}-ca-chain.crt"));
    }
    v
}

/// The output file holding the certificate of the CA labelled `LABELS[i]`.
pub fn cert_file(i: usize) -> String {
    if i == 0 {
        "root-ca.crt".into()
    } else {
        format!("cas/{}-ca.crt", ROLES[i])
    }
}

/// The signature algorithm a certificate signed by a key of this type carries:
/// (OID, whether the parameters are NULL; ECDSA has none at all).
pub fn signature_oid(key: &str) -> (&'static str, bool) {
    match key {
        "ecdsa-p256" => ("1.2.840.10045.4.3.2", false), // ecdsa-with-SHA256
        "ecdsa-p384" => ("1.2.840.10045.4.3.3", false), // ecdsa-with-SHA384
        k if k.starts_with("rsa-") => ("1.2.840.113549.1.1.11", true), // sha256WithRSAEncryption
        k => panic!("unknown key type {k}"),
    }
}

/// The subject public key is of the plan's type and size.
pub fn check_public_key(cert: &X509Certificate<'_>, key: &str, what: &str) {
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    let parsed = spki
        .parsed()
        .unwrap_or_else(|e| panic!("{what}: public key does not parse: {e}"));
    match key {
        "ecdsa-p256" | "ecdsa-p384" => {
            assert_eq!(alg, "1.2.840.10045.2.1", "{what}: id-ecPublicKey");
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let want = if key == "ecdsa-p256" {
                "1.2.840.10045.3.1.7"
            } else {
                "1.3.132.0.34"
            };
            assert_eq!(curve.as_deref(), Some(want), "{what}: named curve");
            let len = if key == "ecdsa-p256" { 65 } else { 97 };
            assert!(matches!(parsed, PublicKey::EC(_)), "{what}: EC key");
            assert_eq!(
                spki.subject_public_key.data.len(),
                len,
                "{what}: uncompressed point"
            );
            assert_eq!(
                spki.subject_public_key.data[0], 0x04,
                "{what}: uncompressed point"
            );
        }
        rsa => {
            assert_eq!(alg, "1.2.840.113549.1.1.1", "{what}: rsaEncryption");
            let bits: usize = rsa.trim_start_matches("rsa-").parse().expect("rsa bits");
            match parsed {
                PublicKey::RSA(k) => {
                    assert_eq!(k.key_size(), bits, "{what}: modulus size");
                    assert_eq!(k.exponent, [1, 0, 1], "{what}: public exponent 65537");
                }
                _ => panic!("{what}: expected an RSA key"),
            }
        }
    }
}

/// Checks a CA certificate field by field, independently of the code that
/// made it; returns its SKI.
pub fn check_ca_cert(
    cert: &X509Certificate<'_>,
    what: &str,
    key: &str,
    issuer_key: &str,
    path_len: u32,
    aki: Option<&[u8]>,
    years: i64,
) -> Vec<u8> {
    assert_eq!(cert.version(), X509Version::V3, "{what}: X.509 v3");

    // RFC 5280 §4.1.2.2: positive, at most 20 octets; ours are 20 random bytes.
    let serial = cert.raw_serial();
    assert_eq!(
        serial.len(),
        20,
        "{what}: serial is 20 bytes: {}",
        hex::encode(serial)
    );
    assert!(
        serial[0] & 0x80 == 0 && serial[0] != 0,
        "{what}: serial positive and minimally encoded"
    );

    // The signature algorithm matches the issuer's key, inside and outside the TBS.
    let (sig_oid, null_params) = signature_oid(issuer_key);
    for (alg, place) in [
        (&cert.signature_algorithm, "outer"),
        (&cert.tbs_certificate.signature, "TBS"),
    ] {
        assert_eq!(
            alg.algorithm.to_id_string(),
            sig_oid,
            "{what}: {place} signature algorithm"
        );
        if null_params {
            assert!(
                alg.parameters
                    .as_ref()
                    .is_some_and(|p| p.tag().0 == 5 && p.data.is_empty()),
                "{what}: NULL params"
            );
        } else {
            assert!(
                alg.parameters.is_none(),
                "{what}: ECDSA algorithm identifiers have no parameters"
            );
        }
    }
    check_public_key(cert, key, what);

    // Validity: starts BACKDATE before the ceremony's clock, lasts the plan's lifetime.
    let nb = cert.validity().not_before.timestamp();
    let na = cert.validity().not_after.timestamp();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!(
        nb <= now && now - nb < 3600,
        "{what}: notBefore {nb} is not just before now {now}"
    );
    assert_eq!(na - nb, years * YEAR + BACKDATE, "{what}: lifetime");

    // Exactly these extensions, each once, with RFC 5280's criticality.
    let mut oids: Vec<String> = cert
        .extensions()
        .iter()
        .map(|e| e.oid.to_id_string())
        .collect();
    oids.sort();
    let mut want = vec![OID_SKI, OID_KEY_USAGE, OID_BASIC_CONSTRAINTS];
    if aki.is_some() {
        want.push(OID_AKI);
    }
    want.sort();
    assert_eq!(
        oids,
        want,
        "{what}: extensions (SKI, KU, BC{})",
        if aki.is_some() { ", AKI" } else { "" }
    );

    let mut ski = None;
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        match ext.parsed_extension() {
            ParsedExtension::KeyUsage(ku) => {
                assert!(ext.critical, "{what}: keyUsage must be critical");
                assert!(
                    ku.digital_signature() && ku.key_cert_sign() && ku.crl_sign(),
                    "{what}: {ku}"
                );
                assert_eq!(
                    ku.flags, 0b110_0001,
                    "{what}: keyUsage is exactly digitalSignature, keyCertSign, cRLSign: {ku}"
                );
            }
            ParsedExtension::BasicConstraints(bc) => {
                assert!(ext.critical, "{what}: basicConstraints must be critical");
                assert!(bc.ca, "{what}: CA:TRUE");
                assert_eq!(bc.path_len_constraint, Some(path_len), "{what}: pathLen");
            }
            ParsedExtension::SubjectKeyIdentifier(id) => {
                assert!(
                    !ext.critical,
                    "{what}: SKI must not be critical (RFC 5280 §4.2.1.2)"
                );
                // RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits, as Go/kubeadm.
                use sha1::Digest;
                let expect =
                    sha1::Sha1::digest(&cert.public_key().subject_public_key.data).to_vec();
                assert_eq!(
                    id.0,
                    expect.as_slice(),
                    "{what}: SKI is SHA-1 of the public key"
                );
                ski = Some(id.0.to_vec());
            }
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                assert!(
                    !ext.critical,
                    "{what}: AKI must not be critical (RFC 5280 §4.2.1.1)"
                );
                let want = aki.unwrap_or_else(|| panic!("{what}: unexpected AKI"));
                assert_eq!(
                    a.key_identifier.as_ref().map(|k| k.0),
                    Some(want),
                    "{what}: AKI is the issuer's SKI"
                );
                assert!(
                    a.authority_cert_issuer.is_none() && a.authority_cert_serial.is_none(),
                    "{what}: AKI keyid only"
                );
            }
            other => panic!("{what}: unexpected extension {oid}: {other:?}"),
        }
    }
    ski.unwrap_or_else(|| panic!("{what}: no SKI"))
}

pub fn cn_of(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.subject()
        .iter_common_name()
        .map(|a| a.as_str().expect("CN is a string").to_string())
        .collect()
}

/// `openssl verify -x509_strict`: an independent path validation.
pub fn openssl_verify(f: &Fixture, ca_file: &Path, certs: &[PathBuf]) {
    let mut args = vec![
        "verify".as_ref(),
        "-x509_strict".as_ref(),
        "-CAfile".as_ref(),
        ca_file.as_os_str(),
    ];
    args.extend(certs.iter().map(|c| c.as_os_str()));
    let out = f.tool("openssl", &args);
    out.assert_ok("openssl verify");
    let want: Vec<String> = certs
        .iter()
        .map(|c| format!("{}: OK", c.display()))
        .collect();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        want,
        "openssl verify output"
    );
}

/// Everything a finished CA ceremony must have written, checked with OpenSSL
/// and x509-parser. Returns the DER of root, kubernetes, etcd, front-proxy.
pub fn check_outputs(f: &Fixture, out: &Path, keys: Keys) -> Vec<Vec<u8>> {
    // The CA files, public (0644); cas/ and chains/ hold nothing else. (Other
    // issues add the node bundle, SHA256SUMS and the audit log beside them.)
    let tree = snapshot_tree(out);
    for rel in output_files() {
        match tree.get(Path::new(&rel)) {
            Some(Node::File { mode, .. }) => assert_eq!(*mode, 0o644, "{rel}: mode"),
            other => panic!("{rel} under {}: {other:?}", out.display()),
        }
    }
    for dir in ["cas", "chains"] {
        let mut got: Vec<String> = tree
            .keys()
            .filter(|p| p.parent() == Some(Path::new(dir)))
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        got.sort();
        let mut want: Vec<String> = output_files()
            .into_iter()
            .filter(|f| f.starts_with(&format!("{dir}/")))
            .collect();
        want.sort();
        assert_eq!(got, want, "{dir}/ under {}", out.display());
    }
    assert!(
        tree.keys()
            .all(|p| !p.to_string_lossy().contains("staging")),
        "a staging marker is in the output: {:?}",
        tree.keys().collect::<Vec<_>>()
    );
    let staging = out.with_file_name(format!(
        ".{}.staging",
        out.file_name().unwrap().to_string_lossy()
    ));
    assert!(
        std::fs::symlink_metadata(&staging).is_err(),
        "staging directory left behind: {}",
        staging.display()
    );

    let root_path = out.join("root-ca.crt");
    let root_der = one_cert(&root_path);
    let root = parse(&root_der);
    // The root itself and each intermediate alone, against the root only.
    let mut to_verify = vec![root_path.clone()];
    to_verify.extend((1..4).map(|i| out.join(cert_file(i))));
    openssl_verify(f, &root_path, &to_verify);
    assert_eq!(
        root.subject().as_raw(),
        root.issuer().as_raw(),
        "root is self-issued"
    );
    assert_eq!(cn_of(&root), [ROOT_CN], "root CN");
    let orgs: Vec<&str> = root
        .subject()
        .iter_organization()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(orgs, ["Test"], "root O");
    let root_ski = check_ca_cert(&root, "root", keys[0], keys[0], 1, None, 20);
    root.verify_signature(None)
        .expect("root's self-signature verifies (ring)");

    let mut ders = vec![root_der.clone()];
    for (i, role) in ROLES.iter().enumerate().skip(1) {
        let what = format!("{role} CA");
        let path = out.join(cert_file(i));
        let der = one_cert(&path);
        let cert = parse(&der);
        assert_eq!(
            cn_of(&cert),
            [INTERMEDIATE_CNS[i - 1]],
            "{what}: kubeadm's CN"
        );
        assert_eq!(
            cert.issuer().as_raw(),
            root.subject().as_raw(),
            "{what}: issuer is the root's subject"
        );
        check_ca_cert(&cert, &what, keys[i], keys[0], 0, Some(&root_ski), 10);
        cert.verify_signature(Some(root.public_key()))
            .unwrap_or_else(|e| panic!("{what}: signature by the root: {e}"));
        assert!(
            cert.validity().not_after.timestamp() <= root.validity().not_after.timestamp(),
            "{what} outlives the root"
        );
        assert_ne!(
            cert.raw_serial(),
            root.raw_serial(),
            "{what}: serial differs from the root's"
        );

        // The chain file: the intermediate, then the root, nothing else.
        let chain_path = out.join(format!("chains/{role}-ca-chain.crt"));
        assert_eq!(
            certs_in(&chain_path),
            vec![der.clone(), root_der.clone()],
            "{}",
            chain_path.display()
        );
        ders.push(der);
    }
    ders
}

/// The label of the token's chain head (the final hash of its latest
/// sealed ceremony, a data object).
pub const CHAIN_HEAD: &str = "ceremony-chain-head";

/// Takes the chain head out of `objects`: after a sealed ceremony, exactly
/// one data object.
#[track_caller]
pub fn without_chain_head(mut objects: Vec<Object>) -> Vec<Object> {
    let heads: Vec<&str> = objects
        .iter()
        .filter(|o| o.label == CHAIN_HEAD)
        .map(|o| o.class.as_str())
        .collect();
    assert_eq!(heads, ["data"], "one chain head: {objects:#?}");
    objects.retain(|o| o.label != CHAIN_HEAD);
    objects
}

/// After a sealed ceremony the token holds exactly the plan's 12 objects
/// and its chain head: per label one private key, one public key and one
/// certificate, sharing one CKA_ID; private keys sensitive and never
/// extractable. Returns the 12.
pub fn check_twelve_objects(f: &Fixture) -> Vec<Object> {
    let objects = without_chain_head(f.objects());
    assert_eq!(objects.len(), 12, "objects on the token: {objects:#?}");
    for label in LABELS {
        let mine: Vec<&Object> = objects.iter().filter(|o| o.label == label).collect();
        let mut classes: Vec<&str> = mine.iter().map(|o| o.class.as_str()).collect();
        classes.sort();
        assert_eq!(
            classes,
            ["certificate", "private-key", "public-key"],
            "label {label}: one object per class"
        );
        assert!(
            mine.iter().all(|o| o.id == mine[0].id && !o.id.is_empty()),
            "label {label}: one CKA_ID: {mine:#?}"
        );
        let private = mine.iter().find(|o| o.class == "private-key").unwrap();
        assert_eq!(
            private.flags,
            "sensitive=yes extractable=no always-sensitive=yes never-extractable=yes",
            "label {label}: private key flags"
        );
    }
    objects
}

/// The certificates on the token are the ones in the output.
pub fn check_token_certificates(f: &Fixture, ders: &[Vec<u8>]) {
    for (i, label) in LABELS.iter().enumerate() {
        assert_eq!(
            &f.token_certificate(label),
            &ders[i],
            "certificate object \"{label}\" differs from {}",
            cert_file(i)
        );
    }
}
