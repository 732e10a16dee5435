//! CLEAN: score every segment. Each check gives a number, the threshold it was held to,
//! pass/fail and a one-line reason; a segment passes only when every check passes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::actions::FrameAction;
use crate::align::Alignment;
use crate::bundle::Bundle;
use crate::clock::ClockEstimate;
use crate::fingerprint::{DuplicateConfig, DuplicateMatch};
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
    pub duplicate: DuplicateConfig,
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
    /// A frame whose mean luma is below this (limited-range black is 16)...
    pub black_max_luma: f64,
    /// ...and whose luma standard deviation is below this is black: a dark picture with detail
    /// (night, a tunnel) is a picture.
    pub black_max_contrast: f64,
    /// A frame (not black) whose mean luma is above this is washed out (over-exposed)...
    pub washed_min_luma: f64,
    /// ...and so is one (not black) whose luma standard deviation is below this (flat).
    pub washed_max_contrast: f64,
    /// A diffusion model's output never stands still: consecutive frames whose thumbnails differ
    /// by less than this (mean absolute difference, 0-255) stand still, whatever the logs say...
    pub frozen_still_max_change: f64,
    /// ...and, while the logs say the view should change (speed or yaw rate above their floors,
    /// or W held), so do frames that differ by less than this.
    pub frozen_moving_max_change: f64,
    /// ...and so do frames that differ by less than this share of what the session's own picture
    /// changes while its view stands still (75th percentile; only with a trusted clock).
    pub frozen_still_relative: f64,
    /// A picture standing still for at least this long is frozen.
    pub frozen_min_ms: f64,
    /// Camera-log speed above which the view should change, in the game's own units (the
    /// prototype's top speed is 20, another game's 0.8): a small floor.
    pub frozen_min_speed: f64,
    /// Camera-log yaw rate above which the view should change.
    pub frozen_min_yaw_rad_per_s: f64,
    /// While the view should change, a sideways shift under this (128x64 thumbnail px)...
    pub frozen_max_turn_shift_px: f64,
    /// ...while the camera turns by at least this much between the two frames, with A or D held,
    /// means the picture did not turn with it.
    pub frozen_min_turn_rad: f64,
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
    /// Most driving-key transitions (downs and ups of W/A/S/D) per second, in any window of
    /// `key_spam_window_ms` of the segment.
    pub max_key_transitions_per_s: f64,
    pub key_spam_window_ms: f64,
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
            min_sharpness: 75.0,
            max_blurred_share: 0.1,
        }
    }
}

impl Default for ArtifactConfig {
    fn default() -> Self {
        Self {
            black_max_luma: 40.0,
            black_max_contrast: 12.0,
            washed_min_luma: 225.0,
            washed_max_contrast: 6.0,
            frozen_still_max_change: 0.3,
            frozen_moving_max_change: 0.4,
            frozen_still_relative: 0.35,
            frozen_min_ms: 600.0,
            frozen_min_speed: 0.02,
            frozen_min_yaw_rad_per_s: 0.02,
            frozen_max_turn_shift_px: 0.2,
            frozen_min_turn_rad: 0.01,
            glitch_min_blockiness: 3.0,
            glitch_min_histogram_jump: 0.5,
            max_share: 0.1,
        }
    }
}

impl Default for ActionValidityConfig {
    fn default() -> Self {
        Self {
            max_key_transitions_per_s: 12.0,
            key_spam_window_ms: 1000.0,
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
        // Every threshold is a finite, non-negative number.
        let tree = serde_json::to_value(self).map_err(|err| ConfigError(err.to_string()))?;
        if let Some(tables) = tree.as_object() {
            for (table, fields) in tables {
                for (field, value) in fields.as_object().into_iter().flatten() {
                    if value.as_f64().is_none_or(|v| !v.is_finite() || v < 0.0) {
                        return Err(ConfigError(format!(
                            "{table}.{field} must be a finite number, 0 or more"
                        )));
                    }
                }
            }
        }
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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
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
    /// The drive was recorded before (the ledger's fingerprint index; not in `inspect`).
    Duplicate,
}

impl CheckName {
    pub const ALL: [CheckName; 15] = [
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
        CheckName::Duplicate,
    ];

    /// The check's name as every file and the ledger write it (its serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Blur => "blur",
            CheckName::Black => "black",
            CheckName::WashedOut => "washed_out",
            CheckName::Frozen => "frozen",
            CheckName::Glitch => "glitch",
            CheckName::KeySpam => "key_spam",
            CheckName::ImpossibleInputs => "impossible_inputs",
            CheckName::InconsistentInputs => "inconsistent_inputs",
            CheckName::NoDrivingAction => "no_driving_action",
            CheckName::FrameRate => "frame_rate",
            CheckName::FrameGap => "frame_gap",
            CheckName::Bursts => "bursts",
            CheckName::DecodeErrors => "decode_errors",
            CheckName::AlignmentConfidence => "alignment_confidence",
            CheckName::Duplicate => "duplicate",
        }
    }
}

/// How a value is held to its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Passes when `value <= threshold`.
    AtMost,
    /// Passes when `value >= threshold`.
    AtLeast,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
    /// The session frames (decode order) inside the segment that this check flags, for a
    /// reviewer's lane: the blurred, black, washed-out, frozen or glitched frames; the frame
    /// after a gap over the limit; the frames with an unknown time; the frames where keys and
    /// camera disagree, opposite keys are held too long or the mouse jumps. Empty for a check
    /// that judges the segment as a whole (frame rate, key spam, driving action, decode errors,
    /// clock confidence).
    pub frames: Vec<usize>,
    /// For `duplicate`: the earlier segment this one's frames match and the evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<DuplicateMatch>,
}

impl CheckResult {
    fn flagging(mut self, frames: Vec<usize>) -> Self {
        self.frames = frames;
        self
    }
}

/// The per-frame lines the picture checks hold each frame to, for a reviewer's metric lanes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FrameThresholds {
    /// Under this sharpness (Laplacian variance) a plain frame is blurred.
    pub min_sharpness: f64,
    /// Under this mean luma (and contrast) a frame is black.
    pub black_max_luma: f64,
    /// Over this mean luma a frame is over-exposed.
    pub washed_min_luma: f64,
    /// Under this change from the previous frame (mean absolute thumbnail difference, 0-255) a
    /// step stands still: the larger of `frozen_still_max_change` and the session's own still-view
    /// shimmer times `frozen_still_relative`.
    pub still_max_change: f64,
}

/// The verdict on one segment.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SegmentQuality {
    pub segment: usize,
    pub passed: bool,
    /// The failing checks, in check order.
    pub failed: Vec<CheckName>,
    pub checks: Vec<CheckResult>,
    pub frame_thresholds: FrameThresholds,
}

impl SegmentQuality {
    /// Adds a check made outside CLEAN (the ledger's `duplicate`): the verdict and the failing
    /// checks follow it.
    pub fn add_check(&mut self, result: CheckResult) {
        if !result.passed {
            self.failed.push(result.check);
            self.failed.sort();
            self.failed.dedup();
            self.passed = false;
        }
        self.checks.push(result);
    }
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
        frames: Vec::new(),
        duplicate_of: None,
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
    let stats: Vec<(usize, &FrameStats)> = segment
        .rows
        .iter()
        .filter_map(|row| context.frame_stats.get(row.frame).map(|s| (row.frame, s)))
        .collect();
    let frames_where = |is: &dyn Fn(&FrameStats) -> bool| -> Vec<usize> {
        stats
            .iter()
            .filter(|(_, s)| is(s))
            .map(|(frame, _)| *frame)
            .collect()
    };
    let n = stats.len();
    let mut checks = Vec::new();

    // Each frame gets its most specific picture defect: a black or washed-out frame is also
    // without detail and blocky, but it is black or washed out, not blurred or glitched.
    let a = &config.artifacts;
    let b = &config.blur;
    let classes = PictureClasses::new(a, b);

    // Blur.
    let blurred = frames_where(&|s| classes.is_blurred(s));
    let value = share(blurred.len(), n);
    checks.push(
        check(
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
        )
        .flagging(blurred),
    );

    // Artifacts.
    let black = frames_where(&|s| classes.is_black(s));
    let bright = stats.iter().filter(|(_, s)| classes.is_bright(s)).count();
    let washed = frames_where(&|s| classes.is_washed(s));
    let flat = washed.len() - bright;
    // What the logs say about motion is read at the frames' page times: only when the clock is
    // trusted.
    let clock_trusted = segment_confidence(segment, context) >= config.alignment.min_confidence;
    let still_bar = match still_view_change(context, a, &classes, config) {
        Some(level) => a
            .frozen_still_max_change
            .max(a.frozen_still_relative * level),
        None => a.frozen_still_max_change,
    };
    let frozen = frozen_frames(
        segment,
        context.frame_stats,
        a,
        &classes,
        clock_trusted,
        still_bar,
    );
    // A histogram jump next to a black or washed-out frame is that defect's cut, not a glitch.
    let previous_plain = |frame: usize| {
        frame
            .checked_sub(1)
            .and_then(|f| context.frame_stats.get(f))
            .is_none_or(|s| classes.is_plain(s))
    };
    let glitched: Vec<usize> = stats
        .iter()
        .filter(|(_, s)| classes.is_plain(s))
        .filter(|(frame, s)| {
            f64::from(s.blockiness) >= a.glitch_min_blockiness
                || (s
                    .histogram_jump
                    .is_some_and(|j| f64::from(j) >= a.glitch_min_histogram_jump)
                    && previous_plain(*frame))
        })
        .map(|(frame, _)| *frame)
        .collect();
    let washed_detail = format!(
        "washed out (over-exposed {}, flat without contrast {})",
        pct(share(bright, n)),
        pct(share(flat, n))
    );
    let frozen_detail = match (frozen.frames.len(), frozen.while_moving) {
        (0, _) => "frozen".to_owned(),
        (_, 0) => "frozen (the picture stands still, which a diffusion model's output never does)"
            .to_owned(),
        (_, moving) => format!(
            "frozen (the picture stands still; on {} of frames the logs say the car moves or turns)",
            pct(share(moving, n))
        ),
    };
    for (name, metric, count, what) in [
        (
            CheckName::Black,
            "share of black frames",
            black,
            "black".to_owned(),
        ),
        (
            CheckName::WashedOut,
            "share of washed-out (over-exposed or flat) frames",
            washed,
            washed_detail,
        ),
        (
            CheckName::Frozen,
            "share of frames in a stretch where the picture stands still",
            frozen.frames,
            frozen_detail,
        ),
        (
            CheckName::Glitch,
            "share of glitched frames (blocky or abrupt histogram jump)",
            glitched,
            "glitched".to_owned(),
        ),
    ] {
        let value = share(count.len(), n);
        checks.push(
            check(name, metric, value, a.max_share, Bound::AtMost, |ok| {
                if ok {
                    format!("{} of frames {what}", pct(value))
                } else {
                    format!(
                        "{} of frames are {what}, more than {}",
                        pct(value),
                        pct(a.max_share)
                    )
                }
            })
            .flagging(count),
        );
    }

    checks.extend(action_checks(segment, context, &config.actions));
    checks.extend(video_checks(segment, context, &config.video));

    // Alignment confidence.
    let confidence = segment_confidence(segment, context);
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
        frame_thresholds: FrameThresholds {
            min_sharpness: b.min_sharpness,
            black_max_luma: a.black_max_luma,
            washed_min_luma: a.washed_min_luma,
            still_max_change: still_bar,
        },
    }
}

/// The least clock confidence of the runs a segment spans.
fn segment_confidence(segment: &Segment, context: &SessionContext<'_>) -> f64 {
    segment
        .runs
        .iter()
        .filter_map(|run| context.clock.runs.get(*run))
        .map(|run| run.confidence)
        .reduce(f64::min)
        .unwrap_or(0.0)
}

/// What a frame's picture is, by its brightness, contrast and detail.
#[derive(Debug, Clone, Copy)]
struct PictureClasses<'a> {
    config: &'a ArtifactConfig,
    min_sharpness: f64,
}

impl<'a> PictureClasses<'a> {
    fn new(config: &'a ArtifactConfig, blur: &BlurConfig) -> Self {
        Self {
            config,
            min_sharpness: blur.min_sharpness,
        }
    }

    /// Dark and without detail: black, whatever trace of the picture is left.
    fn is_black(&self, s: &FrameStats) -> bool {
        f64::from(s.mean_luma) < self.config.black_max_luma
            && f64::from(s.luma_std) < self.config.black_max_contrast
    }

    /// Over-exposed (and not black).
    fn is_bright(&self, s: &FrameStats) -> bool {
        !self.is_black(s) && f64::from(s.mean_luma) > self.config.washed_min_luma
    }

    /// Over-exposed or flat (and not black).
    fn is_washed(&self, s: &FrameStats) -> bool {
        self.is_bright(s)
            || (!self.is_black(s) && f64::from(s.luma_std) < self.config.washed_max_contrast)
    }

    /// Neither black nor washed out: a picture whose detail can be judged.
    fn is_plain(&self, s: &FrameStats) -> bool {
        !self.is_black(s) && !self.is_washed(s)
    }

    /// A plain picture with too little detail.
    fn is_blurred(&self, s: &FrameStats) -> bool {
        self.is_plain(s) && f64::from(s.sharpness) < self.min_sharpness
    }

    /// A plain picture with detail enough to tell still from slow.
    fn is_detailed(&self, s: &FrameStats) -> bool {
        self.is_plain(s) && f64::from(s.sharpness) >= self.min_sharpness
    }
}

/// Frames in frozen stretches, and how many of them the logs say should have moved.
#[derive(Debug, Clone, Default, PartialEq)]
struct Frozen {
    /// The session frames in frozen stretches.
    frames: Vec<usize>,
    while_moving: usize,
}

/// How much this session's picture changes from frame to frame while its view stands still (the
/// car parked, not turning, no W; steps of runs whose clock is trusted, between pictured frames):
/// the 75th percentile, over at least 10 such steps. A diffusion model's shimmer is the session's
/// own; a frozen stretch changes far less than it, and takes less than a quarter of the steps.
fn still_view_change(
    context: &SessionContext<'_>,
    a: &ArtifactConfig,
    classes: &PictureClasses<'_>,
    config: &QualityConfig,
) -> Option<f64> {
    let trusted = |run: usize| {
        context
            .clock
            .runs
            .iter()
            .find(|r| r.run == run)
            .is_some_and(|r| r.confidence >= config.alignment.min_confidence)
    };
    // Frames with a picture defect of their own (black, washed out, blurred, glitched) say
    // nothing about the session's shimmer.
    let pictured = |frame: usize| {
        context.frame_stats.get(frame).is_some_and(|s| {
            classes.is_detailed(s)
                && f64::from(s.blockiness) < a.glitch_min_blockiness
                && s.histogram_jump
                    .is_none_or(|j| f64::from(j) < a.glitch_min_histogram_jump)
        })
    };
    let mut changes: Vec<f64> = context
        .all_rows
        .windows(2)
        .filter_map(|pair| {
            let (previous, row) = (&pair[0], &pair[1]);
            let dt = row.pts_ms? - previous.pts_ms?;
            let consecutive = row.frame == previous.frame + 1
                && row.run == previous.run
                && row.timing == crate::actions::FrameTiming::Measured
                && previous.timing == crate::actions::FrameTiming::Measured;
            (consecutive
                && trusted(row.run)
                && pictured(row.frame)
                && pictured(previous.frame)
                && !view_should_change(previous, row, dt, a))
            .then(|| context.frame_stats.get(row.frame)?.change.map(f64::from))
            .flatten()
        })
        .filter(|c| c.is_finite())
        .collect();
    if changes.len() < 10 {
        return None;
    }
    changes.sort_by(f64::total_cmp);
    Some(changes[changes.len() * 3 / 4])
}

/// Frames inside stretches of at least `frozen_min_ms` where the picture stands still.
/// (What the logs say is used only when the segment's clock is trusted.)
///
/// A step from one frame to the next stands still when the thumbnails differ by less than
/// `frozen_still_max_change`, or than `frozen_still_relative` of the session's own change while
/// its view stands still, whatever the logs say (a diffusion model's output never stands still). While the logs say the view should change (speed or yaw rate above their floors, or W
/// held) it also stands still when they differ by less than `frozen_moving_max_change`, or when the
/// camera turns by `frozen_min_turn_rad` or more with A or D held and the picture does not move
/// sideways (less than `frozen_max_turn_shift_px`): a repeated picture that the encoder keeps
/// refining changes a little from frame to frame, but it does not turn. A step counts when the majority of it and
/// its two neighbours stand still, so that one frame of the encoder's refinement does not break a
/// stretch and one skipped frame does not make one. Black and washed-out frames (no picture to stand
/// still) never count.
fn frozen_frames(
    segment: &Segment,
    frame_stats: &[FrameStats],
    a: &ArtifactConfig,
    classes: &PictureClasses<'_>,
    clock_trusted: bool,
    still_bar: f64,
) -> Frozen {
    let rows = &segment.rows;
    // A blurred frame has too little detail to tell still from slow; it is blur's.
    let pictured = |frame: usize| {
        frame_stats
            .get(frame)
            .is_some_and(|s| classes.is_detailed(s))
    };
    // Per step (row i against row i-1): whether it stands still, and whether the logs say the
    // view should have changed.
    let steps: Vec<Option<(bool, bool)>> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let previous = rows.get(i.checked_sub(1)?)?;
            let dt = row.pts_ms? - previous.pts_ms?;
            let stats = frame_stats.get(row.frame)?;
            if row.frame != previous.frame + 1 || !pictured(row.frame) || !pictured(previous.frame)
            {
                return None;
            }
            let change = f64::from(stats.change.filter(|c| c.is_finite())?);
            let moving = clock_trusted && view_should_change(previous, row, dt, a);
            // Turning, as the keys time it (the camera log's yaw is interpolated between samples
            // up to 2 s apart): A or D held and the pose's yaw changing.
            let turning = row.driving_keys.is_some_and(|k| k.a != k.d)
                && turn_rad(previous, row) >= a.frozen_min_turn_rad;
            let still = change < still_bar
                || (moving && change < a.frozen_moving_max_change)
                || (moving
                    && turning
                    && stats.shift.is_some_and(|shift| {
                        shift.peak >= MIN_SHIFT_PEAK
                            && shift.dx_px.abs() < a.frozen_max_turn_shift_px
                    }));
            Some((still, moving))
        })
        .collect();
    let still_at = |i: usize| {
        steps
            .get(i)
            .copied()
            .flatten()
            .is_some_and(|(still, _)| still)
    };

    let mut out = Frozen::default();
    // The open stretch: the pts of the frame before its first still step, its frames, and how
    // many of them the logs say should have moved.
    let mut stretch: Option<(f64, Vec<usize>, usize)> = None;
    let mut last_pts = 0.0;
    let close =
        |stretch: &mut Option<(f64, Vec<usize>, usize)>, last_pts: f64, out: &mut Frozen| {
            if let Some((first, frames, moving)) = stretch.take() {
                if last_pts - first >= a.frozen_min_ms {
                    out.frames.extend(frames);
                    out.while_moving += moving;
                }
            }
        };
    for (i, step) in steps.iter().enumerate() {
        // The majority of this step and its two neighbours.
        let counts = step.is_some()
            && [i.wrapping_sub(1), i, i + 1]
                .into_iter()
                .filter(|&j| still_at(j))
                .count()
                >= 2;
        match (counts, step, rows[i].pts_ms) {
            (true, Some((_, moving)), Some(pts)) => {
                let before = &rows[i - 1];
                let start = before.pts_ms.unwrap_or(pts);
                let entry = stretch.get_or_insert_with(|| (start, vec![before.frame], 0));
                entry.1.push(rows[i].frame);
                entry.2 += usize::from(*moving);
                last_pts = pts;
            }
            _ => close(&mut stretch, last_pts, &mut out),
        }
    }
    close(&mut stretch, last_pts, &mut out);
    out.while_moving = out.while_moving.min(out.frames.len());
    out
}

/// A phase-correlation peak under this means the two frames share too little to measure a shift.
const MIN_SHIFT_PEAK: f64 = 0.05;

/// How far the camera turns between two frames, rad (0 without a pose).
fn turn_rad(a: &FrameAction, b: &FrameAction) -> f64 {
    match (&a.pose, &b.pose) {
        (Some(pa), Some(pb)) => crate::actions::shortest_arc(pb.yaw - pa.yaw).abs(),
        _ => 0.0,
    }
}

/// Whether the logs say the view changes between two consecutive frames.
fn view_should_change(a: &FrameAction, b: &FrameAction, dt_ms: f64, c: &ArtifactConfig) -> bool {
    let forward = b.driving_keys.is_some_and(|k| k.w);
    let (Some(pa), Some(pb)) = (&a.pose, &b.pose) else {
        return forward;
    };
    let speed = pa.speed.abs().max(pb.speed.abs());
    let yaw_rate = if dt_ms > 0.0 {
        crate::actions::shortest_arc(pb.yaw - pa.yaw).abs() / (dt_ms / 1000.0)
    } else {
        0.0
    };
    forward || speed > c.frozen_min_speed || yaw_rate > c.frozen_min_yaw_rad_per_s
}

fn is_driving_key(key: Option<&str>) -> bool {
    matches!(key, Some("w" | "a" | "s" | "d"))
}

/// W/A/S/D presses and releases within the busiest `window_ms` of `events` (KEY_SPAM's count).
pub fn busiest_key_transitions<'a>(
    events: impl IntoIterator<Item = &'a InputEvent>,
    window_ms: f64,
) -> usize {
    let mut transitions: Vec<f64> = events
        .into_iter()
        .filter(|e| {
            matches!(e.input_kind(), InputKind::KeyDown | InputKind::KeyUp)
                && is_driving_key(e.key.as_deref())
        })
        .map(|e| e.t)
        .collect();
    transitions.sort_by(f64::total_cmp);
    transitions
        .iter()
        .enumerate()
        .map(|(i, &t)| transitions[i..].partition_point(|&u| u < t + window_ms))
        .max()
        .unwrap_or(0)
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

    // Key spam: the busiest window of the segment, so that a second of mashing inside five of
    // driving shows.
    let window_ms = c.key_spam_window_ms.max(1.0);
    let busiest = busiest_key_transitions(events.iter().copied(), window_ms);
    let rate = busiest as f64 / (window_ms / 1000.0).min(span_s);
    let mut out = vec![check(
        CheckName::KeySpam,
        "driving-key transitions per second in the busiest window",
        rate,
        c.max_key_transitions_per_s,
        Bound::AtMost,
        |ok| {
            if ok {
                format!("at most {rate:.1} key transitions/s")
            } else {
                format!(
                    "key spam: {busiest} W/A/S/D transitions within {:.1} s ({rate:.1}/s), more than {}/s",
                    window_ms / 1000.0,
                    c.max_key_transitions_per_s
                )
            }
        },
    )];

    // Impossible inputs: opposite keys held together for long, mouse jumps, time going backwards.
    let mut longest_opposite: f64 = 0.0;
    // The open stretch of opposite keys: when it began and its frames; the frames of the
    // stretches held too long.
    let mut since: Option<(f64, Vec<usize>)> = None;
    let mut flagged: Vec<usize> = Vec::new();
    let mut close = |since: &mut Option<(f64, Vec<usize>)>, end: f64| {
        if let Some((start, frames)) = since.take() {
            if end - start > c.max_opposite_held_ms {
                flagged.extend(frames);
            }
        }
    };
    let mut last_t = 0.0;
    for row in rows {
        let opposite = row
            .driving_keys
            .is_some_and(|k| (k.w && k.s) || (k.a && k.d));
        let t = row.page_t_ms.unwrap_or(0.0);
        if opposite {
            let (start, frames) = since.get_or_insert_with(|| (t, Vec::new()));
            frames.push(row.frame);
            longest_opposite = longest_opposite.max(t - *start);
            last_t = t;
        } else {
            close(&mut since, last_t);
        }
    }
    close(&mut since, last_t);
    let long_opposite = usize::from(longest_opposite > c.max_opposite_held_ms);
    let is_jump = |e: &InputEvent| {
        e.dx.unwrap_or(0.0).abs() > c.max_mouse_delta
            || e.dy.unwrap_or(0.0).abs() > c.max_mouse_delta
    };
    let mouse_jumps = events.iter().filter(|e| is_jump(e)).count();
    flagged.extend(
        rows.iter()
            .filter(|row| {
                // The events the check counts: those within the segment's span.
                row.events.iter().any(|&i| {
                    context
                        .inputs
                        .get(i)
                        .is_some_and(|e| e.t >= t0 && e.t <= t1 && is_jump(e))
                })
            })
            .map(|row| row.frame),
    );
    flagged.sort_unstable();
    flagged.dedup();
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
    out.push(
        check(
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
        )
        .flagging(flagged),
    );

    // Inconsistent: forward held but the camera stands still, or the car speeds up with no
    // forward input from keys or controls.
    let mut inconsistent = Vec::new();
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
            inconsistent.push(b.frame);
        }
    }
    let value = if judged == 0 {
        0.0
    } else {
        share(inconsistent.len(), judged)
    };
    out.push(check(CheckName::InconsistentInputs, "share of frame steps where keys and camera disagree", value, c.max_inconsistent_share, Bound::AtMost, |ok| {
        if ok {
            format!("keys and camera agree on {} of frame steps", pct(1.0 - value))
        } else {
            format!("keys and camera disagree on {} of frame steps (forward held while standing, or speeding up with no forward input)", pct(value))
        }
    }).flagging(inconsistent));

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
    let step = |w: &[FrameAction]| w[1].pts_ms.unwrap_or(0.0) - w[0].pts_ms.unwrap_or(0.0);
    let gap = rows.windows(2).map(step).fold(0.0, f64::max);
    let after_gaps: Vec<usize> = rows
        .windows(2)
        .filter(|w| step(w) > c.max_gap_ms)
        .map(|w| w[1].frame)
        .collect();
    let range = context
        .all_rows
        .get(segment.first_frame..=segment.last_frame)
        .unwrap_or(&[]);
    let bursts: Vec<usize> = range
        .iter()
        .filter(|r| r.timing != crate::actions::FrameTiming::Measured)
        .map(|r| r.frame)
        .collect();
    let burst_share = if range.is_empty() {
        0.0
    } else {
        share(bursts.len(), range.len())
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
        )
        .flagging(after_gaps),
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
        )
        .flagging(bursts),
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

    /// A segment of `rows` over page times `page_ms`, in run 0.
    fn segment_of(rows: &[FrameAction], page_ms: (f64, f64)) -> Segment {
        Segment {
            index: 1,
            first_frame: rows.first().map_or(0, |r| r.frame),
            last_frame: rows.last().map_or(0, |r| r.frame),
            start_pts_ms: rows.first().and_then(|r| r.pts_ms).unwrap_or(0.0),
            end_pts_ms: rows.last().and_then(|r| r.pts_ms).unwrap_or(0.0) + 100.0,
            start_page_ms: page_ms.0,
            end_page_ms: page_ms.1,
            runs: vec![0],
            rows: rows.to_vec(),
        }
    }

    /// A clock with no run (so no trusted one) over `frames` frames.
    fn untrusted_clock(frames: usize) -> ClockEstimate {
        let latency = LatencyModel::constant(LatencySource::None, 0.0);
        ClockEstimate {
            prior: timing_prior(&TimingFacts::default(), &latency),
            latency,
            recording_start_t_ms: None,
            runs: vec![],
            run_of: vec![0; frames],
        }
    }

    #[test]
    fn check_names_are_their_serde_names() {
        for check in CheckName::ALL {
            assert_eq!(
                serde_json::to_value(check).expect("serialise"),
                serde_json::Value::String(check.as_str().to_owned())
            );
        }
    }

    #[test]
    fn impossible_inputs_flag_the_frames_of_the_events_they_count() {
        let jump = |t: f64| InputEvent {
            t,
            kind: "mouse".to_owned(),
            key: None,
            dx: Some(5_000.0),
            dy: Some(0.0),
            extra: serde_json::Map::new(),
        };
        // A jump just before the segment (carried by its first row's events) and one inside it.
        let inputs = vec![jump(950.0), jump(1_450.0)];
        let mut rows: Vec<FrameAction> = (10..20).map(|i| row(i, i as f64 * 100.0)).collect();
        rows[0].events = vec![0];
        rows[5].events = vec![1];
        let segment = segment_of(&rows, (1_000.0, 1_900.0));
        let clock = untrusted_clock(20);
        let context = SessionContext {
            frame_stats: &[],
            all_rows: &rows,
            inputs: &inputs,
            clock: &clock,
            decode_errors: 0,
        };
        let quality = clean_segment(&segment, &context, &QualityConfig::default());
        let impossible = quality
            .checks
            .iter()
            .find(|c| c.check == CheckName::ImpossibleInputs)
            .expect("reported");
        // The check counts the jump inside the span only, and flags only its frame.
        assert_eq!(impossible.value, 1.0);
        assert_eq!(impossible.frames, [15]);
    }

    #[test]
    fn a_segment_without_decodable_frames_is_a_reasoned_fail() {
        let rows: Vec<FrameAction> = (0..10).map(|i| row(i, i as f64 * 100.0)).collect();
        let segment = segment_of(&rows, (0.0, 900.0));
        let clock = untrusted_clock(10);
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
