//! A leaf certificate against its kubeadm profile, and a private key against
//! its certificate.

use super::*;

impl<'a> Ctx<'a> {
    /// A leaf against its expectation: issuer, validity, extensions, names, key type.
    pub(super) fn leaf(
        &mut self,
        file: &str,
        pre: &str,
        c: &Cert,
        exp: &Expect,
        ca: Option<&CaRef<'_>>,
    ) {
        let f = |s: &str| format!("{pre}{s}");
        if let Some(e) = &c.bad_extension {
            self.add(Problem::new(
                file,
                &f("extensions"),
                format!("does not decode: {e}"),
            ));
        }
        if let Some(ca) = ca {
            self.chains_to(file, pre, c, ca);
        }
        self.not_revoked(file, pre, c);
        self.validity(file, pre, c);
        match c.basic_constraints {
            Some((false, _)) => {}
            Some((true, _)) => self.add(
                Problem::new(file, &f("basicConstraints"), "a leaf must not be a CA")
                    .expected("CA:FALSE")
                    .got("CA:TRUE"),
            ),
            None => {
                self.add(Problem::new(file, &f("basicConstraints"), "missing").expected("CA:FALSE"))
            }
        }
        let key_type = c.key.as_ref().ok().and_then(|k| k.key_type);
        match c.key_usage {
            None => {
                self.add(Problem::new(file, &f("keyUsage"), "missing").expected("digitalSignature"))
            }
            Some(ku) => {
                if let Some(kt) = exp.key_type {
                    let mut want = flagset::FlagSet::from(KeyUsages::DigitalSignature);
                    if kt.is_rsa() {
                        want |= KeyUsages::KeyEncipherment;
                    }
                    if ku != want {
                        self.add(
                            Problem::new(file, &f("keyUsage"), "not kubeadm's")
                                .expected(ku_names(want))
                                .got(ku_names(ku)),
                        );
                    }
                } else if !ku.contains(KeyUsages::DigitalSignature)
                    || ku.contains(KeyUsages::KeyCertSign)
                    || ku.contains(KeyUsages::CRLSign)
                {
                    let want = if key_type.is_some_and(KeyType::is_rsa) {
                        "digitalSignature, keyEncipherment"
                    } else {
                        "digitalSignature"
                    };
                    self.add(
                        Problem::new(file, &f("keyUsage"), "not a TLS leaf's")
                            .expected(want)
                            .got(ku_names(ku)),
                    );
                }
            }
        }
        let got_eku: BTreeSet<ObjectIdentifier> = c.eku.iter().flatten().copied().collect();
        let want_eku: BTreeSet<ObjectIdentifier> = exp.eku.iter().copied().collect();
        if got_eku != want_eku {
            let got = c.eku.as_deref().map_or("none".into(), eku_text);
            self.add(
                Problem::new(file, &f("extendedKeyUsage"), "wrong")
                    .expected(eku_text(&exp.eku))
                    .got(got),
            );
        }
        if let Some(cn) = &exp.cn
            && (c.cn.len() != 1 || &c.cn[0] != cn)
        {
            self.add(
                Problem::new(file, &f("subject.CN"), "wrong")
                    .expected(cn.clone())
                    .got(list(&c.cn)),
            );
        }
        if !exp.orgs.is_empty() && !exp.orgs.contains(&c.orgs) {
            let want: Vec<String> = exp.orgs.iter().map(|o| orgs_text(o)).collect();
            self.add(
                Problem::new(file, &f("subject.O"), "wrong")
                    .expected(want.join(" or "))
                    .got(orgs_text(&c.orgs)),
            );
        }
        self.sans(file, &f("subjectAltName"), &c.sans, &exp.sans);
        match &c.key {
            Err(e) => self.add(Problem::new(file, &f("publicKey"), e.clone())),
            Ok(k) => match (exp.key_type, k.key_type) {
                (_, None) => self.add(
                    Problem::new(file, &f("publicKey"), "not a key type kubeadm makes")
                        .got(k.kind.clone()),
                ),
                (Some(want), Some(got)) if want != got => self.add(
                    Problem::new(file, &f("publicKey"), "not the plan's leaf_key")
                        .expected(want.name())
                        .got(got.name()),
                ),
                _ => {}
            },
        }
    }

    pub(super) fn sans(&mut self, file: &str, field: &str, got: &[String], rule: &SanRule) {
        let mut seen = BTreeSet::new();
        for s in got {
            if !seen.insert(s.clone()) {
                self.add(Problem::new(
                    file,
                    field,
                    format!("{s} listed twice (kubeadm de-duplicates)"),
                ));
            }
        }
        match rule {
            SanRule::Exact(want) => {
                for m in want.difference(&seen) {
                    self.add(Problem::new(file, field, format!("missing {m}")));
                }
                for x in seen.difference(want) {
                    self.add(Problem::new(file, field, format!("unexpected {x}")));
                }
            }
            SanRule::AtLeast { names, prefixes } => {
                for m in names.difference(&seen) {
                    self.add(Problem::new(file, field, format!("missing {m}")));
                }
                for p in prefixes {
                    if !seen.iter().any(|s| s.starts_with(p.as_str())) {
                        self.add(Problem::new(file, field, format!("missing {p}<dnsDomain>")));
                    }
                }
            }
        }
    }

    /// A private key against its certificate; `owners` names whose key it is instead.
    pub(super) fn pair(
        &mut self,
        file: &str,
        field: &str,
        key: &Result<PublicKey, String>,
        cert_label: &str,
        cert: &Cert,
        owners: &HashMap<Vec<u8>, String>,
    ) {
        match (key, &cert.key) {
            (Err(e), _) => self.add(Problem::new(file, field, e.clone())),
            (Ok(k), Ok(ck)) if k != ck => {
                let whose = owners
                    .get(&k.spki_der)
                    .map(|o| format!("; it is the key of {o}"))
                    .unwrap_or_default();
                self.add(
                    Problem::new(file, field, format!("does not match {cert_label}{whose}"))
                        .expected(ck.fingerprint())
                        .got(k.fingerprint()),
                );
            }
            _ => {}
        }
    }
}
