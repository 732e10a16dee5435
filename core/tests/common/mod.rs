//! What the truth tests share: a synthetic bundle written with its answer, loaded, and taken
//! through ALIGN -> SPLICE -> CLEAN exactly as `process` does (without writing frames).
#![allow(dead_code)] // each test binary uses its own part of it

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sd_core::{
    align, clean_segment, discover, load_bundle, splice, AlignConfig, Alignment, Bundle, CheckName,
    LoadedBundle, QualityConfig, Segment, SegmentQuality, SessionContext, Splice,
};
use sd_fixtures::{write_bundle, DefectKind, Naming, SyntheticSpec, Truth};
use sd_tests::Dir;

/// A synthetic session on disk with its truth.
#[derive(Debug)]
pub struct Written {
    pub dir: Dir,
    pub truth: Truth,
}

/// Writes `spec` into a fresh temporary folder.
pub fn write(label: &str, spec: &SyntheticSpec) -> Written {
    let dir = Dir::new(label);
    let written = write_bundle(dir.path(), spec, Naming::UploadEpoch)
        .unwrap_or_else(|err| panic!("{label}: writing the bundle: {err:#}"));
    let truth = Truth::read(&written.truth).expect("truth");
    // The answer key is not a part; leave only the bundle for discovery.
    std::fs::remove_file(&written.truth).expect("remove truth");
    Written { dir, truth }
}

/// Loads the one bundle in `written` (usable or not).
pub fn load(written: &Written) -> LoadedBundle {
    let found = discover(written.dir.path()).expect("discover");
    assert_eq!(found.bundles.len(), 1, "{:?}", found.ignored);
    load_bundle(&found.bundles[0], &sd_core::Limits::default())
}

/// Loads the one bundle in `written`, which must be usable.
pub fn load_usable(label: &str, written: &Written) -> Bundle {
    load(written)
        .into_bundle()
        .unwrap_or_else(|reason| panic!("{label}: rejected: {reason}"))
}

/// A session through the whole pipeline.
#[derive(Debug)]
pub struct Run {
    pub bundle: Bundle,
    pub alignment: Alignment,
    pub splice: Splice,
    pub verdicts: Vec<SegmentQuality>,
}

/// ALIGN -> SPLICE -> CLEAN with the default configuration.
pub fn run(bundle: Bundle) -> Run {
    let config = QualityConfig::default();
    let alignment = align(&bundle, &AlignConfig::default());
    let spliced = splice(&alignment.frames, &config.splice);
    let verdicts = {
        let context = SessionContext::new(&bundle, &alignment);
        spliced
            .segments
            .iter()
            .map(|segment| clean_segment(segment, &context, &config))
            .collect()
    };
    Run {
        bundle,
        alignment,
        splice: spliced,
        verdicts,
    }
}

/// Writes, loads and runs `spec`.
pub fn run_spec(label: &str, spec: &SyntheticSpec) -> (Written, Run) {
    let written = write(label, spec);
    let bundle = load_usable(label, &written);
    (written, run(bundle))
}

/// How much of a segment each injected defect covers, by the truth: per kind, the video time of
/// the segment's frames that carry it (each frame counts until the next frame of the segment; the
/// last one for the segment's median step).
pub fn coverage_ms(segment: &Segment, truth: &Truth) -> Vec<(DefectKind, f64)> {
    let pts: Vec<f64> = segment.rows.iter().filter_map(|row| row.pts_ms).collect();
    let mut steps: Vec<f64> = pts.windows(2).map(|w| w[1] - w[0]).collect();
    steps.sort_by(f64::total_cmp);
    let median_step = steps.get(steps.len() / 2).copied().unwrap_or(0.0);
    let mut covered: Vec<(DefectKind, f64)> = Vec::new();
    for (i, row) in segment.rows.iter().enumerate() {
        let step = match (row.pts_ms, segment.rows.get(i + 1).and_then(|r| r.pts_ms)) {
            (Some(a), Some(b)) => b - a,
            _ => median_step,
        };
        for kind in &truth.frames[row.frame].defects {
            match covered.iter_mut().find(|(k, _)| k == kind) {
                Some((_, ms)) => *ms += step,
                None => covered.push((*kind, step)),
            }
        }
    }
    covered
}

/// The defects a check flags frame by frame (the reviewer's lanes), not only segment by segment.
pub const PICTURE_DEFECTS: [DefectKind; 5] = [
    DefectKind::Blur,
    DefectKind::Black,
    DefectKind::WashedOut,
    DefectKind::Frozen,
    DefectKind::Glitch,
];

/// Frame by frame over `segment`, the `flagged` frames of a check against the frames the truth
/// says carry `kind`: [flagged with it, flagged without it, with it but not flagged].
pub fn flagged_frame_counts(
    segment: &Segment,
    flagged: &[usize],
    truth: &Truth,
    kind: DefectKind,
) -> [usize; 3] {
    let mut counts = [0; 3];
    for row in &segment.rows {
        let is_flagged = flagged.contains(&row.frame);
        let truly = truth.frames[row.frame].defects.contains(&kind);
        match (is_flagged, truly) {
            (true, true) => counts[0] += 1,
            (true, false) => counts[1] += 1,
            (false, true) => counts[2] += 1,
            (false, false) => {}
        }
    }
    counts
}

/// The check that must catch each defect kind inside a segment (idle is SPLICE's, not CLEAN's).
pub fn check_for(kind: DefectKind) -> Option<CheckName> {
    match kind {
        DefectKind::Blur => Some(CheckName::Blur),
        DefectKind::Black => Some(CheckName::Black),
        DefectKind::WashedOut => Some(CheckName::WashedOut),
        DefectKind::Frozen => Some(CheckName::Frozen),
        DefectKind::Glitch => Some(CheckName::Glitch),
        DefectKind::Spam => Some(CheckName::KeySpam),
        DefectKind::Idle => None,
    }
}

/// Share of measured frames whose keys held match the truth, over the frames `keep` accepts.
pub fn keys_accuracy(
    alignment: &Alignment,
    truth: &Truth,
    keep: impl Fn(usize) -> bool,
) -> (f64, usize) {
    let (mut right, mut compared) = (0, 0);
    for row in &alignment.frames {
        let Some(keys) = &row.keys_held else {
            continue;
        };
        if !keep(row.frame) {
            continue;
        }
        compared += 1;
        right += usize::from(*keys == truth.frames[row.frame].keys_held);
    }
    (right as f64 / compared.max(1) as f64, compared)
}

/// How far the page times ALIGN gives the measured frames are from the page time of the state
/// each frame shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OffsetError {
    /// Mean of the signed errors: a bias of the whole clock.
    pub mean_ms: f64,
    /// Mean of the absolute errors.
    pub mean_abs_ms: f64,
    pub max_abs_ms: f64,
    /// Share of frames placed on the very animation frame whose state they show (within 1 ms).
    pub exact_share: f64,
}

pub fn offset_error_ms(alignment: &Alignment, truth: &Truth) -> OffsetError {
    let errors: Vec<f64> = alignment
        .frames
        .iter()
        .filter_map(|row| {
            row.page_t_ms
                .filter(|_| row.keys_held.is_some())
                .map(|t| t - truth.frames[row.frame].state_page_ms)
        })
        .collect();
    let n = errors.len().max(1) as f64;
    OffsetError {
        mean_ms: errors.iter().sum::<f64>() / n,
        mean_abs_ms: errors.iter().map(|e| e.abs()).sum::<f64>() / n,
        max_abs_ms: errors.iter().map(|e| e.abs()).fold(0.0, f64::max),
        exact_share: errors.iter().filter(|e| e.abs() < 1.0).count() as f64 / n,
    }
}

/// `f` of every item, in order, computed on one named worker thread per core.
pub fn parallel_map<T: Sync, R: Send + Clone>(
    items: &[T],
    name: &str,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(vec![None; items.len()]);
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    std::thread::scope(|scope| {
        for worker in 0..workers {
            std::thread::Builder::new()
                .name(format!("{name}-{worker}"))
                .spawn_scoped(scope, || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = f(item);
                    results.lock().expect("results")[i] = Some(result);
                })
                .expect("spawn a worker");
        }
    });
    results
        .into_inner()
        .expect("results")
        .into_iter()
        .map(|result| result.expect("every item done"))
        .collect()
}

/// The quantiles `qs` (0 = min, 1 = max) of the finite values, joined by ` / `; `-` when none.
pub fn spread(mut values: Vec<f64>, qs: &[f64]) -> String {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return "-".to_owned();
    }
    qs.iter()
        .map(|&q| {
            let v = values[((values.len() - 1) as f64 * q).round() as usize];
            if v.abs() >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
        .collect::<Vec<_>>()
        .join(" / ")
}
