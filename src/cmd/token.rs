//! `ceremony token list`: every object on the token, with the flags that
//! matter for CA keys. Reads only.

use std::path::Path;
use std::time::SystemTime;

use crate::ceremony::login::{interactive, login, read_given_pin};
use crate::error::CeremonyError;
use crate::operator::ui::Ui;
use crate::plan;
use crate::token::Token;
use crate::token::pin::PinOptions;
use crate::token::pkcs11::Pkcs11Token;
use crate::token::uri::TokenUri;

/// `ceremony token list`: every object, with the flags that matter for CA keys.
pub fn list(
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
    let mut half = 0;
    for o in &objects {
        if let Some(why) = &o.unreadable {
            unreadable += 1;
            half += 1;
            println!(
                "{:<12} {:<32} {:<34} {:<6} the token cannot describe this object ({why})",
                o.class, "-", "-", "-"
            );
            continue;
        }
        let flags = o.flags.map_or(String::new(), |f| {
            let b = |v: Option<bool>| v.map_or("?", |x| if x { "yes" } else { "no" });
            format!(
                "sensitive={} extractable={} always-sensitive={} never-extractable={}{}",
                b(f.sensitive),
                b(f.extractable),
                b(f.always_sensitive),
                b(f.never_extractable),
                if f.backed_up() {
                    " wrap-with-trusted=yes (backed up)"
                } else {
                    ""
                }
            )
        });
        let mark = match o.half_written() {
            Some(why) => {
                half += 1;
                format!("  HALF-WRITTEN? ({why})")
            }
            None => String::new(),
        };
        println!(
            "{:<12} {:<32} {:<34} {:<6} {flags}{mark}",
            o.class,
            crate::fmt::shown(&o.label),
            hex::encode(&o.id),
            o.key_type.as_deref().unwrap_or("-")
        );
    }
    println!("{} objects", objects.len());
    if half > unreadable {
        // Never removed by this command: on a real HSM a tool that deletes
        // objects it does not recognise could delete a key that matters.
        // The ceremony removes only the torn writes its own journal recorded
        // (on its next run); anything else is the token owner's decision.
        eprintln!(
            "note: {} object(s) marked HALF-WRITTEN? look like what a process killed inside the token's write leaves. \
             This command removes nothing; `ceremony run` cleans up its own torn writes from its journal. \
             Check each with the token's own tools and remove it there if it is none of yours (see docs/runbook.md)",
            half - unreadable
        );
    }
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
