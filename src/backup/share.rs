//! The wrap key's shares, pure: split with Feldman verifiable secret sharing
//! over P-256 (each share checkable against public commitments), combined
//! again, and written as text a custodian copies onto paper and types back.
//!
//! A share's text is 74 hex digits: the share's number (2), its value (64)
//! and a checksum (8, the first 4 bytes of a SHA-256 over number and value),
//! shown in groups of four. Blanks and dashes are ignored when it is read,
//! so a typed share may be grouped as on paper. The checksum catches a
//! mistyped character; the commitments catch a share of another backup.

use p256::elliptic_curve::ff::PrimeField;
use p256::{ProjectivePoint, Scalar};
use sha2::{Digest, Sha256};
use vsss_rs::{
    DefaultShare, FeldmanVerifierSet, IdentifierPrimeField, ReadableShareSet, ShareElement,
    ShareVerifierGroup,
};
use zeroize::Zeroizing;

type Share = DefaultShare<IdentifierPrimeField<Scalar>, IdentifierPrimeField<Scalar>>;
type Verifier = ShareVerifierGroup<ProjectivePoint>;

/// Bytes of the wrap key (AES-256).
pub const KEY_LEN: usize = 32;
/// Hex digits of a share's text: number, value, checksum.
const TEXT_HEX: usize = 2 + 2 * KEY_LEN + 8;

/// One custodian's share: its number (1 to 255) and its value.
#[derive(Clone, PartialEq, Eq)]
pub struct ShareText {
    pub number: u8,
    value: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for ShareText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the value: a share in a log is a share lost.
        write!(f, "ShareText {{ number: {}, .. }}", self.number)
    }
}

/// Why a share or a set of shares cannot rebuild the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error("is {got} hex digits long, a share has {TEXT_HEX}: a digit is missing or extra")]
    Length { got: usize },
    #[error("holds {0:?}, which is not a hex digit (0-9, a-f)")]
    NotHex(char),
    #[error("does not match its checksum: a character is mistyped")]
    Checksum,
    #[error("has number 0, which no share has")]
    NumberZero,
    #[error("is not a share of this backup (it fails the backup's commitments)")]
    NotOfThisBackup,
    #[error("repeats share {0}")]
    Duplicate(u8),
}

/// The public Feldman commitments of a split: with them any share is
/// checked, and none of the key is revealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commitments(pub Vec<Vec<u8>>);

/// The scalar a 32-byte random draw is, when it is one (below the group
/// order and not zero); the caller draws again otherwise (a chance of about
/// 2^-32 for P-256).
pub fn key_from_random(random: &[u8]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    let bytes: [u8; KEY_LEN] = random.try_into().ok()?;
    let bytes = Zeroizing::new(bytes);
    let s: Option<Scalar> = Scalar::from_repr((*bytes).into()).into();
    match s {
        Some(s) if s != Scalar::ZERO => Some(bytes),
        _ => None,
    }
}

/// The key check value: 8 bytes of a SHA-256 over a fixed prefix and the
/// key. It tells a wrong reconstruction from the right one and reveals
/// nothing usable of a 256-bit random key.
pub fn check_value(key: &[u8]) -> [u8; 8] {
    let d = Sha256::new()
        .chain_update(b"ceremony wrap key check value v1\0")
        .chain_update(key)
        .finalize();
    let mut out = [0; 8];
    out.copy_from_slice(&d[..8]);
    out
}

fn scalar_of(bytes: &[u8; KEY_LEN]) -> Option<Scalar> {
    Scalar::from_repr((*bytes).into()).into()
}

/// Splits `key` (from [`key_from_random`]) into `count` shares, any
/// `threshold` of which rebuild it, numbered 1 to `count`.
pub fn split(
    key: &[u8; KEY_LEN],
    threshold: usize,
    count: usize,
) -> Result<(Vec<ShareText>, Commitments), String> {
    let secret = scalar_of(key).ok_or("the wrap key is not a P-256 scalar")?;
    let secret = IdentifierPrimeField(secret);
    let mut rng = rand::rng();
    let (shares, verifiers) = vsss_rs::feldman::split_secret::<Share, Verifier>(
        threshold, count, &secret, None, &mut rng,
    )
    .map_err(|e| format!("splitting the wrap key failed: {e}"))?;
    let mut out = Vec::with_capacity(shares.len());
    for s in &shares {
        let id = s.identifier.0.to_repr();
        let number = id[KEY_LEN - 1];
        if number == 0 || id[..KEY_LEN - 1].iter().any(|b| *b != 0) {
            return Err("a share got an identifier outside 1..=255".into());
        }
        let mut value = Zeroizing::new([0u8; KEY_LEN]);
        value.copy_from_slice(&s.value.0.to_repr());
        out.push(ShareText { number, value });
    }
    let commitments = verifiers.iter().map(|v| v.to_vec()).collect();
    Ok((out, Commitments(commitments)))
}

impl ShareText {
    /// The text a custodian copies: the 74 hex digits in groups of four
    /// (the first group is the number and two digits of the value).
    pub fn text(&self) -> String {
        let mut raw = Zeroizing::new(Vec::with_capacity(TEXT_HEX / 2));
        raw.push(self.number);
        raw.extend_from_slice(&*self.value);
        raw.extend_from_slice(&checksum(self.number, &self.value));
        let hex = Zeroizing::new(hex::encode(&*raw));
        let groups: Vec<&str> = hex
            .as_bytes()
            .chunks(4)
            .filter_map(|c| std::str::from_utf8(c).ok())
            .collect();
        groups.join("-")
    }

    /// Reads a share's text back (blanks and dashes ignored, any case),
    /// checking its checksum.
    pub fn parse(text: &str) -> Result<ShareText, ShareError> {
        let digits: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .map(|c| c.to_ascii_lowercase())
                .collect(),
        );
        if let Some(c) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(ShareError::NotHex(c));
        }
        if digits.len() != TEXT_HEX {
            return Err(ShareError::Length { got: digits.len() });
        }
        let raw = Zeroizing::new(hex::decode(&*digits).map_err(|_| ShareError::Checksum)?);
        let number = raw[0];
        let mut value = Zeroizing::new([0u8; KEY_LEN]);
        value.copy_from_slice(&raw[1..1 + KEY_LEN]);
        if raw[1 + KEY_LEN..] != checksum(number, &value) {
            return Err(ShareError::Checksum);
        }
        if number == 0 {
            return Err(ShareError::NumberZero);
        }
        Ok(ShareText { number, value })
    }

    fn to_share(&self) -> Result<Share, ShareError> {
        let mut id = [0u8; KEY_LEN];
        id[KEY_LEN - 1] = self.number;
        let identifier = scalar_of(&id).ok_or(ShareError::NumberZero)?;
        let value = scalar_of(&self.value).ok_or(ShareError::NotOfThisBackup)?;
        Ok(DefaultShare {
            identifier: IdentifierPrimeField(identifier),
            value: IdentifierPrimeField(value),
        })
    }

    /// Whether this share is one of the split the commitments describe.
    pub fn verify(&self, commitments: &Commitments) -> Result<(), ShareError> {
        let verifiers = verifiers_of(commitments).ok_or(ShareError::NotOfThisBackup)?;
        let share = self.to_share()?;
        FeldmanVerifierSet::<Share, Verifier>::verify_share(&verifiers, &share)
            .map_err(|_| ShareError::NotOfThisBackup)
    }
}

fn checksum(number: u8, value: &[u8; KEY_LEN]) -> [u8; 4] {
    let d = Sha256::new()
        .chain_update(b"ceremony share v1\0")
        .chain_update([number])
        .chain_update(value)
        .finalize();
    [d[0], d[1], d[2], d[3]]
}

fn verifiers_of(c: &Commitments) -> Option<Vec<Verifier>> {
    c.0.iter().map(|v| Verifier::from_slice(v).ok()).collect()
}

/// How many shares rebuild the key: the commitments are one per
/// coefficient, plus the generator.
pub fn threshold_of(c: &Commitments) -> usize {
    c.0.len().saturating_sub(1)
}

/// Rebuilds the key from shares already verified (at least the threshold,
/// each once). The caller checks the result against the check value.
pub fn combine(shares: &[ShareText]) -> Result<Zeroizing<[u8; KEY_LEN]>, ShareError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut set = Vec::with_capacity(shares.len());
    for s in shares {
        if !seen.insert(s.number) {
            return Err(ShareError::Duplicate(s.number));
        }
        set.push(s.to_share()?);
    }
    let secret = set.combine().map_err(|_| ShareError::NotOfThisBackup)?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    out.copy_from_slice(&secret.0.to_repr());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Zeroizing<[u8; KEY_LEN]> {
        key_from_random(&[0x42; KEY_LEN]).unwrap()
    }

    #[test]
    fn any_threshold_of_the_shares_rebuilds_the_key() {
        let (shares, c) = split(&key(), 3, 5).unwrap();
        assert_eq!(shares.len(), 5);
        assert_eq!(threshold_of(&c), 3);
        assert_eq!(
            shares.iter().map(|s| s.number).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        for s in &shares {
            s.verify(&c).unwrap();
            assert_eq!(ShareText::parse(&s.text()).unwrap(), *s);
        }
        for pick in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let some: Vec<_> = pick.iter().map(|&i| shares[i].clone()).collect();
            assert_eq!(*combine(&some).unwrap(), *key());
        }
        // Fewer than the threshold rebuild something else: the check value tells.
        let two = combine(&shares[..2]).unwrap();
        assert_ne!(check_value(&*two), check_value(&*key()));
        assert_eq!(
            combine(&[shares[0].clone(), shares[0].clone(), shares[1].clone()]),
            Err(ShareError::Duplicate(1))
        );
    }

    #[test]
    fn one_changed_character_is_caught_wherever_it_is() {
        let (shares, _) = split(&key(), 2, 3).unwrap();
        let text = shares[1].text();
        assert_eq!(text.len(), 74 + 18, "{text}");
        for (i, c) in text.char_indices().filter(|(_, c)| *c != '-') {
            let other = if c == '0' { '1' } else { '0' };
            let mut bad = text.clone();
            bad.replace_range(i..i + 1, &other.to_string());
            assert_eq!(ShareText::parse(&bad), Err(ShareError::Checksum), "at {i}");
        }
        assert_eq!(
            ShareText::parse(&text[1..]),
            Err(ShareError::Length { got: 73 })
        );
        assert_eq!(
            ShareText::parse(&text.replace(['a', '0'], "g")),
            Err(ShareError::NotHex('g'))
        );
        // As typed: upper case, blanks instead of dashes.
        let typed = text.to_uppercase().replace('-', " ");
        assert_eq!(ShareText::parse(&typed).unwrap(), shares[1]);
        // The Debug form never shows the value.
        assert_eq!(format!("{:?}", shares[1]), "ShareText { number: 2, .. }");
    }

    #[test]
    fn a_share_of_another_backup_fails_the_commitments() {
        let (shares, c) = split(&key(), 2, 3).unwrap();
        let other = key_from_random(&[0x17; KEY_LEN]).unwrap();
        let (theirs, _) = split(&other, 2, 3).unwrap();
        shares[0].verify(&c).unwrap();
        assert_eq!(theirs[0].verify(&c), Err(ShareError::NotOfThisBackup));
    }

    #[test]
    fn random_draws_above_the_order_are_refused() {
        assert!(key_from_random(&[0xff; KEY_LEN]).is_none());
        assert!(key_from_random(&[0; KEY_LEN]).is_none());
        assert!(key_from_random(&[1; 31]).is_none());
        assert_eq!(check_value(&[1; 32]), check_value(&[1; 32]));
        assert_ne!(check_value(&[1; 32]), check_value(&[2; 32]));
    }
}
