//! `scale-diffusion inspect` on the real sessions, on broken bundles, and on bad invocations.

use sd_tests::{edit_json, part_path, real_sessions, stdout_with_status, Dir, REAL_SESSIONS};

use crate::run;

#[test]
fn real_sessions_human_report() {
    let Some(real) = real_sessions("real_sessions_human_report") else {
        return;
    };
    let output = run(&["inspect", &real.to_string_lossy()]);
    let stdout = stdout_with_status(&output, 0);
    println!("{stdout}");
    for expected in [
        "session_1769936388223_tp5owb  usable",
        "147 frames (126 distinct timestamps) over 69.66 s",
        "longest 41.16 s",
        "56 frames (5 distinct timestamps) over 18.19 s",
        "longest 9.81 s",
        "longest 52 frames at 8.16 s",
        "90 frames (75 distinct timestamps) over 46.93 s",
        "longest 35.65 s",
        "session_1769938990243_832oey  REJECTED: the video part is empty (0 bytes)",
        "startTime null",
        "4 sessions: 3 usable, 1 rejected (empty_video: 1)",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?}");
    }
}

#[test]
fn real_sessions_json_report() {
    let Some(real) = real_sessions("real_sessions_json_report") else {
        return;
    };
    let output = run(&["inspect", "--json", &real.to_string_lossy()]);
    let report: serde_json::Value =
        serde_json::from_str(&stdout_with_status(&output, 0)).expect("stdout is JSON");
    assert_eq!(report["summary"]["usable"], 3);
    assert_eq!(report["summary"]["rejected_by_code"]["empty_video"], 1);
    let sessions = report["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), REAL_SESSIONS.len());
    for (session, (id, frames, longest_stall_ms)) in sessions.iter().zip(REAL_SESSIONS) {
        assert_eq!(session["session_id"], id);
        match frames {
            Some(frames) => {
                assert_eq!(session["usable"], true, "{id}");
                let health = &session["video"]["health"];
                assert_eq!(health["frames"], frames, "{id}");
                let stall = health["longest_stall_ms"].as_f64().expect("stall");
                assert!((stall - longest_stall_ms).abs() < 1.0, "{id}: {stall}");
                assert_eq!(session["video"]["width"], 1280);
                assert_eq!(session["video"]["height"], 704);
                assert_eq!(session["video"]["codec"], "vp8");
            }
            None => {
                assert_eq!(session["usable"], false, "{id}");
                assert_eq!(session["reject_reason"]["code"], "empty_video");
                assert_eq!(
                    session["meta"]["start_time_epoch_ms"],
                    serde_json::Value::Null
                );
                // The logs of a rejected bundle are still reported.
                assert_eq!(session["camera"]["span"]["count"], 29);
            }
        }
    }
}

#[test]
fn broken_bundle_is_a_finding_not_a_failure() {
    let Some(real) = real_sessions("broken_bundle_is_a_finding_not_a_failure") else {
        return;
    };
    let dir = Dir::new("broken_bundle");
    let bundle = dir.copy_session(&real, "session_1769936668710_se4gmo", "bundle");
    edit_json(&part_path(&bundle, "_latency.json"), |latency| {
        latency["rttSamples"][0]["rtt"] = serde_json::Value::Null;
    });
    let output = run(&["inspect", &bundle.to_string_lossy()]);
    let stdout = stdout_with_status(&output, 0);
    assert!(
        stdout.contains("REJECTED: the latency part has a non-finite number (null, NaN or Infinity) at `rttSamples[0].rtt`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 session: 0 usable, 1 rejected (non_finite_number: 1)"),
        "{stdout}"
    );
}

#[test]
fn folder_without_bundles_says_so() {
    let dir = Dir::new("empty_folder");
    std::fs::write(dir.path().join("notes.txt"), "hello").expect("write");
    let stdout = stdout_with_status(&run(&["inspect", &dir.path().to_string_lossy()]), 0);
    assert!(stdout.contains("no bundles under"), "{stdout}");
    assert!(
        stdout.contains("notes.txt (not named like a bundle part)"),
        "{stdout}"
    );
}

#[test]
fn missing_path_is_a_usage_error() {
    let output = run(&["inspect", "/definitely/not/here"]);
    stdout_with_status(&output, 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: cannot read /definitely/not/here: No such file"),
        "{stderr}"
    );
    // The path and the OS error are said once each.
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    stdout_with_status(&run(&["frobnicate"]), 2);
    stdout_with_status(&run(&["inspect"]), 2);
}

#[test]
fn synthetic_messy_bundle_is_read_frame_by_frame() {
    // Needs no shared data: the generator makes a bundle with a known timeline.
    let dir = Dir::new("inspect_synthetic");
    // Laid out as run.sh does without real sessions: a raw-bucket tree with the bundle in the
    // folder of the wallet its meta names.
    let mut spec = sd_fixtures::SyntheticSpec::messy(12.0);
    spec.wallet = sd_tests::REAL_WALLET.to_owned();
    let wallet_folder = dir.path().join(&spec.wallet);
    let written =
        sd_fixtures::write_bundle(&wallet_folder, &spec, sd_fixtures::Naming::UploadEpoch)
            .expect("write bundle");
    let truth = sd_fixtures::Truth::read(&written.truth).expect("truth");

    let output = run(&["inspect", "--json", &dir.path().to_string_lossy()]);
    let report: serde_json::Value =
        serde_json::from_str(&stdout_with_status(&output, 0)).expect("JSON");
    let session = &report["sessions"][0];
    assert_eq!(session["usable"], true, "{session}");
    assert_eq!(session["wallet"], sd_tests::REAL_WALLET);
    let health = &session["video"]["health"];
    assert_eq!(health["frames"], truth.frame_pts_ms.len());
    assert_eq!(
        health["stalls"].as_array().map(Vec::len),
        Some(truth.stalls.len())
    );
    assert_eq!(
        health["bursts"].as_array().map(Vec::len),
        Some(truth.bursts.len())
    );
    assert_eq!(health["longest_burst_frames"], truth.bursts[0].frame_count);
    // The truth file sits beside the parts but is not one of them.
    assert!(report["ignored"][0]["path"]
        .as_str()
        .is_some_and(|path| path.ends_with("_truth.json")));
}
