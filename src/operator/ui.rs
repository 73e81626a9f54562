#![allow(clippy::print_stderr)]
//! Operator output: the preflight screen, numbered steps, notes, warnings,
//! typed confirmations, spinners and the end screen, all on stderr (stdout
//! stays for machine-readable output).
//!
//! Colours only when stderr is a terminal and NO_COLOR is unset (`console`
//! decides). Every prompt runs through `interrupt::prompt`, so Ctrl-C at a
//! prompt stops the run cleanly. What it must not do: print a PIN, or decide
//! anything about the ceremony (the flow in `mod.rs` does), or print a
//! string from outside as it came: every text goes through `shown` on its
//! way out (paths, the token's label, serial, manufacturer and model, CSR
//! subjects, errors quoting input), so none can move the cursor over the
//! serial or fingerprints the witnesses read.

// The operator's screens are printed here and nowhere else.

use std::path::Path;
use std::time::Duration;

use console::style;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::interrupt::{self, Stop};
use super::steps::Progress;
use super::steps::{self, Step};
use crate::audit::event::AckHow;
use crate::error::CeremonyError;
use crate::fmt::{shown, shown_path};
use crate::issue::ca::CaState;
use crate::plan::LoadedPlan;
use crate::token::TokenIdentity;
use crate::token::pin::{self, Pin, PinError};
use crate::x509;

pub use super::screens::{Continues, Files, Preflight, SUMMARY_WORKERS, Summary};
use super::screens::{Line, cancelled_at, plural, preflight_lines, resume_command, summary_lines};

/// Attempts at a typed value (a serial, four digits) before the run stops.
const TYPING_ATTEMPTS: u32 = 3;

pub struct Ui {
    pub interactive: bool,
    pub yes: bool,
}

/// The answer to a yes/no confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    Yes(AckHow),
    No,
    Interrupted,
}

pub use crate::fmt::fingerprint;

const RULE: &str = "──────────────────────────────────────────────────────────────────────────────";

fn io_of(e: dialoguer::Error) -> std::io::Error {
    match e {
        dialoguer::Error::IO(e) => e,
    }
}

/// The bar of the leaf pipeline: certificates issued out of `total`, their
/// rate and the time left (hidden when not `interactive`).
pub fn leaf_progress(total: usize, interactive: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total as u64),
        if interactive {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "      {bar:30} {pos}/{len} certificates  {per_sec}  eta {eta}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

impl Ui {
    pub fn new(interactive: bool, yes: bool) -> Ui {
        Ui { interactive, yes }
    }

    pub fn banner(&self, p: &LoadedPlan) {
        eprintln!(
            "{} \"{}\" from plan {}",
            style("Ceremony").for_stderr().bold(),
            shown(&p.plan.name),
            shown_path(&p.path)
        );
        if self.yes {
            eprintln!("Unattended (--yes): confirmations are skipped and recorded as automatic.");
        }
    }

    /// `[n/N] text`, as `check` and the preflight screen number it.
    pub fn step(&self, p: &LoadedPlan, step: Step, text: &str) {
        eprintln!(
            "{} {}",
            style(steps::tag(p, step)).for_stderr().bold().cyan(),
            style(shown(text)).for_stderr().bold()
        );
    }

    pub fn note(&self, text: &str) {
        eprintln!("      {}", shown(text));
    }

    pub fn warn(&self, text: &str) {
        eprintln!(
            "{} {}",
            style("warning:").for_stderr().yellow().bold(),
            shown(text)
        );
    }

    /// A spinner with the elapsed time for a long token operation (hidden
    /// when stderr is not a terminal).
    pub fn spinner(&self, msg: &str) -> ProgressBar {
        let bar = if self.interactive {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("      {spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(shown(msg).into_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// A line typed at a prompt (through `interrupt::prompt`).
    fn read_line(&self, prompt: String) -> Result<String, Stop> {
        interrupt::prompt(move || {
            dialoguer::Input::<String>::new()
                .with_prompt(prompt)
                .allow_empty(true)
                .interact_text()
                .map_err(io_of)
        })
        .map(|s| s.trim().to_string())
    }

    /// Asks the operator to type `expected` (not just "y"); `--yes` skips it.
    /// An empty answer declines; a wrong one is asked again, up to three times.
    pub fn confirm_typed(&self, prompt: &str, expected: &str) -> Result<(), CeremonyError> {
        if self.yes {
            return Ok(());
        }
        if !self.interactive {
            return Err(CeremonyError::Cancelled(format!(
                "no terminal to confirm on: {}",
                shown(prompt)
            )));
        }
        for attempt in 1..=TYPING_ATTEMPTS {
            let typed = self
                .read_line(format!("{} (Enter alone stops)", shown(prompt)))
                .map_err(|s| cancelled_at(s, "the start confirmation"))?;
            if typed.is_empty() {
                return Err(CeremonyError::Cancelled(
                    "the administrator did not start the ceremony".into(),
                ));
            }
            if typed == expected {
                return Ok(());
            }
            self.warn(&format!(
                "\"{typed}\" is not \"{}\" ({attempt} of {TYPING_ATTEMPTS} attempts)",
                shown(expected)
            ));
        }
        Err(CeremonyError::Cancelled(format!(
            "\"{expected}\" was not typed in {TYPING_ATTEMPTS} attempts"
        )))
    }

    /// Asks the administrator to confirm one irreversible operation
    /// (`[y/N]`, Enter required); `--yes` confirms automatically.
    pub fn confirm_step(&self) -> Asked {
        if self.yes {
            return Asked::Yes(AckHow::Automatic);
        }
        if !self.interactive {
            return Asked::No;
        }
        // The operation itself is on the line above (the gate's note): a
        // short prompt, so it never wraps and redraws.
        let prompt = format!(
            "      {} It cannot be undone",
            style("Go ahead?").for_stderr().bold()
        );
        let answer = interrupt::prompt(move || {
            dialoguer::Confirm::new()
                .with_prompt(prompt)
                .default(false)
                .wait_for_newline(true)
                .interact()
                .map_err(io_of)
        });
        match answer {
            Ok(true) => Asked::Yes(AckHow::Typed),
            Ok(false) | Err(Stop::Failed(_)) => Asked::No,
            Err(Stop::Interrupted) => Asked::Interrupted,
        }
    }

    /// The user PIN at the no-echo prompt (Ctrl-C stops the run).
    pub fn prompt_pin(&self, token: &TokenIdentity) -> Result<Pin, CeremonyError> {
        let label = token.to_string();
        match interrupt::prompt(move || Ok(pin::prompt_pin(&label))) {
            Ok(pin) => Ok(pin?),
            Err(Stop::Interrupted) => {
                Err(CeremonyError::Cancelled("Ctrl-C at the PIN prompt".into()))
            }
            Err(Stop::Failed(e)) => Err(PinError::Prompt(e.to_string()).into()),
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
        for attempt in 1..=TYPING_ATTEMPTS {
            let typed = self
                .read_line(format!("      {}, the last four digits", shown(who)))
                .map_err(|s| cancelled_at(s, &format!("{who}'s acknowledgement")))?;
            if typed.eq_ignore_ascii_case(&last) {
                return Ok(AckHow::Typed);
            }
            self.warn(&format!(
                "\"{typed}\" are not the last four digits of the {what} SHA-256 ({attempt} of {TYPING_ATTEMPTS} attempts)"
            ));
        }
        Err(CeremonyError::Cancelled(format!(
            "{who} did not acknowledge the {what} SHA-256 in {TYPING_ATTEMPTS} attempts"
        )))
    }

    /// The preflight screen: everything the run will do, before it does it.
    pub fn preflight(&self, f: &Preflight<'_>) {
        print_lines(preflight_lines(f), false);
    }

    /// Before the witnesses type: what they compare.
    pub fn witnesses_compare(&self, what: &str) {
        self.note(&format!(
            "Witnesses: the administrator reads the {what} SHA-256 aloud; each of you compares it with"
        ));
        self.note("the screen and types its last four digits.");
    }

    /// One CA made or found: what, and its fingerprints for the witnesses.
    pub fn ca_done(&self, ca: &CaState) {
        use der::Encode;
        let what = ca.provenance("existing key and certificate (resumed)");
        let tbs = ca.cert.tbs_certificate();
        // Styled here, so printed without `note`'s escaping: every part is
        // the tool's own text or a hash, but for the subject, escaped.
        eprintln!(
            "      {} CA ready: {what}",
            style(ca.role.name()).for_stderr().bold()
        );
        self.note(&format!("  subject      {}", tbs.subject()));
        self.note(&format!(
            "  valid until  {}",
            crate::fmt::utc(ca.not_after())
        ));
        eprintln!(
            "        certificate  SHA-256 {}",
            style(fingerprint(&x509::sha256(&ca.der)))
                .for_stderr()
                .bold()
        );
        if let Ok(spki) = ca.key.spki.to_der() {
            self.note(&format!(
                "  public key   SHA-256 {}",
                fingerprint(&x509::sha256(&spki))
            ));
        }
    }

    /// The end screen: what was made, where, the values for the transcript,
    /// and what the installer and the auditor do next.
    pub fn done(&self, s: &Summary<'_>) {
        print_lines(summary_lines(s), true);
    }
}

/// Prints a screen's lines.
fn print_lines(lines: Vec<Line>, green_titles: bool) {
    eprint!("{}", screen(lines, green_titles));
}

/// A screen's lines as printed: styled, each text escaped ([`shown`]), one
/// printed line per [`Line`] whatever its text holds.
fn screen(lines: Vec<Line>, green_titles: bool) -> String {
    let mut s = String::new();
    for line in lines {
        let text = match line {
            Line::Rule => style(RULE).for_stderr().dim().to_string(),
            Line::Title(t) if green_titles => {
                style(shown(&t)).for_stderr().bold().green().to_string()
            }
            Line::Title(t) => style(shown(&t)).for_stderr().bold().to_string(),
            Line::Field(k, v) => format!(
                "{} {}",
                style(format!("{k:<14}")).for_stderr().bold(),
                shown(&v)
            ),
            Line::Text(t) => shown(&t).into_owned(),
        };
        s.push_str(&text);
        s.push('\n');
    }
    s
}

/// The one line a cancelled run ends with: where it stopped and why, what
/// this run did, and the command that resumes it.
pub fn cancelled_text(p: &LoadedPlan, out: &Path, progress: &Progress, reason: &str) -> String {
    let at = progress
        .at
        .get()
        .map_or(String::new(), |s| format!(" at {}", steps::tag(p, s)));
    let keys = progress.keys_generated.get();
    let certs = progress.ca_certificates_signed.get();
    let ready = progress.cas_ready.get();
    let leaves = progress
        .leaves_signed
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut done = Vec::new();
    if keys == 0 && certs == 0 {
        done.push("this run generated and signed nothing on the token".to_string());
    } else {
        done.push(format!(
            "this run generated {} and signed {} on the token",
            plural(keys, "key", "keys"),
            plural(certs, "CA certificate", "CA certificates")
        ));
    }
    if ready > 0 {
        done.push(format!(
            "{ready} of {} CAs are ready there",
            p.plan.cas.len()
        ));
    }
    if leaves > 0 {
        done.push(format!(
            "{} signed for the bundle are discarded (signed anew on resume)",
            plural(leaves, "leaf certificate", "leaf certificates")
        ));
    }
    format!(
        "stopped{at} ({}): {}; {} was not written. To resume, run the same command again: {}",
        shown(reason),
        done.join(", "),
        shown_path(out),
        shown(&resume_command())
    )
}

#[cfg(test)]
mod tests {
    use super::super::screens::{cont, field};
    use super::*;

    /// A token's label, a path or any value from outside cannot move the
    /// cursor, erase the line above (the serial, a fingerprint) or add a
    /// line: the screen has one line per `Line`, with nothing unsafe in it.
    #[test]
    fn outside_text_on_a_screen_is_escaped() {
        console::set_colors_enabled_stderr(false);
        let mut id = TokenIdentity::fake("\x1b[1A\x1b[2KSerial 0000", "1\n- fake line");
        id.model = "\u{202e}drowssap".into();
        let evil = id.to_string();
        let text = screen(
            vec![
                // As the token's Display gives it (escaped there already)…
                Line::Title(format!("Preflight: ceremony \"{evil}\"")),
                // …and raw, as the screens also take fields and paths.
                field("Token", id.label.clone()),
                cont(format!("plan {}", Path::new("plan\r.toml").display())),
                Line::Text(format!("{} {}", id.serial, id.model)),
            ],
            false,
        );
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && crate::fmt::is_unsafe_char(c)),
            "{text:?}"
        );
        assert!(text.contains(r"\u{1b}[1A\u{1b}[2KSerial 0000"), "{text}");
        assert!(text.contains(r"\u{202e}drowssap"), "{text}");
    }
}
