//! The ceremony plan: loading `plan.toml` strictly and validating it.
//!
//! `load` is the only function here that reads files; the model and the
//! validation are pure so they can be tested without a token or a disk.

pub mod continuing;
pub mod duration;
pub mod model;
pub mod spec;
pub mod validate;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// A certificate notion; re-exported while callers still name it through the plan.
pub use crate::x509::san::San;
pub use model::Plan;
pub use spec::{
    CaRole, CaSpec, ClusterSpec, ControlPlaneSpec, LeafMode, Lifetime, UserSpec, ValidPlan,
};
pub use validate::Problem;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{file}: cannot read the plan: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
}

/// Reads, parses and validates a plan; `now` decides which not_after is in the past.
pub fn load(path: &Path, now: SystemTime) -> Result<LoadedPlan, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    let raw = parse(&text).map_err(|(p, message)| PlanError::Syntax {
        file: path.to_path_buf(),
        path: p,
        message,
    })?;
    let names_file = raw
        .cluster
        .as_ref()
        .and_then(|c| c.workers.as_ref())
        .and_then(|w| w.names_file.as_ref())
        .map(|f| {
            let full = path.parent().unwrap_or(Path::new(".")).join(f);
            std::fs::read_to_string(&full).map_err(|e| PlanError::Invalid {
                file: path.to_path_buf(),
                problems: vec![Problem {
                    path: "cluster.workers.names_file".into(),
                    message: format!("cannot read {}: {e}", full.display()),
                    got: Some(format!("{:?}", f.display().to_string())),
                }],
            })
        })
        .transpose()?;
    let ctx = validate::Context {
        now,
        worker_names_file: names_file.as_deref(),
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
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                load(&p, SystemTime::now()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                n += 1;
            }
        }
        assert!(n >= 3);
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
