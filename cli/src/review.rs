//! `scale-diffusion review override`: a reviewer's verdict on one segment, recorded in the ledger
//! (who, when, why, from/to) and carried out on disk (promoted to the clean layout, or taken out
//! of it into the review area).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use sd_core::{Location, SegmentRef, Verdict};
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
    let layout = args.layout.open()?;
    let row = ledger.find_segment(&reference)?;
    let to = if args.pass {
        Verdict::Pass
    } else {
        Verdict::Fail
    };

    let (_, current) = layout.find_segment(&row.key).with_context(|| {
        format!(
            "{} is in the ledger but in neither {} nor {}: do --out and --review name the folders \
             `process` wrote to?",
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
    anyhow::ensure!(
        quality
            .get("placement")
            .is_some_and(serde_json::Value::is_object),
        "{} has no `placement` object (written by another version?): run `process` again first",
        quality_path.display()
    );

    let outcome = ledger.override_segment(
        &row.key,
        to,
        &args.reason,
        &args.by,
        &crate::clock::now_rfc3339(),
        rate,
    )?;
    let location = Location::of(outcome.segment.verdict);
    let placement = quality
        .get_mut("placement")
        .and_then(serde_json::Value::as_object_mut)
        .with_context(|| {
            format!(
                "{} has no `placement` object (written by another version?); the override is \
                 recorded (#{}) and the next `process` run rewrites the file",
                quality_path.display(),
                outcome.recorded.id
            )
        })?;
    placement.insert(
        "verdict".into(),
        serde_json::to_value(outcome.segment.verdict)?,
    );
    placement.insert("override".into(), serde_json::to_value(&outcome.recorded)?);
    placement.insert("location".into(), serde_json::to_value(location)?);
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

    // session.json lists every segment's placement: keep it true.
    let session_path = layout
        .root(Location::Clean)
        .join(&row.key.wallet)
        .join(&row.key.session_id)
        .join("session.json");
    if let Err(err) =
        update_session_json(&layout, &row.key, &session_path, placement_value(&quality))
    {
        eprintln!(
            "warning: {} was not updated ({err:#}); the next `process` run rewrites it",
            session_path.display()
        );
    }

    let pending =
        outcome
            .pending
            .as_ref()
            .map_or("nothing is pending for the wallet".to_owned(), |p| {
                format!(
                    "the wallet's pending payout #{} is {} SOL",
                    p.id,
                    p.amount_sol()
                )
            });
    crate::output::print(&format!(
        "{}: {} -> {} by {} ({:?}){} · now in {} · {}\n",
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

fn placement_value(quality: &serde_json::Value) -> serde_json::Value {
    quality
        .get("placement")
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// Sets the placement of `key`'s segment in its session's `session.json`.
fn update_session_json(
    layout: &sd_core::OutputLayout,
    key: &sd_core::SegmentKey,
    path: &Path,
    placement: serde_json::Value,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut session: serde_json::Value = serde_json::from_str(&text)?;
    let segment = session
        .get_mut("segments")
        .and_then(serde_json::Value::as_array_mut)
        .and_then(|segments| {
            segments.iter_mut().find(|s| {
                s.get("segment").and_then(serde_json::Value::as_u64) == Some(key.segment as u64)
            })
        })
        .and_then(serde_json::Value::as_object_mut)
        .context("the segment is not listed")?;
    segment.insert("placement".into(), placement);
    layout.replace_session_json(
        &key.wallet,
        &key.session_id,
        &serde_json::to_vec_pretty(&session)?,
    )?;
    Ok(())
}
