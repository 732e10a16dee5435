//! `sd-bench-worker`: the server's throughput against `scale-diffusion process` on the same
//! bundles, on this machine, in one invocation.
//!
//! ```text
//! cargo build --release --locked --bins && scripts/moto.sh install && ./target/release/sd-bench-worker
//! ```
//!
//! 1. Makes `--sessions` one-minute sessions (60 s, 30 fps, 1280x720): one synthetic bundle from
//!    the fixture generator, copied under new session ids (kept in `--work`).
//! 2. Times `scale-diffusion process` on them (local folders, SQLite).
//! 3. Starts moto (the S3+SQS emulator) on 127.0.0.1, `scale-diffusion-server setup`, then 1 and
//!    then 2 workers; times from the first upload (plain HTTP PUTs, parts in the browser's order)
//!    until every session is recorded. The emulator is restarted between the two, so each run
//!    starts empty.
//! 4. Prints wall times and CPU times (the workers' own, and the emulator's: moto is Python on the
//!    same cores, and real S3 costs this machine nothing of it), their ratios to `process`, and
//!    writes them to `--work/worker-results.json`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use clap::Parser;
use sd_fixtures::{write_bundle, Naming, SyntheticSpec};
use serde_json::{json, Value};

const WALLET: &str = "Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR";

#[derive(Debug, Parser)]
#[command(
    name = "sd-bench-worker",
    about = "The server's workers against `scale-diffusion process` on the same bundles"
)]
struct Args {
    /// Where bundles, outputs and logs go.
    #[arg(long, default_value = "target/bench")]
    work: PathBuf,
    /// One-minute sessions to push through.
    #[arg(long, default_value_t = 20)]
    sessions: usize,
    /// Port of the emulator on 127.0.0.1.
    #[arg(long, default_value_t = 4599)]
    port: u16,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bins = std::env::current_exe()?
        .parent()
        .context("no folder beside sd-bench-worker")?
        .to_path_buf();
    let cli = bins.join("scale-diffusion");
    let server = bins.join("scale-diffusion-server");
    for bin in [&cli, &server] {
        ensure!(
            bin.is_file(),
            "{} not found: run `cargo build --release --locked --bins` first",
            bin.display()
        );
    }
    std::fs::create_dir_all(&args.work)?;
    let raw = sessions(&args.work, args.sessions)?;
    let wallet_dir = raw.join(WALLET);

    // `process` on the same bundles.
    let out = args.work.join("worker-bench-process");
    reset_dir(&out)?;
    let children_before = children_cpu_s()?;
    let started = Instant::now();
    let status = Command::new(&cli)
        .arg("process")
        .arg(&raw)
        .arg("--out")
        .arg(out.join("clean"))
        .arg("--review")
        .arg(out.join("review"))
        .arg("--ledger")
        .arg(out.join("ledger.sqlite"))
        .arg("--quiet")
        .stdout(Stdio::null())
        .status()?;
    ensure!(status.success(), "process failed");
    let process_s = started.elapsed().as_secs_f64();
    let process_cpu_s = children_cpu_s()? - children_before;
    eprintln!("process: {process_s:.1} s, {process_cpu_s:.1} s CPU");

    let one = through_queue(&args, &server, &wallet_dir, 1)?;
    eprintln!("1 worker: {one:?}");
    let two = through_queue(&args, &server, &wallet_dir, 2)?;
    eprintln!("2 workers: {two:?}");
    println!(
        "{n} one-minute sessions (60 s, 30 fps, 1280x720), this machine:\n\
         process             {process_s:7.1} s wall            {process_cpu_s:7.1} s CPU\n\
         1 worker via queue  {:7.1} s wall (ratio {:.2})  {:7.1} s CPU in the worker (ratio {:.2}), {:.1} s CPU in the emulator\n\
         2 workers via queue {:7.1} s wall (ratio {:.2})  {:7.1} s CPU in the workers (ratio {:.2}), {:.1} s CPU in the emulator\n\
         target: 1 worker within 15% of process",
        one.wall_s,
        one.wall_s / process_s,
        one.worker_cpu_s,
        one.worker_cpu_s / process_cpu_s,
        one.emulator_cpu_s,
        two.wall_s,
        two.wall_s / process_s,
        two.worker_cpu_s,
        two.worker_cpu_s / process_cpu_s,
        two.emulator_cpu_s,
        n = args.sessions,
    );
    let doc = json!({
        "sessions": args.sessions,
        "process_s": process_s,
        "process_cpu_s": process_cpu_s,
        "worker_1": one.to_json(),
        "worker_2": two.to_json(),
        "ratio_1": one.wall_s / process_s,
        "ratio_2": two.wall_s / process_s,
        "cpu_ratio_1": one.worker_cpu_s / process_cpu_s,
    });
    std::fs::write(
        args.work.join("worker-results.json"),
        serde_json::to_string_pretty(&doc)? + "\n",
    )?;
    Ok(())
}

/// One run through the queue.
#[derive(Debug, Clone, Copy)]
struct QueueRun {
    /// From the first upload until every session is recorded.
    wall_s: f64,
    /// CPU time of the worker processes (user + system).
    worker_cpu_s: f64,
    /// CPU time of the emulator (moto, Python): what real S3 would not cost this machine.
    emulator_cpu_s: f64,
}

impl QueueRun {
    fn to_json(self) -> Value {
        json!({"wall_s": self.wall_s, "worker_cpu_s": self.worker_cpu_s, "emulator_cpu_s": self.emulator_cpu_s})
    }
}

/// `workers` workers through the queue on a fresh emulator.
fn through_queue(
    args: &Args,
    server: &Path,
    wallet_dir: &Path,
    workers: usize,
) -> anyhow::Result<QueueRun> {
    let dir = args.work.join(format!("worker-bench-{workers}"));
    reset_dir(&dir)?;
    let moto = Moto::start(args.port, &dir)?;
    let endpoint = format!("http://127.0.0.1:{}", args.port);
    let run = |command_args: &[&str]| -> Command {
        let mut command = Command::new(server);
        command
            .args(command_args)
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("RUST_LOG", "warn");
        command
    };
    let status = run(&["setup"]).stdout(Stdio::null()).status()?;
    ensure!(status.success(), "setup failed");
    let ledger = dir.join("ledger.sqlite");
    let ledger_text = ledger.display().to_string();
    let mut children = Vec::new();
    for n in 0..workers {
        let work = dir.join(format!("work-{n}")).display().to_string();
        let name = format!("bench-{n}");
        let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
        children.push(Killed(
            run(&[
                "worker",
                "--name",
                &name,
                "--ledger",
                &ledger_text,
                "--work-dir",
                &work,
                "--wait",
                "1s",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
        ));
    }
    // Let the workers open the ledger and start polling.
    std::thread::sleep(Duration::from_secs(1));
    let parts = sd_fixtures::upload_order(wallet_dir)?;
    let expected = parts.len();
    let started = Instant::now();
    for path in parts.iter().flat_map(|(_, parts)| parts) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(path)?;
        let content_type = if name.ends_with(".webm") {
            "video/webm"
        } else {
            "application/json"
        };
        ureq::put(&format!("{endpoint}/sd-raw/{WALLET}/{name}"))
            .header("content-type", content_type)
            .send(&bytes[..])
            .with_context(|| format!("PUT {name}"))?;
    }
    loop {
        let out = run(&["status", "--json", "--ledger", &ledger_text]).output()?;
        if out.status.success() {
            let status: Value = serde_json::from_slice(&out.stdout)?;
            let count = |state: &str| status["sessions"][state].as_u64().unwrap_or(0);
            if (count("done") + count("rejected")) as usize == expected {
                break;
            }
            if count("failed") > 0 {
                bail!("a session failed: {status:#}");
            }
        }
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("not done after an hour");
        }
        // Each look is a process of its own: not too often, or it costs what it measures.
        std::thread::sleep(Duration::from_secs(1));
    }
    let wall_s = started.elapsed().as_secs_f64();
    let mut worker_cpu_s = 0.0;
    for child in &children {
        worker_cpu_s += process_cpu_s(child.0.id())?;
    }
    let moto_pid: u32 = std::fs::read_to_string(dir.join("moto.pid"))?
        .trim()
        .parse()?;
    let emulator_cpu_s = process_cpu_s(moto_pid)?;
    drop(children);
    drop(moto);
    Ok(QueueRun {
        wall_s,
        worker_cpu_s,
        emulator_cpu_s,
    })
}

/// Clock ticks per second of `/proc` times (Linux's USER_HZ).
const TICKS_PER_S: f64 = 100.0;

/// User + system CPU seconds of a running process (`/proc/PID/stat` fields 14 and 15).
fn process_cpu_s(pid: u32) -> anyhow::Result<f64> {
    stat_seconds(&format!("/proc/{pid}/stat"), [14, 15])
}

/// CPU seconds of this process's waited-for children (`/proc/self/stat` fields 16 and 17).
fn children_cpu_s() -> anyhow::Result<f64> {
    stat_seconds("/proc/self/stat", [16, 17])
}

/// The sum of two clock-tick fields of a `/proc/.../stat` file, in seconds.
fn stat_seconds(path: &str, fields: [usize; 2]) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(path)?;
    // The command name may hold spaces: fields are counted after its closing parenthesis, which
    // ends field 2.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("stat")?;
    let values: Vec<&str> = rest.split_whitespace().collect();
    let mut ticks = 0.0;
    for field in fields {
        ticks += values
            .get(field - 3)
            .context("stat field")?
            .parse::<f64>()?;
    }
    Ok(ticks / TICKS_PER_S)
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// moto on 127.0.0.1 through `scripts/moto.sh`, stopped when dropped.
struct Moto {
    dir: PathBuf,
}

impl Moto {
    fn start(port: u16, dir: &Path) -> anyhow::Result<Self> {
        let status = Command::new("bash")
            .args(["scripts/moto.sh", "start", &port.to_string()])
            .arg(dir)
            .stdout(Stdio::null())
            .status()
            .context("scripts/moto.sh (run from the workspace root)")?;
        ensure!(
            status.success(),
            "moto did not start: run `scripts/moto.sh install` first"
        );
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .args(["scripts/moto.sh", "stop"])
            .arg(&self.dir)
            .status();
    }
}

/// `count` one-minute sessions: one generated bundle, copied under new session ids.
fn sessions(work: &Path, count: usize) -> anyhow::Result<PathBuf> {
    let raw = work.join(format!("raw-{count}x60s"));
    let done = work.join(format!("raw-{count}x60s.complete"));
    if done.is_file() {
        return Ok(raw);
    }
    let template = work.join("raw-worker-template");
    let _ = std::fs::remove_dir_all(&raw);
    let _ = std::fs::remove_dir_all(&template);
    eprintln!("generating a 60 s, 30 fps, 1280x720 bundle (takes a few minutes)...");
    let mut spec = SyntheticSpec::constant_rate(60.0, 30.0).with_size(1280, 720);
    spec.wallet = WALLET.to_owned();
    let written = write_bundle(&template, &spec, Naming::UploadEpoch)?;
    std::fs::remove_file(&written.truth)?;
    let to = raw.join(WALLET);
    std::fs::create_dir_all(&to)?;
    let digits = written
        .session_id
        .strip_prefix("session_")
        .and_then(|rest| rest.split('_').next())
        .context("session id")?
        .to_owned();
    for n in 0..count {
        let session = format!("session_{digits}_bench{n:02}");
        for entry in std::fs::read_dir(&template)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !name.contains(&written.session_id) {
                continue;
            }
            let new_name = name.replace(&written.session_id, &session);
            if name.ends_with("_meta.json") {
                let mut meta: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
                meta["sessionId"] = Value::String(session.clone());
                std::fs::write(to.join(&new_name), serde_json::to_vec(&meta)?)?;
            } else {
                std::fs::copy(&path, to.join(&new_name))?;
            }
        }
    }
    std::fs::remove_dir_all(&template)?;
    std::fs::write(&done, b"")?;
    Ok(raw)
}

fn reset_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_parse_from_proc() {
        // Burn a little CPU so that this process's own time is above zero.
        let mut x = 0u64;
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        let own = process_cpu_s(std::process::id()).expect("own stat");
        assert!(own > 0.0 && own < 3600.0, "{own}");
        let children = children_cpu_s().expect("children stat");
        assert!(children >= 0.0);
    }
}
