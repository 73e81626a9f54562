//! The flow of `[leaves] mode = "csr"` and of `[[users]]`: read every node's
//! CSR tree, check all of it before the token signs anything, then sign
//! through the token and write each node's tree (a copy; the input is only
//! ever read) and each user's kubeconfig into the staging directory.
//!
//! Layout read (`csr_dir` is relative to the plan's directory):
//!
//! ```text
//! <csr_dir>/<cp-node>/etc/kubernetes/pki/<name>.csr [+ <name>.key]      as kubeadm certs generate-csr
//! <csr_dir>/<cp-node>/etc/kubernetes/<name>.conf.csr [+ partial <name>.conf with client-key-data]
//! <csr_dir>/<cp-node>/etc/kubernetes/pki/sa.pub [+ sa.key]               optional: the node's own SA key
//! <csr_dir>/<worker>/etc/kubernetes/kubelet.conf.csr [+ partial kubelet.conf]
//! ```
//!
//! Written: `nodes/<node>/etc/kubernetes/` with each CSR (and key brought
//! beside it) as its one PEM block encoded again (never the bytes as read), `<name>.crt` beside each `pki/<name>.csr`, each
//! kubeconfig completed (without `client-key-data` when the node kept its
//! key), the CA files, and sa.key/sa.pub; `users/<name>.conf` per user.
//!
//! Policy: all or nothing. A node with one refused CSR gets nothing signed,
//! and because a ceremony is reviewed as a whole, one refusal anywhere stops
//! the run before the token signs anything (exit 2): `ceremony check` lists
//! every CSR and refusal beforehand.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::csr::ca::{CheckedCaCsr, check_ca_csr};
use crate::csr::policy::{self as policy, CheckedCsr, NodeCheck, Refusal};
use crate::error::CeremonyError;
use crate::fsread::{Links, ReadError, read_regular};
use crate::keytype::KeyType;
use crate::plan::duration::format_lifetime;
use crate::plan::inputs::{Inputs, Kind as InputKind};
use crate::plan::{CaRole, ClusterSpec, LeafMode, LoadedPlan};
use crate::profile::kubeadm::{self, LeafOutput, LeafSpec, SYSTEM_MASTERS};
use crate::x509::profile::{ID_KP_CLIENT_AUTH, eku_name};

/// Key types a CSR may carry: kubeadm's five (RSA 2048/3072/4096, P-256, P-384).
pub const ALLOWED_KEYS: [KeyType; 5] = KeyType::ALL;

/// Key types a node's CSR may carry: the plan's `cluster.leaf_key` (kubeadm's
/// encryptionAlgorithm, with which the nodes made their keys) when the plan
/// sets it, else any of kubeadm's five. Users' CSRs may carry any of the five.
pub fn node_key_types(loaded: &LoadedPlan) -> Vec<KeyType> {
    match (&loaded.plan.cluster, loaded.plan.leaf_key_explicit) {
        (Some(cl), true) => vec![cl.leaf_key],
        _ => ALLOWED_KEYS.to_vec(),
    }
}

/// Most files read from one node's tree.
const MAX_FILES: usize = 1000;

/// One node's tree as read and checked.
pub struct NodeIntake {
    pub check: NodeCheck,
    /// The bytes that were read and checked. The bundle holds what was
    /// decided from them (`check`): each CSR and key encoded again as one
    /// PEM block, never these bytes as they came.
    pub files: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

/// One `[[users]]` entry as checked.
pub struct UserIntake {
    pub name: String,
    pub spec: LeafSpec,
    pub validity: Duration,
    /// The CSR path as the plan gives it, if the user brought one.
    pub csr_file: Option<String>,
    /// SHA-256 of the CSR's bytes as read and checked.
    pub csr_sha256: Option<[u8; 32]>,
    pub checked: Option<CheckedCsr>,
    key_id: Option<Vec<u8>>,
    pub refusals: Vec<Refusal>,
    pub masters: bool,
}

/// A delegated CA's request (or the kubelet signer's) as read and checked.
pub struct CaIntake {
    /// The delegated CA; for the kubelet signer, the CA that signs it.
    pub role: CaRole,
    /// The path as the plan gives it.
    pub file: String,
    /// SHA-256 of the bytes read, when they could be read.
    pub sha256: Option<[u8; 32]>,
    pub checked: Result<CheckedCaCsr, Vec<Refusal>>,
}

/// Everything read and decided before the token signs anything.
pub struct Intake {
    pub csr_dir: Option<PathBuf>,
    pub nodes: Vec<NodeIntake>,
    pub users: Vec<UserIntake>,
    /// The delegated CAs' requests, in plan order.
    pub cas: Vec<CaIntake>,
    /// The kubelet signer's request, if the plan has one.
    pub kubelet_signer: Option<CaIntake>,
    /// Things the operator should see that do not stop the run.
    pub warnings: Vec<String>,
}

impl Intake {
    /// Adds what was read and checked to the ceremony's inputs: every file
    /// of each node's tree the checks used (the ignored ones are neither
    /// signed from nor copied), each user's CSR. Paths as the plan names
    /// them: under `leaves.csr_dir`, and each user's `csr`.
    pub fn add_inputs(&self, loaded: &LoadedPlan, inputs: &mut Inputs) {
        if let Some(dir) = &loaded.plan.csr_dir {
            for n in &self.nodes {
                for (rel, bytes) in &n.files {
                    if n.check.ignored.contains(rel) {
                        continue;
                    }
                    let path = dir.join(&n.check.node).join("etc/kubernetes").join(rel);
                    inputs.add(
                        InputKind::of_node_file(rel),
                        &path.display().to_string(),
                        bytes,
                    );
                }
            }
        }
        for u in &self.users {
            if let (Some(f), Some(sha)) = (&u.csr_file, u.csr_sha256) {
                inputs.add_sha256(InputKind::UserCsr, f, sha);
            }
        }
        for c in self.cas.iter().chain(&self.kubelet_signer) {
            if let Some(sha) = c.sha256 {
                inputs.add_sha256(InputKind::CaCsr, &c.file, sha);
            }
        }
    }

    /// The checked request of a delegated CA.
    pub fn ca(&self, role: CaRole) -> Option<&CheckedCaCsr> {
        self.cas
            .iter()
            .find(|c| c.role == role)
            .and_then(|c| c.checked.as_ref().ok())
    }

    /// Every refusal of a delegated CA's request.
    pub fn ca_refusals(&self) -> Vec<Refusal> {
        self.cas
            .iter()
            .chain(&self.kubelet_signer)
            .filter_map(|c| c.checked.as_ref().err())
            .flatten()
            .cloned()
            .collect()
    }

    pub fn refusals(&self) -> Vec<Refusal> {
        self.nodes
            .iter()
            .flat_map(|n| n.check.refusals())
            .chain(self.users.iter().flat_map(|u| u.refusals.iter().cloned()))
            .collect()
    }
}

fn plan_dir(loaded: &LoadedPlan) -> PathBuf {
    loaded
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// `<plan dir>/<leaves.csr_dir>` when the plan is in CSR mode.
pub fn csr_dir(loaded: &LoadedPlan) -> Option<PathBuf> {
    let cl = loaded.plan.cluster.as_ref()?;
    if cl.mode != LeafMode::Csr {
        return None;
    }
    let dir = loaded.plan.csr_dir.as_ref()?;
    Some(plan_dir(loaded).join(dir))
}

fn usage(message: String, hint: &str) -> CeremonyError {
    CeremonyError::Usage {
        message,
        hint: hint.into(),
    }
}

/// Reads a user's CSR, refusing anything larger than `MAX_FILE_BYTES` and a
/// symbolic link: a CSR is a file the user hands over, never a pointer to
/// one elsewhere on the ceremony machine.
fn read_bounded(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    read_capped(path, Links::Refuse)
}

/// One file through the shared bounded reader, its failure in a refusal's
/// words (the refusal names the file itself).
fn read_capped(path: &Path, links: Links) -> Result<Zeroizing<Vec<u8>>, String> {
    read_regular(path, policy::MAX_FILE_BYTES, links).map_err(|e| match e {
        // O_NOFOLLOW's answer to a link.
        ReadError::Io { source, .. }
            if links == Links::Refuse
                && source.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) =>
        {
            "a symbolic link".into()
        }
        ReadError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            "no such file".into()
        }
        ReadError::Io { source, .. } => format!("unreadable ({source})"),
        ReadError::NotRegular { .. } => "not a regular file".into(),
        ReadError::TooLarge { .. } => "a file larger than 1 MiB".into(),
    })
}

type Tree = (BTreeMap<String, Zeroizing<Vec<u8>>>, Vec<(String, String)>);

/// Every regular file under `root` (relative path → bytes), and what could
/// not be read as one (symbolic links are never followed).
fn read_tree(root: &Path) -> Result<Tree, std::io::Error> {
    let mut files = BTreeMap::new();
    let mut problems = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut entries: Vec<fs::DirEntry> =
            fs::read_dir(root.join(&rel))?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let r = rel.join(entry.file_name());
            let Some(name) = r.to_str().map(str::to_string) else {
                problems.push((
                    r.to_string_lossy().into_owned(),
                    "a file name that is not UTF-8".to_string(),
                ));
                continue;
            };
            let ft = entry.file_type()?;
            if ft.is_symlink() {
                problems.push((name, "a symbolic link".into()));
            } else if ft.is_dir() {
                stack.push(r);
            } else if !ft.is_file() {
                problems.push((name, "not a regular file".into()));
            } else if files.len() >= MAX_FILES {
                problems.push((name, format!("more than {MAX_FILES} files in the tree")));
                return Ok((files, problems));
            } else {
                // Listed as a regular file: a link swapped in since is refused.
                match read_capped(&root.join(&r), Links::Refuse) {
                    Ok(bytes) => {
                        files.insert(name, bytes);
                    }
                    Err(e) => problems.push((name, e)),
                }
            }
        }
    }
    Ok((files, problems))
}

fn check_node_dir(
    dir: &Path,
    node: &str,
    control_plane: bool,
    specs: &[LeafSpec],
    allowed: &[KeyType],
) -> NodeIntake {
    let rel_root = format!("{node}/etc/kubernetes");
    let prefix = format!("{rel_root}/");
    let missing = |got: String| NodeIntake {
        check: NodeCheck::missing_dir(node, control_plane, &rel_root, got),
        files: BTreeMap::new(),
    };
    // Only csr_dir itself, which the plan names, is resolved as the system
    // resolves it (a mounted medium). Below it the tree comes from the nodes:
    // a link at <node>, <node>/etc or <node>/etc/kubernetes would let one
    // node's medium point the ceremony at another node's tree or at any
    // file of the ceremony machine, so none is followed.
    for rel in [node.to_string(), format!("{node}/etc"), rel_root.clone()] {
        match fs::symlink_metadata(dir.join(&rel)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return missing("no such directory".into());
            }
            Err(e) => return missing(format!("unreadable ({e})")),
            Ok(m) if m.file_type().is_symlink() => {
                return NodeIntake {
                    check: NodeCheck::refused_dir(
                        node,
                        control_plane,
                        Refusal::new(
                            rel,
                            "directory",
                            "a directory: no symbolic link under csr_dir is followed",
                            "a symbolic link",
                        ),
                    ),
                    files: BTreeMap::new(),
                };
            }
            Ok(m) if !m.is_dir() => return missing("not a directory".into()),
            Ok(_) => {}
        }
    }
    let root = dir.join(&rel_root);
    let (files, problems) = match read_tree(&root) {
        Ok(t) => t,
        Err(e) => return missing(format!("unreadable ({e})")),
    };
    let mut check = policy::check_node(node, control_plane, &prefix, specs, &files, allowed);
    for (rel, got) in problems {
        check.node_refusals.push(Refusal::new(
            format!("{prefix}{rel}"),
            "file",
            "a regular file",
            got,
        ));
    }
    NodeIntake { check, files }
}

fn user_spec(cl: &ClusterSpec, name: &str, groups: &[String]) -> LeafSpec {
    LeafSpec {
        path: format!("users/{name}.conf"),
        output: LeafOutput::Kubeconfig {
            server: kubeadm::cluster_server(cl, cl.control_plane.first().map(|n| n.address))
                .unwrap_or_default(),
            cluster: cl.name.clone(),
        },
        issuer: CaRole::Kubernetes,
        cn: name.to_string(),
        orgs: groups.to_vec(),
        eku: vec![ID_KP_CLIENT_AUTH],
        sans: Vec::new(),
    }
}

fn intake_users(loaded: &LoadedPlan) -> Result<Vec<UserIntake>, CeremonyError> {
    let users = &loaded.plan.users;
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let hint = "fix [[users]] in the plan and run `ceremony check` again; nothing was touched";
    let Some(cl) = &loaded.plan.cluster else {
        return Err(usage(
            "users: a user kubeconfig needs the [cluster] section (its server and name)".into(),
            hint,
        ));
    };
    let mut out = Vec::new();
    // The plan's rules on users (names, groups, validity) were checked by plan::load.
    for u in users {
        let spec = user_spec(cl, &u.name, &u.groups);
        let mut user = UserIntake {
            name: u.name.clone(),
            spec,
            validity: u.validity,
            csr_file: None,
            csr_sha256: None,
            checked: None,
            key_id: None,
            refusals: Vec::new(),
            masters: u.groups.iter().any(|g| g == SYSTEM_MASTERS),
        };
        if let Some(csr) = &u.csr {
            let shown = csr.display().to_string();
            let path = plan_dir(loaded).join(csr);
            match read_bounded(&path) {
                Err(got) => user.refusals.push(Refusal::new(
                    &shown,
                    "file",
                    format!("the CSR of user {}", u.name),
                    got,
                )),
                Ok(bytes) => {
                    user.csr_sha256 = Some(crate::x509::sha256(&bytes));
                    let c = policy::check_csr(&shown, &bytes, &user.spec, &ALLOWED_KEYS);
                    user.key_id = c.key.as_ref().map(|(_, k)| k.spki_der.clone());
                    user.checked = c.accepted();
                    user.refusals = c.refusals;
                }
            }
            user.csr_file = Some(shown);
        }
        out.push(user);
    }
    Ok(out)
}

/// Reads and checks every CSR of the plan (nodes in CSR mode, users) and
/// decides what may be signed: of the nodes in `only` (a continuing
/// ceremony's renewed and added nodes; None: every node of the plan). The
/// others need no CSR: their trees are not read, and one brought anyway is
/// ignored, with a warning. Reads files only; never touches a token.
pub fn intake_of(
    loaded: &LoadedPlan,
    only: Option<&BTreeSet<String>>,
) -> Result<Intake, CeremonyError> {
    let wanted = |n: &str| only.is_none_or(|o| o.contains(n));
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let dir = csr_dir(loaded);
    if let (Some(cl), Some(dir)) = (&loaded.plan.cluster, &dir) {
        if !dir.is_dir() {
            return Err(usage(
                format!(
                    "leaves.csr_dir: {} is not a readable directory",
                    dir.display()
                ),
                "bring the nodes' CSR trees (<csr_dir>/<node>/etc/kubernetes) or fix leaves.csr_dir; \
                 it is relative to the plan",
            ));
        }
        let allowed = node_key_types(loaded);
        let mut left = BTreeSet::new();
        for (i, n) in cl.control_plane.iter().enumerate() {
            if !wanted(&n.name) {
                left.insert(n.name.as_str());
                continue;
            }
            let specs = kubeadm::control_plane_leaves(cl, i);
            nodes.push(check_node_dir(dir, &n.name, true, &specs, &allowed));
        }
        for w in &cl.workers {
            if !wanted(w) {
                left.insert(w.as_str());
                continue;
            }
            let specs = kubeadm::worker_leaves(cl, w);
            nodes.push(check_node_dir(dir, w, false, &specs, &allowed));
        }
        // Directories of nodes the plan does not have, or that this
        // ceremony leaves untouched, are left alone.
        let known: BTreeSet<&str> = nodes.iter().map(|n| n.check.node.as_str()).collect();
        if let Ok(rd) = fs::read_dir(dir) {
            let mut extra: Vec<String> = rd
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !known.contains(n.as_str()))
                .collect();
            extra.sort();
            for x in extra {
                let why = if left.contains(x.as_str()) {
                    "is a node this ceremony leaves untouched (not in [renew])"
                } else {
                    "is not a node of the plan"
                };
                warnings.push(format!("{} {why}; it is ignored", dir.join(x).display()));
            }
        }
        for n in &nodes {
            for f in &n.check.ignored {
                warnings.push(format!(
                    "{}/etc/kubernetes/{f} is neither a CSR nor a file kubeadm writes beside one; it is not copied",
                    n.check.node
                ));
            }
        }
        let checks: Vec<NodeCheck> = nodes.iter().map(|n| n.check.clone()).collect();
        for (i, r) in policy::sa_consistency(&checks, &|node| format!("{node}/etc/kubernetes/")) {
            if let Some(n) = nodes.get_mut(i) {
                n.check.node_refusals.push(r);
            }
        }
    }
    let mut users = intake_users(loaded)?;
    for u in users.iter().filter(|u| u.masters) {
        warnings.push(format!(
            "user {} is in system:masters, which bypasses RBAC entirely and cannot be revoked \
             but by rotating the kubernetes CA (allow_masters = true in the plan)",
            u.name
        ));
    }

    // Each CA its own key: two requests of one key would make one domain's
    // holder the other's too.
    let mut cas = intake_cas(loaded);
    let mut kubelet_signer = intake_signer(loaded);
    let mut seen: Vec<(Vec<u8>, String)> = Vec::new();
    for c in cas.iter_mut().chain(kubelet_signer.iter_mut()) {
        let Ok(checked) = &c.checked else {
            continue;
        };
        let spki = der::Encode::to_der(&checked.spki).unwrap_or_default();
        match seen.iter().find(|(k, _)| *k == spki) {
            Some((_, other)) => {
                c.checked = Err(vec![Refusal::new(
                    &c.file,
                    "key",
                    "a key of its own (each CA its own key)",
                    format!("the key of {other}"),
                )]);
            }
            None => seen.push((spki, c.file.clone())),
        }
    }

    // One key per certificate, across every node and user.
    enum Owner {
        Node(usize),
        User(usize),
    }
    let mut keys = Vec::new();
    let mut owners = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for k in &n.check.key_ids {
            keys.push(k.clone());
            owners.push(Owner::Node(i));
        }
    }
    for (j, u) in users.iter().enumerate() {
        if let (Some(f), Some(id)) = (&u.csr_file, &u.key_id) {
            keys.push((f.clone(), id.clone()));
            owners.push(Owner::User(j));
        }
    }
    for (k, r) in policy::shared_keys(&keys) {
        match owners.get(k) {
            Some(Owner::Node(i)) => {
                if let Some(n) = nodes.get_mut(*i) {
                    n.check.node_refusals.push(r);
                }
            }
            Some(Owner::User(j)) => {
                if let Some(u) = users.get_mut(*j) {
                    u.refusals.push(r);
                }
            }
            None => {}
        }
    }
    // All or nothing per node: a node with a refusal has nothing to sign.
    for n in &mut nodes {
        if !n.check.refusals().is_empty() {
            n.check.accepted.clear();
        }
    }
    for u in &mut users {
        if !u.refusals.is_empty() {
            u.checked = None;
        }
    }
    Ok(Intake {
        csr_dir: dir,
        nodes,
        users,
        cas,
        kubelet_signer,
        warnings,
    })
}

/// The kubelet signer's request, checked against its subject and key type.
fn intake_signer(loaded: &LoadedPlan) -> Option<CaIntake> {
    let s = loaded.plan.kubelet_signer.as_ref()?;
    Some(read_ca_request(
        loaded,
        CaRole::Kubernetes,
        &s.csr,
        "the kubelet signer",
        &s.subject,
        s.key,
    ))
}

fn read_ca_request(
    loaded: &LoadedPlan,
    role: CaRole,
    csr: &Path,
    what: &str,
    subject: &x509_cert::name::Name,
    key: KeyType,
) -> CaIntake {
    let file = csr.display().to_string();
    let (sha256, checked) = match read_bounded(&plan_dir(loaded).join(csr)) {
        Err(got) => (
            None,
            Err(vec![Refusal::new(
                &file,
                "file",
                format!("the certificate request of {what}"),
                got,
            )]),
        ),
        Ok(bytes) => (
            Some(crate::x509::sha256(&bytes)),
            check_ca_csr(&file, &bytes, subject, key),
        ),
    };
    CaIntake {
        role,
        file,
        sha256,
        checked,
    }
}

/// Each delegated CA's request, read from the plan's directory and checked
/// against the plan's subject and key type for that CA.
fn intake_cas(loaded: &LoadedPlan) -> Vec<CaIntake> {
    let plan = &loaded.plan;
    plan.delegated
        .iter()
        .map(|d| {
            let spec = plan.ca(d.role);
            let what = format!("the {} CA", d.role.name());
            read_ca_request(loaded, d.role, &d.csr, &what, &spec.subject, spec.key)
        })
        .collect()
}

/// `intake_of`, failing with every refusal when there is one (its warnings
/// are for the caller to show). `run` calls it before the token is opened,
/// and `write_outputs` again (re-reading) right before signing.
pub fn preflight(
    loaded: &LoadedPlan,
    only: Option<&BTreeSet<String>>,
) -> Result<Intake, CeremonyError> {
    let intake = intake_of(loaded, only)?;
    let refusals = intake.ca_refusals();
    if !refusals.is_empty() {
        return Err(CeremonyError::CaCsrRefused(refusals));
    }
    let refusals = intake.refusals();
    if !refusals.is_empty() {
        return Err(CeremonyError::CsrRefused(refusals));
    }
    Ok(intake)
}

fn describe(spec: &LeafSpec) -> String {
    let mut s = format!("CN={}", spec.cn);
    if !spec.orgs.is_empty() {
        s.push_str(&format!(" O={}", spec.orgs.join("+")));
    }
    let eku: Vec<String> = spec.eku.iter().map(eku_name).collect();
    s.push_str(&format!(
        " [{}] by {} CA",
        eku.join(", "),
        spec.issuer.name()
    ));
    s
}

/// What `ceremony check` shows of the CSRs and users: per node each CSR found
/// (or missing), the profile it maps to, and what would be refused. Reads
/// files; touches no token.
pub fn check_report(loaded: &LoadedPlan, only: Option<&BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    let in_csr_mode = csr_dir(loaded).is_some();
    if !in_csr_mode && loaded.plan.users.is_empty() {
        return out;
    }
    let intake = match intake_of(loaded, only) {
        Ok(i) => i,
        Err(e) => {
            out.push(String::new());
            out.push(format!("CSRs and users: {e}"));
            return out;
        }
    };
    if let Some(dir) = &intake.csr_dir {
        out.push(String::new());
        out.push(format!(
            "CSRs (leaves.mode = \"csr\") from {}: every CSR is checked before the token signs anything;",
            dir.display()
        ));
        out.push(
            "  one refusal anywhere stops `ceremony run` before signing (exit 2). Certificates take their subject,"
                .into(),
        );
        out.push(
            "  SANs and extensions from the profile, only the public key from the CSR.".into(),
        );
        let mut signed = 0;
        for n in &intake.nodes {
            let c = &n.check;
            out.push(format!(
                "  {} node {} ({}):",
                if c.control_plane {
                    "control-plane"
                } else {
                    "worker"
                },
                c.node,
                dir.join(&c.node).join("etc/kubernetes").display()
            ));
            for r in &c.node_refusals {
                out.push(format!("    refused: {r}"));
            }
            for e in &c.entries {
                let accepted = c.accepted.iter().find(|a| a.csr_file == e.file);
                let status = match (e.found, accepted) {
                    (false, _) => "missing".to_string(),
                    (true, Some(a)) => {
                        let mut s = format!("ok, {}", a.csr.key_type);
                        match &a.spec.output {
                            LeafOutput::Kubeconfig { .. } if a.client_key_pem.is_some() => {
                                s.push_str(", keeps the node's client-key-data");
                            }
                            LeafOutput::Kubeconfig { .. } => {
                                s.push_str(", no client-key-data (the node adds its key)")
                            }
                            LeafOutput::CertAndKey if a.key_file.is_some() => {
                                s.push_str(", key file copied");
                            }
                            LeafOutput::CertAndKey => {}
                        }
                        s
                    }
                    (true, None) if e.refusals.is_empty() => {
                        "not signed: another file of this node was refused".to_string()
                    }
                    (true, None) => "refused".to_string(),
                };
                if accepted.is_some() {
                    signed += 1;
                }
                out.push(format!(
                    "    {:<36} -> {:<26} {status}",
                    e.file,
                    e.profile.as_deref().unwrap_or("(no profile)")
                ));
                for r in &e.refusals {
                    out.push(format!("      refused: {r}"));
                }
            }
            if c.control_plane {
                out.push(format!(
                    "    sa.key/sa.pub: {}",
                    if c.sa.is_some() {
                        "the node's own (pki/sa.pub), copied"
                    } else {
                        "made at the ceremony, identical on every control-plane node"
                    }
                ));
            }
            for f in &c.ignored {
                out.push(format!("    ignored, not copied: {f}"));
            }
        }
        let refused = intake.refusals().len();
        if refused == 0 {
            out.push(format!(
                "  => {signed} CSRs of {} nodes would be signed.",
                intake.nodes.len()
            ));
        } else {
            out.push(format!(
                "  => {refused} refused: `ceremony run` would stop before signing anything (exit 2)."
            ));
        }
    }
    if !intake.users.is_empty() {
        out.push(String::new());
        out.push("Users (kubeconfigs under users/):".into());
        for u in &intake.users {
            let key = match &u.csr_file {
                None => format!(
                    "key {} made at the ceremony",
                    loaded
                        .plan
                        .cluster
                        .as_ref()
                        .map_or("?".into(), |c| c.leaf_key.to_string())
                ),
                Some(f) if u.refusals.is_empty() => {
                    format!("its CSR {f}: ok (no client-key-data: the user adds the key)")
                }
                Some(f) => format!("its CSR {f}: refused"),
            };
            out.push(format!(
                "  {:<16} {}, validity {}, {key} -> {}",
                u.name,
                describe(&u.spec),
                format_lifetime(u.validity),
                u.spec.path
            ));
            for r in &u.refusals {
                out.push(format!("    refused: {r}"));
            }
        }
    }
    for w in &intake.warnings {
        out.push(format!("warning: {w}"));
    }
    out
}
