//! The router in process (`oneshot`): every error code of SPEC section 9 and a valid request,
//! signed as a wallet's `signMessage` signs.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ed25519_dalek::{Signer as _, SigningKey};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;

use sd_core::PartKind;

use super::sessions::{FailedCheck, RejectReason, SessionStatusResponse};
use super::uploads::{signed_message, PartRequest, Parts, UploadRequest, UploadResponse};
use super::{app, ApiConfig, AppState};

/// The server's clock in these tests: 2026-12-02T04:00:00Z.
const NOW_S: u64 = 1_796_184_000;
const SESSION: &str = "session_1796183990000_ab12cd";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_S)
}

pub(super) fn state() -> Arc<AppState> {
    state_with(super::limits::RateLimits::new(
        NonZeroU32::new(1000).expect("non-zero"),
        NonZeroU32::new(1000).expect("non-zero"),
    ))
}

fn state_with(limits: super::limits::RateLimits) -> Arc<AppState> {
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
            cors_origins: vec![axum::http::HeaderValue::from_static(
                "https://drive.example.com",
            )],
        },
        now: Box::new(now),
        limits,
    })
}

pub(super) fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn wallet_of(key: &SigningKey) -> String {
    bs58::encode(key.verifying_key().to_bytes()).into_string()
}

/// A request as the page sends it, unsigned.
pub(super) fn request(key: &SigningKey, nonce: &str) -> UploadRequest {
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
pub(super) fn signed(mut request: UploadRequest, key: &SigningKey) -> UploadRequest {
    let signature = key.sign(signed_message(&request).as_bytes());
    request.signature = bs58::encode(signature.to_bytes()).into_string();
    request
}

/// One request through the router: its status and its body as JSON (`Null` if it is not),
/// held to what docs/openapi.json says of it.
pub(super) async fn call(state: &Arc<AppState>, request: Request<Body>) -> (StatusCode, Value) {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = app(Arc::clone(state))
        .oneshot(request)
        .await
        .expect("response");
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    super::openapi_tests::check_response(&method, &path, status, &headers, &value);
    (status, value)
}

pub(super) async fn send(
    state: &Arc<AppState>,
    body: Body,
    content_type: &str,
) -> (StatusCode, Value) {
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
        (PartKind::Video, ".webm", "video/webm", "5123456"),
        (PartKind::Inputs, "_inputs.json", "application/json", "4100"),
        (
            PartKind::Camera,
            "_camera.json",
            "application/json",
            "18000",
        ),
        (
            PartKind::Latency,
            "_latency.json",
            "application/json",
            "512",
        ),
        (PartKind::Meta, "_meta.json", "application/json", "480"),
    ];
    for (kind, suffix, content_type, length) in expected {
        let upload = response.uploads.get(kind);
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
async fn unknown_paths_and_methods_answer_the_same_error_body() {
    let state = state();
    let get = |path: &str| Request::get(path).body(Body::empty()).expect("request");
    let (status, body) = call(&state, get("/v1/nothing")).await;
    assert_eq!(code(status, &body, StatusCode::NOT_FOUND), "not_found");
    let (status, body) = call(&state, get("/v1/sessions/only-a-wallet")).await;
    assert_eq!(code(status, &body, StatusCode::NOT_FOUND), "not_found");
    let (status, body) = call(&state, get("/v1/uploads")).await;
    assert_eq!(
        code(status, &body, StatusCode::METHOD_NOT_ALLOWED),
        "method_not_allowed"
    );
    let (status, body) = call(&state, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
}

async fn status_of(state: &Arc<AppState>, wallet: &str, session: &str) -> (StatusCode, Value) {
    let uri = format!("/v1/sessions/{wallet}/{session}");
    call(
        state,
        Request::get(uri).body(Body::empty()).expect("request"),
    )
    .await
}

fn expect_state(status: StatusCode, body: Value) -> SessionStatusResponse {
    assert_eq!(status, StatusCode::OK, "{body:#}");
    serde_json::from_value(body).expect("status shape")
}

#[tokio::test]
async fn a_contributor_sees_where_each_session_is() {
    use sd_core::{CheckName, CheckResult, SegmentRecord, SessionRecord, SessionStatus};
    let state = state();
    let wallet = wallet_of(&key(7));
    let session = |n: u32| format!("session_17961839{n:05}_ab12cd");

    // Nothing yet: 404; bad ids: 400.
    let (status, body) = status_of(&state, &wallet, &session(1)).await;
    assert_eq!(
        code(status, &body, StatusCode::NOT_FOUND),
        "session_not_found"
    );
    let (status, body) = status_of(&state, "0OIl", &session(1)).await;
    assert_eq!(
        code(status, &body, StatusCode::BAD_REQUEST),
        "invalid_wallet"
    );
    let (status, body) = status_of(&state, &wallet, "session_x").await;
    assert_eq!(
        code(status, &body, StatusCode::BAD_REQUEST),
        "invalid_session_id"
    );

    let check = |passed: bool| CheckResult {
        check: CheckName::Blur,
        metric: "sharpness".to_owned(),
        value: if passed { 0.9 } else { 0.1 },
        threshold: 0.5,
        bound: sd_core::Bound::AtLeast,
        passed,
        reason: "test".to_owned(),
        frames: Vec::new(),
        duplicate_of: None,
    };
    let segment = |n: usize, passed: bool| SegmentRecord {
        segment: n,
        first_frame: (n - 1) * 150,
        last_frame: n * 150 - 1,
        frames: 150,
        start_pts_ms: (n - 1) as f64 * 5000.0,
        end_pts_ms: n as f64 * 5000.0,
        passed,
        checks: vec![check(passed)],
        fingerprint: Default::default(),
    };
    let record = |id: &str, status: SessionStatus, segments: Vec<SegmentRecord>| {
        let rejected = status == SessionStatus::Rejected;
        SessionRecord {
            wallet: wallet.clone(),
            session_id: id.to_owned(),
            source: "test".to_owned(),
            status,
            reject_code: rejected.then(|| "empty_video".to_owned()),
            reject_message: rejected.then(|| "the video part is empty (0 bytes)".to_owned()),
            frames: segments.len() * 150,
            clock_confidence: Some(0.9),
            session_json: "{}".to_owned(),
            duplicate_recheck: None,
            segments,
        }
    };
    let run = |id: &str| sd_core::RunInfo {
        run_id: format!("run-{id}"),
        processed_at: "2026-12-02T04:00:00Z".to_owned(),
    };
    {
        let mut ledger = state.ledger.lock().expect("ledger");
        let rate = sd_core::Lamports(1_000_000);
        // 2: waiting for parts; 3: processing; 4: failed (its error text stays inside);
        // 5: done with 2 of 3 segments passed; 6: rejected.
        ledger.note_seen(&wallet, &session(2), 1).expect("seen");
        ledger
            .acquire_lease(&wallet, &session(3), "w/0", 1, 60_000)
            .expect("lease")
            .expect("free");
        let lease = ledger
            .acquire_lease(&wallet, &session(4), "w/0", 1, 60_000)
            .expect("lease")
            .expect("free");
        ledger
            .record_failure(&lease, "cannot read s3://sd-raw/secret/path", 2)
            .expect("failure");
        let done = record(
            &session(5),
            SessionStatus::Accepted,
            vec![segment(1, true), segment(2, false), segment(3, true)],
        );
        ledger
            .record_session(&done, rate, &run("5").processed_at, &run("5").run_id)
            .expect("record");
        let rejected = record(&session(6), SessionStatus::Rejected, Vec::new());
        ledger
            .record_session(&rejected, rate, &run("6").processed_at, &run("6").run_id)
            .expect("record");
    }
    let expect = |n: u32, state: &str| SessionStatusResponse {
        wallet: wallet.clone(),
        session_id: session(n),
        state: serde_json::from_value(json!(state)).expect("a state's name on the wire"),
        segments_passed: 0,
        segments_failed: 0,
        lamports_earned: 0,
        reject: None,
        failed_checks: Vec::new(),
    };
    let (status, body) = status_of(&state, &wallet, &session(2)).await;
    assert_eq!(expect_state(status, body), expect(2, "waiting_for_parts"));
    let (status, body) = status_of(&state, &wallet, &session(3)).await;
    assert_eq!(expect_state(status, body), expect(3, "processing"));
    let (status, body) = status_of(&state, &wallet, &session(4)).await;
    assert!(!body.to_string().contains("s3://"), "{body}");
    assert_eq!(expect_state(status, body), expect(4, "failed"));
    let (status, body) = status_of(&state, &wallet, &session(5)).await;
    assert_eq!(
        expect_state(status, body),
        SessionStatusResponse {
            segments_passed: 2,
            segments_failed: 1,
            lamports_earned: 2_000_000,
            failed_checks: vec![FailedCheck {
                segment: 2,
                check: "blur".to_owned(),
                reason: "test".to_owned(),
            }],
            ..expect(5, "done")
        }
    );
    let (status, body) = status_of(&state, &wallet, &session(6)).await;
    assert_eq!(
        expect_state(status, body),
        SessionStatusResponse {
            reject: Some(RejectReason {
                code: "empty_video".to_owned(),
                message: "the video part is empty (0 bytes)".to_owned(),
            }),
            ..expect(6, "rejected")
        }
    );
}

#[tokio::test]
async fn too_many_requests_from_a_wallet_or_an_address_are_429_with_retry_after() {
    let two = NonZeroU32::new(2).expect("non-zero");
    let many = NonZeroU32::new(1000).expect("non-zero");
    let state = state_with(super::limits::RateLimits::new(two, many));
    let key = key(7);
    for n in 0..2 {
        let request = signed(request(&key, &format!("nonce{n:011}abcdef")), &key);
        assert_eq!(post(&state, &request).await.0, StatusCode::CREATED);
    }
    let third = signed(request(&key, "nonce99999999999x"), &key);
    let (status, body) = post(&state, &third).await;
    assert_eq!(
        code(status, &body, StatusCode::TOO_MANY_REQUESTS),
        "rate_limited"
    );
    // Requests that name a wallet without its signature do not use up its limit.
    let state = state_with(super::limits::RateLimits::new(two, many));
    for _ in 0..5 {
        let forged = signed(request(&key, "nonce99999999999x"), &self::key(9));
        let (status, body) = post(&state, &forged).await;
        assert_eq!(
            code(status, &body, StatusCode::UNAUTHORIZED),
            "bad_signature"
        );
    }
    let genuine = signed(request(&key, "nonce99999999999x"), &key);
    assert_eq!(post(&state, &genuine).await.0, StatusCode::CREATED);
    // Another wallet is not held back by this one.
    let other = self::key(8);
    let theirs = signed(request(&other, "nonce99999999999x"), &other);
    assert_eq!(post(&state, &theirs).await.0, StatusCode::CREATED);

    // Per address, on every /v1 endpoint; the answer says when to come back.
    let state = state_with(super::limits::RateLimits::new(many, two));
    let from = |address: [u8; 4]| {
        let mut request = Request::get(format!(
            "/v1/sessions/{}/session_1796183900001_ab12cd",
            wallet_of(&key)
        ))
        .body(Body::empty())
        .expect("request");
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(SocketAddr::from((
                address, 40000,
            ))));
        request
    };
    for _ in 0..2 {
        assert_eq!(
            call(&state, from([10, 0, 0, 1])).await.0,
            StatusCode::NOT_FOUND
        );
    }
    let response = app(Arc::clone(&state))
        .oneshot(from([10, 0, 0, 1]))
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        call(&state, from([10, 0, 0, 2])).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_page_origin_may_call_the_api_from_a_browser_and_no_other() {
    let state = state();
    let preflight = |origin: &str| {
        Request::options("/v1/uploads")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .body(Body::empty())
            .expect("request")
    };
    let allowed = app(Arc::clone(&state))
        .oneshot(preflight("https://drive.example.com"))
        .await
        .expect("response");
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://drive.example.com"
    );
    let other = app(Arc::clone(&state))
        .oneshot(preflight("https://evil.example.com"))
        .await
        .expect("response");
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn not_ready_while_the_bucket_is_unreachable_and_says_no_more() {
    // The test S3 endpoint is 127.0.0.1:9, where nothing listens.
    let (status, body) = call(
        &state(),
        Request::get("/readyz")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        code(status, &body, StatusCode::SERVICE_UNAVAILABLE),
        "not_ready"
    );
    assert_eq!(
        body["error"]["message"],
        "the upload bucket is not reachable yet"
    );
}
