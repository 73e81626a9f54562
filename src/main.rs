//! Thin binary: parse arguments, run, render the error once, exit with its code.

#![forbid(unsafe_code)]
// The one place an error is printed.
#![allow(clippy::print_stderr)]

use clap::Parser;

fn main() {
    let cli = ceremony::cli::Cli::parse();
    let code = match ceremony::cmd::dispatch(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprint!("{}", ceremony::error::render(&e));
            e.exit_code()
        }
    };
    std::process::exit(code);
}
