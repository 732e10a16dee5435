//! The clock join: which page time (`performance.now()`) each video frame shows.
//!
//! An event at page time `T` shows at video time `v = T - S + (L(T) - mean L)`, where `S` is the
//! page time whose input shows at video time 0 (the recorder start `R` net of the mean lag) and
//! `L` the latency model. Only `S` is observable. Sources, best first:
//!
//! 1. `recordingStartT` in meta: `S = R - lag`, the lag measured by the motion fit inside a
//!    plausible window, or assumed (mean RTT plus a default model delay) at a low confidence.
//! 2. Motion correlation: the shift and change measured between decoded frames against the motion
//!    the logs predict (camera yaw and distance, keys held), over a bounded window of candidate
//!    offsets, at real frame times; sub-frame refinement around the peak.
//! 3. A prior from meta timing (`startTime`, the latency part's upload epoch and last RTT sample,
//!    the session id's epoch), with a low confidence.
//!
//! Each continuous run of frames between long stalls gets its own offset: a long stall can break
//! the recorder's clock (SPEC section 8).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::actions::{
    frame_timing, ground_distance, shortest_arc, sorted_camera, AnimationFrames, FrameTiming,
    Teleports,
};
use crate::latency::LatencyModel;
use crate::model::{CameraSample, InputEvent, InputKind, DRIVING_KEYS};
use crate::timeline::median;
use crate::video::FrameStats;

/// Knobs of the clock estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockConfig {
    /// A gap between frames longer than this starts a new run with its own offset.
    pub run_break_ms: f64,
    /// The lag between an input and its effect in the video lies in `[min_lag_ms, max_lag_ms]`.
    /// With `recordingStartT` the fit searches `S = R - lag` there; without, it searches the
    /// prior's uncertainty widened by `max_lag_ms` each way. The network RTT is a physical floor
    /// only when `R` is read exactly at `MediaRecorder.start()`; the capture path moves it by up
    /// to ~100 ms either way (SPEC section 8), so the window starts at 0.
    pub min_lag_ms: f64,
    /// See [`ClockConfig::min_lag_ms`].
    pub max_lag_ms: f64,
    /// With `recordingStartT` and no confident fit, the lag is assumed to be the mean RTT plus
    /// this (the model's and the capture path's own delay), at [`ClockConfig::assumed_lag_confidence`].
    pub default_model_delay_ms: f64,
    /// Confidence of a run whose lag is assumed: under CLEAN's bar, since the true lag may lie
    /// anywhere in the window.
    pub assumed_lag_confidence: f64,
    /// A frame the motion fit uses shows a picture: luma standard deviation at least this (not
    /// flat), mean luma at least this (not dark), blockiness under this (not corrupted) and no
    /// histogram jump this big from the frame before (not a cut). Looser than CLEAN's own bars:
    /// this only keeps the fit off frames that move for reasons the logs know nothing of.
    pub picture_min_contrast: f64,
    pub picture_min_luma: f64,
    pub picture_max_blockiness: f64,
    pub picture_max_histogram_jump: f64,
    pub coarse_step_ms: f64,
    pub fine_step_ms: f64,
    /// A motion fit below this confidence is not used: the prior is, or with `recordingStartT` an
    /// assumed lag.
    pub min_confidence: f64,
    /// Frame pairs a run needs before a motion fit is tried.
    pub min_pairs: usize,
    /// Video time over which the camera log must show the view moving for a fit to count fully;
    /// less scales its confidence down.
    pub full_support_ms: f64,
    /// Most a stall may widen a later run's search (the recorder stops at 60 s).
    pub max_break_ms: f64,
    /// Most candidate offsets on the coarse grid; a wider window gets a coarser step.
    pub max_candidates: usize,
    /// Points of the score curve kept for reports.
    pub curve_points: usize,
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self {
            run_break_ms: 5000.0,
            min_lag_ms: 0.0,
            max_lag_ms: 3000.0,
            default_model_delay_ms: 300.0,
            assumed_lag_confidence: 0.1,
            picture_min_contrast: 6.0,
            picture_min_luma: 24.0,
            picture_max_blockiness: 3.0,
            picture_max_histogram_jump: 0.5,
            coarse_step_ms: 5.0,
            fine_step_ms: 0.25,
            min_confidence: 0.2,
            min_pairs: 8,
            full_support_ms: 3000.0,
            max_break_ms: 60_000.0,
            max_candidates: 8_000,
            curve_points: 400,
        }
    }
}

/// Where a run's offset came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OffsetSource {
    RecordingStartT,
    MotionCorrelation,
    MetaTiming,
}

/// What the prior was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PriorBasis {
    /// Meta's `timeOrigin` is the page clock's epoch origin; `startTime` (or `endTime`) then
    /// places the recorder start to within the two clocks' disagreement.
    TimeOrigin,
    /// The latency part's upload epoch minus its last RTT sample bounds the page clock's epoch
    /// origin; `startTime` (or `endTime`) then places the recorder start.
    LatencyUpload,
    /// The session id's epoch bounds the page clock's origin from one side only.
    SessionId,
    /// Nothing on the epoch clock: the first camera sample.
    FirstCameraSample,
}

/// The best guess from meta timing alone.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Prior {
    pub basis: PriorBasis,
    /// Estimated `R`, page time of the recorder start.
    pub recording_start_ms: f64,
    /// `R - mean L`.
    pub offset_ms: f64,
    /// Half-width of the range the truth is believed to lie in (before the lag allowance).
    pub uncertainty_ms: f64,
    pub confidence: f64,
    /// Epoch ms at page time 0, when it could be bounded.
    pub page_epoch_origin_ms: Option<f64>,
    /// The steps of the reasoning, for people.
    pub detail: String,
}

/// Correlation of one measured signal with one predicted signal at the chosen offset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChannelFit {
    /// `measured~predicted`, e.g. `shift_x~camera_yaw`.
    pub channel: String,
    pub r: f64,
}

/// The motion-correlation fit of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MotionFit {
    pub offset_ms: f64,
    /// Mean squared correlation over the active channels at the peak, 0-1.
    pub score: f64,
    /// Best score further than `exclusion_ms` from the peak.
    pub second_score: f64,
    pub exclusion_ms: f64,
    pub pairs: usize,
    /// Pairs over which the camera log says the view moves, and the video time they span.
    pub moving_pairs: usize,
    pub moving_ms: f64,
    pub confidence: f64,
    pub channels: Vec<ChannelFit>,
    /// Score against candidate offsets, `search_start_ms + i * search_step_ms`.
    pub search_start_ms: f64,
    pub search_step_ms: f64,
    pub scores: Vec<f32>,
}

/// How the lag `R - S` of a run anchored by `recordingStartT` was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LagSource {
    /// The motion fit, searched inside the lag window.
    Measured,
    /// No confident fit: the mean RTT plus the default model delay.
    Assumed,
}

/// The lag through the network, the model and the capture path, for a run anchored by
/// `recordingStartT`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LagEstimate {
    /// `R - S`, ms.
    pub lag_ms: f64,
    pub source: LagSource,
    /// The window it was searched in, `[min, max]` ms.
    pub window_ms: [f64; 2],
}

impl LagEstimate {
    /// `lag 715 ms, measured in 0-3000 ms` or `lag 640 ms, assumed (no confident fit in 0-3000
    /// ms)`, for people.
    pub fn describe(&self) -> String {
        let [from, to] = self.window_ms;
        match self.source {
            LagSource::Measured => {
                format!(
                    "lag {:.0} ms, measured in {from:.0}-{to:.0} ms",
                    self.lag_ms
                )
            }
            LagSource::Assumed => format!(
                "lag {:.0} ms, assumed (no confident fit in {from:.0}-{to:.0} ms)",
                self.lag_ms
            ),
        }
    }
}

/// The clock of one continuous run of frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunClock {
    pub run: usize,
    pub first_frame: usize,
    pub last_frame: usize,
    pub first_pts_ms: f64,
    pub last_pts_ms: f64,
    /// `S` for this run: page time of video time 0, net of the mean lag.
    pub offset_ms: f64,
    pub source: OffsetSource,
    pub confidence: f64,
    pub motion: Option<MotionFit>,
    /// With `recordingStartT`: the lag `R - S` this run uses, and whether it was measured or
    /// assumed.
    pub lag: Option<LagEstimate>,
}

/// The whole clock join of a session.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ClockEstimate {
    pub latency: LatencyModel,
    pub recording_start_t_ms: Option<f64>,
    pub prior: Prior,
    pub runs: Vec<RunClock>,
    /// Run of every frame (frames without a timestamp join the run before them).
    #[serde(skip)]
    pub run_of: Vec<usize>,
}

impl ClockEstimate {
    fn offset_of(&self, run: usize) -> f64 {
        self.runs
            .iter()
            .find(|r| r.run == run)
            .map_or(self.prior.offset_ms, |r| r.offset_ms)
    }

    /// Page time `T` shown by `frame` at `pts_ms`: the solution of `v = T - S + (L(T) - mean L)`,
    /// by fixed-point steps (the latency model varies slowly, so three are plenty).
    pub fn page_time(&self, frame: usize, pts_ms: f64) -> f64 {
        let run = self.run_of.get(frame).copied().unwrap_or(0);
        page_time_at(pts_ms, self.offset_of(run), &self.latency)
    }

    /// Video time at which an event at page time `t_ms` shows, in run `run`:
    /// `T - S + (L(T) - mean L)`.
    pub fn video_time(&self, run: usize, t_ms: f64) -> f64 {
        t_ms - self.offset_of(run) + self.latency.variation_at(t_ms)
    }

    /// The least confident run's confidence (what a segment spanning them all can claim).
    pub fn min_confidence(&self) -> f64 {
        self.runs
            .iter()
            .map(|r| r.confidence)
            .reduce(f64::min)
            .unwrap_or(0.0)
    }
}

/// `T` with `pts = T - offset + (L(T) - mean L)`.
fn page_time_at(pts_ms: f64, offset_ms: f64, latency: &LatencyModel) -> f64 {
    let mut t = pts_ms + offset_ms;
    for _ in 0..3 {
        t = pts_ms + offset_ms - latency.variation_at(t);
    }
    t
}

/// Meta timing the prior is built from, gathered by the caller from the bundle.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimingFacts {
    pub start_time_epoch_ms: Option<f64>,
    /// Meta's `timeOrigin`: the epoch ms of page time 0.
    pub time_origin_epoch_ms: Option<f64>,
    pub end_time_epoch_ms: Option<f64>,
    pub session_epoch_ms: Option<f64>,
    pub latency_upload_epoch_ms: Option<f64>,
    /// `t` of the last RTT sample, and the median step between samples.
    pub last_rtt_t_ms: Option<f64>,
    pub rtt_median_step_ms: Option<f64>,
    pub first_camera_t_ms: Option<f64>,
    pub video_span_ms: f64,
}

/// Builds the prior from meta timing. See [`PriorBasis`] for the reasoning at each level.
pub fn timing_prior(facts: &TimingFacts, latency: &LatencyModel) -> Prior {
    // Samples run every ~2 s until the part is serialised just before its upload; the last one
    // is 0-2 s before the upload epoch when they ran regularly.
    let regular = facts.rtt_median_step_ms.is_some_and(|step| step <= 3000.0);
    let origin = match (facts.latency_upload_epoch_ms, facts.last_rtt_t_ms) {
        (Some(upload), Some(last)) if regular => Some(upload - last - 1000.0),
        _ => None,
    };
    // The session id is `Date.now()` when the session was made, at page time >= 0.
    let origin = origin.filter(|origin| facts.session_epoch_ms.is_none_or(|sid| *origin <= sid));
    let place = |origin: f64| match (facts.start_time_epoch_ms, facts.end_time_epoch_ms) {
        (Some(start), _) => Some((start - origin, "startTime")),
        (None, Some(end)) => Some((end - origin - facts.video_span_ms, "endTime - video span")),
        _ => None,
    };
    let mean = latency.mean_ms;
    let build = |basis, r: f64, uncertainty_ms, confidence, origin, detail: String| Prior {
        basis,
        recording_start_ms: r,
        offset_ms: r - mean,
        uncertainty_ms,
        confidence,
        page_epoch_origin_ms: origin,
        detail,
    };
    if let Some((origin, (r, from))) = facts
        .time_origin_epoch_ms
        .and_then(|o| place(o).map(|placed| (o, placed)))
    {
        // `Date.now()` and `performance.timeOrigin + performance.now()` drift apart by a few ms
        // over a page's life (and more across a clock step); the lag is unknown either way.
        return build(
            PriorBasis::TimeOrigin,
            r,
            250.0,
            0.15,
            Some(origin),
            format!(
                "page clock origin = meta timeOrigin = {origin:.0}; R = {from} - origin = {r:.0} ms; S = R - mean RTT {mean:.1} ms"
            ),
        );
    }
    if let Some((origin, (r, from))) = origin.and_then(|o| place(o).map(|placed| (o, placed))) {
        return build(
            PriorBasis::LatencyUpload,
            r,
            1500.0,
            0.15,
            Some(origin),
            format!(
                "page clock origin ~ latency upload epoch - last RTT sample t - 1 s = {origin:.0}; R = {from} - origin = {r:.0} ms; S = R - mean RTT {mean:.1} ms"
            ),
        );
    }
    if let (Some(start), Some(sid), Some(first)) = (
        facts.start_time_epoch_ms,
        facts.session_epoch_ms,
        facts.first_camera_t_ms,
    ) {
        let r = start - sid + first;
        return build(
            PriorBasis::SessionId,
            r,
            6000.0,
            0.05,
            None,
            format!(
                "no usable latency bound; R ~ startTime - session id epoch + first camera t = {r:.0} ms (the session began near the first log entry)"
            ),
        );
    }
    let r = facts.first_camera_t_ms.unwrap_or(0.0);
    build(
        PriorBasis::FirstCameraSample,
        r,
        10_000.0,
        0.02,
        None,
        format!("no epoch anchor; R ~ first camera sample t = {r:.0} ms"),
    )
}

/// A piecewise-linear function of page time, flat beyond its ends.
#[derive(Debug, Clone)]
struct Cumulative {
    t: Vec<f64>,
    v: Vec<f64>,
}

impl Cumulative {
    fn at(&self, t: f64) -> f64 {
        let (Some(&t0), Some(&tn)) = (self.t.first(), self.t.last()) else {
            return 0.0;
        };
        if t <= t0 {
            return self.v[0];
        }
        if t >= tn {
            return self.v[self.v.len() - 1];
        }
        let i = self.t.partition_point(|&x| x <= t);
        let (ta, tb, va, vb) = (self.t[i - 1], self.t[i], self.v[i - 1], self.v[i]);
        if tb > ta {
            va + (vb - va) * (t - ta) / (tb - ta)
        } else {
            vb
        }
    }

    /// Total change between `a` and `b`: whether the signal has anything to say there.
    fn variation(&self, a: f64, b: f64) -> f64 {
        let mut total = 0.0;
        let mut last = self.at(a);
        for (&t, _) in self.t.iter().zip(&self.v).filter(|(&t, _)| t > a && t < b) {
            let value = self.at(t);
            total += (value - last).abs();
            last = value;
        }
        total + (self.at(b) - last).abs()
    }
}

/// Camera yaw, unwrapped. Between two samples (0.2-2 s apart) the change is spread over the time
/// a turning key is held (A or D alone, `turning` integrates it), when one is: the car turns
/// while a turning key is held, and the keys time a turn to 0.1 ms. Without a turning key in the
/// interval (a mouse turn, a turn on the spot of another game), linearly.
fn yaw_signal(camera: &[&CameraSample], teleports: &Teleports, turning: &Cumulative) -> Cumulative {
    let mut t = Vec::with_capacity(camera.len());
    let mut v: Vec<f64> = Vec::with_capacity(camera.len());
    for (i, sample) in camera.iter().enumerate() {
        let Some(previous) = i.checked_sub(1).map(|p| camera[p]) else {
            t.push(sample.t);
            v.push(sample.yaw);
            continue;
        };
        let start = v.last().copied().unwrap_or(sample.yaw);
        // A teleport (the spawn from the lobby into the street) is a cut, not a turn.
        let delta = if teleports.between(previous, sample) {
            0.0
        } else {
            shortest_arc(sample.yaw - previous.yaw)
        };
        let (from, to) = (previous.t, sample.t);
        let held = turning.at(to) - turning.at(from);
        if delta != 0.0 && held > 1.0 {
            // The knots of `turning` inside the interval: where a turning key went down or up.
            let first = turning.t.partition_point(|&k| k <= from);
            let last = turning.t.partition_point(|&k| k < to);
            for &knot in &turning.t[first..last] {
                t.push(knot);
                v.push(start + delta * (turning.at(knot) - turning.at(from)) / held);
            }
        }
        t.push(to);
        v.push(start + delta);
    }
    Cumulative { t, v }
}

/// Distance travelled on the ground plane (x, z); a teleport travels nothing.
fn distance_signal(camera: &[&CameraSample], teleports: &Teleports) -> Cumulative {
    let mut v = Vec::with_capacity(camera.len());
    for (i, sample) in camera.iter().enumerate() {
        let step = match i.checked_sub(1).map(|p| camera[p]) {
            Some(previous) if !teleports.between(previous, sample) => {
                ground_distance(previous, sample)
            }
            _ => 0.0,
        };
        v.push(v.last().copied().unwrap_or(0.0) + step);
    }
    Cumulative {
        t: camera.iter().map(|s| s.t).collect(),
        v,
    }
}

/// Integral over page time of `held(plus) - held(minus)`, keys taking effect `lead_ms` early
/// (see [`key_lead_ms`]).
fn key_signal(inputs: &[InputEvent], plus: &str, minus: &str, lead_ms: f64) -> Cumulative {
    key_rate_signal(inputs, plus, minus, lead_ms, |p, m| {
        f64::from(u8::from(p)) - f64::from(u8::from(m))
    })
}

/// Integral over page time of the time one of `plus` and `minus`, not both, is held.
fn either_key_signal(inputs: &[InputEvent], plus: &str, minus: &str, lead_ms: f64) -> Cumulative {
    key_rate_signal(inputs, plus, minus, lead_ms, |p, m| {
        f64::from(u8::from(p != m))
    })
}

/// How much earlier than a key event its effect on the page state should be placed. The page
/// moves the car once per animation frame, with the keys held then: a key pressed at `t` first
/// counts at the next frame, and then for a whole frame's step, so the state follows a continuous
/// model whose keys act half a frame before they were pressed.
fn key_lead_ms(camera: &[&CameraSample]) -> f64 {
    AnimationFrames::from_camera(camera).frame_ms() / 2.0
}

/// Integral over page time of `rate(held(plus), held(minus))`, each event moved `lead_ms` earlier.
fn key_rate_signal(
    inputs: &[InputEvent],
    plus: &str,
    minus: &str,
    lead_ms: f64,
    rate_of: impl Fn(bool, bool) -> f64,
) -> Cumulative {
    let mut events: Vec<&InputEvent> = inputs
        .iter()
        .filter(|e| matches!(e.key.as_deref(), Some(k) if k == plus || k == minus))
        .filter(|e| matches!(e.input_kind(), InputKind::KeyDown | InputKind::KeyUp))
        .collect();
    events.sort_by(|a, b| a.t.total_cmp(&b.t));
    let (mut held_plus, mut held_minus) = (false, false);
    let mut t = Vec::new();
    let mut v: Vec<f64> = Vec::new();
    let mut rate = 0.0;
    for event in events {
        let at = event.t - lead_ms;
        let value = match (t.last(), v.last()) {
            (Some(&t0), Some(&v0)) => v0 + rate * (at - t0),
            _ => 0.0,
        };
        t.push(at);
        v.push(value);
        let down = event.input_kind() == InputKind::KeyDown;
        if event.key.as_deref() == Some(plus) {
            held_plus = down;
        } else {
            held_minus = down;
        }
        rate = rate_of(held_plus, held_minus);
    }
    if let (Some(&t0), Some(&v0)) = (t.last(), v.last()) {
        // Keys still held at the end of the log keep counting.
        t.push(t0 + 1.0e7);
        v.push(v0 + rate * 1.0e7);
    }
    Cumulative { t, v }
}

/// A pair of consecutive measured frames and what the video says happened between them.
#[derive(Debug, Clone)]
struct Pair {
    previous: usize,
    frame: usize,
    dt_ms: f64,
    /// Measured rates per ms: [shift_x, shift_y, change]; `None` when unreliable.
    measured: [Option<f64>; 3],
}

/// Half-width of the fine search around the coarse peak, ms.
const FINE_WINDOW_MS: f64 = 40.0;

const MEASURED: [&str; 3] = ["shift_x", "shift_y", "change"];
const PREDICTED: [&str; 4] = ["camera_yaw", "camera_distance", "keys_turn", "keys_forward"];
/// Which measured signal each predicted one is compared with.
const CHANNELS: [(usize, usize); 6] = [(0, 0), (0, 2), (1, 1), (1, 3), (2, 1), (2, 3)];

/// Per-frame video measurements the fit uses (from [`crate::VideoProbe`]).
#[derive(Debug, Clone, Copy)]
pub struct VideoMotion<'a> {
    pub frame_pts_ms: &'a [Option<f64>],
    pub stats: &'a [FrameStats],
}

/// Splits frames into runs at jumps of more than `run_break_ms` between timestamps.
pub fn split_runs(frame_pts_ms: &[Option<f64>], run_break_ms: f64) -> Vec<usize> {
    let mut run = 0;
    let mut last: Option<f64> = None;
    frame_pts_ms
        .iter()
        .map(|pts| {
            if let (Some(pts), Some(previous)) = (pts, last) {
                // A jump either way: a long stall, or the recorder's clock going back.
                if (pts - previous).abs() > run_break_ms {
                    run += 1;
                }
            }
            if pts.is_some() {
                last = *pts;
            }
            run
        })
        .collect()
}

/// Estimates the clock of every run.
pub fn estimate_clock(
    video: VideoMotion<'_>,
    inputs: &[InputEvent],
    camera: &[CameraSample],
    latency: LatencyModel,
    recording_start_t_ms: Option<f64>,
    facts: &TimingFacts,
    config: &ClockConfig,
) -> ClockEstimate {
    let prior = timing_prior(facts, &latency);
    let run_of = split_runs(video.frame_pts_ms, config.run_break_ms);
    let timing = frame_timing(video.frame_pts_ms);
    let camera = sorted_camera(camera);
    let lead_ms = key_lead_ms(&camera);
    let teleports = Teleports::from_camera(&camera);
    let turning = either_key_signal(inputs, DRIVING_KEYS[1], DRIVING_KEYS[3], lead_ms);
    let signals = [
        yaw_signal(&camera, &teleports, &turning),
        distance_signal(&camera, &teleports),
        // A and D, W and S: turning and driving as the keys say.
        key_signal(inputs, DRIVING_KEYS[1], DRIVING_KEYS[3], lead_ms),
        key_signal(inputs, DRIVING_KEYS[0], DRIVING_KEYS[2], lead_ms),
    ];
    // Without R the search covers the prior's uncertainty plus the lag allowance; with R, only the
    // lag window: S = R - lag.
    let free_half_window = prior.uncertainty_ms + config.max_lag_ms;
    let lag_window = [config.min_lag_ms, config.max_lag_ms.max(config.min_lag_ms)];
    let assumed_lag = (latency.mean_ms.max(0.0) + config.default_model_delay_ms)
        .clamp(lag_window[0], lag_window[1]);

    let run_count = run_of.last().map_or(0, |r| r + 1);
    let mut runs: Vec<RunClock> = Vec::with_capacity(run_count);
    for run in 0..run_count {
        let frames: Vec<usize> = (0..run_of.len())
            .filter(|&i| run_of[i] == run && video.frame_pts_ms[i].is_some())
            .collect();
        let (Some(&first_frame), Some(&last_frame)) = (frames.first(), frames.last()) else {
            continue;
        };
        let pairs = run_pairs(&frames, &timing, video, config);
        // Across a stall the recorder's clock can jump by as much as the stall lasted (tp5owb:
        // ~15 s over 41 s), so a later run searches that much further each way.
        let gap_before = runs
            .last()
            .map_or(0.0, |previous: &RunClock| {
                (video.frame_pts_ms[first_frame].unwrap_or(0.0) - previous.last_pts_ms).abs()
            })
            .min(config.max_break_ms);
        // The first run of a session with R is anchored where the recorder started; a later run,
        // after a stall that may have broken the clock, searches around the first run's offset.
        let anchored = recording_start_t_ms.filter(|_| run == 0);
        let (center, half_window) = match (anchored, runs.first()) {
            (Some(r), _) => (
                r - 0.5 * (lag_window[0] + lag_window[1]),
                0.5 * (lag_window[1] - lag_window[0]),
            ),
            (None, Some(first)) if recording_start_t_ms.is_some() => {
                (first.offset_ms, config.max_lag_ms + gap_before)
            }
            _ => (prior.offset_ms, free_half_window + gap_before),
        };
        let motion = fit_motion(
            &pairs,
            video.frame_pts_ms,
            &signals,
            &latency,
            SearchWindow {
                center,
                half_ms: half_window,
            },
            config,
        );
        let fit = motion
            .as_ref()
            .filter(|fit| fit.confidence >= config.min_confidence);
        // After a long stall the recorder's clock may have broken: the first run is anchored
        // best, later ones less.
        let later = if run == 0 { 1.0 } else { 0.6 };
        let (offset_ms, source, confidence, lag) = match (anchored, fit, runs.first()) {
            (Some(r), Some(fit), _) => (
                fit.offset_ms,
                OffsetSource::RecordingStartT,
                fit.confidence,
                Some(LagEstimate {
                    lag_ms: r - fit.offset_ms,
                    source: LagSource::Measured,
                    window_ms: lag_window,
                }),
            ),
            (Some(r), None, _) => (
                r - assumed_lag,
                OffsetSource::RecordingStartT,
                config.assumed_lag_confidence,
                Some(LagEstimate {
                    lag_ms: assumed_lag,
                    source: LagSource::Assumed,
                    window_ms: lag_window,
                }),
            ),
            (None, Some(fit), _) => (
                fit.offset_ms,
                OffsetSource::MotionCorrelation,
                fit.confidence,
                None,
            ),
            // A later run of a session with R and no fit of its own keeps the first run's clock,
            // but a long stall can break the clock (by ~15 s in tp5owb): nothing measured that it
            // did not, so its lag is assumed and its confidence under the bar.
            (None, None, Some(first)) if recording_start_t_ms.is_some() => (
                first.offset_ms,
                first.source,
                (first.confidence * later).min(config.assumed_lag_confidence),
                first.lag.as_ref().map(|lag| LagEstimate {
                    source: LagSource::Assumed,
                    ..lag.clone()
                }),
            ),
            (None, None, _) => (
                prior.offset_ms,
                OffsetSource::MetaTiming,
                prior.confidence * later,
                None,
            ),
        };
        let pts = |i: usize| video.frame_pts_ms[i].unwrap_or(0.0);
        runs.push(RunClock {
            run,
            first_frame,
            last_frame,
            first_pts_ms: pts(first_frame),
            last_pts_ms: pts(last_frame),
            offset_ms,
            source,
            confidence,
            motion,
            lag,
        });
    }
    ClockEstimate {
        latency,
        recording_start_t_ms,
        prior,
        runs,
        run_of,
    }
}

fn run_pairs(
    frames: &[usize],
    timing: &[FrameTiming],
    video: VideoMotion<'_>,
    config: &ClockConfig,
) -> Vec<Pair> {
    let mut pairs = Vec::new();
    for window in frames.windows(2) {
        let (previous, frame) = (window[0], window[1]);
        // Only neighbours in decode order, both with their own timestamps.
        if frame != previous + 1
            || timing[previous] != FrameTiming::Measured
            || timing[frame] != FrameTiming::Measured
        {
            continue;
        }
        let (Some(a), Some(b)) = (video.frame_pts_ms[previous], video.frame_pts_ms[frame]) else {
            continue;
        };
        let dt_ms = b - a;
        if dt_ms <= 0.0 {
            continue;
        }
        // Only pairs of frames that both show a picture: a black, flat or corrupted frame moves
        // (or stands) for reasons the logs know nothing of.
        if !shows_picture(video.stats.get(previous), config)
            || !shows_picture(video.stats.get(frame), config)
        {
            continue;
        }
        let stats = video.stats.get(frame);
        let shift = stats.and_then(|s| s.shift).filter(|s| s.peak >= 0.05);
        let change = stats.and_then(|s| s.change).filter(|c| c.is_finite());
        pairs.push(Pair {
            previous,
            frame,
            dt_ms,
            measured: [
                shift.map(|s| s.dx_px / dt_ms),
                shift.map(|s| s.dy_px / dt_ms),
                change.map(|c| f64::from(c) / dt_ms),
            ],
        });
    }
    pairs
}

/// Whether a frame shows a picture the motion fit can use: some contrast, not dark, not blocky,
/// and no abrupt change of its whole histogram (a cut, a corrupted frame).
fn shows_picture(stats: Option<&FrameStats>, config: &ClockConfig) -> bool {
    stats.is_some_and(|s| {
        f64::from(s.luma_std) >= config.picture_min_contrast
            && f64::from(s.mean_luma) >= config.picture_min_luma
            && f64::from(s.blockiness) < config.picture_max_blockiness
            && s.histogram_jump
                .is_none_or(|jump| f64::from(jump) < config.picture_max_histogram_jump)
    })
}

/// Where a motion fit looks for the offset `S`: `center ± half_ms`.
#[derive(Debug, Clone, Copy)]
struct SearchWindow {
    center: f64,
    half_ms: f64,
}

/// Pearson correlation from running sums.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    n: f64,
    x: f64,
    y: f64,
    xx: f64,
    yy: f64,
    xy: f64,
}

impl Sums {
    fn add(&mut self, x: f64, y: f64) {
        self.n += 1.0;
        self.x += x;
        self.y += y;
        self.xx += x * x;
        self.yy += y * y;
        self.xy += x * y;
    }

    fn r(&self) -> f64 {
        if self.n < 3.0 {
            return 0.0;
        }
        let cov = self.xy - self.x * self.y / self.n;
        let vx = self.xx - self.x * self.x / self.n;
        let vy = self.yy - self.y * self.y / self.n;
        if vx <= 1e-18 || vy <= 1e-18 {
            return 0.0;
        }
        (cov / (vx * vy).sqrt()).clamp(-1.0, 1.0)
    }
}

/// Scores one candidate offset: mean squared correlation over the active channels.
fn score_at(
    offset: f64,
    pairs: &[Pair],
    pts: &[Option<f64>],
    signals: &[Cumulative; 4],
    active: &[bool; 6],
    latency: &LatencyModel,
) -> (f64, [f64; 6]) {
    let mut sums = [Sums::default(); 6];
    let page = |frame: usize| page_time_at(pts[frame].unwrap_or(0.0), offset, latency);
    for pair in pairs {
        let (t0, t1) = (page(pair.previous), page(pair.frame));
        let predicted: [f64; 4] =
            std::array::from_fn(|s| (signals[s].at(t1) - signals[s].at(t0)) / pair.dt_ms);
        for (c, &(m, p)) in CHANNELS.iter().enumerate() {
            if let (true, Some(measured)) = (active[c], pair.measured[m]) {
                sums[c].add(measured, predicted[p]);
            }
        }
    }
    let rs: [f64; 6] = std::array::from_fn(|c| if active[c] { sums[c].r() } else { 0.0 });
    let n_active = active.iter().filter(|&&a| a).count().max(1) as f64;
    (rs.iter().map(|r| r * r).sum::<f64>() / n_active, rs)
}

fn fit_motion(
    pairs: &[Pair],
    pts: &[Option<f64>],
    signals: &[Cumulative; 4],
    latency: &LatencyModel,
    window: SearchWindow,
    config: &ClockConfig,
) -> Option<MotionFit> {
    let SearchWindow {
        center,
        half_ms: half_window,
    } = window;
    if pairs.len() < config.min_pairs {
        return None;
    }
    let first = pts[pairs.first()?.previous]?;
    let last = pts[pairs.last()?.frame]?;
    let (lo, hi) = (first + center - half_window, last + center + half_window);
    // A channel speaks only where its predicted signal changes, and its measurement varies.
    let measured_varies: [bool; 3] = std::array::from_fn(|m| {
        let mut sums = Sums::default();
        for value in pairs.iter().filter_map(|p| p.measured[m]) {
            sums.add(value, value);
        }
        sums.n >= 3.0 && (sums.xx - sums.x * sums.x / sums.n) > 1e-18
    });
    let thresholds = [0.01, 0.5, 100.0, 100.0];
    let active: [bool; 6] = std::array::from_fn(|c| {
        let (m, p) = CHANNELS[c];
        measured_varies[m] && signals[p].variation(lo, hi) > thresholds[p]
    });
    if !active.iter().any(|&a| a) {
        return None;
    }

    let step = config
        .coarse_step_ms
        .max(2.0 * half_window / config.max_candidates.max(2) as f64);
    let start = center - half_window;
    let count = (2.0 * half_window / step).floor() as usize + 1;
    let scores: Vec<f32> = (0..count)
        .map(|i| {
            score_at(
                start + i as f64 * step,
                pairs,
                pts,
                signals,
                &active,
                latency,
            )
            .0 as f32
        })
        .collect();
    let (best_index, _) = scores
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    let coarse = start + best_index as f64 * step;

    // Sub-frame refinement: a fine grid around the coarse peak, then a parabola through the top.
    // The coarse peak needs every channel to be found; its exact place is set by the turning
    // channels when there are any: a turn starts and stops with a key, to the tick, while forward
    // motion ramps up and down over hundreds of ms and blurs the timing.
    let turning_only: [bool; 6] = std::array::from_fn(|c| active[c] && CHANNELS[c].0 == 0);
    let timing = if turning_only.iter().any(|&a| a) {
        turning_only
    } else {
        active
    };
    let fine: Vec<(f64, f64)> = {
        let n = (FINE_WINDOW_MS.max(2.0 * step) / config.fine_step_ms).round() as i64;
        (-n..=n)
            .map(|k| {
                let offset = coarse + k as f64 * config.fine_step_ms;
                (
                    offset,
                    score_at(offset, pairs, pts, signals, &timing, latency).0,
                )
            })
            .collect()
    };
    let top = fine
        .iter()
        .enumerate()
        .max_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
        .map_or(0, |(i, _)| i);
    let offset_ms = if top > 0 && top + 1 < fine.len() {
        let (l, m, r) = (fine[top - 1].1, fine[top].1, fine[top + 1].1);
        let denominator = l - 2.0 * m + r;
        let vertex = if denominator.abs() > 1e-12 {
            (0.5 * (l - r) / denominator).clamp(-0.5, 0.5)
        } else {
            0.0
        };
        fine[top].0 + vertex * config.fine_step_ms
    } else {
        fine.get(top).map_or(coarse, |f| f.0)
    }
    // The fine search may not leave the window (R's lag window among others).
    .clamp(center - half_window, center + half_window);
    let (score, rs) = score_at(offset_ms, pairs, pts, signals, &active, latency);
    let mut steps: Vec<f64> = pairs.iter().map(|p| p.dt_ms).collect();
    let median_step = median(&mut steps).unwrap_or(0.0);
    let exclusion_ms = (3.0 * median_step).max(300.0);
    let second_score = scores
        .iter()
        .enumerate()
        .filter(|(i, _)| (start + *i as f64 * step - offset_ms).abs() > exclusion_ms)
        .map(|(_, s)| f64::from(*s))
        .fold(0.0, f64::max);

    // Pairs in which the view moves, as the camera log says (by more than 5% of its largest
    // move); the keys only when the camera log has nothing to say: a brake held at a standstill
    // is input, not motion.
    let page = |frame: usize| page_time_at(pts[frame].unwrap_or(0.0), offset_ms, latency);
    // Rates of each predicted signal; W - S counts only forward (a held brake does not move the
    // view of a stopped car).
    let moves: Vec<[f64; 4]> = pairs
        .iter()
        .map(|pair| {
            let (t0, t1) = (page(pair.previous), page(pair.frame));
            std::array::from_fn(|s| {
                let rate = (signals[s].at(t1) - signals[s].at(t0)) / pair.dt_ms;
                if s == 3 {
                    rate.max(0.0)
                } else {
                    rate.abs()
                }
            })
        })
        .collect();
    let largest: [f64; 4] = std::array::from_fn(|s| moves.iter().map(|m| m[s]).fold(0.0, f64::max));
    let used: [bool; 4] = std::array::from_fn(|s| {
        CHANNELS
            .iter()
            .zip(&active)
            .any(|(&(_, p), &a)| a && p == s)
    });
    let camera_used = used[0] || used[1];
    let evidence: [bool; 4] = std::array::from_fn(|s| used[s] && (s < 2 || !camera_used));
    let moving: Vec<&Pair> = pairs
        .iter()
        .zip(&moves)
        .filter(|(_, m)| {
            (0..4).any(|s| evidence[s] && largest[s] > 0.0 && m[s] > 0.05 * largest[s])
        })
        .map(|(pair, _)| pair)
        .collect();
    let moving_pairs = moving.len();
    // A pair across a stall spans seconds of video but shows one step of motion.
    let median_step_ms = {
        let mut steps: Vec<f64> = pairs.iter().map(|p| p.dt_ms).collect();
        median(&mut steps).unwrap_or(0.0)
    };
    let moving_ms: f64 = moving
        .iter()
        .map(|pair| pair.dt_ms.min(2.0 * median_step_ms))
        .sum();

    // The curve kept for reports: the best score in each of at most `curve_points` buckets.
    let decimation = scores.len().div_ceil(config.curve_points.max(1)).max(1);
    let curve: Vec<f32> = scores
        .chunks(decimation)
        .map(|chunk| chunk.iter().copied().fold(0.0, f32::max))
        .collect();
    // A rival peak as high as this one makes it a coin toss. Inside R's window only the rivals
    // there count: that is what anchoring the search buys, and all it buys (a rival the window
    // holds is as real as without R).
    let distinct = if score > 0.0 {
        1.0 - (second_score / score).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let support = (moving_ms / config.full_support_ms.max(1.0)).min(1.0);
    let confidence = (score.sqrt() * distinct * support).clamp(0.0, 1.0);
    let channels = CHANNELS
        .iter()
        .zip(active)
        .zip(rs)
        .filter(|((_, active), _)| *active)
        .map(|((&(m, p), _), r)| ChannelFit {
            channel: format!("{}~{}", MEASURED[m], PREDICTED[p]),
            r,
        })
        .collect();
    Some(MotionFit {
        offset_ms,
        score,
        second_score,
        exclusion_ms,
        pairs: pairs.len(),
        moving_pairs,
        moving_ms,
        confidence,
        channels,
        search_start_ms: start,
        search_step_ms: step * decimation as f64,
        scores: curve,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::LatencySource;

    #[test]
    fn key_signal_integrates_held_time() {
        let key = |t: f64, kind: &str, k: &str| InputEvent {
            t,
            kind: kind.to_owned(),
            key: Some(k.to_owned()),
            dx: None,
            dy: None,
            extra: Default::default(),
        };
        let inputs = [
            key(100.0, "keydown", "a"),
            key(300.0, "keydown", "d"),
            key(400.0, "keyup", "a"),
            key(600.0, "keyup", "d"),
            key(700.0, "keydown", "a"),
        ];
        let signal = key_signal(&inputs, "a", "d", 0.0);
        assert_eq!(signal.at(0.0), 0.0);
        assert_eq!(signal.at(200.0), 100.0);
        assert_eq!(signal.at(350.0), 200.0); // both held: no turn
        assert_eq!(signal.at(500.0), 100.0); // d alone turns back
        assert_eq!(signal.at(650.0), 0.0);
        assert_eq!(signal.at(800.0), 100.0); // still held at the end of the log
    }

    #[test]
    fn runs_split_at_long_gaps_and_clock_resets() {
        let pts = [
            Some(0.0),
            Some(100.0),
            None,
            Some(6000.0),
            Some(6100.0),
            Some(20000.0),
        ];
        assert_eq!(split_runs(&pts, 5000.0), vec![0, 0, 0, 1, 1, 2]);
        let reset = [Some(0.0), Some(60_000.0), Some(0.0), Some(100.0)];
        assert_eq!(split_runs(&reset, 5000.0), vec![0, 1, 2, 2]);
    }

    #[test]
    fn a_huge_timestamp_jump_keeps_the_search_bounded() {
        // A hostile video: 60 frames, then a 27.8 h jump, then 60 more, all moving.
        let pts: Vec<Option<f64>> = (0..120)
            .map(|i| Some(f64::from(i) * 100.0 + if i >= 60 { 1.0e8 } else { 0.0 }))
            .collect();
        let stats: Vec<crate::video::FrameStats> = (0..120)
            .map(|i| crate::video::FrameStats {
                mean_luma: 100.0,
                luma_std: 30.0,
                sharpness: 500.0,
                histogram: [0.0; crate::image_stats::HISTOGRAM_BINS],
                histogram_jump: Some(0.01),
                blockiness: 1.0,
                shift: Some(crate::motion::Shift {
                    dx_px: f64::from(i % 7),
                    dy_px: 0.0,
                    peak: 0.9,
                }),
                change: Some((i % 5) as f32),
                fingerprint: None,
            })
            .collect();
        let camera: Vec<CameraSample> = (0..200)
            .map(|i| CameraSample {
                t: f64::from(i) * 100.0,
                pos: [f64::from(i), 0.0, 0.0],
                yaw: f64::from(i % 9) * 0.1,
                speed: 1.0,
                kind: None,
                throttle: None,
                brake: None,
                steer: None,
                command: None,
                extra: Default::default(),
            })
            .collect();
        let latency = LatencyModel::constant(crate::latency::LatencySource::AvgRtt, 0.0);
        let config = ClockConfig::default();
        let clock = estimate_clock(
            VideoMotion {
                frame_pts_ms: &pts,
                stats: &stats,
            },
            &[],
            &camera,
            latency,
            None,
            &TimingFacts::default(),
            &config,
        );
        assert_eq!(clock.runs.len(), 2);
        // The first run is fitted; the second, a day away from any camera sample, has nothing to
        // fit. Neither search grew with the jump, and the kept curve is bounded.
        assert!(clock.runs[0].motion.is_some());
        for fit in clock.runs.iter().filter_map(|run| run.motion.as_ref()) {
            assert!(
                fit.scores.len() <= config.curve_points,
                "{}",
                fit.scores.len()
            );
            assert!(fit.search_step_ms * fit.scores.len() as f64 <= 2.0 * 73_001.0);
        }
    }

    #[test]
    fn page_time_and_video_time_are_inverses() {
        let latency = LatencyModel::from_log(&crate::model::LatencyLog {
            initial_latency: None,
            avg_rtt: None,
            rtt_samples: [(0.0, 300.0), (10_000.0, 420.0), (20_000.0, 330.0)]
                .iter()
                .map(|&(t, rtt)| crate::model::RttSample {
                    t,
                    rtt,
                    extra: Default::default(),
                })
                .collect(),
            extra: Default::default(),
        });
        let clock = ClockEstimate {
            prior: timing_prior(&TimingFacts::default(), &latency),
            latency,
            recording_start_t_ms: None,
            runs: vec![],
            run_of: vec![0; 3],
        };
        for pts in [0.0, 2500.0, 7000.0] {
            let t = clock.page_time(0, pts);
            assert!((clock.video_time(0, t) - pts).abs() < 0.01, "{pts} -> {t}");
        }
    }

    #[test]
    fn prior_from_time_origin_comes_first() {
        let latency = LatencyModel::constant(LatencySource::AvgRtt, 350.0);
        let facts = TimingFacts {
            start_time_epoch_ms: Some(1_000_030_000.0),
            time_origin_epoch_ms: Some(1_000_000_250.0),
            session_epoch_ms: Some(1_000_010_000.0),
            latency_upload_epoch_ms: Some(1_000_100_000.0),
            last_rtt_t_ms: Some(99_000.0),
            rtt_median_step_ms: Some(2000.0),
            ..TimingFacts::default()
        };
        let prior = timing_prior(&facts, &latency);
        assert_eq!(prior.basis, PriorBasis::TimeOrigin);
        assert_eq!(prior.recording_start_ms, 29_750.0);
        assert_eq!(prior.page_epoch_origin_ms, Some(1_000_000_250.0));
        assert!(prior.uncertainty_ms < 1500.0);
        // Without startTime or endTime nothing is placed: the next basis is used.
        let unplaced = TimingFacts {
            start_time_epoch_ms: None,
            ..facts
        };
        assert_ne!(
            timing_prior(&unplaced, &latency).basis,
            PriorBasis::TimeOrigin
        );
    }

    #[test]
    fn prior_from_latency_upload() {
        let latency = LatencyModel::constant(LatencySource::AvgRtt, 350.0);
        let facts = TimingFacts {
            start_time_epoch_ms: Some(1_000_030_000.0),
            session_epoch_ms: Some(1_000_010_000.0),
            latency_upload_epoch_ms: Some(1_000_100_000.0),
            last_rtt_t_ms: Some(99_000.0),
            rtt_median_step_ms: Some(2000.0),
            first_camera_t_ms: Some(12_000.0),
            ..TimingFacts::default()
        };
        let prior = timing_prior(&facts, &latency);
        assert_eq!(prior.basis, PriorBasis::LatencyUpload);
        // origin = 1_000_100_000 - 99_000 - 1000 = 1_000_000_000; R = 30_000.
        assert_eq!(prior.recording_start_ms, 30_000.0);
        assert_eq!(prior.offset_ms, 29_650.0);

        // Sampling that stopped early puts the origin after the session began: not usable.
        let stopped = TimingFacts {
            last_rtt_t_ms: Some(50_000.0),
            ..facts.clone()
        };
        let prior = timing_prior(&stopped, &latency);
        assert_eq!(prior.basis, PriorBasis::SessionId);
        // R = startTime - session epoch + first camera t = 20_000 + 12_000.
        assert_eq!(prior.recording_start_ms, 32_000.0);
    }
}
