//! `config/quality.toml` holds exactly the built-in defaults, and bad configs are refused.

use sd_core::QualityConfig;

#[test]
fn the_config_file_is_the_defaults() {
    let path = sd_tests::workspace_root().join("config/quality.toml");
    let text = std::fs::read_to_string(&path).expect("read config/quality.toml");
    assert_eq!(
        QualityConfig::from_toml(&text).expect("parses"),
        QualityConfig::default(),
        "{} and QualityConfig::default() differ",
        path.display()
    );
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    let unknown = QualityConfig::from_toml("[blur]\nmin_sharpnes = 3.0\n").unwrap_err();
    assert!(unknown.to_string().contains("min_sharpnes"), "{unknown}");
    let bad = QualityConfig::from_toml("[splice]\nsegment_ms = -5.0\n").unwrap_err();
    assert!(bad.to_string().contains("segment_ms"), "{bad}");
    // Absent keys keep their defaults.
    let partial = QualityConfig::from_toml("[blur]\nmin_sharpness = 80.0\n").expect("parses");
    assert_eq!(partial.blur.min_sharpness, 80.0);
    assert_eq!(partial.splice, QualityConfig::default().splice);
}
