//! Logging in to the token: the PIN from --pin-file or --pin-env, the PIN
//! pad, or up to three no-echo prompts, with the token's warnings first.

use super::PinOptions;
use crate::error::CeremonyError;
use crate::operator::ui;
use crate::token::pin::{self, Pin, PinError};
use crate::token::{Token, TokenError};
use std::io::IsTerminal;
use ui::Ui;

pub fn read_given_pin(opts: &PinOptions) -> Result<Option<Pin>, PinError> {
    match (&opts.file, &opts.env) {
        (Some(f), _) => pin::read_pin_file(f).map(Some),
        (None, Some(v)) => pin::read_pin_env(v).map(Some),
        (None, None) => Ok(None),
    }
}

/// Logs in with the given PIN, the PIN pad, or up to three prompts.
pub fn login(token: &dyn Token, given: Option<Pin>, ui: &Ui) -> Result<(), CeremonyError> {
    let id = token.identity().clone();
    let flags = token.pin_flags()?;
    if flags.locked {
        return Err(TokenError::PinLocked {
            token: id.to_string(),
        }
        .into());
    }
    if flags.final_try {
        ui.warn("the token says the next wrong PIN locks the user PIN");
    } else if flags.count_low {
        ui.warn("the token says a wrong PIN was entered recently; few tries are left");
    }
    if let Some(pin) = given {
        return Ok(token.login(Some(&pin))?);
    }
    if id.protected_auth_path {
        ui.note("Enter the PIN on the token's PIN pad.");
        return Ok(token.login(None)?);
    }
    if !ui.interactive {
        return Err(PinError::NoSource.into());
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let pin = ui.prompt_pin(&id)?;
        match token.login(Some(&pin)) {
            Err(TokenError::PinIncorrect { .. }) if attempt < 3 => {
                ui.warn(&format!("wrong PIN ({attempt} of 3 attempts)"));
                if token.pin_flags()?.locked {
                    return Err(TokenError::PinLocked {
                        token: id.to_string(),
                    }
                    .into());
                }
            }
            other => return Ok(other?),
        }
    }
}

pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}
