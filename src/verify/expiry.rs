//! What expires, across a chain of ceremonies: `ceremony inspect OUT...
//! --expiring W` and `--renewal-plan`.
//!
//! A continuing ceremony writes only the nodes it renews or adds; the
//! others' bundles stay in the outputs before it. So the certificates in
//! use are, for each node (and each user kubeconfig), those of the newest
//! output that holds it. Pure: inventories of the outputs (oldest first)
//! and `now` in, the merged view, what falls within a window, and a
//! renewal plan out.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::inspect::{Inventory, NodeInventory, Row};
use super::{Input, Layout};
use crate::bundle::layout;
use crate::fmt::{kubeadm_time, rfc3339};
use crate::plan::duration::format_lifetime;

/// What `continuation.json` says that the merge needs; other keys are
/// ignored, so a later writer may add some.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ContinuationFile {
    pub previous: PreviousRef,
    #[serde(default)]
    pub renewed: Vec<String>,
    #[serde(default)]
    pub added: Vec<String>,
    #[serde(default)]
    pub untouched: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct PreviousRef {
    /// SHA-256 of the previous output's SHA256SUMS: what links the two.
    pub sha256sums_sha256: String,
}

/// One directory given, inventoried.
#[derive(Debug, Clone)]
pub struct Given {
    /// The directory as given on the command line.
    pub label: String,
    /// A ceremony output (not one node's etc/kubernetes).
    pub is_out: bool,
    pub inventory: Inventory,
    /// SHA-256 (hex) of its SHA256SUMS, if it has one.
    pub sums_sha256: Option<String>,
    /// Its continuation.json (None: a founding ceremony, or a node).
    pub continuation: Option<ContinuationFile>,
}

/// Why the directories given are not one chain to merge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error(
        "{label}: one node's directory; with several directories, give each ceremony's output (OUT)"
    )]
    NotAnOutput { label: String },
    #[error("{label}/{}: {what}", layout::CONTINUATION)]
    BadContinuation { label: String, what: String },
    #[error("{later} does not continue {earlier}: {why}")]
    NotContinuing {
        later: String,
        earlier: String,
        why: String,
    },
}

impl Given {
    /// Inventories `input` (read from the directory `label`).
    pub fn new(label: &str, input: &Input, now: SystemTime) -> Result<Given, ChainError> {
        let tree = &input.tree;
        let continuation = tree
            .file(layout::CONTINUATION)
            .map(|b| {
                serde_json::from_slice::<ContinuationFile>(b).map_err(|e| {
                    ChainError::BadContinuation {
                        label: label.to_string(),
                        what: format!("not a continuation record ({e})"),
                    }
                })
            })
            .transpose()?;
        Ok(Given {
            label: label.trim_end_matches('/').to_string(),
            is_out: input.layout == Layout::Out,
            inventory: super::inspect::inventory(input, now),
            sums_sha256: tree
                .file(layout::SHA256SUMS)
                .map(|b| hex::encode(crate::x509::sha256(b))),
            continuation,
        })
    }
}

/// The newest view of a chain.
#[derive(Debug, Clone)]
pub struct Merged {
    /// Each node and user from the newest output holding it; with several
    /// outputs every path starts with its output's directory.
    pub inventory: Inventory,
    /// The directory given last (the next ceremony's `ceremony.previous`).
    pub newest: String,
    /// The nodes the next ceremony's `[renew]` may name: those the newest
    /// output holds and those it left untouched (its continuation.json).
    pub newest_nodes: BTreeSet<String>,
    /// Nodes the chain says exist (left untouched by a ceremony given)
    /// whose bundle is in no directory given: an earlier output is missing.
    pub not_given: Vec<String>,
}

fn prefixed(label: &str, rel: &str, several: bool) -> String {
    match (several, rel.is_empty()) {
        (false, _) => rel.to_string(),
        (true, true) => label.to_string(),
        (true, false) => format!("{label}/{rel}"),
    }
}

fn prefix_row(mut r: Row, label: &str, several: bool) -> Row {
    r.file = prefixed(label, &r.file, several);
    r
}

fn prefix_node(mut n: NodeInventory, label: &str, several: bool) -> NodeInventory {
    n.path = prefixed(label, &n.path, several);
    n.certificates = n
        .certificates
        .into_iter()
        .map(|r| prefix_row(r, label, several))
        .collect();
    n.authorities = n
        .authorities
        .into_iter()
        .map(|r| prefix_row(r, label, several))
        .collect();
    n
}

/// Merges outputs given oldest first: each after the first must continue
/// the one before it (its continuation.json names the SHA-256 of that
/// one's SHA256SUMS); a later output's nodes and users supersede the
/// earlier ones'; the CAs are the newest output's.
pub fn merge(given: Vec<Given>) -> Result<Merged, ChainError> {
    let several = given.len() > 1;
    if several && let Some(g) = given.iter().find(|g| !g.is_out) {
        return Err(ChainError::NotAnOutput {
            label: g.label.clone(),
        });
    }
    for pair in given.windows(2) {
        let [earlier, later] = pair else { continue };
        let why = match (&later.continuation, &earlier.sums_sha256) {
            (None, _) => Some(format!(
                "it has no {} (a founding ceremony); give the outputs oldest first",
                layout::CONTINUATION
            )),
            (Some(_), None) => Some(format!("{} has no {}", earlier.label, layout::SHA256SUMS)),
            (Some(c), Some(sums)) if c.previous.sha256sums_sha256 != *sums => Some(format!(
                "it continues the output whose {} has SHA-256 {}, and {}'s is {sums}; give the outputs oldest first, each the one the next continues",
                layout::SHA256SUMS,
                c.previous.sha256sums_sha256,
                earlier.label
            )),
            _ => None,
        };
        if let Some(why) = why {
            return Err(ChainError::NotContinuing {
                later: later.label.clone(),
                earlier: earlier.label.clone(),
                why,
            });
        }
    }
    let newest = given.last().map(|g| g.label.clone()).unwrap_or_default();
    let mut authorities = Vec::new();
    let mut now = String::new();
    let mut nodes: BTreeMap<String, NodeInventory> = BTreeMap::new();
    let mut unnamed = Vec::new();
    let mut users: BTreeMap<String, Row> = BTreeMap::new();
    let mut said: BTreeSet<String> = BTreeSet::new();
    let mut newest_nodes = BTreeSet::new();
    for g in given {
        let label = g.label;
        if let Some(c) = &g.continuation {
            said.extend(c.untouched.iter().cloned());
        }
        now = g.inventory.now;
        authorities = g
            .inventory
            .authorities
            .into_iter()
            .map(|r| prefix_row(r, &label, several))
            .collect();
        newest_nodes = g
            .inventory
            .nodes
            .iter()
            .filter_map(|n| n.node.clone())
            .chain(g.continuation.iter().flat_map(|c| c.untouched.clone()))
            .collect();
        for n in g.inventory.nodes {
            let n = prefix_node(n, &label, several);
            match n.node.clone() {
                Some(name) => {
                    nodes.insert(name, n);
                }
                None => unnamed.push(n),
            }
        }
        for u in g.inventory.users {
            users.insert(u.name.clone(), prefix_row(u, &label, several));
        }
    }
    let not_given = said
        .into_iter()
        .filter(|n| !nodes.contains_key(n))
        .collect();
    Ok(Merged {
        inventory: Inventory {
            now,
            authorities,
            nodes: nodes.into_values().chain(unnamed).collect(),
            users: users.into_values().collect(),
        },
        newest,
        newest_nodes,
        not_given,
    })
}

/// One certificate that expires within the window (or whose expiry
/// cannot be read).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Due {
    /// The node it belongs to; None for the ceremony's CAs and users.
    pub node: Option<String>,
    /// kubeadm's name ("apiserver", "admin.conf", "ca") or the user's.
    pub name: String,
    pub file: String,
    pub expires: Option<String>,
    /// Seconds from now (negative: already expired).
    pub residual_seconds: Option<i64>,
    /// Why its expiry is unknown ("missing", unreadable): counted as due,
    /// since a monitor must not stay quiet about it.
    pub problem: Option<String>,
    #[serde(skip)]
    pub not_after: Option<SystemTime>,
}

fn due_of(node: Option<&str>, r: &Row, until: SystemTime) -> Option<Due> {
    let within = match (r.not_after, &r.problem) {
        (_, Some(_)) | (None, _) => true,
        (Some(t), None) => t <= until,
    };
    within.then(|| Due {
        node: node.map(str::to_string),
        name: r.name.clone(),
        file: r.file.clone(),
        expires: r.expires.clone(),
        residual_seconds: r.residual_seconds,
        problem: r.problem.clone(),
        not_after: r.not_after,
    })
}

/// Every certificate of the view (the ceremony's CAs, each node's leaves,
/// kubeconfigs and CA files, each user's kubeconfig) that expires at or
/// before `now + window`, soonest first.
pub fn expiring(inv: &Inventory, now: SystemTime, window: Duration) -> Vec<Due> {
    let until = now + window;
    let mut out: Vec<Due> = inv
        .authorities
        .iter()
        .filter_map(|r| due_of(None, r, until))
        .collect();
    for n in &inv.nodes {
        for r in n.certificates.iter().chain(&n.authorities) {
            out.extend(due_of(n.node.as_deref(), r, until));
        }
    }
    out.extend(inv.users.iter().filter_map(|r| due_of(None, r, until)));
    // Unknown expiries first, then the soonest.
    out.sort_by(|a, b| {
        (a.not_after.is_some(), a.not_after, &a.file).cmp(&(
            b.not_after.is_some(),
            b.not_after,
            &b.file,
        ))
    });
    out
}

fn in_words(secs: i64) -> String {
    if secs < 0 {
        format!("expired {} ago", super::inspect::short_human(-secs))
    } else {
        format!("in {}", super::inspect::short_human(secs))
    }
}

/// The `--expiring` report: one line per certificate, then a summary.
pub fn render_expiring(due: &[Due], window: Duration, now: SystemTime) -> String {
    let mut out = String::new();
    for d in due {
        let node = d
            .node
            .as_ref()
            .map(|n| format!(" (node {n})"))
            .unwrap_or_default();
        match (&d.problem, d.not_after, d.residual_seconds) {
            (Some(p), _, _) => out.push_str(&format!(
                "{}: {}{node}: expiry unknown: {p}\n",
                d.file, d.name
            )),
            (None, Some(t), Some(s)) => out.push_str(&format!(
                "{}: {}{node}: expires {} ({})\n",
                d.file,
                d.name,
                kubeadm_time(t),
                in_words(s)
            )),
            _ => out.push_str(&format!("{}: {}{node}\n", d.file, d.name)),
        }
    }
    let until = kubeadm_time(now + window);
    if due.is_empty() {
        out.push_str(&format!(
            "OK: no certificate expires within {} (before {until})\n",
            format_lifetime(window)
        ));
    } else {
        out.push_str(&format!(
            "EXPIRING: {} certificate{} within {} (before {until})\n",
            due.len(),
            if due.len() == 1 { "" } else { "s" },
            format_lifetime(window)
        ));
    }
    out
}

/// `--expiring --json`.
#[derive(Debug, Serialize)]
pub struct ExpiringReport<'a> {
    pub now: String,
    pub window: String,
    pub until: String,
    pub outputs: &'a [String],
    pub expiring: &'a [Due],
}

/// One node of the renewal plan.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NodePlan {
    pub node: String,
    pub role: super::Role,
    /// Where its bundle in use is (the newest output holding it).
    pub bundle: String,
    pub earliest_expiry: Option<String>,
    /// The latest day to hold the ceremony that renews it: the lead time
    /// before its earliest expiry.
    pub hold_ceremony_by: Option<String>,
    /// Its hold-by day has come (or an expiry cannot be read).
    pub due_now: bool,
    /// Named in the next ceremony's `[renew]`.
    pub renew_next: bool,
    /// Its certificate files (a renewal replaces each, with its key), soonest first.
    pub files: Vec<String>,
    #[serde(skip)]
    pub earliest: Option<SystemTime>,
    #[serde(skip)]
    pub hold: Option<SystemTime>,
}

/// `--renewal-plan`: which nodes to renew at the next ceremony, by when.
#[derive(Debug, Clone, Serialize)]
pub struct RenewalPlan {
    pub now: String,
    /// The lead time: how long before an expiry the ceremony is held.
    pub lead: String,
    /// The output the next plan continues (its `ceremony.previous`).
    pub previous: String,
    /// The earliest hold-by day of the nodes (None: no node).
    pub next_ceremony_by: Option<String>,
    /// Every node, soonest expiry first.
    pub nodes: Vec<NodePlan>,
    /// The nodes for `[renew] nodes`: due, and known to the newest output
    /// (its bundles, or left untouched there: renewed directly either way).
    pub renew: Vec<String>,
    /// Every node the chain issued is renewed (`[renew] all = true` says the same).
    pub all: bool,
    /// CA and user certificates within the lead time of the next ceremony:
    /// a continuing ceremony renews neither by `[renew]` (users: keep them
    /// in `[[users]]`; CAs: a new hierarchy).
    pub others: Vec<Due>,
    /// The `[renew]` section (with its `ceremony.previous`) to review into the next plan.
    pub snippet: String,
}

/// The renewal plan of a merged view. A node is renewed at the next
/// ceremony when its earliest expiry falls within `lead` of the first
/// expiry (or of now, if that has passed): leaving it out would need
/// another ceremony within the lead time.
pub fn renewal_plan(m: &Merged, now: SystemTime, lead: Duration) -> RenewalPlan {
    let mut nodes: Vec<NodePlan> = m
        .inventory
        .nodes
        .iter()
        .map(|n| {
            let mut rows: Vec<&Row> = n.certificates.iter().collect();
            rows.sort_by_key(|r| (r.not_after.is_some(), r.not_after));
            let unknown = rows.iter().any(|r| r.not_after.is_none());
            let earliest = rows.iter().filter_map(|r| r.not_after).min();
            let hold = earliest.map(|t| t.checked_sub(lead).unwrap_or(t));
            NodePlan {
                node: n.node.clone().unwrap_or_else(|| "(unnamed)".into()),
                role: n.role,
                bundle: n.path.clone(),
                earliest_expiry: earliest.map(rfc3339),
                hold_ceremony_by: hold.map(rfc3339),
                due_now: unknown || hold.is_some_and(|h| h <= now),
                renew_next: false,
                files: rows.iter().map(|r| r.file.clone()).collect(),
                earliest,
                hold,
            }
        })
        .collect();
    nodes.sort_by(|a, b| (!a.due_now, a.earliest, &a.node).cmp(&(!b.due_now, b.earliest, &b.node)));
    let first = nodes.iter().filter_map(|n| n.earliest).min();
    let cut = first.map(|f| f.max(now) + lead);
    for n in &mut nodes {
        n.renew_next = n.due_now || matches!((n.earliest, cut), (Some(e), Some(c)) if e <= c);
    }
    let renew: Vec<String> = nodes
        .iter()
        .filter(|n| n.renew_next && m.newest_nodes.contains(&n.node))
        .map(|n| n.node.clone())
        .collect();
    let all = !renew.is_empty() && renew.len() == m.newest_nodes.len();
    let next_by = first.map(|f| f.checked_sub(lead).unwrap_or(f));
    let window = cut.map_or(lead, |c| c.duration_since(now).unwrap_or_default());
    let mut others: Vec<Due> = m
        .inventory
        .authorities
        .iter()
        .chain(&m.inventory.users)
        .filter_map(|r| due_of(None, r, now + window))
        .collect();
    others.sort_by_key(|d| d.not_after);
    let snippet = snippet(&m.newest, next_by, lead, &renew, all);
    RenewalPlan {
        now: rfc3339(now),
        lead: format_lifetime(lead),
        previous: m.newest.clone(),
        next_ceremony_by: next_by.map(rfc3339),
        nodes,
        renew,
        all,
        others,
        snippet,
    }
}

fn snippet(
    previous: &str,
    by: Option<SystemTime>,
    lead: Duration,
    renew: &[String],
    all: bool,
) -> String {
    let mut s = String::new();
    if let Some(by) = by {
        s.push_str(&format!(
            "# Hold this ceremony by {} ({} before the first expiry).\n",
            kubeadm_time(by),
            format_lifetime(lead)
        ));
    }
    s.push_str(&format!(
        "# In [ceremony]: previous = {previous:?} (the newest output; as a path from the new plan's directory)\n"
    ));
    s.push_str("[renew]\n");
    let quoted: Vec<String> = renew.iter().map(|n| format!("{n:?}")).collect();
    s.push_str(&format!("nodes = [{}]\n", quoted.join(", ")));
    if all {
        s.push_str(
            "# (every node the chain issued: `all = true` instead of `nodes` says the same)\n",
        );
    }
    s
}

/// The renewal plan as text.
pub fn render_renewal_plan(p: &RenewalPlan) -> String {
    let mut out = format!(
        "Renewal plan from {} (lead time {}: a node's ceremony is held that long before its first certificate expires)\n\n",
        p.previous, p.lead
    );
    if p.nodes.is_empty() {
        out.push_str("No node in the outputs given.\n");
    }
    for n in &p.nodes {
        let when = match (n.earliest, n.hold) {
            (Some(e), Some(h)) => format!(
                "first expiry {}, hold the ceremony by {}",
                kubeadm_time(e),
                kubeadm_time(h)
            ),
            _ => "an expiry cannot be read".into(),
        };
        let mark = match (n.due_now, n.renew_next) {
            (true, _) => "  DUE NOW",
            (false, true) => "  renew next",
            (false, false) => "",
        };
        out.push_str(&format!(
            "node {} ({}): {when}{mark}\n  bundle: {}\n",
            n.node,
            n.role.name(),
            n.bundle
        ));
        for f in &n.files {
            out.push_str(&format!("    {f}\n"));
        }
    }
    for d in &p.others {
        let what = if d.name.ends_with("-ca") || d.name == "root-ca" {
            "a CA: a continuing ceremony does not renew it"
        } else {
            "a user kubeconfig: renewed by keeping the user in [[users]]"
        };
        let when = d
            .not_after
            .map(kubeadm_time)
            .unwrap_or_else(|| "expiry unknown".into());
        out.push_str(&format!("note: {} expires {when} ({what})\n", d.file));
    }
    if !p.renew.is_empty() {
        out.push_str("\nFor the next plan (review it; docs/plan.md, continuing ceremonies):\n\n");
        out.push_str(&p.snippet);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Role;
    use std::time::UNIX_EPOCH;

    const DAY: u64 = 86400;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn row(name: &str, file: &str, days: Option<u64>) -> Row {
        let t = days.map(|d| now() + Duration::from_secs(d * DAY));
        Row {
            name: name.into(),
            file: file.into(),
            subject: None,
            expires: t.map(rfc3339),
            residual: None,
            residual_seconds: t.map(|t| crate::fmt::unix(t) - crate::fmt::unix(now())),
            authority: Some("ca".into()),
            externally_managed: true,
            problem: if days.is_none() {
                Some("missing".into())
            } else {
                None
            },
            not_after: t,
        }
    }

    fn node(name: &str, days: u64) -> NodeInventory {
        let base = format!("nodes/{name}/etc/kubernetes");
        NodeInventory {
            node: Some(name.into()),
            role: if name.starts_with("cp") {
                Role::ControlPlane
            } else {
                Role::Worker
            },
            path: base.clone(),
            certificates: vec![
                row("kubelet.conf", &format!("{base}/kubelet.conf"), Some(days)),
                row(
                    "apiserver",
                    &format!("{base}/pki/apiserver.crt"),
                    Some(days + 1),
                ),
            ],
            authorities: vec![row("ca", &format!("{base}/pki/ca.crt"), Some(3650))],
        }
    }

    fn output(label: &str, nodes: Vec<NodeInventory>, cont: Option<(&str, &[&str])>) -> Given {
        Given {
            label: label.into(),
            is_out: true,
            inventory: Inventory {
                now: rfc3339(now()),
                authorities: vec![row("root-ca", "root-ca.crt", Some(7300))],
                nodes,
                users: vec![row("alice", "users/alice.conf", Some(300))],
            },
            sums_sha256: Some(format!("sums-of-{label}")),
            continuation: cont.map(|(prev, untouched)| ContinuationFile {
                previous: PreviousRef {
                    sha256sums_sha256: format!("sums-of-{prev}"),
                },
                renewed: Vec::new(),
                added: Vec::new(),
                untouched: untouched.iter().map(|s| s.to_string()).collect(),
            }),
        }
    }

    fn c1() -> Given {
        output(
            "c1",
            vec![node("cp1", 30), node("cp2", 30), node("w1", 30)],
            None,
        )
    }

    #[test]
    fn a_later_output_supersedes_the_nodes_it_holds() {
        let c2 = output(
            "c2",
            vec![node("cp1", 400), node("w3", 400)],
            Some(("c1", &["cp2", "w1"])),
        );
        let m = merge(vec![c1(), c2]).unwrap();
        let where_: Vec<(String, String)> = m
            .inventory
            .nodes
            .iter()
            .map(|n| (n.node.clone().unwrap(), n.path.clone()))
            .collect();
        assert_eq!(
            where_,
            [
                ("cp1".into(), "c2/nodes/cp1/etc/kubernetes".into()),
                ("cp2".into(), "c1/nodes/cp2/etc/kubernetes".into()),
                ("w1".into(), "c1/nodes/w1/etc/kubernetes".into()),
                ("w3".into(), "c2/nodes/w3/etc/kubernetes".into()),
            ]
        );
        assert_eq!(m.inventory.authorities[0].file, "c2/root-ca.crt");
        assert_eq!(m.inventory.users[0].file, "c2/users/alice.conf");
        assert_eq!(m.newest, "c2");
        assert!(m.not_given.is_empty());

        // Within 60 days: c1's cp2 and w1 (kubelet.conf and apiserver), not cp1's renewed certificates.
        let due = expiring(&m.inventory, now(), Duration::from_secs(60 * DAY));
        let files: Vec<&str> = due.iter().map(|d| d.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "c1/nodes/cp2/etc/kubernetes/kubelet.conf",
                "c1/nodes/w1/etc/kubernetes/kubelet.conf",
                "c1/nodes/cp2/etc/kubernetes/pki/apiserver.crt",
                "c1/nodes/w1/etc/kubernetes/pki/apiserver.crt",
            ]
        );
        assert_eq!(due[0].node.as_deref(), Some("cp2"));
        assert!(expiring(&m.inventory, now(), Duration::from_secs(10 * DAY)).is_empty());
    }

    #[test]
    fn one_output_keeps_its_paths_and_names_nodes_left_in_earlier_outputs() {
        let m = merge(vec![c1()]).unwrap();
        assert_eq!(m.inventory.nodes[0].path, "nodes/cp1/etc/kubernetes");
        assert_eq!(m.inventory.authorities[0].file, "root-ca.crt");
        let c2 = output("c2", vec![node("cp1", 400)], Some(("c1", &["cp2", "w1"])));
        let m = merge(vec![c2]).unwrap();
        assert_eq!(m.not_given, ["cp2", "w1"]);
    }

    #[test]
    fn the_outputs_must_be_a_chain_oldest_first() {
        let c2 = || output("c2", vec![node("cp1", 400)], Some(("c1", &["cp2", "w1"])));
        let e = merge(vec![c2(), c1()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "c1 does not continue c2: it has no continuation.json (a founding ceremony); give the outputs oldest first"
        );
        let c3 = output("c3", vec![node("cp2", 400)], Some(("c2", &["cp1", "w1"])));
        let e = merge(vec![c1(), c3]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "c3 does not continue c1: it continues the output whose SHA256SUMS has SHA-256 sums-of-c2, and c1's is sums-of-c1; give the outputs oldest first, each the one the next continues"
        );
        let mut n = c1();
        n.is_out = false;
        n.label = "etc/kubernetes".into();
        let e = merge(vec![n, c2()]).unwrap_err();
        assert!(matches!(e, ChainError::NotAnOutput { .. }), "{e}");
    }

    #[test]
    fn the_window_includes_its_end_expired_and_unreadable_certificates() {
        let mut inv = c1().inventory;
        inv.nodes[0].certificates.push(row(
            "admin.conf",
            "nodes/cp1/etc/kubernetes/admin.conf",
            None,
        ));
        let due = expiring(&inv, now(), Duration::from_secs(30 * DAY));
        assert_eq!(due[0].problem.as_deref(), Some("missing"), "unknown first");
        assert_eq!(
            due.len(),
            4,
            "three kubelet.conf at exactly 30d and the missing one: {due:#?}"
        );
        let text = render_expiring(&due, Duration::from_secs(30 * DAY), now());
        assert!(text.contains("nodes/cp1/etc/kubernetes/admin.conf: admin.conf (node cp1): expiry unknown: missing\n"), "{text}");
        assert!(
            text.contains(
                "nodes/cp2/etc/kubernetes/kubelet.conf: kubelet.conf (node cp2): expires "
            ),
            "{text}"
        );
        assert!(
            text.ends_with("EXPIRING: 4 certificates within 30d (before Feb 14, 2027 08:00 UTC)\n"),
            "{text}"
        );
        // A CA past the window is counted; users too.
        let due = expiring(&inv, now(), Duration::from_secs(8000 * DAY));
        assert!(due.iter().any(|d| d.file == "root-ca.crt"));
        assert!(due.iter().any(|d| d.file == "users/alice.conf"));
        assert_eq!(
            render_expiring(&[], Duration::from_secs(10 * DAY), now()),
            "OK: no certificate expires within 10d (before Jan 25, 2027 08:00 UTC)\n"
        );
    }

    #[test]
    fn the_renewal_plan_groups_what_expires_within_the_lead_of_the_first() {
        let c2 = output(
            "c2",
            vec![node("cp1", 400), node("w3", 420)],
            Some(("c1", &["cp2", "w1"])),
        );
        let mut first = c1();
        first.inventory.nodes[2] = node("w1", 80);
        let m = merge(vec![first, c2]).unwrap();
        let p = renewal_plan(&m, now(), Duration::from_secs(60 * DAY));
        let order: Vec<(&str, bool, bool)> = p
            .nodes
            .iter()
            .map(|n| (n.node.as_str(), n.due_now, n.renew_next))
            .collect();
        assert_eq!(
            order,
            [
                ("cp2", true, true),
                ("w1", false, true),
                ("cp1", false, false),
                ("w3", false, false)
            ]
        );
        // cp2 and w1 are due; c2 left them untouched, so a ceremony
        // continuing c2 renews them by name, as the nodes c2 holds.
        assert_eq!(p.renew, ["cp2", "w1"]);
        assert!(!p.all);
        assert_eq!(p.previous, "c2");
        assert_eq!(
            p.nodes[0].files,
            [
                "c1/nodes/cp2/etc/kubernetes/kubelet.conf",
                "c1/nodes/cp2/etc/kubernetes/pki/apiserver.crt"
            ]
        );
        // cp2 expires in 30 days: its ceremony was due 30 days ago.
        assert_eq!(
            p.next_ceremony_by,
            Some(rfc3339(now() - Duration::from_secs(30 * DAY)))
        );
        assert!(p.snippet.contains("previous = \"c2\""), "{}", p.snippet);
        assert!(
            p.snippet
                .ends_with("\n[renew]\nnodes = [\"cp2\", \"w1\"]\n"),
            "{}",
            p.snippet
        );
        assert!(!p.snippet.contains("added"), "{}", p.snippet);
        // The snippet is a [renew] section the plan parser accepts.
        let section: toml::Table = toml::from_str(&p.snippet).unwrap();
        assert_eq!(
            section["renew"]["nodes"],
            toml::Value::Array(vec!["cp2".into(), "w1".into()])
        );
        // A node the newest output does not know (neither held nor left
        // untouched there) cannot be named.
        let forgetful = output(
            "c2",
            vec![node("cp1", 400), node("w3", 420)],
            Some(("c1", &["cp2"])),
        );
        let mut first = c1();
        first.inventory.nodes[2] = node("w1", 80);
        let p = renewal_plan(
            &merge(vec![first, forgetful]).unwrap(),
            now(),
            Duration::from_secs(60 * DAY),
        );
        assert_eq!(p.renew, ["cp2"]);

        // Due, held by the newest output or left untouched there: named alike.
        let c2 = output(
            "c2",
            vec![node("cp1", 50), node("w3", 420)],
            Some(("c1", &["cp2", "w1"])),
        );
        let p = renewal_plan(
            &merge(vec![c1(), c2]).unwrap(),
            now(),
            Duration::from_secs(60 * DAY),
        );
        assert_eq!(p.renew, ["cp2", "w1", "cp1"]);
        assert!(!p.all, "w3 is not due");
        let text = render_renewal_plan(&p);
        assert!(
            text.contains("node cp2 (control-plane): first expiry "),
            "{text}"
        );
        assert!(text.contains("  DUE NOW\n  bundle: c1/nodes/cp2/etc/kubernetes\n    c1/nodes/cp2/etc/kubernetes/kubelet.conf\n"), "{text}");
        assert!(
            text.ends_with("\n[renew]\nnodes = [\"cp2\", \"w1\", \"cp1\"]\n"),
            "{text}"
        );

        // Every node of the chain due, untouched ones included: `all` said too.
        let c2 = output(
            "c2",
            vec![node("cp1", 20), node("w3", 20)],
            Some(("c1", &["cp2", "w1"])),
        );
        let p = renewal_plan(
            &merge(vec![c1(), c2]).unwrap(),
            now(),
            Duration::from_secs(60 * DAY),
        );
        assert_eq!(p.renew, ["cp1", "w3", "cp2", "w1"]);
        assert!(p.all);
        assert!(
            p.snippet.contains(
                "# (every node the chain issued: `all = true` instead of `nodes` says the same)\n"
            ),
            "{}",
            p.snippet
        );

        // Everything renewed: `all` said too.
        let p = renewal_plan(
            &merge(vec![c1()]).unwrap(),
            now(),
            Duration::from_secs(60 * DAY),
        );
        assert!(p.all);
        assert!(p.snippet.contains("all = true"));
    }
}
