//! Test-only crash points. Built only with the cargo feature `failpoints`;
//! without it `hit` is an empty inline function and none of this exists.
//!
//! What it must not do: anything at all in a build for real ceremonies.
//!
//! The environment of a test's child process says what happens at a point:
//! - `CEREMONY_FAILPOINT=<name>` aborts the process at the first hit of
//!   `<name>`, the way a power cut would (nothing is flushed or unwound), so
//!   tests can prove a rerun resumes cleanly; `<name>@<n>` aborts at the n-th
//!   hit (`write@17`: the 17th file written into the staging directory).
//! - `CEREMONY_FAILPOINT=pause:<name>[@<n>]` pauses there instead: it
//!   creates `$CEREMONY_FAILPOINT_DIR/paused` (holding the point's name) and
//!   waits until `$CEREMONY_FAILPOINT_DIR/resume` appears, then goes on. The
//!   test meanwhile SIGKILLs the process (a kill at an exact point), or
//!   changes the world under it (removes the token) and lets it continue.
//!   The wait is bounded ([`PAUSE_LIMIT`]); past it the process aborts rather
//!   than run on unobserved.
//! - `CEREMONY_FAILPOINT_TRACE=<file>` appends every point hit to `<file>`,
//!   one `<name>@<n>` per line, so a test can list the points of a run.
//! - `CEREMONY_TEST_HOLD_AT_LEAF=N` holds the run at the N-th leaf checkpoint
//!   until Ctrl-C.
//! - `CEREMONY_FAILPOINT_HIDE_MECHANISMS=CKM_A,CKM_B` drops those names from
//!   the token's C_GetMechanismList answer, so a test can show what the tool
//!   does with a real token that lacks a mechanism.

// A test-only crash point says where it stopped.
#![allow(clippy::print_stderr)]

/// How long a paused process waits for `resume` before it aborts.
#[cfg(feature = "failpoints")]
pub const PAUSE_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

#[cfg(feature = "failpoints")]
mod armed {
    use std::collections::HashMap;
    use std::io::Write;
    use std::path::PathBuf;
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};

    /// What the environment asked for, read once.
    pub struct Config {
        /// (point name, occurrence, pause instead of abort)
        target: Option<(String, u64, bool)>,
        pause_dir: Option<PathBuf>,
        trace: Option<PathBuf>,
    }

    fn config() -> &'static Config {
        static CONFIG: OnceLock<Config> = OnceLock::new();
        CONFIG.get_or_init(|| {
            let target = std::env::var("CEREMONY_FAILPOINT").ok().map(|v| {
                let (pause, rest) = match v.strip_prefix("pause:") {
                    Some(r) => (true, r.to_string()),
                    None => (false, v.clone()),
                };
                // Point names contain ':' but never '@'.
                match rest.rsplit_once('@') {
                    Some((name, n)) => match n.parse::<u64>() {
                        Ok(n) if n > 0 => (name.to_string(), n, pause),
                        _ => (rest.clone(), 1, pause),
                    },
                    None => (rest, 1, pause),
                }
            });
            Config {
                target,
                pause_dir: std::env::var_os("CEREMONY_FAILPOINT_DIR").map(PathBuf::from),
                trace: std::env::var_os("CEREMONY_FAILPOINT_TRACE").map(PathBuf::from),
            }
        })
    }

    /// Hits per point name so far in this process.
    fn count(name: &str) -> u64 {
        static COUNTS: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
        let mut m = COUNTS
            .get_or_init(|| Mutex::new(HashMap::new()))
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let n = m.entry(name.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    pub fn hit(name: &str) {
        let c = config();
        if c.target.is_none() && c.trace.is_none() {
            return;
        }
        let n = count(name);
        if let Some(trace) = &c.trace {
            let line = format!("{name}@{n}\n");
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(trace)
                .and_then(|mut f| f.write_all(line.as_bytes()));
        }
        let Some((target, at, pause)) = &c.target else {
            return;
        };
        if target != name || *at != n {
            return;
        }
        if !*pause {
            eprintln!("failpoint {name}: aborting");
            std::process::abort();
        }
        let Some(dir) = &c.pause_dir else {
            eprintln!("failpoint pause:{name}: CEREMONY_FAILPOINT_DIR is not set; aborting");
            std::process::abort();
        };
        eprintln!(
            "failpoint pause:{name}@{n}: waiting for {}",
            dir.join("resume").display()
        );
        let _ = std::fs::write(dir.join("paused.new"), format!("{name}@{n}\n"))
            .and_then(|()| std::fs::rename(dir.join("paused.new"), dir.join("paused")));
        let start = Instant::now();
        while !dir.join("resume").exists() {
            if start.elapsed() > super::PAUSE_LIMIT {
                eprintln!("failpoint pause:{name}: nobody resumed it; aborting");
                std::process::abort();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        eprintln!("failpoint pause:{name}@{n}: resumed");
    }
}

/// Crashes or pauses here if the test asked for it (see the module docs).
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    armed::hit(name);
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// Mechanism names a test asked to hide from the token (see the module docs).
#[cfg(feature = "failpoints")]
pub fn hidden_mechanisms() -> Vec<String> {
    std::env::var("CEREMONY_FAILPOINT_HIDE_MECHANISMS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hidden_mechanisms() -> Vec<String> {
    Vec::new()
}

/// `CEREMONY_TEST_HOLD_AT_LEAF=N`: at the N-th leaf checkpoint (`n`), says
/// so on stderr and holds the run until `stop_requested` (Ctrl-C) or a
/// minute has passed, so a test can press Ctrl-C mid-leaves at a known point.
#[cfg(feature = "failpoints")]
pub fn hold_at_leaf(n: usize, stop_requested: fn() -> bool) {
    let hold = std::env::var("CEREMONY_TEST_HOLD_AT_LEAF")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if hold == Some(n) {
        eprintln!("\ntest: holding at leaf {n} for Ctrl-C");
        let start = std::time::Instant::now();
        while !stop_requested() && start.elapsed() < std::time::Duration::from_secs(60) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
