//! The wallet's pending payout: the money rules (what is due per segment), its refresh inside a
//! caller's transaction, and reading payouts back. A building block of `record`, `verdicts`,
//! `rate` and `payouts`, which hold the `Ledger` methods; it knows nothing of them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use sd_core::{Lamports, PayoutState, SegmentKey, Verdict};

use crate::db::{params, Row, Tx};
use crate::error::LedgerError;
use crate::verdict_rows::{verdict_row, SegmentVerdictRow, VERDICT_COLUMNS};

/// Why an item is in a payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// First payment for a valid segment: the rate.
    Earning,
    /// A correction of what approved or paid payouts settled (negative: a take-back).
    Adjustment,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Earning => "earning",
            ItemKind::Adjustment => "adjustment",
        }
    }

    fn parse(text: &str) -> Result<Self, LedgerError> {
        match text {
            "earning" => Ok(ItemKind::Earning),
            "adjustment" => Ok(ItemKind::Adjustment),
            other => Err(LedgerError::Corrupt(format!("payout item kind {other:?}"))),
        }
    }
}

/// One line of a payout: money for (or taken back from) one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayoutItem {
    pub id: i64,
    pub key: SegmentKey,
    /// The segment's frames (as it was paid, for a take-back of a segment that is gone).
    pub frames: usize,
    /// Positive pays, negative takes back; never zero.
    pub amount_lamports: Lamports,
    pub kind: ItemKind,
    /// One line a person understands.
    pub note: String,
}

/// A payout with its items (ordered by session id, then segment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payout {
    pub id: i64,
    pub wallet: String,
    pub state: PayoutState,
    /// The checked sum of the items.
    pub amount_lamports: Lamports,
    pub created_at: String,
    pub approved_at: Option<String>,
    pub approved_by: Option<String>,
    pub paid_at: Option<String>,
    /// The transfer's transaction signature (base58, 64 bytes) once paid.
    pub signature: Option<String>,
    pub items: Vec<PayoutItem>,
}

impl Payout {
    /// The amount as exact SOL text, for display.
    pub fn amount_sol(&self) -> String {
        self.amount_lamports.sol()
    }

    /// The wallet's pending payout after a change, as one phrase for a reviewer.
    pub fn pending_phrase(pending: Option<&Payout>) -> String {
        pending.map_or("nothing is pending for the wallet".to_owned(), |p| {
            format!(
                "the wallet's pending payout #{} is {} SOL",
                p.id,
                p.amount_sol()
            )
        })
    }
}

/// What approved and paid payouts settled for one segment.
#[derive(Debug, Default)]
struct Settled {
    amount: Lamports,
    frames: usize,
    payout_ids: BTreeSet<i64>,
}

/// One item the pending payout should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DueItem {
    frames: usize,
    amount: Lamports,
    kind: ItemKind,
    note: String,
}

/// What a pending payout should hold, by (session id, segment).
type DueItems = BTreeMap<(String, usize), DueItem>;

/// `#3` or `#3, #5`.
fn payout_list(ids: &BTreeSet<i64>) -> String {
    let list: Vec<String> = ids.iter().map(|id| format!("#{id}")).collect();
    match list.len() {
        1 => format!("payout {}", list.join(", ")),
        _ => format!("payouts {}", list.join(", ")),
    }
}

/// The money rule for one segment key. `current` is the segment when it is a current segment of
/// an accepted session (with its effective verdict), `settled` what approved and paid payouts
/// hold for it. `None` when nothing is due.
///
/// target = valid ? (settled > 0 ? settled : rate) : 0; due = target - settled, where `rate` is
/// the ledger's rate.
fn due_item(
    key: &SegmentKey,
    current: Option<&SegmentVerdictRow>,
    settled: Option<&Settled>,
    rate: Lamports,
) -> Result<Option<DueItem>, LedgerError> {
    let settled_amount = settled.map_or(Lamports::ZERO, |s| s.amount);
    let valid = current.is_some_and(|row| row.verdict == Verdict::Pass);
    let target = match (valid, settled_amount > Lamports::ZERO) {
        (false, _) => Lamports::ZERO,
        (true, true) => settled_amount,
        (true, false) => rate,
    };
    let due = target
        .checked_sub(settled_amount)
        .map_err(|_| LedgerError::overflow(format!("what is due for {key}")))?;
    if due == Lamports::ZERO {
        return Ok(None);
    }
    let folder = SegmentKey::folder_name(key.segment);
    let frames = current
        .map(|row| row.frames)
        .or(settled.map(|s| s.frames))
        .unwrap_or(0);
    let item = match settled {
        None => DueItem {
            frames,
            amount: due,
            kind: ItemKind::Earning,
            note: format!("{folder} valid ({frames} frames): pays {} lamports", due.0),
        },
        Some(s) if settled_amount == Lamports::ZERO && due > Lamports::ZERO => DueItem {
            frames,
            amount: due,
            kind: ItemKind::Earning,
            note: format!(
                "{folder} valid again ({frames} frames), settled to 0 by {}: pays {} lamports",
                payout_list(&s.payout_ids),
                due.0
            ),
        },
        Some(s) if due < Lamports::ZERO => {
            let why = match current {
                Some(row) => match &row.applied_override {
                    Some(o) => format!("failed by {}'s override #{}", o.by, o.id),
                    None if row.failed_checks.is_empty() => "fails CLEAN".to_owned(),
                    None => format!("fails CLEAN ({})", row.failed_checks.join(", ")),
                },
                None => "no longer a segment of an accepted session".to_owned(),
            };
            DueItem {
                frames,
                amount: due,
                kind: ItemKind::Adjustment,
                note: format!(
                    "{folder} no longer valid after {} ({why}): takes back {} lamports",
                    payout_list(&s.payout_ids),
                    due.0.unsigned_abs()
                ),
            }
        }
        Some(s) => DueItem {
            frames,
            amount: due,
            kind: ItemKind::Adjustment,
            note: format!(
                "{folder}: {} settled {} lamports where {} are due: {} {} lamports",
                payout_list(&s.payout_ids),
                settled_amount.0,
                target.0,
                if due > Lamports::ZERO {
                    "pays"
                } else {
                    "takes back"
                },
                due.0.unsigned_abs()
            ),
        },
    };
    Ok(Some(item))
}

/// What approved and paid payouts settled for the wallet in all, and what its pending payout
/// should hold, by (session id, segment).
fn due_items(
    tx: &mut Tx<'_>,
    wallet: &str,
    rate: Lamports,
) -> Result<(Lamports, DueItems), LedgerError> {
    let mut settled: BTreeMap<(String, usize), Settled> = BTreeMap::new();
    let rows = tx.query(
        "SELECT i.session_id, i.segment, i.amount_lamports, i.frames, p.id \
         FROM payout_items AS i JOIN payouts AS p ON p.id = i.payout_id \
         WHERE p.wallet = ?1 AND p.state IN ('approved', 'paid') \
         ORDER BY p.id, i.id",
        params![wallet],
    )?;
    for row in &rows {
        let session_id = row.string(0)?;
        let segment: usize = row.count(1)?;
        let amount = Lamports(row.int(2)?);
        let what = format!(
            "what payouts settled for {wallet}/{session_id}/{}",
            SegmentKey::folder_name(segment)
        );
        let entry = settled.entry((session_id, segment)).or_default();
        entry.amount = entry
            .amount
            .checked_add(amount)
            .map_err(|_| LedgerError::overflow(what))?;
        entry.frames = row.count(3)?;
        entry.payout_ids.insert(row.int(4)?);
    }
    let settled_lamports = Lamports::checked_sum(settled.values().map(|s| s.amount))
        .map_err(|_| LedgerError::overflow(format!("what payouts settled for {wallet}")))?;
    let mut current = BTreeMap::new();
    let rows = tx.query(
        &format!("SELECT {VERDICT_COLUMNS} FROM segment_verdicts WHERE wallet = ?1"),
        params![wallet],
    )?;
    for row in &rows {
        let row = verdict_row(row)?;
        current.insert((row.key.session_id.clone(), row.key.segment), row);
    }
    let keys: BTreeSet<&(String, usize)> = settled.keys().chain(current.keys()).collect();
    let mut due = BTreeMap::new();
    for pair in keys {
        let key = SegmentKey {
            wallet: wallet.to_owned(),
            session_id: pair.0.clone(),
            segment: pair.1,
        };
        if let Some(item) = due_item(&key, current.get(pair), settled.get(pair), rate)? {
            due.insert(pair.clone(), item);
        }
    }
    Ok((settled_lamports, due))
}

pub(crate) fn pending_id(tx: &mut Tx<'_>, wallet: &str) -> Result<Option<i64>, LedgerError> {
    tx.query_opt(
        "SELECT id FROM payouts WHERE wallet = ?1 AND state = 'pending'",
        params![wallet],
    )?
    .map(|row| row.int(0))
    .transpose()
}

/// Recomputes the wallet's pending payout from the current segments and what approved and paid
/// payouts settled: it ends up holding exactly the items that are due (items that did not change
/// keep their rows), or is deleted when nothing is due. Approved and paid payouts are only read.
/// Runs inside the caller's transaction.
pub(crate) fn refresh_pending(
    tx: &mut Tx<'_>,
    wallet: &str,
    rate: Lamports,
    now: &str,
) -> Result<Option<Payout>, LedgerError> {
    let (settled_lamports, due) = due_items(tx, wallet, rate)?;
    let amount = Lamports::checked_sum(due.values().map(|item| item.amount)).map_err(|_| {
        LedgerError::overflow(format!(
            "the pending payout of {wallet} ({} items)",
            due.len()
        ))
    })?;
    // The wallet's net over every payout must fit too: the `wallet_totals` view adds it up.
    settled_lamports
        .checked_add(amount)
        .map_err(|_| LedgerError::overflow(format!("the net payout of {wallet}")))?;
    let existing = pending_id(tx, wallet)?;
    if due.is_empty() {
        if let Some(id) = existing {
            tx.execute(
                "DELETE FROM payouts WHERE id = ?1 AND state = 'pending'",
                params![id],
            )?;
            tracing::info!(
                payout_id = id,
                wallet,
                "pending payout deleted: nothing is due"
            );
        }
        return Ok(None);
    }
    let id = match existing {
        Some(id) => id,
        None => {
            let id = tx
                .query_one(
                    "INSERT INTO payouts (wallet, state, amount_lamports, created_at) \
                     VALUES (?1, 'pending', 0, ?2) RETURNING id",
                    params![wallet, now],
                )?
                .int(0)?;
            tracing::info!(payout_id = id, wallet, "pending payout created");
            id
        }
    };
    let before = load_payout(tx, id)?;
    let mut keep = BTreeSet::new();
    let mut changed = false;
    for item in &before.items {
        let pair = (item.key.session_id.clone(), item.key.segment);
        let same = due.get(&pair).is_some_and(|want| {
            want.frames == item.frames
                && want.amount == item.amount_lamports
                && want.kind == item.kind
                && want.note == item.note
        });
        if same {
            keep.insert(pair);
        } else {
            tx.execute("DELETE FROM payout_items WHERE id = ?1", params![item.id])?;
            changed = true;
        }
    }
    for (pair, item) in &due {
        if keep.contains(pair) {
            continue;
        }
        tx.execute(
            "INSERT INTO payout_items \
             (payout_id, wallet, session_id, segment, frames, amount_lamports, kind, note) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id,
                wallet,
                &pair.0,
                pair.1,
                item.frames,
                item.amount.0,
                item.kind.as_str(),
                &item.note
            ],
        )?;
        changed = true;
    }
    if before.amount_lamports != amount {
        tx.execute(
            "UPDATE payouts SET amount_lamports = ?2 WHERE id = ?1",
            params![id, amount.0],
        )?;
        changed = true;
    }
    if !changed {
        return Ok(Some(before));
    }
    let after = load_payout(tx, id)?;
    tracing::info!(
        payout_id = id,
        wallet,
        items = after.items.len(),
        amount_lamports = after.amount_lamports.0,
        "pending payout refreshed"
    );
    Ok(Some(after))
}

pub(crate) const PAYOUT_COLUMNS: &str =
    "id, wallet, state, amount_lamports, created_at, approved_at, \
     approved_by, paid_at, signature";

pub(crate) fn payout_row(row: &Row) -> Result<Payout, LedgerError> {
    let state = row.text(2)?;
    Ok(Payout {
        id: row.int(0)?,
        wallet: row.string(1)?,
        state: PayoutState::parse(state)
            .ok_or_else(|| LedgerError::Corrupt(format!("payout state {state:?}")))?,
        amount_lamports: Lamports(row.int(3)?),
        created_at: row.string(4)?,
        approved_at: row.opt_string(5)?,
        approved_by: row.opt_string(6)?,
        paid_at: row.opt_string(7)?,
        signature: row.opt_string(8)?,
        items: Vec::new(),
    })
}

pub(crate) fn load_items(tx: &mut Tx<'_>, payout: &mut Payout) -> Result<(), LedgerError> {
    let rows = tx.query(
        "SELECT id, session_id, segment, frames, amount_lamports, kind, note \
         FROM payout_items WHERE payout_id = ?1 ORDER BY session_id, segment",
        params![payout.id],
    )?;
    for row in &rows {
        payout.items.push(PayoutItem {
            id: row.int(0)?,
            key: SegmentKey {
                wallet: payout.wallet.clone(),
                session_id: row.string(1)?,
                segment: row.count(2)?,
            },
            frames: row.count(3)?,
            amount_lamports: Lamports(row.int(4)?),
            kind: ItemKind::parse(row.text(5)?)?,
            note: row.string(6)?,
        });
    }
    Ok(())
}

pub(crate) fn find_payout(tx: &mut Tx<'_>, id: i64) -> Result<Option<Payout>, LedgerError> {
    let Some(row) = tx.query_opt(
        &format!("SELECT {PAYOUT_COLUMNS} FROM payouts WHERE id = ?1"),
        params![id],
    )?
    else {
        return Ok(None);
    };
    let mut payout = payout_row(&row)?;
    load_items(tx, &mut payout)?;
    Ok(Some(payout))
}

pub(crate) fn load_payout(tx: &mut Tx<'_>, id: i64) -> Result<Payout, LedgerError> {
    find_payout(tx, id)?.ok_or(LedgerError::PayoutNotFound { payout_id: id })
}
