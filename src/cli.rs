//! Command-line interface. There is deliberately no PIN argument: a PIN
//! comes from --pin-file, an environment variable named by --pin-env, the
//! no-echo prompt or the token's PIN pad.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::ceremony::{self, CeremonyError, PinOptions, RunOptions};

#[derive(Debug, Parser)]
#[command(
    name = "ceremony",
    version,
    about = "Offline, HSM-backed root CA ceremony for kubeadm clusters"
)]
#[command(
    after_help = "Exit codes: 0 done, 1 cancelled by the operator, 2 bad plan or usage (nothing touched), \
3 token error, 4 a signed certificate failed its check (outputs held back), 5 internal error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone, Default)]
pub struct PinArgs {
    /// Read the user PIN from this file (mode 0600 or stricter; one line)
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
    /// Read the user PIN from this environment variable
    #[arg(long, value_name = "VAR", conflicts_with = "pin_file")]
    pub pin_env: Option<String>,
}

impl From<PinArgs> for PinOptions {
    fn from(a: PinArgs) -> PinOptions {
        PinOptions {
            file: a.pin_file,
            env: a.pin_env,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a plan and print every step and certificate `run` would make; touches no token
    Check {
        plan: PathBuf,
        /// Output directory `run` would write to
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
    /// Run the ceremony (resumes an interrupted run of the same plan)
    Run {
        plan: PathBuf,
        /// Skip confirmations (unattended rehearsals and CI)
        #[arg(long)]
        yes: bool,
        /// Output directory; must not exist or be empty
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// PKCS#11 module to use instead of the plan's token.module
        #[arg(long, value_name = "PATH")]
        module: Option<PathBuf>,
        #[command(flatten)]
        pin: PinArgs,
    },
    /// Inspect the token
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// List every object on the token with its label, id, class, key type and flags
    List {
        /// Take the token URI and module from this plan
        #[arg(long, conflicts_with = "uri")]
        plan: Option<PathBuf>,
        /// RFC 7512 URI of the token, e.g. pkcs11:token=k8s-root
        #[arg(long)]
        uri: Option<String>,
        /// PKCS#11 module (with --uri, or to override the plan's)
        #[arg(long, value_name = "PATH")]
        module: Option<PathBuf>,
        #[command(flatten)]
        pin: PinArgs,
    },
}

pub fn dispatch(cli: Cli) -> Result<(), CeremonyError> {
    match cli.command {
        Command::Check { plan, out } => {
            let now = std::time::SystemTime::now();
            let loaded = crate::plan::load(&plan, now)?;
            print!("{}", ceremony::check::report(&loaded, &out, now));
            Ok(())
        }
        Command::Run {
            plan,
            yes,
            out,
            module,
            pin,
        } => ceremony::run(&RunOptions {
            plan,
            out,
            yes,
            pin: pin.into(),
            module,
        }),
        Command::Token {
            command:
                TokenCommand::List {
                    plan,
                    uri,
                    module,
                    pin,
                },
        } => ceremony::token_list(
            plan.as_deref(),
            uri.as_deref(),
            module.as_deref(),
            &pin.into(),
        ),
    }
}
