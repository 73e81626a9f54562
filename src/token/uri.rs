//! RFC 7512 PKCS#11 URIs that select a token: `pkcs11:token=k8s-root;serial=…`.
//!
//! Only the token-identifying path attributes are accepted. A slot number is
//! never a selector (SoftHSM renumbers slots when a token is initialised), and
//! the PIN-carrying query attributes (`pin-value`, `pin-source`) are refused:
//! a PIN never lives in the plan.

use std::fmt;

/// What a URI asks of a token; every given attribute must match exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenUri {
    pub token: Option<String>,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
}

impl TokenUri {
    /// Parses `pkcs11:attr=value;attr=value`, percent-decoding values (RFC 7512 §2.3).
    pub fn parse(s: &str) -> Result<TokenUri, String> {
        let rest = s
            .strip_prefix("pkcs11:")
            .ok_or("must start with \"pkcs11:\" (RFC 7512)")?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let query_names: Vec<&str> = query
            .unwrap_or("")
            .split('&')
            .filter(|a| !a.is_empty())
            .map(|a| a.split_once('=').map_or(a, |(n, _)| n))
            .collect();
        if query_names
            .iter()
            .any(|n| matches!(*n, "pin-value" | "pin-source"))
        {
            return Err("must not carry a PIN (pin-value/pin-source): \
                        use --pin-file, the prompt or the PIN pad"
                .into());
        }
        if let Some(name) = query_names.first() {
            return Err(format!(
                "query attribute \"{name}\" is not supported; give only token, serial, manufacturer, model"
            ));
        }
        let mut uri = TokenUri::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, raw) = attr
                .split_once('=')
                .ok_or_else(|| format!("attribute \"{attr}\" has no value"))?;
            let value = percent_decode(raw)?;
            let slot = match name {
                "token" => &mut uri.token,
                "serial" => &mut uri.serial,
                "manufacturer" => &mut uri.manufacturer,
                "model" => &mut uri.model,
                "slot-id" | "slot-description" | "slot-manufacturer" => {
                    return Err(format!(
                        "selects by \"{name}\": choose the token by token= or serial=, slots are renumbered"
                    ));
                }
                "library-manufacturer" | "library-description" | "library-version" => continue,
                _ => {
                    return Err(format!(
                        "attribute \"{name}\" is not supported; give only token, serial, manufacturer, model"
                    ));
                }
            };
            if slot.replace(value).is_some() {
                return Err(format!("attribute \"{name}\" is given twice"));
            }
        }
        if uri.token.is_none() && uri.serial.is_none() {
            return Err("must name the token by token= or serial=".into());
        }
        Ok(uri)
    }

    /// The URI as an error may show it: every `pin-value` replaced, so a PIN
    /// put in the plan by mistake is not echoed to the terminal or a log.
    pub fn redact_pin(uri: &str) -> String {
        const KEY: &str = "pin-value=";
        let mut out = String::with_capacity(uri.len());
        let mut rest = uri;
        while let Some(i) = rest.find(KEY) {
            let start = i + KEY.len();
            out.push_str(&rest[..start]);
            out.push_str("(redacted)");
            rest = &rest[rest[start..]
                .find(['&', ';'])
                .map_or(rest.len(), |j| start + j)..];
        }
        out.push_str(rest);
        out
    }

    /// Whether a token with these (space-trimmed) fields is the one asked for.
    pub fn matches(&self, label: &str, serial: &str, manufacturer: &str, model: &str) -> bool {
        let eq =
            |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w == got.trim_end());
        eq(&self.token, label)
            && eq(&self.serial, serial)
            && eq(&self.manufacturer, manufacturer)
            && eq(&self.model, model)
    }
}

impl fmt::Display for TokenUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pkcs11:")?;
        let mut first = true;
        for (name, v) in [
            ("token", &self.token),
            ("serial", &self.serial),
            ("manufacturer", &self.manufacturer),
            ("model", &self.model),
        ] {
            if let Some(v) = v {
                if !first {
                    f.write_str(";")?;
                }
                first = false;
                write!(f, "{name}={}", percent_encode(v))?;
            }
        }
        Ok(())
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in \"{s}\""))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("\"{s}\" does not decode to UTF-8"))
}

/// RFC 7512 §2.3: unreserved characters and a few path-safe ones stay literal.
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:[]@!$'()*+,&".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_token_and_serial() {
        let u = TokenUri::parse("pkcs11:token=k8s%20root;serial=4a1b;model=SoftHSM%20v2").unwrap();
        assert_eq!(u.token.as_deref(), Some("k8s root"));
        assert_eq!(u.serial.as_deref(), Some("4a1b"));
        assert_eq!(u.model.as_deref(), Some("SoftHSM v2"));
        assert!(u.matches("k8s root", "4a1b", "SoftHSM project", "SoftHSM v2   "));
        assert!(!u.matches("k8s root", "4a1c", "SoftHSM project", "SoftHSM v2"));
        assert_eq!(TokenUri::parse(&u.to_string()).unwrap(), u);
    }

    #[test]
    fn refuses_what_would_be_unsafe_or_ambiguous() {
        for (bad, why) in [
            ("token=x", "pkcs11:"),
            ("pkcs11:token=x?pin-value=1234", "PIN"),
            ("pkcs11:token=x?pin-source=file:/p", "PIN"),
            ("pkcs11:slot-id=0", "renumbered"),
            ("pkcs11:model=x", "token= or serial="),
            ("pkcs11:token=a;token=b", "twice"),
            ("pkcs11:token=%zz", "percent"),
            ("pkcs11:token=x;object=k", "not supported"),
            ("pkcs11:token", "no value"),
        ] {
            let e = TokenUri::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
