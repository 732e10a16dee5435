//! ALIGN against ground truth on a few hand-picked synthetic sessions with a known recorder
//! start `R` and lag, aligned without (and with) `recordingStartT` in meta. The randomized grid
//! is `align_sweep.rs`; these pin down single behaviours (a clock break, no motion at all).
//!
//! Every figure is printed to stderr past the test harness's capture, so CI shows it.

mod common;

use common::{keys_accuracy, load_usable, offset_error_ms, write, OffsetError};
use sd_core::{align, AlignConfig, Alignment, LagSource, OffsetSource};
use sd_fixtures::{PtsSkew, SyntheticSpec, Truth};
use sd_tests::report_figure;

struct Figures {
    source: OffsetSource,
    /// How far ALIGN's page times are from those of the states the frames show.
    error: OffsetError,
    keys_accuracy: f64,
}

fn aligned(label: &str, spec: &SyntheticSpec) -> (Alignment, Truth) {
    let written = write(label, spec);
    let bundle = load_usable(label, &written);
    (align(&bundle, &AlignConfig::default()), written.truth)
}

fn figures(label: &str, alignment: &Alignment, truth: &Truth) -> Figures {
    let error = offset_error_ms(alignment, truth);
    let (keys_accuracy, frames) = keys_accuracy(alignment, truth, |_| true);
    let run = &alignment.clock.runs[0];
    report_figure(&format!(
        "ALIGN truth {label:<28} source {:<20} confidence {:.2}  error mean {:>7.1} ms, mean |e| {:>6.1}, max |e| {:>6.1}, on its own animation frame {:>5.1}%  keys held {:>6.2}% of {frames} frames{}",
        format!("{:?}", run.source),
        run.confidence,
        error.mean_ms,
        error.mean_abs_ms,
        error.max_abs_ms,
        100.0 * error.exact_share,
        100.0 * keys_accuracy,
        run.lag.as_ref().map_or(String::new(), |lag| format!("  {}", lag.describe()))
    ));
    assert!(frames > 0, "{label}: no frame compared");
    Figures {
        source: run.source,
        error,
        keys_accuracy,
    }
}

fn run_case(label: &str, spec: &SyntheticSpec) -> Figures {
    let (alignment, truth) = aligned(label, spec);
    figures(label, &alignment, &truth)
}

#[test]
fn constant_rate_30fps_without_recording_start() {
    let f = run_case("constant_30fps", &SyntheticSpec::constant_rate(40.0, 30.0));
    assert_eq!(f.source, OffsetSource::MotionCorrelation);
    assert!(f.error.mean_abs_ms <= 33.0, "{:?}", f.error);
    assert!(f.keys_accuracy >= 0.99, "keys accuracy {}", f.keys_accuracy);
}

#[test]
fn variable_rate_with_stall_and_burst_without_recording_start() {
    let f = run_case("messy_variable_rate", &SyntheticSpec::messy(40.0));
    assert_eq!(f.source, OffsetSource::MotionCorrelation);
    assert!(f.error.mean_abs_ms <= 33.0, "{:?}", f.error);
    assert!(f.keys_accuracy >= 0.99, "keys accuracy {}", f.keys_accuracy);
}

#[test]
fn recording_start_t_anchors_the_lag_search() {
    let spec = SyntheticSpec::constant_rate(20.0, 30.0).with_recording_start_t(true);
    let (alignment, truth) = aligned("constant_30fps_with_R", &spec);
    let f = figures("constant_30fps_with_R", &alignment, &truth);
    assert_eq!(f.source, OffsetSource::RecordingStartT);
    // S = R - lag, the lag measured inside the window R allows, not taken from the RTT.
    let lag = alignment.clock.runs[0].lag.as_ref().expect("a lag");
    assert_eq!(lag.source, LagSource::Measured);
    assert!(
        (lag.lag_ms - spec.lag_ms).abs() <= 33.0,
        "{}",
        lag.describe()
    );
    assert!(f.keys_accuracy >= 0.99, "keys accuracy {}", f.keys_accuracy);
}

#[test]
fn a_clock_break_across_a_long_stall_gets_its_own_offset() {
    let (alignment, truth) = aligned("clock_break", &clock_break_spec());
    let f = figures("clock_break_two_runs", &alignment, &truth);
    let runs = &alignment.clock.runs;
    for run in runs {
        let fit = run.motion.as_ref().expect("fit");
        let errors: Vec<f64> = alignment.frames[run.first_frame..=run.last_frame]
            .iter()
            .filter_map(|row| {
                row.page_t_ms
                    .map(|t| t - truth.frames[row.frame].state_page_ms)
            })
            .collect();
        report_figure(&format!(
            "  run {}: frames {}-{} offset error {:.1} ms, score {:.3} second {:.3} moving {} ({:.1} s) channels {}",
            run.run,
            run.first_frame,
            run.last_frame,
            errors.iter().sum::<f64>() / errors.len().max(1) as f64,
            fit.score,
            fit.second_score,
            fit.moving_pairs,
            fit.moving_ms / 1000.0,
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
    assert!(f.error.mean_abs_ms <= 33.0, "{:?}", f.error);
    assert!(f.keys_accuracy >= 0.99, "keys accuracy {}", f.keys_accuracy);
}

#[test]
fn no_motion_means_low_confidence_and_the_meta_prior() {
    // Like several real sessions: nobody drives, the picture barely moves.
    let mut spec = SyntheticSpec::constant_rate(20.0, 30.0);
    spec.drive.clear();
    let (alignment, truth) = aligned("no_motion", &spec);
    let f = figures("no_motion_prior_only", &alignment, &truth);
    assert_eq!(f.source, OffsetSource::MetaTiming);
    // The fit was tried and found nothing it could trust (or nothing to fit at all).
    let fit = alignment.clock.runs[0].motion.as_ref();
    assert!(fit.is_none_or(|fit| fit.confidence < 0.2), "{fit:?}");
    let prior = &alignment.clock.prior;
    report_figure(&format!("ALIGN truth prior: {}", prior.detail));
    // The prior is honest about its uncertainty: the truth lies inside it (plus the unknown lag).
    assert!(
        f.error.max_abs_ms <= prior.uncertainty_ms + spec.lag_ms,
        "prior off by {} ms, claims +-{} ms",
        f.error.max_abs_ms,
        prior.uncertainty_ms
    );
}

#[test]
fn no_motion_with_recording_start_t_assumes_the_lag_and_says_so() {
    let mut spec = SyntheticSpec::constant_rate(20.0, 30.0).with_recording_start_t(true);
    spec.drive.clear();
    let (alignment, truth) = aligned("no_motion_with_R", &spec);
    figures("no_motion_with_R", &alignment, &truth);
    let run = &alignment.clock.runs[0];
    let lag = run.lag.as_ref().expect("a lag");
    assert_eq!(run.source, OffsetSource::RecordingStartT);
    assert_eq!(lag.source, LagSource::Assumed);
    // The mean RTT plus the default model delay, under CLEAN's bar.
    let config = AlignConfig::default().clock;
    assert!(
        (lag.lag_ms - (alignment.clock.latency.mean_ms + config.default_model_delay_ms)).abs()
            < 1e-6
    );
    assert!(run.confidence < 0.2, "{}", run.confidence);
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
    let (alignment, truth) = aligned("clock_break_with_r", &spec);
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

#[test]
fn with_recording_start_t_a_later_run_without_a_fit_of_its_own_is_not_trusted() {
    // Nobody drives after the stall: the second run has nothing to fit, and the clock may have
    // broken across the stall (it does, by 4 s, here).
    let mut spec = clock_break_spec().with_recording_start_t(true);
    let stall_page_ms = spec.shown_page_ms(20_000);
    spec.drive
        .retain(|event| event.page_ms() < stall_page_ms - 1_000.0);
    spec.drive.push(sd_fixtures::DriveEvent::Key {
        page_ms: stall_page_ms - 1_000.0,
        key: "w".to_owned(),
        down: false,
    });
    let (alignment, truth) = aligned("later_run_without_fit", &spec);
    figures("later_run_without_fit", &alignment, &truth);
    let runs = &alignment.clock.runs;
    assert_eq!(runs.len(), 2);
    let later = &runs[1];
    report_figure(&format!(
        "ALIGN truth later run without a fit: {:?} confidence {:.2} ({})",
        later.source,
        later.confidence,
        later
            .lag
            .as_ref()
            .map_or(String::new(), |lag| lag.describe())
    ));
    assert!(later.confidence < 0.2, "{}", later.confidence);
    assert_eq!(
        later.lag.as_ref().map(|lag| lag.source),
        Some(LagSource::Assumed)
    );
}
