//! Bad input, as data: each directory under `tests/bad-input/` is one thing
//! an operator can get wrong. The test runs the real binary on its own
//! throwaway SoftHSM token and asserts the exact first `error:` line, the
//! exact `hint:` line (or that there is none), the exit code (2: bad plan or
//! usage, 3: token or module, 5: the system under the run, a full or
//! read-only disk), an empty stdout and no PIN on stderr, and that
//! neither the token nor any file in the test's directory changed (the output
//! path, its staging directory, plans, PIN files; after a token error only the
//! audit journal beside the output may have grown).
//!
//! A case directory holds:
//! - `case.toml`: `about` (one line), optional `args` (default: `run plan.toml
//!   --yes --pin-file pin --out work/out`), and set-up tables:
//!   `[[replace]] line/with` edits `base-plan.toml` (the exact text must occur
//!   once), `[[file]] path/contents/mode` (+ `owner`, a uid: needs root),
//!   `[[dir]] path`, `[[symlink]] path/target`, `[[fifo]] path` (a named
//!   pipe nobody writes), `[[sparse]] path/size` (a sparse file), and
//!   `[[token]] action = ...` (see `TokenAction`; `interrupted-run` runs
//!   the case's plan and stops it at a failpoint, then writes `then` files);
//!   `env` (extra environment for the child); `[mount] path/kind` (a small
//!   tmpfs mounted over a directory of the case: `full`, or `read-only`);
//!   `pause` + `during` (the child waits at failpoint `pause` while the test
//!   does `during` to the world, e.g. `move-token-dir`, then lets it go on).
//!   `needs` declares what a case needs beyond SoftHSM: `root` (a mount,
//!   an `owner`)
//!   or `failpoints` (a pause, or a `CEREMONY_FAILPOINT*` variable in
//!   `env`); the declaration must match the case. A case whose need is
//!   unmet here is skipped and said so, and `skips_are_declared_and_summed_up`
//!   prints the count; under `CI=1` such a skip fails, but for a binary
//!   declared without failpoints (`CEREMONY_BIN_FAILPOINTS=0`: the
//!   failpoints run covers those cases). Exit 5 (the system: a full or
//!   read-only disk) is allowed for mount cases.
//! - `expected.txt`: `exit N`, then the exact first error line, then the exact
//!   hint line if the binary prints one. An error line ending in ` [...]` is
//!   compared as a prefix (its case says why). A new case may start with
//!   `exit ?`: it then fails and prints what the binary said, for review.
//!
//! Placeholders, in plans, files, args and expected lines: `@DIR@` (the
//! case's temp dir; the binary runs there), `@TOKEN@` (its token label),
//! `@MODULE@` (SoftHSM), `@MODULE_SHA256@`, `@PIN@` (the token's PIN),
//! `@SERIAL@` (the token's serial), `@SLOT1@`/`@SLOT2@` (serials of the
//! initialised tokens in slot order).

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

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::{Fixture, Need, Node, SOFTHSM_MODULE, Unmet, skip, tree_diff, write_file};
use serde::Deserialize;

const CASES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bad-input");
const BASE_PLAN: &str = "base-plan.toml";
/// Marks an expected error line that is compared as a prefix.
const PREFIX_MARK: &str = " [...]";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    about: String,
    /// What the case needs beyond SoftHSM (checked against what it does).
    #[serde(default)]
    needs: Vec<Need>,
    args: Option<Vec<String>>,
    #[serde(default)]
    replace: Vec<Replace>,
    #[serde(default)]
    file: Vec<FileSpec>,
    #[serde(default)]
    dir: Vec<DirSpec>,
    #[serde(default)]
    symlink: Vec<LinkSpec>,
    /// FIFOs (named pipes) with no writer: a plain open of one blocks.
    #[serde(default)]
    fifo: Vec<DirSpec>,
    /// Sparse files of `size` bytes (holes, no disk used).
    #[serde(default)]
    sparse: Vec<SparseSpec>,
    #[serde(default)]
    token: Vec<TokenAction>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    mount: Option<MountSpec>,
    /// A failpoint to pause the child at (`pause:<point>`), with `during`.
    pause: Option<String>,
    during: Option<During>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MountSpec {
    /// A directory of the case (it must exist), e.g. "work".
    path: String,
    kind: MountKind,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum MountKind {
    /// A 64 KiB tmpfs, filled to the last byte by a file `filler`.
    Full,
    /// A read-only tmpfs.
    ReadOnly,
}

/// What the test does while the child is paused.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum During {
    /// Moves the token's SoftHSM directory out of the token directory (as if
    /// the token were pulled out), and puts it back after the child ended.
    MoveTokenDir,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Replace {
    line: String,
    with: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    path: String,
    contents: String,
    mode: u32,
    /// A uid to chown the file to (needs root).
    owner: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SparseSpec {
    path: String,
    size: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirSpec {
    path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkSpec {
    path: String,
    target: String,
}

/// What to put on the token before the snapshot (all with independent tools).
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
enum TokenAction {
    /// `softhsm2-util --init-token` again with the same label, in the same token directory.
    SecondToken,
    /// `pkcs11-tool --write-object --type data` with this label.
    DataObject { label: String },
    /// `pkcs11-tool --keypairgen` (e.g. key = "rsa:2048", "EC:prime256v1").
    Keypair {
        label: String,
        key: String,
        id: String,
    },
    /// The public half of a `pkcs11-tool --keypairgen` pair (its private key deleted),
    /// as a token can leave a killed key generation: with no journal recording
    /// that generation, it is foreign and must be left alone.
    PublicKeyOnly {
        label: String,
        key: String,
        id: String,
    },
    /// A `pkcs11-tool --keypairgen` pair whose private key file is then cut
    /// short before its EC parameters, as a kill inside SoftHSM's write can
    /// leave it: listed with its label, id and flags, unable to sign. With no
    /// journal recording its generation, it is refused and left alone.
    KeypairCutShort {
        label: String,
        key: String,
        id: String,
    },
    /// A P-256 key made by openssl, `softhsm2-util --import`ed (so never-extractable is false).
    ImportKey { label: String, id: String },
    /// A self-signed certificate (openssl, software key) written with `pkcs11-tool --type cert`.
    Certificate {
        label: String,
        id: String,
        subject: String,
    },
    /// A successful ceremony with the unedited base plan (into work/first-out).
    RunBasePlan,
    /// The case's own plan and files run into work/out and aborted at
    /// failpoint `at` (needs failpoints), as a power cut leaves a run: its
    /// unsealed journal, and past the staging's start its staging
    /// directory. Then the `then` files are written: inputs changed since.
    InterruptedRun {
        at: String,
        #[serde(default)]
        then: Vec<FileSpec>,
    },
}

struct Expected {
    /// None: not pinned yet (`exit ?`).
    exit: Option<i32>,
    error: String,
    hint: Option<String>,
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn parse_expected(text: &str, name: &str) -> Expected {
    if text.starts_with("exit ?") {
        return Expected {
            exit: None,
            error: String::new(),
            hint: None,
        };
    }
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        (2..=3).contains(&lines.len()),
        "{name}/expected.txt: exit line, error line, optional hint line"
    );
    let exit = lines[0]
        .strip_prefix("exit ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name}/expected.txt: first line must be `exit N`"));
    assert!(
        exit == 2 || exit == 3 || exit == 5,
        "{name}: bad input must exit 2 (plan/usage), 3 (token) or 5 (the system: a full disk), not {exit}"
    );
    assert!(
        lines[1].starts_with("error: "),
        "{name}/expected.txt: second line must be the `error: ` line"
    );
    let hint = lines.get(2).map(|h| {
        assert!(
            h.starts_with("hint: "),
            "{name}/expected.txt: third line must be the `hint: ` line"
        );
        h.to_string()
    });
    Expected {
        exit: Some(exit),
        error: lines[1].to_string(),
        hint,
    }
}

fn sha256_hex(path: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        std::fs::read(path).expect("read the module"),
    ))
}

/// Fills in the placeholders the fixture knows now.
fn expand(f: &Fixture, s: &str) -> String {
    let slots = f.slots();
    let slot = |i: usize| {
        slots
            .get(i)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| "(no such slot)".into())
    };
    s.replace("@DIR@", &f.path().to_string_lossy())
        .replace("@TOKEN@", &f.token().label)
        .replace("@MODULE_SHA256@", &sha256_hex(SOFTHSM_MODULE))
        .replace("@MODULE@", SOFTHSM_MODULE)
        .replace("@PIN@", &f.token().pin)
        .replace("@SERIAL@", &f.token().serial)
        .replace("@SLOT1@", &slot(0))
        .replace("@SLOT2@", &slot(1))
}

fn openssl_key(f: &Fixture) -> String {
    let key = f.path().join("setup-key.pem");
    if !key.exists() {
        let k = key.to_string_lossy();
        f.tool(
            "openssl",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &k,
            ],
        )
        .assert_ok("openssl genpkey");
    }
    key.to_string_lossy().into_owned()
}

fn token_setup(f: &mut Fixture, action: &TokenAction, base_plan: &str) {
    match action {
        TokenAction::SecondToken => {
            let label = f.token().label.clone();
            f.init_token(&label);
        }
        TokenAction::DataObject { label } => {
            let data = f.path().join("setup-data.bin");
            write_file(&data, b"not a key\n", 0o644);
            let d = data.to_string_lossy();
            f.pkcs11_tool_login(&["--write-object", &d, "--type", "data", "--label", label])
                .assert_ok("pkcs11-tool --write-object --type data");
        }
        TokenAction::Keypair { label, key, id }
        | TokenAction::PublicKeyOnly { label, key, id }
        | TokenAction::KeypairCutShort { label, key, id } => {
            f.pkcs11_tool_login(&[
                "--keypairgen",
                "--key-type",
                key,
                "--label",
                label,
                "--id",
                id,
            ])
            .assert_ok("pkcs11-tool --keypairgen");
            match action {
                TokenAction::PublicKeyOnly { .. } => {
                    f.pkcs11_tool_login(&["--delete-object", "--type", "privkey", "--id", id])
                        .assert_ok("pkcs11-tool --delete-object --type privkey");
                }
                TokenAction::KeypairCutShort { .. } => {
                    common::cut_before(&f.newest_object(3), common::CKA_EC_PARAMS);
                }
                _ => {}
            }
        }
        TokenAction::ImportKey { label, id } => {
            let key = openssl_key(f);
            let t = f.token().clone();
            f.tool(
                "softhsm2-util",
                &[
                    "--import",
                    key.as_str(),
                    "--token",
                    t.label.as_str(),
                    "--label",
                    label,
                    "--id",
                    id,
                    "--pin",
                    t.pin.as_str(),
                ],
            )
            .assert_ok("softhsm2-util --import");
        }
        TokenAction::Certificate { label, id, subject } => {
            let key = openssl_key(f);
            let cert = f.path().join(format!("setup-cert-{id}.der"));
            let c = cert.to_string_lossy();
            f.tool(
                "openssl",
                &[
                    "req",
                    "-x509",
                    "-new",
                    "-key",
                    key.as_str(),
                    "-subj",
                    subject,
                    "-days",
                    "30",
                    "-outform",
                    "DER",
                    "-out",
                    &c,
                ],
            )
            .assert_ok("openssl req -x509");
            f.pkcs11_tool_login(&[
                "--write-object",
                &c,
                "--type",
                "cert",
                "--label",
                label,
                "--id",
                id,
            ])
            .assert_ok("pkcs11-tool --write-object --type cert");
        }
        TokenAction::InterruptedRun { at, then } => {
            let out = f.work("out");
            let o = f.run_plan_env(
                &f.path().join("plan.toml"),
                &out,
                &[("CEREMONY_FAILPOINT", at)],
            );
            assert!(
                !o.ok() && !o.timed_out && !out.exists(),
                "the run was to stop at {at}:\n{o}"
            );
            assert!(
                out.with_file_name(".out.journal").is_dir(),
                "an interrupted run leaves its journal:\n{o}"
            );
            for file in then {
                // Replaced, as an editor would: a new file under the old name.
                let _ = std::fs::remove_file(f.path().join(&file.path));
                write_file(
                    &f.path().join(&file.path),
                    expand(f, &file.contents).as_bytes(),
                    file.mode,
                );
            }
        }
        TokenAction::RunBasePlan => {
            let plan = f.path().join("base-plan.toml");
            write_file(&plan, base_plan.as_bytes(), 0o644);
            f.run_plan(&plan, &f.work("first-out"))
                .assert_ok("the unedited base plan");
        }
    }
}

/// The files that must not change: for exit 2 (bad plan or usage, "nothing
/// touched") every file of the case's directory; for exit 3 (a token error)
/// all but the audit journal beside the output (`work/*journal*`), where the
/// ceremony may record the failed attempt (records hold errors).
fn guarded_files(f: &Fixture, exit: Option<i32>) -> BTreeMap<PathBuf, Node> {
    let journal = |p: &Path| {
        let mut c = p.components();
        c.next().is_some_and(|w| w.as_os_str() == "work")
            && c.next()
                .is_some_and(|n| n.as_os_str().to_string_lossy().contains("journal"))
    };
    f.files_snapshot()
        .into_iter()
        .filter(|(p, _)| exit != Some(3) || !journal(p))
        .filter(|(p, _)| !p.starts_with("logs") && !p.starts_with("pause"))
        .collect()
}

/// A tmpfs mounted over a directory of the case, unmounted on drop.
struct Mounted(PathBuf);

impl Mounted {
    fn new(path: &Path, kind: &MountKind) -> Result<Mounted, String> {
        let opts = match kind {
            MountKind::Full => "size=64k,mode=755",
            MountKind::ReadOnly => "ro,size=64k,mode=755",
        };
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "ceremony-test"])
            .arg(path)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        let m = Mounted(path.to_path_buf());
        if *kind == MountKind::Full {
            // Fill it to the last byte: every later write fails with ENOSPC.
            use std::io::Write;
            let mut filler =
                std::fs::File::create(path.join("filler")).map_err(|e| e.to_string())?;
            let chunk = [0u8; 512];
            while filler.write_all(&chunk).is_ok() {}
            let _ = filler.sync_all();
        }
        Ok(m)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Runs the binary until it pauses at `point`, does `during`, lets it go on,
/// and undoes `during` after it ended.
fn run_paused(
    f: &Fixture,
    args: &[String],
    env: &[(&str, &str)],
    point: &str,
    during: &During,
) -> common::Output {
    let pause = f.pause_dir();
    let spec = format!("pause:{point}");
    let mut full: Vec<(&str, &std::ffi::OsStr)> =
        env.iter().map(|(k, v)| (*k, v.as_ref())).collect();
    full.push(("CEREMONY_FAILPOINT", spec.as_ref()));
    full.push(("CEREMONY_FAILPOINT_DIR", pause.as_os_str()));
    let mut run = f.spawn_ceremony(args, &full);
    match run.wait_paused(&pause, common::CHILD_TIMEOUT) {
        common::Ended::Paused(_) => {}
        common::Ended::Exited(o) => panic!("the binary never reached {point}:\n{o}"),
    }
    match during {
        During::MoveTokenDir => {
            let tokens = f.path().join("tokens");
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(&tokens)
                .expect("read tokens/")
                .map(|e| e.expect("dir entry").path())
                .filter(|p| p.is_dir())
                .collect();
            assert_eq!(dirs.len(), 1, "one token directory: {dirs:?}");
            let dir = dirs.remove(0);
            let away = tempfile::tempdir().expect("tempdir");
            let held = away.path().join("token");
            std::fs::rename(&dir, &held).expect("move the token directory away");
            std::fs::write(pause.join("resume"), b"").expect("resume");
            let out = run.wait();
            std::fs::rename(&held, &dir).expect("put the token directory back");
            out
        }
    }
}

/// A case as written, its declared needs checked against what it does.
fn load_case(name: &str) -> Case {
    let dir = Path::new(CASES_DIR).join(name);
    let case: Case = toml::from_str(&read(&dir.join("case.toml")))
        .unwrap_or_else(|e| panic!("{name}/case.toml: {e}"));
    let mut does = Vec::new();
    if case.mount.is_some() || case.file.iter().any(|f| f.owner.is_some()) {
        does.push(Need::Root);
    }
    if case.pause.is_some()
        || case.env.keys().any(|k| k.starts_with("CEREMONY_FAILPOINT"))
        || case
            .token
            .iter()
            .any(|t| matches!(t, TokenAction::InterruptedRun { .. }))
    {
        does.push(Need::Failpoints);
    }
    let mut declared = case.needs.clone();
    declared.sort();
    declared.dedup();
    assert_eq!(
        declared, does,
        "{name}/case.toml: `needs` must list exactly what the case needs (a mount: root; a pause, a CEREMONY_FAILPOINT* variable or an interrupted run: failpoints)"
    );
    case
}

/// The first need of `case` that is unmet here.
fn unmet(case: &Case) -> Option<Unmet> {
    case.needs.iter().find_map(|n| n.unmet())
}

fn run_case(name: &str) {
    let dir = Path::new(CASES_DIR).join(name);
    let case = load_case(name);
    if let Some(u) = unmet(&case) {
        skip(&format!("bad input {name}"), &u);
        return;
    }
    let expected = parse_expected(&read(&dir.join("expected.txt")), name);
    assert!(
        !case.about.trim().is_empty() && !case.about.contains('\n'),
        "{name}: `about` is one line"
    );

    let label = format!("bad-{name}");
    let mut f = Fixture::new(&label[..label.len().min(32)]);
    let base = expand(&f, &read(&Path::new(CASES_DIR).join(BASE_PLAN)));
    let mut plan = base.clone();
    for r in &case.replace {
        let (line, with) = (expand(&f, &r.line), expand(&f, &r.with));
        assert_eq!(
            plan.matches(&line).count(),
            1,
            "{name}: replace.line must occur exactly once: {line:?}"
        );
        plan = plan.replacen(&line, &with, 1);
    }
    write_file(&f.path().join("plan.toml"), plan.as_bytes(), 0o644);
    for d in &case.dir {
        std::fs::create_dir_all(f.path().join(&d.path)).expect("mkdir");
    }
    for file in &case.file {
        write_file(
            &f.path().join(&file.path),
            expand(&f, &file.contents).as_bytes(),
            file.mode,
        );
    }
    for file in &case.file {
        if let Some(uid) = file.owner {
            std::os::unix::fs::chown(f.path().join(&file.path), Some(uid), None).expect("chown");
        }
    }
    for l in &case.symlink {
        symlink(&l.target, f.path().join(&l.path)).expect("symlink");
    }
    for p in &case.fifo {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            f.path().join(&p.path),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
    }
    for sp in &case.sparse {
        std::fs::File::create(f.path().join(&sp.path))
            .and_then(|file| file.set_len(sp.size))
            .expect("sparse file");
    }
    for action in &case.token {
        token_setup(&mut f, action, &base);
    }
    // Mounted last (it hides what was under the path) and unmounted on any exit.
    let _mounted = match &case.mount {
        Some(m) => match Mounted::new(&f.path().join(&m.path), &m.kind) {
            Ok(g) => Some(g),
            Err(why) => {
                // Root but no mount (a container without the capability): still a skip.
                let u = Unmet {
                    need: Need::Root,
                    by_design: false,
                    why: format!("cannot mount a tmpfs over {}: {why}", m.path),
                };
                skip(&format!("bad input {name}"), &u);
                return;
            }
        },
        None => None,
    };

    let args: Vec<String> = case
        .args
        .clone()
        .unwrap_or_else(|| {
            [
                "run",
                "plan.toml",
                "--yes",
                "--pin-file",
                "pin",
                "--out",
                "work/out",
            ]
            .map(String::from)
            .to_vec()
        })
        .iter()
        .map(|a| expand(&f, a))
        .collect();
    let files = |f: &Fixture| guarded_files(f, expected.exit);
    let (token_before, files_before) = (f.token_snapshot(), files(&f));
    let env: Vec<(&str, &str)> = case
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let out = match (&case.pause, &case.during) {
        (Some(point), Some(during)) => run_paused(&f, &args, &env, point, during),
        (None, None) => f.ceremony_env(&args, &env),
        _ => panic!("{name}: `pause` and `during` go together"),
    };
    let context = format!(
        "case {name} ({}): ceremony {}\n{out}",
        case.about,
        args.join(" ")
    );

    assert_eq!(out.signal, None, "{context}");
    let Some(exit) = expected.exit else {
        let hint = out.hint().map(|h| format!("{h}\n")).unwrap_or_default();
        panic!(
            "{name}/expected.txt is not pinned yet; the binary said:\nexit {}\n{}\n{hint}\n{context}",
            out.code.unwrap_or(-1),
            out.first_error().unwrap_or("(no error line)")
        );
    };
    assert_eq!(out.code, Some(exit), "exit code\n{context}");
    let want_error = expand(&f, &expected.error);
    let got_error = out.first_error().unwrap_or("(no error line)");
    match want_error.strip_suffix(PREFIX_MARK) {
        Some(prefix) => assert!(
            got_error.starts_with(prefix),
            "error line\n  want {want_error}\n  got  {got_error}\n{context}"
        ),
        None => assert_eq!(got_error, want_error, "error line\n{context}"),
    }
    let want_hint = expected.hint.as_deref().map(|h| expand(&f, h));
    assert_eq!(out.hint(), want_hint.as_deref(), "hint line\n{context}");
    // `check` answers on stdout (its report) before its error; a run says nothing there.
    if args.first().map(String::as_str) != Some("check") {
        assert_eq!(out.stdout, "", "nothing on stdout\n{context}");
    }
    assert!(
        !out.stderr.contains(&f.token().pin),
        "the PIN is on stderr\n{context}"
    );

    assert_eq!(
        f.token_snapshot(),
        token_before,
        "the token changed\n{context}"
    );
    let files_after = files(&f);
    assert!(
        files_after == files_before,
        "files changed:\n{}{context}",
        tree_diff(&files_before, &files_after)
    );
}

macro_rules! cases {
    ($($test:ident => $dir:literal,)*) => {
        /// Every case directory, in the order of the macro.
        const CASES: &[&str] = &[$($dir),*];
        $(
            #[test]
            fn $test() {
                run_case($dir);
            }
        )*
    };
}

cases! {
    // The plan (exit 2; no module is loaded).
    unknown_key => "unknown-key",
    missing_section => "missing-section",
    bad_key_type => "bad-key-type",
    label_too_long => "label-too-long",
    intermediate_outlives_root => "intermediate-outlives-root",
    duplicate_labels => "duplicate-labels",
    backup_threshold_above_custodians => "backup-threshold-above-custodians",
    backup_without_shares_out => "backup-without-shares-out",
    backup_mechanism_missing => "backup-mechanism-missing",
    pin_in_uri => "pin-in-uri",
    slot_id_in_uri => "slot-id-in-uri",
    not_after_in_past => "not-after-in-past",
    validity_and_not_after => "validity-and-not-after",
    validity_zero => "validity-zero",
    bad_subject => "bad-subject",
    revoke_without_previous => "revoke-without-previous",
    crl_next_update_too_long => "crl-next-update-too-long",
    subject_without_cn => "subject-without-cn",
    toml_syntax_error => "toml-syntax-error",
    module_sha256_not_hex => "module-sha256-not-hex",
    template_placeholder => "template-placeholder",
    // Unfit for the real ceremony (a hardware module, no --yes): refused
    // before anything is opened; --yes is a rehearsal and goes on.
    real_run_demo_auditor => "real-run-demo-auditor",
    real_run_module_unpinned => "real-run-module-unpinned",
    rehearsal_yes_on_hardware => "rehearsal-yes-on-hardware",
    real_run_rehearsal_flag => "real-run-rehearsal-flag",
    duplicate_node_name => "duplicate-node-name",
    invalid_san => "invalid-san",
    invalid_endpoint => "invalid-endpoint",
    leaf_outlives_intermediates => "leaf-outlives-intermediates",
    masters_without_allow => "masters-without-allow",
    user_named_twice => "user-named-twice",
    empty_audit_recipients => "empty-audit-recipients",
    bad_age_recipient => "bad-age-recipient",
    administrator_with_escape => "administrator-with-escape",
    witness_with_newline => "witness-with-newline",
    name_with_bidi_override => "name-with-bidi-override",
    delegated_without_csr => "delegated-without-csr",
    kubelet_serving_worker_without_address => "kubelet-serving-worker-without-address",
    // A delegated CA's request (exit 2, refused before the token).
    delegated_ca_csr_wrong_subject => "delegated-ca-csr-wrong-subject",
    delegated_ca_csr_not_self_signed => "delegated-ca-csr-not-self-signed",
    delegated_ca_csr_weak_key => "delegated-ca-csr-weak-key",
    delegated_ca_csr_longer_path => "delegated-ca-csr-longer-path",
    // Usage, PIN source, output path (exit 2).
    plan_file_missing => "plan-file-missing",
    no_yes_without_terminal => "no-yes-without-terminal",
    pin_file_world_readable => "pin-file-world-readable",
    pin_file_empty => "pin-file-empty",
    pin_env_unset => "pin-env-unset",
    output_not_empty => "output-not-empty",
    output_is_symlink => "output-is-symlink",
    output_is_file => "output-is-file",
    output_name_too_long => "output-name-too-long",
    check_output_name_too_long => "check-output-name-too-long",
    token_list_without_token => "token-list-without-token",
    // The module and the token (exit 3).
    wrong_pin => "wrong-pin",
    missing_module => "missing-module",
    module_is_libc => "module-is-libc",
    module_is_text_file => "module-is-text-file",
    module_sha256_mismatch => "module-sha256-mismatch",
    no_matching_token => "no-matching-token",
    two_matching_tokens => "two-matching-tokens",
    foreign_data_object => "foreign-data-object",
    foreign_key_type => "foreign-key-type",
    imported_key => "imported-key",
    foreign_certificate => "foreign-certificate",
    certificate_without_key => "certificate-without-key",
    public_key_without_private_key => "public-key-without-private-key",
    private_key_cannot_sign => "private-key-cannot-sign",
    changed_subject_after_run => "changed-subject-after-run",
    changed_key_type_after_run => "changed-key-type-after-run",
    csr_dir_missing => "csr-dir-missing",
    csr_node_missing => "csr-node-missing",
    // More plan constraints, output paths, PIN sources, modules.
    duplicate_control_plane_name => "duplicate-control-plane-name",
    duplicate_worker_name => "duplicate-worker-name",
    san_ip_out_of_range => "san-ip-out-of-range",
    san_with_underscore => "san-with-underscore",
    control_plane_address_not_ip => "control-plane-address-not-ip",
    endpoint_host_invalid => "endpoint-host-invalid",
    node_name_not_dns => "node-name-not-dns",
    intermediate_not_after_in_past => "intermediate-not-after-in-past",
    staging_is_symlink => "staging-is-symlink",
    journal_is_symlink => "journal-is-symlink",
    journal_of_another_plan => "journal-of-another-plan",
    staging_of_another_plan => "staging-of-another-plan",
    // The same plan, its inputs changed after an interrupted run.
    names_file_changed_after_interrupt => "names-file-changed-after-interrupt",
    names_file_changed_beside_staging => "names-file-changed-beside-staging",
    pin_file_missing => "pin-file-missing",
    no_pin_source => "no-pin-source",
    pin_env_empty => "pin-env-empty",
    module_is_directory => "module-is-directory",
    module_is_empty_file => "module-is-empty-file",
    // Inputs bounded and kept in the plan's directory; PIN files checked.
    names_file_is_fifo => "names-file-is-fifo",
    names_file_is_dev_zero => "names-file-is-dev-zero",
    names_file_huge_sparse => "names-file-huge-sparse",
    names_file_escapes_plan_dir => "names-file-escapes-plan-dir",
    names_file_absolute => "names-file-absolute",
    names_file_control_characters => "names-file-control-characters",
    pin_file_too_long => "pin-file-too-long",
    pin_file_other_owner => "pin-file-other-owner",
    // The system under the run: a full or read-only disk (tmpfs, needs root),
    // the token pulled out mid-run (needs --features failpoints).
    disk_full => "disk-full",
    output_read_only => "output-read-only",
    token_removed_mid_run => "token-removed-mid-run",
    // A token without a mechanism the plan needs (hidden by the test build).
    mechanism_missing_ecdsa => "mechanism-missing-ecdsa",
    mechanism_missing_rsa_keygen => "mechanism-missing-rsa-keygen",
}

/// The macro's list and the directories agree, and the required
/// cases are all there.
#[test]
fn every_case_directory_is_run() {
    let mut dirs: Vec<String> = std::fs::read_dir(CASES_DIR)
        .expect("tests/bad-input")
        .map(|e| e.expect("dir entry"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut listed: Vec<String> = CASES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        dirs, listed,
        "every directory under tests/bad-input needs a line in `cases!`, and vice versa"
    );
    assert!(CASES.len() >= 60, "at least 60 bad-input cases");
}

/// Every case's `needs` matches what it does, and one line sums up what
/// this run skips (on the harness's own stderr, so it shows in every run):
/// a green run says how much of it ran. Under CI a skip that is not by
/// design fails here too.
#[test]
fn skips_are_declared_and_summed_up() {
    let mut skipped: BTreeMap<&'static str, Vec<&str>> = BTreeMap::new();
    let mut by_design = true;
    for name in CASES {
        if let Some(u) = unmet(&load_case(name)) {
            by_design &= u.by_design;
            skipped.entry(u.need.name()).or_default().push(name);
        }
    }
    let n: usize = skipped.values().map(Vec::len).sum();
    let mut line = format!("bad input: {} run, {n} skipped", CASES.len() - n);
    for (need, names) in &skipped {
        line.push_str(&format!(" (need {need}: {})", names.join(", ")));
    }
    let _ = writeln!(std::io::stderr(), "{line}");
    assert!(
        n == 0 || by_design || !common::in_ci(),
        "{line}; under CI every case must run"
    );
}
