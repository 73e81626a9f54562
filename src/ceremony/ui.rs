//! Operator output: numbered steps, notes, warnings and typed confirmations,
//! all on stderr (stdout stays for machine-readable output).

use std::path::Path;

use super::CeremonyError;
use super::ca::CaState;
use crate::audit::event::AckHow;
use crate::plan::LoadedPlan;
use crate::x509;

pub struct Ui {
    pub interactive: bool,
    pub yes: bool,
    step: usize,
    total: usize,
}

/// Groups of four hex digits, easy to read aloud and compare on paper.
pub fn fingerprint(bytes: &[u8]) -> String {
    let hex = hex::encode_upper(bytes);
    hex.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or("????"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Ui {
    pub fn new(interactive: bool, yes: bool, total: usize) -> Ui {
        Ui {
            interactive,
            yes,
            step: 0,
            total,
        }
    }

    pub fn banner(&self, p: &LoadedPlan) {
        eprintln!(
            "Ceremony \"{}\" — plan {} (SHA-256 {})",
            p.plan.name,
            p.path.display(),
            hex::encode(p.sha256)
        );
        eprintln!("Administrator: {}; witnesses: {}", p.plan.administrator, {
            if p.plan.witnesses.is_empty() {
                "none".to_string()
            } else {
                p.plan.witnesses.join(", ")
            }
        });
        if self.yes {
            eprintln!("Unattended (--yes): confirmations are skipped.");
        }
    }

    pub fn step(&mut self, text: &str) {
        self.step += 1;
        eprintln!("[{}/{}] {text}", self.step, self.total.max(self.step));
    }

    pub fn note(&self, text: &str) {
        eprintln!("      {text}");
    }

    pub fn warn(&self, text: &str) {
        eprintln!("warning: {text}");
    }

    /// Asks the operator to type `expected` (not just "y"); `--yes` skips it.
    pub fn confirm_typed(&self, prompt: &str, expected: &str) -> Result<(), CeremonyError> {
        if self.yes {
            return Ok(());
        }
        let typed: String = dialoguer::Input::new()
            .with_prompt(prompt)
            .allow_empty(true)
            .interact_text()
            .map_err(|e| CeremonyError::Cancelled(format!("no confirmation ({e})")))?;
        if typed.trim() == expected {
            Ok(())
        } else {
            Err(CeremonyError::Cancelled(format!(
                "typed \"{}\", not \"{expected}\"",
                typed.trim()
            )))
        }
    }

    /// How a confirmation was given: typed, or automatic under `--yes`.
    pub fn how(&self) -> AckHow {
        if self.yes {
            AckHow::Automatic
        } else {
            AckHow::Typed
        }
    }

    /// `who` acknowledges a fingerprint shown above by typing its last group
    /// of four hex digits (proof they read it, not just pressed Enter);
    /// `--yes` acknowledges automatically, and the audit log says so.
    pub fn acknowledge_fingerprint(
        &self,
        who: &str,
        what: &str,
        sha256: &[u8],
    ) -> Result<AckHow, CeremonyError> {
        if self.yes {
            return Ok(AckHow::Automatic);
        }
        let fp = fingerprint(sha256);
        let last = fp.rsplit(' ').next().unwrap_or_default().to_string();
        let typed: String = dialoguer::Input::new()
            .with_prompt(format!(
                "{who}: compare the {what} SHA-256 above with the screen; type its last four digits to acknowledge it"
            ))
            .allow_empty(true)
            .interact_text()
            .map_err(|e| CeremonyError::Cancelled(format!("no acknowledgement ({e})")))?;
        if typed.trim().eq_ignore_ascii_case(&last) {
            Ok(AckHow::Typed)
        } else {
            Err(CeremonyError::Cancelled(format!(
                "{who} typed \"{}\", not the last four digits of the {what} SHA-256 ({last})",
                typed.trim()
            )))
        }
    }

    /// The sealed log's final hash, for the witnesses to compare with transcript.md.
    pub fn sealed(&self, records: u64, final_hash: &[u8; 32]) {
        eprintln!(
            "Audit log sealed by the root key: {records} records in audit.log.age, final hash"
        );
        eprintln!("  {}", fingerprint(final_hash));
        eprintln!(
            "The same hash is in transcript.md, for the administrator and witnesses to sign."
        );
    }

    pub fn ca_done(&self, ca: &CaState) {
        let what = match (ca.generated_key, ca.signed_cert) {
            (true, _) => "new key, new certificate",
            (false, true) => "existing key, new certificate",
            (false, false) => "existing key and certificate (resumed)",
        };
        self.note(&format!("{what}: {}", ca.cert.tbs_certificate().subject()));
        self.note(&format!(
            "certificate SHA-256 {}",
            fingerprint(&x509::sha256(&ca.der))
        ));
        self.note(&format!("expires {}", x509::fmt_time(ca.not_after())));
    }

    pub fn done(&self, out: &Path, cas: &[CaState]) {
        eprintln!();
        eprintln!("Done. Outputs in {}:", out.display());
        for ca in cas {
            eprintln!(
                "  {:<12} {}",
                ca.role.name(),
                fingerprint(&x509::sha256(&ca.der))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprints_group_by_four() {
        assert_eq!(
            super::fingerprint(&[0xab, 0xcd, 0xef, 0x01, 0x23]),
            "ABCD EF01 23"
        );
    }
}
