//! Directory trees as values: every path with its kind, mode and bytes,
//! so a test can prove that nothing changed, or say what did.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One entry of a directory tree snapshot.
#[derive(Clone, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        bytes: Vec<u8>,
    },
    Symlink {
        target: PathBuf,
    },
    /// A file over `LARGE` bytes (a sparse file a case makes): compared by
    /// its size and mode, never read.
    Large {
        mode: u32,
        len: u64,
    },
    Other,
}

/// Files above this are recorded as `Node::Large`.
const LARGE: u64 = 64 << 20;

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Node::Dir { mode } => write!(f, "dir {mode:o}"),
            Node::File { mode, bytes } => {
                use sha2::Digest;
                write!(
                    f,
                    "file {mode:o} {} bytes sha256 {}",
                    bytes.len(),
                    hex::encode(sha2::Sha256::digest(bytes))
                )
            }
            Node::Symlink { target } => write!(f, "symlink -> {}", target.display()),
            Node::Large { mode, len } => write!(f, "file {mode:o} {len} bytes (not read)"),
            Node::Other => f.write_str("other"),
        }
    }
}

/// Every path under `root` (relative), with its kind, mode and bytes.
/// Symlinks are recorded, never followed. Bounded: at most 10,000 entries.
pub fn snapshot_tree(root: &Path) -> BTreeMap<PathBuf, Node> {
    const MAX: usize = 10_000;
    let mut map = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        assert!(
            map.len() < MAX,
            "more than {MAX} entries under {}",
            root.display()
        );
        let full = root.join(&rel);
        let meta =
            fs::symlink_metadata(&full).unwrap_or_else(|e| panic!("stat {}: {e}", full.display()));
        let mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        let node = if ft.is_symlink() {
            Node::Symlink {
                target: fs::read_link(&full).expect("readlink"),
            }
        } else if ft.is_dir() {
            for e in
                fs::read_dir(&full).unwrap_or_else(|e| panic!("readdir {}: {e}", full.display()))
            {
                stack.push(rel.join(e.expect("dir entry").file_name()));
            }
            Node::Dir { mode }
        } else if ft.is_file() && meta.len() > LARGE {
            Node::Large {
                mode,
                len: meta.len(),
            }
        } else if ft.is_file() {
            Node::File {
                mode,
                bytes: fs::read(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display())),
            }
        } else {
            Node::Other
        };
        if !rel.as_os_str().is_empty() {
            map.insert(rel, node);
        }
    }
    map
}

/// Lists what differs between two tree snapshots, for assertion messages.
pub fn tree_diff(before: &BTreeMap<PathBuf, Node>, after: &BTreeMap<PathBuf, Node>) -> String {
    let mut s = String::new();
    for (p, n) in before {
        match after.get(p) {
            None => s.push_str(&format!("  removed {} ({n:?})\n", p.display())),
            Some(m) if m != n => {
                s.push_str(&format!("  changed {}: {n:?} -> {m:?}\n", p.display()))
            }
            _ => {}
        }
    }
    for (p, n) in after {
        if !before.contains_key(p) {
            s.push_str(&format!("  added {} ({n:?})\n", p.display()));
        }
    }
    s
}

/// Every regular file under `dir`, relative to it, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for p in entries {
            let meta = fs::symlink_metadata(&p).expect("metadata");
            if meta.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(
                    p.strip_prefix(base)
                        .expect("under base")
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

pub fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}
