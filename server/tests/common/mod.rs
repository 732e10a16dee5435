//! The server's test harness: a real S3+SQS emulator (moto in server mode) on 127.0.0.1, started
//! by `scripts/moto.sh` for each test, `setup` run against it, worker processes, plain HTTP PUTs
//! into the raw bucket and reads of the clean bucket.
//!
//! When moto is not installed (`scripts/moto.sh install`, which `./test.sh` runs) a test prints
//! `SKIPPED` and returns; with `SD_REQUIRE_EMULATOR=1` (CI sets it) that is a failure instead.

#![allow(dead_code, unused_imports)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sd_core::{Location, SessionManifest, MANIFEST_FILE};
use serde_json::Value;

pub use sd_tests::moto::Moto;
pub use sd_tests::{real_sessions, report_figure, workspace_root, REAL_WALLET};

pub const SERVER: &str = env!("CARGO_BIN_EXE_scale-diffusion-server");

/// A ledger the tests name: a SQLite file (a path) or a PostgreSQL database (a location).
pub trait LedgerAt {
    fn location(&self) -> sd_ledger::LedgerLocation;
}

impl LedgerAt for Path {
    fn location(&self) -> sd_ledger::LedgerLocation {
        sd_ledger::LedgerLocation::Sqlite(self.to_owned())
    }
}

impl LedgerAt for PathBuf {
    fn location(&self) -> sd_ledger::LedgerLocation {
        sd_ledger::LedgerLocation::Sqlite(self.clone())
    }
}

impl LedgerAt for sd_ledger::LedgerLocation {
    fn location(&self) -> sd_ledger::LedgerLocation {
        self.clone()
    }
}

/// The emulator with what the server's tests do with it: the server's commands, workers, plain
/// HTTP PUTs and GETs.
#[derive(Debug)]
pub struct Emulator {
    moto: Moto,
}

impl std::ops::Deref for Emulator {
    type Target = Moto;
    fn deref(&self) -> &Moto {
        &self.moto
    }
}

impl Emulator {
    /// Starts moto, or `None` after saying plainly that `test` is skipped.
    pub fn start(test: &str, dir: &Path) -> Option<Self> {
        Moto::start(test, dir).map(|moto| Self { moto })
    }

    /// A command of the server's binary against this emulator.
    pub fn server(&self, args: &[&str]) -> Command {
        let mut command = Command::new(SERVER);
        command
            .args(args)
            .envs(self.sdk_env())
            .env_remove("AWS_PROFILE")
            .env("RUST_LOG", "info,aws=warn");
        sd_tests::without_otel(&mut command);
        command
    }

    /// Runs `setup` and checks it succeeded.
    pub fn setup(&self, extra: &[&str]) {
        let mut args = vec!["setup"];
        args.extend(extra);
        let out = self.server(&args).output().expect("run setup");
        assert!(
            out.status.success(),
            "setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts a worker process; its log goes to `dir/{name}.log`.
    pub fn worker(
        &self,
        name: &str,
        ledger: &(impl LedgerAt + ?Sized),
        work: &Path,
        extra: &[&str],
    ) -> Worker {
        self.worker_with_env(name, ledger, work, extra, &[])
    }

    /// [`Emulator::worker`] with extra environment variables (test hooks).
    pub fn worker_with_env(
        &self,
        name: &str,
        ledger: &(impl LedgerAt + ?Sized),
        work: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Worker {
        let log_path = self.dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).expect("worker log");
        let ledger = ledger.location().as_arg();
        let work = work.join(name).display().to_string();
        let mut args = vec![
            "worker",
            "--name",
            name,
            "--ledger",
            &ledger,
            "--work-dir",
            &work,
            "--wait",
            "1s",
        ];
        // Test defaults, unless the test sets its own.
        for (flag, value) in [("--heartbeat", "2s"), ("--lease", "20s")] {
            if !extra.contains(&flag) {
                args.extend([flag, value]);
            }
        }
        args.extend(extra);
        let mut command = self.server(&args);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start worker");
        Worker {
            child,
            log: log_path,
        }
    }

    /// `PUT`s `bytes` at `key` in `bucket` over plain HTTP, as a browser with a presigned URL
    /// would (moto checks no signature).
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8], content_type: &str) {
        let url = format!("{}/{bucket}/{key}", self.endpoint);
        let mut last = String::new();
        for _ in 0..5 {
            // moto checks no signature, but refuses an anonymous PUT over an existing key: any
            // Authorization header makes the request a signed one to it.
            match ureq::put(&url)
                .header("content-type", content_type)
                .header("authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00")
                .send(bytes)
            {
                Ok(_) => return,
                Err(err) => {
                    last = err.to_string();
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
        }
        panic!("PUT {url}: {last}");
    }

    /// `GET`s an object of `bucket`, `None` when there is none.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let url = format!("{}/{bucket}/{key}", self.endpoint);
        match ureq::get(&url)
            .header("authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00")
            .call()
        {
            Ok(mut response) => Some(
                response
                    .body_mut()
                    .with_config()
                    .limit(256 * 1024 * 1024)
                    .read_to_vec()
                    .expect("read body"),
            ),
            Err(ureq::Error::StatusCode(404)) => None,
            Err(err) => panic!("GET {url}: {err}"),
        }
    }

    /// `DELETE`s an object of `bucket` (there or not).
    pub fn delete(&self, bucket: &str, key: &str) {
        let url = format!("{}/{bucket}/{key}", self.endpoint);
        ureq::delete(&url)
            .header("authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00")
            .call()
            .unwrap_or_else(|err| panic!("DELETE {url}: {err}"));
    }

    /// Every key of `bucket` under `prefix` (ListObjectsV2 over plain HTTP, page by page).
    pub fn list_keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!("{}/{bucket}?list-type=2&prefix={prefix}", self.endpoint);
            if let Some(token) = &token {
                let token = percent_encoding::utf8_percent_encode(
                    token,
                    percent_encoding::NON_ALPHANUMERIC,
                );
                url += &format!("&continuation-token={token}");
            }
            let body = ureq::get(&url)
                .header("authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00")
                .call()
                .and_then(|mut response| response.body_mut().read_to_string())
                .unwrap_or_else(|err| panic!("GET {url}: {err}"));
            keys.extend(xml_values(&body, "Key"));
            token = xml_values(&body, "NextContinuationToken")
                .into_iter()
                .next();
            if token.is_none() {
                return keys;
            }
        }
    }

    /// `status --json` of the server.
    pub fn status(&self, ledger: &(impl LedgerAt + ?Sized)) -> serde_json::Value {
        let ledger = ledger.location().as_arg();
        let out = self
            .server(&["status", "--json", "--ledger", &ledger])
            .output()
            .expect("run status");
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// Sends an S3 event notification body to the queue directly (SQS's JSON protocol), as S3
    /// would send a duplicate.
    pub fn send_event(&self, body: &str) {
        let request = serde_json::json!({
            "QueueUrl": format!("{}/123456789012/sd-raw-events", self.endpoint),
            "MessageBody": body,
        });
        ureq::post(&format!("{}/", self.endpoint))
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", "AmazonSQS.SendMessage")
            .header("authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=00")
            .send(request.to_string().as_bytes())
            .expect("SendMessage");
    }

    /// Each session's last event (its meta part's) `times` more, as S3 and SQS may deliver an
    /// event more than once.
    pub fn send_meta_events(&self, sessions: &[(String, Vec<PathBuf>)], times: usize) {
        for (_, parts) in sessions {
            let meta = parts.last().expect("meta part");
            let name = meta.file_name().expect("name").to_string_lossy();
            let body = serde_json::json!({"Records": [{
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "sd-raw"},
                       "object": {"key": format!("{REAL_WALLET}%2F{name}")}}
            }]})
            .to_string();
            for _ in 0..times {
                self.send_event(&body);
            }
        }
    }

    /// `status` as an operator reads it.
    pub fn status_text(&self, ledger: &(impl LedgerAt + ?Sized)) -> String {
        let ledger = ledger.location().as_arg();
        let out = self
            .server(&["status", "--ledger", &ledger])
            .output()
            .expect("run status");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the queue is empty (nothing waiting, nothing in flight) and `done` holds.
    pub fn wait_until(
        &self,
        ledger: &(impl LedgerAt + ?Sized),
        timeout: Duration,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let status = self.status(ledger);
            let drained = status["queue"]["visible"] == 0 && status["queue"]["in_flight"] == 0;
            if drained && done(&status) {
                return status;
            }
            assert!(
                started.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; last status: {status:#}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// A worker process, killed when dropped.
#[derive(Debug)]
pub struct Worker {
    pub child: Child,
    pub log: PathBuf,
}

impl Worker {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait worker")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh folder for one test under the target folder, kept after the run for a look.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = workspace_root()
        .join("target")
        .join("server-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    dir
}

/// The parts of the bundles under `wallet_dir`, in the order the browser uploads them (video
/// first, meta last), grouped by session.
pub fn upload_order(wallet_dir: &Path) -> Vec<(String, Vec<PathBuf>)> {
    sd_fixtures::upload_order(wallet_dir).expect("bundle folder")
}

/// Uploads every part of these sessions to the raw bucket under `wallet`, browser order.
pub fn upload(emulator: &Emulator, wallet: &str, sessions: &[(String, Vec<PathBuf>)]) {
    for (_, parts) in sessions {
        for path in parts {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = std::fs::read(path).expect("read part");
            let content_type = if name.ends_with(".webm") {
                "video/webm"
            } else {
                "application/json"
            };
            emulator.put("sd-raw", &format!("{wallet}/{name}"), &bytes, content_type);
        }
    }
}

/// The real sessions plus one synthetic session, as one raw wallet folder.
pub fn raw_bundles(dir: &Path, real: &Path) -> PathBuf {
    let wallet_dir = dir.join("raw").join(REAL_WALLET);
    std::fs::create_dir_all(&wallet_dir).expect("raw dir");
    for entry in std::fs::read_dir(real).expect("real sessions") {
        let path = entry.expect("entry").path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, wallet_dir.join(name)).expect("copy");
        }
    }
    let mut spec = sd_fixtures::SyntheticSpec::constant_rate_seeded(12.0, 10.0, 31);
    spec.wallet = REAL_WALLET.to_owned();
    let written = sd_fixtures::write_bundle(&wallet_dir, &spec, sd_fixtures::Naming::UploadEpoch)
        .expect("synthetic bundle");
    std::fs::remove_file(&written.truth).expect("drop the truth file");
    wallet_dir
}

/// What `scale-diffusion process` does, in process: the same `sd_core::process_session` with the
/// local layout and the SQLite ledger.
pub fn process_locally(wallet_dir: &Path, out: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let clean = out.join("clean");
    let review = out.join("review");
    let ledger_path = out.join("ledger.sqlite");
    let mut layout =
        sd_core::OutputLayout::open(&clean, &review, &out.join(".work")).expect("layout");
    let mut ledger = sd_ledger::Ledger::open(&ledger_path).expect("ledger");
    let config = sd_core::PipelineConfig::default();
    let rate = config.payout.rate().expect("rate");
    let run = sd_core::RunInfo {
        run_id: "local".into(),
        processed_at: "2026-12-02T00:00:00Z".into(),
    };
    let discovery = sd_core::discover(wallet_dir).expect("discover");
    for (n, source) in discovery.bundles.iter().enumerate() {
        let label = format!("local-{n}");
        let origin = source.folder.display().to_string();
        let job = sd_core::SessionJob {
            source,
            config: &config,
            limits: &sd_core::Limits::default(),
            rate,
            run: &run,
            label: &label,
            origin: &origin,
        };
        sd_core::process_session(job, &mut layout, &mut ledger, |_| {}).expect("process");
    }
    (clean, review, ledger_path)
}

/// A manifest with what differs between runs taken out: the run, and the size and checksum of
/// the files that carry the run's id and time (`session.json`, `report.html`, `quality.json`).
pub fn comparable(manifest: &SessionManifest) -> Value {
    let mut value = serde_json::to_value(manifest).expect("manifest JSON");
    value["run"] = Value::Null;
    let strip = |objects: &mut Value| {
        for object in objects.as_array_mut().into_iter().flatten() {
            let path = object["path"].as_str().unwrap_or_default().to_owned();
            if path.ends_with("session.json")
                || path.ends_with("report.html")
                || path.ends_with("quality.json")
            {
                object["sha256"] = Value::Null;
                object["bytes"] = Value::Null;
            }
        }
    };
    strip(&mut value["files"]);
    for segment in value["segments"].as_array_mut().into_iter().flatten() {
        strip(&mut segment["objects"]);
    }
    value
}

pub fn local_manifest(root: &Path, session: &str) -> Option<SessionManifest> {
    let path = root.join(REAL_WALLET).join(session).join(MANIFEST_FILE);
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).expect("local manifest"))
}

pub fn bucket_manifest(
    emulator: &Emulator,
    location: Location,
    session: &str,
) -> Option<SessionManifest> {
    let prefix = match location {
        Location::Clean => format!("{REAL_WALLET}/{session}/"),
        Location::Review => format!("review/{REAL_WALLET}/{session}/"),
    };
    let bytes = emulator.get("sd-clean", &format!("{prefix}{MANIFEST_FILE}"))?;
    let manifest: SessionManifest = serde_json::from_slice(&bytes).expect("bucket manifest");
    // Every object the manifest lists is in the bucket, with that size and checksum.
    for object in manifest.objects() {
        let body = emulator
            .get("sd-clean", &format!("{prefix}{}", object.path))
            .unwrap_or_else(|| panic!("{prefix}{} is listed but absent", object.path));
        assert_eq!(
            sd_core::ManifestObject::of_bytes(&object.path, &body),
            *object,
            "{prefix}{}",
            object.path
        );
    }
    Some(manifest)
}

pub fn totals(ledger: &(impl LedgerAt + ?Sized)) -> Vec<(String, usize, usize, i64)> {
    let ledger = sd_ledger::Ledger::open_at(&ledger.location()).expect("ledger");
    ledger
        .wallet_totals()
        .expect("totals")
        .into_iter()
        .map(|t| {
            (
                t.wallet_address,
                t.valid_segments,
                t.total_frames,
                t.payout_lamports.0,
            )
        })
        .collect()
}

pub fn session_states(status: &Value) -> BTreeMap<String, u64> {
    status["sessions"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect()
}

pub fn times_processed(ledger: &(impl LedgerAt + ?Sized)) -> Vec<(String, u64)> {
    let ledger = sd_ledger::Ledger::open_at(&ledger.location()).expect("ledger");
    ledger
        .sessions()
        .expect("sessions")
        .into_iter()
        .map(|s| (s.session_id, s.times_processed))
        .collect()
}

/// Compares every session's manifests in the bucket with the local layout's (apart from run ids
/// and times); returns how many manifests were compared.
pub fn compare_with_local(
    emulator: &Emulator,
    sessions: &[String],
    clean: &Path,
    review: &Path,
) -> usize {
    let mut compared = 0;
    for session in sessions {
        for (location, root) in [(Location::Clean, clean), (Location::Review, review)] {
            let local = local_manifest(root, session);
            let remote = bucket_manifest(emulator, location, session);
            match (&local, &remote) {
                (Some(local), Some(remote)) => {
                    assert_eq!(
                        comparable(local),
                        comparable(remote),
                        "{session} {location:?}"
                    );
                    compared += 1;
                }
                (None, None) => {}
                _ => panic!(
                    "{session} {location:?}: local manifest {}, bucket manifest {}",
                    local.is_some(),
                    remote.is_some()
                ),
            }
        }
    }
    compared
}

/// Synthetic sessions (no real data needed) in one raw wallet folder: `seconds` long each at
/// `fps`, seeds from `seed`.
pub fn synthetic_bundles(dir: &Path, count: usize, seconds: f64, fps: f64, seed: u64) -> PathBuf {
    let wallet_dir = dir.join("raw").join(REAL_WALLET);
    std::fs::create_dir_all(&wallet_dir).expect("raw dir");
    for n in 0..count {
        let mut spec =
            sd_fixtures::SyntheticSpec::constant_rate_seeded(seconds, fps, seed + n as u64);
        spec.wallet = REAL_WALLET.to_owned();
        let written =
            sd_fixtures::write_bundle(&wallet_dir, &spec, sd_fixtures::Naming::UploadEpoch)
                .expect("synthetic bundle");
        std::fs::remove_file(&written.truth).expect("drop the truth file");
    }
    wallet_dir
}

/// The ledger's record of one session: (status, reject code, reject message, times processed).
pub fn session_row(
    ledger: &(impl LedgerAt + ?Sized),
    session: &str,
) -> Option<sd_ledger::SessionRow> {
    let ledger = sd_ledger::Ledger::open_at(&ledger.location()).expect("ledger");
    ledger
        .sessions()
        .expect("sessions")
        .into_iter()
        .find(|row| row.session_id == session)
}

/// The server's intake row of one session.
pub fn intake_row(ledger: &(impl LedgerAt + ?Sized), session: &str) -> sd_ledger::IntakeRow {
    let ledger = sd_ledger::Ledger::open_at(&ledger.location()).expect("ledger");
    ledger
        .intake(REAL_WALLET, session)
        .expect("intake")
        .expect("an intake row")
}

/// The text of every `<tag>` element of an XML body (S3's listings: keys need no unescaping here).
fn xml_values(body: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    body.split(open.as_str())
        .skip(1)
        .filter_map(|rest| {
            rest.split_once(close.as_str())
                .map(|(value, _)| value.to_owned())
        })
        .collect()
}
