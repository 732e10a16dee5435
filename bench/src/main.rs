//! `sd-bench`: how fast and how lean `scale-diffusion process` is, against FFmpeg's own decode
//! and JPEG extraction of the same file, on this machine, in one invocation.
//!
//! ```text
//! cargo build --release --locked --bins && ./target/release/sd-bench
//! ```
//!
//! 1. Generates a synthetic 60 s, 30 fps, 1280x720 VP8 bundle with the fixture generator (kept
//!    in `--work`, rebuilt when missing).
//! 2. Times, `--runs` times each (median reported): `ffmpeg -i X -f null -` (decode only),
//!    `ffmpeg -i X -q:v 3 frames/%05d.jpg` (decode + JPEG), and `scale-diffusion process`.
//! 3. Builds a 10-minute bundle from the 60 s one (the video's packets looped ten times without
//!    re-encoding, the logs repeated with shifted times) and runs `process` on it once.
//! 4. Times `scale-diffusion export` of the 60 s bundle's clean layout (LeRobot v3, WebDataset
//!    with JPEGs, WebDataset with MP4s) into a fresh folder each run, against `process` and
//!    against ffmpeg encoding the same JPEGs with the same x264 settings.
//! 5. Prints wall times, ratios and peak RSS (the process's own `VmHWM`), and writes them to
//!    `--work/results.json`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, ensure, Context as _};
use clap::Parser;
use sd_fixtures::{write_bundle, Naming, SyntheticSpec};
use serde_json::{json, Value};

const WALLET: &str = "Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR";

#[derive(Debug, Parser)]
#[command(
    name = "sd-bench",
    about = "Benchmark `scale-diffusion process` against ffmpeg"
)]
struct Args {
    /// Where bundles and outputs go.
    #[arg(long, default_value = "target/bench")]
    work: PathBuf,
    /// Timed runs of each command on the 60 s bundle (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Skip the 10-minute bundle.
    #[arg(long)]
    skip_long: bool,
    /// The `scale-diffusion` binary (default: beside this one).
    #[arg(long)]
    bin: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = match &args.bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no folder beside sd-bench")?
            .join("scale-diffusion"),
    };
    ensure!(
        bin.is_file(),
        "{} not found: run `cargo build --release --locked --bins` first",
        bin.display()
    );
    std::fs::create_dir_all(&args.work)?;
    let short = bundle_60s(&args.work)?;
    let video = find_part(&short.join(WALLET), ".webm")?;
    let video_mb = std::fs::metadata(&video)?.len() as f64 / 1e6;
    eprintln!("bench: {} ({video_mb:.1} MB)", video.display());

    let mut decode = Vec::new();
    let mut extract = Vec::new();
    let mut process = Vec::new();
    let mut rss_60s = Vec::new();
    for run in 0..args.runs.max(1) {
        eprintln!("run {}/{}", run + 1, args.runs.max(1));
        decode.push(time(
            Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(&video)
                .args(["-f", "null", "-"]),
        )?);
        let frames = args.work.join("ffmpeg-frames");
        reset_dir(&frames)?;
        extract.push(time(
            Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(&video)
                .args(["-q:v", "3"])
                .arg(frames.join("%05d.jpg")),
        )?);
        let (seconds, summary) = run_process(&bin, &short, &args.work.join("out-60s"))?;
        let session = &summary["sessions"][0];
        ensure!(
            session["status"] == "accepted" && session["frames"] == 1800,
            "the 60 s bundle was not processed whole: {session}"
        );
        process.push(seconds);
        rss_60s.push(summary["peak_rss_kb"].as_f64().unwrap_or(f64::NAN) / 1024.0);
    }
    let (decode, extract, process) = (
        median(&mut decode),
        median(&mut extract),
        median(&mut process),
    );
    let rss_60s = median(&mut rss_60s);

    let exports = bench_exports(&bin, &args.work, args.runs.max(1))?;

    let long = if args.skip_long {
        None
    } else {
        let raw = bundle_10min(&args.work, &short)?;
        let (seconds, summary) = run_process(&bin, &raw, &args.work.join("out-10min"))?;
        let session = &summary["sessions"][0];
        let frames: u64 = session["frames"].as_u64().unwrap_or(0);
        // A rejected bundle is never decoded: its RSS would say nothing.
        ensure!(
            session["status"] == "accepted" && frames >= 17_000,
            "the 10-minute bundle was not processed whole: {session}"
        );
        Some((
            seconds,
            summary["peak_rss_kb"].as_f64().unwrap_or(f64::NAN) / 1024.0,
            frames,
        ))
    };

    let results = json!({
        "video": video,
        "video_mb": video_mb,
        "runs": args.runs,
        "ffmpeg_decode_s": decode,
        "ffmpeg_decode_jpeg_s": extract,
        "process_s": process,
        "process_over_ffmpeg_decode_jpeg": process / extract,
        "process_over_ffmpeg_decode": process / decode,
        "process_peak_rss_mb_60s": rss_60s,
        "export": exports.to_json(process),
        "process_10min": long.map(|(s, rss, frames)| json!({"seconds": s, "peak_rss_mb": rss, "frames": frames})),
    });
    std::fs::write(
        args.work.join("results.json"),
        serde_json::to_vec_pretty(&results)?,
    )?;

    println!(
        "60 s, 30 fps, 1280x720 VP8 bundle ({video_mb:.1} MB), median of {} run(s), this machine:",
        args.runs.max(1)
    );
    println!("  ffmpeg -i X -f null -               {decode:>7.2} s   (decode only)");
    println!("  ffmpeg -i X -q:v 3 frames/%05d.jpg  {extract:>7.2} s   (decode + JPEG)");
    println!("  scale-diffusion process             {process:>7.2} s");
    println!(
        "  ratio process / ffmpeg decode+JPEG  {:>7.2}     (target <= 1.00)",
        process / extract
    );
    println!(
        "  ratio process / ffmpeg decode only  {:>7.2}",
        process / decode
    );
    println!("  peak RSS, 60 s bundle               {rss_60s:>7.1} MB (target < 200 MB)");
    exports.print(process);
    if let Some((seconds, rss, frames)) = long {
        println!("  peak RSS, 10 min bundle             {rss:>7.1} MB ({frames} frames in {seconds:.1} s)");
    }
    println!("(written to {})", args.work.join("results.json").display());
    Ok(())
}

/// Export timings (medians, s) of the 60 s bundle's clean layout.
#[derive(Debug)]
struct Exports {
    frames: u64,
    lerobot: f64,
    webdataset_jpg: f64,
    webdataset_mp4: f64,
    ffmpeg_x264: f64,
}

impl Exports {
    fn to_json(&self, process: f64) -> Value {
        let fps = |s: f64| self.frames as f64 / s;
        json!({
            "frames": self.frames,
            "lerobot_s": self.lerobot, "lerobot_fps": fps(self.lerobot),
            "webdataset_jpg_s": self.webdataset_jpg, "webdataset_jpg_fps": fps(self.webdataset_jpg),
            "webdataset_mp4_s": self.webdataset_mp4, "webdataset_mp4_fps": fps(self.webdataset_mp4),
            "ffmpeg_x264_s": self.ffmpeg_x264,
            "lerobot_over_process": self.lerobot / process,
            "lerobot_over_ffmpeg_x264": self.lerobot / self.ffmpeg_x264,
        })
    }

    fn print(&self, process: f64) {
        let fps = |s: f64| self.frames as f64 / s;
        println!("export of its clean layout ({} frames):", self.frames);
        println!(
            "  ffmpeg JPEGs -> x264 veryfast MP4     {:>7.2} s   {:>6.0} frames/s (reference)",
            self.ffmpeg_x264,
            fps(self.ffmpeg_x264)
        );
        for (name, s) in [
            ("export --format lerobot          ", self.lerobot),
            ("export --format webdataset       ", self.webdataset_jpg),
            ("export --format webdataset (mp4) ", self.webdataset_mp4),
        ] {
            println!(
                "  {name}    {s:>7.2} s   {:>6.0} frames/s, {:.2} x process, {:.2} x ffmpeg",
                fps(s),
                s / process,
                s / self.ffmpeg_x264
            );
        }
    }
}

fn bench_exports(bin: &Path, work: &Path, runs: usize) -> anyhow::Result<Exports> {
    let clean = work.join("out-60s").join("clean");
    let frames_dir = std::fs::read_dir(clean.join(WALLET))?
        .next()
        .context("no session in the clean layout")??
        .path();
    let mut jpegs: Vec<PathBuf> = Vec::new();
    for segment in std::fs::read_dir(&frames_dir)? {
        let frames = segment?.path().join("frames");
        if frames.is_dir() {
            for frame in std::fs::read_dir(frames)? {
                jpegs.push(frame?.path());
            }
        }
    }
    jpegs.sort();
    ensure!(!jpegs.is_empty(), "no published frame to export");
    // The reference: the same JPEGs through ffmpeg's own image reader and libx264, same settings.
    // Absolute paths: ffmpeg's concat reader takes relative ones from the list's own folder.
    let list = std::path::absolute(work.join("export-frames.txt"))?;
    let jpegs: Vec<PathBuf> = jpegs
        .iter()
        .map(std::path::absolute)
        .collect::<Result<_, _>>()?;
    let lines: String = jpegs
        .iter()
        .map(|p| format!("file '{}'\nduration 0.0333333\n", p.display()))
        .collect();
    std::fs::write(&list, lines)?;
    let mut timings: [Vec<f64>; 4] = Default::default();
    for _ in 0..runs {
        let reference = work.join("export-ffmpeg.mp4");
        timings[0].push(time(
            Command::new("ffmpeg")
                .args(["-v", "error", "-y", "-f", "concat", "-safe", "0", "-i"])
                .arg(&list)
                .args([
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-bf", "0", "-g", "30",
                    "-pix_fmt", "yuvj420p",
                ])
                .arg(&reference),
        )?);
        for (i, extra) in [
            &["--format", "lerobot"][..],
            &["--format", "webdataset"][..],
            &["--format", "webdataset", "--frames", "mp4"][..],
        ]
        .into_iter()
        .enumerate()
        {
            let out = work.join(format!("export-{i}"));
            let _ = std::fs::remove_dir_all(&out);
            timings[i + 1].push(time(
                Command::new(bin)
                    .arg("export")
                    .args(extra)
                    .arg(&clean)
                    .arg(&out)
                    .stdout(std::process::Stdio::null()),
            )?);
        }
    }
    let [mut reference, mut lerobot, mut jpg, mut mp4] = timings;
    Ok(Exports {
        frames: jpegs.len() as u64,
        lerobot: median(&mut lerobot),
        webdataset_jpg: median(&mut jpg),
        webdataset_mp4: median(&mut mp4),
        ffmpeg_x264: median(&mut reference),
    })
}

fn time(command: &mut Command) -> anyhow::Result<f64> {
    let started = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    ensure!(status.success(), "{command:?} failed: {status}");
    Ok(started.elapsed().as_secs_f64())
}

fn run_process(bin: &Path, raw: &Path, out: &Path) -> anyhow::Result<(f64, Value)> {
    let _ = std::fs::remove_dir_all(out);
    let started = Instant::now();
    let output = Command::new(bin)
        .arg("process")
        .arg(raw)
        .arg("--out")
        .arg(out.join("clean"))
        .arg("--review")
        .arg(out.join("review"))
        .arg("--ledger")
        .arg(out.join("ledger.sqlite"))
        .arg("--json")
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "scale-diffusion process failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let summary: Value = serde_json::from_slice(&output.stdout).context("process --json")?;
    Ok((seconds, summary))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn reset_dir(dir: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    Ok(())
}

fn find_part(folder: &Path, suffix: &str) -> anyhow::Result<PathBuf> {
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path();
        let name = path.to_string_lossy();
        if name.ends_with(suffix) && !name.ends_with("_truth.json") {
            return Ok(path);
        }
    }
    bail!("no *{suffix} in {}", folder.display())
}

/// The 60 s bundle, generated once (about two minutes) and kept.
fn bundle_60s(work: &Path) -> anyhow::Result<PathBuf> {
    let raw = work.join("raw-60s");
    let done = work.join("raw-60s.complete");
    if done.is_file() {
        return Ok(raw);
    }
    let _ = std::fs::remove_dir_all(&raw);
    eprintln!("generating the 60 s, 30 fps, 1280x720 bundle (takes a few minutes)...");
    let mut spec = SyntheticSpec::constant_rate(60.0, 30.0).with_size(1280, 720);
    spec.wallet = WALLET.to_owned();
    let written = write_bundle(&raw.join(WALLET), &spec, Naming::UploadEpoch)?;
    std::fs::remove_file(&written.truth)?;
    std::fs::write(&done, b"")?;
    Ok(raw)
}

/// Ten minutes from the 60 s bundle: the same drive ten times over.
fn bundle_10min(work: &Path, short: &Path) -> anyhow::Result<PathBuf> {
    const LOOPS: usize = 10;
    let raw = work.join("raw-10min");
    let done = work.join("raw-10min.complete");
    if done.is_file() {
        return Ok(raw);
    }
    let _ = std::fs::remove_dir_all(&raw);
    let from = short.join(WALLET);
    let to = raw.join(WALLET);
    std::fs::create_dir_all(&to)?;
    let video = find_part(&from, ".webm")?;
    let video_name = video.file_name().context("video name")?;
    time(
        Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-stream_loop",
                &(LOOPS - 1).to_string(),
                "-i",
            ])
            .arg(&video)
            .args(["-c", "copy", "-f", "webm"])
            .arg(to.join(video_name)),
    )?;
    let period_ms = 60_000.0;
    let shift_times = |items: &Vec<Value>| -> Vec<Value> {
        (0..LOOPS)
            .flat_map(|k| {
                items.iter().map(move |item| {
                    let mut item = item.clone();
                    if let Some(t) = item["t"].as_f64() {
                        item["t"] = json!(t + k as f64 * period_ms);
                    }
                    item
                })
            })
            .collect()
    };
    for suffix in [
        "_inputs.json",
        "_camera.json",
        "_latency.json",
        "_meta.json",
    ] {
        let path = find_part(&from, suffix)?;
        let mut value: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        match suffix {
            "_latency.json" => {
                if let Some(samples) = value["rttSamples"].as_array() {
                    value["rttSamples"] = Value::Array(shift_times(samples));
                }
            }
            "_meta.json" => {
                if let Some(duration) = value["duration"].as_f64() {
                    value["duration"] = json!(duration * LOOPS as f64);
                }
                if let Some(end) = value["endTime"].as_f64() {
                    value["endTime"] = json!(end + (LOOPS - 1) as f64 * period_ms);
                }
            }
            _ => {
                if let Some(items) = value.as_array() {
                    value = Value::Array(shift_times(items));
                }
            }
        }
        std::fs::write(
            to.join(path.file_name().context("part name")?),
            serde_json::to_vec(&value)?,
        )?;
    }
    std::fs::write(&done, b"")?;
    Ok(raw)
}
