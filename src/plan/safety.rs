//! What makes a valid plan unfit for a real ceremony: an audit recipient
//! whose identity anyone can read (it is committed in this repository), a
//! hardware module whose SHA-256 is not pinned, a placeholder of an example
//! plan left in. Pure: the plan and the module path in, findings out.
//!
//! A run is *real* when its module is not a software token (SoftHSM,
//! kryoptic): those are for rehearsals and CI only (docs/runbook.md).

use std::path::Path;

use super::spec::ValidPlan;

/// Recipients whose identity is public, with where it is: an audit log or a
/// node's archive encrypted to one of these is readable by anyone with a clone.
pub const DEMO_RECIPIENTS: &[(&str, &str)] = &[
    (
        "age1rfjvanyx48qxdll0q8wkrca6kpkfluxp4gal0ws7cp4awt900vpsf0sp9u",
        "ceremony/plans/demo-auditor.agekey",
    ),
    (
        "age1v0vhsuuw5emxn26y9gw9fx43uexv36j6qdgyaf2jk390k35hgpqsp0prg6",
        "ceremony/plans/demo-cp1.agekey",
    ),
];

/// File names of the software tokens' modules (rehearsals and CI).
pub const SOFTWARE_MODULES: &[&str] = &["libsofthsm2.so", "libkryoptic_pkcs11.so"];

/// What an example plan writes where each ceremony must put its own value;
/// a plan holding it is refused by validation.
pub const PLACEHOLDER: &str = "REPLACE-ME";

/// One reason a plan is unfit for a real ceremony.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Risk {
    /// `audit.recipients[index]` is a demo recipient; its identity is `file`.
    DemoRecipient { index: usize, file: &'static str },
    /// `cluster.node_recipients.<node>` is a demo recipient: the node's keys
    /// are readable by anyone with a clone.
    DemoNodeRecipient { node: String, file: &'static str },
    /// A hardware module without `token.module_sha256`.
    UnpinnedModule { module: String },
}

impl std::fmt::Display for Risk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Risk::DemoRecipient { index, file } => write!(
                f,
                "audit.recipients[{index}] is a demo recipient, whose identity anyone can read in the repository ({file})"
            ),
            Risk::DemoNodeRecipient { node, file } => write!(
                f,
                "cluster.node_recipients.{node} is a demo recipient, whose identity anyone can read in the repository ({file}): the node's keys would be readable by anyone"
            ),
            Risk::UnpinnedModule { module } => write!(
                f,
                "token.module_sha256 is missing: nothing checks that {module} is the module you reviewed"
            ),
        }
    }
}

/// Whether `module` is a software token's module (by its file name).
pub fn is_software_module(module: &Path) -> bool {
    module
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| SOFTWARE_MODULES.contains(&n))
}

/// The committed identity of `recipient`, if it is a demo recipient.
fn demo_identity(recipient: &str) -> Option<&'static str> {
    DEMO_RECIPIENTS
        .iter()
        .find(|(demo, _)| recipient.trim() == *demo)
        .map(|(_, file)| *file)
}

/// Every risk of running `plan` with `module` (the plan's, or `--module`'s).
pub fn risks(plan: &ValidPlan, module: &Path) -> Vec<Risk> {
    let mut v: Vec<Risk> = plan
        .recipients
        .iter()
        .enumerate()
        .filter_map(|(index, r)| demo_identity(r).map(|file| Risk::DemoRecipient { index, file }))
        .collect();
    if let Some(cl) = &plan.cluster {
        v.extend(cl.node_recipients.iter().filter_map(|(node, r)| {
            demo_identity(r).map(|file| Risk::DemoNodeRecipient {
                node: node.clone(),
                file,
            })
        }));
    }
    if plan.module_sha256.is_none() && !is_software_module(module) {
        v.push(Risk::UnpinnedModule {
            module: crate::fmt::shown(&module.display().to_string()).into_owned(),
        });
    }
    v
}

/// What to do about `risks`, for the hint of a refusal and for `check`.
pub fn advice(risks: &[Risk]) -> String {
    let mut what = Vec::new();
    if risks
        .iter()
        .any(|r| matches!(r, Risk::DemoRecipient { .. }))
    {
        what.push("encrypt the audit log to the auditor's own age key (docs/runbook.md, \"The auditor's key\")");
    }
    if risks
        .iter()
        .any(|r| matches!(r, Risk::DemoNodeRecipient { .. }))
    {
        what.push("deliver each node to an age key made on that node (docs/kubeadm.md)");
    }
    if risks
        .iter()
        .any(|r| matches!(r, Risk::UnpinnedModule { .. }))
    {
        what.push("pin the reviewed module: token.module_sha256 = its sha256sum");
    }
    what.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn demo() -> ValidPlan {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("ceremony/plans/demo.toml");
        crate::plan::load(&p, SystemTime::now()).unwrap().plan
    }

    /// The list names the committed identity's own public key: a new demo
    /// identity without its entry here fails this test.
    #[test]
    fn every_committed_identity_is_a_demo_recipient() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ceremony/plans");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != "agekey") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let id: age::x25519::Identity = text
                .lines()
                .find(|l| l.starts_with("AGE-SECRET-KEY-"))
                .unwrap()
                .parse()
                .unwrap();
            let public = id.to_public().to_string();
            let file = format!(
                "ceremony/plans/{}",
                path.file_name().unwrap().to_string_lossy()
            );
            assert!(
                DEMO_RECIPIENTS.contains(&(public.as_str(), file.as_str())),
                "{file}: {public} is not in DEMO_RECIPIENTS"
            );
            n += 1;
        }
        assert_eq!(n, DEMO_RECIPIENTS.len());
    }

    #[test]
    fn the_demo_plan_has_the_demo_auditor_and_a_software_module() {
        let plan = demo();
        assert_eq!(
            risks(&plan, &plan.module),
            vec![
                Risk::DemoRecipient {
                    index: 0,
                    file: "ceremony/plans/demo-auditor.agekey"
                },
                Risk::DemoNodeRecipient {
                    node: "cp1".into(),
                    file: "ceremony/plans/demo-cp1.agekey"
                }
            ]
        );
    }

    #[test]
    fn a_hardware_module_must_be_pinned() {
        let mut plan = demo();
        plan.recipients =
            vec!["age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq".into()];
        if let Some(cl) = plan.cluster.as_mut() {
            cl.node_recipients.clear();
        }
        let yubi = Path::new("/usr/lib/x86_64-linux-gnu/pkcs11/yubihsm_pkcs11.so");
        assert_eq!(
            risks(&plan, yubi),
            vec![Risk::UnpinnedModule {
                module: yubi.display().to_string()
            }]
        );
        assert!(risks(&plan, Path::new("/usr/lib/softhsm/libsofthsm2.so")).is_empty());
        assert!(risks(&plan, Path::new("/opt/k/libkryoptic_pkcs11.so")).is_empty());
        plan.module_sha256 = Some([7; 32]);
        assert!(risks(&plan, yubi).is_empty());
    }
}
