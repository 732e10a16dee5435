//! The worker under the faults at-least-once delivery brings: a worker killed mid-session, the
//! emulator stalled mid-run, a part that comes late, a session that always fails. Every case
//! ends where an undisturbed run ends: the same manifests as the local layout, each session
//! recorded once, the same totals.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn ids(sessions: &[(String, Vec<std::path::PathBuf>)]) -> Vec<String> {
    sessions.iter().map(|(id, _)| id.clone()).collect()
}

#[test]
fn a_worker_killed_mid_session_is_taken_over_and_converges() {
    let test = "a_worker_killed_mid_session";
    let dir = test_dir("worker_killed");
    let Some(emulator) = Emulator::start(test, &dir) else {
        return;
    };
    // The default receive count; the harness's lease (20 s) and heartbeat (2 s): the message
    // comes back long before the dead worker's lease runs out.
    emulator.setup(&[]);
    // Long enough to be caught mid-way.
    let wallet_dir = synthetic_bundles(&dir, 1, 40.0, 30.0, 71);
    let sessions = upload_order(&wallet_dir);
    let ledger = dir.join("ledger.sqlite");
    let work = dir.join("work");
    let first = emulator.worker("worker-a", &ledger, &work, &[]);
    upload(&emulator, REAL_WALLET, &sessions);
    let started = Instant::now();
    loop {
        let status = emulator.status(&ledger);
        if session_states(&status)
            .get("processing")
            .copied()
            .unwrap_or(0)
            == 1
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never started processing: {status:#}\n{}",
            first.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(700));
    let mut first = first;
    first.child.kill().expect("SIGKILL");
    let _ = first.child.wait();
    assert!(
        !first.log_text().contains("session processed"),
        "the first worker finished before it was killed: make the session longer"
    );
    let killed_at = Instant::now();

    let second = emulator.worker("worker-b", &ledger, &work, &[]);
    emulator.wait_until(&ledger, Duration::from_secs(300), "takeover", |s| {
        session_states(s).get("done").copied().unwrap_or(0) == 1
    });
    let (clean, review, local_ledger) = process_locally(&wallet_dir, &dir.join("local"));
    assert_eq!(
        compare_with_local(&emulator, &ids(&sessions), &clean, &review),
        1
    );
    assert_eq!(totals(&ledger), totals(&local_ledger));
    assert_eq!(times_processed(&ledger)[0].1, 1);
    // The second worker did it, under a newer lease.
    let row = session_row(&ledger, &sessions[0].0).expect("recorded");
    assert!(row.run_id.starts_with("worker-b-"), "{}", row.run_id);
    let intake = intake_row(&ledger, &sessions[0].0);
    assert!(intake.lease_token >= 2, "{intake:?}");
    report_figure(&format!(
        "worker fault: SIGKILL mid-session, taken over and converged {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    ));
    assert!(second.terminate().success());
}

#[test]
fn the_emulator_stalled_for_ten_seconds_loses_nothing_and_counts_nothing_twice() {
    let test = "the_emulator_stalled_for_ten_seconds";
    let dir = test_dir("emulator_stalled");
    let Some(emulator) = Emulator::start(test, &dir) else {
        return;
    };
    // Requests sent during the stall still run after it (moto answers late): room for ghost
    // receives before the dead-letter queue.
    emulator.setup(&["--visibility-timeout", "20s", "--max-receive-count", "10"]);
    let wallet_dir = synthetic_bundles(&dir, 3, 15.0, 30.0, 81);
    let sessions = upload_order(&wallet_dir);
    let ledger = dir.join("ledger.sqlite");
    let work = dir.join("work");
    // Requests time out after 3 s during the stall and are retried with backoff.
    let env = [("SD_AWS_ATTEMPT_TIMEOUT", "3s")];
    let workers = [
        emulator.worker_with_env("worker-a", &ledger, &work, &[], &env),
        emulator.worker_with_env("worker-b", &ledger, &work, &[], &env),
    ];
    upload(&emulator, REAL_WALLET, &sessions);
    std::thread::sleep(Duration::from_millis(800));
    emulator.signal("STOP");
    std::thread::sleep(Duration::from_secs(10));
    emulator.signal("CONT");
    let stalled_at = Instant::now();
    emulator.wait_until(&ledger, Duration::from_secs(300), "3 sessions", |s| {
        session_states(s).get("done").copied().unwrap_or(0) == 3
    });
    let (clean, review, local_ledger) = process_locally(&wallet_dir, &dir.join("local"));
    assert_eq!(
        compare_with_local(&emulator, &ids(&sessions), &clean, &review),
        3
    );
    assert_eq!(totals(&ledger), totals(&local_ledger));
    for (session, times) in times_processed(&ledger) {
        assert_eq!(times, 1, "{session}");
    }
    report_figure(&format!(
        "worker fault: emulator stopped 10 s mid-run; 3 sessions done {:.1} s after it came back, each recorded once, totals equal to the local run's",
        stalled_at.elapsed().as_secs_f64()
    ));
    for worker in workers {
        assert!(worker.terminate().success());
    }
}

#[test]
fn missing_parts_past_the_timeout_are_named_and_a_late_part_gets_the_session_processed() {
    let test = "missing_parts_past_the_timeout";
    let dir = test_dir("missing_part");
    let Some(emulator) = Emulator::start(test, &dir) else {
        return;
    };
    emulator.setup(&["--visibility-timeout", "30s"]);
    let wallet_dir = synthetic_bundles(&dir, 1, 12.0, 10.0, 91);
    let sessions = upload_order(&wallet_dir);
    let (id, parts) = &sessions[0];
    let (late, early): (Vec<_>, Vec<_>) = parts.iter().cloned().partition(|path| {
        let name = path.to_string_lossy();
        name.ends_with("_camera.json") || name.ends_with("_latency.json")
    });
    let ledger = dir.join("ledger.sqlite");
    let worker = emulator.worker(
        "worker-a",
        &ledger,
        &dir.join("work"),
        &["--incomplete-timeout", "3s"],
    );
    upload(&emulator, REAL_WALLET, &[(id.clone(), early)]);
    emulator.wait_until(&ledger, Duration::from_secs(60), "the timeout", |s| {
        session_states(s).get("rejected").copied().unwrap_or(0) == 1
    });
    let row = session_row(&ledger, id).expect("recorded");
    assert_eq!(row.reject_code.as_deref(), Some("missing_part"));
    assert_eq!(
        row.reject_message.as_deref(),
        Some("the camera and latency parts are missing")
    );
    assert!(
        totals(&ledger).iter().all(|t| t.1 == 0),
        "a rejected session pays nothing"
    );

    upload(&emulator, REAL_WALLET, &[(id.clone(), late)]);
    emulator.wait_until(&ledger, Duration::from_secs(120), "the late parts", |s| {
        session_states(s).get("done").copied().unwrap_or(0) == 1
    });
    let row = session_row(&ledger, id).expect("recorded");
    assert_eq!(row.status, sd_core::SessionStatus::Accepted);
    // Rejected once, then accepted; the camera part's event may find the session past its
    // timeout with latency still on its way, and reject it once more.
    assert!(
        (2..=3).contains(&row.times_processed),
        "{}",
        row.times_processed
    );
    let (clean, review, local_ledger) = process_locally(&wallet_dir, &dir.join("local"));
    assert_eq!(
        compare_with_local(&emulator, &ids(&sessions), &clean, &review),
        1
    );
    assert_eq!(totals(&ledger), totals(&local_ledger));
    assert!(worker.terminate().success());
}

#[test]
fn a_poison_session_ends_in_the_dead_letter_queue_with_its_reason() {
    let test = "a_poison_session_ends_in_the_dlq";
    let dir = test_dir("poison");
    let Some(emulator) = Emulator::start(test, &dir) else {
        return;
    };
    emulator.setup(&["--max-receive-count", "2"]);
    let wallet_dir = synthetic_bundles(&dir, 2, 8.0, 10.0, 101);
    let sessions = upload_order(&wallet_dir);
    let poison = sessions[0].0.clone();
    let ledger = dir.join("ledger.sqlite");
    // Every part first, so that each of the poison session's five events finds it complete.
    upload(&emulator, REAL_WALLET, &sessions);
    let worker = emulator.worker_with_env(
        "worker-a",
        &ledger,
        &dir.join("work"),
        &[],
        &[("SD_TEST_FAIL_SESSION", poison.as_str())],
    );
    // Five part events name the poison session: each is received twice, then dead-lettered.
    let status = emulator.wait_until(&ledger, Duration::from_secs(180), "dead letters", |s| {
        s["dead_letter_queue"]["visible"] == 5
            && session_states(s).get("done").copied().unwrap_or(0) == 1
    });
    let failing = status["failing"].as_array().expect("failing list");
    assert_eq!(failing.len(), 1, "{status:#}");
    assert_eq!(failing[0]["session_id"], poison.as_str());
    assert!(failing[0]["failures"].as_u64().unwrap_or(0) >= 2);
    assert!(
        failing[0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("failing this session as asked"),
        "{status:#}"
    );
    assert!(
        session_row(&ledger, &poison).is_none(),
        "a poison session is never recorded"
    );
    let text = emulator.status_text(&ledger);
    assert!(text.contains("dead letters sd-raw-events-dlq: 5"), "{text}");
    assert!(text.contains(&poison), "{text}");
    assert!(worker.terminate().success());
}

#[test]
fn sigterm_mid_session_gives_it_back_within_the_grace_period_and_exits_0() {
    let test = "sigterm_mid_session";
    let dir = test_dir("worker_sigterm");
    let Some(emulator) = Emulator::start(test, &dir) else {
        return;
    };
    emulator.setup(&["--visibility-timeout", "30s", "--max-receive-count", "10"]);
    let wallet_dir = synthetic_bundles(&dir, 1, 40.0, 30.0, 111);
    let sessions = upload_order(&wallet_dir);
    let ledger = dir.join("ledger.sqlite");
    let work = dir.join("work");
    let first = emulator.worker("worker-a", &ledger, &work, &["--grace", "1s"]);
    upload(&emulator, REAL_WALLET, &sessions);
    let started = Instant::now();
    while session_states(&emulator.status(&ledger))
        .get("processing")
        .copied()
        .unwrap_or(0)
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let asked = Instant::now();
    let log = first.log.clone();
    let status = first.terminate();
    let took = asked.elapsed();
    let log = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(
        log.contains("giving the session back"),
        "the session finished within the grace period: make it longer\n{log}"
    );
    assert!(took < Duration::from_secs(15), "took {took:?} to stop");
    // Given back: waiting, not processing; another worker takes it at once.
    let second = emulator.worker("worker-b", &ledger, &work, &[]);
    emulator.wait_until(&ledger, Duration::from_secs(300), "the other worker", |s| {
        session_states(s).get("done").copied().unwrap_or(0) == 1
    });
    assert_eq!(times_processed(&ledger)[0].1, 1);
    report_figure(&format!(
        "worker SIGTERM mid-session: exited 0 in {:.1} s (grace 1 s), session given back and finished by another worker",
        took.as_secs_f64()
    ));
    assert!(second.terminate().success());
}
