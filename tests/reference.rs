//! Field-by-field comparison of our bundle with a real kubeadm's output:
//! tests/fixtures/kubeadm/reference/etc/kubernetes (config in
//! tests/fixtures/kubeadm/reference/kubeadm.yaml: node cp1, advertise 10.0.0.10,
//! controlPlaneEndpoint 127.0.0.1:6443, serviceSubnet 10.96.0.0/12,
//! dnsDomain cluster.local, RSA-2048 keys, CA keys deleted = external CA).
//!
//! The reference's pki leaves were made by kubeadm 1.24 (system:masters on
//! apiserver-kubelet-client and the two etcd clients) while its kubeconfigs
//! have the >= 1.29 layout (admin.conf in kubeadm:cluster-admins, a
//! super-admin.conf in system:masters). So pki/* is compared with a run for
//! kubernetes_version v1.24 and the kubeconfigs with a run for v1.31: two
//! runs on one token, the second reusing the CA keys the first made.
//!
//! Deliberate differences, not compared: our CAs are intermediates under an
//! offline root (issuer = the root, pathLen 0, KeyUsage keyCertSign+cRLSign+
//! digitalSignature, an AKI, no SAN), kubeadm's are self-signed; serial
//! numbers, validity start, key material and string encodings (Go writes
//! PrintableString where it can, we write UTF8String) differ by nature.

// A test fails by panicking and talks on stderr: the crate's lints
// (Cargo.toml) are for the crate, not for its integration tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use x509_parser::certificate::X509Certificate;

fn reference() -> PathBuf {
    let p = Path::new(MANIFEST_DIR).join("tests/fixtures/kubeadm/reference/etc/kubernetes");
    assert!(
        p.is_dir(),
        "{} is missing: the reference kubeadm output lives in tests/fixtures/kubeadm",
        p.display()
    );
    p
}

/// The reference's parameters, with `version` selecting the Organizations.
fn plan(version: &str) -> PlanSpec<'_> {
    let mut spec = PlanSpec::peers(&[("cp1", "10.0.0.10")], &[]);
    spec.keys = ["ecdsa-p256", "rsa-2048", "rsa-2048", "rsa-2048"];
    let c = spec.cluster();
    c.version = version;
    c.apiserver_extra_sans = &[];
    c.leaf_key = "rsa-2048";
    spec
}

/// Every difference found, reported together at the end.
#[derive(Default)]
struct Diffs(Vec<String>);

impl Diffs {
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, ours: T, theirs: T) {
        if ours != theirs {
            self.0.push(format!(
                "{what}:\n    ours:      {ours:?}\n    reference: {theirs:?}"
            ));
        }
    }

    fn check(&mut self, what: &str, ok: bool) {
        if !ok {
            self.0.push(what.to_string());
        }
    }

    fn assert_none(self) {
        assert!(
            self.0.is_empty(),
            "{} difference(s) from the kubeadm reference:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

fn validity_days(c: &X509Certificate<'_>) -> i64 {
    let v = c.validity();
    (v.not_after.timestamp() - v.not_before.timestamp()) / 86400
}

fn set(v: Option<Vec<String>>) -> Option<BTreeSet<String>> {
    v.map(|v| v.into_iter().collect())
}

/// One leaf certificate, ours against the reference's. `*_issuer` is the CA
/// certificate that must have issued it on each side (for the AKI).
fn compare_leaf(
    d: &mut Diffs,
    name: &str,
    ours: &X509Certificate<'_>,
    ours_issuer: &X509Certificate<'_>,
    theirs: &X509Certificate<'_>,
    theirs_issuer: &X509Certificate<'_>,
) {
    let f = |field: &str| format!("{name}: {field}");
    d.eq(&f("version"), ours.version(), theirs.version());
    // Subject and issuer as RDN sequences: CN, the O set (one multi-valued
    // RDN), and Go's order (O before CN).
    d.eq(
        &f("subject RDNs"),
        rdns(ours.subject()),
        rdns(theirs.subject()),
    );
    d.eq(&f("CN"), cn(ours), cn(theirs));
    d.eq(&f("O set"), orgs(ours), orgs(theirs));
    d.eq(
        &f("issuer RDNs"),
        rdns(ours.issuer()),
        rdns(theirs.issuer()),
    );
    d.eq(&f("EKU set"), eku(ours), eku(theirs));
    // With RSA keys kubeadm's digitalSignature + keyEncipherment, critical.
    d.eq(
        &f("KeyUsage (critical, bits)"),
        key_usage(ours),
        key_usage(theirs),
    );
    d.eq(
        &f("BasicConstraints (critical, CA, pathLen)"),
        basic_constraints(ours),
        basic_constraints(theirs),
    );
    d.eq(
        &f("BasicConstraints is critical CA:FALSE"),
        basic_constraints(ours),
        Some((true, false, None)),
    );
    let our_sans = sans(ours);
    d.eq(&f("SAN set"), set(our_sans.clone()), set(sans(theirs)));
    if let Some(v) = &our_sans {
        d.eq(
            &f("SANs de-duplicated"),
            v.len(),
            v.iter().collect::<BTreeSet<_>>().len(),
        );
    }
    // AKI = the issuing CA's SKI, on both sides.
    d.eq(
        &f("AKI = issuer's SKI"),
        aki(ours).is_some() && aki(ours) == ski(ours_issuer),
        aki(theirs).is_some() && aki(theirs) == ski(theirs_issuer),
    );
    d.eq(
        &f("SKI present"),
        ski(ours).is_some(),
        ski(theirs).is_some(),
    );
    // The same extensions with the same criticality, nothing more or less.
    d.eq(&f("extensions"), extension_set(ours), extension_set(theirs));
    d.eq(&f("key type/size"), key_type(ours), key_type(theirs));
    d.eq(
        &f("signature algorithm"),
        ours.signature_algorithm.algorithm.to_id_string(),
        theirs.signature_algorithm.algorithm.to_id_string(),
    );
    // One year (kubeadm: CA notBefore .. now + 1y; ours: now - 5 min .. now + 365d).
    d.eq(
        &f("validity (days)"),
        validity_days(ours),
        validity_days(theirs),
    );
}

/// A CA certificate of the node: the same subject, a critical CA:TRUE, the
/// same key type, a critical KeyUsage with keyCertSign. (Issuer, pathLen,
/// SAN and the other key usages differ by design: see the file comment.)
fn compare_ca(d: &mut Diffs, name: &str, ours: &X509Certificate<'_>, theirs: &X509Certificate<'_>) {
    let f = |field: &str| format!("{name}: {field}");
    d.eq(
        &f("subject RDNs"),
        rdns(ours.subject()),
        rdns(theirs.subject()),
    );
    d.eq(
        &f("BasicConstraints critical, CA"),
        basic_constraints(ours).map(|(c, ca, _)| (c, ca)),
        basic_constraints(theirs).map(|(c, ca, _)| (c, ca)),
    );
    d.eq(&f("key type/size"), key_type(ours), key_type(theirs));
    let cert_sign = |c: &X509Certificate<'_>| {
        c.key_usage()
            .expect("KeyUsage")
            .map(|k| (k.critical, k.value.key_cert_sign()))
    };
    d.eq(
        &f("KeyUsage critical, keyCertSign"),
        cert_sign(ours),
        cert_sign(theirs),
    );
    d.check(&f("has an SKI"), ski(ours).is_some());
}

fn cert_of(dir: &Path, path: &str) -> Vec<u8> {
    one_cert(&dir.join(path))
}

fn pem_label(path: &Path) -> String {
    let blocks = pem_blocks(&read(path));
    assert_eq!(
        blocks.len(),
        1,
        "{} must hold one PEM block",
        path.display()
    );
    blocks[0].label.clone()
}

/// The expected mode of a file in etc/kubernetes (kubeadm's: certificates
/// 0644; keys, sa.pub and kubeconfigs 0600).
fn expected_mode(path: &str) -> Option<u32> {
    if path.ends_with(".crt") {
        Some(0o644)
    } else if path.ends_with(".key")
        || path.ends_with(".pub")
        || path.ends_with(".conf")
        || path == "kubeadm-config.yaml"
    {
        Some(0o600)
    } else {
        None
    }
}

/// A kubeconfig as client-go reads it, with each non-empty `*-data` value
/// replaced by "<data>": what is left is the whole structure (one cluster,
/// user and context, their names, the server, current-context) to compare.
fn skeleton(mut kc: serde_json::Value) -> serde_json::Value {
    for (section, inner) in [("clusters", "cluster"), ("users", "user")] {
        if let Some(items) = kc[section].as_array_mut() {
            for item in items {
                if let Some(obj) = item[inner].as_object_mut() {
                    for (k, v) in obj.iter_mut() {
                        if k.ends_with("-data") && v.as_str().is_some_and(|s| !s.is_empty()) {
                            *v = serde_json::Value::String("<data>".into());
                        }
                    }
                }
            }
        }
    }
    kc
}

/// The key skeleton of the YAML text, in order (what precedes ": "); blank
/// lines are ignored (the reference's hand-reissued admin.conf and
/// super-admin.conf end with one).
fn text_skeleton(path: &Path) -> Vec<String> {
    String::from_utf8(read(path))
        .expect("utf-8")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(": ").next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn bundle_matches_the_kubeadm_reference_field_by_field() {
    let reference = reference();
    let token = Fixture::new("reference");
    let scratch = token.path().to_path_buf();
    // pki/* with kubeadm 1.24's Organizations; kubeconfigs with >= 1.29's.
    let old_out = token.run_spec("v1.24", &plan("v1.24"));
    let new_out = token.run_spec("v1.31", &plan("v1.31"));
    let old = node_dir(&old_out, "cp1");
    let new = node_dir(&new_out, "cp1");
    let mut d = Diffs::default();

    // The second run reused the CA keys and certificates of the first.
    for d_ in Domain::ALL {
        d.eq(
            &format!("{} identical in both runs", d_.node_ca_file()),
            cert_of(&old, d_.node_ca_file()),
            cert_of(&new, d_.node_ca_file()),
        );
    }

    // --- The file set: kubeadm's, without the CA keys (external-CA mode),
    // and the node's kubeadm configuration (read by kubeadm, not written).
    let ours = |dir: &Path| -> Vec<String> {
        files_under(dir)
            .into_iter()
            .filter(|f| f != "kubeadm-config.yaml")
            .collect()
    };
    let theirs_files = files_under(&reference);
    d.eq("file set (v1.31 run)", ours(&new), theirs_files.clone());
    let without_super: Vec<String> = theirs_files
        .iter()
        .filter(|f| *f != "super-admin.conf")
        .cloned()
        .collect();
    d.eq("file set (v1.24 run)", ours(&old), without_super);
    for ca_key in ["pki/ca.key", "pki/etcd/ca.key", "pki/front-proxy-ca.key"] {
        d.check(
            &format!("{ca_key} must not exist"),
            !new.join(ca_key).exists(),
        );
        d.check(
            &format!("{ca_key} must not exist"),
            !old.join(ca_key).exists(),
        );
    }

    // --- Modes.
    for (run, dir) in [("v1.24", &old), ("v1.31", &new)] {
        for f in files_under(dir) {
            d.eq(
                &format!("mode of {f} ({run})"),
                Some(mode(&dir.join(&f))),
                expected_mode(&f),
            );
        }
    }

    // --- CA certificates.
    for dom in Domain::ALL {
        let f = dom.node_ca_file();
        let (o, t) = (cert_of(&old, f), cert_of(&reference, f));
        compare_ca(&mut d, f, &parse(&o), &parse(&t));
    }

    // --- pki leaves (v1.24 run).
    for (path, dom) in PKI_LEAVES {
        let crt = format!("{path}.crt");
        let (o, t) = (cert_of(&old, &crt), cert_of(&reference, &crt));
        let (oi, ti) = (
            cert_of(&old, dom.node_ca_file()),
            cert_of(&reference, dom.node_ca_file()),
        );
        compare_leaf(
            &mut d,
            &crt,
            &parse(&o),
            &parse(&oi),
            &parse(&t),
            &parse(&ti),
        );
        // Keys: the same PEM type (PKCS#1 RSA PRIVATE KEY), and ours matches
        // its certificate (as OpenSSL computes the public key).
        let key = format!("{path}.key");
        d.eq(
            &format!("{key}: PEM type"),
            pem_label(&old.join(&key)),
            pem_label(&reference.join(&key)),
        );
        let public = openssl_pubkey_of_private(&read(&old.join(&key)), &scratch.join("k.pem"));
        d.check(
            &format!("{key} does not match {crt}"),
            public == spki_der(&parse(&o)),
        );
    }
    for f in ["pki/sa.key", "pki/sa.pub"] {
        d.eq(
            &format!("{f}: PEM type"),
            pem_label(&old.join(f)),
            pem_label(&reference.join(f)),
        );
    }
    let sa = openssl_pubkey_of_private(&read(&old.join("pki/sa.key")), &scratch.join("sa.pem"));
    d.check(
        "sa.pub is sa.key's public key",
        sa == openssl_pubkey(&old.join("pki/sa.pub")),
    );
    d.eq(
        "sa.pub key type",
        key_size_of_pub(&old.join("pki/sa.pub")),
        key_size_of_pub(&reference.join("pki/sa.pub")),
    );

    // The v1.31 run's pki has the >= 1.29 Organizations (README's table).
    let o = |path: &str| orgs(&parse(&cert_of(&new, path)));
    d.eq(
        "v1.31 apiserver-kubelet-client O",
        o("pki/apiserver-kubelet-client.crt"),
        BTreeSet::from(["kubeadm:cluster-admins".to_string()]),
    );
    d.eq(
        "v1.31 apiserver-etcd-client O",
        o("pki/apiserver-etcd-client.crt"),
        BTreeSet::new(),
    );
    d.eq(
        "v1.31 etcd/healthcheck-client O",
        o("pki/etcd/healthcheck-client.crt"),
        BTreeSet::new(),
    );

    // --- Kubeconfigs (v1.31 run).
    let our_ca = cert_of(&new, "pki/ca.crt");
    let their_ca = cert_of(&reference, "pki/ca.crt");
    for conf in CP_KUBECONFIGS {
        let (op, tp) = (new.join(conf), reference.join(conf));
        let (ojs, tjs) = (
            kubeconfig_json(&op, &scratch),
            kubeconfig_json(&tp, &scratch),
        );
        // Structure: names, server, current-context, the three data fields.
        d.eq(
            &format!("{conf}: structure"),
            skeleton(ojs.clone()),
            skeleton(tjs.clone()),
        );
        d.eq(
            &format!("{conf}: YAML keys in order"),
            text_skeleton(&op),
            text_skeleton(&tp),
        );
        let (ocert, okey, oca) = kubeconfig_credentials(&ojs);
        let (tcert, tkey, tca) = kubeconfig_credentials(&tjs);
        // certificate-authority-data = the node's pki/ca.crt, byte for byte
        // (kubeadm before 1.30 requires that).
        d.check(
            &format!("{conf}: certificate-authority-data is not pki/ca.crt"),
            oca == read(&new.join("pki/ca.crt")),
        );
        d.check(
            &format!("{conf}: reference CA data is its pki/ca.crt (sanity)"),
            tca == read(&reference.join("pki/ca.crt")),
        );
        let ocert = one_cert_in(&ocert);
        let tcert = one_cert_in(&tcert);
        compare_leaf(
            &mut d,
            &format!("{conf} client certificate"),
            &parse(&ocert),
            &parse(&our_ca),
            &parse(&tcert),
            &parse(&their_ca),
        );
        let label = |pem: &[u8]| pem_blocks(pem).first().map(|p| p.label.clone());
        d.eq(
            &format!("{conf}: client key PEM type"),
            label(&okey),
            label(&tkey),
        );
        let public = openssl_pubkey_of_private(&okey, &scratch.join("kc.pem"));
        d.check(
            &format!("{conf}: client key does not match the client certificate"),
            public == spki_der(&parse(&ocert)),
        );
    }

    // The v1.24 run's kubeconfigs: the older layout (no super-admin.conf,
    // admin.conf in system:masters).
    let admin_old = kubeconfig_json(&old.join("admin.conf"), &scratch);
    let (c, _, _) = kubeconfig_credentials(&admin_old);
    d.eq(
        "v1.24 admin.conf O",
        orgs(&parse(&one_cert_in(&c))),
        BTreeSet::from(["system:masters".to_string()]),
    );

    d.assert_none();
}

fn one_cert_in(pem: &[u8]) -> Vec<u8> {
    let blocks = pem_blocks(pem);
    assert_eq!(blocks.len(), 1, "one certificate expected");
    assert_eq!(blocks[0].label, "CERTIFICATE");
    blocks[0].contents.clone()
}

/// "RSA-2048"-style description of a PEM public key, via OpenSSL.
fn key_size_of_pub(path: &Path) -> String {
    let r = openssl(&[
        "pkey",
        "-pubin",
        "-in",
        &path.to_string_lossy(),
        "-noout",
        "-text",
    ])
    .expect_ok();
    r.stdout.lines().next().unwrap_or("").trim().to_string()
}
