//! The per-segment rate the ledger pays: stored in the ledger (`settings`), set by the first call
//! that passes one, changed only by [`Ledger::set_rate`].

use rusqlite::{params, Connection, OptionalExtension};

use sd_core::Lamports;

use crate::payouts::refresh_pending;
use crate::{Ledger, LedgerError};

/// Refuses a rate the ledger cannot store (it stores rates > 0 only).
pub(crate) fn check_rate(rate: Lamports) -> Result<(), LedgerError> {
    if rate <= Lamports::ZERO {
        return Err(LedgerError::InvalidRate { rate });
    }
    Ok(())
}

/// The ledger's rate, `None` until the first call that passes one.
pub(crate) fn stored_rate(conn: &Connection) -> Result<Option<Lamports>, LedgerError> {
    Ok(conn
        .prepare_cached("SELECT lamports_per_segment FROM settings WHERE id = 1")?
        .query_row([], |row| row.get(0))
        .optional()?
        .map(Lamports))
}

/// The rate a refresh prices pending earnings at: the ledger's, which `config` (the rate the
/// command was given, already checked positive) must equal; a ledger without a rate takes
/// `config`. Runs inside the caller's write transaction, so a refused call writes nothing and a
/// failed one does not keep the rate either.
pub(crate) fn agree_rate(
    conn: &Connection,
    config: Lamports,
    now: &str,
) -> Result<Lamports, LedgerError> {
    match stored_rate(conn)? {
        Some(ledger) if ledger == config => Ok(ledger),
        Some(ledger) => Err(LedgerError::RateMismatch { ledger, config }),
        None => {
            conn.prepare_cached(
                "INSERT INTO settings (id, lamports_per_segment, rate_set_at) VALUES (1, ?1, ?2)",
            )?
            .execute(params![config.0, now])?;
            tracing::info!(
                lamports_per_segment = config.0,
                "ledger rate set by its first use"
            );
            Ok(config)
        }
    }
}

impl Ledger {
    /// The lamports the ledger pays per valid segment; `None` until a `record_session`,
    /// `override_segment` or `set_rate` set it.
    pub fn rate(&self) -> Result<Option<Lamports>, LedgerError> {
        stored_rate(&self.conn)
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
        let tx = self.write()?;
        let before = stored_rate(&tx)?;
        if before == Some(rate) {
            tracing::debug!(lamports_per_segment = rate.0, "ledger rate unchanged");
            return Ok(());
        }
        tx.prepare_cached(
            "INSERT INTO settings (id, lamports_per_segment, rate_set_at) VALUES (1, ?1, ?2) \
             ON CONFLICT (id) DO UPDATE SET \
                 lamports_per_segment = excluded.lamports_per_segment, \
                 rate_set_at = excluded.rate_set_at",
        )?
        .execute(params![rate.0, now])?;
        let wallets: Vec<String> = tx
            .prepare_cached(
                "SELECT wallet FROM sessions WHERE status = 'accepted' \
                 UNION SELECT wallet FROM payouts ORDER BY 1",
            )?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let mut pending_payouts = 0usize;
        for wallet in &wallets {
            if refresh_pending(&tx, wallet, rate, now)?.is_some() {
                pending_payouts += 1;
            }
        }
        tx.commit()?;
        tracing::info!(
            from_lamports_per_segment = before.map(|r| r.0),
            lamports_per_segment = rate.0,
            wallets = wallets.len(),
            pending_payouts,
            "ledger rate changed: pending payouts re-priced, approved and paid ones untouched"
        );
        Ok(())
    }
}
