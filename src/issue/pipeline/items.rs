//! What the bundle holds, in plan order: each node's own files, then its
//! leaves. And a leaf's way through the pipeline: its job, its key and TBS,
//! and once signed and checked, its files (key and certificate, or a
//! kubeconfig) and its record.

use zeroize::Zeroizing;

use super::{Ctx, ca};
use crate::audit::Event;
use crate::bundle::kubeadm_config::{NodeKind, Renderer};
use crate::bundle::kubeconfig::{self, Kubeconfig};
use crate::bundle::layout::{self, node_root};
use crate::bundle::write;
use crate::error::CeremonyError;
use crate::issue::ca::CaState;
use crate::issue::leaf;
use crate::keys::leaf::{self as keys, LeafKey};
use crate::plan::{CaRole, ClusterSpec};
use crate::profile::kubeadm::{self, CA_FILES, LeafOutput, LeafSpec};
use crate::x509::{self, Issued};

/// One file for the staging directory: path under OUT, contents, mode.
pub(super) type File = (String, Zeroizing<Vec<u8>>, u32);

/// One leaf to issue.
pub(super) struct Job {
    /// Its place in plan order.
    pub(super) idx: usize,
    pub(super) node: String,
    pub(super) spec: LeafSpec,
    pub(super) serial: Vec<u8>,
    /// Some(i) on the last leaf of control-plane node i.
    pub(super) end_of_cp: Option<usize>,
}

/// A checked certificate and its files, ready to record and write.
pub(super) struct Leaf {
    /// Its `certificate_issued` record (taken when the batch is recorded).
    pub(super) event: Option<Event>,
    pub(super) files: Vec<File>,
}

/// A leaf between its key and its signature: the TBS built, to be signed.
pub(super) struct Pending {
    pub(super) job: Job,
    key: LeafKey,
    pub(super) tbs: leaf::Prepared,
}

/// The first half of a leaf: its validity and profile checked (before its
/// key is made), its key, its TBS.
pub(super) fn prepare(ctx: &Ctx<'_>, mut job: Job) -> Result<Pending, CeremonyError> {
    let (cl, spec) = (ctx.cl, &job.spec);
    let issuer = ca(ctx.cas, spec.issuer);
    // The profile needs the key's type only: a leaf that cannot be issued
    // costs no key.
    let profiled = leaf::profile(spec, cl.leaf_key, cl.leaf_validity, issuer, ctx.now)?;
    let key: LeafKey = keys::generate(cl.leaf_key)?;
    let serial = std::mem::take(&mut job.serial);
    let tbs = leaf::prepare(profiled, &key.spki, issuer, serial)?;
    Ok(Pending { job, key, tbs })
}

/// The certificate around its signature, checked.
pub(super) fn check(
    ctx: &Ctx<'_>,
    p: &mut Pending,
    signature: &[u8],
) -> Result<Issued, CeremonyError> {
    let issuer = ca(ctx.cas, p.job.spec.issuer);
    leaf::finish(&mut p.tbs, &p.key.spki, issuer, signature)
}

/// A checked certificate's files and record. Writes nothing.
pub(super) fn render(ctx: &Ctx<'_>, p: Pending, issued: Issued) -> Leaf {
    let (spec, node, key) = (&p.job.spec, p.job.node.as_str(), &p.key);
    let base = node_root(node);
    let cert_pem = x509::to_pem(&issued.der);
    let files = match &spec.output {
        LeafOutput::CertAndKey => vec![
            (
                kubeadm::node_file(&base, &format!("{}.key", spec.path)),
                Zeroizing::new(key.private_pem.as_bytes().to_vec()),
                write::SECRET,
            ),
            (
                kubeadm::node_file(&base, &format!("{}.crt", spec.path)),
                Zeroizing::new(cert_pem.into_bytes()),
                write::PUBLIC,
            ),
        ],
        LeafOutput::Kubeconfig { server, cluster } => {
            let text = kubeconfig::render(&Kubeconfig {
                cluster,
                server,
                user: &spec.cn,
                ca_data: &ctx.kube_ca_data,
                cert_pem: &cert_pem,
                key_pem: Some(&key.private_pem),
            });
            let mut text = text;
            // The text's own buffer, moved (still wiped on drop), not copied.
            vec![(
                kubeadm::node_file(&base, &spec.path),
                Zeroizing::new(std::mem::take(&mut *text).into_bytes()),
                write::SECRET,
            )]
        }
    };
    let file = match &spec.output {
        LeafOutput::CertAndKey => kubeadm::node_file(&base, &format!("{}.crt", spec.path)),
        LeafOutput::Kubeconfig { .. } => kubeadm::node_file(&base, &spec.path),
    };
    let event = leaf::issued_event(spec, Some(node), &file, &issued);
    Leaf {
        event: Some(event),
        files,
    }
}

/// An item of the bundle as the plan lists it, not yet issued: a node's own
/// files, or one of its leaves (each node's files come before its leaves).
#[allow(clippy::large_enum_variant)] // moved a few times per leaf; a box only adds an allocation
pub(super) enum PlanItem {
    /// CA certificates and the node's kubeadm-config.yaml, and on a
    /// control-plane node (Some(its root)) the service-account pair after
    /// them, added when written (`SaKeyPair`).
    NodeFiles(Vec<File>, Option<String>),
    Leaf(Job),
    /// A node's files that could not be made.
    Failed(CeremonyError),
}

/// A node's kubeadm-config.yaml, as a file of its own (0600: the installer
/// writes the bootstrap token into it).
fn kubeadm_config(
    configs: &Renderer<'_>,
    name: &str,
    kind: NodeKind,
) -> Result<File, CeremonyError> {
    let text = configs
        .render(name, kind)
        .map_err(CeremonyError::Internal)?;
    Ok((
        layout::kubeadm_config(name),
        Zeroizing::new(text.into_bytes()),
        write::SECRET,
    ))
}

/// Every item of the bundle, lazily (nothing per worker is kept).
pub(super) fn items<'a>(
    cl: &'a ClusterSpec,
    cas: &'a [CaState],
    configs: &'a Renderer<'a>,
    only: Option<&'a std::collections::BTreeSet<String>>,
) -> impl Iterator<Item = PlanItem> + 'a {
    // A continuing ceremony issues some nodes; each keeps its place in the
    // plan (the first control-plane node alone has super-admin.conf).
    let wanted = move |name: &str| only.is_none_or(|o| o.contains(name));
    // Each CA's PEM once, copied into every node that holds it.
    let pems: std::rc::Rc<Vec<(CaRole, Vec<u8>)>> = std::rc::Rc::new(
        cas.iter()
            .map(|c| (c.role, c.trust_pem().into_bytes()))
            .collect(),
    );
    let pem_of = |pems: &[(CaRole, Vec<u8>)], role| {
        let bytes = pems
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, p)| p.clone());
        Zeroizing::new(bytes.unwrap_or_default())
    };
    let cp_pems = std::rc::Rc::clone(&pems);
    let pem = move |role| pem_of(&cp_pems, role);
    let worker_pem = move |role| pem_of(&pems, role);
    let cp = cl
        .control_plane
        .iter()
        .enumerate()
        .filter(move |(_, node)| wanted(&node.name))
        .flat_map(move |(i, node)| {
            let base = node_root(&node.name);
            let mut files: Vec<File> = CA_FILES
                .iter()
                .map(|(file, role)| (format!("{base}/{file}"), pem(*role), write::PUBLIC))
                .collect();
            let kind = match i {
                0 => NodeKind::Init,
                _ => NodeKind::JoinControlPlane(node.address),
            };
            let own = match kubeadm_config(configs, &node.name, kind) {
                Ok(config) => {
                    files.push(config);
                    PlanItem::NodeFiles(files, Some(base))
                }
                Err(e) => PlanItem::Failed(e),
            };
            let leaves = kubeadm::control_plane_leaves(cl, i);
            let last = leaves.len().saturating_sub(1);
            let name = node.name.clone();
            std::iter::once(own).chain(leaves.into_iter().enumerate().map(move |(k, spec)| {
                PlanItem::Leaf(Job {
                    idx: 0,
                    node: name.clone(),
                    spec,
                    serial: Vec::new(),
                    end_of_cp: (k == last).then_some(i),
                })
            }))
        });
    let workers = cl
        .workers
        .iter()
        .filter(move |n| wanted(n))
        .flat_map(move |name| {
            let base = node_root(name);
            let ca = (
                format!("{base}/pki/ca.crt"),
                worker_pem(CaRole::Kubernetes),
                write::PUBLIC,
            );
            let own = match kubeadm_config(configs, name, NodeKind::Worker) {
                Ok(config) => PlanItem::NodeFiles(vec![ca, config], None),
                Err(e) => PlanItem::Failed(e),
            };
            std::iter::once(own).chain(kubeadm::worker_leaves(cl, name).into_iter().map(|spec| {
                PlanItem::Leaf(Job {
                    idx: 0,
                    node: name.clone(),
                    spec,
                    serial: Vec::new(),
                    end_of_cp: None,
                })
            }))
        });
    cp.chain(workers)
}
