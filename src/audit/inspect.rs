//! `ceremony audit verify` and `ceremony audit show`: decrypt a sealed log
//! (or an unsealed journal), check sequence, chain and seal, and report the
//! first broken record precisely.
//!
//! Accepted inputs: `OUT/audit.log.age`; a journal directory `.<out>.journal`
//! or its `records` file (unsealed: "N records intact"); or the plaintext
//! JSON lines `age -d` printed (no identity needed). The root certificate
//! for the seal is `--root`, else `root-ca.crt` beside the log; a sealed log
//! with neither is not passed unless the auditor asked for the chain only
//! (`--chain-only`), since a forger who re-chains the log passes the chain.

use std::path::{Path, PathBuf};

use der::{Decode, DecodePem};
use x509_cert::certificate::Certificate;

use super::AuditError;
use super::crypto::{DecryptFailure, Identities};
use super::journal;
use super::record::{Break, Chain, Record};
use super::seal::{Seal, SealLine};
use crate::fsread;

const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// How the seal's signature was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCheck {
    /// Verified against this root certificate file.
    Checked(PathBuf),
    /// Not checked: no root certificate was at hand, or the auditor asked
    /// for the chain only.
    NotChecked,
}

/// Which root certificate checks the seal's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealRoot<'a> {
    /// `--root FILE`, else `root-ca.crt` beside the log; neither is an error.
    Required(Option<&'a Path>),
    /// `--chain-only`: sequence, chain and the seal's hash, not its signature.
    ChainOnly,
}

/// An intact log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub records: u64,
    pub final_hash: [u8; 32],
    /// Sealed log: the seal and how its signature was checked. None: an unsealed journal.
    pub seal: Option<(Seal, RootCheck)>,
    /// Bytes of a torn last journal frame (a crash while writing it).
    pub torn: usize,
}

/// What `examine` found: every record line read, the seal, and the verdict.
#[derive(Debug, Clone)]
pub struct Examined {
    pub path: PathBuf,
    pub lines: Vec<String>,
    pub seal: Option<Seal>,
    pub outcome: Result<Verdict, Break>,
    /// Whether a seal whose signature was not checked passes (`--chain-only`).
    pub chain_only: bool,
}

impl Examined {
    /// The verdict, or the error naming the first broken record, or that a
    /// sealed log's signature could not be checked (no root at hand, and the
    /// auditor did not ask for the chain only).
    pub fn result(&self) -> Result<&Verdict, AuditError> {
        let v = self.outcome.as_ref().map_err(|b| AuditError::Broken {
            path: self.path.clone(),
            record: b.record,
            what: b.what.clone(),
        })?;
        match &v.seal {
            Some((_, RootCheck::NotChecked)) if !self.chain_only => Err(AuditError::NoRoot {
                path: self.path.clone(),
            }),
            _ => Ok(v),
        }
    }
}

enum Input {
    Sealed(Vec<u8>),
    Plain(Vec<u8>),
    Journal(Vec<u8>),
}

fn read_input(file: &Path) -> Result<Input, AuditError> {
    let not = |what: &str| AuditError::NotAuditLog {
        path: file.to_path_buf(),
        what: what.into(),
    };
    let records = if file.is_dir() {
        let r = file.join(journal::RECORDS);
        if !r.is_file() {
            return Err(not("a directory without a journal `records` file"));
        }
        r
    } else {
        file.to_path_buf()
    };
    let bytes = fsread::read_regular(&records, fsread::cap::AUDIT_LOG, fsread::Links::Follow)
        // Not a secret: out of its wiping buffer without a copy.
        .map(|mut z| std::mem::take(&mut *z))
        .map_err(|e| not(&format!("cannot read it ({})", e.why())))?;
    if bytes.starts_with(AGE_MAGIC) {
        Ok(Input::Sealed(bytes))
    } else if bytes.starts_with(b"{") {
        Ok(Input::Plain(bytes))
    } else if file.is_dir() || bytes.is_empty() || bytes.first().is_some_and(u8::is_ascii_digit) {
        Ok(Input::Journal(bytes))
    } else if bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----") {
        Err(not(
            "an ASCII-armored age file; the ceremony writes binary age: dearmor it with `age -d` first",
        ))
    } else {
        Err(not(
            "neither an age file, nor a journal, nor JSON lines of an audit log",
        ))
    }
}

fn identities(file: &Path, identity: Option<&Path>) -> Result<Identities, AuditError> {
    match identity {
        Some(p) => Identities::from_file(p),
        None => Err(AuditError::Decrypt {
            path: file.to_path_buf(),
            what: "it is encrypted and no --identity was given".into(),
        }),
    }
}

/// Decrypts and checks a log; `Err` only for what stops the check itself
/// (unreadable file, wrong identity). A broken log is `Ok` with a broken outcome.
pub fn examine(
    file: &Path,
    identity: Option<&Path>,
    root: SealRoot<'_>,
) -> Result<Examined, AuditError> {
    let chain_only = root == SealRoot::ChainOnly;
    let root_path = match root {
        SealRoot::ChainOnly => None,
        SealRoot::Required(Some(p)) => Some(p.to_path_buf()),
        SealRoot::Required(None) => file
            .parent()
            .map(|d| d.join(crate::bundle::layout::ROOT_CA))
            .filter(|p| p.is_file()),
    };
    let root = root_path.as_deref();
    let mut examined = match read_input(file)? {
        Input::Journal(bytes) => {
            let ids = identities(file, identity)?;
            let d = journal::decode(&bytes, &ids).map_err(|what| AuditError::Decrypt {
                path: file.to_path_buf(),
                what,
            })?;
            let outcome = match d.damage {
                Some(x) => Err(Break {
                    record: x.record,
                    what: x.what,
                }),
                None => Ok(Verdict {
                    records: d.chain.len(),
                    final_hash: d.chain.last_hash(),
                    seal: None,
                    torn: d.torn,
                }),
            };
            Examined {
                path: file.to_path_buf(),
                lines: d.lines,
                seal: None,
                outcome,
                chain_only,
            }
        }
        Input::Sealed(bytes) => {
            let ids = identities(file, identity)?;
            let (plain, err) = ids.decrypt_partial(&bytes).map_err(|e| match e {
                DecryptFailure::Header(what) | DecryptFailure::Payload(what) => {
                    AuditError::Decrypt {
                        path: file.to_path_buf(),
                        what,
                    }
                }
            })?;
            check_sealed(file, &plain, err, root)
        }
        Input::Plain(bytes) => check_sealed(file, &bytes, None, root),
    };
    examined.chain_only = chain_only;
    Ok(examined)
}

/// Checks the plaintext of a sealed log: records, then exactly one seal line.
/// `decrypt_error`: the age payload stopped authenticating after `plain`.
/// `root`: the root certificate that checks the seal's signature; None
/// leaves it unchecked (which `Examined::result` refuses unless chain-only).
pub fn check_sealed(
    file: &Path,
    plain: &[u8],
    decrypt_error: Option<String>,
    root: Option<&Path>,
) -> Examined {
    let mut chain = Chain::new();
    let mut lines = Vec::new();
    let mut seal: Option<Seal> = None;
    let mut outcome = None;
    let mut pieces: Vec<&[u8]> = plain.split(|&b| b == b'\n').collect();
    // A complete log ends with a newline; a missing one is a cut line.
    let cut_line = match pieces.pop() {
        Some(last) if !last.is_empty() => Some(last),
        _ => None,
    };
    for piece in pieces.iter().copied().chain(cut_line) {
        let n = chain.len() + 1;
        if let Some(s) = &seal {
            outcome = Some(Err(Break {
                record: n,
                what: format!(
                    "a record follows the seal (the seal covers record {})",
                    short(&s.hash)
                ),
            }));
            break;
        }
        if piece.starts_with(br#"{"seal""#) {
            match serde_json::from_slice::<SealLine>(piece) {
                Ok(s) => {
                    seal = Some(s.seal);
                    continue;
                }
                Err(e) => {
                    outcome = Some(Err(Break {
                        record: chain.len(),
                        what: format!("the seal line after it is not a valid seal ({e})"),
                    }));
                    break;
                }
            }
        }
        if let Err(b) = chain.push(piece) {
            outcome = Some(Err(b));
            break;
        }
        lines.push(String::from_utf8_lossy(piece).into_owned());
    }
    let n = chain.len();
    let outcome = match outcome {
        Some(o) => o,
        None => match (decrypt_error, &seal) {
            (Some(e), _) => Err(Break {
                record: n + 1,
                what: if n == 0 {
                    format!("the file is truncated or damaged before the first record ({e})")
                } else {
                    format!("the file is truncated or damaged after record {n} ({e})")
                },
            }),
            (None, None) if n == 0 => Err(Break {
                record: 1,
                what: "the log holds no record".into(),
            }),
            (None, None) => Err(Break {
                record: n,
                what: format!(
                    "the log ends after record {n} without a seal (it was truncated, or records were removed from its end)"
                ),
            }),
            (None, Some(s)) => check_seal(&chain, &lines, s, root),
        },
    };
    Examined {
        path: file.to_path_buf(),
        lines,
        seal,
        outcome,
        chain_only: false,
    }
}

fn short(h: &str) -> String {
    h.get(..16).map_or(h.to_string(), |s| format!("{s}…"))
}

/// The seal covers the last record, which is an `end`; its signature checks
/// with the root certificate, which is the one the log itself records.
fn check_seal(
    chain: &Chain,
    lines: &[String],
    seal: &Seal,
    root: Option<&Path>,
) -> Result<Verdict, Break> {
    let Some(last) = chain.records.last() else {
        return Err(Break {
            record: 1,
            what: "a seal with no record before it".into(),
        });
    };
    let n = last.seq;
    let brk = |what: String| Break { record: n, what };
    if last.kind != "end" {
        return Err(brk(format!(
            "the last record is a `{}` record, not `end` (records after the end were removed, or added)",
            last.kind
        )));
    }
    if seal.hash != hex::encode(last.hash) {
        return Err(brk(format!(
            "record {n} was altered, or the seal replaced: the record hashes to {}, the seal covers {}",
            hex::encode(last.hash),
            seal.hash
        )));
    }
    // The root certificate the log itself records (found, issued, carried
    // from the previous output or reissued: the last one).
    let recorded = lines.iter().rev().find_map(|l| {
        let r: Record = serde_json::from_str(l).ok()?;
        match r.event {
            super::Event::CertificateIssued(c)
            | super::Event::CertificateFound(c)
            | super::Event::CaCertificateReissued { certificate: c, .. }
            | super::Event::CaCertificateCarried { certificate: c, .. }
                if c.role == "root" && c.node.is_none() =>
            {
                Some((r.seq, c.sha256))
            }
            _ => None,
        }
    });
    match &recorded {
        Some((seq, sha)) if *sha != seal.root_certificate_sha256 => {
            return Err(brk(format!(
                "the seal names root certificate {}, but record {seq} records the root certificate as {sha}",
                seal.root_certificate_sha256
            )));
        }
        None => {
            return Err(brk(
                "no record names the root certificate the seal claims".into()
            ));
        }
        _ => {}
    }
    let check = match root.map(Path::to_path_buf) {
        None => RootCheck::NotChecked,
        Some(p) => {
            let der = read_certificate(&p).map_err(brk)?;
            let sha = hex::encode(crate::x509::sha256(&der));
            if sha != seal.root_certificate_sha256 {
                return Err(brk(format!(
                    "the seal was made by root certificate {}, but {} has SHA-256 {sha}",
                    seal.root_certificate_sha256,
                    p.display()
                )));
            }
            let cert = Certificate::from_der(&der)
                .map_err(|e| brk(format!("{}: not a certificate ({e})", p.display())))?;
            seal.verify(cert.tbs_certificate().subject_public_key_info())
                .map_err(|e| {
                    brk(format!(
                        "the seal over record {n} does not verify with {} ({e}): the seal or the records were replaced",
                        p.display()
                    ))
                })?;
            RootCheck::Checked(p)
        }
    };
    Ok(Verdict {
        records: n,
        final_hash: last.hash,
        seal: Some((seal.clone(), check)),
        torn: 0,
    })
}

/// The DER of the first certificate in a PEM (or DER) file.
fn read_certificate(p: &Path) -> Result<Vec<u8>, String> {
    let bytes = fsread::read_regular(p, fsread::cap::CERTIFICATE, fsread::Links::Follow)
        .map_err(|e| format!("cannot read {}: {}", p.display(), e.why()))?;
    if bytes.starts_with(b"-----BEGIN") {
        let cert = Certificate::from_pem(crate::pem::first_certificate(&bytes))
            .map_err(|e| format!("{}: not a PEM certificate ({e})", p.display()))?;
        der::Encode::to_der(&cert).map_err(|e| e.to_string())
    } else {
        Ok(bytes.to_vec())
    }
}

/// The report `audit verify` prints for an intact log. `transcript`: the
/// transcript beside the log, when there is one (only then is it named).
pub fn render_verdict(path: &Path, v: &Verdict, transcript: Option<&Path>) -> String {
    let mut s = String::new();
    match &v.seal {
        Some((seal, check)) => {
            match check {
                RootCheck::Checked(_) => {
                    s.push_str(&format!("{}: sealed and intact\n", path.display()))
                }
                RootCheck::NotChecked => s.push_str(&format!(
                    "{}: chain intact and sealed, but the seal's signature was NOT checked (--chain-only): \
                     a forger who recomputes the chain passes this; give --root to check the seal\n",
                    path.display()
                )),
            }
            s.push_str(&format!(
                "  records:    {} (1 to {})\n",
                v.records, v.records
            ));
            s.push_str(&format!("  final hash: {}\n", hex::encode(v.final_hash)));
            match transcript {
                Some(t) => s.push_str(&format!(
                    "              {} (as in {})\n",
                    crate::fmt::fingerprint(&v.final_hash),
                    t.display()
                )),
                None => s.push_str(&format!(
                    "              {} (as the witnesses' transcript states it)\n",
                    crate::fmt::fingerprint(&v.final_hash)
                )),
            }
            s.push_str(&format!(
                "  seal:       {} by the root CA certificate with SHA-256 {}\n",
                seal.algorithm, seal.root_certificate_sha256
            ));
            if let RootCheck::Checked(p) = check {
                s.push_str(&format!("              checked against {}\n", p.display()));
            }
        }
        None => {
            s.push_str(&format!(
                "{}: unsealed, {} records intact\n",
                path.display(),
                v.records
            ));
            s.push_str(&format!("  last hash:  {}\n", hex::encode(v.final_hash)));
            if v.torn > 0 {
                s.push_str(&format!(
                    "  a torn last frame of {} bytes follows: the process died while writing it (a resumed run cuts it off and records that)\n",
                    v.torn
                ));
            }
            s.push_str(
                "  this is a journal of an unfinished ceremony: run the same `ceremony run` again to resume and seal it\n",
            );
        }
    }
    s
}

/// One log's verdict for `audit verify --json` (schema in docs/json.md).
pub fn verdict_json(path: &Path, v: &Verdict) -> serde_json::Value {
    let seal = v.seal.as_ref().map(|(seal, check)| {
        serde_json::json!({
            "algorithm": seal.algorithm,
            "root_certificate_sha256": seal.root_certificate_sha256,
            "signature_checked": matches!(check, RootCheck::Checked(_)),
            "checked_against": match check {
                RootCheck::Checked(p) => Some(p.display().to_string()),
                RootCheck::NotChecked => None,
            },
        })
    });
    serde_json::json!({
        "file": path.display().to_string(),
        "sealed": v.seal.is_some(),
        "records": v.records,
        "final_hash": hex::encode(v.final_hash),
        "seal": seal,
        "torn_bytes": v.torn,
    })
}

/// The transcript beside a log, if there is one.
pub fn transcript_beside(file: &Path) -> Option<PathBuf> {
    file.parent()
        .map(|d| d.join(crate::bundle::layout::TRANSCRIPT))
        .filter(|p| p.is_file())
}

/// `audit verify`: the report and its JSON form, or the error naming the
/// first broken record.
pub fn verify(
    file: &Path,
    identity: Option<&Path>,
    root: SealRoot<'_>,
) -> Result<(String, serde_json::Value), AuditError> {
    let e = examine(file, identity, root)?;
    let v = e.result()?;
    Ok((
        render_verdict(file, v, transcript_beside(file).as_deref()),
        serde_json::json!({ "logs": [verdict_json(file, v)], "chain": null }),
    ))
}

/// `audit show`: a readable timeline (then the verdict). The timeline is
/// returned even for a broken log, so the caller can print it before the error.
pub fn show(
    file: &Path,
    identity: Option<&Path>,
    root: SealRoot<'_>,
) -> Result<(String, Result<(), AuditError>), AuditError> {
    let e = examine(file, identity, root)?;
    let mut s = String::new();
    for line in &e.lines {
        match serde_json::from_str::<Record>(line) {
            Ok(r) => s.push_str(&format!(
                "#{:<4} {}  {:<19} {}\n",
                r.seq,
                r.time,
                r.event.kind(),
                r.event.summary()
            )),
            // A record of a kind this version does not know: shown as it is.
            Err(_) => s.push_str(&format!("      {line}\n")),
        }
    }
    if let Some(seal) = &e.seal {
        s.push_str(&format!(
            "seal  over {} by the root CA certificate {} ({})\n",
            short(&seal.hash),
            short(&seal.root_certificate_sha256),
            seal.algorithm
        ));
    }
    let verdict = match e.result() {
        Ok(v) => {
            s.push('\n');
            s.push_str(&render_verdict(file, v, transcript_beside(file).as_deref()));
            Ok(())
        }
        Err(err) => Err(err),
    };
    Ok((s, verdict))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fsread::fifo_in as fifo;

    /// `audit verify` on a FIFO, a device or a huge file: refused at once,
    /// and a `--root` the same.
    #[test]
    fn logs_and_roots_are_bounded_regular_files() {
        let d = tempfile::tempdir().unwrap();
        let f = fifo(d.path());
        let said = |p: &Path| match verify(p, None, SealRoot::Required(None)) {
            Err(e) => e.to_string(),
            Ok(_) => "read".into(),
        };
        assert_eq!(
            said(&f),
            format!("{}: cannot read it (not a regular file)", f.display())
        );
        assert_eq!(
            said(Path::new("/dev/zero")),
            "/dev/zero: cannot read it (not a regular file)"
        );
        assert_eq!(
            read_certificate(&f).unwrap_err(),
            format!("cannot read {}: not a regular file", f.display())
        );
    }
    use crate::audit::Event;
    use crate::audit::event::CertInfo;
    use crate::audit::record::{GENESIS, next_record};

    fn cert(role: &str, sha: &str) -> Event {
        Event::CertificateIssued(CertInfo {
            role: role.into(),
            node: None,
            file: None,
            signed_by: "root".into(),
            subject: "CN=x".into(),
            issuer: "CN=x".into(),
            serial: "01".into(),
            not_before: "t".into(),
            not_after: "t".into(),
            sha256: sha.into(),
            spki_sha256: "00".into(),
        })
    }

    /// A log of `events` and its seal (with a fake signature).
    fn log(events: Vec<Event>) -> (Vec<String>, Seal) {
        let mut lines = Vec::new();
        let mut prev = GENESIS;
        for (i, e) in events.into_iter().enumerate() {
            let (l, h) = next_record(i as u64, &prev, "t".into(), e).unwrap();
            lines.push(l);
            prev = h;
        }
        let seal = Seal {
            hash: hex::encode(prev),
            algorithm: "ecdsa-with-SHA256".into(),
            signature: "AAAA".into(),
            root_certificate_sha256: "aa".into(),
        };
        (lines, seal)
    }

    fn events() -> Vec<Event> {
        vec![
            Event::LoggedIn {
                source: "test".into(),
            },
            cert("root", "aa"),
            Event::End {
                outputs: 1,
                sha256sums_sha256: "bb".into(),
            },
        ]
    }

    fn text(lines: &[String], seal: &Seal) -> Vec<u8> {
        crate::audit::seal::plaintext(lines, seal).unwrap()
    }

    #[test]
    fn an_intact_log_without_a_root_passes_only_when_chain_only() {
        let (lines, seal) = log(events());
        let e = check_sealed(
            Path::new("/nonexistent/x"),
            &text(&lines, &seal),
            None,
            None,
        );
        assert!(
            matches!(e.result(), Err(AuditError::NoRoot { .. })),
            "an unchecked seal does not pass"
        );
        let chain_only = Examined {
            chain_only: true,
            ..e.clone()
        };
        let v = chain_only.result().unwrap();
        assert_eq!(v.records, 3);
        assert_eq!(v.seal.as_ref().unwrap().1, RootCheck::NotChecked);
        let text = render_verdict(Path::new("x"), v, None);
        assert!(text.contains("NOT checked (--chain-only)"), "{text}");
        assert!(!text.contains("transcript.md"), "{text}");
        let with = render_verdict(Path::new("x"), v, Some(Path::new("out/transcript.md")));
        assert!(with.contains("(as in out/transcript.md)"), "{with}");
    }

    #[test]
    fn a_missing_seal_is_a_truncation() {
        let (lines, seal) = log(events());
        let mut t = text(&lines, &seal);
        let cut = t.len() - seal.line().unwrap().len() - 1;
        t.truncate(cut);
        let b = check_sealed(Path::new("x"), &t, None, None)
            .outcome
            .unwrap_err();
        assert_eq!(b.record, 3);
        assert!(b.what.contains("without a seal"), "{b:?}");
        // Cut in the middle of a line.
        t.truncate(t.len() - 5);
        let b = check_sealed(Path::new("x"), &t, None, None)
            .outcome
            .unwrap_err();
        assert_eq!(b.record, 3);
        assert!(b.what.contains("not a valid record"), "{b:?}");
    }

    #[test]
    fn the_seal_must_cover_the_last_record_which_ends_the_log() {
        let (lines, mut seal) = log(events());
        seal.hash = hex::encode([1u8; 32]);
        let b = check_sealed(Path::new("x"), &text(&lines, &seal), None, None)
            .outcome
            .unwrap_err();
        assert_eq!(b.record, 3);
        assert!(
            b.what
                .contains("record 3 was altered, or the seal replaced"),
            "{b:?}"
        );
        let mut ev = events();
        ev.pop();
        let (lines, seal) = log(ev);
        let b = check_sealed(Path::new("x"), &text(&lines, &seal), None, None)
            .outcome
            .unwrap_err();
        assert!(b.what.contains("not `end`"), "{b:?}");
    }

    #[test]
    fn the_seal_must_name_the_recorded_root() {
        let (lines, mut seal) = log(events());
        seal.root_certificate_sha256 = "cc".into();
        let b = check_sealed(Path::new("x"), &text(&lines, &seal), None, None)
            .outcome
            .unwrap_err();
        assert!(
            b.what
                .contains("record 2 records the root certificate as aa"),
            "{b:?}"
        );
    }

    #[test]
    fn records_after_the_seal_are_refused() {
        let (lines, seal) = log(events());
        let mut t = text(&lines, &seal);
        t.extend_from_slice(lines[0].as_bytes());
        t.push(b'\n');
        let b = check_sealed(Path::new("x"), &t, None, None)
            .outcome
            .unwrap_err();
        assert_eq!(b.record, 4);
        assert!(b.what.contains("follows the seal"), "{b:?}");
    }

    #[test]
    fn a_decryption_stop_is_named() {
        let (lines, seal) = log(events());
        let t = text(&lines[..2], &seal);
        let cut = lines[0].len() + lines[1].len() + 2;
        let b = check_sealed(Path::new("x"), &t[..cut], Some("bad tag".into()), None)
            .outcome
            .unwrap_err();
        assert_eq!(b.record, 3);
        assert!(
            b.what.contains("truncated or damaged after record 2"),
            "{b:?}"
        );
    }
}
