//! `scale-diffusion`: the headless command over `sd-core` (see docs/ARCHITECTURE.md).

mod align;
mod args;
mod clock;
mod config;
mod inspect;
mod output;
mod payouts;
mod process;
mod report;
mod review;
mod schema;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();

    let cli = Cli::parse();
    let result = match cli.command {
        Command::Process(args) => process::run(&args),
        Command::Payouts(command) => payouts::run(&command),
        Command::Review(command) => review::run(&command),
        Command::Inspect(args) => inspect::run(&args),
        Command::Align(args) => align::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Schema(args) => schema::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            // Same status clap uses for a bad invocation: the user asked for something unreadable.
            ExitCode::from(2)
        }
    }
}
