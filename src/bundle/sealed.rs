//! A node delivered encrypted: its files as one tar archive, made in memory
//! (never on disk in clear), for `age -d -i KEY nodes/<name>.tar.age | tar
//! -x -C /` on the node.
//!
//! Paths are relative to `/` (`etc/kubernetes/…`), owned by root:root
//! (uid and gid 0, names `root`), with the modes the plaintext bundle has
//! and one mtime (the ceremony's), so the archive depends on its files
//! alone. Directories are listed from the bundle's own (`etc/kubernetes`,
//! never `etc`), so extracting into `/` changes no system directory. The
//! buffer is sized beforehand (no reallocation leaves a copy of a key
//! behind) and wiped on drop.

use std::collections::BTreeSet;

use zeroize::Zeroizing;

use super::write::HeldFile;

/// Top-level system directories the archive creates implicitly, never as
/// entries of its own (their owner, mode and mtime stay the node's).
const SYSTEM_DIRS: [&str; 3] = ["etc", "var", "var/lib"];

const BLOCK: usize = 512;

/// Bytes the archive can take at most: a header per entry (and a GNU
/// long-name entry of two blocks for a long path), the contents padded to
/// blocks, and the two zero blocks that end it.
fn capacity(files: &[HeldFile], dirs: usize) -> usize {
    files
        .iter()
        .map(|(p, b, _)| BLOCK + b.len().div_ceil(BLOCK) * BLOCK + long_name(p))
        .sum::<usize>()
        + dirs * 3 * BLOCK
        + 2 * BLOCK
}

fn long_name(path: &str) -> usize {
    if path.len() + 1 >= 100 {
        BLOCK + (path.len() + 1).div_ceil(BLOCK) * BLOCK
    } else {
        0
    }
}

/// The archive of a node's files (paths relative to the node's root, as
/// `etc/kubernetes/pki/ca.crt`); `mtime` in seconds since the epoch.
pub fn tar(files: &[HeldFile], mtime: u64) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut dirs = BTreeSet::new();
    for (path, ..) in files {
        for d in std::path::Path::new(path).ancestors().skip(1) {
            let d = d.to_string_lossy();
            if !d.is_empty() && !SYSTEM_DIRS.contains(&d.as_ref()) {
                dirs.insert(d.into_owned());
            }
        }
    }
    let size = capacity(files, dirs.len());
    let mut b = tar::Builder::new(Vec::with_capacity(size));
    b.mode(tar::HeaderMode::Deterministic);
    let header = |kind: tar::EntryType, mode: u32, len: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        let _ = h.set_username("root");
        let _ = h.set_groupname("root");
        h.set_mtime(mtime);
        h.set_size(len);
        h
    };
    for d in &dirs {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, format!("{d}/"), std::io::empty())?;
    }
    let mut sorted: Vec<&HeldFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, bytes, mode) in sorted {
        let mut h = header(tar::EntryType::Regular, *mode, bytes.len() as u64);
        b.append_data(&mut h, path, &bytes[..])?;
    }
    Ok(Zeroizing::new(b.into_inner()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_holds_the_files_with_their_modes_owned_by_root() {
        let files: Vec<HeldFile> = vec![
            (
                "etc/kubernetes/pki/etcd/server.key".into(),
                Zeroizing::new(b"k".to_vec()),
                0o600,
            ),
            (
                "etc/kubernetes/kubelet.conf".into(),
                Zeroizing::new(b"c".repeat(700)),
                0o600,
            ),
            (
                "etc/kubernetes/pki/ca.crt".into(),
                Zeroizing::new(b"ca".to_vec()),
                0o644,
            ),
        ];
        let t = tar(&files, 1_700_000_000).unwrap();
        // Never reallocated (a copy of a key would be left behind).
        assert_eq!(t.capacity(), capacity(&files, 3));
        let mut a = tar::Archive::new(&t[..]);
        let got: Vec<(String, u32, u64, u64, u64)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                    h.size().unwrap(),
                )
            })
            .collect();
        let at = 1_700_000_000;
        assert_eq!(
            got,
            [
                ("etc/kubernetes/".into(), 0o755, 0, at, 0),
                ("etc/kubernetes/pki/".into(), 0o755, 0, at, 0),
                ("etc/kubernetes/pki/etcd/".into(), 0o755, 0, at, 0),
                ("etc/kubernetes/kubelet.conf".into(), 0o600, 0, at, 700),
                ("etc/kubernetes/pki/ca.crt".into(), 0o644, 0, at, 2),
                ("etc/kubernetes/pki/etcd/server.key".into(), 0o600, 0, at, 1),
            ]
        );
        // The same files make the same archive.
        assert_eq!(tar(&files, at).unwrap(), t);
    }
}
