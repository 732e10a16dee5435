//! The four JSON parts of a bundle as the capture client writes them (SPEC.md sections 2 and 8).
//!
//! Field names follow the client's JSON. Unknown fields are kept in `extra` so nothing the client
//! adds is lost; `null`s the real data carries (`startTime: null`) are accepted where they occur.
//! A required number that arrives as `null` is what `JSON.stringify` makes of `NaN`/`Infinity`,
//! so it is reported as a non-finite number rather than a type error.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The keys that drive the car (W, A, S, D); every other key is kept but is not a driving input.
pub const DRIVING_KEYS: [&str; 4] = ["w", "a", "s", "d"];

/// Marker the parser looks for to tell a non-finite number from other malformed JSON.
pub(crate) const NON_FINITE_MARKER: &str = "non-finite number";

fn finite<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    match Option::<f64>::deserialize(deserializer)? {
        Some(value) if value.is_finite() => Ok(value),
        _ => Err(serde::de::Error::custom(format!(
            "{NON_FINITE_MARKER}: null where a number is required (NaN or Infinity in the client)"
        ))),
    }
}

fn finite_xyz<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[f64; 3], D::Error> {
    let xyz = <[Option<f64>; 3]>::deserialize(deserializer)?;
    match xyz {
        [Some(x), Some(y), Some(z)] => Ok([x, y, z]),
        _ => Err(serde::de::Error::custom(format!(
            "{NON_FINITE_MARKER}: null in a position (NaN or Infinity in the client)"
        ))),
    }
}

/// One entry of `{sid}_inputs.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InputEvent {
    /// `performance.now()` of the page, ms.
    #[serde(deserialize_with = "finite")]
    pub t: f64,
    /// `keydown`, `keyup` or `mouse`; anything else is kept and ignored.
    #[serde(rename = "type")]
    pub kind: String,
    /// `KeyboardEvent.key`, lower-cased by the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dx: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dy: Option<f64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What an input event is, read from its `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    KeyDown,
    KeyUp,
    Mouse,
    Other,
}

impl InputEvent {
    pub fn input_kind(&self) -> InputKind {
        match self.kind.as_str() {
            "keydown" => InputKind::KeyDown,
            "keyup" => InputKind::KeyUp,
            "mouse" => InputKind::Mouse,
            _ => InputKind::Other,
        }
    }
}

/// One entry of `{sid}_camera.json`, logged every 10th animation frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CameraSample {
    /// `performance.now()` of the page, ms.
    #[serde(deserialize_with = "finite")]
    pub t: f64,
    #[serde(deserialize_with = "finite_xyz")]
    #[schemars(with = "[f64; 3]")]
    pub pos: [f64; 3],
    /// Radians.
    #[serde(deserialize_with = "finite")]
    pub yaw: f64,
    #[serde(deserialize_with = "finite")]
    pub speed: f64,
    /// `"camera"` in every real sample.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// 0 or 1, from W.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<f64>,
    /// 0 or 1, from S.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brake: Option<f64>,
    /// Per-frame yaw step (not a value in [-1, 1]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steer: Option<f64>,
    /// 1 = A, 2 = D, 3 = W, 4 = idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<f64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A field the client always writes, which may be `null`: absent is a missing field, `null` is
/// `None`.
fn nullable<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    Option::<f64>::deserialize(deserializer)
}

/// The schema of [`nullable`] fields: a number or `null`, listed as required.
fn required_nullable_number(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": ["number", "null"] })
}

/// `{sid}_latency.json`: ICE candidate-pair round-trip times, not the model's delay.
/// `avgRtt` and `rttSamples` are required (they are the latency model); `avgRtt` may be `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencyLog {
    #[serde(default)]
    pub initial_latency: Option<f64>,
    /// Mean of the samples; `null` when the client had none.
    #[serde(deserialize_with = "nullable")]
    #[schemars(schema_with = "required_nullable_number")]
    pub avg_rtt: Option<f64>,
    pub rtt_samples: Vec<RttSample>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RttSample {
    #[serde(deserialize_with = "finite")]
    pub t: f64,
    #[serde(deserialize_with = "finite")]
    pub rtt: f64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `{sid}_meta.json`, written last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub session_id: String,
    pub wallet_address: String,
    #[serde(default)]
    pub prompt: Option<String>,
    /// ms; 0 in a session whose `startTime` is `null`.
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub event_count: Option<f64>,
    /// `Date.now()` when the recorder started (epoch ms); required, may be `null`.
    #[serde(deserialize_with = "nullable")]
    #[schemars(schema_with = "required_nullable_number")]
    pub start_time: Option<f64>,
    /// Epoch ms; required, may be `null`.
    #[serde(deserialize_with = "nullable")]
    #[schemars(schema_with = "required_nullable_number")]
    pub end_time: Option<f64>,
    /// `performance.now()` of the page when `MediaRecorder.start()` ran (ms). Capture clients
    /// should write it: with it the pipeline knows the recorder start `R` instead of estimating
    /// it. The capture module in `client/` writes it; the prototype did not.
    #[serde(
        default,
        rename = "recordingStartT",
        skip_serializing_if = "Option::is_none"
    )]
    pub recording_start_t: Option<f64>,
    /// `performance.timeOrigin`: the epoch ms of the page clock's zero. With it every log `t` has
    /// an epoch time, and `startTime - timeOrigin` places the recorder start on the page clock.
    /// The capture module in `client/` writes it; the prototype did not.
    #[serde(
        default,
        rename = "timeOrigin",
        skip_serializing_if = "Option::is_none"
    )]
    pub time_origin: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<Scenario>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_summary: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_at: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Scenario {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
