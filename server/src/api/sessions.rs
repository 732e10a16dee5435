//! `GET /v1/sessions/{wallet}/{sessionId}`: where a contributor's session is, so that they see
//! what happened to their drive: waiting for parts, processing, done (segments passed and failed,
//! lamports earned), rejected (with its reason), or failed on our side (retried).
//!
//! No wallet proof: what it answers (states, segment counts, lamports) is what the payouts make
//! public on chain anyway, it holds no secret and changes nothing, and asking the wallet to sign
//! on every poll would put a signing prompt in front of the player every few seconds. A system
//! error's text is never answered (it names buckets and paths): only that it is being retried.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use sd_core::SessionStatus;
use sd_ledger::IntakeState;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{AppError, ErrorBody, ErrorCode};
use super::AppState;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionStatusResponse {
    pub wallet: String,
    pub session_id: String,
    pub state: SessionState,
    /// Segments cut from the session (done sessions; 0 otherwise).
    pub segments_passed: u64,
    /// Segments that failed a quality check (done sessions; 0 otherwise): not paid.
    pub segments_failed: u64,
    /// What the session's passed segments earn at the ledger's rate.
    pub lamports_earned: i64,
    /// Why a rejected session was rejected.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reject: Option<RejectReason>,
    /// Why each failed segment of a done session failed: every check it failed, with its reason
    /// (a `duplicate` names the earlier session it repeats), and `reviewer_override` when a
    /// reviewer failed it. A segment a reviewer passed is not listed. Empty otherwise.
    #[serde(default)]
    pub failed_checks: Vec<FailedCheck>,
}

/// One check one segment failed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailedCheck {
    /// 1-based segment number.
    pub segment: usize,
    /// The check's name (`blur`, `duplicate`, ...; docs/QUALITY.md).
    pub check: String,
    pub reason: String,
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Some parts have arrived, not all five yet.
    WaitingForParts,
    /// All five are in; the pipeline is working on it.
    Processing,
    /// Processed: its segments passed and failed, and what the passed ones earn.
    Done,
    /// Not usable: `reject` says why. Nothing is paid.
    Rejected,
    /// Processing failed on our side; it is retried.
    Failed,
}

/// Why a session was rejected: a stable code of the pipeline's and one sentence.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectReason {
    pub code: String,
    pub message: String,
}

/// Where a contributor's session is. No wallet proof: see the module's documentation.
#[utoipa::path(
    get,
    path = "/v1/sessions/{wallet}/{sessionId}",
    tag = "sessions",
    params(
        ("wallet" = String, Path, pattern = "^[1-9A-HJ-NP-Za-km-z]{32,44}$",
            description = "The contributor's wallet (base58 ed25519 public key)"),
        ("sessionId" = String, Path, pattern = "^session_[0-9]+_[A-Za-z0-9]+$", max_length = 96,
            description = "`session_<epoch ms>_<letters and digits>`"),
    ),
    responses(
        (status = 200, description = "Where the session is", body = SessionStatusResponse),
        (status = 400, description = "`invalid_wallet` or `invalid_session_id`", body = ErrorBody),
        (status = 404, description = "`session_not_found`: no part of this session has reached the pipeline", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many requests from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 500, description = "`internal_error`", body = ErrorBody),
    )
)]
pub async fn session_status(
    State(state): State<Arc<AppState>>,
    Path((wallet, session)): Path<(String, String)>,
) -> Result<Json<SessionStatusResponse>, AppError> {
    let wallet = super::parse_wallet(&wallet)?;
    let session = super::parse_session_id(&session)?;
    let ledger = Arc::clone(&state.ledger);
    let (w, s) = (wallet.to_string(), session.to_string());
    let (intake, record, rate, failed) = tokio::task::spawn_blocking(move || {
        let ledger = ledger
            .lock()
            .map_err(|_| AppError::internal("ledger", "the ledger's lock was poisoned"))?;
        let read = |err| AppError::internal("cannot read the ledger", err);
        Ok::<_, AppError>((
            ledger.intake(&w, &s).map_err(read)?,
            ledger.session(&w, &s).map_err(read)?,
            ledger.rate().map_err(read)?,
            ledger.failed_checks(&w, &s).map_err(read)?,
        ))
    })
    .await
    .map_err(|err| AppError::internal("the ledger thread failed", err))??;

    let in_flight = match intake.as_ref().map(|row| row.state) {
        Some(IntakeState::Waiting) => Some(SessionState::WaitingForParts),
        Some(IntakeState::Processing) => Some(SessionState::Processing),
        Some(IntakeState::Failed) => Some(SessionState::Failed),
        Some(IntakeState::Done | IntakeState::Rejected) | None => None,
    };
    let mut response = SessionStatusResponse {
        wallet: wallet.to_string(),
        session_id: session.to_string(),
        state: SessionState::WaitingForParts,
        segments_passed: 0,
        segments_failed: 0,
        lamports_earned: 0,
        reject: None,
        failed_checks: Vec::new(),
    };
    match (in_flight, record) {
        (Some(state), _) => response.state = state,
        (None, Some(record)) => match record.status {
            SessionStatus::Accepted => {
                response.state = SessionState::Done;
                response.segments_passed = record.valid_segments as u64;
                response.segments_failed = (record.segments - record.valid_segments) as u64;
                response.lamports_earned = rate
                    .map_or(0, |rate| rate.0)
                    .saturating_mul(record.valid_segments as i64);
                response.failed_checks = failed
                    .into_iter()
                    .map(|(segment, check, reason)| FailedCheck {
                        segment,
                        check,
                        reason,
                    })
                    .collect();
            }
            SessionStatus::Rejected => {
                response.state = SessionState::Rejected;
                response.reject = Some(RejectReason {
                    code: record.reject_code.unwrap_or_default(),
                    message: record.reject_message.unwrap_or_default(),
                });
            }
        },
        (None, None) => {
            return Err(AppError::new(
                ErrorCode::SessionNotFound,
                "no part of this session has reached the pipeline yet",
            ))
        }
    }
    Ok(Json(response))
}
