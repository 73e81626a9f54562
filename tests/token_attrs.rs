//! The CA keys cannot leave the token: after a real ceremony on SoftHSM, each
//! CA private key refuses to reveal CKA_VALUE / CKA_PRIVATE_EXPONENT
//! (CKR_ATTRIBUTE_SENSITIVE), cannot be made extractable, copied out or
//! wrapped, and reports SENSITIVE, !EXTRACTABLE, ALWAYS_SENSITIVE,
//! NEVER_EXTRACTABLE, PRIVATE and TOKEN. Checked twice, independently of the
//! binary: with cryptoki in-process and with OpenSC's pkcs11-tool.
//!
//! PKCS#11 state and SOFTHSM2_CONF are process-global, so all in-process
//! cryptoki work is one #[test] (`cryptoki_checks`), and it runs in a child
//! process of this test binary that alone gets the test's SOFTHSM2_CONF: no
//! module is ever loaded, and no environment variable set, in the harness
//! process that runs the other tests.

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

use std::path::Path;

use common::{CHILD_TIMEOUT, Fixture, Keys, LABELS};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};

/// Root P-384, an RSA intermediate (for CKA_PRIVATE_EXPONENT), the rest P-256.
const KEYS: Keys = ["ecdsa-p384", "rsa-2048", "ecdsa-p256", "ecdsa-p256"];
const CHILD_TEST: &str = "cryptoki_checks";
/// Set only in the child's environment: the token's serial, PIN file and the CA keys.
const ENV_SERIAL: &str = "CEREMONY_TEST_TOKEN_SERIAL";
const ENV_PIN_FILE: &str = "CEREMONY_TEST_PIN_FILE";
const ENV_KEYS: &str = "CEREMONY_TEST_CA_KEYS";

#[test]
fn ca_keys_are_sensitive_and_never_extractable() {
    let f = Fixture::new("t-token-attrs");
    let plan = f.write_ca_plan("plan.toml", KEYS);
    f.run_plan(&plan, &f.work("out")).assert_ok("ceremony run");

    // 1. cryptoki, in a child process of this test binary.
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = f.command(&exe);
    cmd.args([
        "--exact",
        CHILD_TEST,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ENV_SERIAL, &f.token().serial)
    .env(ENV_PIN_FILE, f.pin_file())
    .env(
        ENV_KEYS,
        LABELS
            .iter()
            .zip(KEYS)
            .map(|(l, k)| format!("{l}={k}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    let out = f.run(cmd, CHILD_TIMEOUT);
    out.assert_ok("the cryptoki checks in a child process");
    assert!(
        out.stdout.contains("test result: ok. 1 passed"),
        "the child did not run {CHILD_TEST}:\n{out}"
    );
    assert!(
        out.stdout.contains("checked 4 CA keys"),
        "the child skipped its checks:\n{out}"
    );

    // 2. pkcs11-tool, an independent PKCS#11 client.
    let out = f.pkcs11_tool_login(&["--list-objects", "--type", "privkey"]);
    out.assert_ok("pkcs11-tool --list-objects --type privkey");
    let blocks: Vec<&str> = out.stdout.split("Private Key Object;").skip(1).collect();
    assert_eq!(blocks.len(), 4, "four private keys:\n{out}");
    for (label, key) in LABELS.iter().zip(KEYS) {
        let block = blocks
            .iter()
            .find(|b| {
                b.lines()
                    .any(|l| l.trim() == format!("label:      {label}"))
            })
            .unwrap_or_else(|| panic!("pkcs11-tool lists no private key \"{label}\":\n{out}"));
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(str::trim)
        };
        assert_eq!(
            field("Access:"),
            Some("sensitive, always sensitive, never extractable, local"),
            "{label}:\n{block}"
        );
        assert_eq!(
            field("Usage:"),
            Some("sign"),
            "{label}: signing only:\n{block}"
        );
        let kind = if key.starts_with("rsa-") {
            " RSA"
        } else {
            " EC"
        };
        assert!(block.starts_with(kind), "{label}: key type {key}:\n{block}");
    }
}

/// Refuses to load a module for anything but a SoftHSM config of a test's own temp dir.
fn guarded_conf() -> Option<String> {
    let conf = std::env::var("SOFTHSM2_CONF").ok()?;
    let conf_path = Path::new(&conf);
    let dir = conf_path.parent().expect("conf in a dir");
    let tmp = std::env::temp_dir().canonicalize().expect("temp dir");
    assert!(
        dir.starts_with(&tmp)
            && dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("ceremony-test-")),
        "SOFTHSM2_CONF {conf} is not in a test's temp dir"
    );
    let text = std::fs::read_to_string(conf_path).expect("read SOFTHSM2_CONF");
    let tokendir = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("directories.tokendir")
                .and_then(|r| r.trim().strip_prefix('='))
        })
        .map(str::trim)
        .expect("a tokendir");
    assert!(
        Path::new(tokendir).starts_with(dir) && !tokendir.contains(".."),
        "token directory {tokendir} is outside {}",
        dir.display()
    );
    Some(conf)
}

fn flags(session: &Session, key: ObjectHandle) -> Vec<Attribute> {
    session
        .get_attributes(
            key,
            &[
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Local,
                AttributeType::Sign,
                AttributeType::Decrypt,
                AttributeType::Unwrap,
                AttributeType::Derive,
            ],
        )
        .expect("C_GetAttributeValue of the flags")
}

fn bool_of(attrs: &[Attribute], t: AttributeType) -> Option<bool> {
    attrs
        .iter()
        .find(|a| a.attribute_type() == t)
        .and_then(|a| match a {
            Attribute::Token(v)
            | Attribute::Private(v)
            | Attribute::Sensitive(v)
            | Attribute::Extractable(v)
            | Attribute::AlwaysSensitive(v)
            | Attribute::NeverExtractable(v)
            | Attribute::Local(v)
            | Attribute::Sign(v)
            | Attribute::Decrypt(v)
            | Attribute::Unwrap(v)
            | Attribute::Derive(v) => Some(*v),
            _ => None,
        })
}

/// The token refused the operation as a matter of policy (not, say, because
/// the session was read-only), and says so with one of the codes PKCS#11
/// gives for it (SoftHSM: CKR_ATTRIBUTE_READ_ONLY).
fn refused(r: Result<impl std::fmt::Debug, CkError>, what: &str, label: &str) {
    match r {
        Err(CkError::Pkcs11(
            rv @ (RvError::AttributeReadOnly
            | RvError::AttributeValueInvalid
            | RvError::ActionProhibited),
            _,
        )) => println!("{label}: {what} -> {rv:?}"),
        other => panic!("{label}: {what} was not refused by the token: {other:?}"),
    }
}

/// All in-process PKCS#11 work of this file. Run only by
/// `ca_keys_are_sensitive_and_never_extractable`, in its own process.
#[test]
#[ignore = "runs in a child process started by ca_keys_are_sensitive_and_never_extractable"]
fn cryptoki_checks() {
    let (Ok(serial), Ok(pin_file), Ok(keys)) = (
        std::env::var(ENV_SERIAL),
        std::env::var(ENV_PIN_FILE),
        std::env::var(ENV_KEYS),
    ) else {
        println!("not started by ca_keys_are_sensitive_and_never_extractable: nothing to check");
        return;
    };
    guarded_conf().expect("SOFTHSM2_CONF is set for the child");
    let pin = std::fs::read_to_string(&pin_file).expect("read the PIN file");

    let ctx = Pkcs11::new(common::SOFTHSM_MODULE).expect("load SoftHSM");
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    let slots: Vec<_> = ctx
        .get_slots_with_token()
        .expect("C_GetSlotList")
        .into_iter()
        .filter(|s| {
            ctx.get_token_info(*s)
                .is_ok_and(|i| i.serial_number().trim_end() == serial)
        })
        .collect();
    assert_eq!(slots.len(), 1, "exactly one token with serial {serial}");
    let ro = ctx.open_ro_session(slots[0]).expect("C_OpenSession");

    // CKA_PRIVATE: before login no private key is even visible.
    let before = ro
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .expect("C_FindObjects");
    assert!(
        before.is_empty(),
        "private keys are visible without login: {before:?}"
    );
    ro.login(
        UserType::User,
        Some(&cryptoki::types::AuthPin::new(Box::from(pin.trim_end()))),
    )
    .expect("C_Login");
    let rw = ctx.open_rw_session(slots[0]).expect("C_OpenSession (rw)");

    // A session AES key to try C_WrapKey with (a session object: gone with the session).
    let wrapping = rw
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(false),
                Attribute::Wrap(true),
            ],
        )
        .expect("a session AES key");

    let mut checked = 0;
    for spec in keys.split(',') {
        let (label, key_type) = spec.split_once('=').expect("label=key");
        let found = ro
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .expect("C_FindObjects");
        assert_eq!(found.len(), 1, "{label}: exactly one private key");
        let key = found[0];

        // The secret parts: CKR_ATTRIBUTE_SENSITIVE, attribute by attribute.
        let secret: &[AttributeType] = if key_type.starts_with("rsa-") {
            &[
                AttributeType::PrivateExponent,
                AttributeType::Prime1,
                AttributeType::Prime2,
                AttributeType::Exponent1,
                AttributeType::Exponent2,
                AttributeType::Coefficient,
            ]
        } else {
            &[AttributeType::Value]
        };
        let info = ro
            .get_attribute_info(key, secret)
            .expect("C_GetAttributeValue");
        for (t, i) in secret.iter().zip(&info) {
            assert!(
                matches!(i, AttributeInfo::Sensitive),
                "{label}: {t:?} must be refused with CKR_ATTRIBUTE_SENSITIVE, got {i:?}"
            );
        }
        // cryptoki's get_attributes drops what the token refuses: nothing comes back.
        let got = ro.get_attributes(key, secret).expect("C_GetAttributeValue");
        assert!(
            got.is_empty(),
            "{label}: secret attributes were returned: {} of them",
            got.len()
        );
        if let Some(bits) = key_type
            .strip_prefix("rsa-")
            .and_then(|b| b.parse::<usize>().ok())
        {
            // The public half is readable, so the check above is not vacuous.
            let info = ro
                .get_attribute_info(key, &[AttributeType::Modulus])
                .expect("C_GetAttributeValue");
            assert!(
                matches!(info[..], [AttributeInfo::Available(n)] if n == bits / 8),
                "{label}: CKA_MODULUS {info:?}"
            );
        }

        let want = [
            (AttributeType::Token, true),
            (AttributeType::Private, true),
            (AttributeType::Sensitive, true),
            (AttributeType::Extractable, false),
            (AttributeType::AlwaysSensitive, true),
            (AttributeType::NeverExtractable, true),
            (AttributeType::Local, true),
            (AttributeType::Sign, true),
            (AttributeType::Decrypt, false),
            (AttributeType::Unwrap, false),
            (AttributeType::Derive, false),
        ];
        let attrs = flags(&ro, key);
        for (t, v) in want {
            assert_eq!(bool_of(&attrs, t), Some(v), "{label}: {t:?}");
        }

        // Nothing turns the key back into something that can leave the token.
        refused(
            rw.update_attributes(key, &[Attribute::Extractable(true)]),
            "setting CKA_EXTRACTABLE",
            label,
        );
        refused(
            rw.update_attributes(key, &[Attribute::Sensitive(false)]),
            "clearing CKA_SENSITIVE",
            label,
        );
        match rw.copy_object(
            key,
            &[Attribute::Token(false), Attribute::Extractable(true)],
        ) {
            Ok(copy) => {
                let _ = rw.destroy_object(copy);
                panic!("{label}: C_CopyObject made an extractable copy");
            }
            r => refused(r, "C_CopyObject with CKA_EXTRACTABLE", label),
        }
        match rw.wrap_key(&Mechanism::AesKeyWrapPad, wrapping, key) {
            Err(CkError::Pkcs11(RvError::KeyUnextractable, _)) => {
                println!("{label}: C_WrapKey -> KeyUnextractable")
            }
            other => {
                panic!("{label}: C_WrapKey was not refused with CKR_KEY_UNEXTRACTABLE: {other:?}")
            }
        }
        assert_eq!(
            flags(&ro, key),
            attrs,
            "{label}: the attempts changed the key's flags"
        );
        checked += 1;
    }
    rw.destroy_object(wrapping)
        .expect("destroy the session AES key");
    println!("checked {checked} CA keys");
    assert_eq!(checked, 4);
}
