//! The broken corpus (`sd_fixtures::write_broken_corpus`) against discovery and loading: every
//! case of the tree comes to exactly the outcome it names (the reject code of `problems[0]`,
//! usable, failing one CLEAN check, or passed over by discovery), the untouched copy is usable,
//! nothing in the tree is unaccounted for, and nothing panics. One line per case is printed.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use sd_core::{
    discover, load_bundle, report, AlignConfig, BundleSource, CheckName, Limits, PartKind,
    QualityConfig, SessionReport,
};
use sd_fixtures::{write_broken_corpus, write_bundle, BrokenCase, Expected, Naming, SyntheticSpec};
use sd_tests::{report_figure, Dir};

/// 8 s at 10 fps, 320x176 (large enough for the picture measurements): two segments.
fn valid_spec() -> SyntheticSpec {
    SyntheticSpec::constant_rate(8.0, 10.0)
}

fn check_name(check: CheckName) -> String {
    serde_json::to_value(check)
        .expect("serialise check")
        .as_str()
        .expect("check names serialise as strings")
        .to_owned()
}

/// Segments, and the checks failing in any of them, in one line.
fn segments_line(report: &SessionReport) -> String {
    let failing: BTreeSet<String> = report
        .segments
        .iter()
        .flat_map(|s| s.quality.failed.iter().copied().map(check_name))
        .collect();
    let errors = report.video.as_ref().map_or(0, |v| v.decode_errors);
    format!(
        "{} segments, {} decode errors, failing [{}]",
        report.segments.len(),
        errors,
        failing.into_iter().collect::<Vec<_>>().join(" ")
    )
}

/// Checks one discovered case; returns what it came to, for the printed line.
fn check_bundle(
    case: &BrokenCase,
    source: &BundleSource,
    root: &Path,
    control: Option<&SessionReport>,
) -> String {
    assert_eq!(
        source.folder,
        root.join(&case.wallet_folder),
        "{}: bundle found in another folder",
        case.name
    );
    let loaded = load_bundle(source, &Limits::default());
    let session = report(&loaded, &AlignConfig::default(), &QualityConfig::default());
    let got = match loaded.reject_reason() {
        Some(reason) => format!("rejected {}: {reason}", reason.code()),
        None => format!(
            "accepted, {} frames, {}",
            loaded.video.as_ref().map_or(0, |v| v.frame_pts_ms.len()),
            segments_line(&session)
        ),
    };
    match case.expected {
        Expected::Rejected { code } => {
            let reason = loaded.reject_reason();
            assert_eq!(
                reason.map(|r| r.code()),
                Some(code),
                "{}: {:?}",
                case.name,
                loaded.problems
            );
            assert!(!session.usable, "{}: report says usable", case.name);
        }
        Expected::Accepted | Expected::AcceptedFailing { .. } => {
            assert!(
                loaded.problems.is_empty(),
                "{}: {:?}",
                case.name,
                loaded.problems
            );
            assert!(session.usable, "{}: report says unusable", case.name);
            loaded
                .clone()
                .into_bundle()
                .unwrap_or_else(|err| panic!("{}: into_bundle: {err}", case.name));
        }
        Expected::Ignored | Expected::Unlisted => {
            panic!("{}: expected no bundle, found {source:?}", case.name)
        }
    }
    if let Expected::AcceptedFailing { check } = case.expected {
        assert!(
            !session.segments.is_empty(),
            "{}: no segment to fail {check}",
            case.name
        );
        for segment in &session.segments {
            let failed: Vec<String> = segment
                .quality
                .failed
                .iter()
                .copied()
                .map(check_name)
                .collect();
            assert!(
                failed.iter().any(|f| f == check),
                "{}: segment {} does not fail {check} (fails {failed:?})",
                case.name,
                segment.index
            );
        }
        // The failure is the breakage's: the intact copy passes that check everywhere.
        let control = control.expect("the control is checked first");
        assert!(!control.segments.is_empty());
        for segment in &control.segments {
            assert!(
                !segment
                    .quality
                    .failed
                    .iter()
                    .any(|f| check_name(*f) == check),
                "the intact copy fails {check} too, in segment {}",
                segment.index
            );
        }
    }
    got
}

#[test]
fn every_broken_case_has_its_expected_outcome() {
    let dir = Dir::new("broken_corpus");
    let valid = dir.path().join("valid");
    let written = write_bundle(&valid, &valid_spec(), Naming::UploadEpoch).expect("valid bundle");
    let root = dir.path().join("raw");
    let started = Instant::now();
    let cases = write_broken_corpus(&valid, &root).expect("write the corpus");
    let write_s = started.elapsed().as_secs_f64();

    // The case list itself.
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len(), "case names repeat");
    let ids: BTreeSet<&str> = cases.iter().map(|c| c.session_id.as_str()).collect();
    assert_eq!(ids.len(), cases.len(), "session ids repeat");
    assert_eq!(cases[0].name, "valid");
    assert_eq!(cases[0].session_id, written.session_id);
    assert_eq!(cases[0].expected, Expected::Accepted);
    let codes: BTreeSet<&str> = cases
        .iter()
        .filter_map(|c| match c.expected {
            Expected::Rejected { code } => Some(code),
            _ => None,
        })
        .collect();
    // Every reject code reachable from files at rest (`unreadable` needs a reader that file
    // permissions stop, which root is not; the last test reaches it another way).
    for code in [
        "missing_part",
        "unsafe_path",
        "invalid_session_id",
        "invalid_wallet",
        "wallet_mismatch",
        "session_id_mismatch",
        "part_too_large",
        "too_deep",
        "too_many_items",
        "malformed_json",
        "non_finite_number",
        "absurd_number",
        "empty_video",
        "undecodable_video",
        "unsupported_video",
    ] {
        assert!(codes.contains(code), "no case is rejected {code}");
    }
    // The truth file stays out of the corpus.
    let truth_name = written.truth.file_name().expect("truth name").to_owned();
    assert!(!root.join(&cases[0].wallet_folder).join(truth_name).exists());

    let discovery = discover(&root).expect("discover the corpus");
    let ignored: BTreeSet<String> = discovery
        .ignored
        .iter()
        .map(|i| {
            let relative = i.path.strip_prefix(&root).expect("ignored under the root");
            relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();

    let mut control: Option<SessionReport> = None;
    for case in &cases {
        let found: Vec<&BundleSource> = discovery
            .bundles
            .iter()
            .filter(|b| b.session_id == case.session_id)
            .collect();
        for path in &case.ignored_paths {
            assert!(
                ignored.contains(path),
                "{}: {path} not listed as ignored ({ignored:?})",
                case.name
            );
        }
        let got = match case.expected {
            Expected::Ignored | Expected::Unlisted => {
                assert!(found.is_empty(), "{}: discovered {found:?}", case.name);
                if case.expected == Expected::Ignored {
                    assert!(!case.ignored_paths.is_empty(), "{}", case.name);
                    "ignored".to_owned()
                } else {
                    assert!(
                        !ignored.iter().any(|p| p.contains(&case.session_id)),
                        "{}: listed as ignored",
                        case.name
                    );
                    "unlisted".to_owned()
                }
            }
            _ => {
                assert_eq!(found.len(), 1, "{}: {found:?}", case.name);
                let got = check_bundle(case, found[0], &root, control.as_ref());
                if case.name == "valid" {
                    let loaded = load_bundle(found[0], &Limits::default());
                    control = Some(report(
                        &loaded,
                        &AlignConfig::default(),
                        &QualityConfig::default(),
                    ));
                }
                got
            }
        };
        report_figure(&format!(
            "BROKEN {:<28} {:<34} expected {:<36} got {}",
            case.name,
            case.session_id.escape_debug().to_string(),
            case.expected.to_string(),
            got
        ));
    }

    // Nothing in the tree is unaccounted for.
    for bundle in &discovery.bundles {
        assert!(
            ids.contains(bundle.session_id.as_str()),
            "a bundle no case names: {bundle:?}"
        );
    }
    let claimed: BTreeSet<&str> = cases
        .iter()
        .flat_map(|c| c.ignored_paths.iter().map(String::as_str))
        .collect();
    for path in &ignored {
        assert!(
            claimed.contains(path.as_str()),
            "ignored, by no case: {path}"
        );
    }
    report_figure(&format!(
        "BROKEN corpus: {} cases, {} bundles, {} ignored, written in {write_s:.2} s",
        cases.len(),
        discovery.bundles.len(),
        discovery.ignored.len()
    ));
}

/// `unreadable` cannot be reached from files at rest by root, who reads any file whatever its
/// mode; a part that disappears between discovery and loading reaches it for anyone.
#[test]
fn a_part_gone_after_discovery_is_unreadable() {
    let dir = Dir::new("broken_corpus_unreadable");
    let spec = SyntheticSpec::constant_rate(1.0, 10.0);
    write_bundle(dir.path(), &spec, Naming::Plain).expect("valid bundle");
    let found = discover(dir.path()).expect("discover");
    let source = &found.bundles[0];
    std::fs::remove_file(&source.parts[&PartKind::Camera].path).expect("remove camera");
    let loaded = load_bundle(source, &Limits::default());
    let reason = loaded.reject_reason().expect("rejected");
    report_figure(&format!(
        "BROKEN vanished part: {}: {reason}",
        reason.code()
    ));
    assert_eq!(reason.code(), "unreadable");
}
