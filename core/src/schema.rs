//! JSON Schemas of every file the system reads or writes, generated from the types themselves so
//! they cannot drift. `docs/schemas/` holds the committed copies; a test keeps them in step.

use crate::align::AlignedFile;
use crate::clean::QualityConfig;
use crate::model::{CameraSample, InputEvent, LatencyLog, Meta};

/// Every schema [`schema`] knows, by file stem.
pub const SCHEMA_NAMES: [&str; 6] = [
    "aligned",
    "meta",
    "inputs",
    "camera",
    "latency",
    "quality-config",
];

/// The JSON Schema called `name` (one of [`SCHEMA_NAMES`]).
pub fn schema(name: &str) -> Option<serde_json::Value> {
    let schema = match name {
        "aligned" => schemars::schema_for!(AlignedFile),
        "meta" => schemars::schema_for!(Meta),
        "inputs" => schemars::schema_for!(Vec<InputEvent>),
        "camera" => schemars::schema_for!(Vec<CameraSample>),
        "latency" => schemars::schema_for!(LatencyLog),
        "quality-config" => schemars::schema_for!(QualityConfig),
        _ => return None,
    };
    Some(schema.to_value())
}
