//! The API's one error type: a stable snake_case [`ErrorCode`] (which fixes the status) and one
//! sentence, answered as `{"error": {"code": ..., "message": ...}}` (SPEC section 9). Messages are
//! written here, for the caller: no internal path, no SQL, no SDK text, no secret ever reaches a
//! response; what went wrong inside is logged with `tracing` and answered as `internal_error`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What went wrong, as a stable snake_case code; the response's status follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, strum::EnumIter)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not JSON, not the request's shape, or a field is missing or unknown.
    MalformedRequest,
    /// 400: the wallet is not a base58 32-byte ed25519 public key.
    InvalidWallet,
    /// 400: the session id is not `session_<epoch ms>_<letters and digits>`.
    InvalidSessionId,
    /// 400: a part's content type is not the one it must be uploaded with.
    InvalidContentType,
    /// 400: the nonce is not 16 to 64 characters of `[A-Za-z0-9]`.
    InvalidNonce,
    /// 400: `issuedAt` is not RFC 3339 UTC.
    InvalidIssuedAt,
    /// 401: the signature does not verify over the request's fields for this wallet.
    BadSignature,
    /// 401: `issuedAt` is more than 5 minutes from the server's clock.
    StaleRequest,
    /// 404: no such endpoint.
    NotFound,
    /// 404: no part of this session has reached the pipeline.
    SessionNotFound,
    /// 405: the endpoint exists but not with this method.
    MethodNotAllowed,
    /// 409: this wallet already used this nonce.
    NonceReused,
    /// 413: a part is over its size cap.
    PartTooLarge,
    /// 413: the request body itself is too large.
    BodyTooLarge,
    /// 429: too many requests from this wallet or this address (`Retry-After` says when).
    RateLimited,
    /// 500: something went wrong on the server's side.
    InternalError,
    /// 503: the ledger or the upload bucket is not reachable yet.
    NotReady,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            Self::MalformedRequest
            | Self::InvalidWallet
            | Self::InvalidSessionId
            | Self::InvalidContentType
            | Self::InvalidNonce
            | Self::InvalidIssuedAt => StatusCode::BAD_REQUEST,
            Self::BadSignature | Self::StaleRequest => StatusCode::UNAUTHORIZED,
            Self::NotFound | Self::SessionNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NonceReused => StatusCode::CONFLICT,
            Self::PartTooLarge | Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// One sentence for the caller.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    /// Sent as `Retry-After` (429).
    pub retry_after_s: Option<u64>,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// 500, with `what` and `err` logged, never answered.
    pub fn internal(what: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!("{what}: {err}");
        Self::new(
            ErrorCode::InternalError,
            "something went wrong on our side; try again in a moment",
        )
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
