//! Crash anywhere: `ceremony run` of a demo-like plan is killed
//! with SIGKILL at more than fifty points spread over every step — after
//! each token operation, between leaves, during the staging writes, during
//! the seal, after the commit — and at timed moments, each time on a fresh
//! SoftHSM token, and each kill is followed by a rerun of the same command.
//!
//! After each kill: no token label carries two objects of one class, and
//! OUT is either absent or whole (a bundle is never visible half-written);
//! after a kill at a CA step or just before the rename, the token holds
//! exactly what the steps so far made, and staging exists only before the
//! rename.
//! After each rerun: exactly the plan's twelve CA objects, every key seen
//! after the kill is the one certified (no CA key made twice), `ceremony
//! verify OUT --plan` passes, the audit log is sealed, `ceremony audit
//! verify` passes, stock `age` decrypts it and every event naming an object
//! is there once, and nothing is left beside OUT.
//!
//! Precise kills: the child is started with `CEREMONY_FAILPOINT=pause:<point>`,
//! waits at that point, and is SIGKILLed there by its handle. The points are
//! not hard-coded: one traced run lists every point the plan passes
//! (`CEREMONY_FAILPOINT_TRACE`), and the cases are chosen from that list.
//! Cases run on `CEREMONY_CRASH_THREADS` worker threads (default 4: most of
//! a run is fsync, not CPU), each on its own token and temp dir.
//!
//! `ca_steps`: aborts (not kills) at the CA steps of a CA-only plan, in a
//! row on one token, with the outputs of the resumed run checked field by
//! field, and a leftover staging directory refused to another plan.

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
#![cfg(feature = "failpoints")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{
    AUDITOR, CHAIN_HEAD, Ended, Fixture, Output, ROLES, cert_file, has_failpoints, json_lines,
    kind, one_cert, parse, snapshot_tree, without_chain_head,
};
use serde_json::Value;

/// How long a child may take to reach its pause point.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(120);
/// Labels of the plan's four CAs (the demo plan's).
const LABELS: [&str; 4] = [
    "demo-root-2026",
    "demo-kubernetes-ca-2026",
    "demo-etcd-ca-2026",
    "demo-front-proxy-ca-2026",
];

/// The demo plan (ceremony/plans/demo.toml) made smaller for CI: the same
/// CAs and key types (P-384 root, P-256 intermediates and leaves), two
/// control-plane nodes and one worker (24 leaves).
fn plan_text(token: &str) -> String {
    let demo = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/ceremony/plans/demo.toml"
    ))
    .expect("read the demo plan");
    let cp3 = "[[cluster.control_plane]]\nname = \"cp3\"\naddress = \"10.0.0.13\"\n\n";
    // Every node in clear: the crash cases compare the files of runs
    // (an age archive differs each time it is made).
    let demo: String = demo
        .lines()
        .filter(|l| !l.starts_with("cp1 = \"age1") && !l.starts_with("worker2 = \""))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = demo
        .replace(
            "pkcs11:token=ceremony-demo",
            &format!("pkcs11:token={token}"),
        )
        .replace("runbook = \"../../docs/runbook.md\"\n", "")
        .replace(cp3, "")
        .replace(
            "names = [\"worker1\", \"worker2\"]",
            "names = [\"worker1\"]",
        );
    assert!(
        !text.contains("cp3") && !text.contains("worker2") && !text.contains("runbook"),
        "the demo plan changed shape; update crash.rs"
    );
    text
}

/// One way to end a run early.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kill {
    /// SIGKILL while paused at this failpoint (`<name>@<n>`).
    At(String),
    /// SIGKILL this long after the start.
    After(Duration),
}

impl std::fmt::Display for Kill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kill::At(p) => write!(f, "at {p}"),
            Kill::After(d) => write!(f, "after {} ms", d.as_millis()),
        }
    }
}

/// What one case's kill found.
#[derive(Debug)]
enum Outcome {
    Killed,
    /// A timed kill landed inside the token's own C_GenerateKeyPair or
    /// C_CreateObject (the trace's last point is `token-keygen-start` or
    /// `token-store-start`): SoftHSM writes a key pair as separate object
    /// files and an object's attributes one by one, so it may leave half a
    /// pair or an object without its label (see `rerun_and_check`).
    KilledInKeygen,
    /// A timed kill came after the run had finished on its own.
    FinishedFirst,
    /// A timed kill landed while SoftHSM rewrote `token.object` in place
    /// (it does at every C_Login): the file is left empty and the token
    /// lists as uninitialised, its objects unreachable. SoftHSM's store is
    /// not crash-safe (docs/reliability.md); nothing a rerun can mend, and
    /// no fault of the ceremony: counted and printed, not a failure.
    StoreLost,
}

/// Whether SoftHSM's own store was emptied by the kill (see
/// `Outcome::StoreLost`): a token directory whose `token.object` is empty.
fn softhsm_store_lost(f: &Fixture) -> bool {
    std::fs::read_dir(f.path().join("tokens"))
        .map(|rd| {
            rd.flatten().any(|e| {
                std::fs::metadata(e.path().join("token.object")).is_ok_and(|m| m.len() == 0)
            })
        })
        .unwrap_or(false)
}

/// (private, public, certificate) objects with a label on the token after
/// a crash at a CA step or just before the rename; None for other points.
fn objects_after(point: &str) -> Option<(usize, usize, usize)> {
    if point == "before-rename" {
        return Some((4, 4, 4));
    }
    let (step, role) = point.split_once(':')?;
    let i = ROLES.iter().position(|r| *r == role)?;
    match step {
        "after-key" | "after-sign" => Some((i + 1, i + 1, i)),
        "after-store" => Some((i + 1, i + 1, i + 1)),
        _ => None,
    }
}

fn class_counts(objects: &[common::Object]) -> (usize, usize, usize) {
    let n = |c: &str| {
        objects
            .iter()
            .filter(|o| o.class == c && !unlabeled(o))
            .count()
    };
    (n("private-key"), n("public-key"), n("certificate"))
}

fn run_args(f: &Fixture) -> Vec<PathBuf> {
    vec![
        "run".into(),
        f.path().join("plan.toml"),
        "--yes".into(),
        "--pin-file".into(),
        f.pin_file(),
        "--out".into(),
        f.work("out"),
    ]
}

fn setup(label: &str) -> Fixture {
    let f = Fixture::new(label);
    common::write_file(
        &f.path().join("plan.toml"),
        plan_text(&f.token().label).as_bytes(),
        0o644,
    );
    f
}

/// Runs the plan once, start to end, listing every failpoint it passes
/// (in order) and how long it took.
fn trace_points() -> (Vec<String>, Duration) {
    let f = setup("crash-trace");
    let trace = f.path().join("trace");
    let mut run = f.spawn_ceremony(
        &run_args(&f),
        &[("CEREMONY_FAILPOINT_TRACE", trace.as_os_str())],
    );
    let o = run.wait();
    let took = run.elapsed();
    o.assert_ok("the traced run");
    let text = std::fs::read_to_string(&trace).expect("the trace");
    let points: Vec<String> = text.lines().map(str::to_string).collect();
    (points, took)
}

/// `k` indices spread evenly over `0..n` (first and last included).
fn spread(n: usize, k: usize) -> Vec<usize> {
    if n == 0 {
        return vec![];
    }
    let k = k.min(n).max(1);
    let mut v: Vec<usize> = (0..k)
        .map(|i| if k == 1 { 0 } else { i * (n - 1) / (k - 1) })
        .collect();
    v.dedup();
    v
}

/// The kills of the suite, chosen from the traced points: every named step
/// once, and a spread of each counted point (token signatures, leaves,
/// staging writes, journal records), plus timed kills across the run.
fn choose_kills(points: &[String], took: Duration) -> Vec<Kill> {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in points {
        let name = p.rsplit_once('@').map_or(p.as_str(), |(n, _)| n);
        by_name.entry(name.to_string()).or_default().push(p.clone());
    }
    // How many of each counted point; every other point is taken whole.
    let take = |name: &str| match name {
        "journal-append" => 10,
        "write" => 8,
        "write-open" => 4,
        "leaf" => 8,
        "token-sign" => 7,
        _ => usize::MAX,
    };
    let mut kills = Vec::new();
    for (name, hits) in &by_name {
        for i in spread(hits.len(), take(name)) {
            kills.push(Kill::At(hits[i].clone()));
        }
    }
    // Timed kills: at fractions of a full run, wherever the process is then.
    for i in 1..=8u32 {
        kills.push(Kill::After(took * (2 * i - 1) / 16));
    }
    kills
}

/// No label carries two objects of one class, but the chain head: a kill
/// inside its replacement (create the new, then destroy the old) leaves two,
/// and the rerun one (checked where the rerun's objects are counted).
fn assert_labels_unique(f: &Fixture, when: &str) -> Vec<common::Object> {
    let objects = f.objects();
    let mut seen = BTreeSet::new();
    for o in objects
        .iter()
        .filter(|o| !unlabeled(o) && o.label != CHAIN_HEAD)
    {
        assert!(
            seen.insert((o.class.clone(), o.label.clone())),
            "{when}: two {} objects labelled {}: {objects:#?}",
            o.class,
            o.label
        );
    }
    objects
}

/// An object without a label: `token list` leaves the label column empty,
/// so the parsed row shows the key type there.
fn unlabeled(o: &common::Object) -> bool {
    o.label.starts_with("CKK_") || o.label == "-"
}

/// The public keys of labels that also carry a private key (a public key
/// alone is half a pair, not a CA key).
fn ca_public_keys(f: &Fixture) -> BTreeMap<String, (String, String)> {
    let objects = f.objects();
    f.ec_public_keys()
        .into_iter()
        .filter(|(label, _)| {
            objects
                .iter()
                .any(|o| o.class == "private-key" && &o.label == label)
        })
        .collect()
}

fn ceremony_ok(f: &Fixture, args: &[&OsStr], what: &str) -> Output {
    let o = f.ceremony(args);
    o.assert_ok(what);
    o
}

/// OUT is whole: the bundle verifies against the plan and its log is sealed.
fn assert_whole(f: &Fixture, out: &Path, when: &str) {
    let plan = f.path().join("plan.toml");
    let o = ceremony_ok(
        f,
        &[
            "verify".as_ref(),
            out.as_os_str(),
            "--plan".as_ref(),
            plan.as_os_str(),
        ],
        &format!("ceremony verify OUT --plan ({when})"),
    );
    assert!(o.stdout.starts_with("OK: "), "{when}: {o}");
    let log = out.join("audit.log.age");
    let o = ceremony_ok(
        f,
        &[
            "audit".as_ref(),
            "verify".as_ref(),
            log.as_os_str(),
            "--identity".as_ref(),
            AUDITOR.as_ref(),
        ],
        &format!("ceremony audit verify ({when})"),
    );
    assert!(o.stdout.contains("sealed and intact"), "{when}: {o}");
}

/// The sealed log's records (stock `age` decrypts it), without the seal line.
fn sealed_records(f: &Fixture, out: &Path) -> Vec<Value> {
    let log = out.join("audit.log.age");
    let o = f.tool(
        "age",
        &[
            "-d".as_ref(),
            "-i".as_ref(),
            AUDITOR.as_ref(),
            log.as_os_str(),
        ],
    );
    o.assert_ok("age -d");
    let mut lines: Vec<&str> = o.stdout.lines().collect();
    let seal = lines.pop().expect("a seal line");
    assert!(
        seal.contains("\"seal\""),
        "the last line is the seal: {seal}"
    );
    json_lines(&lines)
}

/// Every event that names an object is in the log once: each CA key
/// generated at most once (and found or generated by the last run), each CA
/// certificate issued and stored at most once, each leaf serial once; the
/// last run records every output once.
fn assert_each_event_once(records: &[Value], out: &Path) {
    assert_eq!(kind(&records[0]), "ceremony_started", "the first record");
    assert_eq!(
        records
            .iter()
            .filter(|r| kind(r) == "ceremony_started")
            .count(),
        1
    );
    let mut seen = BTreeSet::new();
    for r in records {
        let e = &r["event"];
        let key = match kind(r) {
            "key_generated" => format!("key generated {}", e["label"]),
            "certificate_stored" => format!("stored {}", e["label"]),
            // A CA certificate signed by a run killed before it was stored
            // is signed again by the rerun: two signings, each once.
            "certificate_issued" => format!("certificate serial {}", e["serial"]),
            _ => continue,
        };
        assert!(
            seen.insert(key.clone()),
            "{key} appears twice in the sealed log"
        );
    }
    // The last run: from the last start or resume to the end.
    let last = records
        .iter()
        .rposition(|r| matches!(kind(r), "ceremony_started" | "resumed"))
        .expect("a start");
    let tail = &records[last..];
    for label in LABELS {
        let n = tail
            .iter()
            .filter(|r| {
                matches!(kind(r), "key_generated" | "key_found")
                    && r["event"]["label"].as_str() == Some(label)
            })
            .count();
        assert_eq!(n, 1, "the last run found or generated key {label} once");
    }
    for role in ["root", "kubernetes", "etcd", "front-proxy"] {
        let n = tail
            .iter()
            .filter(|r| {
                matches!(kind(r), "certificate_issued" | "certificate_found")
                    && r["event"]["node"].is_null()
                    && r["event"]["role"].as_str() == Some(role)
            })
            .count();
        assert_eq!(
            n, 1,
            "the last run found or issued the {role} CA certificate once"
        );
    }
    assert_eq!(
        tail.iter().filter(|r| kind(r) == "end").count(),
        1,
        "one end in the last run"
    );
    assert_eq!(kind(records.last().expect("records")), "end");
    let written: Vec<&str> = tail
        .iter()
        .filter(|r| kind(r) == "output_written")
        .map(|r| r["event"]["path"].as_str().expect("a path"))
        .collect();
    let unique: BTreeSet<&str> = written.iter().copied().collect();
    assert_eq!(written.len(), unique.len(), "an output recorded twice");
    let files: BTreeSet<String> = snapshot_tree(out)
        .into_iter()
        .filter(|(_, n)| matches!(n, common::Node::File { .. }))
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .filter(|p| !["audit.log.age", "transcript.md", "audit.seal.json"].contains(&p.as_str()))
        .collect();
    let unique: BTreeSet<String> = unique.into_iter().map(str::to_string).collect();
    assert_eq!(
        unique, files,
        "the last run records exactly the files of OUT"
    );
}

/// Nothing but OUT beside it: no staging directory, marker or journal.
fn assert_nothing_beside(out: &Path) {
    let beside: Vec<PathBuf> = snapshot_tree(out.parent().expect("a parent"))
        .into_keys()
        .filter(|p| p.components().count() == 1)
        .collect();
    assert_eq!(
        beside,
        [PathBuf::from(out.file_name().expect("a name"))],
        "beside the output after the rerun"
    );
}

/// Kills one run as `kill` says and checks what it left.
fn kill_once(f: &Fixture, kill: &Kill) -> Outcome {
    let out = f.work("out");
    let pause = f.pause_dir();
    let outcome = match kill {
        Kill::At(point) => {
            let spec = format!("pause:{point}");
            let mut run = f.spawn_ceremony(
                &run_args(f),
                &[
                    ("CEREMONY_FAILPOINT", spec.as_ref()),
                    ("CEREMONY_FAILPOINT_DIR", pause.as_os_str()),
                ],
            );
            match run.wait_paused(&pause, PAUSE_TIMEOUT) {
                Ended::Paused(at) => {
                    assert_eq!(&at, point, "paused at another point");
                    let o = run.kill();
                    assert_eq!(o.signal, Some(9), "SIGKILL at {point}\n{o}");
                    let name = point.rsplit_once('@').map_or(point.as_str(), |(n, _)| n);
                    if let Some(want) = objects_after(name) {
                        let objects = f.objects();
                        assert_eq!(
                            class_counts(&objects),
                            want,
                            "objects after a kill at {point}: {objects:#?}"
                        );
                        // Staging begins after the CAs; before the rename it holds the bundle.
                        let staging = out.with_file_name(".out.staging");
                        assert_eq!(
                            std::fs::symlink_metadata(&staging).is_ok(),
                            name == "before-rename",
                            "staging directory after a kill at {point}"
                        );
                    }
                    Outcome::Killed
                }
                Ended::Exited(o) => panic!(
                    "the run never reached {point}: is {} built with --features failpoints \
                     (a build without it may have replaced it meanwhile)?\n{o}",
                    common::bin().display()
                ),
            }
        }
        Kill::After(d) => {
            let trace = f.path().join("trace-timed");
            let _ = std::fs::remove_file(&trace);
            let mut run = f.spawn_ceremony(
                &run_args(f),
                &[("CEREMONY_FAILPOINT_TRACE", trace.as_os_str())],
            );
            let deadline = Instant::now() + *d;
            let mut finished = None;
            while Instant::now() < deadline {
                if run.child.try_wait().expect("try_wait").is_some() {
                    finished = Some(run.wait());
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            match finished {
                Some(o) => {
                    o.assert_ok("a run that finished before its timed kill");
                    Outcome::FinishedFirst
                }
                None => {
                    let o = run.kill();
                    let last = std::fs::read_to_string(&trace)
                        .unwrap_or_default()
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .to_string();
                    match o.signal {
                        // Inside a token write (C_GenerateKeyPair, C_CreateObject).
                        Some(9)
                            if last.starts_with("token-keygen-start@")
                                || last.starts_with("token-store-start@") =>
                        {
                            Outcome::KilledInKeygen
                        }
                        Some(9) if softhsm_store_lost(f) => return Outcome::StoreLost,
                        Some(9) => Outcome::Killed,
                        _ => {
                            o.assert_ok("a run that finished just before its timed kill");
                            Outcome::FinishedFirst
                        }
                    }
                }
            }
        }
    };
    let when = format!("after the kill {kill}");
    assert_labels_unique(f, &when);
    // Never a half-written bundle at the final path: absent or whole.
    if std::fs::symlink_metadata(&out).is_ok() {
        assert_whole(f, &out, &when);
    }
    outcome
}

/// The rerun (after one or more kills) finishes, and everything holds.
fn rerun_and_check(
    f: &Fixture,
    seen: &BTreeMap<String, (String, String)>,
    what: &str,
    rerun: bool,
    in_keygen: bool,
) -> usize {
    let out = f.work("out");
    if rerun {
        // Killed inside SoftHSM's C_GenerateKeyPair or C_CreateObject, the
        // token may have kept part of the write; the rerun removes it (the
        // journal recorded the write first) and makes it again, unaided.
        let o = f.ceremony(&run_args(f));
        o.assert_ok(&format!("the rerun {what}"));
        for line in o
            .stderr
            .lines()
            .filter(|l| l.contains("removed what it left"))
        {
            eprintln!("crash {what}: {}", line.trim());
        }
    }
    assert_nothing_beside(&out);
    let mut objects =
        without_chain_head(assert_labels_unique(f, &format!("after the rerun {what}")));
    // Killed inside SoftHSM's keygen, the token may keep a public key
    // object it had not labelled yet: junk of the token's own, not a CA key.
    let orphans = objects.iter().filter(|o| unlabeled(o)).count();
    assert!(
        orphans == 0 || in_keygen,
        "{what}: objects without a label: {objects:#?}"
    );
    objects.retain(|o| !unlabeled(o));
    assert!(
        orphans == 0 || objects.len() == 12,
        "{what}: orphans beside the CA objects: {objects:#?}"
    );
    assert_eq!(
        objects.len(),
        12,
        "{what}: the plan's twelve objects: {objects:#?}"
    );
    for label in LABELS {
        let mine: Vec<&str> = objects
            .iter()
            .filter(|o| o.label == label)
            .map(|o| o.class.as_str())
            .collect();
        assert_eq!(mine.len(), 3, "{what}: {label}: {mine:?}");
    }
    assert_whole(f, &out, &format!("after the rerun {what}"));
    let records = sealed_records(f, &out);
    assert_each_event_once(&records, &out);
    // No CA key made twice: every key on the token after the kill is still
    // there under its label and id, and is the one its certificate certifies;
    // but for a pair the kill cut short inside the token (SoftHSM keeps a
    // private key whose object file lost its last attributes), which the
    // rerun removed, by the id its journal recorded, and made again.
    let now = f.ec_public_keys();
    for (label, key) in seen {
        let removed = records.iter().any(|r| {
            kind(r) == "unfinished_key_removed"
                && r["event"]["label"] == label.as_str()
                && r["event"]["id"].as_str() == Some(key.0.as_str())
        });
        if removed {
            assert_ne!(now.get(label), Some(key), "{what}: \"{label}\" kept");
            continue;
        }
        assert_eq!(
            now.get(label),
            Some(key),
            "{what}: key \"{label}\" was replaced by the rerun"
        );
    }
    // Every CA key on the token is the one its certificate in OUT certifies.
    for (i, label) in LABELS.iter().enumerate() {
        let der = one_cert(&out.join(cert_file(i)));
        let point = hex::encode(&parse(&der).public_key().subject_public_key.data);
        assert_eq!(
            now.get(*label).map(|(_, p)| p),
            Some(&point),
            "{what}: {} does not certify the token's key \"{label}\"",
            cert_file(i)
        );
    }
    let certified: BTreeSet<String> = records
        .iter()
        .filter(|r| matches!(kind(r), "key_generated" | "key_found"))
        .filter_map(|r| r["event"]["label"].as_str().map(str::to_string))
        .collect();
    for label in LABELS {
        assert!(
            certified.contains(label),
            "{what}: no record of key {label}"
        );
    }
    orphans
}

fn crash_case(i: usize, kills: &[Kill]) -> Outcome {
    let f = setup(&format!("crash-{i}"));
    let mut outcome = Outcome::FinishedFirst;
    let mut seen = BTreeMap::new();
    let mut finished = false;
    let mut in_keygen = false;
    for kill in kills {
        match kill_once(&f, kill) {
            Outcome::Killed => outcome = Outcome::Killed,
            Outcome::KilledInKeygen => in_keygen = true,
            Outcome::FinishedFirst => finished = true,
            Outcome::StoreLost => return Outcome::StoreLost,
        }
        let now = ca_public_keys(&f);
        for (label, key) in &seen {
            assert_eq!(
                now.get(label),
                Some(key),
                "key \"{label}\" replaced at {kill}"
            );
        }
        seen = now;
        if finished {
            break;
        }
    }
    let what = kills
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", then ");
    let orphans = rerun_and_check(&f, &seen, &format!("(killed {what})"), !finished, in_keygen);
    if in_keygen {
        eprintln!(
            "crash case {i} ({what}): killed inside the token's keygen; {orphans} unlabelled public key(s) left by SoftHSM"
        );
        return Outcome::KilledInKeygen;
    }
    outcome
}

/// Runs `cases` on worker threads; returns the failures (case, message).
fn run_cases(cases: Vec<Vec<Kill>>) -> (usize, usize, Vec<String>, usize) {
    let threads: usize = std::env::var("CEREMONY_CRASH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
        .max(1);
    let queue = Mutex::new(cases.into_iter().enumerate().collect::<Vec<_>>());
    let results = Mutex::new((0usize, 0usize, Vec::new(), 0usize));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    let Some((i, kills)) = next else { break };
                    let start = Instant::now();
                    let r = std::panic::catch_unwind(|| crash_case(i, &kills));
                    let mut res = results.lock().unwrap_or_else(|p| p.into_inner());
                    let label = kills
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", then ");
                    match r {
                        Ok(Outcome::Killed) => {
                            res.0 += 1;
                            eprintln!("crash case {i} ({label}): killed, resumed, checked in {:?}", start.elapsed());
                        }
                        Ok(Outcome::KilledInKeygen) => {
                            res.0 += 1;
                            res.3 += 1;
                            eprintln!("crash case {i} ({label}): killed inside the token's keygen, recovered, checked in {:?}", start.elapsed());
                        }
                        Ok(Outcome::FinishedFirst) => {
                            res.1 += 1;
                            eprintln!("crash case {i} ({label}): finished before the kill; checked");
                        }
                        Ok(Outcome::StoreLost) => {
                            eprintln!("crash case {i} ({label}): killed while SoftHSM rewrote token.object (its store is not crash-safe): the token is lost, not checked");
                        }
                        Err(e) => {
                            let msg = e
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default();
                            res.2.push(format!("case {i} ({label}):\n{msg}"));
                        }
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn sigkill_anywhere_then_rerun() {
    if !has_failpoints("crash::sigkill_anywhere_then_rerun") {
        return;
    }
    let start = Instant::now();
    let (points, took) = trace_points();
    let mut cases: Vec<Vec<Kill>> = choose_kills(&points, took)
        .into_iter()
        .map(|k| vec![k])
        .collect();
    // Kills in a row on one token, each run resuming the last, then a rerun.
    let named = |p: &str| {
        points
            .iter()
            .find(|q| q.as_str() == p)
            .cloned()
            .unwrap_or_else(|| panic!("the traced run never passed {p}"))
    };
    cases.push(vec![
        Kill::At(named("token-keygen@1")),
        Kill::At(named("after-store:kubernetes@1")),
        Kill::At(named("leaf@3")),
        Kill::At(named("after-seal-sign@1")),
        Kill::At(named("after-rename@1")),
    ]);
    let precise = cases
        .iter()
        .flatten()
        .filter(|k| matches!(k, Kill::At(_)))
        .count();
    let total = cases.iter().map(Vec::len).sum::<usize>();
    let steps: BTreeSet<&str> = points
        .iter()
        .map(|p| p.rsplit_once('@').map_or(p.as_str(), |(n, _)| n))
        .collect();
    eprintln!(
        "crash: the traced run passed {} failpoint hits of {} kinds in {took:?}; {} cases, {total} kills ({precise} at failpoints)",
        points.len(),
        steps.len(),
        cases.len()
    );
    assert!(
        precise >= 50,
        "at least 50 precise kill points, got {precise}"
    );
    let (killed, finished, failures, in_keygen) = run_cases(cases);
    eprintln!(
        "crash: {killed} cases killed and resumed ({in_keygen} killed inside the token's keygen), {finished} timed kills came after the run finished, {} failed, in {:?}",
        failures.len(),
        start.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} crash cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The traced list covers every step of the run (a failpoint removed from
/// the code, or a step added without one, shows up here).
#[test]
fn the_trace_covers_every_step() {
    if !has_failpoints("crash::the_trace_covers_every_step") {
        return;
    }
    let (points, _) = trace_points();
    let names: BTreeSet<&str> = points
        .iter()
        .map(|p| p.rsplit_once('@').map_or(p.as_str(), |(n, _)| n))
        .collect();
    for want in [
        "journal-append",
        "before-cas",
        "token-keygen-start",
        "token-store-start",
        "token-keygen",
        "token-store",
        "token-sign",
        "after-key:root",
        "after-sign:front-proxy",
        "after-store:etcd",
        "leaf",
        "mid-leaves",
        "write-open",
        "write",
        "before-seal",
        "after-seal-sign",
        "token-data-created",
        "after-chain-head",
        "before-rename",
        "after-rename",
        "before-journal-remove",
        "journal-remove:journal.key",
        "journal-remove:records",
        "journal-remove:plan-sha256",
    ] {
        assert!(names.contains(want), "no {want} in the trace: {names:?}");
    }
    let count = |n: &str| {
        points
            .iter()
            .filter(|p| p.starts_with(&format!("{n}@")))
            .count()
    };
    assert_eq!(
        count("leaf"),
        27,
        "two control-plane nodes (13 and 12 leaves) and one worker (2), a kubelet serving certificate each"
    );
    assert_eq!(count("token-keygen"), 4);
    assert_eq!(count("token-store"), 4);
}

/// Pauses a run at failpoint `at` (just after a token write returned, before
/// the run recorded it), kills it, lets `cut` leave the token as a kill
/// inside that write can, reruns, and checks everything holds. Returns the
/// fixture, the rerun's output and the sealed records.
fn killed_in_a_token_write(
    name: &str,
    at: &str,
    cut: impl FnOnce(&Fixture),
) -> (Fixture, Output, Vec<Value>) {
    let f = setup(name);
    let pause = f.pause_dir();
    let mut run = f.spawn_ceremony(
        &run_args(&f),
        &[
            ("CEREMONY_FAILPOINT", format!("pause:{at}").as_ref()),
            ("CEREMONY_FAILPOINT_DIR", pause.as_os_str()),
        ],
    );
    match run.wait_paused(&pause, PAUSE_TIMEOUT) {
        Ended::Paused(p) => assert_eq!(p, at),
        Ended::Exited(o) => panic!("never reached {at}:\n{o}"),
    }
    assert_eq!(run.kill().signal, Some(9));
    cut(&f);
    let o = f.ceremony(&run_args(&f));
    o.assert_ok(&format!("the rerun after a kill at {at}"));
    let objects = without_chain_head(assert_labels_unique(&f, "after the rerun"));
    assert_eq!(objects.len(), 12, "{objects:#?}");
    let out = f.work("out");
    assert_whole(&f, &out, "after the rerun");
    let records = sealed_records(&f, &out);
    assert_each_event_once(&records, &out);
    (f, o, records)
}

fn events_of<'a>(records: &'a [Value], k: &str, label: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| kind(r) == k && r["event"]["label"] == label)
        .map(|r| &r["event"])
        .collect()
}

/// The token's half of a key generation killed inside C_GenerateKeyPair,
/// made exactly: killed just after the token made the root's pair (before
/// the run recorded it), then its private key deleted, as SoftHSM can leave
/// it; once with the public key whole, once with its file cut short before
/// its CKA_ID. The rerun sees the generation on the journal, removes the
/// public key under the root's label, generates the key again, and says so.
#[test]
fn a_lone_public_key_of_a_killed_generation_is_removed_on_resume() {
    if !has_failpoints("crash::a_lone_public_key_of_a_killed_generation_is_removed_on_resume") {
        return;
    }
    let root = LABELS[0];
    for cut_id in [false, true] {
        let (_f, o, records) = killed_in_a_token_write(
            &format!("halfpair{}", u8::from(cut_id)),
            "token-keygen@1",
            |f| {
                f.pkcs11_tool_login(&["--delete-object", "--type", "privkey", "--label", root])
                    .assert_ok("pkcs11-tool --delete-object --type privkey");
                if cut_id {
                    common::cut_before(&f.newest_object(2), common::CKA_ID);
                }
                let left: Vec<String> = f
                    .objects()
                    .iter()
                    .map(|o| format!("{} {}", o.class, o.label))
                    .collect();
                assert_eq!(left, [format!("public-key {root}")], "the half pair");
            },
        );
        assert!(
            o.stderr.contains(&format!(
                "the previous run was stopped while the token generated root key \"{root}\": removed what it left (a public key without its private key)"
            )),
            "{o}"
        );
        let (started, removed, generated) = (
            events_of(&records, "key_generation_started", root),
            events_of(&records, "unfinished_key_removed", root),
            events_of(&records, "key_generated", root),
        );
        assert_eq!((started.len(), removed.len(), generated.len()), (2, 1, 1));
        // What was removed is the first generation's; the key made is the second's.
        assert_eq!(removed[0]["id"], started[0]["id"]);
        assert_eq!(removed[0]["objects"], 1);
        assert_eq!(generated[0]["id"], started[1]["id"]);
        assert_ne!(started[0]["id"], started[1]["id"]);
    }
}

/// The case a timed kill found in CI: killed while SoftHSM wrote the
/// kubernetes CA's private key file, the token kept a private key listed
/// with its label, CKA_ID and flags but without its EC parameters, which
/// cannot sign (CKR_GENERAL_ERROR); and the same file cut before its CKA_ID.
/// The rerun finds the generation unfinished on the journal (the pairwise
/// test fails, or the id is not the recorded one), removes the pair and
/// makes it again; nothing is ever signed with the broken key.
#[test]
fn a_private_key_cut_short_is_removed_and_made_again_on_resume() {
    if !has_failpoints("crash::a_private_key_cut_short_is_removed_and_made_again_on_resume") {
        return;
    }
    let label = LABELS[1];
    for (ty, what) in [
        (common::CKA_EC_PARAMS, "cannot sign"),
        (common::CKA_ID, "key objects without the recorded CKA_ID"),
    ] {
        let mut cut_key = None;
        let (f, o, records) =
            killed_in_a_token_write(&format!("cutkey{ty:x}"), "token-keygen@2", |f| {
                cut_key = f.ec_public_keys().get(label).cloned();
                common::cut_before(&f.newest_object(3), ty);
                let kinds: BTreeSet<String> = f
                    .objects()
                    .iter()
                    .filter(|o| o.label == label)
                    .map(|o| o.class.clone())
                    .collect();
                assert_eq!(
                    kinds,
                    ["private-key", "public-key"].map(String::from).into(),
                    "the pair, cut short"
                );
            });
        let note = format!(
            "the previous run was stopped while the token generated kubernetes key \"{label}\": removed what it left ("
        );
        let line = o
            .stderr
            .lines()
            .find(|l| l.contains(&note))
            .unwrap_or_else(|| panic!("no note of the removal:\n{o}"));
        assert!(line.contains(what), "{line}");
        let (started, removed, generated) = (
            events_of(&records, "key_generation_started", label),
            events_of(&records, "unfinished_key_removed", label),
            events_of(&records, "key_generated", label),
        );
        assert_eq!((started.len(), removed.len(), generated.len()), (2, 1, 1));
        assert_eq!(removed[0]["id"], started[0]["id"]);
        assert_eq!(removed[0]["objects"], 2);
        let cut_key = cut_key.expect("the public key of the cut pair");
        assert_eq!(removed[0]["id"].as_str(), Some(cut_key.0.as_str()));
        assert_ne!(generated[0]["id"], removed[0]["id"]);
        let now = f.ec_public_keys();
        assert_ne!(now.get(label), Some(&cut_key), "the key was made again");
    }
}

/// Killed while SoftHSM wrote the root's certificate object: the file cut
/// short before its value, or before its CKA_ID. The rerun sees the store
/// on the journal unfinished, removes that certificate object, and signs
/// and stores the root certificate again.
#[test]
fn a_certificate_cut_short_is_removed_and_signed_again_on_resume() {
    if !has_failpoints("crash::a_certificate_cut_short_is_removed_and_signed_again_on_resume") {
        return;
    }
    let root = LABELS[0];
    for (ty, what) in [
        (
            common::CKA_VALUE,
            "a certificate without its value (CKA_VALUE)",
        ),
        (common::CKA_ID, "a certificate without its key's CKA_ID"),
    ] {
        let (_f, o, records) =
            killed_in_a_token_write(&format!("cutcert{ty:x}"), "token-store@1", |f| {
                common::cut_before(&f.newest_object(1), ty);
            });
        assert!(
            o.stderr.contains(&format!(
                "the previous run was stopped while the token stored the root certificate \"{root}\": removed what it left ({what}); the certificate is signed again"
            )),
            "{o}"
        );
        let removed = events_of(&records, "unfinished_certificate_removed", root);
        assert_eq!(removed.len(), 1, "{removed:?}");
        assert_eq!(removed[0]["objects"], 1);
        let issued = records
            .iter()
            .filter(|r| {
                kind(r) == "certificate_issued"
                    && r["event"]["role"] == "root"
                    && r["event"]["node"].is_null()
            })
            .count();
        assert_eq!(issued, 2, "signed by the killed run and again by the rerun");
    }
}

/// Killed while it wrote its first journal record (the frame torn half-way,
/// as a timed kill in CI found it): the rerun cuts the torn frame off, finds
/// no record, and starts the ceremony afresh, so the sealed log begins with
/// `ceremony_started` (not a `resumed` of nothing).
#[test]
fn a_journal_killed_in_its_first_record_starts_afresh() {
    if !has_failpoints("crash::a_journal_killed_in_its_first_record_starts_afresh") {
        return;
    }
    let (_f, o, records) = killed_in_a_token_write("firstrecord", "journal-append@1", |f| {
        let path = f.work(".out.journal").join("records");
        let len = std::fs::metadata(&path)
            .expect("the journal's records")
            .len();
        assert!(len > 0, "the first frame was written");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_len(len / 2))
            .expect("tear the first frame");
    });
    assert!(!o.stderr.contains("Resuming"), "{o}");
    assert_eq!(
        records.iter().filter(|r| kind(r) == "resumed").count(),
        0,
        "nothing to resume"
    );
}

/// SoftHSM writes an object file in steps; a process killed inside
/// C_CreateObject or C_GenerateKeyPair can leave one holding only its
/// header, an object the token lists but whose CKA_CLASS it cannot return
/// (CKR_ATTRIBUTE_VALUE_INVALID on every C_GetAttributeValue). Such an
/// object, made here as the kill makes it, must not stop `token list` or the
/// ceremony: it is listed as unreadable, the run goes on, and it stays.
#[test]
fn an_object_softhsm_cut_short_is_listed_and_the_run_goes_on() {
    if !has_failpoints("crash::an_object_softhsm_cut_short_is_listed_and_the_run_goes_on") {
        return;
    }
    let f = setup("cutshort");
    let tokens: Vec<PathBuf> = std::fs::read_dir(f.path().join("tokens"))
        .expect("read the token directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("token.object").is_file())
        .collect();
    let [dir] = tokens.as_slice() else {
        panic!("one token directory expected: {tokens:?}")
    };
    // The first 8 bytes of a SoftHSM object file: its generation counter.
    let junk = dir.join("0badc0de-0000-4000-8000-000000000001.object");
    common::write_file(&junk, &[0, 0, 0, 0, 0, 0, 0, 0x1c], 0o600);
    common::write_file(&junk.with_extension("lock"), b"", 0o600);

    let objects = f.objects();
    assert_eq!(objects.len(), 1, "{objects:#?}");
    assert_eq!(objects[0].class, "unreadable", "{objects:#?}");
    assert!(unlabeled(&objects[0]), "{objects:#?}");
    assert!(
        objects[0]
            .flags
            .contains("the token cannot describe this object"),
        "{objects:#?}"
    );

    let orphans = rerun_and_check(&f, &BTreeMap::new(), "(object cut short)", true, true);
    assert_eq!(orphans, 1, "the cut-short object stays, unreadable");
    assert!(
        junk.is_file(),
        "the ceremony never removes an object it cannot read"
    );
}

/// Aborts (as on power loss, `CEREMONY_FAILPOINT=<point>`) at the CA steps
/// of the fixture's CA-only plan: the failpoint aborts the process, nothing
/// appears at --out until the final rename, the token holds exactly what
/// the steps so far made, and a rerun of the same command finishes with the
/// plan's objects, reusing every key made before the crash, its outputs
/// checked field by field. (Each CA step alone: `sigkill_anywhere_then_rerun`.)
mod ca_steps {
    use super::*;
    use common::{
        Keys, LABELS, check_outputs, check_token_certificates, check_twelve_objects, tree_diff,
    };

    /// P-256 everywhere and a CA-only plan (no [cluster]): the failpoints
    /// are in the CA steps and the final rename, and these runs stay fast.
    const KEYS: Keys = ["ecdsa-p256", "ecdsa-p256", "ecdsa-p256", "ecdsa-p256"];

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
            Some(class_counts(&objects)),
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

    /// Several crashes in a row on one token, each resuming the last.
    #[test]
    fn repeated_crashes_then_resume() {
        if !has_failpoints("crash::ca_steps::repeated_crashes_then_resume") {
            return;
        }
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

    /// A kill between the unlinks of the journal's cleanup, after the
    /// output was committed: the identity is gone already, the rerun
    /// finishes the cleanup and exits 0, the output is untouched and nothing
    /// of the journal is left beside it.
    #[test]
    fn killed_during_the_journal_cleanup() {
        if !has_failpoints("crash::ca_steps::killed_during_the_journal_cleanup") {
            return;
        }
        for file in ["journal.key", "records", "plan-sha256"] {
            let point = format!("journal-remove:{file}");
            let f = Fixture::new(&format!("t-crash-cleanup-{file}"));
            let plan = f.write_ca_plan("plan.toml", KEYS);
            let out = f.work("out");
            let o = f.run_plan_env(&plan, &out, &[("CEREMONY_FAILPOINT", point.as_str())]);
            assert_eq!(o.signal, Some(6), "expected SIGABRT at {point}\n{o}");
            let journal = out.with_file_name(".out.journal");
            assert!(journal.is_dir(), "no journal left by the kill at {point}");
            assert!(
                !journal.join("journal.key").exists(),
                "the journal's identity outlived the kill at {point}"
            );
            let committed = snapshot_tree(&out);
            let tok = f.token_snapshot();
            // Exits 0 with nothing but OUT beside it; OUT checked whole.
            finish(&f, &plan, &out, &BTreeMap::new());
            assert_eq!(snapshot_tree(&out), committed, "the output changed");
            assert_eq!(f.token_snapshot(), tok, "the token changed");
        }
    }

    /// A leftover staging directory belongs to its plan: a different plan
    /// aimed at the same --out is refused before the token is opened.
    #[test]
    fn staging_of_another_plan_is_refused() {
        if !has_failpoints("crash::ca_steps::staging_of_another_plan_is_refused") {
            return;
        }
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
                    "error: {} holds the unfinished output of another plan or of other inputs",
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
