//! `ceremony verify` and `ceremony inspect`: read-only checks of a kubeadm
//! bundle, either a whole ceremony output (OUT: root-ca.crt, cas/, chains/,
//! SHA256SUMS, nodes/<node>/etc/kubernetes) or one node's etc/kubernetes.
//!
//! `verify` checks what kubeadm does not (README "External-CA mode"): that
//! every key matches its certificate, each leaf chains to the right
//! intermediate and each intermediate to the root, the kubeadm profiles
//! (exactly the plan's `LeafSpec`s with `--plan`), kubeconfigs, file modes,
//! that no CA private key is anywhere, and the SHA256SUMS manifest.
//!
//! It never writes, never talks to a token and never prints key material:
//! problems name the file and field, and keys appear only as SPKI
//! fingerprints. The directory is read once (`tree`); every check after that
//! is a pure function of the tree, the root, the plan and `now` (`check`).

pub mod check;
pub mod expect;
pub mod expiry;
pub mod inspect;
pub mod parse;
pub mod tree;

#[cfg(test)]
mod tests;

use crate::bundle::layout;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use x509_cert::name::Name;

use crate::plan::{CaRole, ClusterSpec, PlanError};
use tree::Tree;

/// One thing wrong with the bundle.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Relative to the directory given to `verify`.
    pub file: String,
    pub field: String,
    pub what: String,
    pub expected: Option<String>,
    pub got: Option<String>,
}

impl Problem {
    pub fn new(file: &str, field: &str, what: impl Into<String>) -> Problem {
        Problem {
            file: file.into(),
            field: field.into(),
            what: what.into(),
            expected: None,
            got: None,
        }
    }

    pub fn expected(mut self, e: impl Into<String>) -> Problem {
        self.expected = Some(e.into());
        self
    }

    pub fn got(mut self, g: impl Into<String>) -> Problem {
        self.got = Some(g.into());
        self
    }
}

/// `<file>: <field>: <what> (expected X, got Y)`
impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.field, self.what)?;
        match (&self.expected, &self.got) {
            (Some(e), Some(g)) => write!(f, " (expected {e}, got {g})"),
            (Some(e), None) => write!(f, " (expected {e})"),
            (None, Some(g)) => write!(f, " (got {g})"),
            (None, None) => Ok(()),
        }
    }
}

/// A ceremony output or a single node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    Out,
    /// A node whose etc/kubernetes is at `base` ("" or "etc/kubernetes/").
    Node {
        base: String,
    },
}

/// Tells the layout from the entries present.
pub fn detect(tree: &Tree) -> Option<Layout> {
    if tree.is_dir(layout::NODES)
        || tree.get(layout::ROOT_CA).is_some()
        || tree.get(layout::SHA256SUMS).is_some()
    {
        Some(Layout::Out)
    } else if tree.is_dir("pki") || tree.get("kubelet.conf").is_some() {
        Some(Layout::Node {
            base: String::new(),
        })
    } else if tree.is_dir("etc/kubernetes") {
        Some(Layout::Node {
            base: "etc/kubernetes/".into(),
        })
    } else {
        None
    }
}

/// What `--plan` contributes: the cluster and the CAs' subjects.
#[derive(Debug, Clone)]
pub struct PlanFacts {
    pub cluster: ClusterSpec,
    pub ca_subjects: BTreeMap<CaRole, Name>,
    /// `[[users]]`: (name, groups), each a users/<name>.conf.
    pub users: Vec<(String, Vec<String>)>,
    /// Whether the plan has a kubelet signer.
    pub kubelet_signer: bool,
}

/// The trust anchor given with `--root`.
#[derive(Debug, Clone)]
pub struct GivenRoot {
    /// How to name it in messages ("--root root-ca.crt").
    pub label: String,
    pub pem: Vec<u8>,
}

/// Everything `check` looks at.
#[derive(Debug)]
pub struct Input {
    pub tree: Tree,
    pub layout: Layout,
    /// The node name the directory's path implies (`…/nodes/<name>/etc/kubernetes`).
    pub dir_node_name: Option<String>,
    pub root: Option<GivenRoot>,
    pub plan: Option<PlanFacts>,
    /// The CAs delegated to the control-plane nodes: the plan's (`--plan`),
    /// else those OUT/plan.toml names.
    pub delegated: Vec<CaRole>,
    /// Whether the plan (or OUT/plan.toml) has a kubelet signer: its
    /// certificate, trust file and node-held key belong on control-plane nodes.
    pub kubelet_signer: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Worker,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
        }
    }
}

/// Which root the intermediates were checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootUsed {
    Given(String),
    Out,
    None,
}

#[derive(Debug, Clone)]
pub struct Report {
    /// Sorted by file; in check order within a file.
    pub problems: Vec<Problem>,
    pub files_checked: usize,
    pub nodes: Vec<(Option<String>, Role)>,
    pub root: RootUsed,
    pub plan: bool,
    /// Encrypted nodes not opened (no identity given for them).
    pub locked: Vec<String>,
}

impl Report {
    /// Nodes named one by one in the summary; past that, counted.
    const NAMED_NODES: usize = 8;

    /// The last line: `OK: …` or `FAILED: …`.
    pub fn summary(&self) -> String {
        let named = |(n, r): &(Option<String>, Role)| {
            format!("{} {}", n.as_deref().unwrap_or("(unnamed)"), r.name())
        };
        // Every node by name while that fits on a line; for a large bundle
        // (10,000 workers) the count of each role and the first few names.
        let nodes = if self.nodes.len() <= Self::NAMED_NODES {
            self.nodes.iter().map(named).collect::<Vec<_>>().join(", ")
        } else {
            let mut roles: Vec<(&str, usize)> = Vec::new();
            for (_, r) in &self.nodes {
                match roles.iter_mut().find(|(name, _)| *name == r.name()) {
                    Some((_, n)) => *n += 1,
                    None => roles.push((r.name(), 1)),
                }
            }
            let roles: Vec<String> = roles.iter().map(|(r, n)| format!("{n} {r}")).collect();
            let first: Vec<String> = self
                .nodes
                .iter()
                .take(Self::NAMED_NODES)
                .map(named)
                .collect();
            format!(
                "{}: {}, and {} more",
                roles.join(", "),
                first.join(", "),
                self.nodes.len() - first.len()
            )
        };
        let what = format!(
            "{} files checked, {} node{} ({nodes})",
            self.files_checked,
            self.nodes.len(),
            if self.nodes.len() == 1 { "" } else { "s" }
        );
        let mut notes = Vec::new();
        match &self.root {
            RootUsed::Given(l) => notes.push(format!("chains checked up to {l}")),
            RootUsed::Out => notes.push("chains checked up to root-ca.crt".into()),
            RootUsed::None => {
                notes.push("intermediates not checked against a root (give --root)".into())
            }
        }
        notes.push(if self.plan {
            "profiles compared with the plan".into()
        } else {
            "no --plan: kubeadm's fixed profile parts only".to_string()
        });
        if !self.locked.is_empty() {
            notes.push(format!(
                "encrypted, checked as archives only (give --identity to open): {}",
                self.locked
                    .iter()
                    .map(|n| crate::bundle::layout::sealed_node(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if self.problems.is_empty() {
            format!("OK: {what}; {}", notes.join("; "))
        } else {
            let mut files: Vec<&str> = self.problems.iter().map(|p| p.file.as_str()).collect();
            files.dedup();
            format!(
                "FAILED: {} problem{} in {} file{}; {what}; {}",
                self.problems.len(),
                if self.problems.len() == 1 { "" } else { "s" },
                files.len(),
                if files.len() == 1 { "" } else { "s" },
                notes.join("; ")
            )
        }
    }
}

/// `inspect --expiring`: a certificate expires within the window.
pub const EXIT_EXPIRING: i32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read {}: {source}", .dir.display())]
    Read {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: neither a ceremony output (root-ca.crt, nodes/) nor a node's etc/kubernetes (pki/, kubelet.conf)", .0.display())]
    Layout(PathBuf),
    #[error("--root {}: {what}", .file.display())]
    Root { file: PathBuf, what: String },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{}: the plan has no [cluster], so there is nothing to compare a bundle with", .0.display())]
    PlanWithoutCluster(PathBuf),
    #[error("the bundle failed verification: {problems} problem{} (listed above)", if *.problems == 1 { "" } else { "s" })]
    Failed { problems: usize },
    #[error(transparent)]
    Chain(#[from] expiry::ChainError),
    #[error("{newest} left {} untouched: {} bundle{} in the outputs before it, which were not given", .nodes.join(", "), if .nodes.len() == 1 { "its" } else { "their" }, if .nodes.len() == 1 { " is" } else { "s are" })]
    NotGiven { newest: String, nodes: Vec<String> },
    #[error("{count} certificate{} expire{} within {window} (listed above)", if *.count == 1 { "" } else { "s" }, if *.count == 1 { "s" } else { "" })]
    Expiring {
        count: usize,
        window: String,
        /// The renewal plan was printed (the hint need not point at it).
        planned: bool,
    },
}

impl VerifyError {
    /// 4 when the bundle has problems, 6 when a certificate expires within
    /// `inspect --expiring`'s window (a monitor tells "renew soon" from a
    /// broken bundle, 4, and from bad arguments, 2), 2 when the command was
    /// given something unusable.
    pub fn exit_code(&self) -> i32 {
        match self {
            VerifyError::Failed { .. } => 4,
            VerifyError::Expiring { .. } => EXIT_EXPIRING,
            _ => 2,
        }
    }

    pub fn hint(&self) -> Option<String> {
        Some(match self {
            VerifyError::Read { .. } | VerifyError::Layout(_) => {
                "give the output directory of `ceremony run`, or a node's etc/kubernetes directory".into()
            }
            VerifyError::Root { .. } => "give the root CA certificate as PEM, one certificate (OUT/root-ca.crt)".into(),
            VerifyError::Plan(_) => "fix the plan; `ceremony check PLAN` lists every problem".into(),
            VerifyError::PlanWithoutCluster(_) => "give the plan that made the bundle, or verify without --plan".into(),
            VerifyError::Failed { .. } => {
                "each line names a file and what is wrong with it; re-issue the bundle with `ceremony run` rather than edit it by hand (verify changed nothing)".into()
            }
            VerifyError::Chain(_) => {
                "give every output of the chain, oldest first, each the one the next continues (`ceremony inspect c1 c2 …`)".into()
            }
            VerifyError::NotGiven { .. } => {
                "give every output of the chain, oldest first (`ceremony inspect c1 c2 …`), so that each node's newest bundle is seen".into()
            }
            VerifyError::Expiring { planned: true, .. } => {
                "hold a continuing ceremony that renews them, with the [renew] section above (docs/runbook.md)".into()
            }
            VerifyError::Expiring { planned: false, .. } => {
                "`ceremony inspect OUT... --renewal-plan` says which nodes to renew, by when, with a [renew] section for the next plan".into()
            }
        })
    }
}

/// Reads `dir` (and the `--root` file) into an `Input`. The plan is loaded by the caller.
pub fn load(
    dir: &Path,
    root: Option<&Path>,
    plan: Option<PlanFacts>,
) -> Result<Input, VerifyError> {
    let tree = Tree::load(dir).map_err(|source| VerifyError::Read {
        dir: dir.to_path_buf(),
        source,
    })?;
    let layout = detect(&tree).ok_or_else(|| VerifyError::Layout(dir.to_path_buf()))?;
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let dir_node_name = match &layout {
        Layout::Out => None,
        Layout::Node { base } if base.is_empty() => tree::node_name_from_path(&canonical),
        Layout::Node { .. } => tree::node_name_from_path(&canonical.join("etc/kubernetes")),
    };
    let root = match root {
        None => None,
        Some(f) => {
            let pem = crate::fsread::read_regular(
                f,
                crate::fsread::cap::CERTIFICATE,
                crate::fsread::Links::Follow,
            )
            .map_err(|e| VerifyError::Root {
                file: f.to_path_buf(),
                what: e.why(),
            })?;
            let parsed = parse::CertFile::parse(&pem).map_err(|what| VerifyError::Root {
                file: f.to_path_buf(),
                what,
            })?;
            if let Some(what) = parsed.error {
                return Err(VerifyError::Root {
                    file: f.to_path_buf(),
                    what,
                });
            }
            if parsed.labels.len() != 1 || parsed.certs.len() != 1 {
                return Err(VerifyError::Root {
                    file: f.to_path_buf(),
                    what: format!(
                        "holds {} PEM blocks; expected exactly one certificate",
                        parsed.labels.len()
                    ),
                });
            }
            Some(GivenRoot {
                label: format!("--root {}", f.display()),
                pem: pem.to_vec(),
            })
        }
    };
    let (delegated, kubelet_signer) = match (&plan, &layout) {
        (Some(p), _) => (p.cluster.delegated.clone(), p.kubelet_signer),
        (None, Layout::Out) => tree
            .file(crate::bundle::layout::PLAN)
            .map(delegated_in_plan_text)
            .unwrap_or_default(),
        (None, Layout::Node { .. }) => (Vec::new(), false),
    };
    Ok(Input {
        tree,
        layout,
        dir_node_name,
        root,
        plan,
        delegated,
        kubelet_signer,
    })
}

/// Opens every encrypted node an identity of `identities` can decrypt
/// (none given: each is only noted).
pub fn open_sealed(tree: &mut Tree, identities: &[crate::audit::crypto::Identities]) {
    // No identity for it: locked, not failed (each node has its own).
    let decrypt = |bytes: &[u8]| -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, String> {
        for ids in identities {
            match ids.decrypt(bytes) {
                Ok(plain) => return Ok(Some(zeroize::Zeroizing::new(plain))),
                Err(crate::audit::crypto::DecryptFailure::Header(_)) => {}
                Err(crate::audit::crypto::DecryptFailure::Payload(e)) => {
                    return Err(format!("damaged or truncated: {e}"));
                }
            }
        }
        Ok(None)
    };
    if identities.is_empty() {
        tree.open_sealed(None);
    } else {
        tree.open_sealed(Some(&decrypt));
    }
}

/// The CAs a plan's text delegates (`mode = "delegated"` in `[ca.*]`), read
/// leniently: OUT's own plan.toml, which its SHA256SUMS covers, may no
/// longer validate (a `not_after` since past) but still says who holds which
/// key.
fn delegated_in_plan_text(text: &[u8]) -> (Vec<CaRole>, bool) {
    let Some(plan) = std::str::from_utf8(text)
        .ok()
        .and_then(|t| toml::from_str::<crate::plan::Plan>(t).ok())
    else {
        return (Vec::new(), false);
    };
    let delegated = [
        (CaRole::Kubernetes, &plan.ca.kubernetes),
        (CaRole::Etcd, &plan.ca.etcd),
        (CaRole::FrontProxy, &plan.ca.front_proxy),
    ]
    .into_iter()
    .filter(|(_, s)| s.mode.as_deref() == Some("delegated"))
    .map(|(r, _)| r)
    .collect();
    (delegated, plan.kubelet_signer.is_some())
}

/// The plan's facts, or why it cannot be used.
pub fn plan_facts(path: &Path, now: SystemTime) -> Result<PlanFacts, VerifyError> {
    let loaded = crate::plan::load(path, now)?;
    let cluster = loaded
        .plan
        .cluster
        .clone()
        .ok_or_else(|| VerifyError::PlanWithoutCluster(path.to_path_buf()))?;
    let ca_subjects = loaded
        .plan
        .cas
        .iter()
        .map(|c| (c.role, c.subject.clone()))
        .collect();
    let users = loaded
        .plan
        .users
        .iter()
        .map(|u| (u.name.clone(), u.groups.clone()))
        .collect();
    Ok(PlanFacts {
        cluster,
        ca_subjects,
        users,
        kubelet_signer: loaded.plan.kubelet_signer.is_some(),
    })
}

/// Writes the command's output; a closed pipe (`| head`) is not an error worth a panic.
fn stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// `ceremony verify DIR [--root FILE] [--plan FILE]`: prints one line per
/// problem and the summary on stdout; Err(Failed) when there were problems.
pub fn run_verify(
    dir: &Path,
    root: Option<&Path>,
    plan: Option<&Path>,
    identities: &[crate::audit::crypto::Identities],
) -> Result<(), VerifyError> {
    let now = SystemTime::now();
    let facts = plan.map(|p| plan_facts(p, now)).transpose()?;
    let mut input = load(dir, root, facts)?;
    open_sealed(&mut input.tree, identities);
    let report = check::check(&input, now);
    let mut text = String::new();
    for p in &report.problems {
        text.push_str(&format!("{p}\n"));
    }
    text.push_str(&report.summary());
    text.push('\n');
    stdout(&text);
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(VerifyError::Failed {
            problems: report.problems.len(),
        })
    }
}
