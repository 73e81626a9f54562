//! The checks of `ceremony verify`, as pure functions of an `Input` and `now`:
//! no file system, no clock, no output. Each check appends `Problem`s; none
//! stops at the first one, so one run lists everything wrong.

mod backup;
mod ca;
mod crl;
mod kubeadm;
mod kubeconfig;
mod leaf;
mod node;
mod out;

use crate::bundle::layout;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::SystemTime;

use der::Encode;
use der::oid::ObjectIdentifier;
use x509_cert::ext::pkix::KeyUsages;

use super::expect::{self, Expect, PlanNode, SanRule};
use super::parse::{self, Cert, CertFile};
use super::tree::{Content, Sealed, Tree};
use super::{Input, Layout, PlanFacts, Problem, Report, Role, RootUsed};
use crate::bundle::kubeconfig::{KubeconfigFile, base64_data};
use crate::fmt::utc;
use crate::keys::public::{self, PublicKey};
use crate::keytype::KeyType;
use crate::plan::{CaRole, LeafMode};
use crate::profile::kubeadm::{CA_FILES, CLUSTER_ADMINS};
use crate::x509::profile::{eku_name, key_usage_name};

/// The CA private key files kubeadm would pick up (and then leave external-CA mode).
const CA_KEY_NAMES: [&str; 3] = ["pki/ca.key", "pki/etcd/ca.key", "pki/front-proxy-ca.key"];

/// Written after SHA256SUMS, so not in it: the sealed audit log (its own hash
/// chain, sealed by the root) and the transcript (which states SHA256SUMS's
/// hash and is signed on paper).
use crate::bundle::layout::AFTER_MANIFEST;

/// The SHA256SUMS hash a transcript states ("SHA256SUMS SHA-256: `9F77 BCB4 …`"), lower-case hex.
fn transcript_sums_hash(text: &[u8]) -> Option<String> {
    transcript_hash(text, "SHA256SUMS SHA-256:")
}

/// The audit log's final hash a transcript states ("- Audit log final hash: `…`").
fn transcript_final_hash(text: &[u8]) -> Option<String> {
    transcript_hash(text, "- Audit log final hash:")
}

/// The hash in backticks on the first line holding `label`, lower-case hex.
fn transcript_hash(text: &[u8], label: &str) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    let line = text.lines().find(|l| l.contains(label))?;
    let value = line.split('`').nth(1)?;
    let hex: String = value
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// Whether a path names a CA private key file (kubeadm's names, or ours with "-ca.key").
fn is_ca_key_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    CA_KEY_NAMES.iter().any(|n| path.ends_with(n)) || name == "ca.key" || name.ends_with("-ca.key")
}

/// The mode a bundle file must have, by name, as the writer makes it: keys,
/// sa.* and kubeconfigs 0600; certificates, CSRs and OUT's own files 0644.
pub fn expected_mode(path: &str) -> Option<u32> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".key")
        || name.starts_with("sa.")
        || name.ends_with(".conf")
        || name == layout::KUBEADM_CONFIG
    {
        Some(0o600)
    } else if name.ends_with(".crt")
        || name.ends_with(".csr")
        || layout::sealed_node_of(path).is_some()
        || (name == path
            && (AFTER_MANIFEST.contains(&name)
                || name == layout::SHA256SUMS
                || name == layout::PLAN
                || name == layout::INPUTS))
    {
        Some(0o644)
    } else {
        None
    }
}

/// The widest mode of a bundle directory: the writer's 0755 (the umask may
/// narrow it); group or world write, or any special bit, is not the writer's.
pub const DIR_MODE: u32 = 0o755;

/// A node directory in messages: "." when it is the directory given.
fn dir_label(base: &str) -> String {
    match base.trim_end_matches('/') {
        "" => ".".into(),
        b => b.into(),
    }
}

fn short_hash(bytes: &[u8]) -> String {
    format!("sha256:{}", &hex::encode(crate::x509::sha256(bytes))[..16])
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn orgs_text(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join("+")
    }
}

fn ku_names(ku: flagset::FlagSet<KeyUsages>) -> String {
    let v: Vec<String> = ku
        .into_iter()
        .map(|u| key_usage_name(u).to_string())
        .collect();
    list(&v)
}

fn eku_text(v: &[ObjectIdentifier]) -> String {
    let mut names: Vec<String> = v.iter().map(eku_name).collect();
    names.sort();
    list(&names)
}

/// kubeadm's key file of a CA, beside its certificate: the file whose
/// presence tells kubeadm to issue that CA's missing leaves itself.
fn ca_key_file(role: CaRole) -> Option<&'static str> {
    match role {
        CaRole::Root => None,
        CaRole::Kubernetes => Some(CA_KEY_NAMES[0]),
        CaRole::Etcd => Some(CA_KEY_NAMES[1]),
        CaRole::FrontProxy => Some(CA_KEY_NAMES[2]),
    }
}

/// Whether `path` is the key file of a CA the plan delegates, in a node's tree.
fn is_delegated_key(path: &str, delegated: &[CaRole]) -> bool {
    delegated
        .iter()
        .filter_map(|r| ca_key_file(*r))
        .any(|k| path.ends_with(&format!("etc/kubernetes/{k}")) || path == k)
}

fn ca_label(role: CaRole) -> &'static str {
    match role {
        CaRole::Root => layout::ROOT_CA,
        CaRole::Kubernetes => "pki/ca.crt",
        CaRole::Etcd => "pki/etcd/ca.crt",
        CaRole::FrontProxy => "pki/front-proxy-ca.crt",
    }
}

/// A CA certificate and the file it was read from (for messages).
struct CaRef<'c> {
    file: String,
    cert: &'c Cert,
}

/// What one node's check found, for the checks across nodes.
struct NodeResult {
    base: String,
    name: Option<String>,
    role: Role,
    apiserver_sans: Option<Vec<String>>,
    /// (kubeconfig file, server) of every kubeconfig.
    servers: Vec<(String, String)>,
    has_super_admin: bool,
    admin_orgs: Option<Vec<String>>,
}

struct Ctx<'a> {
    tree: &'a Tree,
    now: SystemTime,
    plan: Option<&'a PlanFacts>,
    /// The CAs delegated to the control-plane nodes (their keys held there).
    delegated: &'a [CaRole],
    /// Whether a kubelet signer's files belong on control-plane nodes.
    kubelet_signer: bool,
    problems: Vec<Problem>,
    /// Public halves of private keys, by "file" or "file#field", derived once.
    keys: HashMap<String, Result<PublicKey, String>>,
    /// Every certificate a CRL read so far lists: the CRL file and reason.
    revoked: BTreeMap<crl::RevokedKey, (String, crate::x509::crl::Reason)>,
}

/// Runs every check on `input` at time `now`.
pub fn check(input: &Input, now: SystemTime) -> Report {
    let mut ctx = Ctx {
        tree: &input.tree,
        now,
        plan: input.plan.as_ref(),
        delegated: &input.delegated,
        kubelet_signer: input.kubelet_signer,
        problems: Vec::new(),
        keys: HashMap::new(),
        revoked: BTreeMap::new(),
    };
    let given_root = input.root.as_ref().and_then(|r| {
        CertFile::parse(&r.pem)
            .ok()
            .and_then(|f| f.certs.into_iter().next())
            .map(|c| (r.label.clone(), c))
    });
    let (nodes, root_used, root_key) = match &input.layout {
        Layout::Out => {
            let (nodes, used, key) = ctx.out(given_root.as_ref());
            (nodes, used, key)
        }
        Layout::Node { base } => {
            let root = given_root.as_ref().map(|(l, c)| CaRef {
                file: l.clone(),
                cert: c,
            });
            if let Some(r) = &root {
                ctx.root(&r.file, r.cert, None);
            }
            let r = ctx.node(
                base,
                input.dir_node_name.as_deref(),
                root.as_ref(),
                &BTreeMap::new(),
            );
            let used = given_root
                .as_ref()
                .map_or(RootUsed::None, |(l, _)| RootUsed::Given(l.clone()));
            let key = given_root.as_ref().and_then(|(_, c)| c.key.clone().ok());
            (vec![r], used, key)
        }
    };
    let files_checked = ctx.scan(root_key);
    let mut problems = ctx.problems;
    problems.sort_by(|a, b| a.file.cmp(&b.file));
    Report {
        problems,
        files_checked,
        nodes: nodes.into_iter().map(|n| (n.name, n.role)).collect(),
        root: root_used,
        locked: input
            .tree
            .sealed
            .iter()
            .filter(|(_, s)| **s == Sealed::Locked)
            .map(|(n, _)| n.clone())
            .collect(),
        plan: input.plan.is_some(),
    }
}

impl<'a> Ctx<'a> {
    fn add(&mut self, p: Problem) {
        self.problems.push(p);
    }

    fn private_key(&mut self, id: &str, bytes: &[u8]) -> Result<PublicKey, String> {
        self.keys
            .entry(id.to_string())
            .or_insert_with(|| public::private_key_file(bytes).map_err(|e| e.to_string()))
            .clone()
    }

    /// The certificate of a file that must hold exactly one. Problems for
    /// anything else in it; the first certificate (what kubeadm uses), if any.
    fn one_cert(&mut self, file: &str, field: &str, bytes: &[u8]) -> Option<Cert> {
        let cf = match CertFile::parse(bytes) {
            Ok(cf) => cf,
            Err(e) => {
                self.add(Problem::new(file, field, format!("not PEM: {e}")));
                return None;
            }
        };
        for l in cf.labels.iter().filter(|l| *l != "CERTIFICATE") {
            self.add(
                Problem::new(file, field, format!("holds a \"{l}\" PEM block"))
                    .expected("only CERTIFICATE"),
            );
        }
        if let Some(e) = &cf.error {
            self.add(Problem::new(file, field, e.clone()));
        }
        let n = cf.labels.iter().filter(|l| *l == "CERTIFICATE").count();
        if n == 0 {
            self.add(
                Problem::new(file, field, "holds no certificate")
                    .expected("1 certificate")
                    .got("0"),
            );
        } else if n > 1 {
            self.add(
                Problem::new(file, field, "more than one certificate; kubeadm reads only the first and check-expiration refuses the file")
                    .expected("1 certificate")
                    .got(n.to_string()),
            );
        }
        cf.certs.into_iter().next()
    }

    fn cert_at(&mut self, file: &str) -> Option<Cert> {
        let bytes = self.tree.file(file)?;
        self.one_cert(file, "certificates", bytes)
    }

    /// The stage OUT's continuation.json leaves `role`'s rotation at, if
    /// it is rotating or rotated.
    fn rotation(&self, role: CaRole) -> Option<crate::plan::RotateStage> {
        let bytes = self.tree.file(crate::bundle::layout::CONTINUATION)?;
        let c: crate::audit::chain::ContinuationRecord = serde_json::from_slice(bytes).ok()?;
        c.rotations
            .iter()
            .find(|r| r.ca == role.name())
            .map(|r| r.stage)
    }

    /// A CA's trust file. One certificate; during a rotation's overlap
    /// (stage, promote) exactly two: the one that signs the leaves first
    /// (returned: what kubeadm reads), then the other, a CA of the same
    /// subject and another key, checked as an intermediate under `root`.
    fn trust_at(&mut self, file: &str, role: CaRole, root: Option<&CaRef<'_>>) -> Option<Cert> {
        use crate::plan::RotateStage;
        let stage = self.rotation(role).filter(|s| *s != RotateStage::Distrust);
        let Some(stage) = stage else {
            return self.cert_at(file);
        };
        let bytes = self.tree.file(file)?;
        let cf = match CertFile::parse(bytes) {
            Ok(cf) => cf,
            Err(e) => {
                self.add(Problem::new(file, "certificates", format!("not PEM: {e}")));
                return None;
            }
        };
        if cf.labels.len() != 2 || cf.certs.len() != 2 {
            self.add(
                Problem::new(
                    file,
                    "certificates",
                    format!(
                        "during the {} CA's rotation ({}) a trust file holds the CA that signs the leaves, then the other",
                        role.name(),
                        stage.name()
                    ),
                )
                .expected("2 certificates")
                .got(cf.labels.len().to_string()),
            );
        }
        let mut certs = cf.certs.into_iter();
        let first = certs.next()?;
        if let Some(other) = certs.next() {
            self.intermediate(file, &other, role, root);
            if matches!((&first.key, &other.key), (Ok(a), Ok(b)) if a == b) {
                self.add(Problem::new(
                    file,
                    "certificates",
                    "holds two certificates for the same key; a rotation's overlap trusts the old key and the new",
                ));
            }
        }
        Some(first)
    }
}
