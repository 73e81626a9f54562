//! Tests of `verify` and `inspect`: kubeadm's own reference bundle (copied,
//! modes fixed) must pass, and each kind of damage must be reported with a
//! precise line; a small OUT made here in software (P-256 everywhere) checks
//! the plan, the root and the manifest.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use der::{Decode, Encode};
use spki::{EncodePublicKey, SubjectPublicKeyInfoOwned};
use x509_cert::name::Name;

use super::check::{check, expected_mode};
use super::*;
use crate::keytype::KeyType;
use crate::plan::{CaSpec, ControlPlaneSpec, LeafMode, Lifetime, San};
use crate::profile::kubeadm::{self, LeafOutput};

const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/kubeadm/reference/etc/kubernetes"
);

/// 2026-12-01 00:00 UTC: inside the reference certificates' year.
fn now() -> SystemTime {
    der::DateTime::new(2026, 12, 1, 0, 0, 0)
        .map(|d| d.to_system_time())
        .unwrap()
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            fs::write(&dst, fs::read(e.path()).unwrap()).unwrap();
            let mode = expected_mode(&dst.to_string_lossy()).unwrap_or(0o644);
            fs::set_permissions(&dst, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

/// A copy of the reference node at <tmp>/etc/kubernetes, modes as the bundle's.
fn reference_copy() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("etc/kubernetes");
    copy_tree(Path::new(REFERENCE), &dir);
    (d, dir)
}

fn verify(dir: &Path, root: Option<&Path>, plan: Option<PlanFacts>) -> Vec<String> {
    let input = load(dir, root, plan).unwrap();
    check(&input, now())
        .problems
        .iter()
        .map(|p| p.to_string())
        .collect()
}

fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn write_keep_mode(p: &Path, bytes: &[u8]) {
    let mode = fs::metadata(p)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o644);
    fs::write(p, bytes).unwrap();
    set_mode(p, mode);
}

/// Lines in `after` and not in `before`.
fn new_lines(before: &[String], after: &[String]) -> Vec<String> {
    after
        .iter()
        .filter(|l| !before.contains(l))
        .cloned()
        .collect()
}

fn fingerprint_of_cert(path: &Path) -> String {
    let f = parse::CertFile::parse(&fs::read(path).unwrap()).unwrap();
    f.certs[0].key.as_ref().unwrap().fingerprint()
}

#[test]
fn the_reference_bundle_passes() {
    let (_d, dir) = reference_copy();
    let input = load(&dir, None, None).unwrap();
    assert_eq!(
        input.layout,
        Layout::Node {
            base: String::new()
        }
    );
    let report = check(&input, now());
    assert!(
        report.problems.is_empty(),
        "{:#?}",
        report
            .problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(report.files_checked, 24);
    assert_eq!(
        report.nodes,
        vec![(Some("cp1".to_string()), Role::ControlPlane)],
        "named by kubelet.conf's CN"
    );
    assert!(
        report
            .summary()
            .starts_with("OK: 24 files checked, 1 node (cp1 control-plane)"),
        "{}",
        report.summary()
    );
    // The same directory given as its parent works too.
    let parent = load(dir.parent().unwrap().parent().unwrap(), None, None).unwrap();
    assert_eq!(
        parent.layout,
        Layout::Node {
            base: "etc/kubernetes/".into()
        }
    );
    assert!(check(&parent, now()).problems.is_empty());
}

#[test]
fn a_swapped_key_pair_is_named() {
    let (_d, dir) = reference_copy();
    let a = dir.join("pki/apiserver.key");
    let b = dir.join("pki/front-proxy-client.key");
    let (ka, kb) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
    write_keep_mode(&a, &kb);
    write_keep_mode(&b, &ka);
    let api = fingerprint_of_cert(&dir.join("pki/apiserver.crt"));
    let fp = fingerprint_of_cert(&dir.join("pki/front-proxy-client.crt"));
    assert_eq!(
        verify(&dir, None, None),
        [
            format!(
                "pki/apiserver.key: key: does not match pki/apiserver.crt; it is the key of pki/front-proxy-client.crt (expected {api}, got {fp})"
            ),
            format!(
                "pki/front-proxy-client.key: key: does not match pki/front-proxy-client.crt; it is the key of pki/apiserver.crt (expected {fp}, got {api})"
            ),
        ]
    );
}

fn replace_in(p: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(p).unwrap();
    assert!(text.contains(from), "{from} not in {}", p.display());
    write_keep_mode(p, text.replacen(from, to, 1).as_bytes());
}

fn kubeconfig_field(p: &Path, key: &str) -> String {
    let text = fs::read_to_string(p).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}:")))
        .unwrap();
    line.split_once(": ").unwrap().1.trim().to_string()
}

#[test]
fn a_kubeconfig_with_another_ca_is_reported() {
    let (_d, dir) = reference_copy();
    let conf = dir.join("admin.conf");
    let old = kubeconfig_field(&conf, "certificate-authority-data");
    let etcd_ca = fs::read(dir.join("pki/etcd/ca.crt")).unwrap();
    replace_in(&conf, &old, &STANDARD.encode(&etcd_ca));
    let ca = fs::read(dir.join("pki/ca.crt")).unwrap();
    let h = |b: &[u8]| format!("sha256:{}", &hex::encode(crate::x509::sha256(b))[..16]);
    assert_eq!(
        verify(&dir, None, None),
        [format!(
            "admin.conf: certificate-authority-data: differs from pki/ca.crt (expected {}, got {})",
            h(&ca),
            h(&etcd_ca)
        )]
    );
}

#[test]
fn a_wrong_mode_is_reported() {
    let (_d, dir) = reference_copy();
    set_mode(&dir.join("pki/apiserver.key"), 0o644);
    set_mode(&dir.join("kubelet.conf"), 0o640);
    set_mode(&dir.join("pki/etcd/ca.crt"), 0o600);
    assert_eq!(
        verify(&dir, None, None),
        [
            "kubelet.conf: mode: wrong permissions (expected 0600, got 0640)",
            "pki/apiserver.key: mode: wrong permissions (expected 0600, got 0644)",
            "pki/etcd/ca.crt: mode: wrong permissions (expected 0644, got 0600)",
        ]
    );
}

#[test]
fn a_second_certificate_in_ca_crt_is_reported() {
    let (_d, dir) = reference_copy();
    let ca = dir.join("pki/ca.crt");
    let mut bytes = fs::read(&ca).unwrap();
    bytes.extend(fs::read(dir.join("pki/front-proxy-ca.crt")).unwrap());
    write_keep_mode(&ca, &bytes);
    let lines = verify(&dir, None, None);
    assert!(lines.contains(
        &"pki/ca.crt: certificates: more than one certificate; kubeadm reads only the first and check-expiration refuses the file (expected 1 certificate, got 2)".to_string()
    ), "{lines:#?}");
    // kubeadm compares certificate-authority-data with ca.crt byte for byte: every kubeconfig now differs.
    let others: Vec<&String> = lines
        .iter()
        .filter(|l| !l.starts_with("pki/ca.crt: "))
        .collect();
    assert_eq!(others.len(), 5, "{lines:#?}");
    assert!(
        others
            .iter()
            .all(|l| l.contains(".conf: certificate-authority-data: differs from pki/ca.crt")),
        "{lines:#?}"
    );
}

#[test]
fn a_missing_file_is_reported() {
    let (_d, dir) = reference_copy();
    fs::remove_file(dir.join("pki/etcd/peer.key")).unwrap();
    fs::remove_file(dir.join("scheduler.conf")).unwrap();
    assert_eq!(
        verify(&dir, None, None),
        [
            "pki/etcd/peer.key: file: missing (expected in every control-plane node)",
            "scheduler.conf: file: missing (expected in every control-plane node)",
        ]
    );
}

#[test]
fn ca_key_files_and_extra_files_are_reported() {
    let (_d, dir) = reference_copy();
    fs::copy(dir.join("pki/sa.key"), dir.join("pki/ca.key")).unwrap();
    set_mode(&dir.join("pki/ca.key"), 0o600);
    fs::write(dir.join("pki/notes.txt"), b"x").unwrap();
    assert_eq!(
        verify(&dir, None, None),
        [
            "pki/ca.key: file: a CA private key file: CA keys never leave the token, and with it kubeadm leaves external-CA mode",
            "pki/notes.txt: file: unexpected: not part of a kubeadm control-plane node",
        ]
    );
}

#[test]
fn profile_damage_is_reported_per_field() {
    let (_d, dir) = reference_copy();
    // The etcd server certificate where the apiserver's should be: wrong issuer, CN, EKU, SANs, key.
    let api = dir.join("pki/apiserver.crt");
    write_keep_mode(&api, &fs::read(dir.join("pki/etcd/server.crt")).unwrap());
    let lines = verify(&dir, None, None);
    for want in [
        "pki/apiserver.crt: issuer: not issued by pki/ca.crt (expected CN=kubernetes, got CN=etcd-ca)",
        "pki/apiserver.crt: extendedKeyUsage: wrong (expected serverAuth, got clientAuth, serverAuth)",
        "pki/apiserver.crt: subject.CN: wrong (expected kube-apiserver, got cp1)",
        "pki/apiserver.crt: subjectAltName: missing DNS:kubernetes",
        "pki/apiserver.crt: subjectAltName: missing DNS:kubernetes.default.svc.<dnsDomain>",
        "pki/etcd/server.crt: publicKey: same key as pki/apiserver.crt: each certificate needs its own key",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "missing {want:?} in {lines:#?}"
        );
    }
    assert!(
        lines.iter().any(|l| l.starts_with(
            "pki/apiserver.key: key: does not match pki/apiserver.crt (expected sha256:"
        )),
        "{lines:#?}"
    );
    // 127.0.0.1 and 10.0.0.10 are in etcd's SANs too, so the kubeconfigs' servers still match.
    assert!(
        !lines.iter().any(|l| l.contains(": server: ")),
        "{lines:#?}"
    );
}

#[test]
fn usage_errors_exit_2_and_problems_exit_4() {
    let d = tempfile::tempdir().unwrap();
    let e = load(d.path(), None, None).unwrap_err();
    assert!(matches!(e, VerifyError::Layout(_)));
    assert_eq!(e.exit_code(), 2);
    let (_d, dir) = reference_copy();
    let e = load(&dir, Some(&dir.join("pki/apiserver.key")), None).unwrap_err();
    assert!(matches!(e, VerifyError::Root { .. }), "{e}");
    assert_eq!(
        crate::error::CeremonyError::from(VerifyError::Failed { problems: 3 }).exit_code(),
        4
    );
}

fn sha256sums(out: &Path) -> String {
    fn walk(base: &Path, dir: &Path, acc: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(base, &p, acc);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                if rel != "SHA256SUMS"
                    && !crate::bundle::layout::AFTER_MANIFEST.contains(&rel.as_str())
                {
                    acc.push(format!(
                        "{}  {rel}",
                        hex::encode(crate::x509::sha256(&fs::read(&p).unwrap()))
                    ));
                }
            }
        }
    }
    let mut lines = Vec::new();
    walk(out, out, &mut lines);
    lines.join("\n") + "\n"
}

#[test]
fn sha256sums_of_a_small_out() {
    let (d, node) = reference_copy();
    let out = d.path().join("out");
    copy_tree(&node, &out.join("nodes/cp1/etc/kubernetes"));
    fs::write(out.join("SHA256SUMS"), sha256sums(&out)).unwrap();
    let base = verify(&out, None, None);
    // Without a root or cas/ (kubeadm made its own CAs), only those are missing.
    assert!(
        base.iter().all(|l| l.contains(": file: missing")),
        "{base:#?}"
    );
    assert!(base.contains(&"root-ca.crt: file: missing".to_string()));

    fs::write(out.join("notes.txt"), b"hello").unwrap();
    let crt = out.join("nodes/cp1/etc/kubernetes/pki/apiserver.crt");
    let sum = hex::encode(crate::x509::sha256(&fs::read(&crt).unwrap()));
    let mut changed = fs::read(&crt).unwrap();
    changed.extend(b"\n");
    write_keep_mode(&crt, &changed);
    let new_sum = hex::encode(crate::x509::sha256(&changed));
    assert_eq!(
        new_lines(&base, &verify(&out, None, None)),
        [
            format!(
                "nodes/cp1/etc/kubernetes/pki/apiserver.crt: sha256: differs from SHA256SUMS (expected {sum}, got {new_sum})"
            ),
            "notes.txt: sha256: not listed in SHA256SUMS".to_string(),
        ]
    );
    // The transcript and the audit log come after the manifest; the transcript states its hash.
    let sums_hash = crate::x509::sha256(&fs::read(out.join("SHA256SUMS")).unwrap());
    let grouped: Vec<String> = hex::encode_upper(sums_hash)
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    fs::write(
        out.join("transcript.md"),
        format!("- SHA256SUMS SHA-256: `{}`\n", grouped.join(" ")),
    )
    .unwrap();
    fs::write(out.join("audit.log.age"), b"age").unwrap();
    assert_eq!(new_lines(&base, &verify(&out, None, None)).len(), 2);
    fs::write(
        out.join("transcript.md"),
        format!("- SHA256SUMS SHA-256: `{}`\n", "AB12 ".repeat(16)),
    )
    .unwrap();
    assert_eq!(
        new_lines(&base, &verify(&out, None, None))[2],
        format!(
            "transcript.md: SHA256SUMS SHA-256: is not the hash of SHA256SUMS (expected {}, got {})",
            hex::encode(sums_hash),
            "ab12".repeat(16)
        )
    );
    fs::remove_file(out.join("nodes/cp1/etc/kubernetes/pki/sa.pub")).unwrap();
    let lines = new_lines(&base, &verify(&out, None, None));
    assert!(
        lines.contains(
            &"nodes/cp1/etc/kubernetes/pki/sa.pub: sha256: listed in SHA256SUMS but missing"
                .to_string()
        ),
        "{lines:#?}"
    );
    assert!(lines.contains(&"nodes/cp1/etc/kubernetes/pki/sa.pub: file: missing (expected in every control-plane node)".to_string()));
}

#[test]
fn inspect_lists_expiry_as_kubeadm() {
    let (_d, dir) = reference_copy();
    let inv = inspect::inventory(&load(&dir, None, None).unwrap(), now());
    let n = &inv.nodes[0];
    let names: Vec<&str> = n.certificates.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "admin.conf",
            "apiserver",
            "apiserver-etcd-client",
            "apiserver-kubelet-client",
            "controller-manager.conf",
            "etcd-healthcheck-client",
            "etcd-peer",
            "etcd-server",
            "front-proxy-client",
            "kubelet.conf",
            "scheduler.conf",
            "super-admin.conf"
        ]
    );
    let api = &n.certificates[1];
    assert_eq!(api.expires.as_deref(), Some("2027-11-23T13:54:51Z"));
    assert_eq!(api.residual.as_deref(), Some("357d"));
    assert_eq!(api.authority.as_deref(), Some("ca"));
    assert!(
        api.externally_managed,
        "the reference's CA keys were deleted"
    );
    let cas: Vec<&str> = n.authorities.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(cas, ["ca", "etcd-ca", "front-proxy-ca"]);
    assert_eq!(n.authorities[0].residual.as_deref(), Some("9y"));
    let text = inspect::render(&inv);
    assert!(text.contains("CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED\n"), "{text}");
    assert!(text.contains("\napiserver                  Nov 23, 2027 13:54 UTC   357d            ca                      yes\n"), "{text}");
    let json: serde_json::Value = serde_json::to_value(&inv).unwrap();
    assert_eq!(json["nodes"][0]["certificates"][1]["name"], "apiserver");
    assert_eq!(json["nodes"][0]["role"], "control-plane");

    fs::remove_file(dir.join("pki/apiserver.crt")).unwrap();
    let inv = inspect::inventory(&load(&dir, None, None).unwrap(), now());
    assert_eq!(
        inv.nodes[0].role,
        Role::Worker,
        "no apiserver.crt: a worker"
    );
}

// ---------------------------------------------------------------------------
// A whole OUT made here: root → three intermediates → every leaf of a plan.

struct Ca {
    key: p256::ecdsa::SigningKey,
    spki: SubjectPublicKeyInfoOwned,
    der: Vec<u8>,
    name: Name,
    ski: Vec<u8>,
}

fn p256_key() -> (p256::SecretKey, SubjectPublicKeyInfoOwned, String) {
    use p256::elliptic_curve::Generate;
    let sk = p256::SecretKey::try_generate().unwrap();
    let spki = SubjectPublicKeyInfoOwned::from_der(
        sk.public_key().to_public_key_der().unwrap().as_bytes(),
    )
    .unwrap();
    let pem = sk.to_sec1_pem(pkcs1::LineEnding::LF).unwrap().to_string();
    (sk, spki, pem)
}

fn sign_with(
    key: &p256::ecdsa::SigningKey,
) -> impl FnOnce(&[u8]) -> Result<Vec<u8>, signature::Error> + '_ {
    move |msg| {
        use signature::Signer;
        let s: p256::ecdsa::Signature = key.try_sign(msg)?;
        Ok(s.to_der().as_bytes().to_vec())
    }
}

fn issue(
    profile: &crate::x509::CertProfile,
    spki: &SubjectPublicKeyInfoOwned,
    issuer: Option<&Ca>,
    self_key: &p256::ecdsa::SigningKey,
    days: u64,
    serial: u8,
) -> Vec<u8> {
    let start = now() - Duration::from_secs(3600);
    let (issuer_spki, key) = match issuer {
        Some(ca) => (&ca.spki, &ca.key),
        None => (spki, self_key),
    };
    let tbs = crate::x509::ToBeSigned {
        profile,
        serial: &[
            0x11, serial, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ],
        not_before: start,
        not_after: start + Duration::from_secs(days * 86400),
        subject_spki: spki,
        issuer_spki,
        issuer_key_type: KeyType::EcdsaP256,
    };
    crate::x509::issue(tbs, sign_with(key)).unwrap().der
}

fn make_ca(role: CaRole, subject: &str, issuer: Option<&Ca>, days: u64) -> Ca {
    let (sk, spki, _) = p256_key();
    let spec = CaSpec {
        role,
        label: role.name().into(),
        subject: Name::from_str(subject).unwrap(),
        key: KeyType::EcdsaP256,
        lifetime: Lifetime::For(Duration::from_secs(days * 86400)),
    };
    let profile = crate::profile::ca_profile(&spec, issuer.map(|i| (&i.name, i.ski.as_slice())));
    let signing = p256::ecdsa::SigningKey::from(&sk);
    let der = issue(&profile, &spki, issuer, &signing, days, role as u8);
    let ski = crate::x509::profile::ski(spki.subject_public_key.raw_bytes())
        .unwrap()
        .0
        .as_bytes()
        .to_vec();
    Ca {
        key: signing,
        spki,
        der,
        name: spec.subject,
        ski,
    }
}

fn cluster() -> ClusterSpec {
    let cp = |name: &str, ip: &str| ControlPlaneSpec {
        name: name.into(),
        address: ip.parse().unwrap(),
        etcd_server_extra_sans: vec![],
        etcd_peer_extra_sans: vec![],
    };
    ClusterSpec {
        name: "kubernetes".into(),
        version: (1, 31),
        endpoint: Some((San::Dns("k8s.example.com".into()), 6443)),
        service_cidr: ("10.96.0.0".parse().unwrap(), 12),
        dns_domain: "cluster.local".into(),
        bind_port: 6443,
        leaf_key: KeyType::EcdsaP256,
        leaf_validity: Duration::from_secs(365 * 86400),
        sa_key: KeyType::EcdsaP256,
        apiserver_extra_sans: vec![],
        control_plane: vec![cp("cp1", "10.0.0.10"), cp("cp2", "10.0.0.11")],
        workers: vec!["w1".into()],
        mode: LeafMode::Generate,
        kubelet_serving: false,
        worker_addresses: Default::default(),
        node_recipients: Default::default(),
        delegated: Vec::new(),
    }
}

fn facts(cl: &ClusterSpec) -> PlanFacts {
    let mut ca_subjects = BTreeMap::new();
    ca_subjects.insert(
        CaRole::Root,
        Name::from_str("CN=Test Root CA,O=ceremony tests").unwrap(),
    );
    ca_subjects.insert(CaRole::Kubernetes, Name::from_str("CN=kubernetes").unwrap());
    ca_subjects.insert(CaRole::Etcd, Name::from_str("CN=etcd-ca").unwrap());
    ca_subjects.insert(
        CaRole::FrontProxy,
        Name::from_str("CN=front-proxy-ca").unwrap(),
    );
    PlanFacts {
        cluster: cl.clone(),
        ca_subjects,
        users: vec![("alice".into(), vec!["devs".into()])],
        kubelet_signer: false,
    }
}

fn put(out: &Path, rel: &str, bytes: &[u8], mode: u32) {
    let p = out.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, bytes).unwrap();
    set_mode(&p, mode);
}

fn kubeconfig_yaml(
    cluster: &str,
    server: &str,
    user: &str,
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: {cluster}\n\
         contexts:\n- context:\n    cluster: {cluster}\n    user: {user}\n  name: {user}@{cluster}\ncurrent-context: {user}@{cluster}\n\
         kind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        STANDARD.encode(ca_pem),
        STANDARD.encode(cert_pem),
        STANDARD.encode(key_pem),
    )
}

struct LeafSpecUser;

impl LeafSpecUser {
    fn alice(cl: &ClusterSpec) -> kubeadm::LeafSpec {
        kubeadm::LeafSpec {
            path: "users/alice.conf".into(),
            output: LeafOutput::Kubeconfig {
                server: "https://k8s.example.com:6443".into(),
                cluster: cl.name.clone(),
            },
            issuer: CaRole::Kubernetes,
            cn: "alice".into(),
            orgs: vec!["devs".into()],
            eku: vec![crate::x509::profile::ID_KP_CLIENT_AUTH],
            sans: vec![],
        }
    }
}

struct Made {
    _dir: tempfile::TempDir,
    out: PathBuf,
    root: Ca,
    cas: BTreeMap<CaRole, Ca>,
}

/// A complete, correct OUT for `cluster()`.
fn make_out() -> Made {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let cl = cluster();
    let f = facts(&cl);
    let root = make_ca(
        CaRole::Root,
        &f.ca_subjects[&CaRole::Root].to_string(),
        None,
        7300,
    );
    let mut cas = BTreeMap::new();
    for role in CaRole::INTERMEDIATES {
        cas.insert(
            role,
            make_ca(role, &f.ca_subjects[&role].to_string(), Some(&root), 3650),
        );
    }
    let pem = |der: &[u8]| crate::x509::to_pem(der).into_bytes();
    put(&out, "root-ca.crt", &pem(&root.der), 0o644);
    for (role, ca) in &cas {
        put(
            &out,
            &format!("cas/{}-ca.crt", role.name()),
            &pem(&ca.der),
            0o644,
        );
        let chain = [pem(&ca.der), pem(&root.der)].concat();
        put(
            &out,
            &format!("chains/{}-ca-chain.crt", role.name()),
            &chain,
            0o644,
        );
    }
    let (_, sa_spki, sa_pem) = p256_key();
    let sa_pub = pem_rfc7468::encode_string(
        "PUBLIC KEY",
        pem_rfc7468::LineEnding::LF,
        &sa_spki.to_der().unwrap(),
    )
    .unwrap();
    let mut serial = 10u8;
    let nodes: Vec<(String, Vec<kubeadm::LeafSpec>, bool)> = cl
        .control_plane
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), kubeadm::control_plane_leaves(&cl, i), true))
        .chain(
            cl.workers
                .iter()
                .map(|w| (w.clone(), kubeadm::worker_leaves(&cl, w), false)),
        )
        .collect();
    for (name, leaves, cp) in nodes {
        let base = format!("nodes/{name}/etc/kubernetes");
        for (file, role) in kubeadm::CA_FILES {
            if cp || role == CaRole::Kubernetes {
                put(
                    &out,
                    &format!("{base}/{file}"),
                    &pem(&cas[&role].der),
                    0o644,
                );
            }
        }
        if cp {
            put(
                &out,
                &format!("{base}/pki/sa.key"),
                sa_pem.as_bytes(),
                0o600,
            );
            put(
                &out,
                &format!("{base}/pki/sa.pub"),
                sa_pub.as_bytes(),
                0o600,
            );
        }
        for spec in leaves {
            let ca = &cas[&spec.issuer];
            let (sk, spki, key_pem) = p256_key();
            let profile =
                kubeadm::leaf_profile(&spec, &ca.name, &ca.ski, KeyType::EcdsaP256).unwrap();
            serial += 1;
            let der = issue(
                &profile,
                &spki,
                Some(ca),
                &p256::ecdsa::SigningKey::from(&sk),
                365,
                serial,
            );
            match &spec.output {
                LeafOutput::CertAndKey => {
                    put(
                        &out,
                        &format!("{base}/{}.crt", spec.path),
                        &pem(&der),
                        0o644,
                    );
                    put(
                        &out,
                        &format!("{base}/{}.key", spec.path),
                        key_pem.as_bytes(),
                        0o600,
                    );
                }
                LeafOutput::Kubeconfig { server, cluster } => {
                    let yaml = kubeconfig_yaml(
                        cluster,
                        server,
                        &spec.cn,
                        &pem(&cas[&CaRole::Kubernetes].der),
                        &pem(&der),
                        key_pem.as_bytes(),
                    );
                    put(
                        &out,
                        &format!("{base}/{}", spec.path),
                        yaml.as_bytes(),
                        0o600,
                    );
                }
            }
        }
    }
    // A user who brought a CSR: her kubeconfig has no client-key-data.
    let users = LeafSpecUser::alice(&cl);
    let ca = &cas[&CaRole::Kubernetes];
    let (sk, spki, _) = p256_key();
    let profile = kubeadm::leaf_profile(&users, &ca.name, &ca.ski, KeyType::EcdsaP256).unwrap();
    let der = issue(
        &profile,
        &spki,
        Some(ca),
        &p256::ecdsa::SigningKey::from(&sk),
        365,
        200,
    );
    let yaml = kubeconfig_yaml(
        "kubernetes",
        "https://k8s.example.com:6443",
        "alice",
        &pem(&ca.der),
        &pem(&der),
        b"",
    );
    let yaml = yaml.replace("    client-key-data: \n", "");
    put(&out, "users/alice.conf", yaml.as_bytes(), 0o600);
    put(
        &out,
        "inputs.sha256",
        format!("{}  plan plan.toml\n", "ab".repeat(32)).as_bytes(),
        0o644,
    );
    put(&out, "SHA256SUMS", sha256sums(&out).as_bytes(), 0o644);
    put(&out, "audit.log.age", b"age-encryption.org/v1\n", 0o644);
    put(&out, "transcript.md", transcript(&out).as_bytes(), 0o644);
    put(
        &out,
        "audit.seal.json",
        seal_record(&end_line(&sums_sha256(&out)), &root).as_bytes(),
        0o644,
    );
    Made {
        _dir: d,
        out,
        root,
        cas,
    }
}

fn sums_sha256(out: &Path) -> String {
    hex::encode(crate::x509::sha256(
        &fs::read(out.join("SHA256SUMS")).unwrap(),
    ))
}

/// The `end` record's line of a log that recorded this SHA256SUMS hash,
/// exactly as the log holds it.
fn end_line(sha256sums_sha256: &str) -> String {
    crate::audit::record::Record {
        seq: 40,
        time: "2026-11-30T23:00:00Z".into(),
        prev: "ab".repeat(32),
        event: crate::audit::Event::End {
            outputs: 70,
            sha256sums_sha256: sha256sums_sha256.into(),
        },
    }
    .canonical()
    .unwrap()
}

/// audit.seal.json: `end` sealed by `root`'s key, as the token signs it.
fn seal_record(end: &str, root: &Ca) -> String {
    let hash = crate::x509::sha256(end.as_bytes());
    let sig = sign_with(&root.key)(&crate::audit::seal::message(&hash)).unwrap();
    let seal =
        crate::audit::seal::Seal::new(&hash, KeyType::EcdsaP256, &sig, &root.der, &root.spki)
            .unwrap();
    crate::audit::chain::SealRecord::new(end, &seal)
        .text()
        .unwrap()
}

/// `AB12 CD34 …`, as the transcript groups a hash.
fn grouped(hash: &[u8]) -> String {
    let h = hex::encode_upper(hash);
    let groups: Vec<&str> = h
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    groups.join(" ")
}

/// A transcript that states OUT's SHA256SUMS hash and the final hash of the
/// log that sealed it, as the ceremony writes it.
fn transcript(out: &Path) -> String {
    let sums = crate::x509::sha256(&fs::read(out.join("SHA256SUMS")).unwrap());
    let end = end_line(&hex::encode(sums));
    format!(
        "- SHA256SUMS SHA-256: `{}`\n- Audit log final hash: `{}`\n",
        grouped(&sums),
        grouped(&crate::x509::sha256(end.as_bytes()))
    )
}

fn check_out(out: &Path, root: Option<&Path>, cl: Option<&ClusterSpec>) -> Report {
    let input = load(out, root, cl.map(facts)).unwrap();
    check(&input, now())
}

fn lines(r: &Report) -> Vec<String> {
    r.problems.iter().map(|p| p.to_string()).collect()
}

/// SHA256SUMS written again after a change, and the transcript and seal
/// with it (as a ceremony that wrote these files would have).
fn resum(m: &Made) {
    let out = &m.out;
    let p = out.join("SHA256SUMS");
    write_keep_mode(&p, sha256sums(out).as_bytes());
    write_keep_mode(&out.join("transcript.md"), transcript(out).as_bytes());
    write_keep_mode(
        &out.join("audit.seal.json"),
        seal_record(&end_line(&sums_sha256(out)), &m.root).as_bytes(),
    );
}

#[test]
fn a_correct_out_passes_with_plan_and_root() {
    let m = make_out();
    let r = check_out(&m.out, None, Some(&cluster()));
    assert!(r.problems.is_empty(), "{:#?}", lines(&r));
    assert_eq!(r.root, RootUsed::Out);
    assert_eq!(
        r.nodes,
        vec![
            (Some("cp1".into()), Role::ControlPlane),
            (Some("cp2".into()), Role::ControlPlane),
            (Some("w1".into()), Role::Worker)
        ]
    );
    // Without the plan, and with the root given explicitly, too.
    let r = check_out(&m.out, Some(&m.out.join("root-ca.crt")), None);
    assert!(r.problems.is_empty(), "{:#?}", lines(&r));
    // One node alone, with the plan: its name comes from the path.
    let node = m.out.join("nodes/cp2/etc/kubernetes");
    let r = check_out(&node, Some(&m.out.join("root-ca.crt")), Some(&cluster()));
    assert!(r.problems.is_empty(), "{:#?}", lines(&r));
    assert_eq!(r.nodes, vec![(Some("cp2".into()), Role::ControlPlane)]);
    // inspect: the ceremony's CAs, then each node.
    let inv = inspect::inventory(&load(&m.out, None, None).unwrap(), now());
    assert_eq!(
        inv.authorities
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["root-ca", "kubernetes-ca", "etcd-ca", "front-proxy-ca"]
    );
    assert_eq!(inv.nodes.len(), 3);
    assert_eq!(
        inv.nodes[2].certificates.len(),
        1,
        "a worker has kubelet.conf"
    );
    assert!(inspect::render(&inv).contains("node w1 (worker): nodes/w1/etc/kubernetes\n"));
    // Each user's kubeconfig, for `--expiring` to see.
    assert_eq!(inv.users.len(), 1);
    assert_eq!(inv.users[0].name, "alice");
    assert_eq!(inv.users[0].file, "users/alice.conf");
    assert!(inv.users[0].not_after.is_some(), "{:?}", inv.users[0]);
    assert!(inspect::render(&inv).contains("\nusers (users/)\nUSER "));
}

#[test]
fn the_plan_decides_sans_and_a_foreign_root_breaks_every_chain() {
    let m = make_out();
    let mut cl = cluster();
    cl.apiserver_extra_sans = vec![San::Dns("api.internal".into())];
    let r = check_out(&m.out, None, Some(&cl));
    assert_eq!(
        lines(&r),
        [
            "nodes/cp1/etc/kubernetes/pki/apiserver.crt: subjectAltName: missing DNS:api.internal",
            "nodes/cp2/etc/kubernetes/pki/apiserver.crt: subjectAltName: missing DNS:api.internal",
        ]
    );
    let mut cl = cluster();
    cl.version = (1, 28);
    let r = lines(&check_out(&m.out, None, Some(&cl)));
    assert!(r.contains(&"nodes/cp1/etc/kubernetes/super-admin.conf: file: unexpected: not part of a kubeadm control-plane node".to_string()), "{r:#?}");
    assert!(r.contains(&"nodes/cp1/etc/kubernetes/admin.conf: client-certificate-data.subject.O: wrong (expected system:masters, got kubeadm:cluster-admins)".to_string()), "{r:#?}");

    // A different root: every intermediate fails to chain, and the OUT's root differs.
    let other = make_ca(CaRole::Root, "CN=Test Root CA,O=ceremony tests", None, 7300);
    let f = m.out.parent().unwrap().join("other-root.crt");
    fs::write(&f, crate::x509::to_pem(&other.der)).unwrap();
    let r = lines(&check_out(&m.out, Some(&f), None));
    let label = format!("--root {}", f.display());
    assert!(
        r.iter()
            .any(|l| l
                .starts_with("root-ca.crt: certificates: differs from the root given with --root")),
        "{r:#?}"
    );
    assert!(
        r.iter().any(|l| l.starts_with(&format!(
            "cas/etcd-ca.crt: signature: does not verify with the key of {label}"
        ))),
        "{r:#?}"
    );
    assert!(
        r.iter().any(
            |l| l.starts_with("nodes/w1/etc/kubernetes/pki/ca.crt: signature: does not verify")
        ),
        "{r:#?}"
    );
}

#[test]
fn a_ca_key_in_a_kubeconfig_and_the_root_in_ca_crt_are_found() {
    let m = make_out();
    // Put the kubernetes CA's private key into cp1's admin.conf.
    let conf = m.out.join("nodes/cp1/etc/kubernetes/admin.conf");
    let old = kubeconfig_field(&conf, "client-key-data");
    let sk = p256::SecretKey::from(m.cas[&CaRole::Kubernetes].key.as_nonzero_scalar());
    let ca_key_pem = sk.to_sec1_pem(pkcs1::LineEnding::LF).unwrap();
    replace_in(&conf, &old, &STANDARD.encode(ca_key_pem.as_bytes()));
    // And the root where w1's ca.crt should be.
    let w1_ca = m.out.join("nodes/w1/etc/kubernetes/pki/ca.crt");
    write_keep_mode(&w1_ca, &fs::read(m.out.join("root-ca.crt")).unwrap());
    resum(&m);
    let r = lines(&check_out(&m.out, None, Some(&cluster())));
    let ca = format!(
        "{} (cas/kubernetes-ca.crt)",
        parse::CertFile::parse(&fs::read(m.out.join("cas/kubernetes-ca.crt")).unwrap())
            .unwrap()
            .certs[0]
            .subject
    );
    assert!(
        r.contains(&format!("nodes/cp1/etc/kubernetes/admin.conf: client-key-data: is the private key of the CA {ca}: CA keys never leave the token")),
        "{r:#?}"
    );
    assert!(r.iter().any(|l| l.starts_with("nodes/cp1/etc/kubernetes/admin.conf: client-key-data: does not match client-certificate-data (expected sha256:")), "{r:#?}");
    assert!(
        r.contains(&"nodes/w1/etc/kubernetes/pki/ca.crt: certificates: is the root (root-ca.crt); a CA file holds only its intermediate, or every domain trusts every other".to_string()),
        "{r:#?}"
    );
}

#[test]
fn service_account_keys_must_agree_across_nodes() {
    let m = make_out();
    let (_, spki, pem) = p256_key();
    let pub_pem = pem_rfc7468::encode_string(
        "PUBLIC KEY",
        pem_rfc7468::LineEnding::LF,
        &spki.to_der().unwrap(),
    )
    .unwrap();
    write_keep_mode(
        &m.out.join("nodes/cp2/etc/kubernetes/pki/sa.key"),
        pem.as_bytes(),
    );
    write_keep_mode(
        &m.out.join("nodes/cp2/etc/kubernetes/pki/sa.pub"),
        pub_pem.as_bytes(),
    );
    resum(&m);
    let r = lines(&check_out(&m.out, None, None));
    assert_eq!(r.len(), 2, "{r:#?}");
    assert!(r[0].starts_with("nodes/cp2/etc/kubernetes/pki/sa.key: content: differs from nodes/cp1/etc/kubernetes/pki/sa.key: every control-plane node needs the same service-account key (expected sha256:"), "{r:#?}");
    assert!(r[1].starts_with("nodes/cp2/etc/kubernetes/pki/sa.pub: content: differs from nodes/cp1/etc/kubernetes/pki/sa.pub"), "{r:#?}");
}

/// A PKCS#10 request for `spki` (verify reads only its public key; the signature is a placeholder).
fn csr_pem(spki: &SubjectPublicKeyInfoOwned) -> String {
    let req = x509_cert::request::CertReq {
        info: x509_cert::request::CertReqInfo {
            version: x509_cert::request::Version::V1,
            subject: Name::from_str("CN=x").unwrap(),
            public_key: spki.clone(),
            attributes: Default::default(),
        },
        algorithm: crate::x509::signature_algorithm(KeyType::EcdsaP256),
        signature: der::asn1::BitString::from_bytes(&[0]).unwrap(),
    };
    pem_rfc7468::encode_string(
        "CERTIFICATE REQUEST",
        pem_rfc7468::LineEnding::LF,
        &req.to_der().unwrap(),
    )
    .unwrap()
}

fn cert_spki(path: &Path) -> SubjectPublicKeyInfoOwned {
    let f = parse::CertFile::parse(&fs::read(path).unwrap()).unwrap();
    f.certs[0]
        .cert
        .tbs_certificate()
        .subject_public_key_info()
        .clone()
}

#[test]
fn csr_mode_nodes_keep_their_keys() {
    let m = make_out();
    let node = m.out.join("nodes/cp1/etc/kubernetes");
    // The node kept apiserver.key and admin.conf's key; their CSRs came along.
    fs::remove_file(node.join("pki/apiserver.key")).unwrap();
    put(
        &node,
        "pki/apiserver.csr",
        csr_pem(&cert_spki(&node.join("pki/apiserver.crt"))).as_bytes(),
        0o644,
    );
    let conf = node.join("admin.conf");
    let old = kubeconfig_field(&conf, "client-key-data");
    replace_in(&conf, &format!("    client-key-data: {old}\n"), "");
    let admin_cert =
        crate::bundle::kubeconfig::base64_data(&kubeconfig_field(&conf, "client-certificate-data"))
            .unwrap();
    let admin_spki = parse::CertFile::parse(&admin_cert).unwrap().certs[0]
        .cert
        .tbs_certificate()
        .subject_public_key_info()
        .clone();
    put(
        &node,
        "admin.conf.csr",
        csr_pem(&admin_spki).as_bytes(),
        0o644,
    );
    resum(&m);
    let r = check_out(&m.out, None, None);
    assert!(r.problems.is_empty(), "{:#?}", lines(&r));

    // A CSR for another key than the certificate's.
    let (_, other, _) = p256_key();
    write_keep_mode(&node.join("pki/apiserver.csr"), csr_pem(&other).as_bytes());
    resum(&m);
    let r = lines(&check_out(&m.out, None, None));
    assert_eq!(r.len(), 1, "{r:#?}");
    assert!(
        r[0].starts_with("nodes/cp1/etc/kubernetes/pki/apiserver.csr: publicKey: does not match nodes/cp1/etc/kubernetes/pki/apiserver.crt (expected sha256:"),
        "{r:#?}"
    );
    // With a plan in generate mode, the CSRs do not belong and the keys are missing.
    let r = lines(&check_out(&m.out, None, Some(&cluster())));
    assert!(r.contains(&"nodes/cp1/etc/kubernetes/pki/apiserver.key: file: missing (expected by the plan for control-plane node cp1)".to_string()), "{r:#?}");
    assert!(
        r.contains(&"nodes/cp1/etc/kubernetes/admin.conf: client-key-data: missing".to_string()),
        "{r:#?}"
    );
    assert!(r.contains(&"nodes/cp1/etc/kubernetes/pki/apiserver.csr: file: unexpected: not part of a kubeadm control-plane node".to_string()), "{r:#?}");
}

#[test]
fn user_kubeconfigs_follow_the_plan() {
    let m = make_out();
    let mut f = facts(&cluster());
    f.users = vec![("alice".into(), vec!["ops".into()]), ("bob".into(), vec![])];
    let input = load(&m.out, None, Some(f)).unwrap();
    let r = lines(&check(&input, now()));
    assert_eq!(
        r,
        [
            "users/alice.conf: client-certificate-data.subject.O: wrong (expected ops, got devs)",
            "users/bob.conf: file: missing: the plan has this user",
        ]
    );
}

#[test]
fn symbolic_links_are_not_followed() {
    let (d, dir) = reference_copy();
    let ca = dir.join("pki/front-proxy-ca.crt");
    let elsewhere = d.path().join("front-proxy-ca.crt");
    fs::rename(&ca, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &ca).unwrap();
    assert_eq!(
        verify(&dir, None, None),
        ["pki/front-proxy-ca.crt: file: a symbolic link (expected a regular file)"]
    );
}

#[test]
fn a_large_bundle_is_summed_up_by_role_not_named_node_by_node() {
    let mut nodes = vec![(Some("cp1".to_string()), Role::ControlPlane)];
    nodes.extend((1..=10_000).map(|i| (Some(format!("worker{i}")), Role::Worker)));
    let report = Report {
        problems: Vec::new(),
        files_checked: 20_010,
        nodes,
        root: RootUsed::Out,
        plan: false,
        locked: Vec::new(),
    };
    let line = report.summary();
    assert!(
        line.starts_with(
            "OK: 20010 files checked, 10001 nodes (1 control-plane, 10000 worker: \
             cp1 control-plane, worker1 worker, worker2 worker, worker3 worker, \
             worker4 worker, worker5 worker, worker6 worker, worker7 worker, \
             and 9993 more); chains checked up to root-ca.crt"
        ),
        "{line}"
    );
    assert!(line.len() < 400, "one readable line: {} bytes", line.len());
}

/// A kubeconfig may hold exactly the keys the ceremony (and kubeadm) writes:
/// a proxy, another TLS server name, skipping TLS checks, a second user,
/// another way to authenticate, a namespace or an extension is a problem.
#[test]
fn a_kubeconfig_key_the_ceremony_never_writes_is_reported() {
    let (_d, dir) = reference_copy();
    let conf = dir.join("admin.conf");
    replace_in(
        &conf,
        "    server: https://127.0.0.1:6443\n",
        "    server: https://127.0.0.1:6443\n    proxy-url: http://proxy.example:3128\n    \
         tls-server-name: other.example\n    insecure-skip-tls-verify: false\n",
    );
    replace_in(
        &conf,
        "    user: kubernetes-admin\n",
        "    user: kubernetes-admin\n    namespace: kube-system\n",
    );
    replace_in(
        &conf,
        "preferences: {}\n",
        "preferences:\n  colors: true\nextensions: []\n",
    );
    replace_in(
        &conf,
        "users:\n",
        "users:\n- name: other\n  user:\n    exec:\n      command: /bin/sh\n",
    );
    let got = verify(&dir, None, None);
    let want = [
        "admin.conf: clusters[0].cluster.insecure-skip-tls-verify: set: the client would not check the API server (expected only the keys kubeadm writes)",
        "admin.conf: clusters[0].cluster.proxy-url: set: the client would connect through a proxy (expected only the keys kubeadm writes)",
        "admin.conf: clusters[0].cluster.tls-server-name: set: the client would check the API server's certificate for another name (expected only the keys kubeadm writes)",
        "admin.conf: contexts[0].context.namespace: a key the ceremony never writes (expected only the keys kubeadm writes)",
        "admin.conf: extensions: a key the ceremony never writes (expected only the keys kubeadm writes)",
        "admin.conf: preferences.colors: a key the ceremony never writes (expected only the keys kubeadm writes)",
        "admin.conf: users: kubeadm writes exactly one (expected 1, got 2)",
    ];
    for w in want {
        assert!(got.contains(&w.to_string()), "lacks {w:?}: {got:#?}");
    }
    // The first user is now `other`, with exec instead of a certificate.
    assert!(
        got.iter().any(
            |l| l.starts_with("admin.conf: users[0].user: other credentials")
                && l.ends_with("(got exec)")
        ),
        "{got:#?}"
    );
    assert!(
        got.iter().all(|l| l.starts_with("admin.conf: ")),
        "{got:#?}"
    );
}

/// OUT's list of the ceremony's inputs is one of its files: listed in
/// SHA256SUMS and 0644 as the writer makes it (an output written before
/// inputs were listed has none, and passes).
#[test]
fn the_inputs_manifest_is_checked_as_every_file_of_out() {
    let m = make_out();
    let inputs = m.out.join("inputs.sha256");
    assert!(inputs.is_file());
    set_mode(&inputs, 0o666);
    let mut text = fs::read_to_string(&inputs).unwrap();
    text.push_str(&format!("{}  names workers.txt\n", "cd".repeat(32)));
    fs::write(&inputs, text).unwrap();
    let want = sha256sums(&m.out)
        .lines()
        .find(|l| l.ends_with("  inputs.sha256"))
        .unwrap()[..64]
        .to_string();
    let r = check_out(&m.out, None, Some(&cluster()));
    let listed = fs::read_to_string(m.out.join("SHA256SUMS")).unwrap();
    let was = listed
        .lines()
        .find(|l| l.ends_with("  inputs.sha256"))
        .unwrap()[..64]
        .to_string();
    assert_eq!(
        lines(&r),
        [
            format!("inputs.sha256: sha256: differs from SHA256SUMS (expected {was}, got {want})"),
            "inputs.sha256: mode: wrong permissions (expected 0644, got 0666)".to_string(),
        ]
    );
    // Gone from SHA256SUMS: not listed.
    let without: String = listed
        .lines()
        .filter(|l| !l.ends_with("  inputs.sha256"))
        .map(|l| format!("{l}\n"))
        .collect();
    write_keep_mode(&m.out.join("SHA256SUMS"), without.as_bytes());
    write_keep_mode(&m.out.join("transcript.md"), transcript(&m.out).as_bytes());
    // The root seals this SHA256SUMS: only the unlisted file is wrong.
    write_keep_mode(
        &m.out.join("audit.seal.json"),
        seal_record(&end_line(&sums_sha256(&m.out)), &m.root).as_bytes(),
    );
    set_mode(&inputs, 0o644);
    let r = check_out(&m.out, None, Some(&cluster()));
    assert_eq!(
        lines(&r),
        ["inputs.sha256: sha256: not listed in SHA256SUMS"]
    );
    // An output without it.
    fs::remove_file(&inputs).unwrap();
    let r = check_out(&m.out, None, Some(&cluster()));
    assert!(r.problems.is_empty(), "{:#?}", lines(&r));
}

/// Directories as the writer makes them (0755, or narrower by the umask);
/// a group- or world-writable pki/ is not.
#[test]
fn a_writable_directory_is_reported() {
    let (_d, dir) = reference_copy();
    set_mode(&dir.join("pki"), 0o777);
    set_mode(&dir.join("pki/etcd"), 0o700);
    assert_eq!(
        verify(&dir, None, None),
        ["pki: mode: wrong permissions for a directory (expected 0755 or narrower, got 0777)"]
    );
}

/// An OUT without its sealed log or its transcript is incomplete, and a
/// transcript that states no SHA256SUMS hash binds nothing: neither is a
/// silent skip of the cross-check.
#[test]
fn an_out_without_its_log_or_transcript_is_reported() {
    let m = make_out();
    fs::remove_file(m.out.join("audit.log.age")).unwrap();
    fs::remove_file(m.out.join("transcript.md")).unwrap();
    let r = check_out(&m.out, None, Some(&cluster()));
    assert_eq!(
        lines(&r),
        [
            "audit.log.age: file: missing (expected every ceremony output has it (written after SHA256SUMS))",
            "transcript.md: file: missing (expected every ceremony output has it (written after SHA256SUMS))",
        ]
    );
    put(&m.out, "audit.log.age", b"age-encryption.org/v1\n", 0o644);
    put(
        &m.out,
        "transcript.md",
        b"# a transcript without the hash\n",
        0o644,
    );
    let sums = hex::encode(crate::x509::sha256(
        &fs::read(m.out.join("SHA256SUMS")).unwrap(),
    ));
    let r = check_out(&m.out, None, Some(&cluster()));
    assert_eq!(
        lines(&r),
        [format!(
            "transcript.md: SHA256SUMS SHA-256: missing: the transcript does not bind SHA256SUMS (expected {sums})"
        )]
    );
    // OUT's own files have the writer's mode too.
    set_mode(&m.out.join("transcript.md"), 0o666);
    let r = check_out(&m.out, None, Some(&cluster()));
    assert!(
        lines(&r).contains(
            &"transcript.md: mode: wrong permissions (expected 0644, got 0666)".to_string()
        ),
        "{:#?}",
        lines(&r)
    );
}

/// Without `--plan`, the service-account key must still be a key kubeadm
/// makes: an RSA-1024 token signing key is not.
#[test]
fn a_weak_service_account_key_fails_without_a_plan() {
    use pkcs1::EncodeRsaPrivateKey;
    use spki::EncodePublicKey;
    let (_d, dir) = reference_copy();
    let sk = rsa::PrivateKey::new(&mut rand::rngs::SysRng, 1024).unwrap();
    let key = sk.to_pkcs1_pem(pkcs1::LineEnding::LF).unwrap();
    let public = sk
        .to_public_key()
        .to_public_key_pem(pkcs1::LineEnding::LF)
        .unwrap();
    write_keep_mode(&dir.join("pki/sa.key"), key.as_bytes());
    write_keep_mode(&dir.join("pki/sa.pub"), public.as_bytes());
    assert_eq!(
        verify(&dir, None, None),
        [
            "pki/sa.key: key: not a key type kubeadm makes (expected ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096, got rsa-1024 (unsupported))"
        ]
    );
}

/// audit.seal.json is checked, not only required: the root's seal over the
/// `end` record, that record's SHA256SUMS hash, and the transcript's final hash.
#[test]
fn the_seal_must_be_the_roots_over_this_sha256sums() {
    let m = make_out();
    let seal = m.out.join("audit.seal.json");
    let root_sha = |der: &[u8]| hex::encode(crate::x509::sha256(der));
    let sums = sums_sha256(&m.out);
    // As made: sealed by OUT's root, with and without --root.
    assert!(lines(&check_out(&m.out, None, Some(&cluster()))).is_empty());
    let r = check_out(&m.out, Some(&m.out.join("root-ca.crt")), None);
    assert!(r.problems.is_empty(), "{:#?}", lines(&r));

    // Sealed over another SHA256SUMS: the seal holds, the outputs are not
    // the sealed ones; the transcript's final hash is not the sealed one.
    let other_end = end_line(&"cd".repeat(32));
    write_keep_mode(&seal, seal_record(&other_end, &m.root).as_bytes());
    let stated = hex::encode(crate::x509::sha256(end_line(&sums).as_bytes()));
    assert_eq!(
        lines(&check_out(&m.out, None, Some(&cluster()))),
        [
            format!(
                "audit.seal.json: end.sha256sums_sha256: is not the hash of SHA256SUMS: the outputs are not the ones the root sealed (expected {sums}, got {})",
                "cd".repeat(32)
            ),
            format!(
                "transcript.md: audit log final hash: is not the final hash sealed in audit.seal.json (expected {}, got {stated})",
                hex::encode(crate::x509::sha256(other_end.as_bytes()))
            ),
        ]
    );

    // Sealed by another root.
    let other = make_ca(CaRole::Root, "CN=Test Root CA,O=ceremony tests", None, 7300);
    write_keep_mode(&seal, seal_record(&end_line(&sums), &other).as_bytes());
    assert_eq!(
        lines(&check_out(&m.out, None, Some(&cluster()))),
        [format!(
            "audit.seal.json: seal: not sealed by the root in root-ca.crt: the seal was made by root certificate {}, not by this root ({})",
            root_sha(&other.der),
            root_sha(&m.root.der)
        )]
    );
    // ... and a seal by OUT's root is not the seal of the root given with --root.
    write_keep_mode(&seal, seal_record(&end_line(&sums), &m.root).as_bytes());
    let f = m.out.parent().unwrap().join("other-root.crt");
    fs::write(&f, crate::x509::to_pem(&other.der)).unwrap();
    let r = lines(&check_out(&m.out, Some(&f), None));
    let want = format!(
        "audit.seal.json: seal: not sealed by the root in --root {}: the seal was made by root certificate {}, not by this root ({})",
        f.display(),
        root_sha(&m.root.der),
        root_sha(&other.der)
    );
    assert!(r.contains(&want), "{r:#?}");

    // The end line changed under its seal.
    let end = end_line(&sums);
    let text = seal_record(&end, &m.root);
    let mut record: crate::audit::chain::SealRecord = serde_json::from_str(&text).unwrap();
    record.end = end.replace("\"outputs\":70", "\"outputs\":71");
    assert_ne!(record.end, end);
    write_keep_mode(&seal, record.text().unwrap().as_bytes());
    assert_eq!(
        lines(&check_out(&m.out, None, Some(&cluster()))),
        [format!(
            "audit.seal.json: seal: not sealed by the root in root-ca.crt: its end record hashes to {}, but the seal covers {}",
            hex::encode(crate::x509::sha256(record.end.as_bytes())),
            hex::encode(crate::x509::sha256(end.as_bytes()))
        )]
    );

    // Not a seal record at all.
    write_keep_mode(&seal, b"{}\n");
    assert_eq!(
        lines(&check_out(&m.out, None, Some(&cluster()))),
        ["audit.seal.json: content: not a seal record (missing field `end` at line 1 column 2)"]
    );
    write_keep_mode(&seal, b"sealed!\n");
    assert_eq!(
        lines(&check_out(&m.out, None, Some(&cluster()))),
        ["audit.seal.json: content: not a seal record (expected value at line 1 column 1)"]
    );
}

/// A continuing ceremony's OUT holds only the nodes it renewed or added:
/// the first control-plane node (with super-admin.conf) and the plan's
/// other nodes may be untouched, as its continuation.json says.
#[test]
fn a_continuing_out_without_its_untouched_nodes_passes() {
    let m = make_out();
    fs::remove_dir_all(m.out.join("nodes/cp1")).unwrap();
    fs::remove_dir_all(m.out.join("nodes/w1")).unwrap();
    let record = crate::audit::chain::ContinuationRecord {
        previous: crate::audit::chain::PreviousCeremony {
            output: "../c1".into(),
            ceremony: "c1".into(),
            final_hash: "ab".repeat(32),
            seal: "c2lnbg==".into(),
            sha256sums_sha256: "cd".repeat(32),
            root_certificate_sha256: "ef".repeat(32),
            fork: false,
        },
        renewed: vec!["cp2".into()],
        added: vec![],
        untouched: vec!["cp1".into(), "w1".into()],
        service_account_key: "carried".into(),
        rotations: Vec::new(),
    };
    let cont = m.out.join("continuation.json");
    put(
        &m.out,
        "continuation.json",
        serde_json::to_string_pretty(&record).unwrap().as_bytes(),
        0o644,
    );
    resum(&m);
    let r = check_out(&m.out, None, None);
    assert!(r.problems.is_empty(), "{:#?}", lines(&r));
    let r = check_out(&m.out, None, Some(&cluster()));
    assert!(r.problems.is_empty(), "{:#?}", lines(&r));

    // Without it, the first node's super-admin.conf and the plan's nodes are missing.
    fs::remove_file(&cont).unwrap();
    resum(&m);
    assert_eq!(
        lines(&check_out(&m.out, None, None)),
        [
            "nodes/cp2/etc/kubernetes/super-admin.conf: file: missing on every control-plane node: admin.conf is in kubeadm:cluster-admins, and kubeadm init needs super-admin.conf to bind that group"
        ]
    );
    assert_eq!(
        lines(&check_out(&m.out, None, Some(&cluster()))),
        [
            "nodes/cp1/etc/kubernetes: file: missing: the plan has this node",
            "nodes/w1/etc/kubernetes: file: missing: the plan has this node",
        ]
    );
    put(&m.out, "continuation.json", b"{\"untouched\": []}\n", 0o644);
    resum(&m);
    let r = lines(&check_out(&m.out, None, None));
    assert!(
        r.contains(&"continuation.json: content: not a continuation record (missing field `previous` at line 1 column 17)".to_string()),
        "{r:#?}"
    );
}

/// The CRL of `ca` (PEM) listing `serials`, from `this` to `next`, signed
/// with `signer`'s key.
fn crl_of(ca: &Ca, signer: &Ca, serials: &[Vec<u8>], this: SystemTime, next: SystemTime) -> String {
    use crate::x509::crl;
    let issuer_name = ca.name.clone();
    let entries: Vec<crl::Entry> = serials
        .iter()
        .map(|s| crl::Entry {
            serial: crl::serial_digits(s).to_vec(),
            revoked_at: this,
            reason: crl::Reason::KeyCompromise,
        })
        .collect();
    let t = crl::CrlTbs {
        issuer: &issuer_name,
        issuer_ski: &ca.ski,
        issuer_key_type: KeyType::EcdsaP256,
        number: 3,
        this_update: this,
        next_update: next,
        entries: &entries,
    };
    // Built and signed by hand, so that a wrong signer gets through.
    let tbs = crl::build(&t).unwrap();
    let sig = sign_with(&signer.key)(&tbs).unwrap();
    let alg = crate::x509::signature_algorithm(KeyType::EcdsaP256);
    let der = crate::x509::assemble(&tbs, &alg, &sig).unwrap();
    crl::to_pem(&der)
}

fn serial_of(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).unwrap();
    let cert = <x509_cert::Certificate as der::DecodePem>::from_pem(&pem).unwrap();
    cert.tbs_certificate().serial_number().as_bytes().to_vec()
}

#[test]
fn crls_are_checked_and_a_revoked_certificate_in_a_bundle_is_an_error() {
    let m = make_out();
    let etcd = &m.cas[&CaRole::Etcd];
    let peer = m.out.join("nodes/cp1/etc/kubernetes/pki/etcd/peer.crt");
    let day = Duration::from_secs(86_400);
    // A fresh CRL listing nothing: the output passes.
    put(
        &m.out,
        "crls/etcd-ca.crl",
        crl_of(etcd, etcd, &[], now() - day, now() + day).as_bytes(),
        0o644,
    );
    resum(&m);
    let r = check_out(&m.out, None, Some(&cluster()));
    assert!(r.problems.is_empty(), "{:#?}", lines(&r));

    // Listing cp1's peer certificate: an error naming it.
    let serial = serial_of(&peer);
    let pem = crl_of(
        etcd,
        etcd,
        std::slice::from_ref(&serial),
        now() - day,
        now() + day,
    );
    write_keep_mode(&m.out.join("crls/etcd-ca.crl"), pem.as_bytes());
    resum(&m);
    let r = check_out(&m.out, None, Some(&cluster()));
    assert_eq!(
        lines(&r),
        [format!(
            "nodes/cp1/etc/kubernetes/pki/etcd/peer.crt: serial: revoked on crls/etcd-ca.crl (key-compromise): issue it again and remove this one (got {})",
            hex::encode_upper(crate::x509::crl::serial_digits(&serial))
        )]
    );

    // Past its nextUpdate, or signed by another key: said so.
    let pem = crl_of(etcd, etcd, &[], now() - 3 * day, now() - day);
    write_keep_mode(&m.out.join("crls/etcd-ca.crl"), pem.as_bytes());
    resum(&m);
    let got = lines(&check_out(&m.out, None, Some(&cluster())));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].starts_with("crls/etcd-ca.crl: nextUpdate: has passed: a client that checks CRLs refuses every certificate of this CA; sign the CRLs again in a continuing ceremony (got "),
        "{got:#?}"
    );
    let pem = crl_of(etcd, &m.root, &[], now() - day, now() + day);
    write_keep_mode(&m.out.join("crls/etcd-ca.crl"), pem.as_bytes());
    resum(&m);
    let got = lines(&check_out(&m.out, None, Some(&cluster())));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].starts_with(
            "crls/etcd-ca.crl: signature: signature does not verify with the issuer's public key"
        ),
        "{got:#?}"
    );
}

/// A kubelet serving file where the plan makes none is reported; without a
/// plan it is let be.
#[test]
fn kubelet_serving_files_the_plan_does_not_make_are_reported() {
    let m = make_out();
    let file = "nodes/w1/var/lib/kubelet/pki/kubelet.crt";
    put(&m.out, file, b"not for this plan", 0o644);
    resum(&m);
    let r = lines(&check_out(&m.out, None, Some(&cluster())));
    assert!(
        r.contains(&format!("{file}: file: unexpected: a node directory holds only etc/kubernetes (and, with kubelet_serving_certs, var/lib/kubelet/pki/kubelet.{{crt,key}})")),
        "{r:#?}"
    );
    let r = lines(&check_out(&m.out, None, None));
    assert!(!r.iter().any(|l| l.contains("var/lib/kubelet")), "{r:#?}");
}
