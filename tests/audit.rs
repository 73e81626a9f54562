//! The audit record end to end, against a real SoftHSM2 token per test (its
//! own temp dir and softhsm2.conf, passed to the child only): the sealed log
//! decrypts with the stock `age` and covers every certificate; tampering of
//! every kind is detected with the record named; a crash at several points
//! leaves a journal that verifies and a rerun that resumes and seals it with
//! each event once; a canary PIN appears nowhere.
//!
//! Independent readers: Debian's `age` decrypts the sealed log and every
//! journal frame; `sha256sum -c` checks SHA256SUMS; this file computes the
//! chain hashes itself with sha2.

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

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use common::{
    AUDITOR, DEMO_PLAN, Fixture, Output, SOFTHSM_MODULE, bin, json_lines, kind, random_hex,
    write_file,
};

/// Every child here is bounded by this (a demo run on a slow machine).
const TIMEOUT: Duration = Duration::from_secs(300);

/// The demo plan on a token labelled as the demo plan's (`ceremony-demo`),
/// run into `DIR/out` (its journal `DIR/.out.journal`).
trait Demo {
    fn plan(&self) -> PathBuf;
    fn out(&self) -> PathBuf;
    fn journal(&self) -> PathBuf;
    /// `ceremony run plan.toml --yes --pin-file pin --out out`.
    fn run_demo(&self, env: &[(&str, &str)]) -> Output;
    fn full_run(&self) -> Output;
    /// `ceremony ARGS` with extra environment, bounded by TIMEOUT.
    fn ceremony_t<S: AsRef<OsStr>>(&self, args: &[S], env: &[(&str, &str)]) -> Output;
    /// `ceremony audit verify FILE --identity <demo auditor> [extra]`.
    fn verify(&self, file: &Path, extra: &[&str]) -> Output;
}

/// A token with this user and SO PIN, and the demo plan, verbatim.
fn demo(pin: &str, so_pin: &str) -> Fixture {
    let f = Fixture::with_pins("ceremony-demo", pin, so_pin);
    let text = fs::read_to_string(DEMO_PLAN).unwrap();
    assert!(text.contains(r#"module = "/usr/lib/softhsm/libsofthsm2.so""#));
    write_file(&f.plan(), text.as_bytes(), 0o644);
    f
}

impl Demo for Fixture {
    fn plan(&self) -> PathBuf {
        self.root.join("plan.toml")
    }

    fn out(&self) -> PathBuf {
        self.root.join("out")
    }

    fn journal(&self) -> PathBuf {
        self.root.join(".out.journal")
    }

    fn run_demo(&self, env: &[(&str, &str)]) -> Output {
        self.ceremony_t(&self.run_plan_args(&self.plan(), &self.out()), env)
    }

    fn full_run(&self) -> Output {
        let o = self.run_demo(&[]);
        assert_eq!(o.code, Some(0), "ceremony run: {o}");
        o
    }

    fn ceremony_t<S: AsRef<OsStr>>(&self, args: &[S], env: &[(&str, &str)]) -> Output {
        let mut c = self.command(bin());
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        Fixture::run(self, c, TIMEOUT)
    }

    fn verify(&self, file: &Path, extra: &[&str]) -> Output {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("audit"),
            OsStr::new("verify"),
            file.as_os_str(),
            OsStr::new("--identity"),
            OsStr::new(AUDITOR),
        ];
        args.extend(extra.iter().map(OsStr::new));
        self.ceremony_t(&args, &[])
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Record lines (without the seal) and the seal, checked for shape.
fn split_log(plain: &str) -> (Vec<String>, Value) {
    assert!(plain.ends_with('\n'), "the log ends with a newline");
    let mut lines: Vec<String> = plain.lines().map(str::to_string).collect();
    let seal_line = lines.pop().expect("a seal line");
    let seal: Value = serde_json::from_str(&seal_line).expect("the seal line is JSON");
    (lines, seal["seal"].clone())
}

fn parse(lines: &[String]) -> Vec<Value> {
    json_lines(lines)
}

/// Checks seq and prev of every record with this file's own hashing.
fn check_chain(lines: &[String]) {
    let mut prev = "0".repeat(64);
    for (i, l) in lines.iter().enumerate() {
        let r: Value = serde_json::from_str(l).unwrap();
        assert_eq!(r["seq"].as_u64(), Some(i as u64 + 1), "seq of {l}");
        assert_eq!(
            r["prev"].as_str(),
            Some(prev.as_str()),
            "prev of record {}",
            i + 1
        );
        prev = sha256_hex(l.as_bytes());
    }
}

/// SHA-256 of every certificate in the output: PEM files and kubeconfigs'
/// embedded certificates. Map: certificate SHA-256 → a file holding it.
fn output_certificates(out: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![out.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(out).unwrap().display().to_string();
            let Ok(text) = fs::read_to_string(&p) else {
                continue;
            };
            let mut pems = vec![text.clone()];
            for line in text.lines() {
                let l = line.trim();
                for key in ["client-certificate-data:", "certificate-authority-data:"] {
                    if let Some(b64) = l.strip_prefix(key) {
                        let pem = base64::engine::general_purpose::STANDARD
                            .decode(b64.trim())
                            .unwrap();
                        pems.push(String::from_utf8(pem).unwrap());
                    }
                }
            }
            for pem in pems {
                for block in pem.split("-----BEGIN CERTIFICATE-----").skip(1) {
                    let body = block.split("-----END CERTIFICATE-----").next().unwrap();
                    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap();
                    found.entry(sha256_hex(&der)).or_insert_with(|| rel.clone());
                }
            }
        }
    }
    found
}

/// The first `error:` line of stderr.
fn error_line(o: &Output) -> &str {
    o.stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or("")
}

/// Splits a journal's records file into (header first seq, last seq, header
/// hash, ciphertext): `<seq>` for one record, `<first>-<last>` for a batch.
type JournalFrame = (u64, u64, String, Vec<u8>);

fn journal_frames(bytes: &[u8]) -> (Vec<JournalFrame>, usize) {
    let mut v = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some(nl) = bytes[at..].iter().position(|&b| b == b'\n') else {
            break;
        };
        let header = std::str::from_utf8(&bytes[at..at + nl]).unwrap();
        let f: Vec<&str> = header.split(' ').collect();
        assert_eq!(f.len(), 3, "frame header {header:?}");
        let (first, last) = match f[0].split_once('-') {
            Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
            None => (f[0].parse().unwrap(), f[0].parse().unwrap()),
        };
        let len: usize = f[2].parse().unwrap();
        let start = at + nl + 1;
        if start + len > bytes.len() {
            break;
        }
        v.push((
            first,
            last,
            f[1].to_string(),
            bytes[start..start + len].to_vec(),
        ));
        at = start + len;
    }
    (v, bytes.len() - at)
}

/// Every record of a journal, each frame decrypted by the stock `age`.
fn journal_records(f: &Fixture) -> Vec<String> {
    let bytes = fs::read(f.journal().join("records")).unwrap();
    let (frames, torn) = journal_frames(&bytes);
    assert_eq!(torn, 0, "a torn frame");
    let tmp = f.root.join("frame.age");
    let mut lines = Vec::new();
    for (first, last, hash, ct) in frames {
        let _ = fs::remove_file(&tmp);
        fs::write(&tmp, &ct).unwrap();
        let plain = f.age_decrypt(&tmp);
        assert_eq!(
            sha256_hex(plain.as_bytes()),
            hash,
            "frame {first}: header hash"
        );
        // A batch frame holds its records' lines, joined by newlines.
        let records: Vec<&str> = plain.split('\n').collect();
        assert_eq!(
            records.len() as u64,
            last - first + 1,
            "frame {first}-{last}"
        );
        for (i, line) in records.into_iter().enumerate() {
            assert_eq!(
                serde_json::from_str::<Value>(line).unwrap()["seq"].as_u64(),
                Some(first + i as u64)
            );
            lines.push(line.to_string());
        }
    }
    let _ = fs::remove_file(&tmp);
    check_chain(&lines);
    lines
}

/// The top-level names of README.md's "What it writes" block: the first
/// column of each line under `OUT/`, each comma-separated path's first part.
fn readme_output_list() -> std::collections::BTreeSet<String> {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("## What it writes")
        .nth(1)
        .and_then(|r| r.split("```").nth(1))
        .unwrap();
    block
        .lines()
        .skip_while(|l| !l.starts_with("OUT/"))
        .skip(1)
        // A path starts two spaces in; a description's next line, further.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.trim_start().split("  ").next())
        .filter(|col| !col.is_empty())
        .flat_map(|col| col.split(", ").map(str::to_string).collect::<Vec<_>>())
        .map(|p| p.split('/').next().unwrap().to_string())
        .collect()
}

#[test]
fn sealed_log_decrypts_with_stock_age_and_covers_every_certificate() {
    let f = demo(&random_hex(8), &random_hex(8));
    let run = f.full_run();
    let out = f.out();
    assert!(
        !f.journal().exists(),
        "the journal is removed after the seal"
    );

    // Stock age decrypts; JSON lines; the chain holds.
    let plain = f.age_decrypt(&out.join("audit.log.age"));
    let (lines, seal) = split_log(&plain);
    check_chain(&lines);
    let records = parse(&lines);
    let last = lines.last().unwrap();
    assert_eq!(kind(records.last().unwrap()), "end");
    assert_eq!(
        seal["hash"].as_str(),
        Some(sha256_hex(last.as_bytes()).as_str())
    );
    assert_eq!(
        seal["algorithm"].as_str(),
        Some("ecdsa-with-SHA384"),
        "the demo root is P-384"
    );
    let root_der = {
        let pem = fs::read_to_string(out.join("root-ca.crt")).unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    };
    assert_eq!(
        seal["root_certificate_sha256"].as_str(),
        Some(sha256_hex(&root_der).as_str())
    );

    // The events a first run makes, each as often as it should.
    let count = |k: &str| records.iter().filter(|r| kind(r) == k).count();
    assert_eq!(count("ceremony_started"), 1);
    assert_eq!(kind(&records[0]), "ceremony_started");
    assert_eq!(count("resumed"), 0);
    assert_eq!(count("token_identified"), 1);
    assert_eq!(count("logged_in"), 1);
    assert_eq!(count("key_generated"), 4);
    assert_eq!(count("certificate_stored"), 4);
    assert_eq!(count("error") + count("cancelled"), 0);
    let start = &records[0]["event"];
    assert_eq!(start["ceremony"], "demo-2026");
    assert_eq!(start["administrator"], "Ada Admin");
    assert_eq!(
        start["plan_sha256"].as_str(),
        Some(sha256_hex(&fs::read(f.plan()).unwrap()).as_str())
    );
    // The inputs' digest: the SHA-256 of the manifest OUT keeps.
    assert_eq!(
        start["inputs_sha256"].as_str(),
        Some(sha256_hex(&fs::read(out.join("inputs.sha256")).unwrap()).as_str())
    );
    assert_eq!(start["env"]["module_path"], SOFTHSM_MODULE);
    assert_eq!(
        start["env"]["module_sha256"].as_str(),
        Some(sha256_hex(&fs::read(SOFTHSM_MODULE).unwrap()).as_str())
    );
    assert_eq!(
        start["env"]["tool_sha256"].as_str(),
        Some(sha256_hex(&fs::read(bin()).unwrap()).as_str())
    );
    assert_eq!(start["env"]["unattended"], true);
    for r in records.iter().filter(|r| kind(r) == "key_generated") {
        let e = &r["event"];
        assert_eq!(e["flags"]["sensitive"], true);
        assert_eq!(e["flags"]["extractable"], false);
        assert_eq!(e["flags"]["never_extractable"], true);
        assert_eq!(e["id"].as_str().unwrap().len(), 32, "CKA_ID hex");
    }
    // --yes: every acknowledgement is automatic and says so: the start, each
    // CA's key generation and certificate signature (4 × 2), 4 CAs × 2 witnesses.
    let acks: Vec<&Value> = records
        .iter()
        .filter(|r| kind(r) == "acknowledged")
        .collect();
    assert_eq!(acks.len(), 1 + 4 * 2 + 4 * 2);
    assert!(acks.iter().all(|a| a["event"]["how"] == "automatic"));
    assert!(acks.iter().any(|a| a["event"]["who"] == "Walter Witness"));

    // Every certificate in the bundle appears with its SHA-256.
    let issued: BTreeSet<String> = records
        .iter()
        .filter(|r| kind(r) == "certificate_issued")
        .map(|r| r["event"]["sha256"].as_str().unwrap().to_string())
        .collect();
    let mut certs = output_certificates(&out);
    // cp1 is delivered encrypted (the demo plan's node recipient): its
    // certificates, opened as the node would with its demo identity.
    let cp1 = f.work("cp1-opened");
    fs::create_dir_all(&cp1).unwrap();
    let o = f.tool(
        "sh",
        &[
            "-c",
            &format!(
                "age -d -i '{}/ceremony/plans/demo-cp1.agekey' '{}' | tar -x -C '{}'",
                env!("CARGO_MANIFEST_DIR"),
                out.join("nodes/cp1.tar.age").display(),
                cp1.display()
            ),
        ],
    );
    o.assert_ok("age -d | tar -x of cp1");
    certs.extend(
        output_certificates(&cp1)
            .into_iter()
            .map(|(sha, rel)| (sha, format!("nodes/cp1.tar.age:{rel}"))),
    );
    assert!(
        certs.len() > 30,
        "the demo bundle holds many certificates: {certs:?}"
    );
    for (sha, file) in &certs {
        assert!(
            issued.contains(sha),
            "{file}: certificate {sha} is not in the audit log"
        );
    }
    let serials: Vec<&str> = records
        .iter()
        .filter(|r| kind(r) == "certificate_issued")
        .map(|r| r["event"]["serial"].as_str().unwrap())
        .collect();
    assert_eq!(
        serials.len(),
        serials.iter().collect::<BTreeSet<_>>().len(),
        "serials are unique"
    );

    // SHA256SUMS: `sha256sum -c` clean, covers plan.toml, its hash in `end`.
    let sums = fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert!(sums.lines().any(|l| l.ends_with("  plan.toml")));
    assert_eq!(
        fs::read(out.join("plan.toml")).unwrap(),
        fs::read(f.plan()).unwrap()
    );
    let mut c = f.command("sha256sum");
    c.args(["-c", "--quiet", "SHA256SUMS"]).current_dir(&out);
    let o = f.run(c, TIMEOUT);
    assert_eq!(o.code, Some(0), "sha256sum -c: {o}");
    let end = &records.last().unwrap()["event"];
    assert_eq!(
        end["sha256sums_sha256"].as_str(),
        Some(sha256_hex(sums.as_bytes()).as_str())
    );
    let written: BTreeMap<String, String> = records
        .iter()
        .filter(|r| kind(r) == "output_written")
        .map(|r| {
            (
                r["event"]["path"].as_str().unwrap().to_string(),
                r["event"]["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for l in sums.lines() {
        let (sha, path) = l.split_once("  ").unwrap();
        assert_eq!(
            written.get(path).map(String::as_str),
            Some(sha),
            "{path} in the log"
        );
    }
    assert_eq!(
        written.get("SHA256SUMS"),
        Some(&sha256_hex(sums.as_bytes()))
    );
    assert_eq!(end["outputs"].as_u64(), Some(written.len() as u64));

    // `audit verify` finds root-ca.crt beside the log; the transcript and the
    // terminal show the same final hash.
    let v = f.verify(&out.join("audit.log.age"), &[]);
    assert_eq!(v.code, Some(0), "{v}");
    assert!(v.stdout.contains("sealed and intact"), "{v}");
    let final_hash = sha256_hex(last.as_bytes());
    assert!(v.stdout.contains(&final_hash), "{v}");
    let grouped = final_hash
        .to_uppercase()
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        run.stderr.contains(&grouped),
        "final hash on the terminal:\n{run}"
    );
    let transcript = fs::read_to_string(out.join("transcript.md")).unwrap();
    assert!(transcript.contains(&grouped), "{transcript}");
    assert!(
        transcript.contains("Wendy Witness (witness)")
            && transcript.contains("Ada Admin (administrator)")
    );
    assert!(transcript.contains(&format!("{} records", lines.len())));
    // The transcript's file count is SHA256SUMS's line count.
    assert!(
        transcript.contains(&format!(
            "- Outputs: {} files, listed with their SHA-256 in `SHA256SUMS`",
            sums.lines().count()
        )),
        "{transcript}"
    );
    // The README's output list names what `run` writes, and nothing else
    // (continuation.json: a continuing ceremony's; crls/: with [crl] or
    // [[revoke]]; backup/: with [backup]).
    let top: std::collections::BTreeSet<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .chain(["continuation.json", "crls", "backup"].map(str::to_string))
        .collect();
    assert_eq!(readme_output_list(), top);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out.join("audit.log.age")), 0o644);

    // `audit show` prints the timeline and the verdict; plaintext from age -d checks too.
    let mut args = vec!["audit", "show"];
    let log = out.join("audit.log.age");
    args.push(log.to_str().unwrap());
    args.extend(["--identity", AUDITOR]);
    let s = f.ceremony_t(&args, &[]);
    assert_eq!(s.code, Some(0), "{s}");
    assert!(
        s.stdout.contains("#1    ")
            && s.stdout.contains("ceremony_started")
            && s.stdout.contains("end "),
        "{s}"
    );
    assert!(s.stdout.contains("sealed and intact"), "{s}");
    let plain_file = f.root.join("plain.jsonl");
    fs::write(&plain_file, &plain).unwrap();
    let v = f.verify(
        &plain_file,
        &["--root", out.join("root-ca.crt").to_str().unwrap()],
    );
    assert_eq!(v.code, Some(0), "{v}");
}

/// Runs `audit verify` on `file` and expects exit 4 with the record named.
fn expect_broken(f: &Fixture, file: &Path, root: &Path, record: u64, what: &str) {
    let o = f.verify(file, &["--root", root.to_str().unwrap()]);
    assert_eq!(o.code, Some(4), "{what}: {o}");
    let line = error_line(&o);
    assert!(
        line.contains(&format!("broken at record {record}:")),
        "{what}: expected record {record}: {line}"
    );
    assert!(line.contains(what), "expected {what:?} in: {line}");
    assert!(o.stderr.contains("hint: "), "{o}");
}

/// Recomputes every `prev` and the seal's hash, as a forger who knows the format would.
fn rechain(lines: &mut [String], seal_line: &str) -> String {
    let mut prev = "0".repeat(64);
    for l in lines.iter_mut() {
        let at = l.find(r#""prev":""#).unwrap() + 8;
        l.replace_range(at..at + 64, &prev);
        prev = sha256_hex(l.as_bytes());
    }
    let at = seal_line.find(r#""hash":""#).unwrap() + 8;
    let mut s = seal_line.to_string();
    s.replace_range(at..at + 64, &prev);
    s
}

#[test]
fn tampering_is_detected_with_the_record_named() {
    let f = demo(&random_hex(8), &random_hex(8));
    f.full_run();
    let out = f.out();
    let root = out.join("root-ca.crt");
    let plain = f.age_decrypt(&out.join("audit.log.age"));
    let mut lines: Vec<String> = plain.lines().map(str::to_string).collect();
    let seal_line = lines.pop().unwrap();
    let n = lines.len() as u64;
    let dir = f.root.join("tampered");
    fs::create_dir(&dir).unwrap();
    let mut case = 0;
    let mut write = |records: &[String], seal: &str| -> PathBuf {
        case += 1;
        let p = dir.join(format!("case{case}.age"));
        let mut text = records.join("\n");
        text.push('\n');
        text.push_str(seal);
        text.push('\n');
        f.age_encrypt(text.as_bytes(), &p);
        p
    };

    // The untouched plaintext, re-encrypted, is intact: re-encryption alone changes nothing.
    let p = write(&lines, &seal_line);
    assert_eq!(
        f.verify(&p, &["--root", root.to_str().unwrap()]).code,
        Some(0)
    );

    // One byte of record 7 changed (a digit of its time).
    let mut t = lines.clone();
    let at = t[6].find(r#""time":""#).unwrap() + 8 + 18;
    let old = t[6].as_bytes()[at];
    t[6].replace_range(at..at + 1, if old == b'1' { "2" } else { "1" });
    expect_broken(&f, &write(&t, &seal_line), &root, 7, "record 7 was altered");

    // Record 9 dropped.
    let mut t = lines.clone();
    t.remove(8);
    expect_broken(&f, &write(&t, &seal_line), &root, 9, "record 9 is missing");

    // Records 12 and 13 swapped.
    let mut t = lines.clone();
    t.swap(11, 12);
    expect_broken(
        &f,
        &write(&t, &seal_line),
        &root,
        12,
        "record 12 is missing: record 13 stands in its place",
    );

    // Truncated: the seal and the last two records cut off.
    let t = lines[..lines.len() - 2].to_vec();
    let p = dir.join("truncated.age");
    let mut text = t.join("\n");
    text.push('\n');
    f.age_encrypt(text.as_bytes(), &p);
    expect_broken(&f, &p, &root, n - 2, "without a seal");

    // Truncated ciphertext: the age file cut short.
    let bytes = fs::read(out.join("audit.log.age")).unwrap();
    let p = dir.join("cut.age");
    fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let o = f.verify(&p, &["--root", root.to_str().unwrap()]);
    assert_eq!(o.code, Some(4), "{o}");
    assert!(error_line(&o).contains("truncated or damaged"), "{o}");

    // The seal's signature replaced (another valid-looking signature: one byte flipped).
    let mut seal: Value = serde_json::from_str(&seal_line).unwrap();
    let mut sig = base64::engine::general_purpose::STANDARD
        .decode(seal["seal"]["signature"].as_str().unwrap())
        .unwrap();
    let k = sig.len() - 5;
    sig[k] ^= 0x01;
    seal["seal"]["signature"] =
        Value::String(base64::engine::general_purpose::STANDARD.encode(&sig));
    let forged = serde_json::to_string(&seal).unwrap();
    expect_broken(&f, &write(&lines, &forged), &root, n, "does not verify");

    // A modified record, the chain and the seal's hash recomputed, re-encrypted
    // to the right recipient: only the root's signature can tell, and it does.
    let mut t = lines.clone();
    let victim = t
        .iter()
        .position(|l| l.contains(r#""kind":"output_written""#))
        .unwrap();
    let at = t[victim].find(r#""sha256":""#).unwrap() + 10;
    t[victim].replace_range(at..at + 4, "dead");
    let rechained_seal = rechain(&mut t, &seal_line);
    let forged = write(&t, &rechained_seal);
    expect_broken(&f, &forged, &root, n, "does not verify");
    // Without a root at hand (none given, none beside the log) it is not
    // passed: the chain alone cannot tell it from the real log.
    let o = f.verify(&forged, &[]);
    assert_eq!(o.code, Some(2), "{o}");
    assert_eq!(
        error_line(&o),
        format!(
            "error: {}: the seal's signature cannot be checked: no --root was given and no root-ca.crt is beside the log",
            forged.display()
        )
    );
    assert!(
        o.stderr.contains("hint: give --root") && o.stderr.contains("--chain-only"),
        "{o}"
    );
    assert!(o.stdout.is_empty(), "no verdict: {o}");
    // Asked for explicitly, the chain-only check passes and says what it did not check.
    let o = f.verify(&forged, &["--chain-only"]);
    assert_eq!(o.code, Some(0), "{o}");
    assert!(
        o.stdout.contains(
            "chain intact and sealed, but the seal's signature was NOT checked (--chain-only)"
        ),
        "{o}"
    );
    assert!(
        !o.stdout.contains("transcript.md"),
        "no transcript beside it: {o}"
    );
    // --chain-only and --root together are a usage error.
    let o = f.verify(&forged, &["--chain-only", "--root", root.to_str().unwrap()]);
    assert_eq!(o.code, Some(2), "{o}");

    // A record appended after the end, correctly chained, the seal left as it was.
    let mut t = lines.clone();
    let mut extra = lines[1].replace(r#""seq":2,"#, &format!(r#""seq":{},"#, n + 1));
    let at = extra.find(r#""prev":""#).unwrap() + 8;
    extra.replace_range(at..at + 64, &sha256_hex(lines[lines.len() - 1].as_bytes()));
    t.push(extra);
    expect_broken(&f, &write(&t, &seal_line), &root, n + 1, "not `end`");

    // A root certificate that is not the ceremony's.
    let other = dir.join("other-root.crt");
    fs::write(&other, fs::read(out.join("cas/kubernetes-ca.crt")).unwrap()).unwrap();
    expect_broken(
        &f,
        &out.join("audit.log.age"),
        &other,
        n,
        "the seal was made by root certificate",
    );

    // A wrong identity is a usage error (2), not a broken log.
    let wrong = dir.join("wrong.agekey");
    let o = f.tool("age-keygen", &[OsStr::new("-o"), wrong.as_os_str()]);
    assert_eq!(o.code, Some(0), "{o}");
    let o = f.ceremony_t(
        &[
            OsStr::new("audit"),
            OsStr::new("verify"),
            out.join("audit.log.age").as_os_str(),
            OsStr::new("--identity"),
            wrong.as_os_str(),
        ],
        &[],
    );
    assert_eq!(o.code, Some(2), "{o}");
    assert!(
        !o.stderr.contains("AGE-SECRET-KEY"),
        "an identity is never echoed: {o}"
    );
}

/// The events of a sealed log, each one that names an object at most once.
#[cfg(feature = "failpoints")]
fn assert_each_event_once(records: &[Value]) {
    let mut seen = BTreeSet::new();
    for r in records {
        let e = &r["event"];
        let key = match kind(r) {
            "ceremony_started" => "start".to_string(),
            "key_generated" => format!("keygen {}", e["label"]),
            "certificate_stored" => format!("stored {}", e["label"]),
            "certificate_issued" if e["node"].is_null() => format!("ca cert {}", e["role"]),
            "certificate_issued" => format!("serial {}", e["serial"]),
            _ => continue,
        };
        assert!(
            seen.insert(key.clone()),
            "{key} appears twice in the sealed log"
        );
    }
}

#[cfg(feature = "failpoints")]
mod crash {
    use super::*;
    use common::has_failpoints;
    use std::io::Write;

    /// Crashes at `point`, checks the journal holds everything written
    /// before the kill, then reruns and checks the sealed log.
    fn crash_then_resume(point: &str, last_before_kill: impl Fn(&[Value])) {
        if !has_failpoints(&format!("audit::crash at {point}")) {
            return;
        }
        let f = demo(&random_hex(8), &random_hex(8));
        let o = f.run_demo(&[("CEREMONY_FAILPOINT", point)]);
        assert_eq!(o.signal, Some(6), "expected SIGABRT at {point}: {o}");
        assert!(!f.out().exists(), "no output after a crash at {point}");
        assert!(f.journal().is_dir(), "a journal after a crash at {point}");

        // The journal verifies as unsealed, every record intact; stock age
        // reads each frame.
        let journal = journal_records(&f);
        let n = journal.len();
        let v = f.verify(&f.journal(), &[]);
        assert_eq!(v.code, Some(0), "{v}");
        assert!(
            v.stdout.contains(&format!("unsealed, {n} records intact")),
            "{v}"
        );
        let v = f.verify(&f.journal().join("records"), &[]);
        assert!(
            v.stdout.contains(&format!("unsealed, {n} records intact")),
            "{v}"
        );
        let before = parse(&journal);
        assert_eq!(kind(&before[0]), "ceremony_started");
        last_before_kill(&before);

        // A torn frame, as if the process had died while writing one more:
        // its header whole, its age file cut short.
        let torn = format!(
            "{} {} 400\nage-encryption.org/v1\n-> X25519 ",
            n + 1,
            "ab".repeat(32)
        );
        let torn = torn.as_bytes();
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(f.journal().join("records"))
            .unwrap();
        file.write_all(torn).unwrap();
        drop(file);
        let v = f.verify(&f.journal(), &[]);
        assert!(v.stdout.contains("torn last frame"), "{v}");

        // The rerun resumes and seals.
        let o = f.full_run();
        assert!(o.stderr.contains(&format!("holds {n} records")), "{o}");
        assert!(!f.journal().exists());
        let v = f.verify(&f.out().join("audit.log.age"), &[]);
        assert_eq!(v.code, Some(0), "{v}");
        let (lines, _) = split_log(&f.age_decrypt(&f.out().join("audit.log.age")));
        // Every record of the crashed run, verbatim and once, then the resume.
        assert_eq!(
            &lines[..n],
            &journal[..],
            "the journal is the sealed log's prefix"
        );
        let records = parse(&lines);
        let resumed = &records[n];
        assert_eq!(kind(resumed), "resumed");
        let found = &resumed["event"]["found"];
        assert_eq!(found["records"].as_u64(), Some(n as u64));
        assert_eq!(
            found["last_hash"].as_str(),
            Some(sha256_hex(journal[n - 1].as_bytes()).as_str())
        );
        assert_eq!(found["torn_frame_bytes"].as_u64(), Some(torn.len() as u64));
        assert_eq!(records.iter().filter(|r| kind(r) == "resumed").count(), 1);
        assert_each_event_once(&records);
        // The keys made before the crash are found, not made again.
        let generated: BTreeSet<String> = before
            .iter()
            .filter(|r| kind(r) == "key_generated")
            .map(|r| r["event"]["label"].to_string())
            .collect();
        for r in records[n..].iter().filter(|r| kind(r) == "key_found") {
            assert!(
                generated.contains(&r["event"]["label"].to_string()),
                "found a key never generated: {r}"
            );
        }
        // Leaves signed before the crash never reached the output: listed as discarded.
        let leaf_serials: Vec<Value> = before
            .iter()
            .filter(|r| kind(r) == "certificate_issued" && !r["event"]["node"].is_null())
            .map(|r| r["event"]["serial"].clone())
            .collect();
        assert_eq!(
            found["discarded_leaf_serials"].as_array().unwrap(),
            &leaf_serials
        );
        // Every certificate of the output was issued or found after the resume.
        let after: BTreeSet<String> = records[n..]
            .iter()
            .filter(|r| kind(r) == "certificate_issued" || kind(r) == "certificate_found")
            .map(|r| r["event"]["sha256"].as_str().unwrap().to_string())
            .collect();
        for (sha, file) in output_certificates(&f.out()) {
            assert!(
                after.contains(&sha),
                "{file}: {sha} not recorded by the resumed run"
            );
        }
        // After the resume each output is recorded once.
        let paths: Vec<&str> = records[n..]
            .iter()
            .filter(|r| kind(r) == "output_written")
            .map(|r| r["event"]["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths.len(), paths.iter().collect::<BTreeSet<_>>().len());
    }

    #[test]
    fn crash_after_the_root() {
        crash_then_resume("after-store:root", |before| {
            let last = before.last().unwrap();
            assert_eq!(kind(last), "certificate_stored");
            assert_eq!(last["event"]["role"], "root");
            assert_eq!(
                before.iter().filter(|r| kind(r) == "key_generated").count(),
                1
            );
        });
    }

    #[test]
    fn crash_mid_leaves() {
        crash_then_resume("mid-leaves", |before| {
            let last = before.last().unwrap();
            assert_eq!(kind(last), "certificate_issued");
            assert_eq!(last["event"]["node"], "cp1");
            let cp1 = before
                .iter()
                .filter(|r| r["event"]["node"] == "cp1")
                .count();
            assert!(cp1 > 5, "every cp1 leaf is recorded: {cp1}");
            assert!(!before.iter().any(|r| r["event"]["node"] == "cp2"));
        });
    }

    #[test]
    fn crash_just_before_the_seal() {
        crash_then_resume("before-seal", |before| {
            assert_eq!(kind(before.last().unwrap()), "end");
            assert!(before.iter().any(|r| kind(r) == "output_written"));
        });
    }

    /// A crash after the seal was written into staging, before the rename:
    /// the rerun rebuilds and seals again; the first end is followed by the resume.
    #[test]
    fn crash_before_the_rename() {
        crash_then_resume("before-rename", |before| {
            assert_eq!(kind(before.last().unwrap()), "end");
        });
    }
}

#[test]
fn a_canary_pin_appears_nowhere() {
    const CANARY: &str = "PIN-CANARY-7f3a91";
    const SO_CANARY: &str = "SOPIN-CANARY-5c2e08";
    const WRONG: &str = "PIN-CANARY-WRONG-1d4b";
    let f = demo(CANARY, SO_CANARY);
    let mut outputs = Vec::new();

    // A wrong PIN first: the failure is recorded (exit 3), its text holds no PIN.
    let wrong = f.root.join("wrong-pin");
    write_file(&wrong, WRONG.as_bytes(), 0o600);
    let (plan, out) = (f.plan(), f.out());
    let o = f.ceremony_t(
        &[
            OsStr::new("run"),
            plan.as_os_str(),
            OsStr::new("--yes"),
            OsStr::new("--pin-file"),
            wrong.as_os_str(),
            OsStr::new("--out"),
            out.as_os_str(),
        ],
        &[],
    );
    assert_eq!(o.code, Some(3), "{o}");
    let journal = journal_records(&f);
    assert!(
        journal.iter().any(|l| l.contains(r#""kind":"error""#)),
        "{journal:?}"
    );
    outputs.push(o);

    // Then the right one; the sealed log holds both runs.
    outputs.push(f.full_run());
    let v = f.verify(&f.out().join("audit.log.age"), &[]);
    assert_eq!(v.code, Some(0), "{v}");
    let plain = f.age_decrypt(&f.out().join("audit.log.age"));
    assert!(plain.contains(r#""kind":"error""#) && plain.contains(r#""kind":"resumed""#));
    let mut show = vec!["audit", "show"];
    let log = f.out().join("audit.log.age");
    show.push(log.to_str().unwrap());
    show.extend(["--identity", AUDITOR]);
    outputs.push(f.ceremony_t(&show, &[]));
    outputs.push(v);
    // Every other command, the PIN-taking ones by file and by variable, and
    // with the wrong PIN (whose error must not echo it either).
    let (plan_s, out_s) = (plan.to_str().unwrap(), out.to_str().unwrap());
    let pin_file = f.pin_file();
    let (pin_s, wrong_s) = (pin_file.to_str().unwrap(), wrong.to_str().unwrap());
    let canary_env = [("CEREMONY_TEST_PIN", CANARY)];
    let wrong_env = [("CEREMONY_TEST_PIN", WRONG)];
    // (arguments, environment, expected exit code)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32);
    let runs: [Case; 8] = [
        (&["check", plan_s], &[], 0),
        (&["verify", out_s, "--plan", plan_s], &[], 0),
        (&["inspect", out_s], &[], 0),
        (
            &["token", "list", "--plan", plan_s, "--pin-file", pin_s],
            &[],
            0,
        ),
        (
            &[
                "token",
                "list",
                "--plan",
                plan_s,
                "--pin-env",
                "CEREMONY_TEST_PIN",
            ],
            &canary_env,
            0,
        ),
        (
            &["token", "list", "--plan", plan_s, "--pin-file", wrong_s],
            &[],
            3,
        ),
        (
            &[
                "token",
                "list",
                "--plan",
                plan_s,
                "--pin-env",
                "CEREMONY_TEST_PIN",
            ],
            &wrong_env,
            3,
        ),
        // A finished output is never overwritten: refused, PIN from the variable.
        (
            &[
                "run",
                plan_s,
                "--yes",
                "--pin-env",
                "CEREMONY_TEST_PIN",
                "--out",
                out_s,
            ],
            &canary_env,
            2,
        ),
    ];
    for (args, env, code) in runs {
        let o = f.ceremony_t(args, env);
        assert_eq!(o.code, Some(code), "ceremony {args:?}: {o}");
        outputs.push(o);
    }

    for secret in [CANARY, SO_CANARY, WRONG] {
        for o in &outputs {
            assert!(
                !o.stdout.contains(secret) && !o.stderr.contains(secret),
                "{secret} printed:\n{o}"
            );
        }
        assert!(!plain.contains(secret), "{secret} in the audit log");
        for l in &journal {
            assert!(!l.contains(secret), "{secret} in the journal");
        }
        // No file but the PIN files holds it (the token directory aside).
        let mut stack = vec![f.root.clone()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.starts_with(f.root.join("tokens")) || p == f.pin_file() || p == wrong {
                    continue;
                }
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let bytes = fs::read(&p).unwrap();
                    assert!(
                        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                        "{secret} in {}",
                        p.display()
                    );
                }
            }
        }
    }
}
