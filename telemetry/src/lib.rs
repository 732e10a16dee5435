//! Logs and traces for every binary (`scale-diffusion`, `scale-diffusion-server`), set up once by
//! [`init`]: `tracing` events to stderr, filtered by `RUST_LOG`, and, when the standard
//! OpenTelemetry variables name a collector, the spans of the pipeline and of the API exported
//! over OTLP/HTTP (protobuf), as LangSmith and every OTLP collector take them.
//!
//! Configuration is only the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns export on, `OTEL_EXPORTER_OTLP_HEADERS` carries the
//! API key and project, `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` describe the process,
//! `OTEL_EXPORTER_OTLP_TIMEOUT` and `OTEL_BSP_*` tune the export. `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none` turn it off.
//!
//! A collector that is down, slow or hanging never slows or fails a run: spans go into a bounded
//! queue that a background thread exports (a full queue drops spans, counted and logged once, and
//! their total logged at exit); the flush at exit waits [`EXIT_FLUSH`] at most.
//!
//! [`peak_rss_kb`] is the process's own peak memory, as `process --json` and the benchmarks report it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

mod http;
mod report;

/// The longest the flush at exit (or at SIGTERM) waits for the collector.
pub const EXIT_FLUSH: Duration = Duration::from_secs(3);

/// How long one export may take when `OTEL_EXPORTER_OTLP_TIMEOUT` does not say (the standard's
/// default).
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The crates whose spans are exported: the pipeline's and the binaries' own, not the HTTP,
/// AWS or exporter internals (whose spans would swamp a session's trace, or feed the exporter
/// its own requests).
const TRACED_CRATES: [&str; 4] = [
    "sd_core",
    "sd_ledger",
    "scale_diffusion",
    "scale_diffusion_server",
];

/// Keeps the exporter running; flushes it when dropped (at most [`EXIT_FLUSH`]).
#[derive(Debug)]
pub struct Telemetry {
    flusher: Flusher,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.flusher.provider.is_some()
    }

    /// A handle that flushes the same exporter, for a signal handler.
    pub fn flusher(&self) -> Flusher {
        self.flusher.clone()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.flusher().shutdown();
    }
}

/// Flushes and stops the exporter (see [`Telemetry::flusher`]).
#[derive(Debug, Clone)]
pub struct Flusher {
    provider: Option<SdkTracerProvider>,
    /// Held while flushing: a second caller (a signal during the exit flush) waits for the first
    /// instead of finding the exporter stopped and leaving at once.
    flushing: Arc<Mutex<()>>,
}

impl Flusher {
    /// Exports what is queued and stops the exporter, waiting [`EXIT_FLUSH`] at most (a caller
    /// that comes while another flushes waits for it). Spans ended after this are dropped.
    pub fn shutdown(&self) {
        let Some(provider) = &self.provider else {
            return;
        };
        let _flushing = self
            .flushing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match provider.shutdown_with_timeout(EXIT_FLUSH) {
            Ok(()) => {}
            // Already stopped by an earlier call (a signal, then the drop).
            Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown) => {}
            Err(err) => tracing::warn!(
                "traces: the collector did not take the last spans in {EXIT_FLUSH:?}; they are \
                 dropped ({err})"
            ),
        }
    }
}

/// Sets up logging and, when configured, trace export, for the whole process. `default_log` is
/// the log filter without `RUST_LOG` (e.g. `"warn"`); `service` the service name without
/// `OTEL_SERVICE_NAME`. Call once, first thing in `main`, and keep the result alive until exit.
///
/// A bad OTel setting (an endpoint that is not a URL, say) is reported on stderr and leaves
/// tracing off: it never stops the program.
pub fn init(default_log: &str, service: &'static str) -> Telemetry {
    let log_filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_log))
        // A session's error is also an `exception` event on its span: the binaries print the
        // error themselves, so the event is not logged twice.
        .add_directive("sd_core::trace=off".parse().expect("a static directive"));
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(log_filter)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            !report::is_sdk_target(meta.target())
                || report::SDK_EVENTS_LOGGED.contains(&meta.name())
        }));

    let (provider, problem) = match exporter_settings(|name| std::env::var(name).ok()) {
        Settings::Off => (None, None),
        Settings::On { timeout } => match build_provider(service, timeout) {
            Ok(provider) => (Some(provider), None),
            Err(err) => (None, Some(err)),
        },
    };
    let traces = provider
        .as_ref()
        .map(|provider| traces_layer(provider.tracer(service)));
    // A second init (a test calling twice) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(traces)
        .try_init();
    if let Some(problem) = problem {
        eprintln!("warning: traces are off: {problem}");
    }
    let flusher = Flusher {
        provider,
        flushing: Arc::new(Mutex::new(())),
    };
    Telemetry { flusher }
}

/// Spans of [`TRACED_CRATES`] into `tracer`: an error event (`error = ...`, no message) becomes
/// an `exception` event and marks its span failed.
fn traces_layer<S>(tracer: opentelemetry_sdk::trace::Tracer) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let targets = TRACED_CRATES.iter().fold(Targets::new(), |targets, name| {
        targets.with_target(*name, LevelFilter::INFO)
    });
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_error_events_to_exceptions(true)
        .with_error_events_to_status(true)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(targets)
}

#[derive(Debug, PartialEq, Eq)]
enum Settings {
    Off,
    On { timeout: Duration },
}

/// What the standard variables ask for (`var` reads one).
fn exporter_settings(var: impl Fn(&str) -> Option<String>) -> Settings {
    let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"))
    {
        return Settings::Off;
    }
    if set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        && set("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
    {
        return Settings::Off;
    }
    let timeout = set("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
        .or_else(|| set("OTEL_EXPORTER_OTLP_TIMEOUT"))
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .map_or(DEFAULT_EXPORT_TIMEOUT, Duration::from_millis);
    Settings::On { timeout }
}

fn build_provider(service: &'static str, timeout: Duration) -> Result<SdkTracerProvider, String> {
    let client = http::BlockingClient::new(timeout);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(timeout)
        .build()
        .map_err(|err| {
            // The SDK's text may quote the endpoint, credentials and all.
            let text = err.to_string();
            let text = match raw_endpoint() {
                Some(raw) if !raw.is_empty() => text.replace(&raw, &endpoint_for_logs()),
                _ => text,
            };
            format!("cannot set up the OTLP exporter: {text}")
        })?;
    let exporter = report::Reporting::new(exporter, endpoint_for_logs());
    let mut resource = Resource::builder();
    let named = std::env::var_os("OTEL_SERVICE_NAME").is_some()
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|attributes| {
            attributes
                .split(',')
                .any(|pair| pair.trim_start().starts_with("service.name="))
        });
    if !named {
        resource = resource.with_service_name(service);
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Where the spans go, as the log names it (see [`redacted`]).
fn endpoint_for_logs() -> String {
    redacted(&raw_endpoint().unwrap_or_default())
}

/// An endpoint without its userinfo, query or fragment: no credential in a log line.
fn redacted(endpoint: &str) -> String {
    let without_query = endpoint.split(['?', '#']).next().unwrap_or_default();
    match without_query.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            if path.is_empty() && !rest.contains('/') {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => without_query.to_owned(),
    }
}

/// The endpoint variable as it is set.
fn raw_endpoint() -> Option<String> {
    std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .ok()
}

/// This process's peak resident set size so far (Linux `VmHWM`, kB), for benchmarks and for
/// people sizing workers; `None` where `/proc` does not say.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::Status;
    use opentelemetry_sdk::trace::SpanData;

    use super::*;

    /// Keeps what it is given.
    #[derive(Debug, Clone, Default)]
    struct Kept(Arc<Mutex<Vec<SpanData>>>);

    impl opentelemetry_sdk::trace::SpanExporter for Kept {
        async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.lock().expect("lock").extend(batch);
            Ok(())
        }
    }

    #[test]
    fn a_session_error_is_an_exception_event_and_fails_the_span_and_other_crates_are_not_traced() {
        let kept = Kept::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(kept.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(traces_layer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let root = sd_core::trace::session_span("session_1_a", Some("w"), "/raw");
            root.in_scope(|| {
                let _step = sd_core::trace::step_span("publish").entered();
            });
            sd_core::trace::record_error(&root, "cannot publish: disk full");
            drop(root);
            // Another crate's span (an HTTP client's, say) is not exported.
            drop(tracing::info_span!(target: "hyper::client", "connect"));
        });
        let spans = kept.0.lock().expect("lock").clone();
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
        assert_eq!(names, ["publish", "session session_1_a"]);
        let root = &spans[1];
        assert_eq!(spans[0].parent_span_id, root.span_context.span_id());
        assert!(
            matches!(root.status, Status::Error { .. }),
            "{:?}",
            root.status
        );
        let exception = root
            .events
            .iter()
            .find(|event| event.name == "exception")
            .expect("an exception event");
        assert!(
            exception.attributes.iter().any(|kv| {
                kv.key.as_str() == "exception.message"
                    && kv.value.as_str() == "cannot publish: disk full"
            }),
            "{:?}",
            exception.attributes
        );
        assert!(matches!(spans[0].status, Status::Unset));
    }

    fn settings(vars: &[(&str, &str)]) -> Settings {
        exporter_settings(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn export_is_on_only_when_an_endpoint_is_set_and_nothing_turns_it_off() {
        let on = Settings::On {
            timeout: DEFAULT_EXPORT_TIMEOUT,
        };
        assert_eq!(settings(&[]), Settings::Off);
        assert_eq!(
            settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]),
            Settings::Off
        );
        assert_eq!(settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c")]), on);
        assert_eq!(
            settings(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/v1/traces")]),
            on
        );
        for off in [
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert_eq!(
                settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"), off]),
                Settings::Off
            );
        }
    }

    #[test]
    fn logged_endpoints_carry_no_credentials() {
        assert_eq!(
            redacted("https://user:secret@api.smith.langchain.com/otel?key=abc"),
            "https://api.smith.langchain.com/otel"
        );
        assert_eq!(redacted("http://127.0.0.1:4318"), "http://127.0.0.1:4318");
        assert_eq!(redacted("http://127.0.0.1:4318/"), "http://127.0.0.1:4318/");
        // An `@` in the path is not userinfo.
        assert_eq!(redacted("http://host/a@b"), "http://host/a@b");
        assert_eq!(redacted("not a url?token=x"), "not a url");
    }

    #[test]
    fn the_export_timeout_is_the_standard_variables_in_milliseconds() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c");
        let timeout = |vars: &[(&str, &str)]| match settings(vars) {
            Settings::On { timeout } => timeout,
            Settings::Off => panic!("off"),
        };
        assert_eq!(timeout(&[endpoint]), DEFAULT_EXPORT_TIMEOUT);
        assert_eq!(
            timeout(&[endpoint, ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")]),
            Duration::from_millis(2500)
        );
        assert_eq!(
            timeout(&[
                endpoint,
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700")
            ]),
            Duration::from_millis(700)
        );
        assert_eq!(
            timeout(&[endpoint, ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")]),
            DEFAULT_EXPORT_TIMEOUT
        );
    }
}
