//! The one bounded reader of files that come from outside (a bundle given to
//! `verify`, a node's CSR tree, a user's CSR): it never blocks on a FIFO or a
//! device, never follows a link it was told to refuse, and never reads more
//! than its cap, however the file changes between listing and reading.
//!
//! Every other file the tool reads from outside goes through it too: the
//! plan, its names file, the PIN file, age identities, audit logs given to
//! `audit verify/show`, `--root` certificates, the PKCS#11 module (hashed).
//!
//! Reads only; callers word the refusal for their own report.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;
use zeroize::Zeroizing;

/// The caps, per kind of file, in one place (with the two kept beside their
/// readers: a CSR-mode file, `csr::policy::MAX_FILE_BYTES` = 1 MiB, and a
/// bundle file under `verify`, `verify::tree::MAX_FILE` = 4 MiB, its SHA256SUMS 64 MiB). Each is
/// far above what a real file of its kind holds and far below what would
/// hurt the machine; a file over its cap is refused by its size, unread.
pub mod cap {
    /// `plan.toml`: a few KiB for a large cluster.
    pub const PLAN: u64 = 1 << 20;
    /// `cluster.workers.names_file`: 16 MiB is over 260,000 names of 63
    /// bytes (the benchmark's largest plan has 100,000 workers).
    pub const NAMES_FILE: u64 = 16 << 20;
    /// A PIN file: one line. A longer file is refused, never cut: a cut PIN
    /// is a wrong PIN and burns one of the token's retries.
    pub const PIN: u64 = 256;
    /// An age identity file or an OpenSSH private key (RSA-16384 is 12 KiB).
    pub const IDENTITY: u64 = 64 << 10;
    /// A sealed audit log or a journal's records: a ceremony writes a few
    /// KiB per node.
    pub const AUDIT_LOG: u64 = 256 << 20;
    /// A certificate given by `--root`.
    pub const CERTIFICATE: u64 = 1 << 20;
    /// The small files of the audit journal (the inputs' hash, its key) and
    /// the staging marker.
    pub const JOURNAL_SMALL: u64 = 4 << 10;
    /// OUT's `inputs.sha256`: about 150 bytes a line, a few lines a node.
    pub const INPUTS: u64 = 16 << 20;
    /// A file that is hashed, not held (the PKCS#11 module, the tool itself).
    pub const HASHED: u64 = 1 << 30;
}

/// Whether the last component of the path may be a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// `O_NOFOLLOW`: for entries of a tree already listed as regular files,
    /// so a link swapped in after the listing is refused, not followed.
    Refuse,
    /// A path the operator names (on the command line, or in the plan).
    Follow,
}

/// Why a file was not read; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: {}", path.display(), self.why())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {}", path.display(), self.why())]
    NotRegular { path: PathBuf },
    #[error("{}: {}", path.display(), self.why())]
    TooLarge { path: PathBuf, max: u64 },
}

impl ReadError {
    /// What went wrong, without the file's name, for a caller that names
    /// the file its own way.
    pub fn why(&self) -> String {
        match self {
            ReadError::Io { source, .. } => source.to_string(),
            ReadError::NotRegular { .. } => "not a regular file".into(),
            ReadError::TooLarge { max, .. } => format!(
                "larger than {} (the most this tool reads of such a file)",
                size_words(*max)
            ),
        }
    }
}

/// The bytes of the regular file at `path`, at most `max` of them. The file
/// is opened with `O_NONBLOCK` (a FIFO or device answers at once and is then
/// refused as not regular) and checked on the open descriptor, so what is
/// read is what was checked. Held in a zeroizing buffer: key files are read
/// too.
pub fn read_regular(path: &Path, max: u64, links: Links) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let (file, meta) = open_regular(path, max, links)?;
    read_opened(path, file, &meta, max)
}

/// The open regular file at `path` and its metadata (from the descriptor,
/// so a caller that checks more, such as a PIN file's mode and owner,
/// checks the file it then reads with `read_opened`). Refuses what
/// `read_regular` refuses before a byte is read.
pub fn open_regular(path: &Path, max: u64, links: Links) -> Result<(File, Metadata), ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut flags = OFlags::NONBLOCK | OFlags::NOCTTY;
    if links == Links::Refuse {
        flags |= OFlags::NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            max,
        });
    }
    Ok((file, meta))
}

/// Reads a file `open_regular` opened, at most `max` bytes.
pub fn read_opened(
    path: &Path,
    file: File,
    meta: &Metadata,
    max: u64,
) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let too_large = || ReadError::TooLarge {
        path: path.to_path_buf(),
        max,
    };
    // Sized once, one byte over, so that a file that grows after the check
    // is caught by the cap without a reallocation leaving an unwiped copy.
    let cap = usize::try_from(meta.len().saturating_add(1)).unwrap_or(usize::MAX);
    let mut buf = Zeroizing::new(Vec::with_capacity(cap));
    file.take(max + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > max {
        return Err(too_large());
    }
    Ok(buf)
}

/// SHA-256 of the regular file at `path`, streamed (a module or a binary is
/// hashed, not held), at most `max` bytes.
pub fn sha256_regular(path: &Path, max: u64, links: Links) -> Result<[u8; 32], ReadError> {
    use sha2::Digest;
    let (file, _) = open_regular(path, max, links)?;
    let mut hasher = sha2::Sha256::new();
    let (mut input, mut n) = (file.take(max + 1), 0u64);
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let got = match input.read(&mut chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => r.map_err(|source| ReadError::Io {
                path: path.to_path_buf(),
                source,
            })?,
        };
        if got == 0 {
            break;
        }
        hasher.update(&chunk[..got]);
        n += got as u64;
    }
    if n > max {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            max,
        });
    }
    Ok(hasher.finalize().into())
}

/// The size of `max` in words, for messages: "1 MiB", "256 bytes".
pub fn size_words(max: u64) -> String {
    match max {
        m if m >= 1 << 20 && m % (1 << 20) == 0 => format!("{} MiB", m >> 20),
        m if m >= 1 << 10 && m % (1 << 10) == 0 => format!("{} KiB", m >> 10),
        m => format!("{m} bytes"),
    }
}

/// Test-only: a FIFO named `fifo` in `dir`, the input a plain open waits on forever.
#[cfg(test)]
pub fn fifo_in(dir: &Path) -> std::path::PathBuf {
    let f = dir.join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &f,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo in a temp dir");
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(
            read_regular(&f, 5, Links::Refuse).unwrap().as_slice(),
            b"12345"
        );
        let e = read_regular(&f, 4, Links::Refuse).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { max: 4, .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "{}: larger than 4 bytes (the most this tool reads of such a file)",
                f.display()
            )
        );
        let e = read_regular(&dir.path().join("none"), 4, Links::Follow).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}: ", dir.path().join("none").display()))
        );
    }

    #[test]
    fn links_are_refused_or_followed_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        std::fs::write(&f, b"x").unwrap();
        let l = dir.path().join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        assert!(matches!(
            read_regular(&l, 9, Links::Refuse),
            Err(ReadError::Io { .. })
        ));
        assert_eq!(read_regular(&l, 9, Links::Follow).unwrap().as_slice(), b"x");
    }

    /// A FIFO with no writer would block a plain open forever.
    #[test]
    fn a_fifo_or_directory_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = fifo_in(dir.path());
        assert!(matches!(
            read_regular(&fifo, 9, Links::Refuse),
            Err(ReadError::NotRegular { .. })
        ));
        assert!(matches!(
            read_regular(dir.path(), 9, Links::Follow),
            Err(ReadError::NotRegular { .. })
        ));
    }

    /// A 2 GiB sparse file is refused by its size, before a byte is read,
    /// and `/dev/zero` as a device: neither fills the memory.
    #[test]
    fn a_huge_sparse_file_and_dev_zero_are_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sparse");
        std::fs::File::create(&f).unwrap().set_len(2 << 30).unwrap();
        let e = read_regular(&f, cap::NAMES_FILE, Links::Follow).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: larger than 16 MiB (the most this tool reads of such a file)",
                f.display()
            )
        );
        assert!(matches!(
            sha256_regular(&f, 1 << 20, Links::Follow),
            Err(ReadError::TooLarge { .. })
        ));
        assert!(matches!(
            read_regular(Path::new("/dev/zero"), cap::PLAN, Links::Follow),
            Err(ReadError::NotRegular { .. })
        ));
        assert!(matches!(
            sha256_regular(Path::new("/dev/zero"), cap::HASHED, Links::Follow),
            Err(ReadError::NotRegular { .. })
        ));
    }

    #[test]
    fn hashes_and_size_words() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            hex::encode(sha256_regular(&f, 3, Links::Follow).unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(sha256_regular(&f, 2, Links::Follow).is_err());
        assert_eq!(size_words(cap::PIN), "256 bytes");
        assert_eq!(size_words(cap::IDENTITY), "64 KiB");
        assert_eq!(size_words(cap::AUDIT_LOG), "256 MiB");
    }
}
