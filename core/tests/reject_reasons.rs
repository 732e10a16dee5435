//! One test per reject reason, each built from a real session with exactly one thing broken.
//!
//! They read `../shared/real-sessions` and say `SKIPPED` plainly when it is absent.

use std::path::{Path, PathBuf};

use sd_core::{discover, load_bundle, Limits, LoadedBundle, PartKind, RejectReason, WalletFoundIn};
use sd_tests::{edit_json, part_path, real_sessions, Dir, REAL_WALLET};

/// A decodable real session with driving input.
const SESSION: &str = "session_1769936388223_tp5owb";
/// Another valid key, for the mismatch test.
const OTHER_WALLET: &str = "11111111111111111111111111111111";

/// A copy of the real session in `<tmp>/<folder>/`, or `None` (skipped) without shared data.
fn copy(test: &str, folder: &str) -> Option<(Dir, PathBuf)> {
    let real = real_sessions(test)?;
    let dir = Dir::new(test);
    let bundle = dir.copy_session(&real, SESSION, folder);
    Some((dir, bundle))
}

fn load_with(root: &Path, limits: &Limits) -> LoadedBundle {
    let found = discover(root).expect("discover");
    assert_eq!(found.bundles.len(), 1, "{:?}", found.bundles);
    load_bundle(&found.bundles[0], limits)
}

fn load(root: &Path) -> LoadedBundle {
    load_with(root, &Limits::default())
}

/// The reject reason, printed so the test log shows the exact wording a user sees.
fn reason(loaded: &LoadedBundle) -> RejectReason {
    let reason = loaded
        .reject_reason()
        .cloned()
        .expect("bundle should be rejected");
    println!("{}: {reason}", reason.code());
    reason
}

#[test]
fn intact_real_session_is_usable() {
    let Some((_dir, bundle)) = copy("intact_real_session_is_usable", REAL_WALLET) else {
        return;
    };
    let loaded = load(&bundle);
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let usable = loaded.into_bundle().expect("usable");
    assert_eq!(usable.video.frame_pts_ms.len(), 147);
    assert_eq!(usable.wallet.as_str(), REAL_WALLET);
    assert_eq!(
        usable.meta.scenario.and_then(|s| s.id).as_deref(),
        Some("school-zone")
    );
    assert!(usable.camera.iter().all(|c| c.command.is_some()));
}

#[test]
fn null_start_time_and_unknown_fields_are_tolerated() {
    let test = "null_start_time_and_unknown_fields_are_tolerated";
    let Some((_dir, bundle)) = copy(test, REAL_WALLET) else {
        return;
    };
    edit_json(&part_path(&bundle, "_meta.json"), |meta| {
        meta["startTime"] = serde_json::Value::Null;
        meta["duration"] = 0.into();
        meta["someFutureField"] = serde_json::json!({"nested": [1, 2, 3]});
    });
    edit_json(&part_path(&bundle, "_camera.json"), |camera| {
        camera[0]["gear"] = "D".into();
    });
    let loaded = load(&bundle);
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let meta = loaded.meta.expect("meta");
    assert_eq!(meta.start_time, None);
    assert!(meta.extra.contains_key("someFutureField"));
    assert_eq!(loaded.camera.expect("camera")[0].extra["gear"], "D");
}

#[test]
fn missing_part() {
    let Some((_dir, bundle)) = copy("missing_part", REAL_WALLET) else {
        return;
    };
    std::fs::remove_file(part_path(&bundle, "_camera.json")).expect("remove");
    assert_eq!(
        reason(&load(&bundle)),
        RejectReason::MissingPart {
            parts: vec![PartKind::Camera]
        }
    );
}

#[test]
fn empty_video() {
    let Some((_dir, bundle)) = copy("empty_video", REAL_WALLET) else {
        return;
    };
    std::fs::write(part_path(&bundle, ".webm"), b"").expect("truncate");
    assert_eq!(reason(&load(&bundle)), RejectReason::EmptyVideo);
}

#[test]
fn undecodable_video_garbage() {
    let Some((_dir, bundle)) = copy("undecodable_video_garbage", REAL_WALLET) else {
        return;
    };
    let garbage: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(part_path(&bundle, ".webm"), garbage).expect("overwrite");
    assert!(matches!(
        reason(&load(&bundle)),
        RejectReason::UndecodableVideo { .. }
    ));
}

#[test]
fn undecodable_video_header_only() {
    let Some((_dir, bundle)) = copy("undecodable_video_header_only", REAL_WALLET) else {
        return;
    };
    // The EBML header and track description survive, but not one frame.
    let video = part_path(&bundle, ".webm");
    let bytes = std::fs::read(&video).expect("read");
    std::fs::write(&video, &bytes[..300]).expect("truncate");
    assert!(matches!(
        reason(&load(&bundle)),
        RejectReason::UndecodableVideo { .. }
    ));
}

#[test]
fn truncated_video_keeps_the_frames_before_the_cut() {
    let test = "truncated_video_keeps_the_frames_before_the_cut";
    let Some((_dir, bundle)) = copy(test, REAL_WALLET) else {
        return;
    };
    let video = part_path(&bundle, ".webm");
    let bytes = std::fs::read(&video).expect("read");
    std::fs::write(&video, &bytes[..bytes.len() / 2]).expect("truncate");
    let loaded = load(&bundle);
    // Half a recording is still a recording: usable, with fewer frames (CLEAN judges it later).
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let frames = loaded.video.expect("video").frame_pts_ms.len();
    assert!((1..147).contains(&frames), "{frames} frames");
}

#[test]
fn malformed_json_names_part_and_position() {
    let Some((_dir, bundle)) = copy("malformed_json_names_part_and_position", REAL_WALLET) else {
        return;
    };
    let inputs = part_path(&bundle, "_inputs.json");
    let text = std::fs::read_to_string(&inputs).expect("read");
    std::fs::write(&inputs, &text[..100]).expect("cut");
    match reason(&load(&bundle)) {
        RejectReason::MalformedJson {
            part, line, column, ..
        } => {
            assert_eq!(part, PartKind::Inputs);
            assert_eq!((line, column), (1, 100));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn non_finite_number() {
    let Some((_dir, bundle)) = copy("non_finite_number", REAL_WALLET) else {
        return;
    };
    // `JSON.stringify(NaN)` is `null`.
    edit_json(&part_path(&bundle, "_camera.json"), |camera| {
        camera[3]["yaw"] = serde_json::Value::Null;
    });
    match reason(&load(&bundle)) {
        RejectReason::NonFiniteNumber { part, path, .. } => {
            assert_eq!(part, PartKind::Camera);
            assert_eq!(path, "[3].yaw");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn number_too_large_for_f64_is_malformed() {
    let test = "number_too_large_for_f64_is_malformed";
    let Some((_dir, bundle)) = copy(test, REAL_WALLET) else {
        return;
    };
    let latency = part_path(&bundle, "_latency.json");
    let text = std::fs::read_to_string(&latency).expect("read");
    let broken = text.replacen("\"avgRtt\":348.5", "\"avgRtt\":1e999", 1);
    assert_ne!(broken, text);
    std::fs::write(&latency, broken).expect("write");
    match reason(&load(&bundle)) {
        RejectReason::MalformedJson { part, message, .. } => {
            assert_eq!(part, PartKind::Latency);
            assert!(message.contains("out of range"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn absurd_numbers() {
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, &str, Edit); 5] = [
        ("_camera.json", "[2].speed", |v| v[2]["speed"] = 1e12.into()),
        ("_inputs.json", "[0].t", |v| v[0]["t"] = (-5.0).into()),
        ("_latency.json", "rttSamples[1].rtt", |v| {
            v["rttSamples"][1]["rtt"] = (-1.0).into()
        }),
        ("_latency.json", "avgRtt", |v| v["avgRtt"] = 61_000.0.into()),
        ("_meta.json", "startTime", |v| v["startTime"] = 12.into()),
    ];
    for (suffix, expected_path, edit) in cases {
        let Some((_dir, bundle)) = copy("absurd_numbers", REAL_WALLET) else {
            return;
        };
        edit_json(&part_path(&bundle, suffix), edit);
        match reason(&load(&bundle)) {
            RejectReason::AbsurdNumber { path, .. } => assert_eq!(path, expected_path),
            other => panic!("{suffix}: unexpected {other:?}"),
        }
    }
}

#[test]
fn invalid_wallet_in_meta() {
    let Some((_dir, bundle)) = copy("invalid_wallet_in_meta", "local-bundle") else {
        return;
    };
    edit_json(&part_path(&bundle, "_meta.json"), |meta| {
        meta["walletAddress"] = "0xDEADBEEF".into();
    });
    assert!(matches!(
        reason(&load(&bundle)),
        RejectReason::InvalidWallet {
            found_in: WalletFoundIn::Meta,
            ..
        }
    ));
}

#[test]
fn invalid_wallet_in_key() {
    let Some((dir, _bundle)) = copy("invalid_wallet_in_key", "not-a-wallet") else {
        return;
    };
    // A raw-bucket tree: the sub-folder's name is the key's wallet.
    match reason(&load(dir.path())) {
        RejectReason::InvalidWallet {
            wallet, found_in, ..
        } => {
            assert_eq!(wallet, "not-a-wallet");
            assert_eq!(found_in, WalletFoundIn::Key);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn wallet_mismatch() {
    let Some((_dir, bundle)) = copy("wallet_mismatch", REAL_WALLET) else {
        return;
    };
    edit_json(&part_path(&bundle, "_meta.json"), |meta| {
        meta["walletAddress"] = OTHER_WALLET.into();
    });
    assert_eq!(
        reason(&load(&bundle)),
        RejectReason::WalletMismatch {
            key_wallet: REAL_WALLET.to_owned(),
            meta_wallet: OTHER_WALLET.to_owned(),
        }
    );
}

#[test]
fn session_id_mismatch() {
    let Some((_dir, bundle)) = copy("session_id_mismatch", REAL_WALLET) else {
        return;
    };
    edit_json(&part_path(&bundle, "_meta.json"), |meta| {
        meta["sessionId"] = "session_1769936388223_other".into();
    });
    assert!(matches!(
        reason(&load(&bundle)),
        RejectReason::SessionIdMismatch { .. }
    ));
}

#[test]
fn invalid_session_id() {
    let Some((_dir, bundle)) = copy("invalid_session_id", REAL_WALLET) else {
        return;
    };
    // Rename every part so the id in the key is `session_1769936388223_tp-5owb`.
    for entry in std::fs::read_dir(&bundle).expect("read") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .replace("tp5owb", "tp-5owb");
        std::fs::rename(&path, bundle.join(name)).expect("rename");
    }
    assert!(matches!(
        reason(&load(&bundle)),
        RejectReason::InvalidSessionId { session_id, .. }
            if session_id == "session_1769936388223_tp-5owb"
    ));
}

#[cfg(unix)]
#[test]
fn symlinked_part() {
    let Some((dir, bundle)) = copy("symlinked_part", REAL_WALLET) else {
        return;
    };
    // The meta is replaced by a link to a file outside the bundle folder.
    let meta = part_path(&bundle, "_meta.json");
    let outside = dir.path().join("outside.json");
    std::fs::rename(&meta, &outside).expect("move");
    std::os::unix::fs::symlink(&outside, &meta).expect("symlink");
    assert!(matches!(
        reason(&load(&bundle)),
        RejectReason::UnsafePath {
            part: PartKind::Meta,
            ..
        }
    ));
}

#[test]
fn part_too_large() {
    let Some((_dir, bundle)) = copy("part_too_large", REAL_WALLET) else {
        return;
    };
    // The camera part is 6.1 KB.
    let limits = Limits {
        max_json_part_bytes: 4_000,
        ..Limits::default()
    };
    assert!(matches!(
        reason(&load_with(&bundle, &limits)),
        RejectReason::PartTooLarge {
            part: PartKind::Camera,
            ..
        }
    ));
    let limits = Limits {
        max_video_bytes: 1_000_000,
        ..Limits::default()
    };
    assert!(matches!(
        reason(&load_with(&bundle, &limits)),
        RejectReason::PartTooLarge {
            part: PartKind::Video,
            ..
        }
    ));
}

#[test]
fn too_deep() {
    let Some((_dir, bundle)) = copy("too_deep", REAL_WALLET) else {
        return;
    };
    let meta = part_path(&bundle, "_meta.json");
    let text = std::fs::read_to_string(&meta).expect("read");
    let bomb = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    std::fs::write(&meta, text.replacen('{', &format!("{{\"bomb\":{bomb},"), 1)).expect("write");
    assert!(matches!(
        reason(&load(&bundle)),
        RejectReason::TooDeep {
            part: PartKind::Meta,
            ..
        }
    ));
}

#[test]
fn too_many_items() {
    let Some((_dir, bundle)) = copy("too_many_items", REAL_WALLET) else {
        return;
    };
    // The inputs part has 48 events.
    let limits = Limits {
        max_array_items: 20,
        ..Limits::default()
    };
    assert!(matches!(
        reason(&load_with(&bundle, &limits)),
        RejectReason::TooManyItems {
            part: PartKind::Inputs,
            ..
        }
    ));
}

#[test]
fn unreadable_part() {
    let Some((_dir, bundle)) = copy("unreadable_part", REAL_WALLET) else {
        return;
    };
    let found = discover(&bundle).expect("discover");
    // The part disappears between listing and reading (a replaced upload, a disk error).
    std::fs::remove_file(part_path(&bundle, "_latency.json")).expect("remove");
    let loaded = load_bundle(&found.bundles[0], &Limits::default());
    assert!(matches!(
        reason(&loaded),
        RejectReason::Unreadable {
            part: PartKind::Latency,
            ..
        }
    ));
}

#[test]
fn real_zero_byte_video_is_rejected_alone() {
    let Some(real) = real_sessions("real_zero_byte_video_is_rejected_alone") else {
        return;
    };
    let found = discover(&real).expect("discover");
    let limits = Limits::default();
    let verdicts: Vec<(String, Option<&'static str>)> = found
        .bundles
        .iter()
        .map(|source| {
            let loaded = load_bundle(source, &limits);
            (
                source.session_id.clone(),
                loaded.reject_reason().map(RejectReason::code),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("session_1769936388223_tp5owb".to_owned(), None),
            ("session_1769936668710_se4gmo".to_owned(), None),
            ("session_1769938621118_eylo08".to_owned(), None),
            (
                "session_1769938990243_832oey".to_owned(),
                Some("empty_video")
            ),
        ]
    );
}

/// Runs the `ffmpeg` CLI (installed by scripts/install-deps.sh) to make a test video.
fn ffmpeg(args: &[&str]) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg CLI (scripts/install-deps.sh installs it)");
    assert!(status.success(), "ffmpeg {args:?}");
}

#[test]
fn playlist_cannot_borrow_another_sessions_video() {
    let Some(real) = real_sessions("playlist_cannot_borrow_another_sessions_video") else {
        return;
    };
    let dir = Dir::new("playlist");
    let bundle = dir.copy_session(&real, SESSION, REAL_WALLET);
    dir.copy_session(&real, "session_1769938621118_eylo08", REAL_WALLET);
    // tp5owb's "video" is an ffconcat playlist naming eylo08's real video beside it.
    let playlist = "ffconcat version 1.0\nfile 1769938690597_session_1769938621118_eylo08.webm\n";
    std::fs::write(part_path_of(&bundle, SESSION, ".webm"), playlist).expect("write");
    let found = discover(&bundle).expect("discover");
    let source = found
        .bundles
        .iter()
        .find(|b| b.session_id == SESSION)
        .expect("tp5owb");
    assert!(matches!(
        reason(&load_bundle(source, &Limits::default())),
        RejectReason::UndecodableVideo { .. }
    ));
}

/// The part of `session` ending with `suffix` in a folder holding several sessions.
fn part_path_of(folder: &Path, session: &str, suffix: &str) -> PathBuf {
    std::fs::read_dir(folder)
        .expect("read")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            let name = p.to_string_lossy();
            name.contains(session) && name.ends_with(suffix)
        })
        .expect("part")
}

#[test]
fn other_codecs_and_containers_are_unsupported() {
    let Some((dir, bundle)) = copy("other_codecs_and_containers_are_unsupported", REAL_WALLET)
    else {
        return;
    };
    let video = part_path(&bundle, ".webm");
    // MPEG-4 video in Matroska: a readable container, the wrong codec.
    let mkv = dir.path().join("mpeg4.mkv");
    let mkv_path = mkv.to_string_lossy().into_owned();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=128x72:rate=5",
        "-t",
        "1",
        "-c:v",
        "mpeg4",
        &mkv_path,
    ]);
    std::fs::copy(&mkv, &video).expect("copy");
    assert!(matches!(
        reason(&load(&bundle)),
        RejectReason::UnsupportedVideo { detail } if detail.contains("mpeg4")
    ));
    // A PNG picture renamed .webm: not WebM at all.
    let png = dir.path().join("frame.png");
    let png_path = png.to_string_lossy().into_owned();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=128x72",
        "-frames:v",
        "1",
        &png_path,
    ]);
    std::fs::copy(&png, &video).expect("copy");
    assert!(matches!(
        reason(&load(&bundle)),
        RejectReason::UndecodableVideo { .. }
    ));
}

#[test]
fn oversized_frames_are_unsupported() {
    let Some((_dir, bundle)) = copy("oversized_frames_are_unsupported", REAL_WALLET) else {
        return;
    };
    // The real 1280x704 video against a limit below its size.
    let limits = Limits {
        max_video_pixels: 640 * 360,
        ..Limits::default()
    };
    assert!(matches!(
        reason(&load_with(&bundle, &limits)),
        RejectReason::UnsupportedVideo { detail } if detail.contains("1280x704")
    ));
}

#[test]
fn identity_comes_before_a_broken_log() {
    let Some((_dir, bundle)) = copy("identity_comes_before_a_broken_log", REAL_WALLET) else {
        return;
    };
    edit_json(&part_path(&bundle, "_meta.json"), |meta| {
        meta["walletAddress"] = OTHER_WALLET.into();
    });
    std::fs::write(part_path(&bundle, "_inputs.json"), "[{").expect("write");
    let loaded = load(&bundle);
    assert_eq!(reason(&loaded).code(), "wallet_mismatch");
    assert_eq!(loaded.problems[1].code(), "malformed_json");
}
