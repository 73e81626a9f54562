//! The token's raw limit, measured through the project's own token layer
//! (scripts/bench runs it; docs/performance.md explains the numbers):
//! C_Sign per second with one session and with one session per core, plus
//! the host-side work of a leaf certificate (software leaf key generation,
//! the post-sign verification of the signature).
//!
//! Then the CPU cost of each component of a worker's leaf with every core
//! busy, as in a run (one thread per core running it, each timed by its
//! thread CPU clock: user and kernel time, a wait costs nothing; the busy
//! cores of a VM each run slower than one alone), with the crate's own
//! functions: the token's signature (one session, the other cores making
//! leaf keys beside it), the leaf key, the profile and TBS of a kubelet
//! client certificate, the check after signing, the rendering (PEM,
//! kubeconfig, the `certificate_issued` event), the audit journal (frames
//! of 256 records, each fsynced) and the writes of a worker's node (its
//! directories and three files in a staging directory). The journals and
//! staging directories go under `--dir` (default: the temporary
//! directory). scripts/bench sums them into the bound of a run, measuring
//! them again (`--only-components`) before each run of its largest plans.
//!
//! ```text
//! cargo run --release --example token_bench -- --module /usr/lib/softhsm/libsofthsm2.so \
//!     --token LABEL --pin-file PIN --key ecdsa-p256 [--seconds 3] [--sessions N] \
//!     [--dir DIR] [--no-components | --only-components]
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
    /// The components only, not the raw rates.
    only_components: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut module = PathBuf::from("/usr/lib/softhsm/libsofthsm2.so");
    let (mut token, mut pin_file, mut key) = (None, None, KeyType::EcdsaP256);
    let mut seconds = 3.0;
    let mut sessions = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (mut dir, mut components, mut only_components) = (std::env::temp_dir(), true, false);
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
            "--only-components" => only_components = true,
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
        only_components,
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
    if a.only_components {
        return components(a, &token, &key);
    }

    let (one, token_cpu) = rate_cpu(a.seconds, || {
        token
            .sign(&key, &MESSAGE)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?;
    println!("c_sign_1_session={one:.0}");
    // The calling thread's CPU per signature, the machine otherwise idle:
    // a software token's whole computation (it runs on the caller's
    // thread), an HSM's driver only.
    println!("cpu_token_sign_alone_us={token_cpu:.1}");
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
/// One thread's part of a loaded measurement: called until the time is up,
/// each call accounting for the leaves it returns.
type Op<'a> = Box<dyn FnMut() -> Result<u64, String> + 'a>;

/// Runs one op per thread, `threads` at once, for `secs` after a short
/// warm-up (`make(i)` makes thread i's op with what it needs of its own,
/// and says whether its time counts: a thread that does not count is load
/// beside the ones that do). Returns the CPU time per leaf (µs) of the
/// counted threads, by their thread CPU clocks. Every core busy, as in a
/// run: two busy vCPUs of the development VM each run at about three
/// quarters of the speed of one alone (`openssl speed -multi 2`), so a
/// component timed on an idle machine promises cores the run never has.
fn loaded_cpu<'a>(
    secs: f64,
    threads: usize,
    make: impl Fn(usize) -> Result<(Op<'a>, bool), String> + Sync,
) -> Result<f64, String> {
    let go = std::sync::Barrier::new(threads);
    let results: Vec<Result<Option<(f64, u64)>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (make, go) = (&make, &go);
                s.spawn(move || -> Result<Option<(f64, u64)>, String> {
                    let made = make(i);
                    go.wait();
                    let (mut op, counts) = made?;
                    let warm = Instant::now();
                    while warm.elapsed() < Duration::from_millis(150) {
                        op()?;
                    }
                    let (start, cpu) = (Instant::now(), thread_cpu_us());
                    let mut n = 0u64;
                    while start.elapsed().as_secs_f64() < secs {
                        n += op()?;
                    }
                    Ok(counts.then(|| (thread_cpu_us() - cpu, n)))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| "a bench thread panicked".to_string())?
            })
            .collect()
    });
    let (mut cpu, mut n) = (0.0, 0u64);
    for r in results {
        if let Some((c, k)) = r? {
            cpu += c;
            n += k;
        }
    }
    Ok(cpu / n.max(1) as f64)
}

/// The CPU per leaf of each component of a worker's leaf, every core
/// busy: the host's components one thread per core, the token's signature
/// on one session (as a run signs a cheap token) beside the other cores
/// making and checking leaf keys.
fn components(a: &Args, token: &Pkcs11Token, ca: &KeyPair) -> Result<(), String> {
    use ceremony::bundle::{kubeconfig, layout, write::Staging};
    use ceremony::profile::kubeadm::{self, LeafOutput, LeafSpec};
    use ceremony::x509::{self, ToBeSigned};
    let secs = a.seconds.clamp(0.3, 1.0);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("cores={cores}");
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let keygen = || {
        ceremony::keys::leaf::generate(KeyType::EcdsaP256)
            .map(|_| 1u64)
            .map_err(|e| err(&e))
    };

    // The token's signature: one session signs, the other cores make keys.
    let mut signers = token.signers(1).map_err(|e| err(&e))?;
    let signer = std::sync::Mutex::new(signers.pop());
    let token_cpu = loaded_cpu(a.seconds.clamp(0.5, 2.0), cores, |i| {
        if i > 0 {
            return Ok((Box::new(keygen) as Op<'_>, false));
        }
        let mut signer = signer
            .lock()
            .map_err(|_| "poisoned".to_string())?
            .take()
            .ok_or("the token offers no extra session")?;
        Ok((
            Box::new(move || {
                signer
                    .sign(ca, &MESSAGE)
                    .map(|_| 1u64)
                    .map_err(|e| e.to_string())
            }) as Op<'_>,
            true,
        ))
    })?;
    println!("cpu_token_sign_us={token_cpu:.1}");

    let all = |op: &(dyn Fn() -> Result<u64, String> + Sync)| {
        loaded_cpu(secs, cores, |_| Ok((Box::new(op) as Op<'_>, true)))
    };
    println!("cpu_leaf_key_us={:.1}", all(&keygen)?);

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
    let tbs_cpu = all(&|| {
        let profile = kubeadm::leaf_profile(&spec_of(7), &issuer, &ski, KeyType::EcdsaP256)
            .map_err(|e| err(&e))?;
        x509::build(&ToBeSigned {
            profile: &profile,
            ..tbs
        })
        .map(|_| 1)
        .map_err(|e| err(&e))
    })?;
    println!("cpu_tbs_us={tbs_cpu:.1}");

    // The check after signing, of a certificate the token signed.
    let tbs_der = x509::build(&tbs).map_err(|e| err(&e))?;
    let sig = token.sign(ca, &tbs_der).map_err(|e| err(&e))?;
    let check = all(&|| {
        x509::finish(&tbs, tbs_der.clone(), &sig)
            .map(|_| 1)
            .map_err(|e| err(&e))
    })?;
    println!("cpu_check_us={check:.1}");
    let issued = x509::finish(&tbs, tbs_der.clone(), &sig).map_err(|e| err(&e))?;

    // Its files' text and its record.
    let ca_data = kubeconfig::ca_data(&x509::to_pem(&issued.der));
    let file = format!("{}/kubelet.conf", layout::node_root("worker1"));
    let render = all(&|| {
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
        Ok(1)
    })?;
    println!("cpu_render_us={render:.1}");

    // The journal: frames of 256 records (a batch of workers), fsynced,
    // one journal per thread; less the copying of the records, which the
    // run moves instead.
    let event = ceremony::issue::leaf::issued_event(&spec, Some("worker1"), &file, &issued);
    let owner = [0x42; 32];
    let dir = a.dir.join(format!("token-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let copy = all(&|| {
        std::hint::black_box(vec![event.clone(); 256]);
        Ok(256)
    })?;
    let frame = loaded_cpu(secs, cores, |i| {
        let (mut journal, _) = ceremony::audit::Journal::open(
            &dir.join(format!("journal-{i}")),
            &owner,
            &[RECIPIENT.to_string()],
        )
        .map_err(|e| err(&e))?;
        let event = &event;
        Ok((
            Box::new(move || {
                journal
                    .append_all(vec![event.clone(); 256])
                    .map(|_| 256u64)
                    .map_err(|e| err(&e))
            }) as Op<'_>,
            true,
        ))
    })?;
    println!("cpu_journal_us={:.1}", frame - copy);

    // A worker's node in a staging directory of each thread:
    // etc/kubernetes/ with kubelet.conf, pki/ca.crt and kubeadm-config.yaml,
    // listed (the commit, one syncfs for the whole output, is left out).
    let kubelet_conf = kubeconfig::render(&kubeconfig::Kubeconfig {
        cluster: "kubernetes",
        server: "https://k8s.bench.internal:6443",
        user: &spec.cn,
        ca_data: &ca_data,
        cert_pem: &x509::to_pem(&issued.der),
        key_pem: Some(&leaf.private_pem),
    });
    let ca_pem = x509::to_pem(&issued.der);
    let writes = loaded_cpu(secs, cores, |i| {
        let mut staging =
            Staging::begin(&dir.join(format!("out-{i}")), &owner).map_err(|e| err(&e))?;
        let (kubelet_conf, ca_pem) = (&kubelet_conf, &ca_pem);
        let mut nodes = 0u64;
        Ok((
            Box::new(move || {
                nodes += 1;
                let root = layout::node_root(&format!("worker{nodes}"));
                let mut listed = Vec::with_capacity(3);
                for (rel, bytes, mode) in [
                    ("kubelet.conf", kubelet_conf.as_bytes(), 0o600),
                    ("pki/ca.crt", ca_pem.as_bytes(), 0o644),
                    (layout::KUBEADM_CONFIG, KUBEADM_CONFIG.as_bytes(), 0o600),
                ] {
                    let rel = format!("{root}/{rel}");
                    let sha = staging.put(&rel, bytes, mode).map_err(|e| err(&e))?;
                    listed.push((rel, sha, mode));
                }
                staging.listed(listed).map_err(|e| err(&e))?;
                Ok(1u64)
            }) as Op<'_>,
            true,
        ))
    })?;
    println!("cpu_writes_us={writes:.1}");
    std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(())
}
