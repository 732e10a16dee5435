//! What the user can type: clap definitions only, apart from the commands that run them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sd_ledger::LedgerLocation;

/// Scale Diffusion's data platform: turns session bundles into frame-aligned training data.
#[derive(Debug, Parser)]
#[command(name = "scale-diffusion", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The main job: every bundle under RAW through ALIGN -> SPLICE -> CLEAN. Passing segments
    /// are published to the clean layout (`{wallet}/{session}/segment_NNN/{frames/,aligned.json,
    /// quality.json}`), failed ones to the review area; every session and segment, with its
    /// scores and reasons, goes to the payout ledger. Rerunning replaces a session's record.
    ///
    /// Rejected bundles are findings (recorded with their reason, never paid): the exit status is
    /// 0 when the run completed, non-zero only for a usage or system error.
    Process(ProcessArgs),

    /// Payouts per wallet: list them, approve a wallet's pending payout, mark one paid.
    #[command(subcommand)]
    Payouts(PayoutsCommand),

    /// Reviewer actions on segments.
    #[command(subcommand)]
    Review(ReviewCommand),

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

    /// Write one bundle's visual report: a self-contained HTML page with the timing, the clock
    /// join and every verdict (`process` writes the same page beside every session.json).
    Report(ReportArgs),

    /// Print (or write) the JSON Schema of a file the system reads or writes.
    Schema(SchemaArgs),

    /// Export the clean layout as training data: a LeRobot v3 dataset or WebDataset tar shards,
    /// one episode (sample) per published segment, with every frame's real time, action, state
    /// and quality mask (docs/EXPORT.md).
    ///
    /// SOURCE is the clean layout `process --out` writes; it is read through its manifests only,
    /// every object checked. Incremental: run it again into the same OUT after new sessions, a
    /// reprocess or an override, and only what changed is written. Exits 1 when a segment could
    /// not be exported (each is named), 2 when the export could not run.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub request: sd_export::ExportRequest,

    /// The clean layout (`process --out`).
    pub source: PathBuf,

    /// The dataset's folder: new or empty, or an earlier export of the same format.
    pub out: PathBuf,

    /// Print what the run did as JSON on stdout (problems included) instead of sentences.
    #[arg(long)]
    pub json: bool,
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
    /// aligned, session, segment-aligned, segment-quality, meta, inputs, camera, latency or
    /// pipeline-config; all of them with --out-dir.
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

    /// Pipeline config (TOML, like config/pipeline.toml); the built-in defaults otherwise.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Where the ledger is (shared by every ledger command).
#[derive(Debug, Args)]
pub struct LedgerArgs {
    /// The payout ledger: a SQLite file, or a PostgreSQL database as a postgres:// URL (shared
    /// by workers on several hosts).
    #[arg(long, value_name = "FILE|URL", default_value = "out/ledger.sqlite")]
    pub ledger: LedgerLocation,
}

/// The published layout (shared by `process` and `review`).
#[derive(Debug, Args)]
pub struct LayoutArgs {
    /// The clean layout: passing segments, what consumers read.
    #[arg(long, value_name = "DIR", default_value = "out/clean")]
    pub out: PathBuf,

    /// The review area: failed segments, same layout (same filesystem as --out).
    #[arg(long, value_name = "DIR", default_value = "out/review")]
    pub review: PathBuf,

    /// Where a run stages its files and keeps its lock: beside --out, on the same filesystem,
    /// never read by consumers [default: `.sd-work` beside --out].
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
}

impl LayoutArgs {
    /// The work folder: `--work`, else `.sd-work` beside the clean layout.
    pub fn work_dir(&self) -> PathBuf {
        self.work.clone().unwrap_or_else(|| {
            match self.out.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(parent) => parent.join(".sd-work"),
                None => PathBuf::from(".sd-work"),
            }
        })
    }

    pub fn open(&self) -> Result<sd_core::OutputLayout, sd_core::PublishError> {
        sd_core::OutputLayout::open(&self.out, &self.review, &self.work_dir())
    }
}

#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// Raw bundles: a bundle folder, a `{wallet}/` folder of the raw bucket, or a folder of them.
    pub raw: PathBuf,

    #[command(flatten)]
    pub layout: LayoutArgs,

    #[command(flatten)]
    pub ledger: LedgerArgs,

    /// Pipeline config (TOML, like config/pipeline.toml); the built-in defaults otherwise.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the run's summary as one JSON document (no progress, no per-session lines).
    #[arg(long)]
    pub json: bool,

    /// No progress bars and no per-session lines: the summary only.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum PayoutsCommand {
    /// Every payout (pending, approved, paid) with its items, and each wallet's totals.
    List(PayoutsListArgs),
    /// Approve a wallet's pending payout: from then on it never changes.
    Approve(PayoutsApproveArgs),
    /// Record that an approved payout was transferred.
    MarkPaid(PayoutsMarkPaidArgs),
    /// Change what a valid segment pays: re-prices pending payouts only (approved and paid ones
    /// never change). Set `[payout] lamports_per_segment` in the config to the same value.
    SetRate(PayoutsSetRateArgs),
}

#[derive(Debug, Args)]
pub struct PayoutsSetRateArgs {
    /// Lamports per valid segment (1 SOL = 1 000 000 000 lamports).
    pub lamports: i64,
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

#[derive(Debug, Args)]
pub struct PayoutsListArgs {
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// Only this wallet's payouts.
    #[arg(long, value_name = "WALLET")]
    pub wallet: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PayoutsApproveArgs {
    /// The wallet whose pending payout is approved.
    pub wallet: String,
    /// Who approves (recorded with the payout).
    #[arg(long, value_name = "NAME")]
    pub by: String,
    /// The amount you reviewed (`payouts list` shows it): refused if the pending payout has
    /// changed since, e.g. because a run added segments.
    #[arg(long, value_name = "LAMPORTS")]
    pub lamports: Option<i64>,
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

#[derive(Debug, Args)]
pub struct PayoutsMarkPaidArgs {
    /// The payout id (`payouts list` shows it).
    pub id: i64,
    /// The transfer's transaction signature (base58, 64 bytes).
    #[arg(long, value_name = "SIG")]
    pub signature: String,
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Override a segment's verdict: `--pass` promotes it to the clean layout, `--fail` takes it
    /// out into the review area; the ledger's counts and pending payout follow.
    Override(OverrideArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("verdict").required(true).args(["pass", "fail"])))]
pub struct OverrideArgs {
    /// `[WALLET/]SESSION_ID/segment_NNN`, e.g. session_1769936388223_tp5owb/segment_002.
    pub segment: String,
    /// The segment is good: pay for it and publish it.
    #[arg(long)]
    pub pass: bool,
    /// The segment is bad: do not pay for it, take it out of the clean layout.
    #[arg(long)]
    pub fail: bool,
    /// Why (recorded with the override; required).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Who decides (recorded with the override).
    #[arg(long, value_name = "NAME")]
    pub by: String,
    #[command(flatten)]
    pub layout: LayoutArgs,
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// Pipeline config, for the payout rate (like config/pipeline.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Folder holding the bundle's parts (in either key form), or a folder of them with --session.
    pub bundle: PathBuf,

    /// Where to write the page.
    #[arg(long, short, value_name = "FILE", default_value = "report.html")]
    pub out: PathBuf,

    /// Which session, when the folder holds several.
    #[arg(long, value_name = "SESSION_ID")]
    pub session: Option<String>,

    /// Pipeline config (TOML, like config/pipeline.toml); the built-in defaults otherwise.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}
