//! `docs/openapi.json` against the server: the committed document is the one the code derives,
//! every error code is documented, and [`check_response`] (which every router test's response goes
//! through) holds each real response to what the document says of its path, method and status.

use std::sync::OnceLock;

use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use super::error::{ErrorBody, ErrorCode};

const COMMITTED: &str = include_str!("../../../docs/openapi.json");

fn committed() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| serde_json::from_str(COMMITTED).expect("docs/openapi.json is JSON"))
}

/// The document's operation for a request, if it documents that path and method: its template
/// and the operation object.
fn operation(method: &Method, path: &str) -> Result<(&'static str, &'static Value), PathOutcome> {
    let paths = committed()["paths"].as_object().expect("paths");
    let segments: Vec<&str> = path.split('/').collect();
    let (template, item) = paths
        .iter()
        .find(|(template, _)| {
            let wanted: Vec<&str> = template.split('/').collect();
            wanted.len() == segments.len()
                && wanted.iter().zip(&segments).all(|(want, got)| {
                    (want.starts_with('{') && want.ends_with('}') && !got.is_empty()) || want == got
                })
        })
        .ok_or(PathOutcome::UnknownPath)?;
    let operation = item
        .get(method.as_str().to_ascii_lowercase())
        .ok_or(PathOutcome::UnknownMethod)?;
    Ok((template.as_str(), operation))
}

#[derive(Debug)]
enum PathOutcome {
    UnknownPath,
    UnknownMethod,
}

/// Validates `body` against `schema`, resolving its `$ref`s in the document's components.
fn validate(schema: &Value, body: &Value, what: &str) {
    let rooted = json!({"allOf": [schema], "components": committed()["components"]});
    let validator = jsonschema::draft202012::new(&rooted)
        .unwrap_or_else(|err| panic!("{what}: the document's schema does not compile: {err}"));
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|err| format!("{} at {}", err, err.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: the response does not match docs/openapi.json:\n{}\n{body:#}",
        errors.join("\n")
    );
}

/// Every error response: the body schema, and a code whose status is the response's.
fn check_error(status: StatusCode, body: &Value, what: &str) {
    validate(
        &json!({"$ref": "#/components/schemas/ErrorBody"}),
        body,
        what,
    );
    let error: ErrorBody = serde_json::from_value(body.clone()).expect("error body");
    assert_eq!(error.error.code.status(), status, "{what}: {body:#}");
}

/// Holds a real response to the document: its status is documented for its path and method, its
/// JSON body matches the documented schema, and it carries the documented headers. CORS
/// preflights are the CORS layer's and not operations of the API.
pub(super) fn check_response(
    method: &Method,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &Value,
) {
    let what = format!("{method} {path} -> {status}");
    if status.is_client_error() || status.is_server_error() {
        check_error(status, body, &what);
    }
    if method == Method::OPTIONS {
        return;
    }
    let operation = match operation(method, path) {
        Ok((_, operation)) => operation,
        Err(PathOutcome::UnknownPath) => {
            assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {body:#}");
            return;
        }
        Err(PathOutcome::UnknownMethod) => {
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{what}: {body:#}");
            return;
        }
    };
    let response = operation["responses"]
        .get(status.as_str())
        .unwrap_or_else(|| panic!("{what}: docs/openapi.json does not document this status"));
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{what}: docs/openapi.json gives this response no JSON schema"
    );
    validate(schema, body, &what);
    if let Some(documented) = response["headers"].as_object() {
        for name in documented.keys() {
            assert!(
                headers.contains_key(name.as_str()),
                "{what}: the documented header {name} is missing"
            );
        }
    }
}

#[test]
fn the_committed_document_is_the_one_the_code_derives() {
    let derived = super::document().expect("document");
    assert!(
        derived == COMMITTED,
        "docs/openapi.json is out of date; write it again with\n  \
         cargo run -p scale-diffusion-server -- openapi > docs/openapi.json"
    );
}

#[test]
fn every_reference_in_the_document_resolves() {
    fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target);
                }
                map.values().for_each(|inner| refs(inner, found));
            }
            Value::Array(items) => items.iter().for_each(|inner| refs(inner, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(committed(), &mut found);
    assert!(!found.is_empty());
    for target in found {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{target} points outside the document"));
        assert!(
            committed().pointer(pointer).is_some(),
            "{target} points at nothing in docs/openapi.json"
        );
    }
}

#[test]
fn every_error_code_is_documented_with_its_status() {
    let document = committed();
    let global = document["info"]["description"]
        .as_str()
        .expect("description");
    for code in <ErrorCode as strum::IntoEnumIterator>::iter() {
        let name = serde_json::to_value(code).expect("code");
        let name = name.as_str().expect("a string");
        let quoted = format!("`{name}`");
        let status = code.status();
        let in_an_operation = document["paths"]
            .as_object()
            .expect("paths")
            .values()
            .flat_map(|item| item.as_object().expect("path item").values())
            .any(|operation| {
                operation["responses"][status.as_str()]["description"]
                    .as_str()
                    .is_some_and(|text| text.contains(&quoted))
            });
        let global_status = format!("{} {quoted}", status.as_u16());
        assert!(
            in_an_operation || global.contains(&global_status),
            "{name} ({status}) is documented on no response of docs/openapi.json"
        );
    }
}

#[test]
fn a_response_the_document_does_not_allow_is_caught() {
    // The check itself must fail: an undocumented field, a wrong state, an undocumented status.
    let done = json!({
        "wallet": "w", "sessionId": "s", "state": "done", "segmentsPassed": 1,
        "segmentsFailed": 0, "lamportsEarned": 5
    });
    let path = "/v1/sessions/w/s";
    let headers = HeaderMap::new();
    check_response(&Method::GET, path, StatusCode::OK, &headers, &done);
    let mut extra = done.clone();
    extra["secret"] = json!("x");
    let mut unknown_state = done.clone();
    unknown_state["state"] = json!("paid");
    for (status, body) in [
        (StatusCode::OK, extra),
        (StatusCode::OK, unknown_state),
        (
            StatusCode::CONFLICT,
            json!({"error": {"code": "nonce_reused", "message": "m"}}),
        ),
        (
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": {"code": "rate_limited", "message": "m"}}),
        ),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "nonce_reused", "message": "m"}}),
        ),
    ] {
        let caught = std::panic::catch_unwind(|| {
            check_response(&Method::GET, path, status, &headers, &body);
        });
        assert!(caught.is_err(), "{status} {body} passed the check");
    }
}
