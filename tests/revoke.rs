//! Revocation on a real SoftHSM2 token: a continuing ceremony revokes
//! certificates of the previous output; every CA's CRL is signed on the
//! token, written to OUT and to the etcd of each control-plane bundle;
//! `openssl verify -crl_check` and a real etcd given the CRL refuse the
//! revoked certificates and accept the others; the next ceremony signs the
//! CRLs again with the next number and the entries carried.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::path::{Path, PathBuf};

use common::*;

const KEYS: Keys = ["ecdsa-p256"; 4];
const CONTROL_PLANE: &[(&str, &str)] = &[("cp1", "10.0.0.11"), ("cp2", "10.0.0.12")];

fn founding(token: &str) -> PlanSpec<'_> {
    let mut s = PlanSpec::new(token, KEYS);
    s.cluster().control_plane = CONTROL_PLANE;
    s.cluster().workers = &["worker1"];
    s
}

/// `spec` as a plan continuing `previous`, with `tail` appended (sections).
fn continuing(f: &Fixture, name: &str, spec: &PlanSpec<'_>, previous: &str, tail: &str) -> PathBuf {
    let plan = f.write_spec(&format!("{name}.base.toml"), spec);
    let text = std::fs::read_to_string(&plan).unwrap().replacen(
        "[ceremony]\n",
        &format!("[ceremony]\nprevious = \"{previous}\"\n"),
        1,
    ) + "\n"
        + tail;
    let p = plan.with_file_name(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn pki(out: &Path, node: &str, file: &str) -> PathBuf {
    node_dir(out, node).join("pki").join(file)
}

#[allow(non_snake_case)]
fn OsStr(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// A continuing run that must refuse before it writes: exit 2, one error
/// line starting with `want`, the token as it was, no output.
#[track_caller]
fn refused(f: &Fixture, plan: &Path, out: &Path, want: &str) {
    let token = f.token_snapshot();
    let o = f.run_plan(plan, out);
    assert_eq!(o.code, Some(2), "{o}");
    let errors: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{o}");
    // Paths of the previous output as the run resolved them.
    let want = want.replace("work/", &format!("{}/work/", f.path().display()));
    assert!(errors[0].starts_with(&want), "{}\nwanted {want}", errors[0]);
    assert_eq!(
        o.hint(),
        Some(
            "hint: a revocation names a certificate of the previous output that is not revoked yet (docs/plan.md, [[revoke]]); nothing was touched"
        ),
        "{o}"
    );
    assert_eq!(f.token_snapshot(), token, "the token was touched");
    assert!(!out.exists(), "an output was written");
}

/// `openssl crl -noout -text` of a CRL file.
fn crl_text(path: &Path) -> String {
    let o = openssl(&["crl", "-noout", "-text", "-in", path.to_str().unwrap()]);
    assert!(o.ok(), "{o}");
    o.stdout
}

/// `openssl x509 -noout -serial`'s hex.
fn serial(cert: &Path) -> String {
    let o = openssl(&["x509", "-noout", "-serial", "-in", cert.to_str().unwrap()]);
    assert!(o.ok(), "{o}");
    o.stdout.trim().strip_prefix("serial=").unwrap().to_string()
}

/// `openssl verify -crl_check` of `cert` against the etcd CA chain and `crl`.
fn verify_with_crl(root: &Path, ca: &Path, crl: &Path, cert: &Path) -> Output {
    openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        root.to_str().unwrap(),
        "-untrusted",
        ca.to_str().unwrap(),
        "-CRLfile",
        crl.to_str().unwrap(),
        cert.to_str().unwrap(),
    ])
}

#[test]
fn revoked_etcd_certificates_are_refused_by_openssl_and_etcd_and_the_crls_carry_on() {
    let f = Fixture::new("t-revoke");
    let spec = founding(&f.token().label);
    let c1 = f.run_spec("c1", &spec);
    assert!(!c1.join("crls").exists(), "no CRL unless the plan asks");

    // c2: cp2's etcd peer and healthcheck-client certificates revoked; cp1
    // renewed, so its bundle carries the etcd CA's CRL.
    let tail = "[renew]\nnodes = [\"cp1\"]\n\n[crl]\nnext_update = \"7d\"\n\n\
                [[revoke]]\nnode = \"cp2\"\nfile = \"pki/etcd/peer.crt\"\nreason = \"key-compromise\"\n\n\
                [[revoke]]\nnode = \"cp2\"\nfile = \"pki/etcd/healthcheck-client.crt\"\n";
    let plan = continuing(&f, "c2", &spec, "work/c1-out", tail);
    let c2 = f.work("c2-out");
    let o = f.run_plan(&plan, &c2);
    o.assert_ok("c2 revokes");
    // The preflight says what is revoked, before anything is signed.
    for line in [
        "CRLs           signed by every CA, next update 7d after signing".to_string(),
        format!(
            "Revokes        {}: serial {}, key-compromise, on the etcd CA's CRL",
            pki(&c1, "cp2", "etcd/peer.crt").display(),
            serial(&pki(&c1, "cp2", "etcd/peer.crt"))
        ),
    ] {
        assert!(o.stderr.contains(&line), "{line}\n{o}");
    }
    f.ceremony(&[OsStr("verify"), c2.as_os_str()]).expect_ok();
    // inspect lists each CRL with its next update; --expiring warns before
    // the CRLs lapse (7 days here).
    let o = f.ceremony(&[OsStr("inspect"), c2.as_os_str()]).expect_ok();
    assert!(o.stdout.contains("etcd-ca CRL"), "{o}");
    let o = f.ceremony(&[
        OsStr("inspect"),
        c1.as_os_str(),
        c2.as_os_str(),
        OsStr("--expiring"),
        OsStr("10d"),
        OsStr("--json"),
    ]);
    assert_eq!(o.code, Some(6), "{o}");
    for role in ["root", "kubernetes", "etcd", "front-proxy"] {
        assert!(
            o.stdout.contains(&format!("crls/{role}-ca.crl")),
            "{role}: {o}"
        );
    }
    for role in ["root", "kubernetes", "etcd", "front-proxy"] {
        let text = crl_text(&c2.join(format!("crls/{role}-ca.crl")));
        assert!(
            text.contains("X509v3 CRL Number: \n                1"),
            "{role}: {text}"
        );
    }
    let etcd_crl = c2.join("crls/etcd-ca.crl");
    let text = crl_text(&etcd_crl);
    let peer_serial = serial(&pki(&c1, "cp2", "etcd/peer.crt"));
    let hc_serial = serial(&pki(&c1, "cp2", "etcd/healthcheck-client.crt"));
    assert!(
        text.contains(&format!("Serial Number: {peer_serial}")),
        "{text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(
        text.contains(&format!("Serial Number: {hc_serial}")),
        "{text}"
    );
    assert_eq!(
        read(&pki(&c2, "cp1", "etcd/crl.pem")),
        read(&etcd_crl),
        "cp1's etcd reads the etcd CA's CRL"
    );
    let sums = String::from_utf8(read(&c2.join("SHA256SUMS"))).unwrap();
    for rel in [
        "crls/etcd-ca.crl",
        "nodes/cp1/etc/kubernetes/pki/etcd/crl.pem",
    ] {
        assert!(sums.contains(&format!("  {rel}\n")), "{rel} in SHA256SUMS");
    }
    // The transcript the witnesses sign says what was revoked.
    let transcript = String::from_utf8(read(&c2.join("transcript.md"))).unwrap();
    assert!(
        transcript.contains(&format!(
            "- Revoked: {}: serial {peer_serial}, key-compromise, on the etcd CA's CRL",
            pki(&c1, "cp2", "etcd/peer.crt").display()
        )),
        "{transcript}"
    );
    // The record: each revocation and each CRL signed.
    let log = f.age_decrypt(&c2.join("audit.log.age"));
    let records = json_lines(&log.lines().collect::<Vec<_>>());
    assert_eq!(
        records
            .iter()
            .filter(|r| kind(r) == "certificate_revoked")
            .count(),
        2
    );
    assert_eq!(
        records.iter().filter(|r| kind(r) == "crl_signed").count(),
        4
    );

    // verify: cp2's bundle of c1 given the CRL holds a revoked certificate.
    let copy = f.work("copy");
    std::fs::create_dir_all(copy.join("nodes")).unwrap();
    let o = std::process::Command::new("cp")
        .args(["-a"])
        .arg(c1.join("nodes/cp2"))
        .arg(copy.join("nodes"))
        .status()
        .unwrap();
    assert!(o.success());
    std::fs::copy(&etcd_crl, pki(&copy, "cp2", "etcd/crl.pem")).unwrap();
    let cp2 = copy.join("nodes/cp2");
    let o = f.ceremony(&[OsStr("verify"), cp2.join("etc/kubernetes").as_os_str()]);
    assert_eq!(o.code, Some(4), "{o}");
    for file in ["etcd/peer.crt", "etcd/healthcheck-client.crt"] {
        let want = format!("pki/{file}: serial: revoked on pki/etcd/crl.pem");
        assert!(o.stdout.contains(&want), "{want}\n{o}");
    }

    // openssl agrees: the revoked are refused, the others pass.
    let root = c2.join("root-ca.crt");
    let ca = c2.join("cas/etcd-ca.crt");
    for (cert, revoked) in [
        (pki(&c1, "cp2", "etcd/peer.crt"), true),
        (pki(&c1, "cp2", "etcd/healthcheck-client.crt"), true),
        (pki(&c1, "cp2", "etcd/server.crt"), false),
        (pki(&c1, "cp1", "etcd/peer.crt"), false),
        (pki(&c2, "cp1", "etcd/peer.crt"), false),
    ] {
        let o = verify_with_crl(&root, &ca, &etcd_crl, &cert);
        if revoked {
            assert!(
                !o.ok() && o.stdout.contains("certificate revoked")
                    || o.stderr.contains("certificate revoked"),
                "{}: {o}",
                cert.display()
            );
        } else {
            assert!(o.ok(), "{}: {o}", cert.display());
        }
    }

    // Real etcd given the CRL: cp1's renewed member refuses cp2's revoked
    // client certificate and accepts the others.
    let cp1 = node_dir(&c2, "cp1").join("pki");
    let crl = cp1.join("etcd/crl.pem").display().to_string();
    let (servers, members) = start_etcd_cluster_with(
        f.path(),
        &[("cp1", cp1.clone())],
        &[
            "--client-crl-file".into(),
            crl.clone(),
            "--peer-crl-file".into(),
            crl,
        ],
    );
    let port = members[0].client_port;
    let etcd_ca = cp1.join("etcd/ca.crt");
    for client in [
        cp1.join("etcd/healthcheck-client"),
        pki(&c1, "cp1", "etcd/healthcheck-client"),
    ] {
        etcdctl(port, &etcd_ca, &client, &["put", "k", "v"]).expect_ok();
    }
    // etcd: `rejected connection … "transport: certificate serial <hex> revoked"`.
    let refusal = |serial: &str| format!("certificate serial {} revoked", serial.to_lowercase());
    let before = servers[0].log_count(&refusal(&hc_serial));
    let r = etcdctl_refused(
        port,
        &etcd_ca,
        &pki(&c1, "cp2", "etcd/healthcheck-client"),
        &["put", "k", "v"],
    );
    assert!(!r.ok(), "the revoked client is refused: {r}");
    assert!(
        servers[0].log_count(&refusal(&hc_serial)) > before,
        "etcd says the certificate is revoked:\n{}",
        servers[0].log_text()
    );
    // The peer port, given the same CRL: cp2's revoked peer certificate is
    // refused after the handshake (etcd logs why), cp1's original is not.
    let peer = format!("127.0.0.1:{}", members[0].peer_port);
    for (cert, revoked) in [
        (pki(&c1, "cp1", "etcd/peer"), false),
        (pki(&c1, "cp2", "etcd/peer"), true),
    ] {
        let line = refusal(&serial(&cert.with_extension("crt")));
        let before = servers[0].log_count(&line);
        let crt = cert.with_extension("crt").display().to_string();
        let key = cert.with_extension("key").display().to_string();
        let _ = openssl(&[
            "s_client", "-connect", &peer, "-cert", &crt, "-key", &key, "-brief",
        ]);
        // etcd logs the refusal as it closes the connection: a bounded
        // wait for the line when one is due.
        for _ in 0..100 {
            if !revoked || servers[0].log_count(&line) > before {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(
            servers[0].log_count(&line) > before,
            revoked,
            "{crt}:\n{}",
            servers[0].log_text()
        );
    }
    drop(servers);

    // Revoking it again is refused.
    let again = "[[revoke]]\nnode = \"cp2\"\nfile = \"pki/etcd/peer.crt\"\n";
    let plan = continuing(&f, "again1", &spec, "work/c2-out", again);
    refused(
        &f,
        &plan,
        &f.work("again-out"),
        "error: work/c2-out/nodes/cp2/etc/kubernetes/pki/etcd/peer.crt: not a file of the previous output",
    );
    let plan = continuing(
        &f,
        "again2",
        &spec,
        "work/c2-out",
        &format!("[[revoke]]\nca = \"etcd\"\nserial = \"{peer_serial}\"\n"),
    );
    refused(
        &f,
        &plan,
        &f.work("again-out"),
        &format!(
            "error: serial {peer_serial} of the etcd CA: already revoked, on the etcd CA's CRL number 1 of "
        ),
    );

    // c3: nothing revoked, the CRLs signed again, numbered 2, entries carried.
    let plan = continuing(
        &f,
        "c3",
        &spec,
        "work/c2-out",
        "[renew]\nnodes = [\"cp2\"]\n",
    );
    let c3 = f.work("c3-out");
    let o = f.run_plan(&plan, &c3);
    o.assert_ok("c3 signs the CRLs again");
    assert!(
        o.stderr.contains("CRLs           signed by every CA again (the previous CRLs' entries carried), next update 30d after signing"),
        "{o}"
    );
    let text = crl_text(&c3.join("crls/etcd-ca.crl"));
    assert!(
        text.contains("X509v3 CRL Number: \n                2"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Serial Number: {peer_serial}")),
        "{text}"
    );
    assert_eq!(
        read(&pki(&c3, "cp2", "etcd/crl.pem")),
        read(&c3.join("crls/etcd-ca.crl"))
    );
    f.ceremony(&[OsStr("verify"), c3.as_os_str()]).expect_ok();
}

#[test]
fn revocations_the_previous_output_cannot_back_are_refused_before_anything_is_written() {
    let f = Fixture::new("t-revoke-bad");
    let spec = founding(&f.token().label);
    f.run_spec("c1", &spec);
    let out = f.work("c2-out");
    for (i, (tail, want)) in [
        (
            "[[revoke]]\nnode = \"cp9\"\nfile = \"pki/etcd/peer.crt\"\n",
            "error: work/c1-out/nodes/cp9/etc/kubernetes/pki/etcd/peer.crt: not a file of the previous output (its SHA256SUMS does not list it): name a certificate of an earlier output by ca and serial",
        ),
        (
            "[[revoke]]\nnode = \"cp1\"\nfile = \"pki/etcd/ca.crt\"\n",
            "error: work/c1-out/nodes/cp1/etc/kubernetes/pki/etcd/ca.crt: is the etcd CA's certificate the chain uses: revoking it distrusts every certificate it signed; rotate that CA first",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let plan = continuing(&f, &format!("bad{i}"), &spec, "work/c1-out", tail);
        refused(&f, &plan, &out, want);
    }
}

/// `openssl x509 -noout -pubkey` of a certificate file.
fn pubkey(cert: &Path) -> String {
    let o = openssl(&["x509", "-noout", "-pubkey", "-in", cert.to_str().unwrap()]);
    assert!(o.ok(), "{o}");
    o.stdout
}

/// `openssl x509 -noout -subject -ext subjectKeyIdentifier -enddate`.
fn subject_ski(cert: &Path) -> String {
    let o = openssl(&[
        "x509",
        "-noout",
        "-subject",
        "-ext",
        "subjectKeyIdentifier",
        "-in",
        cert.to_str().unwrap(),
    ]);
    assert!(o.ok(), "{o}");
    o.stdout
}

#[test]
fn reissued_root_and_intermediate_keep_their_keys_verify_the_previous_leaves_and_carry_on() {
    let f = Fixture::new("t-reissue");
    let spec = founding(&f.token().label);
    let c1 = f.run_spec("c1", &spec);
    let token_before = without_chain_head(f.objects());

    let tail = "[renew]\nnodes = [\"cp1\"]\n\n[reissue]\ncas = [\"etcd\", \"root\"]\n";
    let plan = continuing(&f, "c2", &spec, "work/c1-out", tail);
    let c2 = f.work("c2-out");
    let o = f.run_plan(&plan, &c2);
    o.assert_ok("c2 reissues");
    assert!(
        o.stderr
            .contains("Reissue the etcd certificate \"CN=etcd-ca\" for its key"),
        "{o}"
    );
    f.ceremony(&[OsStr("verify"), c2.as_os_str()]).expect_ok();
    // The token is unchanged (the same keys and certificate objects; only
    // the chain head moves).
    assert_eq!(
        without_chain_head(f.objects()),
        token_before,
        "the token keeps its keys and certificates"
    );
    for (file, reissued) in [
        ("root-ca.crt", true),
        ("cas/etcd-ca.crt", true),
        ("cas/kubernetes-ca.crt", false),
        ("cas/front-proxy-ca.crt", false),
    ] {
        let (old, new) = (c1.join(file), c2.join(file));
        assert_eq!(read(&old) != read(&new), reissued, "{file}");
        // The same key (kubeadm's discovery hash pins it), subject and SKI.
        assert_eq!(pubkey(&old), pubkey(&new), "{file}");
        assert_eq!(subject_ski(&old), subject_ski(&new), "{file}");
    }
    assert_eq!(
        read(&pki(&c2, "cp1", "etcd/ca.crt")),
        read(&c2.join("cas/etcd-ca.crt"))
    );
    // Every etcd leaf of c1 verifies under the reissued etcd CA and root.
    let root = c2.join("root-ca.crt");
    let ca = c2.join("cas/etcd-ca.crt");
    for node in ["cp1", "cp2"] {
        for leaf in [
            "etcd/server.crt",
            "etcd/peer.crt",
            "etcd/healthcheck-client.crt",
            "apiserver-etcd-client.crt",
        ] {
            let o = openssl(&[
                "verify",
                "-CAfile",
                root.to_str().unwrap(),
                "-untrusted",
                ca.to_str().unwrap(),
                pki(&c1, node, leaf).to_str().unwrap(),
            ]);
            assert!(o.ok(), "{node} {leaf}: {o}");
        }
    }
    // The old intermediate verifies under the new root (same key, same name).
    let o = openssl(&[
        "verify",
        "-CAfile",
        root.to_str().unwrap(),
        c1.join("cas/kubernetes-ca.crt").to_str().unwrap(),
    ]);
    assert!(o.ok(), "{o}");
    let log = f.age_decrypt(&c2.join("audit.log.age"));
    let records = json_lines(&log.lines().collect::<Vec<_>>());
    assert_eq!(
        records
            .iter()
            .filter(|r| kind(r) == "ca_certificate_reissued")
            .count(),
        2
    );

    // c3 carries the reissued certificates (the token still holds the first ones).
    let plan = continuing(
        &f,
        "c3",
        &spec,
        "work/c2-out",
        "[renew]\nnodes = [\"cp2\"]\n",
    );
    let c3 = f.work("c3-out");
    f.run_plan(&plan, &c3).assert_ok("c3 after the reissue");
    f.ceremony(&[OsStr("verify"), c3.as_os_str()]).expect_ok();
    for file in ["root-ca.crt", "cas/etcd-ca.crt"] {
        assert_eq!(read(&c2.join(file)), read(&c3.join(file)), "{file}");
    }
    assert_eq!(
        read(&pki(&c3, "cp2", "etcd/ca.crt")),
        read(&c2.join("cas/etcd-ca.crt"))
    );
    let log = f.age_decrypt(&c3.join("audit.log.age"));
    let records = json_lines(&log.lines().collect::<Vec<_>>());
    assert_eq!(
        records
            .iter()
            .filter(|r| kind(r) == "ca_certificate_carried")
            .count(),
        2
    );
    let logs: Vec<PathBuf> = [&c1, &c2, &c3]
        .iter()
        .map(|c| c.join("audit.log.age"))
        .collect();
    let mut args = vec![OsStr("audit"), OsStr("verify")];
    args.extend(logs.iter().map(|p| p.as_os_str()));
    args.extend([OsStr("-i"), OsStr(AUDITOR)]);
    let o = f.ceremony(&args).expect_ok();
    assert!(
        o.stdout.contains("chain: 3 ceremonies, sealed by root certificates ")
            && o.stdout
                .contains(" (each reissued from the one before, for the same key) and continuing the one before"),
        "{o}"
    );
}

#[test]
fn a_founding_ceremony_with_crl_publishes_empty_crls_to_out_and_every_control_plane_node() {
    let f = Fixture::new("t-crl-founding");
    let spec = founding(&f.token().label);
    let plan = f.write_spec("c1.base.toml", &spec);
    let text = std::fs::read_to_string(&plan).unwrap() + "\n[crl]\n";
    let plan = plan.with_file_name("c1.toml");
    std::fs::write(&plan, text).unwrap();
    let c1 = f.work("c1-out");
    f.run_plan(&plan, &c1)
        .assert_ok("a founding ceremony with [crl]");
    f.ceremony(&[OsStr("verify"), c1.as_os_str()]).expect_ok();
    for role in ["root", "kubernetes", "etcd", "front-proxy"] {
        let text = crl_text(&c1.join(format!("crls/{role}-ca.crl")));
        assert!(text.contains("No Revoked Certificates."), "{role}: {text}");
        assert!(
            text.contains("X509v3 CRL Number: \n                1"),
            "{role}: {text}"
        );
        assert!(
            text.contains("X509v3 Authority Key Identifier"),
            "{role}: {text}"
        );
    }
    for node in ["cp1", "cp2"] {
        assert_eq!(
            read(&pki(&c1, node, "etcd/crl.pem")),
            read(&c1.join("crls/etcd-ca.crl")),
            "{node}"
        );
    }
    assert!(
        !pki(&c1, "worker1", "etcd/crl.pem").exists(),
        "a worker runs no etcd"
    );
    // A CRL bundle that openssl checks: every leaf of the founding passes.
    let o = verify_with_crl(
        &c1.join("root-ca.crt"),
        &c1.join("cas/etcd-ca.crt"),
        &c1.join("crls/etcd-ca.crl"),
        &pki(&c1, "cp1", "etcd/peer.crt"),
    );
    assert!(o.ok(), "{o}");
    // A CRL tampered with in a bundle: verify says so.
    let crl = pki(&c1, "cp2", "etcd/crl.pem");
    std::fs::copy(c1.join("crls/kubernetes-ca.crl"), &crl).unwrap();
    let o = f.ceremony(&[OsStr("verify"), c1.as_os_str()]);
    assert_eq!(o.code, Some(4), "{o}");
    assert!(
        o.stdout.contains(
            "nodes/cp2/etc/kubernetes/pki/etcd/crl.pem: content: differs from crls/etcd-ca.crl"
        ),
        "{o}"
    );
}
