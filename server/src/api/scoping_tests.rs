//! The presigned URLs against an S3 that checks signatures (s3s-fs in process, INFRA.md): each
//! URL takes exactly its key, its content type and its length, until it expires; anything else
//! is refused by S3 itself.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::StatusCode;
use ed25519_dalek::{Signer as _, SigningKey};

use super::limits::RateLimits;
use super::tests::{call, send};
use super::uploads::{signed_message, PartRequest, Parts, UploadRequest, UploadResponse};
use super::{ApiConfig, AppState};

const ACCESS_KEY: &str = "scoping";
const SECRET_KEY: &str = "scoping-secret";

/// s3s-fs on 127.0.0.1 with one key pair and a `sd-raw` bucket; its address.
async fn start_s3(root: &std::path::Path) -> std::net::SocketAddr {
    std::fs::create_dir_all(root.join("sd-raw")).expect("bucket folder");
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs");
    let service = {
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        builder.build()
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("listen");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let http =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let connection = http
                .serve_connection(hyper_util::rt::TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    });
    address
}

fn state(endpoint: &str, url_ttl: Duration) -> Arc<AppState> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "test",
            ))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .build(),
    );
    let many = std::num::NonZeroU32::new(1000).expect("non-zero");
    Arc::new(AppState {
        s3,
        ledger: Arc::new(std::sync::Mutex::new(
            sd_ledger::Ledger::open_in_memory().expect("ledger"),
        )),
        config: ApiConfig {
            raw_bucket: "sd-raw".to_owned(),
            url_ttl,
            max_clock_skew: Duration::from_secs(300),
            max_video_bytes: 64 * 1024 * 1024,
            max_json_bytes: 1024 * 1024,
            cors_origins: Vec::new(),
        },
        now: Box::new(SystemTime::now),
        limits: RateLimits::new(many, many),
    })
}

/// Five URLs for a session whose parts are `sizes` bytes (video, inputs, camera, latency, meta).
async fn urls(state: &Arc<AppState>, nonce: &str, sizes: [u64; 5]) -> UploadResponse {
    let key = SigningKey::from_bytes(&[7; 32]);
    let part = |bytes: u64, content_type: &str| PartRequest {
        bytes,
        content_type: content_type.to_owned(),
    };
    let mut request = UploadRequest {
        wallet: bs58::encode(key.verifying_key().to_bytes()).into_string(),
        session_id: "session_1796183990000_ab12cd".to_owned(),
        parts: Parts {
            video: part(sizes[0], "video/webm"),
            inputs: part(sizes[1], "application/json"),
            camera: part(sizes[2], "application/json"),
            latency: part(sizes[3], "application/json"),
            meta: part(sizes[4], "application/json"),
        },
        issued_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        nonce: nonce.to_owned(),
        signature: String::new(),
    };
    let signature = key.sign(signed_message(&request).as_bytes());
    request.signature = bs58::encode(signature.to_bytes()).into_string();
    let body = serde_json::to_vec(&request).expect("json");
    let (status, body) = send(state, Body::from(body), "application/json").await;
    assert_eq!(status, StatusCode::CREATED, "{body:#}");
    serde_json::from_value(body).expect("upload response")
}

/// A PUT as the browser makes it; the status S3 answers.
async fn put(url: String, content_type: &'static str, body: Vec<u8>) -> u16 {
    tokio::task::spawn_blocking(move || {
        match ureq::put(&url)
            .header("content-type", content_type)
            .send(&body[..])
        {
            Ok(response) => response.status().as_u16(),
            Err(ureq::Error::StatusCode(code)) => code,
            Err(err) => panic!("PUT {url}: {err}"),
        }
    })
    .await
    .expect("PUT thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_url_takes_its_key_type_and_length_only_until_it_expires() {
    let root = tempfile::tempdir().expect("temp dir");
    let address = start_s3(root.path()).await;
    let endpoint = format!("http://{address}");
    let state = state(&endpoint, Duration::from_secs(600));
    // Ready: the ledger answers and this S3 knows the bucket and the key pair.
    let (status, body) = call(
        &state,
        axum::http::Request::get("/readyz")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body, serde_json::json!({"status": "ready"}));
    let response = urls(&state, "scopingnonce0001", [2000, 30, 40, 50, 60]).await;
    let video = &response.uploads.video;
    let meta = &response.uploads.meta;

    // Another length, another type, another key: refused by S3.
    assert_eq!(
        put(video.url.clone(), "video/webm", vec![0; 1999]).await,
        403
    );
    assert_eq!(
        put(video.url.clone(), "text/html", vec![0; 2000]).await,
        403
    );
    let elsewhere = video
        .url
        .replace(&video.key, &format!("{}.html", video.key));
    assert_eq!(put(elsewhere, "video/webm", vec![0; 2000]).await, 403);
    let tampered = meta.url.replace("X-Amz-Expires=600", "X-Amz-Expires=6000");
    assert_eq!(put(tampered, "application/json", vec![b' '; 60]).await, 403);
    // As issued: stored, under its key.
    assert_eq!(
        put(video.url.clone(), "video/webm", vec![0; 2000]).await,
        200
    );
    assert_eq!(
        put(meta.url.clone(), "application/json", vec![b' '; 60]).await,
        200
    );
    let stored = root.path().join("sd-raw").join(&video.key);
    assert_eq!(
        std::fs::metadata(&stored).expect("stored video").len(),
        2000
    );

    // Expired: refused.
    let short = self::state(&endpoint, Duration::from_secs(1));
    let response = urls(&short, "scopingnonce0002", [10, 30, 40, 50, 60]).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let late = response.uploads.video.url.clone();
    assert_eq!(put(late, "video/webm", vec![0; 10]).await, 403);
}
