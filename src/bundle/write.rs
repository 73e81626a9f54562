//! The one writer of ceremony outputs: nothing else puts a file in OUT.
//!
//! Everything goes into a staging directory beside the output
//! (`.<out>.staging`), each file created with `create_new` and an explicit
//! mode; at the commit every file and directory of it is made durable in
//! one pass (`syncfs` of its file system, or an fsync of each where that
//! call is missing), then the staging directory is renamed onto the output
//! path in one step and the parent fsynced. An interrupted run therefore
//! never leaves an output that looks complete, and an existing output is
//! never overwritten. Files are not fsynced one by one as they are written:
//! nothing in the staging directory counts until the rename, and a run that
//! dies before it starts the staging directory afresh, so one durable pass
//! before the rename gives the same guarantee for one disk flush instead of
//! one per file (20,000 for a 10,000-node bundle).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::listing::Listing;

/// Files holding private keys or kubeconfigs.
pub const SECRET: u32 = 0o600;
/// Certificates and other public files.
pub const PUBLIC: u32 = 0o644;

const MARKER: &str = ".ceremony-staging";

/// Directories `Staging` remembers having made, at most.
const MADE_KNOWN: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("output {} already exists and is not empty", .0.display())]
    Exists(PathBuf),
    #[error("output {} is a symbolic link", .0.display())]
    Symlink(PathBuf),
    #[error("output {} exists and is not a directory", .0.display())]
    NotDir(PathBuf),
    #[error("{} holds the unfinished output of another plan or of other inputs", .0.display())]
    ForeignStaging(PathBuf),
    #[error("cannot write {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing to write outside the output: {0}")]
    BadPath(String),
    #[error("cannot keep the list of files written, in {}: {source}", .dir.display())]
    Listing {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("output {} does not end in a directory name", .0.display())]
    NoName(PathBuf),
    #[error("output {}: the run also writes {name} beside it, a name of {len} bytes; this file system allows {max}", .out.display())]
    NameTooLong {
        out: PathBuf,
        name: String,
        len: usize,
        max: usize,
    },
    #[error("output {}: the path {} is {len} bytes; the system allows {max}", .out.display(), .path.display())]
    PathTooLong {
        out: PathBuf,
        path: PathBuf,
        len: usize,
        max: usize,
    },
    #[error("output {}: its parent {} is not an existing directory", .out.display(), .parent.display())]
    NoParent { out: PathBuf, parent: PathBuf },
    #[error("output {}: the run cannot write in its parent directory {} ({why})", .out.display(), .parent.display())]
    ParentNotWritable {
        out: PathBuf,
        parent: PathBuf,
        why: String,
    },
    #[error("output {} is a mount point: the finished output, built beside it, cannot be renamed onto another file system", .0.display())]
    MountPoint(PathBuf),
}

impl OutputError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            OutputError::Exists(_) => "choose a new --out directory; outputs are never overwritten".into(),
            OutputError::Symlink(_) | OutputError::NotDir(_) => "give --out a plain directory path that does not exist yet".into(),
            OutputError::ForeignStaging(p) => format!(
                "to resume its run, put back the plan and the files it names (names file, CSRs) as that run read them; otherwise check it and remove it by hand ({}) if it is stale",
                p.display()
            ),
            OutputError::Io { source, .. } if source.raw_os_error() == Some(28) => {
                "the disk is full: free space or choose another --out, then run again (the ceremony resumes)".into()
            }
            OutputError::Io { .. } | OutputError::Listing { .. } => "check the directory's permissions and free space, then run again (the ceremony resumes)".into(),
            OutputError::BadPath(_) => return None,
            OutputError::NoName(_) => "give --out a directory path such as ./out".into(),
            OutputError::NameTooLong { max, .. } => format!(
                "choose a shorter --out name: at most {} bytes here",
                max.saturating_sub(LONGEST_SUFFIX)
            ),
            OutputError::PathTooLong { .. } => "choose a --out path nearer the root of the file system".into(),
            OutputError::NoParent { parent, .. } => format!("create {} first, or choose another --out", crate::fmt::shown_path(parent)),
            OutputError::ParentNotWritable { .. } => "choose a --out in a directory this user can write to".into(),
            OutputError::MountPoint(_) => "give --out a path that does not exist yet (the run creates it)".into(),
        })
    }

    /// Whether this is the operator's input at fault (exit 2) rather than the system (exit 5).
    pub fn is_usage(&self) -> bool {
        !matches!(
            self,
            OutputError::Io { .. } | OutputError::Listing { .. } | OutputError::BadPath(_)
        )
    }
}

fn listing_error(dir: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
    move |source| OutputError::Listing {
        dir: dir.to_path_buf(),
        source,
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn staging_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    out.with_file_name(format!(".{name}.staging"))
}

/// Beside the staging directory, not in it: the SHA-256 of the plan that owns
/// the staging directory. Kept outside so nothing has to be removed from the
/// staging directory before the rename, and a crash just before the rename
/// still leaves it recognisably this plan's, to be resumed.
fn marker_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    out.with_file_name(format!(".{name}{MARKER}"))
}

/// What the run writes beside OUT, as suffixes of `.<name>`: the staging
/// directory and its marker, the journal and the journal being assembled.
const SIBLING_SUFFIXES: [&str; 4] = [".staging", MARKER, ".journal", ".journal-new"];
/// Bytes the longest sibling name adds to OUT's name (its dot and suffix).
const LONGEST_SUFFIX: usize = 1 + MARKER.len();
/// Linux's PATH_MAX, the NUL included.
const PATH_MAX: usize = 4096;
/// NAME_MAX where the file system does not say.
const NAME_MAX: usize = 255;

/// Checks, without writing anything, that `out` may receive this plan's
/// output, so that a run stops on it before the token is opened rather than
/// after the CA keys exist: OUT and every name the run writes beside it fit
/// the file system's name and path limits; its parent is an existing
/// directory this process may write in; OUT is absent or an empty
/// directory, not a symlink, and not a mount point (the staging directory
/// is renamed onto it); any staging directory beside it is the unfinished
/// one of `owner`, the inputs SHA-256 of this run (the plan and every file
/// it names), which its marker holds.
pub fn check_output(out: &Path, owner: &[u8; 32]) -> Result<(), OutputError> {
    let Some(name) = out
        .file_name()
        .filter(|_| !matches!(out.components().next_back(), Some(Component::ParentDir)))
    else {
        return Err(OutputError::NoName(out.to_path_buf()));
    };
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let max = rustix::fs::statvfs(parent)
        .ok()
        .and_then(|v| usize::try_from(v.f_namemax).ok())
        .filter(|m| *m > 0)
        .unwrap_or(NAME_MAX);
    let siblings = SIBLING_SUFFIXES.map(|suffix| {
        let mut n = std::ffi::OsString::from(".");
        n.push(name);
        n.push(suffix);
        n
    });
    for n in std::iter::once(name).chain(siblings.iter().map(|n| n.as_os_str())) {
        if n.len() > max {
            return Err(OutputError::NameTooLong {
                out: out.to_path_buf(),
                name: crate::fmt::shown(&n.to_string_lossy()).into_owned(),
                len: n.len(),
                max,
            });
        }
        let path = out.with_file_name(n);
        if path.as_os_str().len() >= PATH_MAX {
            return Err(OutputError::PathTooLong {
                out: out.to_path_buf(),
                len: path.as_os_str().len(),
                path,
                max: PATH_MAX - 1,
            });
        }
    }
    let parent_meta = match fs::metadata(parent) {
        Ok(m) if m.is_dir() => m,
        _ => {
            return Err(OutputError::NoParent {
                out: out.to_path_buf(),
                parent: parent.to_path_buf(),
            });
        }
    };
    use rustix::fs::Access;
    rustix::fs::access(parent, Access::WRITE_OK | Access::EXEC_OK).map_err(|e| {
        OutputError::ParentNotWritable {
            out: out.to_path_buf(),
            parent: parent.to_path_buf(),
            why: std::io::Error::from(e).to_string(),
        }
    })?;
    match fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(out)(e)),
        Ok(m) if m.file_type().is_symlink() => return Err(OutputError::Symlink(out.to_path_buf())),
        Ok(m) if !m.is_dir() => return Err(OutputError::NotDir(out.to_path_buf())),
        Ok(m) => {
            if fs::read_dir(out).map_err(io(out))?.next().is_some() {
                return Err(OutputError::Exists(out.to_path_buf()));
            }
            use std::os::unix::fs::MetadataExt;
            if m.dev() != parent_meta.dev() {
                return Err(OutputError::MountPoint(out.to_path_buf()));
            }
        }
    }
    let staging = staging_path(out);
    match fs::symlink_metadata(&staging) {
        Err(_) => Ok(()),
        Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
            Err(OutputError::ForeignStaging(staging))
        }
        // The marker is ours or foreign: bounded, never followed, never waited on.
        Ok(_) => match crate::fsread::read_regular(
            &marker_path(out),
            crate::fsread::cap::JOURNAL_SMALL,
            crate::fsread::Links::Refuse,
        ) {
            Ok(s) if s.trim_ascii() == hex::encode(owner).as_bytes() => Ok(()),
            _ => Err(OutputError::ForeignStaging(staging)),
        },
    }
}

/// A file of a node delivered encrypted, held in memory (wiped on drop)
/// until its archive is written: (path under the node, bytes, mode).
pub type HeldFile = (String, zeroize::Zeroizing<Vec<u8>>, u32);

/// The length of `nodes/<name>/`.
fn layout_node_prefix(node: &str) -> usize {
    super::layout::node_dir(node).len() + 1
}

/// An open staging directory.
pub struct Staging {
    out: PathBuf,
    dir: PathBuf,
    /// Nodes delivered encrypted: their files never reach the disk in
    /// clear; they are held here until `take_held` (then tar, then age).
    holding: std::collections::BTreeSet<String>,
    held: Mutex<std::collections::BTreeMap<String, Vec<HeldFile>>>,
    /// Relative paths written, in order, with their SHA-256 and mode.
    listing: Listing,
    /// Directories known to exist under `dir`, relative to it (shared by
    /// the threads of a [`Staging::put`]); at most [`MADE_KNOWN`].
    made: Mutex<HashSet<PathBuf>>,
    /// The process's umask (all bits when it cannot be read): a file's
    /// mode is set again after its creation only where the umask took
    /// some of it away.
    umask: u32,
    /// The staging directory, open since `begin`: `syncfs` through it
    /// reports a write-back error of any file since then.
    handle: File,
}

impl Staging {
    /// Starts a fresh staging directory, replacing this plan's own leftover
    /// from an interrupted run (its files are all derived from the token).
    pub fn begin(out: &Path, owner: &[u8; 32]) -> Result<Staging, OutputError> {
        check_output(out, owner)?;
        let dir = staging_path(out);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        // The marker first: a staging directory never exists without it.
        let marker = marker_path(out);
        match fs::remove_file(&marker) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&marker)(e)),
            _ => {}
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&marker)
            .map_err(io(&marker))?;
        f.write_all(format!("{}\n", hex::encode(owner)).as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io(&marker))?;
        fs::create_dir(&dir).map_err(io(&dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(io(&dir))?;
        let handle = File::open(&dir).map_err(io(&dir))?;
        let listing = Listing::new_in(&handle).map_err(listing_error(&dir))?;
        Ok(Staging {
            out: out.to_path_buf(),
            dir,
            holding: Default::default(),
            held: Mutex::default(),
            listing,
            made: Mutex::new(HashSet::new()),
            umask: umask(),
            handle,
        })
    }

    fn target(&self, rel: &str) -> Result<PathBuf, OutputError> {
        let p = Path::new(rel);
        if rel.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(OutputError::BadPath(rel.to_string()));
        }
        Ok(self.dir.join(p))
    }

    /// Creates one file (and its directories), with exactly `mode`. Paths
    /// are resolved from the staging directory's handle (`mkdirat`,
    /// `openat`), not walked from `/` again for every file and directory
    /// of a 10,000-node bundle.
    fn create(&self, rel: &str, mode: u32) -> Result<(PathBuf, File), OutputError> {
        use rustix::fs::{Mode, OFlags};
        let path = self.target(rel)?;
        let rel_path = Path::new(rel);
        if let Some(parent) = rel_path.parent()
            && !parent.as_os_str().is_empty()
            && !self.made().contains(parent)
        {
            // Top down, each missing directory once. Two threads may both
            // find one missing: the second sees EEXIST, which is fine.
            let mut missing: Vec<&Path> = {
                let made = self.made();
                rel_path
                    .ancestors()
                    .skip(1)
                    .take_while(|a| !a.as_os_str().is_empty() && !made.contains(*a))
                    .collect()
            };
            missing.reverse();
            for dir in missing {
                match rustix::fs::mkdirat(&self.handle, dir, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(io(&self.dir.join(dir))(e.into())),
                }
                let mut made = self.made();
                // Files come node by node: the directories of the nodes
                // being written are what is looked up again. Forgetting the
                // rest keeps memory flat (four directories a worker); one
                // forgotten is made again, EEXIST.
                if made.len() >= MADE_KNOWN {
                    made.clear();
                }
                made.insert(dir.to_path_buf());
            }
        }
        let fd = rustix::fs::openat(
            &self.handle,
            rel_path,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| io(&path)(e.into()))?;
        let f = File::from(fd);
        // The umask may have narrowed the mode; set it exactly.
        if self.umask & mode != 0 {
            f.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(io(&path))?;
        }
        crate::failpoint::hit("write-open");
        Ok((path, f))
    }

    fn made(&self) -> MutexGuard<'_, HashSet<PathBuf>> {
        self.made.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on, every file under `nodes/<name>/` of these nodes is held
    /// in memory instead of written ([`Staging::take_held`] hands it over).
    pub fn hold_nodes(&mut self, names: impl IntoIterator<Item = String>) {
        self.holding.extend(names);
    }

    /// The node a held path belongs to, if it is held.
    fn holder<'r>(&self, rel: &'r str) -> Option<&'r str> {
        super::layout::node_of(rel).filter(|n| self.holding.contains(*n))
    }

    /// Every file held for node `name` (paths relative to `nodes/<name>/`),
    /// in the order written; none are held for it afterwards.
    pub fn take_held(&self, name: &str) -> Vec<HeldFile> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.remove(name).unwrap_or_default()
    }

    /// Writes one output file (relative to the output root).
    pub fn write(&mut self, rel: &str, bytes: &[u8], mode: u32) -> Result<(), OutputError> {
        let sha = self.put(rel, bytes, mode)?;
        if self.holder(rel).is_none() {
            self.list(rel, &sha, mode)?;
        }
        Ok(())
    }

    fn list(&mut self, rel: &str, sha: &[u8; 32], mode: u32) -> Result<(), OutputError> {
        self.listing
            .push(rel, sha, mode)
            .map_err(listing_error(&self.dir))
    }

    /// Writes one output file like [`Staging::write`], from any thread
    /// (several may write at once), and returns its SHA-256 instead of
    /// listing it: the caller lists it with [`Staging::listed`], in the
    /// order it means the files to have.
    pub fn put(&self, rel: &str, bytes: &[u8], mode: u32) -> Result<[u8; 32], OutputError> {
        if let Some(node) = self.holder(rel) {
            // Never on disk in clear: held for the node's encrypted archive.
            self.target(rel)?;
            let inner = rel[layout_node_prefix(node)..].to_string();
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            held.entry(node.to_string()).or_default().push((
                inner,
                zeroize::Zeroizing::new(bytes.to_vec()),
                mode,
            ));
            return Ok(crate::x509::sha256(bytes));
        }
        let (path, mut f) = self.create(rel, mode)?;
        // No fsync here: `commit` makes the whole staging directory durable.
        f.write_all(bytes).map_err(io(&path))?;
        crate::failpoint::hit("write");
        Ok(crate::x509::sha256(bytes))
    }

    /// Writes `files` from `threads` threads at once, each a run of
    /// consecutive files, and lists them in the order given; on an error,
    /// the first in that order is returned. Most of writing many small files
    /// is the kernel's, creating them and their directories.
    pub fn write_all(
        &mut self,
        files: Vec<(String, Vec<u8>, u32)>,
        threads: usize,
    ) -> Result<(), OutputError> {
        let per = files.len().div_ceil(threads.max(1)).max(1);
        let shared: &Staging = self;
        let panicked = || io(&shared.dir)(std::io::Error::other("a writer thread panicked"));
        let results: Vec<Result<Vec<super::listing::Entry>, OutputError>> =
            std::thread::scope(|s| {
                let handles: Vec<_> = files
                    .chunks(per)
                    .map(|part| {
                        s.spawn(move || {
                            part.iter()
                                .map(|(rel, bytes, mode)| {
                                    Ok((rel.clone(), shared.put(rel, bytes, *mode)?, *mode))
                                })
                                .collect()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(panicked())))
                    .collect()
            });
        for r in results {
            self.listed(r?)?;
        }
        Ok(())
    }

    /// Lists files that [`Staging::put`] wrote, after those written so far
    /// (not the held ones: their node's archive is listed instead).
    pub fn listed(
        &mut self,
        files: impl IntoIterator<Item = (String, [u8; 32], u32)>,
    ) -> Result<(), OutputError> {
        for (rel, sha, mode) in files {
            if self.holder(&rel).is_none() {
                self.list(&rel, &sha, mode)?;
            }
        }
        Ok(())
    }

    /// Writes one output file as `fill` streams it (a large file never
    /// whole in memory); its SHA-256 is taken on the way. Returns what
    /// `fill` returned.
    pub fn write_with<T, E: From<OutputError>>(
        &mut self,
        rel: &str,
        mode: u32,
        fill: impl FnOnce(&mut dyn Write) -> Result<T, E>,
    ) -> Result<T, E> {
        if self.holder(rel).is_some() {
            return Err(OutputError::BadPath(rel.to_string()).into());
        }
        let (path, f) = self.create(rel, mode)?;
        let mut w = Hashing {
            inner: std::io::BufWriter::new(f),
            sha: sha2::Sha256::default(),
        };
        let out = fill(&mut w)?;
        w.inner.flush().map_err(io(&path))?;
        let sha = sha2::Digest::finalize(w.sha).into();
        self.list(rel, &sha, mode)?;
        crate::failpoint::hit("write");
        Ok(out)
    }

    /// Writes `rel` from the list of the files written so far, a `line`
    /// for each, streamed (never the whole text in memory); lists it and
    /// returns its SHA-256.
    pub fn write_from_listing(
        &mut self,
        rel: &str,
        mode: u32,
        line: impl Fn(&super::listing::Entry, &mut Vec<u8>),
    ) -> Result<[u8; 32], OutputError> {
        let (path, f) = self.create(rel, mode)?;
        let mut w = Hashing {
            inner: std::io::BufWriter::new(f),
            sha: sha2::Digest::new(),
        };
        let mut buf = Vec::with_capacity(256);
        for entry in self.listing.entries().map_err(listing_error(&self.dir))? {
            let entry = entry.map_err(listing_error(&self.dir))?;
            buf.clear();
            line(&entry, &mut buf);
            w.write_all(&buf).map_err(io(&path))?;
        }
        w.inner.flush().map_err(io(&path))?;
        let sha = sha2::Digest::finalize(w.sha).into();
        self.list(rel, &sha, mode)?;
        crate::failpoint::hit("write");
        Ok(sha)
    }

    /// The files written so far, in order (not the held ones).
    pub fn listing(&mut self) -> &mut Listing {
        &mut self.listing
    }

    /// Every file written so far, read back: (path, SHA-256, mode).
    pub fn written(&mut self) -> Result<Vec<super::listing::Entry>, OutputError> {
        self.listing.to_vec().map_err(listing_error(&self.dir))
    }

    /// The list of files written, read back from the start, one entry at a
    /// time (never the whole list in memory).
    pub fn each_written(
        &mut self,
        mut f: impl FnMut(super::listing::Entry) -> Result<(), crate::error::CeremonyError>,
    ) -> Result<(), crate::error::CeremonyError> {
        let dir = self.dir.clone();
        for entry in self.listing.entries().map_err(listing_error(&dir))? {
            f(entry.map_err(listing_error(&dir))?)?;
        }
        Ok(())
    }

    /// Makes every file and directory of the staging directory durable,
    /// renames it onto the output and fsyncs the parent: the output appears
    /// whole or not at all.
    pub fn commit(self) -> Result<PathBuf, OutputError> {
        // Closed first: where a file system keeps an unlinked open file as
        // a name in its directory (NFS's .nfsXXXX), the list's would
        // otherwise be renamed into OUT with the rest.
        drop(self.listing);
        sync_tree(&self.dir, &self.handle)?;
        crate::failpoint::hit("before-rename");
        check_output(&self.out, &[0; 32]).or_else(|e| match e {
            OutputError::ForeignStaging(_) => Ok(()), // that is us
            e => Err(e),
        })?;
        fs::rename(&self.dir, &self.out).map_err(io(&self.out))?;
        crate::failpoint::hit("after-rename");
        let parent = self
            .out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io(parent))?;
        // The output is in place; a marker left by a failure here is ignored
        // (check_output reads it only while a staging directory exists).
        let _ = fs::remove_file(marker_path(&self.out));
        Ok(self.out)
    }
}

/// Removes the staging marker that a run killed between its rename and its
/// own cleanup left beside a committed output (harmless, since a marker is
/// read only while a staging directory exists, but litter). A marker with a
/// staging directory beside it belongs to an unfinished run and stays.
pub fn remove_stale_marker(out: &Path) -> Result<(), OutputError> {
    if fs::symlink_metadata(staging_path(out)).is_ok() {
        return Ok(());
    }
    let marker = marker_path(out);
    match fs::remove_file(&marker) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&marker)(e)),
        _ => Ok(()),
    }
}

/// The umask, as Linux reports it in /proc/self/status (reading it through
/// umask(2) would change it for every thread for a moment); 0o777, i.e.
/// "set every mode again", where that line is missing.
fn umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o777)
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    sha: sha2::Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha2::Digest::update(&mut self.sha, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Everything under `dir` durable: `syncfs(2)` on its file system (one call
/// that writes back every dirty file and directory there and reports a
/// write-back error since `handle` was opened), or, where the kernel lacks
/// it, an fsync of every file and directory.
fn sync_tree(dir: &Path, handle: &File) -> Result<(), OutputError> {
    match rustix::fs::syncfs(handle) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::NOSYS) => fsync_each(dir),
        Err(e) => Err(io(dir)(e.into())),
    }
}

fn fsync_each(dir: &Path) -> Result<(), OutputError> {
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        if entry.file_type().map_err(io(dir))?.is_dir() {
            fsync_each(&path)?;
        } else {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io(&path))?;
        }
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_threads_put_files_under_shared_directories() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let mut st = Staging::begin(&out, &[9; 32]).unwrap();
        // Four threads, every file under nodes/ and each node's files split
        // between two threads: the directories each finds missing race.
        let parts: Vec<Vec<(String, [u8; 32], u32)>> = std::thread::scope(|s| {
            let shared = &st;
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    s.spawn(move || {
                        (0..50)
                            .map(|n| {
                                let rel = format!("nodes/n{n}/etc/kubernetes/f{t}");
                                let mode = if t % 2 == 0 { PUBLIC } else { SECRET };
                                let sha = shared.put(&rel, rel.as_bytes(), mode).unwrap();
                                (rel, sha, mode)
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let expected: Vec<_> = parts.concat();
        for part in parts {
            st.listed(part).unwrap();
        }
        assert_eq!(
            st.written().unwrap(),
            expected,
            "listed in the parts' order"
        );
        assert!(
            st.put("nodes/n3/etc/kubernetes/f1", b"", PUBLIC).is_err(),
            "create_new"
        );
        st.commit().unwrap();
        for (rel, sha, mode) in &expected {
            let path = out.join(rel);
            assert_eq!(fs::read(&path).unwrap(), rel.as_bytes());
            assert_eq!(crate::x509::sha256(rel.as_bytes()), *sha);
            let meta = fs::metadata(&path).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, *mode, "{rel}");
        }
    }

    /// Memory stays flat however many nodes: the directories remembered are
    /// bounded, and a directory forgotten is made again without error.
    #[test]
    fn the_directories_remembered_are_bounded() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let mut st = Staging::begin(&out, &[8; 32]).unwrap();
        let nodes = MADE_KNOWN; // four directories each
        for n in 0..nodes {
            st.write(
                &format!("nodes/w{n}/etc/kubernetes/pki/ca.crt"),
                b"c",
                PUBLIC,
            )
            .unwrap();
            assert!(st.made().len() <= MADE_KNOWN);
        }
        // nodes/w0's directories were forgotten long ago.
        st.write("nodes/w0/etc/kubernetes/kubelet.conf", b"k", SECRET)
            .unwrap();
        assert_eq!(st.written().unwrap().len(), nodes + 1);
        st.commit().unwrap();
        assert_eq!(
            fs::read(out.join("nodes/w0/etc/kubernetes/kubelet.conf")).unwrap(),
            b"k"
        );
    }

    #[test]
    fn writes_whole_or_nothing() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let sha = [7u8; 32];
        let mut s = Staging::begin(&out, &sha).unwrap();
        s.write("a/b.crt", b"cert", PUBLIC).unwrap();
        s.write("k.key", b"key", SECRET).unwrap();
        assert!(!out.exists(), "nothing is visible before commit");
        assert!(s.write("../x", b"", PUBLIC).is_err());
        assert!(s.write("a/b.crt", b"again", PUBLIC).is_err(), "create_new");
        s.commit().unwrap();
        assert_eq!(fs::read(out.join("a/b.crt")).unwrap(), b"cert");
        let mode = fs::metadata(out.join("k.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!out.join(MARKER).exists());
        assert!(matches!(
            check_output(&out, &sha),
            Err(OutputError::Exists(_))
        ));
    }

    #[test]
    fn leftovers_are_resumed_only_for_the_same_plan() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let s = Staging::begin(&out, &[1; 32]).unwrap();
        drop(s); // interrupted
        assert!(check_output(&out, &[1; 32]).is_ok());
        assert!(matches!(
            check_output(&out, &[2; 32]),
            Err(OutputError::ForeignStaging(_))
        ));
        let mut s = Staging::begin(&out, &[1; 32]).unwrap();
        s.write("x", b"1", PUBLIC).unwrap();
        s.commit().unwrap();
        assert!(out.join("x").exists());
    }

    #[test]
    fn refuses_names_and_parents_the_run_would_fail_on() {
        let d = tempfile::tempdir().unwrap();
        // The longest sibling, `.<name>.ceremony-staging`, must fit NAME_MAX (255 here).
        let fits = d.path().join("o".repeat(255 - LONGEST_SUFFIX));
        check_output(&fits, &[0; 32]).unwrap();
        let long = d.path().join("o".repeat(256 - LONGEST_SUFFIX));
        match check_output(&long, &[0; 32]) {
            Err(OutputError::NameTooLong {
                name,
                len: 256,
                max: 255,
                ..
            }) => {
                assert!(name.ends_with(".ceremony-staging"), "{name}")
            }
            other => panic!("{other:?}"),
        }
        let deep = d.path().join("a".repeat(200)).join("b".repeat(200));
        assert!(matches!(
            check_output(&deep, &[0; 32]),
            Err(OutputError::NoParent { .. })
        ));
        let mut path = d.path().to_path_buf();
        while path.as_os_str().len() < PATH_MAX {
            path.push("p".repeat(200));
        }
        assert!(matches!(
            check_output(&path, &[0; 32]),
            Err(OutputError::PathTooLong { .. })
        ));
        assert!(matches!(
            check_output(&d.path().join(".."), &[0; 32]),
            Err(OutputError::NoName(_))
        ));
        assert!(matches!(
            check_output(Path::new("/"), &[0; 32]),
            Err(OutputError::NoName(_))
        ));
    }

    #[test]
    fn refuses_symlinks_and_files() {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(d.path(), d.path().join("link")).unwrap();
        assert!(matches!(
            check_output(&d.path().join("link"), &[0; 32]),
            Err(OutputError::Symlink(_))
        ));
        fs::write(d.path().join("file"), b"").unwrap();
        assert!(matches!(
            check_output(&d.path().join("file"), &[0; 32]),
            Err(OutputError::NotDir(_))
        ));
    }
}
