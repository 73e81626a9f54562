//! Property tests (proptest) of the parsers that read operator and on-disk
//! input — the same ones the cargo-fuzz targets in fuzz/ run for millions of
//! executions: the plan (parse + validate), lifetimes, the PKCS#11 URI, CSR
//! intake and the audit journal/log readers. Each property is "never panics"
//! on arbitrary or mutated input, plus a round trip where one exists.
//! Pure functions only: no token, no files.

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

use std::time::{Duration, UNIX_EPOCH};

use ceremony::audit::{inspect, journal, record};
use ceremony::csr::policy as csr;
use ceremony::keytype::KeyType;
use ceremony::plan::{self, duration, validate};
use ceremony::profile::kubeadm;
use ceremony::token::uri::TokenUri;
use proptest::prelude::*;

const BASE_PLAN: &str = include_str!("bad-input/base-plan.toml");
const DEMO_PLAN: &str = include_str!("../ceremony/plans/demo.toml");
const CSR: &[u8] = include_bytes!("fixtures/kubeadm/generate-csr/etc/kubernetes/pki/apiserver.csr");

fn base_plan() -> String {
    BASE_PLAN
        .replace("@TOKEN@", "prop-token")
        .replace("@MODULE@", "/usr/lib/softhsm/libsofthsm2.so")
}

fn ctx() -> validate::Context<'static> {
    validate::Context {
        // 2026-11-23: a fixed clock, so "in the past" is reproducible.
        now: UNIX_EPOCH + Duration::from_secs(1_795_392_000),
        worker_names_file: None,
    }
}

/// Parses and validates; panics only if the code under test does.
fn parse_and_validate(text: &str) -> Option<plan::ValidPlan> {
    let raw = plan::parse(text).ok()?;
    validate::validate(&raw, &ctx()).ok()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // Failures are reported with the minimal input; no files left behind.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One line-level edit of a plan: delete, duplicate, or replace a value.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Duplicate(usize),
    Value(usize, String),
    Insert(usize, String),
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len();
    match edit {
        Edit::Delete(i) => {
            lines.remove(i % n);
        }
        Edit::Duplicate(i) => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        Edit::Value(i, v) => {
            let l = &mut lines[i % n];
            if let Some((k, _)) = l.split_once(" = ") {
                *l = format!("{k} = {v}");
            }
        }
        Edit::Insert(i, l) => lines.insert(i % n, l.clone()),
    }
    lines.join("\n") + "\n"
}

fn edit() -> impl Strategy<Value = Edit> {
    let value = prop_oneof![
        "\"[a-z0-9.:/ _*-]{0,40}\"".prop_map(|s| s),
        (0i64..100_000).prop_map(|n| n.to_string()),
        Just("true".to_string()),
        Just("[]".to_string()),
        Just("2020-01-01".to_string()),
        Just("\"0d\"".to_string()),
        Just("\"999y\"".to_string()),
        Just("\"10.0.0.300\"".to_string()),
        Just("\"age1\"".to_string()),
        "\"\\\\PC{0,20}\"".prop_map(|s| s),
    ];
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Duplicate),
        (any::<usize>(), value).prop_map(|(i, v)| Edit::Value(i, v)),
        (any::<usize>(), "\\PC{0,60}").prop_map(|(i, l)| Edit::Insert(i, l)),
    ]
}

#[test]
fn the_base_plans_are_valid() {
    assert!(parse_and_validate(&base_plan()).is_some());
    assert!(parse_and_validate(DEMO_PLAN).is_some());
}

proptest! {
    #![proptest_config(config())]

    /// Any text: parsed and validated, or refused; never a panic.
    #[test]
    fn plan_never_panics_on_any_text(text in "\\PC{0,400}") {
        let _ = parse_and_validate(&text);
    }

    /// The base plan with up to four line edits: never a panic; a plan that
    /// still validates gives leaf profiles for every node.
    #[test]
    fn plan_never_panics_on_edits(edits in prop::collection::vec(edit(), 1..4)) {
        let mut text = base_plan();
        for e in &edits {
            text = apply(&text, e);
        }
        if let Some(valid) = parse_and_validate(&text)
            && let Some(cl) = &valid.cluster
        {
            for i in 0..cl.control_plane.len() {
                prop_assert!(!kubeadm::control_plane_leaves(cl, i).is_empty());
            }
            for w in &cl.workers {
                prop_assert!(!kubeadm::worker_leaves(cl, w).is_empty());
            }
        }
        // Validation is a function of the text and the clock.
        prop_assert_eq!(
            parse_and_validate(&text).map(|v| format!("{v:?}")),
            parse_and_validate(&text).map(|v| format!("{v:?}"))
        );
    }

    /// Lifetimes: what parses formats back to the same length; nothing panics.
    #[test]
    fn lifetime_round_trip(n in 1u64..200, unit in prop::sample::select(vec!["y", "d", "h"])) {
        let s = format!("{n}{unit}");
        let d = duration::parse_lifetime(&s).expect("a lifetime in range");
        let back = duration::parse_lifetime(&duration::format_lifetime(d)).expect("formatted parses");
        prop_assert_eq!(back, d);
    }

    #[test]
    fn lifetime_never_panics(s in "\\PC{0,24}") {
        if let Ok(d) = duration::parse_lifetime(&s) {
            prop_assert!(d > Duration::ZERO && d <= Duration::from_secs(200 * 365 * 86400));
        }
    }

    /// URIs: a TokenUri prints to a URI that parses back to it.
    #[test]
    fn uri_round_trip(
        token in prop::option::of("\\PC{0,20}"),
        serial in prop::option::of("[0-9a-f]{0,16}"),
        manufacturer in prop::option::of("\\PC{0,20}"),
        model in prop::option::of("[ -~]{0,20}"),
    ) {
        prop_assume!(token.is_some() || serial.is_some());
        let u = TokenUri { token, serial, manufacturer, model };
        let printed = u.to_string();
        prop_assert_eq!(TokenUri::parse(&printed), Ok(u), "{}", printed);
    }

    /// Any string: parsed or refused, never a panic; a parsed URI round-trips.
    #[test]
    fn uri_never_panics(s in "(pkcs11:)?[a-z=;?&%0-9A-F -]{0,60}") {
        if let Ok(u) = TokenUri::parse(&s) {
            prop_assert_eq!(TokenUri::parse(&u.to_string()), Ok(u));
        }
    }

    /// A PIN put in a URI by mistake never survives redaction.
    #[test]
    fn uri_redaction_hides_the_pin(
        prefix in "pkcs11:token=[a-z]{1,8}",
        pin in "[A-Za-z0-9]{6,16}",
        more in prop::option::of("&module-name=[a-z]{1,8}"),
    ) {
        let uri = format!("{prefix}?pin-value={pin}{}", more.unwrap_or_default());
        let shown = TokenUri::redact_pin(&uri);
        prop_assert!(!shown.contains(&pin), "{}", shown);
        prop_assert!(shown.contains("pin-value=(redacted)"));
        prop_assert!(TokenUri::parse(&uri).is_err(), "a PIN in the URI is refused");
    }

    /// CSR intake: any bytes, a real kubeadm CSR with bytes changed or cut,
    /// and random PEM bodies are accepted or refused; never a panic. A
    /// changed CSR that is accepted still has the original's key.
    #[test]
    fn csr_never_panics(
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
        junk in prop::collection::vec(any::<u8>(), 0..300),
        pem_body in "[A-Za-z0-9+/=\n]{0,200}",
    ) {
        let _ = csr::parse_csr(&junk);
        let pem = format!("-----BEGIN CERTIFICATE REQUEST-----\n{pem_body}\n-----END CERTIFICATE REQUEST-----\n");
        let _ = csr::parse_csr(pem.as_bytes());
        let mut changed = CSR.to_vec();
        for (i, b) in &flips {
            let at = i % changed.len();
            changed[at] ^= b | 1;
        }
        let cut_at = cut % (changed.len() + 1);
        for bytes in [&changed[..], &changed[..cut_at]] {
            let _ = csr::parse_csr(bytes);
            let _ = ceremony::keys::public::private_key_file(bytes);
            let _ = ceremony::keys::public::public_key_file(bytes);
        }
        let valid = parse_and_validate(DEMO_PLAN).expect("the demo plan");
        let cl = valid.cluster.as_ref().expect("a cluster");
        let specs = kubeadm::control_plane_leaves(cl, 0);
        let spec = specs.iter().find(|s| s.path == "pki/apiserver").expect("apiserver");
        let allowed = [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa2048];
        let original = csr::check_csr("apiserver.csr", CSR, spec, &allowed);
        let check = csr::check_csr("apiserver.csr", &changed, spec, &allowed);
        if let (Some(a), Some(o)) = (check.accepted(), original.accepted()) {
            prop_assert_eq!(a.spki, o.spki);
        }
    }

    /// Journal frames: frames written with the journal's header format split
    /// back exactly; cut anywhere, the tail is torn, never damage.
    #[test]
    fn journal_frames_round_trip_and_cuts(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..6),
        cut in any::<usize>(),
    ) {
        let mut bytes = Vec::new();
        let mut ends = vec![0];
        for (i, b) in bodies.iter().enumerate() {
            let hash = [i as u8; 32];
            bytes.extend_from_slice(format!("{} {} {}\n", i + 1, hex::encode(hash), b.len()).as_bytes());
            bytes.extend_from_slice(b);
            ends.push(bytes.len());
        }
        let (frames, damage) = journal::parse_frames(&bytes);
        prop_assert!(damage.is_none());
        prop_assert_eq!(frames.frames.len(), bodies.len());
        for (f, b) in frames.frames.iter().zip(&bodies) {
            prop_assert_eq!(f.ciphertext, &b[..]);
        }
        prop_assert_eq!((frames.good_len, frames.torn), (bytes.len(), 0));

        let at = cut % (bytes.len() + 1);
        let (frames, damage) = journal::parse_frames(&bytes[..at]);
        prop_assert!(damage.is_none(), "a cut at {} is a torn frame, not damage", at);
        let whole = ends.iter().filter(|e| **e <= at).count() - 1;
        prop_assert_eq!(frames.frames.len(), whole);
        prop_assert_eq!(frames.good_len + frames.torn, at);
    }

    /// Any bytes as a records file or as a sealed log's plaintext: records
    /// up to the first damage, never a panic.
    #[test]
    fn audit_readers_never_panic(junk in prop::collection::vec(any::<u8>(), 0..400), text in "\\PC{0,300}") {
        for bytes in [&junk[..], text.as_bytes()] {
            let (frames, _) = journal::parse_frames(bytes);
            prop_assert!(frames.good_len + frames.torn <= bytes.len());
            let e = inspect::check_sealed(std::path::Path::new("/nonexistent/audit.log"), bytes, None, None);
            prop_assert!(e.outcome.is_err(), "junk is never a sealed, intact log");
        }
    }

    /// A valid chain of records, with one record changed, dropped or swapped:
    /// the chain check names a broken record instead of accepting it.
    #[test]
    fn chain_detects_changes(n in 2usize..8, pick in any::<usize>(), how in 0u8..3) {
        let mut lines = Vec::new();
        let (mut seq, mut prev) = (0u64, [0u8; 32]);
        for i in 0..n {
            let event = ceremony::audit::Event::LoggedIn { source: format!("property {i}") };
            let (line, hash) = record::next_record(seq, &prev, "2026-11-23T00:00:00Z".into(), event)
                .expect("a record");
            lines.push(line);
            seq += 1;
            prev = hash;
        }
        let mut chain = record::Chain::new();
        for l in &lines {
            prop_assert!(chain.push(l.as_bytes()).is_ok());
        }
        let i = pick % n;
        match how {
            0 => lines[i] = lines[i].replace("property", "Property"),
            1 => { lines.remove(i); }
            _ => lines.swap(i, (i + 1) % n),
        }
        let mut chain = record::Chain::new();
        let broken = lines.iter().any(|l| chain.push(l.as_bytes()).is_err());
        // The last record is covered by the seal, not by a successor: a
        // change to it or its removal is the seal check's to find.
        let last_only = how != 2 && i == n - 1;
        prop_assert!(broken || last_only, "change {} at {} not detected", how, i);
    }
}
