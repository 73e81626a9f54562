//! Backups on real SoftHSM2 tokens: the founding ceremony backs the CA keys
//! up under a wrap key split 3 of 5; the token is destroyed; a new token is
//! restored from three shares and continues the chain with leaves that
//! verify against the original certificates. Too few shares and a share
//! with one changed character are refused (and named) before the token is
//! touched; the restored keys are sensitive, wrap-with-trusted and
//! unreadable, and an untrusted key cannot wrap them; no share or wrap key
//! is anywhere on disk but in the custodians' files.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use ceremony::backup::manifest::ShareFile;
use ceremony::backup::share;
use common::*;

const KEYS: Keys = ["ecdsa-p256"; 4];
const LABEL: &str = "backed-up";
const PIN: &str = "20262026";
const SO_PIN: &str = "so-20262026";
const CUSTODIANS: [&str; 5] = ["Carol", "Dave", "Erin", "Frank", "Grace"];

fn secret_file(f: &Fixture, name: &str, value: &str) -> PathBuf {
    let p = f.path().join(name);
    write_file(&p, value.as_bytes(), 0o600);
    p
}

fn init_token(f: &Fixture, label: &str) {
    f.tool(
        "softhsm2-util",
        &[
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            PIN,
            "--so-pin",
            SO_PIN,
        ],
    )
    .assert_ok("softhsm2-util --init-token");
}

fn objects(f: &Fixture, label: &str) -> Vec<String> {
    let pin = f.path().join("pin");
    let out = f.ceremony(&[
        "token".as_ref(),
        "list".as_ref(),
        "--uri".as_ref(),
        OsStr::new(&format!("pkcs11:token={label}")),
        "--module".as_ref(),
        SOFTHSM_MODULE.as_ref(),
        "--pin-file".as_ref(),
        pin.as_os_str(),
    ]);
    out.assert_ok("token list");
    out.stdout.lines().map(str::to_string).collect()
}

fn restore_args<'a>(
    verb: &'a [&'a str],
    backup: &'a Path,
    shares: &'a [PathBuf],
    pin: &'a Path,
    so: &'a Path,
) -> Vec<&'a OsStr> {
    let mut a: Vec<&OsStr> = verb.iter().map(OsStr::new).collect();
    a.push(backup.as_os_str());
    for s in shares {
        a.push("--share-file".as_ref());
        a.push(s.as_os_str());
    }
    a.extend([
        OsStr::new("--pin-file"),
        pin.as_os_str(),
        OsStr::new("--so-pin-file"),
        so.as_os_str(),
    ]);
    a
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn backup_at_founding_restores_onto_a_new_token_that_continues_the_chain() {
    let f = Fixture::with_pins(LABEL, PIN, SO_PIN);
    let so = secret_file(&f, "so-pin", SO_PIN);
    let pin = f.pin_file();
    let mut spec = PlanSpec::new(LABEL, KEYS);
    spec.cluster().control_plane = &[("cp1", "10.0.0.11")];
    spec.cluster().workers = &["worker1"];
    let base = f.write_spec("c1.base.toml", &spec);
    let plan = f.path().join("c1.toml");
    let text = std::fs::read_to_string(&base).unwrap()
        + "\n[backup]\ncustodians = [\"Carol\", \"Dave\", \"Erin\", \"Frank\", \"Grace\"]\nthreshold = 3\n";
    std::fs::write(&plan, text).unwrap();
    let c1 = f.path().join("c1");
    let shares_dir = f.path().join("shares");

    // Without --shares-out the plan is refused before the token (exit 2).
    let mut args = f.run_plan_args(&plan, &c1);
    let out = f.ceremony(&args);
    assert_eq!(out.code, Some(2), "{out}");
    assert_eq!(
        out.first_error(),
        Some(
            "error: the plan has [backup] but --shares-out is not given: the custodians' shares need a directory of their own"
        )
    );
    // --shares-out inside OUT is refused too.
    let inside = c1.join("shares");
    let mut bad = args.clone();
    bad.extend(["--shares-out".into(), inside.clone().into_os_string()]);
    let out = f.ceremony(&bad);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.first_error()
            .unwrap()
            .contains("overlap: the shares must never be in the ceremony's output"),
        "{out}"
    );

    args.extend([
        "--shares-out".into(),
        shares_dir.clone().into_os_string(),
        "--so-pin-file".into(),
        so.clone().into_os_string(),
    ]);
    f.ceremony(&args)
        .assert_ok("founding ceremony with [backup]");

    // One 0600 file per custodian, in a 0700 directory, none in OUT.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&shares_dir), 0o700);
    let mut share_files = Vec::new();
    for (i, who) in CUSTODIANS.iter().enumerate() {
        let p = shares_dir.join(format!("share-{}.txt", i + 1));
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        let sf = ShareFile::parse(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(
            (sf.custodian.as_str(), sf.share.number as usize),
            (*who, i + 1)
        );
        share_files.push((p, sf));
    }
    // backup/ in OUT, listed in SHA256SUMS; the keys' policy on the token.
    let sums = std::fs::read_to_string(c1.join("SHA256SUMS")).unwrap();
    for role in ROLES {
        for ext in ["key.wrapped", "crt", "pub"] {
            assert!(
                sums.contains(&format!("  backup/{role}.{ext}\n")),
                "{role}.{ext}"
            );
        }
    }
    assert!(sums.contains("  backup/backup.json\n"));
    let listed = objects(&f, LABEL);
    let private: Vec<&String> = listed
        .iter()
        .filter(|l| l.starts_with("private-key"))
        .collect();
    assert_eq!(private.len(), 4, "{listed:#?}");
    for l in &private {
        assert!(
            l.contains("sensitive=yes extractable=yes always-sensitive=yes never-extractable=no wrap-with-trusted=yes (backed up)"),
            "{l}"
        );
    }
    assert!(
        listed
            .iter()
            .any(|l| l.starts_with("secret-key   ceremony-wrap-key")),
        "{listed:#?}"
    );
    f.ceremony(&["verify".as_ref(), c1.as_os_str()])
        .assert_ok("verify c1");
    // verify checks backup/ against the output, and finds a share put into it.
    let tampered = f.work("tampered");
    let cp = f.tool("cp", &["-r".as_ref(), c1.as_os_str(), tampered.as_os_str()]);
    cp.assert_ok("cp");
    std::fs::copy(
        tampered.join("backup/etcd.pub"),
        tampered.join("backup/root.pub"),
    )
    .unwrap();
    std::fs::copy(&share_files[0].0, tampered.join("notes.txt")).unwrap();
    let out = f.ceremony(&["verify".as_ref(), tampered.as_os_str()]);
    assert_eq!(out.code, Some(4), "{out}");
    for line in [
        "backup/root.pub: public key: is not the key of backup/root.crt",
        "notes.txt: file: holds a custodian's share: shares never go into the ceremony's output",
    ] {
        assert!(
            out.stdout.contains(line) || out.stderr.contains(line),
            "{line}\n{out}"
        );
    }
    std::fs::remove_dir_all(&tampered).unwrap();

    // The token is lost; a new one takes its place.
    f.tool("softhsm2-util", &["--delete-token", "--token", LABEL])
        .assert_ok("delete the token");
    init_token(&f, LABEL);

    // Two shares of five: refused before the token, nothing written.
    let two: Vec<PathBuf> = share_files[..2].iter().map(|(p, _)| p.clone()).collect();
    let r1 = f.path().join("r1");
    let mut a = restore_args(&["restore"], &c1, &two, &pin, &so);
    a.extend([OsStr::new("--out"), r1.as_os_str()]);
    let out = f.ceremony(&a);
    assert_eq!(out.code, Some(2), "{out}");
    assert_eq!(
        out.first_error(),
        Some("error: 2 share(s) given; this backup needs 3 of its 5 custodians' shares")
    );
    assert!(objects(&f, LABEL).contains(&"0 objects".to_string()));

    // One changed character in share 4's text: detected, and the file named.
    let (p4, _) = &share_files[3];
    let text = std::fs::read_to_string(p4).unwrap();
    let at = text.find("share-text: ").unwrap() + "share-text: ".len() + 10;
    let c = text.as_bytes()[at] as char;
    let mut changed = text.clone();
    changed.replace_range(at..at + 1, if c == '7' { "8" } else { "7" });
    let typo = secret_file(&f, "typo.txt", &changed);
    let with_typo = vec![
        share_files[0].0.clone(),
        typo.clone(),
        share_files[4].0.clone(),
    ];
    let mut a = restore_args(&["restore"], &c1, &with_typo, &pin, &so);
    a.extend([OsStr::new("--out"), r1.as_os_str()]);
    let out = f.ceremony(&a);
    assert_eq!(out.code, Some(2), "{out}");
    assert_eq!(
        out.first_error().unwrap(),
        format!(
            "error: share file {}: its share-text does not match its checksum: a character is mistyped",
            typo.display()
        )
    );
    assert!(objects(&f, LABEL).contains(&"0 objects".to_string()));

    // Three shares (1, 3, 5): the drill on a scratch token leaves nothing behind ...
    init_token(&f, "scratch");
    let three: Vec<PathBuf> = [0, 2, 4]
        .iter()
        .map(|&i| share_files[i].0.clone())
        .collect();
    let mut a = restore_args(&["backup", "verify"], &c1, &three, &pin, &so);
    a.extend([OsStr::new("--uri"), OsStr::new("pkcs11:token=scratch")]);
    let out = f.ceremony(&a);
    out.assert_ok("backup verify");
    assert!(out.stdout.contains("everything removed again"), "{out}");
    assert!(objects(&f, "scratch").contains(&"0 objects".to_string()));

    // ... and restores the new token.
    let mut a = restore_args(&["restore"], &c1, &three, &pin, &so);
    a.extend([OsStr::new("--out"), r1.as_os_str()]);
    f.ceremony(&a).assert_ok("restore from shares 1, 3, 5");
    // The restore's audit log is sealed by the restored root and continues c1.
    let r1_log = r1.join("audit.log.age");
    let out = f.audit_verify(&c1.join("audit.log.age"), &[r1_log.to_str().unwrap()]);
    out.assert_ok("audit verify c1 r1");
    assert!(out.stdout.contains("chain: 2 ceremonies"), "{out}");
    let restored = f.age_decrypt(&r1_log);
    for kind in ["backup_wrap_key_imported", "key_restored"] {
        assert!(
            restored.contains(&format!("\"kind\":\"{kind}\"")),
            "{restored}"
        );
    }
    let listed = objects(&f, LABEL);
    let private: Vec<&String> = listed
        .iter()
        .filter(|l| l.starts_with("private-key"))
        .collect();
    assert_eq!(private.len(), 4, "{listed:#?}");
    for l in &private {
        // PKCS#11 reads CKA_ALWAYS_SENSITIVE false on every unwrapped key.
        assert!(
            l.contains("sensitive=yes extractable=yes always-sensitive=no never-extractable=no wrap-with-trusted=yes (backed up)"),
            "{l}"
        );
    }
    assert!(
        listed
            .iter()
            .any(|l| l.starts_with("data         ceremony-chain-head")),
        "{listed:#?}"
    );

    // The restored keys: CKA_VALUE refused, an untrusted AES key cannot wrap them.
    let probe = f.run(
        {
            let mut cmd = f.command(std::env::current_exe().unwrap());
            cmd.args([
                "--exact",
                "probe_restored_keys",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BACKUP_PROBE_TOKEN", LABEL)
            .env("BACKUP_PROBE_PIN", PIN);
            cmd
        },
        CHILD_TIMEOUT,
    );
    probe.assert_ok("probe");
    for label in LABELS {
        assert!(
            probe.stdout.contains(&format!(
                "{label}: value refused, untrusted wrap refused, sensitive, wrap-with-trusted"
            )),
            "{probe}"
        );
    }

    // The next ceremony continues c1 on the restored token; its leaves
    // verify against the original certificates.
    let c2_base = f.write_spec("c2.base.toml", &spec);
    let c2_plan = f.path().join("c2.toml");
    let text = std::fs::read_to_string(&c2_base).unwrap().replacen(
        "[ceremony]\n",
        "[ceremony]\nprevious = \"c1\"\n",
        1,
    ) + "\n[renew]\nnodes = [\"cp1\"]\n";
    std::fs::write(&c2_plan, text).unwrap();
    let c2 = f.path().join("c2");
    f.ceremony(&f.run_plan_args(&c2_plan, &c2))
        .assert_ok("continuing ceremony on the restored token");
    let chain = f.path().join("c1-kubernetes-chain.pem");
    let mut pem = std::fs::read(c1.join("cas/kubernetes-ca.crt")).unwrap();
    pem.extend(std::fs::read(c1.join("root-ca.crt")).unwrap());
    std::fs::write(&chain, pem).unwrap();
    let leaf = c2.join("nodes/cp1/etc/kubernetes/pki/apiserver.crt");
    openssl_verify(&f, &chain, &[leaf]);
    let c2_log = c2.join("audit.log.age");
    let out = f.audit_verify(&c1.join("audit.log.age"), &[c2_log.to_str().unwrap()]);
    out.assert_ok("audit verify c1 c2");

    // Canary: no share and no wrap key anywhere but the custodians' files.
    let shares: Vec<share::ShareText> = share_files.iter().map(|(_, s)| s.share.clone()).collect();
    let key = share::combine(&shares[..3]).unwrap();
    let mut needles: Vec<Vec<u8>> = vec![key.to_vec(), hex::encode(*key).into_bytes()];
    for s in &shares {
        let t = s.text();
        needles.push(t.clone().into_bytes());
        needles.push(t.replace('-', "").into_bytes());
        needles.push(t.replace('-', "").get(2..66).unwrap().as_bytes().to_vec());
    }
    let mut scanned = Vec::new();
    for dir in [&c1, &c2, &r1, &f.path().join("work")] {
        scanned.extend(files(dir));
    }
    let mut hay: Vec<(String, Vec<u8>)> = scanned
        .iter()
        .map(|p| (p.display().to_string(), std::fs::read(p).unwrap()))
        .collect();
    for out in [&c1, &c2, &r1] {
        hay.push((
            format!("{} decrypted", out.join("audit.log.age").display()),
            f.age_decrypt(&out.join("audit.log.age")).into_bytes(),
        ));
    }
    assert!(hay.len() > 50, "scanned only {} files", hay.len());
    for (name, bytes) in &hay {
        for n in &needles {
            assert!(!contains(bytes, n), "a share or the wrap key is in {name}");
        }
    }
}

/// A founding plan with a 2-of-3 backup for `f`'s token, written as `name`.
fn plan_2_of_3(f: &Fixture, name: &str) -> PathBuf {
    let base = f.write_ca_plan(&format!("{name}.base.toml"), KEYS);
    let plan = f.path().join(name);
    let text = std::fs::read_to_string(&base).unwrap()
        + "\n[backup]\ncustodians = [\"Carol\", \"Dave\", \"Erin\"]\nthreshold = 2\n";
    std::fs::write(&plan, text).unwrap();
    plan
}

fn run_args(
    f: &Fixture,
    plan: &Path,
    out: &Path,
    shares: &Path,
    so: &Path,
) -> Vec<std::ffi::OsString> {
    let mut a = f.run_plan_args(plan, out);
    a.extend([
        "--shares-out".into(),
        shares.as_os_str().to_owned(),
        "--so-pin-file".into(),
        so.as_os_str().to_owned(),
    ]);
    a
}

/// A token without CKM_AES_KEY_WRAP_PAD is refused before anything is
/// drawn, written or generated; a run killed after the shares are written,
/// or after the wrap key is imported, resumes with one wrap key, whose
/// shares are the ones in --shares-out.
#[test]
fn the_probe_comes_first_and_an_interrupted_backup_resumes_with_one_wrap_key() {
    if !bin_has_failpoints() {
        eprintln!("skipped: the binary has no failpoints");
        return;
    }
    for point in ["backup-shares-written", "backup-wrap-key-imported"] {
        let f = Fixture::with_pins(LABEL, PIN, SO_PIN);
        let so = secret_file(&f, "so-pin", SO_PIN);
        let plan = plan_2_of_3(&f, "c1.toml");
        let (out, shares) = (f.path().join("c1"), f.path().join("shares"));
        let args = run_args(&f, &plan, &out, &shares, &so);
        if point == "backup-shares-written" {
            let r = f.ceremony_env(
                &args,
                &[("CEREMONY_FAILPOINT_HIDE_MECHANISMS", "CKM_AES_KEY_WRAP_PAD")],
            );
            assert_eq!(r.code, Some(3), "{r}");
            assert!(
                r.first_error().unwrap().ends_with(
                    "cannot back up CA keys: it lacks CKM_AES_KEY_WRAP_PAD (AES key wrap with padding, RFC 5649)"
                ),
                "{r}"
            );
            assert!(!shares.exists());
            assert!(objects(&f, LABEL).contains(&"0 objects".to_string()));
        }
        let killed = f.ceremony_env(&args, &[("CEREMONY_FAILPOINT", point)]);
        assert!(killed.failed() || killed.signal.is_some(), "{killed}");
        f.ceremony(&args).assert_ok("the resumed run");
        let listed = objects(&f, LABEL);
        let trusted: Vec<&String> = listed
            .iter()
            .filter(|l| l.starts_with("secret-key"))
            .collect();
        assert_eq!(trusted.len(), 1, "{point}: {listed:#?}");
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("backup/backup.json")).unwrap())
                .unwrap();
        let check_value = manifest["check_value"].as_str().unwrap();
        assert!(trusted[0].contains(check_value), "{point}: {listed:#?}");
        for n in 1..=3 {
            let sf = ShareFile::parse(
                &std::fs::read_to_string(shares.join(format!("share-{n}.txt"))).unwrap(),
            )
            .unwrap();
            assert_eq!(sf.check_value, check_value, "{point}: share {n}");
        }
    }
}

/// Run by the test above as a child (with the fixture's SOFTHSM2_CONF):
/// reads each restored private key's flags, asks for its CKA_VALUE, and
/// tries to wrap it under an untrusted AES key of its own.
#[test]
fn probe_restored_keys() {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    let (Ok(label), Ok(pin)) = (
        std::env::var("BACKUP_PROBE_TOKEN"),
        std::env::var("BACKUP_PROBE_PIN"),
    ) else {
        return; // only as the child of the test above
    };
    let ctx = Pkcs11::new(SOFTHSM_MODULE).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == label)
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::new(pin.into())))
        .unwrap();
    let untrusted = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
                Attribute::Label(b"untrusted".to_vec()),
            ],
        )
        .unwrap();
    for l in LABELS {
        let key = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(l.as_bytes().to_vec()),
            ])
            .unwrap()[0];
        let value = session
            .get_attributes(key, &[AttributeType::Value])
            .unwrap();
        let refused = value.is_empty();
        let wrap = session.wrap_key(&Mechanism::AesKeyWrapPad, untrusted, key);
        let wrap_refused = matches!(
            wrap,
            Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::KeyNotWrappable,
                _
            ))
        );
        let flags = session
            .get_attributes(
                key,
                &[AttributeType::Sensitive, AttributeType::WrapWithTrusted],
            )
            .unwrap();
        let sensitive = flags.contains(&Attribute::Sensitive(true));
        let trusted_only = flags.contains(&Attribute::WrapWithTrusted(true));
        if refused && wrap_refused && sensitive && trusted_only {
            println!("{l}: value refused, untrusted wrap refused, sensitive, wrap-with-trusted");
        } else {
            println!("{l}: value {value:?} wrap {wrap:?} flags {flags:?}");
        }
    }
}
