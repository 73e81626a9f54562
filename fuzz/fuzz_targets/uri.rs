//! The RFC 7512 token URI parser: never a panic; what parses prints back to
//! a URI that parses to the same value; a redacted URI holds no pin-value.
#![no_main]

use ceremony::token::uri::TokenUri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let redacted = TokenUri::redact_pin(s);
    if let Some(i) = redacted.find("pin-value=") {
        assert!(redacted[i + "pin-value=".len()..].starts_with("(redacted)"));
    }
    if let Ok(u) = TokenUri::parse(s) {
        let printed = u.to_string();
        assert_eq!(TokenUri::parse(&printed).as_ref(), Ok(&u), "{printed}");
        let _ = u.matches("label", "serial", "manufacturer", "model");
    }
});
