//! `scale-diffusion export` end to end: the processed real sessions and synthetic ones (variable
//! frame rate, a stall, a burst, every defect) exported as LeRobot v3 and WebDataset, read back by
//! the ecosystem's readers (`tests/python/check_export.py`: pyarrow, pandas, PyAV, webdataset and
//! `lerobot` itself), frame by frame against the published `aligned.json` and `quality.json`;
//! then exported again after nothing changed, after an override, after a new session and after a
//! reprocess: what changed is changed, nothing is duplicated, the rest is left as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sd_fixtures::{write_bundle, Naming, SyntheticSpec};
use sd_tests::{readers_python, real_sessions, report_figure, stdout_with_status, Dir};
use serde_json::Value;

use crate::process::Outputs;
use crate::run;

const WALLET: &str = "Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR";

/// Writes a synthetic bundle (its own session id: the id's time is part of the clock's prior)
/// and answers that id.
fn write(raw: &Path, spec: SyntheticSpec) -> String {
    let mut spec = spec;
    spec.wallet = WALLET.to_owned();
    let written = write_bundle(&raw.join(WALLET), &spec, Naming::UploadEpoch).expect("bundle");
    std::fs::remove_file(&written.truth).expect("drop the truth file");
    spec.session_id
}

fn export(format: &str, clean: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "export",
        "--format",
        format,
        "--json",
        clean.to_str().expect("utf-8 path"),
        out.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let summary: Value =
        serde_json::from_str(&stdout_with_status(&run(&args), 0)).expect("export --json");
    assert_eq!(summary["problems"], Value::Array(Vec::new()), "{summary}");
    summary
}

/// Runs the reader check; `Ok(figures)` when every frame matches, `Err(differences)` otherwise.
/// `Lerobot::Load` also loads a LeRobot export with `lerobot` itself (about 15 s).
fn read_back(
    python: &Path,
    format: &str,
    clean: &Path,
    out: &Path,
    lerobot: Lerobot,
) -> Result<String, String> {
    let script = sd_tests::workspace_root().join("tests/python/check_export.py");
    let mut command = Command::new(python);
    command.arg(&script).arg(format).arg(clean).arg(out);
    if format == "lerobot" {
        command.args(["--lerobot", lerobot.mode()]);
    }
    // No network for the Hugging Face libraries: everything is local.
    command
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_DATASETS_OFFLINE", "1");
    let output = command.output().expect("run the reader check");
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(25).collect();
        Err(format!(
            "{stdout}\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }
}

#[derive(Debug, Clone, Copy)]
enum Lerobot {
    Load,
    Skip,
}

impl Lerobot {
    fn mode(self) -> &'static str {
        match self {
            Lerobot::Load => "require",
            Lerobot::Skip => "skip",
        }
    }
}

fn counts(summary: &Value) -> [u64; 4] {
    ["episodes", "added", "changed", "removed"].map(|k| summary[k].as_u64().unwrap_or(u64::MAX))
}

/// Every data, video and shard file with its bytes and modification time.
fn files(out: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut found = BTreeMap::new();
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read export folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                if !path.ends_with("meta") {
                    stack.push(path);
                }
                continue;
            }
            let name = path.to_string_lossy();
            if name.ends_with(".parquet") || name.ends_with(".mp4") || name.ends_with(".tar") {
                let bytes = std::fs::read(&path).expect("read file");
                let modified = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .expect("mtime");
                found.insert(path, (bytes, modified));
            }
        }
    }
    found
}

/// `{wallet}/{session}/segment_NNN` of every segment a place's manifests list.
fn listed_segments(root: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    for wallet in std::fs::read_dir(root).into_iter().flatten().flatten() {
        for session in std::fs::read_dir(wallet.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let Ok(text) = std::fs::read_to_string(session.path().join("manifest.json")) else {
                continue;
            };
            let manifest: Value = serde_json::from_str(&text).expect("manifest");
            for segment in manifest["segments"].as_array().into_iter().flatten() {
                keys.push(format!(
                    "{}/{}/segment_{:03}",
                    manifest["wallet"].as_str().unwrap_or_default(),
                    manifest["session_id"].as_str().unwrap_or_default(),
                    segment["segment"].as_u64().unwrap_or_default()
                ));
            }
        }
    }
    keys.sort();
    keys
}

fn review_override(out: &Outputs, segment: &str, verdict: &str) {
    let mut args = vec![
        "review".to_owned(),
        "override".into(),
        segment.into(),
        verdict.into(),
        "--reason".into(),
        "export test".into(),
        "--by".into(),
        "qa".into(),
    ];
    args.extend(out.layout_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    stdout_with_status(&run(&args), 0);
}

#[test]
fn export_reads_back_frame_for_frame_and_follows_every_change() {
    let test = "export_reads_back_frame_for_frame_and_follows_every_change";
    let Some(python) = readers_python(test) else {
        return;
    };
    let dir = Dir::new("export");
    let out = Outputs::in_dir(&dir);
    let raw = dir.path().join("raw");
    // Variable frame rate with a stall and a burst; every defect kind at 10 fps.
    // At the real sessions' size: a LeRobot dataset has one picture size.
    let messy = write(
        &raw,
        SyntheticSpec::messy_seeded(30.0, 3).with_size(1280, 704),
    );
    let defects = write(
        &raw,
        SyntheticSpec::with_all_defects(5).with_size(1280, 704),
    );
    if let Some(real) = real_sessions(test) {
        let to = raw.join(WALLET);
        for entry in std::fs::read_dir(&real).expect("real sessions") {
            let path = entry.expect("entry").path();
            std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy part");
        }
    }
    out.process_json(&raw);
    // The real sessions' segments all wait for review (short stretches, a weak clock): a reviewer
    // passes them, and one failed synthetic segment, so that frames flagged by checks are exported.
    let in_review = listed_segments(out.review_dir());
    let promoted: Vec<&String> = in_review
        .iter()
        .filter(|k| !k.contains(&messy) && !k.contains(&defects))
        .chain(in_review.iter().filter(|k| k.contains(&defects)).take(1))
        .collect();
    for key in &promoted {
        review_override(&out, key, "--pass");
    }
    let clean = out.clean_dir();
    let published = listed_segments(clean);
    let lerobot = dir.path().join("lerobot");
    let wds = dir.path().join("wds");
    let wds_mp4 = dir.path().join("wds-mp4");

    let first = export("lerobot", clean, &lerobot, &[]);
    assert_eq!(
        counts(&first),
        [published.len() as u64, published.len() as u64, 0, 0]
    );
    export("webdataset", clean, &wds, &["--shard-size-mb", "1"]);
    export("webdataset", clean, &wds_mp4, &["--frames", "mp4"]);
    for (format, folder) in [
        ("lerobot", &lerobot),
        ("webdataset", &wds),
        ("webdataset", &wds_mp4),
    ] {
        let figures = read_back(&python, format, clean, folder, Lerobot::Load)
            .unwrap_or_else(|e| panic!("{e}"));
        report_figure(&format!(
            "export read back ({}): {figures}",
            folder.display()
        ));
    }
    assert!(
        files(&wds).len() > 1,
        "1 MB shards: the samples span several shards"
    );

    // Again with nothing changed: nothing written but the metadata.
    let before = (files(&lerobot), files(&wds));
    let again = export("lerobot", clean, &lerobot, &[]);
    assert_eq!(counts(&again), [published.len() as u64, 0, 0, 0]);
    assert_eq!(again["frames_written"], 0);
    let wds_again = export("webdataset", clean, &wds, &["--shard-size-mb", "1"]);
    assert_eq!(counts(&wds_again), [published.len() as u64, 0, 0, 0]);
    assert_eq!(
        before,
        (files(&lerobot), files(&wds)),
        "a rerun rewrote files"
    );

    // An override takes a segment out of the clean layout: the export still read back against
    // the new layout fails (the check can fail), then the rerun removes it and nothing else.
    let taken = published
        .iter()
        .find(|k| k.contains(&messy))
        .expect("a messy segment was published")
        .clone();
    review_override(&out, &taken, "--fail");
    assert!(
        read_back(&python, "lerobot", clean, &lerobot, Lerobot::Skip).is_err(),
        "the reader check passed an export that still holds a segment the clean layout dropped"
    );
    let videos_before: BTreeMap<_, _> = files(&lerobot)
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().ends_with(".mp4"))
        .collect();
    let removed = export("lerobot", clean, &lerobot, &[]);
    assert_eq!(counts(&removed), [published.len() as u64 - 1, 0, 0, 1]);
    assert_eq!(
        removed["frames_written"], 0,
        "nothing to encode for a removal"
    );
    let videos_after: BTreeMap<_, _> = files(&lerobot)
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().ends_with(".mp4"))
        .collect();
    assert_eq!(videos_before, videos_after, "a removal re-encoded videos");
    let wds_removed = export("webdataset", clean, &wds, &["--shard-size-mb", "1"]);
    assert_eq!(counts(&wds_removed), [published.len() as u64 - 1, 0, 0, 1]);
    for (format, folder) in [("lerobot", &lerobot), ("webdataset", &wds)] {
        read_back(&python, format, clean, folder, Lerobot::Skip)
            .unwrap_or_else(|e| panic!("after a removal: {e}"));
    }

    // Passing it again makes it changed back (a new episode: the export forgot it), and a new
    // session adds episodes in new files while the old ones stay byte for byte.
    review_override(&out, &taken, "--pass");
    write(
        &raw,
        SyntheticSpec::constant_rate_seeded(12.0, 15.0, 9).with_size(1280, 704),
    );
    out.process_json(&raw);
    let now = listed_segments(clean);
    let old_files = files(&lerobot);
    let grown = export("lerobot", clean, &lerobot, &[]);
    let added = (now.len() - (published.len() - 1)) as u64;
    assert_eq!(counts(&grown), [now.len() as u64, added, 0, 0]);
    let new_files = files(&lerobot);
    for (path, (bytes, _)) in &old_files {
        if path.to_string_lossy().ends_with(".mp4") {
            assert!(
                new_files.get(path).map(|f| &f.0) == Some(bytes),
                "{path:?} changed"
            );
        }
    }
    export("webdataset", clean, &wds, &["--shard-size-mb", "1"]);
    for (format, folder) in [("lerobot", &lerobot), ("webdataset", &wds)] {
        read_back(&python, format, clean, folder, Lerobot::Skip)
            .unwrap_or_else(|e| panic!("after adding: {e}"));
    }

    // What a killed run leaves (files no state lists, half-written ones) is cleaned by the
    // next; a reprocess that changes nothing a trainer sees changes nothing in the export.
    let strays = [
        lerobot.join("data/chunk-000/file-099.parquet"),
        lerobot.join("videos/observation.images.front/chunk-000/file-099.mp4"),
        lerobot.join("videos/observation.images.front/chunk-000/.file-100.mp4.partial"),
        wds.join("shard-000099.tar"),
    ];
    for stray in &strays {
        std::fs::write(stray, b"left by a killed run").expect("write a stray file");
    }
    out.process_json(&raw);
    let reprocessed = export("lerobot", clean, &lerobot, &[]);
    assert_eq!(counts(&reprocessed)[1..], [0, 0, 0], "{reprocessed}");
    export("webdataset", clean, &wds, &["--shard-size-mb", "1"]);
    for stray in &strays {
        assert!(!stray.exists(), "{} was left", stray.display());
    }
    read_back(&python, "webdataset", clean, &wds, Lerobot::Skip)
        .unwrap_or_else(|e| panic!("after a reprocess: {e}"));

    // A segment published again with other frame times (same pictures): its rows change and its
    // frames are encoded again at their new times.
    let shifted = now
        .iter()
        .find(|k| k.contains(&defects))
        .expect("a defect segment");
    let frames = republish_shifted(clean, shifted, 20.0);
    let changed = export("lerobot", clean, &lerobot, &[]);
    assert_eq!(counts(&changed)[1..], [0, 1, 0], "{changed}");
    assert_eq!(changed["frames_written"], frames, "{changed}");
    let wds_changed = export("webdataset", clean, &wds, &["--shard-size-mb", "1"]);
    assert_eq!(counts(&wds_changed)[1..], [0, 1, 0], "{wds_changed}");
    for (format, folder) in [("lerobot", &lerobot), ("webdataset", &wds)] {
        read_back(&python, format, clean, folder, Lerobot::Load)
            .unwrap_or_else(|e| panic!("after new frame times: {e}"));
    }

    // The wrong SOURCE (an empty folder) never empties an export.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("empty folder");
    let before = files(&lerobot);
    let output = run(&[
        "export",
        "--format",
        "lerobot",
        empty.to_str().expect("utf-8"),
        lerobot.to_str().expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(2), "an empty SOURCE is refused");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("not removing them all"), "{said}");
    assert!(before == files(&lerobot), "a refused run changed files");
}

/// Publishes `segment` again as a reprocess would with its frames after the first shown
/// `shift_ms` later (the same pictures): `aligned.json` edited, the manifest's entry updated.
/// Answers the segment's frame count.
fn republish_shifted(clean: &Path, segment: &str, shift_ms: f64) -> usize {
    use sha2::Digest as _;
    let (session, name) = segment.rsplit_once('/').expect("wallet/session/segment");
    let folder = clean.join(session);
    let aligned_path = folder.join(name).join("aligned.json");
    let mut aligned: Value =
        serde_json::from_slice(&std::fs::read(&aligned_path).expect("aligned.json")).expect("json");
    let rows = aligned["frames"].as_array_mut().expect("frames");
    let frames = rows.len();
    for row in rows.iter_mut().skip(1) {
        if let Some(pts) = row["pts_ms"].as_f64() {
            row["pts_ms"] = Value::from(pts + shift_ms);
        }
    }
    let bytes = serde_json::to_vec(&aligned).expect("serialise");
    std::fs::write(&aligned_path, &bytes).expect("write aligned.json");
    let manifest_path = folder.join("manifest.json");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("manifest")).expect("json");
    let wanted = format!("{name}/aligned.json");
    for seg in manifest["segments"].as_array_mut().expect("segments") {
        for object in seg["objects"].as_array_mut().expect("objects") {
            if object["path"] == wanted.as_str() {
                object["bytes"] = Value::from(bytes.len());
                object["sha256"] = Value::from(format!("{:x}", sha2::Sha256::digest(&bytes)));
            }
        }
    }
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).expect("json")).expect("write");
    frames
}
