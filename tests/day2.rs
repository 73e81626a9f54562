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

/// `ceremony audit verify` of these outputs' sealed logs, oldest first.
fn audit_verify_chain(f: &Fixture, outs: &[&Path]) -> Output {
    let logs: Vec<PathBuf> = outs.iter().map(|c| c.join("audit.log.age")).collect();
    let mut args = vec![OsStr("audit"), OsStr("verify")];
    args.extend(logs.iter().map(|p| p.as_os_str()));
    args.extend([OsStr("-i"), OsStr(AUDITOR)]);
    f.ceremony(&args)
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
    // A token signed with c1's key (EC here: ES256) verifies with c2's sa.pub.
    assert_sa_token_verifies(
        &read(&pki(&c1, "cp1", "sa.key")),
        &read(&pki(&c2, "cp1", "sa.pub")),
        &another_key_like(&read(&pki(&c1, "cp1", "sa.key"))),
    );
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
    // During the overlap: tokens of the old key verify with sa-previous.pub
    // (not sa.pub), new ones with sa.pub (not sa-previous.pub).
    let (old_key, new_key) = (
        read(&pki(&c1, "cp1", "sa.key")),
        read(&pki(&c4, "cp1", "sa.key")),
    );
    assert_sa_token_verifies(
        &old_key,
        &read(&pki(&c4, "cp1", "sa-previous.pub")),
        &new_key,
    );
    assert_sa_token_verifies(&new_key, &read(&pki(&c4, "cp1", "sa.pub")), &old_key);

    let log = |c: &Path| c.join("audit.log.age");
    let chain = |outs: &[&Path]| audit_verify_chain(&f, outs);
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
        "error: renew.nodes names \"worker9\", which no ceremony of the chain issued (no bundle in the previous output, not untouched there)",
    );

    // A continuation.json the seal does not cover: a forged list of
    // untouched nodes is not the chain's.
    let forged = f.work("forged");
    copy_tree(&c1, &forged);
    std::fs::write(
        forged.join("continuation.json"),
        b"{\"untouched\":[\"worker9\"]}\n",
    )
    .unwrap();
    let plan = continuing(&f, "forged", &grown, "work/forged", "nodes = [\"worker9\"]");
    refused(
        &f,
        &plan,
        &f.work("forged-next"),
        &format!(
            "error: {}: not listed in {}: the seal does not cover it",
            forged.join("continuation.json").display(),
            forged.join("SHA256SUMS").display()
        ),
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

/// The names in a JSON array of strings, sorted.
fn names(v: &serde_json::Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

/// A node left untouched by a continuing ceremony is still the chain's: the
/// ceremony after it renews it by name (not "never issued", not added
/// again), and each continuation.json carries the knowledge forward. The
/// service-account pair comes from the previous output's control-plane
/// bundle; an output without one cannot give it, and is refused.
#[test]
fn a_node_left_untouched_is_renewed_by_name_by_the_ceremony_after() {
    let f = Fixture::new("t-day2-untouched");
    let mut spec = founding(&f.token().label);
    spec.cluster().leaf_validity = Some("30d");
    let c1 = f.run_spec("c1", &spec);
    let mut later = spec.clone();
    later.cluster().leaf_validity = Some("365d");

    // c2 renews cp1 only; c3 continues c2 and renews cp2, untouched in c2.
    let plan = continuing(&f, "c2", &later, "work/c1-out", "nodes = [\"cp1\"]");
    let c2 = f.work("c2-out");
    f.run_plan(&plan, &c2).assert_ok("c2 renews cp1");
    let plan = continuing(&f, "c3", &later, "work/c2-out", "nodes = [\"cp2\"]");
    let c3 = f.work("c3-out");
    let o = f.run_plan(&plan, &c3);
    o.assert_ok("c3 renews cp2, which c2 left untouched");
    for line in [
        "Renewed        cp2",
        "Added          none",
        "Untouched      cp1, worker1 (",
    ] {
        assert!(o.stderr.contains(line), "{line}\n{o}");
    }
    let nodes: Vec<String> = std::fs::read_dir(c3.join("nodes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(nodes, ["cp2"], "worker1 is not issued again");
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&c3.join("continuation.json"))).unwrap();
    assert_eq!(manifest["renewed"], serde_json::json!(["cp2"]));
    assert_eq!(manifest["added"], serde_json::json!([]));
    assert_eq!(manifest["untouched"], serde_json::json!(["cp1", "worker1"]));
    assert_eq!(manifest["service_account_key"], "carried");
    for file in ["apiserver.crt", "etcd/peer.crt"] {
        assert_ne!(
            read(&pki(&c1, "cp2", file)),
            read(&pki(&c3, "cp2", file)),
            "{file}"
        );
    }
    for file in ["sa.key", "sa.pub"] {
        assert_eq!(
            read(&pki(&c1, "cp2", file)),
            read(&pki(&c3, "cp2", file)),
            "{file}"
        );
    }
    f.ceremony(&[OsStr("verify"), c3.as_os_str()]).expect_ok();
    audit_verify_chain(&f, &[&c1, &c2, &c3]).assert_ok("audit verify of c1 c2 c3");

    // inspect: cp1 from c2, cp2 from c3, worker1 still c1's (30 days).
    let inspect = |extra: &[&str]| {
        let mut args = vec![OsStr("inspect")];
        args.extend([&c1, &c2, &c3].iter().map(|d| d.as_os_str()));
        args.extend(extra.iter().map(|a| OsStr(a)));
        f.ceremony(&args)
    };
    let o = inspect(&["--expiring", "60d", "--json"]);
    assert_eq!(o.code, Some(6), "{o}");
    let report: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let due = report["expiring"].as_array().unwrap();
    assert!(!due.is_empty());
    let worker1 = format!("{}/nodes/worker1/", c1.display());
    for d in due {
        assert_eq!(d["node"], "worker1", "{d}");
        assert!(d["file"].as_str().unwrap().starts_with(&worker1), "{d}");
    }
    let o = inspect(&["--renewal-plan", "--json"]);
    o.assert_ok("the renewal plan");
    let p: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(names(&p["renew"]), ["worker1"]);
    let bundles: std::collections::BTreeMap<String, String> = p["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().to_string(),
                n["bundle"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (node, out) in [("cp1", &c2), ("cp2", &c3), ("worker1", &c1)] {
        assert_eq!(
            bundles[node],
            format!("{}/nodes/{node}/etc/kubernetes", out.display())
        );
    }

    // The transcript's final hash is the sealed one: verify says so of a changed one.
    let changed = f.work("c3-changed");
    copy_tree(&c3, &changed);
    let transcript = changed.join("transcript.md");
    let text = std::fs::read_to_string(&transcript).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("- Audit log final hash: `"))
        .unwrap();
    let forged = format!("- Audit log final hash: `0000{}", &line[29..]);
    std::fs::write(&transcript, text.replace(line, &forged)).unwrap();
    let o = f.ceremony(&[OsStr("verify"), changed.as_os_str()]);
    assert_eq!(o.code, Some(4), "{o}");
    assert!(
        o.stdout.contains(
            "transcript.md: audit log final hash: is not the final hash sealed in audit.seal.json"
        ),
        "{o}"
    );

    // c4 renews worker1 alone: it holds no control-plane bundle, so the
    // ceremony after it has no pair to carry into cp1's.
    let plan = continuing(&f, "c4", &later, "work/c3-out", "nodes = [\"worker1\"]");
    let c4 = f.work("c4-out");
    f.run_plan(&plan, &c4).assert_ok("c4 renews worker1");
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&c4.join("continuation.json"))).unwrap();
    assert_eq!(names(&manifest["untouched"]), ["cp1", "cp2"]);
    let plan = continuing(&f, "c5", &later, "work/c4-out", "nodes = [\"cp1\"]");
    refused(
        &f,
        &plan,
        &f.work("c5-out"),
        &format!(
            "error: {}: holds no control-plane bundle, so not the cluster's service-account pair (pki/sa.key, pki/sa.pub) that cp1 must carry",
            c4.display()
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

    // The renewal plan: cp2 and worker1, from c1; c2 left them untouched,
    // so a plan continuing c2 renews them by name.
    let o = inspect(&[&c1, &c2], &["--renewal-plan", "--expiring", "60d"]);
    assert_eq!(o.code, Some(6), "{o}");
    for want in [
        format!("previous = {:?}", c2.display().to_string()),
        format!("  bundle: {}/nodes/cp2/etc/kubernetes\n", c1.display()),
        "[renew]\nnodes = [".into(),
    ] {
        assert!(o.stdout.contains(&want), "{want}\n{o}");
    }
    assert!(!o.stdout.contains("added"), "{o}");
    let o = inspect(&[&c1, &c2], &["--renewal-plan", "--json"]);
    o.assert_ok("a renewal plan without --expiring is a report");
    let p: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let mut renew: Vec<&str> = p["renew"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    renew.sort();
    assert_eq!(renew, ["cp2", "worker1"]);
    assert!(p.get("added_again").is_none(), "{p}");
    assert_eq!(p["lead"], "30d");
    // Its [renew] section, as printed, makes a plan that runs and leaves
    // nothing expiring.
    let snippet = p["snippet"].as_str().unwrap();
    let body = snippet.split_once("[renew]\n").unwrap().1;
    let plan = continuing(&f, "c3", &grown, "work/c2-out", body);
    let c3 = f.work("c3-out");
    let o = f.run_plan(&plan, &c3);
    o.assert_ok("the ceremony of the renewal plan");
    for line in [
        "Renewed        cp2, worker1",
        "Added          none",
        "Untouched      cp1, worker3 (",
    ] {
        assert!(o.stderr.contains(line), "{line}\n{o}");
    }
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

// ---------------------------------------------------------------------------
// Real peers after a renewal: etcd, and a service-account token

/// A service-account token as kube-apiserver issues one (a compact JWS),
/// signed by hand with the `sa.key` PEM: RS256 for an RSA key (PKCS#1),
/// ES256 for a P-256 key (SEC1), the algorithm kube-apiserver picks for
/// each key type.
fn sign_sa_token(sa_key: &[u8], claims: &serde_json::Value) -> String {
    use base64::Engine;
    use signature::{SignatureEncoding, Signer};
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let pem = std::str::from_utf8(sa_key).unwrap();
    let alg = if pem.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
        "RS256"
    } else if pem.starts_with("-----BEGIN EC PRIVATE KEY-----") {
        "ES256"
    } else {
        panic!("sa.key: neither PKCS#1 RSA nor SEC1 EC:\n{pem}")
    };
    let header = serde_json::json!({"alg": alg, "kid": "sa", "typ": "JWT"});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = if alg == "RS256" {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        let key = rsa::PrivateKey::from_pkcs1_pem(pem).unwrap();
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key);
        signer.sign(input.as_bytes()).to_vec()
    } else {
        let key = p256::SecretKey::from_sec1_pem(pem).unwrap();
        let signer = p256::ecdsa::SigningKey::from(key);
        let s: p256::ecdsa::Signature = signer.sign(input.as_bytes());
        // JWS ES256: r || s, 64 bytes (RFC 7518 §3.4), not DER.
        s.to_bytes().to_vec()
    };
    format!("{input}.{}", b64(&sig))
}

/// Verifies a compact JWS with the `sa.pub` PEM (SubjectPublicKeyInfo, as
/// kube-apiserver's --service-account-key-file reads it): the header's
/// algorithm must be the key's, and the signature must verify. The claims
/// on success.
fn verify_sa_token(token: &str, sa_pub: &[u8]) -> Result<serde_json::Value, String> {
    use base64::Engine;
    use signature::Verifier;
    let d = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|e| e.to_string())
    };
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, sig] = parts[..] else {
        return Err(format!("not a compact JWS: {token}"));
    };
    let input = format!("{header}.{claims}");
    let header: serde_json::Value = serde_json::from_slice(&d(header)?).unwrap();
    let sig = d(sig)?;
    let pem = std::str::from_utf8(sa_pub).unwrap();
    use spki::DecodePublicKey;
    let verified = match header["alg"].as_str() {
        Some("RS256") => {
            let key = rsa::PublicKey::from_public_key_pem(pem).map_err(|e| e.to_string())?;
            let sig = rsa::pkcs1v15::Signature::try_from(&sig[..]).map_err(|e| e.to_string())?;
            rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key).verify(input.as_bytes(), &sig)
        }
        Some("ES256") => {
            let key = p256::PublicKey::from_public_key_pem(pem).map_err(|e| e.to_string())?;
            let sig = p256::ecdsa::Signature::from_slice(&sig).map_err(|e| e.to_string())?;
            p256::ecdsa::VerifyingKey::from(key).verify(input.as_bytes(), &sig)
        }
        other => return Err(format!("unexpected alg {other:?}")),
    };
    verified.map_err(|e| format!("signature: {e}"))?;
    Ok(serde_json::from_slice(&d(claims)?).unwrap())
}

/// A new key of `sa_key`'s type and PEM form (by openssl): another
/// cluster's service-account key.
fn another_key_like(sa_key: &[u8]) -> Vec<u8> {
    let o = if sa_key.starts_with(b"-----BEGIN RSA PRIVATE KEY-----") {
        openssl(&["genrsa", "-traditional", "2048"])
    } else {
        openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout"])
    };
    o.expect_ok().stdout.into_bytes()
}

/// The claims of a token kube-apiserver issues for a pod's service account.
fn sa_claims(sub: &str) -> serde_json::Value {
    serde_json::json!({
        "aud": ["https://kubernetes.default.svc.cluster.local"],
        "exp": 4_102_444_800u64,
        "iat": 1_700_000_000u64,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": sub,
    })
}

/// A token signed with `sa_key` verifies against `sa_pub`; the same token
/// with its claims changed, or signed with `other_key`, does not (so the
/// check can fail).
#[track_caller]
fn assert_sa_token_verifies(sa_key: &[u8], sa_pub: &[u8], other_key: &[u8]) {
    let claims = sa_claims("system:serviceaccount:kube-system:coredns");
    let token = sign_sa_token(sa_key, &claims);
    assert_eq!(verify_sa_token(&token, sa_pub), Ok(claims));
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let forged = sign_sa_token(sa_key, &sa_claims("system:serviceaccount:default:admin"));
    parts[1] = forged.split('.').nth(1).unwrap().to_string();
    assert!(
        verify_sa_token(&parts.join("."), sa_pub).is_err(),
        "changed claims must not verify"
    );
    let other = sign_sa_token(other_key, &sa_claims("system:serviceaccount:x:y"));
    assert!(
        verify_sa_token(&other, sa_pub).is_err(),
        "a token of another key must not verify"
    );
}

/// After c1 → c2 renewing cp1 only, the cluster keeps working across the
/// renewal: an etcd member started with cp1's renewed server and peer
/// certificates (c2) forms a cluster with one started from cp2's original
/// bundle (c1), both trusting the unchanged etcd/ca.crt, and serves cp1's
/// renewed clients; and a service-account token signed with c1's `sa.key`
/// (RSA here: RS256) verifies against c2's `sa.pub`.
#[test]
fn after_renewing_cp1_etcd_forms_a_cluster_with_cp2_and_old_sa_tokens_verify() {
    let f = Fixture::new("t-day2-peers");
    let mut spec = founding(&f.token().label);
    spec.cluster().service_account_key = Some("rsa-2048");
    let c1 = f.run_spec("c1", &spec);
    let plan = continuing(&f, "c2", &spec, "work/c1-out", "nodes = [\"cp1\"]");
    let c2 = f.work("c2-out");
    f.run_plan(&plan, &c2).assert_ok("c2 renews cp1");
    assert!(!node_dir(&c2, "cp2").exists(), "cp2 is untouched in c2");
    assert_eq!(
        read(&pki(&c1, "cp2", "etcd/ca.crt")),
        read(&pki(&c2, "cp1", "etcd/ca.crt"))
    );
    for file in [
        "etcd/server.crt",
        "etcd/server.key",
        "etcd/peer.crt",
        "etcd/peer.key",
    ] {
        assert_ne!(
            read(&pki(&c1, "cp1", file)),
            read(&pki(&c2, "cp1", file)),
            "{file} renewed"
        );
    }

    // (a) etcd: cp1 renewed, cp2 original.
    let cp1 = node_dir(&c2, "cp1").join("pki");
    let cp2 = node_dir(&c1, "cp2").join("pki");
    let (servers, members) =
        start_etcd_cluster(f.path(), &[("cp1", cp1.clone()), ("cp2", cp2.clone())]);
    let list = etcdctl(
        members[0].client_port,
        &cp1.join("etcd/ca.crt"),
        &cp1.join("etcd/healthcheck-client"),
        &["member", "list"],
    )
    .expect_ok();
    let started = list
        .stdout
        .lines()
        .filter(|l| l.contains(", started, "))
        .count();
    assert_eq!(started, 2, "two members started: {list}");
    for m in &members {
        assert!(
            list.stdout.contains(&format!(", {}, ", m.name)),
            "member {} missing: {list}",
            m.name
        );
    }
    // Written through cp1 with its renewed client certificate, read
    // (linearizable: a quorum read over the peer link) through cp2 with
    // its original one.
    etcdctl(
        members[0].client_port,
        &cp1.join("etcd/ca.crt"),
        &cp1.join("apiserver-etcd-client"),
        &["put", "/registry/after-renewal", "yes"],
    )
    .expect_ok();
    for (m, pki) in [(&members[0], &cp1), (&members[1], &cp2)] {
        let get = etcdctl(
            m.client_port,
            &pki.join("etcd/ca.crt"),
            &pki.join("apiserver-etcd-client"),
            &["get", "/registry/after-renewal", "--print-value-only"],
        )
        .expect_ok();
        assert_eq!(get.stdout.trim(), "yes", "through {}: {get}", m.name);
    }
    for srv in &servers {
        assert!(
            !srv.log_text().contains("rejected connection"),
            "{} rejected a connection:\n{}",
            srv.name,
            srv.log_text()
        );
    }
    drop(servers);

    // (b) A token the cluster issued before the renewal still verifies.
    assert_sa_token_verifies(
        &read(&pki(&c1, "cp1", "sa.key")),
        &read(&pki(&c2, "cp1", "sa.pub")),
        &another_key_like(&read(&pki(&c1, "cp1", "sa.key"))),
    );
}

// ---------------------------------------------------------------------------
// CSR mode: nodes renew with fresh CSRs of their own

/// The real output of `kubeadm certs generate-csr` for cp1 (kubeadm 1.24).
const GENERATE_CSR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/kubeadm/generate-csr"
);

/// The CSR-mode plan of that fixture (as tests/csr.rs): cp1 and worker w1,
/// RSA-2048 node keys, an EC service-account pair; CSRs under `csr_dir`.
fn csr_spec<'a>(token: &'a str, csr_dir: &'a str) -> PlanSpec<'a> {
    let mut spec = PlanSpec::new(token, KEYS);
    let base = spec.cluster().clone();
    *spec.cluster() = ClusterSpec {
        version: "v1.24",
        endpoint: Some("127.0.0.1:6443"),
        leaf_key: "rsa-2048",
        service_account_key: Some("ecdsa-p256"),
        apiserver_extra_sans: &[],
        control_plane: &[("cp1", "10.0.0.10")],
        workers: &["w1"],
        csr_dir: Some(csr_dir),
        ..base
    };
    spec
}

/// cp1's generate-csr tree under `<dir>/cp1`.
fn cp1_tree(f: &Fixture, dir: &str) {
    copy_tree_into(
        &Path::new(GENERATE_CSR).join("etc"),
        &f.path().join(dir).join("cp1/etc"),
    );
}

fn copy_tree_into(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_tree_into(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A fresh kubelet CSR for w1 under `<dir>/w1` (its key kept outside the
/// tree, as on the node); returns the CSR's public key (PEM).
fn w1_csr(f: &Fixture, dir: &str) -> String {
    let k = f.path().join(dir).join("w1/etc/kubernetes");
    std::fs::create_dir_all(&k).unwrap();
    let csr = k.join("kubelet.conf.csr");
    let key = f.path().join(format!("{dir}-w1.key"));
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-subj",
        "/O=system:nodes/CN=system:node:w1",
        "-out",
        csr.to_str().unwrap(),
    ])
    .expect_ok();
    openssl(&["req", "-pubkey", "-noout", "-in", csr.to_str().unwrap()])
        .expect_ok()
        .stdout
}

/// The public key (PEM) of the client certificate in a kubeconfig.
fn kubeconfig_pubkey(f: &Fixture, conf: &Path) -> String {
    let kc = kubeconfig_json(conf, f.path());
    let cert = f.path().join("client.crt");
    std::fs::write(
        &cert,
        kubeconfig_data(&kc, "users", "client-certificate-data"),
    )
    .unwrap();
    openssl(&["x509", "-pubkey", "-noout", "-in", cert.to_str().unwrap()])
        .expect_ok()
        .stdout
}

/// CSR mode continues too: c2 renews cp1 from new generate-csr output
/// (only cp1's tree in its csr_dir: w1, untouched, brings nothing) and
/// carries the pair c1 made; c3 renews w1 from a fresh CSR, ignoring a tree
/// of cp1, which it leaves untouched. A node bringing a pair other than the
/// cluster's is refused before anything is written.
#[test]
fn csr_mode_nodes_renew_with_fresh_csrs_and_carry_the_sa_pair() {
    let f = Fixture::new("t-day2-csr");
    let label = f.token().label.clone();
    cp1_tree(&f, "csrs");
    let w1_first = w1_csr(&f, "csrs");
    let c1 = f.run_spec("c1", &csr_spec(&label, "csrs"));
    assert_eq!(
        kubeconfig_pubkey(&f, &node_dir(&c1, "w1").join("kubelet.conf")),
        w1_first
    );

    // c2: cp1 renewed from its new CSRs; w1 brings none.
    cp1_tree(&f, "csrs2");
    let plan = continuing(
        &f,
        "c2",
        &csr_spec(&label, "csrs2"),
        "work/c1-out",
        "nodes = [\"cp1\"]",
    );
    // `check` reads the CSRs of the nodes the ceremony writes only.
    let o = f.ceremony(&[OsStr("check"), plan.as_os_str()]);
    o.assert_ok("check of the CSR-mode continuing plan");
    assert!(
        o.stdout.contains("=> 11 CSRs of 1 nodes would be signed."),
        "{o}"
    );
    let c2 = f.work("c2-out");
    let o = f.run_plan(&plan, &c2);
    o.assert_ok("c2 renews cp1 in CSR mode");
    for line in ["Renewed        cp1", "Untouched      w1 ("] {
        assert!(o.stderr.contains(line), "{line}\n{o}");
    }
    f.ceremony(&[OsStr("verify"), c2.as_os_str()]).expect_ok();
    let nodes: Vec<String> = std::fs::read_dir(c2.join("nodes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(nodes, ["cp1"]);
    assert_ne!(
        read(&pki(&c1, "cp1", "apiserver.crt")),
        read(&pki(&c2, "cp1", "apiserver.crt"))
    );
    for file in ["sa.key", "sa.pub"] {
        assert_eq!(
            read(&pki(&c1, "cp1", file)),
            read(&pki(&c2, "cp1", file)),
            "{file}"
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&c2.join("continuation.json"))).unwrap();
    assert_eq!(manifest["service_account_key"], "carried");

    // c3: w1 renewed from a fresh CSR; a tree of cp1 is ignored.
    cp1_tree(&f, "csrs3");
    let w1_fresh = w1_csr(&f, "csrs3");
    assert_ne!(w1_fresh, w1_first);
    let plan = continuing(
        &f,
        "c3",
        &csr_spec(&label, "csrs3"),
        "work/c2-out",
        "nodes = [\"w1\"]",
    );
    let c3 = f.work("c3-out");
    let o = f.run_plan(&plan, &c3);
    o.assert_ok("c3 renews w1 in CSR mode");
    assert!(
        o.stderr.contains(&format!(
            "{} is a node this ceremony leaves untouched (not in [renew]); it is ignored",
            f.path().join("csrs3/cp1").display()
        )),
        "{o}"
    );
    let nodes: Vec<String> = std::fs::read_dir(c3.join("nodes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(nodes, ["w1"]);
    assert_eq!(
        kubeconfig_pubkey(&f, &node_dir(&c3, "w1").join("kubelet.conf")),
        w1_fresh,
        "w1's certificate is for its new key"
    );
    f.ceremony(&[OsStr("verify"), c3.as_os_str()]).expect_ok();
    audit_verify_chain(&f, &[&c1, &c2, &c3]).assert_ok("audit verify of c1 c2 c3");

    // cp1 bringing a service-account pair of its own: refused (c2 holds
    // the pair; c3, which wrote a worker only, does not).
    cp1_tree(&f, "csrs-bad");
    let sa_dir = f.path().join("csrs-bad/cp1/etc/kubernetes/pki");
    let key = openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout"])
        .expect_ok()
        .stdout;
    std::fs::write(sa_dir.join("sa.key"), &key).unwrap();
    let o = openssl(&[
        "ec",
        "-in",
        sa_dir.join("sa.key").to_str().unwrap(),
        "-pubout",
    ])
    .expect_ok();
    std::fs::write(sa_dir.join("sa.pub"), o.stdout).unwrap();
    let plan = continuing(
        &f,
        "bad",
        &csr_spec(&label, "csrs-bad"),
        "work/c2-out",
        "nodes = [\"cp1\"]",
    );
    refused(
        &f,
        &plan,
        &f.work("bad-out"),
        &format!(
            "error: {}: not the cluster's service-account key, which {} carries (",
            sa_dir.join("sa.pub").display(),
            f.path().join("work/c2-out").display()
        ),
    );
}

/// The token keeps the head of its chain: after c1 → c2, a second
/// continuation of c1 is a fork, refused before anything is written; with
/// `fork = true` it runs (and says so in its first record), `audit verify`
/// passes on its own branch and names the fork in the whole chain.
#[test]
fn a_second_continuation_of_the_same_ceremony_is_a_fork_refused_unless_the_plan_says_so() {
    let f = Fixture::new("t-day2-fork");
    let spec = founding(&f.token().label);
    let c1 = f.run_spec("c1", &spec);
    let h1 = final_hash(&f, &c1);
    let plan = continuing(&f, "c2", &spec, "work/c1-out", "nodes = [\"cp1\"]");
    let c2 = f.work("c2-out");
    let o = f.run_plan(&plan, &c2);
    o.assert_ok("c2");
    assert!(
        o.stderr.contains(
            "the token's chain head is the previous ceremony's final hash: work/c1-out is its latest ceremony"
        ),
        "{o}"
    );
    let h2 = final_hash(&f, &c2);

    let again = continuing(&f, "c2b", &spec, "work/c1-out", "nodes = [\"cp2\"]");
    refused(
        &f,
        &again,
        &f.work("c2b-out"),
        &format!(
            "error: {}: the previous ceremony (final hash {h1}) is not the latest ceremony of this token: its chain head is {h2}, a ceremony sealed after it; continuing it again forks the chain",
            c1.join("audit.seal.json").display()
        ),
    );

    let forked = again.with_file_name("c2f.toml");
    let text = std::fs::read_to_string(&again).unwrap().replacen(
        "[ceremony]\n",
        "[ceremony]\nfork = true\n",
        1,
    );
    std::fs::write(&forked, text).unwrap();
    let c2f = f.work("c2f-out");
    let o = f.run_plan(&forked, &c2f);
    o.assert_ok("the fork the plan asks for");
    assert!(
        o.stderr.contains(&format!(
            "ceremony.fork = true: the token's chain head is {h2}, a later ceremony than work/c1-out"
        )),
        "{o}"
    );
    let previous = &first_record(&f, &c2f)["event"]["previous"];
    assert_eq!(previous["fork"], true, "{previous}");
    assert_eq!(previous["final_hash"], h1.as_str());
    assert!(
        first_record(&f, &c2)["event"]["previous"]
            .get("fork")
            .is_none()
    );

    let chain = |outs: &[&Path]| audit_verify_chain(&f, outs);
    chain(&[&c1, &c2f]).assert_ok("audit verify of the forked branch");
    let o = chain(&[&c1, &c2, &c2f]);
    assert_eq!(o.code, Some(4), "{o}");
    assert!(
        o.first_error().unwrap().ends_with(&format!(
            "both continue the ceremony with final hash {h1}: the chain forks"
        )),
        "{o}"
    );

    // The head now names the fork: c2 is no longer the latest.
    let after_c2 = continuing(&f, "c3", &spec, "work/c2-out", "nodes = [\"cp1\"]");
    refused(
        &f,
        &after_c2,
        &f.work("c3-out"),
        &format!(
            "error: {}: the previous ceremony (final hash {h2}) is not the latest ceremony of this token: its chain head is ",
            c2.join("audit.seal.json").display()
        ),
    );
}

/// A continuing run killed after it set the token's chain head and before
/// its commit (or inside the head's replacement, which leaves the old and
/// the new head both): its rerun accepts the head its own journal sealed,
/// finishes, and leaves one head, its final hash.
#[test]
fn a_continuing_run_stopped_after_the_chain_head_resumes() {
    for point in ["token-data-created", "after-chain-head"] {
        if !has_failpoints(&format!("day2::chain head crash at {point}")) {
            return;
        }
        let f = Fixture::new("t-day2-head");
        let spec = founding(&f.token().label);
        let c1 = f.run_spec("c1", &spec);
        let h1 = final_hash(&f, &c1);
        let plan = continuing(&f, "c2", &spec, "work/c1-out", "nodes = [\"cp1\"]");
        let c2 = f.work("c2-out");
        let o = f.run_plan_env(&plan, &c2, &[("CEREMONY_FAILPOINT", point)]);
        assert_eq!(o.signal, Some(6), "expected SIGABRT at {point}\n{o}");
        assert!(!c2.exists(), "{point}: the output is not committed");
        let heads = f.objects().iter().filter(|o| o.label == CHAIN_HEAD).count();
        assert_eq!(
            heads,
            if point == "token-data-created" { 2 } else { 1 },
            "{point}"
        );
        let o = f.run_plan(&plan, &c2);
        o.assert_ok(&format!("the rerun after {point}"));
        assert!(
            o.stderr.contains(
                "the token's chain head is a final hash this ceremony's journal sealed (an earlier run stopped before its commit): work/c1-out was the latest ceremony before it"
            ),
            "{o}"
        );
        without_chain_head(f.objects());
        assert_eq!(
            first_record(&f, &c2)["event"]["previous"]["final_hash"],
            h1.as_str()
        );
        // The head is the committed c2's: the next ceremony continues it.
        let c3_plan = continuing(&f, "c3", &spec, "work/c2-out", "nodes = [\"cp2\"]");
        f.run_plan(&c3_plan, &f.work("c3-out"))
            .assert_ok(&format!("c3 after {point}"));
    }
}
