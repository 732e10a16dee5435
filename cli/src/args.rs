//! What the user can type: clap definitions only, apart from the commands that run them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Scale Diffusion's data platform: turns session bundles into frame-aligned training data.
#[derive(Debug, Parser)]
#[command(name = "scale-diffusion", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report what is in bundles: parts, log spans on the page clock, video health, reject reasons.
    ///
    /// PATH is a bundle folder, a `{wallet}/` folder of the raw bucket, or a folder of wallet
    /// folders. A bundle that cannot be used is a finding, not a failure: the exit status is
    /// non-zero only when PATH itself cannot be read.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Bundle folder, wallet folder, or raw-bucket tree.
    pub path: PathBuf,

    /// Print one JSON document instead of the human report.
    #[arg(long)]
    pub json: bool,

    /// A gap between video frames longer than this (ms) is reported as a stall.
    #[arg(long, default_value_t = 1000.0, value_name = "MS")]
    pub stall_ms: f64,
}
