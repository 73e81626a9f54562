//! PEM blocks as kubeadm reads them, shared by CSR intake and `verify`.
//!
//! Like Go's `pem.Decode`, text between blocks is ignored. Block bodies are
//! held in zeroizing buffers (a block may be a private key) and errors name
//! the block's label, never its contents.

use zeroize::Zeroizing;

/// One PEM block: its label and decoded bytes.
pub struct Block {
    pub label: String,
    pub der: Zeroizing<Vec<u8>>,
}

/// Every PEM block of a text, in order.
pub fn pem_blocks(text: &str) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    let mut current: Option<(String, Zeroizing<String>)> = None;
    for line in text.lines() {
        let line = line.trim_end();
        match &mut current {
            None => {
                if let Some(label) = line
                    .strip_prefix("-----BEGIN ")
                    .and_then(|l| l.strip_suffix("-----"))
                {
                    let mut body = Zeroizing::new(String::new());
                    body.push_str(line);
                    body.push('\n');
                    current = Some((label.to_string(), body));
                }
            }
            Some((label, body)) => {
                body.push_str(line);
                body.push('\n');
                if line.starts_with("-----END ") {
                    if line != format!("-----END {label}-----") {
                        return Err(format!("PEM block \"{label}\" ends with {line:?}"));
                    }
                    let (_, der) = pem_rfc7468::decode_vec(body.as_bytes())
                        .map_err(|e| format!("PEM block \"{label}\" does not decode: {e}"))?;
                    out.push(Block {
                        label: label.clone(),
                        der: Zeroizing::new(der),
                    });
                    current = None;
                }
            }
        }
    }
    if let Some((label, _)) = current {
        return Err(format!("PEM block \"{label}\" has no END line"));
    }
    Ok(out)
}

/// One block in the encoding this tool writes (RFC 7468: 64-column base64,
/// LF line ends, nothing before or after), in a zeroizing buffer since the
/// block may be a private key.
pub fn encode(label: &str, der: &[u8]) -> Result<Zeroizing<String>, String> {
    pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der)
        .map(Zeroizing::new)
        .map_err(|e| format!("PEM block \"{label}\" does not encode: {e}"))
}

/// The canonical text of a file that holds exactly one PEM block: the block
/// encoded again from its decoded bytes, so that text before, between or
/// after (which kubeadm ignores, and which nothing checked) is not carried
/// into a bundle.
pub fn canonical_one(text: &str) -> Result<Zeroizing<String>, String> {
    match pem_blocks(text)?.as_slice() {
        [one] => encode(&one.label, &one.der),
        many => Err(format!("{} PEM blocks where one was expected", many.len())),
    }
}

/// The bytes of a PEM file up to the end of its first certificate (all of
/// them if none ends): a CA trust file during a rotation's overlap holds
/// two, the first the one that signs the leaves.
pub fn first_certificate(pem: &[u8]) -> &[u8] {
    const END: &[u8] = b"-----END CERTIFICATE-----";
    pem.windows(END.len())
        .position(|w| w == END)
        .map_or(pem, |i| &pem[..i + END.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_drops_what_surrounds_the_block() {
        let block = encode("PUBLIC KEY", &[1, 2, 3]).unwrap();
        let dirty = format!("junk before\r\n{}trailing junk\n", block.as_str());
        assert_eq!(canonical_one(&dirty).unwrap().as_str(), block.as_str());
        let two = format!("{}{}", block.as_str(), block.as_str());
        assert_eq!(
            canonical_one(&two).unwrap_err(),
            "2 PEM blocks where one was expected"
        );
    }

    #[test]
    fn the_first_certificate_of_a_bundle_ends_at_its_end_line() {
        let one = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----";
        let two = format!("{one}\n{one}\n");
        assert_eq!(first_certificate(two.as_bytes()), one.as_bytes());
        assert_eq!(first_certificate(b"no end"), b"no end");
    }
}
