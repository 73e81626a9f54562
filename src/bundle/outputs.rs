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
/// bootstrap token into it); `only` None: every node of the cluster. Made
/// and written a thousand nodes at a time, from a thread per core.
pub fn write_kubeadm_configs(
    st: &mut Staging,
    cl: &crate::plan::ClusterSpec,
    kubernetes_ca_der: &[u8],
    only: Option<&std::collections::BTreeSet<String>>,
) -> Result<(), crate::error::CeremonyError> {
    use super::kubeadm_config::{NodeKind, Renderer};
    const AT_ONCE: usize = 1024;
    let renderer =
        Renderer::new(cl, kubernetes_ca_der).map_err(crate::error::CeremonyError::Internal)?;
    let control_plane = cl.control_plane.iter().enumerate().map(|(i, n)| {
        let kind = match i {
            0 => NodeKind::Init,
            _ => NodeKind::JoinControlPlane(n.address),
        };
        (&n.name, kind)
    });
    let nodes = control_plane
        .chain(cl.workers.iter().map(|w| (w, NodeKind::Worker)))
        .filter(|(n, _)| only.is_none_or(|o| o.contains(*n)));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut files = Vec::with_capacity(AT_ONCE);
    for (name, kind) in nodes {
        let text = renderer
            .render(name, kind)
            .map_err(crate::error::CeremonyError::Internal)?;
        files.push((
            layout::kubeadm_config(name),
            text.into_bytes(),
            write::SECRET,
        ));
        if files.len() == AT_ONCE {
            st.write_all(std::mem::take(&mut files), threads)?;
        }
    }
    st.write_all(files, threads)?;
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
/// lines only, in the order the files were written (plan order), streamed
/// from the list of files written. The tool's and module's hashes are in the
/// audit log and transcript.md; SHA256SUMS's own hash is in the log's `end`
/// record. Returns that hash.
pub fn write_plan_and_sums(
    st: &mut Staging,
    plan_text: &str,
    inputs_manifest: &str,
) -> Result<[u8; 32], OutputError> {
    st.write(layout::PLAN, plan_text.as_bytes(), write::PUBLIC)?;
    st.write(layout::INPUTS, inputs_manifest.as_bytes(), write::PUBLIC)?;
    st.write_from_listing(layout::SHA256SUMS, write::PUBLIC, sha256sums_line)
}

/// A `sha256sum -c` line: 64 hex digits, two spaces, the path.
pub fn sha256sums_line((path, sha, _): &(String, [u8; 32], u32), out: &mut Vec<u8>) {
    let mut hex = [0u8; 64];
    // Writes exactly 64 ASCII digits into a 64-byte buffer: cannot fail.
    let _ = hex::encode_to_slice(sha, &mut hex);
    out.extend_from_slice(&hex);
    out.extend_from_slice(b"  ");
    out.extend_from_slice(path.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256sums_lists_every_file_in_the_order_written() {
        let d = tempfile::tempdir().unwrap();
        let mut st = Staging::begin(&d.path().join("out"), &[5; 32]).unwrap();
        for (path, body) in [("nodes/w2/b", "2"), ("a.crt", "1"), ("nodes/w10/b", "3")] {
            st.write(path, body.as_bytes(), write::PUBLIC).unwrap();
        }
        let line = |body: &str, path: &str| {
            format!("{}  {path}\n", hex::encode(x509::sha256(body.as_bytes())))
        };
        let sha = write_plan_and_sums(&mut st, "plan", "inputs").unwrap();
        let out = st.commit().unwrap();
        let sums = std::fs::read_to_string(out.join(layout::SHA256SUMS)).unwrap();
        assert_eq!(
            sums,
            [
                line("2", "nodes/w2/b"),
                line("1", "a.crt"),
                line("3", "nodes/w10/b"),
                line("plan", layout::PLAN),
                line("inputs", layout::INPUTS),
            ]
            .concat()
        );
        assert_eq!(sha, x509::sha256(sums.as_bytes()));
    }
}
