//! A chain of ceremonies on one token: each continuing ceremony's first
//! record names the one before it (its final hash and seal), and `ceremony
//! audit verify LOG1 LOG2 …` checks the whole sequence, oldest first.
//!
//! What a ceremony can check of the one before it is public: the sealed log
//! is encrypted to the auditors, so every output also holds the seal in
//! clear, `audit.seal.json`: the `end` record's line (sequence, time, the
//! hash before it, the output count and SHA256SUMS's hash: no secret) and
//! the root's signature over its hash. With `root-ca.crt` and `SHA256SUMS`
//! of the same output, anyone checks that the outputs are the ones the root
//! sealed, without the log.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use x509_cert::certificate::Certificate;

use super::AuditError;
use super::event::Event;
use super::inspect;
use super::record::Record;
use super::seal::Seal;

/// `audit.seal.json`: the `end` record's line and the seal over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealRecord {
    /// The `end` record's canonical line, exactly as in the sealed log.
    pub end: String,
    pub seal: Seal,
}

/// What a checked seal record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Hash of the `end` record: the log's final hash.
    pub final_hash: [u8; 32],
    /// SHA-256 of SHA256SUMS as the `end` record holds it (hex).
    pub sha256sums_sha256: String,
    /// Records in the log (the `end` record's number).
    pub records: u64,
}

impl SealRecord {
    pub fn new(end_line: &str, seal: &Seal) -> SealRecord {
        SealRecord {
            end: end_line.to_string(),
            seal: seal.clone(),
        }
    }

    /// The file's text (one JSON object and a newline).
    pub fn text(&self) -> Result<String, AuditError> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    /// Checks the record against the root certificate (DER): the `end`
    /// line hashes to what the seal covers, the seal names this root and
    /// its signature checks with the root's key. Err says what differs.
    pub fn check(&self, root_der: &[u8]) -> Result<Sealed, String> {
        use der::Decode;
        let hash = crate::x509::sha256(self.end.as_bytes());
        if hex::encode(hash) != self.seal.hash {
            return Err(format!(
                "its end record hashes to {}, but the seal covers {}",
                hex::encode(hash),
                self.seal.hash
            ));
        }
        let root_sha = hex::encode(crate::x509::sha256(root_der));
        if root_sha != self.seal.root_certificate_sha256 {
            return Err(format!(
                "the seal was made by root certificate {}, not by this root ({root_sha})",
                self.seal.root_certificate_sha256
            ));
        }
        let cert = Certificate::from_der(root_der)
            .map_err(|e| format!("the root certificate does not parse ({e})"))?;
        self.seal
            .verify(cert.tbs_certificate().subject_public_key_info())
            .map_err(|e| format!("the seal does not verify with the root's key ({e})"))?;
        let record: Record = serde_json::from_str(&self.end)
            .map_err(|e| format!("its end record is not a record ({e})"))?;
        match record.event {
            Event::End {
                sha256sums_sha256, ..
            } => Ok(Sealed {
                final_hash: hash,
                sha256sums_sha256,
                records: record.seq,
            }),
            other => Err(format!(
                "the sealed record is a `{}` record, not `end`",
                other.kind()
            )),
        }
    }
}

/// The ceremony a continuing one continues, as its first record states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousCeremony {
    /// Its output directory, as the plan names it.
    pub output: String,
    /// Its ceremony name.
    pub ceremony: String,
    /// The hash of its `end` record (its final hash).
    pub final_hash: String,
    /// The root's seal signature over it (base64), as in its `audit.seal.json`.
    pub seal: String,
    /// SHA-256 of its SHA256SUMS.
    pub sha256sums_sha256: String,
    /// SHA-256 of the root certificate that sealed it.
    pub root_certificate_sha256: String,
    /// The plan said `fork = true`: this ceremony continues it although it
    /// was not the latest ceremony of the token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fork: bool,
}

/// `continuation.json`: which ceremony an output continues and what it did
/// with each node. Written before SHA256SUMS and listed in it, so the seal
/// covers it: the next ceremony trusts its `untouched` (nodes the chain
/// issued whose bundles are in earlier outputs) as it trusts the bundles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContinuationRecord {
    pub previous: PreviousCeremony,
    pub renewed: Vec<String>,
    pub added: Vec<String>,
    pub untouched: Vec<String>,
    /// "carried", "rotated" or "new".
    pub service_account_key: String,
    /// Each CA rotated to a new key, at the stage this output left it (a
    /// finished rotation stays listed: its key is under `new_label`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rotations: Vec<RotationRecord>,
}

/// One CA's rotation to a new token key, as an output leaves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationRecord {
    /// kubernetes, etcd, front-proxy.
    pub ca: String,
    pub stage: crate::plan::RotateStage,
    pub old_label: String,
    pub new_label: String,
}

/// One log of a chain, checked on its own.
#[derive(Clone)]
struct Link {
    path: PathBuf,
    final_hash: String,
    root: String,
    /// The root certificate this ceremony reissued for the same key (its
    /// `ca_certificate_reissued` record's predecessor), if it did.
    root_reissued_from: Option<String>,
    previous: Option<PreviousCeremony>,
}

/// The root certificate a log's root reissue follows (None: no reissue).
fn root_reissued_from(lines: &[String]) -> Option<String> {
    lines.iter().find_map(|l| {
        let r: Record = serde_json::from_str(l).ok()?;
        match r.event {
            Event::CaCertificateReissued {
                previous_sha256,
                certificate,
            } if certificate.role == "root" => Some(previous_sha256),
            _ => None,
        }
    })
}

fn chain_error(what: String) -> AuditError {
    AuditError::Chain { what }
}

/// The `previous` of a log's first record (None: a founding ceremony).
fn previous_of(lines: &[String]) -> Option<PreviousCeremony> {
    let first: Record = serde_json::from_str(lines.first()?).ok()?;
    match first.event {
        Event::CeremonyStarted { previous, .. } => previous,
        _ => None,
    }
}

/// The links of a chain, pure: each sealed by the root certificate of the
/// one before it (or by the one it reissued from it, for the same key),
/// each pointing at the one before it. Err names the first log out of place.
fn check_links(links: &[Link]) -> Result<(), AuditError> {
    for (i, l) in links.iter().enumerate().skip(1) {
        let before = &links[i - 1];
        if l.root != before.root && l.root_reissued_from.as_ref() != Some(&before.root) {
            return Err(chain_error(format!(
                "{} was sealed by root certificate {}, but {} by {}: not one chain",
                l.path.display(),
                l.root,
                before.path.display(),
                before.root
            )));
        }
        if let Some(same) = links[..i].iter().find(|o| o.final_hash == l.final_hash) {
            return Err(chain_error(format!(
                "{} is the same ceremony as {}: a log appears twice in the chain",
                l.path.display(),
                same.path.display()
            )));
        }
        let Some(p) = &l.previous else {
            return Err(chain_error(format!(
                "{} is a founding ceremony (it continues none), but it follows {} in the chain: give the logs oldest first",
                l.path.display(),
                before.path.display()
            )));
        };
        if p.final_hash == before.final_hash {
            continue;
        }
        // Two logs continuing the same ceremony: a fork.
        if let Some(twin) = links[..i]
            .iter()
            .find(|o| o.previous.as_ref().map(|q| &q.final_hash) == Some(&p.final_hash))
        {
            return Err(chain_error(format!(
                "{} and {} both continue the ceremony with final hash {}: the chain forks",
                twin.path.display(),
                l.path.display(),
                p.final_hash
            )));
        }
        let what = if links.iter().any(|o| o.final_hash == p.final_hash) {
            "the logs are out of order: give them oldest first"
        } else {
            "a ceremony is missing between them, or another was put in its place"
        };
        return Err(chain_error(format!(
            "{} continues the ceremony \"{}\" with final hash {} ({}), not {} (final hash {}): {what}",
            l.path.display(),
            p.ceremony,
            p.final_hash,
            p.output,
            before.path.display(),
            before.final_hash
        )));
    }
    Ok(())
}

/// `ceremony audit verify LOG1 LOG2 …`: each log intact and sealed (the
/// seal checked with `root-ca.crt` beside it, or `root`), then the chain.
pub fn verify(
    files: &[PathBuf],
    identity: Option<&Path>,
    root: Option<&Path>,
) -> Result<(String, serde_json::Value), AuditError> {
    let mut links = Vec::new();
    let mut report = String::new();
    let mut logs = Vec::new();
    for f in files {
        let e = inspect::examine(f, identity, inspect::SealRoot::Required(root))?;
        let v = e.result()?;
        let Some((seal, check)) = &v.seal else {
            return Err(chain_error(format!(
                "{} is an unsealed journal: a chain holds sealed logs only",
                f.display()
            )));
        };
        if *check == inspect::RootCheck::NotChecked {
            return Err(chain_error(format!(
                "{}: no root certificate beside it to check its seal with: give --root root-ca.crt",
                f.display()
            )));
        }
        report.push_str(&inspect::render_verdict(
            f,
            v,
            inspect::transcript_beside(f).as_deref(),
        ));
        logs.push(inspect::verdict_json(f, v));
        links.push(Link {
            path: f.clone(),
            final_hash: hex::encode(v.final_hash),
            root: seal.root_certificate_sha256.clone(),
            root_reissued_from: root_reissued_from(&e.lines),
            previous: previous_of(&e.lines),
        });
    }
    check_links(&links)?;
    let mut chain = serde_json::Value::Null;
    if let Some(first) = links.first() {
        chain = serde_json::json!({
            "ceremonies": links.len(),
            "root_certificate_sha256": first.root,
            "starts_at_founding": first.previous.is_none(),
            "continues": first.previous.as_ref().map(|p| serde_json::json!({
                "ceremony": p.ceremony,
                "final_hash": p.final_hash,
            })),
        });
        let start = match &first.previous {
            None => "the founding ceremony".to_string(),
            Some(p) => format!(
                "a ceremony that continues \"{}\" (final hash {}, not given)",
                p.ceremony, p.final_hash
            ),
        };
        // A reissued root: the chain's certificates of the same root key, in order.
        let mut roots: Vec<&str> = Vec::new();
        for l in &links {
            if roots.last() != Some(&l.root.as_str()) {
                roots.push(&l.root);
            }
        }
        let sealed = match roots.as_slice() {
            [one] => format!("each sealed by root certificate {one}"),
            more => format!(
                "sealed by root certificates {} (each reissued from the one before, for the same key)",
                more.join(", then ")
            ),
        };
        report.push_str(&format!(
            "chain: {} ceremonies, {sealed} and continuing the one before; it starts at {start}\n",
            links.len(),
        ));
    }
    Ok((report, serde_json::json!({ "logs": logs, "chain": chain })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, hash: &str, previous: Option<&str>) -> Link {
        Link {
            path: PathBuf::from(name),
            final_hash: hash.into(),
            root: "r".into(),
            root_reissued_from: None,
            previous: previous.map(|p| PreviousCeremony {
                output: format!("out-{p}"),
                ceremony: "demo".into(),
                final_hash: p.into(),
                seal: "s".into(),
                sha256sums_sha256: "x".into(),
                root_certificate_sha256: "r".into(),
                fork: false,
            }),
        }
    }

    fn err(links: &[Link]) -> String {
        check_links(links).unwrap_err().to_string()
    }

    #[test]
    fn a_chain_links_each_ceremony_to_the_one_before() {
        let c1 = || link("c1", "h1", None);
        let c2 = || link("c2", "h2", Some("h1"));
        let c3 = || link("c3", "h3", Some("h2"));
        assert!(check_links(&[c1(), c2(), c3()]).is_ok());
        assert!(
            check_links(&[c2(), c3()]).is_ok(),
            "a chain may start later"
        );
        assert_eq!(
            err(&[c1(), c3()]),
            "the chain of ceremonies is broken: c3 continues the ceremony \"demo\" with final hash h2 (out-h2), not c1 (final hash h1): a ceremony is missing between them, or another was put in its place"
        );
        assert_eq!(
            err(&[c1(), c2(), c2()]),
            "the chain of ceremonies is broken: c2 is the same ceremony as c2: a log appears twice in the chain"
        );
        assert_eq!(
            err(&[c2(), c1()]),
            "the chain of ceremonies is broken: c1 is a founding ceremony (it continues none), but it follows c2 in the chain: give the logs oldest first"
        );
        assert_eq!(
            err(&[c1(), c3(), c2()]),
            "the chain of ceremonies is broken: c3 continues the ceremony \"demo\" with final hash h2 (out-h2), not c1 (final hash h1): the logs are out of order: give them oldest first"
        );
        let fork = link("c2b", "h2b", Some("h1"));
        assert_eq!(
            err(&[c1(), c2(), fork]),
            "the chain of ceremonies is broken: c2 and c2b both continue the ceremony with final hash h1: the chain forks"
        );
        let mut other = c2();
        other.root = "r2".into();
        assert_eq!(
            err(&[c1(), other]),
            "the chain of ceremonies is broken: c2 was sealed by root certificate r2, but c1 by r: not one chain"
        );
        // A ceremony that reissued the root (same key) from the one before:
        // one chain, and the next follows the new certificate.
        let mut reissued = c2();
        reissued.root = "r2".into();
        reissued.root_reissued_from = Some("r".into());
        let mut after = c3();
        after.root = "r2".into();
        assert!(check_links(&[c1(), reissued.clone(), after]).is_ok());
        // ... but not from another root's certificate.
        reissued.root_reissued_from = Some("r9".into());
        assert_eq!(
            err(&[c1(), reissued]),
            "the chain of ceremonies is broken: c2 was sealed by root certificate r2, but c1 by r: not one chain"
        );
    }
}
