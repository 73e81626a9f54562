//! kubeadm's certificates and kubeconfigs, exactly as kubeadm makes them
//! (`cmd/kubeadm/app/phases/certs/certlist.go`, `phases/kubeconfig`,
//! `util/pkiutil/pki_helpers.go`): file names, CN, O, EKU and SANs per node.
//!
//! Pure: a validated `[cluster]` in, a list of `LeafSpec` out. The same specs
//! drive issuance, `check`, and `verify`, so there is one source of truth.

use std::net::IpAddr;

use der::oid::ObjectIdentifier;
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::name::Name;

use crate::keytype::KeyType;
use crate::plan::{CaRole, ClusterSpec, San};
use crate::x509::CertProfile;
use crate::x509::profile::{ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH};

/// kubeadm's `kubeadm:cluster-admins` group (1.29+), bound to cluster-admin by `kubeadm init`.
pub const CLUSTER_ADMINS: &str = "kubeadm:cluster-admins";
pub const SYSTEM_MASTERS: &str = "system:masters";
pub const SYSTEM_NODES: &str = "system:nodes";

/// What a leaf becomes on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafOutput {
    /// `<path>.crt` + `<path>.key` under etc/kubernetes (path like "pki/apiserver").
    CertAndKey,
    /// A kubeconfig file (path like "admin.conf") embedding cert, key and ca.crt.
    Kubeconfig { server: String, cluster: String },
}

/// One certificate kubeadm needs on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSpec {
    /// Relative to the node's etc/kubernetes, without extension for certs
    /// ("pki/etcd/server"), with it for kubeconfigs ("kubelet.conf").
    pub path: String,
    pub output: LeafOutput,
    pub issuer: CaRole,
    pub cn: String,
    pub orgs: Vec<String>,
    pub eku: Vec<ObjectIdentifier>,
    pub sans: Vec<San>,
}

impl LeafSpec {
    /// kubeadm's name for the certificate (`kubeadm certs check-expiration` style).
    pub fn display_name(&self) -> String {
        match &self.output {
            LeafOutput::CertAndKey if self.path == KUBELET_SERVING => "kubelet-serving".into(),
            LeafOutput::CertAndKey => self.path.trim_start_matches("pki/").to_string(),
            LeafOutput::Kubeconfig { .. } => self.path.clone(),
        }
    }

    /// The user name in a kubeconfig (= the CN) and its context name `<user>@<cluster>`.
    pub fn kubeconfig_names(&self) -> Option<(String, String, String)> {
        match &self.output {
            LeafOutput::Kubeconfig { cluster, .. } => Some((
                cluster.clone(),
                self.cn.clone(),
                format!("{}@{cluster}", self.cn),
            )),
            LeafOutput::CertAndKey => None,
        }
    }
}

/// Whether kubeadm of this version uses the 1.29 Organizations
/// (kubeadm:cluster-admins, no system:masters on etcd clients, super-admin.conf).
pub fn modern(cl: &ClusterSpec) -> bool {
    cl.version >= (1, 29)
}

fn cert(
    path: &str,
    issuer: CaRole,
    cn: &str,
    orgs: &[&str],
    eku: &[ObjectIdentifier],
    sans: Vec<San>,
) -> LeafSpec {
    LeafSpec {
        path: path.to_string(),
        output: LeafOutput::CertAndKey,
        issuer,
        cn: cn.to_string(),
        orgs: orgs.iter().map(|s| s.to_string()).collect(),
        eku: eku.to_vec(),
        sans,
    }
}

fn kubeconfig(path: &str, server: String, cl: &ClusterSpec, cn: &str, orgs: &[&str]) -> LeafSpec {
    LeafSpec {
        path: path.to_string(),
        output: LeafOutput::Kubeconfig {
            server,
            cluster: cl.name.clone(),
        },
        issuer: CaRole::Kubernetes,
        cn: cn.to_string(),
        orgs: orgs.iter().map(|s| s.to_string()).collect(),
        eku: vec![ID_KP_CLIENT_AUTH],
        sans: Vec::new(),
    }
}

fn url(host: &San, port: u16) -> String {
    match host {
        San::Dns(d) => format!("https://{d}:{port}"),
        San::Ip(IpAddr::V4(ip)) => format!("https://{ip}:{port}"),
        San::Ip(IpAddr::V6(ip)) => format!("https://[{ip}]:{port}"),
    }
}

/// The control-plane endpoint URL: controlPlaneEndpoint (its port, else
/// bindPort), or this node's advertise address when there is none.
pub fn cluster_server(cl: &ClusterSpec, node_address: Option<IpAddr>) -> Option<String> {
    match (&cl.endpoint, node_address) {
        (Some((host, port)), _) => Some(url(host, *port)),
        (None, Some(ip)) => Some(url(&San::Ip(ip), cl.bind_port)),
        (None, None) => None,
    }
}

/// The first address of the service CIDR: the `kubernetes` Service's ClusterIP.
pub fn service_ip(cl: &ClusterSpec) -> IpAddr {
    let (net, len) = cl.service_cidr;
    match net {
        IpAddr::V4(v4) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4(std::net::Ipv4Addr::from((u32::from(v4) & mask) + 1))
        }
        IpAddr::V6(v6) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6(std::net::Ipv6Addr::from((u128::from(v6) & mask) + 1))
        }
    }
}

/// Go writes DNS names before IP addresses in a SAN extension; kubeadm
/// de-duplicates. Keep first occurrences, DNS first, then IPs.
fn ordered(sans: Vec<San>) -> Vec<San> {
    let mut out: Vec<San> = Vec::new();
    for s in sans
        .iter()
        .filter(|s| matches!(s, San::Dns(_)))
        .chain(sans.iter().filter(|s| matches!(s, San::Ip(_))))
    {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

/// Every certificate and kubeconfig the ceremony issues for control-plane
/// node `index` (first = 0): kubeadm's, less those of a delegated CA, which
/// kubeadm makes on the node from the CA's key there.
pub fn control_plane_leaves(cl: &ClusterSpec, index: usize) -> Vec<LeafSpec> {
    let mut v = kubeadm_control_plane_leaves(cl, index);
    v.retain(|l| cl.issues(l.issuer));
    v
}

/// Every certificate and kubeconfig kubeadm puts on control-plane node `index`.
pub fn kubeadm_control_plane_leaves(cl: &ClusterSpec, index: usize) -> Vec<LeafSpec> {
    let node = &cl.control_plane[index];
    let modern = modern(cl);
    let masters_before_129: &[&str] = if modern { &[] } else { &[SYSTEM_MASTERS] };
    let admins: &[&str] = if modern {
        &[CLUSTER_ADMINS]
    } else {
        &[SYSTEM_MASTERS]
    };
    let server = cluster_server(cl, Some(node.address)).unwrap_or_default();
    let local = url(&San::Ip(node.address), cl.bind_port);

    let mut api = vec![
        San::Dns(node.name.clone()),
        San::Dns("kubernetes".into()),
        San::Dns("kubernetes.default".into()),
        San::Dns("kubernetes.default.svc".into()),
        San::Dns(format!("kubernetes.default.svc.{}", cl.dns_domain)),
        San::Ip(service_ip(cl)),
        San::Ip(node.address),
    ];
    if let Some((host, _)) = &cl.endpoint {
        api.push(host.clone());
    }
    api.extend(cl.apiserver_extra_sans.iter().cloned());
    let etcd_base = || {
        vec![
            San::Dns(node.name.clone()),
            San::Dns("localhost".into()),
            San::Ip(node.address),
            San::Ip(IpAddr::from([127, 0, 0, 1])),
            San::Ip(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        ]
    };
    let mut etcd_server = etcd_base();
    etcd_server.extend(node.etcd_server_extra_sans.iter().cloned());
    let mut etcd_peer = etcd_base();
    etcd_peer.extend(node.etcd_peer_extra_sans.iter().cloned());

    let server_client = [ID_KP_SERVER_AUTH, ID_KP_CLIENT_AUTH];
    let mut leaves = vec![
        cert(
            "pki/apiserver",
            CaRole::Kubernetes,
            "kube-apiserver",
            &[],
            &[ID_KP_SERVER_AUTH],
            ordered(api),
        ),
        cert(
            "pki/apiserver-kubelet-client",
            CaRole::Kubernetes,
            "kube-apiserver-kubelet-client",
            admins,
            &[ID_KP_CLIENT_AUTH],
            Vec::new(),
        ),
        cert(
            "pki/front-proxy-client",
            CaRole::FrontProxy,
            "front-proxy-client",
            &[],
            &[ID_KP_CLIENT_AUTH],
            Vec::new(),
        ),
        cert(
            "pki/etcd/server",
            CaRole::Etcd,
            &node.name,
            &[],
            &server_client,
            ordered(etcd_server),
        ),
        cert(
            "pki/etcd/peer",
            CaRole::Etcd,
            &node.name,
            &[],
            &server_client,
            ordered(etcd_peer),
        ),
        cert(
            "pki/etcd/healthcheck-client",
            CaRole::Etcd,
            "kube-etcd-healthcheck-client",
            masters_before_129,
            &[ID_KP_CLIENT_AUTH],
            Vec::new(),
        ),
        cert(
            "pki/apiserver-etcd-client",
            CaRole::Etcd,
            "kube-apiserver-etcd-client",
            masters_before_129,
            &[ID_KP_CLIENT_AUTH],
            Vec::new(),
        ),
        kubeconfig("admin.conf", server.clone(), cl, "kubernetes-admin", admins),
    ];
    if modern && index == 0 {
        leaves.push(kubeconfig(
            "super-admin.conf",
            server.clone(),
            cl,
            "kubernetes-super-admin",
            &[SYSTEM_MASTERS],
        ));
    }
    leaves.push(kubeconfig(
        "controller-manager.conf",
        local.clone(),
        cl,
        "system:kube-controller-manager",
        &[],
    ));
    leaves.push(kubeconfig(
        "scheduler.conf",
        local,
        cl,
        "system:kube-scheduler",
        &[],
    ));
    // kubeadm's ControlPlaneKubeletLocalMode (beta and on by default from
    // 1.33; alpha, off, in 1.31 and 1.32): a control-plane node's kubelet
    // talks to its own kube-apiserver, never across the version skew of
    // another node's.
    let kubelet_server = if kubelet_local_mode(cl) {
        url(&San::Ip(node.address), cl.bind_port)
    } else {
        server
    };
    leaves.push(kubelet(cl, &node.name, kubelet_server));
    if cl.kubelet_serving {
        leaves.push(kubelet_serving(&node.name, Some(node.address)));
    }
    leaves
}

/// The kubelet's serving certificate and key (`.crt`/`.key`), relative to
/// the node's root: where KubeletConfiguration's tlsCertFile and
/// tlsPrivateKeyFile point.
pub const KUBELET_SERVING: &str = "/var/lib/kubelet/pki/kubelet";

/// A node's kubelet serving certificate (`kubelet_serving_certs`), as the
/// kubelet's own serving request would ask for it (CN system:node:<name>,
/// O system:nodes, serverAuth only); kube-apiserver checks only the chain
/// and the SAN of the address it dials, so the SANs are the node's name
/// and its address.
fn kubelet_serving(name: &str, address: Option<IpAddr>) -> LeafSpec {
    let mut sans = vec![San::Dns(name.to_string())];
    sans.extend(address.map(San::Ip));
    cert(
        KUBELET_SERVING,
        CaRole::Kubernetes,
        &format!("system:node:{name}"),
        &[SYSTEM_NODES],
        &[ID_KP_SERVER_AUTH],
        ordered(sans),
    )
}

/// A file of a node's bundle, relative to OUT. `base`: the node's
/// etc/kubernetes (`nodes/<name>/etc/kubernetes`, a trailing '/' or not;
/// empty for a bundle read alone); `rel`: relative to it, or, starting with
/// '/', to the node's root (`nodes/<name>/`), as the kubelet's files are.
pub fn node_file(base: &str, rel: &str) -> String {
    let base = base.trim_end_matches('/');
    match rel.strip_prefix('/') {
        // A bundle read alone has no node root: `rel` as given, which no
        // file of the tree is.
        Some(abs) => match base.strip_suffix("etc/kubernetes") {
            Some(root) => format!("{root}{abs}"),
            None => rel.to_string(),
        },
        None if base.is_empty() => rel.to_string(),
        None => format!("{base}/{rel}"),
    }
}

/// Whether kubeadm of the plan's version points a control-plane node's
/// kubelet.conf at the node's own API server (`ControlPlaneKubeletLocalMode`
/// on by default: kubeadm 1.33 and later).
pub fn kubelet_local_mode(cl: &ClusterSpec) -> bool {
    cl.version >= (1, 33)
}

fn kubelet(cl: &ClusterSpec, name: &str, server: String) -> LeafSpec {
    kubeconfig(
        "kubelet.conf",
        server,
        cl,
        &format!("system:node:{name}"),
        &[SYSTEM_NODES],
    )
}

/// A worker's kubelet.conf. Without a controlPlaneEndpoint the first
/// control-plane node serves. None when the kubernetes CA is delegated: the
/// worker joins by TLS bootstrap and the controller-manager signs it.
pub fn worker_leaves(cl: &ClusterSpec, name: &str) -> Vec<LeafSpec> {
    let server =
        cluster_server(cl, cl.control_plane.first().map(|n| n.address)).unwrap_or_default();
    let mut v = vec![kubelet(cl, name, server)];
    if cl.kubelet_serving {
        v.push(kubelet_serving(
            name,
            cl.worker_addresses.get(name).copied(),
        ));
    }
    v.retain(|l| cl.issues(l.issuer));
    v
}

/// Go's pkix.Name order: O in one (multi-valued) RDN, then CN; values as
/// UTF8String, as x509-cert's RFC 4514 parser writes them. Built from its
/// parts rather than parsed from text: the parser looks every attribute
/// name up in the whole OID database, a cost every leaf paid.
pub fn subject(cn: &str, orgs: &[String]) -> Result<Name, der::Error> {
    use const_oid::db::rfc4519::{CN, O};
    use der::{Decode, Encode};
    use x509_cert::attr::AttributeTypeAndValue;
    use x509_cert::name::{RdnSequence, RelativeDistinguishedName};
    let atv = |oid, value: &str| -> Result<AttributeTypeAndValue, der::Error> {
        Ok(AttributeTypeAndValue {
            oid,
            value: der::Any::new(der::Tag::Utf8String, value.as_bytes())?,
        })
    };
    let mut rdns = RdnSequence::default();
    if !orgs.is_empty() {
        let o = orgs
            .iter()
            .map(|o| atv(O, o))
            .collect::<Result<Vec<_>, _>>()?;
        rdns.push(RelativeDistinguishedName::try_from(o)?);
    }
    rdns.push(RelativeDistinguishedName::try_from(vec![atv(CN, cn)?])?);
    // x509-cert 0.3 makes no `Name` from an `RdnSequence` but through DER.
    Name::from_der(&rdns.to_der()?)
}

/// The X.509 profile of a leaf: KeyUsage digitalSignature (+ keyEncipherment
/// for RSA keys, where key transport is possible), critical; the spec's EKU;
/// BasicConstraints CA:FALSE; AKI = the issuer's SKI; the spec's SANs; no SKI
/// (kubeadm's leaves carry none).
pub fn leaf_profile(
    spec: &LeafSpec,
    issuer: &Name,
    issuer_ski: &[u8],
    key: KeyType,
) -> Result<CertProfile, der::Error> {
    let mut key_usage = vec![KeyUsages::DigitalSignature];
    if key.is_rsa() {
        key_usage.push(KeyUsages::KeyEncipherment);
    }
    Ok(CertProfile {
        subject: subject(&spec.cn, &spec.orgs)?,
        issuer: issuer.clone(),
        ca_path_len: None,
        key_usage,
        ext_key_usage: spec.eku.clone(),
        sans: spec.sans.clone(),
        authority_key_id: Some(issuer_ski.to_vec()),
        subject_key_id: false,
    })
}

/// Where a node's CA certificates go in its pki/ (each holding only its intermediate).
pub const CA_FILES: [(&str, CaRole); 3] = [
    ("pki/ca.crt", CaRole::Kubernetes),
    ("pki/etcd/ca.crt", CaRole::Etcd),
    ("pki/front-proxy-ca.crt", CaRole::FrontProxy),
];

/// The number of certificates the bundle will hold (for progress and `check`).
pub fn leaf_count(cl: &ClusterSpec) -> usize {
    (0..cl.control_plane.len())
        .map(|i| control_plane_leaves(cl, i).len())
        .sum::<usize>()
        + cl.workers
            .iter()
            .map(|w| worker_leaves(cl, w).len())
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ControlPlaneSpec, LeafMode};
    use std::time::Duration;

    /// The parameters of tests/fixtures/kubeadm/reference/kubeadm.yaml.
    fn reference(version: (u32, u32)) -> ClusterSpec {
        ClusterSpec {
            name: "kubernetes".into(),
            version,
            endpoint: Some((San::Ip("127.0.0.1".parse().unwrap()), 6443)),
            service_cidr: ("10.96.0.0".parse().unwrap(), 12),
            dns_domain: "cluster.local".into(),
            bind_port: 6443,
            leaf_key: KeyType::Rsa2048,
            leaf_validity: Duration::from_secs(365 * 86400),
            sa_key: KeyType::Rsa2048,
            apiserver_extra_sans: vec![],
            control_plane: vec![ControlPlaneSpec {
                name: "cp1".into(),
                address: "10.0.0.10".parse().unwrap(),
                etcd_server_extra_sans: vec![],
                etcd_peer_extra_sans: vec![],
            }],
            workers: vec![],
            mode: LeafMode::Generate,
            kubelet_serving: false,
            worker_addresses: Default::default(),
            node_recipients: Default::default(),
            delegated: Vec::new(),
        }
    }

    fn find<'a>(l: &'a [LeafSpec], path: &str) -> &'a LeafSpec {
        l.iter().find(|s| s.path == path).unwrap()
    }

    fn sans(l: &LeafSpec) -> Vec<String> {
        l.sans.iter().map(|s| s.to_string()).collect()
    }

    /// kubeadm's rule per CA (phases/certs: UsingExternalCA,
    /// UsingExternalEtcdCA, UsingExternalFrontProxyCA; init's certs phase): a
    /// CA whose `.key` is absent needs every one of its leaves present; a CA
    /// with its `.key` has the missing ones made. So for every mix of modes,
    /// a kept CA gets all of kubeadm's leaves of it and a delegated one none.
    /// A leaf path starting with '/' is on the node's root, beside its
    /// etc/kubernetes; without a node root it names no file of a tree.
    #[test]
    fn node_files_resolve_beside_etc_kubernetes() {
        let base = "nodes/w1/etc/kubernetes";
        assert_eq!(
            node_file(base, "pki/ca.crt"),
            "nodes/w1/etc/kubernetes/pki/ca.crt"
        );
        assert_eq!(
            node_file(&format!("{base}/"), "kubelet.conf"),
            "nodes/w1/etc/kubernetes/kubelet.conf"
        );
        assert_eq!(
            node_file(base, "/var/lib/kubelet/pki/kubelet.crt"),
            "nodes/w1/var/lib/kubelet/pki/kubelet.crt"
        );
        assert_eq!(
            node_file("etc/kubernetes/", "/var/lib/kubelet/pki/kubelet.key"),
            "var/lib/kubelet/pki/kubelet.key"
        );
        assert_eq!(node_file("", "pki/ca.crt"), "pki/ca.crt");
        assert_eq!(
            node_file("", "/var/lib/kubelet/pki/kubelet.crt"),
            "/var/lib/kubelet/pki/kubelet.crt"
        );
    }

    /// With kubelet_serving_certs every node gets a serving certificate:
    /// system:node:<name>, O system:nodes, serverAuth only, its name and
    /// address; a worker's address from worker_addresses.
    #[test]
    fn kubelet_serving_certificates_for_every_node() {
        let mut cl = reference((1, 31));
        cl.workers = vec!["w1".into()];
        assert!(
            control_plane_leaves(&cl, 0)
                .iter()
                .all(|l| l.path != KUBELET_SERVING)
        );
        cl.kubelet_serving = true;
        cl.worker_addresses
            .insert("w1".into(), IpAddr::from([10, 0, 0, 21]));
        let cp = control_plane_leaves(&cl, 0);
        let s = cp.iter().find(|l| l.path == KUBELET_SERVING).unwrap();
        let name = &cl.control_plane[0].name;
        assert_eq!(s.cn, format!("system:node:{name}"));
        assert_eq!(s.orgs, [SYSTEM_NODES]);
        assert_eq!(s.eku, [ID_KP_SERVER_AUTH]);
        assert_eq!(s.issuer, CaRole::Kubernetes);
        assert_eq!(
            s.sans,
            [San::Dns(name.clone()), San::Ip(cl.control_plane[0].address)]
        );
        assert_eq!(s.display_name(), "kubelet-serving");
        let w = worker_leaves(&cl, "w1");
        assert_eq!(
            w[1].sans,
            [San::Dns("w1".into()), San::Ip(IpAddr::from([10, 0, 0, 21]))]
        );
        assert_eq!(leaf_count(&cl), cp.len() + 2);
    }

    #[test]
    fn every_mix_of_modes_issues_exactly_the_kept_cas_leaves() {
        let external_ca_needs: [(CaRole, &[&str]); 3] = [
            (
                CaRole::Kubernetes,
                &[
                    "pki/apiserver",
                    "pki/apiserver-kubelet-client",
                    "admin.conf",
                    "super-admin.conf",
                    "kubelet.conf",
                    "controller-manager.conf",
                    "scheduler.conf",
                ],
            ),
            (
                CaRole::Etcd,
                &[
                    "pki/apiserver-etcd-client",
                    "pki/etcd/server",
                    "pki/etcd/peer",
                    "pki/etcd/healthcheck-client",
                ],
            ),
            (CaRole::FrontProxy, &["pki/front-proxy-client"]),
        ];
        for mask in 0..8u8 {
            let mut cl = reference((1, 31));
            cl.workers = vec!["w1".into()];
            cl.delegated = CaRole::INTERMEDIATES
                .into_iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, r)| r)
                .collect();
            let issued = control_plane_leaves(&cl, 0);
            let paths: Vec<&str> = issued.iter().map(|l| l.path.as_str()).collect();
            for (role, needs) in external_ca_needs {
                for n in needs {
                    assert_eq!(
                        paths.contains(n),
                        cl.issues(role),
                        "{n} with {:?} delegated",
                        cl.delegated
                    );
                }
            }
            assert_eq!(
                issued.len(),
                kubeadm_control_plane_leaves(&cl, 0)
                    .iter()
                    .filter(|l| cl.issues(l.issuer))
                    .count()
            );
            assert_eq!(
                worker_leaves(&cl, "w1").len(),
                usize::from(cl.issues(CaRole::Kubernetes))
            );
            assert_eq!(
                leaf_count(&cl),
                issued.len() + usize::from(cl.issues(CaRole::Kubernetes))
            );
        }
    }

    #[test]
    fn apiserver_sans_match_the_reference() {
        let l = control_plane_leaves(&reference((1, 31)), 0);
        assert_eq!(
            sans(find(&l, "pki/apiserver")),
            [
                "DNS:cp1",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
                "IP:10.96.0.1",
                "IP:10.0.0.10",
                "IP:127.0.0.1"
            ]
        );
        assert_eq!(
            sans(find(&l, "pki/etcd/server")),
            [
                "DNS:cp1",
                "DNS:localhost",
                "IP:10.0.0.10",
                "IP:127.0.0.1",
                "IP:::1"
            ]
        );
        assert_eq!(
            find(&l, "pki/etcd/peer").sans,
            find(&l, "pki/etcd/server").sans
        );
    }

    #[test]
    fn organizations_follow_the_version() {
        let new = control_plane_leaves(&reference((1, 29)), 0);
        assert_eq!(
            find(&new, "pki/apiserver-kubelet-client").orgs,
            [CLUSTER_ADMINS]
        );
        assert!(find(&new, "pki/apiserver-etcd-client").orgs.is_empty());
        assert_eq!(find(&new, "admin.conf").orgs, [CLUSTER_ADMINS]);
        assert_eq!(find(&new, "super-admin.conf").orgs, [SYSTEM_MASTERS]);
        let old = control_plane_leaves(&reference((1, 28)), 0);
        assert_eq!(
            find(&old, "pki/apiserver-kubelet-client").orgs,
            [SYSTEM_MASTERS]
        );
        assert_eq!(
            find(&old, "pki/etcd/healthcheck-client").orgs,
            [SYSTEM_MASTERS]
        );
        assert!(old.iter().all(|s| s.path != "super-admin.conf"));
    }

    #[test]
    fn super_admin_only_on_the_first_node_and_servers_as_kubeadm() {
        let mut cl = reference((1, 31));
        cl.control_plane.push(ControlPlaneSpec {
            name: "cp2".into(),
            address: "10.0.0.11".parse().unwrap(),
            ..cl.control_plane[0].clone()
        });
        let second = control_plane_leaves(&cl, 1);
        assert!(second.iter().all(|s| s.path != "super-admin.conf"));
        let srv = |p: &str| match &find(&second, p).output {
            LeafOutput::Kubeconfig { server, .. } => server.clone(),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(srv("admin.conf"), "https://127.0.0.1:6443");
        assert_eq!(srv("controller-manager.conf"), "https://10.0.0.11:6443");
        assert_eq!(find(&second, "kubelet.conf").cn, "system:node:cp2");
        assert_eq!(
            find(&second, "kubelet.conf").kubeconfig_names().unwrap().2,
            "system:node:cp2@kubernetes"
        );
    }

    #[test]
    fn a_control_plane_kubelet_talks_to_its_own_api_server_from_1_33() {
        let server = |version| {
            let l = control_plane_leaves(&reference(version), 0);
            match &find(&l, "kubelet.conf").output {
                LeafOutput::Kubeconfig { server, .. } => server.clone(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(server((1, 32)), "https://127.0.0.1:6443");
        assert_eq!(server((1, 33)), "https://10.0.0.10:6443");
    }

    #[test]
    fn service_ip_v4_and_v6() {
        let mut cl = reference((1, 31));
        assert_eq!(service_ip(&cl).to_string(), "10.96.0.1");
        cl.service_cidr = ("fd00:10:96::".parse().unwrap(), 108);
        assert_eq!(service_ip(&cl).to_string(), "fd00:10:96::1");
    }

    #[test]
    fn endpoint_as_dns_and_dedup() {
        let mut cl = reference((1, 31));
        cl.endpoint = Some((San::Dns("k8s.example.com".into()), 443));
        cl.apiserver_extra_sans = vec![
            San::Dns("k8s.example.com".into()),
            San::Ip("10.0.0.10".parse().unwrap()),
        ];
        let l = control_plane_leaves(&cl, 0);
        let s = sans(find(&l, "pki/apiserver"));
        assert_eq!(s.iter().filter(|x| *x == "DNS:k8s.example.com").count(), 1);
        assert_eq!(s.iter().filter(|x| *x == "IP:10.0.0.10").count(), 1);
        assert!(
            s.iter().position(|x| x.starts_with("IP:"))
                > s.iter().position(|x| x == "DNS:k8s.example.com")
        );
        assert_eq!(
            cluster_server(&cl, None).unwrap(),
            "https://k8s.example.com:443"
        );
    }

    /// RFC 4514 §2.4 escaping of an attribute value.
    fn escape_rfc4514(v: &str) -> String {
        let last = v.chars().count().saturating_sub(1);
        let mut out = String::new();
        for (i, c) in v.chars().enumerate() {
            let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
                || (i == 0 && (c == '#' || c == ' '))
                || (i == last && c == ' ');
            if special {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    /// `subject` is exactly what x509-cert's parser makes of the escaped
    /// text (how it was built before), to the DER byte.
    #[test]
    fn subjects_are_what_the_rfc4514_parser_makes() {
        use der::Encode;
        use std::str::FromStr;
        let orgs = |o: &[&str]| o.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (cn, o) in [
            ("system:node:worker-1", orgs(&["system:nodes"])),
            (
                "kube-apiserver-kubelet-client",
                orgs(&["kubeadm:cluster-admins"]),
            ),
            (
                "kubernetes-admin",
                orgs(&["system:masters", "kubeadm:cluster-admins"]),
            ),
            ("a,b+c=d\\\"q<>;", orgs(&["x", "y"])),
            ("#lead and trail ", orgs(&[" o"])),
            ("Zürich", orgs(&[])),
        ] {
            let mut text = format!("CN={}", escape_rfc4514(cn));
            if !o.is_empty() {
                let parts: Vec<String> = o
                    .iter()
                    .map(|x| format!("O={}", escape_rfc4514(x)))
                    .collect();
                text = format!("{text},{}", parts.join("+"));
            }
            let parsed = Name::from_str(&text).unwrap();
            let built = subject(cn, &o).unwrap();
            assert_eq!(built.to_der().unwrap(), parsed.to_der().unwrap(), "{text}");
        }
    }

    #[test]
    fn subjects_encode_o_before_cn_and_escape() {
        let n = subject("system:node:cp1", &["system:nodes".into()]).unwrap();
        let rdns: Vec<String> = n.iter_rdn().map(|r| r.to_string()).collect();
        assert_eq!(rdns, ["O=system:nodes", "CN=system:node:cp1"]);
        let n = subject("a,b", &["x".into(), "y".into()]).unwrap();
        assert_eq!(
            n.iter_rdn().next().unwrap().len(),
            2,
            "groups share one RDN as in Go"
        );
    }

    #[test]
    fn leaf_key_usage_depends_on_key_type() {
        let cl = reference((1, 31));
        let l = control_plane_leaves(&cl, 0);
        let issuer = subject("kubernetes", &[]).unwrap();
        let rsa = leaf_profile(find(&l, "pki/apiserver"), &issuer, &[1], KeyType::Rsa2048).unwrap();
        assert_eq!(
            rsa.key_usage,
            [KeyUsages::DigitalSignature, KeyUsages::KeyEncipherment]
        );
        let ec =
            leaf_profile(find(&l, "pki/apiserver"), &issuer, &[1], KeyType::EcdsaP256).unwrap();
        assert_eq!(ec.key_usage, [KeyUsages::DigitalSignature]);
        assert_eq!(ec.ca_path_len, None);
        assert!(!ec.subject_key_id);
    }

    /// Every certificate kubeadm needs, for RSA and ECDSA leaves, is built
    /// byte for byte as x509-cert's own builder builds it.
    #[test]
    fn every_kubeadm_tbs_is_what_x509_certs_builder_makes() {
        use std::str::FromStr;
        use std::time::{Duration, SystemTime};
        let issuer = Name::from_str("CN=kubernetes").unwrap();
        let spki = crate::keys::leaf::generate(KeyType::EcdsaP256)
            .unwrap()
            .spki;
        let now = crate::x509::truncate(SystemTime::now());
        let mut built = 0;
        for key in [KeyType::Rsa2048, KeyType::EcdsaP256] {
            let mut cl = reference((1, 31));
            cl.leaf_key = key;
            let mut leaves = control_plane_leaves(&cl, 0);
            leaves.extend(worker_leaves(&cl, "worker-1"));
            for spec in &leaves {
                let profile = leaf_profile(spec, &issuer, &[7; 20], key).unwrap();
                let serial = crate::token::serial_from(&[0xa5; 20]);
                let tbs = crate::x509::ToBeSigned {
                    profile: &profile,
                    serial: &serial,
                    not_before: now,
                    not_after: now + Duration::from_secs(365 * 86400),
                    subject_spki: &spki,
                    issuer_spki: &spki,
                    issuer_key_type: KeyType::EcdsaP256,
                };
                assert_eq!(
                    crate::x509::build(&tbs).unwrap(),
                    crate::x509::tests::build_with_builder(&tbs),
                    "{}",
                    spec.path
                );
                built += 1;
            }
        }
        assert!(built >= 2 * 12, "{built}");
    }
}
