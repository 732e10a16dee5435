//! `status`: what an operator looks at: the queue's depth, messages in flight, dead letters,
//! sessions by state in the ledger, and the failing ones with their reasons.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::QueueAttributeName;
use serde::Serialize;

use crate::args::StatusArgs;
use sd_bucket::{describe, Clients};

#[derive(Debug, Serialize)]
struct Status {
    queue: QueueDepth,
    dead_letter_queue: QueueDepth,
    /// Sessions by intake state: waiting (for parts), processing, done, rejected, failed.
    sessions: BTreeMap<String, u64>,
    /// Sessions whose last attempt failed with a system error, with the reason.
    failing: Vec<sd_ledger::IntakeRow>,
    /// Sessions left `processing` under an expired lease (their worker died or stalled): the
    /// next worker's sweep takes them over.
    stalled: Vec<String>,
}

#[derive(Debug, Serialize)]
struct QueueDepth {
    name: String,
    /// Messages waiting to be received.
    visible: u64,
    /// Messages received and not yet deleted (being worked on).
    in_flight: u64,
}

pub async fn run(clients: &Clients, args: &StatusArgs) -> anyhow::Result<()> {
    let resources = &args.resources;
    let queue = depth(clients, &resources.queue).await?;
    let dead_letter_queue = depth(clients, &resources.dead_letter_queue).await?;
    let ledger = crate::open_ledger(&args.ledger.ledger)?;
    let status = Status {
        queue,
        dead_letter_queue,
        sessions: ledger.intake_counts()?,
        failing: ledger.failed_sessions()?,
        stalled: ledger
            .expired_leases(crate::worker::now_ms())?
            .into_iter()
            .map(|(wallet, session)| format!("{wallet}/{session}"))
            .collect(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    println!(
        "queue {}: {} waiting, {} in flight",
        status.queue.name, status.queue.visible, status.queue.in_flight
    );
    println!(
        "dead letters {}: {}",
        status.dead_letter_queue.name, status.dead_letter_queue.visible
    );
    let states: Vec<String> = ["waiting", "processing", "done", "rejected", "failed"]
        .iter()
        .map(|state| format!("{state} {}", status.sessions.get(*state).unwrap_or(&0)))
        .collect();
    println!(
        "sessions (ledger {}): {}",
        args.ledger.ledger,
        states.join(", ")
    );
    for session in &status.stalled {
        println!("  stalled {session}: its worker's lease expired (the next sweep takes it over)");
    }
    for row in &status.failing {
        println!(
            "  failing {}/{} ({} failures): {}",
            row.wallet,
            row.session_id,
            row.failures,
            row.last_error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

async fn depth(clients: &Clients, name: &str) -> anyhow::Result<QueueDepth> {
    let url = sd_bucket::queue_url(clients, name).await?;
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|err| anyhow::anyhow!("cannot read {name}'s depth: {}", describe(&err)))?;
    let get = |key: QueueAttributeName| {
        attributes
            .attributes()
            .and_then(|a| a.get(&key))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(QueueDepth {
        name: name.to_owned(),
        visible: get(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    })
}
