//! Signing what CSR intake read and checked: every node's CSRs (CSR mode)
//! and every user's kubeconfig, each leaf through `issue::leaf`, each
//! node's tree (a copy of what it brought, the certificates beside its
//! CSRs, its kubeconfigs completed) into the staging directory. Called only
//! with an intake without refusals.

//! The flow of `[leaves] mode = "csr"` and of `[[users]]`: read every node's
//! CSR tree, check all of it before the token signs anything, then sign
//! through the token and write each node's tree (a copy; the input is only
//! ever read) and each user's kubeconfig into the staging directory.
//!
//! Layout read (`csr_dir` is relative to the plan's directory):
//!
//! ```text
//! <csr_dir>/<cp-node>/etc/kubernetes/pki/<name>.csr [+ <name>.key]      as kubeadm certs generate-csr
//! <csr_dir>/<cp-node>/etc/kubernetes/<name>.conf.csr [+ partial <name>.conf with client-key-data]
//! <csr_dir>/<cp-node>/etc/kubernetes/pki/sa.pub [+ sa.key]               optional: the node's own SA key
//! <csr_dir>/<worker>/etc/kubernetes/kubelet.conf.csr [+ partial kubelet.conf]
//! ```
//!
//! Written: `nodes/<node>/etc/kubernetes/` with each CSR (and key brought
//! beside it) copied, `<name>.crt` beside each `pki/<name>.csr`, each
//! kubeconfig completed (without `client-key-data` when the node kept its
//! key), the CA files, and sa.key/sa.pub; `users/<name>.conf` per user.
//!
//! Policy: all or nothing. A node with one refused CSR gets nothing signed,
//! and because a ceremony is reviewed as a whole, one refusal anywhere stops
//! the run before the token signs anything (exit 2): `ceremony check` lists
//! every CSR and refusal beforehand.

use crate::audit::Audit;
use crate::bundle::kubeconfig::{self, Kubeconfig};
use crate::bundle::layout::node_root;
use crate::bundle::write::{self, Staging};
use crate::csr::intake::Intake;
use crate::error::CeremonyError;
use crate::issue::ca::CaState;
use crate::issue::pipeline::GivenSa;
use crate::keys::leaf::{self};
use crate::keytype::KeyType;
use crate::plan::{CaRole, ClusterSpec, LoadedPlan};
use crate::profile::kubeadm::{CA_FILES, LeafOutput, LeafSpec};
use crate::token::Token;
use crate::x509;
use spki::SubjectPublicKeyInfoOwned;
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

use crate::issue::leaf::issuer_of as ca_of;

/// What is signed and where it goes, for `sign`.
struct Leaf<'a> {
    spec: &'a LeafSpec,
    spki: &'a SubjectPublicKeyInfoOwned,
    key_type: KeyType,
    validity: Duration,
    /// The node (None for a user) and the output file relative to OUT.
    node: Option<&'a str>,
    file: String,
}

/// Signs the leaf's key with the profile of its spec through the token,
/// records it, and returns the certificate PEM. Nothing of the CSR but its
/// key reaches the certificate.
fn sign(
    token: &dyn Token,
    cas: &[CaState],
    leaf: Leaf<'_>,
    now: SystemTime,
    audit: &mut dyn Audit,
) -> Result<String, CeremonyError> {
    let request = crate::issue::leaf::Request {
        spec: leaf.spec,
        spki: leaf.spki,
        key_type: leaf.key_type,
        validity: leaf.validity,
        node: leaf.node,
        file: &leaf.file,
    };
    let issued = crate::issue::leaf::issue(token, cas, request, now, audit)?;
    Ok(x509::to_pem(&issued.der))
}

/// A kubeconfig for `spec`; without `client-key-data` when the key stayed
/// with its owner (who adds it before use).
fn kubeconfig_text(
    spec: &LeafSpec,
    cas: &[CaState],
    cert_pem: &str,
    key_pem: Option<&str>,
) -> Result<Zeroizing<String>, CeremonyError> {
    let LeafOutput::Kubeconfig { server, cluster } = &spec.output else {
        return Err(CeremonyError::Internal(format!(
            "{} is not a kubeconfig profile",
            spec.path
        )));
    };
    let ca_pem = ca_of(cas, CaRole::Kubernetes)?.trust_pem();
    Ok(kubeconfig::render(&Kubeconfig {
        cluster,
        server,
        user: &spec.cn,
        ca_data: &kubeconfig::ca_data(&ca_pem),
        cert_pem,
        key_pem,
    }))
}

/// Where a CSR-mode ceremony's service-account pair comes from when the
/// nodes bring none.
pub struct Sa<'a> {
    /// A continuing ceremony's pair, written byte for byte; None: one pair
    /// made here.
    pub carried: Option<&'a GivenSa>,
}

/// Signs every node's CSRs and writes every node's tree (CSR mode). Called
/// only with an intake without refusals.
#[allow(clippy::too_many_arguments)] // the run's context, each used once
pub fn write_nodes(
    token: &dyn Token,
    st: &mut Staging,
    cl: &ClusterSpec,
    cas: &[CaState],
    intake: &Intake,
    sa: Sa<'_>,
    now: SystemTime,
    audit: &mut dyn Audit,
) -> Result<(), CeremonyError> {
    let refusals = intake.refusals();
    if !refusals.is_empty() {
        return Err(CeremonyError::CsrRefused(refusals));
    }
    // sa.key/sa.pub: the nodes' own (identical on each, checked), the
    // carried pair, or one pair made here, identical on every control-plane
    // node.
    let brought = intake
        .nodes
        .iter()
        .any(|n| n.check.control_plane && n.check.sa.is_some());
    let made = if brought || sa.carried.is_some() || cl.control_plane.is_empty() {
        None
    } else {
        let sa = leaf::generate(cl.sa_key)?;
        let public = leaf::public_pem(&sa.spki).map_err(x509::X509Error::from)?;
        Some((sa, public))
    };
    for node in &intake.nodes {
        let c = &node.check;
        let base = node_root(&c.node);
        // What the node brought goes into its tree as checked and encoded
        // again (one PEM block each), never as the bytes it came in.
        let put =
            |st: &mut Staging, rel: &str, text: &str, mode: u32| -> Result<(), CeremonyError> {
                Ok(st.write(&format!("{base}/{rel}"), text.as_bytes(), mode)?)
            };
        if c.control_plane {
            for (file, role) in CA_FILES {
                st.write(
                    &format!("{base}/{file}"),
                    ca_of(cas, role)?.trust_pem().as_bytes(),
                    write::PUBLIC,
                )?;
            }
            match (&c.sa, &made) {
                (Some(sa), _) => {
                    put(st, "pki/sa.pub", &sa.pub_pem, write::SECRET)?;
                    if let Some(key) = &sa.key_pem {
                        put(st, "pki/sa.key", key, write::SECRET)?;
                    }
                }
                (None, Some((key, public))) => {
                    st.write(
                        &format!("{base}/pki/sa.key"),
                        key.private_pem.as_bytes(),
                        write::SECRET,
                    )?;
                    st.write(
                        &format!("{base}/pki/sa.pub"),
                        public.as_bytes(),
                        write::SECRET,
                    )?;
                }
                (None, None) => {
                    let Some(given) = sa.carried else {
                        return Err(CeremonyError::Internal(format!(
                            "no service-account key for {}",
                            c.node
                        )));
                    };
                    st.write(&format!("{base}/pki/sa.key"), &given.key, write::SECRET)?;
                    st.write(&format!("{base}/pki/sa.pub"), &given.public, write::SECRET)?;
                }
            }
        } else {
            st.write(
                &format!("{base}/pki/ca.crt"),
                ca_of(cas, CaRole::Kubernetes)?.trust_pem().as_bytes(),
                write::PUBLIC,
            )?;
        }
        for a in &c.accepted {
            let file = match &a.spec.output {
                LeafOutput::CertAndKey => format!("{base}/{}.crt", a.spec.path),
                LeafOutput::Kubeconfig { .. } => format!("{base}/{}", a.spec.path),
            };
            let leaf = Leaf {
                spec: &a.spec,
                spki: &a.csr.spki,
                key_type: a.csr.key_type,
                validity: cl.leaf_validity,
                node: Some(&c.node),
                file,
            };
            let cert_pem = sign(token, cas, leaf, now, audit)?;
            put(st, &a.csr_file, &a.csr.pem, write::PUBLIC)?;
            match &a.spec.output {
                LeafOutput::CertAndKey => {
                    st.write(
                        &format!("{base}/{}.crt", a.spec.path),
                        cert_pem.as_bytes(),
                        write::PUBLIC,
                    )?;
                    if let Some((rel, key)) = &a.key_file {
                        put(st, rel, key, write::SECRET)?;
                    }
                }
                LeafOutput::Kubeconfig { .. } => {
                    let text = kubeconfig_text(
                        &a.spec,
                        cas,
                        &cert_pem,
                        a.client_key_pem.as_ref().map(|k| k.as_str()),
                    )?;
                    st.write(
                        &format!("{base}/{}", a.spec.path),
                        text.as_bytes(),
                        write::SECRET,
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// Writes `users/<name>.conf` for every `[[users]]` entry: the key made here
/// (kubeadm's leaf_key) unless the user brought a CSR.
pub fn write_users(
    token: &dyn Token,
    st: &mut Staging,
    loaded: &LoadedPlan,
    cas: &[CaState],
    intake: &Intake,
    now: SystemTime,
    audit: &mut dyn Audit,
) -> Result<(), CeremonyError> {
    if intake.users.is_empty() {
        return Ok(());
    }
    let Some(cl) = &loaded.plan.cluster else {
        // The plan's validation refuses users without [cluster].
        return Err(CeremonyError::Internal(
            "users to sign without a [cluster] section".into(),
        ));
    };
    for u in &intake.users {
        if !u.refusals.is_empty() {
            return Err(CeremonyError::CsrRefused(u.refusals.clone()));
        }
        let to_sign = |spki, key_type| Leaf {
            spec: &u.spec,
            spki,
            key_type,
            validity: u.validity,
            node: None,
            file: u.spec.path.clone(),
        };
        let text = match (&u.csr_file, &u.checked) {
            (Some(_), Some(c)) => {
                let cert = sign(token, cas, to_sign(&c.spki, c.key_type), now, audit)?;
                kubeconfig_text(&u.spec, cas, &cert, None)?
            }
            (Some(f), None) => {
                return Err(CeremonyError::Internal(format!("{f} was not checked")));
            }
            (None, _) => {
                let key = leaf::generate(cl.leaf_key)?;
                let cert = sign(token, cas, to_sign(&key.spki, key.key_type), now, audit)?;
                kubeconfig_text(&u.spec, cas, &cert, Some(key.private_pem.as_str()))?
            }
        };
        st.write(&u.spec.path, text.as_bytes(), write::SECRET)?;
    }
    Ok(())
}
