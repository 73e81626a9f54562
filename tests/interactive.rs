//! The guided ceremony at a real terminal. The binary runs in a tmux pane (a
//! pseudo-terminal); the tests type as the administrator and the witnesses
//! would (`send-keys`) and read the screen (`capture-pane`).
//!
//! Isolation: each test has its own SoftHSM token in its own temp dir (the
//! fixture) and its own tmux server (`tmux -L <unique>`), which only this
//! test kills. The command in the pane gets an empty environment plus
//! SOFTHSM2_CONF pointing into the temp dir; nothing is set in this process.
//! Every wait is bounded.
//!
//! Key screens (preflight, a fingerprint acknowledgement, the end screen) are
//! compared exactly with tests/snapshots/, volatile parts masked;
//! `CEREMONY_UPDATE_SNAPSHOTS=1` rewrites them (so a screen changes only on
//! purpose).

// A test fails by panicking and talks on stderr: the crate's lints
// (Cargo.toml) are for the crate, not for its integration tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Fixture, SHORT, bin, kind, random_hex};
use serde_json::Value;

const KEYS: common::Keys = ["ecdsa-p384", "ecdsa-p256", "ecdsa-p256", "ecdsa-p256"];
/// Longest wait for one screen change (key generation on SoftHSM takes ms; a
/// debug build's leaf keys and signatures a few seconds at most).
const WAIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(50);
const WIDTH: &str = "160";
const HEIGHT: &str = "50";

fn identity() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ceremony/plans/demo-auditor.agekey")
}

/// One tmux server with one pane running `ceremony`.
struct Term {
    socket: String,
    /// The server's socket file, removed after the server is killed.
    socket_path: Option<PathBuf>,
    exit_file: PathBuf,
    stty_file: PathBuf,
}

impl Term {
    /// Starts `ceremony ARGS` in a new pane of a new tmux server of its own.
    /// `env` is added to the child's (otherwise empty) environment.
    fn start(f: &Fixture, args: &[&str], env: &[(&str, &str)]) -> Term {
        let os: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        f.guard(&os);
        let tag = random_hex(6);
        let mut term = Term {
            socket: format!("ceremony-test-{tag}"),
            socket_path: None,
            exit_file: f.path().join(format!("exit-{tag}")),
            stty_file: f.path().join(format!("stty-{tag}")),
        };
        // After the binary ends: its exit code, and the terminal's modes (to
        // prove echo is back on); then keep the pane until the server is
        // killed. The shell catches SIGINT (Ctrl-C goes to the whole
        // foreground group) so it outlives the binary; the binary starts with
        // the default disposition.
        let script = r#"trap : INT; e=$1; s=$2; shift 2; "$@"; echo $? > "$e"; stty -a > "$s" 2>&1; exec sleep 600"#;
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
        let mut argv: Vec<String> = vec![
            "env".into(),
            "-i".into(),
            format!("PATH={path}"),
            format!("HOME={}", f.path().display()),
            "LANG=C.UTF-8".into(),
            "TERM=screen".into(),
            format!("SOFTHSM2_CONF={}", f.conf.display()),
        ];
        argv.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        argv.extend([
            "sh".into(),
            "-c".into(),
            script.into(),
            "sh".into(),
            term.exit_file.display().to_string(),
            term.stty_file.display().to_string(),
            bin().display().to_string(),
        ]);
        argv.extend(args.iter().map(|a| a.to_string()));
        let mut tmux_args: Vec<String> = [
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            WIDTH,
            "-y",
            HEIGHT,
            "-c",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        tmux_args.push(f.path().display().to_string());
        tmux_args.extend(argv);
        let out = term.tmux(&tmux_args);
        assert!(out.ok(), "tmux new-session: {out}");
        let path = term.tmux(&["display-message", "-p", "#{socket_path}"]);
        term.socket_path = Some(PathBuf::from(path.stdout.trim()))
            .filter(|p| p.file_name().is_some_and(|n| n == term.socket.as_str()));
        term
    }

    /// A tmux client command on this test's own server (bounded, cleared
    /// environment; the pane's command sets its own).
    fn tmux<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> common::Output {
        common::run(
            Command::new("tmux").arg("-L").arg(&self.socket).args(args),
            SHORT,
        )
    }

    /// The whole pane, history included, wrapped lines joined; `escapes`
    /// keeps the colour codes.
    fn capture(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-J", "-S", "-"];
        if escapes {
            args.push("-e");
        }
        self.tmux(&args).stdout
    }

    fn screen(&self) -> String {
        self.capture(false)
    }

    /// Waits (bounded) until `pred` holds for the screen; returns it.
    #[track_caller]
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if start.elapsed() > WAIT {
                panic!("waited {WAIT:?} for {what}; the screen:\n{s}");
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits for a prompt: the last non-empty line ends with `suffix`.
    #[track_caller]
    fn wait_prompt(&self, suffix: &str) -> String {
        self.wait_for(&format!("a prompt ending {suffix:?}"), |s| {
            last_line(s).trim_end().ends_with(suffix)
        })
    }

    /// Types `text` and Enter at the prompt now on screen, then waits until
    /// the prompt took it (the last line changed), so nothing is typed twice.
    #[track_caller]
    fn answer(&self, text: &str) {
        let before = last_line(&self.screen()).to_string();
        let lines = self
            .screen()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        if !text.is_empty() {
            self.tmux(&["send-keys", "-l", text]);
        }
        self.tmux(&["send-keys", "Enter"]);
        self.wait_for("the answer to be taken", |s| {
            let n = s.lines().filter(|l| !l.trim().is_empty()).count();
            n != lines || last_line(s) != before
        });
    }

    /// Sends a key (e.g. "C-c").
    fn key(&self, key: &str) {
        self.tmux(&["send-keys", key]);
    }

    /// Waits for the binary to exit; returns its exit code.
    #[track_caller]
    fn wait_exit(&self) -> i32 {
        self.wait_for("the ceremony to exit", |_| self.exit_file.exists());
        // The file is written by `echo`; read until it holds the number.
        let start = Instant::now();
        loop {
            if let Ok(code) = fs::read_to_string(&self.exit_file)
                .unwrap_or_default()
                .trim()
                .parse()
            {
                return code;
            }
            assert!(
                start.elapsed() < WAIT,
                "no exit code in {:?}",
                self.exit_file
            );
            std::thread::sleep(POLL);
        }
    }

    /// The terminal's modes after the binary exited (`stty -a`).
    fn stty_after(&self) -> String {
        self.wait_for("stty -a after the exit", |_| {
            fs::read_to_string(&self.stty_file).is_ok_and(|s| s.contains("echo"))
        });
        fs::read_to_string(&self.stty_file).unwrap_or_default()
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        // Only this test's own server, by its socket name, and its socket file.
        let _ = self.tmux(&["kill-server"]);
        if let Some(p) = &self.socket_path {
            let _ = fs::remove_file(p);
        }
    }
}

fn last_line(s: &str) -> &str {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
}

/// The last group of the last `certificate  SHA-256` fingerprint shown.
fn last_four(screen: &str) -> String {
    let line = screen
        .lines()
        .rev()
        .find(|l| l.contains("certificate  SHA-256"))
        .unwrap_or_else(|| panic!("no certificate fingerprint on the screen:\n{screen}"));
    line.split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string()
}

/// Answers every prompt of a run as the administrator and the witnesses
/// would (PIN, serial, `y`, the four digits) until it exits; returns the code.
#[track_caller]
/// Answers the prompt on the screen's last line, if there is one: the PIN,
/// the token serial, a confirmation, a witness's last four digits.
fn answer_prompt(t: &Term, f: &Fixture, s: &str) -> bool {
    let last = last_line(s).trim_end();
    if last.contains("User PIN for token") && last.ends_with(':') {
        t.answer(&f.token().pin);
    } else if last.contains("Type the token serial") && last.ends_with(':') {
        t.answer(&f.token().serial);
    } else if last.ends_with("[y/N]") {
        t.answer("y");
    } else if last.ends_with("the last four digits:") {
        t.answer(&last_four(s));
    } else {
        return false;
    }
    true
}

/// Starts `ceremony run` of a CA-only plan at a terminal and waits for the
/// PIN prompt; returns OUT and the terminal.
fn run_to_pin_prompt(f: &Fixture, env: &[(&str, &str)]) -> (PathBuf, Term) {
    let plan = f.write_ca_plan("plan.toml", KEYS);
    let out = f.work("out");
    let (plan_s, out_s) = (plan.display().to_string(), out.display().to_string());
    let t = Term::start(f, &["run", &plan_s, "--out", &out_s], env);
    t.wait_for("the PIN prompt", |s| {
        last_line(s).contains("User PIN for token")
    });
    (out, t)
}

fn answer_everything(t: &Term, f: &Fixture) -> i32 {
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the run took too long:\n{}",
            t.screen()
        );
        if t.exit_file.exists() {
            return t.wait_exit();
        }
        let s = t.screen();
        if !answer_prompt(t, f, &s) {
            std::thread::sleep(POLL);
        }
    }
}

/// `age -d` of a sealed log: its JSON records (without the seal line).
fn sealed_records(f: &Fixture, log: &Path) -> Vec<Value> {
    let id = identity();
    let out = f.tool(
        "age",
        &[
            "-d".as_ref(),
            "-i".as_ref(),
            id.as_os_str(),
            log.as_os_str(),
        ],
    );
    out.assert_ok("age -d");
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("event").is_some())
        .collect()
}

/// `ceremony audit show` of a journal or log: its timeline.
fn audit_show(f: &Fixture, file: &Path) -> String {
    let id = identity();
    let out = f.ceremony(&[
        "audit".as_ref(),
        "show".as_ref(),
        file.as_os_str(),
        "-i".as_ref(),
        id.as_os_str(),
    ]);
    out.stdout
}

fn acks<'a>(records: &'a [Value], role: &str, how: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| kind(r) == "acknowledged")
        .filter(|r| r["event"]["as_role"] == role && r["event"]["how"] == how)
        .collect()
}

// ---- snapshots -------------------------------------------------------------

/// Replaces what changes from run to run (paths, serials, hashes,
/// fingerprints, dates, timings) with placeholders; trims line ends.
fn mask(screen: &str, f: &Fixture) -> String {
    let root = f.path().display().to_string();
    let text = screen
        .replace(&root, "<TMP>")
        .replace(&f.token().serial, "<SERIAL>");
    let mut out = String::new();
    for line in text.lines() {
        let mut l = mask_fingerprints(line);
        l = mask_hex(&l, 64, "<SHA256>");
        l = mask_dates(&l);
        l = mask_after(&l, "the last four digits: ", 4, "<LAST4>");
        l = mask_after(&l, "on the token in ", 3, "<T>");
        l = mask_after(&l, "firmware ", 3, "<V>");
        l = mask_after(&l, "hardware ", 3, "<V>");
        out.push_str(l.trim_end());
        out.push('\n');
    }
    out
}

fn is_hex(c: char) -> bool {
    c.is_ascii_hexdigit()
}

/// Groups of four upper-case hex digits, eight or more in a row.
fn mask_fingerprints(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let group = |w: &str| w.len() == 4 && w.chars().all(|c| is_hex(c) && !c.is_ascii_lowercase());
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let mut j = i;
        while j < words.len() && group(words[j]) {
            j += 1;
        }
        if j - i >= 8 {
            out.push("<FINGERPRINT>".into());
            i = j;
        } else {
            out.push(words[i].to_string());
            i += 1;
        }
    }
    out.join(" ")
}

/// Runs of exactly `len` lower-case hex digits.
fn mask_hex(line: &str, len: usize, with: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let mut j = i;
        while j < chars.len() && is_hex(chars[j]) && !chars[j].is_ascii_uppercase() {
            j += 1;
        }
        if j - i == len {
            out.push_str(with);
            i = j;
        } else if j > i {
            out.extend(&chars[i..j]);
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
fn mask_dates(line: &str) -> String {
    let shape = "0000-00-00 00:00:00 UTC";
    let chars: Vec<char> = line.chars().collect();
    let pat: Vec<char> = shape.chars().collect();
    let fits = |at: usize| {
        at + pat.len() <= chars.len()
            && pat.iter().enumerate().all(|(k, p)| match p {
                '0' => chars[at + k].is_ascii_digit(),
                p => chars[at + k] == *p,
            })
    };
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if fits(i) {
            out.push_str("<DATE>");
            i += pat.len();
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// The word after `marker` (at least `min` chars up to the next space or
/// comma) replaced by `with`.
fn mask_after(line: &str, marker: &str, min: usize, with: &str) -> String {
    let Some(at) = line.find(marker) else {
        return line.to_string();
    };
    let rest = &line[at + marker.len()..];
    let end = rest.find([' ', ',']).unwrap_or(rest.len());
    if end < min.min(rest.len()) || end == 0 {
        return line.to_string();
    }
    format!("{}{with}{}", &line[..at + marker.len()], &rest[end..])
}

/// The lines from the first one starting with `from` (in the first column)
/// to the first one after it containing `to` (both included).
fn section(screen: &str, from: &str, to: &str) -> String {
    let lines: Vec<&str> = screen.lines().collect();
    let a = lines
        .iter()
        .position(|l| l.starts_with(from))
        .unwrap_or_else(|| panic!("no {from:?} on the screen:\n{screen}"));
    let b = lines[a..]
        .iter()
        .position(|l| l.contains(to))
        .map(|k| a + k)
        .unwrap_or_else(|| panic!("no {to:?} after {from:?} on the screen:\n{screen}"));
    let mut s = lines[a..=b].join("\n");
    s.push('\n');
    s
}

/// Compares a masked screen with tests/snapshots/NAME, exactly; writes it
/// instead when CEREMONY_UPDATE_SNAPSHOTS=1.
#[track_caller]
fn snapshot(name: &str, masked: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("CEREMONY_UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        fs::create_dir_all(path.parent().expect("snapshots dir")).expect("mkdir snapshots");
        fs::write(&path, masked).expect("write snapshot");
        return;
    }
    let want = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "snapshot {} is missing ({e}); run with CEREMONY_UPDATE_SNAPSHOTS=1 to write it.\nThe screen:\n{masked}",
            path.display()
        )
    });
    if want != masked {
        let diff: Vec<String> = want
            .lines()
            .zip(masked.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(10)
            .map(|(i, (a, b))| format!("line {}:\n  want {a}\n  got  {b}", i + 1))
            .collect();
        panic!(
            "the screen differs from snapshot {} ({} vs {} lines); if the change is deliberate, \
             rerun with CEREMONY_UPDATE_SNAPSHOTS=1 and review the diff.\n{}\nThe screen:\n{masked}",
            path.display(),
            want.lines().count(),
            masked.lines().count(),
            diff.join("\n")
        );
    }
}

// ---- the tests ---------------------------------------------------------------

/// The whole ceremony at a terminal: PIN, preflight and serial, each
/// irreversible step confirmed, two witnesses typing the last four digits of
/// each CA's fingerprint; everything typed is in the sealed audit log.
#[test]
fn full_interactive_ceremony_with_two_witnesses() {
    let f = Fixture::new("t-tty-full");
    let plan = f.write_plan("plan.toml", KEYS);
    let out = f.work("out");
    let (plan_s, out_s) = (plan.display().to_string(), out.display().to_string());
    let t = Term::start(&f, &["run", &plan_s, "--out", &out_s], &[("NO_COLOR", "1")]);

    // [1/8] and [2/8]: the token, then the PIN (no echo).
    let s = t.wait_for("the PIN prompt", |s| {
        last_line(s).contains("User PIN for token")
    });
    assert!(s.contains("[1/8] Open the module"), "{s}");
    assert!(s.contains("[2/8] Log in to the token"), "{s}");
    t.answer(&f.token().pin);

    // The preflight screen, then the serial.
    let s = t.wait_for("the serial prompt", |s| {
        last_line(s).contains("Type the token serial")
    });
    assert!(!s.contains(&f.token().pin), "the PIN is on the screen");
    snapshot(
        "preflight.txt",
        &mask(&section(&s, "Preflight:", "Type the token serial"), &f),
    );
    t.answer(&f.token().serial);

    // [3/8]: the root key, then its certificate, each confirmed on its own.
    let s = t.wait_prompt("[y/N]");
    assert!(
        s.contains("[3/8] Generate root key ecdsa-p384 \"root-ca\""),
        "{s}"
    );
    t.answer("y");
    t.wait_prompt("[y/N]");
    t.answer("y");
    // The witnesses, one after the other.
    let s = t.wait_prompt("the last four digits:");
    assert!(last_line(&s).contains("Wendy Witness"), "{s}");
    t.answer(&last_four(&s));
    let s = t.wait_prompt("the last four digits:");
    assert!(last_line(&s).contains("Walter Witness"), "{s}");
    t.answer(&last_four(&s));
    let s = t.wait_for("the kubernetes CA", |s| s.contains("[4/8]"));
    snapshot(
        "root-acknowledged.txt",
        &mask(
            &section(&s, "[3/8] Generate", "Walter Witness, the last four digits"),
            &f,
        ),
    );

    // The rest as everyone would answer.
    let code = answer_everything(&t, &f);
    let s = t.screen();
    assert_eq!(code, 0, "the ceremony failed:\n{s}");
    snapshot(
        "end.txt",
        &mask(&section(&s, "Done: ceremony", "Auditor:"), &f),
    );
    assert!(!s.contains(&f.token().pin), "the PIN is on the screen");
    assert!(!t.capture(true).contains("\x1b[1m"), "NO_COLOR: no colours");

    // The bundle checks, and the record holds what everyone typed.
    let v = f.ceremony(&["verify".as_ref(), out.as_os_str()]);
    v.assert_ok("ceremony verify");
    let records = sealed_records(&f, &out.join("audit.log.age"));
    let witness = acks(&records, "witness", "typed");
    assert_eq!(witness.len(), 4 * 2, "4 CAs × 2 witnesses");
    for who in ["Wendy Witness", "Walter Witness"] {
        assert_eq!(
            witness.iter().filter(|a| a["event"]["who"] == who).count(),
            4
        );
    }
    let admin = acks(&records, "administrator", "typed");
    assert_eq!(
        admin.len(),
        1 + 4 * 2,
        "the start, then each key and CA certificate"
    );
    assert!(
        admin[0]["event"]["what"]
            .as_str()
            .is_some_and(|w| w.contains(&f.token().serial))
    );
    assert!(acks(&records, "witness", "automatic").is_empty());
    assert!(acks(&records, "administrator", "automatic").is_empty());
    let login = records
        .iter()
        .find(|r| kind(r) == "logged_in")
        .expect("logged_in");
    assert_eq!(login["event"]["source"], "the terminal prompt");
    // The order: each confirmation comes right before what it allowed.
    let kinds: Vec<&str> = records.iter().map(kind).collect();
    let first_key = kinds
        .iter()
        .position(|k| *k == "key_generated")
        .expect("a key");
    assert_eq!(kinds[first_key - 1], "acknowledged");
}

/// A wrong PIN is refused with a warning and asked again; the right one goes on.
#[test]
fn a_wrong_pin_then_the_right_one() {
    let f = Fixture::new("t-tty-pin");
    let (out, t) = run_to_pin_prompt(&f, &[("NO_COLOR", "1")]);
    t.answer("not-the-pin");
    let s = t.wait_for("the second PIN prompt", |s| {
        s.contains("wrong PIN (1 of 3 attempts)") && last_line(s).contains("User PIN for token")
    });
    assert!(!s.contains("not-the-pin"), "a PIN is never echoed:\n{s}");
    t.answer(&f.token().pin);
    t.wait_for("the preflight", |s| s.contains("Preflight:"));
    let code = answer_everything(&t, &f);
    assert_eq!(code, 0, "{}", t.screen());
    let records = sealed_records(&f, &out.join("audit.log.age"));
    assert_eq!(records.iter().filter(|r| kind(r) == "logged_in").count(), 1);
    let all = serde_json::to_string(&records).expect("json");
    assert!(!all.contains("not-the-pin") && !all.contains(&f.token().pin));
}

/// Declining the root key: exit 1, one line saying what happened and how to
/// resume, nothing on the token, no output, the cancellation in the journal.
#[test]
fn declining_the_root_confirmation_cancels_cleanly() {
    let f = Fixture::new("t-tty-decline");
    let before = f.token_snapshot();
    // Colours on (a terminal, NO_COLOR unset).
    let (out, t) = run_to_pin_prompt(&f, &[]);
    t.answer(&f.token().pin);
    t.wait_for("the serial prompt", |s| {
        last_line(s).contains("Type the token serial")
    });
    t.answer(&f.token().serial);
    let s = t.wait_prompt("[y/N]");
    assert!(
        s.contains("Generate root key ecdsa-p384 \"root-ca\" on the token"),
        "{s}"
    );
    t.answer("n");
    assert_eq!(t.wait_exit(), 1, "{}", t.screen());
    let s = t.screen();
    let tail: Vec<&str> = s
        .lines()
        .skip_while(|l| !l.contains("Go ahead?"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(tail.len(), 1, "one line after the answer:\n{s}");
    let line = tail[0];
    assert!(
        line.starts_with(
            "Cancelled: stopped at [3/8] (the administrator declined: Generate root key"
        ),
        "{line}"
    );
    assert!(line.contains("generated and signed nothing"), "{line}");
    assert!(
        line.contains(&format!(
            "ceremony run {} --out {}",
            f.path().join("plan.toml").display(),
            out.display()
        )),
        "{line}"
    );
    assert!(t.capture(true).contains("\x1b["), "colours on a terminal");

    // Nothing generated, nothing written, the cancellation on the record.
    assert_eq!(f.token_snapshot(), before, "the token changed");
    assert!(!out.exists());
    let journal = out.with_file_name(".out.journal");
    let timeline = audit_show(&f, &journal);
    assert!(
        timeline.lines().any(|l| l.contains("cancelled")
            && l.contains("the administrator declined: Generate root key")),
        "{timeline}"
    );
    assert!(!timeline.contains("key_generated"), "{timeline}");
}

/// Ctrl-C at the PIN prompt (a blocking, no-echo read): exit 1, recorded,
/// and the terminal's echo is back on.
#[test]
fn ctrl_c_at_the_pin_prompt() {
    let f = Fixture::new("t-tty-pin-ctrl-c");
    let (out, t) = run_to_pin_prompt(&f, &[("NO_COLOR", "1")]);
    t.key("C-c");
    assert_eq!(t.wait_exit(), 1, "{}", t.screen());
    let s = t.screen();
    assert!(
        s.contains("Cancelled: stopped at [2/8] (Ctrl-C at the PIN prompt)"),
        "{s}"
    );
    let stty = t.stty_after();
    assert!(
        stty.split_whitespace().any(|w| w == "echo"),
        "echo is off after the run:\n{stty}"
    );
    let timeline = audit_show(&f, &out.with_file_name(".out.journal"));
    assert!(
        timeline
            .lines()
            .any(|l| l.contains("cancelled") && l.contains("Ctrl-C at the PIN prompt")),
        "{timeline}"
    );
}

/// Ctrl-C while the leaves are signed: the run stops after the signature in
/// progress, records it and exits 1 with nothing at OUT; the same command then
/// resumes (every CA reused, nothing generated again) and completes.
#[cfg(feature = "failpoints")]
#[test]
fn ctrl_c_during_leaf_signing_then_resume() {
    if !common::has_failpoints("interactive::ctrl_c_during_leaf_signing_then_resume") {
        return;
    }
    let f = Fixture::new("t-tty-ctrl-c");
    let plan = f.write_plan("plan.toml", KEYS);
    let out = f.work("out");
    let (plan_s, out_s) = (plan.display().to_string(), out.display().to_string());
    // The run holds at the 4th leaf until Ctrl-C (test-only, `failpoints`
    // builds), so Ctrl-C lands mid-leaves whatever the machine's speed.
    let t = Term::start(
        &f,
        &["run", &plan_s, "--out", &out_s],
        &[("NO_COLOR", "1"), ("CEREMONY_TEST_HOLD_AT_LEAF", "4")],
    );
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_secs(300), "{}", t.screen());
        let s = t.screen();
        if s.lines().any(|l| l.starts_with("[7/8]")) {
            break;
        }
        if !answer_prompt(&t, &f, &s) {
            std::thread::sleep(POLL);
        }
    }
    // Three leaves under way, then Ctrl-C.
    t.wait_for("the hold at the 4th leaf", |s| {
        s.contains("test: holding at leaf 4")
    });
    t.key("C-c");
    assert_eq!(t.wait_exit(), 1, "{}", t.screen());
    let s = t.screen();
    let line = s
        .lines()
        .find(|l| l.starts_with("Cancelled:"))
        .unwrap_or_else(|| panic!("no Cancelled line:\n{s}"));
    assert!(
        line.starts_with("Cancelled: stopped at [7/8] (Ctrl-C)"),
        "{line}"
    );
    assert!(line.contains("4 of 4 CAs are ready"), "{line}");
    assert!(!out.exists(), "nothing at OUT after a cancellation");
    let journal = out.with_file_name(".out.journal");
    let timeline = audit_show(&f, &journal);
    assert!(
        timeline
            .lines()
            .any(|l| l.contains(" cancelled ") && l.contains("Ctrl-C")),
        "{timeline}"
    );
    drop(t);

    // The same command again: the preflight says what is reused.
    let t = Term::start(&f, &["run", &plan_s, "--out", &out_s], &[("NO_COLOR", "1")]);
    t.wait_for("the PIN prompt", |s| {
        last_line(s).contains("User PIN for token")
    });
    t.answer(&f.token().pin);
    let s = t.wait_for("the serial prompt", |s| {
        last_line(s).contains("Type the token serial")
    });
    assert!(
        s.contains(
            "[3/8] Reuse root key ecdsa-p384 \"root-ca\" and its certificate, already on token"
        ),
        "{s}"
    );
    assert!(s.contains("continues the interrupted run's"), "{s}");
    let code = answer_everything(&t, &f);
    let s = t.screen();
    assert_eq!(code, 0, "{s}");
    assert!(
        !s.contains("Go ahead?"),
        "nothing irreversible on resume:\n{s}"
    );
    f.ceremony(&["verify".as_ref(), out.as_os_str()])
        .assert_ok("ceremony verify");
    let records = sealed_records(&f, &out.join("audit.log.age"));
    let kinds: Vec<&str> = records.iter().map(kind).collect();
    let cancelled = kinds
        .iter()
        .position(|k| *k == "cancelled")
        .expect("cancelled");
    let resumed = kinds.iter().position(|k| *k == "resumed").expect("resumed");
    assert!(cancelled < resumed);
    assert_eq!(kinds.iter().filter(|k| **k == "key_generated").count(), 4);
}

/// Without a terminal and without --yes the run refuses before touching anything.
#[test]
fn no_terminal_and_no_yes_exits_2() {
    let f = Fixture::new("t-tty-none");
    let plan = f.write_ca_plan("plan.toml", KEYS);
    let out = f.work("out");
    let before = f.token_snapshot();
    let o = f.ceremony(&[
        "run".as_ref(),
        plan.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(o.code, Some(2), "{o}");
    assert_eq!(
        o.first_error(),
        Some("error: no terminal to guide the ceremony on, and --yes was not given")
    );
    assert!(o.hint().is_some_and(|h| h.contains("--yes")), "{o}");
    assert!(!o.stderr.contains('\x1b'), "no colours off a terminal: {o}");
    assert_eq!(f.token_snapshot(), before);
    assert!(!out.exists() && !out.with_file_name(".out.journal").exists());
}

/// `--yes` at a terminal still shows the preflight and the end screen, and
/// asks nothing.
#[test]
fn yes_at_a_terminal_asks_nothing() {
    let f = Fixture::new("t-tty-yes");
    let plan = f.write_ca_plan("plan.toml", KEYS);
    let out = f.work("out");
    let pin = f.pin_file();
    let (plan_s, out_s, pin_s) = (
        plan.display().to_string(),
        out.display().to_string(),
        pin.display().to_string(),
    );
    let t = Term::start(
        &f,
        &[
            "run",
            &plan_s,
            "--out",
            &out_s,
            "--yes",
            "--pin-file",
            &pin_s,
        ],
        &[("NO_COLOR", "1")],
    );
    assert_eq!(t.wait_exit(), 0, "{}", t.screen());
    let s = t.screen();
    assert!(
        s.contains("Preflight:") && s.contains("Done: ceremony"),
        "{s}"
    );
    assert!(
        !s.contains("[y/N]") && !s.contains("last four digits"),
        "{s}"
    );
}

/// The mask keeps what a person reads and hides only what varies.
#[test]
fn masking() {
    let f = Fixture::new("t-tty-mask");
    let fp = "ABCD ".repeat(15) + "ABCD";
    let line = format!(
        "  root CA certificate        SHA-256 {fp}\n  valid until 2046-11-18 18:55:41 UTC, firmware 2.6, hardware 2.6\n\
         SHA-256 {}\n      Wendy Witness, the last four digits: B996\n  in {}/work/out",
        "ab".repeat(32),
        f.path().display()
    );
    assert_eq!(
        mask(&line, &f),
        "  root CA certificate        SHA-256 <FINGERPRINT>\n  valid until <DATE>, firmware <V>, hardware <V>\n\
         SHA-256 <SHA256>\n      Wendy Witness, the last four digits: <LAST4>\n  in <TMP>/work/out\n"
    );
}
