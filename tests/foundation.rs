//! The foundation end to end: full ceremonies on a real SoftHSM2 token for
//! every key type, each certificate checked by OpenSSL and by an
//! independent parser (x509-parser, ring signatures; `common::cas`), and
//! resume after a clean run. (Resume after a crash: tests/crash.rs.)

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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;

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
        if let Node::File { bytes, .. } = n {
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
    let (f, plan, _out, _) = full_run(
        "t-found-p256",
        ["ecdsa-p256", "ecdsa-p256", "ecdsa-p256", "ecdsa-p384"],
    );
    // `token probe` after the ceremony: the plan's labels are used, the
    // signing paths are those `run` took; without a plan, no PIN is needed.
    let plan_s = plan.to_str().unwrap();
    let pin = f.pin_file();
    let o = f.ceremony(&[
        "token",
        "probe",
        "--plan",
        plan_s,
        "--pin-file",
        pin.to_str().unwrap(),
    ]);
    o.assert_ok("token probe --plan");
    for want in [
        "  ecdsa-p256  CKM_ECDSA over a host SHA-256",
        "  rsa-4096    CKM_SHA256_RSA_PKCS",
        "  CKM_AES_KEY_WRAP_PAD     yes",
        "  chain head      \"ceremony-chain-head\": used (data): the final hash of the token's latest ceremony",
        "  root CA         \"root-ca\": used (certificate, private-key, public-key): a founding ceremony",
    ] {
        assert!(o.stdout.contains(want), "{want:?} in {o}");
    }
    let uri = format!("pkcs11:token={}", f.token().label);
    let o = f.ceremony(&["token", "probe", "--uri", &uri, "--module", SOFTHSM_MODULE]);
    o.assert_ok("token probe --uri");
    assert!(
        o.stdout.contains(&format!(";serial={}", f.token().serial)),
        "{o}"
    );
    assert!(o.stdout.contains("Labels: give --plan"), "{o}");
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
    let ca_files = |out: &Path| -> BTreeMap<PathBuf, Node> {
        let all = snapshot_tree(out);
        output_files()
            .into_iter()
            .map(|f| (PathBuf::from(&f), all[Path::new(&f)].clone()))
            .collect()
    };
    let (t1, t2) = (ca_files(&out1), ca_files(&out2));
    assert!(t1 == t2, "CA files differ:\n{}", tree_diff(&t1, &t2));
    // Nothing changed on the token but its chain head, which now names the
    // second ceremony: one object file replaced by another.
    let after = f.token_snapshot();
    let lines = |s: &TokenSnapshot| -> Vec<(String, Vec<String>)> {
        s.lists
            .iter()
            .map(|(serial, l)| {
                let l = l.iter().filter(|x| !x.contains(CHAIN_HEAD)).cloned();
                (serial.clone(), l.collect())
            })
            .collect()
    };
    assert_eq!(
        lines(&after),
        lines(&before),
        "the token changed on a resumed run"
    );
    let only = |a: &TokenSnapshot, b: &TokenSnapshot| {
        a.files
            .iter()
            .filter(|(p, n)| b.files.get(*p) != Some(*n))
            .count()
    };
    assert_eq!(
        (only(&before, &after), only(&after, &before)),
        (1, 1),
        "the token changed on a resumed run, beyond its chain head"
    );
    check_twelve_objects(&f);
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
            && l.contains("11 certificates (11 in kubeconfigs), 33 files")),
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

/// What the witnesses approve covers everything signed: the inputs SHA-256
/// `check` prints covers the names file too (its workers get certificates),
/// the preflight shows the same value, OUT keeps the list of inputs as
/// inputs.sha256 (listed in SHA256SUMS, `sha256sum -c` clean), and the
/// transcript states the digest.
#[test]
fn the_inputs_digest_is_checked_shown_written_and_transcribed() {
    let f = Fixture::new("t-found-inputs");
    let plan = f.write_plan("plan.toml", ["ecdsa-p256"; 4]);
    let text = std::fs::read_to_string(&plan).expect("the plan");
    assert!(text.contains("names = [\"worker1\"]"), "{text}");
    let text = text.replace("names = [\"worker1\"]", "names_file = \"workers.txt\"");
    std::fs::write(&plan, &text).expect("rewrite the plan");
    let workers = b"worker1\nworker2\n";
    write_file(&f.path().join("workers.txt"), workers, 0o644);
    let sha = |b: &[u8]| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b))
    };
    let manifest = format!(
        "{}  plan plan.toml\n{}  names workers.txt\n",
        sha(text.as_bytes()),
        sha(workers)
    );
    let digest = sha(manifest.as_bytes());

    let plan_s = plan.to_string_lossy().into_owned();
    let check = f.ceremony(&["check", &plan_s]).expect_ok();
    assert!(
        check
            .stdout
            .contains(&format!("\n  inputs SHA-256: {digest}\n")),
        "{check}"
    );
    for line in manifest.lines() {
        assert!(check.stdout.contains(&format!("\n  {line}\n")), "{check}");
    }

    let out = f.work("out");
    let run = f.run_plan(&plan, &out);
    run.assert_ok("ceremony run");
    assert!(
        run.stderr
            .contains(&format!("\nInputs         SHA-256 {digest}\n")),
        "{run}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("inputs.sha256")).expect("OUT/inputs.sha256"),
        manifest
    );
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).expect("SHA256SUMS");
    assert!(
        sums.contains(&format!("{}  inputs.sha256\n", digest)),
        "{sums}"
    );
    let mut c = f.command("sha256sum");
    c.args(["--strict", "-c", "--quiet", "SHA256SUMS"])
        .current_dir(&out);
    f.run(c, CHILD_TIMEOUT).assert_ok("sha256sum -c SHA256SUMS");
    let grouped: Vec<String> = digest
        .to_uppercase()
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let transcript = std::fs::read_to_string(out.join("transcript.md")).expect("transcript");
    assert!(
        transcript.contains(&format!(
            "- Inputs SHA-256 (the plan and every file it names, listed in inputs.sha256): `{}`\n",
            grouped.join(" ")
        )),
        "{transcript}"
    );
    // The worker from the names file has its bundle, and verify accepts OUT.
    assert!(
        out.join("nodes/worker2/etc/kubernetes/kubelet.conf")
            .is_file()
    );
    let out_s = out.to_string_lossy().into_owned();
    f.ceremony(&["verify", &out_s, "--plan", &plan_s])
        .assert_ok("ceremony verify");
}
