//! The audit readers: journal frames (split, decrypt with the demo auditor's
//! identity, hash-check, chain) and the plaintext of a sealed log (records
//! and seal). Any bytes give records or the first damaged record; never a
//! panic. The identity is the demo one, public in the repository.
#![no_main]

use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

use ceremony::audit::crypto::Identities;
use ceremony::audit::{inspect, journal};
use libfuzzer_sys::fuzz_target;

const DEMO_IDENTITY: &str = include_str!("../../ceremony/plans/demo-auditor.agekey");

fn identity() -> &'static age::x25519::Identity {
    static ID: OnceLock<age::x25519::Identity> = OnceLock::new();
    ID.get_or_init(|| {
        DEMO_IDENTITY
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .and_then(|l| age::x25519::Identity::from_str(l).ok())
            .expect("the demo identity")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let (frames, damage) = journal::parse_frames(bytes);
        assert!(frames.good_len + frames.torn <= bytes.len());
        if damage.is_none() {
            assert_eq!(frames.good_len + frames.torn, bytes.len());
        }
        if let Ok(d) = journal::decode(bytes, &Identities::one(identity().clone())) {
            assert_eq!(d.lines.len() as u64, d.chain.len());
        }
    } else {
        // No root file beside this path: a seal that gets that far fails its check.
        let e = inspect::check_sealed(Path::new("/nonexistent/fuzz/audit.log"), bytes, None, None);
        let _ = inspect::render_verdict(
            Path::new("audit.log"),
            &match e.outcome {
                Ok(v) => v,
                Err(_) => return,
            },
            None,
        );
    }
});
