//! The committed schemas in `docs/schemas/` are exactly what the types generate.

#[test]
fn committed_schemas_match_the_types() {
    let dir = sd_tests::workspace_root().join("docs").join("schemas");
    for name in sd_core::SCHEMA_NAMES {
        let path = dir.join(format!("{name}.schema.json"));
        let committed: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("{}: {err}", path.display())),
        )
        .expect("committed schema is JSON");
        // Plain `assert!`: the two documents are too long to print usefully.
        assert!(
            committed == sd_core::schema(name).expect("known schema"),
            "{} is stale: run `scale-diffusion schema --out-dir docs/schemas`",
            path.display()
        );
    }
}
