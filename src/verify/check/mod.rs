//! The checks of `ceremony verify`, as pure functions of an `Input` and `now`:
//! no file system, no clock, no output. Each check appends `Problem`s; none
//! stops at the first one, so one run lists everything wrong.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::SystemTime;

use der::Encode;
use der::oid::ObjectIdentifier;
use x509_cert::ext::pkix::KeyUsages;

use super::expect::{self, Expect, PlanNode, SanRule};
use super::parse::{self, Cert, CertFile};
use super::tree::{Content, Tree};
use super::{Input, Layout, PlanFacts, Problem, Report, Role, RootUsed};
use crate::bundle::kubeconfig::{KubeconfigFile, base64_data};
use crate::keys::public::{self, PublicKey};
use crate::keytype::KeyType;
use crate::plan::{CaRole, LeafMode};
use crate::profile::kubeadm::{CA_FILES, CLUSTER_ADMINS};
use crate::x509::fmt_time;
use crate::x509::profile::{eku_name, key_usage_name};

/// The CA private key files kubeadm would pick up (and then leave external-CA mode).
const CA_KEY_NAMES: [&str; 3] = ["pki/ca.key", "pki/etcd/ca.key", "pki/front-proxy-ca.key"];

/// Written after SHA256SUMS, so not in it: the sealed audit log (its own hash
/// chain, sealed by the root) and the transcript (which states SHA256SUMS's
/// hash and is signed on paper).
const AFTER_MANIFEST: [&str; 2] = ["audit.log.age", "transcript.md"];

/// The SHA256SUMS hash a transcript states ("SHA256SUMS SHA-256: `9F77 BCB4 …`"), lower-case hex.
fn transcript_sums_hash(text: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    let line = text.lines().find(|l| l.contains("SHA256SUMS SHA-256:"))?;
    let value = line.split('`').nth(1)?;
    let hex: String = value
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// Whether a path names a CA private key file (kubeadm's names, or ours with "-ca.key").
fn is_ca_key_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    CA_KEY_NAMES.iter().any(|n| path.ends_with(n)) || name == "ca.key" || name.ends_with("-ca.key")
}

/// The mode a bundle file must have, by name: keys, sa.* and kubeconfigs
/// 0600, certificates 0644.
pub fn expected_mode(path: &str) -> Option<u32> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".key") || name.starts_with("sa.") || name.ends_with(".conf") {
        Some(0o600)
    } else if name.ends_with(".crt") {
        Some(0o644)
    } else {
        None
    }
}

/// A node directory in messages: "." when it is the directory given.
fn dir_label(base: &str) -> String {
    match base.trim_end_matches('/') {
        "" => ".".into(),
        b => b.into(),
    }
}

fn short_hash(bytes: &[u8]) -> String {
    format!("sha256:{}", &hex::encode(crate::x509::sha256(bytes))[..16])
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn orgs_text(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join("+")
    }
}

fn ku_names(ku: flagset::FlagSet<KeyUsages>) -> String {
    let v: Vec<String> = ku
        .into_iter()
        .map(|u| key_usage_name(u).to_string())
        .collect();
    list(&v)
}

fn eku_text(v: &[ObjectIdentifier]) -> String {
    let mut names: Vec<String> = v.iter().map(eku_name).collect();
    names.sort();
    list(&names)
}

fn ca_label(role: CaRole) -> &'static str {
    match role {
        CaRole::Root => "root-ca.crt",
        CaRole::Kubernetes => "pki/ca.crt",
        CaRole::Etcd => "pki/etcd/ca.crt",
        CaRole::FrontProxy => "pki/front-proxy-ca.crt",
    }
}

/// A CA certificate and the file it was read from (for messages).
struct CaRef<'c> {
    file: String,
    cert: &'c Cert,
}

/// What one node's check found, for the checks across nodes.
struct NodeResult {
    base: String,
    name: Option<String>,
    role: Role,
    apiserver_sans: Option<Vec<String>>,
    /// (kubeconfig file, server) of every kubeconfig.
    servers: Vec<(String, String)>,
    has_super_admin: bool,
    admin_orgs: Option<Vec<String>>,
}

struct Ctx<'a> {
    tree: &'a Tree,
    now: SystemTime,
    plan: Option<&'a PlanFacts>,
    problems: Vec<Problem>,
    /// Public halves of private keys, by "file" or "file#field", derived once.
    keys: HashMap<String, Result<PublicKey, String>>,
}

/// Runs every check on `input` at time `now`.
pub fn check(input: &Input, now: SystemTime) -> Report {
    let mut ctx = Ctx {
        tree: &input.tree,
        now,
        plan: input.plan.as_ref(),
        problems: Vec::new(),
        keys: HashMap::new(),
    };
    let given_root = input.root.as_ref().and_then(|r| {
        CertFile::parse(&r.pem)
            .ok()
            .and_then(|f| f.certs.into_iter().next())
            .map(|c| (r.label.clone(), c))
    });
    let (nodes, root_used, root_key) = match &input.layout {
        Layout::Out => {
            let (nodes, used, key) = ctx.out(given_root.as_ref());
            (nodes, used, key)
        }
        Layout::Node { base } => {
            let root = given_root.as_ref().map(|(l, c)| CaRef {
                file: l.clone(),
                cert: c,
            });
            if let Some(r) = &root {
                ctx.root(&r.file, r.cert, None);
            }
            let r = ctx.node(
                base,
                input.dir_node_name.as_deref(),
                root.as_ref(),
                &BTreeMap::new(),
            );
            let used = given_root
                .as_ref()
                .map_or(RootUsed::None, |(l, _)| RootUsed::Given(l.clone()));
            let key = given_root.as_ref().and_then(|(_, c)| c.key.clone().ok());
            (vec![r], used, key)
        }
    };
    let files_checked = ctx.scan(root_key);
    let mut problems = ctx.problems;
    problems.sort_by(|a, b| a.file.cmp(&b.file));
    Report {
        problems,
        files_checked,
        nodes: nodes.into_iter().map(|n| (n.name, n.role)).collect(),
        root: root_used,
        plan: input.plan.is_some(),
    }
}

impl<'a> Ctx<'a> {
    fn add(&mut self, p: Problem) {
        self.problems.push(p);
    }

    fn private_key(&mut self, id: &str, bytes: &[u8]) -> Result<PublicKey, String> {
        self.keys
            .entry(id.to_string())
            .or_insert_with(|| public::private_key_file(bytes).map_err(|e| e.to_string()))
            .clone()
    }

    /// The certificate of a file that must hold exactly one. Problems for
    /// anything else in it; the first certificate (what kubeadm uses), if any.
    fn one_cert(&mut self, file: &str, field: &str, bytes: &[u8]) -> Option<Cert> {
        let cf = match CertFile::parse(bytes) {
            Ok(cf) => cf,
            Err(e) => {
                self.add(Problem::new(file, field, format!("not PEM: {e}")));
                return None;
            }
        };
        for l in cf.labels.iter().filter(|l| *l != "CERTIFICATE") {
            self.add(
                Problem::new(file, field, format!("holds a \"{l}\" PEM block"))
                    .expected("only CERTIFICATE"),
            );
        }
        if let Some(e) = &cf.error {
            self.add(Problem::new(file, field, e.clone()));
        }
        let n = cf.labels.iter().filter(|l| *l == "CERTIFICATE").count();
        if n == 0 {
            self.add(
                Problem::new(file, field, "holds no certificate")
                    .expected("1 certificate")
                    .got("0"),
            );
        } else if n > 1 {
            self.add(
                Problem::new(file, field, "more than one certificate; kubeadm reads only the first and check-expiration refuses the file")
                    .expected("1 certificate")
                    .got(n.to_string()),
            );
        }
        cf.certs.into_iter().next()
    }

    fn cert_at(&mut self, file: &str) -> Option<Cert> {
        let bytes = self.tree.file(file)?;
        self.one_cert(file, "certificates", bytes)
    }

    fn validity(&mut self, file: &str, pre: &str, c: &Cert) {
        if self.now < c.not_before {
            self.add(
                Problem::new(file, &format!("{pre}validity"), "not valid yet")
                    .expected(format!("notBefore <= now ({})", fmt_time(self.now)))
                    .got(fmt_time(c.not_before)),
            );
        }
        if self.now > c.not_after {
            self.add(
                Problem::new(file, &format!("{pre}validity"), "expired")
                    .expected(format!("notAfter >= now ({})", fmt_time(self.now)))
                    .got(fmt_time(c.not_after)),
            );
        }
    }

    /// `child` is issued and signed by `ca`, and ends no later.
    fn chains_to(&mut self, file: &str, pre: &str, child: &Cert, ca: &CaRef<'_>) {
        if child.issuer_der != ca.cert.subject_der {
            self.add(
                Problem::new(
                    file,
                    &format!("{pre}issuer"),
                    format!("not issued by {}", ca.file),
                )
                .expected(ca.cert.subject.clone())
                .got(child.issuer.clone()),
            );
        } else if let Err(e) = child.signed_by(ca.cert) {
            self.add(Problem::new(
                file,
                &format!("{pre}signature"),
                format!("does not verify with the key of {}: {e}", ca.file),
            ));
        }
        if let (Some(aki), Some(ski)) = (&child.aki, &ca.cert.ski)
            && aki != ski
        {
            self.add(
                Problem::new(
                    file,
                    &format!("{pre}authorityKeyIdentifier"),
                    format!("is not the subjectKeyIdentifier of {}", ca.file),
                )
                .expected(hex::encode(ski))
                .got(hex::encode(aki)),
            );
        }
        if child.not_after > ca.cert.not_after {
            self.add(
                Problem::new(
                    file,
                    &format!("{pre}validity"),
                    format!("ends after its issuer {}", ca.file),
                )
                .expected(format!("notAfter <= {}", fmt_time(ca.cert.not_after)))
                .got(fmt_time(child.not_after)),
            );
        }
    }

    /// The root: a self-signed CA, valid now.
    fn root(&mut self, file: &str, c: &Cert, given: Option<&Cert>) {
        if let Some(g) = given
            && g.der != c.der
        {
            self.add(
                Problem::new(
                    file,
                    "certificates",
                    "differs from the root given with --root",
                )
                .expected(short_hash(&g.der))
                .got(short_hash(&c.der)),
            );
        }
        if !c.self_issued() {
            self.add(
                Problem::new(file, "issuer", "the root is not self-issued")
                    .expected(c.subject.clone())
                    .got(c.issuer.clone()),
            );
        } else if let Err(e) = c.signed_by(c) {
            self.add(Problem::new(
                file,
                "signature",
                format!("the root's self-signature does not verify: {e}"),
            ));
        }
        self.ca_basics(file, c);
        self.validity(file, "", c);
    }

    fn ca_basics(&mut self, file: &str, c: &Cert) {
        if let Some(e) = &c.bad_extension {
            self.add(Problem::new(
                file,
                "extensions",
                format!("does not decode: {e}"),
            ));
        }
        if !c.is_ca() {
            let got = if c.basic_constraints.is_some() {
                "CA:FALSE"
            } else {
                "no basicConstraints"
            };
            self.add(
                Problem::new(file, "basicConstraints", "not a CA certificate")
                    .expected("CA:TRUE")
                    .got(got),
            );
        }
        match c.key_usage {
            Some(ku) if ku.contains(KeyUsages::KeyCertSign) => {}
            Some(ku) => self.add(
                Problem::new(file, "keyUsage", "cannot sign certificates")
                    .expected("keyCertSign")
                    .got(ku_names(ku)),
            ),
            None => self.add(Problem::new(file, "keyUsage", "missing").expected("keyCertSign")),
        }
        if let Err(e) = &c.key {
            self.add(Problem::new(file, "publicKey", e.clone()));
        }
    }

    /// An intermediate (a node's CA file or OUT/cas/*): a CA, not the root,
    /// issued by the root when known, with the plan's subject.
    fn intermediate(&mut self, file: &str, c: &Cert, role: CaRole, root: Option<&CaRef<'_>>) {
        self.ca_basics(file, c);
        self.validity(file, "", c);
        if let Some(want) = self.plan.and_then(|p| p.ca_subjects.get(&role))
            && want.to_der().ok().as_deref() != Some(c.subject_der.as_slice())
        {
            self.add(
                Problem::new(
                    file,
                    "subject",
                    format!("not the plan's {} CA", role.name()),
                )
                .expected(want.to_string())
                .got(c.subject.clone()),
            );
        }
        if let Some(r) = root {
            let same_key = matches!((&c.key, &r.cert.key), (Ok(a), Ok(b)) if a == b);
            if c.der == r.cert.der || same_key {
                self.add(Problem::new(
                    file,
                    "certificates",
                    format!("is the root ({}); a CA file holds only its intermediate, or every domain trusts every other", r.file),
                ));
            } else {
                self.chains_to(file, "", c, r);
            }
        }
    }

    /// A leaf against its expectation: issuer, validity, extensions, names, key type.
    fn leaf(&mut self, file: &str, pre: &str, c: &Cert, exp: &Expect, ca: Option<&CaRef<'_>>) {
        let f = |s: &str| format!("{pre}{s}");
        if let Some(e) = &c.bad_extension {
            self.add(Problem::new(
                file,
                &f("extensions"),
                format!("does not decode: {e}"),
            ));
        }
        if let Some(ca) = ca {
            self.chains_to(file, pre, c, ca);
        }
        self.validity(file, pre, c);
        match c.basic_constraints {
            Some((false, _)) => {}
            Some((true, _)) => self.add(
                Problem::new(file, &f("basicConstraints"), "a leaf must not be a CA")
                    .expected("CA:FALSE")
                    .got("CA:TRUE"),
            ),
            None => {
                self.add(Problem::new(file, &f("basicConstraints"), "missing").expected("CA:FALSE"))
            }
        }
        let key_type = c.key.as_ref().ok().and_then(|k| k.key_type);
        match c.key_usage {
            None => {
                self.add(Problem::new(file, &f("keyUsage"), "missing").expected("digitalSignature"))
            }
            Some(ku) => {
                if let Some(kt) = exp.key_type {
                    let mut want = flagset::FlagSet::from(KeyUsages::DigitalSignature);
                    if kt.is_rsa() {
                        want |= KeyUsages::KeyEncipherment;
                    }
                    if ku != want {
                        self.add(
                            Problem::new(file, &f("keyUsage"), "not kubeadm's")
                                .expected(ku_names(want))
                                .got(ku_names(ku)),
                        );
                    }
                } else if !ku.contains(KeyUsages::DigitalSignature)
                    || ku.contains(KeyUsages::KeyCertSign)
                    || ku.contains(KeyUsages::CRLSign)
                {
                    let want = if key_type.is_some_and(KeyType::is_rsa) {
                        "digitalSignature, keyEncipherment"
                    } else {
                        "digitalSignature"
                    };
                    self.add(
                        Problem::new(file, &f("keyUsage"), "not a TLS leaf's")
                            .expected(want)
                            .got(ku_names(ku)),
                    );
                }
            }
        }
        let got_eku: BTreeSet<ObjectIdentifier> = c.eku.iter().flatten().copied().collect();
        let want_eku: BTreeSet<ObjectIdentifier> = exp.eku.iter().copied().collect();
        if got_eku != want_eku {
            let got = c.eku.as_deref().map_or("none".into(), eku_text);
            self.add(
                Problem::new(file, &f("extendedKeyUsage"), "wrong")
                    .expected(eku_text(&exp.eku))
                    .got(got),
            );
        }
        if let Some(cn) = &exp.cn
            && (c.cn.len() != 1 || &c.cn[0] != cn)
        {
            self.add(
                Problem::new(file, &f("subject.CN"), "wrong")
                    .expected(cn.clone())
                    .got(list(&c.cn)),
            );
        }
        if !exp.orgs.is_empty() && !exp.orgs.contains(&c.orgs) {
            let want: Vec<String> = exp.orgs.iter().map(|o| orgs_text(o)).collect();
            self.add(
                Problem::new(file, &f("subject.O"), "wrong")
                    .expected(want.join(" or "))
                    .got(orgs_text(&c.orgs)),
            );
        }
        self.sans(file, &f("subjectAltName"), &c.sans, &exp.sans);
        match &c.key {
            Err(e) => self.add(Problem::new(file, &f("publicKey"), e.clone())),
            Ok(k) => match (exp.key_type, k.key_type) {
                (_, None) => self.add(
                    Problem::new(file, &f("publicKey"), "not a key type kubeadm makes")
                        .got(k.kind.clone()),
                ),
                (Some(want), Some(got)) if want != got => self.add(
                    Problem::new(file, &f("publicKey"), "not the plan's leaf_key")
                        .expected(want.name())
                        .got(got.name()),
                ),
                _ => {}
            },
        }
    }

    fn sans(&mut self, file: &str, field: &str, got: &[String], rule: &SanRule) {
        let mut seen = BTreeSet::new();
        for s in got {
            if !seen.insert(s.clone()) {
                self.add(Problem::new(
                    file,
                    field,
                    format!("{s} listed twice (kubeadm de-duplicates)"),
                ));
            }
        }
        match rule {
            SanRule::Exact(want) => {
                for m in want.difference(&seen) {
                    self.add(Problem::new(file, field, format!("missing {m}")));
                }
                for x in seen.difference(want) {
                    self.add(Problem::new(file, field, format!("unexpected {x}")));
                }
            }
            SanRule::AtLeast { names, prefixes } => {
                for m in names.difference(&seen) {
                    self.add(Problem::new(file, field, format!("missing {m}")));
                }
                for p in prefixes {
                    if !seen.iter().any(|s| s.starts_with(p.as_str())) {
                        self.add(Problem::new(file, field, format!("missing {p}<dnsDomain>")));
                    }
                }
            }
        }
    }

    /// A private key against its certificate; `owners` names whose key it is instead.
    fn pair(
        &mut self,
        file: &str,
        field: &str,
        key: &Result<PublicKey, String>,
        cert_label: &str,
        cert: &Cert,
        owners: &HashMap<Vec<u8>, String>,
    ) {
        match (key, &cert.key) {
            (Err(e), _) => self.add(Problem::new(file, field, e.clone())),
            (Ok(k), Ok(ck)) if k != ck => {
                let whose = owners
                    .get(&k.spki_der)
                    .map(|o| format!("; it is the key of {o}"))
                    .unwrap_or_default();
                self.add(
                    Problem::new(file, field, format!("does not match {cert_label}{whose}"))
                        .expected(ck.fingerprint())
                        .got(k.fingerprint()),
                );
            }
            _ => {}
        }
    }

    /// The name and server of a kubeconfig's client certificate, without reporting anything.
    fn peek(&self, file: &str) -> (Option<String>, Option<String>) {
        let Some(kc) = self
            .tree
            .file(file)
            .and_then(|b| KubeconfigFile::parse(b).ok())
        else {
            return (None, None);
        };
        let server = kc
            .clusters
            .as_ref()
            .and_then(|c| c.first())
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.clone());
        let cn = kc
            .users
            .as_ref()
            .and_then(|u| u.first())
            .and_then(|u| u.user.as_ref())
            .and_then(|u| u.cert_data.as_deref())
            .and_then(|d| base64_data(d).ok())
            .and_then(|pem| CertFile::parse(&pem).ok())
            .and_then(|f| f.certs.into_iter().next())
            .and_then(|c| c.cn.into_iter().next());
        (cn, server)
    }

    /// One node at `base`. `dir_name`: the name its directory implies;
    /// `out_cas`: OUT/cas/* by role, which the node's CA files must equal.
    fn node(
        &mut self,
        base: &str,
        dir_name: Option<&str>,
        root: Option<&CaRef<'_>>,
        out_cas: &BTreeMap<CaRole, (String, Vec<u8>)>,
    ) -> NodeResult {
        let p = |rel: &str| format!("{base}{rel}");
        let (kubelet_cn, _) = self.peek(&p("kubelet.conf"));
        let kubelet_name = kubelet_cn
            .as_deref()
            .and_then(|cn| cn.strip_prefix("system:node:"))
            .map(str::to_string);
        let name = dir_name.map(str::to_string).or(kubelet_name);
        let has_apiserver = self.tree.get(&p("pki/apiserver.crt")).is_some();

        // The expectations: the plan's, or kubeadm's fixed parts.
        let mut role = if has_apiserver {
            Role::ControlPlane
        } else {
            Role::Worker
        };
        let mut exps = None;
        if let Some(plan) = self.plan {
            match name.as_deref().map(|n| (n, expect::plan_node(&plan.cluster, n))) {
                Some((n, Some(pn))) => {
                    role = if matches!(pn, PlanNode::Worker) { Role::Worker } else { Role::ControlPlane };
                    exps = Some(expect::from_plan(&plan.cluster, n, pn));
                }
                Some((n, None)) => {
                    self.add(Problem::new(&dir_label(base), "node", format!("node \"{n}\" is not in the plan; checked against kubeadm's fixed profiles only")))
                }
                None => self.add(Problem::new(
                    &dir_label(base),
                    "node",
                    "cannot tell which node this is (no nodes/<name>/ path, no readable kubelet.conf); checked against kubeadm's fixed profiles only",
                )),
            }
        }
        let from_plan = exps.is_some();
        let exps = exps.unwrap_or_else(|| match role {
            Role::ControlPlane => {
                let (_, cm_server) = self.peek(&p("controller-manager.conf"));
                let adv = cm_server
                    .and_then(|s| parse::https_host_port(&s).ok())
                    .and_then(|(h, _)| h.parse::<IpAddr>().ok());
                expect::fixed_control_plane(name.as_deref(), adv)
            }
            Role::Worker => expect::fixed_worker(name.as_deref()),
        });

        // In CSR mode a node keeps its keys: the CSRs travel with the bundle
        // instead, and key files, sa.key and client-key-data may be absent.
        let tree = self.tree;
        let has = |rel: &str| tree.get(&p(rel)).is_some();
        let csr_mode = match self.plan {
            Some(pl) => pl.cluster.mode == LeafMode::Csr,
            None => tree.under(base).any(|(rel, _)| rel.ends_with(".csr")),
        };

        // Which files belong here.
        let ca_files: Vec<(&str, CaRole)> = CA_FILES
            .iter()
            .filter(|(_, r)| role == Role::ControlPlane || *r == CaRole::Kubernetes)
            .map(|(f, r)| (*f, *r))
            .collect();
        let mut wanted: BTreeMap<String, bool> = BTreeMap::new();
        for (f, _) in &ca_files {
            wanted.insert(f.to_string(), true);
        }
        for e in &exps {
            if e.kubeconfig {
                wanted.insert(e.path.clone(), e.required);
            } else {
                wanted.insert(e.cert_file(), e.required);
                let kept = csr_mode && has(&e.csr_file());
                wanted.insert(e.key_file(), e.required && !kept);
            }
            if csr_mode {
                wanted.insert(e.csr_file(), false);
            }
        }
        if role == Role::ControlPlane {
            wanted.insert("pki/sa.key".into(), !csr_mode);
            wanted.insert("pki/sa.pub".into(), true);
        }
        let why = match (from_plan, &name) {
            (true, Some(n)) => format!("by the plan for {} node {n}", role.name()),
            _ => format!("in every {} node", role.name()),
        };
        for (f, required) in &wanted {
            if *required && self.tree.get(&p(f)).is_none() {
                self.add(Problem::new(&p(f), "file", "missing").expected(why.clone()));
            }
        }
        let extra: Vec<String> = self
            .tree
            .under(base)
            .filter(|(rel, e)| {
                !matches!(e.content, Content::Dir)
                    && !wanted.contains_key(*rel)
                    && !is_ca_key_name(rel)
            })
            .map(|(rel, _)| rel.to_string())
            .collect();
        for rel in extra {
            self.add(Problem::new(
                &p(&rel),
                "file",
                format!("unexpected: not part of a kubeadm {} node", role.name()),
            ));
        }

        // The CA files.
        let mut cas: BTreeMap<CaRole, Cert> = BTreeMap::new();
        for (f, r) in &ca_files {
            let file = p(f);
            let Some(c) = self.cert_at(&file) else {
                continue;
            };
            self.intermediate(&file, &c, *r, root);
            if let (Some((out_file, out_der)), Some(bytes)) =
                (out_cas.get(r), self.tree.file(&file))
                && bytes != out_der.as_slice()
            {
                self.add(
                    Problem::new(&file, "content", format!("differs from {out_file}"))
                        .expected(short_hash(out_der))
                        .got(short_hash(bytes)),
                );
            }
            cas.insert(*r, c);
        }
        let ca_list: Vec<(CaRole, &Cert)> = cas.iter().map(|(r, c)| (*r, c)).collect();
        for (i, (r1, c1)) in ca_list.iter().enumerate() {
            for (r2, c2) in &ca_list[i + 1..] {
                if matches!((&c1.key, &c2.key), (Ok(a), Ok(b)) if a == b) {
                    self.add(Problem::new(
                        &p(ca_label(*r2)),
                        "publicKey",
                        format!(
                            "same key as {}: each domain needs its own CA",
                            p(ca_label(*r1))
                        ),
                    ));
                }
            }
        }
        let ca_ref = |r: CaRole| {
            cas.get(&r).map(|c| CaRef {
                file: p(ca_label(r)),
                cert: c,
            })
        };

        // Leaves: parse everything first, so a swapped key can be named.
        struct Leaf<'e> {
            exp: &'e Expect,
            file: String,
            cert: Option<Cert>,
            key: Option<(String, &'static str, Result<PublicKey, String>)>,
            /// The CSR beside it (CSR mode): its file and public key.
            csr: Option<(String, Result<PublicKey, String>)>,
        }
        let mut leaves: Vec<Leaf<'_>> = Vec::new();
        let mut servers = Vec::new();
        let ca_crt = self.tree.file(&p("pki/ca.crt")).map(<[u8]>::to_vec);
        for e in &exps {
            if e.kubeconfig {
                let file = p(&e.path);
                let keyless = csr_mode && has(&e.csr_file());
                if let Some(kc) =
                    self.kubeconfig(&file, e, ca_crt.as_deref(), &p("pki/ca.crt"), keyless)
                {
                    if let Some(s) = kc.server {
                        servers.push((file.clone(), s));
                    }
                    leaves.push(Leaf {
                        exp: e,
                        file: file.clone(),
                        cert: kc.cert,
                        key: kc.key.map(|k| (file, "client-key-data", k)),
                        csr: self.csr(&p(&e.csr_file())),
                    });
                }
            } else {
                let file = p(&e.cert_file());
                let kf = p(&e.key_file());
                let cert = self.cert_at(&file);
                let key = self.tree.file(&kf).map(|b| b.to_vec()).map(|b| {
                    let k = self.private_key(&kf, &b);
                    (kf.clone(), "key", k)
                });
                if cert.is_some() || key.is_some() {
                    leaves.push(Leaf {
                        exp: e,
                        file,
                        cert,
                        key,
                        csr: self.csr(&p(&e.csr_file())),
                    });
                }
            }
        }
        let mut owners: HashMap<Vec<u8>, String> = HashMap::new();
        for l in &leaves {
            if let Some(Ok(k)) = l.cert.as_ref().map(|c| &c.key) {
                if let Some(first) = owners.get(&k.spki_der) {
                    let what = format!("same key as {first}: each certificate needs its own key");
                    self.add(Problem::new(
                        &l.file,
                        if l.exp.kubeconfig {
                            "client-certificate-data.publicKey"
                        } else {
                            "publicKey"
                        },
                        what,
                    ));
                } else {
                    owners.insert(k.spki_der.clone(), l.file.clone());
                }
            }
        }
        let mut apiserver_sans = None;
        let mut admin_orgs = None;
        for l in &leaves {
            let pre = if l.exp.kubeconfig {
                "client-certificate-data."
            } else {
                ""
            };
            if let Some(c) = &l.cert {
                let ca = ca_ref(l.exp.issuer);
                self.leaf(&l.file, pre, c, l.exp, ca.as_ref());
                if l.exp.path == "pki/apiserver" {
                    apiserver_sans = Some(c.sans.clone());
                }
                if l.exp.path == "admin.conf" {
                    admin_orgs = Some(c.orgs.clone());
                }
                let (own, other) = if l.exp.kubeconfig {
                    (
                        "client-certificate-data".to_string(),
                        format!("{}'s client-certificate-data", l.file),
                    )
                } else {
                    (l.file.clone(), l.file.clone())
                };
                if let Some((kf, field, k)) = &l.key {
                    self.pair(kf, field, k, &own, c, &owners);
                }
                if let Some((cf, k)) = &l.csr {
                    self.pair(cf, "publicKey", k, &other, c, &owners);
                }
            } else {
                if let Some((kf, field, Err(e))) = &l.key {
                    self.add(Problem::new(kf, field, e.clone()));
                }
                if let Some((cf, Err(e))) = &l.csr {
                    self.add(Problem::new(cf, "publicKey", e.clone()));
                }
            }
        }
        // Without a plan and a node name, the etcd certificates must at least agree.
        if self.plan.is_none() && name.is_none() {
            let cn = |path: &str| {
                leaves
                    .iter()
                    .find(|l| l.exp.path == path)
                    .and_then(|l| l.cert.as_ref())
                    .map(|c| c.cn.clone())
            };
            if let (Some(s), Some(pe)) = (cn("pki/etcd/server"), cn("pki/etcd/peer"))
                && s != pe
            {
                self.add(
                    Problem::new(
                        &p("pki/etcd/peer.crt"),
                        "subject.CN",
                        "not the server's (both are the node name)",
                    )
                    .expected(list(&s))
                    .got(list(&pe)),
                );
            }
        }
        // Every kubeconfig's server must be a name the API server's certificate holds.
        if let Some(sans) = &apiserver_sans {
            for (file, server) in &servers {
                if let Ok((host, _)) = parse::https_host_port(server) {
                    let want = parse::host_san(&host);
                    if !sans.contains(&want) {
                        self.add(
                            Problem::new(
                                file,
                                "server",
                                format!(
                                    "{want} is not in {}'s subjectAltName: TLS to it fails",
                                    p("pki/apiserver.crt")
                                ),
                            )
                            .got(server.clone()),
                        );
                    }
                }
            }
        }
        if role == Role::ControlPlane {
            self.service_account(base);
        }
        NodeResult {
            base: base.to_string(),
            name,
            role,
            apiserver_sans,
            servers,
            has_super_admin: self.tree.get(&p("super-admin.conf")).is_some(),
            admin_orgs,
        }
    }

    /// The public key of a CSR file, if there is one.
    fn csr(&self, file: &str) -> Option<(String, Result<PublicKey, String>)> {
        self.tree
            .file(file)
            .map(|b| (file.to_string(), parse::csr_public(b)))
    }

    /// sa.key and sa.pub: a key pair (kube-apiserver signs with one and checks with the other).
    fn service_account(&mut self, base: &str) {
        let kf = format!("{base}pki/sa.key");
        let pf = format!("{base}pki/sa.pub");
        let key = self
            .tree
            .file(&kf)
            .map(<[u8]>::to_vec)
            .map(|b| self.private_key(&kf, &b));
        let public = self
            .tree
            .file(&pf)
            .map(|b| public::public_key_file(b).map_err(|e| e.to_string()));
        if let Some(Err(e)) = &key {
            self.add(Problem::new(&kf, "key", e.clone()));
        }
        if let Some(Err(e)) = &public {
            self.add(Problem::new(&pf, "publicKey", e.clone()));
        }
        if let (Some(Ok(k)), Some(Ok(pb))) = (&key, &public)
            && k != pb
        {
            self.add(
                Problem::new(&kf, "key", format!("does not match {pf}"))
                    .expected(pb.fingerprint())
                    .got(k.fingerprint()),
            );
        }
        if let (Some(Ok(k)), Some(plan)) = (&key, self.plan)
            && k.key_type != Some(plan.cluster.sa_key)
        {
            self.add(
                Problem::new(&kf, "key", "not the plan's service_account_key")
                    .expected(plan.cluster.sa_key.name())
                    .got(k.kind.clone()),
            );
        }
    }

    /// A kubeconfig's structure, its CA data, server and embedded client
    /// certificate and key. None when the file is absent or unreadable YAML.
    fn kubeconfig(
        &mut self,
        file: &str,
        exp: &Expect,
        ca_crt: Option<&[u8]>,
        ca_file: &str,
        keyless_ok: bool,
    ) -> Option<KcParts> {
        let bytes = self.tree.file(file)?;
        let kc = match KubeconfigFile::parse(bytes) {
            Ok(k) => k,
            Err(e) => {
                self.add(Problem::new(file, "yaml", e));
                return None;
            }
        };
        if kc.kind.as_deref() != Some("Config") {
            self.add(
                Problem::new(file, "kind", "wrong")
                    .expected("Config")
                    .got(kc.kind.clone().unwrap_or_else(|| "none".into())),
            );
        }
        if kc.api_version.as_deref() != Some("v1") {
            self.add(
                Problem::new(file, "apiVersion", "wrong")
                    .expected("v1")
                    .got(kc.api_version.clone().unwrap_or_else(|| "none".into())),
            );
        }
        let mut one = |field: &str, n: usize| {
            if n != 1 {
                self.add(
                    Problem::new(file, field, "kubeadm writes exactly one")
                        .expected("1")
                        .got(n.to_string()),
                );
            }
        };
        one("clusters", kc.clusters.as_ref().map_or(0, Vec::len));
        one("users", kc.users.as_ref().map_or(0, Vec::len));
        one("contexts", kc.contexts.as_ref().map_or(0, Vec::len));
        let mut parts = KcParts {
            server: None,
            cert: None,
            key: None,
        };

        let cluster = kc.clusters.as_ref().and_then(|v| v.first());
        let cluster_name = cluster.and_then(|c| c.name.clone());
        if let Some(c) = cluster {
            match (&c.name, &exp.cluster) {
                (None, _) => self.add(Problem::new(file, "clusters[0].name", "missing")),
                (Some(n), Some(want)) if n != want => self.add(
                    Problem::new(file, "clusters[0].name", "not the plan's cluster name")
                        .expected(want.clone())
                        .got(n.clone()),
                ),
                _ => {}
            }
            match &c.cluster {
                None => self.add(Problem::new(file, "clusters[0].cluster", "missing")),
                Some(entry) => {
                    match &entry.server {
                        None => self.add(
                            Problem::new(file, "server", "missing")
                                .expected("https://<host>:<port>"),
                        ),
                        Some(s) => {
                            if let Err(e) = parse::https_host_port(s) {
                                self.add(
                                    Problem::new(file, "server", e)
                                        .expected("https://<host>:<port>")
                                        .got(s.clone()),
                                );
                            } else if let Some(want) = exp.server.as_ref().filter(|w| *w != s) {
                                self.add(
                                    Problem::new(file, "server", "not the plan's endpoint")
                                        .expected(want.clone())
                                        .got(s.clone()),
                                );
                            }
                            parts.server = Some(s.clone());
                        }
                    }
                    if entry.insecure {
                        self.add(
                            Problem::new(
                                file,
                                "insecure-skip-tls-verify",
                                "set: the client would not check the API server",
                            )
                            .expected("false")
                            .got("true"),
                        );
                    }
                    if let Some(f) = &entry.ca_file {
                        self.add(
                            Problem::new(
                                file,
                                "certificate-authority",
                                "names a file; kubeadm embeds certificate-authority-data",
                            )
                            .got(f.clone()),
                        );
                    }
                    match entry.ca_data.as_deref().map(base64_data) {
                        None => self.add(
                            Problem::new(file, "certificate-authority-data", "missing")
                                .expected(format!("the bytes of {ca_file}")),
                        ),
                        Some(Err(e)) => {
                            self.add(Problem::new(file, "certificate-authority-data", e))
                        }
                        Some(Ok(data)) => match ca_crt {
                            Some(ca) if ca != data.as_slice() => self.add(
                                Problem::new(
                                    file,
                                    "certificate-authority-data",
                                    format!("differs from {ca_file}"),
                                )
                                .expected(short_hash(ca))
                                .got(short_hash(&data)),
                            ),
                            Some(_) => {}
                            None => {
                                // No ca.crt to compare with (reported as missing): the data must still be one CA.
                                if let Some(c) =
                                    self.one_cert(file, "certificate-authority-data", &data)
                                    && !c.is_ca()
                                {
                                    self.add(Problem::new(
                                        file,
                                        "certificate-authority-data",
                                        "not a CA certificate",
                                    ));
                                }
                            }
                        },
                    }
                }
            }
        }

        let user = kc.users.as_ref().and_then(|v| v.first());
        let user_name = user.and_then(|u| u.name.clone());
        if let Some(u) = user {
            match &u.user {
                None => self.add(Problem::new(file, "users[0].user", "missing")),
                Some(entry) => {
                    if !entry.other.is_empty() {
                        let keys: Vec<String> = entry.other.keys().cloned().collect();
                        self.add(
                            Problem::new(
                                file,
                                "users[0].user",
                                "other credentials besides the client certificate",
                            )
                            .got(keys.join(", ")),
                        );
                    }
                    if entry.cert_file.is_some() || entry.key_file.is_some() {
                        self.add(Problem::new(
                            file,
                            "users[0].user",
                            "names certificate or key files; kubeadm embeds the data",
                        ));
                    }
                    match entry.cert_data.as_deref().map(base64_data) {
                        None => self.add(Problem::new(file, "client-certificate-data", "missing")),
                        Some(Err(e)) => self.add(Problem::new(file, "client-certificate-data", e)),
                        Some(Ok(pem)) => {
                            parts.cert = self.one_cert(file, "client-certificate-data", &pem)
                        }
                    }
                    match entry.key_data.as_ref().map(|d| base64_data(d)) {
                        None if keyless_ok => {}
                        None => self.add(Problem::new(file, "client-key-data", "missing")),
                        Some(Err(e)) => self.add(Problem::new(file, "client-key-data", e)),
                        Some(Ok(pem)) => {
                            parts.key =
                                Some(self.private_key(&format!("{file}#client-key-data"), &pem))
                        }
                    }
                }
            }
            match (&user_name, parts.cert.as_ref().map(|c| &c.cn)) {
                (None, _) => self.add(Problem::new(file, "users[0].name", "missing")),
                (Some(n), Some(cn)) if cn.len() != 1 || &cn[0] != n => self.add(
                    Problem::new(file, "users[0].name", "not the client certificate's CN")
                        .expected(list(cn))
                        .got(n.clone()),
                ),
                _ => {}
            }
        }

        let context = kc.contexts.as_ref().and_then(|v| v.first());
        if let Some(x) = context {
            let entry = x.context.as_ref();
            let c_cluster = entry.and_then(|e| e.cluster.clone());
            let c_user = entry.and_then(|e| e.user.clone());
            if let Some(cn) = &cluster_name
                && c_cluster.as_ref() != Some(cn)
            {
                self.add(
                    Problem::new(
                        file,
                        "contexts[0].context.cluster",
                        "not the cluster's name",
                    )
                    .expected(cn.clone())
                    .got(c_cluster.clone().unwrap_or_else(|| "none".into())),
                );
            }
            if let Some(un) = &user_name
                && c_user.as_ref() != Some(un)
            {
                self.add(
                    Problem::new(file, "contexts[0].context.user", "not the user's name")
                        .expected(un.clone())
                        .got(c_user.clone().unwrap_or_else(|| "none".into())),
                );
            }
            if let (Some(un), Some(cn)) = (&user_name, &cluster_name) {
                let want = format!("{un}@{cn}");
                if x.name.as_ref() != Some(&want) {
                    self.add(
                        Problem::new(file, "contexts[0].name", "not <user>@<cluster>")
                            .expected(want)
                            .got(x.name.clone().unwrap_or_else(|| "none".into())),
                    );
                }
            }
            match (&kc.current_context, &x.name) {
                (None, _) => self.add(
                    Problem::new(file, "current-context", "not set")
                        .expected(x.name.clone().unwrap_or_default()),
                ),
                (Some(cur), Some(n)) if cur != n => self.add(
                    Problem::new(file, "current-context", "not the context")
                        .expected(n.clone())
                        .got(cur.clone()),
                ),
                _ => {}
            }
        }
        Some(parts)
    }

    /// A ceremony output: root, cas/, chains/, SHA256SUMS, every node, and
    /// the checks across nodes.
    fn out(
        &mut self,
        given: Option<&(String, Cert)>,
    ) -> (Vec<NodeResult>, RootUsed, Option<PublicKey>) {
        let out_root = self.cert_at("root-ca.crt");
        if self.tree.get("root-ca.crt").is_none() {
            self.add(Problem::new("root-ca.crt", "file", "missing"));
        }
        if let Some(r) = &out_root {
            self.root("root-ca.crt", r, given.map(|(_, c)| c));
        }
        let (root_ref, used) = match (given, &out_root) {
            (Some((l, c)), _) => (
                Some(CaRef {
                    file: l.clone(),
                    cert: c,
                }),
                RootUsed::Given(l.clone()),
            ),
            (None, Some(c)) => (
                Some(CaRef {
                    file: "root-ca.crt".into(),
                    cert: c,
                }),
                RootUsed::Out,
            ),
            (None, None) => (None, RootUsed::None),
        };
        if let (Some((l, c)), None) = (given, &out_root) {
            self.root(l, c, None);
        }

        let mut out_cas: BTreeMap<CaRole, (String, Vec<u8>)> = BTreeMap::new();
        for role in CaRole::INTERMEDIATES {
            let file = format!("cas/{}-ca.crt", role.name());
            if self.tree.get(&file).is_none() {
                self.add(Problem::new(&file, "file", "missing"));
                continue;
            }
            if let Some(c) = self.cert_at(&file) {
                self.intermediate(&file, &c, role, root_ref.as_ref());
            }
            if let Some(b) = self.tree.file(&file) {
                out_cas.insert(role, (file.clone(), b.to_vec()));
            }
            let chain = format!("chains/{}-ca-chain.crt", role.name());
            match self.tree.file(&chain).map(CertFile::parse) {
                None => self.add(Problem::new(&chain, "file", "missing")),
                Some(Err(e)) => self.add(Problem::new(
                    &chain,
                    "certificates",
                    format!("not PEM: {e}"),
                )),
                Some(Ok(cf)) => {
                    let ders: Vec<&[u8]> = cf.certs.iter().map(|c| c.der.as_slice()).collect();
                    let inter = self
                        .tree
                        .file(&file)
                        .and_then(|b| CertFile::parse(b).ok())
                        .and_then(|f| f.certs.into_iter().next());
                    let want: Vec<Option<&[u8]>> = vec![
                        inter.as_ref().map(|c| c.der.as_slice()),
                        root_ref.as_ref().map(|r| r.cert.der.as_slice()),
                    ];
                    if cf.labels.len() != 2 || cf.certs.len() != 2 {
                        self.add(
                            Problem::new(
                                &chain,
                                "certificates",
                                "must hold the intermediate then the root",
                            )
                            .expected("2 certificates")
                            .got(cf.labels.len().to_string()),
                        );
                    } else {
                        for (i, (got, w)) in ders.iter().zip(&want).enumerate() {
                            if let Some(w) = w
                                && got != w
                            {
                                let which = if i == 0 {
                                    file.clone()
                                } else {
                                    root_ref
                                        .as_ref()
                                        .map_or("the root".into(), |r| r.file.clone())
                                };
                                self.add(
                                    Problem::new(
                                        &chain,
                                        "certificates",
                                        format!("certificate {} is not {which}", i + 1),
                                    )
                                    .expected(short_hash(w))
                                    .got(short_hash(got)),
                                );
                            }
                        }
                    }
                }
            }
        }

        self.sums();

        let mut node_names: Vec<String> = self
            .tree
            .children("nodes/")
            .into_iter()
            .filter(|n| self.tree.is_dir(&format!("nodes/{n}")))
            .map(str::to_string)
            .collect();
        for n in self.tree.children("nodes/") {
            if !self.tree.is_dir(&format!("nodes/{n}")) {
                self.add(Problem::new(
                    &format!("nodes/{n}"),
                    "file",
                    "unexpected: nodes/ holds one directory per node",
                ));
            }
        }
        if !self.tree.is_dir("nodes") {
            self.add(
                Problem::new("nodes", "file", "missing").expected("nodes/<node>/etc/kubernetes"),
            );
        }
        if let Some(plan) = self.plan {
            let cl = &plan.cluster;
            let planned: Vec<String> = cl
                .control_plane
                .iter()
                .map(|n| n.name.clone())
                .chain(cl.workers.iter().cloned())
                .collect();
            for n in &planned {
                if !node_names.contains(n) {
                    self.add(Problem::new(
                        &format!("nodes/{n}/etc/kubernetes"),
                        "file",
                        "missing: the plan has this node",
                    ));
                }
            }
            for n in &node_names {
                if !planned.contains(n) {
                    self.add(Problem::new(
                        &format!("nodes/{n}"),
                        "file",
                        "unexpected: the plan has no such node",
                    ));
                }
            }
            // Plan order: the first control-plane node first.
            node_names.sort_by_key(|n| planned.iter().position(|p| p == n).unwrap_or(usize::MAX));
        }
        let mut results = Vec::new();
        for n in &node_names {
            let top = format!("nodes/{n}/");
            let base = format!("{top}etc/kubernetes/");
            if !self.tree.is_dir(&format!("{top}etc/kubernetes")) {
                self.add(Problem::new(
                    &format!("{top}etc/kubernetes"),
                    "file",
                    "missing",
                ));
                continue;
            }
            let stray: Vec<String> = self
                .tree
                .under(&top)
                .map(|(rel, _)| rel)
                .filter(|rel| {
                    *rel != "etc" && *rel != "etc/kubernetes" && !rel.starts_with("etc/kubernetes/")
                })
                .map(|rel| format!("{top}{rel}"))
                .collect();
            for s in stray {
                self.add(Problem::new(
                    &s,
                    "file",
                    "unexpected: a node directory holds only etc/kubernetes",
                ));
            }
            results.push(self.node(&base, Some(n), root_ref.as_ref(), &out_cas));
        }
        self.across(&results);
        self.users(out_cas.get(&CaRole::Kubernetes));
        let root_key = root_ref.as_ref().and_then(|r| r.cert.key.clone().ok());
        (results, used, root_key)
    }

    /// OUT/users/<name>.conf, the plan's `[[users]]`: kubeconfigs like a
    /// node's, issued by the kubernetes CA; without client-key-data when the
    /// user brought a CSR and keeps the key.
    fn users(&mut self, ca: Option<&(String, Vec<u8>)>) {
        let tree = self.tree;
        let mut names: Vec<String> = Vec::new();
        for f in tree.children("users/") {
            match f.strip_suffix(".conf") {
                Some(n) if tree.file(&format!("users/{f}")).is_some() => names.push(n.to_string()),
                _ => self.add(Problem::new(
                    &format!("users/{f}"),
                    "file",
                    "unexpected: users/ holds one <name>.conf per user",
                )),
            }
        }
        if let Some(plan) = self.plan {
            for (n, _) in &plan.users {
                if !names.contains(n) {
                    self.add(Problem::new(
                        &format!("users/{n}.conf"),
                        "file",
                        "missing: the plan has this user",
                    ));
                }
            }
            for n in &names {
                if !plan.users.iter().any(|(u, _)| u == n) {
                    self.add(Problem::new(
                        &format!("users/{n}.conf"),
                        "file",
                        "unexpected: the plan has no such user",
                    ));
                }
            }
        }
        let ca_cert = ca
            .and_then(|(_, b)| CertFile::parse(b).ok())
            .and_then(|f| f.certs.into_iter().next());
        for n in names {
            let file = format!("users/{n}.conf");
            let cl = self.plan.map(|p| &p.cluster);
            let groups = self
                .plan
                .and_then(|p| p.users.iter().find(|(u, _)| *u == n))
                .map(|(_, g)| {
                    let mut g = g.clone();
                    g.sort();
                    g
                });
            let exp = Expect {
                path: file.clone(),
                kubeconfig: true,
                required: true,
                issuer: CaRole::Kubernetes,
                cn: Some(n.clone()),
                orgs: groups.into_iter().collect(),
                eku: vec![crate::x509::profile::ID_KP_CLIENT_AUTH],
                sans: SanRule::Exact(BTreeSet::new()),
                key_type: None,
                server: cl.and_then(|cl| {
                    crate::profile::kubeadm::cluster_server(
                        cl,
                        cl.control_plane.first().map(|c| c.address),
                    )
                }),
                cluster: cl.map(|cl| cl.name.clone()),
            };
            let ca_file = ca.map_or("cas/kubernetes-ca.crt", |(f, _)| f.as_str());
            let Some(kc) =
                self.kubeconfig(&file, &exp, ca.map(|(_, b)| b.as_slice()), ca_file, true)
            else {
                continue;
            };
            if let Some(c) = &kc.cert {
                let ca_ref = ca_cert.as_ref().map(|cert| CaRef {
                    file: ca_file.to_string(),
                    cert,
                });
                self.leaf(&file, "client-certificate-data.", c, &exp, ca_ref.as_ref());
                if let Some(k) = &kc.key {
                    self.pair(
                        &file,
                        "client-key-data",
                        k,
                        "client-certificate-data",
                        c,
                        &HashMap::new(),
                    );
                }
            }
        }
    }

    /// Checks that need every node: one service-account key, super-admin.conf, workers' server.
    fn across(&mut self, nodes: &[NodeResult]) {
        let cps: Vec<&NodeResult> = nodes
            .iter()
            .filter(|n| n.role == Role::ControlPlane)
            .collect();
        if let Some(first) = cps.first() {
            for f in ["pki/sa.key", "pki/sa.pub"] {
                let a = format!("{}{f}", first.base);
                let Some(want) = self.tree.file(&a) else {
                    continue;
                };
                for other in &cps[1..] {
                    let b = format!("{}{f}", other.base);
                    if let Some(got) = self.tree.file(&b)
                        && got != want
                    {
                        self.add(
                                Problem::new(&b, "content", format!("differs from {a}: every control-plane node needs the same service-account key"))
                                    .expected(short_hash(want))
                                    .got(short_hash(got)),
                            );
                    }
                }
            }
            if self.plan.is_none() {
                let with: Vec<&&NodeResult> = cps.iter().filter(|n| n.has_super_admin).collect();
                let modern = cps.iter().any(|n| {
                    n.admin_orgs
                        .as_ref()
                        .is_some_and(|o| o.iter().any(|g| g == CLUSTER_ADMINS))
                });
                if with.is_empty() && modern {
                    self.add(Problem::new(
                        &format!("{}super-admin.conf", first.base),
                        "file",
                        "missing on every control-plane node: admin.conf is in kubeadm:cluster-admins, and kubeadm init needs super-admin.conf to bind that group",
                    ));
                }
                for n in with.iter().skip(1) {
                    self.add(Problem::new(
                        &format!("{}super-admin.conf", n.base),
                        "file",
                        format!("also on {}: kubeadm puts this system:masters credential on the first control-plane node only", with[0].base.trim_end_matches('/')),
                    ));
                }
            }
        }
        let all_sans: BTreeSet<&String> = cps
            .iter()
            .filter_map(|n| n.apiserver_sans.as_ref())
            .flatten()
            .collect();
        if !cps.is_empty() && !all_sans.is_empty() {
            for w in nodes.iter().filter(|n| n.role == Role::Worker) {
                for (file, server) in &w.servers {
                    if let Ok((host, _)) = parse::https_host_port(server) {
                        let want = parse::host_san(&host);
                        if !all_sans.contains(&want) {
                            self.add(Problem::new(file, "server", format!("{want} is in no control-plane node's apiserver.crt: TLS to it fails")).got(server.clone()));
                        }
                    }
                }
            }
        }
    }

    /// OUT/SHA256SUMS (`sha256sum -c` format): every listed file matches and every file is listed.
    fn sums(&mut self) {
        let Some(bytes) = self.tree.file("SHA256SUMS") else {
            if self.tree.get("SHA256SUMS").is_none() {
                self.add(Problem::new("SHA256SUMS", "file", "missing"));
            }
            return;
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            self.add(Problem::new("SHA256SUMS", "content", "not UTF-8 text"));
            return;
        };
        let mut listed: BTreeMap<String, String> = BTreeMap::new();
        let mut bad = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed = line
                .get(..64)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| {
                    line.get(64..66)
                        .filter(|s| *s == "  " || *s == " *")
                        .map(|_| h)
                })
                .and_then(|h| {
                    line.get(66..)
                        .filter(|p| !p.is_empty())
                        .map(|p| (h.to_ascii_lowercase(), p))
                });
            match parsed {
                None => bad.push(
                    Problem::new("SHA256SUMS", &format!("line {}", i + 1), "malformed")
                        .expected("<64 hex digits>  <relative path>")
                        .got(line.to_string()),
                ),
                Some((_, path))
                    if path.starts_with('/')
                        || path
                            .split('/')
                            .any(|c| c == ".." || c == "." || c.is_empty()) =>
                {
                    bad.push(
                        Problem::new(
                            "SHA256SUMS",
                            &format!("line {}", i + 1),
                            "not a plain relative path",
                        )
                        .got(path.to_string()),
                    )
                }
                Some((_, path)) if listed.contains_key(path) => bad.push(Problem::new(
                    "SHA256SUMS",
                    &format!("line {}", i + 1),
                    format!("lists {path} twice"),
                )),
                Some((h, path)) => {
                    listed.insert(path.to_string(), h);
                }
            }
        }
        self.problems.extend(bad);
        for (path, want) in &listed {
            match self.tree.get(path).map(|e| &e.content) {
                None => self.add(Problem::new(
                    path,
                    "sha256",
                    "listed in SHA256SUMS but missing",
                )),
                Some(Content::File(b)) => {
                    let got = hex::encode(crate::x509::sha256(b));
                    if &got != want {
                        self.add(
                            Problem::new(path, "sha256", "differs from SHA256SUMS")
                                .expected(want.clone())
                                .got(got),
                        );
                    }
                }
                Some(_) => self.add(Problem::new(
                    path,
                    "sha256",
                    "listed in SHA256SUMS but not a readable regular file",
                )),
            }
        }
        let unlisted: Vec<String> = self
            .tree
            .entries
            .iter()
            .filter(|(k, e)| {
                !matches!(e.content, Content::Dir)
                    && k.as_str() != "SHA256SUMS"
                    && !AFTER_MANIFEST.contains(&k.as_str())
                    && !listed.contains_key(k.as_str())
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in unlisted {
            self.add(Problem::new(&k, "sha256", "not listed in SHA256SUMS"));
        }
        // The transcript, written after the manifest, binds it by its hash.
        let stated = self
            .tree
            .file("transcript.md")
            .and_then(transcript_sums_hash);
        if let Some(stated) = stated {
            let got = hex::encode(crate::x509::sha256(bytes));
            if stated != got {
                self.add(
                    Problem::new(
                        "transcript.md",
                        "SHA256SUMS SHA-256",
                        "is not the hash of SHA256SUMS",
                    )
                    .expected(got)
                    .got(stated),
                );
            }
        }
    }

    /// Over every entry: file kinds, modes, CA key files, and any private
    /// key (key file, PEM block, kubeconfig client-key-data) that belongs to
    /// a CA. Returns the number of regular files.
    fn scan(&mut self, root_key: Option<PublicKey>) -> usize {
        let tree = self.tree;
        // Every CA certificate anywhere, with where it was seen.
        let mut ca_keys: Vec<(PublicKey, String)> = Vec::new();
        let mut note_ca = |k: &PublicKey, what: String| {
            if !ca_keys.iter().any(|(x, _)| x == k) {
                ca_keys.push((k.clone(), what));
            }
        };
        if let Some(k) = &root_key {
            note_ca(k, "the root".into());
        }
        for (path, e) in &tree.entries {
            let Content::File(b) = &e.content else {
                continue;
            };
            let certs: Vec<Cert> = if path.ends_with(".conf") {
                KubeconfigFile::parse(b)
                    .ok()
                    .and_then(|kc| kc.clusters)
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.cluster.and_then(|c| c.ca_data))
                    .filter_map(|d| base64_data(&d).ok())
                    .filter_map(|pem| CertFile::parse(&pem).ok())
                    .flat_map(|f| f.certs)
                    .collect()
            } else {
                CertFile::parse(b).map(|f| f.certs).unwrap_or_default()
            };
            for c in certs.iter().filter(|c| c.is_ca()) {
                if let Ok(k) = &c.key {
                    note_ca(k, format!("{} ({path})", c.subject));
                }
            }
        }

        let mut files = 0;
        for (path, e) in &tree.entries {
            let bytes = match &e.content {
                Content::Dir => continue,
                Content::Symlink => {
                    self.add(
                        Problem::new(path, "file", "a symbolic link").expected("a regular file"),
                    );
                    continue;
                }
                Content::Special => {
                    self.add(Problem::new(path, "file", "not a regular file"));
                    continue;
                }
                Content::Unreadable(why) => {
                    self.add(Problem::new(path, "file", format!("cannot be read: {why}")));
                    continue;
                }
                Content::File(b) => b,
            };
            files += 1;
            if let Some(want) = expected_mode(path)
                && e.mode != want
            {
                self.add(
                    Problem::new(path, "mode", "wrong permissions")
                        .expected(format!("{want:04o}"))
                        .got(format!("{:04o}", e.mode)),
                );
            }
            if is_ca_key_name(path) {
                self.add(Problem::new(
                    path,
                    "file",
                    "a CA private key file: CA keys never leave the token, and with it kubeadm leaves external-CA mode",
                ));
            }
            // Private keys in this file, by (id, field).
            let mut keys: Vec<(String, &'static str, Result<PublicKey, String>)> = Vec::new();
            if path.ends_with(".conf") {
                if let Ok(kc) = KubeconfigFile::parse(bytes) {
                    for (i, u) in kc.users.into_iter().flatten().enumerate() {
                        if let Some(pem) = u
                            .user
                            .and_then(|u| u.key_data)
                            .and_then(|d| base64_data(&d).ok())
                        {
                            let id = if i == 0 {
                                format!("{path}#client-key-data")
                            } else {
                                format!("{path}#client-key-data{i}")
                            };
                            let k = self.private_key(&id, &pem);
                            keys.push((id, "client-key-data", k));
                        }
                    }
                }
            } else if let Ok(blocks) = parse::pem_blocks(bytes) {
                let private: Vec<&parse::Block> = blocks
                    .iter()
                    .filter(|b| public::is_private_key_label(&b.label))
                    .collect();
                if path.ends_with(".key") && blocks.len() == 1 && private.len() == 1 {
                    let k = self.private_key(path, bytes);
                    keys.push((path.clone(), "key", k));
                } else {
                    for b in private {
                        keys.push((
                            path.clone(),
                            "key",
                            public::private_key_block(b).map_err(|e| e.to_string()),
                        ));
                    }
                }
            }
            for (_, field, k) in keys {
                if let Ok(k) = k
                    && let Some((_, whose)) = ca_keys.iter().find(|(ck, _)| *ck == k)
                {
                    self.add(Problem::new(
                        path,
                        field,
                        format!(
                            "is the private key of the CA {whose}: CA keys never leave the token"
                        ),
                    ));
                }
            }
        }
        files
    }
}

/// What a kubeconfig yields for the checks after it.
struct KcParts {
    server: Option<String>,
    cert: Option<Cert>,
    key: Option<Result<PublicKey, String>>,
}
