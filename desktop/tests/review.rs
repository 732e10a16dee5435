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
    let mut spec = SyntheticSpec::with_all_defects(11);
    spec.wallet = WALLET.to_owned();
    processed_specs(dir, &[spec])
}

/// Synthetic sessions processed one after the other (in the order given), into `dir`.
fn processed_specs(dir: &Path, specs: &[SyntheticSpec]) -> Sources {
    let raw = dir.join("raw");
    for spec in specs {
        let written =
            write_bundle(&raw.join(&spec.wallet), spec, Naming::UploadEpoch).expect("bundle");
        std::fs::remove_file(&written.truth).expect("drop the truth file");
    }
    let sources = Sources::embedded_default(dir);
    let mut layout =
        sd_core::OutputLayout::open(&sources.clean, &sources.review, &dir.join("out/.sd-work"))
            .expect("layout");
    let mut ledger = sd_ledger::Ledger::open_at(&sources.ledger).expect("ledger");
    let config = sd_core::PipelineConfig::default();
    let run = sd_core::RunInfo {
        run_id: "fixture".into(),
        processed_at: "2026-12-02T00:00:00Z".into(),
    };
    let discovery = sd_core::discover(&raw).expect("discover");
    let mut bundles: Vec<&sd_core::BundleSource> = discovery.bundles.iter().collect();
    let order = |source: &sd_core::BundleSource| {
        specs
            .iter()
            .position(|spec| spec.session_id == source.session_id)
    };
    bundles.sort_by_key(|source| order(source));
    for source in bundles {
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
    let ledger = sd_ledger::Ledger::open_at(&sources.ledger).expect("ledger");
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
    let ledger = sd_ledger::Ledger::open_at(&sources.ledger).expect("ledger");
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
fn a_duplicate_shows_the_earlier_segment_beside_it() {
    let dir = fixed_dir("duplicate");
    let mut original = SyntheticSpec::constant_rate_seeded(11.0, 10.0, 3);
    original.wallet = WALLET.to_owned();
    original.session_id = "session_1770000000000_orig01".to_owned();
    let mut copy = original.clone();
    copy.session_id = "session_1770000100000_copy01".to_owned();
    let sources = processed_specs(&dir, &[original.clone(), copy.clone()]);
    let mut harness = harness(sources);
    harness.run();
    let key = SegmentKey {
        wallet: WALLET.to_owned(),
        session_id: copy.session_id.clone(),
        segment: 1,
    };
    harness.state_mut().select(key.clone());
    settle(&mut harness);
    for _ in 0..50 {
        harness.run_steps(2);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let view = harness
        .state()
        .segment
        .as_ref()
        .expect("the copy's segment is open");
    let duplicate = view
        .data
        .checks
        .iter()
        .find(|check| check.check == "duplicate")
        .expect("a duplicate check");
    assert!(!duplicate.passed, "{duplicate:?}");
    let earlier = view.data.earlier.as_ref().expect("the earlier segment");
    assert_eq!(earlier.of.session_id, original.session_id);
    let earlier_data = earlier
        .data
        .as_ref()
        .expect("the earlier segment is in this layout");
    assert_eq!(earlier_data.key.session_id, original.session_id);
    // Both pictures are on screen: this segment's and the earlier one's at the same time.
    let (at, _) = view
        .data
        .earlier_frame(0)
        .expect("an earlier frame for the first");
    assert_eq!(at, 0, "the copy's first frame is the original's first");
    harness.snapshot("duplicate");
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

#[test]
fn flagged_frames_speeds_and_the_review_rule_for_approval() {
    let dir = fixed_dir("flagged");
    let sources = processed(&dir);
    let mut harness = harness(sources.clone());
    harness.run();

    // A segment some check flags frames of: the jump lands on a flagged frame, never on one
    // no check flags.
    let key = harness
        .state()
        .catalog
        .visible(&Default::default())
        .into_iter()
        .find(|s| {
            s.failed_checks
                .iter()
                .any(|c| ["blur", "black", "washed_out", "frozen", "glitch"].contains(&c.as_str()))
        })
        .map(|s| s.key.clone())
        .expect("the defects fail a picture check");
    harness.state_mut().select(key);
    settle(&mut harness);
    let flagged = |view: &scale_diffusion_review::app::SegmentView| {
        view.lanes
            .flagged
            .iter()
            .any(|(_, marks)| marks[view.frame])
    };
    let view = harness.state().segment.as_ref().expect("open");
    assert!(!view.lanes.flagged.is_empty(), "no flagged lane");
    let start = view.frame;
    harness.key_press(egui::Key::J);
    settle(&mut harness);
    let view = harness.state().segment.as_ref().expect("open");
    if view.frame != start {
        assert!(
            flagged(view),
            "J landed on frame {} that no check flags",
            view.frame
        );
    } else {
        // The segment is flagged from its first frame to its last: J has nowhere to go.
        assert!(flagged(view));
    }
    // The metric lanes come from session.json, with the thresholds from quality.json.
    assert!(
        view.lanes.sharpness.iter().any(Option::is_some),
        "{:?} {} {:?}",
        view.data.metrics_note,
        view.data.metrics.len(),
        view.data.metrics.first()
    );
    assert!(view.data.thresholds.is_some());

    // Faster three times: 4x, the fastest (never past it); then slower once: 2x.
    harness.key_press(egui::Key::CloseBracket);
    harness.key_press(egui::Key::CloseBracket);
    harness.key_press(egui::Key::CloseBracket);
    harness.run();
    assert_eq!(harness.state().segment.as_ref().expect("open").speed(), 4.0);
    harness.key_press(egui::Key::OpenBracket);
    harness.run();
    assert_eq!(harness.state().segment.as_ref().expect("open").speed(), 2.0);

    // With the review rule on, a wallet with unreviewed failed segments is not approved, and the
    // ledger is left as it was.
    assert!(harness.state().catalog.awaiting_review_of(WALLET) > 0);
    harness.state_mut().require_review = true;
    harness.state_mut().tab = Tab::Payouts;
    harness.run_steps(8);
    harness.get_by_label("Approve").click();
    harness.run_steps(4);
    let message = harness.state().messages.last().cloned().expect("a message");
    assert!(
        message.error && message.text.contains("nobody has reviewed"),
        "{message:?}"
    );
    let ledger = sd_ledger::Ledger::open_at(&sources.ledger).expect("ledger");
    let payouts = ledger.payouts(Some(WALLET)).expect("payouts");
    assert!(
        payouts.iter().all(|p| p.state.as_str() == "pending"),
        "{payouts:?}"
    );
}

/// Runs frames until the offline inspection has finished processing.
fn until_processed(harness: &mut Harness<'_, ReviewApp>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while harness.state().is_processing() {
        assert!(
            std::time::Instant::now() < deadline,
            "the inspection never finished"
        );
        harness.step();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    harness.run_steps(4);
}

#[test]
fn a_bundle_folder_is_inspected_offline_and_nothing_is_recorded() {
    let dir = fixed_dir("inspect");
    let bundle = dir.join("bundle");
    let mut spec = SyntheticSpec::with_all_defects(5);
    spec.wallet = WALLET.to_owned();
    let written = write_bundle(&bundle, &spec, Naming::UploadEpoch).expect("bundle");
    std::fs::remove_file(&written.truth).expect("drop the truth file");
    let before: Vec<_> = std::fs::read_dir(&bundle)
        .expect("bundle")
        .map(|e| e.expect("entry").file_name())
        .collect();

    let inspected = bundle.clone();
    let mut harness = Harness::builder()
        .with_size([1400.0, 900.0])
        .wgpu()
        .build_eframe(move |cc| ReviewApp::inspect(&inspected, "qa".to_owned(), &cc.egui_ctx));
    harness.run_steps(2);
    harness.get_by_label_contains("frames decoded");
    until_processed(&mut harness);

    // The segments are there to scrub, from the throwaway layout.
    let counts = harness.state().catalog.counts();
    assert!(counts.segments >= 5, "{counts:?}");
    assert!(harness.state().selected.is_some());
    settle(&mut harness);
    assert!(harness.state().segment.is_some());
    harness.key_press(egui::Key::ArrowRight);
    settle(&mut harness);
    assert_eq!(harness.state().segment.as_ref().expect("open").frame, 1);

    // A verdict is refused: there is no ledger to record it in.
    harness.state_mut().reason_code = Some("labels_checked");
    harness.state_mut().reason_text = "looks fine".to_owned();
    harness.key_press(egui::Key::P);
    harness.run();
    let message = harness.state().messages.last().cloned().expect("a message");
    assert!(
        message.error && message.text.contains("nothing is recorded"),
        "{message:?}"
    );

    // Nothing was written beside the bundle or in the test folder.
    let after: Vec<_> = std::fs::read_dir(&bundle)
        .expect("bundle")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(before, after);
    assert!(!dir.join("out").exists());
    let inspection_folder = harness
        .state()
        .inspection
        .as_ref()
        .expect("inspection")
        .folder
        .path()
        .to_owned();
    assert!(inspection_folder.is_dir());
    drop(harness);
    assert!(
        !inspection_folder.exists(),
        "the temporary folder outlived the app"
    );
}

#[test]
fn a_folder_without_a_bundle_is_said_in_the_window() {
    let dir = fixed_dir("inspect_empty");
    let empty = dir.clone();
    let mut harness = Harness::builder()
        .with_size([1400.0, 900.0])
        .wgpu()
        .build_eframe(move |cc| ReviewApp::inspect(&empty, "qa".to_owned(), &cc.egui_ctx));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        harness.step();
        let last = harness.state().messages.last().cloned();
        if let Some(message) = last.filter(|m| m.error) {
            assert!(message.text.contains("no bundle"), "{message:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no error shown");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    harness.run_steps(2);
    harness.get_by_label_contains("no bundle");
}

#[test]
fn a_segment_whose_session_json_is_unreadable_opens_without_metrics_and_says_why() {
    let dir = fixed_dir("no_metrics");
    let sources = processed(&dir);
    let session_json = std::fs::read_dir(sources.clean.join(WALLET))
        .expect("wallet folder")
        .map(|e| e.expect("entry").path().join("session.json"))
        .find(|p| p.is_file())
        .expect("session.json");
    std::fs::write(&session_json, b"{ not json").expect("break it");
    let mut harness = harness(sources);
    harness.run();
    harness.key_press(egui::Key::N);
    settle(&mut harness);
    let view = harness
        .state()
        .segment
        .as_ref()
        .expect("the segment still opens");
    assert!(view.lanes.sharpness.is_empty());
    let note = view.data.metrics_note.clone().expect("a reason");
    assert!(note.contains("session.json"), "{note}");
    harness.run_steps(2);
    harness.get_by_label_contains("is not what `process` writes");
}
