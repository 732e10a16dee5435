//! The real sessions through CLEAN: the per-frame metrics every picture threshold is placed
//! against (printed for `docs/QUALITY.md`), and the checks that must not fire on real footage.
//! Reads `../shared/real-sessions` and says `SKIPPED` plainly when it is absent.

use sd_core::{discover, load_bundle, CheckName, Limits, QualityConfig, VideoProbe};
use sd_tests::{real_sessions, report_figure};

mod common;

/// `min / p5 / p50 / max` of the finite values.
fn spread(mut values: Vec<f64>) -> String {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    format!(
        "{:.2} / {:.2} / {:.2} / {:.2}",
        at(0.0),
        at(0.05),
        at(0.5),
        at(1.0)
    )
}

/// Changes between consecutive frames that both carry their own timestamp (a burst's frames
/// share one and are left out of every segment).
fn measured_changes(video: &VideoProbe) -> Vec<f64> {
    let pts = &video.frame_pts_ms;
    video
        .frame_stats
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(i, _)| pts[*i].is_some() && pts[*i] != pts[*i - 1])
        .filter_map(|(_, s)| s.change.map(f64::from))
        .collect()
}

#[test]
fn real_frames_sit_clear_of_every_picture_threshold() {
    let Some(dir) = real_sessions("real_frames_sit_clear_of_every_picture_threshold") else {
        return;
    };
    let config = QualityConfig::default();
    let a = &config.artifacts;
    let found = discover(&dir).expect("discover");
    let mut all_changes = Vec::new();
    for source in &found.bundles {
        let Ok(bundle) = load_bundle(source, &Limits::default()).into_bundle() else {
            continue;
        };
        let stats = &bundle.video.frame_stats;
        let metric = |f: fn(&sd_core::FrameStats) -> f64| stats.iter().map(f).collect::<Vec<_>>();
        let changes = measured_changes(&bundle.video);
        report_figure(&format!(
            "REAL {} {} frames (min / p5 / p50 / max): sharpness {}, mean luma {}, luma std {}, blockiness {}, change between measured frames {}",
            bundle.session_id,
            stats.len(),
            spread(metric(|s| f64::from(s.sharpness))),
            spread(metric(|s| f64::from(s.mean_luma))),
            spread(metric(|s| f64::from(s.luma_std))),
            spread(metric(|s| f64::from(s.blockiness))),
            spread(changes.clone()),
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
    // that each have their own time is well above the bar a frozen picture falls under.
    let stillest = all_changes.iter().copied().fold(f64::INFINITY, f64::min);
    report_figure(&format!(
        "REAL stillest step between measured frames: {stillest:.2} (frozen_still_max_change {}, frozen_max_change {})",
        a.frozen_still_max_change, a.frozen_max_change
    ));
    assert!(stillest > a.frozen_max_change, "{stillest}");

    // The segments cut from real sessions fail only for their clock and their frame gaps: no
    // picture or input check fires on real footage.
    for source in &found.bundles {
        let Ok(bundle) = load_bundle(source, &Limits::default()).into_bundle() else {
            continue;
        };
        let run = common::run(bundle);
        for quality in &run.verdicts {
            for check in &quality.failed {
                assert!(
                    matches!(check, CheckName::AlignmentConfidence | CheckName::FrameGap),
                    "{:?} fired on a real segment: {:?}",
                    check,
                    quality.checks
                );
            }
        }
    }
}
