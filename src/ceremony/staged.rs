//! Everything `run` writes into the staging directory before the seal:
//! the CA files, every node's bundle (the pipeline, or signed from CSRs),
//! users, CRLs, the kubelet signer, the encrypted nodes' archives, then
//! plan.toml, inputs.sha256 and SHA256SUMS.

// The run's own vocabulary (its imports and modules), as in mod.rs.
use super::*;

/// What `write_outputs` needs to sign the CRLs: what they hold, and the
/// announcement of each signature (confirmed when the token is asked).
pub(super) struct Crls<'a> {
    pub(super) revocations: &'a crl::Revocations,
    pub(super) announce: &'a dyn Fn(&str),
}

/// The CA files (the root, each intermediate alone, each chain: intermediate
/// then root), every node's bundle, plan.toml, inputs.sha256 and
/// SHA256SUMS, into the staging directory (`seal_and_commit` adds the
/// sealed log and commits). `inputs` are the inputs the preflight showed.
#[allow(clippy::too_many_arguments)] // the run's parts, passed explicitly
pub(super) fn write_outputs(
    token: &dyn Token,
    out: &Path,
    loaded: &LoadedPlan,
    inputs: &Manifest,
    cas: &[CaState],
    mut run: bundle::LeafRun,
    continuation: Option<&chain::Continuation>,
    backup: Option<backup::Wrapped<'_>>,
    crls: Crls<'_>,
    signer: Option<&(Vec<u8>, Vec<u8>)>,
    audit: &mut dyn Audit,
) -> Result<Staging, CeremonyError> {
    let now = run.now;
    let only = continuation.map(|c| c.selection.issued());
    let intake = reread_inputs(loaded, inputs, continuation)?;
    let mut st = Staging::begin(out, &inputs.digest)?;
    // Nodes delivered encrypted: their files are held in memory, never
    // written in clear, then written as one archive each.
    let sealed: Vec<(String, String)> = loaded
        .plan
        .cluster
        .iter()
        .flat_map(|cl| cl.node_recipients.iter())
        .filter(|(n, _)| only.as_ref().is_none_or(|o| o.contains(*n)))
        .map(|(n, r)| (n.clone(), r.clone()))
        .collect();
    st.hold_nodes(sealed.iter().map(|(n, _)| n.clone()));
    let certs: Vec<outputs::CaCert<'_>> = cas
        .iter()
        .map(|c| outputs::CaCert {
            role: c.role,
            der: &c.der,
            trust_pem: c.trust_pem(),
        })
        .collect();
    outputs::write_ca_files(&mut st, &certs)?;
    if let Some((spec, prepared, blobs)) = backup {
        backup::write_outputs(&mut st, &loaded.plan, spec, prepared, cas, blobs)?;
    }
    if let Some(c) = continuation {
        // Only the renewed and added nodes; the service-account pair carried.
        run.only = Some(c.selection.issued());
        if c.rotate_sa_key {
            run.sa_previous_public = c.sa.as_ref().map(|sa| sa.public.clone());
        } else {
            run.sa_given = c.sa.as_ref().map(|sa| bundle::GivenSa {
                key: sa.key.clone(),
                public: sa.public.clone(),
            });
        }
        st.write(
            crate::bundle::layout::CONTINUATION,
            chain::manifest(c)?.as_bytes(),
            write::PUBLIC,
        )?;
    }
    if let Some(cl) = &loaded.plan.cluster {
        match cl.mode {
            plan::LeafMode::Generate => bundle::write_nodes(token, &mut st, cl, cas, run, audit)?,
            plan::LeafMode::Csr => {
                // A continuing ceremony carries the pair unless the nodes
                // bring theirs (checked against it by `read_inputs`).
                let carried = continuation
                    .filter(|c| !c.rotate_sa_key)
                    .and_then(|c| c.sa.as_ref())
                    .map(|sa| bundle::GivenSa {
                        key: sa.key.clone(),
                        public: sa.public.clone(),
                    });
                let sa = from_csr::Sa {
                    carried: carried.as_ref(),
                };
                from_csr::write_nodes(token, &mut st, cl, cas, &intake, sa, now, audit)?
            }
        }
    }
    // Generate mode writes each node's configuration with its files.
    if let Some(cl) = loaded
        .plan
        .cluster
        .as_ref()
        .filter(|cl| cl.mode == plan::LeafMode::Csr)
    {
        let kube_ca = &cas[plan::CaRole::Kubernetes as usize].der;
        outputs::write_kubeadm_configs(&mut st, cl, kube_ca, only.as_ref())?;
    }
    from_csr::write_users(token, &mut st, loaded, cas, &intake, now, audit)?;
    crl::sign_and_write(
        token,
        crls.announce,
        &mut st,
        cas,
        crls.revocations,
        now,
        &crl::etcd_nodes(loaded, continuation),
        audit,
    )?;
    if let (Some((signer, kubernetes)), Some(cl)) = (signer, &loaded.plan.cluster) {
        outputs::write_kubelet_signer(&mut st, cl, signer, kubernetes, only.as_ref())?;
    }
    // Last: every file of an encrypted node is written, now seal it.
    for (node, recipient) in &sealed {
        write_sealed(&mut st, node, recipient, now)?;
    }
    // The reviewed plan itself, so OUT alone tells what was meant; then
    // SHA256SUMS. audit.log.age and transcript.md come after it and cannot
    // be listed (each holds a hash that covers SHA256SUMS).
    outputs::write_plan_and_sums(&mut st, &loaded.text, &inputs.text)?;
    Ok(st)
}

/// `nodes/<node>.tar.age`: the node's held files as a tar archive made in
/// memory, streamed through age to its recipient. The archive and the held
/// files are wiped when dropped.
fn write_sealed(
    st: &mut Staging,
    node: &str,
    recipient: &str,
    now: SystemTime,
) -> Result<(), CeremonyError> {
    let files = st.take_held(node);
    let mtime = crate::fmt::unix(now).max(0).unsigned_abs();
    let archive = crate::bundle::sealed::tar(&files, mtime)
        .map_err(|e| CeremonyError::Internal(format!("the archive of node {node}: {e}")))?;
    drop(files);
    let to = crate::audit::crypto::Recipients::parse(&[recipient.to_string()])?;
    st.write_with(
        &crate::bundle::layout::sealed_node(node),
        write::PUBLIC,
        |w| -> Result<(), CeremonyError> {
            let mut s = to.stream(w)?;
            let fail = |e: std::io::Error| {
                CeremonyError::Internal(format!("encrypting node {node}'s archive: {e}"))
            };
            std::io::Write::write_all(&mut s, &archive).map_err(fail)?;
            s.finish().map_err(fail)?;
            Ok(())
        },
    )
}
