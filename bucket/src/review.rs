//! A reviewer's verdict on a segment published in the clean bucket. Recorded in the ledger
//! exactly as `scale-diffusion review override` records it (who, when, why, from/to; the pending
//! payout follows), then carried out by the pipeline itself: the session's fingerprint is
//! forgotten and a reprocess message queued, so a worker processes the session again and
//! publishes the segment where the ledger now says (clean or `review/`), both manifests
//! rewritten. One code path for where a segment goes, whoever asks: `scale-diffusion-server
//! review` and the review app both call [`request_review`].

use std::time::{SystemTime, UNIX_EPOCH};

use sd_core::{Lamports, Location, SegmentKey, SessionManifest, Verdict, MANIFEST_FILE};
use sd_ledger::{Ledger, LedgerError, OverrideOutcome};

use crate::clients::{describe, Clients};
use crate::publish::{get_if_present, session_prefix, BucketError};
use crate::session::{reprocess_message, SessionRef};

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Bucket(#[from] BucketError),
    #[error("{key}: {why}")]
    BadKey { key: SegmentKey, why: String },
    #[error(
        "{key} is in the ledger, but no manifest of s3://{bucket} lists it: was the session \
         processed by the workers that publish there?"
    )]
    NotPublished { key: SegmentKey, bucket: String },
    #[error(
        "the override is recorded (#{id}), but the reprocess message could not be queued \
         ({detail}): the session's next event or review puts {key} where the ledger says"
    )]
    NotQueued {
        id: i64,
        key: SegmentKey,
        detail: String,
    },
}

/// Where the review lands: the clean bucket and the workers' queue, as the server names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewTarget<'a> {
    pub clean_bucket: &'a str,
    /// A queue name, or a queue URL as it is.
    pub queue: &'a str,
}

/// One verdict, as a reviewer gives it.
#[derive(Debug, Clone)]
pub struct ReviewRequest<'a> {
    pub key: &'a SegmentKey,
    pub to: Verdict,
    pub reason: &'a str,
    pub by: &'a str,
    pub at: SystemTime,
    pub rate: Lamports,
}

/// A verdict recorded and its move queued.
#[derive(Debug)]
pub struct ReviewQueued {
    pub key: SegmentKey,
    pub by: String,
    pub outcome: OverrideOutcome,
    /// Where a worker will publish the segment: `s3://{bucket}/{prefix}`.
    pub moves_to: String,
}

/// One line for the reviewer: the change, who made it, where the segment goes, the payout.
impl std::fmt::Display for ReviewQueued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let outcome = &self.outcome;
        write!(
            f,
            "{}: {} -> {} by {}{} · queued for reprocessing: a worker moves it to {} · {}",
            self.key,
            outcome.recorded.from,
            outcome.recorded.to,
            self.by,
            if outcome.changed { "" } else { " (unchanged)" },
            self.moves_to,
            sd_ledger::Payout::pending_phrase(outcome.pending.as_ref()),
        )
    }
}

/// Records `request` in `ledger` and queues the session's reprocessing. Refused before anything
/// is recorded when the bucket's manifests do not list the segment.
pub async fn request_review(
    clients: &Clients,
    ledger: &mut Ledger,
    target: &ReviewTarget<'_>,
    request: &ReviewRequest<'_>,
) -> Result<ReviewQueued, ReviewError> {
    let key = request.key;
    let session =
        SessionRef::parse(&key.wallet, &key.session_id).map_err(|why| ReviewError::BadKey {
            key: key.clone(),
            why,
        })?;
    if published_in(clients, target.clean_bucket, &session, key.segment)
        .await?
        .is_none()
    {
        return Err(ReviewError::NotPublished {
            key: key.clone(),
            bucket: target.clean_bucket.to_owned(),
        });
    }
    // The queue first: a wrong queue refuses the verdict instead of recording one that no
    // worker will carry out.
    let url = queue_url(clients, target.queue).await?;
    let now = humantime::format_rfc3339_millis(request.at).to_string();
    let now_ms = request
        .at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let outcome = ledger.override_segment(
        key,
        request.to,
        request.reason,
        request.by,
        &now,
        request.rate,
    )?;
    ledger.forget_fingerprint(&key.wallet, &key.session_id, now_ms)?;
    let queued = clients
        .sqs
        .send_message()
        .queue_url(&url)
        .message_body(reprocess_message(&session))
        .send()
        .await;
    if let Err(err) = queued {
        return Err(ReviewError::NotQueued {
            id: outcome.recorded.id,
            key: key.clone(),
            detail: format!("queue {}: {}", target.queue, describe(&err)),
        });
    }
    let location = Location::of(outcome.segment.verdict);
    let moves_to = format!(
        "s3://{}/{}",
        target.clean_bucket,
        session_prefix(location, &key.wallet, &key.session_id)
    );
    Ok(ReviewQueued {
        key: key.clone(),
        by: request.by.to_owned(),
        outcome,
        moves_to,
    })
}

/// Where the bucket's manifests list segment `segment` of `session`, if anywhere.
pub async fn published_in(
    clients: &Clients,
    bucket: &str,
    session: &SessionRef,
    segment: usize,
) -> Result<Option<Location>, BucketError> {
    for location in [Location::Clean, Location::Review] {
        let key = format!(
            "{}{MANIFEST_FILE}",
            session_prefix(location, session.wallet.as_str(), session.session.as_str()),
        );
        let Some(bytes) = get_if_present(&clients.s3, bucket, &key).await? else {
            continue;
        };
        let manifest: SessionManifest =
            serde_json::from_slice(&bytes).map_err(|err| BucketError::Untrusted {
                bucket: bucket.to_owned(),
                key: key.clone(),
                why: format!("not a manifest: {err}"),
            })?;
        if manifest.segments.iter().any(|s| s.segment == segment) {
            return Ok(Some(location));
        }
    }
    Ok(None)
}

/// The URL of the queue `name`: a queue URL as it is (on AWS the workers are given URLs and
/// need no `sqs:GetQueueUrl`), else looked up by name.
pub async fn queue_url(clients: &Clients, name: &str) -> Result<String, BucketError> {
    if name.starts_with("https://") || name.starts_with("http://") {
        return Ok(name.to_owned());
    }
    let failed = |detail: String| BucketError::Queue {
        queue: name.to_owned(),
        detail,
    };
    let found = clients
        .sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|err| {
            failed(format!(
                "no such queue: {} (run `scale-diffusion-server setup` first)",
                describe(&err)
            ))
        })?;
    found
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| failed("no URL in the answer".to_owned()))
}
