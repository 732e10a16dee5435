//! The `settings` row: the per-segment rate the ledger pays, checked, read and set inside a
//! caller's transaction. A building block of `verdicts`, `record` and `rate` (which holds the
//! `Ledger` methods); it knows nothing of them.

use rusqlite::{params, Connection, OptionalExtension};

use sd_core::Lamports;

use crate::error::LedgerError;

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
