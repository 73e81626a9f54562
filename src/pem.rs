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
