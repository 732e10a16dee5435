//! `scale-diffusion align` on the real sessions: the frame table and its schema.

use sd_tests::{real_sessions, stdout_with_status, workspace_root, Dir};

use crate::run;

fn aligned_schema() -> jsonschema::Validator {
    let path = workspace_root().join("docs/schemas/aligned.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read schema")).expect("JSON");
    jsonschema::validator_for(&schema).expect("valid schema")
}

#[test]
fn real_session_frame_table_matches_its_schema() {
    let Some(real) = real_sessions("real_session_frame_table_matches_its_schema") else {
        return;
    };
    let validator = aligned_schema();
    let dir = Dir::new("align_real");
    for (session, frames) in [
        ("session_1769936388223_tp5owb", 147),
        ("session_1769936668710_se4gmo", 56),
        ("session_1769938621118_eylo08", 90),
    ] {
        let out = dir.path().join(format!("{session}.json"));
        let output = run(&[
            "align",
            &real.to_string_lossy(),
            "--session",
            session,
            "--out",
            &out.to_string_lossy(),
        ]);
        let stdout = stdout_with_status(&output, 0);
        println!("{stdout}");
        let table: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).expect("read table")).expect("JSON");
        let errors: Vec<String> = validator
            .iter_errors(&table)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{session}: {errors:?}");

        let rows = table["frames"].as_array().expect("frames");
        assert_eq!(rows.len(), frames, "{session}");
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row["frame"], i);
            assert!(row["pts_ms"].is_number());
            // Measured frames carry keys held; frames in a burst carry none.
            match row["timing"].as_str() {
                Some("measured") => assert!(row["keys_held"].is_array(), "{session} {i}"),
                Some("burst") => assert!(row["keys_held"].is_null(), "{session} {i}"),
                other => panic!("{session} {i}: timing {other:?}"),
            }
        }
        // A measured frame shows the page time pts + its run's offset (within the latency
        // model's variation, under 100 ms on these sessions).
        let runs = table["clock"]["runs"].as_array().expect("runs");
        for row in rows.iter().filter(|r| r["timing"] == "measured") {
            let run = runs
                .iter()
                .find(|run| run["run"] == row["run"])
                .expect("the row's run");
            let expected = row["pts_ms"].as_f64().unwrap() + run["offset_ms"].as_f64().unwrap();
            let page = row["page_t_ms"].as_f64().expect("page time");
            assert!(
                (page - expected).abs() < 100.0,
                "{session}: {page} vs {expected}"
            );
        }
        // Every run records its offset, source and a confidence in [0, 1].
        for run in runs {
            assert!(run["offset_ms"].is_number());
            assert!(run["source"].is_string());
            let confidence = run["confidence"].as_f64().expect("confidence");
            assert!((0.0..=1.0).contains(&confidence));
        }
    }
}

#[test]
fn rejected_bundle_writes_nothing() {
    let Some(real) = real_sessions("rejected_bundle_writes_nothing") else {
        return;
    };
    let dir = Dir::new("align_rejected");
    let out = dir.path().join("aligned.json");
    let output = run(&[
        "align",
        &real.to_string_lossy(),
        "--session",
        "session_1769938990243_832oey",
        "--out",
        &out.to_string_lossy(),
    ]);
    stdout_with_status(&output, 1);
    assert!(String::from_utf8_lossy(&output.stderr).contains("REJECTED (empty_video)"));
    assert!(!out.exists());
}

#[test]
fn several_sessions_need_a_choice() {
    let Some(real) = real_sessions("several_sessions_need_a_choice") else {
        return;
    };
    let output = run(&[
        "align",
        &real.to_string_lossy(),
        "--out",
        "/tmp/unused.json",
    ]);
    stdout_with_status(&output, 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("choose one with --session"));
}
