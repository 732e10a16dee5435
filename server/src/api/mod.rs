//! `api`: the upload API (SPEC section 9), where trust starts. The browser asks it for presigned
//! PUT URLs, each scoped to one key, one content type and one byte count, and proves which wallet
//! it is by signing the request.
//!
//! [`app`] builds the router, bound to no port (tests drive it with `oneshot`); [`serve`] binds it
//! to an address and stops gracefully on SIGTERM or Ctrl-C. Every error is one [`AppError`].

mod error;
#[cfg(test)]
mod tests;
mod uploads;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Json, Router};
use sd_ledger::Ledger;

use error::AppError;

use crate::args::ApiArgs;
use crate::aws::Clients;

/// A request body over this is refused before it is parsed (a real one is well under 2 KB).
const MAX_BODY_BYTES: usize = 16 * 1024;

/// What the API is configured with.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub raw_bucket: String,
    /// How long a presigned URL stays good.
    pub url_ttl: Duration,
    /// `issuedAt` may be this far from the server's clock, either way (SPEC: 5 minutes).
    pub max_clock_skew: Duration,
    /// Caps per part (SPEC: video 64 MB, each JSON part 1 MB by default).
    pub max_video_bytes: u64,
    pub max_json_bytes: u64,
}

/// What every request handler shares.
pub struct AppState {
    pub s3: aws_sdk_s3::Client,
    pub ledger: Arc<Mutex<Ledger>>,
    pub config: ApiConfig,
    /// The server's clock (tests set their own).
    pub now: Box<dyn Fn() -> SystemTime + Send + Sync>,
}

/// The router, bound to no port.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/uploads", post(uploads::create_uploads))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Alive: the process answers. (Readiness, with the bucket and the ledger, comes with `/readyz`.)
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn not_found() -> AppError {
    AppError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint",
    )
}

/// `scale-diffusion-server api`: serves [`app`] on `--listen` until SIGTERM or Ctrl-C, then lets
/// the requests in flight finish.
pub async fn serve(clients: Clients, args: ApiArgs) -> anyhow::Result<()> {
    let ledger = crate::open_ledger(&args.ledger.ledger)?;
    let state = Arc::new(AppState {
        s3: clients.s3,
        ledger: Arc::new(Mutex::new(ledger)),
        config: ApiConfig {
            raw_bucket: args.resources.raw_bucket.clone(),
            url_ttl: args.url_ttl,
            max_clock_skew: Duration::from_secs(5 * 60),
            max_video_bytes: args.max_video_bytes,
            max_json_bytes: args.max_json_bytes,
        },
        now: Box::new(SystemTime::now),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr().context("the listening address")?;
    tracing::info!(%address, raw_bucket = %args.resources.raw_bucket, "upload API listening");
    println!("upload API on http://{address}");
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(crate::worker::wait_for_termination())
    .await
    .context("the upload API stopped")?;
    tracing::info!("upload API stopped");
    Ok(())
}
