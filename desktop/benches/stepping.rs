//! Stepping through a long segment in the review app: frame-to-frame latency and peak memory.
//!
//! `cargo bench -p scale-diffusion-review --bench stepping`
//!
//! Builds two segments of 1280x704 JPEG frames at 30 fps, as `process` lays them out: a 10-minute
//! one (18,000 frames) and a 10-second reference (300 frames), with their `aligned.json`,
//! `quality.json` and the session's `session.json`. Then, for each, the app (headless: egui's
//! whole pass and the texture updates it emits, which a stand-in renderer takes and drops, as a
//! GPU upload would; no pixels are drawn) opens the segment and the reviewer
//! - steps up to 1,500 frames forward with the right arrow, back to back: the time from the key
//!   press until the new frame is decoded and on its texture;
//! - jumps up to 200 times a second forward (Shift+right) from the start, 30 frames past anything
//!   prefetched;
//!
//! Prints the open time, latency percentiles, the long segment's ratio against the reference run
//! on the same machine, and the process's peak RSS (`VmHWM`). 300 distinct pictures are hard-linked
//! under the 18,000 names (the loader caches by path, so every step still reads and decodes).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use scale_diffusion_review::{ReviewApp, Sources};
use sd_core::SegmentKey;
use serde_json::json;

const WALLET: &str = "Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR";
const SESSION: &str = "session_1769936388223_tp5owb";
const FPS: f64 = 30.0;
const DISTINCT: usize = 300;

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pictures = pictures(&dir.path().join("pictures"))?;
    let rss_start = peak_rss_mb();

    let short = Run::measure(dir.path(), "reference", 300, &pictures)?;
    let long = Run::measure(dir.path(), "long", 18_000, &pictures)?;

    println!("review app stepping (1280x704 JPEG frames at 30 fps, headless egui, texture updates dropped)");
    println!(
        "{:<34}{:>14}{:>14}{:>9}",
        "", "10 s (300)", "10 min (18k)", "ratio"
    );
    let row = |name: &str, a: f64, b: f64| {
        println!("{name:<34}{a:>11.1} ms{b:>11.1} ms{:>9.2}", b / a);
    };
    row("open the segment", short.open_ms, long.open_ms);
    row("step: median", short.step.p(0.5), long.step.p(0.5));
    row(
        "step: 95th percentile",
        short.step.p(0.95),
        long.step.p(0.95),
    );
    row("step: worst", short.step.p(1.0), long.step.p(1.0));
    row(
        "UI pass alone: median",
        short.ui_pass.p(0.5),
        long.ui_pass.p(0.5),
    );
    row("1 s jump: median", short.jump.p(0.5), long.jump.p(0.5));
    row(
        "1 s jump: 95th percentile",
        short.jump.p(0.95),
        long.jump.p(0.95),
    );
    println!(
        "peak RSS: {:.0} MB after building the pictures, {:.0} MB after the 10 s segment, {:.0} MB after the 10 min one",
        rss_start, short.peak_rss_mb, long.peak_rss_mb
    );
    Ok(())
}

/// Takes egui's texture updates as a GPU upload would (and frees them); draws nothing.
struct Uploads;

impl egui_kittest::TestRenderer for Uploads {
    fn handle_delta(&mut self, delta: &mut egui::TexturesDelta) {
        delta.clear();
    }

    fn render(
        &mut self,
        _ctx: &egui::Context,
        _output: &egui::FullOutput,
    ) -> Result<image::RgbaImage, String> {
        Err("the stepping benchmark draws nothing".to_owned())
    }
}

/// Latencies in ms.
struct Latencies(Vec<f64>);

impl Latencies {
    fn p(&self, q: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(i).copied().unwrap_or(f64::NAN)
    }
}

struct Run {
    open_ms: f64,
    step: Latencies,
    ui_pass: Latencies,
    jump: Latencies,
    peak_rss_mb: f64,
}

impl Run {
    fn measure(
        root: &Path,
        name: &str,
        frames: usize,
        pictures: &[PathBuf],
    ) -> anyhow::Result<Self> {
        let sources = layout(&root.join(name), frames, pictures)?;
        let key = SegmentKey {
            wallet: WALLET.to_owned(),
            session_id: SESSION.to_owned(),
            segment: 1,
        };
        let mut harness = Harness::builder()
            .with_size([1600.0, 1000.0])
            .renderer(Uploads)
            .build_eframe(move |cc| ReviewApp::open(sources, "bench".to_owned(), &cc.egui_ctx));
        harness.run_steps(2);
        let started = Instant::now();
        harness.state_mut().select(key);
        wait_for_frame(&mut harness)?;
        let open_ms = ms(started.elapsed());
        if let Some(message) = harness.state().messages.iter().find(|m| m.error) {
            anyhow::bail!("the app said: {}", message.text);
        }

        let mut step = Vec::new();
        let mut ui_pass = Vec::new();
        for _ in 0..1_500.min(frames - 1) {
            let started = Instant::now();
            harness.key_press(egui::Key::ArrowRight);
            wait_for_frame(&mut harness)?;
            step.push(ms(started.elapsed()));
            // One more pass with nothing new: what drawing the view costs by itself.
            let started = Instant::now();
            harness.step();
            ui_pass.push(ms(started.elapsed()));
        }
        rewind(&mut harness)?;
        let mut jump = Vec::new();
        for _ in 0..200 {
            if at_end(&harness) {
                break;
            }
            let started = Instant::now();
            harness.key_press_modifiers(egui::Modifiers::SHIFT, egui::Key::ArrowRight);
            wait_for_frame(&mut harness)?;
            jump.push(ms(started.elapsed()));
        }

        Ok(Self {
            open_ms,
            step: Latencies(step),
            ui_pass: Latencies(ui_pass),
            jump: Latencies(jump),
            peak_rss_mb: peak_rss_mb(),
        })
    }
}

/// Back to the first frame.
fn rewind(harness: &mut Harness<'_, ReviewApp>) -> anyhow::Result<()> {
    if let Some(view) = harness.state_mut().segment.as_mut() {
        view.frame = 0;
    }
    wait_for_frame(harness)
}

fn at_end(harness: &Harness<'_, ReviewApp>) -> bool {
    harness
        .state()
        .segment
        .as_ref()
        .is_none_or(|view| view.frame + 30 >= view.times.len())
}

/// Runs UI passes until the frame on the playhead is on its texture (the loader thread decodes
/// it meanwhile).
fn wait_for_frame(harness: &mut Harness<'_, ReviewApp>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        harness.step();
        if harness.state().frame_shown() {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("a frame took over 10 s");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `DISTINCT` 1280x704 pictures with detail everywhere (a moving pattern and noise), as JPEG 90.
fn pictures(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let (w, h) = (1280usize, 704usize);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    (0..DISTINCT)
        .map(|i| {
            let mut pixels = vec![0u8; w * h * 3];
            for y in 0..h {
                for x in 0..w {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let noise = (seed & 0x1f) as usize;
                    let base = ((x + 4 * i) ^ (y / 2)) & 0xff;
                    let p = (y * w + x) * 3;
                    pixels[p] = (base + noise).min(255) as u8;
                    pixels[p + 1] = ((x / 5 + y / 3 + i) & 0xff) as u8;
                    pixels[p + 2] = ((y + noise * 2) & 0xff) as u8;
                }
            }
            let image = turbojpeg::Image {
                pixels: pixels.as_slice(),
                width: w,
                pitch: w * 3,
                height: h,
                format: turbojpeg::PixelFormat::RGB,
            };
            let jpeg = turbojpeg::compress(image, 90, turbojpeg::Subsamp::Sub2x2)?;
            let path = dir.join(format!("{i:03}.jpg"));
            std::fs::write(&path, &*jpeg)?;
            Ok(path)
        })
        .collect()
}

/// A clean layout and review area holding one segment of `frames` frames, an empty ledger
/// beside them.
fn layout(root: &Path, frames: usize, pictures: &[PathBuf]) -> anyhow::Result<Sources> {
    let sources = Sources::embedded_default(root);
    let session = sources.review.join(WALLET).join(SESSION);
    let segment = session.join("segment_001");
    std::fs::create_dir_all(segment.join("frames"))?;
    let mut rows = Vec::with_capacity(frames);
    let mut metrics = Vec::with_capacity(frames);
    for frame in 0..frames {
        let name = format!("frames/{frame:06}.jpg");
        std::fs::hard_link(&pictures[frame % pictures.len()], segment.join(&name))?;
        let t = frame as f64 * 1000.0 / FPS;
        let turning = (frame / 90) % 3 == 1;
        let yaw = frame as f64 * 0.002;
        rows.push(json!({
            "file": name,
            "frame": frame,
            "pts_ms": t,
            "run": 0,
            "keys_held": if turning { json!(["w", "a"]) } else { json!(["w"]) },
            "driving_keys": {"w": true, "a": turning, "s": false, "d": false},
            "mouse_dx": if frame % 7 == 0 { 12.0 } else { 0.0 },
            "mouse_dy": 0.0,
            "pose": {"pos": [yaw.sin() * 200.0, 5.0, yaw.cos() * 200.0], "yaw": yaw, "speed": 18.0},
            "controls": {"throttle": 1.0, "brake": 0.0, "steer": if turning { -0.5 } else { 0.0 }},
        }));
        metrics.push(json!({
            "frame": frame,
            "sharpness": 900.0 + (frame % 50) as f64 * 10.0,
            "mean_luma": 120.0,
            "change": 12.0 + (frame % 9) as f64,
            "shift_dx_px": if turning { -3.0 } else { 0.2 },
        }));
    }
    let flagged: Vec<usize> = (0..frames).filter(|f| f % 1000 < 20).collect();
    write_json(
        &segment.join("aligned.json"),
        &json!({
            "runs": [{"run": 0, "offset_ms": 120.0, "source": "motion_correlation", "confidence": 0.9}],
            "frames": rows,
        }),
    )?;
    write_json(
        &segment.join("quality.json"),
        &json!({
            "checks": [{
                "check": "frozen", "metric": "share", "value": 0.02, "threshold": 0.1,
                "bound": "at_most", "passed": true, "reason": "2% of frames frozen",
                "frames": flagged,
            }],
            "frame_thresholds": {
                "min_sharpness": 75.0, "black_max_luma": 24.0, "washed_min_luma": 235.0,
                "still_max_change": 1.5,
            },
        }),
    )?;
    let session_file = sources
        .clean
        .join(WALLET)
        .join(SESSION)
        .join("session.json");
    std::fs::create_dir_all(session_file.parent().unwrap_or(root))?;
    write_json(&session_file, &json!({ "frame_metrics": metrics }))?;
    drop(sd_ledger::Ledger::open_at(&sources.ledger)?);
    Ok(sources)
}

fn write_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec(value)?)?;
    Ok(())
}

/// The process's peak resident memory so far (Linux `VmHWM`), MB.
fn peak_rss_mb() -> f64 {
    sd_telemetry::peak_rss_kb().map_or(f64::NAN, |kb| kb as f64 / 1024.0)
}
