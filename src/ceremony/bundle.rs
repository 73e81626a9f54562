//! Issuing the kubeadm bundle: for every node, every leaf key made on the
//! laptop, every certificate signed by its intermediate through the token and
//! checked, written into the staging directory in kubeadm's layout.

use std::time::SystemTime;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::CeremonyError;
use super::ca::{BACKDATE, CaState};
use crate::audit::event::cert_info;
use crate::audit::{Audit, Event};
use crate::bundle::kubeconfig::{self, Kubeconfig};
use crate::bundle::write::{self, Staging};
use crate::leaf::{self, LeafError};
use crate::plan::{CaRole, ClusterSpec};
use crate::profile::kubeadm::{self, CA_FILES, LeafOutput, LeafSpec};
use crate::token::{Token, random_serial};
use crate::x509::{self, ToBeSigned};

impl From<LeafError> for CeremonyError {
    fn from(e: LeafError) -> Self {
        CeremonyError::Internal(e.to_string())
    }
}

/// `nodes/<name>/etc/kubernetes`: what the installer copies onto the node.
pub fn node_root(name: &str) -> String {
    format!("nodes/{name}/etc/kubernetes")
}

/// The number of certificates the bundle will hold (for progress and `check`).
pub fn leaf_count(cl: &ClusterSpec) -> usize {
    (0..cl.control_plane.len())
        .map(|i| kubeadm::control_plane_leaves(cl, i).len())
        .sum::<usize>()
        + cl.workers.len()
}

fn ca(cas: &[CaState], role: CaRole) -> &CaState {
    // `cas` holds the four roles in plan order (root, kubernetes, etcd, front-proxy).
    &cas[role as usize]
}

/// Issues one leaf through the token and writes its files.
#[allow(clippy::too_many_arguments)] // the flow's context, passed explicitly to stay testable
fn issue_leaf(
    token: &dyn Token,
    st: &mut Staging,
    cl: &ClusterSpec,
    cas: &[CaState],
    node: &str,
    spec: &LeafSpec,
    now: SystemTime,
    audit: &mut dyn Audit,
) -> Result<(), CeremonyError> {
    let issuer = ca(cas, spec.issuer);
    let key = leaf::generate(cl.leaf_key)?;
    let start = x509::truncate(now);
    let not_after = start + cl.leaf_validity;
    if not_after > issuer.not_after() {
        return Err(CeremonyError::Outlives {
            role: spec.issuer,
            end: x509::fmt_time(not_after),
            issuer_end: x509::fmt_time(issuer.not_after()),
        });
    }
    let profile = kubeadm::leaf_profile(
        spec,
        issuer.cert.tbs_certificate().subject(),
        &issuer.ski,
        cl.leaf_key,
    )
    .map_err(x509::X509Error::from)?;
    let serial = random_serial(token)?;
    let issued = x509::issue(
        ToBeSigned {
            profile: &profile,
            serial: &serial,
            not_before: start - BACKDATE,
            not_after,
            subject_spki: &key.spki,
            issuer_spki: &issuer.key.spki,
            issuer_key_type: issuer.key.key_type,
        },
        |tbs| token.sign(&issuer.key, tbs),
    )?;
    let base = node_root(node);
    let file = match &spec.output {
        LeafOutput::CertAndKey => format!("{base}/{}.crt", spec.path),
        LeafOutput::Kubeconfig { .. } => format!("{base}/{}", spec.path),
    };
    audit.record(Event::CertificateIssued(cert_info(
        &spec.display_name(),
        Some(node),
        Some(&file),
        spec.issuer.name(),
        &issued.cert,
        &issued.der,
    )))?;
    let cert_pem = x509::to_pem(&issued.der);
    match &spec.output {
        LeafOutput::CertAndKey => {
            st.write(
                &format!("{base}/{}.key", spec.path),
                key.private_pem.as_bytes(),
                write::SECRET,
            )?;
            st.write(
                &format!("{base}/{}.crt", spec.path),
                cert_pem.as_bytes(),
                write::PUBLIC,
            )?;
        }
        LeafOutput::Kubeconfig { server, cluster } => {
            let text = kubeconfig::render(&Kubeconfig {
                cluster,
                server,
                user: &spec.cn,
                ca_pem: &x509::to_pem(&ca(cas, CaRole::Kubernetes).der),
                cert_pem: &cert_pem,
                key_pem: &key.private_pem,
            });
            st.write(
                &format!("{base}/{}", spec.path),
                text.as_bytes(),
                write::SECRET,
            )?;
        }
    }
    Ok(())
}

/// Writes every node's etc/kubernetes into the staging directory; `audit`
/// records each certificate as it is signed.
pub fn write_nodes(
    token: &dyn Token,
    st: &mut Staging,
    cl: &ClusterSpec,
    cas: &[CaState],
    now: SystemTime,
    interactive: bool,
    audit: &mut dyn Audit,
) -> Result<(), CeremonyError> {
    let bar = ProgressBar::with_draw_target(
        Some(leaf_count(cl) as u64),
        if interactive {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "      {bar:30} {pos}/{len} certificates  {per_sec}  eta {eta}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // One service-account key pair, identical on every control-plane node.
    let sa = leaf::generate(cl.sa_key)?;
    let sa_pub = leaf::public_pem(&sa.spki).map_err(x509::X509Error::from)?;
    for (i, node) in cl.control_plane.iter().enumerate() {
        let base = node_root(&node.name);
        for (file, role) in CA_FILES {
            st.write(
                &format!("{base}/{file}"),
                x509::to_pem(&ca(cas, role).der).as_bytes(),
                write::PUBLIC,
            )?;
        }
        st.write(
            &format!("{base}/pki/sa.key"),
            sa.private_pem.as_bytes(),
            write::SECRET,
        )?;
        st.write(
            &format!("{base}/pki/sa.pub"),
            sa_pub.as_bytes(),
            write::SECRET,
        )?;
        for spec in kubeadm::control_plane_leaves(cl, i) {
            bar.set_message(format!("{} {}", node.name, spec.display_name()));
            issue_leaf(token, st, cl, cas, &node.name, &spec, now, audit)?;
            bar.inc(1);
        }
        if i == 0 {
            // Test-only crash point: some leaves signed (and recorded), not all.
            crate::failpoint::hit("mid-leaves");
        }
    }
    for name in &cl.workers {
        let base = node_root(name);
        st.write(
            &format!("{base}/pki/ca.crt"),
            x509::to_pem(&ca(cas, CaRole::Kubernetes).der).as_bytes(),
            write::PUBLIC,
        )?;
        for spec in kubeadm::worker_leaves(cl, name) {
            bar.set_message(format!("{name} {}", spec.display_name()));
            issue_leaf(token, st, cl, cas, name, &spec, now, audit)?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// `sha256sum -c` compatible manifest of everything written so far.
pub fn sha256sums(st: &Staging) -> String {
    let mut lines: Vec<String> = st
        .written()
        .iter()
        .map(|(path, sha, _)| format!("{}  {path}\n", hex::encode(sha)))
        .collect();
    lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
    lines.concat()
}
