//! The token's raw limit, measured through the project's own token layer
//! (scripts/bench runs it; docs/performance.md explains the numbers):
//! C_Sign per second with one session and with one session per core, plus
//! the host-side work of a leaf certificate (software leaf key generation,
//! the post-sign verification of the signature).
//!
//! Then the CPU cost of each component of a worker's leaf, one thread, by
//! its thread CPU clock (user and kernel time; a wait costs nothing), with
//! the crate's own functions: the token's signature (the one-session loop
//! above), the leaf key, the profile and TBS of a kubelet client
//! certificate, the check after signing, the rendering (PEM, kubeconfig,
//! the `certificate_issued` event), the audit journal (frames of 256
//! records, each fsynced) and the writes of a worker's node (its
//! directories and three files in a staging directory, committed). The
//! journal and the staging directory go under `--dir` (default: the
//! temporary directory). scripts/bench sums them into the bound of a run.
//!
//! ```text
//! cargo run --release --example token_bench -- --module /usr/lib/softhsm/libsofthsm2.so \
//!     --token LABEL --pin-file PIN --key ecdsa-p256 [--seconds 3] [--sessions N] \
//!     [--dir DIR] [--no-components]
//! ```
//!
//! It finds the key labelled `bench-<key>` on the token or generates it
//! there (a rehearsal token only: the key stays on it), and prints one
//! `name=value` line per measurement (`cpu_*_us`: µs of CPU per leaf).

// A benchmark prints its figures.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

use ceremony::keytype::KeyType;
use ceremony::token::pin::read_pin_file;
use ceremony::token::pkcs11::Pkcs11Token;
use ceremony::token::uri::TokenUri;
use ceremony::token::{KeyPair, Signer, Token};

/// A TBS of a typical leaf's size: what the ceremony hands the token.
const MESSAGE: [u8; 640] = [0x5a; 640];

struct Args {
    module: PathBuf,
    token: String,
    pin_file: PathBuf,
    key: KeyType,
    seconds: f64,
    sessions: usize,
    dir: PathBuf,
    components: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut module = PathBuf::from("/usr/lib/softhsm/libsofthsm2.so");
    let (mut token, mut pin_file, mut key) = (None, None, KeyType::EcdsaP256);
    let mut seconds = 3.0;
    let mut sessions = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (mut dir, mut components) = (std::env::temp_dir(), true);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--module" => module = value()?.into(),
            "--token" => token = Some(value()?),
            "--pin-file" => pin_file = Some(PathBuf::from(value()?)),
            "--key" => {
                let v = value()?;
                key = KeyType::from_str(&v).map_err(|()| format!("unknown key type {v}"))?;
            }
            "--seconds" => seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--sessions" => sessions = value()?.parse().map_err(|e| format!("--sessions: {e}"))?,
            "--dir" => dir = value()?.into(),
            "--no-components" => components = false,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        module,
        token: token.ok_or("--token LABEL is required")?,
        pin_file: pin_file.ok_or("--pin-file is required")?,
        key,
        seconds,
        sessions: sessions.max(1),
        dir,
        components,
    })
}

/// This thread's CPU time (user and kernel), in µs.
fn thread_cpu_us() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 * 1e6 + t.tv_nsec as f64 / 1e3
}

/// Calls `op` for `secs` (after a short warm-up); operations per second.
fn rate(secs: f64, op: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    rate_cpu(secs, op).map(|(r, _)| r)
}

/// [`rate`], and the calling thread's CPU time per operation (µs).
fn rate_cpu(secs: f64, mut op: impl FnMut() -> Result<(), String>) -> Result<(f64, f64), String> {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(200) {
        op()?;
    }
    let (start, cpu) = (Instant::now(), thread_cpu_us());
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        op()?;
        n += 1;
    }
    let (wall, cpu) = (start.elapsed().as_secs_f64(), thread_cpu_us() - cpu);
    Ok((n as f64 / wall, cpu / n.max(1) as f64))
}

/// C_Sign per second summed over one thread per signer, each on its own session.
fn parallel_rate(
    signers: Vec<Box<dyn Signer + '_>>,
    key: &KeyPair,
    secs: f64,
) -> Result<f64, String> {
    std::thread::scope(|s| {
        let threads: Vec<_> = signers
            .into_iter()
            .map(|mut signer| {
                s.spawn(move || {
                    rate(secs, || {
                        signer
                            .sign(key, &MESSAGE)
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    })
                })
            })
            .collect();
        let mut total = 0.0;
        for t in threads {
            total += t
                .join()
                .map_err(|_| "a signing thread panicked".to_string())??;
        }
        Ok(total)
    })
}

fn bench(a: &Args) -> Result<(), String> {
    let uri = TokenUri::parse(&format!("pkcs11:token={}", a.token))?;
    let token = Pkcs11Token::open(&a.module, &uri, None).map_err(|e| e.to_string())?;
    let pin = read_pin_file(&a.pin_file).map_err(|e| e.to_string())?;
    token.login(Some(&pin)).map_err(|e| e.to_string())?;
    let mech = token
        .require_mechanisms(&[a.key])
        .map_err(|e| e.to_string())?;
    let label = format!("bench-{}", a.key.name());
    let key = match token
        .find_key_pair(&label, a.key)
        .map_err(|e| e.to_string())?
    {
        Some(k) => k,
        None => {
            let id = token
                .random(ceremony::token::KEY_ID_LEN)
                .map_err(|e| e.to_string())?;
            token
                .generate_key_pair(&label, a.key, &id)
                .map_err(|e| e.to_string())?
        }
    };
    println!("key={}", a.key.name());
    for (_, m) in &mech {
        println!("mechanism={m}");
    }
    println!("token={}", token.identity());

    let (one, token_cpu) = rate_cpu(a.seconds, || {
        token
            .sign(&key, &MESSAGE)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?;
    println!("c_sign_1_session={one:.0}");
    // The calling thread's CPU per signature: a software token's whole
    // computation (it runs on the caller's thread), an HSM's driver only.
    println!("cpu_token_sign_us={token_cpu:.1}");
    let signers = token.signers(a.sessions).map_err(|e| e.to_string())?;
    let opened = signers.len();
    let many = parallel_rate(signers, &key, a.seconds)?;
    println!("sessions={opened}");
    println!("c_sign_per_core_sessions={many:.0}");

    if !a.components {
        return Ok(());
    }
    // The host's share of a leaf: its key (the plan's leaf_key: P-256 here)
    // and the software check of the token's signature.
    let keygen = rate(a.seconds.min(2.0), || {
        ceremony::keys::leaf::generate(KeyType::EcdsaP256)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?;
    println!("leaf_keygen_p256={keygen:.0}");
    let sig = token.sign(&key, &MESSAGE).map_err(|e| e.to_string())?;
    let alg = ceremony::x509::signature_algorithm(a.key);
    let verify = rate(a.seconds.min(2.0), || {
        ceremony::x509::verify_signature(&key.spki, &alg, &MESSAGE, &sig)
    })?;
    println!("software_verify={verify:.0}");
    components(a, &token, &key)
}

fn main() -> ExitCode {
    match parse_args().and_then(|a| bench(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("token_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The bench's audit recipient (scripts/bench; the demo auditor's public key).
const RECIPIENT: &str = "age1rfjvanyx48qxdll0q8wkrca6kpkfluxp4gal0ws7cp4awt900vpsf0sp9u";

/// A worker's kubeadm-config.yaml of the usual size (a JoinConfiguration):
/// its writing costs the kernel the same whatever the text.
const KUBEADM_CONFIG: &str = "apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  file:
    kubeConfigPath: /etc/kubernetes/kubelet.conf
  tlsBootstrapToken: \"\"
nodeRegistration:
  name: worker1
  criSocket: unix:///var/run/containerd/containerd.sock
caCertPath: /etc/kubernetes/pki/ca.crt
";

/// The CPU of each component of a worker's leaf, one thread each (µs per
/// leaf; a worker has one leaf, its kubelet.conf).
fn components(a: &Args, token: &Pkcs11Token, ca: &KeyPair) -> Result<(), String> {
    use ceremony::bundle::{kubeconfig, layout, write::Staging};
    use ceremony::profile::kubeadm::{self, LeafOutput, LeafSpec};
    use ceremony::x509::{self, ToBeSigned};
    let secs = a.seconds.clamp(0.3, 1.0);
    let err = |e: &dyn std::fmt::Display| e.to_string();

    let (_, keygen) = rate_cpu(secs, || {
        ceremony::keys::leaf::generate(KeyType::EcdsaP256)
            .map(|_| ())
            .map_err(|e| err(&e))
    })?;
    println!("cpu_leaf_key_us={keygen:.1}");

    // A worker's kubelet client certificate, as the pipeline makes it:
    // kubeadm's spec and profile, then the TBS.
    let issuer = kubeadm::subject("bench-kubernetes-ca", &[]).map_err(|e| err(&e))?;
    let ski = [0x3c; 20];
    let leaf = ceremony::keys::leaf::generate(KeyType::EcdsaP256).map_err(|e| err(&e))?;
    let spec_of = |i: u64| LeafSpec {
        path: "kubelet.conf".into(),
        output: LeafOutput::Kubeconfig {
            server: "https://k8s.bench.internal:6443".into(),
            cluster: "kubernetes".into(),
        },
        issuer: ceremony::plan::spec::CaRole::Kubernetes,
        cn: format!("system:node:worker{i}"),
        orgs: vec!["system:nodes".into()],
        eku: vec![x509::profile::ID_KP_CLIENT_AUTH],
        sans: Vec::new(),
    };
    let serial = [0x2b; 20];
    let now = std::time::SystemTime::now();
    let not_after = now + Duration::from_secs(365 * 86400);
    let spec = spec_of(1);
    let profile =
        kubeadm::leaf_profile(&spec, &issuer, &ski, KeyType::EcdsaP256).map_err(|e| err(&e))?;
    let tbs = ToBeSigned {
        profile: &profile,
        serial: &serial,
        not_before: now,
        not_after,
        subject_spki: &leaf.spki,
        issuer_spki: &ca.spki,
        issuer_key_type: ca.key_type,
    };
    let mut i = 0u64;
    let (_, tbs_cpu) = rate_cpu(secs, || {
        i += 1;
        let profile = kubeadm::leaf_profile(&spec_of(i), &issuer, &ski, KeyType::EcdsaP256)
            .map_err(|e| err(&e))?;
        x509::build(&ToBeSigned {
            profile: &profile,
            ..tbs
        })
        .map(|_| ())
        .map_err(|e| err(&e))
    })?;
    println!("cpu_tbs_us={tbs_cpu:.1}");

    // The check after signing, of a certificate the token signed.
    let tbs_der = x509::build(&tbs).map_err(|e| err(&e))?;
    let sig = token.sign(ca, &tbs_der).map_err(|e| err(&e))?;
    let (_, check) = rate_cpu(secs, || {
        x509::finish(&tbs, tbs_der.clone(), &sig)
            .map(|_| ())
            .map_err(|e| err(&e))
    })?;
    println!("cpu_check_us={check:.1}");
    let issued = x509::finish(&tbs, tbs_der.clone(), &sig).map_err(|e| err(&e))?;

    // Its files' text and its record.
    let ca_data = kubeconfig::ca_data(&x509::to_pem(&issued.der));
    let file = format!("{}/kubelet.conf", layout::node_root("worker1"));
    let (_, render) = rate_cpu(secs, || {
        let pem = x509::to_pem(&issued.der);
        let text = kubeconfig::render(&kubeconfig::Kubeconfig {
            cluster: "kubernetes",
            server: "https://k8s.bench.internal:6443",
            user: &spec.cn,
            ca_data: &ca_data,
            cert_pem: &pem,
            key_pem: Some(&leaf.private_pem),
        });
        let event = ceremony::issue::leaf::issued_event(&spec, Some("worker1"), &file, &issued);
        std::hint::black_box((text, event));
        Ok(())
    })?;
    println!("cpu_render_us={render:.1}");

    // The journal: a frame of 256 records (a batch of workers), fsynced;
    // less the copying of the records, which the run moves instead.
    let event = ceremony::issue::leaf::issued_event(&spec, Some("worker1"), &file, &issued);
    let owner = [0x42; 32];
    let dir = a.dir.join(format!("token-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (mut journal, _) =
        ceremony::audit::Journal::open(&dir.join("journal"), &owner, &[RECIPIENT.to_string()])
            .map_err(|e| err(&e))?;
    let (_, copy) = rate_cpu(secs / 2.0, || {
        std::hint::black_box(vec![event.clone(); 256]);
        Ok(())
    })?;
    let (_, frame) = rate_cpu(secs, || {
        journal
            .append_all(vec![event.clone(); 256])
            .map(|_| ())
            .map_err(|e| err(&e))
    })?;
    journal.remove().map_err(|e| err(&e))?;
    println!("cpu_journal_us={:.1}", (frame - copy) / 256.0);

    // A worker's node in the staging directory: etc/kubernetes/ with
    // kubelet.conf, pki/ca.crt and kubeadm-config.yaml, listed; the
    // commit (syncfs, rename) shared by all the nodes written.
    let kubelet_conf = kubeconfig::render(&kubeconfig::Kubeconfig {
        cluster: "kubernetes",
        server: "https://k8s.bench.internal:6443",
        user: &spec.cn,
        ca_data: &ca_data,
        cert_pem: &x509::to_pem(&issued.der),
        key_pem: Some(&leaf.private_pem),
    });
    let ca_pem = x509::to_pem(&issued.der);
    let out = dir.join("out");
    let mut staging = Staging::begin(&out, &owner).map_err(|e| err(&e))?;
    let (start, cpu) = (Instant::now(), thread_cpu_us());
    let mut nodes = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        let mut listed = Vec::with_capacity(3 * 256);
        for _ in 0..256 {
            nodes += 1;
            let root = layout::node_root(&format!("worker{nodes}"));
            for (rel, bytes, mode) in [
                ("kubelet.conf", kubelet_conf.as_bytes(), 0o600),
                ("pki/ca.crt", ca_pem.as_bytes(), 0o644),
                (layout::KUBEADM_CONFIG, KUBEADM_CONFIG.as_bytes(), 0o644),
            ] {
                let rel = format!("{root}/{rel}");
                let sha = staging.put(&rel, bytes, mode).map_err(|e| err(&e))?;
                listed.push((rel, sha, mode));
            }
        }
        staging.listed(listed).map_err(|e| err(&e))?;
    }
    staging.commit().map_err(|e| err(&e))?;
    let writes = (thread_cpu_us() - cpu) / nodes as f64;
    println!("cpu_writes_us={writes:.1}");
    std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(())
}
