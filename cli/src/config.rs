//! The pipeline config file: thresholds, frame output, payout rate (`config/pipeline.toml`).

use std::path::Path;

use sd_core::PipelineConfig;

/// Reads `path`, or the built-in defaults (the same values as `config/pipeline.toml`).
pub fn load(path: Option<&Path>) -> anyhow::Result<PipelineConfig> {
    Ok(PipelineConfig::load(path)?)
}
