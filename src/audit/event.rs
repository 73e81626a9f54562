//! The events of a ceremony, as typed values. Each is a fact an
//! auditor checks: names, labels, CKA_IDs, hashes, serials, paths and times.
//! There is deliberately no free-text event: nothing here can carry a PIN or
//! key material, because no field is filled from one. (`Error.message` is the
//! rendered error, and no error of this crate holds a PIN or key.)

use serde::{Deserialize, Serialize};

/// What ran the ceremony: recorded at the start and again on every resume,
/// since a resumed run may use another binary or module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    pub tool_version: String,
    /// SHA-256 of the running binary (`std::env::current_exe`), or why it is unknown.
    pub tool_sha256: String,
    pub module_path: String,
    pub module_sha256: String,
    pub host: String,
    /// `--yes`: confirmations were skipped and recorded as automatic.
    pub unattended: bool,
}

/// The security attributes of a CA private key, as read back from the token
/// (None: the token did not report it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFlags {
    pub token: Option<bool>,
    pub private: Option<bool>,
    pub sensitive: Option<bool>,
    pub extractable: Option<bool>,
    pub always_sensitive: Option<bool>,
    pub never_extractable: Option<bool>,
    /// Recorded for backed-up keys only (older logs have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_with_trusted: Option<bool>,
}

impl From<crate::token::KeyFlags> for KeyFlags {
    fn from(f: crate::token::KeyFlags) -> Self {
        KeyFlags {
            token: f.token,
            private: f.private,
            sensitive: f.sensitive,
            extractable: f.extractable,
            always_sensitive: f.always_sensitive,
            never_extractable: f.never_extractable,
            wrap_with_trusted: f.wrap_with_trusted.filter(|w| *w),
        }
    }
}

/// A key pair on the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// "root", "kubernetes", "etcd", "front-proxy".
    pub role: String,
    pub label: String,
    /// CKA_ID, hex.
    pub id: String,
    pub key_type: String,
    /// SHA-256 of the public key's SubjectPublicKeyInfo DER.
    pub spki_sha256: String,
    pub flags: KeyFlags,
}

/// A certificate, as issued or found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// The CA role for CA certificates; kubeadm's certificate name for leaves
    /// ("apiserver", "etcd/server", "kubelet.conf").
    pub role: String,
    /// The node a leaf is for (None for CA certificates).
    pub node: Option<String>,
    /// The output file a leaf is written to, relative to OUT (None for CAs,
    /// whose files are in the output_written records).
    pub file: Option<String>,
    /// The role of the CA whose key signed it.
    pub signed_by: String,
    pub subject: String,
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// SHA-256 of the certificate DER: the fingerprint.
    pub sha256: String,
    pub spki_sha256: String,
}

/// How an acknowledgement was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckHow {
    /// The person typed the value asked for.
    Typed,
    /// `--yes`: nobody was asked; the run acknowledged it automatically.
    Automatic,
}

/// What a resumed run found of the previous ones.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Recovery {
    /// Records intact in the journal before this run.
    pub records: u64,
    /// Hash of the last of them (the `prev` of the resume record).
    pub last_hash: String,
    /// Bytes of a torn last frame (a record being written when the process
    /// died) cut off the journal; 0 when it ended cleanly.
    pub torn_frame_bytes: u64,
    /// Whether the previous run had appended its `end` record (it died
    /// before its output was committed).
    pub previous_run_ended: bool,
    /// Serials of leaf certificates signed by the previous run since its
    /// start or resume: they never reached an output (the staging directory
    /// is rebuilt) and are superseded by this run's.
    pub discarded_leaf_serials: Vec<String>,
    /// Whether an unfinished staging directory of the previous run was found
    /// (it is discarded and rebuilt).
    pub staging_discarded: bool,
    /// Key generations the journal shows started but never done (killed
    /// inside the token's C_GenerateKeyPair, or just before or after it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interrupted_key_generations: Vec<PendingKey>,
    /// CA certificates the journal shows signed but never stored on the
    /// token (killed inside C_CreateObject, or just before it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interrupted_certificate_stores: Vec<PendingStore>,
    /// The final hash of every `end` record in the journal (hex): a run
    /// that sealed one may have made it the token's chain head before it
    /// died, with its output not yet committed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sealed_final_hashes: Vec<String>,
}

/// A CA certificate recorded as issued and not yet as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingStore {
    pub role: String,
    /// SHA-256 of the certificate DER, hex.
    pub sha256: String,
}

/// A key generation recorded as started (`key_generation_started`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingKey {
    pub role: String,
    pub label: String,
    /// CKA_ID, hex.
    pub id: String,
}

/// One event of a ceremony. Serialized with a `kind` tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The first record of a ceremony.
    CeremonyStarted {
        ceremony: String,
        plan_path: String,
        plan_sha256: String,
        /// SHA-256 of the inputs' manifest (empty in logs written before it).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        inputs_sha256: String,
        output: String,
        administrator: String,
        witnesses: Vec<String>,
        env: Environment,
        /// The ceremony this one continues (absent for a founding ceremony).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<super::chain::PreviousCeremony>,
    },
    /// A run that continues the journal of an interrupted one.
    Resumed {
        plan_sha256: String,
        /// SHA-256 of the inputs' manifest (empty in logs written before it).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        inputs_sha256: String,
        output: String,
        env: Environment,
        found: Recovery,
    },
    TokenIdentified {
        label: String,
        manufacturer: String,
        model: String,
        serial: String,
        firmware: String,
        hardware: String,
    },
    /// C_Login succeeded; `source` says where the PIN came from (never the PIN).
    LoggedIn {
        source: String,
    },
    MechanismChosen {
        key_type: String,
        mechanism: String,
    },
    KeyFound(KeyInfo),
    /// About to ask the token for a key pair: recorded before the token
    /// acts, so a run killed inside C_GenerateKeyPair leaves the id of what
    /// the token may have half-made.
    KeyGenerationStarted {
        role: String,
        label: String,
        key_type: String,
        /// CKA_ID, hex.
        id: String,
    },
    KeyGenerated(KeyInfo),
    /// Key objects an interrupted generation left under the CA's label (a
    /// public key alone, or a pair the token cannot sign with), removed by
    /// the resumed run before it generates the key again. `id` is the CKA_ID
    /// the interrupted generation recorded; `what` says what was wrong.
    UnfinishedKeyRemoved {
        role: String,
        label: String,
        id: String,
        objects: u64,
        what: String,
    },
    /// A certificate object an interrupted C_CreateObject left under the
    /// CA's label without its value or CKA_ID, removed by the resumed run,
    /// which then signs and stores the CA certificate again.
    UnfinishedCertificateRemoved {
        role: String,
        label: String,
        objects: u64,
        what: String,
    },
    /// A CA certificate already on the token (resume).
    CertificateFound(CertInfo),
    CertificateIssued(CertInfo),
    /// The certificate of a CA delegated to the control-plane nodes, signed
    /// from the request they brought (never stored on the token: the key is
    /// theirs).
    DelegatedCaIssued {
        certificate: CertInfo,
        /// The request as the plan names it, and the SHA-256 of its bytes.
        csr: String,
        csr_sha256: String,
    },
    /// A CA certificate stored on the token beside its key.
    CertificateStored {
        role: String,
        label: String,
        sha256: String,
    },
    /// A CA certificate signed again for the same key on the token (a new
    /// validity, the same subject and key); the token keeps the certificate
    /// object it had.
    CaCertificateReissued {
        /// SHA-256 of the certificate it follows (the chain's current one), hex.
        previous_sha256: String,
        certificate: CertInfo,
    },
    /// A CA certificate of the previous output, signed for the key on the
    /// token by an earlier reissue, used instead of the token's own.
    CaCertificateCarried {
        role: String,
        /// SHA-256 of the token's certificate object, hex.
        token_sha256: String,
        certificate: CertInfo,
    },
    /// The stage of a CA's rotation to a new key this ceremony ran: which
    /// key signs its leaves and which certificates its trust files hold.
    CaRotation {
        /// kubernetes, etcd, front-proxy.
        ca: String,
        /// stage, promote or distrust.
        stage: String,
        old_label: String,
        new_label: String,
        /// SHA-256 of the certificate that signs this ceremony's leaves, hex.
        signing_sha256: String,
        /// SHA-256 of each certificate of the trust files, signing one first.
        trusted_sha256: Vec<String>,
    },
    /// A certificate put on its CA's CRL by this ceremony.
    CertificateRevoked {
        /// The issuing CA: root, kubernetes, etcd, front-proxy.
        ca: String,
        /// Hex, as `openssl x509 -serial` prints it.
        serial: String,
        reason: String,
        /// What the plan named: the file of the previous output, or the serial.
        what: String,
    },
    /// A CA's CRL signed through the token and checked.
    CrlSigned {
        ca: String,
        number: u64,
        this_update: String,
        next_update: String,
        /// Entries on it (the previous CRL's and this ceremony's).
        revoked: u64,
        /// SHA-256 of its DER, hex.
        sha256: String,
    },
    OutputWritten {
        /// Relative to OUT.
        path: String,
        sha256: String,
        /// Octal, e.g. "0644".
        mode: String,
    },
    Acknowledged {
        who: String,
        /// "administrator" or "witness".
        as_role: String,
        what: String,
        how: AckHow,
    },
    Error {
        message: String,
        causes: Vec<String>,
        exit_code: i32,
    },
    Cancelled {
        reason: String,
    },
    /// The secret keys the token marks trusted, before a backup: a trusted
    /// key the tool did not put there could wrap the CA keys out.
    BackupTrustedKeys {
        /// Each as `label (CKA_ID hex)`.
        found: Vec<String>,
    },
    /// The wrap key's shares written for the custodians (never the shares
    /// or the key: their check value and the public commitments' hash).
    BackupSharesWritten {
        check_value: String,
        threshold: u64,
        custodians: Vec<String>,
        commitments_sha256: String,
    },
    /// The wrap key imported as a trusted key in a security-officer session.
    BackupWrapKeyImported {
        label: String,
        check_value: String,
    },
    /// The wrap key already on the token (a resumed run).
    BackupWrapKeyFound {
        label: String,
        check_value: String,
    },
    /// A CA private key wrapped under the wrap key.
    KeyWrapped {
        role: String,
        label: String,
        blob_sha256: String,
    },
    /// A CA key pair unwrapped onto this token from a backup, and proven
    /// against its certificate.
    KeyRestored {
        role: String,
        label: String,
        spki_sha256: String,
    },
    /// The last record of a finished ceremony; the seal signs its hash.
    #[serde(rename = "end")]
    End {
        /// Outputs written (plan.toml and SHA256SUMS included).
        outputs: u64,
        sha256sums_sha256: String,
    },
}

impl Event {
    /// The `kind` tag, as serialized.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::CeremonyStarted { .. } => "ceremony_started",
            Event::Resumed { .. } => "resumed",
            Event::TokenIdentified { .. } => "token_identified",
            Event::LoggedIn { .. } => "logged_in",
            Event::MechanismChosen { .. } => "mechanism_chosen",
            Event::KeyFound(_) => "key_found",
            Event::KeyGenerationStarted { .. } => "key_generation_started",
            Event::KeyGenerated(_) => "key_generated",
            Event::UnfinishedKeyRemoved { .. } => "unfinished_key_removed",
            Event::UnfinishedCertificateRemoved { .. } => "unfinished_certificate_removed",
            Event::CertificateFound(_) => "certificate_found",
            Event::CertificateIssued(_) => "certificate_issued",
            Event::DelegatedCaIssued { .. } => "delegated_ca_issued",
            Event::CertificateStored { .. } => "certificate_stored",
            Event::CaCertificateReissued { .. } => "ca_certificate_reissued",
            Event::CaCertificateCarried { .. } => "ca_certificate_carried",
            Event::CaRotation { .. } => "ca_rotation",
            Event::CertificateRevoked { .. } => "certificate_revoked",
            Event::CrlSigned { .. } => "crl_signed",
            Event::OutputWritten { .. } => "output_written",
            Event::Acknowledged { .. } => "acknowledged",
            Event::Error { .. } => "error",
            Event::Cancelled { .. } => "cancelled",
            Event::End { .. } => "end",
            Event::BackupTrustedKeys { .. } => "backup_trusted_keys",
            Event::BackupSharesWritten { .. } => "backup_shares_written",
            Event::BackupWrapKeyImported { .. } => "backup_wrap_key_imported",
            Event::BackupWrapKeyFound { .. } => "backup_wrap_key_found",
            Event::KeyWrapped { .. } => "key_wrapped",
            Event::KeyRestored { .. } => "key_restored",
        }
    }

    /// One line for `audit show`.
    pub fn summary(&self) -> String {
        let short = |h: &str| h.get(..16).unwrap_or(h).to_string();
        match self {
            Event::CeremonyStarted {
                ceremony,
                plan_path,
                plan_sha256,
                inputs_sha256,
                output,
                administrator,
                witnesses,
                env,
                previous,
            } => format!(
                "ceremony \"{ceremony}\", plan {plan_path} (SHA-256 {plan_sha256}{}), output {output}; administrator {administrator}; witnesses {}; {}{}",
                if inputs_sha256.is_empty() {
                    String::new()
                } else {
                    format!(", inputs SHA-256 {inputs_sha256}")
                },
                list(witnesses),
                env_summary(env),
                previous
                    .as_ref()
                    .map(|p| format!(
                        "; continues \"{}\" ({}, final hash {})",
                        p.ceremony, p.output, p.final_hash
                    ))
                    .unwrap_or_default()
            ),
            Event::Resumed {
                plan_sha256,
                output,
                env,
                found,
                ..
            } => format!(
                "resumed plan {} into {output}: {} records intact{}{}{}{}{}{}; {}",
                short(plan_sha256),
                found.records,
                if found.torn_frame_bytes > 0 {
                    format!(
                        ", a torn last frame of {} bytes cut off",
                        found.torn_frame_bytes
                    )
                } else {
                    String::new()
                },
                if found.previous_run_ended {
                    ", the previous run had ended but not committed its output"
                } else {
                    ""
                },
                if found.discarded_leaf_serials.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", {} leaf certificates of the previous run discarded",
                        found.discarded_leaf_serials.len()
                    )
                },
                if found.staging_discarded {
                    ", its staging directory discarded"
                } else {
                    ""
                },
                if found.interrupted_key_generations.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", {} key generation(s) interrupted",
                        found.interrupted_key_generations.len()
                    )
                },
                if found.interrupted_certificate_stores.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", {} certificate store(s) interrupted",
                        found.interrupted_certificate_stores.len()
                    )
                },
                env_summary(env)
            ),
            Event::TokenIdentified {
                label,
                manufacturer,
                model,
                serial,
                firmware,
                hardware,
            } => format!(
                "token \"{label}\" serial {serial}, {manufacturer} {model}, firmware {firmware}, hardware {hardware}"
            ),
            Event::LoggedIn { source } => format!("logged in to the token (PIN from {source})"),
            Event::MechanismChosen {
                key_type,
                mechanism,
            } => format!("{key_type}: {mechanism}"),
            Event::KeyFound(k) | Event::KeyGenerated(k) => format!(
                "{} key \"{}\" id {} {}, SPKI SHA-256 {}, {}",
                k.role,
                k.label,
                k.id,
                k.key_type,
                short(&k.spki_sha256),
                flags_summary(&k.flags)
            ),
            Event::KeyGenerationStarted {
                role,
                label,
                key_type,
                id,
            } => format!(
                "{role} key \"{label}\" id {id} {key_type}: generation started on the token"
            ),
            Event::UnfinishedKeyRemoved {
                role,
                label,
                id,
                objects,
                what,
            } => format!(
                "{role} key \"{label}\" id {id}: {objects} key object(s) of an interrupted generation removed from the token ({what})"
            ),
            Event::UnfinishedCertificateRemoved {
                role,
                label,
                objects,
                what,
            } => format!(
                "{role} certificate \"{label}\": {objects} certificate object(s) of an interrupted store removed from the token ({what})"
            ),
            Event::CertificateFound(c) | Event::CertificateIssued(c) => format!(
                "{}{}{} \"{}\" serial {} by {} CA, {} to {}, SHA-256 {}",
                c.node
                    .as_deref()
                    .map(|n| format!("{n} "))
                    .unwrap_or_default(),
                c.role,
                c.file
                    .as_deref()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default(),
                c.subject,
                short(&c.serial),
                c.signed_by,
                c.not_before,
                c.not_after,
                c.sha256
            ),
            Event::DelegatedCaIssued {
                certificate: c,
                csr,
                csr_sha256,
            } => format!(
                "{} CA delegated to the control-plane nodes: \"{}\" serial {} by {} CA from the request {csr} (SHA-256 {}), {} to {}, SHA-256 {}",
                c.role,
                c.subject,
                short(&c.serial),
                c.signed_by,
                short(csr_sha256),
                c.not_before,
                c.not_after,
                c.sha256
            ),
            Event::CertificateStored {
                role,
                label,
                sha256,
            } => format!(
                "{role} certificate stored on the token as \"{label}\", SHA-256 {}",
                short(sha256)
            ),
            Event::CaCertificateReissued {
                previous_sha256,
                certificate: c,
            } => format!(
                "{} CA certificate reissued for the same key: serial {}, {} to {}, SHA-256 {} (follows {})",
                c.role,
                short(&c.serial),
                c.not_before,
                c.not_after,
                short(&c.sha256),
                short(previous_sha256)
            ),
            Event::CaCertificateCarried {
                role,
                token_sha256,
                certificate: c,
            } => format!(
                "{role} CA certificate of the previous output used (a reissue of the token's {}): serial {}, to {}, SHA-256 {}",
                short(token_sha256),
                short(&c.serial),
                c.not_after,
                short(&c.sha256)
            ),
            Event::CaRotation {
                ca,
                stage,
                old_label,
                new_label,
                signing_sha256,
                trusted_sha256,
            } => format!(
                "{ca} CA rotation from \"{old_label}\" to \"{new_label}\" at {stage}: leaves signed by {}, trust files hold {}",
                short(signing_sha256),
                trusted_sha256
                    .iter()
                    .map(|h| short(h))
                    .collect::<Vec<_>>()
                    .join(" then ")
            ),
            Event::CertificateRevoked {
                ca,
                serial,
                reason,
                what,
            } => format!("{what}: serial {serial} revoked on the {ca} CA's CRL ({reason})"),
            Event::CrlSigned {
                ca,
                number,
                this_update,
                next_update,
                revoked,
                sha256,
            } => format!(
                "{ca} CA's CRL number {number}, {revoked} revoked, {this_update} to {next_update}, SHA-256 {}",
                short(sha256)
            ),
            Event::OutputWritten { path, sha256, mode } => format!("{path} {mode} {sha256}"),
            Event::BackupTrustedKeys { found } if found.is_empty() => {
                "backup: the token holds no trusted key".into()
            }
            Event::BackupTrustedKeys { found } => {
                format!("backup: trusted keys on the token: {}", found.join(", "))
            }
            Event::BackupSharesWritten {
                check_value,
                threshold,
                custodians,
                commitments_sha256,
            } => format!(
                "backup: wrap key {check_value} split {threshold} of {} among {}, commitments SHA-256 {}",
                custodians.len(),
                custodians.join(", "),
                short(commitments_sha256)
            ),
            Event::BackupWrapKeyImported { label, check_value } => {
                format!("backup: wrap key {check_value} imported as trusted key \"{label}\"")
            }
            Event::BackupWrapKeyFound { label, check_value } => {
                format!("backup: wrap key {check_value} found on the token as \"{label}\"")
            }
            Event::KeyWrapped {
                role,
                label,
                blob_sha256,
            } => format!(
                "{role} key \"{label}\" wrapped under the wrap key, SHA-256 {}",
                short(blob_sha256)
            ),
            Event::KeyRestored {
                role,
                label,
                spki_sha256,
            } => format!(
                "{role} key \"{label}\" restored from the backup and proven, public key SHA-256 {}",
                short(spki_sha256)
            ),
            Event::Acknowledged {
                who,
                as_role,
                what,
                how,
            } => match how {
                AckHow::Typed => format!("{who} ({as_role}) acknowledged: {what}"),
                AckHow::Automatic => {
                    format!("automatic (--yes) for {who} ({as_role}), nobody was asked: {what}")
                }
            },
            Event::Error {
                message,
                causes,
                exit_code,
            } => {
                let mut s = format!("exit {exit_code}: {message}");
                for c in causes {
                    s.push_str(&format!("; caused by: {c}"));
                }
                s
            }
            Event::Cancelled { reason } => reason.clone(),
            Event::End {
                outputs,
                sha256sums_sha256,
            } => format!("{outputs} outputs; SHA256SUMS SHA-256 {sha256sums_sha256}"),
        }
    }
}

/// The facts of a key pair on the token.
pub fn key_info(role: &str, key: &crate::token::KeyPair) -> KeyInfo {
    use der::Encode;
    KeyInfo {
        role: role.into(),
        label: key.label.clone(),
        id: hex::encode(&key.id),
        key_type: key.key_type.name().into(),
        spki_sha256: key.spki.to_der().map_or_else(
            |e| format!("(unencodable: {e})"),
            |d| hex::encode(crate::x509::sha256(&d)),
        ),
        flags: key.flags.into(),
    }
}

/// The facts of a certificate, read from its DER (what was actually issued).
pub fn cert_info(
    role: &str,
    node: Option<&str>,
    file: Option<&str>,
    signed_by: &str,
    cert: &x509_cert::certificate::Certificate,
    der: &[u8],
) -> CertInfo {
    use der::Encode;
    let tbs = cert.tbs_certificate();
    let validity = tbs.validity();
    CertInfo {
        role: role.into(),
        node: node.map(str::to_string),
        file: file.map(str::to_string),
        signed_by: signed_by.into(),
        subject: crate::x509::name_text(tbs.subject()),
        issuer: crate::x509::name_text(tbs.issuer()),
        serial: crate::fmt::hex(tbs.serial_number().as_bytes()),
        not_before: crate::fmt::rfc3339(validity.not_before.to_system_time()),
        not_after: crate::fmt::rfc3339(validity.not_after.to_system_time()),
        sha256: crate::fmt::hex(&crate::x509::sha256(der)),
        spki_sha256: tbs.subject_public_key_info().to_der().map_or_else(
            |e| format!("(unencodable: {e})"),
            |d| crate::fmt::hex(&crate::x509::sha256(&d)),
        ),
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn env_summary(e: &Environment) -> String {
    format!(
        "tool {} (SHA-256 {}), module {} (SHA-256 {}), host {}{}",
        e.tool_version,
        e.tool_sha256,
        e.module_path,
        e.module_sha256,
        e.host,
        if e.unattended {
            ", unattended (--yes)"
        } else {
            ""
        }
    )
}

fn flags_summary(f: &KeyFlags) -> String {
    let b = |v: Option<bool>| v.map_or("?", |x| if x { "yes" } else { "no" });
    format!(
        "sensitive={} extractable={} always-sensitive={} never-extractable={}{}",
        b(f.sensitive),
        b(f.extractable),
        b(f.always_sensitive),
        b(f.never_extractable),
        match f.wrap_with_trusted {
            Some(true) => " wrap-with-trusted=yes",
            _ => "",
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_by_kind() {
        let e = Event::OutputWritten {
            path: "root-ca.crt".into(),
            sha256: "ab".into(),
            mode: "0644".into(),
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"output_written","path":"root-ca.crt","sha256":"ab","mode":"0644"}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
        let end = Event::End {
            outputs: 3,
            sha256sums_sha256: "cd".into(),
        };
        let json = serde_json::to_string(&end).unwrap();
        assert!(json.starts_with(r#"{"kind":"end","#), "{json}");
        assert_eq!(end.kind(), "end");
    }

    #[test]
    fn newtype_variants_flatten_their_fields() {
        let k = Event::KeyGenerated(KeyInfo {
            role: "root".into(),
            label: "r".into(),
            id: "01".into(),
            key_type: "ecdsa-p384".into(),
            spki_sha256: "00".into(),
            flags: KeyFlags {
                token: Some(true),
                private: Some(true),
                sensitive: Some(true),
                extractable: Some(false),
                always_sensitive: Some(true),
                never_extractable: None,
                wrap_with_trusted: None,
            },
        });
        let json = serde_json::to_string(&k).unwrap();
        assert!(
            json.starts_with(r#"{"kind":"key_generated","role":"root""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), k);
        assert_eq!(k.kind(), "key_generated");
    }
}
