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
use axum::http::StatusCode;
use axum::Json;
use sd_core::{SessionId, SessionStatus, WalletAddress};
use sd_ledger::IntakeState;
use serde::{Deserialize, Serialize};

use super::error::AppError;
use super::AppState;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatusResponse {
    pub wallet: String,
    pub session_id: String,
    /// `waiting_for_parts`, `processing`, `done`, `rejected` or `failed` (retried).
    pub state: String,
    /// Segments cut from the session (done sessions; 0 otherwise).
    pub segments_passed: u64,
    pub segments_failed: u64,
    /// What the session's passed segments earn at the ledger's rate.
    pub lamports_earned: i64,
    /// Why a rejected session was rejected.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reject: Option<RejectReason>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RejectReason {
    pub code: String,
    pub message: String,
}

pub async fn session_status(
    State(state): State<Arc<AppState>>,
    Path((wallet, session)): Path<(String, String)>,
) -> Result<Json<SessionStatusResponse>, AppError> {
    let wallet = WalletAddress::parse(&wallet).map_err(|why| {
        AppError::new(
            StatusCode::BAD_REQUEST,
            "invalid_wallet",
            format!("wallet is not a base58 32-byte public key ({why})"),
        )
    })?;
    let session = SessionId::parse(&session).map_err(|why| {
        AppError::new(
            StatusCode::BAD_REQUEST,
            "invalid_session_id",
            format!("sessionId is not session_<epoch ms>_<letters and digits> ({why})"),
        )
    })?;
    let ledger = Arc::clone(&state.ledger);
    let (w, s) = (wallet.to_string(), session.to_string());
    let (intake, record, rate) = tokio::task::spawn_blocking(move || {
        let ledger = ledger
            .lock()
            .map_err(|_| AppError::internal("ledger", "the ledger's lock was poisoned"))?;
        let read = |err| AppError::internal("cannot read the ledger", err);
        Ok::<_, AppError>((
            ledger.intake(&w, &s).map_err(read)?,
            ledger.session(&w, &s).map_err(read)?,
            ledger.rate().map_err(read)?,
        ))
    })
    .await
    .map_err(|err| AppError::internal("the ledger thread failed", err))??;

    let in_flight = match intake.as_ref().map(|row| row.state) {
        Some(IntakeState::Waiting) => Some("waiting_for_parts"),
        Some(IntakeState::Processing) => Some("processing"),
        Some(IntakeState::Failed) => Some("failed"),
        Some(IntakeState::Done | IntakeState::Rejected) | None => None,
    };
    let mut response = SessionStatusResponse {
        wallet: wallet.to_string(),
        session_id: session.to_string(),
        state: String::new(),
        segments_passed: 0,
        segments_failed: 0,
        lamports_earned: 0,
        reject: None,
    };
    match (in_flight, record) {
        (Some(state), _) => response.state = state.to_owned(),
        (None, Some(record)) => match record.status {
            SessionStatus::Accepted => {
                response.state = "done".to_owned();
                response.segments_passed = record.valid_segments as u64;
                response.segments_failed = (record.segments - record.valid_segments) as u64;
                response.lamports_earned = rate
                    .map_or(0, |rate| rate.0)
                    .saturating_mul(record.valid_segments as i64);
            }
            SessionStatus::Rejected => {
                response.state = "rejected".to_owned();
                response.reject = Some(RejectReason {
                    code: record.reject_code.unwrap_or_default(),
                    message: record.reject_message.unwrap_or_default(),
                });
            }
        },
        (None, None) => {
            return Err(AppError::new(
                StatusCode::NOT_FOUND,
                "session_not_found",
                "no part of this session has reached the pipeline yet",
            ))
        }
    }
    Ok(Json(response))
}
