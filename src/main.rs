//! scalelab's command line: the GUI by default, `run`, `bench`, and the hidden `worker`.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::dispatch(args)
}
