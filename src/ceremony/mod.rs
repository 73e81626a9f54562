//! The flow of `ceremony run`, `check` and `token list`: the only place that
//! talks to the operator. Everything it prints goes to stderr through `ui`;
//! the token, files and prompts are reached through their modules.

pub mod bundle;
pub mod ca;
pub mod check;
pub mod ui;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::bundle::write::{self, OutputError, Staging};
use crate::keytype::KeyType;
use crate::plan::{self, CaRole, LoadedPlan, PlanError};
use crate::token::pin::{self, Pin, PinError};
use crate::token::pkcs11::Pkcs11Token;
use crate::token::uri::TokenUri;
use crate::token::{Token, TokenError};
use crate::x509::{self, X509Error};
use ca::CaState;
use ui::Ui;

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
    #[error("{message}")]
    Usage { message: String, hint: String },
    #[error("cancelled by the operator: {0}")]
    Cancelled(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl CeremonyError {
    /// Exit codes of design §4.
    pub fn exit_code(&self) -> i32 {
        match self {
            CeremonyError::Cancelled(_) => 1,
            CeremonyError::Plan(_)
            | CeremonyError::Usage { .. }
            | CeremonyError::Pin(_)
            | CeremonyError::Outlives { .. } => 2,
            CeremonyError::Output(e) if e.is_usage() => 2,
            CeremonyError::Token(_) | CeremonyError::Foreign { .. } => 3,
            CeremonyError::X509(X509Error::Check { .. }) => 4,
            CeremonyError::X509(X509Error::Sign { .. }) => 3,
            CeremonyError::Output(_) | CeremonyError::X509(_) | CeremonyError::Internal(_) => 5,
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
            CeremonyError::X509(X509Error::Check { .. }) => {
                Some("nothing was written; report this: the token returned a signature that does not check".into())
            }
            CeremonyError::Foreign { .. } => Some(
                "inspect the token with `ceremony token list`; give the plan an unused label rather than reuse a foreign object".into(),
            ),
            CeremonyError::Outlives { .. } => Some("shorten the validity in the plan".into()),
            CeremonyError::Usage { hint, .. } => Some(hint.clone()),
            CeremonyError::Cancelled(_) => Some("run the same command again to resume; the token keeps what was made".into()),
            CeremonyError::X509(_) | CeremonyError::Internal(_) => None,
        }
    }
}

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
fn login(token: &Pkcs11Token, given: Option<Pin>, ui: &Ui) -> Result<(), CeremonyError> {
    let id = token.identity().clone();
    let (count_low, final_try, locked) = token.pin_flags()?;
    if locked {
        return Err(TokenError::PinLocked {
            token: id.to_string(),
        }
        .into());
    }
    if final_try {
        ui.warn("the token says the next wrong PIN locks the user PIN");
    } else if count_low {
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
        let pin = pin::prompt_pin(&id.to_string())?;
        match token.login(Some(&pin)) {
            Err(TokenError::PinIncorrect { .. }) if attempt < 3 => {
                ui.warn(&format!("wrong PIN ({attempt} of 3 attempts)"));
                if token.pin_flags()?.2 {
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
    let mut ui = Ui::new(interactive, opts.yes, check::step_count(&loaded));
    write::check_output(&opts.out, &loaded.sha256)?;
    let given_pin = read_given_pin(&opts.pin)?;
    let module = opts
        .module
        .clone()
        .unwrap_or_else(|| loaded.plan.module.clone());

    ui.banner(&loaded);
    ui.step(&format!(
        "Open {} and find token {}",
        module.display(),
        loaded.plan.token_uri
    ));
    let token = Pkcs11Token::open(&module, &loaded.plan.token_uri, loaded.plan.module_sha256)?;
    let id = token.identity().clone();
    ui.note(&format!(
        "token {id}, firmware {}, module SHA-256 {}",
        id.firmware,
        hex::encode(token.module_sha256)
    ));
    ui.confirm_typed(
        &format!(
            "Type the token serial ({}) to start the ceremony on it",
            id.serial
        ),
        &id.serial,
    )?;
    login(&token, given_pin, &ui)?;
    ui.step("Check the token's mechanisms for every key type of the plan");
    for (kt, mech) in token.require_mechanisms(&ca_key_types(&loaded))? {
        ui.note(&format!("{kt}: {mech}"));
    }
    for spec in &loaded.plan.cas {
        ca::preflight_label(&token, spec)?;
    }

    let mut cas: Vec<CaState> = Vec::new();
    for spec in &loaded.plan.cas {
        ui.step(&format!(
            "{} CA: key {} \"{}\" and certificate",
            spec.role.name(),
            spec.key,
            spec.label
        ));
        let issuer = cas.first().filter(|_| spec.role != CaRole::Root);
        let state = ca::ensure_ca(&token, spec, issuer, now, &mut |what| ui.note(what))?;
        ui.ca_done(&state);
        cas.push(state);
    }

    ui.step(&format!("Write the outputs to {}", opts.out.display()));
    let out = write_outputs(&token, &opts.out, &loaded, &cas, now, interactive)?;
    ui.done(&out, &cas);
    Ok(())
}

/// The CA files (the root, each intermediate alone, each chain: intermediate
/// then root), every node's bundle, and SHA256SUMS; staged, then renamed into place.
fn write_outputs(
    token: &dyn Token,
    out: &Path,
    loaded: &LoadedPlan,
    cas: &[CaState],
    now: SystemTime,
    interactive: bool,
) -> Result<PathBuf, CeremonyError> {
    let mut st = Staging::begin(out, &loaded.sha256)?;
    let root = &cas[0];
    st.write(
        "root-ca.crt",
        x509::to_pem(&root.der).as_bytes(),
        write::PUBLIC,
    )?;
    for ca in &cas[1..] {
        let name = ca.role.name();
        st.write(
            &format!("cas/{name}-ca.crt"),
            x509::to_pem(&ca.der).as_bytes(),
            write::PUBLIC,
        )?;
        let chain = x509::to_pem(&ca.der) + &x509::to_pem(&root.der);
        st.write(
            &format!("chains/{name}-ca-chain.crt"),
            chain.as_bytes(),
            write::PUBLIC,
        )?;
    }
    if let Some(cl) = &loaded.plan.cluster {
        bundle::write_nodes(token, &mut st, cl, cas, now, interactive)?;
    }
    let sums = bundle::sha256sums(&st);
    st.write("SHA256SUMS", sums.as_bytes(), write::PUBLIC)?;
    Ok(st.commit()?)
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
    let ui = Ui::new(interactive(), true, 0);
    login(&token, given, &ui)?;
    let objects = token.list_objects()?;
    println!("token {}", token.identity());
    println!(
        "{:<12} {:<32} {:<34} {:<6} flags",
        "class", "label", "id", "type"
    );
    for o in &objects {
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
    Ok(())
}
