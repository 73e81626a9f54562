//! `ceremony restore` and `ceremony backup verify`: the CA keys of a
//! backup unwrapped onto a blank token from the custodians' shares.
//!
//! Everything that can be checked without the token is checked first: the
//! backup's manifest, each share (its checksum, then the backup's Feldman
//! commitments: a bad share is named), the threshold, the rebuilt key's
//! check value, each wrapped key's hash and each certificate. Then the
//! token must be blank of everything a restore makes; the wrap key is
//! imported as a trusted key (security officer), each key unwrapped with
//! the CA key template and proven against its certificate (the same
//! public key, and a signature by the private key that the certificate's
//! key verifies), the certificates stored and the chain head set to the
//! latest ceremony's final hash. Anything wrong after the first write:
//! what the restore made is removed again, and the error says what failed.
//! `backup verify` does the same on a scratch token, then removes it all.
//! A restore's OUT holds its record and an audit log sealed by the restored
//! root that continues the latest ceremony.

use std::path::{Path, PathBuf};

use der::{Decode, Encode};
use serde::Serialize;
use x509_cert::certificate::Certificate;
use zeroize::Zeroizing;

use crate::audit::Event;
use crate::audit::chain::SealRecord;
use crate::backup::manifest::{Manifest, ShareFile, WRAP_LABEL};
use crate::backup::share::{self, ShareText};
use crate::bundle::layout;
use crate::ceremony::CHAIN_HEAD_LABEL as HEAD_LABEL;
use crate::ceremony::PinOptions;
use crate::ceremony::login::{interactive, login, read_given_pin};
use crate::error::CeremonyError;
use crate::fsread::{Links, read_regular};
use crate::keytype::KeyType;
use crate::operator::ui::Ui;
use crate::plan::CaRole;
use crate::token::pin::{self, Pin, PinError};
use crate::token::pkcs11::Pkcs11Token;
use crate::token::uri::TokenUri;
use crate::token::{KeyPair, Token};

/// What a restore is given.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub backup: PathBuf,
    pub share_files: Vec<PathBuf>,
    pub latest: Option<PathBuf>,
    pub uri: Option<String>,
    pub module: Option<PathBuf>,
    pub pin: PinOptions,
    pub so_pin: PinOptions,
    /// Where the signed record goes; None: `backup verify` (remove everything after).
    pub out: Option<PathBuf>,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub backup: String,
    pub ceremony: String,
    pub check_value: String,
    pub shares: Vec<u8>,
    pub token: String,
    pub keys: Vec<RestoredKey>,
    /// The chain head set on the token: the latest ceremony's final hash.
    pub chain_head: String,
    pub latest: String,
    pub time: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoredKey {
    pub role: String,
    pub label: String,
    pub key_type: String,
    pub spki_sha256: String,
    pub certificate_sha256: String,
}

fn usage(message: String, hint: &str) -> CeremonyError {
    CeremonyError::Usage {
        message,
        hint: hint.into(),
    }
}

const MAX_FILE: u64 = 1 << 20;

fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, CeremonyError> {
    read_regular(path, MAX_FILE, Links::Follow).map_err(|e| {
        usage(
            format!("{}: {}", path.display(), e.why()),
            "give the output directory of the ceremony that made the backup",
        )
    })
}

/// One backed-up key, read and checked.
struct Key {
    role: CaRole,
    label: String,
    id: Vec<u8>,
    key_type: KeyType,
    blob: Vec<u8>,
    cert_der: Vec<u8>,
    cert: Certificate,
}

/// Reads and checks the backup (no token yet).
fn read_backup(dir: &Path) -> Result<(Manifest, Vec<Key>), CeremonyError> {
    let path = dir.join(layout::BACKUP_MANIFEST);
    let text = read(&path)?;
    let m: Manifest = serde_json::from_slice(&text).map_err(|e| {
        usage(
            format!("{}: not a backup manifest ({e})", path.display()),
            "give the output of a ceremony whose plan had [backup]",
        )
    })?;
    let bad = |what: String| {
        usage(
            format!("{}: {what}", dir.display()),
            "the backup is damaged: take another copy of the ceremony's output (the audit stick)",
        )
    };
    if m.version != 1 {
        return Err(bad(format!("backup version {} is not known", m.version)));
    }
    let mut keys = Vec::new();
    for k in &m.keys {
        let role = [CaRole::Root]
            .into_iter()
            .chain(CaRole::INTERMEDIATES)
            .find(|r| r.name() == k.role)
            .ok_or_else(|| bad(format!("unknown CA {:?}", k.role)))?;
        let key_type = k
            .key_type
            .parse::<KeyType>()
            .ok()
            .ok_or_else(|| bad(format!("unknown key type {:?}", k.key_type)))?;
        let blob = read(&dir.join(&k.blob))?.to_vec();
        if hex::encode(crate::x509::sha256(&blob)) != k.blob_sha256 {
            return Err(bad(format!(
                "{} does not have the SHA-256 the manifest records",
                k.blob
            )));
        }
        let pem = read(&dir.join(&k.certificate))?;
        let cert_der = crate::pem::pem_blocks(&String::from_utf8_lossy(&pem))
            .ok()
            .and_then(|b| b.into_iter().next())
            .map(|b| b.der.to_vec())
            .ok_or_else(|| bad(format!("{} holds no certificate", k.certificate)))?;
        let cert = Certificate::from_der(&cert_der)
            .map_err(|e| bad(format!("{} does not parse ({e})", k.certificate)))?;
        let spki = cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| bad(e.to_string()))?;
        if hex::encode(crate::x509::sha256(&spki)) != k.spki_sha256 {
            return Err(bad(format!(
                "{} is not for the public key the manifest records",
                k.certificate
            )));
        }
        keys.push(Key {
            role,
            label: k.label.clone(),
            id: hex::decode(&k.id).map_err(|_| bad(format!("CKA_ID {:?} is not hex", k.id)))?,
            key_type,
            blob,
            cert_der,
            cert,
        });
    }
    if !keys.iter().any(|k| k.role == CaRole::Root) {
        return Err(bad("the backup holds no root key".into()));
    }
    Ok((m, keys))
}

/// The shares, each checked and named when bad, then the key they
/// rebuild, checked against the backup's check value.
fn rebuild(
    m: &Manifest,
    files: &[PathBuf],
    ui: &Ui,
) -> Result<(Zeroizing<[u8; share::KEY_LEN]>, Vec<u8>), CeremonyError> {
    let commitments = m
        .commitments()
        .map_err(|e| usage(format!("the backup manifest: {e}"), "the backup is damaged"))?;
    let wrong = |who: String, what: String| {
        usage(
            format!("{who}: {what}"),
            "check the share against the custodian's paper copy, or use another custodian's share; nothing was written",
        )
    };
    let mut shares: Vec<ShareText> = Vec::new();
    if files.is_empty() {
        if !ui.interactive {
            return Err(usage(
                "no --share-file given and no terminal to type the shares on".into(),
                "give --share-file once per share, or run at a terminal",
            ));
        }
        for k in 1..=m.threshold {
            let text = pin::prompt_secret(&format!(
                "Share {k} of {} (the custodian types it; not shown)",
                m.threshold
            ))?;
            let s = ShareText::parse(text.expose())
                .map_err(|e| wrong(format!("typed share {k}"), e.to_string()))?;
            s.verify(&commitments).map_err(|e| {
                wrong(
                    format!("typed share {k} (share {})", s.number),
                    e.to_string(),
                )
            })?;
            shares.push(s);
        }
    } else {
        for f in files {
            let text = read_regular(f, 64 * 1024, Links::Follow)
                .map_err(|e| wrong(f.display().to_string(), e.why()))?;
            let sf = ShareFile::parse(&String::from_utf8_lossy(&text))
                .map_err(|e| wrong(format!("share file {}", f.display()), e))?;
            let who = format!(
                "share file {} (share {}, custodian {})",
                f.display(),
                sf.share.number,
                crate::fmt::shown(&sf.custodian)
            );
            if sf.check_value != m.check_value {
                return Err(wrong(
                    who,
                    format!(
                        "is a share of another backup (wrap key {}, this backup's is {})",
                        sf.check_value, m.check_value
                    ),
                ));
            }
            sf.share
                .verify(&commitments)
                .map_err(|e| wrong(who.clone(), e.to_string()))?;
            if shares.iter().any(|s| s.number == sf.share.number) {
                return Err(wrong(who, format!("repeats share {}", sf.share.number)));
            }
            shares.push(sf.share);
        }
    }
    if shares.len() < m.threshold {
        return Err(usage(
            format!(
                "{} share(s) given; this backup needs {} of its {} custodians' shares",
                shares.len(),
                m.threshold,
                m.custodians.len()
            ),
            "bring more custodians with their shares; nothing was written",
        ));
    }
    let key = share::combine(&shares).map_err(|e| usage(e.to_string(), "nothing was written"))?;
    let check = hex::encode(share::check_value(&*key));
    if check != m.check_value {
        return Err(usage(
            format!(
                "the shares rebuild a key with check value {check}, not the backup's {}",
                m.check_value
            ),
            "the shares are not of this backup; nothing was written",
        ));
    }
    Ok((key, shares.iter().map(|s| s.number).collect()))
}

/// The auditors the restore's log is encrypted to: the backup's plan's.
fn latest_plan_recipients(plan: Option<crate::plan::Plan>) -> Result<Vec<String>, CeremonyError> {
    plan.map(|p| p.audit.recipients)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            usage(
                "the backup's plan.toml names no audit recipient for the restore's log".into(),
                "give the output of the ceremony that made the backup, with its plan.toml",
            )
        })
}

/// The token, from --uri/--module or the backup's plan.
fn open_token(o: &RestoreOptions) -> Result<(Pkcs11Token, PathBuf), CeremonyError> {
    let plan_text = read(&o.backup.join(layout::PLAN))?;
    let plan = crate::plan::parse(&String::from_utf8_lossy(&plan_text)).ok();
    let uri_text = o
        .uri
        .clone()
        .or_else(|| plan.as_ref().map(|p| p.token.uri.clone()))
        .ok_or_else(|| {
            usage(
                "no --uri and the backup's plan names no token".into(),
                "pass --uri",
            )
        })?;
    let uri = TokenUri::parse(&uri_text)
        .map_err(|e| usage(format!("--uri {e}"), "pass --uri pkcs11:token=..."))?;
    let module = o
        .module
        .clone()
        .or_else(|| plan.as_ref().map(|p| p.token.module.clone()))
        .ok_or_else(|| usage("no --module".into(), "pass --module"))?;
    Ok((Pkcs11Token::open(&module, &uri, None)?, module))
}

fn so_pin(o: &PinOptions, token: &dyn Token, ui: &Ui) -> Result<Pin, CeremonyError> {
    match (&o.file, &o.env) {
        (Some(f), _) => Ok(pin::read_pin_file(f)?),
        (None, Some(v)) => Ok(pin::read_pin_env(v)?),
        (None, None) if ui.interactive => Ok(pin::prompt_so_pin(&token.identity().to_string())?),
        (None, None) => Err(PinError::NoSource.into()),
    }
}

/// The labels a restore makes objects under.
fn labels(keys: &[Key]) -> Vec<String> {
    keys.iter()
        .map(|k| k.label.clone())
        .chain([WRAP_LABEL.to_string(), HEAD_LABEL.to_string()])
        .collect()
}

/// `ceremony restore` (`out` given) and `ceremony backup verify` (None).
pub fn run(o: &RestoreOptions) -> Result<Restored, CeremonyError> {
    let ui = Ui::new(interactive(), true);
    if let Some(out) = &o.out
        && out.exists()
    {
        return Err(usage(
            format!(
                "{} exists; a restore's record is never written over anything",
                out.display()
            ),
            "give --out a new directory",
        ));
    }
    let (m, keys) = read_backup(&o.backup)?;
    let latest_dir = o.latest.clone().unwrap_or_else(|| o.backup.clone());
    let root = keys
        .iter()
        .find(|k| k.role == CaRole::Root)
        .ok_or_else(|| usage("no root".into(), ""))?;
    let seal_path = latest_dir.join(layout::SEAL);
    let seal: SealRecord = serde_json::from_slice(&read(&seal_path)?).map_err(|e| {
        usage(
            format!("{}: not a seal ({e})", seal_path.display()),
            "--latest names the output of the latest ceremony made on the lost token",
        )
    })?;
    let sealed = seal.check(&root.cert_der).map_err(|e| {
        usage(
            format!("{}: {e}", seal_path.display()),
            "--latest names the output of the latest ceremony made on the lost token, sealed by this backup's root",
        )
    })?;
    let (key, used) = rebuild(&m, &o.share_files, &ui)?;

    let (token, module_path) = open_token(o)?;
    token.require_backup()?;
    let mut types: Vec<KeyType> = keys.iter().map(|k| k.key_type).collect();
    types.dedup();
    token.require_mechanisms(&types)?;
    let given = read_given_pin(&o.pin)?;
    let so = so_pin(&o.so_pin, &token, &ui)?;
    login(&token, given.as_ref().map(|p| p.clone_pin()), &ui)?;
    // Blank of everything a restore makes, and of any trusted key.
    for label in labels(&keys) {
        let found = token.objects_labelled(&label)?;
        if !found.is_empty() {
            return Err(usage(
                format!(
                    "token {} already holds {} object(s) labelled \"{label}\": a restore goes onto a blank token",
                    token.identity(),
                    found.len()
                ),
                "initialise a new token (or a scratch one for `backup verify`); nothing was written",
            ));
        }
    }
    if let Some((l, _)) = token.trusted_keys()?.first() {
        return Err(usage(
            format!(
                "token {} already holds a trusted key \"{}\": a restore goes onto a blank token",
                token.identity(),
                crate::fmt::shown(l)
            ),
            "initialise a new token; nothing was written",
        ));
    }
    let check_value = hex::decode(&m.check_value)
        .map_err(|_| usage("the manifest's check value is not hex".into(), ""))?;
    let result = (|| {
        token.import_wrap_key(&so, WRAP_LABEL, &check_value, &*key)?;
        login(&token, given.as_ref().map(|p| p.clone_pin()), &ui)?;
        let mut restored = Vec::new();
        for k in &keys {
            let spki = k.cert.tbs_certificate().subject_public_key_info();
            let pair =
                token.unwrap_key_pair(WRAP_LABEL, &k.blob, &k.label, &k.id, k.key_type, spki)?;
            prove(&token, &pair, k)?;
            let subject = k
                .cert
                .tbs_certificate()
                .subject()
                .to_der()
                .map_err(|e| CeremonyError::Internal(e.to_string()))?;
            token.store_certificate(&pair, &k.cert_der, &subject)?;
            ui.note(&format!(
                "{} key \"{}\" restored and proven against its certificate",
                k.role.name(),
                k.label
            ));
            restored.push(RestoredKey {
                role: k.role.name().into(),
                label: k.label.clone(),
                key_type: k.key_type.name().into(),
                spki_sha256: hex::encode(crate::x509::sha256(
                    &spki
                        .to_der()
                        .map_err(|e| CeremonyError::Internal(e.to_string()))?,
                )),
                certificate_sha256: hex::encode(crate::x509::sha256(&k.cert_der)),
            });
        }
        token.put_data(HEAD_LABEL, &sealed.final_hash)?;
        Ok::<_, CeremonyError>(restored)
    })();
    drop(key);
    let restored = match result {
        Ok(r) => r,
        Err(e) => {
            let left = take_back(&token, &keys, given.as_ref(), &ui);
            return Err(match left {
                Ok(()) => e,
                Err(more) => CeremonyError::Internal(format!(
                    "{e}; and removing what the restore made failed too ({more}): inspect the token with `ceremony token list`"
                )),
            });
        }
    };
    let record = Restored {
        backup: o.backup.display().to_string(),
        ceremony: m.ceremony.clone(),
        check_value: m.check_value.clone(),
        shares: used,
        token: token.identity().to_string(),
        keys: restored,
        chain_head: hex::encode(sealed.final_hash),
        latest: latest_dir.display().to_string(),
        time: crate::fmt::utc(std::time::SystemTime::now()),
    };
    match &o.out {
        Some(out) => {
            let latest_plan = read(&latest_dir.join(layout::PLAN))
                .ok()
                .and_then(|t| crate::plan::parse(&String::from_utf8_lossy(&t)).ok());
            let backup_plan = read(&o.backup.join(layout::PLAN))
                .ok()
                .and_then(|t| crate::plan::parse(&String::from_utf8_lossy(&t)).ok());
            let facts = LogFacts {
                keys: &keys,
                manifest_sha256: hex::encode(crate::x509::sha256(&read(
                    &o.backup.join(layout::BACKUP_MANIFEST),
                )?)),
                seal: &seal,
                sealed: &sealed,
                latest: &latest_dir,
                latest_ceremony: latest_plan
                    .map(|p| p.ceremony.name)
                    .unwrap_or_else(|| m.ceremony.clone()),
                recipients: latest_plan_recipients(backup_plan)?,
                module: module_path.clone(),
                pin_source: match (&o.pin.file, &o.pin.env) {
                    (Some(_), _) => "--pin-file",
                    (None, Some(_)) => "--pin-env",
                    (None, None) => "the terminal prompt",
                },
            };
            write_record(&token, root, &record, out, &facts)?
        }
        None => take_back(&token, &keys, given.as_ref(), &ui).map_err(|e| {
            CeremonyError::Internal(format!(
                "the backup restores, but removing it from the scratch token failed ({e}): inspect it with `ceremony token list`"
            ))
        })?,
    }
    Ok(record)
}

/// The restored key is the certificate's: the same public key, and a
/// signature by the private key verifies with the certificate's key.
fn prove(token: &dyn Token, pair: &KeyPair, k: &Key) -> Result<(), CeremonyError> {
    let spki = k.cert.tbs_certificate().subject_public_key_info();
    if &pair.spki != spki {
        return Err(usage(
            format!(
                "the restored {} key \"{}\" is not the key of its certificate",
                k.role.name(),
                k.label
            ),
            "the backup is damaged or not this ceremony's",
        ));
    }
    if let Some(what) = pair.flags.violation() {
        return Err(crate::token::TokenError::WeakKey {
            label: k.label.clone(),
            what,
        }
        .into());
    }
    let cert_key = KeyPair {
        spki: spki.clone(),
        ..pair.clone()
    };
    crate::token::pairwise_test(&cert_key, |msg| token.sign(pair, msg))?;
    Ok(())
}

/// Removes every object the restore made (after a failure, or at the end
/// of `backup verify`): the CA labels, the wrap key and the chain head.
fn take_back(
    token: &dyn Token,
    keys: &[Key],
    pin: Option<&Pin>,
    ui: &Ui,
) -> Result<(), CeremonyError> {
    let _ = login(token, pin.map(Pin::clone_pin), ui);
    for label in labels(keys) {
        token.destroy_labelled(&label)?;
    }
    Ok(())
}

/// What the restore's audit log is made of besides the keys.
struct LogFacts<'a> {
    keys: &'a [Key],
    manifest_sha256: String,
    seal: &'a SealRecord,
    sealed: &'a crate::audit::chain::Sealed,
    latest: &'a Path,
    latest_ceremony: String,
    recipients: Vec<String>,
    module: PathBuf,
    pin_source: &'static str,
}

/// OUT of a restore: `restore.json` (what was restored, from which
/// shares, onto which token, and the chain head), `root-ca.crt`,
/// `SHA256SUMS`, and an
/// audit log sealed by the restored root whose first record continues the
/// latest ceremony (`audit verify LATEST/audit.log.age OUT/audit.log.age`).
fn write_record(
    token: &dyn Token,
    root: &Key,
    record: &Restored,
    out: &Path,
    facts: &LogFacts<'_>,
) -> Result<(), CeremonyError> {
    use crate::audit::chain::PreviousCeremony;
    use crate::audit::event::Environment;
    use crate::audit::record::next_record;
    let internal = |e: String| CeremonyError::Internal(e);
    let text = serde_json::to_string_pretty(record).map_err(|e| internal(e.to_string()))? + "\n";
    let root_pem = crate::pem::encode("CERTIFICATE", &root.cert_der).map_err(internal)?;
    let sums = format!(
        "{}  restore.json\n{}  {}\n",
        hex::encode(crate::x509::sha256(text.as_bytes())),
        hex::encode(crate::x509::sha256(root_pem.as_bytes())),
        layout::ROOT_CA
    );
    let id = token.identity();
    let mut events = vec![
        Event::CeremonyStarted {
            ceremony: format!("{} (restore)", record.ceremony),
            plan_path: record.backup.clone() + "/" + layout::BACKUP_MANIFEST,
            plan_sha256: facts.manifest_sha256.clone(),
            inputs_sha256: String::new(),
            output: out.display().to_string(),
            administrator: String::new(),
            witnesses: Vec::new(),
            env: Environment {
                tool_version: env!("CARGO_PKG_VERSION").into(),
                tool_sha256: crate::ceremony::record::tool_sha256(),
                module_path: facts.module.display().to_string(),
                module_sha256: hex::encode(token.module_sha256()),
                host: crate::ceremony::record::host_name(),
                unattended: true,
            },
            previous: Some(PreviousCeremony {
                output: facts.latest.display().to_string(),
                ceremony: facts.latest_ceremony.clone(),
                final_hash: hex::encode(facts.sealed.final_hash),
                seal: facts.seal.seal.signature.clone(),
                sha256sums_sha256: facts.sealed.sha256sums_sha256.clone(),
                root_certificate_sha256: facts.seal.seal.root_certificate_sha256.clone(),
                fork: false,
            }),
        },
        Event::TokenIdentified {
            label: id.label.clone(),
            manufacturer: id.manufacturer.clone(),
            model: id.model.clone(),
            serial: id.serial.clone(),
            firmware: id.firmware.clone(),
            hardware: id.hardware.clone(),
        },
        Event::LoggedIn {
            source: facts.pin_source.into(),
        },
        Event::BackupTrustedKeys { found: Vec::new() },
        Event::BackupWrapKeyImported {
            label: WRAP_LABEL.into(),
            check_value: record.check_value.clone(),
        },
    ];
    for (k, key) in record.keys.iter().zip(facts.keys) {
        // The certificate as the backup holds it: the seal names the root's.
        events.push(Event::CertificateFound(crate::audit::event::cert_info(
            &k.role,
            None,
            None,
            CaRole::Root.name(),
            &key.cert,
            &key.cert_der,
        )));
        events.push(Event::KeyRestored {
            role: k.role.clone(),
            label: k.label.clone(),
            spki_sha256: k.spki_sha256.clone(),
        });
        events.push(Event::CertificateStored {
            role: k.role.clone(),
            label: k.label.clone(),
            sha256: k.certificate_sha256.clone(),
        });
    }
    events.push(Event::End {
        outputs: 3,
        sha256sums_sha256: hex::encode(crate::x509::sha256(sums.as_bytes())),
    });
    let (mut seq, mut prev) = (0u64, [0u8; 32]);
    let mut lines = Vec::new();
    for e in events {
        let (line, hash) =
            next_record(seq, &prev, crate::fmt::utc(std::time::SystemTime::now()), e)
                .map_err(|e| internal(e.to_string()))?;
        seq += 1;
        prev = hash;
        lines.push(line);
    }
    let pair = token
        .find_key_pair(&root.label, root.key_type)?
        .ok_or_else(|| internal("the restored root is gone".into()))?;
    let signature = token.sign(&pair, &crate::audit::seal::message(&prev))?;
    let seal =
        crate::audit::seal::Seal::new(&prev, root.key_type, &signature, &root.cert_der, &pair.spki)
            .map_err(|e| internal(e.to_string()))?;
    let log = crate::audit::seal::sealed_log(&lines, &seal, &facts.recipients)
        .map_err(|e| internal(e.to_string()))?;
    let end = lines.last().cloned().unwrap_or_default();
    let seal_json = SealRecord::new(&end, &seal)
        .text()
        .map_err(|e| internal(e.to_string()))?;
    let io = |e: std::io::Error| {
        usage(
            format!(
                "cannot write the restore's record in {}: {e}",
                out.display()
            ),
            "the token is restored; write access to --out is needed for its record",
        )
    };
    std::fs::create_dir_all(out).map_err(io)?;
    for (name, bytes) in [
        ("restore.json", text.as_bytes()),
        (layout::ROOT_CA, root_pem.as_bytes()),
        (layout::SHA256SUMS, sums.as_bytes()),
        (layout::AUDIT_LOG, &log[..]),
        (layout::SEAL, seal_json.as_bytes()),
    ] {
        std::fs::write(out.join(name), bytes).map_err(io)?;
    }
    Ok(())
}
