//! The server worker's intake through the public API: first-seen times, leases and their fencing
//! token, finishing a session under a lease, failures, and several connections (as several
//! worker processes) on one store. Each test runs on SQLite and on PostgreSQL
//! (`common::stores`). Times are epoch milliseconds chosen by the test.

// Test bodies are plain functions run by `common::stores`, not `#[test]`s: they unwrap as tests do.
#![allow(clippy::unwrap_used, reason = "test bodies")]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::stores::Store;
use common::{accepted_session, check_result, session_id, wallet, RATE};
use sd_core::{CheckName, CheckResult, Lamports, SessionRecord, SessionStatus};
use sd_ledger::{IntakeRow, IntakeState, Lease, Ledger, LedgerError, RecordedSession};

const PROCESSED_AT: &str = "2026-02-01T12:00:00Z";
/// A lease's time to live in these tests.
const TTL: i64 = 30_000;
/// Epoch ms the tests start at.
const T0: i64 = 1_769_936_388_000;

/// The one check of an intake test segment: blur, valued 1 when it passes and 0 when not.
fn blur_check(passed: bool) -> Vec<CheckResult> {
    let value = if passed { 1.0 } else { 0.0 };
    let blur = check_result(CheckName::Blur, passed, value, "test".to_owned());
    vec![blur]
}

/// An accepted session whose segment `i + 1` passes CLEAN when `verdicts[i]`.
fn accepted(wallet: &str, session_id: &str, verdicts: &[bool]) -> SessionRecord {
    let source = format!("s3://raw/{wallet}/{session_id}");
    accepted_session(source, wallet, session_id, verdicts, blur_check)
}

/// What the worker records for a session whose parts are still missing after the timeout.
fn missing_parts(wallet: &str, session_id: &str) -> SessionRecord {
    SessionRecord {
        wallet: wallet.to_owned(),
        session_id: session_id.to_owned(),
        source: format!("s3://raw/{wallet}/{session_id}"),
        status: SessionStatus::Rejected,
        reject_code: Some("missing_parts".to_owned()),
        reject_message: Some("meta.json is missing 10 minutes after the first part".to_owned()),
        frames: 0,
        clock_confidence: None,
        session_json: "{}".to_owned(),
        duplicate_recheck: None,
        segments: Vec::new(),
    }
}

fn row(ledger: &Ledger, wallet: &str, session_id: &str) -> IntakeRow {
    ledger
        .intake(wallet, session_id)
        .expect("intake")
        .unwrap_or_else(|| panic!("no intake row for {wallet}/{session_id}"))
}

fn acquire(ledger: &mut Ledger, w: &str, s: &str, holder: &str, now_ms: i64) -> Lease {
    ledger
        .acquire_lease(w, s, holder, now_ms, TTL)
        .expect("acquire_lease")
        .unwrap_or_else(|| panic!("{holder} could not lease {w}/{s} at {now_ms}"))
}

/// Finishes `record` under `lease` at the tests' rate and processing time.
fn finish(
    ledger: &mut Ledger,
    lease: &Lease,
    record: &SessionRecord,
    run_id: &str,
    fingerprint: &str,
    now_ms: i64,
) -> Result<RecordedSession, LedgerError> {
    ledger.finish_session(
        lease,
        record,
        RATE,
        PROCESSED_AT,
        run_id,
        fingerprint,
        now_ms,
    )
}

/// Everything `finish_session` could write outside the intake table.
fn recorded_state(
    ledger: &Ledger,
) -> (
    Vec<sd_ledger::SessionRow>,
    Vec<sd_ledger::Payout>,
    Vec<sd_ledger::WalletTotals>,
    Option<Lamports>,
) {
    (
        ledger.sessions().expect("sessions"),
        ledger.payouts(None).expect("payouts"),
        ledger.wallet_totals().expect("wallet totals"),
        ledger.rate().expect("rate"),
    )
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn first_seen_is_set_once_and_never_moves(store: &Store) {
    let (w, s) = (wallet(1), session_id(1));
    let mut ledger = store.open();
    assert_eq!(ledger.intake(&w, &s).unwrap(), None);

    let seen = ledger.note_seen(&w, &s, T0).unwrap();
    assert_eq!(
        seen,
        IntakeRow {
            wallet: w.clone(),
            session_id: s.clone(),
            first_seen_ms: T0,
            state: IntakeState::Waiting,
            parts_fingerprint: None,
            lease_holder: None,
            lease_token: 0,
            lease_expires_ms: None,
            failures: 0,
            last_error: None,
            updated_ms: T0,
        }
    );
    // A duplicate or later event leaves the row as it is.
    assert_eq!(ledger.note_seen(&w, &s, T0 + 5_000).unwrap(), seen);

    let lease = acquire(&mut ledger, &w, &s, "worker-a", T0 + 6_000);
    finish(
        &mut ledger,
        &lease,
        &accepted(&w, &s, &[true]),
        "run-1",
        "parts-v1",
        T0 + 7_000,
    )
    .unwrap();
    assert_eq!(
        ledger.note_seen(&w, &s, T0 + 8_000).unwrap().first_seen_ms,
        T0
    );
    drop(ledger);

    // Across a restart (another process opening the file).
    let reopened = store.open();
    let after = row(&reopened, &w, &s);
    assert_eq!(
        (after.first_seen_ms, after.state, after.updated_ms),
        (T0, IntakeState::Done, T0 + 7_000)
    );

    // Leasing a session never seen creates its row, first seen then.
    let mut reopened = reopened;
    let s2 = session_id(2);
    acquire(&mut reopened, &w, &s2, "worker-a", T0 + 9_000);
    assert_eq!(row(&reopened, &w, &s2).first_seen_ms, T0 + 9_000);
}

fn a_second_holder_gets_the_lease_only_once_it_expired(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(2), session_id(2));
    let a = acquire(&mut ledger, &w, &s, "worker-a", T0);
    assert_eq!(
        (a.token, a.expires_ms, a.previous_state),
        (1, T0 + TTL, IntakeState::Waiting)
    );
    let held = row(&ledger, &w, &s);
    assert_eq!(
        (
            held.state,
            held.lease_holder.as_deref(),
            held.lease_token,
            held.lease_expires_ms
        ),
        (IntakeState::Processing, Some("worker-a"), 1, Some(T0 + TTL))
    );

    // One millisecond before expiry: busy, and nothing changes.
    assert_eq!(
        ledger
            .acquire_lease(&w, &s, "worker-b", T0 + TTL - 1, TTL)
            .unwrap(),
        None
    );
    assert_eq!(row(&ledger, &w, &s), held);

    // At expiry: taken over, with the next fencing token.
    let b = acquire(&mut ledger, &w, &s, "worker-b", T0 + TTL);
    assert_eq!(
        (b.token, b.expires_ms, b.previous_state),
        (2, T0 + 2 * TTL, IntakeState::Processing)
    );

    // The first holder's lease is lost for every write.
    assert!(!ledger.renew_lease(&a, T0 + TTL, TTL).unwrap());
    assert!(!ledger
        .release_lease(&a, IntakeState::Waiting, T0 + TTL)
        .unwrap());
    let err = ledger
        .record_failure(&a, "S3 timed out", T0 + TTL)
        .unwrap_err();
    assert!(
        matches!(&err, LedgerError::LeaseLost { wallet, session_id } if *wallet == w && *session_id == s),
        "{err:?}"
    );
    let now = row(&ledger, &w, &s);
    assert_eq!(
        (
            now.lease_holder.as_deref(),
            now.lease_token,
            now.failures,
            now.state
        ),
        (Some("worker-b"), 2, 0, IntakeState::Processing)
    );

    // The same holder acquiring again takes over its own lease (a restarted worker).
    let b2 = acquire(&mut ledger, &w, &s, "worker-b", T0 + TTL + 1);
    assert_eq!(b2.token, 3);
    assert!(!ledger.renew_lease(&b, T0 + TTL + 2, TTL).unwrap());
    assert!(ledger.renew_lease(&b2, T0 + TTL + 2, TTL).unwrap());
}

fn renewing_moves_the_expiry_until_the_lease_is_lost(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(3), session_id(3));
    let a = acquire(&mut ledger, &w, &s, "worker-a", T0);
    assert!(ledger.renew_lease(&a, T0 + TTL - 1, TTL).unwrap());
    assert_eq!(
        row(&ledger, &w, &s).lease_expires_ms,
        Some(T0 + 2 * TTL - 1)
    );
    // Past the first expiry but within the renewed one: still busy for others.
    assert_eq!(
        ledger
            .acquire_lease(&w, &s, "worker-b", T0 + TTL + 5, TTL)
            .unwrap(),
        None
    );
    // A lease that ran out is not renewed, even if nobody took it.
    assert!(!ledger.renew_lease(&a, T0 + 2 * TTL - 1, TTL).unwrap());
    assert_eq!(
        row(&ledger, &w, &s).lease_expires_ms,
        Some(T0 + 2 * TTL - 1)
    );
    assert!(matches!(
        ledger.renew_lease(&a, T0, 0),
        Err(LedgerError::InvalidDuration { ms: 0, .. })
    ));
    assert!(matches!(
        ledger.acquire_lease(&w, &s, "worker-b", i64::MAX - 1, TTL),
        Err(LedgerError::Overflow { .. })
    ));
    assert!(matches!(
        ledger.acquire_lease(&w, &s, " ", T0, TTL),
        Err(LedgerError::EmptyText { .. })
    ));
}

fn finishing_under_a_lost_lease_writes_nothing(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(4), session_id(4));
    let record = accepted(&w, &s, &[true, true, false]);
    let empty = recorded_state(&ledger);

    // Expired, nobody took it over: too late to record.
    let a = acquire(&mut ledger, &w, &s, "worker-a", T0);
    let err = finish(&mut ledger, &a, &record, "run-a", "fp-1", T0 + TTL).unwrap_err();
    assert!(matches!(err, LedgerError::LeaseLost { .. }), "{err:?}");
    assert_eq!(recorded_state(&ledger), empty);

    // Taken over by another worker.
    let b = acquire(&mut ledger, &w, &s, "worker-b", T0 + TTL);
    let intake_before = row(&ledger, &w, &s);
    let err = finish(&mut ledger, &a, &record, "run-a", "fp-1", T0 + TTL + 1).unwrap_err();
    assert!(matches!(err, LedgerError::LeaseLost { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("{w}/{s}")), "{err}");
    assert_eq!(recorded_state(&ledger), empty, "no session, payout or rate");
    assert_eq!(row(&ledger, &w, &s), intake_before);

    // The current holder records it.
    let recorded = finish(&mut ledger, &b, &record, "run-b", "fp-1", T0 + TTL + 2).unwrap();
    assert_eq!(recorded.segments.len(), 3);
    let sessions = ledger.sessions().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        (
            sessions[0].run_id.as_str(),
            sessions[0].valid_segments,
            sessions[0].times_processed
        ),
        ("run-b", 2, 1)
    );
    let done = row(&ledger, &w, &s);
    assert_eq!(
        (
            done.state,
            done.parts_fingerprint.as_deref(),
            done.lease_holder,
            done.lease_expires_ms,
            done.lease_token
        ),
        (IntakeState::Done, Some("fp-1"), None, None, 2)
    );

    // Finished means ended: the same lease cannot finish again.
    let err = finish(&mut ledger, &b, &record, "run-b", "fp-1", T0 + TTL + 3).unwrap_err();
    assert!(matches!(err, LedgerError::LeaseLost { .. }), "{err:?}");
    assert_eq!(ledger.sessions().unwrap()[0].times_processed, 1);
}

fn finishing_twice_with_the_same_record_changes_no_total(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(5), session_id(5));
    let record = accepted(&w, &s, &[true, false, true]);
    let first = acquire(&mut ledger, &w, &s, "worker-a", T0);
    finish(&mut ledger, &first, &record, "run-1", "fp", T0 + 1).unwrap();
    let totals = ledger.wallet_totals().unwrap();
    let payouts = ledger.payouts(None).unwrap();
    assert_eq!(totals.len(), 1);
    assert_eq!(
        (totals[0].valid_segments, totals[0].pending_lamports),
        (2, Lamports(2_000_000))
    );

    // Redelivered: another worker processes the same parts again.
    let second = acquire(&mut ledger, &w, &s, "worker-b", T0 + 2);
    assert_eq!(
        (second.previous_state, second.parts_fingerprint.as_deref()),
        (IntakeState::Done, Some("fp"))
    );
    let again = finish(&mut ledger, &second, &record, "run-2", "fp", T0 + 3).unwrap();
    assert!(again.replaced);
    assert_eq!(again.times_processed, 2);
    assert_eq!(ledger.wallet_totals().unwrap(), totals);
    assert_eq!(
        ledger.payouts(None).expect("payouts"),
        payouts,
        "same items, same ids"
    );
    assert_eq!(row(&ledger, &w, &s).state, IntakeState::Done);
}

fn unchanged_parts_are_given_back_without_processing(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(6), session_id(6));
    // Never completed: it can only go back to waiting.
    let a = acquire(&mut ledger, &w, &s, "worker-a", T0);
    let err = ledger
        .release_lease(&a, IntakeState::Done, T0 + 1)
        .unwrap_err();
    assert!(
        matches!(err, LedgerError::InvalidRelease { state: "done", .. }),
        "{err:?}"
    );
    for state in [IntakeState::Processing, IntakeState::Failed] {
        assert!(matches!(
            ledger.release_lease(&a, state, T0 + 1),
            Err(LedgerError::InvalidRelease { .. })
        ));
    }
    assert_eq!(
        row(&ledger, &w, &s).lease_holder.as_deref(),
        Some("worker-a")
    );
    assert!(ledger
        .release_lease(&a, IntakeState::Waiting, T0 + 2)
        .unwrap());
    let waiting = row(&ledger, &w, &s);
    assert_eq!(
        (
            waiting.state,
            waiting.lease_holder,
            waiting.lease_expires_ms,
            waiting.updated_ms
        ),
        (IntakeState::Waiting, None, None, T0 + 2)
    );
    assert!(
        !ledger
            .release_lease(&a, IntakeState::Waiting, T0 + 3)
            .unwrap(),
        "already given back"
    );

    // Rejected for missing parts, then a duplicate event with the same parts: given back as it
    // was, without a second record.
    let b = acquire(&mut ledger, &w, &s, "worker-b", T0 + 4);
    finish(
        &mut ledger,
        &b,
        &missing_parts(&w, &s),
        "run-1",
        "4 parts",
        T0 + 5,
    )
    .unwrap();
    let c = acquire(&mut ledger, &w, &s, "worker-c", T0 + 6);
    assert_eq!(
        (c.previous_state, c.parts_fingerprint.as_deref()),
        (IntakeState::Rejected, Some("4 parts"))
    );
    assert!(ledger.release_lease(&c, c.previous_state, T0 + 7).unwrap());
    let rejected = row(&ledger, &w, &s);
    assert_eq!(
        (
            rejected.state,
            rejected.parts_fingerprint.as_deref(),
            rejected.lease_holder
        ),
        (IntakeState::Rejected, Some("4 parts"), None)
    );
    assert_eq!(ledger.sessions().unwrap()[0].times_processed, 1);

    // The missing part arrives: new fingerprint, processed, accepted.
    let d = acquire(&mut ledger, &w, &s, "worker-a", T0 + 8);
    finish(
        &mut ledger,
        &d,
        &accepted(&w, &s, &[true]),
        "run-2",
        "5 parts",
        T0 + 9,
    )
    .unwrap();
    let sessions = ledger.sessions().unwrap();
    assert_eq!(
        (sessions[0].status, sessions[0].times_processed),
        (SessionStatus::Accepted, 2)
    );
    assert_eq!(row(&ledger, &w, &s).state, IntakeState::Done);
}

fn a_refused_record_keeps_the_lease_and_writes_nothing(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(7), session_id(7));
    ledger
        .record_session(
            &accepted(&w, &session_id(70), &[true]),
            RATE,
            PROCESSED_AT,
            "r",
        )
        .unwrap();
    let before = recorded_state(&ledger);
    let a = acquire(&mut ledger, &w, &s, "worker-a", T0);
    let held = row(&ledger, &w, &s);

    let other = accepted(&w, &session_id(71), &[true]);
    let err = finish(&mut ledger, &a, &other, "r", "fp", T0 + 1).unwrap_err();
    assert!(matches!(err, LedgerError::InvalidRecord { .. }), "{err:?}");
    let err = ledger
        .finish_session(
            &a,
            &accepted(&w, &s, &[true]),
            Lamports(2_000_000),
            PROCESSED_AT,
            "r",
            "fp",
            T0 + 1,
        )
        .unwrap_err();
    assert!(matches!(err, LedgerError::RateMismatch { .. }), "{err:?}");
    assert_eq!(recorded_state(&ledger), before);
    assert_eq!(
        row(&ledger, &w, &s),
        held,
        "still leased, so the failure can be recorded"
    );
    assert_eq!(
        ledger.record_failure(&a, &err.to_string(), T0 + 2).unwrap(),
        1
    );
}

fn failures_count_until_a_success(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(8), session_id(8));
    assert!(ledger.failed_sessions().unwrap().is_empty());

    let a = acquire(&mut ledger, &w, &s, "worker-a", T0);
    assert_eq!(
        ledger
            .record_failure(&a, "S3 GetObject: 503 Slow Down", T0 + 1)
            .unwrap(),
        1
    );
    let failed = row(&ledger, &w, &s);
    assert_eq!(
        (
            failed.state,
            failed.failures,
            failed.last_error.as_deref(),
            failed.lease_holder,
            failed.lease_expires_ms
        ),
        (
            IntakeState::Failed,
            1,
            Some("S3 GetObject: 503 Slow Down"),
            None,
            None
        )
    );
    // Recorded once: the lease ended with it.
    assert!(matches!(
        ledger.record_failure(&a, "again", T0 + 2),
        Err(LedgerError::LeaseLost { .. })
    ));

    // An expired lease nobody took over still records its failure.
    let b = acquire(&mut ledger, &w, &s, "worker-b", T0 + 3);
    assert_eq!(b.previous_state, IntakeState::Failed);
    let long = "x".repeat(10_000);
    assert_eq!(ledger.record_failure(&b, &long, T0 + 3 + TTL).unwrap(), 2);
    assert_eq!(
        row(&ledger, &w, &s).last_error.map(|e| e.chars().count()),
        Some(2_000)
    );
    assert!(matches!(
        ledger.record_failure(&b, " ", T0),
        Err(LedgerError::EmptyText { .. })
    ));

    // Retried and failing again: the operator sees it with its reason, also while it is retried.
    let c = acquire(&mut ledger, &w, &s, "worker-c", T0 + 4 + TTL);
    assert_eq!(
        ledger
            .record_failure(&c, "disk full", T0 + 5 + TTL)
            .unwrap(),
        3
    );
    let other = session_id(80);
    let d = acquire(&mut ledger, &w, &other, "worker-d", T0 + 6 + TTL);
    assert_eq!(
        ledger
            .record_failure(&d, "decoder crashed", T0 + 7 + TTL)
            .unwrap(),
        1
    );
    acquire(&mut ledger, &w, &other, "worker-d", T0 + 8 + TTL);
    let poison = ledger.failed_sessions().unwrap();
    assert_eq!(
        poison
            .iter()
            .map(|r| (
                r.session_id.as_str(),
                r.failures,
                r.state,
                r.last_error.as_deref()
            ))
            .collect::<Vec<_>>(),
        [
            (s.as_str(), 3, IntakeState::Failed, Some("disk full")),
            (
                other.as_str(),
                1,
                IntakeState::Processing,
                Some("decoder crashed")
            ),
        ]
    );

    // A success clears the count and the error.
    let e = acquire(&mut ledger, &w, &s, "worker-e", T0 + 9 + TTL);
    finish(
        &mut ledger,
        &e,
        &accepted(&w, &s, &[true]),
        "run",
        "fp",
        T0 + 10 + TTL,
    )
    .unwrap();
    let done = row(&ledger, &w, &s);
    assert_eq!(
        (done.state, done.failures, done.last_error),
        (IntakeState::Done, 0, None)
    );
    assert_eq!(
        ledger
            .failed_sessions()
            .unwrap()
            .iter()
            .map(|r| r.session_id.as_str())
            .collect::<Vec<_>>(),
        [other.as_str()]
    );
}

fn sessions_are_counted_by_state(store: &Store) {
    let mut ledger = store.open();
    let zero = counts(&[
        ("done", 0),
        ("failed", 0),
        ("processing", 0),
        ("rejected", 0),
        ("waiting", 0),
    ]);
    assert_eq!(ledger.intake_counts().unwrap(), zero);

    let w = wallet(9);
    ledger.note_seen(&w, &session_id(1), T0).unwrap();
    ledger.note_seen(&w, &session_id(2), T0).unwrap();
    acquire(&mut ledger, &w, &session_id(3), "a", T0);
    let done = acquire(&mut ledger, &w, &session_id(4), "a", T0);
    finish(
        &mut ledger,
        &done,
        &accepted(&w, &session_id(4), &[true]),
        "r",
        "fp",
        T0,
    )
    .unwrap();
    for n in [5, 6, 7] {
        let lease = acquire(&mut ledger, &w, &session_id(n), "a", T0);
        finish(
            &mut ledger,
            &lease,
            &missing_parts(&w, &session_id(n)),
            "r",
            "fp",
            T0,
        )
        .unwrap();
    }
    let failed = acquire(&mut ledger, &w, &session_id(8), "a", T0);
    ledger.record_failure(&failed, "boom", T0).unwrap();
    assert_eq!(
        ledger.intake_counts().unwrap(),
        counts(&[
            ("done", 1),
            ("failed", 1),
            ("processing", 1),
            ("rejected", 3),
            ("waiting", 2),
        ])
    );
}

fn the_sweep_finds_sessions_waiting_since_the_cutoff(store: &Store) {
    let mut ledger = store.open();
    let w = wallet(10);
    let (s1, s2, s3, s4) = (session_id(1), session_id(2), session_id(3), session_id(4));
    ledger.note_seen(&w, &s3, T0 + 3_000).unwrap();
    ledger.note_seen(&w, &s1, T0 + 1_000).unwrap();
    ledger.note_seen(&w, &s2, T0 + 2_000).unwrap();
    ledger.note_seen(&w, &s4, T0 + 500).unwrap();
    let leased = acquire(&mut ledger, &w, &s2, "a", T0 + 4_000);
    let failed = acquire(&mut ledger, &w, &s4, "a", T0 + 4_000);
    ledger.record_failure(&failed, "boom", T0 + 4_001).unwrap();
    let pair = |s: &str| (w.clone(), s.to_owned());

    assert_eq!(ledger.waiting_older_than(T0 + 999).unwrap(), []);
    assert_eq!(ledger.waiting_older_than(T0 + 2_500).unwrap(), [pair(&s1)]);
    assert_eq!(
        ledger.waiting_older_than(T0 + 3_000).unwrap(),
        [pair(&s1), pair(&s3)]
    );
    // Given back (parts still missing): waiting again, since it was first seen.
    assert!(ledger
        .release_lease(&leased, IntakeState::Waiting, T0 + 9_000)
        .unwrap());
    assert_eq!(
        ledger.waiting_older_than(T0 + 3_000).unwrap(),
        [pair(&s1), pair(&s2), pair(&s3)]
    );
}

fn spawn<T: Send + 'static>(
    name: String,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .name(name)
        .spawn(work)
        .expect("spawn a test thread")
}

fn two_connections_never_hold_one_lease_at_once(store: &Store) {
    const WORKERS: usize = 2;
    const ROUNDS: usize = 150;
    let (w, s) = (wallet(11), session_id(11));
    store.open().note_seen(&w, &s, T0).unwrap();
    let location = store.location().clone();
    let holding = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(WORKERS));
    let workers: Vec<_> = (0..WORKERS)
        .map(|n| {
            let (location, w, s) = (location.clone(), w.clone(), s.clone());
            let (holding, start) = (Arc::clone(&holding), Arc::clone(&start));
            spawn(format!("worker-{n}"), move || {
                let holder = format!("worker-{n}");
                let mut ledger = Ledger::open_at(&location).unwrap();
                let (mut tokens, mut busy) = (Vec::new(), 0usize);
                start.wait();
                for round in 0..ROUNDS {
                    // Leases never expire here: only a release frees the session.
                    let now = T0 + round as i64;
                    let Some(lease) = ledger.acquire_lease(&w, &s, &holder, now, TTL).unwrap()
                    else {
                        busy += 1;
                        continue;
                    };
                    let others = holding.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(
                        others, 0,
                        "{holder} got token {} while another held it",
                        lease.token
                    );
                    // Hold it a moment, so that the other connection tries meanwhile.
                    std::thread::sleep(Duration::from_millis(1));
                    assert!(ledger.renew_lease(&lease, now, TTL).unwrap());
                    let held = ledger.intake(&w, &s).unwrap().unwrap();
                    assert_eq!(
                        (held.lease_holder.as_deref(), held.lease_token),
                        (Some(holder.as_str()), lease.token)
                    );
                    tokens.push(lease.token);
                    holding.fetch_sub(1, Ordering::SeqCst);
                    assert!(ledger
                        .release_lease(&lease, IntakeState::Waiting, now)
                        .unwrap());
                }
                (tokens, busy)
            })
        })
        .collect();
    let (mut tokens, mut busy) = (Vec::new(), 0);
    for worker in workers {
        let (got, refused) = worker.join().expect("a worker thread panicked");
        tokens.extend(got);
        busy += refused;
    }
    // The two did contend (else the test proves nothing), and every round got an answer.
    assert!(busy > 0, "the connections never contended");
    assert_eq!(tokens.len() + busy, WORKERS * ROUNDS);
    tokens.sort_unstable();
    let acquired = tokens.len() as u64;
    // Every acquire moved the token on by one: no two leases shared a token.
    assert_eq!(tokens, (1..=acquired).collect::<Vec<_>>());
    let last = store.open().intake(&w, &s).unwrap().unwrap();
    assert_eq!(
        (last.lease_token, last.state, last.lease_holder),
        (acquired, IntakeState::Waiting, None)
    );
}

fn contending_workers_record_a_session_once_per_successful_finish(store: &Store) {
    const WORKERS: usize = 2;
    const ROUNDS: usize = 60;
    let (w, s) = (wallet(12), session_id(12));
    let record = accepted(&w, &s, &[true, false]);
    // A shared clock that moves on with every call, and leases short enough to be taken over
    // while their holder is still working.
    let clock = Arc::new(AtomicI64::new(T0));
    let location = store.location().clone();
    let start = Arc::new(Barrier::new(WORKERS));
    let workers: Vec<_> = (0..WORKERS)
        .map(|n| {
            let (location, w, s) = (location.clone(), w.clone(), s.clone());
            let (record, clock, start) = (record.clone(), Arc::clone(&clock), Arc::clone(&start));
            spawn(format!("finisher-{n}"), move || {
                let holder = format!("finisher-{n}");
                let mut ledger = Ledger::open_at(&location).unwrap();
                let tick = || clock.fetch_add(1, Ordering::SeqCst);
                let (mut acquired, mut finished) = (0u64, 0u64);
                start.wait();
                for _ in 0..ROUNDS {
                    let Some(lease) = ledger.acquire_lease(&w, &s, &holder, tick(), 3).unwrap()
                    else {
                        continue;
                    };
                    acquired += 1;
                    // Work a moment: the other worker's clock ticks may expire the lease.
                    std::thread::sleep(Duration::from_millis(1));
                    match finish(&mut ledger, &lease, &record, &holder, "fp", tick()) {
                        Ok(_) => finished += 1,
                        Err(LedgerError::LeaseLost { .. }) => {}
                        Err(err) => panic!("{holder}: {err}"),
                    }
                }
                (acquired, finished)
            })
        })
        .collect();
    let (acquired, finished) = workers
        .into_iter()
        .map(|worker| worker.join().expect("a worker thread panicked"))
        .fold((0, 0), |(a, f), (a2, f2)| (a + a2, f + f2));
    let ledger = store.open();
    assert_eq!(
        ledger.intake(&w, &s).unwrap().unwrap().lease_token,
        acquired
    );
    let sessions = ledger.sessions().unwrap();
    if finished == 0 {
        // Every lease was taken over before its finish: nothing may have been written.
        assert_eq!(sessions, []);
        return;
    }
    // Each successful finish recorded once, a lost one not at all.
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].times_processed, finished);
    let totals = ledger.wallet_totals().unwrap();
    assert_eq!(
        (totals[0].valid_segments, totals[0].pending_lamports),
        (1, RATE)
    );
    let last = ledger.intake(&w, &s).unwrap().unwrap();
    assert_eq!(last.parts_fingerprint.as_deref(), Some("fp"));
}

fn workers_opening_a_new_ledger_at_once_all_get_the_latest_schema(store: &Store) {
    const WORKERS: usize = 4;
    for round in 0..20 {
        let fresh = store.another();
        let start = Arc::new(Barrier::new(WORKERS));
        let openers: Vec<_> = (0..WORKERS)
            .map(|n| {
                let (location, start) = (fresh.location().clone(), Arc::clone(&start));
                spawn(format!("opener-{n}"), move || {
                    start.wait();
                    Ledger::open_at(&location).map(|_| ())
                })
            })
            .collect();
        for opener in openers {
            if let Err(err) = opener.join().expect("an opener panicked") {
                let shown: String = err.to_string().chars().take(300).collect();
                panic!("round {round}: {shown}");
            }
        }
        assert_eq!(fresh.version(), fresh.latest_version());
    }
}

/// A NUL in an error's text (a response body) is kept as U+FFFD on both stores (PostgreSQL's text
/// refuses it): the failure is counted, not lost.
fn text_with_a_nul_is_stored_alike_on_both_stores(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(14), session_id(14));
    let lease = acquire(&mut ledger, &w, &s, "worker-a", T0);
    let failures = ledger
        .record_failure(&lease, "S3 said: <Error>\0\0</Error>", T0 + 1)
        .unwrap();
    assert_eq!(failures, 1);
    ledger.note_error(&w, &s, "again \0", T0 + 2).unwrap();
    let row = row(&ledger, &w, &s);
    assert_eq!(row.failures, 2);
    assert_eq!(row.last_error.as_deref(), Some("again \u{FFFD}"));
}

fn main() {
    common::stores::run(
        "intake",
        bodies![
            first_seen_is_set_once_and_never_moves,
            a_second_holder_gets_the_lease_only_once_it_expired,
            renewing_moves_the_expiry_until_the_lease_is_lost,
            finishing_under_a_lost_lease_writes_nothing,
            finishing_twice_with_the_same_record_changes_no_total,
            unchanged_parts_are_given_back_without_processing,
            a_refused_record_keeps_the_lease_and_writes_nothing,
            failures_count_until_a_success,
            sessions_are_counted_by_state,
            the_sweep_finds_sessions_waiting_since_the_cutoff,
            two_connections_never_hold_one_lease_at_once,
            contending_workers_record_a_session_once_per_successful_finish,
            workers_opening_a_new_ledger_at_once_all_get_the_latest_schema,
            text_with_a_nul_is_stored_alike_on_both_stores,
        ],
        &[],
    );
}
