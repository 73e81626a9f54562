//! `ceremony token list`: every object on the token, with the flags that
//! matter for CA keys. Reads only.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::ceremony::login::{interactive, login, read_given_pin};
use crate::error::CeremonyError;
use crate::operator::ui::Ui;
use crate::plan;
use crate::token::Token;
use crate::token::pin::PinOptions;
use crate::token::pkcs11::Pkcs11Token;
use crate::token::uri::TokenUri;

/// The token a `token` command names: by plan, or by URI and module.
struct Selected {
    uri: TokenUri,
    module: PathBuf,
    sha: Option<[u8; 32]>,
    plan: Option<plan::LoadedPlan>,
}

fn select(
    plan_path: Option<&Path>,
    uri: Option<&str>,
    module: Option<&Path>,
) -> Result<Selected, CeremonyError> {
    let usage = |m: &str| CeremonyError::Usage {
        message: m.into(),
        hint: "give a plan (--plan plan.toml) or --uri pkcs11:token=... with --module".into(),
    };
    match (plan_path, uri) {
        (Some(p), None) => {
            let loaded = plan::load(p, SystemTime::now())?;
            let m = module
                .map(Path::to_path_buf)
                .unwrap_or(loaded.plan.module.clone());
            Ok(Selected {
                uri: loaded.plan.token_uri.clone(),
                module: m,
                sha: loaded.plan.module_sha256,
                plan: Some(loaded),
            })
        }
        (None, Some(u)) => Ok(Selected {
            uri: TokenUri::parse(u).map_err(|e| usage(&format!("--uri {e}")))?,
            module: module
                .ok_or_else(|| usage("--uri needs --module"))?
                .to_path_buf(),
            sha: None,
            plan: None,
        }),
        _ => Err(usage("say which token: --plan or --uri")),
    }
}

/// `ceremony token probe`: what a plan needs to know about the token.
pub fn probe(
    plan_path: Option<&Path>,
    uri: Option<&str>,
    module: Option<&Path>,
    pin: &PinOptions,
) -> Result<(), CeremonyError> {
    let s = select(plan_path, uri, module)?;
    // Read before the token: a PIN file that cannot be read is said first.
    let given = match &s.plan {
        Some(_) => read_given_pin(pin)?,
        None => None,
    };
    let token = Pkcs11Token::open(&s.module, &s.uri, s.sha)?;
    let id = token.identity();
    let mut out = vec![
        format!("token {id}"),
        format!(
            "  firmware {}, hardware {}; URI: pkcs11:token={};serial={}",
            id.firmware,
            id.hardware,
            uri_value(&id.label),
            uri_value(&id.serial)
        ),
        format!(
            "module {}, SHA-256 {} (token.module_sha256)",
            s.module.display(),
            hex::encode(token.module_sha256)
        ),
    ];
    out.extend(token.probe()?.lines());
    let Some(loaded) = &s.plan else {
        out.push("Labels: give --plan to check the plan's labels (logs in)".into());
        super::write_stdout(crate::fmt::shown_lines(&(out.join("\n") + "\n")).as_bytes())?;
        return Ok(());
    };
    let ui = Ui::new(interactive(), true);
    login(&token, given, &ui)?;
    out.push(format!("Labels of plan {}:", loaded.path.display()));
    let labels = loaded
        .plan
        .cas
        .iter()
        .map(|ca| (format!("{} CA", ca.role.name()), ca.label.as_str()))
        .chain([("chain head".to_string(), crate::ceremony::CHAIN_HEAD_LABEL)]);
    for (what, label) in labels {
        let objects = token.objects_labelled(label)?;
        let mut classes: Vec<String> = objects.iter().map(|o| o.class.clone()).collect();
        classes.sort();
        let meaning = if label == crate::ceremony::CHAIN_HEAD_LABEL {
            "the final hash of the token's latest ceremony"
        } else {
            "a founding ceremony needs a free label; a continuing one finds its CA here"
        };
        out.push(if objects.is_empty() {
            format!("  {what:<15} \"{label}\": free")
        } else {
            format!(
                "  {what:<15} \"{label}\": used ({}): {meaning}",
                classes.join(", ")
            )
        });
    }
    super::write_stdout(crate::fmt::shown_lines(&(out.join("\n") + "\n")).as_bytes())
}

/// A value for a PKCS#11 URI (RFC 7512): unreserved characters as they
/// are, every other byte percent-encoded.
fn uri_value(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `ceremony token list`: every object, with the flags that matter for CA keys.
pub fn list(
    plan_path: Option<&Path>,
    uri: Option<&str>,
    module: Option<&Path>,
    pin: &PinOptions,
) -> Result<(), CeremonyError> {
    let Selected {
        uri,
        module: module_path,
        sha,
        ..
    } = select(plan_path, uri, module)?;
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
