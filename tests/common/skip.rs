//! Tests and cases that cannot run here: each declares what it needs, a
//! skip is said (never a silent pass), and under `CI=1` a skip fails the
//! test, but for a skip by design: a binary built without failpoints on
//! purpose (`CEREMONY_BIN_FAILPOINTS=0`), whose tests the failpoints build
//! runs.

use std::io::Write;

use super::run::bin_has_failpoints;

/// What a test or case needs beyond SoftHSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Need {
    /// The binary's test-only failpoints (`--features failpoints`).
    Failpoints,
    /// Root, to mount a small tmpfs (a full or read-only disk).
    Root,
}

impl Need {
    pub fn name(self) -> &'static str {
        match self {
            Need::Failpoints => "failpoints",
            Need::Root => "root",
        }
    }

    /// Why the need is unmet here, or None.
    pub fn unmet(self) -> Option<Unmet> {
        match self {
            Need::Failpoints if !bin_has_failpoints() => Some(Unmet {
                need: self,
                // Only a binary declared without them is a skip by design;
                // a test built without the feature is a run that missed cases.
                by_design: std::env::var_os("CEREMONY_BIN").is_some(),
                why: "the binary under test is built without --features failpoints".into(),
            }),
            Need::Root if !rustix::process::geteuid().is_root() => Some(Unmet {
                need: self,
                by_design: false,
                why: "not running as root".into(),
            }),
            _ => None,
        }
    }
}

/// A need that is not met, and why.
#[derive(Debug, Clone)]
pub struct Unmet {
    pub need: Need,
    /// Covered by another CI run, so never a failure.
    pub by_design: bool,
    pub why: String,
}

/// Whether skips fail: `CI` set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Says on the test's own stderr (not captured by the harness, so it shows
/// in every run) that `what` was skipped, and appends it to the file
/// `CEREMONY_TEST_SKIPS` names (scripts/test sums them up). Under CI a skip
/// that is not by design fails the test.
#[track_caller]
pub fn skip(what: &str, unmet: &Unmet) {
    let line = format!(
        "skipped {what}: needs {} ({}){}",
        unmet.need.name(),
        unmet.why,
        if unmet.by_design {
            "; by design, the failpoints run covers it"
        } else {
            ""
        }
    );
    assert!(
        unmet.by_design || !in_ci(),
        "{line}; under CI every test must run"
    );
    let _ = writeln!(std::io::stderr(), "{line}");
    if let Some(file) = std::env::var_os("CEREMONY_TEST_SKIPS") {
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .and_then(|mut f| writeln!(f, "{line}"));
    }
}

/// For a test that needs the binary's failpoints: true when it can run;
/// otherwise the skip is reported (see `skip`) and the test returns.
#[must_use]
#[track_caller]
pub fn has_failpoints(test: &str) -> bool {
    match Need::Failpoints.unmet() {
        None => true,
        Some(u) => {
            skip(test, &u);
            false
        }
    }
}
