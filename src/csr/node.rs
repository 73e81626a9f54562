//! One node's CSR tree against its plan: every file it must bring and may
//! bring, the service-account pair the control-plane nodes share, and keys
//! used twice. Pure: bytes in, accepted files and refusals out.

use std::collections::{BTreeMap, BTreeSet};

use zeroize::Zeroizing;

use super::policy::{
    CheckedCsr, Refusal, allowed_text, canonical_file, check_csr, csr_path, partial_client_key,
};

use crate::keys::public::{private_key_file, public_key_file};
use crate::keytype::KeyType;
use crate::profile::kubeadm::{LeafOutput, LeafSpec};

/// A CSR of a node that passed, with what was found beside it.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub spec: LeafSpec,
    /// Relative to the node's etc/kubernetes.
    pub csr_file: String,
    pub csr: CheckedCsr,
    /// Kubeconfigs: the node's key from its partial `.conf`, if it was
    /// brought (its one PEM block, canonical).
    pub client_key_pem: Option<Zeroizing<String>>,
    /// Certificates: the node's `pki/<name>.key`, if it was brought
    /// (relative path, and its one PEM block, canonical).
    pub key_file: Option<(String, Zeroizing<String>)>,
}

/// One CSR file (found or missing) with its profile and refusals, for `check`.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Relative to the node's etc/kubernetes.
    pub file: String,
    /// kubeadm's name of the profile it maps to (None: no profile matches).
    pub profile: Option<String>,
    pub found: bool,
    pub refusals: Vec<Refusal>,
}

/// A service-account key pair the node brought (`pki/sa.pub`, maybe `pki/sa.key`).
#[derive(Debug, Clone)]
pub struct SuppliedSa {
    pub pub_id: Vec<u8>,
    /// `pki/sa.pub` and `pki/sa.key` as the bundle holds them: each file's
    /// one PEM block, canonical.
    pub pub_pem: String,
    pub key_pem: Option<Zeroizing<String>>,
}

/// Everything decided about one node's CSR tree.
#[derive(Debug, Clone)]
pub struct NodeCheck {
    pub node: String,
    pub control_plane: bool,
    pub entries: Vec<Entry>,
    /// Refusals not tied to one CSR (missing directory, sa.pub, shared keys).
    pub node_refusals: Vec<Refusal>,
    /// In profile order; only meaningful when `refusals()` is empty.
    pub accepted: Vec<Accepted>,
    pub sa: Option<SuppliedSa>,
    /// Files that are neither CSRs nor files beside one; not copied.
    pub ignored: Vec<String>,
    /// (file relative to the CSR dir, key id) of every CSR whose key parsed.
    pub key_ids: Vec<(String, Vec<u8>)>,
}

impl NodeCheck {
    pub fn refusals(&self) -> Vec<Refusal> {
        self.node_refusals
            .iter()
            .chain(self.entries.iter().flat_map(|e| e.refusals.iter()))
            .cloned()
            .collect()
    }

    /// A node whose tree is missing altogether.
    pub fn missing_dir(node: &str, control_plane: bool, dir: &str, got: String) -> NodeCheck {
        Self::refused_dir(
            node,
            control_plane,
            Refusal::new(
                dir,
                "directory",
                "the node's etc/kubernetes as kubeadm certs generate-csr writes it",
                got,
            ),
        )
    }

    /// A node whose tree is not read at all, for `why`.
    pub fn refused_dir(node: &str, control_plane: bool, why: Refusal) -> NodeCheck {
        NodeCheck {
            node: node.to_string(),
            control_plane,
            entries: Vec::new(),
            node_refusals: vec![why],
            accepted: Vec::new(),
            sa: None,
            ignored: Vec::new(),
            key_ids: Vec::new(),
        }
    }
}

/// Checks the files of one node's etc/kubernetes (relative path → bytes)
/// against the node's profiles. `prefix` is prepended to file names in
/// refusals (`cp1/etc/kubernetes/`). Every profile needs its CSR; every CSR
/// needs a profile; keys brought beside a CSR must be its key.
pub fn check_node(
    node: &str,
    control_plane: bool,
    prefix: &str,
    specs: &[LeafSpec],
    files: &BTreeMap<String, Zeroizing<Vec<u8>>>,
    allowed: &[KeyType],
) -> NodeCheck {
    let full = |rel: &str| format!("{prefix}{rel}");
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut entries = Vec::new();
    let mut accepted = Vec::new();
    let mut key_ids = Vec::new();
    for spec in specs {
        let csr_file = csr_path(spec);
        let Some(bytes) = files.get(&csr_file) else {
            entries.push(Entry {
                file: csr_file.clone(),
                profile: Some(spec.display_name()),
                found: false,
                refusals: vec![Refusal::new(
                    full(&csr_file),
                    "file",
                    format!("the CSR of {}", spec.display_name()),
                    "no such file",
                )],
            });
            continue;
        };
        used.insert(csr_file.clone());
        let mut check = check_csr(&full(&csr_file), bytes, spec, allowed);
        let key_id = check.key.as_ref().map(|(_, k)| k.spki_der.clone());
        if let Some(id) = &key_id {
            key_ids.push((full(&csr_file), id.clone()));
        }
        let mut client_key_pem = None;
        let mut key_file = None;
        let beside = |rel: &str, got: String| {
            Refusal::new(
                full(rel),
                "private key",
                format!("the key of {csr_file}"),
                got,
            )
        };
        match &spec.output {
            LeafOutput::Kubeconfig { .. } => {
                if let Some(conf) = files.get(&spec.path) {
                    used.insert(spec.path.clone());
                    match partial_client_key(conf) {
                        Err(got) => check.refusals.push(Refusal::new(
                            full(&spec.path),
                            "client-key-data",
                            "the partial kubeconfig kubeadm certs generate-csr writes",
                            got,
                        )),
                        Ok(pem) => match private_key_file(pem.as_bytes()) {
                            Err(got) => check.refusals.push(beside(&spec.path, got.to_string())),
                            Ok(k) if Some(&k.spki_der) != key_id.as_ref() && key_id.is_some() => {
                                check
                                    .refusals
                                    .push(beside(&spec.path, "another key".into()))
                            }
                            Ok(_) => match crate::pem::canonical_one(&pem) {
                                Ok(canonical) => client_key_pem = Some(canonical),
                                Err(got) => check.refusals.push(beside(&spec.path, got)),
                            },
                        },
                    }
                }
            }
            LeafOutput::CertAndKey => {
                let key_rel = format!("{}.key", spec.path);
                if let Some(k) = files.get(&key_rel) {
                    used.insert(key_rel.clone());
                    match private_key_file(k) {
                        Err(got) => check.refusals.push(beside(&key_rel, got.to_string())),
                        Ok(k) if Some(&k.spki_der) != key_id.as_ref() && key_id.is_some() => {
                            check.refusals.push(beside(&key_rel, "another key".into()))
                        }
                        Ok(_) => match canonical_file(k) {
                            Ok(canonical) => key_file = Some((key_rel, canonical)),
                            Err(got) => check.refusals.push(beside(&key_rel, got)),
                        },
                    }
                }
            }
        }
        if let Some(csr) = check.accepted() {
            accepted.push(Accepted {
                spec: spec.clone(),
                csr_file: csr_file.clone(),
                csr,
                client_key_pem,
                key_file,
            });
        }
        entries.push(Entry {
            file: csr_file,
            profile: Some(spec.display_name()),
            found: true,
            refusals: check.refusals,
        });
    }
    // CSRs no profile of this node matches.
    let mut expected: Vec<String> = specs.iter().map(csr_path).collect();
    expected.sort();
    let unexpected: Vec<String> = files
        .keys()
        .filter(|f| f.ends_with(".csr") && !used.contains(*f))
        .cloned()
        .collect();
    for f in &unexpected {
        used.insert(f.clone());
        entries.push(Entry {
            file: f.clone(),
            profile: None,
            found: true,
            refusals: vec![Refusal::new(
                full(f),
                "profile",
                format!(
                    "one of the CSRs the plan signs for {node} ({})",
                    expected.join(", ")
                ),
                "a CSR no profile of this node matches",
            )],
        });
    }
    // A service-account key the node made itself.
    let mut node_refusals = Vec::new();
    let mut sa = None;
    if control_plane {
        let (p, k) = ("pki/sa.pub", "pki/sa.key");
        match (files.get(p), files.get(k)) {
            (None, None) => {}
            (None, Some(_)) => {
                used.insert(k.into());
                node_refusals.push(Refusal::new(
                    full(p),
                    "file",
                    "sa.pub beside sa.key",
                    "no such file",
                ));
            }
            (Some(pub_bytes), key) => {
                used.insert(p.into());
                match public_key_file(pub_bytes) {
                    Err(got) => node_refusals.push(Refusal::new(
                        full(p),
                        "key",
                        "a PUBLIC KEY block (RSA or ECDSA)",
                        got.to_string(),
                    )),
                    Ok(info) if info.key_type.is_none() => node_refusals.push(Refusal::new(
                        full(p),
                        "key",
                        allowed_text(&KeyType::ALL),
                        info.kind,
                    )),
                    Ok(info) => {
                        let refuse_key = |got: String| {
                            Refusal::new(full(k), "private key", "the key of pki/sa.pub", got)
                        };
                        let key_pem = match key {
                            None => Ok(None),
                            Some(kb) => {
                                used.insert(k.into());
                                match private_key_file(kb) {
                                    Ok(ki) if ki.spki_der == info.spki_der => {
                                        canonical_file(kb).map(Some).map_err(refuse_key)
                                    }
                                    Ok(_) => Err(refuse_key("another key".into())),
                                    Err(got) => Err(refuse_key(got.to_string())),
                                }
                            }
                        };
                        let pub_pem = canonical_file(pub_bytes).map_err(|got| {
                            Refusal::new(full(p), "key", "one PUBLIC KEY block", got)
                        });
                        match (key_pem, pub_pem) {
                            (Ok(key_pem), Ok(pub_pem)) => {
                                sa = Some(SuppliedSa {
                                    pub_id: info.spki_der,
                                    pub_pem: pub_pem.to_string(),
                                    key_pem,
                                })
                            }
                            (Err(r), _) | (_, Err(r)) => node_refusals.push(r),
                        }
                    }
                }
            }
        }
    }
    let ignored = files
        .keys()
        .filter(|f| !used.contains(*f))
        .cloned()
        .collect();
    NodeCheck {
        node: node.to_string(),
        control_plane,
        entries,
        node_refusals,
        accepted,
        sa,
        ignored,
        key_ids,
    }
}

/// sa.key/sa.pub are identical on every control-plane node: either no node
/// brings sa.pub (the ceremony makes the pair) or every one brings the same.
/// Returns (index into `nodes`, refusal).
pub fn sa_consistency(
    nodes: &[NodeCheck],
    prefix_of: &dyn Fn(&str) -> String,
) -> Vec<(usize, Refusal)> {
    let cps: Vec<(usize, &NodeCheck)> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.control_plane)
        .collect();
    let Some((_, first)) = cps.iter().find(|(_, n)| n.sa.is_some()) else {
        return Vec::new();
    };
    let Some(want) = first.sa.as_ref().map(|s| s.pub_id.clone()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, n) in &cps {
        // A node whose sa.pub was itself refused already has its refusal.
        let had_problem = n
            .node_refusals
            .iter()
            .any(|r| r.file.ends_with("pki/sa.pub"));
        match &n.sa {
            Some(s) if s.pub_id == want => {}
            Some(_) => out.push((
                *i,
                Refusal::new(
                    format!("{}pki/sa.pub", prefix_of(&n.node)),
                    "key",
                    format!(
                        "the same sa.pub as {} (identical on every control-plane node)",
                        first.node
                    ),
                    "another key",
                ),
            )),
            None if had_problem => {}
            None => out.push((
                *i,
                Refusal::new(
                    format!("{}pki/sa.pub", prefix_of(&n.node)),
                    "file",
                    format!(
                        "the sa.pub {} brought (identical on every control-plane node)",
                        first.node
                    ),
                    "no such file",
                ),
            )),
        }
    }
    out
}

/// Refuses every CSR whose key another CSR (earlier in `keys`) already uses:
/// one key per certificate, as kubeadm makes them. `keys` holds (file, key
/// id); returns (index into `keys`, refusal) for each later duplicate.
pub fn shared_keys(keys: &[(String, Vec<u8>)]) -> Vec<(usize, Refusal)> {
    let mut first: BTreeMap<&[u8], &str> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, (file, id)) in keys.iter().enumerate() {
        match first.get(id.as_slice()) {
            Some(other) => out.push((
                i,
                Refusal::new(
                    file.clone(),
                    "public key",
                    "a key of its own",
                    format!("the key of {other}"),
                ),
            )),
            None => {
                first.insert(id, file);
            }
        }
    }
    out
}
