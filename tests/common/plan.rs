//! The one plan template of the integration tests: a `PlanSpec` written as
//! TOML for the fixture's token. Suites change the fields they test and
//! keep the rest.

use std::path::PathBuf;
use std::time::Duration;

use super::{AUDIT_RECIPIENT, LABELS, SOFTHSM_MODULE, write_file};

/// Keys for the four CAs, root first.
pub type Keys = [&'static str; 4];

/// A plan: the ceremony, the token, the four CAs, and optionally a cluster.
#[derive(Debug, Clone)]
pub struct PlanSpec<'a> {
    pub name: &'a str,
    pub witnesses: &'a [&'a str],
    /// The token's label (the fixture's first token).
    pub token: &'a str,
    pub root_subject: &'a str,
    pub keys: Keys,
    /// None: a ceremony that makes only the CA hierarchy (no software leaf
    /// keys, so a run takes a fraction of the time).
    pub cluster: Option<ClusterSpec<'a>>,
}

/// The `[cluster]` of a plan, with its nodes, CSR mode and users.
#[derive(Debug, Clone)]
pub struct ClusterSpec<'a> {
    pub version: &'a str,
    pub endpoint: Option<&'a str>,
    pub service_cidr: Option<&'a str>,
    pub dns_domain: Option<&'a str>,
    pub leaf_key: &'a str,
    pub leaf_validity: Option<&'a str>,
    pub service_account_key: Option<&'a str>,
    pub apiserver_extra_sans: &'a [&'a str],
    /// (name, advertise address)
    pub control_plane: &'a [(&'a str, &'a str)],
    pub workers: &'a [&'a str],
    /// `[leaves] mode = "csr"` with this `csr_dir`.
    pub csr_dir: Option<&'a str>,
    pub users: &'a [User<'a>],
}

/// One `[[users]]` entry.
#[derive(Debug, Clone)]
pub struct User<'a> {
    pub name: &'a str,
    pub groups: &'a [&'a str],
    pub allow_masters: bool,
}

impl<'a> PlanSpec<'a> {
    /// The fixture's plan: CA labels `LABELS`, the given key types, root
    /// 20y and intermediates 10y; one control-plane node cp1 (10.0.0.11)
    /// behind k8s.test.internal:6443, one worker, EC leaves, kubeadm 1.31.
    pub fn new(token: &'a str, keys: Keys) -> Self {
        PlanSpec {
            name: "integration-test",
            witnesses: &["Wendy Witness", "Walter Witness"],
            token,
            root_subject: "CN=Test Kubernetes Root CA,O=Test",
            keys,
            cluster: Some(ClusterSpec {
                version: "v1.31",
                endpoint: Some("k8s.test.internal:6443"),
                service_cidr: None,
                dns_domain: None,
                leaf_key: "ecdsa-p256",
                leaf_validity: None,
                service_account_key: None,
                apiserver_extra_sans: &["k8s.test.internal"],
                control_plane: &[("cp1", "10.0.0.11")],
                workers: &["worker1"],
                csr_dir: None,
                users: &[],
            }),
        }
    }

    /// `new` without `[cluster]`: the CA hierarchy only.
    pub fn ca_only(token: &'a str, keys: Keys) -> Self {
        PlanSpec {
            cluster: None,
            ..PlanSpec::new(token, keys)
        }
    }

    /// The peers' plan: these nodes behind 127.0.0.1:6443 with `localhost`
    /// as an extra apiserver SAN (a local peer checks the apiserver
    /// certificate's SANs), EC keys, kubeadm 1.31, kubeadm's service CIDR,
    /// DNS domain and one year for leaves, spelt out.
    pub fn peers(control_plane: &'a [(&'a str, &'a str)], workers: &'a [&'a str]) -> Self {
        let mut s = PlanSpec::new("", ["ecdsa-p256"; 4]);
        let c = s.cluster();
        c.endpoint = Some("127.0.0.1:6443");
        c.service_cidr = Some("10.96.0.0/12");
        c.dns_domain = Some("cluster.local");
        c.leaf_validity = Some("365d");
        c.apiserver_extra_sans = &["localhost"];
        c.control_plane = control_plane;
        c.workers = workers;
        s
    }

    /// The cluster part, for a suite to change (panics on a CA-only plan).
    pub fn cluster(&mut self) -> &mut ClusterSpec<'a> {
        self.cluster.as_mut().expect("a plan with [cluster]")
    }

    pub fn toml(&self) -> String {
        let k = self.keys;
        let mut t = format!(
            r#"# Written by the integration-test fixture for one throwaway SoftHSM token.
[ceremony]
name = "{name}"
administrator = "Test Admin"
witnesses = {witnesses}

[token]
uri = "pkcs11:token={token}"
module = "{SOFTHSM_MODULE}"

[root]
label = "{}"
subject = "{subject}"
key = "{}"
validity = "20y"

[ca.kubernetes]
label = "{}"
key = "{}"
validity = "10y"

[ca.etcd]
label = "{}"
key = "{}"
validity = "10y"

[ca.front-proxy]
label = "{}"
key = "{}"
validity = "10y"
"#,
            LABELS[0],
            k[0],
            LABELS[1],
            k[1],
            LABELS[2],
            k[2],
            LABELS[3],
            k[3],
            name = self.name,
            witnesses = quoted(self.witnesses),
            token = self.token,
            subject = self.root_subject,
        );
        if let Some(c) = &self.cluster {
            t.push_str(&format!(
                "\n[cluster]\nname = \"kubernetes\"\nkubernetes_version = \"{}\"\n",
                c.version
            ));
            let optional = [
                ("control_plane_endpoint", c.endpoint),
                ("service_cidr", c.service_cidr),
                ("dns_domain", c.dns_domain),
                ("leaf_key", Some(c.leaf_key)),
                ("leaf_validity", c.leaf_validity),
                ("service_account_key", c.service_account_key),
            ];
            for (key, value) in optional {
                if let Some(v) = value {
                    t.push_str(&format!("{key} = {v:?}\n"));
                }
            }
            if !c.apiserver_extra_sans.is_empty() {
                t.push_str(&format!(
                    "apiserver_extra_sans = {}\n",
                    quoted(c.apiserver_extra_sans)
                ));
            }
            for (name, addr) in c.control_plane {
                t.push_str(&format!(
                    "\n[[cluster.control_plane]]\nname = {name:?}\naddress = {addr:?}\n"
                ));
            }
            if !c.workers.is_empty() {
                t.push_str(&format!(
                    "\n[cluster.workers]\nnames = {}\n",
                    quoted(c.workers)
                ));
            }
            if let Some(dir) = c.csr_dir {
                t.push_str(&format!("\n[leaves]\nmode = \"csr\"\ncsr_dir = {dir:?}\n"));
            }
            for u in c.users {
                t.push_str(&format!(
                    "\n[[users]]\nname = {:?}\ngroups = {}\n",
                    u.name,
                    quoted(u.groups)
                ));
                if u.allow_masters {
                    t.push_str("allow_masters = true\n");
                }
            }
        }
        t.push_str(&format!(
            "\n[audit]\nrecipients = [\"{AUDIT_RECIPIENT}\"]\n"
        ));
        t
    }
}

fn quoted(items: &[&str]) -> String {
    let v: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", v.join(", "))
}

/// The fixture's plan (`PlanSpec::new`) as TOML.
pub fn plan_toml(token_label: &str, keys: Keys) -> String {
    PlanSpec::new(token_label, keys).toml()
}

/// The CA-only plan (`PlanSpec::ca_only`) as TOML.
pub fn ca_plan_toml(token_label: &str, keys: Keys) -> String {
    PlanSpec::ca_only(token_label, keys).toml()
}

impl super::Fixture {
    /// Writes `plan_toml` for the first token as `DIR/<name>` and returns its path.
    pub fn write_plan(&self, name: &str, keys: Keys) -> PathBuf {
        self.write_spec(name, &PlanSpec::new(&self.token().label, keys))
    }

    /// Writes `ca_plan_toml` (CA hierarchy only) as `DIR/<name>`.
    pub fn write_ca_plan(&self, name: &str, keys: Keys) -> PathBuf {
        self.write_spec(name, &PlanSpec::ca_only(&self.token().label, keys))
    }

    /// Writes `spec` as `DIR/<name>` (its token: the first token's label).
    pub fn write_spec(&self, name: &str, spec: &PlanSpec<'_>) -> PathBuf {
        let spec = PlanSpec {
            token: &self.token().label,
            ..spec.clone()
        };
        let p = self.root.join(name);
        write_file(&p, spec.toml().as_bytes(), 0o644);
        p
    }

    /// Writes `spec` as `DIR/<name>.toml` and runs it into `DIR/work/<name>-out`,
    /// which it returns; the run must succeed (RSA leaf keys are slow in a
    /// debug build: a longer bound than other children).
    #[track_caller]
    pub fn run_spec(&self, name: &str, spec: &PlanSpec<'_>) -> PathBuf {
        let plan = self.write_spec(&format!("{name}.toml"), spec);
        let out = self.work(&format!("{name}-out"));
        let mut cmd = self.command(super::bin());
        cmd.args(self.run_plan_args(&plan, &out));
        let r = self.run(cmd, Duration::from_secs(600));
        assert!(
            r.ok(),
            "ceremony run failed: {r}\n--- plan\n{}",
            spec.toml()
        );
        out
    }
}
