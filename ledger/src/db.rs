//! The two stores behind one small SQL interface: every `Ledger` method is written once, on it.
//!
//! - [`Value`]: what SQL binds and returns on both stores (integers are `i64`, reals `f64`, text,
//!   NULL), converted to and from each driver's types; [`params!`] builds a list of them.
//! - [`Tx`]: one transaction on either store; SQL is written once with SQLite's numbered
//!   placeholders (`?1`, `?2`), which [`postgres_placeholders`] turns into PostgreSQL's (`$1`).
//!   Statements are prepared once per connection and reused.
//! - [`Conn::write`]: the body of a write transaction, run as SQLite's `IMMEDIATE` transaction
//!   (one writer at a time) or as PostgreSQL's `SERIALIZABLE` one, run again when PostgreSQL
//!   cannot serialize it with a concurrent one (SQLSTATE 40001, or a deadlock, 40P01): the
//!   same guarantee, that every write transaction sees and leaves a state some serial order of
//!   them would, from writers on any number of hosts. [`Conn::read`] runs a read-only body on one
//!   snapshot.
//! - A lost PostgreSQL connection (the server restarted, a failover, a network cut) is opened
//!   again, for up to [`RECONNECT_FOR`], and a body that had not reached its commit runs
//!   again; a write whose commit was sent when the connection broke is not: whether it was saved
//!   is unknown ([`LedgerError::CommitUnknown`]), and the caller's retry (a redelivered event, a
//!   person) decides.
//!
//! The body of a transaction may run more than once: it must do nothing but SQL through its `Tx`
//! (and logging).

use std::borrow::Cow;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postgres::types::{FromSql, IsNull, ToSql, Type};
use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::error::LedgerError;

/// How many times a PostgreSQL write transaction runs before its serialization failure is
/// returned, and the first pause between runs (doubled each time, with jitter from the attempt).
const WRITE_ATTEMPTS: u32 = 12;
const FIRST_BACKOFF: Duration = Duration::from_millis(2);

/// How long a call keeps trying to reach PostgreSQL again after losing it, by default.
pub(crate) const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// A value bound to SQL or read from it, the same on both stores.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    /// Bytes: SQLite's BLOB, PostgreSQL's BYTEA.
    Blob(Vec<u8>),
    /// An unsigned number above `i64::MAX`: refused when bound (SQL integers are `i64`).
    OutOfRange(u64),
}

/// A list of [`Value`]s for a statement's `?1`, `?2`, ...
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::db::Value::from($value)),*] as &[$crate::db::Value]
    };
}
pub(crate) use params;

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}

impl From<u64> for Value {
    fn from(value: u64) -> Self {
        i64::try_from(value).map_or(Value::OutOfRange(value), Value::Int)
    }
}

impl From<usize> for Value {
    fn from(value: usize) -> Self {
        Value::from(value as u64)
    }
}

impl From<u32> for Value {
    fn from(value: u32) -> Self {
        Value::Int(value.into())
    }
}

impl From<bool> for Value {
    /// A flag, stored as 0 or 1 on both stores.
    fn from(value: bool) -> Self {
        Value::Int(value.into())
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Real(value)
    }
}

/// Text as both stores keep it: PostgreSQL refuses U+0000 in text, which SQLite stores, so it
/// becomes U+FFFD on both (an error's text from a response body may hold one).
fn text(value: String) -> Value {
    if value.contains('\0') {
        Value::Text(value.replace('\0', "\u{FFFD}"))
    } else {
        Value::Text(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        text(value.to_owned())
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Self {
        text(value.clone())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        text(value)
    }
}

impl From<Vec<u8>> for Value {
    fn from(value: Vec<u8>) -> Self {
        Value::Blob(value)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Real(v) => ToSqlOutput::Borrowed(ValueRef::Real(*v)),
            Value::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Value::Blob(v) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
            Value::OutOfRange(v) => {
                return Err(rusqlite::Error::IntegralValueOutOfRange(0, *v as i64))
            }
        })
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Value {
    /// Written as the type PostgreSQL inferred for the placeholder: an integer into a narrower
    /// column type only when it fits.
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(v), &Type::INT2) => i16::try_from(*v)?.to_sql(ty, out),
            (Value::Int(v), &Type::INT4) => i32::try_from(*v)?.to_sql(ty, out),
            (Value::Int(v), &Type::INT8) => v.to_sql(ty, out),
            (Value::Real(v), &Type::FLOAT8) => v.to_sql(ty, out),
            (
                Value::Text(v),
                &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME | &Type::UNKNOWN,
            ) => v.as_str().to_sql(ty, out),
            (Value::Blob(v), &Type::BYTEA) => v.as_slice().to_sql(ty, out),
            (Value::OutOfRange(v), _) => Err(format!(
                "{v} is out of range for a SQL integer (at most {})",
                i64::MAX
            )
            .into()),
            // Anything else would be written in the wrong binary format (a float's bits into an
            // integer column): refused, as the query and its parameters disagree.
            (value, ty) => Err(format!("{value:?} cannot be bound to a {ty} parameter").into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::FLOAT8
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::UNKNOWN
                | Type::BYTEA
        )
    }

    postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(match *ty {
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            _ => Value::Text(<&str>::from_sql(ty, raw)?.to_owned()),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Value::Null)
    }

    /// Every type the ledger's schema has; a NUMERIC (an unconverted `sum()`) is refused, so that
    /// a query missing its `CAST(.. AS BIGINT)` fails on the first test, not in a payout.
    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::BOOL
                | Type::FLOAT4
                | Type::FLOAT8
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::BYTEA
        )
    }
}

/// One row of a result, its columns in the query's order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row(pub(crate) Vec<Value>);

impl Row {
    fn column(&self, index: usize) -> Result<&Value, LedgerError> {
        self.0.get(index).ok_or_else(|| LedgerError::Column {
            index,
            why: format!("the row has {} columns", self.0.len()),
        })
    }

    pub(crate) fn opt_int(&self, index: usize) -> Result<Option<i64>, LedgerError> {
        match self.column(index)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            other => Err(wrong_type(index, "an integer", other)),
        }
    }

    pub(crate) fn blob(&self, index: usize) -> Result<&[u8], LedgerError> {
        match self.column(index)? {
            Value::Blob(v) => Ok(v),
            other => Err(wrong_type(index, "bytes", other)),
        }
    }

    pub(crate) fn int(&self, index: usize) -> Result<i64, LedgerError> {
        self.opt_int(index)?
            .ok_or_else(|| wrong_type(index, "an integer", &Value::Null))
    }

    /// A count or a number of frames: an integer that is not negative.
    pub(crate) fn count<T: TryFrom<i64>>(&self, index: usize) -> Result<T, LedgerError> {
        let value = self.int(index)?;
        T::try_from(value).map_err(|_| LedgerError::Column {
            index,
            why: format!(
                "{value} is out of range for a {}",
                std::any::type_name::<T>()
            ),
        })
    }

    /// A flag stored as 0 or 1.
    pub(crate) fn flag(&self, index: usize) -> Result<bool, LedgerError> {
        match self.int(index)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(LedgerError::Column {
                index,
                why: format!("expected a flag (0 or 1), found {other}"),
            }),
        }
    }

    pub(crate) fn opt_real(&self, index: usize) -> Result<Option<f64>, LedgerError> {
        match self.column(index)? {
            Value::Null => Ok(None),
            Value::Real(v) => Ok(Some(*v)),
            // SQLite stores a REAL that holds a whole number as given; PostgreSQL never does.
            Value::Int(v) => Ok(Some(*v as f64)),
            other => Err(wrong_type(index, "a real", other)),
        }
    }

    pub(crate) fn real(&self, index: usize) -> Result<f64, LedgerError> {
        self.opt_real(index)?
            .ok_or_else(|| wrong_type(index, "a real", &Value::Null))
    }

    pub(crate) fn opt_text(&self, index: usize) -> Result<Option<&str>, LedgerError> {
        match self.column(index)? {
            Value::Null => Ok(None),
            Value::Text(v) => Ok(Some(v)),
            other => Err(wrong_type(index, "text", other)),
        }
    }

    pub(crate) fn text(&self, index: usize) -> Result<&str, LedgerError> {
        self.opt_text(index)?
            .ok_or_else(|| wrong_type(index, "text", &Value::Null))
    }

    pub(crate) fn opt_string(&self, index: usize) -> Result<Option<String>, LedgerError> {
        Ok(self.opt_text(index)?.map(str::to_owned))
    }

    pub(crate) fn string(&self, index: usize) -> Result<String, LedgerError> {
        Ok(self.text(index)?.to_owned())
    }
}

fn wrong_type(index: usize, expected: &str, found: &Value) -> LedgerError {
    LedgerError::Column {
        index,
        why: format!("expected {expected}, found {found:?}"),
    }
}
/// SQLite's numbered placeholders (`?1`) as PostgreSQL's (`$1`); a `?` inside a quoted string or
/// identifier or a `--` or `/* */` comment is left alone, and so is a `?` not followed by a digit
/// (not used by the ledger). The ledger's SQL uses no `E''` strings and no `$$` quoting, which
/// this does not follow.
pub(crate) fn postgres_placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        // Comments are copied as they are (an apostrophe in one opens no string).
        if quote.is_none() && (c == '-' || c == '/') {
            let opens = if c == '-' { '-' } else { '*' };
            if chars.peek() == Some(&opens) {
                out.push(c);
                let closing: &[char] = if c == '-' { &['\n'] } else { &['*', '/'] };
                let mut tail: Vec<char> = Vec::new();
                for next in chars.by_ref() {
                    out.push(next);
                    tail.push(next);
                    if tail.len() > 1 && tail.ends_with(closing) {
                        break;
                    }
                }
                continue;
            }
        }
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '?') if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// The TLS the ledger's PostgreSQL connections use: the server's certificate is checked against
/// the system's roots and, when given, the certificates of `root_file` (PEM: for RDS, its CA
/// bundle). Whether TLS is used is the URL's `sslmode` (`prefer` unless given; `require` for RDS).
pub(crate) fn tls(
    root_file: Option<&Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, LedgerError> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(
        added,
        errors = native.errors.len(),
        "system roots for the ledger's TLS"
    );
    if let Some(file) = root_file {
        let invalid = |why: String| LedgerError::TlsRoots {
            path: file.to_owned(),
            why,
        };
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(file)
            .map_err(|err| invalid(err.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| invalid(err.to_string()))?;
        if certs.is_empty() {
            return Err(invalid("no certificate in it".to_owned()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|err| invalid(format!("a certificate is not usable: {err}")))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| LedgerError::TlsRoots {
            path: PathBuf::new(),
            why: err.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A connection to either store.
pub(crate) enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<PgConn>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Sqlite(_) => "Conn::Sqlite",
            Conn::Postgres(_) => "Conn::Postgres",
        })
    }
}

/// A PostgreSQL connection that opens itself again when lost, with the statements it prepared.
pub(crate) struct PgConn {
    config: postgres::Config,
    /// TLS as the URL's `sslmode` asks (`prefer` by default: TLS when the server offers it).
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// `None` after the connection was lost, until the next call opens it again.
    client: Option<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
    /// Transactions run again on this connection after a serialization failure or a deadlock.
    pub(crate) conflicts: u64,
}

impl PgConn {
    /// Connects (once: the caller decides whether a refused first connection is retried).
    pub(crate) fn connect(
        config: postgres::Config,
        tls: tokio_postgres_rustls::MakeRustlsConnect,
    ) -> Result<PgConn, LedgerError> {
        let client = config.connect(tls.clone())?;
        Ok(PgConn {
            config,
            tls,
            client: Some(client),
            statements: HashMap::new(),
            conflicts: 0,
        })
    }

    /// The open connection, opening it again when it was lost (once; the caller retries).
    pub(crate) fn client(&mut self) -> Result<&mut postgres::Client, LedgerError> {
        if self
            .client
            .as_ref()
            .is_some_and(postgres::Client::is_closed)
        {
            self.lost();
        }
        if self.client.is_none() {
            let client = self.config.connect(self.tls.clone())?;
            tracing::info!("ledger: connected to PostgreSQL again");
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| LedgerError::Corrupt("no PostgreSQL connection".to_owned()))
    }

    /// Forgets a lost connection and what was prepared on it.
    fn lost(&mut self) {
        self.client = None;
        self.statements.clear();
    }

    /// Runs `body` in one transaction (`write`: serializable, else read-only on a snapshot) and
    /// commits it, running it again after a serialization failure or a lost connection.
    fn run<T>(
        &mut self,
        mode: Mode,
        body: &mut (dyn FnMut(&mut Tx<'_>) -> Result<T, LedgerError> + Send),
    ) -> Result<T, LedgerError> {
        let mut backoff = FIRST_BACKOFF;
        // Counted apart: the conflicts in a row after the server was last reached, and the
        // reconnections since it was lost.
        let (mut conflicts, mut reconnections) = (0u32, 0u32);
        let mut lost_since: Option<Instant> = None;
        loop {
            let outcome = self.attempt(mode, body);
            if matches!(outcome, Err(Attempt::Lost(_))) {
                self.lost();
            } else {
                (lost_since, reconnections) = (None, 0);
            }
            let retry = match &outcome {
                Err(Attempt::Lost(err)) => {
                    let since = *lost_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= RECONNECT_FOR {
                        tracing::warn!(
                            "ledger: PostgreSQL unreachable for {:?}: {err}",
                            RECONNECT_FOR
                        );
                        false
                    } else {
                        tracing::warn!("ledger: lost PostgreSQL ({err}); trying again");
                        reconnections += 1;
                        let wait = Duration::from_millis(100 * u64::from(reconnections.min(10)));
                        std::thread::sleep(wait);
                        true
                    }
                }
                Err(Attempt::Serialization(_)) if conflicts + 1 < WRITE_ATTEMPTS => {
                    conflicts += 1;
                    tracing::debug!(conflicts, "ledger transaction not serializable, run again");
                    self.conflicts += 1;
                    // Writers that collided wait different times: half the backoff, then a random
                    // part of the other half.
                    let half = (backoff / 2).as_micros() as u64;
                    let spread = RandomState::new().hash_one(conflicts) % (half + 1);
                    std::thread::sleep(Duration::from_micros(half + spread));
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                    true
                }
                _ => false,
            };
            if !retry {
                return outcome.map_err(|attempt| attempt.into_error(conflicts + 1));
            }
        }
    }

    fn attempt<T>(
        &mut self,
        mode: Mode,
        body: &mut (dyn FnMut(&mut Tx<'_>) -> Result<T, LedgerError> + Send),
    ) -> Result<T, Attempt> {
        self.client().map_err(Attempt::classify)?;
        let PgConn {
            client, statements, ..
        } = self;
        let client = client
            .as_mut()
            .ok_or_else(|| Attempt::Lost("no PostgreSQL connection".to_owned()))?;
        let Mode::Write { exclusive } = mode else {
            return Self::transact(client, statements, false, body);
        };
        let Some(key) = exclusive else {
            return Self::transact(client, statements, true, body);
        };
        // Taken before the transaction begins, so that its snapshot is taken after the previous
        // holder committed: writers of one key never conflict with each other.
        client
            .execute("SELECT pg_advisory_lock($1)", &[&key])
            .map_err(|err| Attempt::classify(err.into()))?;
        // A body that panics must not leave the lock held on a connection that lives on (a
        // poisoned mutex keeps the ledger, and so the session, alive): the connection is closed,
        // and the server releases the lock with it.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Self::transact(client, statements, true, body)
        }));
        let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&key]);
        match outcome {
            Err(panic) => {
                self.lost();
                std::panic::resume_unwind(panic)
            }
            Ok(outcome) => {
                if let Err(err) = unlocked {
                    tracing::warn!(
                        "ledger: cannot release the write lock ({err}); closing the connection releases it"
                    );
                    self.lost();
                }
                outcome
            }
        }
    }

    /// One transaction on `client`: serializable when `write`, else a read-only snapshot.
    fn transact<T>(
        client: &mut postgres::Client,
        statements: &mut HashMap<String, postgres::Statement>,
        write: bool,
        body: &mut (dyn FnMut(&mut Tx<'_>) -> Result<T, LedgerError> + Send),
    ) -> Result<T, Attempt> {
        let started = if write {
            client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::Serializable)
                .start()
        } else {
            client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
        };
        let tx = started.map_err(|err| Attempt::classify(err.into()))?;
        let mut tx = Tx::Postgres {
            tx,
            statements,
            failure: None,
        };
        let result = body(&mut tx);
        let Tx::Postgres { tx, failure, .. } = tx else {
            return Err(Attempt::Failed(LedgerError::Corrupt(
                "a PostgreSQL transaction became another".to_owned(),
            )));
        };
        // A transaction that does not commit is rolled back when dropped.
        match (result, failure) {
            // A statement that failed rolled everything back, whatever the body made of its
            // error: a lost connection or a serialization failure runs the body again.
            (
                _,
                Some(Aborted {
                    kind: Kind::Lost,
                    first_error,
                }),
            ) => Err(Attempt::Lost(first_error)),
            (
                _,
                Some(Aborted {
                    kind: Kind::Serialization,
                    first_error,
                }),
            ) => Err(Attempt::Serialization(first_error)),
            // The body's own error, whether or not it came from the statement that failed.
            (Err(err), _) => Err(Attempt::Failed(err)),
            (Ok(_), Some(Aborted { first_error, .. })) => {
                Err(Attempt::Failed(LedgerError::TransactionAborted {
                    first_error,
                }))
            }
            (Ok(value), None) => match tx.commit() {
                Ok(()) => Ok(value),
                Err(err) => {
                    let err = LedgerError::from(err);
                    match Attempt::classify(err) {
                        // The commit was sent: a read runs again, a write may have been saved.
                        Attempt::Lost(first_error) if write => {
                            Err(Attempt::Failed(LedgerError::CommitUnknown { first_error }))
                        }
                        other => Err(other),
                    }
                }
            },
        }
    }
}

/// What a PostgreSQL transaction is for.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Read,
    /// With the key of an advisory lock held around it, for writes that must not run at once.
    Write {
        exclusive: Option<i64>,
    },
}

/// How one run of a PostgreSQL transaction ended, when it did not commit.
enum Attempt {
    /// The connection was lost before the commit: nothing was written; run again.
    Lost(String),
    /// PostgreSQL could not serialize it with concurrent ones: run again.
    Serialization(String),
    Failed(LedgerError),
}

impl Attempt {
    fn classify(err: LedgerError) -> Attempt {
        match err.failure_kind() {
            Kind::Lost => Attempt::Lost(err.to_string()),
            Kind::Serialization => Attempt::Serialization(err.to_string()),
            Kind::Other => Attempt::Failed(err),
        }
    }

    /// The error a call ends with, after `attempts` runs in a row that conflicted.
    fn into_error(self, attempts: u32) -> LedgerError {
        match self {
            Attempt::Lost(first_error) => LedgerError::Unreachable { first_error },
            Attempt::Serialization(first_error) => LedgerError::NotSerializable {
                attempts,
                first_error,
            },
            Attempt::Failed(err) => err,
        }
    }
}

/// What kind of failure a PostgreSQL error is, for deciding whether to run a transaction again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Lost,
    Serialization,
    Other,
}

/// One transaction on either store.
pub(crate) enum Tx<'c> {
    Sqlite(rusqlite::Transaction<'c>),
    /// With the statements prepared on the connection, and the first statement that failed in
    /// it: PostgreSQL then rolls the whole transaction back (SQLite only that statement), so its
    /// commit must not be reported as one.
    Postgres {
        tx: postgres::Transaction<'c>,
        statements: &'c mut HashMap<String, postgres::Statement>,
        failure: Option<Aborted>,
    },
}

/// The first failure of a PostgreSQL transaction.
#[derive(Debug, Clone)]
pub(crate) struct Aborted {
    kind: Kind,
    first_error: String,
}

/// Notes the first failure of a PostgreSQL transaction, and passes the error on.
fn noted(failure: &mut Option<Aborted>, err: postgres::Error) -> LedgerError {
    let err = LedgerError::from(err);
    failure.get_or_insert_with(|| Aborted {
        kind: err.failure_kind(),
        first_error: err.to_string(),
    });
    err
}

impl Tx<'_> {
    /// Runs a statement; the number of rows it changed.
    pub(crate) fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, LedgerError> {
        match self {
            Tx::Sqlite(tx) => {
                let changed = tx
                    .prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(params))?;
                Ok(changed as u64)
            }
            Tx::Postgres {
                tx,
                statements,
                failure,
            } => {
                let statement = prepared(tx, statements, sql).map_err(|err| noted(failure, err))?;
                let params: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                tx.execute(&statement, &params)
                    .map_err(|err| noted(failure, err))
            }
        }
    }

    /// Every row of a query.
    pub(crate) fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, LedgerError> {
        match self {
            Tx::Sqlite(tx) => {
                let mut statement = tx.prepare_cached(sql)?;
                let columns = statement.column_count();
                let rows = statement.query_map(rusqlite::params_from_iter(params), |row| {
                    (0..columns)
                        .map(|i| {
                            Ok(match row.get_ref(i)? {
                                ValueRef::Null => Value::Null,
                                ValueRef::Integer(v) => Value::Int(v),
                                ValueRef::Real(v) => Value::Real(v),
                                ValueRef::Text(v) => {
                                    Value::Text(String::from_utf8_lossy(v).into_owned())
                                }
                                ValueRef::Blob(v) => Value::Blob(v.to_vec()),
                            })
                        })
                        .collect::<rusqlite::Result<Vec<Value>>>()
                        .map(Row)
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<Row>>>()?)
            }
            Tx::Postgres {
                tx,
                statements,
                failure,
            } => {
                let statement = prepared(tx, statements, sql).map_err(|err| noted(failure, err))?;
                let params: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                let rows = tx
                    .query(&statement, &params)
                    .map_err(|err| noted(failure, err))?;
                rows.iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| row.try_get::<_, Value>(i).map_err(LedgerError::from))
                            .collect::<Result<Vec<Value>, LedgerError>>()
                            .map(Row)
                    })
                    .collect()
            }
        }
    }

    /// The first row of a query, if any.
    pub(crate) fn query_opt(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Option<Row>, LedgerError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row of a query that always returns one (an aggregate, `RETURNING`).
    pub(crate) fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row, LedgerError> {
        self.query_opt(sql, params)?
            .ok_or_else(|| LedgerError::Corrupt(format!("no row from {sql}")))
    }
}

/// The connection's prepared statement for `sql`, prepared now when it is new.
fn prepared(
    tx: &mut postgres::Transaction<'_>,
    statements: &mut HashMap<String, postgres::Statement>,
    sql: &str,
) -> Result<postgres::Statement, postgres::Error> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = tx.prepare(postgres_placeholders(sql).as_ref())?;
    statements.insert(sql.to_owned(), statement.clone());
    Ok(statement)
}

/// Runs `work` on a thread of its own when the caller is on a thread of a tokio runtime (an async
/// task, or a blocking thread of one), else right here. The PostgreSQL client is synchronous: it
/// drives its connection with a runtime of its own, which tokio refuses to start on a runtime's
/// thread (a panic). SQLite has no such limit; with this, neither store cares where it is called
/// from (async callers still belong on blocking threads: a call waits for the database).
pub(crate) fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> Result<T, LedgerError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(work());
    }
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("ledger-postgres".to_owned())
            .spawn_scoped(scope, work)
            .map_err(|err| {
                LedgerError::Corrupt(format!("cannot start a thread for PostgreSQL: {err}"))
            })?;
        thread
            .join()
            .map_err(|panic| std::panic::resume_unwind(panic))
    })
}

impl Drop for PgConn {
    /// Closing the connection talks to the server: off any runtime's thread too.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = off_runtime(move || drop(client));
        }
    }
}

impl Conn {
    /// Runs `body` in one write transaction and commits it. On PostgreSQL a transaction that
    /// cannot be serialized with concurrent ones, or that lost its connection before its commit,
    /// is rolled back and run again: `body` must do nothing but SQL through its `Tx`.
    pub(crate) fn write<T: Send>(
        &mut self,
        body: impl FnMut(&mut Tx<'_>) -> Result<T, LedgerError> + Send,
    ) -> Result<T, LedgerError> {
        self.write_with(None, body)
    }

    /// [`Conn::write`], one at a time among every connection passing `key`: PostgreSQL runs the
    /// body under a session-level advisory lock on `key` taken before the transaction begins
    /// (SQLite has one writer at a time anyway). For writes that all touch the same rows (a
    /// wallet's pending payout): serializable transactions would make them conflict, and retry,
    /// or deadlock on each other's rows.
    pub(crate) fn write_exclusive<T: Send>(
        &mut self,
        key: i64,
        body: impl FnMut(&mut Tx<'_>) -> Result<T, LedgerError> + Send,
    ) -> Result<T, LedgerError> {
        self.write_with(Some(key), body)
    }

    fn write_with<T: Send>(
        &mut self,
        exclusive: Option<i64>,
        mut body: impl FnMut(&mut Tx<'_>) -> Result<T, LedgerError> + Send,
    ) -> Result<T, LedgerError> {
        match self {
            Conn::Sqlite(conn) => {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let mut tx = Tx::Sqlite(tx);
                let value = body(&mut tx)?;
                if let Tx::Sqlite(tx) = tx {
                    tx.commit()?;
                }
                Ok(value)
            }
            Conn::Postgres(pg) => off_runtime(|| pg.run(Mode::Write { exclusive }, &mut body))?,
        }
    }

    /// Runs `body` on one snapshot of the store, writing nothing.
    pub(crate) fn read<T: Send>(
        &mut self,
        mut body: impl FnMut(&mut Tx<'_>) -> Result<T, LedgerError> + Send,
    ) -> Result<T, LedgerError> {
        match self {
            // Deferred: a reader never takes the write lock (WAL: it never waits for the writer).
            Conn::Sqlite(conn) => {
                let mut tx = Tx::Sqlite(conn.transaction()?);
                body(&mut tx)
            }
            Conn::Postgres(pg) => off_runtime(|| pg.run(Mode::Read, &mut body))?,
        }
    }
}

impl LedgerError {
    /// Whether the error is a lost PostgreSQL connection, a serialization failure (or a deadlock
    /// PostgreSQL broke by aborting this transaction), or anything else.
    fn failure_kind(&self) -> Kind {
        use postgres::error::SqlState;
        let LedgerError::Postgres(err) = self else {
            return Kind::Other;
        };
        match err.code() {
            Some(code)
                if *code == SqlState::T_R_SERIALIZATION_FAILURE
                    || *code == SqlState::T_R_DEADLOCK_DETECTED =>
            {
                Kind::Serialization
            }
            // The server is shutting down or starting, or the connection failed.
            Some(code)
                if *code == SqlState::ADMIN_SHUTDOWN
                    || *code == SqlState::CRASH_SHUTDOWN
                    || *code == SqlState::CANNOT_CONNECT_NOW
                    || code.code().starts_with("08") =>
            {
                Kind::Lost
            }
            Some(_) => Kind::Other,
            // No SQLSTATE: the connection itself (closed, refused, reset, timed out).
            None if err.is_closed() || err.source().is_some_and(|s| s.is::<std::io::Error>()) => {
                Kind::Lost
            }
            None => Kind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use sd_tests::postgres::Postgres;

    /// What a test needs to open connections to one store again and again.
    enum Store {
        Sqlite(std::path::PathBuf),
        Postgres(String),
    }

    impl Store {
        fn connect(&self) -> Conn {
            match self {
                Store::Sqlite(path) => {
                    let conn = rusqlite::Connection::open(path).expect("open SQLite");
                    conn.busy_timeout(Duration::from_secs(30))
                        .expect("busy timeout");
                    Conn::Sqlite(conn)
                }
                Store::Postgres(url) => Conn::Postgres(Box::new(
                    PgConn::connect(url.parse().expect("a URL"), tls(None).expect("TLS"))
                        .expect("connect to PostgreSQL"),
                )),
            }
        }
    }

    /// Both stores, each with `schema` applied (PostgreSQL's only when it is installed; it says
    /// so when not). The cluster and the folder live as long as the returned guards.
    fn stores(test: &str, schema: &str) -> (Vec<Store>, Option<Postgres>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("ledger.sqlite");
        rusqlite::Connection::open(&file)
            .and_then(|conn| conn.execute_batch(schema))
            .expect("the schema on SQLite");
        let mut stores = vec![Store::Sqlite(file)];
        let postgres = Postgres::start(&format!("{test} on PostgreSQL (SQLite ran)"));
        if let Some(postgres) = &postgres {
            postgres.create_database("db");
            let applied = postgres.psql("db", schema);
            assert!(applied.ok, "the schema on PostgreSQL: {}", applied.stderr);
            stores.push(Store::Postgres(postgres.url("db")));
        }
        (stores, postgres, dir)
    }

    #[test]
    fn values_round_trip_on_both_stores() {
        let schema =
            "CREATE TABLE t (id BIGINT PRIMARY KEY, r DOUBLE PRECISION, s TEXT, n BIGINT, \
                      CHECK (id <> 0));";
        let (stores, _postgres, _dir) = stores("values_round_trip_on_both_stores", schema);
        for store in &stores {
            let mut conn = store.connect();
            let values = vec![
                Value::Int(i64::MIN),
                Value::Real(0.25),
                Value::Text("it's ?1 \u{e9}".into()),
                Value::Null,
            ];
            let read = conn
                .write(|tx| {
                    let changed = tx.execute(
                        "INSERT INTO t (id, r, s, n) VALUES (?1, ?2, ?3, ?4)",
                        &values,
                    )?;
                    assert_eq!(changed, 1);
                    tx.query(
                        "SELECT id, r, s, n FROM t WHERE id = ?1 AND s = ?2",
                        &[Value::Int(i64::MIN), values[2].clone()],
                    )
                })
                .expect("write and read");
            assert_eq!(read, vec![Row(values.clone())], "{conn:?}");
            // A refused statement is an error, and rolls its transaction back.
            let refused = conn.write(|tx| {
                tx.execute("INSERT INTO t (id) VALUES (?1)", &[Value::Int(5)])?;
                tx.execute("INSERT INTO t (id) VALUES (?1)", &[Value::Int(0)])
            });
            assert!(refused.is_err(), "{conn:?}");
            let count = conn
                .write(|tx| tx.query_opt("SELECT count(*) FROM t", &[]))
                .expect("count")
                .expect("a row");
            assert_eq!(count.int(0).ok(), Some(1), "{conn:?}");
            if let Conn::Postgres(_) = conn {
                // A float bound to an integer column is refused, not written as its bits.
                let mismatched = conn
                    .write(|tx| tx.execute("INSERT INTO t (id) VALUES (?1)", &[Value::Real(0.5)]));
                assert!(mismatched.is_err());
                // A body that swallows a failed statement still fails: PostgreSQL rolled the
                // whole transaction back, the statement before it included.
                let swallowed = conn.write(|tx| {
                    tx.execute("INSERT INTO t (id) VALUES (?1)", &[Value::Int(7)])?;
                    let _ = tx.execute("INSERT INTO t (id) VALUES (?1)", &[Value::Int(0)]);
                    Ok(())
                });
                assert!(
                    matches!(swallowed, Err(LedgerError::TransactionAborted { .. })),
                    "{swallowed:?}"
                );
                let count = conn
                    .write(|tx| tx.query_opt("SELECT count(*) FROM t", &[]))
                    .expect("count")
                    .expect("a row");
                assert_eq!(count.int(0).ok(), Some(1));
            }
        }
    }

    /// Four writers on their own connections add to one counter by reading it and writing it back:
    /// without serializable writes some additions are lost.
    #[test]
    fn concurrent_read_modify_writes_lose_nothing_on_both_stores() {
        const WRITERS: i64 = 4;
        const ADDS: i64 = 40;
        let schema = "CREATE TABLE counter (id BIGINT PRIMARY KEY, n BIGINT NOT NULL); \
                      INSERT INTO counter (id, n) VALUES (1, 0);";
        let (stores, _postgres, _dir) = stores(
            "concurrent_read_modify_writes_lose_nothing_on_both_stores",
            schema,
        );
        for store in &stores {
            std::thread::scope(|scope| {
                for writer in 0..WRITERS {
                    let mut conn = store.connect();
                    std::thread::Builder::new()
                        .name(format!("writer-{writer}"))
                        .spawn_scoped(scope, move || {
                            for _ in 0..ADDS {
                                conn.write(|tx| {
                                    let n = tx
                                        .query_opt("SELECT n FROM counter WHERE id = 1", &[])?
                                        .map_or(Ok(-1), |row| row.int(0))?;
                                    tx.execute(
                                        "UPDATE counter SET n = ?1 WHERE id = 1",
                                        &[Value::Int(n + 1)],
                                    )
                                })
                                .expect("an addition");
                            }
                        })
                        .expect("spawn a writer");
                }
            });
            let mut conn = store.connect();
            let total = conn
                .write(|tx| tx.query_opt("SELECT n FROM counter WHERE id = 1", &[]))
                .expect("read the counter")
                .expect("a row");
            assert_eq!(total.int(0).ok(), Some(WRITERS * ADDS), "{conn:?}");
        }
    }

    /// A body that panics under the exclusive write lock does not leave the lock held by its
    /// connection, which lives on (a poisoned mutex keeps it): another connection takes it.
    #[test]
    fn a_panic_under_the_write_lock_releases_it() {
        const KEY: i64 = 42;
        let schema = "CREATE TABLE t (id BIGINT PRIMARY KEY);";
        let (stores, _postgres, _dir) = stores("a_panic_under_the_write_lock_releases_it", schema);
        for store in &stores {
            let mut first = store.connect();
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                first.write_exclusive(KEY, |tx| {
                    tx.execute("INSERT INTO t (id) VALUES (1)", &[])?;
                    panic!("a bug in a body");
                    #[allow(unreachable_code)]
                    Ok(())
                })
            }));
            assert!(panicked.is_err());
            let (sender, receiver) = std::sync::mpsc::sync_channel(1);
            let mut second = store.connect();
            let waiter = std::thread::Builder::new()
                .name("second-writer".to_owned())
                .spawn(move || {
                    let wrote = second.write_exclusive(KEY, |tx| {
                        tx.execute("INSERT INTO t (id) VALUES (2)", &[])
                    });
                    let _ = sender.send(wrote.map_err(|err| err.to_string()));
                })
                .expect("spawn");
            let wrote = receiver
                .recv_timeout(Duration::from_secs(20))
                .expect("the second writer waited for a lock nobody would release");
            assert_eq!(wrote, Ok(1), "{first:?}");
            waiter.join().expect("the second writer");
            drop(first);
        }
    }

    #[test]
    fn placeholders_become_postgres_ones_outside_quotes() {
        assert_eq!(
            postgres_placeholders("SELECT ?1, '?2', \"a?3\", ?10 WHERE x = ?2"),
            "SELECT $1, '?2', \"a?3\", $10 WHERE x = $2"
        );
        assert!(matches!(
            postgres_placeholders("SELECT 1"),
            Cow::Borrowed(_)
        ));
        // Comments are left alone, apostrophes in them included.
        assert_eq!(
            postgres_placeholders("SELECT ?1 -- the wallet's ?2\n, ?2 /* it's ?3 */ , ?3"),
            "SELECT $1 -- the wallet's ?2\n, $2 /* it's ?3 */ , $3"
        );
        // A quote doubled inside a string ends and reopens it: still inside.
        assert_eq!(
            postgres_placeholders("SELECT 'it''s ?1', ?1"),
            "SELECT 'it''s ?1', $1"
        );
    }

    #[test]
    fn rows_read_what_they_hold_and_refuse_the_rest() {
        let row = Row(vec![
            Value::Int(i64::MIN),
            Value::Null,
            Value::Text("x".into()),
            Value::Real(0.5),
        ]);
        assert_eq!(row.int(0).ok(), Some(i64::MIN));
        assert_eq!(row.opt_int(1).ok(), Some(None));
        assert!(row.int(1).is_err());
        assert_eq!(row.text(2).ok(), Some("x"));
        assert!(row.int(2).is_err());
        assert_eq!(row.opt_real(3).ok(), Some(Some(0.5)));
        assert_eq!(row.opt_real(0).ok(), Some(Some(i64::MIN as f64)));
        assert!(row.text(4).is_err());
    }
}
