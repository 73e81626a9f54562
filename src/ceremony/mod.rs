//! The flow of `ceremony run`, `check` and `token list`: the only place that
//! talks to the operator. Everything it prints goes to stderr through `ui`;
//! the token, files and prompts are reached through their modules.

pub mod check;
pub mod csr;

use std::cell::RefCell;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::audit::event::{Environment, PendingKey, PendingStore, Recovery};
use crate::audit::{self, Audit, Event, Journal};
use crate::bundle::layout;
use crate::bundle::outputs;
use crate::bundle::write::{self, Staging};
use crate::issue::ca::{self, CaState};
use crate::issue::pipeline as bundle;
use crate::keytype::KeyType;
use crate::operator::{gate, interrupt, steps, ui};
use crate::plan::{self, CaRole, CaSpec, LoadedPlan};
use crate::token::pin::{self, Pin, PinError};
use crate::token::pkcs11::Pkcs11Token;
use crate::token::uri::TokenUri;
use crate::token::{ObjectInfo, Token, TokenError, Unfinished};
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

fn read_given_pin(opts: &PinOptions) -> Result<Option<Pin>, PinError> {
    match (&opts.file, &opts.env) {
        (Some(f), _) => pin::read_pin_file(f).map(Some),
        (None, Some(v)) => pin::read_pin_env(v).map(Some),
        (None, None) => Ok(None),
    }
}

fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Logs in with the given PIN, the PIN pad, or up to three prompts.
fn login(token: &dyn Token, given: Option<Pin>, ui: &Ui) -> Result<(), CeremonyError> {
    let id = token.identity().clone();
    let flags = token.pin_flags()?;
    if flags.locked {
        return Err(TokenError::PinLocked {
            token: id.to_string(),
        }
        .into());
    }
    if flags.final_try {
        ui.warn("the token says the next wrong PIN locks the user PIN");
    } else if flags.count_low {
        ui.warn("the token says a wrong PIN was entered recently; few tries are left");
    }
    if let Some(pin) = given {
        return Ok(token.login(Some(&pin))?);
    }
    if id.protected_auth_path {
        ui.note("Enter the PIN on the token's PIN pad.");
        return Ok(token.login(None)?);
    }
    if !ui.interactive {
        return Err(PinError::NoSource.into());
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let pin = ui.prompt_pin(&id)?;
        match token.login(Some(&pin)) {
            Err(TokenError::PinIncorrect { .. }) if attempt < 3 => {
                ui.warn(&format!("wrong PIN ({attempt} of 3 attempts)"));
                if token.pin_flags()?.locked {
                    return Err(TokenError::PinLocked {
                        token: id.to_string(),
                    }
                    .into());
                }
            }
            other => return Ok(other?),
        }
    }
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
struct Run<'a> {
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

/// Every file of OUT: path relative to OUT, SHA-256, mode.
type Written = Vec<(String, [u8; 32], u32)>;

/// A committed output and its sealed log.
struct Sealed {
    out: PathBuf,
    records: u64,
    final_hash: [u8; 32],
    written: Written,
    sha256sums: [u8; 32],
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

/// A run killed inside a token write may have left part of it: SoftHSM
/// writes a key pair as two object files one after the other, and each file
/// in steps (its attributes in type order: label first, CKA_ID later, the key
/// value or EC parameters last), so a kill can leave a public key alone, a
/// pair whose private key cannot sign, or a certificate without its value.
/// Where the journal shows such a write started and never done, what the
/// token holds under that CA's label is checked here, before
/// `preflight_label` would refuse it as foreign: anything but the complete
/// result is removed (the label held nothing when the write began, or the
/// preflight of that run would have stopped), recorded, and made again.
fn remove_unfinished_writes(r: &Run<'_>, journal: &mut Journal) -> Result<(), CeremonyError> {
    for spec in &r.loaded.plan.cas {
        let role = spec.role.name();
        let key = r
            .interrupted_keys
            .iter()
            .rev()
            .find(|p| p.label == spec.label);
        let store = r.interrupted_stores.iter().rev().find(|p| p.role == role);
        if key.is_none() && store.is_none() {
            continue;
        }
        let objects = r.token.objects_labelled(&spec.label)?;
        let found = if let Some(p) = key
            && let Some(what) = unfinished_key(r.token, spec, &p.id, &objects)?
        {
            Some((Unfinished::KeyPair, what, Some(p.id.clone())))
        } else if let Some(p) = store
            && let Some(what) = unfinished_certificate(r.token, spec, &p.sha256, &objects)?
        {
            Some((Unfinished::Certificate, what, None))
        } else {
            None
        };
        let Some((kind, what, id)) = found else {
            continue;
        };
        let objects = r.token.remove_unfinished(&spec.label, kind)?.len() as u64;
        let (doing, again) = match kind {
            Unfinished::KeyPair => (format!("generated {role} key"), "the key is generated"),
            Unfinished::Certificate => (
                format!("stored the {role} certificate"),
                "the certificate is signed",
            ),
        };
        r.ui.note(&format!(
            "the previous run was stopped while the token {doing} \"{}\": removed what it left ({what}); {again} again",
            spec.label
        ));
        let (role, label) = (role.to_string(), spec.label.clone());
        journal.record(match id {
            Some(id) => Event::UnfinishedKeyRemoved {
                role,
                label,
                id,
                objects,
                what,
            },
            None => Event::UnfinishedCertificateRemoved {
                role,
                label,
                objects,
                what,
            },
        })?;
    }
    Ok(())
}

/// What is wrong with the key objects under the label of an interrupted
/// generation (recorded CKA_ID `id`, hex); None when there are none or they
/// are the complete pair, which passes its pairwise test.
fn unfinished_key(
    token: &dyn Token,
    spec: &CaSpec,
    id: &str,
    objects: &[ObjectInfo],
) -> Result<Option<String>, CeremonyError> {
    let of = |class: &str| objects.iter().filter(|o| o.class == class).count();
    let (private, public) = (of("private-key"), of("public-key"));
    // A certificate under the label was not made by the generation: leave
    // everything to the preflight's judgement.
    if private + public == 0 || of("certificate") > 0 {
        return Ok(None);
    }
    let what = match (private, public) {
        (0, _) => "a public key without its private key".to_string(),
        (_, 0) => "a private key without its public key".to_string(),
        (1, 1) => {
            let ids_ok = objects
                .iter()
                .filter(|o| o.class.ends_with("-key"))
                .all(|o| hex::encode(&o.id) == id);
            if !ids_ok {
                "key objects without the recorded CKA_ID".to_string()
            } else {
                let checked = token
                    .find_key_pair(&spec.label, spec.key)
                    .and_then(|k| match k {
                        Some(k) => token.check_key(&k),
                        None => Ok(()),
                    });
                match checked {
                    Ok(()) => return Ok(None),
                    Err(e) => match e.key_fault() {
                        Some(why) => why,
                        None => return Err(e.into()),
                    },
                }
            }
        }
        _ => format!("{private} private and {public} public key objects"),
    };
    Ok(Some(what))
}

/// What is wrong with the certificate objects under the label of an
/// interrupted store of the certificate with SHA-256 `sha256` (hex); None
/// when there are none or it is that certificate, complete, beside its key.
fn unfinished_certificate(
    token: &dyn Token,
    spec: &CaSpec,
    sha256: &str,
    objects: &[ObjectInfo],
) -> Result<Option<String>, CeremonyError> {
    let certs: Vec<&ObjectInfo> = objects
        .iter()
        .filter(|o| o.class == "certificate")
        .collect();
    let [cert] = certs.as_slice() else {
        return Ok((!certs.is_empty()).then(|| format!("{} certificate objects", certs.len())));
    };
    // SoftHSM answers an empty CKA_VALUE for a certificate whose file ends before it.
    match token
        .find_certificate(&spec.label)?
        .filter(|der| !der.is_empty())
    {
        None => return Ok(Some("a certificate without its value (CKA_VALUE)".into())),
        Some(der) if hex::encode(x509::sha256(&der)) != sha256 => {
            return Ok(Some(
                "a certificate whose value is not the one signed".into(),
            ));
        }
        Some(_) => {}
    }
    let key_id = objects
        .iter()
        .find(|o| o.class == "private-key")
        .map(|o| &o.id);
    Ok((key_id != Some(&cert.id)).then(|| "a certificate without its key's CKA_ID".into()))
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
    remove_unfinished_writes(r, journal)?;
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

/// The host's name, for the record (the kernel's own file; no libc call).
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "(unknown)".into())
}

/// SHA-256 of the running binary, or why it is unknown.
fn tool_sha256() -> String {
    match std::env::current_exe().and_then(std::fs::read) {
        Ok(bytes) => hex::encode(x509::sha256(&bytes)),
        Err(e) => format!("(unreadable: {e})"),
    }
}

/// Opens or continues the journal of this plan's output and records the
/// start (or the resume, with what was found) and the token's identity.
fn start_record(
    opts: &RunOptions,
    loaded: &LoadedPlan,
    module: &Path,
    token: &dyn Token,
    ui: &Ui,
) -> Result<(Journal, Environment, Option<Recovery>), CeremonyError> {
    let env = Environment {
        tool_version: env!("CARGO_PKG_VERSION").into(),
        tool_sha256: tool_sha256(),
        module_path: module.display().to_string(),
        module_sha256: hex::encode(token.module_sha256()),
        host: host_name(),
        unattended: opts.yes,
    };
    let (mut journal, recovery) =
        Journal::open(&opts.out, &loaded.sha256, &loaded.plan.recipients)?;
    let plan_sha256 = hex::encode(loaded.sha256);
    let output = opts.out.display().to_string();
    // A journal without one intact record (the previous run died writing its
    // first) holds nothing done: the ceremony starts afresh, as itself.
    let recovery = recovery.filter(|r| r.records > 0);
    let resumed = recovery.clone();
    match recovery {
        None => journal.record(Event::CeremonyStarted {
            ceremony: loaded.plan.name.clone(),
            plan_path: loaded.path.display().to_string(),
            plan_sha256,
            output,
            administrator: loaded.plan.administrator.clone(),
            witnesses: loaded.plan.witnesses.clone(),
            env: env.clone(),
        })?,
        Some(mut found) => {
            found.staging_discarded = audit::sibling(&opts.out, "staging").exists();
            ui.note(&format!(
                "Resuming: the audit journal {} holds {} records{}",
                journal.dir().display(),
                found.records,
                if found.torn_frame_bytes > 0 {
                    format!(
                        " (a torn last frame of {} bytes, written as the previous run died, is cut off)",
                        found.torn_frame_bytes
                    )
                } else {
                    String::new()
                }
            ));
            journal.record(Event::Resumed {
                plan_sha256,
                output,
                env: env.clone(),
                found,
            })?
        }
    }
    let id = token.identity();
    journal.record(Event::TokenIdentified {
        label: id.label.clone(),
        manufacturer: id.manufacturer.clone(),
        model: id.model.clone(),
        serial: id.serial.clone(),
        firmware: id.firmware.clone(),
        hardware: id.hardware.clone(),
    })?;
    Ok((journal, env, resumed))
}

/// Records how a run failed (cancelled, or the rendered error: never a PIN).
fn record_failure(journal: &mut Journal, e: &CeremonyError, ui: &Ui) {
    let event = match e {
        CeremonyError::Cancelled(reason) => Event::Cancelled {
            reason: reason.clone(),
        },
        e => {
            let message = e.to_string();
            let mut causes = Vec::new();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let text = s.to_string();
                if text != message && !message.ends_with(&text) {
                    causes.push(text);
                }
                source = s.source();
            }
            Event::Error {
                message,
                causes,
                exit_code: e.exit_code(),
            }
        }
    };
    if let Err(x) = journal.append(event) {
        ui.warn(&format!(
            "the failure could not be added to the audit journal: {x}"
        ));
    }
}

/// Records every output, appends `end`, has the root seal it through the
/// token, writes `audit.log.age` and `transcript.md` into the staging
/// directory and commits it. Returns OUT, the record count, the final hash,
/// every file written and the SHA-256 of SHA256SUMS.
fn seal_and_commit(
    mut st: Staging,
    token: &dyn Token,
    loaded: &LoadedPlan,
    cas: &[CaState],
    journal: &mut Journal,
    env: &Environment,
    ui: &Ui,
) -> Result<Sealed, CeremonyError> {
    let written = st.written().to_vec();
    let sums = written
        .iter()
        .find(|(p, _, _)| p == layout::SHA256SUMS)
        .map(|(_, sha, _)| *sha)
        .ok_or_else(|| CeremonyError::Internal("SHA256SUMS was not written".into()))?;
    // A journal frame (one fsync) per thousand outputs, not per output.
    for chunk in written.chunks(1024) {
        journal.record_all(
            chunk
                .iter()
                .map(|(path, sha, mode)| Event::OutputWritten {
                    path: path.clone(),
                    sha256: crate::fmt::hex(sha),
                    mode: format!("{mode:04o}"),
                })
                .collect(),
        )?;
    }
    let end = journal.append(Event::End {
        outputs: written.len() as u64,
        sha256sums_sha256: hex::encode(sums),
    })?;
    crate::failpoint::hit("before-seal");
    let root = cas
        .first()
        .ok_or_else(|| CeremonyError::Internal("no root CA to seal with".into()))?;
    ui.note(&format!(
        "Seal the audit log: the root key \"{}\" signs its final hash on the token",
        root.key.label
    ));
    let signature = token.sign(&root.key, &audit::seal::message(&end))?;
    crate::failpoint::hit("after-seal-sign");
    let seal = audit::seal::Seal::new(
        &end,
        root.key.key_type,
        &signature,
        &root.der,
        &root.key.spki,
    )?;
    // Streamed from the journal into the file: never the whole log in memory.
    let records = st.write_with(layout::AUDIT_LOG, write::PUBLIC, |w| {
        journal
            .write_sealed(&seal, &loaded.plan.recipients, w)
            .map_err(CeremonyError::from)
    })?;
    let transcript = audit::transcript::render(&transcript_facts(
        loaded,
        token,
        cas,
        env,
        written.len() as u64,
        sums,
        records,
        end,
        &seal.algorithm,
    ));
    st.write(layout::TRANSCRIPT, transcript.as_bytes(), write::PUBLIC)?;
    // Everything OUT holds, the sealed log and transcript included.
    let all_written = st.written().to_vec();
    let out = st.commit()?;
    Ok(Sealed {
        out,
        records,
        final_hash: end,
        written: all_written,
        sha256sums: sums,
    })
}

/// What transcript.md states.
#[allow(clippy::too_many_arguments)] // plain facts, gathered in one place
fn transcript_facts(
    loaded: &LoadedPlan,
    token: &dyn Token,
    cas: &[CaState],
    env: &Environment,
    outputs: u64,
    sums: [u8; 32],
    records: u64,
    final_hash: [u8; 32],
    algorithm: &str,
) -> audit::transcript::Facts {
    use der::Encode;
    let module_sha256 = hex::decode(&env.module_sha256)
        .ok()
        .and_then(|v| v.try_into().ok())
        .unwrap_or([0; 32]);
    let cas = cas
        .iter()
        .map(|ca| {
            let tbs = ca.cert.tbs_certificate();
            let v = tbs.validity();
            audit::transcript::CaFacts {
                role: ca.role.name().into(),
                label: ca.key.label.clone(),
                key_type: ca.key.key_type.name().into(),
                subject: crate::x509::name_text(tbs.subject()),
                serial: x509::colon_hex(tbs.serial_number().as_bytes()),
                not_before: x509::fmt_time(v.not_before.to_system_time()),
                not_after: x509::fmt_time(v.not_after.to_system_time()),
                cert_sha256: x509::sha256(&ca.der),
                spki_sha256: ca
                    .key
                    .spki
                    .to_der()
                    .map(|d| x509::sha256(&d))
                    .unwrap_or([0; 32]),
                provenance: match (ca.generated_key, ca.signed_cert) {
                    (true, _) => "new key, new certificate",
                    (false, true) => "existing key, new certificate",
                    (false, false) => "existing key and certificate (resumed)",
                }
                .into(),
            }
        })
        .collect();
    let mut leaves = Vec::new();
    if let Some(cl) = &loaded.plan.cluster {
        for (i, n) in cl.control_plane.iter().enumerate() {
            leaves.push((
                n.name.clone(),
                crate::profile::kubeadm::control_plane_leaves(cl, i).len(),
            ));
        }
        for w in &cl.workers {
            leaves.push((
                w.clone(),
                crate::profile::kubeadm::worker_leaves(cl, w).len(),
            ));
        }
    }
    let id = token.identity();
    audit::transcript::Facts {
        ceremony: loaded.plan.name.clone(),
        date: crate::fmt::rfc3339(SystemTime::now()),
        plan_path: loaded.path.display().to_string(),
        plan_sha256: loaded.sha256,
        administrator: loaded.plan.administrator.clone(),
        witnesses: loaded.plan.witnesses.clone(),
        tool_version: env.tool_version.clone(),
        tool_sha256: env.tool_sha256.clone(),
        module_path: env.module_path.clone(),
        module_sha256,
        token: id.to_string(),
        token_firmware: id.firmware.clone(),
        host: env.host.clone(),
        unattended: env.unattended,
        cas,
        leaves,
        outputs,
        sha256sums_sha256: sums,
        audit_records: records,
        audit_final_hash: final_hash,
        seal_algorithm: algorithm.into(),
    }
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

/// `ceremony token list`: every object, with the flags that matter for CA keys.
pub fn token_list(
    plan_path: Option<&Path>,
    uri: Option<&str>,
    module: Option<&Path>,
    pin: &PinOptions,
) -> Result<(), CeremonyError> {
    let usage = |m: &str| CeremonyError::Usage {
        message: m.into(),
        hint: "give a plan (--plan plan.toml) or --uri pkcs11:token=... with --module".into(),
    };
    let (uri, module_path, sha) = match (plan_path, uri) {
        (Some(p), None) => {
            let loaded = plan::load(p, SystemTime::now())?;
            let m = module
                .map(Path::to_path_buf)
                .unwrap_or(loaded.plan.module.clone());
            (loaded.plan.token_uri.clone(), m, loaded.plan.module_sha256)
        }
        (None, Some(u)) => {
            let uri = TokenUri::parse(u).map_err(|e| usage(&format!("--uri {e}")))?;
            (
                uri,
                module
                    .ok_or_else(|| usage("--uri needs --module"))?
                    .to_path_buf(),
                None,
            )
        }
        _ => return Err(usage("say which token: --plan or --uri")),
    };
    let given = read_given_pin(pin)?;
    let token = Pkcs11Token::open(&module_path, &uri, sha)?;
    let ui = Ui::new(interactive(), true);
    login(&token, given, &ui)?;
    let objects = token.list_objects()?;
    println!("token {}", token.identity());
    println!(
        "{:<12} {:<32} {:<34} {:<6} flags",
        "class", "label", "id", "type"
    );
    let mut unreadable = 0;
    for o in &objects {
        if let Some(why) = &o.unreadable {
            unreadable += 1;
            println!(
                "{:<12} {:<32} {:<34} {:<6} the token cannot describe this object ({why})",
                o.class, "-", "-", "-"
            );
            continue;
        }
        let flags = o.flags.map_or(String::new(), |f| {
            let b = |v: Option<bool>| v.map_or("?", |x| if x { "yes" } else { "no" });
            format!(
                "sensitive={} extractable={} always-sensitive={} never-extractable={}",
                b(f.sensitive),
                b(f.extractable),
                b(f.always_sensitive),
                b(f.never_extractable)
            )
        });
        println!(
            "{:<12} {:<32} {:<34} {:<6} {flags}",
            o.class,
            o.label,
            hex::encode(&o.id),
            o.key_type.as_deref().unwrap_or("-")
        );
    }
    println!("{} objects", objects.len());
    if unreadable > 0 {
        // Not a ceremony key: every key the ceremony made has a class and a
        // label it can read back.
        eprintln!(
            "note: {unreadable} object(s) the token cannot describe; SoftHSM leaves one when a process is killed \
             while it writes an object. It is none of the ceremony's keys; remove it with the token's own tools \
             if you want it gone"
        );
    }
    Ok(())
}

/// A run killed after its output was committed but before its journal was
/// removed leaves OUT finished and the journal (with its journal-local
/// identity) beside it. A rerun of the same plan removes that journal and
/// reports the ceremony done: every record of the journal is in OUT's sealed
/// log, since nothing is appended after the commit, and no later run could
/// have appended (each stops at the existing OUT before opening the journal).
fn finish_committed(out: &Path, loaded: &LoadedPlan, ui: &Ui) -> Result<bool, CeremonyError> {
    let committed = std::fs::read(out.join(layout::PLAN))
        .is_ok_and(|t| t == loaded.text.as_bytes())
        && out.join(layout::AUDIT_LOG).is_file()
        && out.join(layout::TRANSCRIPT).is_file();
    if !committed || !audit::journal::check_owner(out, &loaded.sha256)? {
        return Ok(false);
    }
    let dir = audit::journal::path(out);
    std::fs::remove_dir_all(&dir).map_err(audit::io(&dir))?;
    write::remove_stale_marker(out)?;
    ui.note(&format!(
        "{} is this plan's finished output, sealed; removed the journal {} the previous run left beside it",
        out.display(),
        dir.display()
    ));
    Ok(true)
}
