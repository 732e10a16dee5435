//! One session through the whole pipeline, whoever runs it: `scale-diffusion process` on a local
//! folder and the server's worker on a bucket call [`process_session`] with their own
//! [`PublishTarget`] and [`SessionLedger`]. Order of effects: analyse (frames into staging),
//! assemble, publish, then record in the ledger; a system error before the ledger leaves the
//! session's earlier record standing.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::discover::BundleSource;
use crate::fingerprint::{
    duplicate_check, find_duplicate, DuplicateConfig, EarlierLookup, FingerprintFrame,
    SegmentFingerprint,
};
use crate::frames::FrameWriteError;
use crate::ids::{SessionId, WalletAddress};
use crate::ledger::{
    DuplicateRecheck, Lamports, OverrideNote, SegmentRecord, SessionRecord, SessionStatus, Verdict,
};
use crate::outputs::{
    place_segments, Placement, RunInfo, SegmentAlignedFile, SegmentQualityFile, SessionFile,
};
use crate::parse::Limits;
use crate::pipeline::{align_config, analyse_bundle, AcceptedSession, Analysis};
use crate::publish::{PublishError, PublishTarget, SegmentFiles, SessionContent};
use crate::reject::RejectReason;
use crate::report::{render_report, thumbnail_frames, Thumbnails};
use crate::trace;
use crate::{bundle::LoadedBundle, config::PipelineConfig};

/// What processing a session needs from the payout ledger.
pub trait SessionLedger {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Every reviewer override recorded for the session (the pipeline applies the ones that
    /// still fit its cut).
    fn session_overrides(
        &mut self,
        wallet: &WalletAddress,
        session: &SessionId,
    ) -> Result<Vec<OverrideNote>, Self::Error>;

    /// The earlier segments a segment of this session showing `fingerprint` is compared with:
    /// those sharing its frames' keys in the fingerprint index, of any wallet but never of this
    /// session, recorded before this drive first was (a reprocess keeps the place of the drive
    /// its earlier record showed: it never matches its own later copies).
    fn earlier_segments(
        &mut self,
        wallet: &WalletAddress,
        session: &SessionId,
        fingerprint: &SegmentFingerprint,
        rule: &DuplicateConfig,
    ) -> Result<EarlierLookup, Self::Error>;

    /// Replaces the session's record (one transaction) and answers with each segment's
    /// effective verdict, in segment order.
    fn record_session(
        &mut self,
        record: &SessionRecord,
        rate: Lamports,
        run: &RunInfo,
    ) -> Result<Vec<Verdict>, Self::Error>;
}

/// A system problem that kept a session from being processed (never the contributor's fault):
/// nothing of it is recorded, its earlier record stands, and the run goes on.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot stage the session: {0}")]
    Stage(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Frames(#[from] FrameWriteError),
    /// A part exists but cannot be read: this machine's problem (permissions, a failing disk),
    /// never a rejection that takes money back.
    #[error("{0}")]
    Unreadable(RejectReason),
    #[error("cannot lay the session out in staging: {0}")]
    Assemble(#[from] PublishError),
    #[error("cannot publish: {0}")]
    Publish(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot record the session in the ledger: {0}")]
    Ledger(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot write {what} as JSON: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
}

/// One session to process.
#[derive(Debug, Clone, Copy)]
pub struct SessionJob<'a> {
    pub source: &'a BundleSource,
    pub config: &'a PipelineConfig,
    pub limits: &'a Limits,
    pub rate: Lamports,
    pub run: &'a RunInfo,
    /// Unique within the run: names the session's staging folder.
    pub label: &'a str,
    /// Where the bundle came from, as the ledger records it (a folder, an `s3://` prefix).
    pub origin: &'a str,
}

/// How one session ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionOutcome {
    pub session_id: String,
    pub wallet: String,
    pub status: SessionStatus,
    pub reject_code: Option<String>,
    pub reject_message: Option<String>,
    pub frames: usize,
    pub segments: usize,
    pub clean_segments: usize,
    pub review_segments: usize,
    /// Failing checks of the segments that did not pass (one segment may fail several;
    /// `reviewer_override` when a reviewer failed a segment CLEAN passed).
    pub failed_checks: Vec<String>,
    /// A reviewer's override was recorded while the session was processing: what was published
    /// places a segment where the ledger no longer does. Processing the session again converges.
    pub placements_stale: bool,
    pub seconds: f64,
}

/// Runs one session: ALIGN -> SPLICE -> CLEAN in one decode, its files assembled in the target's
/// staging, published by the target, then recorded in the ledger. A bundle that cannot be used
/// is an outcome (rejected, with its reason recorded), not an error.
///
/// Run it inside the session's [`trace::session_span`]: each step is a child span of it, and the
/// outcome (or the error) is recorded on it.
pub fn process_session<T: PublishTarget, L: SessionLedger>(
    job: SessionJob<'_>,
    target: &mut T,
    ledger: &mut L,
    on_frame: impl FnMut(usize),
) -> Result<SessionOutcome, SessionError> {
    let root = tracing::Span::current();
    let result = run_session(job, target, ledger, on_frame, &root);
    match &result {
        Ok(outcome) => trace::record_outcome(&root, outcome, job.rate),
        Err(err) => trace::record_error(&root, &err.to_string()),
    }
    result
}

fn run_session<T: PublishTarget, L: SessionLedger>(
    job: SessionJob<'_>,
    target: &mut T,
    ledger: &mut L,
    on_frame: impl FnMut(usize),
    root: &tracing::Span,
) -> Result<SessionOutcome, SessionError> {
    let started = Instant::now();
    let SessionJob {
        source,
        config,
        limits,
        rate,
        run,
        label,
        origin,
    } = job;
    let staged = target
        .stage(label)
        .map_err(|err| SessionError::Stage(Box::new(err)))?;
    let analysis = match analyse_bundle(source, config, limits, staged.frames_dir(), on_frame) {
        Ok(analysis) => analysis,
        Err(err) => {
            let _ = staged.remove();
            return Err(err.into());
        }
    };
    let analysed_s = started.elapsed().as_secs_f64();
    let json = |what: &'static str| move |source| SessionError::Json { what, source };
    match analysis {
        Analysis::Rejected {
            reason: reason @ RejectReason::Unreadable { .. },
            ..
        } => {
            staged.remove()?;
            Err(SessionError::Unreadable(reason))
        }
        Analysis::Rejected { loaded, reason } => {
            let wallet = rejected_wallet(source, &loaded);
            let session_file = SessionFile::rejected(&loaded, &reason, &wallet, run);
            let session_json =
                serde_json::to_vec_pretty(&session_file).map_err(json("session.json"))?;
            let report_html = render_report(&session_file, &config.quality, &Thumbnails::new());
            // The record goes where reviewers look only when its ids are safe to use as a path.
            match (
                WalletAddress::parse(&wallet),
                SessionId::parse(&source.session_id),
            ) {
                (Ok(wallet), Ok(session)) => {
                    let _publish = trace::step_span("publish").entered();
                    let assembled = staged.assemble(SessionContent {
                        wallet: &wallet,
                        session: &session,
                        status: SessionStatus::Rejected,
                        run,
                        segments: &[],
                        session_json: &session_json,
                        report_html: report_html.as_bytes(),
                    })?;
                    target
                        .publish(assembled)
                        .map_err(|err| SessionError::Publish(Box::new(err)))?;
                }
                _ => staged.remove()?,
            }
            let frames = loaded.video.as_ref().map_or(0, |v| v.frame_pts_ms.len());
            let record = SessionRecord {
                wallet: wallet.clone(),
                session_id: source.session_id.clone(),
                source: origin.to_owned(),
                status: SessionStatus::Rejected,
                reject_code: Some(reason.code().to_owned()),
                reject_message: Some(reason.to_string()),
                frames,
                clock_confidence: None,
                session_json: String::from_utf8_lossy(&session_json).into_owned(),
                duplicate_recheck: None,
                segments: Vec::new(),
            };
            trace::step_span("ledger").in_scope(|| {
                ledger
                    .record_session(&record, rate, run)
                    .map_err(|err| SessionError::Ledger(Box::new(err)))
            })?;
            Ok(SessionOutcome {
                session_id: source.session_id.clone(),
                wallet,
                status: SessionStatus::Rejected,
                reject_code: record.reject_code,
                reject_message: record.reject_message,
                frames,
                segments: 0,
                clean_segments: 0,
                review_segments: 0,
                failed_checks: Vec::new(),
                placements_stale: false,
                seconds: started.elapsed().as_secs_f64(),
            })
        }
        Analysis::Accepted(session) => {
            let mut session = *session;
            let wallet = session.bundle.wallet.clone();
            let session_id = session.bundle.session_id.clone();
            trace::record_clock(root, &session.alignment.clock);
            let fingerprints = segment_fingerprints(&session);
            let (recheck, overrides) = trace::step_span("ledger").in_scope(|| {
                let recheck = check_duplicates(&mut session, &fingerprints, config, ledger)?;
                ledger
                    .session_overrides(&wallet, &session_id)
                    .map(|overrides| (recheck, overrides))
                    .map_err(|err| SessionError::Ledger(Box::new(err)))
            })?;
            let placements = place_segments(&session, &overrides);
            let files = segment_files(&session, &placements, run)?;
            let timeline = align_config(config).timeline;
            let session_file = SessionFile::accepted(&session, &placements, &timeline, run);
            let session_json =
                serde_json::to_vec_pretty(&session_file).map_err(json("session.json"))?;
            let thumbnails = thumbnails(&session_file, staged.frames_dir());
            let report_html = render_report(&session_file, &config.quality, &thumbnails);
            let publish_started = Instant::now();
            let publish_span = trace::step_span("publish").entered();
            let assembled = staged.assemble(SessionContent {
                wallet: &wallet,
                session: &session_id,
                status: SessionStatus::Accepted,
                run,
                segments: &files,
                session_json: &session_json,
                report_html: report_html.as_bytes(),
            })?;
            let published = target
                .publish(assembled)
                .map_err(|err| SessionError::Publish(Box::new(err)))?;
            drop(publish_span);
            let publish_s = publish_started.elapsed().as_secs_f64();
            let record = accepted_record(origin, &session, &session_json, fingerprints, recheck);
            let verdicts = trace::step_span("ledger").in_scope(|| {
                ledger
                    .record_session(&record, rate, run)
                    .map_err(|err| SessionError::Ledger(Box::new(err)))
            })?;
            let mut placements_stale = false;
            for (segment, (verdict, placement)) in verdicts.iter().zip(&placements).enumerate() {
                if *verdict != placement.verdict {
                    // Only an override made while this session was processing can do this; the
                    // next run puts the segment where the ledger says.
                    placements_stale = true;
                    tracing::warn!(
                        session = %session_id,
                        segment = segment + 1,
                        "verdict changed while publishing; rerun to converge"
                    );
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
                    failed_checks.extend(quality.failed.iter().map(|c| c.as_str().to_owned()));
                    if quality.failed.is_empty() {
                        failed_checks.push("reviewer_override".to_owned());
                    }
                }
            }
            Ok(SessionOutcome {
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
                placements_stale,
                seconds: started.elapsed().as_secs_f64(),
            })
        }
    }
}

/// Small copies of a few frames of each segment, from the frames just written.
pub fn thumbnails(session: &SessionFile, frames_dir: &Path) -> Thumbnails {
    let mut thumbnails = Thumbnails::new();
    for frame in thumbnail_frames(session) {
        let path = frames_dir.join(crate::frames::frame_file_name(frame));
        let small = std::fs::read(&path)
            .map_err(|err| err.to_string())
            .and_then(|jpeg| crate::frames::thumbnail_jpeg(&jpeg).map_err(|err| err.to_string()));
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
pub fn rejected_wallet(source: &BundleSource, loaded: &LoadedBundle) -> String {
    source
        .key_wallet
        .clone()
        .or_else(|| loaded.meta.as_ref().map(|meta| meta.wallet_address.clone()))
        .unwrap_or_else(|| format!("(no wallet: {})", source.folder.display()))
}

fn segment_files(
    session: &AcceptedSession,
    placements: &[Placement],
    run: &RunInfo,
) -> Result<Vec<SegmentFiles>, SessionError> {
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
            aligned_json: serde_json::to_vec_pretty(&aligned).map_err(|source| {
                SessionError::Json {
                    what: "aligned.json",
                    source,
                }
            })?,
            quality_json: serde_json::to_vec_pretty(&quality_file).map_err(|source| {
                SessionError::Json {
                    what: "quality.json",
                    source,
                }
            })?,
        });
    }
    Ok(files)
}

/// Each segment's fingerprint: its frames that have a hash and a time, with the frame indices.
fn segment_fingerprints(session: &AcceptedSession) -> Vec<(SegmentFingerprint, Vec<(usize, i64)>)> {
    let video = &session.bundle.video;
    session
        .splice
        .segments
        .iter()
        .map(|segment| {
            let frames: Vec<(usize, FingerprintFrame)> = segment
                .rows
                .iter()
                .filter_map(|row| {
                    let pts = (*video.frame_pts_ms.get(row.frame)?)?;
                    let hash = video.frame_stats.get(row.frame)?.fingerprint?;
                    Some((
                        row.frame,
                        FingerprintFrame {
                            pts_ms: pts.round() as i64,
                            hash,
                        },
                    ))
                })
                .collect();
            (
                SegmentFingerprint::new(frames.iter().map(|(_, f)| *f).collect()),
                frames.iter().map(|(i, f)| (*i, f.pts_ms)).collect(),
            )
        })
        .collect()
}

/// Adds the `duplicate` check to every segment: its fingerprint against the earlier segments the
/// ledger's index hands over.
/// Returns what the checks rested on, for the ledger to check again what came after.
fn check_duplicates<L: SessionLedger>(
    session: &mut AcceptedSession,
    fingerprints: &[(SegmentFingerprint, Vec<(usize, i64)>)],
    config: &PipelineConfig,
    ledger: &mut L,
) -> Result<DuplicateRecheck, SessionError> {
    let rule = &config.quality.duplicate;
    let mut checked_through: Option<i64> = None;
    for (quality, (fingerprint, frames)) in session.verdicts.iter_mut().zip(fingerprints) {
        let lookup = ledger
            .earlier_segments(
                &session.bundle.wallet,
                &session.bundle.session_id,
                fingerprint,
                rule,
            )
            .map_err(|err| SessionError::Ledger(Box::new(err)))?;
        checked_through = Some(checked_through.map_or(lookup.checked_through, |seen| {
            seen.min(lookup.checked_through)
        }));
        let finding = find_duplicate(fingerprint, &lookup.segments, rule);
        quality.add_check(duplicate_check(&finding, rule, frames));
    }
    Ok(DuplicateRecheck {
        rule: rule.clone(),
        // No segment: nothing to check again.
        checked_through: checked_through.unwrap_or(0),
    })
}

fn accepted_record(
    origin: &str,
    session: &AcceptedSession,
    session_json: &[u8],
    fingerprints: Vec<(SegmentFingerprint, Vec<(usize, i64)>)>,
    recheck: DuplicateRecheck,
) -> SessionRecord {
    let bundle = &session.bundle;
    SessionRecord {
        duplicate_recheck: Some(recheck),
        wallet: bundle.wallet.to_string(),
        session_id: bundle.session_id.to_string(),
        source: origin.to_owned(),
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
            .zip(fingerprints)
            .map(|((segment, quality), (fingerprint, _))| SegmentRecord {
                segment: segment.index,
                first_frame: segment.first_frame,
                last_frame: segment.last_frame,
                frames: segment.rows.len(),
                start_pts_ms: segment.start_pts_ms,
                end_pts_ms: segment.end_pts_ms,
                passed: quality.passed,
                checks: quality.checks.clone(),
                fingerprint,
            })
            .collect(),
    }
}
