//! ALIGN: a usable bundle in, its clock join and one action row per decoded frame out.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::actions::{
    frame_actions, sorted_camera, ActionConfig, AnimationFrames, FrameAction, FrameTiming,
};
use crate::bundle::Bundle;
use crate::clock::{estimate_clock, ClockConfig, ClockEstimate, TimingFacts, VideoMotion};
use crate::ids::PartKind;
use crate::latency::LatencyModel;
use crate::timeline::{median, TimelineConfig, VideoHealth};

/// Every knob of ALIGN.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlignConfig {
    pub clock: ClockConfig,
    pub actions: ActionConfig,
    pub timeline: TimelineConfig,
}

/// Frame-level counts, for a quick look at what the labels say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct ActionSummary {
    pub frames: usize,
    pub measured_frames: usize,
    pub burst_frames: usize,
    pub frames_without_pts: usize,
    /// Measured frames with any of W/A/S/D held.
    pub frames_with_driving_keys: usize,
    /// Measured frames with each driving key held.
    pub frames_with_w: usize,
    pub frames_with_a: usize,
    pub frames_with_s: usize,
    pub frames_with_d: usize,
    pub frames_with_mouse: usize,
    pub frames_with_pose: usize,
    pub frames_with_pose_from_gap: usize,
    /// Measured frames whose interpolated speed is not zero.
    pub frames_moving: usize,
}

impl ActionSummary {
    pub fn from_rows(rows: &[FrameAction]) -> Self {
        let mut summary = Self {
            frames: rows.len(),
            ..Self::default()
        };
        for row in rows {
            match row.timing {
                FrameTiming::Measured => summary.measured_frames += 1,
                FrameTiming::Burst => summary.burst_frames += 1,
                FrameTiming::Missing => summary.frames_without_pts += 1,
            }
            if let Some(keys) = row.driving_keys {
                summary.frames_with_driving_keys +=
                    usize::from(keys.w || keys.a || keys.s || keys.d);
                summary.frames_with_w += usize::from(keys.w);
                summary.frames_with_a += usize::from(keys.a);
                summary.frames_with_s += usize::from(keys.s);
                summary.frames_with_d += usize::from(keys.d);
            }
            let mouse = row.mouse_dx.unwrap_or(0.0) != 0.0 || row.mouse_dy.unwrap_or(0.0) != 0.0;
            summary.frames_with_mouse += usize::from(mouse);
            if let Some(pose) = &row.pose {
                summary.frames_with_pose += 1;
                summary.frames_with_pose_from_gap += usize::from(pose.from_gap);
                summary.frames_moving += usize::from(pose.speed != 0.0);
            }
        }
        summary
    }
}

/// The result of ALIGN for one session.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Alignment {
    pub clock: ClockEstimate,
    pub summary: ActionSummary,
    pub frames: Vec<FrameAction>,
}

/// Version of the `aligned.json` layout; bumped on any change a consumer could notice.
pub const ALIGNED_SCHEMA_VERSION: u32 = 2;

/// The decoded video an alignment is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlignedVideo {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub frames: usize,
}

/// `aligned.json`: the frame table `scale-diffusion align` writes, one row per decoded frame.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AlignedFile {
    pub schema_version: u32,
    pub session_id: String,
    pub wallet: String,
    pub video: AlignedVideo,
    #[serde(flatten)]
    pub alignment: Alignment,
}

impl AlignedFile {
    pub fn new(bundle: &Bundle, alignment: Alignment) -> Self {
        Self {
            schema_version: ALIGNED_SCHEMA_VERSION,
            session_id: bundle.session_id.to_string(),
            wallet: bundle.wallet.to_string(),
            video: AlignedVideo {
                codec: bundle.video.codec.clone(),
                width: bundle.video.width,
                height: bundle.video.height,
                frames: bundle.video.frame_pts_ms.len(),
            },
            alignment,
        }
    }
}

/// The meta timing a bundle offers for the clock prior.
pub fn timing_facts(bundle: &Bundle, config: &TimelineConfig) -> TimingFacts {
    let mut rtt_times: Vec<f64> = bundle.latency.rtt_samples.iter().map(|s| s.t).collect();
    rtt_times.sort_by(f64::total_cmp);
    let mut steps: Vec<f64> = rtt_times.windows(2).map(|w| w[1] - w[0]).collect();
    let session_epoch_ms = bundle
        .session_id
        .as_str()
        .strip_prefix("session_")
        .and_then(|rest| rest.split('_').next())
        .and_then(|digits| digits.parse::<f64>().ok())
        // Only a believable `Date.now()` (2020-2100) bounds anything.
        .filter(|epoch| (1.577_836_8e12..4.102_444_8e12).contains(epoch));
    TimingFacts {
        start_time_epoch_ms: bundle.meta.start_time,
        time_origin_epoch_ms: bundle.meta.time_origin,
        end_time_epoch_ms: bundle.meta.end_time,
        session_epoch_ms,
        latency_upload_epoch_ms: bundle
            .source
            .parts
            .get(&PartKind::Latency)
            .and_then(|part| part.upload_epoch_ms)
            .map(|epoch| epoch as f64),
        last_rtt_t_ms: rtt_times.last().copied(),
        rtt_median_step_ms: median(&mut steps),
        first_camera_t_ms: bundle.camera.iter().map(|c| c.t).reduce(f64::min),
        video_span_ms: VideoHealth::from_pts(&bundle.video.frame_pts_ms, config).span_ms,
    }
}

/// Joins the clocks and builds the dense per-frame action table.
pub fn align(bundle: &Bundle, config: &AlignConfig) -> Alignment {
    let video = &bundle.video;
    let clock = estimate_clock(
        VideoMotion {
            frame_pts_ms: &video.frame_pts_ms,
            stats: &video.frame_stats,
        },
        &bundle.inputs,
        &bundle.camera,
        LatencyModel::from_log(&bundle.latency),
        bundle.meta.recording_start_t,
        &timing_facts(bundle, &config.timeline),
        &config.clock,
    );
    // A frame shows the state of one of the page's animation frames: its page time is that one.
    let animation = AnimationFrames::from_camera(&sorted_camera(&bundle.camera));
    let frames = frame_actions(
        &video.frame_pts_ms,
        &clock.run_of,
        |frame, pts| animation.snap(clock.page_time(frame, pts)),
        &bundle.inputs,
        &bundle.camera,
        &config.actions,
    );
    Alignment {
        summary: ActionSummary::from_rows(&frames),
        clock,
        frames,
    }
}
