//! One segment as the review view shows it: its frames with their times and actions
//! (`aligned.json`), its checks and the frames each flags (`quality.json`), the per-frame picture
//! metrics (`session.json`), and where it is. Read from the layout `process` wrote; only the
//! fields the view uses are read, so newer files still open, and older ones without the flagged
//! frames or the metrics open without those lanes.

use std::path::{Path, PathBuf};

use sd_core::{Location, OutputLayout, SegmentKey};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct DrivingKeys {
    pub w: bool,
    pub a: bool,
    pub s: bool,
    pub d: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Pose {
    pub pos: [f64; 3],
    pub yaw: f64,
    pub speed: f64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Controls {
    pub throttle: Option<f64>,
    pub brake: Option<f64>,
    pub steer: Option<f64>,
}

/// One frame of the segment.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct FrameRow {
    /// Relative to the segment folder.
    pub file: String,
    /// Index in the session's decode order.
    pub frame: usize,
    pub pts_ms: Option<f64>,
    /// The clock run (between stalls).
    #[serde(default)]
    pub run: usize,
    pub keys_held: Option<Vec<String>>,
    pub driving_keys: Option<DrivingKeys>,
    pub mouse_dx: Option<f64>,
    pub mouse_dy: Option<f64>,
    pub pose: Option<Pose>,
    pub controls: Option<Controls>,
}

/// A clock run the segment rests on.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RunClock {
    pub run: usize,
    pub offset_ms: f64,
    pub source: String,
    pub confidence: f64,
}

/// One CLEAN check.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Check {
    pub check: String,
    pub metric: String,
    pub value: f64,
    pub threshold: f64,
    pub bound: serde_json::Value,
    pub passed: bool,
    pub reason: String,
    /// The session frames it flags (absent before output schema 4).
    #[serde(default)]
    pub frames: Vec<usize>,
    /// For a failed `duplicate`: the earlier segment this one repeats.
    #[serde(default)]
    pub duplicate_of: Option<DuplicateOf>,
}

/// The earlier segment a `duplicate` names, and where its frames meet this one's.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct DuplicateOf {
    pub wallet: String,
    pub session_id: String,
    pub segment: usize,
    /// Earlier video time minus this segment's, ms.
    pub offset_ms: f64,
    pub run_ms: f64,
    pub frames_matched: usize,
    pub frames_in_run: usize,
    pub mean_distance: f64,
}

impl DuplicateOf {
    pub fn key(&self) -> SegmentKey {
        SegmentKey {
            wallet: self.wallet.clone(),
            session_id: self.session_id.clone(),
            segment: self.segment,
        }
    }
}

/// The earlier segment a failed `duplicate` names, loaded for showing beside this one.
#[derive(Debug, Clone, PartialEq)]
pub struct Earlier {
    pub of: DuplicateOf,
    /// `Err`: why it cannot be shown (not in this layout, unreadable).
    pub data: Result<Box<SegmentData>, String>,
}

/// The lines the picture checks hold each frame to.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
pub struct FrameThresholds {
    pub min_sharpness: f64,
    pub black_max_luma: f64,
    pub washed_min_luma: f64,
    pub still_max_change: f64,
}

/// One frame's picture measurements, from `session.json`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Default)]
pub struct FrameMetric {
    pub frame: usize,
    pub sharpness: Option<f64>,
    pub mean_luma: Option<f64>,
    pub change: Option<f64>,
    /// The picture's sideways shift from the previous frame (128x64 thumbnail px): the motion
    /// measured in the video.
    pub shift_dx_px: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Aligned {
    runs: Vec<RunClock>,
    frames: Vec<FrameRow>,
}

#[derive(Debug, Deserialize)]
struct Quality {
    checks: Vec<Check>,
    #[serde(default)]
    frame_thresholds: Option<FrameThresholds>,
}

#[derive(Debug, Deserialize)]
struct SessionMetrics {
    #[serde(default)]
    frame_metrics: Vec<FrameMetric>,
}

/// Everything the segment view shows.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentData {
    pub key: SegmentKey,
    pub location: Location,
    pub folder: PathBuf,
    pub frames: Vec<FrameRow>,
    pub runs: Vec<RunClock>,
    pub checks: Vec<Check>,
    pub thresholds: Option<FrameThresholds>,
    /// Per frame of the segment, its picture metrics (`None` where `session.json` has none).
    pub metrics: Vec<Option<FrameMetric>>,
    /// Why there are no metrics, when there are none.
    pub metrics_note: Option<String>,
    /// The earlier segment a failed `duplicate` check names.
    pub earlier: Option<Earlier>,
}

impl SegmentData {
    pub fn load(layout: &OutputLayout, key: &SegmentKey) -> Result<Self, String> {
        let mut data = Self::load_one(layout, key)?;
        let of = data
            .checks
            .iter()
            .find(|check| check.check == "duplicate" && !check.passed)
            .and_then(|check| check.duplicate_of.clone());
        data.earlier = of.map(|of| {
            let earlier = Self::load_one(layout, &of.key()).map(Box::new);
            Earlier { of, data: earlier }
        });
        Ok(data)
    }

    fn load_one(layout: &OutputLayout, key: &SegmentKey) -> Result<Self, String> {
        let (location, folder) = layout
            .find_segment(key)
            .ok_or_else(|| format!("{key}: no folder in the clean layout or the review area"))?;
        let aligned: Aligned = read_json(&folder.join("aligned.json"))?;
        let quality: Quality = read_json(&folder.join("quality.json"))?;
        if aligned.frames.is_empty() {
            return Err(format!("{key}: aligned.json lists no frame"));
        }
        // Frame files are read from the segment's folder and nowhere else.
        if let Some(row) = aligned.frames.iter().find(|row| {
            let path = std::path::Path::new(&row.file);
            path.components().count() == 0
                || !path
                    .components()
                    .all(|part| matches!(part, std::path::Component::Normal(_)))
        }) {
            let shown: String = row.file.chars().take(200).collect();
            return Err(format!(
                "{key}: aligned.json names a frame outside the segment's folder: {shown:?}"
            ));
        }
        // An accepted session's own file sits in the clean layout, wherever its segments went.
        let session_file = [Location::Clean, Location::Review]
            .into_iter()
            .map(|at| {
                layout
                    .root(at)
                    .join(&key.wallet)
                    .join(&key.session_id)
                    .join("session.json")
            })
            .find(|path| path.is_file());
        let (metrics, metrics_note) = match session_file {
            Some(path) => match read_json::<SessionMetrics>(&path) {
                Ok(session) => (
                    Self::metrics_of(&aligned.frames, session.frame_metrics),
                    None,
                ),
                Err(err) => (Vec::new(), Some(err)),
            },
            None => (
                Vec::new(),
                Some(format!(
                    "{key}: no session.json beside it: no picture metrics"
                )),
            ),
        };
        Ok(Self {
            key: key.clone(),
            location,
            folder,
            frames: aligned.frames,
            runs: aligned.runs,
            checks: quality.checks,
            thresholds: quality.frame_thresholds,
            metrics,
            metrics_note,
            earlier: None,
        })
    }

    /// The earlier segment's frame showing what frame `index` of this one shows (its video time
    /// plus the duplicate's offset), with that frame's index in the earlier segment.
    pub fn earlier_frame(&self, index: usize) -> Option<(usize, PathBuf)> {
        let earlier = self.earlier.as_ref()?;
        let data = earlier.data.as_ref().ok()?;
        let pts = self.frames.get(index)?.pts_ms?;
        let target = pts + earlier.of.offset_ms;
        let at = data
            .frames
            .iter()
            .enumerate()
            .filter_map(|(i, row)| Some((i, (row.pts_ms? - target).abs())))
            .min_by(|a, b| a.1.total_cmp(&b.1))?
            .0;
        Some((at, data.frame_path(at)?))
    }

    /// The session's metrics of the segment's frames, in the segment's order.
    fn metrics_of(frames: &[FrameRow], all: Vec<FrameMetric>) -> Vec<Option<FrameMetric>> {
        let by_frame: std::collections::HashMap<usize, FrameMetric> =
            all.into_iter().map(|m| (m.frame, m)).collect();
        frames
            .iter()
            .map(|row| by_frame.get(&row.frame).copied())
            .collect()
    }

    pub fn frame_path(&self, index: usize) -> Option<PathBuf> {
        self.frames
            .get(index)
            .map(|row| self.folder.join(&row.file))
    }

    /// The frame's presentation time relative to the segment's first frame (ms); frames without
    /// a timestamp take the previous one's.
    pub fn times_ms(&self) -> Vec<f64> {
        let start = self.frames.iter().find_map(|f| f.pts_ms).unwrap_or(0.0);
        let mut last = 0.0;
        self.frames
            .iter()
            .map(|row| {
                if let Some(pts) = row.pts_ms {
                    last = pts - start;
                }
                last
            })
            .collect()
    }

    /// The frame shown at `t_ms` (segment time): the last one whose time is not after it.
    pub fn frame_at(&self, times: &[f64], t_ms: f64) -> usize {
        times.partition_point(|t| *t <= t_ms).saturating_sub(1)
    }

    pub fn run_clock(&self, run: usize) -> Option<&RunClock> {
        self.runs.iter().find(|clock| clock.run == run)
    }
}

/// Per-frame values for the lanes under the timeline, one entry per frame.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Lanes {
    /// W, A, S, D held (driving keys), per frame.
    pub keys: [Vec<bool>; 4],
    pub speed: Vec<Option<f64>>,
    pub mouse_dx: Vec<Option<f64>>,
    /// Degrees per second, from the camera's yaw between this frame and the previous one.
    pub yaw_rate: Vec<Option<f64>>,
    /// Per check that flags frames of this segment (in check order), which frames it flags.
    pub flagged: Vec<(String, Vec<bool>)>,
    /// Picture metrics per frame (empty without `session.json`).
    pub sharpness: Vec<Option<f64>>,
    pub brightness: Vec<Option<f64>>,
    pub change: Vec<Option<f64>>,
    /// The sideways motion measured in the video (thumbnail px per frame).
    pub motion: Vec<Option<f64>>,
}

impl SegmentData {
    pub fn lanes(&self, times: &[f64]) -> Lanes {
        let mut lanes = Lanes::default();
        let mut previous: Option<(f64, f64)> = None;
        for (row, t) in self.frames.iter().zip(times) {
            let keys = row.driving_keys.as_ref();
            for (lane, held) in lanes.keys.iter_mut().zip([
                keys.is_some_and(|k| k.w),
                keys.is_some_and(|k| k.a),
                keys.is_some_and(|k| k.s),
                keys.is_some_and(|k| k.d),
            ]) {
                lane.push(held);
            }
            lanes.speed.push(row.pose.as_ref().map(|pose| pose.speed));
            lanes.mouse_dx.push(row.mouse_dx);
            let yaw = row.pose.as_ref().map(|pose| pose.yaw);
            let rate = match (previous, yaw) {
                (Some((t0, yaw0)), Some(yaw1)) if *t > t0 => {
                    Some(sd_core::shortest_arc(yaw1 - yaw0).to_degrees() / ((t - t0) / 1000.0))
                }
                _ => None,
            };
            lanes.yaw_rate.push(rate);
            if let Some(yaw) = yaw {
                previous = Some((*t, yaw));
            }
        }
        lanes.flagged = self
            .checks
            .iter()
            .filter(|check| !check.frames.is_empty())
            .map(|check| {
                let flagged: std::collections::HashSet<usize> =
                    check.frames.iter().copied().collect();
                let marks = self
                    .frames
                    .iter()
                    .map(|row| flagged.contains(&row.frame))
                    .collect();
                (check.check.clone(), marks)
            })
            .collect();
        let metric = |get: fn(&FrameMetric) -> Option<f64>| -> Vec<Option<f64>> {
            self.metrics
                .iter()
                .map(|m| m.as_ref().and_then(get))
                .collect()
        };
        lanes.sharpness = metric(|m| m.sharpness);
        lanes.brightness = metric(|m| m.mean_luma);
        lanes.change = metric(|m| m.change);
        lanes.motion = metric(|m| m.shift_dx_px);
        lanes
    }
}

impl Lanes {
    /// Where the next stretch of flagged frames after frame `from` (segment index) begins (some
    /// check flags the frame, and none flags the one before it); the previous one before `from`
    /// when `forward` is false.
    pub fn next_flagged(&self, from: usize, forward: bool) -> Option<usize> {
        let is_flagged = |i: usize| {
            self.flagged
                .iter()
                .any(|(_, marks)| marks.get(i).copied().unwrap_or(false))
        };
        let starts = |i: &usize| is_flagged(*i) && (*i == 0 || !is_flagged(*i - 1));
        let n = self.keys[0].len();
        if forward {
            (from + 1..n).find(starts)
        } else {
            (0..from.min(n)).rev().find(starts)
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|err| format!("{} is not what `process` writes: {err}", path.display()))
}

/// Builders for the crate's unit tests.
#[cfg(test)]
pub(crate) mod test_data {
    use super::*;

    /// Session frame `frame` at `pts`, with no action.
    pub fn row(frame: usize, pts: Option<f64>) -> FrameRow {
        FrameRow {
            file: format!("frames/{frame:06}.jpg"),
            frame,
            pts_ms: pts,
            run: 0,
            keys_held: None,
            driving_keys: None,
            mouse_dx: None,
            mouse_dy: None,
            pose: None,
            controls: None,
        }
    }

    /// A segment of `frames` with `checks`, nowhere on disk.
    pub fn segment(frames: Vec<FrameRow>, checks: Vec<Check>) -> SegmentData {
        SegmentData {
            key: SegmentKey {
                wallet: "w".to_owned(),
                session_id: "s".to_owned(),
                segment: 1,
            },
            location: Location::Review,
            folder: PathBuf::from("/nonexistent"),
            frames,
            runs: Vec::new(),
            checks,
            thresholds: None,
            metrics: Vec::new(),
            metrics_note: None,
            earlier: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_data::{row, segment};
    use super::*;

    #[test]
    fn lanes_follow_the_frames_and_the_yaw_rate_wraps_around() {
        let mut first = row(0, Some(0.0));
        first.pose = Some(Pose {
            pos: [0.0; 3],
            yaw: std::f64::consts::PI - 0.05,
            speed: 3.0,
        });
        first.driving_keys = Some(DrivingKeys {
            w: true,
            a: false,
            s: false,
            d: true,
        });
        let mut second = row(1, Some(500.0));
        // Across the +-pi seam: a small left turn, not a whole turn the other way.
        second.pose = Some(Pose {
            pos: [0.0; 3],
            yaw: -std::f64::consts::PI + 0.05,
            speed: 4.0,
        });
        let data = segment(vec![first, second, row(2, Some(600.0))], Vec::new());
        let lanes = data.lanes(&data.times_ms());
        assert_eq!(lanes.keys[0], [true, false, false]);
        assert_eq!(lanes.keys[3], [true, false, false]);
        assert_eq!(lanes.speed, [Some(3.0), Some(4.0), None]);
        let rate = lanes.yaw_rate[1].expect("a rate");
        assert!((rate - 0.1f64.to_degrees() / 0.5).abs() < 1e-9, "{rate}");
        assert_eq!(lanes.yaw_rate[0], None);
        assert_eq!(lanes.yaw_rate[2], None);
    }

    #[test]
    fn flagged_lanes_mark_the_checks_frames_and_jumps_land_on_stretch_starts() {
        let check = |name: &str, frames: Vec<usize>| Check {
            check: name.to_owned(),
            metric: String::new(),
            value: 0.0,
            threshold: 0.0,
            bound: serde_json::Value::Null,
            passed: frames.is_empty(),
            reason: String::new(),
            frames,
            duplicate_of: None,
        };
        let data = segment(
            // Session frames 20..30; frame 24 is missing (a decode gap).
            (20..30)
                .filter(|f| *f != 24)
                .map(|f| row(f, Some(f as f64 * 100.0)))
                .collect(),
            // Frozen on 22-23 and 25-26 (one stretch across the gap), a glitch on 28, and a
            // frame outside the segment that must not shift anything.
            vec![
                check("blur", vec![]),
                check("frozen", vec![22, 23, 25, 26, 99]),
                check("glitch", vec![28]),
            ],
        );
        let lanes = data.lanes(&data.times_ms());
        let names: Vec<&str> = lanes.flagged.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["frozen", "glitch"]);
        assert_eq!(
            lanes.flagged[0].1,
            [false, false, true, true, true, true, false, false, false]
        );
        assert!(lanes.flagged[1].1[7]);
        assert_eq!(lanes.next_flagged(0, true), Some(2));
        // Inside the frozen stretch the next jump goes past it, to the glitch.
        assert_eq!(lanes.next_flagged(2, true), Some(7));
        assert_eq!(lanes.next_flagged(7, true), None);
        assert_eq!(lanes.next_flagged(8, false), Some(7));
        assert_eq!(lanes.next_flagged(7, false), Some(2));
        assert_eq!(lanes.next_flagged(2, false), None);
    }

    #[test]
    fn times_are_real_and_the_frame_at_a_time_is_the_one_on_screen() {
        // 100 ms apart, a stall of 2 s, a frame without a timestamp, a repeated timestamp.
        let data = segment(
            vec![
                row(10, Some(1000.0)),
                row(11, Some(1100.0)),
                row(12, Some(3100.0)),
                row(13, None),
                row(14, Some(3100.0)),
                row(15, Some(3200.0)),
            ],
            Vec::new(),
        );
        let times = data.times_ms();
        assert_eq!(times, [0.0, 100.0, 2100.0, 2100.0, 2100.0, 2200.0]);
        assert_eq!(data.frame_at(&times, 0.0), 0);
        assert_eq!(data.frame_at(&times, 99.0), 0);
        assert_eq!(data.frame_at(&times, 1500.0), 1);
        // A burst of equal times: the last of them is on screen.
        assert_eq!(data.frame_at(&times, 2100.0), 4);
        assert_eq!(data.frame_at(&times, 9999.0), 5);
        assert_eq!(data.frame_at(&times, -5.0), 0);
    }
}
