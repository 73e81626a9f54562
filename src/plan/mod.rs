//! The ceremony plan: loading `plan.toml` strictly and validating it.
//!
//! `load` is the only function here that reads files; the model and the
//! validation are pure so they can be tested without a token or a disk.

pub mod continuing;
pub mod duration;
pub mod inputs;
pub mod model;
pub mod safety;
pub mod spec;
pub mod validate;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::fsread::{Links, cap, read_regular};

/// A certificate notion; re-exported while callers still name it through the plan.
pub use crate::x509::san::San;
pub use model::Plan;
pub use spec::{
    BackupSpec, CaRole, CaSpec, ClusterSpec, ControlPlaneSpec, Delegated, KubeletSignerSpec,
    LeafMode, Lifetime, RotateSpec, RotateStage, UserSpec, ValidPlan,
};
pub use validate::Problem;
pub use validate::default_new_label;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{file}: cannot read the plan: {why}")]
    Read { file: PathBuf, why: String },
    #[error("{file}: {path}: {message}")]
    Syntax {
        file: PathBuf,
        path: String,
        message: String,
    },
    #[error("{}", .problems.iter().map(|p| format!("{}: {p}", .file.display())).collect::<Vec<_>>().join("\n"))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

/// A plan file as read: its bytes' SHA-256 (recorded in the audit log) and the validated plan.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    pub path: PathBuf,
    pub sha256: [u8; 32],
    pub text: String,
    pub plan: ValidPlan,
    /// `cluster.workers.names_file` as the plan names it, and the SHA-256
    /// of the bytes read from it (the worker names came from those).
    pub names_file: Option<(PathBuf, [u8; 32])>,
}

impl LoadedPlan {
    /// The inputs this loading read: the plan and its names file. The
    /// CSRs and a previous output are added by who reads them.
    pub fn inputs(&self) -> inputs::Inputs {
        let mut i = inputs::Inputs::default();
        // Relative to the plan's directory: its file name.
        let name = self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        i.add_sha256(inputs::Kind::Plan, &name, self.sha256);
        if let Some((path, sha)) = &self.names_file {
            i.add_sha256(inputs::Kind::Names, &path.display().to_string(), *sha);
        }
        i
    }
}

/// Reads, parses and validates a plan; `now` decides which not_after is in the past.
pub fn load(path: &Path, now: SystemTime) -> Result<LoadedPlan, PlanError> {
    let read = |why: String| PlanError::Read {
        file: path.to_path_buf(),
        why,
    };
    let bytes = read_regular(path, cap::PLAN, Links::Follow).map_err(|e| read(e.why()))?;
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| read("not UTF-8 text".into()))?;
    let raw = parse(&text).map_err(|(p, message)| PlanError::Syntax {
        file: path.to_path_buf(),
        path: p,
        message,
    })?;
    let names_file = match raw
        .cluster
        .as_ref()
        .and_then(|c| c.workers.as_ref())
        .and_then(|w| Some((w.names_file.as_deref()?, w.allow_outside)))
    {
        // A path the validator refuses is not read: it says why.
        Some((f, allow)) if validate::input_path_problem(f, allow, "").is_none() => Some((
            f.to_path_buf(),
            read_names_file(path, f, allow).map_err(|problem| PlanError::Invalid {
                file: path.to_path_buf(),
                problems: vec![problem],
            })?,
        )),
        _ => None,
    };
    let ctx = validate::Context {
        now,
        worker_names_file: names_file.as_ref().map(|(_, text)| text.as_str()),
    };
    let plan = validate::validate(&raw, &ctx).map_err(|problems| PlanError::Invalid {
        file: path.to_path_buf(),
        problems,
    })?;
    Ok(LoadedPlan {
        path: path.to_path_buf(),
        sha256: Sha256::digest(text.as_bytes()).into(),
        text,
        plan,
        names_file: names_file.map(|(f, text)| (f, Sha256::digest(text.as_bytes()).into())),
    })
}

/// `cluster.workers.names_file`, relative to the plan's directory: inside
/// it, also once symbolic links are resolved (unless `allow_outside`), a
/// regular file of at most `cap::NAMES_FILE` bytes, UTF-8.
fn read_names_file(plan: &Path, file: &Path, allow_outside: bool) -> Result<String, Problem> {
    let dir = plan.parent().unwrap_or(Path::new("."));
    let full = dir.join(file);
    let problem = |message: String| Problem {
        path: "cluster.workers.names_file".into(),
        message,
        got: Some(format!("{:?}", file.display().to_string())),
    };
    if !allow_outside {
        // A file that does not resolve is left to the read, which says so.
        let base = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let (Ok(d), Ok(f)) = (std::fs::canonicalize(base), std::fs::canonicalize(&full))
            && !f.starts_with(&d)
        {
            return Err(problem(format!(
                "{} leads out of the plan's directory through a symbolic link, to {}; input files stay inside it: copy the file in, or set allow_outside = true in [cluster.workers]",
                full.display(),
                f.display()
            )));
        }
    }
    let bytes = read_regular(&full, cap::NAMES_FILE, Links::Follow)
        .map_err(|e| problem(format!("cannot read {}: {}", full.display(), e.why())))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        problem(format!(
            "{} is not UTF-8 text; it must hold one node name a line",
            full.display()
        ))
    })
}

/// Strict TOML → model. On failure: (key path, message), e.g. ("root.colour", "unknown field …").
pub fn parse(text: &str) -> Result<Plan, (String, String)> {
    let de = toml::Deserializer::parse(text).map_err(|e| syntax_error(text, &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().replace("field", "key").replace('`', "\"");
        if path == "." {
            // Every top-level key is a section: say so.
            if let Some(name) = message
                .strip_prefix("missing key \"")
                .and_then(|m| m.strip_suffix('"'))
            {
                return (name.to_string(), format!("missing section [{name}]"));
            }
            return ("(top level)".to_string(), message);
        }
        (path, message)
    })
}

/// (where, what) of a TOML syntax error: "line N" when the parser gives a position.
fn syntax_error(text: &str, e: &toml::de::Error) -> (String, String) {
    let line = e.span().map(|s| {
        let before = &text.as_bytes()[..s.start.min(text.len())];
        before.iter().filter(|b| **b == b'\n').count() + 1
    });
    let what = format!("TOML syntax: {}", e.message().trim_end());
    match line {
        Some(l) => (format!("line {l}"), what),
        None => ("(syntax)".into(), what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_plans_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ceremony/plans");
        let (mut n, mut templates) = (0, 0);
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&p).unwrap();
                if text.contains(safety::PLACEHOLDER) {
                    templates += 1;
                    template_is_refused_until_filled(&p, &text);
                    continue;
                }
                load(&p, SystemTime::now()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                n += 1;
            }
        }
        assert!(n >= 2);
        assert_eq!(templates, 1);
    }

    /// docs/plan.md's worked example is ceremony/plans/demo.toml, byte for byte.
    #[test]
    fn the_worked_example_is_the_demo_plan() {
        let doc = include_str!("../../docs/plan.md");
        let example = doc
            .split("## Worked example: `ceremony/plans/demo.toml`")
            .nth(1)
            .and_then(|t| t.split("```toml\n").nth(1))
            .and_then(|t| t.split("```").next())
            .unwrap();
        assert_eq!(example, include_str!("../../ceremony/plans/demo.toml"));
    }

    /// A template plan is refused, each placeholder named (first), and
    /// valid once they are filled.
    fn template_is_refused_until_filled(path: &Path, text: &str) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plan.toml");
        std::fs::write(&p, text).unwrap();
        let Err(PlanError::Invalid { problems, .. }) = load(&p, SystemTime::now()) else {
            panic!("{}: a template was accepted", path.display());
        };
        let named: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            named,
            ["token.uri", "token.module_sha256", "audit.recipients[0]"],
            "{problems:?}"
        );
        assert!(
            problems[0]
                .to_string()
                .starts_with("token.uri: is a placeholder (REPLACE-ME): put this ceremony's value there before any run (got \"pkcs11:token=")
        );
        let filled = text
            .replace("serial=REPLACE-ME", "serial=0123456789abcdef")
            .replace(
                "\"REPLACE-ME\"]",
                &format!("\"{}\"]", safety::DEMO_RECIPIENTS[0].0),
            )
            .replace("\"REPLACE-ME\"", &format!("\"{}\"", "ab".repeat(32)));
        std::fs::write(&p, filled).unwrap();
        load(&p, SystemTime::now()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// kubeadm makes sa.key with its one encryptionAlgorithm: by default
    /// the service-account key is of the leaves' type; a plan may say
    /// otherwise.
    #[test]
    fn the_service_account_key_follows_the_leaf_key() {
        let dir = tempfile::tempdir().unwrap();
        let demo = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("ceremony/plans/demo.toml"),
        )
        .unwrap();
        let sa_key = |text: &str| {
            let p = dir.path().join("plan.toml");
            std::fs::write(&p, text).unwrap();
            let cl = load(&p, SystemTime::now()).unwrap().plan.cluster.unwrap();
            (cl.leaf_key.name(), cl.sa_key.name())
        };
        assert!(demo.contains("leaf_key = \"ecdsa-p256\"\n"));
        assert!(!demo.contains("service_account_key"));
        assert_eq!(sa_key(&demo), ("ecdsa-p256", "ecdsa-p256"));
        let rsa = demo.replace("leaf_key = \"ecdsa-p256\"\n", "leaf_key = \"rsa-3072\"\n");
        assert_eq!(sa_key(&rsa), ("rsa-3072", "rsa-3072"));
        let explicit = demo.replace(
            "leaf_key = \"ecdsa-p256\"\n",
            "leaf_key = \"ecdsa-p256\"\nservice_account_key = \"rsa-2048\"\n",
        );
        assert_eq!(sa_key(&explicit), ("ecdsa-p256", "rsa-2048"));
    }

    /// The one problem `load` finds itself: a names_file it cannot read.
    #[test]
    fn an_unreadable_names_file_is_a_plan_problem() {
        let dir = tempfile::tempdir().unwrap();
        let demo = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("ceremony/plans/demo.toml"),
        )
        .unwrap();
        let p = dir.path().join("plan.toml");
        let text = demo.replace(
            "names = [\"worker1\", \"worker2\"]\n",
            "names_file = \"workers.txt\"\n",
        );
        std::fs::write(&p, text).unwrap();
        let Err(PlanError::Invalid { problems, .. }) = load(&p, SystemTime::now()) else {
            panic!("a missing names_file was accepted");
        };
        let full = dir.path().join("workers.txt");
        assert_eq!(
            problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [format!(
                "cluster.workers.names_file: cannot read {}: No such file or directory (os error 2) (got \"workers.txt\")",
                full.display()
            )]
        );
    }

    /// The plan's names file as `load` reads it: (problems, or "ok").
    fn names_file_problems(dir: &Path, names_file: &str) -> Vec<String> {
        let demo = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("ceremony/plans/demo.toml"),
        )
        .unwrap();
        let p = dir.join("plan.toml");
        // Without kubelet serving certificates: the names file's workers have no addresses.
        let text = demo
            .replace(
                "names = [\"worker1\", \"worker2\"]\n",
                &format!("names_file = {names_file}\n"),
            )
            .replace(
                "kubelet_serving_certs = true",
                "kubelet_serving_certs = false",
            )
            .replace(
                "[cluster.worker_addresses]\nworker1 = \"10.0.0.21\"\nworker2 = \"10.0.0.22\"\n",
                "",
            );
        std::fs::write(&p, text).unwrap();
        match load(&p, SystemTime::now()) {
            Ok(_) => vec!["ok".into()],
            Err(PlanError::Invalid { problems, .. }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// A FIFO, /dev/zero or a 2 GiB sparse file as the names file is
    /// refused at once, unread: none blocks `check`, none fills the memory.
    #[test]
    fn a_names_file_is_a_bounded_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        std::fs::File::create(d.join("sparse"))
            .unwrap()
            .set_len(2 << 30)
            .unwrap();
        assert_eq!(
            names_file_problems(d, "\"fifo\""),
            [format!(
                "cluster.workers.names_file: cannot read {}: not a regular file (got \"fifo\")",
                d.join("fifo").display()
            )]
        );
        assert_eq!(
            names_file_problems(d, "\"sparse\""),
            [format!(
                "cluster.workers.names_file: cannot read {}: larger than 16 MiB (the most this tool reads of such a file) (got \"sparse\")",
                d.join("sparse").display()
            )]
        );
        assert_eq!(
            names_file_problems(d, "\"/dev/zero\"\nallow_outside = true"),
            [
                "cluster.workers.names_file: cannot read /dev/zero: not a regular file (got \"/dev/zero\")"
            ]
        );
        std::fs::write(d.join("binary"), b"w1\n\xff\xfe\0\n").unwrap();
        assert_eq!(
            names_file_problems(d, "\"binary\""),
            [format!(
                "cluster.workers.names_file: {} is not UTF-8 text; it must hold one node name a line (got \"binary\")",
                d.join("binary").display()
            )]
        );
    }

    /// Outside the plan's directory only when the plan says so; a link
    /// inside it that leads out counts as outside. A bad line is shown as a
    /// short escaped excerpt, never whole.
    #[test]
    fn a_names_file_stays_in_the_plan_directory_and_is_not_echoed() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(
            &secret,
            "root:$6$a-long-secret-hash-that-must-not-be-shown-whole:0:0\n",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::os::unix::fs::symlink(&secret, d.join("workers.txt")).unwrap();
        let canonical = std::fs::canonicalize(&secret).unwrap();
        assert_eq!(
            names_file_problems(d, "\"workers.txt\""),
            [format!(
                "cluster.workers.names_file: {} leads out of the plan's directory through a symbolic link, to {}; input files stay inside it: copy the file in, or set allow_outside = true in [cluster.workers] (got \"workers.txt\")",
                d.join("workers.txt").display(),
                canonical.display()
            )]
        );
        let absolute = format!("{:?}", secret.display().to_string());
        assert!(names_file_problems(d, &absolute)[0].contains("is an absolute path"));
        // Allowed: read, and its bad line shown as an excerpt.
        assert_eq!(
            names_file_problems(d, &format!("{absolute}\nallow_outside = true")),
            [format!(
                "cluster.workers.names_file ({}:1): must be a node name: a lowercase DNS-1123 subdomain (got \"root:$6$a-long-secret-hash-that-must-not\", cut at 40 characters)",
                secret.display()
            )]
        );
        std::fs::write(d.join("ctl.txt"), "w1\n\u{1b}]0;owned\u{7}\n").unwrap();
        assert_eq!(
            names_file_problems(d, "\"ctl.txt\""),
            [
                "cluster.workers.names_file (ctl.txt:2): must be a node name: a lowercase DNS-1123 subdomain (got \"\\u{1b}]0;owned\\u{7}\")"
            ]
        );
    }

    /// The plan itself: a regular file under its cap.
    #[test]
    fn the_plan_is_a_bounded_regular_file() {
        let e = load(Path::new("/dev/zero"), SystemTime::now()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/zero: cannot read the plan: not a regular file"
        );
    }

    #[test]
    fn syntax_errors_name_the_key_path() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("ceremony/plans/demo.toml"),
        )
        .unwrap();
        let (path, msg) =
            parse(&text.replace("[root]\n", "[root]\ncolour = \"red\"\n")).unwrap_err();
        assert_eq!(path, "root.colour");
        assert!(
            msg.starts_with("unknown key \"colour\", expected one of"),
            "{msg}"
        );
        let (path, msg) = parse(&text.replace("[audit]", "[audit-log]")).unwrap_err();
        assert_eq!(path, "audit-log");
        assert!(msg.starts_with("unknown key \"audit-log\""), "{msg}");
        let cut = text.find("[audit]").unwrap();
        let (path, msg) = parse(&text[..cut]).unwrap_err();
        assert_eq!(
            (path.as_str(), msg.as_str()),
            ("audit", "missing section [audit]")
        );
        let (path, _) = parse(&text.replace("key = \"ecdsa-p384\"", "key = 384")).unwrap_err();
        assert_eq!(path, "root.key");
    }
}
