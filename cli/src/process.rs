//! `scale-diffusion process`: every bundle under RAW through ALIGN -> SPLICE -> CLEAN, published
//! to the clean layout (passing segments) or the review area (failed ones), and recorded in the
//! payout ledger. A rejected bundle is a finding: recorded with its reason, nothing published,
//! nothing paid, and the run goes on.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use sd_core::{
    Limits, OutputLayout, RunInfo, SessionError, SessionJob, SessionOutcome, SessionStatus,
};
use sd_ledger::Ledger;
use serde::Serialize;

use crate::args::ProcessArgs;

/// `process --json`: the whole run as one document.
#[derive(Debug, Serialize)]
struct RunDocument<'a> {
    run: &'a RunInfo,
    summary: &'a Summary,
    sessions: &'a [SessionOutcome],
    ignored: &'a [sd_core::Ignored],
    clean: std::borrow::Cow<'a, str>,
    review: std::borrow::Cow<'a, str>,
    ledger: std::borrow::Cow<'a, str>,
    elapsed_s: f64,
    /// Peak resident set size of this process (Linux `VmHWM`).
    peak_rss_kb: Option<u64>,
}

pub fn run(args: &ProcessArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::load(args.config.as_deref())?;
    let rate = config
        .payout
        .rate()
        .context("payout.lamports_per_segment is too large")?;
    let discovery = sd_core::discover(&args.raw)?;
    // The layout first: a refused layout must not leave a new, empty ledger behind.
    let mut layout = args.layout.open()?;
    let location = &args.ledger.ledger;
    if let Some(parent) = location
        .path()
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut ledger =
        Ledger::open_at(location).with_context(|| format!("cannot open the ledger {location}"))?;
    if let Some(ledger_rate) = ledger.rate()? {
        anyhow::ensure!(
            ledger_rate == rate,
            "the ledger {} pays {} lamports per segment but the config says {}: nothing was \
             processed. Use the ledger's rate (payout.lamports_per_segment = {}), or change it \
             with `scale-diffusion payouts set-rate LAMPORTS` (re-prices pending payouts only)",
            location,
            ledger_rate.0,
            rate.0,
            ledger_rate.0
        );
    }
    let run = RunInfo {
        run_id: crate::clock::run_id(),
        processed_at: crate::clock::now_rfc3339(),
    };
    tracing::info!(run_id = %run.run_id, bundles = discovery.bundles.len(), "process run starts");

    let started = Instant::now();
    let limits = Limits::default();
    let mut lines = Vec::with_capacity(discovery.bundles.len());
    let mut not_processed = Vec::new();
    for (n, source) in discovery.bundles.iter().enumerate() {
        let label = format!("{}-{n:05}", run.run_id);
        let origin = source.folder.display().to_string();
        let job = SessionJob {
            source,
            config: &config,
            limits: &limits,
            rate,
            run: &run,
            label: &label,
            origin: &origin,
        };
        let span =
            sd_core::trace::session_span(&source.session_id, source.key_wallet.as_deref(), &origin);
        let result = span
            .in_scope(|| process_one(job, &mut layout, &mut ledger, !(args.quiet || args.json)));
        drop(span);
        match result {
            Ok(line) => {
                if !(args.quiet || args.json) {
                    crate::output::print(&session_line(&line))?;
                }
                lines.push(line);
            }
            Err(err) => {
                // A system problem (disk, permissions), not the contributor's: nothing of this
                // session is recorded and its earlier record stands; the others go on.
                let message = format!(
                    "{} in {}: NOT PROCESSED, its earlier record (if any) stands: {err:#}",
                    source.session_id,
                    source.folder.display()
                );
                tracing::error!("{message}");
                eprintln!("error: {message}");
                not_processed.push(source.session_id.clone());
            }
        }
    }

    let summary = Summary::build(&lines, &ledger, not_processed.len())?;
    if args.json {
        let doc = RunDocument {
            run: &run,
            summary: &summary,
            sessions: &lines,
            ignored: &discovery.ignored,
            clean: args.layout.out.to_string_lossy(),
            review: args.layout.review.to_string_lossy(),
            ledger: location.to_string().into(),
            elapsed_s: started.elapsed().as_secs_f64(),
            peak_rss_kb: sd_telemetry::peak_rss_kb(),
        };
        crate::output::print(&(serde_json::to_string_pretty(&doc)? + "\n"))?;
    } else {
        crate::output::print(&render_summary(
            &summary,
            args,
            started.elapsed(),
            discovery.ignored.len(),
        ))?;
    }
    if not_processed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: {} session(s) could not be processed because of a system error (see above): {}",
            not_processed.len(),
            not_processed.join(", ")
        );
        Ok(ExitCode::FAILURE)
    }
}

/// One session through `sd_core::process_session`, with a progress line while it decodes.
fn process_one(
    job: SessionJob<'_>,
    layout: &mut OutputLayout,
    ledger: &mut Ledger,
    progress: bool,
) -> Result<SessionOutcome, SessionError> {
    let bar = if progress {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix}  {pos} frames decoded, {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(job.source.session_id.clone());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        ProgressBar::hidden()
    };
    let outcome = sd_core::process_session(job, layout, ledger, |frames| {
        bar.set_position(frames as u64)
    });
    bar.finish_and_clear();
    outcome
}

fn session_line(line: &SessionOutcome) -> String {
    match line.status {
        SessionStatus::Rejected => format!(
            "{}  REJECTED ({}): {}\n",
            line.session_id,
            line.reject_code.as_deref().unwrap_or("?"),
            line.reject_message.as_deref().unwrap_or("")
        ),
        SessionStatus::Accepted => format!(
            "{}  accepted · {} frames · {} segment{}: {} published, {} to review · {:.1} s\n",
            line.session_id,
            line.frames,
            line.segments,
            if line.segments == 1 { "" } else { "s" },
            line.clean_segments,
            line.review_segments,
            line.seconds
        ),
    }
}

/// The one-screen summary at the end of a run.
#[derive(Debug, Serialize)]
struct Summary {
    sessions: usize,
    /// Sessions a system error kept from being processed (nothing recorded for them).
    not_processed: usize,
    accepted: usize,
    rejected: usize,
    rejected_by_code: BTreeMap<String, usize>,
    segments: usize,
    segments_published: usize,
    segments_to_review: usize,
    failed_by_check: BTreeMap<String, usize>,
    /// From the ledger: every wallet's totals after this run.
    wallets: Vec<sd_ledger::WalletTotals>,
}

impl Summary {
    fn build(
        lines: &[SessionOutcome],
        ledger: &Ledger,
        not_processed: usize,
    ) -> anyhow::Result<Self> {
        let mut rejected_by_code = BTreeMap::new();
        let mut failed_by_check = BTreeMap::new();
        for line in lines {
            if let Some(code) = &line.reject_code {
                *rejected_by_code.entry(code.clone()).or_default() += 1;
            }
            for check in &line.failed_checks {
                *failed_by_check.entry(check.clone()).or_default() += 1;
            }
        }
        let accepted = lines
            .iter()
            .filter(|l| l.status == SessionStatus::Accepted)
            .count();
        Ok(Self {
            sessions: lines.len() + not_processed,
            not_processed,
            accepted,
            rejected: lines.len() - accepted,
            rejected_by_code,
            segments: lines.iter().map(|l| l.segments).sum(),
            segments_published: lines.iter().map(|l| l.clean_segments).sum(),
            segments_to_review: lines.iter().map(|l| l.review_segments).sum(),
            failed_by_check,
            wallets: ledger.wallet_totals()?,
        })
    }
}

fn render_summary(
    summary: &Summary,
    args: &ProcessArgs,
    elapsed: Duration,
    ignored: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = write!(
        out,
        "{} session{} in {:.1} s: {} accepted, {} rejected",
        summary.sessions,
        if summary.sessions == 1 { "" } else { "s" },
        elapsed.as_secs_f64(),
        summary.accepted,
        summary.rejected
    );
    if summary.not_processed > 0 {
        let _ = write!(
            out,
            ", {} NOT PROCESSED (system errors above)",
            summary.not_processed
        );
    }
    if !summary.rejected_by_code.is_empty() {
        let codes: Vec<String> = summary
            .rejected_by_code
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        let _ = write!(out, " ({})", codes.join(", "));
    }
    out.push('\n');
    let _ = write!(
        out,
        "segments: {} cut, {} passed (published), {} failed (to review)",
        summary.segments, summary.segments_published, summary.segments_to_review
    );
    if !summary.failed_by_check.is_empty() {
        let checks: Vec<String> = summary
            .failed_by_check
            .iter()
            .map(|(check, n)| format!("{check} {n}"))
            .collect();
        let _ = write!(out, "; failing checks: {}", checks.join(", "));
    }
    out.push('\n');
    if ignored > 0 {
        let _ = writeln!(
            out,
            "{ignored} file(s) under {} are not parts of any bundle (`inspect` lists them)",
            args.raw.display()
        );
    }
    if summary.wallets.is_empty() {
        let _ = writeln!(out, "payouts: no wallet has a valid segment");
    } else {
        let _ = writeln!(out, "payouts (ledger {}):", args.ledger.ledger);
        crate::payouts::render_wallet_totals(&mut out, &summary.wallets);
    }
    let _ = writeln!(
        out,
        "published: {} · review: {}",
        display_path(&args.layout.out),
        display_path(&args.layout.review)
    );
    out
}

fn display_path(path: &Path) -> String {
    path.display().to_string()
}
