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
/// A bundle has a few dozen files per node; stop before a wrong directory eats memory.
pub const MAX_ENTRIES: usize = 100_000;

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

/// A directory as read, keyed by relative path.
#[derive(Default)]
pub struct Tree {
    pub entries: BTreeMap<String, Entry>,
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
                        match read_regular(&path, MAX_FILE, Links::Refuse) {
                            Ok(b) => Content::File(b),
                            Err(ReadError::NotRegular { .. }) => Content::Special,
                            Err(ReadError::TooLarge { .. }) => {
                                Content::Unreadable(format!("larger than {} MiB", MAX_FILE >> 20))
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
    pub fn children<'a>(&'a self, prefix: &str) -> Vec<&'a str> {
        self.under(prefix)
            .map(|(k, _)| k)
            .filter(|k| !k.contains('/'))
            .collect()
    }
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
    fn node_names_come_from_the_layout_only() {
        let f = |p: &str| node_name_from_path(Path::new(p));
        assert_eq!(f("/x/out/nodes/cp1/etc/kubernetes").as_deref(), Some("cp1"));
        assert_eq!(f("out/nodes/w-1").as_deref(), Some("w-1"));
        assert_eq!(f("/tmp/abc/etc/kubernetes"), None);
        assert_eq!(f("etc/kubernetes"), None);
    }
}
