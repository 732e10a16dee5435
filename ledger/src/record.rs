//! Recording what a pipeline run found for a session, and listing sessions.

use std::collections::BTreeSet;

use serde::Serialize;

use sd_core::{Lamports, OverrideNote, SessionId, SessionRecord, SessionStatus, WalletAddress};

use crate::db::{params, Tx};
use crate::error::LedgerError;
use crate::pending::{refresh_pending, Payout};
use crate::settings::{agree_rate, check_rate};
use crate::store::Ledger;
use crate::verdict_rows::{session_verdicts, SegmentVerdictRow};

/// What `record_session` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedSession {
    pub wallet: String,
    pub session_id: String,
    pub status: SessionStatus,
    /// Whether an earlier record of the session was replaced.
    pub replaced: bool,
    /// How many times the session has been recorded, this time included.
    pub times_processed: u64,
    /// Every current segment with the verdict that counts (overrides on the same cut carried
    /// over): `pass` goes to the clean layout, `fail` to the review area. Empty when rejected.
    pub segments: Vec<SegmentVerdictRow>,
    /// Overrides that applied to the earlier record and no longer do, because the segment is
    /// gone or its frame range changed. They stay in the history.
    pub stale_overrides: Vec<OverrideNote>,
    /// The wallet's pending payout after the refresh (`None` when nothing is due).
    pub pending: Option<Payout>,
}

/// One session as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRow {
    pub wallet: String,
    pub session_id: String,
    pub source: String,
    pub status: SessionStatus,
    pub reject_code: Option<String>,
    pub reject_message: Option<String>,
    pub frames: usize,
    pub clock_confidence: Option<f64>,
    pub processed_at: String,
    pub run_id: String,
    pub times_processed: u64,
    /// Current segments.
    pub segments: usize,
    /// Of which the effective verdict is pass (0 for a rejected session).
    pub valid_segments: usize,
    /// Of which the verdict comes from an override.
    pub overridden_segments: usize,
}

fn parse_status(text: &str) -> Result<SessionStatus, LedgerError> {
    match text {
        "accepted" => Ok(SessionStatus::Accepted),
        "rejected" => Ok(SessionStatus::Rejected),
        other => Err(LedgerError::Corrupt(format!("session status {other:?}"))),
    }
}

/// A float the ledger stores as REAL: NaN becomes NULL.
fn real(value: f64) -> Option<f64> {
    (!value.is_nan()).then_some(value)
}

/// Refuses records the ledger must not store, with the reason.
fn check_record(record: &SessionRecord) -> Result<(), LedgerError> {
    let invalid = |why: String| LedgerError::InvalidRecord {
        wallet: record.wallet.clone(),
        session_id: record.session_id.clone(),
        why,
    };
    match record.status {
        SessionStatus::Accepted => {
            WalletAddress::parse(&record.wallet).map_err(|why| {
                invalid(format!("an accepted session's wallet is invalid: {why}"))
            })?;
            SessionId::parse(&record.session_id).map_err(|why| {
                invalid(format!(
                    "an accepted session's session id is invalid: {why}"
                ))
            })?;
            if record.reject_code.is_some() || record.reject_message.is_some() {
                return Err(invalid(
                    "an accepted session has a reject reason".to_owned(),
                ));
            }
        }
        SessionStatus::Rejected => {
            if record.reject_code.is_none() {
                return Err(invalid(
                    "a rejected session needs its reject code".to_owned(),
                ));
            }
        }
    }
    let mut seen = BTreeSet::new();
    for segment in &record.segments {
        let folder = sd_core::SegmentKey::folder_name(segment.segment);
        if segment.segment == 0 {
            return Err(invalid("segment numbers are 1-based, got 0".to_owned()));
        }
        if !seen.insert(segment.segment) {
            return Err(invalid(format!("{folder} appears twice")));
        }
        if segment.first_frame > segment.last_frame {
            return Err(invalid(format!(
                "{folder} runs from frame {} back to {}",
                segment.first_frame, segment.last_frame
            )));
        }
        if !segment.start_pts_ms.is_finite() || !segment.end_pts_ms.is_finite() {
            return Err(invalid(format!(
                "{folder} has a non-finite time range ({} .. {} ms)",
                segment.start_pts_ms, segment.end_pts_ms
            )));
        }
    }
    Ok(())
}

/// A check's or bound's snake_case name, as serde writes it.
fn serde_name(value: impl Serialize, what: &str) -> Result<String, LedgerError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => Ok(name),
        Ok(other) => Err(LedgerError::Corrupt(format!(
            "{what} serialises as {other}, not a name"
        ))),
        Err(err) => Err(LedgerError::Corrupt(format!("{what}: {err}"))),
    }
}

/// Writes the session row, its segments and checks (replacing any earlier ones).
fn write_session(
    tx: &mut Tx<'_>,
    record: &SessionRecord,
    now: &str,
    run_id: &str,
    content_seqs: &[i64],
) -> Result<u64, LedgerError> {
    let row = tx.query_one(
        "INSERT INTO sessions (wallet, session_id, source, status, reject_code, \
         reject_message, frames, clock_confidence, session_json, processed_at, run_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
         ON CONFLICT (wallet, session_id) DO UPDATE SET \
             source = excluded.source, status = excluded.status, \
             reject_code = excluded.reject_code, reject_message = excluded.reject_message, \
             frames = excluded.frames, clock_confidence = excluded.clock_confidence, \
             session_json = excluded.session_json, processed_at = excluded.processed_at, \
             run_id = excluded.run_id, times_processed = sessions.times_processed + 1 \
         RETURNING id, times_processed",
        params![
            &record.wallet,
            &record.session_id,
            &record.source,
            record.status.as_str(),
            record.reject_code.as_deref(),
            record.reject_message.as_deref(),
            record.frames,
            record.clock_confidence.and_then(real),
            &record.session_json,
            now,
            run_id
        ],
    )?;
    let (session_row, times_processed): (i64, u64) = (row.int(0)?, row.count(1)?);
    // Checks go with their segments (ON DELETE CASCADE).
    tx.execute(
        "DELETE FROM segments WHERE session_row = ?1",
        params![session_row],
    )?;
    for (segment, &content_seq) in record.segments.iter().zip(content_seqs) {
        let mut names = Vec::with_capacity(segment.checks.len());
        for check in &segment.checks {
            names.push(serde_name(check.check, "a check name")?);
        }
        let failed: Vec<&str> = segment
            .checks
            .iter()
            .zip(&names)
            .filter(|(check, _)| !check.passed)
            .map(|(_, name)| name.as_str())
            .collect();
        let segment_row = tx
            .query_one(
                "INSERT INTO segments (session_row, segment, first_frame, last_frame, frames, \
                 start_pts_ms, end_pts_ms, passed, failed_checks) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
                params![
                    session_row,
                    segment.segment,
                    segment.first_frame,
                    segment.last_frame,
                    segment.frames,
                    segment.start_pts_ms,
                    segment.end_pts_ms,
                    segment.passed,
                    failed.join(",")
                ],
            )?
            .int(0)?;
        crate::duplicates::write_fingerprint(tx, segment_row, session_row, content_seq, segment)?;
        for (position, (check, name)) in segment.checks.iter().zip(&names).enumerate() {
            tx.execute(
                "INSERT INTO checks (segment_row, position, check_name, metric, value, \
                 threshold, bound, passed, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    segment_row,
                    position,
                    name,
                    &check.metric,
                    real(check.value),
                    real(check.threshold),
                    serde_name(check.bound, "a check bound")?,
                    check.passed,
                    &check.reason
                ],
            )?;
        }
    }
    Ok(times_processed)
}

/// Refuses, before any transaction, what `record_session` (and the worker's `finish_session`)
/// must not write: a record the ledger does not store, a rate that is not positive, an empty time
/// or run id.
pub(crate) fn check_record_call(
    record: &SessionRecord,
    rate: Lamports,
    now: &str,
    run_id: &str,
) -> Result<(), LedgerError> {
    check_record(record)?;
    check_rate(rate)?;
    for (text, what) in [(now, "a record's time"), (run_id, "a record's run id")] {
        if text.trim().is_empty() {
            return Err(LedgerError::EmptyText { what });
        }
    }
    Ok(())
}

/// The body of `record_session`, inside the caller's write transaction (checked by
/// [`check_record_call`] first), so that the worker can record a session and move its intake row
/// in one transaction. The record's own lines are logged by [`log_recorded`] once the caller
/// commits, so a rolled-back call logs none of them (the pending payout's refresh logs its steps
/// as it goes: a PostgreSQL transaction run again logs those again).
pub(crate) fn record_in(
    tx: &mut Tx<'_>,
    record: &SessionRecord,
    rate: Lamports,
    now: &str,
    run_id: &str,
) -> Result<RecordedSession, LedgerError> {
    let rate = agree_rate(tx, rate, now)?;
    let (rechecked, content_seqs) = crate::duplicates::prepare_fingerprints(tx, record)?;
    let record = rechecked.as_ref().unwrap_or(record);
    let before = session_verdicts(tx, &record.wallet, &record.session_id)?;
    let times_processed = write_session(tx, record, now, run_id, &content_seqs)?;
    let segments = session_verdicts(tx, &record.wallet, &record.session_id)?;
    let still_applied: BTreeSet<i64> = segments
        .iter()
        .filter_map(|row| row.applied_override.as_ref().map(|o| o.id))
        .collect();
    let stale_overrides: Vec<OverrideNote> = before
        .into_iter()
        .filter_map(|row| row.applied_override)
        .filter(|o| !still_applied.contains(&o.id))
        .collect();
    let pending = refresh_pending(tx, &record.wallet, rate, now)?;
    Ok(RecordedSession {
        wallet: record.wallet.clone(),
        session_id: record.session_id.clone(),
        status: record.status,
        replaced: times_processed > 1,
        times_processed,
        segments,
        stale_overrides,
        pending,
    })
}

/// Logs a committed record: a warning per override that stopped applying, and one info line.
pub(crate) fn log_recorded(recorded: &RecordedSession, run_id: &str) {
    for stale in &recorded.stale_overrides {
        tracing::warn!(
            override_id = stale.id,
            wallet = %recorded.wallet,
            session_id = %recorded.session_id,
            segment = stale.segment,
            first_frame = stale.first_frame,
            last_frame = stale.last_frame,
            to = %stale.to,
            "override no longer applies: the segment is gone or was cut differently"
        );
    }
    let valid = recorded
        .segments
        .iter()
        .filter(|row| row.verdict.passed())
        .count();
    tracing::info!(
        wallet = %recorded.wallet,
        session_id = %recorded.session_id,
        status = recorded.status.as_str(),
        times_processed = recorded.times_processed,
        segments = recorded.segments.len(),
        valid_segments = valid,
        pending_lamports = recorded.pending.as_ref().map_or(0, |p| p.amount_lamports.0),
        run_id,
        "session recorded"
    );
}

impl Ledger {
    /// Replaces the session's whole record (session row, segments, checks) and refreshes the
    /// wallet's pending payout, in one transaction. Recording the same record again changes no
    /// total and adds nothing twice; a changed record replaces the contribution. Overrides are
    /// kept and apply again to segments with the same frame range.
    ///
    /// `rate` is the lamports per valid segment from the command's config: it must be the
    /// ledger's rate ([`Ledger::rate`]; a ledger without one takes it), else
    /// [`LedgerError::RateMismatch`] and nothing is written. `now` is the RFC 3339 time of
    /// processing and `run_id` the pipeline run's id.
    pub fn record_session(
        &mut self,
        record: &SessionRecord,
        rate: Lamports,
        now: &str,
        run_id: &str,
    ) -> Result<RecordedSession, LedgerError> {
        check_record_call(record, rate, now, run_id)?;
        let recorded = self.write_money(|tx| record_in(tx, record, rate, now, run_id))?;
        log_recorded(&recorded, run_id);
        Ok(recorded)
    }

    /// Every session in the ledger, by wallet and session id.
    pub fn sessions(&self) -> Result<Vec<SessionRow>, LedgerError> {
        self.select_sessions("", &[])
    }

    /// One session's record, if the ledger has one.
    pub fn session(
        &self,
        wallet: &str,
        session_id: &str,
    ) -> Result<Option<SessionRow>, LedgerError> {
        let mut rows = self.select_sessions(
            "WHERE s.wallet = ?1 AND s.session_id = ?2",
            params![wallet, session_id],
        )?;
        Ok(rows.pop())
    }

    fn select_sessions(
        &self,
        filter: &str,
        params: &[crate::db::Value],
    ) -> Result<Vec<SessionRow>, LedgerError> {
        let sql = format!(
            "SELECT s.wallet, s.session_id, s.source, s.status, s.reject_code, s.reject_message, \
                    s.frames, s.clock_confidence, s.processed_at, s.run_id, s.times_processed, \
                    (SELECT count(*) FROM segments AS g WHERE g.session_row = s.id), \
                    (SELECT count(*) FROM segment_verdicts AS v \
                      WHERE v.wallet = s.wallet AND v.session_id = s.session_id \
                        AND v.verdict = 'pass'), \
                    (SELECT count(*) FROM segment_verdicts AS v \
                      WHERE v.wallet = s.wallet AND v.session_id = s.session_id \
                        AND v.override_id IS NOT NULL) \
             FROM sessions AS s {filter} ORDER BY s.wallet, s.session_id"
        );
        self.read(|tx| {
            tx.query(&sql, params)?
                .iter()
                .map(|row| {
                    Ok(SessionRow {
                        wallet: row.string(0)?,
                        session_id: row.string(1)?,
                        source: row.string(2)?,
                        status: parse_status(row.text(3)?)?,
                        reject_code: row.opt_string(4)?,
                        reject_message: row.opt_string(5)?,
                        frames: row.count(6)?,
                        clock_confidence: row.opt_real(7)?,
                        processed_at: row.string(8)?,
                        run_id: row.string(9)?,
                        times_processed: row.count(10)?,
                        segments: row.count(11)?,
                        valid_segments: row.count(12)?,
                        overridden_segments: row.count(13)?,
                    })
                })
                .collect()
        })
    }
}
