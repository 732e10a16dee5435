//! Opening the database: pragmas and migrations.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use rusqlite_migration::{Migrations, M};

use crate::LedgerError;

/// The schema, one SQL file per version; `PRAGMA user_version` says how many are applied.
const MIGRATION_STEPS: &[M<'static>] = &[M::up(include_str!("../migrations/0001_init.sql"))];

pub(crate) const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_STEPS);

/// The schema version this build writes (`PRAGMA user_version` after `open`).
pub const SCHEMA_VERSION: usize = MIGRATION_STEPS.len();

/// How long a call waits for another process's write transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The payout ledger: one SQLite connection. Every mutating call is one `IMMEDIATE` transaction,
/// so the CLI, the server and the desktop app can share the file (WAL: readers never block the
/// writer).
#[derive(Debug)]
pub struct Ledger {
    pub(crate) conn: Connection,
    path: Option<PathBuf>,
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path` and migrates it to the latest schema.
    ///
    /// Pragmas: `journal_mode=WAL` (checked), `foreign_keys=ON`, `busy_timeout` 5 s and
    /// `synchronous=FULL`: with WAL, `NORMAL` may lose the last commits on a power cut, and a
    /// committed approval or transfer signature must not be lost; the ledger writes one small
    /// transaction per processed session, so the extra fsync costs nothing that matters.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(LedgerError::NotWal {
                path: path.to_owned(),
                mode,
            });
        }
        Self::finish_open(conn, Some(path.to_owned()))
    }

    /// A ledger in memory (tests, dry runs); gone when dropped.
    pub fn open_in_memory() -> Result<Ledger, LedgerError> {
        let conn = Connection::open_in_memory()?;
        Self::finish_open(conn, None)
    }

    fn finish_open(mut conn: Connection, path: Option<PathBuf>) -> Result<Ledger, LedgerError> {
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let before = MIGRATIONS.current_version(&conn)?;
        MIGRATIONS.to_latest(&mut conn)?;
        tracing::debug!(
            path = ?path,
            ?before,
            version = SCHEMA_VERSION,
            "ledger open"
        );
        Ok(Ledger { conn, path })
    }

    /// Where the ledger lives (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// One write transaction: taken at the start (`IMMEDIATE`), so what it reads stays true
    /// until it commits.
    pub(crate) fn write(&mut self) -> Result<Transaction<'_>, LedgerError> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// A read transaction, so that several queries see one state of the ledger.
    pub(crate) fn read(&self) -> Result<Transaction<'_>, LedgerError> {
        Ok(self.conn.unchecked_transaction()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        MIGRATIONS.validate().unwrap();
    }

    #[test]
    fn in_memory_ledger_is_migrated_with_foreign_keys_on() {
        let ledger = Ledger::open_in_memory().unwrap();
        let version: usize = ledger
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let foreign_keys: i64 = ledger
            .conn
            .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
            .unwrap();
        assert_eq!(foreign_keys, 1);
        let synchronous: i64 = ledger
            .conn
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .unwrap();
        assert_eq!(synchronous, 2, "FULL");
    }
}
