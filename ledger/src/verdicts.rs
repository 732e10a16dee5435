//! Effective verdicts and reviewer overrides.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use sd_core::{Lamports, OverrideNote, SegmentKey, SegmentRef, Verdict};

use crate::payouts::{refresh_pending, Payout};
use crate::rate::{agree_rate, check_rate};
use crate::{Ledger, LedgerError};

/// A current segment of an accepted session with the verdict that counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentVerdictRow {
    pub key: SegmentKey,
    pub first_frame: usize,
    pub last_frame: usize,
    pub frames: usize,
    pub start_pts_ms: f64,
    pub end_pts_ms: f64,
    /// CLEAN's verdict.
    pub clean_passed: bool,
    /// The failing checks' snake_case names, in check order.
    pub failed_checks: Vec<String>,
    /// The verdict that counts: the applicable override's, else CLEAN's.
    pub verdict: Verdict,
    /// The latest override made on this very cut (same frame range), if any: the rule of
    /// `sd_core::effective_verdict`, evaluated by the `segment_verdicts` view.
    pub applied_override: Option<OverrideNote>,
}

/// What `override_segment` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverrideOutcome {
    /// The override as recorded.
    pub recorded: OverrideNote,
    /// The segment afterwards.
    pub segment: SegmentVerdictRow,
    /// Whether the effective verdict changed (an override may confirm the current verdict).
    pub changed: bool,
    /// The wallet's pending payout after the refresh (`None` when nothing is due).
    pub pending: Option<Payout>,
}

pub(crate) const VERDICT_COLUMNS: &str = "wallet, session_id, segment, first_frame, last_frame, \
     frames, start_pts_ms, end_pts_ms, clean_passed, failed_checks, override_id, override_from, \
     override_to, override_reason, override_by, override_at, verdict";

pub(crate) fn parse_verdict(text: &str) -> Result<Verdict, LedgerError> {
    Verdict::parse(text).ok_or_else(|| LedgerError::Corrupt(format!("verdict {text:?}")))
}

/// Reads a row selected with [`VERDICT_COLUMNS`].
pub(crate) fn verdict_row(row: &Row<'_>) -> Result<SegmentVerdictRow, LedgerError> {
    let key = SegmentKey {
        wallet: row.get(0)?,
        session_id: row.get(1)?,
        segment: row.get(2)?,
    };
    let first_frame: usize = row.get(3)?;
    let last_frame: usize = row.get(4)?;
    let failed: String = row.get(9)?;
    let override_id: Option<i64> = row.get(10)?;
    let applied_override = match override_id {
        None => None,
        Some(id) => Some(OverrideNote {
            id,
            segment: key.segment,
            first_frame,
            last_frame,
            from: parse_verdict(&row.get::<_, String>(11)?)?,
            to: parse_verdict(&row.get::<_, String>(12)?)?,
            reason: row.get(13)?,
            by: row.get(14)?,
            at: row.get(15)?,
        }),
    };
    Ok(SegmentVerdictRow {
        first_frame,
        last_frame,
        frames: row.get(5)?,
        start_pts_ms: row.get(6)?,
        end_pts_ms: row.get(7)?,
        clean_passed: row.get(8)?,
        failed_checks: split_checks(&failed),
        verdict: parse_verdict(&row.get::<_, String>(16)?)?,
        applied_override,
        key,
    })
}

pub(crate) fn split_checks(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The current segments of one session, by segment number (empty when the session is unknown or
/// rejected).
pub(crate) fn session_verdicts(
    conn: &Connection,
    wallet: &str,
    session_id: &str,
) -> Result<Vec<SegmentVerdictRow>, LedgerError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VERDICT_COLUMNS} FROM segment_verdicts \
         WHERE wallet = ?1 AND session_id = ?2 ORDER BY segment"
    ))?;
    let mut rows = stmt.query(params![wallet, session_id])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(verdict_row(row)?);
    }
    Ok(out)
}

pub(crate) fn segment_verdict(
    conn: &Connection,
    key: &SegmentKey,
) -> Result<Option<SegmentVerdictRow>, LedgerError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VERDICT_COLUMNS} FROM segment_verdicts \
         WHERE wallet = ?1 AND session_id = ?2 AND segment = ?3"
    ))?;
    let mut rows = stmt.query(params![key.wallet, key.session_id, key.segment])?;
    match rows.next()? {
        Some(row) => Ok(Some(verdict_row(row)?)),
        None => Ok(None),
    }
}

/// Why there is no current segment `segment` of `session_id` (under `wallet`, when given).
fn why_missing(
    conn: &Connection,
    wallet: Option<&str>,
    session_id: &str,
    segment: usize,
) -> Result<String, LedgerError> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.status, s.reject_code, \
                (SELECT count(*) FROM segments AS g WHERE g.session_row = s.id), \
                (SELECT max(g.segment) FROM segments AS g WHERE g.session_row = s.id) \
         FROM sessions AS s WHERE s.session_id = ?1 AND (?2 IS NULL OR s.wallet = ?2) \
         ORDER BY s.status",
    )?;
    let found = stmt
        .query_row(params![session_id, wallet], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, Option<i64>>(3)?,
            ))
        })
        .optional()?;
    let folder = SegmentKey::folder_name(segment);
    Ok(match found {
        None => match wallet {
            Some(wallet) => format!("no session {session_id} of wallet {wallet} in the ledger"),
            None => format!("no session {session_id} in the ledger"),
        },
        Some((status, code, _, _)) if status == "rejected" => format!(
            "session {session_id} was rejected ({}): it has no segments that count",
            code.as_deref().unwrap_or("no code")
        ),
        Some((_, _, 0, _)) => format!("session {session_id} has no segments"),
        Some((_, _, count, last)) => format!(
            "session {session_id} has no {folder}: it has {count} segments (up to {})",
            SegmentKey::folder_name(last.and_then(|n| usize::try_from(n).ok()).unwrap_or(0))
        ),
    })
}

fn override_note(row: &Row<'_>) -> Result<OverrideNote, LedgerError> {
    Ok(OverrideNote {
        id: row.get(0)?,
        segment: row.get(1)?,
        first_frame: row.get(2)?,
        last_frame: row.get(3)?,
        from: parse_verdict(&row.get::<_, String>(4)?)?,
        to: parse_verdict(&row.get::<_, String>(5)?)?,
        reason: row.get(6)?,
        by: row.get(7)?,
        at: row.get(8)?,
    })
}

const OVERRIDE_COLUMNS: &str = "id, segment, first_frame, last_frame, from_verdict, to_verdict, \
     reason, overridden_by, overridden_at";

impl Ledger {
    /// The effective verdict of every current segment of a session, by segment number, with the
    /// applicable override. Empty when the session is not in the ledger or was rejected.
    pub fn segment_verdicts(
        &self,
        wallet: &str,
        session_id: &str,
    ) -> Result<Vec<SegmentVerdictRow>, LedgerError> {
        session_verdicts(&self.conn, wallet, session_id)
    }

    /// Resolves what a person typed to one current segment. Without a wallet, the session id
    /// must be under one wallet only ([`LedgerError::AmbiguousSegment`] lists them otherwise).
    pub fn find_segment(&self, reference: &SegmentRef) -> Result<SegmentVerdictRow, LedgerError> {
        let tx = self.read()?;
        let shown = match &reference.wallet {
            Some(wallet) => format!(
                "{wallet}/{}/{}",
                reference.session_id,
                SegmentKey::folder_name(reference.segment)
            ),
            None => format!(
                "{}/{}",
                reference.session_id,
                SegmentKey::folder_name(reference.segment)
            ),
        };
        let mut found = {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {VERDICT_COLUMNS} FROM segment_verdicts \
                 WHERE session_id = ?1 AND segment = ?2 AND (?3 IS NULL OR wallet = ?3) \
                 ORDER BY wallet"
            ))?;
            let mut rows = stmt.query(params![
                reference.session_id,
                reference.segment,
                reference.wallet
            ])?;
            let mut found = Vec::new();
            while let Some(row) = rows.next()? {
                found.push(verdict_row(row)?);
            }
            found
        };
        match found.len() {
            0 => Err(LedgerError::SegmentNotFound {
                why: why_missing(
                    &tx,
                    reference.wallet.as_deref(),
                    &reference.session_id,
                    reference.segment,
                )?,
                reference: shown,
            }),
            1 => Ok(found.remove(0)),
            _ => Err(LedgerError::AmbiguousSegment {
                reference: shown,
                session_id: reference.session_id.clone(),
                wallets: found.into_iter().map(|row| row.key.wallet).collect(),
            }),
        }
    }

    /// Every override ever made on any segment of a session, oldest first: what a run needs to
    /// place the session's new segments (with `sd_core::effective_verdict`) before recording them.
    pub fn session_overrides(
        &self,
        wallet: &str,
        session_id: &str,
    ) -> Result<Vec<OverrideNote>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {OVERRIDE_COLUMNS} FROM overrides \
             WHERE wallet = ?1 AND session_id = ?2 ORDER BY id"
        ))?;
        let mut rows = stmt.query(params![wallet, session_id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(override_note(row)?);
        }
        Ok(out)
    }

    /// Every override ever made on `key` (any cut), oldest first.
    pub fn override_history(&self, key: &SegmentKey) -> Result<Vec<OverrideNote>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {OVERRIDE_COLUMNS} FROM overrides \
             WHERE wallet = ?1 AND session_id = ?2 AND segment = ?3 ORDER BY id"
        ))?;
        let mut rows = stmt.query(params![key.wallet, key.session_id, key.segment])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(override_note(row)?);
        }
        Ok(out)
    }

    /// Records a reviewer's verdict on the current cut of a segment and refreshes the wallet's
    /// pending payout, in one transaction. `from` is the effective verdict before; an override to
    /// the verdict it already has is recorded too (it pins the verdict for this cut).
    ///
    /// `rate` is the lamports per valid segment from the command's config: it must be the
    /// ledger's rate ([`Ledger::rate`]; a ledger without one takes it), else
    /// [`LedgerError::RateMismatch`] and nothing is written.
    pub fn override_segment(
        &mut self,
        key: &SegmentKey,
        to: Verdict,
        reason: &str,
        by: &str,
        now: &str,
        rate: Lamports,
    ) -> Result<OverrideOutcome, LedgerError> {
        for (text, what) in [
            (reason, "an override's reason"),
            (by, "who made an override"),
            (now, "an override's time"),
        ] {
            if text.trim().is_empty() {
                return Err(LedgerError::EmptyText { what });
            }
        }
        check_rate(rate)?;
        let tx = self.write()?;
        let rate = agree_rate(&tx, rate, now)?;
        let before = segment_verdict(&tx, key)?.ok_or_else(|| {
            match why_missing(&tx, Some(&key.wallet), &key.session_id, key.segment) {
                Ok(why) => LedgerError::not_found(key, why),
                Err(err) => err,
            }
        })?;
        let id: i64 = tx
            .prepare_cached(
                "INSERT INTO overrides (wallet, session_id, segment, first_frame, last_frame, \
                 from_verdict, to_verdict, reason, overridden_by, overridden_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
            )?
            .query_row(
                params![
                    key.wallet,
                    key.session_id,
                    key.segment,
                    before.first_frame,
                    before.last_frame,
                    before.verdict.as_str(),
                    to.as_str(),
                    reason,
                    by,
                    now
                ],
                |row| row.get(0),
            )?;
        let after = segment_verdict(&tx, key)?
            .ok_or_else(|| LedgerError::not_found(key, "vanished while being overridden"))?;
        let recorded = after
            .applied_override
            .clone()
            .filter(|row| row.id == id)
            .ok_or_else(|| {
                LedgerError::Corrupt(format!("override #{id} of {key} does not apply to it"))
            })?;
        let pending = refresh_pending(&tx, &key.wallet, rate, now)?;
        tx.commit()?;
        let changed = before.verdict != after.verdict;
        tracing::info!(
            override_id = id,
            segment = %key,
            first_frame = before.first_frame,
            last_frame = before.last_frame,
            from = %before.verdict,
            to = %to,
            changed,
            by,
            reason,
            pending_lamports = pending.as_ref().map_or(0, |p| p.amount_lamports.0),
            "segment override"
        );
        Ok(OverrideOutcome {
            recorded,
            segment: after,
            changed,
            pending,
        })
    }
}
