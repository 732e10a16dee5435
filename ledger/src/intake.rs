//! The server worker's intake (the `intake` table): one row per session the workers have seen,
//! holding what must outlive a worker: when the session was first seen, who processes it under
//! which lease, what its last completed processing was made from, and the system errors since its
//! last success. See `docs/LEDGER.md` ("Worker intake and leases").
//!
//! S3 events reach the workers through SQS at least once: duplicated, late, or delivered to two
//! workers at once. The lease makes one worker at a time process a session, and its fencing token
//! makes a worker whose lease was taken over unable to write: [`Ledger::finish_session`] records
//! the session and ends the lease in one transaction, or writes nothing.
//!
//! Every time is epoch milliseconds passed in by the caller; the ledger never reads the clock, so
//! that tests can play out expiry exactly. Workers on several hosts each pass their own clock:
//! the fencing token, not the clocks, keeps two of them from both writing; a skew only moves when
//! an expired lease may be taken over.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use sd_core::{Lamports, SessionRecord, SessionStatus};

use crate::db::{params, Row, Tx};
use crate::error::LedgerError;
use crate::record::{check_record_call, log_recorded, record_in, RecordedSession};
use crate::store::Ledger;

/// Characters of an error's text kept in `last_error`: enough for a chain of causes, bounded so a
/// runaway message (a whole response body) cannot bloat the ledger.
const MAX_ERROR_CHARS: usize = 2_000;

/// Where a session is in the worker's intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntakeState {
    /// Seen, and nobody is processing it: parts are still missing, or a worker gave it back.
    Waiting,
    /// A worker holds its lease (which may have expired: then the next acquire takes it over).
    Processing,
    /// The last completed processing recorded it accepted.
    Done,
    /// The last completed processing recorded it rejected (a bad bundle, or parts still missing
    /// after the timeout).
    Rejected,
    /// The last attempt hit a system error; redelivery retries it, and after the queue's limit
    /// its event sits in the dead-letter queue.
    Failed,
}

impl IntakeState {
    /// Every state, in the order `status` shows them.
    pub const ALL: [IntakeState; 5] = [
        IntakeState::Waiting,
        IntakeState::Processing,
        IntakeState::Done,
        IntakeState::Rejected,
        IntakeState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IntakeState::Waiting => "waiting",
            IntakeState::Processing => "processing",
            IntakeState::Done => "done",
            IntakeState::Rejected => "rejected",
            IntakeState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<IntakeState> {
        IntakeState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
    }
}

impl fmt::Display for IntakeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One session's intake row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntakeRow {
    pub wallet: String,
    pub session_id: String,
    /// When a worker first saw the session (epoch ms); never moved. The timeout for missing parts
    /// counts from it, across worker restarts.
    pub first_seen_ms: i64,
    pub state: IntakeState,
    /// The worker's fingerprint of the parts (keys and ETags) of the last completed processing;
    /// `None` until one completes.
    pub parts_fingerprint: Option<String>,
    /// Who holds the lease (`Some` exactly when processing).
    pub lease_holder: Option<String>,
    /// The fencing token: the number of leases ever acquired on the session.
    pub lease_token: u64,
    pub lease_expires_ms: Option<i64>,
    /// System errors since the last completed processing.
    pub failures: u32,
    /// The latest system error's text; cleared with `failures` by a completed processing.
    pub last_error: Option<String>,
    pub updated_ms: i64,
}

/// A worker's hold on one session, from [`Ledger::acquire_lease`]. Writes under it succeed only
/// while the session's fencing token is still `token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub wallet: String,
    pub session_id: String,
    pub holder: String,
    /// The fencing token: one more than the previous lease's; a later acquire moves it on and
    /// this lease is lost.
    pub token: u64,
    /// When the lease expires unless renewed (epoch ms), as acquired: [`Ledger::renew_lease`]
    /// moves the ledger's expiry, not this copy.
    pub expires_ms: i64,
    /// The state the session was in before this acquire (`Processing` when an expired lease was
    /// taken over).
    pub previous_state: IntakeState,
    /// The fingerprint of the last completed processing when the lease was acquired: parts with
    /// this fingerprint were already recorded, so the worker can give the session back unchanged
    /// (`release_lease(.., previous_state)`) instead of processing it twice.
    pub parts_fingerprint: Option<String>,
}

const INTAKE_COLUMNS: &str = "wallet, session_id, first_seen_ms, state, parts_fingerprint, \
     lease_holder, lease_token, lease_expires_ms, failures, last_error, updated_ms";

fn parse_state(text: &str) -> Result<IntakeState, LedgerError> {
    IntakeState::parse(text).ok_or_else(|| LedgerError::Corrupt(format!("intake state {text:?}")))
}

/// Reads a row selected with [`INTAKE_COLUMNS`].
fn intake_row(row: &Row) -> Result<IntakeRow, LedgerError> {
    Ok(IntakeRow {
        wallet: row.string(0)?,
        session_id: row.string(1)?,
        first_seen_ms: row.int(2)?,
        state: parse_state(row.text(3)?)?,
        parts_fingerprint: row.opt_string(4)?,
        lease_holder: row.opt_string(5)?,
        lease_token: row.count(6)?,
        lease_expires_ms: row.opt_int(7)?,
        failures: row.count(8)?,
        last_error: row.opt_string(9)?,
        updated_ms: row.int(10)?,
    })
}

fn find_intake(
    tx: &mut Tx<'_>,
    wallet: &str,
    session_id: &str,
) -> Result<Option<IntakeRow>, LedgerError> {
    tx.query_opt(
        &format!("SELECT {INTAKE_COLUMNS} FROM intake WHERE wallet = ?1 AND session_id = ?2"),
        params![wallet, session_id],
    )?
    .as_ref()
    .map(intake_row)
    .transpose()
}

/// Inserts the session's row as `waiting`, first seen `now_ms`, unless it exists.
fn insert_seen(
    tx: &mut Tx<'_>,
    wallet: &str,
    session_id: &str,
    now_ms: i64,
) -> Result<(), LedgerError> {
    tx.execute(
        "INSERT INTO intake (wallet, session_id, first_seen_ms, state, updated_ms) \
         VALUES (?1, ?2, ?3, 'waiting', ?3) ON CONFLICT (wallet, session_id) DO NOTHING",
        params![wallet, session_id, now_ms],
    )?;
    Ok(())
}

/// The session's row, when `lease` is still the lease on it (same token and holder, not ended);
/// `LeaseLost` otherwise. `now_ms`: also refuse a lease that expired at `now_ms`.
fn held_row(tx: &mut Tx<'_>, lease: &Lease, now_ms: Option<i64>) -> Result<IntakeRow, LedgerError> {
    let row = find_intake(tx, &lease.wallet, &lease.session_id)?;
    match row {
        Some(row)
            if row.lease_token == lease.token
                && row.lease_holder.as_deref() == Some(lease.holder.as_str())
                && now_ms.is_none_or(|now| row.lease_expires_ms.is_some_and(|exp| exp > now)) =>
        {
            Ok(row)
        }
        _ => Err(lease_lost(lease)),
    }
}

fn lease_lost(lease: &Lease) -> LedgerError {
    LedgerError::LeaseLost {
        wallet: lease.wallet.clone(),
        session_id: lease.session_id.clone(),
    }
}

fn check_session(wallet: &str, session_id: &str) -> Result<(), LedgerError> {
    for (text, what) in [(wallet, "a wallet"), (session_id, "a session id")] {
        if text.is_empty() {
            return Err(LedgerError::EmptyText { what });
        }
    }
    Ok(())
}

/// `now_ms + ttl_ms`, for a positive `ttl_ms`.
fn expiry(now_ms: i64, ttl_ms: i64) -> Result<i64, LedgerError> {
    if ttl_ms <= 0 {
        return Err(LedgerError::InvalidDuration {
            what: "a lease's time to live",
            ms: ttl_ms,
        });
    }
    now_ms
        .checked_add(ttl_ms)
        .ok_or_else(|| LedgerError::overflow(format!("lease expiry {now_ms} + {ttl_ms} ms")))
}

impl Ledger {
    /// Notes that a worker saw an event of the session: creates its row as `waiting`, first seen
    /// `now_ms`, unless it exists (a row is never reset: the timeout for missing parts counts from
    /// the first event, across restarts and duplicate deliveries). Returns the row.
    pub fn note_seen(
        &mut self,
        wallet: &str,
        session_id: &str,
        now_ms: i64,
    ) -> Result<IntakeRow, LedgerError> {
        check_session(wallet, session_id)?;
        self.write(|tx| {
            insert_seen(tx, wallet, session_id, now_ms)?;
            find_intake(tx, wallet, session_id)?
                .ok_or_else(|| LedgerError::Corrupt(format!("intake of {wallet}/{session_id}")))
        })
    }

    /// Takes the session's lease for `holder` until `now_ms + ttl_ms`, in one transaction: when
    /// nobody holds it, the lease expired (`lease_expires_ms <= now_ms`), or `holder` holds it
    /// already (a restarted worker with the same id takes its session back; its earlier lease is
    /// lost). The session becomes `processing` and the fencing token moves on by one. `None` when
    /// another holder's lease is still running. Creates the row (first seen `now_ms`) if needed.
    ///
    /// `holder` names one worker task (e.g. host, pid and slot): two tasks sharing a name would
    /// take each other's leases.
    pub fn acquire_lease(
        &mut self,
        wallet: &str,
        session_id: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, LedgerError> {
        check_session(wallet, session_id)?;
        if holder.trim().is_empty() {
            return Err(LedgerError::EmptyText {
                what: "a lease holder",
            });
        }
        let expires_ms = expiry(now_ms, ttl_ms)?;
        let acquired = self.write(|tx| {
            insert_seen(tx, wallet, session_id, now_ms)?;
            let before = find_intake(tx, wallet, session_id)?
                .ok_or_else(|| LedgerError::Corrupt(format!("intake of {wallet}/{session_id}")))?;
            if let (Some(other), Some(until)) = (&before.lease_holder, before.lease_expires_ms) {
                if other != holder && until > now_ms {
                    return Ok(Err((other.clone(), until)));
                }
            }
            let token: u64 = tx
                .query_one(
                    "UPDATE intake SET state = 'processing', lease_holder = ?3, \
                         lease_token = lease_token + 1, lease_expires_ms = ?4, updated_ms = ?5 \
                     WHERE wallet = ?1 AND session_id = ?2 RETURNING lease_token",
                    params![wallet, session_id, holder, expires_ms, now_ms],
                )?
                .count(0)?;
            Ok(Ok((token, before)))
        })?;
        let (token, before) = match acquired {
            Ok(acquired) => acquired,
            Err((other, until)) => {
                tracing::debug!(
                    wallet,
                    session_id,
                    holder,
                    held_by = %other,
                    until_ms = until,
                    "lease busy"
                );
                return Ok(None);
            }
        };
        tracing::debug!(
            wallet,
            session_id,
            holder,
            token,
            expires_ms,
            previous_state = %before.state,
            "lease acquired"
        );
        Ok(Some(Lease {
            wallet: wallet.to_owned(),
            session_id: session_id.to_owned(),
            holder: holder.to_owned(),
            token,
            expires_ms,
            previous_state: before.state,
            parts_fingerprint: before.parts_fingerprint,
        }))
    }

    /// Extends a held lease to `now_ms + ttl_ms` (the worker's heartbeat). `false` when the lease
    /// is lost (taken over, ended, or expired at `now_ms`): the worker must stop, and write
    /// nothing more for the session.
    pub fn renew_lease(
        &mut self,
        lease: &Lease,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, LedgerError> {
        let expires_ms = expiry(now_ms, ttl_ms)?;
        let renewed = self.write(|tx| {
            tx.execute(
                "UPDATE intake SET lease_expires_ms = ?5, updated_ms = ?6 \
                 WHERE wallet = ?1 AND session_id = ?2 AND lease_token = ?3 \
                   AND lease_holder = ?4 AND lease_expires_ms > ?6",
                params![
                    &lease.wallet,
                    &lease.session_id,
                    lease.token,
                    &lease.holder,
                    expires_ms,
                    now_ms
                ],
            )
        })?;
        if renewed == 0 {
            tracing::warn!(
                wallet = %lease.wallet,
                session_id = %lease.session_id,
                holder = %lease.holder,
                token = lease.token,
                "lease lost: not renewed"
            );
        }
        Ok(renewed == 1)
    }

    /// Gives the session back without recording it: `waiting` (parts still missing, or the
    /// worker is stopping), or `done` / `rejected` when the parts are unchanged since the last
    /// completed processing (the worker compared [`Lease::parts_fingerprint`]; pass
    /// [`Lease::previous_state`]). `false` when the lease was already taken over or ended; then
    /// nothing is written. An expired lease nobody took over can still be given back.
    pub fn release_lease(
        &mut self,
        lease: &Lease,
        state_after: IntakeState,
        now_ms: i64,
    ) -> Result<bool, LedgerError> {
        let invalid = |why| LedgerError::InvalidRelease {
            wallet: lease.wallet.clone(),
            session_id: lease.session_id.clone(),
            state: state_after.as_str(),
            why,
        };
        match state_after {
            IntakeState::Waiting | IntakeState::Done | IntakeState::Rejected => {}
            IntakeState::Processing => {
                return Err(invalid("a session given back is not being processed"))
            }
            IntakeState::Failed => {
                return Err(invalid(
                    "record a failure with record_failure, with its reason",
                ))
            }
        }
        let released = self.write(|tx| {
            let row = match held_row(tx, lease, None) {
                Ok(row) => row,
                Err(LedgerError::LeaseLost { .. }) => return Ok(false),
                Err(err) => return Err(err),
            };
            if state_after != IntakeState::Waiting && row.parts_fingerprint.is_none() {
                return Err(invalid("no processing of it ever completed"));
            }
            tx.execute(
                "UPDATE intake SET state = ?3, lease_holder = NULL, lease_expires_ms = NULL, \
                     updated_ms = ?4 \
                 WHERE wallet = ?1 AND session_id = ?2",
                params![
                    &lease.wallet,
                    &lease.session_id,
                    state_after.as_str(),
                    now_ms
                ],
            )?;
            Ok(true)
        })?;
        if !released {
            return Ok(false);
        }
        tracing::info!(
            wallet = %lease.wallet,
            session_id = %lease.session_id,
            holder = %lease.holder,
            token = lease.token,
            state = %state_after,
            "lease released"
        );
        Ok(true)
    }

    /// Records a processed session under its lease, in one transaction: checks that `lease` is
    /// still held and not expired at `now_ms` (else [`LedgerError::LeaseLost`] and nothing is
    /// written), does what [`Ledger::record_session`] does (same checks, same errors, same
    /// result), and ends the lease with the session `done` (accepted) or `rejected`, its parts
    /// `fingerprint`, and its failure count cleared.
    ///
    /// A session rejected because parts are still missing after the timeout goes through here too,
    /// with a rejected record naming the missing parts and the fingerprint of the parts present:
    /// the missing part's later upload changes the fingerprint, and the session is processed again.
    #[expect(
        clippy::too_many_arguments,
        reason = "record_session's arguments plus the lease, the parts and the time: one call \
                  because it is one transaction"
    )]
    pub fn finish_session(
        &mut self,
        lease: &Lease,
        record: &SessionRecord,
        rate: Lamports,
        processed_at: &str,
        run_id: &str,
        fingerprint: &str,
        now_ms: i64,
    ) -> Result<RecordedSession, LedgerError> {
        check_record_call(record, rate, processed_at, run_id)?;
        if record.wallet != lease.wallet || record.session_id != lease.session_id {
            return Err(LedgerError::InvalidRecord {
                wallet: record.wallet.clone(),
                session_id: record.session_id.clone(),
                why: format!(
                    "recorded under the lease on {}/{}",
                    lease.wallet, lease.session_id
                ),
            });
        }
        let state = match record.status {
            SessionStatus::Accepted => IntakeState::Done,
            SessionStatus::Rejected => IntakeState::Rejected,
        };
        let recorded = self.write_money(|tx| {
            held_row(tx, lease, Some(now_ms))?;
            let recorded = record_in(tx, record, rate, processed_at, run_id)?;
            tx.execute(
                "UPDATE intake SET state = ?3, parts_fingerprint = ?4, failures = 0, \
                     last_error = NULL, lease_holder = NULL, lease_expires_ms = NULL, \
                     updated_ms = ?5 \
                 WHERE wallet = ?1 AND session_id = ?2",
                params![
                    &lease.wallet,
                    &lease.session_id,
                    state.as_str(),
                    fingerprint,
                    now_ms
                ],
            )?;
            Ok(recorded)
        })?;
        log_recorded(&recorded, run_id);
        tracing::info!(
            wallet = %lease.wallet,
            session_id = %lease.session_id,
            holder = %lease.holder,
            token = lease.token,
            state = %state,
            "session finished"
        );
        Ok(recorded)
    }

    /// Records a system error (S3 unreachable, a full disk: not a bad bundle, which is a rejected
    /// record) under the lease and ends it: the session becomes `failed`, `failures` goes up by
    /// one and `last_error` keeps `error` (its first 2 000 characters). Returns the new count.
    /// [`LedgerError::LeaseLost`] when the lease was taken over or ended (nothing is written); an
    /// expired lease nobody took over still records its failure.
    pub fn record_failure(
        &mut self,
        lease: &Lease,
        error: &str,
        now_ms: i64,
    ) -> Result<u32, LedgerError> {
        if error.trim().is_empty() {
            return Err(LedgerError::EmptyText {
                what: "a failure's error",
            });
        }
        let kept: String = error.chars().take(MAX_ERROR_CHARS).collect();
        let failures: u32 = self.write(|tx| {
            held_row(tx, lease, None)?;
            tx.query_one(
                "UPDATE intake SET state = 'failed', failures = failures + 1, last_error = ?3, \
                     lease_holder = NULL, lease_expires_ms = NULL, updated_ms = ?4 \
                 WHERE wallet = ?1 AND session_id = ?2 RETURNING failures",
                params![&lease.wallet, &lease.session_id, &kept, now_ms],
            )?
            .count(0)
        })?;
        tracing::warn!(
            wallet = %lease.wallet,
            session_id = %lease.session_id,
            holder = %lease.holder,
            failures,
            error = %kept,
            "session failed"
        );
        Ok(failures)
    }

    /// The session's intake row, if a worker ever saw it.
    pub fn intake(&self, wallet: &str, session_id: &str) -> Result<Option<IntakeRow>, LedgerError> {
        self.read(|tx| find_intake(tx, wallet, session_id))
    }

    /// How many sessions are in each state; every state is present (0 when none), for `status`.
    pub fn intake_counts(&self) -> Result<BTreeMap<String, u64>, LedgerError> {
        let mut counts: BTreeMap<String, u64> = IntakeState::ALL
            .into_iter()
            .map(|state| (state.as_str().to_owned(), 0))
            .collect();
        let rows =
            self.read(|tx| tx.query("SELECT state, count(*) FROM intake GROUP BY state", &[]))?;
        for row in &rows {
            let state = parse_state(row.text(0)?)?;
            counts.insert(state.as_str().to_owned(), row.count(1)?);
        }
        Ok(counts)
    }

    /// The sessions still `waiting` that were first seen at or before `cutoff_ms` (now minus the
    /// timeout for missing parts), oldest first, as (wallet, session id): the worker's sweep leases
    /// each, lists its parts again, and processes it or rejects it with the missing parts named.
    /// `failed` sessions are not in it: their events are redelivered or in the dead-letter queue.
    pub fn waiting_older_than(&self, cutoff_ms: i64) -> Result<Vec<(String, String)>, LedgerError> {
        self.session_pairs(
            "SELECT wallet, session_id FROM intake \
             WHERE state = 'waiting' AND first_seen_ms <= ?1 \
             ORDER BY first_seen_ms, wallet, session_id",
            cutoff_ms,
        )
    }

    /// The sessions left `processing` under a lease that expired at or before `now_ms`, oldest
    /// lease first: their worker died or stalled. The sweep takes them over (`acquire_lease`
    /// succeeds on an expired lease), so recovery never depends on the event still being in the
    /// queue.
    pub fn expired_leases(&self, now_ms: i64) -> Result<Vec<(String, String)>, LedgerError> {
        self.session_pairs(
            "SELECT wallet, session_id FROM intake \
             WHERE state = 'processing' AND lease_expires_ms <= ?1 \
             ORDER BY lease_expires_ms, wallet, session_id",
            now_ms,
        )
    }

    /// (wallet, session id) of every row of an intake query with one time parameter.
    fn session_pairs(&self, sql: &str, ms: i64) -> Result<Vec<(String, String)>, LedgerError> {
        self.read(|tx| {
            tx.query(sql, params![ms])?
                .iter()
                .map(|row| Ok((row.string(0)?, row.string(1)?)))
                .collect()
        })
    }

    /// Forgets what the last completed processing was made from, so that the next look at the
    /// session processes it again even though its parts did not change: after a reviewer's
    /// override (the published placement must follow the ledger's verdict), or when an override
    /// landed while the session was processing. `false` when the worker has never seen it.
    pub fn forget_fingerprint(
        &mut self,
        wallet: &str,
        session_id: &str,
        now_ms: i64,
    ) -> Result<bool, LedgerError> {
        let changed = self.write(|tx| {
            tx.execute(
                "UPDATE intake SET parts_fingerprint = NULL, updated_ms = ?3 \
                 WHERE wallet = ?1 AND session_id = ?2",
                params![wallet, session_id, now_ms],
            )
        })?;
        Ok(changed > 0)
    }

    /// Counts a system error that happened before any lease was taken (listing the raw bucket,
    /// say): `failures` and `last_error` change, the state and any lease do not. What an operator
    /// sees in `failed_sessions` for a session whose events fail before it can be leased.
    pub fn note_error(
        &mut self,
        wallet: &str,
        session_id: &str,
        error: &str,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        self.write(|tx| {
            tx.execute(
                "UPDATE intake SET failures = failures + 1, last_error = ?3, updated_ms = ?4 \
                 WHERE wallet = ?1 AND session_id = ?2",
                params![wallet, session_id, &error, now_ms],
            )
        })?;
        Ok(())
    }

    /// Sessions with system errors since their last success, most failures first, with the
    /// latest error: what an operator looks at for poison sessions. That is every `failed`
    /// session, and those being retried (or given back) after failing.
    pub fn failed_sessions(&self) -> Result<Vec<IntakeRow>, LedgerError> {
        self.read(|tx| {
            tx.query(
                &format!(
                    "SELECT {INTAKE_COLUMNS} FROM intake WHERE failures > 0 \
                     ORDER BY failures DESC, updated_ms DESC, wallet, session_id"
                ),
                &[],
            )?
            .iter()
            .map(intake_row)
            .collect()
        })
    }
}
