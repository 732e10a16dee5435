//! `scale-diffusion-server`: the raw bucket's S3 events, through SQS, into the pipeline, the
//! clean bucket and the payout ledger (see docs/ARCHITECTURE.md). Its own binary, so that the
//! offline `scale-diffusion` never builds the AWS stack.

mod api;
mod args;
mod event;
mod export;
mod fetch;
mod review;
mod setup;
mod status;
mod worker;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The worker and the API stop gracefully on SIGTERM and return here: the spans are flushed
    // when `telemetry` drops, at the end of `main`.
    let telemetry = sd_telemetry::init("info,aws=warn", "scale-diffusion-server");
    if let Command::Openapi = cli.command {
        return match api::document() {
            Ok(document) => {
                print!("{document}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: cannot write the OpenAPI document: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("server-rt")
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let clients = sd_bucket::Clients::from_env().await;
        match cli.command {
            Command::Setup(args) => setup::run(&clients, &args).await,
            Command::Worker(args) => worker::run(clients, args).await,
            Command::Status(args) => status::run(&clients, &args).await,
            Command::Review(args) => review::run(&clients, &args).await,
            Command::Api(args) => api::serve(clients, args).await,
            Command::Export(args) => export::run(&clients, &args).await,
            Command::Openapi => Ok(()),
        }
    });
    // A session given back at the end of the grace period may still hold a pipeline thread:
    // do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    drop(telemetry);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the ledger: a SQLite file (created with its folder if needed) or a PostgreSQL database.
pub(crate) fn open_ledger(
    location: &sd_ledger::LedgerLocation,
) -> anyhow::Result<sd_ledger::Ledger> {
    if let Some(parent) = location
        .path()
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    sd_ledger::Ledger::open_at(location)
        .with_context(|| format!("cannot open the ledger {location}"))
}
