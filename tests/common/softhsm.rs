//! Integration-test fixture: a throwaway SoftHSM2 token in a temp dir per
//! test, plans written from a template, and the real `ceremony` binary run
//! against them.
//!
//! What it must not do: touch any token but the one in the test's own temp
//! dir. Every child gets an empty environment plus `SOFTHSM2_CONF` pointing
//! into the temp dir (never set in this process), stdin null, and a deadline;
//! before each child runs, `guard` refuses a config, token directory or
//! PKCS#11 module that is not SoftHSM under the temp dir. Only children this
//! fixture started are ever killed, by their own handle.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test (built by cargo for this test target).
pub const BIN: &str = env!("CARGO_BIN_EXE_ceremony");
/// The only PKCS#11 module a test may point the binary at.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// Files that exist but are not PKCS#11 modules, for the bad-module cases.
/// Loading them cannot reach any token.
pub const NOT_PKCS11: &[&str] = &[
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
];
/// The demo auditor's age recipient (its identity is in ceremony/plans/).
pub const AUDIT_RECIPIENT: &str = "age1rfjvanyx48qxdll0q8wkrca6kpkfluxp4gal0ws7cp4awt900vpsf0sp9u";
/// The plan labels of the four CAs in `plan_toml`, root first.
pub const LABELS: [&str; 4] = ["root-ca", "kubernetes-ca", "etcd-ca", "front-proxy-ca"];
/// The roles, in the order the ceremony makes them (failpoint names use these).
pub const ROLES: [&str; 4] = ["root", "kubernetes", "etcd", "front-proxy"];

/// Deadline for one child process. RSA-4096 keygen on SoftHSM takes ~2 s;
/// this only bounds a hang.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(10);

/// What a child process did.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code, or None if a signal ended it.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The first `error: ...` line of stderr.
    pub fn first_error(&self) -> Option<&str> {
        self.stderr.lines().find(|l| l.starts_with("error: "))
    }

    /// The `hint: ...` line of stderr.
    pub fn hint(&self) -> Option<&str> {
        self.stderr.lines().find(|l| l.starts_with("hint: "))
    }

    #[track_caller]
    pub fn assert_ok(&self, what: &str) {
        assert_eq!(self.code, Some(0), "{what} failed:\n{self}");
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "exit code {:?}, signal {:?}", self.code, self.signal)?;
        writeln!(f, "--- stdout\n{}", self.stdout)?;
        write!(f, "--- stderr\n{}", self.stderr)
    }
}

/// Runs `cmd` (already configured) with stdin null and output captured;
/// kills it (and only it) if it outlives `timeout`.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    // Drain both pipes while waiting so a chatty child cannot block on a full pipe.
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out_pipe.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err_pipe.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let max_polls = timeout.as_millis() / POLL.as_millis() + 1;
    let mut status = None;
    for _ in 0..max_polls {
        if let Some(s) = child.try_wait().expect("waiting for the child") {
            status = Some(s);
            break;
        }
        if start.elapsed() > timeout {
            break;
        }
        std::thread::sleep(POLL);
    }
    let timed_out = status.is_none();
    let status = match status {
        Some(s) => s,
        None => {
            // Our own child, by its handle: SIGKILL, then reap it.
            let _ = child.kill();
            child.wait().expect("reaping the killed child")
        }
    };
    let out = Output {
        code: status.code(),
        signal: status.signal(),
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned(),
    };
    assert!(
        !timed_out,
        "{shown} ran longer than {timeout:?} and was killed\n{out}"
    );
    out
}

/// Random bytes from the OS, hex-encoded.
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("reading /dev/urandom");
    hex::encode(b)
}

/// Writes a new file with an exact mode (not narrowed by the umask).
pub fn write_file(path: &Path, contents: &[u8], mode: u32) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.set_permissions(fs::Permissions::from_mode(mode))
        .expect("chmod");
    f.write_all(contents).expect("write");
}

/// One initialised token in the fixture's token directory.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub label: String,
    pub serial: String,
    /// The user PIN (throwaway, random) and a 0600 file holding it, kept
    /// outside `work/` and used only by the fixture's own snapshots.
    pub pin: String,
    pub snapshot_pin_file: PathBuf,
}

/// A temp dir with a SoftHSM2 config and token directory of its own:
///
/// ```text
/// DIR/softhsm2.conf   DIR/tokens/   DIR/pin (0600, the first token's PIN)
/// DIR/work/           where tests put --out (snapshotted as a tree)
/// ```
pub struct Fixture {
    dir: tempfile::TempDir,
    /// Canonical path of the temp dir.
    pub root: PathBuf,
    pub conf: PathBuf,
    pub tokens: Vec<TokenInfo>,
}

impl Fixture {
    /// A fresh temp dir with one token labelled `label`.
    pub fn new(label: &str) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("ceremony-test-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical tempdir");
        let tokendir = root.join("tokens");
        fs::create_dir(&tokendir).expect("mkdir tokens");
        fs::create_dir(root.join("work")).expect("mkdir work");
        let conf = root.join("softhsm2.conf");
        let text = format!(
            "# throwaway token directory of one integration test\n\
             directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokendir.display()
        );
        write_file(&conf, text.as_bytes(), 0o600);
        let mut f = Fixture {
            dir,
            root,
            conf,
            tokens: Vec::new(),
        };
        let t = f.init_token(label);
        write_file(&f.root.join("pin"), t.pin.as_bytes(), 0o600);
        f
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The first token (the one `new` made).
    pub fn token(&self) -> &TokenInfo {
        &self.tokens[0]
    }

    /// `DIR/pin`, the first token's PIN file (0600).
    pub fn pin_file(&self) -> PathBuf {
        self.root.join("pin")
    }

    /// `DIR/work/<name>`: where a test puts an output directory.
    pub fn work(&self, name: &str) -> PathBuf {
        self.root.join("work").join(name)
    }

    /// Refuses to run a child anywhere but SoftHSM under this temp dir.
    /// `args` are the binary's arguments (plans and --module are checked).
    #[track_caller]
    pub fn guard(&self, args: &[&OsStr]) {
        // The config we hand out must be ours, and must point into the temp dir.
        assert!(
            self.conf.starts_with(&self.root),
            "SOFTHSM2_CONF {} is outside {}",
            self.conf.display(),
            self.root.display()
        );
        let conf = fs::read_to_string(&self.conf).expect("read softhsm2.conf");
        let tokendirs: Vec<&str> = conf
            .lines()
            .filter_map(|l| l.trim().strip_prefix("directories.tokendir"))
            .filter_map(|r| r.trim().strip_prefix('='))
            .map(str::trim)
            .collect();
        assert_eq!(
            tokendirs.len(),
            1,
            "softhsm2.conf must name exactly one tokendir: {conf}"
        );
        let tokendir = Path::new(tokendirs[0]);
        assert!(
            tokendir.is_absolute() && !has_dotdot(tokendir) && tokendir.starts_with(&self.root),
            "token directory {} is not under the test's temp dir {}",
            tokendir.display(),
            self.root.display()
        );
        // Every module the binary could load: plans' token.module and --module.
        let mut modules = Vec::new();
        let mut it = args.iter().peekable();
        while let Some(a) = it.next() {
            if *a == "--module" {
                if let Some(m) = it.peek() {
                    modules.push(PathBuf::from(m));
                }
            } else if let Some(m) = a.to_str().and_then(|s| s.strip_prefix("--module=")) {
                modules.push(PathBuf::from(m));
            } else {
                // Any argument that is a file holding a plan (whatever its name).
                let p = self.resolve(Path::new(a));
                if let Some(m) = fs::read_to_string(&p).ok().and_then(|t| plan_module(&t)) {
                    modules.push(PathBuf::from(m));
                }
            }
        }
        for m in modules {
            let full = self.resolve(&m);
            let ok = full == Path::new(SOFTHSM_MODULE)
                || (!has_dotdot(&full) && full.starts_with(&self.root))
                || NOT_PKCS11.iter().any(|n| full == Path::new(n))
                || fs::symlink_metadata(&full).is_err();
            assert!(
                ok,
                "refusing to run the binary with PKCS#11 module {}: only SoftHSM ({SOFTHSM_MODULE}) with this test's \
                 token directory, a file under {}, a known non-module or a missing path are allowed",
                m.display(),
                self.root.display()
            );
        }
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    /// A command for a child with nothing of our environment but PATH, and
    /// SOFTHSM2_CONF pointing into the temp dir; cwd is the temp dir.
    /// (Run it with `run_bounded` after `guard`.)
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", &self.root)
            .env("LANG", "C.UTF-8")
            .env("SOFTHSM2_CONF", &self.conf)
            .current_dir(&self.root);
        cmd
    }

    /// Runs `ceremony ARGS` (cwd = the temp dir) and returns what it did.
    #[track_caller]
    pub fn ceremony<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.ceremony_env(args, &[])
    }

    /// As `ceremony`, with extra environment variables for the child.
    #[track_caller]
    pub fn ceremony_env<S: AsRef<OsStr>>(&self, args: &[S], env: &[(&str, &str)]) -> Output {
        let args: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
        self.guard(&args);
        let mut cmd = self.command(BIN);
        cmd.args(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_bounded(cmd, CHILD_TIMEOUT)
    }

    /// `ceremony run PLAN --yes --pin-file DIR/pin --out OUT`.
    #[track_caller]
    pub fn run_plan(&self, plan: &Path, out: &Path) -> Output {
        self.run_plan_env(plan, out, &[])
    }

    #[track_caller]
    pub fn run_plan_env(&self, plan: &Path, out: &Path, env: &[(&str, &str)]) -> Output {
        self.ceremony_env(&self.run_plan_args(plan, out), env)
    }

    /// The arguments of `run_plan`.
    pub fn run_plan_args(&self, plan: &Path, out: &Path) -> Vec<std::ffi::OsString> {
        let pin = self.pin_file();
        [
            OsStr::new("run"),
            plan.as_os_str(),
            OsStr::new("--yes"),
            OsStr::new("--pin-file"),
            pin.as_os_str(),
            OsStr::new("--out"),
            out.as_os_str(),
        ]
        .iter()
        .map(|a| a.to_os_string())
        .collect()
    }

    /// Runs another program (softhsm2-util, pkcs11-tool, openssl) the same way.
    pub fn tool<S: AsRef<OsStr>>(&self, program: &str, args: &[S]) -> Output {
        self.guard(&[]);
        let mut cmd = self.command(program);
        cmd.args(args);
        run_bounded(cmd, CHILD_TIMEOUT)
    }

    /// Initialises a token in the first free slot of this temp dir's token
    /// directory (labels may repeat: that is the two-matching-tokens case).
    pub fn init_token(&mut self, label: &str) -> TokenInfo {
        self.guard(&[]);
        let before: Vec<String> = self.slots().into_iter().map(|(_, s)| s).collect();
        let pin = random_hex(8);
        let so_pin = random_hex(8);
        let out = self.tool(
            "softhsm2-util",
            &[
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                pin.as_str(),
                "--so-pin",
                so_pin.as_str(),
            ],
        );
        out.assert_ok("softhsm2-util --init-token");
        let new: Vec<(String, String)> = self
            .slots()
            .into_iter()
            .filter(|(_, s)| !before.contains(s))
            .collect();
        assert_eq!(new.len(), 1, "expected one new token, got {new:?}");
        let serial = new[0].1.clone();
        let snapshot_pin_file = self.root.join(format!("snapshot-pin-{serial}"));
        write_file(&snapshot_pin_file, pin.as_bytes(), 0o600);
        let t = TokenInfo {
            label: label.to_string(),
            serial,
            pin,
            snapshot_pin_file,
        };
        self.tokens.push(t.clone());
        t
    }

    /// (label, serial) of every initialised token, in slot order (the order
    /// C_GetSlotList and so the binary's messages list them).
    pub fn slots(&self) -> Vec<(String, String)> {
        let out = self.tool("softhsm2-util", &["--show-slots"]);
        out.assert_ok("softhsm2-util --show-slots");
        // One "Slot N" block per slot; the free slot has an empty serial.
        let mut v = Vec::new();
        for block in out.stdout.split("\nSlot ").skip(1) {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                    .unwrap_or_default()
            };
            let (label, serial) = (field("Label:"), field("Serial number:"));
            if field("Initialized:") == "yes" && !serial.is_empty() {
                v.push((label, serial));
            }
        }
        v
    }

    /// `ceremony token list` of one token, selected by serial: the identity
    /// line, then the object lines sorted (the token returns them in no
    /// particular order), then the count line.
    #[track_caller]
    pub fn token_list(&self, t: &TokenInfo) -> Vec<String> {
        let uri = format!("pkcs11:serial={}", t.serial);
        let pin = t.snapshot_pin_file.to_string_lossy().into_owned();
        let out = self.ceremony(&[
            "token",
            "list",
            "--uri",
            uri.as_str(),
            "--module",
            SOFTHSM_MODULE,
            "--pin-file",
            pin.as_str(),
        ]);
        out.assert_ok("ceremony token list");
        let lines: Vec<String> = out
            .stdout
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect();
        assert!(lines.len() >= 3, "unexpected token list output:\n{out}");
        let mut objects = lines[2..lines.len() - 1].to_vec();
        objects.sort();
        let mut v = vec![lines[0].clone(), lines[1].clone()];
        v.extend(objects);
        v.push(lines[lines.len() - 1].clone());
        v
    }

    /// The parsed object lines of `token_list` for the first token.
    pub fn objects(&self) -> Vec<Object> {
        let lines = self.token_list(self.token());
        lines[2..lines.len() - 1]
            .iter()
            .map(|l| Object::parse(l))
            .collect()
    }

    /// Everything that could show a token changed: each token's object list
    /// through the binary, and the bytes of every object file in the token
    /// directory (an independent view; lock files and the token's own
    /// info/PIN-counter file are left out).
    pub fn token_snapshot(&self) -> TokenSnapshot {
        let lists = self
            .tokens
            .iter()
            .map(|t| (t.serial.clone(), self.token_list(t)))
            .collect();
        let files = snapshot_tree(&self.root.join("tokens"))
            .into_iter()
            .filter(|(p, _)| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                name.ends_with(".object") && name != "token.object"
            })
            .collect();
        TokenSnapshot { lists, files }
    }

    /// The temp dir as a tree (paths, kinds, modes, bytes), without the
    /// token directory: plans, PIN files and `work/`, outputs and staging included.
    pub fn files_snapshot(&self) -> BTreeMap<PathBuf, Node> {
        snapshot_tree(&self.root)
            .into_iter()
            .filter(|(p, _)| !p.starts_with("tokens"))
            .collect()
    }

    /// `pkcs11-tool` against the first token (public objects; no login).
    pub fn pkcs11_tool(&self, args: &[&str]) -> Output {
        let mut full = vec![
            "--module",
            SOFTHSM_MODULE,
            "--token-label",
            &self.token().label,
        ];
        full.extend_from_slice(args);
        self.guard(&[]);
        self.tool("pkcs11-tool", &full)
    }

    /// `pkcs11-tool --login` against the first token (throwaway PIN on argv).
    pub fn pkcs11_tool_login(&self, args: &[&str]) -> Output {
        let pin = self.token().pin.clone();
        let mut full = vec!["--login", "--pin", pin.as_str()];
        full.extend_from_slice(args);
        self.pkcs11_tool(&full)
    }

    /// Public key objects of the first token: label → (CKA_ID hex, EC point
    /// 04‖X‖Y hex), read by pkcs11-tool (an independent PKCS#11 client).
    /// SoftHSM's object files in this fixture's token directories with
    /// their CKA_CLASS (each file's first attribute, stored in the clear),
    /// oldest first.
    pub fn softhsm_objects(&self) -> Vec<(PathBuf, u64)> {
        let mut files: Vec<(std::time::SystemTime, PathBuf, u64)> = Vec::new();
        for dir in std::fs::read_dir(self.path().join("tokens")).expect("the token directory") {
            let dir = dir.expect("dir entry").path();
            for e in std::fs::read_dir(&dir).expect("a token's directory") {
                let path = e.expect("dir entry").path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if !name.ends_with(".object") || name == "token.object" {
                    continue;
                }
                let bytes = std::fs::read(&path).expect("an object file");
                // generation (8), then CKA_CLASS: type 0 (8), kind ulong (8), value (8).
                let Some(class) = bytes.get(24..32) else {
                    continue;
                };
                let class = u64::from_be_bytes(class.try_into().expect("8 bytes"));
                let modified = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .expect("mtime");
                files.push((modified, path, class));
            }
        }
        files.sort();
        files.into_iter().map(|(_, p, c)| (p, c)).collect()
    }

    /// The newest SoftHSM object file of CKA_CLASS `class` (1 certificate, 2
    /// public key, 3 private key): the one written last.
    pub fn newest_object(&self, class: u64) -> PathBuf {
        self.softhsm_objects()
            .into_iter()
            .rev()
            .find(|(_, c)| *c == class)
            .map(|(p, _)| p)
            .unwrap_or_else(|| panic!("no object file of class {class}"))
    }

    pub fn ec_public_keys(&self) -> BTreeMap<String, (String, String)> {
        let out = self.pkcs11_tool(&["--list-objects", "--type", "pubkey"]);
        out.assert_ok("pkcs11-tool --list-objects --type pubkey");
        let mut map = BTreeMap::new();
        for block in out.stdout.split("Public Key Object;").skip(1) {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            };
            let (Some(label), Some(id), Some(point)) =
                (field("label:"), field("ID:"), field("EC_POINT:"))
            else {
                continue;
            };
            // CKA_EC_POINT is a DER OCTET STRING around the point: 04 <len> 04‖X‖Y.
            let raw = hex::decode(&point).expect("EC_POINT is hex");
            let inner = match raw.as_slice() {
                [0x04, len, rest @ ..] if usize::from(*len) == rest.len() => rest.to_vec(),
                _ => raw,
            };
            assert!(
                map.insert(label.clone(), (id, hex::encode(inner)))
                    .is_none(),
                "two public keys labelled {label}"
            );
        }
        map
    }

    /// The DER certificate the token holds under `label`, read by pkcs11-tool.
    pub fn token_certificate(&self, label: &str) -> Vec<u8> {
        let file = self.root.join(format!("cert-{}.der", random_hex(4)));
        let f = file.to_string_lossy().into_owned();
        let out = self.pkcs11_tool(&[
            "--read-object",
            "--type",
            "cert",
            "--label",
            label,
            "--output-file",
            &f,
        ]);
        out.assert_ok("pkcs11-tool --read-object --type cert");
        let der = fs::read(&file).expect("read certificate from pkcs11-tool");
        fs::remove_file(&file).expect("remove temp certificate");
        der
    }
}

/// A failed test's temp dir (token, plans, outputs) is kept for inspection
/// when CEREMONY_TEST_KEEP is set; otherwise it goes with the fixture.
impl Drop for Fixture {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("CEREMONY_TEST_KEEP").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("kept the failed test's directory {}", self.root.display());
        }
    }
}

fn has_dotdot(p: &Path) -> bool {
    p.components().any(|c| c == Component::ParentDir)
}

/// `token.module` of a plan, if the text parses that far.
fn plan_module(text: &str) -> Option<String> {
    let v: toml::Table = text.parse().ok()?;
    v.get("token")?.get("module")?.as_str().map(str::to_string)
}

/// One row of `ceremony token list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub class: String,
    pub label: String,
    pub id: String,
    pub key_type: String,
    pub flags: String,
}

impl Object {
    pub fn parse(line: &str) -> Object {
        let mut f = line.split_whitespace();
        let mut next = || f.next().unwrap_or_default().to_string();
        let (class, label, id) = (next(), next(), next());
        // A data object has an empty id column: the key-type dash moves up.
        let (id, key_type) = if id == "-" {
            (String::new(), id)
        } else {
            (id, next())
        };
        let flags = f.collect::<Vec<_>>().join(" ");
        Object {
            class,
            label,
            id,
            key_type,
            flags,
        }
    }
}

/// What `token_snapshot` saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSnapshot {
    /// serial → `token_list` lines
    pub lists: Vec<(String, Vec<String>)>,
    /// object file path (relative to tokens/) → contents
    pub files: BTreeMap<PathBuf, Node>,
}

/// One entry of a directory tree snapshot.
#[derive(Clone, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32 },
    File { mode: u32, bytes: Vec<u8> },
    Symlink { target: PathBuf },
    Other,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Node::Dir { mode } => write!(f, "dir {mode:o}"),
            Node::File { mode, bytes } => {
                use sha2::Digest;
                write!(
                    f,
                    "file {mode:o} {} bytes sha256 {}",
                    bytes.len(),
                    hex::encode(sha2::Sha256::digest(bytes))
                )
            }
            Node::Symlink { target } => write!(f, "symlink -> {}", target.display()),
            Node::Other => f.write_str("other"),
        }
    }
}

/// Every path under `root` (relative), with its kind, mode and bytes.
/// Symlinks are recorded, never followed. Bounded: at most 10,000 entries.
pub const CKA_VALUE: u64 = 0x11;
pub const CKA_ID: u64 = 0x102;
pub const CKA_EC_PARAMS: u64 = 0x180;

/// Cuts a SoftHSM object file short just before its attribute of type
/// `ty`, as a kill during the file's write leaves it: SoftHSM writes the
/// attributes in type order, each as type, kind and value.
pub fn cut_before(path: &Path, ty: u64) {
    let bytes = std::fs::read(path).expect("an object file");
    let be = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let mut at = 8;
    loop {
        assert!(at + 16 <= bytes.len(), "no attribute {ty:#x} in {path:?}");
        let (t, kind) = (be(at), be(at + 8));
        if t == ty {
            break;
        }
        at += 16
            + match kind {
                1 => 1,
                2 => 8,
                3 => 8 + be(at + 16) as usize,
                k => panic!("attribute {t:#x} of kind {k} before {ty:#x} in {path:?}"),
            };
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open the object file");
    file.set_len(at as u64).expect("truncate the object file");
}

pub fn snapshot_tree(root: &Path) -> BTreeMap<PathBuf, Node> {
    const MAX: usize = 10_000;
    let mut map = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        assert!(
            map.len() < MAX,
            "more than {MAX} entries under {}",
            root.display()
        );
        let full = root.join(&rel);
        let meta =
            fs::symlink_metadata(&full).unwrap_or_else(|e| panic!("stat {}: {e}", full.display()));
        let mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        let node = if ft.is_symlink() {
            Node::Symlink {
                target: fs::read_link(&full).expect("readlink"),
            }
        } else if ft.is_dir() {
            for e in
                fs::read_dir(&full).unwrap_or_else(|e| panic!("readdir {}: {e}", full.display()))
            {
                stack.push(rel.join(e.expect("dir entry").file_name()));
            }
            Node::Dir { mode }
        } else if ft.is_file() {
            Node::File {
                mode,
                bytes: fs::read(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display())),
            }
        } else {
            Node::Other
        };
        if !rel.as_os_str().is_empty() {
            map.insert(rel, node);
        }
    }
    map
}

/// Lists what differs between two tree snapshots, for assertion messages.
pub fn tree_diff(before: &BTreeMap<PathBuf, Node>, after: &BTreeMap<PathBuf, Node>) -> String {
    let mut s = String::new();
    for (p, n) in before {
        match after.get(p) {
            None => s.push_str(&format!("  removed {} ({n:?})\n", p.display())),
            Some(m) if m != n => {
                s.push_str(&format!("  changed {}: {n:?} -> {m:?}\n", p.display()))
            }
            _ => {}
        }
    }
    for (p, n) in after {
        if !before.contains_key(p) {
            s.push_str(&format!("  added {} ({n:?})\n", p.display()));
        }
    }
    s
}

/// Keys for the four CAs, root first.
pub type Keys = [&'static str; 4];

/// A complete plan for the fixture's first token: CA labels `LABELS`, the
/// given key types, root 20y and intermediates 10y.
pub fn plan_toml(token_label: &str, keys: Keys) -> String {
    format!(
        r#"# Written by the integration-test fixture for one throwaway SoftHSM token.
[ceremony]
name = "integration-test"
administrator = "Test Admin"
witnesses = ["Wendy Witness", "Walter Witness"]

[token]
uri = "pkcs11:token={token_label}"
module = "{SOFTHSM_MODULE}"

[root]
label = "{}"
subject = "CN=Test Kubernetes Root CA,O=Test"
key = "{}"
validity = "20y"

[ca.kubernetes]
label = "{}"
key = "{}"
validity = "10y"

[ca.etcd]
label = "{}"
key = "{}"
validity = "10y"

[ca.front-proxy]
label = "{}"
key = "{}"
validity = "10y"

[cluster]
name = "kubernetes"
kubernetes_version = "v1.31"
control_plane_endpoint = "k8s.test.internal:6443"
leaf_key = "ecdsa-p256"
apiserver_extra_sans = ["k8s.test.internal"]

[[cluster.control_plane]]
name = "cp1"
address = "10.0.0.11"

[cluster.workers]
names = ["worker1"]

[audit]
recipients = ["{AUDIT_RECIPIENT}"]
"#,
        LABELS[0], keys[0], LABELS[1], keys[1], LABELS[2], keys[2], LABELS[3], keys[3]
    )
}

/// `plan_toml` without `[cluster]`: a ceremony that makes only the CA
/// hierarchy (no software leaf keys, so a run takes a fraction of the time).
pub fn ca_plan_toml(token_label: &str, keys: Keys) -> String {
    let full = plan_toml(token_label, keys);
    let (start, end) = (
        full.find("[cluster]\n").expect("[cluster]"),
        full.find("[audit]\n").expect("[audit]"),
    );
    format!("{}{}", &full[..start], &full[end..])
}

impl Fixture {
    /// Writes `plan_toml` for the first token as `DIR/<name>` and returns its path.
    pub fn write_plan(&self, name: &str, keys: Keys) -> PathBuf {
        let p = self.root.join(name);
        write_file(&p, plan_toml(&self.token().label, keys).as_bytes(), 0o644);
        p
    }

    /// Writes `ca_plan_toml` (CA hierarchy only) as `DIR/<name>`.
    pub fn write_ca_plan(&self, name: &str, keys: Keys) -> PathBuf {
        let p = self.root.join(name);
        write_file(
            &p,
            ca_plan_toml(&self.token().label, keys).as_bytes(),
            0o644,
        );
        p
    }
}

/// A `ceremony` child left running (for kills and pauses at failpoints):
/// stdout and stderr go to files under the fixture's `logs/`, so nothing can
/// block on a full pipe while the test waits.
pub struct Running {
    pub child: std::process::Child,
    stdout: PathBuf,
    stderr: PathBuf,
    started: Instant,
}

/// How a `Running` child ended.
pub enum Ended {
    /// It paused at a failpoint (`pause:<point>`): the point's `<name>@<n>`.
    Paused(String),
    /// It exited (or was ended by a signal) on its own.
    Exited(Output),
}

impl Running {
    /// Waits until the child pauses at its failpoint (the fixture's pause
    /// directory gets `paused`) or exits; kills it (by its handle) and fails
    /// past `timeout`.
    pub fn wait_paused(&mut self, pause_dir: &Path, timeout: Duration) -> Ended {
        let flag = pause_dir.join("paused");
        loop {
            if let Ok(name) = fs::read_to_string(&flag) {
                return Ended::Paused(name.trim().to_string());
            }
            if self
                .child
                .try_wait()
                .expect("waiting for the child")
                .is_some()
            {
                return Ended::Exited(self.wait());
            }
            if self.started.elapsed() > timeout {
                let _ = self.child.kill();
                let out = self.wait();
                panic!("the child neither paused nor exited within {timeout:?}\n{out}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILL (our own child, by its handle), then reap it.
    pub fn kill(mut self) -> Output {
        let _ = self.child.kill();
        self.wait()
    }

    /// Waits for the child to end (bounded by CHILD_TIMEOUT) and collects its output.
    pub fn wait(&mut self) -> Output {
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("waiting for the child") {
                break s;
            }
            if self.started.elapsed() > CHILD_TIMEOUT {
                let _ = self.child.kill();
            }
            std::thread::sleep(POLL);
        };
        Output {
            code: status.code(),
            signal: status.signal(),
            stdout: String::from_utf8_lossy(&fs::read(&self.stdout).unwrap_or_default())
                .into_owned(),
            stderr: String::from_utf8_lossy(&fs::read(&self.stderr).unwrap_or_default())
                .into_owned(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Fixture {
    /// `DIR/pause/`: where a child paused at `pause:<point>` says so
    /// (`paused`) and waits for `resume`. Emptied by each call.
    pub fn pause_dir(&self) -> PathBuf {
        let d = self.root.join("pause");
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("mkdir pause");
        d
    }

    /// Starts `ceremony ARGS` with extra environment and leaves it running.
    #[track_caller]
    pub fn spawn_ceremony<S: AsRef<OsStr>>(&self, args: &[S], env: &[(&str, &OsStr)]) -> Running {
        let args: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
        self.guard(&args);
        let logs = self.root.join("logs");
        fs::create_dir_all(&logs).expect("mkdir logs");
        let tag = random_hex(4);
        let (stdout, stderr) = (
            logs.join(format!("{tag}.out")),
            logs.join(format!("{tag}.err")),
        );
        let mut cmd = self.command(BIN);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("stdout file"))
            .stderr(fs::File::create(&stderr).expect("stderr file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start ceremony");
        Running {
            child,
            stdout,
            stderr,
            started: Instant::now(),
        }
    }
}

/// Parses the JSON lines of a decrypted audit log, naming any that is not JSON.
pub fn json_lines<S: AsRef<str>>(lines: &[S]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| {
            let l = l.as_ref();
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
        })
        .collect()
}

/// An audit record's event kind ("?" when it has none).
pub fn kind(r: &serde_json::Value) -> &str {
    r["event"]["kind"].as_str().unwrap_or("?")
}
