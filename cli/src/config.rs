//! The quality config file: SPLICE and CLEAN thresholds (`config/quality.toml`).

use std::path::Path;

use anyhow::Context as _;
use sd_core::QualityConfig;

/// Reads `path`, or the built-in defaults (the same values as `config/quality.toml`).
pub fn load(path: Option<&Path>) -> anyhow::Result<QualityConfig> {
    let Some(path) = path else {
        return Ok(QualityConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the quality config {}", path.display()))?;
    QualityConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))
}
