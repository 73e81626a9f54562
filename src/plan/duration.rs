//! Certificate lifetimes as the plan writes them: `<n>y`, `<n>d` or `<n>h`.
//!
//! Deliberately tiny and strict: a year is 365 days exactly, as kubeadm counts
//! (`time.Hour * 24 * 365`), so "10y" here is kubeadm's ten-year CA. General
//! duration crates accept forms ("1 month", fractional years) whose length
//! differs between libraries; a certificate lifetime should not depend on that.

use std::time::Duration;

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;
const YEAR: u64 = 365 * DAY;

/// Parses "20y", "365d", "8760h". Zero, signs, spaces and mixed units are refused.
pub fn parse_lifetime(s: &str) -> Result<Duration, String> {
    let unit_at = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| "needs a unit: y (365 days), d or h, e.g. \"365d\"".to_string())?;
    let (num, unit) = s.split_at(unit_at);
    if num.is_empty() {
        return Err("must start with a number, e.g. \"365d\"".into());
    }
    let n: u64 = num.parse().map_err(|_| "number is too large".to_string())?;
    let secs_per = match unit {
        "y" => YEAR,
        "d" => DAY,
        "h" => HOUR,
        _ => return Err("unit must be y (365 days), d or h, e.g. \"365d\"".into()),
    };
    if n == 0 {
        return Err("must be longer than zero".into());
    }
    let secs = n
        .checked_mul(secs_per)
        .filter(|s| *s <= 200 * YEAR)
        .ok_or_else(|| "must be at most 200y".to_string())?;
    Ok(Duration::from_secs(secs))
}

/// Renders a lifetime the way the plan writes it, choosing the largest exact unit.
pub fn format_lifetime(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(YEAR) {
        format!("{}y", s / YEAR)
    } else if s.is_multiple_of(DAY) {
        format!("{}d", s / DAY)
    } else {
        format!("{}h", s / HOUR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_three_units() {
        assert_eq!(parse_lifetime("10y").unwrap().as_secs(), 10 * 365 * 86400);
        assert_eq!(parse_lifetime("365d").unwrap().as_secs(), 365 * 86400);
        assert_eq!(parse_lifetime("1h").unwrap().as_secs(), 3600);
    }

    #[test]
    fn refuses_sloppy_forms() {
        for bad in [
            "", "10", "y", "0d", "-1d", "1.5y", "10 y", "10Y", "3m", "1y2d", "999999y",
        ] {
            assert!(parse_lifetime(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["20y", "400d", "25h"] {
            assert_eq!(format_lifetime(parse_lifetime(s).unwrap()), s);
        }
    }
}
