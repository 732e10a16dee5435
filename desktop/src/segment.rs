//! One segment as the review view shows it: its frames with their times and actions
//! (`aligned.json`), its checks (`quality.json`), and where it is. Read from the layout `process`
//! wrote; only the fields the view uses are read, so newer files still open.

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
}

#[derive(Debug, Deserialize)]
struct Aligned {
    runs: Vec<RunClock>,
    frames: Vec<FrameRow>,
}

#[derive(Debug, Deserialize)]
struct Quality {
    checks: Vec<Check>,
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
}

impl SegmentData {
    pub fn load(layout: &OutputLayout, key: &SegmentKey) -> Result<Self, String> {
        let (location, folder) = layout
            .find_segment(key)
            .ok_or_else(|| format!("{key}: no folder in the clean layout or the review area"))?;
        let aligned: Aligned = read_json(&folder.join("aligned.json"))?;
        let quality: Quality = read_json(&folder.join("quality.json"))?;
        if aligned.frames.is_empty() {
            return Err(format!("{key}: aligned.json lists no frame"));
        }
        Ok(Self {
            key: key.clone(),
            location,
            folder,
            frames: aligned.frames,
            runs: aligned.runs,
            checks: quality.checks,
        })
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
                    let turn = (yaw1 - yaw0 + std::f64::consts::PI)
                        .rem_euclid(std::f64::consts::TAU)
                        - std::f64::consts::PI;
                    Some(turn.to_degrees() / ((t - t0) / 1000.0))
                }
                _ => None,
            };
            lanes.yaw_rate.push(rate);
            if let Some(yaw) = yaw {
                previous = Some((*t, yaw));
            }
        }
        lanes
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|err| format!("{} is not what `process` writes: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(frame: usize, pts: Option<f64>) -> FrameRow {
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
        let data = SegmentData {
            key: SegmentKey {
                wallet: "w".to_owned(),
                session_id: "s".to_owned(),
                segment: 1,
            },
            location: Location::Review,
            folder: PathBuf::from("/x"),
            frames: vec![first, second, row(2, Some(600.0))],
            runs: Vec::new(),
            checks: Vec::new(),
        };
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
    fn times_are_real_and_the_frame_at_a_time_is_the_one_on_screen() {
        let data = SegmentData {
            key: SegmentKey {
                wallet: "w".to_owned(),
                session_id: "s".to_owned(),
                segment: 1,
            },
            location: Location::Clean,
            folder: PathBuf::from("/x"),
            // 100 ms apart, a stall of 2 s, a frame without a timestamp, a repeated timestamp.
            frames: vec![
                row(10, Some(1000.0)),
                row(11, Some(1100.0)),
                row(12, Some(3100.0)),
                row(13, None),
                row(14, Some(3100.0)),
                row(15, Some(3200.0)),
            ],
            runs: Vec::new(),
            checks: Vec::new(),
        };
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
