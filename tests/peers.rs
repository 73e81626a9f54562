//! The bundle against real peers: etcd and etcdctl, kubectl against a TLS
//! server that demands a client certificate, `openssl verify`, and
//! `sha256sum -c`. Each test makes its own SoftHSM token and bundle in its own
//! temporary directory; every server binds 127.0.0.1 on a free port, every
//! wait is bounded, and every process a test starts is killed by its handle
//! when the test ends (also when it fails).

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

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A token and a bundle made by `ceremony run` with `spec`.
fn bundle(spec: &PlanSpec<'_>) -> (Fixture, PathBuf) {
    let token = Fixture::new("peers");
    let out = token.run_spec("plan", spec);
    (token, out)
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------
// etcd

/// etcd started with the bundle's server and peer certificates serves
/// kubeadm's etcd clients (healthcheck-client, apiserver-etcd-client) and
/// refuses client certificates of the other two CAs.
#[test]
fn etcd_serves_its_clients_and_refuses_other_domains() {
    let (token, out) = bundle(&PlanSpec::peers(&[("cp1", "10.0.0.10")], &[]));
    let scratch = token.path();
    let (mut servers, members) =
        start_etcd_cluster(scratch, &[("cp1", node_dir(&out, "cp1").join("pki"))]);
    let etcd = &mut servers[0];
    let port = members[0].client_port;
    let pki = node_dir(&out, "cp1").join("pki");
    let ca = pki.join("etcd/ca.crt");

    // etcdctl checks etcd's server certificate against etcd/ca.crt and the
    // host 127.0.0.1 (in etcd/server's SANs); etcd checks the client's.
    let health = etcdctl(
        port,
        &ca,
        &pki.join("etcd/healthcheck-client"),
        &["endpoint", "health"],
    );
    assert!(
        // etcdctl 3.4 prints the health line on stderr, newer ones on stdout.
        health.ok()
            && (health.stdout.contains("is healthy") || health.stderr.contains("is healthy")),
        "endpoint health with healthcheck-client: {health}\n--- etcd log\n{}",
        etcd.log_text()
    );

    let apiserver = pki.join("apiserver-etcd-client");
    let put = etcdctl(
        port,
        &ca,
        &apiserver,
        &["put", "/registry/peers-test", "v1"],
    );
    assert!(
        put.ok() && put.stdout.trim() == "OK",
        "put with apiserver-etcd-client: {put}\n--- etcd log\n{}",
        etcd.log_text()
    );
    let get = etcdctl(
        port,
        &ca,
        &apiserver,
        &["get", "/registry/peers-test", "--print-value-only"],
    );
    assert!(
        get.ok() && get.stdout.trim() == "v1",
        "get with apiserver-etcd-client: {get}"
    );

    // Client certificates of the kubernetes and front-proxy CAs: etcd must
    // refuse the TLS handshake. etcdctl then fails (non-zero exit, by itself,
    // not killed) and etcd logs why it rejected the connection: the client
    // certificate is "signed by unknown authority" (its CA is not in
    // etcd/ca.crt). Counting that message before and after each attempt
    // proves the failure was etcd refusing this client certificate, not an
    // unreachable server or etcdctl refusing etcd's certificate.
    for (client, key) in [
        ("apiserver-kubelet-client", "/registry/kubelet-client"),
        ("front-proxy-client", "/registry/front-proxy-client"),
    ] {
        for args in [&["put", key, "x"][..], &["get", "/registry/peers-test"][..]] {
            let before = etcd.log_count(UNKNOWN_AUTHORITY);
            let r = etcdctl_refused(port, &ca, &pki.join(client), args);
            assert!(
                r.failed(),
                "{args:?} with {client} must be refused by etcd: {r}"
            );
            assert!(
                etcd.log_count(UNKNOWN_AUTHORITY) > before,
                "etcd did not log rejecting {client}'s certificate ({args:?}): {r}\n--- etcd log\n{}",
                etcd.log_text()
            );
        }
        // And nothing was written.
        let check = etcdctl(port, &ca, &apiserver, &["get", key, "--print-value-only"]);
        assert!(
            check.ok() && check.stdout.trim().is_empty(),
            "{key} must not exist: {check}"
        );
    }
    assert!(etcd.exited().is_none(), "etcd died:\n{}", etcd.log_text());
}

/// Two etcd members, each started from its own node's bundle, form a cluster:
/// etcd/peer.crt works as the TLS server and as the client certificate of the
/// peer connection (peer-client-cert-auth), across two nodes' certificates.
#[test]
fn etcd_members_authenticate_each_other_with_peer_certificates() {
    let spec = PlanSpec::peers(&[("cp1", "10.0.0.10"), ("cp2", "10.0.0.11")], &[]);
    let (token, out) = bundle(&spec);
    let (servers, members) = start_etcd_cluster(
        token.path(),
        &[
            ("cp1", node_dir(&out, "cp1").join("pki")),
            ("cp2", node_dir(&out, "cp2").join("pki")),
        ],
    );
    let pki1 = node_dir(&out, "cp1").join("pki");
    let pki2 = node_dir(&out, "cp2").join("pki");

    let list = etcdctl(
        members[0].client_port,
        &pki1.join("etcd/ca.crt"),
        &pki1.join("etcd/healthcheck-client"),
        &["member", "list"],
    )
    .expect_ok();
    for m in &members {
        let line = list
            .stdout
            .lines()
            .find(|l| l.contains(&format!(", {}, ", m.name)))
            .unwrap_or_else(|| panic!("member {} missing: {list}", m.name));
        assert!(
            line.contains("started"),
            "member {} not started: {line}",
            m.name
        );
    }

    // Written through cp1, read (linearizable: a quorum read over the peer
    // connection) through cp2 with cp2's own client certificate.
    etcdctl(
        members[0].client_port,
        &pki1.join("etcd/ca.crt"),
        &pki1.join("apiserver-etcd-client"),
        &["put", "/registry/replicated", "yes"],
    )
    .expect_ok();
    let get = etcdctl(
        members[1].client_port,
        &pki2.join("etcd/ca.crt"),
        &pki2.join("apiserver-etcd-client"),
        &["get", "/registry/replicated", "--print-value-only"],
    )
    .expect_ok();
    assert_eq!(get.stdout.trim(), "yes", "{get}");

    for srv in &servers {
        assert!(
            !srv.log_text().contains("rejected connection"),
            "{} rejected a connection:\n{}",
            srv.name,
            srv.log_text()
        );
    }
}

// ---------------------------------------------------------------------------
// kubectl against a TLS server with the apiserver's certificate

/// `openssl s_server -www` on a free 127.0.0.1 port, presenting `cert`/`key`,
/// requiring a client certificate that verifies against `client_ca`
/// (-Verify 1 -verify_return_error: no certificate or a bad one aborts the
/// handshake). -partial_chain lets OpenSSL take the intermediate in ca.crt as
/// the trust anchor, as Go (kube-apiserver's --client-ca-file) does.
fn start_tls_server(
    scratch: &Path,
    tag: &str,
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> (Server, u16) {
    let mut attempt = 0;
    start_with_retries(5, || {
        attempt += 1;
        let port = free_port();
        let mut cmd = Command::new("openssl");
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
        let mut srv = Server::spawn(
            &format!("s_server {tag}"),
            &mut cmd,
            &scratch.join(format!("s_server-{tag}-{attempt}.log")),
        );
        srv.wait_ready("ACCEPT")?;
        Ok((srv, port))
    })
}

fn kubectl(home: &Path, kubeconfig: &Path, server: &str, extra: &[&str]) -> Output {
    let mut cmd = Command::new("kubectl");
    cmd.env("HOME", home)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--server")
        .arg(server)
        .arg("--request-timeout=10s")
        .args(extra)
        .args(["get", "--raw", "/"]);
    run(&mut cmd, SHORT)
}

/// A copy of `kubeconfig` whose user credentials are `client`.crt/.key.
fn kubeconfig_with_client(kubeconfig: &Path, client: &Path, dest: &Path) {
    use base64::Engine;
    let b64 = |p: &Path| base64::engine::general_purpose::STANDARD.encode(read(p));
    let cert = b64(&client.with_extension("crt"));
    let key = b64(&client.with_extension("key"));
    let text = String::from_utf8(read(kubeconfig)).expect("utf-8");
    let mut replaced = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let indent = &l[..l.len() - l.trim_start().len()];
            if l.trim_start().starts_with("client-certificate-data:") {
                replaced += 1;
                format!("{indent}client-certificate-data: {cert}")
            } else if l.trim_start().starts_with("client-key-data:") {
                replaced += 1;
                format!("{indent}client-key-data: {key}")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_eq!(
        replaced,
        2,
        "{} has no client credentials",
        kubeconfig.display()
    );
    write_secret(dest, (lines.join("\n") + "\n").as_bytes());
}

/// Every kubeconfig of a control-plane node and a worker's kubelet.conf
/// completes a mutually authenticated TLS handshake with a server holding
/// pki/apiserver.{crt,key} and trusting pki/ca.crt for client certificates,
/// with kubectl checking the server certificate against the kubeconfig's
/// certificate-authority-data and the host name (no --insecure-skip-tls-verify).
/// Client certificates of etcd-ca and front-proxy-ca are refused, and a
/// server certificate of etcd-ca is refused by kubectl.
#[test]
fn kubectl_authenticates_with_every_kubeconfig() {
    let spec = PlanSpec::peers(&[("cp1", "10.0.0.10")], &["worker1"]);
    let (token, out) = bundle(&spec);
    let scratch = token.path();
    let cp = node_dir(&out, "cp1");
    let pki = cp.join("pki");
    let (mut tls, port) = start_tls_server(
        scratch,
        "apiserver",
        &pki.join("apiserver.crt"),
        &pki.join("apiserver.key"),
        &pki.join("ca.crt"),
    );
    let server = format!("https://127.0.0.1:{port}");

    // (kubeconfig, the server it names, its user): the control-plane
    // endpoint, or the node's own advertise address for the controller-manager
    // and the scheduler (kubeadm's layout). kubectl is then pointed at the
    // local server with --server; the host stays 127.0.0.1, which the
    // apiserver certificate has as the endpoint's SAN.
    let endpoint = "https://127.0.0.1:6443";
    let local = "https://10.0.0.10:6443";
    let kubeconfigs = [
        (cp.join("admin.conf"), endpoint, "kubernetes-admin"),
        (
            cp.join("super-admin.conf"),
            endpoint,
            "kubernetes-super-admin",
        ),
        (
            cp.join("controller-manager.conf"),
            local,
            "system:kube-controller-manager",
        ),
        (cp.join("scheduler.conf"), local, "system:kube-scheduler"),
        (cp.join("kubelet.conf"), endpoint, "system:node:cp1"),
        (
            node_dir(&out, "worker1").join("kubelet.conf"),
            endpoint,
            "system:node:worker1",
        ),
    ];
    for (kc, named_server, user) in &kubeconfigs {
        let json = kubeconfig_json(kc, scratch);
        assert_eq!(
            json["clusters"][0]["cluster"]["server"],
            *named_server,
            "{}",
            kc.display()
        );
        assert_eq!(json["users"][0]["name"], *user, "{}", kc.display());
        let (client_cert, _, _) = kubeconfig_credentials(&json);
        let client_der = &pem_blocks(&client_cert)[0].contents;
        assert_eq!(&cn(&parse(client_der)), user, "{}", kc.display());
        let r = kubectl(scratch, kc, &server, &[]);
        // What proves the handshake: kubectl exits 0 and prints the body of
        // s_server's -www status page, which s_server only serves after a
        // completed handshake. kubectl got there only after verifying the
        // server certificate (chain to certificate-authority-data, SAN
        // 127.0.0.1) and s_server only completed it after verifying the
        // client certificate against ca.crt (-verify_return_error). The page
        // reports "Verify return code: 0 (ok)" for the client certificate and
        // prints that certificate after "Client certificate": it must be
        // exactly the one embedded in this kubeconfig.
        assert!(
            r.ok(),
            "kubectl with {} failed: {r}\n--- s_server log\n{}",
            kc.display(),
            tls.log_text()
        );
        assert!(
            r.stdout.contains("Verify return code: 0 (ok)"),
            "{}: client certificate not verified: {r}",
            kc.display()
        );
        let shown = r
            .stdout
            .split_once("Client certificate")
            .map(|(_, rest)| pem_blocks(rest.as_bytes()))
            .unwrap_or_default();
        assert_eq!(
            shown.first().map(|p| &p.contents),
            Some(client_der),
            "{}: the server did not see this kubeconfig's client certificate: {r}",
            kc.display()
        );
    }

    // The DNS SAN from apiserver_extra_sans ("localhost") works as well, and
    // a name that is not in the SANs is refused by kubectl: the SAN check is
    // really made.
    let admin = cp.join("admin.conf");
    let r = kubectl(scratch, &admin, &format!("https://localhost:{port}"), &[]);
    assert!(
        r.ok() && r.stdout.contains("Verify return code: 0 (ok)"),
        "{r}"
    );
    let r = kubectl(
        scratch,
        &admin,
        &server,
        &["--tls-server-name=not-a-san.example"],
    );
    assert!(
        r.failed() && r.stderr.contains("not-a-san.example"),
        "kubectl must refuse a server name outside the SANs: {r}"
    );

    // Client certificates from the other CAs: s_server aborts the handshake
    // (alert unknown_ca, which kubectl reports as "unknown certificate
    // authority") and logs the verification error for that subject.
    for (client, cn) in [
        ("apiserver-etcd-client", "kube-apiserver-etcd-client"),
        ("front-proxy-client", "front-proxy-client"),
    ] {
        let kc = scratch.join(format!("{client}.conf"));
        kubeconfig_with_client(&admin, &pki.join(client), &kc);
        let before = tls.log_count("verify error");
        let r = kubectl(scratch, &kc, &server, &[]);
        assert!(
            r.failed() && r.stderr.contains("unknown certificate authority"),
            "the server must refuse {client}'s certificate: {r}\n--- s_server log\n{}",
            tls.log_text()
        );
        let log = tls.log_text();
        assert!(
            tls.log_count("verify error") > before && log.contains(&format!("CN = {cn}")),
            "s_server did not log refusing {client}:\n{log}"
        );
    }
    assert!(tls.exited().is_none(), "s_server died:\n{}", tls.log_text());

    // A server certificate from etcd-ca (etcd/server.crt, whose SANs include
    // 127.0.0.1) must not be trusted by admin.conf: ca.crt holds only the
    // kubernetes intermediate, not the root both CAs chain to.
    let (etcd_tls, etcd_port) = start_tls_server(
        scratch,
        "etcd-server",
        &pki.join("etcd/server.crt"),
        &pki.join("etcd/server.key"),
        &pki.join("ca.crt"),
    );
    let r = kubectl(
        scratch,
        &admin,
        &format!("https://127.0.0.1:{etcd_port}"),
        &[],
    );
    assert!(
        r.failed() && r.stderr.contains(UNKNOWN_AUTHORITY),
        "kubectl must refuse a server certificate of etcd-ca: {r}\n--- s_server log\n{}",
        etcd_tls.log_text()
    );
}

// ---------------------------------------------------------------------------
// openssl verify, one certificate per file, no CA key anywhere

/// The certificates of one node, as (label, PEM file) - pki leaves and the
/// client certificates embedded in kubeconfigs (written out to `scratch`) -
/// with their CA and the purposes they must verify for.
fn node_leaves(
    out: &Path,
    node: &str,
    scratch: &Path,
) -> Vec<(String, PathBuf, Domain, Vec<&'static str>)> {
    let dir = node_dir(out, node);
    let mut v = Vec::new();
    for (path, domain) in PKI_LEAVES {
        let crt = dir.join(format!("{path}.crt"));
        if !crt.exists() {
            continue;
        }
        let purposes = match path {
            "pki/apiserver" => vec!["sslserver"],
            "pki/etcd/server" | "pki/etcd/peer" => vec!["sslserver", "sslclient"],
            _ => vec!["sslclient"],
        };
        v.push((format!("{node}/{path}.crt"), crt, domain, purposes));
    }
    for conf in CP_KUBECONFIGS {
        let kc = dir.join(conf);
        if !kc.exists() {
            continue;
        }
        let (cert, _, _) = kubeconfig_credentials(&kubeconfig_json(&kc, scratch));
        let file = scratch.join(format!("{node}-{conf}.crt"));
        fs::write(&file, &cert).expect("write");
        v.push((
            format!("{node}/{conf}"),
            file,
            Domain::Kubernetes,
            vec!["sslclient"],
        ));
    }
    v
}

/// Every leaf of every node verifies with `openssl verify -x509_strict`
/// against its own CA file (the intermediate alone, hence -partial_chain) and
/// against the full chain (root-ca.crt as the anchor, chains/ as untrusted),
/// for its TLS purpose, and does not verify against the other CAs. The CA
/// files hold exactly their intermediate, never the root, and every
/// certificate file holds exactly one certificate.
#[test]
fn openssl_verifies_every_leaf_against_its_own_ca_only() {
    let spec = PlanSpec::peers(&[("cp1", "10.0.0.10"), ("cp2", "10.0.0.11")], &["worker1"]);
    let (token, out) = bundle(&spec);
    let scratch = token.path();
    let root_file = out.join("root-ca.crt");
    let root = one_cert(&root_file);
    let root_cert = parse(&root);
    assert_eq!(root_cert.subject().as_raw(), root_cert.issuer().as_raw());

    // OUT/cas and OUT/chains.
    for d in Domain::ALL {
        let ca = one_cert(&out.join(d.out_ca_file()));
        assert_ne!(ca, root, "{} is the root", d.out_ca_file());
        assert_eq!(
            certs_in(&out.join(d.chain_file())),
            vec![ca.clone(), root.clone()],
            "{} must be the intermediate then the root",
            d.chain_file()
        );
        openssl(&[
            "verify",
            "-x509_strict",
            "-CAfile",
            &s(&root_file),
            &s(&out.join(d.out_ca_file())),
        ])
        .expect_ok();
    }

    // Every *.crt anywhere in OUT holds exactly one certificate (the chains
    // excepted, checked above).
    for f in files_under(&out) {
        if f.ends_with(".crt") && !f.starts_with("chains/") {
            one_cert(&out.join(&f));
        }
    }

    let mut count = 0;
    for node in ["cp1", "cp2", "worker1"] {
        let dir = node_dir(&out, node);
        // The node's CA files: exactly the intermediate (== OUT/cas/...), not
        // the root, not self-signed, a CA.
        for d in Domain::ALL {
            let f = dir.join(d.node_ca_file());
            if node == "worker1" && d != Domain::Kubernetes {
                assert!(!f.exists(), "{} on a worker", f.display());
                continue;
            }
            let der = one_cert(&f);
            assert_ne!(der, root, "{} holds the root", f.display());
            assert_eq!(der, one_cert(&out.join(d.out_ca_file())), "{}", f.display());
            let c = parse(&der);
            assert_ne!(
                c.subject().as_raw(),
                c.issuer().as_raw(),
                "{} self-signed",
                f.display()
            );
            assert_eq!(c.issuer().as_raw(), root_cert.subject().as_raw());
            assert!(c.is_ca(), "{} is not a CA", f.display());
        }

        for (label, file, domain, purposes) in node_leaves(&out, node, scratch) {
            count += 1;
            let leaf = s(&file);
            // The node's own CA file is the anchor (the intermediate alone).
            let own = s(&dir.join(domain.node_ca_file()));
            for purpose in &purposes {
                let r = openssl(&[
                    "verify",
                    "-x509_strict",
                    "-partial_chain",
                    "-purpose",
                    purpose,
                    "-CAfile",
                    &own,
                    &leaf,
                ]);
                assert!(
                    r.ok() && r.stdout.contains(": OK"),
                    "{label} ({purpose}) against {own}: {r}"
                );
                // The full chain to the offline root.
                let r = openssl(&[
                    "verify",
                    "-x509_strict",
                    "-purpose",
                    purpose,
                    "-CAfile",
                    &s(&root_file),
                    "-untrusted",
                    &s(&out.join(domain.chain_file())),
                    &leaf,
                ]);
                assert!(
                    r.ok() && r.stdout.contains(": OK"),
                    "{label} ({purpose}) full chain: {r}"
                );
            }
            // The other two CAs must not verify it.
            for other in Domain::ALL.into_iter().filter(|d| *d != domain) {
                let r = openssl(&[
                    "verify",
                    "-x509_strict",
                    "-partial_chain",
                    "-CAfile",
                    &s(&out.join(other.out_ca_file())),
                    &leaf,
                ]);
                assert!(r.failed(), "{label} verifies against {other:?}: {r}");
            }
            // Nor the root alone (the leaf is signed by the intermediate).
            let r = openssl(&["verify", "-x509_strict", "-CAfile", &s(&root_file), &leaf]);
            assert!(r.failed(), "{label} verifies against the root alone: {r}");
        }
    }
    // cp1: 7 pki leaves + 5 kubeconfigs; cp2: 7 + 4 (no super-admin.conf); worker1: 1.
    assert_eq!(count, 12 + 11 + 1, "leaves checked");
}

/// Every private key anywhere in OUT (PEM files and PEM embedded in
/// kubeconfigs as base64), its public key computed by `openssl pkey -pubout`:
/// none is the key of the root or of an intermediate; every leaf key matches
/// its certificate; sa.pub matches sa.key, which is the same on every
/// control-plane node; no two leaves share a key; every kubeconfig's
/// certificate-authority-data is its node's pki/ca.crt, byte for byte.
#[test]
fn no_file_holds_a_ca_key_and_every_key_matches_its_certificate() {
    use base64::Engine;
    let spec = PlanSpec::peers(&[("cp1", "10.0.0.10"), ("cp2", "10.0.0.11")], &["worker1"]);
    let (token, out) = bundle(&spec);
    let scratch = token.path();
    let mut ca_keys = BTreeMap::new();
    ca_keys.insert(
        spki_der(&parse(&one_cert(&out.join("root-ca.crt")))),
        "root",
    );
    for d in Domain::ALL {
        ca_keys.insert(
            spki_der(&parse(&one_cert(&out.join(d.out_ca_file())))),
            d.out_ca_file(),
        );
    }
    assert_eq!(ca_keys.len(), 4);

    // Every PEM block in every file, directly or base64-embedded (kubeconfigs).
    let mut private_keys: Vec<(String, Vec<u8>)> = Vec::new();
    for f in files_under(&out) {
        let bytes = read(&out.join(&f));
        let Ok(text) = String::from_utf8(bytes.clone()) else {
            assert!(
                !bytes.windows(11).any(|w| w == b"-----BEGIN "),
                "{f}: binary file with PEM inside"
            );
            continue;
        };
        let mut blobs = vec![text.clone()];
        for line in text.lines() {
            if let Some((_, value)) = line.split_once(": ")
                && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(value.trim())
                && let Ok(decoded) = String::from_utf8(decoded)
                && decoded.contains("-----BEGIN ")
            {
                blobs.push(decoded);
            }
        }
        for blob in blobs {
            for p in pem_blocks(blob.as_bytes()) {
                if p.label.contains("PRIVATE KEY") {
                    private_keys.push((f.clone(), to_pem(&p.label, &p.contents).into_bytes()));
                }
            }
        }
    }
    // cp1: 7 pki keys + sa.key + 5 kubeconfigs; cp2: 7 + 1 + 4; worker1: 1.
    assert_eq!(private_keys.len(), 13 + 12 + 1, "private keys found");
    assert!(
        private_keys.iter().all(|(f, _)| f.starts_with("nodes/")),
        "a private key outside nodes/: {:?}",
        private_keys.iter().map(|(f, _)| f).collect::<Vec<_>>()
    );
    let mut seen: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    for (i, (f, pem)) in private_keys.iter().enumerate() {
        let public = openssl_pubkey_of_private(pem, &scratch.join(format!("key-{i}.pem")));
        assert!(
            !ca_keys.contains_key(&public),
            "{f} holds the private key of {}",
            ca_keys[&public]
        );
        seen.entry(public).or_default().push(f.clone());
    }
    // Distinct keys, except sa.key shared by the control-plane nodes.
    for files in seen.values() {
        if files.len() > 1 {
            assert_eq!(
                files,
                &[
                    "nodes/cp1/etc/kubernetes/pki/sa.key",
                    "nodes/cp2/etc/kubernetes/pki/sa.key"
                ],
                "files sharing one key"
            );
        }
    }

    // Key/certificate pairs.
    for node in ["cp1", "cp2"] {
        let dir = node_dir(&out, node);
        for (path, _) in PKI_LEAVES {
            let cert = cert_spki(&dir.join(format!("{path}.crt")));
            let key = openssl_pubkey_of_private(
                &read(&dir.join(format!("{path}.key"))),
                &scratch.join("pair.pem"),
            );
            assert_eq!(
                key, cert,
                "{node}/{path}.key does not match its certificate"
            );
        }
        let sa = openssl_pubkey_of_private(&read(&dir.join("pki/sa.key")), &scratch.join("sa.pem"));
        assert_eq!(
            sa,
            openssl_pubkey(&dir.join("pki/sa.pub")),
            "{node}: sa.pub != sa.key"
        );
        assert_eq!(
            read(&dir.join("pki/sa.key")),
            read(&node_dir(&out, "cp1").join("pki/sa.key"))
        );
    }
    for (node, confs) in [
        ("cp1", &CP_KUBECONFIGS[..]),
        (
            "cp2",
            &[
                "admin.conf",
                "controller-manager.conf",
                "scheduler.conf",
                "kubelet.conf",
            ][..],
        ),
        ("worker1", &["kubelet.conf"][..]),
    ] {
        for conf in confs {
            let kc = kubeconfig_json(&node_dir(&out, node).join(conf), scratch);
            let (cert, key, ca) = kubeconfig_credentials(&kc);
            assert_eq!(
                ca,
                read(&node_dir(&out, node).join("pki/ca.crt")),
                "{node}/{conf}: certificate-authority-data is not the node's pki/ca.crt"
            );
            let cert_spki = spki_der(&parse(&pem_blocks(&cert)[0].contents));
            let key_spki = openssl_pubkey_of_private(&key, &scratch.join("kc.pem"));
            assert_eq!(
                key_spki, cert_spki,
                "{node}/{conf}: key does not match certificate"
            );
        }
    }
}

fn cert_spki(path: &Path) -> Vec<u8> {
    spki_der(&parse(&one_cert(path)))
}

// ---------------------------------------------------------------------------
// SHA256SUMS

/// `sha256sum --strict -c SHA256SUMS` passes in OUT, and the manifest lists
/// every output (nodes/, cas/, chains/, root-ca.crt, ...; all but itself, the
/// transcript and the sealed audit log) exactly once.
#[test]
fn sha256sums_checks_out_and_covers_the_bundle() {
    let spec = PlanSpec::peers(&[("cp1", "10.0.0.10")], &["worker1"]);
    let (_token, out) = bundle(&spec);
    let r = run(
        Command::new("sha256sum")
            .current_dir(&out)
            .args(["--strict", "-c", "SHA256SUMS"]),
        SHORT,
    );
    assert!(r.ok(), "sha256sum -c: {r}");
    let manifest = String::from_utf8(read(&out.join("SHA256SUMS"))).expect("utf-8");
    let listed: Vec<String> = manifest
        .lines()
        .map(|l| {
            let (hash, path) = l
                .split_once("  ")
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            assert!(
                hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                "bad line {l:?}"
            );
            path.to_string()
        })
        .collect();
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "a file is listed twice");
    // Every OK line of sha256sum is one listed file.
    assert_eq!(
        r.stdout.lines().filter(|l| l.ends_with(": OK")).count(),
        listed.len(),
        "{r}"
    );
    // Everything in OUT but the manifest itself and what is written after it
    // (the sealed audit log and the transcript come last).
    let bundle: BTreeSet<String> = files_under(&out)
        .into_iter()
        .filter(|f| {
            ![
                "SHA256SUMS",
                "transcript.md",
                "audit.log.age",
                "audit.seal.json",
            ]
            .contains(&f.as_str())
        })
        .collect();
    for part in ["nodes/", "cas/", "chains/", "root-ca.crt"] {
        assert!(
            bundle.iter().any(|f| f.starts_with(part)),
            "no {part} in {}",
            out.display()
        );
    }
    let missing: Vec<&String> = bundle.iter().filter(|f| !unique.contains(f)).collect();
    assert!(missing.is_empty(), "not in SHA256SUMS: {missing:?}");
    assert!(
        listed
            .iter()
            .all(|f| !f.starts_with('/') && !f.contains(".."))
    );
}
