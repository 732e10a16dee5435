//! `POST /v1/uploads` (SPEC section 9): a wallet asks for five presigned PUT URLs, one per part of
//! one session, and proves it is the caller by signing the request's fields with its ed25519 key.
//!
//! The request is checked field by field, in this order: JSON shape, wallet, session id, each
//! part's content type and size, nonce, `issuedAt` (format, then within the allowed skew of the
//! server's clock), the signature over the message rebuilt here from those fields (never a message
//! the client sends), the wallet's rate limit (signed requests only), and last the nonce's single
//! use in the ledger, so that a request that fails any other check does not spend its nonce.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_s3::presigning::PresigningConfig;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ed25519_dalek::{Signature, VerifyingKey};
use sd_core::{PartKind, WalletAddress};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{AppError, ErrorBody, ErrorCode};
use super::AppState;

/// The request body, exactly as SPEC section 9 has it; unknown fields are refused.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UploadRequest {
    /// The contributor's wallet: a base58 ed25519 public key (32 bytes).
    #[schema(
        pattern = "^[1-9A-HJ-NP-Za-km-z]{32,44}$",
        example = "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T"
    )]
    pub wallet: String,
    /// `session_<epoch ms>_<letters and digits>`.
    #[schema(
        pattern = "^session_[0-9]+_[A-Za-z0-9]+$",
        example = "session_1796183990000_ab12cd"
    )]
    pub session_id: String,
    pub parts: Parts,
    /// When the request was signed, RFC 3339 UTC; within 5 minutes of the server's clock.
    #[schema(example = "2026-12-02T04:00:00Z")]
    pub issued_at: String,
    /// Single use per wallet.
    #[schema(pattern = "^[A-Za-z0-9]{16,64}$", example = "a1B2c3D4e5F6g7H8")]
    pub nonce: String,
    /// The base58 ed25519 signature of the message rebuilt from these fields (SPEC section 9):
    /// `Scale Diffusion upload`, then `wallet: `, `session: `, `video: `, `inputs: `, `camera: `,
    /// `latency: `, `meta: ` (the byte counts), `nonce: ` and `issued: ` lines, joined by LF, no
    /// trailing newline, signed as raw UTF-8 bytes.
    pub signature: String,
}

/// The five parts of the session, with their sizes and content types.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Parts {
    #[schema(schema_with = video_part)]
    pub video: PartRequest,
    #[schema(schema_with = json_part)]
    pub inputs: PartRequest,
    #[schema(schema_with = json_part)]
    pub camera: PartRequest,
    #[schema(schema_with = json_part)]
    pub latency: PartRequest,
    #[schema(schema_with = json_part)]
    pub meta: PartRequest,
}

/// A [`PartRequest`] whose content type is the one its part must have (the document says which).
fn part_schema(content_type: &str) -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Ref, Type};
    AllOfBuilder::new()
        .item(Ref::from_schema_name("PartRequest"))
        .item(
            ObjectBuilder::new().property(
                "contentType",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([content_type])),
            ),
        )
        .build()
        .into()
}

fn video_part() -> utoipa::openapi::schema::Schema {
    part_schema(content_type(PartKind::Video))
}

fn json_part() -> utoipa::openapi::schema::Schema {
    part_schema(content_type(PartKind::Meta))
}

impl Parts {
    fn get(&self, kind: PartKind) -> &PartRequest {
        match kind {
            PartKind::Video => &self.video,
            PartKind::Inputs => &self.inputs,
            PartKind::Camera => &self.camera,
            PartKind::Latency => &self.latency,
            PartKind::Meta => &self.meta,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PartRequest {
    /// The part's exact size: the PUT must send this many bytes. Capped per part (video 64 MiB,
    /// each JSON part 1 MiB by default).
    #[schema(example = 5123456)]
    pub bytes: u64,
    /// `video/webm` for the video, `application/json` for the four others.
    #[schema(example = "video/webm", value_type = String, pattern = "^(video/webm|application/json)$")]
    pub content_type: String,
}

/// `201 Created`: one presigned PUT per part.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UploadResponse {
    pub uploads: Uploads,
    /// When the URLs stop working (RFC 3339 UTC).
    #[schema(example = "2026-12-02T04:10:00Z")]
    pub expires_at: String,
}

/// The five presigned PUTs, one per part.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Uploads {
    pub video: PresignedUpload,
    pub inputs: PresignedUpload,
    pub camera: PresignedUpload,
    pub latency: PresignedUpload,
    pub meta: PresignedUpload,
}

impl Uploads {
    #[cfg(test)]
    pub fn get(&self, kind: PartKind) -> &PresignedUpload {
        match kind {
            PartKind::Video => &self.video,
            PartKind::Inputs => &self.inputs,
            PartKind::Camera => &self.camera,
            PartKind::Latency => &self.latency,
            PartKind::Meta => &self.meta,
        }
    }
}

/// One part's upload: PUT the part's bytes to `url` with exactly `headers`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresignedUpload {
    /// `{wallet}/{epoch ms}_{sessionId}{suffix}` in the raw bucket.
    pub key: String,
    /// Good for this key, this content type and this length only, until `expiresAt`.
    pub url: String,
    /// Always `PUT`.
    #[schema(example = "PUT")]
    pub method: String,
    /// The headers the PUT must carry as they are (`content-type` and `content-length`, both
    /// signed into the URL).
    pub headers: std::collections::BTreeMap<String, String>,
}

/// The content type each part must be uploaded with.
pub fn content_type(kind: PartKind) -> &'static str {
    match kind {
        PartKind::Video => "video/webm",
        _ => "application/json",
    }
}

/// The UTF-8 text the wallet signs (SPEC section 9): lines joined by LF, no trailing newline,
/// built from the request's own fields.
pub fn signed_message(request: &UploadRequest) -> String {
    let parts = &request.parts;
    format!(
        "Scale Diffusion upload\nwallet: {}\nsession: {}\nvideo: {}\ninputs: {}\ncamera: {}\n\
         latency: {}\nmeta: {}\nnonce: {}\nissued: {}",
        request.wallet,
        request.session_id,
        parts.video.bytes,
        parts.inputs.bytes,
        parts.camera.bytes,
        parts.latency.bytes,
        parts.meta.bytes,
        request.nonce,
        request.issued_at,
    )
}

/// A nonce is 16 to 64 characters of `[A-Za-z0-9]`.
fn nonce_is_valid(nonce: &str) -> bool {
    (16..=64).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn epoch_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Five presigned PUT URLs for one session's parts, for a request signed by its wallet.
#[utoipa::path(
    post,
    path = "/v1/uploads",
    tag = "uploads",
    request_body = UploadRequest,
    responses(
        (status = 201, description = "One presigned PUT per part, each good for its key, content type and length only", body = UploadResponse),
        (status = 400, description = "`malformed_request`, `invalid_wallet`, `invalid_session_id`, `invalid_content_type`, `invalid_nonce` or `invalid_issued_at`", body = ErrorBody),
        (status = 401, description = "`bad_signature`: the signature does not verify; `stale_request`: `issuedAt` is more than 5 minutes from the server's clock", body = ErrorBody),
        (status = 409, description = "`nonce_reused`: this wallet used this nonce already", body = ErrorBody),
        (status = 413, description = "`part_too_large`: a part over its cap; `body_too_large`: the request body itself", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many requests from this wallet or this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 500, description = "`internal_error`", body = ErrorBody),
    )
)]
pub async fn create_uploads(
    State(state): State<Arc<AppState>>,
    body: Result<Json<UploadRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<UploadResponse>), AppError> {
    let Json(request) = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::new(
                ErrorCode::BodyTooLarge,
                "the request body is too large for an upload request",
            )
        } else {
            AppError::new(
                ErrorCode::MalformedRequest,
                format!(
                    "the body is not an upload request: {}",
                    rejection.body_text()
                ),
            )
        }
    })?;
    let wallet = super::parse_wallet(&request.wallet)?;
    let session = super::parse_session_id(&request.session_id)?;
    let config = &state.config;
    for kind in PartKind::ALL {
        let part = request.parts.get(kind);
        let expected = content_type(kind);
        if part.content_type != expected {
            return Err(AppError::new(
                ErrorCode::InvalidContentType,
                format!("the {} part is uploaded as {expected}", kind.name()),
            ));
        }
        let cap = match kind {
            PartKind::Video => config.max_video_bytes,
            _ => config.max_json_bytes,
        };
        if part.bytes > cap {
            return Err(AppError::new(
                ErrorCode::PartTooLarge,
                format!(
                    "the {} part is {} bytes, over its cap of {cap} bytes",
                    kind.name(),
                    part.bytes
                ),
            ));
        }
    }
    if !nonce_is_valid(&request.nonce) {
        return Err(AppError::new(
            ErrorCode::InvalidNonce,
            "nonce is 16 to 64 characters of A-Z, a-z and 0-9",
        ));
    }
    let issued = humantime::parse_rfc3339(&request.issued_at).map_err(|_| {
        AppError::new(
            ErrorCode::InvalidIssuedAt,
            "issuedAt is an RFC 3339 UTC time such as 2026-12-02T04:00:00Z",
        )
    })?;
    let now = (state.now)();
    let skew = match now.duration_since(issued) {
        Ok(behind) => behind,
        Err(ahead) => ahead.duration(),
    };
    if skew > config.max_clock_skew {
        return Err(AppError::new(
            ErrorCode::StaleRequest,
            format!(
                "issuedAt is more than {} s from the server's clock; sign a new request",
                config.max_clock_skew.as_secs()
            ),
        ));
    }
    verify_signature(&wallet, &request)?;
    // Only signed requests count against the wallet's limit: anyone can name a wallet, and
    // unsigned requests naming it must not use up its owner's uploads (the per-address limit
    // holds those back).
    state.limits.check_wallet(wallet.as_str())?;

    // Kept until a request with this nonce would be stale anyway.
    let now_ms = epoch_ms(now);
    let keep_until_ms = epoch_ms(issued + config.max_clock_skew);
    let fresh = {
        let (ledger, wallet, nonce) = (
            Arc::clone(&state.ledger),
            wallet.to_string(),
            request.nonce.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let mut ledger = ledger
                .lock()
                .map_err(|_| AppError::internal("ledger", "the ledger's lock was poisoned"))?;
            ledger
                .use_nonce(&wallet, &nonce, now_ms, keep_until_ms)
                .map_err(|err| AppError::internal("cannot record a nonce", err))
        })
        .await
        .map_err(|err| AppError::internal("the ledger thread failed", err))??
    };
    if !fresh {
        return Err(AppError::new(
            ErrorCode::NonceReused,
            "this nonce was used already; sign a new request with a new nonce",
        ));
    }

    let expires = PresigningConfig::expires_in(config.url_ttl)
        .map_err(|err| AppError::internal("presigning config", err))?;
    let presign = async |kind: PartKind| {
        let part = request.parts.get(kind);
        let key = format!("{wallet}/{now_ms}_{session}{}", kind.suffix());
        let content_length =
            i64::try_from(part.bytes).map_err(|err| AppError::internal("part size", err))?;
        let presigned = state
            .s3
            .put_object()
            .bucket(&config.raw_bucket)
            .key(&key)
            .content_type(&part.content_type)
            .content_length(content_length)
            .presigned(expires.clone())
            .await
            .map_err(|err| AppError::internal("cannot presign a PUT", err))?;
        let headers = [
            ("content-type".to_owned(), part.content_type.clone()),
            ("content-length".to_owned(), part.bytes.to_string()),
        ]
        .into_iter()
        .collect();
        Ok::<_, AppError>(PresignedUpload {
            key,
            url: presigned.uri().to_owned(),
            method: "PUT".to_owned(),
            headers,
        })
    };
    let uploads = Uploads {
        video: presign(PartKind::Video).await?,
        inputs: presign(PartKind::Inputs).await?,
        camera: presign(PartKind::Camera).await?,
        latency: presign(PartKind::Latency).await?,
        meta: presign(PartKind::Meta).await?,
    };
    let expires_at = humantime::format_rfc3339_seconds(now + config.url_ttl).to_string();
    tracing::info!(wallet = %wallet, session = %session, "upload URLs issued");
    Ok((
        StatusCode::CREATED,
        Json(UploadResponse {
            uploads,
            expires_at,
        }),
    ))
}

/// The wallet's ed25519 signature over the message rebuilt from the request (strict
/// verification: no malleable or small-order forms).
fn verify_signature(wallet: &WalletAddress, request: &UploadRequest) -> Result<(), AppError> {
    let refused = || {
        AppError::new(
            ErrorCode::BadSignature,
            "the signature does not verify for this wallet and request",
        )
    };
    let mut bytes = [0u8; 64];
    match bs58::decode(&request.signature).onto(&mut bytes) {
        Ok(64) => {}
        _ => return Err(refused()),
    }
    let signature = Signature::from_bytes(&bytes);
    let key = VerifyingKey::from_bytes(&wallet.key_bytes()).map_err(|_| refused())?;
    key.verify_strict(signed_message(request).as_bytes(), &signature)
        .map_err(|_| refused())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_16_to_64_letters_and_digits() {
        assert!(nonce_is_valid("a1B2c3D4e5F6g7H8"));
        assert!(nonce_is_valid(&"x".repeat(64)));
        assert!(!nonce_is_valid(&"x".repeat(15)));
        assert!(!nonce_is_valid(&"x".repeat(65)));
        assert!(!nonce_is_valid("a1B2c3D4e5F6g7H-"));
        assert!(!nonce_is_valid("a1B2c3D4e5F6g7Hé"));
    }
}
