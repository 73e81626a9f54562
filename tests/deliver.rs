//! What each node receives, end to end on a real SoftHSM2 token: its kubeadm
//! configuration, parsed with kubeadm's own types (vendored in
//! tests/kubeadm/schema.rs) and compared field by field with the bundle's
//! certificates and kubeconfigs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;
#[path = "kubeadm/schema.rs"]
mod schema;

use std::path::Path;

use common::*;
use schema::Doc;
use sha2::Digest;

const KEYS: Keys = ["ecdsa-p256"; 4];

fn kubeadm_config(out: &Path, node: &str) -> Vec<Doc> {
    let file = node_dir(out, node).join("kubeadm-config.yaml");
    assert_eq!(mode(&file), 0o600, "{}", file.display());
    let text = String::from_utf8(read(&file)).unwrap();
    schema::parse(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", file.display()))
}

/// (cluster name, server) of a kubeconfig.
fn kubeconfig(out: &Path, node: &str, file: &str) -> (String, String) {
    let v: serde_norway::Value =
        serde_norway::from_slice(&read(&node_dir(out, node).join(file))).unwrap();
    let cluster = &v["clusters"][0];
    (
        cluster["name"].as_str().unwrap().to_string(),
        cluster["cluster"]["server"].as_str().unwrap().to_string(),
    )
}

fn host_port(server: &str) -> String {
    server.strip_prefix("https://").unwrap().to_string()
}

fn san(host: &str) -> String {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => format!("IP:{ip}"),
        Err(_) => format!("DNS:{host}"),
    }
}

fn apiserver_sans(out: &Path, node: &str) -> Vec<String> {
    let der = one_cert(&node_dir(out, node).join("pki/apiserver.crt"));
    sans(&parse(&der)).unwrap()
}

/// Replaces a file of the bundle (the writer's mode).
fn rewrite(file: &Path, text: &str) {
    std::fs::remove_file(file).unwrap();
    write_file(file, text.as_bytes(), 0o600);
}

/// `sha256:<hex>` of pki/ca.crt's SubjectPublicKeyInfo, as
/// `--discovery-token-ca-cert-hash` wants it.
fn ca_hash(out: &Path, node: &str) -> String {
    let der = one_cert(&node_dir(out, node).join("pki/ca.crt"));
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(spki_der(&parse(&der))))
    )
}

/// kubeadm's EncryptionAlgorithmType of a certificate's key.
fn algorithm(out: &Path, node: &str, file: &str) -> &'static str {
    let der = one_cert(&node_dir(out, node).join(file));
    match key_type(&parse(&der)).as_str() {
        "RSA-2048" => "RSA-2048",
        "RSA-3072" => "RSA-3072",
        "RSA-4096" => "RSA-4096",
        t if t.starts_with("EC-256") => "ECDSA-P256",
        t if t.starts_with("EC-384") => "ECDSA-P384",
        t => panic!("{t}"),
    }
}

/// The first address of a service CIDR (IPv4).
fn first_service_ip(cidr: &str) -> String {
    let (net, _) = cidr.split_once('/').unwrap();
    let ip: std::net::Ipv4Addr = net.parse().unwrap();
    format!("IP:{}", std::net::Ipv4Addr::from(u32::from(ip) + 1))
}

/// The Go duration (`8760h0m0s`) of a certificate's validity: from the
/// moment of signing, which notBefore precedes by kubeadm's five-minute
/// backdate.
fn validity(out: &Path, node: &str, file: &str) -> String {
    let der = one_cert(&node_dir(out, node).join(file));
    let c = parse(&der);
    let s = c.validity().not_after.timestamp() - c.validity().not_before.timestamp() - 300;
    format!("{}h{}m{}s", s / 3600, (s % 3600) / 60, s % 60)
}

/// cp1, cp2 and worker1 (the token is the fixture's: `run_spec` sets it).
fn three_node_plan(version: &'static str) -> PlanSpec<'static> {
    let mut spec = PlanSpec::new("", KEYS);
    let c = spec.cluster();
    c.version = version;
    c.control_plane = &[("cp1", "10.0.0.11"), ("cp2", "10.0.0.12")];
    c.workers = &["worker1"];
    c.service_cidr = Some("10.100.0.0/16");
    c.dns_domain = Some("corp.example");
    spec
}

/// Every field of every node's configuration agrees with its certificates.
#[test]
fn kubeadm_configurations_parse_with_kubeadms_types_and_match_the_certificates() {
    let f = Fixture::new("t-deliver-v4");
    let out = f.run_spec("v4", &three_node_plan("v1.31"));

    // cp1: kubeadm init.
    let docs = kubeadm_config(&out, "cp1");
    assert_eq!(docs.len(), 3, "{docs:?}");
    let sans1 = apiserver_sans(&out, "cp1");
    let (cluster_name, admin_server) = kubeconfig(&out, "cp1", "admin.conf");
    let (_, local_server) = kubeconfig(&out, "cp1", "controller-manager.conf");
    let Doc::InitV4(init) = &docs[0] else {
        panic!("{docs:?}")
    };
    assert_eq!(init.node_registration.name, "cp1");
    let local = &init.local_api_endpoint;
    assert_eq!(
        host_port(&local_server),
        format!("{}:{}", local.advertise_address, local.bind_port)
    );
    assert!(sans1.contains(&san(&local.advertise_address)), "{sans1:?}");
    let Doc::ClusterV4(cc) = &docs[1] else {
        panic!("{docs:?}")
    };
    assert_eq!(cc.cluster_name, cluster_name);
    assert_eq!(cc.control_plane_endpoint, host_port(&admin_server));
    let endpoint_host = cc.control_plane_endpoint.rsplit_once(':').unwrap().0;
    assert!(sans1.contains(&san(endpoint_host)), "{sans1:?}");
    for s in &cc.api_server.cert_sans {
        assert!(sans1.contains(&san(s)), "certSAN {s} not in {sans1:?}");
    }
    assert_eq!(cc.networking.service_subnet, "10.100.0.0/16");
    assert!(
        sans1.contains(&first_service_ip(&cc.networking.service_subnet)),
        "{sans1:?}"
    );
    assert!(
        sans1.contains(&format!(
            "DNS:kubernetes.default.svc.{}",
            cc.networking.dns_domain
        )),
        "{sans1:?}"
    );
    assert_eq!(cc.certificates_dir, "/etc/kubernetes/pki");
    assert_eq!(
        cc.encryption_algorithm,
        algorithm(&out, "cp1", "pki/apiserver.crt")
    );
    assert_eq!(
        cc.certificate_validity_period.as_deref(),
        Some(validity(&out, "cp1", "pki/apiserver.crt").as_str())
    );
    assert!(cc.feature_gates.is_empty());
    let Doc::Kubelet(k) = &docs[2] else {
        panic!("{docs:?}")
    };
    assert_eq!(k.rotate_certificates, Some(false));

    // cp2: kubeadm join --control-plane, pinning the kubernetes CA.
    let docs = kubeadm_config(&out, "cp2");
    let [Doc::JoinV4(join)] = &docs[..] else {
        panic!("{docs:?}")
    };
    assert_eq!(join.node_registration.name, "cp2");
    let sans2 = apiserver_sans(&out, "cp2");
    let cp = join.control_plane.as_ref().unwrap();
    assert!(
        sans2.contains(&san(&cp.local_api_endpoint.advertise_address)),
        "{sans2:?}"
    );
    let (_, cp2_local) = kubeconfig(&out, "cp2", "scheduler.conf");
    assert_eq!(
        host_port(&cp2_local),
        format!(
            "{}:{}",
            cp.local_api_endpoint.advertise_address, cp.local_api_endpoint.bind_port
        )
    );
    let bt = join.discovery.bootstrap_token.as_ref().unwrap();
    assert_eq!(bt.ca_cert_hashes, [ca_hash(&out, "cp2")]);
    assert_eq!(
        bt.api_server_endpoint,
        host_port(&kubeconfig(&out, "cp2", "admin.conf").1)
    );
    assert_eq!(bt.token, "REPLACE-WITH-BOOTSTRAP-TOKEN");
    assert!(!bt.unsafe_skip_ca_verification);
    assert_eq!(join.ca_cert_path, "/etc/kubernetes/pki/ca.crt");

    // worker1: kubeadm join.
    let docs = kubeadm_config(&out, "worker1");
    let [Doc::JoinV4(join)] = &docs[..] else {
        panic!("{docs:?}")
    };
    assert_eq!(join.node_registration.name, "worker1");
    assert!(join.control_plane.is_none());
    let bt = join.discovery.bootstrap_token.as_ref().unwrap();
    assert_eq!(bt.ca_cert_hashes, [ca_hash(&out, "worker1")]);
    assert_eq!(
        bt.api_server_endpoint,
        host_port(&kubeconfig(&out, "worker1", "kubelet.conf").1)
    );
    assert_eq!(
        join.node_registration.ignore_preflight_errors,
        [
            "FileAvailable--etc-kubernetes-kubelet.conf",
            "FileAvailable--etc-kubernetes-pki-ca.crt"
        ]
    );

    // In SHA256SUMS, and checked by verify (with and without the plan).
    let sums = String::from_utf8(read(&out.join("SHA256SUMS"))).unwrap();
    for n in ["cp1", "cp2", "worker1"] {
        assert!(sums.contains(&format!("  nodes/{n}/etc/kubernetes/kubeadm-config.yaml\n")));
    }
    f.ceremony(&["verify", out.to_str().unwrap()])
        .assert_ok("verify");
    let plan = f.path().join("v4.toml");
    f.ceremony(&[
        "verify",
        out.to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
    ])
    .assert_ok("verify --plan");
    // --json: one object, the schema of docs/json.md.
    let o = f.ceremony(&["verify", out.to_str().unwrap(), "--json"]);
    o.assert_ok("verify --json");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["schema"], 1);
    assert_eq!(v["ok"], true);
    assert_eq!(v["problems"], serde_json::json!([]));
    assert_eq!(
        v["nodes"][0],
        serde_json::json!({"name": "cp1", "role": "control-plane"})
    );
    assert_eq!(v["root"], "root-ca.crt");
    assert!(v["summary"].as_str().unwrap().starts_with("OK: "));
    let o = f.audit_verify(&out.join("audit.log.age"), &["--json"]);
    o.assert_ok("audit verify --json");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        (v["schema"].clone(), v["ok"].clone()),
        (1.into(), true.into())
    );
    assert_eq!(v["logs"][0]["sealed"], true);
    assert_eq!(v["logs"][0]["seal"]["signature_checked"], true);
    assert_eq!(v["logs"][0]["final_hash"].as_str().unwrap().len(), 64);
    let o = f.audit_verify(&out.join("SHA256SUMS"), &["--json"]);
    assert!(o.failed(), "{o}");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], o.code.unwrap());
    assert!(v["error"].as_str().unwrap().len() > 10, "{v}");
    let o = f.ceremony(&["check", plan.to_str().unwrap(), "--json"]);
    o.assert_ok("check --json");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        (v["schema"].clone(), v["ok"].clone()),
        (1.into(), true.into())
    );
    assert_eq!(
        v["cluster"]["kubeadm_api_version"],
        "kubeadm.k8s.io/v1beta4"
    );
    assert_eq!(v["nodes"][2]["name"], "worker1");
    assert_eq!(v["nodes"][2]["files"], serde_json::json!(["kubelet.conf"]));
    assert_eq!(v["inputs"]["sha256"].as_str().unwrap().len(), 64);
    // A plan `run` would refuse: ok false, the error, exit 2 as without --json.
    let o = f.ceremony(&[
        "check",
        plan.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.code, Some(2), "{o}");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        (v["ok"].clone(), v["exit_code"].clone()),
        (false.into(), 2.into())
    );
    assert!(v["hint"].is_string(), "{v}");

    // A configuration that pins another CA, or advertises an address the
    // certificate lacks, is refused.
    let file = node_dir(&out, "worker1").join("kubeadm-config.yaml");
    let text = String::from_utf8(read(&file)).unwrap();
    let hash = ca_hash(&out, "worker1");
    rewrite(
        &file,
        &text.replace(&hash, &format!("sha256:{}", "0".repeat(64))),
    );
    let o = f.ceremony(&["verify", out.to_str().unwrap()]);
    assert!(o.failed(), "{o}");
    assert!(o.stdout.contains("caCertHashes"), "{o}");
    let o = f.ceremony(&[
        "verify",
        out.to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
    ]);
    assert!(
        o.stdout.contains("not the configuration the plan makes"),
        "{o}"
    );
    rewrite(&file, &text);
    let file = node_dir(&out, "cp2").join("kubeadm-config.yaml");
    let text = String::from_utf8(read(&file)).unwrap();
    rewrite(&file, &text.replace("10.0.0.12", "10.0.0.99"));
    let o = f.ceremony(&["verify", out.to_str().unwrap()]);
    assert!(o.stdout.contains("IP:10.0.0.99 is not in"), "{o}");
    let o = f.ceremony(&["verify", out.to_str().unwrap(), "--json"]);
    assert_eq!(o.code, Some(4), "{o}");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(
        v["problems"].as_array().unwrap().iter().any(|p| p["file"]
            == "nodes/cp2/etc/kubernetes/kubeadm-config.yaml"
            && p["field"] == "JoinConfiguration.controlPlane.localAPIEndpoint.advertiseAddress"),
        "{v}"
    );
}

/// Before kubeadm 1.31 the configuration is v1beta3, which has no
/// encryptionAlgorithm: ECDSA keys are the PublicKeysECDSA feature gate.
#[test]
fn before_1_31_the_configuration_is_v1beta3() {
    let f = Fixture::new("t-deliver-v3");
    let out = f.run_spec("v3", &three_node_plan("v1.30"));
    let docs = kubeadm_config(&out, "cp1");
    let [Doc::InitV3(init), Doc::ClusterV3(cc), Doc::Kubelet(_)] = &docs[..] else {
        panic!("{docs:?}")
    };
    assert_eq!(init.local_api_endpoint.advertise_address, "10.0.0.11");
    assert_eq!(cc.feature_gates.get("PublicKeysECDSA"), Some(&true));
    assert_eq!(algorithm(&out, "cp1", "pki/apiserver.crt"), "ECDSA-P256");
    let docs = kubeadm_config(&out, "worker1");
    let [Doc::JoinV3(join)] = &docs[..] else {
        panic!("{docs:?}")
    };
    assert_eq!(
        join.discovery
            .bootstrap_token
            .as_ref()
            .unwrap()
            .ca_cert_hashes,
        [ca_hash(&out, "worker1")]
    );
    f.ceremony(&["verify", out.to_str().unwrap()])
        .assert_ok("verify");
}

/// An age X25519 identity file in the fixture; returns (file, recipient).
fn age_identity(f: &Fixture, name: &str) -> (std::path::PathBuf, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let file = f.path().join(name);
    write_file(
        &file,
        format!("{}\n", id.to_string().expose_secret()).as_bytes(),
        0o600,
    );
    (file, id.to_public().to_string())
}

/// Every file (and directory) under `dir`: relative path → (mode, bytes).
fn tree_of(dir: &Path) -> std::collections::BTreeMap<String, (u32, Option<Vec<u8>>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            if m.is_dir() {
                out.insert(rel, (mode, None));
                stack.push(p);
            } else {
                out.insert(rel, (mode, Some(read(&p))));
            }
        }
    }
    out
}

/// The private keys a node's file holds: a leaf key file, a kubeconfig's
/// client-key-data (not sa.key: every control-plane node holds that one).
fn node_secrets(path: &str, bytes: &[u8]) -> Vec<Vec<u8>> {
    if path.ends_with(".key") && !path.ends_with("sa.key") {
        vec![bytes.to_vec()]
    } else if path.ends_with(".conf") {
        let v: serde_norway::Value = serde_norway::from_slice(bytes).unwrap();
        let data = v["users"][0]["user"]["client-key-data"].as_str().unwrap();
        vec![data.as_bytes().to_vec()]
    } else {
        vec![]
    }
}

/// A node with a recipient is written only as `nodes/<name>.tar.age`: stock
/// `age -d | tar -x` reproduces its tree with its modes, no plaintext key of
/// it was ever in the staging directory, and verify opens it with its
/// identity (and checks the archive without).
#[test]
fn a_node_with_a_recipient_is_delivered_only_encrypted() {
    let f = Fixture::new("t-deliver-age");
    let (cp1_id, cp1_to) = age_identity(&f, "cp1.agekey");
    let (w_id, w_to) = age_identity(&f, "worker1.agekey");
    let spec = three_node_plan("v1.31");
    let plan = f.write_spec("sealed.toml", &spec);
    let mut text = String::from_utf8(read(&plan)).unwrap();
    text.push_str(&format!(
        "\n[cluster.node_recipients]\ncp1 = \"{cp1_to}\"\nworker1 = \"{w_to}\"\n"
    ));
    std::fs::remove_file(&plan).unwrap();
    write_file(&plan, text.as_bytes(), 0o644);
    let out = f.work("sealed-out");

    // Held just before the commit: the staging directory holds every file
    // the run writes, and none of cp1's or worker1's in clear.
    let staging = out.with_file_name(".sealed-out.staging");
    let mut staged = Vec::new();
    if bin_has_failpoints() {
        let pause = f.pause_dir();
        let mut run = f.spawn_ceremony(
            &f.run_plan_args(&plan, &out),
            &[
                ("CEREMONY_FAILPOINT", "pause:before-rename".as_ref()),
                ("CEREMONY_FAILPOINT_DIR", pause.as_os_str()),
            ],
        );
        match run.wait_paused(&pause, CHILD_TIMEOUT) {
            Ended::Paused(_) => {}
            Ended::Exited(o) => panic!("never paused:\n{o}"),
        }
        staged = tree_of(&staging).into_iter().collect();
        write_file(&pause.join("resume"), b"", 0o644);
        run.wait().assert_ok("ceremony run");
        assert!(
            staged.iter().any(|(p, _)| p == "nodes/cp1.tar.age"),
            "{staged:?}"
        );
        assert!(!staged.iter().any(|(p, _)| p.starts_with("nodes/cp1/")));
        assert!(!staged.iter().any(|(p, _)| p.starts_with("nodes/worker1/")));
    } else {
        eprintln!("note: a binary without failpoints: the staging directory is not scanned");
        f.run_plan(&plan, &out).assert_ok("ceremony run");
    }
    assert!(!out.join("nodes/cp1").exists() && !out.join("nodes/worker1").exists());
    assert!(node_dir(&out, "cp2").join("pki/apiserver.key").exists());

    // On the node: stock age and tar.
    for (node, id) in [("cp1", &cp1_id), ("worker1", &w_id)] {
        let archive = out.join(format!("nodes/{node}.tar.age"));
        assert_eq!(mode(&archive), 0o644);
        let root = f.work(&format!("{node}-root"));
        std::fs::create_dir_all(&root).unwrap();
        let o = f.tool(
            "sh",
            &[
                "-c",
                &format!(
                    "age -d -i '{}' '{}' | tar -x -p -C '{}'",
                    id.display(),
                    archive.display(),
                    root.display()
                ),
            ],
        );
        o.assert_ok("age -d | tar -x");
        let got = tree_of(&root);
        let listed = {
            let o = f.tool(
                "sh",
                &[
                    "-c",
                    &format!(
                        "age -d -i '{}' '{}' | tar -t -v --numeric-owner",
                        id.display(),
                        archive.display()
                    ),
                ],
            );
            o.assert_ok("tar -t");
            o.stdout
        };
        for line in listed.lines() {
            assert!(line.contains(" 0/0 "), "not root:root: {line}");
        }
        assert!(got.contains_key("etc/kubernetes/kubelet.conf"), "{got:?}");
        for (p, (m, bytes)) in &got {
            if let Some(b) = bytes {
                let want = if p.ends_with(".crt") { 0o644 } else { 0o600 };
                assert_eq!(*m, want, "{p}");
                // No private key of this node was in the staging directory
                // (sa.key is the cluster's, in every control-plane bundle).
                for secret in node_secrets(p, b) {
                    for (sp, (_, sb)) in &staged {
                        if let Some(sb) = sb {
                            assert!(
                                !sb.windows(secret.len()).any(|w| w == &secret[..]),
                                "{node}'s {p} is in the staging directory as {sp}"
                            );
                        }
                    }
                }
            } else if p.starts_with("etc/kubernetes") {
                // The bundle's own directories (etc itself is the node's).
                assert_eq!(*m, 0o755, "{p}");
            }
        }
    }
    // The same file set and modes as an identical plan without recipients.
    let g = Fixture::new("t-deliver-clear");
    let clear = g.run_spec("clear", &spec);
    for (node, root) in [("cp1", "cp1-root"), ("worker1", "worker1-root")] {
        let sealed = tree_of(&f.work(root).join("etc/kubernetes"));
        let plain = tree_of(&node_dir(&clear, node));
        let shape = |t: &std::collections::BTreeMap<String, (u32, Option<Vec<u8>>)>| {
            t.iter()
                .map(|(p, (m, b))| (p.clone(), *m, b.is_some()))
                .collect::<Vec<_>>()
        };
        assert_eq!(shape(&sealed), shape(&plain), "{node}");
    }

    // SHA256SUMS and the audit log list the archive.
    let sums = String::from_utf8(read(&out.join("SHA256SUMS"))).unwrap();
    assert!(sums.contains("  nodes/cp1.tar.age\n"), "{sums}");
    assert!(!sums.contains("nodes/cp1/"), "{sums}");

    // verify: the archive without its identity, everything with it.
    let o = f.ceremony(&["verify", out.to_str().unwrap()]);
    o.assert_ok("verify without identities");
    assert!(o.stdout.contains("nodes/cp1.tar.age"), "{o}");
    let (ps, cs, ws) = (
        plan.to_str().unwrap(),
        cp1_id.to_str().unwrap(),
        w_id.to_str().unwrap(),
    );
    let o = f.ceremony(&[
        "verify",
        out.to_str().unwrap(),
        "--plan",
        ps,
        "-i",
        cs,
        "-i",
        ws,
    ]);
    o.assert_ok("verify with identities");
    assert!(
        !o.stdout.contains("encrypted, checked as archives only"),
        "{o}"
    );
    assert!(o.stdout.contains("3 nodes"), "{o}");
    // inspect does not stay quiet about certificates it cannot see.
    let o = f.ceremony(&["inspect", out.to_str().unwrap(), "--expiring", "30d"]);
    assert_eq!(o.code, Some(2), "{o}");
    assert!(
        o.first_error().unwrap().contains("nodes/cp1.tar.age"),
        "{o}"
    );
    let o = f.ceremony(&[
        "inspect",
        out.to_str().unwrap(),
        "--expiring",
        "30d",
        "-i",
        cs,
        "-i",
        ws,
    ]);
    assert_eq!(o.code, Some(0), "{o}");
    let o = f.ceremony(&["inspect", out.to_str().unwrap(), "-i", cs, "-i", ws]);
    assert!(o.stdout.contains("nodes/cp1/"), "{o}");
    // A wrong key inside is found once opened: swap cp1's archive for one
    // of its tree with a worker's kubelet.conf.
    let bad = f.work("bad-root");
    std::fs::create_dir_all(&bad).unwrap();
    let o = f.tool(
        "sh",
        &[
            "-c",
            &format!(
                "cp -a '{}/.' '{bad}/' && cp '{w}/etc/kubernetes/kubelet.conf' '{bad}/etc/kubernetes/kubelet.conf' && \
                 tar -c -C '{bad}' --owner=0 --group=0 etc | age -r '{cp1_to}' > '{out}/nodes/cp1.tar.age.new' && \
                 mv '{out}/nodes/cp1.tar.age.new' '{out}/nodes/cp1.tar.age'",
                f.work("cp1-root").display(),
                bad = bad.display(),
                w = f.work("worker1-root").display(),
                out = out.display(),
            ),
        ],
    );
    o.assert_ok("repack");
    let o = f.ceremony(&["verify", out.to_str().unwrap(), "-i", cs]);
    assert!(o.failed(), "{o}");
    assert!(
        o.stdout.contains("nodes/cp1/etc/kubernetes/kubelet.conf"),
        "{o}"
    );
    assert!(o.stdout.contains("nodes/cp1.tar.age"), "{o}"); // its SHA-256
}

/// Writes `spec` as `<name>.toml` with `extra` appended (TOML sections).
fn plan_with(f: &Fixture, name: &str, spec: &PlanSpec<'_>, extra: &str) -> std::path::PathBuf {
    let plan = f.write_spec(&format!("{name}.base.toml"), spec);
    let text = String::from_utf8(read(&plan)).unwrap() + extra;
    let p = plan.with_file_name(format!("{name}.toml"));
    write_file(&p, text.as_bytes(), 0o644);
    p
}

/// A continuing ceremony counts the previous output's encrypted nodes as
/// issued, and refuses to write a control-plane node when the
/// service-account pair it must carry is only inside archives.
#[test]
fn a_continuing_ceremony_after_encrypted_control_plane_nodes() {
    let f = Fixture::new("t-deliver-chain");
    let (_, cp1_to) = age_identity(&f, "cp1.agekey");
    let (_, cp2_to) = age_identity(&f, "cp2.agekey");
    let spec = three_node_plan("v1.31");
    let recipients =
        format!("\n[cluster.node_recipients]\ncp1 = \"{cp1_to}\"\ncp2 = \"{cp2_to}\"\n");
    let c1 = plan_with(&f, "c1", &spec, &recipients);
    f.run_plan(&c1, &f.work("c1")).assert_ok("c1");
    let cont = |name: &str, previous: &str, renew: &str| {
        let text = String::from_utf8(read(&c1)).unwrap().replacen(
            "[ceremony]\n",
            &format!("[ceremony]\nprevious = \"{previous}\"\n"),
            1,
        ) + &format!("\n[renew]\n{renew}\n");
        let p = c1.with_file_name(format!("{name}.toml"));
        write_file(&p, text.as_bytes(), 0o644);
        p
    };
    // cp1 (encrypted in c1) is a node the chain issued: renewing it is
    // accepted as far as the selection goes, but its pair is sealed away.
    let c2 = cont("c2", "work/c1", "nodes = [\"cp1\"]");
    let o = f.run_plan(&c2, &f.work("c2"));
    assert_eq!(o.code, Some(2), "{o}");
    let e = o.first_error().unwrap();
    assert!(
        e.contains("its control-plane nodes were delivered encrypted (nodes/cp1.tar.age, nodes/cp2.tar.age)"),
        "{o}"
    );
    assert!(
        o.hint()
            .unwrap()
            .contains("at least one control-plane node in clear"),
        "{o}"
    );
    assert!(!f.work("c2").exists());
    // A worker alone needs no pair.
    let c2 = cont("c2w", "work/c1", "nodes = [\"worker1\"]");
    f.run_plan(&c2, &f.work("c2w"))
        .assert_ok("c2: renew worker1");
    assert!(f.work("c2w").join("nodes/worker1").is_dir());
}

/// `openssl verify` of a kubelet serving certificate against the root, with
/// the node's pki/ca.crt as the intermediate, for a name or an address.
fn verify_kubelet(f: &Fixture, out: &Path, node: &str, cert: &Path, check: &[&str]) -> Output {
    let root = out.join("root-ca.crt");
    let ca = node_dir(out, node).join("pki/ca.crt");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "verify".as_ref(),
        "-x509_strict".as_ref(),
        "-purpose".as_ref(),
        "sslserver".as_ref(),
        "-CAfile".as_ref(),
        root.as_os_str(),
        "-untrusted".as_ref(),
        ca.as_os_str(),
    ];
    args.extend(check.iter().map(std::ffi::OsStr::new));
    args.push(cert.as_os_str());
    f.tool("openssl", &args)
}

/// `kubelet_serving_certs`: every node's var/lib/kubelet/pki/kubelet.{crt,key}
/// verifies for its name and its address against pki/ca.crt, serves a real
/// TLS handshake checked as kube-apiserver does (pki/ca.crt the anchor, the
/// address dialled), is in an encrypted node's archive, is wired by the
/// kubeadm configuration, listed by check, shown by inspect; verify refuses
/// a swapped certificate.
#[test]
fn kubelet_serving_certificates_verify_for_the_nodes_names_and_addresses() {
    let f = Fixture::new("t-deliver-kserve");
    let (cp2_id, cp2_to) = age_identity(&f, "cp2.agekey");
    let spec = three_node_plan("v1.31");
    let extra = format!(
        "\n[cluster.worker_addresses]\nworker1 = \"127.0.0.1\"\n\n[cluster.node_recipients]\ncp2 = \"{cp2_to}\"\n"
    );
    let base = plan_with(&f, "ks-base", &spec, &extra);
    let text = String::from_utf8(read(&base)).unwrap().replacen(
        "\n[cluster]\n",
        "\n[cluster]\nkubelet_serving_certs = true\n",
        1,
    );
    let plan = base.with_file_name("ks.toml");
    write_file(&plan, text.as_bytes(), 0o644);

    // check lists the files before anything is made.
    let o = f.ceremony(&[
        "check",
        plan.to_str().unwrap(),
        "--out",
        f.work("ks").to_str().unwrap(),
    ]);
    assert!(
        o.stdout.contains(
            "nodes/worker1/var/lib/kubelet/pki/kubelet.{crt,key}: the kubelet's serving certificate"
        ),
        "{o}"
    );
    let o = f.ceremony(&["check", plan.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["nodes"][2]["name"], "worker1");
    assert_eq!(
        v["nodes"][2]["root_files"],
        serde_json::json!([
            "var/lib/kubelet/pki/kubelet.crt",
            "var/lib/kubelet/pki/kubelet.key"
        ])
    );

    let out = f.work("ks");
    f.run_plan(&plan, &out).assert_ok("run");
    let kubelet = |node: &str| out.join("nodes").join(node).join("var/lib/kubelet/pki");
    for (node, address) in [("cp1", "10.0.0.11"), ("worker1", "127.0.0.1")] {
        let dir = kubelet(node);
        assert_eq!(mode(&dir.join("kubelet.key")), 0o600, "{node}");
        assert_eq!(mode(&dir.join("kubelet.crt")), 0o644, "{node}");
        let crt = dir.join("kubelet.crt");
        for check in [["-verify_hostname", node], ["-verify_ip", address]] {
            let o = verify_kubelet(&f, &out, node, &crt, &check);
            assert!(o.ok() && o.stdout.contains(": OK"), "{node} {check:?}: {o}");
        }
        let o = verify_kubelet(&f, &out, node, &crt, &["-verify_ip", "10.9.9.9"]);
        assert!(o.failed(), "{node}: not for another address: {o}");
        let c = one_cert(&crt);
        assert_eq!(cn_of(&parse(&c)), [format!("system:node:{node}")]);
        // Server only: never a client certificate.
        let o = f.tool(
            "openssl",
            &[
                "verify",
                "-purpose",
                "sslclient",
                "-CAfile",
                out.join("root-ca.crt").to_str().unwrap(),
                "-untrusted",
                node_dir(&out, node).join("pki/ca.crt").to_str().unwrap(),
                crt.to_str().unwrap(),
            ],
        );
        assert!(o.failed(), "{node}: serverAuth only: {o}");
    }

    // A real handshake: the worker's kubelet on 127.0.0.1, the client
    // checking as kube-apiserver's --kubelet-certificate-authority does.
    let dir = kubelet("worker1");
    let mut attempt = 0;
    let (srv, port) = start_with_retries(5, || {
        attempt += 1;
        let port = free_port();
        let mut cmd = std::process::Command::new("openssl");
        cmd.arg("s_server")
            .arg("-accept")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(dir.join("kubelet.crt"))
            .arg("-key")
            .arg(dir.join("kubelet.key"))
            .arg("-www");
        let mut srv = Server::spawn(
            "s_server kubelet",
            &mut cmd,
            &f.path().join(format!("s_server-{attempt}.log")),
        );
        srv.wait_ready("ACCEPT")?;
        Ok((srv, port))
    });
    let client = |anchor: &Path, ip: &str| {
        f.tool(
            "openssl",
            &[
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-CAfile",
                anchor.to_str().unwrap(),
                "-partial_chain",
                "-verify_return_error",
                "-verify_ip",
                ip,
                "-brief",
            ],
        )
    };
    let ca = node_dir(&out, "worker1").join("pki/ca.crt");
    let o = client(&ca, "127.0.0.1");
    assert!(
        o.ok(),
        "handshake: {o}\n--- s_server log\n{}",
        srv.log_text()
    );
    let o = client(&ca, "127.0.0.2");
    assert!(o.failed(), "another address is refused: {o}");
    let o = client(&out.join("cas/etcd-ca.crt"), "127.0.0.1");
    assert!(o.failed(), "another CA is refused: {o}");
    drop(srv);

    // The encrypted node's archive puts them in place under `tar -x -C /`.
    let root = f.path().join("cp2-root");
    std::fs::create_dir_all(&root).unwrap();
    let o = f.tool(
        "sh",
        &[
            "-c",
            "age -d -i \"$1\" \"$2\" | tar -x -C \"$3\"",
            "sh",
            cp2_id.to_str().unwrap(),
            out.join("nodes/cp2.tar.age").to_str().unwrap(),
            root.to_str().unwrap(),
        ],
    );
    o.assert_ok("age -d | tar -x of cp2");
    let crt = root.join("var/lib/kubelet/pki/kubelet.crt");
    assert_eq!(mode(&root.join("var/lib/kubelet/pki/kubelet.key")), 0o600);
    let o = verify_kubelet(&f, &out, "cp1", &crt, &["-verify_ip", "10.0.0.12"]);
    assert!(o.ok(), "cp2's, from its archive: {o}");

    // The configuration: kube-apiserver checks kubelets, the kubelet serves these.
    let init = String::from_utf8(read(&node_dir(&out, "cp1").join("kubeadm-config.yaml"))).unwrap();
    assert!(init.contains("kubelet-certificate-authority"), "{init}");
    assert!(init.contains("/etc/kubernetes/pki/ca.crt"), "{init}");
    assert!(
        init.contains("tlsCertFile: /var/lib/kubelet/pki/kubelet.crt"),
        "{init}"
    );
    assert!(
        init.contains("tlsPrivateKeyFile: /var/lib/kubelet/pki/kubelet.key"),
        "{init}"
    );

    // verify and inspect know them.
    f.ceremony(&[
        "verify",
        out.to_str().unwrap(),
        "-i",
        cp2_id.to_str().unwrap(),
    ])
    .assert_ok("verify");
    let o = f.ceremony(&["inspect", out.to_str().unwrap()]);
    assert!(o.ok() && o.stdout.contains("kubelet-serving"), "{o}");

    // A swapped certificate (cp1's in worker1's place) is refused.
    let w1 = kubelet("worker1").join("kubelet.crt");
    let saved = read(&w1);
    rewrite(
        &w1,
        &String::from_utf8(read(&kubelet("cp1").join("kubelet.crt"))).unwrap(),
    );
    let o = f.ceremony(&["verify", out.to_str().unwrap()]);
    assert!(o.failed(), "{o}");
    assert!(
        o.stdout
            .contains("nodes/worker1/var/lib/kubelet/pki/kubelet.crt"),
        "{o}"
    );
    rewrite(&w1, &String::from_utf8(saved).unwrap());
    // Absent when the plan asks for it: refused too.
    std::fs::remove_file(kubelet("worker1").join("kubelet.key")).unwrap();
    let o = f.ceremony(&["verify", out.to_str().unwrap()]);
    assert!(o.failed(), "{o}");
    assert!(
        o.stdout
            .contains("nodes/worker1/var/lib/kubelet/pki/kubelet.key"),
        "{o}"
    );
}
