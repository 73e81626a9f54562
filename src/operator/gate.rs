//! The token as the run's CA and leaf steps use it: a decorator over `Token`
//! that, before each irreversible operation,
//! - stops when the operator pressed Ctrl-C (so the run ends between
//!   operations, never inside one, and stays resumable);
//! - for the operations `ensure_ca` announced (generating a CA key, signing a
//!   CA certificate), asks the administrator to confirm that one operation and
//!   records the confirmation (automatic under `--yes`);
//! - shows a spinner with the elapsed time while the token generates a key.
//!
//! A stop is returned to the caller as `TokenError::Stopped` on an operation
//! that was not called; the flow then takes the real reason from
//! [`Gate::halt`] and turns it into `Cancelled` (or the audit error).
//! What it must not do: change what is generated or signed.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::interrupt;
use super::steps::Progress;
use super::ui::{Asked, Ui};
use crate::audit::{Audit, AuditError, Event};
use crate::error::CeremonyError;
use crate::keytype::KeyType;
use crate::token::pin::Pin;
use crate::token::{
    KeyPair, ObjectInfo, PinFlags, Signer, Token, TokenError, TokenIdentity, Unfinished,
};

/// An `Audit` shared by the flow and the gate (each records in turn).
pub struct SharedAudit<'a, 'j>(pub &'a RefCell<&'j mut dyn Audit>);

impl Audit for SharedAudit<'_, '_> {
    fn record(&mut self, event: Event) -> Result<(), AuditError> {
        self.0.borrow_mut().record(event)
    }

    fn record_all(&mut self, events: Vec<Event>) -> Result<(), AuditError> {
        self.0.borrow_mut().record_all(events)
    }
}

fn bump(c: &Cell<usize>) {
    c.set(c.get() + 1);
}

/// Why the gate stopped the run.
enum Halt {
    Cancelled(String),
    Audit(AuditError),
}

pub struct Gate<'a, 'j> {
    inner: &'a dyn Token,
    ui: &'a Ui,
    audit: &'a RefCell<&'j mut dyn Audit>,
    administrator: String,
    progress: &'a Progress,
    /// The operation `ensure_ca` just announced, to confirm before it runs.
    pending: RefCell<Option<String>>,
    halt: RefCell<Option<Halt>>,
    /// Test-only: leaf checkpoints passed.
    #[cfg(feature = "failpoints")]
    leaf_checkpoints: Cell<usize>,
}

impl<'a, 'j> Gate<'a, 'j> {
    pub fn new(
        inner: &'a dyn Token,
        ui: &'a Ui,
        audit: &'a RefCell<&'j mut dyn Audit>,
        administrator: &str,
        progress: &'a Progress,
    ) -> Gate<'a, 'j> {
        Gate {
            inner,
            ui,
            audit,
            administrator: administrator.to_string(),
            progress,
            pending: RefCell::new(None),
            halt: RefCell::new(None),
            #[cfg(feature = "failpoints")]
            leaf_checkpoints: Cell::new(0),
        }
    }

    /// `ensure_ca`'s announcement of its next irreversible operation: shown
    /// now, confirmed when the operation is called.
    pub fn announce(&self, what: &str) {
        self.ui.note(what);
        *self.pending.borrow_mut() = Some(what.to_string());
    }

    /// Why the gate stopped the run, if it did (taken once).
    pub fn halt(&self) -> Option<CeremonyError> {
        self.halt.borrow_mut().take().map(|h| match h {
            Halt::Cancelled(reason) => CeremonyError::Cancelled(reason),
            Halt::Audit(e) => CeremonyError::Audit(e),
        })
    }

    fn stop(&self, halt: Halt, op: &'static str) -> TokenError {
        *self.halt.borrow_mut() = Some(halt);
        TokenError::Stopped { op }
    }

    /// Ctrl-C, then the confirmation of an announced operation.
    fn pass(&self, op: &'static str) -> Result<(), TokenError> {
        if interrupt::requested() {
            let what = self.pending.borrow().clone();
            let reason = match what {
                Some(w) => format!("Ctrl-C before: {w}"),
                None => "Ctrl-C".to_string(),
            };
            return Err(self.stop(Halt::Cancelled(reason), op));
        }
        let Some(what) = self.pending.borrow_mut().take() else {
            return Ok(());
        };
        let how = match self.ui.confirm_step() {
            Asked::Yes(how) => how,
            Asked::No => {
                return Err(self.stop(
                    Halt::Cancelled(format!("the administrator declined: {what}")),
                    op,
                ));
            }
            Asked::Interrupted => {
                return Err(self.stop(
                    Halt::Cancelled(format!("Ctrl-C at the confirmation of: {what}")),
                    op,
                ));
            }
        };
        let event = Event::Acknowledged {
            who: self.administrator.clone(),
            as_role: "administrator".into(),
            what,
            how,
        };
        self.audit
            .borrow_mut()
            .record(event)
            .map_err(|e| self.stop(Halt::Audit(e), op))
    }

    /// Test-only: counts the leaf checkpoints for `failpoint::hold_at_leaf`.
    #[cfg(feature = "failpoints")]
    fn test_hold(&self) {
        let n = self.leaf_checkpoints.get() + 1;
        self.leaf_checkpoints.set(n);
        crate::failpoint::hold_at_leaf(n, interrupt::requested);
    }
}

impl Token for Gate<'_, '_> {
    fn identity(&self) -> &TokenIdentity {
        self.inner.identity()
    }

    fn module_sha256(&self) -> [u8; 32] {
        self.inner.module_sha256()
    }

    fn pin_flags(&self) -> Result<PinFlags, TokenError> {
        self.inner.pin_flags()
    }

    fn login(&self, pin: Option<&Pin>) -> Result<(), TokenError> {
        self.inner.login(pin)
    }

    /// Recovery runs before the gate is set up; through it, not gated.
    fn remove_unfinished(
        &self,
        label: &str,
        what: Unfinished,
    ) -> Result<Vec<ObjectInfo>, TokenError> {
        self.inner.remove_unfinished(label, what)
    }

    fn require_mechanisms(
        &self,
        key_types: &[KeyType],
    ) -> Result<Vec<(KeyType, String)>, TokenError> {
        self.inner.require_mechanisms(key_types)
    }

    fn objects_labelled(&self, label: &str) -> Result<Vec<ObjectInfo>, TokenError> {
        self.inner.objects_labelled(label)
    }

    fn find_key_pair(&self, label: &str, key_type: KeyType) -> Result<Option<KeyPair>, TokenError> {
        self.inner.find_key_pair(label, key_type)
    }

    fn generate_key_pair(
        &self,
        label: &str,
        key_type: KeyType,
        id: &[u8],
    ) -> Result<KeyPair, TokenError> {
        self.pass("C_GenerateKeyPair")?;
        let spinner = self.ui.spinner(&format!(
            "the token is generating {key_type} key \"{label}\""
        ));
        interrupt::set_spinner(Some(spinner.clone()));
        let started = Instant::now();
        let made = self.inner.generate_key_pair(label, key_type, id);
        interrupt::set_spinner(None);
        spinner.finish_and_clear();
        if made.is_ok() {
            bump(&self.progress.keys_generated);
            self.ui.note(&format!(
                "key generated on the token in {:.1} s",
                started.elapsed().as_secs_f64()
            ));
        }
        made
    }

    fn sign(&self, key: &KeyPair, msg: &[u8]) -> Result<Vec<u8>, TokenError> {
        let announced = self.pending.borrow().is_some();
        self.pass("C_Sign")?;
        let signed = self.inner.sign(key, msg)?;
        if announced {
            bump(&self.progress.ca_certificates_signed);
        } else {
            self.progress.leaves_signed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(signed)
    }

    /// Not a signature of the ceremony's: not gated and not counted.
    fn check_key(&self, key: &KeyPair) -> Result<(), TokenError> {
        self.inner.check_key(key)
    }

    fn random(&self, len: usize) -> Result<Vec<u8>, TokenError> {
        self.inner.random(len)
    }

    fn find_certificate(&self, label: &str) -> Result<Option<Vec<u8>>, TokenError> {
        self.inner.find_certificate(label)
    }

    fn store_certificate(
        &self,
        key: &KeyPair,
        der: &[u8],
        subject_der: &[u8],
    ) -> Result<(), TokenError> {
        // Never stopped between signing a CA certificate and storing it.
        self.inner.store_certificate(key, der, subject_der)
    }

    fn list_objects(&self) -> Result<Vec<ObjectInfo>, TokenError> {
        self.inner.list_objects()
    }

    fn find_data(&self, label: &str) -> Result<Vec<Vec<u8>>, TokenError> {
        self.inner.find_data(label)
    }

    /// Written once the log is sealed, never stopped there.
    fn put_data(&self, label: &str, value: &[u8]) -> Result<(), TokenError> {
        self.inner.put_data(label, value)
    }

    /// The inner token's signing sessions, counted (leaves only: nothing is
    /// announced there, so nothing is confirmed).
    fn signers(&self, max: usize) -> Result<Vec<Box<dyn Signer + '_>>, TokenError> {
        let count = &self.progress.leaves_signed;
        Ok(self
            .inner
            .signers(max)?
            .into_iter()
            .map(|inner| Box::new(Counted { inner, count }) as Box<dyn Signer + '_>)
            .collect())
    }

    /// Between the signatures made on those sessions: Ctrl-C stops here.
    fn checkpoint(&self) -> Result<(), TokenError> {
        #[cfg(feature = "failpoints")]
        self.test_hold();
        self.inner.checkpoint()?;
        if interrupt::requested() {
            return Err(self.stop(Halt::Cancelled("Ctrl-C".into()), "C_Sign"));
        }
        Ok(())
    }
}

/// A signing session's handle that counts its signatures.
struct Counted<'a> {
    inner: Box<dyn Signer + 'a>,
    count: &'a AtomicUsize,
}

impl Signer for Counted<'_> {
    fn sign(&mut self, key: &KeyPair, msg: &[u8]) -> Result<Vec<u8>, TokenError> {
        let signed = self.inner.sign(key, msg)?;
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::AckHow;
    use crate::token::fake::Fake;

    #[test]
    fn a_declined_confirmation_stops_before_the_token_and_says_why() {
        let token = Fake::new();
        // Not interactive and not --yes: every confirmation is declined.
        let ui = Ui::new(false, false);
        let mut events: Vec<Event> = Vec::new();
        let audit: RefCell<&mut dyn Audit> = RefCell::new(&mut events);
        let progress = Progress::default();
        let gate = Gate::new(&token, &ui, &audit, "Ada", &progress);
        gate.announce("Generate root key ecdsa-p384 \"r\" on the token");
        let e = gate
            .generate_key_pair("r", KeyType::EcdsaP384, &[1; 16])
            .expect_err("declined");
        assert!(e.to_string().contains("not called"), "{e}");
        match gate.halt() {
            Some(CeremonyError::Cancelled(r)) => {
                assert!(
                    r.starts_with("the administrator declined: Generate root key"),
                    "{r}"
                )
            }
            other => panic!("expected a cancellation, got {other:?}"),
        }
        drop(gate);
        assert!(events.is_empty(), "nothing recorded for a declined step");
        assert_eq!(token.calls("generate"), 0, "the token was not asked");
    }

    #[test]
    fn under_yes_each_announced_operation_is_acknowledged_automatically() {
        let token = Fake::new();
        let ui = Ui::new(false, true);
        let mut events: Vec<Event> = Vec::new();
        let audit: RefCell<&mut dyn Audit> = RefCell::new(&mut events);
        let progress = Progress::default();
        let gate = Gate::new(&token, &ui, &audit, "Ada", &progress);
        let key = token
            .generate_key_pair("r", KeyType::EcdsaP256, &[1])
            .expect("key");
        gate.announce("Sign the root certificate");
        assert!(!gate.sign(&key, b"tbs").expect("signed").is_empty());
        // A leaf signature (nothing announced) is not confirmed.
        assert!(!gate.sign(&key, b"leaf").expect("signed").is_empty());
        assert_eq!(token.calls("sign"), 2);
        drop(gate);
        assert_eq!(
            events,
            vec![Event::Acknowledged {
                who: "Ada".into(),
                as_role: "administrator".into(),
                what: "Sign the root certificate".into(),
                how: AckHow::Automatic,
            }]
        );
    }
}
