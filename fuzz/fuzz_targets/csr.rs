//! CSR intake: parse_csr and check_csr against every kubeadm profile of a
//! fixed plan. Any bytes are accepted or refused with reasons; never a panic.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use ceremony::keytype::KeyType;
use ceremony::csr::policy as csr;
use ceremony::plan::{self, validate};
use ceremony::profile::kubeadm::{self, LeafSpec};
use libfuzzer_sys::fuzz_target;

const PLAN: &str = include_str!("../../ceremony/plans/demo.toml");

fn specs() -> &'static Vec<LeafSpec> {
    static SPECS: OnceLock<Vec<LeafSpec>> = OnceLock::new();
    SPECS.get_or_init(|| {
        let raw = plan::parse(PLAN).expect("the demo plan parses");
        let ctx = validate::Context {
            now: UNIX_EPOCH + Duration::from_secs(1_795_392_000),
            worker_names_file: None,
        };
        let valid = validate::validate(&raw, &ctx).expect("the demo plan is valid");
        let cl = valid.cluster.expect("the demo plan has a cluster");
        let mut v = kubeadm::control_plane_leaves(&cl, 0);
        v.extend(kubeadm::worker_leaves(&cl, &cl.workers[0]));
        v
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = csr::parse_csr(data);
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let specs = specs();
    let spec = &specs[usize::from(pick) % specs.len()];
    let allowed = [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa2048];
    let check = csr::check_csr("fuzz.csr", bytes, spec, &allowed);
    let _ = check.accepted();
    let _ = ceremony::keys::public::private_key_file(bytes);
    let _ = ceremony::keys::public::public_key_file(bytes);
    let _ = csr::partial_client_key(bytes);
});
