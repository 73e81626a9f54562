//! A continuing ceremony's previous output: read and checked before the
//! token is opened (its SHA256SUMS against its files, its clear seal
//! against its root certificate), then its root against the root key on
//! this token once logged in, before anything is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use der::{Decode, DecodePem, Encode};
use x509_cert::certificate::Certificate;
use zeroize::Zeroizing;

use crate::audit::chain::{ContinuationRecord, PreviousCeremony, SealRecord};
use crate::bundle::layout;
use crate::error::CeremonyError;
use crate::fsread::{self, Links};
use crate::plan::continuing::{self, Selection};
use crate::plan::{CaRole, LoadedPlan};
use crate::token::Token;

/// The largest file of a previous output read back (a kubeconfig, a
/// certificate, SHA256SUMS of a large cluster).
const MAX_FILE: u64 = 64 << 20;

/// The service-account pair as the previous output holds it, byte for byte.
pub struct SaPair {
    pub key: Zeroizing<Vec<u8>>,
    pub public: Vec<u8>,
    /// Where it was taken from (relative to the previous output).
    pub from: String,
}

/// The previous output, checked.
pub struct Continuation {
    /// Its directory, as resolved from the plan's.
    pub dir: PathBuf,
    /// What the first record states of it.
    pub previous: PreviousCeremony,
    /// The root certificate that sealed it (DER).
    pub root_der: Vec<u8>,
    pub selection: Selection,
    /// The previous pair: carried into every control-plane bundle written,
    /// or in a rotation its public key written beside the new pair (None:
    /// the previous output had no control plane).
    pub sa: Option<SaPair>,
    /// No pair in the previous output, but the chain made one (in an
    /// earlier output): it stays there, as this run writes no control plane.
    pub sa_in_earlier_output: bool,
    pub rotate_sa_key: bool,
    /// Every file its SHA256SUMS lists, with its SHA-256 (hex), each checked.
    pub listed: BTreeMap<String, String>,
    /// Its CA certificates (DER), by role: the chain's current ones (during
    /// a rotation, the one that signed its leaves).
    pub cas: BTreeMap<CaRole, Vec<u8>>,
    /// The CA rotations this ceremony runs or carries (continuation.json).
    pub rotations: Vec<super::rotate::Rotation>,
}

fn bad(message: String, hint: &str) -> CeremonyError {
    CeremonyError::Usage {
        message,
        hint: hint.into(),
    }
}

const HINT: &str = "ceremony.previous must name the intact output of the last ceremony made on this token, as it was written; nothing was touched";

pub(super) fn read(dir: &Path, rel: &str) -> Result<Zeroizing<Vec<u8>>, CeremonyError> {
    fsread::read_regular(&dir.join(rel), MAX_FILE, Links::Refuse)
        .map_err(|e| bad(format!("ceremony.previous: {e}"), HINT))
}

/// The DER of the one certificate in a PEM file.
fn certificate(dir: &Path, rel: &str) -> Result<Vec<u8>, CeremonyError> {
    let pem = read(dir, rel)?;
    // A trust file during a rotation holds two certificates: the first signs.
    let first = crate::pem::first_certificate(&pem);
    let cert = Certificate::from_pem(first).map_err(|e| {
        bad(
            format!("{}: not a PEM certificate ({e})", dir.join(rel).display()),
            HINT,
        )
    })?;
    cert.to_der()
        .map_err(|e| CeremonyError::Internal(format!("re-encoding a certificate: {e}")))
}

/// `SHA256SUMS` lines: (hex hash, path).
fn sums(text: &str) -> Option<Vec<(&str, &str)>> {
    text.lines()
        .map(|l| {
            let (h, p) = l.split_once("  ")?;
            (h.len() == 64 && !p.is_empty() && !p.contains("..")).then_some((h, p))
        })
        .collect()
}

/// Reads and checks the previous output a continuing plan names, and what
/// this ceremony issues of it. None for a founding ceremony.
pub fn read_previous(loaded: &LoadedPlan) -> Result<Option<Continuation>, CeremonyError> {
    let Some(c) = &loaded.plan.continuing else {
        return Ok(None);
    };
    let plan_dir = loaded.path.parent().unwrap_or(Path::new("."));
    let dir = plan_dir.join(&c.previous);
    if !dir.is_dir() {
        return Err(bad(
            format!(
                "ceremony.previous: {} is not a directory (the output of the ceremony this one continues)",
                dir.display()
            ),
            HINT,
        ));
    }
    let root_der = certificate(&dir, layout::ROOT_CA)?;
    let seal_path = dir.join(layout::SEAL);
    let seal_text = read(&dir, layout::SEAL)?;
    let record: SealRecord = serde_json::from_slice(&seal_text).map_err(|e| {
        bad(
            format!("{}: not a seal record ({e})", seal_path.display()),
            HINT,
        )
    })?;
    let sealed = record.check(&root_der).map_err(|what| {
        bad(
            format!(
                "{}: not sealed by the root in {}: {what}",
                seal_path.display(),
                dir.join(layout::ROOT_CA).display()
            ),
            HINT,
        )
    })?;
    let sums_path = dir.join(layout::SHA256SUMS);
    let sums_bytes = read(&dir, layout::SHA256SUMS)?;
    let sums_sha = hex::encode(crate::x509::sha256(&sums_bytes));
    if sums_sha != sealed.sha256sums_sha256 {
        return Err(bad(
            format!(
                "{}: its SHA-256 is {sums_sha}, but the sealed log records {}: the file was changed after the ceremony",
                sums_path.display(),
                sealed.sha256sums_sha256
            ),
            HINT,
        ));
    }
    let text = std::str::from_utf8(&sums_bytes)
        .ok()
        .and_then(sums)
        .ok_or_else(|| {
            bad(
                format!("{}: not a SHA256SUMS file", sums_path.display()),
                HINT,
            )
        })?;
    // Every listed file is what the seal covers.
    let mut hashes = BTreeMap::new();
    let mut nodes = BTreeSet::new();
    let mut sealed_nodes = BTreeSet::new();
    let mut continuation = None;
    let mut rotated = Vec::new();
    for (want, rel) in &text {
        let bytes = read(&dir, rel)?;
        let got = hex::encode(crate::x509::sha256(&bytes));
        if got != *want {
            return Err(bad(
                format!(
                    "{}: its SHA-256 is {got}, but SHA256SUMS lists {want}: the file was changed after the ceremony",
                    dir.join(rel).display()
                ),
                HINT,
            ));
        }
        if let Some(n) = layout::node_of(rel).or_else(|| layout::sealed_node_of(rel)) {
            nodes.insert(n.to_string());
        }
        if let Some(n) = layout::sealed_node_of(rel) {
            sealed_nodes.insert(n.to_string());
        }
        if *rel == layout::CONTINUATION {
            continuation = Some(bytes);
        }
        hashes.insert(rel.to_string(), want.to_string());
    }
    // The nodes it left untouched were issued earlier in the chain, each
    // output checked against its seal by the ceremony after it: the chain's
    // nodes are the bundles here and the untouched it lists.
    let cont_path = dir.join(layout::CONTINUATION);
    match continuation {
        Some(bytes) => {
            let record: ContinuationRecord = serde_json::from_slice(&bytes).map_err(|e| {
                bad(
                    format!("{}: not a continuation record ({e})", cont_path.display()),
                    HINT,
                )
            })?;
            nodes.extend(record.untouched);
            rotated = record.rotations;
        }
        None if std::fs::symlink_metadata(&cont_path).is_ok() => {
            return Err(bad(
                format!(
                    "{}: not listed in {}: the seal does not cover it",
                    cont_path.display(),
                    sums_path.display()
                ),
                HINT,
            ));
        }
        None => {}
    }
    let selection = continuing::select(c, loaded.plan.cluster.as_ref(), &nodes).map_err(|m| {
        bad(
            m,
            "renew only nodes the chain issued: a bundle of the previous output (nodes/<name>) or a node its continuation.json lists as untouched; nothing was touched",
        )
    })?;
    // Carried, or (a rotation) its public key shipped beside the new pair.
    let sa = sa_pair(&dir, &hashes)?;
    let control_plane: Vec<&str> = loaded
        .plan
        .cluster
        .iter()
        .flat_map(|cl| cl.control_plane.iter().map(|n| n.name.as_str()))
        .collect();
    // The pair inside an encrypted node's archive is not read: this
    // computer holds no node's identity, and should not.
    let sealed_cp: Vec<&str> = control_plane
        .iter()
        .copied()
        .filter(|n| sealed_nodes.contains(*n))
        .collect();
    if sa.is_none() && !sealed_cp.is_empty() {
        sa_at_hand(false, &nodes, &selection, &control_plane).map_err(|_| {
            bad(
                format!(
                    "{}: its control-plane nodes were delivered encrypted ({}), so the service-account pair (pki/sa.key, pki/sa.pub) this ceremony must carry is inside their archives, which it does not open",
                    dir.display(),
                    sealed_cp
                        .iter()
                        .map(|n| layout::sealed_node(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                SEALED_SA_HINT,
            )
        })?;
    }
    sa_at_hand(sa.is_some(), &nodes, &selection, &control_plane)
        .map_err(|m| bad(format!("{}: {m}", dir.display()), SA_HINT))?;
    let mut cas = BTreeMap::from([(CaRole::Root, root_der.clone())]);
    for role in CaRole::INTERMEDIATES {
        cas.insert(role, certificate(&dir, &layout::ca_file(role))?);
    }
    let label = |role: CaRole| {
        loaded
            .plan
            .cas
            .iter()
            .find(|s| s.role == role)
            .map(|s| s.label.clone())
            .unwrap_or_default()
    };
    let rotations = super::rotate::next(
        &rotated,
        loaded.plan.rotate.as_ref(),
        &super::rotate::Ctx {
            ceremony: &loaded.plan.name,
            previous: &c.previous.display().to_string(),
            label: &label,
        },
    )
    .map_err(|m| bad(m, ROTATE_HINT))?;
    let previous_name = crate::plan::parse(&String::from_utf8_lossy(&read(&dir, layout::PLAN)?))
        .map(|p| p.ceremony.name)
        .unwrap_or_else(|_| "(unknown)".into());
    Ok(Some(Continuation {
        previous: PreviousCeremony {
            output: c.previous.display().to_string(),
            ceremony: previous_name,
            final_hash: hex::encode(sealed.final_hash),
            seal: record.seal.signature.clone(),
            sha256sums_sha256: sums_sha,
            root_certificate_sha256: record.seal.root_certificate_sha256.clone(),
            fork: c.fork,
        },
        dir,
        root_der,
        selection,
        sa_in_earlier_output: sa.is_none() && !nodes.is_empty(),
        sa,
        rotate_sa_key: c.rotate_sa_key,
        cas,
        rotations,
        listed: hashes,
    }))
}

const ROTATE_HINT: &str = "a CA's rotation runs stage, promote, distrust, one continuing ceremony each, in that order (docs/runbook.md, rotating a CA to a new key); nothing was touched";

const SEALED_SA_HINT: &str = "deliver at least one control-plane node in clear (no cluster.node_recipients entry) so that the next ceremony can carry its pair; renewing only workers needs no pair; nothing was touched";

const SA_HINT: &str = "the pair is taken from the previous output only, so a ceremony that writes a control-plane node cannot follow one that wrote workers only (docs/plan.md); nothing was touched";

/// Whether the run has the service-account pair it needs, pure: a ceremony
/// that writes a control-plane node carries the cluster's pair, so when the
/// chain issued nodes (every cluster has a control plane, so it made a
/// pair) the previous output must hold it. Err says what is missing.
fn sa_at_hand(
    found: bool,
    issued_before: &BTreeSet<String>,
    selection: &Selection,
    control_plane: &[&str],
) -> Result<(), String> {
    let written: Vec<&str> = control_plane
        .iter()
        .copied()
        .filter(|n| selection.issued().contains(*n))
        .collect();
    if found || issued_before.is_empty() || written.is_empty() {
        return Ok(());
    }
    Err(format!(
        "holds no control-plane bundle, so not the cluster's service-account pair (pki/sa.key, pki/sa.pub) that {} must carry: it is in an earlier output of the chain, and a new pair would silently invalidate every service-account token",
        written.join(", ")
    ))
}

/// The service-account pair of the previous output: every control-plane
/// node's is the same (by SHA256SUMS), read from the first.
fn sa_pair(dir: &Path, hashes: &BTreeMap<String, String>) -> Result<Option<SaPair>, CeremonyError> {
    let pairs: Vec<(&str, &String, Option<&String>)> = hashes
        .iter()
        .filter_map(|(p, h)| {
            let base = p.strip_suffix("/pki/sa.key")?;
            Some((base, h, hashes.get(&format!("{base}/pki/sa.pub"))))
        })
        .collect();
    let Some((base, key_sha, pub_sha)) = pairs.first() else {
        return Ok(None);
    };
    if let Some((other, ..)) = pairs.iter().find(|(_, k, p)| k != key_sha || p != pub_sha) {
        return Err(bad(
            format!(
                "{}: its service-account pair (pki/sa.key, pki/sa.pub) differs from {}'s: the previous output holds two",
                dir.join(other).display(),
                base
            ),
            HINT,
        ));
    }
    if pub_sha.is_none() {
        return Err(bad(
            format!(
                "{}: pki/sa.key without pki/sa.pub",
                dir.join(base).display()
            ),
            HINT,
        ));
    }
    let key = read(dir, &format!("{base}/pki/sa.key"))?;
    let public = read(dir, &format!("{base}/pki/sa.pub"))?.to_vec();
    // The bytes as read now, against the record checked above (a file
    // swapped between the two reads is refused).
    for (bytes, want, name) in [
        (&key[..], Some(*key_sha), "sa.key"),
        (&public[..], *pub_sha, "sa.pub"),
    ] {
        if Some(&hex::encode(crate::x509::sha256(bytes))) != want {
            return Err(bad(
                format!(
                    "{}/pki/{name}: changed while it was read",
                    dir.join(base).display()
                ),
                HINT,
            ));
        }
    }
    // The private key's public half is sa.pub's first key.
    let from_key = crate::keys::public::private_key_file(&key).map_err(|e| {
        bad(
            format!("{}/pki/sa.key: {e}", dir.join(base).display()),
            HINT,
        )
    })?;
    let from_pub = crate::keys::public::public_key_file(&public).map_err(|e| {
        bad(
            format!("{}/pki/sa.pub: {e}", dir.join(base).display()),
            HINT,
        )
    })?;
    if from_key.fingerprint() != from_pub.fingerprint() {
        return Err(bad(
            format!(
                "{}/pki/sa.pub: not the public key of sa.key",
                dir.join(base).display()
            ),
            HINT,
        ));
    }
    Ok(Some(SaPair {
        key,
        public,
        from: format!("{base}/pki"),
    }))
}

/// In CSR mode, a control-plane node that brings its own `pki/sa.pub`
/// brings the cluster's: the pair the previous output carries (a pair of
/// its own would silently invalidate every service-account token). Err
/// names the first node's file that differs.
pub fn check_brought_sa(
    loaded: &LoadedPlan,
    c: &Continuation,
    intake: &crate::csr::intake::Intake,
) -> Result<(), CeremonyError> {
    let Some(sa) = c.sa.as_ref().filter(|_| !c.rotate_sa_key) else {
        return Ok(());
    };
    let carried = crate::keys::public::public_key_file(&sa.public)
        .map_err(|e| CeremonyError::Internal(format!("the carried sa.pub re-parses: {e}")))?;
    let Some(node) = intake.nodes.iter().find(|n| {
        n.check
            .sa
            .as_ref()
            .is_some_and(|s| s.pub_id != carried.spki_der)
    }) else {
        return Ok(());
    };
    let dir = crate::csr::intake::csr_dir(loaded).unwrap_or_default();
    Err(bad(
        format!(
            "{}: not the cluster's service-account key, which {} carries ({}/{}/sa.pub, {})",
            dir.join(&node.check.node)
                .join("etc/kubernetes/pki/sa.pub")
                .display(),
            c.dir.display(),
            c.dir.display(),
            sa.from,
            carried.fingerprint()
        ),
        "a continuing ceremony keeps the service-account pair: bring the node's pki/sa.pub (and sa.key) unchanged, or none (the pair is carried); nothing was touched",
    ))
}

/// The root key on this token is the key of the root certificate that
/// sealed the previous ceremony: checked after login, before any write.
pub fn check_token_root(
    token: &dyn Token,
    loaded: &LoadedPlan,
    c: &Continuation,
) -> Result<(), CeremonyError> {
    let spec = loaded.plan.ca(CaRole::Root);
    let root = Certificate::from_der(&c.root_der)
        .map_err(|e| CeremonyError::Internal(format!("the previous root re-parses: {e}")))?;
    let want = root
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| CeremonyError::Internal(e.to_string()))?;
    let root_file = c.dir.join(layout::ROOT_CA);
    match token.find_key_pair(&spec.label, spec.key)? {
        None => Err(bad(
            format!(
                "{}: the previous ceremony was sealed by this root, but this token holds no root key \"{}\"",
                root_file.display(),
                spec.label
            ),
            "run a continuing ceremony on the token that holds the previous ceremony's root; nothing was written",
        )),
        Some(k) if k.spki.to_der().ok().as_deref() != Some(&want[..]) => Err(bad(
            format!(
                "{}: the previous ceremony was sealed by another root than the key \"{}\" on this token",
                root_file.display(),
                spec.label
            ),
            "run a continuing ceremony on the token that holds the previous ceremony's root; nothing was written",
        )),
        Some(_) => Ok(()),
    }
}

/// The label of the token's chain head: a data object holding the final
/// hash of the latest ceremony sealed on the token, so that a continuing
/// ceremony can tell whether its previous output is still the latest (an
/// output cannot know its successors; the token sees every ceremony).
pub const HEAD_LABEL: &str = "ceremony-chain-head";

/// What the token's chain head says of a continuing ceremony.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// None on the token: one last sealed by a version that kept none.
    Absent,
    /// The previous ceremony is the latest.
    Latest,
    /// The head is (also) a final hash this run's journal sealed: an
    /// earlier run of this ceremony set it and stopped before its commit.
    Own,
    /// Another ceremony is the latest, and the plan forks on purpose: its
    /// final hash.
    Forked(String),
}

/// Judges the chain head, pure. `on_token`: the head's values (several
/// after a replacement cut short between its create and its destroy: each
/// must be acceptable); `previous`: the final hash the plan continues;
/// `own`: the final hashes this run's journal sealed; `fork`: the plan's.
/// Err is the one line that refuses it.
pub fn judge_head(
    on_token: &[Vec<u8>],
    previous: &str,
    own: &[String],
    fork: bool,
) -> Result<Head, String> {
    if let Some(v) = on_token.iter().find(|v| v.len() != 32) {
        return Err(format!(
            "the token's chain head \"{HEAD_LABEL}\" holds {} bytes, not a final hash (32): it is damaged or not this tool's",
            v.len()
        ));
    }
    let other = on_token
        .iter()
        .map(hex::encode)
        .find(|h| h != previous && !own.contains(h));
    match other {
        _ if on_token.is_empty() => Ok(Head::Absent),
        None if on_token.iter().all(|v| hex::encode(v) == previous) => Ok(Head::Latest),
        None => Ok(Head::Own),
        Some(h) if fork => Ok(Head::Forked(h)),
        Some(h) => Err(format!(
            "the previous ceremony (final hash {previous}) is not the latest ceremony of this token: its chain head is {h}, a ceremony sealed after it; continuing it again forks the chain"
        )),
    }
}

/// Reads the token's chain head and judges it (after login, before any
/// write): refused (exit 2, nothing touched) when the previous output is
/// not the token's latest ceremony and the plan does not fork. `own`: the
/// final hashes this run's journal sealed.
pub fn check_head(
    token: &dyn Token,
    c: &Continuation,
    own: &[String],
    note: &mut dyn FnMut(&str),
) -> Result<(), CeremonyError> {
    let values = token.find_data(HEAD_LABEL)?;
    let seal = c.dir.join(layout::SEAL);
    match judge_head(&values, &c.previous.final_hash, own, c.previous.fork) {
        Ok(Head::Absent) => note(&format!(
            "the token holds no chain head \"{HEAD_LABEL}\" (its last ceremony was made by an earlier version): that {} is its latest ceremony is not checked",
            c.previous.output
        )),
        Ok(Head::Latest) => note(&format!(
            "the token's chain head is the previous ceremony's final hash: {} is its latest ceremony",
            c.previous.output
        )),
        Ok(Head::Own) => note(&format!(
            "the token's chain head is a final hash this ceremony's journal sealed (an earlier run stopped before its commit): {} was the latest ceremony before it",
            c.previous.output
        )),
        Ok(Head::Forked(h)) => note(&format!(
            "ceremony.fork = true: the token's chain head is {h}, a later ceremony than {}; this one forks the chain there",
            c.previous.output
        )),
        Err(m) => {
            return Err(bad(
                format!("{}: {m}", seal.display()),
                "continue the latest ceremony made on this token (the output whose final hash is the chain head), or set [ceremony] fork = true to fork the chain on purpose; nothing was written",
            ));
        }
    }
    Ok(())
}

/// `continuation.json`: which ceremony this one continues and what it did
/// with each node, so the output alone says where the untouched nodes'
/// bundles are.
pub fn manifest(c: &Continuation) -> Result<String, CeremonyError> {
    let v = ContinuationRecord {
        previous: c.previous.clone(),
        renewed: c.selection.renewed.clone(),
        added: c.selection.added.clone(),
        untouched: c.selection.untouched.clone(),
        service_account_key: if c.rotate_sa_key {
            "rotated"
        } else if c.sa.is_some() || c.sa_in_earlier_output {
            "carried"
        } else {
            "new"
        }
        .into(),
        rotations: c.rotations.iter().map(|r| r.record()).collect(),
    };
    serde_json::to_string_pretty(&v)
        .map(|t| t + "\n")
        .map_err(|e| CeremonyError::Internal(format!("encoding continuation.json: {e}")))
}

/// What `preflight_validity` takes of the chain instead of the token: the
/// end of each CA certificate of the previous output (the chain's current
/// one, which a reissue may have made other than the token's), and None
/// for each CA this ceremony reissues (it ends as the plan says).
pub fn current_ends(
    c: Option<&Continuation>,
    reissue: &[CaRole],
) -> BTreeMap<CaRole, Option<std::time::SystemTime>> {
    let mut ends = BTreeMap::new();
    for (role, der) in c.iter().flat_map(|c| c.cas.iter()) {
        if let Ok(cert) = Certificate::from_der(der) {
            let end = cert.tbs_certificate().validity().not_after.to_system_time();
            ends.insert(*role, Some(end));
        }
    }
    for role in reissue {
        ends.insert(*role, None);
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn selection(renewed: &[&str], added: &[&str]) -> Selection {
        Selection {
            renewed: renewed.iter().map(|s| s.to_string()).collect(),
            added: added.iter().map(|s| s.to_string()).collect(),
            untouched: Vec::new(),
        }
    }

    const P: &str = "11111111111111111111111111111111111111111111111111111111111111aa";

    fn hash(h: &str) -> Vec<u8> {
        hex::decode(h).unwrap()
    }

    #[test]
    fn the_chain_head_says_whether_the_previous_ceremony_is_the_latest() {
        let later = "22".repeat(32);
        let own = "33".repeat(32);
        // An older token: accepted, with a note.
        assert_eq!(judge_head(&[], P, &[], false), Ok(Head::Absent));
        assert_eq!(judge_head(&[hash(P)], P, &[], false), Ok(Head::Latest));
        // A second continuation of the same ceremony: a fork, refused.
        assert_eq!(
            judge_head(&[hash(&later)], P, &[], false),
            Err(format!(
                "the previous ceremony (final hash {P}) is not the latest ceremony of this token: its chain head is {later}, a ceremony sealed after it; continuing it again forks the chain"
            ))
        );
        // ... unless the plan forks on purpose.
        assert_eq!(
            judge_head(&[hash(&later)], P, &[], true),
            Ok(Head::Forked(later.clone()))
        );
        // A run that sealed and died before its commit set the head to its
        // own final hash; cut short inside the replacement, both are there.
        let mine = [own.clone()];
        assert_eq!(judge_head(&[hash(&own)], P, &mine, false), Ok(Head::Own));
        assert_eq!(
            judge_head(&[hash(P), hash(&own)], P, &mine, false),
            Ok(Head::Own)
        );
        assert_eq!(judge_head(&[hash(P)], P, &mine, false), Ok(Head::Latest));
        // Both, but the second is not this journal's: refused.
        assert!(judge_head(&[hash(P), hash(&later)], P, &mine, false).is_err());
        assert_eq!(
            judge_head(&[vec![1, 2, 3]], P, &[], true),
            Err("the token's chain head \"ceremony-chain-head\" holds 3 bytes, not a final hash (32): it is damaged or not this tool's".into())
        );
    }

    fn continuation(dir: &Path, fork: bool) -> Continuation {
        Continuation {
            dir: dir.to_path_buf(),
            previous: PreviousCeremony {
                output: "c1".into(),
                ceremony: "c1".into(),
                final_hash: P.into(),
                seal: String::new(),
                sha256sums_sha256: String::new(),
                root_certificate_sha256: String::new(),
                fork,
            },
            root_der: Vec::new(),
            selection: Selection::default(),
            listed: BTreeMap::new(),
            cas: BTreeMap::new(),
            rotations: Vec::new(),
            sa: None,
            sa_in_earlier_output: false,
            rotate_sa_key: false,
        }
    }

    /// On the fake token: absent, equal, different, and different with
    /// `fork = true`; the head is read only, never written here.
    #[test]
    fn a_continuing_ceremony_reads_the_chain_head_from_the_token() {
        use crate::token::fake::Fake;
        let dir = Path::new("c1");
        let token = Fake::new();
        let mut notes = Vec::new();
        let mut note = |t: &str| notes.push(t.to_string());
        check_head(&token, &continuation(dir, false), &[], &mut note).unwrap();
        token.put_data(HEAD_LABEL, &hash(P)).unwrap();
        check_head(&token, &continuation(dir, false), &[], &mut note).unwrap();
        let later = "22".repeat(32);
        token.put_data(HEAD_LABEL, &hash(&later)).unwrap();
        let e = check_head(&token, &continuation(dir, false), &[], &mut note)
            .expect_err("a fork is refused");
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            format!(
                "c1/audit.seal.json: the previous ceremony (final hash {P}) is not the latest ceremony of this token: its chain head is {later}, a ceremony sealed after it; continuing it again forks the chain"
            )
        );
        assert!(e.hint().unwrap().contains("[ceremony] fork = true"));
        check_head(&token, &continuation(dir, true), &[], &mut note).unwrap();
        assert_eq!(token.calls("put_data"), 2, "only the test wrote it");
        assert_eq!(token.find_data(HEAD_LABEL).unwrap(), [hash(&later)]);
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(
            notes[0].starts_with("the token holds no chain head"),
            "{notes:?}"
        );
        assert!(notes[1].contains("is its latest ceremony"), "{notes:?}");
        assert!(
            notes[2].starts_with(&format!(
                "ceremony.fork = true: the token's chain head is {later}"
            )),
            "{notes:?}"
        );
    }

    #[test]
    fn a_control_plane_written_needs_the_chains_pair_at_hand() {
        let cp = ["cp1", "cp2"];
        let before = set(&["cp1", "cp2", "worker1"]);
        // The previous output holds a control-plane bundle: its pair.
        assert!(sa_at_hand(true, &before, &selection(&["cp2"], &[]), &cp).is_ok());
        // It holds none, and no control-plane node is written: nothing needed.
        assert!(sa_at_hand(false, &before, &selection(&["worker1"], &[]), &cp).is_ok());
        // The chain issued nothing yet: a new pair is the first.
        assert!(sa_at_hand(false, &set(&[]), &selection(&[], &["cp1"]), &cp).is_ok());
        // A control-plane node written without the chain's pair: refused.
        assert_eq!(
            sa_at_hand(false, &before, &selection(&["cp2"], &["cp3"]), &["cp1", "cp2", "cp3"]),
            Err("holds no control-plane bundle, so not the cluster's service-account pair (pki/sa.key, pki/sa.pub) that cp2, cp3 must carry: it is in an earlier output of the chain, and a new pair would silently invalidate every service-account token".into())
        );
    }
}
