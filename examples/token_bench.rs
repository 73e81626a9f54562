//! The token's raw limit, measured through the project's own token layer
//! (scripts/bench runs it; docs/performance.md explains the numbers):
//! C_Sign per second with one session and with one session per core, plus
//! the host-side work of a leaf certificate (software leaf key generation,
//! the post-sign verification of the signature).
//!
//! ```text
//! cargo run --release --example token_bench -- --module /usr/lib/softhsm/libsofthsm2.so \
//!     --token LABEL --pin-file PIN --key ecdsa-p256 [--seconds 3] [--sessions N]
//! ```
//!
//! It finds the key labelled `bench-<key>` on the token or generates it
//! there (a rehearsal token only: the key stays on it), and prints one
//! `name=value` line per measurement.

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
}

fn parse_args() -> Result<Args, String> {
    let mut module = PathBuf::from("/usr/lib/softhsm/libsofthsm2.so");
    let (mut token, mut pin_file, mut key) = (None, None, KeyType::EcdsaP256);
    let mut seconds = 3.0;
    let mut sessions = std::thread::available_parallelism().map_or(2, |n| n.get());
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
    })
}

/// Calls `op` for `secs` (after a short warm-up); operations per second.
fn rate(secs: f64, mut op: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(200) {
        op()?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        op()?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
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

    let one = rate(a.seconds, || {
        token
            .sign(&key, &MESSAGE)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?;
    println!("c_sign_1_session={one:.0}");
    let signers = token.signers(a.sessions).map_err(|e| e.to_string())?;
    let opened = signers.len();
    let many = parallel_rate(signers, &key, a.seconds)?;
    println!("sessions={opened}");
    println!("c_sign_per_core_sessions={many:.0}");

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
    Ok(())
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
