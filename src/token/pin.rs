//! Where the user PIN comes from: a file (`--pin-file`), an environment
//! variable named by a flag (`--pin-env`), the no-echo prompt, or the token's
//! own PIN pad. Never argv, never the plan.
//!
//! The PIN only ever lives in `Zeroizing` buffers and has no Display; errors
//! name the source, never the value.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// A user PIN. Debug is redacted; the bytes are wiped on drop.
pub struct Pin(Zeroizing<String>);

impl Pin {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn new(pin: Zeroizing<String>) -> Result<Pin, PinError> {
        if pin.is_empty() {
            return Err(PinError::Empty);
        }
        Ok(Pin(pin))
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("PIN file {}: {why}", .path.display())]
    File { path: PathBuf, why: String },
    #[error("PIN file {} is readable or writable by group or others (mode {mode:o})", .path.display())]
    FileMode { path: PathBuf, mode: u32 },
    #[error("environment variable {var} named by --pin-env is not set or not UTF-8")]
    Env { var: String },
    #[error("the PIN typed at the prompt is empty")]
    Empty,
    #[error("environment variable {var} named by --pin-env is empty")]
    EnvEmpty { var: String },
    #[error(
        "no PIN source: stdin/stderr is not a terminal and no --pin-file or --pin-env was given"
    )]
    NoSource,
    #[error("reading the PIN from the terminal failed: {0}")]
    Prompt(String),
}

impl PinError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            PinError::FileMode { path, .. } => format!("chmod 600 {}", path.display()),
            PinError::File { .. } => {
                "give --pin-file a regular file that holds the PIN on one line".into()
            }
            PinError::NoSource => {
                "run at a terminal to be prompted, or pass --pin-file FILE (mode 0600)".into()
            }
            _ => return None,
        })
    }
}

/// Reads a PIN file: a regular file, not group/other accessible, one line.
pub fn read_pin_file(path: &Path) -> Result<Pin, PinError> {
    let file_err = |why: String| PinError::File {
        path: path.to_path_buf(),
        why,
    };
    let meta = std::fs::metadata(path).map_err(|e| file_err(e.to_string()))?;
    if !meta.is_file() {
        return Err(file_err("is not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PinError::FileMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut raw = Zeroizing::new(Vec::with_capacity(64));
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_end(&mut raw))
        .map_err(|e| file_err(e.to_string()))?;
    let text = std::str::from_utf8(&raw).map_err(|_| file_err("is not UTF-8".into()))?;
    let line = text.strip_suffix('\n').unwrap_or(text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.contains('\n') {
        return Err(file_err("holds more than one line".into()));
    }
    // Name the file: "the PIN is empty" alone does not say where it came from.
    Pin::new(Zeroizing::new(line.to_string())).map_err(|e| match e {
        PinError::Empty => file_err("is empty; it must hold the PIN on one line".into()),
        e => e,
    })
}

/// Reads a PIN from the environment variable the operator named.
pub fn read_pin_env(var: &str) -> Result<Pin, PinError> {
    let v = std::env::var(var).map_err(|_| PinError::Env {
        var: var.to_string(),
    })?;
    Pin::new(Zeroizing::new(v)).map_err(|e| match e {
        PinError::Empty => PinError::EnvEmpty {
            var: var.to_string(),
        },
        e => e,
    })
}

/// No-echo prompt on the terminal (dialoguer needs stderr to be one).
pub fn prompt_pin(token: &str) -> Result<Pin, PinError> {
    let pin = dialoguer::Password::new()
        .with_prompt(format!("User PIN for token {token}"))
        .interact()
        .map_err(|e| PinError::Prompt(e.to_string()))?;
    Pin::new(Zeroizing::new(pin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(body.as_bytes()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn pin_files() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            read_pin_file(&write(d.path(), "a", "1234\n", 0o600))
                .unwrap()
                .expose(),
            "1234"
        );
        assert_eq!(
            read_pin_file(&write(d.path(), "b", "1234\r\n", 0o400))
                .unwrap()
                .expose(),
            "1234"
        );
        assert!(matches!(
            read_pin_file(&write(d.path(), "c", "1234", 0o644)),
            Err(PinError::FileMode { .. })
        ));
        assert!(matches!(
            read_pin_file(&write(d.path(), "d", "\n", 0o600)),
            Err(PinError::File { .. })
        ));
        assert!(matches!(
            read_pin_file(&write(d.path(), "e", "1\n2\n", 0o600)),
            Err(PinError::File { .. })
        ));
        assert!(matches!(
            read_pin_file(d.path()),
            Err(PinError::File { .. })
        ));
        let dbg = format!(
            "{:?}",
            read_pin_file(&write(d.path(), "f", "canary-9876", 0o600)).unwrap()
        );
        assert!(!dbg.contains("canary"));
    }
}
