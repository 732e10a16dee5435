//! Command-line definitions (clap), apart from what the commands do.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Scale Diffusion's server: the raw bucket's events through the pipeline into the clean bucket
/// and the payout ledger. AWS endpoint, region and credentials come from the environment as for
/// every AWS SDK (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, profiles...).
#[derive(Debug, Parser)]
#[command(name = "scale-diffusion-server", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Creates the raw and clean buckets, the queue and its dead-letter queue (redrive policy),
    /// and the raw bucket's event notification to the queue. Safe to run again.
    Setup(SetupArgs),
    /// Takes S3 events from the queue and processes each complete session: the same pipeline as
    /// `scale-diffusion process`, published to the clean bucket, recorded in the ledger.
    Worker(WorkerArgs),
    /// What an operator looks at: queue depth, in flight, dead letters, sessions by state.
    Status(StatusArgs),
    /// A reviewer's verdict on a segment in the clean bucket: recorded in the ledger (the pending
    /// payout follows), then a worker processes the session again and moves the segment.
    Review(ReviewArgs),
    /// The upload API (SPEC section 9): wallet-signed requests for presigned PUT URLs into the
    /// raw bucket, each scoped to one key, one content type and one size.
    Api(ApiArgs),
    /// Prints the upload API's OpenAPI document (JSON): what `docs/openapi.json` holds.
    Openapi,
    /// The clean bucket as training data (LeRobot v3 or WebDataset), as `scale-diffusion export`
    /// makes from a local layout: every session mirrored into `--mirror` through its manifests
    /// (objects checked, unchanged ones kept), then exported into OUT. Incremental, both steps.
    Export(ExportArgs),
}

/// Where things are: the buckets and the queue.
#[derive(Debug, Clone, Args)]
pub struct Resources {
    /// The bucket contributors upload to (`{wallet}/{sid}{suffix}` keys).
    #[arg(long, env = "SD_RAW_BUCKET", default_value = "sd-raw")]
    pub raw_bucket: String,
    /// The bucket consumers read (`{wallet}/{sid}/...`; failed segments under `review/`).
    #[arg(long, env = "SD_CLEAN_BUCKET", default_value = "sd-clean")]
    pub clean_bucket: String,
    /// The queue the raw bucket's events go to: its name, or its URL (`setup` takes a name).
    #[arg(long, env = "SD_QUEUE", default_value = "sd-raw-events")]
    pub queue: String,
    /// Its dead-letter queue: name or URL.
    #[arg(
        long,
        env = "SD_DEAD_LETTER_QUEUE",
        default_value = "sd-raw-events-dlq"
    )]
    pub dead_letter_queue: String,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    #[command(flatten)]
    pub resources: Resources,
    /// Receives of one message before it goes to the dead-letter queue. A failing session's
    /// message comes back after 5 s, doubling up to 5 min: 8 receives ride out about 10 minutes
    /// of an unreachable endpoint before a session is called poison.
    #[arg(long, default_value_t = 8)]
    pub max_receive_count: u32,
    /// How long a message stays hidden after a receive that does not say (the worker asks for
    /// three heartbeats on every receive and extends it while it works).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub visibility_timeout: Duration,
    /// The game's page origin, allowed to PUT parts into the raw bucket with the API's presigned
    /// URLs from a browser (the raw bucket's CORS rule); repeat for several. The `api` command
    /// takes the same list.
    #[arg(long, env = "SD_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origin: Vec<String>,
}

/// Where the ledger is.
#[derive(Debug, Clone, Args)]
pub struct LedgerArgs {
    /// The payout ledger: a SQLite file (every worker on one machine), or a PostgreSQL database as
    /// a postgres:// URL (workers on several hosts). Prefer SD_LEDGER for a URL with a password:
    /// arguments are visible to the machine's other users; the help never shows its value.
    #[arg(
        long,
        env = "SD_LEDGER",
        hide_env_values = true,
        value_name = "FILE|URL",
        default_value = "out/ledger.sqlite"
    )]
    pub ledger: sd_ledger::LedgerLocation,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub resources: Resources,
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// The pipeline's configuration (`config/pipeline.toml`); its defaults without one.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where sessions are downloaded and staged (a temporary folder per session, removed
    /// whatever happens).
    #[arg(long, env = "SD_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// An incomplete session is rejected, its missing parts named, this long after its first
    /// part was seen.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    pub incomplete_timeout: Duration,
    /// How long a worker holds a session without renewing (a worker that dies frees it then).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2m")]
    pub lease: Duration,
    /// How often the worker extends its message's visibility and its lease while it works.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    pub heartbeat: Duration,
    /// On SIGTERM, how long the current session may take to finish before it is given back.
    /// Keep it under the platform's stop timeout (30 s on Kubernetes and ECS by default), or the
    /// worker is killed before it gives the session back (then its lease expires first).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "25s")]
    pub grace: Duration,
    /// Long-poll wait per receive, at most 20 s.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    pub wait: Duration,
    /// Sessions this worker works on at once (1-16). With 2, one session's upload overlaps the
    /// next one's analysis; each session staged at once takes its frames' size in the work
    /// folder (about 300 MB for a one-minute 720p session).
    #[arg(long, env = "SD_SESSIONS_AT_ONCE", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=16))]
    pub sessions_at_once: u16,
    /// This worker's name in leases, logs and its work folder, unique among running workers
    /// (default: host name and process id).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub resources: Resources,
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("verdict").required(true).args(["pass", "fail"])))]
pub struct ReviewArgs {
    /// `[WALLET/]SESSION_ID/segment_NNN`, e.g. session_1769936388223_tp5owb/segment_002.
    pub segment: String,
    /// The segment is good: pay for it and publish it.
    #[arg(long)]
    pub pass: bool,
    /// The segment is bad: do not pay for it, take it out of the clean bucket's consumers' view.
    #[arg(long)]
    pub fail: bool,
    /// Why (recorded with the override; required).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Who decides (recorded with the override).
    #[arg(long, value_name = "NAME")]
    pub by: String,
    #[command(flatten)]
    pub resources: Resources,
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// The pipeline's configuration, for the payout rate.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub resources: Resources,
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// Address to listen on.
    #[arg(long, env = "SD_API_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// How long a presigned URL stays good.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    pub url_ttl: Duration,
    /// Largest video part a URL is issued for, in bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub max_video_bytes: u64,
    /// Largest JSON part (inputs, camera, latency, meta) a URL is issued for, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_json_bytes: u64,
    /// Upload requests a minute per wallet (429 past it).
    #[arg(long, default_value = "10")]
    pub rate_per_wallet: std::num::NonZeroU32,
    /// Requests a minute per client address, all `/v1` endpoints together (429 past it).
    #[arg(long, default_value = "120")]
    pub rate_per_address: std::num::NonZeroU32,
    /// The game's page origin (e.g. https://drive.example.com), allowed to call the API from a
    /// browser; repeat for several. None: browsers on other origins are refused.
    #[arg(long, env = "SD_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origin: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub request: sd_export::ExportRequest,
    /// Where the clean bucket is mirrored (`{mirror}/clean`, `{mirror}/review`): keep it between
    /// runs, only what changed is fetched again.
    #[arg(long, value_name = "DIR")]
    pub mirror: PathBuf,
    /// The dataset's folder: new or empty, or an earlier export of the same format.
    pub out: PathBuf,
    #[command(flatten)]
    pub resources: Resources,
}
