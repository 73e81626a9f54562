//! What the operator sees and answers: the screens, the prompts, the
//! numbered steps, the confirmations before each irreversible token
//! operation, and Ctrl-C. The only place that talks to the operator; it
//! decides nothing about certificates or keys.

pub mod gate;
pub mod interrupt;
pub mod screens;
pub mod steps;
pub mod ui;
