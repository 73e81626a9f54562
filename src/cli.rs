//! Command-line interface. There is deliberately no PIN argument: a PIN
//! comes from --pin-file, an environment variable named by --pin-env, the
//! no-echo prompt or the token's PIN pad.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::token::pin::PinOptions;

#[derive(Debug, Parser)]
#[command(
    name = "ceremony",
    version,
    about = "Offline, HSM-backed root CA ceremony for kubeadm clusters",
    long_about = "Offline, HSM-backed root CA ceremony for kubeadm clusters.\n\n\
One reviewed file, plan.toml, says which CAs to make on which PKCS#11 token and which nodes to \
issue certificates for. The CA keys are generated inside the token and never leave it; every \
signature is made by the token and checked before anything is written.\n\n\
The usual order:\n  \
1. ceremony check plan.toml          review every step, certificate and file (no token touched)\n  \
2. ceremony run plan.toml --out OUT  the ceremony, at a terminal, with witnesses (rehearse it on SoftHSM first)\n  \
3. ceremony verify OUT               check the bundle before it goes to the nodes\n  \
4. ceremony audit verify OUT/audit.log.age -i IDENTITY   the auditor checks the sealed record\n\n\
docs/runbook.md is the script the administrator and the witnesses follow."
)]
#[command(
    after_help = "Exit codes: 0 done, 1 cancelled by the operator, 2 bad plan or usage (nothing written), \
3 token error, 4 a signed certificate failed its check (outputs held back), 5 internal error, \
6 `inspect --expiring`: a certificate expires within the window."
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
    #[command(
        long_about = "Validate a plan and print what `ceremony run` would do with it: the numbered steps \
(the same numbers the run shows), every CA and leaf certificate with its profile, SANs and validity, and \
every file it would write. Reads the plan (and CSRs in csr mode); opens no token. Print it for the plan review."
    )]
    Check {
        /// The ceremony plan (TOML; see docs/plan.md)
        plan: PathBuf,
        /// Output directory `run` would write to; given, it is checked as `run` checks it
        /// (name and path lengths, parent, not existing, any journal beside it)
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run the ceremony at a terminal, step by step (resumes an interrupted run of the same plan)
    #[command(
        long_about = "Run the ceremony. At a terminal it is guided: it opens the token, asks for the PIN, \
shows a preflight screen (plan, people, token, what the token already holds, every step ahead, what will \
be written where) and starts only when the administrator types the token's serial. Each irreversible step \
(generating a CA key, signing a CA certificate) is confirmed on its own, and the witnesses acknowledge \
each CA's fingerprint by typing its last four digits. Everything is recorded in the audit log.\n\n\
Ctrl-C, or answering no, stops cleanly between two operations, records the cancellation and exits 1; \
run the same command again to resume: keys and certificates already on the token are reused, never made \
twice. Ctrl-C three times stops at once.\n\n\
Without a terminal, --yes is required (unattended rehearsals and CI): confirmations are skipped and \
recorded as automatic.\n\n\
On a hardware token (any module but SoftHSM's or kryoptic's), a run without --yes is the real ceremony: \
it refuses a plan whose audit log would be readable with a key committed in the repository (the demo \
auditor) or whose token.module_sha256 is missing, unless --rehearsal is given (`check` warns of both).",
        after_help = "Exit codes: 0 done, 1 cancelled (resumable), 2 bad plan or usage (nothing written), \
3 token error, 4 a signed certificate failed its check (outputs held back), 5 internal error."
    )]
    Run {
        /// The ceremony plan (TOML; see docs/plan.md)
        plan: PathBuf,
        /// Unattended: skip every confirmation and acknowledgement and record them as automatic
        /// (rehearsals and CI; needs --pin-file or --pin-env without a terminal)
        #[arg(long)]
        yes: bool,
        /// A rehearsal at a terminal on a hardware token: accept what makes the plan unfit for
        /// the real ceremony (`check` warns of it: the demo auditor's key, an unpinned module)
        #[arg(long)]
        rehearsal: bool,
        /// Output directory; must not exist or be empty. It appears only when complete
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// PKCS#11 module to use instead of the plan's token.module
        #[arg(long, value_name = "PATH")]
        module: Option<PathBuf>,
        #[command(flatten)]
        pin: PinArgs,
        /// With [backup]: the directory for the custodians' shares (one file each, mode 0600),
        /// outside OUT; the shares are never written anywhere else
        #[arg(long, value_name = "DIR")]
        shares_out: Option<PathBuf>,
        #[command(flatten)]
        so_pin: SoPinArgs,
    },
    /// Restore the backed-up CA keys onto a blank token from the custodians' shares, prove each
    /// against its certificate, and make the token continue the chain of ceremonies
    Restore {
        #[command(flatten)]
        args: RestoreArgs,
        /// Where the restore's signed record is written (must not exist)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Backups: `backup verify` restores on a scratch token and removes everything again
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
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
        /// An age identity file (or unencrypted OpenSSH key) of a node delivered encrypted
        /// (nodes/<name>.tar.age): its files are checked too; without it, only the archive
        #[arg(long, short = 'i', value_name = "FILE")]
        identity: Vec<PathBuf>,
    },
    /// Print every certificate's expiry, as `kubeadm certs check-expiration` does; with --expiring,
    /// exit 6 when one expires within a window; with --renewal-plan, what to renew by when
    #[command(
        long_about = "Print every certificate's expiry, as `kubeadm certs check-expiration` does: the \
ceremony's CAs, each node's leaves, kubeconfigs and CA files, and each user's kubeconfig.\n\n\
Several outputs are a chain of ceremonies, oldest first (c1 c2 …): each must continue the one before \
it (its continuation.json names the previous output's SHA256SUMS). A continuing ceremony writes only the \
nodes it renews or adds, so each node counts from the newest output that holds it; its files are shown \
with that output's directory.\n\n\
--expiring DURATION (\"60d\"; y = 365 days, d or h, as the plan's lifetimes) lists instead every \
certificate that expires within it, or whose expiry cannot be read, and exits 6 when there is one: for \
monitoring. --renewal-plan prints, per node, its bundle, its files, its first expiry and the day to hold \
the ceremony by (that expiry less the lead time: --expiring's DURATION, or 30d), then a [renew] section \
for the next plan, naming the nodes whose first expiry falls within the lead time of the first one \
(a node the last output left untouched is renewed by name too). \
With --expiring or --renewal-plan, a node a given output left untouched whose bundle is in no given \
output is an error (exit 2): give every output of the chain.",
        after_help = "Examples:\n  ceremony inspect OUT\n  ceremony inspect c1 c2 c3 --expiring 60d --json\n  \
ceremony inspect c1 c2 c3 --renewal-plan --expiring 90d\n\n\
Exit codes: 0 printed (with --expiring: nothing expires within it), 6 with --expiring: a certificate \
expires within the window (listed), 2 bad arguments, an unreadable directory, or outputs that are not one \
chain oldest first."
    )]
    Inspect {
        /// The ceremony output, or a node's etc/kubernetes directory; several outputs: a chain of
        /// ceremonies, oldest first
        #[arg(required = true, num_args = 1.., value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
        /// List the certificates that expire within DURATION (e.g. 60d) and exit 6 if there is one
        #[arg(long, value_name = "DURATION", value_parser = parse_window)]
        expiring: Option<Duration>,
        /// Print which nodes to renew, their files, by when, and a [renew] section for the next plan
        /// (lead time: --expiring's DURATION, or 30d)
        #[arg(long)]
        renewal_plan: bool,
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(
        after_help = "Examples:\n  ceremony completions bash > /etc/bash_completion.d/ceremony\n  \
ceremony completions zsh > \"${fpath[1]}/_ceremony\"\n  ceremony completions fish > ~/.config/fish/completions/ceremony.fish"
    )]
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one page per command into a directory
    #[command(
        after_help = "Examples:\n  ceremony man | man -l -\n  ceremony man --dir /usr/local/share/man/man1"
    )]
    Man {
        /// Write ceremony.1 and ceremony-<command>.1 into this directory (existing pages are not overwritten)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Decrypt the log, check its sequence, hash chain and the root's seal
    #[command(
        after_help = "FILE is OUT/audit.log.age, an unsealed journal directory (.<out>.journal) or its records file, \
or the JSON lines `age -d` printed. The seal's signature is checked with --root, else root-ca.crt beside FILE; \
a sealed log with neither fails (exit 2) unless --chain-only is given. \
Exit codes: 0 intact (\"sealed and intact\", \"unsealed, N records intact\" for a journal, or with --chain-only \
\"chain intact and sealed, but the seal's signature was NOT checked\"), 4 broken (the first broken record is named), \
2 bad arguments, no root certificate, unreadable file or wrong identity. \
\n\nSeveral FILEs are a chain of ceremonies on one token, oldest first (c1/audit.log.age c2/audit.log.age …): each \
must be sealed by the same root (each seal checked with the root-ca.crt beside its log) and continue the one before it; \
a missing, reordered, repeated or forked ceremony is named (exit 4)."
    )]
    Verify {
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// An age identity file (or unencrypted OpenSSH key) of one of the plan's [audit] recipients
        #[arg(long, short = 'i', value_name = "FILE")]
        identity: Option<PathBuf>,
        /// The root CA certificate that must have sealed the log (default: root-ca.crt beside FILE)
        #[arg(long, value_name = "FILE")]
        root: Option<PathBuf>,
        /// Check the sequence, the hash chain and the seal's hash, but not the seal's signature (no root at
        /// hand): a forger who recomputes the chain passes this
        #[arg(long, conflicts_with = "root")]
        chain_only: bool,
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
        /// Check the sequence, the hash chain and the seal's hash, but not the seal's signature (no root at
        /// hand): a forger who recomputes the chain passes this
        #[arg(long, conflicts_with = "root")]
        chain_only: bool,
    },
}

/// The security officer's PIN (backups and restores import the wrap key as a trusted key).
#[derive(Debug, Args, Clone, Default)]
pub struct SoPinArgs {
    /// Read the security officer's PIN from this file (mode 0600 or stricter; one line)
    #[arg(long, value_name = "FILE")]
    pub so_pin_file: Option<PathBuf>,
    /// Read the security officer's PIN from this environment variable
    #[arg(long, value_name = "VAR", conflicts_with = "so_pin_file")]
    pub so_pin_env: Option<String>,
}

impl From<SoPinArgs> for PinOptions {
    fn from(a: SoPinArgs) -> PinOptions {
        PinOptions {
            file: a.so_pin_file,
            env: a.so_pin_env,
        }
    }
}

/// What a restore (or a backup drill) reads and where it restores to.
#[derive(Debug, Args, Clone)]
pub struct RestoreArgs {
    /// The output of the ceremony that made the backup (its backup/ directory is read)
    pub backup: PathBuf,
    /// A custodian's share file; repeat for each share (without any, each share is typed, without echo)
    #[arg(long = "share-file", value_name = "FILE")]
    pub share_files: Vec<PathBuf>,
    /// The latest ceremony's output on the lost token (default: the backup's): the restored token's
    /// chain head, so that the next ceremony continues it
    #[arg(long, value_name = "DIR")]
    pub latest: Option<PathBuf>,
    /// RFC 7512 URI of the blank token (default: the backup's plan's token.uri)
    #[arg(long)]
    pub uri: Option<String>,
    /// PKCS#11 module (default: the backup's plan's token.module)
    #[arg(long, value_name = "PATH")]
    pub module: Option<PathBuf>,
    #[command(flatten)]
    pub pin: PinArgs,
    #[command(flatten)]
    pub so_pin: SoPinArgs,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// The periodic drill: restore the backup on a scratch token, prove every key, remove it all
    Verify {
        #[command(flatten)]
        args: RestoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// What a plan needs to know about a token, read only: identity, flags, session and PIN
    /// limits, the signing path `run` would take per key type, wrapping mechanisms; with --plan,
    /// which of its labels are free (logs in to see private keys)
    #[command(
        after_help = "Without --plan it logs in to nothing and needs no PIN. With --plan it logs in \
(the PIN as for `run`) and says, for each CA label of the plan and the chain head, what the token holds under it."
    )]
    Probe {
        /// Take the token URI and module from this plan, and check its labels
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

/// `--expiring`: a duration as the plan writes lifetimes ("60d", "1y", "12h").
fn parse_window(s: &str) -> Result<Duration, String> {
    crate::plan::duration::parse_lifetime(s)
}
