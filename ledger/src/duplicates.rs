//! The fingerprint index: each segment's perceptual fingerprint, and the earlier segments a new
//! one's frames share a key with (`sd_core::SegmentFingerprint`; docs/LEDGER.md, "Duplicate
//! drives"). A lookup reads the index's rows for the new segment's keys, never every fingerprint.
//!
//! "Earlier" is the content sequence: a segment gets the next number of `fingerprint_sequence`
//! when the drive it shows is first recorded, and keeps the number of its session's earlier
//! segment it repeats when the session is recorded again. So a reprocess never comes after its
//! own copies, and a session whose parts were replaced by a copy of another's drive (a rejected
//! one refilled, an accepted one re-uploaded) comes after the drive it copies.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use sd_core::{
    duplicate_check, find_duplicate, CheckName, DuplicateConfig, EarlierLookup, EarlierSegment,
    SegmentFingerprint, SegmentRecord, SessionRecord,
};

use crate::db::{params, Tx, Value};
use crate::error::LedgerError;
use crate::store::Ledger;

/// Keys asked per statement (the statement is prepared once: a short list is padded).
const KEYS_PER_QUERY: usize = 64;
/// At most this many earlier segments (with their neighbours) are compared, the ones sharing
/// the most keys.
pub const MAX_CANDIDATES: usize = 32;

/// The segments holding any of 64 keys whose content sequence lies in `(?66, ?65)`, of any
/// session but `?67`.
static KEYS_SQL: LazyLock<String> = LazyLock::new(|| {
    let list: Vec<String> = (1..=KEYS_PER_QUERY).map(|i| format!("?{i}")).collect();
    format!(
        "SELECT segment_row FROM fingerprint_keys \
         WHERE key IN ({}) AND content_seq < ?{} AND content_seq > ?{} AND session_row <> ?{}",
        list.join(", "),
        KEYS_PER_QUERY + 1,
        KEYS_PER_QUERY + 2,
        KEYS_PER_QUERY + 3
    )
});

/// One stored segment: who it belongs to, its fingerprint and content sequence.
struct Stored {
    segment: EarlierSegment,
    content_seq: i64,
}

fn stored(row: &crate::db::Row) -> Result<Stored, LedgerError> {
    let fingerprint = SegmentFingerprint::from_bytes(row.blob(3)?)
        .map_err(|err| LedgerError::Corrupt(format!("a segment's fingerprint: {err}")))?;
    Ok(Stored {
        segment: EarlierSegment {
            wallet: row.text(0)?.to_owned(),
            session_id: row.text(1)?.to_owned(),
            segment: row.count(2)?,
            fingerprint,
        },
        content_seq: row.int(4)?,
    })
}

/// The session's row (`-1` when it was never recorded) and its current segments.
fn own_segments(
    tx: &mut Tx<'_>,
    wallet: &str,
    session_id: &str,
) -> Result<(i64, Vec<Stored>), LedgerError> {
    let own_row = tx
        .query(
            "SELECT id FROM sessions WHERE wallet = ?1 AND session_id = ?2",
            params![wallet, session_id],
        )?
        .first()
        .map(|row| row.int(0))
        .transpose()?
        .unwrap_or(-1);
    let segments = tx
        .query(
            "SELECT s.wallet, s.session_id, g.segment, f.fingerprint, f.content_seq \
             FROM segment_fingerprints AS f \
             JOIN segments AS g ON g.id = f.segment_row \
             JOIN sessions AS s ON s.id = g.session_row \
             WHERE g.session_row = ?1 ORDER BY g.segment",
            params![own_row],
        )?
        .iter()
        .map(stored)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((own_row, segments))
}

/// The content sequence of the session's earlier segment that `fingerprint` repeats, if any.
fn inherited_seq(
    own: &[Stored],
    fingerprint: &SegmentFingerprint,
    rule: &DuplicateConfig,
) -> Option<i64> {
    if own.is_empty() {
        return None;
    }
    let segments: Vec<EarlierSegment> = own.iter().map(|s| s.segment.clone()).collect();
    let finding = find_duplicate(fingerprint, &segments, rule);
    let run = finding.strongest.filter(|_| finding.duplicate)?;
    own.iter()
        .find(|s| s.segment.segment == run.segment)
        .map(|s| s.content_seq)
}

/// The segments (with their neighbours in their sessions) sharing the most keys with
/// `fingerprint`, whose content sequence lies in `(since, before)`, of any session but
/// `own_row`.
fn candidates(
    tx: &mut Tx<'_>,
    fingerprint: &SegmentFingerprint,
    own_row: i64,
    before: i64,
    since: i64,
) -> Result<Vec<EarlierSegment>, LedgerError> {
    let keys = fingerprint.lookup_keys();
    let mut hits: HashMap<i64, usize> = HashMap::new();
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        let mut values: Vec<Value> = chunk.iter().map(|&key| Value::Int(key)).collect();
        let last = values.last().cloned().unwrap_or(Value::Int(-1));
        values.resize(KEYS_PER_QUERY, last);
        values.extend([Value::Int(before), Value::Int(since), Value::Int(own_row)]);
        for row in tx.query(&KEYS_SQL, &values)? {
            *hits.entry(row.int(0)?).or_default() += 1;
        }
    }
    let mut ranked: Vec<(i64, usize)> = hits.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(MAX_CANDIDATES);
    let mut seen = BTreeSet::new();
    let mut segments = Vec::new();
    for (segment_row, _) in ranked {
        // The segment and the ones beside it in its session (recorded no later than `before`):
        // a run may cross into them, and what could be compared reaches into them.
        let rows = tx.query(
            "SELECT s.wallet, s.session_id, g.segment, f.fingerprint, f.content_seq, g.id \
             FROM segments AS hit \
             JOIN segments AS g ON g.session_row = hit.session_row \
                 AND g.segment BETWEEN hit.segment - 1 AND hit.segment + 1 \
             JOIN sessions AS s ON s.id = g.session_row \
             JOIN segment_fingerprints AS f ON f.segment_row = g.id \
             WHERE hit.id = ?1 AND f.content_seq < ?2 ORDER BY g.segment",
            params![segment_row, before],
        )?;
        for row in &rows {
            if seen.insert(row.int(5)?) {
                segments.push(stored(row)?.segment);
            }
        }
    }
    Ok(segments)
}

/// The last content sequence handed out: what is recorded later was not seen by a lookup.
fn checked_through(tx: &mut Tx<'_>) -> Result<i64, LedgerError> {
    tx.query_one("SELECT last FROM fingerprint_sequence WHERE id = 1", &[])?
        .int(0)
}

fn next_seq(tx: &mut Tx<'_>) -> Result<i64, LedgerError> {
    tx.query_one(
        "UPDATE fingerprint_sequence SET last = last + 1 WHERE id = 1 RETURNING last",
        &[],
    )?
    .int(0)
}

/// Stores one segment's fingerprint and its anchor keys (inside the record's transaction).
pub(crate) fn write_fingerprint(
    tx: &mut Tx<'_>,
    segment_row: i64,
    session_row: i64,
    content_seq: i64,
    segment: &SegmentRecord,
) -> Result<(), LedgerError> {
    tx.execute(
        "INSERT INTO segment_fingerprints (segment_row, content_seq, frames, fingerprint) \
         VALUES (?1, ?2, ?3, ?4)",
        params![
            segment_row,
            content_seq,
            segment.fingerprint.frames.len(),
            segment.fingerprint.to_bytes()
        ],
    )?;
    for key in segment.fingerprint.index_keys() {
        tx.execute(
            "INSERT INTO fingerprint_keys (key, segment_row, session_row, content_seq) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key, segment_row) DO NOTHING",
            params![key, segment_row, session_row, content_seq],
        )?;
    }
    Ok(())
}

/// Before a record replaces a session's segments (inside its transaction): each segment's
/// content sequence (its session's earlier segment's when it repeats it, else the next), and
/// the record with its `duplicate` checks made again against what was recorded since the
/// pipeline checked (`None` when no verdict changes). Recording moves money, so it runs one at a
/// time on every host: a copy another worker recorded meanwhile (the same drive uploaded twice
/// at once) is seen here, and only the first recorded is paid.
pub(crate) fn prepare_fingerprints(
    tx: &mut Tx<'_>,
    record: &SessionRecord,
) -> Result<(Option<SessionRecord>, Vec<i64>), LedgerError> {
    let rule = record
        .duplicate_recheck
        .as_ref()
        .map(|recheck| recheck.rule.clone())
        .unwrap_or_default();
    let newest = checked_through(tx)?;
    // Only what was recorded after the pipeline looked, and only if anything was.
    let since = record
        .duplicate_recheck
        .as_ref()
        .map(|recheck| recheck.checked_through)
        .filter(|&seen| seen < newest);
    let (own_row, own) = own_segments(tx, &record.wallet, &record.session_id)?;
    let mut changed: Option<SessionRecord> = None;
    let mut seqs = Vec::with_capacity(record.segments.len());
    for (index, segment) in record.segments.iter().enumerate() {
        let inherited = inherited_seq(&own, &segment.fingerprint, &rule);
        let position = segment
            .checks
            .iter()
            .position(|check| check.check == CheckName::Duplicate && check.passed);
        if let (Some(since), Some(position)) = (since, position) {
            let before = inherited.unwrap_or(i64::MAX);
            let earlier = candidates(tx, &segment.fingerprint, own_row, before, since)?;
            let finding = find_duplicate(&segment.fingerprint, &earlier, &rule);
            if finding.duplicate {
                tracing::warn!(
                    session = %record.session_id,
                    segment = segment.segment,
                    "a copy of this drive was recorded meanwhile: the segment fails `duplicate`"
                );
                let mut segment = segment.clone();
                // (The frames it flags need the frame indices, which the ledger does not keep.)
                segment.checks[position] = duplicate_check(&finding, &rule, &[]);
                segment.passed = segment.checks.iter().all(|check| check.passed);
                changed.get_or_insert_with(|| record.clone()).segments[index] = segment;
            }
        }
        seqs.push(match inherited {
            Some(seq) => seq,
            None => next_seq(tx)?,
        });
    }
    Ok((changed, seqs))
}

impl Ledger {
    /// The earlier segments a segment of `(wallet, session_id)` showing `fingerprint` is
    /// compared with (see [`sd_core::SessionLedger::earlier_segments`]), at most
    /// [`MAX_CANDIDATES`] with their neighbours, with the content sequence at the lookup.
    pub fn earlier_segments(
        &self,
        wallet: &str,
        session_id: &str,
        fingerprint: &SegmentFingerprint,
        rule: &DuplicateConfig,
    ) -> Result<EarlierLookup, LedgerError> {
        self.read(|tx| {
            let checked_through = checked_through(tx)?;
            let (own_row, own) = own_segments(tx, wallet, session_id)?;
            let before = inherited_seq(&own, fingerprint, rule).unwrap_or(i64::MAX);
            let segments = candidates(tx, fingerprint, own_row, before, 0)?;
            Ok(EarlierLookup {
                segments,
                checked_through,
            })
        })
    }
}
