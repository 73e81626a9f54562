//! Each node's kubeadm configuration: exactly the settings its certificates
//! were made for, so the installer retypes nothing. The first control-plane
//! node gets an InitConfiguration and the ClusterConfiguration; the other
//! control-plane nodes and the workers a JoinConfiguration that pins the
//! kubernetes CA by the SHA-256 of its SPKI.
//!
//! The API version is the one kubeadm of the plan's version uses:
//! `kubeadm.k8s.io/v1beta4` from 1.31 (where `encryptionAlgorithm` and
//! `certificateValidityPeriod` appeared), `v1beta3` before (ECDSA keys then
//! were the `PublicKeysECDSA` feature gate). The bootstrap token is not known
//! at the ceremony: joins carry [`TOKEN_PLACEHOLDER`], which kubeadm rejects
//! until the installer replaces it.

use std::net::IpAddr;

use serde::Serialize;

use crate::keytype::KeyType;
use crate::plan::ClusterSpec;
use crate::x509::san::San;

/// Where kubeadm looks for the certificates; the bundle's `etc/kubernetes/pki`.
pub const CERTIFICATES_DIR: &str = "/etc/kubernetes/pki";
/// Not a valid bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`): a join fails
/// until the installer puts the real one in its place.
pub const TOKEN_PLACEHOLDER: &str = "REPLACE-WITH-BOOTSTRAP-TOKEN";
/// The kubelet's serving certificate and key, on every node that has one.
pub const KUBELET_SERVING_CERT: &str = "/var/lib/kubelet/pki/kubelet.crt";
pub const KUBELET_SERVING_KEY: &str = "/var/lib/kubelet/pki/kubelet.key";
/// A join finds kubelet.conf and pki/ca.crt in place (the bundle's): the
/// preflight checks that refuse existing files are expected to fail.
pub const JOIN_PREFLIGHT_IGNORED: [&str; 2] = [
    "FileAvailable--etc-kubernetes-kubelet.conf",
    "FileAvailable--etc-kubernetes-pki-ca.crt",
];

/// `kubeadm.k8s.io/v1beta4` from kubeadm 1.31, `v1beta3` before.
pub fn api_version(version: (u32, u32)) -> &'static str {
    if version >= (1, 31) {
        "kubeadm.k8s.io/v1beta4"
    } else {
        "kubeadm.k8s.io/v1beta3"
    }
}

/// kubeadm's `EncryptionAlgorithmType` for a key type.
pub fn encryption_algorithm(k: KeyType) -> &'static str {
    match k {
        KeyType::EcdsaP256 => "ECDSA-P256",
        KeyType::EcdsaP384 => "ECDSA-P384",
        KeyType::Rsa2048 => "RSA-2048",
        KeyType::Rsa3072 => "RSA-3072",
        KeyType::Rsa4096 => "RSA-4096",
    }
}

/// `--discovery-token-ca-cert-hash`: `sha256:` and the hex SHA-256 of the
/// CA certificate's SubjectPublicKeyInfo.
pub fn ca_cert_hash(ca_der: &[u8]) -> Result<String, der::Error> {
    use der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(ca_der)?;
    let spki = cert.tbs_certificate().subject_public_key_info().to_der()?;
    Ok(format!(
        "sha256:{}",
        hex::encode(crate::x509::sha256(&spki))
    ))
}

/// Which configuration a node gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// The first control-plane node: `kubeadm init`.
    Init,
    /// Another control-plane node, with its advertise address.
    JoinControlPlane(IpAddr),
    Worker,
}

/// The kind of the node `name` in the cluster, if it is one of its nodes.
pub fn node_kind(cl: &ClusterSpec, name: &str) -> Option<NodeKind> {
    match cl.control_plane.iter().position(|n| n.name == name) {
        Some(0) => Some(NodeKind::Init),
        Some(i) => Some(NodeKind::JoinControlPlane(cl.control_plane[i].address)),
        None => cl
            .workers
            .iter()
            .any(|w| w == name)
            .then_some(NodeKind::Worker),
    }
}

fn host(s: &San) -> String {
    match s {
        San::Dns(d) => d.clone(),
        San::Ip(IpAddr::V4(ip)) => ip.to_string(),
        San::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
    }
}

fn san_text(s: &San) -> String {
    match s {
        San::Dns(d) => d.clone(),
        San::Ip(ip) => ip.to_string(),
    }
}

/// `host:port` kubeadm joins through: controlPlaneEndpoint, or the first
/// control-plane node's advertise address and bindPort.
pub fn join_endpoint(cl: &ClusterSpec) -> String {
    match (&cl.endpoint, cl.control_plane.first()) {
        (Some((h, port)), _) => format!("{}:{port}", host(h)),
        (None, Some(first)) => format!("{}:{}", host(&San::Ip(first.address)), cl.bind_port),
        (None, None) => String::new(),
    }
}

/// A Go `time.Duration` as kubeadm prints it (`8760h0m0s`).
fn go_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    format!("{}h{}m{}s", s / 3600, (s % 3600) / 60, s % 60)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiEndpoint {
    advertise_address: String,
    bind_port: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeRegistration {
    name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ignore_preflight_errors: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InitConfiguration {
    api_version: &'static str,
    kind: &'static str,
    node_registration: NodeRegistration,
    #[serde(rename = "localAPIEndpoint")]
    local_api_endpoint: ApiEndpoint,
}

/// v1beta4's `Arg`.
#[derive(Serialize)]
struct Arg {
    name: &'static str,
    value: String,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ExtraArgs {
    /// v1beta4: a list of name/value pairs.
    List(Vec<Arg>),
    /// v1beta3: a map.
    Map(std::collections::BTreeMap<&'static str, String>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiServer {
    #[serde(rename = "certSANs", skip_serializing_if = "Vec::is_empty")]
    cert_sans: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_args: Option<ExtraArgs>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Networking {
    service_subnet: String,
    dns_domain: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LocalEtcd {
    #[serde(rename = "serverCertSANs", skip_serializing_if = "Vec::is_empty")]
    server_cert_sans: Vec<String>,
    #[serde(rename = "peerCertSANs", skip_serializing_if = "Vec::is_empty")]
    peer_cert_sans: Vec<String>,
}

#[derive(Serialize)]
struct Etcd {
    local: LocalEtcd,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfiguration {
    api_version: &'static str,
    kind: &'static str,
    cluster_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    control_plane_endpoint: Option<String>,
    certificates_dir: &'static str,
    networking: Networking,
    #[serde(rename = "apiServer")]
    api_server: ApiServer,
    #[serde(skip_serializing_if = "Option::is_none")]
    etcd: Option<Etcd>,
    /// v1beta4 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_algorithm: Option<&'static str>,
    /// v1beta4 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_validity_period: Option<String>,
    /// v1beta3 with ECDSA-P256 keys: `PublicKeysECDSA`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    feature_gates: std::collections::BTreeMap<&'static str, bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BootstrapTokenDiscovery {
    api_server_endpoint: String,
    token: &'static str,
    ca_cert_hashes: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Discovery {
    bootstrap_token: BootstrapTokenDiscovery,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinControlPlane {
    #[serde(rename = "localAPIEndpoint")]
    local_api_endpoint: ApiEndpoint,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinConfiguration {
    api_version: &'static str,
    kind: &'static str,
    node_registration: NodeRegistration,
    ca_cert_path: String,
    discovery: Discovery,
    #[serde(skip_serializing_if = "Option::is_none")]
    control_plane: Option<JoinControlPlane>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeletConfiguration {
    api_version: &'static str,
    kind: &'static str,
    /// Nothing in an external-CA cluster signs a renewal.
    rotate_certificates: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_cert_file: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_private_key_file: Option<&'static str>,
}

fn yaml<T: Serialize>(v: &T) -> Result<String, String> {
    serde_norway::to_string(v).map_err(|e| format!("cannot write the kubeadm configuration: {e}"))
}

/// The text of `etc/kubernetes/kubeadm-config.yaml` for the node `name`;
/// `ca_der` is the kubernetes CA certificate the node's `pki/ca.crt` holds.
/// None when `name` is not a node of the cluster.
pub fn render(cl: &ClusterSpec, name: &str, ca_der: &[u8]) -> Result<Option<String>, String> {
    let Some(kind) = node_kind(cl, name) else {
        return Ok(None);
    };
    // The first node pins no CA: it has the key-less CA files themselves.
    let hash = match kind {
        NodeKind::Init => String::new(),
        _ => hash_of(ca_der)?,
    };
    render_kind(cl, name, kind, &hash).map(Some)
}

fn hash_of(ca_der: &[u8]) -> Result<String, String> {
    ca_cert_hash(ca_der).map_err(|e| format!("cannot read the kubernetes CA certificate: {e}"))
}

/// Every node's configuration in one run: what all share is made once (the
/// CA's hash; a worker's whole text but its name), so 100,000 workers cost
/// a string each, not a YAML document each.
pub struct Renderer<'a> {
    cl: &'a ClusterSpec,
    ca_hash: String,
    /// A worker's text before its name in the header, between that and
    /// `nodeRegistration.name`, and after; None where the plan's own text
    /// holds the mark (an endpoint so named): each worker rendered whole.
    worker: Option<[String; 3]>,
}

impl<'a> Renderer<'a> {
    pub fn new(cl: &'a ClusterSpec, ca_der: &[u8]) -> Result<Renderer<'a>, String> {
        let ca_hash = hash_of(ca_der)?;
        // A name that is a plain scalar and found nowhere else in the text.
        const MARK: &str = "ceremony-node-name-mark";
        let text = render_kind(cl, MARK, NodeKind::Worker, &ca_hash)?;
        let parts: Vec<&str> = text.split(MARK).collect();
        let worker = match parts[..] {
            [a, b, c] => Some([a.into(), b.into(), c.into()]),
            _ => None,
        };
        Ok(Renderer {
            cl,
            ca_hash,
            worker,
        })
    }

    /// The text for node `name` of this `kind` (the caller knows which it is).
    pub fn render(&self, name: &str, kind: NodeKind) -> Result<String, String> {
        let Some([a, b, c]) = self.worker.as_ref().filter(|_| kind == NodeKind::Worker) else {
            return render_kind(self.cl, name, kind, &self.ca_hash);
        };
        // The name as YAML writes it in the mapping (plain, or quoted where
        // it would read as another type: `true`, `1e3`).
        let scalar = yaml(&name)?;
        Ok([a, name, b, scalar.trim_end_matches('\n'), c].concat())
    }
}

fn render_kind(cl: &ClusterSpec, name: &str, kind: NodeKind, hash: &str) -> Result<String, String> {
    let v = api_version(cl.version);
    let v4 = cl.version >= (1, 31);
    let mut docs = vec![format!(
        "# kubeadm configuration for node {name}, written by the ceremony: the settings its\n\
         # certificates were made for. kubeadm {}.{}, {v}.\n",
        cl.version.0, cl.version.1
    )];
    match kind {
        NodeKind::Init => {
            let first = &cl.control_plane[0];
            docs.push(yaml(&InitConfiguration {
                api_version: v,
                kind: "InitConfiguration",
                node_registration: NodeRegistration {
                    name: name.to_string(),
                    ignore_preflight_errors: vec![],
                },
                local_api_endpoint: ApiEndpoint {
                    advertise_address: first.address.to_string(),
                    bind_port: cl.bind_port,
                },
            })?);
            let kubelet_ca = cl
                .kubelet_serving
                .then(|| format!("{CERTIFICATES_DIR}/ca.crt"));
            let extra_args = kubelet_ca.map(|ca| {
                if v4 {
                    ExtraArgs::List(vec![Arg {
                        name: "kubelet-certificate-authority",
                        value: ca,
                    }])
                } else {
                    ExtraArgs::Map([("kubelet-certificate-authority", ca)].into())
                }
            });
            let etcd = (!first.etcd_server_extra_sans.is_empty()
                || !first.etcd_peer_extra_sans.is_empty())
            .then(|| Etcd {
                local: LocalEtcd {
                    server_cert_sans: first.etcd_server_extra_sans.iter().map(san_text).collect(),
                    peer_cert_sans: first.etcd_peer_extra_sans.iter().map(san_text).collect(),
                },
            });
            let mut feature_gates = std::collections::BTreeMap::new();
            if !v4 && cl.leaf_key == KeyType::EcdsaP256 {
                feature_gates.insert("PublicKeysECDSA", true);
            }
            docs.push(yaml(&ClusterConfiguration {
                api_version: v,
                kind: "ClusterConfiguration",
                cluster_name: cl.name.clone(),
                control_plane_endpoint: cl
                    .endpoint
                    .as_ref()
                    .map(|(h, port)| format!("{}:{port}", host(h))),
                certificates_dir: CERTIFICATES_DIR,
                networking: Networking {
                    service_subnet: format!("{}/{}", cl.service_cidr.0, cl.service_cidr.1),
                    dns_domain: cl.dns_domain.clone(),
                },
                api_server: ApiServer {
                    cert_sans: cl.apiserver_extra_sans.iter().map(san_text).collect(),
                    extra_args,
                },
                etcd,
                encryption_algorithm: v4.then(|| encryption_algorithm(cl.leaf_key)),
                certificate_validity_period: v4.then(|| go_duration(cl.leaf_validity)),
                feature_gates,
            })?);
            docs.push(yaml(&KubeletConfiguration {
                api_version: "kubelet.config.k8s.io/v1beta1",
                kind: "KubeletConfiguration",
                rotate_certificates: false,
                tls_cert_file: cl.kubelet_serving.then_some(KUBELET_SERVING_CERT),
                tls_private_key_file: cl.kubelet_serving.then_some(KUBELET_SERVING_KEY),
            })?);
        }
        NodeKind::JoinControlPlane(_) | NodeKind::Worker => {
            let control_plane = match kind {
                NodeKind::JoinControlPlane(address) => Some(JoinControlPlane {
                    local_api_endpoint: ApiEndpoint {
                        advertise_address: address.to_string(),
                        bind_port: cl.bind_port,
                    },
                }),
                _ => None,
            };
            docs.push(yaml(&JoinConfiguration {
                api_version: v,
                kind: "JoinConfiguration",
                node_registration: NodeRegistration {
                    name: name.to_string(),
                    ignore_preflight_errors: JOIN_PREFLIGHT_IGNORED
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                },
                ca_cert_path: format!("{CERTIFICATES_DIR}/ca.crt"),
                discovery: Discovery {
                    bootstrap_token: BootstrapTokenDiscovery {
                        api_server_endpoint: join_endpoint(cl),
                        token: TOKEN_PLACEHOLDER,
                        ca_cert_hashes: vec![hash.to_string()],
                    },
                },
                control_plane,
            })?);
        }
    }
    Ok(join_docs(&docs))
}

fn join_docs(docs: &[String]) -> String {
    let mut out = docs[0].clone();
    for (i, d) in docs[1..].iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ControlPlaneSpec, LeafMode};

    /// The kubelet reads its serving certificate where the bundle puts it.
    #[test]
    fn the_kubelet_reads_the_bundles_serving_files() {
        let at = crate::profile::kubeadm::KUBELET_SERVING;
        assert_eq!(KUBELET_SERVING_CERT, format!("{at}.crt"));
        assert_eq!(KUBELET_SERVING_KEY, format!("{at}.key"));
    }

    fn cluster(version: (u32, u32)) -> ClusterSpec {
        ClusterSpec {
            name: "kubernetes".into(),
            version,
            endpoint: Some((San::Dns("k8s.example.com".into()), 6443)),
            service_cidr: ("10.96.0.0".parse().unwrap(), 12),
            dns_domain: "cluster.local".into(),
            bind_port: 6443,
            leaf_key: KeyType::EcdsaP256,
            leaf_validity: std::time::Duration::from_secs(365 * 86400),
            sa_key: KeyType::EcdsaP256,
            apiserver_extra_sans: vec![San::Dns("k8s.example.com".into())],
            control_plane: vec![
                ControlPlaneSpec {
                    name: "cp1".into(),
                    address: "10.0.0.11".parse().unwrap(),
                    etcd_server_extra_sans: vec![],
                    etcd_peer_extra_sans: vec![],
                },
                ControlPlaneSpec {
                    name: "cp2".into(),
                    address: "10.0.0.12".parse().unwrap(),
                    etcd_server_extra_sans: vec![],
                    etcd_peer_extra_sans: vec![],
                },
            ],
            workers: vec!["w1".into()],
            kubelet_serving: true,
            worker_addresses: Default::default(),
            node_recipients: Default::default(),
            delegated: Vec::new(),
            mode: LeafMode::Generate,
        }
    }

    #[test]
    fn api_version_follows_kubeadm() {
        assert_eq!(api_version((1, 30)), "kubeadm.k8s.io/v1beta3");
        assert_eq!(api_version((1, 31)), "kubeadm.k8s.io/v1beta4");
        assert_eq!(api_version((1, 34)), "kubeadm.k8s.io/v1beta4");
    }

    #[test]
    fn init_holds_the_cluster_and_v1beta4_fields() {
        let cl = cluster((1, 31));
        let t = render(&cl, "cp1", &[]).unwrap().unwrap();
        for want in [
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n",
            "name: cp1\n",
            "localAPIEndpoint:\n  advertiseAddress: 10.0.0.11\n  bindPort: 6443\n",
            "kind: ClusterConfiguration\nclusterName: kubernetes\ncontrolPlaneEndpoint: k8s.example.com:6443\ncertificatesDir: /etc/kubernetes/pki\n",
            "serviceSubnet: 10.96.0.0/12\n  dnsDomain: cluster.local\n",
            "certSANs:\n  - k8s.example.com\n",
            "- name: kubelet-certificate-authority\n    value: /etc/kubernetes/pki/ca.crt\n",
            "encryptionAlgorithm: ECDSA-P256\ncertificateValidityPeriod: 8760h0m0s\n",
            "tlsCertFile: /var/lib/kubelet/pki/kubelet.crt\n",
        ] {
            assert!(t.contains(want), "{want:?} not in\n{t}");
        }
        assert!(!t.contains("featureGates"));
        let old = render(&cluster((1, 30)), "cp1", &[]).unwrap().unwrap();
        assert!(!old.contains("encryptionAlgorithm"));
        assert!(
            old.contains("featureGates:\n  PublicKeysECDSA: true\n"),
            "{old}"
        );
        assert!(
            old.contains(
                "extraArgs:\n    kubelet-certificate-authority: /etc/kubernetes/pki/ca.crt\n"
            ),
            "{old}"
        );
        assert_eq!(render(&cl, "nobody", &[]).unwrap(), None);
        assert_eq!(
            go_duration(std::time::Duration::from_secs(90061)),
            "25h1m1s"
        );
    }

    /// The renderer's workers (its text around each name) are byte for byte
    /// the full rendering, names YAML would read as another type included;
    /// its control-plane nodes are the full rendering.
    #[test]
    fn the_renderer_writes_what_render_writes() {
        let pem = include_str!("../../tests/fixtures/kubeadm/reference/etc/kubernetes/pki/ca.crt");
        let ca = crate::pem::pem_blocks(pem).unwrap().remove(0).der.to_vec();
        for version in [(1, 30), (1, 31)] {
            let mut cl = cluster(version);
            cl.workers = [
                "worker1",
                "true",
                "yes",
                "no",
                "on",
                "null",
                "1",
                "1e3",
                "0x1f",
                "0o17",
                "1.5",
                "y",
                "n",
                "a.b-c",
                "123abc",
                "ceremony-node-name-mark",
            ]
            .map(String::from)
            .to_vec();
            // An endpoint that holds the renderer's mark: workers whole.
            let mut marked = cl.clone();
            marked.endpoint = Some((San::Dns("ceremony-node-name-mark.example".into()), 6443));
            let r = Renderer::new(&marked, &ca).unwrap();
            assert!(r.worker.is_none());
            assert_eq!(
                r.render("worker1", NodeKind::Worker).unwrap(),
                render(&marked, "worker1", &ca).unwrap().unwrap()
            );
            let r = Renderer::new(&cl, &ca).unwrap();
            for w in &cl.workers {
                assert_eq!(
                    r.render(w, NodeKind::Worker).unwrap(),
                    render(&cl, w, &ca).unwrap().unwrap(),
                    "{w}"
                );
            }
            for n in &cl.control_plane {
                let kind = node_kind(&cl, &n.name).unwrap();
                assert_eq!(
                    r.render(&n.name, kind).unwrap(),
                    render(&cl, &n.name, &ca).unwrap().unwrap()
                );
            }
        }
    }
}
