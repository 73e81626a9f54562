//! Issuing the kubeadm bundle: for every node, every leaf key made on the
//! laptop, every certificate signed by its intermediate through the token and
//! checked, recorded, and written into the staging directory in kubeadm's
//! layout.
//!
//! The token must be the bottleneck, never this tool, so leaves go through a
//! bounded pipeline of chunks rather than one after the other:
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
//!   records), preparing first while the token has fewer than
//!   [`AHEAD`](tasks::AHEAD) chunks waiting: they never wait for the token,
//!   nor it for them;
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
//!
//! The calling thread's part is here; the workers and signing threads are in
//! [`tasks`], what the bundle holds and a leaf's files in [`items`],
//! recording and writing a batch in [`batch`].

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::SystemTime;

use indicatif::ProgressBar;
use zeroize::Zeroizing;

use super::ca::CaState;
use super::sessions::Sessions;
use crate::audit::Audit;
use crate::bundle::kubeadm_config::Renderer;
use crate::bundle::kubeconfig;
use crate::bundle::write::Staging;
use crate::error::CeremonyError;
use crate::keys::leaf::{self as keys, LeafKey};
use crate::plan::{CaRole, ClusterSpec};
use crate::token::{SERIAL_LEN, Token, TokenError, serial_from};
use crate::x509;
use batch::{FinishedItem, SaKeyPair, record_and_write};
use items::{Job, PlanItem, items};
use tasks::{Prepared, SignRoute, Tasks, ToCaller, sign_chunk, signer, worker};

mod batch;
mod items;
mod tasks;

/// Certificates per journal frame (workers; a control-plane node's leaves
/// are one frame). Fixed, so the journal's frames never depend on timing.
const BATCH: usize = 256;
/// Leaves under way at most, from dispatch to written: what memory holds
/// (a few MiB), whatever the number of nodes. Four batches: while one is
/// recorded and written, the pipeline's threads still have work (at two
/// batches they ran dry during each write, a twentieth of the run idle).
const WINDOW: usize = 4 * BATCH;
/// Leaves handed on at a time between the pipeline's threads, at most: a
/// wake-up per chunk, not per leaf, and each pass over a chunk (keys,
/// signatures, checks) keeps its code and data in the core's caches. A slow
/// token gets shorter chunks (`Sessions::chunk_len`).
const CHUNK: usize = 32;
/// Leaves in a run's first chunk. One session signs until the token has
/// been measured signing a chunk alone, so a short first chunk lets a slow
/// token have its other sessions sooner (an HSM at 100 ms a signature: after
/// 0.4 s, rather than after a control-plane node's dozen leaves, 1.2 s).
const FIRST_CHUNK: usize = 4;
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
    /// The operator's progress bar (hidden when nobody watches), advanced
    /// once per leaf written.
    pub progress: ProgressBar,
    /// Whether the operator asked the run to stop (Ctrl-C): asked before
    /// each signature on the sessions.
    pub stop_requested: fn() -> bool,
    /// Token sessions to sign on at most (the plan's `token.sessions`);
    /// None: one per core.
    pub max_sessions: Option<usize>,
    /// The service-account key, when the run started making it early (of
    /// the cluster's `sa_key` type); None: it is made here.
    pub sa_key: Option<keys::KeyInBackground>,
    /// The nodes to issue (a continuing ceremony); None: every node.
    pub only: Option<std::collections::BTreeSet<String>>,
    /// The service-account pair to write as it is (carried from the
    /// previous ceremony); None: a new pair.
    pub sa_given: Option<GivenSa>,
    /// The previous public key when the pair is rotated: written beside the
    /// new pair as `pki/sa-previous.pub`.
    pub sa_previous_public: Option<Vec<u8>>,
}

/// A service-account pair written byte for byte as given.
#[derive(Debug)]
pub struct GivenSa {
    pub key: Zeroizing<Vec<u8>>,
    pub public: Vec<u8>,
}

/// What the pipeline's threads share.
struct Ctx<'a> {
    cl: &'a ClusterSpec,
    cas: &'a [CaState],
    now: SystemTime,
    /// The Kubernetes CA certificate as every kubeconfig embeds it.
    kube_ca_data: String,
    /// Each node's kubeadm-config.yaml.
    configs: Renderer<'a>,
    /// Set when the run ends on an error: nothing more is prepared or signed.
    stopping: AtomicBool,
    /// `LeafRun::stop_requested`.
    stop_requested: fn() -> bool,
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

fn spawn_failed(e: std::io::Error) -> CeremonyError {
    CeremonyError::Internal(format!("cannot start a leaf thread: {e}"))
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
    let bar = run.progress.clone();
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
        kube_ca_data: kubeconfig::ca_data(&ca(cas, CaRole::Kubernetes).trust_pem()),
        configs: Renderer::new(cl, &ca(cas, CaRole::Kubernetes).der)
            .map_err(CeremonyError::Internal)?,
        stopping: AtomicBool::new(false),
        stop_requested: run.stop_requested,
    };
    let tasks = Tasks::default();
    let (sign_tx, sign_rx) = mpsc::channel::<Prepared>();
    let sign_rx = Mutex::new(sign_rx);
    let (done_tx, done_rx) = mpsc::channel::<ToCaller>();
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
                SignRoute::Caller
            } else {
                SignRoute::Signers(sign_tx.clone())
            };
            std::thread::Builder::new()
                .name("leaf-worker".into())
                .spawn_scoped(s, move || worker(ctx, tasks, to_sign, done, pool))
                .map_err(spawn_failed)?;
        }
        // Only the pipeline's threads may hold these now: once they are
        // gone, so are the channels.
        drop((sign_tx, done_tx));
        let mut sa = match run.sa_given {
            Some(given) => SaKeyPair::Given(given, run.sa_previous_public.clone()),
            None => SaKeyPair::Making(sa, run.sa_previous_public.clone()),
        };
        let outcome = dispatch_and_write(
            token,
            st,
            &ctx,
            &pool,
            &mut sa,
            &tasks,
            &done_rx,
            audit,
            &bar,
            workers,
            run.only.as_ref(),
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
fn dispatch_and_write(
    token: &dyn Token,
    st: &mut Staging,
    ctx: &Ctx<'_>,
    pool: &Sessions<'_>,
    sa: &mut SaKeyPair<'_>,
    tasks: &Tasks,
    done: &Receiver<ToCaller>,
    audit: &mut dyn Audit,
    bar: &ProgressBar,
    writers: usize,
    only: Option<&std::collections::BTreeSet<String>>,
) -> Result<(), CeremonyError> {
    let (cl, cas) = (ctx.cl, ctx.cas);
    let mut items = items(cl, cas, &ctx.configs, only).enumerate().peekable();
    let mut serials = Serials {
        pool: Zeroizing::new(Vec::new()),
        at: 0,
    };
    // Finished out of order, by index; what is waiting for the next batch.
    let mut finished: BTreeMap<usize, FinishedItem> = BTreeMap::new();
    let mut batch: Vec<FinishedItem> = Vec::new();
    // Leaves dispatched and not yet received; dispatched and not yet
    // written (at most WINDOW: what memory holds, whatever the order in
    // which chunks come back).
    let (mut next, mut in_flight, mut unwritten, mut batch_leaves) = (0usize, 0, 0, 0);
    let mut dispatched = 0usize;
    // Nothing more is dispatched until the first chunk is back: a token
    // signing on extra sessions has then been measured, and the chunks are
    // of its length from the start (a slow token's first node spread over
    // its sessions). Signed on the calling thread, a chunk is not measured,
    // and chunks stay CHUNK long.
    let mut first_back = false;
    // One message from the pipeline: finished leaves, or a chunk to sign here.
    let take = |msg: ToCaller,
                in_flight: &mut usize,
                finished: &mut BTreeMap<usize, FinishedItem>|
     -> Result<(), CeremonyError> {
        match msg {
            ToCaller::Done(leaves) => {
                for (idx, end_of_cp, leaf) in leaves {
                    match leaf {
                        Ok(leaf) => {
                            *in_flight -= 1;
                            bar.inc(1);
                            finished.insert(idx, FinishedItem::Leaf(leaf, end_of_cp));
                        }
                        // The reason the gate stopped, if it did; else the leaf's error.
                        Err(e) => return Err(token.checkpoint().err().map_or(e, Into::into)),
                    }
                }
                Ok(())
            }
            ToCaller::Sign(prepared) => {
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
        // Dispatch up to the window, chunk_len leaves to a message (a
        // control-plane node's leaves end one: its batch is recorded as soon
        // as they are back), and never keep back a part-filled chunk: what
        // is counted in flight is out.
        let mut chunk = Vec::new();
        first_back |= dispatched >= FIRST_CHUNK && in_flight == 0;
        let chunk_len = pool.chunk_len(CHUNK);
        while unwritten < WINDOW && (first_back || dispatched < FIRST_CHUNK) {
            let Some((idx, item)) = items.next() else {
                break;
            };
            match item {
                PlanItem::NodeFiles(files, control_plane) => {
                    finished.insert(idx, FinishedItem::Files(files, control_plane));
                }
                PlanItem::Failed(e) => return Err(e),
                PlanItem::Leaf(mut job) => {
                    // A stop asked for (Ctrl-C) ends the run before the next leaf.
                    token.checkpoint()?;
                    job.idx = idx;
                    job.serial = serials.next(token)?;
                    let end = job.end_of_cp.is_some();
                    chunk.push(job);
                    in_flight += 1;
                    unwritten += 1;
                    dispatched += 1;
                    if chunk.len() >= chunk_len || end || dispatched == FIRST_CHUNK {
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
            if let FinishedItem::Leaf(_, end_of_cp) = &r {
                batch_leaves += 1;
                cut = end_of_cp.is_some() || batch_leaves >= BATCH;
            }
            batch.push(r);
        }
        let all_in = in_flight == 0 && items.peek().is_none() && finished.is_empty();
        if !batch.is_empty() && (cut || all_in) {
            record_and_write(&mut batch, st, sa, audit, writers)?;
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

    use std::time::Duration;

    use super::batch::write_shared;
    use super::items::Leaf;
    use super::tasks::{AHEAD, Signed, WorkerTask};
    use super::*;
    use crate::audit::Event;
    use crate::bundle::write;
    use crate::profile::kubeadm;
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
            progress: ProgressBar::hidden(),
            stop_requested: || false,
            // The fake's sessions, whatever this machine's cores.
            max_sessions: Some(token.sessions.get()).filter(|&n| n > 0),
            sa_key: None,
            only: None,
            sa_given: None,
            sa_previous_public: None,
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
        let (outcome, mut st, events) = run_nodes(token, cas, cl, now, d.path());
        outcome.unwrap();
        let files = st
            .written()
            .unwrap()
            .iter()
            .map(|(p, _, m)| (p.clone(), *m))
            .collect();
        (files, events)
    }

    /// SHA256SUMS: one `sha256sum -c` line per file, sorted by path
    /// whatever the order of writing.
    /// A workers' batch as `record_and_write` gets it: each node's own file,
    /// then its leaf.
    fn workers_batch(nodes: usize) -> Vec<FinishedItem> {
        (0..nodes)
            .flat_map(|i| {
                let base = format!("nodes/w{i}/etc/kubernetes");
                let file = |path: String, mode| {
                    let body = Zeroizing::new(path.clone().into_bytes());
                    (path, body, mode)
                };
                [
                    FinishedItem::Files(
                        vec![file(format!("{base}/pki/ca.crt"), write::PUBLIC)],
                        None,
                    ),
                    FinishedItem::Leaf(
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
            Some(WorkerTask::Prepare(_)) => "prepare",
            Some(WorkerTask::Finish(_)) => "finish",
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
                FinishedItem::Files(files, _) => files,
                FinishedItem::Leaf(leaf, _) => leaf.files,
            };
            for (path, bytes, mode) in files {
                serial.write(&path, &bytes, mode).unwrap();
            }
        }
        let mut shared = Staging::begin(&d.path().join("shared"), &[5; 32]).unwrap();
        write_shared(workers_batch(100), &mut shared, 3).unwrap();
        let written = serial.written().unwrap();
        assert_eq!(shared.written().unwrap(), written);
        let shared = shared.commit().unwrap();
        for (path, _, _) in written {
            assert_eq!(std::fs::read(shared.join(&path)).unwrap(), path.as_bytes());
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
        st: &mut Staging,
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
            .unwrap()
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
        let (outcome, mut st, events) = run_nodes(&token, &cas, &cl, now, d.path());
        let chain = chain(&outcome.unwrap_err());
        assert!(
            chain.starts_with("signing the certificate for CN=system:node:worker")
                && chain.contains("budget is spent"),
            "{chain}"
        );
        assert_records_and_files_in_step(&cl, &mut st, &events, 700);
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
        let (outcome, mut st, events) = run_nodes(&token, &cas, &cl, now, d.path());
        let chain = chain(&outcome.unwrap_err());
        assert!(chain.contains("the fake run stops"), "{chain}");
        let signed = token.calls("sign");
        assert!(signed > 34 && signed < 1_000, "{signed} signed");
        assert_records_and_files_in_step(&cl, &mut st, &events, signed + 1);
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
        assert_eq!(issued(&events).len(), kubeadm::leaf_count(&cl));
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
        let leaves = kubeadm::leaf_count(&cl);
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
