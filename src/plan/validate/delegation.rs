//! `mode` and `csr` of `[ca.*]`: which intermediates the plan delegates to
//! the control-plane nodes, and the request each brings.

use std::str::FromStr;
use std::time::Duration;

use super::{Problems, input_path_problem, parse_subject, quoted, shown_path, shown_text};
use crate::keytype::{KeyType, key_type_names};
use crate::plan::duration::parse_lifetime;
use crate::plan::model::{CaSection, Plan};
use crate::plan::spec::{CaRole, Delegated, KubeletSignerSpec};

/// The kubelet signer lives days to months: at most this.
const SIGNER_MAX: Duration = Duration::from_secs(365 * 86_400);

/// The delegated intermediates, in plan order; every problem goes to `p`.
pub(super) fn validate_delegation(plan: &Plan, p: &mut Problems) -> Vec<Delegated> {
    let root = &plan.root;
    if let Some(m) = &root.mode {
        p.add(
            "root.mode",
            "the root is always kept in the token; only [ca.kubernetes], [ca.etcd] and [ca.front-proxy] take a mode",
            quoted(m),
        );
    }
    if let Some(c) = &root.csr {
        p.add(
            "root.csr",
            "the root is always made in the token; it takes no certificate request",
            quoted(&c.display().to_string()),
        );
    }
    let sections: [(CaRole, &CaSection); 3] = [
        (CaRole::Kubernetes, &plan.ca.kubernetes),
        (CaRole::Etcd, &plan.ca.etcd),
        (CaRole::FrontProxy, &plan.ca.front_proxy),
    ];
    let mut out = Vec::new();
    for (role, s) in sections {
        let sec = role.section();
        let delegated = match s.mode.as_deref() {
            None | Some("token") => false,
            Some("delegated") => true,
            Some(other) => {
                p.add(
                    format!("{sec}.mode"),
                    "must be \"token\" (the key is kept in the token) or \"delegated\" (the key is kept on the control-plane nodes)",
                    quoted(other),
                );
                continue;
            }
        };
        match (&s.csr, delegated) {
            (None, true) => p.add(
                format!("{sec}.csr"),
                "is required with mode = \"delegated\": the CA's certificate request, made with its key on the first control-plane node",
                None,
            ),
            (Some(csr), false) => p.add(
                format!("{sec}.csr"),
                "is read only with mode = \"delegated\"; a CA kept in the token makes its key there",
                quoted(&csr.display().to_string()),
            ),
            (Some(csr), true) => {
                shown_path(p, format!("{sec}.csr"), csr);
                if let Some(why) = input_path_problem(csr, s.allow_outside, &format!("[{sec}]")) {
                    p.add(format!("{sec}.csr"), why, quoted(&csr.display().to_string()));
                }
                out.push(Delegated {
                    role,
                    csr: csr.clone(),
                });
            }
            (None, false) => {}
        }
    }
    if !out.is_empty() {
        if plan.ceremony.previous.is_some() {
            p.add(
                "ceremony.previous",
                "a continuing ceremony of a plan with a delegated CA is not offered yet: run a founding ceremony (new labels) to sign a delegated CA again",
                None,
            );
        }
        if out.iter().any(|d| d.role == CaRole::Kubernetes) && !plan.users.is_empty() {
            p.add(
                "users",
                "a user's kubeconfig is signed by the kubernetes CA, which this plan delegates: make it on a control-plane node (kubeadm kubeconfig user)",
                None,
            );
        }
    }
    out
}

/// `[kubelet_signer]`: its request, subject, key type and a short lifetime;
/// the kubernetes CA that signs it is kept in the token, and the control-plane
/// nodes that hold its key are in `[cluster]`.
pub(super) fn validate_kubelet_signer(
    plan: &Plan,
    delegated: &[Delegated],
    p: &mut Problems,
) -> Option<KubeletSignerSpec> {
    let s = plan.kubelet_signer.as_ref()?;
    let before = p.0.len();
    if delegated.iter().any(|d| d.role == CaRole::Kubernetes) {
        p.add(
            "kubelet_signer",
            "needs the kubernetes CA kept in the token: with it delegated, the controller-manager signs kubelets with it already",
            None,
        );
    }
    if plan.cluster.is_none() {
        p.add(
            "kubelet_signer",
            "needs the [cluster] section: its certificate goes to the control-plane nodes",
            None,
        );
    }
    shown_path(p, "kubelet_signer.csr", &s.csr);
    if let Some(why) = input_path_problem(&s.csr, s.allow_outside, "[kubelet_signer]") {
        p.add(
            "kubelet_signer.csr",
            why,
            quoted(&s.csr.display().to_string()),
        );
    }
    let text = s.subject.as_deref().unwrap_or("CN=kubelet-signer");
    shown_text(p, "kubelet_signer.subject", text);
    let subject = parse_subject(text)
        .map_err(|e| p.add("kubelet_signer.subject", e, quoted(text)))
        .ok();
    let key = KeyType::from_str(&s.key)
        .map_err(|()| {
            p.add(
                "kubelet_signer.key",
                format!("unknown key type; use one of {}", key_type_names()),
                quoted(&s.key),
            )
        })
        .ok();
    let validity = match parse_lifetime(&s.validity) {
        Ok(d) if d > SIGNER_MAX => {
            p.add(
                "kubelet_signer.validity",
                "must be at most 365d: the kubelet signer is short-lived (days to months), renewed by each ceremony",
                quoted(&s.validity),
            );
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            p.add("kubelet_signer.validity", e, quoted(&s.validity));
            None
        }
    };
    if p.0.len() != before {
        return None;
    }
    Some(KubeletSignerSpec {
        csr: s.csr.clone(),
        subject: subject?,
        key: key?,
        validity: validity?,
    })
}
