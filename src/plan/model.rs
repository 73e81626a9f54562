//! The plan as written in `plan.toml`: a strict serde model, nothing more.
//!
//! Values stay as the operator wrote them (strings for key types, durations,
//! subjects) so that validation can report every problem with the value it
//! got; `validate` turns this into typed values. There is no PIN field, and
//! `deny_unknown_fields` everywhere makes a misspelt key an error, never a
//! silently ignored setting.

use std::path::PathBuf;

use serde::Deserialize;

/// The whole `plan.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub ceremony: CeremonySection,
    pub token: TokenSection,
    pub root: CaSection,
    pub ca: Intermediates,
    /// Absent for a ceremony that only makes or renews the CA hierarchy.
    pub cluster: Option<Cluster>,
    pub leaves: Option<Leaves>,
    #[serde(default)]
    pub users: Vec<User>,
    pub audit: AuditSection,
    /// What a continuing ceremony issues again (needs `ceremony.previous`).
    pub renew: Option<RenewSection>,
    /// A backup of the CA keys, wrapped under a key split among custodians
    /// (founding ceremony only).
    pub backup: Option<BackupSection>,
    /// `[crl]`: every CA signs its CRL in this ceremony.
    pub crl: Option<CrlSection>,
    /// `[[revoke]]`: certificates of the chain to revoke (needs
    /// `ceremony.previous`).
    #[serde(default)]
    pub revoke: Vec<Revoke>,
    /// `[reissue]`: CA certificates signed again for the same token key.
    pub reissue: Option<ReissueSection>,
    /// `[rotate]`: one stage of an intermediate's rotation to a new key.
    pub rotate: Option<RotateSection>,
    /// A short-lived CA under the kubernetes CA for the controller-manager's
    /// kubelet signers, its key made on the first control-plane node.
    pub kubelet_signer: Option<KubeletSigner>,
}

/// `[kubelet_signer]`: the request of the controller-manager's kubelet
/// signer, signed by the kubernetes CA on the token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeletSigner {
    /// The request, made on the first control-plane node (relative to the plan).
    pub csr: PathBuf,
    /// Lets `csr` be absolute or climb out of the plan's directory.
    #[serde(default)]
    pub allow_outside: bool,
    /// Default `CN=kubelet-signer`.
    pub subject: Option<String>,
    /// The key type the request must have.
    pub key: String,
    /// Days to months, e.g. "90d"; at most a year.
    pub validity: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CeremonySection {
    pub name: String,
    pub administrator: String,
    #[serde(default)]
    pub witnesses: Vec<String>,
    /// Path of the written runbook the ceremony follows (relative to the plan).
    pub runbook: Option<String>,
    /// The output directory of the ceremony this one continues (relative to
    /// the plan): a continuing ceremony on the same token.
    pub previous: Option<PathBuf>,
    /// Continue `previous` although the token's chain head says a later
    /// ceremony continued it already (a deliberate fork).
    #[serde(default)]
    pub fork: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSection {
    /// RFC 7512 PKCS#11 URI selecting exactly one token.
    pub uri: String,
    /// Path of the PKCS#11 module (`--module` may override it).
    pub module: PathBuf,
    /// Optional SHA-256 (hex) the module file must have.
    pub module_sha256: Option<String>,
    /// Token sessions to sign leaves on in parallel, at most (default: one
    /// per core of the ceremony computer); 1 for a token that dislikes
    /// concurrent sessions.
    pub sessions: Option<u32>,
}

/// One CA: the root or an intermediate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSection {
    /// Label of the key pair and certificate on the token (at most 32 bytes).
    pub label: String,
    /// RFC 4514 distinguished name; intermediates default to kubeadm's CN.
    pub subject: Option<String>,
    /// Key type: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096.
    pub key: String,
    /// Lifetime from the moment of signing, e.g. "20y", "3650d", "8760h".
    pub validity: Option<String>,
    /// Or an explicit end, as a TOML date or date-time (UTC).
    pub not_after: Option<toml::value::Datetime>,
    /// Intermediates only: "token" (the default: the key is made and kept
    /// in the token) or "delegated" (the key is made and kept on the
    /// control-plane nodes; the root signs the CSR they bring).
    pub mode: Option<String>,
    /// A delegated CA's certificate request, made on the first control-plane
    /// node (relative to the plan).
    pub csr: Option<PathBuf>,
    /// Lets `csr` be absolute or climb out of the plan's directory.
    #[serde(default)]
    pub allow_outside: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intermediates {
    pub kubernetes: CaSection,
    pub etcd: CaSection,
    #[serde(rename = "front-proxy")]
    pub front_proxy: CaSection,
}

/// What kubeadm's ClusterConfiguration/InitConfiguration would say.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// kubeadm's clusterName (default `kubernetes`).
    pub name: Option<String>,
    /// The kubeadm version the bundle is for (e.g. "v1.31"); selects the
    /// Organizations kubeadm uses (>= 1.29 unless older is named).
    pub kubernetes_version: Option<String>,
    /// host[:port]; absent means each node's advertise address.
    pub control_plane_endpoint: Option<String>,
    /// kubeadm's networking.serviceSubnet (default 10.96.0.0/12).
    pub service_cidr: Option<String>,
    /// kubeadm's networking.dnsDomain (default cluster.local).
    pub dns_domain: Option<String>,
    /// kube-apiserver bind port (default 6443).
    pub bind_port: Option<u16>,
    /// kubeadm's encryptionAlgorithm for every leaf key (default rsa-2048).
    pub leaf_key: Option<String>,
    /// Lifetime of leaf certificates (default 365d, kubeadm's one year).
    pub leaf_validity: Option<String>,
    #[serde(default)]
    pub apiserver_extra_sans: Vec<String>,
    #[serde(default)]
    pub control_plane: Vec<ControlPlaneNode>,
    pub workers: Option<Workers>,
    /// Key type of sa.key (default: leaf_key, as kubeadm's one
    /// encryptionAlgorithm).
    pub service_account_key: Option<String>,
    /// Node name → the age recipient (`age1…`, `ssh-ed25519 …`, `ssh-rsa …`)
    /// its files are encrypted to: `nodes/<name>.tar.age`, never plaintext.
    #[serde(default)]
    pub node_recipients: std::collections::BTreeMap<String, String>,
    /// Whether each node's kubelet gets a serving certificate signed by the
    /// kubernetes CA (`var/lib/kubelet/pki/kubelet.crt`), which
    /// kube-apiserver then checks (default false).
    pub kubelet_serving_certs: Option<bool>,
    /// Worker name → its address (an IP): a SAN of its kubelet serving
    /// certificate, where kube-apiserver dials the kubelet.
    #[serde(default)]
    pub worker_addresses: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneNode {
    pub name: String,
    /// The node's advertise address (an IP).
    pub address: String,
    #[serde(default)]
    pub etcd_server_extra_sans: Vec<String>,
    #[serde(default)]
    pub etcd_peer_extra_sans: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workers {
    #[serde(default)]
    pub names: Vec<String>,
    /// A file with one worker name per line (relative to the plan).
    pub names_file: Option<PathBuf>,
    /// Lets `names_file` be absolute or climb out of the plan's directory.
    #[serde(default)]
    pub allow_outside: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Leaves {
    /// "generate" (keys made at the ceremony) or "csr" (nodes' CSRs).
    pub mode: String,
    pub csr_dir: Option<PathBuf>,
    /// Lets `csr_dir` be absolute or climb out of the plan's directory.
    #[serde(default)]
    pub allow_outside: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
    pub validity: Option<String>,
    pub csr: Option<PathBuf>,
    #[serde(default)]
    pub allow_masters: bool,
    /// Lets `csr` be absolute or climb out of the plan's directory.
    #[serde(default)]
    pub allow_outside: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// age recipients: `age1…`, `ssh-ed25519 …`, `ssh-rsa …`.
    pub recipients: Vec<String>,
}

/// `[renew]`: in a continuing ceremony, the nodes issued again. Nodes of the
/// plan no ceremony of the chain issued are added; every other node is
/// left untouched (not written).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewSection {
    /// Every node the chain issued (and the plan still has).
    #[serde(default)]
    pub all: bool,
    /// The nodes to renew, by name.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Make a new service-account key pair instead of carrying the previous one.
    #[serde(default)]
    pub rotate_service_account_key: bool,
}

/// `[backup]`: the CA keys made extractable under a trusted wrap key only,
/// wrapped into the output; the wrap key split among the custodians, any
/// `threshold` of whom rebuild it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    /// Who keeps a share, by name (one share each).
    pub custodians: Vec<String>,
    /// How many shares rebuild the wrap key.
    pub threshold: u32,
    /// Which CAs are backed up: root, kubernetes, etcd, front-proxy (default: all four).
    pub cas: Option<Vec<String>>,
}

/// `[crl]`: the CRLs' lifetime. Its presence (or a `[[revoke]]`) makes
/// every CA sign its CRL; once an output of the chain holds CRLs, every
/// continuing ceremony signs them again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrlSection {
    /// From thisUpdate to nextUpdate (default 30d).
    pub next_update: Option<String>,
}

/// One `[[revoke]]`: a certificate of the chain, by its file in a node's
/// bundle of the previous output, or by its issuing CA and serial.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    pub node: Option<String>,
    /// Relative to the node's etc/kubernetes, e.g. `pki/etcd/peer.crt`.
    pub file: Option<String>,
    /// root, kubernetes, etcd or front-proxy: the CA that issued it.
    pub ca: Option<String>,
    /// The certificate's serial number, hex.
    pub serial: Option<String>,
    /// RFC 5280's reason, kebab-case (default unspecified).
    pub reason: Option<String>,
}

/// `[reissue]`: in a continuing ceremony, new certificates for CA keys
/// already on the token: the same key and subject, a new validity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReissueSection {
    /// root, kubernetes, etcd, front-proxy.
    #[serde(default)]
    pub cas: Vec<String>,
}

/// `[rotate]`: in a continuing ceremony, one stage of an intermediate's
/// rotation to a new token key (stage, promote, distrust).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateSection {
    /// kubernetes, etcd, front-proxy.
    pub ca: String,
    /// stage, promote or distrust.
    pub stage: String,
    /// The new key's token label (default: the CA's label, "-", the
    /// staging ceremony's name).
    pub new_label: Option<String>,
}
