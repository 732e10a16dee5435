//! A plain-data report of one loaded bundle: what `scale-diffusion inspect` prints and serialises.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Serialize;

use crate::align::{align, ActionSummary, AlignConfig};
use crate::bundle::LoadedBundle;
use crate::clean::{clean_segment, QualityConfig, SegmentQuality, SessionContext};
use crate::clock::{ClockEstimate, LagEstimate, OffsetSource, Prior};
use crate::discover::BundleSource;
use crate::ids::PartKind;
use crate::latency::LatencySource;
use crate::model::{CameraSample, InputEvent, InputKind, LatencyLog, Meta, DRIVING_KEYS};
use crate::reject::RejectReason;
use crate::splice::{splice, Skipped};
use crate::timeline::VideoHealth;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionReport {
    pub session_id: String,
    #[serde(serialize_with = "crate::discover::lossy_path")]
    pub folder: PathBuf,
    /// The wallet from the storage key, or from meta when the folder is not a wallet folder.
    pub wallet: Option<String>,
    pub usable: bool,
    /// One-line reason when not usable.
    pub reject_message: Option<String>,
    pub reject_reason: Option<RejectReason>,
    /// Further problems, after the first.
    pub other_problems: Vec<String>,
    pub parts: Vec<PartReport>,
    pub missing_parts: Vec<PartKind>,
    pub meta: Option<MetaSummary>,
    pub inputs: Option<InputSummary>,
    pub camera: Option<CameraSummary>,
    pub latency: Option<LatencySummary>,
    pub video: Option<VideoReport>,
    /// The clock join and frame-level action counts, for a usable bundle.
    pub alignment: Option<AlignmentOverview>,
    /// SPLICE and CLEAN on the aligned frames, for a usable bundle.
    pub segments: Vec<SegmentVerdict>,
    pub skipped: Vec<Skipped>,
}

/// One segment and CLEAN's verdict on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentVerdict {
    pub index: usize,
    pub first_frame: usize,
    pub last_frame: usize,
    pub start_pts_ms: f64,
    pub end_pts_ms: f64,
    pub frames: usize,
    pub quality: SegmentQuality,
}

/// ALIGN's result without the frame table: what `inspect` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlignmentOverview {
    pub latency_source: LatencySource,
    pub latency_mean_ms: f64,
    pub recording_start_t_ms: Option<f64>,
    pub prior: Prior,
    pub runs: Vec<RunOverview>,
    pub actions: ActionSummary,
}

/// One run's clock, without the correlation curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunOverview {
    pub run: usize,
    pub first_frame: usize,
    pub last_frame: usize,
    pub first_pts_ms: f64,
    pub last_pts_ms: f64,
    pub offset_ms: f64,
    pub source: OffsetSource,
    pub confidence: f64,
    /// The motion fit's own offset, score and confidence, when one was tried.
    pub motion_offset_ms: Option<f64>,
    pub motion_score: Option<f64>,
    pub motion_confidence: Option<f64>,
    pub motion_pairs: Option<usize>,
    /// With `recordingStartT`: the lag used, measured or assumed.
    pub lag: Option<LagEstimate>,
}

impl AlignmentOverview {
    pub fn new(clock: &ClockEstimate, actions: ActionSummary) -> Self {
        Self {
            latency_source: clock.latency.source,
            latency_mean_ms: clock.latency.mean_ms,
            recording_start_t_ms: clock.recording_start_t_ms,
            prior: clock.prior.clone(),
            runs: clock
                .runs
                .iter()
                .map(|run| RunOverview {
                    run: run.run,
                    first_frame: run.first_frame,
                    last_frame: run.last_frame,
                    first_pts_ms: run.first_pts_ms,
                    last_pts_ms: run.last_pts_ms,
                    offset_ms: run.offset_ms,
                    source: run.source,
                    confidence: run.confidence,
                    motion_offset_ms: run.motion.as_ref().map(|m| m.offset_ms),
                    motion_score: run.motion.as_ref().map(|m| m.score),
                    motion_confidence: run.motion.as_ref().map(|m| m.confidence),
                    motion_pairs: run.motion.as_ref().map(|m| m.pairs),
                    lag: run.lag.clone(),
                })
                .collect(),
            actions,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct PartReport {
    pub part: PartKind,
    pub file_name: String,
    pub size_bytes: u64,
    pub upload_epoch_ms: Option<u64>,
    pub superseded: Vec<String>,
}

/// Where a log lies on the page clock (`performance.now()`, ms).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogSpan {
    pub count: usize,
    pub first_t_ms: Option<f64>,
    pub last_t_ms: Option<f64>,
    pub span_ms: f64,
    /// Longest step between consecutive entries (a hidden tab shows here).
    pub longest_gap_ms: Option<f64>,
    /// Times `t` went backwards between consecutive entries.
    pub backwards_steps: usize,
}

impl LogSpan {
    pub fn from_times(times: impl IntoIterator<Item = f64>) -> Self {
        let times: Vec<f64> = times.into_iter().collect();
        let first_t_ms = times.iter().copied().reduce(f64::min);
        let last_t_ms = times.iter().copied().reduce(f64::max);
        let steps = times.windows(2).map(|pair| pair[1] - pair[0]);
        Self {
            count: times.len(),
            first_t_ms,
            last_t_ms,
            span_ms: match (first_t_ms, last_t_ms) {
                (Some(first), Some(last)) => last - first,
                _ => 0.0,
            },
            longest_gap_ms: steps.clone().reduce(f64::max),
            backwards_steps: steps.filter(|step| *step < 0.0).count(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetaSummary {
    pub prompt: Option<String>,
    pub scenario_id: Option<String>,
    pub duration_ms: Option<f64>,
    pub start_time_epoch_ms: Option<f64>,
    pub end_time_epoch_ms: Option<f64>,
    pub event_count: Option<f64>,
    pub recording_start_t_ms: Option<f64>,
    pub uploaded_at: Option<String>,
    /// Top-level fields this version does not interpret, kept as they came.
    pub unknown_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputSummary {
    pub span: LogSpan,
    pub keydowns: usize,
    pub keyups: usize,
    pub mouse_events: usize,
    pub other_events: usize,
    /// Events per key (keydowns and keyups).
    pub keys: BTreeMap<String, usize>,
    pub driving_keydowns: usize,
    /// A keyup whose key was not held (tolerated: `p` only logs its keyup).
    pub keyups_without_keydown: usize,
    pub mouse_dx_total: f64,
    pub mouse_dy_total: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraSummary {
    pub span: LogSpan,
    /// Samples with non-zero speed.
    pub moving_samples: usize,
    /// Distance along the logged positions (world units).
    pub path_length: f64,
    /// Samples carrying the driving controls (`throttle`, `brake`, `steer`, `command`).
    pub samples_with_controls: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    pub span: LogSpan,
    pub initial_latency_ms: Option<f64>,
    pub avg_rtt_ms: Option<f64>,
    pub min_rtt_ms: Option<f64>,
    pub max_rtt_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoReport {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub decode_errors: usize,
    pub container_duration_ms: Option<f64>,
    pub health: VideoHealth,
}

/// Summarises everything that could be read from a bundle, usable or not; a usable one is also
/// aligned, spliced and cleaned.
pub fn report(
    loaded: &LoadedBundle,
    config: &AlignConfig,
    quality: &QualityConfig,
) -> SessionReport {
    let timeline = &config.timeline;
    let mut segments = Vec::new();
    let mut skipped = Vec::new();
    let alignment = loaded.clone().into_bundle().ok().map(|bundle| {
        let alignment = align(&bundle, config);
        let spliced = splice(&alignment.frames, &quality.splice);
        let context = SessionContext::new(&bundle, &alignment);
        segments = spliced
            .segments
            .iter()
            .map(|segment| SegmentVerdict {
                index: segment.index,
                first_frame: segment.first_frame,
                last_frame: segment.last_frame,
                start_pts_ms: segment.start_pts_ms,
                end_pts_ms: segment.end_pts_ms,
                frames: segment.rows.len(),
                quality: clean_segment(segment, &context, quality),
            })
            .collect();
        skipped = spliced.skipped;
        AlignmentOverview::new(&alignment.clock, alignment.summary)
    });
    let source = &loaded.source;
    let parts = part_reports(source);
    let missing_parts = PartKind::ALL
        .into_iter()
        .filter(|part| !source.parts.contains_key(part))
        .collect();
    let wallet = source
        .key_wallet
        .clone()
        .or_else(|| loaded.meta.as_ref().map(|meta| meta.wallet_address.clone()));
    let reject_reason = loaded.reject_reason().cloned();
    SessionReport {
        session_id: source.session_id.clone(),
        folder: source.folder.clone(),
        wallet,
        usable: reject_reason.is_none(),
        reject_message: reject_reason.as_ref().map(ToString::to_string),
        reject_reason,
        other_problems: loaded
            .problems
            .iter()
            .skip(1)
            .map(ToString::to_string)
            .collect(),
        parts,
        missing_parts,
        meta: loaded.meta.as_ref().map(summarise_meta),
        inputs: loaded.inputs.as_deref().map(summarise_inputs),
        camera: loaded.camera.as_deref().map(summarise_camera),
        latency: loaded.latency.as_ref().map(summarise_latency),
        video: loaded.video.as_ref().map(|video| VideoReport {
            codec: video.codec.clone(),
            width: video.width,
            height: video.height,
            decode_errors: video.decode_errors,
            container_duration_ms: video.container_duration_ms,
            health: VideoHealth::from_pts(&video.frame_pts_ms, timeline),
        }),
        alignment,
        segments,
        skipped,
    }
}

/// The parts found for a bundle, as reports show them.
pub fn part_reports(source: &BundleSource) -> Vec<PartReport> {
    source
        .parts
        .iter()
        .map(|(&part, file)| PartReport {
            part,
            file_name: file.file_name.clone(),
            size_bytes: file.size_bytes,
            upload_epoch_ms: file.upload_epoch_ms,
            superseded: file.superseded.clone(),
        })
        .collect()
}

fn summarise_meta(meta: &Meta) -> MetaSummary {
    MetaSummary {
        prompt: meta.prompt.clone(),
        scenario_id: meta.scenario.as_ref().and_then(|s| s.id.clone()),
        duration_ms: meta.duration,
        start_time_epoch_ms: meta.start_time,
        end_time_epoch_ms: meta.end_time,
        event_count: meta.event_count,
        recording_start_t_ms: meta.recording_start_t,
        uploaded_at: meta.uploaded_at.clone(),
        unknown_fields: meta.extra.keys().cloned().collect(),
    }
}

fn summarise_inputs(inputs: &[InputEvent]) -> InputSummary {
    let mut summary = InputSummary {
        span: LogSpan::from_times(inputs.iter().map(|event| event.t)),
        keydowns: 0,
        keyups: 0,
        mouse_events: 0,
        other_events: 0,
        keys: BTreeMap::new(),
        driving_keydowns: 0,
        keyups_without_keydown: 0,
        mouse_dx_total: 0.0,
        mouse_dy_total: 0.0,
    };
    let mut held: BTreeSet<&str> = BTreeSet::new();
    for event in inputs {
        let key = event.key.as_deref();
        if let Some(key) = key {
            *summary.keys.entry(key.to_owned()).or_default() += 1;
        }
        match event.input_kind() {
            InputKind::KeyDown => {
                summary.keydowns += 1;
                if let Some(key) = key {
                    held.insert(key);
                    if DRIVING_KEYS.contains(&key) {
                        summary.driving_keydowns += 1;
                    }
                }
            }
            InputKind::KeyUp => {
                summary.keyups += 1;
                if !key.is_some_and(|key| held.remove(key)) {
                    summary.keyups_without_keydown += 1;
                }
            }
            InputKind::Mouse => {
                summary.mouse_events += 1;
                summary.mouse_dx_total += event.dx.unwrap_or(0.0);
                summary.mouse_dy_total += event.dy.unwrap_or(0.0);
            }
            InputKind::Other => summary.other_events += 1,
        }
    }
    summary
}

fn summarise_camera(camera: &[CameraSample]) -> CameraSummary {
    let path_length = camera
        .windows(2)
        .map(|pair| {
            let [a, b] = [pair[0].pos, pair[1].pos];
            ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2) + (b[2] - a[2]).powi(2)).sqrt()
        })
        .sum();
    CameraSummary {
        span: LogSpan::from_times(camera.iter().map(|sample| sample.t)),
        moving_samples: camera.iter().filter(|sample| sample.speed != 0.0).count(),
        path_length,
        samples_with_controls: camera
            .iter()
            .filter(|s| {
                s.throttle.is_some()
                    || s.brake.is_some()
                    || s.steer.is_some()
                    || s.command.is_some()
            })
            .count(),
    }
}

fn summarise_latency(latency: &LatencyLog) -> LatencySummary {
    let rtts = latency.rtt_samples.iter().map(|sample| sample.rtt);
    LatencySummary {
        span: LogSpan::from_times(latency.rtt_samples.iter().map(|sample| sample.t)),
        initial_latency_ms: latency.initial_latency,
        avg_rtt_ms: latency.avg_rtt,
        min_rtt_ms: rtts.clone().reduce(f64::min),
        max_rtt_ms: rtts.reduce(f64::max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: f64, kind: &str, key: &str) -> InputEvent {
        InputEvent {
            t,
            kind: kind.to_owned(),
            key: Some(key.to_owned()),
            dx: None,
            dy: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn input_summary_counts_unmatched_keyups_and_driving_keys() {
        let inputs = [
            key(1.0, "keyup", "p"),
            key(2.0, "keydown", "w"),
            key(3.0, "keydown", "control"),
            key(4.0, "keyup", "w"),
            key(5.0, "keyup", "w"),
        ];
        let summary = summarise_inputs(&inputs);
        assert_eq!(summary.keydowns, 2);
        assert_eq!(summary.keyups, 3);
        assert_eq!(summary.driving_keydowns, 1);
        assert_eq!(summary.keyups_without_keydown, 2);
        assert_eq!(summary.keys["w"], 3);
        assert_eq!(summary.span.span_ms, 4.0);
    }

    #[test]
    fn log_span_reports_gaps() {
        let span = LogSpan::from_times([10.0, 20.0, 70.0, 60.0]);
        assert_eq!(span.first_t_ms, Some(10.0));
        assert_eq!(span.last_t_ms, Some(70.0));
        assert_eq!(span.longest_gap_ms, Some(50.0));
        assert_eq!(span.backwards_steps, 1);
    }
}
