//! The journal's frames read back: each frame a complete age file behind a
//! length header, a torn last frame told apart from damage, and the records
//! decoded with the journal-local identity. Pure: bytes in, records out.

use std::path::Path;

use super::AuditError;
use super::crypto::{DecryptFailure, Identities};
use super::journal::KEY;
use super::record::Chain;

/// A frame header is short; anything longer without a newline is damage.
pub(super) const MAX_HEADER: usize = 128;

/// No record comes near this; a larger length is damage.
pub(super) const MAX_FRAME: usize = 1 << 24;

/// One frame of a records file: records `seq` through `last` (one record
/// when they are equal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    pub seq: u64,
    pub last: u64,
    pub hash: [u8; 32],
    pub ciphertext: &'a [u8],
}

/// A records file split into frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frames<'a> {
    pub frames: Vec<Frame<'a>>,
    /// Length of the complete frames (where a torn tail starts).
    pub good_len: usize,
    /// Bytes of an incomplete last frame.
    pub torn: usize,
}

/// A damaged journal: the record number (the first of its frame) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub record: u64,
    pub what: String,
}

/// Splits a records file into frames (pure). An incomplete last frame is a
/// torn write, not damage; a malformed complete header is damage, and the
/// frames before it are still returned.
pub fn parse_frames(bytes: &[u8]) -> (Frames<'_>, Option<Damage>) {
    let mut frames = Vec::new();
    let mut at = 0;
    let result = |frames, good_len, torn, damage| {
        (
            Frames {
                frames,
                good_len,
                torn,
            },
            damage,
        )
    };
    loop {
        let rest = &bytes[at..];
        if rest.is_empty() {
            return result(frames, at, 0, None);
        }
        let n = frames.last().map_or(1, |f: &Frame<'_>| f.last + 1);
        let damage = |what: String| Some(Damage { record: n, what });
        let Some(nl) = rest.iter().take(MAX_HEADER).position(|&b| b == b'\n') else {
            if rest.len() < MAX_HEADER {
                return result(frames, at, rest.len(), None);
            }
            let d = damage(format!(
                "no frame header at byte {at} (no newline in {MAX_HEADER} bytes)"
            ));
            return result(frames, at, 0, d);
        };
        let (seq, last, hash, len) = match parse_header(&rest[..nl], n, at) {
            Ok(h) => h,
            Err(what) => return result(frames, at, 0, damage(what)),
        };
        let body = &rest[nl + 1..];
        if body.len() < len {
            return result(frames, at, rest.len(), None);
        }
        frames.push(Frame {
            seq,
            last,
            hash,
            ciphertext: &body[..len],
        });
        at += nl + 1 + len;
    }
}

/// One frame header (without its newline) at byte `at`, where record
/// `expected` comes next: the first and last record, the hash, the length.
pub(super) fn parse_header(
    line: &[u8],
    expected: u64,
    at: usize,
) -> Result<(u64, u64, [u8; 32], usize), String> {
    let header = String::from_utf8_lossy(line);
    let fields: Vec<&str> = header.split(' ').collect();
    let parsed = match fields.as_slice() {
        [seqs, hash, len] => (|| {
            let (seq, last) = match seqs.split_once('-') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                None => {
                    let one: u64 = seqs.parse().ok()?;
                    (one, one)
                }
            };
            let hash: [u8; 32] = hex::decode(hash).ok()?.try_into().ok()?;
            let len: usize = len.parse().ok()?;
            (last >= seq).then_some((seq, last, hash, len))
        })(),
        _ => None,
    };
    let Some((seq, last, hash, len)) = parsed else {
        return Err(format!(
            "the frame header at byte {at} is not `<seq>[-<last>] <sha256> <length>`: {:?}",
            header.chars().take(100).collect::<String>()
        ));
    };
    if seq != expected {
        return Err(format!(
            "the frame at byte {at} is numbered {seq}, expected {expected} (frames were removed or reordered)"
        ));
    }
    if len > MAX_FRAME {
        return Err(format!("the frame at byte {at} claims {len} bytes"));
    }
    Ok((seq, last, hash, len))
}

/// The records of a journal, decrypted and chained as far as they are intact.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub lines: Vec<String>,
    pub chain: Chain,
    pub good_len: usize,
    pub torn: usize,
    /// The first damaged record, if any (`lines` stop before it).
    pub damage: Option<Damage>,
}

/// Decrypts every complete frame, checks each header's hash against the
/// record it holds, and checks the chain. Err only when the identity cannot
/// open the first frame.
pub fn decode(bytes: &[u8], ids: &Identities) -> Result<Decoded, String> {
    let (frames, mut damage) = parse_frames(bytes);
    let mut chain = Chain::new();
    let mut lines = Vec::new();
    for f in &frames.frames {
        let damaged = |what: String| Damage {
            record: f.seq,
            what,
        };
        let plain = match ids.decrypt(f.ciphertext) {
            Ok(p) => p,
            Err(DecryptFailure::Header(e)) if f.seq == 1 => return Err(e),
            Err(DecryptFailure::Header(e) | DecryptFailure::Payload(e)) => {
                damage = Some(damaged(format!("its frame does not decrypt ({e})")));
                break;
            }
        };
        let got = crate::x509::sha256(&plain);
        if got != f.hash {
            damage = Some(damaged(format!(
                "the record hashes to {}, but its frame header says {}",
                hex::encode(got),
                hex::encode(f.hash)
            )));
            break;
        }
        // A batch frame: its records' lines, joined by newlines.
        let records: Vec<&[u8]> = plain.split(|&b| b == b'\n').collect();
        if records.len() as u64 != f.last - f.seq + 1 {
            damage = Some(damaged(format!(
                "its frame says records {} to {}, but holds {}",
                f.seq,
                f.last,
                records.len()
            )));
            break;
        }
        if let Some(d) = push_lines(&mut chain, &mut lines, &records) {
            damage = Some(d);
            break;
        }
    }
    Ok(Decoded {
        lines,
        chain,
        good_len: frames.good_len,
        torn: frames.torn,
        damage,
    })
}

/// Checks each record line of a frame into the chain and keeps it; the
/// first failure, if any.
pub(super) fn push_lines(
    chain: &mut Chain,
    lines: &mut Vec<String>,
    records: &[&[u8]],
) -> Option<Damage> {
    for r in records {
        if let Err(b) = chain.push(r) {
            return Some(Damage {
                record: b.record,
                what: b.what,
            });
        }
        match std::str::from_utf8(r) {
            Ok(line) => lines.push(line.to_string()),
            Err(_) => {
                return Some(Damage {
                    record: chain.len(),
                    what: "it is not UTF-8".into(),
                });
            }
        }
    }
    None
}

/// A decoded journal the tool may continue: no damage.
pub(super) fn intact(dir: &Path, d: Result<Decoded, String>) -> Result<Decoded, AuditError> {
    let damaged = |what: String| AuditError::JournalDamaged {
        path: dir.to_path_buf(),
        what,
    };
    let d = d.map_err(|e| damaged(format!("its first frame does not open with {KEY} ({e})")))?;
    match &d.damage {
        Some(x) => Err(damaged(format!("record {}: {}", x.record, x.what))),
        None => Ok(d),
    }
}
