//! The plan as validated: every value typed, every rule already checked.
//!
//! Only `validate` builds these, so holding one means the rules passed.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use x509_cert::name::Name;

use super::duration::format_lifetime;
use crate::keytype::KeyType;
use crate::token::uri::TokenUri;
use crate::x509::san::San;

/// The four CAs of the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CaRole {
    Root,
    Kubernetes,
    Etcd,
    FrontProxy,
}

impl CaRole {
    pub const INTERMEDIATES: [CaRole; 3] = [CaRole::Kubernetes, CaRole::Etcd, CaRole::FrontProxy];

    /// The plan section, e.g. `ca.front-proxy`.
    pub fn section(self) -> &'static str {
        match self {
            CaRole::Root => "root",
            CaRole::Kubernetes => "ca.kubernetes",
            CaRole::Etcd => "ca.etcd",
            CaRole::FrontProxy => "ca.front-proxy",
        }
    }

    /// Short name used in file names and messages: root, kubernetes, etcd, front-proxy.
    pub fn name(self) -> &'static str {
        match self {
            CaRole::Root => "root",
            CaRole::Kubernetes => "kubernetes",
            CaRole::Etcd => "etcd",
            CaRole::FrontProxy => "front-proxy",
        }
    }

    /// kubeadm's CN for its own CAs, our default subject for the intermediates.
    pub(super) fn default_subject(self) -> Option<&'static str> {
        match self {
            CaRole::Root => None,
            CaRole::Kubernetes => Some("CN=kubernetes"),
            CaRole::Etcd => Some("CN=etcd-ca"),
            CaRole::FrontProxy => Some("CN=front-proxy-ca"),
        }
    }
}

/// How long a certificate lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// From the moment of signing.
    For(Duration),
    /// Until an explicit instant.
    Until(SystemTime),
}

impl Lifetime {
    pub fn end(self, start: SystemTime) -> SystemTime {
        match self {
            Lifetime::For(d) => start + d,
            Lifetime::Until(t) => t,
        }
    }
}

impl std::fmt::Display for Lifetime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lifetime::For(d) => f.write_str(&format_lifetime(*d)),
            Lifetime::Until(t) => write!(f, "until {}", crate::fmt::utc(*t)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CaSpec {
    pub role: CaRole,
    pub label: String,
    pub subject: Name,
    pub key: KeyType,
    pub lifetime: Lifetime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafMode {
    Generate,
    Csr,
}

#[derive(Debug, Clone)]
pub struct ControlPlaneSpec {
    pub name: String,
    pub address: IpAddr,
    pub etcd_server_extra_sans: Vec<San>,
    pub etcd_peer_extra_sans: Vec<San>,
}

/// The validated `[cluster]`: what the bundle needs to derive every profile.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub name: String,
    /// (major, minor) of kubeadm; decides the Organizations.
    pub version: (u32, u32),
    /// (host, port) of controlPlaneEndpoint, host being an IP or DNS name.
    pub endpoint: Option<(San, u16)>,
    pub service_cidr: (IpAddr, u8),
    pub dns_domain: String,
    pub bind_port: u16,
    pub leaf_key: KeyType,
    pub leaf_validity: Duration,
    pub sa_key: KeyType,
    pub apiserver_extra_sans: Vec<San>,
    pub control_plane: Vec<ControlPlaneSpec>,
    pub workers: Vec<String>,
    pub mode: LeafMode,
    /// `kubelet_serving_certs`: each node's kubelet has a serving
    /// certificate signed by the kubernetes CA (kube-apiserver then checks
    /// it), and the kubeadm configuration renders for it.
    pub kubelet_serving: bool,
    /// `worker_addresses`: a worker's address (its kubelet serving
    /// certificate's IP SAN); a control-plane node's is its own.
    pub worker_addresses: std::collections::BTreeMap<String, IpAddr>,
    /// `node_recipients`: the nodes delivered encrypted, each to its one
    /// age or SSH recipient (parsed already).
    pub node_recipients: std::collections::BTreeMap<String, String>,
    /// The CAs the plan delegates to the control-plane nodes: kubeadm makes
    /// their leaves, so the ceremony issues none.
    pub delegated: Vec<CaRole>,
}

impl ClusterSpec {
    /// Whether the ceremony issues the leaves of this CA (it is in the token).
    pub fn issues(&self, role: CaRole) -> bool {
        !self.delegated.contains(&role)
    }
}

/// The validated `[kubelet_signer]`.
#[derive(Debug, Clone)]
pub struct KubeletSignerSpec {
    /// As the plan writes it (relative to the plan's directory).
    pub csr: PathBuf,
    pub subject: Name,
    pub key: KeyType,
    pub validity: Duration,
}

/// A CA delegated to the control-plane nodes: its key is made and kept there,
/// and the root on the token signs the request they bring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegated {
    pub role: CaRole,
    /// `ca.<name>.csr` as the plan writes it (relative to the plan's directory).
    pub csr: PathBuf,
}

/// One `[[users]]` entry: a kubeconfig signed by the kubernetes CA, written
/// as `users/<name>.conf`.
#[derive(Debug, Clone)]
pub struct UserSpec {
    /// The certificate's CN; also a plain file name.
    pub name: String,
    /// The certificate's Organizations, each once.
    pub groups: Vec<String>,
    /// `validity`, else the cluster's `leaf_validity`.
    pub validity: Duration,
    /// The user's own CSR as the plan writes it (relative to the plan's
    /// directory); None: the key is made at the ceremony.
    pub csr: Option<PathBuf>,
    pub allow_masters: bool,
}

/// A plan that passed validation, with every value typed.
#[derive(Debug, Clone)]
pub struct ValidPlan {
    pub name: String,
    pub administrator: String,
    pub witnesses: Vec<String>,
    pub token_uri: TokenUri,
    pub module: std::path::PathBuf,
    pub module_sha256: Option<[u8; 32]>,
    /// `token.sessions`: leaf signing sessions at most (None: one per core).
    pub token_sessions: Option<usize>,
    /// Root first, then kubernetes, etcd, front-proxy.
    pub cas: Vec<CaSpec>,
    pub cluster: Option<ClusterSpec>,
    /// `leaves.csr_dir` as the plan writes it (relative to the plan's
    /// directory); Some exactly when the leaves come from the nodes' CSRs.
    pub csr_dir: Option<PathBuf>,
    /// Whether the plan names `cluster.leaf_key`: only then are the nodes'
    /// CSRs held to that key type (they made their keys with it).
    pub leaf_key_explicit: bool,
    /// `[[users]]`, in plan order; never empty without a cluster.
    pub users: Vec<UserSpec>,
    pub recipients: Vec<String>,
    /// The ceremony this one continues and what it issues again (None: a
    /// founding ceremony).
    pub continuing: Option<super::continuing::Continuing>,
    /// `[backup]`: None leaves every CA key never extractable.
    pub backup: Option<BackupSpec>,
    /// `[crl]` and `[[revoke]]`.
    pub crl: CrlPlan,
    /// `[reissue] cas`: root first, each once.
    pub reissue: Vec<CaRole>,
    /// `[rotate]`.
    pub rotate: Option<RotateSpec>,
    /// The intermediates delegated to the control-plane nodes, in plan order
    /// (empty: every CA is kept in the token).
    pub delegated: Vec<Delegated>,
    /// The controller-manager's short-lived kubelet signer, if the plan has one.
    pub kubelet_signer: Option<KubeletSignerSpec>,
}

/// The validated `[backup]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSpec {
    /// The custodians in plan order: share n (from 1) is the n-th's.
    pub custodians: Vec<String>,
    /// Shares that rebuild the wrap key (2 ≤ threshold ≤ custodians).
    pub threshold: usize,
    /// The CAs backed up, the root always, in hierarchy order.
    pub cas: Vec<CaRole>,
}

impl BackupSpec {
    pub fn covers(&self, role: CaRole) -> bool {
        self.cas.contains(&role)
    }
}

/// What the plan says of CRLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlPlan {
    /// `[crl]` or a `[[revoke]]` is given: every CA signs its CRL (a
    /// continuing ceremony also does when the previous output holds CRLs).
    pub requested: bool,
    /// `crl.next_update`: from thisUpdate to nextUpdate.
    pub next_update: Duration,
    /// `[[revoke]]`, in plan order.
    pub revoke: Vec<RevokeSpec>,
}

/// The default of `crl.next_update`: a month, so a CRL lapses soon after a
/// missed ceremony, not a year later.
pub const CRL_NEXT_UPDATE: Duration = Duration::from_secs(30 * 86_400);

/// A certificate to revoke, as the plan names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RevokeTarget {
    /// A certificate file of a node's bundle in the previous output.
    File { node: String, file: String },
    /// A serial number the CA issued (the certificate may be in any output
    /// of the chain).
    Serial { ca: CaRole, serial: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeSpec {
    pub target: RevokeTarget,
    pub reason: crate::x509::crl::Reason,
}

impl ValidPlan {
    pub fn ca(&self, role: CaRole) -> &CaSpec {
        // `cas` always holds the four roles in order (built by `validate`).
        &self.cas[role as usize]
    }

    /// The delegation of this CA, if the plan delegates it.
    pub fn delegated(&self, role: CaRole) -> Option<&Delegated> {
        self.delegated.iter().find(|d| d.role == role)
    }
}

/// One stage of a CA's rotation to a new key, in the order they must run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RotateStage {
    /// A new key and certificate; trust both; leaves from the old CA.
    Stage,
    /// Leaves from the new CA; trust both.
    Promote,
    /// Trust only the new CA.
    Distrust,
}

impl RotateStage {
    pub const ALL: [RotateStage; 3] = [Self::Stage, Self::Promote, Self::Distrust];
    pub fn name(self) -> &'static str {
        match self {
            Self::Stage => "stage",
            Self::Promote => "promote",
            Self::Distrust => "distrust",
        }
    }
}

/// `[rotate]`, validated: an intermediate on the token, a stage, and the
/// new key's label if the plan gives one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateSpec {
    pub role: CaRole,
    pub stage: RotateStage,
    pub new_label: Option<String>,
}
