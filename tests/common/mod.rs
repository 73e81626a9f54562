//! The one integration-test fixture: a throwaway SoftHSM2 token per test
//! (`softhsm`), always guarded, the binary under test and every child with
//! a cleared environment, stdin null and a deadline (`run`), the one plan
//! template (`plan`), tree snapshots (`tree`), certificate readers
//! (`x509`), real peers on 127.0.0.1 (`peers`), the audit record's readers
//! (`audit`), the CA hierarchy checked end to end (`cas`), and declared
//! skips (`skip`).
//!
//! What it must not do: touch any token but the one in the test's own temp
//! dir, or kill any process it did not start.

#![allow(dead_code, unused_imports)] // each test binary uses a different part

mod audit;
mod cas;
mod peers;
mod plan;
mod run;
mod skip;
mod softhsm;
mod tree;
mod x509;

pub use audit::*;
pub use cas::*;
pub use peers::*;
pub use plan::*;
pub use run::{CHILD_TIMEOUT, Ended, Output, Running, SHORT, bin, bin_has_failpoints, run};
pub use skip::*;
pub use softhsm::*;
pub use tree::*;
pub use x509::*;

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The only PKCS#11 module a test may point the binary at.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The package root (plans, fixtures and scripts are read from it).
pub const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
/// Files that exist but are not PKCS#11 modules, for the bad-module cases.
/// Loading them cannot reach any token.
pub const NOT_PKCS11: &[&str] = &[
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
];
/// The demo auditor's age recipient (its identity is in ceremony/plans/).
pub const AUDIT_RECIPIENT: &str = "age1rfjvanyx48qxdll0q8wkrca6kpkfluxp4gal0ws7cp4awt900vpsf0sp9u";
/// The plan labels of the four CAs in `plan_toml`, root first.
pub const LABELS: [&str; 4] = ["root-ca", "kubernetes-ca", "etcd-ca", "front-proxy-ca"];
/// The roles, in the order the ceremony makes them (failpoint names use these).
pub const ROLES: [&str; 4] = ["root", "kubernetes", "etcd", "front-proxy"];

/// Random bytes from the OS, hex-encoded.
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("reading /dev/urandom");
    hex::encode(b)
}

/// Writes a new file with an exact mode (not narrowed by the umask).
pub fn write_file(path: &Path, contents: &[u8], mode: u32) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.set_permissions(fs::Permissions::from_mode(mode))
        .expect("chmod");
    f.write_all(contents).expect("write");
}

/// Writes a secret file (0600) into a test's scratch directory, replacing it.
pub fn write_secret(path: &Path, data: &[u8]) {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.write_all(data).expect("write");
}

pub fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
