//! The files a processed session is published as (SPEC section 5), built from the pipeline's own
//! results: `session.json` per session, and per segment `aligned.json` (frame -> action) and
//! `quality.json` (every check). Pure: data in, serialisable documents out. Schemas:
//! `scale-diffusion schema session|segment-aligned|segment-quality`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::actions::FrameAction;
use crate::align::{ActionSummary, AlignedVideo};
use crate::bundle::LoadedBundle;
use crate::clean::{CheckName, CheckResult, FrameThresholds, SegmentQuality};
use crate::clock::{ClockEstimate, RunClock};
use crate::frames::frame_file_name;
use crate::inspect::{part_reports, PartReport};
use crate::latency::LatencyModel;
use crate::ledger::{effective_verdict, OverrideNote, SessionStatus, Verdict};
use crate::pipeline::AcceptedSession;
use crate::reject::RejectReason;
use crate::splice::{Segment, Skipped};
use crate::timeline::{TimelineConfig, VideoHealth};

/// Version of the published layout and its three files; bumped on any change a consumer could
/// notice.
pub const OUTPUT_SCHEMA_VERSION: u32 = 4;

/// Where a segment is published.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// The clean layout consumers read: passing segments only.
    Clean,
    /// The review area: failed segments, kept for reviewers to look at and promote.
    Review,
}

impl Location {
    pub fn of(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Pass => Location::Clean,
            Verdict::Fail => Location::Review,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Location::Clean => "clean",
            Location::Review => "review",
        }
    }
}

/// Which run wrote a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RunInfo {
    pub run_id: String,
    /// RFC 3339, UTC.
    pub processed_at: String,
}

/// A segment's fate: its CLEAN verdict, the override that applies, and where it goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Placement {
    pub segment: usize,
    pub clean_passed: bool,
    /// The verdict that counts (an applicable override's, else CLEAN's).
    pub verdict: Verdict,
    #[serde(rename = "override")]
    pub override_note: Option<OverrideNote>,
    pub location: Location,
}

/// Decides every segment's placement from CLEAN's verdicts and the reviewer overrides on record.
pub fn place_segments(session: &AcceptedSession, overrides: &[OverrideNote]) -> Vec<Placement> {
    session
        .splice
        .segments
        .iter()
        .zip(&session.verdicts)
        .map(|(segment, quality)| {
            let (verdict, note) = effective_verdict(
                segment.index,
                segment.first_frame,
                segment.last_frame,
                quality.passed,
                overrides,
            );
            Placement {
                segment: segment.index,
                clean_passed: quality.passed,
                verdict,
                override_note: note.cloned(),
                location: Location::of(verdict),
            }
        })
        .collect()
}

/// One row of a segment's `aligned.json`: the frame's file and its action state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SegmentFrame {
    /// Relative to the segment folder: `frames/{frame:06}.jpg`.
    pub file: String,
    #[serde(flatten)]
    pub action: FrameAction,
}

/// `segment_NNN/aligned.json`: the frame -> action table of one segment, with the clock it rests
/// on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SegmentAlignedFile {
    pub schema_version: u32,
    pub session_id: String,
    pub wallet: String,
    pub segment: usize,
    pub video: AlignedVideo,
    pub latency: LatencyModel,
    /// The clock runs the segment's frames belong to (offset, source, confidence).
    pub runs: Vec<RunClock>,
    pub frames: Vec<SegmentFrame>,
}

/// `segment_NNN/quality.json`: every check of one segment and the verdict that counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SegmentQualityFile {
    pub schema_version: u32,
    pub session_id: String,
    pub wallet: String,
    pub segment: usize,
    pub first_frame: usize,
    pub last_frame: usize,
    pub frames: usize,
    pub start_pts_ms: f64,
    pub end_pts_ms: f64,
    pub start_page_ms: f64,
    pub end_page_ms: f64,
    pub placement: Placement,
    /// CLEAN's failing checks, in check order.
    pub failed: Vec<CheckName>,
    pub checks: Vec<CheckResult>,
    /// The per-frame lines of the picture checks (the session's `frame_metrics` hold the values).
    pub frame_thresholds: FrameThresholds,
    pub run: RunInfo,
}

/// The reason a session was rejected, as code, sentence and structured detail.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RejectNote {
    pub code: String,
    pub message: String,
    pub reason: RejectReason,
    /// Further problems found, after the first.
    pub other_problems: Vec<String>,
}

/// The decoded video of a session.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SessionVideo {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub frames: usize,
    pub decode_errors: usize,
    pub health: VideoHealth,
}

/// One segment as the session lists it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SessionSegment {
    pub segment: usize,
    pub first_frame: usize,
    pub last_frame: usize,
    pub frames: usize,
    pub start_pts_ms: f64,
    pub end_pts_ms: f64,
    pub failed: Vec<CheckName>,
    /// Every check: value, threshold, pass/fail, reason (as in the segment's `quality.json`).
    pub checks: Vec<CheckResult>,
    pub placement: Placement,
    /// Relative to the layout root: `{wallet}/{session_id}/segment_NNN`.
    pub path: String,
}

/// What the pipeline measured on one frame (the numbers CLEAN's checks are made of).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct FrameMetrics {
    pub frame: usize,
    pub pts_ms: Option<f64>,
    pub page_t_ms: Option<f64>,
    pub sharpness: Option<f32>,
    pub mean_luma: Option<f32>,
    pub luma_std: Option<f32>,
    /// Mean absolute difference from the previous frame (0-255).
    pub change: Option<f32>,
    /// Global shift from the previous frame (thumbnail pixels).
    pub shift_dx_px: Option<f64>,
    pub shift_dy_px: Option<f64>,
    pub blockiness: Option<f32>,
    pub histogram_jump: Option<f32>,
    /// What ALIGN says the player did at this frame (the same rows `aligned.json` holds): the
    /// driving keys held (`w`, `a`, `s`, `d`, in that order), the mouse movement since the
    /// previous frame, and the camera log's speed and yaw interpolated at the frame.
    pub driving_keys: Option<String>,
    pub mouse_dx: Option<f64>,
    pub mouse_dy: Option<f64>,
    pub speed: Option<f64>,
    pub yaw: Option<f64>,
}

/// `{wallet}/{session_id}/session.json`: the whole story of one processed session.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SessionFile {
    pub schema_version: u32,
    pub session_id: String,
    pub wallet: String,
    pub status: SessionStatus,
    pub run: RunInfo,
    /// The city prompt and scenario from meta, when it could be read.
    pub prompt: Option<String>,
    pub scenario: Option<String>,
    pub parts: Vec<PartReport>,
    pub reject: Option<RejectNote>,
    pub video: Option<SessionVideo>,
    /// The clock join: latency model, prior, and per run the offset, its source and confidence
    /// (with the motion fit's score against every candidate offset).
    pub clock: Option<ClockEstimate>,
    pub actions: Option<ActionSummary>,
    pub segments: Vec<SessionSegment>,
    pub skipped: Vec<Skipped>,
    pub frame_metrics: Vec<FrameMetrics>,
}

fn finite(value: f32) -> Option<f32> {
    value.is_finite().then_some(value)
}

impl SessionFile {
    /// The record of a usable session and where each of its segments went.
    pub fn accepted(
        session: &AcceptedSession,
        placements: &[Placement],
        timeline: &TimelineConfig,
        run: &RunInfo,
    ) -> Self {
        let bundle = &session.bundle;
        let (wallet, session_id) = (bundle.wallet.to_string(), bundle.session_id.to_string());
        let video = &bundle.video;
        let segments = session
            .splice
            .segments
            .iter()
            .zip(&session.verdicts)
            .zip(placements)
            .map(|((segment, quality), placement)| SessionSegment {
                segment: segment.index,
                first_frame: segment.first_frame,
                last_frame: segment.last_frame,
                frames: segment.rows.len(),
                start_pts_ms: segment.start_pts_ms,
                end_pts_ms: segment.end_pts_ms,
                failed: quality.failed.clone(),
                checks: quality.checks.clone(),
                placement: placement.clone(),
                path: format!(
                    "{wallet}/{session_id}/{}",
                    crate::ledger::SegmentKey::folder_name(segment.index)
                ),
            })
            .collect();
        let frame_metrics = session
            .alignment
            .frames
            .iter()
            .map(|row| {
                let stats = video.frame_stats.get(row.frame);
                FrameMetrics {
                    frame: row.frame,
                    pts_ms: row.pts_ms,
                    page_t_ms: row.page_t_ms,
                    sharpness: stats.and_then(|s| finite(s.sharpness)),
                    mean_luma: stats.and_then(|s| finite(s.mean_luma)),
                    luma_std: stats.and_then(|s| finite(s.luma_std)),
                    change: stats.and_then(|s| s.change).and_then(finite),
                    shift_dx_px: stats.and_then(|s| s.shift).map(|s| s.dx_px),
                    shift_dy_px: stats.and_then(|s| s.shift).map(|s| s.dy_px),
                    blockiness: stats.and_then(|s| finite(s.blockiness)),
                    histogram_jump: stats.and_then(|s| s.histogram_jump).and_then(finite),
                    driving_keys: row.driving_keys.map(|k| {
                        [(k.w, 'w'), (k.a, 'a'), (k.s, 's'), (k.d, 'd')]
                            .iter()
                            .filter(|(held, _)| *held)
                            .map(|(_, key)| *key)
                            .collect()
                    }),
                    mouse_dx: row.mouse_dx,
                    mouse_dy: row.mouse_dy,
                    speed: row.pose.as_ref().map(|p| p.speed),
                    yaw: row.pose.as_ref().map(|p| p.yaw),
                }
            })
            .collect();
        Self {
            schema_version: OUTPUT_SCHEMA_VERSION,
            session_id,
            wallet,
            status: SessionStatus::Accepted,
            run: run.clone(),
            prompt: bundle.meta.prompt.clone(),
            scenario: bundle.meta.scenario.as_ref().and_then(|s| s.id.clone()),
            parts: part_reports(&bundle.source),
            reject: None,
            video: Some(SessionVideo {
                codec: video.codec.clone(),
                width: video.width,
                height: video.height,
                frames: video.frame_pts_ms.len(),
                decode_errors: video.decode_errors,
                health: VideoHealth::from_pts(&video.frame_pts_ms, timeline),
            }),
            clock: Some(session.alignment.clock.clone()),
            actions: Some(session.alignment.summary.clone()),
            segments,
            skipped: session.splice.skipped.clone(),
            frame_metrics,
        }
    }

    /// The record of a bundle that cannot be used.
    pub fn rejected(
        loaded: &LoadedBundle,
        reason: &RejectReason,
        wallet: &str,
        run: &RunInfo,
    ) -> Self {
        Self {
            schema_version: OUTPUT_SCHEMA_VERSION,
            session_id: loaded.source.session_id.clone(),
            wallet: wallet.to_owned(),
            status: SessionStatus::Rejected,
            run: run.clone(),
            prompt: loaded.meta.as_ref().and_then(|m| m.prompt.clone()),
            scenario: loaded
                .meta
                .as_ref()
                .and_then(|m| m.scenario.as_ref())
                .and_then(|s| s.id.clone()),
            parts: part_reports(&loaded.source),
            reject: Some(RejectNote {
                code: reason.code().to_owned(),
                message: reason.to_string(),
                reason: reason.clone(),
                other_problems: loaded
                    .problems
                    .iter()
                    .skip(1)
                    .map(ToString::to_string)
                    .collect(),
            }),
            video: None,
            clock: None,
            actions: None,
            segments: Vec::new(),
            skipped: Vec::new(),
            frame_metrics: Vec::new(),
        }
    }
}

impl SegmentAlignedFile {
    pub fn new(session: &AcceptedSession, segment: &Segment) -> Self {
        let bundle = &session.bundle;
        let clock = &session.alignment.clock;
        Self {
            schema_version: OUTPUT_SCHEMA_VERSION,
            session_id: bundle.session_id.to_string(),
            wallet: bundle.wallet.to_string(),
            segment: segment.index,
            video: AlignedVideo {
                codec: bundle.video.codec.clone(),
                width: bundle.video.width,
                height: bundle.video.height,
                frames: segment.rows.len(),
            },
            latency: clock.latency.clone(),
            runs: clock
                .runs
                .iter()
                .filter(|run| segment.runs.contains(&run.run))
                .cloned()
                .collect(),
            frames: segment
                .rows
                .iter()
                .map(|row| SegmentFrame {
                    file: format!("frames/{}", frame_file_name(row.frame)),
                    action: row.clone(),
                })
                .collect(),
        }
    }
}

impl SegmentQualityFile {
    pub fn new(
        session: &AcceptedSession,
        segment: &Segment,
        quality: &SegmentQuality,
        placement: &Placement,
        run: &RunInfo,
    ) -> Self {
        let bundle = &session.bundle;
        Self {
            schema_version: OUTPUT_SCHEMA_VERSION,
            session_id: bundle.session_id.to_string(),
            wallet: bundle.wallet.to_string(),
            segment: segment.index,
            first_frame: segment.first_frame,
            last_frame: segment.last_frame,
            frames: segment.rows.len(),
            start_pts_ms: segment.start_pts_ms,
            end_pts_ms: segment.end_pts_ms,
            start_page_ms: segment.start_page_ms,
            end_page_ms: segment.end_page_ms,
            placement: placement.clone(),
            failed: quality.failed.clone(),
            checks: quality.checks.clone(),
            frame_thresholds: quality.frame_thresholds,
            run: run.clone(),
        }
    }
}
