//! The `[cluster]` section's rules: nodes, endpoint, service CIDR, SANs,
//! versions. Part of `validate`, pure.

//! Plan validation: raw plan in, typed plan or *every* problem out.
//!
//! Pure: no file, token or clock access (the caller passes `now` and the
//! contents of any file the plan names). Every problem names its key path and
//! the value it got, so the operator can fix the whole plan in one go.

use super::{Context, Problems, excerpt, input_path_problem, quoted};
use crate::keytype::{KeyType, key_type_names};
use crate::plan::duration::parse_lifetime;
use crate::plan::model::{Cluster, Plan};
use crate::plan::spec::{ClusterSpec, ControlPlaneSpec, LeafMode};
use crate::x509::san::{San, is_dns_subdomain};
use std::collections::HashSet;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

pub(super) fn validate_cluster(
    plan: &Plan,
    cl: &Cluster,
    ctx: &Context<'_>,
    intermediates_end: Option<SystemTime>,
    p: &mut Problems,
) -> Option<ClusterSpec> {
    let before = p.0.len();
    let name = cl.name.clone().unwrap_or_else(|| "kubernetes".into());
    if !is_dns_subdomain(&name) {
        p.add(
            "cluster.name",
            "must be a DNS-1123 subdomain",
            quoted(&name),
        );
    }
    let version = match &cl.kubernetes_version {
        None => (1, 31),
        Some(v) => match parse_version(v) {
            Some(ver) if ver >= (1, 22) => ver,
            _ => {
                p.add(
                    "cluster.kubernetes_version",
                    "must be a kubeadm version 1.22 or later, e.g. \"v1.31\"",
                    quoted(v),
                );
                (1, 31)
            }
        },
    };
    let bind_port = cl.bind_port.unwrap_or(6443);
    if bind_port == 0 {
        p.add(
            "cluster.bind_port",
            "must be a TCP port (1-65535)",
            Some("0".into()),
        );
    }
    let endpoint =
        cl.control_plane_endpoint
            .as_ref()
            .and_then(|e| match parse_endpoint(e, bind_port) {
                Ok(v) => Some(v),
                Err(msg) => {
                    p.add("cluster.control_plane_endpoint", msg, quoted(e));
                    None
                }
            });
    let cidr_text = cl
        .service_cidr
        .clone()
        .unwrap_or_else(|| "10.96.0.0/12".into());
    let service_cidr = parse_cidr(&cidr_text)
        .map_err(|e| p.add("cluster.service_cidr", e, quoted(&cidr_text)))
        .unwrap_or((IpAddr::from([10, 96, 0, 0]), 12));
    let dns_domain = cl
        .dns_domain
        .clone()
        .unwrap_or_else(|| "cluster.local".into());
    if !is_dns_subdomain(&dns_domain) {
        p.add(
            "cluster.dns_domain",
            "must be a DNS name",
            quoted(&dns_domain),
        );
    }
    let key_of = |path: &str, v: &Option<String>, p: &mut Problems| -> KeyType {
        let text = v.as_deref().unwrap_or("rsa-2048");
        KeyType::from_str(text).unwrap_or_else(|()| {
            p.add(
                path,
                format!("unknown key type; use one of {}", key_type_names()),
                quoted(text),
            );
            KeyType::Rsa2048
        })
    };
    let leaf_key = key_of("cluster.leaf_key", &cl.leaf_key, p);
    // kubeadm makes sa.key with the one encryptionAlgorithm it makes every
    // key with (CreateServiceAccountKeyAndPublicKeyFiles), so by default the
    // service-account key is of the leaves' type.
    let sa_key = match &cl.service_account_key {
        Some(_) => key_of("cluster.service_account_key", &cl.service_account_key, p),
        None => leaf_key,
    };
    let lv_text = cl.leaf_validity.clone().unwrap_or_else(|| "365d".into());
    let leaf_validity = match parse_lifetime(&lv_text) {
        Ok(d) => {
            if let Some(end) = intermediates_end
                && ctx.now + d > end
            {
                p.add(
                    "cluster.leaf_validity",
                    "leaves would outlive an intermediate CA; shorten it or lengthen the CAs",
                    quoted(&lv_text),
                );
            }
            d
        }
        Err(e) => {
            p.add("cluster.leaf_validity", e, quoted(&lv_text));
            Duration::from_secs(365 * 86400)
        }
    };
    let apiserver_extra_sans = sans("cluster.apiserver_extra_sans", &cl.apiserver_extra_sans, p);

    // Every node's name, borrowed (100,000 workers: not a copy of each).
    let mut names = HashSet::new();
    let mut control_plane = Vec::new();
    if cl.control_plane.is_empty() {
        p.add(
            "cluster.control_plane",
            "needs at least one [[cluster.control_plane]] node",
            None,
        );
    }
    for (i, n) in cl.control_plane.iter().enumerate() {
        let path = format!("cluster.control_plane[{i}]");
        check_node_name(&format!("{path}.name"), &n.name, &mut names, p);
        let address = IpAddr::from_str(&n.address)
            .map_err(|_| {
                p.add(
                    format!("{path}.address"),
                    "must be the node's advertise IP address",
                    quoted(&n.address),
                )
            })
            .ok();
        let server = sans(
            &format!("{path}.etcd_server_extra_sans"),
            &n.etcd_server_extra_sans,
            p,
        );
        let peer = sans(
            &format!("{path}.etcd_peer_extra_sans"),
            &n.etcd_peer_extra_sans,
            p,
        );
        if let Some(address) = address {
            control_plane.push(ControlPlaneSpec {
                name: n.name.clone(),
                address,
                etcd_server_extra_sans: server,
                etcd_peer_extra_sans: peer,
            });
        }
    }
    let mut workers = Vec::new();
    if let Some(w) = &cl.workers {
        for (i, n) in w.names.iter().enumerate() {
            check_node_name(&format!("cluster.workers.names[{i}]"), n, &mut names, p);
            workers.push(n.clone());
        }
        let mut path_ok = true;
        if let Some(file) = &w.names_file
            && let Some(why) = input_path_problem(file, w.allow_outside, "[cluster.workers]")
        {
            path_ok = false;
            p.add(
                "cluster.workers.names_file",
                why,
                quoted(&file.display().to_string()),
            );
        }
        // A refused path was not read (`load`); its text, if any, is ignored.
        let text = ctx.worker_names_file.filter(|_| path_ok);
        if let (Some(file), Some(text)) = (&w.names_file, text) {
            for (i, line) in text.lines().enumerate() {
                let n = line.trim();
                if n.is_empty() || n.starts_with('#') {
                    continue;
                }
                let path = format!("cluster.workers.names_file ({}:{})", file.display(), i + 1);
                check_node_name(&path, n, &mut names, p);
                workers.push(n.to_string());
            }
        }
    }
    for (node, r) in &cl.node_recipients {
        let key = format!("cluster.node_recipients.{node}");
        // A node the set does not have may still be a worker whose name was
        // refused (that error is enough); the list is walked only then.
        if !names.contains(node.as_str()) && !workers.contains(node) {
            p.add(
                key.clone(),
                "names no node of [cluster]: give the name of a control-plane node or worker",
                quoted(node),
            );
        }
        let ok =
            age::x25519::Recipient::from_str(r).is_ok() || age::ssh::Recipient::from_str(r).is_ok();
        if !ok {
            p.add(
                key,
                "is not an age recipient (age1…) or an SSH public key (ssh-ed25519 …, ssh-rsa …)",
                quoted(r),
            );
        }
    }
    let mode = match plan.leaves.as_ref().map(|l| l.mode.as_str()) {
        None | Some("generate") => LeafMode::Generate,
        Some("csr") => {
            if let Some(l) = plan.leaves.as_ref() {
                match &l.csr_dir {
                    None => p.add("leaves.csr_dir", "is required with mode = \"csr\"", None),
                    Some(dir) => {
                        if let Some(why) = input_path_problem(dir, l.allow_outside, "[leaves]") {
                            p.add("leaves.csr_dir", why, quoted(&dir.display().to_string()));
                        }
                    }
                }
            }
            LeafMode::Csr
        }
        Some(other) => {
            p.add(
                "leaves.mode",
                "must be \"generate\" or \"csr\"",
                quoted(other),
            );
            LeafMode::Generate
        }
    };
    // Names already refused (a bad names file) are not judged again: no
    // cascade, and a line of a file is shown only as its excerpt.
    let names_valid = p.0.len() == before;
    let mut worker_addresses = std::collections::BTreeMap::new();
    for (node, a) in &cl.worker_addresses {
        let key = format!("cluster.worker_addresses.{node}");
        let a_worker =
            names.contains(node.as_str()) && !control_plane.iter().any(|n| &n.name == node);
        if names_valid && !a_worker {
            p.add(
                key.clone(),
                "names no worker of [cluster]: give the name of a worker (a control-plane node's address is its own `address`)",
                quoted(node),
            );
        }
        match a.parse::<IpAddr>() {
            Ok(ip) => {
                worker_addresses.insert(node.clone(), ip);
            }
            Err(_) => p.add(key, "must be the worker's IP address", quoted(a)),
        }
    }
    let kubelet_serving = cl.kubelet_serving_certs.unwrap_or(false);
    if kubelet_serving && names_valid {
        // kube-apiserver dials a kubelet at its address (kubeadm prefers
        // InternalIP): a certificate without it would fail that check.
        for w in &workers {
            if !cl.worker_addresses.contains_key(w) {
                p.add(
                    "cluster.kubelet_serving_certs",
                    format!("worker {w} has no address for its kubelet serving certificate: add it to [cluster.worker_addresses] ({w} = \"IP\"), or set kubelet_serving_certs = false"),
                    None,
                );
            }
        }
        if mode == LeafMode::Csr {
            p.add(
                "cluster.kubelet_serving_certs",
                "is not offered with leaves.mode = \"csr\" (kubeadm makes no kubelet serving request): set it false, or use mode = \"generate\"",
                None,
            );
        }
    }
    if p.0.len() != before {
        return None;
    }
    Some(ClusterSpec {
        name,
        version,
        endpoint,
        service_cidr,
        dns_domain,
        bind_port,
        leaf_key,
        leaf_validity,
        sa_key,
        apiserver_extra_sans,
        control_plane,
        workers,
        mode,
        kubelet_serving,
        worker_addresses,
        node_recipients: cl.node_recipients.clone(),
        delegated: Vec::new(),
    })
}

/// A node name, from the plan or a line of its names file (so what is shown
/// of it is an excerpt).
pub(super) fn check_node_name<'n>(
    path: &str,
    name: &'n str,
    seen: &mut HashSet<&'n str>,
    p: &mut Problems,
) {
    if !is_dns_subdomain(name) {
        p.add(
            path,
            "must be a node name: a lowercase DNS-1123 subdomain",
            excerpt(name),
        );
    } else if !seen.insert(name) {
        p.add(
            path,
            "names a node twice; every node name must be unique",
            excerpt(name),
        );
    }
}

pub(super) fn sans(path: &str, list: &[String], p: &mut Problems) -> Vec<San> {
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        match San::parse(s) {
            Ok(san) => out.push(san),
            Err(e) => p.add(format!("{path}[{i}]"), e, quoted(s)),
        }
    }
    out
}

/// "v1.31", "1.31" or "v1.31.2" → (1, 31).
pub(super) fn parse_version(v: &str) -> Option<(u32, u32)> {
    let v = v.strip_prefix('v').unwrap_or(v);
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    match parts.next() {
        None => {}
        Some(patch) if patch.split(['-', '+']).next()?.parse::<u32>().is_ok() => {}
        Some(_) => return None,
    }
    Some((major, minor))
}

/// host[:port] with host an IP, [IPv6] or DNS name; port defaults to bindPort as in kubeadm.
pub(super) fn parse_endpoint(e: &str, bind_port: u16) -> Result<(San, u16), String> {
    let (host, port) = if let Some(rest) = e.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or("has an unclosed [")?;
        match after.strip_prefix(':') {
            Some(port) => (h, Some(port)),
            None if after.is_empty() => (h, None),
            None => return Err("must be host[:port]".into()),
        }
    } else if e.matches(':').count() > 1 {
        (e, None) // a bare IPv6 address
    } else {
        match e.split_once(':') {
            Some((h, port)) => (h, Some(port)),
            None => (e, None),
        }
    };
    let port = match port {
        None => bind_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or("has an invalid port")?,
    };
    let san =
        San::parse(host).map_err(|_| "host must be an IP address or a DNS name".to_string())?;
    if matches!(&san, San::Dns(d) if d.starts_with("*.")) {
        return Err("host must not be a wildcard".into());
    }
    Ok((san, port))
}

pub(super) fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (ip, len) = s
        .split_once('/')
        .ok_or("must be a CIDR such as 10.96.0.0/12")?;
    let ip = IpAddr::from_str(ip).map_err(|_| "must be a CIDR such as 10.96.0.0/12".to_string())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or("has an invalid prefix length")?;
    // kubeadm takes the first address after the network address: it must exist.
    if len >= max - 1 {
        return Err("is too small to hold the API server's service address".into());
    }
    let host_bits = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) & (u128::from(u32::MAX) >> len),
        IpAddr::V6(v6) => u128::from(v6) & (u128::MAX >> len),
    };
    if host_bits != 0 {
        return Err("has host bits set; give the network address (e.g. 10.96.0.0/12)".into());
    }
    Ok((ip, len))
}
