//! Opening the database: pragmas and migrations.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior};
use rusqlite_migration::{Migrations, M};

use crate::error::LedgerError;

/// The schema, one SQL file per version; `PRAGMA user_version` says how many are applied.
/// Never edit an applied step (ledgers in the field have it): add the next one.
const MIGRATION_STEPS: &[M<'static>] = &[
    M::up(include_str!("../migrations/0001_init.sql")),
    // The ledger's rate (`settings`), one payout per transfer signature.
    M::up(include_str!("../migrations/0002_rate_and_signatures.sql")),
    // The server worker's intake: first-seen times, leases, parts fingerprints, failures.
    M::up(include_str!("../migrations/0003_intake.sql")),
    // The upload API's single-use nonces.
    M::up(include_str!("../migrations/0004_upload_nonces.sql")),
];

pub(crate) const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_STEPS);

/// The schema version this build writes (`PRAGMA user_version` after `open`).
pub const SCHEMA_VERSION: usize = MIGRATION_STEPS.len();

/// How long a call waits for another process's write transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait before switching a new file to WAL again (see `enable_wal`).
const WAL_RETRY: Duration = Duration::from_millis(10);

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
        let mode = enable_wal(&conn)?;
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
        check_signatures_unshared(&conn, path.as_deref())?;
        migrate(&mut conn)?;
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

/// Switches the file to WAL and returns the journal mode it is in. Two processes opening a new file
/// at once: SQLite answers the second one's switch with "database is locked" at once, without
/// calling the busy handler, so the switch is retried for up to the busy timeout.
fn enable_wal(conn: &Connection) -> Result<String, LedgerError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            Err(rusqlite::Error::SqliteFailure(err, _))
                if err.code == ErrorCode::DatabaseBusy && Instant::now() < deadline =>
            {
                std::thread::sleep(WAL_RETRY);
            }
            mode => return Ok(mode?),
        }
    }
}

/// Brings the schema to the latest version. Several worker processes may open a new (or older)
/// ledger at the same moment: the migrations run in an `IMMEDIATE` transaction, so the others
/// wait for the write lock (busy timeout) instead of failing, and one that read the version before
/// another migrated (its `CREATE TABLE` then fails, rolled back) accepts the file if it is now at
/// the latest version.
fn migrate(conn: &mut Connection) -> Result<(), LedgerError> {
    conn.set_transaction_behavior(TransactionBehavior::Immediate);
    let migrated = MIGRATIONS.to_latest(conn);
    // Read transactions stay deferred: readers must not take the write lock.
    conn.set_transaction_behavior(TransactionBehavior::Deferred);
    match migrated {
        Ok(()) => Ok(()),
        Err(err) if MIGRATIONS.pending_migrations(conn)? == 0 => {
            tracing::debug!(%err, "ledger migrated by another connection meanwhile");
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// Before schema 2 adds its unique index on `payouts(signature)`: a ledger in which several
/// payouts carry one signature is refused with the payouts named (and left as it is), instead of
/// failing inside the migration. A ledger that has the index (or no payouts table yet) passes.
fn check_signatures_unshared(conn: &Connection, path: Option<&Path>) -> Result<(), LedgerError> {
    let (tables, indexes): (i64, i64) = conn.query_row(
        "SELECT \
             (SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'payouts'), \
             (SELECT count(*) FROM sqlite_schema \
               WHERE type = 'index' AND name = 'payouts_one_per_signature')",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    if tables == 0 || indexes > 0 {
        return Ok(());
    }
    let shared: Option<(String, String)> = conn
        .query_row(
            "SELECT signature, group_concat(id, ',') FROM \
                 (SELECT signature, id FROM payouts WHERE signature IS NOT NULL ORDER BY id) \
             GROUP BY signature HAVING count(*) > 1 ORDER BY min(id) LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let Some((signature, ids)) = shared else {
        return Ok(());
    };
    let payout_ids = ids
        .split(',')
        .map(|id| {
            id.parse()
                .map_err(|_| LedgerError::Corrupt(format!("payout id {id:?}")))
        })
        .collect::<Result<_, _>>()?;
    Err(LedgerError::SharedSignature {
        path: path.map(Path::to_owned),
        signature,
        payout_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ledger file at schema 1, as ledgers in the field are, filled by `fill`.
    fn version_1_ledger(fill: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        Migrations::from_slice(&MIGRATION_STEPS[..1])
            .to_latest(&mut conn)
            .unwrap();
        conn.execute_batch(fill).unwrap();
        (dir, path)
    }

    fn user_version(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap()
    }

    /// A pending payout of `wallet` with one earning per amount (segments 1, 2, ..).
    fn pending_earnings(id: i64, wallet: &str, amounts: &[i64]) -> String {
        let mut sql = format!(
            "INSERT INTO payouts (id, wallet, state, amount_lamports, created_at) \
             VALUES ({id}, '{wallet}', 'pending', {}, 'x');",
            amounts.iter().sum::<i64>()
        );
        for (n, amount) in amounts.iter().enumerate() {
            sql += &format!(
                "INSERT INTO payout_items (payout_id, wallet, session_id, segment, frames, \
                 amount_lamports, kind, note) \
                 VALUES ({id}, '{wallet}', 'session_1_a', {}, 150, {amount}, 'earning', 'x');",
                n + 1
            );
        }
        sql
    }

    #[test]
    fn a_version_1_ledger_keeps_the_rate_its_pending_payouts_were_priced_at() {
        let agreeing = pending_earnings(1, "w1", &[2_000_000, 2_000_000])
            + &pending_earnings(2, "w2", &[2_000_000]);
        let (_dir, path) = version_1_ledger(&agreeing);
        assert_eq!(user_version(&path), 1);
        let ledger = Ledger::open(&path).unwrap();
        assert_eq!(user_version(&path), SCHEMA_VERSION as i64);
        assert_eq!(ledger.rate().unwrap(), Some(sd_core::Lamports(2_000_000)));

        // Priced at two rates, or not priced at all: the first call sets it.
        let disagreeing =
            pending_earnings(1, "w1", &[2_000_000]) + &pending_earnings(2, "w2", &[1_000_000]);
        for fill in [disagreeing.as_str(), ""] {
            let (_dir, path) = version_1_ledger(fill);
            assert_eq!(Ledger::open(&path).unwrap().rate().unwrap(), None, "{fill}");
        }
    }

    #[test]
    fn a_version_1_ledger_with_a_shared_signature_is_not_upgraded() {
        let signature = bs58::encode([5u8; 64]).into_string();
        let mut fill = String::new();
        for id in [3, 4, 5] {
            fill += &pending_earnings(id, &format!("w{id}"), &[1_000_000]);
            fill += &format!(
                "UPDATE payouts SET state = 'approved', approved_at = 'x', approved_by = 'ops' \
                 WHERE id = {id};"
            );
        }
        for id in [3, 5] {
            fill += &format!(
                "UPDATE payouts SET state = 'paid', paid_at = 'x', signature = '{signature}' \
                 WHERE id = {id};"
            );
        }
        let (_dir, path) = version_1_ledger(&fill);
        let err = Ledger::open(&path).unwrap_err();
        assert!(
            matches!(
                &err,
                LedgerError::SharedSignature { signature: s, payout_ids, .. }
                    if *s == signature && *payout_ids == [3, 5]
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("payouts #3, #5 all carry"),
            "{err}"
        );
        assert_eq!(user_version(&path), 1, "left as it was");
    }

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
        assert_eq!(ledger.rate().unwrap(), None);
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
