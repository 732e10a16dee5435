//! JSON Schemas of every file the system reads or writes, generated from the types themselves so
//! they cannot drift. `docs/schemas/` holds the committed copies; a test keeps them in step.

use crate::align::AlignedFile;
use crate::config::PipelineConfig;
use crate::manifest::SessionManifest;
use crate::model::{CameraSample, InputEvent, LatencyLog, Meta};
use crate::outputs::{SegmentAlignedFile, SegmentQualityFile, SessionFile};

/// Every schema [`schema`] knows, by file stem.
pub const SCHEMA_NAMES: [&str; 10] = [
    "aligned",
    "session",
    "manifest",
    "segment-aligned",
    "segment-quality",
    "meta",
    "inputs",
    "camera",
    "latency",
    "pipeline-config",
];

/// The JSON Schema called `name` (one of [`SCHEMA_NAMES`]).
pub fn schema(name: &str) -> Option<serde_json::Value> {
    let schema = match name {
        "aligned" => schemars::schema_for!(AlignedFile),
        "session" => schemars::schema_for!(SessionFile),
        "manifest" => schemars::schema_for!(SessionManifest),
        "segment-aligned" => schemars::schema_for!(SegmentAlignedFile),
        "segment-quality" => schemars::schema_for!(SegmentQualityFile),
        "meta" => schemars::schema_for!(Meta),
        "inputs" => schemars::schema_for!(Vec<InputEvent>),
        "camera" => schemars::schema_for!(Vec<CameraSample>),
        "latency" => schemars::schema_for!(LatencyLog),
        "pipeline-config" => schemars::schema_for!(PipelineConfig),
        _ => return None,
    };
    Some(schema.to_value())
}
