//! CSR mode end to end against a real SoftHSM2 token per test: the real
//! output of `kubeadm certs generate-csr` (tests/fixtures/kubeadm/generate-csr,
//! node cp1, kubeadm v1.24 Organizations) signed into a tree that OpenSSL
//! verifies and kubectl loads, a worker's kubelet CSR, user kubeconfigs, and
//! every refusal with its exact message and nothing written.

// A test fails by panicking and talks on stderr: the crate's lints
// (Cargo.toml) are for the crate, not for its integration tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{ClusterSpec, Fixture, Node, Output, PlanSpec, User, snapshot_tree, tree_diff};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;

const GENERATE_CSR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/kubeadm/generate-csr"
);
/// The node's etc/kubernetes inside the test's CSR directory.
const K: &str = "csrs/cp1/etc/kubernetes";
/// The worker's.
const W: &str = "csrs/w1/etc/kubernetes";

const APISERVER_SANS: &str = "DNS:cp1, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, \
DNS:kubernetes.default.svc.cluster.local, IP:10.96.0.1, IP:10.0.0.10, IP:127.0.0.1";

/// The plan of tests/fixtures/kubeadm/generate-csr/kubeadm.yaml (kubeadm 1.24:
/// system:masters Organizations, no super-admin.conf; its default
/// encryptionAlgorithm RSA-2048 as leaf_key, so node CSRs must be RSA-2048),
/// CSR mode, worker w1, users alice (dev, ops) and bob (system:masters, allowed).
fn plan_text(token: &str) -> String {
    let mut spec = PlanSpec::new(token, ["ecdsa-p256"; 4]);
    spec.name = "csr-test";
    spec.witnesses = &["Wendy Witness"];
    let base = spec.cluster().clone();
    *spec.cluster() = ClusterSpec {
        version: "v1.24",
        endpoint: Some("127.0.0.1:6443"),
        leaf_key: "rsa-2048",
        service_account_key: Some("ecdsa-p256"),
        apiserver_extra_sans: &[],
        control_plane: &[("cp1", "10.0.0.10")],
        workers: &["w1"],
        csr_dir: Some("csrs"),
        users: &[
            User {
                name: "alice",
                groups: &["dev", "ops"],
                allow_masters: false,
            },
            User {
                name: "bob",
                groups: &["system:masters"],
                allow_masters: true,
            },
        ],
        ..base
    };
    spec.toml()
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

#[track_caller]
fn tool(f: &Fixture, program: &str, args: &[&str]) -> Output {
    let out = f.tool(program, args);
    out.assert_ok(&format!("{program} {}", args.join(" ")));
    out
}

/// A fixture with the plan, the real cp1 tree and a worker CSR for w1.
fn setup() -> (Fixture, PathBuf) {
    let f = Fixture::new("csr-test");
    let plan = f.path().join("plan.toml");
    fs::write(&plan, plan_text(&f.token().label)).unwrap();
    copy_tree(
        &Path::new(GENERATE_CSR).join("etc"),
        &f.path().join("csrs/cp1/etc"),
    );
    worker_csr(&f, "/O=system:nodes/CN=system:node:w1");
    (f, plan)
}

/// The worker's kubelet CSR, its key kept outside the CSR tree (on the node).
fn worker_csr(f: &Fixture, subj: &str) {
    fs::create_dir_all(f.path().join(W)).unwrap();
    let csr = format!("{W}/kubelet.conf.csr");
    tool(
        f,
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "w1-kubelet.key",
            "-subj",
            subj,
            "-out",
            &csr,
        ],
    );
}

fn read(f: &Fixture, rel: &str) -> Vec<u8> {
    fs::read(f.path().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn text(f: &Fixture, rel: &str) -> String {
    String::from_utf8(read(f, rel)).unwrap()
}

/// The client key PEM of a partial kubeconfig, written to `dst` for openssl.
fn conf_key(f: &Fixture, conf: &str, dst: &str) {
    let yaml = text(f, conf);
    let b64 = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-key-data: "))
        .unwrap_or_else(|| panic!("{conf} has no client-key-data"));
    fs::write(f.path().join(dst), STANDARD.decode(b64.trim()).unwrap()).unwrap();
}

/// The OpenSSL public key PEM of a certificate, CSR or key.
fn pubkey(f: &Fixture, kind: &str, file: &str) -> String {
    match kind {
        "x509" => tool(f, "openssl", &["x509", "-in", file, "-noout", "-pubkey"]).stdout,
        "req" => tool(f, "openssl", &["req", "-in", file, "-noout", "-pubkey"]).stdout,
        _ => tool(f, "openssl", &["pkey", "-in", file, "-pubout"]).stdout,
    }
}

fn subject(f: &Fixture, kind: &str, file: &str) -> String {
    tool(f, "openssl", &[kind, "-in", file, "-noout", "-subject"])
        .stdout
        .trim()
        .to_string()
}

/// `kubectl --kubeconfig FILE config view --raw -o jsonpath=EXPR`.
fn kubectl(f: &Fixture, conf: &str, expr: &str) -> String {
    let jp = format!("jsonpath={expr}");
    tool(
        f,
        "kubectl",
        &["--kubeconfig", conf, "config", "view", "--raw", "-o", &jp],
    )
    .stdout
}

/// The error lines of a failed run, without the `error: ` prefix.
fn error_lines(out: &Output) -> Vec<String> {
    out.stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .map(str::to_string)
        .collect()
}

fn files_under(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = snapshot_tree(root)
        .into_iter()
        .filter(|(_, n)| matches!(n, Node::File { .. }))
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn real_generate_csr_tree_is_signed_into_a_verifiable_tree() {
    let (f, plan) = setup();
    let input_before = snapshot_tree(&f.path().join("csrs"));

    // `check` shows every CSR, its profile, and that nothing is refused.
    let check = f.ceremony(&["check".as_ref(), plan.as_os_str()]);
    check.assert_ok("ceremony check");
    let row = |file: &str, profile: &str, status: &str| {
        format!("    {file:<36} -> {profile:<26} {status}")
    };
    for want in [
        row("pki/apiserver.csr", "apiserver", "ok, rsa-2048, key file copied"),
        row("pki/etcd/peer.csr", "etcd/peer", "ok, rsa-2048, key file copied"),
        row("admin.conf.csr", "admin.conf", "ok, rsa-2048, keeps the node's client-key-data"),
        row("kubelet.conf.csr", "kubelet.conf", "ok, rsa-2048, no client-key-data (the node adds its key)"),
        "    sa.key/sa.pub: made at the ceremony, identical on every control-plane node".to_string(),
        "  => 12 CSRs of 2 nodes would be signed.".to_string(),
        "warning: user bob is in system:masters, which bypasses RBAC entirely and cannot be revoked but by \
         rotating the kubernetes CA (allow_masters = true in the plan)"
            .to_string(),
    ] {
        assert!(check.stdout.lines().any(|l| l == want), "check lacks {want:?}:\n{}", check.stdout);
    }

    let out_dir = f.work("out");
    let run = f.run_plan(&plan, &out_dir);
    run.assert_ok("ceremony run");
    assert!(
        run.stderr
            .contains("warning: user bob is in system:masters, which bypasses RBAC entirely"),
        "{run}"
    );

    // The input is only read.
    let input_after = snapshot_tree(&f.path().join("csrs"));
    assert!(
        input_before == input_after,
        "the CSR directory changed:\n{}",
        tree_diff(&input_before, &input_after)
    );

    // cp1: the node's tree plus certificates, completed kubeconfigs, CA files, sa.
    let node = out_dir.join("nodes/cp1/etc/kubernetes");
    let mut want: Vec<String> = Vec::new();
    for c in [
        "apiserver",
        "apiserver-kubelet-client",
        "front-proxy-client",
        "etcd/server",
        "etcd/peer",
        "etcd/healthcheck-client",
        "apiserver-etcd-client",
    ] {
        for ext in ["csr", "key", "crt"] {
            want.push(format!("pki/{c}.{ext}"));
        }
    }
    for c in ["admin", "controller-manager", "scheduler", "kubelet"] {
        want.push(format!("{c}.conf"));
        want.push(format!("{c}.conf.csr"));
    }
    want.extend(
        [
            "pki/ca.crt",
            "pki/etcd/ca.crt",
            "pki/front-proxy-ca.crt",
            "pki/sa.key",
            "pki/sa.pub",
            "kubeadm-config.yaml",
        ]
        .map(String::from),
    );
    want.sort();
    assert_eq!(files_under(&node), want);

    let n = |rel: &str| format!("work/out/nodes/cp1/etc/kubernetes/{rel}");
    for c in [
        "apiserver",
        "apiserver-kubelet-client",
        "front-proxy-client",
        "etcd/server",
        "etcd/peer",
        "etcd/healthcheck-client",
        "apiserver-etcd-client",
    ] {
        let crt = n(&format!("pki/{c}.crt"));
        let ca = if c.starts_with("etcd/") || c == "apiserver-etcd-client" {
            n("pki/etcd/ca.crt")
        } else if c == "front-proxy-client" {
            n("pki/front-proxy-ca.crt")
        } else {
            n("pki/ca.crt")
        };
        let v = tool(
            &f,
            "openssl",
            &["verify", "-partial_chain", "-CAfile", &ca, &crt],
        );
        assert_eq!(v.stdout.trim(), format!("{crt}: OK"));
        // The whole chain up to the root, too.
        let chain = if ca.ends_with("etcd/ca.crt") {
            "work/out/chains/etcd-ca-chain.crt"
        } else if c == "front-proxy-client" {
            "work/out/chains/front-proxy-ca-chain.crt"
        } else {
            "work/out/chains/kubernetes-ca-chain.crt"
        };
        tool(
            &f,
            "openssl",
            &[
                "verify",
                "-CAfile",
                "work/out/root-ca.crt",
                "-untrusted",
                chain,
                &crt,
            ],
        );
        // Same subject and key as the node asked for, and its own key file.
        let csr = format!("{K}/pki/{c}.csr");
        assert_eq!(
            subject(&f, "x509", &crt).trim_start_matches("subject="),
            subject(&f, "req", &csr).trim_start_matches("subject=")
        );
        assert_eq!(pubkey(&f, "x509", &crt), pubkey(&f, "req", &csr));
        assert_eq!(
            pubkey(&f, "x509", &crt),
            pubkey(&f, "pkey", &n(&format!("pki/{c}.key")))
        );
        assert_eq!(read(&f, &n(&format!("pki/{c}.csr"))), read(&f, &csr));
        assert_eq!(
            read(&f, &n(&format!("pki/{c}.key"))),
            read(&f, &format!("{K}/pki/{c}.key"))
        );
        // Extensions from the profile.
        let ext = tool(
            &f,
            "openssl",
            &[
                "x509",
                "-in",
                &crt,
                "-noout",
                "-ext",
                "basicConstraints,keyUsage,extendedKeyUsage",
            ],
        )
        .stdout;
        assert!(ext.contains("CA:FALSE"), "{crt}: {ext}");
        assert!(
            ext.contains("Digital Signature, Key Encipherment"),
            "{crt}: {ext}"
        );
    }
    let san = tool(
        &f,
        "openssl",
        &[
            "x509",
            "-in",
            &n("pki/apiserver.crt"),
            "-noout",
            "-ext",
            "subjectAltName",
        ],
    )
    .stdout;
    assert!(
        san.contains(&APISERVER_SANS.replace("IP:", "IP Address:")),
        "{san}"
    );
    let eku = tool(
        &f,
        "openssl",
        &[
            "x509",
            "-in",
            &n("pki/apiserver.crt"),
            "-noout",
            "-ext",
            "extendedKeyUsage",
        ],
    )
    .stdout;
    assert!(
        eku.contains("TLS Web Server Authentication") && !eku.contains("Client"),
        "{eku}"
    );
    let etcd = tool(
        &f,
        "openssl",
        &[
            "x509",
            "-in",
            &n("pki/etcd/peer.crt"),
            "-noout",
            "-ext",
            "subjectAltName",
        ],
    )
    .stdout;
    assert!(etcd.contains("DNS:cp1, DNS:localhost, IP Address:10.0.0.10, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"), "{etcd}");
    // kubeadm 1.24 Organizations, as the node's CSRs carry them.
    assert_eq!(
        subject(&f, "x509", &n("pki/apiserver-etcd-client.crt")),
        "subject=O = system:masters, CN = kube-apiserver-etcd-client"
    );

    // Kubeconfigs: kubectl loads them; certificate, CA, server, names, and the node's own key.
    let ca_pem = read(&f, &n("pki/ca.crt"));
    for (conf, server, cn) in [
        (
            "admin.conf",
            "https://127.0.0.1:6443",
            "subject=O = system:masters, CN = kubernetes-admin",
        ),
        (
            "controller-manager.conf",
            "https://10.0.0.10:6443",
            "subject=CN = system:kube-controller-manager",
        ),
        (
            "scheduler.conf",
            "https://10.0.0.10:6443",
            "subject=CN = system:kube-scheduler",
        ),
        (
            "kubelet.conf",
            "https://127.0.0.1:6443",
            "subject=O = system:nodes, CN = system:node:cp1",
        ),
    ] {
        let path = n(conf);
        assert_eq!(kubectl(&f, &path, "{.clusters[0].cluster.server}"), server);
        let user = kubectl(&f, &path, "{.users[0].name}");
        assert_eq!(
            kubectl(&f, &path, "{.current-context}"),
            format!("{user}@kubernetes")
        );
        let ca = STANDARD
            .decode(kubectl(
                &f,
                &path,
                "{.clusters[0].cluster.certificate-authority-data}",
            ))
            .unwrap();
        assert_eq!(
            ca, ca_pem,
            "{conf}: certificate-authority-data is pki/ca.crt"
        );
        let cert = STANDARD
            .decode(kubectl(
                &f,
                &path,
                "{.users[0].user.client-certificate-data}",
            ))
            .unwrap();
        let key = kubectl(&f, &path, "{.users[0].user.client-key-data}");
        let partial = text(&f, &format!("{K}/{conf}"));
        assert!(
            partial.contains(&format!("client-key-data: {key}")),
            "{conf}: the node's client-key-data is kept"
        );
        let crt_file = format!("work/{conf}.crt");
        fs::write(f.path().join(&crt_file), &cert).unwrap();
        assert_eq!(subject(&f, "x509", &crt_file), cn);
        assert_eq!(user, cn.rsplit("CN = ").next().unwrap());
        tool(
            &f,
            "openssl",
            &[
                "verify",
                "-partial_chain",
                "-CAfile",
                &n("pki/ca.crt"),
                &crt_file,
            ],
        );
        conf_key(&f, &path, "work/conf.key");
        assert_eq!(
            pubkey(&f, "x509", &crt_file),
            pubkey(&f, "pkey", "work/conf.key"),
            "{conf}: key matches"
        );
        fs::remove_file(f.path().join("work/conf.key")).unwrap();
        let mode = fs::metadata(f.path().join(&path))
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
        assert_eq!(mode.unwrap(), 0o600, "{conf}");
    }
    // sa.key and sa.pub made at the ceremony.
    assert_eq!(
        pubkey(&f, "pkey", &n("pki/sa.key")),
        text(&f, &n("pki/sa.pub"))
    );

    // Worker: kubelet.conf without client-key-data, and ca.crt.
    let w = out_dir.join("nodes/w1/etc/kubernetes");
    assert_eq!(
        files_under(&w),
        [
            "kubeadm-config.yaml",
            "kubelet.conf",
            "kubelet.conf.csr",
            "pki/ca.crt"
        ]
    );
    let wconf = "work/out/nodes/w1/etc/kubernetes/kubelet.conf";
    assert_eq!(kubectl(&f, wconf, "{.users[0].user.client-key-data}"), "");
    assert_eq!(kubectl(&f, wconf, "{.users[0].name}"), "system:node:w1");
    let cert = STANDARD
        .decode(kubectl(
            &f,
            wconf,
            "{.users[0].user.client-certificate-data}",
        ))
        .unwrap();
    fs::write(f.path().join("work/w1.crt"), &cert).unwrap();
    assert_eq!(
        subject(&f, "x509", "work/w1.crt"),
        "subject=O = system:nodes, CN = system:node:w1"
    );
    assert_eq!(
        pubkey(&f, "x509", "work/w1.crt"),
        pubkey(&f, "pkey", "w1-kubelet.key")
    );
    tool(
        &f,
        "openssl",
        &[
            "verify",
            "-partial_chain",
            "-CAfile",
            "work/out/nodes/w1/etc/kubernetes/pki/ca.crt",
            "work/w1.crt",
        ],
    );

    // alice: exactly O=dev and O=ops, a key made at the ceremony, loadable by kubectl.
    let alice = "work/out/users/alice.conf";
    assert_eq!(kubectl(&f, alice, "{.users[0].name}"), "alice");
    assert_eq!(
        kubectl(&f, alice, "{.clusters[0].cluster.server}"),
        "https://127.0.0.1:6443"
    );
    let cert = STANDARD
        .decode(kubectl(
            &f,
            alice,
            "{.users[0].user.client-certificate-data}",
        ))
        .unwrap();
    let pem = Pem::iter_from_buffer(&cert).next().unwrap().unwrap();
    let (_, x) = x509_parser::certificate::X509Certificate::from_der(&pem.contents).unwrap();
    let mut orgs: Vec<&str> = x
        .subject()
        .iter_organization()
        .map(|o| o.as_str().unwrap())
        .collect();
    orgs.sort();
    assert_eq!(orgs, ["dev", "ops"]);
    let cns: Vec<&str> = x
        .subject()
        .iter_common_name()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert_eq!(cns, ["alice"]);
    fs::write(f.path().join("work/alice.crt"), &cert).unwrap();
    conf_key(&f, alice, "work/alice.key");
    assert_eq!(
        pubkey(&f, "x509", "work/alice.crt"),
        pubkey(&f, "pkey", "work/alice.key")
    );
    let eku = tool(
        &f,
        "openssl",
        &[
            "x509",
            "-in",
            "work/alice.crt",
            "-noout",
            "-ext",
            "extendedKeyUsage",
        ],
    )
    .stdout;
    assert!(eku.contains("TLS Web Client Authentication"), "{eku}");
    let bob = "work/out/users/bob.conf";
    assert_eq!(kubectl(&f, bob, "{.users[0].name}"), "bob");

    // The manifest covers every file.
    // `ceremony verify` checks the output against the plan's profiles.
    let verify = f.ceremony(&[
        "verify".as_ref(),
        "work/out".as_ref(),
        "--plan".as_ref(),
        plan.as_os_str(),
    ]);
    verify.assert_ok("ceremony verify");
    assert!(verify.stdout.starts_with("OK: "), "{verify}");

    let sums = f.tool(
        "sh",
        &["-c", "cd work/out && sha256sum -c --quiet SHA256SUMS"],
    );
    sums.assert_ok("sha256sum -c");
    let manifest = text(&f, "work/out/SHA256SUMS");
    for p in [
        "nodes/cp1/etc/kubernetes/pki/apiserver.crt",
        "nodes/w1/etc/kubernetes/kubelet.conf",
        "users/alice.conf",
    ] {
        assert!(
            manifest.contains(&format!("  {p}\n")),
            "SHA256SUMS lacks {p}"
        );
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The CSRs are inputs the witnesses approve: a run interrupted before
/// the CAs, then a worker's CSR replaced, is refused before the token
/// (exit 2, nothing touched); with the CSR put back, the run resumes, and
/// OUT lists every file read from the nodes' trees in inputs.sha256.
#[test]
fn a_csr_replaced_after_an_interrupted_run_is_refused_until_put_back() {
    if !common::has_failpoints("csr::a_csr_replaced_after_an_interrupted_run") {
        return;
    }
    let (f, plan) = setup();
    let out_dir = f.work("out");
    let stopped = f.run_plan_env(&plan, &out_dir, &[("CEREMONY_FAILPOINT", "before-cas")]);
    assert!(!stopped.ok() && !out_dir.exists(), "{stopped}");
    let csr = f.path().join(W).join("kubelet.conf.csr");
    let approved = fs::read(&csr).unwrap();
    fs::remove_file(&csr).unwrap();
    worker_csr(&f, "/O=system:nodes/CN=system:node:w1");
    let (token, files) = (f.token_snapshot(), f.files_snapshot());
    let run = f.run_plan(&plan, &out_dir);
    assert_eq!(run.code, Some(2), "{run}");
    let journal = out_dir.with_file_name(".out.journal");
    assert!(
        run.first_error().unwrap().starts_with(&format!(
            "error: {} holds the unsealed audit journal of another plan or of other inputs (inputs SHA-256 ",
            journal.display()
        )),
        "{run}"
    );
    assert_eq!(f.token_snapshot(), token, "the token changed");
    let after = f.files_snapshot();
    assert!(
        after == files,
        "files changed:\n{}",
        tree_diff(&files, &after)
    );

    fs::write(&csr, &approved).unwrap();
    let run = f.run_plan(&plan, &out_dir);
    run.assert_ok("the resumed run");
    let inputs = text(&f, "work/out/inputs.sha256");
    let plan_sha = sha256_hex(&fs::read(&plan).unwrap());
    assert!(
        inputs.starts_with(&format!("{plan_sha}  plan plan.toml\n")),
        "{inputs}"
    );
    for (kind, path) in [
        ("csr", "csrs/cp1/etc/kubernetes/pki/apiserver.csr"),
        ("key", "csrs/cp1/etc/kubernetes/pki/apiserver.key"),
        ("kubeconfig", "csrs/cp1/etc/kubernetes/admin.conf"),
        ("csr", "csrs/w1/etc/kubernetes/kubelet.conf.csr"),
    ] {
        let line = format!("{}  {kind} {path}\n", sha256_hex(&read(&f, path)));
        assert!(inputs.contains(&line), "{line:?} not in\n{inputs}");
    }
    let digest = sha256_hex(inputs.as_bytes());
    assert!(
        run.stderr
            .contains(&format!("Inputs         SHA-256 {digest}")),
        "{run}"
    );
}

/// Runs the plan after `mutate` and expects exactly `refusals` (one per
/// line, in order), exit 2, nothing written and the token untouched.
#[track_caller]
fn refused(mutate: impl FnOnce(&Fixture), refusals: &[&str]) -> Fixture {
    let (f, plan) = setup();
    mutate(&f);
    let out_dir = f.work("out");
    let before = snapshot_tree(&f.path().join("csrs"));
    let run = f.run_plan(&plan, &out_dir);
    assert_eq!(run.code, Some(2), "{run}");
    let mut want = vec![format!(
        "the CSRs were refused ({} {}); nothing was signed",
        refusals.len(),
        if refusals.len() == 1 {
            "problem"
        } else {
            "problems"
        }
    )];
    want.extend(refusals.iter().map(|s| s.to_string()));
    assert_eq!(error_lines(&run), want, "{run}");
    assert!(
        run.hint().is_some_and(|h| h.contains("ceremony check")),
        "{run}"
    );
    assert!(!out_dir.exists(), "nothing may be written");
    assert!(
        !f.path().join("work/.out.staging").exists(),
        "no staging directory"
    );
    let after = snapshot_tree(&f.path().join("csrs"));
    assert!(
        before == after,
        "the input changed:\n{}",
        tree_diff(&before, &after)
    );
    // `check` shows the same refusals under their node, and then stops
    // as `run` does: exit 2, the same error lines.
    let check = f.ceremony(&["check".as_ref(), plan.as_os_str()]);
    assert_eq!(check.code, Some(2), "{check}");
    assert_eq!(error_lines(&check), want, "{check}");
    for r in refusals {
        assert!(
            check
                .stdout
                .lines()
                .any(|l| l.trim_start() == format!("refused: {r}")),
            "check lacks {r:?}:\n{}",
            check.stdout
        );
    }
    let summary = format!(
        "  => {} refused: `ceremony run` would stop before signing anything (exit 2).",
        refusals.len()
    );
    assert!(
        check.stdout.lines().any(|l| l == summary),
        "{}",
        check.stdout
    );
    f
}

#[test]
fn refuses_a_bad_self_signature() {
    refused(
        |f| {
            let csr = format!("{K}/pki/front-proxy-client.csr");
            tool(
                f,
                "openssl",
                &["req", "-in", &csr, "-outform", "DER", "-out", "fp.der"],
            );
            let mut der = read(f, "fp.der");
            let last = der.len() - 1;
            der[last] ^= 0x01;
            fs::write(f.path().join(&csr), der).unwrap();
        },
        &[
            "cp1/etc/kubernetes/pki/front-proxy-client.csr: signature: expected a valid self-signature by the CSR's key, \
           got a signature that does not verify with the CSR's public key",
        ],
    );
}

#[test]
fn refuses_what_is_not_a_csr_and_leaves_the_token_untouched() {
    let f = refused(
        |f| {
            let key = read(f, &format!("{K}/pki/apiserver.key"));
            fs::write(f.path().join(format!("{K}/pki/apiserver.csr")), key).unwrap();
        },
        &[
            "cp1/etc/kubernetes/pki/apiserver.csr: file: expected one PKCS#10 certificate request (PEM or DER), \
           got PEM RSA PRIVATE KEY and no CERTIFICATE REQUEST",
        ],
    );
    assert!(
        f.objects().is_empty(),
        "the refusal comes before the token is used"
    );
}

#[test]
fn refuses_cn_or_o_that_do_not_match_the_profile() {
    refused(
        |f| {
            conf_key(f, &format!("{K}/scheduler.conf"), "sched.key");
            tool(
                f,
                "openssl",
                &[
                    "req",
                    "-new",
                    "-key",
                    "sched.key",
                    "-subj",
                    "/CN=system:kube-schedulerx",
                    "-out",
                    &format!("{K}/scheduler.conf.csr"),
                ],
            );
            conf_key(f, &format!("{K}/controller-manager.conf"), "cm.key");
            tool(
                f,
                "openssl",
                &[
                    "req",
                    "-new",
                    "-key",
                    "cm.key",
                    "-subj",
                    "/O=system:masters/CN=system:kube-controller-manager",
                    "-out",
                    &format!("{K}/controller-manager.conf.csr"),
                ],
            );
        },
        &[
            "cp1/etc/kubernetes/controller-manager.conf.csr: subject O: expected none, got O=system:masters",
            "cp1/etc/kubernetes/scheduler.conf.csr: subject CN: expected \"system:kube-scheduler\", got \"system:kube-schedulerx\"",
        ],
    );
}

#[test]
fn refuses_a_system_masters_kubelet_csr_and_signs_no_other_node() {
    refused(
        |f| {
            fs::remove_file(f.path().join(format!("{W}/kubelet.conf.csr"))).unwrap();
            fs::remove_file(f.path().join("w1-kubelet.key")).unwrap();
            worker_csr(f, "/O=system:masters/CN=system:node:w1");
        },
        &[
            "w1/etc/kubernetes/kubelet.conf.csr: subject O: expected O=system:nodes, got O=system:masters",
        ],
    );
}

#[test]
fn refuses_an_extra_san() {
    refused(
        |f| {
            let sans = format!(
                "subjectAltName={},DNS:*.evil.example",
                APISERVER_SANS.replace(", ", ",")
            );
            tool(
                f,
                "openssl",
                &[
                    "req",
                    "-new",
                    "-key",
                    &format!("{K}/pki/apiserver.key"),
                    "-subj",
                    "/CN=kube-apiserver",
                    "-addext",
                    &sans,
                    "-out",
                    &format!("{K}/pki/apiserver.csr"),
                ],
            );
        },
        &[&format!(
            "cp1/etc/kubernetes/pki/apiserver.csr: subjectAltName: expected a subset of {APISERVER_SANS}, got DNS:*.evil.example"
        )],
    );
}

#[test]
fn refuses_a_csr_that_asks_to_be_a_ca() {
    refused(
        |f| {
            tool(
                f,
                "openssl",
                &[
                    "req",
                    "-new",
                    "-key",
                    &format!("{K}/pki/front-proxy-client.key"),
                    "-subj",
                    "/CN=front-proxy-client",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,digitalSignature",
                    "-out",
                    &format!("{K}/pki/front-proxy-client.csr"),
                ],
            );
        },
        &[
            "cp1/etc/kubernetes/pki/front-proxy-client.csr: basicConstraints: expected CA:FALSE (a leaf certificate), got CA:TRUE",
            "cp1/etc/kubernetes/pki/front-proxy-client.csr: keyUsage: expected no keyCertSign or cRLSign (a leaf certificate), \
             got keyCertSign",
        ],
    );
}

#[test]
fn refuses_rsa_1024() {
    refused(
        |f| {
            tool(
                f,
                "openssl",
                &[
                    "req",
                    "-new",
                    "-newkey",
                    "rsa:1024",
                    "-nodes",
                    "-keyout",
                    &format!("{K}/pki/etcd/healthcheck-client.key"),
                    "-subj",
                    "/O=system:masters/CN=kube-etcd-healthcheck-client",
                    "-out",
                    &format!("{K}/pki/etcd/healthcheck-client.csr"),
                ],
            );
        },
        &[
            "cp1/etc/kubernetes/pki/etcd/healthcheck-client.csr: key: expected one of rsa-2048, got rsa-1024 (unsupported)",
        ],
    );
}

#[test]
fn refuses_a_csr_for_a_profile_the_plan_does_not_have() {
    // kubeadm >= 1.29 makes super-admin.conf; this plan is for 1.24.
    refused(
        |f| {
            tool(
                f,
                "openssl",
                &[
                    "req",
                    "-new",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    "super-admin.key",
                    "-subj",
                    "/O=system:masters/CN=kubernetes-super-admin",
                    "-out",
                    &format!("{K}/super-admin.conf.csr"),
                ],
            );
        },
        &[
            "cp1/etc/kubernetes/super-admin.conf.csr: profile: expected one of the CSRs the plan signs for cp1 \
           (admin.conf.csr, controller-manager.conf.csr, kubelet.conf.csr, pki/apiserver-etcd-client.csr, \
           pki/apiserver-kubelet-client.csr, pki/apiserver.csr, pki/etcd/healthcheck-client.csr, pki/etcd/peer.csr, \
           pki/etcd/server.csr, pki/front-proxy-client.csr, scheduler.conf.csr), got a CSR no profile of this node matches",
        ],
    );
}

#[test]
fn refuses_a_missing_csr() {
    refused(
        |f| fs::remove_file(f.path().join(format!("{K}/pki/etcd/peer.csr"))).unwrap(),
        &[
            "cp1/etc/kubernetes/pki/etcd/peer.csr: file: expected the CSR of etcd/peer, got no such file",
        ],
    );
}

#[test]
fn refuses_duplicates() {
    refused(
        |f| {
            // Two requests in one file.
            let one = read(f, &format!("{K}/pki/apiserver-etcd-client.csr"));
            fs::write(
                f.path().join(format!("{K}/pki/apiserver-etcd-client.csr")),
                [one.clone(), one].concat(),
            )
            .unwrap();
            // The apiserver's key asked for again, for front-proxy-client.
            let key = format!("{K}/pki/apiserver.key");
            fs::copy(
                f.path().join(&key),
                f.path().join(format!("{K}/pki/front-proxy-client.key")),
            )
            .unwrap();
            tool(
                f,
                "openssl",
                &[
                    "req",
                    "-new",
                    "-key",
                    &key,
                    "-subj",
                    "/CN=front-proxy-client",
                    "-out",
                    &format!("{K}/pki/front-proxy-client.csr"),
                ],
            );
        },
        &[
            "cp1/etc/kubernetes/pki/front-proxy-client.csr: public key: expected a key of its own, \
             got the key of cp1/etc/kubernetes/pki/apiserver.csr",
            "cp1/etc/kubernetes/pki/apiserver-etcd-client.csr: file: expected exactly one certificate request, \
             got 2 certificate requests",
        ],
    );
}

#[test]
fn user_csr_is_checked_and_its_kubeconfig_has_no_key() {
    let (f, plan) = setup();
    let text = fs::read_to_string(&plan).unwrap().replace(
        "[audit]",
        "[[users]]\nname = \"carol\"\ngroups = [\"dev\"]\ncsr = \"carol.csr\"\nvalidity = \"30d\"\n\n[audit]",
    );
    fs::write(&plan, text).unwrap();
    tool(
        &f,
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-nodes",
            "-keyout",
            "carol.key",
            "-subj",
            "/O=dev/CN=carol",
            "-out",
            "carol.csr",
        ],
    );
    let out_dir = f.work("out");
    f.run_plan(&plan, &out_dir).assert_ok("ceremony run");
    // The user's CSR is one of the inputs the witnesses approved.
    let inputs = fs::read_to_string(out_dir.join("inputs.sha256")).unwrap();
    assert!(
        inputs.contains(&format!(
            "{}  user-csr carol.csr\n",
            sha256_hex(&read(&f, "carol.csr"))
        )),
        "{inputs}"
    );
    let conf = "work/out/users/carol.conf";
    assert_eq!(kubectl(&f, conf, "{.users[0].user.client-key-data}"), "");
    let cert = STANDARD
        .decode(kubectl(
            &f,
            conf,
            "{.users[0].user.client-certificate-data}",
        ))
        .unwrap();
    fs::write(f.path().join("work/carol.crt"), &cert).unwrap();
    assert_eq!(
        subject(&f, "x509", "work/carol.crt"),
        "subject=O = dev, CN = carol"
    );
    assert_eq!(
        pubkey(&f, "x509", "work/carol.crt"),
        pubkey(&f, "pkey", "carol.key")
    );
    let dates = f.tool(
        "openssl",
        &[
            "x509",
            "-in",
            "work/carol.crt",
            "-noout",
            "-checkend",
            &(31 * 86400).to_string(),
        ],
    );
    assert!(
        dates.stdout.contains("will expire"),
        "30d validity: {}",
        dates.stdout
    );

    // A CSR asking for another group is refused, with nothing written.
    let (f, plan) = setup();
    let text = fs::read_to_string(&plan).unwrap().replace(
        "[audit]",
        "[[users]]\nname = \"carol\"\ngroups = [\"dev\"]\ncsr = \"carol.csr\"\n\n[audit]",
    );
    fs::write(&plan, text).unwrap();
    tool(
        &f,
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "carol.key",
            "-subj",
            "/O=dev/O=system:masters/CN=carol",
            "-out",
            "carol.csr",
        ],
    );
    let run = f.run_plan(&plan, &f.work("out"));
    assert_eq!(run.code, Some(2), "{run}");
    assert_eq!(
        error_lines(&run),
        [
            "the CSRs were refused (1 problem); nothing was signed",
            "carol.csr: subject O: expected O=dev, got O=dev, O=system:masters",
        ]
    );
    assert!(!f.work("out").exists());
}

/// The signed cp1 tree works with the real peers: etcd serves with
/// etcd/server and etcd/peer and lets the etcd clients in; kubectl completes
/// a mutually authenticated handshake with a server holding apiserver.crt,
/// with every kubeconfig of cp1 and with alice's.
#[test]
fn signed_tree_serves_etcd_and_kubectl() {
    use common::{Server, free_port, run, start_with_retries};
    use std::process::Command;

    let (f, plan) = setup();
    f.run_plan(&plan, &f.work("out")).assert_ok("ceremony run");
    let cp = f.work("out").join("nodes/cp1/etc/kubernetes");
    let pki = cp.join("pki");
    let scratch = f.path();

    // etcd, one member, with the node's own keys and the signed certificates.
    let mut attempt = 0;
    let (_etcd, port) = start_with_retries(5, || {
        attempt += 1;
        let (client_port, peer_port) = (free_port(), free_port());
        let client = format!("https://127.0.0.1:{client_port}");
        let peer = format!("https://127.0.0.1:{peer_port}");
        let mut cmd = Command::new("etcd");
        cmd.arg("--name")
            .arg("cp1")
            .arg("--data-dir")
            .arg(scratch.join(format!("etcd-{attempt}")))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .arg("--initial-cluster")
            .arg(format!("cp1={peer}"))
            .arg("--cert-file")
            .arg(pki.join("etcd/server.crt"))
            .arg("--key-file")
            .arg(pki.join("etcd/server.key"))
            .arg("--peer-cert-file")
            .arg(pki.join("etcd/peer.crt"))
            .arg("--peer-key-file")
            .arg(pki.join("etcd/peer.key"))
            .arg("--trusted-ca-file")
            .arg(pki.join("etcd/ca.crt"))
            .arg("--peer-trusted-ca-file")
            .arg(pki.join("etcd/ca.crt"))
            .args(["--client-cert-auth", "--peer-client-cert-auth"]);
        let mut srv = Server::spawn(
            "etcd cp1",
            &mut cmd,
            &scratch.join(format!("etcd-{attempt}.log")),
        );
        srv.wait_ready("ready to serve client requests")?;
        Ok((srv, client_port))
    });
    let etcdctl = |client: &str, args: &[&str]| {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=https://127.0.0.1:{port}"))
            .arg(format!("--cacert={}", pki.join("etcd/ca.crt").display()))
            .arg(format!(
                "--cert={}",
                pki.join(format!("{client}.crt")).display()
            ))
            .arg(format!(
                "--key={}",
                pki.join(format!("{client}.key")).display()
            ))
            .args(["--dial-timeout=5s", "--command-timeout=5s"])
            .args(args);
        run(&mut cmd, common::SHORT)
    };
    let health = etcdctl("etcd/healthcheck-client", &["endpoint", "health"]);
    assert!(health.ok(), "{health}");
    etcdctl("apiserver-etcd-client", &["put", "/csr-test", "signed"]).expect_ok();
    let got = etcdctl(
        "apiserver-etcd-client",
        &["get", "/csr-test", "--print-value-only"],
    )
    .expect_ok();
    assert_eq!(got.stdout.trim(), "signed");

    // kubectl against a TLS server with apiserver.crt that demands a client
    // certificate of pki/ca.crt (the intermediate as anchor, as Go does).
    let mut attempt = 0;
    let (_tls, tls_port) = start_with_retries(5, || {
        attempt += 1;
        let port = free_port();
        let mut cmd = Command::new("openssl");
        cmd.arg("s_server")
            .arg("-accept")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(pki.join("apiserver.crt"))
            .arg("-key")
            .arg(pki.join("apiserver.key"))
            .arg("-CAfile")
            .arg(pki.join("ca.crt"))
            .args([
                "-Verify",
                "1",
                "-verify_return_error",
                "-partial_chain",
                "-www",
            ]);
        let mut srv = Server::spawn(
            "s_server",
            &mut cmd,
            &scratch.join(format!("s_server-{attempt}.log")),
        );
        srv.wait_ready("ACCEPT")?;
        Ok((srv, port))
    });
    let server = format!("https://127.0.0.1:{tls_port}");
    let mut confs: Vec<PathBuf> = [
        "admin.conf",
        "controller-manager.conf",
        "scheduler.conf",
        "kubelet.conf",
    ]
    .iter()
    .map(|c| cp.join(c))
    .collect();
    confs.push(f.work("out").join("users/alice.conf"));
    for conf in confs {
        let mut cmd = Command::new("kubectl");
        cmd.env("HOME", scratch)
            .arg("--kubeconfig")
            .arg(&conf)
            .arg("--server")
            .arg(&server)
            .args(["--request-timeout=10s", "get", "--raw", "/"]);
        let r = run(&mut cmd, common::SHORT);
        // s_server -www answers with its status page once the handshake,
        // client certificate included, succeeded.
        assert!(
            r.ok() && r.stdout.contains("s_server"),
            "{}: {r}",
            conf.display()
        );
    }
}

/// `ceremony verify OUT` (and with `--plan`) passes on what `run` wrote.
#[track_caller]
fn verify_passes(f: &Fixture, plan: &Path) {
    let bare = f.ceremony(&["verify", "work/out"]);
    bare.assert_ok("ceremony verify OUT");
    assert!(bare.stdout.contains("OK: "), "{bare}");
    let with_plan = f.ceremony(&[
        "verify".as_ref(),
        "work/out".as_ref(),
        "--plan".as_ref(),
        plan.as_os_str(),
    ]);
    with_plan.assert_ok("ceremony verify OUT --plan");
}

/// A worker brings its CSR as DER, which the policy accepts: the bundle
/// holds it as kubeadm reads it (PEM), and the tool's own `verify` passes.
#[test]
fn a_der_csr_is_stored_as_pem_and_the_bundle_verifies() {
    let (f, plan) = setup();
    let csr = format!("{W}/kubelet.conf.csr");
    let pem_in = read(&f, &csr);
    tool(
        &f,
        "openssl",
        &["req", "-in", &csr, "-outform", "DER", "-out", "w1.der"],
    );
    fs::copy(f.path().join("w1.der"), f.path().join(&csr)).unwrap();
    assert!(!read(&f, &csr).starts_with(b"-----BEGIN"));

    f.run_plan(&plan, &f.work("out")).assert_ok("ceremony run");
    let stored = read(&f, "work/out/nodes/w1/etc/kubernetes/kubelet.conf.csr");
    assert_eq!(stored, pem_in, "the request as OpenSSL writes it in PEM");
    assert!(stored.starts_with(b"-----BEGIN CERTIFICATE REQUEST-----\n"));
    verify_passes(&f, &plan);
}

/// Text before and after a PEM block (as `openssl req -text` writes it, or
/// anything else) is ignored by kubeadm and checked by nobody: the bundle
/// holds each block alone, encoded again, for the CSRs, the key files and
/// the keys of partial kubeconfigs alike.
#[test]
fn junk_around_pem_blocks_is_not_copied_into_the_bundle() {
    let (f, plan) = setup();
    let dirty = |rel: &str| {
        let clean = read(&f, rel);
        let mut bytes = b"Certificate Request:\n    junk \x1b[2J before\n".to_vec();
        bytes.extend_from_slice(&clean);
        bytes.extend_from_slice(b"and after the block\n");
        fs::write(f.path().join(rel), bytes).unwrap();
        clean
    };
    let csr = dirty(&format!("{K}/pki/apiserver.csr"));
    let key = dirty(&format!("{K}/pki/apiserver.key"));
    let worker_csr = dirty(&format!("{W}/kubelet.conf.csr"));
    // The node's key inside its partial admin.conf, with junk around it too.
    let conf = format!("{K}/admin.conf");
    let yaml = text(&f, &conf);
    let b64 = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-key-data: "))
        .unwrap()
        .trim()
        .to_string();
    let conf_key = STANDARD.decode(&b64).unwrap();
    let mut junk_key = b"junk\n".to_vec();
    junk_key.extend_from_slice(&conf_key);
    junk_key.extend_from_slice(b"junk\n");
    fs::write(
        f.path().join(&conf),
        yaml.replace(&b64, &STANDARD.encode(&junk_key)),
    )
    .unwrap();

    f.run_plan(&plan, &f.work("out")).assert_ok("ceremony run");
    let n = |rel: &str| format!("work/out/nodes/cp1/etc/kubernetes/{rel}");
    assert_eq!(read(&f, &n("pki/apiserver.csr")), csr);
    assert_eq!(read(&f, &n("pki/apiserver.key")), key);
    assert_eq!(
        read(&f, "work/out/nodes/w1/etc/kubernetes/kubelet.conf.csr"),
        worker_csr
    );
    let out_key = kubectl(&f, &n("admin.conf"), "{.users[0].user.client-key-data}");
    assert_eq!(STANDARD.decode(out_key).unwrap(), conf_key);
    verify_passes(&f, &plan);
}

/// Only csr_dir itself is resolved through links: a node directory or its
/// etc that is a symbolic link is refused, before the token is opened.
#[test]
fn refuses_a_symlinked_node_or_etc_directory() {
    let f = refused(
        |f| {
            let csrs = f.path().join("csrs");
            fs::rename(csrs.join("cp1/etc"), f.path().join("cp1-etc")).unwrap();
            std::os::unix::fs::symlink("../../cp1-etc", csrs.join("cp1/etc")).unwrap();
            fs::rename(csrs.join("w1"), f.path().join("w1-elsewhere")).unwrap();
            std::os::unix::fs::symlink("../w1-elsewhere", csrs.join("w1")).unwrap();
        },
        &[
            "cp1/etc: directory: expected a directory: no symbolic link under csr_dir is followed, \
             got a symbolic link",
            "w1: directory: expected a directory: no symbolic link under csr_dir is followed, \
             got a symbolic link",
        ],
    );
    assert!(f.objects().is_empty(), "the token is untouched");
}

/// csr_dir itself, which the plan names, may be a link (a mounted medium).
#[test]
fn csr_dir_itself_may_be_a_symbolic_link() {
    let (f, plan) = setup();
    fs::rename(f.path().join("csrs"), f.path().join("medium")).unwrap();
    std::os::unix::fs::symlink("medium", f.path().join("csrs")).unwrap();
    let check = f.ceremony(&["check".as_ref(), plan.as_os_str()]);
    check.assert_ok("ceremony check");
    assert!(
        check
            .stdout
            .contains("  => 12 CSRs of 2 nodes would be signed."),
        "{check}"
    );
}

/// A user's CSR is a file the user hands over: a symbolic link in its place
/// (which could point at any file of the ceremony machine) is refused.
#[test]
fn refuses_a_user_csr_that_is_a_symbolic_link() {
    refused(
        |f| {
            let plan = f.path().join("plan.toml");
            let text = fs::read_to_string(&plan).unwrap().replace(
                "[audit]",
                "[[users]]\nname = \"carol\"\ngroups = [\"dev\"]\ncsr = \"carol.csr\"\n\n[audit]",
            );
            fs::write(&plan, text).unwrap();
            tool(
                f,
                "openssl",
                &[
                    "req",
                    "-new",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    "carol.key",
                    "-subj",
                    "/O=dev/CN=carol",
                    "-out",
                    "real-carol.csr",
                ],
            );
            std::os::unix::fs::symlink("real-carol.csr", f.path().join("carol.csr")).unwrap();
        },
        &["carol.csr: file: expected the CSR of user carol, got a symbolic link"],
    );
}
