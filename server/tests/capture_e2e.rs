//! The capture client end to end in Debian's Chromium (headless, driven by playwright-core):
//! the demo page (`client/demo/`, served on 127.0.0.1) records 30 s of a scripted drive through
//! the capture module, which signs and uploads it through the API (`api`) into the raw bucket;
//! S3 events -> SQS -> a worker -> the clean bucket and the ledger, with a trace. Then the same
//! with a signer holding the wrong key: the API refuses and nothing is uploaded.
//!
//! Needs Chromium, Node.js and the built client (`scripts/client.sh build`, which `./test.sh`
//! runs first) besides moto; without Chromium or the client it prints `SKIPPED`, and with
//! `SD_REQUIRE_BROWSER=1` (CI) that is a failure.
//!
//! Asserted: the upload, the session accepted with its clock anchored on `recordingStartT`,
//! segments published, a trace, the wrong key refused with nothing uploaded. Measured and
//! printed but not yet asserted (issue 16 stays open for them): ALIGN's lag against the lag the
//! page showed, the keys labelled per frame against what the page rendered, and valid segments
//! with a pending payout. On this demo the motion fit is not confident yet (the lag is assumed,
//! and `alignment_confidence` fails every segment).

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sd_tests::free_port;
use serde_json::Value;

/// The demo's delay between rendering a frame and showing it (the stand-in for the model).
const DEMO_LAG_MS: f64 = 300.0;
const DRIVE_SECONDS: u32 = 30;
const DEMO_WIDTH: u32 = 640;

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The client folder with its build, or `None` after saying why the test is skipped.
fn client_ready(test: &str) -> Option<PathBuf> {
    let client = workspace_root().join("client");
    let missing = if !Path::new("/usr/bin/chromium").is_file() {
        Some("Chromium is not installed (scripts/install-deps.sh --browser)")
    } else if !client.join("demo/dist/demo.js").is_file()
        || !client.join("node_modules/playwright-core").is_dir()
    {
        Some("the client is not built (scripts/client.sh build)")
    } else if Command::new("node").arg("--version").output().is_err() {
        Some("node is not installed")
    } else {
        None
    };
    if let Some(why) = missing {
        if std::env::var_os("SD_REQUIRE_BROWSER").is_some_and(|v| v == "1") {
            panic!("{test}: {why}, and SD_REQUIRE_BROWSER=1");
        }
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
        return None;
    }
    Some(client)
}

/// Waits until `url` answers 200.
fn wait_for_http(url: &str, what: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if ureq::get(url).call().is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what} did not answer at {url}");
}

/// Runs the scripted drive; its JSON outcome.
fn drive(client: &Path, url: &str, dir: &Path, name: &str) -> Value {
    let out = Command::new("node")
        .arg("e2e/drive.mjs")
        .arg("--url")
        .arg(url)
        .arg("--screenshot")
        .arg(dir.join(format!("{name}.png")))
        .current_dir(client)
        .stderr(Stdio::inherit())
        .output()
        .expect("run node e2e/drive.mjs");
    assert!(out.status.success(), "the drive failed ({})", out.status);
    serde_json::from_slice(&out.stdout).expect("the drive's JSON")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

#[test]
fn a_browser_session_goes_through_the_whole_system() {
    let test = "a_browser_session_goes_through_the_whole_system";
    let Some(client) = client_ready(test) else {
        return;
    };
    let dir = test_dir("capture_e2e");
    let Some(emulator) = Emulator::start(test, &dir) else {
        return;
    };
    // The page, on its own origin.
    let page_port = free_port();
    let origin = format!("http://127.0.0.1:{page_port}");
    let _pages = Killed(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                &page_port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(&client)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the page server"),
    );
    wait_for_http(&format!("{origin}/demo/index.html"), "the page server");
    emulator.setup(&["--cors-origin", &origin]);

    let ledger = dir.join("ledger.sqlite");
    let collector = sd_tests::otlp::Receiver::start(sd_tests::otlp::Mode::Accept);
    let endpoint = collector.endpoint();
    let _worker = emulator.worker_with_env(
        "worker",
        &ledger,
        &dir.join("work"),
        &[],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
    );
    let api_port = free_port();
    let api_log = std::fs::File::create(dir.join("api.log")).expect("api log");
    let ledger_text = ledger.display().to_string();
    let listen = format!("127.0.0.1:{api_port}");
    let _api = Killed(
        emulator
            .server(&[
                "api",
                "--listen",
                &listen,
                "--ledger",
                &ledger_text,
                "--cors-origin",
                &origin,
            ])
            .stdout(Stdio::null())
            .stderr(api_log)
            .spawn()
            .expect("start the API"),
    );
    let api = format!("http://{listen}");
    wait_for_http(&format!("{api}/healthz"), "the API");

    // 30 s of driving, recorded and uploaded by the page.
    // 640 px wide: Chromium encodes VP8 in software next to a WebGL scene rendered on the CPU,
    // and at 1280 px a 2-core machine records about 3 frames a second.
    let url = format!(
        "{origin}/demo/?lag={DEMO_LAG_MS}&seconds={DRIVE_SECONDS}&width={DEMO_WIDTH}&scale=1&api={api}"
    );
    let started = Instant::now();
    let outcome = drive(&client, &url, &dir, "drive");
    std::fs::write(dir.join("drive.json"), outcome.to_string()).expect("keep the outcome");
    assert!(
        outcome["error"].is_null(),
        "the upload failed: {}",
        outcome["error"]
    );
    let session = outcome["sessionId"]
        .as_str()
        .expect("session id")
        .to_owned();
    let wallet = outcome["wallet"].as_str().expect("wallet").to_owned();
    emulator.wait_until(&ledger, Duration::from_secs(600), "the session", |_| {
        session_row(&ledger, &session).is_some()
    });
    let elapsed = started.elapsed();

    // Accepted, segments published (clean or review/).
    let row = session_row(&ledger, &session).expect("the session in the ledger");
    assert_eq!(row.status, sd_core::SessionStatus::Accepted, "{row:?}");
    let mut published = Vec::new();
    for prefix in ["", "review/"] {
        if let Some(bytes) = emulator.get(
            "sd-clean",
            &format!("{prefix}{wallet}/{session}/manifest.json"),
        ) {
            let manifest: sd_core::SessionManifest =
                serde_json::from_slice(&bytes).expect("manifest");
            for segment in manifest.segments {
                published.push((prefix, segment.segment));
            }
        }
    }
    published.sort_by_key(|(_, segment)| *segment);
    assert!(!published.is_empty(), "no segment published");
    let valid = published
        .iter()
        .filter(|(prefix, _)| prefix.is_empty())
        .count();
    let payouts = sd_ledger::Ledger::open(&ledger)
        .expect("ledger")
        .payouts(Some(&wallet))
        .expect("payouts");
    let pending: i64 = payouts.iter().map(|p| p.amount_lamports.0).sum();

    // The clock: anchored by recordingStartT; the lag against what the page showed.
    let session_json: Value = serde_json::from_slice(
        &emulator
            .get("sd-clean", &format!("{wallet}/{session}/session.json"))
            .expect("session.json"),
    )
    .expect("session.json");
    let clock = &session_json["clock"];
    let run = &clock["runs"][0];
    assert_eq!(run["source"], "recording_start_t", "{clock:#}");
    let measured_lag = run["lag"]["lag_ms"].as_f64().expect("a lag");
    let rendered = outcome["rendered"].as_array().expect("the page's log");
    let shown_lag = median(
        rendered
            .iter()
            .map(|r| {
                r["drawnT"].as_f64().unwrap_or(f64::NAN) - r["sourceT"].as_f64().unwrap_or(f64::NAN)
            })
            .collect(),
    );
    let recording_start = outcome["recordingStartT"]
        .as_f64()
        .expect("recordingStartT");
    let start_event_delay = outcome["startEventT"].as_f64().expect("startEventT") - recording_start;

    // Keys per published frame against what the page rendered in it.
    let mut frames = 0;
    let mut agree = 0;
    let mut pts = Vec::new();
    for (prefix, segment) in &published {
        let aligned: Value = serde_json::from_slice(
            &emulator
                .get(
                    "sd-clean",
                    &format!("{prefix}{wallet}/{session}/segment_{segment:03}/aligned.json"),
                )
                .expect("aligned.json"),
        )
        .expect("aligned.json");
        for frame in aligned["frames"].as_array().expect("frames") {
            let Some(pts_ms) = frame["pts_ms"].as_f64() else {
                continue;
            };
            pts.push(pts_ms);
            // The picture the recorder took at that moment: the last one drawn before it.
            let taken = recording_start + pts_ms;
            let Some(shown) = rendered
                .iter()
                .take_while(|r| r["drawnT"].as_f64().is_some_and(|t| t <= taken))
                .last()
            else {
                continue;
            };
            let wasd = |keys: &Value| -> Vec<String> {
                let mut keys: Vec<String> = keys
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str())
                    .filter(|k| ["w", "a", "s", "d"].contains(k))
                    .map(str::to_owned)
                    .collect();
                keys.sort();
                keys
            };
            frames += 1;
            if wasd(&frame["keys_held"]) == wasd(&shown["held"]) {
                agree += 1;
            }
        }
    }
    let steps: Vec<f64> = pts.windows(2).map(|w| w[1] - w[0]).collect();
    let frame_ms = median(steps);
    let agreement = agree as f64 / frames.max(1) as f64;
    report_figure(&format!(
        "capture e2e: {session} ({DRIVE_SECONDS} s in Chromium, {DEMO_WIDTH} px, lag {DEMO_LAG_MS:.0} ms) \
         through the API, S3, SQS and a worker in {:.0} s: {frames} frames published in {} segments \
         ({valid} valid, {pending} lamports pending), recorded frame step {frame_ms:.0} ms; lag shown \
         on the page {shown_lag:.0} ms, ALIGN's {measured_lag:.0} ms ({}, motion fit confidence {:.3}); \
         the recorder's start event {start_event_delay:.0} ms after start(); keys agree on {:.1}% of frames",
        elapsed.as_secs_f64(),
        published.len(),
        run["lag"]["source"],
        run["motion"]["confidence"].as_f64().unwrap_or(f64::NAN),
        agreement * 100.0
    ));

    // A trace of the session arrived.
    let spans = collector.wait_for(Duration::from_secs(30), |spans| {
        spans
            .iter()
            .any(|s| s.attribute("session_id") == Some(session.as_str()))
    });
    assert!(
        spans
            .iter()
            .any(|s| s.attribute("session_id") == Some(session.as_str())),
        "no trace of {session}"
    );

    // The wrong key: refused by the API, nothing uploaded.
    let outcome = drive(
        &client,
        &format!("{url}&seconds=3&wrongKey"),
        &dir,
        "wrong-key",
    );
    assert_eq!(
        outcome["error"]["code"], "bad_signature",
        "{}",
        outcome["error"]
    );
    let refused = outcome["sessionId"].as_str().expect("session id");
    let listing = ureq::get(&format!("{}/sd-raw?list-type=2&prefix={wallet}/", emulator.endpoint))
        .header("authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00")
        .call()
        .expect("list the raw bucket")
        .body_mut()
        .read_to_string()
        .expect("listing");
    assert!(
        !listing.contains(refused),
        "parts of the refused session were uploaded"
    );
}
