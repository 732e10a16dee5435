//! `scale-diffusion process` traced to an OTLP/HTTP receiver on 127.0.0.1 (in process, decoding
//! the protobuf): one trace per session with its steps as children and the attributes LangSmith
//! reads; the configured headers on every export; and a collector that is down or hanging
//! neither slows nor fails the run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sd_fixtures::{write_bundle, Naming, SyntheticSpec};
use sd_tests::otlp::{down_endpoint, Mode, ReceivedSpan, Receiver};
use sd_tests::{real_sessions, report_figure, stdout_with_status, Dir, REAL_WALLET};
use serde_json::Value;

use crate::process::Outputs;

const API_KEY: &str = "lsv2_test_key_0123456789";

/// `process RAW --quiet` into `dir`'s outputs, with `env` set and every other OTEL variable
/// cleared.
fn process(dir: &Dir, raw: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_scale-diffusion"));
    command
        .arg("process")
        .arg(raw)
        .args(Outputs::in_dir(dir).layout_args())
        .arg("--quiet");
    sd_tests::without_otel(&mut command).envs(env.iter().copied());
    command.output().expect("run scale-diffusion")
}

fn tracing_to(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("x-api-key={API_KEY},Langsmith-Project=scale-diffusion"),
        ),
    ]
}

fn as_env<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The session roots and, per root, its children's names.
fn children<'a>(spans: &'a [ReceivedSpan], root: &ReceivedSpan) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == root.span_id)
        .collect()
}

fn roots(spans: &[ReceivedSpan]) -> Vec<&ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.attribute("langsmith.span.kind") == Some("chain"))
        .collect()
}

fn json_attribute(span: &ReceivedSpan, key: &str) -> Value {
    let text = span
        .attribute(key)
        .unwrap_or_else(|| panic!("{}: no {key}", span.name));
    serde_json::from_str(text)
        .unwrap_or_else(|err| panic!("{}: {key} is not JSON: {err}", span.name))
}

#[test]
fn a_real_session_and_a_rejected_one_arrive_as_one_trace_each() {
    let Some(real) = real_sessions("a_real_session_and_a_rejected_one_arrive_as_one_trace_each")
    else {
        return;
    };
    let dir = Dir::new("traces_real");
    let wallet_folder = format!("raw/{REAL_WALLET}");
    let accepted = "session_1769936388223_tp5owb";
    let rejected = "session_1769938990243_832oey";
    dir.copy_session(&real, accepted, &wallet_folder);
    dir.copy_session(&real, rejected, &wallet_folder);
    let receiver = Receiver::start(Mode::Accept);
    let env = tracing_to(&receiver.endpoint());
    let output = process(&dir, &dir.path().join("raw"), &as_env(&env));
    stdout_with_status(&output, 0);
    // The exit flush sent everything before the process ended.
    let spans = receiver.spans();

    let roots = roots(&spans);
    assert_eq!(roots.len(), 2, "one root per session: {spans:#?}");
    for root in &roots {
        assert_eq!(root.service, "scale-diffusion");
        assert!(root.parent_span_id.is_empty(), "{} has a parent", root.name);
        assert_eq!(root.attribute("wallet"), Some(REAL_WALLET));
        assert_eq!(
            root.attribute("langsmith.metadata.wallet"),
            Some(REAL_WALLET)
        );
        let session = root.attribute("session_id").expect("session_id");
        assert_eq!(root.name, format!("session {session}"));
        assert_eq!(
            root.attribute("langsmith.trace.name"),
            Some(root.name.as_str())
        );
        let input = json_attribute(root, "input.value");
        assert_eq!(input["sessionId"], session);
        let output = json_attribute(root, "output.value");
        assert_eq!(output["wallet"], REAL_WALLET);
        // Every span of the trace is this root's or its children's, in the same trace.
        for child in children(&spans, root) {
            assert_eq!(child.trace_id, root.trace_id);
            assert_eq!(
                child.attribute("langsmith.span.kind"),
                Some("tool"),
                "{}",
                child.name
            );
        }
    }

    let accepted_root = roots
        .iter()
        .find(|r| r.attribute("session_id") == Some(accepted))
        .expect("the accepted session's trace");
    let steps: Vec<&str> = children(&spans, accepted_root)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let unique: BTreeSet<&str> = steps.iter().copied().collect();
    assert_eq!(
        unique,
        BTreeSet::from(["decode", "align", "splice", "clean", "publish", "ledger"]),
        "{steps:?}"
    );
    assert_eq!(accepted_root.attribute("status"), Some("accepted"));
    assert_eq!(accepted_root.attribute("frames"), Some("147"));
    for key in [
        "segments.passed",
        "segments.failed",
        "lamports.earned",
        "clock.source",
        "clock.confidence",
        "clock.runs",
    ] {
        assert!(
            accepted_root.attribute(key).is_some(),
            "no {key}: {accepted_root:#?}"
        );
    }
    let runs = json_attribute(accepted_root, "clock.runs");
    assert!(
        runs.as_array().is_some_and(|runs| runs
            .iter()
            .all(|run| run["source"].is_string() && run["confidence"].is_number())),
        "{runs}"
    );
    let passed: u64 = accepted_root
        .attribute("segments.passed")
        .and_then(|v| v.parse().ok())
        .expect("a count");
    let failed: u64 = accepted_root
        .attribute("segments.failed")
        .and_then(|v| v.parse().ok())
        .expect("a count");
    assert!(passed + failed >= 1, "{accepted_root:#?}");
    if failed > 0 {
        assert!(accepted_root
            .attribute("failed_checks")
            .is_some_and(|c| !c.is_empty()));
    }
    let align = children(&spans, accepted_root)
        .into_iter()
        .find(|s| s.name == "align")
        .expect("align");
    assert!(align.attribute("clock.source").is_some(), "{align:#?}");

    let rejected_root = roots
        .iter()
        .find(|r| r.attribute("session_id") == Some(rejected))
        .expect("the rejected session's trace");
    assert_eq!(rejected_root.attribute("status"), Some("rejected"));
    assert_eq!(rejected_root.attribute("reject.code"), Some("empty_video"));
    assert_eq!(
        json_attribute(rejected_root, "output.value")["rejectCode"],
        "empty_video"
    );
    assert_eq!(rejected_root.attribute("lamports.earned"), Some("0"));
    let steps: BTreeSet<&str> = children(&spans, rejected_root)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert!(
        steps.contains("decode") && steps.contains("ledger"),
        "{steps:?}"
    );
    assert!(
        !steps.contains("align"),
        "a rejected bundle is not aligned: {steps:?}"
    );

    // The headers on every export, and the key in no attribute.
    let headers = receiver.headers();
    assert!(!headers.is_empty());
    for request in &headers {
        assert_eq!(request.get("x-api-key").map(String::as_str), Some(API_KEY));
        assert_eq!(
            request.get("langsmith-project").map(String::as_str),
            Some("scale-diffusion")
        );
        assert_eq!(
            request.get("content-type").map(String::as_str),
            Some("application/x-protobuf")
        );
    }
    for span in &spans {
        assert!(
            span.attributes
                .values()
                .all(|value| !value.contains(API_KEY)),
            "{span:#?}"
        );
    }
}

/// A small synthetic bundle (`seconds` at 10 fps) in `dir/raw/{wallet}/`.
fn synthetic_raw(dir: &Dir) -> PathBuf {
    let raw = dir.path().join("raw");
    let mut spec = SyntheticSpec::constant_rate_seeded(12.0, 10.0, 5);
    spec.wallet = REAL_WALLET.to_owned();
    let written =
        write_bundle(&raw.join(REAL_WALLET), &spec, Naming::UploadEpoch).expect("write bundle");
    std::fs::remove_file(&written.truth).expect("drop the truth file");
    raw
}

#[test]
fn a_collector_down_or_hanging_neither_slows_nor_fails_a_run() {
    let dir = Dir::new("traces_down");
    let raw = synthetic_raw(&dir);
    let timed = |env: &[(&str, &str)]| {
        // A fresh output each time: every run does the whole work.
        let _ = std::fs::remove_dir_all(dir.path().join("out"));
        let started = Instant::now();
        let output = process(&dir, &raw, env);
        let elapsed = started.elapsed();
        stdout_with_status(&output, 0);
        (
            elapsed,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (plain, _) = timed(&[]);
    let down = tracing_to(&down_endpoint());
    let (with_down, _) = timed(&as_env(&down));
    let hanging = Receiver::start(Mode::Hang);
    let hang = tracing_to(&hanging.endpoint());
    let (with_hang, stderr) = timed(&as_env(&hang));
    report_figure(&format!(
        "process with the collector down {:.1} s, hanging {:.1} s, without tracing {:.1} s",
        with_down.as_secs_f64(),
        with_hang.as_secs_f64(),
        plain.as_secs_f64()
    ));
    // The exit flush waits 3 s at most for a hanging collector; the rest is noise on a shared
    // machine.
    let allowed = plain * 2 + Duration::from_secs(8);
    assert!(with_down < allowed, "down: {with_down:?} against {plain:?}");
    assert!(
        with_hang < allowed,
        "hanging: {with_hang:?} against {plain:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The hanging collector did get the export request: the run did try.
    assert!(
        !hanging.headers().is_empty(),
        "no export reached the hanging collector"
    );
}
