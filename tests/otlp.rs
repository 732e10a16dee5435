//! An OTLP/HTTP trace receiver on 127.0.0.1 for tests: it takes `POST /v1/traces` as the
//! exporters send it (protobuf `ExportTraceServiceRequest`), keeps every span with the request's
//! headers, and answers 200, or, in [`Mode::Hang`], never answers, as a stuck collector.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers 200 to every export.
    Accept,
    /// Reads each export and never answers.
    Hang,
}

/// One span as it arrived.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub name: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    /// Attributes as text (strings as they are; numbers and booleans formatted).
    pub attributes: BTreeMap<String, String>,
    /// Event names (`exception` for an error).
    pub events: Vec<String>,
    /// The exception events' `exception.message`.
    pub exceptions: Vec<String>,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    /// The resource's `service.name`.
    pub service: String,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Debug, Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    /// Every export request's headers (lower-case names).
    headers: Vec<BTreeMap<String, String>>,
}

/// The receiver; stops when dropped.
pub struct Receiver {
    server: Arc<tiny_http::Server>,
    received: Arc<Mutex<Received>>,
    address: std::net::SocketAddr,
}

impl Receiver {
    pub fn start(mode: Mode) -> Self {
        let server = Arc::new(
            tiny_http::Server::http("127.0.0.1:0").expect("an OTLP receiver on 127.0.0.1"),
        );
        let address = server
            .server_addr()
            .to_ip()
            .expect("the receiver listens on IP");
        let received = Arc::new(Mutex::new(Received::default()));
        let (server_for_thread, received_for_thread) = (Arc::clone(&server), Arc::clone(&received));
        std::thread::Builder::new()
            .name("otlp-receiver".to_owned())
            .spawn(move || {
                // Requests never answered stay here, their connections open.
                let mut held = Vec::new();
                for mut request in server_for_thread.incoming_requests() {
                    let mut body = Vec::new();
                    if request.as_reader().read_to_end(&mut body).is_err() {
                        continue;
                    }
                    let headers = request
                        .headers()
                        .iter()
                        .map(|h| {
                            (
                                h.field.as_str().as_str().to_ascii_lowercase(),
                                h.value.as_str().to_owned(),
                            )
                        })
                        .collect();
                    let spans = if request.url() == "/v1/traces" {
                        decode(&body)
                    } else {
                        Vec::new()
                    };
                    {
                        let mut received = received_for_thread.lock().expect("receiver lock");
                        received.headers.push(headers);
                        received.spans.extend(spans);
                    }
                    match mode {
                        Mode::Accept => {
                            let _ = request.respond(tiny_http::Response::empty(200));
                        }
                        Mode::Hang => held.push(request),
                    }
                }
            })
            .expect("the receiver thread");
        Self {
            server,
            received,
            address,
        }
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for this receiver.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.lock().expect("receiver lock").spans.clone()
    }

    pub fn headers(&self) -> Vec<BTreeMap<String, String>> {
        self.received.lock().expect("receiver lock").headers.clone()
    }

    /// Waits (up to `timeout`) until `done` holds for the spans received so far; the spans.
    pub fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) || Instant::now() >= deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// An address where nothing listens (a receiver that is down).
pub fn down_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("its address");
    drop(listener);
    format!("http://{address}")
}

fn decode(body: &[u8]) -> Vec<ReceivedSpan> {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return Vec::new();
    };
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|resource| {
                resource
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
            })
            .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                let attributes = span
                    .attributes
                    .iter()
                    .map(|kv| {
                        (
                            kv.key.clone(),
                            text(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                        )
                    })
                    .collect();
                let exceptions = span
                    .events
                    .iter()
                    .filter(|event| event.name == "exception")
                    .flat_map(|event| {
                        event
                            .attributes
                            .iter()
                            .filter(|kv| kv.key == "exception.message")
                            .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
                    })
                    .collect();
                spans.push(ReceivedSpan {
                    name: span.name,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    attributes,
                    events: span.events.iter().map(|e| e.name.clone()).collect(),
                    exceptions,
                    status_code: span.status.map_or(0, |s| s.code),
                    service: service.clone(),
                });
            }
        }
    }
    spans
}

fn text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}
