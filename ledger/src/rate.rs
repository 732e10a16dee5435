//! The per-segment rate the ledger pays: stored in the ledger (`settings`), set by the first call
//! that passes one, changed only by [`Ledger::set_rate`].

use sd_core::Lamports;

use crate::db::params;
use crate::error::LedgerError;
use crate::pending::refresh_pending;
use crate::settings::{check_rate, stored_rate};
use crate::store::Ledger;

impl Ledger {
    /// The lamports the ledger pays per valid segment; `None` until a `record_session`,
    /// `override_segment` or `set_rate` set it.
    pub fn rate(&self) -> Result<Option<Lamports>, LedgerError> {
        self.read(stored_rate)
    }

    /// Changes the ledger's rate on purpose, in one transaction: from now on `record_session`
    /// and `override_segment` must pass `rate`, and every wallet's pending payout is re-priced
    /// at once. Only pending earnings change: approved and paid payouts are never touched (a paid
    /// segment is never topped up or cut back), and take-backs do not depend on the rate. Setting
    /// the rate the ledger already has changes nothing.
    pub fn set_rate(&mut self, rate: Lamports, now: &str) -> Result<(), LedgerError> {
        check_rate(rate)?;
        if now.trim().is_empty() {
            return Err(LedgerError::EmptyText {
                what: "a rate change's time",
            });
        }
        let changed = self.write_money(|tx| {
            let before = stored_rate(tx)?;
            if before == Some(rate) {
                return Ok(None);
            }
            tx.execute(
                "INSERT INTO settings (id, lamports_per_segment, rate_set_at) VALUES (1, ?1, ?2) \
                 ON CONFLICT (id) DO UPDATE SET \
                     lamports_per_segment = excluded.lamports_per_segment, \
                     rate_set_at = excluded.rate_set_at",
                params![rate.0, now],
            )?;
            let wallets = tx.query(
                "SELECT wallet FROM sessions WHERE status = 'accepted' \
                 UNION SELECT wallet FROM payouts ORDER BY 1",
                &[],
            )?;
            let mut pending_payouts = 0usize;
            for row in &wallets {
                if refresh_pending(tx, row.text(0)?, rate, now)?.is_some() {
                    pending_payouts += 1;
                }
            }
            Ok(Some((before, wallets.len(), pending_payouts)))
        })?;
        let Some((before, wallets, pending_payouts)) = changed else {
            tracing::debug!(lamports_per_segment = rate.0, "ledger rate unchanged");
            return Ok(());
        };
        tracing::info!(
            from_lamports_per_segment = before.map(|r| r.0),
            lamports_per_segment = rate.0,
            wallets,
            pending_payouts,
            "ledger rate changed: pending payouts re-priced, approved and paid ones untouched"
        );
        Ok(())
    }
}
