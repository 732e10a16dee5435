//! `scale-diffusion-review`: opens the layout and ledger `./run.sh` writes (or the ones named) in
//! the review app; `--from-bucket` the clean bucket the server's workers publish to;
//! `scale-diffusion-review BUNDLE` inspects one bundle folder offline.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use scale_diffusion_review::{BucketSource, ReviewApp, Sources};

/// The review app: browse the queue, scrub segments, override verdicts, approve payouts.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A bundle folder to inspect offline: processed here into a temporary folder, nothing
    /// recorded (the ledger and the output folders are not opened).
    #[arg(conflicts_with = "from_bucket")]
    bundle: Option<PathBuf>,
    /// The clean layout (default: out/clean, as ./run.sh writes).
    #[arg(long, conflicts_with = "from_bucket")]
    out: Option<PathBuf>,
    /// The review area (default: out/review).
    #[arg(long, conflicts_with = "from_bucket")]
    review: Option<PathBuf>,
    /// The payout ledger: a file (default: out/ledger.sqlite; with --from-bucket, the workers'
    /// ledger), or a postgres:// URL.
    #[arg(
        long,
        env = "SD_LEDGER",
        hide_env_values = true,
        value_name = "FILE|URL"
    )]
    ledger: Option<sd_ledger::LedgerLocation>,
    /// Review what the server's workers published: the clean bucket's clean and `review/`
    /// prefixes, configured as the server is (--clean-bucket, --queue, and the AWS SDK's
    /// environment: AWS_ENDPOINT_URL, AWS_REGION, credentials). A session is mirrored locally when
    /// one of its segments opens; a verdict is recorded in the ledger and queued for a worker to
    /// carry out, as `scale-diffusion-server review` does.
    #[arg(long)]
    from_bucket: bool,
    /// The clean bucket (with --from-bucket).
    #[arg(long, env = "SD_CLEAN_BUCKET", default_value = "sd-clean")]
    clean_bucket: String,
    /// The workers' queue, name or URL (with --from-bucket): verdicts queue a reprocess there.
    #[arg(long, env = "SD_QUEUE", default_value = "sd-raw-events")]
    queue: String,
    /// Where the bucket's sessions are mirrored (default: ~/.cache/scale-diffusion/bucket/BUCKET).
    #[arg(long, env = "SD_MIRROR_DIR")]
    mirror: Option<PathBuf>,
    /// Who is reviewing, as overrides and approvals record it (default: the OS user).
    #[arg(long, env = "SD_REVIEWER")]
    reviewer: Option<String>,
    /// Refuse to approve a wallet's payout while it has failed segments nobody has reviewed.
    #[arg(long, env = "SD_REQUIRE_REVIEW")]
    require_review: bool,
}

fn main() -> ExitCode {
    let _telemetry = sd_telemetry::init("warn", "scale-diffusion-review");
    let args = Args::parse();
    let bundle = args.bundle.clone();
    let base = Sources::embedded_default(std::path::Path::new("."));
    let bucket = args.from_bucket.then(|| BucketSource {
        mirror: args.mirror.clone().unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
                .unwrap_or_else(std::env::temp_dir);
            cache
                .join("scale-diffusion")
                .join("bucket")
                .join(&args.clean_bucket)
        }),
        clean_bucket: args.clean_bucket.clone(),
        queue: args.queue.clone(),
    });
    let sources = Sources {
        clean: args.out.unwrap_or(base.clean),
        review: args.review.unwrap_or(base.review),
        ledger: args.ledger.unwrap_or(base.ledger),
    };
    let reviewer = args
        .reviewer
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("USERNAME").ok())
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "reviewer".to_owned());
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1600.0, 1000.0])
            .with_title("Scale Diffusion review"),
        ..Default::default()
    };
    let result = eframe::run_native(
        "Scale Diffusion review",
        options,
        Box::new(move |creation| {
            let mut app = match (&bundle, bucket) {
                (Some(bundle), _) => ReviewApp::inspect(bundle, reviewer, &creation.egui_ctx),
                (None, Some(bucket)) => {
                    ReviewApp::open_bucket(sources.ledger, bucket, reviewer, &creation.egui_ctx)
                }
                (None, None) => ReviewApp::open(sources, reviewer, &creation.egui_ctx),
            };
            app.require_review = args.require_review;
            Ok(Box::new(app))
        }),
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: the review window could not run: {err}");
            ExitCode::FAILURE
        }
    }
}
