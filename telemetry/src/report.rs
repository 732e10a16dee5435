//! What a run says about its collector: one warning the first time an export fails, and at exit
//! how many spans never arrived. The SDK's own per-export error lines are kept out of the logs
//! (they would repeat on every batch of a long run); its one-time "queue full" warning and its
//! total of dropped spans at exit are kept.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

/// The SDK's internal events that reach the log: a queue that filled up (once), and the total
/// dropped at shutdown.
pub(crate) const SDK_EVENTS_LOGGED: [&str; 2] = [
    "BatchSpanProcessor.SpanDroppingStarted",
    "BatchSpanProcessor.SpansDropped",
];

/// The crates whose internal events are the SDK's.
pub(crate) fn is_sdk_target(target: &str) -> bool {
    target.starts_with("opentelemetry")
}

/// Wraps the OTLP exporter: counts the spans of failed exports and says so once.
#[derive(Debug)]
pub(crate) struct Reporting<E> {
    inner: E,
    endpoint: String,
    warned: AtomicBool,
    failed_spans: AtomicU64,
}

impl<E> Reporting<E> {
    pub(crate) fn new(inner: E, endpoint: String) -> Self {
        Self {
            inner,
            endpoint,
            warned: AtomicBool::new(false),
            failed_spans: AtomicU64::new(0),
        }
    }
}

impl<E: SpanExporter> SpanExporter for Reporting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        if let Err(err) = &result {
            self.failed_spans.fetch_add(spans, Ordering::Relaxed);
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "traces: cannot deliver spans to {} ({err}); the run goes on, the spans are \
                     dropped (said once; the count comes at exit)",
                    self.endpoint
                );
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let failed = self.failed_spans.load(Ordering::Relaxed);
        if failed > 0 {
            tracing::warn!(
                "traces: {failed} spans could not be delivered to {}",
                self.endpoint
            );
        }
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
