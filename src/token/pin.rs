//! Where the user PIN comes from: a file (`--pin-file`), an environment
//! variable named by a flag (`--pin-env`), the no-echo prompt, or the token's
//! own PIN pad. Never argv, never the plan.
//!
//! The PIN only ever lives in `Zeroizing` buffers and has no Display; errors
//! name the source, never the value.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::fsread::{self, Links, ReadError, cap};

/// Where the PIN comes from, as the operator said on the command line
/// (neither: the no-echo prompt or the token's PIN pad).
#[derive(Debug, Clone, Default)]
pub struct PinOptions {
    pub file: Option<std::path::PathBuf>,
    pub env: Option<String>,
}

/// A user PIN. Debug is redacted; the bytes are wiped on drop.
pub struct Pin(Zeroizing<String>);

impl Pin {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A second copy (wiped on drop too), for a flow that logs in twice.
    pub fn clone_pin(&self) -> Pin {
        Pin(self.0.clone())
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
    #[error("PIN file {} belongs to uid {owner}, not to the user running the ceremony (uid {me})", .path.display())]
    FileOwner { path: PathBuf, owner: u32, me: u32 },
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
            PinError::FileOwner { .. } => {
                "write the PIN into a file of your own (mode 0600): a PIN file another user owns may have been put there by them".into()
            }
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

/// Reads a PIN file: a regular file, owned by the user running the tool,
/// not group/other accessible, one line of at most `cap::PIN` bytes. All is
/// checked on the open descriptor before a byte is read; a longer file is
/// refused, never cut (a cut PIN is a wrong PIN: it costs a token retry).
pub fn read_pin_file(path: &Path) -> Result<Pin, PinError> {
    let file_err = |why: String| PinError::File {
        path: path.to_path_buf(),
        why,
    };
    let (file, meta) =
        fsread::open_regular(path, cap::PIN, Links::Follow).map_err(|e| match e {
            ReadError::NotRegular { .. } => file_err("is not a regular file".into()),
            ReadError::TooLarge { .. } => file_err(too_long()),
            e => file_err(e.why()),
        })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PinError::FileMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(PinError::FileOwner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    let raw = fsread::read_opened(path, file, &meta, cap::PIN).map_err(|e| match e {
        ReadError::TooLarge { .. } => file_err(too_long()),
        e => file_err(e.why()),
    })?;
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

fn too_long() -> String {
    format!(
        "is longer than {}; it must hold the PIN on one line (it is refused, not cut: a cut PIN would cost one of the token's PIN retries)",
        fsread::size_words(cap::PIN)
    )
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
    prompt_secret(&format!("User PIN for token {token}"))
}

/// No-echo prompt for the security officer's PIN (backups and restores).
pub fn prompt_so_pin(token: &str) -> Result<Pin, PinError> {
    prompt_secret(&format!("Security officer (SO) PIN for token {token}"))
}

/// A no-echo prompt for a secret (a PIN, a custodian's share).
pub fn prompt_secret(prompt: &str) -> Result<Pin, PinError> {
    let pin = dialoguer::Password::new()
        .with_prompt(prompt)
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

    /// A PIN file over the cap is refused, not cut to a wrong PIN; one at
    /// the cap is read whole.
    #[test]
    fn a_pin_file_longer_than_the_cap_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let at_cap = "7".repeat(cap::PIN as usize);
        assert_eq!(
            read_pin_file(&write(d.path(), "a", &at_cap, 0o600))
                .unwrap()
                .expose(),
            at_cap
        );
        let p = write(d.path(), "b", &format!("{at_cap}\n"), 0o600);
        let e = read_pin_file(&p).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "PIN file {}: is longer than 256 bytes; it must hold the PIN on one line (it is refused, not cut: a cut PIN would cost one of the token's PIN retries)",
                p.display()
            )
        );
    }

    /// A FIFO would block a plain open; a device is no file.
    #[test]
    fn a_fifo_or_device_as_pin_file_is_refused_at_once() {
        let d = tempfile::tempdir().unwrap();
        let fifo = crate::fsread::fifo_in(d.path());
        for p in [fifo.as_path(), Path::new("/dev/zero")] {
            let e = read_pin_file(p).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("PIN file {}: is not a regular file", p.display())
            );
        }
    }

    /// Owned by another user: refused (only where this test can chown).
    #[test]
    fn a_pin_file_of_another_user_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "a", "1234\n", 0o600);
        if rustix::process::geteuid().as_raw() != 0 {
            return;
        }
        std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
        let e = read_pin_file(&p).unwrap_err();
        assert!(
            matches!(
                e,
                PinError::FileOwner {
                    owner: 65534,
                    me: 0,
                    ..
                }
            ),
            "{e}"
        );
    }
}
