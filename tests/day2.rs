//! Day 2 on a real SoftHSM2 token: a founding ceremony, then continuing
//! ceremonies on the same token that renew some nodes, add others and carry
//! the service-account pair, each chained to the one before; `audit verify`
//! of the chain; and the bad previous outputs a continuing run refuses
//! before it writes anything.

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

/// The founding plan: two control-plane nodes and one worker.
fn founding(token: &str) -> PlanSpec<'_> {
    let mut s = PlanSpec::new(token, KEYS);
    s.cluster().control_plane = CONTROL_PLANE;
    s.cluster().workers = &["worker1"];
    s
}

/// `spec` as a plan continuing `previous` (relative to the plan's
/// directory), with `renew` appended as the `[renew]` section's body.
fn continuing(
    f: &Fixture,
    name: &str,
    spec: &PlanSpec<'_>,
    previous: &str,
    renew: &str,
) -> PathBuf {
    let plan = f.write_spec(&format!("{name}.base.toml"), spec);
    let text = std::fs::read_to_string(&plan).unwrap().replacen(
        "[ceremony]\n",
        &format!("[ceremony]\nprevious = \"{previous}\"\n"),
        1,
    ) + &format!("\n[renew]\n{renew}\n");
    let p = plan.with_file_name(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn pki(out: &Path, node: &str, file: &str) -> PathBuf {
    node_dir(out, node).join("pki").join(file)
}

/// The first record of a sealed log, decrypted with stock age.
fn first_record(f: &Fixture, out: &Path) -> serde_json::Value {
    let text = f.age_decrypt(&out.join("audit.log.age"));
    json_lines(&text.lines().take(1).collect::<Vec<_>>()).remove(0)
}

/// The final hash `audit verify` reports for one log.
fn final_hash(f: &Fixture, out: &Path) -> String {
    let o = f.audit_verify(&out.join("audit.log.age"), &[]).expect_ok();
    o.stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("final hash: "))
        .unwrap()
        .to_string()
}

#[test]
fn a_continuing_ceremony_renews_cp1_adds_worker3_carries_the_sa_pair_and_chains() {
    let f = Fixture::new("t-day2-chain");
    let spec = founding(&f.token().label);
    let c1 = f.run_spec("c1", &spec);
    let c1_files = snapshot_tree(&c1);

    // c2: cp1 renewed, worker3 added; cp2 and worker1 untouched.
    let mut grown = spec.clone();
    grown.cluster().workers = &["worker1", "worker3"];
    let plan = continuing(&f, "c2", &grown, "work/c1-out", "nodes = [\"cp1\"]");
    let c2 = f.work("c2-out");
    let o = f.run_plan(&plan, &c2);
    o.assert_ok("the continuing ceremony");
    for line in [
        "Continues      ceremony \"integration-test\" in work/c1-out",
        "Renewed        cp1",
        "Added          worker3",
        "Untouched      cp2, worker1 (not written: their bundles stay those of the previous outputs)",
    ] {
        assert!(o.stderr.contains(line), "{line}\n{o}");
    }
    f.ceremony(&[OsStr("verify"), c2.as_os_str()]).expect_ok();
    let nodes: Vec<String> = std::fs::read_dir(c2.join("nodes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(nodes, ["cp1", "worker3"], "only what was renewed or added");
    // New certificates for cp1, under the same CAs.
    for file in ["apiserver.crt", "etcd/peer.crt", "etcd/server.crt"] {
        assert_ne!(
            read(&pki(&c1, "cp1", file)),
            read(&pki(&c2, "cp1", file)),
            "{file}"
        );
    }
    assert_eq!(read(&c1.join("root-ca.crt")), read(&c2.join("root-ca.crt")));
    openssl(&[
        "verify",
        "-CAfile",
        c1.join("root-ca.crt").to_str().unwrap(),
        "-untrusted",
        c1.join("cas/etcd-ca.crt").to_str().unwrap(),
        pki(&c2, "cp1", "etcd/peer.crt").to_str().unwrap(),
    ])
    .expect_ok();
    // The service-account pair, byte for byte.
    for file in ["sa.key", "sa.pub"] {
        assert_eq!(
            read(&pki(&c1, "cp1", file)),
            read(&pki(&c2, "cp1", file)),
            "{file}"
        );
    }
    // c1 is as it was.
    assert_eq!(snapshot_tree(&c1), c1_files);
    // c2's first record names c1.
    let first = first_record(&f, &c2);
    let previous = &first["event"]["previous"];
    assert_eq!(previous["final_hash"], final_hash(&f, &c1).as_str());
    assert_eq!(previous["output"], "work/c1-out");
    // The output it continues is one of the inputs the witnesses approved,
    // by the SHA-256 of its SHA256SUMS (which lists every file of it).
    let inputs = String::from_utf8(read(&c2.join("inputs.sha256"))).unwrap();
    assert!(
        inputs.contains(&format!(
            "\n{}  previous work/c1-out/SHA256SUMS\n",
            hex_sha256(&read(&c1.join("SHA256SUMS")))
        )),
        "{inputs}"
    );
    assert_eq!(
        first["event"]["inputs_sha256"],
        hex_sha256(inputs.as_bytes()).as_str()
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&c2.join("continuation.json"))).unwrap();
    assert_eq!(manifest["untouched"], serde_json::json!(["cp2", "worker1"]));
    assert_eq!(manifest["service_account_key"], "carried");

    // c3 continues c2 and renews every node it can.
    let plan = continuing(&f, "c3", &grown, "work/c2-out", "all = true");
    let c3 = f.work("c3-out");
    f.run_plan(&plan, &c3).assert_ok("the third ceremony");
    for file in ["sa.key", "sa.pub"] {
        assert_eq!(
            read(&pki(&c1, "cp1", file)),
            read(&pki(&c3, "cp1", file)),
            "{file}"
        );
    }

    // c4 rotates the pair: a new one, the previous public key beside it.
    let plan = continuing(
        &f,
        "c4",
        &grown,
        "work/c3-out",
        "all = true\nrotate_service_account_key = true",
    );
    let c4 = f.work("c4-out");
    f.run_plan(&plan, &c4).assert_ok("the rotating ceremony");
    f.ceremony(&[OsStr("verify"), c4.as_os_str()]).expect_ok();
    for node in ["cp1", "cp2"] {
        assert_ne!(
            read(&pki(&c1, "cp1", "sa.key")),
            read(&pki(&c4, node, "sa.key"))
        );
        assert_eq!(
            read(&pki(&c1, "cp1", "sa.pub")),
            read(&pki(&c4, node, "sa-previous.pub")),
            "{node}"
        );
        assert_eq!(
            read(&pki(&c4, "cp1", "sa.key")),
            read(&pki(&c4, node, "sa.key"))
        );
    }

    let log = |c: &Path| c.join("audit.log.age");
    let chain = |logs: &[&Path]| {
        let mut args = vec![OsStr("audit"), OsStr("verify")];
        let files: Vec<PathBuf> = logs.iter().map(|c| log(c)).collect();
        args.extend(files.iter().map(|p| p.as_os_str()));
        args.extend([OsStr("-i"), OsStr(AUDITOR)]);
        f.ceremony(&args)
    };
    let o = chain(&[&c1, &c2, &c3]);
    o.assert_ok("audit verify of the chain");
    assert!(
        o.stdout
            .contains("chain: 3 ceremonies, each sealed by root certificate"),
        "{o}"
    );
    // Without its middle ceremony, reordered, or repeated: named.
    let o = chain(&[&c1, &c3]);
    assert_eq!(o.code, Some(4), "{o}");
    let e = o.first_error().unwrap();
    assert!(
        e.contains(&format!("{} continues the ceremony", log(&c3).display()))
            && e.ends_with("a ceremony is missing between them, or another was put in its place"),
        "{e}"
    );
    let o = chain(&[&c2, &c1, &c3]);
    assert_eq!(o.code, Some(4), "{o}");
    assert!(
        o.first_error().unwrap().contains("is a founding ceremony"),
        "{o}"
    );
}

/// `OsStr::new`, shorter.
#[allow(non_snake_case)]
fn OsStr(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// A continuing run that must refuse before it writes: exit 2, one error
/// line starting with `want`, the token and every file as they were.
#[track_caller]
fn refused(f: &Fixture, plan: &Path, out: &Path, want: &str) {
    let token = f.token_snapshot();
    let files = f.files_snapshot();
    let o = f.run_plan(plan, out);
    assert_eq!(o.code, Some(2), "{o}");
    let errors: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{o}");
    assert!(errors[0].starts_with(want), "{}\nwanted {want}", errors[0]);
    assert!(o.hint().is_some(), "{o}");
    assert_eq!(f.token_snapshot(), token, "the token was touched");
    assert!(!out.exists(), "an output was written");
    // Nothing but the journal of the refused run beside its output.
    let after = f.files_snapshot();
    let new: Vec<&PathBuf> = after.keys().filter(|p| !files.contains_key(*p)).collect();
    assert!(
        new.iter().all(|p| p.to_string_lossy().contains(".journal")),
        "{new:?}"
    );
    for (p, n) in &files {
        assert_eq!(after.get(p), Some(n), "{} changed", p.display());
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let o = std::process::Command::new("cp")
        .args(["-a", from.to_str().unwrap(), to.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(o.success());
}

#[test]
fn bad_previous_outputs_are_refused_before_anything_is_written() {
    let f = Fixture::new("t-day2-bad");
    let spec = founding(&f.token().label);
    let c1 = f.run_spec("c1", &spec);

    // A file changed after the ceremony.
    let changed = f.work("changed");
    copy_tree(&c1, &changed);
    let crt = pki(&changed, "cp1", "apiserver.crt");
    let mut bytes = read(&crt);
    bytes.extend_from_slice(b"\n");
    std::fs::write(&crt, bytes).unwrap();
    let plan = continuing(&f, "changed", &spec, "work/changed", "nodes = [\"cp1\"]");
    refused(
        &f,
        &plan,
        &f.work("changed-next"),
        &format!("error: {}: its SHA-256 is ", crt.display()),
    );

    // SHA256SUMS itself changed (to match the changed file): the seal says otherwise.
    let sums = changed.join("SHA256SUMS");
    let text = std::fs::read_to_string(&sums).unwrap();
    let new_sha = {
        let o = f.tool("sha256sum", &[crt.to_str().unwrap()]).expect_ok();
        o.stdout.split_whitespace().next().unwrap().to_string()
    };
    let text: String = text
        .lines()
        .map(|l| {
            if l.ends_with("nodes/cp1/etc/kubernetes/pki/apiserver.crt") {
                format!("{new_sha}  nodes/cp1/etc/kubernetes/pki/apiserver.crt\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&sums, text).unwrap();
    refused(
        &f,
        &plan,
        &f.work("changed-next"),
        &format!(
            "error: {}: its SHA-256 is {}, but the sealed log records ",
            sums.display(),
            hex_sha256(&read(&sums))
        ),
    );

    // Renewing a node the previous ceremony never issued.
    let mut grown = spec.clone();
    grown.cluster().workers = &["worker1", "worker9"];
    let plan = continuing(&f, "never", &grown, "work/c1-out", "nodes = [\"worker9\"]");
    refused(
        &f,
        &plan,
        &f.work("never-next"),
        "error: renew.nodes names \"worker9\", which the previous ceremony never issued",
    );

    // An output sealed by another token's root.
    let other = Fixture::new("t-day2-other");
    let foreign = other.run_spec("foreign", &founding(&other.token().label));
    let plan = continuing(
        &f,
        "foreign",
        &spec,
        foreign.to_str().unwrap(),
        "nodes = [\"cp1\"]",
    );
    refused(
        &f,
        &plan,
        &f.work("foreign-next"),
        &format!(
            "error: {}: the previous ceremony was sealed by another root than the key \"root-ca\" on this token",
            foreign.join("root-ca.crt").display()
        ),
    );

    // The seal record swapped for another output's.
    let swapped = f.work("swapped");
    copy_tree(&c1, &swapped);
    std::fs::copy(
        foreign.join("audit.seal.json"),
        swapped.join("audit.seal.json"),
    )
    .unwrap();
    let plan = continuing(&f, "swapped", &spec, "work/swapped", "nodes = [\"cp1\"]");
    refused(
        &f,
        &plan,
        &f.work("swapped-next"),
        &format!(
            "error: {}: not sealed by the root in {}: the seal was made by root certificate ",
            swapped.join("audit.seal.json").display(),
            swapped.join("root-ca.crt").display()
        ),
    );
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn inspect_expiring_sees_the_newest_bundle_of_each_node_across_the_chain() {
    let f = Fixture::new("t-day2-expiring");
    let mut spec = founding(&f.token().label);
    spec.cluster().leaf_validity = Some("30d");
    let c1 = f.run_spec("c1", &spec);
    let inspect = |dirs: &[&Path], extra: &[&str]| {
        let mut args = vec![OsStr("inspect")];
        args.extend(dirs.iter().map(|d| d.as_os_str()));
        args.extend(extra.iter().map(|a| OsStr(a)));
        f.ceremony(&args)
    };
    let file = |out: &Path, node: &str, rel: &str| {
        format!("{}/nodes/{node}/etc/kubernetes/{rel}", out.display())
    };

    // Every leaf of the founding ceremony lasts 30 days: within 60, not within 10.
    let o = inspect(&[&c1], &["--expiring", "60d"]);
    assert_eq!(o.code, Some(6), "{o}");
    for (node, rel) in [
        ("cp1", "pki/apiserver.crt"),
        ("cp2", "pki/etcd/peer.crt"),
        ("worker1", "kubelet.conf"),
    ] {
        let line = format!("nodes/{node}/etc/kubernetes/{rel}: ");
        assert!(
            o.stdout.lines().any(|l| l.starts_with(&line)),
            "{line}\n{o}"
        );
    }
    assert!(!o.stdout.contains("root-ca.crt"), "the CAs last years: {o}");
    assert!(
        o.first_error()
            .unwrap()
            .ends_with("expire within 60d (listed above)"),
        "{o}"
    );
    let o = inspect(&[&c1], &["--expiring", "10d"]);
    o.assert_ok("nothing within 10 days");
    assert!(
        o.stdout
            .starts_with("OK: no certificate expires within 10d"),
        "{o}"
    );
    let o = inspect(&[&c1], &["--expiring", "60"]);
    assert_eq!(o.code, Some(2), "a window without a unit: {o}");

    // c2 renews cp1 for a year and adds worker3.
    let mut grown = spec.clone();
    grown.cluster().leaf_validity = Some("365d");
    grown.cluster().workers = &["worker1", "worker3"];
    let plan = continuing(&f, "c2", &grown, "work/c1-out", "nodes = [\"cp1\"]");
    let c2 = f.work("c2-out");
    f.run_plan(&plan, &c2).assert_ok("the continuing ceremony");

    let o = inspect(&[&c1, &c2], &["--expiring", "60d", "--json"]);
    assert_eq!(o.code, Some(6), "{o}");
    let report: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let due: Vec<(String, String)> = report["expiring"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["node"].as_str().unwrap_or("").to_string(),
                d["file"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let nodes: std::collections::BTreeSet<&str> = due.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        nodes.into_iter().collect::<Vec<_>>(),
        ["cp2", "worker1"],
        "not cp1 (renewed) nor worker3 (added): {due:#?}"
    );
    assert!(due.contains(&("cp2".into(), file(&c1, "cp2", "pki/apiserver.crt"))));
    assert!(due.contains(&("worker1".into(), file(&c1, "worker1", "kubelet.conf"))));
    assert!(
        due.iter()
            .all(|(_, f)| !f.starts_with(&c2.display().to_string()))
    );
    assert_eq!(report["window"], "60d");

    // The renewal plan: cp2 and worker1, from c1; a plan continuing c2
    // cannot name them in [renew] (c2 does not hold them) and issues them
    // again as added nodes.
    let o = inspect(&[&c1, &c2], &["--renewal-plan", "--expiring", "60d"]);
    assert_eq!(o.code, Some(6), "{o}");
    for want in [
        format!("previous = {:?}", c2.display().to_string()),
        format!("  bundle: {}/nodes/cp2/etc/kubernetes\n", c1.display()),
        "# cp2, worker1: bundles in outputs before it; this ceremony issues them again as added nodes\n".into(),
        "[renew]\nnodes = []\n".into(),
    ] {
        assert!(o.stdout.contains(&want), "{want}\n{o}");
    }
    let o = inspect(&[&c1, &c2], &["--renewal-plan", "--json"]);
    o.assert_ok("a renewal plan without --expiring is a report");
    let p: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(p["added_again"], serde_json::json!(["cp2", "worker1"]));
    assert_eq!(p["lead"], "30d");
    // Its [renew] section, as printed, makes a plan that runs and leaves
    // nothing expiring.
    let snippet = p["snippet"].as_str().unwrap();
    let body = snippet.split_once("[renew]\n").unwrap().1;
    let plan = continuing(&f, "c3", &grown, "work/c2-out", body);
    let c3 = f.work("c3-out");
    let o = f.run_plan(&plan, &c3);
    o.assert_ok("the ceremony of the renewal plan");
    assert!(o.stderr.contains("Added          cp2, worker1"), "{o}");
    inspect(&[&c1, &c2, &c3], &["--expiring", "60d"]).assert_ok("all renewed");

    // c2 alone cannot see cp2 and worker1; the outputs out of order are no chain.
    let o = inspect(&[&c2], &["--expiring", "60d"]);
    assert_eq!(o.code, Some(2), "{o}");
    assert_eq!(
        o.first_error().unwrap(),
        format!(
            "error: {} left cp2, worker1 untouched: their bundles are in the outputs before it, which were not given",
            c2.display()
        )
    );
    let o = inspect(&[&c2, &c1], &["--expiring", "60d"]);
    assert_eq!(o.code, Some(2), "{o}");
    assert!(
        o.first_error().unwrap().starts_with(&format!(
            "error: {} does not continue {}: ",
            c1.display(),
            c2.display()
        )),
        "{o}"
    );
    // Without --expiring, c2 alone is still tabled, with a note.
    let o = inspect(&[&c2], &[]);
    o.assert_ok("inspect of one continuing output");
    assert!(o.stderr.contains("note: "), "{o}");
}
