//! Rendering errors for the operator: the error, its causes, and a hint.

use std::error::Error as _;

pub use crate::ceremony::CeremonyError as Error;

/// `error: …` (one line per plan problem), `  caused by: …` for each source,
/// then `hint: …` saying what to do next; a cancellation is its one line.
pub fn render(e: &Error) -> String {
    // A cancellation is not a failure: one line, what was done and how to resume.
    if let Error::Cancelled(line) = e {
        return format!("Cancelled: {line}\n");
    }
    let mut out = String::new();
    for line in e.to_string().lines() {
        out.push_str(&format!("error: {line}\n"));
    }
    let mut source = e.source();
    // Transparent variants repeat their inner error as the first source.
    let first = e.to_string();
    while let Some(s) = source {
        let text = s.to_string();
        if text != first && !first.ends_with(&text) {
            out.push_str(&format!("  caused by: {text}\n"));
        }
        source = s.source();
    }
    if let Some(h) = e.hint() {
        out.push_str(&format!("hint: {h}\n"));
    }
    out
}
