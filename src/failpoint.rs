//! Test-only crash points. Built only with the cargo feature `failpoints`:
//! `CEREMONY_FAILPOINT=<name>` aborts the process at that point, the way a
//! power cut or SIGKILL would, so tests can prove a rerun resumes cleanly.
//! Without the feature `hit` is an empty inline function.

/// Crashes here if the test asked for it.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    if std::env::var("CEREMONY_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}
