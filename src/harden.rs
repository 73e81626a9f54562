//! Process hardening: this process never writes a core dump.
//!
//! Why: while a ceremony runs, its memory holds the PIN, the leaf private
//! keys and sa.key before they are written, and an auditor's age identity
//! during `audit verify`. With a software token (SoftHSM, kryoptic) the
//! PKCS#11 module runs inside this process, so its memory also holds the CA
//! private keys in clear. A crash, a SIGQUIT or SIGABRT, or `gcore` would
//! put all of that in a file on the laptop's disk, where no zeroizing
//! reaches it. So before anything is read, the core size limit goes to 0
//! (soft and hard: a child or a later `ulimit -c` cannot raise it) and the
//! process is marked not dumpable (PR_SET_DUMPABLE 0), which also stops a
//! core_pattern pipe helper and refuses ptrace attach by the same user.

use std::io;

use rustix::process::{Resource, Rlimit};

/// Sets RLIMIT_CORE to 0 (soft and hard) and, on Linux, PR_SET_DUMPABLE to 0.
pub fn no_core_dumps() -> io::Result<()> {
    rustix::process::setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )?;
    #[cfg(target_os = "linux")]
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_core_limit_is_zero_afterwards() {
        // Lowering a limit needs no privilege; the test process keeps it, which is harmless.
        super::no_core_dumps().unwrap();
        let l = rustix::process::getrlimit(rustix::process::Resource::Core);
        assert_eq!((l.current, l.maximum), (Some(0), Some(0)));
    }
}
