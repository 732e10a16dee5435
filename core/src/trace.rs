//! The spans of one session, the same whoever runs it (`scale-diffusion process`, the worker): a
//! root span per session and a child span per step. They are plain `tracing` spans: nothing here
//! exports anything; the binaries' `sd-telemetry` turns them into OpenTelemetry spans when a
//! collector is configured, and they cost next to nothing when none is.
//!
//! Attribute names follow what LangSmith reads (`langsmith.span.kind`, `langsmith.trace.name`,
//! `langsmith.metadata.*`, `input.value`, `output.value`); any other OTLP collector shows them as
//! they are. No signature, key or secret is ever an attribute.

use tracing::field::Empty;
use tracing::Span;

use crate::clock::ClockEstimate;
use crate::ledger::Lamports;
use crate::session::SessionOutcome;

/// The root span of one session's trace (LangSmith kind `chain`), named after the session, with
/// its wallet when the runner knows it (the storage key's). Enter it around everything done for
/// the session; [`crate::process_session`] records its outcome on it.
pub fn session_span(session_id: &str, wallet: Option<&str>, origin: &str) -> Span {
    let name = format!("session {session_id}");
    let input = serde_json::json!({"sessionId": session_id, "source": origin}).to_string();
    let span = tracing::info_span!(
        target: "sd_core::trace",
        "session",
        otel.name = %name,
        langsmith.trace.name = %name,
        langsmith.span.kind = "chain",
        langsmith.metadata.session_id = %session_id,
        langsmith.metadata.wallet = Empty,
        session_id = %session_id,
        wallet = Empty,
        source = %origin,
        input.value = %input,
        output.value = Empty,
        status = Empty,
        frames = Empty,
        clock.source = Empty,
        clock.confidence = Empty,
        clock.runs = Empty,
        segments.passed = Empty,
        segments.failed = Empty,
        failed_checks = Empty,
        reject.code = Empty,
        lamports.earned = Empty,
    );
    if let Some(wallet) = wallet {
        span.record("wallet", wallet);
        span.record("langsmith.metadata.wallet", wallet);
    }
    span
}

/// One step of a session (LangSmith kind `tool`): `fetch`, `decode`, `align`, `splice`,
/// `clean`, `publish`, `ledger`. A child of the current span; none outside a span (a step run on
/// its own, as `report` runs the analysis, is no trace of its own).
pub fn step_span(step: &'static str) -> Span {
    if Span::current().is_none() {
        return Span::none();
    }
    tracing::info_span!(
        target: "sd_core::trace",
        "step",
        otel.name = step,
        langsmith.span.kind = "tool",
        frames = Empty,
        segments = Empty,
        clock.source = Empty,
        clock.confidence = Empty,
        clock.runs = Empty,
    )
}

/// The clock join's source and confidence per run, on `span`: `clock.source` and
/// `clock.confidence` of the least confident run (the one to look at), `clock.runs` all of them.
pub fn record_clock(span: &Span, clock: &ClockEstimate) {
    let runs: Vec<serde_json::Value> = clock
        .runs
        .iter()
        .map(|run| {
            serde_json::json!({
                "run": run.run,
                "frames": (run.last_frame + 1).saturating_sub(run.first_frame),
                "source": run.source,
                "confidence": run.confidence,
            })
        })
        .collect();
    span.record("clock.runs", serde_json::Value::from(runs).to_string());
    if let Some(weakest) = clock
        .runs
        .iter()
        .min_by(|a, b| a.confidence.total_cmp(&b.confidence))
    {
        let source = serde_json::to_value(weakest.source)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        span.record("clock.source", source);
        span.record("clock.confidence", weakest.confidence);
    }
}

/// What the session came to, on its root span; `output.value` sums it up as JSON.
pub fn record_outcome(span: &Span, outcome: &SessionOutcome, rate: Lamports) {
    let passed = outcome.clean_segments as u64;
    let failed = outcome.segments.saturating_sub(outcome.clean_segments) as u64;
    let lamports = rate.0.saturating_mul(passed as i64);
    span.record("wallet", outcome.wallet.as_str());
    span.record("langsmith.metadata.wallet", outcome.wallet.as_str());
    span.record("status", outcome.status.as_str());
    span.record("frames", outcome.frames as u64);
    span.record("segments.passed", passed);
    span.record("segments.failed", failed);
    span.record("lamports.earned", lamports);
    if !outcome.failed_checks.is_empty() {
        let mut checks = outcome.failed_checks.clone();
        checks.sort();
        checks.dedup();
        span.record("failed_checks", checks.join(","));
    }
    if let Some(code) = &outcome.reject_code {
        span.record("reject.code", code.as_str());
    }
    let output = serde_json::json!({
        "status": outcome.status.as_str(),
        "wallet": outcome.wallet,
        "frames": outcome.frames,
        "segmentsPassed": passed,
        "segmentsFailed": failed,
        "lamportsEarned": lamports,
        "rejectCode": outcome.reject_code,
    });
    span.record("output.value", output.to_string());
}

/// A system error that kept the session from being processed: an `exception` event on `span`,
/// which marks it (and so the trace) as failed. `message` is the error with its causes.
pub fn record_error(span: &Span, message: &str) {
    span.in_scope(|| {
        tracing::error!(target: "sd_core::trace", error = %message);
    });
}
