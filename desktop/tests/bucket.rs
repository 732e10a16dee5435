//! The review app on a clean bucket, configured as the server is (the AWS SDK's environment, a
//! bucket and a queue), against moto on 127.0.0.1: a session published by the workers' own
//! publish target opens from the bucket (mirrored and checked), a reviewer's pass is recorded in
//! the ledger and queued as a reprocess message, and once a worker has republished, the segment
//! opens from the clean prefix. A tampered object is refused with the reason in the window.
//!
//! Its own test binary: the SDK's environment is set for the whole process.

use std::path::Path;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use scale_diffusion_review::{BucketSource, ReviewApp};
use sd_bucket::{BucketTarget, Clients, MirrorDirs};
use sd_core::{Location, SegmentKey, Verdict};
use sd_fixtures::{write_bundle, Naming, SyntheticSpec};
use sd_tests::moto::Moto;
use sd_tests::{report_figure, Dir};

const WALLET: &str = "Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR";
const BUCKET: &str = "sd-clean";
const QUEUE: &str = "sd-raw-events";

/// Processes every bundle under `raw` as a worker does: `process_session` into the clean bucket
/// through `BucketTarget`, verdicts into the ledger at `ledger`.
fn publish(runtime: &tokio::runtime::Runtime, clients: &Clients, raw: &Path, ledger: &Path) {
    let work = raw.parent().expect("parent").join("worker");
    let mut ledger = sd_ledger::Ledger::open(ledger).expect("ledger");
    let config = sd_core::PipelineConfig::default();
    let run = sd_core::RunInfo {
        run_id: "worker".into(),
        processed_at: "2026-12-03T00:00:00Z".into(),
    };
    let discovery = sd_core::discover(raw).expect("discover");
    for source in &discovery.bundles {
        let mut target = BucketTarget::new(
            clients.s3.clone(),
            BUCKET.to_owned(),
            runtime.handle().clone(),
            work.clone(),
            Box::new(|| Ok(())),
        );
        let job = sd_core::SessionJob {
            source,
            config: &config,
            limits: &sd_core::Limits::default(),
            rate: config.payout.rate().expect("rate"),
            run: &run,
            label: "worker",
            origin: "bucket test",
        };
        sd_core::process_session(job, &mut target, &mut ledger, |_| {}).expect("process");
    }
}

/// Runs frames until the bucket thread has answered everything and the frame is on screen.
fn settle(harness: &mut Harness<'_, ReviewApp>) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        harness.run_steps(2);
        let state = harness.state();
        if !state.bucket_busy() && (state.segment.is_none() || state.frame_shown()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the bucket or the frame never answered");
}

fn last_message(harness: &Harness<'_, ReviewApp>) -> (bool, String) {
    let message = harness.state().messages.last().cloned().expect("a message");
    (message.error, message.text)
}

#[test]
fn a_reviewer_opens_and_overrides_segments_of_a_bucket() {
    let dir = Dir::new("review-bucket");
    let Some(moto) = Moto::start(
        "a_reviewer_opens_and_overrides_segments_of_a_bucket",
        dir.path(),
    ) else {
        return;
    };
    // The server's configuration: the SDK's environment (this binary runs this test alone).
    for (name, value) in moto.sdk_env() {
        std::env::set_var(name, value);
    }
    std::env::remove_var("AWS_PROFILE");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let clients = runtime.block_on(Clients::from_env());
    let queue_url = runtime.block_on(async {
        clients
            .s3
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .expect("create bucket");
        let queue = clients
            .sqs
            .create_queue()
            .queue_name(QUEUE)
            .send()
            .await
            .expect("create queue");
        queue.queue_url().expect("queue url").to_owned()
    });

    // A session with every kind of defect, published by the workers' publish target.
    let raw = dir.path().join("raw");
    let mut spec = SyntheticSpec::with_all_defects(11);
    spec.wallet = WALLET.to_owned();
    let written = write_bundle(&raw.join(WALLET), &spec, Naming::UploadEpoch).expect("bundle");
    std::fs::remove_file(&written.truth).expect("drop the truth file");
    let ledger = dir.path().join("ledger.sqlite");
    publish(&runtime, &clients, &raw, &ledger);

    let mirror = dir.path().join("mirror");
    let source = BucketSource {
        clean_bucket: BUCKET.to_owned(),
        queue: QUEUE.to_owned(),
        mirror: mirror.clone(),
    };
    let ledger_for_app = ledger.clone();
    let mut harness = Harness::builder()
        .with_size([1400.0, 900.0])
        .wgpu()
        .build_eframe(move |cc| {
            ReviewApp::open_bucket(
                sd_ledger::LedgerLocation::Sqlite(ledger_for_app),
                source,
                "qa".to_owned(),
                &cc.egui_ctx,
            )
        });
    harness.run_steps(2);

    // A failed segment opens from the bucket's review/ prefix, mirrored object by object.
    let failed: SegmentKey = harness
        .state()
        .catalog
        .sessions
        .iter()
        .flat_map(|s| &s.segments)
        .find(|s| s.verdict == Verdict::Fail)
        .map(|s| s.key.clone())
        .expect("the defects fail a segment");
    let started = Instant::now();
    harness.state_mut().select(failed.clone());
    settle(&mut harness);
    let opened = started.elapsed();
    let (error, text) = last_message(&harness);
    assert!(!error, "{text}");
    let view = harness
        .state()
        .segment
        .as_ref()
        .expect("the segment is open");
    assert_eq!(view.data.location, Location::Review);
    let dirs = MirrorDirs::under(&mirror);
    let session = dirs.review.join(WALLET).join(&failed.session_id);
    let manifest: sd_core::SessionManifest = serde_json::from_slice(
        &std::fs::read(session.join("manifest.json")).expect("the manifest is mirrored"),
    )
    .expect("manifest");
    for object in manifest.objects() {
        assert_eq!(
            sd_core::ManifestObject::of_file(&session, &object.path).expect("mirrored"),
            *object
        );
    }
    report_figure(&format!(
        "review app from a bucket: {} objects ({:.1} MB) mirrored and opened in {:.2} s",
        manifest.objects().count(),
        manifest.bytes() as f64 / 1e6,
        opened.as_secs_f64()
    ));

    // Pass it with a reason: the ledger records it, the workers' queue gets the reprocess.
    harness.state_mut().reason_code = Some("labels_checked");
    harness.state_mut().reason_text = "the blur is the scene, not the camera".to_owned();
    // The emulator held still meanwhile: a second verdict before the first is answered is
    // refused, not recorded twice.
    moto.signal("STOP");
    harness.key_press(egui::Key::P);
    harness.run_steps(1);
    assert!(harness.state().reviewing.is_some());
    harness.state_mut().reason_text = "changed my mind".to_owned();
    harness.key_press(egui::Key::F);
    harness.run_steps(1);
    let (error, text) = last_message(&harness);
    assert!(error && text.contains("still being recorded"), "{text}");
    moto.signal("CONT");
    harness.state_mut().reason_text.clear();
    settle(&mut harness);
    let (error, text) = last_message(&harness);
    assert!(!error, "{text}");
    assert!(text.contains("queued"), "{text}");
    let entry = harness
        .state()
        .catalog
        .segment(&failed)
        .cloned()
        .expect("in the queue");
    assert_eq!(entry.verdict, Verdict::Pass);
    let note = entry.applied_override.expect("the override is recorded");
    assert_eq!(note.by, "qa");
    assert!(note.reason.contains("the blur is the scene"), "{note:?}");
    let messages = runtime.block_on(async {
        clients
            .sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(2)
            .send()
            .await
            .expect("receive")
    });
    let bodies: Vec<serde_json::Value> = messages
        .messages()
        .iter()
        .filter_map(|m| serde_json::from_str(m.body()?).ok())
        .collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["Event"], sd_bucket::REPROCESS_EVENT);
    assert_eq!(bodies[0]["SessionId"], failed.session_id.as_str());
    // Until a worker acts on it the bucket is unchanged: it still opens from review/.
    assert_eq!(
        harness
            .state()
            .segment
            .as_ref()
            .expect("open")
            .data
            .location,
        Location::Review
    );

    // A worker reprocesses the session; opened again, the segment comes from the clean prefix
    // and its copy under review/ is gone from the mirror as from the bucket.
    publish(&runtime, &clients, &raw, &ledger);
    harness.state_mut().select(failed.clone());
    settle(&mut harness);
    let view = harness
        .state()
        .segment
        .as_ref()
        .expect("the segment is open");
    assert_eq!(view.data.location, Location::Clean);
    let folder = format!("segment_{:03}", failed.segment);
    assert!(dirs
        .clean
        .join(WALLET)
        .join(&failed.session_id)
        .join(&folder)
        .is_dir());
    assert!(!session.join(&folder).exists());

    // An object whose bytes are not what its manifest lists is refused, and said so.
    let frame_key = format!(
        "{WALLET}/{}/{folder}/frames/{}",
        failed.session_id,
        std::path::Path::new(&view.data.frame_path(0).expect("a frame"))
            .file_name()
            .expect("name")
            .to_string_lossy()
    );
    runtime.block_on(async {
        clients
            .s3
            .put_object()
            .bucket(BUCKET)
            .key(&frame_key)
            .body(b"not the frame".to_vec().into())
            .send()
            .await
            .expect("tamper")
    });
    std::fs::remove_dir_all(&dirs.clean).expect("drop the mirror");
    harness.state_mut().select(failed.clone());
    settle(&mut harness);
    let (error, text) = last_message(&harness);
    assert!(error && text.contains("SHA-256"), "{text}");
    assert!(harness.state().segment.is_none());
    assert!(!dirs
        .clean
        .join(WALLET)
        .join(&failed.session_id)
        .join(&folder)
        .join("frames")
        .join(std::path::Path::new(&frame_key).file_name().expect("name"))
        .exists());
}
