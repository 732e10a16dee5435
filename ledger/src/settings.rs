//! The `settings` row: the per-segment rate the ledger pays, checked, read and set inside a
//! caller's transaction. A building block of `verdicts`, `record` and `rate` (which holds the
//! `Ledger` methods); it knows nothing of them.

use sd_core::Lamports;

use crate::db::{params, Tx};
use crate::error::LedgerError;

/// Refuses a rate the ledger cannot store (it stores rates > 0 only).
pub(crate) fn check_rate(rate: Lamports) -> Result<(), LedgerError> {
    if rate <= Lamports::ZERO {
        return Err(LedgerError::InvalidRate { rate });
    }
    Ok(())
}

/// The ledger's rate, `None` until the first call that passes one.
pub(crate) fn stored_rate(tx: &mut Tx<'_>) -> Result<Option<Lamports>, LedgerError> {
    tx.query_opt(
        "SELECT lamports_per_segment FROM settings WHERE id = 1",
        &[],
    )?
    .map(|row| row.int(0).map(Lamports))
    .transpose()
}

/// The rate a refresh prices pending earnings at: the ledger's, which `config` (the rate the
/// command was given, already checked positive) must equal; a ledger without a rate takes
/// `config`. Runs inside the caller's write transaction, so a refused call writes nothing and a
/// failed one does not keep the rate either.
pub(crate) fn agree_rate(
    tx: &mut Tx<'_>,
    config: Lamports,
    now: &str,
) -> Result<Lamports, LedgerError> {
    match stored_rate(tx)? {
        Some(ledger) if ledger == config => Ok(ledger),
        Some(ledger) => Err(LedgerError::RateMismatch { ledger, config }),
        None => {
            tx.execute(
                "INSERT INTO settings (id, lamports_per_segment, rate_set_at) VALUES (1, ?1, ?2)",
                params![config.0, now],
            )?;
            tracing::info!(
                lamports_per_segment = config.0,
                "ledger rate set by its first use"
            );
            Ok(config)
        }
    }
}
