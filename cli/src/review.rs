//! `scale-diffusion review override`: a reviewer's verdict on one segment, recorded in the ledger
//! (who, when, why, from/to) and carried out on disk (promoted to the clean layout, or taken out
//! of it into the review area).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use sd_core::{Location, OutputLayout, SegmentRef, Verdict};
use sd_ledger::Ledger;

use crate::args::{OverrideArgs, ReviewCommand};

pub fn run(command: &ReviewCommand) -> anyhow::Result<ExitCode> {
    match command {
        ReviewCommand::Override(args) => override_segment(args),
    }
}

/// Opens a ledger that must already exist (a typo in `--ledger` must not create an empty one).
pub fn open_existing(path: &Path) -> anyhow::Result<Ledger> {
    anyhow::ensure!(
        path.is_file(),
        "no ledger at {} (run `scale-diffusion process` first, or pass --ledger)",
        path.display()
    );
    Ledger::open(path).with_context(|| format!("cannot open the ledger {}", path.display()))
}

fn override_segment(args: &OverrideArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::load(args.config.as_deref())?;
    let rate = config
        .payout
        .rate()
        .context("payout.lamports_per_segment is too large")?;
    let reference = SegmentRef::parse(&args.segment).map_err(anyhow::Error::msg)?;
    let mut ledger = open_existing(&args.ledger.ledger)?;
    let layout = OutputLayout::open(&args.layout.out, &args.layout.review)?;
    let row = ledger.find_segment(&reference)?;
    let to = if args.pass {
        Verdict::Pass
    } else {
        Verdict::Fail
    };

    let (_, current) = layout.find_segment(&row.key).with_context(|| {
        format!(
            "{} is in the ledger but in neither {} nor {} (run `process` again to publish it)",
            row.key,
            args.layout.out.display(),
            args.layout.review.display()
        )
    })?;
    let quality_path = current.join("quality.json");
    let quality_text = std::fs::read_to_string(&quality_path)
        .with_context(|| format!("cannot read {}", quality_path.display()))?;
    let mut quality: serde_json::Value = serde_json::from_str(&quality_text)
        .with_context(|| format!("{} is not JSON", quality_path.display()))?;

    let outcome = ledger.override_segment(
        &row.key,
        to,
        &args.reason,
        &args.by,
        &crate::clock::now_rfc3339(),
        rate,
    )?;
    let location = Location::of(outcome.segment.verdict);
    quality["placement"]["verdict"] = serde_json::to_value(outcome.segment.verdict)?;
    quality["placement"]["override"] = serde_json::to_value(&outcome.recorded)?;
    quality["placement"]["location"] = serde_json::to_value(location)?;
    let quality_json = serde_json::to_vec_pretty(&quality)?;
    layout
        .move_segment(&row.key, location, &quality_json)
        .with_context(|| {
            format!(
                "the override is recorded (#{}), but moving {} failed; the next `process` run \
                 puts it where the ledger says",
                outcome.recorded.id, row.key
            )
        })?;

    let pending = outcome
        .pending
        .as_ref()
        .map_or("nothing pending".to_owned(), |p| {
            format!("pending payout #{}: {} SOL", p.id, p.amount_sol())
        });
    crate::output::print(&format!(
        "{}: {} -> {} by {} ({:?}){} · now in {} · wallet {}\n",
        row.key,
        outcome.recorded.from,
        outcome.recorded.to,
        args.by,
        args.reason,
        if outcome.changed { "" } else { " (unchanged)" },
        layout.root(location).join(row.key.to_string()).display(),
        pending
    ))?;
    Ok(ExitCode::SUCCESS)
}
