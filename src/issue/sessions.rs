//! The token's extra sessions, lent to the signing threads a chunk of
//! signatures at a time, and how many of them may sign at once.
//!
//! How many sessions sign at once is the token's to decide, measured as the
//! run goes: a token whose signature takes longer than the host's own work
//! for a leaf (a hardware HSM, or RSA in a software token) is the bottleneck,
//! and gets every session, in case it signs on several at once; a token whose
//! signature is cheaper than that (P-256 in SoftHSM, a library on the same
//! cores) cannot be kept waiting by one session, and two signing at once only
//! make it contend with itself (SoftHSM with OpenSSL 3: a 32-signature chunk
//! takes 1.5 ms alone and 5 to 9 ms beside another, docs/performance.md), so
//! one signs at a time. Until the token has been measured, one signs.
//!
//! Both sides are measured so that the threads' sharing of the cores does not
//! blur them: the host's work in CPU time; the token's wall time only from
//! chunks no other session signed beside, and its CPU time from every chunk.
//! A token that computes on these cores costs its CPU time: its wall time
//! also counts the waits for a core that the workers held, which made a
//! SoftHSM signature look twice as slow as it is and the pool flap between
//! one session and two.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::token::Signer;

/// The CPU time this thread has used so far.
pub fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// What signing a chunk took: the CPU time of the thread that called the
/// token, and the wall time if no other session signed meanwhile (beside
/// another, a software token's wall time is mostly waiting).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signing {
    pub cpu: Duration,
    pub wall_alone: Option<Duration>,
}

/// What a signature takes the token: wall time (signing alone) and the
/// calling thread's CPU time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenTime {
    pub wall: Duration,
    pub cpu: Duration,
}

impl TokenTime {
    /// A token whose calling thread spends at least this share (one
    /// eighth) of the wall time on the CPU computes on this computer's cores
    /// (a software token). An HSM's caller sleeps while the device signs,
    /// most of the wall time; SoftHSM's share was never under a quarter in
    /// the timelines of docs/performance.md (the lowest, 0.26, in a run's
    /// first chunk, with every core busy; about 1 in most chunks).
    const ON_OUR_CORES: u32 = 8;

    /// What a signature costs the token itself: its CPU time if it computes
    /// on these cores (the rest of its wall time it waited for a core the
    /// workers held), else its wall time (the device's).
    pub fn cost(self) -> Duration {
        if self.cpu * Self::ON_OUR_CORES >= self.wall {
            self.cpu
        } else {
            self.wall
        }
    }
}

/// Sessions that may sign at once, given what a signature costs the token
/// and what a leaf costs the host (both as measured so far; None before the
/// first measurement), out of `sessions`: every one while the token is the
/// slower, else one; one until both are known.
pub fn concurrency(
    token_per_signature: Option<Duration>,
    host_per_leaf: Option<Duration>,
    sessions: usize,
) -> usize {
    match (token_per_signature, host_per_leaf) {
        (Some(token), Some(host)) if token >= host => sessions,
        _ => sessions.min(1),
    }
}

/// How long a chunk of signatures should keep a session at most. The run
/// ends when its last chunks are signed, and while a session signs its last
/// chunk the others may have none left: 32 signatures of a 5 ms HSM are
/// 160 ms. Chunks of this length keep that wait short and spread a
/// control-plane node's leaves over the sessions; on a token that signs in
/// microseconds a chunk is `max` leaves, whose wake-ups are then what
/// costs.
pub const CHUNK_TIME: Duration = Duration::from_millis(10);

/// Leaves per chunk for a token whose signature costs `token_per_signature`
/// (None: not measured yet): as many as it signs in [`CHUNK_TIME`], at least
/// one, at most `max`.
pub fn chunk_len(token_per_signature: Option<Duration>, max: usize) -> usize {
    match token_per_signature {
        Some(t) if !t.is_zero() => {
            let n = CHUNK_TIME.as_nanos() / t.as_nanos();
            usize::try_from(n).unwrap_or(max).clamp(1, max.max(1))
        }
        _ => max,
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
    /// Loans made so far: a loan that still sees its own number when it
    /// ends had no other beside it after it began.
    loans: u64,
    limit: usize,
    /// Set once the signing threads stop: none waits for its turn any more.
    closed: bool,
    token_wall: Average,
    token_cpu: Average,
    host: Average,
}

/// The pool of signing sessions.
pub struct Sessions<'t> {
    state: Mutex<State<'t>>,
    returned: Condvar,
    /// Signalled when the limit rises or the pool closes.
    turns: Condvar,
    total: usize,
}

/// A borrowed session, given back when dropped (by a panicking thread too,
/// so the others never wait for a session that is gone).
pub struct Lent<'s, 't> {
    pool: &'s Sessions<'t>,
    signer: Option<Box<dyn Signer + 't>>,
    /// The pool's loan count once this loan was made, if no other was out.
    solo_from: Option<u64>,
}

impl<'t> Lent<'_, 't> {
    pub fn signer(&mut self) -> Option<&mut (dyn Signer + 't)> {
        self.signer.as_deref_mut()
    }

    /// Whether this session has signed alone so far: only then do its
    /// times say what a signature costs the token.
    pub fn alone(&self) -> bool {
        self.solo_from.is_some_and(|n| self.pool.lock().loans == n)
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
                loans: 0,
                limit: total.min(1),
                closed: false,
                token_wall: Average::default(),
                token_cpu: Average::default(),
                host: Average::default(),
            }),
            returned: Condvar::new(),
            turns: Condvar::new(),
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

    /// Leaves per chunk now, at most `max` ([`chunk_len`] of what the token
    /// was measured to cost).
    pub fn chunk_len(&self, max: usize) -> usize {
        let st = self.lock();
        let token = st
            .token_wall
            .get()
            .zip(st.token_cpu.get())
            .map(|(wall, cpu)| TokenTime { wall, cpu }.cost());
        chunk_len(token, max)
    }

    fn lock(&self) -> MutexGuard<'_, State<'t>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the limit lets the `n`th signing thread (from 0) sign;
    /// false once the pool is closed. Threads beyond the limit then take no
    /// chunk: one session signing P-256 in SoftHSM is one thread, which
    /// signs the chunks in the order they come (two threads taking turns
    /// with one session let a chunk wait for the session while later ones
    /// were signed, and the leaves after it waited to be written; the
    /// scheduler also kept the one that signed waiting behind a worker
    /// while the other core idled).
    pub fn turn(&self, n: usize) -> bool {
        let mut st = self.lock();
        loop {
            if st.closed {
                return false;
            }
            if n < st.limit.max(1) {
                return true;
            }
            st = self.turns.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// No signing thread waits for its turn any more (the run is over, or
    /// a signing thread is gone).
    pub fn close(&self) {
        self.lock().closed = true;
        self.turns.notify_all();
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
                st.loans += 1;
                return Some(Lent {
                    pool: self,
                    signer: Some(signer),
                    solo_from: (st.lent == 1).then_some(st.loans),
                });
            }
            st = self.returned.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// What `signatures` signatures took the token and what `leaves` leaves
    /// took the host besides, in CPU time. The token's wall time counts
    /// only from chunks signed alone, its CPU time from every chunk: a
    /// software token that was once let sign on several sessions is still
    /// seen to cost its CPU time, and comes back to one.
    pub fn measured(&self, token: Signing, signatures: usize, host_cpu: Duration, leaves: usize) {
        let mut st = self.lock();
        st.token_cpu.add(token.cpu, signatures);
        if let Some(wall) = token.wall_alone {
            st.token_wall.add(wall, signatures);
        }
        st.host.add(host_cpu, leaves);
        let token = st
            .token_wall
            .get()
            .zip(st.token_cpu.get())
            .map(|(wall, cpu)| TokenTime { wall, cpu }.cost());
        let limit = concurrency(token, st.host.get(), self.total);
        let raised = limit > st.limit;
        st.limit = limit;
        drop(st);
        if raised {
            self.returned.notify_all();
            self.turns.notify_all();
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
        // Nothing measured yet: one session, which measures the token alone.
        assert_eq!(concurrency(None, us(100), 4), 1);
        assert_eq!(concurrency(us(50), None, 4), 1);
        // No session at all stays none.
        assert_eq!(concurrency(us(50), us(100), 0), 0);
        assert_eq!(concurrency(None, None, 0), 0);
    }

    #[test]
    fn a_slow_token_gets_short_chunks() {
        let ms = |n: u64| Some(Duration::from_micros(n));
        // SoftHSM P-256 (~50 µs), unknown yet: full chunks.
        assert_eq!(chunk_len(ms(50), 32), 32);
        assert_eq!(chunk_len(None, 32), 32);
        // RSA-3072 in SoftHSM (3 ms), a 5 ms HSM, a 100 ms one.
        assert_eq!(chunk_len(ms(3_300), 32), 3);
        assert_eq!(chunk_len(ms(5_000), 32), 2);
        assert_eq!(chunk_len(ms(100_000), 32), 1);
        assert_eq!(chunk_len(Some(Duration::ZERO), 32), 32);
    }

    #[test]
    fn a_token_on_these_cores_costs_its_cpu_time_an_hsm_its_wall_time() {
        let t = |wall, cpu| {
            TokenTime {
                wall: Duration::from_micros(wall),
                cpu: Duration::from_micros(cpu),
            }
            .cost()
        };
        // SoftHSM P-256 with the workers holding the cores half the time:
        // the signature costs its 50 µs of CPU, not its 100 µs of wall time.
        assert_eq!(t(100, 50), Duration::from_micros(50));
        assert_eq!(t(45, 44), Duration::from_micros(44));
        assert_eq!(t(200, 50), Duration::from_micros(50));
        // An HSM: the caller sleeps while the device signs.
        assert_eq!(t(100_000, 120), Duration::from_micros(100_000));
        assert_eq!(t(1_000, 30), Duration::from_micros(1_000));
    }

    #[test]
    fn a_loan_is_alone_until_another_session_signs_beside_it() {
        let pool = Sessions::new(vec![Box::new(Nop), Box::new(Nop)]);
        let a = pool.borrow().unwrap();
        assert!(a.alone());
        drop(a);
        let a = pool.borrow().unwrap();
        assert!(a.alone(), "an earlier loan, given back, does not count");
        // Let two sign at once: a measured slow token.
        pool.measured(
            Signing {
                wall_alone: Some(Duration::from_millis(32)),
                cpu: Duration::from_micros(100),
            },
            16,
            Duration::from_micros(1_600),
            16,
        );
        let b = pool.borrow().unwrap();
        assert!(!a.alone(), "b signed beside a");
        assert!(!b.alone(), "a was out when b began");
        drop(a);
        assert!(!b.alone(), "a was out when b began, even once given back");
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

    /// A chunk of 16 signatures: `wall_us` (None: beside another
    /// session) and `cpu_us` of the signing thread, against 1,600 µs of
    /// host work for 16 leaves (100 µs a leaf).
    fn measured(pool: &Sessions<'_>, wall_us: Option<u64>, cpu_us: u64) {
        pool.measured(
            Signing {
                wall_alone: wall_us.map(Duration::from_micros),
                cpu: Duration::from_micros(cpu_us),
            },
            16,
            Duration::from_micros(1_600),
            16,
        )
    }

    #[test]
    fn the_limit_follows_the_measurements_and_bounds_the_loans() {
        let pool = Sessions::new(vec![Box::new(Nop), Box::new(Nop)]);
        // One at a time until the token is measured.
        assert_eq!((pool.len(), pool.limit()), (2, 1));
        // A cheap token (50 µs a signature against 100 µs of host work a
        // leaf): one at a time, even where the cores' sharing made its wall
        // time look slower than the host.
        measured(&pool, Some(1_600), 800);
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
        // The token turns slow (say, a busy HSM): every session.
        for _ in 0..8 {
            measured(&pool, Some(32_000), 200);
        }
        assert_eq!(pool.limit(), 2);
        let (_a, _b) = (pool.borrow().unwrap(), pool.borrow().unwrap());
        // Beside each other, an HSM's chunks add only their CPU time, which
        // does not make it look cheap: still every session.
        for _ in 0..8 {
            measured(&pool, None, 200);
        }
        assert_eq!(pool.limit(), 2);
        assert!(Sessions::new(Vec::new()).borrow().is_none());
    }

    #[test]
    fn a_software_token_let_sign_on_two_sessions_comes_back_to_one() {
        let pool = Sessions::new(vec![Box::new(Nop), Box::new(Nop)]);
        // A first chunk slowed by a cold start: 120 µs of CPU a signature,
        // more than the host's 100 µs a leaf.
        measured(&pool, Some(2_100), 1_920);
        assert_eq!(pool.limit(), 2);
        // Then two sessions sign side by side, each signature 50 µs of CPU:
        // no chunk is alone, and the CPU time alone brings it back to one.
        for _ in 0..8 {
            measured(&pool, None, 800);
        }
        assert_eq!(pool.limit(), 1);
    }

    /// The first signing thread always has its turn; the others wait for
    /// the limit to reach them, and all stop waiting once the pool closes.
    #[test]
    fn threads_beyond_the_limit_wait_for_their_turn() {
        use std::sync::mpsc::{RecvTimeoutError, channel};
        let pool = Sessions::new(vec![Box::new(Nop), Box::new(Nop), Box::new(Nop)]);
        assert!(pool.turn(0));
        std::thread::scope(|s| {
            let (tx, rx) = channel();
            for n in [1, 2] {
                let (pool, tx) = (&pool, tx.clone());
                s.spawn(move || tx.send((n, pool.turn(n))));
            }
            // One session until measured: neither has its turn.
            assert_eq!(
                rx.recv_timeout(Duration::from_millis(50)),
                Err(RecvTimeoutError::Timeout)
            );
            // A token slower than the host: every session, both go on.
            measured(&pool, Some(3_200), 3_000);
            let mut got: Vec<_> = (0..2)
                .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
                .collect();
            got.sort_unstable();
            assert_eq!(got, [(1, true), (2, true)]);
        });
        // Back to one session: the second thread waits, until the pool closes.
        let pool = Sessions::new(vec![Box::new(Nop), Box::new(Nop)]);
        std::thread::scope(|s| {
            let waiting = s.spawn(|| pool.turn(1));
            pool.close();
            assert!(!waiting.join().unwrap());
        });
        assert!(!pool.turn(0), "closed: no thread signs any more");
    }
}
