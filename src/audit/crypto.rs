//! age encryption and decryption of audit records: the plan's recipients
//! (age X25519 `age1…`, `ssh-ed25519 …`, `ssh-rsa …`) and the identities an
//! auditor gives `audit verify`.
//!
//! Only complete age files are written here (`finish()` before the bytes are
//! used): the stream writer buffers 64 KiB and writes no partial chunk, so a
//! stream left open when the process dies loses everything in it
//! (measured with age 0.12).

use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

use super::AuditError;

/// Recipients to encrypt to.
pub struct Recipients(Vec<Box<dyn age::Recipient + Send>>);

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipients({})", self.0.len())
    }
}

impl Recipients {
    /// Parses the plan's `[audit] recipients` (validated already; this is the
    /// same parse, so a failure here is internal).
    pub fn parse(list: &[String]) -> Result<Recipients, AuditError> {
        let mut v: Vec<Box<dyn age::Recipient + Send>> = Vec::new();
        for (i, r) in list.iter().enumerate() {
            if let Ok(x) = age::x25519::Recipient::from_str(r) {
                v.push(Box::new(x));
            } else if let Ok(s) = age::ssh::Recipient::from_str(r) {
                v.push(Box::new(s));
            } else {
                return Err(AuditError::Encrypt {
                    what: format!("audit.recipients[{i}] is not an age or SSH recipient"),
                });
            }
        }
        if v.is_empty() {
            return Err(AuditError::Encrypt {
                what: "the plan names no audit recipient".into(),
            });
        }
        Ok(Recipients(v))
    }

    /// Adds one more X25519 recipient (the journal-local one).
    pub fn with(mut self, r: age::x25519::Recipient) -> Recipients {
        self.0.push(Box::new(r));
        self
    }

    /// An age stream to these recipients, written into `out` as it goes:
    /// the file is complete once the returned writer's `finish()` returned.
    pub fn stream<'w>(
        &self,
        out: &'w mut dyn Write,
    ) -> Result<age::stream::StreamWriter<&'w mut dyn Write>, AuditError> {
        let fail = |what: String| AuditError::Encrypt { what };
        age::Encryptor::with_recipients(self.0.iter().map(|r| r.as_ref() as &dyn age::Recipient))
            .map_err(|e| fail(e.to_string()))?
            .wrap_output(out)
            .map_err(|e| fail(e.to_string()))
    }

    /// One complete age file of `plaintext`.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, AuditError> {
        let fail = |what: String| AuditError::Encrypt { what };
        let enc = age::Encryptor::with_recipients(
            self.0.iter().map(|r| r.as_ref() as &dyn age::Recipient),
        )
        .map_err(|e| fail(e.to_string()))?;
        let mut out = Vec::with_capacity(plaintext.len() + 512);
        let mut w = enc.wrap_output(&mut out).map_err(|e| fail(e.to_string()))?;
        w.write_all(plaintext).map_err(|e| fail(e.to_string()))?;
        w.finish().map_err(|e| fail(e.to_string()))?;
        Ok(out)
    }
}

/// Identities to decrypt with.
pub struct Identities(Vec<Box<dyn age::Identity>>);

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identities({}, [secret keys elided])", self.0.len())
    }
}

/// Why a decryption failed: the header (no identity matches, not an age
/// file) or the payload (damaged or truncated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptFailure {
    Header(String),
    Payload(String),
}

impl Identities {
    pub fn one(id: age::x25519::Identity) -> Identities {
        Identities(vec![Box::new(id)])
    }

    /// An age identity file (`AGE-SECRET-KEY-1…` lines, `#` comments), or an
    /// unencrypted OpenSSH private key (ed25519 or RSA).
    pub fn from_file(path: &Path) -> Result<Identities, AuditError> {
        let bad = |what: String| AuditError::Identity {
            path: path.to_path_buf(),
            what,
        };
        let bytes = crate::fsread::read_regular(
            path,
            crate::fsread::cap::IDENTITY,
            crate::fsread::Links::Follow,
        )
        .map_err(|e| bad(e.why()))?;
        if let Ok(f) = age::IdentityFile::from_buffer(&bytes[..]) {
            let ids = f.into_identities().map_err(|e| bad(e.to_string()))?;
            if !ids.is_empty() {
                return Ok(Identities(
                    ids.into_iter()
                        .map(|i| i as Box<dyn age::Identity>)
                        .collect(),
                ));
            }
        }
        match age::ssh::Identity::from_buffer(&bytes[..], None) {
            Ok(age::ssh::Identity::Unencrypted(k)) => {
                Ok(Identities(vec![Box::new(age::ssh::Identity::from(k))]))
            }
            Ok(age::ssh::Identity::Encrypted(_)) => Err(bad(
                "a passphrase-protected SSH key is not supported here; decrypt with `age -d -i` instead, or give a copy without a passphrase"
                    .into(),
            )),
            Ok(age::ssh::Identity::Unsupported(_)) => {
                Err(bad("an SSH key of a type age does not support".into()))
            }
            // Never echo the file's contents: it is a secret key.
            Err(_) => Err(bad(
                "neither an age identity file nor an OpenSSH private key".into(),
            )),
        }
    }

    /// Decrypts a whole age file; any failure is an error.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, DecryptFailure> {
        let (plain, err) = self.decrypt_partial(ciphertext)?;
        match err {
            None => Ok(plain),
            Some(e) => Err(DecryptFailure::Payload(e)),
        }
    }

    /// Decrypts as far as the payload authenticates: the plaintext of every
    /// chunk that checked, and the error that stopped it (a truncated or
    /// damaged file), if any. Header failures are errors.
    pub fn decrypt_partial(
        &self,
        ciphertext: &[u8],
    ) -> Result<(Vec<u8>, Option<String>), DecryptFailure> {
        let d = age::Decryptor::new_buffered(ciphertext)
            .map_err(|e| DecryptFailure::Header(e.to_string()))?;
        let mut r = d
            .decrypt(self.0.iter().map(|i| i.as_ref()))
            .map_err(|e| DecryptFailure::Header(e.to_string()))?;
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok((out, None)),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Ok((out, Some(e.to_string()))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fsread::fifo_in as fifo;

    /// An identity file is read bounded: a FIFO or a device is refused at
    /// once, a huge file by its size.
    #[test]
    fn identity_files_are_bounded_regular_files() {
        let d = tempfile::tempdir().unwrap();
        let big = d.path().join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(2 << 30)
            .unwrap();
        let said = |p: &Path| match Identities::from_file(p) {
            Err(e) => e.to_string(),
            Ok(_) => "read".into(),
        };
        let f = fifo(d.path());
        assert_eq!(
            said(&f),
            format!("identity file {}: not a regular file", f.display())
        );
        assert_eq!(
            said(Path::new("/dev/zero")),
            "identity file /dev/zero: not a regular file"
        );
        assert_eq!(
            said(&big),
            format!(
                "identity file {}: larger than 64 KiB (the most this tool reads of such a file)",
                big.display()
            )
        );
    }

    #[test]
    fn round_trip_to_several_recipients() {
        let a = age::x25519::Identity::generate();
        let b = age::x25519::Identity::generate();
        let r = Recipients::parse(&[a.to_public().to_string()])
            .unwrap()
            .with(b.to_public());
        let c = r.encrypt(b"hello").unwrap();
        assert!(c.starts_with(b"age-encryption.org/v1\n"));
        assert_eq!(Identities::one(a).decrypt(&c).unwrap(), b"hello");
        assert_eq!(Identities::one(b).decrypt(&c).unwrap(), b"hello");
        let other = Identities::one(age::x25519::Identity::generate());
        assert!(matches!(other.decrypt(&c), Err(DecryptFailure::Header(_))));
    }

    #[test]
    fn a_truncated_file_fails_in_the_payload() {
        let a = age::x25519::Identity::generate();
        let r = Recipients::parse(&[a.to_public().to_string()]).unwrap();
        let c = r.encrypt(&vec![b'x'; 200_000]).unwrap();
        let ids = Identities::one(a);
        let (plain, err) = ids.decrypt_partial(&c[..c.len() - 10]).unwrap();
        assert!(err.is_some());
        // Whole 64 KiB chunks that authenticated are kept.
        assert_eq!(plain.len() % 65536, 0);
        assert!(plain.len() >= 65536);
    }

    #[test]
    fn recipients_must_parse() {
        assert!(Recipients::parse(&["nope".into()]).is_err());
        assert!(Recipients::parse(&[]).is_err());
    }
}
