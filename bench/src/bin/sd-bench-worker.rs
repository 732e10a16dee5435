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
//! 3. Starts moto (the S3+SQS emulator) on 127.0.0.1 and `scale-diffusion-server setup`, then 1
//!    and then 2 workers; times from the first upload (plain HTTP PUTs, parts in the browser's
//!    order) until every session is recorded. The emulators are restarted between runs, so each
//!    run starts empty.
//! 4. Does so twice (`--s3`): with moto as the S3 too (its event notifications drive the queue),
//!    and with s3s-fs as the S3, in this process, its objects on tmpfs (`/dev/shm`), the bench
//!    sending each upload's event to moto's queue as S3 would. Real S3 costs this machine
//!    nothing; moto (Python) costs it about 10 s CPU per session, on the same two cores as the
//!    worker, and caps the worker's pace at its own: the throughput target is read from the
//!    s3s-fs runs.
//! 5. Prints wall times and CPU times (the workers' own, and the emulators'), their ratios to
//!    `process`, and writes them to `--work/worker-results.json`.
//!
//! The workers stage sessions in `--worker-scratch` (default: tmpfs), as deployed
//! (`deploy/README.md`: staging creates and deletes ~1,800 files per session).

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
    /// Port of the emulator on 127.0.0.1 (s3s-fs takes the next one).
    #[arg(long, default_value_t = 4599)]
    port: u16,
    /// Which S3 the workers read and publish to.
    #[arg(long, value_enum, default_value = "both")]
    s3: S3Choice,
    /// Where the workers stage sessions (`--work-dir`); on disk, every staged file costs the
    /// kernel a file creation and a deletion.
    #[arg(long, default_value = "/dev/shm/sd-bench-worker")]
    worker_scratch: PathBuf,
    /// Where s3s-fs keeps its objects (about 330 MB per session).
    #[arg(long, default_value = "/dev/shm/sd-bench-s3")]
    s3_root: PathBuf,
    /// Sessions each worker works on at once (`--sessions-at-once`).
    #[arg(long, default_value_t = 2)]
    sessions_at_once: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum S3Choice {
    Both,
    /// s3s-fs in this process; moto serves only the queue.
    S3sFs,
    /// moto serves the buckets too.
    Moto,
}

/// The S3 of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum S3Server {
    S3sFs,
    Moto,
}

impl S3Server {
    fn name(self) -> &'static str {
        match self {
            S3Server::S3sFs => "s3s-fs",
            S3Server::Moto => "moto",
        }
    }
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

    let servers = match args.s3 {
        S3Choice::Both => vec![S3Server::S3sFs, S3Server::Moto],
        S3Choice::S3sFs => vec![S3Server::S3sFs],
        S3Choice::Moto => vec![S3Server::Moto],
    };
    let mut report = format!(
        "{n} one-minute sessions (60 s, 30 fps, 1280x720), this machine, {k} sessions at once per worker:\n\
         process                          {process_s:7.1} s wall              {process_cpu_s:7.1} s CPU\n",
        n = args.sessions,
        k = args.sessions_at_once,
    );
    let mut runs = Vec::new();
    for s3 in servers {
        for workers in [1, 2] {
            let run = through_queue(&args, &server, &wallet_dir, workers, s3)?;
            eprintln!("{workers} worker(s), S3 {}: {run:?}", s3.name());
            report.push_str(&format!(
                "{workers} worker{plural} via queue, S3 {s3:<6} {:7.1} s wall (ratio {:.2})  {:7.1} s CPU in the worker{plural} (ratio {:.2}), {:.1} s CPU in the S3 emulator, {:.1} s in moto\n",
                run.wall_s,
                run.wall_s / process_s,
                run.worker_cpu_s,
                run.worker_cpu_s / process_cpu_s,
                run.s3_cpu_s,
                run.moto_cpu_s,
                plural = if workers == 1 { "" } else { "s" },
                s3 = s3.name(),
            ));
            runs.push(json!({
                "workers": workers,
                "s3": s3.name(),
                "wall_s": run.wall_s,
                "ratio": run.wall_s / process_s,
                "worker_cpu_s": run.worker_cpu_s,
                "cpu_ratio": run.worker_cpu_s / process_cpu_s,
                "s3_cpu_s": run.s3_cpu_s,
                "moto_cpu_s": run.moto_cpu_s,
            }));
        }
    }
    report.push_str(
        "target: 1 worker within 15% of process (ratio <= 1.15), read from the s3s-fs run",
    );
    println!("{report}");
    let doc = json!({
        "sessions": args.sessions,
        "sessions_at_once": args.sessions_at_once,
        "process_s": process_s,
        "process_cpu_s": process_cpu_s,
        "runs": runs,
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
    /// CPU time of the S3 emulator: moto's, or s3s-fs's (this process's own, with its uploads).
    s3_cpu_s: f64,
    /// CPU time of moto (Python), whichever role it plays: what real S3 and SQS would not cost
    /// this machine.
    moto_cpu_s: f64,
}

/// `workers` workers through the queue on fresh emulators.
fn through_queue(
    args: &Args,
    server: &Path,
    wallet_dir: &Path,
    workers: usize,
    s3: S3Server,
) -> anyhow::Result<QueueRun> {
    let dir = args
        .work
        .join(format!("worker-bench-{workers}-{}", s3.name()));
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
    let s3s = match s3 {
        S3Server::S3sFs => Some(S3sFs::start(args.port + 1, &args.s3_root)?),
        S3Server::Moto => None,
    };
    let s3_endpoint = match &s3s {
        Some(s3s) => format!("http://127.0.0.1:{}", s3s.port),
        None => endpoint.clone(),
    };
    let ledger = dir.join("ledger.sqlite");
    let ledger_text = ledger.display().to_string();
    reset_dir(&args.worker_scratch)?;
    let mut children = Vec::new();
    for n in 0..workers {
        let work = args.worker_scratch.join(format!("work-{n}"));
        let name = format!("bench-{n}");
        let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
        children.push(Killed(
            run(&[
                "worker",
                "--name",
                &name,
                "--ledger",
                &ledger_text,
                "--wait",
                "1s",
                "--sessions-at-once",
                &args.sessions_at_once.to_string(),
            ])
            .arg("--work-dir")
            .arg(&work)
            .env("AWS_ENDPOINT_URL_S3", &s3_endpoint)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
        ));
    }
    // Let the workers open the ledger and start polling.
    std::thread::sleep(Duration::from_secs(1));
    let parts = sd_fixtures::upload_order(wallet_dir)?;
    let expected = parts.len();
    let own_cpu_before = process_cpu_s(std::process::id())?;
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
        let key = format!("{WALLET}/{name}");
        ureq::put(&format!("{s3_endpoint}/sd-raw/{key}"))
            .header("content-type", content_type)
            .send(&bytes[..])
            .with_context(|| format!("PUT {name}"))?;
        if s3s.is_some() {
            // What S3 sends the queue for an upload (moto does it itself).
            send_event(&endpoint, &key, bytes.len())?;
        }
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
    let moto_cpu_s = process_cpu_s(moto_pid)?;
    let s3_cpu_s = match s3 {
        S3Server::S3sFs => process_cpu_s(std::process::id())? - own_cpu_before,
        S3Server::Moto => moto_cpu_s,
    };
    drop(children);
    drop(s3s);
    drop(moto);
    let _ = std::fs::remove_dir_all(&args.worker_scratch);
    Ok(QueueRun {
        wall_s,
        worker_cpu_s,
        s3_cpu_s,
        moto_cpu_s,
    })
}

/// An S3 event notification for one uploaded object, sent to the queue `setup` made on moto
/// (SQS's JSON protocol; moto checks no signature).
fn send_event(endpoint: &str, key: &str, size: usize) -> anyhow::Result<()> {
    let event = json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "sd-raw"}, "object": {"key": key, "size": size}},
    }]});
    let request = json!({
        "QueueUrl": format!("{endpoint}/123456789012/sd-raw-events"),
        "MessageBody": event.to_string(),
    });
    ureq::post(&format!("{endpoint}/"))
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", "AmazonSQS.SendMessage")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=00",
        )
        .send(request.to_string().as_bytes())
        .context("SendMessage to the queue")?;
    Ok(())
}

/// s3s-fs serving `root` on 127.0.0.1:`port` from a runtime of its own in this process;
/// stopped, and its objects removed, when dropped. The workers sign with the bench's key; the
/// bench's own uploads go unsigned, as a presigned URL's would be checked elsewhere.
struct S3sFs {
    port: u16,
    root: PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
}

impl S3sFs {
    fn start(port: u16, root: &Path) -> anyhow::Result<Self> {
        reset_dir(root)?;
        for bucket in ["sd-raw", "sd-clean"] {
            std::fs::create_dir_all(root.join(bucket))?;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3s-fs")
            .enable_io()
            .build()?;
        let fs = s3s_fs::FileSystem::new(root).map_err(|err| anyhow::anyhow!("s3s-fs: {err:?}"))?;
        let service = {
            let mut builder = s3s::service::S3ServiceBuilder::new(fs);
            builder.set_auth(s3s::auth::SimpleAuth::from_single("bench", "bench"));
            builder.set_access(AnyoneMayPut);
            builder.build()
        };
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .with_context(|| format!("s3s-fs cannot listen on 127.0.0.1:{port}"))?;
        runtime.spawn(async move {
            let http =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let connection = http
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
        });
        Ok(Self {
            port,
            root: root.to_path_buf(),
            runtime: Some(runtime),
        })
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Signed requests (the workers') may do anything; unsigned ones only upload.
struct AnyoneMayPut;

#[async_trait::async_trait]
impl s3s::access::S3Access for AnyoneMayPut {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        if cx.credentials().is_some() || cx.s3_op().name() == "PutObject" {
            Ok(())
        } else {
            Err(s3s::s3_error!(AccessDenied, "sign the request"))
        }
    }
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
