//! Real peers: servers held by a handle (killed on drop, also while a
//! failed test unwinds) on 127.0.0.1 ports, tools with a bounded wait, and
//! the kubeconfig loader the cluster uses (kubectl).
//!
//! What it must not do: bind anything but 127.0.0.1, wait without a bound,
//! or kill a process by name.

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::run::{Output, SHORT, run, spawn_peer};

/// The bound on every wait for a server or a peer.
pub const WAIT: Duration = Duration::from_secs(20);

/// `openssl ARGS` with the short bound.
pub fn openssl(args: &[&str]) -> Output {
    run(Command::new("openssl").args(args), SHORT)
}

/// A long-running child (etcd, openssl s_server) whose stdout and stderr go to
/// a log file. Dropping it kills exactly this process and reaps it.
pub struct Server {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl Server {
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Server {
        let child = spawn_peer(cmd, log);
        Server {
            name: name.to_string(),
            log: log.to_path_buf(),
            child,
        }
    }

    pub fn log_text(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Polls the log (every 50 ms, at most `limit`) until it contains `needle`.
    /// Err with the log when the process exits first or time runs out.
    pub fn wait_for_log(&mut self, needle: &str, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if self.log_text().contains(needle) {
                return Ok(());
            }
            if let Some(s) = self.exited() {
                return Err(format!(
                    "{} exited ({s}) before logging {needle:?}:\n{}",
                    self.name,
                    self.log_text()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not log {needle:?} within {limit:?}:\n{}",
                    self.name,
                    self.log_text()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Like `wait_for_log`, for a server just started on a port picked by
    /// `free_port`: Err (worth a retry on another port) only when the port
    /// was taken meanwhile; any other failure panics with the log.
    pub fn wait_ready(&mut self, needle: &str) -> Result<(), String> {
        self.wait_for_log(needle, WAIT).map_err(|e| {
            if e.to_ascii_lowercase().contains("address already in use") {
                e
            } else {
                panic!("{e}")
            }
        })
    }

    /// How often `needle` occurs in the log so far.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log_text().matches(needle).count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close).
/// Callers start their server on it and retry with a new port if the bind
/// fails (another process may take it in between).
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// `n` distinct ports on 127.0.0.1 that were free a moment ago (all bound at
/// once, so they differ).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// Calls `start` up to `attempts` times until it returns a running server.
pub fn start_with_retries<T>(attempts: usize, mut start: impl FnMut() -> Result<T, String>) -> T {
    let mut errors = Vec::new();
    for _ in 0..attempts {
        match start() {
            Ok(s) => return s,
            Err(e) => errors.push(e),
        }
    }
    panic!(
        "could not start the server in {attempts} attempts:\n{}",
        errors.join("\n----\n")
    );
}

// etcd

pub const ETCD_READY: &str = "ready to serve client requests";
pub const UNKNOWN_AUTHORITY: &str = "certificate signed by unknown authority";

/// One etcd member started from a node's bundle.
pub struct EtcdMember {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
}

/// Starts `members` (one etcd each: a name and the node's `pki` directory,
/// whose `etcd/server.*`, `etcd/peer.*` and `etcd/ca.crt` it uses) as one cluster on
/// fresh 127.0.0.1 ports, waiting (bounded) until every member serves clients.
/// Retries with new ports and data dirs if a port was taken meanwhile.
pub fn start_etcd_cluster(
    scratch: &Path,
    members: &[(&str, PathBuf)],
) -> (Vec<Server>, Vec<EtcdMember>) {
    start_etcd_cluster_with(scratch, members, &[])
}

/// [`start_etcd_cluster`] with `extra` arguments for every member (e.g.
/// `--client-crl-file`).
pub fn start_etcd_cluster_with(
    scratch: &Path,
    members: &[(&str, PathBuf)],
    extra: &[String],
) -> (Vec<Server>, Vec<EtcdMember>) {
    let names: Vec<&str> = members.iter().map(|(n, _)| *n).collect();
    let mut attempt = 0;
    start_with_retries(5, || {
        attempt += 1;
        let ports = free_ports(2 * names.len());
        let started: Vec<EtcdMember> = names
            .iter()
            .zip(ports.chunks(2))
            .map(|(n, p)| EtcdMember {
                name: n.to_string(),
                client_port: p[0],
                peer_port: p[1],
            })
            .collect();
        let initial: Vec<String> = started
            .iter()
            .map(|m| format!("{}=https://127.0.0.1:{}", m.name, m.peer_port))
            .collect();
        let initial = initial.join(",");
        let mut servers = Vec::new();
        for (m, (_, pki)) in started.iter().zip(members) {
            let data = scratch.join(format!("etcd-{}-{attempt}", m.name));
            let client = format!("https://127.0.0.1:{}", m.client_port);
            let peer = format!("https://127.0.0.1:{}", m.peer_port);
            let mut cmd = Command::new("etcd");
            cmd.arg("--name")
                .arg(&m.name)
                .arg("--data-dir")
                .arg(&data)
                .arg("--listen-client-urls")
                .arg(&client)
                .arg("--advertise-client-urls")
                .arg(&client)
                .arg("--listen-peer-urls")
                .arg(&peer)
                .arg("--initial-advertise-peer-urls")
                .arg(&peer)
                .arg("--initial-cluster")
                .arg(&initial)
                .arg("--initial-cluster-state")
                .arg("new")
                .arg("--initial-cluster-token")
                .arg(format!("peers-test-{attempt}"))
                .arg("--cert-file")
                .arg(pki.join("etcd/server.crt"))
                .arg("--key-file")
                .arg(pki.join("etcd/server.key"))
                .arg("--peer-cert-file")
                .arg(pki.join("etcd/peer.crt"))
                .arg("--peer-key-file")
                .arg(pki.join("etcd/peer.key"))
                .arg("--trusted-ca-file")
                .arg(pki.join("etcd/ca.crt"))
                .arg("--peer-trusted-ca-file")
                .arg(pki.join("etcd/ca.crt"))
                .arg("--client-cert-auth")
                .arg("--peer-client-cert-auth")
                .args(extra);
            servers.push(Server::spawn(
                &format!("etcd {}", m.name),
                &mut cmd,
                &scratch.join(format!("etcd-{}-{attempt}.log", m.name)),
            ));
        }
        // "ready to serve client requests" is logged once the member has
        // joined a cluster with a leader, so for two members it also means
        // the peers have connected to each other.
        for i in 0..servers.len() {
            if let Err(e) = servers[i].wait_for_log(ETCD_READY, WAIT) {
                // A member whose port was taken meanwhile exits, and the
                // others wait for it in vain: retry on new ports. Anything
                // else is a real failure.
                let logs: Vec<String> = servers
                    .iter()
                    .map(|s| format!("--- {}\n{}", s.name, s.log_text()))
                    .collect();
                let logs = logs.join("\n");
                if logs.to_ascii_lowercase().contains("address already in use") {
                    return Err(format!("{e}\n{logs}"));
                }
                panic!("{e}\nall members:\n{logs}");
            }
        }
        Ok((servers, started))
    })
}

/// etcdctl (v3 API) against `port`, trusting `ca` and presenting `client`
/// (a path without extension: `<client>.crt` / `<client>.key`).
pub fn etcdctl(port: u16, ca: &Path, client: &Path, args: &[&str]) -> Output {
    etcdctl_with(port, ca, client, "5s", args)
}

/// etcdctl where a refusal is expected: it retries until its own deadline,
/// so keep that short (the refusal itself is read from etcd's log).
pub fn etcdctl_refused(port: u16, ca: &Path, client: &Path, args: &[&str]) -> Output {
    etcdctl_with(port, ca, client, "2s", args)
}

pub fn etcdctl_with(port: u16, ca: &Path, client: &Path, timeout: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("etcdctl");
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=https://127.0.0.1:{port}"))
        .arg(format!("--cacert={}", ca.display()))
        .arg(format!("--cert={}", client.with_extension("crt").display()))
        .arg(format!("--key={}", client.with_extension("key").display()))
        .arg(format!("--dial-timeout={timeout}"))
        .arg(format!("--command-timeout={timeout}"))
        .args(args);
    run(&mut cmd, SHORT)
}

/// A kubeconfig as client-go loads it: `kubectl config view --raw -o json`
/// (the same loader kubeadm, the kubelet and the control plane use).
pub fn kubeconfig_json(path: &Path, home: &Path) -> serde_json::Value {
    let r = run(
        Command::new("kubectl")
            .env("HOME", home)
            .arg("config")
            .arg("view")
            .arg("--raw")
            .arg("-o")
            .arg("json")
            .arg("--kubeconfig")
            .arg(path),
        SHORT,
    )
    .expect_ok();
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| {
        panic!(
            "kubectl config view of {}: {e}\n{}",
            path.display(),
            r.stdout
        )
    })
}

/// The decoded PEM of a base64 `*-data` field of the only user or cluster.
pub fn kubeconfig_data(kc: &serde_json::Value, section: &str, field: &str) -> Vec<u8> {
    let inner = if section == "users" {
        "user"
    } else {
        "cluster"
    };
    let b64 = kc[section][0][inner][field]
        .as_str()
        .unwrap_or_else(|| panic!("{section}[0].{inner}.{field} missing in {kc}"));
    STANDARD
        .decode(b64)
        .unwrap_or_else(|e| panic!("{field} is not base64: {e}"))
}

/// (client certificate PEM, client key PEM, CA PEM) of a kubeconfig.
pub fn kubeconfig_credentials(kc: &serde_json::Value) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    (
        kubeconfig_data(kc, "users", "client-certificate-data"),
        kubeconfig_data(kc, "users", "client-key-data"),
        kubeconfig_data(kc, "clusters", "certificate-authority-data"),
    )
}

/// The kubeconfig files every control-plane node has (super-admin.conf only on the first).
pub const CP_KUBECONFIGS: [&str; 5] = [
    "admin.conf",
    "super-admin.conf",
    "controller-manager.conf",
    "scheduler.conf",
    "kubelet.conf",
];

/// Which CA issues each pki leaf (README's table), by path under etc/kubernetes.
pub const PKI_LEAVES: [(&str, Domain); 7] = [
    ("pki/apiserver", Domain::Kubernetes),
    ("pki/apiserver-kubelet-client", Domain::Kubernetes),
    ("pki/apiserver-etcd-client", Domain::Etcd),
    ("pki/front-proxy-client", Domain::FrontProxy),
    ("pki/etcd/server", Domain::Etcd),
    ("pki/etcd/peer", Domain::Etcd),
    ("pki/etcd/healthcheck-client", Domain::Etcd),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    Kubernetes,
    Etcd,
    FrontProxy,
}

impl Domain {
    pub const ALL: [Domain; 3] = [Domain::Kubernetes, Domain::Etcd, Domain::FrontProxy];

    /// The node's CA file (under etc/kubernetes).
    pub fn node_ca_file(self) -> &'static str {
        match self {
            Domain::Kubernetes => "pki/ca.crt",
            Domain::Etcd => "pki/etcd/ca.crt",
            Domain::FrontProxy => "pki/front-proxy-ca.crt",
        }
    }

    /// `OUT/cas/<x>.crt`.
    pub fn out_ca_file(self) -> &'static str {
        match self {
            Domain::Kubernetes => "cas/kubernetes-ca.crt",
            Domain::Etcd => "cas/etcd-ca.crt",
            Domain::FrontProxy => "cas/front-proxy-ca.crt",
        }
    }

    /// `OUT/chains/<domain>-ca-chain.crt`.
    pub fn chain_file(self) -> &'static str {
        match self {
            Domain::Kubernetes => "chains/kubernetes-ca-chain.crt",
            Domain::Etcd => "chains/etcd-ca-chain.crt",
            Domain::FrontProxy => "chains/front-proxy-ca-chain.crt",
        }
    }
}
