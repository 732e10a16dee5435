//! ALIGN against ground truth: synthetic sessions rendered from scripted inputs with a known
//! recorder start `R` and lag, aligned without (and with) `recordingStartT` in meta.
//!
//! Every figure is printed to stderr past the test harness's capture, so CI shows it.

use std::path::Path;

use sd_core::{align, discover, load_bundle, AlignConfig, Alignment, Limits, OffsetSource};
use sd_fixtures::{write_bundle, Naming, PtsSkew, SyntheticSpec, Truth};
use sd_tests::{report_figure, Dir};

struct Figures {
    label: String,
    source: OffsetSource,
    confidence: f64,
    /// Mean of (page time ALIGN gives a frame - the page time it truly shows), measured frames.
    offset_error_ms: f64,
    /// Largest absolute per-frame error.
    max_error_ms: f64,
    keys_accuracy: f64,
    frames_compared: usize,
    measured_lag_ms: Option<f64>,
}

fn run_case(label: &str, spec: &SyntheticSpec) -> Figures {
    let dir = Dir::new(label);
    let written = write_bundle(dir.path(), spec, Naming::UploadEpoch).expect("write bundle");
    let truth = Truth::read(&written.truth).expect("truth");
    let alignment = align_dir(dir.path());
    figures(label, &alignment, &truth)
}

fn align_dir(dir: &Path) -> Alignment {
    let found = discover(dir).expect("discover");
    let bundle = load_bundle(&found.bundles[0], &Limits::default())
        .into_bundle()
        .expect("usable bundle");
    align(&bundle, &AlignConfig::default())
}

fn figures(label: &str, alignment: &Alignment, truth: &Truth) -> Figures {
    let mut errors = Vec::new();
    let (mut right, mut compared) = (0, 0);
    for row in &alignment.frames {
        let (Some(page), Some(keys)) = (row.page_t_ms, &row.keys_held) else {
            continue;
        };
        let expected = &truth.frames[row.frame];
        errors.push(page - expected.shown_page_ms);
        compared += 1;
        right += usize::from(*keys == expected.keys_held);
    }
    let run = &alignment.clock.runs[0];
    let figures = Figures {
        label: label.to_owned(),
        source: run.source,
        confidence: run.confidence,
        offset_error_ms: errors.iter().sum::<f64>() / errors.len().max(1) as f64,
        max_error_ms: errors.iter().map(|e| e.abs()).fold(0.0, f64::max),
        keys_accuracy: right as f64 / compared.max(1) as f64,
        frames_compared: compared,
        measured_lag_ms: run.measured_lag_ms,
    };
    report_figure(&format!(
        "ALIGN truth {:<28} source {:<20} confidence {:.2}  offset error {:>7.1} ms (max {:>6.1})  keys held {:>6.2}% of {} frames",
        figures.label,
        format!("{:?}", figures.source),
        figures.confidence,
        figures.offset_error_ms,
        figures.max_error_ms,
        100.0 * figures.keys_accuracy,
        figures.frames_compared
    ));
    assert!(figures.frames_compared > 0, "{label}: no frame compared");
    figures
}

#[test]
fn constant_rate_30fps_without_recording_start() {
    let f = run_case("constant_30fps", &SyntheticSpec::constant_rate(40.0, 30.0));
    assert_eq!(f.source, OffsetSource::MotionCorrelation);
    assert!(
        f.offset_error_ms.abs() <= 33.0,
        "offset error {} ms",
        f.offset_error_ms
    );
    assert!(f.keys_accuracy >= 0.99, "keys accuracy {}", f.keys_accuracy);
}

#[test]
fn variable_rate_with_stall_and_burst_without_recording_start() {
    let f = run_case("messy_variable_rate", &SyntheticSpec::messy(40.0));
    assert_eq!(f.source, OffsetSource::MotionCorrelation);
    assert!(
        f.offset_error_ms.abs() <= 33.0,
        "offset error {} ms",
        f.offset_error_ms
    );
    assert!(f.keys_accuracy >= 0.99, "keys accuracy {}", f.keys_accuracy);
}

#[test]
fn recording_start_t_leaves_only_the_latency_model_error() {
    let spec = SyntheticSpec::constant_rate(20.0, 30.0).with_recording_start_t(true);
    let f = run_case("constant_30fps_with_R", &spec);
    assert_eq!(f.source, OffsetSource::RecordingStartT);
    // S = R - mean RTT, so the error is the lag the RTT does not explain: mean RTT - true lag.
    let expected = spec.lag_ms - spec.avg_rtt_ms;
    assert!(
        (f.offset_error_ms - expected).abs() < 2.0,
        "offset error {} ms, latency model error {expected} ms",
        f.offset_error_ms
    );
    // The motion fit still runs and measures the true lag through the model.
    let lag = f
        .measured_lag_ms
        .expect("a confident motion fit measures the lag");
    report_figure(&format!(
        "ALIGN truth measured lag {lag:.1} ms (true {} ms)",
        spec.lag_ms
    ));
    assert!((lag - spec.lag_ms).abs() <= 33.0, "measured lag {lag} ms");
}

#[test]
fn a_clock_break_across_a_long_stall_gets_its_own_offset() {
    let spec = clock_break_spec();
    let dir = Dir::new("clock_break");
    let written = write_bundle(dir.path(), &spec, Naming::UploadEpoch).expect("write bundle");
    let truth = Truth::read(&written.truth).expect("truth");
    let alignment = align_dir(dir.path());
    let f = figures("clock_break_two_runs", &alignment, &truth);
    let runs = &alignment.clock.runs;
    for run in runs {
        let fit = run.motion.as_ref().expect("fit");
        let errors: Vec<f64> = alignment.frames[run.first_frame..=run.last_frame]
            .iter()
            .filter_map(|row| {
                row.page_t_ms
                    .map(|t| t - truth.frames[row.frame].shown_page_ms)
            })
            .collect();
        report_figure(&format!(
            "  run {}: frames {}-{} offset error {:.1} ms, score {:.3} second {:.3} moving {} channels {}",
            run.run,
            run.first_frame,
            run.last_frame,
            errors.iter().sum::<f64>() / errors.len().max(1) as f64,
            fit.score,
            fit.second_score,
            fit.moving_pairs,
            fit.channels
                .iter()
                .map(|c| format!("{} r={:.2}", c.channel, c.r))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    assert_eq!(runs.len(), 2);
    let shift = runs[1].offset_ms - runs[0].offset_ms;
    report_figure(&format!(
        "ALIGN truth clock break: second run's offset moved {shift:.1} ms (true -4000 ms)"
    ));
    assert!((shift + 4_000.0).abs() <= 33.0, "offset moved {shift} ms");
    assert!(runs
        .iter()
        .all(|r| r.source == OffsetSource::MotionCorrelation));
    assert!(f.offset_error_ms.abs() <= 33.0);
    assert!(f.keys_accuracy >= 0.99, "keys accuracy {}", f.keys_accuracy);
}

#[test]
fn no_motion_means_low_confidence_and_the_meta_prior() {
    // Like several real sessions: nobody drives, the picture barely moves.
    let mut spec = SyntheticSpec::constant_rate(20.0, 30.0);
    spec.drive.clear();
    let dir = Dir::new("no_motion");
    let written = write_bundle(dir.path(), &spec, Naming::UploadEpoch).expect("write bundle");
    let truth = Truth::read(&written.truth).expect("truth");
    let alignment = align_dir(dir.path());
    let f = figures("no_motion_prior_only", &alignment, &truth);
    assert_eq!(f.source, OffsetSource::MetaTiming);
    // The fit was tried and found nothing it could trust (or nothing to fit at all).
    let fit = alignment.clock.runs[0].motion.as_ref();
    assert!(fit.is_none_or(|fit| fit.confidence < 0.2), "{fit:?}");
    let prior = &alignment.clock.prior;
    report_figure(&format!("ALIGN truth prior: {}", prior.detail));
    // The prior is honest about its uncertainty: the truth lies inside it (plus the unknown lag).
    assert!(
        f.max_error_ms <= prior.uncertainty_ms + spec.lag_ms,
        "prior off by {} ms, claims +-{} ms",
        f.offset_error_ms,
        prior.uncertainty_ms
    );
}

/// 40 s at 30 fps with an 8 s stall at 20 s across which the video clock runs 4 s ahead.
fn clock_break_spec() -> SyntheticSpec {
    let mut spec = SyntheticSpec::constant_rate(40.0, 30.0);
    for pts in spec.frame_pts_ms.iter_mut().filter(|pts| **pts >= 20_000) {
        *pts += 8_000;
    }
    spec.pts_skews = vec![PtsSkew {
        from_pts_ms: 28_000,
        skew_ms: 4_000.0,
    }];
    spec.rtt_samples = spec.regular_rtt_samples();
    spec
}

#[test]
fn recording_start_t_anchors_only_the_first_run_after_a_clock_break() {
    let spec = clock_break_spec().with_recording_start_t(true);
    let dir = Dir::new("clock_break_with_r");
    let written = write_bundle(dir.path(), &spec, Naming::UploadEpoch).expect("write bundle");
    let truth = Truth::read(&written.truth).expect("truth");
    let alignment = align_dir(dir.path());
    figures("clock_break_with_R", &alignment, &truth);
    let runs = &alignment.clock.runs;
    assert_eq!(runs[0].source, OffsetSource::RecordingStartT);
    // The second run's own fit wins: its keys are right, not 4 s off.
    assert_eq!(runs[1].source, OffsetSource::MotionCorrelation);
    let second: Vec<bool> = alignment.frames[runs[1].first_frame..=runs[1].last_frame]
        .iter()
        .filter_map(|row| {
            row.keys_held
                .as_ref()
                .map(|keys| *keys == truth.frames[row.frame].keys_held)
        })
        .collect();
    let right = second.iter().filter(|&&ok| ok).count() as f64 / second.len().max(1) as f64;
    report_figure(&format!(
        "ALIGN truth clock break with R: second run keys held {:.2}%",
        100.0 * right
    ));
    assert!(right >= 0.99, "{right}");
}
