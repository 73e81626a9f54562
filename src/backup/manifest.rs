//! What a backup writes, pure: the manifest in OUT's `backup/` (public: the
//! check value, the threshold, the commitments and each wrapped key) and a
//! custodian's share file (secret: one share, with the public facts that
//! let its holder check it).

use serde::{Deserialize, Serialize};

use super::share::{Commitments, ShareError, ShareText};

/// Label of the trusted wrap key on the token.
pub const WRAP_LABEL: &str = "ceremony-wrap-key";

/// `backup/backup.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub ceremony: String,
    pub wrap_key_label: String,
    /// How the keys are wrapped: CKM_AES_KEY_WRAP_PAD (RFC 5649).
    pub mechanism: String,
    /// The wrap key's check value, hex (never the key).
    pub check_value: String,
    pub threshold: usize,
    /// Share n (from 1) is the n-th custodian's.
    pub custodians: Vec<String>,
    /// Feldman commitments, hex SEC1 points: any share is checked with them.
    pub commitments: Vec<String>,
    pub keys: Vec<BackedUpKey>,
}

/// One wrapped CA key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackedUpKey {
    /// root, kubernetes, etcd, front-proxy.
    pub role: String,
    pub label: String,
    /// CKA_ID, hex.
    pub id: String,
    pub key_type: String,
    /// Paths relative to OUT.
    pub blob: String,
    pub blob_sha256: String,
    pub certificate: String,
    pub public_key: String,
    /// SHA-256 of the SubjectPublicKeyInfo DER.
    pub spki_sha256: String,
}

impl Manifest {
    pub fn commitments(&self) -> Result<Commitments, String> {
        self.commitments
            .iter()
            .map(|c| hex::decode(c).map_err(|_| format!("commitment {c:?} is not hex")))
            .collect::<Result<Vec<_>, _>>()
            .map(Commitments)
    }
}

/// The facts a share file carries besides the share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareFile {
    pub ceremony: String,
    pub custodian: String,
    pub count: usize,
    pub threshold: usize,
    pub check_value: String,
    pub share: ShareText,
    pub commitments: Commitments,
}

const HEADER: &str = "# ceremony wrap-key share: secret. Copy the share-text line onto paper; keep both apart from the token.";

impl ShareFile {
    /// The file's text (its `share-text` line is what the custodian copies).
    pub fn render(&self) -> zeroize::Zeroizing<String> {
        let mut s = zeroize::Zeroizing::new(String::new());
        s.push_str(HEADER);
        s.push('\n');
        s.push_str(&format!("ceremony: {}\n", self.ceremony));
        s.push_str(&format!("custodian: {}\n", self.custodian));
        s.push_str(&format!(
            "share: {} of {}\nthreshold: {}\ncheck-value: {}\n",
            self.share.number, self.count, self.threshold, self.check_value
        ));
        s.push_str("share-text: ");
        s.push_str(&self.share.text());
        s.push('\n');
        for c in &self.commitments.0 {
            s.push_str(&format!("commitment: {}\n", hex::encode(c)));
        }
        s
    }

    /// Reads a share file back: the share (checksum checked) and its facts.
    pub fn parse(text: &str) -> Result<ShareFile, String> {
        let mut fields: Vec<(&str, &str)> = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once(':')
                .ok_or("a line is not `name: value`: not a share file")?;
            fields.push((k.trim(), v.trim()));
        }
        let one = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
                .ok_or(format!("has no `{name}:` line: not a share file"))
        };
        let number_of = |name: &str| -> Result<usize, String> {
            let v = one(name)?;
            v.split_whitespace()
                .last()
                .and_then(|n| n.parse().ok())
                .ok_or(format!("`{name}: {v}` is not a number"))
        };
        let share = ShareText::parse(one("share-text")?)
            .map_err(|e: ShareError| format!("its share-text {e}"))?;
        let commitments = fields
            .iter()
            .filter(|(k, _)| *k == "commitment")
            .map(|(_, v)| hex::decode(v).map_err(|_| "a commitment is not hex".to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ShareFile {
            ceremony: one("ceremony")?.to_string(),
            custodian: one("custodian")?.to_string(),
            count: number_of("share")?,
            threshold: number_of("threshold")?,
            check_value: one("check-value")?.to_string(),
            share,
            commitments: Commitments(commitments),
        })
    }
}

/// The file name of share `n` in the shares directory.
pub fn share_file_name(n: u8) -> String {
    format!("share-{n}.txt")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::share::{key_from_random, split};

    #[test]
    fn a_share_file_reads_back_as_written() {
        let key = key_from_random(&[9; 32]).unwrap();
        let (shares, commitments) = split(&key, 2, 3).unwrap();
        let f = ShareFile {
            ceremony: "c1".into(),
            custodian: "Carol".into(),
            count: 3,
            threshold: 2,
            check_value: "00112233aabbccdd".into(),
            share: shares[1].clone(),
            commitments,
        };
        let text = f.render();
        assert!(text.contains("share: 2 of 3\n"), "{}", *text);
        assert_eq!(ShareFile::parse(&text).unwrap(), f);
        let one_off = text.replacen("share-text: 02", "share-text: 03", 1);
        assert_eq!(
            ShareFile::parse(&one_off).unwrap_err(),
            "its share-text does not match its checksum: a character is mistyped"
        );
        assert_eq!(
            ShareFile::parse("hello").unwrap_err(),
            "a line is not `name: value`: not a share file"
        );
    }
}
