//! Rotating the kubernetes CA to a new key on a real SoftHSM2 token, one
//! continuing ceremony per stage: c1 founds, c2 stages the new key (trust
//! files: old then new; leaves from the old), c3 promotes it (new then old;
//! leaves from the new), c4 distrusts the old (new only). Through each
//! stage a TLS server (openssl s_server with the apiserver certificate,
//! requiring a client certificate from the client-CA bundle) and kubectl
//! with client certificates and CA data of each stage work where the
//! overlap says they should, and after distrust an old-CA client
//! certificate is refused. Out-of-order stages are refused before anything.

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
use std::process::Command;

use common::*;

const KEYS: Keys = ["ecdsa-p256"; 4];

fn founding(token: &str) -> PlanSpec<'_> {
    let mut s = PlanSpec::new(token, KEYS);
    s.cluster().control_plane = &[("cp1", "10.0.0.10")];
    s.cluster().workers = &["worker1"];
    s
}

/// `spec` continuing `previous`, with `tail` appended.
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

fn rotate(stage: &str) -> String {
    format!("[renew]\nall = true\n\n[rotate]\nca = \"kubernetes\"\nstage = \"{stage}\"\n")
}

fn pki(out: &Path, file: &str) -> PathBuf {
    node_dir(out, "cp1").join("pki").join(file)
}

fn certs(path: &Path) -> Vec<Vec<u8>> {
    pem_blocks(&read(path))
        .into_iter()
        .map(|b| b.contents)
        .collect()
}

/// `openssl s_server -www` presenting `cert`/`key`, requiring a client
/// certificate that verifies against `client_ca` (kube-apiserver's
/// --client-ca-file); -partial_chain takes an intermediate as the anchor,
/// as Go does.
fn tls_server(scratch: &Path, tag: &str, out: &Path) -> (Server, String) {
    let mut attempt = 0;
    let (srv, port) = start_with_retries(5, || {
        attempt += 1;
        let port = free_port();
        let mut cmd = Command::new("openssl");
        cmd.arg("s_server")
            .arg("-accept")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(pki(out, "apiserver.crt"))
            .arg("-key")
            .arg(pki(out, "apiserver.key"))
            .arg("-CAfile")
            .arg(pki(out, "ca.crt"))
            .args(["-Verify", "1", "-verify_return_error", "-partial_chain"])
            .args(["-x509_strict", "-www"]);
        let mut srv = Server::spawn(
            &format!("s_server {tag}"),
            &mut cmd,
            &scratch.join(format!("s_server-{tag}-{attempt}.log")),
        );
        srv.wait_ready("ACCEPT")?;
        Ok((srv, port))
    });
    (srv, format!("https://127.0.0.1:{port}"))
}

/// kubectl with `out`'s admin.conf (its client certificate and CA data).
fn kubectl(home: &Path, out: &Path, server: &str) -> Output {
    let mut cmd = Command::new("kubectl");
    cmd.env("HOME", home)
        .arg("--kubeconfig")
        .arg(node_dir(out, "cp1").join("admin.conf"))
        .arg("--server")
        .arg(server)
        .arg("--request-timeout=10s")
        // A SAN of the apiserver certificate (the node's address).
        .arg("--tls-server-name=10.0.0.10")
        .args(["get", "--raw", "/"]);
    run(&mut cmd, SHORT)
}

#[track_caller]
fn works(home: &Path, client: &Path, server: &str, what: &str) {
    let r = kubectl(home, client, server);
    assert!(
        r.ok() && r.stdout.contains("Verify return code: 0 (ok)"),
        "{what}: {r}"
    );
}

#[track_caller]
fn fails(home: &Path, client: &Path, server: &str, what: &str) {
    let r = kubectl(home, client, server);
    assert!(
        r.failed() && r.stderr.contains("unknown authority")
            || r.stderr.contains("unknown certificate authority"),
        "{what}: {r}"
    );
}

/// `openssl verify` of `leaf` against a trust bundle (the root as anchor,
/// the bundle's intermediates as untrusted chain material).
fn openssl_ok(out: &Path, bundle: &Path, leaf: &Path) -> bool {
    openssl(&[
        "verify",
        "-CAfile",
        out.join("root-ca.crt").to_str().unwrap(),
        "-untrusted",
        bundle.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ])
    .ok()
}

/// A continuing run refused before it writes: exit 2, one error line.
#[track_caller]
fn refused(f: &Fixture, plan: &Path, out: &Path, want: &str) {
    let token = f.token_snapshot();
    let o = f.run_plan(plan, out);
    assert_eq!(o.code, Some(2), "{o}");
    assert_eq!(o.first_error(), Some(want), "{o}");
    assert_eq!(f.token_snapshot(), token, "the token was touched");
    assert!(!out.exists(), "an output was written");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn the_kubernetes_ca_rotates_to_a_new_key_without_an_outage() {
    let f = Fixture::new("t-rotate");
    let scratch = f.path().to_path_buf();
    let spec = founding(&f.token().label);
    let c1 = f.run_spec("c1", &spec);
    let old = certs(&pki(&c1, "ca.crt"));
    assert_eq!(old.len(), 1);

    // Promote or distrust with nothing staged: refused, nothing touched.
    refused(
        &f,
        &continuing(&f, "early", &spec, "work/c1-out", &rotate("promote")),
        &f.work("early-out"),
        "error: rotate.stage = \"promote\": work/c1-out staged no new key for the kubernetes CA; stage one first (stage = \"stage\")",
    );

    // c2: stage. Trust files hold the old then the new; leaves still old.
    let c2 = f.work("c2-out");
    f.run_plan(
        &continuing(&f, "c2", &spec, "work/c1-out", &rotate("stage")),
        &c2,
    )
    .assert_ok("c2 stages");
    let staged = certs(&pki(&c2, "ca.crt"));
    assert_eq!(staged.len(), 2, "old and new");
    assert_eq!(staged[0], old[0], "the old CA first: it signs the leaves");
    assert_ne!(staged[1], old[0]);
    assert_eq!(
        read(&pki(&c2, "ca.crt")),
        read(&c2.join("cas/kubernetes-ca.crt"))
    );
    assert!(openssl_ok(
        &c2,
        &pki(&c2, "ca.crt"),
        &pki(&c2, "apiserver.crt")
    ));
    assert!(
        openssl_ok(&c2, &pki(&c1, "ca.crt"), &pki(&c2, "apiserver.crt")),
        "still the old CA's leaf"
    );
    for other in ["etcd/ca.crt", "front-proxy-ca.crt"] {
        assert_eq!(certs(&pki(&c2, other)).len(), 1, "{other} is not rotated");
    }
    f.ceremony(&[std::ffi::OsStr::new("verify"), c2.as_os_str()])
        .expect_ok();
    // verify refuses a trust file that holds only one CA during the overlap.
    let bad = f.work("c2-one-ca");
    copy_dir(&c2, &bad);
    let worker_ca = node_dir(&bad, "worker1").join("pki/ca.crt");
    std::fs::write(&worker_ca, read(&pki(&c1, "ca.crt"))).unwrap();
    let o = f.ceremony(&[std::ffi::OsStr::new("verify"), bad.as_os_str()]);
    assert!(o.failed(), "{o}");
    assert!(
        o.stdout.contains("nodes/worker1/etc/kubernetes/pki/ca.crt: certificates: during the kubernetes CA's rotation (stage) a trust file holds the CA that signs the leaves, then the other (expected 2 certificates, got 1)"),
        "{o}"
    );
    // Distrust before promote: refused.
    refused(
        &f,
        &continuing(&f, "skip", &spec, "work/c2-out", &rotate("distrust")),
        &f.work("skip-out"),
        "error: rotate.stage = \"distrust\": the kubernetes CA's new key was staged in work/c2-out but never promoted; promote it first (stage = \"promote\")",
    );

    // c3: promote. New first; leaves from the new CA.
    let c3 = f.work("c3-out");
    let plan3 = continuing(&f, "c3", &spec, "work/c2-out", &rotate("promote"));
    // check says what the ceremony will do of the rotation.
    let o = f.ceremony(&[std::ffi::OsStr::new("check"), plan3.as_os_str()]);
    assert!(
        o.stdout
            .contains("rotation of the kubernetes CA, promote: leaves signed by \""),
        "{o}"
    );
    f.run_plan(&plan3, &c3).assert_ok("c3 promotes");
    let promoted = certs(&pki(&c3, "ca.crt"));
    assert_eq!(promoted, vec![staged[1].clone(), staged[0].clone()]);
    assert!(openssl_ok(
        &c3,
        &pki(&c3, "ca.crt"),
        &pki(&c3, "apiserver.crt")
    ));
    assert!(
        !openssl_ok(&c3, &pki(&c1, "ca.crt"), &pki(&c3, "apiserver.crt")),
        "a new CA's leaf"
    );
    f.ceremony(&[std::ffi::OsStr::new("verify"), c3.as_os_str()])
        .expect_ok();

    // The overlap: a server of c2 (old leaf) and of c3 (new leaf), each
    // trusting the bundle, accept clients of both, whose CA data (the
    // bundle) accepts both servers.
    let (mut s2, at2) = tls_server(&scratch, "c2", &c2);
    let (mut s3, at3) = tls_server(&scratch, "c3", &c3);
    for (client, name) in [(&c2, "c2"), (&c3, "c3")] {
        works(&scratch, client, &at2, &format!("{name} client, c2 server"));
        works(&scratch, client, &at3, &format!("{name} client, c3 server"));
    }
    // A node never given the bundle (c1's CA data) cannot trust the new
    // server: why every node is renewed at stage, before promote.
    fails(&scratch, &c1, &at3, "c1's CA data, c3's server");
    works(
        &scratch,
        &c1,
        &at2,
        "c1 client, c2 server (old leaf, bundle)",
    );
    assert!(s2.exited().is_none() && s3.exited().is_none());

    // c4: distrust. Only the new CA.
    let c4 = f.work("c4-out");
    f.run_plan(
        &continuing(&f, "c4", &spec, "work/c3-out", &rotate("distrust")),
        &c4,
    )
    .assert_ok("c4 distrusts");
    assert_eq!(certs(&pki(&c4, "ca.crt")), vec![staged[1].clone()]);
    f.ceremony(&[std::ffi::OsStr::new("verify"), c4.as_os_str()])
        .expect_ok();
    let (mut s4, at4) = tls_server(&scratch, "c4", &c4);
    works(&scratch, &c4, &at4, "c4 client, c4 server");
    works(&scratch, &c3, &at4, "c3 client (new CA), c4 server");
    // An old-CA client certificate is refused by the server.
    let r = kubectl(&scratch, &c2, &at4);
    assert!(
        r.failed(),
        "an old-CA client certificate after distrust: {r}"
    );
    assert!(!openssl_ok(
        &c4,
        &pki(&c4, "ca.crt"),
        &pki(&c2, "apiserver.crt")
    ));
    assert!(openssl_ok(
        &c4,
        &pki(&c4, "ca.crt"),
        &pki(&c3, "apiserver.crt")
    ));
    assert!(s4.exited().is_none());

    // A later ceremony carries the finished rotation: the new key signs.
    let c5 = f.work("c5-out");
    f.run_plan(
        &continuing(&f, "c5", &spec, "work/c4-out", "[renew]\nall = true\n"),
        &c5,
    )
    .assert_ok("c5 renews");
    assert_eq!(certs(&pki(&c5, "ca.crt")), vec![staged[1].clone()]);
    assert!(openssl_ok(
        &c5,
        &pki(&c5, "ca.crt"),
        &pki(&c5, "apiserver.crt")
    ));
    let cont = String::from_utf8(read(&c5.join("continuation.json"))).unwrap();
    assert!(cont.contains("\"stage\": \"distrust\""), "{cont}");
}

/// etcd-ca: c2 stages, c3 promotes. An etcd member started from c2's cp1
/// bundle (old leaves, trusted-ca-file old then new) and one from c3's cp2
/// bundle (new leaves, new then old) form one cluster (peer-client-cert-auth
/// both ways), and each serves etcdctl with the other's client certificate.
#[test]
fn etcd_members_of_both_etcd_cas_form_one_cluster_during_the_overlap() {
    let f = Fixture::new("t-rotate-etcd");
    let spec = PlanSpec::peers(&[("cp1", "10.0.0.10"), ("cp2", "10.0.0.11")], &[]);
    f.run_spec("c1", &spec);
    let etcd = |stage: &str| {
        format!("[renew]\nall = true\n\n[rotate]\nca = \"etcd\"\nstage = \"{stage}\"\n")
    };
    let c2 = f.work("c2-out");
    f.run_plan(
        &continuing(&f, "c2", &spec, "work/c1-out", &etcd("stage")),
        &c2,
    )
    .assert_ok("c2 stages the etcd CA");
    let c3 = f.work("c3-out");
    f.run_plan(
        &continuing(&f, "c3", &spec, "work/c2-out", &etcd("promote")),
        &c3,
    )
    .assert_ok("c3 promotes the etcd CA");
    let pki_of = |out: &Path, node: &str| node_dir(out, node).join("pki");
    let staged = certs(&pki_of(&c2, "cp1").join("etcd/ca.crt"));
    assert_eq!(staged.len(), 2);
    assert_eq!(
        certs(&pki_of(&c3, "cp2").join("etcd/ca.crt")),
        vec![staged[1].clone(), staged[0].clone()]
    );
    // The kubernetes CA is not rotated.
    assert_eq!(certs(&pki_of(&c3, "cp2").join("ca.crt")).len(), 1);
    let (servers, members) = start_etcd_cluster(
        f.path(),
        &[("cp1", pki_of(&c2, "cp1")), ("cp2", pki_of(&c3, "cp2"))],
    );
    // Each member, with the other stage's client certificate and CA bundle.
    for (member, out, node) in [(&members[0], &c3, "cp2"), (&members[1], &c2, "cp1")] {
        let p = pki_of(out, node);
        etcdctl(
            member.client_port,
            &p.join("etcd/ca.crt"),
            &p.join("etcd/healthcheck-client"),
            &["put", "k", node],
        )
        .expect_ok();
    }
    for s in &servers {
        assert!(
            !s.log_text().contains("rejected connection"),
            "{} rejected a connection:\n{}",
            s.name,
            s.log_text()
        );
    }
}

/// A stage cut off right after the token made the new key (abort at the
/// first key generation, as a power cut would) resumes on the same command:
/// the key is found by its label, signed for and stored, and the stage ends
/// as an uninterrupted one.
#[test]
fn a_stage_cut_off_after_the_new_key_resumes() {
    if !has_failpoints("rotation::a_stage_cut_off_after_the_new_key_resumes") {
        return;
    }
    let f = Fixture::new("t-rotate-resume");
    let spec = founding(&f.token().label);
    let c1 = f.run_spec("c1", &spec);
    let c2 = f.work("c2-out");
    let plan = continuing(&f, "c2", &spec, "work/c1-out", &rotate("stage"));
    let o = f.run_plan_env(&plan, &c2, &[("CEREMONY_FAILPOINT", "token-keygen@1")]);
    assert!(!o.ok(), "the run was cut off: {o}");
    assert!(!c2.exists());
    let o = f.run_plan(&plan, &c2);
    o.assert_ok("c2 resumes");
    // Nothing removed: the old CA's certificate object is not the one
    // being stored, and the new one was stored whole.
    assert!(!format!("{o}").contains("removed what it left"), "{o}");
    let staged = certs(&pki(&c2, "ca.crt"));
    assert_eq!(staged.len(), 2);
    assert_eq!(staged[0], certs(&pki(&c1, "ca.crt"))[0]);
    f.ceremony(&[std::ffi::OsStr::new("verify"), c2.as_os_str()])
        .expect_ok();
}

/// A stage cut off while the token made the new key, leaving its public
/// key alone: the rerun removes what the generation left under the new
/// label (the journal holds the intent) and makes the key again.
#[test]
fn a_half_made_new_key_is_removed_and_made_again_on_resume() {
    if !has_failpoints("rotation::a_half_made_new_key_is_removed_and_made_again_on_resume") {
        return;
    }
    let f = Fixture::new("t-rotate-halfpair");
    let spec = founding(&f.token().label);
    f.run_spec("c1", &spec);
    let c2 = f.work("c2-out");
    let tail = rotate("stage") + "new_label = \"kubernetes-ca-next\"\n";
    let plan = continuing(&f, "c2", &spec, "work/c1-out", &tail);
    let o = f.run_plan_env(&plan, &c2, &[("CEREMONY_FAILPOINT", "token-keygen@1")]);
    assert!(!o.ok(), "the run was cut off: {o}");
    f.pkcs11_tool_login(&[
        "--delete-object",
        "--type",
        "privkey",
        "--label",
        "kubernetes-ca-next",
    ])
    .assert_ok("pkcs11-tool --delete-object --type privkey");
    let o = f.run_plan(&plan, &c2);
    o.assert_ok("c2 resumes");
    assert!(
        o.stderr.contains(
            "the previous run was stopped while the token generated kubernetes key \"kubernetes-ca-next\": removed what it left"
        ),
        "{o}"
    );
    assert_eq!(certs(&pki(&c2, "ca.crt")).len(), 2);
}

/// A stage cut off right after the token stored the new CA's certificate,
/// before the log says so: the rerun keeps it (the one signed, beside its
/// key) and leaves the old CA's certificate alone.
#[test]
fn a_stage_cut_off_after_storing_the_new_certificate_keeps_the_old_one() {
    if !has_failpoints(
        "rotation::a_stage_cut_off_after_storing_the_new_certificate_keeps_the_old_one",
    ) {
        return;
    }
    let f = Fixture::new("t-rotate-store");
    let spec = founding(&f.token().label);
    let c1 = f.run_spec("c1", &spec);
    let c2 = f.work("c2-out");
    let plan = continuing(&f, "c2", &spec, "work/c1-out", &rotate("stage"));
    let o = f.run_plan_env(&plan, &c2, &[("CEREMONY_FAILPOINT", "token-store@1")]);
    assert!(!o.ok(), "the run was cut off: {o}");
    let o2 = f.run_plan(&plan, &c2);
    eprintln!("SECOND {o2}");
    o2.assert_ok("c2 resumes");
    let staged = certs(&pki(&c2, "ca.crt"));
    assert_eq!(staged.len(), 2);
    assert_eq!(
        staged[0],
        certs(&pki(&c1, "ca.crt"))[0],
        "the old CA's certificate kept"
    );
}
