//! Every rule of the validator as a row: a base plan that passes, one edit,
//! and the exact problems it must produce (nothing more);
//! `every_problem_site_has_a_row` checks that each `Problems::add` call site
//! is reached by some row.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::x509::san::San;

thread_local! {
    static REACHED: RefCell<BTreeSet<(&'static str, u32)>> = const { RefCell::new(BTreeSet::new()) };
}

/// Called by `Problems::add` with the line of its call site.
pub(super) fn reached(file: &'static str, line: u32) {
    // The file's name alone: the rules live in validate.rs and validate/cluster.rs.
    let name = if file.ends_with("cluster.rs") {
        "cluster.rs"
    } else if file.ends_with("revoke.rs") {
        "revoke.rs"
    } else if file.ends_with("delegation.rs") {
        "delegation.rs"
    } else {
        "validate.rs"
    };
    REACHED.with(|r| r.borrow_mut().insert((name, line)));
}

/// A plan every rule passes; each CA's key and validity differ so that a
/// row can change one of them by its exact text.
const BASE: &str = r#"[ceremony]
name = "table"
administrator = "Ada Admin"
witnesses = ["Wendy", "Walter"]

[token]
uri = "pkcs11:token=k8s-root"
module = "/usr/lib/softhsm/libsofthsm2.so"

[root]
label = "root-ca"
subject = "CN=Test Root CA,O=Test"
key = "ecdsa-p384"
validity = "20y"

[ca.kubernetes]
label = "kubernetes-ca"
key = "ecdsa-p256"
validity = "10y"

[ca.etcd]
label = "etcd-ca"
key = "rsa-2048"
validity = "9y"

[ca.front-proxy]
label = "front-proxy-ca"
key = "rsa-3072"
validity = "8y"

[cluster]
name = "kubernetes"
kubernetes_version = "v1.31"
control_plane_endpoint = "k8s.test.internal:6443"
leaf_key = "ecdsa-p256"
leaf_validity = "365d"
apiserver_extra_sans = ["k8s.test.internal"]

[[cluster.control_plane]]
name = "cp1"
address = "10.0.0.11"

[cluster.workers]
names = ["worker1"]

[[users]]
name = "alice"
groups = ["ops"]

[audit]
recipients = ["age1rfjvanyx48qxdll0q8wkrca6kpkfluxp4gal0ws7cp4awt900vpsf0sp9u"]
"#;

/// What `cluster.workers.names_file` holds when a row names one.
const WORKERS_FILE: &str = "# one name a line\nworker2\n\nworker1\n";

/// 2026-11-23T00:00:00Z: a fixed clock, so "in the past" and every end is reproducible.
fn ctx() -> Context<'static> {
    Context {
        now: UNIX_EPOCH + Duration::from_secs(1_795_392_000),
        worker_names_file: Some(WORKERS_FILE),
    }
}

/// Applies each (exact text, replacement) to the base plan; each text must occur once.
fn edited(edits: &[(&str, &str)]) -> String {
    let mut text = BASE.to_string();
    for (from, to) in edits {
        assert_eq!(text.matches(from).count(), 1, "{from:?} must occur once");
        text = text.replace(from, to);
    }
    text
}

fn problems(text: &str) -> Vec<String> {
    let plan = crate::plan::parse(text).unwrap_or_else(|e| panic!("not a plan: {e:?}"));
    match validate(&plan, &ctx()) {
        Ok(_) => Vec::new(),
        Err(ps) => ps.iter().map(ToString::to_string).collect(),
    }
}

/// (rule, edits of the base plan, every problem in order).
type Row = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

/// Texts of the base plan that rows remove or replace whole.
const CLUSTER: &str = r#"[cluster]
name = "kubernetes"
kubernetes_version = "v1.31"
control_plane_endpoint = "k8s.test.internal:6443"
leaf_key = "ecdsa-p256"
leaf_validity = "365d"
apiserver_extra_sans = ["k8s.test.internal"]

[[cluster.control_plane]]
name = "cp1"
address = "10.0.0.11"

[cluster.workers]
names = ["worker1"]
"#;
/// `ceremony.previous` added: a continuing plan.
const PREVIOUS: (&str, &str) = (
    "administrator = \"Ada Admin\"\n",
    "administrator = \"Ada Admin\"\nprevious = \"c1\"\n",
);
const USER: &str = "[[users]]\nname = \"alice\"\ngroups = [\"ops\"]\n";
/// Turns kubelet serving certificates on.
const KSERVE: (&str, &str) = (
    "leaf_validity = \"365d\"\n",
    "leaf_validity = \"365d\"\nkubelet_serving_certs = true\n",
);
/// worker1's address.
const WORKER1_ADDRESS: (&str, &str) = (
    "names = [\"worker1\"]\n",
    "names = [\"worker1\"]\n\n[cluster.worker_addresses]\nworker1 = \"10.0.0.21\"\n",
);
const RECIPIENT: &str = r#""age1rfjvanyx48qxdll0q8wkrca6kpkfluxp4gal0ws7cp4awt900vpsf0sp9u""#;

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // [backup]
    ("backup with one custodian", &[("[audit]\n", "[backup]\ncustodians = [\"Carol\"]\nthreshold = 2\n\n[audit]\n")],
        &["backup.custodians: must name between 2 and 255 custodians, each to keep one share (got 1)"]),
    ("backup custodian empty", &[("[audit]\n", "[backup]\ncustodians = [\"Carol\", \" \"]\nthreshold = 2\n\n[audit]\n")],
        &[r#"backup.custodians[1]: must not be empty (got " ")"#]),
    ("backup custodian with a control", &[("[audit]\n", "[backup]\ncustodians = [\"Carol\", \"Da\\u001Bve\"]\nthreshold = 2\n\n[audit]\n")],
        &[r#"backup.custodians[1]: must not contain control or bidirectional-override characters (found U+001B) (got "Da\u{1b}ve")"#]),
    ("backup custodian twice", &[("[audit]\n", "[backup]\ncustodians = [\"Carol\", \"carol \"]\nthreshold = 2\n\n[audit]\n")],
        &[r#"backup.custodians[1]: is named twice (got "carol ")"#]),
    ("backup threshold of one", &[("[audit]\n", "[backup]\ncustodians = [\"Carol\", \"Dave\", \"Erin\"]\nthreshold = 1\n\n[audit]\n")],
        &["backup.threshold: must be between 2 and the number of custodians (3) (got 1)"]),
    ("backup threshold above the custodians", &[("[audit]\n", "[backup]\ncustodians = [\"Carol\", \"Dave\", \"Erin\"]\nthreshold = 4\n\n[audit]\n")],
        &["backup.threshold: must be between 2 and the number of custodians (3) (got 4)"]),
    ("backup of an unknown CA", &[("[audit]\n", "[backup]\ncustodians = [\"Carol\", \"Dave\"]\nthreshold = 2\ncas = [\"root\", \"kube\"]\n\n[audit]\n")],
        &[r#"backup.cas[1]: must be one of root, kubernetes, etcd, front-proxy (got "kube")"#]),
    ("backup of a CA twice", &[("[audit]\n", "[backup]\ncustodians = [\"Carol\", \"Dave\"]\nthreshold = 2\ncas = [\"root\", \"etcd\", \"etcd\"]\n\n[audit]\n")],
        &[r#"backup.cas[2]: is named twice (got "etcd")"#]),
    ("backup of a delegated CA", &[("[ca.etcd]\n", "[ca.etcd]\nmode = \"delegated\"\ncsr = \"etcd-ca.csr\"\n"), ("[audit]\n", "[backup]\ncustodians = [\"Carol\", \"Dave\"]\nthreshold = 2\ncas = [\"root\", \"etcd\"]\n\n[audit]\n")],
        &[r#"backup.cas[1]: is delegated to the control-plane nodes: its key is not on the token to back up; remove it (got "etcd")"#]),
    ("backup without the root", &[("[audit]\n", "[backup]\ncustodians = [\"Carol\", \"Dave\"]\nthreshold = 2\ncas = [\"kubernetes\"]\n\n[audit]\n")],
        &[r#"backup.cas: must include "root": the root is the key a lost token cannot replace"#]),
    ("backup in a continuing ceremony", &[("witnesses = [\"Wendy\", \"Walter\"]\n", "witnesses = [\"Wendy\", \"Walter\"]\nprevious = \"c1\"\n"), ("[audit]\n", "[renew]\nall = true\n\n[backup]\ncustodians = [\"Carol\", \"Dave\"]\nthreshold = 2\n\n[audit]\n")],
        &["backup: is set at the founding ceremony only: a continuing ceremony uses the keys backed up then; remove [backup]"]),
    // [ceremony]
    ("ceremony name empty", &[(r#"name = "table""#, r#"name = " ""#)],
        &[r#"ceremony.name: must not be empty (got " ")"#]),
    ("administrator empty", &[(r#""Ada Admin""#, r#""""#)],
        &[r#"ceremony.administrator: must not be empty (got "")"#]),
    ("witness empty", &[(r#"["Wendy", "Walter"]"#, r#"["Wendy", " "]"#)],
        &[r#"ceremony.witnesses[1]: must not be empty (got " ")"#]),
    ("witness twice, case and blanks aside", &[(r#"["Wendy", "Walter"]"#, r#"["Wendy", "wendy "]"#)],
        &[r#"ceremony.witnesses[1]: is named twice (got "wendy ")"#]),
    // Shown strings: no control or bidirectional-override character.
    ("ceremony name with a bidi override", &[(r#"name = "table""#, r#"name = "tab\u202Ele""#)],
        &[r#"ceremony.name: must not contain control or bidirectional-override characters (found U+202E) (got "tab\u{202e}le")"#]),
    ("administrator with an escape sequence", &[(r#""Ada Admin""#, r#""Ada\u001B[2J Admin""#)],
        &[r#"ceremony.administrator: must not contain control or bidirectional-override characters (found U+001B) (got "Ada\u{1b}[2J Admin")"#]),
    ("witness with a newline", &[(r#"["Wendy", "Walter"]"#, r#"["Wendy", "Walter\n## Approved by"]"#)],
        &[r#"ceremony.witnesses[1]: must not contain control or bidirectional-override characters (found U+000A) (got "Walter\n## Approved by")"#]),
    ("witness with a bidi isolate", &[(r#"["Wendy", "Walter"]"#, r#"["Wendy", "\u2067Walter"]"#)],
        &[r#"ceremony.witnesses[1]: must not contain control or bidirectional-override characters (found U+2067) (got "\u{2067}Walter")"#]),
    ("module path with a control", &[(r#"module = "/usr/lib/softhsm/libsofthsm2.so""#, r#"module = "/usr/lib/softhsm/\u009Blibsofthsm2.so""#)],
        &[r#"token.module: must not contain control or bidirectional-override characters (found U+009B) (got "/usr/lib/softhsm/\u{9b}libsofthsm2.so")"#]),
    ("csr_dir with a control", &[("[audit]\n", "[leaves]\nmode = \"csr\"\ncsr_dir = \"csrs\\u0007\"\n\n[audit]\n")],
        &[r#"leaves.csr_dir: must not contain control or bidirectional-override characters (found U+0007) (got "csrs\u{7}")"#]),
    ("subject with a control", &[(r#""CN=Test Root CA,O=Test""#, r#""CN=Test\u001BRoot CA,O=Test""#)],
        &[r#"root.subject: must not contain control or bidirectional-override characters (found U+001B) (got "CN=Test\u{1b}Root CA,O=Test")"#]),
    ("subject with an escaped control", &[(r#""CN=Test Root CA,O=Test""#, r#""CN=Test\\1BRoot CA,O=Test""#)],
        &[r#"root.subject: must not contain control or bidirectional-override characters, escaped or not (found U+001B) (got "CN=Test\\1BRoot CA,O=Test")"#]),
    ("user name with an escape sequence", &[(r#"name = "alice""#, r#"name = "al\u001Bice""#)],
        &[r#"users[0].name: must be a user name: 1 to 128 of a-z A-Z 0-9 . _ - @, not starting with "system:" (got "al\u{1b}ice")"#]),
    ("user group with a control", &[(r#"groups = ["ops"]"#, r#"groups = ["ops\u007F"]"#)],
        &[r#"users[0].groups[0]: must not contain control or bidirectional-override characters (found U+007F) (got "ops\u{7f}")"#]),
    ("user csr path with a newline", &[(r#"groups = ["ops"]"#, "groups = [\"ops\"]\ncsr = \"alice.csr\\nforged\"")],
        &[r#"users[0].csr: must not contain control or bidirectional-override characters (found U+000A) (got "alice.csr\nforged")"#]),
    // [token]
    ("uri without scheme", &[(r#""pkcs11:token=k8s-root""#, r#""k8s-root""#)],
        &[r#"token.uri: must start with "pkcs11:" (RFC 7512) (got "k8s-root")"#]),
    ("uri with a PIN, shown redacted", &[(r#""pkcs11:token=k8s-root""#, r#""pkcs11:token=k8s-root?pin-value=1234""#)],
        &[r#"token.uri: must not carry a PIN (pin-value/pin-source): use --pin-file, the prompt or the PIN pad (got "pkcs11:token=k8s-root?pin-value=(redacted)")"#]),
    ("uri by slot", &[(r#""pkcs11:token=k8s-root""#, r#""pkcs11:slot-id=0""#)],
        &[r#"token.uri: selects by "slot-id": choose the token by token= or serial=, slots are renumbered (got "pkcs11:slot-id=0")"#]),
    ("uri names no token", &[(r#""pkcs11:token=k8s-root""#, r#""pkcs11:model=SoftHSM%20v2""#)],
        &[r#"token.uri: must name the token by token= or serial= (got "pkcs11:model=SoftHSM%20v2")"#]),
    ("module empty", &[(r#"module = "/usr/lib/softhsm/libsofthsm2.so""#, r#"module = """#)],
        &[r#"token.module: must be the path of a PKCS#11 module (got "")"#]),
    ("module_sha256 not hex", &[("[token]\n", "[token]\nmodule_sha256 = \"abc\"\n")],
        &[r#"token.module_sha256: must be 64 hex digits (sha256sum of the module) (got "abc")"#]),
    ("placeholders of a template plan, named first", &[
        (r#""pkcs11:token=k8s-root""#, r#""pkcs11:token=k8s-root;serial=REPLACE-ME""#),
        ("[token]\n", "[token]\nmodule_sha256 = \"REPLACE-ME\"\n"),
        (r#"module = "/usr/lib/softhsm/libsofthsm2.so""#, r#"module = "/opt/REPLACE-ME/pkcs11.so""#),
        (r#"recipients = ["age1rfjvanyx48qxdll0q8wkrca6kpkfluxp4gal0ws7cp4awt900vpsf0sp9u"]"#, r#"recipients = ["age1rfjvanyx48qxdll0q8wkrca6kpkfluxp4gal0ws7cp4awt900vpsf0sp9u", "REPLACE-ME: the auditor's key"]"#)],
        &[r#"token.uri: is a placeholder (REPLACE-ME): put this ceremony's value there before any run (got "pkcs11:token=k8s-root;serial=REPLACE-ME")"#,
          r#"token.module: is a placeholder (REPLACE-ME): put this ceremony's value there before any run (got "/opt/REPLACE-ME/pkcs11.so")"#,
          r#"token.module_sha256: is a placeholder (REPLACE-ME): put this ceremony's value there before any run (got "REPLACE-ME")"#,
          r#"audit.recipients[1]: is a placeholder (REPLACE-ME): put this ceremony's value there before any run (got "REPLACE-ME: the auditor's key")"#]),
    ("sessions zero", &[("[token]\n", "[token]\nsessions = 0\n")],
        &["token.sessions: must be between 1 and 64 (got 0)"]),
    ("sessions above the limit", &[("[token]\n", "[token]\nsessions = 65\n")],
        &["token.sessions: must be between 1 and 64 (got 65)"]),
    // [root], [ca.*]
    ("label used twice", &[(r#"label = "etcd-ca""#, r#"label = "kubernetes-ca""#)],
        &[r#"ca.etcd.label: is used by another CA of this plan; each key needs its own label (got "kubernetes-ca")"#]),
    ("label empty", &[(r#"label = "etcd-ca""#, r#"label = """#)],
        &[r#"ca.etcd.label: must not be empty (got "")"#]),
    ("label too long", &[(r#"label = "etcd-ca""#, r#"label = "etcd-ca-with-a-label-of-33-bytes!""#)],
        &[r#"ca.etcd.label: is 33 bytes; a token label is at most 32 bytes (got "etcd-ca-with-a-label-of-33-bytes!")"#]),
    ("label with a control character", &[(r#"label = "etcd-ca""#, r#"label = "etcd\tca""#)],
        &[r#"ca.etcd.label: must not contain control or bidirectional-override characters (found U+0009) (got "etcd\tca")"#]),
    ("root without subject", &[("subject = \"CN=Test Root CA,O=Test\"\n", "")],
        &[r#"root.subject: is required for the root, e.g. "CN=Example Kubernetes Root CA,O=Example""#]),
    ("subject not RFC 4514", &[(r#""CN=Test Root CA,O=Test""#, r#""Test Root CA""#)],
        &[r#"root.subject: is not an RFC 4514 distinguished name, e.g. "CN=Example Root CA,O=Example" (got "Test Root CA")"#]),
    ("subject without CN", &[(r#""CN=Test Root CA,O=Test""#, r#""O=Test""#)],
        &[r#"root.subject: must contain a CN= (got "O=Test")"#]),
    ("intermediate subject with an empty CN", &[("[ca.etcd]\n", "[ca.etcd]\nsubject = \"CN=,O=Test\"\n")],
        &[r#"ca.etcd.subject: has an empty CN (got "CN=,O=Test")"#]),
    ("unknown key type", &[(r#"key = "rsa-2048""#, r#"key = "ed25519""#)],
        &[r#"ca.etcd.key: unknown key type; use one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096 (got "ed25519")"#]),
    ("validity and not_after", &[("[ca.etcd]\n", "[ca.etcd]\nnot_after = 2030-01-01\n")],
        &["ca.etcd: give either validity or not_after, not both"]),
    ("neither validity nor not_after", &[("validity = \"9y\"\n", "")],
        &[r#"ca.etcd.validity: is required (or not_after), e.g. validity = "10y""#]),
    ("validity zero", &[(r#"validity = "9y""#, r#"validity = "0d""#)],
        &[r#"ca.etcd.validity: must be longer than zero (got "0d")"#]),
    ("validity without a number", &[(r#"validity = "20y""#, r#"validity = "y""#)],
        &[r#"root.validity: must start with a number, e.g. "365d" (got "y")"#]),
    ("validity too large a number", &[(r#"validity = "20y""#, r#"validity = "99999999999999999999y""#)],
        &[r#"root.validity: number is too large (got "99999999999999999999y")"#]),
    ("validity over 200 years", &[(r#"validity = "20y""#, r#"validity = "201y""#)],
        &[r#"root.validity: must be at most 200y (got "201y")"#]),
    ("not_after in local time", &[(r#"validity = "9y""#, "not_after = 2030-01-01T00:00:00")],
        &["ca.etcd.not_after: must be in UTC (end it with Z), e.g. 2036-01-01T00:00:00Z (got 2030-01-01T00:00:00)"]),
    ("not_after in another zone", &[(r#"validity = "9y""#, "not_after = 2030-01-01T00:00:00+01:00")],
        &["ca.etcd.not_after: must be in UTC (end it with Z), e.g. 2036-01-01T00:00:00Z (got 2030-01-01T00:00:00+01:00)"]),
    ("not_after a time of day", &[(r#"validity = "9y""#, "not_after = 12:00:00")],
        &["ca.etcd.not_after: must be a date or a date-time in UTC (got 12:00:00)"]),
    ("not_after before 1970", &[(r#"validity = "9y""#, "not_after = 1960-01-01")],
        &["ca.etcd.not_after: is not a valid date (got 1960-01-01)"]),
    ("not_after in the past", &[(r#"validity = "9y""#, "not_after = 2020-01-01")],
        &["ca.etcd.not_after: is in the past (got 2020-01-01)"]),
    ("intermediate outlives the root", &[(r#"validity = "9y""#, r#"validity = "21y""#)],
        &["ca.etcd.validity: the intermediate would outlive the root (root ends 2046-11-18 00:00:00 UTC, this one 2047-11-18 00:00:00 UTC); shorten it or lengthen root (got 21y)"]),
    ("intermediate outlives the root, by date", &[(r#"validity = "9y""#, "not_after = 2050-01-01T00:00:00Z")],
        &["ca.etcd.not_after: the intermediate would outlive the root (root ends 2046-11-18 00:00:00 UTC, this one 2050-01-01 00:00:00 UTC); shorten it or lengthen root (got until 2050-01-01 00:00:00 UTC)"]),
    // [cluster]
    ("cluster name", &[(r#"name = "kubernetes""#, r#"name = "Prod""#)],
        &[r#"cluster.name: must be a DNS-1123 subdomain (got "Prod")"#]),
    ("kubeadm too old", &[(r#""v1.31""#, r#""v1.21""#)],
        &[r#"cluster.kubernetes_version: must be a kubeadm version 1.22 or later, e.g. "v1.31" (got "v1.21")"#]),
    ("kubeadm version not a version", &[(r#""v1.31""#, r#""latest""#)],
        &[r#"cluster.kubernetes_version: must be a kubeadm version 1.22 or later, e.g. "v1.31" (got "latest")"#]),
    ("bind_port zero", &[("[cluster]\n", "[cluster]\nbind_port = 0\n")],
        &["cluster.bind_port: must be a TCP port (1-65535) (got 0)"]),
    ("endpoint with an unclosed bracket", &[(r#""k8s.test.internal:6443""#, r#""[fd00::1""#)],
        &[r#"cluster.control_plane_endpoint: has an unclosed [ (got "[fd00::1")"#]),
    ("endpoint with text after the bracket", &[(r#""k8s.test.internal:6443""#, r#""[fd00::1]6443""#)],
        &[r#"cluster.control_plane_endpoint: must be host[:port] (got "[fd00::1]6443")"#]),
    ("endpoint port", &[(r#""k8s.test.internal:6443""#, r#""k8s.test.internal:0""#)],
        &[r#"cluster.control_plane_endpoint: has an invalid port (got "k8s.test.internal:0")"#]),
    ("endpoint host", &[(r#""k8s.test.internal:6443""#, r#""k8s_test:6443""#)],
        &[r#"cluster.control_plane_endpoint: host must be an IP address or a DNS name (got "k8s_test:6443")"#]),
    ("endpoint wildcard", &[(r#""k8s.test.internal:6443""#, r#""*.test.internal""#)],
        &[r#"cluster.control_plane_endpoint: host must not be a wildcard (got "*.test.internal")"#]),
    ("service_cidr without a length", &[("[cluster]\n", "[cluster]\nservice_cidr = \"10.96.0.0\"\n")],
        &[r#"cluster.service_cidr: must be a CIDR such as 10.96.0.0/12 (got "10.96.0.0")"#]),
    ("service_cidr not an address", &[("[cluster]\n", "[cluster]\nservice_cidr = \"ten/12\"\n")],
        &[r#"cluster.service_cidr: must be a CIDR such as 10.96.0.0/12 (got "ten/12")"#]),
    ("service_cidr length", &[("[cluster]\n", "[cluster]\nservice_cidr = \"10.96.0.0/33\"\n")],
        &[r#"cluster.service_cidr: has an invalid prefix length (got "10.96.0.0/33")"#]),
    ("service_cidr too small", &[("[cluster]\n", "[cluster]\nservice_cidr = \"10.96.0.0/31\"\n")],
        &[r#"cluster.service_cidr: is too small to hold the API server's service address (got "10.96.0.0/31")"#]),
    ("service_cidr host bits", &[("[cluster]\n", "[cluster]\nservice_cidr = \"10.96.0.1/12\"\n")],
        &[r#"cluster.service_cidr: has host bits set; give the network address (e.g. 10.96.0.0/12) (got "10.96.0.1/12")"#]),
    ("dns_domain", &[("[cluster]\n", "[cluster]\ndns_domain = \"Cluster.Local\"\n")],
        &[r#"cluster.dns_domain: must be a DNS name (got "Cluster.Local")"#]),
    ("leaf_key", &[(r#"leaf_key = "ecdsa-p256""#, r#"leaf_key = "dsa""#)],
        &[r#"cluster.leaf_key: unknown key type; use one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096 (got "dsa")"#]),
    ("service_account_key", &[("[cluster]\n", "[cluster]\nservice_account_key = \"rsa-1024\"\n")],
        &[r#"cluster.service_account_key: unknown key type; use one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096 (got "rsa-1024")"#]),
    ("leaves outlive an intermediate", &[(r#""365d""#, r#""9y""#)],
        &[r#"cluster.leaf_validity: leaves would outlive an intermediate CA; shorten it or lengthen the CAs (got "9y")"#]),
    ("leaf_validity unit", &[(r#""365d""#, r#""52w""#)],
        &[r#"cluster.leaf_validity: unit must be y (365 days), d or h, e.g. "365d" (got "52w")"#]),
    ("apiserver SAN", &[(r#"["k8s.test.internal"]"#, r#"["k8s.test.internal", "k8s_api"]"#)],
        &[r#"cluster.apiserver_extra_sans[1]: is neither an IP address nor a valid DNS name (got "k8s_api")"#]),
    ("apiserver SAN a mistyped IP", &[(r#"["k8s.test.internal"]"#, r#"["10.0.0.300"]"#)],
        &[r#"cluster.apiserver_extra_sans[0]: is not a valid IP address, and a DNS name never ends in an all-numeric label (got "10.0.0.300")"#]),
    ("no control-plane node", &[("[[cluster.control_plane]]\nname = \"cp1\"\naddress = \"10.0.0.11\"\n", "")],
        &["cluster.control_plane: needs at least one [[cluster.control_plane]] node"]),
    ("node name", &[(r#"name = "cp1""#, r#"name = "CP1""#)],
        &[r#"cluster.control_plane[0].name: must be a node name: a lowercase DNS-1123 subdomain (got "CP1")"#]),
    ("node named twice", &[(r#"names = ["worker1"]"#, r#"names = ["cp1"]"#)],
        &[r#"cluster.workers.names[0]: names a node twice; every node name must be unique (got "cp1")"#]),
    ("node named twice, in names_file", &[(r#"names = ["worker1"]"#, "names = [\"worker1\"]\nnames_file = \"workers.txt\"")],
        &[r#"cluster.workers.names_file (workers.txt:4): names a node twice; every node name must be unique (got "worker1")"#]),
    ("names_file absolute", &[(r#"names = ["worker1"]"#, r#"names_file = "/etc/workers""#)],
        &[r#"cluster.workers.names_file: is an absolute path; input files stay inside the plan's directory: write the path relative to the plan, or set allow_outside = true in [cluster.workers] (got "/etc/workers")"#]),
    ("names_file climbs out", &[(r#"names = ["worker1"]"#, r#"names_file = "lists/../../workers.txt""#)],
        &[r#"cluster.workers.names_file: climbs out of the plan's directory with ".."; input files stay inside it: move the file in, or set allow_outside = true in [cluster.workers] (got "lists/../../workers.txt")"#]),
    ("names_file outside, as the plan allows", &[(r#"names = ["worker1"]"#, "names_file = \"/etc/workers\"\nallow_outside = true")],
        &[]),
    ("node name shown as an escaped excerpt", &[(r#"name = "cp1""#, r#"name = "cp1\u001b[2J\u202eand-a-tail-that-goes-on-and-on-and-on""#)],
        &[r#"cluster.control_plane[0].name: must be a node name: a lowercase DNS-1123 subdomain (got "cp1\u{1b}[2J\u{202e}and-a-tail-that-goes-on-and-on-a", cut at 40 characters)"#]),
    ("node address", &[(r#""10.0.0.11""#, r#""cp1.test.internal""#)],
        &[r#"cluster.control_plane[0].address: must be the node's advertise IP address (got "cp1.test.internal")"#]),
    ("etcd server SAN", &[("address = \"10.0.0.11\"\n", "address = \"10.0.0.11\"\netcd_server_extra_sans = [\"etcd_1\"]\n")],
        &[r#"cluster.control_plane[0].etcd_server_extra_sans[0]: is neither an IP address nor a valid DNS name (got "etcd_1")"#]),
    ("etcd peer SAN", &[("address = \"10.0.0.11\"\n", "address = \"10.0.0.11\"\netcd_peer_extra_sans = [\"-etcd\"]\n")],
        &[r#"cluster.control_plane[0].etcd_peer_extra_sans[0]: is neither an IP address nor a valid DNS name (got "-etcd")"#]),
    // [leaves]
    ("CSR mode without csr_dir", &[("[audit]\n", "[leaves]\nmode = \"csr\"\n\n[audit]\n")],
        &[r#"leaves.csr_dir: is required with mode = "csr""#]),
    ("csr_dir absolute", &[("[audit]\n", "[leaves]\nmode = \"csr\"\ncsr_dir = \"/srv/csrs\"\n\n[audit]\n")],
        &[r#"leaves.csr_dir: is an absolute path; input files stay inside the plan's directory: write the path relative to the plan, or set allow_outside = true in [leaves] (got "/srv/csrs")"#]),
    ("csr_dir outside, as the plan allows", &[("[audit]\n", "[leaves]\nmode = \"csr\"\ncsr_dir = \"../csrs\"\nallow_outside = true\n\n[audit]\n")],
        &[]),
    ("leaves mode", &[("[audit]\n", "[leaves]\nmode = \"both\"\n\n[audit]\n")],
        &[r#"leaves.mode: must be "generate" or "csr" (got "both")"#]),
    ("leaves without a cluster", &[(CLUSTER, ""), (USER, ""), ("[audit]\n", "[leaves]\nmode = \"generate\"\n\n[audit]\n")],
        &["leaves: needs a [cluster] section to know which leaves to make"]),
    // [ca.*] mode and csr: delegated CAs
    ("etcd delegated", &[("[ca.etcd]\n", "[ca.etcd]\nmode = \"delegated\"\ncsr = \"etcd-ca.csr\"\n")],
        &[]),
    ("a CA kept in the token, said so", &[("[ca.etcd]\n", "[ca.etcd]\nmode = \"token\"\n")],
        &[]),
    ("root delegated", &[("[root]\n", "[root]\nmode = \"delegated\"\ncsr = \"root.csr\"\n")],
        &[r#"root.mode: the root is always kept in the token; only [ca.kubernetes], [ca.etcd] and [ca.front-proxy] take a mode (got "delegated")"#,
          r#"root.csr: the root is always made in the token; it takes no certificate request (got "root.csr")"#]),
    ("CA mode unknown", &[("[ca.etcd]\n", "[ca.etcd]\nmode = \"node\"\n")],
        &[r#"ca.etcd.mode: must be "token" (the key is kept in the token) or "delegated" (the key is kept on the control-plane nodes) (got "node")"#]),
    ("delegated without csr", &[("[ca.etcd]\n", "[ca.etcd]\nmode = \"delegated\"\n")],
        &[r#"ca.etcd.csr: is required with mode = "delegated": the CA's certificate request, made with its key on the first control-plane node"#]),
    ("csr of a CA kept in the token", &[("[ca.etcd]\n", "[ca.etcd]\ncsr = \"etcd-ca.csr\"\n")],
        &[r#"ca.etcd.csr: is read only with mode = "delegated"; a CA kept in the token makes its key there (got "etcd-ca.csr")"#]),
    ("delegated csr climbs out", &[("[ca.etcd]\n", "[ca.etcd]\nmode = \"delegated\"\ncsr = \"../etcd-ca.csr\"\n")],
        &[r#"ca.etcd.csr: climbs out of the plan's directory with ".."; input files stay inside it: move the file in, or set allow_outside = true in [ca.etcd] (got "../etcd-ca.csr")"#]),
    ("kubernetes delegated with users", &[("[ca.kubernetes]\n", "[ca.kubernetes]\nmode = \"delegated\"\ncsr = \"ca.csr\"\n")],
        &["users: a user's kubeconfig is signed by the kubernetes CA, which this plan delegates: make it on a control-plane node (kubeadm kubeconfig user)"]),
    ("delegated in a continuing ceremony", &[("[ca.etcd]\n", "[ca.etcd]\nmode = \"delegated\"\ncsr = \"etcd-ca.csr\"\n"), ("witnesses = [\"Wendy\", \"Walter\"]\n", "witnesses = [\"Wendy\", \"Walter\"]\nprevious = \"c1\"\n")],
        &["ceremony.previous: a continuing ceremony of a plan with a delegated CA is not offered yet: run a founding ceremony (new labels) to sign a delegated CA again"]),
    // [kubelet_signer]
    ("kubelet signer", &[("[audit]\n", "[kubelet_signer]\ncsr = \"kubelet-signer.csr\"\nkey = \"ecdsa-p256\"\nvalidity = \"90d\"\n\n[audit]\n")],
        &[]),
    ("kubelet signer with the kubernetes CA delegated", &[("[audit]\n", "[kubelet_signer]\ncsr = \"kubelet-signer.csr\"\nkey = \"ecdsa-p256\"\nvalidity = \"90d\"\n\n[audit]\n"), ("[ca.kubernetes]\n", "[ca.kubernetes]\nmode = \"delegated\"\ncsr = \"ca.csr\"\n"), (USER, "")],
        &["kubelet_signer: needs the kubernetes CA kept in the token: with it delegated, the controller-manager signs kubelets with it already"]),
    ("kubelet signer without a cluster", &[("[audit]\n", "[kubelet_signer]\ncsr = \"kubelet-signer.csr\"\nkey = \"ecdsa-p256\"\nvalidity = \"90d\"\n\n[audit]\n"), (CLUSTER, ""), (USER, "")],
        &["kubelet_signer: needs the [cluster] section: its certificate goes to the control-plane nodes"]),
    ("kubelet signer request climbs out", &[("[audit]\n", "[kubelet_signer]\ncsr = \"/tmp/k.csr\"\nkey = \"ecdsa-p256\"\nvalidity = \"90d\"\n\n[audit]\n")],
        &[r#"kubelet_signer.csr: is an absolute path; input files stay inside the plan's directory: write the path relative to the plan, or set allow_outside = true in [kubelet_signer] (got "/tmp/k.csr")"#]),
    ("kubelet signer subject", &[("[audit]\n", "[kubelet_signer]\ncsr = \"kubelet-signer.csr\"\nsubject = \"kubelet-signer\"\nkey = \"ecdsa-p256\"\nvalidity = \"90d\"\n\n[audit]\n")],
        &[r#"kubelet_signer.subject: is not an RFC 4514 distinguished name, e.g. "CN=Example Root CA,O=Example" (got "kubelet-signer")"#]),
    ("kubelet signer key", &[("[audit]\n", "[kubelet_signer]\ncsr = \"kubelet-signer.csr\"\nkey = \"ed25519\"\nvalidity = \"90d\"\n\n[audit]\n")],
        &[r#"kubelet_signer.key: unknown key type; use one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096 (got "ed25519")"#]),
    ("kubelet signer too long", &[("[audit]\n", "[kubelet_signer]\ncsr = \"kubelet-signer.csr\"\nkey = \"ecdsa-p256\"\nvalidity = \"2y\"\n\n[audit]\n")],
        &[r#"kubelet_signer.validity: must be at most 365d: the kubelet signer is short-lived (days to months), renewed by each ceremony (got "2y")"#]),
    ("kubelet signer validity", &[("[audit]\n", "[kubelet_signer]\ncsr = \"kubelet-signer.csr\"\nkey = \"ecdsa-p256\"\nvalidity = \"90\"\n\n[audit]\n")],
        &[r#"kubelet_signer.validity: needs a unit: y (365 days), d or h, e.g. "365d" (got "90")"#]),
    // [[users]]
    ("users without a cluster", &[(CLUSTER, "")],
        &["users: a user kubeconfig needs the [cluster] section (its server and name)"]),
    ("user name", &[(r#"name = "alice""#, r#"name = "Alice Smith""#)],
        &[r#"users[0].name: must be a user name: 1 to 128 of a-z A-Z 0-9 . _ - @, not starting with "system:" (got "Alice Smith")"#]),
    ("user name a hidden file", &[(r#"name = "alice""#, r#"name = "..""#)],
        &[r#"users[0].name: must not start with ".": it names the file users/<name>.conf (got "..")"#]),
    ("user named twice", &[(USER, "[[users]]\nname = \"alice\"\n\n[[users]]\nname = \"alice\"\n")],
        &[r#"users[1].name: is named twice (got "alice")"#]),
    ("group empty", &[(r#"groups = ["ops"]"#, r#"groups = ["ops", ""]"#)],
        &[r#"users[0].groups[1]: must not be empty (got "")"#]),
    ("group twice", &[(r#"groups = ["ops"]"#, r#"groups = ["ops", "dev", "ops"]"#)],
        &[r#"users[0].groups[2]: is named twice (got "ops")"#]),
    ("system:masters without allow_masters", &[(r#"groups = ["ops"]"#, r#"groups = ["system:masters"]"#)],
        &[r#"users[0].groups[0]: system:masters bypasses RBAC entirely; use an RBAC group, or set allow_masters = true on this user (got "system:masters")"#]),
    ("user csr climbs out", &[(r#"groups = ["ops"]"#, "groups = [\"ops\"]\ncsr = \"../alice.csr\"")],
        &[r#"users[0].csr: climbs out of the plan's directory with ".."; input files stay inside it: move the file in, or set allow_outside = true in this [[users]] entry (got "../alice.csr")"#]),
    ("user validity", &[(r#"groups = ["ops"]"#, "groups = [\"ops\"]\nvalidity = \"30\"")],
        &[r#"users[0].validity: needs a unit: y (365 days), d or h, e.g. "365d" (got "30")"#]),
    // [cluster.node_recipients]
    ("node recipient for no node", &[("names = [\"worker1\"]\n", "names = [\"worker1\"]\n\n[cluster.node_recipients]\ncp9 = \"age1rfjvanyx48qxdll0q8wkrca6kpkfluxp4gal0ws7cp4awt900vpsf0sp9u\"\n")],
        &[r#"cluster.node_recipients.cp9: names no node of [cluster]: give the name of a control-plane node or worker (got "cp9")"#]),
    ("node recipient not a recipient", &[("names = [\"worker1\"]\n", "names = [\"worker1\"]\n\n[cluster.node_recipients]\ncp1 = \"ssh-ed25519 nope\"\n")],
        &[r#"cluster.node_recipients.cp1: is not an age recipient (age1…) or an SSH public key (ssh-ed25519 …, ssh-rsa …) (got "ssh-ed25519 nope")"#]),
    // kubelet_serving_certs, [cluster.worker_addresses]
    ("kubelet serving certificates", &[(KSERVE.0, KSERVE.1), WORKER1_ADDRESS],
        &[]),
    ("kubelet serving for a worker without an address", &[(KSERVE.0, KSERVE.1)],
        &[r#"cluster.kubelet_serving_certs: worker worker1 has no address for its kubelet serving certificate: add it to [cluster.worker_addresses] (worker1 = "IP"), or set kubelet_serving_certs = false"#]),
    ("worker address for no worker", &[("names = [\"worker1\"]\n", "names = [\"worker1\"]\n\n[cluster.worker_addresses]\ncp1 = \"10.0.0.11\"\n")],
        &[r#"cluster.worker_addresses.cp1: names no worker of [cluster]: give the name of a worker (a control-plane node's address is its own `address`) (got "cp1")"#]),
    ("worker address not an IP", &[("names = [\"worker1\"]\n", "names = [\"worker1\"]\n\n[cluster.worker_addresses]\nworker1 = \"w1.example\"\n")],
        &[r#"cluster.worker_addresses.worker1: must be the worker's IP address (got "w1.example")"#]),
    ("kubelet serving in CSR mode", &[(KSERVE.0, KSERVE.1), WORKER1_ADDRESS, ("[audit]\n", "[leaves]\nmode = \"csr\"\ncsr_dir = \"csrs\"\n\n[audit]\n")],
        &[r#"cluster.kubelet_serving_certs: is not offered with leaves.mode = "csr" (kubeadm makes no kubelet serving request): set it false, or use mode = "generate""#]),
    ("kubelet serving with the kubernetes CA delegated", &[(KSERVE.0, KSERVE.1), WORKER1_ADDRESS, ("[ca.kubernetes]\n", "[ca.kubernetes]\nmode = \"delegated\"\ncsr = \"ca.csr\"\n"), (USER, "")],
        &["cluster.kubelet_serving_certs: needs the kubernetes CA on the token to sign the kubelets' serving certificates, and [ca.kubernetes] is delegated: set it false"]),
    // [crl], [[revoke]]
    ("crl next_update not a lifetime", &[("[audit]\n", "[crl]\nnext_update = \"soon\"\n\n[audit]\n")],
        &[r#"crl.next_update: must start with a number, e.g. "365d" (got "soon")"#]),
    ("crl next_update beyond a year", &[("[audit]\n", "[crl]\nnext_update = \"400d\"\n\n[audit]\n")],
        &[r#"crl.next_update: is longer than 366d: sign the CRLs again at least yearly (got "400d")"#]),
    ("revoke without previous", &[("[audit]\n", "[[revoke]]\nnode = \"cp1\"\nfile = \"pki/etcd/peer.crt\"\n\n[audit]\n")],
        &["revoke: needs ceremony.previous: a revocation names a certificate of the chain"]),
    ("revoke by node without file", &[(PREVIOUS.0, PREVIOUS.1), ("[audit]\n", "[[revoke]]\nnode = \"cp1\"\n\n[audit]\n")],
        &["revoke[0]: names a certificate by node and file (a certificate of a bundle in the previous output), or by ca and serial"]),
    ("revoke node not a node name", &[(PREVIOUS.0, PREVIOUS.1), ("[audit]\n", "[[revoke]]\nnode = \"CP 1\"\nfile = \"pki/etcd/peer.crt\"\n\n[audit]\n")],
        &[r#"revoke[0].node: must be a node name: a lowercase DNS-1123 subdomain (got "CP 1")"#]),
    ("revoke file climbing out", &[(PREVIOUS.0, PREVIOUS.1), ("[audit]\n", "[[revoke]]\nnode = \"cp1\"\nfile = \"../cp2/pki/etcd/peer.crt\"\n\n[audit]\n")],
        &[r#"revoke[0].file: must be a certificate file of the node's etc/kubernetes, e.g. "pki/etcd/peer.crt" (a kubeconfig's certificate is revoked by ca and serial) (got "../cp2/pki/etcd/peer.crt")"#]),
    ("revoke unknown ca", &[(PREVIOUS.0, PREVIOUS.1), ("[audit]\n", "[[revoke]]\nca = \"etcd-ca\"\nserial = \"01\"\n\n[audit]\n")],
        &[r#"revoke[0].ca: must be the issuing CA: root, kubernetes, etcd or front-proxy (got "etcd-ca")"#]),
    ("revoke serial not hex", &[(PREVIOUS.0, PREVIOUS.1), ("[audit]\n", "[[revoke]]\nca = \"etcd\"\nserial = \"0xZZ\"\n\n[audit]\n")],
        &[r#"revoke[0].serial: must be a certificate's serial number in hex, 1 to 20 bytes, as `openssl x509 -noout -serial` prints it (got "0xZZ")"#]),
    ("revoke unknown reason", &[(PREVIOUS.0, PREVIOUS.1), ("[audit]\n", "[[revoke]]\nca = \"etcd\"\nserial = \"01\"\nreason = \"keyCompromise\"\n\n[audit]\n")],
        &[r#"revoke[0].reason: must be one of unspecified, key-compromise, ca-compromise, affiliation-changed, superseded, cessation-of-operation, privilege-withdrawn (got "keyCompromise")"#]),
    ("revoke twice, the serial spelt two ways", &[(PREVIOUS.0, PREVIOUS.1), ("[audit]\n", "[[revoke]]\nca = \"etcd\"\nserial = \"0A:1B\"\n\n[[revoke]]\nca = \"etcd\"\nserial = \"00a1b\"\n\n[audit]\n")],
        &["revoke[1]: names a certificate another entry revokes already"]),
    // [reissue]
    ("reissue without previous", &[("[audit]\n", "[reissue]\ncas = [\"etcd\"]\n\n[audit]\n")],
        &["reissue: needs ceremony.previous: a reissued certificate is for a CA key the chain made"]),
    ("reissue an unknown CA", &[(PREVIOUS.0, PREVIOUS.1), ("[audit]\n", "[reissue]\ncas = [\"etcd-ca\"]\n\n[audit]\n")],
        &[r#"reissue.cas[0]: must be root, kubernetes, etcd or front-proxy (got "etcd-ca")"#]),
    ("reissue a CA twice", &[(PREVIOUS.0, PREVIOUS.1), ("[audit]\n", "[reissue]\ncas = [\"etcd\", \"root\", \"etcd\"]\n\n[audit]\n")],
        &[r#"reissue.cas[2]: is named twice (got "etcd")"#]),
    // [rotate]
    ("rotate without previous", &[("[audit]\n", "[renew]\nall = true\n\n[rotate]\nca = \"kubernetes\"\nstage = \"stage\"\n\n[audit]\n")],
        &["renew: needs ceremony.previous: the output of the ceremony this one continues",
          "rotate: needs ceremony.previous: a rotation replaces a CA key the chain made"]),
    ("rotate the root", &[(PREVIOUS.0, PREVIOUS.1), ("[audit]\n", "[renew]\nall = true\n\n[rotate]\nca = \"root\"\nstage = \"stage\"\n\n[audit]\n")],
        &[r#"rotate.ca: must be kubernetes, etcd or front-proxy (the root is reissued, not rotated) (got "root")"#]),
    ("rotate an unknown stage", &[(PREVIOUS.0, PREVIOUS.1), ("[audit]\n", "[renew]\nall = true\n\n[rotate]\nca = \"etcd\"\nstage = \"activate\"\n\n[audit]\n")],
        &[r#"rotate.stage: must be stage, promote or distrust (got "activate")"#]),
    ("rotate without renewing every node", &[(PREVIOUS.0, PREVIOUS.1), ("[audit]\n", "[renew]\nnodes = [\"cp1\"]\n\n[rotate]\nca = \"kubernetes\"\nstage = \"stage\"\n\n[audit]\n")],
        &["rotate: needs renew.all = true: each stage changes every node's trust files (and at promote its leaves)"]),
    ("rotate to another CA's label", &[(PREVIOUS.0, PREVIOUS.1), ("[audit]\n", "[renew]\nall = true\n\n[rotate]\nca = \"kubernetes\"\nstage = \"stage\"\nnew_label = \"etcd-ca\"\n\n[audit]\n")],
        &[r#"rotate.new_label: is the label of a CA of this plan; the new key needs its own (got "etcd-ca")"#]),
    ("rotate a delegated CA", &[(PREVIOUS.0, PREVIOUS.1), ("[ca.etcd]\n", "[ca.etcd]\nmode = \"delegated\"\ncsr = \"etcd-ca.csr\"\n"), ("[audit]\n", "[renew]\nall = true\n\n[rotate]\nca = \"etcd\"\nstage = \"stage\"\n\n[audit]\n")],
        &["ceremony.previous: a continuing ceremony of a plan with a delegated CA is not offered yet: run a founding ceremony (new labels) to sign a delegated CA again",
          r#"rotate.ca: is delegated to the control-plane nodes: its key is not on the token to rotate (got "etcd")"#]),
    ("rotate to a label too long", &[(PREVIOUS.0, PREVIOUS.1), ("[audit]\n", "[renew]\nall = true\n\n[rotate]\nca = \"kubernetes\"\nstage = \"stage\"\nnew_label = \"kubernetes-ca-0123456789abcdef0123\"\n\n[audit]\n")],
        &[r#"rotate.new_label: must be 1 to 32 bytes (a token label) (got "kubernetes-ca-0123456789abcdef0123")"#]),
    ("rotate whose default label is too long", &[(PREVIOUS.0, PREVIOUS.1), ("label = \"kubernetes-ca\"", "label = \"kubernetes-ca-0123456789abcdef\""), ("[audit]\n", "[renew]\nall = true\n\n[rotate]\nca = \"kubernetes\"\nstage = \"stage\"\n\n[audit]\n")],
        &[r#"rotate.new_label: is needed: the default "kubernetes-ca-0123456789abcdef-table" is longer than 32 bytes"#]),
    ("rotate the kubernetes CA with a kubelet signer", &[(PREVIOUS.0, PREVIOUS.1), ("[audit]\n", "[kubelet_signer]\ncsr = \"kubelet-signer.csr\"\nkey = \"ecdsa-p256\"\nvalidity = \"90d\"\n\n[renew]\nall = true\n\n[rotate]\nca = \"kubernetes\"\nstage = \"stage\"\n\n[audit]\n")],
        &[r#"rotate.ca: cannot rotate the kubernetes CA of a plan with [kubelet_signer] yet: the signer's client-CA bundle holds one kubernetes CA (got "kubernetes")"#]),
    ("rotate and reissue one CA", &[(PREVIOUS.0, PREVIOUS.1), ("[audit]\n", "[renew]\nall = true\n\n[reissue]\ncas = [\"etcd\"]\n\n[rotate]\nca = \"etcd\"\nstage = \"stage\"\n\n[audit]\n")],
        &[r#"rotate.ca: is also in reissue.cas: reissue and rotate a CA in separate ceremonies (got "etcd")"#]),
    // [audit]
    ("no recipient", &[(RECIPIENT, "")],
        &["audit.recipients: must name at least one age or SSH recipient who can read the audit log (got [])"]),
    ("recipient", &[(RECIPIENT, r#""age1nope""#)],
        &[r#"audit.recipients[0]: is not an age recipient (age1…) or an SSH public key (ssh-ed25519 …, ssh-rsa …) (got "age1nope")"#]),
];

#[test]
fn revocations_are_typed_in_plan_order() {
    use crate::plan::spec::{RevokeSpec, RevokeTarget};
    use crate::x509::crl::Reason;
    let v = validate(
        &crate::plan::parse(&edited(&[
            PREVIOUS,
            (
                "[audit]\n",
                "[crl]\nnext_update = \"7d\"\n\n[[revoke]]\nnode = \"cp2\"\nfile = \"pki/etcd/peer.crt\"\nreason = \"key-compromise\"\n\n[[revoke]]\nca = \"root\"\nserial = \"80:01\"\n\n[audit]\n",
            ),
        ]))
        .unwrap(),
        &ctx(),
    )
    .unwrap();
    assert!(v.crl.requested);
    assert_eq!(v.crl.next_update, Duration::from_secs(7 * 86_400));
    assert_eq!(
        v.crl.revoke,
        vec![
            RevokeSpec {
                target: RevokeTarget::File {
                    node: "cp2".into(),
                    file: "pki/etcd/peer.crt".into()
                },
                reason: Reason::KeyCompromise
            },
            RevokeSpec {
                target: RevokeTarget::Serial {
                    ca: CaRole::Root,
                    serial: vec![0x80, 0x01]
                },
                reason: Reason::Unspecified
            },
        ]
    );
    // Without [crl] or [[revoke]], no CRL is asked for (the previous
    // output's may still be signed again).
    let base = validate(&crate::plan::parse(BASE).unwrap(), &ctx()).unwrap();
    assert!(!base.crl.requested);
    assert!(base.reissue.is_empty());
    assert_eq!(base.crl.next_update, Duration::from_secs(30 * 86_400));
}

#[test]
fn the_base_plan_passes_and_is_typed() {
    let plan = crate::plan::parse(BASE).unwrap();
    let v = validate(&plan, &ctx()).unwrap();
    assert_eq!(v.cas.len(), 4);
    assert!(v.leaf_key_explicit);
    assert_eq!(v.csr_dir, None);
    assert_eq!(v.users.len(), 1);
    let alice = &v.users[0];
    assert_eq!(
        (alice.name.as_str(), alice.groups.as_slice()),
        ("alice", &["ops".to_string()][..])
    );
    // Without its own validity a user's certificate lives as long as a leaf.
    assert_eq!(alice.validity, Duration::from_secs(365 * 86400));
    assert_eq!(alice.csr, None);
    assert!(!alice.allow_masters);
}

#[test]
fn users_csr_dir_and_leaf_key_as_the_plan_says() {
    let text = edited(&[
        (
            r#"groups = ["ops"]"#,
            "groups = [\"system:masters\"]\nallow_masters = true\nvalidity = \"30d\"\ncsr = \"alice.csr\"",
        ),
        ("leaf_key = \"ecdsa-p256\"\n", ""),
        (
            "[audit]\n",
            "[leaves]\nmode = \"csr\"\ncsr_dir = \"csrs\"\n\n[audit]\n",
        ),
    ]);
    let v = validate(&crate::plan::parse(&text).unwrap(), &ctx()).unwrap();
    assert!(!v.leaf_key_explicit);
    assert_eq!(v.csr_dir, Some("csrs".into()));
    let alice = &v.users[0];
    assert_eq!(alice.validity, Duration::from_secs(30 * 86400));
    assert_eq!(alice.csr, Some("alice.csr".into()));
    assert!(alice.allow_masters);
    // A csr_dir is only read in CSR mode.
    let generate = text.replace("mode = \"csr\"", "mode = \"generate\"");
    let v = validate(&crate::plan::parse(&generate).unwrap(), &ctx()).unwrap();
    assert_eq!(v.csr_dir, None);
}

/// A valid `[backup]`: custodians trimmed, in plan order; the CAs in
/// hierarchy order whatever the plan's order; all four by default.
#[test]
fn a_backup_section_is_typed() {
    let text = edited(&[(
        "[audit]\n",
        "[backup]\ncustodians = [\" Carol\", \"Dave\", \"Erin\"]\nthreshold = 2\ncas = [\"etcd\", \"root\"]\n\n[audit]\n",
    )]);
    let v = validate(&crate::plan::parse(&text).unwrap(), &ctx()).unwrap();
    let b = v.backup.unwrap();
    assert_eq!(b.custodians, ["Carol", "Dave", "Erin"]);
    assert_eq!(b.threshold, 2);
    assert_eq!(b.cas, [CaRole::Root, CaRole::Etcd]);
    let all = text.replace("cas = [\"etcd\", \"root\"]\n", "");
    let v = validate(&crate::plan::parse(&all).unwrap(), &ctx()).unwrap();
    assert_eq!(v.backup.unwrap().cas.len(), 4);
    assert!(
        validate(&crate::plan::parse(BASE).unwrap(), &ctx())
            .unwrap()
            .backup
            .is_none()
    );
}

#[test]
fn every_rule_gives_its_exact_problems() {
    let mut wrong = Vec::new();
    for (rule, edits, expected) in ROWS {
        let got = problems(&edited(edits));
        if got != *expected {
            wrong.push(format!("{rule}:\n  expected {expected:#?}\n  got {got:#?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Each `p.add(` in validate.rs is reached by a row, so a new rule without a
/// row fails here. (The "internal: validation lost a value" problem is not
/// an `add`: no plan reaches it.)
#[test]
fn every_problem_site_has_a_row() {
    REACHED.with(|r| r.borrow_mut().clear());
    for (_, edits, _) in ROWS {
        problems(&edited(edits));
    }
    let reached = REACHED.with(|r| r.borrow().clone());
    let scan = |name: &'static str, text: &'static str| {
        text.lines()
            .zip(1..)
            .filter(|(l, _)| l.contains(".add(") && !l.contains("fn add("))
            .map(move |(_, n)| (name, n))
            .collect::<Vec<_>>()
    };
    let sites: BTreeSet<(&str, u32)> = scan("validate.rs", include_str!("../validate.rs"))
        .into_iter()
        .chain(scan("cluster.rs", include_str!("cluster.rs")))
        .chain(scan("revoke.rs", include_str!("revoke.rs")))
        .chain(scan("delegation.rs", include_str!("delegation.rs")))
        .collect();
    assert!(
        sites.len() >= 45,
        "the scan found only {} sites",
        sites.len()
    );
    let missing: Vec<(&str, u32)> = sites.difference(&reached).copied().collect();
    assert!(
        missing.is_empty(),
        "these lines add a problem that no row reaches: {missing:?}"
    );
}

#[test]
fn versions() {
    assert_eq!(parse_version("v1.31"), Some((1, 31)));
    assert_eq!(parse_version("1.28.3"), Some((1, 28)));
    assert_eq!(parse_version("v1.24.0-alpha.1"), Some((1, 24)));
    assert_eq!(parse_version("one"), None);
}

#[test]
fn endpoints() {
    assert_eq!(
        parse_endpoint("10.0.0.1", 6443).unwrap(),
        (San::Ip("10.0.0.1".parse().unwrap()), 6443)
    );
    assert_eq!(
        parse_endpoint("k8s.example.com:443", 6443).unwrap(),
        (San::Dns("k8s.example.com".into()), 443)
    );
    assert_eq!(
        parse_endpoint("[fd00::1]:6443", 1).unwrap(),
        (San::Ip("fd00::1".parse().unwrap()), 6443)
    );
    assert!(parse_endpoint("k8s.example.com:0", 6443).is_err());
    assert!(parse_endpoint("bad_host", 6443).is_err());
}

#[test]
fn cidrs() {
    assert_eq!(parse_cidr("10.96.0.0/12").unwrap().1, 12);
    assert!(parse_cidr("10.96.0.0/31").is_err());
    assert!(parse_cidr("fd00::/108").is_ok());
    assert!(
        parse_cidr("10.96.0.1/12")
            .unwrap_err()
            .contains("host bits")
    );
    assert!(parse_cidr("fd00::1/108").unwrap_err().contains("host bits"));
}

#[test]
fn subjects_and_users() {
    assert!(parse_subject("CN=Root,O=Example").is_ok());
    assert_eq!(parse_subject("CN=").unwrap_err(), "has an empty CN");
    assert_eq!(
        parse_subject("O=Example").unwrap_err(),
        "must contain a CN="
    );
    assert!(is_user_name("alice@example.com"));
    assert!(!is_user_name("alice smith"));
    assert!(!is_user_name("system:admin"));
}
