//! Issuing the kubeadm bundle: for every node, every leaf key made on the
//! laptop, every certificate signed by its intermediate through the token and
//! checked, recorded, and written into the staging directory in kubeadm's
//! layout.
//!
//! The token must be the bottleneck, never this tool (issue 7), so leaves go
//! through a bounded pipeline of chunks rather than one after the other:
//! - the calling thread walks the plan's nodes in order, hands the leaves to
//!   the workers in chunks with their serial numbers (token RNG, fetched in
//!   blocks), puts what comes back into plan order again, records a batch of
//!   certificates in the audit journal (one frame, one fsync) and only then
//!   writes that batch's files into the staging directory (a batch of
//!   workers' nodes from one thread per core, so that at the end of a run
//!   the last batch is not written on one core while the other idles);
//! - worker threads, one per core and below the others' priority, prepare
//!   chunks (leaf keys and TBSs) and finish signed ones (`x509::finish`:
//!   parse back, compare the TBS, verify in software; then the files and
//!   records), preparing first while the token has fewer than [`AHEAD`]
//!   chunks waiting: they never wait for the token, nor it for them;
//! - signing threads, one per token session, sign prepared chunks in a row
//!   on their session, as many at once as [`Sessions`] allows (it measures
//!   whether the token gains from signing on several; the threads beyond
//!   its limit take no chunk), and hand them back. A token without extra
//!   sessions signs on the calling thread instead.
//!
//! At most [`WINDOW`] leaves are under way, so memory stays flat for any
//! number of nodes. What it must not do: write a certificate that was not
//! checked, or one whose record is not durable in the journal first; keep
//! all of a cluster's keys or certificates in memory.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use zeroize::Zeroizing;

use super::ca::CaState;
use super::leaf;
use super::sessions::{Sessions, Signing, thread_cpu};
use crate::audit::{Audit, Event};
use crate::bundle::kubeconfig::{self, Kubeconfig};
use crate::bundle::layout::node_root;
use crate::bundle::write::{self, Staging};
use crate::error::CeremonyError;
use crate::leaf::{self as keys, LeafKey};
use crate::plan::{CaRole, ClusterSpec};
use crate::profile::kubeadm::{self, CA_FILES, LeafOutput, LeafSpec, leaf_count};
use crate::token::{KeyPair, SERIAL_LEN, Token, TokenError, serial_from};
use crate::x509::{self, Issued};

/// Certificates per journal frame (workers; a control-plane node's leaves
/// are one frame). Fixed, so the journal's frames never depend on timing.
const BATCH: usize = 256;
/// Leaves under way at most, from dispatch to written: what memory holds
/// (a few MiB), whatever the number of nodes. Four batches: while one is
/// recorded and written, the pipeline's threads still have work (at two
/// batches they ran dry during each write, a twentieth of the run idle).
const WINDOW: usize = 4 * BATCH;
/// Leaves handed on at a time between the pipeline's threads: a wake-up per
/// chunk, not per leaf, and each pass over a chunk (keys, signatures,
/// checks) keeps its code and data in the core's caches.
const CHUNK: usize = 32;
/// Leaves in a run's first chunk. One session signs until the token has
/// been measured signing a chunk alone, so a short first chunk lets a slow
/// token have its other sessions sooner (an HSM at 100 ms a signature: after
/// 0.4 s, rather than after a control-plane node's dozen leaves, 1.2 s).
const FIRST_CHUNK: usize = 4;
/// Items (nodes' own files and leaves) a batch needs before it is written
/// by several threads at once.
const SHARED_WRITE_MIN: usize = 64;
/// Serial numbers per C_GenerateRandom.
const SERIAL_BLOCK: usize = 64;

fn ca(cas: &[CaState], role: CaRole) -> &CaState {
    // `cas` holds the four roles in plan order (root, kubernetes, etcd, front-proxy).
    &cas[role as usize]
}

/// How the leaves are issued.
#[derive(Debug)]
pub struct LeafRun {
    pub now: SystemTime,
    /// Show the progress bar.
    pub interactive: bool,
    /// Token sessions to sign on at most (the plan's `token.sessions`);
    /// None: one per core.
    pub max_sessions: Option<usize>,
    /// The service-account key, when the run started making it early (of
    /// the cluster's `sa_key` type); None: it is made here.
    pub sa_key: Option<keys::KeyInBackground>,
}

/// One file for the staging directory: path under OUT, contents, mode.
type File = (String, Zeroizing<Vec<u8>>, u32);

/// What the pipeline's threads share.
struct Ctx<'a> {
    cl: &'a ClusterSpec,
    cas: &'a [CaState],
    now: SystemTime,
    /// The Kubernetes CA certificate as every kubeconfig embeds it.
    kube_ca_data: String,
    /// Set when the run ends on an error: nothing more is prepared or signed.
    stopping: AtomicBool,
}

/// One leaf to issue.
struct Job {
    /// Its place in plan order.
    idx: usize,
    node: String,
    spec: LeafSpec,
    serial: Vec<u8>,
    /// Some(i) on the last leaf of control-plane node i.
    end_of_cp: Option<usize>,
}

/// A checked certificate and its files, ready to record and write.
struct Leaf {
    /// Its `certificate_issued` record (taken when the batch is recorded).
    event: Option<Event>,
    files: Vec<File>,
}

/// A leaf between its key and its signature: the TBS built, to be signed.
struct Pending {
    job: Job,
    key: LeafKey,
    tbs: leaf::Prepared,
}

/// The first half of a leaf: its validity and profile checked (before its
/// key is made), its key, its TBS.
fn prepare(ctx: &Ctx<'_>, mut job: Job) -> Result<Pending, CeremonyError> {
    let (cl, spec) = (ctx.cl, &job.spec);
    let issuer = ca(ctx.cas, spec.issuer);
    // The profile needs the key's type only: a leaf that cannot be issued
    // costs no key.
    let profiled = leaf::profile(spec, cl.leaf_key, cl.leaf_validity, issuer, ctx.now)?;
    let key: LeafKey = keys::generate(cl.leaf_key)?;
    let serial = std::mem::take(&mut job.serial);
    let tbs = leaf::prepare(profiled, &key.spki, issuer, serial)?;
    Ok(Pending { job, key, tbs })
}

/// The certificate around its signature, checked.
fn check(ctx: &Ctx<'_>, p: &mut Pending, signature: &[u8]) -> Result<Issued, CeremonyError> {
    let issuer = ca(ctx.cas, p.job.spec.issuer);
    leaf::finish(&mut p.tbs, &p.key.spki, issuer, signature)
}

/// A checked certificate's files and record. Writes nothing.
fn render(ctx: &Ctx<'_>, p: Pending, issued: Issued) -> Leaf {
    let (spec, node, key) = (&p.job.spec, p.job.node.as_str(), &p.key);
    let base = node_root(node);
    let cert_pem = x509::to_pem(&issued.der);
    let files = match &spec.output {
        LeafOutput::CertAndKey => vec![
            (
                format!("{base}/{}.key", spec.path),
                Zeroizing::new(key.private_pem.as_bytes().to_vec()),
                write::SECRET,
            ),
            (
                format!("{base}/{}.crt", spec.path),
                Zeroizing::new(cert_pem.into_bytes()),
                write::PUBLIC,
            ),
        ],
        LeafOutput::Kubeconfig { server, cluster } => {
            let text = kubeconfig::render(&Kubeconfig {
                cluster,
                server,
                user: &spec.cn,
                ca_data: &ctx.kube_ca_data,
                cert_pem: &cert_pem,
                key_pem: &key.private_pem,
            });
            let mut text = text;
            // The text's own buffer, moved (still wiped on drop), not copied.
            vec![(
                format!("{base}/{}", spec.path),
                Zeroizing::new(std::mem::take(&mut *text).into_bytes()),
                write::SECRET,
            )]
        }
    };
    let file = match &spec.output {
        LeafOutput::CertAndKey => format!("{base}/{}.crt", spec.path),
        LeafOutput::Kubeconfig { .. } => format!("{base}/{}", spec.path),
    };
    let event = leaf::issued_event(spec, Some(node), &file, &issued);
    Leaf {
        event: Some(event),
        files,
    }
}

/// A leaf's outcome: its place in plan order, `end_of_cp`, the leaf.
type Outcome = (usize, Option<usize>, Result<Leaf, CeremonyError>);

/// What a worker does next.
enum Task {
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
const AHEAD: usize = 2;

/// The workers' tasks. Finishing a signed chunk comes before preparing a
/// new one, once `AHEAD` chunks wait for the token: its leaves reach the
/// calling thread (and are recorded, written and freed) as early as they
/// can, rather than behind every chunk dispatched since, and the calling
/// thread's share of the work is spread over the run instead of piling up
/// at its end.
#[derive(Default)]
struct Tasks {
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

    fn prepare(&self, chunk: Vec<Job>) {
        self.lock().prepare.push_back(chunk);
        self.ready.notify_one();
    }

    fn finish(&self, signed: Signed) {
        self.lock().finish.push_back(Box::new(signed));
        self.ready.notify_one();
    }

    /// No more tasks: what is queued is dropped (keys wiped).
    fn stop(&self) {
        let mut q = self.lock();
        q.stopped = true;
        q.finish.clear();
        q.prepare.clear();
        drop(q);
        self.ready.notify_all();
    }

    /// A prepared chunk was taken to be signed (or had nothing to sign).
    fn taken(&self) {
        let mut q = self.lock();
        q.ahead = q.ahead.saturating_sub(1);
    }

    /// The next task: a chunk to prepare while fewer than `AHEAD` wait for
    /// the token, else a chunk to finish, else one to prepare; None once
    /// stopped.
    fn next(&self) -> Option<Task> {
        let mut q = self.lock();
        loop {
            if q.stopped {
                return None;
            }
            if q.ahead >= AHEAD
                && let Some(signed) = q.finish.pop_front()
            {
                return Some(Task::Finish(signed));
            }
            if let Some(chunk) = q.prepare.pop_front() {
                q.ahead += 1;
                return Some(Task::Prepare(chunk));
            }
            if let Some(signed) = q.finish.pop_front() {
                return Some(Task::Finish(signed));
            }
            q = self.ready.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A chunk whose keys and TBSs are made, on its way to the token.
struct Prepared {
    pending: Vec<Pending>,
    /// The leaf that could not be prepared, if one could not (the chunk
    /// ends there).
    failure: Option<Outcome>,
    /// The CPU time preparing the chunk took the host.
    host: Duration,
}

/// A chunk back from the token: its signatures in order, up to and
/// including the first that failed.
struct Signed {
    prepared: Prepared,
    signatures: Vec<Result<Vec<u8>, TokenError>>,
    /// What they took the token (None when signed on the calling thread).
    token: Option<Signing>,
}

/// What reaches the calling thread.
enum ToMain {
    /// A chunk's leaves, finished (or the first that failed, last).
    Done(Vec<Outcome>),
    /// A chunk to sign, when the token has no session for a signing thread.
    Sign(Box<Prepared>),
}

/// Tells the calling thread when a worker or signing thread dies of a
/// panic, so that it never waits for the leaves that thread held.
struct PanicGuard {
    tx: Sender<ToMain>,
    idx: Option<usize>,
    who: &'static str,
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(idx) = self.idx
        {
            let _ = self.tx.send(ToMain::Done(vec![(
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
enum ToSign {
    /// To the signing threads, one per token session.
    Signers(Sender<Prepared>),
    /// To the calling thread, which signs on the token's own session.
    Main,
}

/// A worker: prepares chunks (keys and TBSs) and finishes signed ones
/// (checks, files, records), whichever comes next; it never waits for the
/// token, so the cores stay busy while a chunk is being signed.
fn worker(
    ctx: &Ctx<'_>,
    tasks: &Tasks,
    to_sign: ToSign,
    done: Sender<ToMain>,
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
            Task::Prepare(chunk) => {
                guard.idx = chunk.first().map(|j| j.idx);
                let prepared = prepare_chunk(ctx, chunk);
                if prepared.pending.is_empty() {
                    tasks.taken();
                }
                match (&to_sign, prepared.pending.is_empty()) {
                    // Nothing to sign: the failure goes straight back.
                    (_, true) => done
                        .send(ToMain::Done(prepared.failure.into_iter().collect()))
                        .is_ok(),
                    (ToSign::Signers(tx), false) => tx.send(prepared).is_ok(),
                    (ToSign::Main, false) => done.send(ToMain::Sign(Box::new(prepared))).is_ok(),
                }
            }
            Task::Finish(signed) => {
                guard.idx = signed.prepared.pending.first().map(|p| p.job.idx);
                let out = finish_chunk(ctx, *signed, pool);
                done.send(ToMain::Done(out)).is_ok()
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
fn sign_chunk(
    ctx: &Ctx<'_>,
    prepared: Prepared,
    mut sign: impl FnMut(&KeyPair, &[u8]) -> Result<Vec<u8>, TokenError>,
) -> Signed {
    let mut signatures = Vec::with_capacity(prepared.pending.len());
    for p in &prepared.pending {
        let key = &ca(ctx.cas, p.job.spec.issuer).key;
        let signed =
            if crate::operator::interrupt::requested() || ctx.stopping.load(Ordering::Relaxed) {
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
fn signer(
    n: usize,
    ctx: &Ctx<'_>,
    pool: &Sessions<'_>,
    chunks: &Mutex<Receiver<Prepared>>,
    tasks: &Tasks,
    done: Sender<ToMain>,
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

/// The bundle in plan order: each node's own files, then its leaves.
#[allow(clippy::large_enum_variant)] // moved a few times per leaf; a box only adds an allocation
enum Item {
    /// CA certificates, and on a control-plane node (Some(its root)) the
    /// service-account pair after them, added when written (`Sa`).
    NodeFiles(Vec<File>, Option<String>),
    Leaf(Job),
}

/// The service-account key pair, made on a thread of its own while the first
/// leaves are under way, and waited for only when the first control-plane
/// node's files are written: an RSA-2048 key costs a fifth of a second, more
/// than the leaves of a thousand nodes on a fast token.
enum Sa<'s> {
    Making(std::thread::ScopedJoinHandle<'s, Result<(LeafKey, String), CeremonyError>>),
    Made((LeafKey, String)),
    Failed,
}

impl Sa<'_> {
    fn get(&mut self) -> Result<&(LeafKey, String), CeremonyError> {
        if let Sa::Making(_) = self {
            let Sa::Making(h) = std::mem::replace(self, Sa::Failed) else {
                unreachable!("matched above")
            };
            *self = Sa::Made(h.join().unwrap_or_else(|_| {
                Err(CeremonyError::Internal("the sa key thread panicked".into()))
            })?);
        }
        match self {
            Sa::Made(sa) => Ok(sa),
            _ => Err(CeremonyError::Internal(
                "the service-account key could not be made".into(),
            )),
        }
    }

    /// sa.key and sa.pub of the control-plane node rooted at `base`.
    fn files(&mut self, base: &str) -> Result<[File; 2], CeremonyError> {
        let (key, public) = self.get()?;
        Ok([
            (
                format!("{base}/pki/sa.key"),
                Zeroizing::new(key.private_pem.as_bytes().to_vec()),
                write::SECRET,
            ),
            (
                format!("{base}/pki/sa.pub"),
                Zeroizing::new(public.as_bytes().to_vec()),
                write::SECRET,
            ),
        ])
    }
}

/// Every item of the bundle, lazily (nothing per worker is kept).
fn items<'a>(cl: &'a ClusterSpec, cas: &'a [CaState]) -> impl Iterator<Item = Item> + 'a {
    // Each CA's PEM once, copied into every node that holds it.
    let pems: std::rc::Rc<Vec<(CaRole, Vec<u8>)>> = std::rc::Rc::new(
        cas.iter()
            .map(|c| (c.role, x509::to_pem(&c.der).into_bytes()))
            .collect(),
    );
    let pem_of = |pems: &[(CaRole, Vec<u8>)], role| {
        let bytes = pems
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, p)| p.clone());
        Zeroizing::new(bytes.unwrap_or_default())
    };
    let cp_pems = std::rc::Rc::clone(&pems);
    let pem = move |role| pem_of(&cp_pems, role);
    let worker_pem = move |role| pem_of(&pems, role);
    let cp = cl
        .control_plane
        .iter()
        .enumerate()
        .flat_map(move |(i, node)| {
            let base = node_root(&node.name);
            let files: Vec<File> = CA_FILES
                .iter()
                .map(|(file, role)| (format!("{base}/{file}"), pem(*role), write::PUBLIC))
                .collect();
            let leaves = kubeadm::control_plane_leaves(cl, i);
            let last = leaves.len().saturating_sub(1);
            let name = node.name.clone();
            std::iter::once(Item::NodeFiles(files, Some(base))).chain(
                leaves.into_iter().enumerate().map(move |(k, spec)| {
                    Item::Leaf(Job {
                        idx: 0,
                        node: name.clone(),
                        spec,
                        serial: Vec::new(),
                        end_of_cp: (k == last).then_some(i),
                    })
                }),
            )
        });
    let workers = cl.workers.iter().flat_map(move |name| {
        let base = node_root(name);
        let files = vec![(
            format!("{base}/pki/ca.crt"),
            worker_pem(CaRole::Kubernetes),
            write::PUBLIC,
        )];
        std::iter::once(Item::NodeFiles(files, None)).chain(
            kubeadm::worker_leaves(cl, name).into_iter().map(|spec| {
                Item::Leaf(Job {
                    idx: 0,
                    node: name.clone(),
                    spec,
                    serial: Vec::new(),
                    end_of_cp: None,
                })
            }),
        )
    });
    cp.chain(workers)
}

/// Serial numbers from the token's RNG, fetched [`SERIAL_BLOCK`] at a time.
struct Serials {
    pool: Zeroizing<Vec<u8>>,
    at: usize,
}

impl Serials {
    fn next(&mut self, token: &dyn Token) -> Result<Vec<u8>, TokenError> {
        if self.at + SERIAL_LEN > self.pool.len() {
            self.pool = Zeroizing::new(token.random(SERIAL_LEN * SERIAL_BLOCK)?);
            self.at = 0;
        }
        let s = serial_from(&self.pool[self.at..self.at + SERIAL_LEN]);
        self.at += SERIAL_LEN;
        Ok(s)
    }
}

/// A finished item waiting for its batch to be recorded.
#[allow(clippy::large_enum_variant)] // moved a few times per leaf; a box only adds an allocation
enum Ready {
    Files(Vec<File>, Option<String>),
    Leaf(Leaf, Option<usize>),
}

/// Records a batch (one journal frame), then writes its files, listed in
/// plan order; a batch of workers is written by `writers` threads at once.
fn flush(
    batch: &mut Vec<Ready>,
    st: &mut Staging,
    sa: &mut Sa<'_>,
    audit: &mut dyn Audit,
    writers: usize,
) -> Result<(), CeremonyError> {
    let events: Vec<Event> = batch
        .iter_mut()
        .filter_map(|r| match r {
            Ready::Leaf(leaf, _) => leaf.event.take(),
            Ready::Files(..) => None,
        })
        .collect();
    // Durable on the record before any file of the batch exists.
    audit.record_all(events)?;
    // Workers' nodes only: a control-plane node also gets the one
    // service-account key pair, made on its own thread.
    let shared = writers > 1
        && batch.len() >= SHARED_WRITE_MIN
        && batch.iter().all(|r| !matches!(r, Ready::Files(_, Some(_))));
    if shared {
        return write_shared(std::mem::take(batch), st, writers);
    }
    for r in batch.drain(..) {
        match r {
            Ready::Files(files, control_plane) => {
                for (path, bytes, mode) in files {
                    st.write(&path, &bytes, mode)?;
                }
                if let Some(base) = control_plane {
                    for (path, bytes, mode) in sa.files(&base)? {
                        st.write(&path, &bytes, mode)?;
                    }
                }
            }
            Ready::Leaf(leaf, end_of_cp) => {
                for (path, bytes, mode) in leaf.files {
                    st.write(&path, &bytes, mode)?;
                }
                crate::failpoint::hit("leaf");
                if end_of_cp == Some(0) {
                    // Test-only crash point: some leaves signed (and recorded), not all.
                    crate::failpoint::hit("mid-leaves");
                }
            }
        }
    }
    Ok(())
}

/// Writes a batch of workers' nodes from `writers` threads, each a run of
/// consecutive nodes. Most of a batch's writing is the kernel's, creating
/// each node's four directories and two files; shared, it no longer holds
/// up the calling thread, which at the end of a run is all there is left to
/// do. The files are listed in plan order all the same; on an error, the
/// first in plan order is returned.
fn write_shared(batch: Vec<Ready>, st: &mut Staging, writers: usize) -> Result<(), CeremonyError> {
    fn write_part(
        st: &Staging,
        part: Vec<Ready>,
    ) -> Result<Vec<(String, [u8; 32], u32)>, CeremonyError> {
        let mut listed = Vec::with_capacity(part.len() * 2);
        for r in part {
            let (files, leaf) = match r {
                Ready::Files(files, _) => (files, false),
                Ready::Leaf(leaf, _) => (leaf.files, true),
            };
            for (path, bytes, mode) in files {
                let sha = st.put(&path, &bytes, mode)?;
                listed.push((path, sha, mode));
            }
            if leaf {
                crate::failpoint::hit("leaf");
            }
        }
        Ok(listed)
    }
    let per = batch.len().div_ceil(writers);
    let mut parts: Vec<Vec<Ready>> = Vec::with_capacity(writers);
    let mut items = batch.into_iter();
    loop {
        let part: Vec<Ready> = items.by_ref().take(per).collect();
        if part.is_empty() {
            break;
        }
        parts.push(part);
    }
    let shared: &Staging = st;
    let results: Vec<_> = std::thread::scope(|s| {
        let mut parts = parts.into_iter();
        let first = parts.next();
        let spawned: Vec<_> = parts
            .map(|part| {
                std::thread::Builder::new()
                    .name("bundle-writer".into())
                    .spawn_scoped(s, || write_part(shared, part))
            })
            .collect();
        let first = first.map(|p| write_part(shared, p));
        first
            .into_iter()
            .chain(spawned.into_iter().map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    Err(CeremonyError::Internal(
                        "a bundle writer thread panicked".into(),
                    ))
                }),
                Err(e) => Err(spawn_failed(e)),
            }))
            .collect()
    });
    for r in results {
        st.listed(r?);
    }
    Ok(())
}

fn spawn_failed(e: std::io::Error) -> CeremonyError {
    CeremonyError::Internal(format!("cannot start a leaf thread: {e}"))
}

fn progress_bar(total: usize, interactive: bool) -> ProgressBar {
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

/// Writes every node's etc/kubernetes into the staging directory; `audit`
/// records each certificate (in batches) before its files are written.
pub fn write_nodes(
    token: &dyn Token,
    st: &mut Staging,
    cl: &ClusterSpec,
    cas: &[CaState],
    run: LeafRun,
    audit: &mut dyn Audit,
) -> Result<(), CeremonyError> {
    let bar = progress_bar(leaf_count(cl), run.interactive);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let sessions = run.max_sessions.unwrap_or(cores).max(1);
    let pool = Sessions::new(token.signers(sessions)?);
    // Workers compute, one per core; each session has a signing thread,
    // which only waits for the token.
    let workers = cores;
    let ctx = Ctx {
        cl,
        cas,
        now: run.now,
        kube_ca_data: kubeconfig::ca_data(&x509::to_pem(&ca(cas, CaRole::Kubernetes).der)),
        stopping: AtomicBool::new(false),
    };
    let tasks = Tasks::default();
    let (sign_tx, sign_rx) = mpsc::channel::<Prepared>();
    let sign_rx = Mutex::new(sign_rx);
    let (done_tx, done_rx) = mpsc::channel::<ToMain>();
    let result = std::thread::scope(|s| {
        // One service-account key pair, identical on every control-plane
        // node, made while the first leaves are under way.
        let sa = std::thread::Builder::new()
            .name("sa-key".into())
            .spawn_scoped(s, || -> Result<(LeafKey, String), CeremonyError> {
                let sa = match run.sa_key.filter(|k| k.key_type() == cl.sa_key) {
                    Some(k) => k.join()?,
                    None => keys::generate(cl.sa_key)?,
                };
                let public = keys::public_pem(&sa.spki).map_err(x509::X509Error::from)?;
                Ok((sa, public))
            })
            .map_err(spawn_failed)?;
        for n in 0..pool.len() {
            let (ctx, pool, chunks) = (&ctx, &pool, &sign_rx);
            let (tasks, done) = (&tasks, done_tx.clone());
            std::thread::Builder::new()
                .name("signer".into())
                .spawn_scoped(s, move || signer(n, ctx, pool, chunks, tasks, done))
                .map_err(spawn_failed)?;
        }
        for _ in 0..workers {
            let (ctx, pool, tasks, done) = (&ctx, &pool, &tasks, done_tx.clone());
            let to_sign = if pool.is_empty() {
                ToSign::Main
            } else {
                ToSign::Signers(sign_tx.clone())
            };
            std::thread::Builder::new()
                .name("leaf-worker".into())
                .spawn_scoped(s, move || worker(ctx, tasks, to_sign, done, pool))
                .map_err(spawn_failed)?;
        }
        // Only the pipeline's threads may hold these now: once they are
        // gone, so are the channels.
        drop((sign_tx, done_tx));
        let mut sa = Sa::Making(sa);
        let outcome = drive(
            token, st, &ctx, &mut sa, &tasks, &done_rx, audit, &bar, workers,
        );
        // Whatever is still under way (only on an error) is neither signed
        // nor prepared any more: the workers stop, then the signing threads,
        // once no worker can hand them a chunk.
        ctx.stopping.store(true, Ordering::Relaxed);
        tasks.stop();
        while done_rx.recv().is_ok() {}
        outcome
    });
    bar.finish_and_clear();
    result
}

/// The calling thread's part: dispatch in order, sign when it must, put
/// results back in order, record and write them in batches.
#[allow(clippy::too_many_arguments)] // the pipeline's ends, passed explicitly
fn drive(
    token: &dyn Token,
    st: &mut Staging,
    ctx: &Ctx<'_>,
    sa: &mut Sa<'_>,
    tasks: &Tasks,
    done: &Receiver<ToMain>,
    audit: &mut dyn Audit,
    bar: &ProgressBar,
    writers: usize,
) -> Result<(), CeremonyError> {
    let (cl, cas) = (ctx.cl, ctx.cas);
    let mut items = items(cl, cas).enumerate().peekable();
    let mut serials = Serials {
        pool: Zeroizing::new(Vec::new()),
        at: 0,
    };
    // Finished out of order, by index; what is waiting for the next flush.
    let mut finished: BTreeMap<usize, Ready> = BTreeMap::new();
    let mut batch: Vec<Ready> = Vec::new();
    // Leaves dispatched and not yet received; dispatched and not yet
    // written (at most WINDOW: what memory holds, whatever the order in
    // which chunks come back).
    let (mut next, mut in_flight, mut unwritten, mut batch_leaves) = (0usize, 0, 0, 0);
    let mut dispatched = 0usize;
    // One message from the pipeline: finished leaves, or a chunk to sign here.
    let take = |msg: ToMain,
                in_flight: &mut usize,
                finished: &mut BTreeMap<usize, Ready>|
     -> Result<(), CeremonyError> {
        match msg {
            ToMain::Done(leaves) => {
                for (idx, end_of_cp, leaf) in leaves {
                    match leaf {
                        Ok(leaf) => {
                            *in_flight -= 1;
                            bar.inc(1);
                            finished.insert(idx, Ready::Leaf(leaf, end_of_cp));
                        }
                        // The reason the gate stopped, if it did; else the leaf's error.
                        Err(e) => return Err(token.checkpoint().err().map_or(e, Into::into)),
                    }
                }
                Ok(())
            }
            ToMain::Sign(prepared) => {
                tasks.taken();
                // A stop asked for (Ctrl-C) ends the run before the next
                // signature; the chunk's leaves then fail, and the reason is
                // the checkpoint's.
                let signed = sign_chunk(ctx, *prepared, |key, tbs| {
                    token.checkpoint()?;
                    token.sign(key, tbs)
                });
                tasks.finish(signed);
                Ok(())
            }
        }
    };
    let send = |chunk: Vec<Job>| -> Result<(), CeremonyError> {
        tasks.prepare(chunk);
        Ok(())
    };
    loop {
        // Dispatch up to the window, CHUNK leaves to a message (a
        // control-plane node's leaves end one: its batch is recorded as soon
        // as they are back), and never keep back a part-filled chunk: what
        // is counted in flight is out.
        let mut chunk = Vec::new();
        while unwritten < WINDOW {
            let Some((idx, item)) = items.next() else {
                break;
            };
            match item {
                Item::NodeFiles(files, control_plane) => {
                    finished.insert(idx, Ready::Files(files, control_plane));
                }
                Item::Leaf(mut job) => {
                    // A stop asked for (Ctrl-C) ends the run before the next leaf.
                    token.checkpoint()?;
                    job.idx = idx;
                    job.serial = serials.next(token)?;
                    let end = job.end_of_cp.is_some();
                    chunk.push(job);
                    in_flight += 1;
                    unwritten += 1;
                    dispatched += 1;
                    if chunk.len() == CHUNK || end || dispatched == FIRST_CHUNK {
                        send(std::mem::take(&mut chunk))?;
                    }
                }
            }
        }
        if !chunk.is_empty() {
            send(chunk)?;
        }
        // Everything that has arrived, without waiting.
        while let Ok(msg) = done.try_recv() {
            take(msg, &mut in_flight, &mut finished)?;
        }
        // Then what is next in plan order goes into the batch. Batches end
        // at fixed places (each control-plane node, every BATCH leaves of
        // workers, the end), so a run's frames do not depend on timing.
        let mut cut = false;
        while !cut {
            let Some(r) = finished.remove(&next) else {
                break;
            };
            next += 1;
            if let Ready::Leaf(_, end_of_cp) = &r {
                batch_leaves += 1;
                cut = end_of_cp.is_some() || batch_leaves >= BATCH;
            }
            batch.push(r);
        }
        let all_in = in_flight == 0 && items.peek().is_none() && finished.is_empty();
        if !batch.is_empty() && (cut || all_in) {
            flush(&mut batch, st, sa, audit, writers)?;
            unwritten -= batch_leaves;
            batch_leaves = 0;
        }
        if all_in {
            return Ok(());
        }
        // Wait only for a leaf that is out: a cut can consume everything
        // that came back, and then the next item is not dispatched yet.
        if in_flight > 0 && !finished.contains_key(&next) {
            let msg = done
                .recv()
                .map_err(|_| CeremonyError::Internal("the leaf workers stopped".into()))?;
            take(msg, &mut in_flight, &mut finished)?;
        } else if in_flight == 0 && !cut && unwritten >= WINDOW {
            // Cannot happen while WINDOW exceeds a batch (every leaf back,
            // a full window waiting, and no batch to cut): say so rather
            // than spin.
            return Err(CeremonyError::Internal(
                "the leaf pipeline stalled with its window full".into(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::token::fake::Fake;

    /// Runs `write_nodes` into a fresh staging directory under `dir`: its
    /// outcome, what it staged and the events it recorded, in order.
    fn run_nodes(
        token: &Fake,
        cas: &[CaState],
        cl: &ClusterSpec,
        now: SystemTime,
        dir: &std::path::Path,
    ) -> (Result<(), CeremonyError>, Staging, Vec<Event>) {
        let mut st = Staging::begin(&dir.join("out"), &[3; 32]).unwrap();
        let mut events: Vec<Event> = Vec::new();
        let run = LeafRun {
            now,
            interactive: false,
            // The fake's sessions, whatever this machine's cores.
            max_sessions: Some(token.sessions.get()).filter(|&n| n > 0),
            sa_key: None,
        };
        let outcome = write_nodes(token, &mut st, cl, cas, run, &mut events);
        (outcome, st, events)
    }

    /// Issues the cluster's bundle and returns the files written and the
    /// events recorded, in order.
    fn issue(
        token: &Fake,
        cas: &[CaState],
        cl: &ClusterSpec,
        now: SystemTime,
    ) -> (Vec<(String, u32)>, Vec<Event>) {
        let d = tempfile::tempdir().unwrap();
        let (outcome, st, events) = run_nodes(token, cas, cl, now, d.path());
        outcome.unwrap();
        let files = st
            .written()
            .iter()
            .map(|(p, _, m)| (p.clone(), *m))
            .collect();
        (files, events)
    }

    /// SHA256SUMS: one `sha256sum -c` line per file, sorted by path
    /// whatever the order of writing.
    /// A workers' batch as `flush` gets it: each node's own file, then its leaf.
    fn workers_batch(nodes: usize) -> Vec<Ready> {
        (0..nodes)
            .flat_map(|i| {
                let base = format!("nodes/w{i}/etc/kubernetes");
                let file = |path: String, mode| {
                    let body = Zeroizing::new(path.clone().into_bytes());
                    (path, body, mode)
                };
                [
                    Ready::Files(
                        vec![file(format!("{base}/pki/ca.crt"), write::PUBLIC)],
                        None,
                    ),
                    Ready::Leaf(
                        Leaf {
                            event: None,
                            files: vec![file(format!("{base}/kubelet.conf"), write::SECRET)],
                        },
                        None,
                    ),
                ]
            })
            .collect()
    }

    /// Workers prepare chunks for the token before they finish signed ones
    /// while fewer than AHEAD wait for it, and finish first once enough do.
    #[test]
    fn workers_keep_the_token_fed_before_they_finish_chunks() {
        let tasks = Tasks::default();
        let signed = || Signed {
            prepared: Prepared {
                pending: Vec::new(),
                failure: None,
                host: Duration::ZERO,
            },
            signatures: Vec::new(),
            token: None,
        };
        let next = |tasks: &Tasks| match tasks.next() {
            Some(Task::Prepare(_)) => "prepare",
            Some(Task::Finish(_)) => "finish",
            None => "stopped",
        };
        tasks.finish(signed());
        for _ in 0..AHEAD + 1 {
            tasks.prepare(Vec::new());
        }
        let mut order: Vec<_> = (0..AHEAD).map(|_| next(&tasks)).collect();
        // AHEAD chunks on their way to the token: the signed one first, then
        // what is left to prepare.
        order.extend([next(&tasks), next(&tasks)]);
        assert_eq!(order[..AHEAD], ["prepare"; AHEAD]);
        assert_eq!(order[AHEAD..], ["finish", "prepare"]);
        // The token takes two of the three: one ahead, so a new chunk is
        // prepared before the signed one is finished.
        tasks.taken();
        tasks.taken();
        tasks.finish(signed());
        tasks.prepare(Vec::new());
        assert_eq!([next(&tasks), next(&tasks)], ["prepare", "finish"]);
        tasks.stop();
        assert_eq!(next(&tasks), "stopped");
    }

    #[test]
    fn a_batch_written_by_several_threads_is_listed_in_plan_order() {
        let d = tempfile::tempdir().unwrap();
        let mut serial = Staging::begin(&d.path().join("serial"), &[5; 32]).unwrap();
        for r in workers_batch(100) {
            let files = match r {
                Ready::Files(files, _) => files,
                Ready::Leaf(leaf, _) => leaf.files,
            };
            for (path, bytes, mode) in files {
                serial.write(&path, &bytes, mode).unwrap();
            }
        }
        let mut shared = Staging::begin(&d.path().join("shared"), &[5; 32]).unwrap();
        write_shared(workers_batch(100), &mut shared, 3).unwrap();
        assert_eq!(shared.written(), serial.written());
        let shared = shared.commit().unwrap();
        for (path, _, _) in serial.written() {
            assert_eq!(std::fs::read(shared.join(path)).unwrap(), path.as_bytes());
        }
    }

    #[test]
    fn a_batch_written_by_several_threads_fails_on_its_first_error_in_plan_order() {
        let d = tempfile::tempdir().unwrap();
        let mut st = Staging::begin(&d.path().join("out"), &[5; 32]).unwrap();
        // Three parts of 67 items: node 40 is in the second, node 80 in the third.
        for n in [80, 40] {
            st.write(
                &format!("nodes/w{n}/etc/kubernetes/kubelet.conf"),
                b"",
                write::SECRET,
            )
            .unwrap();
        }
        let e = write_shared(workers_batch(100), &mut st, 3).unwrap_err();
        assert!(
            e.to_string().contains("w40/etc/kubernetes/kubelet.conf"),
            "{e}"
        );
    }

    /// The demo plan's cluster with `workers` workers, and its CAs made on `token`.
    fn demo_cluster(token: &Fake, workers: usize, now: SystemTime) -> (ClusterSpec, Vec<CaState>) {
        let plan = concat!(env!("CARGO_MANIFEST_DIR"), "/ceremony/plans/demo.toml");
        let loaded = crate::plan::load(std::path::Path::new(plan), now).unwrap();
        let mut cl = loaded.plan.cluster.clone().unwrap();
        cl.workers = (1..=workers).map(|i| format!("worker{i}")).collect();
        let mut cas: Vec<CaState> = Vec::new();
        let mut audit: Vec<Event> = Vec::new();
        for spec in &loaded.plan.cas {
            let issuer = cas.first().filter(|_| spec.role != CaRole::Root);
            let ca = super::super::ca::ensure_ca(token, spec, issuer, now, &mut |_| {}, &mut audit)
                .unwrap();
            cas.push(ca);
        }
        (cl, cas)
    }

    /// The error's text with its sources.
    fn chain(e: &CeremonyError) -> String {
        let mut chain = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            chain += &format!(": {s}");
            source = s.source();
        }
        chain
    }

    /// After a run stopped midway: whole batches were recorded (the
    /// control-plane nodes' leaves, then 256 at a time), fewer than
    /// `before`, and the leaf files written are exactly those recorded.
    fn assert_records_and_files_in_step(
        cl: &ClusterSpec,
        st: &Staging,
        events: &[Event],
        before: usize,
    ) {
        let recorded: std::collections::BTreeSet<String> = events
            .iter()
            .map(|e| match e {
                Event::CertificateIssued(c) => c.file.clone().unwrap(),
                other => panic!("unexpected event {other:?}"),
            })
            .collect();
        // Where a batch may end: after each control-plane node, then every
        // BATCH workers.
        let mut ends = vec![0];
        for i in 0..cl.control_plane.len() {
            ends.push(ends[ends.len() - 1] + kubeadm::control_plane_leaves(cl, i).len());
        }
        let cp = ends[ends.len() - 1];
        ends.extend((1..=cl.workers.len() / BATCH).map(|k| cp + k * BATCH));
        assert!(
            recorded.len() < before && ends.contains(&recorded.len()),
            "{} recorded",
            recorded.len()
        );
        let leaf_files: std::collections::BTreeSet<String> = st
            .written()
            .iter()
            .map(|(p, _, _)| p.clone())
            .filter(|p| p.ends_with(".crt") && !p.ends_with("ca.crt") || p.ends_with(".conf"))
            .collect();
        assert_eq!(leaf_files, recorded);
    }

    /// A signature that fails in the middle of the workers ends the run
    /// with that error (no hang, whatever is still in flight), and what was
    /// written before it is exactly what was recorded.
    #[test]
    fn a_failed_signature_stops_the_pipeline_with_records_and_files_in_step() {
        let now = SystemTime::now();
        let token = Fake::new();
        let (cl, cas) = demo_cluster(&token, 1000, now);
        token.sessions.set(2);
        token.budget.set(700);
        let d = tempfile::tempdir().unwrap();
        let (outcome, st, events) = run_nodes(&token, &cas, &cl, now, d.path());
        let chain = chain(&outcome.unwrap_err());
        assert!(
            chain.starts_with("signing the certificate for CN=system:node:worker")
                && chain.contains("budget is spent"),
            "{chain}"
        );
        assert_records_and_files_in_step(&cl, &st, &events, 700);
    }

    /// The same for a stop asked between signatures (Ctrl-C, through the
    /// token's checkpoint) on a token without extra sessions, where the
    /// calling thread signs the chunks itself.
    #[test]
    fn a_stop_on_a_token_without_sessions_ends_the_run_the_same_way() {
        let now = SystemTime::now();
        let token = Fake::new();
        let (cl, cas) = demo_cluster(&token, 1000, now);
        token.calls.borrow_mut().clear();
        // A checkpoint for each leaf dispatched (1,024 at first), then one
        // before each signature: the stop comes among the workers.
        token.checkpoints.set(1_500);
        let d = tempfile::tempdir().unwrap();
        let (outcome, st, events) = run_nodes(&token, &cas, &cl, now, d.path());
        let chain = chain(&outcome.unwrap_err());
        assert!(chain.contains("the fake run stops"), "{chain}");
        let signed = token.calls("sign");
        assert!(signed > 34 && signed < 1_000, "{signed} signed");
        assert_records_and_files_in_step(&cl, &st, &events, signed + 1);
    }

    /// A token slower than the host (an HSM, 10 ms a signature): after
    /// the first chunk, signed alone, every session signs at once, and the
    /// bundle is the one a token without sessions makes, in plan order.
    #[test]
    fn a_slow_token_signs_on_every_session_at_once() {
        let now = SystemTime::now();
        let token = Fake::new();
        let (cl, cas) = demo_cluster(&token, 40, now);
        let (files_here, events_here) = issue(&token, &cas, &cl, now);
        token.sessions.set(3);
        token.delay.set(Duration::from_millis(10));
        let (files, events) = issue(&token, &cas, &cl, now);
        assert_eq!(
            token.signing.1.load(Ordering::SeqCst),
            3,
            "sessions at once"
        );
        assert_eq!(files, files_here);
        assert_eq!(issued(&events).len(), leaf_count(&cl));
        assert_eq!(issued(&events), issued(&events_here));
    }

    /// Each record's node and file: only `certificate_issued` records.
    fn issued(events: &[Event]) -> Vec<(Option<String>, Option<String>)> {
        events
            .iter()
            .map(|e| match e {
                Event::CertificateIssued(c) => (c.node.clone(), c.file.clone()),
                other => panic!("unexpected event {other:?}"),
            })
            .collect()
    }

    #[test]
    fn the_pipeline_keeps_plan_order_with_or_without_signer_sessions() {
        let now = SystemTime::now();
        let token = Fake::new();
        let (cl, cas) = demo_cluster(&token, 1000, now);
        token.calls.borrow_mut().clear();
        // No extra session: every leaf is signed on this thread.
        let (files_here, events_here) = issue(&token, &cas, &cl, now);
        let leaves = leaf_count(&cl);
        assert_eq!(token.calls("sign"), leaves);
        // Two signer sessions: none is signed here; the same files, in the same order.
        token.sessions.set(2);
        token.calls.borrow_mut().clear();
        let (files, events) = issue(&token, &cas, &cl, now);
        assert_eq!(token.calls("sign"), 0);
        assert_eq!(files, files_here);
        // One record per leaf, in plan order, naming the file written for it.
        let issued = issued(&events);
        assert_eq!(issued.len(), leaves);
        assert_eq!(issued, super::tests::issued(&events_here));
        let positions: Vec<usize> = issued
            .iter()
            .map(|(_, f)| {
                files
                    .iter()
                    .position(|(p, _)| Some(p) == f.as_ref())
                    .expect("the recorded file was written")
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "plan order");
        assert_eq!(issued.last().unwrap().0.as_deref(), Some("worker1000"));
    }
}
