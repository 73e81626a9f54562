//! Recording and writing a batch: its certificates' records in one journal
//! frame, then its files into the staging directory (from several threads
//! for a batch of workers' nodes), with the service-account key pair that
//! every control-plane node gets.

use zeroize::Zeroizing;

use super::items::{File, Leaf};
use super::spawn_failed;
use crate::audit::{Audit, Event};
use crate::bundle::write::{self, Staging};
use crate::error::CeremonyError;
use crate::keys::leaf::LeafKey;

/// Items (nodes' own files and leaves) a batch needs before it is written
/// by several threads at once.
const SHARED_WRITE_MIN: usize = 64;

/// The service-account key pair, made on a thread of its own while the first
/// leaves are under way, and waited for only when the first control-plane
/// node's files are written: an RSA-2048 key costs a fifth of a second, more
/// than the leaves of a thousand nodes on a fast token.
pub(super) enum SaKeyPair<'s> {
    /// Being made; the previous public key to ship beside it (a rotation).
    Making(
        std::thread::ScopedJoinHandle<'s, Result<(LeafKey, String), CeremonyError>>,
        Option<Vec<u8>>,
    ),
    Made((LeafKey, String), Option<Vec<u8>>),
    /// Carried from the previous ceremony, written byte for byte.
    Given(super::GivenSa, Option<Vec<u8>>),
    Failed,
}

impl SaKeyPair<'_> {
    fn get(&mut self) -> Result<(), CeremonyError> {
        // Taken out (Failed meanwhile, so an error leaves it failed), joined
        // once, put back made.
        match std::mem::replace(self, SaKeyPair::Failed) {
            SaKeyPair::Making(h, previous) => {
                *self = SaKeyPair::Made(
                    h.join().unwrap_or_else(|_| {
                        Err(CeremonyError::Internal("the sa key thread panicked".into()))
                    })?,
                    previous,
                );
            }
            other => *self = other,
        }
        match self {
            SaKeyPair::Made(..) | SaKeyPair::Given(..) => Ok(()),
            _ => Err(CeremonyError::Internal(
                "the service-account key could not be made".into(),
            )),
        }
    }

    /// sa.key and sa.pub of the control-plane node rooted at `base` (and
    /// sa-previous.pub during a rotation).
    fn files(&mut self, base: &str) -> Result<Vec<File>, CeremonyError> {
        self.get()?;
        let (key, public, previous) = match self {
            SaKeyPair::Made((key, public), previous) => (
                Zeroizing::new(key.private_pem.as_bytes().to_vec()),
                public.as_bytes().to_vec(),
                previous,
            ),
            SaKeyPair::Given(given, previous) => {
                (given.key.clone(), given.public.clone(), previous)
            }
            _ => {
                return Err(CeremonyError::Internal(
                    "the service-account key could not be made".into(),
                ));
            }
        };
        let mut files = vec![
            (format!("{base}/pki/sa.key"), key, write::SECRET),
            (
                format!("{base}/pki/sa.pub"),
                Zeroizing::new(public),
                write::SECRET,
            ),
        ];
        if let Some(p) = previous {
            files.push((
                format!("{base}/pki/sa-previous.pub"),
                Zeroizing::new(p.clone()),
                write::SECRET,
            ));
        }
        Ok(files)
    }
}

/// An item of the bundle finished (a node's own files, or a checked leaf),
/// waiting for its batch to be recorded and written.
#[allow(clippy::large_enum_variant)] // moved a few times per leaf; a box only adds an allocation
pub(super) enum FinishedItem {
    Files(Vec<File>, Option<String>),
    Leaf(Leaf, Option<usize>),
}

/// Records a batch (one journal frame), then writes its files, listed in
/// plan order; a batch of workers is written by `writers` threads at once.
pub(super) fn record_and_write(
    batch: &mut Vec<FinishedItem>,
    st: &mut Staging,
    sa: &mut SaKeyPair<'_>,
    audit: &mut dyn Audit,
    writers: usize,
) -> Result<(), CeremonyError> {
    let events: Vec<Event> = batch
        .iter_mut()
        .filter_map(|r| match r {
            FinishedItem::Leaf(leaf, _) => leaf.event.take(),
            FinishedItem::Files(..) => None,
        })
        .collect();
    // Durable on the record before any file of the batch exists.
    audit.record_all(events)?;
    // Workers' nodes only: a control-plane node also gets the one
    // service-account key pair, made on its own thread.
    let shared = writers > 1
        && batch.len() >= SHARED_WRITE_MIN
        && batch
            .iter()
            .all(|r| !matches!(r, FinishedItem::Files(_, Some(_))));
    if shared {
        return write_shared(std::mem::take(batch), st, writers);
    }
    for r in batch.drain(..) {
        match r {
            FinishedItem::Files(files, control_plane) => {
                for (path, bytes, mode) in files {
                    st.write(&path, &bytes, mode)?;
                }
                if let Some(base) = control_plane {
                    for (path, bytes, mode) in sa.files(&base)? {
                        st.write(&path, &bytes, mode)?;
                    }
                }
            }
            FinishedItem::Leaf(leaf, end_of_cp) => {
                for (path, bytes, mode) in leaf.files {
                    st.write(&path, &bytes, mode)?;
                }
                crate::failpoint::hit("leaf");
                if end_of_cp == Some(0) {
                    // Test-only crash point: some leaves signed (and recorded), not all.
                    crate::failpoint::hit("mid-leaves");
                }
            }
        }
    }
    Ok(())
}

/// Writes a batch of workers' nodes from `writers` threads, each a run of
/// consecutive nodes. Most of a batch's writing is the kernel's, creating
/// each node's four directories and two files; shared, it no longer holds
/// up the calling thread, which at the end of a run is all there is left to
/// do. The files are listed in plan order all the same; on an error, the
/// first in plan order is returned.
pub(super) fn write_shared(
    batch: Vec<FinishedItem>,
    st: &mut Staging,
    writers: usize,
) -> Result<(), CeremonyError> {
    fn write_part(
        st: &Staging,
        part: Vec<FinishedItem>,
    ) -> Result<Vec<(String, [u8; 32], u32)>, CeremonyError> {
        let mut listed = Vec::with_capacity(part.len() * 2);
        for r in part {
            let (files, leaf) = match r {
                FinishedItem::Files(files, _) => (files, false),
                FinishedItem::Leaf(leaf, _) => (leaf.files, true),
            };
            for (path, bytes, mode) in files {
                let sha = st.put(&path, &bytes, mode)?;
                listed.push((path, sha, mode));
            }
            if leaf {
                crate::failpoint::hit("leaf");
            }
        }
        Ok(listed)
    }
    let per = batch.len().div_ceil(writers);
    let mut parts: Vec<Vec<FinishedItem>> = Vec::with_capacity(writers);
    let mut items = batch.into_iter();
    loop {
        let part: Vec<FinishedItem> = items.by_ref().take(per).collect();
        if part.is_empty() {
            break;
        }
        parts.push(part);
    }
    let shared: &Staging = st;
    let results: Vec<_> = std::thread::scope(|s| {
        let mut parts = parts.into_iter();
        let first = parts.next();
        let spawned: Vec<_> = parts
            .map(|part| {
                std::thread::Builder::new()
                    .name("bundle-writer".into())
                    .spawn_scoped(s, || write_part(shared, part))
            })
            .collect();
        let first = first.map(|p| write_part(shared, p));
        first
            .into_iter()
            .chain(spawned.into_iter().map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    Err(CeremonyError::Internal(
                        "a bundle writer thread panicked".into(),
                    ))
                }),
                Err(e) => Err(spawn_failed(e)),
            }))
            .collect()
    });
    for r in results {
        st.listed(r?)?;
    }
    Ok(())
}
