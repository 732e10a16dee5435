//! The router in process (`oneshot`): every error code of SPEC section 9 and a valid request,
//! signed as a wallet's `signMessage` signs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ed25519_dalek::{Signer as _, SigningKey};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;

use super::uploads::{signed_message, PartRequest, Parts, UploadRequest, UploadResponse};
use super::{app, ApiConfig, AppState};

/// The server's clock in these tests: 2026-12-02T04:00:00Z.
const NOW_S: u64 = 1_796_184_000;
const SESSION: &str = "session_1796183990000_ab12cd";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_S)
}

fn state() -> Arc<AppState> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .endpoint_url("http://127.0.0.1:9")
            .force_path_style(true)
            .build(),
    );
    Arc::new(AppState {
        s3,
        ledger: Arc::new(Mutex::new(
            sd_ledger::Ledger::open_in_memory().expect("ledger"),
        )),
        config: ApiConfig {
            raw_bucket: "sd-raw".to_owned(),
            url_ttl: Duration::from_secs(600),
            max_clock_skew: Duration::from_secs(300),
            max_video_bytes: 64 * 1024 * 1024,
            max_json_bytes: 1024 * 1024,
        },
        now: Box::new(now),
    })
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn wallet_of(key: &SigningKey) -> String {
    bs58::encode(key.verifying_key().to_bytes()).into_string()
}

/// A request as the page sends it, unsigned.
fn request(key: &SigningKey, nonce: &str) -> UploadRequest {
    let part = |bytes: u64, content_type: &str| PartRequest {
        bytes,
        content_type: content_type.to_owned(),
    };
    UploadRequest {
        wallet: wallet_of(key),
        session_id: SESSION.to_owned(),
        parts: Parts {
            video: part(5_123_456, "video/webm"),
            inputs: part(4_100, "application/json"),
            camera: part(18_000, "application/json"),
            latency: part(512, "application/json"),
            meta: part(480, "application/json"),
        },
        issued_at: "2026-12-02T03:59:30Z".to_owned(),
        nonce: nonce.to_owned(),
        signature: String::new(),
    }
}

/// Signs the request's message with `key`, as a wallet does (raw UTF-8 bytes, no prefix).
fn signed(mut request: UploadRequest, key: &SigningKey) -> UploadRequest {
    let signature = key.sign(signed_message(&request).as_bytes());
    request.signature = bs58::encode(signature.to_bytes()).into_string();
    request
}

/// One request through the router: its status and its body as JSON (`Null` if it is not).
async fn call(state: &Arc<AppState>, request: Request<Body>) -> (StatusCode, Value) {
    let response = app(Arc::clone(state))
        .oneshot(request)
        .await
        .expect("response");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

async fn send(state: &Arc<AppState>, body: Body, content_type: &str) -> (StatusCode, Value) {
    let request = Request::post("/v1/uploads")
        .header("content-type", content_type)
        .body(body)
        .expect("request");
    call(state, request).await
}

async fn post(state: &Arc<AppState>, request: &UploadRequest) -> (StatusCode, Value) {
    let body = serde_json::to_vec(request).expect("json");
    send(state, Body::from(body), "application/json").await
}

/// The SPEC's error body, and its code.
fn code(status: StatusCode, body: &Value, expected: StatusCode) -> String {
    assert_eq!(status, expected, "{body:#}");
    let error = body["error"].as_object().expect("error object");
    assert_eq!(error.len(), 2, "{body:#}");
    assert!(body.as_object().is_some_and(|o| o.len() == 1), "{body:#}");
    let message = error["message"].as_str().expect("message");
    assert!(!message.is_empty());
    for leak in ["/work", "/tmp", "sqlite", "SELECT", "panicked"] {
        assert!(!message.contains(leak), "{message}");
    }
    error["code"].as_str().expect("code").to_owned()
}

#[tokio::test]
async fn a_signed_request_gets_five_urls_each_for_one_key_type_and_length() {
    let state = state();
    let key = key(7);
    let (status, body) = post(&state, &signed(request(&key, "a1B2c3D4e5F6g7H8"), &key)).await;
    assert_eq!(status, StatusCode::CREATED, "{body:#}");
    let response: UploadResponse = serde_json::from_value(body).expect("response shape");
    let wallet = wallet_of(&key);
    let now_ms = NOW_S * 1000;
    assert_eq!(response.expires_at, "2026-12-02T04:10:00Z");
    let expected = [
        ("video", ".webm", "video/webm", "5123456"),
        ("inputs", "_inputs.json", "application/json", "4100"),
        ("camera", "_camera.json", "application/json", "18000"),
        ("latency", "_latency.json", "application/json", "512"),
        ("meta", "_meta.json", "application/json", "480"),
    ];
    assert_eq!(response.uploads.len(), 5);
    for (name, suffix, content_type, length) in expected {
        let upload = &response.uploads[name];
        assert_eq!(upload.key, format!("{wallet}/{now_ms}_{SESSION}{suffix}"));
        assert_eq!(upload.method, "PUT");
        assert_eq!(upload.headers["content-type"], content_type);
        assert_eq!(upload.headers["content-length"], length);
        assert!(
            upload
                .url
                .starts_with(&format!("http://127.0.0.1:9/sd-raw/{}", upload.key)),
            "{}",
            upload.url
        );
        // The length and the type are signed into the URL: S3 refuses any other.
        assert!(
            upload
                .url
                .contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost"),
            "{}",
            upload.url
        );
        assert!(upload.url.contains("X-Amz-Expires=600"), "{}", upload.url);
    }
}

#[tokio::test]
async fn malformed_bodies_are_400_and_say_what_is_wrong() {
    let state = state();
    let (status, body) = send(&state, Body::from("{not json"), "application/json").await;
    assert_eq!(
        code(status, &body, StatusCode::BAD_REQUEST),
        "malformed_request"
    );

    let key = key(7);
    let mut value =
        serde_json::to_value(signed(request(&key, "a1B2c3D4e5F6g7H8"), &key)).expect("json");
    value.as_object_mut().expect("object").remove("nonce");
    let (status, body) = send(&state, Body::from(value.to_string()), "application/json").await;
    assert_eq!(
        code(status, &body, StatusCode::BAD_REQUEST),
        "malformed_request"
    );
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("nonce")));

    let mut value =
        serde_json::to_value(signed(request(&key, "a1B2c3D4e5F6g7H8"), &key)).expect("json");
    value["parts"]["video"]["extra"] = json!(1);
    let (status, body) = send(&state, Body::from(value.to_string()), "application/json").await;
    assert_eq!(
        code(status, &body, StatusCode::BAD_REQUEST),
        "malformed_request"
    );

    let mut value =
        serde_json::to_value(signed(request(&key, "a1B2c3D4e5F6g7H8"), &key)).expect("json");
    value["parts"]["meta"]["bytes"] = json!(-1);
    let (status, body) = send(&state, Body::from(value.to_string()), "application/json").await;
    assert_eq!(
        code(status, &body, StatusCode::BAD_REQUEST),
        "malformed_request"
    );

    let good = serde_json::to_vec(&signed(request(&key, "a1B2c3D4e5F6g7H8"), &key)).expect("json");
    let (status, body) = send(&state, Body::from(good), "text/plain").await;
    assert_eq!(
        code(status, &body, StatusCode::BAD_REQUEST),
        "malformed_request"
    );

    let huge = format!("{{\"wallet\": \"{}\"}}", "x".repeat(64 * 1024));
    let (status, body) = send(&state, Body::from(huge), "application/json").await;
    assert_eq!(
        code(status, &body, StatusCode::PAYLOAD_TOO_LARGE),
        "body_too_large"
    );
}

/// A change to a request before it is signed.
type Change = fn(&mut UploadRequest);

#[tokio::test]
async fn bad_fields_are_400_with_their_own_code() {
    let state = state();
    let key = key(7);
    let cases: [(&str, Change); 6] = [
        ("invalid_wallet", |r| r.wallet = "0OIl".to_owned()),
        ("invalid_wallet", |r| r.wallet = "abc".to_owned()),
        ("invalid_session_id", |r| {
            r.session_id = "../../etc/passwd".to_owned()
        }),
        ("invalid_content_type", |r| {
            r.parts.video.content_type = "text/html".to_owned()
        }),
        ("invalid_content_type", |r| {
            r.parts.meta.content_type = "video/webm".to_owned()
        }),
        ("invalid_nonce", |r| r.nonce = "short".to_owned()),
    ];
    for (expected, change) in cases {
        let mut request = request(&key, "a1B2c3D4e5F6g7H8");
        change(&mut request);
        let (status, body) = post(&state, &signed(request, &key)).await;
        assert_eq!(code(status, &body, StatusCode::BAD_REQUEST), expected);
    }
    let mut unparsable = request(&key, "a1B2c3D4e5F6g7H8");
    unparsable.issued_at = "yesterday".to_owned();
    let (status, body) = post(&state, &signed(unparsable, &key)).await;
    assert_eq!(
        code(status, &body, StatusCode::BAD_REQUEST),
        "invalid_issued_at"
    );
}

#[tokio::test]
async fn parts_over_their_cap_are_413() {
    let state = state();
    let key = key(7);
    let mut video = request(&key, "a1B2c3D4e5F6g7H8");
    video.parts.video.bytes = 64 * 1024 * 1024 + 1;
    let (status, body) = post(&state, &signed(video, &key)).await;
    assert_eq!(
        code(status, &body, StatusCode::PAYLOAD_TOO_LARGE),
        "part_too_large"
    );
    let mut inputs = request(&key, "a1B2c3D4e5F6g7H8");
    inputs.parts.inputs.bytes = 1024 * 1024 + 1;
    let (status, body) = post(&state, &signed(inputs, &key)).await;
    assert_eq!(
        code(status, &body, StatusCode::PAYLOAD_TOO_LARGE),
        "part_too_large"
    );
    // At the cap exactly: fine.
    let mut at_cap = request(&key, "a1B2c3D4e5F6g7H8");
    at_cap.parts.video.bytes = 64 * 1024 * 1024;
    let (status, body) = post(&state, &signed(at_cap, &key)).await;
    assert_eq!(status, StatusCode::CREATED, "{body:#}");
}

#[tokio::test]
async fn signatures_that_do_not_verify_are_401_and_do_not_spend_the_nonce() {
    let state = state();
    let key = key(7);
    let nonce = "a1B2c3D4e5F6g7H8";
    // Signed, then a field changed: the server rebuilds the message from the fields.
    let mut tampered = signed(request(&key, nonce), &key);
    tampered.parts.video.bytes += 1;
    // Signed by another key than the wallet's.
    let other = signed(request(&key, nonce), &self::key(8));
    // Not base58, and base58 of the wrong length.
    let mut garbage = signed(request(&key, nonce), &key);
    garbage.signature = "0OIl".to_owned();
    let mut short = signed(request(&key, nonce), &key);
    short.signature = bs58::encode([1u8; 32]).into_string();
    let mut long = signed(request(&key, nonce), &key);
    long.signature = bs58::encode([1u8; 65]).into_string();
    for request in [tampered, other, garbage, short, long] {
        let (status, body) = post(&state, &request).await;
        assert_eq!(
            code(status, &body, StatusCode::UNAUTHORIZED),
            "bad_signature"
        );
    }
    // The nonce was not spent by the refused requests.
    let (status, body) = post(&state, &signed(request(&key, nonce), &key)).await;
    assert_eq!(status, StatusCode::CREATED, "{body:#}");
}

#[tokio::test]
async fn requests_issued_over_5_minutes_from_the_clock_are_401() {
    let state = state();
    let key = key(7);
    for (issued, expected) in [
        ("2026-12-02T03:54:59Z", Some("stale_request")),
        ("2026-12-02T04:05:01Z", Some("stale_request")),
        ("2026-12-02T03:55:00Z", None),
        ("2026-12-02T04:05:00Z", None),
    ] {
        let mut request = request(&key, &format!("n{}", issued.replace([':', '-'], "")));
        request.issued_at = issued.to_owned();
        let (status, body) = post(&state, &signed(request, &key)).await;
        match expected {
            Some(expected) => {
                assert_eq!(code(status, &body, StatusCode::UNAUTHORIZED), expected)
            }
            None => assert_eq!(status, StatusCode::CREATED, "{issued}: {body:#}"),
        }
    }
}

#[tokio::test]
async fn a_nonce_is_used_once_per_wallet() {
    let state = state();
    let key = key(7);
    let nonce = "a1B2c3D4e5F6g7H8";
    let first = signed(request(&key, nonce), &key);
    assert_eq!(post(&state, &first).await.0, StatusCode::CREATED);
    let (status, body) = post(&state, &first).await;
    assert_eq!(code(status, &body, StatusCode::CONFLICT), "nonce_reused");
    // Another wallet's same nonce is its own.
    let other = self::key(9);
    assert_eq!(
        post(&state, &signed(request(&other, nonce), &other))
            .await
            .0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn unknown_paths_answer_the_same_error_body() {
    let state = state();
    let get = |path: &str| Request::get(path).body(Body::empty()).expect("request");
    let (status, body) = call(&state, get("/v1/nothing")).await;
    assert_eq!(code(status, &body, StatusCode::NOT_FOUND), "not_found");
    let (status, body) = call(&state, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
}
