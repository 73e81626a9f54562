//! Operator output: numbered steps, notes, warnings and typed confirmations,
//! all on stderr (stdout stays for machine-readable output).

use std::path::Path;

use super::CeremonyError;
use super::ca::CaState;
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
