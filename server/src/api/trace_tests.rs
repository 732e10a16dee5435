//! Every API request is a span named by method and route with its status, and no attribute holds
//! the wallet's signature or a presigned URL's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::Layer;

use super::tests::{call, key, request, signed};

/// Each span's fields as text, by span id.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<BTreeMap<u64, BTreeMap<String, String>>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Captured {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        self.0.lock().expect("lock").insert(id.into_u64(), fields);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut spans = self.0.lock().expect("lock");
        if let Some(fields) = spans.get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
}

/// Set in the child process that runs the test body alone.
const CHILD: &str = "SD_API_TRACE_TEST_CHILD";

/// The body runs in a process of its own, where its subscriber is the global one: tests running
/// requests at the same time with no subscriber would race it for the callsites' cached interest
/// (a scoped subscriber then misses spans now and then).
#[test]
fn each_request_is_a_span_with_its_route_and_status_and_no_secret() {
    let name = "api::trace_tests::each_request_is_a_span_with_its_route_and_status_and_no_secret";
    if std::env::var_os(CHILD).is_none() {
        let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", name, "--test-threads=1", "--nocapture"])
            .env(CHILD, "1")
            .output()
            .expect("run the test in its own process");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    let captured = Captured::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(captured.clone()))
        .expect("the only subscriber of this process");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(requests_and_their_spans(&captured));
}

async fn requests_and_their_spans(captured: &Captured) {
    let state = super::tests::state();
    let key = key(9);
    let upload = signed(request(&key, "traceNonce000001"), &key);
    let body = serde_json::to_vec(&upload).expect("json");
    let (status, response) = call(
        &state,
        Request::post("/v1/uploads")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{response:#}");
    let url = response["uploads"]["video"]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let url_signature = url
        .split("X-Amz-Signature=")
        .nth(1)
        .expect("a signed URL")
        .to_owned();
    let (status, _) = call(
        &state,
        Request::get(format!(
            "/v1/sessions/{}/{}",
            upload.wallet, upload.session_id
        ))
        .body(Body::empty())
        .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Probes are not traced.
    let (status, _) = call(
        &state,
        Request::get("/healthz")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let spans = captured.0.lock().expect("lock").clone();
    let requests: Vec<&BTreeMap<String, String>> = spans
        .values()
        .filter(|fields| fields.contains_key("http.route"))
        .collect();
    let seen: Vec<(&str, &str)> = requests
        .iter()
        .map(|fields| {
            (
                fields["otel.name"].as_str(),
                fields
                    .get("http.response.status_code")
                    .map_or("", String::as_str),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("POST /v1/uploads", "201"),
            ("GET /v1/sessions/{wallet}/{session}", "404")
        ]
    );
    for fields in spans.values() {
        for value in fields.values() {
            assert!(!value.contains(&upload.signature), "{fields:?}");
            assert!(!value.contains(&url_signature), "{fields:?}");
        }
    }
}
