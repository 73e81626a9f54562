//! Helpers for the real-peer tests (tests/peers.rs, tests/reference.rs):
//! throwaway SoftHSM tokens, plans, running the ceremony, running external
//! tools with a bounded wait, servers that are killed on drop, and reading
//! certificates, keys and kubeconfigs.
//!
//! Everything a test starts is a child process held by a handle: commands are
//! killed when their time is up, servers when their guard is dropped (also
//! while a failed test unwinds). Nothing is ever killed by name.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tempfile::TempDir;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::X509Name;

pub const BIN: &str = env!("CARGO_BIN_EXE_ceremony");
pub const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
/// The SoftHSM2 module as Debian installs it (scripts/test installs softhsm2).
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The demo plan's age recipient (its identity is ceremony/plans/demo-auditor.agekey).
pub const AUDIT_RECIPIENT: &str = "age1rfjvanyx48qxdll0q8wkrca6kpkfluxp4gal0ws7cp4awt900vpsf0sp9u";
/// The bound on every wait for a server or a peer.
pub const WAIT: Duration = Duration::from_secs(20);
/// The bound on a short command (openssl, sha256sum, kubectl, etcdctl).
pub const SHORT: Duration = Duration::from_secs(30);
/// The bound on one ceremony run (RSA leaf keys are slow in a debug build).
pub const CEREMONY: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------
// Commands with a bounded wait

/// What a finished (or timed-out) command left behind.
#[derive(Debug)]
pub struct Outcome {
    pub what: String,
    /// None when the command was killed because its time was up.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Exited by itself with a non-zero status (not killed on timeout).
    pub fn failed(&self) -> bool {
        self.status.is_some_and(|s| !s.success())
    }

    /// Panics with everything the command printed unless it succeeded.
    pub fn expect_ok(self) -> Outcome {
        assert!(self.ok(), "command failed: {self}");
        self
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => "killed after its time limit".to_string(),
        };
        write!(
            f,
            "`{}`: {status}\n--- stdout\n{}\n--- stderr\n{}",
            self.what, self.stdout, self.stderr
        )
    }
}

/// A child that is killed and reaped when dropped, unless it was waited for.
struct Reaper(Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Environment every external tool runs in: no proxies (the peers are on
/// 127.0.0.1), no inherited kubeconfig or token configuration (unless the
/// caller set one on this command).
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
        "KUBECONFIG",
        "SOFTHSM2_CONF",
        "ETCDCTL_ENDPOINTS",
        "ETCDCTL_CACERT",
        "ETCDCTL_CERT",
        "ETCDCTL_KEY",
    ] {
        // Keep what the caller set on purpose (SOFTHSM2_CONF for the ceremony).
        let set = cmd.get_envs().any(|(k, v)| k == var && v.is_some());
        if !set {
            cmd.env_remove(var);
        }
    }
    cmd
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion, killing it after `limit`. Output is captured.
pub fn run(cmd: &mut Command, limit: Duration) -> Outcome {
    let what = describe(cmd);
    clean_env(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Reaper(Some(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}")),
    ));
    let c = child.0.as_mut().expect("child");
    let mut out = c.stdout.take().expect("stdout");
    let mut err = c.stderr.take().expect("stderr");
    let t_out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        let c = child.0.as_mut().expect("child");
        match c.try_wait() {
            Ok(Some(s)) => {
                child.0 = None;
                break Some(s);
            }
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                // Time is up: kill this child (by its handle) and reap it.
                drop(child);
                break None;
            }
            Err(e) => panic!("waiting for `{what}`: {e}"),
        }
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    Outcome {
        what,
        status,
        stdout,
        stderr,
    }
}

/// `openssl ARGS` with the short bound.
pub fn openssl(args: &[&str]) -> Outcome {
    run(Command::new("openssl").args(args), SHORT)
}

// ---------------------------------------------------------------------------
// Servers

/// A long-running child (etcd, openssl s_server) whose stdout and stderr go to
/// a log file. Dropping it kills exactly this process and reaps it.
pub struct Server {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl Server {
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Server {
        let file = fs::File::create(log).expect("server log");
        let file2 = file.try_clone().expect("server log");
        clean_env(cmd);
        cmd.stdin(Stdio::null()).stdout(file).stderr(file2);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} (`{}`): {e}", describe(cmd)));
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

// ---------------------------------------------------------------------------
// Tokens, plans and ceremonies

/// A throwaway SoftHSM token in its own temporary directory (softhsm/new-token).
pub struct Token {
    pub dir: TempDir,
}

impl Token {
    pub fn new() -> Token {
        let dir = tempfile::Builder::new()
            .prefix("ceremony-peers-")
            .tempdir()
            .expect("tempdir");
        assert!(
            Path::new(SOFTHSM_MODULE).exists(),
            "{SOFTHSM_MODULE} is missing: install softhsm2 (scripts/test does)"
        );
        run(
            Command::new(Path::new(MANIFEST_DIR).join("softhsm/new-token")).arg(dir.path()),
            SHORT,
        )
        .expect_ok();
        Token { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn conf(&self) -> PathBuf {
        self.path().join("softhsm2.conf")
    }

    pub fn pin(&self) -> PathBuf {
        self.path().join("pin")
    }

    /// Writes `plan` as `<name>.toml` and runs `ceremony run` into `<name>-out`.
    /// SOFTHSM2_CONF is given to the child only.
    pub fn ceremony(&self, name: &str, plan: &str) -> PathBuf {
        let plan_path = self.path().join(format!("{name}.toml"));
        fs::write(&plan_path, plan).expect("write plan");
        let out = self.path().join(format!("{name}-out"));
        let mut cmd = Command::new(BIN);
        clean_env(&mut cmd);
        cmd.current_dir(self.path())
            .env("SOFTHSM2_CONF", self.conf())
            .arg("run")
            .arg(&plan_path)
            .arg("--yes")
            .arg("--pin-file")
            .arg(self.pin())
            .arg("--out")
            .arg(&out);
        let r = run(&mut cmd, CEREMONY);
        assert!(r.ok(), "ceremony run failed: {r}\n--- plan\n{plan}");
        out
    }
}

/// The parameters of a test plan (the rest is fixed: labels, validities).
pub struct PlanSpec<'a> {
    pub version: &'a str,
    pub endpoint: Option<&'a str>,
    pub apiserver_extra_sans: &'a [&'a str],
    pub leaf_key: &'a str,
    pub ca_key: &'a str,
    /// (name, advertise address)
    pub control_plane: &'a [(&'a str, &'a str)],
    pub workers: &'a [&'a str],
}

impl Default for PlanSpec<'_> {
    /// One control-plane node cp1 at 10.0.0.10, EC keys, kubeadm 1.31,
    /// the endpoint 127.0.0.1:6443 and `localhost` as an extra apiserver SAN,
    /// so that a local peer can check the apiserver certificate's SANs.
    fn default() -> Self {
        PlanSpec {
            version: "v1.31",
            endpoint: Some("127.0.0.1:6443"),
            apiserver_extra_sans: &["localhost"],
            leaf_key: "ecdsa-p256",
            ca_key: "ecdsa-p256",
            control_plane: &[("cp1", "10.0.0.10")],
            workers: &[],
        }
    }
}

fn quoted(items: &[&str]) -> String {
    let v: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", v.join(", "))
}

impl PlanSpec<'_> {
    pub fn toml(&self) -> String {
        let mut t = format!(
            r#"[ceremony]
name = "peer-test"
administrator = "Test Administrator"
witnesses = ["Test Witness"]

[token]
uri = "pkcs11:token=ceremony-demo"
module = "{SOFTHSM_MODULE}"

[root]
label = "test-root"
subject = "CN=Test Root CA,O=Test"
key = "ecdsa-p256"
validity = "20y"

[ca.kubernetes]
label = "test-kubernetes-ca"
key = "{ca}"
validity = "10y"

[ca.etcd]
label = "test-etcd-ca"
key = "{ca}"
validity = "10y"

[ca.front-proxy]
label = "test-front-proxy-ca"
key = "{ca}"
validity = "10y"

[cluster]
name = "kubernetes"
kubernetes_version = "{version}"
service_cidr = "10.96.0.0/12"
dns_domain = "cluster.local"
leaf_key = "{leaf}"
leaf_validity = "365d"
apiserver_extra_sans = {sans}
"#,
            ca = self.ca_key,
            version = self.version,
            leaf = self.leaf_key,
            sans = quoted(self.apiserver_extra_sans),
        );
        if let Some(ep) = self.endpoint {
            t.push_str(&format!("control_plane_endpoint = {ep:?}\n"));
        }
        for (name, addr) in self.control_plane {
            t.push_str(&format!(
                "\n[[cluster.control_plane]]\nname = {name:?}\naddress = {addr:?}\n"
            ));
        }
        if !self.workers.is_empty() {
            t.push_str(&format!(
                "\n[cluster.workers]\nnames = {}\n",
                quoted(self.workers)
            ));
        }
        t.push_str(&format!(
            "\n[audit]\nrecipients = [\"{AUDIT_RECIPIENT}\"]\n"
        ));
        t
    }
}

/// `OUT/nodes/<node>/etc/kubernetes`.
pub fn node_dir(out: &Path, node: &str) -> PathBuf {
    out.join("nodes").join(node).join("etc/kubernetes")
}

// ---------------------------------------------------------------------------
// Files

/// Every regular file under `dir`, relative to it, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for p in entries {
            let meta = fs::symlink_metadata(&p).expect("metadata");
            if meta.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(
                    p.strip_prefix(base)
                        .expect("under base")
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

pub fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Writes a secret file (0600) into a test's scratch directory.
pub fn write_secret(path: &Path, data: &[u8]) {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    std::io::Write::write_all(&mut f, data).expect("write");
}

pub fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------
// PEM, certificates, keys

/// Every PEM block in `data` (label, DER).
pub fn pem_blocks(data: &[u8]) -> Vec<Pem> {
    Pem::iter_from_buffer(data)
        .map(|p| p.expect("well-formed PEM"))
        .collect()
}

/// The DER of every CERTIFICATE block in `path`; panics on any other block.
pub fn certs_in(path: &Path) -> Vec<Vec<u8>> {
    pem_blocks(&read(path))
        .into_iter()
        .map(|p| {
            assert_eq!(
                p.label,
                "CERTIFICATE",
                "{} holds a {} block",
                path.display(),
                p.label
            );
            p.contents
        })
        .collect()
}

/// The only certificate in `path` (panics unless there is exactly one).
pub fn one_cert(path: &Path) -> Vec<u8> {
    let mut v = certs_in(path);
    assert_eq!(
        v.len(),
        1,
        "{} must hold exactly one certificate",
        path.display()
    );
    v.remove(0)
}

pub fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, c) = X509Certificate::from_der(der).expect("DER certificate");
    assert!(rest.is_empty(), "trailing bytes after the certificate");
    c
}

fn attr_name(oid: &str) -> &str {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        other => other,
    }
}

/// A name as its RDN sequence, each RDN's attributes sorted ("O=a+O=b").
pub fn rdns(name: &X509Name<'_>) -> Vec<String> {
    name.iter_rdn()
        .map(|rdn| {
            let mut v: Vec<String> = rdn
                .iter()
                .map(|a| {
                    format!(
                        "{}={}",
                        attr_name(&a.attr_type().to_id_string()),
                        a.as_str().expect("string attribute")
                    )
                })
                .collect();
            v.sort();
            v.join("+")
        })
        .collect()
}

pub fn cn(c: &X509Certificate<'_>) -> String {
    c.subject()
        .iter_common_name()
        .map(|a| a.as_str().expect("CN").to_string())
        .collect::<Vec<_>>()
        .join(",")
}

pub fn orgs(c: &X509Certificate<'_>) -> BTreeSet<String> {
    c.subject()
        .iter_organization()
        .map(|a| a.as_str().expect("O").to_string())
        .collect()
}

pub fn eku(c: &X509Certificate<'_>) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    if let Some(e) = c.extended_key_usage().expect("EKU") {
        let v = e.value;
        for (on, name) in [
            (v.any, "any"),
            (v.server_auth, "serverAuth"),
            (v.client_auth, "clientAuth"),
            (v.code_signing, "codeSigning"),
            (v.email_protection, "emailProtection"),
            (v.time_stamping, "timeStamping"),
            (v.ocsp_signing, "ocspSigning"),
        ] {
            if on {
                s.insert(name.to_string());
            }
        }
        for o in &v.other {
            s.insert(o.to_id_string());
        }
    }
    s
}

/// (critical, flags as text) of KeyUsage, if present.
pub fn key_usage(c: &X509Certificate<'_>) -> Option<(bool, String)> {
    c.key_usage()
        .expect("KeyUsage")
        .map(|k| (k.critical, k.value.to_string()))
}

/// (critical, CA, pathLen) of BasicConstraints, if present.
pub fn basic_constraints(c: &X509Certificate<'_>) -> Option<(bool, bool, Option<u32>)> {
    c.basic_constraints()
        .expect("BasicConstraints")
        .map(|b| (b.critical, b.value.ca, b.value.path_len_constraint))
}

/// The SANs as "DNS:x" / "IP:x" in certificate order (None: no extension).
pub fn sans(c: &X509Certificate<'_>) -> Option<Vec<String>> {
    c.subject_alternative_name().expect("SAN").map(|s| {
        s.value
            .general_names
            .iter()
            .map(|g| match g {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::IPAddress(b) if b.len() == 4 => {
                    let a: [u8; 4] = (*b).try_into().expect("4 bytes");
                    format!("IP:{}", IpAddr::from(Ipv4Addr::from(a)))
                }
                GeneralName::IPAddress(b) if b.len() == 16 => {
                    let a: [u8; 16] = (*b).try_into().expect("16 bytes");
                    format!("IP:{}", IpAddr::from(Ipv6Addr::from(a)))
                }
                other => format!("{other:?}"),
            })
            .collect()
    })
}

pub fn aki(c: &X509Certificate<'_>) -> Option<Vec<u8>> {
    c.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

pub fn ski(c: &X509Certificate<'_>) -> Option<Vec<u8>> {
    c.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

/// The extensions present, as "OID (critical)" / "OID", sorted.
pub fn extension_set(c: &X509Certificate<'_>) -> BTreeSet<String> {
    c.extensions()
        .iter()
        .map(|e| {
            let id = e.oid.to_id_string();
            if e.critical {
                format!("{id} (critical)")
            } else {
                id
            }
        })
        .collect()
}

/// "RSA-2048", "EC-256 (1.2.840.10045.3.1.7)".
pub fn key_type(c: &X509Certificate<'_>) -> String {
    let spki = c.public_key();
    match spki.parsed().expect("public key") {
        PublicKey::RSA(r) => format!("RSA-{}", r.key_size()),
        PublicKey::EC(e) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            format!("EC-{} ({curve})", e.key_size())
        }
        other => format!("{other:?}"),
    }
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn spki_der(c: &X509Certificate<'_>) -> Vec<u8> {
    c.public_key().raw.to_vec()
}

/// The DER SubjectPublicKeyInfo of a PEM private key, as OpenSSL computes it
/// (`openssl pkey -pubout`). The key is written to `scratch` (0600) first.
pub fn openssl_pubkey_of_private(key_pem: &[u8], scratch: &Path) -> Vec<u8> {
    write_secret(scratch, key_pem);
    let der_path = scratch.with_extension("pub.der");
    openssl(&[
        "pkey",
        "-in",
        &scratch.to_string_lossy(),
        "-pubout",
        "-outform",
        "DER",
        "-out",
        &der_path.to_string_lossy(),
    ])
    .expect_ok();
    let der = read(&der_path);
    let _ = fs::remove_file(scratch);
    let _ = fs::remove_file(&der_path);
    der
}

/// The DER of a PEM `PUBLIC KEY`, as OpenSSL reads it.
pub fn openssl_pubkey(pub_pem_path: &Path) -> Vec<u8> {
    let der_path = pub_pem_path.with_extension("der.tmp");
    openssl(&[
        "pkey",
        "-pubin",
        "-in",
        &pub_pem_path.to_string_lossy(),
        "-outform",
        "DER",
        "-out",
        &der_path.to_string_lossy(),
    ])
    .expect_ok();
    let der = read(&der_path);
    let _ = fs::remove_file(&der_path);
    der
}

pub fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).expect("ascii"));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

// ---------------------------------------------------------------------------
// Kubeconfigs

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
