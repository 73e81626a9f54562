//! The CAs' own life: `[crl]` and `[[revoke]]` (revocation) and
//! `[reissue]`. Pure: that a named certificate is in the previous output is
//! checked by the run.

use std::collections::BTreeSet;

use super::{Problems, quoted};
use crate::plan::duration::parse_lifetime;
use crate::plan::model::Plan;
use crate::plan::spec::{
    CRL_NEXT_UPDATE, CaRole, CrlPlan, RevokeSpec, RevokeTarget, RotateSpec, RotateStage,
};
use crate::x509::crl::Reason;

/// The longest `crl.next_update`: a CRL is signed again at least yearly.
const MAX_NEXT_UPDATE_DAYS: u64 = 366;

fn reasons() -> String {
    Reason::ALL.map(Reason::name).join(", ")
}

pub(super) fn validate_crl(plan: &Plan, p: &mut Problems) -> CrlPlan {
    let mut next_update = CRL_NEXT_UPDATE;
    if let Some(s) = plan.crl.as_ref().and_then(|c| c.next_update.as_ref()) {
        match parse_lifetime(s) {
            Ok(d) if d.as_secs() > MAX_NEXT_UPDATE_DAYS * 86_400 => p.add(
                "crl.next_update",
                format!(
                    "is longer than {MAX_NEXT_UPDATE_DAYS}d: sign the CRLs again at least yearly"
                ),
                quoted(s),
            ),
            Ok(d) => next_update = d,
            Err(e) => p.add("crl.next_update", e, quoted(s)),
        }
    }
    if !plan.revoke.is_empty() && plan.ceremony.previous.is_none() {
        p.add(
            "revoke",
            "needs ceremony.previous: a revocation names a certificate of the chain",
            None,
        );
    }
    let mut revoke = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, r) in plan.revoke.iter().enumerate() {
        let at = |k: &str| format!("revoke[{i}].{k}");
        let reason = match r.reason.as_deref() {
            None => Some(Reason::Unspecified),
            Some(s) => {
                let got = Reason::from_name(s);
                if got.is_none() {
                    p.add(
                        at("reason"),
                        format!("must be one of {}", reasons()),
                        quoted(s),
                    );
                }
                got
            }
        };
        let target = match (&r.node, &r.file, &r.ca, &r.serial) {
            (Some(node), Some(file), None, None) => file_target(&at, node, file, p),
            (None, None, Some(ca), Some(serial)) => serial_target(&at, ca, serial, p),
            _ => {
                p.add(
                    format!("revoke[{i}]"),
                    "names a certificate by node and file (a certificate of a bundle in the previous output), or by ca and serial",
                    None,
                );
                None
            }
        };
        if let (Some(target), Some(reason)) = (target, reason) {
            if !seen.insert(target.clone()) {
                p.add(
                    format!("revoke[{i}]"),
                    "names a certificate another entry revokes already",
                    None,
                );
            }
            revoke.push(RevokeSpec { target, reason });
        }
    }
    CrlPlan {
        requested: plan.crl.is_some() || !plan.revoke.is_empty(),
        next_update,
        revoke,
    }
}

fn file_target(
    at: &dyn Fn(&str) -> String,
    node: &str,
    file: &str,
    p: &mut Problems,
) -> Option<RevokeTarget> {
    let mut ok = true;
    if !crate::x509::san::is_dns_subdomain(node) {
        p.add(
            at("node"),
            "must be a node name: a lowercase DNS-1123 subdomain",
            quoted(node),
        );
        ok = false;
    }
    let plain = file.split('/').all(|c| {
        !c.is_empty()
            && c != "."
            && c != ".."
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    });
    if !plain || !file.ends_with(".crt") {
        p.add(
            at("file"),
            "must be a certificate file of the node's etc/kubernetes, e.g. \"pki/etcd/peer.crt\" (a kubeconfig's certificate is revoked by ca and serial)",
            quoted(file),
        );
        ok = false;
    }
    ok.then(|| RevokeTarget::File {
        node: node.to_string(),
        file: file.to_string(),
    })
}

fn serial_target(
    at: &dyn Fn(&str) -> String,
    ca: &str,
    serial: &str,
    p: &mut Problems,
) -> Option<RevokeTarget> {
    let role = [CaRole::Root]
        .into_iter()
        .chain(CaRole::INTERMEDIATES)
        .find(|r| r.name() == ca);
    if role.is_none() {
        p.add(
            at("ca"),
            "must be the issuing CA: root, kubernetes, etcd or front-proxy",
            quoted(ca),
        );
    }
    // The serial as `openssl x509 -serial` prints it (colons allowed),
    // without the leading zeros DER drops.
    let digits: String = serial.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits
    })
    .ok()
    .map(|b| crate::x509::crl::serial_digits(&b).to_vec())
    .filter(|v| !v.is_empty() && v.len() <= 20);
    if bytes.is_none() {
        p.add(
            at("serial"),
            "must be a certificate's serial number in hex, 1 to 20 bytes, as `openssl x509 -noout -serial` prints it",
            quoted(serial),
        );
    }
    Some(RevokeTarget::Serial {
        ca: role?,
        serial: bytes?,
    })
}

/// `[reissue] cas`: CAs of the plan, each once, in a continuing ceremony.
pub(super) fn validate_reissue(plan: &Plan, p: &mut Problems) -> Vec<CaRole> {
    let Some(r) = &plan.reissue else {
        return Vec::new();
    };
    if plan.ceremony.previous.is_none() {
        p.add(
            "reissue",
            "needs ceremony.previous: a reissued certificate is for a CA key the chain made",
            None,
        );
    }
    let mut out = Vec::new();
    for (i, name) in r.cas.iter().enumerate() {
        let role = [CaRole::Root]
            .into_iter()
            .chain(CaRole::INTERMEDIATES)
            .find(|r| r.name() == name);
        match role {
            None => p.add(
                format!("reissue.cas[{i}]"),
                "must be root, kubernetes, etcd or front-proxy",
                quoted(name),
            ),
            Some(role) if out.contains(&role) => {
                p.add(format!("reissue.cas[{i}]"), "is named twice", quoted(name))
            }

            Some(role) => out.push(role),
        }
    }
    out.sort();
    out
}

/// `[rotate]`: an intermediate kept on the token, a stage, a new label that
/// is no other CA's, every node renewed (each trust file changes), and not
/// reissued in the same ceremony. That the stages run in order is checked
/// by the run against the previous output.
pub(super) fn validate_rotate(plan: &Plan, p: &mut Problems) -> Option<RotateSpec> {
    let r = plan.rotate.as_ref()?;
    if plan.ceremony.previous.is_none() {
        p.add(
            "rotate",
            "needs ceremony.previous: a rotation replaces a CA key the chain made",
            None,
        );
    }
    let role = CaRole::INTERMEDIATES.into_iter().find(|x| x.name() == r.ca);
    let section = match role {
        Some(CaRole::Kubernetes) => Some(&plan.ca.kubernetes),
        Some(CaRole::Etcd) => Some(&plan.ca.etcd),
        Some(CaRole::FrontProxy) => Some(&plan.ca.front_proxy),
        _ => None,
    };
    if role.is_none() {
        p.add(
            "rotate.ca",
            "must be kubernetes, etcd or front-proxy (the root is reissued, not rotated)",
            quoted(&r.ca),
        );
    }
    let stage = RotateStage::ALL.into_iter().find(|s| s.name() == r.stage);
    if stage.is_none() {
        p.add(
            "rotate.stage",
            "must be stage, promote or distrust",
            quoted(&r.stage),
        );
    }
    if section.is_some_and(|s| s.mode.as_deref() == Some("delegated")) {
        p.add(
            "rotate.ca",
            "is delegated to the control-plane nodes: its key is not on the token to rotate",
            quoted(&r.ca),
        );
    }
    if role == Some(CaRole::Kubernetes) && plan.kubelet_signer.is_some() {
        p.add(
            "rotate.ca",
            "cannot rotate the kubernetes CA of a plan with [kubelet_signer] yet: the signer's client-CA bundle holds one kubernetes CA",
            quoted(&r.ca),
        );
    }
    if let (Some(role), Some(re)) = (role, &plan.reissue)
        && re.cas.iter().any(|c| c == role.name())
    {
        p.add(
            "rotate.ca",
            "is also in reissue.cas: reissue and rotate a CA in separate ceremonies",
            quoted(&r.ca),
        );
    }
    if let Some(l) = &r.new_label {
        let taken = [
            &plan.root,
            &plan.ca.kubernetes,
            &plan.ca.etcd,
            &plan.ca.front_proxy,
        ]
        .iter()
        .any(|s| s.label == *l);
        if l.is_empty() || l.len() > super::MAX_LABEL_BYTES {
            p.add(
                "rotate.new_label",
                format!(
                    "must be 1 to {} bytes (a token label)",
                    super::MAX_LABEL_BYTES
                ),
                quoted(l),
            );
        } else if taken {
            p.add(
                "rotate.new_label",
                "is the label of a CA of this plan; the new key needs its own",
                quoted(l),
            );
        }
    } else if let Some(s) = section.filter(|_| stage == Some(RotateStage::Stage)) {
        let l = default_new_label(&s.label, &plan.ceremony.name);
        if l.len() > super::MAX_LABEL_BYTES {
            p.add(
                "rotate.new_label",
                format!(
                    "is needed: the default {l:?} is longer than {} bytes",
                    super::MAX_LABEL_BYTES
                ),
                None,
            );
        }
    }
    if plan.cluster.is_some() && !plan.renew.as_ref().is_some_and(|n| n.all) {
        p.add(
            "rotate",
            "needs renew.all = true: each stage changes every node's trust files (and at promote its leaves)",
            None,
        );
    }
    Some(RotateSpec {
        role: role?,
        stage: stage?,
        new_label: r.new_label.clone(),
    })
}

/// The new key's label when the plan names none: the CA's label and the
/// name of the ceremony that stages it.
pub fn default_new_label(label: &str, ceremony: &str) -> String {
    format!("{label}-{ceremony}")
}
