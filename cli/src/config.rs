//! The pipeline config file: thresholds, frame output, payout rate (`config/pipeline.toml`).

use std::path::Path;

use anyhow::Context as _;
use sd_core::PipelineConfig;

/// Reads `path`, or the built-in defaults (the same values as `config/pipeline.toml`).
pub fn load(path: Option<&Path>) -> anyhow::Result<PipelineConfig> {
    let Some(path) = path else {
        return Ok(PipelineConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config {}", path.display()))?;
    PipelineConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))
}
