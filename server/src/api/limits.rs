//! Rate limits (SPEC section 9: 429 for too many requests from one wallet or one address), with
//! governor's keyed GCRA limiters: each key gets `per_minute` requests a minute, as a burst or
//! spread out. Keys not seen for a while are dropped by [`RateLimits::forget_idle`], so that the
//! tables hold only recent callers.
//!
//! The address is the TCP peer's. Behind a load balancer every request comes from the balancer:
//! there, rely on the per-wallet limit and the balancer's own per-client limits.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::{AppError, ErrorCode};
use super::AppState;

pub struct RateLimits {
    per_wallet: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
}

impl RateLimits {
    /// Requests a minute allowed per wallet and per client address.
    pub fn new(per_wallet: NonZeroU32, per_address: NonZeroU32) -> Self {
        Self {
            per_wallet: RateLimiter::keyed(Quota::per_minute(per_wallet)),
            per_address: RateLimiter::keyed(Quota::per_minute(per_address)),
        }
    }

    pub fn check_wallet(&self, wallet: &str) -> Result<(), AppError> {
        self.per_wallet
            .check_key(&wallet.to_owned())
            .map_err(|not_until| too_many("this wallet", &not_until))
    }

    pub fn check_address(&self, address: IpAddr) -> Result<(), AppError> {
        self.per_address
            .check_key(&address)
            .map_err(|not_until| too_many("this address", &not_until))
    }

    /// Drops the keys whose limit is back to full.
    pub fn forget_idle(&self) {
        self.per_wallet.retain_recent();
        self.per_address.retain_recent();
        self.per_wallet.shrink_to_fit();
        self.per_address.shrink_to_fit();
    }
}

fn too_many(who: &str, not_until: &governor::NotUntil<governor::clock::QuantaInstant>) -> AppError {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    let seconds = wait.as_secs() + 1;
    let mut error = AppError::new(
        ErrorCode::RateLimited,
        format!("too many requests from {who}; try again in {seconds} s"),
    );
    error.retry_after_s = Some(seconds);
    error
}

/// Middleware: the per-address limit on every `/v1` request (a request without a peer address,
/// as in the router's in-process tests, is not limited by address).
pub async fn limit_address(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        state.limits.check_address(peer.ip())?;
    }
    Ok(next.run(request).await)
}
