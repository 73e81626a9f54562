//! The ceremony process itself: two runs on one token at once (the second
//! stops at once, the first is unharmed) and no core dumps while a run holds
//! the PIN and keys (src/harden.rs). Both pause a real run at a failpoint,
//! so they need `--features failpoints` (scripts/test).

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

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Ended, Fixture, Running, has_failpoints, snapshot_tree};

const AUDITOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/ceremony/plans/demo-auditor.agekey"
);
const KEYS: common::Keys = ["ecdsa-p384", "ecdsa-p256", "ecdsa-p256", "ecdsa-p256"];

/// `ceremony run PLAN --yes --pin-file PIN --out OUT`, paused at `before-cas`
/// (logged in, token locked, nothing made yet).
fn start_paused(f: &Fixture, plan: &Path, out: &Path, pause: &Path) -> Running {
    let args = f.run_plan_args(plan, out);
    let env: [(&str, &OsStr); 2] = [
        ("CEREMONY_FAILPOINT", "pause:before-cas".as_ref()),
        ("CEREMONY_FAILPOINT_DIR", pause.as_os_str()),
    ];
    let mut run = f.spawn_ceremony(&args, &env);
    match run.wait_paused(pause, common::CHILD_TIMEOUT) {
        Ended::Paused(point) => assert_eq!(point, "before-cas@1"),
        Ended::Exited(o) => panic!("the first run never reached before-cas:\n{o}"),
    }
    run
}

fn resume_and_finish(mut run: Running, pause: &Path) -> common::Output {
    std::fs::write(pause.join("resume"), b"").expect("resume");
    run.wait()
}

#[test]
fn a_second_run_on_the_same_token_stops_at_once_and_the_first_finishes() {
    if !has_failpoints(
        "process::a_second_run_on_the_same_token_stops_at_once_and_the_first_finishes",
    ) {
        return;
    }
    let f = Fixture::new("busy");
    let plan = f.write_plan("plan.toml", KEYS);
    let (out1, out2) = (f.work("out1"), f.work("out2"));
    let pause = f.pause_dir();
    let first = start_paused(&f, &plan, &out1, &pause);

    // The token's object files and the work directory, as the first run left them.
    let tokens_before = snapshot_tree(&f.path().join("tokens"));
    let work_before = snapshot_tree(&f.path().join("work"));
    let started = Instant::now();
    let second = f.run_plan(&plan, &out2);
    let took = started.elapsed();
    assert_eq!(second.code, Some(3), "{second}");
    let line = second.first_error().expect("an error line");
    assert!(
        line.starts_with(&format!(
            "error: token {} is in use by another ceremony process (lock ",
            f.token().serial
        )),
        "{second}"
    );
    assert_eq!(
        second.hint(),
        Some("hint: wait for the other run to finish; two runs must never share a token"),
        "{second}"
    );
    assert!(second.stdout.is_empty(), "{second}");
    // "At once": it did not wait for the lock (bounded generously for a loaded machine).
    assert!(
        took < Duration::from_secs(30),
        "the second run took {took:?}"
    );
    assert_eq!(
        common::tree_diff(&tokens_before, &snapshot_tree(&f.path().join("tokens"))),
        "",
        "the second run changed the token"
    );
    assert_eq!(
        common::tree_diff(&work_before, &snapshot_tree(&f.path().join("work"))),
        "",
        "the second run left files"
    );

    // The first goes on as if nothing happened.
    let o = resume_and_finish(first, &pause);
    o.assert_ok("the first run, after the second was refused");
    let o = f.ceremony(&[
        "verify".as_ref(),
        out1.as_os_str(),
        "--plan".as_ref(),
        plan.as_os_str(),
    ]);
    o.assert_ok("ceremony verify");
    let log = out1.join("audit.log.age");
    let o = f.ceremony(&[
        "audit".as_ref(),
        "verify".as_ref(),
        log.as_os_str(),
        "--identity".as_ref(),
        AUDITOR.as_ref(),
    ]);
    o.assert_ok("ceremony audit verify");
    assert!(o.stdout.contains("sealed and intact"), "{o}");
    // Now that the first has ended, the lock is free again.
    let o = f.run_plan(&plan, &f.work("out3"));
    assert_ne!(
        o.first_error()
            .map(|l| l.contains("in use by another ceremony process")),
        Some(true),
        "{o}"
    );
}

#[test]
fn a_run_holding_the_pin_cannot_dump_core() {
    if !has_failpoints("process::a_run_holding_the_pin_cannot_dump_core") {
        return;
    }
    let f = Fixture::new("nocore");
    let plan = f.write_ca_plan("plan.toml", KEYS);
    let pause = f.pause_dir();
    // The child inherits this process's limits: raise the soft one as far as
    // allowed, so a 0 in the child is the child's own doing.
    let hard = rustix::process::getrlimit(rustix::process::Resource::Core).maximum;
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: hard,
            maximum: hard,
        },
    );
    let run = start_paused(&f, &plan, &f.work("out"), &pause);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", run.child.id()))
        .expect("read the child's /proc limits");
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("a core size line");
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(
        &fields[4..6],
        &["0", "0"],
        "soft and hard core limits of a paused run: {core}"
    );
    let o = resume_and_finish(run, &pause);
    o.assert_ok("the run after the check");
}
