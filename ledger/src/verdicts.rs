//! Reviewer overrides: finding a segment, the override history, and `override_segment`.

use serde::Serialize;

use sd_core::{Lamports, OverrideNote, SegmentKey, SegmentRef, Verdict};

use crate::db::{params, Row, Tx};
use crate::error::LedgerError;
use crate::pending::{refresh_pending, Payout};
use crate::settings::{agree_rate, check_rate};
use crate::store::Ledger;
use crate::verdict_rows::{
    parse_verdict, segment_verdict, session_verdicts, verdict_row, SegmentVerdictRow,
    VERDICT_COLUMNS,
};

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
/// Why there is no current segment `segment` of `session_id` (under `wallet`, when given).
fn why_missing(
    tx: &mut Tx<'_>,
    wallet: Option<&str>,
    session_id: &str,
    segment: usize,
) -> Result<String, LedgerError> {
    let found = tx
        .query_opt(
            "SELECT s.status, s.reject_code, \
                    (SELECT count(*) FROM segments AS g WHERE g.session_row = s.id), \
                    (SELECT max(g.segment) FROM segments AS g WHERE g.session_row = s.id) \
             FROM sessions AS s \
             WHERE s.session_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR s.wallet = ?2) \
             ORDER BY s.status",
            params![session_id, wallet],
        )?
        .map(|row| {
            Ok::<_, LedgerError>((
                row.string(0)?,
                row.opt_string(1)?,
                row.int(2)?,
                row.opt_int(3)?,
            ))
        })
        .transpose()?;
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

fn override_note(row: &Row) -> Result<OverrideNote, LedgerError> {
    Ok(OverrideNote {
        id: row.int(0)?,
        segment: row.count(1)?,
        first_frame: row.count(2)?,
        last_frame: row.count(3)?,
        from: parse_verdict(row.text(4)?)?,
        to: parse_verdict(row.text(5)?)?,
        reason: row.string(6)?,
        by: row.string(7)?,
        at: row.string(8)?,
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
        self.read(|tx| session_verdicts(tx, wallet, session_id))
    }

    /// Why each failed segment of a session failed, as `(segment, check, reason)` in segment
    /// order: the checks it failed (a `duplicate` names the earlier wallet, session and segment)
    /// and, when a reviewer failed it, `reviewer_override` with their reason. A segment a
    /// reviewer passed is not listed.
    pub fn failed_checks(
        &self,
        wallet: &str,
        session_id: &str,
    ) -> Result<Vec<(usize, String, String)>, LedgerError> {
        self.read(|tx| {
            let mut failed: Vec<(usize, i64, String, String)> = Vec::new();
            for row in tx.query(
                "SELECT v.segment, c.position, c.check_name, c.reason \
                 FROM segment_verdicts AS v \
                 JOIN sessions AS s ON s.wallet = v.wallet AND s.session_id = v.session_id \
                 JOIN segments AS g ON g.session_row = s.id AND g.segment = v.segment \
                 JOIN checks AS c ON c.segment_row = g.id \
                 WHERE v.wallet = ?1 AND v.session_id = ?2 AND v.verdict = 'fail' \
                   AND c.passed = 0",
                params![wallet, session_id],
            )? {
                failed.push((
                    row.count(0)?,
                    row.int(1)?,
                    row.text(2)?.to_owned(),
                    row.text(3)?.to_owned(),
                ));
            }
            for row in tx.query(
                "SELECT segment, override_reason FROM segment_verdicts \
                 WHERE wallet = ?1 AND session_id = ?2 AND override_to = 'fail'",
                params![wallet, session_id],
            )? {
                failed.push((
                    row.count(0)?,
                    i64::MAX,
                    "reviewer_override".to_owned(),
                    row.text(1)?.to_owned(),
                ));
            }
            failed.sort();
            Ok(failed
                .into_iter()
                .map(|(segment, _, check, reason)| (segment, check, reason))
                .collect())
        })
    }

    /// Resolves what a person typed to one current segment. Without a wallet, the session id
    /// must be under one wallet only ([`LedgerError::AmbiguousSegment`] lists them otherwise).
    pub fn find_segment(&self, reference: &SegmentRef) -> Result<SegmentVerdictRow, LedgerError> {
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
        let (mut found, why) = self.read(|tx| {
            let found = tx
                .query(
                    &format!(
                        "SELECT {VERDICT_COLUMNS} FROM segment_verdicts \
                         WHERE session_id = ?1 AND segment = ?2 \
                           AND (CAST(?3 AS TEXT) IS NULL OR wallet = ?3) \
                         ORDER BY wallet"
                    ),
                    params![
                        &reference.session_id,
                        reference.segment,
                        reference.wallet.as_deref()
                    ],
                )?
                .iter()
                .map(verdict_row)
                .collect::<Result<Vec<_>, _>>()?;
            let why = if found.is_empty() {
                Some(why_missing(
                    tx,
                    reference.wallet.as_deref(),
                    &reference.session_id,
                    reference.segment,
                )?)
            } else {
                None
            };
            Ok((found, why))
        })?;
        match found.len() {
            0 => Err(LedgerError::SegmentNotFound {
                why: why.unwrap_or_default(),
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
        self.read(|tx| {
            tx.query(
                &format!(
                    "SELECT {OVERRIDE_COLUMNS} FROM overrides \
                     WHERE wallet = ?1 AND session_id = ?2 ORDER BY id"
                ),
                params![wallet, session_id],
            )?
            .iter()
            .map(override_note)
            .collect()
        })
    }

    /// Every override ever made on `key` (any cut), oldest first.
    pub fn override_history(&self, key: &SegmentKey) -> Result<Vec<OverrideNote>, LedgerError> {
        self.read(|tx| {
            tx.query(
                &format!(
                    "SELECT {OVERRIDE_COLUMNS} FROM overrides \
                     WHERE wallet = ?1 AND session_id = ?2 AND segment = ?3 ORDER BY id"
                ),
                params![&key.wallet, &key.session_id, key.segment],
            )?
            .iter()
            .map(override_note)
            .collect()
        })
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
        let (id, before, after, recorded, pending) = self.write_money(|tx| {
            let rate = agree_rate(tx, rate, now)?;
            let before = match segment_verdict(tx, key)? {
                Some(before) => before,
                None => {
                    let why = why_missing(tx, Some(&key.wallet), &key.session_id, key.segment)?;
                    return Err(LedgerError::not_found(key, why));
                }
            };
            let id = tx
                .query_one(
                    "INSERT INTO overrides (wallet, session_id, segment, first_frame, last_frame, \
                     from_verdict, to_verdict, reason, overridden_by, overridden_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
                    params![
                        &key.wallet,
                        &key.session_id,
                        key.segment,
                        before.first_frame,
                        before.last_frame,
                        before.verdict.as_str(),
                        to.as_str(),
                        reason,
                        by,
                        now
                    ],
                )?
                .int(0)?;
            let after = segment_verdict(tx, key)?
                .ok_or_else(|| LedgerError::not_found(key, "vanished while being overridden"))?;
            let recorded = after
                .applied_override
                .clone()
                .filter(|row| row.id == id)
                .ok_or_else(|| {
                    LedgerError::Corrupt(format!("override #{id} of {key} does not apply to it"))
                })?;
            let pending = refresh_pending(tx, &key.wallet, rate, now)?;
            Ok((id, before, after, recorded, pending))
        })?;
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
