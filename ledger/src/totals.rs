//! The per-wallet totals of the SPEC (the `wallet_totals` view).

use serde::Serialize;

use sd_core::Lamports;

use crate::error::LedgerError;
use crate::store::Ledger;

/// One wallet's totals, derived by the `wallet_totals` view (never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WalletTotals {
    pub wallet_address: String,
    /// Current segments of accepted sessions whose effective verdict is pass.
    pub valid_segments: usize,
    /// Their frames.
    pub total_frames: usize,
    /// Net earned: the items of every payout, whatever its state.
    pub payout_lamports: Lamports,
    pub pending_lamports: Lamports,
    pub approved_lamports: Lamports,
    pub paid_lamports: Lamports,
    /// `payout_lamports` as exact SOL text (computed in SQL with integer arithmetic).
    pub payout_sol: String,
}

impl Ledger {
    /// Every wallet with an accepted session or a payout, by wallet address.
    pub fn wallet_totals(&self) -> Result<Vec<WalletTotals>, LedgerError> {
        self.read(|tx| {
            tx.query(
                "SELECT wallet_address, valid_segments, total_frames, payout_lamports, \
                        pending_lamports, approved_lamports, paid_lamports, payout_sol \
                 FROM wallet_totals ORDER BY wallet_address",
                &[],
            )?
            .iter()
            .map(|row| {
                Ok(WalletTotals {
                    wallet_address: row.string(0)?,
                    valid_segments: row.count(1)?,
                    total_frames: row.count(2)?,
                    payout_lamports: Lamports(row.int(3)?),
                    pending_lamports: Lamports(row.int(4)?),
                    approved_lamports: Lamports(row.int(5)?),
                    paid_lamports: Lamports(row.int(6)?),
                    payout_sol: row.string(7)?,
                })
            })
            .collect()
        })
    }
}
