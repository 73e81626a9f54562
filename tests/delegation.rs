//! Delegated CAs end to end against a real SoftHSM2 token per test: the
//! first control-plane node's CA requests (made with openssl, their keys
//! never beside the plan's inputs but the request) signed by the root on the
//! token; the bundles without any leaf of a delegated CA; the node-held key
//! matching its certificate; leaves issued from it with openssl exactly as
//! kubeadm issues one (what `kubeadm init phase certs all` does when a CA's
//! `.key` is beside its `.crt`) chaining to the ceremony's root; `verify`
//! accepting the delegated key where the plan delegates it and nowhere else;
//! the audit log's typed record with the request's SHA-256.
//!
//! There is no kubeadm binary here: the layout is checked against kubeadm's
//! rules (a CA's `.crt` with its `.key`: kubeadm makes the missing leaves; a
//! `.crt` alone: external-CA mode, every leaf must be there).

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

use common::{Fixture, LABELS, Output, PlanSpec};
use sha2::Digest;

#[track_caller]
fn tool(f: &Fixture, program: &str, args: &[&str]) -> Output {
    let out = f.tool(program, args);
    out.assert_ok(&format!("{program} {}", args.join(" ")));
    out
}

/// The request of a CA made as docs/plan.md shows, on "the node": the key
/// goes to `node-keys/<name>.key`, outside what the ceremony reads.
fn ca_request(f: &Fixture, name: &str, cn: &str) {
    fs::create_dir_all(f.path().join("node-keys")).unwrap();
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
            &format!("node-keys/{name}.key"),
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE,pathlen:0",
            "-addext",
            "keyUsage=critical,digitalSignature,keyCertSign,cRLSign",
            "-out",
            &format!("{name}.csr"),
        ],
    );
}

/// The fixture's plan with these CAs (by section name) delegated.
fn plan_text(f: &Fixture, delegated: &[(&str, &str)]) -> String {
    let mut t = PlanSpec::new(&f.token().label, ["ecdsa-p256"; 4]).toml();
    for (section, csr) in delegated {
        let head = format!("[ca.{section}]\n");
        assert!(t.contains(&head), "{head}");
        t = t.replace(
            &head,
            &format!("{head}mode = \"delegated\"\ncsr = \"{csr}\"\n"),
        );
    }
    // The kubernetes CA signs users' kubeconfigs: none in these plans.
    t
}

fn run(f: &Fixture, name: &str, text: &str) -> PathBuf {
    let plan = f.path().join(format!("{name}.toml"));
    fs::write(&plan, text).unwrap();
    let out = f.work(&format!("{name}-out"));
    let r = f.run_plan(&plan, &out);
    assert!(r.ok(), "ceremony run failed: {r}");
    out
}

fn pubkey(f: &Fixture, kind: &str, file: &Path) -> String {
    let file = file.to_str().unwrap();
    match kind {
        "x509" => tool(f, "openssl", &["x509", "-in", file, "-noout", "-pubkey"]).stdout,
        _ => tool(f, "openssl", &["pkey", "-in", file, "-pubout"]).stdout,
    }
}

/// One leaf issued from a CA's certificate and key as kubeadm issues it
/// (pkiutil.NewSignedCert: critical keyUsage digitalSignature (+
/// keyEncipherment for RSA), basicConstraints CA:FALSE, the EKUs and SANs of
/// the profile, AKI = the CA's SKI, one year).
fn kubeadm_leaf(
    f: &Fixture,
    pki: &Path,
    ca: &str,
    leaf: &str,
    subj: &str,
    eku: &str,
    sans: Option<&str>,
) {
    let p = |rel: &str| pki.join(rel).to_str().unwrap().to_string();
    let ext = f.path().join("leaf.ext");
    let mut text = format!(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={eku}\nauthorityKeyIdentifier=keyid\n"
    );
    if let Some(s) = sans {
        text.push_str(&format!("subjectAltName={s}\n"));
    }
    fs::write(&ext, text).unwrap();
    let csr = f.path().join("leaf.csr");
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
            &p(&format!("{leaf}.key")),
            "-subj",
            subj,
            "-out",
            csr.to_str().unwrap(),
        ],
    );
    tool(
        f,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            &p(&format!("{ca}.crt")),
            "-CAkey",
            &p(&format!("{ca}.key")),
            "-set_serial",
            "0x5eed",
            "-days",
            "365",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            &p(&format!("{leaf}.crt")),
        ],
    );
}

/// `openssl verify` of a leaf against the ceremony's root, the CA as untrusted intermediate.
fn chains_to_root(f: &Fixture, root: &Path, ca: &Path, leaf: &Path) {
    let out = tool(
        f,
        "openssl",
        &[
            "verify",
            "-x509_strict",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            ca.to_str().unwrap(),
            leaf.to_str().unwrap(),
        ],
    );
    assert_eq!(out.stdout.trim(), format!("{}: OK", leaf.display()));
}

fn files_under(root: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
                v.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    v.sort();
    v
}

#[test]
fn etcd_and_front_proxy_delegated_kubernetes_kept() {
    let f = Fixture::new("delegation");
    ca_request(&f, "etcd-ca", "etcd-ca");
    ca_request(&f, "front-proxy-ca", "front-proxy-ca");
    let text = plan_text(
        &f,
        &[
            ("etcd", "etcd-ca.csr"),
            ("front-proxy", "front-proxy-ca.csr"),
        ],
    );
    let plan = f.path().join("mixed.toml");
    fs::write(&plan, &text).unwrap();

    // `check` says who holds which key before anything is touched.
    let check = f.ceremony(&["check", plan.to_str().unwrap()]);
    check.assert_ok("ceremony check");
    assert!(
        check.stdout.contains(
            "key:      ecdsa-p256 held by the control-plane nodes (delegated), from the request etcd-ca.csr; nothing on the token under \"etcd-ca\""
        ),
        "{}",
        check.stdout
    );
    assert!(
        check
            .stdout
            .contains("as /etc/kubernetes/pki/etcd/ca.key (0600)"),
        "{}",
        check.stdout
    );

    let out = run(&f, "mixed", &text);

    // Nothing of a delegated CA on the token: no object under its label.
    let objects = f.objects();
    for label in [LABELS[2], LABELS[3]] {
        assert!(
            !objects.iter().any(|o| o.label == label),
            "{label} on the token: {objects:?}"
        );
    }
    for label in [LABELS[0], LABELS[1]] {
        assert!(objects.iter().any(|o| o.label == label), "{label} missing");
    }

    // The control-plane bundle: the three CA certificates, the kubernetes
    // CA's leaves and kubeconfigs, none of etcd's or front-proxy's.
    let node = out.join("nodes/cp1/etc/kubernetes");
    let files = files_under(&node);
    for want in [
        "pki/ca.crt",
        "pki/etcd/ca.crt",
        "pki/front-proxy-ca.crt",
        "pki/apiserver.crt",
        "pki/apiserver-kubelet-client.crt",
        "admin.conf",
        "kubelet.conf",
        "pki/sa.key",
    ] {
        assert!(
            files.contains(&want.to_string()),
            "{want} missing: {files:?}"
        );
    }
    for gone in [
        "pki/etcd/server.crt",
        "pki/etcd/peer.crt",
        "pki/etcd/healthcheck-client.crt",
        "pki/apiserver-etcd-client.crt",
        "pki/front-proxy-client.crt",
        "pki/etcd/ca.key",
        "pki/front-proxy-ca.key",
        "pki/ca.key",
    ] {
        assert!(
            !files.contains(&gone.to_string()),
            "{gone} written: {files:?}"
        );
    }

    // The delegated CA certificates: signed by the root, pathlen 0, the
    // node-held key's.
    let root = out.join("root-ca.crt");
    for (name, file) in [
        ("etcd-ca", "pki/etcd/ca.crt"),
        ("front-proxy-ca", "pki/front-proxy-ca.crt"),
    ] {
        let crt = node.join(file);
        assert_eq!(
            pubkey(&f, "x509", &crt),
            pubkey(&f, "pkey", &f.path().join(format!("node-keys/{name}.key"))),
            "{file} is not for the key its node holds"
        );
        let txt = tool(
            &f,
            "openssl",
            &["x509", "-in", crt.to_str().unwrap(), "-noout", "-text"],
        )
        .stdout;
        assert!(txt.contains("CA:TRUE, pathlen:0"), "{txt}");
        assert!(
            txt.contains("Digital Signature, Certificate Sign, CRL Sign"),
            "{txt}"
        );
        assert_eq!(
            fs::read(&crt).unwrap(),
            fs::read(out.join(format!("cas/{name}.crt"))).unwrap()
        );
    }

    // The bundle as the ceremony wrote it passes verify (with the plan too).
    f.ceremony(&["verify", out.to_str().unwrap()])
        .assert_ok("verify OUT");
    f.ceremony(&[
        "verify",
        out.to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
    ])
    .assert_ok("verify OUT --plan");
    // Monitoring does not count a delegated CA's leaves, kubeadm's to renew, as missing.
    let inspect = f.ceremony(&["inspect", out.to_str().unwrap(), "--expiring", "30d"]);
    assert_eq!(inspect.code, Some(0), "{inspect}");

    // The installer puts the node-held keys beside their certificates; then
    // kubeadm makes the missing leaves: here openssl, as kubeadm would.
    let pki = node.join("pki");
    fs::copy(
        f.path().join("node-keys/etcd-ca.key"),
        pki.join("etcd/ca.key"),
    )
    .unwrap();
    fs::copy(
        f.path().join("node-keys/front-proxy-ca.key"),
        pki.join("front-proxy-ca.key"),
    )
    .unwrap();
    let sans = "DNS:cp1,DNS:localhost,IP:10.0.0.11,IP:127.0.0.1,IP:0:0:0:0:0:0:0:1";
    kubeadm_leaf(
        &f,
        &pki,
        "etcd/ca",
        "etcd/server",
        "/CN=cp1",
        "serverAuth,clientAuth",
        Some(sans),
    );
    kubeadm_leaf(
        &f,
        &pki,
        "etcd/ca",
        "etcd/peer",
        "/CN=cp1",
        "serverAuth,clientAuth",
        Some(sans),
    );
    kubeadm_leaf(
        &f,
        &pki,
        "etcd/ca",
        "etcd/healthcheck-client",
        "/CN=kube-etcd-healthcheck-client",
        "clientAuth",
        None,
    );
    kubeadm_leaf(
        &f,
        &pki,
        "etcd/ca",
        "apiserver-etcd-client",
        "/CN=kube-apiserver-etcd-client",
        "clientAuth",
        None,
    );
    kubeadm_leaf(
        &f,
        &pki,
        "front-proxy-ca",
        "front-proxy-client",
        "/CN=front-proxy-client",
        "clientAuth",
        None,
    );
    for (ca, leaf) in [
        ("etcd/ca.crt", "etcd/server.crt"),
        ("etcd/ca.crt", "etcd/peer.crt"),
        ("etcd/ca.crt", "apiserver-etcd-client.crt"),
        ("front-proxy-ca.crt", "front-proxy-client.crt"),
    ] {
        chains_to_root(&f, &root, &pki.join(ca), &pki.join(leaf));
    }
    // The node as kubeadm leaves it passes verify against the plan and root.
    let node_verify = |f: &Fixture, dir: &Path| {
        f.ceremony(&[
            "verify",
            dir.to_str().unwrap(),
            "--plan",
            plan.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
        ])
    };
    node_verify(&f, &node).assert_ok("verify the installed control-plane node");

    // A delegated key that is not its certificate's is named.
    fs::copy(
        f.path().join("node-keys/etcd-ca.key"),
        pki.join("front-proxy-ca.key"),
    )
    .unwrap();
    let bad = node_verify(&f, &node);
    assert!(
        bad.stdout.contains(
            "pki/front-proxy-ca.key: key: does not match pki/front-proxy-ca.crt: kubeadm would sign leaves nobody trusts"
        ),
        "{bad}"
    );
    fs::copy(
        f.path().join("node-keys/front-proxy-ca.key"),
        pki.join("front-proxy-ca.key"),
    )
    .unwrap();

    // A key of a CA the plan keeps in the token is refused where a delegated one is accepted.
    fs::copy(f.path().join("node-keys/etcd-ca.key"), pki.join("ca.key")).unwrap();
    let bad = node_verify(&f, &node);
    assert!(
        bad.stdout
            .contains("pki/ca.key: file: a CA private key file: CA keys never leave the token"),
        "{bad}"
    );
    fs::remove_file(pki.join("ca.key")).unwrap();

    // And a delegated key on a worker, ever.
    let worker = out.join("nodes/worker1/etc/kubernetes");
    fs::create_dir_all(worker.join("pki/etcd")).unwrap();
    fs::copy(
        f.path().join("node-keys/etcd-ca.key"),
        worker.join("pki/etcd/ca.key"),
    )
    .unwrap();
    let bad = node_verify(&f, &worker);
    assert!(
        bad.stdout.contains(
            "pki/etcd/ca.key: file: the delegated etcd CA's key belongs on the control-plane nodes only"
        ),
        "{bad}"
    );

    // The audit log: one typed record per delegated CA, with its request's SHA-256.
    let plain = f.age_decrypt(&out.join("audit.log.age"));
    let records = common::json_lines(&plain.lines().collect::<Vec<_>>());
    for (role, csr) in [
        ("etcd", "etcd-ca.csr"),
        ("front-proxy", "front-proxy-ca.csr"),
    ] {
        let want = hex::encode(sha2::Sha256::digest(fs::read(f.path().join(csr)).unwrap()));
        let r = records
            .iter()
            .find(|r| {
                common::kind(r) == "delegated_ca_issued"
                    && r["event"]["certificate"]["role"] == role
            })
            .unwrap_or_else(|| panic!("no delegated_ca_issued record for {role}"));
        assert_eq!(r["event"]["csr"], csr);
        assert_eq!(r["event"]["csr_sha256"], want.as_str());
        assert_eq!(r["event"]["certificate"]["signed_by"], "root");
    }
    assert!(
        !records
            .iter()
            .any(|r| common::kind(r) == "certificate_stored"
                && (r["event"]["role"] == "etcd" || r["event"]["role"] == "front-proxy")),
        "a delegated CA's certificate was stored on the token"
    );
    f.audit_verify(&out.join("audit.log.age"), &[])
        .assert_ok("audit verify");
}

#[test]
fn kubernetes_delegated_workers_join_by_bootstrap() {
    let f = Fixture::new("delegation-k8s");
    ca_request(&f, "ca", "kubernetes");
    let text = plan_text(&f, &[("kubernetes", "ca.csr")]);
    let out = run(&f, "k8s", &text);
    // No leaf and no kubeconfig of the kubernetes CA anywhere; the worker
    // gets the CA certificate for its TLS bootstrap.
    let worker = files_under(&out.join("nodes/worker1/etc/kubernetes"));
    // (and its kubeadm join configuration, which pins that CA).
    assert_eq!(
        worker,
        vec!["kubeadm-config.yaml".to_string(), "pki/ca.crt".to_string()]
    );
    let cp = files_under(&out.join("nodes/cp1/etc/kubernetes"));
    for f in &cp {
        assert!(
            !f.ends_with(".conf")
                && !f.starts_with("pki/apiserver.")
                && !f.starts_with("pki/apiserver-kubelet"),
            "{f} written though the kubernetes CA is delegated: {cp:?}"
        );
    }
    assert!(cp.contains(&"pki/etcd/server.crt".to_string()), "{cp:?}");
    assert!(cp.contains(&"pki/sa.pub".to_string()), "{cp:?}");
    f.ceremony(&["verify", out.to_str().unwrap()])
        .assert_ok("verify OUT");
    // kubeadm's admin.conf from the node-held key: a client certificate that
    // chains to the root through the delegated CA.
    let pki = out.join("nodes/cp1/etc/kubernetes/pki");
    fs::copy(f.path().join("node-keys/ca.key"), pki.join("ca.key")).unwrap();
    kubeadm_leaf(
        &f,
        &pki,
        "ca",
        "admin",
        "/O=kubeadm:cluster-admins/CN=kubernetes-admin",
        "clientAuth",
        None,
    );
    chains_to_root(
        &f,
        &out.join("root-ca.crt"),
        &pki.join("ca.crt"),
        &pki.join("admin.crt"),
    );
}

#[test]
fn a_refused_ca_request_touches_nothing() {
    let f = Fixture::new("delegation-refused");
    // The etcd CA's request with the front-proxy CA's subject.
    ca_request(&f, "etcd-ca", "front-proxy-ca");
    let text = plan_text(&f, &[("etcd", "etcd-ca.csr")]);
    let plan = f.path().join("refused.toml");
    fs::write(&plan, &text).unwrap();
    let before = f.token_snapshot();
    let out = f.work("refused-out");
    let r = f.run_plan(&plan, &out);
    assert_eq!(r.code, Some(2), "{r}");
    assert_eq!(
        r.first_error(),
        Some(
            "error: a delegated CA's certificate request was refused, nothing was signed: etcd-ca.csr: subject: expected \"CN=etcd-ca\" exactly, the plan's subject for this CA, got \"CN=front-proxy-ca\""
        ),
        "{r}"
    );
    assert_eq!(f.token_snapshot(), before, "the token changed");
    assert!(!out.exists(), "output written");
    let check = f.ceremony(&["check", plan.to_str().unwrap()]);
    assert_eq!(check.code, Some(2), "{check}");
    assert!(
        check.stdout.contains("    refused: etcd-ca.csr: subject:"),
        "{check}"
    );

    // A request asking for names, and two CAs of one key: refused the same way.
    let refused = |f: &Fixture, text: &str, want: &str| {
        let plan = f.path().join("refused.toml");
        fs::write(&plan, text).unwrap();
        let r = f.run_plan(&plan, &out);
        assert_eq!(r.code, Some(2), "{r}");
        assert_eq!(r.first_error(), Some(want), "{r}");
        assert_eq!(f.token_snapshot(), before, "the token changed");
        assert!(!out.exists(), "output written");
    };
    let key = "node-keys/etcd-ca.key";
    tool(
        &f,
        "openssl",
        &[
            "req",
            "-new",
            "-key",
            key,
            "-subj",
            "/CN=etcd-ca",
            "-addext",
            "subjectAltName=DNS:etcd-ca",
            "-out",
            "etcd-ca.csr",
        ],
    );
    refused(
        &f,
        &text,
        "error: a delegated CA's certificate request was refused, nothing was signed: etcd-ca.csr: extensionRequest: expected only basicConstraints and keyUsage (the certificate takes its extensions from the ceremony's CA profile), got subjectAltName",
    );
    tool(
        &f,
        "openssl",
        &[
            "req",
            "-new",
            "-key",
            key,
            "-subj",
            "/CN=etcd-ca",
            "-out",
            "etcd-ca.csr",
        ],
    );
    tool(
        &f,
        "openssl",
        &[
            "req",
            "-new",
            "-key",
            key,
            "-subj",
            "/CN=front-proxy-ca",
            "-out",
            "front-proxy-ca.csr",
        ],
    );
    refused(
        &f,
        &plan_text(
            &f,
            &[
                ("etcd", "etcd-ca.csr"),
                ("front-proxy", "front-proxy-ca.csr"),
            ],
        ),
        "error: a delegated CA's certificate request was refused, nothing was signed: front-proxy-ca.csr: key: expected a key of its own (each CA its own key), got the key of etcd-ca.csr",
    );
}

// ---------------------------------------------------------------------------
// The short-lived kubelet signer

/// `openssl s_server -www` on a free 127.0.0.1 port with the apiserver's
/// certificate, requiring a client certificate that verifies against
/// `client_ca` (-partial_chain: any certificate of the file is an anchor, as
/// for Go and kube-apiserver's --client-ca-file).
fn tls_server(f: &Fixture, cert: &Path, key: &Path, client_ca: &Path) -> (common::Server, u16) {
    let mut attempt = 0;
    common::start_with_retries(5, || {
        attempt += 1;
        let port = common::free_port();
        let mut cmd = std::process::Command::new("openssl");
        cmd.arg("s_server")
            .arg("-accept")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .arg("-CAfile")
            .arg(client_ca)
            .args(["-Verify", "1", "-verify_return_error", "-partial_chain"])
            .args(["-x509_strict", "-www"]);
        let mut srv = common::Server::spawn(
            "s_server kubelet-signer",
            &mut cmd,
            &f.path().join(format!("s_server-{attempt}.log")),
        );
        srv.wait_ready("ACCEPT")?;
        Ok((srv, port))
    })
}

/// A kubeconfig for `server` trusting `ca` with `client`.crt/.key embedded.
fn kubeconfig(dest: &Path, server: &str, ca: &Path, client: &Path) {
    use base64::Engine;
    let b64 = |p: &Path| base64::engine::general_purpose::STANDARD.encode(fs::read(p).unwrap());
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
        b64(ca),
        b64(&client.with_extension("crt")),
        b64(&client.with_extension("key")),
    );
    common::write_secret(dest, text.as_bytes());
}

fn kubectl(f: &Fixture, kc: &Path) -> Output {
    let mut cmd = std::process::Command::new("kubectl");
    cmd.env("HOME", f.path())
        .arg("--kubeconfig")
        .arg(kc)
        .arg("--request-timeout=10s")
        .args(["get", "--raw", "/"]);
    common::run(&mut cmd, common::SHORT)
}

/// The controller-manager's kubelet signer: signed by the kubernetes CA on
/// the token from the first control-plane node's request, limited to TLS
/// client and server use, written with the trust file kube-apiserver's
/// --client-ca-file reads. A kubelet client certificate it signs (openssl,
/// no chain, as the controller-manager issues one) authenticates to a TLS
/// server trusting that file; one from an unrelated CA does not.
#[test]
fn kubelet_signer_client_certificates_authenticate_with_the_trust_file() {
    let f = Fixture::new("kubelet-signer");
    ca_request(&f, "kubelet-signer", "kubelet-signer");
    let mut text = PlanSpec::peers(&[("cp1", "10.0.0.10")], &["worker1"]);
    text.token = &f.token().label;
    let text = text.toml()
        + "\n[kubelet_signer]\ncsr = \"kubelet-signer.csr\"\nkey = \"ecdsa-p256\"\nvalidity = \"30d\"\n";
    let out = run(&f, "signer", &text);
    let pki = out.join("nodes/cp1/etc/kubernetes/pki");

    // What was written: the signer under the kubernetes CA, for 30 days,
    // clientAuth and serverAuth only; the trust file kubernetes CA then signer.
    let signer = pki.join("kubelet-signer.crt");
    chains_to_root(
        &f,
        &out.join("root-ca.crt"),
        &out.join("chains/kubernetes-ca-chain.crt"),
        &signer,
    );
    let txt = tool(
        &f,
        "openssl",
        &[
            "x509",
            "-in",
            signer.to_str().unwrap(),
            "-noout",
            "-text",
            "-dates",
        ],
    )
    .stdout;
    assert!(txt.contains("CA:TRUE, pathlen:0"), "{txt}");
    assert!(
        txt.contains("TLS Web Client Authentication, TLS Web Server Authentication"),
        "{txt}"
    );
    assert!(txt.contains("Issuer: CN = kubernetes"), "{txt}");
    assert_eq!(
        pubkey(&f, "x509", &signer),
        pubkey(&f, "pkey", &f.path().join("node-keys/kubelet-signer.key"))
    );
    let bundle = fs::read_to_string(pki.join("kubelet-client-ca-bundle.crt")).unwrap();
    assert_eq!(
        bundle,
        fs::read_to_string(pki.join("ca.crt")).unwrap() + &fs::read_to_string(&signer).unwrap()
    );
    assert_eq!(
        fs::read_to_string(out.join("kubelet-signer/client-ca-bundle.crt")).unwrap(),
        bundle
    );
    f.ceremony(&["verify", out.to_str().unwrap()])
        .assert_ok("verify OUT");
    // Monitoring sees the short-lived signer's end.
    let inspect = f.ceremony(&["inspect", out.to_str().unwrap(), "--expiring", "60d"]);
    assert_eq!(inspect.code, Some(6), "{inspect}");
    assert!(
        inspect
            .stdout
            .contains("cas/kubelet-signer.crt: kubelet-signer")
            && inspect
                .stdout
                .contains("nodes/cp1/etc/kubernetes/pki/kubelet-signer.crt"),
        "{inspect}"
    );

    // The installer puts the node-held key beside the certificate; the
    // controller-manager signs a kubelet's client certificate with it.
    fs::copy(
        f.path().join("node-keys/kubelet-signer.key"),
        pki.join("kubelet-signer.key"),
    )
    .unwrap();
    let plan = f.path().join("signer.toml");
    f.ceremony(&[
        "verify",
        out.join("nodes/cp1/etc/kubernetes").to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
        "--root",
        out.join("root-ca.crt").to_str().unwrap(),
    ])
    .assert_ok("verify the control-plane node with the signer's key");
    let certs = f.path().join("certs");
    fs::create_dir_all(&certs).unwrap();
    fs::copy(&signer, certs.join("kubelet-signer.crt")).unwrap();
    fs::copy(
        pki.join("kubelet-signer.key"),
        certs.join("kubelet-signer.key"),
    )
    .unwrap();
    kubeadm_leaf(
        &f,
        &certs,
        "kubelet-signer",
        "kubelet-client",
        "/O=system:nodes/CN=system:node:worker1",
        "clientAuth",
        None,
    );
    // An unrelated CA, and the same kubelet's certificate from it.
    tool(
        &f,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            certs.join("rogue.key").to_str().unwrap(),
            "-out",
            certs.join("rogue.crt").to_str().unwrap(),
            "-subj",
            "/CN=kubelet-signer",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE,pathlen:0",
            "-addext",
            "keyUsage=critical,digitalSignature,keyCertSign,cRLSign",
        ],
    );
    kubeadm_leaf(
        &f,
        &certs,
        "rogue",
        "rogue-client",
        "/O=system:nodes/CN=system:node:worker1",
        "clientAuth",
        None,
    );

    let (tls, port) = tls_server(
        &f,
        &pki.join("apiserver.crt"),
        &pki.join("apiserver.key"),
        &pki.join("kubelet-client-ca-bundle.crt"),
    );
    let server = format!("https://127.0.0.1:{port}");
    let good = f.path().join("kubelet.conf");
    kubeconfig(
        &good,
        &server,
        &pki.join("ca.crt"),
        &certs.join("kubelet-client"),
    );
    let r = kubectl(&f, &good);
    assert!(
        r.ok() && r.stdout.contains("s_server"),
        "the signer's kubelet certificate must authenticate: {r}\n--- s_server log\n{}",
        tls.log_text()
    );
    let rogue = f.path().join("rogue.conf");
    kubeconfig(
        &rogue,
        &server,
        &pki.join("ca.crt"),
        &certs.join("rogue-client"),
    );
    let before = tls.log_count("verify error");
    let r = kubectl(&f, &rogue);
    assert!(
        r.failed() && r.stderr.contains("unknown certificate authority"),
        "an unrelated CA's kubelet certificate must be refused: {r}\n--- s_server log\n{}",
        tls.log_text()
    );
    assert!(tls.log_count("verify error") > before, "{}", tls.log_text());
    // Without the signer in the trust file (ca.crt alone), its certificate is refused too.
    drop(tls);
    let (tls, port) = tls_server(
        &f,
        &pki.join("apiserver.crt"),
        &pki.join("apiserver.key"),
        &pki.join("ca.crt"),
    );
    let only_ca = f.path().join("only-ca.conf");
    kubeconfig(
        &only_ca,
        &format!("https://127.0.0.1:{port}"),
        &pki.join("ca.crt"),
        &certs.join("kubelet-client"),
    );
    let r = kubectl(&f, &only_ca);
    assert!(
        r.failed(),
        "ca.crt alone must not accept the signer's certificates: {r}\n{}",
        tls.log_text()
    );
}

/// Each continuing ceremony signs the kubelet signer again (here from a new
/// key's request) and writes it to OUT and the control-plane nodes it renews.
#[test]
fn a_continuing_ceremony_renews_the_kubelet_signer() {
    let f = Fixture::new("signer-renewal");
    ca_request(&f, "kubelet-signer", "kubelet-signer");
    let signer = "\n[kubelet_signer]\ncsr = \"kubelet-signer.csr\"\nkey = \"ecdsa-p256\"\nvalidity = \"7d\"\n";
    let c1_text = PlanSpec::new(&f.token().label, ["ecdsa-p256"; 4]).toml() + signer;
    let c1 = run(&f, "c1", &c1_text);
    let first = fs::read(c1.join("cas/kubelet-signer.crt")).unwrap();

    // A year on: a new key on the node, its request; cp1 renewed.
    fs::rename(
        f.path().join("node-keys/kubelet-signer.key"),
        f.path().join("node-keys/old.key"),
    )
    .unwrap();
    ca_request(&f, "kubelet-signer", "kubelet-signer");
    let head = "name = \"integration-test\"\n";
    assert!(c1_text.contains(head));
    let c2_text = c1_text.replace(
        head,
        "name = \"integration-test-2\"\nprevious = \"work/c1-out\"\n",
    ) + "\n[renew]\nnodes = [\"cp1\"]\n";
    let c2 = run(&f, "c2", &c2_text);
    let second = c2.join("cas/kubelet-signer.crt");
    assert_ne!(
        fs::read(&second).unwrap(),
        first,
        "the signer was not signed again"
    );
    assert_eq!(
        pubkey(&f, "x509", &second),
        pubkey(&f, "pkey", &f.path().join("node-keys/kubelet-signer.key"))
    );
    assert_eq!(
        fs::read(c2.join("nodes/cp1/etc/kubernetes/pki/kubelet-signer.crt")).unwrap(),
        fs::read(&second).unwrap()
    );
    chains_to_root(
        &f,
        &c2.join("root-ca.crt"),
        &c2.join("chains/kubernetes-ca-chain.crt"),
        &second,
    );
    f.ceremony(&["verify", c2.to_str().unwrap()])
        .assert_ok("verify c2");
}

/// A delegated CA with a backup and CRLs in one founding ceremony: the
/// backup covers the CAs kept in the token only, and only they sign a CRL
/// (the delegated CA's key is on the nodes); etcd's bundle gets no CRL.
#[test]
fn a_delegated_ca_is_neither_backed_up_nor_signs_a_crl() {
    let f = Fixture::with_pins("delegation-backup", "20262026", "so-20262026");
    ca_request(&f, "etcd-ca", "etcd-ca");
    let text = plan_text(&f, &[("etcd", "etcd-ca.csr")])
        + "\n[crl]\nnext_update = \"30d\"\n\n[backup]\ncustodians = [\"Carol\", \"Dave\", \"Erin\"]\nthreshold = 2\n";
    let plan = f.path().join("c1.toml");
    fs::write(&plan, text).unwrap();
    let out = f.work("c1");
    let so = f.path().join("so-pin");
    fs::write(&so, "so-20262026").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&so, fs::Permissions::from_mode(0o600)).unwrap();
    let mut args = f.run_plan_args(&plan, &out);
    args.extend([
        "--shares-out".into(),
        f.path().join("shares").into_os_string(),
        "--so-pin-file".into(),
        so.into_os_string(),
    ]);
    f.ceremony(&args)
        .assert_ok("founding ceremony with a delegated CA, [crl] and [backup]");
    let mut crls = files_under(&out.join("crls"));
    crls.sort();
    assert_eq!(
        crls,
        ["front-proxy-ca.crl", "kubernetes-ca.crl", "root-ca.crl"],
        "CRLs of the CAs kept in the token only"
    );
    let backup = files_under(&out.join("backup"));
    assert!(
        backup.iter().all(|f| !f.contains("etcd")),
        "nothing of the delegated etcd CA in backup/: {backup:?}"
    );
    assert!(
        backup.iter().any(|f| f.contains("root"))
            && backup.iter().any(|f| f.contains("kubernetes")),
        "the CAs kept in the token are backed up: {backup:?}"
    );
    assert!(
        !out.join("nodes/cp1/etc/kubernetes/pki/etcd/crl.pem")
            .exists()
    );
    f.ceremony(&["verify", out.to_str().unwrap()])
        .assert_ok("verify OUT");
}
