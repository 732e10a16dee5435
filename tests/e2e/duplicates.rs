//! The same drive uploaded again is caught and not paid (`duplicate`), whether under a new session
//! id, re-encoded at a third of the bit rate, trimmed by 2 s, scaled to 960x528 or under another
//! wallet; the earlier session keeps its pay, reprocessing it never matches itself, and another
//! drive through the same scene is not caught.

use std::path::Path;

use sd_fixtures::{write_bundle, Naming, SyntheticSpec};
use sd_tests::{ffmpeg_reencode, report_figure, stdout_with_status, Dir, REAL_WALLET};
use serde_json::Value;

use crate::process::Outputs;
use crate::run;

/// A valid wallet that is not the original's (the wrapped-SOL mint's key).
const OTHER_WALLET: &str = "So11111111111111111111111111111111111111112";
const SCENE_SEED: u64 = 11;

fn spec(session_id: &str, wallet: &str, drive_seed: u64) -> SyntheticSpec {
    let mut spec = SyntheticSpec::constant_rate_seeded(21.0, 10.0, drive_seed).with_size(1280, 704);
    spec.seed = SCENE_SEED;
    spec.session_id = session_id.to_owned();
    spec.wallet = wallet.to_owned();
    spec
}

fn write(raw: &Path, spec: &SyntheticSpec) -> std::path::PathBuf {
    let folder = raw.join(&spec.wallet);
    let written = write_bundle(&folder, spec, Naming::UploadEpoch).expect("write bundle");
    std::fs::remove_file(&written.truth).expect("drop the truth file");
    written.video
}

fn process_json(out: &Outputs, raw: &Path) -> Value {
    let mut args = vec![
        "process".to_owned(),
        raw.display().to_string(),
        "--json".into(),
    ];
    args.extend(out.layout_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    serde_json::from_str(&stdout_with_status(&run(&args), 0)).expect("process --json")
}

fn pending(out: &Outputs, wallet: &str) -> u64 {
    let ledger = out.ledger_path().display().to_string();
    let output = run(&["payouts", "list", "--json", "--ledger", &ledger]);
    let payouts: Value = serde_json::from_str(&stdout_with_status(&output, 0)).expect("payouts");
    payouts["wallets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|w| w["wallet_address"] == wallet)
        .and_then(|w| w["pending_lamports"].as_u64())
        .unwrap_or(0)
}

fn session<'a>(summary: &'a Value, session_id: &str) -> &'a Value {
    summary["sessions"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["session_id"] == session_id))
        .unwrap_or_else(|| panic!("{session_id} in {summary:#}"))
}

#[test]
fn copies_of_a_drive_are_caught_and_not_paid() {
    let dir = Dir::new("duplicates");
    let out = Outputs::in_dir(&dir);
    let original_raw = dir.path().join("raw-original");
    let original_id = "session_1770000000000_orig01";
    let original = write(&original_raw, &spec(original_id, REAL_WALLET, 5));
    let first = process_json(&out, &original_raw);
    assert_eq!(
        session(&first, original_id)["clean_segments"],
        4,
        "{first:#}"
    );
    assert_eq!(pending(&out, REAL_WALLET), 4_000_000);

    // The copies, each a whole bundle under its own session id.
    let raw = dir.path().join("raw-copies");
    let copies: [(&str, &str, &str); 5] = [
        (
            "session_1770000100000_copy01",
            REAL_WALLET,
            "new session id",
        ),
        (
            "session_1770000200000_copy02",
            REAL_WALLET,
            "a third of the bit rate",
        ),
        (
            "session_1770000300000_copy03",
            REAL_WALLET,
            "trimmed by 2 s",
        ),
        (
            "session_1770000400000_copy04",
            REAL_WALLET,
            "scaled to 960x528",
        ),
        (
            "session_1770000500000_copy05",
            OTHER_WALLET,
            "another wallet",
        ),
    ];
    for (session_id, wallet, how) in copies {
        let video = write(&raw, &spec(session_id, wallet, 5));
        match how {
            "a third of the bit rate" => {
                let bits = std::fs::metadata(&original).expect("size").len() * 8 / 21 / 3;
                ffmpeg_reencode(&original, &video, &[], &["-b:v", &bits.to_string()]);
            }
            "trimmed by 2 s" => ffmpeg_reencode(&original, &video, &["-ss", "2"], &["-b:v", "2M"]),
            "scaled to 960x528" => ffmpeg_reencode(
                &original,
                &video,
                &[],
                &["-vf", "scale=960:528", "-b:v", "2M"],
            ),
            _ => {}
        }
    }
    // A different drive through the same scene, recorded after the original.
    let other_drive = "session_1770000600000_other1";
    write(&raw, &spec(other_drive, REAL_WALLET, 6));

    let second = process_json(&out, &raw);
    let mut caught = 0;
    let mut total = 0;
    for (session_id, _, how) in copies {
        let copy = session(&second, session_id);
        let segments = copy["segments"].as_u64().unwrap_or(0);
        let failed: Vec<&str> = copy["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let duplicates = failed.iter().filter(|c| **c == "duplicate").count() as u64;
        report_figure(&format!(
            "duplicate e2e: copy ({how}): {duplicates} of {segments} segments caught, {} paid",
            copy["clean_segments"]
        ));
        assert!(segments > 0, "{how}: {copy:#}");
        assert_eq!(
            duplicates, segments,
            "{how}: every segment is the original's: {copy:#}"
        );
        assert_eq!(copy["clean_segments"], 0, "{how}: {copy:#}");
        caught += duplicates;
        total += segments;
    }
    let distinct = session(&second, other_drive);
    let distinct_failed: Vec<&Value> = distinct["failed_checks"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    report_figure(&format!(
        "duplicate e2e: {caught} of {total} copied segments caught; another drive of the scene: {} of {} segments pass, failed checks {distinct_failed:?}",
        distinct["clean_segments"], distinct["segments"]
    ));
    assert!(
        !distinct_failed.iter().any(|c| *c == "duplicate"),
        "another drive is not a copy: {distinct:#}"
    );
    // The original keeps its pay; the other wallet earns nothing; the other drive is paid.
    let distinct_paid = distinct["clean_segments"].as_u64().unwrap_or(0);
    assert_eq!(
        pending(&out, REAL_WALLET),
        4_000_000 + distinct_paid * 1_000_000
    );
    assert_eq!(pending(&out, OTHER_WALLET), 0);

    // Reprocessing the original never matches itself nor its later copies.
    let again = process_json(&out, &original_raw);
    assert_eq!(
        session(&again, original_id)["clean_segments"],
        4,
        "{again:#}"
    );

    // The evidence is in the copy's quality.json: the earlier session and segment.
    let quality = find_file(&out.review_dir().join(OTHER_WALLET), "quality.json")
        .expect("a quality.json in the other wallet's review folder");
    let quality: Value =
        serde_json::from_slice(&std::fs::read(&quality).expect("quality.json")).expect("JSON");
    let check = quality["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["check"] == "duplicate"))
        .expect("a duplicate check");
    assert_eq!(check["passed"], false);
    assert_eq!(check["duplicate_of"]["session_id"], original_id);
    assert_eq!(check["duplicate_of"]["wallet"], REAL_WALLET);
}

/// The first file named `name` under `dir` (depth first).
fn find_file(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if entry.file_name() == name {
            return Some(path);
        }
    }
    None
}
