//! `ceremony inspect`: the expiry table of a bundle, as `kubeadm certs
//! check-expiration` prints it (plus kubelet.conf, which cannot rotate in
//! external-CA mode), per node, and for OUT the ceremony's own CAs.
//!
//! Pure: an `Input` and `now` in, an `Inventory` (serialisable) out; it
//! checks nothing (that is `verify`) and reads no private key.

use crate::bundle::layout;
use std::time::SystemTime;

use crate::fmt::unix;
pub use crate::fmt::{kubeadm_time, rfc3339};

use serde::Serialize;

use super::expect::{self, Expect};
use super::parse::{Cert, CertFile};
use super::tree::Tree;
use super::{Input, Layout, Role};
use crate::bundle::kubeconfig::{KubeconfigFile, base64_data};
use crate::plan::CaRole;
use crate::profile::kubeadm;
use crate::profile::kubeadm::CA_FILES;

#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub now: String,
    /// OUT only: the root and the three intermediates of cas/.
    pub authorities: Vec<Row>,
    pub nodes: Vec<NodeInventory>,
    /// OUT only: each `users/<name>.conf`'s client certificate.
    pub users: Vec<Row>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeInventory {
    pub node: Option<String>,
    pub role: Role,
    pub path: String,
    pub certificates: Vec<Row>,
    pub authorities: Vec<Row>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// kubeadm's name: "apiserver", "etcd-server", "admin.conf", "ca".
    pub name: String,
    pub file: String,
    pub subject: Option<String>,
    /// RFC 3339, UTC.
    pub expires: Option<String>,
    pub residual: Option<String>,
    pub residual_seconds: Option<i64>,
    /// The CA's kubeadm name ("ca", "etcd-ca", "front-proxy-ca"; "root-ca" for intermediates).
    pub authority: Option<String>,
    /// kubeadm's column: the CA key is not in the bundle (always so for a ceremony's bundle).
    pub externally_managed: bool,
    /// "missing" or why the certificate could not be read.
    pub problem: Option<String>,
    #[serde(skip)]
    pub not_after: Option<SystemTime>,
}

fn ca_name(role: CaRole) -> &'static str {
    match role {
        CaRole::Root => "root-ca",
        CaRole::Kubernetes => "ca",
        CaRole::Etcd => "etcd-ca",
        CaRole::FrontProxy => "front-proxy-ca",
    }
}

/// kubeadm's (k8s.io/apimachinery duration.ShortHumanDuration) residual time.
pub fn short_human(secs: i64) -> String {
    if secs < -1 {
        "<invalid>".into()
    } else if secs < 0 {
        "0s".into()
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m", secs / 60)
    } else if secs < 86400 {
        format!("{}h", secs / 3600)
    } else if secs < 365 * 86400 {
        format!("{}d", secs / 86400)
    } else {
        format!("{}y", secs / (365 * 86400))
    }
}

fn row(
    name: &str,
    file: &str,
    cert: Result<Cert, String>,
    authority: Option<String>,
    external: bool,
    now: SystemTime,
) -> Row {
    match cert {
        Ok(c) => {
            let left = unix(c.not_after) - unix(now);
            Row {
                name: name.into(),
                file: file.into(),
                subject: Some(c.subject.clone()),
                expires: Some(rfc3339(c.not_after)),
                residual: Some(short_human(left)),
                residual_seconds: Some(left),
                authority,
                externally_managed: external,
                problem: None,
                not_after: Some(c.not_after),
            }
        }
        Err(p) => Row {
            name: name.into(),
            file: file.into(),
            subject: None,
            expires: None,
            residual: None,
            residual_seconds: None,
            authority,
            externally_managed: external,
            problem: Some(p),
            not_after: None,
        },
    }
}

/// A CRL's row: its nextUpdate as its expiry.
fn crl_row(role: CaRole, file: &str, bytes: &[u8], now: SystemTime) -> Row {
    let read = crate::x509::crl::read_pem(bytes).and_then(|r| {
        r.next_update
            .map(|t| (r.issuer.to_string(), r.number, t))
            .ok_or_else(|| "it has no nextUpdate".to_string())
    });
    let (subject, expires, problem) = match read {
        Ok((issuer, number, t)) => (
            Some(format!("{issuer} (CRL number {number})")),
            Some(t),
            None,
        ),
        Err(e) => (None, None, Some(e)),
    };
    let left = expires.map(|t| unix(t) - unix(now));
    Row {
        name: format!("{} CRL", ca_name(role)),
        file: file.into(),
        subject,
        expires: expires.map(rfc3339),
        residual: left.map(short_human),
        residual_seconds: left,
        authority: Some(ca_name(role).into()),
        externally_managed: true,
        problem,
        not_after: expires,
    }
}

/// The first certificate of a file (what kubeadm reads).
fn first_cert(tree: &Tree, file: &str) -> Result<Cert, String> {
    let bytes = tree.file(file).ok_or("missing")?;
    first_of(bytes)
}

fn first_of(pem: &[u8]) -> Result<Cert, String> {
    let f = CertFile::parse(pem)?;
    match (f.certs.into_iter().next(), f.error) {
        (Some(c), _) => Ok(c),
        (None, Some(e)) => Err(e),
        (None, None) => Err("no certificate".into()),
    }
}

fn kubeconfig_cert(tree: &Tree, file: &str) -> Result<Cert, String> {
    let kc = KubeconfigFile::parse(tree.file(file).ok_or("missing")?)?;
    let data = kc
        .users
        .into_iter()
        .flatten()
        .next()
        .and_then(|u| u.user)
        .and_then(|u| u.cert_data)
        .ok_or("no client-certificate-data")?;
    first_of(&base64_data(&data)?)
}

fn node(
    tree: &Tree,
    base: &str,
    name: Option<String>,
    delegated: &[CaRole],
    now: SystemTime,
) -> NodeInventory {
    let p = |rel: &str| kubeadm::node_file(base, rel);
    // With the kubernetes CA delegated, kubeadm makes apiserver.crt on the node.
    let control_plane = tree.get(&p("pki/apiserver.crt")).is_some()
        || (delegated.contains(&CaRole::Kubernetes) && tree.get(&p("pki/etcd/ca.crt")).is_some());
    let role = if control_plane {
        Role::ControlPlane
    } else {
        Role::Worker
    };
    let cas: Vec<(&str, CaRole)> = CA_FILES
        .iter()
        .filter(|(_, r)| role == Role::ControlPlane || *r == CaRole::Kubernetes)
        .map(|(f, r)| (*f, *r))
        .collect();
    // The CA is externally managed when its key is not beside it.
    let external = |r: CaRole| {
        cas.iter()
            .find(|(_, x)| *x == r)
            .is_none_or(|(f, _)| tree.get(&p(&f.replace(".crt", ".key"))).is_none())
    };
    let mut exps: Vec<Expect> = match role {
        Role::ControlPlane => expect::fixed_control_plane(None, None),
        Role::Worker => expect::fixed_worker(None),
    };
    // A delegated CA's leaves are kubeadm's to make and renew: listed only
    // when present.
    for e in &mut exps {
        if delegated.contains(&e.issuer) {
            e.required = false;
        }
    }
    let mut certificates: Vec<Row> = exps
        .iter()
        .filter(|e| e.required || tree.get(&p(&e.path)).is_some())
        .map(|e| {
            let (file, cert) = if e.kubeconfig {
                (p(&e.path), kubeconfig_cert(tree, &p(&e.path)))
            } else {
                (p(&e.cert_file()), first_cert(tree, &p(&e.cert_file())))
            };
            row(
                &e.display_name(),
                &file,
                cert,
                Some(ca_name(e.issuer).into()),
                external(e.issuer),
                now,
            )
        })
        .collect();
    // The kubelet's serving certificate (`kubelet_serving_certs`), on the
    // node's root: listed when present, as kubeadm knows nothing of it.
    let serving = p(&format!("{}.crt", kubeadm::KUBELET_SERVING));
    if tree.get(&serving).is_some() {
        certificates.push(row(
            "kubelet-serving",
            &serving,
            first_cert(tree, &serving),
            Some(ca_name(CaRole::Kubernetes).into()),
            external(CaRole::Kubernetes),
            now,
        ));
    }
    certificates.sort_by(|a, b| a.name.cmp(&b.name));
    let mut authorities: Vec<Row> = cas
        .iter()
        .map(|(f, r)| {
            row(
                ca_name(*r),
                &p(f),
                first_cert(tree, &p(f)),
                None,
                external(*r),
                now,
            )
        })
        .collect();
    // The kubelet signer lives days to months: its expiry is the one to watch.
    if role == Role::ControlPlane && tree.get(&p(layout::NODE_KUBELET_SIGNER)).is_some() {
        authorities.push(row(
            crate::issue::ca::KUBELET_SIGNER,
            &p(layout::NODE_KUBELET_SIGNER),
            first_cert(tree, &p(layout::NODE_KUBELET_SIGNER)),
            Some(ca_name(CaRole::Kubernetes).into()),
            tree.get(&p(layout::NODE_KUBELET_SIGNER_KEY)).is_none(),
            now,
        ));
    }
    // Without a nodes/<name>/ path, kubelet.conf's CN (system:node:<name>) names the node.
    let name = name.or_else(|| {
        kubeconfig_cert(tree, &p("kubelet.conf"))
            .ok()
            .and_then(|c| {
                c.cn.first()
                    .and_then(|cn| cn.strip_prefix("system:node:"))
                    .map(str::to_string)
            })
    });
    NodeInventory {
        node: name,
        role,
        path: base.trim_end_matches('/').to_string(),
        certificates,
        authorities,
    }
}

/// Every certificate of the bundle with its expiry.
pub fn inventory(input: &Input, now: SystemTime) -> Inventory {
    let tree = &input.tree;
    match &input.layout {
        Layout::Node { base } => Inventory {
            now: rfc3339(now),
            authorities: Vec::new(),
            nodes: vec![node(
                tree,
                base,
                input.dir_node_name.clone(),
                &input.delegated,
                now,
            )],
            users: Vec::new(),
        },
        Layout::Out => {
            let mut authorities = vec![row(
                "root-ca",
                layout::ROOT_CA,
                first_cert(tree, layout::ROOT_CA),
                None,
                true,
                now,
            )];
            for r in CaRole::INTERMEDIATES {
                let f = layout::ca_file(r);
                authorities.push(row(
                    &format!("{}-ca", r.name()),
                    &f,
                    first_cert(tree, &f),
                    Some("root-ca".into()),
                    !input.delegated.contains(&r),
                    now,
                ));
            }
            if tree.get(layout::KUBELET_SIGNER).is_some() {
                authorities.push(row(
                    crate::issue::ca::KUBELET_SIGNER,
                    layout::KUBELET_SIGNER,
                    first_cert(tree, layout::KUBELET_SIGNER),
                    Some("kubernetes-ca".into()),
                    false,
                    now,
                ));
            }
            // A CRL lapses at its nextUpdate: listed with the CAs, so that
            // `--expiring` warns before clients that check it refuse them.
            for r in [CaRole::Root].into_iter().chain(CaRole::INTERMEDIATES) {
                let f = layout::crl_file(r);
                if let Some(bytes) = tree.file(&f) {
                    authorities.push(crl_row(r, &f, bytes, now));
                }
            }
            let nodes = tree
                .children("nodes/")
                .into_iter()
                .filter(|n| tree.is_dir(&layout::node_root(n)))
                .map(|n| {
                    node(
                        tree,
                        &format!("{}/", layout::node_root(n)),
                        Some(n.to_string()),
                        &input.delegated,
                        now,
                    )
                })
                .collect();
            let users = tree
                .children("users/")
                .into_iter()
                .filter_map(|f| f.strip_suffix(".conf"))
                .map(|user| {
                    let file = format!("users/{user}.conf");
                    row(
                        user,
                        &file,
                        kubeconfig_cert(tree, &file),
                        Some(ca_name(CaRole::Kubernetes).into()),
                        true,
                        now,
                    )
                })
                .collect();
            Inventory {
                now: rfc3339(now),
                authorities,
                nodes,
                users,
            }
        }
    }
}

/// Columns padded as Go's tabwriter in kubeadm (min width 10, padding 3).
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == last {
                s.push_str(c);
            } else {
                let w = (widths.get(i).copied().unwrap_or(0) + 3).max(10);
                s.push_str(&format!("{c:<w$}"));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

fn cells(r: &Row, with_ca: bool) -> Vec<String> {
    let yes = if r.externally_managed { "yes" } else { "no" }.to_string();
    let (expires, residual) = match (&r.problem, r.not_after) {
        (Some(p), _) if p == "missing" => ("!MISSING!".to_string(), String::new()),
        (Some(p), _) => (format!("!INVALID! {p}"), String::new()),
        (None, Some(t)) => (kubeadm_time(t), r.residual.clone().unwrap_or_default()),
        (None, None) => (String::new(), String::new()),
    };
    let mut v = vec![r.name.clone(), expires, residual];
    if with_ca {
        v.push(r.authority.clone().unwrap_or_default());
    }
    v.push(yes);
    v
}

/// The text tables.
pub fn render(inv: &Inventory) -> String {
    let mut out = String::new();
    if !inv.authorities.is_empty() {
        out.push_str("ceremony CAs (root-ca.crt, cas/)\n");
        let rows: Vec<Vec<String>> = inv.authorities.iter().map(|r| cells(r, true)).collect();
        out.push_str(&table(
            &[
                "CERTIFICATE AUTHORITY",
                "EXPIRES",
                "RESIDUAL TIME",
                "ISSUED BY",
                "EXTERNALLY MANAGED",
            ],
            &rows,
        ));
        out.push('\n');
    }
    for (i, n) in inv.nodes.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let title = match &n.node {
            Some(name) => format!("node {name} ({})", n.role.name()),
            None => format!("node ({})", n.role.name()),
        };
        let path = if n.path.is_empty() {
            String::new()
        } else {
            format!(": {}", n.path)
        };
        out.push_str(&format!("{title}{path}\n"));
        let rows: Vec<Vec<String>> = n.certificates.iter().map(|r| cells(r, true)).collect();
        out.push_str(&table(
            &[
                "CERTIFICATE",
                "EXPIRES",
                "RESIDUAL TIME",
                "CERTIFICATE AUTHORITY",
                "EXTERNALLY MANAGED",
            ],
            &rows,
        ));
        out.push('\n');
        let rows: Vec<Vec<String>> = n.authorities.iter().map(|r| cells(r, false)).collect();
        out.push_str(&table(
            &[
                "CERTIFICATE AUTHORITY",
                "EXPIRES",
                "RESIDUAL TIME",
                "EXTERNALLY MANAGED",
            ],
            &rows,
        ));
    }
    if !inv.users.is_empty() {
        out.push_str("\nusers (users/)\n");
        let rows: Vec<Vec<String>> = inv.users.iter().map(|r| cells(r, true)).collect();
        out.push_str(&table(
            &[
                "USER",
                "EXPIRES",
                "RESIDUAL TIME",
                "CERTIFICATE AUTHORITY",
                "EXTERNALLY MANAGED",
            ],
            &rows,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_time_as_kubeadm() {
        assert_eq!(short_human(-5), "<invalid>");
        assert_eq!(short_human(59), "59s");
        assert_eq!(short_human(3599), "59m");
        assert_eq!(short_human(86399), "23h");
        assert_eq!(short_human(364 * 86400 + 5), "364d");
        assert_eq!(short_human(10 * 365 * 86400 - 1), "9y");
    }
}
