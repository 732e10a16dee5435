//! `scale-diffusion process`, `payouts` and `review override` end to end: the real binary on the
//! real sessions and on synthetic bundles, killed mid-run, and run twice.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use sd_fixtures::{write_bundle, Naming, SyntheticSpec};
use sd_tests::{real_sessions, report_figure, stdout_with_status, Dir, REAL_WALLET};
use serde_json::Value;

use crate::run;

/// Output folders of one test: clean layout, review area, ledger.
pub(crate) struct Outputs {
    clean: PathBuf,
    review: PathBuf,
    ledger: PathBuf,
}

impl Outputs {
    pub(crate) fn in_dir(dir: &Dir) -> Self {
        let out = dir.path().join("out");
        Self {
            clean: out.join("clean"),
            review: out.join("review"),
            ledger: out.join("ledger.sqlite"),
        }
    }

    pub(crate) fn clean_dir(&self) -> &Path {
        &self.clean
    }

    pub(crate) fn review_dir(&self) -> &Path {
        &self.review
    }

    pub(crate) fn ledger_path(&self) -> &Path {
        &self.ledger
    }

    pub(crate) fn layout_args(&self) -> Vec<String> {
        vec![
            "--out".into(),
            self.clean.display().to_string(),
            "--review".into(),
            self.review.display().to_string(),
            "--ledger".into(),
            self.ledger.display().to_string(),
        ]
    }

    fn process(&self, raw: &Path, extra: &[&str]) -> std::process::Output {
        let mut args = vec!["process".to_owned(), raw.display().to_string()];
        args.extend(self.layout_args());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args)
    }

    /// `process --json`, parsed.
    pub(crate) fn process_json(&self, raw: &Path) -> Value {
        let output = self.process(raw, &["--json"]);
        serde_json::from_str(&stdout_with_status(&output, 0)).expect("process --json prints JSON")
    }

    fn payouts_json(&self) -> Value {
        let ledger = self.ledger.display().to_string();
        let output = run(&["payouts", "list", "--json", "--ledger", &ledger]);
        serde_json::from_str(&stdout_with_status(&output, 0)).expect("payouts list --json")
    }
}

/// A small synthetic bundle of `seconds` at 10 fps in `dir/raw/{wallet}/`.
fn synthetic_raw(dir: &Dir, seconds: f64, seed: u64) -> (PathBuf, String) {
    let raw = dir.path().join("raw");
    let mut spec = SyntheticSpec::constant_rate_seeded(seconds, 10.0, seed);
    spec.wallet = REAL_WALLET.to_owned();
    let bundle = raw.join(REAL_WALLET);
    let written = write_bundle(&bundle, &spec, Naming::UploadEpoch).expect("write bundle");
    std::fs::remove_file(&written.truth).expect("drop the truth file");
    (raw, written.session_id)
}

/// Consumers read the clean layout: nothing there but wallet folders (no staging, no lock).
fn assert_no_hidden_entries(root: &Path) {
    for entry in std::fs::read_dir(root).expect("clean layout") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(!name.starts_with('.'), "{name} in the clean layout");
    }
}

/// Every `segment_*` folder under a layout root, checked whole: its frames are exactly the ones
/// `aligned.json` lists, and `quality.json` is there. Returns (path, frames) of each.
fn complete_segments(root: &Path) -> Vec<(PathBuf, usize)> {
    let mut found = Vec::new();
    let Ok(wallets) = std::fs::read_dir(root) else {
        return found;
    };
    for wallet in wallets.flatten() {
        if wallet.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        for session in std::fs::read_dir(wallet.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            for segment in std::fs::read_dir(session.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let path = segment.path();
                if !path.is_dir() {
                    continue;
                }
                let aligned: Value = serde_json::from_str(
                    &std::fs::read_to_string(path.join("aligned.json")).unwrap_or_else(|err| {
                        panic!("{}: no aligned.json ({err})", path.display())
                    }),
                )
                .expect("aligned.json is JSON");
                assert!(
                    path.join("quality.json").is_file(),
                    "{}: no quality.json",
                    path.display()
                );
                let listed: Vec<String> = aligned["frames"]
                    .as_array()
                    .expect("frames")
                    .iter()
                    .map(|f| f["file"].as_str().expect("file").to_owned())
                    .collect();
                let mut on_disk: Vec<String> = std::fs::read_dir(path.join("frames"))
                    .expect("frames folder")
                    .map(|e| format!("frames/{}", e.expect("entry").file_name().to_string_lossy()))
                    .collect();
                on_disk.sort();
                assert_eq!(
                    on_disk,
                    listed,
                    "{}: frames on disk differ from aligned.json",
                    path.display()
                );
                for file in &listed {
                    let bytes = std::fs::read(path.join(file)).expect("frame");
                    assert!(
                        bytes.len() > 100
                            && bytes[..2] == [0xFF, 0xD8]
                            && bytes[bytes.len() - 2..] == [0xFF, 0xD9],
                        "{}/{file} is not a whole JPEG",
                        path.display()
                    );
                }
                found.push((path, listed.len()));
            }
        }
    }
    found.sort();
    found
}

fn validate(schema_name: &str, document: &Value) {
    let path = sd_tests::workspace_root()
        .join("docs/schemas")
        .join(format!("{schema_name}.schema.json"));
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("schema file")).expect("JSON");
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .take(5)
        .collect();
    assert!(errors.is_empty(), "{schema_name}: {errors:?}");
}

#[test]
fn real_sessions_process_publish_and_rerun_converges() {
    let Some(real) = real_sessions("real_sessions_process_publish_and_rerun_converges") else {
        return;
    };
    let dir = Dir::new("process_real");
    let out = Outputs::in_dir(&dir);
    let raw = real
        .parent()
        .expect("wallet folder has a parent")
        .to_path_buf();
    let output = out.process(&raw, &[]);
    let stdout = stdout_with_status(&output, 0);
    println!("{stdout}");
    for expected in [
        "session_1769938990243_832oey  REJECTED (empty_video): the video part is empty (0 bytes)",
        "4 sessions in",
        "3 accepted, 1 rejected (empty_video 1)",
        "segments: 3 cut, 0 passed (published), 3 failed (to review)",
        "alignment_confidence 3",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?}");
    }
    // Every accepted session has its record in the clean layout, the rejected one in review.
    for (id, frames, _) in sd_tests::REAL_SESSIONS {
        let clean = out.clean.join(REAL_WALLET).join(id).join("session.json");
        let review = out.review.join(REAL_WALLET).join(id).join("session.json");
        let (path, status) = match frames {
            Some(_) => (clean, "accepted"),
            None => {
                assert!(
                    !clean.exists(),
                    "a rejected session has no place in the clean layout"
                );
                (review, "rejected")
            }
        };
        let session: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("session.json"))
                .expect("JSON");
        assert_eq!(session["status"], status, "{id}");
        let report = path.with_file_name("report.html");
        let html = std::fs::read_to_string(&report).expect("report.html beside session.json");
        assert!(html.contains(id), "{}", report.display());
        if let Some(frames) = frames {
            assert_eq!(session["video"]["frames"], frames, "{id}");
        }
        validate("session", &session);
    }
    let segments = complete_segments(&out.review);
    assert_eq!(segments.len(), 3, "tp5owb's three segments are in review");
    assert!(
        complete_segments(&out.clean).is_empty(),
        "nothing passes on the real sessions"
    );
    for (path, _) in &segments {
        for (name, schema) in [
            ("aligned.json", "segment-aligned"),
            ("quality.json", "segment-quality"),
        ] {
            let doc: Value =
                serde_json::from_str(&std::fs::read_to_string(path.join(name)).expect(name))
                    .expect("JSON");
            validate(schema, &doc);
        }
    }
    let first = out.payouts_json();

    // Run twice: the same ledger totals, the same files.
    let again = out.process_json(&raw);
    assert_eq!(again["summary"]["sessions"], 4);
    assert_eq!(out.payouts_json(), first, "a rerun changed the ledger");
    assert_eq!(complete_segments(&out.review), segments);
}

#[test]
fn synthetic_session_pays_per_valid_segment_and_reruns_idempotently() {
    let dir = Dir::new("process_synthetic");
    let (raw, session_id) = synthetic_raw(&dir, 21.0, 11);
    let out = Outputs::in_dir(&dir);
    let summary = out.process_json(&raw);
    let session = &summary["sessions"][0];
    assert_eq!(session["status"], "accepted", "{summary:#}");
    let published = session["clean_segments"].as_u64().expect("count");
    assert_eq!(
        published, 4,
        "21 s of clean driving: four 5 s segments pass ({summary:#})"
    );
    let segments = complete_segments(&out.clean);
    assert_eq!(segments.len(), 4);
    let frames: usize = segments.iter().map(|(_, n)| n).sum();

    let payouts = out.payouts_json();
    let wallet = &payouts["wallets"][0];
    assert_eq!(wallet["wallet_address"], REAL_WALLET);
    assert_eq!(wallet["valid_segments"], 4);
    assert_eq!(wallet["total_frames"], frames);
    // 0.001 SOL a segment, as integer lamports.
    assert_eq!(wallet["pending_lamports"], 4_000_000);
    assert_eq!(wallet["payout_sol"], "0.004000000");

    // Reprocess: replaced, not added.
    out.process_json(&raw);
    assert_eq!(
        out.payouts_json(),
        payouts,
        "reprocessing added to the ledger"
    );
    report_figure(&format!(
        "process (synthetic {session_id}): 4 segments, {frames} frames published, 0.004 SOL pending; rerun identical"
    ));
}

#[test]
fn override_moves_the_segment_and_approved_payouts_never_change() {
    let dir = Dir::new("process_override");
    let (raw, session_id) = synthetic_raw(&dir, 11.0, 12);
    let out = Outputs::in_dir(&dir);
    out.process_json(&raw);
    let ledger = out.ledger.display().to_string();
    let segment = format!("{session_id}/segment_002");
    let layout = out.layout_args();
    let layout: Vec<&str> = layout.iter().map(String::as_str).collect();
    let override_to = |verdict: &str, reason: &str| {
        let mut args = vec![
            "review",
            "override",
            segment.as_str(),
            verdict,
            "--reason",
            reason,
            "--by",
            "ana",
        ];
        args.extend(&layout);
        stdout_with_status(&run(&args), 0)
    };

    assert_eq!(out.payouts_json()["wallets"][0]["valid_segments"], 2);
    let said = override_to("--fail", "a pedestrian pops in and out");
    assert!(said.contains("pass -> fail by ana"), "{said}");
    let in_clean = out
        .clean
        .join(REAL_WALLET)
        .join(&session_id)
        .join("segment_002");
    let in_review = out
        .review
        .join(REAL_WALLET)
        .join(&session_id)
        .join("segment_002");
    assert!(
        !in_clean.exists() && in_review.is_dir(),
        "a failed segment leaves the clean layout"
    );
    let quality: Value = serde_json::from_str(
        &std::fs::read_to_string(in_review.join("quality.json")).expect("quality"),
    )
    .expect("JSON");
    assert_eq!(quality["placement"]["verdict"], "fail");
    assert_eq!(quality["placement"]["override"]["by"], "ana");
    validate("segment-quality", &quality);
    // session.json lists the new placement too.
    let session_json = out
        .clean
        .join(REAL_WALLET)
        .join(&session_id)
        .join("session.json");
    let session: Value =
        serde_json::from_str(&std::fs::read_to_string(&session_json).expect("session.json"))
            .expect("JSON");
    assert_eq!(session["segments"][1]["placement"]["location"], "review");
    assert_eq!(session["segments"][1]["placement"]["override"]["by"], "ana");
    validate("session", &session);
    assert_eq!(out.payouts_json()["wallets"][0]["valid_segments"], 1);
    assert_eq!(
        out.payouts_json()["wallets"][0]["pending_lamports"],
        1_000_000
    );

    // Approve what is pending (segment_001 only), then promote segment_002 again.
    let approved = stdout_with_status(
        &run(&[
            "payouts",
            "approve",
            REAL_WALLET,
            "--by",
            "finance",
            "--ledger",
            &ledger,
        ]),
        0,
    );
    assert!(approved.contains("0.001000000 SOL"), "{approved}");
    override_to("--pass", "looked again: fine");
    assert!(
        in_clean.is_dir() && !in_review.exists(),
        "a passed segment is published"
    );
    let payouts = out.payouts_json();
    let list = payouts["payouts"].as_array().expect("payouts");
    let approved: Vec<&Value> = list.iter().filter(|p| p["state"] == "approved").collect();
    assert_eq!(approved.len(), 1);
    assert_eq!(
        approved[0]["amount_lamports"], 1_000_000,
        "an approved payout never changes"
    );
    let pending: Vec<&Value> = list.iter().filter(|p| p["state"] == "pending").collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0]["amount_lamports"], 1_000_000,
        "segment_002 is paid in a new payout"
    );

    // Failing segment_001 after its payout was approved: a visible take-back, not an edit.
    let first = format!("{session_id}/segment_001");
    let mut args = vec![
        "review",
        "override",
        first.as_str(),
        "--fail",
        "--reason",
        "wrong labels",
        "--by",
        "ana",
    ];
    args.extend(&layout);
    stdout_with_status(&run(&args), 0);
    let payouts = out.payouts_json();
    let list = payouts["payouts"].as_array().expect("payouts");
    let approved = list
        .iter()
        .find(|p| p["state"] == "approved")
        .expect("approved");
    assert_eq!(approved["amount_lamports"], 1_000_000);
    let pending = list
        .iter()
        .find(|p| p["state"] == "pending")
        .expect("pending");
    assert_eq!(
        pending["amount_lamports"], 0,
        "+1 segment_002, -1 segment_001"
    );
    let kinds: Vec<&str> = pending["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["kind"].as_str().expect("kind"))
        .collect();
    assert!(kinds.contains(&"adjustment"), "{pending:#}");

    // Reprocessing keeps the overrides (same cut).
    out.process_json(&raw);
    assert!(in_clean.is_dir());
    assert!(out
        .review
        .join(REAL_WALLET)
        .join(&session_id)
        .join("segment_001")
        .is_dir());
}

#[test]
fn sigkill_mid_run_leaves_no_partial_segment_and_a_rerun_converges() {
    let dir = Dir::new("process_sigkill");
    let raw = dir.path().join("raw");
    // Two sessions, so that a kill can land between them as well as inside one.
    let mut ids = Vec::new();
    for seed in [21, 22] {
        let mut spec = SyntheticSpec::constant_rate_seeded(30.0, 30.0, seed).with_size(640, 352);
        spec.wallet = REAL_WALLET.to_owned();
        let written =
            write_bundle(&raw.join(REAL_WALLET), &spec, Naming::UploadEpoch).expect("write bundle");
        std::fs::remove_file(&written.truth).expect("drop truth");
        ids.push(written.session_id);
    }
    let out = Outputs::in_dir(&dir);
    let bin = Path::new(env!("CARGO_BIN_EXE_scale-diffusion"));
    let mut args = vec![
        "process".to_owned(),
        raw.display().to_string(),
        "--quiet".into(),
    ];
    args.extend(out.layout_args());

    // Reference: a run nobody interrupts, in its own folders.
    // Bound, so the folder lives (and is removed) with the test, not with this statement.
    let reference_dir = Dir::new("process_sigkill_reference");
    let reference = Outputs::in_dir(&reference_dir);
    let started = Instant::now();
    reference.process_json(&raw);
    let full_run = started.elapsed();
    let expected = reference.payouts_json();
    let expected_segments: Vec<usize> = complete_segments(&reference.clean)
        .iter()
        .map(|(_, n)| *n)
        .collect();
    assert!(!expected_segments.is_empty());

    let mut kills = 0;
    for fraction in [0.15, 0.35, 0.55, 0.75, 0.9] {
        let mut child = Command::new(bin)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start process");
        std::thread::sleep(full_run.mul_f64(fraction));
        if child.try_wait().expect("poll").is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        let _ = child.wait();
        // Whatever is visible is whole.
        complete_segments(&out.clean);
        complete_segments(&out.review);
        if out.clean.is_dir() {
            assert_no_hidden_entries(&out.clean);
        }
    }
    report_figure(&format!(
        "process SIGKILL: {kills} of 5 runs killed mid-way (full run {:.1} s); every visible segment whole",
        full_run.as_secs_f64()
    ));
    assert!(kills >= 3, "the runs ended before they could be killed");

    // A rerun converges to what an uninterrupted run produces.
    out.process_json(&raw);
    let segments: Vec<usize> = complete_segments(&out.clean)
        .iter()
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(segments, expected_segments);
    let strip = |mut payouts: Value| {
        // Ids and timestamps differ between runs; amounts, states and counts must not.
        for payout in payouts["payouts"].as_array_mut().into_iter().flatten() {
            for key in ["id", "created_at"] {
                payout[key] = Value::Null;
            }
            for item in payout["items"].as_array_mut().into_iter().flatten() {
                item["id"] = Value::Null;
            }
        }
        payouts
    };
    assert_eq!(strip(out.payouts_json()), strip(expected));
    let staging = dir.path().join("out/.sd-work/staging");
    assert!(
        !staging.read_dir().expect("staging").any(|_| true),
        "staging is empty after a completed run"
    );
    assert_no_hidden_entries(&out.clean);
}

#[test]
fn bad_invocations_are_usage_errors() {
    let dir = Dir::new("process_usage");
    let out = Outputs::in_dir(&dir);
    let missing = dir.path().join("no-such-folder");
    let output = out.process(&missing, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no-such-folder"));

    // The clean layout and the review area in one folder would mix failed segments with what
    // consumers read: refused before anything is written.
    let (raw, _) = synthetic_raw(&dir, 3.0, 15);
    let same = dir.path().join("same");
    let shared_ledger = dir.path().join("same.sqlite");
    let output = run(&[
        "process",
        &raw.display().to_string(),
        "--out",
        &same.display().to_string(),
        "--review",
        &same.display().to_string(),
        "--ledger",
        &shared_ledger.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("overlap"));
    assert!(!shared_ledger.exists(), "a refused run writes no ledger");

    let ledger = dir.path().join("none.sqlite").display().to_string();
    let output = run(&["payouts", "list", "--ledger", &ledger]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no ledger at"));
    assert!(
        !dir.path().join("none.sqlite").exists(),
        "a typo must not create a ledger"
    );

    let output = run(&[
        "review",
        "override",
        "not-a-segment",
        "--pass",
        "--reason",
        "x",
        "--by",
        "y",
        "--ledger",
        &ledger,
    ]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn broken_corpus_is_rejected_case_by_case_and_nothing_broken_is_published_or_paid() {
    use sd_fixtures::{write_broken_corpus, Expected};

    let dir = Dir::new("process_broken");
    let valid = dir.path().join("valid");
    let mut spec = SyntheticSpec::constant_rate(8.0, 10.0);
    spec.wallet = REAL_WALLET.to_owned();
    write_bundle(&valid, &spec, Naming::UploadEpoch).expect("write valid bundle");
    let raw = dir.path().join("raw");
    let cases = write_broken_corpus(&valid, &raw).expect("write corpus");
    let out = Outputs::in_dir(&dir);
    let output = out.process(&raw, &["--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let summary: Value = serde_json::from_str(&stdout_with_status(&output, 0)).expect("JSON");
    let lines = summary["sessions"].as_array().expect("sessions");

    let mut accepted_sessions = Vec::new();
    let mut rejected = 0;
    for case in &cases {
        // Session ids are unique across the corpus.
        let line = lines
            .iter()
            .find(|l| l["session_id"] == case.session_id.as_str());
        match &case.expected {
            Expected::Ignored | Expected::Unlisted => {
                assert!(
                    line.is_none(),
                    "{}: processed, but discovery should pass it over",
                    case.name
                );
            }
            Expected::Rejected { code } => {
                let line = line.unwrap_or_else(|| panic!("{}: not processed", case.name));
                assert_eq!(line["status"], "rejected", "{}: {line}", case.name);
                assert_eq!(line["reject_code"], *code, "{}: {line}", case.name);
                assert!(
                    !line["reject_message"].as_str().unwrap_or("").is_empty(),
                    "{}: a reason a person can read",
                    case.name
                );
                assert_eq!(line["clean_segments"], 0, "{}", case.name);
                rejected += 1;
            }
            Expected::Accepted => {
                let line = line.unwrap_or_else(|| panic!("{}: not processed", case.name));
                assert_eq!(line["status"], "accepted", "{}: {line}", case.name);
                accepted_sessions.push(case.session_id.clone());
            }
            Expected::AcceptedFailing { check } => {
                let line = line.unwrap_or_else(|| panic!("{}: not processed", case.name));
                assert_eq!(line["status"], "accepted", "{}: {line}", case.name);
                assert_eq!(
                    line["clean_segments"], 0,
                    "{}: nothing of it is published",
                    case.name
                );
                let failed: Vec<&str> = line["failed_checks"]
                    .as_array()
                    .expect("failed checks")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                assert!(failed.contains(check), "{}: {failed:?}", case.name);
            }
        }
    }
    // Nothing of a rejected or failing bundle is published; every published segment is whole.
    for (path, _) in complete_segments(&out.clean) {
        assert!(
            accepted_sessions
                .iter()
                .any(|id| path.to_string_lossy().contains(id.as_str())),
            "{} published from a broken bundle",
            path.display()
        );
    }
    // Nothing of them is paid.
    let payouts = out.payouts_json();
    for payout in payouts["payouts"].as_array().expect("payouts") {
        for item in payout["items"].as_array().expect("items") {
            let session = item["key"]["session_id"].as_str().expect("session id");
            assert!(
                accepted_sessions.iter().any(|id| id == session),
                "{session} is paid but its bundle is broken"
            );
        }
    }
    // Every processed case is in the ledger with its one reason; rejected ones hold no segment.
    let ledger = sd_ledger::Ledger::open(&out.ledger).expect("ledger");
    let rows = ledger.sessions().expect("sessions");
    for case in &cases {
        let row = rows.iter().find(|r| r.session_id == case.session_id);
        match &case.expected {
            Expected::Rejected { code } => {
                let row = row.unwrap_or_else(|| panic!("{}: not in the ledger", case.name));
                assert_eq!(row.reject_code.as_deref(), Some(*code), "{}", case.name);
                assert!(row.reject_message.is_some(), "{}", case.name);
                assert_eq!((row.segments, row.valid_segments), (0, 0), "{}", case.name);
            }
            Expected::AcceptedFailing { .. } => {
                let row = row.unwrap_or_else(|| panic!("{}: not in the ledger", case.name));
                assert_eq!(row.valid_segments, 0, "{}: nothing of it counts", case.name);
            }
            Expected::Accepted => assert!(row.is_some(), "{}: not in the ledger", case.name),
            Expected::Ignored | Expected::Unlisted => {
                assert!(
                    row.is_none(),
                    "{}: recorded, but never processed",
                    case.name
                )
            }
        }
    }
    drop(ledger);

    // `inspect` reads the same tree (odd file names included) and still reports it as JSON.
    let inspected = run(&["inspect", "--json", &raw.display().to_string()]);
    let report: Value = serde_json::from_str(&stdout_with_status(&inspected, 0))
        .expect("inspect --json prints JSON");
    assert!(report["summary"]["rejected"].as_u64().expect("count") >= rejected);
    report_figure(&format!(
        "process broken corpus: {} cases, {rejected} rejected with their code, {} accepted controls, nothing broken published or paid",
        cases.len(),
        accepted_sessions.len()
    ));
}

#[test]
fn publish_aborted_at_every_step_never_shows_a_partial_or_failed_segment() {
    let dir = Dir::new("process_abort_steps");
    let (raw, _) = synthetic_raw(&dir, 21.0, 13);
    let out = Outputs::in_dir(&dir);
    // Run A: four passing segments in the clean layout.
    out.process_json(&raw);
    assert_eq!(complete_segments(&out.clean).len(), 4);
    // Run B fails them all (10 fps is under a 20 fps bar): every step of moving them out of the
    // clean layout, killed in turn.
    let strict = dir.path().join("strict.toml");
    std::fs::write(&strict, "[video]\nmin_fps = 20.0\n").expect("write config");
    let bin = Path::new(env!("CARGO_BIN_EXE_scale-diffusion"));
    let mut args = vec![
        "process".to_owned(),
        raw.display().to_string(),
        "--quiet".into(),
    ];
    args.extend(out.layout_args());
    args.extend(["--config".to_owned(), strict.display().to_string()]);
    let mut aborted = 0;
    for step in 1..=20 {
        let status = Command::new(bin)
            .args(&args)
            .env(sd_core::ABORT_AFTER_RENAMES_ENV, step.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run process");
        if status.success() {
            break;
        }
        aborted += 1;
        // Whole segments only; a segment in the clean layout still says it belongs there.
        for (path, _) in complete_segments(&out.clean) {
            let quality: Value = serde_json::from_str(
                &std::fs::read_to_string(path.join("quality.json")).expect("quality.json"),
            )
            .expect("JSON");
            assert_eq!(
                quality["placement"]["location"],
                "clean",
                "{}",
                path.display()
            );
        }
        complete_segments(&out.review);
        assert_no_hidden_entries(&out.clean);
    }
    assert!(
        aborted >= 5,
        "only {aborted} publish steps were interrupted"
    );
    report_figure(&format!(
        "process aborted after each of {aborted} visible renames: never a partial or misplaced segment"
    ));
    // The run that is let finish converges: all four in review, none in the clean layout.
    let strict_run = out.process(
        &raw,
        &["--quiet", "--config", &strict.display().to_string()],
    );
    stdout_with_status(&strict_run, 0);
    assert!(complete_segments(&out.clean).is_empty());
    assert_eq!(complete_segments(&out.review).len(), 4);
    assert_eq!(out.payouts_json()["wallets"][0]["valid_segments"], 0);
}

#[test]
fn the_rate_is_the_ledgers_and_approval_checks_what_was_seen() {
    let dir = Dir::new("process_rate");
    let (raw, _) = synthetic_raw(&dir, 11.0, 14);
    let out = Outputs::in_dir(&dir);
    out.process_json(&raw);
    let ledger = out.ledger.display().to_string();
    // A config with another rate is refused before anything is processed.
    let double = dir.path().join("double.toml");
    std::fs::write(&double, "[payout]\nlamports_per_segment = 2000000\n").expect("config");
    let refused = out.process(&raw, &["--config", &double.display().to_string()]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("pays 1000000 lamports per segment"),
        "{stderr}"
    );
    assert_eq!(
        out.payouts_json()["wallets"][0]["pending_lamports"],
        2_000_000
    );

    // Approving an amount that is not the pending one is refused, nothing written.
    let stale = run(&[
        "payouts",
        "approve",
        REAL_WALLET,
        "--by",
        "finance",
        "--lamports",
        "1000000",
        "--ledger",
        &ledger,
    ]);
    assert_eq!(
        stale.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );
    assert!(out.payouts_json()["payouts"][0]["state"] == "pending");

    // An explicit rate change re-prices what is pending; the new config is then accepted.
    stdout_with_status(
        &run(&["payouts", "set-rate", "2000000", "--ledger", &ledger]),
        0,
    );
    assert_eq!(
        out.payouts_json()["wallets"][0]["pending_lamports"],
        4_000_000
    );
    stdout_with_status(
        &out.process(
            &raw,
            &["--quiet", "--config", &double.display().to_string()],
        ),
        0,
    );
    let approved = run(&[
        "payouts",
        "approve",
        REAL_WALLET,
        "--by",
        "finance",
        "--lamports",
        "4000000",
        "--ledger",
        &ledger,
    ]);
    assert!(stdout_with_status(&approved, 0).contains("0.004000000 SOL"));
}
