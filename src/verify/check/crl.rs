//! CRLs: OUT's `crls/<role>-ca.crl` and a control-plane node's etcd CRL,
//! each checked against its CA; every certificate a CRL lists is an error
//! wherever the bundle holds it.

use super::*;
use crate::x509::crl;

/// A certificate a CRL lists: its issuer's name (DER) and serial.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct RevokedKey {
    pub issuer_der: Vec<u8>,
    pub serial: Vec<u8>,
}

impl<'a> Ctx<'a> {
    /// One CRL file, checked against `ca`; its entries join the revoked.
    pub(super) fn crl_file(&mut self, file: &str, ca: Option<&CaRef<'_>>) {
        let Some(bytes) = self.tree.file(file) else {
            return;
        };
        let read = match crl::read_pem(bytes) {
            Ok(r) => r,
            Err(e) => {
                self.add(Problem::new(file, "crl", e));
                return;
            }
        };
        if let Some(ca) = ca {
            let subject = ca.cert.cert.tbs_certificate().subject();
            if &read.issuer != subject {
                self.add(
                    Problem::new(file, "issuer", format!("not {}", ca.file))
                        .expected(ca.cert.subject.clone())
                        .got(read.issuer.to_string()),
                );
            } else if let Err(e) = crl::check(
                &read.der,
                None,
                ca.cert.cert.tbs_certificate().subject_public_key_info(),
                None,
            ) {
                self.add(Problem::new(
                    file,
                    "signature",
                    format!("{e} ({})", ca.file),
                ));
            }
        }
        match read.next_update {
            Some(t) if t < self.now => self.add(
                Problem::new(
                    file,
                    "nextUpdate",
                    "has passed: a client that checks CRLs refuses every certificate of this CA; sign the CRLs again in a continuing ceremony",
                )
                .got(utc(t)),
            ),
            None => self.add(Problem::new(file, "nextUpdate", "missing")),
            _ => {}
        }
        let issuer_der = read.issuer.to_der().unwrap_or_default();
        for e in read.entries {
            self.revoked.insert(
                RevokedKey {
                    issuer_der: issuer_der.clone(),
                    serial: e.serial,
                },
                (file.to_string(), e.reason),
            );
        }
    }

    /// A problem when a CRL read so far lists `c`.
    pub(super) fn not_revoked(&mut self, file: &str, pre: &str, c: &Cert) {
        let key = RevokedKey {
            issuer_der: c.issuer_der.clone(),
            serial: crl::serial_digits(c.cert.tbs_certificate().serial_number().as_bytes())
                .to_vec(),
        };
        if let Some((crl_file, reason)) = self.revoked.get(&key).cloned() {
            self.add(
                Problem::new(
                    file,
                    &format!("{pre}serial"),
                    format!("revoked on {crl_file} ({reason}): issue it again and remove this one"),
                )
                .got(hex::encode_upper(&key.serial)),
            );
        }
    }
}
