//! `ceremony check`: everything `run` would do, printed, with no token touched.

use std::path::Path;
use std::time::SystemTime;

use x509_cert::name::Name;

use crate::bundle::layout;
use crate::fmt::utc;
use crate::operator::steps;
use crate::plan::duration::format_lifetime;
use crate::plan::inputs::Manifest;
use crate::plan::{CaRole, ClusterSpec, LoadedPlan};
use crate::profile::kubeadm;
use crate::profile::{ca_profile, describe_extensions};
use crate::x509::profile::eku_name;

/// `ceremony check PLAN [--out OUT]`: the report on stdout, then (exit 2)
/// whatever `run` would refuse before opening the token; no token touched.
/// Without `--out` the report names `run`'s default and the path is not
/// checked: where the ceremony will write is not known yet.
pub fn run(
    plan: &Path,
    out: Option<&Path>,
    as_json: bool,
) -> Result<(), crate::error::CeremonyError> {
    if as_json {
        return run_json(plan, out);
    }
    let now = SystemTime::now();
    let loaded = crate::plan::load(plan, now)?;
    // The inputs as `run` reads them before the token: their digest is in
    // the report, what refuses them comes after it.
    let read = crate::ceremony::read_inputs(&loaded);
    let inputs = read.as_ref().ok().map(|c| &c.inputs);
    // A continuing ceremony reads the CSRs of the nodes it writes only.
    let only = read
        .as_ref()
        .ok()
        .and_then(|c| c.continuation.as_ref())
        .map(|c| c.selection.issued());
    let mut text = report(
        &loaded,
        inputs,
        only.as_ref(),
        out.unwrap_or(Path::new("out")),
        now,
    );
    if let Ok(c) = &read {
        let rotations = c
            .continuation
            .as_ref()
            .map_or(&[][..], |c| c.rotations.as_slice());
        let life = ca_life_report(&loaded.plan.reissue, rotations, &c.revocations);
        // Before the list of files, which it adds to.
        let at = text
            .find("Files `ceremony run` would write")
            .unwrap_or(text.len());
        text.insert_str(at, &life);
    }
    if out.is_none() {
        text.push_str(
            "The output path was not checked: `ceremony check PLAN --out OUT` checks it as `run` will.\n",
        );
    }
    // Paths and values from outside (CSR subjects, file names) are escaped.
    super::write_stdout(crate::fmt::shown_lines(&text).as_bytes())?;
    for r in crate::plan::safety::risks(&loaded.plan, &loaded.plan.module) {
        eprintln!("warning: not fit for the real ceremony: {r}");
    }
    let checked = read?;
    match out {
        Some(out) => crate::ceremony::check_beside_out(out, &checked.inputs),
        None => Ok(()),
    }
}

/// `check --json` (docs/json.md): the plan as `run` would carry it out, and
/// whether `run` would start; the exit code as without `--json`.
fn run_json(plan: &Path, out: Option<&Path>) -> Result<(), crate::error::CeremonyError> {
    let now = SystemTime::now();
    let loaded = match crate::plan::load(plan, now) {
        Ok(l) => l,
        Err(e) => {
            let e = e.into();
            super::write_json(&super::json_failure(&e))?;
            return Err(e);
        }
    };
    let read = crate::ceremony::read_inputs(&loaded);
    let verdict = read.and_then(|checked| match out {
        Some(out) => crate::ceremony::check_beside_out(out, &checked.inputs).map(|()| checked),
        None => Ok(checked),
    });
    let mut v = match &verdict {
        Ok(_) => serde_json::json!({ "schema": super::JSON_SCHEMA, "ok": true }),
        Err(e) => super::json_failure(e),
    };
    let p = &loaded.plan;
    let inputs = verdict.as_ref().ok().map(|c| &c.inputs);
    v["plan"] = serde_json::json!({
        "file": plan.display().to_string(),
        "sha256": hex::encode(loaded.sha256),
        "ceremony": p.name,
        "administrator": p.administrator,
        "witnesses": p.witnesses,
        "continues": p.continuing.as_ref().map(|c| c.previous.display().to_string()),
    });
    v["inputs"] = match inputs {
        Some(m) => serde_json::json!({
            "sha256": hex::encode(m.digest),
            "lines": m.text.lines().collect::<Vec<_>>(),
        }),
        None => serde_json::Value::Null,
    };
    v["out"] = serde_json::json!({
        "path": out.map(|o| o.display().to_string()),
        "checked": out.is_some(),
    });
    v["cas"] = p
        .cas
        .iter()
        .map(|c| {
            serde_json::json!({
                "role": c.role.name(),
                "label": c.label,
                "subject": crate::x509::name_text(&c.subject),
                "key": c.key.name(),
                "lifetime": c.lifetime.to_string(),
            })
        })
        .collect::<Vec<_>>()
        .into();
    let only = verdict
        .as_ref()
        .ok()
        .and_then(|c| c.continuation.as_ref())
        .map(|c| c.selection.issued());
    v["nodes"] = match &p.cluster {
        None => serde_json::Value::Array(vec![]),
        Some(cl) => {
            let node = |name: &str, role: &str, leaves: Vec<kubeadm::LeafSpec>| {
                let delivery = match cl.node_recipients.get(name) {
                    Some(r) => {
                        serde_json::json!({"encrypted": true, "file": layout::sealed_node(name), "recipient": r})
                    }
                    None => serde_json::json!({"encrypted": false, "dir": layout::node_root(name)}),
                };
                serde_json::json!({
                    "name": name,
                    "role": role,
                    "written": only.as_ref().is_none_or(|o| o.contains(name)),
                    "delivery": delivery,
                    "kubeadm_config": layout::KUBEADM_CONFIG,
                    "files": leaf_files(&leaves),
                    "root_files": root_files(&leaves),
                })
            };
            cl.control_plane
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    node(
                        &n.name,
                        "control-plane",
                        kubeadm::control_plane_leaves(cl, i),
                    )
                })
                .chain(
                    cl.workers
                        .iter()
                        .map(|w| node(w, "worker", kubeadm::worker_leaves(cl, w))),
                )
                .collect::<Vec<_>>()
                .into()
        }
    };
    v["cluster"] = match &p.cluster {
        None => serde_json::Value::Null,
        Some(cl) => serde_json::json!({
            "name": cl.name,
            "kubernetes_version": format!("{}.{}", cl.version.0, cl.version.1),
            "kubeadm_api_version": crate::bundle::kubeadm_config::api_version(cl.version),
            "control_plane_endpoint": crate::bundle::kubeadm_config::join_endpoint(cl),
            "leaf_key": cl.leaf_key.name(),
            "mode": match cl.mode { crate::plan::LeafMode::Generate => "generate", crate::plan::LeafMode::Csr => "csr" },
        }),
    };
    super::write_json(&v)?;
    verdict.map(|_| ())
}

/// The report `check` prints: the inputs (None: one is refused, which
/// `check` says after the report), steps, certificates, outputs; the CSRs
/// of the nodes in `only` (None: every node).
pub fn report(
    p: &LoadedPlan,
    inputs: Option<&Manifest>,
    only: Option<&std::collections::BTreeSet<String>>,
    out: &Path,
    now: SystemTime,
) -> String {
    let plan = &p.plan;
    let mut s = String::new();
    let mut line = |t: String| {
        s.push_str(&t);
        s.push('\n');
    };
    line(format!("Plan {} is valid.", p.path.display()));
    line(format!("  ceremony:       {}", plan.name));
    line(format!("  plan SHA-256:   {}", hex::encode(p.sha256)));
    line(format!(
        "  inputs SHA-256: {}",
        inputs.map_or_else(
            || "none: an input is refused (see below)".into(),
            |m| hex::encode(m.digest)
        )
    ));
    line(format!("  administrator:  {}", plan.administrator));
    line(format!(
        "  witnesses:      {}",
        if plan.witnesses.is_empty() {
            "none".into()
        } else {
            plan.witnesses.join(", ")
        }
    ));
    line(format!(
        "  token:          {} via {}",
        plan.token_uri,
        plan.module.display()
    ));
    if let Some(h) = plan.module_sha256 {
        line(format!("  module SHA-256 must be {}", hex::encode(h)));
    }
    for l in unfit(plan) {
        line(l);
    }
    line(String::new());
    line("Steps `ceremony run` would take (the numbers it shows):".into());
    for step in steps::all(p) {
        line(format!(
            "  {} {}",
            steps::tag(p, step),
            steps::text(p, &plan.module, out, step, steps::Known::default())
        ));
    }
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
        match plan.delegated(ca.role) {
            Some(d) => line(format!(
                "    key:      {} held by the control-plane nodes (delegated), from the request {}; nothing on the token under \"{}\"",
                ca.key,
                d.csr.display(),
                ca.label
            )),
            None => line(format!(
                "    key:      {} in the token, label \"{}\", {}",
                ca.key,
                ca.label,
                if plan.backup.as_ref().is_some_and(|b| b.covers(ca.role)) {
                    "sensitive, extractable only under the trusted wrap key (backed up)"
                } else {
                    "sensitive, never extractable"
                }
            )),
        }
        line(format!(
            "    validity: {} (if signed now: until {}), starting 5 minutes before signing",
            ca.lifetime,
            crate::fmt::utc(ca.lifetime.end(now))
        ));
        line(format!("    signature: {}", sig_name(plan)));
        for e in describe_extensions(&profile) {
            line(format!("    {e}"));
        }
    }
    if let Some(b) = &plan.backup {
        line(String::new());
        line(format!(
            "Backup: the CA keys of {} wrapped under a wrap key split among {} custodians, any {} of whom restore it:",
            b.cas
                .iter()
                .map(|r| r.name())
                .collect::<Vec<_>>()
                .join(", "),
            b.custodians.len(),
            b.threshold
        ));
        for (i, c) in b.custodians.iter().enumerate() {
            line(format!("  share {}: {c}", i + 1));
        }
        line("  `ceremony run` needs --shares-out DIR (outside OUT; one share file per custodian) and the".into());
        line("  security officer's PIN (prompt, --so-pin-file or --so-pin-env): once the ceremony starts, before".into());
        line(format!(
            "  any CA key, it imports the wrap key as a trusted key; {}/ holds the wrapped keys, never a share",
            layout::BACKUP
        ));
    }
    if let Some(cl) = &plan.cluster {
        line(String::new());
        for l in bundle_report(cl, now) {
            line(l);
        }
    }
    for l in delegated_report(p) {
        line(l);
    }
    for l in crate::csr::intake::check_report(p, only) {
        line(l);
    }
    if let Some(m) = inputs {
        line(String::new());
        line(format!(
            "Inputs ({}): `ceremony run` writes these lines as {}/{}; the inputs SHA-256 is their SHA-256,",
            m.count,
            out.display(),
            layout::INPUTS
        ));
        line(
            "  shown on the preflight screen for the witnesses to compare with the value reviewed here:"
                .into(),
        );
        for l in m.text.lines() {
            line(format!("  {l}"));
        }
    }
    line(String::new());
    line(format!(
        "Files `ceremony run` would write under {}:",
        out.display()
    ));
    line(format!("  {}", layout::ROOT_CA));
    for role in CaRole::INTERMEDIATES {
        line(format!("  {}", layout::ca_file(role)));
        line(format!("  {}", layout::chain_file(role)));
    }
    if let Some(cl) = &plan.cluster {
        for (n, r) in &cl.node_recipients {
            line(format!(
                "  {}: the files of {n} below, only as a tar archive encrypted to {r}",
                layout::sealed_node(n)
            ));
        }
        for (i, n) in cl.control_plane.iter().enumerate() {
            line(format!(
                "  {}/: {}, pki/ca.crt, pki/etcd/ca.crt, pki/front-proxy-ca.crt, pki/sa.key, pki/sa.pub, {} ({})",
                layout::node_root(&n.name),
                leaf_files(&kubeadm::control_plane_leaves(cl, i)).join(", "),
                layout::KUBEADM_CONFIG,
                if i == 0 {
                    "kubeadm init"
                } else {
                    "kubeadm join --control-plane"
                }
            ));
            kubelet_serving_line(cl, &n.name, &mut line);
        }
        let kubelet = if cl.issues(CaRole::Kubernetes) {
            "kubelet.conf, "
        } else {
            ""
        };
        for w in &cl.workers {
            line(format!(
                "  {}/: {kubelet}pki/ca.crt, {} (kubeadm join)",
                layout::node_root(w),
                layout::KUBEADM_CONFIG
            ));
            kubelet_serving_line(cl, w, &mut line);
        }
    }
    if let Some(b) = &plan.backup {
        for role in &b.cas {
            line(format!(
                "  {}, {}, {}",
                layout::backup_blob(*role),
                layout::backup_public(*role),
                layout::backup_cert(*role)
            ));
        }
        line(format!("  {}", layout::BACKUP_MANIFEST));
    }
    line(format!("  {}", layout::INPUTS));
    line(format!("  {}", layout::SHA256SUMS));
    line(String::new());
    if plan.delegated.is_empty() {
        line("Note: with the CA keys only on the token, kubeadm runs in external-CA mode: the cluster cannot".into());
        line("sign anything itself (no kubelet TLS bootstrap, no certificate rotation, no `kubeadm certs renew`);".into());
        line("every node's certificates and kubeconfigs come from a ceremony.".into());
    } else {
        line("Note: kubeadm decides per CA by the presence of its key file: a CA kept in the token runs in".into());
        line("external-CA mode (its leaves come from a ceremony); a delegated CA's key, put beside its certificate".into());
        line("on each control-plane node, lets kubeadm issue and renew that CA's leaves itself. Who holds which key".into());
        line("and for how long an attacker on a control-plane node can use it: docs/threat-model.md.".into());
    }
    s
}

/// The warning that the plan is not fit for the real ceremony, if it is not.
fn unfit(plan: &crate::plan::ValidPlan) -> Vec<String> {
    use crate::plan::safety;
    let risks = safety::risks(plan, &plan.module);
    if risks.is_empty() {
        return Vec::new();
    }
    let mut v = vec![
        String::new(),
        format!(
            "WARNING: not fit for the real ceremony ({}):",
            if safety::is_software_module(&plan.module) {
                "a rehearsal on this software token runs; on a hardware token `run` refuses it without --rehearsal"
            } else {
                "`run` at a terminal refuses it without --rehearsal"
            }
        ),
    ];
    v.extend(risks.iter().map(|r| format!("  - {r}")));
    v.push(format!("  To fix: {}.", safety::advice(&risks)));
    v
}

/// The delegated CAs: each request as checked, who holds the key, where the
/// installer puts it and what kubeadm makes from it.
fn delegated_report(p: &LoadedPlan) -> Vec<String> {
    let plan = &p.plan;
    let mut out = Vec::new();
    if plan.delegated.is_empty() && plan.kubelet_signer.is_none() {
        return out;
    }
    let intake = crate::csr::intake::intake_of(p, None);
    if let Some(s) = &plan.kubelet_signer {
        out.push(String::new());
        out.push(format!(
            "Kubelet signer {}: request {}, {} key held by the control-plane nodes; signed by the kubernetes CA on the token",
            s.subject,
            s.csr.display(),
            s.key
        ));
        out.push(format!(
            "  validity {} from signing (renewed by each ceremony); keyUsage digitalSignature, keyCertSign, cRLSign;",
            format_lifetime(s.validity)
        ));
        out.push(
            "  basicConstraints CA:TRUE, pathlen:0; extendedKeyUsage clientAuth, serverAuth".into(),
        );
        match intake
            .as_ref()
            .map(|i| i.kubelet_signer.as_ref().map(|c| &c.checked))
        {
            Ok(Some(Ok(c))) => out.push(format!("  accepted: SHA-256 {}", hex::encode(c.sha256))),
            Ok(Some(Err(refusals))) => {
                for r in refusals {
                    out.push(format!("    refused: {r}"));
                }
            }
            Ok(None) => {}
            Err(e) => out.push(format!("  not read: {e}")),
        }
        out.push(format!(
            "  writes {} and, on each control-plane node, {} (kube-controller-manager's",
            layout::KUBELET_SIGNER,
            layout::NODE_KUBELET_SIGNER
        ));
        out.push("  --cluster-signing-kubelet-client-cert-file and --cluster-signing-kubelet-serving-cert-file; the key as".into());
        out.push(format!(
            "  {}, the -key-file flags) and {} (kube-apiserver's --client-ca-file)",
            layout::NODE_KUBELET_SIGNER_KEY,
            layout::NODE_KUBELET_CLIENT_CA_BUNDLE
        ));
    }
    if plan.delegated.is_empty() {
        return out;
    }
    out.push(String::new());
    out.push(
        "Delegated CAs (key made and kept on the control-plane nodes; the root on the token signs the request):"
            .into(),
    );
    for d in &plan.delegated {
        let (crt, key) = match d.role {
            CaRole::Etcd => ("pki/etcd/ca.crt", "pki/etcd/ca.key"),
            CaRole::FrontProxy => ("pki/front-proxy-ca.crt", "pki/front-proxy-ca.key"),
            _ => ("pki/ca.crt", "pki/ca.key"),
        };
        out.push(format!(
            "  {} CA: request {}",
            d.role.name(),
            d.csr.display()
        ));
        match &intake {
            Err(e) => out.push(format!("    not read: {e}")),
            Ok(i) => match i.cas.iter().find(|c| c.role == d.role).map(|c| &c.checked) {
                Some(Ok(c)) => out.push(format!(
                    "    accepted: {} key, subject \"{}\", SHA-256 {}",
                    c.key_type,
                    plan.ca(d.role).subject,
                    hex::encode(c.sha256)
                )),
                Some(Err(refusals)) => {
                    for r in refusals {
                        out.push(format!("    refused: {r}"));
                    }
                }
                None => out.push("    not read".into()),
            },
        }
        out.push(format!(
            "    every control-plane node gets {crt}; the installer puts the node-held key beside it as /etc/kubernetes/{key} (0600)"
        ));
        out.push(
            "    the ceremony issues none of its leaves: `kubeadm init phase certs all` (and join) makes them"
                .into(),
        );
    }
    out
}

/// What a continuing ceremony does to the CAs themselves: the certificates
/// it reissues, the CRLs it signs and what they revoke (empty: nothing).
fn ca_life_report(
    reissue: &[CaRole],
    rotations: &[crate::ceremony::rotate::Rotation],
    r: &crate::ceremony::crl::Revocations,
) -> String {
    let mut s = String::new();
    if reissue.is_empty() && rotations.is_empty() && !r.publish {
        return s;
    }
    s.push_str("The CAs' own life:\n");
    for rot in rotations {
        s.push_str(&format!("  {}\n", rot.describe()));
    }
    if !reissue.is_empty() {
        let names: Vec<&str> = reissue.iter().map(|r| r.name()).collect();
        s.push_str(&format!(
            "  reissued for the same key (new validity, same subject and key): {}\n",
            names.join(", ")
        ));
    }
    if r.publish {
        s.push_str(&format!(
            "  CRLs: every CA signs its CRL (next update {} after signing){}: {}, and {} in each control-plane bundle written\n",
            crate::plan::duration::format_lifetime(r.next_update),
            if r.previous.is_empty() {
                ""
            } else {
                ", the previous CRLs' entries carried"
            },
            [CaRole::Root]
                .into_iter()
                .chain(CaRole::INTERMEDIATES)
                .map(layout::crl_file)
                .collect::<Vec<_>>()
                .join(", "),
            layout::ETCD_CRL
        ));
    }
    for n in &r.new {
        s.push_str(&format!("  revokes: {}\n", n.line()));
    }
    s.push('\n');
    s
}

/// With `kubelet_serving_certs`: the node's kubelet files, outside its
/// etc/kubernetes.
fn kubelet_serving_line(cl: &ClusterSpec, node: &str, line: &mut impl FnMut(String)) {
    if cl.kubelet_serving {
        line(format!(
            "  {}/{}.{{crt,key}}: the kubelet's serving certificate (KubeletConfiguration tlsCertFile, tlsPrivateKeyFile)",
            layout::node_dir(node),
            kubeadm::KUBELET_SERVING.trim_start_matches('/')
        ));
    }
}

/// A node's leaf files on its root, outside etc/kubernetes (the kubelet's
/// serving certificate and key), relative to `nodes/<name>/`.
fn root_files(leaves: &[kubeadm::LeafSpec]) -> Vec<String> {
    leaves
        .iter()
        .filter_map(|l| l.path.strip_prefix('/'))
        .flat_map(|p| [format!("{p}.crt"), format!("{p}.key")])
        .collect()
}

/// A node's leaf files under its etc/kubernetes (the kubelet's serving
/// certificate, on the node's root, is listed on its own line).
fn leaf_files(leaves: &[kubeadm::LeafSpec]) -> Vec<String> {
    leaves
        .iter()
        .filter(|l| !l.path.starts_with('/'))
        .map(|l| match l.output {
            kubeadm::LeafOutput::CertAndKey => format!("{}.{{crt,key}}", l.path),
            kubeadm::LeafOutput::Kubeconfig { .. } => l.path.clone(),
        })
        .collect()
}

/// Every leaf of every node with its profile, one line each (SANs on a second line).
fn bundle_report(cl: &ClusterSpec, now: SystemTime) -> Vec<String> {
    let mut out = vec![
        format!(
            "Bundle: kubeadm {}.{} Organizations, cluster \"{}\", leaf keys {} made on this computer,",
            cl.version.0, cl.version.1, cl.name, cl.leaf_key
        ),
        format!(
            "  leaf validity {} (until {} if signed now); every leaf: keyUsage (critical) digitalSignature{},",
            format_lifetime(cl.leaf_validity),
            utc(now + cl.leaf_validity),
            if cl.leaf_key.is_rsa() {
                " keyEncipherment"
            } else {
                ""
            }
        ),
        "  basicConstraints (critical) CA:FALSE, authorityKeyIdentifier = its CA's SKI".into(),
        // Its type follows leaf_key unless the plan says otherwise: shown,
        // so that a reviewer sees which key signs the cluster's tokens.
        format!(
            "  sa.key/sa.pub, when made here: {}, one pair for every control-plane node",
            cl.sa_key
        ),
    ];
    let describe = |l: &kubeadm::LeafSpec| {
        let mut s = format!("    {:<28} CN={}", l.display_name(), l.cn);
        if !l.orgs.is_empty() {
            s.push_str(&format!(" O={}", l.orgs.join("+")));
        }
        let eku: Vec<String> = l.eku.iter().map(eku_name).collect();
        s.push_str(&format!("  [{}] by {} CA", eku.join(", "), l.issuer.name()));
        if let kubeadm::LeafOutput::Kubeconfig { server, .. } = &l.output {
            s.push_str(&format!(", server {server}"));
        }
        if !l.sans.is_empty() {
            let sans: Vec<String> = l.sans.iter().map(|x| x.to_string()).collect();
            s.push_str(&format!("\n      SAN {}", sans.join(", ")));
        }
        s
    };
    for (i, n) in cl.control_plane.iter().enumerate() {
        out.push(format!("  control-plane node {} ({}):", n.name, n.address));
        out.extend(kubeadm::control_plane_leaves(cl, i).iter().map(describe));
    }
    for w in &cl.workers {
        out.push(format!("  worker node {w}:"));
        out.extend(kubeadm::worker_leaves(cl, w).iter().map(describe));
    }
    out
}

fn sig_name(plan: &crate::plan::ValidPlan) -> String {
    // Every CA certificate, the root's own included, is signed by the root key.
    let signer = plan.ca(CaRole::Root);
    let alg = crate::x509::signature_algorithm(signer.key);
    let name = match alg.oid {
        const_oid::db::rfc5912::ECDSA_WITH_SHA_256 => "ecdsa-with-SHA256",
        const_oid::db::rfc5912::ECDSA_WITH_SHA_384 => "ecdsa-with-SHA384",
        _ => "sha256WithRSAEncryption",
    };
    format!("{name} by the root key \"{}\" on the token", signer.label)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The service-account key's type is in the report: the leaves' type by
    /// default (as kubeadm), the plan's when it names one.
    #[test]
    fn the_report_names_the_service_account_key_type() {
        let now = SystemTime::now();
        let dir = tempfile::tempdir().unwrap();
        let demo = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/ceremony/plans/demo.toml"
        ))
        .unwrap();
        let report = |text: &str| {
            let p = dir.path().join("plan.toml");
            std::fs::write(&p, text).unwrap();
            let loaded = crate::plan::load(&p, now).unwrap();
            super::report(&loaded, None, None, &dir.path().join("out"), now)
        };
        let line =
            "sa.key/sa.pub, when made here: ecdsa-p256, one pair for every control-plane node";
        assert!(report(&demo).contains(line), "{}", report(&demo));
        let rsa = demo.replace(
            "leaf_key = \"ecdsa-p256\"\n",
            "leaf_key = \"ecdsa-p256\"\nservice_account_key = \"rsa-2048\"\n",
        );
        assert!(report(&rsa).contains("sa.key/sa.pub, when made here: rsa-2048,"));
    }

    /// The review printout says when a plan is unfit for the real ceremony.
    #[test]
    fn the_report_warns_of_the_demo_auditor_and_an_unpinned_module() {
        let now = SystemTime::now();
        let dir = tempfile::tempdir().unwrap();
        let demo = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/ceremony/plans/demo.toml"
        ))
        .unwrap();
        let report = |text: &str| {
            let p = dir.path().join("plan.toml");
            std::fs::write(&p, text).unwrap();
            let loaded = crate::plan::load(&p, now).unwrap();
            super::report(&loaded, None, None, &dir.path().join("out"), now)
        };
        let r = report(&demo);
        assert!(r.contains("WARNING: not fit for the real ceremony (a rehearsal on this software token runs; on a hardware token `run` refuses it without --rehearsal):\n  - audit.recipients[0] is a demo recipient"), "{r}");
        assert!(
            r.contains("  - cluster.node_recipients.cp1 is a demo recipient"),
            "{r}"
        );
        let yubi = demo.replace(
            "/usr/lib/softhsm/libsofthsm2.so",
            "/usr/lib/x86_64-linux-gnu/pkcs11/yubihsm_pkcs11.so",
        );
        let r = report(&yubi);
        assert!(
            r.contains("`run` at a terminal refuses it without --rehearsal"),
            "{r}"
        );
        assert!(r.contains("  - token.module_sha256 is missing"), "{r}");
        let fit = yubi
            .replace(
                crate::plan::safety::DEMO_RECIPIENTS[0].0,
                "age1ndx4zswn0cxepaqvmjtgea8e8qq8qdjkxeul2vum00ay55gmc5cql6ynt9",
            )
            .replace(
                crate::plan::safety::DEMO_RECIPIENTS[1].0,
                "age1ndx4zswn0cxepaqvmjtgea8e8qq8qdjkxeul2vum00ay55gmc5cql6ynt9",
            )
            .replace(
                "[token]\n",
                &format!("[token]\nmodule_sha256 = \"{}\"\n", "ab".repeat(32)),
            );
        assert!(!report(&fit).contains("WARNING"), "{}", report(&fit));
    }

    #[test]
    fn the_ca_life_report_says_what_is_reissued_signed_and_revoked() {
        use crate::ceremony::crl::{Revocation, Revocations};
        assert_eq!(ca_life_report(&[], &[], &Revocations::default()), "");
        let r = Revocations {
            publish: true,
            next_update: std::time::Duration::from_secs(7 * 86_400),
            previous: Default::default(),
            new: vec![Revocation {
                ca: CaRole::Etcd,
                serial: vec![0x0a, 0x1b],
                reason: crate::x509::crl::Reason::KeyCompromise,
                what: "c1/nodes/cp2/etc/kubernetes/pki/etcd/peer.crt".into(),
            }],
        };
        assert_eq!(
            ca_life_report(&[CaRole::Root, CaRole::Etcd], &[], &r),
            "The CAs' own life:\n  \
             reissued for the same key (new validity, same subject and key): root, etcd\n  \
             CRLs: every CA signs its CRL (next update 7d after signing): crls/root-ca.crl, crls/kubernetes-ca.crl, crls/etcd-ca.crl, crls/front-proxy-ca.crl, and pki/etcd/crl.pem in each control-plane bundle written\n  \
             revokes: c1/nodes/cp2/etc/kubernetes/pki/etcd/peer.crt: serial 0A1B, key-compromise, on the etcd CA's CRL\n\n"
        );
    }
}

#[cfg(test)]
mod backup_tests {
    use super::*;

    /// With `[backup]` the report names the custodians, the threshold, the
    /// backed-up keys' policy, what run needs and the files of backup/.
    #[test]
    fn the_report_shows_the_backup() {
        let now = SystemTime::now();
        let dir = tempfile::tempdir().unwrap();
        let demo = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/ceremony/plans/demo.toml"
        ))
        .unwrap()
        .replace("runbook = \"../../docs/runbook.md\"\n", "")
            + "\n[backup]\ncustodians = [\"Carol\", \"Dave\", \"Erin\"]\nthreshold = 2\ncas = [\"root\"]\n";
        let p = dir.path().join("plan.toml");
        std::fs::write(&p, demo).unwrap();
        let loaded = crate::plan::load(&p, now).unwrap();
        let r = report(&loaded, None, None, &dir.path().join("out"), now);
        for want in [
            "Backup: the CA keys of root wrapped under a wrap key split among 3 custodians, any 2 of whom restore it:",
            "  share 2: Dave",
            "label \"demo-root-2026\", sensitive, extractable only under the trusted wrap key (backed up)",
            "label \"demo-etcd-ca-2026\", sensitive, never extractable",
            "  backup/root.key.wrapped, backup/root.pub, backup/root.crt",
        ] {
            assert!(r.contains(want), "{want}\n{r}");
        }
        assert!(!r.contains("backup/etcd.key.wrapped"));
    }
}
