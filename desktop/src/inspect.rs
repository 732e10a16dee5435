//! Offline inspection of one bundle folder: the same `sd_core::process_session` as `process`, on
//! a named background thread, into a throwaway layout (a temporary folder) and a ledger in memory.
//! The reviewer's ledger and output folders are never written; the temporary folder goes when
//! the app closes.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::Instant;

use sd_core::{OutputLayout, PipelineConfig, RunInfo, SessionJob};
use sd_ledger::Ledger;

use crate::app::Sources;

/// What the inspection thread says.
#[derive(Debug)]
enum Event {
    /// Frames decoded so far in the session being processed (which, of how many).
    Progress {
        session: usize,
        sessions: usize,
        frames: usize,
    },
    Done(Box<Result<Inspected, String>>),
}

/// A finished inspection: where its layout is and the ledger in memory that holds its verdicts.
#[derive(Debug)]
pub struct Inspected {
    pub sources: Sources,
    pub layout: OutputLayout,
    pub ledger: Ledger,
    /// One line per session (accepted with its segments, or rejected with the reason).
    pub outcomes: Vec<String>,
}

/// A running inspection.
#[derive(Debug)]
pub struct Inspection {
    pub bundle: PathBuf,
    pub started: Instant,
    pub session: usize,
    pub sessions: usize,
    pub frames: usize,
    /// The thread has answered (with the result or an error).
    pub finished: bool,
    events: Receiver<Event>,
    /// Kept to the end of the app: the layout lives in it.
    pub folder: tempfile::TempDir,
}

impl Inspection {
    /// Starts processing the bundles found in `bundle` on thread `sd-inspect`; `wake` is called
    /// whenever there is news for the UI.
    pub fn start(bundle: &Path, wake: impl Fn() + Send + 'static) -> Result<Self, String> {
        let folder = tempfile::Builder::new()
            .prefix("sd-inspect-")
            .tempdir()
            .map_err(|err| format!("cannot make a temporary folder to inspect in: {err}"))?;
        let root = folder.path().to_owned();
        let (events_tx, events) = sync_channel(16);
        let path = bundle.to_owned();
        std::thread::Builder::new()
            .name("sd-inspect".to_owned())
            .spawn(move || {
                let result = run(&path, &root, &events_tx, &wake);
                let _ = events_tx.send(Event::Done(Box::new(result)));
                wake();
            })
            .map_err(|err| format!("cannot start the inspection thread: {err}"))?;
        Ok(Self {
            bundle: bundle.to_owned(),
            started: Instant::now(),
            session: 0,
            sessions: 0,
            frames: 0,
            finished: false,
            events,
            folder,
        })
    }

    /// Takes the thread's news; the result once it is done.
    pub fn poll(&mut self) -> Option<Result<Inspected, String>> {
        loop {
            let event = match self.events.try_recv() {
                Ok(event) => event,
                Err(std::sync::mpsc::TryRecvError::Empty) => return None,
                // The thread ended without an answer: it panicked.
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.finished = true;
                    return Some(Err(format!(
                        "the inspection of {} stopped without a result (a bug: see the log)",
                        self.bundle.display()
                    )));
                }
            };
            match event {
                Event::Progress {
                    session,
                    sessions,
                    frames,
                } => {
                    (self.session, self.sessions, self.frames) = (session, sessions, frames);
                }
                Event::Done(result) => {
                    self.finished = true;
                    return Some(*result);
                }
            }
        }
    }
}

fn run(
    bundle: &Path,
    root: &Path,
    events: &SyncSender<Event>,
    wake: &dyn Fn(),
) -> Result<Inspected, String> {
    let discovery = sd_core::discover(bundle)
        .map_err(|err| format!("{}: not a bundle folder: {err}", bundle.display()))?;
    if discovery.bundles.is_empty() {
        return Err(format!(
            "{}: no bundle in it (a bundle is a session's .webm with its _inputs, _camera, _latency and _meta JSON files)",
            bundle.display()
        ));
    }
    let sources = Sources::embedded_default(root);
    let mut layout = OutputLayout::open(&sources.clean, &sources.review, &root.join("work"))
        .map_err(|err| format!("cannot lay out the temporary folders: {err}"))?;
    let mut ledger =
        Ledger::open_in_memory().map_err(|err| format!("cannot open a ledger in memory: {err}"))?;
    let config = PipelineConfig::default();
    let rate = config
        .payout
        .rate()
        .map_err(|err| format!("the default payout rate is invalid: {err}"))?;
    let run = RunInfo {
        run_id: "inspect".to_owned(),
        processed_at: crate::app::now_rfc3339(),
    };
    let sessions = discovery.bundles.len();
    let mut outcomes = Vec::new();
    for (i, source) in discovery.bundles.iter().enumerate() {
        let label = format!("inspect-{i}");
        let origin = bundle.display().to_string();
        let job = SessionJob {
            source,
            config: &config,
            limits: &sd_core::Limits::default(),
            rate,
            run: &run,
            label: &label,
            origin: &origin,
        };
        let span = sd_core::trace::session_span(&source.session_id, None, "inspect");
        let _entered = span.enter();
        let outcome = sd_core::process_session(job, &mut layout, &mut ledger, |frames| {
            // Progress is best effort: a full channel drops an update, never blocks decoding.
            let progress = Event::Progress {
                session: i + 1,
                sessions,
                frames,
            };
            if !matches!(events.try_send(progress), Err(TrySendError::Full(_))) {
                wake();
            }
        });
        outcomes.push(match outcome {
            Ok(outcome) => match outcome.reject_code {
                Some(code) => format!(
                    "{}: rejected ({code}): {}",
                    outcome.session_id,
                    outcome.reject_message.unwrap_or_default()
                ),
                None => format!(
                    "{}: {} frames, {} segments ({} pass, {} fail)",
                    outcome.session_id,
                    outcome.frames,
                    outcome.segments,
                    outcome.clean_segments,
                    outcome.review_segments
                ),
            },
            Err(err) => format!("{}: not processed: {err}", source.session_id),
        });
    }
    Ok(Inspected {
        sources,
        layout,
        ledger,
        outcomes,
    })
}
