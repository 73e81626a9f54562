//! The numbered steps of `ceremony run`, written in one place: `check` prints
//! them, the preflight screen lists them with what the token already holds,
//! and the run announces each as it reaches it, so the numbers and words of
//! the three always agree (and docs/runbook.md §4 follows them).
//!
//! Pure: the plan and what is known of the token come in, text goes out.

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::AtomicUsize;

use crate::plan::{CaRole, CaSpec, LeafMode, LoadedPlan};
use crate::token::TokenIdentity;

/// What the run has done so far, for the one line a cancelled run ends with.
#[derive(Debug, Default)]
pub struct Progress {
    /// The step the run is at.
    pub at: Cell<Option<Step>>,
    pub keys_generated: Cell<usize>,
    pub ca_certificates_signed: Cell<usize>,
    /// Counted on the leaf workers' sessions too.
    pub leaves_signed: AtomicUsize,
    /// CAs ready (made or found), in plan order.
    pub cas_ready: Cell<usize>,
}

impl Progress {
    /// Whether this run has generated a key or signed anything on the token.
    pub fn wrote_to_token(&self) -> bool {
        self.keys_generated.get() > 0
            || self.ca_certificates_signed.get() > 0
            || self
                .leaves_signed
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
    }
}

/// One step of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Open the module, find and lock the token.
    Open,
    /// Log in, check the mechanisms.
    Login,
    /// Make (or reuse) one CA: key and certificate.
    Ca(CaRole),
    /// Leaf keys and certificates into the staging directory.
    Leaves,
    /// Seal the audit log, commit the output.
    Seal,
}

/// What the token already holds under a CA's label (learnt after login).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Nothing,
    Key,
    KeyAndCertificate,
    /// A CA the plan delegates: the token holds nothing of it, ever.
    Delegated,
}

impl Found {
    pub fn describe(self) -> &'static str {
        match self {
            Found::Nothing => "nothing yet: key and certificate will be made",
            Found::Key => "the key (reused); its certificate will be signed",
            Found::KeyAndCertificate => "key and certificate (both reused)",
            Found::Delegated => {
                "nothing: delegated, its key is held by the control-plane nodes; the root signs their request"
            }
        }
    }
}

/// What is known when a step's text is written: nothing of the token
/// (`check`), or the token and what it holds under each CA's label (the
/// preflight screen and the run).
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    pub token: Option<&'a TokenIdentity>,
    /// Per CA, in the plan's order (root first).
    pub found: Option<&'a [Found]>,
}

/// Every step, in order.
pub fn all(p: &LoadedPlan) -> Vec<Step> {
    let mut v = vec![Step::Open, Step::Login];
    v.extend(p.plan.cas.iter().map(|c| Step::Ca(c.role)));
    v.extend([Step::Leaves, Step::Seal]);
    v
}

/// The number of steps (the N of `[n/N]`).
pub fn count(p: &LoadedPlan) -> usize {
    all(p).len()
}

/// The 1-based number of a step.
pub fn number(p: &LoadedPlan, step: Step) -> usize {
    all(p).iter().position(|s| *s == step).map_or(0, |i| i + 1)
}

/// `[n/N]`.
pub fn tag(p: &LoadedPlan, step: Step) -> String {
    format!("[{}/{}]", number(p, step), count(p))
}

fn key_types(p: &LoadedPlan) -> String {
    let mut kts: Vec<&str> = p.plan.cas.iter().map(|c| c.key.name()).collect();
    kts.sort();
    kts.dedup();
    kts.join(", ")
}

/// `root key` / `kubernetes CA key`.
fn key_name(spec: &CaSpec) -> String {
    match spec.role {
        CaRole::Root => "root key".into(),
        r => format!("{} CA key", r.name()),
    }
}

/// What the step does, in the words the screen shows.
pub fn text(p: &LoadedPlan, module: &Path, out: &Path, step: Step, known: Known<'_>) -> String {
    let plan = &p.plan;
    match step {
        Step::Open => format!(
            "Open the module {}, find the one token matching {} and lock it",
            module.display(),
            plan.token_uri
        ),
        Step::Login => format!(
            "Log in to the token and check it can generate and sign with {}, before anything is generated",
            key_types(p)
        ),
        Step::Ca(role) => {
            let Some((i, spec)) = plan.cas.iter().enumerate().find(|(_, c)| c.role == role) else {
                return format!("{} CA (not in the plan)", role.name());
            };
            ca_text(
                p,
                spec,
                known.token,
                known.found.and_then(|f| f.get(i)).copied(),
            )
        }
        Step::Leaves => leaves_text(p, out),
        Step::Seal => format!(
            "Seal the audit log with the root key on the token, write transcript.md, then rename {} to {}",
            crate::audit::sibling(out, "staging").display(),
            out.display()
        ),
    }
}

fn ca_text(
    p: &LoadedPlan,
    spec: &CaSpec,
    token: Option<&TokenIdentity>,
    found: Option<Found>,
) -> String {
    let on = match token {
        Some(t) => format!("on token {} (serial {})", t.label, t.serial),
        None => "on the token".into(),
    };
    if let Some(d) = p.plan.delegated(spec.role) {
        return format!(
            "Sign the delegated {} CA's request {} ({} key held by the control-plane nodes) as a CA (pathLen 0) \
             with the root key \"{}\" {on}; nothing is stored on the token",
            spec.role.name(),
            d.csr.display(),
            spec.key,
            p.plan.ca(CaRole::Root).label
        );
    }
    let key = format!("{} {} \"{}\"", key_name(spec), spec.key, spec.label);
    let sign = match spec.role {
        CaRole::Root => "self-sign its certificate".to_string(),
        _ => format!(
            "sign its certificate with the root key \"{}\"",
            p.plan.ca(CaRole::Root).label
        ),
    };
    match found {
        None => format!("Generate {key} {on} (or reuse it if already there) and {sign}"),
        Some(Found::Nothing) => format!("Generate {key} {on} and {sign}"),
        Some(Found::Key) => format!("Reuse {key}, already {on}, and {sign}"),
        Some(Found::KeyAndCertificate) => {
            format!("Reuse {key} and its certificate, already {on}")
        }
        // Answered above: a delegated CA's text names its request.
        Some(Found::Delegated) => format!("Sign {key}'s request with the root {on}"),
    }
}

fn leaves_text(p: &LoadedPlan, out: &Path) -> String {
    let staging = crate::audit::sibling(out, "staging");
    let users = p.plan.users.len();
    let users_text = match users {
        0 => String::new(),
        1 => " and 1 user kubeconfig".into(),
        n => format!(" and {n} user kubeconfigs"),
    };
    match &p.plan.cluster {
        Some(cl) => {
            let n = crate::profile::kubeadm::leaf_count(cl);
            let nodes = crate::fmt::count(cl.control_plane.len() + cl.workers.len());
            let n = crate::fmt::count(n);
            match cl.mode {
                LeafMode::Csr => format!(
                    "Check the {nodes} nodes' CSRs again and sign {n} certificates through the token{users_text}, \
                     written into {}",
                    staging.display()
                ),
                LeafMode::Generate => format!(
                    "Make {n} leaf keys ({}) on this computer and sign {n} certificates for {nodes} nodes \
                     through the token{users_text}, written into {}",
                    cl.leaf_key,
                    staging.display()
                ),
            }
        }
        None => format!(
            "Write the CA certificates{users_text} into {}",
            staging.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> LoadedPlan {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ceremony/plans/demo.toml");
        crate::plan::load(&path, std::time::SystemTime::now()).expect("the demo plan loads")
    }

    #[test]
    fn steps_are_numbered_in_order() {
        let p = demo();
        assert_eq!(count(&p), 8);
        assert_eq!(tag(&p, Step::Open), "[1/8]");
        assert_eq!(tag(&p, Step::Ca(CaRole::Root)), "[3/8]");
        assert_eq!(tag(&p, Step::Ca(CaRole::FrontProxy)), "[6/8]");
        assert_eq!(tag(&p, Step::Seal), "[8/8]");
    }

    #[test]
    fn ca_text_says_generate_or_reuse() {
        let p = demo();
        let id = TokenIdentity::fake("ceremony-demo", "1234");
        let m = Path::new("/m.so");
        let o = Path::new("out");
        let found = [
            Found::Nothing,
            Found::Key,
            Found::KeyAndCertificate,
            Found::Nothing,
        ];
        let known = Known {
            token: Some(&id),
            found: Some(&found),
        };
        assert_eq!(
            text(&p, m, o, Step::Ca(CaRole::Root), known),
            "Generate root key ecdsa-p384 \"demo-root-2026\" on token ceremony-demo (serial 1234) \
             and self-sign its certificate"
        );
        assert_eq!(
            text(&p, m, o, Step::Ca(CaRole::Kubernetes), known),
            "Reuse kubernetes CA key ecdsa-p256 \"demo-kubernetes-ca-2026\", already on token ceremony-demo \
             (serial 1234), and sign its certificate with the root key \"demo-root-2026\""
        );
        assert_eq!(
            text(&p, m, o, Step::Ca(CaRole::Etcd), known),
            "Reuse etcd CA key ecdsa-p256 \"demo-etcd-ca-2026\" and its certificate, already on token \
             ceremony-demo (serial 1234)"
        );
        let check = text(&p, m, o, Step::Ca(CaRole::Root), Known::default());
        assert!(check.contains("(or reuse it if already there)"), "{check}");
    }
}
