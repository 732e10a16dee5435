//! The payout ledger: processed sessions, their segments and every CLEAN check, reviewer
//! overrides, and the payouts owed to contributors, shared by the CLI, the server and the desktop
//! app, in a SQLite (WAL) file or, for workers on several hosts, a PostgreSQL database. See
//! `docs/LEDGER.md` for the tables and the money rules.
//!
//! - [`Ledger`] opens and migrates the store ([`LedgerLocation`]: a file or a `postgres://` URL)
//!   and is the whole API; every mutating call is one write transaction (SQLite's `IMMEDIATE`,
//!   PostgreSQL's `SERIALIZABLE`, run again on a conflict), written once for both stores
//!   (`db.rs`).
//! - [`Ledger::record_session`] replaces a session's record (an `sd_core::SessionRecord`) and
//!   answers with each segment's effective verdict ([`RecordedSession`], [`SegmentVerdictRow`]).
//! - [`Ledger::override_segment`] appends a reviewer's verdict (an `sd_core::OverrideNote`,
//!   [`OverrideOutcome`]); overrides apply only to the cut (frame range) they were made on.
//! - [`Payout`]s move `pending -> approved -> paid`; the pending one is recomputed from what is due
//!   per segment on every change, approved and paid ones are frozen by SQL triggers. `approve`
//!   can be tied to the amount the approver saw; a transfer signature pays one payout only.
//! - The rate per valid segment is the ledger's ([`Ledger::rate`]): set by the first call that
//!   passes one, a call with another rate is refused ([`LedgerError::RateMismatch`]), and only
//!   [`Ledger::set_rate`] changes it (re-pricing pending earnings, never approved or paid ones).
//! - [`WalletTotals`]: the per-wallet view of the SPEC, derived in SQL.
//! - The server worker's intake ([`IntakeRow`], [`IntakeState`]): when each session was first
//!   seen, a per-session [`Lease`] with a fencing token, and [`Ledger::finish_session`], which
//!   records a session under its lease or writes nothing; times are epoch ms from the caller.
//!
//! - Every segment's perceptual fingerprint and the index that finds earlier segments showing the
//!   same drive ([`Ledger::earlier_segments`]); `record_session` makes each segment's `duplicate`
//!   check again inside its transaction.
//! - The upload API's single-use nonces ([`Ledger::use_nonce`]), kept until they would be stale.
//!
//! Money is integer lamports ([`sd_core::Lamports`]) in Rust and in SQL; SOL is display text.
//!
//! ```
//! use sd_ledger::{Ledger, LedgerError};
//!
//! let mut ledger = Ledger::open_in_memory().unwrap();
//! assert!(ledger.wallet_totals().unwrap().is_empty());
//! let wallet = "Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR";
//! let refused = ledger.approve(wallet, "ops", "2026-02-01T12:00:00Z", None);
//! assert!(matches!(refused, Err(LedgerError::NothingPending { .. })));
//! ```

// Module layering, lowest first: a module uses only modules to its left (`tests/layering.rs`
// checks every `crate::` path against this order). `verdict_rows`, `settings` and `pending` are
// the SQL building blocks (functions on the caller's transaction, no `Ledger` method); the
// modules after them hold the `Ledger` methods and share the blocks without importing each other
// (except `intake` -> `record`: a worker records a session and moves its intake row at once;
// `session_ledger` only calls `Ledger` methods).
//
//   error < db < store < verdict_rows < settings < pending < verdicts < payouts < rate < totals
//   < duplicates < record < intake < session_ledger < nonces < review
mod db;
mod duplicates;
mod error;
mod intake;
mod nonces;
mod payouts;
mod pending;
mod rate;
mod record;
mod review;
mod session_ledger;
mod settings;
mod store;
mod totals;
mod verdict_rows;
mod verdicts;

pub use duplicates::MAX_CANDIDATES;
pub use error::LedgerError;
pub use intake::{IntakeRow, IntakeState, Lease};
pub use pending::{ItemKind, Payout, PayoutItem};
pub use record::{RecordedSession, SessionRow};
pub use review::{AppliedOverride, ReviewError};
pub use store::{Ledger, LedgerLocation, POSTGRES_SCHEMA_VERSION, SCHEMA_VERSION};
pub use totals::WalletTotals;
pub use verdict_rows::SegmentVerdictRow;
pub use verdicts::OverrideOutcome;
