//! `scale-diffusion export`: the clean layout as a LeRobot v3 dataset or WebDataset shards.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use sd_export::LocalClean;

use crate::args::ExportArgs;

pub fn run(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let options = args.request.options().map_err(anyhow::Error::msg)?;
    let source = LocalClean::new(&args.source)?;
    let started = Instant::now();
    let summary = sd_export::export(&source, &args.out, &options)
        .with_context(|| format!("exporting into {}", args.out.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let mut value = serde_json::to_value(&summary)?;
        value["format"] = options.format.as_str().into();
        value["seconds"] = seconds.into();
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{}", summary.describe(options.format, &args.out, seconds));
    }
    Ok(if summary.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
