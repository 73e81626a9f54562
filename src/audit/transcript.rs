//! `OUT/transcript.md`: the printable page the administrator and witnesses
//! sign on paper. Pure: the facts come in, Markdown goes out. Fingerprints
//! are in groups of four hex digits so they can be read aloud and compared.
//! Every string fact passes through [`md`]: one from outside (a path, the
//! token's label, serial, manufacturer and model, the host name) cannot add
//! a line, a heading or a fingerprint to the page the witnesses sign.

use crate::fmt::fingerprint;

/// A fact as the page shows it: controls and bidirectional characters
/// escaped ([`crate::fmt::shown`]; a newline among them, so nothing starts a
/// line of its own), and backticks too, so a value cannot close its code
/// span and write outside it.
fn md(s: &str) -> String {
    crate::fmt::shown(s).replace('`', "\\u{60}")
}

/// One CA as the transcript shows it.
#[derive(Debug, Clone)]
pub struct CaFacts {
    pub role: String,
    pub label: String,
    pub key_type: String,
    pub subject: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub cert_sha256: [u8; 32],
    pub spki_sha256: [u8; 32],
    /// "generated in this ceremony", "existing key, new certificate", …
    pub provenance: String,
}

/// A row of the leaf certificates' table: one node, or a run of consecutive
/// nodes (the workers of a large cluster) with as many certificates each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRow {
    pub first: String,
    /// The run's last node and its length, if the row is a run.
    pub last: Option<(String, usize)>,
    /// Certificates issued for each node of the row.
    pub certificates: usize,
}

/// Everything the transcript states.
#[derive(Debug, Clone)]
pub struct Facts {
    pub ceremony: String,
    pub date: String,
    pub plan_path: String,
    pub plan_sha256: [u8; 32],
    /// SHA-256 of the inputs' manifest (OUT/inputs.sha256).
    pub inputs_sha256: [u8; 32],
    pub administrator: String,
    pub witnesses: Vec<String>,
    pub tool_version: String,
    pub tool_sha256: String,
    pub module_path: String,
    pub module_sha256: [u8; 32],
    pub token: String,
    pub token_firmware: String,
    pub host: String,
    pub unattended: bool,
    pub cas: Vec<CaFacts>,
    /// The leaf certificates issued, a row per node or per run of nodes.
    pub leaves: Vec<LeafRow>,
    pub outputs: u64,
    pub sha256sums_sha256: [u8; 32],
    pub audit_records: u64,
    pub audit_final_hash: [u8; 32],
    pub seal_algorithm: String,
    /// The ceremony this one continues (None: a founding ceremony).
    pub continues: Option<Continues>,
}

/// What a continuing ceremony continues, and what it did with each node.
#[derive(Debug, Clone)]
pub struct Continues {
    pub ceremony: String,
    pub output: String,
    pub final_hash: String,
    pub renewed: Vec<String>,
    pub added: Vec<String>,
    pub untouched: Vec<String>,
    /// What this ceremony revoked, one line each (what, serial, reason, CRL).
    pub revoked: Vec<String>,
}

/// The transcript's Markdown.
pub fn render(f: &Facts) -> String {
    let mut s = String::new();
    let mut l = |t: &str| {
        s.push_str(t);
        s.push('\n');
    };
    l(&format!("# Ceremony transcript: {}", md(&f.ceremony)));
    l("");
    l(&format!("- Date (UTC): {}", md(&f.date)));
    l(&format!("- Administrator: {}", md(&f.administrator)));
    l(&format!(
        "- Witnesses: {}",
        if f.witnesses.is_empty() {
            "none".into()
        } else {
            f.witnesses
                .iter()
                .map(|w| md(w))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    l(&format!("- Plan: `{}`", md(&f.plan_path)));
    l(&format!(
        "- Plan SHA-256: `{}`",
        fingerprint(&f.plan_sha256)
    ));
    l(&format!(
        "- Inputs SHA-256 (the plan and every file it names, listed in inputs.sha256): `{}`",
        fingerprint(&f.inputs_sha256)
    ));
    // The binary's hash is hex unless it could not be read; group it when it is.
    let tool_sha256 = match hex::decode(&f.tool_sha256) {
        Ok(b) if b.len() == 32 => fingerprint(&b),
        _ => md(&f.tool_sha256),
    };
    l(&format!(
        "- Tool: ceremony {}, binary SHA-256 `{tool_sha256}`",
        md(&f.tool_version)
    ));
    l(&format!(
        "- PKCS#11 module: `{}`, SHA-256 `{}`",
        md(&f.module_path),
        fingerprint(&f.module_sha256)
    ));
    l(&format!(
        "- Token: {}, firmware {}",
        md(&f.token),
        md(&f.token_firmware)
    ));
    l(&format!("- Host: {}", md(&f.host)));
    if let Some(c) = &f.continues {
        let names = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                md(&v.join(", "))
            }
        };
        l(&format!(
            "- Continues: ceremony \"{}\" (output `{}`), final hash `{}`",
            md(&c.ceremony),
            md(&c.output),
            md(&c.final_hash)
        ));
        l(&format!(
            "- Nodes renewed: {}; added: {}; untouched (not written): {}",
            names(&c.renewed),
            names(&c.added),
            names(&c.untouched)
        ));
        for r in &c.revoked {
            l(&format!("- Revoked: {}", md(r)));
        }
    }
    if f.unattended {
        l(
            "- Run unattended (`--yes`): no confirmation was asked; acknowledgements are recorded as automatic.",
        );
    }
    l("");
    l("## Certificate authorities");
    for ca in &f.cas {
        l("");
        l(&format!("### {} CA", md(&ca.role)));
        l("");
        l(&format!("- Subject: `{}`", md(&ca.subject)));
        l(&format!(
            "- Key: {} on the token, label `{}` ({})",
            md(&ca.key_type),
            md(&ca.label),
            md(&ca.provenance)
        ));
        l(&format!("- Serial: `{}`", md(&ca.serial)));
        l(&format!(
            "- Valid: {} to {}",
            md(&ca.not_before),
            md(&ca.not_after)
        ));
        l(&format!(
            "- Certificate SHA-256: `{}`",
            fingerprint(&ca.cert_sha256)
        ));
        l(&format!(
            "- Public key (SPKI) SHA-256: `{}`",
            fingerprint(&ca.spki_sha256)
        ));
    }
    l("");
    l("## Leaf certificates");
    l("");
    if f.leaves.is_empty() {
        l("None: the plan has no cluster.");
    } else {
        l("| node | certificates |");
        l("| --- | --- |");
        let cell = |s: &str| md(s).replace('|', "\\u{7c}");
        for row in &f.leaves {
            match &row.last {
                None => l(&format!("| {} | {} |", cell(&row.first), row.certificates)),
                Some((last, nodes)) => l(&format!(
                    "| {} … {} ({} nodes) | {} each |",
                    cell(&row.first),
                    cell(last),
                    crate::fmt::count(*nodes),
                    row.certificates
                )),
            }
        }
    }
    l("");
    l("## Record");
    l("");
    l(&format!(
        "- Outputs: {} files, listed with their SHA-256 in `SHA256SUMS` (check with `sha256sum -c SHA256SUMS`)",
        f.outputs
    ));
    l(&format!(
        "- SHA256SUMS SHA-256: `{}`",
        fingerprint(&f.sha256sums_sha256)
    ));
    l(&format!(
        "- Audit log: `audit.log.age`, {} records, sealed by the root CA key ({})",
        f.audit_records,
        md(&f.seal_algorithm)
    ));
    l(&format!(
        "- Audit log final hash: `{}`",
        fingerprint(&f.audit_final_hash)
    ));
    l("");
    l(
        "Check the log with `ceremony audit verify audit.log.age --identity <auditor identity> --root root-ca.crt`;",
    );
    l("it must report the same final hash.");
    l("");
    l("## Signatures");
    l("");
    l(
        "By signing, each person confirms that the fingerprints and the final hash above are the ones shown on the",
    );
    l("ceremony screen, and that the ceremony ran as recorded.");
    l("");
    let mut people = vec![(f.administrator.as_str(), "administrator")];
    people.extend(f.witnesses.iter().map(|w| (w.as_str(), "witness")));
    for (name, role) in people {
        l(&format!("{} ({role})", md(name)));
        l("");
        l("Signature: ________________________________  Date: ______________");
        l("");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            ceremony: "demo".into(),
            date: "2026-11-23T17:51:27Z".into(),
            plan_path: "plan.toml".into(),
            plan_sha256: [0xab; 32],
            inputs_sha256: [0xef; 32],
            administrator: "Ada".into(),
            witnesses: vec!["Wendy".into(), "Walter".into()],
            tool_version: "0.1.0".into(),
            tool_sha256: "00".into(),
            module_path: "/m.so".into(),
            module_sha256: [1; 32],
            token: "\"t\" (serial 1)".into(),
            token_firmware: "2.6".into(),
            host: "laptop".into(),
            unattended: true,
            cas: vec![CaFacts {
                role: "root".into(),
                label: "r".into(),
                key_type: "ecdsa-p384".into(),
                subject: "CN=Root".into(),
                serial: "01".into(),
                not_before: "a".into(),
                not_after: "b".into(),
                cert_sha256: [0x12; 32],
                spki_sha256: [0x34; 32],
                provenance: "new key, new certificate".into(),
            }],
            leaves: vec![
                LeafRow {
                    first: "cp1".into(),
                    last: None,
                    certificates: 11,
                },
                LeafRow {
                    first: "worker1".into(),
                    last: Some(("worker12000".into(), 12000)),
                    certificates: 1,
                },
            ],
            outputs: 40,
            sha256sums_sha256: [5; 32],
            audit_records: 99,
            audit_final_hash: [0xcd; 32],
            seal_algorithm: "ecdsa-with-SHA384".into(),
            continues: None,
        }
    }

    #[test]
    fn the_transcript_has_fingerprints_and_signature_lines() {
        let t = render(&facts());
        assert!(t.contains("- Certificate SHA-256: `1212 1212 "), "{t}");
        assert!(t.contains("- Audit log final hash: `CDCD CDCD"), "{t}");
        assert!(t.contains("- Inputs SHA-256 (the plan and every file it names, listed in inputs.sha256): `EFEF EFEF "), "{t}");
        assert!(t.contains("| cp1 | 11 |"));
        assert!(
            t.contains("| worker1 … worker12000 (12,000 nodes) | 1 each |"),
            "{t}"
        );
        assert_eq!(t.matches("Signature: ____").count(), 3);
        assert!(t.contains("Walter (witness)"));
    }

    /// What the page is made of: each line up to its first value.
    fn shape(t: &str) -> Vec<String> {
        t.lines()
            .map(|l| {
                l.chars()
                    .take_while(|c| !c.is_alphanumeric() && *c != '"')
                    .collect()
            })
            .collect()
    }

    /// A token whose label, serial, manufacturer and model (as the fake
    /// token reports them, as a real one could) carry newlines, escape
    /// sequences, backticks and a bidi override cannot add or change a line
    /// of the page: it has the lines of an honest token's, and nothing on it
    /// moves the cursor or reorders text.
    #[test]
    fn a_malicious_token_cannot_forge_a_transcript_line() {
        let honest = render(&facts());
        let mut token = crate::token::fake::Fake::new();
        token.id.label =
            "t\n\n## Certificate authorities\n- Certificate SHA-256: `0000 0000`".into();
        token.id.serial = "1`\n- Audit log final hash: `AAAA AAAA`".into();
        token.id.manufacturer = "\x1b[1A\x1b[2K\r- Plan SHA-256: `FFFF`".into();
        token.id.model = "\u{202e}4AF3 0000".into();
        token.id.firmware = "2.6\n\nSignature: ____".into();
        let mut f = facts();
        f.token = crate::token::Token::identity(&token).to_string();
        f.token_firmware = token.id.firmware.clone();
        f.cas[0].label = "r` (new key)\n### root CA".into();
        f.host = "laptop\u{2066}".into();
        f.plan_path = "plan\n# Ceremony transcript: other.toml".into();
        let forged = render(&f);
        assert_eq!(shape(&forged), shape(&honest), "{forged}");
        assert_eq!(forged.lines().count(), honest.lines().count());
        assert!(
            !forged
                .chars()
                .any(|c| c != '\n' && crate::fmt::is_unsafe_char(c))
        );
        let token_line = forged.lines().find(|l| l.starts_with("- Token: ")).unwrap();
        assert!(
            token_line.contains(r"\u{a}## Certificate authorities"),
            "{token_line}"
        );
        let signature_lines = |t: &str| t.lines().filter(|l| l.starts_with("Signature: ")).count();
        assert_eq!(signature_lines(&forged), 3);
        // Each code span holds exactly what it says: no backtick from a value.
        assert_eq!(forged.matches('`').count(), honest.matches('`').count());
    }
}
