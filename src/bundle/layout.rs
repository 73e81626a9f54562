//! Every path of OUT and of a node's bundle, spelled once: the run writes
//! them, `verify`, `inspect`, `check` and the screens read them from here.
//!
//! ```text
//! OUT/root-ca.crt  cas/<role>-ca.crt  chains/<role>-ca-chain.crt  [crls/<role>-ca.crl]
//!     nodes/<name>/etc/kubernetes/…  [continuation.json]  plan.toml  inputs.sha256  SHA256SUMS
//!     audit.log.age  transcript.md  audit.seal.json
//! ```

use crate::plan::CaRole;

/// The offline root, for humans, auditors and OpenSSL clients.
pub const ROOT_CA: &str = "root-ca.crt";
/// The reviewed plan, so OUT alone tells what was meant.
pub const PLAN: &str = "plan.toml";
/// The ceremony's inputs (the plan, its names file, every CSR and file
/// brought beside one, the previous output), one `<sha256>  <kind> <path>`
/// line each: its SHA-256 is the inputs SHA-256 the witnesses approved.
pub const INPUTS: &str = "inputs.sha256";
/// `sha256sum -c` manifest of every file written before it.
pub const SHA256SUMS: &str = "SHA256SUMS";
/// The sealed, age-encrypted audit log.
pub const AUDIT_LOG: &str = "audit.log.age";
/// The facts the witnesses sign on paper.
pub const TRANSCRIPT: &str = "transcript.md";
/// The seal in clear: the `end` record's line and the root's signature over
/// its hash, so the next ceremony (and anyone with root-ca.crt) checks the
/// outputs against the seal without the encrypted log.
pub const SEAL: &str = "audit.seal.json";
/// A continuing ceremony's account of the nodes: which it renewed, added,
/// and left untouched (their bundles are in the previous outputs).
pub const CONTINUATION: &str = "continuation.json";
/// Written after SHA256SUMS, so not listed in it (each holds a hash that
/// covers SHA256SUMS).
pub const AFTER_MANIFEST: [&str; 3] = [AUDIT_LOG, TRANSCRIPT, SEAL];
/// The folder of every node's bundle.
pub const NODES: &str = "nodes";

/// A backup's directory in OUT: the wrapped CA keys, their public keys and
/// certificates, and the manifest a restore reads.
pub const BACKUP: &str = "backup";
/// The backup's manifest (check value, threshold, commitments, keys).
pub const BACKUP_MANIFEST: &str = "backup/backup.json";

/// A CA key wrapped under the wrap key, e.g. `backup/root.key.wrapped`.
pub fn backup_blob(role: CaRole) -> String {
    format!("{BACKUP}/{}.key.wrapped", role.name())
}

/// A backed-up CA's certificate (PEM), e.g. `backup/root.crt`.
pub fn backup_cert(role: CaRole) -> String {
    format!("{BACKUP}/{}.crt", role.name())
}

/// A backed-up CA's public key (PEM), e.g. `backup/root.pub`.
pub fn backup_public(role: CaRole) -> String {
    format!("{BACKUP}/{}.pub", role.name())
}

/// `cas/<role>-ca.crt`: an intermediate alone.
pub fn ca_file(role: CaRole) -> String {
    format!("cas/{}-ca.crt", role.name())
}

/// `chains/<role>-ca-chain.crt`: an intermediate, then the root.
pub fn chain_file(role: CaRole) -> String {
    format!("chains/{}-ca-chain.crt", role.name())
}

/// `crls/<role>-ca.crl`: a CA's CRL (PEM), the root's listing revoked
/// intermediates, each intermediate's its revoked leaves.
pub fn crl_file(role: CaRole) -> String {
    format!("crls/{}-ca.crl", role.name())
}

/// The etcd CA's CRL in a control-plane node's bundle (relative to its
/// etc/kubernetes), where etcd's `--client-crl-file` and
/// `--peer-crl-file` read it.
pub const ETCD_CRL: &str = "pki/etcd/crl.pem";
/// The kubelet signer's certificate alone (signed by the kubernetes CA).
pub const KUBELET_SIGNER: &str = "cas/kubelet-signer.crt";
/// The kubernetes CA then the kubelet signer: kube-apiserver's
/// `--client-ca-file` when the controller-manager signs kubelets with the signer.
pub const KUBELET_CLIENT_CA_BUNDLE: &str = "kubelet-signer/client-ca-bundle.crt";
/// On a control-plane node (under etc/kubernetes): the signer's certificate,
/// read by kube-controller-manager's `--cluster-signing-kubelet-*-cert-file`
/// (the installer puts the node-held key beside it as `kubelet-signer.key`).
pub const NODE_KUBELET_SIGNER: &str = "pki/kubelet-signer.crt";
/// The signer's key, made and kept on the control-plane nodes.
pub const NODE_KUBELET_SIGNER_KEY: &str = "pki/kubelet-signer.key";
/// On a control-plane node: kube-apiserver's `--client-ca-file`.
pub const NODE_KUBELET_CLIENT_CA_BUNDLE: &str = "pki/kubelet-client-ca-bundle.crt";

/// `nodes/<name>`: everything one node receives.
pub fn node_dir(name: &str) -> String {
    format!("{NODES}/{name}")
}

/// `nodes/<name>/etc/kubernetes`: what the installer copies onto the node.
pub fn node_root(name: &str) -> String {
    format!("{NODES}/{name}/etc/kubernetes")
}

/// A node's kubeadm configuration, relative to its `etc/kubernetes`
/// (kubeadm itself writes no file of that name).
pub const KUBEADM_CONFIG: &str = "kubeadm-config.yaml";

/// `nodes/<name>/etc/kubernetes/kubeadm-config.yaml`.
pub fn kubeadm_config(name: &str) -> String {
    format!("{}/{KUBEADM_CONFIG}", node_root(name))
}

/// `nodes/<name>.tar.age`: a node delivered encrypted, its whole tree
/// (`etc/kubernetes/…`) as one tar archive encrypted to its recipient.
pub fn sealed_node(name: &str) -> String {
    format!("{NODES}/{name}{SEALED_SUFFIX}")
}

/// The suffix of an encrypted node's archive.
pub const SEALED_SUFFIX: &str = ".tar.age";

/// The node an encrypted archive of OUT belongs to (`nodes/<name>.tar.age`).
pub fn sealed_node_of(path: &str) -> Option<&str> {
    path.strip_prefix("nodes/")
        .and_then(|r| r.strip_suffix(SEALED_SUFFIX))
        .filter(|n| !n.is_empty() && !n.contains('/'))
}

/// The node a path of OUT belongs to (`nodes/<name>/…`), if any.
pub fn node_of(path: &str) -> Option<&str> {
    path.strip_prefix("nodes/")
        .and_then(|r| r.split_once('/'))
        .map(|(name, _)| name)
}

/// The CA files of a node's bundle, relative to its `etc/kubernetes`: each
/// holds exactly its intermediate (kubeadm reads the first certificate).
pub use crate::profile::kubeadm::CA_FILES;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(ca_file(CaRole::FrontProxy), "cas/front-proxy-ca.crt");
        assert_eq!(chain_file(CaRole::Etcd), "chains/etcd-ca-chain.crt");
        assert_eq!(crl_file(CaRole::Root), "crls/root-ca.crl");
        assert_eq!(node_root("cp1"), "nodes/cp1/etc/kubernetes");
        assert_eq!(node_of("nodes/w1/etc/kubernetes/kubelet.conf"), Some("w1"));
        assert_eq!(node_of("root-ca.crt"), None);
        assert_eq!(node_of("nodes/w1"), None);
        assert_eq!(node_of("nodes/w1.tar.age"), None);
        assert_eq!(sealed_node_of("nodes/w1.tar.age"), Some("w1"));
        assert_eq!(sealed_node_of("nodes/w1/x.tar.age"), None);
        assert_eq!(sealed_node("cp1"), "nodes/cp1.tar.age");
    }
}
