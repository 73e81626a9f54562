//! The files of OUT beside the nodes' bundles: the root, each intermediate
//! alone and with its chain, the reviewed plan, and SHA256SUMS.

use super::layout;
use super::write::{self, OutputError, Staging};
use crate::x509;

/// A CA certificate as the run made or found it.
pub struct CaCert<'a> {
    pub role: crate::plan::CaRole,
    pub der: &'a [u8],
    /// Its trust file: `der` first, then any other certificate trusted
    /// during a rotation's overlap.
    pub trust_pem: String,
}

/// `root-ca.crt`, then for each intermediate `cas/<role>-ca.crt` (its trust
/// file: alone, or during a rotation's overlap the certificate that signs
/// the leaves then the other) and `chains/<role>-ca-chain.crt` (the signing
/// intermediate, then root). `cas[0]` is the root.
pub fn write_ca_files(st: &mut Staging, cas: &[CaCert<'_>]) -> Result<(), OutputError> {
    let Some((root, intermediates)) = cas.split_first() else {
        return Ok(());
    };
    let root_pem = x509::to_pem(root.der);
    st.write(layout::ROOT_CA, root_pem.as_bytes(), write::PUBLIC)?;
    for ca in intermediates {
        st.write(
            &layout::ca_file(ca.role),
            ca.trust_pem.as_bytes(),
            write::PUBLIC,
        )?;
        let chain = x509::to_pem(ca.der) + &root_pem;
        st.write(
            &layout::chain_file(ca.role),
            chain.as_bytes(),
            write::PUBLIC,
        )?;
    }
    Ok(())
}

/// Each issued node's `kubeadm-config.yaml` (0600: the installer writes the
/// bootstrap token into it); `only` None: every node of the cluster.
pub fn write_kubeadm_configs(
    st: &mut Staging,
    cl: &crate::plan::ClusterSpec,
    kubernetes_ca_der: &[u8],
    only: Option<&std::collections::BTreeSet<String>>,
) -> Result<(), crate::error::CeremonyError> {
    let names = cl
        .control_plane
        .iter()
        .map(|n| &n.name)
        .chain(cl.workers.iter())
        .filter(|n| only.is_none_or(|o| o.contains(*n)));
    for name in names {
        let text = super::kubeadm_config::render(cl, name, kubernetes_ca_der)
            .map_err(crate::error::CeremonyError::Internal)?;
        if let Some(text) = text {
            st.write(
                &layout::kubeadm_config(name),
                text.as_bytes(),
                write::SECRET,
            )?;
        }
    }
    Ok(())
}

/// The kubelet signer (`signer`, DER) and the trust file kube-apiserver's
/// `--client-ca-file` reads (the kubernetes CA, then the signer: certificates
/// the controller-manager signs with the signer carry no chain), into OUT and
/// into every control-plane node this ceremony writes (`only`: those of a
/// continuing ceremony; None: all).
pub fn write_kubelet_signer(
    st: &mut Staging,
    cl: &crate::plan::ClusterSpec,
    signer: &[u8],
    kubernetes: &[u8],
    only: Option<&std::collections::BTreeSet<String>>,
) -> Result<(), OutputError> {
    let pem = x509::to_pem(signer);
    let bundle = x509::to_pem(kubernetes) + &pem;
    st.write(layout::KUBELET_SIGNER, pem.as_bytes(), write::PUBLIC)?;
    st.write(
        layout::KUBELET_CLIENT_CA_BUNDLE,
        bundle.as_bytes(),
        write::PUBLIC,
    )?;
    for n in cl
        .control_plane
        .iter()
        .filter(|n| only.is_none_or(|o| o.contains(&n.name)))
    {
        let root = layout::node_root(&n.name);
        st.write(
            &format!("{root}/{}", layout::NODE_KUBELET_SIGNER),
            pem.as_bytes(),
            write::PUBLIC,
        )?;
        st.write(
            &format!("{root}/{}", layout::NODE_KUBELET_CLIENT_CA_BUNDLE),
            bundle.as_bytes(),
            write::PUBLIC,
        )?;
    }
    Ok(())
}

/// The reviewed plan, the manifest of the inputs, and SHA256SUMS, the last
/// files before the sealed log. SHA256SUMS is `sha256sum -c` clean: file
/// lines only. The tool's and module's hashes are in the audit log and
/// transcript.md; SHA256SUMS's own hash is in the log's `end` record.
pub fn write_plan_and_sums(
    st: &mut Staging,
    plan_text: &str,
    inputs_manifest: &str,
) -> Result<(), OutputError> {
    st.write(layout::PLAN, plan_text.as_bytes(), write::PUBLIC)?;
    st.write(layout::INPUTS, inputs_manifest.as_bytes(), write::PUBLIC)?;
    let sums = sha256sums(st);
    st.write(layout::SHA256SUMS, sums.as_bytes(), write::PUBLIC)
}

/// `sha256sum -c` compatible manifest of everything written so far, by path.
pub fn sha256sums(st: &Staging) -> String {
    let mut files: Vec<&(String, [u8; 32], u32)> = st.written().iter().collect();
    files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::with_capacity(files.iter().map(|f| 67 + f.0.len()).sum());
    let mut hex = [0u8; 64];
    for (path, sha, _) in files {
        // Writes exactly 64 ASCII digits into a 64-byte buffer: cannot fail.
        let _ = hex::encode_to_slice(sha, &mut hex);
        out.push_str(std::str::from_utf8(&hex).unwrap_or_default());
        out.push_str("  ");
        out.push_str(path);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256sums_lists_every_file_by_path() {
        let d = tempfile::tempdir().unwrap();
        let mut st = Staging::begin(&d.path().join("out"), &[5; 32]).unwrap();
        for (path, body) in [("nodes/w2/b", "2"), ("a.crt", "1"), ("nodes/w10/b", "3")] {
            st.write(path, body.as_bytes(), write::PUBLIC).unwrap();
        }
        let line = |body: &str, path: &str| {
            format!("{}  {path}\n", hex::encode(x509::sha256(body.as_bytes())))
        };
        assert_eq!(
            sha256sums(&st),
            [
                line("1", "a.crt"),
                line("3", "nodes/w10/b"),
                line("2", "nodes/w2/b")
            ]
            .concat()
        );
    }
}
