//! The `segment_verdicts` view read into Rust: each current segment of an accepted session with
//! the verdict that counts. A building block of `pending` (the money rules), `verdicts` and
//! `record`; it knows nothing of them.

use rusqlite::{params, Connection, Row};
use serde::Serialize;

use sd_core::{OverrideNote, SegmentKey, Verdict};

use crate::error::LedgerError;

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

fn split_checks(text: &str) -> Vec<String> {
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
