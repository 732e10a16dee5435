//! `scale-diffusion report`: one bundle's visual report (a self-contained HTML page), without
//! publishing or recording anything. `process` writes the same page beside every `session.json`.

use std::process::ExitCode;

use anyhow::Context as _;
use sd_core::{Analysis, Limits, RunInfo, SessionFile};

use crate::args::ReportArgs;

pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::load(args.config.as_deref())?;
    let discovery = sd_core::discover(&args.bundle)?;
    let source = crate::align::select_session(&discovery, &args.bundle, args.session.as_deref())?;
    let frames = tempfile::Builder::new()
        .prefix("sd-report-")
        .tempdir()
        .context("cannot create a temporary folder for the frames")?;
    let run = RunInfo {
        run_id: format!("report-{}", crate::clock::run_id()),
        processed_at: crate::clock::now_rfc3339(),
    };
    let analysis =
        sd_core::analyse_bundle(source, &config, &Limits::default(), frames.path(), |_| {})?;
    let (session, thumbnails) = match analysis {
        Analysis::Rejected { loaded, reason } => {
            let wallet = sd_core::rejected_wallet(source, &loaded);
            (
                SessionFile::rejected(&loaded, &reason, &wallet, &run),
                sd_core::Thumbnails::new(),
            )
        }
        Analysis::Accepted(session) => {
            // No ledger here: CLEAN's verdicts, without reviewer overrides.
            let placements = sd_core::place_segments(&session, &[]);
            let timeline = sd_core::align_config(&config).timeline;
            let file = SessionFile::accepted(&session, &placements, &timeline, &run);
            let thumbnails = sd_core::thumbnails(&file, frames.path());
            (file, thumbnails)
        }
    };
    let html = sd_core::render_report(&session, &config.quality, &thumbnails);
    crate::output::write_atomic(&args.out, html.as_bytes())?;
    crate::output::print(&format!(
        "{}: {} report ({} KB) -> {}\n",
        session.session_id,
        session.status.as_str(),
        html.len() / 1024,
        args.out.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}
