//! `config/pipeline.toml` holds exactly the built-in defaults, and bad configs are refused.

use sd_core::{PipelineConfig, QualityConfig};

#[test]
fn the_config_file_is_the_defaults() {
    let path = sd_tests::workspace_root().join("config/pipeline.toml");
    let text = std::fs::read_to_string(&path).expect("read config/pipeline.toml");
    assert_eq!(
        PipelineConfig::from_toml(&text).expect("parses"),
        PipelineConfig::default(),
        "{} and PipelineConfig::default() differ",
        path.display()
    );
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    let unknown = PipelineConfig::from_toml("[blur]\nmin_sharpnes = 3.0\n").unwrap_err();
    assert!(unknown.to_string().contains("min_sharpnes"), "{unknown}");
    let bad = PipelineConfig::from_toml("[splice]\nsegment_ms = -5.0\n").unwrap_err();
    assert!(bad.to_string().contains("segment_ms"), "{bad}");
    let table = PipelineConfig::from_toml("[blurr]\nmin_sharpness = 3.0\n").unwrap_err();
    assert!(table.to_string().contains("blurr"), "{table}");
    let rate = PipelineConfig::from_toml("[payout]\nlamports_per_segment = 0.5\n").unwrap_err();
    assert!(rate.to_string().contains("payout"), "{rate}");
    let free = PipelineConfig::from_toml("[payout]\nlamports_per_segment = 0\n").unwrap_err();
    assert!(free.to_string().contains("positive"), "{free}");
    let quality = PipelineConfig::from_toml("[output]\njpeg_quality = 0\n").unwrap_err();
    assert!(quality.to_string().contains("jpeg_quality"), "{quality}");
    // Absent keys keep their defaults.
    let partial = PipelineConfig::from_toml("[blur]\nmin_sharpness = 80.0\n").expect("parses");
    assert_eq!(partial.quality.blur.min_sharpness, 80.0);
    assert_eq!(partial.quality.splice, QualityConfig::default().splice);
    assert_eq!(partial.payout, PipelineConfig::default().payout);
}
