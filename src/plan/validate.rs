//! Plan validation: raw plan in, typed plan or *every* problem out.
//!
//! Pure: no file, token or clock access (the caller passes `now` and the
//! contents of any file the plan names). Every problem names its key path and
//! the value it got, so the operator can fix the whole plan in one go.

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use x509_cert::name::Name;

use super::duration::parse_lifetime;
use super::model::{BackupSection, CaSection, Plan};
use super::spec::{
    BackupSpec, CaRole, CaSpec, ClusterSpec, Delegated, LeafMode, Lifetime, UserSpec, ValidPlan,
};
use crate::keytype::{KeyType, key_type_names};
use crate::token::uri::TokenUri;

mod cluster;
mod delegation;
mod revoke;
use cluster::validate_cluster;
#[cfg(test)]
use cluster::{parse_cidr, parse_endpoint, parse_version};
pub use revoke::default_new_label;

/// One thing wrong with the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
    pub got: Option<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if let Some(got) = &self.got {
            write!(f, " (got {got})")?;
        }
        Ok(())
    }
}

/// What validation needs from outside the plan text.
pub struct Context<'a> {
    pub now: SystemTime,
    /// Lines of `cluster.workers.names_file`, if the plan names one and it was read.
    pub worker_names_file: Option<&'a str>,
}

/// Labels longer than this are refused rather than truncated: a run finds
/// its objects again by label, so the label on the token must be the plan's.
pub const MAX_LABEL_BYTES: usize = 32;
/// `token.sessions` at most: each session has a signing thread of its own.
pub const MAX_SESSIONS: u32 = 64;

struct Problems(Vec<Problem>);

impl Problems {
    #[track_caller]
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>, got: Option<String>) {
        // Lets the rules' table check that every call site has a row.
        #[cfg(test)]
        {
            let at = std::panic::Location::caller();
            tests::reached(at.file(), at.line());
        }
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
            got,
        });
    }
}

fn quoted(s: &str) -> Option<String> {
    Some(format!("{s:?}"))
}

/// What a problem shows of a value read from a file (a names file's line):
/// a short excerpt, escaped, never the whole line, so an error can neither
/// dump a file that was never meant to be a names file nor drive the
/// terminal.
pub(crate) fn excerpt(s: &str) -> Option<String> {
    const MAX: usize = 40;
    let mut chars = s.chars();
    let head: String = chars.by_ref().take(MAX).collect();
    Some(match chars.next() {
        None => format!("{head:?}"),
        Some(_) => format!("{head:?}, cut at {MAX} characters"),
    })
}

/// Why an input path the plan names may not be read where it points: input
/// files stay inside the plan's directory unless the plan's `section` says
/// `allow_outside = true` beside the path. Lexical (this module reads no
/// disk); `load` also refuses a names file that a symbolic link takes out.
pub fn input_path_problem(path: &Path, allow_outside: bool, section: &str) -> Option<String> {
    if allow_outside {
        return None;
    }
    if path.is_absolute() {
        return Some(format!(
            "is an absolute path; input files stay inside the plan's directory: write the path relative to the plan, or set allow_outside = true in {section}"
        ));
    }
    if path
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Some(format!(
            "climbs out of the plan's directory with \"..\"; input files stay inside it: move the file in, or set allow_outside = true in {section}"
        ));
    }
    None
}

/// Every plan string that is shown on the operator's screen or written into
/// the transcript, the audit log or a certificate: a control character
/// (cursor moves, erasures, a newline that forges a line) or a bidirectional
/// mark or override (text read in another order than stored) would let the
/// plan change what the witnesses read.
fn shown_text(p: &mut Problems, path: impl Into<String>, s: &str) {
    if let Some(c) = s.chars().find(|c| crate::fmt::is_unsafe_char(*c)) {
        p.add(
            path,
            format!(
                "must not contain control or bidirectional-override characters (found U+{:04X})",
                u32::from(c)
            ),
            quoted(s),
        );
    }
}

/// A path of the plan, as [`shown_text`].
fn shown_path(p: &mut Problems, path: impl Into<String>, s: &std::path::Path) {
    shown_text(p, path, &s.to_string_lossy());
}

pub fn validate(plan: &Plan, ctx: &Context<'_>) -> Result<ValidPlan, Vec<Problem>> {
    let mut p = Problems(Vec::new());

    let c = &plan.ceremony;
    if c.name.trim().is_empty() {
        p.add("ceremony.name", "must not be empty", quoted(&c.name));
    }
    shown_text(&mut p, "ceremony.name", &c.name);
    shown_text(&mut p, "ceremony.administrator", &c.administrator);
    if c.administrator.trim().is_empty() {
        p.add(
            "ceremony.administrator",
            "must not be empty",
            quoted(&c.administrator),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, w) in c.witnesses.iter().enumerate() {
        if w.trim().is_empty() {
            p.add(
                format!("ceremony.witnesses[{i}]"),
                "must not be empty",
                quoted(w),
            );
        } else if w.chars().any(crate::fmt::is_unsafe_char) {
            shown_text(&mut p, format!("ceremony.witnesses[{i}]"), w);
        } else if !seen.insert(w.trim().to_lowercase()) {
            p.add(
                format!("ceremony.witnesses[{i}]"),
                "is named twice",
                quoted(w),
            );
        }
    }

    placeholders(plan, &mut p);
    let token_uri = TokenUri::parse(&plan.token.uri)
        .map_err(|e| {
            p.add(
                "token.uri",
                e,
                quoted(&TokenUri::redact_pin(&plan.token.uri)),
            )
        })
        .ok();
    if plan.token.module.as_os_str().is_empty() {
        p.add(
            "token.module",
            "must be the path of a PKCS#11 module",
            quoted(""),
        );
    }
    shown_path(&mut p, "token.module", &plan.token.module);
    if let Some(dir) = plan.leaves.as_ref().and_then(|l| l.csr_dir.as_ref()) {
        shown_path(&mut p, "leaves.csr_dir", dir);
    }
    let module_sha256 = plan.token.module_sha256.as_ref().and_then(|h| {
        if is_placeholder(h) {
            return None;
        }
        let bytes = hex::decode(h)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        if bytes.is_none() {
            p.add(
                "token.module_sha256",
                "must be 64 hex digits (sha256sum of the module)",
                quoted(h),
            );
        }
        bytes
    });
    if let Some(n) = plan.token.sessions
        && !(1..=MAX_SESSIONS).contains(&n)
    {
        p.add(
            "token.sessions",
            format!("must be between 1 and {MAX_SESSIONS}"),
            Some(n.to_string()),
        );
    }

    let sections = [
        (CaRole::Root, &plan.root),
        (CaRole::Kubernetes, &plan.ca.kubernetes),
        (CaRole::Etcd, &plan.ca.etcd),
        (CaRole::FrontProxy, &plan.ca.front_proxy),
    ];
    let mut cas = Vec::new();
    let mut labels = BTreeSet::new();
    for (role, section) in sections {
        if !labels.insert(section.label.as_str()) && !section.label.is_empty() {
            p.add(
                format!("{}.label", role.section()),
                "is used by another CA of this plan; each key needs its own label",
                quoted(&section.label),
            );
        }
        if let Some(spec) = validate_ca(role, section, ctx.now, &mut p) {
            cas.push(spec);
        }
    }
    // An intermediate may not outlive the root (RFC 5280 path validation would
    // cut it short anyway, and a kubeadm cluster would break at the root's end).
    if cas.len() == 4 {
        let root_end = cas[0].lifetime.end(ctx.now);
        for ca in &cas[1..] {
            let end = ca.lifetime.end(ctx.now);
            if end > root_end {
                p.add(
                    lifetime_path(ca.role, &sections_of(plan, ca.role)),
                    format!(
                        "the intermediate would outlive the root (root ends {}, this one {}); shorten it or lengthen root",
                        crate::fmt::utc(root_end),
                        crate::fmt::utc(end)
                    ),
                    Some(ca.lifetime.to_string()),
                );
            }
        }
    }

    let delegated = delegation::validate_delegation(plan, &mut p);
    let kubelet_signer = delegation::validate_kubelet_signer(plan, &delegated, &mut p);
    let cluster = plan.cluster.as_ref().and_then(|cl| {
        let intermediates_end = cas
            .iter()
            .filter(|c| c.role != CaRole::Root)
            .map(|c| c.lifetime.end(ctx.now))
            .min();
        validate_cluster(plan, cl, ctx, intermediates_end, &mut p).map(|mut spec| {
            spec.delegated = delegated.iter().map(|d| d.role).collect();
            spec
        })
    });
    if let Some(cl) = &cluster
        && cl.kubelet_serving
        && cl.delegated.contains(&CaRole::Kubernetes)
    {
        p.add(
            "cluster.kubelet_serving_certs",
            "needs the kubernetes CA on the token to sign the kubelets' serving certificates, and [ca.kubernetes] is delegated: set it false",
            None,
        );
    }
    if plan.cluster.is_none() && plan.leaves.is_some() {
        p.add(
            "leaves",
            "needs a [cluster] section to know which leaves to make",
            None,
        );
    }

    if plan.cluster.is_none() && !plan.users.is_empty() {
        p.add(
            "users",
            "a user kubeconfig needs the [cluster] section (its server and name)",
            None,
        );
    }
    let users = validate_users(plan, cluster.as_ref(), &mut p);
    let continuing = super::continuing::validate(plan, cluster.as_ref(), &mut p.0);
    let backup = plan
        .backup
        .as_ref()
        .and_then(|b| validate_backup(plan, b, &delegated, &mut p));
    let crl = revoke::validate_crl(plan, &mut p);
    let reissue = revoke::validate_reissue(plan, &mut p);
    let rotate = revoke::validate_rotate(plan, &mut p);

    if plan.audit.recipients.is_empty() {
        p.add(
            "audit.recipients",
            "must name at least one age or SSH recipient who can read the audit log",
            Some("[]".into()),
        );
    }
    for (i, r) in plan.audit.recipients.iter().enumerate() {
        let ok = is_placeholder(r)
            || age::x25519::Recipient::from_str(r).is_ok()
            || age::ssh::Recipient::from_str(r).is_ok();
        if !ok {
            p.add(
                format!("audit.recipients[{i}]"),
                "is not an age recipient (age1…) or an SSH public key (ssh-ed25519 …, ssh-rsa …)",
                quoted(r),
            );
        }
    }

    if !p.0.is_empty() {
        return Err(p.0);
    }
    // Every value is there when no problem was recorded.
    let (Some(token_uri), 4, true) = (token_uri, cas.len(), users.len() == plan.users.len()) else {
        return Err(vec![Problem {
            path: "plan".into(),
            message: "internal: validation lost a value".into(),
            got: None,
        }]);
    };
    Ok(ValidPlan {
        name: c.name.trim().to_string(),
        administrator: c.administrator.trim().to_string(),
        witnesses: c.witnesses.iter().map(|w| w.trim().to_string()).collect(),
        token_uri,
        module: plan.token.module.clone(),
        module_sha256,
        token_sessions: plan.token.sessions.map(|n| n as usize),
        cas,
        csr_dir: cluster
            .as_ref()
            .filter(|cl| cl.mode == LeafMode::Csr)
            .and_then(|_| plan.leaves.as_ref()?.csr_dir.clone()),
        leaf_key_explicit: plan
            .cluster
            .as_ref()
            .is_some_and(|cl| cl.leaf_key.is_some()),
        cluster,
        users,
        recipients: plan.audit.recipients.clone(),
        continuing,
        backup,
        crl,
        reissue,
        rotate,
        delegated,
        kubelet_signer,
    })
}

/// Most custodians a backup can have: a share's identifier is one byte.
pub const MAX_CUSTODIANS: usize = 255;

/// `[backup]`: named custodians, each once; a threshold of at least two (one
/// custodian alone must not hold the CA keys) and at most all of them; the
/// CAs by name, each once, the root always (the one key a lost token cannot
/// replace without re-trusting every cluster).
fn validate_backup(
    plan: &Plan,
    b: &BackupSection,
    delegated: &[Delegated],
    p: &mut Problems,
) -> Option<BackupSpec> {
    let is_delegated = |r: CaRole| delegated.iter().any(|d| d.role == r);
    let before = p.0.len();
    if plan.ceremony.previous.is_some() {
        p.add(
            "backup",
            "is set at the founding ceremony only: a continuing ceremony uses the keys backed up then; remove [backup]",
            None,
        );
    }
    if !(2..=MAX_CUSTODIANS).contains(&b.custodians.len()) {
        p.add(
            "backup.custodians",
            format!("must name between 2 and {MAX_CUSTODIANS} custodians, each to keep one share"),
            Some(b.custodians.len().to_string()),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, c) in b.custodians.iter().enumerate() {
        if c.trim().is_empty() {
            p.add(
                format!("backup.custodians[{i}]"),
                "must not be empty",
                quoted(c),
            );
        } else if c.chars().any(crate::fmt::is_unsafe_char) {
            shown_text(p, format!("backup.custodians[{i}]"), c);
        } else if !seen.insert(c.trim().to_lowercase()) {
            p.add(
                format!("backup.custodians[{i}]"),
                "is named twice",
                quoted(c),
            );
        }
    }
    let n = b.custodians.len();
    let m = b.threshold as usize;
    if n >= 2 && !(2..=n).contains(&m) {
        p.add(
            "backup.threshold",
            format!("must be between 2 and the number of custodians ({n})"),
            Some(b.threshold.to_string()),
        );
    }
    let mut cas = Vec::new();
    match &b.cas {
        // Every CA kept in the token: a delegated CA's key is on the nodes.
        None => cas.extend(
            [CaRole::Root]
                .into_iter()
                .chain(CaRole::INTERMEDIATES)
                .filter(|r| !is_delegated(*r)),
        ),
        Some(names) => {
            for (i, name) in names.iter().enumerate() {
                let role = [CaRole::Root]
                    .into_iter()
                    .chain(CaRole::INTERMEDIATES)
                    .find(|r| r.name() == name);
                match role {
                    None => p.add(
                        format!("backup.cas[{i}]"),
                        "must be one of root, kubernetes, etcd, front-proxy",
                        quoted(name),
                    ),
                    Some(r) if cas.contains(&r) => {
                        p.add(format!("backup.cas[{i}]"), "is named twice", quoted(name))
                    }
                    Some(r) if is_delegated(r) => p.add(
                        format!("backup.cas[{i}]"),
                        "is delegated to the control-plane nodes: its key is not on the token to back up; remove it",
                        quoted(name),
                    ),
                    Some(r) => cas.push(r),
                }
            }
            if !names.iter().any(|n| n == "root") {
                p.add(
                    "backup.cas",
                    "must include \"root\": the root is the key a lost token cannot replace",
                    None,
                );
            }
        }
    }
    cas.sort();
    (p.0.len() == before).then(|| BackupSpec {
        custodians: b.custodians.iter().map(|c| c.trim().to_string()).collect(),
        threshold: m,
        cas,
    })
}

fn is_placeholder(value: &str) -> bool {
    value.contains(super::safety::PLACEHOLDER)
}

/// An example plan's placeholders (`REPLACE-ME`), named first: the plan is
/// a template until each is replaced by this ceremony's value.
fn placeholders(plan: &Plan, p: &mut Problems) {
    let mut fields = vec![
        (
            "token.uri".to_string(),
            TokenUri::redact_pin(&plan.token.uri),
        ),
        (
            "token.module".to_string(),
            plan.token.module.to_string_lossy().into_owned(),
        ),
    ];
    if let Some(h) = &plan.token.module_sha256 {
        fields.push(("token.module_sha256".into(), h.clone()));
    }
    for (i, r) in plan.audit.recipients.iter().enumerate() {
        fields.push((format!("audit.recipients[{i}]"), r.clone()));
    }
    for (path, value) in fields {
        if is_placeholder(&value) {
            p.add(
                path,
                format!(
                    "is a placeholder ({}): put this ceremony's value there before any run",
                    super::safety::PLACEHOLDER
                ),
                quoted(&value),
            );
        }
    }
}

/// `[[users]]`: names that are both a CN and a file name, each once; groups
/// that are Organizations, each once; a lifetime parsed here and only here.
fn validate_users(plan: &Plan, cluster: Option<&ClusterSpec>, p: &mut Problems) -> Vec<UserSpec> {
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for (i, u) in plan.users.iter().enumerate() {
        let path = format!("users[{i}]");
        let before = p.0.len();
        if !is_user_name(&u.name) {
            p.add(
                format!("{path}.name"),
                "must be a user name: 1 to 128 of a-z A-Z 0-9 . _ - @, not starting with \"system:\"",
                quoted(&u.name),
            );
        } else if u.name.starts_with('.') {
            // The name becomes users/<name>.conf: "..", or a hidden file nobody sees.
            p.add(
                format!("{path}.name"),
                "must not start with \".\": it names the file users/<name>.conf",
                quoted(&u.name),
            );
        } else if !names.insert(u.name.as_str()) {
            p.add(format!("{path}.name"), "is named twice", quoted(&u.name));
        }
        if let Some(csr) = &u.csr {
            shown_path(p, format!("{path}.csr"), csr);
        }
        let mut groups = BTreeSet::new();
        for (j, g) in u.groups.iter().enumerate() {
            let at = format!("{path}.groups[{j}]");
            // Each group is one O= of the certificate: an empty one names no
            // group, and a repeated one is a slip.
            if g.is_empty() {
                p.add(at, "must not be empty", quoted(g));
            } else if g.chars().any(crate::fmt::is_unsafe_char) {
                shown_text(p, at, g);
            } else if !groups.insert(g.as_str()) {
                p.add(at, "is named twice", quoted(g));
            } else if g == "system:masters" && !u.allow_masters {
                p.add(
                    at,
                    "system:masters bypasses RBAC entirely; use an RBAC group, or set allow_masters = true on this user",
                    quoted(g),
                );
            }
        }
        if let Some(csr) = &u.csr
            && let Some(why) = input_path_problem(csr, u.allow_outside, "this [[users]] entry")
        {
            p.add(
                format!("{path}.csr"),
                why,
                quoted(&csr.display().to_string()),
            );
        }
        let validity = match &u.validity {
            None => cluster.map(|cl| cl.leaf_validity),
            Some(v) => parse_lifetime(v)
                .map_err(|e| p.add(format!("{path}.validity"), e, quoted(v)))
                .ok(),
        };
        if let (Some(validity), true) = (validity, p.0.len() == before) {
            out.push(UserSpec {
                name: u.name.clone(),
                groups: u.groups.clone(),
                validity,
                csr: u.csr.clone(),
                allow_masters: u.allow_masters,
            });
        }
    }
    out
}

fn sections_of(plan: &Plan, role: CaRole) -> CaSection {
    match role {
        CaRole::Root => plan.root.clone(),
        CaRole::Kubernetes => plan.ca.kubernetes.clone(),
        CaRole::Etcd => plan.ca.etcd.clone(),
        CaRole::FrontProxy => plan.ca.front_proxy.clone(),
    }
}

fn lifetime_path(role: CaRole, s: &CaSection) -> String {
    let key = if s.not_after.is_some() {
        "not_after"
    } else {
        "validity"
    };
    format!("{}.{key}", role.section())
}

fn validate_ca(role: CaRole, s: &CaSection, now: SystemTime, p: &mut Problems) -> Option<CaSpec> {
    let sec = role.section();
    let before = p.0.len();
    if s.label.is_empty() {
        p.add(
            format!("{sec}.label"),
            "must not be empty",
            quoted(&s.label),
        );
    } else if s.label.len() > MAX_LABEL_BYTES {
        p.add(
            format!("{sec}.label"),
            format!(
                "is {} bytes; a token label is at most {MAX_LABEL_BYTES} bytes",
                s.label.len()
            ),
            quoted(&s.label),
        );
    } else {
        shown_text(p, format!("{sec}.label"), &s.label);
    }
    let subject_text = s.subject.as_deref().or(role.default_subject());
    let subject = match subject_text {
        None => {
            p.add(
                format!("{sec}.subject"),
                "is required for the root, e.g. \"CN=Example Kubernetes Root CA,O=Example\"",
                None,
            );
            None
        }
        Some(text) if text.chars().any(crate::fmt::is_unsafe_char) => {
            shown_text(p, format!("{sec}.subject"), text);
            None
        }
        Some(text) => match parse_subject(text) {
            Ok(n) => Some(n),
            Err(e) => {
                p.add(format!("{sec}.subject"), e, quoted(text));
                None
            }
        },
    };
    let key = KeyType::from_str(&s.key)
        .map_err(|()| {
            p.add(
                format!("{sec}.key"),
                format!("unknown key type; use one of {}", key_type_names()),
                quoted(&s.key),
            )
        })
        .ok();
    let lifetime = match (&s.validity, &s.not_after) {
        (Some(_), Some(_)) => {
            p.add(
                sec.to_string(),
                "give either validity or not_after, not both",
                None,
            );
            None
        }
        (None, None) => {
            p.add(
                format!("{sec}.validity"),
                "is required (or not_after), e.g. validity = \"10y\"",
                None,
            );
            None
        }
        (Some(v), None) => match parse_lifetime(v) {
            Ok(d) => Some(Lifetime::For(d)),
            Err(e) => {
                p.add(format!("{sec}.validity"), e, quoted(v));
                None
            }
        },
        (None, Some(dt)) => match toml_datetime_to_system(dt) {
            Err(e) => {
                p.add(format!("{sec}.not_after"), e, Some(dt.to_string()));
                None
            }
            Ok(t) if t <= now => {
                p.add(
                    format!("{sec}.not_after"),
                    "is in the past",
                    Some(dt.to_string()),
                );
                None
            }
            Ok(t) => Some(Lifetime::Until(t)),
        },
    };
    if p.0.len() != before {
        return None;
    }
    Some(CaSpec {
        role,
        label: s.label.clone(),
        subject: subject?,
        key: key?,
        lifetime: lifetime?,
    })
}

/// RFC 4514 text, most specific RDN first ("CN=Root,O=Example"); must hold a CN.
pub fn parse_subject(text: &str) -> Result<Name, String> {
    let name = Name::from_str(text).map_err(|_| {
        "is not an RFC 4514 distinguished name, e.g. \"CN=Example Root CA,O=Example\"".to_string()
    })?;
    let cn_len = name
        .iter_rdn()
        .flat_map(|rdn| rdn.iter())
        .filter(|atv| atv.oid == const_oid::db::rfc4519::CN)
        .map(|atv| atv.value.value().len())
        .max();
    match cn_len {
        None => return Err("must contain a CN=".into()),
        Some(0) => return Err("has an empty CN".into()),
        Some(_) => {}
    }
    // RFC 4514 escapes (`\1B`) put in a value what the text does not show.
    let hidden = name
        .iter_rdn()
        .flat_map(|rdn| rdn.iter())
        .flat_map(|atv| {
            String::from_utf8_lossy(atv.value.value())
                .into_owned()
                .chars()
                .collect::<Vec<_>>()
        })
        .find(|c| crate::fmt::is_unsafe_char(*c));
    if let Some(c) = hidden {
        return Err(format!(
            "must not contain control or bidirectional-override characters, escaped or not (found U+{:04X})",
            u32::from(c)
        ));
    }
    Ok(name)
}

/// A TOML date (`2036-01-01`) or offset date-time (`2036-01-01T00:00:00Z`).
fn toml_datetime_to_system(dt: &toml::value::Datetime) -> Result<SystemTime, String> {
    let date = dt.date.ok_or("must be a date or a date-time in UTC")?;
    let (h, m, s) = dt
        .time
        .map_or((0, 0, 0), |t| (t.hour, t.minute, t.second.unwrap_or(0)));
    match dt.offset {
        Some(toml::value::Offset::Z) => {}
        None if dt.time.is_none() => {}
        Some(toml::value::Offset::Custom { minutes: 0 }) => {}
        _ => return Err("must be in UTC (end it with Z), e.g. 2036-01-01T00:00:00Z".into()),
    }
    let d = der::DateTime::new(date.year, date.month, date.day, h, m, s)
        .map_err(|_| "is not a valid date".to_string())?;
    Ok(UNIX_EPOCH + d.unix_duration())
}

/// A Kubernetes user name we are willing to put in a CN: printable, short, and
/// never in the reserved `system:` namespace.
fn is_user_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
        && !s.starts_with("system:")
}

#[cfg(test)]
mod tests;
