//! The token's extra sessions, lent to the signing threads a chunk of
//! signatures at a time, and how many of them may sign at once.
//!
//! How many sessions sign at once is the token's to decide, measured as the
//! run goes: a token whose signature takes longer than the host's own work
//! for a leaf (a hardware HSM, or RSA in a software token) is the bottleneck,
//! and gets every session, in case it signs on several at once; a token whose
//! signature is cheaper than that (P-256 in SoftHSM, a library on the same
//! cores) cannot be kept waiting by one session, and two signing at once only
//! make it contend with itself (SoftHSM with OpenSSL 3: a fifth more CPU per
//! signature on two sessions, measured in docs/performance.md), so one
//! signs at a time.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::token::Signer;

/// Sessions that may sign at once, given what a signature costs the token
/// and what a leaf costs the host (both as measured so far; None before the
/// first measurement), out of `sessions`.
pub fn concurrency(
    token_per_signature: Option<Duration>,
    host_per_leaf: Option<Duration>,
    sessions: usize,
) -> usize {
    match (token_per_signature, host_per_leaf) {
        (Some(token), Some(host)) if token < host => sessions.min(1),
        _ => sessions,
    }
}

/// A moving average of durations: recent chunks count most, so the warm-up
/// of the first ones (key handles looked up, caches cold) fades.
#[derive(Debug, Default, Clone, Copy)]
struct Average(Option<f64>);

impl Average {
    /// The weight of each new measurement.
    const WEIGHT: f64 = 0.25;

    fn add(&mut self, total: Duration, count: usize) {
        if count == 0 {
            return;
        }
        let sample = total.as_secs_f64() / count as f64;
        self.0 = Some(match self.0 {
            Some(avg) => avg + Self::WEIGHT * (sample - avg),
            None => sample,
        });
    }

    fn get(&self) -> Option<Duration> {
        self.0.map(Duration::from_secs_f64)
    }
}

struct State<'t> {
    free: Vec<Box<dyn Signer + 't>>,
    lent: usize,
    limit: usize,
    token: Average,
    host: Average,
}

/// The pool of signing sessions.
pub struct Sessions<'t> {
    state: Mutex<State<'t>>,
    returned: Condvar,
    total: usize,
}

/// A borrowed session, given back when dropped (by a panicking thread too,
/// so the others never wait for a session that is gone).
pub struct Lent<'s, 't> {
    pool: &'s Sessions<'t>,
    signer: Option<Box<dyn Signer + 't>>,
}

impl<'t> Lent<'_, 't> {
    pub fn signer(&mut self) -> Option<&mut (dyn Signer + 't)> {
        self.signer.as_deref_mut()
    }
}

impl Drop for Lent<'_, '_> {
    fn drop(&mut self) {
        if let Some(signer) = self.signer.take() {
            let mut st = self.pool.lock();
            st.free.push(signer);
            st.lent -= 1;
            drop(st);
            // Any one waiter can take it.
            self.pool.returned.notify_one();
        }
    }
}

impl<'t> Sessions<'t> {
    pub fn new(signers: Vec<Box<dyn Signer + 't>>) -> Sessions<'t> {
        let total = signers.len();
        Sessions {
            state: Mutex::new(State {
                free: signers,
                lent: 0,
                limit: total,
                token: Average::default(),
                host: Average::default(),
            }),
            returned: Condvar::new(),
            total,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub fn len(&self) -> usize {
        self.total
    }

    /// How many sessions may sign at once now.
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    fn lock(&self) -> MutexGuard<'_, State<'t>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A session, once one is free and the limit allows it (None: the pool
    /// has none at all).
    pub fn borrow(&self) -> Option<Lent<'_, 't>> {
        if self.total == 0 {
            return None;
        }
        let mut st = self.lock();
        loop {
            if st.lent < st.limit.max(1)
                && let Some(signer) = st.free.pop()
            {
                st.lent += 1;
                return Some(Lent {
                    pool: self,
                    signer: Some(signer),
                });
            }
            st = self.returned.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// What `signatures` signatures took the token (held on a session, not
    /// waiting for one) and what `leaves` leaves took the host besides.
    pub fn measured(&self, token: Duration, signatures: usize, host: Duration, leaves: usize) {
        let mut st = self.lock();
        st.token.add(token, signatures);
        st.host.add(host, leaves);
        let limit = concurrency(st.token.get(), st.host.get(), self.total);
        let raised = limit > st.limit;
        st.limit = limit;
        drop(st);
        if raised {
            self.returned.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{KeyPair, TokenError};

    struct Nop;

    impl Signer for Nop {
        fn sign(&mut self, _: &KeyPair, _: &[u8]) -> Result<Vec<u8>, TokenError> {
            Ok(Vec::new())
        }
    }

    fn us(n: u64) -> Option<Duration> {
        Some(Duration::from_micros(n))
    }

    #[test]
    fn a_token_cheaper_than_the_host_signs_on_one_session() {
        // P-256 in SoftHSM: ~50 µs a signature, ~100 µs of host work a leaf.
        assert_eq!(concurrency(us(50), us(100), 2), 1);
        // RSA-3072 in SoftHSM (2 ms), a hardware HSM (100 ms): every session.
        assert_eq!(concurrency(us(2_000), us(100), 2), 2);
        assert_eq!(concurrency(us(100_000), us(100), 16), 16);
        // Nothing measured yet: every session, as the token allows.
        assert_eq!(concurrency(None, us(100), 4), 4);
        assert_eq!(concurrency(us(50), None, 4), 4);
        // No session at all stays none.
        assert_eq!(concurrency(us(50), us(100), 0), 0);
    }

    #[test]
    fn the_average_follows_recent_chunks() {
        let mut a = Average::default();
        assert_eq!(a.get(), None);
        a.add(Duration::from_micros(1_600), 16);
        assert_eq!(a.get(), us(100));
        a.add(Duration::ZERO, 0);
        assert_eq!(a.get(), us(100), "an empty chunk changes nothing");
        for _ in 0..40 {
            a.add(Duration::from_micros(800), 16);
        }
        let now = a.get().unwrap().as_secs_f64();
        assert!((now - 50e-6).abs() < 1e-7, "{now}");
    }

    #[test]
    fn the_limit_follows_the_measurements_and_bounds_the_loans() {
        let pool = Sessions::new(vec![Box::new(Nop), Box::new(Nop)]);
        assert_eq!((pool.len(), pool.limit()), (2, 2));
        let a = pool.borrow().unwrap();
        let b = pool.borrow().unwrap();
        drop((a, b));
        // A cheap token: one at a time from now on.
        pool.measured(
            Duration::from_micros(800),
            16,
            Duration::from_micros(1_600),
            16,
        );
        assert_eq!(pool.limit(), 1);
        let held = pool.borrow().unwrap();
        let waiter = std::thread::scope(|s| {
            let h = s.spawn(|| pool.borrow().is_some());
            // The second borrower waits until the first session comes back.
            std::thread::sleep(Duration::from_millis(50));
            assert!(!h.is_finished(), "a second session was lent past the limit");
            drop(held);
            h.join().unwrap()
        });
        assert!(waiter);
        // The token turns slow (say, a busy HSM): every session again.
        for _ in 0..8 {
            pool.measured(
                Duration::from_millis(32),
                16,
                Duration::from_micros(1_600),
                16,
            );
        }
        assert_eq!(pool.limit(), 2);
        let (_a, _b) = (pool.borrow().unwrap(), pool.borrow().unwrap());
        assert!(Sessions::new(Vec::new()).borrow().is_none());
    }
}
