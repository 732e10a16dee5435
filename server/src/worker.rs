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

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use aws_sdk_sqs::types::Message;
use sd_core::{
    Lamports, Limits, OverrideNote, PipelineConfig, RunInfo, SessionId, SessionJob, SessionLedger,
    SessionOutcome, SessionRecord, Verdict, WalletAddress,
};
use sd_ledger::{IntakeState, Lease, Ledger, LedgerError};
use tokio::sync::watch;

use crate::args::WorkerArgs;
use crate::aws::{describe, Clients};
use crate::bucket::BucketTarget;
use crate::event::{parse_notification, SessionRef};
use crate::fetch::{download, list_wallet, SessionParts};

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
    /// Another worker holds the session: the message comes back later.
    Busy,
    /// A system error (counted in the ledger): the message comes back, and after too many
    /// receives goes to the dead-letter queue.
    Failed(String),
}

impl Handled {
    /// Whether the message that pointed here may be deleted.
    fn settled(&self) -> bool {
        !matches!(self, Handled::Busy | Handled::Failed(_))
    }
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
    work_dir: std::path::PathBuf,
    runtime: tokio::runtime::Handle,
}

pub async fn run(clients: Clients, args: WorkerArgs) -> anyhow::Result<()> {
    let config = PipelineConfig::load(args.config.as_deref())?;
    let rate = config
        .payout
        .rate()
        .context("payout.lamports_per_segment is too large")?;
    let queue_url = crate::setup::queue_url(&clients, &args.resources.queue).await?;
    let ledger = crate::open_ledger(&args.ledger.ledger)?;
    if let Some(ledger_rate) = ledger.rate()? {
        anyhow::ensure!(
            ledger_rate == rate,
            "the ledger {} pays {} lamports per segment but the config says {}",
            args.ledger.ledger.display(),
            ledger_rate.0,
            rate.0
        );
    }
    let work_dir = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join("scale-diffusion-worker"),
    };
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("cannot create {}", work_dir.display()))?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", host_name(), std::process::id()));
    let worker = Arc::new(Worker {
        clients,
        queue_url,
        config,
        limits: Limits::default(),
        rate,
        ledger: Arc::new(Mutex::new(ledger)),
        name,
        work_dir,
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

    let mut backoff = Duration::from_secs(1);
    let mut last_sweep = std::time::Instant::now();
    while !*stop.borrow() {
        if last_sweep.elapsed() >= sweep_every(&worker.args) {
            last_sweep = std::time::Instant::now();
            if let Err(err) = worker.sweep(&stop).await {
                tracing::warn!("sweep of incomplete sessions failed: {err:#}");
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
            if let Err(GaveBack) = worker.handle_message(&message, &stop).await {
                // The grace period ran out: the session was given back; leave now.
                tracing::info!("worker stops (session given back)");
                return Ok(());
            }
            if *stop.borrow() {
                break;
            }
        }
    }
    tracing::info!("worker stops");
    Ok(())
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
        let mut settled = true;
        for session in &notification.sessions {
            let handled = self.handle_session(session, stop).await;
            let handled = match handled {
                Ok(handled) => handled,
                Err(GaveBack) => {
                    heartbeat.abort();
                    self.change_visibility(receipt, 0).await;
                    return Err(GaveBack);
                }
            };
            tracing::info!(session = %session, outcome = ?handled, "session handled");
            settled &= handled.settled();
        }
        heartbeat.abort();
        if settled {
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
        } else {
            // Back soon, not after a full visibility timeout.
            self.change_visibility(receipt, 5).await;
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
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(worker.args.heartbeat);
            tick.tick().await;
            loop {
                tick.tick().await;
                worker
                    .change_visibility(&receipt, worker.visibility_s())
                    .await;
            }
        })
    }

    /// Sessions still waiting for parts past the timeout: decided without an event (the part
    /// may never come).
    async fn sweep(self: &Arc<Self>, stop: &watch::Receiver<bool>) -> anyhow::Result<()> {
        let cutoff = now_ms() - self.args.incomplete_timeout.as_millis() as i64;
        let ledger = Arc::clone(&self.ledger);
        let overdue = tokio::task::spawn_blocking(move || {
            lock(&ledger).and_then(|ledger| Ok(ledger.waiting_older_than(cutoff)?))
        })
        .await??;
        for (wallet, session) in overdue {
            let (Ok(wallet), Ok(session)) =
                (WalletAddress::parse(&wallet), SessionId::parse(&session))
            else {
                continue;
            };
            let session = SessionRef { wallet, session };
            match self.handle_session(&session, stop).await {
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
        stop: &watch::Receiver<bool>,
    ) -> Result<Handled, GaveBack> {
        match self.try_session(session, stop).await {
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
        stop: &watch::Receiver<bool>,
    ) -> Result<Handled, SessionFailure> {
        let now = now_ms();
        let intake = self
            .with_ledger({
                let (wallet, id) = (session.wallet.to_string(), session.session.to_string());
                move |ledger| Ok(ledger.note_seen(&wallet, &id, now)?)
            })
            .await?;
        let listing = list_wallet(
            &self.clients.s3,
            &self.args.resources.raw_bucket,
            session.wallet.as_str(),
        )
        .await?;
        let parts = SessionParts::pick(session, &listing);
        let missing = parts.missing();
        let waited = Duration::from_millis((now - intake.first_seen_ms).max(0) as u64);
        if !missing.is_empty() && waited < self.args.incomplete_timeout {
            return Ok(Handled::Waiting {
                missing: missing.iter().map(|k| k.name().to_owned()).collect(),
            });
        }
        let fingerprint = parts.fingerprint();
        let finished = matches!(intake.state, IntakeState::Done | IntakeState::Rejected);
        if finished && intake.parts_fingerprint.as_deref() == Some(fingerprint.as_str()) {
            return Ok(Handled::Unchanged);
        }
        let lease_ms = self.args.lease.as_millis() as i64;
        let lease = self
            .with_ledger({
                let (wallet, id, name) = (
                    session.wallet.to_string(),
                    session.session.to_string(),
                    self.name.clone(),
                );
                move |ledger| Ok(ledger.acquire_lease(&wallet, &id, &name, now_ms(), lease_ms)?)
            })
            .await?;
        let Some(lease) = lease else {
            return Ok(Handled::Busy);
        };
        // Another worker may have finished these very parts between our first look and the
        // lease: the lease says what the row held when it was taken.
        let finished = matches!(
            lease.previous_state,
            IntakeState::Done | IntakeState::Rejected
        );
        if finished && lease.parts_fingerprint.as_deref() == Some(fingerprint.as_str()) {
            let previous = lease.previous_state;
            self.with_ledger(move |ledger| Ok(ledger.release_lease(&lease, previous, now_ms())?))
                .await?;
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
                Ok(Handled::Processed)
            }
            Err(SessionFailure::GaveBack) => {
                let _ = self
                    .with_ledger(move |ledger| {
                        Ok(ledger.release_lease(&lease, IntakeState::Waiting, now_ms())?)
                    })
                    .await;
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
        let temp = tempfile::Builder::new()
            .prefix("session-")
            .tempdir_in(&self.work_dir)
            .with_context(|| format!("cannot create a folder in {}", self.work_dir.display()))?;
        let renewals = self.spawn_lease_renewal(lease.clone());
        let source = download(
            &self.clients.s3,
            &self.args.resources.raw_bucket,
            session,
            parts,
            &self.limits,
            temp.path(),
        )
        .await;
        let source = match source {
            Ok(source) => source,
            Err(err) => {
                renewals.abort();
                return Err(err.into());
            }
        };
        let worker = Arc::clone(self);
        let lease_for_job = lease.clone();
        let staging = temp.path().join("staging");
        let origin = format!(
            "s3://{}/{}/{}",
            self.args.resources.raw_bucket, session.wallet, session.session
        );
        let job = tokio::task::spawn_blocking(move || {
            let run = RunInfo {
                run_id: format!("{}-{}", worker.name, now_ms()),
                processed_at: now_rfc3339(),
            };
            let mut target = BucketTarget::new(
                worker.clients.s3.clone(),
                worker.args.resources.clean_bucket.clone(),
                worker.runtime.clone(),
                staging,
            );
            let mut ledger = LeasedLedger {
                ledger: &worker.ledger,
                lease: &lease_for_job,
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
        let outcome = tokio::select! {
            joined = job => joined,
            () = grace_over(stop.clone(), self.args.grace) => {
                renewals.abort();
                tracing::warn!(session = %session, "grace period over: giving the session back");
                // `temp` stays: the abandoned thread may still be using it; the OS cleans up
                // after the process exits.
                std::mem::forget(temp);
                return Err(SessionFailure::GaveBack);
            }
        };
        renewals.abort();
        drop(temp);
        match outcome {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(err)) => Err(anyhow::Error::new(err).into()),
            Err(join) => Err(anyhow::anyhow!("the pipeline thread failed: {join}").into()),
        }
    }

    fn spawn_lease_renewal(self: &Arc<Self>, lease: Lease) -> tokio::task::JoinHandle<()> {
        let worker = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(worker.args.heartbeat);
            tick.tick().await;
            loop {
                tick.tick().await;
                let lease = lease.clone();
                let ttl = worker.args.lease.as_millis() as i64;
                let renewed = worker
                    .with_ledger(move |ledger| Ok(ledger.renew_lease(&lease, now_ms(), ttl)?))
                    .await;
                match renewed {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!("lease lost: the ledger will refuse this run's record");
                        return;
                    }
                    Err(err) => tracing::warn!("cannot renew the lease: {err:#}"),
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

async fn wait_for_termination() {
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
