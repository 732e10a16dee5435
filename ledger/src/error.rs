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

    /// A negative per-segment rate.
    #[error("the rate per segment must not be negative, got {rate}")]
    NegativeRate { rate: Lamports },

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

    /// A row the ledger wrote reads back as something it never writes (edited by hand?).
    #[error("ledger row is not what the ledger writes: {0}")]
    Corrupt(String),
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
