//! The files a run has written, in order, with their SHA-256 and mode:
//! SHA256SUMS, the `output_written` records and the end screen are made
//! from it. It lives in an unnamed file in the staging directory, not in
//! memory: a 100,000-node bundle lists 300,000 files, about 30 MB as Rust
//! strings, and memory must not grow with the cluster.
//!
//! The file is opened with `O_TMPFILE` (no name, gone when closed); where
//! the file system lacks it, created under a name and unlinked at once (a
//! run killed in between leaves it in the staging directory, which the next
//! run starts afresh). Entries: path length (u32, little-endian), path,
//! SHA-256, mode (u32, little-endian).

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;

/// One file of the output: path relative to OUT, SHA-256, mode.
pub type Entry = (String, [u8; 32], u32);

/// Entries buffered before they go to the file.
const BUFFER: usize = 64 << 10;

/// The list; `push` appends, `entries` reads it back from the start.
#[derive(Debug)]
pub struct Listing {
    file: File,
    /// Bytes not yet in the file.
    pending: Vec<u8>,
    /// Bytes in the file.
    flushed: u64,
    count: usize,
}

impl Listing {
    /// A new, empty list in the directory open as `dir`.
    pub fn new_in(dir: &File) -> std::io::Result<Listing> {
        use rustix::fs::{Mode, OFlags};
        let file = match rustix::fs::openat(
            dir,
            ".",
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => File::from(fd),
            // No O_TMPFILE on this file system: a name, unlinked at once.
            Err(
                rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL,
            ) => {
                const NAME: &str = ".ceremony-listing";
                let fd = rustix::fs::openat(
                    dir,
                    NAME,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::RDWR
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                rustix::fs::unlinkat(dir, NAME, rustix::fs::AtFlags::empty())?;
                File::from(fd)
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Listing {
            file,
            pending: Vec::with_capacity(BUFFER),
            flushed: 0,
            count: 0,
        })
    }

    pub fn push(&mut self, path: &str, sha256: &[u8; 32], mode: u32) -> std::io::Result<()> {
        let len = u32::try_from(path.len())
            .map_err(|_| std::io::Error::other("a path longer than 4 GiB"))?;
        self.pending.extend_from_slice(&len.to_le_bytes());
        self.pending.extend_from_slice(path.as_bytes());
        self.pending.extend_from_slice(sha256);
        self.pending.extend_from_slice(&mode.to_le_bytes());
        self.count += 1;
        if self.pending.len() >= BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.write_all_at(&self.pending, self.flushed)?;
        self.flushed += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Files listed so far.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every entry, in the order listed.
    pub fn entries(&mut self) -> std::io::Result<Entries<'_>> {
        self.flush()?;
        Ok(Entries {
            reader: BufReader::with_capacity(
                BUFFER,
                At {
                    file: &self.file,
                    at: 0,
                    end: self.flushed,
                },
            ),
            left: self.count,
        })
    }

    /// Every entry, collected (tests and small outputs).
    pub fn to_vec(&mut self) -> std::io::Result<Vec<Entry>> {
        self.entries()?.collect()
    }
}

/// Reads the file from `at` to `end` without moving a shared offset.
struct At<'f> {
    file: &'f File,
    at: u64,
    end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.end - self.at).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// The entries of a [`Listing`], read back.
pub struct Entries<'f> {
    reader: BufReader<At<'f>>,
    left: usize,
}

impl Iterator for Entries<'_> {
    type Item = std::io::Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut entry = || -> std::io::Result<Entry> {
            let mut len = [0u8; 4];
            self.reader.read_exact(&mut len)?;
            let mut path = vec![0u8; u32::from_le_bytes(len) as usize];
            self.reader.read_exact(&mut path)?;
            let mut sha = [0u8; 32];
            self.reader.read_exact(&mut sha)?;
            let mut mode = [0u8; 4];
            self.reader.read_exact(&mut mode)?;
            let path = String::from_utf8(path)
                .map_err(|_| std::io::Error::other("a listed path is not UTF-8"))?;
            Ok((path, sha, u32::from_le_bytes(mode)))
        };
        let e = entry();
        if e.is_err() {
            self.left = 0;
        }
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_in_order_across_flushes_and_appends() {
        let d = tempfile::tempdir().unwrap();
        let dir = File::open(d.path()).unwrap();
        let mut l = Listing::new_in(&dir).unwrap();
        assert!(l.is_empty());
        // Enough to flush several times, read back halfway, then appended to.
        let entry = |i: usize| {
            (
                format!("nodes/worker{i}/etc/kubernetes/kubelet.conf"),
                [(i % 251) as u8; 32],
                if i.is_multiple_of(2) { 0o600 } else { 0o644 },
            )
        };
        for i in 0..5000 {
            let (p, s, m) = entry(i);
            l.push(&p, &s, m).unwrap();
        }
        let first = l.to_vec().unwrap();
        assert_eq!(first, (0..5000).map(entry).collect::<Vec<_>>());
        for i in 5000..6000 {
            let (p, s, m) = entry(i);
            l.push(&p, &s, m).unwrap();
        }
        assert_eq!(l.len(), 6000);
        assert_eq!(
            l.to_vec().unwrap(),
            (0..6000).map(entry).collect::<Vec<_>>()
        );
        // Nothing named in the directory: the list is not an output.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
