//! The fingerprint index: each segment's perceptual fingerprint, and the earlier segments a new
//! one's frames share a key with (`sd_core::SegmentFingerprint`; docs/LEDGER.md, "Duplicate
//! drives"). A lookup reads the index's rows for the new segment's keys, never every fingerprint.

use std::collections::HashMap;
use std::sync::LazyLock;

use sd_core::{
    duplicate_check, find_duplicate, CheckName, EarlierSegment, SegmentFingerprint, SegmentRecord,
    SessionRecord,
};

use crate::db::{params, Tx, Value};
use crate::error::LedgerError;
use crate::store::Ledger;

/// Keys asked per statement (the statement is prepared once: a short list is padded).
const KEYS_PER_QUERY: usize = 64;
/// At most this many earlier segments are compared, the ones sharing the most keys.
pub const MAX_CANDIDATES: usize = 32;

/// `SELECT` of the segments (of sessions first recorded before `?65`) holding any of 64 keys.
static KEYS_SQL: LazyLock<String> = LazyLock::new(|| {
    let list: Vec<String> = (1..=KEYS_PER_QUERY).map(|i| format!("?{i}")).collect();
    format!(
        "SELECT k.segment_row FROM fingerprint_keys AS k \
         JOIN segments AS g ON g.id = k.segment_row \
         WHERE k.key IN ({}) AND g.session_row < ?{}",
        list.join(", "),
        KEYS_PER_QUERY + 1
    )
});

/// Stores one segment's fingerprint and its anchor keys (inside the record's transaction).
pub(crate) fn write_fingerprint(
    tx: &mut Tx<'_>,
    segment_row: i64,
    segment: &SegmentRecord,
) -> Result<(), LedgerError> {
    tx.execute(
        "INSERT INTO segment_fingerprints (segment_row, frames, fingerprint) VALUES (?1, ?2, ?3)",
        params![
            segment_row,
            segment.fingerprint.frames.len(),
            segment.fingerprint.to_bytes()
        ],
    )?;
    for key in segment.fingerprint.index_keys() {
        tx.execute(
            "INSERT INTO fingerprint_keys (key, segment_row) VALUES (?1, ?2) \
             ON CONFLICT (key, segment_row) DO NOTHING",
            params![key, segment_row],
        )?;
    }
    Ok(())
}

/// The earlier segments sharing a key with `keys`, the most shared first (at most
/// [`MAX_CANDIDATES`]). "Earlier": of a session first recorded before `(wallet, session_id)`
/// was, or, if it never was, of any session but it.
pub(crate) fn earlier_segments_in(
    tx: &mut Tx<'_>,
    wallet: &str,
    session_id: &str,
    keys: &[i64],
) -> Result<Vec<EarlierSegment>, LedgerError> {
    let own = tx
        .query(
            "SELECT id FROM sessions WHERE wallet = ?1 AND session_id = ?2",
            params![wallet, session_id],
        )?
        .first()
        .map(|row| row.int(0))
        .transpose()?
        .unwrap_or(i64::MAX);
    let mut hits: HashMap<i64, usize> = HashMap::new();
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        let mut values: Vec<Value> = chunk.iter().map(|&key| Value::Int(key)).collect();
        let last = values.last().cloned().unwrap_or(Value::Int(-1));
        values.resize(KEYS_PER_QUERY, last);
        values.push(Value::Int(own));
        for row in tx.query(&KEYS_SQL, &values)? {
            *hits.entry(row.int(0)?).or_default() += 1;
        }
    }
    let mut ranked: Vec<(i64, usize)> = hits.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(MAX_CANDIDATES);
    let mut segments = Vec::with_capacity(ranked.len());
    for (segment_row, _) in ranked {
        let rows = tx.query(
            "SELECT s.wallet, s.session_id, g.segment, f.fingerprint \
             FROM segment_fingerprints AS f \
             JOIN segments AS g ON g.id = f.segment_row \
             JOIN sessions AS s ON s.id = g.session_row \
             WHERE f.segment_row = ?1",
            params![segment_row],
        )?;
        for row in rows {
            let fingerprint = SegmentFingerprint::from_bytes(row.blob(3)?)
                .map_err(|err| LedgerError::Corrupt(format!("segment row {segment_row}: {err}")))?;
            segments.push(EarlierSegment {
                wallet: row.text(0)?.to_owned(),
                session_id: row.text(1)?.to_owned(),
                segment: row.count(2)?,
                fingerprint,
            });
        }
    }
    Ok(segments)
}

/// The record with every segment's `duplicate` check made again against the ledger as it is
/// inside the recording transaction (`None` when no verdict changes). Recording moves money, so
/// it runs one at a time on every host: a copy recorded by another worker since this session's
/// check (the same drive uploaded twice at once) is seen here, and only one of the two is paid.
pub(crate) fn recheck_duplicates(
    tx: &mut Tx<'_>,
    record: &SessionRecord,
) -> Result<Option<SessionRecord>, LedgerError> {
    let Some(rule) = &record.duplicate_rule else {
        return Ok(None);
    };
    let mut changed: Option<SessionRecord> = None;
    for (index, segment) in record.segments.iter().enumerate() {
        let Some(position) = segment
            .checks
            .iter()
            .position(|check| check.check == CheckName::Duplicate)
        else {
            continue;
        };
        let keys = segment.fingerprint.lookup_keys();
        let earlier = earlier_segments_in(tx, &record.wallet, &record.session_id, &keys)?;
        let finding = find_duplicate(&segment.fingerprint, &earlier, rule);
        if finding.duplicate != segment.checks[position].passed {
            continue;
        }
        tracing::warn!(
            session = %record.session_id,
            segment = segment.segment,
            duplicate = finding.duplicate,
            "the duplicate check changed at record time (a copy recorded meanwhile)"
        );
        let mut segment = segment.clone();
        // (The frames it flags need the frame indices, which the ledger does not keep.)
        segment.checks[position] = duplicate_check(&finding, rule, &[]);
        segment.passed = segment.checks.iter().all(|check| check.passed);
        changed.get_or_insert_with(|| record.clone()).segments[index] = segment;
    }
    Ok(changed)
}

impl Ledger {
    /// The earlier segments sharing a fingerprint key with `keys` (see
    /// [`sd_core::SessionLedger::earlier_segments`]).
    pub fn earlier_segments(
        &self,
        wallet: &str,
        session_id: &str,
        keys: &[i64],
    ) -> Result<Vec<EarlierSegment>, LedgerError> {
        self.read(|tx| earlier_segments_in(tx, wallet, session_id, keys))
    }
}
