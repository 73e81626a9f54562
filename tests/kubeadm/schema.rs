//! kubeadm's configuration types, vendored as serde types so that the
//! generated configurations are parsed the way kubeadm reads them, without a
//! kubeadm binary: every struct denies unknown fields, as kubeadm's strict
//! decoding does (a misspelt or misplaced key is an error).
//!
//! Mirrors, field for field (json names and nesting), kubernetes/kubernetes:
//! - `cmd/kubeadm/app/apis/kubeadm/v1beta3/types.go` (kubeadm 1.22–1.30),
//! - `cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go` (kubeadm 1.31 and later),
//! - `cmd/kubeadm/app/apis/bootstraptoken/v1/types.go` (BootstrapToken),
//! - and, for the KubeletConfiguration document, the fields of
//!   `staging/src/k8s.io/kubelet/config/v1beta1/types.go` a bundle may set.
//!
//! Types of fields a bundle never sets (taints, patches, volumes, env vars,
//! timeouts) are kept as JSON values: their presence is checked, not their
//! shape.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// `APIEndpoint` (both versions).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiEndpoint {
    #[serde(default)]
    pub advertise_address: String,
    #[serde(default)]
    pub bind_port: i32,
}

/// `BootstrapTokenDiscovery` (both versions).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BootstrapTokenDiscovery {
    pub token: String,
    #[serde(default)]
    pub api_server_endpoint: String,
    #[serde(default)]
    pub ca_cert_hashes: Vec<String>,
    #[serde(default)]
    pub unsafe_skip_ca_verification: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileDiscovery {
    pub kube_config_path: String,
}

pub mod v1beta4 {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Arg {
        pub name: String,
        pub value: String,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct NodeRegistrationOptions {
        #[serde(default)]
        pub name: String,
        #[serde(rename = "criSocket", default)]
        pub cri_socket: String,
        pub taints: Option<Vec<Value>>,
        #[serde(default)]
        pub kubelet_extra_args: Vec<Arg>,
        #[serde(default)]
        pub ignore_preflight_errors: Vec<String>,
        #[serde(default)]
        pub image_pull_policy: String,
        pub image_pull_serial: Option<bool>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct InitConfiguration {
        pub api_version: String,
        pub kind: String,
        #[serde(default)]
        pub bootstrap_tokens: Vec<Value>,
        #[serde(default)]
        pub dry_run: bool,
        #[serde(default)]
        pub node_registration: NodeRegistrationOptions,
        #[serde(rename = "localAPIEndpoint", default)]
        pub local_api_endpoint: ApiEndpoint,
        #[serde(default)]
        pub certificate_key: String,
        #[serde(default)]
        pub skip_phases: Vec<String>,
        pub patches: Option<Value>,
        pub timeouts: Option<Value>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct ControlPlaneComponent {
        #[serde(default)]
        pub extra_args: Vec<Arg>,
        #[serde(default)]
        pub extra_volumes: Vec<Value>,
        #[serde(default)]
        pub extra_envs: Vec<Value>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct ApiServer {
        #[serde(default)]
        pub extra_args: Vec<Arg>,
        #[serde(default)]
        pub extra_volumes: Vec<Value>,
        #[serde(default)]
        pub extra_envs: Vec<Value>,
        #[serde(rename = "certSANs", default)]
        pub cert_sans: Vec<String>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Networking {
        #[serde(default)]
        pub service_subnet: String,
        #[serde(default)]
        pub pod_subnet: String,
        #[serde(rename = "dnsDomain", default)]
        pub dns_domain: String,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct LocalEtcd {
        #[serde(default)]
        pub image_repository: String,
        #[serde(default)]
        pub image_tag: String,
        #[serde(default)]
        pub data_dir: String,
        #[serde(default)]
        pub extra_args: Vec<Arg>,
        #[serde(default)]
        pub extra_envs: Vec<Value>,
        #[serde(rename = "serverCertSANs", default)]
        pub server_cert_sans: Vec<String>,
        #[serde(rename = "peerCertSANs", default)]
        pub peer_cert_sans: Vec<String>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Etcd {
        pub local: Option<LocalEtcd>,
        pub external: Option<Value>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Dns {
        #[serde(default)]
        pub image_repository: String,
        #[serde(default)]
        pub image_tag: String,
        #[serde(default)]
        pub disabled: bool,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Proxy {
        #[serde(default)]
        pub disabled: bool,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct ClusterConfiguration {
        pub api_version: String,
        pub kind: String,
        #[serde(default)]
        pub etcd: Etcd,
        #[serde(default)]
        pub networking: Networking,
        #[serde(default)]
        pub kubernetes_version: String,
        #[serde(default)]
        pub control_plane_endpoint: String,
        #[serde(rename = "apiServer", default)]
        pub api_server: ApiServer,
        #[serde(default)]
        pub controller_manager: ControlPlaneComponent,
        #[serde(default)]
        pub scheduler: ControlPlaneComponent,
        #[serde(default)]
        pub dns: Dns,
        #[serde(default)]
        pub proxy: Proxy,
        #[serde(default)]
        pub certificates_dir: String,
        #[serde(default)]
        pub image_repository: String,
        #[serde(default)]
        pub feature_gates: BTreeMap<String, bool>,
        #[serde(default)]
        pub cluster_name: String,
        /// `EncryptionAlgorithmType`: RSA-2048, RSA-3072, RSA-4096, ECDSA-P256, ECDSA-P384.
        #[serde(default)]
        pub encryption_algorithm: String,
        /// A Go duration (`metav1.Duration`).
        pub certificate_validity_period: Option<String>,
        #[serde(rename = "caCertificateValidityPeriod")]
        pub ca_certificate_validity_period: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Discovery {
        pub bootstrap_token: Option<BootstrapTokenDiscovery>,
        pub file: Option<FileDiscovery>,
        #[serde(default)]
        pub tls_bootstrap_token: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct JoinControlPlane {
        #[serde(rename = "localAPIEndpoint", default)]
        pub local_api_endpoint: ApiEndpoint,
        #[serde(default)]
        pub certificate_key: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct JoinConfiguration {
        pub api_version: String,
        pub kind: String,
        #[serde(default)]
        pub dry_run: bool,
        #[serde(default)]
        pub node_registration: NodeRegistrationOptions,
        #[serde(default)]
        pub ca_cert_path: String,
        pub discovery: Discovery,
        pub control_plane: Option<JoinControlPlane>,
        #[serde(default)]
        pub skip_phases: Vec<String>,
        pub patches: Option<Value>,
        pub timeouts: Option<Value>,
    }
}

pub mod v1beta3 {
    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct NodeRegistrationOptions {
        #[serde(default)]
        pub name: String,
        #[serde(rename = "criSocket", default)]
        pub cri_socket: String,
        pub taints: Option<Vec<Value>>,
        #[serde(default)]
        pub kubelet_extra_args: BTreeMap<String, String>,
        #[serde(default)]
        pub ignore_preflight_errors: Vec<String>,
        #[serde(default)]
        pub image_pull_policy: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct InitConfiguration {
        pub api_version: String,
        pub kind: String,
        #[serde(default)]
        pub bootstrap_tokens: Vec<Value>,
        #[serde(default)]
        pub node_registration: NodeRegistrationOptions,
        #[serde(rename = "localAPIEndpoint", default)]
        pub local_api_endpoint: ApiEndpoint,
        #[serde(default)]
        pub certificate_key: String,
        #[serde(default)]
        pub skip_phases: Vec<String>,
        pub patches: Option<Value>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct ControlPlaneComponent {
        #[serde(default)]
        pub extra_args: BTreeMap<String, String>,
        #[serde(default)]
        pub extra_volumes: Vec<Value>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct ApiServer {
        #[serde(default)]
        pub extra_args: BTreeMap<String, String>,
        #[serde(default)]
        pub extra_volumes: Vec<Value>,
        #[serde(rename = "certSANs", default)]
        pub cert_sans: Vec<String>,
        pub timeout_for_control_plane: Option<String>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Networking {
        #[serde(default)]
        pub service_subnet: String,
        #[serde(default)]
        pub pod_subnet: String,
        #[serde(rename = "dnsDomain", default)]
        pub dns_domain: String,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct LocalEtcd {
        #[serde(default)]
        pub image_repository: String,
        #[serde(default)]
        pub image_tag: String,
        #[serde(default)]
        pub data_dir: String,
        #[serde(default)]
        pub extra_args: BTreeMap<String, String>,
        #[serde(rename = "serverCertSANs", default)]
        pub server_cert_sans: Vec<String>,
        #[serde(rename = "peerCertSANs", default)]
        pub peer_cert_sans: Vec<String>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Etcd {
        pub local: Option<LocalEtcd>,
        pub external: Option<Value>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Dns {
        #[serde(default)]
        pub image_repository: String,
        #[serde(default)]
        pub image_tag: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct ClusterConfiguration {
        pub api_version: String,
        pub kind: String,
        #[serde(default)]
        pub etcd: Etcd,
        #[serde(default)]
        pub networking: Networking,
        #[serde(default)]
        pub kubernetes_version: String,
        #[serde(default)]
        pub control_plane_endpoint: String,
        #[serde(rename = "apiServer", default)]
        pub api_server: ApiServer,
        #[serde(default)]
        pub controller_manager: ControlPlaneComponent,
        #[serde(default)]
        pub scheduler: ControlPlaneComponent,
        #[serde(default)]
        pub dns: Dns,
        #[serde(default)]
        pub certificates_dir: String,
        #[serde(default)]
        pub image_repository: String,
        #[serde(default)]
        pub feature_gates: BTreeMap<String, bool>,
        #[serde(default)]
        pub cluster_name: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Discovery {
        pub bootstrap_token: Option<BootstrapTokenDiscovery>,
        pub file: Option<FileDiscovery>,
        #[serde(default)]
        pub tls_bootstrap_token: String,
        pub timeout: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct JoinControlPlane {
        #[serde(rename = "localAPIEndpoint", default)]
        pub local_api_endpoint: ApiEndpoint,
        #[serde(default)]
        pub certificate_key: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct JoinConfiguration {
        pub api_version: String,
        pub kind: String,
        #[serde(default)]
        pub node_registration: NodeRegistrationOptions,
        #[serde(default)]
        pub ca_cert_path: String,
        pub discovery: Discovery,
        pub control_plane: Option<JoinControlPlane>,
        #[serde(default)]
        pub skip_phases: Vec<String>,
        pub patches: Option<Value>,
    }
}

/// The KubeletConfiguration fields a bundle may set (the kubelet's own type
/// has many more; any other key here is not one the ceremony writes).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeletConfiguration {
    pub api_version: String,
    pub kind: String,
    pub rotate_certificates: Option<bool>,
    pub server_tls_bootstrap: Option<bool>,
    #[serde(rename = "tlsCertFile")]
    pub tls_cert_file: Option<String>,
    #[serde(rename = "tlsPrivateKeyFile")]
    pub tls_private_key_file: Option<String>,
}

/// One document of a kubeadm configuration file, by apiVersion and kind.
#[derive(Debug)]
pub enum Doc {
    InitV4(v1beta4::InitConfiguration),
    ClusterV4(v1beta4::ClusterConfiguration),
    JoinV4(v1beta4::JoinConfiguration),
    InitV3(v1beta3::InitConfiguration),
    ClusterV3(v1beta3::ClusterConfiguration),
    JoinV3(v1beta3::JoinConfiguration),
    Kubelet(KubeletConfiguration),
}

/// Every document of `text`, each decoded strictly by its apiVersion and kind.
pub fn parse(text: &str) -> Result<Vec<Doc>, String> {
    let mut out = Vec::new();
    for d in serde_norway::Deserializer::from_str(text) {
        let v = serde_norway::Value::deserialize(d).map_err(|e| e.to_string())?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        let (api, kind) = (field("apiVersion"), field("kind"));
        fn de<T: serde::de::DeserializeOwned>(v: &serde_norway::Value) -> Result<T, String> {
            serde_norway::from_value(v.clone()).map_err(|e| e.to_string())
        }
        out.push(match (api.as_str(), kind.as_str()) {
            ("kubeadm.k8s.io/v1beta4", "InitConfiguration") => Doc::InitV4(de(&v)?),
            ("kubeadm.k8s.io/v1beta4", "ClusterConfiguration") => Doc::ClusterV4(de(&v)?),
            ("kubeadm.k8s.io/v1beta4", "JoinConfiguration") => Doc::JoinV4(de(&v)?),
            ("kubeadm.k8s.io/v1beta3", "InitConfiguration") => Doc::InitV3(de(&v)?),
            ("kubeadm.k8s.io/v1beta3", "ClusterConfiguration") => Doc::ClusterV3(de(&v)?),
            ("kubeadm.k8s.io/v1beta3", "JoinConfiguration") => Doc::JoinV3(de(&v)?),
            ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration") => Doc::Kubelet(de(&v)?),
            other => return Err(format!("not a kubeadm document: {other:?}")),
        });
    }
    Ok(out)
}
