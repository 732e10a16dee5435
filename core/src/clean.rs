//! CLEAN: score every segment. Each check gives a number, the threshold it was held to,
//! pass/fail and a one-line reason; a segment passes only when every check passes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::actions::FrameAction;
use crate::align::Alignment;
use crate::bundle::Bundle;
use crate::clock::ClockEstimate;
use crate::model::{InputEvent, InputKind};
use crate::splice::{Segment, SpliceConfig};
use crate::video::FrameStats;

/// Every threshold of SPLICE and CLEAN (the quality tables of `config/pipeline.toml`), each default
/// justified in `docs/QUALITY.md`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    pub splice: SpliceConfig,
    pub blur: BlurConfig,
    pub artifacts: ArtifactConfig,
    pub actions: ActionValidityConfig,
    pub video: VideoHealthConfig,
    pub alignment: AlignmentConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BlurConfig {
    /// A frame whose Laplacian variance (256x144 grey) is below this is blurred.
    pub min_sharpness: f64,
    /// Most blurred frames a segment may hold, as a share.
    pub max_blurred_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ArtifactConfig {
    /// A frame whose mean luma is below this is black.
    pub black_max_luma: f64,
    /// A frame whose mean luma is above this is washed out...
    pub washed_min_luma: f64,
    /// ...and so is one (not black) whose luma standard deviation is below this.
    pub washed_max_contrast: f64,
    /// Consecutive frames whose thumbnails differ by less than this (0-255) are frozen...
    pub frozen_max_change: f64,
    /// ...when they stay so for at least this long while the camera log says the car moves
    /// faster than this (a parked car's still picture is not frozen video).
    pub frozen_min_ms: f64,
    pub frozen_min_speed: f64,
    /// A frame with block-edge steps this many times the other steps is glitched...
    pub glitch_min_blockiness: f64,
    /// ...and so is one whose histogram jumps this far (0-1) from the previous frame's.
    pub glitch_min_histogram_jump: f64,
    /// Most black, washed-out, frozen or glitched frames a segment may hold, as a share (each).
    pub max_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ActionValidityConfig {
    /// Most driving-key transitions (downs and ups of W/A/S/D) per second.
    pub max_key_transitions_per_s: f64,
    /// Longest time opposite keys (W+S, A+D) may be held together.
    pub max_opposite_held_ms: f64,
    /// Largest believable mouse delta in one event (px).
    pub max_mouse_delta: f64,
    /// Most frames whose keys and camera disagree, as a share.
    pub max_inconsistent_share: f64,
    /// Fewest frames with some driving action (keys, mouse, or controls), as a share.
    pub min_action_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct VideoHealthConfig {
    /// Fewest frames per second of video time.
    pub min_fps: f64,
    /// Longest step between frames inside a segment.
    pub max_gap_ms: f64,
    /// Most frames inside the segment's frame range that share a timestamp, as a share.
    pub max_burst_share: f64,
    /// Most decode errors in the session's video.
    pub max_decode_errors: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AlignmentConfig {
    /// Least clock confidence of the runs a segment spans.
    pub min_confidence: f64,
}

impl Default for BlurConfig {
    fn default() -> Self {
        Self {
            min_sharpness: 50.0,
            max_blurred_share: 0.2,
        }
    }
}

impl Default for ArtifactConfig {
    fn default() -> Self {
        Self {
            black_max_luma: 16.0,
            washed_min_luma: 225.0,
            washed_max_contrast: 6.0,
            frozen_max_change: 0.5,
            frozen_min_ms: 1000.0,
            frozen_min_speed: 0.5,
            glitch_min_blockiness: 3.0,
            glitch_min_histogram_jump: 0.5,
            max_share: 0.1,
        }
    }
}

impl Default for ActionValidityConfig {
    fn default() -> Self {
        Self {
            max_key_transitions_per_s: 6.0,
            max_opposite_held_ms: 500.0,
            max_mouse_delta: 2000.0,
            max_inconsistent_share: 0.5,
            min_action_share: 0.05,
        }
    }
}

impl Default for VideoHealthConfig {
    fn default() -> Self {
        Self {
            min_fps: 5.0,
            max_gap_ms: 500.0,
            max_burst_share: 0.0,
            max_decode_errors: 0.0,
        }
    }
}

impl Default for AlignmentConfig {
    fn default() -> Self {
        Self {
            min_confidence: 0.2,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("config: {0}")]
pub struct ConfigError(pub(crate) String);

impl QualityConfig {
    /// Parses the TOML config; absent keys keep their defaults, unknown keys are errors.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|err| ConfigError(err.to_string()))?;
        config.check()?;
        Ok(config)
    }

    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let s = &self.splice;
        let positive = [
            ("splice.segment_ms", s.segment_ms),
            ("splice.stall_ms", s.stall_ms),
        ];
        for (name, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(ConfigError(format!("{name} must be a positive number")));
            }
        }
        if !(s.min_tail_ms.is_finite() && (0.0..=s.segment_ms).contains(&s.min_tail_ms)) {
            return Err(ConfigError(
                "splice.min_tail_ms must lie in [0, segment_ms]".into(),
            ));
        }
        Ok(())
    }
}

/// The checks, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    Blur,
    Black,
    WashedOut,
    Frozen,
    Glitch,
    KeySpam,
    ImpossibleInputs,
    InconsistentInputs,
    NoDrivingAction,
    FrameRate,
    FrameGap,
    Bursts,
    DecodeErrors,
    AlignmentConfidence,
}

impl CheckName {
    pub const ALL: [CheckName; 14] = [
        CheckName::Blur,
        CheckName::Black,
        CheckName::WashedOut,
        CheckName::Frozen,
        CheckName::Glitch,
        CheckName::KeySpam,
        CheckName::ImpossibleInputs,
        CheckName::InconsistentInputs,
        CheckName::NoDrivingAction,
        CheckName::FrameRate,
        CheckName::FrameGap,
        CheckName::Bursts,
        CheckName::DecodeErrors,
        CheckName::AlignmentConfidence,
    ];
}

/// How a value is held to its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Passes when `value <= threshold`.
    AtMost,
    /// Passes when `value >= threshold`.
    AtLeast,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct CheckResult {
    pub check: CheckName,
    /// What `value` measures, with its unit.
    pub metric: String,
    pub value: f64,
    pub threshold: f64,
    pub bound: Bound,
    pub passed: bool,
    /// One line a reviewer understands.
    pub reason: String,
}

/// The verdict on one segment.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SegmentQuality {
    pub segment: usize,
    pub passed: bool,
    /// The failing checks, in check order.
    pub failed: Vec<CheckName>,
    pub checks: Vec<CheckResult>,
}

/// What CLEAN needs besides the segment: the session's frames, inputs and clock.
#[derive(Debug, Clone, Copy)]
pub struct SessionContext<'a> {
    pub frame_stats: &'a [FrameStats],
    pub all_rows: &'a [FrameAction],
    pub inputs: &'a [InputEvent],
    pub clock: &'a ClockEstimate,
    pub decode_errors: usize,
}

impl<'a> SessionContext<'a> {
    /// The context of a usable bundle and its alignment.
    pub fn new(bundle: &'a Bundle, alignment: &'a Alignment) -> Self {
        Self {
            frame_stats: &bundle.video.frame_stats,
            all_rows: &alignment.frames,
            inputs: &bundle.inputs,
            clock: &alignment.clock,
            decode_errors: bundle.video.decode_errors,
        }
    }
}

fn check(
    check: CheckName,
    metric: &str,
    value: f64,
    threshold: f64,
    bound: Bound,
    explain: impl FnOnce(bool) -> String,
) -> CheckResult {
    let passed = match bound {
        Bound::AtMost => value <= threshold,
        Bound::AtLeast => value >= threshold,
    };
    // NaN fails either way: a number we could not measure is not a pass.
    let measured = !value.is_nan();
    CheckResult {
        check,
        metric: metric.to_owned(),
        value,
        threshold,
        bound,
        passed: passed && measured,
        reason: if measured {
            explain(passed)
        } else {
            format!("nothing to measure: the segment has no decodable frame ({metric})")
        },
    }
}

fn share(count: usize, total: usize) -> f64 {
    if total == 0 {
        f64::NAN
    } else {
        count as f64 / total as f64
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", 100.0 * x)
}

/// Scores one segment.
pub fn clean_segment(
    segment: &Segment,
    context: &SessionContext<'_>,
    config: &QualityConfig,
) -> SegmentQuality {
    let stats: Vec<&FrameStats> = segment
        .rows
        .iter()
        .filter_map(|row| context.frame_stats.get(row.frame))
        .collect();
    let n = stats.len();
    let mut checks = Vec::new();

    // Each frame gets its most specific picture defect: a black or washed-out frame is also
    // without detail and blocky, but it is black or washed out, not blurred or glitched.
    let a = &config.artifacts;
    let is_black = |s: &FrameStats| f64::from(s.mean_luma) < a.black_max_luma;
    let is_washed = |s: &FrameStats| {
        !is_black(s)
            && (f64::from(s.mean_luma) > a.washed_min_luma
                || f64::from(s.luma_std) < a.washed_max_contrast)
    };
    let plain: Vec<&&FrameStats> = stats
        .iter()
        .filter(|s| !is_black(s) && !is_washed(s))
        .collect();

    // Blur.
    let b = &config.blur;
    let blurred = plain
        .iter()
        .filter(|s| f64::from(s.sharpness) < b.min_sharpness)
        .count();
    let value = share(blurred, n);
    checks.push(check(
        CheckName::Blur,
        "share of frames with Laplacian variance under min_sharpness",
        value,
        b.max_blurred_share,
        Bound::AtMost,
        |ok| {
            if ok {
                format!("{} of frames blurred", pct(value))
            } else {
                format!(
                    "{} of frames are blurred (sharpness under {}), more than {}",
                    pct(value),
                    b.min_sharpness,
                    pct(b.max_blurred_share)
                )
            }
        },
    ));

    // Artifacts.
    let black = stats.iter().filter(|s| is_black(s)).count();
    let washed = stats.iter().filter(|s| is_washed(s)).count();
    let frozen = frozen_frames(segment, context.frame_stats, a, &is_black);
    let glitched = plain
        .iter()
        .filter(|s| {
            f64::from(s.blockiness) >= a.glitch_min_blockiness
                || s.histogram_jump
                    .is_some_and(|j| f64::from(j) >= a.glitch_min_histogram_jump)
        })
        .count();
    for (name, metric, count, what) in [
        (CheckName::Black, "share of black frames", black, "black"),
        (
            CheckName::WashedOut,
            "share of washed-out or flat frames",
            washed,
            "washed out or without contrast",
        ),
        (
            CheckName::Frozen,
            "share of frames in a frozen stretch while the car moves",
            frozen,
            "frozen (the picture stops while the car moves)",
        ),
        (
            CheckName::Glitch,
            "share of glitched frames (blocky or abrupt histogram jump)",
            glitched,
            "glitched",
        ),
    ] {
        let value = share(count, n);
        checks.push(check(
            name,
            metric,
            value,
            a.max_share,
            Bound::AtMost,
            |ok| {
                if ok {
                    format!("{} of frames {what}", pct(value))
                } else {
                    format!(
                        "{} of frames are {what}, more than {}",
                        pct(value),
                        pct(a.max_share)
                    )
                }
            },
        ));
    }

    checks.extend(action_checks(segment, context, &config.actions));
    checks.extend(video_checks(segment, context, &config.video));

    // Alignment confidence.
    let confidence = segment
        .runs
        .iter()
        .filter_map(|run| context.clock.runs.get(*run))
        .map(|run| run.confidence)
        .reduce(f64::min)
        .unwrap_or(0.0);
    let min = config.alignment.min_confidence;
    checks.push(check(CheckName::AlignmentConfidence, "least clock confidence of the segment's runs", confidence, min, Bound::AtLeast, |ok| {
        if ok {
            format!("clock confidence {confidence:.2}")
        } else {
            format!("clock confidence {confidence:.2} is under {min}: we do not pay for labels we cannot trust")
        }
    }));

    let failed: Vec<CheckName> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.check)
        .collect();
    SegmentQuality {
        segment: segment.index,
        passed: failed.is_empty() && n > 0,
        failed,
        checks,
    }
}

/// Frames inside stretches where the picture does not change for at least `frozen_min_ms` while
/// the camera log says the car moves.
fn frozen_frames(
    segment: &Segment,
    frame_stats: &[FrameStats],
    a: &ArtifactConfig,
    is_black: &dyn Fn(&FrameStats) -> bool,
) -> usize {
    let mut frozen = 0;
    let mut stretch: Vec<f64> = Vec::new();
    let close = |stretch: &mut Vec<f64>, frozen: &mut usize| {
        if let (Some(first), Some(last)) = (stretch.first(), stretch.last()) {
            if last - first >= a.frozen_min_ms {
                *frozen += stretch.len();
            }
        }
        stretch.clear();
    };
    for (i, row) in segment.rows.iter().enumerate() {
        let pts = row.pts_ms.unwrap_or(0.0);
        let moving = row
            .pose
            .as_ref()
            .is_some_and(|p| p.speed.abs() > a.frozen_min_speed);
        let still = i > 0
            && moving
            && frame_stats.get(row.frame).is_some_and(|s| {
                !is_black(s) && s.change.is_some_and(|c| f64::from(c) < a.frozen_max_change)
            });
        if still {
            if stretch.is_empty() {
                let previous = segment.rows[i - 1].pts_ms.unwrap_or(pts);
                stretch.push(previous);
            }
            stretch.push(pts);
        } else {
            close(&mut stretch, &mut frozen);
        }
    }
    close(&mut stretch, &mut frozen);
    frozen.min(segment.rows.len())
}

fn is_driving_key(key: Option<&str>) -> bool {
    matches!(key, Some("w" | "a" | "s" | "d"))
}

fn action_checks(
    segment: &Segment,
    context: &SessionContext<'_>,
    c: &ActionValidityConfig,
) -> Vec<CheckResult> {
    let rows = &segment.rows;
    let n = rows.len();
    let (t0, t1) = (segment.start_page_ms, segment.end_page_ms);
    let span_s = ((t1 - t0) / 1000.0).max(1e-3);
    let events: Vec<&InputEvent> = context
        .inputs
        .iter()
        .filter(|e| e.t >= t0 && e.t <= t1)
        .collect();

    // Key spam.
    let transitions = events
        .iter()
        .filter(|e| {
            matches!(e.input_kind(), InputKind::KeyDown | InputKind::KeyUp)
                && is_driving_key(e.key.as_deref())
        })
        .count();
    let rate = transitions as f64 / span_s;
    let mut out = vec![check(
        CheckName::KeySpam,
        "driving-key transitions per second",
        rate,
        c.max_key_transitions_per_s,
        Bound::AtMost,
        |ok| {
            if ok {
                format!("{rate:.1} key transitions/s")
            } else {
                format!(
                    "key spam: {rate:.1} W/A/S/D transitions per second, more than {}",
                    c.max_key_transitions_per_s
                )
            }
        },
    )];

    // Impossible inputs: opposite keys held together for long, mouse jumps, time going backwards.
    let mut longest_opposite: f64 = 0.0;
    let mut since: Option<f64> = None;
    for row in rows {
        let opposite = row
            .driving_keys
            .is_some_and(|k| (k.w && k.s) || (k.a && k.d));
        let t = row.page_t_ms.unwrap_or(0.0);
        match (opposite, since) {
            (true, None) => since = Some(t),
            (true, Some(start)) => longest_opposite = longest_opposite.max(t - start),
            (false, _) => since = None,
        }
    }
    let long_opposite = usize::from(longest_opposite > c.max_opposite_held_ms);
    let mouse_jumps = events
        .iter()
        .filter(|e| {
            e.dx.unwrap_or(0.0).abs() > c.max_mouse_delta
                || e.dy.unwrap_or(0.0).abs() > c.max_mouse_delta
        })
        .count();
    let mut in_log_order: Vec<(usize, f64)> = context
        .inputs
        .iter()
        .enumerate()
        .filter(|(_, e)| e.t >= t0 && e.t <= t1)
        .map(|(i, e)| (i, e.t))
        .collect();
    in_log_order.sort_by_key(|(i, _)| *i);
    let backwards = in_log_order.windows(2).filter(|w| w[1].1 < w[0].1).count();
    let violations = (long_opposite + mouse_jumps + backwards) as f64;
    out.push(check(
        CheckName::ImpossibleInputs,
        "impossible inputs (long opposite keys, mouse jumps, time going back)",
        violations,
        0.0,
        Bound::AtMost,
        |ok| {
            if ok {
                "no impossible input".to_owned()
            } else {
                let mut parts = Vec::new();
                if long_opposite > 0 {
                    parts.push(format!(
                        "opposite keys held together for {:.1} s",
                        longest_opposite / 1000.0
                    ));
                }
                if mouse_jumps > 0 {
                    parts.push(format!(
                        "{mouse_jumps} mouse jump(s) over {} px",
                        c.max_mouse_delta
                    ));
                }
                if backwards > 0 {
                    parts.push(format!("input time goes backwards {backwards} time(s)"));
                }
                format!("impossible inputs: {}", parts.join(", "))
            }
        },
    ));

    // Inconsistent: forward held but the camera stands still, or the car speeds up with no
    // forward input from keys or controls.
    let mut inconsistent = 0;
    let mut judged = 0;
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let (Some(pa), Some(pb)) = (&a.pose, &b.pose) else {
            continue;
        };
        judged += 1;
        let forward_keys = b.driving_keys.is_some_and(|k| k.w);
        let throttle = b
            .controls
            .as_ref()
            .is_some_and(|c| c.throttle.unwrap_or(0.0) > 0.0);
        let moved = (pb.pos[0] - pa.pos[0]).abs() + (pb.pos[2] - pa.pos[2]).abs() > 1e-6
            || pb.speed.abs() > 1e-6;
        let speeding_up = pb.speed - pa.speed > 1e-3;
        if (forward_keys && !moved) || (speeding_up && !forward_keys && !throttle) {
            inconsistent += 1;
        }
    }
    let value = if judged == 0 {
        0.0
    } else {
        share(inconsistent, judged)
    };
    out.push(check(CheckName::InconsistentInputs, "share of frame steps where keys and camera disagree", value, c.max_inconsistent_share, Bound::AtMost, |ok| {
        if ok {
            format!("keys and camera agree on {} of frame steps", pct(1.0 - value))
        } else {
            format!("keys and camera disagree on {} of frame steps (forward held while standing, or speeding up with no forward input)", pct(value))
        }
    }));

    // Some driving action at all.
    let acting = rows
        .iter()
        .filter(|row| {
            row.driving_keys.is_some_and(|k| k.w || k.a || k.s || k.d)
                || row.mouse_dx.unwrap_or(0.0) != 0.0
                || row.mouse_dy.unwrap_or(0.0) != 0.0
                || row.controls.as_ref().is_some_and(|c| {
                    c.throttle.unwrap_or(0.0) != 0.0
                        || c.brake.unwrap_or(0.0) != 0.0
                        || c.steer.unwrap_or(0.0) != 0.0
                        || c.command.is_some_and(|command| command != 4.0)
                })
        })
        .count();
    let value = share(acting, n);
    out.push(check(
        CheckName::NoDrivingAction,
        "share of frames with a driving action (keys, mouse or controls)",
        value,
        c.min_action_share,
        Bound::AtLeast,
        |ok| {
            if ok {
                format!("driving action on {} of frames", pct(value))
            } else if acting == 0 {
                "no driving action at all: no W/A/S/D, mouse or control input".to_owned()
            } else {
                format!("driving action on only {} of frames", pct(value))
            }
        },
    ));
    out
}

fn video_checks(
    segment: &Segment,
    context: &SessionContext<'_>,
    c: &VideoHealthConfig,
) -> Vec<CheckResult> {
    let rows = &segment.rows;
    let duration_s = segment.duration_ms() / 1000.0;
    let fps = if duration_s > 0.0 {
        rows.len() as f64 / duration_s
    } else {
        0.0
    };
    let gap = rows
        .windows(2)
        .map(|w| w[1].pts_ms.unwrap_or(0.0) - w[0].pts_ms.unwrap_or(0.0))
        .fold(0.0, f64::max);
    let range = context
        .all_rows
        .get(segment.first_frame..=segment.last_frame)
        .unwrap_or(&[]);
    let bursts = range
        .iter()
        .filter(|r| r.timing != crate::actions::FrameTiming::Measured)
        .count();
    let burst_share = if range.is_empty() {
        0.0
    } else {
        share(bursts, range.len())
    };
    let errors = context.decode_errors as f64;
    vec![
        check(
            CheckName::FrameRate,
            "frames per second of video time",
            fps,
            c.min_fps,
            Bound::AtLeast,
            |ok| {
                if ok {
                    format!("{fps:.1} fps")
                } else {
                    format!(
                        "only {fps:.1} frames per second (at least {} needed)",
                        c.min_fps
                    )
                }
            },
        ),
        check(
            CheckName::FrameGap,
            "longest step between frames (ms)",
            gap,
            c.max_gap_ms,
            Bound::AtMost,
            |ok| {
                if ok {
                    format!("longest frame step {gap:.0} ms")
                } else {
                    format!(
                        "a {gap:.0} ms gap between frames (at most {} ms)",
                        c.max_gap_ms
                    )
                }
            },
        ),
        check(
            CheckName::Bursts,
            "share of frames in the range with an unknown time",
            burst_share,
            c.max_burst_share,
            Bound::AtMost,
            |ok| {
                if ok {
                    "no repeated timestamps".to_owned()
                } else {
                    format!("{} of frames share a timestamp", pct(burst_share))
                }
            },
        ),
        check(
            CheckName::DecodeErrors,
            "decode errors in the session's video",
            errors,
            c.max_decode_errors,
            Bound::AtMost,
            |ok| {
                if ok {
                    "decoded cleanly".to_owned()
                } else {
                    format!("the video had {errors} decode errors")
                }
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::{FrameAction, FrameTiming};
    use crate::clock::{timing_prior, TimingFacts};
    use crate::latency::{LatencyModel, LatencySource};

    fn row(frame: usize, pts: f64) -> FrameAction {
        FrameAction {
            frame,
            pts_ms: Some(pts),
            timing: FrameTiming::Measured,
            run: 0,
            page_t_ms: Some(pts),
            keys_held: Some(vec![]),
            driving_keys: None,
            mouse_dx: Some(0.0),
            mouse_dy: Some(0.0),
            events: vec![],
            pose: None,
            controls: None,
        }
    }

    #[test]
    fn a_segment_without_decodable_frames_is_a_reasoned_fail() {
        let rows: Vec<FrameAction> = (0..10).map(|i| row(i, i as f64 * 100.0)).collect();
        let segment = Segment {
            index: 1,
            first_frame: 0,
            last_frame: 9,
            start_pts_ms: 0.0,
            end_pts_ms: 1000.0,
            start_page_ms: 0.0,
            end_page_ms: 900.0,
            runs: vec![0],
            rows: rows.clone(),
        };
        let latency = LatencyModel::constant(LatencySource::None, 0.0);
        let clock = ClockEstimate {
            prior: timing_prior(&TimingFacts::default(), &latency),
            latency,
            recording_start_t_ms: None,
            runs: vec![],
            run_of: vec![0; 10],
        };
        let context = SessionContext {
            // No frame statistics at all: nothing could be decoded or measured.
            frame_stats: &[],
            all_rows: &rows,
            inputs: &[],
            clock: &clock,
            decode_errors: 3,
        };
        let quality = clean_segment(&segment, &context, &QualityConfig::default());
        assert!(!quality.passed);
        let blur = quality
            .checks
            .iter()
            .find(|c| c.check == CheckName::Blur)
            .unwrap();
        assert!(!blur.passed);
        assert!(
            blur.reason.starts_with("nothing to measure"),
            "{}",
            blur.reason
        );
        assert!(quality.failed.contains(&CheckName::DecodeErrors));
        assert!(quality.failed.contains(&CheckName::AlignmentConfidence));
    }
}
