//! The CA certificates: the root (the given one or OUT's), each intermediate,
//! their validity and the chain from a certificate up to its CA.

use super::*;

impl<'a> Ctx<'a> {
    pub(super) fn validity(&mut self, file: &str, pre: &str, c: &Cert) {
        if self.now < c.not_before {
            self.add(
                Problem::new(file, &format!("{pre}validity"), "not valid yet")
                    .expected(format!("notBefore <= now ({})", utc(self.now)))
                    .got(utc(c.not_before)),
            );
        }
        if self.now > c.not_after {
            self.add(
                Problem::new(file, &format!("{pre}validity"), "expired")
                    .expected(format!("notAfter >= now ({})", utc(self.now)))
                    .got(utc(c.not_after)),
            );
        }
    }

    /// `child` is issued and signed by `ca`, and ends no later.
    pub(super) fn chains_to(&mut self, file: &str, pre: &str, child: &Cert, ca: &CaRef<'_>) {
        if child.issuer_der != ca.cert.subject_der {
            self.add(
                Problem::new(
                    file,
                    &format!("{pre}issuer"),
                    format!("not issued by {}", ca.file),
                )
                .expected(ca.cert.subject.clone())
                .got(child.issuer.clone()),
            );
        } else if let Err(e) = child.signed_by(ca.cert) {
            self.add(Problem::new(
                file,
                &format!("{pre}signature"),
                format!("does not verify with the key of {}: {e}", ca.file),
            ));
        }
        if let (Some(aki), Some(ski)) = (&child.aki, &ca.cert.ski)
            && aki != ski
        {
            self.add(
                Problem::new(
                    file,
                    &format!("{pre}authorityKeyIdentifier"),
                    format!("is not the subjectKeyIdentifier of {}", ca.file),
                )
                .expected(hex::encode(ski))
                .got(hex::encode(aki)),
            );
        }
        if child.not_after > ca.cert.not_after {
            self.add(
                Problem::new(
                    file,
                    &format!("{pre}validity"),
                    format!("ends after its issuer {}", ca.file),
                )
                .expected(format!("notAfter <= {}", utc(ca.cert.not_after)))
                .got(utc(child.not_after)),
            );
        }
    }

    /// The root: a self-signed CA, valid now. A root given with `--root`
    /// may be another certificate for the same key and subject (one of them
    /// reissued the other): both anchor the same chains.
    pub(super) fn root(&mut self, file: &str, c: &Cert, given: Option<&Cert>) {
        let same_key = |g: &Cert| {
            g.subject_der == c.subject_der && matches!((&g.key, &c.key), (Ok(a), Ok(b)) if a == b)
        };
        if let Some(g) = given
            && g.der != c.der
            && !same_key(g)
        {
            self.add(
                Problem::new(
                    file,
                    "certificates",
                    "differs from the root given with --root (another key or subject)",
                )
                .expected(short_hash(&g.der))
                .got(short_hash(&c.der)),
            );
        }
        if !c.self_issued() {
            self.add(
                Problem::new(file, "issuer", "the root is not self-issued")
                    .expected(c.subject.clone())
                    .got(c.issuer.clone()),
            );
        } else if let Err(e) = c.signed_by(c) {
            self.add(Problem::new(
                file,
                "signature",
                format!("the root's self-signature does not verify: {e}"),
            ));
        }
        self.ca_basics(file, c);
        self.validity(file, "", c);
    }

    pub(super) fn ca_basics(&mut self, file: &str, c: &Cert) {
        if let Some(e) = &c.bad_extension {
            self.add(Problem::new(
                file,
                "extensions",
                format!("does not decode: {e}"),
            ));
        }
        if !c.is_ca() {
            let got = if c.basic_constraints.is_some() {
                "CA:FALSE"
            } else {
                "no basicConstraints"
            };
            self.add(
                Problem::new(file, "basicConstraints", "not a CA certificate")
                    .expected("CA:TRUE")
                    .got(got),
            );
        }
        match c.key_usage {
            Some(ku) if ku.contains(KeyUsages::KeyCertSign) => {}
            Some(ku) => self.add(
                Problem::new(file, "keyUsage", "cannot sign certificates")
                    .expected("keyCertSign")
                    .got(ku_names(ku)),
            ),
            None => self.add(Problem::new(file, "keyUsage", "missing").expected("keyCertSign")),
        }
        if let Err(e) = &c.key {
            self.add(Problem::new(file, "publicKey", e.clone()));
        }
    }

    /// An intermediate (a node's CA file or OUT/cas/*): a CA, not the root,
    /// issued by the root when known, with the plan's subject.
    pub(super) fn intermediate(
        &mut self,
        file: &str,
        c: &Cert,
        role: CaRole,
        root: Option<&CaRef<'_>>,
    ) {
        self.ca_basics(file, c);
        self.validity(file, "", c);
        if let Some(want) = self.plan.and_then(|p| p.ca_subjects.get(&role))
            && want.to_der().ok().as_deref() != Some(c.subject_der.as_slice())
        {
            self.add(
                Problem::new(
                    file,
                    "subject",
                    format!("not the plan's {} CA", role.name()),
                )
                .expected(want.to_string())
                .got(c.subject.clone()),
            );
        }
        if let Some(r) = root {
            let same_key = matches!((&c.key, &r.cert.key), (Ok(a), Ok(b)) if a == b);
            if c.der == r.cert.der || same_key {
                self.add(Problem::new(
                    file,
                    "certificates",
                    format!("is the root ({}); a CA file holds only its intermediate, or every domain trusts every other", r.file),
                ));
            } else {
                self.chains_to(file, "", c, r);
            }
        }
    }
}
