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
    AcceptedSession, Analysis, BundleSource, Lamports, Limits, LoadedBundle, OutputLayout,
    PipelineConfig, RejectReason, RunInfo, SegmentAlignedFile, SegmentFiles, SegmentQualityFile,
    SegmentRecord, SessionFile, SessionId, SessionRecord, SessionStatus, WalletAddress,
};
use sd_ledger::Ledger;
use serde::Serialize;

use crate::args::ProcessArgs;

/// `process --json`: the whole run as one document.
#[derive(Debug, Serialize)]
struct RunDocument<'a> {
    run: &'a RunInfo,
    summary: &'a Summary,
    sessions: &'a [SessionLine],
    ignored: &'a [sd_core::Ignored],
    clean: std::borrow::Cow<'a, str>,
    review: std::borrow::Cow<'a, str>,
    ledger: std::borrow::Cow<'a, str>,
    elapsed_s: f64,
    /// Peak resident set size of this process (Linux `VmHWM`).
    peak_rss_kb: Option<u64>,
}

/// How one session ended, for the summary.
#[derive(Debug, Clone, Serialize)]
struct SessionLine {
    session_id: String,
    wallet: String,
    status: SessionStatus,
    reject_code: Option<String>,
    reject_message: Option<String>,
    frames: usize,
    segments: usize,
    clean_segments: usize,
    review_segments: usize,
    /// Failing checks of the segments that did not pass (one segment may fail several).
    failed_checks: Vec<String>,
    seconds: f64,
}

pub fn run(args: &ProcessArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::load(args.config.as_deref())?;
    let rate = config
        .payout
        .rate()
        .context("payout.lamports_per_segment is too large")?;
    let discovery = sd_core::discover(&args.raw)?;
    // The layout first: a refused layout must not leave a new, empty ledger behind.
    let layout = args.layout.open()?;
    let ledger_path = &args.ledger.ledger;
    if let Some(parent) = ledger_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut ledger = Ledger::open(ledger_path)
        .with_context(|| format!("cannot open the ledger {}", ledger_path.display()))?;
    if let Some(ledger_rate) = ledger.rate()? {
        anyhow::ensure!(
            ledger_rate == rate,
            "the ledger {} pays {} lamports per segment but the config says {}: nothing was \
             processed. Use the ledger's rate (payout.lamports_per_segment = {}), or change it \
             with `scale-diffusion payouts set-rate LAMPORTS` (re-prices pending payouts only)",
            ledger_path.display(),
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
    let mut lines = Vec::with_capacity(discovery.bundles.len());
    let mut not_processed = Vec::new();
    for (n, source) in discovery.bundles.iter().enumerate() {
        let result = process_session(
            source,
            n,
            &config,
            rate,
            &layout,
            &mut ledger,
            &run,
            !(args.quiet || args.json),
        );
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
            ledger: ledger_path.to_string_lossy(),
            elapsed_s: started.elapsed().as_secs_f64(),
            peak_rss_kb: peak_rss_kb(),
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

#[allow(clippy::too_many_arguments)]
fn process_session(
    source: &BundleSource,
    n: usize,
    config: &PipelineConfig,
    rate: Lamports,
    layout: &OutputLayout,
    ledger: &mut Ledger,
    run: &RunInfo,
    progress: bool,
) -> anyhow::Result<SessionLine> {
    let started = Instant::now();
    let staged = layout.stage(&run.run_id, n)?;
    let bar = if progress {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix}  {pos} frames decoded, {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(source.session_id.clone());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        ProgressBar::hidden()
    };
    let analysis = sd_core::analyse_bundle(
        source,
        config,
        &Limits::default(),
        staged.frames_dir(),
        |frames| bar.set_position(frames as u64),
    )?;
    bar.finish_and_clear();
    let analysed_s = started.elapsed().as_secs_f64();

    let source_text = source.folder.display().to_string();
    let line = match analysis {
        Analysis::Rejected {
            reason: reason @ RejectReason::Unreadable { .. },
            ..
        } => {
            // A part that exists but cannot be read is this machine's problem (permissions, a
            // failing disk), not the contributor's: never a rejection that takes money back.
            layout.discard(staged)?;
            anyhow::bail!("{reason}");
        }
        Analysis::Rejected { loaded, reason } => {
            let wallet = rejected_wallet(source, &loaded);
            let session_file = SessionFile::rejected(&loaded, &reason, &wallet, run);
            let session_json = serde_json::to_vec_pretty(&session_file)?;
            let report_html =
                sd_core::render_report(&session_file, &config.quality, &Default::default());
            // The record goes where reviewers look only when its ids are safe to use as a path.
            match (
                WalletAddress::parse(&wallet),
                SessionId::parse(&source.session_id),
            ) {
                (Ok(wallet), Ok(session)) => {
                    layout.publish_rejected(
                        &wallet,
                        &session,
                        staged,
                        &session_json,
                        report_html.as_bytes(),
                    )?;
                }
                _ => layout.discard(staged)?,
            }
            let record = SessionRecord {
                wallet: wallet.clone(),
                session_id: source.session_id.clone(),
                source: source_text,
                status: SessionStatus::Rejected,
                reject_code: Some(reason.code().to_owned()),
                reject_message: Some(reason.to_string()),
                frames: loaded.video.as_ref().map_or(0, |v| v.frame_pts_ms.len()),
                clock_confidence: None,
                session_json: String::from_utf8_lossy(&session_json).into_owned(),
                segments: Vec::new(),
            };
            ledger.record_session(&record, rate, &run.processed_at, &run.run_id)?;
            rejected_line(source, &wallet, &reason, &loaded, started)
        }
        Analysis::Accepted(session) => {
            let session = *session;
            let wallet = session.bundle.wallet.clone();
            let session_id = session.bundle.session_id.clone();
            let overrides = ledger.session_overrides(wallet.as_str(), session_id.as_str())?;
            let placements = sd_core::place_segments(&session, &overrides);
            let files = segment_files(&session, &placements, run)?;
            let timeline = sd_core::align_config(config).timeline;
            let session_file = SessionFile::accepted(&session, &placements, &timeline, run);
            let session_json = serde_json::to_vec_pretty(&session_file)?;
            let thumbnails = thumbnails(&session_file, staged.frames_dir());
            let report_html = sd_core::render_report(&session_file, &config.quality, &thumbnails);
            let publish_started = Instant::now();
            let published = layout.publish_session(
                &wallet,
                &session_id,
                staged,
                &files,
                &session_json,
                report_html.as_bytes(),
            )?;
            let publish_s = publish_started.elapsed().as_secs_f64();
            let record = accepted_record(&session, &source_text, &session_json);
            let recorded = ledger.record_session(&record, rate, &run.processed_at, &run.run_id)?;
            for (row, placement) in recorded.segments.iter().zip(&placements) {
                if row.verdict != placement.verdict {
                    // Only an override made while this session was processing can do this; the
                    // next run puts the segment where the ledger says.
                    tracing::warn!(segment = %row.key, "verdict changed while publishing; rerun to converge");
                }
            }
            tracing::info!(
                session = %session_id,
                clean = published.clean_segments,
                review = published.review_segments,
                withdrawn = published.withdrawn_segments,
                analysed_s,
                publish_s,
                "published"
            );
            let mut failed_checks = Vec::new();
            for (quality, placement) in session.verdicts.iter().zip(&placements) {
                if !placement.verdict.passed() {
                    failed_checks.extend(quality.failed.iter().map(crate::inspect::name));
                    if quality.failed.is_empty() {
                        failed_checks.push("reviewer_override".to_owned());
                    }
                }
            }
            SessionLine {
                session_id: session_id.to_string(),
                wallet: wallet.to_string(),
                status: SessionStatus::Accepted,
                reject_code: None,
                reject_message: None,
                frames: session.bundle.video.frame_pts_ms.len(),
                segments: placements.len(),
                clean_segments: published.clean_segments,
                review_segments: published.review_segments,
                failed_checks,
                seconds: started.elapsed().as_secs_f64(),
            }
        }
    };
    Ok(line)
}

/// Small copies of a few frames of each segment, from the frames just written.
pub(crate) fn thumbnails(session: &SessionFile, frames_dir: &Path) -> sd_core::Thumbnails {
    let mut thumbnails = sd_core::Thumbnails::new();
    for frame in sd_core::thumbnail_frames(session) {
        let path = frames_dir.join(sd_core::frame_file_name(frame));
        let small = std::fs::read(&path)
            .map_err(|err| err.to_string())
            .and_then(|jpeg| sd_core::thumbnail_jpeg(&jpeg).map_err(|err| err.to_string()));
        match small {
            Ok(small) => {
                thumbnails.insert(frame, small);
            }
            // A report without one picture is still a report.
            Err(err) => tracing::warn!(path = %path.display(), "no thumbnail: {err}"),
        }
    }
    thumbnails
}

/// The wallet a rejected bundle is filed under: the storage key's, else what meta says, else
/// (nothing says) its folder, so that unrelated wallet-less bundles never share a record.
pub(crate) fn rejected_wallet(source: &BundleSource, loaded: &LoadedBundle) -> String {
    source
        .key_wallet
        .clone()
        .or_else(|| loaded.meta.as_ref().map(|meta| meta.wallet_address.clone()))
        .unwrap_or_else(|| format!("(no wallet: {})", source.folder.display()))
}

fn rejected_line(
    source: &BundleSource,
    wallet: &str,
    reason: &RejectReason,
    loaded: &LoadedBundle,
    started: Instant,
) -> SessionLine {
    SessionLine {
        session_id: source.session_id.clone(),
        wallet: wallet.to_owned(),
        status: SessionStatus::Rejected,
        reject_code: Some(reason.code().to_owned()),
        reject_message: Some(reason.to_string()),
        frames: loaded.video.as_ref().map_or(0, |v| v.frame_pts_ms.len()),
        segments: 0,
        clean_segments: 0,
        review_segments: 0,
        failed_checks: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn segment_files(
    session: &AcceptedSession,
    placements: &[sd_core::Placement],
    run: &RunInfo,
) -> anyhow::Result<Vec<SegmentFiles>> {
    let mut files = Vec::with_capacity(placements.len());
    for ((segment, quality), placement) in session
        .splice
        .segments
        .iter()
        .zip(&session.verdicts)
        .zip(placements)
    {
        let aligned = SegmentAlignedFile::new(session, segment);
        let quality_file = SegmentQualityFile::new(session, segment, quality, placement, run);
        files.push(SegmentFiles {
            segment: segment.index,
            frames: segment.rows.iter().map(|row| row.frame).collect(),
            location: placement.location,
            aligned_json: serde_json::to_vec_pretty(&aligned)?,
            quality_json: serde_json::to_vec_pretty(&quality_file)?,
        });
    }
    Ok(files)
}

fn accepted_record(session: &AcceptedSession, source: &str, session_json: &[u8]) -> SessionRecord {
    let bundle = &session.bundle;
    SessionRecord {
        wallet: bundle.wallet.to_string(),
        session_id: bundle.session_id.to_string(),
        source: source.to_owned(),
        status: SessionStatus::Accepted,
        reject_code: None,
        reject_message: None,
        frames: bundle.video.frame_pts_ms.len(),
        clock_confidence: Some(session.alignment.clock.min_confidence()),
        session_json: String::from_utf8_lossy(session_json).into_owned(),
        segments: session
            .splice
            .segments
            .iter()
            .zip(&session.verdicts)
            .map(|(segment, quality)| SegmentRecord {
                segment: segment.index,
                first_frame: segment.first_frame,
                last_frame: segment.last_frame,
                frames: segment.rows.len(),
                start_pts_ms: segment.start_pts_ms,
                end_pts_ms: segment.end_pts_ms,
                passed: quality.passed,
                checks: quality.checks.clone(),
            })
            .collect(),
    }
}

fn session_line(line: &SessionLine) -> String {
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
    fn build(lines: &[SessionLine], ledger: &Ledger, not_processed: usize) -> anyhow::Result<Self> {
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
        let _ = writeln!(
            out,
            "payouts (ledger {}):",
            display_path(&args.ledger.ledger)
        );
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

/// This process's peak resident set size (Linux `VmHWM`), for the benchmark and for people
/// sizing workers.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}
