//! The worker end to end against a real S3+SQS emulator: bundles PUT into the raw bucket, S3
//! events through SQS, two worker processes, the clean bucket and the ledger; compared with what
//! the local `process` path publishes for the same bundles.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn two_workers_publish_what_process_publishes_and_a_second_upload_changes_nothing() {
    let test = "two_workers_publish_what_process_publishes";
    let Some(real) = real_sessions(test) else {
        return;
    };
    let dir = test_dir("worker_e2e");
    let Some(emulator) = Emulator::start(test, &dir) else {
        return;
    };
    emulator.setup(&[]);
    let wallet_dir = raw_bundles(&dir, &real);
    let sessions = upload_order(&wallet_dir);
    assert_eq!(sessions.len(), 5, "four real sessions and a synthetic one");

    let ledger = dir.join("server-ledger.sqlite");
    let work = dir.join("work");
    // Both workers trace to one collector: one trace per session processed.
    let collector = sd_tests::otlp::Receiver::start(sd_tests::otlp::Mode::Accept);
    let endpoint = collector.endpoint();
    let tracing = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    let workers = [
        emulator.worker_with_env("worker-a", &ledger, &work, &[], &tracing),
        emulator.worker_with_env("worker-b", &ledger, &work, &[], &tracing),
    ];
    let started = std::time::Instant::now();
    upload(&emulator, REAL_WALLET, &sessions);
    let status = emulator.wait_until(&ledger, Duration::from_secs(600), "5 sessions", |s| {
        let states = session_states(s);
        states.get("done").copied().unwrap_or(0) + states.get("rejected").copied().unwrap_or(0) == 5
    });
    let elapsed = started.elapsed();
    let states = session_states(&status);
    assert_eq!(states.get("rejected"), Some(&1), "{status:#}");

    // The same bundles through the local path.
    let (clean, review, local_ledger) = process_locally(&wallet_dir, &dir.join("local"));
    let ids: Vec<String> = sessions.iter().map(|(id, _)| id.clone()).collect();
    let compared = compare_with_local(&emulator, &ids, &clean, &review);
    assert!(compared >= 5, "only {compared} manifests compared");
    // Two workers got events of the same sessions at the same time: each was processed once.
    for (session, times) in times_processed(&ledger) {
        assert_eq!(times, 1, "{session} processed {times} times");
    }
    let server_totals = totals(&ledger);
    assert_eq!(server_totals, totals(&local_ledger));
    assert!(
        server_totals.iter().any(|t| t.1 > 0),
        "no valid segment at all: {server_totals:?}"
    );
    report_figure(&format!(
        "worker e2e: 5 sessions (4 real, 1 synthetic) through S3 events -> SQS -> 2 workers in {:.1} s; {compared} manifests equal to the local layout's; totals {server_totals:?}",
        elapsed.as_secs_f64()
    ));

    // Everything again: same keys, same content, same ETags. Nothing changes.
    let times_before = times_processed(&ledger);
    upload(&emulator, REAL_WALLET, &sessions);
    std::thread::sleep(Duration::from_secs(2));
    emulator.wait_until(
        &ledger,
        Duration::from_secs(300),
        "re-upload drained",
        |_| true,
    );
    assert_eq!(totals(&ledger), server_totals);
    assert_eq!(times_processed(&ledger), times_before);

    // Duplicate events, three of each at once, to two idle workers: each session may be picked
    // up by both at the same moment. Nothing changes.
    emulator.send_meta_events(&sessions, 3);
    std::thread::sleep(Duration::from_secs(1));
    emulator.wait_until(
        &ledger,
        Duration::from_secs(300),
        "duplicates drained",
        |_| true,
    );
    assert_eq!(totals(&ledger), server_totals);
    assert_eq!(times_processed(&ledger), times_before);
    let logs: String = workers.iter().map(|w| w.log_text()).collect();
    assert!(
        logs.matches("outcome=Unchanged").count() >= 3 * sessions.len(),
        "duplicates were not seen as unchanged"
    );
    // Each worker works on two sessions at once (the default): its two loops, like the two
    // workers, wait for each other's leases instead of taking them.
    assert!(
        !logs.contains("lease lost") && !logs.contains("lease was lost"),
        "a lease was taken over with no fault:\n{logs}"
    );

    // A reviewer promotes a failed real segment, in the bucket and locally: the worker
    // reprocesses the session and both end where the ledger says, with equal manifests.
    let segment = "session_1769936388223_tp5owb/segment_001";
    let session = "session_1769936388223_tp5owb";
    let ledger_text = ledger.display().to_string();
    let reviewed = emulator
        .server(&[
            "review",
            segment,
            "--pass",
            "--reason",
            "labels checked by hand",
            "--by",
            "qa",
            "--ledger",
            &ledger_text,
        ])
        .output()
        .expect("run review");
    assert!(
        reviewed.status.success(),
        "review failed: {}",
        String::from_utf8_lossy(&reviewed.stderr)
    );
    let before = times_processed(&ledger)
        .into_iter()
        .find(|(id, _)| id == session)
        .map_or(0, |(_, n)| n);
    emulator.wait_until(&ledger, Duration::from_secs(300), "the reprocess", |_| {
        times_processed(&ledger)
            .into_iter()
            .any(|(id, n)| id == session && n == before + 1)
    });
    let clean_manifest =
        bucket_manifest(&emulator, sd_core::Location::Clean, session).expect("clean manifest");
    assert!(clean_manifest.segments.iter().any(|s| s.segment == 1));
    let review_manifest =
        bucket_manifest(&emulator, sd_core::Location::Review, session).expect("review manifest");
    assert!(review_manifest.segments.iter().all(|s| s.segment != 1));
    override_locally(&dir.join("local"), segment);
    assert_eq!(
        compare_with_local(&emulator, &[session.to_owned()], &clean, &review),
        2
    );
    let after = totals(&ledger);
    assert_eq!(after, totals(&local_ledger));
    assert_eq!(after[0].1, server_totals[0].1 + 1, "{after:?}");
    for worker in workers {
        let log = worker.log_text();
        let status = worker.terminate();
        assert!(status.success(), "worker exit {status:?}; log:\n{log}");
    }

    // The workers flushed their spans on SIGTERM: one trace per time a session was processed,
    // each with its fetch and the pipeline's steps under the session's root.
    let spans = collector.spans();
    let roots: Vec<_> = spans
        .iter()
        .filter(|s| {
            s.attribute("langsmith.span.kind") == Some("chain") && s.name.starts_with("session ")
        })
        .collect();
    let mut traces = std::collections::BTreeMap::new();
    for root in &roots {
        assert_eq!(root.service, "scale-diffusion-server");
        let steps: std::collections::BTreeSet<&str> = spans
            .iter()
            .filter(|s| s.parent_span_id == root.span_id && s.trace_id == root.trace_id)
            .map(|s| s.name.as_str())
            .collect();
        assert!(
            steps.contains("fetch") && steps.contains("decode") && steps.contains("ledger"),
            "{}: {steps:?}",
            root.name
        );
        let session = root.attribute("session_id").expect("session_id").to_owned();
        *traces.entry(session).or_insert(0u64) += 1;
    }
    let processed: std::collections::BTreeMap<String, u64> =
        times_processed(&ledger).into_iter().collect();
    assert_eq!(
        traces, processed,
        "traces per session against times processed"
    );
    let trace_ids: std::collections::BTreeSet<&Vec<u8>> =
        roots.iter().map(|r| &r.trace_id).collect();
    assert_eq!(
        trace_ids.len(),
        roots.len(),
        "each session run is its own trace"
    );
    report_figure(&format!(
        "worker traces: {} traces for {} session runs, {} spans in all",
        roots.len(),
        processed.values().sum::<u64>(),
        spans.len()
    ));
}

/// `scale-diffusion review override SEGMENT --pass` on the local layout, in process: the ledger's
/// override, then the segment moved on disk.
fn override_locally(out: &std::path::Path, segment: &str) {
    let mut ledger = sd_ledger::Ledger::open(&out.join("ledger.sqlite")).expect("ledger");
    let reference = sd_core::SegmentRef::parse(segment).expect("segment ref");
    let row = ledger.find_segment(&reference).expect("segment");
    let rate = sd_core::PipelineConfig::default()
        .payout
        .rate()
        .expect("rate");
    let layout =
        sd_core::OutputLayout::open(&out.join("clean"), &out.join("review"), &out.join(".work"))
            .expect("layout");
    ledger
        .review_segment(
            &layout,
            &row.key,
            sd_core::Verdict::Pass,
            "labels checked by hand",
            "qa",
            "2026-12-02T00:00:00Z",
            rate,
        )
        .expect("override");
}
