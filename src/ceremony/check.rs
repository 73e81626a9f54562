//! `ceremony check`: everything `run` would do, printed, with no token touched.

use std::path::Path;
use std::time::SystemTime;

use x509_cert::name::Name;

use crate::plan::{CaRole, LoadedPlan};
use crate::profile::{ca_profile, describe_extensions};

/// The number of numbered steps `run` shows (open+login, mechanisms, 4 CAs, outputs).
pub fn step_count(_p: &LoadedPlan) -> usize {
    7
}

/// The report `check` prints: steps, certificates, outputs.
pub fn report(p: &LoadedPlan, out: &Path, now: SystemTime) -> String {
    let plan = &p.plan;
    let mut s = String::new();
    let mut line = |t: String| {
        s.push_str(&t);
        s.push('\n');
    };
    line(format!("Plan {} is valid.", p.path.display()));
    line(format!("  ceremony:      {}", plan.name));
    line(format!("  plan SHA-256:  {}", hex::encode(p.sha256)));
    line(format!("  administrator: {}", plan.administrator));
    line(format!(
        "  witnesses:     {}",
        if plan.witnesses.is_empty() {
            "none".into()
        } else {
            plan.witnesses.join(", ")
        }
    ));
    line(format!(
        "  token:         {} via {}",
        plan.token_uri,
        plan.module.display()
    ));
    if let Some(h) = plan.module_sha256 {
        line(format!("  module SHA-256 must be {}", hex::encode(h)));
    }
    line(String::new());
    line("Steps `ceremony run` would take:".into());
    let total = step_count(p);
    let mut n = 0;
    let mut step = |t: String| {
        n += 1;
        format!("  [{n}/{total}] {t}")
    };
    line(step(format!(
        "Open {}, find exactly one token matching {}, lock it, log in",
        plan.module.display(),
        plan.token_uri
    )));
    let mut kts: Vec<&str> = plan.cas.iter().map(|c| c.key.name()).collect();
    kts.sort();
    kts.dedup();
    line(step(format!(
        "Check the token can generate and sign with {} before generating anything",
        kts.join(", ")
    )));
    for ca in &plan.cas {
        line(step(format!(
            "{} CA: find key \"{}\" ({}) or generate it in the token; find its certificate on the token or sign it{}",
            ca.role.name(),
            ca.label,
            ca.key,
            if ca.role == CaRole::Root {
                " (self-signed)".to_string()
            } else {
                format!(" with \"{}\"", plan.ca(CaRole::Root).label)
            }
        )));
    }
    line(step(format!(
        "Write the certificates to {} (staged, then renamed into place)",
        out.display()
    )));
    line(String::new());
    line("Certificates:".into());
    let root = plan.ca(CaRole::Root);
    for ca in &plan.cas {
        let issuer: Option<(&Name, &[u8])> =
            (ca.role != CaRole::Root).then_some((&root.subject, &[][..]));
        let profile = ca_profile(ca, issuer);
        line(format!("  {} CA", ca.role.name()));
        line(format!("    subject:  {}", ca.subject));
        line(format!(
            "    issuer:   {}",
            if ca.role == CaRole::Root {
                "itself (self-signed)".into()
            } else {
                format!("{} (root)", root.subject)
            }
        ));
        line(format!(
            "    key:      {} in the token, label \"{}\", sensitive, never extractable",
            ca.key, ca.label
        ));
        line(format!(
            "    validity: {} (if signed now: until {}), starting 5 minutes before signing",
            ca.lifetime,
            crate::x509::fmt_time(ca.lifetime.end(now))
        ));
        line(format!("    signature: {}", sig_name(ca.role, plan)));
        for e in describe_extensions(&profile) {
            line(format!("    {e}"));
        }
    }
    line(String::new());
    line(format!(
        "Files `ceremony run` would write under {}:",
        out.display()
    ));
    line("  root-ca.crt".into());
    for role in CaRole::INTERMEDIATES {
        line(format!("  cas/{}-ca.crt", role.name()));
        line(format!("  chains/{}-ca-chain.crt", role.name()));
    }
    line(String::new());
    line("Note: with the CA keys only on the token, kubeadm runs in external-CA mode: the cluster cannot".into());
    line("sign anything itself (no kubelet TLS bootstrap, no certificate rotation, no `kubeadm certs renew`);".into());
    line("every node's certificates and kubeconfigs come from a ceremony.".into());
    s
}

fn sig_name(role: CaRole, plan: &crate::plan::ValidPlan) -> String {
    let signer = if role == CaRole::Root {
        plan.ca(CaRole::Root)
    } else {
        plan.ca(CaRole::Root)
    };
    let alg = crate::x509::signature_algorithm(signer.key.clone());
    let name = match alg.oid {
        const_oid::db::rfc5912::ECDSA_WITH_SHA_256 => "ecdsa-with-SHA256",
        const_oid::db::rfc5912::ECDSA_WITH_SHA_384 => "ecdsa-with-SHA384",
        _ => "sha256WithRSAEncryption",
    };
    format!("{name} by the root key \"{}\" on the token", signer.label)
}
