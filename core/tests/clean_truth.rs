//! SPLICE and CLEAN against ground truth: a synthetic session with one span of each defect
//! (blur, black, washed-out, frozen, glitch, idle, key spam) between clean driving. Segments
//! inside a defect must fail on the matching check, clean segments must pass; precision and
//! recall per check are printed.

use std::collections::BTreeMap;

use sd_core::{
    align, clean_segment, discover, load_bundle, splice, AlignConfig, CheckName, Limits,
    QualityConfig, SegmentQuality, SessionContext, SkipKind,
};
use sd_fixtures::{write_bundle, DefectKind, Naming, SyntheticSpec, Truth};
use sd_tests::{report_figure, Dir};

mod common;

use common::{check_for, flagged_frame_counts, PICTURE_DEFECTS};

/// The checks that must catch each picture or input defect (idle is skipped by SPLICE instead).
/// Key spam also holds A and D together, which is an impossible input.
fn expected_checks(kind: DefectKind) -> Vec<CheckName> {
    match kind {
        DefectKind::Blur => vec![CheckName::Blur],
        DefectKind::Black => vec![CheckName::Black],
        DefectKind::WashedOut => vec![CheckName::WashedOut],
        DefectKind::Frozen => vec![CheckName::Frozen],
        DefectKind::Glitch => vec![CheckName::Glitch],
        DefectKind::Spam => vec![CheckName::KeySpam, CheckName::ImpossibleInputs],
        DefectKind::Idle => vec![],
    }
}

#[test]
fn each_defect_fails_its_check_and_clean_segments_pass() {
    let dir = Dir::new("clean_truth");
    let spec = SyntheticSpec::with_all_defects(7);
    let written = write_bundle(dir.path(), &spec, Naming::UploadEpoch).expect("write bundle");
    let truth = Truth::read(&written.truth).expect("truth");
    let found = discover(dir.path()).expect("discover");
    let bundle = load_bundle(&found.bundles[0], &Limits::default())
        .into_bundle()
        .expect("usable");
    let alignment = align(&bundle, &AlignConfig::default());
    let config = QualityConfig::default();
    let spliced = splice(&alignment.frames, &config.splice);
    let context = SessionContext::new(&bundle, &alignment);

    // Idle is skipped, not segmented.
    let idle = truth
        .defects
        .iter()
        .find(|d| d.kind == DefectKind::Idle)
        .expect("idle span");
    let skipped_idle = spliced
        .skipped
        .iter()
        .filter(|s| s.kind == SkipKind::Idle)
        .count();
    assert!(
        skipped_idle >= 1,
        "idle span {}-{} ms not skipped",
        idle.from_pts_ms,
        idle.to_pts_ms
    );
    assert!(spliced.segments.iter().all(|s| {
        s.end_pts_ms <= idle.from_pts_ms as f64 + 1000.0
            || s.start_pts_ms >= idle.to_pts_ms as f64 - 100.0
    }));

    // For every check: (true positives, false positives, false negatives).
    let mut counts: BTreeMap<CheckName, (usize, usize, usize)> = BTreeMap::new();
    let mut clean_passed = (0, 0);
    // Per picture check, frame by frame: (flagged and in its defect, flagged outside it, in its
    // defect but not flagged), over the segments.
    let mut per_frame: BTreeMap<CheckName, (usize, usize, usize)> = BTreeMap::new();
    for segment in &spliced.segments {
        let quality: SegmentQuality = clean_segment(segment, &context, &config);
        for kind in PICTURE_DEFECTS {
            let check = check_for(kind).expect("a picture defect has its check");
            let result = quality
                .checks
                .iter()
                .find(|c| c.check == check)
                .expect("every check is reported");
            // The lane shows what the share counts (of the frames with statistics).
            let measured = segment
                .rows
                .iter()
                .filter(|row| bundle.video.frame_stats.get(row.frame).is_some())
                .count();
            assert_eq!(
                result.frames.len(),
                (result.value * measured as f64).round() as usize,
                "{check:?} segment {}: flagged frames and share disagree",
                segment.index
            );
            let [tp, fp, fn_] = flagged_frame_counts(segment, &result.frames, &truth, kind);
            let entry = per_frame.entry(check).or_default();
            entry.0 += tp;
            entry.1 += fp;
            entry.2 += fn_;
        }
        // The defect a segment lies in: most of its frames carry it in the truth.
        let mut kinds: BTreeMap<DefectKind, usize> = BTreeMap::new();
        for row in &segment.rows {
            for kind in &truth.frames[row.frame].defects {
                *kinds.entry(*kind).or_default() += 1;
            }
        }
        let defect = kinds
            .iter()
            .filter(|(_, n)| **n * 2 > segment.rows.len())
            .map(|(k, _)| *k)
            .next();
        let expected = defect.map(expected_checks).unwrap_or_default();
        let line: Vec<String> = quality
            .checks
            .iter()
            .map(|c| {
                format!(
                    "{:?}={:.3}{}",
                    c.check,
                    c.value,
                    if c.passed { "" } else { "!" }
                )
            })
            .collect();
        report_figure(&format!(
            "CLEAN truth segment {:>2} {:>5.1}-{:>5.1} s truth {:<10} passed {:<5} {}",
            segment.index,
            segment.start_pts_ms / 1000.0,
            segment.end_pts_ms / 1000.0,
            defect.map_or("clean".to_owned(), |k| format!("{k:?}")),
            quality.passed,
            line.join(" ")
        ));
        for check in CheckName::ALL {
            let failed = quality.failed.contains(&check);
            let should = expected.contains(&check);
            let entry = counts.entry(check).or_default();
            match (failed, should) {
                (true, true) => entry.0 += 1,
                (true, false) => entry.1 += 1,
                (false, true) => entry.2 += 1,
                (false, false) => {}
            }
        }
        if defect.is_none() {
            clean_passed.1 += 1;
            clean_passed.0 += usize::from(quality.passed);
        } else {
            for check in &expected {
                assert!(
                    quality.failed.contains(check),
                    "segment {} in a {defect:?} span did not fail {check:?}: {:?}",
                    segment.index,
                    quality.checks
                );
            }
        }
    }
    for (check, (tp, fp, fn_)) in &counts {
        if tp + fp + fn_ == 0 {
            continue;
        }
        report_figure(&format!(
            "CLEAN truth {:<20} precision {:.2} recall {:.2} (tp {tp}, fp {fp}, fn {fn_})",
            format!("{check:?}"),
            *tp as f64 / (tp + fp).max(1) as f64,
            *tp as f64 / (tp + fn_).max(1) as f64,
        ));
    }
    for (check, (tp, fp, fn_)) in &per_frame {
        let precision = *tp as f64 / (tp + fp).max(1) as f64;
        let recall = *tp as f64 / (tp + fn_).max(1) as f64;
        report_figure(&format!(
            "CLEAN truth per frame {:<12} precision {precision:.3} recall {recall:.3} (tp {tp}, fp {fp}, fn {fn_})",
            format!("{check:?}"),
        ));
        // A reviewer jumps to flagged frames: nearly all must show the defect, and most of the
        // defect must be flagged (a frozen stretch's first frames still move).
        assert!(
            precision >= 0.95 && recall >= 0.75,
            "{check:?} per frame: precision {precision:.3} recall {recall:.3}"
        );
    }
    report_figure(&format!(
        "CLEAN truth clean segments passing: {} of {}",
        clean_passed.0, clean_passed.1
    ));
    assert!(
        clean_passed.1 >= 5,
        "too few clean segments: {}",
        clean_passed.1
    );
    assert_eq!(clean_passed.0, clean_passed.1, "a clean segment failed");
    // Every defect span produced at least one segment that failed on its check (recall) and no
    // check fired outside its defects (precision).
    for (check, (tp, fp, fn_)) in &counts {
        assert_eq!((*fp, *fn_), (0, 0), "{check:?}: tp {tp} fp {fp} fn {fn_}");
    }
}
