//! `scale-diffusion schema`: the JSON Schemas, generated from the types.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::args::SchemaArgs;

pub fn run(args: &SchemaArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for name in sd_core::SCHEMA_NAMES {
            let schema = sd_core::schema(name).context("schema list is out of step")?;
            let path = dir.join(format!("{name}.schema.json"));
            let text = serde_json::to_string_pretty(&schema)? + "\n";
            crate::output::write_atomic(&path, text.as_bytes())?;
            println!("{}", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let name = args.name.as_deref().unwrap_or_default();
    let schema = sd_core::schema(name).with_context(|| {
        format!(
            "no schema called {name:?}; known: {}",
            sd_core::SCHEMA_NAMES.join(", ")
        )
    })?;
    crate::output::print(&(serde_json::to_string_pretty(&schema)? + "\n"))?;
    Ok(ExitCode::SUCCESS)
}
