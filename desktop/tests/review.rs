//! The review app driven headlessly (egui_kittest, rendered on llvmpipe): a synthetic session
//! with defects processed into a fresh layout and ledger, then a reviewer's whole round: select a
//! segment, scrub, step, override it with a reason, approve the payout. The ledger and the folders
//! are checked after each decision, and the main views are compared with the snapshots in
//! `tests/snapshots/` (`UPDATE_SNAPSHOTS=1` rewrites them).

use std::path::{Path, PathBuf};

use egui_kittest::kittest::Queryable as _;
use egui_kittest::Harness;
use scale_diffusion_review::app::Tab;
use scale_diffusion_review::{ReviewApp, Sources};
use sd_core::{Location, SegmentKey, Verdict};
use sd_fixtures::{write_bundle, Naming, SyntheticSpec};

const WALLET: &str = "Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR";

/// A 30 s synthetic session with every kind of defect, processed as `process` does, into `dir`.
fn processed(dir: &Path) -> Sources {
    let raw = dir.join("raw");
    let mut spec = SyntheticSpec::with_all_defects(11);
    spec.wallet = WALLET.to_owned();
    let written = write_bundle(&raw.join(WALLET), &spec, Naming::UploadEpoch).expect("bundle");
    std::fs::remove_file(&written.truth).expect("drop the truth file");
    let sources = Sources::embedded_default(dir);
    let mut layout =
        sd_core::OutputLayout::open(&sources.clean, &sources.review, &dir.join("out/.sd-work"))
            .expect("layout");
    let mut ledger = sd_ledger::Ledger::open(&sources.ledger).expect("ledger");
    let config = sd_core::PipelineConfig::default();
    let run = sd_core::RunInfo {
        run_id: "fixture".into(),
        processed_at: "2026-12-02T00:00:00Z".into(),
    };
    let discovery = sd_core::discover(&raw).expect("discover");
    for source in &discovery.bundles {
        let job = sd_core::SessionJob {
            source,
            config: &config,
            limits: &sd_core::Limits::default(),
            rate: config.payout.rate().expect("rate"),
            run: &run,
            label: "fixture",
            origin: "fixture",
        };
        sd_core::process_session(job, &mut layout, &mut ledger, |_| {}).expect("process");
    }
    sources
}

/// A fresh folder at a fixed path: the window shows the ledger's path, and the snapshots must
/// not change with a random temp name.
fn fixed_dir(test: &str) -> PathBuf {
    let dir = Path::new("/tmp/sd-review-tests").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test folder");
    dir
}

fn harness(sources: Sources) -> Harness<'static, ReviewApp> {
    Harness::builder()
        .with_size([1400.0, 900.0])
        .wgpu()
        .build_eframe(move |cc| ReviewApp::open(sources, "qa".to_owned(), &cc.egui_ctx))
}

/// Runs frames until the frame loader has delivered what the view asked for: a step, a seek or
/// a decision loads a frame on the loader thread, which asks for repaints until it arrives (a
/// plain `run()` can exceed its step limit on a loaded machine).
fn settle(harness: &mut Harness<'_, ReviewApp>) {
    for _ in 0..100 {
        harness.run_steps(2);
        let shown = harness.state().segment.is_none() || harness.state().frame_shown();
        if shown {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the frame never arrived");
}

fn segment_folder(sources: &Sources, location: Location, key: &SegmentKey) -> PathBuf {
    let root = match location {
        Location::Clean => &sources.clean,
        Location::Review => &sources.review,
    };
    root.join(&key.wallet)
        .join(&key.session_id)
        .join(format!("segment_{:03}", key.segment))
}

#[test]
fn a_reviewer_scrubs_overrides_and_approves() {
    let dir = fixed_dir("round");
    let sources = processed(&dir);
    let mut harness = harness(sources.clone());
    harness.run();
    let counts = harness.state().catalog.counts();
    assert!(
        counts.failed >= 1,
        "the defects fail some segment: {counts:?}"
    );
    harness.snapshot("queue");

    // Only what failed, then the first of it with the keyboard.
    harness.get_by_label("failed only").click();
    harness.run();
    harness.key_press(egui::Key::N);
    settle(&mut harness);
    let key = harness.state().selected.clone().expect("a segment is open");
    let entry = harness
        .state()
        .catalog
        .segment(&key)
        .cloned()
        .expect("in the queue");
    assert_eq!(entry.verdict, Verdict::Fail);
    assert!(segment_folder(&sources, Location::Review, &key).is_dir());
    harness.snapshot("segment");

    // Step and scrub: the playhead moves by real frames and by real time.
    harness.key_press(egui::Key::ArrowRight);
    settle(&mut harness);
    assert_eq!(harness.state().segment.as_ref().expect("open").frame, 1);
    harness.key_press_modifiers(egui::Modifiers::SHIFT, egui::Key::ArrowRight);
    settle(&mut harness);
    let view = harness.state().segment.as_ref().expect("open");
    assert!(view.times[view.frame] >= 1000.0 - 1e-6 || view.frame + 1 == view.times.len());
    harness.get_by_label("timeline").click();
    settle(&mut harness);

    // Pass without a reason: refused, nothing recorded.
    harness.key_press(egui::Key::P);
    harness.run();
    let message = harness.state().messages.last().cloned().expect("a message");
    assert!(message.error, "{message:?}");
    assert!(segment_folder(&sources, Location::Review, &key).is_dir());

    // With a reason: recorded in the ledger and the segment published to the clean layout.
    harness.state_mut().reason_code = Some("labels_checked");
    harness.get_by_label("reason").focus();
    harness.run();
    harness
        .get_by_label("reason")
        .type_text("frames checked by hand");
    harness.run();
    assert_eq!(harness.state().reason_text, "frames checked by hand");
    harness.get_by_label("Pass (P)").click();
    settle(&mut harness);
    let message = harness.state().messages.last().cloned().expect("a message");
    assert!(!message.error, "{message:?}");
    assert!(segment_folder(&sources, Location::Clean, &key).is_dir());
    assert!(!segment_folder(&sources, Location::Review, &key).exists());
    let ledger = sd_ledger::Ledger::open(&sources.ledger).expect("ledger");
    let history = ledger.override_history(&key).expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].by, "qa");
    assert_eq!(history[0].reason, "labels_checked: frames checked by hand");
    assert_eq!(history[0].to, Verdict::Pass);
    drop(ledger);

    // The payout: approved by the reviewer, then locked as the ledger keeps it.
    harness.state_mut().tab = Tab::Payouts;
    // A grid lays itself out over a few frames.
    harness.run_steps(8);
    harness.snapshot("payouts");
    harness.get_by_label("Approve").click();
    harness.run_steps(8);
    let ledger = sd_ledger::Ledger::open(&sources.ledger).expect("ledger");
    let payouts = ledger.payouts(Some(WALLET)).expect("payouts");
    assert!(
        payouts
            .iter()
            .any(|p| p.state.as_str() == "approved" && p.approved_by.as_deref() == Some("qa")),
        "{payouts:?}"
    );

    // Opened again, the app is back at the segment the reviewer was on.
    drop(harness);
    let mut reopened = self::harness(sources.clone());
    reopened.run_steps(4);
    assert_eq!(reopened.state().selected.as_ref(), Some(&key));
}

#[test]
fn a_missing_ledger_is_said_in_the_window_not_a_panic() {
    let dir = fixed_dir("no_ledger");
    let mut harness = harness(Sources::embedded_default(&dir));
    harness.run();
    let message = harness.state().messages.last().cloned().expect("a message");
    assert!(
        message.error && message.text.contains("no ledger"),
        "{message:?}"
    );
    harness.get_by_label_contains("no ledger");
}
