//! `api`: the upload API (SPEC section 9), where trust starts. The browser asks it for presigned
//! PUT URLs, each scoped to one key, one content type and one byte count, and proves which wallet
//! it is by signing the request.
//!
//! [`app`] builds the router, bound to no port (tests drive it with `oneshot`); [`serve`] binds it
//! to an address and stops gracefully on SIGTERM or Ctrl-C. Every error is one [`AppError`].

mod error;
mod limits;
mod openapi;
#[cfg(test)]
mod openapi_tests;
#[cfg(test)]
mod scoping_tests;
mod sessions;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trace_tests;
mod uploads;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, Method};
use axum::routing::{get, post};
use axum::{Json, Router};
use sd_ledger::Ledger;
use serde::{Deserialize, Serialize};
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::ToSchema;

use error::{AppError, ErrorBody, ErrorCode};
pub use openapi::document;

use crate::args::ApiArgs;
use sd_bucket::Clients;

/// A request body over this is refused before it is parsed (a real one is well under 2 KB).
const MAX_BODY_BYTES: usize = 16 * 1024;

/// `/readyz` answers within this, ready or not.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// The game's page origins, allowed to call the API from a browser (CORS).
    pub cors_origins: Vec<HeaderValue>,
}

/// What every request handler shares.
pub struct AppState {
    pub s3: aws_sdk_s3::Client,
    pub ledger: Arc<Mutex<Ledger>>,
    pub config: ApiConfig,
    pub limits: limits::RateLimits,
    /// The server's clock (tests set their own).
    pub now: Box<dyn Fn() -> SystemTime + Send + Sync>,
}

/// The router, bound to no port.
pub fn app(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/v1/uploads", post(uploads::create_uploads))
        .route(
            "/v1/sessions/{wallet}/{session}",
            get(sessions::session_status),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            limits::limit_address,
        ));
    let cors = cors_layer(&state.config.cors_origins);
    Router::new()
        .merge(v1)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(RequestSpan)
                .on_response(RequestSpan)
                // A 5xx is logged once, by `AppError::internal`.
                .on_failure(()),
        )
        .layer(cors)
        .with_state(state)
}

/// A span per request (LangSmith kind `chain`), named by method and route, with its status:
/// the route's template, never a body, a header or a query (no signature, no presigned URL).
/// Health probes (every few seconds from a load balancer) are not traced.
#[derive(Debug, Clone, Copy)]
struct RequestSpan;

impl<B> tower_http::trace::MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> tracing::Span {
        let route = request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or("(no route)", |path| path.as_str());
        if matches!(route, "/healthz" | "/readyz") {
            return tracing::Span::none();
        }
        let name = format!("{} {route}", request.method());
        tracing::info_span!(
            "request",
            otel.name = %name,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            langsmith.span.kind = "chain",
            http.request.method = %request.method(),
            http.route = %route,
            url.path = %request.uri().path(),
            http.response.status_code = tracing::field::Empty,
        )
    }
}

impl<B> tower_http::trace::OnResponse<B> for RequestSpan {
    fn on_response(
        self,
        response: &axum::http::Response<B>,
        _latency: Duration,
        span: &tracing::Span,
    ) {
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// The browser calls the API from the game's page: its origins may (and only they), with the
/// methods and the one request header the API takes.
fn cors_layer(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600))
}

/// The body of `/healthz` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub status: HealthStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// The process answers (`/healthz`).
    Ok,
    /// The ledger and the upload bucket answer (`/readyz`).
    Ready,
}

/// Ready: the ledger answers and the raw bucket is reachable with these credentials.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready to take requests", body = Health),
        (status = 503, description = "`not_ready`: the ledger or the upload bucket is not reachable yet", body = ErrorBody),
    )
)]
async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<Health>, AppError> {
    let not_ready =
        |what: &str| AppError::new(ErrorCode::NotReady, format!("{what} is not reachable yet"));
    let ledger = Arc::clone(&state.ledger);
    let ledger_ok = tokio::task::spawn_blocking(move || {
        ledger
            .lock()
            .map_err(|_| "the ledger's lock was poisoned".to_owned())
            .and_then(|ledger| ledger.rate().map_err(|err| err.to_string()))
    })
    .await;
    match ledger_ok {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => {
            tracing::warn!("readiness: the ledger: {err}");
            return Err(not_ready("the ledger"));
        }
        Err(err) => {
            tracing::warn!("readiness: the ledger thread: {err}");
            return Err(not_ready("the ledger"));
        }
    }
    // A probe answers within its caller's timeout: the SDK's retries against an S3 that refuses
    // connections would take longer than that.
    let bucket = state
        .s3
        .head_bucket()
        .bucket(&state.config.raw_bucket)
        .send();
    match tokio::time::timeout(READINESS_TIMEOUT, bucket).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => {
            tracing::warn!("readiness: the raw bucket: {}", sd_bucket::describe(&err));
            return Err(not_ready("the upload bucket"));
        }
        Err(_) => {
            tracing::warn!("readiness: the raw bucket did not answer in {READINESS_TIMEOUT:?}");
            return Err(not_ready("the upload bucket"));
        }
    }
    Ok(Json(Health {
        status: HealthStatus::Ready,
    }))
}

/// Alive: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process answers", body = Health))
)]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
    })
}

/// A wallet from a request: 400 `invalid_wallet` unless it is a base58 32-byte key.
fn parse_wallet(text: &str) -> Result<sd_core::WalletAddress, AppError> {
    sd_core::WalletAddress::parse(text).map_err(|why| {
        AppError::new(
            ErrorCode::InvalidWallet,
            format!("wallet is not a base58 32-byte public key ({why})"),
        )
    })
}

/// A session id from a request: 400 `invalid_session_id` unless it is `session_<ms>_<alnum>`.
fn parse_session_id(text: &str) -> Result<sd_core::SessionId, AppError> {
    sd_core::SessionId::parse(text).map_err(|why| {
        AppError::new(
            ErrorCode::InvalidSessionId,
            format!("sessionId is not session_<epoch ms>_<letters and digits> ({why})"),
        )
    })
}

async fn not_found() -> AppError {
    AppError::new(ErrorCode::NotFound, "no such endpoint")
}

async fn method_not_allowed() -> AppError {
    AppError::new(
        ErrorCode::MethodNotAllowed,
        "this endpoint does not take this method",
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
            cors_origins: args
                .cors_origin
                .iter()
                .map(|origin| {
                    HeaderValue::from_str(origin)
                        .with_context(|| format!("--cors-origin {origin:?} is not a header value"))
                })
                .collect::<anyhow::Result<_>>()?,
        },
        now: Box::new(SystemTime::now),
        limits: limits::RateLimits::new(args.rate_per_wallet, args.rate_per_address),
    });
    {
        // Idle callers' limiter state goes every minute.
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                state.limits.forget_idle();
            }
        });
    }
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
