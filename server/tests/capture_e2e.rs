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
//! The demo stamps each picture's index into it (`?stamp`), so the test knows which picture each
//! recorded frame holds: when the page drew it, the moment it shows and the keys held then.
//! Asserted: the upload; the session accepted with its clock anchored on `recordingStartT`; the
//! lag measured by ALIGN (not assumed) within two frames of the lag the recorded frames carry;
//! the keys labelled on at least 98% of published frames equal to what the page rendered in them;
//! valid segments with one segment's pay each pending; a trace; the wrong key refused with
//! nothing uploaded. Printed: what MediaRecorder produced and how ALIGN did.

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

fn median(values: &[f64]) -> f64 {
    quantile(values, 0.5)
}

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    let at = ((values.len() as f64 - 1.0) * q).round().max(0.0) as usize;
    values.get(at).copied().unwrap_or(f64::NAN)
}

/// The demo's stamp (`?stamp`, `drawStamp` in client/demo/demo.ts): STAMP_BITS blocks of
/// STAMP_BLOCK px along the bottom row from the left edge, white for 1; bit 0 is an even parity
/// over the others, which hold the picture's index in the page's log, most significant first.
const STAMP_BITS: usize = 16;
const STAMP_BLOCK: usize = 12;

/// The index stamped into a recorded frame's luma, or `None` when a block is neither black nor
/// white or the parity fails (a frame the encoder smeared).
fn read_stamp(luma: &[u8], stride: usize, height: usize) -> Option<usize> {
    let mut bits = [false; STAMP_BITS];
    for (b, bit) in bits.iter_mut().enumerate() {
        // The middle 6x6 pixels of the block.
        let (mut sum, mut n) = (0u32, 0u32);
        for y in height.checked_sub(9)?..height - 3 {
            for x in b * STAMP_BLOCK + 3..b * STAMP_BLOCK + 9 {
                sum += u32::from(*luma.get(y * stride + x)?);
                n += 1;
            }
        }
        let mean = sum / n;
        if (60..196).contains(&mean) {
            return None;
        }
        *bit = mean >= 128;
    }
    let ones = bits[1..].iter().filter(|&&b| b).count();
    (bits[0] == (ones % 2 == 1))
        .then(|| bits[1..].iter().fold(0, |acc, &b| acc * 2 + usize::from(b)))
}

/// What the page drew: when, the page time of the state it showed, and the keys held then.
struct Drawn {
    drawn_t: f64,
    source_t: f64,
    held: Vec<String>,
}

/// W, A, S and D among `keys`, sorted.
fn wasd(keys: &Value) -> Vec<String> {
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
    let page = |seconds: u32| {
        format!(
            "{origin}/demo/?lag={DEMO_LAG_MS}&seconds={seconds}&width={DEMO_WIDTH}&scale=0.5&stamp&peer&api={api}"
        )
    };
    let url = page(DRIVE_SECONDS);
    let started = Instant::now();
    let outcome = drive(&client, &url, &dir, "drive");
    std::fs::write(dir.join("drive.json"), outcome.to_string()).expect("keep the outcome");
    assert!(
        outcome["error"].is_null(),
        "the upload failed: {}",
        outcome["error"]
    );
    // RTT sampled from the page's (loopback) WebRTC connection, every 2 s.
    let rtt_samples = outcome["rttSamples"].as_u64().unwrap_or(0);
    assert!(
        rtt_samples >= u64::from(DRIVE_SECONDS) / 4,
        "{rtt_samples} RTT samples in {DRIVE_SECONDS} s ({})",
        outcome["peerError"]
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
    let pending: i64 = payouts
        .iter()
        .filter(|p| p.state == sd_core::PayoutState::Pending)
        .map(|p| p.amount_lamports.0)
        .sum();

    // The clock: anchored by recordingStartT.
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
    let recording_start = outcome["recordingStartT"]
        .as_f64()
        .expect("recordingStartT");
    let start_event_delay = outcome["startEventT"].as_f64().expect("startEventT") - recording_start;

    // Which picture each recorded frame holds, read from its stamp: the truth that the lag and
    // the labels are checked against.
    let rendered: Vec<Drawn> = outcome["rendered"]
        .as_array()
        .expect("the page's log")
        .iter()
        .map(|r| Drawn {
            drawn_t: r["drawnT"].as_f64().unwrap_or(f64::NAN),
            source_t: r["sourceT"].as_f64().unwrap_or(f64::NAN),
            held: wasd(&r["held"]),
        })
        .collect();
    // The bundle as uploaded, and the session's record, kept for a look after a failure
    // (`scale-diffusion inspect target/server-tests/capture_e2e/bundle`).
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).expect("bundle folder");
    for (part, key) in outcome["result"]["keys"]
        .as_object()
        .expect("the parts' keys")
    {
        let key = key.as_str().expect("a key");
        let name = key.rsplit('/').next().unwrap_or(part);
        let bytes = emulator.get("sd-raw", key).expect("an uploaded part");
        std::fs::write(bundle.join(name), bytes).expect("keep the part");
    }
    std::fs::write(dir.join("session.json"), session_json.to_string()).expect("keep session.json");
    let video_key = outcome["result"]["keys"]["video"]
        .as_str()
        .expect("the video's key");
    let video = bundle.join(video_key.rsplit('/').next().unwrap_or("video.webm"));
    // Per decoded frame (in decode order, as aligned.json numbers them): its PTS and the index of
    // the picture it holds.
    let mut stamped: Vec<(f64, Option<usize>)> = Vec::new();
    sd_core::decode_video(&video, &sd_core::Limits::default(), |frame| {
        let (luma, stride) = frame.luma();
        let index = read_stamp(luma, stride, frame.height() as usize)
            .filter(|&index| index < rendered.len());
        stamped.push((frame.pts_ms.unwrap_or(f64::NAN), index));
    })
    .expect("decode the recorded video");
    let read: Vec<(f64, usize)> = stamped
        .iter()
        .filter_map(|&(pts, index)| Some((pts, index?)).filter(|(pts, _)| pts.is_finite()))
        .collect();
    assert!(
        read.len() * 10 >= stamped.len() * 9,
        "the stamps of only {} of {} recorded frames could be read",
        read.len(),
        stamped.len()
    );
    let steps: Vec<f64> = stamped
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .filter(|step| step.is_finite())
        .collect();
    let frame_ms = median(&steps);
    // The capture path: how long after the page drew a picture the recorder's clock puts it.
    let capture_delay: Vec<f64> = read
        .iter()
        .map(|&(pts, index)| recording_start + pts - rendered[index].drawn_t)
        .collect();
    // The lag each recorded frame really carries: its time on the recorder's clock against the
    // page time of the state it shows (the demo's delay line, plus the capture path).
    let true_lag: Vec<f64> = read
        .iter()
        .map(|&(pts, index)| recording_start + pts - rendered[index].source_t)
        .collect();
    let shown_lag = median(&true_lag);
    let delay_line: Vec<f64> = rendered
        .iter()
        .map(|r| r.drawn_t - r.source_t - DEMO_LAG_MS)
        .collect();
    let indices: Vec<usize> = read.iter().map(|&(_, index)| index).collect();
    let repeated = indices.windows(2).filter(|w| w[0] == w[1]).count();
    let never_recorded: usize = indices
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]).saturating_sub(1))
        .sum();
    let stalls = steps.iter().filter(|&&s| s > 3.0 * frame_ms).count();

    // Keys per published frame against what the page rendered in it.
    let (mut frames, mut agree, mut unread, mut unlabelled) = (0, 0, 0, 0);
    let mut disagreements = Vec::new();
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
            let pts_ms = frame["pts_ms"].as_f64().unwrap_or(f64::NAN);
            let decoded = frame["frame"]
                .as_u64()
                .and_then(|f| stamped.get(f as usize));
            let Some(&(_, Some(index))) = decoded else {
                unread += 1;
                continue;
            };
            frames += 1;
            // A frame ALIGN could not time carries no keys: not a label that agrees.
            if frame["keys_held"].is_null() {
                unlabelled += 1;
                continue;
            }
            let labelled = wasd(&frame["keys_held"]);
            if labelled == rendered[index].held {
                agree += 1;
            } else if disagreements.len() < 12 {
                disagreements.push(format!(
                    "pts {pts_ms:.0}: labelled {labelled:?}, shown {:?}",
                    rendered[index].held
                ));
            }
        }
    }
    let agreement = agree as f64 / frames.max(1) as f64;
    report_figure(&format!(
        "capture e2e: {session} ({DRIVE_SECONDS} s in Chromium, {DEMO_WIDTH} px, lag {DEMO_LAG_MS:.0} ms, \
         {rtt_samples} RTT samples) through the API, S3, SQS and a worker in {:.0} s: {} frames \
         recorded, {frames} published in {} segments ({valid} valid, {pending} lamports pending)",
        elapsed.as_secs_f64(),
        stamped.len(),
        published.len(),
    ));
    report_figure(&format!(
        "capture e2e: MediaRecorder: frame step median {frame_ms:.1} ms (p10 {:.1}, p90 {:.1}, max \
         {:.0}), {stalls} steps over 3 frames; {} pictures drawn, {never_recorded} of them between \
         recorded frames never recorded, {repeated} frames repeating the one before; a picture's \
         time on the recorder's clock minus when it was drawn: median {:.1} ms ({:.1} to {:.1}); \
         the start event {start_event_delay:.0} ms after start()",
        quantile(&steps, 0.1),
        quantile(&steps, 0.9),
        steps.iter().copied().fold(0.0, f64::max),
        rendered.len(),
        median(&capture_delay),
        quantile(&capture_delay, 0.05),
        quantile(&capture_delay, 0.95),
    ));
    report_figure(&format!(
        "capture e2e: lag configured {DEMO_LAG_MS:.0} ms, the page's delay line adds {:.0} ms \
         (median), recorded frames carry {shown_lag:.0} ms (p10 {:.0}, p90 {:.0}); ALIGN's \
         {measured_lag:.0} ms ({}, motion fit confidence {:.3}): off by {:.0} ms, {:.2} frames; keys \
         agree on {:.1}% of {frames} published frames ({unlabelled} of them without keys, {unread} \
         more without a readable stamp)",
        median(&delay_line),
        quantile(&true_lag, 0.1),
        quantile(&true_lag, 0.9),
        run["lag"]["source"],
        run["motion"]["confidence"].as_f64().unwrap_or(f64::NAN),
        measured_lag - shown_lag,
        (measured_lag - shown_lag) / frame_ms,
        agreement * 100.0
    ));
    for line in &disagreements {
        report_figure(&format!("capture e2e: keys differ at {line}"));
    }
    assert!(
        outcome["pointerLocked"].as_bool() == Some(true),
        "the view never had pointer lock: the mouse sweeps did nothing"
    );
    assert!(
        unread * 10 <= frames,
        "{unread} published frames without a readable stamp"
    );
    // Two frames are the tolerance; a machine recording under 10 frames a second would make that
    // a loose bound.
    assert!(
        frame_ms <= 100.0,
        "the recorder's median frame step is {frame_ms:.0} ms"
    );
    assert_eq!(run["lag"]["source"], "measured", "{clock:#}");
    assert!(
        (measured_lag - shown_lag).abs() <= 2.0 * frame_ms,
        "ALIGN's lag {measured_lag:.0} ms is more than two frames ({frame_ms:.0} ms each) from the \
         {shown_lag:.0} ms the recorded frames carry"
    );
    assert!(
        agreement >= 0.98,
        "keys agree on only {:.1}% of frames",
        agreement * 100.0
    );
    assert!(valid > 0, "no valid segment: {published:?}");
    assert_eq!(
        pending,
        valid as i64 * sd_core::PayoutConfig::default().lamports_per_segment as i64,
        "the pending payout of {wallet} is not one segment's pay per valid segment"
    );

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
    let outcome = drive(&client, &format!("{}&wrongKey", page(3)), &dir, "wrong-key");
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
