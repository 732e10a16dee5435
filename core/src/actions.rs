//! Dense per-frame action state: for every decoded frame, what the player was doing at the page
//! time the frame shows. Pure: frame times and a clock in, rows out.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{CameraSample, InputEvent, InputKind, DRIVING_KEYS};
use crate::timeline::{median, repeated_timestamps};

/// How a frame's time is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FrameTiming {
    /// The frame's own presentation timestamp.
    Measured,
    /// One of several consecutive frames sharing a timestamp: its true time is unknown.
    Burst,
    /// The frame carried no timestamp.
    Missing,
}

/// Classifies every frame: one sharing its timestamp with a neighbour is in a burst.
pub fn frame_timing(frame_pts_ms: &[Option<f64>]) -> Vec<FrameTiming> {
    let repeated = repeated_timestamps(frame_pts_ms);
    frame_pts_ms
        .iter()
        .zip(repeated)
        .map(|(pts, repeated)| match (pts, repeated) {
            (None, _) => FrameTiming::Missing,
            (Some(_), true) => FrameTiming::Burst,
            (Some(_), false) => FrameTiming::Measured,
        })
        .collect()
}

/// The frame on screen at video time `video_ms`: the last frame with a measured timestamp at or
/// before it, found by the real timestamps (never `fps * t`). `None` before the first frame.
pub fn frame_at(
    frame_pts_ms: &[Option<f64>],
    timing: &[FrameTiming],
    video_ms: f64,
) -> Option<usize> {
    frame_pts_ms
        .iter()
        .zip(timing)
        .enumerate()
        .filter(|(_, (pts, timing))| {
            **timing == FrameTiming::Measured && pts.is_some_and(|p| p <= video_ms)
        })
        .max_by(|a, b| a.1 .0.unwrap_or(0.0).total_cmp(&b.1 .0.unwrap_or(0.0)))
        .map(|(i, _)| i)
}

/// The W/A/S/D keys held, flagged one by one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DrivingKeys {
    pub w: bool,
    pub a: bool,
    pub s: bool,
    pub d: bool,
}

/// The camera log interpolated at a frame's page time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Pose {
    pub pos: [f64; 3],
    /// Radians, interpolated on the shortest arc.
    pub yaw: f64,
    pub speed: f64,
    /// Step between the two camera samples the pose lies between (ms).
    pub sample_gap_ms: f64,
    /// The bracketing samples are further apart than the configured limit, or the camera
    /// teleported between them (the spawn from the lobby into the street): then the pose is the
    /// nearer sample's, not a point halfway between two places.
    pub from_gap: bool,
}

/// The driving controls of the latest camera sample at or before the frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Controls {
    pub throttle: Option<f64>,
    pub brake: Option<f64>,
    pub steer: Option<f64>,
    pub command: Option<f64>,
}

/// One row of the aligned frame table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FrameAction {
    pub frame: usize,
    pub pts_ms: Option<f64>,
    pub timing: FrameTiming,
    /// The continuous run (between stalls) the frame belongs to.
    pub run: usize,
    /// Page time (`performance.now()`) of the input whose effect this frame shows; `None` unless
    /// `timing` is `measured`.
    pub page_t_ms: Option<f64>,
    /// Every key held (lower-case `KeyboardEvent.key`), sorted; `None` when the time is unknown.
    pub keys_held: Option<Vec<String>>,
    pub driving_keys: Option<DrivingKeys>,
    /// Mouse movement summed over the events since the previous measured frame.
    pub mouse_dx: Option<f64>,
    pub mouse_dy: Option<f64>,
    /// Indices into the inputs log of the events since the previous measured frame.
    pub events: Vec<usize>,
    pub pose: Option<Pose>,
    pub controls: Option<Controls>,
}

/// Knobs for building action rows.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionConfig {
    /// A pose interpolated between camera samples further apart than this is flagged `from_gap`.
    pub camera_gap_ms: f64,
}

impl Default for ActionConfig {
    fn default() -> Self {
        // Real camera samples are 0.2-0.55 s apart (median); a hidden tab makes gaps of tens of s.
        Self {
            camera_gap_ms: 2000.0,
        }
    }
}

/// The inputs in time order, replayed forward as frames ask for later times.
#[derive(Debug)]
struct KeyTimeline<'a> {
    inputs: &'a [InputEvent],
    /// Indices into the log, sorted by `t` (stable: log order among equal times).
    order: Vec<usize>,
    times: Vec<f64>,
    mouse_dx_prefix: Vec<f64>,
    mouse_dy_prefix: Vec<f64>,
    /// Keys held after the first `replayed` events of `order`.
    held: BTreeSet<String>,
    replayed: usize,
}

impl<'a> KeyTimeline<'a> {
    fn new(inputs: &'a [InputEvent]) -> Self {
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by(|&a, &b| inputs[a].t.total_cmp(&inputs[b].t));
        let mut mouse_dx_prefix = Vec::with_capacity(order.len() + 1);
        let mut mouse_dy_prefix = Vec::with_capacity(order.len() + 1);
        let (mut dx, mut dy) = (0.0, 0.0);
        mouse_dx_prefix.push(dx);
        mouse_dy_prefix.push(dy);
        for &i in &order {
            if inputs[i].input_kind() == InputKind::Mouse {
                dx += inputs[i].dx.unwrap_or(0.0);
                dy += inputs[i].dy.unwrap_or(0.0);
            }
            mouse_dx_prefix.push(dx);
            mouse_dy_prefix.push(dy);
        }
        Self {
            times: order.iter().map(|&i| inputs[i].t).collect(),
            inputs,
            order,
            mouse_dx_prefix,
            mouse_dy_prefix,
            held: BTreeSet::new(),
            replayed: 0,
        }
    }

    /// Number of events at or before `t`.
    fn count_until(&self, t: f64) -> usize {
        self.times.partition_point(|&time| time <= t)
    }

    /// The keys held after the first `count` events. Moving forward replays only the new events;
    /// going back (a later run whose clock went back) replays from the start.
    fn held_after(&mut self, count: usize) -> &BTreeSet<String> {
        if count < self.replayed {
            self.held.clear();
            self.replayed = 0;
        }
        for &i in &self.order[self.replayed..count] {
            let event = &self.inputs[i];
            match (event.input_kind(), event.key.as_deref()) {
                (InputKind::KeyDown, Some(key)) => {
                    self.held.insert(key.to_owned());
                }
                // A keyup without its keydown (`p`, focus changes) leaves the state as it is.
                (InputKind::KeyUp, Some(key)) => {
                    self.held.remove(key);
                }
                _ => {}
            }
        }
        self.replayed = count;
        &self.held
    }
}

/// Builds one row per frame. `page_time(frame, pts_ms)` maps a measured frame to the page time
/// it shows, and `run_of[frame]` gives its continuous run.
pub fn frame_actions(
    frame_pts_ms: &[Option<f64>],
    run_of: &[usize],
    page_time: impl Fn(usize, f64) -> f64,
    inputs: &[InputEvent],
    camera: &[CameraSample],
    config: &ActionConfig,
) -> Vec<FrameAction> {
    let mut keys = KeyTimeline::new(inputs);
    let camera_order = sorted_camera(camera);
    let teleports = Teleports::from_camera(&camera_order);
    let timing = frame_timing(frame_pts_ms);

    let mut previous_count: Option<usize> = None;
    let mut previous_run = usize::MAX;
    let mut rows = Vec::with_capacity(frame_pts_ms.len());
    for (frame, (&pts_ms, &timing)) in frame_pts_ms.iter().zip(&timing).enumerate() {
        let run = run_of.get(frame).copied().unwrap_or(0);
        let mut row = FrameAction {
            frame,
            pts_ms,
            timing,
            run,
            page_t_ms: None,
            keys_held: None,
            driving_keys: None,
            mouse_dx: None,
            mouse_dy: None,
            events: Vec::new(),
            pose: None,
            controls: None,
        };
        if let (FrameTiming::Measured, Some(pts)) = (timing, pts_ms) {
            let t = page_time(frame, pts);
            let count = keys.count_until(t);
            // Events since the previous measured frame of the same run; none for a run's first
            // frame (what came before belongs to a stretch of video that is not there).
            let since = match previous_count {
                Some(previous) if previous_run == run && previous <= count => previous,
                _ => count,
            };
            row.page_t_ms = Some(t);
            row.mouse_dx = Some(keys.mouse_dx_prefix[count] - keys.mouse_dx_prefix[since]);
            row.mouse_dy = Some(keys.mouse_dy_prefix[count] - keys.mouse_dy_prefix[since]);
            row.events = keys.order[since..count].to_vec();
            let held = keys.held_after(count);
            row.driving_keys = Some(DrivingKeys {
                w: held.contains(DRIVING_KEYS[0]),
                a: held.contains(DRIVING_KEYS[1]),
                s: held.contains(DRIVING_KEYS[2]),
                d: held.contains(DRIVING_KEYS[3]),
            });
            row.keys_held = Some(held.iter().cloned().collect());
            row.pose = pose_at(&camera_order, &teleports, t, config);
            row.controls = controls_at(&camera_order, t);
            previous_count = Some(count);
            previous_run = run;
        }
        rows.push(row);
    }
    rows
}

/// The page's animation frames (`requestAnimationFrame` ticks): the page moves the car and
/// renders only at these, and logs a camera sample at every 10th (SPEC section 8), so a video
/// frame shows the state of one of them. Between two samples the nine frames not logged are
/// spread evenly.
#[derive(Debug, Clone)]
pub(crate) struct AnimationFrames {
    /// Camera sample times, sorted.
    samples: Vec<f64>,
    /// Period of the animation frames, ms.
    frame_ms: f64,
}

/// Animation frames between two camera samples.
const FRAMES_PER_CAMERA_SAMPLE: f64 = 10.0;

impl AnimationFrames {
    pub(crate) fn from_camera(camera: &[&CameraSample]) -> Self {
        let samples: Vec<f64> = camera.iter().map(|c| c.t).collect();
        let mut steps: Vec<f64> = samples
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|step| *step > 0.0)
            .collect();
        // 60 Hz when there are too few samples to tell.
        let frame_ms = median(&mut steps)
            .filter(|_| steps.len() >= 5)
            .map_or(1000.0 / 60.0, |step| {
                (step / FRAMES_PER_CAMERA_SAMPLE).clamp(4.0, 100.0)
            });
        Self { samples, frame_ms }
    }

    /// The period of the page's animation frames, ms.
    pub(crate) fn frame_ms(&self) -> f64 {
        self.frame_ms
    }

    /// The animation frame nearest to `t`, when `t` lies between two camera samples as far apart
    /// as ten regular frames (within half of one either way); `t` itself elsewhere (a hidden tab
    /// leaves gaps with no frame at all, and before the first or after the last sample nothing
    /// places them).
    pub(crate) fn snap(&self, t: f64) -> f64 {
        let after = self.samples.partition_point(|&s| s <= t);
        let (Some(&from), Some(&to)) = (
            after.checked_sub(1).and_then(|i| self.samples.get(i)),
            self.samples.get(after),
        ) else {
            return t;
        };
        let expected = FRAMES_PER_CAMERA_SAMPLE * self.frame_ms;
        if (to - from - expected).abs() > 0.5 * expected {
            return t;
        }
        let step = (to - from) / FRAMES_PER_CAMERA_SAMPLE;
        from + ((t - from) / step).round() * step
    }
}

/// Jumps of the camera that are cuts, not motion: the spawn from the lobby pose into the street
/// (about 625 units in the real logs). Speed units and the page's frame rate differ between games
/// and displays, so the bar comes from the log itself: a step between two samples longer than ten
/// times the log's 95th-percentile step (and than 1 unit, for a log that barely moves).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Teleports {
    min_jump: f64,
}

impl Teleports {
    pub(crate) fn from_camera(camera: &[&CameraSample]) -> Self {
        let mut steps: Vec<f64> = camera
            .windows(2)
            .map(|w| ground_distance(w[0], w[1]))
            .collect();
        steps.sort_by(f64::total_cmp);
        let p95 = steps
            .get(((steps.len().saturating_sub(1)) as f64 * 0.95) as usize)
            .copied()
            .unwrap_or(0.0);
        Self {
            min_jump: (10.0 * p95).max(1.0),
        }
    }

    /// Whether the camera teleported between two consecutive samples.
    pub(crate) fn between(&self, a: &CameraSample, b: &CameraSample) -> bool {
        ground_distance(a, b) > self.min_jump
    }
}

/// Distance between two camera samples on the ground plane (x, z).
pub(crate) fn ground_distance(a: &CameraSample, b: &CameraSample) -> f64 {
    ((b.pos[0] - a.pos[0]).powi(2) + (b.pos[2] - a.pos[2]).powi(2)).sqrt()
}

/// Camera samples sorted by time; of samples logged at the same time, the last one logged.
pub(crate) fn sorted_camera(camera: &[CameraSample]) -> Vec<&CameraSample> {
    let mut sorted: Vec<&CameraSample> = camera.iter().rev().collect();
    // Stable sort of the reversed log keeps the last-logged sample first among equal times.
    sorted.sort_by(|a, b| a.t.total_cmp(&b.t));
    sorted.dedup_by(|later, first| later.t == first.t);
    sorted
}

/// Wraps an angle difference into (-pi, pi].
pub fn shortest_arc(delta: f64) -> f64 {
    let tau = std::f64::consts::TAU;
    let wrapped = delta.rem_euclid(tau);
    if wrapped > std::f64::consts::PI {
        wrapped - tau
    } else {
        wrapped
    }
}

fn pose_at(
    camera: &[&CameraSample],
    teleports: &Teleports,
    t: f64,
    config: &ActionConfig,
) -> Option<Pose> {
    let after = camera.partition_point(|sample| sample.t <= t);
    if after == 0 || after == camera.len() {
        // Before the first sample or after the last: nothing to interpolate between. A frame
        // exactly on the last sample still gets that sample.
        let last = camera.last()?;
        return (last.t == t).then_some(Pose {
            pos: last.pos,
            yaw: last.yaw,
            speed: last.speed,
            sample_gap_ms: 0.0,
            from_gap: false,
        });
    }
    let (a, b) = (camera[after - 1], camera[after]);
    let gap = b.t - a.t;
    let teleported = teleports.between(a, b);
    let f = match (teleported, gap > 0.0) {
        // Across a teleport the camera is in one place or the other, never between.
        (true, true) => ((t - a.t) / gap).round(),
        (false, true) => (t - a.t) / gap,
        (_, false) => 0.0,
    };
    let lerp = |x: f64, y: f64| x + (y - x) * f;
    Some(Pose {
        pos: [
            lerp(a.pos[0], b.pos[0]),
            lerp(a.pos[1], b.pos[1]),
            lerp(a.pos[2], b.pos[2]),
        ],
        yaw: a.yaw + shortest_arc(b.yaw - a.yaw) * f,
        speed: lerp(a.speed, b.speed),
        sample_gap_ms: gap,
        from_gap: gap > config.camera_gap_ms || teleported,
    })
}

fn controls_at(camera: &[&CameraSample], t: f64) -> Option<Controls> {
    let after = camera.partition_point(|sample| sample.t <= t);
    let sample = camera.get(after.checked_sub(1)?)?;
    Some(Controls {
        throttle: sample.throttle,
        brake: sample.brake,
        steer: sample.steer,
        command: sample.command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t: f64, kind: &str, key: Option<&str>, dx: Option<f64>) -> InputEvent {
        InputEvent {
            t,
            kind: kind.to_owned(),
            key: key.map(str::to_owned),
            dx,
            dy: dx.map(|_| 0.0),
            extra: Default::default(),
        }
    }

    fn sample(t: f64, x: f64, yaw: f64, command: f64) -> CameraSample {
        CameraSample {
            t,
            pos: [x, 0.0, 0.0],
            yaw,
            speed: x,
            kind: Some("camera".to_owned()),
            throttle: Some(1.0),
            brake: Some(0.0),
            steer: Some(0.0),
            command: Some(command),
            extra: Default::default(),
        }
    }

    #[test]
    fn timing_marks_bursts_and_missing() {
        let pts = [
            Some(0.0),
            Some(10.0),
            Some(10.0),
            Some(10.0),
            Some(20.0),
            None,
        ];
        use FrameTiming::*;
        assert_eq!(
            frame_timing(&pts),
            vec![Measured, Burst, Burst, Burst, Measured, Missing]
        );
    }

    #[test]
    fn frame_lookup_uses_real_timestamps_and_skips_bursts() {
        // 2 fps with a stall: `fps * t` would be wrong everywhere.
        let pts = [
            Some(0.0),
            Some(500.0),
            Some(9000.0),
            Some(9000.0),
            Some(9600.0),
        ];
        let timing = frame_timing(&pts);
        assert_eq!(frame_at(&pts, &timing, -1.0), None);
        assert_eq!(frame_at(&pts, &timing, 499.0), Some(0));
        assert_eq!(frame_at(&pts, &timing, 8000.0), Some(1));
        // Inside the burst the time is unknown: the last trustworthy frame is before it.
        assert_eq!(frame_at(&pts, &timing, 9100.0), Some(1));
        assert_eq!(frame_at(&pts, &timing, 1e9), Some(4));
    }

    #[test]
    fn keys_mouse_and_events_per_frame() {
        let inputs = vec![
            event(105.0, "keydown", Some("w"), None),
            event(90.0, "keyup", Some("p"), None), // out of order, and without keydown
            event(150.0, "mouse", None, Some(3.0)),
            event(160.0, "mouse", None, Some(-1.0)),
            event(210.0, "keyup", Some("w"), None),
            event(215.0, "keydown", Some("a"), None),
        ];
        let pts = [Some(0.0), Some(100.0), Some(200.0), Some(300.0)];
        // Page time = pts + 100 (an offset of 100 ms).
        let rows = frame_actions(
            &pts,
            &[0; 4],
            |_, pts| pts + 100.0,
            &inputs,
            &[],
            &ActionConfig::default(),
        );
        let held: Vec<Vec<String>> = rows.iter().map(|r| r.keys_held.clone().unwrap()).collect();
        let a = || vec!["a".to_owned()];
        assert_eq!(held, vec![vec![], vec!["w".to_owned()], a(), a()]);
        assert!(rows[1].driving_keys.unwrap().w);
        // The first frame of a run gets no events; later frames get those since the previous one.
        assert_eq!(rows[0].events, Vec::<usize>::new());
        assert_eq!(rows[1].events, vec![0, 2, 3]);
        assert_eq!(rows[1].mouse_dx, Some(2.0));
        assert_eq!(rows[2].events, vec![4, 5]);
        assert_eq!(rows[2].mouse_dx, Some(0.0));
        assert!(rows[3].events.is_empty());
    }

    #[test]
    fn unknown_times_get_no_action() {
        let pts = [Some(0.0), Some(50.0), Some(50.0), None];
        let rows = frame_actions(
            &pts,
            &[0; 4],
            |_, pts| pts,
            &[],
            &[],
            &ActionConfig::default(),
        );
        assert!(rows[0].keys_held.is_some());
        for row in &rows[1..] {
            assert_eq!(row.page_t_ms, None);
            assert_eq!(row.keys_held, None);
        }
    }

    #[test]
    fn pose_interpolates_yaw_on_the_shortest_arc_and_flags_gaps() {
        let pi = std::f64::consts::PI;
        let camera = vec![
            sample(0.0, 0.0, pi - 0.1, 3.0),
            sample(100.0, 10.0, -pi + 0.1, 4.0),
            sample(5000.0, 20.0, 0.0, 1.0),
        ];
        let pts = [Some(50.0), Some(2000.0), Some(6000.0)];
        let rows = frame_actions(
            &pts,
            &[0; 3],
            |_, pts| pts,
            &[],
            &camera,
            &ActionConfig::default(),
        );
        let pose = rows[0].pose.clone().unwrap();
        assert_eq!(pose.pos[0], 5.0);
        assert!((pose.yaw - pi).abs() < 1e-9, "{}", pose.yaw);
        assert!(!pose.from_gap);
        assert_eq!(rows[0].controls.clone().unwrap().command, Some(3.0));
        assert!(rows[1].pose.clone().unwrap().from_gap);
        assert_eq!(rows[2].pose, None);
        assert_eq!(rows[2].controls.clone().unwrap().command, Some(1.0));
    }

    #[test]
    fn a_run_whose_clock_goes_back_replays_keys_from_the_start() {
        let inputs = vec![
            event(100.0, "keydown", Some("w"), None),
            event(200.0, "keyup", Some("w"), None),
        ];
        // Run 0 shows page time 250, run 1 (after a clock break) page time 150 again.
        let pts = [Some(0.0), Some(10_000.0)];
        let page = |frame: usize, _| if frame == 0 { 250.0 } else { 150.0 };
        let rows = frame_actions(&pts, &[0, 1], page, &inputs, &[], &ActionConfig::default());
        assert_eq!(rows[0].keys_held, Some(vec![]));
        assert_eq!(rows[1].keys_held, Some(vec!["w".to_owned()]));
    }

    #[test]
    fn events_do_not_leak_across_runs() {
        let inputs = vec![event(50.0, "mouse", None, Some(5.0))];
        let pts = [Some(0.0), Some(100.0)];
        let rows = frame_actions(
            &pts,
            &[0, 1],
            |_, pts| pts,
            &inputs,
            &[],
            &ActionConfig::default(),
        );
        assert_eq!(rows[1].mouse_dx, Some(0.0));
        assert!(rows[1].events.is_empty());
    }
}
