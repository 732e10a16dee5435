//! `worker`: long-polls the queue, and for every session an event points at, decides from the
//! raw bucket's listing and the ledger's intake row what to do: wait for missing parts, skip a
//! bundle already processed (same parts, same ETags), or take the session's lease and run it
//! through `sd_core::process_session` (the same function as `scale-diffusion process`) into the
//! clean bucket and the ledger.
//!
//! Order of effects: publish, then the ledger (one transaction, fenced by the lease), then the
//! message is deleted. At-least-once delivery is the norm: a duplicate event finds the same
//! fingerprint and is dropped; a redelivery after a crash finds the lease expired and processes
//! the session again, replacing (never adding to) its record. A system error is counted in the
//! ledger and the message is left to come back; after the queue's `maxReceiveCount` it goes to
//! the dead-letter queue, its reason in the ledger for the operator.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use sd_core::{
    DuplicateConfig, EarlierLookup, Lamports, Limits, OverrideNote, PipelineConfig, RunInfo,
    SegmentFingerprint, SessionId, SessionJob, SessionLedger, SessionOutcome, SessionRecord,
    Verdict, WalletAddress,
};
use sd_ledger::{IntakeState, Lease, Ledger, LedgerError};
use tokio::sync::watch;

use crate::args::WorkerArgs;
use crate::event::parse_notification;
use crate::fetch::{download, list_wallet, SessionParts};
use sd_bucket::{describe, BucketTarget, Clients, SessionRef};
use tracing::Instrument as _;

/// Test hook: with `SD_TEST_FAIL_SESSION=<session id>` set, processing that session fails with
/// a system error every time, as a poison session's would (the fault tests drive it into the
/// dead-letter queue).
const FAIL_SESSION_ENV: &str = "SD_TEST_FAIL_SESSION";

/// What became of one session an event pointed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Processed (accepted or rejected) and recorded.
    Processed,
    /// Parts still missing, within the timeout: the next part's event (or the sweep) comes back.
    Waiting { missing: Vec<String> },
    /// These parts were processed already: nothing to do.
    Unchanged,
    /// Another worker (or another loop of this one) holds the session, its lease running for
    /// `lease_left` more: the message comes back later (`busy_backoff`).
    Busy { lease_left: Duration },
    /// A system error (counted in the ledger): the message comes back, and after too many
    /// receives goes to the dead-letter queue.
    Failed(String),
}

/// Everything a worker needs, shared by its tasks.
struct Worker {
    clients: Clients,
    args: WorkerArgs,
    queue_url: String,
    config: PipelineConfig,
    limits: Limits,
    rate: Lamports,
    ledger: Arc<Mutex<Ledger>>,
    name: String,
    work_dir: PathBuf,
    runtime: tokio::runtime::Handle,
}

pub async fn run(clients: Clients, args: WorkerArgs) -> anyhow::Result<()> {
    let config = PipelineConfig::load(args.config.as_deref())?;
    let rate = config
        .payout
        .rate()
        .context("payout.lamports_per_segment is too large")?;
    let queue_url = sd_bucket::queue_url(&clients, &args.resources.queue).await?;
    let ledger = crate::open_ledger(&args.ledger.ledger)?;
    if let Some(ledger_rate) = ledger.rate()? {
        anyhow::ensure!(
            ledger_rate == rate,
            "the ledger {} pays {} lamports per segment but the config says {}",
            args.ledger.ledger,
            ledger_rate.0,
            rate.0
        );
    }
    check_timing(&args)?;
    let name = match &args.name {
        Some(name) => name.clone(),
        // With a random part: containers sharing a host name each run as pid 1, and two
        // workers of one name would take each other's leases.
        None => format!(
            "{}-{}-{:04x}",
            host_name(),
            std::process::id(),
            std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), now_ms()) & 0xffff
        ),
    };
    anyhow::ensure!(
        !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
        "--name {name:?}: use 1-64 characters of A-Z a-z 0-9 - _ ."
    );
    let work_root = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join("scale-diffusion-worker"),
    };
    let (work_dir, work_lock) = claim_work_dir(&work_root, &name)?;
    let worker = Arc::new(Worker {
        clients,
        queue_url,
        config,
        limits: Limits::default(),
        rate,
        ledger: Arc::new(Mutex::new(ledger)),
        name,
        work_dir: work_dir.clone(),
        runtime: tokio::runtime::Handle::current(),
        args,
    });
    tracing::info!(
        worker = %worker.name,
        resources = %crate::setup::describe_resources(&worker.args.resources),
        "worker starts"
    );

    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_termination().await;
        tracing::info!("termination asked: no new messages; finishing the current session");
        let _ = stop_tx.send(true);
    });

    let result = serve(&worker, &stop).await;
    // This worker's temporary folders go whatever happened (a session given back may still have
    // a pipeline thread writing there: it stops with the process).
    if let Err(err) = std::fs::remove_dir_all(&work_dir) {
        tracing::warn!("cannot remove {}: {err}", work_dir.display());
    }
    drop(work_lock);
    result
}

/// `--sessions-at-once` receive loops, until termination is asked (or a session had to be given
/// back). Each loop takes one message at a time; the first also sweeps overdue sessions.
async fn serve(worker: &Arc<Worker>, stop: &watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut loops = tokio::task::JoinSet::new();
    for slot in 0..worker.args.sessions_at_once {
        let (worker, stop) = (Arc::clone(worker), stop.clone());
        loops.spawn(async move { receive_loop(&worker, &stop, slot).await });
    }
    while let Some(ended) = loops.join_next().await {
        match ended {
            Ok(Ok(())) => {}
            Ok(Err(GaveBack)) => {
                // Past the grace period: the other loops are giving theirs back too.
                tracing::info!("worker stops (session given back)");
            }
            Err(join) => {
                loops.abort_all();
                anyhow::bail!("a receive loop failed: {join}");
            }
        }
    }
    tracing::info!("worker stops");
    Ok(())
}

/// One receive loop, `slot` of the worker's: a message at a time. Its leases are held as
/// `{name}/{slot}`, so that two loops of one worker never take each other's session.
async fn receive_loop(
    worker: &Arc<Worker>,
    stop: &watch::Receiver<bool>,
    slot: u16,
) -> Result<(), GaveBack> {
    let holder = format!("{}/{slot}", worker.name);
    let sweeps = slot == 0;
    let mut backoff = Duration::from_secs(1);
    let mut last_sweep = std::time::Instant::now();
    while !*stop.borrow() {
        if sweeps && last_sweep.elapsed() >= sweep_every(&worker.args) {
            last_sweep = std::time::Instant::now();
            if let Err(err) = worker.sweep(&holder, stop).await {
                tracing::warn!("sweep of overdue sessions failed: {err:#}");
            }
        }
        let received = {
            let mut stop = stop.clone();
            tokio::select! {
                received = worker.receive() => received,
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
        };
        let messages = match received {
            Ok(messages) => {
                backoff = Duration::from_secs(1);
                messages
            }
            Err(err) => {
                tracing::warn!("cannot receive from the queue (retrying in {backoff:?}): {err:#}");
                let mut stop = stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|stopped| *stopped) => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        for message in messages {
            worker.handle_message(&message, &holder, stop).await?;
            if *stop.borrow() {
                break;
            }
        }
    }
    Ok(())
}

/// The timing knobs must hold together: heartbeats well inside the lease (a lease renewed too
/// late is lost while its worker still works), durations SQLite's integer milliseconds can hold.
fn check_timing(args: &WorkerArgs) -> anyhow::Result<()> {
    const MAX: Duration = Duration::from_secs(30 * 24 * 3600);
    for (flag, value) in [
        ("--incomplete-timeout", args.incomplete_timeout),
        ("--lease", args.lease),
        ("--heartbeat", args.heartbeat),
        ("--grace", args.grace),
    ] {
        anyhow::ensure!(value <= MAX, "{flag} {value:?} is longer than 30 days");
    }
    anyhow::ensure!(
        args.heartbeat >= Duration::from_secs(1),
        "--heartbeat must be at least 1s"
    );
    anyhow::ensure!(
        args.lease >= args.heartbeat * 2,
        "--lease ({:?}) must be at least twice --heartbeat ({:?}): a lease is renewed every heartbeat",
        args.lease,
        args.heartbeat
    );
    anyhow::ensure!(
        args.incomplete_timeout >= Duration::from_secs(1),
        "--incomplete-timeout must be at least 1s"
    );
    Ok(())
}

/// This worker's own folder under `root` (`root/{name}`), locked for as long as the worker runs;
/// folders of workers that are gone (their lock free: killed, crashed) are removed first.
fn claim_work_dir(root: &Path, name: &str) -> anyhow::Result<(PathBuf, std::fs::File)> {
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    let entries =
        std::fs::read_dir(root).with_context(|| format!("cannot list {}", root.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(lock) = std::fs::File::open(path.join(".lock")) else {
            continue;
        };
        if lock.try_lock().is_ok() {
            tracing::info!(path = %path.display(), "removing a stopped worker's folder");
            drop(lock);
            let _ = std::fs::remove_dir_all(&path);
        }
    }
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock_path = dir.join(".lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => Ok((dir, lock)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another worker named {name} is running (it holds {}): give each worker its own --name",
            lock_path.display()
        ),
        Err(std::fs::TryLockError::Error(err)) => {
            Err(err).with_context(|| format!("cannot lock {}", lock_path.display()))
        }
    }
}

/// The grace period ran out while a session was processing; it was given back.
#[derive(Debug)]
struct GaveBack;

fn sweep_every(args: &WorkerArgs) -> Duration {
    (args.incomplete_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

impl Worker {
    async fn receive(&self) -> anyhow::Result<Vec<Message>> {
        let wait = self.args.wait.as_secs().min(20) as i32;
        let received = self
            .clients
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(1)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .wait_time_seconds(wait)
            .visibility_timeout(self.visibility_s())
            .send()
            .await
            .map_err(|err| anyhow::anyhow!("{}", describe(&err)))?;
        Ok(received.messages().to_vec())
    }

    /// How long a received message stays hidden: three heartbeats.
    fn visibility_s(&self) -> i32 {
        (self.args.heartbeat.as_secs().max(1) * 3).min(43_200) as i32
    }

    async fn handle_message(
        self: &Arc<Self>,
        message: &Message,
        holder: &str,
        stop: &watch::Receiver<bool>,
    ) -> Result<(), GaveBack> {
        let Some(receipt) = message.receipt_handle() else {
            return Ok(());
        };
        let body = message.body().unwrap_or_default();
        let notification = parse_notification(body, &self.args.resources.raw_bucket);
        for dropped in &notification.dropped {
            tracing::info!("event dropped: {dropped}");
        }
        // Keep the message hidden while its sessions are worked on.
        let heartbeat = self.spawn_message_heartbeat(receipt.to_owned());
        // When the message must come back: the latest any of its sessions asks for.
        let mut retry_in: Option<Duration> = None;
        for session in &notification.sessions {
            let handled = self.handle_session(session, holder, stop).await;
            let handled = match handled {
                Ok(handled) => handled,
                Err(GaveBack) => {
                    heartbeat.abort();
                    self.change_visibility(receipt, 0).await;
                    return Err(GaveBack);
                }
            };
            tracing::info!(session = %session, outcome = ?handled, "session handled");
            let again = match &handled {
                Handled::Busy { lease_left } => Some(busy_backoff(
                    receive_count(message),
                    self.args.heartbeat,
                    *lease_left,
                )),
                Handled::Failed(_) => Some(failure_backoff(receive_count(message))),
                _ => None,
            };
            retry_in = retry_in.max(again);
        }
        heartbeat.abort();
        if let Some(retry_in) = retry_in {
            self.change_visibility(receipt, retry_in.as_secs().clamp(1, 43_000) as i32)
                .await;
        } else {
            if let Err(err) = self
                .clients
                .sqs
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(receipt)
                .send()
                .await
            {
                // The message comes back; its sessions are then unchanged and it goes.
                tracing::warn!("cannot delete a handled message: {}", describe(&err));
            }
        }
        Ok(())
    }

    async fn change_visibility(&self, receipt: &str, seconds: i32) {
        if let Err(err) = self
            .clients
            .sqs
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds)
            .send()
            .await
        {
            tracing::warn!("cannot change a message's visibility: {}", describe(&err));
        }
    }

    fn spawn_message_heartbeat(self: &Arc<Self>, receipt: String) -> tokio::task::JoinHandle<()> {
        let worker = Arc::clone(self);
        spawn_heartbeat(self.args.heartbeat, move || {
            let (worker, receipt) = (Arc::clone(&worker), receipt.clone());
            async move {
                worker
                    .change_visibility(&receipt, worker.visibility_s())
                    .await;
                true
            }
        })
    }

    /// Sessions no event may ever bring back: still waiting for parts past the timeout (the part
    /// may never come), or left `processing` under an expired lease (their worker died, and the
    /// event may have been dead-lettered meanwhile).
    async fn sweep(
        self: &Arc<Self>,
        holder: &str,
        stop: &watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let now = now_ms();
        let cutoff = now - self.args.incomplete_timeout.as_millis() as i64;
        let overdue = self
            .with_ledger(move |ledger| {
                let mut overdue = ledger.waiting_older_than(cutoff)?;
                overdue.extend(ledger.expired_leases(now)?);
                Ok(overdue)
            })
            .await?;
        for (wallet, session) in overdue {
            let (Ok(wallet), Ok(session)) =
                (WalletAddress::parse(&wallet), SessionId::parse(&session))
            else {
                continue;
            };
            let session = SessionRef { wallet, session };
            match self.handle_session(&session, holder, stop).await {
                Ok(handled) => {
                    tracing::info!(session = %session, outcome = ?handled, "overdue session handled")
                }
                Err(GaveBack) => break,
            }
        }
        Ok(())
    }

    async fn handle_session(
        self: &Arc<Self>,
        session: &SessionRef,
        holder: &str,
        stop: &watch::Receiver<bool>,
    ) -> Result<Handled, GaveBack> {
        match self.try_session(session, holder, stop).await {
            Ok(handled) => Ok(handled),
            Err(SessionFailure::GaveBack) => Err(GaveBack),
            Err(SessionFailure::Error(err)) => {
                let text = format!("{err:#}");
                tracing::error!(session = %session, "system error: {text}");
                Ok(Handled::Failed(text))
            }
        }
    }

    async fn try_session(
        self: &Arc<Self>,
        session: &SessionRef,
        holder: &str,
        stop: &watch::Receiver<bool>,
    ) -> Result<Handled, SessionFailure> {
        let now = now_ms();
        let (wallet, id) = (session.wallet.to_string(), session.session.to_string());
        let intake = self
            .with_ledger({
                let (wallet, id) = (wallet.clone(), id.clone());
                move |ledger| Ok(ledger.note_seen(&wallet, &id, now)?)
            })
            .await?;
        // A first look, without the lease: most events find parts missing or already processed.
        let parts = match self.list_parts(session).await {
            Ok(parts) => parts,
            Err(err) => {
                // Counted on the session, so that an operator sees why its events fail.
                let text = format!("{err:#}");
                let _ = self
                    .with_ledger(move |ledger| {
                        Ok(ledger.note_error(&wallet, &id, &text, now_ms())?)
                    })
                    .await;
                return Err(err.into());
            }
        };
        let waited = Duration::from_millis((now - intake.first_seen_ms).max(0) as u64);
        let timed_out = waited >= self.args.incomplete_timeout;
        let missing = parts.missing();
        if !missing.is_empty() && !timed_out {
            return Ok(Handled::Waiting {
                missing: missing.iter().map(|k| k.name().to_owned()).collect(),
            });
        }
        let finished = matches!(intake.state, IntakeState::Done | IntakeState::Rejected);
        if finished && intake.parts_fingerprint.as_deref() == Some(parts.fingerprint().as_str()) {
            return Ok(Handled::Unchanged);
        }
        let lease_ms = self.args.lease.as_millis() as i64;
        let lease = self
            .with_ledger({
                let (wallet, id, name) = (wallet.clone(), id.clone(), holder.to_owned());
                move |ledger| Ok(ledger.acquire_lease(&wallet, &id, &name, now_ms(), lease_ms)?)
            })
            .await?;
        let Some(lease) = lease else {
            let row = self
                .with_ledger(move |ledger| Ok(ledger.intake(&wallet, &id)?))
                .await?;
            let left_ms = row
                .and_then(|row| row.lease_expires_ms)
                .map_or(0, |expires| expires - now_ms());
            let lease_left = Duration::from_millis(left_ms.clamp(0, 12 * 3_600_000) as u64);
            return Ok(Handled::Busy { lease_left });
        };
        // Under the lease, look again: another worker may have finished these parts, or newer
        // ones may have come, since the first look. What is processed is what is listed now.
        let parts = match self.list_parts(session).await {
            Ok(parts) => parts,
            Err(err) => {
                self.give_back(lease, IntakeState::Waiting).await;
                return Err(err.into());
            }
        };
        let fingerprint = parts.fingerprint();
        let missing = parts.missing();
        if !missing.is_empty() && !timed_out {
            self.give_back(lease, IntakeState::Waiting).await;
            return Ok(Handled::Waiting {
                missing: missing.iter().map(|k| k.name().to_owned()).collect(),
            });
        }
        let finished = matches!(
            lease.previous_state,
            IntakeState::Done | IntakeState::Rejected
        );
        if finished && lease.parts_fingerprint.as_deref() == Some(fingerprint.as_str()) {
            let previous = lease.previous_state;
            self.give_back(lease, previous).await;
            return Ok(Handled::Unchanged);
        }
        if !missing.is_empty() {
            tracing::warn!(
                session = %session,
                missing = ?missing.iter().map(|k| k.name()).collect::<Vec<_>>(),
                waited_s = waited.as_secs(),
                "parts still missing past the timeout: rejecting"
            );
        }
        let result = self
            .process(session, &parts, &lease, fingerprint, stop)
            .await;
        match result {
            Ok(outcome) => {
                tracing::info!(
                    session = %session,
                    status = outcome.status.as_str(),
                    reject = outcome.reject_code.as_deref().unwrap_or(""),
                    segments = outcome.segments,
                    clean = outcome.clean_segments,
                    review = outcome.review_segments,
                    seconds = outcome.seconds,
                    "session processed"
                );
                if outcome.placements_stale {
                    // An override landed while it processed: once more, so that the bucket
                    // follows the ledger.
                    self.request_reprocess(session).await?;
                }
                Ok(Handled::Processed)
            }
            Err(SessionFailure::GaveBack) => {
                self.give_back(lease, IntakeState::Waiting).await;
                Err(SessionFailure::GaveBack)
            }
            Err(SessionFailure::Error(err)) => {
                let text = format!("{err:#}");
                let recorded = self
                    .with_ledger({
                        let text = text.clone();
                        move |ledger| Ok(ledger.record_failure(&lease, &text, now_ms())?)
                    })
                    .await;
                match recorded {
                    Ok(failures) => {
                        tracing::error!(session = %session, failures, "system error: {text}")
                    }
                    Err(err) => {
                        tracing::error!(session = %session, "system error: {text} (and cannot record it: {err:#})")
                    }
                }
                Ok(Handled::Failed(text))
            }
        }
    }

    /// Forgets the session's fingerprint and queues a reprocess message for it.
    async fn request_reprocess(&self, session: &SessionRef) -> anyhow::Result<()> {
        let (wallet, id) = (session.wallet.to_string(), session.session.to_string());
        self.with_ledger(move |ledger| Ok(ledger.forget_fingerprint(&wallet, &id, now_ms())?))
            .await?;
        self.clients
            .sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(sd_bucket::reprocess_message(session))
            .send()
            .await
            .map_err(|err| anyhow::anyhow!("cannot queue a reprocess: {}", describe(&err)))?;
        Ok(())
    }

    async fn list_parts(&self, session: &SessionRef) -> anyhow::Result<SessionParts> {
        let listing = list_wallet(
            &self.clients.s3,
            &self.args.resources.raw_bucket,
            session.wallet.as_str(),
        )
        .await?;
        Ok(SessionParts::pick(session, &listing))
    }

    /// Releases the lease (`state` after it); a failure here only delays the session until the
    /// lease expires.
    async fn give_back(&self, lease: Lease, state: IntakeState) {
        let released = self
            .with_ledger(move |ledger| Ok(ledger.release_lease(&lease, state, now_ms())?))
            .await;
        if let Err(err) = released {
            tracing::warn!("cannot release a lease (it expires by itself): {err:#}");
        }
    }

    /// Downloads, processes and publishes one session under its lease, renewing the lease while
    /// it works; gives up at the end of the grace period after a termination request.
    async fn process(
        self: &Arc<Self>,
        session: &SessionRef,
        parts: &SessionParts,
        lease: &Lease,
        fingerprint: String,
        stop: &watch::Receiver<bool>,
    ) -> Result<SessionOutcome, SessionFailure> {
        if std::env::var(FAIL_SESSION_ENV).is_ok_and(|id| id == session.session.as_str()) {
            return Err(
                anyhow::anyhow!("{FAIL_SESSION_ENV}: failing this session as asked").into(),
            );
        }
        // One trace per session processed: fetch, then the pipeline's steps, as its children.
        let origin = format!(
            "s3://{}/{}/{}",
            self.args.resources.raw_bucket, session.wallet, session.session
        );
        let trace = sd_core::trace::session_span(
            session.session.as_str(),
            Some(session.wallet.as_str()),
            &origin,
        );
        let temp = match tempfile::Builder::new()
            .prefix("session-")
            .tempdir_in(&self.work_dir)
        {
            Ok(temp) => temp,
            Err(err) => {
                let text = format!(
                    "cannot create a folder in {}: {err}",
                    self.work_dir.display()
                );
                sd_core::trace::record_error(&trace, &text);
                return Err(anyhow::anyhow!(text).into());
            }
        };
        let renewals = self.spawn_lease_renewal(lease.clone());
        let work = self
            .download_and_run(session, parts, lease, fingerprint, temp.path(), origin)
            .instrument(trace.clone());
        let outcome = tokio::select! {
            outcome = work => outcome,
            () = grace_over(stop.clone(), self.args.grace) => {
                renewals.abort();
                trace.record("status", "given_back");
                tracing::warn!(session = %session, "grace period over: giving the session back");
                // The abandoned pipeline thread may still write into `temp`: the folder goes
                // with the worker's own folder when the worker stops.
                let _ = temp.keep();
                return Err(SessionFailure::GaveBack);
            }
        };
        renewals.abort();
        drop(temp);
        outcome.map_err(SessionFailure::from)
    }

    /// The parts into `dir`, then the pipeline on a blocking thread, publishing to the clean
    /// bucket behind the lease's fence and recording under the lease.
    async fn download_and_run(
        self: &Arc<Self>,
        session: &SessionRef,
        parts: &SessionParts,
        lease: &Lease,
        fingerprint: String,
        dir: &Path,
        origin: String,
    ) -> anyhow::Result<SessionOutcome> {
        let fetched = download(
            &self.clients.s3,
            &self.args.resources.raw_bucket,
            session,
            parts,
            &self.limits,
            dir,
        )
        .instrument(sd_core::trace::step_span("fetch"))
        .await;
        let source = match fetched {
            Ok(source) => source,
            Err(err) => {
                sd_core::trace::record_error(&tracing::Span::current(), &format!("{err:#}"));
                return Err(err);
            }
        };
        let worker = Arc::clone(self);
        let lease = lease.clone();
        let staging = dir.join("staging");
        let trace = tracing::Span::current();
        let job = tokio::task::spawn_blocking(move || {
            let _trace = trace.entered();
            let run = RunInfo {
                run_id: format!("{}-{}", lease.holder.replace('/', "-"), now_ms()),
                processed_at: now_rfc3339(),
            };
            let fence = {
                let (ledger, lease) = (Arc::clone(&worker.ledger), lease.clone());
                let ttl = worker.args.lease.as_millis() as i64;
                Box::new(move || {
                    let mut ledger = lock(&ledger).map_err(|err| err.to_string())?;
                    match ledger.renew_lease(&lease, now_ms(), ttl) {
                        Ok(true) => Ok(()),
                        Ok(false) => Err("the session's lease was lost to another worker".into()),
                        Err(err) => Err(format!("cannot check the session's lease: {err}")),
                    }
                })
            };
            let mut target = BucketTarget::new(
                worker.clients.s3.clone(),
                worker.args.resources.clean_bucket.clone(),
                worker.runtime.clone(),
                staging,
                fence,
            );
            let mut ledger = LeasedLedger {
                ledger: &worker.ledger,
                lease: &lease,
                fingerprint: &fingerprint,
            };
            let job = SessionJob {
                source: &source,
                config: &worker.config,
                limits: &worker.limits,
                rate: worker.rate,
                run: &run,
                label: "session",
                origin: &origin,
            };
            sd_core::process_session(job, &mut target, &mut ledger, |_| {})
        });
        match job.await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(err)) => Err(anyhow::Error::new(err)),
            Err(join) => {
                let text = format!("the pipeline thread failed: {join}");
                sd_core::trace::record_error(&tracing::Span::current(), &text);
                Err(anyhow::anyhow!(text))
            }
        }
    }

    fn spawn_lease_renewal(self: &Arc<Self>, lease: Lease) -> tokio::task::JoinHandle<()> {
        let worker = Arc::clone(self);
        spawn_heartbeat(self.args.heartbeat, move || {
            let (worker, lease) = (Arc::clone(&worker), lease.clone());
            async move {
                let ttl = worker.args.lease.as_millis() as i64;
                let renewed = worker
                    .with_ledger(move |ledger| Ok(ledger.renew_lease(&lease, now_ms(), ttl)?))
                    .await;
                match renewed {
                    Ok(true) => true,
                    Ok(false) => {
                        tracing::warn!("lease lost: the ledger will refuse this run's record");
                        false
                    }
                    Err(err) => {
                        tracing::warn!("cannot renew the lease: {err:#}");
                        true
                    }
                }
            }
        })
    }

    /// Runs a ledger call on a blocking thread (SQLite waits on locks).
    async fn with_ledger<T: Send + 'static>(
        &self,
        call: impl FnOnce(&mut Ledger) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let ledger = Arc::clone(&self.ledger);
        tokio::task::spawn_blocking(move || {
            let mut guard = lock(&ledger)?;
            call(&mut guard)
        })
        .await
        .context("the ledger thread failed")?
    }
}

/// Runs `beat` every `period`, the first time one period from now, until the task is aborted or
/// `beat` returns false.
fn spawn_heartbeat<F, Fut>(period: Duration, mut beat: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tick.tick().await;
            if !beat().await {
                return;
            }
        }
    })
}

/// How many times SQS has handed this message out (1 the first time).
fn receive_count(message: &Message) -> u32 {
    message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}

/// When a message whose session failed comes back: 5 s, then doubling up to 5 minutes, so that
/// an outage of the endpoint (not the session's fault) spends the queue's receives slowly: with
/// 8 receives before the dead-letter queue, about 10 minutes.
fn failure_backoff(receives: u32) -> Duration {
    let doublings = receives.saturating_sub(1).min(6);
    (Duration::from_secs(5) * 2u32.pow(doublings)).min(Duration::from_secs(300))
}

/// When a message whose session is held elsewhere comes back: one heartbeat after the first
/// receive, doubling with each receive, and never later than just after the holder's lease runs
/// out (it renews it while it works; a holder that died frees it then). Most holders finish within
/// a heartbeat or two, so the duplicate event goes soon. At the defaults (20 s heartbeat, 2 min
/// lease): 20 s, 40 s, 80 s, then every 2 min, so a session held for over 10 minutes would send
/// such an event to the dead-letter queue after 8 receives (one-minute sessions take seconds).
fn busy_backoff(receives: u32, heartbeat: Duration, lease_left: Duration) -> Duration {
    let doublings = receives.saturating_sub(1).min(10);
    (heartbeat * 2u32.pow(doublings)).min(lease_left + Duration::from_secs(1))
}

/// Resolves once termination was asked and the grace period has run out since.
async fn grace_over(mut stop: watch::Receiver<bool>, grace: Duration) {
    if stop.wait_for(|stopped| *stopped).await.is_err() {
        // The sender is gone: no termination can come.
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(grace).await;
}

#[derive(Debug)]
enum SessionFailure {
    GaveBack,
    Error(anyhow::Error),
}

impl From<anyhow::Error> for SessionFailure {
    fn from(err: anyhow::Error) -> Self {
        SessionFailure::Error(err)
    }
}

fn lock(ledger: &Mutex<Ledger>) -> anyhow::Result<std::sync::MutexGuard<'_, Ledger>> {
    ledger
        .lock()
        .map_err(|_| anyhow::anyhow!("the ledger's lock was poisoned by a failed thread"))
}

/// The ledger under a session's lease: the record is written only while the lease holds, with
/// the parts' fingerprint, in one transaction.
struct LeasedLedger<'a> {
    ledger: &'a Mutex<Ledger>,
    lease: &'a Lease,
    fingerprint: &'a str,
}

#[derive(Debug, thiserror::Error)]
enum LeasedLedgerError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the ledger's lock was poisoned by a failed thread")]
    Poisoned,
}

impl SessionLedger for LeasedLedger<'_> {
    type Error = LeasedLedgerError;

    fn session_overrides(
        &mut self,
        wallet: &WalletAddress,
        session: &SessionId,
    ) -> Result<Vec<OverrideNote>, LeasedLedgerError> {
        let ledger = self
            .ledger
            .lock()
            .map_err(|_| LeasedLedgerError::Poisoned)?;
        Ok(ledger.session_overrides(wallet.as_str(), session.as_str())?)
    }

    fn earlier_segments(
        &mut self,
        wallet: &WalletAddress,
        session: &SessionId,
        fingerprint: &SegmentFingerprint,
        rule: &DuplicateConfig,
    ) -> Result<EarlierLookup, LeasedLedgerError> {
        let ledger = self
            .ledger
            .lock()
            .map_err(|_| LeasedLedgerError::Poisoned)?;
        Ok(ledger.earlier_segments(wallet.as_str(), session.as_str(), fingerprint, rule)?)
    }

    fn record_session(
        &mut self,
        record: &SessionRecord,
        rate: Lamports,
        run: &RunInfo,
    ) -> Result<Vec<Verdict>, LeasedLedgerError> {
        let mut ledger = self
            .ledger
            .lock()
            .map_err(|_| LeasedLedgerError::Poisoned)?;
        let recorded = ledger.finish_session(
            self.lease,
            record,
            rate,
            &run.processed_at,
            &run.run_id,
            self.fingerprint,
            now_ms(),
        )?;
        Ok(recorded.segments.iter().map(|row| row.verdict).collect())
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "worker".to_owned())
}

/// Resolves on SIGTERM or Ctrl-C.
pub(crate) async fn wait_for_termination() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(err) => {
            tracing::warn!("cannot listen for SIGTERM: {err}");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_session_is_looked_at_again_soon_then_less_often_never_after_its_lease() {
        let beat = Duration::from_secs(20);
        let lease = Duration::from_secs(115);
        let waits: Vec<u64> = (1..=5)
            .map(|receives| busy_backoff(receives, beat, lease).as_secs())
            .collect();
        assert_eq!(waits, [20, 40, 80, 116, 116]);
        // A lease about to run out: just after it.
        assert_eq!(
            busy_backoff(1, beat, Duration::from_millis(300)),
            Duration::from_millis(1300)
        );
        // Absurd receive counts do not overflow.
        assert_eq!(
            busy_backoff(u32::MAX, beat, lease),
            lease + Duration::from_secs(1)
        );
    }

    #[test]
    fn a_failed_session_comes_back_after_5_s_doubling_up_to_5_minutes() {
        let waits: Vec<u64> = (1..=8).map(|r| failure_backoff(r).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(failure_backoff(0).as_secs(), 5);
    }
}
