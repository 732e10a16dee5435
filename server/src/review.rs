//! `review`: a reviewer's verdict on one segment published in the clean bucket, by
//! [`sd_bucket::request_review`] (the review app calls it too): recorded in the ledger as
//! `scale-diffusion review override` records it, then carried out by a worker that reprocesses
//! the session.

use anyhow::Context as _;
use sd_bucket::{request_review, Clients, ReviewRequest, ReviewTarget};
use sd_core::{PipelineConfig, SegmentRef, Verdict};

use crate::args::ReviewArgs;

pub async fn run(clients: &Clients, args: &ReviewArgs) -> anyhow::Result<()> {
    let config = PipelineConfig::load(args.config.as_deref())?;
    let rate = config
        .payout
        .rate()
        .context("payout.lamports_per_segment is too large")?;
    let reference = SegmentRef::parse(&args.segment).map_err(anyhow::Error::msg)?;
    let location = &args.ledger.ledger;
    let mut ledger = match sd_ledger::Ledger::open_existing(location) {
        Err(sd_ledger::LedgerError::NotFound { path }) => {
            anyhow::bail!(
                "no ledger at {} (pass the workers' --ledger)",
                path.display()
            )
        }
        opened => opened.with_context(|| format!("cannot open the ledger {location}"))?,
    };
    let key = ledger.find_segment(&reference)?.key;
    let target = ReviewTarget {
        clean_bucket: &args.resources.clean_bucket,
        queue: &args.resources.queue,
    };
    let request = ReviewRequest {
        key: &key,
        to: if args.pass {
            Verdict::Pass
        } else {
            Verdict::Fail
        },
        reason: &args.reason,
        by: &args.by,
        at: std::time::SystemTime::now(),
        rate,
    };
    let queued = request_review(clients, &mut ledger, &target, &request).await?;
    println!("{queued} · reason: {:?}", args.reason);
    Ok(())
}
