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
    /// Report what is in bundles: parts, log spans on the page clock, video health, the clock
    /// join, every segment's verdict, and reject reasons. Reads only; writes nothing.
    ///
    /// PATH is a bundle folder, a `{wallet}/` folder of the raw bucket, or a folder of wallet
    /// folders. A bundle that cannot be used is a finding, not a failure: the exit status is
    /// non-zero only when PATH itself cannot be read.
    Inspect(InspectArgs),

    /// Align one bundle: estimate its clock and write the frame table (one row per decoded frame,
    /// with its video PTS, the page time it shows, keys held, mouse, camera pose and controls).
    ///
    /// Exits 1, writing nothing, when the bundle is rejected (the reason is printed).
    Align(AlignArgs),

    /// Print (or write) the JSON Schema of a file the system reads or writes.
    Schema(SchemaArgs),
}

#[derive(Debug, Args)]
pub struct AlignArgs {
    /// Folder holding the bundle's parts (in either key form), or a folder of them with --session.
    pub bundle: PathBuf,

    /// Where to write the frame table (JSON; see `scale-diffusion schema aligned`).
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,

    /// Which session, when the folder holds several.
    #[arg(long, value_name = "SESSION_ID")]
    pub session: Option<String>,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// aligned, meta, inputs, camera, latency or quality-config; all of them with --out-dir.
    #[arg(required_unless_present = "out_dir", value_name = "NAME")]
    pub name: Option<String>,

    /// Write every schema as `<name>.schema.json` into this folder.
    #[arg(long, value_name = "DIR", conflicts_with = "name")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Bundle folder, wallet folder, or raw-bucket tree.
    pub path: PathBuf,

    /// Print one JSON document instead of the human report.
    #[arg(long)]
    pub json: bool,

    /// Quality thresholds (TOML, like config/quality.toml); the built-in defaults otherwise.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}
