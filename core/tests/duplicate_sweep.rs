//! The duplicate check over a sweep: the same drive uploaded again (as it is, re-encoded at a third
//! of the bit rate, trimmed by 2 s at the start, scaled to 960x528, cropped, at another frame rate)
//! must be caught, and distinct drives through one scene (same textures, same lobby, same prompt)
//! and the real sessions against each other must not be. Prints recall and the false-match rate.
//!
//! Each video is cut into 5 s windows the way SPLICE cuts segments; a window of a later video is
//! looked up the way the ledger looks it up (its frames' keys against the earlier windows' anchor
//! keys) and compared with the candidates by `find_duplicate`.

mod common;

use std::path::{Path, PathBuf};

use sd_core::{
    find_duplicate, probe_video, DuplicateConfig, DuplicateMatch, EarlierSegment, FingerprintFrame,
    Limits, SegmentFingerprint,
};
use sd_fixtures::{write_bundle, Naming, SyntheticSpec};
use sd_tests::{ffmpeg_reencode, real_sessions, report_figure, Dir};

const WINDOW_MS: i64 = 5_000;
const STALL_MS: i64 = 1_000;
/// The scene every synthetic drive goes through.
const SCENE_SEED: u64 = 4_242;

/// Every frame's hash and time (frames without a hash left out).
fn fingerprint_video(video: &Path) -> Vec<FingerprintFrame> {
    let probe = probe_video(video, &Limits::default())
        .unwrap_or_else(|reason| panic!("{}: {reason}", video.display()));
    probe
        .frame_pts_ms
        .iter()
        .zip(&probe.frame_stats)
        .filter_map(|(pts, stats)| {
            Some(FingerprintFrame {
                pts_ms: (*pts)?.round() as i64,
                hash: stats.fingerprint?,
            })
        })
        .collect()
}

/// Cut as SPLICE cuts: never across a stall (a gap over 1 s), 5 s windows from each stretch's
/// start, a piece under 2.5 s dropped.
fn windows(frames: &[FingerprintFrame]) -> Vec<SegmentFingerprint> {
    let mut out: Vec<SegmentFingerprint> = Vec::new();
    let mut start: Option<i64> = None;
    let mut previous: Option<i64> = None;
    for frame in frames {
        let stalled = previous.is_some_and(|p| frame.pts_ms - p > STALL_MS);
        let full = start.is_some_and(|s| frame.pts_ms - s >= WINDOW_MS);
        if start.is_none() || stalled || full {
            out.push(SegmentFingerprint::default());
            start = Some(frame.pts_ms);
        }
        if let Some(window) = out.last_mut() {
            window.frames.push(*frame);
        }
        previous = Some(frame.pts_ms);
    }
    out.retain(|w| match (w.frames.first(), w.frames.last()) {
        (Some(a), Some(b)) => b.pts_ms - a.pts_ms >= WINDOW_MS / 2,
        _ => false,
    });
    out
}

/// One video's windows as the ledger would hold them.
struct Indexed {
    label: String,
    windows: Vec<SegmentFingerprint>,
}

impl Indexed {
    fn new(label: &str, video: &Path) -> Self {
        Self {
            label: label.to_owned(),
            windows: windows(&fingerprint_video(video)),
        }
    }

    /// The earlier windows the index hands over for `query` (a shared key), with their
    /// neighbours, as segments (as the ledger hands them over).
    fn candidates(&self, query: &SegmentFingerprint) -> Vec<EarlierSegment> {
        let keys = query.lookup_keys();
        let hit: Vec<usize> = self
            .windows
            .iter()
            .enumerate()
            .filter(|(_, w)| w.index_keys().iter().any(|k| keys.binary_search(k).is_ok()))
            .map(|(i, _)| i)
            .collect();
        (0..self.windows.len())
            .filter(|i| hit.iter().any(|h| h.abs_diff(*i) <= 1))
            .map(|i| EarlierSegment {
                wallet: "earlier-wallet".to_owned(),
                session_id: self.label.clone(),
                segment: i + 1,
                fingerprint: self.windows[i].clone(),
            })
            .collect()
    }
}

/// Per window of `later`: the duplicate verdict against `earlier` and the strongest run.
fn compare(later: &Indexed, earlier: &Indexed) -> Vec<(bool, Option<DuplicateMatch>)> {
    let config = DuplicateConfig::default();
    later
        .windows
        .iter()
        .map(|window| {
            let found = find_duplicate(window, &earlier.candidates(window), &config);
            (found.duplicate, found.strongest)
        })
        .collect()
}

/// What comparing later videos with earlier ones found: the window comparisons made, the ones
/// taken for a duplicate, and every strongest run with where it came from.
#[derive(Default)]
struct CrossComparison {
    compared: usize,
    false_matches: Vec<String>,
    runs: Vec<(String, DuplicateMatch)>,
}

/// Every window of each `later` against its `earlier` (pairs of distinct drives: none is a copy).
fn cross_compare<'a>(pairs: impl Iterator<Item = (&'a Indexed, &'a Indexed)>) -> CrossComparison {
    let mut out = CrossComparison::default();
    for (later, earlier) in pairs {
        for (i, (dup, run)) in compare(later, earlier).into_iter().enumerate() {
            out.compared += 1;
            let place = format!("{} window {} vs {}", later.label, i + 1, earlier.label);
            if dup {
                out.false_matches
                    .push(format!("{place}: {}", run_line(&run)));
            }
            if let Some(run) = run {
                out.runs.push((place, run));
            }
        }
    }
    out
}

/// The bit rate of a video file over its frames' span, bits per second.
fn bitrate(video: &Path, frames: &[FingerprintFrame]) -> u64 {
    let bytes = std::fs::metadata(video).expect("video size").len();
    let span_ms = match (frames.first(), frames.last()) {
        (Some(a), Some(b)) => (b.pts_ms - a.pts_ms).max(1000),
        _ => 1000,
    };
    bytes * 8 * 1000 / span_ms as u64
}

/// The copies a cheat would upload of `video`, each with its name.
fn copies(video: &Path, dir: &Path, width: u32, height: u32) -> Vec<(&'static str, PathBuf)> {
    let third = format!("{}", bitrate(video, &fingerprint_video(video)) / 3);
    let out = |name: &str| dir.join(format!("{name}.webm"));
    let crop = |per_side: u32| {
        let (dx, dy) = (
            width * per_side / 100 / 2 * 2,
            height * per_side / 100 / 2 * 2,
        );
        format!("crop={}:{}:{dx}:{dy}", width - 2 * dx, height - 2 * dy)
    };
    let plans: Vec<(&'static str, Vec<&str>, Vec<String>)> = vec![
        ("third_bitrate", vec![], vec!["-b:v".into(), third.clone()]),
        (
            "trimmed_2s",
            vec!["-ss", "2"],
            vec!["-b:v".into(), "2M".into()],
        ),
        (
            "scaled_960x528",
            vec![],
            vec![
                "-vf".into(),
                "scale=960:528".into(),
                "-b:v".into(),
                "2M".into(),
            ],
        ),
        (
            "cropped_2pct",
            vec![],
            vec!["-vf".into(), crop(2), "-b:v".into(), "2M".into()],
        ),
        (
            "fps_10",
            vec![],
            vec!["-r".into(), "10".into(), "-b:v".into(), "2M".into()],
        ),
    ];
    let mut made = vec![("same_file", video.to_path_buf())];
    for (name, before, args) in plans {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ffmpeg_reencode(video, &out(name), &before, &args);
        made.push((name, out(name)));
    }
    made
}

/// A synthetic drive through the scene, written; its video's path.
fn drive(dir: &Dir, label: &str, mut spec: SyntheticSpec) -> PathBuf {
    spec.seed = SCENE_SEED;
    let folder = dir.path().join(label);
    write_bundle(&folder, &spec, Naming::Plain)
        .unwrap_or_else(|err| panic!("{label}: {err:#}"))
        .video
}

fn run_line(run: &Option<DuplicateMatch>) -> String {
    match run {
        Some(run) => format!(
            "run {:.1} s of {:.1} comparable, {} of {} frames, {:.1} bits, spread {} bits, offset {} ms",
            run.run_ms as f64 / 1000.0,
            run.comparable_ms as f64 / 1000.0,
            run.frames_matched,
            run.frames_in_run,
            run.mean_distance,
            run.spread_bits,
            run.offset_ms
        ),
        None => "no run".to_owned(),
    }
}

#[test]
fn copies_are_caught_and_distinct_drives_are_not() {
    let dir = Dir::new("duplicate-sweep");
    // Distinct drives of one scene: every drive differs (its seed), the scene does not. Messy
    // ones start in the lobby; frame rates vary.
    let specs: Vec<(String, SyntheticSpec)> = (0..8u64)
        .map(|i| {
            let seed = 9_000 + i;
            let spec = match i % 4 {
                0 => SyntheticSpec::messy_seeded(20.0, seed),
                1 => SyntheticSpec::constant_rate_seeded(20.0, 15.0, seed),
                2 => SyntheticSpec::constant_rate_seeded(20.0, 30.0, seed),
                _ => SyntheticSpec::constant_rate_seeded(20.0, 10.0, seed),
            };
            let spec = if i < 3 {
                spec.with_size(1280, 704)
            } else {
                spec
            };
            (format!("drive{i}"), spec)
        })
        .collect();
    let videos = common::parallel_map(&specs, "render", |(label, spec)| {
        (drive(&dir, label, spec.clone()), spec.width, spec.height)
    });
    let drives: Vec<Indexed> = specs
        .iter()
        .zip(&videos)
        .map(|((label, _), (video, _, _))| Indexed::new(label, video))
        .collect();

    // Recall: every copy of the first three drives against its original.
    let mut caught = 0;
    let mut total = 0;
    let mut misses = Vec::new();
    for (original, (video, width, height)) in drives.iter().zip(&videos).take(3) {
        let copy_dir = dir.path().join(format!("{}-copies", original.label));
        std::fs::create_dir_all(&copy_dir).expect("copies folder");
        for (name, copy) in copies(video, &copy_dir, *width, *height) {
            let indexed = Indexed::new(name, &copy);
            let verdicts = compare(&indexed, original);
            let hits = verdicts.iter().filter(|(dup, _)| *dup).count();
            report_figure(&format!(
                "duplicate recall: {} {name}: {hits} of {} windows caught; weakest {}",
                original.label,
                verdicts.len(),
                run_line(
                    &verdicts
                        .iter()
                        .map(|(_, run)| run.clone())
                        .min_by_key(|run| run.as_ref().map_or(0, |r| r.run_ms))
                        .flatten()
                )
            ));
            for (i, (dup, run)) in verdicts.iter().enumerate() {
                if !dup {
                    misses.push(format!(
                        "{} {name} window {}: {}",
                        original.label,
                        i + 1,
                        run_line(run)
                    ));
                }
            }
            caught += hits;
            total += verdicts.len();
        }
    }

    // False matches: every later drive's windows against every earlier drive.
    let CrossComparison {
        compared,
        false_matches,
        runs,
    } = cross_compare(
        drives
            .iter()
            .enumerate()
            .flat_map(|(j, later)| drives[..j].iter().map(move |earlier| (later, earlier))),
    );
    let longest = runs
        .iter()
        .map(|(_, run)| run)
        .max_by_key(|run| run.run_ms)
        .cloned();
    let mut closest: Vec<(f64, String)> = runs
        .iter()
        .map(|(place, r)| {
            let share = r.run_ms as f64 / r.comparable_ms.max(1) as f64;
            let matched = r.frames_matched as f64 / r.frames_in_run.max(1) as f64;
            (
                share.min(matched),
                format!("{place}: {}", run_line(&Some(r.clone()))),
            )
        })
        .collect();
    report_figure(&format!(
        "duplicate recall over copies: {caught} of {total} windows ({:.1}%)",
        100.0 * caught as f64 / total.max(1) as f64
    ));
    report_figure(&format!(
        "duplicate false matches between distinct drives of one scene: {} of {compared} window \
         comparisons ({:.2}%); longest run {}",
        false_matches.len(),
        100.0 * false_matches.len() as f64 / compared.max(1) as f64,
        run_line(&longest)
    ));
    closest.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (_, line) in closest.iter().take(3) {
        report_figure(&format!("  closest to a match (distinct drives): {line}"));
    }
    for line in &misses {
        report_figure(&format!("  missed: {line}"));
    }
    for line in &false_matches {
        report_figure(&format!("  false match: {line}"));
    }
    assert!(
        caught as f64 >= 0.95 * total as f64,
        "recall {caught}/{total}: {misses:#?}"
    );
    assert!(false_matches.is_empty(), "{false_matches:#?}");
}

#[test]
fn real_sessions_do_not_match_each_other_and_their_copies_do() {
    let Some(folder) = real_sessions("real_sessions_do_not_match_each_other_and_their_copies_do")
    else {
        return;
    };
    let mut videos: Vec<PathBuf> = std::fs::read_dir(&folder)
        .expect("real sessions")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "webm"))
        .filter(|path| std::fs::metadata(path).is_ok_and(|m| m.len() > 0))
        .collect();
    videos.sort();
    let sessions: Vec<Indexed> = videos
        .iter()
        .filter_map(|video| {
            let label = video.file_stem()?.to_string_lossy().into_owned();
            // A video that does not decode (the empty one) is a rejected session: no segments.
            probe_video(video, &Limits::default()).ok()?;
            Some(Indexed::new(&label, video))
        })
        .collect();
    assert!(
        sessions.len() >= 3,
        "{} decodable real sessions",
        sessions.len()
    );
    let CrossComparison {
        compared,
        false_matches,
        ..
    } = cross_compare(sessions.iter().enumerate().flat_map(|(j, later)| {
        sessions
            .iter()
            .enumerate()
            .filter(move |(i, _)| *i != j)
            .map(move |(_, earlier)| (later, earlier))
    }));
    report_figure(&format!(
        "duplicate false matches between the {} real sessions: {} of {compared} window comparisons",
        sessions.len(),
        false_matches.len()
    ));
    assert!(false_matches.is_empty(), "{false_matches:#?}");

    // The longest real session, copied as a cheat would.
    let (video, original) = videos
        .iter()
        .zip(&sessions)
        .max_by_key(|(_, s)| s.windows.len())
        .expect("a session");
    let dir = Dir::new("duplicate-real");
    let mut caught = 0;
    let mut total = 0;
    for (name, copy) in copies(video, dir.path(), 1280, 704) {
        let verdicts = compare(&Indexed::new(name, &copy), original);
        let hits = verdicts.iter().filter(|(dup, _)| *dup).count();
        report_figure(&format!(
            "duplicate recall: real {} {name}: {hits} of {} windows",
            original.label,
            verdicts.len()
        ));
        for (i, (dup, run)) in verdicts.iter().enumerate() {
            if !dup {
                report_figure(&format!("  missed: window {}: {}", i + 1, run_line(run)));
            }
        }
        caught += hits;
        total += verdicts.len();
    }
    assert!(
        caught as f64 >= 0.9 * total as f64,
        "real copies: {caught}/{total}"
    );
}
