//! Holes found by trying the pipeline on sessions generated independently of `fixtures/`: each
//! test failed before its fix. Money was paid for bad data (a frozen picture while the car
//! creeps, a 16x16 video, a latency part without its fields), good data was refused or
//! mislabelled (`recordingStartT` with a long model lag), and a defect was reported under another
//! name (black frames as washed out).

mod common;

use common::{keys_accuracy, load, run, run_spec, write};
use sd_core::{align, AlignConfig, CheckName, QualityConfig};
use sd_fixtures::{
    Defect, DefectKind, FramePlan, SpeedProfile, SweepCase, SyntheticSpec, VehicleModel,
};
use sd_tests::report_figure;

/// `recordingStartT` present, the model lagging 700 ms behind a 340 ms network RTT: the lag is
/// measured from the data inside the window `R` allows, not taken from the RTT.
#[test]
fn recording_start_t_with_a_long_model_lag_keeps_the_labels_right() {
    let mut spec = SyntheticSpec::constant_rate(20.0, 30.0).with_recording_start_t(true);
    spec.lag_ms = 700.0;
    spec.avg_rtt_ms = 340.0;
    spec.rtt_samples = spec.regular_rtt_samples();
    let written = write("r_long_lag", &spec);
    let bundle = common::load_usable("r_long_lag", &written);
    let with_r = align(&bundle, &AlignConfig::default());
    let mut without = bundle.clone();
    without.meta.recording_start_t = None;
    let without_r = align(&without, &AlignConfig::default());

    let (right_with, frames) = keys_accuracy(&with_r, &written.truth, |_| true);
    let (right_without, _) = keys_accuracy(&without_r, &written.truth, |_| true);
    let run = &with_r.clock.runs[0];
    report_figure(&format!(
        "regression R + 700 ms lag: keys held {:.2}% with R (confidence {:.2}, {:?}), {:.2}% without ({:.2}), {frames} frames",
        100.0 * right_with,
        run.confidence,
        run.source,
        100.0 * right_without,
        without_r.clock.runs[0].confidence
    ));
    assert!(right_with >= 0.99, "keys held right on {right_with}");
    assert!(
        right_with >= right_without,
        "{right_with} < {right_without}"
    );
    let bar = QualityConfig::default().alignment.min_confidence;
    assert!(
        run.confidence >= bar,
        "confidence {} under {bar}",
        run.confidence
    );
    // Rivals outside R's window no longer count: never less confident than without R (up to the
    // last digits of the fine search).
    assert!(run.confidence + 0.005 >= without_r.clock.runs[0].confidence);
}

/// A frozen picture while the car creeps at a top speed of 0.8, turns on the spot, stops and
/// goes, or stands with the brake held: every segment holding a second or more of it fails
/// `frozen`.
#[test]
fn a_frozen_picture_fails_whatever_the_speed() {
    let cases = [
        (SpeedProfile::Slow, VehicleModel::scaled(0.8, 0.0)),
        (SpeedProfile::TurnOnSpot, VehicleModel::scaled(20.0, 0.008)),
        (SpeedProfile::StopAndGo, VehicleModel::scaled(0.8, 0.0)),
        (SpeedProfile::Stopped, VehicleModel::prototype()),
    ];
    for (i, (profile, vehicle)) in cases.into_iter().enumerate() {
        let mut case = SweepCase::steady(&format!("frozen-{profile}"), 40 + i as u64);
        case.profile = profile;
        case.vehicle = vehicle;
        case.plan = FramePlan::Constant { fps: 15.0 };
        case.defect = Some(Defect::new(DefectKind::Frozen, 5_500, 8_500));
        let (written, run) = run_spec(&case.name, &case.spec());
        let mut judged = 0;
        for (segment, quality) in run.splice.segments.iter().zip(&run.verdicts) {
            let frozen_ms: f64 = common::coverage_ms(segment, &written.truth)
                .iter()
                .filter(|(kind, _)| *kind == DefectKind::Frozen)
                .map(|(_, ms)| ms)
                .sum::<f64>()
                // An empty sum is -0.0; printed, that reads "-0 ms".
                + 0.0;
            let check = quality
                .checks
                .iter()
                .find(|c| c.check == CheckName::Frozen)
                .expect("frozen check");
            report_figure(&format!(
                "regression frozen while {profile}: segment {} holds {frozen_ms:.0} ms frozen: {} ({})",
                segment.index,
                if check.passed { "passed" } else { "FAILED" },
                check.reason
            ));
            if frozen_ms >= 1_000.0 {
                judged += 1;
                assert!(!check.passed, "{profile}: {}", check.reason);
            }
        }
        assert!(judged >= 1, "{profile}: no segment held the frozen span");
    }
}

/// Limited-range black (luma 16, what an RGB black frame encodes to) is black, not washed out.
#[test]
fn black_frames_are_reported_as_black() {
    let mut spec = SyntheticSpec::constant_rate(15.0, 10.0);
    spec.defects
        .push(Defect::new(DefectKind::Black, 5_000, 10_000).with_variant(1));
    let (_written, run) = run_spec("black_limited_range", &spec);
    let black_segment = run
        .splice
        .segments
        .iter()
        .position(|s| s.start_pts_ms >= 4_900.0 && s.end_pts_ms <= 10_000.0)
        .expect("a segment inside the black span");
    let quality = &run.verdicts[black_segment];
    let reason = |name| {
        quality
            .checks
            .iter()
            .find(|c| c.check == name)
            .expect("check")
    };
    report_figure(&format!(
        "regression black at luma 16: black: {}; washed_out: {}",
        reason(CheckName::Black).reason,
        reason(CheckName::WashedOut).reason
    ));
    assert!(
        quality.failed.contains(&CheckName::Black),
        "{:?}",
        quality.failed
    );
    assert!(
        !quality.failed.contains(&CheckName::WashedOut),
        "{:?}",
        quality.failed
    );
}

/// A 16x16 video is not training data: refused, with the size and the limit in the reason.
#[test]
fn a_tiny_video_is_refused_with_its_size() {
    let spec = SyntheticSpec::constant_rate(3.0, 10.0).with_size(16, 16);
    let written = write("tiny_video", &spec);
    let loaded = load(&written);
    let reason = loaded
        .reject_reason()
        .cloned()
        .expect("a 16x16 video is refused");
    let text = reason.to_string();
    report_figure(&format!(
        "regression 16x16 video: {}: {text}",
        reason.code()
    ));
    assert_eq!(reason.code(), "unusable_frame_size");
    assert!(text.contains("16x16") && text.contains("256x144"), "{text}");
}

/// A latency part `{}` lacks `avgRtt` and `rttSamples`: refused, naming the part and the field.
/// `"avgRtt": null` (a client with no sample) stays tolerated.
#[test]
fn a_latency_part_without_its_fields_is_refused() {
    let spec = SyntheticSpec::constant_rate(3.0, 10.0);
    let written = write("latency_empty", &spec);
    let latency = part_path(&written, "_latency.json");
    std::fs::write(&latency, b"{}").expect("rewrite");
    let reason = load(&written).reject_reason().cloned().expect("refused");
    let text = reason.to_string();
    report_figure(&format!(
        "regression latency {{}}: {}: {text}",
        reason.code()
    ));
    assert_eq!(reason.code(), "missing_field");
    assert!(
        text.contains("latency") && text.contains("avgRtt"),
        "{text}"
    );

    std::fs::write(
        &latency,
        br#"{"initialLatency":null,"avgRtt":null,"rttSamples":[]}"#,
    )
    .expect("rewrite");
    let loaded = load(&written);
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let usable = loaded.into_bundle().expect("usable");
    let run = run(usable);
    assert!(!run.alignment.frames.is_empty());
}

/// The same for meta: `startTime` and `endTime` place the recorder on the epoch clock; the client
/// always writes them (`startTime: null` in one real session stays tolerated).
#[test]
fn a_meta_part_without_its_times_is_refused() {
    let spec = SyntheticSpec::constant_rate(3.0, 10.0);
    let written = write("meta_without_times", &spec);
    let meta = part_path(&written, "_meta.json");
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta).expect("read")).expect("json");
    value.as_object_mut().expect("object").remove("endTime");
    std::fs::write(&meta, serde_json::to_vec(&value).expect("json")).expect("rewrite");
    let reason = load(&written).reject_reason().cloned().expect("refused");
    assert_eq!(reason.code(), "missing_field");
    assert!(reason.to_string().contains("`endTime`"), "{reason}");
}

/// The bundle part of `written` whose name ends in `suffix`.
fn part_path(written: &common::Written, suffix: &str) -> std::path::PathBuf {
    std::fs::read_dir(written.dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no part ending in {suffix}"))
}
