//! One thin file per subcommand: load what it needs, call the library, print
//! the result. `dispatch` picks one; `main` renders any error once.

// Printing the result is what a subcommand does.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod audit;
mod check;
mod man;
mod restore;
mod token;
mod verify;

use crate::ceremony::RunOptions;
use crate::cli::{AuditCommand, BackupCommand, Cli, Command, TokenCommand};
use crate::error::CeremonyError;

pub fn dispatch(cli: Cli) -> Result<(), CeremonyError> {
    // Before any PIN, key or identity is in memory (src/harden.rs says why).
    crate::harden::no_core_dumps().map_err(|e| {
        CeremonyError::Internal(format!("cannot disable core dumps for this process: {e}"))
    })?;
    match cli.command {
        Command::Check { plan, out } => check::run(&plan, out.as_deref()),
        Command::Run {
            plan,
            yes,
            rehearsal,
            out,
            module,
            pin,
            shares_out,
            so_pin,
        } => crate::ceremony::run(&RunOptions {
            plan,
            out,
            yes,
            rehearsal,
            pin: pin.into(),
            module,
            backup: crate::ceremony::backup::BackupOptions {
                shares_out,
                so_pin: so_pin.into(),
            },
        }),
        Command::Restore { args, out } => restore::run(args, Some(&out)),
        Command::Backup {
            command: BackupCommand::Verify { args },
        } => restore::run(args, None),
        Command::Verify {
            dir,
            root,
            plan,
            identity,
        } => verify::run(&dir, root.as_deref(), plan.as_deref(), &identity),
        Command::Inspect {
            dirs,
            json,
            expiring,
            renewal_plan,
        } => verify::inspect(&dirs, json, expiring, renewal_plan),
        Command::Completions { shell } => man::completions(shell),
        Command::Man { dir } => man::run(dir.as_deref()),
        Command::Audit {
            command:
                AuditCommand::Verify {
                    files,
                    identity,
                    root,
                    chain_only,
                },
        } => audit::verify(&files, identity.as_deref(), root.as_deref(), chain_only),
        Command::Audit {
            command:
                AuditCommand::Show {
                    file,
                    identity,
                    root,
                    chain_only,
                },
        } => audit::show(&file, identity.as_deref(), root.as_deref(), chain_only),
        Command::Token {
            command:
                TokenCommand::List {
                    plan,
                    uri,
                    module,
                    pin,
                },
        } => token::list(
            plan.as_deref(),
            uri.as_deref(),
            module.as_deref(),
            &pin.into(),
        ),
        Command::Token {
            command:
                TokenCommand::Probe {
                    plan,
                    uri,
                    module,
                    pin,
                },
        } => token::probe(
            plan.as_deref(),
            uri.as_deref(),
            module.as_deref(),
            &pin.into(),
        ),
    }
}

/// Writes generated text to stdout; a closed pipe (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<(), CeremonyError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CeremonyError::Internal(format!("writing to stdout: {e}")))
        }
        _ => Ok(()),
    }
}
