//! OUT's `backup/` (plan `[backup]`): the manifest, each wrapped key as the
//! manifest records it, each certificate the CA's of this output, each
//! public key its certificate's; and no custodian's share anywhere in OUT.

use super::*;
use crate::backup::manifest::Manifest;
use crate::bundle::layout;
use crate::verify::tree::Content;

impl<'a> Ctx<'a> {
    pub(super) fn backup(&mut self) {
        // A share file's line, wherever it is: the shares never go into OUT.
        let shares: Vec<String> = self
            .tree
            .entries
            .iter()
            .filter(|(_, e)| {
                matches!(&e.content, Content::File(b) if b.windows(12).any(|w| w == b"share-text: "))
            })
            .map(|(p, _)| p.clone())
            .collect();
        for p in shares {
            self.add(Problem::new(
                &p,
                "file",
                "holds a custodian's share: shares never go into the ceremony's output",
            ));
        }
        if !self.tree.is_dir(layout::BACKUP) {
            return;
        }
        let m: Manifest = match self
            .tree
            .file(layout::BACKUP_MANIFEST)
            .map(serde_json::from_slice)
        {
            None => {
                self.add(Problem::new(layout::BACKUP_MANIFEST, "file", "missing"));
                return;
            }
            Some(Err(e)) => {
                self.add(Problem::new(
                    layout::BACKUP_MANIFEST,
                    "manifest",
                    format!("not a backup manifest: {e}"),
                ));
                return;
            }
            Some(Ok(m)) => m,
        };
        if !m.keys.iter().any(|k| k.role == "root") {
            self.add(Problem::new(
                layout::BACKUP_MANIFEST,
                "keys",
                "the root is not backed up",
            ));
        }
        for k in &m.keys {
            let Some(role) = [CaRole::Root]
                .into_iter()
                .chain(CaRole::INTERMEDIATES)
                .find(|r| r.name() == k.role)
            else {
                self.add(
                    Problem::new(layout::BACKUP_MANIFEST, "keys", "an unknown CA")
                        .got(k.role.clone()),
                );
                continue;
            };
            match self.tree.file(&k.blob) {
                None => self.add(Problem::new(&k.blob, "file", "missing")),
                Some(b) => {
                    let got = hex::encode(crate::x509::sha256(b));
                    if got != k.blob_sha256 {
                        self.add(
                            Problem::new(&k.blob, "SHA-256", "is not the manifest's")
                                .expected(k.blob_sha256.clone())
                                .got(got),
                        );
                    }
                }
            }
            let ca_file = match role {
                CaRole::Root => layout::ROOT_CA.to_string(),
                r => layout::ca_file(r),
            };
            let first = |b: Option<&[u8]>| {
                b.and_then(|b| CertFile::parse(b).ok())
                    .and_then(|f| f.certs.into_iter().next())
            };
            let cert = first(self.tree.file(&k.certificate));
            let ca = first(self.tree.file(&ca_file));
            let Some(cert) = cert else {
                self.add(Problem::new(
                    &k.certificate,
                    "certificate",
                    "missing or not PEM",
                ));
                continue;
            };
            if ca.as_ref().is_some_and(|c| c.der != cert.der) {
                self.add(Problem::new(
                    &k.certificate,
                    "certificate",
                    format!("is not {ca_file}"),
                ));
            }
            let spki = der::Encode::to_der(cert.cert.tbs_certificate().subject_public_key_info())
                .unwrap_or_default();
            let public = self
                .tree
                .file(&k.public_key)
                .and_then(|b| crate::pem::pem_blocks(&String::from_utf8_lossy(b)).ok())
                .and_then(|b| b.into_iter().next())
                .map(|b| b.der.to_vec());
            if public.as_deref() != Some(spki.as_slice()) {
                self.add(Problem::new(
                    &k.public_key,
                    "public key",
                    format!("is not the key of {}", k.certificate),
                ));
            }
            if hex::encode(crate::x509::sha256(&spki)) != k.spki_sha256 {
                self.add(Problem::new(
                    layout::BACKUP_MANIFEST,
                    "keys",
                    format!(
                        "{}'s public key is not the one its certificate holds",
                        k.label
                    ),
                ));
            }
        }
    }
}
