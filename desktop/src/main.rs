//! `scale-diffusion-review`: opens the layout and ledger `./run.sh` writes (or the ones named) in
//! the review app; `scale-diffusion-review BUNDLE` inspects one bundle folder offline.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use scale_diffusion_review::{ReviewApp, Sources};

/// The review app: browse the queue, scrub segments, override verdicts, approve payouts.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A bundle folder to inspect offline: processed here into a temporary folder, nothing
    /// recorded (the ledger and the output folders are not opened).
    bundle: Option<PathBuf>,
    /// The clean layout (default: out/clean, as ./run.sh writes).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The review area (default: out/review).
    #[arg(long)]
    review: Option<PathBuf>,
    /// The payout ledger (default: out/ledger.sqlite).
    #[arg(long)]
    ledger: Option<PathBuf>,
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
            let mut app = match &bundle {
                Some(bundle) => ReviewApp::inspect(bundle, reviewer, &creation.egui_ctx),
                None => ReviewApp::open(sources, reviewer, &creation.egui_ctx),
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
