//! The flow of `ceremony run`: the order of its steps, from the plan to the
//! sealed output. What it prints goes through `operator`; the token, files
//! and records are reached through their modules.

pub mod backup;
mod chain;
pub mod crl;
mod inputs;
pub mod login;
pub(crate) mod record;
mod recover;
pub mod rotate;
mod seal;
mod staged;

use inputs::reread_inputs;
pub use inputs::{Checked, before_the_token, check_beside_out, read_inputs};
use login::{interactive, login, read_given_pin};
use record::{record_failure, start_record};
use recover::{finish_committed, remove_unfinished_writes};
use seal::{Sealed, seal_and_commit};
use staged::{Crls, write_outputs};

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::audit::event::{Environment, PendingKey, PendingStore};
use crate::audit::{self, Audit, Event, Journal};
use crate::bundle::outputs;
use crate::bundle::write::{self, Staging};
use crate::csr::intake as csr;
use crate::issue::ca::{self, CaState};
use crate::issue::from_csr;
use crate::issue::pipeline as bundle;
use crate::keytype::KeyType;
use crate::operator::{gate, interrupt, steps, ui};
use crate::plan::inputs::{Kind as InputKind, Manifest};
use crate::plan::{self, CaRole, LoadedPlan};
use crate::token::Token;
use crate::token::pin::{Pin, PinError};
use crate::token::pkcs11::Pkcs11Token;
use crate::x509;
use gate::{Gate, SharedAudit};
use steps::{Found, Known, Progress, Step};
use ui::Ui;

pub use crate::error::CeremonyError;
/// The label of the token's chain head (`token probe` says whether it is there; a restore sets it).
pub use chain::HEAD_LABEL as CHAIN_HEAD_LABEL;

pub use crate::token::pin::PinOptions;

pub struct RunOptions {
    pub plan: PathBuf,
    pub out: PathBuf,
    pub yes: bool,
    /// `--rehearsal`: a run at a terminal that accepts an unfit plan.
    pub rehearsal: bool,
    pub pin: PinOptions,
    pub module: Option<PathBuf>,
    /// `--shares-out` and the SO PIN, for a plan with `[backup]`.
    pub backup: backup::BackupOptions,
}

/// The distinct key types of the CAs, for the mechanism probe.
fn ca_key_types(p: &LoadedPlan) -> Vec<KeyType> {
    // A delegated CA's key is on the nodes: the token never uses its type.
    let mut v: Vec<KeyType> = p
        .plan
        .cas
        .iter()
        .filter(|c| p.plan.delegated(c.role).is_none())
        .map(|c| c.key)
        .collect();
    v.sort_by_key(|k| k.name());
    v.dedup();
    v
}

/// `ceremony run`.
pub fn run(opts: &RunOptions) -> Result<(), CeremonyError> {
    let now = SystemTime::now();
    let loaded = plan::load(&opts.plan, now)?;
    // The real ceremony (on hardware, guided) refuses an unfit plan before
    // anything else; a rehearsal says so and goes on.
    let module = opts.module.as_deref().unwrap_or(&loaded.plan.module);
    let risks = plan::safety::risks(&loaded.plan, module);
    let real = !plan::safety::is_software_module(module);
    if real && !risks.is_empty() && !opts.yes && !opts.rehearsal {
        return Err(CeremonyError::Usage {
            message: format!(
                "this plan is not fit for the real ceremony: {}",
                risks
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            hint: format!(
                "{}; for a rehearsal on this token, add --rehearsal",
                plan::safety::advice(&risks)
            ),
        });
    }
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
    if real {
        for r in &risks {
            ui.warn(&format!("a rehearsal, not the real ceremony: {r}"));
        }
    }
    if finish_committed(&opts.out, &loaded, &ui)? {
        return Ok(());
    }
    let checked = before_the_token(&loaded, Some(&opts.out))?;
    backup::check_options(&loaded.plan, &opts.out, &opts.backup)?;
    let inputs = checked.inputs;
    let continuation = checked.continuation;
    let revocations = checked.revocations;
    // A CA mid-rotation (or rotated) is found by its signing key's label.
    let loaded = match &continuation {
        Some(c) => rotate::with_signing_labels(loaded, &c.rotations),
        None => loaded,
    };
    for w in &checked.intake.warnings {
        ui.warn(w);
    }
    // The service-account key is made while the token works on the CAs,
    // and the leaf keys' random generator seeded.
    crate::keys::leaf::seed_in_background();
    let sa_key = loaded
        .plan
        .cluster
        .as_ref()
        .filter(|cl| cl.mode == plan::LeafMode::Generate)
        .filter(|_| {
            continuation
                .as_ref()
                .is_none_or(|c| c.sa.is_none() || c.rotate_sa_key)
        })
        .map(|cl| crate::keys::leaf::KeyInBackground::spawn(cl.sa_key));
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
    let (mut journal, env, recovery) = start_record(
        opts,
        &loaded,
        &inputs,
        &module,
        &token,
        &ui,
        continuation.as_ref().map(|c| &c.previous),
    )?;
    let continues = continuation.as_ref().map(|c| continues_of(c, &revocations));
    let run = Run {
        opts,
        loaded: &loaded,
        inputs: &inputs,
        module: &module,
        token: &token,
        env: &env,
        ui: &ui,
        resumed: recovery.as_ref().map(|r| r.records),
        interrupted_keys: recovery
            .as_ref()
            .map(|r| r.interrupted_key_generations.clone())
            .unwrap_or_default(),
        sealed_before: recovery
            .as_ref()
            .map(|r| r.sealed_final_hashes.clone())
            .unwrap_or_default(),
        interrupted_stores: recovery
            .map(|r| r.interrupted_certificate_stores)
            .unwrap_or_default(),
        progress: &progress,
        sa_key: RefCell::new(sa_key),
        now,
        continuation: continuation.as_ref(),
        continues: continues.as_ref(),
        revocations: &revocations,
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
                inputs: &inputs,
                out,
                token: &id,
                cas: &finished.cas,
                files: &finished.sealed.files,
                sha256sums: finished.sealed.sha256sums,
                records: finished.sealed.records,
                final_hash: finished.sealed.final_hash,
                continues: continues.as_ref(),
            });
            Ok(())
        }
        Err(e) => {
            record_failure(&mut journal, &e, &ui);
            Err(as_reported(e, &loaded, &opts.out, &progress))
        }
    }
}

/// A failed run's error as the operator gets it, once it is recorded: a
/// cancellation as one line saying what was done and how to resume, and a
/// "nothing touched" error (exit 2) after this run wrote to the token as
/// `Midway`.
fn as_reported(
    e: CeremonyError,
    loaded: &LoadedPlan,
    out: &Path,
    progress: &Progress,
) -> CeremonyError {
    match e {
        // One line: what was done and how to resume (exit 1).
        CeremonyError::Cancelled(reason) => {
            CeremonyError::Cancelled(ui::cancelled_text(loaded, out, progress, &reason))
        }
        // Exit 2 promises nothing was touched: after a token write it is not so.
        e if e.exit_code() == 2 && progress.wrote_to_token() => CeremonyError::Midway(Box::new(e)),
        e => e,
    }
}

/// The context of a run once the token is open and the journal started.
pub(super) struct Run<'a> {
    opts: &'a RunOptions,
    loaded: &'a LoadedPlan,
    /// The inputs read before the token, as the preflight shows them.
    inputs: &'a Manifest,
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
    /// Final hashes the journal's earlier runs sealed (one may be the
    /// token's chain head, its output never committed).
    sealed_before: Vec<String>,
    progress: &'a Progress,
    /// The service-account key being made in the background (bundle mode).
    sa_key: RefCell<Option<crate::keys::leaf::KeyInBackground>>,
    now: SystemTime,
    /// The previous output a continuing ceremony continues, checked.
    continuation: Option<&'a chain::Continuation>,
    /// The same, as the screens show it.
    continues: Option<&'a ui::Continues<'a>>,
    /// The CRLs to sign and what they add.
    revocations: &'a crl::Revocations,
}

/// What the screens say of a continuation.
fn continues_of<'a>(c: &'a chain::Continuation, r: &crl::Revocations) -> ui::Continues<'a> {
    ui::Continues {
        revokes: r.new.iter().map(crl::Revocation::line).collect(),
        crls: r.publish.then(|| {
            format!(
                "signed by every CA{}, next update {} after signing",
                if r.previous.is_empty() {
                    ""
                } else {
                    " again (the previous CRLs' entries carried)"
                },
                crate::plan::duration::format_lifetime(r.next_update)
            )
        }),
        ceremony: &c.previous.ceremony,
        output: &c.previous.output,
        final_hash: &c.previous.final_hash,
        selection: &c.selection,
        sa: match (&c.sa, c.rotate_sa_key) {
            (_, true) => "rotated: a new pair; the previous public key is shipped beside it".into(),
            (Some(sa), false) => format!("carried from {}/{}", c.previous.output, sa.from),
            (None, false) if c.sa_in_earlier_output => {
                "unchanged, in an earlier output (no control-plane node is written)".into()
            }
            (None, false) => "none in the previous output: a new pair".into(),
        },
    }
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
        if loaded.plan.delegated(spec.role).is_some() {
            v.push(Found::Delegated);
            continue;
        }
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
    // [backup]: the token probed and its trusted keys checked before
    // anything is written; the wrap key is made once the ceremony starts.
    let ready = match &loaded.plan.backup {
        Some(spec) => Some(backup::inspect(
            token,
            &loaded.plan,
            spec,
            &r.opts.backup,
            ui,
            journal,
        )?),
        None => None,
    };
    let source = match (&given_pin, &r.opts.pin.file) {
        (Some(_), Some(_)) => "--pin-file",
        (Some(_), None) => "--pin-env",
        (None, _) if id.protected_auth_path => "the token's PIN pad",
        (None, _) => "the terminal prompt",
    };
    // The security officer's step ends the user's login: kept to log in again.
    let pin_again = given_pin.as_ref().map(Pin::clone_pin);
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
    // At a rotation's stage, the new key's writes.
    remove_unfinished_writes(
        token,
        &rotate::recovery_specs(
            &loaded.plan.cas,
            r.continuation.map_or(&[][..], |c| c.rotations.as_slice()),
        ),
        &r.interrupted_keys,
        &r.interrupted_stores,
        &mut |text| ui.note(text),
        journal,
    )?;
    for spec in &loaded.plan.cas {
        match loaded.plan.delegated(spec.role) {
            Some(_) => ca::preflight_delegated_label(token, spec)?,
            None => ca::preflight_label(token, spec)?,
        }
    }
    if let Some(c) = r.continuation {
        rotate::preflight(token, &loaded.plan, &c.rotations)?;
    }
    ca::preflight_validity(
        token,
        &loaded.plan,
        now,
        &chain::current_ends(r.continuation, &loaded.plan.reissue),
    )?;
    // The previous ceremony was sealed by the root on this token.
    // ... and is the token's latest ceremony, unless the plan forks.
    if let Some(c) = r.continuation {
        chain::check_token_root(token, loaded, c)?;
        chain::check_head(token, c, &r.sealed_before, &mut |t| ui.note(t))?;
    }

    // The preflight screen, then the administrator types the serial to start.
    let found = found_on_token(token, loaded)?;
    let objects = token.list_objects().ok();
    ui.preflight(&ui::Preflight {
        loaded,
        inputs: r.inputs,
        module: r.module,
        module_sha256: &token.module_sha256(),
        out: &r.opts.out,
        token: &id,
        objects: objects.as_deref(),
        mechanisms: &mechanisms,
        found: &found,
        resumed_records: r.resumed,
        continues: r.continues,
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

    let prepared = match ready {
        Some(backup::Ready::Found(p)) => Some(p),
        Some(backup::Ready::ToMake { mechanism, so }) => {
            let spec = loaded.plan.backup.as_ref().ok_or_else(|| {
                CeremonyError::Internal("a backup to make without [backup]".into())
            })?;
            let p = backup::make(
                token,
                &loaded.plan,
                spec,
                &r.opts.backup,
                ui,
                journal,
                mechanism,
                &so,
            )?;
            drop(so);
            if pin_again.is_none() && !id.protected_auth_path {
                ui.note("The security officer's step logged the user out: the user PIN again.");
            }
            login(token, pin_again, ui)?;
            journal.record(Event::LoggedIn {
                source: source.into(),
            })?;
            Some(p)
        }
        None => None,
    };
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
        let mut blobs: Vec<(CaRole, Vec<u8>)> = Vec::new();
        // A delegated CA is signed from its request as read again now and
        // checked to be the one the witnesses approved.
        let delegated = if loaded.plan.delegated.is_empty() && loaded.plan.kubelet_signer.is_none()
        {
            None
        } else {
            Some(reread_inputs(loaded, r.inputs, r.continuation)?)
        };
        for spec in &loaded.plan.cas {
            checkpoint()?;
            enter(r, Step::Ca(spec.role), known);
            let issuer = cas.first().filter(|_| spec.role != CaRole::Root);
            let request = delegated
                .as_ref()
                .filter(|_| loaded.plan.delegated(spec.role).is_some())
                .map(|i| i.ca(spec.role));
            let state = match (request, issuer) {
                (Some(Some(csr)), Some(root)) => ca::sign_delegated(
                    &gate,
                    spec,
                    csr,
                    root,
                    now,
                    &mut |what| gate.announce(what),
                    &mut SharedAudit(&shared),
                ),
                (Some(_), _) => Err(CeremonyError::Internal(format!(
                    "the delegated {} CA's request was not checked before signing",
                    spec.role.name()
                ))),
                (None, _) => ca::ensure_ca(
                    &gate,
                    spec,
                    issuer,
                    now,
                    &mut |what| gate.announce(what),
                    &mut SharedAudit(&shared),
                ),
            }
            .map_err(|e| gate.halt().unwrap_or(e))?;
            // Wrapped right after it is made (or found again on a resume):
            // a key that cannot be wrapped stops the run before it signs.
            if loaded
                .plan
                .backup
                .as_ref()
                .is_some_and(|b| b.covers(spec.role))
            {
                blobs.push((
                    spec.role,
                    backup::wrap(token, &state, &mut SharedAudit(&shared))?,
                ));
            }
            // The chain's current certificate (an earlier reissue's), then
            // this ceremony's reissue.
            // A delegated CA is signed anew from its request every time.
            let state = match r.continuation.filter(|_| !state.delegated) {
                Some(c) => ca::carry_current(
                    state.clone(),
                    rotate::previous_of_same_key(c, &state),
                    issuer,
                    &mut SharedAudit(&shared),
                )?,
                None => state,
            };
            let state = if loaded.plan.reissue.contains(&spec.role) && !state.delegated {
                ca::reissue(
                    &gate,
                    spec,
                    &state,
                    issuer,
                    now,
                    &mut |what| gate.announce(what),
                    &mut SharedAudit(&shared),
                )
                .map_err(|e| gate.halt().unwrap_or(e))?
            } else {
                state
            };
            ui.ca_done(&state);
            // Design §5.3: the witnesses acknowledge each CA's fingerprint.
            acknowledge_ca(
                ui,
                loaded,
                &shared,
                &format!("{} CA certificate", spec.role.name()),
                &state.der,
            )?;
            // A rotation's overlap: the other key's CA (made at stage,
            // found at promote), trusted after the one that signs.
            let rotation = r
                .continuation
                .and_then(|c| c.rotations.iter().find(|x| x.role == spec.role));
            let state = match rotation {
                Some(rot) => {
                    let other = match rot.other_label() {
                        Some(label) => {
                            let mut other_spec = spec.clone();
                            other_spec.label = label.to_string();
                            let o = ca::ensure_ca(
                                &gate,
                                &other_spec,
                                issuer,
                                now,
                                &mut |what| gate.announce(what),
                                &mut SharedAudit(&shared),
                            )
                            .map_err(|e| gate.halt().unwrap_or(e))?;
                            let o = match r.continuation {
                                Some(c) => ca::carry_current(
                                    o.clone(),
                                    rotate::previous_of_same_key(c, &o),
                                    issuer,
                                    &mut SharedAudit(&shared),
                                )?,
                                None => o,
                            };
                            ui.ca_done(&o);
                            acknowledge_ca(
                                ui,
                                loaded,
                                &shared,
                                &format!(
                                    "{} CA certificate under \"{label}\" (rotation)",
                                    spec.role.name()
                                ),
                                &o.der,
                            )?;
                            Some(o.der)
                        }
                        None => None,
                    };
                    let state = CaState {
                        also_trusted: other.into_iter().collect(),
                        ..state
                    };
                    shared.borrow_mut().record(rotate::event(rot, &state))?;
                    state
                }
                None => state,
            };
            cas.push(state);
            r.progress.cas_ready.set(cas.len());
        }
        // The kubelet signer, under the kubernetes CA just made or found.
        let signer = match (&loaded.plan.kubelet_signer, &delegated) {
            (Some(spec), Some(intake)) => {
                let csr = intake
                    .kubelet_signer
                    .as_ref()
                    .and_then(|c| c.checked.as_ref().ok())
                    .ok_or_else(|| {
                        CeremonyError::Internal(
                            "the kubelet signer's request was not checked before signing".into(),
                        )
                    })?;
                let k8s = cas
                    .iter()
                    .find(|c| c.role == CaRole::Kubernetes)
                    .ok_or_else(|| CeremonyError::Internal("no kubernetes CA".into()))?;
                checkpoint()?;
                let issued = ca::sign_kubelet_signer(
                    &gate,
                    spec,
                    csr,
                    k8s,
                    now,
                    &mut |what| gate.announce(what),
                    &mut SharedAudit(&shared),
                )
                .map_err(|e| gate.halt().unwrap_or(e))?;
                ui.note(&format!(
                    "kubelet signer \"{}\" signed by the kubernetes CA, valid until {}",
                    spec.subject,
                    crate::fmt::utc(
                        issued
                            .cert
                            .tbs_certificate()
                            .validity()
                            .not_after
                            .to_system_time()
                    )
                ));
                Some((issued.der, k8s.der.clone()))
            }
            _ => None,
        };
        checkpoint()?;
        enter(r, Step::Leaves, known);
        let run = bundle::LeafRun {
            now,
            // Shown only while the generate pipeline issues a bundle.
            progress: {
                let leaves = loaded
                    .plan
                    .cluster
                    .as_ref()
                    .filter(|cl| cl.mode == plan::LeafMode::Generate)
                    .map_or(0, crate::profile::kubeadm::leaf_count);
                ui::leaf_progress(leaves, ui.interactive && leaves > 0)
            },
            stop_requested: interrupt::requested,
            max_sessions: loaded.plan.token_sessions,
            sa_key: r.sa_key.borrow_mut().take(),
            only: None,
            sa_given: None,
            sa_previous_public: None,
        };
        let st = write_outputs(
            &gate,
            &r.opts.out,
            loaded,
            r.inputs,
            &cas,
            run,
            r.continuation,
            loaded
                .plan
                .backup
                .as_ref()
                .zip(prepared.as_ref())
                .map(|(spec, p)| (spec, p, blobs.as_slice())),
            Crls {
                revocations: r.revocations,
                announce: &|what| gate.announce(what),
            },
            signer.as_ref(),
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
    let sealed = seal_and_commit(
        st,
        token,
        loaded,
        r.inputs,
        &cas,
        journal,
        r.env,
        ui,
        r.continuation,
        r.revocations,
    )?;
    Ok(Finished { cas, sealed })
}

/// The witnesses compare and acknowledge a CA certificate's fingerprint.
fn acknowledge_ca(
    ui: &Ui,
    loaded: &LoadedPlan,
    shared: &RefCell<&mut dyn Audit>,
    what: &str,
    der: &[u8],
) -> Result<(), CeremonyError> {
    let sha = x509::sha256(der);
    if !ui.yes && !loaded.plan.witnesses.is_empty() {
        ui.witnesses_compare(what);
    }
    for w in &loaded.plan.witnesses {
        let how = ui.acknowledge_fingerprint(w, what, &sha)?;
        shared.borrow_mut().record(Event::Acknowledged {
            who: w.clone(),
            as_role: "witness".into(),
            what: format!("{what} SHA-256 {}", hex::encode(sha)),
            how,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::AckHow;
    use crate::audit::record::Record;
    use crate::bundle::layout;
    use crate::token::fake::Fake;

    const ADMIN: &str = "Ada Admin";

    fn demo_path() -> PathBuf {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/ceremony/plans/demo.toml"
        ))
    }

    fn demo(now: SystemTime) -> LoadedPlan {
        plan::load(&demo_path(), now).expect("the demo plan loads")
    }

    /// Every operation `ensure_ca` announces for the demo plan on an empty
    /// token, in order: each CA's key, then its certificate.
    fn demo_operations() -> Vec<String> {
        let mut ops = vec![
            "Generate root key ecdsa-p384 \"demo-root-2026\" on the token".to_string(),
            "Sign the root certificate \"CN=Demo Kubernetes Root CA,O=Demo\" with \"demo-root-2026\" on the token".to_string(),
        ];
        for (role, label, subject) in [
            ("kubernetes", "demo-kubernetes-ca-2026", "CN=kubernetes"),
            ("etcd", "demo-etcd-ca-2026", "CN=etcd-ca"),
            (
                "front-proxy",
                "demo-front-proxy-ca-2026",
                "CN=front-proxy-ca",
            ),
        ] {
            ops.push(format!(
                "Generate {role} key ecdsa-p256 \"{label}\" on the token"
            ));
            ops.push(format!(
                "Sign the {role} certificate \"{subject}\" with \"demo-root-2026\" on the token"
            ));
        }
        ops
    }

    /// The plan's CAs made through the operator's gate, wired as
    /// `recorded_run` wires it: the outcome, what was recorded, the progress.
    fn cas_through_gate(
        token: &Fake,
        loaded: &LoadedPlan,
        ui: &Ui,
        now: SystemTime,
    ) -> (Result<Vec<CaState>, CeremonyError>, Vec<Event>, Progress) {
        let progress = Progress::default();
        let mut events: Vec<Event> = Vec::new();
        let outcome = {
            let shared: RefCell<&mut dyn Audit> = RefCell::new(&mut events);
            let gate = Gate::new(token, ui, &shared, ADMIN, &progress);
            let mut cas: Vec<CaState> = Vec::new();
            let mut outcome = Ok(());
            for spec in &loaded.plan.cas {
                let issuer = cas.first().filter(|_| spec.role != CaRole::Root);
                match ca::ensure_ca(
                    &gate,
                    spec,
                    issuer,
                    now,
                    &mut |what| gate.announce(what),
                    &mut SharedAudit(&shared),
                )
                .map_err(|e| gate.halt().unwrap_or(e))
                {
                    Ok(state) => cas.push(state),
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
            outcome.map(|()| cas)
        };
        (outcome, events, progress)
    }

    fn kinds(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(Event::kind).collect()
    }

    fn acknowledged(events: &[Event]) -> Vec<(String, String, AckHow)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Acknowledged {
                    who,
                    as_role,
                    what,
                    how,
                } => Some((format!("{who} as {as_role}"), what.clone(), *how)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn under_yes_each_ca_operation_is_acknowledged_in_order_before_the_token_acts() {
        let now = SystemTime::now();
        let loaded = demo(now);
        let token = Fake::new();
        let (cas, events, progress) = cas_through_gate(&token, &loaded, &Ui::new(false, true), now);
        assert_eq!(cas.expect("made").len(), 4);
        let admin = format!("{ADMIN} as administrator");
        assert_eq!(
            acknowledged(&events),
            demo_operations()
                .into_iter()
                .map(|what| (admin.clone(), what, AckHow::Automatic))
                .collect::<Vec<_>>()
        );
        // Each confirmation comes right before the token acts on it.
        let per_ca = [
            "key_generation_started",
            "acknowledged",
            "key_generated",
            "acknowledged",
            "certificate_issued",
            "certificate_stored",
        ];
        assert_eq!(kinds(&events), per_ca.repeat(4));
        assert_eq!(
            (
                progress.keys_generated.get(),
                progress.ca_certificates_signed.get()
            ),
            (4, 4)
        );
    }

    #[test]
    fn a_declined_confirmation_cancels_at_each_ca_operation_and_leaves_the_token_as_it_was() {
        let now = SystemTime::now();
        let loaded = demo(now);
        for (k, what) in demo_operations().iter().enumerate() {
            // A token on which the operations before the k-th are done: a
            // run under --yes that failed at the k-th.
            let token = Fake::new();
            let op = if k % 2 == 0 { "generate" } else { "sign" };
            *token.fail_at.borrow_mut() = Some((op, k / 2 + 1));
            let (made, _, _) = cas_through_gate(&token, &loaded, &Ui::new(false, true), now);
            assert!(made.is_err(), "the preparing run stops at operation {k}");
            *token.fail_at.borrow_mut() = None;
            let before = (
                token.calls("generate"),
                token.calls("sign"),
                token.calls("store"),
                token.objects.borrow().len(),
            );
            // No terminal and no --yes: the confirmation is declined.
            let (made, events, progress) =
                cas_through_gate(&token, &loaded, &Ui::new(false, false), now);
            match made {
                Err(CeremonyError::Cancelled(reason)) => {
                    assert_eq!(reason, format!("the administrator declined: {what}"))
                }
                other => panic!("operation {k}: expected a cancellation, got {other:?}"),
            }
            assert_eq!(
                (
                    token.calls("generate"),
                    token.calls("sign"),
                    token.calls("store"),
                    token.objects.borrow().len(),
                ),
                before,
                "operation {k}: the token was not asked"
            );
            assert!(!progress.wrote_to_token());
            assert!(acknowledged(&events).is_empty(), "{events:?}");
            // What the declined run recorded: the CAs found, then at most
            // the intent of the generation it did not confirm.
            let found = k / 2;
            let mut want = ["key_found", "certificate_found"].repeat(found);
            match k % 2 {
                0 => want.push("key_generation_started"),
                _ => want.push("key_found"),
            }
            assert_eq!(kinds(&events), want, "operation {k}");
        }
    }

    /// A run after the journal is opened, on `token`, in a directory of its
    /// own: what `recorded_run` returned and the journal's records after
    /// `run` recorded how it ended.
    struct Recorded {
        outcome: Result<Finished, CeremonyError>,
        events: Vec<Event>,
        progress: Progress,
        loaded: LoadedPlan,
        out: PathBuf,
        _dir: tempfile::TempDir,
    }

    fn recorded(token: &Fake, yes: bool, workers: usize) -> Recorded {
        let now = SystemTime::now();
        let mut loaded = demo(now);
        // One control-plane node: fewer leaves, the same flow.
        if let Some(cl) = loaded.plan.cluster.as_mut() {
            cl.control_plane.truncate(1);
            cl.workers.truncate(workers);
            // Not RSA: its generation is slow in a debug build.
            cl.sa_key = KeyType::EcdsaP256;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let opts = RunOptions {
            plan: demo_path(),
            out: out.clone(),
            yes,
            rehearsal: false,
            pin: PinOptions::default(),
            module: None,
            backup: backup::BackupOptions::default(),
        };
        let ui = Ui::new(false, yes);
        let module = loaded.plan.module.clone();
        let inputs = read_inputs(&loaded).expect("the demo's inputs").inputs;
        // The journal as `start_record` opens it, without its records of the
        // environment (which hash this test binary: slow in a debug build).
        let (mut journal, recovery) =
            Journal::open(&out, &inputs.digest, &loaded.plan.recipients).expect("journal");
        assert!(recovery.is_none(), "a fresh journal");
        let env = Environment {
            tool_version: "test".into(),
            tool_sha256: "00".into(),
            module_path: module.display().to_string(),
            module_sha256: hex::encode(token.module_sha256()),
            host: "test".into(),
            unattended: yes,
        };
        let progress = Progress::default();
        let outcome = {
            let run = Run {
                opts: &opts,
                loaded: &loaded,
                inputs: &inputs,
                module: &module,
                token,
                env: &env,
                ui: &ui,
                resumed: None,
                interrupted_keys: Vec::new(),
                interrupted_stores: Vec::new(),
                sealed_before: Vec::new(),
                progress: &progress,
                sa_key: RefCell::new(None),
                now,
                continuation: None,
                continues: None,
                revocations: &crl::Revocations::default(),
            };
            let pin = Pin::new(zeroize::Zeroizing::new(token.pin.clone())).unwrap();
            recorded_run(&run, &mut journal, Some(pin))
        };
        if let Err(e) = &outcome {
            record_failure(&mut journal, e, &ui);
        }
        let events = journal
            .lines()
            .expect("the journal reads back")
            .iter()
            .map(|l| serde_json::from_str::<Record>(l).expect("a record").event)
            .collect();
        Recorded {
            outcome,
            events,
            progress,
            loaded,
            out,
            _dir: dir,
        }
    }

    /// The demo plan with its workers in `workers.txt`, in a directory of
    /// its own: (dir, plan path).
    fn plan_with_names_file(workers: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        // Without kubelet serving certificates: the names file's workers have no addresses.
        let text = std::fs::read_to_string(demo_path())
            .unwrap()
            .replace(
                "names = [\"worker1\", \"worker2\"]\n",
                "names_file = \"workers.txt\"\n",
            )
            .replace(
                "kubelet_serving_certs = true",
                "kubelet_serving_certs = false",
            )
            .replace(
                "[cluster.worker_addresses]\nworker1 = \"10.0.0.21\"\nworker2 = \"10.0.0.22\"\n",
                "",
            );
        let plan = dir.path().join("plan.toml");
        std::fs::write(&plan, text).unwrap();
        std::fs::write(dir.path().join("workers.txt"), workers).unwrap();
        (dir, plan)
    }

    /// The inputs' digest covers the names file, not the plan alone: a
    /// worker added after an interrupted run makes its journal another
    /// inputs' journal, refused before the token (exit 2), touching nothing;
    /// put back, the same journal is this run's again.
    #[test]
    fn a_journal_of_the_same_plan_with_other_inputs_is_refused_before_the_token() {
        let now = SystemTime::now();
        let (dir, plan) = plan_with_names_file("worker1\n");
        let out = dir.path().join("out");
        let first = plan::load(&plan, now).unwrap();
        let inputs = before_the_token(&first, Some(&out)).unwrap().inputs;
        assert_eq!(
            inputs.text,
            format!(
                "{}  plan plan.toml\n{}  names workers.txt\n",
                hex::encode(first.sha256),
                hex::encode(x509::sha256(b"worker1\n"))
            )
        );
        assert_eq!(inputs.digest, x509::sha256(inputs.text.as_bytes()));
        // The interrupted run's journal.
        drop(Journal::open(&out, &inputs.digest, &first.plan.recipients).unwrap());
        let journal = audit::journal::path(&out);
        let owner = std::fs::read(journal.join("plan-sha256")).unwrap();

        std::fs::write(dir.path().join("workers.txt"), "worker1\nintruder\n").unwrap();
        let second = plan::load(&plan, now).unwrap();
        assert_eq!(second.sha256, first.sha256, "the plan itself is the same");
        let e = before_the_token(&second, Some(&out))
            .err()
            .expect("refused");
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(
            e.to_string().starts_with(&format!(
                "{} holds the unsealed audit journal of another plan or of other inputs (inputs SHA-256 {}; ",
                journal.display(),
                hex::encode(inputs.digest)
            )),
            "{e}"
        );
        assert!(
            e.hint()
                .unwrap()
                .starts_with("to resume its run, put back the plan and the files it names"),
            "{:?}",
            e.hint()
        );
        assert_eq!(std::fs::read(journal.join("plan-sha256")).unwrap(), owner);

        std::fs::write(dir.path().join("workers.txt"), "worker1\n").unwrap();
        let again = plan::load(&plan, now).unwrap();
        assert_eq!(before_the_token(&again, Some(&out)).unwrap().inputs, inputs);
    }

    /// What is signed is what the witnesses approved: inputs changed
    /// between the preflight and the signing stop the run before the
    /// staging directory exists.
    #[test]
    fn inputs_changed_after_the_preflight_are_not_signed() {
        let now = SystemTime::now();
        let (dir, plan) = plan_with_names_file("worker1\n");
        let out = dir.path().join("out");
        let loaded = plan::load(&plan, now).unwrap();
        let approved = read_inputs(&loaded).unwrap().inputs;
        let mut other = loaded.clone();
        other.names_file = other.names_file.map(|(p, _)| (p, [9; 32]));
        let token = Fake::new();
        let run = bundle::LeafRun {
            now,
            progress: ui::leaf_progress(0, false),
            stop_requested: interrupt::requested,
            max_sessions: loaded.plan.token_sessions,
            sa_key: None,
            only: None,
            sa_given: None,
            sa_previous_public: None,
        };
        let mut events: Vec<Event> = Vec::new();
        let none = crl::Revocations::default();
        let crls = Crls {
            revocations: &none,
            announce: &|_| {},
        };
        let e = write_outputs(
            &token,
            &out,
            &other,
            &approved,
            &[],
            run,
            None,
            None,
            crls,
            None,
            &mut events,
        )
        .err()
        .expect("refused");
        assert!(
            e.to_string().starts_with(&format!(
                "the inputs changed since the preflight: their SHA-256 was {}, it is now ",
                hex::encode(approved.digest)
            )),
            "{e}"
        );
        assert!(!audit::sibling(&out, "staging").exists());
        assert_eq!(token.calls("sign"), 0);
    }

    #[test]
    fn a_run_on_the_fake_token_commits_its_output_with_every_step_on_the_record() {
        let token = Fake::new();
        let r = recorded(&token, true, 1);
        let finished = r.outcome.expect("the run finishes");
        assert_eq!(finished.sealed.out, r.out);
        assert_eq!(finished.cas.len(), 4);
        for file in [
            layout::PLAN,
            layout::AUDIT_LOG,
            layout::TRANSCRIPT,
            layout::SHA256SUMS,
        ] {
            assert!(r.out.join(file).is_file(), "{file}");
        }
        let k = kinds(&r.events);
        assert_eq!(
            k[..4],
            [
                "logged_in",
                "mechanism_chosen",
                "mechanism_chosen",
                "acknowledged"
            ]
        );
        assert_eq!(k.last(), Some(&"end"));
        assert!(!k.contains(&"error"));
        assert_eq!(
            r.events[0],
            Event::LoggedIn {
                source: "--pin-env".into()
            }
        );
        // The start, each CA operation, and each witness for each CA.
        let acks = acknowledged(&r.events);
        assert_eq!(acks.len(), 1 + 8 + 2 * 4, "{acks:?}");
        assert_eq!(
            acks[0].1,
            format!("start the ceremony on token serial {}", token.id.serial)
        );
        let admin: Vec<String> = acks[1..]
            .iter()
            .filter(|a| a.0 == format!("{ADMIN} as administrator"))
            .map(|a| a.1.clone())
            .collect();
        assert_eq!(admin, demo_operations());
        let root_sha = hex::encode(x509::sha256(&finished.cas[0].der));
        assert!(
            acks.contains(&(
                "Wendy Witness as witness".into(),
                format!("root CA certificate SHA-256 {root_sha}"),
                AckHow::Automatic
            )),
            "{acks:?}"
        );
        let leaves = r
            .progress
            .leaves_signed
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(leaves > 0);
        // Four CA certificates, the leaves and the seal.
        assert_eq!(token.calls("sign"), 4 + leaves + 1);
        // The token's chain head is this ceremony's final hash.
        assert_eq!(
            token.find_data(chain::HEAD_LABEL).unwrap(),
            [finished.sealed.final_hash.to_vec()]
        );
        let plan_in_out = std::fs::read_to_string(r.out.join(layout::PLAN)).unwrap();
        assert_eq!(plan_in_out, r.loaded.text);
        // The inputs' manifest, listed in SHA256SUMS, its digest in the transcript.
        let manifest = std::fs::read(r.out.join(layout::INPUTS)).unwrap();
        assert_eq!(
            manifest,
            format!("{}  plan demo.toml\n", hex::encode(r.loaded.sha256)).into_bytes()
        );
        let sums = std::fs::read_to_string(r.out.join(layout::SHA256SUMS)).unwrap();
        assert!(
            sums.contains(&format!(
                "{}  {}\n",
                hex::encode(x509::sha256(&manifest)),
                layout::INPUTS
            )),
            "{sums}"
        );
        let transcript = std::fs::read_to_string(r.out.join(layout::TRANSCRIPT)).unwrap();
        assert!(
            transcript.contains(&crate::fmt::fingerprint(&x509::sha256(&manifest))),
            "{transcript}"
        );
    }

    #[test]
    fn a_token_that_fails_mid_pipeline_ends_the_run_on_the_record_and_commits_nothing() {
        let token = Fake::new();
        // The four CA certificates, then the second leaf fails.
        *token.fail_at.borrow_mut() = Some(("sign", 6));
        let r = recorded(&token, true, 1);
        let e = r.outcome.err().expect("the run fails");
        let leaves = r
            .progress
            .leaves_signed
            .load(std::sync::atomic::Ordering::Relaxed);
        // Every signature asked of the token but one was made: the four CA
        // certificates and the leaves, and no seal.
        assert!(leaves > 0);
        assert_eq!(token.calls("sign"), 4 + leaves + 1);
        assert_eq!(e.exit_code(), 3, "{e}");
        let message = e.to_string();
        assert!(
            message.starts_with("signing the certificate for ") && message.ends_with(" failed"),
            "{message}"
        );
        assert!(!r.out.exists(), "nothing committed");
        assert_eq!(
            r.events.last(),
            Some(&Event::Error {
                message: e.to_string(),
                causes: vec![
                    "the token returned a malformed signature for \"fake\": the fake token fails sign call 6"
                        .into()
                ],
                exit_code: 3,
            })
        );
        assert!(!kinds(&r.events).contains(&"end"));
        assert!(token.find_data(chain::HEAD_LABEL).unwrap().is_empty());
        // The CAs are on the token: a rerun resumes them.
        assert_eq!(token.calls("store"), 4);
        let reported = as_reported(e, &r.loaded, &r.out, &r.progress);
        assert_eq!(reported.exit_code(), 3);
    }

    #[test]
    fn signing_sessions_that_fail_mid_pipeline_end_the_run_on_the_record_and_commit_nothing() {
        let token = Fake::new();
        // Two signing sessions, which fail after three leaves between them.
        token.sessions.set(2);
        token.budget.set(3);
        let r = recorded(&token, true, 1);
        let e = r.outcome.err().expect("the run fails");
        assert_eq!(e.exit_code(), 3, "{e}");
        assert!(!r.out.exists(), "nothing committed");
        let leaves = r
            .progress
            .leaves_signed
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(leaves <= 3, "{leaves} leaves signed on a budget of 3");
        match r.events.last() {
            Some(Event::Error {
                message,
                causes,
                exit_code: 3,
            }) => {
                assert_eq!(message, &e.to_string());
                assert!(
                    causes
                        .iter()
                        .any(|c| c.ends_with("the fake token's budget is spent")),
                    "{causes:?}"
                );
            }
            other => panic!("expected the error on the record, got {other:?}"),
        }
        // The CA certificates only: no leaf through the login session, no seal.
        assert_eq!(token.calls("sign"), 4);
        let signed = r
            .events
            .iter()
            .filter(|e| matches!(e, Event::CertificateIssued(c) if c.node.is_some()))
            .count();
        assert!(
            signed <= leaves,
            "{signed} leaves recorded, {leaves} signed"
        );
    }

    #[test]
    fn without_a_terminal_or_yes_the_start_is_not_confirmed_and_nothing_is_written() {
        let token = Fake::new();
        let r = recorded(&token, false, 0);
        let reason = format!(
            "no terminal to confirm on: Type the token serial ({}) to start the ceremony on it",
            token.id.serial
        );
        match &r.outcome {
            Err(CeremonyError::Cancelled(got)) => assert_eq!(got, &reason),
            Err(e) => panic!("expected a cancellation, got {e:?}"),
            Ok(_) => panic!("expected a cancellation, got a finished run"),
        }
        assert_eq!(
            kinds(&r.events),
            [
                "logged_in",
                "mechanism_chosen",
                "mechanism_chosen",
                "cancelled"
            ]
        );
        assert_eq!(r.events.last(), Some(&Event::Cancelled { reason }));
        assert_eq!((token.calls("generate"), token.calls("sign")), (0, 0));
        assert!(!r.progress.wrote_to_token());
    }

    fn leaf_outlives() -> CeremonyError {
        CeremonyError::LeafOutlives {
            field: "cluster.leaf_validity".into(),
            issuer: CaRole::Kubernetes,
            end: "2030-01-01 00:00:00 UTC".into(),
            issuer_end: "2029-01-01 00:00:00 UTC".into(),
        }
    }

    #[test]
    fn an_exit_2_error_is_midway_exit_5_once_the_run_wrote_to_the_token() {
        let loaded = demo(SystemTime::now());
        let out = Path::new("out");
        let untouched = Progress::default();
        let e = as_reported(leaf_outlives(), &loaded, out, &untouched);
        assert!(matches!(e, CeremonyError::LeafOutlives { .. }), "{e:?}");
        assert_eq!(e.exit_code(), 2);
        for wrote in [
            |p: &Progress| p.keys_generated.set(1),
            |p: &Progress| p.ca_certificates_signed.set(1),
            |p: &Progress| {
                p.leaves_signed
                    .store(1, std::sync::atomic::Ordering::Relaxed);
            },
        ] {
            let progress = Progress::default();
            wrote(&progress);
            let e = as_reported(leaf_outlives(), &loaded, out, &progress);
            assert!(matches!(e, CeremonyError::Midway(_)), "{e:?}");
            assert_eq!(e.exit_code(), 5);
            // The message is the inner error's.
            assert_eq!(e.to_string(), leaf_outlives().to_string());
        }
        // Other codes keep theirs after a write.
        let progress = Progress::default();
        progress.keys_generated.set(1);
        let token = CeremonyError::Internal("x".into());
        assert_eq!(as_reported(token, &loaded, out, &progress).exit_code(), 5);
        let foreign = CeremonyError::Foreign {
            label: "l".into(),
            role: CaRole::Root,
            what: "w".into(),
        };
        let e = as_reported(foreign, &loaded, out, &progress);
        assert!(matches!(e, CeremonyError::Foreign { .. }));
        assert_eq!(e.exit_code(), 3);
    }

    #[test]
    fn a_cancellation_is_reported_as_what_was_done_and_how_to_resume() {
        let loaded = demo(SystemTime::now());
        let progress = Progress::default();
        progress.at.set(Some(Step::Ca(CaRole::Etcd)));
        progress.keys_generated.set(3);
        progress.ca_certificates_signed.set(2);
        progress.cas_ready.set(2);
        let e = as_reported(
            CeremonyError::Cancelled("Ctrl-C".into()),
            &loaded,
            Path::new("out"),
            &progress,
        );
        let CeremonyError::Cancelled(line) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(e.exit_code(), 1);
        let want = format!(
            "stopped at {} (Ctrl-C): this run generated 3 keys and signed 2 CA certificates on the token, 2 of 4 CAs are ready there; out was not written. To resume, run the same command again: ",
            steps::tag(&loaded, Step::Ca(CaRole::Etcd))
        );
        assert!(line.starts_with(&want), "{line}");
    }
}
