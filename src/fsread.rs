//! The one bounded reader of files that come from outside (a bundle given to
//! `verify`, a node's CSR tree, a user's CSR): it never blocks on a FIFO or a
//! device, never follows a link it was told to refuse, and never reads more
//! than its cap, however the file changes between listing and reading.
//!
//! Reads only; callers word the refusal for their own report.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;
use zeroize::Zeroizing;

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
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a regular file", path.display())]
    NotRegular { path: PathBuf },
    #[error("{}: larger than {max} bytes", path.display())]
    TooLarge { path: PathBuf, max: u64 },
}

/// The bytes of the regular file at `path`, at most `max` of them. The file
/// is opened with `O_NONBLOCK` (a FIFO or device answers at once and is then
/// refused as not regular) and checked on the open descriptor, so what is
/// read is what was checked. Held in a zeroizing buffer: key files are read
/// too.
pub fn read_regular(path: &Path, max: u64, links: Links) -> Result<Zeroizing<Vec<u8>>, ReadError> {
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
    let too_large = || ReadError::TooLarge {
        path: path.to_path_buf(),
        max,
    };
    if meta.len() > max {
        return Err(too_large());
    }
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
            format!("{}: larger than 4 bytes", f.display())
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
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(
            read_regular(&fifo, 9, Links::Refuse),
            Err(ReadError::NotRegular { .. })
        ));
        assert!(matches!(
            read_regular(dir.path(), 9, Links::Follow),
            Err(ReadError::NotRegular { .. })
        ));
    }
}
