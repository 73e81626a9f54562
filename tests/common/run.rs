//! Child processes: the binary under test, bounded runs with output
//! captured, and runs left going for kills and pauses.
//!
//! What it must not do: let a child outlive its deadline, read the test's
//! stdin, inherit the test's environment, or kill anything but a child it
//! holds by its handle.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Deadline for one child process. RSA-4096 keygen on SoftHSM takes ~2 s;
/// this only bounds a hang.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(180);
/// The bound on a short command (openssl, sha256sum, kubectl, etcdctl).
pub const SHORT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(10);

/// The binary under test: `CEREMONY_BIN` when set (an absolute path, e.g.
/// the release build CI also tests), else the one cargo built for this test.
pub fn bin() -> PathBuf {
    match std::env::var_os("CEREMONY_BIN") {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.is_absolute() && p.is_file(),
                "CEREMONY_BIN={} is not an absolute path to a file",
                p.display()
            );
            p
        }
        None => PathBuf::from(env!("CARGO_BIN_EXE_ceremony")),
    }
}

/// Whether the binary under test has the test-only failpoints compiled in.
/// Cargo's binary has them when this test was built with them; another
/// binary must say so (`CEREMONY_BIN_FAILPOINTS=0` or `1`), never guessed.
pub fn bin_has_failpoints() -> bool {
    if std::env::var_os("CEREMONY_BIN").is_none() {
        return cfg!(feature = "failpoints");
    }
    match std::env::var("CEREMONY_BIN_FAILPOINTS").as_deref() {
        Ok("0") => false,
        Ok("1") => true,
        other => panic!(
            "CEREMONY_BIN is set: CEREMONY_BIN_FAILPOINTS must say whether it has the failpoints (0 or 1), got {other:?}"
        ),
    }
}

/// What a child process did.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command, for messages.
    pub what: String,
    /// Exit code, or None if a signal ended it.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// Killed (by its handle) because its deadline passed.
    pub timed_out: bool,
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

    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Ended by itself without success (not killed on its deadline).
    pub fn failed(&self) -> bool {
        !self.timed_out && self.code != Some(0)
    }

    #[track_caller]
    pub fn assert_ok(&self, what: &str) {
        assert_eq!(self.code, Some(0), "{what} failed:\n{self}");
    }

    /// Panics with everything the command printed unless it succeeded.
    #[track_caller]
    pub fn expect_ok(self) -> Output {
        assert!(self.ok(), "command failed: {self}");
        self
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let killed = if self.timed_out {
            " (killed after its time limit)"
        } else {
            ""
        };
        writeln!(
            f,
            "`{}`: exit code {:?}, signal {:?}{killed}",
            self.what, self.code, self.signal
        )?;
        writeln!(f, "--- stdout\n{}", self.stdout)?;
        write!(f, "--- stderr\n{}", self.stderr)
    }
}

/// A child that is killed and reaped when dropped, unless it was waited
/// for: a test that panics mid-wait leaves nothing running.
struct Reaper(Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Clears the child's environment, keeping only what the caller set on
/// this command. PATH, HOME and LANG are set unless the caller did; so is
/// SOFTHSM2_CONF, to `conf`: a child never sees the host's token
/// configuration (or this process's proxies or kubeconfig).
pub(in crate::common) fn clear_env(cmd: &mut Command, home: &Path, conf: &Path) {
    let set: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)> = cmd
        .get_envs()
        .map(|(k, v)| (k.to_os_string(), v.map(OsStr::to_os_string)))
        .collect();
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .env("SOFTHSM2_CONF", conf);
    for (k, v) in set {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
}

/// Runs `cmd` (environment already set) with stdin null and output
/// captured; kills it (and only it) if it outlives `timeout`.
pub(in crate::common) fn wait_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    let what = describe(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Reaper(Some(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}")),
    ));
    let c = child.0.as_mut().expect("a child");
    let mut out_pipe = c.stdout.take().expect("stdout is piped");
    let mut err_pipe = c.stderr.take().expect("stderr is piped");
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
    let status: Option<ExitStatus> = loop {
        let c = child.0.as_mut().expect("a child");
        match c.try_wait() {
            Ok(Some(s)) => {
                child.0 = None;
                break Some(s);
            }
            Ok(None) if start.elapsed() <= timeout => std::thread::sleep(POLL),
            Ok(None) => break None,
            Err(e) => panic!("waiting for `{what}`: {e}"),
        }
    };
    let timed_out = status.is_none();
    // Past its deadline: our own child, by its handle: SIGKILL, then reap it.
    let status = status.or_else(|| {
        let mut c = child.0.take().expect("a child");
        let _ = c.kill();
        c.wait().ok()
    });
    Output {
        what,
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        timed_out,
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned(),
    }
}

/// As `wait_bounded`, failing the test if the deadline passed.
#[track_caller]
pub(in crate::common) fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    let out = wait_bounded(cmd, timeout);
    assert!(
        !out.timed_out,
        "ran longer than {timeout:?} and was killed: {out}"
    );
    out
}

/// Where a child that is not bound to a fixture's token finds its SoftHSM
/// configuration: nowhere (no such file can exist under /dev/null), so
/// nothing it loads reaches a token.
const NO_SOFTHSM_CONF: &str = "/dev/null/softhsm2.conf";

/// Runs a peer or a tool that needs no token (openssl, etcdctl, kubectl,
/// sha256sum) with a cleared environment (what the caller set on `cmd`
/// aside), stdin null, and a deadline; a timeout is reported in the
/// output, not a panic, for peers that are expected to give up.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    assert_ne!(
        Path::new(cmd.get_program()),
        bin(),
        "the binary under test runs only through a fixture (its guard)"
    );
    let home = cmd
        .get_envs()
        .find(|(k, _)| *k == "HOME")
        .and_then(|(_, v)| v.map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/nonexistent"));
    clear_env(cmd, &home, Path::new(NO_SOFTHSM_CONF));
    wait_bounded(cmd, limit)
}

/// Starts a long-running peer (etcd, openssl s_server) with the same
/// environment as `run`, stdout and stderr into `log`.
pub(in crate::common) fn spawn_peer(cmd: &mut Command, log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("a log file");
    let file2 = file.try_clone().expect("a log file");
    clear_env(cmd, Path::new("/nonexistent"), Path::new(NO_SOFTHSM_CONF));
    cmd.stdin(Stdio::null()).stdout(file).stderr(file2);
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", describe(cmd)))
}

/// A `ceremony` child left running (for kills and pauses at failpoints):
/// stdout and stderr go to files under the fixture's `logs/`, so nothing can
/// block on a full pipe while the test waits. Dropped while still running
/// (a test that failed), it is killed by its handle.
pub struct Running {
    pub child: Child,
    pub(in crate::common) stdout: PathBuf,
    pub(in crate::common) stderr: PathBuf,
    pub(in crate::common) started: Instant,
    pub(in crate::common) what: String,
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
            if let Ok(name) = std::fs::read_to_string(&flag) {
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
        let mut timed_out = false;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("waiting for the child") {
                break s;
            }
            if self.started.elapsed() > CHILD_TIMEOUT && !timed_out {
                timed_out = true;
                let _ = self.child.kill();
            }
            std::thread::sleep(POLL);
        };
        let out = Output {
            what: self.what.clone(),
            code: status.code(),
            signal: status.signal(),
            timed_out,
            stdout: String::from_utf8_lossy(&std::fs::read(&self.stdout).unwrap_or_default())
                .into_owned(),
            stderr: String::from_utf8_lossy(&std::fs::read(&self.stderr).unwrap_or_default())
                .into_owned(),
        };
        assert!(!timed_out, "ran longer than {CHILD_TIMEOUT:?}: {out}");
        out
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
