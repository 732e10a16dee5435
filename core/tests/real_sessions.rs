//! The real sessions through CLEAN: the per-frame metrics every picture threshold is placed
//! against (printed for `docs/QUALITY.md`), and the checks that must not fire on real footage.
//! Reads `../shared/real-sessions` and says `SKIPPED` plainly when it is absent.

mod common;

use common::spread;

use sd_core::{
    busiest_key_transitions, discover, load_bundle, Bundle, CheckName, FrameStats, Limits,
    QualityConfig,
};
use sd_tests::{real_sessions, report_figure};

/// The three decodable real sessions (the fourth's video is empty).
fn usable_real_sessions(test: &str) -> Option<Vec<Bundle>> {
    let dir = real_sessions(test)?;
    let found = discover(&dir).expect("discover");
    let usable: Vec<Bundle> = found
        .bundles
        .iter()
        .filter_map(|source| load_bundle(source, &Limits::default()).into_bundle().ok())
        .collect();
    assert_eq!(usable.len(), 3, "three real sessions are usable");
    Some(usable)
}

/// min / p5 / p50 / max, as `docs/QUALITY.md` quotes them.
const REAL_SPREAD: &[f64] = &[0.0, 0.05, 0.5, 1.0];

/// Changes between consecutive frames that each carry a timestamp of their own (a burst's frames
/// share one, a frame may have none: both are left out of every segment).
fn measured_changes(bundle: &Bundle) -> Vec<f64> {
    let pts = &bundle.video.frame_pts_ms;
    let own = |i: usize| {
        pts[i].is_some()
            && pts.get(i.wrapping_sub(1)).copied().flatten() != pts[i]
            && pts.get(i + 1).copied().flatten() != pts[i]
    };
    bundle
        .video
        .frame_stats
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(i, _)| own(*i) && own(*i - 1))
        .filter_map(|(_, s)| s.change.map(f64::from))
        .collect()
}

#[test]
fn real_frames_sit_clear_of_every_picture_threshold() {
    let Some(bundles) = usable_real_sessions("real_frames_sit_clear_of_every_picture_threshold")
    else {
        return;
    };
    let config = QualityConfig::default();
    let a = &config.artifacts;
    let mut all_changes = Vec::new();
    for bundle in &bundles {
        let stats = &bundle.video.frame_stats;
        let metric = |f: fn(&FrameStats) -> f64| stats.iter().map(f).collect::<Vec<_>>();
        let changes = measured_changes(bundle);
        report_figure(&format!(
            "REAL {} {} frames (min / p5 / p50 / max): sharpness {}, mean luma {}, luma std {}, blockiness {}, change between frames with their own time {}",
            bundle.session_id,
            stats.len(),
            spread(metric(|s| f64::from(s.sharpness)), REAL_SPREAD),
            spread(metric(|s| f64::from(s.mean_luma)), REAL_SPREAD),
            spread(metric(|s| f64::from(s.luma_std)), REAL_SPREAD),
            spread(metric(|s| f64::from(s.blockiness)), REAL_SPREAD),
            spread(changes.clone(), REAL_SPREAD),
        ));
        for s in stats {
            assert!(f64::from(s.sharpness) >= 2.0 * config.blur.min_sharpness);
            assert!(f64::from(s.mean_luma) >= a.black_max_luma + 10.0);
            assert!(f64::from(s.mean_luma) <= a.washed_min_luma - 50.0);
            assert!(f64::from(s.luma_std) >= 2.0 * a.washed_max_contrast);
            assert!(f64::from(s.blockiness) < a.glitch_min_blockiness);
        }
        all_changes.extend(changes);
    }
    // A diffusion model's output never stands still: the stillest step between two real frames
    // that each have their own time is above every bar a frozen picture falls under.
    assert!(all_changes.len() >= 150, "{} steps", all_changes.len());
    let stillest = all_changes.iter().copied().fold(f64::INFINITY, f64::min);
    report_figure(&format!(
        "REAL stillest step between frames with their own time: {stillest:.2} over {} steps (frozen_still_max_change {}, frozen_moving_max_change {})",
        all_changes.len(),
        a.frozen_still_max_change,
        a.frozen_moving_max_change
    ));
    assert!(stillest > a.frozen_moving_max_change, "{stillest}");
    assert!(stillest > a.frozen_still_max_change, "{stillest}");
}

#[test]
fn real_segments_fail_only_for_their_clock_and_their_gaps() {
    let Some(bundles) =
        usable_real_sessions("real_segments_fail_only_for_their_clock_and_their_gaps")
    else {
        return;
    };
    // No picture or input check fires on real footage. (Their clocks are not trusted, so the
    // frozen check reads no logs here: only its always-on rule is exercised.)
    let mut segments = 0;
    for bundle in bundles {
        let run = common::run(bundle);
        for quality in &run.verdicts {
            segments += 1;
            for check in &quality.failed {
                assert!(
                    matches!(check, CheckName::AlignmentConfidence | CheckName::FrameGap),
                    "{check:?} fired on a real segment: {:?}",
                    quality.checks
                );
            }
        }
    }
    assert_eq!(segments, 3, "tp5owb's three segments");
}

#[test]
fn real_key_input_stays_under_the_key_spam_bar() {
    let Some(dir) = real_sessions("real_key_input_stays_under_the_key_spam_bar") else {
        return;
    };
    // All four sessions, 832oey's too (its video is empty, its input is real).
    let config = QualityConfig::default().actions;
    let window = config.key_spam_window_ms;
    for source in discover(&dir).expect("discover").bundles {
        let loaded = load_bundle(&source, &Limits::default());
        let Some(inputs) = loaded.inputs else {
            panic!("{}: no inputs", source.session_id);
        };
        // An endless window holds them all.
        let transitions = busiest_key_transitions(&inputs, f64::INFINITY);
        let busiest = busiest_key_transitions(&inputs, window);
        report_figure(&format!(
            "REAL {} W/A/S/D transitions: {} in all, {busiest} in the busiest {:.0} ms (bar {})",
            source.session_id,
            transitions,
            window,
            config.max_key_transitions_per_s * window / 1000.0
        ));
        assert!((busiest as f64) < config.max_key_transitions_per_s * window / 1000.0);
    }
}
