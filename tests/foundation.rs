//! The foundation issue end to end: full ceremonies on a real SoftHSM2
//! token for every key type, each certificate checked by OpenSSL and by an
//! independent parser (x509-parser, ring signatures), resume after a clean
//! run, and (with `--features failpoints`) resume after a crash at each
//! irreversible step.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Fixture, Keys, LABELS, Object, ROLES, snapshot_tree, tree_diff};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::X509Version;

const YEAR: i64 = 365 * 86400;
/// The ceremony starts certificates this long before its clock (clock skew).
const BACKDATE: i64 = 300;
/// Root CN/O of `common::plan_toml`.
const ROOT_CN: &str = "Test Kubernetes Root CA";
/// kubeadm's CNs for its three CAs, in role order.
const INTERMEDIATE_CNS: [&str; 3] = ["kubernetes", "etcd-ca", "front-proxy-ca"];

const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_SKI: &str = "2.5.29.14";
const OID_AKI: &str = "2.5.29.35";

/// The files a CA ceremony writes, relative to --out.
fn output_files() -> Vec<String> {
    let mut v = vec!["root-ca.crt".to_string()];
    for r in &ROLES[1..] {
        v.push(format!("cas/{r}-ca.crt"));
        v.push(format!("chains/{r}-ca-chain.crt"));
    }
    v
}

/// The output file holding the certificate of the CA labelled `LABELS[i]`.
fn cert_file(i: usize) -> String {
    if i == 0 {
        "root-ca.crt".into()
    } else {
        format!("cas/{}-ca.crt", ROLES[i])
    }
}

/// Every certificate in a PEM file, as DER.
fn pem_certs(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut v = Vec::new();
    for pem in Pem::iter_from_buffer(&data).take(16) {
        let pem = pem.unwrap_or_else(|e| panic!("{}: bad PEM: {e}", path.display()));
        assert_eq!(pem.label, "CERTIFICATE", "{}", path.display());
        v.push(pem.contents);
    }
    v
}

fn one_cert(path: &Path) -> Vec<u8> {
    let mut v = pem_certs(path);
    assert_eq!(
        v.len(),
        1,
        "{} must hold exactly one certificate",
        path.display()
    );
    v.remove(0)
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).expect("certificate parses");
    assert!(rest.is_empty(), "trailing bytes after the certificate");
    cert
}

/// The signature algorithm a certificate signed by a key of this type carries:
/// (OID, whether the parameters are NULL; ECDSA has none at all).
fn signature_oid(key: &str) -> (&'static str, bool) {
    match key {
        "ecdsa-p256" => ("1.2.840.10045.4.3.2", false), // ecdsa-with-SHA256
        "ecdsa-p384" => ("1.2.840.10045.4.3.3", false), // ecdsa-with-SHA384
        k if k.starts_with("rsa-") => ("1.2.840.113549.1.1.11", true), // sha256WithRSAEncryption
        k => panic!("unknown key type {k}"),
    }
}

/// The subject public key is of the plan's type and size.
fn check_public_key(cert: &X509Certificate<'_>, key: &str, what: &str) {
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
fn check_ca_cert(
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

fn cn_of(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.subject()
        .iter_common_name()
        .map(|a| a.as_str().expect("CN is a string").to_string())
        .collect()
}

/// `openssl verify -x509_strict`: an independent path validation.
fn openssl_verify(f: &Fixture, ca_file: &Path, certs: &[PathBuf]) {
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
fn check_outputs(f: &Fixture, out: &Path, keys: Keys) -> Vec<Vec<u8>> {
    // The CA files, public (0644); cas/ and chains/ hold nothing else. (Other
    // issues add the node bundle, SHA256SUMS and the audit log beside them.)
    let tree = snapshot_tree(out);
    for rel in output_files() {
        match tree.get(Path::new(&rel)) {
            Some(common::Node::File { mode, .. }) => assert_eq!(*mode, 0o644, "{rel}: mode"),
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
            pem_certs(&chain_path),
            vec![der.clone(), root_der.clone()],
            "{}",
            chain_path.display()
        );
        ders.push(der);
    }
    ders
}

/// The token holds exactly the plan's 12 objects: per label one private key,
/// one public key and one certificate, sharing one CKA_ID; private keys
/// sensitive and never extractable.
fn check_twelve_objects(f: &Fixture) -> Vec<Object> {
    let objects = f.objects();
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
fn check_token_certificates(f: &Fixture, ders: &[Vec<u8>]) {
    for (i, label) in LABELS.iter().enumerate() {
        assert_eq!(
            &f.token_certificate(label),
            &ders[i],
            "certificate object \"{label}\" differs from {}",
            cert_file(i)
        );
    }
}

/// A full run on a fresh token, checked; returns the fixture, plan and output.
fn full_run(token: &str, keys: Keys) -> (Fixture, PathBuf, PathBuf, Vec<Vec<u8>>) {
    let f = Fixture::new(token);
    let plan = f.write_plan("plan.toml", keys);
    let out = f.work("out");
    let o = f.run_plan(&plan, &out);
    o.assert_ok("ceremony run");
    assert_eq!(o.first_error(), None, "{o}");
    // The (random, throwaway) PIN appears in no output and in no file written.
    let pin = f.token().pin.clone();
    assert!(
        !o.stderr.contains(&pin) && !o.stdout.contains(&pin),
        "the PIN was printed"
    );
    for (p, n) in snapshot_tree(&out) {
        if let common::Node::File { bytes, .. } = n {
            assert!(
                !bytes.windows(pin.len()).any(|w| w == pin.as_bytes()),
                "the PIN is in {}",
                p.display()
            );
        }
    }
    let ders = check_outputs(&f, &out, keys);
    check_twelve_objects(&f);
    check_token_certificates(&f, &ders);
    (f, plan, out, ders)
}

#[test]
fn ecdsa_p384_root_with_p256_and_p384_intermediates() {
    full_run(
        "t-found-p384",
        ["ecdsa-p384", "ecdsa-p256", "ecdsa-p384", "ecdsa-p256"],
    );
}

#[test]
fn rsa_4096_root_with_rsa_2048_and_rsa_3072_intermediates() {
    full_run(
        "t-found-rsa",
        ["rsa-4096", "rsa-2048", "rsa-3072", "ecdsa-p256"],
    );
}

#[test]
fn ecdsa_p256_root() {
    full_run(
        "t-found-p256",
        ["ecdsa-p256", "ecdsa-p256", "ecdsa-p256", "ecdsa-p384"],
    );
}

/// A second run of the same plan finds every key and certificate by label
/// and writes the same certificates again; the token does not change.
#[test]
fn rerun_reuses_keys_and_certificates() {
    let keys = ["ecdsa-p384", "ecdsa-p256", "ecdsa-p256", "ecdsa-p256"];
    let (f, plan, out1, ders1) = full_run("t-found-rerun", keys);
    let before = f.token_snapshot();
    let out2 = f.work("out2");
    let o = f.run_plan(&plan, &out2);
    o.assert_ok("second ceremony run");
    assert_eq!(
        o.stderr
            .matches("existing key and certificate (resumed)")
            .count(),
        4,
        "{o}"
    );
    assert!(
        !o.stderr.contains("Generate ") && !o.stderr.contains("Sign the "),
        "nothing generated or signed again:\n{o}"
    );
    let ders2 = check_outputs(&f, &out2, keys);
    assert_eq!(ders1, ders2, "the same certificates");
    // The CA files byte for byte (leaf keys are software and made afresh each run).
    let ca_files = |out: &Path| -> BTreeMap<PathBuf, common::Node> {
        let all = snapshot_tree(out);
        output_files()
            .into_iter()
            .map(|f| (PathBuf::from(&f), all[Path::new(&f)].clone()))
            .collect()
    };
    let (t1, t2) = (ca_files(&out1), ca_files(&out2));
    assert!(t1 == t2, "CA files differ:\n{}", tree_diff(&t1, &t2));
    assert_eq!(
        f.token_snapshot(),
        before,
        "the token changed on a resumed run"
    );
    check_twelve_objects(&f);
}

/// Crash-resume: the binary aborts (as on power loss) at a failpoint; a
/// rerun of the same command must finish with exactly the plan's objects,
/// reusing every key made before the crash, and nothing may appear at
/// --out until the final rename.
#[cfg(feature = "failpoints")]
mod crash {
    use super::*;

    /// P-256 everywhere and a CA-only plan (no [cluster]): the failpoints
    /// are in the CA steps and the final rename, and these runs stay fast.
    const KEYS: Keys = ["ecdsa-p256", "ecdsa-p256", "ecdsa-p256", "ecdsa-p256"];

    /// (private, public, certificate) objects on the token after a crash at `point`.
    fn objects_after(point: &str) -> (usize, usize, usize) {
        if point == "before-rename" {
            return (4, 4, 4);
        }
        let (step, role) = point.split_once(':').expect("failpoint step:role");
        let i = ROLES.iter().position(|r| *r == role).expect("a role");
        match step {
            "after-key" | "after-sign" => (i + 1, i + 1, i),
            "after-store" => (i + 1, i + 1, i + 1),
            _ => panic!("unknown failpoint {point}"),
        }
    }

    fn class_counts(objects: &[Object]) -> (usize, usize, usize) {
        let n = |c: &str| objects.iter().filter(|o| o.class == c).count();
        (n("private-key"), n("public-key"), n("certificate"))
    }

    /// Runs until the failpoint aborts the process and checks what it left.
    /// Returns the public keys (label → (CKA_ID, point)) on the token.
    fn crash_at(
        f: &Fixture,
        plan: &Path,
        out: &Path,
        point: &str,
    ) -> BTreeMap<String, (String, String)> {
        let o = f.run_plan_env(plan, out, &[("CEREMONY_FAILPOINT", point)]);
        assert_ne!(
            o.code,
            Some(0),
            "the run did not stop at {point}: is the binary built with --features failpoints?\n{o}"
        );
        assert_eq!(o.signal, Some(6), "expected SIGABRT at {point}\n{o}");
        assert!(
            o.stderr.contains(&format!("failpoint {point}: aborting")),
            "{o}"
        );
        assert!(
            std::fs::symlink_metadata(out).is_err(),
            "{} exists after a crash at {point}",
            out.display()
        );
        let staging = out.with_file_name(format!(
            ".{}.staging",
            out.file_name().unwrap().to_string_lossy()
        ));
        assert_eq!(
            std::fs::symlink_metadata(&staging).is_ok(),
            point == "before-rename",
            "staging directory after a crash at {point}"
        );
        let objects = f.objects();
        assert_eq!(
            class_counts(&objects),
            objects_after(point),
            "objects after a crash at {point}: {objects:#?}"
        );
        for label in LABELS {
            for class in ["private-key", "public-key", "certificate"] {
                let n = objects
                    .iter()
                    .filter(|o| o.label == label && o.class == class)
                    .count();
                assert!(
                    n <= 1,
                    "{n} {class} objects labelled {label} after a crash at {point}"
                );
            }
        }
        f.ec_public_keys()
    }

    /// The rerun finishes; every key seen before is the one certified.
    fn finish(f: &Fixture, plan: &Path, out: &Path, seen: &BTreeMap<String, (String, String)>) {
        let o = f.run_plan(plan, out);
        o.assert_ok("ceremony run after a crash");
        // Nothing but the output is left beside it (no staging directory or marker).
        let beside: Vec<PathBuf> = snapshot_tree(out.parent().unwrap())
            .into_keys()
            .filter(|p| p.components().count() == 1)
            .collect();
        assert_eq!(
            beside,
            [PathBuf::from(out.file_name().unwrap())],
            "beside the output after the rerun"
        );
        let ders = check_outputs(f, out, KEYS);
        check_twelve_objects(f);
        check_token_certificates(f, &ders);
        let now = f.ec_public_keys();
        for (label, (id, point)) in seen {
            assert_eq!(
                now.get(label),
                Some(&(id.clone(), point.clone())),
                "key \"{label}\" was replaced after the crash"
            );
            let i = LABELS
                .iter()
                .position(|l| l == label)
                .expect("a plan label");
            let cert = parse(&ders[i]);
            assert_eq!(
                hex::encode(&cert.public_key().subject_public_key.data),
                *point,
                "{} does not certify the key \"{label}\" made before the crash",
                cert_file(i)
            );
        }
    }

    fn crash_then_resume(point: &str) {
        let token = format!("t-crash-{}", point.replace(':', "-"));
        let f = Fixture::new(&token[..token.len().min(32)]);
        let plan = f.write_ca_plan("plan.toml", KEYS);
        let out = f.work("out");
        let seen = crash_at(&f, &plan, &out, point);
        finish(&f, &plan, &out, &seen);
    }

    macro_rules! crash_tests {
        ($($name:ident => $point:literal,)*) => {
            $(
                #[test]
                fn $name() {
                    crash_then_resume($point);
                }
            )*
        };
    }

    crash_tests! {
        after_key_root => "after-key:root",
        after_sign_root => "after-sign:root",
        after_store_root => "after-store:root",
        after_key_kubernetes => "after-key:kubernetes",
        after_sign_kubernetes => "after-sign:kubernetes",
        after_store_kubernetes => "after-store:kubernetes",
        after_key_etcd => "after-key:etcd",
        after_sign_etcd => "after-sign:etcd",
        after_store_etcd => "after-store:etcd",
        after_key_front_proxy => "after-key:front-proxy",
        after_sign_front_proxy => "after-sign:front-proxy",
        after_store_front_proxy => "after-store:front-proxy",
        before_rename => "before-rename",
    }

    /// Several crashes in a row on one token, each resuming the last.
    #[test]
    fn repeated_crashes_then_resume() {
        let f = Fixture::new("t-crash-repeated");
        let plan = f.write_ca_plan("plan.toml", KEYS);
        let out = f.work("out");
        let mut seen = BTreeMap::new();
        for point in [
            "after-key:root",
            "after-store:kubernetes",
            "after-sign:front-proxy",
            "before-rename",
        ] {
            let now = crash_at(&f, &plan, &out, point);
            for (label, key) in &seen {
                assert_eq!(
                    now.get(label),
                    Some(key),
                    "key \"{label}\" was replaced by the run that crashed at {point}"
                );
            }
            seen = now;
        }
        finish(&f, &plan, &out, &seen);
    }

    /// A leftover staging directory belongs to its plan: a different plan
    /// aimed at the same --out is refused before the token is opened.
    #[test]
    fn staging_of_another_plan_is_refused() {
        let f = Fixture::new("t-crash-foreign-staging");
        let plan = f.write_ca_plan("plan.toml", KEYS);
        let out = f.work("out");
        crash_at(&f, &plan, &out, "before-rename");
        let other = f.path().join("other.toml");
        let text = std::fs::read_to_string(&plan)
            .unwrap()
            .replace("Walter Witness", "Wilma Witness");
        common::write_file(&other, text.as_bytes(), 0o644);
        let (tok, files) = (f.token_snapshot(), f.files_snapshot());
        let o = f.run_plan(&other, &out);
        assert_eq!(o.code, Some(2), "{o}");
        let staging = out.with_file_name(".out.staging");
        assert_eq!(
            o.first_error(),
            Some(
                format!(
                    "error: {} holds the unfinished output of another plan",
                    staging.display()
                )
                .as_str()
            ),
            "{o}"
        );
        assert_eq!(f.token_snapshot(), tok, "token changed");
        let after = f.files_snapshot();
        assert!(
            after == files,
            "files changed:\n{}",
            tree_diff(&files, &after)
        );
        // The plan that owns the staging directory still finishes.
        finish(&f, &plan, &out, &BTreeMap::new());
    }
}

/// The fixture itself: it refuses to start the binary with a PKCS#11 module
/// that is not SoftHSM under the test's temp dir (here OpenSC's, which would
/// reach real smart cards), whether from the plan or from --module.
#[test]
fn fixture_refuses_other_modules() {
    let f = Fixture::new("t-found-guard");
    let plan = f.write_ca_plan("plan.toml", ["ecdsa-p256"; 4]);
    let other = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";
    let text = std::fs::read_to_string(&plan)
        .unwrap()
        .replace(common::SOFTHSM_MODULE, other);
    let foreign = f.path().join("foreign.toml");
    common::write_file(&foreign, text.as_bytes(), 0o644);
    for args in [
        vec!["check".to_string(), foreign.display().to_string()],
        vec![
            "token".into(),
            "list".into(),
            "--plan".into(),
            plan.display().to_string(),
            "--module".into(),
            other.into(),
        ],
    ] {
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.ceremony(&args)));
        let msg = refused.expect_err("the fixture ran the binary with another module");
        let msg = msg
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        assert!(
            msg.contains("refusing to run the binary with PKCS#11 module"),
            "{msg}"
        );
    }
}

/// Past ten workers the preflight and end screens list the workers as one
/// line of totals (a 10,000-node plan is not 10,000 lines), and the counts
/// on it are those of the files written: one kubelet.conf (with the
/// worker's own client certificate) and one ca.crt per worker.
#[test]
fn many_workers_are_one_line_of_totals() {
    let f = Fixture::new("manyworkers");
    let plan = f.write_plan("plan.toml", ["ecdsa-p256"; 4]);
    let names: Vec<String> = (1..=11).map(|i| format!("w{i:02}")).collect();
    let text = std::fs::read_to_string(&plan).expect("the plan");
    let list = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    assert!(text.contains("names = [\"worker1\"]"), "{text}");
    let text = text.replace("names = [\"worker1\"]", &format!("names = [{list}]"));
    std::fs::write(&plan, text).expect("rewrite the plan");
    let out = f.work("out");
    let o = f.run_plan(&plan, &out);
    o.assert_ok("ceremony run");
    let lines: Vec<&str> = o.stderr.lines().filter(|l| l.contains("nodes/")).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("nodes/* (11 workers: w01 … w11)") && l.contains("11 certificates")),
        "preflight: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("nodes/* (11 workers)")
            && l.contains("11 certificates (11 in kubeconfigs), 22 files")),
        "end screen: {lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("nodes/w0")), "{lines:#?}");
    // Every worker's files, checked against the plan by `ceremony verify`
    // (each kubelet.conf's client certificate: system:node:<name>, chain).
    let (out_s, plan_s) = (out.to_string_lossy(), plan.to_string_lossy());
    f.ceremony(&["verify", out_s.as_ref(), "--plan", plan_s.as_ref()])
        .assert_ok("ceremony verify");
    for n in &names {
        let conf = out.join(format!("nodes/{n}/etc/kubernetes/kubelet.conf"));
        let text = std::fs::read_to_string(&conf).expect("a worker's kubelet.conf");
        assert!(
            text.contains("client-certificate-data"),
            "{}",
            conf.display()
        );
        assert!(
            out.join(format!("nodes/{n}/etc/kubernetes/pki/ca.crt"))
                .is_file(),
            "{n}: ca.crt"
        );
    }
}
