//! Subject alternative names as kubeadm writes them into a certificate, and
//! the DNS-name rule they and the plan's node names share.
//!
//! Pure; x509 is below the plan, so the plan parses its SANs with this.

use std::net::IpAddr;
use std::str::FromStr;

/// A SAN as kubeadm puts it in a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
}

impl San {
    /// kubeadm's rule for certSANs: an IP if it parses as one, else a DNS name.
    pub fn parse(s: &str) -> Result<San, String> {
        if let Ok(ip) = IpAddr::from_str(s) {
            return Ok(San::Ip(ip));
        }
        let name = s.strip_prefix("*.").unwrap_or(s);
        // "10.0.0.300" is a valid DNS subdomain but surely a mistyped IP; a
        // top-level label is never all digits (RFC 3696 §2), so refuse it.
        if name.contains('.')
            && name
                .rsplit('.')
                .next()
                .is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(
                "is not a valid IP address, and a DNS name never ends in an all-numeric label"
                    .into(),
            );
        }
        if is_dns_subdomain(name) {
            Ok(San::Dns(s.to_string()))
        } else {
            Err("is neither an IP address nor a valid DNS name".into())
        }
    }
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Dns(d) => write!(f, "DNS:{d}"),
            San::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

/// RFC 1123 subdomain as Kubernetes checks node names: lowercase labels of
/// [a-z0-9-], not starting or ending with '-', at most 63 bytes, 253 in all.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sans_and_names() {
        assert_eq!(
            San::parse("*.example.com").unwrap(),
            San::Dns("*.example.com".into())
        );
        assert!(San::parse("not a name").is_err());
        assert!(is_dns_subdomain("cp-1.example"));
        assert!(!is_dns_subdomain("CP1"));
        assert!(!is_dns_subdomain("-cp"));
    }
}
