//! Ctrl-C during `ceremony run`. The handler only raises a flag and wakes a
//! prompt that is waiting; the flow checks the flag between operations and
//! stops cleanly there, so no token operation is cut in half, the
//! cancellation is recorded and the run can be resumed.
//!
//! Prompts run on a helper thread ([`prompt`]) so that Ctrl-C reaches the
//! flow even while a prompt blocks on the terminal: a no-echo PIN read is
//! restarted by the kernel after SIGINT and would otherwise never return.
//!
//! What it must not do: write the audit record, touch the token, or run
//! anything in the signal handler but setting the flag and sending a wake-up.
//! Pressing Ctrl-C three times is the escape hatch for a hung token call: it
//! restores the terminal and exits 1 at once, leaving the crash-safe journal
//! for the next run to resume.

// What Ctrl-C did is said on the operator's terminal.
#![allow(clippy::print_stderr)]

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};

use nix::sys::termios::{self, SetArg, Termios};

/// Presses of Ctrl-C after which the process exits at once.
const HARD_EXIT_PRESSES: usize = 3;

enum Wake {
    Done,
    Interrupted,
}

struct State {
    presses: AtomicUsize,
    /// The prompt waiting for an answer, if any.
    waiter: Mutex<Option<mpsc::Sender<Wake>>>,
    /// The spinner of a token operation under way, told that the run stops after it.
    spinner: Mutex<Option<indicatif::ProgressBar>>,
    /// The terminal's modes when the run started, for the hard exit.
    tty: Mutex<Option<Termios>>,
}

static STATE: OnceLock<State> = OnceLock::new();

/// The controlling terminal's modes, if there is one.
fn tty_modes() -> Option<Termios> {
    match std::fs::File::open("/dev/tty") {
        Ok(f) => termios::tcgetattr(&f).ok(),
        Err(_) => termios::tcgetattr(io::stdin()).ok(),
    }
}

/// Puts the terminal back as it was (echo on after an abandoned PIN prompt).
fn restore(modes: &Termios) {
    let _ = match std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        Ok(f) => termios::tcsetattr(&f, SetArg::TCSANOW, modes),
        Err(_) => termios::tcsetattr(io::stdin(), SetArg::TCSANOW, modes),
    };
}

/// Installs the Ctrl-C handler (once per process; later calls do nothing).
pub fn install() {
    if STATE.get().is_some() {
        return;
    }
    let state = State {
        presses: AtomicUsize::new(0),
        waiter: Mutex::new(None),
        spinner: Mutex::new(None),
        tty: Mutex::new(tty_modes()),
    };
    if STATE.set(state).is_err() {
        return;
    }
    // If a handler cannot be installed, Ctrl-C keeps its default (the process
    // dies; the journal is crash-safe and the next run resumes).
    let _ = ctrlc::set_handler(on_ctrl_c);
}

fn on_ctrl_c() {
    let Some(st) = STATE.get() else { return };
    let n = st.presses.fetch_add(1, Ordering::SeqCst) + 1;
    if n >= HARD_EXIT_PRESSES {
        if let Ok(t) = st.tty.lock()
            && let Some(t) = t.as_ref()
        {
            restore(t);
        }
        eprintln!(
            "\nCtrl-C {n} times: stopped at once, without recording it. The journal is intact: \
             run the same command again to resume."
        );
        std::process::exit(1);
    }
    if let Ok(w) = st.waiter.lock()
        && let Some(tx) = w.as_ref()
    {
        let _ = tx.send(Wake::Interrupted);
        return;
    }
    let note = "Ctrl-C: stopping after this operation (Ctrl-C twice more stops at once)";
    match st.spinner.lock() {
        Ok(s) if s.is_some() => {
            if let Some(bar) = s.as_ref() {
                bar.set_message(note);
            }
        }
        _ if n == 1 => eprintln!("\n{note}"),
        _ => {}
    }
}

/// Whether the operator pressed Ctrl-C.
pub fn requested() -> bool {
    STATE
        .get()
        .is_some_and(|s| s.presses.load(Ordering::SeqCst) > 0)
}

/// Registers (or clears) the spinner of a token operation under way.
pub fn set_spinner(bar: Option<indicatif::ProgressBar>) {
    if let Some(st) = STATE.get()
        && let Ok(mut s) = st.spinner.lock()
    {
        *s = bar;
    }
}

/// How a prompt ended without an answer.
#[derive(Debug)]
pub enum Stop {
    /// Ctrl-C, before or while the prompt waited.
    Interrupted,
    /// The terminal failed (closed, not a terminal).
    Failed(io::Error),
}

/// Runs a blocking prompt on a helper thread and waits for its answer or for
/// Ctrl-C, whichever comes first. On Ctrl-C the terminal's modes are put back
/// and the prompt is abandoned (the process is about to stop).
pub fn prompt<T, F>(ask: F) -> Result<T, Stop>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    if requested() {
        return Err(Stop::Interrupted);
    }
    let Some(st) = STATE.get() else {
        // No handler installed (not `run`): ask on this thread.
        return ask().map_err(stop_of);
    };
    let (wake_tx, wake_rx) = mpsc::channel();
    let (answer_tx, answer_rx) = mpsc::channel();
    let modes = tty_modes();
    if let Ok(mut w) = st.waiter.lock() {
        *w = Some(wake_tx.clone());
    }
    // A Ctrl-C between the first check and the waiter being set found no one
    // to wake: look again now that it would.
    if requested() {
        clear_waiter(st);
        return Err(Stop::Interrupted);
    }
    let spawned = std::thread::Builder::new()
        .name("prompt".into())
        .spawn(move || {
            let _ = answer_tx.send(ask());
            let _ = wake_tx.send(Wake::Done);
        });
    let woke = match spawned {
        Ok(_) => wake_rx.recv(),
        Err(e) => {
            clear_waiter(st);
            return Err(Stop::Failed(e));
        }
    };
    clear_waiter(st);
    match woke {
        Ok(Wake::Done) => match answer_rx.recv() {
            Ok(answer) => answer.map_err(stop_of),
            Err(_) => Err(Stop::Failed(io::Error::other(
                "the prompt ended without an answer",
            ))),
        },
        Ok(Wake::Interrupted) | Err(_) => {
            if let Some(m) = &modes {
                restore(m);
            }
            eprintln!();
            Err(Stop::Interrupted)
        }
    }
}

fn clear_waiter(st: &State) {
    if let Ok(mut w) = st.waiter.lock() {
        *w = None;
    }
}

/// A prompt's I/O error: console reports Ctrl-C in raw mode as `Interrupted`.
fn stop_of(e: io::Error) -> Stop {
    if e.kind() == io::ErrorKind::Interrupted {
        Stop::Interrupted
    } else {
        Stop::Failed(e)
    }
}
