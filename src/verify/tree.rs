//! The I/O edge of `verify` and `inspect`: reads a directory into memory once
//! (contents, modes, symlinks), without following links or writing anything.
//! Every check after this works on the `Tree` alone.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use zeroize::Zeroizing;

use crate::fsread::{Links, ReadError, read_regular};

/// A bundle file never needs more; anything larger is reported, not read.
pub const MAX_FILE: u64 = 4 << 20;
/// OUT's SHA256SUMS: about 340 bytes a worker (its three files), so 64 MiB
/// is some 190,000 workers.
pub const MAX_SUMS: u64 = 64 << 20;
/// A bundle has a few dozen files and directories per control-plane node
/// and seven per worker (1,000,000: some 140,000 workers); stop before a
/// wrong directory eats memory.
pub const MAX_ENTRIES: usize = 1_000_000;

/// The most read of the file at `rel`: OUT's SHA256SUMS and sealed audit
/// log grow with the cluster (the log, 1.5 KB a worker, passed 4 MiB at
/// about 2,700 workers and `verify` refused it), every other file is one
/// node's or one CA's.
fn cap(rel: &str) -> u64 {
    match rel {
        crate::bundle::layout::SHA256SUMS => MAX_SUMS,
        crate::bundle::layout::AUDIT_LOG => crate::fsread::cap::AUDIT_LOG,
        _ => MAX_FILE,
    }
}

/// One directory entry, by its path relative to the top (`/`-separated).
pub enum Content {
    /// A regular file's bytes; zeroized on drop because key files are read too.
    File(Zeroizing<Vec<u8>>),
    Dir,
    Symlink,
    /// A device, socket or FIFO.
    Special,
    /// Could not be read (permissions, size): the reason.
    Unreadable(String),
}

pub struct Entry {
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    pub content: Content,
}

/// Decrypts an archive: None when no identity given is its recipient's.
pub type Decrypt<'a> = dyn Fn(&[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, String> + 'a;

/// What became of a node delivered encrypted (`nodes/<name>.tar.age`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealed {
    /// Decrypted and extracted into the tree as `nodes/<name>/…`.
    Opened,
    /// No identity given: its files are not checked.
    Locked,
    /// It could not be opened: why.
    Failed(String),
}

/// A directory as read, keyed by relative path.
#[derive(Default)]
pub struct Tree {
    pub entries: BTreeMap<String, Entry>,
    /// Paths extracted from encrypted nodes' archives (not files of OUT:
    /// SHA256SUMS lists the archive, not them).
    pub opened: std::collections::BTreeSet<String>,
    /// Every `nodes/<name>.tar.age`, by node name.
    pub sealed: BTreeMap<String, Sealed>,
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print contents: they include private keys.
        f.debug_struct("Tree")
            .field("paths", &self.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Tree {
    /// Reads `dir` recursively. Errors only when `dir` itself cannot be listed.
    pub fn load(dir: &Path) -> std::io::Result<Tree> {
        let mut tree = Tree::default();
        tree.walk(dir, "")?;
        Ok(tree)
    }

    fn walk(&mut self, dir: &Path, prefix: &str) -> std::io::Result<()> {
        let mut names: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            if self.entries.len() >= MAX_ENTRIES {
                return Err(std::io::Error::other(format!(
                    "more than {MAX_ENTRIES} entries: not a bundle"
                )));
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            let path = e.path();
            let entry = match std::fs::symlink_metadata(&path) {
                Err(err) => Entry {
                    mode: 0,
                    content: Content::Unreadable(err.to_string()),
                },
                Ok(m) => {
                    let mode = m.permissions().mode() & 0o7777;
                    let ft = m.file_type();
                    let content = if ft.is_symlink() {
                        Content::Symlink
                    } else if ft.is_dir() {
                        Content::Dir
                    } else if !ft.is_file() {
                        Content::Special
                    } else {
                        // Listed as a regular file: a link or FIFO swapped in
                        // since is refused, not followed or waited on.
                        let max = cap(&rel);
                        match read_regular(&path, max, Links::Refuse) {
                            Ok(b) => Content::File(b),
                            Err(ReadError::NotRegular { .. }) => Content::Special,
                            Err(ReadError::TooLarge { .. }) => {
                                Content::Unreadable(format!("larger than {} MiB", max >> 20))
                            }
                            Err(ReadError::Io { source, .. }) => {
                                Content::Unreadable(source.to_string())
                            }
                        }
                    };
                    Entry { mode, content }
                }
            };
            let is_dir = matches!(entry.content, Content::Dir);
            self.entries.insert(rel.clone(), entry);
            if is_dir
                && let Err(err) = self.walk(&path, &format!("{rel}/"))
                && let Some(en) = self.entries.get_mut(&rel)
            {
                en.content = Content::Unreadable(err.to_string());
            }
        }
        Ok(())
    }

    pub fn get(&self, rel: &str) -> Option<&Entry> {
        self.entries.get(rel)
    }

    /// The bytes of a regular file.
    pub fn file(&self, rel: &str) -> Option<&[u8]> {
        match self.entries.get(rel).map(|e| &e.content) {
            Some(Content::File(b)) => Some(b.as_slice()),
            _ => None,
        }
    }

    pub fn is_dir(&self, rel: &str) -> bool {
        matches!(
            self.entries.get(rel).map(|e| &e.content),
            Some(Content::Dir)
        )
    }

    /// Entries strictly under `prefix` (which ends in `/`), relative to it.
    pub fn under<'a>(
        &'a self,
        prefix: &str,
    ) -> impl Iterator<Item = (&'a str, &'a Entry)> + use<'a> {
        let owned = prefix.to_string();
        let n = owned.len();
        self.entries
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(k, _)| k.starts_with(owned.as_str()))
            .map(move |(k, e)| (&k[n..], e))
    }

    /// Names of the direct children of directory `prefix` (ending in `/`, or "" for the top).
    /// Notes every encrypted node (`nodes/<name>.tar.age`) and, given a way
    /// to decrypt one, extracts its archive into the tree under
    /// `nodes/<name>/` with the modes it carries. An archive entry that is
    /// not a plain file or directory owned by root, or that leaves the
    /// node's directory, fails the node.
    pub fn open_sealed(&mut self, decrypt: Option<&Decrypt<'_>>) {
        let archives: Vec<(String, String)> = self
            .entries
            .keys()
            .filter_map(|k| {
                crate::bundle::layout::sealed_node_of(k).map(|n| (n.to_string(), k.clone()))
            })
            .collect();
        for (name, file) in archives {
            let is_age = self
                .file(&file)
                .is_some_and(|b| b.starts_with(b"age-encryption.org/v1\n"));
            let state = match (decrypt, self.file(&file)) {
                (_, Some(_)) if !is_age => Sealed::Failed("not an age file".into()),
                (None, _) => Sealed::Locked,
                (Some(_), None) => Sealed::Failed("not a readable regular file".into()),
                (Some(d), Some(bytes)) => match d(bytes) {
                    Err(e) => Sealed::Failed(e),
                    Ok(None) => Sealed::Locked,
                    Ok(Some(plain)) => match untar(&plain, &format!("nodes/{name}")) {
                        Err(e) => Sealed::Failed(e),
                        Ok(found) => {
                            if let Some((p, _)) =
                                found.iter().find(|(p, _)| self.entries.contains_key(p))
                            {
                                Sealed::Failed(format!("{p} is also in clear beside the archive"))
                            } else {
                                for (p, e) in found {
                                    self.opened.insert(p.clone());
                                    self.entries.insert(p, e);
                                }
                                Sealed::Opened
                            }
                        }
                    },
                },
            };
            self.sealed.insert(name, state);
        }
    }

    pub fn children<'a>(&'a self, prefix: &str) -> Vec<&'a str> {
        self.under(prefix)
            .map(|(k, _)| k)
            .filter(|k| !k.contains('/'))
            .collect()
    }
}

/// The entries of a node's archive under `top` (`nodes/<name>`), with the
/// directories leading to them.
fn untar(archive: &[u8], top: &str) -> Result<Vec<(String, Entry)>, String> {
    use std::io::Read;
    let mut out: Vec<(String, Entry)> = vec![(
        top.to_string(),
        Entry {
            mode: 0o755,
            content: Content::Dir,
        },
    )];
    let mut a = tar::Archive::new(archive);
    let entries = a.entries().map_err(|e| format!("not a tar archive: {e}"))?;
    for e in entries {
        let mut e = e.map_err(|e| format!("not a tar archive: {e}"))?;
        let path = e
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        let path = path.trim_end_matches('/').to_string();
        if Path::new(&path)
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(format!("entry {path:?} leaves the node's directory"));
        }
        let h = e.header();
        let (uid, gid) = (h.uid().unwrap_or(u64::MAX), h.gid().unwrap_or(u64::MAX));
        if uid != 0 || gid != 0 {
            return Err(format!("{path} is owned by {uid}:{gid}, not root:root"));
        }
        let mode = h.mode().map_err(|e| e.to_string())? & 0o7777;
        let content = match h.entry_type() {
            tar::EntryType::Directory => Content::Dir,
            tar::EntryType::Regular => {
                // The header's size is the archive's word: bounded first.
                if e.size() > MAX_FILE {
                    return Err(format!("{path} is larger than {MAX_FILE} bytes"));
                }
                let mut b = Zeroizing::new(Vec::with_capacity(e.size() as usize));
                e.read_to_end(&mut b).map_err(|e| e.to_string())?;
                Content::File(b)
            }
            other => return Err(format!("{path} is a {other:?}, not a file or directory")),
        };
        // The directories above an entry (`etc` is implicit in the archive).
        let mut above = Path::new(&path).parent();
        while let Some(d) = above.filter(|d| !d.as_os_str().is_empty()) {
            let k = format!("{top}/{}", d.to_string_lossy());
            if !out.iter().any(|(p, _)| *p == k) {
                out.push((
                    k,
                    Entry {
                        mode: 0o755,
                        content: Content::Dir,
                    },
                ));
            }
            above = d.parent();
        }
        let k = format!("{top}/{path}");
        out.retain(|(p, _)| *p != k);
        out.push((k, Entry { mode, content }));
    }
    Ok(out)
}

/// The node name a path implies: `…/nodes/<name>/etc/kubernetes` or `…/nodes/<name>`.
pub fn node_name_from_path(path: &Path) -> Option<String> {
    let parts: Vec<String> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let n = parts.len();
    let name_at = if n >= 4 && parts[n - 2] == "etc" && parts[n - 1] == "kubernetes" {
        n - 3
    } else if n >= 2 {
        n - 1
    } else {
        return None;
    };
    (name_at >= 1 && parts[name_at - 1] == "nodes").then(|| parts[name_at].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_entry_is_bounded_owned_by_root_and_stays_inside() {
        let entry = |path: &str, uid: u64, size: u64| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o600);
            h.set_uid(uid);
            h.set_gid(0);
            h.set_size(size);
            h.set_path(path).unwrap();
            h.set_cksum();
            let mut v = h.as_bytes().to_vec();
            v.extend(std::iter::repeat_n(0u8, 1024));
            v
        };
        let ok = untar(&entry("etc/kubernetes/a.key", 0, 1), "nodes/n").unwrap();
        assert!(
            ok.iter()
                .any(|(p, e)| p == "nodes/n/etc/kubernetes/a.key" && e.mode == 0o600)
        );
        assert!(ok.iter().any(|(p, _)| p == "nodes/n/etc"));
        let err = |a: &[u8]| untar(a, "nodes/n").err().unwrap_or_default();
        let huge = err(&entry("etc/a.key", 0, 1 << 40));
        assert!(huge.contains("larger than"), "{huge}");
        let user = err(&entry("etc/a.key", 1000, 1));
        assert!(user.contains("not root:root"), "{user}");
    }

    /// OUT's SHA256SUMS and sealed log grow with the cluster: read past the
    /// cap of a node's file, which still holds for every other file.
    #[test]
    fn the_files_that_grow_with_the_cluster_have_caps_of_their_own() {
        let d = tempfile::tempdir().unwrap();
        let size = MAX_FILE + 1;
        for rel in ["SHA256SUMS", "audit.log.age", "transcript.md"] {
            std::fs::File::create(d.path().join(rel))
                .unwrap()
                .set_len(size)
                .unwrap();
        }
        let tree = Tree::load(d.path()).unwrap();
        assert_eq!(
            tree.file("SHA256SUMS").map(<[u8]>::len),
            Some(size as usize)
        );
        assert_eq!(
            tree.file("audit.log.age").map(<[u8]>::len),
            Some(size as usize)
        );
        assert!(matches!(
            tree.get("transcript.md").map(|e| &e.content),
            Some(Content::Unreadable(why)) if why == "larger than 4 MiB"
        ));
    }

    #[test]
    fn node_names_come_from_the_layout_only() {
        let f = |p: &str| node_name_from_path(Path::new(p));
        assert_eq!(f("/x/out/nodes/cp1/etc/kubernetes").as_deref(), Some("cp1"));
        assert_eq!(f("out/nodes/w-1").as_deref(), Some("w-1"));
        assert_eq!(f("/tmp/abc/etc/kubernetes"), None);
        assert_eq!(f("etc/kubernetes"), None);
    }
}
