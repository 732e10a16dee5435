//! Workers on several hosts sharing one PostgreSQL ledger (issue 17), simulated on one machine:
//! four worker processes, each with its own work folder, sharing nothing but the S3/SQS emulator
//! and PostgreSQL. Forty sessions with duplicate events, one worker killed mid-run, and
//! PostgreSQL stopped for ten seconds: every session is recorded once, the totals are exactly a
//! local run's, and the clean bucket holds each session's objects once, nothing besides.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use sd_core::{Location, MANIFEST_FILE};
use sd_ledger::{Ledger, LedgerLocation};
use sd_tests::postgres::Postgres;

const SESSIONS: usize = 40;
const WORKERS: usize = 4;

/// A session a worker named `name` holds the lease of now, with the lease's holder.
fn holding(ledger: &Ledger, sessions: &[String], name: &str) -> Option<(String, String)> {
    sessions.iter().find_map(|session| {
        let row = ledger.intake(REAL_WALLET, session).ok()??;
        let holder = row.lease_holder?;
        holder
            .starts_with(&format!("{name}/"))
            .then(|| (session.clone(), holder))
    })
}

fn done(status: &serde_json::Value) -> u64 {
    session_states(status).get("done").copied().unwrap_or(0)
}

#[test]
fn four_hosts_on_one_postgres_ledger_record_each_session_once_through_a_kill_and_an_outage() {
    let test = "four_hosts_on_one_postgres_ledger";
    let dir = test_dir("multi_host");
    let Some(emulator) = Emulator::start(test, &dir) else {
        return;
    };
    let Some(postgres) = Postgres::start(test) else {
        return;
    };
    postgres.create_database("ledger");
    let ledger = LedgerLocation::Postgres(postgres.url("ledger"));
    // Room for the receives a killed worker and an outage cost before the dead-letter queue.
    emulator.setup(&["--visibility-timeout", "20s", "--max-receive-count", "20"]);
    // One segment each (6 s at 30 fps, 5 s segments), each drive its own.
    let wallet_dir = synthetic_bundles(&dir, SESSIONS, 6.0, 30.0, 1700);
    let sessions = upload_order(&wallet_dir);
    let ids: Vec<String> = sessions.iter().map(|(id, _)| id.clone()).collect();
    let work = dir.join("work");
    let mut workers: Vec<Option<Worker>> = (0..WORKERS)
        .map(|n| Some(emulator.worker(&format!("host-{n}"), &ledger, &work, &[])))
        .collect();
    let started = Instant::now();
    // The uploads go on while a worker is killed.
    let (killed_session, killed_holder, done_at_kill) = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("uploader".to_owned())
            .spawn_scoped(scope, || {
                upload(&emulator, REAL_WALLET, &sessions);
                // Every session's last event twice more, as S3 and SQS may deliver it.
                emulator.send_meta_events(&sessions, 2);
            })
            .expect("start the uploader");
        // host-0 is killed while it holds a lease.
        let reader = Ledger::open_at(&ledger).expect("the ledger");
        let (session, holder) = loop {
            if let Some(held) = holding(&reader, &ids, "host-0") {
                break held;
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "host-0 never held a lease"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut killed = workers[0].take().expect("host-0");
        killed.child.kill().expect("SIGKILL");
        let _ = killed.child.wait();
        (session, holder, done(&emulator.status(&ledger)))
    });

    // Then PostgreSQL goes away for ten seconds while the others work.
    std::thread::sleep(Duration::from_millis(1500));
    let done_before_outage = done(&emulator.status(&ledger));
    postgres.stop();
    std::thread::sleep(Duration::from_secs(10));
    postgres.restart();
    let back_at = Instant::now();

    let status = emulator.wait_until(&ledger, Duration::from_secs(600), "40 sessions", |s| {
        done(s) == SESSIONS as u64
    });
    let (elapsed, after_outage) = (started.elapsed(), back_at.elapsed());
    assert_eq!(session_states(&status).get("failed").copied(), Some(0));

    // The same as one machine processing the bundles alone.
    let (clean, review, local_ledger) = process_locally(&wallet_dir, &dir.join("local"));
    let compared = compare_with_local(&emulator, &ids, &clean, &review);
    assert!(compared >= SESSIONS, "{compared} manifests compared");
    assert_eq!(totals(&ledger), totals(&local_ledger));
    assert!(
        totals(&ledger).iter().map(|t| t.1).sum::<usize>() > 0,
        "no valid segment: the totals prove nothing"
    );
    let times = times_processed(&ledger);
    assert_eq!(times.len(), SESSIONS);
    for (session, times) in &times {
        assert_eq!(*times, 1, "{session} recorded {times} times");
    }
    // Nothing published twice: under each session's prefixes, exactly its manifest's objects.
    for session in &ids {
        for location in [Location::Clean, Location::Review] {
            let prefix = match location {
                Location::Clean => format!("{REAL_WALLET}/{session}/"),
                Location::Review => format!("review/{REAL_WALLET}/{session}/"),
            };
            let listed: BTreeSet<String> = emulator
                .list_keys("sd-clean", &prefix)
                .into_iter()
                .collect();
            let expected: BTreeSet<String> = match bucket_manifest(&emulator, location, session) {
                None => BTreeSet::new(),
                Some(manifest) => manifest
                    .objects()
                    .map(|object| format!("{prefix}{}", object.path))
                    .chain([format!("{prefix}{MANIFEST_FILE}")])
                    .collect(),
            };
            assert_eq!(listed, expected, "{prefix}");
        }
    }
    // The killed worker's session was finished by another host, under a newer lease.
    let row = session_row(&ledger, &killed_session).expect("recorded");
    assert!(!row.run_id.starts_with("host-0-"), "{}", row.run_id);
    assert!(intake_row(&ledger, &killed_session).lease_token >= 2);
    let logs: String = workers
        .iter()
        .flatten()
        .map(|w| w.log_text())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        logs.contains("lost PostgreSQL"),
        "no worker noticed the outage:\n{}",
        &logs[logs.len().saturating_sub(4000)..]
    );
    report_figure(&format!(
        "multi-host: {SESSIONS} sessions ({} duplicate events) through {WORKERS} workers on one PostgreSQL ledger in {:.1} s; host-0 killed holding {killed_session} as {killed_holder} ({done_at_kill} done, finished by another host), PostgreSQL stopped 10 s ({done_before_outage} done); all done {:.1} s after it came back; each recorded once, totals equal to a local run's, {compared} manifests equal, no stray object",
        2 * SESSIONS,
        elapsed.as_secs_f64(),
        after_outage.as_secs_f64()
    ));
    for worker in workers.into_iter().flatten() {
        assert!(worker.terminate().success());
    }
}
