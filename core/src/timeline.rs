//! The video's real timeline: stalls, repeated-timestamp bursts and effective frame rate, computed
//! from decoded presentation times alone (pure: no FFmpeg here).

use schemars::JsonSchema;
use serde::Serialize;

/// The median (upper of the two middle values), or `None` when empty. Sorts `values`.
pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// For each frame, whether it shares its timestamp with the nearest timed frame before or after
/// it (frames without a timestamp are skipped over, and are never in a burst themselves).
pub fn repeated_timestamps(frame_pts_ms: &[Option<f64>]) -> Vec<bool> {
    let timed: Vec<(usize, f64)> = frame_pts_ms
        .iter()
        .enumerate()
        .filter_map(|(i, pts)| pts.map(|pts| (i, pts)))
        .collect();
    let mut repeated = vec![false; frame_pts_ms.len()];
    for pair in timed.windows(2) {
        if pair[0].1 == pair[1].1 {
            repeated[pair[0].0] = true;
            repeated[pair[1].0] = true;
        }
    }
    repeated
}

/// Knobs for reading a frame timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineConfig {
    /// A gap between consecutive timestamps longer than this is a stall.
    pub stall_ms: f64,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        // The real sessions' ordinary frame gaps are under 0.5 s; their stalls are 5-41 s.
        Self { stall_ms: 1000.0 }
    }
}

/// A gap in the video longer than [`TimelineConfig::stall_ms`].
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Stall {
    /// Index of the last frame before the gap.
    pub after_frame: usize,
    pub from_pts_ms: f64,
    pub to_pts_ms: f64,
    pub gap_ms: f64,
}

/// A run of two or more consecutive frames sharing one timestamp: their true times are unknown.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Burst {
    pub first_frame: usize,
    pub frames: usize,
    pub pts_ms: f64,
}

/// Health of a video's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct VideoHealth {
    pub frames: usize,
    pub frames_without_pts: usize,
    /// Different timestamps among the frames (fewer than `frames` when bursts repeat one).
    pub distinct_timestamps: usize,
    pub first_pts_ms: Option<f64>,
    pub last_pts_ms: Option<f64>,
    pub span_ms: f64,
    /// Distinct timestamps per second of video time: `(distinct - 1) / span` (frames repeating a
    /// timestamp add no time information, so they do not count).
    pub effective_fps: Option<f64>,
    /// Median step between distinct, increasing timestamps.
    pub median_frame_interval_ms: Option<f64>,
    pub stalls: Vec<Stall>,
    pub longest_stall_ms: Option<f64>,
    pub bursts: Vec<Burst>,
    /// Frames inside bursts (every frame of a burst, the first included).
    pub burst_frames: usize,
    pub longest_burst_frames: usize,
    /// Times a timestamp went backwards.
    pub backwards_steps: usize,
}

impl VideoHealth {
    /// Reads the timeline from frame timestamps in decode output order.
    pub fn from_pts(frame_pts_ms: &[Option<f64>], config: &TimelineConfig) -> Self {
        let timed: Vec<(usize, f64)> = frame_pts_ms
            .iter()
            .enumerate()
            .filter_map(|(index, pts)| pts.filter(|pts| pts.is_finite()).map(|pts| (index, pts)))
            .collect();
        let first_pts_ms = timed.first().map(|&(_, pts)| pts);
        let last_pts_ms = timed.last().map(|&(_, pts)| pts);
        let span_ms = match (first_pts_ms, last_pts_ms) {
            (Some(first), Some(last)) => (last - first).max(0.0),
            _ => 0.0,
        };

        let mut stalls = Vec::new();
        let mut bursts: Vec<Burst> = Vec::new();
        let mut intervals = Vec::new();
        let mut backwards_steps = 0;
        // The timed frame that ends the latest burst, to tell a continuing burst from a new one
        // (frames without a timestamp in between neither break nor join a burst).
        let mut burst_end: Option<usize> = None;
        for pair in timed.windows(2) {
            let ((prev_index, prev), (index, pts)) = (pair[0], pair[1]);
            let step = pts - prev;
            if step == 0.0 {
                match bursts.last_mut() {
                    Some(burst) if burst_end == Some(prev_index) => burst.frames += 1,
                    _ => bursts.push(Burst {
                        first_frame: prev_index,
                        frames: 2,
                        pts_ms: pts,
                    }),
                }
                burst_end = Some(index);
            } else if step < 0.0 {
                backwards_steps += 1;
            } else {
                intervals.push(step);
                if step > config.stall_ms {
                    stalls.push(Stall {
                        after_frame: prev_index,
                        from_pts_ms: prev,
                        to_pts_ms: pts,
                        gap_ms: step,
                    });
                }
            }
        }
        let mut distinct: Vec<f64> = timed.iter().map(|&(_, pts)| pts).collect();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        let median_frame_interval_ms = median(&mut intervals);

        Self {
            frames: frame_pts_ms.len(),
            frames_without_pts: frame_pts_ms.len() - timed.len(),
            distinct_timestamps: distinct.len(),
            first_pts_ms,
            last_pts_ms,
            span_ms,
            effective_fps: (span_ms > 0.0)
                .then(|| (distinct.len().saturating_sub(1)) as f64 / (span_ms / 1000.0)),
            median_frame_interval_ms,
            longest_stall_ms: stalls.iter().map(|stall| stall.gap_ms).reduce(f64::max),
            stalls,
            burst_frames: bursts.iter().map(|burst| burst.frames).sum(),
            longest_burst_frames: bursts.iter().map(|burst| burst.frames).max().unwrap_or(0),
            bursts,
            backwards_steps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(pts: &[f64]) -> VideoHealth {
        let pts: Vec<Option<f64>> = pts.iter().copied().map(Some).collect();
        VideoHealth::from_pts(&pts, &TimelineConfig::default())
    }

    #[test]
    fn constant_rate() {
        let pts: Vec<f64> = (0..31).map(|i| f64::from(i) * 100.0).collect();
        let h = health(&pts);
        assert_eq!(h.frames, 31);
        assert_eq!(h.span_ms, 3000.0);
        assert_eq!(h.effective_fps, Some(10.0));
        assert_eq!(h.median_frame_interval_ms, Some(100.0));
        assert!(h.stalls.is_empty() && h.bursts.is_empty());
    }

    #[test]
    fn stalls_and_bursts() {
        // Like se4gmo: a frame, a long gap, a burst of 4 frames on one timestamp, then more.
        let h = health(&[0.0, 311.0, 8160.0, 8160.0, 8160.0, 8160.0, 17971.0, 18193.0]);
        assert_eq!(h.stalls.len(), 2);
        assert_eq!(h.stalls[0].after_frame, 1);
        assert_eq!(h.stalls[0].gap_ms, 8160.0 - 311.0);
        assert_eq!(h.longest_stall_ms, Some(17971.0 - 8160.0));
        assert_eq!(
            h.bursts,
            vec![Burst {
                first_frame: 2,
                frames: 4,
                pts_ms: 8160.0
            }]
        );
        assert_eq!(h.burst_frames, 4);
        assert_eq!(h.longest_burst_frames, 4);
        assert_eq!(h.distinct_timestamps, 5);
    }

    #[test]
    fn separate_bursts_on_separate_timestamps() {
        let h = health(&[0.0, 0.0, 10.0, 20.0, 20.0, 20.0]);
        assert_eq!(h.bursts.len(), 2);
        assert_eq!(h.burst_frames, 5);
        assert_eq!(h.longest_burst_frames, 3);
    }

    #[test]
    fn frames_without_timestamps_neither_break_nor_join_a_burst() {
        let pts = [
            Some(0.0),
            Some(10.0),
            Some(10.0),
            None,
            Some(10.0),
            Some(20.0),
        ];
        let h = VideoHealth::from_pts(&pts, &TimelineConfig::default());
        assert_eq!(
            h.bursts,
            vec![Burst {
                first_frame: 1,
                frames: 3,
                pts_ms: 10.0
            }]
        );
        assert_eq!(h.burst_frames, 3);
        assert_eq!(
            repeated_timestamps(&pts),
            vec![false, true, true, false, true, false]
        );
        let split = [Some(0.0), Some(10.0), None, Some(10.0), Some(20.0)];
        assert_eq!(
            repeated_timestamps(&split),
            vec![false, true, false, true, false]
        );
        assert_eq!(
            VideoHealth::from_pts(&split, &TimelineConfig::default()).burst_frames,
            2
        );
    }

    #[test]
    fn missing_and_backwards_timestamps() {
        let pts = [Some(0.0), None, Some(50.0), Some(40.0), Some(60.0)];
        let h = VideoHealth::from_pts(&pts, &TimelineConfig::default());
        assert_eq!(h.frames, 5);
        assert_eq!(h.frames_without_pts, 1);
        assert_eq!(h.backwards_steps, 1);
    }

    #[test]
    fn empty_and_single_frame() {
        let h = health(&[]);
        assert_eq!((h.frames, h.effective_fps), (0, None));
        let h = health(&[5.0]);
        assert_eq!((h.frames, h.span_ms, h.effective_fps), (1, 0.0, None));
    }
}
