//! The `pending -> approved -> paid` moves, and listing payouts. The money rules and the pending
//! payout's refresh are in `pending`.

use sd_core::{Lamports, PayoutState};

use crate::db::params;
use crate::error::LedgerError;
use crate::pending::{
    find_payout, load_items, load_payout, payout_row, pending_id, Payout, PAYOUT_COLUMNS,
};
use crate::store::Ledger;

/// Bytes in a Solana transaction signature (an ed25519 signature).
const SIGNATURE_BYTES: usize = 64;
/// Longest base58 text worth decoding for 64 bytes (88 characters at most).
const MAX_SIGNATURE_CHARS: usize = 100;
/// Checks that `signature` is base58 text of exactly 64 bytes.
fn check_signature(payout_id: i64, signature: &str) -> Result<(), LedgerError> {
    let invalid = |why: String| LedgerError::InvalidSignature {
        payout_id,
        signature: signature.chars().take(MAX_SIGNATURE_CHARS).collect(),
        why,
    };
    if signature.is_empty() {
        return Err(invalid("empty".to_owned()));
    }
    if signature.len() > MAX_SIGNATURE_CHARS {
        return Err(invalid(format!(
            "{} characters, too long for {SIGNATURE_BYTES} bytes",
            signature.len()
        )));
    }
    let bytes = bs58::decode(signature)
        .into_vec()
        .map_err(|err| invalid(format!("not base58: {err}")))?;
    if bytes.len() != SIGNATURE_BYTES {
        return Err(invalid(format!(
            "decodes to {} bytes, not {SIGNATURE_BYTES}",
            bytes.len()
        )));
    }
    Ok(())
}

impl Ledger {
    /// Every payout (of one wallet, or all), by id (oldest first), with items.
    pub fn payouts(&self, wallet: Option<&str>) -> Result<Vec<Payout>, LedgerError> {
        self.read(|tx| {
            let mut out = tx
                .query(
                    &format!(
                        "SELECT {PAYOUT_COLUMNS} FROM payouts \
                         WHERE CAST(?1 AS TEXT) IS NULL OR wallet = ?1 ORDER BY id"
                    ),
                    params![wallet],
                )?
                .iter()
                .map(payout_row)
                .collect::<Result<Vec<_>, _>>()?;
            for payout in &mut out {
                load_items(tx, payout)?;
            }
            Ok(out)
        })
    }

    /// One payout by id, with items.
    pub fn payout(&self, id: i64) -> Result<Payout, LedgerError> {
        self.read(|tx| load_payout(tx, id))
    }

    /// Signs off the wallet's pending payout: `pending -> approved`. From then on it never
    /// changes (the SQL triggers refuse it) except to become paid.
    ///
    /// `expected_lamports` is the amount the approver was shown: when given and the pending
    /// payout now holds another amount (a session was recorded or a segment overridden since),
    /// the approval is refused with [`LedgerError::PendingChanged`] and nothing is written.
    /// `None` approves whatever is pending.
    pub fn approve(
        &mut self,
        wallet: &str,
        by: &str,
        now: &str,
        expected_lamports: Option<Lamports>,
    ) -> Result<Payout, LedgerError> {
        for (text, what) in [(by, "who approves a payout"), (now, "an approval's time")] {
            if text.trim().is_empty() {
                return Err(LedgerError::EmptyText { what });
            }
        }
        let (id, approved) = self.write_money(|tx| {
            let id = pending_id(tx, wallet)?.ok_or_else(|| LedgerError::NothingPending {
                wallet: wallet.to_owned(),
            })?;
            let pending = load_payout(tx, id)?;
            let sum = Lamports::checked_sum(pending.items.iter().map(|item| item.amount_lamports))
                .map_err(|_| LedgerError::overflow(format!("the items of payout #{id}")))?;
            if sum != pending.amount_lamports {
                return Err(LedgerError::Corrupt(format!(
                    "payout #{id} says {} but its items sum to {sum}",
                    pending.amount_lamports
                )));
            }
            if let Some(expected) = expected_lamports {
                if expected != pending.amount_lamports {
                    return Err(LedgerError::PendingChanged {
                        payout_id: id,
                        wallet: wallet.to_owned(),
                        expected,
                        actual: pending.amount_lamports,
                    });
                }
            }
            if pending.amount_lamports <= Lamports::ZERO {
                return Err(LedgerError::NotPayable {
                    payout_id: id,
                    wallet: wallet.to_owned(),
                    amount_lamports: pending.amount_lamports,
                });
            }
            tx.execute(
                "UPDATE payouts SET state = 'approved', approved_at = ?2, approved_by = ?3 \
                 WHERE id = ?1 AND state = 'pending'",
                params![id, now, by],
            )?;
            Ok((id, load_payout(tx, id)?))
        })?;
        tracing::info!(
            payout_id = id,
            wallet,
            by,
            items = approved.items.len(),
            amount_lamports = approved.amount_lamports.0,
            "payout approved"
        );
        Ok(approved)
    }

    /// Records the transfer of an approved payout: `approved -> paid`, with the transaction
    /// signature (base58 of 64 bytes). Any other state is refused, and so is a signature that
    /// already records the payment of another payout ([`LedgerError::SignatureAlreadyUsed`]; a
    /// unique index enforces it in SQL too).
    pub fn mark_paid(
        &mut self,
        id: i64,
        signature: &str,
        now: &str,
    ) -> Result<Payout, LedgerError> {
        check_signature(id, signature)?;
        if now.trim().is_empty() {
            return Err(LedgerError::EmptyText {
                what: "a payment's time",
            });
        }
        let paid = self.write_money(|tx| {
            let payout =
                find_payout(tx, id)?.ok_or(LedgerError::PayoutNotFound { payout_id: id })?;
            if !payout.state.can_become(PayoutState::Paid) {
                return Err(LedgerError::NotApproved {
                    payout_id: id,
                    wallet: payout.wallet,
                    state: payout.state,
                });
            }
            let used_by = tx.query_opt(
                "SELECT id FROM payouts WHERE signature = ?1",
                params![signature],
            )?;
            if let Some(row) = used_by {
                return Err(LedgerError::SignatureAlreadyUsed {
                    payout_id: id,
                    signature: signature.to_owned(),
                    paid_payout_id: row.int(0)?,
                });
            }
            tx.execute(
                "UPDATE payouts SET state = 'paid', paid_at = ?2, signature = ?3 \
                 WHERE id = ?1 AND state = 'approved'",
                params![id, now, signature],
            )?;
            load_payout(tx, id)
        })?;
        tracing::info!(
            payout_id = id,
            wallet = %paid.wallet,
            signature,
            amount_lamports = paid.amount_lamports.0,
            "payout paid"
        );
        Ok(paid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_must_be_64_bytes_of_base58() {
        let good = bs58::encode([7u8; 64]).into_string();
        assert!(check_signature(1, &good).is_ok());
        let short = bs58::encode([7u8; 32]).into_string();
        for bad in ["", "0OIl", &short, &"1".repeat(200), "abc def"] {
            assert!(
                matches!(
                    check_signature(1, bad),
                    Err(LedgerError::InvalidSignature { payout_id: 1, .. })
                ),
                "{bad:?}"
            );
        }
    }
}
