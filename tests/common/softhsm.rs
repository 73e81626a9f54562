//! The SoftHSM fixture: a throwaway SoftHSM2 token in a temp dir per test,
//! and the real `ceremony` binary (and the token's tools) run against it.
//!
//! What it must not do: touch any token but the one in the test's own temp
//! dir. Every child gets an empty environment plus `SOFTHSM2_CONF` pointing
//! into the temp dir (never set in this process), stdin null, and a deadline;
//! before each child runs, `guard` refuses a config, token directory or
//! PKCS#11 module that is not SoftHSM under the temp dir. Every child of a
//! fixture starts through `Fixture::run` or `Fixture::spawn`, which guard.
//! Only children this fixture started are ever killed, by their own handle.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The variable that carries a token's PIN to the fixture's `token list`.
const SNAPSHOT_PIN_VAR: &str = "CEREMONY_FIXTURE_PIN";

use super::run::{CHILD_TIMEOUT, Output, Running, bin, bin_has_failpoints, clear_env, run_bounded};
use super::tree::{Node, snapshot_tree};
use super::{NOT_PKCS11, SOFTHSM_MODULE, random_hex, write_file};

/// One initialised token in the fixture's token directory.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub label: String,
    pub serial: String,
    /// The user PIN (throwaway, random unless a test chose it). The
    /// fixture's own snapshots pass it to the child in its environment, so
    /// no file but `DIR/pin` holds the first token's PIN.
    pub pin: String,
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
    /// A fresh temp dir with one token labelled `label` (random PINs).
    pub fn new(label: &str) -> Fixture {
        Fixture::with_pins(label, &random_hex(8), &random_hex(8))
    }

    /// As `new`, with the token's user and SO PINs chosen by the test.
    pub fn with_pins(label: &str, pin: &str, so_pin: &str) -> Fixture {
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
        let t = f.init_token_with_pins(label, pin, so_pin);
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

    /// A command for a child, cwd the temp dir; the caller adds arguments
    /// and environment, and starts it with `run` or `spawn`, which clear
    /// the rest of the environment and guard.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.root);
        cmd
    }

    /// Guards `cmd` (its arguments: plans and --module), gives it nothing
    /// of our environment but PATH, plus HOME and SOFTHSM2_CONF in the temp
    /// dir and what the caller set on it, and refuses failpoint variables
    /// for a binary without failpoints (the test would pass unarmed).
    #[track_caller]
    fn prepare(&self, cmd: &mut Command) {
        let args: Vec<&OsStr> = cmd.get_args().collect();
        self.guard(&args);
        let armed = cmd
            .get_envs()
            .any(|(k, v)| v.is_some() && k.to_string_lossy().starts_with("CEREMONY_FAILPOINT"));
        assert!(
            !armed || Path::new(cmd.get_program()) != bin() || bin_has_failpoints(),
            "a failpoint set for {} which has none; the test must check `has_failpoints` first",
            bin().display()
        );
        clear_env(cmd, &self.root, &self.conf);
    }

    /// Runs `cmd` (from `command`) guarded, bounded by `timeout`.
    #[track_caller]
    pub fn run(&self, mut cmd: Command, timeout: Duration) -> Output {
        self.prepare(&mut cmd);
        run_bounded(&mut cmd, timeout)
    }

    /// Starts `cmd` (from `command`) guarded and leaves it running; its
    /// stdout and stderr go to files under `DIR/logs/`.
    #[track_caller]
    pub fn spawn(&self, mut cmd: Command) -> Running {
        self.prepare(&mut cmd);
        let logs = self.root.join("logs");
        fs::create_dir_all(&logs).expect("mkdir logs");
        let tag = random_hex(4);
        let (stdout, stderr) = (
            logs.join(format!("{tag}.out")),
            logs.join(format!("{tag}.err")),
        );
        cmd.stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("stdout file"))
            .stderr(fs::File::create(&stderr).expect("stderr file"));
        let what = format!("{cmd:?}");
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Running {
            child,
            stdout,
            stderr,
            started: Instant::now(),
            what,
        }
    }

    /// Runs `ceremony ARGS` (cwd = the temp dir) and returns what it did.
    #[track_caller]
    pub fn ceremony<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.ceremony_env(args, &[])
    }

    /// As `ceremony`, with extra environment variables for the child.
    #[track_caller]
    pub fn ceremony_env<S: AsRef<OsStr>>(&self, args: &[S], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(bin());
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.run(cmd, CHILD_TIMEOUT)
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
        let mut cmd = self.command(program);
        cmd.args(args);
        self.run(cmd, CHILD_TIMEOUT)
    }

    /// Initialises a token in the first free slot of this temp dir's token
    /// directory (labels may repeat: that is the two-matching-tokens case).
    pub fn init_token(&mut self, label: &str) -> TokenInfo {
        self.init_token_with_pins(label, &random_hex(8), &random_hex(8))
    }

    fn init_token_with_pins(&mut self, label: &str, pin: &str, so_pin: &str) -> TokenInfo {
        let before: Vec<String> = self.slots().into_iter().map(|(_, s)| s).collect();
        let out = self.tool(
            "softhsm2-util",
            &[
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                pin,
                "--so-pin",
                so_pin,
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
        let t = TokenInfo {
            label: label.to_string(),
            serial,
            pin: pin.to_string(),
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
        // The PIN in the child's environment only: the tests' own PIN files
        // stay theirs to change, and no other file holds a PIN.
        let out = self.ceremony_env(
            &[
                "token",
                "list",
                "--uri",
                uri.as_str(),
                "--module",
                SOFTHSM_MODULE,
                "--pin-env",
                SNAPSHOT_PIN_VAR,
            ],
            &[(SNAPSHOT_PIN_VAR, t.pin.as_str())],
        );
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
        let mut cmd = self.command(bin());
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.spawn(cmd)
    }
}
