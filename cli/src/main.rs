//! `scale-diffusion`: the headless command over `sd-core` (see docs/ARCHITECTURE.md).

mod align;
mod args;
mod clock;
mod config;
mod export;
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
    let telemetry = sd_telemetry::init("warn", "scale-diffusion");
    if telemetry.exporting() {
        flush_on_termination(telemetry.flusher());
    }

    let cli = Cli::parse();
    let result = match cli.command {
        Command::Process(args) => process::run(&args),
        Command::Payouts(command) => payouts::run(&command),
        Command::Review(command) => review::run(&command),
        Command::Inspect(args) => inspect::run(&args),
        Command::Align(args) => align::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Schema(args) => schema::run(&args),
        Command::Export(args) => export::run(&args),
    };
    drop(telemetry);
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            // Same status clap uses for a bad invocation: the user asked for something unreadable.
            ExitCode::from(2)
        }
    }
}

/// SIGTERM or Ctrl-C: the spans of the sessions done so far go to the collector (a bounded wait),
/// then the process ends by the signal, as it would have without tracing; a second signal ends it
/// at once. The session in flight is not recorded; its finished steps may reach the collector
/// without their root, which LangSmith drops.
fn flush_on_termination(flusher: sd_telemetry::Flusher) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(signals) => signals,
        Err(err) => {
            tracing::warn!(
                "traces: cannot listen for SIGTERM ({err}); a killed run may lose its last spans"
            );
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("sd-signals".to_owned())
        .spawn(move || {
            let mut signals = signals.forever();
            let Some(first) = signals.next() else {
                return;
            };
            let flushing = std::thread::Builder::new()
                .name("sd-flush".to_owned())
                .spawn(move || {
                    flusher.shutdown();
                    end_by(first);
                });
            if flushing.is_err() {
                end_by(first);
            }
            if let Some(second) = signals.next() {
                end_by(second);
            }
        });
    if let Err(err) = spawned {
        tracing::warn!("traces: cannot start the signal thread ({err})");
    }
}

/// Ends the process as `signal`'s default action does.
fn end_by(signal: i32) {
    let _ = signal_hook::low_level::emulate_default_handler(signal);
    std::process::exit(128 + signal);
}
