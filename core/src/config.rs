//! The one pipeline config file (`config/pipeline.toml`): SPLICE/CLEAN thresholds, how frames
//! are written, and what a valid segment pays.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::clean::{ConfigError, QualityConfig};
use crate::ledger::PayoutConfig;

/// Everything `scale-diffusion process` can be told. Absent keys keep their defaults, which are
/// exactly the values in `config/pipeline.toml`; unknown keys are errors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PipelineConfig {
    /// The `[splice]`, `[blur]`, `[artifacts]`, `[actions]`, `[video]` and `[alignment]` tables.
    #[serde(flatten)]
    pub quality: QualityConfig,
    #[serde(default)]
    pub output: OutputConfig,
    #[serde(default)]
    pub payout: PayoutConfig,
}

/// How segments are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// JPEG quality of extracted frames, 1-100 (libjpeg scale; 90 is close to ffmpeg's `-q:v 3`).
    pub jpeg_quality: u8,
    /// JPEG encoder threads; 0 = one per core.
    pub encoder_threads: usize,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            jpeg_quality: 90,
            encoder_threads: 0,
        }
    }
}

impl PipelineConfig {
    /// Parses the TOML file. The quality tables keep their own strictness (a misspelt threshold
    /// is an error, not a silent default).
    /// Reads the config file at `path`, or the built-in defaults (the same values as
    /// `config/pipeline.toml`) without one.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|err| {
            ConfigError(format!("cannot read the config {}: {err}", path.display()))
        })?;
        Self::from_toml(&text)
            .map_err(|err| ConfigError(format!("in {}: {}", path.display(), err.0)))
    }

    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|err| ConfigError(err.to_string()))?;
        let take = |table: &mut toml::Table, key: &str| {
            table
                .remove(key)
                .unwrap_or_else(|| toml::Value::Table(toml::Table::new()))
        };
        let output_value = take(&mut table, "output");
        let payout_value = take(&mut table, "payout");
        let output = OutputConfig::deserialize(output_value)
            .map_err(|err| ConfigError(format!("[output]: {err}")))?;
        let payout = PayoutConfig::deserialize(payout_value)
            .map_err(|err| ConfigError(format!("[payout]: {err}")))?;
        let quality = QualityConfig::deserialize(toml::Value::Table(table))
            .map_err(|err| ConfigError(err.to_string()))?;
        quality.check()?;
        if !(1..=100).contains(&output.jpeg_quality) {
            return Err(ConfigError(
                "output.jpeg_quality must lie in [1, 100]".into(),
            ));
        }
        if payout.rate().is_err() || payout.lamports_per_segment == 0 {
            return Err(ConfigError(
                "payout.lamports_per_segment must be a positive whole number of lamports, at most \
                 i64::MAX"
                    .into(),
            ));
        }
        Ok(Self {
            quality,
            output,
            payout,
        })
    }
}
