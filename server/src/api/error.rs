//! The API's one error type: a status, a stable snake_case code and one sentence, answered as
//! `{"error": {"code": ..., "message": ...}}` (SPEC section 9). Messages are written here, for the
//! caller: no internal path, no SQL, no SDK text, no secret ever reaches a response; what went
//! wrong inside is logged with `tracing` and answered as `internal_error`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Sent as `Retry-After` (429).
    pub retry_after_s: Option<u64>,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// 400: the body is not the request the endpoint takes.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", message)
    }

    /// 401: the wallet's signature does not verify over the request's fields.
    pub fn bad_signature(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "bad_signature", message)
    }

    /// 500, with `what` and `err` logged, never answered.
    pub fn internal(what: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!("{what}: {err}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side; try again in a moment",
        )
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
