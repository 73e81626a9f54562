//! The plan parser and validator: any text either parses and validates, or
//! is refused with a (key path, message); never a panic or a hang.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use ceremony::plan::{self, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(raw) = plan::parse(text) else {
        return;
    };
    // A fixed clock (2026-11-23): validation is pure and reproducible.
    let ctx = validate::Context {
        now: UNIX_EPOCH + Duration::from_secs(1_795_392_000),
        worker_names_file: Some("worker-a\nworker-b\n"),
    };
    if let Ok(valid) = validate::validate(&raw, &ctx) {
        // What a valid plan promises the rest of the tool.
        assert!(!valid.cas.is_empty());
        if let Some(cl) = &valid.cluster {
            for i in 0..cl.control_plane.len() {
                let _ = ceremony::profile::kubeadm::control_plane_leaves(cl, i);
            }
            for w in &cl.workers {
                let _ = ceremony::profile::kubeadm::worker_leaves(cl, w);
            }
        }
    }
});
