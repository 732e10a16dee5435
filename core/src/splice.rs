//! SPLICE: cut the aligned timeline into fixed-length segments, never across a stall or a
//! repeated-timestamp burst, skipping idle spans. Everything left out is recorded with its reason.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::actions::{FrameAction, FrameTiming};

/// Knobs of SPLICE (the `[splice]` table of the quality config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SpliceConfig {
    /// Length of a segment, ms of video time.
    pub segment_ms: f64,
    /// A gap between timestamps longer than this is a stall: no segment crosses it.
    pub stall_ms: f64,
    /// A final piece shorter than this is dropped.
    pub min_tail_ms: f64,
    /// Idle stretches at least this long are skipped.
    pub idle_min_ms: f64,
}

impl Default for SpliceConfig {
    fn default() -> Self {
        Self {
            segment_ms: 5000.0,
            stall_ms: 1000.0,
            min_tail_ms: 2500.0,
            idle_min_ms: 2000.0,
        }
    }
}

/// Why a stretch of video is not in any segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipKind {
    /// No frames for longer than the stall limit.
    Stall,
    /// Frames sharing one timestamp (or without one): their times are unknown.
    Burst,
    /// No driving input, no control change and no camera motion.
    Idle,
    /// The end of a continuous stretch, shorter than the minimum segment.
    ShortTail,
}

/// A stretch of video left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Skipped {
    pub kind: SkipKind,
    /// Frames left out (empty for a stall, which has none).
    pub first_frame: Option<usize>,
    pub last_frame: Option<usize>,
    pub start_pts_ms: f64,
    pub end_pts_ms: f64,
    pub reason: String,
}

/// One segment: a continuous stretch of measured frames.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Segment {
    /// 1-based, in video order (`segment_001`...).
    pub index: usize,
    pub first_frame: usize,
    pub last_frame: usize,
    pub start_pts_ms: f64,
    pub end_pts_ms: f64,
    pub start_page_ms: f64,
    pub end_page_ms: f64,
    /// The clock runs the segment's frames belong to.
    pub runs: Vec<usize>,
    /// The dense action rows of its frames (all measured).
    pub rows: Vec<FrameAction>,
}

impl Segment {
    pub fn duration_ms(&self) -> f64 {
        self.end_pts_ms - self.start_pts_ms
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct Splice {
    pub segments: Vec<Segment>,
    pub skipped: Vec<Skipped>,
}

/// Whether a measured frame shows nothing happening.
fn is_idle(row: &FrameAction) -> bool {
    let keys = row.driving_keys.is_some_and(|k| k.w || k.a || k.s || k.d);
    let mouse = row.mouse_dx.unwrap_or(0.0) != 0.0 || row.mouse_dy.unwrap_or(0.0) != 0.0;
    let controls = row.controls.as_ref().is_some_and(|c| {
        c.throttle.unwrap_or(0.0) != 0.0
            || c.brake.unwrap_or(0.0) != 0.0
            || c.steer.unwrap_or(0.0) != 0.0
            || c.command.is_some_and(|command| command != 4.0)
    });
    let moving = row.pose.as_ref().is_some_and(|p| p.speed != 0.0);
    !(keys || mouse || controls || moving)
}

/// Cuts `rows` (one per decoded frame, from ALIGN) into segments.
pub fn splice(rows: &[FrameAction], config: &SpliceConfig) -> Splice {
    let mut out = Splice::default();
    let pts = |row: &FrameAction| row.pts_ms.unwrap_or(0.0);

    // 1. Continuous stretches of measured frames, broken by bursts, missing PTS and stalls.
    let mut stretches: Vec<Vec<&FrameAction>> = Vec::new();
    let mut current: Vec<&FrameAction> = Vec::new();
    let mut unknown: Vec<&FrameAction> = Vec::new();
    let flush_unknown = |unknown: &mut Vec<&FrameAction>, out: &mut Splice| {
        if let (Some(first), Some(last)) = (unknown.first(), unknown.last()) {
            out.skipped.push(Skipped {
                kind: SkipKind::Burst,
                first_frame: Some(first.frame),
                last_frame: Some(last.frame),
                start_pts_ms: pts(first),
                end_pts_ms: pts(last),
                reason: format!(
                    "{} frame(s) share one timestamp or have none: their times are unknown",
                    unknown.len()
                ),
            });
        }
        unknown.clear();
    };
    for row in rows {
        if row.timing != FrameTiming::Measured {
            if !current.is_empty() {
                stretches.push(std::mem::take(&mut current));
            }
            unknown.push(row);
            continue;
        }
        flush_unknown(&mut unknown, &mut out);
        if let Some(previous) = current.last() {
            let gap = pts(row) - pts(previous);
            if gap > config.stall_ms {
                out.skipped.push(Skipped {
                    kind: SkipKind::Stall,
                    first_frame: None,
                    last_frame: None,
                    start_pts_ms: pts(previous),
                    end_pts_ms: pts(row),
                    reason: format!(
                        "no frame for {:.2} s (stall limit {:.2} s)",
                        gap / 1000.0,
                        config.stall_ms / 1000.0
                    ),
                });
                stretches.push(std::mem::take(&mut current));
            }
        }
        current.push(row);
    }
    flush_unknown(&mut unknown, &mut out);
    if !current.is_empty() {
        stretches.push(current);
    }

    // 2. Within each stretch, cut out long idle spans; 3. cut the rest into segments.
    for stretch in stretches {
        let mut piece: Vec<&FrameAction> = Vec::new();
        let mut idle: Vec<&FrameAction> = Vec::new();
        for row in stretch {
            if is_idle(row) {
                idle.push(row);
                continue;
            }
            if let (Some(first), Some(last)) = (idle.first(), idle.last()) {
                // The idle span lasts until this active frame.
                if pts(row) - pts(first) >= config.idle_min_ms {
                    cut_segments(&piece, config, &mut out);
                    piece.clear();
                    out.skipped.push(Skipped {
                        kind: SkipKind::Idle,
                        first_frame: Some(first.frame),
                        last_frame: Some(last.frame),
                        start_pts_ms: pts(first),
                        end_pts_ms: pts(row),
                        reason: format!(
                            "idle for {:.2} s: no driving input, no control change, no camera motion",
                            (pts(row) - pts(first)) / 1000.0
                        ),
                    });
                } else {
                    piece.extend(idle.iter().copied());
                }
                idle.clear();
            }
            piece.push(row);
        }
        match (idle.first(), idle.last()) {
            (Some(first), Some(last)) if pts(last) - pts(first) >= config.idle_min_ms => {
                cut_segments(&piece, config, &mut out);
                out.skipped.push(Skipped {
                    kind: SkipKind::Idle,
                    first_frame: Some(first.frame),
                    last_frame: Some(last.frame),
                    start_pts_ms: pts(first),
                    end_pts_ms: pts(last),
                    reason: format!(
                        "idle for {:.2} s: no driving input, no control change, no camera motion",
                        (pts(last) - pts(first)) / 1000.0
                    ),
                });
            }
            _ => {
                piece.extend(idle);
                cut_segments(&piece, config, &mut out);
            }
        }
    }
    out.segments
        .sort_by(|a, b| a.start_pts_ms.total_cmp(&b.start_pts_ms));
    out.skipped
        .sort_by(|a, b| a.start_pts_ms.total_cmp(&b.start_pts_ms));
    for (i, segment) in out.segments.iter_mut().enumerate() {
        segment.index = i + 1;
    }
    out
}

/// Cuts one continuous, active piece into `segment_ms` segments by real frame times.
fn cut_segments(piece: &[&FrameAction], config: &SpliceConfig, out: &mut Splice) {
    let Some(first) = piece.first() else {
        return;
    };
    let pts = |row: &FrameAction| row.pts_ms.unwrap_or(0.0);
    let origin = pts(first);
    let mut start = 0;
    while start < piece.len() {
        let bound = origin
            + ((pts(piece[start]) - origin) / config.segment_ms).floor() * config.segment_ms
            + config.segment_ms;
        let end = start + piece[start..].partition_point(|row| pts(row) < bound);
        let frames = &piece[start..end];
        let (Some(a), Some(b)) = (frames.first(), frames.last()) else {
            break;
        };
        // A full segment spans up to its boundary; the last one ends at its last frame.
        let end_pts = if end < piece.len() { bound } else { pts(b) };
        if end_pts - pts(a) < config.min_tail_ms {
            out.skipped.push(Skipped {
                kind: SkipKind::ShortTail,
                first_frame: Some(a.frame),
                last_frame: Some(b.frame),
                start_pts_ms: pts(a),
                end_pts_ms: end_pts,
                reason: format!(
                    "only {:.2} s left before a break, under the {:.2} s minimum",
                    (end_pts - pts(a)) / 1000.0,
                    config.min_tail_ms / 1000.0
                ),
            });
        } else {
            let mut runs: Vec<usize> = frames.iter().map(|r| r.run).collect();
            runs.dedup();
            out.segments.push(Segment {
                index: 0,
                first_frame: a.frame,
                last_frame: b.frame,
                start_pts_ms: pts(a),
                end_pts_ms: end_pts,
                start_page_ms: a.page_t_ms.unwrap_or(0.0),
                end_page_ms: b.page_t_ms.unwrap_or(0.0),
                runs,
                rows: frames.iter().map(|r| (*r).clone()).collect(),
            });
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::{DrivingKeys, Pose};

    /// A measured frame at `pts`, driving (W held) unless `idle`.
    fn row(frame: usize, pts: f64, idle: bool) -> FrameAction {
        FrameAction {
            frame,
            pts_ms: Some(pts),
            timing: FrameTiming::Measured,
            run: 0,
            page_t_ms: Some(pts + 10_000.0),
            keys_held: Some(if idle { vec![] } else { vec!["w".to_owned()] }),
            driving_keys: Some(DrivingKeys {
                w: !idle,
                ..DrivingKeys::default()
            }),
            mouse_dx: Some(0.0),
            mouse_dy: Some(0.0),
            events: vec![],
            pose: Some(Pose {
                pos: [0.0; 3],
                yaw: 0.0,
                speed: if idle { 0.0 } else { 5.0 },
                sample_gap_ms: 100.0,
                from_gap: false,
            }),
            controls: None,
        }
    }

    fn rows_at(fps: f64, seconds: f64) -> Vec<FrameAction> {
        let n = (fps * seconds) as usize;
        (0..n)
            .map(|i| row(i, i as f64 * 1000.0 / fps, false))
            .collect()
    }

    #[test]
    fn cuts_fixed_segments_and_drops_a_short_tail() {
        // 12 s at 10 fps: 5 s, 5 s, then 1.9 s dropped.
        let result = splice(&rows_at(10.0, 12.0), &SpliceConfig::default());
        let spans: Vec<(usize, usize)> = result
            .segments
            .iter()
            .map(|s| (s.first_frame, s.last_frame))
            .collect();
        assert_eq!(spans, vec![(0, 49), (50, 99)]);
        assert_eq!(result.segments[0].duration_ms(), 5000.0);
        assert_eq!(result.segments[1].index, 2);
        assert_eq!(result.skipped.len(), 1);
        assert_eq!(result.skipped[0].kind, SkipKind::ShortTail);
    }

    #[test]
    fn never_crosses_a_stall_or_a_burst() {
        let mut rows = rows_at(10.0, 8.0);
        // A 3 s stall after 4 s: frames from 40 on move 3 s later.
        for row in rows.iter_mut().skip(40) {
            row.pts_ms = row.pts_ms.map(|p| p + 3000.0);
        }
        // Frames 60-62 are a burst.
        for row in &mut rows[60..63] {
            row.timing = FrameTiming::Burst;
        }
        let config = SpliceConfig {
            min_tail_ms: 1000.0,
            ..SpliceConfig::default()
        };
        let result = splice(&rows, &config);
        for segment in &result.segments {
            let frames: Vec<usize> = segment.rows.iter().map(|r| r.frame).collect();
            assert!(
                !(frames.contains(&39) && frames.contains(&40)),
                "crosses the stall"
            );
            assert!(
                frames.iter().all(|f| !(60..63).contains(f)),
                "contains a burst frame"
            );
        }
        let kinds: Vec<SkipKind> = result.skipped.iter().map(|s| s.kind).collect();
        assert!(kinds.contains(&SkipKind::Stall));
        assert!(kinds.contains(&SkipKind::Burst));
    }

    #[test]
    fn long_idle_is_skipped_short_idle_kept() {
        let mut rows = rows_at(10.0, 20.0);
        // 3 s idle from 5 s (skipped), 1 s idle from 12 s (kept inside a segment).
        for row in &mut rows[50..80] {
            *row = super::tests::row(row.frame, row.pts_ms.unwrap_or(0.0), true);
        }
        for row in &mut rows[120..130] {
            *row = super::tests::row(row.frame, row.pts_ms.unwrap_or(0.0), true);
        }
        let result = splice(&rows, &SpliceConfig::default());
        let idle: Vec<&Skipped> = result
            .skipped
            .iter()
            .filter(|s| s.kind == SkipKind::Idle)
            .collect();
        assert_eq!(idle.len(), 1);
        assert_eq!(
            (idle[0].first_frame, idle[0].last_frame),
            (Some(50), Some(79))
        );
        assert!(result
            .segments
            .iter()
            .any(|s| s.rows.iter().any(|r| r.frame == 125)));
        assert!(result
            .segments
            .iter()
            .all(|s| s.rows.iter().all(|r| !(50..80).contains(&r.frame))));
    }

    #[test]
    fn nothing_measured_means_no_segment() {
        let mut rows = rows_at(10.0, 2.0);
        rows.iter_mut().for_each(|r| r.timing = FrameTiming::Burst);
        let result = splice(&rows, &SpliceConfig::default());
        assert!(result.segments.is_empty());
        assert_eq!(result.skipped.len(), 1);
    }
}
