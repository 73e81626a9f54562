//! The crash-safe journal: `.<out>.journal/` beside the output, created by
//! the first run of a plan, continued by every resumed run, removed once the
//! sealed log is committed into OUT.
//!
//! ```text
//! .<out>.journal/            0700
//!   plan-sha256              0600  hex inputs SHA-256 (the plan and every file it names) that owns the journal
//!   journal.key              0600  the journal-local age X25519 identity
//!   records                  0600  frames, appended and fsynced one by one
//! ```
//!
//! A frame is a plaintext header line `<seq> <sha256-hex> <ciphertext-len>\n`
//! followed by one complete age file holding the record's canonical line,
//! encrypted to the plan's recipients and to the journal-local identity; its
//! hash is the record's. A frame may also hold a batch of consecutive
//! records (the leaf certificates of a run, many per frame): its header
//! then names the first and the last, `<first>-<last> <sha256-hex> <len>`,
//! its plaintext is their lines joined by `\n`, and the hash is of that
//! plaintext. A one-record frame is exactly the older format, so journals
//! written before batches existed read the same. Each frame is written with
//! one `write` and then fsynced, so a crash leaves at most the frame being
//! written torn (shorter than its header says, or a header without its
//! newline); a resumed run cuts that tail off and records that it did. A
//! record is durable, and `Audit::record`/`record_all` return, only once its
//! frame is: a crash loses nothing that was acknowledged.
//!
//! Why a journal-local identity: the tool cannot decrypt what it encrypts to
//! the auditors, yet at the end it must put every record into one ordinary
//! age file, and on resume it must know the chain it continues. So each frame
//! is also encrypted to an identity that lives in `journal.key` (0600) only
//! between the first record and the seal. The trade-off: during that window
//! the laptop holds a key that decrypts the journal. The records hold no
//! secrets (no PIN, no key material, by construction of [`super::Event`]), so
//! what it exposes is the ceremony's facts, to someone who already controls
//! the air-gapped laptop mid-ceremony; it cannot forge the record, whose
//! integrity rests on the chain and the root's seal, not on secrecy. The
//! file is removed with the journal after the sealed log is committed
//! (unlinked, not shredded: flash storage gives no such guarantee).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use age::secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::crypto::{Identities, Recipients};
use super::event::{Event, PendingKey, PendingStore, Recovery};
use super::record::{Record, next_record};
use super::{Audit, AuditError, io, sibling};
use crate::fsread::cap;

// The on-disk frames, read back: `frames`.
pub use super::frames::{Damage, Decoded, Frame, Frames, decode, parse_frames};
use super::frames::{intact, parse_header};

pub const RECORDS: &str = "records";
pub const KEY: &str = "journal.key";
pub const PLAN: &str = "plan-sha256";

/// The journal directory of an output.
pub fn path(out: &Path) -> PathBuf {
    sibling(out, "journal")
}

/// Where a journal is assembled before it appears under its name.
fn new_path(out: &Path) -> PathBuf {
    sibling(out, "journal-new")
}

/// A file of the journal directory `dir`, read as every outside file is
/// (regular, no link, under `max`): the journal lives beside the output,
/// where anything may have been put in its place.
fn read_own(dir: &Path, name: &str, max: u64) -> Result<Zeroizing<Vec<u8>>, AuditError> {
    use crate::fsread::{Links, ReadError, read_regular};
    read_regular(&dir.join(name), max, Links::Refuse).map_err(|e| match e {
        ReadError::Io { path, source } => AuditError::Io { path, source },
        e => AuditError::JournalDamaged {
            path: dir.to_path_buf(),
            what: format!("{name}: {}", e.why()),
        },
    })
}

/// Whether a journal directory is there: false when nothing is; an error
/// when something else (a link, a file) has its name.
fn is_journal_dir(dir: &Path) -> Result<bool, AuditError> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(dir)(e)),
        Ok(m) if m.file_type().is_symlink() || !m.is_dir() => Err(AuditError::JournalDamaged {
            path: dir.to_path_buf(),
            what: "it is not a directory".into(),
        }),
        Ok(_) => Ok(true),
    }
}

/// Checks, touching nothing, that a journal beside `out` (if any) belongs to
/// `owner`, the inputs SHA-256 of this run (the plan and every file it
/// names). Returns whether there is one.
pub fn check_owner(out: &Path, owner: &[u8; 32]) -> Result<bool, AuditError> {
    let dir = path(out);
    if !is_journal_dir(&dir)? {
        return Ok(false);
    }
    let found = read_own(&dir, PLAN, cap::JOURNAL_SMALL)?;
    let found = String::from_utf8_lossy(&found);
    let expected = hex::encode(owner);
    if found.trim() != expected {
        return Err(AuditError::ForeignJournal {
            path: dir,
            // Shown: a short excerpt, escaped.
            found: found
                .trim()
                .chars()
                .take(64)
                .flat_map(char::escape_debug)
                .collect(),
            expected,
        });
    }
    Ok(true)
}

/// The journal's files in the order its cleanup unlinks them: the
/// journal-local identity first, made durable on its own, so the secret
/// never outlives a cleanup cut short; the plan's SHA-256 last, so until the
/// directory is empty what is left still says whose it is.
const REMOVAL_ORDER: [&str; 3] = [KEY, RECORDS, PLAN];

/// Removes a journal directory whose sealed log is committed, one file at a
/// time in [`REMOVAL_ORDER`]. Every point of it can be resumed: a file
/// already gone is skipped, and [`cleanup_underway`] recognises what a kill
/// in between leaves.
pub fn remove_dir(dir: &Path) -> Result<(), AuditError> {
    for name in REMOVAL_ORDER {
        let file = dir.join(name);
        match fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&file)(e)),
            _ => {}
        }
        if name == KEY {
            sync_dir(dir)?;
        }
        crate::failpoint::hit(&format!("journal-remove:{name}"));
    }
    // Anything else in it (none is written there) goes with the directory.
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(dir)(e)),
        _ => {}
    }
    sync_dir(&parent_of(dir))
}

/// Whether the journal beside `out` is this plan's and may be removed once
/// its output is committed: its `plan-sha256` names this plan, or a cleanup
/// was cut short after that file's turn or before it (nothing in the
/// directory but the files the cleanup unlinks before it). False when there
/// is no journal; an error when it is another plan's or not a directory.
pub fn cleanup_underway(out: &Path, owner: &[u8; 32]) -> Result<bool, AuditError> {
    let dir = path(out);
    let owner_file = dir.join(PLAN);
    match fs::symlink_metadata(&owner_file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        _ => return check_owner(out, owner),
    }
    if !is_journal_dir(&dir)? {
        return Ok(false);
    }
    let mut left = Vec::new();
    for entry in fs::read_dir(&dir).map_err(io(&dir))? {
        let name = entry.map_err(io(&dir))?.file_name();
        left.push(name.to_string_lossy().into_owned());
    }
    let unlinked_before_plan = &REMOVAL_ORDER[..REMOVAL_ORDER.len() - 1];
    match left
        .iter()
        .find(|n| !unlinked_before_plan.contains(&n.as_str()))
    {
        None => Ok(true),
        Some(other) => Err(AuditError::JournalDamaged {
            path: dir,
            what: format!("it has no {PLAN} but holds {}", crate::fmt::shown(other)),
        }),
    }
}

/// An open journal, ready to append.
pub struct Journal {
    dir: PathBuf,
    records: PathBuf,
    file: File,
    key: age::x25519::Identity,
    recipients: Recipients,
    seq: u64,
    prev: [u8; 32],
    /// Set when an append failed part-way: nothing more may be written.
    poisoned: bool,
    clock: Box<dyn Fn() -> SystemTime>,
    /// The canonical line of the last record this run appended (the `end`
    /// record's, for the clear seal record).
    last_line: Option<String>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Journal({}, {} records, [identity elided])",
            self.dir.display(),
            self.seq
        )
    }
}

fn create_file(path: &Path, bytes: &[u8]) -> Result<File, AuditError> {
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    Ok(f)
}

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn parent_of(p: &Path) -> PathBuf {
    p.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

fn lock(file: &File, dir: &Path) -> Result<(), AuditError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(fs::TryLockError::WouldBlock) => Err(AuditError::JournalBusy {
            path: dir.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(io(dir)(e)),
    }
}

impl Journal {
    /// Opens the journal of `out` for `owner` (the inputs SHA-256): creates it on the first run,
    /// or checks and continues it (cutting off a torn last frame). Returns
    /// what a resumed run found; the caller records it.
    pub fn open(
        out: &Path,
        owner: &[u8; 32],
        recipients: &[String],
    ) -> Result<(Journal, Option<Recovery>), AuditError> {
        let recipients = Recipients::parse(recipients)?;
        if check_owner(out, owner)? {
            Self::resume(out, recipients).map(|(j, r)| (j, Some(r)))
        } else {
            Self::create(out, owner, recipients).map(|j| (j, None))
        }
    }

    fn create(out: &Path, owner: &[u8; 32], recipients: Recipients) -> Result<Journal, AuditError> {
        let dir = path(out);
        let tmp = new_path(out);
        // A leftover of a run that died while creating its journal holds no record.
        if fs::symlink_metadata(&tmp).is_ok() {
            fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        let parent = parent_of(&dir);
        fs::create_dir_all(&parent).map_err(io(&parent))?;
        fs::create_dir(&tmp).map_err(io(&tmp))?;
        let key = age::x25519::Identity::generate();
        let assembled = (|| {
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o700)).map_err(io(&tmp))?;
            create_file(
                &tmp.join(PLAN),
                format!("{}\n", hex::encode(owner)).as_bytes(),
            )?;
            let text = Zeroizing::new(format!(
                "# ceremony journal-local identity: decrypts this unsealed journal; removed with it after the seal\n{}\n",
                key.to_string().expose_secret()
            ));
            create_file(&tmp.join(KEY), text.as_bytes())?;
            create_file(&tmp.join(RECORDS), b"")?;
            sync_dir(&tmp)
        })();
        if let Err(e) = assembled {
            // A full or failing disk: leave nothing behind (it holds no record).
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &dir).map_err(io(&dir))?;
        sync_dir(&parent)?;
        let records = dir.join(RECORDS);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&records)
            .map_err(io(&records))?;
        lock(&file, &dir)?;
        let public = key.to_public();
        Ok(Journal {
            dir,
            records,
            file,
            key,
            recipients: recipients.with(public),
            seq: 0,
            prev: super::record::GENESIS,
            poisoned: false,
            clock: Box::new(SystemTime::now),
            last_line: None,
        })
    }

    fn resume(out: &Path, recipients: Recipients) -> Result<(Journal, Recovery), AuditError> {
        let dir = path(out);
        let damaged = |what: String| AuditError::JournalDamaged {
            path: dir.clone(),
            what,
        };
        let raw = read_own(&dir, KEY, cap::JOURNAL_SMALL)?;
        let text =
            std::str::from_utf8(&raw).map_err(|_| damaged(format!("{KEY} is not UTF-8 text")))?;
        let key = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .and_then(|l| age::x25519::Identity::from_str(l).ok())
            .ok_or_else(|| damaged(format!("{KEY} holds no age identity")))?;
        let records = dir.join(RECORDS);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&records)
            .map_err(io(&records))?;
        lock(&file, &dir)?;
        // Opened for appending (that never blocks), then checked as
        // `read_regular` would: a FIFO swapped in would block the read.
        let meta = file.metadata().map_err(io(&records))?;
        if !meta.is_file() || meta.len() > cap::AUDIT_LOG {
            return Err(damaged(format!(
                "{RECORDS} is not a regular file of at most {}",
                crate::fsread::size_words(cap::AUDIT_LOG)
            )));
        }
        let mut bytes = Vec::new();
        (&mut file)
            .take(cap::AUDIT_LOG)
            .read_to_end(&mut bytes)
            .map_err(io(&records))?;
        let decoded = intact(&dir, decode(&bytes, &Identities::one(key.clone())))?;
        if decoded.torn > 0 {
            // The frame being written when the process died: never complete,
            // so never part of the chain. Cut it off; the resume record says so.
            file.set_len(decoded.good_len as u64)
                .map_err(io(&records))?;
            file.sync_all().map_err(io(&records))?;
        }
        let recovery = recovery_of(&decoded);
        let public = key.to_public();
        Ok((
            Journal {
                dir,
                records,
                file,
                key,
                recipients: recipients.with(public),
                seq: decoded.chain.len(),
                prev: decoded.chain.last_hash(),
                poisoned: false,
                clock: Box::new(SystemTime::now),
                last_line: None,
            },
            recovery,
        ))
    }

    /// Replaces the clock (tests).
    pub fn set_clock(&mut self, clock: Box<dyn Fn() -> SystemTime>) {
        self.clock = clock;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records appended so far.
    pub fn len(&self) -> u64 {
        self.seq
    }

    pub fn is_empty(&self) -> bool {
        self.seq == 0
    }

    /// Hash of the last record.
    pub fn last_hash(&self) -> [u8; 32] {
        self.prev
    }

    /// Appends one record as one frame and fsyncs it; returns its hash.
    pub fn append(&mut self, event: Event) -> Result<[u8; 32], AuditError> {
        self.append_all(vec![event])
    }

    /// Appends records as one frame (one encryption, one write, one fsync)
    /// and returns the last one's hash. None is durable before all are.
    pub fn append_all(&mut self, events: Vec<Event>) -> Result<[u8; 32], AuditError> {
        if self.poisoned {
            return Err(AuditError::JournalDamaged {
                path: self.dir.clone(),
                what: "an earlier append failed; nothing more is written".into(),
            });
        }
        if events.is_empty() {
            return Ok(self.prev);
        }
        let time = crate::fmt::rfc3339_millis((self.clock)());
        let count = events.len() as u64;
        let mut plain = String::new();
        let mut hash = self.prev;
        for (i, event) in events.into_iter().enumerate() {
            let (line, h) = next_record(self.seq + i as u64, &hash, time.clone(), event)?;
            if i > 0 {
                plain.push('\n');
            }
            plain.push_str(&line);
            hash = h;
        }
        let ct = self.recipients.encrypt(plain.as_bytes())?;
        let (first, last) = (self.seq + 1, self.seq + count);
        let seqs = if count == 1 {
            first.to_string()
        } else {
            format!("{first}-{last}")
        };
        let mut frame = format!(
            "{seqs} {} {}\n",
            crate::fmt::hex(&crate::x509::sha256(plain.as_bytes())),
            ct.len()
        )
        .into_bytes();
        frame.extend_from_slice(&ct);
        // One write, then fsync: a crash leaves this frame torn, never a gap.
        self.poisoned = true;
        self.file.write_all(&frame).map_err(io(&self.records))?;
        self.file.sync_data().map_err(io(&self.records))?;
        crate::failpoint::hit("journal-append");
        self.poisoned = false;
        self.seq += count;
        self.prev = hash;
        self.last_line = plain.rsplit('\n').next().map(str::to_string);
        Ok(hash)
    }

    /// The canonical line of the last record this run appended.
    pub fn last_line(&self) -> Option<&str> {
        self.last_line.as_deref()
    }

    /// The sealed log, written into `out` as one age stream to `recipients`
    /// (not to the journal-local identity): every record line, read back
    /// frame by frame and checked again as [`Journal::lines`] does, then the
    /// seal line. Holds one frame at a time, never the whole log. Returns
    /// the number of records.
    pub fn write_sealed(
        &self,
        seal: &super::seal::Seal,
        recipients: &[String],
        out: &mut dyn Write,
    ) -> Result<u64, AuditError> {
        let damaged = |what: String| AuditError::JournalDamaged {
            path: self.dir.clone(),
            what,
        };
        let ids = Identities::one(self.key.clone());
        let file = File::open(&self.records).map_err(io(&self.records))?;
        let mut input = std::io::BufReader::new(file);
        let mut w = Recipients::parse(recipients)?.stream(out)?;
        let written = |e: std::io::Error| AuditError::Encrypt {
            what: e.to_string(),
        };
        let (mut count, mut prev) = (0u64, super::record::GENESIS);
        let mut header = Vec::new();
        loop {
            header.clear();
            let n = std::io::BufRead::read_until(&mut input, b'\n', &mut header)
                .map_err(io(&self.records))?;
            if n == 0 {
                break;
            }
            let Some(line) = header.strip_suffix(b"\n") else {
                return Err(damaged("a torn last frame".into()));
            };
            let (first, last, hash, len) = parse_header(line, count + 1, 0).map_err(damaged)?;
            let mut ct = vec![0u8; len];
            input.read_exact(&mut ct).map_err(io(&self.records))?;
            let plain = Zeroizing::new(ids.decrypt(&ct).map_err(|e| {
                damaged(format!(
                    "records {first}-{last}: its frame does not decrypt ({e:?})"
                ))
            })?);
            if crate::x509::sha256(&plain) != hash {
                return Err(damaged(format!("records {first}-{last}: hash mismatch")));
            }
            for line in plain.split(|&b| b == b'\n') {
                let record: Record = serde_json::from_slice(line)
                    .map_err(|e| damaged(format!("record {}: {e}", count + 1)))?;
                if record.seq != count + 1 || record.prev != hex::encode(prev) {
                    return Err(damaged(format!(
                        "record {} does not follow record {count}",
                        record.seq
                    )));
                }
                count += 1;
                prev = crate::x509::sha256(line);
                w.write_all(line).map_err(written)?;
                w.write_all(b"\n").map_err(written)?;
            }
            if count != last {
                return Err(damaged(format!("records {first}-{last}: {count} read")));
            }
        }
        if count != self.seq || prev != self.prev {
            return Err(damaged(format!(
                "it changed under this run: {count} records on disk, {} appended",
                self.seq
            )));
        }
        w.write_all(seal.line()?.as_bytes()).map_err(written)?;
        w.write_all(b"\n").map_err(written)?;
        w.finish().map_err(written)?;
        Ok(count)
    }

    /// Every record line, decrypted with the journal-local identity and
    /// checked again (headers, chain, and that it ends where we are).
    pub fn lines(&self) -> Result<Vec<String>, AuditError> {
        let damaged = |what: String| AuditError::JournalDamaged {
            path: self.dir.clone(),
            what,
        };
        let bytes = read_own(&self.dir, RECORDS, cap::AUDIT_LOG)?;
        let d = intact(
            &self.dir,
            decode(&bytes, &Identities::one(self.key.clone())),
        )?;
        if d.torn > 0 || d.chain.len() != self.seq || d.chain.last_hash() != self.prev {
            return Err(damaged(format!(
                "it changed under this run: {} records on disk, {} appended",
                d.chain.len(),
                self.seq
            )));
        }
        Ok(d.lines)
    }

    /// Removes the journal (after the sealed log is committed): see [`remove_dir`].
    pub fn remove(self) -> Result<(), AuditError> {
        let Journal { dir, file, .. } = self;
        drop(file);
        remove_dir(&dir)
    }
}

impl Audit for Journal {
    fn record(&mut self, event: Event) -> Result<(), AuditError> {
        self.append(event).map(|_| ())
    }

    fn record_all(&mut self, events: Vec<Event>) -> Result<(), AuditError> {
        self.append_all(events).map(|_| ())
    }
}

/// What a resumed run found: counts, whether the last run ended, and the
/// leaf certificates it signed since its start or resume (never committed).
fn recovery_of(d: &Decoded) -> Recovery {
    let mut discarded = Vec::new();
    let mut ended = false;
    // Over the whole journal: a generation interrupted in any earlier run
    // stays pending until a key is recorded under its label or its leftovers
    // removed; by label, since a later generation of the same CA gets a new
    // id. Likewise a CA certificate signed and not yet stored, by role.
    let mut pending: Vec<PendingKey> = Vec::new();
    let mut stores: Vec<PendingStore> = Vec::new();
    for line in &d.lines {
        let Ok(r) = serde_json::from_str::<Record>(line) else {
            continue;
        };
        match r.event {
            Event::CeremonyStarted { .. } | Event::Resumed { .. } => {
                discarded.clear();
                ended = false;
            }
            Event::CertificateIssued(c) if c.node.is_some() => discarded.push(c.serial),
            // A CA certificate: no node and no output file of its own.
            Event::CertificateIssued(c) if c.file.is_none() => stores.push(PendingStore {
                role: c.role,
                sha256: c.sha256,
            }),
            Event::CertificateStored { role, .. }
            | Event::UnfinishedCertificateRemoved { role, .. } => stores.retain(|s| s.role != role),
            Event::CertificateFound(c) => stores.retain(|s| s.role != c.role),
            Event::KeyGenerationStarted {
                role, label, id, ..
            } => pending.push(PendingKey { role, label, id }),
            Event::KeyGenerated(k) | Event::KeyFound(k) => pending.retain(|p| p.label != k.label),
            Event::UnfinishedKeyRemoved { label, .. } => pending.retain(|p| p.label != label),
            Event::End { .. } => ended = true,
            _ => {}
        }
    }
    Recovery {
        records: d.chain.len(),
        last_hash: hex::encode(d.chain.last_hash()),
        torn_frame_bytes: d.torn as u64,
        previous_run_ended: ended,
        discarded_leaf_serials: discarded,
        staging_discarded: false,
        interrupted_key_generations: pending,
        interrupted_certificate_stores: stores,
        sealed_final_hashes: d
            .chain
            .records
            .iter()
            .filter(|r| r.kind == "end")
            .map(|r| hex::encode(r.hash))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: [u8; 32] = [9; 32];

    fn auditor() -> (age::x25519::Identity, Vec<String>) {
        let id = age::x25519::Identity::generate();
        let r = vec![id.to_public().to_string()];
        (id, r)
    }

    fn ev(i: u64) -> Event {
        Event::LoggedIn {
            source: format!("test {i}"),
        }
    }

    fn key(label: &str, id: &str) -> Event {
        Event::KeyGenerated(super::super::event::KeyInfo {
            role: "root".into(),
            label: label.into(),
            id: id.into(),
            key_type: "ecdsa-p384".into(),
            spki_sha256: String::new(),
            flags: crate::token::KeyFlags::default().into(),
        })
    }

    fn started(label: &str, id: &str) -> Event {
        Event::KeyGenerationStarted {
            role: "root".into(),
            label: label.into(),
            key_type: "ecdsa-p384".into(),
            id: id.into(),
        }
    }

    fn issued(role: &str, node: Option<&str>, sha256: &str) -> Event {
        Event::CertificateIssued(super::super::event::CertInfo {
            role: role.into(),
            node: node.map(str::to_string),
            file: node.map(|n| format!("nodes/{n}/x.crt")),
            signed_by: "root".into(),
            subject: String::new(),
            issuer: String::new(),
            serial: sha256.into(),
            not_before: String::new(),
            not_after: String::new(),
            sha256: sha256.into(),
            spki_sha256: String::new(),
        })
    }

    /// A cleanup cut short after any of its unlinks is recognised as this
    /// plan's and finished; the identity goes first; another plan's journal
    /// or a stranger in a journal without its owner file is not touched.
    #[test]
    fn a_cleanup_cut_short_anywhere_is_finished() {
        let (_, r) = auditor();
        for done in 0..=REMOVAL_ORDER.len() {
            let d = tempfile::tempdir().unwrap();
            let out = d.path().join("out");
            let (mut j, _) = Journal::open(&out, &SHA, &r).unwrap();
            j.append(ev(1)).unwrap();
            drop(j);
            let dir = path(&out);
            for name in &REMOVAL_ORDER[..done] {
                fs::remove_file(dir.join(name)).unwrap();
            }
            if done > 0 {
                assert!(!dir.join(KEY).exists(), "the identity is unlinked first");
            }
            assert!(
                cleanup_underway(&out, &SHA).unwrap(),
                "after {done} unlinks"
            );
            if done < REMOVAL_ORDER.len() {
                assert!(
                    matches!(
                        cleanup_underway(&out, &[1; 32]),
                        Err(AuditError::ForeignJournal { .. })
                    ),
                    "after {done} unlinks, another plan's"
                );
            }
            remove_dir(&dir).unwrap();
            assert!(fs::symlink_metadata(&dir).is_err(), "after {done} unlinks");
            assert!(!cleanup_underway(&out, &SHA).unwrap());
            assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
        }
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        drop(Journal::open(&out, &SHA, &r).unwrap());
        let dir = path(&out);
        fs::remove_file(dir.join(PLAN)).unwrap();
        fs::write(dir.join("notes"), b"x").unwrap();
        assert!(matches!(
            cleanup_underway(&out, &SHA),
            Err(AuditError::JournalDamaged { .. })
        ));
    }

    /// What a resumed run must look at: a generation or a CA certificate
    /// store the journal shows begun and never done, and nothing else.
    #[test]
    fn recovery_lists_the_unfinished_token_writes() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let (_, r) = auditor();
        let (mut j, _) = Journal::open(&out, &SHA, &r).unwrap();
        for e in [
            // The first generation of "a" left nothing; the second made it.
            started("a", "01"),
            started("a", "02"),
            key("a", "02"),
            // "b" was being generated when the run died.
            started("b", "03"),
            // Two signings of the root certificate, the second stored.
            issued("root", None, "aa"),
            issued("root", None, "bb"),
            Event::CertificateStored {
                role: "root".into(),
                label: "a".into(),
                sha256: "bb".into(),
            },
            // A leaf is never stored on the token.
            issued("apiserver", Some("cp-1"), "cc"),
            // The kubernetes certificate was being stored.
            issued("kubernetes", None, "dd"),
        ] {
            j.append(e).unwrap();
        }
        drop(j);
        let (_, rec) = Journal::open(&out, &SHA, &r).unwrap();
        let rec = rec.unwrap();
        assert_eq!(
            rec.interrupted_key_generations,
            [PendingKey {
                role: "root".into(),
                label: "b".into(),
                id: "03".into()
            }]
        );
        assert_eq!(
            rec.interrupted_certificate_stores,
            [PendingStore {
                role: "kubernetes".into(),
                sha256: "dd".into()
            }]
        );
        assert_eq!(rec.discarded_leaf_serials, ["cc"]);
    }

    #[test]
    fn records_survive_a_reopen_and_auditors_can_read_them() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let (id, r) = auditor();
        let (mut j, rec) = Journal::open(&out, &SHA, &r).unwrap();
        assert!(rec.is_none());
        for i in 0..3 {
            j.append(ev(i)).unwrap();
        }
        let last = j.last_hash();
        drop(j);
        let dir = path(&out);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(KEY)), 0o600);
        assert_eq!(mode(&dir.join(RECORDS)), 0o600);

        let (mut j, rec) = Journal::open(&out, &SHA, &r).unwrap();
        let rec = rec.unwrap();
        assert_eq!(rec.records, 3);
        assert_eq!(rec.last_hash, hex::encode(last));
        assert_eq!(rec.torn_frame_bytes, 0);
        j.append(ev(3)).unwrap();
        assert_eq!(j.lines().unwrap().len(), 4);

        // The auditor's identity opens every frame too.
        let bytes = fs::read(dir.join(RECORDS)).unwrap();
        let dec = decode(&bytes, &Identities::one(id)).unwrap();
        assert_eq!(dec.damage, None);
        assert_eq!(dec.chain.len(), 4);
        let r3: Record = serde_json::from_str(&dec.lines[3]).unwrap();
        assert_eq!(r3.seq, 4);
        assert_eq!(r3.event, ev(3));
        j.remove().unwrap();
        assert!(!dir.exists());
    }

    #[test]
    fn a_torn_last_frame_is_cut_off_and_reported() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let (_, r) = auditor();
        let (mut j, _) = Journal::open(&out, &SHA, &r).unwrap();
        j.append(ev(0)).unwrap();
        j.append(ev(1)).unwrap();
        let good = j.last_hash();
        drop(j);
        let records = path(&out).join(RECORDS);
        let full = fs::read(&records).unwrap();
        // Simulate a third frame torn half-way through its ciphertext.
        let mut torn = full.clone();
        torn.extend_from_slice(b"3 ");
        torn.extend_from_slice(hex::encode([1u8; 32]).as_bytes());
        torn.extend_from_slice(b" 300\nage-encryption.org/v1\n-> X25519");
        let extra = torn.len() - full.len();
        fs::write(&records, &torn).unwrap();
        let (mut j, rec) = Journal::open(&out, &SHA, &r).unwrap();
        let rec = rec.unwrap();
        assert_eq!(rec.records, 2);
        assert_eq!(rec.torn_frame_bytes, extra as u64);
        assert_eq!(rec.last_hash, hex::encode(good));
        assert_eq!(
            fs::read(&records).unwrap(),
            full,
            "the torn tail is cut off"
        );
        j.append(ev(2)).unwrap();
        assert_eq!(j.lines().unwrap().len(), 3);
        // A header without its newline is torn too.
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&records).unwrap();
        f.write_all(b"4 abc").unwrap();
        let (_, rec) = Journal::open(&out, &SHA, &r).unwrap();
        assert_eq!(rec.unwrap().torn_frame_bytes, 5);
    }

    #[test]
    fn damage_in_the_middle_is_refused_with_the_record() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let (_, r) = auditor();
        let (mut j, _) = Journal::open(&out, &SHA, &r).unwrap();
        for i in 0..3 {
            j.append(ev(i)).unwrap();
        }
        drop(j);
        let records = path(&out).join(RECORDS);
        let mut bytes = fs::read(&records).unwrap();
        let (frames, _) = parse_frames(&bytes);
        assert_eq!(frames.frames.len(), 3);
        // Flip one ciphertext byte of frame 2.
        let second = frames.frames[1].ciphertext.as_ptr() as usize - bytes.as_ptr() as usize;
        bytes[second + 200] ^= 1;
        fs::write(&records, &bytes).unwrap();
        let e = Journal::open(&out, &SHA, &r).unwrap_err();
        assert!(
            e.to_string()
                .contains("record 2: its frame does not decrypt"),
            "{e}"
        );
    }

    #[test]
    fn a_journal_of_another_plan_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let (_, r) = auditor();
        let (j, _) = Journal::open(&out, &SHA, &r).unwrap();
        drop(j);
        assert!(matches!(
            check_owner(&out, &[1; 32]),
            Err(AuditError::ForeignJournal { .. })
        ));
        assert!(check_owner(&out, &SHA).unwrap());
        assert!(!check_owner(&d.path().join("other"), &SHA).unwrap());
    }

    #[test]
    fn a_second_process_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let (_, r) = auditor();
        let (_j, _) = Journal::open(&out, &SHA, &r).unwrap();
        // Another open file description of the same records file cannot lock it.
        let e = Journal::open(&out, &SHA, &r).unwrap_err();
        assert!(matches!(e, AuditError::JournalBusy { .. }), "{e}");
    }

    #[test]
    fn a_batch_is_one_frame_that_reads_as_its_records() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let (id, r) = auditor();
        let (mut j, _) = Journal::open(&out, &SHA, &r).unwrap();
        j.append(ev(0)).unwrap();
        let fifth = j.append_all((1..5).map(ev).collect()).unwrap();
        assert_eq!(j.append_all(Vec::new()).unwrap(), fifth, "nothing to write");
        j.append(ev(5)).unwrap();
        assert_eq!(j.len(), 6);
        let bytes = fs::read(path(&out).join(RECORDS)).unwrap();
        let (frames, damage) = parse_frames(&bytes);
        assert!(damage.is_none());
        let spans: Vec<(u64, u64)> = frames.frames.iter().map(|f| (f.seq, f.last)).collect();
        assert_eq!(spans, vec![(1, 1), (2, 5), (6, 6)]);
        assert!(
            bytes.starts_with(b"1 "),
            "a single record keeps the old header"
        );
        // The auditor's identity opens the batch; the chain runs through it.
        let dec = decode(&bytes, &Identities::one(id)).unwrap();
        assert_eq!(dec.damage, None);
        assert_eq!(dec.lines.len(), 6);
        assert_eq!(dec.chain.records[4].hash, fifth);
        let r4: Record = serde_json::from_str(&dec.lines[4]).unwrap();
        assert_eq!((r4.seq, r4.event), (5, ev(4)));
        drop(j);
        let (mut j, rec) = Journal::open(&out, &SHA, &r).unwrap();
        assert_eq!(rec.unwrap().records, 6);
        j.append_all(vec![ev(6), ev(7)]).unwrap();
        assert_eq!(j.lines().unwrap().len(), 8);
    }

    #[test]
    fn a_batch_frame_must_hold_what_its_header_says() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let (id, r) = auditor();
        let (mut j, _) = Journal::open(&out, &SHA, &r).unwrap();
        j.append_all(vec![ev(0), ev(1), ev(2)]).unwrap();
        drop(j);
        let records = path(&out).join(RECORDS);
        let bytes = fs::read(&records).unwrap();
        assert!(bytes.starts_with(b"1-3 "));
        // Claim four records where three are.
        let mut claimed = b"1-4".to_vec();
        claimed.extend_from_slice(&bytes[3..]);
        let dec = decode(&claimed, &Identities::one(id)).unwrap();
        let damage = dec.damage.unwrap();
        assert_eq!(damage.record, 1);
        assert!(
            damage.what.contains("records 1 to 4, but holds 3"),
            "{damage:?}"
        );
        assert!(dec.lines.is_empty());
    }

    #[test]
    fn frame_headers_must_be_well_formed() {
        let (f, d) = parse_frames(b"");
        assert!(f.frames.is_empty() && d.is_none());
        let e = parse_frames(b"1 zz 3\nabc").1.unwrap();
        assert_eq!(e.record, 1);
        let h = hex::encode([0u8; 32]);
        let e = parse_frames(format!("2 {h} 3\nabc").as_bytes()).1.unwrap();
        assert!(e.what.contains("numbered 2, expected 1"), "{e:?}");
        let torn = format!("1 {h} 3\nabc2 {h} 9\nab");
        let (f, d) = parse_frames(torn.as_bytes());
        assert!(d.is_none());
        assert_eq!(f.frames.len(), 1);
        assert_eq!(f.frames[0].ciphertext, b"abc");
        assert!(f.torn > 0);
        let skipped = format!("1 {h} 3\nabc3 {h} 3\nabc");
        let (f, d) = parse_frames(skipped.as_bytes());
        assert_eq!(f.frames.len(), 1, "frames before the damage are kept");
        assert_eq!(d.unwrap().record, 2);
        assert!(parse_frames(&[b'x'; 200]).1.is_some());
        // Batches: numbered on from their last record; never backwards.
        let batches = format!("1-3 {h} 3\nabc4 {h} 3\nabc");
        let (f, d) = parse_frames(batches.as_bytes());
        assert!(d.is_none());
        assert_eq!(
            f.frames.iter().map(|x| x.last).collect::<Vec<_>>(),
            vec![3, 4]
        );
        let gap = format!("1-3 {h} 3\nabc5 {h} 3\nabc");
        assert_eq!(parse_frames(gap.as_bytes()).1.unwrap().record, 4);
        let backwards = format!("3-1 {h} 3\nabc");
        assert!(parse_frames(backwards.as_bytes()).1.is_some());
    }
}
