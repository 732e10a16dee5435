//! Opening the store (a SQLite file or a PostgreSQL database): pragmas, connections and
//! migrations.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use rusqlite_migration::{Migrations, M};

use crate::db::{off_runtime, tls, Conn, PgConn, Tx};
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
    // Segment fingerprints and their index (duplicate drives).
    M::up(include_str!("../migrations/0005_fingerprints.sql")),
];

pub(crate) const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_STEPS);

/// The schema version this build writes (`PRAGMA user_version` after `open`).
pub const SCHEMA_VERSION: usize = MIGRATION_STEPS.len();

/// How long a call waits for another process's write transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait before switching a new file to WAL again (see `enable_wal`).
const WAL_RETRY: Duration = Duration::from_millis(10);

/// The schema on PostgreSQL, one SQL file per version; the `ledger_schema` table says how many
/// are applied. The first step is SQLite's version 4 at once (no PostgreSQL ledger predates it).
const POSTGRES_STEPS: &[&str] = &[
    include_str!("../migrations/postgres/0001_schema.sql"),
    // SQLite's version 5: segment fingerprints and their index.
    include_str!("../migrations/postgres/0002_fingerprints.sql"),
];

/// The PostgreSQL schema version this build writes.
pub const POSTGRES_SCHEMA_VERSION: usize = POSTGRES_STEPS.len();

/// The advisory lock that makes one connection at a time migrate a PostgreSQL ledger (any
/// number, the same in every build).
const MIGRATION_LOCK: i64 = 0x5344_4c45_4447_4552; // "SDLEDGER"

/// The advisory lock money writes hold on PostgreSQL (see [`Ledger::write_money`]).
const MONEY_LOCK: i64 = 0x5344_4d4f_4e45_5931; // "SDMONEY1"

/// Where a ledger lives: a SQLite file (one machine) or a PostgreSQL database (several hosts).
#[derive(Clone, PartialEq, Eq)]
pub enum LedgerLocation {
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL (libpq's key=value form is not taken: it could not
    /// be told from a file name).
    Postgres(String),
}

impl LedgerLocation {
    /// A `postgres://` or `postgresql://` URL is PostgreSQL; anything else is a SQLite file.
    pub fn parse(text: &str) -> LedgerLocation {
        let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            LedgerLocation::Postgres(text.to_owned())
        } else {
            LedgerLocation::Sqlite(PathBuf::from(text))
        }
    }

    /// The location as given, password included: for a child process's `--ledger` (never for a
    /// log, which takes the `Display` form).
    pub fn as_arg(&self) -> String {
        match self {
            LedgerLocation::Sqlite(path) => path.display().to_string(),
            LedgerLocation::Postgres(url) => url.clone(),
        }
    }

    /// The SQLite file, if the ledger is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            LedgerLocation::Sqlite(path) => Some(path),
            LedgerLocation::Postgres(_) => None,
        }
    }
}

impl std::str::FromStr for LedgerLocation {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(LedgerLocation::parse(text))
    }
}

/// A URL shown without its secrets: rebuilt from what the client reads in it (user, hosts, ports,
/// database), so that nothing it would take as a password (in the user part, or a `password`
/// parameter) is ever shown; a URL it cannot read is not shown at all.
fn redacted(url: &str) -> String {
    let (rest, _) = take_sslrootcert(url);
    let Ok(config) = rest.parse::<postgres::Config>() else {
        return "postgres://(a URL the PostgreSQL client cannot read)".to_owned();
    };
    let hidden = if config.get_password().is_some() {
        ":***"
    } else {
        ""
    };
    let user = config
        .get_user()
        .map(|user| format!("{user}{hidden}@"))
        .unwrap_or_default();
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let database = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{}/{database}", hosts.join(","))
}

impl std::fmt::Display for LedgerLocation {
    /// The file, or the URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerLocation::Sqlite(path) => write!(f, "{}", path.display()),
            LedgerLocation::Postgres(url) => f.write_str(&redacted(url)),
        }
    }
}

impl std::fmt::Debug for LedgerLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LedgerLocation({self})")
    }
}

/// The payout ledger: one connection to its store (a SQLite file or PostgreSQL). Every mutating
/// call is one write transaction (SQLite's `IMMEDIATE` one, PostgreSQL's `SERIALIZABLE` one run
/// again on a conflict), so the CLI, the server's workers and the desktop app can share the store:
/// on SQLite from one machine (WAL: readers never block the writer), on PostgreSQL from any
/// number of hosts.
#[derive(Debug)]
pub struct Ledger {
    /// In a cell so that reads take `&self`; a call never reaches the ledger again while it holds
    /// the connection.
    conn: RefCell<Conn>,
    location: Option<LedgerLocation>,
}

impl Ledger {
    /// Opens the ledger wherever `location` says: [`Ledger::open`] for a file,
    /// [`Ledger::connect`] for a PostgreSQL URL.
    pub fn open_at(location: &LedgerLocation) -> Result<Ledger, LedgerError> {
        match location {
            LedgerLocation::Sqlite(path) => Ledger::open(path),
            LedgerLocation::Postgres(url) => Ledger::connect(url),
        }
    }

    /// Opens a ledger that must exist already: a SQLite file that is not there is
    /// [`LedgerError::NotFound`] (a typo in a path must not create an empty ledger); a PostgreSQL
    /// database must exist (its schema is created when it is empty).
    pub fn open_existing(location: &LedgerLocation) -> Result<Ledger, LedgerError> {
        if let LedgerLocation::Sqlite(path) = location {
            if !path.is_file() {
                return Err(LedgerError::NotFound {
                    path: path.to_owned(),
                });
            }
        }
        Ledger::open_at(location)
    }

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
        Ok(Ledger {
            conn: RefCell::new(Conn::Sqlite(conn)),
            location: path.map(LedgerLocation::Sqlite),
        })
    }

    /// Connects to the ledger in the PostgreSQL database at `url` (`postgres://user:password@host/db`,
    /// with libpq's URL parameters, `connect_timeout` 10 s unless given) and brings its schema to
    /// the latest version. Several hosts' workers share it. A refused connection is an error at
    /// once; a connection lost later is opened again by the next call, which waits up to a minute
    /// for the server (then [`LedgerError::Unreachable`]).
    pub fn connect(url: &str) -> Result<Ledger, LedgerError> {
        let shown = redacted(url);
        let connect_error = |error| LedgerError::PostgresConnect {
            url: shown.clone(),
            error,
        };
        let (url_rest, root_file) = take_sslrootcert(url);
        let mut config: postgres::Config = url_rest.parse().map_err(connect_error)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("sd-ledger");
        // A peer that goes silent (a host cut off or powered down, a server gone) is noticed
        // within about half a minute on both sides: this client stops waiting for its answer
        // (and connects again), and the server ends the session, its locks going with it. A
        // connection that stalls inside a transaction (a frozen worker) is cut off too.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(15))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(30));
        let options = config.get_options().unwrap_or_default().to_owned();
        config.options(&format!(
            "{options} -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS} \
             -c tcp_keepalives_idle=15 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
        ));
        let tls = tls(root_file.as_deref())?;
        let (pg, before, after) = off_runtime(|| {
            let mut pg = PgConn::connect(config, tls).map_err(|err| match err {
                LedgerError::Postgres(error) => connect_error(error),
                other => other,
            })?;
            let (before, after) = migrate_postgres(&mut pg)?;
            Ok::<_, LedgerError>((pg, before, after))
        })??;
        tracing::debug!(url = %shown, before, version = after, "ledger open (PostgreSQL)");
        Ok(Ledger {
            conn: RefCell::new(Conn::Postgres(Box::new(pg))),
            location: Some(LedgerLocation::Postgres(url.to_owned())),
        })
    }

    /// How many transactions this connection ran again because PostgreSQL could not serialize
    /// them with concurrent ones (0 on SQLite, which has one writer at a time): a rising rate is
    /// contention between hosts' workers.
    pub fn conflicts_retried(&self) -> u64 {
        match &*self.conn.borrow() {
            Conn::Postgres(pg) => pg.conflicts,
            Conn::Sqlite(_) => 0,
        }
    }

    /// Where the ledger lives (`None` in memory).
    pub fn location(&self) -> Option<&LedgerLocation> {
        self.location.as_ref()
    }

    /// The ledger's file (`None` in memory or on PostgreSQL).
    pub fn path(&self) -> Option<&Path> {
        self.location.as_ref().and_then(LedgerLocation::path)
    }

    /// One write transaction running `body`: what it reads stays true until it commits. On
    /// PostgreSQL the body may run more than once (see `db`).
    pub(crate) fn write<T: Send>(
        &mut self,
        body: impl FnMut(&mut Tx<'_>) -> Result<T, LedgerError> + Send,
    ) -> Result<T, LedgerError> {
        self.conn.get_mut().write(body)
    }

    /// [`Ledger::write`] for a write that moves money (records a session, overrides a segment,
    /// sets the rate, approves or pays a payout): such writes run one at a time, on every host
    /// (PostgreSQL: one advisory lock, [`MONEY_LOCK`]), as SQLite runs all writes. They all end in
    /// a wallet's pending payout; run at once they would conflict and retry, or deadlock. At a few
    /// milliseconds each, that is hundreds of sessions recorded per second, against a worker's
    /// seconds of processing per session.
    pub(crate) fn write_money<T: Send>(
        &mut self,
        body: impl FnMut(&mut Tx<'_>) -> Result<T, LedgerError> + Send,
    ) -> Result<T, LedgerError> {
        self.conn.get_mut().write_exclusive(MONEY_LOCK, body)
    }

    /// A read transaction running `body`, so that its queries see one state of the ledger.
    pub(crate) fn read<T: Send>(
        &self,
        body: impl FnMut(&mut Tx<'_>) -> Result<T, LedgerError> + Send,
    ) -> Result<T, LedgerError> {
        let mut conn = self.conn.try_borrow_mut().map_err(|_| {
            LedgerError::Corrupt("the ledger was called again from inside one of its calls".into())
        })?;
        conn.read(body)
    }
}

/// How long a connection may sit idle inside a transaction before the server closes it.
const IDLE_IN_TRANSACTION_MS: u64 = 60_000;

/// The URL without libpq's `sslrootcert=FILE` (which the client crate does not take), and that
/// file.
fn take_sslrootcert(url: &str) -> (String, Option<PathBuf>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut file = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some(("sslrootcert", value)) => {
                file = Some(PathBuf::from(
                    percent_encoding::percent_decode_str(value)
                        .decode_utf8_lossy()
                        .into_owned(),
                ));
                false
            }
            _ => true,
        })
        .collect();
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, file)
}

/// Brings a PostgreSQL ledger's schema to the latest version, one connection at a time (an
/// advisory lock held to the commit; at read-committed isolation each statement sees what the
/// connection before it committed). Returns the versions before and after.
fn migrate_postgres(pg: &mut PgConn) -> Result<(i64, i64), LedgerError> {
    let latest = POSTGRES_STEPS.len() as i64;
    let client = pg.client()?;
    let mut tx = client.transaction()?;
    // (No NOTICE for "already exists": the client would log it on every connection.)
    tx.batch_execute("SET LOCAL client_min_messages = warning")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS ledger_schema (\
             id BIGINT PRIMARY KEY CHECK (id = 1), \
             version BIGINT NOT NULL CHECK (version >= 0))",
    )?;
    let before: i64 = tx
        .query_opt("SELECT version FROM ledger_schema WHERE id = 1", &[])?
        .map(|row| row.try_get(0))
        .transpose()?
        .unwrap_or(0);
    if before > latest {
        return Err(LedgerError::NewerSchema {
            found: before,
            known: latest,
        });
    }
    for (index, step) in POSTGRES_STEPS.iter().enumerate().skip(before as usize) {
        tx.batch_execute(step)?;
        tracing::info!(version = index + 1, "ledger (PostgreSQL) migrated");
    }
    tx.execute(
        "INSERT INTO ledger_schema (id, version) VALUES (1, $1) \
         ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        &[&latest],
    )?;
    tx.commit()?;
    Ok((before, latest))
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
    fn locations_are_files_unless_postgres_urls_and_urls_hide_their_password() {
        let url = "postgres://ledger:s3cret@db.internal:5432/ledger?sslmode=disable";
        let location = LedgerLocation::parse(url);
        assert_eq!(location, LedgerLocation::Postgres(url.to_owned()));
        assert_eq!(
            location.to_string(),
            "postgres://ledger:***@db.internal:5432/ledger"
        );
        assert!(!format!("{location:?}").contains("s3cret"));
        assert_eq!(location.as_arg(), url);
        // Taken as PostgreSQL (not a file named so), and refused by the client when connecting.
        let shouted = LedgerLocation::parse("POSTGRESQL://u:s3cret@h/db");
        assert!(matches!(shouted, LedgerLocation::Postgres(_)));
        assert!(!shouted.to_string().contains("s3cret"));
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h:5432/db");
        assert_eq!(
            redacted("postgres://h:6543,g/db"),
            "postgres://h:6543,g:5432/db"
        );
        // Wherever the client would find a password, it is not shown: in the user part (up to
        // its '@', whatever comes before), or as a parameter.
        for (url, secret) in [
            // (The client takes the user part up to the first @: the password is "p".)
            ("postgres://u:p@ss@h/db", ":p@"),
            ("postgres://u:a/b@h/db", "a/b"),
            ("postgres://u:a?b@h/db", "a?b"),
            ("postgres://u@h/db?password=s3cret", "s3cret"),
            (
                "postgres://u@h/db?sslrootcert=/ca.pem&password=s3cret",
                "s3cret",
            ),
            ("postgres://u:s3cret@h/db?bogus=1", "s3cret"),
        ] {
            let shown = redacted(url);
            assert!(!shown.contains(secret), "{url} shown as {shown}");
        }
        for file in ["out/ledger.sqlite", "postgres.sqlite", "./postgres://x"] {
            assert_eq!(
                LedgerLocation::parse(file),
                LedgerLocation::Sqlite(PathBuf::from(file)),
                "{file}"
            );
        }
    }

    #[test]
    fn migrations_are_valid() {
        MIGRATIONS.validate().unwrap();
    }

    #[test]
    fn in_memory_ledger_is_migrated_with_foreign_keys_on() {
        let ledger = Ledger::open_in_memory().unwrap();
        assert_eq!(ledger.rate().unwrap(), None);
        let conn = ledger.conn.borrow();
        let Conn::Sqlite(conn) = &*conn else {
            panic!("in memory is SQLite")
        };
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let foreign_keys: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
            .unwrap();
        assert_eq!(foreign_keys, 1);
        let synchronous: i64 = conn
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .unwrap();
        assert_eq!(synchronous, 2, "FULL");
    }
}
