//! The one error type of the ledger.

use std::path::PathBuf;

use sd_core::{Lamports, PayoutState, SegmentKey};

/// Everything a ledger call can fail with. Each variant's message is one line a person can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// SQLite refused or failed (including a trigger's `RAISE(ABORT, ..)` and a busy database after
    /// the 5 s busy timeout).
    #[error("ledger database: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// PostgreSQL refused or failed (including a trigger's exception, and a transaction that
    /// still could not be serialized after its retries).
    /// (In the message, not a `source`, as above.)
    #[error("ledger database (PostgreSQL): {}", postgres_text(.0))]
    Postgres(postgres::Error),

    /// `open_existing` of a SQLite file that is not there.
    #[error("no ledger at {} (run `scale-diffusion process` first, or pass --ledger)", path.display())]
    NotFound { path: PathBuf },

    /// The PostgreSQL ledger could not be reached (or its URL not read) when opening it.
    /// (The callers name the location in their own context: the URL is not repeated.)
    /// The client's error is in the message, not a `source`: a chain printer (anyhow's `{:#}`)
    /// would say it twice.
    #[error("cannot connect to PostgreSQL: {}", postgres_text(error))]
    PostgresConnect { url: String, error: postgres::Error },

    /// The URL's `sslrootcert` file could not be read as PEM certificates.
    #[error("the ledger's sslrootcert {}: {why}", path.display())]
    TlsRoots { path: PathBuf, why: String },

    /// The PostgreSQL ledger's schema is newer than this program: another host runs a newer
    /// version. Nothing was changed.
    #[error(
        "the ledger's schema is version {found}, newer than this program knows ({known}): \
         upgrade this program; nothing was changed"
    )]
    NewerSchema { found: i64, known: i64 },

    /// A statement failed inside a PostgreSQL transaction, which rolled all of it back: nothing
    /// of it was written, whatever came after.
    #[error("ledger database (PostgreSQL): the transaction was rolled back: {first_error}")]
    TransactionAborted { first_error: String },

    /// The connection to PostgreSQL broke while a write's commit was on its way: whether it was
    /// saved is unknown. Nothing is retried by the ledger; the caller looks (or runs the call
    /// again where that is safe: recording a session replaces it).
    #[error(
        "ledger database (PostgreSQL): the connection was lost while committing ({first_error}); \
         the write may or may not have been saved: check before doing it again"
    )]
    CommitUnknown { first_error: String },

    /// PostgreSQL stayed unreachable for as long as a call waits for it (a minute by default).
    /// Nothing was written.
    #[error("ledger database (PostgreSQL) unreachable: {first_error}; nothing was written")]
    Unreachable { first_error: String },

    /// A write transaction that still could not be serialized with concurrent ones after
    /// `attempts` runs. Nothing was written.
    #[error(
        "ledger database (PostgreSQL): the write conflicted with concurrent ones {attempts} times \
         in a row ({first_error}); nothing was written: try again"
    )]
    NotSerializable { attempts: u32, first_error: String },

    /// A column read as a type it does not hold (a query and its reader disagree: a bug).
    #[error("ledger database: column {index}: {why}")]
    Column { index: usize, why: String },

    /// The schema could not be brought to the latest version (e.g. the file is newer than this
    /// program).
    #[error("ledger schema migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),

    /// `journal_mode=WAL` did not take (e.g. a file system without shared memory).
    #[error("{}: journal mode is {mode:?}, the ledger needs \"wal\"", path.display())]
    NotWal { path: PathBuf, mode: String },

    /// A session record the ledger will not store (a pipeline bug, not a user's bad bundle: a
    /// rejected bundle is recorded as a rejected session).
    #[error("record of {wallet}/{session_id}: {why}")]
    InvalidRecord {
        wallet: String,
        session_id: String,
        why: String,
    },

    /// A per-segment rate that is not positive (the ledger stores rates > 0 only).
    #[error(
        "the rate per segment must be a positive number of lamports, got {rate}; nothing was written"
    )]
    InvalidRate { rate: Lamports },

    /// `record_session` or `override_segment` with a rate other than the ledger's: the ledger
    /// keeps the rate it pays (set by the first call that passed one, or by `set_rate`), so a
    /// command run with another config cannot re-price what is pending. Nothing was written.
    #[error(
        "the ledger pays {ledger} per segment but the config says {config}; nothing was written: \
         use the ledger's rate (payout.lamports_per_segment = {}), or change it explicitly with \
         set_rate (which re-prices pending payouts only)",
        ledger.0
    )]
    RateMismatch { ledger: Lamports, config: Lamports },

    /// A required piece of text (a reason, who did it, a timestamp) was empty.
    #[error("{what} must not be empty")]
    EmptyText { what: &'static str },

    /// An amount would overflow `i64` lamports; nothing was written.
    #[error("amount overflow: {what}; nothing was written")]
    Overflow { what: String },

    /// No current segment matches what was asked for.
    #[error("{reference}: {why}")]
    SegmentNotFound { reference: String, why: String },

    /// The same session id exists under several wallets; the reference must name the wallet.
    #[error(
        "{reference}: session {session_id} exists under {} wallets ({}); give WALLET/{session_id}/segment_NNN",
        wallets.len(),
        wallets.join(", ")
    )]
    AmbiguousSegment {
        reference: String,
        session_id: String,
        wallets: Vec<String>,
    },

    /// `approve` with no pending payout for the wallet.
    #[error("wallet {wallet} has no pending payout to approve")]
    NothingPending { wallet: String },

    /// `approve` of a pending payout that nets zero or less: it stays pending, and later
    /// earnings offset it.
    #[error(
        "payout #{payout_id} of {wallet} nets {amount_lamports}: nothing to pay, it stays pending until later earnings make it positive"
    )]
    NotPayable {
        payout_id: i64,
        wallet: String,
        amount_lamports: Lamports,
    },

    /// `approve` with the amount the approver saw, and the pending payout now holds another
    /// (something was recorded or overridden since it was listed). Nothing was written.
    #[error(
        "payout #{payout_id} of {wallet} is now {actual}, not the {expected} you approved; \
         nothing was written: list it again and approve what it holds now"
    )]
    PendingChanged {
        payout_id: i64,
        wallet: String,
        expected: Lamports,
        actual: Lamports,
    },

    /// No payout has this id.
    #[error("there is no payout #{payout_id}")]
    PayoutNotFound { payout_id: i64 },

    /// `mark_paid` of a payout that is not approved.
    #[error(
        "payout #{payout_id} of {wallet} is {state}: only an approved payout can be marked paid"
    )]
    NotApproved {
        payout_id: i64,
        wallet: String,
        state: PayoutState,
    },

    /// `mark_paid` with text that is not a Solana transaction signature.
    #[error(
        "payout #{payout_id}: {signature:?} is not a Solana transaction signature ({why}); nothing was written"
    )]
    InvalidSignature {
        payout_id: i64,
        signature: String,
        why: String,
    },

    /// `mark_paid` with a transaction signature that already records the payment of another
    /// payout: one transfer pays one payout. Nothing was written.
    #[error(
        "payout #{payout_id}: transaction signature {signature} already records the payment of \
         payout #{paid_payout_id}; one transfer pays one payout, nothing was written: give the \
         signature of the transfer that paid #{payout_id}"
    )]
    SignatureAlreadyUsed {
        payout_id: i64,
        signature: String,
        paid_payout_id: i64,
    },

    /// A ledger of schema version 1 in which several payouts carry one transaction signature:
    /// version 2 refuses that, so the file is left as it is (not upgraded) until a person decides
    /// which payout the transfer paid.
    #[error(
        "{}: payouts {} all carry transaction signature {signature}, but one transfer pays one \
         payout; the ledger was not upgraded (still schema 1, unchanged): find which payout that \
         transfer paid and correct the others by hand before opening it with this version",
        path.as_deref().map_or_else(|| "ledger in memory".to_owned(), |p| p.display().to_string()),
        payout_ids.iter().map(|id| format!("#{id}")).collect::<Vec<_>>().join(", ")
    )]
    SharedSignature {
        path: Option<PathBuf>,
        signature: String,
        payout_ids: Vec<i64>,
    },

    /// A worker's lease on a session is no longer its own: another worker acquired it (the fencing
    /// token moved on), it was given back or ended, or (for `finish_session` and `renew_lease`) it
    /// expired. Nothing was written: whoever holds the session now finishes it, or the next
    /// delivery of its event leases it again.
    #[error(
        "the lease on {wallet}/{session_id} was lost (expired, ended, or taken over by another \
         worker); nothing was written: drop this attempt, the session is processed under its \
         current lease"
    )]
    LeaseLost { wallet: String, session_id: String },

    /// A duration (a lease's time to live) that is not a positive number of milliseconds.
    #[error("{what} must be a positive number of milliseconds, got {ms}")]
    InvalidDuration { what: &'static str, ms: i64 },

    /// `release_lease` to a state a released session cannot be in. Nothing was written.
    #[error("{wallet}/{session_id} cannot be given back as {state}: {why}; nothing was written")]
    InvalidRelease {
        wallet: String,
        session_id: String,
        state: &'static str,
        why: &'static str,
    },

    /// A row the ledger wrote reads back as something it never writes (edited by hand?).
    #[error("ledger row is not what the ledger writes: {0}")]
    Corrupt(String),
}

impl From<postgres::Error> for LedgerError {
    fn from(err: postgres::Error) -> Self {
        LedgerError::Postgres(err)
    }
}

/// A PostgreSQL error with what the server said ("db error" alone says nothing).
fn postgres_text(err: &postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => {
            let mut text = format!(
                "{}: {} (SQLSTATE {})",
                db.severity(),
                db.message(),
                db.code().code()
            );
            if let Some(detail) = db.detail() {
                text += &format!("; {detail}");
            }
            text
        }
        // The client's text holds its cause for some errors, not for others (a TLS handshake's).
        None => {
            let text = err.to_string();
            match std::error::Error::source(err).map(|source| source.to_string()) {
                Some(source) if !text.contains(&source) => format!("{text}: {source}"),
                _ => text,
            }
        }
    }
}

impl LedgerError {
    pub(crate) fn overflow(what: impl Into<String>) -> Self {
        LedgerError::Overflow { what: what.into() }
    }

    pub(crate) fn not_found(key: &SegmentKey, why: impl Into<String>) -> Self {
        LedgerError::SegmentNotFound {
            reference: key.to_string(),
            why: why.into(),
        }
    }
}
