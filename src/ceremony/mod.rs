//! The flow of `ceremony run`: the order of its steps, from the plan to the
//! sealed output. What it prints goes through `operator`; the token, files
//! and records are reached through their modules.

pub mod csr;
pub mod login;
mod record;
mod recover;
mod seal;

use login::{interactive, login, read_given_pin};
use record::{record_failure, start_record};
use recover::{finish_committed, remove_unfinished_writes};
use seal::{Sealed, seal_and_commit};

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::audit::event::{Environment, PendingKey, PendingStore};
use crate::audit::{self, Audit, Event, Journal};
use crate::bundle::outputs;
use crate::bundle::write::{self, Staging};
use crate::issue::ca::{self, CaState};
use crate::issue::pipeline as bundle;
use crate::keytype::KeyType;
use crate::operator::{gate, interrupt, steps, ui};
use crate::plan::{self, CaRole, LoadedPlan};
use crate::token::Token;
use crate::token::pin::{Pin, PinError};
use crate::token::pkcs11::Pkcs11Token;
use crate::x509;
use gate::{Gate, SharedAudit};
use steps::{Found, Known, Progress, Step};
use ui::Ui;

pub use crate::error::CeremonyError;

/// Where the PIN comes from, as the operator said on the command line.
#[derive(Debug, Clone, Default)]
pub struct PinOptions {
    pub file: Option<PathBuf>,
    pub env: Option<String>,
}

pub struct RunOptions {
    pub plan: PathBuf,
    pub out: PathBuf,
    pub yes: bool,
    pub pin: PinOptions,
    pub module: Option<PathBuf>,
}

/// The distinct key types of the CAs, for the mechanism probe.
fn ca_key_types(p: &LoadedPlan) -> Vec<KeyType> {
    let mut v: Vec<KeyType> = p.plan.cas.iter().map(|c| c.key).collect();
    v.sort_by_key(|k| k.name());
    v.dedup();
    v
}

/// `ceremony run`.
pub fn run(opts: &RunOptions) -> Result<(), CeremonyError> {
    let now = SystemTime::now();
    let loaded = plan::load(&opts.plan, now)?;
    let interactive = interactive();
    if !opts.yes && !interactive {
        return Err(CeremonyError::Usage {
            message: "no terminal to guide the ceremony on, and --yes was not given".into(),
            hint:
                "run it at a terminal, or pass --yes (with --pin-file) for an unattended rehearsal"
                    .into(),
        });
    }
    // Ctrl-C from here on stops the run between operations (and is recorded).
    interrupt::install();
    let ui = Ui::new(interactive, opts.yes);
    if finish_committed(&opts.out, &loaded, &ui)? {
        return Ok(());
    }
    write::check_output(&opts.out, &loaded.sha256)?;
    // An unsealed journal beside OUT must be this plan's (nothing touched if not).
    audit::journal::check_owner(&opts.out, &loaded.sha256)?;
    // Every CSR is checked before the token is opened (all or nothing).
    csr::preflight(&loaded, Some(&ui))?;
    // The service-account key is made while the token works on the CAs,
    // and the leaf keys' random generator seeded.
    crate::leaf::seed_in_background();
    let sa_key = loaded
        .plan
        .cluster
        .as_ref()
        .filter(|cl| cl.mode == plan::LeafMode::Generate)
        .map(|cl| crate::leaf::KeyInBackground::spawn(cl.sa_key));
    let given_pin = read_given_pin(&opts.pin)?;
    let module = opts
        .module
        .clone()
        .unwrap_or_else(|| loaded.plan.module.clone());

    ui.banner(&loaded);
    let progress = Progress::default();
    progress.at.set(Some(Step::Open));
    ui.step(
        &loaded,
        Step::Open,
        &steps::text(&loaded, &module, &opts.out, Step::Open, Known::default()),
    );
    let token = Pkcs11Token::open(&module, &loaded.plan.token_uri, loaded.plan.module_sha256)?;
    let id = token.identity().clone();
    ui.note(&format!("token {id}, firmware {}", id.firmware));
    ui.note(&format!(
        "module SHA-256 {}",
        hex::encode(token.module_sha256())
    ));
    // No PIN given, no terminal to prompt on and no PIN pad: nobody can log
    // in. Say so before the journal is opened, so nothing is touched.
    if given_pin.is_none() && !ui.interactive && !id.protected_auth_path {
        return Err(PinError::NoSource.into());
    }
    // From here on every step is on the record: open (or continue) the
    // journal, and record how the run ends if it fails.
    let (mut journal, env, recovery) = start_record(opts, &loaded, &module, &token, &ui)?;
    let run = Run {
        opts,
        loaded: &loaded,
        module: &module,
        token: &token,
        env: &env,
        ui: &ui,
        resumed: recovery.as_ref().map(|r| r.records),
        interrupted_keys: recovery
            .as_ref()
            .map(|r| r.interrupted_key_generations.clone())
            .unwrap_or_default(),
        interrupted_stores: recovery
            .map(|r| r.interrupted_certificate_stores)
            .unwrap_or_default(),
        progress: &progress,
        sa_key: RefCell::new(sa_key),
        now,
    };
    match recorded_run(&run, &mut journal, given_pin) {
        Ok(finished) => {
            let out = &finished.sealed.out;
            // The sealed log is committed in OUT: the journal, and with it the
            // journal-local identity, is no longer needed.
            let dir = journal.dir().to_path_buf();
            crate::failpoint::hit("before-journal-remove");
            if let Err(e) = journal.remove() {
                ui.warn(&format!(
                    "the sealed log is in {}, but the journal could not be removed ({e}): remove {} by hand",
                    out.display(),
                    dir.display()
                ));
            }
            ui.done(&ui::Summary {
                loaded: &loaded,
                out,
                token: &id,
                cas: &finished.cas,
                written: &finished.sealed.written,
                sha256sums: finished.sealed.sha256sums,
                records: finished.sealed.records,
                final_hash: finished.sealed.final_hash,
            });
            Ok(())
        }
        Err(e) => {
            record_failure(&mut journal, &e, &ui);
            Err(match e {
                // One line: what was done and how to resume (exit 1).
                CeremonyError::Cancelled(reason) => CeremonyError::Cancelled(ui::cancelled_text(
                    &loaded, &opts.out, &progress, &reason,
                )),
                // Exit 2 promises nothing was touched: after a token write it is not so.
                e if e.exit_code() == 2 && progress.wrote_to_token() => {
                    CeremonyError::Midway(Box::new(e))
                }
                e => e,
            })
        }
    }
}

/// The context of a run once the token is open and the journal started.
pub(super) struct Run<'a> {
    opts: &'a RunOptions,
    loaded: &'a LoadedPlan,
    module: &'a Path,
    token: &'a dyn Token,
    env: &'a Environment,
    ui: &'a Ui,
    /// Records of the interrupted run's journal this run continues.
    resumed: Option<u64>,
    /// Key generations that run started and never finished.
    interrupted_keys: Vec<PendingKey>,
    /// CA certificates that run signed and never recorded as stored.
    interrupted_stores: Vec<PendingStore>,
    progress: &'a Progress,
    /// The service-account key being made in the background (bundle mode).
    sa_key: RefCell<Option<crate::leaf::KeyInBackground>>,
    now: SystemTime,
}

/// A finished run: what the end screen shows.
struct Finished {
    cas: Vec<CaState>,
    sealed: Sealed,
}

/// Stops between operations when the operator pressed Ctrl-C.
fn checkpoint() -> Result<(), CeremonyError> {
    if interrupt::requested() {
        // The one line says where (the step reached); the reason is enough.
        return Err(CeremonyError::Cancelled("Ctrl-C".into()));
    }
    Ok(())
}

fn enter(r: &Run<'_>, step: Step, known: Known<'_>) {
    r.progress.at.set(Some(step));
    r.ui.step(
        r.loaded,
        step,
        &steps::text(r.loaded, r.module, &r.opts.out, step, known),
    );
}

/// What the token holds under each CA's label, in plan order (after login,
/// and after `preflight_label` refused anything foreign).
fn found_on_token(token: &dyn Token, loaded: &LoadedPlan) -> Result<Vec<Found>, CeremonyError> {
    let mut v = Vec::new();
    for spec in &loaded.plan.cas {
        let key = token.find_key_pair(&spec.label, spec.key)?.is_some();
        let cert = token.find_certificate(&spec.label)?.is_some();
        v.push(match (key, cert) {
            (true, true) => Found::KeyAndCertificate,
            (true, false) => Found::Key,
            _ => Found::Nothing,
        });
    }
    Ok(v)
}

/// The run after the journal is open: every event goes to `journal`.
fn recorded_run(
    r: &Run<'_>,
    journal: &mut Journal,
    given_pin: Option<Pin>,
) -> Result<Finished, CeremonyError> {
    let (loaded, token, ui, now) = (r.loaded, r.token, r.ui, r.now);
    let id = token.identity().clone();
    checkpoint()?;
    enter(r, Step::Login, Known::default());
    let source = match (&given_pin, &r.opts.pin.file) {
        (Some(_), Some(_)) => "--pin-file",
        (Some(_), None) => "--pin-env",
        (None, _) if id.protected_auth_path => "the token's PIN pad",
        (None, _) => "the terminal prompt",
    };
    login(token, given_pin, ui)?;
    journal.record(Event::LoggedIn {
        source: source.into(),
    })?;
    let mechanisms = token.require_mechanisms(&ca_key_types(loaded))?;
    for (kt, mech) in &mechanisms {
        ui.note(&format!("{kt}: {mech}"));
        journal.record(Event::MechanismChosen {
            key_type: kt.name().into(),
            mechanism: mech.clone(),
        })?;
    }
    remove_unfinished_writes(
        token,
        &loaded.plan.cas,
        &r.interrupted_keys,
        &r.interrupted_stores,
        &mut |text| ui.note(text),
        journal,
    )?;
    for spec in &loaded.plan.cas {
        ca::preflight_label(token, spec)?;
    }
    ca::preflight_validity(token, &loaded.plan, now)?;

    // The preflight screen, then the administrator types the serial to start.
    let found = found_on_token(token, loaded)?;
    let objects = token.list_objects().ok();
    ui.preflight(&ui::Preflight {
        loaded,
        module: r.module,
        module_sha256: &token.module_sha256(),
        out: &r.opts.out,
        token: &id,
        objects: objects.as_deref(),
        mechanisms: &mechanisms,
        found: &found,
        resumed_records: r.resumed,
    });
    ui.confirm_typed(
        &format!(
            "Type the token serial ({}) to start the ceremony on it",
            id.serial
        ),
        &id.serial,
    )?;
    journal.record(Event::Acknowledged {
        who: loaded.plan.administrator.clone(),
        as_role: "administrator".into(),
        what: format!("start the ceremony on token serial {}", id.serial),
        how: ui.how(),
    })?;

    crate::failpoint::hit("before-cas");
    let known = Known {
        token: Some(&id),
        found: Some(&found),
    };
    // The CA and leaf steps reach the token through the gate (Ctrl-C,
    // confirmations, spinners); the gate and the flow share the journal.
    let (cas, st) = {
        let shared: RefCell<&mut dyn Audit> = RefCell::new(&mut *journal);
        let gate = Gate::new(token, ui, &shared, &loaded.plan.administrator, r.progress);
        let mut cas: Vec<CaState> = Vec::new();
        for spec in &loaded.plan.cas {
            checkpoint()?;
            enter(r, Step::Ca(spec.role), known);
            let issuer = cas.first().filter(|_| spec.role != CaRole::Root);
            let state = ca::ensure_ca(
                &gate,
                spec,
                issuer,
                now,
                &mut |what| gate.announce(what),
                &mut SharedAudit(&shared),
            )
            .map_err(|e| gate.halt().unwrap_or(e))?;
            ui.ca_done(&state);
            // Design §5.3: the witnesses acknowledge each CA's fingerprint.
            let sha = x509::sha256(&state.der);
            let what = format!("{} CA certificate", spec.role.name());
            if !ui.yes && !loaded.plan.witnesses.is_empty() {
                ui.witnesses_compare(&what);
            }
            for w in &loaded.plan.witnesses {
                let how = ui.acknowledge_fingerprint(w, &what, &sha)?;
                shared.borrow_mut().record(Event::Acknowledged {
                    who: w.clone(),
                    as_role: "witness".into(),
                    what: format!("{what} SHA-256 {}", hex::encode(sha)),
                    how,
                })?;
            }
            cas.push(state);
            r.progress.cas_ready.set(cas.len());
        }
        checkpoint()?;
        enter(r, Step::Leaves, known);
        let run = bundle::LeafRun {
            now,
            interactive: ui.interactive,
            max_sessions: loaded.plan.token_sessions,
            sa_key: r.sa_key.borrow_mut().take(),
        };
        let st = write_outputs(
            &gate,
            &r.opts.out,
            loaded,
            &cas,
            run,
            &mut SharedAudit(&shared),
        )
        .map_err(|e| gate.halt().unwrap_or(e))?;
        ui.note(&format!(
            "{} signed through the token, checked and staged",
            match r
                .progress
                .leaves_signed
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                1 => "1 certificate".to_string(),
                n => format!("{n} certificates"),
            }
        ));
        (cas, st)
    };
    checkpoint()?;
    enter(r, Step::Seal, known);
    let sealed = seal_and_commit(st, token, loaded, &cas, journal, r.env, ui)?;
    Ok(Finished { cas, sealed })
}

/// The CA files (the root, each intermediate alone, each chain: intermediate
/// then root), every node's bundle, plan.toml and SHA256SUMS, into the
/// staging directory (`seal_and_commit` adds the sealed log and commits).
fn write_outputs(
    token: &dyn Token,
    out: &Path,
    loaded: &LoadedPlan,
    cas: &[CaState],
    run: bundle::LeafRun,
    audit: &mut dyn Audit,
) -> Result<Staging, CeremonyError> {
    let now = run.now;
    // Read the CSRs again and check them: what is signed is what was checked.
    let intake = csr::preflight(loaded, None)?;
    let mut st = Staging::begin(out, &loaded.sha256)?;
    let certs: Vec<outputs::CaCert<'_>> = cas
        .iter()
        .map(|c| outputs::CaCert {
            role: c.role,
            der: &c.der,
        })
        .collect();
    outputs::write_ca_files(&mut st, &certs)?;
    if let Some(cl) = &loaded.plan.cluster {
        match cl.mode {
            plan::LeafMode::Generate => bundle::write_nodes(token, &mut st, cl, cas, run, audit)?,
            plan::LeafMode::Csr => csr::write_nodes(token, &mut st, cl, cas, &intake, now, audit)?,
        }
    }
    csr::write_users(token, &mut st, loaded, cas, &intake, now, audit)?;
    // The reviewed plan itself, so OUT alone tells what was meant; then
    // SHA256SUMS. audit.log.age and transcript.md come after it and cannot
    // be listed (each holds a hash that covers SHA256SUMS).
    outputs::write_plan_and_sums(&mut st, &loaded.text)?;
    Ok(st)
}
