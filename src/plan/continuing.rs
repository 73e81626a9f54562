//! A continuing ceremony: `ceremony.previous` names the output of the
//! ceremony this one continues on the same token, and `[renew]` says which
//! of the nodes it issued are issued again. Pure: what the previous output
//! holds is read by the run.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::model::Plan;
use super::spec::ClusterSpec;
use super::validate::Problem;

/// The validated continuation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuing {
    /// `ceremony.previous` as the plan writes it (relative to the plan's directory).
    pub previous: PathBuf,
    /// `renew.all`: every node the previous ceremony issued.
    pub all: bool,
    /// `renew.nodes`, each once, in plan order.
    pub nodes: Vec<String>,
    /// `renew.rotate_service_account_key`.
    pub rotate_sa_key: bool,
    /// `ceremony.fork`: continue `previous` although it is not the token's
    /// latest ceremony.
    pub fork: bool,
}

/// What a continuing ceremony does with each node of the plan and of the
/// previous output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Issued before and issued again.
    pub renewed: Vec<String>,
    /// In the plan, never issued before.
    pub added: Vec<String>,
    /// Issued before and not written now.
    pub untouched: Vec<String>,
}

impl Selection {
    /// The nodes this ceremony writes.
    pub fn issued(&self) -> BTreeSet<String> {
        self.renewed.iter().chain(&self.added).cloned().collect()
    }
}

fn problem(path: &str, message: impl Into<String>, got: Option<String>) -> Problem {
    Problem {
        path: path.into(),
        message: message.into(),
        got,
    }
}

/// The rules of `ceremony.previous` and `[renew]`.
pub fn validate(
    plan: &Plan,
    cluster: Option<&ClusterSpec>,
    problems: &mut Vec<Problem>,
) -> Option<Continuing> {
    let previous = plan.ceremony.previous.as_ref();
    let Some(previous) = previous else {
        if plan.ceremony.fork {
            problems.push(problem(
                "ceremony.fork",
                "needs ceremony.previous: only a continuing ceremony forks the chain",
                Some("true".into()),
            ));
        }
        if plan.renew.is_some() {
            problems.push(problem(
                "renew",
                "needs ceremony.previous: the output of the ceremony this one continues",
                None,
            ));
        }
        return None;
    };
    if previous.as_os_str().is_empty() {
        problems.push(problem(
            "ceremony.previous",
            "must be the output directory of the ceremony this one continues",
            Some("\"\"".into()),
        ));
        return None;
    }
    let renew = plan.renew.clone().unwrap_or(super::model::RenewSection {
        all: false,
        nodes: Vec::new(),
        rotate_service_account_key: false,
    });
    let planned: Vec<&str> = cluster
        .map(|cl| {
            cl.control_plane
                .iter()
                .map(|n| n.name.as_str())
                .chain(cl.workers.iter().map(String::as_str))
                .collect()
        })
        .unwrap_or_default();
    // The nodes' CSRs renew their certificates; a new service-account pair
    // in CSR mode (the nodes' own, or made here, with the previous public
    // key beside it) is not supported yet.
    if renew.rotate_service_account_key && cluster.is_some_and(|cl| cl.mode == super::LeafMode::Csr)
    {
        problems.push(problem(
            "renew.rotate_service_account_key",
            "a rotation is made in leaves.mode = \"generate\" only: a CSR-mode continuing ceremony carries the pair",
            Some("true".into()),
        ));
    }
    if renew.all && !renew.nodes.is_empty() {
        problems.push(problem(
            "renew.nodes",
            "renew.all already renews every node: give one or the other",
            Some(format!("{:?}", renew.nodes)),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, n) in renew.nodes.iter().enumerate() {
        if !seen.insert(n.as_str()) {
            problems.push(problem(
                &format!("renew.nodes[{i}]"),
                "is named twice",
                Some(format!("{n:?}")),
            ));
        } else if !planned.contains(&n.as_str()) {
            problems.push(problem(
                &format!("renew.nodes[{i}]"),
                "is not a node of [cluster]: a renewed node keeps its entry in the plan",
                Some(format!("{n:?}")),
            ));
        }
    }
    // Every API server must sign with the new key: a rotation renews every
    // control-plane node.
    if renew.rotate_service_account_key && !renew.all {
        let missing: Vec<&str> = cluster
            .map(|cl| {
                cl.control_plane
                    .iter()
                    .map(|n| n.name.as_str())
                    .filter(|n| !renew.nodes.iter().any(|r| r == n))
                    .collect()
            })
            .unwrap_or_default();
        if !missing.is_empty() {
            problems.push(problem(
                "renew.rotate_service_account_key",
                format!(
                    "a rotation gives every control-plane node the new pair: renew {} too (or renew.all = true)",
                    missing.join(", ")
                ),
                Some("true".into()),
            ));
        }
    }
    // Plan order, each once.
    let nodes = planned
        .iter()
        .filter(|p| renew.nodes.iter().any(|n| n == *p))
        .map(|p| (*p).to_string())
        .collect();
    Some(Continuing {
        previous: previous.clone(),
        all: renew.all,
        nodes,
        rotate_sa_key: renew.rotate_service_account_key,
        fork: plan.ceremony.fork,
    })
}

/// Renewed, added and untouched nodes, from the plan and the nodes the
/// chain issued (the previous output's bundles and the nodes it left
/// untouched); Err names a node asked to be renewed that the chain never
/// issued (renewing is not adding by accident). Untouched: every node
/// issued before and not written now, so each output knows the whole chain.
pub fn select(
    c: &Continuing,
    cluster: Option<&ClusterSpec>,
    issued_before: &BTreeSet<String>,
) -> Result<Selection, String> {
    let planned: Vec<String> = cluster
        .map(|cl| {
            cl.control_plane
                .iter()
                .map(|n| n.name.clone())
                .chain(cl.workers.iter().cloned())
                .collect()
        })
        .unwrap_or_default();
    if let Some(n) = c.nodes.iter().find(|n| !issued_before.contains(*n)) {
        return Err(format!(
            "renew.nodes names \"{n}\", which no ceremony of the chain issued (no bundle in the previous output, not untouched there): a new node is added by naming it in [cluster] only"
        ));
    }
    let mut s = Selection::default();
    for n in &planned {
        if !issued_before.contains(n) {
            s.added.push(n.clone());
        } else if c.all || c.nodes.contains(n) {
            s.renewed.push(n.clone());
        }
    }
    let issued = s.issued();
    s.untouched = issued_before
        .iter()
        .filter(|n| !issued.contains(*n))
        .cloned()
        .collect();
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn demo_text() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/ceremony/plans/demo.toml"
        ))
        .unwrap()
    }

    fn check(extra_ceremony: &str, tail: &str) -> Result<Option<Continuing>, Vec<String>> {
        // Kubelet serving certificates off: a row may turn CSR mode on.
        let text = demo_text()
            .replacen("[ceremony]\n", &format!("[ceremony]\n{extra_ceremony}"), 1)
            .replace(
                "kubelet_serving_certs = true",
                "kubelet_serving_certs = false",
            )
            + tail;
        let raw = crate::plan::parse(&text).unwrap();
        let ctx = crate::plan::validate::Context {
            now: SystemTime::now(),
            worker_names_file: None,
        };
        match crate::plan::validate::validate(&raw, &ctx) {
            Ok(v) => Ok(v.continuing),
            Err(p) => Err(p.iter().map(ToString::to_string).collect()),
        }
    }

    #[test]
    fn a_founding_plan_continues_nothing() {
        assert_eq!(check("", ""), Ok(None));
    }

    #[test]
    fn only_a_continuing_plan_forks() {
        assert_eq!(
            check("fork = true\n", ""),
            Err(vec![
                "ceremony.fork: needs ceremony.previous: only a continuing ceremony forks the chain (got true)".into()
            ])
        );
        let c = check("previous = \"../c1\"\nfork = true\n", "");
        assert_eq!(c.map(|c| c.map(|c| c.fork)), Ok(Some(true)));
        let c = check("previous = \"../c1\"\n", "");
        assert_eq!(c.map(|c| c.map(|c| c.fork)), Ok(Some(false)));
    }

    #[test]
    fn renew_names_nodes_of_the_plan_once_and_needs_a_previous_ceremony() {
        let c = check(
            "previous = \"../c1\"\n",
            "\n[renew]\nnodes = [\"worker1\", \"cp1\"]\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.previous, PathBuf::from("../c1"));
        assert_eq!(c.nodes, ["cp1", "worker1"], "plan order");
        assert!(!c.all && !c.rotate_sa_key);
        assert_eq!(
            check("", "\n[renew]\nall = true\n"),
            Err(vec![
                "renew: needs ceremony.previous: the output of the ceremony this one continues"
                    .into()
            ])
        );
        assert_eq!(
            check(
                "previous = \"../c1\"\n",
                "\n[renew]\nnodes = [\"cp9\", \"cp1\", \"cp1\"]\n"
            ),
            Err(vec![
                "renew.nodes[0]: is not a node of [cluster]: a renewed node keeps its entry in the plan (got \"cp9\")".into(),
                "renew.nodes[2]: is named twice (got \"cp1\")".into(),
            ])
        );
        assert_eq!(
            check(
                "previous = \"../c1\"\n",
                "\n[renew]\nall = true\nnodes = [\"cp1\"]\n"
            ),
            Err(vec![
                "renew.nodes: renew.all already renews every node: give one or the other (got [\"cp1\"])".into()
            ])
        );
        assert_eq!(
            check(
                "previous = \"../c1\"\n",
                "\n[renew]\nnodes = [\"cp1\"]\nrotate_service_account_key = true\n"
            ),
            Err(vec![
                "renew.rotate_service_account_key: a rotation gives every control-plane node the new pair: renew cp2, cp3 too (or renew.all = true) (got true)".into()
            ])
        );
        assert_eq!(
            check("previous = \"\"\n", ""),
            Err(vec![
                "ceremony.previous: must be the output directory of the ceremony this one continues (got \"\")".into()
            ])
        );
    }

    #[test]
    fn a_csr_mode_plan_continues_and_carries_the_pair() {
        let csr = "\n[leaves]\nmode = \"csr\"\ncsr_dir = \"csrs\"\n";
        let c = check(
            "previous = \"../c1\"\n",
            &format!("{csr}\n[renew]\nnodes = [\"cp1\"]\n"),
        );
        assert_eq!(c.map(|c| c.map(|c| c.nodes)), Ok(Some(vec!["cp1".into()])));
        assert_eq!(
            check(
                "previous = \"../c1\"\n",
                &format!("{csr}\n[renew]\nall = true\nrotate_service_account_key = true\n"),
            ),
            Err(vec![
                "renew.rotate_service_account_key: a rotation is made in leaves.mode = \"generate\" only: a CSR-mode continuing ceremony carries the pair (got true)".into()
            ])
        );
    }

    fn continuing(all: bool, nodes: &[&str]) -> Continuing {
        Continuing {
            previous: "c1".into(),
            all,
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            rotate_sa_key: false,
            fork: false,
        }
    }

    #[test]
    fn a_selection_renews_what_is_asked_adds_what_is_new_and_leaves_the_rest() {
        let loaded = crate::plan::load(
            std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/ceremony/plans/demo.toml"
            )),
            SystemTime::now(),
        )
        .unwrap();
        let mut cl = loaded.plan.cluster.unwrap();
        cl.workers.push("worker3".into());
        let before: BTreeSet<String> = ["cp1", "cp2", "cp3", "worker1", "worker2", "gone"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = select(&continuing(false, &["cp1"]), Some(&cl), &before).unwrap();
        assert_eq!(s.renewed, ["cp1"]);
        assert_eq!(s.added, ["worker3"]);
        assert_eq!(s.untouched, ["cp2", "cp3", "gone", "worker1", "worker2"]);
        let s = select(&continuing(true, &[]), Some(&cl), &before).unwrap();
        assert_eq!(s.renewed, ["cp1", "cp2", "cp3", "worker1", "worker2"]);
        assert_eq!(s.untouched, ["gone"]);
        let e = select(&continuing(false, &["worker3"]), Some(&cl), &before).unwrap_err();
        assert_eq!(
            e,
            "renew.nodes names \"worker3\", which no ceremony of the chain issued (no bundle in the previous output, not untouched there): a new node is added by naming it in [cluster] only"
        );
    }
}
