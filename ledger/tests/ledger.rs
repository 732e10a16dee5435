//! The ledger through its public API (and, for the triggers, by hand past the ledger, as someone
//! with the `sqlite3` shell or `psql` would). Each test runs on SQLite and on PostgreSQL
//! (`common::stores`).

// Test bodies are plain functions run by `common::stores`, not `#[test]`s: they unwrap as tests do.
#![allow(clippy::unwrap_used, reason = "test bodies")]

mod common;

use common::stores::{Backend, Store};
use common::{accepted_session, check_result, session_id, wallet, FRAMES, RATE};
use sd_core::{
    duplicate_check, CheckName, CheckResult, DuplicateConfig, DuplicateFinding, DuplicateRecheck,
    FingerprintFrame, Lamports, PayoutState, SegmentFingerprint, SegmentKey, SegmentRecord,
    SegmentRef, SessionRecord, SessionStatus, Verdict,
};
use sd_ledger::{ItemKind, Ledger, LedgerError, Payout, WalletTotals};

const NOW: &str = "2026-02-01T12:00:00Z";
const LATER: &str = "2026-02-02T12:00:00Z";

fn signature(n: u8) -> String {
    bs58::encode([n; 64]).into_string()
}

/// A check valued 1 when it passes and NaN when not, its reason naming it.
fn check(check: CheckName, passed: bool) -> CheckResult {
    let value = if passed { 1.0 } else { f64::NAN };
    let reason = format!("{check:?} {}", if passed { "ok" } else { "bad" });
    check_result(check, passed, value, reason)
}

/// The checks of a ledger test segment: blur passing or failing, frozen passing.
fn checks(passed: bool) -> Vec<CheckResult> {
    vec![
        check(CheckName::Blur, passed),
        check(CheckName::Frozen, true),
    ]
}

/// Segment `n` starting at `first_frame`, 150 frames, passing or failing blur.
fn segment_at(n: usize, first_frame: usize, passed: bool) -> SegmentRecord {
    common::segment_at(n, first_frame, passed, checks(passed))
}

/// An accepted session whose segment `i + 1` passes CLEAN when `verdicts[i]`.
fn session(wallet: &str, session_id: &str, verdicts: &[bool]) -> SessionRecord {
    let source = format!("raw/{wallet}/{session_id}");
    accepted_session(source, wallet, session_id, verdicts, checks)
}

fn key(wallet: &str, session_id: &str, segment: usize) -> SegmentKey {
    SegmentKey {
        wallet: wallet.to_owned(),
        session_id: session_id.to_owned(),
        segment,
    }
}

fn totals(ledger: &Ledger, wallet: &str) -> WalletTotals {
    ledger
        .wallet_totals()
        .expect("wallet totals")
        .into_iter()
        .find(|t| t.wallet_address == wallet)
        .unwrap_or_else(|| panic!("no totals for {wallet}"))
}

fn pending(ledger: &Ledger, wallet: &str) -> Option<Payout> {
    ledger
        .payouts(Some(wallet))
        .expect("payouts")
        .into_iter()
        .find(|p| p.state == PayoutState::Pending)
}

fn recording_the_same_session_twice_changes_nothing(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(1), session_id(1));
    let record = session(&w, &s, &[true, false, true]);
    let first = ledger.record_session(&record, RATE, NOW, "run-1").unwrap();
    assert!(!first.replaced);
    let totals_before = ledger.wallet_totals().unwrap();
    let payouts_before = ledger.payouts(None).unwrap();
    assert_eq!(totals_before[0].valid_segments, 2);
    assert_eq!(payouts_before.len(), 1);
    assert_eq!(payouts_before[0].items.len(), 2);

    let second = ledger
        .record_session(&record, RATE, LATER, "run-2")
        .unwrap();
    assert!(second.replaced);
    assert_eq!(second.times_processed, 2);
    assert_eq!(second.segments, first.segments);
    assert_eq!(ledger.wallet_totals().unwrap(), totals_before);
    // Identical down to the item ids: nothing was added, nothing re-created.
    assert_eq!(ledger.payouts(None).unwrap(), payouts_before);
    let sessions = ledger.sessions().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        (
            sessions[0].segments,
            sessions[0].valid_segments,
            sessions[0].times_processed
        ),
        (3, 2, 2)
    );
    assert_eq!(sessions[0].run_id, "run-2");
}

fn recording_a_changed_session_replaces_its_contribution(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(1), session_id(1));
    ledger
        .record_session(&session(&w, &s, &[true, true, true]), RATE, NOW, "run-1")
        .unwrap();
    assert_eq!(totals(&ledger, &w).pending_lamports, Lamports(3 * RATE.0));

    let again = ledger
        .record_session(&session(&w, &s, &[true, false]), RATE, LATER, "run-2")
        .unwrap();
    let verdicts: Vec<Verdict> = again.segments.iter().map(|row| row.verdict).collect();
    assert_eq!(verdicts, [Verdict::Pass, Verdict::Fail]);
    assert_eq!(again.segments[1].failed_checks, ["blur"]);
    let t = totals(&ledger, &w);
    assert_eq!((t.valid_segments, t.total_frames), (1, FRAMES));
    assert_eq!(t.payout_lamports, RATE);
    assert_eq!(t.pending_lamports, RATE);
    let items = pending(&ledger, &w).unwrap().items;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].key, key(&w, &s, 1));
    assert_eq!(ledger.segment_verdicts(&w, &s).unwrap().len(), 2);

    // Now rejected: nothing counts, nothing is pending.
    let mut rejected = session(&w, &s, &[]);
    rejected.status = SessionStatus::Rejected;
    rejected.reject_code = Some("clock_unusable".to_owned());
    rejected.reject_message = Some("the clock could not be aligned".to_owned());
    let recorded = ledger
        .record_session(&rejected, RATE, LATER, "run-3")
        .unwrap();
    assert!(recorded.segments.is_empty() && recorded.pending.is_none());
    assert!(ledger.payouts(None).unwrap().is_empty());
    let row = &ledger.sessions().unwrap()[0];
    assert_eq!(row.status, SessionStatus::Rejected);
    assert_eq!(row.reject_code.as_deref(), Some("clock_unusable"));
    // A wallet with only rejected sessions and no payouts has no totals row.
    assert!(ledger.wallet_totals().unwrap().is_empty());
}

fn overrides_change_the_counts_and_keep_their_history(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(2), session_id(2));
    ledger
        .record_session(&session(&w, &s, &[true, false]), RATE, NOW, "run-1")
        .unwrap();
    let before = totals(&ledger, &w);
    let k = key(&w, &s, 2);

    let up = ledger
        .override_segment(
            &k,
            Verdict::Pass,
            "blur is rain on the lens",
            "ana",
            NOW,
            RATE,
        )
        .unwrap();
    assert!(up.changed);
    assert_eq!(
        (up.recorded.from, up.recorded.to),
        (Verdict::Fail, Verdict::Pass)
    );
    assert_eq!(up.segment.verdict, Verdict::Pass);
    assert!(!up.segment.clean_passed);
    let after = totals(&ledger, &w);
    assert_eq!(after.valid_segments, before.valid_segments + 1);
    assert_eq!(after.total_frames, before.total_frames + FRAMES);
    assert_eq!(
        after.pending_lamports,
        before.pending_lamports.checked_add(RATE).unwrap()
    );
    assert_eq!(up.pending.unwrap().amount_lamports, Lamports(2 * RATE.0));

    let down = ledger
        .override_segment(
            &k,
            Verdict::Fail,
            "looked again: it is blurry",
            "ben",
            LATER,
            RATE,
        )
        .unwrap();
    assert!(down.changed);
    assert_eq!(totals(&ledger, &w), before);

    let history = ledger.override_history(&k).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history
            .iter()
            .map(|o| (o.from, o.to, o.by.as_str()))
            .collect::<Vec<_>>(),
        [
            (Verdict::Fail, Verdict::Pass, "ana"),
            (Verdict::Pass, Verdict::Fail, "ben")
        ]
    );
    assert_eq!(
        ledger.segment_verdicts(&w, &s).unwrap()[1]
            .applied_override
            .as_ref()
            .map(|o| o.id),
        Some(history[1].id)
    );

    // Refused: empty reason or reviewer, a segment that does not exist.
    for (reason, by) in [("", "ana"), ("  ", "ana"), ("fine", "")] {
        assert!(matches!(
            ledger.override_segment(&k, Verdict::Pass, reason, by, NOW, RATE),
            Err(LedgerError::EmptyText { .. })
        ));
    }
    let missing = ledger
        .override_segment(&key(&w, &s, 9), Verdict::Pass, "x", "ana", NOW, RATE)
        .unwrap_err();
    assert!(missing.to_string().contains("has 2 segments"), "{missing}");
    assert_eq!(ledger.override_history(&k).unwrap().len(), 2);
}

fn overrides_survive_reprocessing_only_on_the_same_cut(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(3), session_id(3));
    let record = session(&w, &s, &[true, false]);
    ledger.record_session(&record, RATE, NOW, "run-1").unwrap();
    let k = key(&w, &s, 2);
    ledger
        .override_segment(&k, Verdict::Pass, "fine", "ana", NOW, RATE)
        .unwrap();

    // Same cut: the override still applies.
    let same = ledger
        .record_session(&record, RATE, LATER, "run-2")
        .unwrap();
    assert_eq!(same.segments[1].verdict, Verdict::Pass);
    assert!(same.stale_overrides.is_empty());
    assert_eq!(totals(&ledger, &w).valid_segments, 2);

    // Segment 2 starts ten frames later, or ends ten frames earlier: a different clip each time,
    // and CLEAN's verdict counts again.
    let mut later_start = record.clone();
    later_start.segments[1].first_frame += 10;
    later_start.segments[1].frames -= 10;
    let mut earlier_end = record.clone();
    earlier_end.segments[1].last_frame -= 10;
    earlier_end.segments[1].frames -= 10;
    for (run, recut) in [("run-3", &later_start), ("run-4", &earlier_end)] {
        ledger.record_session(&record, RATE, LATER, run).unwrap();
        let moved = ledger.record_session(recut, RATE, LATER, run).unwrap();
        assert_eq!(moved.segments[1].verdict, Verdict::Fail, "{run}");
        assert!(moved.segments[1].applied_override.is_none(), "{run}");
        assert_eq!(moved.stale_overrides.len(), 1, "{run}");
        assert_eq!(moved.stale_overrides[0].first_frame, FRAMES);
        assert_eq!(totals(&ledger, &w).valid_segments, 1, "{run}");
    }
    assert_eq!(ledger.override_history(&k).unwrap().len(), 1);

    // Back to the original cut: the kept override applies again.
    let back = ledger
        .record_session(&record, RATE, LATER, "run-5")
        .unwrap();
    assert_eq!(back.segments[1].verdict, Verdict::Pass);
    assert_eq!(totals(&ledger, &w).valid_segments, 2);
}

fn the_view_agrees_with_core_effective_verdict(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(4), session_id(4));
    let record = session(&w, &s, &[true, false, true]);
    ledger.record_session(&record, RATE, NOW, "run-1").unwrap();
    for (segment, to) in [(1, Verdict::Fail), (2, Verdict::Pass), (1, Verdict::Pass)] {
        ledger
            .override_segment(&key(&w, &s, segment), to, "r", "ana", NOW, RATE)
            .unwrap();
    }
    let mut recut = record.clone();
    recut.segments[0] = segment_at(1, 3, true);
    for rec in [&record, &recut] {
        ledger.record_session(rec, RATE, LATER, "run").unwrap();
        let rows = ledger.segment_verdicts(&w, &s).unwrap();
        for (row, seg) in rows.iter().zip(&rec.segments) {
            let history = ledger.override_history(&row.key).unwrap();
            let (verdict, applied) = sd_core::effective_verdict(
                seg.segment,
                seg.first_frame,
                seg.last_frame,
                seg.passed,
                &history,
            );
            assert_eq!(row.verdict, verdict, "{}", row.key);
            assert_eq!(row.applied_override.as_ref(), applied, "{}", row.key);
        }
    }
}

fn find_segment_resolves_a_reference_or_says_why_not(store: &Store) {
    let mut ledger = store.open();
    let s = session_id(5);
    ledger
        .record_session(&session(&wallet(5), &s, &[true]), RATE, NOW, "r")
        .unwrap();
    let short = SegmentRef::parse(&format!("{s}/segment_001")).unwrap();
    assert_eq!(
        ledger.find_segment(&short).unwrap().key,
        key(&wallet(5), &s, 1)
    );

    let missing = SegmentRef::parse(&format!("{s}/segment_004")).unwrap();
    assert!(matches!(
        ledger.find_segment(&missing),
        Err(LedgerError::SegmentNotFound { .. })
    ));
    let unknown = SegmentRef::parse(&format!("{}/segment_001", session_id(99))).unwrap();
    let err = ledger.find_segment(&unknown).unwrap_err();
    assert!(err.to_string().contains("no session"), "{err}");

    // The same session id under a second wallet: ambiguous without the wallet.
    ledger
        .record_session(&session(&wallet(6), &s, &[false]), RATE, NOW, "r")
        .unwrap();
    match ledger.find_segment(&short) {
        Err(LedgerError::AmbiguousSegment { wallets, .. }) => {
            let mut expected = vec![wallet(5), wallet(6)];
            expected.sort();
            assert_eq!(wallets, expected);
        }
        other => panic!("expected ambiguity, got {other:?}"),
    }
    let full = SegmentRef::parse(&format!("{}/{s}/segment_001", wallet(6))).unwrap();
    let row = ledger.find_segment(&full).unwrap();
    assert_eq!(
        (row.key.wallet.as_str(), row.verdict),
        (wallet(6).as_str(), Verdict::Fail)
    );
}

fn approved_payouts_never_change_and_nothing_is_paid_twice(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(7), session_id(7));
    ledger
        .record_session(&session(&w, &s, &[true, true]), RATE, NOW, "run-1")
        .unwrap();
    let approved = ledger.approve(&w, "ops", NOW, None).unwrap();
    assert_eq!(approved.state, PayoutState::Approved);
    assert_eq!(approved.amount_lamports, Lamports(2 * RATE.0));
    assert!(approved.items.iter().all(|i| i.kind == ItemKind::Earning));
    assert!(matches!(
        ledger.approve(&w, "ops", NOW, None),
        Err(LedgerError::NothingPending { .. })
    ));

    // Reprocessing fails segment 1: the approved payout stays, a take-back is pending.
    ledger
        .record_session(&session(&w, &s, &[false, true]), RATE, LATER, "run-2")
        .unwrap();
    assert_eq!(ledger.payout(approved.id).unwrap(), approved);
    let back = pending(&ledger, &w).unwrap();
    assert_eq!(back.items.len(), 1);
    let item = &back.items[0];
    assert_eq!(item.key, key(&w, &s, 1));
    assert_eq!(item.kind, ItemKind::Adjustment);
    assert_eq!(item.amount_lamports, Lamports(-RATE.0));
    assert!(
        item.note.contains(&format!("payout #{}", approved.id))
            && item.note.contains("takes back 1000000 lamports"),
        "{}",
        item.note
    );
    let t = totals(&ledger, &w);
    assert_eq!(
        (t.payout_lamports, t.approved_lamports, t.pending_lamports),
        (RATE, Lamports(2 * RATE.0), Lamports(-RATE.0))
    );
    // A payout that nets a take-back is not signed off.
    assert!(matches!(
        ledger.approve(&w, "ops", LATER, None),
        Err(LedgerError::NotPayable { .. })
    ));

    // Valid again: the take-back goes away and nothing is paid twice.
    ledger
        .record_session(&session(&w, &s, &[true, true]), RATE, LATER, "run-3")
        .unwrap();
    assert!(pending(&ledger, &w).is_none());
    assert_eq!(
        ledger.payouts(Some(&w)).unwrap(),
        std::slice::from_ref(&approved)
    );
    assert_eq!(totals(&ledger, &w).payout_lamports, Lamports(2 * RATE.0));

    // Fail segment 1 again, add two new valid segments: +2 rate -1 rate, approved.
    ledger
        .record_session(
            &session(&w, &s, &[false, true, true, true]),
            RATE,
            LATER,
            "run-4",
        )
        .unwrap();
    let second = ledger.approve(&w, "ops", LATER, None).unwrap();
    assert_eq!(second.amount_lamports, RATE);
    assert_eq!(second.items.len(), 3);
    // Segment 1 passes once more: it was taken back, so it earns again (once).
    let last = ledger
        .record_session(
            &session(&w, &s, &[true, true, true, true]),
            RATE,
            LATER,
            "run-5",
        )
        .unwrap();
    let again = last.pending.unwrap();
    assert_eq!(again.items.len(), 1);
    assert_eq!(
        (again.items[0].kind, again.items[0].amount_lamports),
        (ItemKind::Earning, RATE)
    );
    let t = totals(&ledger, &w);
    assert_eq!(t.valid_segments, 4);
    assert_eq!(t.payout_lamports, Lamports(4 * RATE.0));
    assert_eq!(ledger.payout(approved.id).unwrap(), approved);
    assert_eq!(ledger.payout(second.id).unwrap(), second);
}

fn a_paid_segment_is_never_topped_up_when_the_rate_changes(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(8), session_id(8));
    ledger
        .record_session(&session(&w, &s, &[true]), RATE, NOW, "r")
        .unwrap();
    let paid = ledger.approve(&w, "ops", NOW, None).unwrap();
    let double = Lamports(2 * RATE.0);
    ledger.set_rate(double, LATER).unwrap();
    ledger
        .record_session(&session(&w, &s, &[true, true]), double, LATER, "r")
        .unwrap();
    let pending = pending(&ledger, &w).unwrap();
    assert_eq!(pending.items.len(), 1);
    assert_eq!(pending.items[0].key.segment, 2);
    assert_eq!(pending.amount_lamports, double);
    assert_eq!(ledger.payout(paid.id).unwrap(), paid);
}

fn sql_triggers_refuse_to_change_approved_and_paid_payouts(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(9), session_id(9));
    ledger
        .record_session(&session(&w, &s, &[true, true]), RATE, NOW, "r")
        .unwrap();
    let approved = ledger.approve(&w, "ops", NOW, None).unwrap();
    let id = approved.id;
    let refused = |sql: &str| {
        let err = store.sql_refused(sql);
        assert!(
            err.contains("approved or paid")
                || err.contains("only to a pending payout")
                || err.contains("append-only"),
            "{sql}: {err}"
        );
    };
    refused(&format!(
        "UPDATE payouts SET amount_lamports = 5 WHERE id = {id}"
    ));
    refused(&format!("UPDATE payouts SET state = 'pending', approved_at = NULL, approved_by = NULL WHERE id = {id}"));
    refused(&format!(
        "UPDATE payouts SET approved_by = 'mallory' WHERE id = {id}"
    ));
    refused(&format!("DELETE FROM payouts WHERE id = {id}"));
    refused(&format!(
        "UPDATE payout_items SET amount_lamports = 5 WHERE payout_id = {id}"
    ));
    refused(&format!("DELETE FROM payout_items WHERE payout_id = {id}"));
    refused(&format!(
        "INSERT INTO payout_items (payout_id, wallet, session_id, segment, frames, amount_lamports, kind, note) \
         VALUES ({id}, '{w}', '{s}', 3, 150, 1000000, 'earning', 'sneaky')"
    ));
    // A payout cannot be born approved, and pending cannot jump to paid.
    let new_id = &store.sql_ok(&format!(
        "INSERT INTO payouts (wallet, state, amount_lamports, created_at) \
         VALUES ('{w}', 'pending', 0, 'x') RETURNING id"
    ))[0][0];
    store.sql_refused(&format!(
        "UPDATE payouts SET state = 'paid', paid_at = 'x', signature = 'y' WHERE id = {new_id}"
    ));
    store.sql_refused(&format!("INSERT INTO payouts (wallet, state, amount_lamports, created_at, approved_at, approved_by) VALUES ('{}', 'approved', 9, 'x', 'x', 'x')", wallet(10)));
    store.sql_ok(&format!("DELETE FROM payouts WHERE id = {new_id}"));

    let paid = ledger.mark_paid(id, &signature(1), LATER).unwrap();
    refused(&format!(
        "UPDATE payouts SET signature = '{}' WHERE id = {id}",
        signature(2)
    ));
    refused(&format!(
        "UPDATE payouts SET state = 'approved' WHERE id = {id}"
    ));
    refused(&format!("DELETE FROM payouts WHERE id = {id}"));
    assert_eq!(ledger.payout(id).unwrap(), paid);

    // Overrides are history.
    ledger
        .override_segment(&key(&w, &s, 1), Verdict::Fail, "bad", "ana", NOW, RATE)
        .unwrap();
    refused("UPDATE overrides SET to_verdict = 'pass'");
    refused("DELETE FROM overrides");
    assert_eq!(ledger.override_history(&key(&w, &s, 1)).unwrap().len(), 1);
}

fn mark_paid_needs_an_approved_payout_and_a_transaction_signature(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(11), session_id(11));
    let recorded = ledger
        .record_session(&session(&w, &s, &[true]), RATE, NOW, "r")
        .unwrap();
    let id = recorded.pending.unwrap().id;
    let err = ledger.mark_paid(id, &signature(1), NOW).unwrap_err();
    assert!(matches!(
        err,
        LedgerError::NotApproved { payout_id, state: PayoutState::Pending, .. } if payout_id == id
    ));
    assert!(
        err.to_string().contains(&format!("payout #{id}")) && err.to_string().contains("pending")
    );

    ledger.approve(&w, "ops", NOW, None).unwrap();
    let short = bs58::encode([1u8; 32]).into_string();
    for bad in ["", "not-base58-0OIl", short.as_str(), "3xyz"] {
        assert!(
            matches!(
                ledger.mark_paid(id, bad, NOW),
                Err(LedgerError::InvalidSignature { payout_id, .. }) if payout_id == id
            ),
            "{bad:?}"
        );
    }
    assert_eq!(ledger.payout(id).unwrap().state, PayoutState::Approved);

    let paid = ledger.mark_paid(id, &signature(3), LATER).unwrap();
    assert_eq!(paid.state, PayoutState::Paid);
    assert_eq!(paid.signature, Some(signature(3)));
    assert_eq!(paid.paid_at.as_deref(), Some(LATER));
    assert!(matches!(
        ledger.mark_paid(id, &signature(4), LATER),
        Err(LedgerError::NotApproved {
            state: PayoutState::Paid,
            ..
        })
    ));
    assert!(matches!(
        ledger.mark_paid(id + 100, &signature(4), LATER),
        Err(LedgerError::PayoutNotFound { .. })
    ));
    let t = totals(&ledger, &w);
    assert_eq!((t.paid_lamports, t.payout_lamports), (RATE, RATE));
}

fn amounts_are_sql_integers_and_sums_are_exact(store: &Store) {
    let mut ledger = store.open();
    // Above 2^53 a float cannot hold every amount: 120 items of this rate must still be exact.
    let rate = Lamports(i64::MAX / 120 - 7);
    let w = wallet(12);
    for n in 0..3 {
        ledger
            .record_session(
                &session(&w, &session_id(20 + n), &[true; 40]),
                rate,
                NOW,
                "r",
            )
            .unwrap();
    }
    let expected = rate.checked_mul(120).unwrap();
    let t = totals(&ledger, &w);
    assert_eq!(t.valid_segments, 120);
    assert_eq!(t.payout_lamports, expected);
    assert_eq!(t.payout_sol, expected.sol());
    let payout = pending(&ledger, &w).unwrap();
    assert_eq!(payout.items.len(), 120);
    assert_eq!(payout.amount_lamports, expected);
    assert_eq!(payout.amount_sol(), expected.sol());

    match store.backend {
        Backend::Sqlite => {
            let kinds = store.sql_ok(
                "SELECT DISTINCT typeof(amount_lamports) FROM payout_items \
                 UNION SELECT DISTINCT typeof(amount_lamports) FROM payouts \
                 UNION SELECT DISTINCT typeof(payout_lamports) FROM wallet_totals",
            );
            assert_eq!(kinds, [["integer"]]);
            // A fractional amount does not even get in.
            let err = store.sql_refused(&format!(
                "INSERT INTO payout_items (payout_id, wallet, session_id, segment, frames, amount_lamports, kind, note) \
                 VALUES ({}, '{w}', 'session_1_a', 1, 1, 1000000.5, 'earning', 'x')",
                payout.id
            ));
            assert!(err.contains("CHECK"), "{err}");
        }
        Backend::Postgres => {
            // The columns are integers (a fraction given by hand is rounded on the way in, as
            // PostgreSQL casts to the column's type), and so are the view's sums.
            let kinds = store.sql_ok(
                "SELECT DISTINCT pg_typeof(amount_lamports)::text FROM payout_items \
                 UNION SELECT DISTINCT pg_typeof(amount_lamports)::text FROM payouts \
                 UNION SELECT DISTINCT pg_typeof(payout_lamports)::text FROM wallet_totals",
            );
            assert_eq!(kinds, [["bigint"]]);
        }
    }
}

fn overflow_is_refused_and_nothing_is_written(store: &Store) {
    let mut ledger = store.open();
    let w = wallet(13);
    let near_max = Lamports(i64::MAX / 2 + 1);
    let err = ledger
        .record_session(
            &session(&w, &session_id(30), &[true, true]),
            near_max,
            NOW,
            "r",
        )
        .unwrap_err();
    assert!(matches!(err, LedgerError::Overflow { .. }), "{err}");
    assert!(ledger.sessions().unwrap().is_empty());
    assert!(ledger.payouts(None).unwrap().is_empty());

    // One segment at the largest rate is fine, and its SOL text exact.
    let max = Lamports(i64::MAX);
    ledger
        .record_session(&session(&w, &session_id(30), &[true]), max, NOW, "r")
        .unwrap();
    assert_eq!(totals(&ledger, &w).payout_sol, "9223372036.854775807");
    // A second session would overflow the pending payout: refused, the first one untouched.
    let err = ledger
        .record_session(&session(&w, &session_id(31), &[true]), max, NOW, "r")
        .unwrap_err();
    assert!(matches!(err, LedgerError::Overflow { .. }), "{err}");
    assert_eq!(ledger.sessions().unwrap().len(), 1);
    // Approved, the wallet's net is i64::MAX: a pending payout of i64::MAX fits, the net does not.
    ledger.approve(&w, "ops", NOW, None).unwrap();
    let err = ledger
        .record_session(&session(&w, &session_id(31), &[true]), max, NOW, "r")
        .unwrap_err();
    assert!(err.to_string().contains("net payout"), "{err}");
    assert_eq!(totals(&ledger, &w).payout_sol, "9223372036.854775807");
    assert_eq!(ledger.sessions().unwrap().len(), 1);
    // A rate that pays nothing or takes back is not a rate.
    for bad in [Lamports(-1), Lamports::ZERO, Lamports(i64::MIN)] {
        assert!(matches!(
            ledger.record_session(&session(&w, &session_id(31), &[true]), bad, NOW, "r"),
            Err(LedgerError::InvalidRate { rate }) if rate == bad
        ));
        assert!(matches!(
            ledger.set_rate(bad, NOW),
            Err(LedgerError::InvalidRate { .. })
        ));
    }
    assert_eq!(ledger.rate().unwrap(), Some(max));
}

fn a_refused_first_call_does_not_set_the_rate(store: &Store) {
    let mut ledger = store.open();
    let w = wallet(18);
    let near_max = Lamports(i64::MAX / 2 + 1);
    let err = ledger
        .record_session(
            &session(&w, &session_id(32), &[true, true]),
            near_max,
            NOW,
            "r",
        )
        .unwrap_err();
    assert!(matches!(err, LedgerError::Overflow { .. }), "{err}");
    assert_eq!(ledger.rate().unwrap(), None);
    // set_rate is one transaction too: a rate that overflows a pending payout is not kept.
    ledger
        .record_session(&session(&w, &session_id(32), &[true, true]), RATE, NOW, "r")
        .unwrap();
    let err = ledger.set_rate(near_max, LATER).unwrap_err();
    assert!(matches!(err, LedgerError::Overflow { .. }), "{err}");
    assert_eq!(ledger.rate().unwrap(), Some(RATE));
    assert_eq!(totals(&ledger, &w).pending_lamports, Lamports(2 * RATE.0));
}

fn payout_sol_text_is_exact_for_any_amount(store: &Store) {
    drop(store.open());
    let amounts = [
        1,
        -1,
        999_999_999,
        -999_999_999,
        1_000_000_000,
        -1_000_000_000,
        -1_250_000_001,
        1_234_567_890_123,
        i64::MAX,
        i64::MIN,
    ];
    for (n, amount) in amounts.iter().enumerate() {
        // Pending payouts take any items: enough to exercise the view's arithmetic.
        let w = wallet(100 + n as u8);
        let id = &store.sql_ok(&format!(
            "INSERT INTO payouts (wallet, state, amount_lamports, created_at) \
             VALUES ('{w}', 'pending', {amount}, 'x') RETURNING id"
        ))[0][0];
        store.sql_ok(&format!(
            "INSERT INTO payout_items (payout_id, wallet, session_id, segment, frames, amount_lamports, kind, note) \
             VALUES ({id}, '{w}', 'session_1_a', 1, 1, {amount}, 'adjustment', 'x')"
        ));
    }
    let ledger = store.open();
    for (n, amount) in amounts.iter().enumerate() {
        let t = totals(&ledger, &wallet(100 + n as u8));
        assert_eq!(t.payout_lamports, Lamports(*amount));
        assert_eq!(t.payout_sol, Lamports(*amount).sol(), "{amount}");
    }
}

fn open_uses_wal_and_migrations_are_idempotent(store: &Store) {
    let (w, s) = (wallet(14), session_id(14));
    {
        let mut ledger = store.open();
        assert_eq!(ledger.location(), Some(store.location()));
        assert_eq!(ledger.path(), store.path().as_deref());
        ledger
            .record_session(&session(&w, &s, &[true, false]), RATE, NOW, "r")
            .unwrap();
    }
    if store.backend == Backend::Sqlite {
        assert_eq!(store.sql_ok("PRAGMA journal_mode"), [["wal"]]);
    }
    assert_eq!(store.version(), store.latest_version());
    let before = {
        let ledger = store.open();
        (
            ledger.wallet_totals().unwrap(),
            ledger.payouts(None).unwrap(),
        )
    };
    let mut ledger = store.open();
    assert_eq!(store.version(), store.latest_version());
    assert_eq!(
        (
            ledger.wallet_totals().unwrap(),
            ledger.payouts(None).unwrap()
        ),
        before
    );
    assert_eq!(before.0[0].valid_segments, 1);

    // Two handles on one file see each other's commits.
    let other = store.open();
    ledger
        .override_segment(&key(&w, &s, 2), Verdict::Pass, "ok", "ana", NOW, RATE)
        .unwrap();
    assert_eq!(totals(&other, &w).valid_segments, 2);
}

fn records_the_ledger_must_not_store_are_refused(store: &Store) {
    let mut ledger = store.open();
    let good = session(&wallet(15), &session_id(15), &[true, true]);
    let mut bad_wallet = good.clone();
    bad_wallet.wallet = "not-a-wallet".to_owned();
    let mut twice = good.clone();
    twice.segments[1].segment = 1;
    let mut backwards = good.clone();
    backwards.segments[0].last_frame = 0;
    backwards.segments[0].first_frame = 5;
    let mut nan_time = good.clone();
    nan_time.segments[0].end_pts_ms = f64::NAN;
    let mut accepted_with_reason = good.clone();
    accepted_with_reason.reject_code = Some("x".to_owned());
    for record in [bad_wallet, twice, backwards, nan_time, accepted_with_reason] {
        assert!(
            matches!(
                ledger.record_session(&record, RATE, NOW, "r"),
                Err(LedgerError::InvalidRecord { .. })
            ),
            "{record:?}"
        );
    }
    assert!(ledger.sessions().unwrap().is_empty());
    // A rejected bundle's raw wallet text is fine: it is only a bound parameter.
    let mut rejected = session("'; DROP TABLE sessions; --", "bad id", &[]);
    rejected.status = SessionStatus::Rejected;
    rejected.reject_code = Some("wallet_invalid".to_owned());
    ledger.record_session(&rejected, RATE, NOW, "r").unwrap();
    assert_eq!(ledger.sessions().unwrap().len(), 1);
}

fn every_check_is_stored_once_with_nan_as_null(store: &Store) {
    let mut ledger = store.open();
    let record = session(&wallet(16), &session_id(16), &[true, false]);
    ledger.record_session(&record, RATE, NOW, "r").unwrap();
    ledger.record_session(&record, RATE, LATER, "r").unwrap();
    let rows = store.sql_ok(
        "SELECT g.segment, c.check_name, c.value, c.bound, c.passed \
         FROM checks AS c JOIN segments AS g ON g.id = c.segment_row ORDER BY g.segment, c.position",
    );
    assert_eq!(
        rows,
        [
            ["1", "blur", "1", "at_least", "1"],
            ["1", "frozen", "1", "at_least", "1"],
            ["2", "blur", "", "at_least", "0"],
            ["2", "frozen", "1", "at_least", "1"],
        ]
    );
}

/// The worked example of docs/LEDGER.md, step by step.
fn the_worked_example_of_the_docs_holds(store: &Store) {
    let mut ledger = store.open();
    let w = wallet(17);
    let (a, b) = (session_id(40), session_id(41));
    // 1.
    let one = ledger
        .record_session(&session(&w, &a, &[true, true, false]), RATE, NOW, "r")
        .unwrap()
        .pending
        .unwrap();
    assert_eq!(
        (one.items.len(), one.amount_lamports),
        (2, Lamports(2_000_000))
    );
    // 2.
    let two = ledger
        .override_segment(&key(&w, &a, 3), Verdict::Pass, "ok", "ana", NOW, RATE)
        .unwrap()
        .pending
        .unwrap();
    assert_eq!((two.id, two.amount_lamports), (one.id, Lamports(3_000_000)));
    // 3.
    ledger.approve(&w, "ops", NOW, None).unwrap();
    ledger.mark_paid(one.id, &signature(9), NOW).unwrap();
    let t = totals(&ledger, &w);
    assert_eq!(
        (t.valid_segments, t.paid_lamports),
        (3, Lamports(3_000_000))
    );
    // 4.
    let four = ledger
        .record_session(&session(&w, &a, &[true, false, false]), RATE, LATER, "r")
        .unwrap()
        .pending
        .unwrap();
    assert_eq!(four.items.len(), 1);
    assert_eq!(
        four.items[0].note,
        format!(
            "segment_002 no longer valid after payout #{} (fails CLEAN (blur)): takes back 1000000 lamports",
            one.id
        )
    );
    assert!(matches!(
        ledger.approve(&w, "ops", LATER, None),
        Err(LedgerError::NotPayable { .. })
    ));
    let t = totals(&ledger, &w);
    assert_eq!(
        (
            t.valid_segments,
            t.payout_lamports,
            t.paid_lamports,
            t.pending_lamports
        ),
        (
            2,
            Lamports(2_000_000),
            Lamports(3_000_000),
            Lamports(-1_000_000)
        )
    );
    // 5.
    ledger
        .record_session(&session(&w, &b, &[true, true]), RATE, LATER, "r")
        .unwrap();
    let five = ledger.approve(&w, "ops", LATER, None).unwrap();
    assert_eq!(
        (five.id, five.amount_lamports),
        (four.id, Lamports(1_000_000))
    );
    ledger.mark_paid(five.id, &signature(10), LATER).unwrap();
    // 6.
    let six = ledger
        .record_session(&session(&w, &a, &[true, true, false]), RATE, LATER, "r")
        .unwrap()
        .pending
        .unwrap();
    assert_eq!(six.items.len(), 1);
    assert_eq!(
        (six.items[0].kind, six.items[0].amount_lamports),
        (ItemKind::Earning, RATE)
    );
    assert_eq!(totals(&ledger, &w).payout_lamports, Lamports(5_000_000));
    assert_eq!(totals(&ledger, &w).valid_segments, 5);
}

/// Sessions, payouts, totals, one segment's override history and the rate.
type Snapshot = (
    Vec<sd_ledger::SessionRow>,
    Vec<Payout>,
    Vec<WalletTotals>,
    Vec<sd_core::OverrideNote>,
    Option<Lamports>,
);

/// Everything a refused call must leave as it was.
fn snapshot(ledger: &Ledger, k: &SegmentKey) -> Snapshot {
    (
        ledger.sessions().expect("sessions"),
        ledger.payouts(None).expect("payouts"),
        ledger.wallet_totals().expect("wallet totals"),
        ledger.override_history(k).expect("override history"),
        ledger.rate().expect("rate"),
    )
}

/// The review's case: `process` at 2M a segment, then `review override` with the default 1M must
/// not halve what is pending.
fn a_rate_other_than_the_ledgers_is_refused_and_nothing_is_written(store: &Store) {
    let mut ledger = store.open();
    assert_eq!(ledger.rate().unwrap(), None);
    let (w, s) = (wallet(19), session_id(19));
    let double = Lamports(2 * RATE.0);
    ledger
        .record_session(&session(&w, &s, &[true, false]), double, NOW, "run-1")
        .unwrap();
    assert_eq!(ledger.rate().unwrap(), Some(double));
    let k = key(&w, &s, 2);
    let before = snapshot(&ledger, &k);
    assert_eq!(before.2[0].pending_lamports, double);

    // Reprocessing with another config: refused, the session is not even replaced.
    let err = ledger
        .record_session(&session(&w, &s, &[true, true]), RATE, LATER, "run-2")
        .unwrap_err();
    assert!(
        matches!(err, LedgerError::RateMismatch { ledger, config } if ledger == double && config == RATE),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("ledger pays 2000000 lamports per segment")
            && text.contains("config says 1000000 lamports")
            && text.contains("set_rate"),
        "{text}"
    );
    assert_eq!(snapshot(&ledger, &k), before);

    // An override with another config: refused, no override recorded.
    let err = ledger
        .override_segment(&k, Verdict::Pass, "rain on the lens", "ana", LATER, RATE)
        .unwrap_err();
    assert!(
        matches!(err, LedgerError::RateMismatch { ledger, config } if ledger == double && config == RATE),
        "{err:?}"
    );
    assert_eq!(snapshot(&ledger, &k), before);

    // The rate is the ledger's, not the wallet's: another wallet's first session is refused too.
    let other = wallet(20);
    assert!(matches!(
        ledger.record_session(&session(&other, &session_id(20), &[true]), RATE, LATER, "r"),
        Err(LedgerError::RateMismatch { .. })
    ));
    assert_eq!(snapshot(&ledger, &k), before);

    // With the ledger's rate both go through, priced at it.
    let up = ledger
        .override_segment(&k, Verdict::Pass, "rain on the lens", "ana", LATER, double)
        .unwrap();
    assert_eq!(up.pending.unwrap().amount_lamports, Lamports(2 * double.0));
    ledger
        .record_session(&session(&w, &s, &[true, true]), double, LATER, "run-2")
        .unwrap();
    assert_eq!(totals(&ledger, &w).pending_lamports, Lamports(2 * double.0));
}

fn set_rate_reprices_pending_earnings_only(store: &Store) {
    let mut ledger = store.open();
    // Wallet a: two segments approved, one more pending.
    let a = wallet(21);
    ledger
        .record_session(&session(&a, &session_id(21), &[true, true]), RATE, NOW, "r")
        .unwrap();
    let a_approved = ledger.approve(&a, "ops", NOW, None).unwrap();
    ledger
        .record_session(&session(&a, &session_id(22), &[true]), RATE, NOW, "r")
        .unwrap();
    // Wallet b: paid, then a segment failed: only a take-back is pending.
    let b = wallet(22);
    ledger
        .record_session(&session(&b, &session_id(23), &[true, true]), RATE, NOW, "r")
        .unwrap();
    let b_approved = ledger.approve(&b, "ops", NOW, None).unwrap();
    let b_paid = ledger
        .mark_paid(b_approved.id, &signature(21), NOW)
        .unwrap();
    ledger
        .record_session(
            &session(&b, &session_id(23), &[true, false]),
            RATE,
            NOW,
            "r",
        )
        .unwrap();
    let b_back = pending(&ledger, &b).unwrap();
    assert_eq!(b_back.amount_lamports, Lamports(-RATE.0));
    // Wallet c: everything approved, nothing pending.
    let c = wallet(23);
    ledger
        .record_session(&session(&c, &session_id(24), &[true]), RATE, NOW, "r")
        .unwrap();
    let c_approved = ledger.approve(&c, "ops", NOW, None).unwrap();
    // Wallet d: only pending.
    let d = wallet(24);
    ledger
        .record_session(
            &session(&d, &session_id(25), &[true, true, false]),
            RATE,
            NOW,
            "r",
        )
        .unwrap();

    let triple = Lamports(3 * RATE.0);
    ledger.set_rate(triple, LATER).unwrap();
    assert_eq!(ledger.rate().unwrap(), Some(triple));

    // Approved and paid payouts: untouched, to the byte.
    assert_eq!(ledger.payout(a_approved.id).unwrap(), a_approved);
    assert_eq!(ledger.payout(b_paid.id).unwrap(), b_paid);
    assert_eq!(ledger.payout(c_approved.id).unwrap(), c_approved);
    // Pending earnings: at the new rate.
    let a_pending = pending(&ledger, &a).unwrap();
    assert_eq!(a_pending.items.len(), 1);
    assert_eq!(
        (a_pending.items[0].kind, a_pending.amount_lamports),
        (ItemKind::Earning, triple)
    );
    assert_eq!(
        pending(&ledger, &d).unwrap().amount_lamports,
        Lamports(2 * triple.0)
    );
    // A take-back takes back what was paid, whatever the rate: unchanged, same row.
    assert_eq!(pending(&ledger, &b).unwrap(), b_back);
    // A fully settled wallet gets no top-up.
    assert!(pending(&ledger, &c).is_none());
    let t = totals(&ledger, &a);
    assert_eq!(
        (t.approved_lamports, t.pending_lamports),
        (Lamports(2 * RATE.0), triple)
    );

    // From now on the old rate is refused and the new one accepted.
    assert!(matches!(
        ledger.record_session(&session(&d, &session_id(25), &[true]), RATE, LATER, "r"),
        Err(LedgerError::RateMismatch { .. })
    ));
    ledger
        .record_session(&session(&d, &session_id(26), &[true]), triple, LATER, "r")
        .unwrap();
    assert_eq!(
        pending(&ledger, &d).unwrap().amount_lamports,
        Lamports(3 * triple.0)
    );
    // Setting the same rate again changes nothing.
    let all = ledger.payouts(None).unwrap();
    ledger.set_rate(triple, LATER).unwrap();
    assert_eq!(ledger.payouts(None).unwrap(), all);
    assert!(matches!(
        ledger.set_rate(RATE, " "),
        Err(LedgerError::EmptyText { .. })
    ));
    assert_eq!(ledger.rate().unwrap(), Some(triple));

    // On an empty ledger set_rate just sets the rate the first call must bring.
    let empty = store.another();
    let mut fresh = empty.open();
    fresh.set_rate(triple, NOW).unwrap();
    assert!(matches!(
        fresh.record_session(&session(&a, &session_id(21), &[true]), RATE, NOW, "r"),
        Err(LedgerError::RateMismatch { .. })
    ));
    assert!(fresh.sessions().unwrap().is_empty());
}

fn the_rate_persists_across_reopen_and_sql_guards_it(store: &Store) {
    let (w, s) = (wallet(25), session_id(27));
    let double = Lamports(2 * RATE.0);
    {
        let mut ledger = store.open();
        ledger
            .record_session(&session(&w, &s, &[true, false]), double, NOW, "r")
            .unwrap();
    }
    let mut ledger = store.open();
    assert_eq!(ledger.rate().unwrap(), Some(double));
    let k = key(&w, &s, 2);
    let before = snapshot(&ledger, &k);
    assert!(matches!(
        ledger.override_segment(&k, Verdict::Pass, "ok", "ana", LATER, RATE),
        Err(LedgerError::RateMismatch { .. })
    ));
    assert!(matches!(
        ledger.record_session(&session(&w, &s, &[true, true]), RATE, LATER, "r"),
        Err(LedgerError::RateMismatch { .. })
    ));
    assert_eq!(snapshot(&ledger, &k), before);
    ledger.set_rate(RATE, LATER).unwrap();
    drop(ledger);
    let ledger = store.open();
    assert_eq!(ledger.rate().unwrap(), Some(RATE));
    assert_eq!(totals(&ledger, &w).pending_lamports, RATE);

    // By hand: the rate is never dropped (the next command's config would set it again), is an
    // integer > 0, and there is one.
    let err = store.sql_refused("DELETE FROM settings");
    assert!(err.contains("never deleted"), "{err}");
    for bad in [
        "UPDATE settings SET lamports_per_segment = 0",
        "UPDATE settings SET lamports_per_segment = 'a million'",
        "UPDATE settings SET lamports_per_segment = NULL",
        "INSERT INTO settings (id, lamports_per_segment, rate_set_at) VALUES (2, 5, 'x')",
    ] {
        store.sql_refused(bad);
    }
    if store.backend == Backend::Sqlite {
        store.sql_refused("UPDATE settings SET lamports_per_segment = 1000000.5");
    }
    assert_eq!(ledger.rate().unwrap(), Some(RATE));
}

fn one_transfer_signature_pays_one_payout(store: &Store) {
    let mut ledger = store.open();
    let mut ids = Vec::new();
    for n in 26..29 {
        let w = wallet(n);
        ledger
            .record_session(
                &session(&w, &session_id(u32::from(n)), &[true]),
                RATE,
                NOW,
                "r",
            )
            .unwrap();
        ids.push(ledger.approve(&w, "ops", NOW, None).unwrap().id);
    }
    let (first, second, third) = (ids[0], ids[1], ids[2]);
    ledger.mark_paid(first, &signature(26), NOW).unwrap();
    let approved = ledger.payout(second).unwrap();

    let err = ledger.mark_paid(second, &signature(26), LATER).unwrap_err();
    assert!(
        matches!(
            &err,
            LedgerError::SignatureAlreadyUsed { payout_id, paid_payout_id, signature: sig }
                if *payout_id == second && *paid_payout_id == first && *sig == signature(26)
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("already records the payment of payout #{first}")),
        "{err}"
    );
    assert_eq!(ledger.payout(second).unwrap(), approved);

    // Its own transfer's signature is fine.
    let paid = ledger.mark_paid(second, &signature(27), LATER).unwrap();
    assert_eq!(paid.signature, Some(signature(27)));

    // By hand, the unique index refuses it.
    let err = store.sql_refused(&format!(
        "UPDATE payouts SET state = 'paid', paid_at = 'x', signature = '{}' WHERE id = {third}",
        signature(26)
    ));
    assert!(err.to_lowercase().contains("unique"), "{err}");
    assert_eq!(ledger.payout(third).unwrap().state, PayoutState::Approved);
}

fn approve_is_refused_when_the_pending_amount_is_not_what_was_seen(store: &Store) {
    let mut ledger = store.open();
    let w = wallet(29);
    ledger
        .record_session(&session(&w, &session_id(29), &[true]), RATE, NOW, "r")
        .unwrap();
    let seen = pending(&ledger, &w).unwrap();
    assert_eq!(seen.amount_lamports, RATE);
    // Meanwhile another session comes in.
    ledger
        .record_session(&session(&w, &session_id(30), &[true]), RATE, NOW, "r")
        .unwrap();
    let now_pending = pending(&ledger, &w).unwrap();
    assert_eq!(now_pending.id, seen.id);
    let before = ledger.payouts(None).unwrap();

    let err = ledger
        .approve(&w, "ops", LATER, Some(seen.amount_lamports))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            LedgerError::PendingChanged { payout_id, expected, actual, .. }
                if *payout_id == seen.id && *expected == RATE && *actual == Lamports(2 * RATE.0)
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&format!(
            "payout #{} of {w} is now 2000000 lamports, not the 1000000 lamports you approved",
            seen.id
        )),
        "{err}"
    );
    assert_eq!(ledger.payouts(None).unwrap(), before);

    // The amount it holds now is accepted.
    let approved = ledger
        .approve(&w, "ops", LATER, Some(now_pending.amount_lamports))
        .unwrap();
    assert_eq!(
        (approved.id, approved.state, approved.amount_lamports),
        (seen.id, PayoutState::Approved, Lamports(2 * RATE.0))
    );
    assert_eq!(approved.items, now_pending.items);
    assert!(matches!(
        ledger.approve(&w, "ops", LATER, Some(RATE)),
        Err(LedgerError::NothingPending { .. })
    ));
}

/// Async callers (the server, the review app's bucket thread) may call the ledger from a
/// runtime's thread: it works there and is dropped there, on both stores.
fn the_ledger_works_on_an_async_runtimes_thread(store: &Store) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let w = wallet(31);
    let totals_inside = runtime.block_on(async {
        let mut ledger = store.open();
        ledger
            .record_session(&session(&w, &session_id(31), &[true]), RATE, NOW, "r")
            .unwrap();
        let totals = totals(&ledger, &w);
        drop(ledger);
        totals
    });
    assert_eq!(totals_inside.valid_segments, 1);
    assert_eq!(totals(&store.open(), &w), totals_inside);
}

/// Four connections (four workers' hosts) recording sessions of the same few wallets at once:
/// every call succeeds (no conflict is left to the caller, no deadlock), and the totals are
/// exactly what one writer would have left.
fn concurrent_recorders_all_succeed_and_the_totals_are_exact(store: &Store) {
    const WRITERS: usize = 4;
    const SESSIONS: usize = 25;
    const WALLETS: u8 = 3;
    drop(store.open());
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let location = store.location().clone();
            std::thread::Builder::new()
                .name(format!("recorder-{writer}"))
                .spawn_scoped(scope, move || {
                    let mut ledger = Ledger::open_at(&location).unwrap();
                    for n in 0..SESSIONS {
                        let w = wallet(40 + (n % usize::from(WALLETS)) as u8);
                        let s = session_id((writer * 100 + n) as u32);
                        // Two segments, the first valid.
                        ledger
                            .record_session(&session(&w, &s, &[true, false]), RATE, NOW, "r")
                            .unwrap_or_else(|err| panic!("recorder-{writer}, session {n}: {err}"));
                    }
                    // Money writes run one at a time on every store: none had to run again.
                    assert_eq!(ledger.conflicts_retried(), 0, "recorder-{writer}");
                })
                .unwrap();
        }
    });
    let ledger = store.open();
    assert_eq!(ledger.sessions().unwrap().len(), WRITERS * SESSIONS);
    let totals = ledger.wallet_totals().unwrap();
    assert_eq!(totals.len(), usize::from(WALLETS));
    let valid: usize = totals.iter().map(|t| t.valid_segments).sum();
    assert_eq!(valid, WRITERS * SESSIONS);
    for t in &totals {
        assert_eq!(
            t.pending_lamports,
            RATE.checked_mul(t.valid_segments as i64).unwrap()
        );
        let pending = pending(&ledger, &t.wallet_address).unwrap();
        assert_eq!(pending.items.len(), t.valid_segments);
    }
}

/// A drive as the fingerprint index sees it: 50 frames, 100 ms apart, a few bits changing per
/// frame (a walk through hash space from `seed`).
fn drive_fingerprint(seed: u64) -> SegmentFingerprint {
    let mut state = seed;
    let mut hash = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    SegmentFingerprint {
        frames: (0..50)
            .map(|i| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                hash ^= 1 << (state >> 58);
                hash ^= 1 << ((state >> 52) & 63);
                FingerprintFrame {
                    pts_ms: i * 100,
                    hash,
                }
            })
            .collect(),
    }
}

/// One segment showing `drive`, whose own duplicate check passed (it saw no earlier copy).
fn drive_session(wallet: &str, session_id: &str, drive: &SegmentFingerprint) -> SessionRecord {
    let mut record = session(wallet, session_id, &[true]);
    let rule = DuplicateConfig::default();
    let none_found = DuplicateFinding {
        strongest: None,
        duplicate: false,
    };
    record.segments[0].fingerprint = drive.clone();
    record.segments[0]
        .checks
        .push(duplicate_check(&none_found, &rule, &[]));
    // As if the pipeline's check ran before anything was recorded.
    record.duplicate_recheck = Some(DuplicateRecheck {
        rule,
        checked_through: 0,
    });
    record
}

fn a_copy_recorded_meanwhile_is_caught_at_record_time(store: &Store) {
    let mut ledger = store.open();
    let drive = drive_fingerprint(7);
    let (original, copy) = (wallet(1), wallet(2));
    let first = ledger
        .record_session(
            &drive_session(&original, &session_id(1), &drive),
            RATE,
            NOW,
            "run-1",
        )
        .unwrap();
    assert_eq!(first.segments[0].verdict, Verdict::Pass);
    // The copy's check ran before the original was recorded (another host, the same moment):
    // the ledger makes it again when recording.
    let second = ledger
        .record_session(
            &drive_session(&copy, &session_id(2), &drive),
            RATE,
            NOW,
            "run-2",
        )
        .unwrap();
    assert_eq!(second.segments[0].verdict, Verdict::Fail);
    assert_eq!(
        second.segments[0].failed_checks,
        vec!["duplicate".to_owned()]
    );
    assert!(pending(&ledger, &copy).is_none(), "the copy is not paid");
    // The original keeps its pay, and recording it again never matches itself or its copy.
    let again = ledger
        .record_session(
            &drive_session(&original, &session_id(1), &drive),
            RATE,
            LATER,
            "run-3",
        )
        .unwrap();
    assert_eq!(again.segments[0].verdict, Verdict::Pass);
    assert_eq!(totals(&ledger, &original).valid_segments, 1);
    // Another drive is not a copy.
    let other = ledger
        .record_session(
            &drive_session(&copy, &session_id(3), &drive_fingerprint(8)),
            RATE,
            NOW,
            "run-4",
        )
        .unwrap();
    assert_eq!(other.segments[0].verdict, Verdict::Pass);
    // What the index hands over for the copy's frames: the original's segment (never the
    // session's own).
    let rule = DuplicateConfig::default();
    let found = ledger
        .earlier_segments(&copy, &session_id(2), &drive, &rule)
        .unwrap();
    let sessions: Vec<&str> = found
        .segments
        .iter()
        .map(|s| s.session_id.as_str())
        .collect();
    assert_eq!(sessions, vec![session_id(1).as_str()]);
    // For the original, nothing: its copy came after the drive it shows.
    let for_original = ledger
        .earlier_segments(&original, &session_id(1), &drive, &rule)
        .unwrap();
    assert!(for_original.segments.is_empty(), "{for_original:?}");
}

fn a_session_refilled_with_a_copy_comes_after_the_drive_it_copies(store: &Store) {
    let mut ledger = store.open();
    let (cheat, honest) = (wallet(1), wallet(2));
    // The cheat's session is recorded first, showing a drive of its own.
    let first = ledger
        .record_session(
            &drive_session(&cheat, &session_id(1), &drive_fingerprint(1)),
            RATE,
            NOW,
            "run-1",
        )
        .unwrap();
    assert_eq!(first.segments[0].verdict, Verdict::Pass);
    // An honest drive is recorded.
    let drive = drive_fingerprint(2);
    let honest_record = ledger
        .record_session(
            &drive_session(&honest, &session_id(2), &drive),
            RATE,
            NOW,
            "run-2",
        )
        .unwrap();
    assert_eq!(honest_record.segments[0].verdict, Verdict::Pass);
    // The cheat's session, with its parts replaced by a copy of the honest drive, comes after
    // it: its older session id does not make it the original.
    let rule = DuplicateConfig::default();
    let found = ledger
        .earlier_segments(&cheat, &session_id(1), &drive, &rule)
        .unwrap();
    assert_eq!(found.segments.len(), 1, "{found:?}");
    let refilled = ledger
        .record_session(
            &drive_session(&cheat, &session_id(1), &drive),
            RATE,
            LATER,
            "run-3",
        )
        .unwrap();
    assert_eq!(refilled.segments[0].verdict, Verdict::Fail);
    assert_eq!(
        refilled.segments[0].failed_checks,
        vec!["duplicate".to_owned()]
    );
    // The honest session, processed again, keeps its place and its pay.
    let again = ledger
        .record_session(
            &drive_session(&honest, &session_id(2), &drive),
            RATE,
            LATER,
            "run-4",
        )
        .unwrap();
    assert_eq!(again.segments[0].verdict, Verdict::Pass);
    assert_eq!(totals(&ledger, &honest).valid_segments, 1);
    assert_eq!(totals(&ledger, &cheat).valid_segments, 0);
}

fn failed_checks_follow_the_verdict_that_counts(store: &Store) {
    let mut ledger = store.open();
    let (w, s) = (wallet(3), session_id(3));
    ledger
        .record_session(&session(&w, &s, &[true, false]), RATE, NOW, "run-1")
        .unwrap();
    let failed = ledger.failed_checks(&w, &s).unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!((failed[0].0, failed[0].1.as_str()), (2, "blur"));
    // A reviewer passes segment 2 and fails segment 1: what is listed follows.
    ledger
        .override_segment(
            &key(&w, &s, 2),
            Verdict::Pass,
            "rain on the lens",
            "ana",
            NOW,
            RATE,
        )
        .unwrap();
    ledger
        .override_segment(
            &key(&w, &s, 1),
            Verdict::Fail,
            "wrong city",
            "ana",
            NOW,
            RATE,
        )
        .unwrap();
    assert_eq!(
        ledger.failed_checks(&w, &s).unwrap(),
        vec![(1, "reviewer_override".to_owned(), "wrong city".to_owned())]
    );
}

fn main() {
    common::stores::run(
        "ledger",
        bodies![
            recording_the_same_session_twice_changes_nothing,
            recording_a_changed_session_replaces_its_contribution,
            overrides_change_the_counts_and_keep_their_history,
            overrides_survive_reprocessing_only_on_the_same_cut,
            the_view_agrees_with_core_effective_verdict,
            find_segment_resolves_a_reference_or_says_why_not,
            approved_payouts_never_change_and_nothing_is_paid_twice,
            a_paid_segment_is_never_topped_up_when_the_rate_changes,
            sql_triggers_refuse_to_change_approved_and_paid_payouts,
            mark_paid_needs_an_approved_payout_and_a_transaction_signature,
            amounts_are_sql_integers_and_sums_are_exact,
            overflow_is_refused_and_nothing_is_written,
            a_refused_first_call_does_not_set_the_rate,
            payout_sol_text_is_exact_for_any_amount,
            open_uses_wal_and_migrations_are_idempotent,
            records_the_ledger_must_not_store_are_refused,
            every_check_is_stored_once_with_nan_as_null,
            the_worked_example_of_the_docs_holds,
            a_rate_other_than_the_ledgers_is_refused_and_nothing_is_written,
            set_rate_reprices_pending_earnings_only,
            the_rate_persists_across_reopen_and_sql_guards_it,
            one_transfer_signature_pays_one_payout,
            approve_is_refused_when_the_pending_amount_is_not_what_was_seen,
            the_ledger_works_on_an_async_runtimes_thread,
            concurrent_recorders_all_succeed_and_the_totals_are_exact,
            a_copy_recorded_meanwhile_is_caught_at_record_time,
            a_session_refilled_with_a_copy_comes_after_the_drive_it_copies,
            failed_checks_follow_the_verdict_that_counts,
        ],
        &[],
    );
}
