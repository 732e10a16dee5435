//! `review`: a reviewer's verdict on one segment published in the clean bucket. Recorded in the
//! ledger exactly as `scale-diffusion review override` records it (who, when, why, from/to; the
//! pending payout follows), then carried out by the pipeline itself: the session's fingerprint is
//! forgotten and a reprocess message queued, so a worker processes the session again and
//! publishes the segment where the ledger now says (clean or `review/`), both manifests
//! rewritten. One code path for where a segment goes, whoever asks.

use anyhow::Context as _;
use sd_core::{Location, PipelineConfig, SegmentRef, SessionId, Verdict, WalletAddress};

use crate::args::ReviewArgs;
use crate::aws::{describe, Clients};
use crate::bucket::{get_if_present, session_prefix};
use crate::event::{reprocess_message, SessionRef};

pub async fn run(clients: &Clients, args: &ReviewArgs) -> anyhow::Result<()> {
    let config = PipelineConfig::load(args.config.as_deref())?;
    let rate = config
        .payout
        .rate()
        .context("payout.lamports_per_segment is too large")?;
    let reference = SegmentRef::parse(&args.segment).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        args.ledger.ledger.is_file(),
        "no ledger at {} (pass the workers' --ledger)",
        args.ledger.ledger.display()
    );
    let mut ledger = crate::open_ledger(&args.ledger.ledger)?;
    let row = ledger.find_segment(&reference)?;
    let key = row.key.clone();
    let session = SessionRef {
        wallet: WalletAddress::parse(&key.wallet).map_err(anyhow::Error::msg)?,
        session: SessionId::parse(&key.session_id).map_err(anyhow::Error::msg)?,
    };
    // Refused before anything is recorded when the bucket does not hold the segment.
    let found = published_in(clients, &args.resources.clean_bucket, &session, key.segment).await?;
    anyhow::ensure!(
        found.is_some(),
        "{key} is in the ledger, but no manifest of s3://{} lists it: was the session processed \
         by the workers that publish there?",
        args.resources.clean_bucket
    );
    let to = if args.pass {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let outcome = ledger.override_segment(
        &key,
        to,
        &args.reason,
        &args.by,
        &crate::worker::now_rfc3339(),
        rate,
    )?;
    ledger.forget_fingerprint(&key.wallet, &key.session_id, crate::worker::now_ms())?;
    drop(ledger);
    let queue_url = crate::setup::queue_url(clients, &args.resources.queue).await?;
    clients
        .sqs
        .send_message()
        .queue_url(&queue_url)
        .message_body(reprocess_message(&session))
        .send()
        .await
        .map_err(|err| {
            anyhow::anyhow!(
                "the override is recorded (#{}), but the reprocess message could not be queued \
                 ({}): the session's next event or `review` puts {key} where the ledger says",
                outcome.recorded.id,
                describe(&err)
            )
        })?;
    let pending = sd_ledger::Payout::pending_phrase(outcome.pending.as_ref());
    let location = Location::of(outcome.segment.verdict);
    println!(
        "{key}: {} -> {} by {} ({:?}){} · queued for reprocessing: a worker moves it to s3://{}/{} · {pending}",
        outcome.recorded.from,
        outcome.recorded.to,
        args.by,
        args.reason,
        if outcome.changed { "" } else { " (unchanged)" },
        args.resources.clean_bucket,
        session_prefix(location, &key.wallet, &key.session_id),
    );
    Ok(())
}

/// Where the bucket's manifests list segment `segment` of `session`, if anywhere.
async fn published_in(
    clients: &Clients,
    bucket: &str,
    session: &SessionRef,
    segment: usize,
) -> anyhow::Result<Option<Location>> {
    for location in [Location::Clean, Location::Review] {
        let key = format!(
            "{}{}",
            session_prefix(location, session.wallet.as_str(), session.session.as_str()),
            sd_core::MANIFEST_FILE
        );
        let Some(bytes) = get_if_present(&clients.s3, bucket, &key).await? else {
            continue;
        };
        let manifest: sd_core::SessionManifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("s3://{bucket}/{key} is not a manifest"))?;
        if manifest.segments.iter().any(|s| s.segment == segment) {
            return Ok(Some(location));
        }
    }
    Ok(None)
}
