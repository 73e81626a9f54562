//! Records and the hash chain (pure: no files, no clock).
//!
//! A record's canonical bytes are its JSON line exactly as serde_json writes
//! [`Record`] (fields in struct order, no trailing newline). Its hash is the
//! SHA-256 of those bytes, and the next record's `prev` holds it in hex. A
//! checker hashes the bytes it was given, never a re-serialization, so it
//! checks exactly what the auditor reads.

use serde::{Deserialize, Serialize};

use super::event::Event;

/// `prev` of record 1.
pub const GENESIS: [u8; 32] = [0; 32];

/// One record of the chain. Records are numbered from 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub seq: u64,
    pub time: String,
    pub prev: String,
    pub event: Event,
}

impl Record {
    /// The canonical bytes (one JSON line without its newline).
    pub fn canonical(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// What the chain check needs of a record: parsed loosely, so a record of a
/// newer kind still chains (its hash is of its bytes, whatever they say).
#[derive(Deserialize)]
struct Head {
    seq: u64,
    #[allow(dead_code)] // required to be present; its value is shown, not checked
    time: String,
    prev: String,
    event: serde_json::Value,
}

/// A record line that chained: its number, hash and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    pub seq: u64,
    pub hash: [u8; 32],
    pub kind: String,
}

/// The first broken record and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub record: u64,
    pub what: String,
}

/// Incremental chain checker: feed the lines in order.
#[derive(Debug, Clone)]
pub struct Chain {
    pub records: Vec<Linked>,
    prev: [u8; 32],
}

impl Default for Chain {
    fn default() -> Self {
        Chain::new()
    }
}

impl Chain {
    pub fn new() -> Chain {
        Chain {
            records: Vec::new(),
            prev: GENESIS,
        }
    }

    /// Hash of the last record (GENESIS when there is none).
    pub fn last_hash(&self) -> [u8; 32] {
        self.prev
    }

    pub fn len(&self) -> u64 {
        self.records.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Checks one more record line: it parses, carries the next sequence
    /// number, and its `prev` is the hash of the record before it.
    pub fn push(&mut self, line: &[u8]) -> Result<&Linked, Break> {
        let n = self.len() + 1;
        let head: Head = serde_json::from_slice(line).map_err(|e| Break {
            record: n,
            what: format!("it is not a valid record ({e})"),
        })?;
        if head.seq != n {
            let what = if head.seq > n {
                format!(
                    "record {n} is missing: record {} stands in its place (records were removed or reordered)",
                    head.seq
                )
            } else {
                format!(
                    "record {} appears again in the place of record {n} (records were repeated or reordered)",
                    head.seq
                )
            };
            return Err(Break { record: n, what });
        }
        let expected = hex::encode(self.prev);
        if head.prev != expected {
            return Err(if n == 1 {
                Break {
                    record: 1,
                    what: format!(
                        "the first record's prev is {}, not 64 zeros (records before it were removed)",
                        head.prev
                    ),
                }
            } else {
                Break {
                    record: n - 1,
                    what: format!(
                        "record {} was altered (or the prev of record {n}): it hashes to {expected}, but record {n}'s prev is {}",
                        n - 1,
                        head.prev
                    ),
                }
            });
        }
        let kind = head
            .event
            .get("kind")
            .and_then(|k| k.as_str())
            .ok_or_else(|| Break {
                record: n,
                what: "its event has no kind".into(),
            })?
            .to_string();
        let hash = crate::x509::sha256(line);
        self.prev = hash;
        self.records.push(Linked { seq: n, hash, kind });
        self.records.last().ok_or_else(|| Break {
            record: n,
            what: "internal: record lost".into(),
        })
    }
}

/// Builds the next record after `prev_seq`/`prev_hash` and returns it with
/// its canonical line and hash.
pub fn next_record(
    prev_seq: u64,
    prev_hash: &[u8; 32],
    time: String,
    event: Event,
) -> Result<(String, [u8; 32]), serde_json::Error> {
    let r = Record {
        seq: prev_seq + 1,
        time,
        prev: crate::fmt::hex(prev_hash),
        event,
    };
    let line = r.canonical()?;
    let hash = crate::x509::sha256(line.as_bytes());
    Ok((line, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: u64) -> Event {
        Event::LoggedIn {
            source: format!("test {i}"),
        }
    }

    /// Lines of a valid chain of n records.
    pub fn chain(n: u64) -> Vec<String> {
        let mut v = Vec::new();
        let mut prev = GENESIS;
        for i in 0..n {
            let (line, hash) =
                next_record(i, &prev, "2026-11-23T17:51:27.000Z".into(), ev(i)).unwrap();
            v.push(line);
            prev = hash;
        }
        v
    }

    fn check(lines: &[String]) -> Result<Chain, Break> {
        let mut c = Chain::new();
        for l in lines {
            c.push(l.as_bytes())?;
        }
        Ok(c)
    }

    #[test]
    fn an_intact_chain_checks() {
        let lines = chain(5);
        let c = check(&lines).unwrap();
        assert_eq!(c.len(), 5);
        assert_eq!(c.last_hash(), crate::x509::sha256(lines[4].as_bytes()));
        assert!(lines[0].starts_with(&format!(
            r#"{{"seq":1,"time":"2026-11-23T17:51:27.000Z","prev":"{}","event":{{"kind":"logged_in""#,
            "0".repeat(64)
        )));
        // Round trip through the typed record gives the same bytes.
        let r: Record = serde_json::from_str(&lines[2]).unwrap();
        assert_eq!(r.canonical().unwrap(), lines[2]);
    }

    #[test]
    fn an_altered_record_is_named() {
        let mut lines = chain(5);
        lines[2] = lines[2].replace("test 2", "test X");
        let b = check(&lines).unwrap_err();
        assert_eq!(b.record, 3, "{b:?}");
        assert!(b.what.contains("record 3 was altered"), "{b:?}");
    }

    #[test]
    fn a_dropped_record_is_named() {
        let mut lines = chain(5);
        lines.remove(1);
        let b = check(&lines).unwrap_err();
        assert_eq!(b.record, 2);
        assert!(b.what.contains("record 2 is missing"), "{b:?}");
    }

    #[test]
    fn reordered_records_are_named() {
        let mut lines = chain(5);
        lines.swap(2, 3);
        let b = check(&lines).unwrap_err();
        assert_eq!(b.record, 3);
        assert!(b.what.contains("record 3 is missing: record 4"), "{b:?}");
    }

    #[test]
    fn a_repeated_record_is_named() {
        let mut lines = chain(3);
        lines.insert(2, lines[1].clone());
        let b = check(&lines).unwrap_err();
        assert_eq!(b.record, 3);
        assert!(b.what.contains("record 2 appears again"), "{b:?}");
    }

    #[test]
    fn a_cut_head_is_named() {
        let lines = chain(3);
        let b = check(&lines[1..]).unwrap_err();
        assert_eq!(b.record, 1);
        let mut renumbered = chain(3);
        renumbered[0] = renumbered[0].replacen(&"0".repeat(64), &"1".repeat(64), 1);
        let b = check(&renumbered).unwrap_err();
        assert_eq!(b.record, 1);
        assert!(b.what.contains("not 64 zeros"), "{b:?}");
    }

    #[test]
    fn garbage_is_named() {
        let mut lines = chain(3);
        lines[1].truncate(20);
        let b = check(&lines).unwrap_err();
        assert_eq!(b.record, 2);
        assert!(b.what.contains("not a valid record"), "{b:?}");
    }
}
