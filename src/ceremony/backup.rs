//! `[backup]` in the run: before the user logs in, the wrap key is drawn
//! from the token's RNG, split among the custodians, its shares written to
//! `--shares-out` (never into OUT), and imported as a trusted key in a
//! security-officer session; each backed-up CA key is wrapped right after
//! it is made (or found), and the wrapped keys go into OUT's `backup/`.
//!
//! Order for crash safety: shares first, then the import. A run killed
//! between them left shares of a key the token never held: the resumed run
//! draws a new key and writes new shares over them (nothing was wrapped
//! under the old one). A run killed after the import finds the key by its
//! label, with its check value as CKA_ID, and the shares already written
//! for it; it never makes a second wrap key.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::PinOptions;
use crate::audit::{Audit, Event};
use crate::backup::manifest::{BackedUpKey, Manifest, ShareFile, WRAP_LABEL, share_file_name};
use crate::backup::share::{self, Commitments};
use crate::bundle::layout;
use crate::bundle::write::{self, Staging};
use crate::error::CeremonyError;
use crate::issue::ca::CaState;
use crate::operator::ui::Ui;
use crate::plan::{BackupSpec, CaRole, ValidPlan};
use crate::token::Token;
use crate::token::pin::{self, Pin, PinError};

/// `--shares-out` and the security officer's PIN source.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    pub shares_out: Option<PathBuf>,
    pub so_pin: PinOptions,
}

/// The wrap key as the run knows it: never the key, only what tells it.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The AES key wrap mechanism the token wraps with.
    pub mechanism: &'static str,
    pub check_value: [u8; 8],
    pub commitments: Commitments,
}

fn usage(message: String, hint: &str) -> CeremonyError {
    CeremonyError::Usage {
        message,
        hint: hint.into(),
    }
}

/// Before the token: `--shares-out` goes with `[backup]`, and is not OUT
/// nor inside it (OUT goes to the audit stick; the shares never do).
pub fn check_options(
    plan: &ValidPlan,
    out: &Path,
    opts: &BackupOptions,
) -> Result<(), CeremonyError> {
    match (&plan.backup, &opts.shares_out) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(usage(
            "--shares-out is given but the plan has no [backup]".into(),
            "add [backup] to the plan (docs/plan.md) or drop --shares-out",
        )),
        (Some(_), None) => Err(usage(
            "the plan has [backup] but --shares-out is not given: the custodians' shares need a directory of their own".into(),
            "pass --shares-out DIR, a directory outside OUT (e.g. on a stick for the custodians' shares only)",
        )),
        (Some(_), Some(dir)) => {
            let abs = |p: &Path| {
                std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
            };
            let (d, o) = (abs(dir), abs(out));
            if d.starts_with(&o) || o.starts_with(&d) {
                return Err(usage(
                    format!(
                        "--shares-out {} and --out {} overlap: the shares must never be in the ceremony's output",
                        dir.display(),
                        out.display()
                    ),
                    "give --shares-out a directory outside OUT",
                ));
            }
            Ok(())
        }
    }
}

fn so_pin(opts: &PinOptions, token: &dyn Token, ui: &Ui) -> Result<Pin, CeremonyError> {
    match (&opts.file, &opts.env) {
        (Some(f), _) => Ok(pin::read_pin_file(f)?),
        (None, Some(v)) => Ok(pin::read_pin_env(v)?),
        (None, None) if ui.interactive => {
            let id = token.identity().to_string();
            Ok(pin::prompt_so_pin(&id)?)
        }
        (None, None) => Err(PinError::NoSource.into()),
    }
}

/// Reads the check value and commitments the shares in `dir` were written
/// with (the first share file found).
fn shares_written(dir: &Path, spec: &BackupSpec) -> Option<ShareFile> {
    (1..=spec.custodians.len()).find_map(|n| {
        let path = dir.join(share_file_name(u8::try_from(n).ok()?));
        let text =
            crate::fsread::read_regular(&path, 64 * 1024, crate::fsread::Links::Refuse).ok()?;
        ShareFile::parse(std::str::from_utf8(&text).ok()?).ok()
    })
}

/// Probes the token, refuses a trusted key the tool did not put there, and
/// finds or makes the wrap key (see the module's comment for the order).
/// Called before the user logs in: the import logs in as the SO.
pub fn prepare(
    token: &dyn Token,
    plan: &ValidPlan,
    spec: &BackupSpec,
    opts: &BackupOptions,
    ui: &Ui,
    audit: &mut dyn Audit,
) -> Result<Prepared, CeremonyError> {
    let mechanism = token.require_backup()?;
    let trusted = token.trusted_keys()?;
    audit.record(Event::BackupTrustedKeys {
        found: trusted
            .iter()
            .map(|(l, id)| format!("{} ({})", crate::fmt::shown(l), hex::encode(id)))
            .collect(),
    })?;
    let foreign: Vec<&(String, Vec<u8>)> =
        trusted.iter().filter(|(l, _)| l != WRAP_LABEL).collect();
    if !foreign.is_empty() || trusted.len() > 1 {
        return Err(usage(
            format!(
                "token {} already holds a trusted key this tool did not make ({}): whoever made it could wrap the CA keys out",
                token.identity(),
                trusted
                    .iter()
                    .map(|(l, _)| format!("\"{}\"", crate::fmt::shown(l)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "use a freshly initialised token for a backed-up ceremony, or have its security officer remove that key (docs/runbook.md)",
        ));
    }
    let dir = opts
        .shares_out
        .as_deref()
        .ok_or_else(|| usage("--shares-out is missing".into(), "pass --shares-out DIR"))?;
    token.back_up_labels(
        &plan
            .cas
            .iter()
            .filter(|c| spec.covers(c.role))
            .map(|c| c.label.clone())
            .collect::<Vec<_>>(),
    );
    if let Some((_, id)) = trusted.first() {
        // A resumed run: the key is there; its shares must be too.
        let written = shares_written(dir, spec).filter(|f| f.check_value == hex::encode(id));
        let Some(f) = written else {
            return Err(usage(
                format!(
                    "the token holds the wrap key \"{WRAP_LABEL}\" (check value {}) but {} holds no share of it",
                    hex::encode(id),
                    dir.display()
                ),
                "give the --shares-out of the interrupted run; without its shares this token's backup cannot be restored",
            ));
        };
        let check_value: [u8; 8] = id.as_slice().try_into().map_err(|_| {
            CeremonyError::Internal("the wrap key's CKA_ID is not a check value".into())
        })?;
        audit.record(Event::BackupWrapKeyFound {
            label: WRAP_LABEL.into(),
            check_value: hex::encode(id),
        })?;
        ui.note(&format!(
            "backup: wrap key {} found on the token; its shares are in {}",
            hex::encode(id),
            dir.display()
        ));
        return Ok(Prepared {
            mechanism,
            check_value,
            commitments: f.commitments,
        });
    }
    // The SO PIN before anything is drawn or written.
    let so = so_pin(&opts.so_pin, token, ui)?;
    let mut key = None;
    for _ in 0..16 {
        let random = Zeroizing::new(token.random(share::KEY_LEN)?);
        if let Some(k) = share::key_from_random(&random) {
            key = Some(k);
            break;
        }
    }
    let key = key.ok_or_else(|| {
        CeremonyError::Internal("the token's RNG gave no usable wrap key in 16 draws".into())
    })?;
    let check_value = share::check_value(&*key);
    let (shares, commitments) = share::split(&key, spec.threshold, spec.custodians.len())
        .map_err(CeremonyError::Internal)?;
    write_shares(dir, plan, spec, &check_value, &shares, &commitments)?;
    audit.record(Event::BackupSharesWritten {
        check_value: hex::encode(check_value),
        threshold: spec.threshold as u64,
        custodians: spec.custodians.clone(),
        commitments_sha256: hex::encode(commitments_digest(&commitments)),
    })?;
    crate::failpoint::hit("backup-shares-written");
    token.import_wrap_key(&so, WRAP_LABEL, &check_value, &*key)?;
    drop(key);
    audit.record(Event::BackupWrapKeyImported {
        label: WRAP_LABEL.into(),
        check_value: hex::encode(check_value),
    })?;
    crate::failpoint::hit("backup-wrap-key-imported");
    ui.note(&format!(
        "backup: wrap key {} imported as a trusted key; {} shares ({} rebuild it) in {}",
        hex::encode(check_value),
        spec.custodians.len(),
        spec.threshold,
        dir.display()
    ));
    Ok(Prepared {
        mechanism,
        check_value,
        commitments,
    })
}

fn commitments_digest(c: &Commitments) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in &c.0 {
        h.update(p);
    }
    h.finalize().into()
}

/// One file per custodian, mode 0600, in a directory of mode 0700, each
/// fsynced before the wrap key reaches the token.
fn write_shares(
    dir: &Path,
    plan: &ValidPlan,
    spec: &BackupSpec,
    check_value: &[u8; 8],
    shares: &[share::ShareText],
    commitments: &Commitments,
) -> Result<(), CeremonyError> {
    let io = |p: &Path, e: std::io::Error| {
        usage(
            format!(
                "cannot write the custodians' shares in {}: {e}",
                p.display()
            ),
            "give --shares-out a writable directory outside OUT",
        )
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io(dir, e))?;
    for (s, custodian) in shares.iter().zip(&spec.custodians) {
        let f = ShareFile {
            ceremony: plan.name.clone(),
            custodian: custodian.clone(),
            count: spec.custodians.len(),
            threshold: spec.threshold,
            check_value: hex::encode(check_value),
            share: s.clone(),
            commitments: commitments.clone(),
        };
        let path = dir.join(share_file_name(s.number));
        let _ = std::fs::remove_file(&path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        file.write_all(f.render().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io(&path, e))?;
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

/// Wraps a backed-up CA's key right after it is made or found.
pub fn wrap(
    token: &dyn Token,
    ca: &CaState,
    audit: &mut dyn Audit,
) -> Result<Vec<u8>, CeremonyError> {
    let blob = token.wrap(WRAP_LABEL, &ca.key)?;
    audit.record(Event::KeyWrapped {
        role: ca.role.name().into(),
        label: ca.key.label.clone(),
        blob_sha256: hex::encode(crate::x509::sha256(&blob)),
    })?;
    Ok(blob)
}

/// What `backup/` of OUT is written from: the plan's `[backup]`, the wrap
/// key's facts, and each backed-up CA's wrapped key.
pub type Wrapped<'a> = (&'a BackupSpec, &'a Prepared, &'a [(CaRole, Vec<u8>)]);

/// `backup/` of OUT: each wrapped key, its public key and certificate, and
/// the manifest.
pub fn write_outputs(
    st: &mut Staging,
    plan: &ValidPlan,
    spec: &BackupSpec,
    prepared: &Prepared,
    cas: &[CaState],
    blobs: &[(CaRole, Vec<u8>)],
) -> Result<(), CeremonyError> {
    let mut keys = Vec::new();
    for (role, blob) in blobs {
        let Some(ca) = cas.iter().find(|c| c.role == *role) else {
            continue;
        };
        let spki_der = der::Encode::to_der(&ca.key.spki)
            .map_err(|e| CeremonyError::Internal(e.to_string()))?;
        let public =
            crate::pem::encode("PUBLIC KEY", &spki_der).map_err(CeremonyError::Internal)?;
        let cert = crate::pem::encode("CERTIFICATE", &ca.der).map_err(CeremonyError::Internal)?;
        st.write(&layout::backup_blob(*role), blob, write::PUBLIC)?;
        st.write(
            &layout::backup_public(*role),
            public.as_bytes(),
            write::PUBLIC,
        )?;
        st.write(&layout::backup_cert(*role), cert.as_bytes(), write::PUBLIC)?;
        keys.push(BackedUpKey {
            role: role.name().into(),
            label: ca.key.label.clone(),
            id: hex::encode(&ca.key.id),
            key_type: ca.key.key_type.name().into(),
            blob: layout::backup_blob(*role),
            blob_sha256: hex::encode(crate::x509::sha256(blob)),
            certificate: layout::backup_cert(*role),
            public_key: layout::backup_public(*role),
            spki_sha256: hex::encode(crate::x509::sha256(&spki_der)),
        });
    }
    let manifest = Manifest {
        version: 1,
        ceremony: plan.name.clone(),
        wrap_key_label: WRAP_LABEL.into(),
        mechanism: prepared.mechanism.into(),
        check_value: hex::encode(prepared.check_value),
        threshold: spec.threshold,
        custodians: spec.custodians.clone(),
        commitments: prepared.commitments.0.iter().map(hex::encode).collect(),
        keys,
    };
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| CeremonyError::Internal(e.to_string()))?;
    st.write(
        layout::BACKUP_MANIFEST,
        format!("{json}\n").as_bytes(),
        write::PUBLIC,
    )?;
    Ok(())
}
