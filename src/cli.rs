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
    /// Check a bundle (OUT, or one node's etc/kubernetes) for what kubeadm does not:
    /// key/certificate pairs, chains, profiles, SANs, kubeconfigs, modes, no CA key, SHA256SUMS
    #[command(
        after_help = "Prints one line per problem (`<file>: <field>: <what> (expected X, got Y)`), then a summary. \
Exit codes: 0 no problem, 4 problems found, 2 bad arguments or plan."
    )]
    Verify {
        /// The ceremony output, or a node's etc/kubernetes directory
        dir: PathBuf,
        /// The root CA certificate to check the intermediates against (default: DIR/root-ca.crt for an output)
        #[arg(long, value_name = "FILE")]
        root: Option<PathBuf>,
        /// Compare every certificate with the exact profiles of this plan
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
    },
    /// Print every certificate's expiry, as `kubeadm certs check-expiration` does
    Inspect {
        /// The ceremony output, or a node's etc/kubernetes directory
        dir: PathBuf,
        /// Print JSON instead of tables
        #[arg(long)]
        json: bool,
    },
    /// Inspect the token
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Check or show a ceremony's audit log (OUT/audit.log.age, or an unsealed journal)
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Decrypt the log, check its sequence, hash chain and the root's seal
    #[command(
        after_help = "FILE is OUT/audit.log.age, an unsealed journal directory (.<out>.journal) or its records file, \
or the JSON lines `age -d` printed. Exit codes: 0 intact (\"sealed and intact\", or \"unsealed, N records intact\" \
for a journal), 4 broken (the first broken record is named), 2 bad arguments, unreadable file or wrong identity."
    )]
    Verify {
        file: PathBuf,
        /// An age identity file (or unencrypted OpenSSH key) of one of the plan's [audit] recipients
        #[arg(long, short = 'i', value_name = "FILE")]
        identity: Option<PathBuf>,
        /// The root CA certificate that must have sealed the log (default: root-ca.crt beside FILE)
        #[arg(long, value_name = "FILE")]
        root: Option<PathBuf>,
    },
    /// Print the log as a timeline, then check it as `verify` does
    Show {
        file: PathBuf,
        /// An age identity file (or unencrypted OpenSSH key) of one of the plan's [audit] recipients
        #[arg(long, short = 'i', value_name = "FILE")]
        identity: Option<PathBuf>,
        /// The root CA certificate that must have sealed the log (default: root-ca.crt beside FILE)
        #[arg(long, value_name = "FILE")]
        root: Option<PathBuf>,
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
        Command::Verify { dir, root, plan } => Ok(crate::verify::run_verify(
            &dir,
            root.as_deref(),
            plan.as_deref(),
        )?),
        Command::Inspect { dir, json } => Ok(crate::verify::run_inspect(&dir, json)?),
        Command::Audit {
            command:
                AuditCommand::Verify {
                    file,
                    identity,
                    root,
                },
        } => {
            print!(
                "{}",
                crate::audit::inspect::verify(&file, identity.as_deref(), root.as_deref())?
            );
            Ok(())
        }
        Command::Audit {
            command:
                AuditCommand::Show {
                    file,
                    identity,
                    root,
                },
        } => {
            let (timeline, verdict) =
                crate::audit::inspect::show(&file, identity.as_deref(), root.as_deref())?;
            print!("{timeline}");
            Ok(verdict?)
        }
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
