//! The audit record of a ceremony: typed events, the hash chain, the
//! crash-safe journal, the root's seal, the age encryption, `audit
//! verify`/`show`, and the printable transcript.
//!
//! What this module never does: record free text that could hold a secret
//! (events are typed values: labels, ids, hashes, names, the rendered text of
//! an error, which never holds a PIN), see a private key (the seal is a
//! signature the token makes through [`crate::token::Token::sign`]), or write
//! a ceremony output itself (the sealed log and the transcript go through the
//! one writer, `bundle::write::Staging`).
//!
//! Formats:
//! - a **record** is one JSON line `{"seq":…,"time":…,"prev":…,"event":{"kind":…}}`
//!   as serde_json writes [`record::Record`] (field order fixed by the struct);
//!   its hash is the SHA-256 of exactly those bytes, and `prev` is the previous
//!   record's hash in hex (64 zeros for record 1);
//! - the **journal** (`.<out>.journal/`) holds complete age files, each of one
//!   record or of a batch of consecutive records, each behind a plaintext
//!   header line, fsynced one by one (see [`journal`]);
//! - the **sealed log** (`OUT/audit.log.age`) is one ordinary age file whose
//!   plaintext is every record's line followed by one seal line (see [`seal`]).

pub mod chain;
pub mod crypto;
pub mod event;
pub mod frames;
pub mod inspect;
pub mod journal;
pub mod record;
pub mod seal;
pub mod transcript;

use std::path::{Path, PathBuf};

pub use event::Event;
pub use journal::Journal;

/// Where events go: the journal in a ceremony, a `Vec` in tests.
///
/// An error means the event could not be made durable; the caller must stop,
/// since an irreversible step that is not on the record is what the log exists
/// to prevent.
pub trait Audit {
    fn record(&mut self, event: Event) -> Result<(), AuditError>;
    /// Records several events in order, all durable when it returns (the
    /// journal writes them as one frame: one fsync for a batch of leaves).
    fn record_all(&mut self, events: Vec<Event>) -> Result<(), AuditError> {
        events.into_iter().try_for_each(|e| self.record(e))
    }
}

impl Audit for Vec<Event> {
    fn record(&mut self, event: Event) -> Result<(), AuditError> {
        self.push(event);
        Ok(())
    }
}

/// Errors of the audit record. Variants name the file and the record; none
/// carries a secret (the journal-local identity is never put in an error).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit record {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} holds the unsealed audit journal of another plan or of other inputs (inputs SHA-256 {found}; this plan's inputs are {expected})",
        .path.display()
    )]
    ForeignJournal {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("audit journal {} is in use by another ceremony process", .path.display())]
    JournalBusy { path: PathBuf },
    #[error("audit journal {} is damaged: {what}", .path.display())]
    JournalDamaged { path: PathBuf, what: String },
    #[error("cannot encrypt the audit record: {what}")]
    Encrypt { what: String },
    #[error("identity file {}: {what}", .path.display())]
    Identity { path: PathBuf, what: String },
    #[error("{}: {what}", .path.display())]
    NotAuditLog { path: PathBuf, what: String },
    #[error("{}: cannot decrypt: {what}", .path.display())]
    Decrypt { path: PathBuf, what: String },
    #[error("{}: the audit log is broken at record {record}: {what}", .path.display())]
    Broken {
        path: PathBuf,
        record: u64,
        what: String,
    },
    #[error("the chain of ceremonies is broken: {what}")]
    Chain { what: String },
    #[error("the seal of the audit log failed its check: {what}")]
    Seal { what: String },
    #[error(
        "{}: the seal's signature cannot be checked: no --root was given and no root-ca.crt is beside the log",
        .path.display()
    )]
    NoRoot { path: PathBuf },
    #[error("cannot encode an audit record: {0}")]
    Encode(#[from] serde_json::Error),
}

impl AuditError {
    /// Exit codes as `ceremony --help` lists them: 2 for what the operator gave us, 4 for a
    /// broken log or a seal that does not check, 5 for the system.
    pub fn exit_code(&self) -> i32 {
        match self {
            AuditError::ForeignJournal { .. }
            | AuditError::JournalBusy { .. }
            | AuditError::Identity { .. }
            | AuditError::NotAuditLog { .. }
            | AuditError::Decrypt { .. }
            | AuditError::NoRoot { .. } => 2,
            AuditError::Broken { .. } | AuditError::Seal { .. } | AuditError::Chain { .. } => 4,
            AuditError::Io { .. }
            | AuditError::JournalDamaged { .. }
            | AuditError::Encrypt { .. }
            | AuditError::Encode(_) => 5,
        }
    }

    pub fn hint(&self) -> Option<String> {
        Some(match self {
            AuditError::Io { source, .. } if source.raw_os_error() == Some(28) => {
                "the disk is full: free space, then run again (the ceremony resumes and continues the journal)".into()
            }
            AuditError::Io { .. } => {
                "check the directory's permissions and free space, then run again (the ceremony resumes)".into()
            }
            AuditError::ForeignJournal { path, .. } => format!(
                "to resume its run, put back the plan and the files it names (names file, CSRs) as that run read them; \
                 otherwise choose another --out, or check that journal with `ceremony audit verify {} --identity <auditor identity>` and move it aside",
                path.display()
            ),
            AuditError::JournalBusy { .. } => {
                "wait for the other run to finish; two runs must never share an output".into()
            }
            AuditError::JournalDamaged { path, .. } => format!(
                "do not delete it: keep {} for the auditors (`ceremony audit verify` shows what it holds), move it aside and run again to start a new journal",
                path.display()
            ),
            AuditError::Encrypt { .. } => "check the plan's [audit] recipients".into(),
            AuditError::Identity { .. } => {
                "give --identity an age identity file (AGE-SECRET-KEY-1…) or an unencrypted OpenSSH private key".into()
            }
            AuditError::NotAuditLog { .. } => {
                "give OUT/audit.log.age, an unsealed journal directory .<out>.journal, or its records file".into()
            }
            AuditError::Decrypt { .. } => {
                "give the identity of one of the plan's [audit] recipients".into()
            }
            AuditError::Broken { .. } => {
                "do not trust this log; compare it with the copy the auditors hold and the witnesses' signed transcript".into()
            }
            AuditError::Chain { .. } => {
                "give every sealed log of the token's ceremonies, oldest first, each beside its root-ca.crt; a fork or a missing ceremony is for the auditors to explain".into()
            }
            AuditError::NoRoot { .. } => {
                "give --root with the ceremony's root CA certificate, \
                 or --chain-only to check the sequence and hash chain without the seal's signature"
                    .into()
            }
            AuditError::Seal { .. } => {
                "nothing was written; report this: the token returned a seal signature that does not check".into()
            }
            AuditError::Encode(_) => return None,
        })
    }
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `.<name>.<what>` beside `out`, as the staging directory is named.
pub(crate) fn sibling(out: &Path, what: &str) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    out.with_file_name(format!(".{name}.{what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_sit_beside_the_output() {
        assert_eq!(
            sibling(Path::new("demo/out"), "journal"),
            PathBuf::from("demo/.out.journal")
        );
    }
}
