//! The clean bucket as a source, configured as the server is: segments are read from a local
//! mirror of the bucket's clean and `review/` prefixes (a session is brought up to date each time
//! one of its segments is opened), and a verdict is recorded and carried out by
//! [`sd_bucket::request_review`], the call `scale-diffusion-server review` makes (the ledger,
//! then a reprocess message: a worker moves the segment).
//!
//! The network runs on one named thread (`sd-bucket`) with its own tokio runtime, fed by a bounded
//! queue; the UI polls for answers and never waits.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::SystemTime;

use sd_bucket::{
    mirror_session, request_review, Clients, MirrorDirs, Mirrored, ReviewRequest, ReviewTarget,
    SessionRef,
};
use sd_core::{Lamports, SegmentKey, Verdict};
use sd_ledger::Ledger;

/// The bucket and queue the workers use, and where their objects are mirrored here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSource {
    pub clean_bucket: String,
    /// The workers' queue (name or URL): a verdict's reprocess message goes there.
    pub queue: String,
    /// The local mirror: `{mirror}/clean` and `{mirror}/review`.
    pub mirror: PathBuf,
}

impl BucketSource {
    pub fn dirs(&self) -> MirrorDirs {
        MirrorDirs::under(&self.mirror)
    }
}

/// What the app asks of the bucket thread.
#[derive(Debug)]
pub enum Job {
    /// Bring the session of this segment up to date in the mirror.
    Mirror(SegmentKey),
    /// Record a verdict in the ledger at `ledger` and queue the session's reprocessing.
    Review {
        key: SegmentKey,
        to: Verdict,
        reason: String,
        by: String,
        rate: Lamports,
        ledger: sd_ledger::LedgerLocation,
    },
}

/// What the bucket thread answers.
#[derive(Debug)]
pub enum Done {
    Mirrored {
        key: SegmentKey,
        result: Result<Mirrored, String>,
    },
    /// The sentence to show, or why the verdict was not recorded or not queued.
    Reviewed {
        key: SegmentKey,
        result: Result<String, String>,
    },
}

/// The running bucket thread.
#[derive(Debug)]
pub struct BucketLink {
    pub source: BucketSource,
    jobs: SyncSender<Job>,
    done: Receiver<Done>,
}

impl BucketLink {
    /// Starts thread `sd-bucket`; `wake` is called whenever an answer is ready.
    pub fn start(source: BucketSource, wake: impl Fn() + Send + 'static) -> Result<Self, String> {
        let (jobs, queued) = sync_channel::<Job>(8);
        let (answers, done) = sync_channel::<Done>(8);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| format!("cannot start the bucket thread's runtime: {err}"))?;
        let thread_source = source.clone();
        std::thread::Builder::new()
            .name("sd-bucket".to_owned())
            .spawn(move || {
                let clients = runtime.block_on(Clients::from_env());
                // Ends when the app (the sender) goes.
                while let Ok(first) = queued.recv() {
                    let jobs: Vec<Job> = std::iter::once(first).chain(queued.try_iter()).collect();
                    // Of the segments asked for meanwhile, only the last is still open.
                    let last = jobs.iter().rposition(|job| matches!(job, Job::Mirror(_)));
                    for (index, job) in jobs.into_iter().enumerate() {
                        if matches!(job, Job::Mirror(_)) && Some(index) != last {
                            continue;
                        }
                        let answer = runtime.block_on(run(&clients, &thread_source, job));
                        if answers.send(answer).is_err() {
                            return;
                        }
                        wake();
                    }
                }
            })
            .map_err(|err| format!("cannot start the bucket thread: {err}"))?;
        Ok(Self { source, jobs, done })
    }

    /// Queues `job`; refused (with the reason) while the thread has a full queue.
    pub fn send(&self, job: Job) -> Result<(), String> {
        self.jobs.try_send(job).map_err(|err| match err {
            TrySendError::Full(_) => "the bucket is still busy with earlier requests".to_owned(),
            TrySendError::Disconnected(_) => "the bucket thread has stopped".to_owned(),
        })
    }

    /// The next answer, if one is ready; an error once the thread has stopped.
    pub fn poll(&self) -> Result<Option<Done>, String> {
        match self.done.try_recv() {
            Ok(done) => Ok(Some(done)),
            Err(std::sync::mpsc::TryRecvError::Empty) => Ok(None),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                Err("the bucket thread has stopped: reopen the app".to_owned())
            }
        }
    }
}

async fn run(clients: &Clients, source: &BucketSource, job: Job) -> Done {
    match job {
        Job::Mirror(key) => {
            let result = match SessionRef::parse(&key.wallet, &key.session_id) {
                Ok(session) => {
                    mirror_session(&clients.s3, &source.clean_bucket, &session, &source.dirs())
                        .await
                        .map_err(|err| err.to_string())
                }
                Err(why) => Err(format!("{key}: {why}")),
            };
            Done::Mirrored { key, result }
        }
        Job::Review {
            key,
            to,
            reason,
            by,
            rate,
            ledger,
        } => {
            let result = review(clients, source, &key, to, &reason, &by, rate, &ledger).await;
            Done::Reviewed { key, result }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn review(
    clients: &Clients,
    source: &BucketSource,
    key: &SegmentKey,
    to: Verdict,
    reason: &str,
    by: &str,
    rate: Lamports,
    ledger: &sd_ledger::LedgerLocation,
) -> Result<String, String> {
    // Its own connection: the UI keeps reading through the app's.
    let mut ledger = Ledger::open_existing(ledger)
        .map_err(|err| format!("cannot open the ledger {ledger}: {err}"))?;
    let target = ReviewTarget {
        clean_bucket: &source.clean_bucket,
        queue: &source.queue,
    };
    let request = ReviewRequest {
        key,
        to,
        reason,
        by,
        at: SystemTime::now(),
        rate,
    };
    request_review(clients, &mut ledger, &target, &request)
        .await
        .map(|queued| queued.to_string())
        .map_err(|err| err.to_string())
}
