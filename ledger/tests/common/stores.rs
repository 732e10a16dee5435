//! One body of tests, two stores: every test of `ledger.rs` and `intake.rs` is a function of a
//! [`Store`], run once on a SQLite file and once on a PostgreSQL database, by a harness of our
//! own (libtest-mimic), so that one PostgreSQL cluster serves the whole test binary and is
//! stopped when it ends. Test names say the store: `sqlite::…`, `postgres::…`.
//!
//! Without PostgreSQL the `postgres::` tests are ignored, and the binary says so plainly
//! (`SKIPPED`); with `SD_REQUIRE_POSTGRES=1` (CI) that is a failure.

#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use libtest_mimic::{Arguments, Trial};
use sd_ledger::{Ledger, LedgerLocation, POSTGRES_SCHEMA_VERSION, SCHEMA_VERSION};
use sd_tests::postgres::Postgres;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A test body.
pub type Body = fn(&Store);

/// One empty store of its own for one test: a SQLite file in a temporary folder, or a database of
/// the binary's PostgreSQL cluster.
pub struct Store {
    pub backend: Backend,
    location: LedgerLocation,
    database: String,
    cluster: Option<Arc<Postgres>>,
    _folder: Option<tempfile::TempDir>,
}

impl Store {
    /// A new connection to the store (migrating it on first use), as another process would open.
    pub fn open(&self) -> Ledger {
        Ledger::open_at(&self.location)
            .unwrap_or_else(|err| panic!("open the ledger at {}: {err}", self.location))
    }

    pub fn location(&self) -> &LedgerLocation {
        &self.location
    }

    /// Another empty store of the same kind.
    pub fn another(&self) -> Store {
        fresh(self.backend, self.cluster.as_ref())
    }

    /// The SQLite file (`None` on PostgreSQL).
    pub fn path(&self) -> Option<PathBuf> {
        self.location.path().map(PathBuf::from)
    }

    /// The schema version this build gives the store.
    pub fn latest_version(&self) -> usize {
        match self.backend {
            Backend::Sqlite => SCHEMA_VERSION,
            Backend::Postgres => POSTGRES_SCHEMA_VERSION,
        }
    }

    /// The store's schema version as it says (`PRAGMA user_version`, or `ledger_schema`).
    pub fn version(&self) -> usize {
        let sql = match self.backend {
            Backend::Sqlite => "PRAGMA user_version",
            Backend::Postgres => "SELECT version FROM ledger_schema",
        };
        self.sql(sql).expect("the schema version")[0][0]
            .parse()
            .expect("a version number")
    }

    /// Runs one SQL statement by hand, as someone with `sqlite3` or `psql` would, past the
    /// ledger: its rows, each column as text (NULL as empty text), or the store's error message.
    pub fn sql(&self, sql: &str) -> Result<Vec<Vec<String>>, String> {
        match (&self.location, &self.cluster) {
            (LedgerLocation::Sqlite(path), _) => sqlite_sql(path, sql).map_err(|e| e.to_string()),
            (LedgerLocation::Postgres(_), Some(cluster)) => {
                let out = cluster.psql(&self.database, sql);
                if !out.ok {
                    return Err(out.stderr);
                }
                Ok(out
                    .stdout
                    .lines()
                    .map(|line| line.split('|').map(str::to_owned).collect())
                    .collect())
            }
            (LedgerLocation::Postgres(_), None) => Err("no cluster".to_owned()),
        }
    }

    /// [`Store::sql`], which must succeed.
    pub fn sql_ok(&self, sql: &str) -> Vec<Vec<String>> {
        self.sql(sql).unwrap_or_else(|err| panic!("{sql}: {err}"))
    }

    /// [`Store::sql`], which must be refused: the store's message.
    pub fn sql_refused(&self, sql: &str) -> String {
        match self.sql(sql) {
            Ok(rows) => panic!("{sql}: not refused ({rows:?})"),
            Err(err) => err,
        }
    }
}

fn sqlite_sql(path: &std::path::Path, sql: &str) -> rusqlite::Result<Vec<Vec<String>>> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let mut statement = conn.prepare(sql)?;
    let columns = statement.column_count();
    let mut rows = statement.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            values.push(match row.get_ref(i)? {
                rusqlite::types::ValueRef::Null => String::new(),
                rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                rusqlite::types::ValueRef::Real(v) => v.to_string(),
                rusqlite::types::ValueRef::Text(v) | rusqlite::types::ValueRef::Blob(v) => {
                    String::from_utf8_lossy(v).into_owned()
                }
            });
        }
        out.push(values);
    }
    Ok(out)
}

/// Databases made so far by this binary (their names).
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// A new empty store on `backend` (`cluster` for PostgreSQL).
fn fresh(backend: Backend, cluster: Option<&Arc<Postgres>>) -> Store {
    match backend {
        Backend::Sqlite => {
            let folder = tempfile::tempdir().expect("a temporary folder");
            let path = folder.path().join("ledger.sqlite");
            Store {
                backend,
                location: LedgerLocation::Sqlite(path),
                database: String::new(),
                cluster: None,
                _folder: Some(folder),
            }
        }
        Backend::Postgres => {
            let cluster = Arc::clone(cluster.expect("a PostgreSQL cluster"));
            let database = format!("ledger_{}", DATABASES.fetch_add(1, Ordering::Relaxed));
            cluster.create_database(&database);
            Store {
                backend,
                location: LedgerLocation::Postgres(cluster.url(&database)),
                database,
                cluster: Some(cluster),
                _folder: None,
            }
        }
    }
}

/// Runs `both` on both stores and `sqlite_only` on SQLite, as the test binary `binary`, and
/// exits with the outcome (after stopping the cluster).
pub fn run(binary: &str, both: &[(&'static str, Body)], sqlite_only: &[(&'static str, Body)]) {
    let args = Arguments::from_args();
    let cluster = Postgres::start(&format!("the postgres:: tests of {binary}")).map(Arc::new);
    let mut trials = Vec::new();
    let mut add = |backend: Backend, name: &str, body: Body| {
        let prefix = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        let cluster = cluster.clone();
        let skipped = backend == Backend::Postgres && cluster.is_none();
        trials.push(
            Trial::test(format!("{prefix}::{name}"), move || {
                body(&fresh(backend, cluster.as_ref()));
                Ok(())
            })
            .with_ignored_flag(skipped),
        );
    };
    for &(name, body) in both {
        add(Backend::Sqlite, name, body);
        add(Backend::Postgres, name, body);
    }
    for &(name, body) in sqlite_only {
        add(Backend::Sqlite, name, body);
    }
    let conclusion = libtest_mimic::run(&args, trials);
    // The trials held clones of the cluster; they are gone once `run` returns.
    drop(cluster);
    conclusion.exit();
}

/// `(name, body)` pairs for [`run`] from test functions.
#[macro_export]
macro_rules! bodies {
    ($($test:ident),* $(,)?) => {
        &[$((stringify!($test), $test as $crate::common::stores::Body)),*]
    };
}
