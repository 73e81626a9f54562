//! How bytes and times are shown: one formatter for each, so a fingerprint
//! read aloud at the ceremony, printed in the transcript and shown by
//! `audit show` is the same string.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Characters that change how text around them is shown rather than showing
/// themselves: controls (C0, DEL, C1: cursor moves, erasures, colours) and
/// the bidirectional marks, embeddings, overrides and isolates that reorder
/// what a reader sees. The plan refuses them; what comes from elsewhere is
/// shown with them escaped ([`shown`]).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` as it may be put on a terminal or into a written record: every
/// [`is_unsafe_char`] (newlines and tabs too) as `\u{..}`, so a string from
/// outside (a path, a file's content, a token's label) cannot move the
/// cursor, forge a line or reorder what is read. Borrowed when nothing needs
/// escaping; applying it twice changes nothing more.
pub fn shown(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text of many lines, each [`shown`]: what a command prints on stdout
/// when it quotes what it read (a report, a timeline).
pub fn shown_lines(text: &str) -> String {
    text.lines().map(|l| format!("{}\n", shown(l))).collect()
}

/// A path, [`shown`].
pub fn shown_path(p: &std::path::Path) -> String {
    shown(&p.display().to_string()).into_owned()
}

/// Groups of four upper-case hex digits, easy to read aloud and compare on
/// paper: `3A7F 09C2 …`.
pub fn fingerprint(bytes: &[u8]) -> String {
    let hex = hex::encode_upper(bytes);
    hex.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or("????"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Upper-case hex with a colon between bytes, as openssl prints serials and
/// fingerprints.
pub fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A count with thousands separated (`100,000`), for screens people read.
pub fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Lower-case hex, as `hex::encode` writes it, without building the string
/// a char at a time (several hashes and a serial go into every leaf's
/// record).
pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; 2 * bytes.len()];
    // The buffer is exactly twice the input: this cannot fail.
    let _ = hex::encode_to_slice(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Seconds since the epoch, negative before it.
pub fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn date_time(t: SystemTime) -> Option<der::DateTime> {
    der::DateTime::from_unix_duration(Duration::from_secs(u64::try_from(unix(t)).ok()?)).ok()
}

/// RFC 3339 in UTC to the second, as X.509 times are: `2027-11-23T13:54:53Z`.
/// A time the calendar cannot show (before 1970, past 9999) is `@<seconds>`.
pub fn rfc3339(t: SystemTime) -> String {
    date_time(t).map_or_else(
        || format!("@{}", unix(t)),
        |d| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                d.year(),
                d.month(),
                d.day(),
                d.hour(),
                d.minutes(),
                d.seconds()
            )
        },
    )
}

/// RFC 3339 in UTC with milliseconds, for the audit record's clock:
/// `2026-11-23T17:51:27.123Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    match date_time(UNIX_EPOCH + Duration::from_secs(d.as_secs())) {
        Some(dt) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minutes(),
            dt.seconds(),
            d.subsec_millis()
        ),
        // Past 9999: not a clock a ceremony runs on; keep the raw value.
        None => format!("{}s", d.as_secs()),
    }
}

/// A time for people, to the second: `2026-11-23 17:51:27 UTC`.
pub fn utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    match date_time(UNIX_EPOCH + Duration::from_secs(d.as_secs())) {
        Some(dt) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minutes(),
            dt.seconds()
        ),
        None => format!("{} s after the epoch", d.as_secs()),
    }
}

/// kubeadm's "Jan 02, 2006 15:04 MST", in UTC.
pub fn kubeadm_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    date_time(t).map_or_else(
        || rfc3339(t),
        |d| {
            let m = MONTHS
                .get(usize::from(d.month()).saturating_sub(1))
                .copied()
                .unwrap_or("?");
            format!(
                "{m} {:02}, {:04} {:02}:{:02} UTC",
                d.day(),
                d.year(),
                d.hour(),
                d.minutes()
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separated() {
        for (n, want) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (100_034, "100,034"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(count(n), want);
        }
    }

    #[test]
    fn shown_escapes_controls_and_bidi_only() {
        assert!(matches!(shown("plain text, ünïcode ✓"), Cow::Borrowed(_)));
        assert_eq!(shown("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(shown("line\n## forged"), "line\\u{a}## forged");
        assert_eq!(shown("\r\t\x7f\u{9b}"), "\\u{d}\\u{9}\\u{7f}\\u{9b}");
        assert_eq!(
            shown("abc\u{202e}fed\u{2066}\u{2069}\u{200e}\u{200f}\u{61c}"),
            "abc\\u{202e}fed\\u{2066}\\u{2069}\\u{200e}\\u{200f}\\u{61c}"
        );
        // Escaped text has nothing left to escape.
        let once = shown("x\x1by\u{202d}").into_owned();
        assert_eq!(shown(&once), once.as_str());
        assert!(!once.chars().any(is_unsafe_char));
        assert_eq!(
            shown_path(std::path::Path::new("out\x1b]0;t\x07")),
            "out\\u{1b}]0;t\\u{7}"
        );
    }

    #[test]
    fn fingerprints_group_by_four() {
        assert_eq!(fingerprint(&[0xab, 0xcd, 0xef, 0x01, 0x23]), "ABCD EF01 23");
        assert_eq!(fingerprint(&[]), "");
    }

    #[test]
    fn hex_styles() {
        assert_eq!(colon_hex(&[0x0a, 0xff, 0x10]), "0A:FF:10");
        assert_eq!(hex(&[0x0a, 0xff, 0x10]), "0aff10");
        assert_eq!(hex(&[0xde, 0xad]), hex::encode([0xde, 0xad]));
    }

    #[test]
    fn times() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_456_287_123);
        assert_eq!(rfc3339_millis(t), "2026-11-23T17:51:27.123Z");
        assert_eq!(rfc3339(t), "2026-11-23T17:51:27Z");
        assert_eq!(utc(t), "2026-11-23 17:51:27 UTC");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(5)), "@-5");
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let t = UNIX_EPOCH + Duration::from_secs(1_826_459_693);
        assert_eq!(rfc3339(t), "2027-11-17T13:54:53Z");
        assert_eq!(kubeadm_time(t), "Nov 17, 2027 13:54 UTC");
        assert_eq!(kubeadm_time(UNIX_EPOCH), "Jan 01, 1970 00:00 UTC");
    }
}
