//! `scale-diffusion review override`: a reviewer's verdict on one segment, recorded in the ledger
//! (who, when, why, from/to) and carried out on disk (promoted to the clean layout, or taken out
//! of it into the review area).

use std::process::ExitCode;

use anyhow::Context as _;
use sd_core::{SegmentRef, Verdict};
use sd_ledger::{Ledger, LedgerError, LedgerLocation};

use crate::args::{OverrideArgs, ReviewCommand};

pub fn run(command: &ReviewCommand) -> anyhow::Result<ExitCode> {
    match command {
        ReviewCommand::Override(args) => override_segment(args),
    }
}

/// Opens a ledger that must already exist (a typo in `--ledger` must not create an empty one).
pub fn open_existing(location: &LedgerLocation) -> anyhow::Result<Ledger> {
    match Ledger::open_existing(location) {
        Err(err @ LedgerError::NotFound { .. }) => Err(err.into()),
        opened => opened.with_context(|| format!("cannot open the ledger {location}")),
    }
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

    // The files are checked before anything is recorded; the desktop app makes the same call.
    let applied = ledger.review_segment(
        &layout,
        &row.key,
        to,
        &args.reason,
        &args.by,
        &crate::clock::now_rfc3339(),
        rate,
    );
    let applied = match applied {
        Ok(applied) => applied,
        Err(err @ sd_ledger::ReviewError::Files { .. }) => anyhow::bail!(
            "{err} (--out {}, --review {})",
            args.layout.out.display(),
            args.layout.review.display()
        ),
        Err(err) => return Err(err.into()),
    };
    let (outcome, location) = (&applied.outcome, applied.location);

    let pending = sd_ledger::Payout::pending_phrase(outcome.pending.as_ref());
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
