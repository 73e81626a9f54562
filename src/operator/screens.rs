//! The operator's screens as text: the preflight, the end screen and the
//! line a cancelled run ends with, built from what the run knows. Pure:
//! `ui` prints them.

//! Operator output: the preflight screen, numbered steps, notes, warnings,
//! typed confirmations, spinners and the end screen, all on stderr (stdout
//! stays for machine-readable output).
//!
//! Colours only when stderr is a terminal and NO_COLOR is unset (`console`
//! decides). Every prompt runs through `interrupt::prompt`, so Ctrl-C at a
//! prompt stops the run cleanly. What it must not do: print a PIN, or decide
//! anything about the ceremony (the flow in `mod.rs` does), or print a
//! string from outside as it came: every text goes through `shown` on its
//! way out (paths, the token's label, serial, manufacturer and model, CSR
//! subjects, errors quoting input), so none can move the cursor over the
//! serial or fingerprints the witnesses read.

// The operator's screens are printed here and nowhere else.

use super::interrupt::Stop;
use super::steps::{self, Found, Known, Step};
use crate::error::CeremonyError;
use crate::fmt::fingerprint;
use crate::issue::ca::CaState;
use crate::keytype::KeyType;
use crate::plan::inputs::Manifest;
use crate::plan::{LeafMode, LoadedPlan};
use crate::profile::kubeadm;
use crate::token::{ObjectInfo, TokenIdentity};
use crate::x509;
use std::path::Path;

/// Everything the preflight screen shows.
pub struct Preflight<'a> {
    pub loaded: &'a LoadedPlan,
    /// The inputs read before the token: the digest the witnesses compare.
    pub inputs: &'a Manifest,
    pub module: &'a Path,
    pub module_sha256: &'a [u8; 32],
    pub out: &'a Path,
    pub token: &'a TokenIdentity,
    /// Every object on the token (None: the token would not list them).
    pub objects: Option<&'a [ObjectInfo]>,
    pub mechanisms: &'a [(KeyType, String)],
    /// Per CA, in plan order.
    pub found: &'a [Found],
    /// Records of an interrupted run's journal this run continues.
    pub resumed_records: Option<u64>,
    /// The ceremony this one continues (None: a founding ceremony).
    pub continues: Option<&'a Continues<'a>>,
}

/// What a continuing ceremony continues, and what it does with each node.
pub struct Continues<'a> {
    pub ceremony: &'a str,
    /// The previous output, as the plan names it.
    pub output: &'a str,
    pub final_hash: &'a str,
    pub selection: &'a crate::plan::continuing::Selection,
    /// Where the service-account pair comes from.
    pub sa: String,
    /// What this ceremony revokes, one line each (what, serial, reason, CRL).
    pub revokes: Vec<String>,
    /// What it does with CRLs (None: it signs none).
    pub crls: Option<String>,
}

/// The lines that say which ceremony this one continues and what it
/// issues: on the preflight and the end screen.
pub(super) fn continues_lines(c: &Continues<'_>) -> Vec<Line> {
    let names = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let mut v = vec![
        field(
            "Continues",
            format!("ceremony \"{}\" in {}", c.ceremony, c.output),
        ),
        cont(format!("its final hash {}", c.final_hash)),
        field("Renewed", names(&c.selection.renewed)),
        field("Added", names(&c.selection.added)),
        field(
            "Untouched",
            format!(
                "{} (not written: their bundles stay those of the previous outputs)",
                names(&c.selection.untouched)
            ),
        ),
        field("SA key pair", c.sa.clone()),
    ];
    if let Some(crls) = &c.crls {
        v.push(field("CRLs", crls.clone()));
    }
    for (i, r) in c.revokes.iter().enumerate() {
        v.push(if i == 0 {
            field("Revokes", r.clone())
        } else {
            cont(r.clone())
        });
    }
    v
}

/// Everything the end screen shows.
pub struct Summary<'a> {
    pub loaded: &'a LoadedPlan,
    pub inputs: &'a Manifest,
    pub out: &'a Path,
    pub token: &'a TokenIdentity,
    pub cas: &'a [CaState],
    /// Every file written, counted.
    pub files: &'a Files,
    pub sha256sums: [u8; 32],
    pub records: u64,
    pub final_hash: [u8; 32],
    /// The ceremony this one continues (None: a founding ceremony).
    pub continues: Option<&'a Continues<'a>>,
}

pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    format!(
        "{} {}",
        crate::fmt::count(n),
        if n == 1 { one } else { many }
    )
}

/// This process's command line, as a shell would take it back.
pub(super) fn resume_command() -> String {
    let quote = |a: String| {
        if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_./=:,@%+-".contains(c))
        {
            a
        } else {
            format!("'{}'", a.replace('\'', "'\\''"))
        }
    };
    std::iter::once("ceremony".to_string())
        .chain(std::env::args().skip(1).map(quote))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A prompt that ended without an answer, as a cancellation.
pub(super) fn cancelled_at(stop: Stop, at: &str) -> CeremonyError {
    match stop {
        Stop::Interrupted => CeremonyError::Cancelled(format!("Ctrl-C at {at}")),
        Stop::Failed(e) => CeremonyError::Cancelled(format!("no answer at {at} ({e})")),
    }
}

/// A line of a screen, styled when printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Rule,
    Title(String),
    /// A label in the left column and its value.
    Field(&'static str, String),
    Text(String),
}

pub(super) fn field(k: &'static str, v: impl Into<String>) -> Line {
    Line::Field(k, v.into())
}

pub(super) fn cont(v: impl Into<String>) -> Line {
    Line::Field("", v.into())
}

/// The preflight screen's lines (pure, for tests).
pub fn preflight_lines(f: &Preflight<'_>) -> Vec<Line> {
    let p = &f.loaded.plan;
    let mut v = vec![
        Line::Rule,
        Line::Title(format!(
            "Preflight: ceremony \"{}\". Read it aloud; nothing has been made yet.",
            p.name
        )),
        Line::Rule,
        field("Plan", f.loaded.path.display().to_string()),
        cont(format!("SHA-256 {}", hex::encode(f.loaded.sha256))),
        field(
            "Inputs",
            format!("SHA-256 {}", hex::encode(f.inputs.digest)),
        ),
        cont(inputs_text(f.inputs)),
        field("Administrator", p.administrator.clone()),
        field(
            "Witnesses",
            if p.witnesses.is_empty() {
                "none".to_string()
            } else {
                p.witnesses.join(", ")
            },
        ),
        field(
            "Token",
            format!(
                "\"{}\": {} {}, serial {}",
                f.token.label, f.token.manufacturer, f.token.model, f.token.serial
            ),
        ),
        cont(format!(
            "firmware {}, hardware {}{}",
            f.token.firmware,
            f.token.hardware,
            if f.token.protected_auth_path {
                ", PIN pad"
            } else {
                ""
            }
        )),
        cont(objects_text(f.objects)),
        field("Module", f.module.display().to_string()),
        cont(format!("SHA-256 {}", hex::encode(f.module_sha256))),
    ];
    if let Some(c) = f.continues {
        v.extend(continues_lines(c));
    }
    for (i, (kt, mech)) in f.mechanisms.iter().enumerate() {
        let text = format!("{kt}: {mech}");
        v.push(if i == 0 {
            field("Mechanisms", text)
        } else {
            cont(text)
        });
    }
    for (i, (spec, found)) in p.cas.iter().zip(f.found).enumerate() {
        let text = format!(
            "{:<12} {:<28} {}",
            spec.role.name(),
            format!("\"{}\"", spec.label),
            found.describe()
        );
        v.push(if i == 0 {
            field("On the token", text)
        } else {
            cont(text)
        });
    }
    let journal = crate::audit::journal::path(f.out);
    v.push(field(
        "Audit journal",
        match f.resumed_records {
            Some(n) => format!(
                "continues the interrupted run's {} in {}",
                plural(n as usize, "record", "records"),
                journal.display()
            ),
            None => format!("new, in {}", journal.display()),
        },
    ));
    v.push(Line::Text(String::new()));
    v.push(Line::Title("Steps".into()));
    let known = Known {
        token: Some(f.token),
        found: Some(f.found),
    };
    for step in steps::all(f.loaded) {
        let done = matches!(step, Step::Open | Step::Login);
        v.push(Line::Text(format!(
            "  {} {}{}",
            steps::tag(f.loaded, step),
            if done { "done: " } else { "" },
            steps::text(f.loaded, f.module, f.out, step, known)
        )));
    }
    v.push(Line::Text(String::new()));
    v.push(Line::Title("Writes".into()));
    v.extend(writes_lines(f.loaded, f.out).into_iter().map(Line::Text));
    v.push(Line::Rule);
    v
}

/// What the inputs SHA-256 covers, in one line.
pub(super) fn inputs_text(m: &Manifest) -> String {
    format!(
        "over {}: the plan and the files it names, listed by `ceremony check`",
        plural(m.count, "input", "inputs")
    )
}

pub(super) fn objects_text(objects: Option<&[ObjectInfo]>) -> String {
    let Some(objects) = objects else {
        return "objects: the token would not list them".into();
    };
    let count = |c: &str| objects.iter().filter(|o| o.class == c).count();
    let (pk, pubk, cert) = (
        count("private-key"),
        count("public-key"),
        count("certificate"),
    );
    let unreadable = count("unreadable");
    let other = objects.len() - pk - pubk - cert - unreadable;
    let mut parts = vec![
        plural(pk, "private key", "private keys"),
        plural(pubk, "public key", "public keys"),
        plural(cert, "certificate", "certificates"),
    ];
    if unreadable > 0 {
        parts.push(plural(
            unreadable,
            "object the token cannot describe",
            "objects the token cannot describe",
        ));
    }
    if other > 0 {
        parts.push(plural(other, "other object", "other objects"));
    }
    format!(
        "{} on it now ({})",
        plural(objects.len(), "object", "objects"),
        parts.join(", ")
    )
}

/// What the run will write, and where.
pub(super) fn writes_lines(p: &LoadedPlan, out: &Path) -> Vec<String> {
    let mut v = vec![format!(
        "  {}/  appears only when complete (built in {}, then renamed):",
        out.display(),
        crate::audit::sibling(out, "staging").display()
    )];
    v.push("    root-ca.crt, cas/ and chains/   the root and the 3 intermediates".into());
    if let Some(cl) = &p.plan.cluster {
        let how = match cl.mode {
            LeafMode::Generate => "keys made here",
            LeafMode::Csr => "from the node's CSRs",
        };
        let width = cl
            .control_plane
            .iter()
            .map(|n| n.name.len())
            .chain(cl.workers.iter().map(String::len))
            .max()
            .unwrap_or(0);
        for (i, n) in cl.control_plane.iter().enumerate() {
            v.push(format!(
                "    nodes/{:<width$}  control plane, {}, {how}",
                n.name,
                plural(
                    kubeadm::control_plane_leaves(cl, i).len(),
                    "certificate",
                    "certificates"
                ),
            ));
        }
        if cl.workers.len() > SUMMARY_WORKERS {
            let certs: usize = cl
                .workers
                .iter()
                .map(|w| kubeadm::worker_leaves(cl, w).len())
                .sum();
            v.push(format!(
                "    nodes/* ({} workers: {} … {})  {}, {how}",
                crate::fmt::count(cl.workers.len()),
                cl.workers[0],
                cl.workers[cl.workers.len() - 1],
                plural(certs, "certificate", "certificates"),
            ));
        } else {
            for w in &cl.workers {
                v.push(format!(
                    "    nodes/{w:<width$}  worker, {}, {how}",
                    plural(
                        kubeadm::worker_leaves(cl, w).len(),
                        "certificate",
                        "certificates"
                    ),
                ));
            }
        }
    }
    for u in &p.plan.users {
        v.push(format!(
            "    users/{}.conf  kubeconfig of user {}",
            u.name, u.name
        ));
    }
    v.push(
        "    plan.toml, inputs.sha256, SHA256SUMS, audit.log.age (sealed audit log), transcript.md (to sign)"
            .into(),
    );
    v.push(format!(
        "  {}  the audit journal until the log is sealed",
        crate::audit::journal::path(out).display()
    ));
    v.push("  The full list of files and certificates: ceremony check PLAN --out OUT".into());
    v
}

/// The end screen's lines (pure, for tests).
pub fn summary_lines(s: &Summary<'_>) -> Vec<Line> {
    let mut v = vec![
        Line::Rule,
        Line::Title(format!(
            "Done: ceremony \"{}\" is complete.",
            s.loaded.plan.name
        )),
        Line::Rule,
    ];
    if let Some(c) = s.continues {
        v.extend(continues_lines(c));
    }
    v.push(Line::Title("Made".into()));
    v.push(Line::Text(format!(
        "  On token {} (serial {}):",
        s.token.label, s.token.serial
    )));
    for ca in s.cas {
        let what = ca.provenance("existing key and certificate");
        v.push(Line::Text(format!(
            "    {:<12} {:<30} valid until {}",
            ca.role.name(),
            what,
            crate::fmt::utc(ca.not_after())
        )));
    }
    v.push(Line::Text(format!(
        "  In {} ({}):",
        s.out.display(),
        plural(s.files.total, "file", "files")
    )));
    for (node, role, certs, confs, files) in per_node(s) {
        if s.files.sealed.contains(&node) {
            v.push(Line::Text(format!(
                "    {:<16} {role:<14} encrypted to its recipient: its files are in the archive only",
                crate::bundle::layout::sealed_node(&node)
            )));
            continue;
        }
        v.push(Line::Text(format!(
            "    nodes/{node:<10} {role:<14} {} ({} in kubeconfigs), {}",
            plural(certs + confs, "certificate", "certificates"),
            crate::fmt::count(confs),
            plural(files, "file", "files")
        )));
    }
    let users = &s.files.users;
    if !users.is_empty() {
        v.push(Line::Text(format!(
            "    users/           {}",
            users.join(", ")
        )));
    }
    v.push(Line::Text(
        format!(
            "    root-ca.crt, cas/, chains/, {}plan.toml, inputs.sha256, SHA256SUMS, audit.log.age, transcript.md, audit.seal.json",
            if s.continues.is_some() {
                "continuation.json, "
            } else {
                ""
            }
        ),
    ));
    v.push(Line::Text(String::new()));
    v.push(Line::Title(
        "Copy onto the signed transcript (OUT/transcript.md holds the same values)".into(),
    ));
    for ca in s.cas {
        v.push(Line::Text(format!(
            "  {:<26} SHA-256 {}",
            format!("{} CA certificate", ca.role.name()),
            fingerprint(&x509::sha256(&ca.der))
        )));
    }
    v.push(Line::Text(format!(
        "  {:<26} SHA-256 {}",
        "inputs",
        fingerprint(&s.inputs.digest)
    )));
    v.push(Line::Text(format!(
        "  {:<26} SHA-256 {}",
        "SHA256SUMS",
        fingerprint(&s.sha256sums)
    )));
    v.push(Line::Text(format!(
        "  {:<26} final hash {}",
        format!("audit log, {} records", s.records),
        fingerprint(&s.final_hash)
    )));
    v.push(Line::Text(
        "  The audit log is sealed: the root key signed its final hash on the token.".into(),
    ));
    v.push(Line::Text(String::new()));
    v.push(Line::Title("Next".into()));
    let out = s.out.display();
    for t in [
        "  1. Administrator and witnesses: compare the values above with transcript.md, print it and sign it;"
            .to_string(),
        "     seal the token in a new tamper-evident bag (docs/runbook.md §4).".to_string(),
        format!("  2. Installer: ceremony verify {out}   (chains, profiles, modes, SHA256SUMS)"),
        "     then copy nodes/<name>/etc/kubernetes (and var/lib/kubelet/pki, if any) to the same paths on each node, and run kubeadm init / join:"
            .to_string(),
        "     docs/kubeadm.md".to_string(),
        format!("  3. Auditor: ceremony audit verify {out}/audit.log.age -i IDENTITY"),
    ] {
        v.push(Line::Text(t));
    }
    v.push(Line::Rule);
    v
}

/// What the end screen says of OUT's files, counted in one pass over the
/// list of files written, which is never held (300,000 paths for 100,000
/// workers): per control-plane node, per worker while they fit a screen,
/// else the workers' totals.
#[derive(Debug, Default)]
pub struct Files {
    pub total: usize,
    /// (certificates, kubeconfigs, files) by node listed on its own line.
    nodes: std::collections::HashMap<String, (usize, usize, usize)>,
    /// The workers' totals, past [`SUMMARY_WORKERS`] workers.
    workers: Option<(usize, usize, usize)>,
    control_plane: std::collections::HashSet<String>,
    /// Nodes delivered encrypted.
    sealed: std::collections::BTreeSet<String>,
    /// Files under users/.
    users: Vec<String>,
}

impl Files {
    pub fn new(cl: Option<&crate::plan::ClusterSpec>) -> Files {
        Files {
            workers: cl
                .filter(|cl| cl.workers.len() > SUMMARY_WORKERS)
                .map(|_| Default::default()),
            control_plane: cl
                .map(|cl| cl.control_plane.iter().map(|n| n.name.clone()).collect())
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    /// Counts one file written (its path relative to OUT).
    pub fn add(&mut self, p: &str) {
        self.total += 1;
        if let Some(u) = p.strip_prefix("users/") {
            self.users.push(u.to_string());
        }
        let (name, certs, confs) = if let Some(name) = crate::bundle::layout::sealed_node_of(p) {
            self.sealed.insert(name.to_string());
            (name, 0, 0)
        } else {
            let Some((name, _)) = p.strip_prefix("nodes/").and_then(|r| r.split_once('/')) else {
                return;
            };
            // The kubelet's serving certificate is on the node's root, the
            // rest under its etc/kubernetes.
            let Some(f) = p
                .strip_prefix(&crate::bundle::layout::node_dir(name))
                .and_then(|r| r.strip_prefix('/'))
            else {
                return;
            };
            let f = f.strip_prefix("etc/kubernetes/").unwrap_or(f);
            let ca_file = kubeadm::CA_FILES.iter().any(|(c, _)| *c == f);
            (
                name,
                usize::from(f.ends_with(".crt") && !ca_file),
                usize::from(f.ends_with(".conf")),
            )
        };
        let c = match &mut self.workers {
            Some(totals) if !self.control_plane.contains(name) => totals,
            _ => self.nodes.entry(name.to_string()).or_default(),
        };
        *c = (c.0 + certs, c.1 + confs, c.2 + 1);
    }
}

/// (node, "control plane"/"worker", .crt leaf files, kubeconfigs, files) from what was written.
pub(super) fn per_node(s: &Summary<'_>) -> Vec<(String, &'static str, usize, usize, usize)> {
    let mut v = Vec::new();
    let Some(cl) = &s.loaded.plan.cluster else {
        return v;
    };
    let counts = &s.files.nodes;
    let of = |name: &str| counts.get(name).copied().unwrap_or_default();
    // A continuing ceremony writes some nodes: the others are not listed.
    let shown = |name: &str| s.continues.is_none() || counts.contains_key(name);
    for n in cl.control_plane.iter().filter(|n| shown(&n.name)) {
        let (certs, confs, files) = of(&n.name);
        v.push((n.name.clone(), "control plane", certs, confs, files));
    }
    // Past a screenful, the workers are one line of totals.
    if let Some((certs, confs, files)) = s.files.workers {
        let name = format!("* ({} workers)", crate::fmt::count(cl.workers.len()));
        v.push((name, "worker", certs, confs, files));
    } else {
        for w in cl.workers.iter().filter(|w| shown(w)) {
            let (certs, confs, files) = of(w);
            v.push((w.clone(), "worker", certs, confs, files));
        }
    }
    v
}

/// Workers listed one per line on the end screen at most.
pub const SUMMARY_WORKERS: usize = 10;
