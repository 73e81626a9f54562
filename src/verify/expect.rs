//! What each certificate of a node must be: either exactly the plan's
//! `LeafSpec` (from `profile::kubeadm`, the one source of truth), or, without
//! a plan, the parts kubeadm fixes (README table): CN, O (either kubeadm
//! generation), EKU, the SANs every cluster has.
//!
//! Pure: no I/O.

use std::collections::BTreeSet;
use std::net::IpAddr;

use der::oid::ObjectIdentifier;

use crate::keytype::KeyType;
use crate::plan::{CaRole, ClusterSpec};
use crate::profile::kubeadm::{
    self, CLUSTER_ADMINS, LeafOutput, LeafSpec, SYSTEM_MASTERS, SYSTEM_NODES,
};
use crate::x509::profile::{ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH};

/// Which SANs a certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SanRule {
    /// Exactly these (order-insensitive).
    Exact(BTreeSet<String>),
    /// At least these, and for each prefix at least one SAN starting with it.
    AtLeast {
        names: BTreeSet<String>,
        prefixes: Vec<String>,
    },
}

/// One certificate (a `.crt`/`.key` pair or a kubeconfig) a node must hold.
#[derive(Debug, Clone)]
pub struct Expect {
    /// "pki/apiserver" (a pair, without extension) or "admin.conf" (a kubeconfig).
    pub path: String,
    pub kubeconfig: bool,
    /// Without a plan, super-admin.conf may or may not be on a given node.
    pub required: bool,
    pub issuer: CaRole,
    /// None when not known (etcd's CN without a node name).
    pub cn: Option<String>,
    /// The accepted Organization sets, each sorted.
    pub orgs: Vec<Vec<String>>,
    pub eku: Vec<ObjectIdentifier>,
    pub sans: SanRule,
    /// The plan's leaf_key; None without a plan.
    pub key_type: Option<KeyType>,
    /// Kubeconfigs with a plan: the exact server URL and cluster name.
    pub server: Option<String>,
    pub cluster: Option<String>,
}

impl Expect {
    pub fn cert_file(&self) -> String {
        format!("{}.crt", self.path)
    }

    pub fn key_file(&self) -> String {
        format!("{}.key", self.path)
    }

    /// Where `kubeadm certs generate-csr` puts the request: `pki/<name>.csr`, `<name>.conf.csr`.
    pub fn csr_file(&self) -> String {
        format!("{}.csr", self.path)
    }

    /// kubeadm's name in `certs check-expiration` ("etcd-server", "admin.conf").
    pub fn display_name(&self) -> String {
        if self.kubeconfig {
            return self.path.clone();
        }
        if self.path == kubeadm::KUBELET_SERVING {
            return "kubelet-serving".into();
        }
        self.path.trim_start_matches("pki/").replace('/', "-")
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// The exact expectation of a plan's leaf.
pub fn from_spec(spec: &LeafSpec, cl: &ClusterSpec) -> Expect {
    let (kubeconfig, server, cluster) = match &spec.output {
        LeafOutput::CertAndKey => (false, None, None),
        LeafOutput::Kubeconfig { server, cluster } => {
            (true, Some(server.clone()), Some(cluster.clone()))
        }
    };
    Expect {
        path: spec.path.clone(),
        kubeconfig,
        required: true,
        issuer: spec.issuer,
        cn: Some(spec.cn.clone()),
        orgs: vec![sorted(&spec.orgs)],
        eku: spec.eku.clone(),
        sans: SanRule::Exact(spec.sans.iter().map(|s| s.to_string()).collect()),
        key_type: Some(cl.leaf_key),
        server,
        cluster,
    }
}

/// Where a node stands in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanNode {
    ControlPlane(usize),
    Worker,
}

/// The plan's node of this name, if any.
pub fn plan_node(cl: &ClusterSpec, name: &str) -> Option<PlanNode> {
    if let Some(i) = cl.control_plane.iter().position(|n| n.name == name) {
        return Some(PlanNode::ControlPlane(i));
    }
    cl.workers
        .iter()
        .any(|w| w == name)
        .then_some(PlanNode::Worker)
}

/// Every certificate the plan gives this node. Those of a delegated CA are
/// kubeadm's to make on the node: not required, and checked when present
/// (their key type is kubeadm's encryptionAlgorithm's).
pub fn from_plan(cl: &ClusterSpec, name: &str, node: PlanNode) -> Vec<Expect> {
    let mut specs = match node {
        PlanNode::ControlPlane(i) => kubeadm::kubeadm_control_plane_leaves(cl, i),
        PlanNode::Worker => kubeadm::worker_leaves(cl, name),
    };
    if let PlanNode::Worker = node
        && !cl.issues(CaRole::Kubernetes)
    {
        // A worker of a delegated kubernetes CA joins by TLS bootstrap: its
        // kubelet.conf then names certificate files, which are not checked.
        specs.clear();
    }
    specs
        .iter()
        .map(|s| {
            let mut e = from_spec(s, cl);
            if !cl.issues(s.issuer) {
                e.required = false;
                e.key_type = None;
            }
            e
        })
        .collect()
}

fn set(names: &[String]) -> BTreeSet<String> {
    names.iter().cloned().collect()
}

fn orgs(variants: &[&[&str]]) -> Vec<Vec<String>> {
    variants
        .iter()
        .map(|v| sorted(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn fixed(
    path: &str,
    kubeconfig: bool,
    issuer: CaRole,
    cn: Option<String>,
    o: &[&[&str]],
    eku: &[ObjectIdentifier],
    sans: SanRule,
    required: bool,
) -> Expect {
    Expect {
        path: path.into(),
        kubeconfig,
        required,
        issuer,
        cn,
        orgs: orgs(o),
        eku: eku.to_vec(),
        sans,
        key_type: None,
        server: None,
        cluster: None,
    }
}

fn none() -> SanRule {
    SanRule::Exact(BTreeSet::new())
}

/// A control-plane node without a plan: what every kubeadm version (1.24 on)
/// fixes. `name` is the node name when known, `advertise` its advertise
/// address when known (controller-manager.conf's server).
pub fn fixed_control_plane(name: Option<&str>, advertise: Option<IpAddr>) -> Vec<Expect> {
    let k = CaRole::Kubernetes;
    let e = CaRole::Etcd;
    let client = [ID_KP_CLIENT_AUTH];
    let both = [ID_KP_SERVER_AUTH, ID_KP_CLIENT_AUTH];
    let node_dns: Vec<String> = name.map(|n| format!("DNS:{n}")).into_iter().collect();
    let adv: Vec<String> = advertise.map(|a| format!("IP:{a}")).into_iter().collect();

    let mut api: Vec<String> = [
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    api.extend(node_dns.iter().cloned());
    api.extend(adv.iter().cloned());
    let api = SanRule::AtLeast {
        names: set(&api),
        prefixes: vec!["DNS:kubernetes.default.svc.".into()],
    };

    let mut etcd: Vec<String> = ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    etcd.extend(node_dns.iter().cloned());
    etcd.extend(adv.iter().cloned());
    let etcd = SanRule::AtLeast {
        names: set(&etcd),
        prefixes: vec![],
    };

    let cn = |s: &str| Some(s.to_string());
    let node_cn = name.map(str::to_string);
    vec![
        fixed(
            "pki/apiserver",
            false,
            k,
            cn("kube-apiserver"),
            &[&[]],
            &[ID_KP_SERVER_AUTH],
            api,
            true,
        ),
        fixed(
            "pki/apiserver-kubelet-client",
            false,
            k,
            cn("kube-apiserver-kubelet-client"),
            &[&[CLUSTER_ADMINS], &[SYSTEM_MASTERS]],
            &client,
            none(),
            true,
        ),
        fixed(
            "pki/front-proxy-client",
            false,
            CaRole::FrontProxy,
            cn("front-proxy-client"),
            &[&[]],
            &client,
            none(),
            true,
        ),
        fixed(
            "pki/etcd/server",
            false,
            e,
            node_cn.clone(),
            &[&[]],
            &both,
            etcd.clone(),
            true,
        ),
        fixed(
            "pki/etcd/peer",
            false,
            e,
            node_cn,
            &[&[]],
            &both,
            etcd,
            true,
        ),
        fixed(
            "pki/etcd/healthcheck-client",
            false,
            e,
            cn("kube-etcd-healthcheck-client"),
            &[&[], &[SYSTEM_MASTERS]],
            &client,
            none(),
            true,
        ),
        fixed(
            "pki/apiserver-etcd-client",
            false,
            e,
            cn("kube-apiserver-etcd-client"),
            &[&[], &[SYSTEM_MASTERS]],
            &client,
            none(),
            true,
        ),
        fixed(
            "admin.conf",
            true,
            k,
            cn("kubernetes-admin"),
            &[&[CLUSTER_ADMINS], &[SYSTEM_MASTERS]],
            &client,
            none(),
            true,
        ),
        fixed(
            "super-admin.conf",
            true,
            k,
            cn("kubernetes-super-admin"),
            &[&[SYSTEM_MASTERS]],
            &client,
            none(),
            false,
        ),
        fixed(
            "controller-manager.conf",
            true,
            k,
            cn("system:kube-controller-manager"),
            &[&[]],
            &client,
            none(),
            true,
        ),
        fixed(
            "scheduler.conf",
            true,
            k,
            cn("system:kube-scheduler"),
            &[&[]],
            &client,
            none(),
            true,
        ),
        fixed_kubelet(name),
    ]
}

fn fixed_kubelet(name: Option<&str>) -> Expect {
    fixed(
        "kubelet.conf",
        true,
        CaRole::Kubernetes,
        name.map(|n| format!("system:node:{n}")),
        &[&[SYSTEM_NODES]],
        &[ID_KP_CLIENT_AUTH],
        none(),
        true,
    )
}

/// A worker without a plan: its kubelet.conf.
pub fn fixed_worker(name: Option<&str>) -> Vec<Expect> {
    vec![fixed_kubelet(name)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_names_match_kubeadm() {
        let l = fixed_control_plane(Some("cp1"), None);
        let names: Vec<String> = l.iter().map(Expect::display_name).collect();
        assert!(names.contains(&"etcd-healthcheck-client".to_string()));
        assert!(names.contains(&"apiserver".to_string()));
        assert_eq!(
            l.iter()
                .find(|e| e.path == "pki/etcd/peer")
                .and_then(|e| e.cn.clone())
                .as_deref(),
            Some("cp1")
        );
        assert!(
            !l.iter()
                .find(|e| e.path == "super-admin.conf")
                .is_some_and(|e| e.required)
        );
    }
}
