//! The pipeline's threads besides the calling one: the workers' task
//! queue, the workers (preparing chunks, finishing signed ones) and the
//! signing threads, one per token session.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::items::{Job, Leaf, Pending, check, prepare, render};
use super::{Ctx, ca};
use crate::error::CeremonyError;
use crate::issue::sessions::{Sessions, Signing, thread_cpu};
use crate::token::{KeyPair, TokenError};
use crate::x509;

/// A leaf's outcome: its place in plan order, `end_of_cp`, the leaf.
type Outcome = (usize, Option<usize>, Result<Leaf, CeremonyError>);

/// What a worker does next.
pub(super) enum WorkerTask {
    /// Make these leaves' keys and TBSs, and send them to be signed.
    Prepare(Vec<Job>),
    /// Check the certificates of a signed chunk and render their files.
    Finish(Box<Signed>),
}

/// The workers' nice value, above the signing and calling threads' 0. A
/// token that computes on this computer's cores (SoftHSM) then signs on a
/// core of its own whenever it has a chunk, rather than sharing one with a
/// worker: its signatures are the pipeline's one serial path, the workers'
/// checks and keys are not (and neither are the records and writes of the
/// calling thread, which free the window). Three: at higher values the
/// workers' checks fell behind the token and were left to the end of the
/// run. An HSM's signing thread sleeps while the device signs, and the
/// workers then have the cores to themselves whatever their priority.
const WORKER_NICE: i32 = 3;

/// Chunks prepared (or being prepared) ahead of the token that a worker
/// keeps before it finishes a signed chunk: the token never waits for a
/// chunk while the workers finish theirs (a chunk's checks take a worker
/// longer than its signatures take SoftHSM).
pub(super) const AHEAD: usize = 2;

/// The workers' tasks. Finishing a signed chunk comes before preparing a
/// new one, once `AHEAD` chunks wait for the token: its leaves reach the
/// calling thread (and are recorded, written and freed) as early as they
/// can, rather than behind every chunk dispatched since, and the calling
/// thread's share of the work is spread over the run instead of piling up
/// at its end.
#[derive(Default)]
pub(super) struct Tasks {
    queues: Mutex<Queues>,
    ready: Condvar,
}

#[derive(Default)]
struct Queues {
    finish: VecDeque<Box<Signed>>,
    prepare: VecDeque<Vec<Job>>,
    /// Chunks being prepared, or prepared and not yet taken to be signed.
    ahead: usize,
    /// Set once: every worker returns at its next task.
    stopped: bool,
}

impl Tasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn prepare(&self, chunk: Vec<Job>) {
        self.lock().prepare.push_back(chunk);
        self.ready.notify_one();
    }

    pub(super) fn finish(&self, signed: Signed) {
        self.lock().finish.push_back(Box::new(signed));
        self.ready.notify_one();
    }

    /// No more tasks: what is queued is dropped (keys wiped).
    pub(super) fn stop(&self) {
        let mut q = self.lock();
        q.stopped = true;
        q.finish.clear();
        q.prepare.clear();
        drop(q);
        self.ready.notify_all();
    }

    /// A prepared chunk was taken to be signed (or had nothing to sign).
    pub(super) fn taken(&self) {
        let mut q = self.lock();
        q.ahead = q.ahead.saturating_sub(1);
    }

    /// The next task: a chunk to prepare while fewer than `AHEAD` wait for
    /// the token, else a chunk to finish, else one to prepare; None once
    /// stopped.
    pub(super) fn next(&self) -> Option<WorkerTask> {
        let mut q = self.lock();
        loop {
            if q.stopped {
                return None;
            }
            if q.ahead >= AHEAD
                && let Some(signed) = q.finish.pop_front()
            {
                return Some(WorkerTask::Finish(signed));
            }
            if let Some(chunk) = q.prepare.pop_front() {
                q.ahead += 1;
                return Some(WorkerTask::Prepare(chunk));
            }
            if let Some(signed) = q.finish.pop_front() {
                return Some(WorkerTask::Finish(signed));
            }
            q = self.ready.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A chunk whose keys and TBSs are made, on its way to the token.
pub(super) struct Prepared {
    pub(super) pending: Vec<Pending>,
    /// The leaf that could not be prepared, if one could not (the chunk
    /// ends there).
    pub(super) failure: Option<Outcome>,
    /// The CPU time preparing the chunk took the host.
    pub(super) host: Duration,
}

/// A chunk back from the token: its signatures in order, up to and
/// including the first that failed.
pub(super) struct Signed {
    pub(super) prepared: Prepared,
    pub(super) signatures: Vec<Result<Vec<u8>, TokenError>>,
    /// What they took the token (None when signed on the calling thread).
    pub(super) token: Option<Signing>,
}

/// A message to the calling thread from a worker or a signing thread.
pub(super) enum ToCaller {
    /// A chunk's leaves, finished (or the first that failed, last).
    Done(Vec<Outcome>),
    /// A chunk to sign, when the token has no session for a signing thread.
    Sign(Box<Prepared>),
}

/// Tells the calling thread when a worker or signing thread dies of a
/// panic, so that it never waits for the leaves that thread held.
struct PanicGuard {
    tx: Sender<ToCaller>,
    idx: Option<usize>,
    who: &'static str,
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(idx) = self.idx
        {
            let _ = self.tx.send(ToCaller::Done(vec![(
                idx,
                None,
                Err(CeremonyError::Internal(format!(
                    "a {} thread panicked",
                    self.who
                ))),
            )]));
        }
    }
}

/// Where prepared chunks go to be signed.
pub(super) enum SignRoute {
    /// To the signing threads, one per token session.
    Signers(Sender<Prepared>),
    /// To the calling thread, which signs on the token's own session.
    Caller,
}

/// A worker: prepares chunks (keys and TBSs) and finishes signed ones
/// (checks, files, records), whichever comes next; it never waits for the
/// token, so the cores stay busy while a chunk is being signed.
pub(super) fn worker(
    ctx: &Ctx<'_>,
    tasks: &Tasks,
    to_sign: SignRoute,
    done: Sender<ToCaller>,
    pool: &Sessions<'_>,
) {
    // Below the signing threads and the calling thread: best effort (a
    // thread may always lower its own priority, but a sandbox may forbid it).
    let _ = rustix::process::setpriority_process(None, WORKER_NICE);
    let mut guard = PanicGuard {
        tx: done.clone(),
        idx: None,
        who: "leaf worker",
    };
    loop {
        let Some(task) = tasks.next() else { return };
        let sent = match task {
            WorkerTask::Prepare(chunk) => {
                guard.idx = chunk.first().map(|j| j.idx);
                let prepared = prepare_chunk(ctx, chunk);
                if prepared.pending.is_empty() {
                    tasks.taken();
                }
                match (&to_sign, prepared.pending.is_empty()) {
                    // Nothing to sign: the failure goes straight back.
                    (_, true) => done
                        .send(ToCaller::Done(prepared.failure.into_iter().collect()))
                        .is_ok(),
                    (SignRoute::Signers(tx), false) => tx.send(prepared).is_ok(),
                    (SignRoute::Caller, false) => {
                        done.send(ToCaller::Sign(Box::new(prepared))).is_ok()
                    }
                }
            }
            WorkerTask::Finish(signed) => {
                guard.idx = signed.prepared.pending.first().map(|p| p.job.idx);
                let out = finish_chunk(ctx, *signed, pool);
                done.send(ToCaller::Done(out)).is_ok()
            }
        };
        guard.idx = None;
        if !sent {
            return;
        }
    }
}

/// Keys and TBSs for a chunk, in order, up to the first leaf that fails.
fn prepare_chunk(ctx: &Ctx<'_>, chunk: Vec<Job>) -> Prepared {
    let start = thread_cpu();
    let mut pending = Vec::with_capacity(chunk.len());
    let mut failure = None;
    for job in chunk {
        let (idx, end_of_cp) = (job.idx, job.end_of_cp);
        match prepare(ctx, job) {
            Ok(p) => pending.push(p),
            Err(e) => {
                failure = Some((idx, end_of_cp, Err(e)));
                break;
            }
        }
    }
    Prepared {
        pending,
        failure,
        host: thread_cpu().saturating_sub(start),
    }
}

/// Signs a prepared chunk's TBSs in order with `sign`, up to the first
/// failure; nothing more once the run stops (Ctrl-C or an error elsewhere:
/// the calling thread then takes the reason from the token's checkpoint).
pub(super) fn sign_chunk(
    ctx: &Ctx<'_>,
    prepared: Prepared,
    mut sign: impl FnMut(&KeyPair, &[u8]) -> Result<Vec<u8>, TokenError>,
) -> Signed {
    let mut signatures = Vec::with_capacity(prepared.pending.len());
    for p in &prepared.pending {
        let key = &ca(ctx.cas, p.job.spec.issuer).key;
        let signed = if (ctx.stop_requested)() || ctx.stopping.load(Ordering::Relaxed) {
            Err(TokenError::BadSignature {
                label: key.label.clone(),
                what: "not signed: the run stops".into(),
            })
        } else {
            sign(key, &p.tbs.tbs_der)
        };
        let failed = signed.is_err();
        signatures.push(signed);
        if failed {
            break;
        }
    }
    Signed {
        prepared,
        signatures,
        token: None,
    }
}

/// The `n`th signing thread (from 0): while the pool lets it sign, takes
/// prepared chunks, borrows a session, signs each chunk's TBSs in a row and
/// hands the chunk back to the workers.
pub(super) fn signer(
    n: usize,
    ctx: &Ctx<'_>,
    pool: &Sessions<'_>,
    chunks: &Mutex<Receiver<Prepared>>,
    tasks: &Tasks,
    done: Sender<ToCaller>,
) {
    /// Closes the pool when this thread ends, by a panic too: the threads
    /// waiting for their turn then end as well.
    struct Closing<'p, 't>(&'p Sessions<'t>);
    impl Drop for Closing<'_, '_> {
        fn drop(&mut self) {
            self.0.close();
        }
    }
    let _closing = Closing(pool);
    let mut guard = PanicGuard {
        tx: done,
        idx: None,
        who: "signing",
    };
    while pool.turn(n) {
        let prepared = match chunks.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(prepared) = prepared else { return };
        tasks.taken();
        guard.idx = prepared.pending.first().map(|p| p.job.idx);
        let mut lent = pool.borrow();
        let (wall, cpu) = (Instant::now(), thread_cpu());
        let mut signed = sign_chunk(ctx, prepared, |key, tbs| {
            match lent.as_mut().and_then(|l| l.signer()) {
                Some(signer) => signer.sign(key, tbs),
                None => Err(TokenError::BadSignature {
                    label: key.label.clone(),
                    what: "no token session".into(),
                }),
            }
        });
        signed.token = Some(Signing {
            cpu: thread_cpu().saturating_sub(cpu),
            wall_alone: lent
                .as_ref()
                .is_some_and(|l| l.alone())
                .then(|| wall.elapsed()),
        });
        drop(lent);
        guard.idx = None;
        tasks.finish(signed);
    }
}

/// A signed chunk's leaves, checked and rendered, in order, up to and
/// including the first failure.
fn finish_chunk(ctx: &Ctx<'_>, signed: Signed, pool: &Sessions<'_>) -> Vec<Outcome> {
    let start = thread_cpu();
    let Signed {
        prepared:
            Prepared {
                pending,
                mut failure,
                host,
            },
        signatures,
        token,
    } = signed;
    let signed = signatures.len();
    // Every check first, then every rendering: the check's code and tables
    // stay in the caches.
    let mut checked = Vec::with_capacity(signed);
    for (mut p, signature) in pending.into_iter().zip(signatures) {
        let issued = signature
            .map_err(|e| {
                x509::X509Error::Sign {
                    subject: x509::name_text(&p.tbs.profile.subject),
                    source: Box::new(e),
                }
                .into()
            })
            .and_then(|sig| check(ctx, &mut p, &sig));
        match issued {
            Ok(issued) => checked.push((p, issued)),
            Err(e) => {
                failure = Some((p.job.idx, p.job.end_of_cp, Err(e)));
                break;
            }
        }
    }
    let mut out = Vec::with_capacity(checked.len() + 1);
    for (p, issued) in checked {
        let (idx, end_of_cp) = (p.job.idx, p.job.end_of_cp);
        out.push((idx, end_of_cp, Ok(render(ctx, p, issued))));
    }
    if let Some(token) = token {
        let host = host + thread_cpu().saturating_sub(start);
        pool.measured(token, signed, host, out.len());
    }
    out.extend(failure);
    out
}
