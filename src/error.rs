//! The crate's error, its exit code and hint, and its rendering for the operator:
//! the error, its causes, and a hint.

use std::error::Error as _;

use crate::audit::AuditError;
use crate::bundle::write::OutputError;
use crate::csr::policy::Refusal;
use crate::plan::{CaRole, PlanError};
use crate::token::TokenError;
use crate::token::pin::PinError;
use crate::verify::VerifyError;
use crate::x509::X509Error;

/// The crate's error, as `main` renders it.
pub use CeremonyError as Error;

#[derive(Debug, thiserror::Error)]
pub enum CeremonyError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    X509(#[from] X509Error),
    #[error("token label \"{label}\" ({}) does not belong to this plan: {what}", .role.section())]
    Foreign {
        label: String,
        role: CaRole,
        what: String,
    },
    #[error("{}: the certificate would end {end}, after its issuer ({issuer_end})", .role.section())]
    Outlives {
        role: CaRole,
        end: String,
        issuer_end: String,
    },
    #[error("{field}: certificates would end {end}, after the {} CA that issues them ({issuer_end})", .issuer.name())]
    LeafOutlives {
        field: String,
        issuer: CaRole,
        end: String,
        issuer_end: String,
    },
    #[error("{message}")]
    Usage { message: String, hint: String },
    /// A plan or usage problem found after this run had written to the token
    /// (an input changed under it, or a check that should have come first):
    /// not "nothing touched", so not exit 2.
    #[error(transparent)]
    Midway(Box<CeremonyError>),
    #[error("cancelled by the operator: {0}")]
    Cancelled(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The host could not make a leaf key (its random source, its memory).
    #[error("internal error: {0}")]
    Leaf(#[from] crate::keys::leaf::LeafError),
    /// CSRs (of nodes or users) that policy refused; nothing was signed.
    #[error("{}", refused_text(.0))]
    CsrRefused(Vec<Refusal>),
    /// A delegated CA's certificate request that policy refused; nothing was signed.
    #[error("{}", ca_refused_text(.0))]
    CaCsrRefused(Vec<Refusal>),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl CeremonyError {
    /// The exit code: 0 done, 1 cancelled, 2 bad plan or usage (nothing
    /// touched), 3 token, 4 a signed certificate failed its check, 5 internal,
    /// 6 `inspect --expiring`: a certificate expires within the window.
    pub fn exit_code(&self) -> i32 {
        match self {
            CeremonyError::Cancelled(_) => 1,
            CeremonyError::Plan(_)
            | CeremonyError::Usage { .. }
            | CeremonyError::Pin(_)
            | CeremonyError::Outlives { .. }
            | CeremonyError::LeafOutlives { .. } => 2,
            CeremonyError::Midway(e) => match e.exit_code() {
                2 => 5,
                code => code,
            },
            CeremonyError::Output(e) if e.is_usage() => 2,
            CeremonyError::Token(_) | CeremonyError::Foreign { .. } => 3,
            CeremonyError::X509(X509Error::Check { .. } | X509Error::CrlCheck { .. }) => 4,
            CeremonyError::X509(X509Error::Sign { .. }) => 3,
            CeremonyError::Output(_)
            | CeremonyError::X509(_)
            | CeremonyError::Internal(_)
            | CeremonyError::Leaf(_) => 5,
            CeremonyError::CsrRefused(_) | CeremonyError::CaCsrRefused(_) => 2,
            CeremonyError::Verify(e) => e.exit_code(),
            CeremonyError::Audit(e) => e.exit_code(),
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            CeremonyError::Plan(PlanError::Invalid { .. } | PlanError::Syntax { .. }) => {
                Some("fix the plan and run `ceremony check` again; nothing was touched".into())
            }
            CeremonyError::Plan(PlanError::Read { .. }) => Some("give the path of an existing plan.toml".into()),
            CeremonyError::Token(e) => e.hint(),
            CeremonyError::Pin(e) => e.hint(),
            CeremonyError::Output(e) => e.hint(),
            CeremonyError::X509(X509Error::Check { .. } | X509Error::CrlCheck { .. }) => {
                Some("nothing was written; report this: the token returned a signature that does not check".into())
            }
            CeremonyError::Foreign { .. } => Some(
                "inspect the token with `ceremony token list`; give the plan an unused label rather than reuse a foreign object".into(),
            ),
            CeremonyError::Outlives { .. } | CeremonyError::LeafOutlives { .. } => {
                Some("shorten the validity in the plan".into())
            }
            CeremonyError::Midway(e) => Some(format!(
                "the token keeps what this run made; {}",
                e.hint().unwrap_or_else(|| "run the same command again to resume".into())
            )),
            CeremonyError::Usage { hint, .. } => Some(hint.clone()),
            CeremonyError::Cancelled(_) => Some("run the same command again to resume; the token keeps what was made".into()),
            CeremonyError::X509(_) | CeremonyError::Internal(_) | CeremonyError::Leaf(_) => None,
            CeremonyError::CsrRefused(_) => Some(
                "have the nodes named make new CSRs (kubeadm certs generate-csr) or fix the plan; \
                 `ceremony check PLAN` lists every CSR and what is refused"
                    .into(),
            ),
            CeremonyError::CaCsrRefused(_) => Some(
                "make the CA's request again on the first control-plane node (docs/plan.md, \"Delegated CAs\") \
                 or fix the plan; nothing was touched"
                    .into(),
            ),
            CeremonyError::Verify(e) => e.hint(),
            CeremonyError::Audit(e) => e.hint(),
        }
    }
}

/// `error: …` (one line per plan problem), `  caused by: …` for each source,
/// then `hint: …` saying what to do next; a cancellation is its one line.
pub fn render(e: &Error) -> String {
    // A cancellation is not a failure: one line, what was done and how to resume.
    // Errors quote input (paths, plan values, what a token or a CSR says):
    // each line is escaped, so none can move the cursor or reorder text.
    use crate::fmt::shown;
    if let Error::Cancelled(line) = e {
        return format!("Cancelled: {}\n", shown(line));
    }
    let mut out = String::new();
    for line in e.to_string().lines() {
        out.push_str(&format!("error: {}\n", shown(line)));
    }
    let mut source = e.source();
    // Transparent variants repeat their inner error as the first source.
    let first = e.to_string();
    while let Some(s) = source {
        let text = s.to_string();
        if text != first && !first.ends_with(&text) {
            out.push_str(&format!("  caused by: {}\n", shown(&text)));
        }
        source = s.source();
    }
    if let Some(h) = e.hint() {
        out.push_str(&format!("hint: {}\n", shown(&h)));
    }
    out
}

/// The error text of `CeremonyError::CsrRefused`: a summary line, then one
/// line per refusal (`file: field: expected …, got …`).
fn refused_text(refusals: &[Refusal]) -> String {
    let mut s = format!(
        "the CSRs were refused ({} {}); nothing was signed",
        refusals.len(),
        if refusals.len() == 1 {
            "problem"
        } else {
            "problems"
        }
    );
    for r in refusals {
        s.push('\n');
        s.push_str(&r.to_string());
    }
    s
}

/// One line per refusal: a delegated CA's request is one file.
fn ca_refused_text(refusals: &[Refusal]) -> String {
    let lines: Vec<String> = refusals
        .iter()
        .map(|r| {
            format!("a delegated CA's certificate request was refused, nothing was signed: {r}")
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error quoting input (a path with an escape sequence, a newline
    /// and a bidi override) is rendered with them escaped.
    #[test]
    fn rendered_errors_escape_what_they_quote() {
        let e = CeremonyError::Output(OutputError::Exists("out\x1b[2J\u{202e}".into()));
        let text = render(&e);
        assert!(
            text.starts_with(r"error: output out\u{1b}[2J\u{202e} already exists"),
            "{text}"
        );
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && crate::fmt::is_unsafe_char(c)),
            "{text:?}"
        );
        let c = render(&CeremonyError::Cancelled("Ctrl-C at \x1b[1A".into()));
        assert_eq!(c, "Cancelled: Ctrl-C at \\u{1b}[1A\n");
    }
}
