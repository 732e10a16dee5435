//! The `segment_verdicts` view read into Rust: each current segment of an accepted session with
//! the verdict that counts. A building block of `pending` (the money rules), `verdicts` and
//! `record`; it knows nothing of them.

use serde::Serialize;

use sd_core::{OverrideNote, SegmentKey, Verdict};

use crate::db::{params, Row, Tx};
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
pub(crate) fn verdict_row(row: &Row) -> Result<SegmentVerdictRow, LedgerError> {
    let key = SegmentKey {
        wallet: row.string(0)?,
        session_id: row.string(1)?,
        segment: row.count(2)?,
    };
    let first_frame: usize = row.count(3)?;
    let last_frame: usize = row.count(4)?;
    let applied_override = match row.opt_int(10)? {
        None => None,
        Some(id) => Some(OverrideNote {
            id,
            segment: key.segment,
            first_frame,
            last_frame,
            from: parse_verdict(row.text(11)?)?,
            to: parse_verdict(row.text(12)?)?,
            reason: row.string(13)?,
            by: row.string(14)?,
            at: row.string(15)?,
        }),
    };
    Ok(SegmentVerdictRow {
        first_frame,
        last_frame,
        frames: row.count(5)?,
        start_pts_ms: row.real(6)?,
        end_pts_ms: row.real(7)?,
        clean_passed: row.flag(8)?,
        failed_checks: split_checks(row.text(9)?),
        verdict: parse_verdict(row.text(16)?)?,
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
    tx: &mut Tx<'_>,
    wallet: &str,
    session_id: &str,
) -> Result<Vec<SegmentVerdictRow>, LedgerError> {
    tx.query(
        &format!(
            "SELECT {VERDICT_COLUMNS} FROM segment_verdicts \
             WHERE wallet = ?1 AND session_id = ?2 ORDER BY segment"
        ),
        params![wallet, session_id],
    )?
    .iter()
    .map(verdict_row)
    .collect()
}

pub(crate) fn segment_verdict(
    tx: &mut Tx<'_>,
    key: &SegmentKey,
) -> Result<Option<SegmentVerdictRow>, LedgerError> {
    tx.query_opt(
        &format!(
            "SELECT {VERDICT_COLUMNS} FROM segment_verdicts \
             WHERE wallet = ?1 AND session_id = ?2 AND segment = ?3"
        ),
        params![&key.wallet, &key.session_id, key.segment],
    )?
    .as_ref()
    .map(verdict_row)
    .transpose()
}
