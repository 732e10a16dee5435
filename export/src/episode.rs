//! One published segment as one training episode: per frame its time, action, state and quality
//! mask. Pure: the segment's documents in, rows out (no pixels, no files).
//!
//! Times are never invented. A frame's `timestamp` is its own presentation time relative to the
//! episode's first frame. A frame whose time is unknown (one of a burst sharing a timestamp, or
//! one without any) keeps the last time recorded for it (the burst's shared one), its mask has
//! the `bursts` bit, and its action is NaN (the inputs at an unknown time are unknown).

use sd_core::{CheckName, CheckResult, FrameTiming, ManifestObject, SegmentKey};

use crate::source::PublishedSegment;

/// The action vector's components, in order.
pub const ACTION_NAMES: [&str; 9] = [
    "key_w", "key_a", "key_s", "key_d", "mouse_dx", "mouse_dy", "throttle", "brake", "steer",
];
/// The state vector's components, in order: the camera's position, heading (radians) and speed.
pub const STATE_NAMES: [&str; 5] = ["x", "y", "z", "yaw", "speed"];

/// The mask bit set when the frame's pose was taken from across a camera-log gap.
pub const POSE_FROM_GAP_BIT: u32 = CheckName::ALL.len() as u32;

/// The mask's bits: bit `i` is `CheckName::ALL[i]` (set when that check flags the frame; checks
/// that judge a segment as a whole never set theirs), then `pose_from_gap`.
pub fn mask_bits() -> Vec<(u32, &'static str)> {
    let mut bits: Vec<(u32, &'static str)> = CheckName::ALL
        .iter()
        .enumerate()
        .map(|(i, check)| (i as u32, check.as_str()))
        .collect();
    bits.push((POSE_FROM_GAP_BIT, "pose_from_gap"));
    bits
}

/// The names of the bits set in `mask`.
pub fn mask_names(mask: u32) -> Vec<&'static str> {
    mask_bits()
        .into_iter()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, name)| name)
        .collect()
}

fn bit_of(check: CheckName) -> u32 {
    CheckName::ALL
        .iter()
        .position(|c| *c == check)
        .map_or(0, |i| i as u32)
}

/// One frame of an episode.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameRow {
    /// The frame's index in the session's decode order (its JPEG's name).
    pub frame: usize,
    /// The frame's presentation time in the session's video (ms), as published.
    pub pts_ms: Option<f64>,
    /// The page time of the input the frame shows (ms), when its time is measured.
    pub page_t_ms: Option<f64>,
    /// Seconds since the episode's first frame: the frame's own time, or for a frame whose time
    /// is unknown the last one recorded (see the module's note).
    pub timestamp_s: f64,
    /// Its time is its own (`timing` = `measured`).
    pub time_known: bool,
    pub action: [f32; 9],
    pub state: [f32; 5],
    pub mask: u32,
}

/// One episode: a published segment's frames and what its checks said.
#[derive(Debug, Clone)]
pub struct Episode {
    pub key: SegmentKey,
    /// The session's prompt, or a stand-in when it had none.
    pub task: String,
    pub rows: Vec<FrameRow>,
    pub width: u32,
    pub height: u32,
    /// The frames' JPEG objects, one per row.
    pub frame_objects: Vec<ManifestObject>,
    pub clean_passed: bool,
    /// The reviewer override that put it in the clean layout, as `who: why`.
    pub override_note: Option<String>,
    /// CLEAN's failing checks (non-empty only when a reviewer passed it).
    pub failed: Vec<String>,
    pub checks: Vec<CheckResult>,
    /// Median time per frame between frames whose times are known (s): the episode's nominal
    /// frame interval.
    pub median_step_s: f64,
}

/// The task of a session without a prompt.
pub const NO_PROMPT_TASK: &str = "drive";

impl Episode {
    /// Builds the episode's rows. `Err` when its frame times go backwards (a video cannot hold
    /// them in that order, and reordering would pair a picture with another frame's time).
    pub fn from_segment(segment: &PublishedSegment, prompt: Option<&str>) -> Result<Self, String> {
        let aligned = &segment.aligned;
        let quality = &segment.quality;
        let mut flags = std::collections::HashMap::<usize, u32>::new();
        for check in &quality.checks {
            let bit = 1u32 << bit_of(check.check);
            for &frame in &check.frames {
                *flags.entry(frame).or_default() |= bit;
            }
        }
        let base = aligned
            .frames
            .iter()
            .find_map(|row| row.action.pts_ms)
            .unwrap_or(0.0);
        // A time no session has (not finite, or beyond a day) is damage, not a frame's time.
        const MAX_MS: f64 = 86_400_000.0;
        for row in &aligned.frames {
            for (what, value) in [
                ("pts_ms", row.action.pts_ms),
                ("page_t_ms", row.action.page_t_ms),
            ] {
                if let Some(v) = value.filter(|v| !v.is_finite() || v.abs() > MAX_MS) {
                    return Err(format!(
                        "{}: frame {} has {what} {v}, not a time a session has",
                        segment.key, row.action.frame
                    ));
                }
            }
        }
        let mut rows = Vec::with_capacity(aligned.frames.len());
        let mut last_s = 0.0f64;
        for row in &aligned.frames {
            let a = &row.action;
            let time_known = a.timing == FrameTiming::Measured && a.pts_ms.is_some();
            let timestamp_s = match a.pts_ms {
                Some(pts) => (pts - base) / 1000.0,
                None => last_s,
            };
            if timestamp_s < last_s {
                return Err(format!(
                    "{}: frame {} is at {:.3} s, before the frame ahead of it ({:.3} s)",
                    segment.key, a.frame, timestamp_s, last_s
                ));
            }
            last_s = timestamp_s;
            let mut mask = flags.get(&a.frame).copied().unwrap_or(0);
            if !time_known {
                mask |= 1 << bit_of(CheckName::Bursts);
            }
            let nan = f32::NAN;
            let key = |held: Option<bool>| held.map_or(nan, |on| if on { 1.0 } else { 0.0 });
            let keys = a.driving_keys.filter(|_| time_known);
            let control = |value: Option<f64>| value.map_or(nan, |v| v as f32);
            let controls = a.controls.as_ref().filter(|_| time_known);
            let action = [
                key(keys.map(|k| k.w)),
                key(keys.map(|k| k.a)),
                key(keys.map(|k| k.s)),
                key(keys.map(|k| k.d)),
                control(a.mouse_dx.filter(|_| time_known)),
                control(a.mouse_dy.filter(|_| time_known)),
                control(controls.and_then(|c| c.throttle)),
                control(controls.and_then(|c| c.brake)),
                control(controls.and_then(|c| c.steer)),
            ];
            let state = match &a.pose {
                Some(pose) => {
                    if pose.from_gap {
                        mask |= 1 << POSE_FROM_GAP_BIT;
                    }
                    [
                        pose.pos[0] as f32,
                        pose.pos[1] as f32,
                        pose.pos[2] as f32,
                        pose.yaw as f32,
                        pose.speed as f32,
                    ]
                }
                None => [nan; 5],
            };
            rows.push(FrameRow {
                frame: a.frame,
                pts_ms: a.pts_ms,
                page_t_ms: a.page_t_ms,
                timestamp_s,
                time_known,
                action,
                state,
                mask,
            });
        }
        // Between consecutive frames whose times are known, the time per frame (frames with an
        // unknown time in between share the step).
        let known: Vec<(usize, f64)> = rows
            .iter()
            .enumerate()
            .filter(|(_, row)| row.time_known)
            .map(|(i, row)| (i, row.timestamp_s))
            .collect();
        let mut steps: Vec<f64> = known
            .windows(2)
            .map(|pair| (pair[1].1 - pair[0].1) / (pair[1].0 - pair[0].0) as f64)
            .filter(|step| *step > 0.0)
            .collect();
        steps.sort_by(f64::total_cmp);
        let median_step_s = steps.get(steps.len() / 2).copied().unwrap_or(1.0 / 30.0);
        let placement = &quality.placement;
        Ok(Self {
            key: segment.key.clone(),
            task: prompt.unwrap_or(NO_PROMPT_TASK).to_owned(),
            rows,
            width: aligned.video.width,
            height: aligned.video.height,
            frame_objects: segment.frame_objects.clone(),
            clean_passed: placement.clean_passed,
            override_note: placement
                .override_note
                .as_ref()
                .map(|note| format!("{}: {}", note.by, note.reason)),
            failed: quality
                .failed
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            checks: quality.checks.clone(),
            median_step_s,
        })
    }

    /// The episode's length in seconds as a video holds it: its last frame's time plus one
    /// nominal step.
    pub fn duration_s(&self) -> f64 {
        self.rows.last().map_or(0.0, |row| row.timestamp_s) + self.median_step_s
    }

    /// SHA-256 of everything an export writes for the episode but its pictures: rows, task,
    /// checks, placement. Equal digests: nothing to rewrite.
    pub fn rows_digest(&self) -> String {
        let text = format!(
            "{:?}|{}|{:?}|{:?}|{}|{:?}|{}x{}",
            self.rows,
            self.task,
            self.override_note,
            self.failed,
            self.clean_passed,
            self.checks,
            self.width,
            self.height
        );
        crate::sha256_hex(text.as_bytes())
    }

    /// Rows whose mask is clear.
    pub fn usable_frames(&self) -> usize {
        self.rows.iter().filter(|row| row.mask == 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(frame: usize, pts: Option<f64>, timing: &str, from_gap: bool) -> serde_json::Value {
        json!({
            "file": format!("frames/{frame:06}.jpg"), "frame": frame, "pts_ms": pts,
            "timing": timing, "run": 0, "page_t_ms": pts.map(|p| p + 5000.0),
            "keys_held": ["w"], "driving_keys": {"w": true, "a": false, "s": false, "d": true},
            "mouse_dx": 2.5, "mouse_dy": -1.0, "events": [],
            "pose": {"pos": [1.0, 2.0, 3.0], "yaw": 0.5, "speed": 7.0, "sample_gap_ms": 300.0,
                     "from_gap": from_gap},
            "controls": {"throttle": 1.0, "brake": 0.0, "steer": null, "command": null},
        })
    }

    fn segment(rows: Vec<serde_json::Value>, blurred: Vec<usize>) -> PublishedSegment {
        let n = rows.len();
        let aligned = json!({
            "schema_version": 4, "session_id": "s", "wallet": "w", "segment": 1,
            "video": {"codec": "vp8", "width": 320, "height": 176, "frames": n},
            "latency": {"source": "rtt_samples", "mean_ms": 300.0}, "runs": [], "frames": rows,
        });
        let quality = json!({
            "schema_version": 4, "session_id": "s", "wallet": "w", "segment": 1,
            "first_frame": 10, "last_frame": 10 + n - 1, "frames": n,
            "start_pts_ms": 1000.0, "end_pts_ms": 1400.0, "start_page_ms": 0.0, "end_page_ms": 1.0,
            "placement": {"segment": 1, "clean_passed": true, "verdict": "pass", "override": null,
                          "location": "clean"},
            "failed": [],
            "checks": [{"check": "blur", "metric": "m", "value": 0.1, "threshold": 0.2,
                        "bound": "at_most", "passed": true, "reason": "r", "frames": blurred}],
            "frame_thresholds": {"min_sharpness": 75.0, "black_max_luma": 40.0,
                                 "washed_min_luma": 225.0, "still_max_change": 0.3},
            "run": {"run_id": "r", "processed_at": "t"},
        });
        PublishedSegment {
            key: SegmentKey {
                wallet: "w".into(),
                session_id: "s".into(),
                segment: 1,
            },
            aligned: serde_json::from_value(aligned).expect("aligned.json"),
            quality: serde_json::from_value(quality).expect("quality.json"),
            frame_objects: Vec::new(),
        }
    }

    #[test]
    fn times_are_the_recorded_ones_and_unknown_times_are_masked_not_invented() {
        let seg = segment(
            vec![
                row(10, Some(1000.0), "measured", false),
                row(11, Some(1100.0), "burst", false),
                row(12, Some(1100.0), "burst", false),
                row(13, None, "missing", false),
                row(14, Some(1400.0), "measured", true),
            ],
            vec![10],
        );
        let episode = Episode::from_segment(&seg, Some("a prompt")).expect("episode");
        let times: Vec<f64> = episode.rows.iter().map(|r| r.timestamp_s).collect();
        assert_eq!(times, [0.0, 0.1, 0.1, 0.1, 0.4]);
        let bursts = 1 << bit_of(CheckName::Bursts);
        let masks: Vec<u32> = episode.rows.iter().map(|r| r.mask).collect();
        assert_eq!(
            masks,
            [
                1 << bit_of(CheckName::Blur),
                bursts,
                bursts,
                bursts,
                1 << POSE_FROM_GAP_BIT
            ]
        );
        assert_eq!(mask_names(masks[0]), ["blur"]);
        // Known time: the inputs; unknown: NaN, never the neighbour's.
        assert_eq!(
            &episode.rows[0].action[..6],
            &[1.0, 0.0, 0.0, 1.0, 2.5, -1.0]
        );
        assert_eq!(&episode.rows[0].action[6..8], &[1.0, 0.0]);
        assert!(episode.rows[0].action[8].is_nan(), "steer was null");
        assert!(episode.rows[1..4]
            .iter()
            .all(|r| r.action.iter().all(|v| v.is_nan())));
        assert_eq!(episode.rows[4].state, [1.0, 2.0, 3.0, 0.5, 7.0]);
        assert_eq!(episode.task, "a prompt");
        assert!(
            (episode.median_step_s - 0.1).abs() < 1e-9,
            "{}",
            episode.median_step_s
        );
        assert_eq!(episode.usable_frames(), 0);
    }

    #[test]
    fn frames_going_back_in_time_are_refused() {
        let seg = segment(
            vec![
                row(10, Some(1000.0), "measured", false),
                row(11, Some(900.0), "measured", false),
            ],
            vec![],
        );
        let err = Episode::from_segment(&seg, None).expect_err("backwards");
        assert!(err.contains("before the frame ahead of it"), "{err}");
    }

    #[test]
    fn times_no_session_has_are_refused_not_encoded() {
        for bad in [1e300, f64::INFINITY, -2e9] {
            let mut frame = row(11, Some(0.0), "measured", false);
            frame["pts_ms"] = json!(bad);
            if !bad.is_finite() {
                // JSON has no infinity: the parser refuses it before the export sees it.
                continue;
            }
            let seg = segment(vec![row(10, Some(0.0), "measured", false), frame], vec![]);
            let err = Episode::from_segment(&seg, None).expect_err("refused");
            assert!(err.contains("not a time a session has"), "{err}");
        }
    }

    #[test]
    fn the_rows_digest_follows_the_masks() {
        let a = Episode::from_segment(
            &segment(vec![row(10, Some(0.0), "measured", false)], vec![]),
            None,
        )
        .expect("a");
        let b = Episode::from_segment(
            &segment(vec![row(10, Some(0.0), "measured", false)], vec![10]),
            None,
        )
        .expect("b");
        assert_ne!(a.rows_digest(), b.rows_digest());
        assert_eq!(a.rows_digest(), a.clone().rows_digest());
    }
}
