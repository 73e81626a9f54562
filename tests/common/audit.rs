//! The audit record as the tests read it: the demo auditor's identity,
//! stock `age` (an independent reader), and the records' JSON.

use std::ffi::OsStr;
use std::path::Path;

use super::{AUDIT_RECIPIENT, Fixture, Output, random_hex, write_file};

/// The demo auditor's age identity (its recipient is `AUDIT_RECIPIENT`).
pub const AUDITOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/ceremony/plans/demo-auditor.agekey"
);
/// The demo plan: the artifact `scripts/demo` runs.
pub const DEMO_PLAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ceremony/plans/demo.toml");

/// Parses the JSON lines of a decrypted audit log, naming any that is not JSON.
pub fn json_lines<S: AsRef<str>>(lines: &[S]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| {
            let l = l.as_ref();
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
        })
        .collect()
}

/// An audit record's event kind ("?" when it has none).
pub fn kind(r: &serde_json::Value) -> &str {
    r["event"]["kind"].as_str().unwrap_or("?")
}

impl Fixture {
    /// `ceremony audit verify FILE --identity <demo auditor> [extra]`.
    #[track_caller]
    pub fn audit_verify(&self, file: &Path, extra: &[&str]) -> Output {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("audit"),
            OsStr::new("verify"),
            file.as_os_str(),
            OsStr::new("--identity"),
            OsStr::new(AUDITOR),
        ];
        args.extend(extra.iter().map(OsStr::new));
        self.ceremony(&args)
    }

    /// Stock `age -d -i <demo auditor> FILE`: the plaintext.
    #[track_caller]
    pub fn age_decrypt(&self, file: &Path) -> String {
        let o = self.tool(
            "age",
            &[
                OsStr::new("-d"),
                OsStr::new("-i"),
                OsStr::new(AUDITOR),
                file.as_os_str(),
            ],
        );
        assert_eq!(o.code, Some(0), "age -d {}: {o}", file.display());
        o.stdout
    }

    /// Stock `age -r <demo recipient>` of `plaintext` into `file` (the
    /// plaintext goes through a file: children never read stdin).
    #[track_caller]
    pub fn age_encrypt(&self, plaintext: &[u8], file: &Path) {
        let input = self.root.join(format!("age-input-{}", random_hex(4)));
        write_file(&input, plaintext, 0o600);
        let o = self.tool(
            "age",
            &[
                OsStr::new("-r"),
                OsStr::new(AUDIT_RECIPIENT),
                OsStr::new("-o"),
                file.as_os_str(),
                input.as_os_str(),
            ],
        );
        std::fs::remove_file(&input).expect("remove the age input");
        assert_eq!(o.code, Some(0), "age -r: {o}");
    }
}
