//! The review app's state and its one `ui` pass: the queue on the left, the frame with its actions
//! in the middle, the timeline under it, the checks and the override on the right; the payouts on
//! their own tab. Every ledger or file problem becomes a message in the status line, never a
//! panic.

use std::path::PathBuf;

use egui::{Color32, Key, Modifiers, RichText, Sense, Stroke, TextureHandle, TextureOptions};
use sd_core::{Location, OutputLayout, SegmentKey, SessionStatus, Verdict};
use sd_ledger::{Ledger, LedgerError, LedgerLocation, Payout};

use crate::catalog::{Catalog, Filter, ReviewState as _};
use crate::frames::FrameLoader;
use crate::inspect::Inspection;
use crate::remote::{BucketLink, BucketSource, Done, Job};
use crate::segment::{Lanes, SegmentData};

/// Where the app reads and writes: the layout `process` wrote and its ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    pub clean: PathBuf,
    pub review: PathBuf,
    pub ledger: LedgerLocation,
}

impl Sources {
    /// What `./run.sh` writes, relative to `base`.
    pub fn embedded_default(base: &std::path::Path) -> Self {
        let out = base.join("out");
        Self {
            clean: out.join("clean"),
            review: out.join("review"),
            ledger: LedgerLocation::Sqlite(out.join("ledger.sqlite")),
        }
    }

    /// `process` keeps its work folder beside the clean layout.
    fn work(&self) -> PathBuf {
        self.clean
            .parent()
            .map_or_else(|| PathBuf::from(".sd-work"), |p| p.join(".sd-work"))
    }
}

/// What a reviewer does, whichever key or button asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    PlayPause,
    NextFrame,
    PreviousFrame,
    SecondForward,
    SecondBack,
    NextFlagged,
    PreviousFlagged,
    Faster,
    Slower,
    NextSegment,
    Pass,
    Fail,
    Help,
}

/// One key binding: the help overlay is drawn from this table, and input is read from it.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub key: Key,
    pub shift: bool,
    pub action: Action,
    pub what: &'static str,
}

pub const BINDINGS: &[Binding] = &[
    Binding {
        key: Key::Space,
        shift: false,
        action: Action::PlayPause,
        what: "play / pause at real timing",
    },
    Binding {
        key: Key::ArrowRight,
        shift: false,
        action: Action::NextFrame,
        what: "next frame",
    },
    Binding {
        key: Key::ArrowLeft,
        shift: false,
        action: Action::PreviousFrame,
        what: "previous frame",
    },
    Binding {
        key: Key::ArrowRight,
        shift: true,
        action: Action::SecondForward,
        what: "one second forward",
    },
    Binding {
        key: Key::ArrowLeft,
        shift: true,
        action: Action::SecondBack,
        what: "one second back",
    },
    Binding {
        key: Key::J,
        shift: false,
        action: Action::NextFlagged,
        what: "jump to the next frame a check flags",
    },
    Binding {
        key: Key::J,
        shift: true,
        action: Action::PreviousFlagged,
        what: "jump to the previous frame a check flags",
    },
    Binding {
        key: Key::CloseBracket,
        shift: false,
        action: Action::Faster,
        what: "play faster (up to 4×)",
    },
    Binding {
        key: Key::OpenBracket,
        shift: false,
        action: Action::Slower,
        what: "play slower (down to ¼×)",
    },
    Binding {
        key: Key::N,
        shift: false,
        action: Action::NextSegment,
        what: "next segment in the queue",
    },
    Binding {
        key: Key::P,
        shift: false,
        action: Action::Pass,
        what: "pass the segment (with the reason below)",
    },
    Binding {
        key: Key::F,
        shift: false,
        action: Action::Fail,
        what: "fail the segment (with the reason below)",
    },
    Binding {
        key: Key::H,
        shift: false,
        action: Action::Help,
        what: "this help",
    },
];

/// The timeline and the lanes keep this much on the left for their names, so that both share one
/// time axis under the playhead.
const GUTTER: f32 = 70.0;

/// Decoded frames kept (RGBA: 3.6 MB each at 1280x704, so about 170 MB): 1.6 s at 30 fps to
/// step back and forth in without decoding again.
const FRAME_CACHE: usize = 48;

/// What an offline inspection answers to a decision.
const OFFLINE: &str = "offline inspection: nothing is recorded (process the bundle with `scale-diffusion process` to review it)";

/// Why a reviewer overrode CLEAN: a code, and free text with it.
pub const REASON_CODES: &[&str] = &[
    "labels_checked",
    "check_too_strict",
    "check_missed_defect",
    "video_unusable",
    "actions_wrong",
    "other",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Review,
    Payouts,
}

/// The reviewer's place, kept between runs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Place {
    segment: Option<SegmentKey>,
    filter: Filter,
}

/// A line in the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub error: bool,
    pub text: String,
}

/// The open segment and where its playhead is.
#[derive(Debug)]
pub struct SegmentView {
    pub data: SegmentData,
    /// Frame times from the segment's first frame (ms).
    pub times: Vec<f64>,
    pub lanes: Lanes,
    /// Index into `data.frames`.
    pub frame: usize,
    /// Playing since (UI time s, segment time ms then).
    playing: Option<(f64, f64)>,
    /// Index into [`SPEEDS`].
    speed: usize,
}

/// Playback speeds, slowest first.
pub const SPEEDS: [f64; 5] = [0.25, 0.5, 1.0, 2.0, 4.0];
const NORMAL_SPEED: usize = 2;

impl SegmentView {
    fn new(data: SegmentData) -> Self {
        let times = data.times_ms();
        let lanes = data.lanes(&times);
        Self {
            data,
            times,
            lanes,
            frame: 0,
            playing: None,
            speed: NORMAL_SPEED,
        }
    }

    pub fn speed(&self) -> f64 {
        SPEEDS[self.speed]
    }

    pub fn is_playing(&self) -> bool {
        self.playing.is_some()
    }

    fn time(&self) -> f64 {
        self.times.get(self.frame).copied().unwrap_or(0.0)
    }

    fn seek_time(&mut self, t_ms: f64) {
        self.frame = self.data.frame_at(&self.times, t_ms);
    }

    fn step(&mut self, by: isize) {
        let last = self.times.len().saturating_sub(1);
        self.frame = self.frame.saturating_add_signed(by).min(last);
    }
}

/// The app. Tests build it with [`ReviewApp::open`] and drive it through `egui_kittest`.
pub struct ReviewApp {
    pub sources: Sources,
    layout: Option<OutputLayout>,
    ledger: Option<Ledger>,
    pub catalog: Catalog,
    pub filter: Filter,
    pub selected: Option<SegmentKey>,
    pub segment: Option<SegmentView>,
    loader: Option<FrameLoader>,
    texture: Option<(TextureHandle, PathBuf)>,
    /// The earlier segment's frame, beside this one's when a `duplicate` check failed.
    earlier_texture: Option<(TextureHandle, PathBuf)>,
    pub reviewer: String,
    pub reason_code: Option<&'static str>,
    pub reason_text: String,
    pub messages: Vec<Message>,
    pub show_help: bool,
    pub tab: Tab,
    pub payouts: Vec<Payout>,
    /// Transfer signatures typed per payout id, before `mark paid`.
    pub signatures: std::collections::BTreeMap<i64, String>,
    /// Refuse to approve a wallet's payout while it has failed segments nobody has reviewed.
    pub require_review: bool,
    /// Offline inspection of a bundle folder: its processing while it runs, then its throwaway
    /// layout. Nothing is recorded.
    pub inspection: Option<Inspection>,
    /// The clean bucket, when segments come from it (read through a local mirror).
    bucket: Option<BucketLink>,
    /// Opened on a bucket: verdicts go only through it (refused if its thread is gone).
    bucket_mode: bool,
    /// The segment being brought up to date from the bucket, before it opens.
    pub fetching: Option<SegmentKey>,
    /// The segment whose verdict the bucket thread is recording and queueing.
    pub reviewing: Option<SegmentKey>,
}

impl std::fmt::Debug for ReviewApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReviewApp")
            .field("sources", &self.sources)
            .field("selected", &self.selected)
            .finish_non_exhaustive()
    }
}

impl ReviewApp {
    /// Opens the layout and the ledger; what cannot be opened is said in the status line and
    /// the app still starts (empty).
    pub fn open(sources: Sources, reviewer: String, ctx: &egui::Context) -> Self {
        Self::open_with(sources, None, reviewer, ctx)
    }

    /// Opens the segments the workers published in a clean bucket (its clean and `review/`
    /// prefixes, mirrored under `bucket.mirror` as they are opened) with the workers' ledger.
    /// Verdicts go through the same call as `scale-diffusion-server review`.
    pub fn open_bucket(
        ledger: LedgerLocation,
        bucket: BucketSource,
        reviewer: String,
        ctx: &egui::Context,
    ) -> Self {
        let dirs = bucket.dirs();
        let sources = Sources {
            clean: dirs.clean,
            review: dirs.review,
            ledger,
        };
        Self::open_with(sources, Some(bucket), reviewer, ctx)
    }

    fn open_with(
        sources: Sources,
        bucket: Option<BucketSource>,
        reviewer: String,
        ctx: &egui::Context,
    ) -> Self {
        let mut app = Self {
            bucket: None,
            bucket_mode: bucket.is_some(),
            fetching: None,
            reviewing: None,
            layout: None,
            ledger: None,
            catalog: Catalog::default(),
            filter: Filter::default(),
            selected: None,
            segment: None,
            loader: None,
            texture: None,
            earlier_texture: None,
            reviewer,
            reason_code: None,
            reason_text: String::new(),
            messages: Vec::new(),
            show_help: false,
            tab: Tab::Review,
            payouts: Vec::new(),
            signatures: std::collections::BTreeMap::new(),
            require_review: false,
            inspection: None,
            sources,
        };
        let wake = {
            let ctx = ctx.clone();
            move || ctx.request_repaint()
        };
        match FrameLoader::start(FRAME_CACHE, wake.clone()) {
            Ok(loader) => app.loader = Some(loader),
            Err(err) => app.error(format!("cannot start the frame loader thread: {err}")),
        }
        if let Some(bucket) = bucket {
            match BucketLink::start(bucket, wake) {
                Ok(link) => app.bucket = Some(link),
                Err(err) => app.error(err),
            }
        }
        match Ledger::open_existing(&app.sources.ledger) {
            Ok(ledger) => app.ledger = Some(ledger),
            Err(LedgerError::NotFound { path }) => {
                app.error(format!(
                    "no ledger at {} (run ./run.sh or `scale-diffusion process` first, or pass --ledger)",
                    path.display()
                ));
                return app;
            }
            Err(err) => app.error(format!(
                "cannot open the ledger {}: {err}",
                app.sources.ledger
            )),
        }
        match OutputLayout::open(&app.sources.clean, &app.sources.review, &app.sources.work()) {
            Ok(layout) => app.layout = Some(layout),
            Err(err) => app.error(format!("cannot open the output folders: {err}")),
        }
        app.reload();
        app.resume();
        app
    }

    /// Opens one bundle folder for offline inspection: the pipeline runs on a background thread
    /// (a progress bar meanwhile) into a temporary folder and a ledger in memory; the reviewer's
    /// ledger and folders are never opened, and no verdict or approval is recorded.
    pub fn inspect(bundle: &std::path::Path, reviewer: String, ctx: &egui::Context) -> Self {
        let nowhere = std::path::Path::new("/nonexistent-sd-inspect");
        let mut app = Self::open(Sources::embedded_default(nowhere), reviewer, ctx);
        app.messages.clear();
        let wake = {
            let ctx = ctx.clone();
            move || ctx.request_repaint()
        };
        match Inspection::start(bundle, wake) {
            Ok(inspection) => {
                app.inspection = Some(inspection);
                app.info(format!(
                    "processing {} (offline: nothing is recorded)",
                    bundle.display()
                ));
            }
            Err(err) => app.error(err),
        }
        app
    }

    /// Whether this is an offline inspection (nothing may be recorded).
    pub fn is_offline(&self) -> bool {
        self.inspection.is_some()
    }

    /// In an offline inspection, says that nothing is recorded and answers true.
    fn refused_offline(&mut self) -> bool {
        let offline = self.is_offline();
        if offline {
            self.error(OFFLINE.to_owned());
        }
        offline
    }

    /// Whether an offline inspection is still processing.
    pub fn is_processing(&self) -> bool {
        self.inspection.as_ref().is_some_and(|i| !i.finished)
    }

    /// Takes the inspection thread's news; once it is done, opens what it made.
    fn poll_inspection(&mut self) {
        if !self.is_processing() {
            return;
        }
        let Some(result) = self.inspection.as_mut().and_then(Inspection::poll) else {
            return;
        };
        match result {
            Ok(done) => {
                self.sources = done.sources;
                self.layout = Some(done.layout);
                self.ledger = Some(done.ledger);
                self.reload();
                for line in done.outcomes {
                    self.info(line);
                }
                if let Some(first) = self.catalog.next_after(None, &Filter::default()) {
                    self.select(first);
                }
            }
            Err(err) => {
                // Done, with nothing to show: the inspection stays (offline) so nothing is
                // recorded anywhere.
                self.error(err);
            }
        }
    }

    /// Where the reviewer's place is kept: beside a ledger file, one per ledger; for a
    /// PostgreSQL ledger, in the work folder beside the clean layout.
    fn place_file(&self) -> PathBuf {
        match self.sources.ledger.path() {
            Some(path) => {
                let mut name = path.as_os_str().to_owned();
                name.push(".review-place.json");
                PathBuf::from(name)
            }
            None => self.sources.work().join("review-place.json"),
        }
    }

    /// Back to the segment and filters the reviewer left, if that segment is still there.
    fn resume(&mut self) {
        let Ok(text) = std::fs::read_to_string(self.place_file()) else {
            return;
        };
        let Ok(place) = serde_json::from_str::<Place>(&text) else {
            self.error(format!(
                "{} is not a review place; starting at the top",
                self.place_file().display()
            ));
            return;
        };
        self.filter = place.filter;
        if let Some(key) = place.segment {
            if self.catalog.segment(&key).is_some() {
                self.select(key);
                self.info("back where you stopped".to_owned());
            }
        }
    }

    /// Keeps the reviewer's place (best effort: a read-only folder only loses the place); an
    /// offline inspection has no place to keep.
    fn remember(&self) {
        if self.is_offline() {
            return;
        }
        let place = Place {
            segment: self.selected.clone(),
            filter: self.filter.clone(),
        };
        if let Ok(text) = serde_json::to_string_pretty(&place) {
            if let Err(err) = std::fs::write(self.place_file(), text) {
                tracing::warn!("cannot keep the review place: {err}");
            }
        }
    }

    /// Whether the open segment's current frame is on screen (tests wait for it).
    pub fn frame_shown(&self) -> bool {
        let Some(view) = &self.segment else {
            return true;
        };
        let path = view.data.frame_path(view.frame);
        self.texture
            .as_ref()
            .is_some_and(|(_, shown)| Some(shown) == path.as_ref())
    }

    fn error(&mut self, text: String) {
        tracing::warn!("{text}");
        self.messages.push(Message { error: true, text });
    }

    fn info(&mut self, text: String) {
        self.messages.push(Message { error: false, text });
    }

    /// Reads the queue and the payouts again (after a change, or on request).
    pub fn reload(&mut self) {
        let Some(ledger) = &self.ledger else {
            return;
        };
        let loaded = Catalog::load(ledger).and_then(|catalog| Ok((catalog, ledger.payouts(None)?)));
        match loaded {
            Ok((catalog, payouts)) => {
                self.catalog = catalog;
                self.payouts = payouts;
            }
            Err(err) => self.error(format!("cannot read the ledger: {err}")),
        }
    }

    /// Opens segment `key` at its first frame (from a bucket, once its session is up to date in
    /// the mirror).
    pub fn select(&mut self, key: SegmentKey) {
        // Another segment's picture must not stay up under this one's header.
        self.texture = None;
        self.earlier_texture = None;
        if self.bucket_mode {
            self.segment = None;
            let sent = self.send_to_bucket(Job::Mirror(key.clone()));
            self.fetching = sent.then(|| key.clone());
        } else {
            self.load(&key);
        }
        self.selected = Some(key);
        self.remember();
    }

    /// Reads segment `key` from the layout.
    fn load(&mut self, key: &SegmentKey) {
        let Some(layout) = &self.layout else {
            self.error("the output folders are not open".to_owned());
            return;
        };
        match SegmentData::load(layout, key) {
            Ok(data) => self.segment = Some(SegmentView::new(data)),
            Err(err) => {
                self.segment = None;
                self.error(err);
            }
        }
    }

    /// Whether the bucket thread is fetching a segment or recording a verdict.
    pub fn bucket_busy(&self) -> bool {
        self.fetching.is_some() || self.reviewing.is_some()
    }

    /// Queues `job` for the bucket thread; says why not and answers false when it cannot.
    fn send_to_bucket(&mut self, job: Job) -> bool {
        let Some(link) = &self.bucket else {
            self.error("the bucket is not reachable (see the first message): nothing sent".into());
            return false;
        };
        match link.send(job) {
            Ok(()) => true,
            Err(err) => {
                self.error(err);
                false
            }
        }
    }

    /// Takes the bucket thread's answers: a session up to date opens, a verdict's outcome shows.
    fn poll_bucket(&mut self) {
        loop {
            let Some(link) = &self.bucket else {
                return;
            };
            let done = match link.poll() {
                Ok(Some(done)) => done,
                Ok(None) => return,
                Err(err) => {
                    self.bucket = None;
                    self.fetching = None;
                    self.reviewing = None;
                    self.error(err);
                    return;
                }
            };
            match done {
                // An answer for a segment the reviewer has since left is dropped.
                Done::Mirrored { key, .. } if self.fetching.as_ref() != Some(&key) => {}
                Done::Mirrored { key, result } => {
                    self.fetching = None;
                    match result {
                        Ok(mirrored) => {
                            if mirrored.fetched > 0 || mirrored.removed > 0 {
                                self.info(format!(
                                    "{}/{}: {} object(s) fetched ({:.1} MB), {} up to date, {} \
                                     removed (no longer published)",
                                    key.wallet,
                                    key.session_id,
                                    mirrored.fetched,
                                    mirrored.fetched_bytes as f64 / 1e6,
                                    mirrored.kept,
                                    mirrored.removed
                                ));
                            }
                            self.load(&key);
                        }
                        Err(err) => self.error(format!("cannot open {key} from the bucket: {err}")),
                    }
                }
                Done::Reviewed { result, .. } => {
                    self.reviewing = None;
                    // Also after an error: the override may be recorded and its move not queued.
                    self.reload();
                    match result {
                        Ok(text) => self.info(text),
                        Err(err) => self.error(err),
                    }
                }
            }
        }
    }

    pub fn act(&mut self, action: Action, now_s: f64) {
        match action {
            Action::Help => self.show_help = !self.show_help,
            Action::NextSegment => {
                if let Some(next) = self
                    .catalog
                    .next_after(self.selected.as_ref(), &self.filter)
                {
                    self.select(next);
                } else {
                    self.info("the end of the queue".to_owned());
                }
            }
            Action::Pass => self.decide(Verdict::Pass),
            Action::Fail => self.decide(Verdict::Fail),
            Action::PlayPause => {
                if let Some(view) = &mut self.segment {
                    view.playing = match view.playing {
                        Some(_) => None,
                        None => {
                            if view.frame + 1 >= view.times.len() {
                                view.frame = 0;
                            }
                            Some((now_s, view.time()))
                        }
                    };
                }
            }
            Action::NextFrame | Action::PreviousFrame => {
                if let Some(view) = &mut self.segment {
                    view.playing = None;
                    view.step(if action == Action::NextFrame { 1 } else { -1 });
                }
            }
            Action::NextFlagged | Action::PreviousFlagged => {
                let Some(view) = &mut self.segment else {
                    return;
                };
                let forward = action == Action::NextFlagged;
                match view.lanes.next_flagged(view.frame, forward) {
                    Some(frame) => {
                        view.playing = None;
                        view.frame = frame;
                    }
                    None if view.lanes.flagged.is_empty() => {
                        self.info("no check flags a frame of this segment".to_owned());
                    }
                    None => self.info(
                        if forward {
                            "no flagged frame after this one"
                        } else {
                            "no flagged frame before this one"
                        }
                        .to_owned(),
                    ),
                }
            }
            Action::Faster | Action::Slower => {
                if let Some(view) = &mut self.segment {
                    // Where the playhead is (between frames while playing), kept across the change.
                    let at = match view.playing {
                        Some((since, from_ms)) => from_ms + (now_s - since) * 1000.0 * view.speed(),
                        None => view.time(),
                    };
                    view.speed = if action == Action::Faster {
                        (view.speed + 1).min(SPEEDS.len() - 1)
                    } else {
                        view.speed.saturating_sub(1)
                    };
                    if view.playing.is_some() {
                        view.playing = Some((now_s, at));
                    }
                }
            }
            Action::SecondForward | Action::SecondBack => {
                if let Some(view) = &mut self.segment {
                    view.playing = None;
                    let by = if action == Action::SecondForward {
                        1000.0
                    } else {
                        -1000.0
                    };
                    view.seek_time(view.time() + by);
                }
            }
        }
    }

    /// A reviewer's verdict on the open segment, with the reason typed: recorded in the ledger
    /// and carried out on disk by the same call as `scale-diffusion review override`.
    pub fn decide(&mut self, to: Verdict) {
        if self.refused_offline() {
            return;
        }
        let Some(key) = self.selected.clone() else {
            self.error("select a segment first".to_owned());
            return;
        };
        let (Some(code), text) = (self.reason_code, self.reason_text.trim().to_owned()) else {
            self.error("choose a reason code and write why, then pass or fail".to_owned());
            return;
        };
        if text.is_empty() {
            self.error("write why, then pass or fail".to_owned());
            return;
        }
        let Some(ledger) = &mut self.ledger else {
            self.error("the ledger is not open".to_owned());
            return;
        };
        let rate = match ledger.rate() {
            Ok(Some(rate)) => rate,
            Ok(None) => {
                self.error("the ledger has no rate yet: process a session first".to_owned());
                return;
            }
            Err(err) => {
                self.error(format!("cannot read the ledger's rate: {err}"));
                return;
            }
        };
        let reason = format!("{code}: {text}");
        if self.bucket_mode {
            if let Some(pending) = &self.reviewing {
                let text = format!("a verdict on {pending} is still being recorded: wait for it");
                self.error(text);
                return;
            }
            let sent = self.send_to_bucket(Job::Review {
                key: key.clone(),
                to,
                reason,
                by: self.reviewer.clone(),
                rate,
                ledger: self.sources.ledger.clone(),
            });
            if sent {
                self.reviewing = Some(key.clone());
                self.reason_text.clear();
                self.info(format!(
                    "{key}: recording {to} and queueing the session for a worker to republish"
                ));
            }
            return;
        }
        let (Some(ledger), Some(layout)) = (&mut self.ledger, &self.layout) else {
            self.error("the output folders are not open".to_owned());
            return;
        };
        let now = now_rfc3339();
        match ledger.review_segment(layout, &key, to, &reason, &self.reviewer, &now, rate) {
            Ok(applied) => {
                let place = match applied.location {
                    Location::Clean => "published to the clean layout",
                    Location::Review => "in the review area",
                };
                let text = format!(
                    "{key}: {} -> {} by {} · {place} · {}",
                    applied.outcome.recorded.from,
                    applied.outcome.recorded.to,
                    self.reviewer,
                    Payout::pending_phrase(applied.outcome.pending.as_ref())
                );
                self.info(text);
                self.reason_text.clear();
                self.reload();
                self.select(key);
            }
            Err(err) => self.error(err.to_string()),
        }
    }

    pub fn approve(&mut self, wallet: &str, seen: sd_core::Lamports) {
        if self.refused_offline() {
            return;
        }
        // What the ledger says now, not when the queue was last read: a session processed since
        // may have brought failed segments.
        self.reload();
        let awaiting = self.catalog.awaiting_review_of(wallet);
        if self.require_review && awaiting > 0 {
            self.error(format!(
                "not approved: {} has {awaiting} failed segment(s) nobody has reviewed yet \
                 (review them first; this check is on because of --require-review)",
                short_wallet(wallet)
            ));
            return;
        }
        let Some(ledger) = &mut self.ledger else {
            return;
        };
        let now = now_rfc3339();
        match ledger.approve(wallet, &self.reviewer, &now, Some(seen)) {
            Ok(payout) => {
                let text = format!(
                    "payout #{} to {wallet} approved by {}: {} SOL",
                    payout.id,
                    self.reviewer,
                    payout.amount_sol()
                );
                self.info(text);
            }
            Err(err) => self.error(format!("not approved: {err}")),
        }
        self.reload();
    }

    pub fn mark_paid(&mut self, id: i64) {
        if self.refused_offline() {
            return;
        }
        let signature = self.signatures.get(&id).cloned().unwrap_or_default();
        let Some(ledger) = &mut self.ledger else {
            return;
        };
        let now = now_rfc3339();
        match ledger.mark_paid(id, signature.trim(), &now) {
            Ok(payout) => {
                self.signatures.remove(&id);
                self.info(format!("payout #{} marked paid", payout.id));
            }
            Err(err) => self.error(format!("not marked paid: {err}")),
        }
        self.reload();
    }

    /// The keys pressed this frame, as actions (not while typing in a text box).
    fn keyboard(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let now = ctx.input(|i| i.time);
        // egui matches a shortcut without Shift also when Shift is held: the Shift bindings
        // are tried first, so that Shift+Right is a second and not a frame.
        let pressed: Vec<Action> = ctx.input_mut(|input| {
            let shifted = BINDINGS.iter().filter(|b| b.shift);
            let plain = BINDINGS.iter().filter(|b| !b.shift);
            shifted
                .chain(plain)
                .filter(|b| {
                    let modifiers = if b.shift {
                        Modifiers::SHIFT
                    } else {
                        Modifiers::NONE
                    };
                    input.consume_key(modifiers, b.key)
                })
                .map(|b| b.action)
                .collect()
        });
        for action in pressed {
            self.act(action, now);
        }
    }

    /// Moves the playhead while playing: the frame whose real time has come.
    fn play(&mut self, ctx: &egui::Context) {
        let Some(view) = &mut self.segment else {
            return;
        };
        let Some((since, from_ms)) = view.playing else {
            return;
        };
        let now = ctx.input(|i| i.time);
        let speed = view.speed();
        let t = from_ms + (now - since) * 1000.0 * speed;
        view.seek_time(t);
        match view.times.get(view.frame + 1) {
            Some(next) => {
                let wait = ((next - t) / 1000.0 / speed).clamp(0.0, 1.0);
                ctx.request_repaint_after(std::time::Duration::from_secs_f64(wait));
            }
            None => view.playing = None,
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.poll_inspection();
        self.poll_bucket();
        self.keyboard(&ctx);
        self.play(&ctx);

        egui::Panel::top("tabs").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.selectable_value(&mut self.tab, Tab::Review, "Review");
                ui.selectable_value(&mut self.tab, Tab::Payouts, "Payouts");
                ui.separator();
                ui.label(format!("reviewer: {}", self.reviewer));
                ui.separator();
                match &self.inspection {
                    Some(inspection) => ui.label(format!(
                        "offline inspection of {} (nothing is recorded)",
                        inspection.bundle.display()
                    )),
                    None => ui.label(format!("ledger: {}", self.sources.ledger)),
                };
                if let Some(link) = &self.bucket {
                    ui.separator();
                    ui.label(format!(
                        "bucket: s3://{} (mirrored in {}) · verdicts queue on {}",
                        link.source.clean_bucket,
                        link.source.mirror.display(),
                        link.source.queue
                    ));
                }
                if ui.button("Reload").clicked() {
                    self.reload();
                }
                if ui.button("Help (H)").clicked() {
                    self.show_help = !self.show_help;
                }
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            match self.messages.last() {
                Some(message) if message.error => {
                    ui.colored_label(Color32::from_rgb(230, 90, 80), &message.text)
                }
                Some(message) => ui.label(&message.text),
                None => ui.label("ready"),
            };
        });
        if self.is_processing() {
            egui::CentralPanel::default_margins().show(ui, |ui| self.progress(ui));
            return;
        }
        match self.tab {
            Tab::Review => self.review_tab(ui),
            Tab::Payouts => {
                egui::CentralPanel::default_margins().show(ui, |ui| self.payouts_tab(ui));
            }
        }
        if self.show_help {
            egui::Window::new("Keys")
                .collapsible(false)
                .show(&ctx, |ui| {
                    egui::Grid::new("keys").striped(true).show(ui, |ui| {
                        for binding in BINDINGS {
                            let key = if binding.shift {
                                format!("Shift + {}", binding.key.name())
                            } else {
                                binding.key.name().to_owned()
                            };
                            ui.monospace(key);
                            ui.label(binding.what);
                            ui.end_row();
                        }
                    });
                });
        }
    }

    /// The offline inspection's progress while the pipeline runs.
    fn progress(&mut self, ui: &mut egui::Ui) {
        let Some(inspection) = &self.inspection else {
            return;
        };
        ui.add_space(ui.available_height() / 3.0);
        ui.vertical_centered(|ui| {
            ui.heading(format!("Processing {}", inspection.bundle.display()));
            let session = if inspection.sessions > 1 {
                format!(
                    "session {} of {} · ",
                    inspection.session, inspection.sessions
                )
            } else {
                String::new()
            };
            ui.label(format!(
                "{session}{} frames decoded · {:.1} s",
                inspection.frames,
                inspection.started.elapsed().as_secs_f64()
            ));
            // The frame count is not known before the decode ends: the bar moves, the count grows.
            ui.add(
                egui::ProgressBar::new(if inspection.sessions == 0 {
                    0.0
                } else {
                    (inspection.session.saturating_sub(1)) as f32 / inspection.sessions as f32
                })
                .desired_width(420.0)
                .animate(true),
            );
            ui.label("ALIGN -> SPLICE -> CLEAN, as `process` runs them; the results open here.");
        });
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_millis(200));
    }

    fn review_tab(&mut self, ui: &mut egui::Ui) {
        egui::Panel::left("queue")
            .resizable(true)
            .default_size(330.0)
            .show(ui, |ui| self.queue(ui));
        egui::Panel::right("quality")
            .resizable(true)
            .default_size(360.0)
            .show(ui, |ui| self.quality(ui));
        egui::CentralPanel::default_margins().show(ui, |ui| self.viewer(ui));
    }

    fn queue(&mut self, ui: &mut egui::Ui) {
        let counts = self.catalog.counts();
        ui.heading("Queue");
        ui.label(format!(
            "{} sessions ({} rejected) · {} segments: {} passed, {} failed, {} overridden, {} awaiting review",
            counts.sessions,
            counts.rejected,
            counts.segments,
            counts.passed,
            counts.failed,
            counts.overridden,
            counts.awaiting_review
        ));
        ui.checkbox(&mut self.filter.failed_only, "failed only");
        ui.checkbox(&mut self.filter.awaiting_review_only, "not yet reviewed");
        let checks = self.catalog.failing_checks();
        egui::ComboBox::from_label("failing check")
            .selected_text(
                self.filter
                    .check
                    .clone()
                    .unwrap_or_else(|| "any".to_owned()),
            )
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut self.filter.check, None, "any");
                for check in checks {
                    ui.selectable_value(&mut self.filter.check, Some(check.clone()), check);
                }
            });
        let wallets = self.catalog.wallets();
        egui::ComboBox::from_label("wallet")
            .selected_text(
                self.filter
                    .wallet
                    .as_deref()
                    .map_or_else(|| "all".to_owned(), short_wallet),
            )
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut self.filter.wallet, None, "all");
                for wallet in wallets {
                    let label = short_wallet(&wallet);
                    ui.selectable_value(&mut self.filter.wallet, Some(wallet), label);
                }
            });
        ui.separator();
        let mut clicked = None;
        egui::ScrollArea::vertical().show(ui, |ui| {
            let mut wallet = None;
            for session in &self.catalog.sessions {
                if wallet != Some(&session.wallet) {
                    wallet = Some(&session.wallet);
                    ui.label(RichText::new(short_wallet(&session.wallet)).strong());
                }
                if session.status == SessionStatus::Rejected {
                    if self.filter.keeps_rejected(session) {
                        let (code, message) = session.reject.clone().unwrap_or_default();
                        ui.label(format!("  {} · rejected ({code})", session.session_id))
                            .on_hover_text(message);
                    }
                    continue;
                }
                if session.segments.is_empty() {
                    if self.filter.keeps_rejected(session) {
                        ui.label(format!(
                            "  {} · accepted, no segment cut",
                            session.session_id
                        ))
                        .on_hover_text(
                            "nothing long and continuous enough to cut (see its report)",
                        );
                    }
                    continue;
                }
                let kept: Vec<_> = session
                    .segments
                    .iter()
                    .filter(|s| self.filter.keeps(session, s))
                    .collect();
                if kept.is_empty() {
                    continue;
                }
                ui.label(format!("  {}", session.session_id));
                for segment in kept {
                    let checks = if segment.failed_checks.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", segment.failed_checks.join(", "))
                    };
                    let text = format!(
                        "    segment_{:03} · {}{checks}",
                        segment.key.segment,
                        segment.status()
                    );
                    let selected = self.selected.as_ref() == Some(&segment.key);
                    let color = if segment.verdict.passed() {
                        Color32::from_rgb(120, 200, 120)
                    } else {
                        Color32::from_rgb(230, 140, 90)
                    };
                    if ui
                        .selectable_label(selected, RichText::new(text).color(color))
                        .clicked()
                    {
                        clicked = Some(segment.key.clone());
                    }
                }
            }
        });
        if let Some(key) = clicked {
            self.select(key);
        }
    }

    fn viewer(&mut self, ui: &mut egui::Ui) {
        let Some(view) = &self.segment else {
            if let (Some(key), Some(link)) = (&self.fetching, &self.bucket) {
                ui.vertical_centered(|ui| {
                    ui.add_space(ui.available_height() / 3.0);
                    ui.spinner();
                    ui.label(format!(
                        "Fetching {key} from s3://{}",
                        link.source.clean_bucket
                    ));
                });
                return;
            }
            ui.centered_and_justified(|ui| {
                ui.label("Select a segment in the queue (or press N).");
            });
            return;
        };
        let path = view.data.frame_path(view.frame);
        let neighbours: Vec<PathBuf> = (1..=3)
            .filter_map(|d| view.data.frame_path(view.frame + d))
            .collect();
        let row = view.data.frames[view.frame].clone();
        let header = format!(
            "{} · {} · frame {} ({} of {}) · {:.3} s",
            view.data.key,
            match view.data.location {
                Location::Clean => "clean",
                Location::Review => "review",
            },
            row.frame,
            view.frame + 1,
            view.times.len(),
            view.time() / 1000.0
        );
        let clock = view.data.run_clock(row.run).cloned();
        ui.label(header);

        // The frame, at full resolution when it fits, scaled down otherwise.
        let timeline_height = 70.0;
        // The actions' row, the clock line and the lanes.
        let overlay_height = 96.0 + 24.0 + LANE_HEIGHT * lane_specs(view).len() as f32;
        let available = ui.available_size() - egui::vec2(0.0, timeline_height + overlay_height);
        let earlier = view.data.earlier_frame(view.frame);
        let earlier_caption = view
            .data
            .earlier
            .as_ref()
            .map(|earlier| match &earlier.data {
                Ok(_) => format!(
                    "earlier: {} segment_{:03} ({}) · {:.1} s, {} of {} frames match, {:.1} bits",
                    earlier.of.session_id,
                    earlier.of.segment,
                    short_wallet(&earlier.of.wallet),
                    earlier.of.run_ms / 1000.0,
                    earlier.of.frames_matched,
                    earlier.of.frames_in_run,
                    earlier.of.mean_distance
                ),
                Err(err) => format!("earlier: {} cannot be shown: {err}", earlier.of.key()),
            });
        if let (Some(path), Some(loader)) = (path, &mut self.loader) {
            // The playhead's frame first (and the earlier segment's beside it), then the next
            // ones; what the playhead has left behind is skipped by the loader.
            let wanted: Vec<PathBuf> = std::iter::once(path.clone())
                .chain(earlier.as_ref().map(|(_, p)| p.clone()))
                .chain(neighbours)
                .collect();
            loader.want(&wanted);
            match &earlier_caption {
                // A duplicate: this segment and the earlier one side by side, at one time.
                Some(caption) => {
                    let half = egui::vec2(available.x / 2.0 - 8.0, available.y - 20.0);
                    ui.horizontal(|ui| {
                        ui.vertical(|ui| {
                            ui.label("this segment");
                            show_frame(ui, loader, &mut self.texture, &path, "frame", half);
                        });
                        ui.vertical(|ui| {
                            ui.colored_label(Color32::from_rgb(230, 140, 60), caption);
                            if let Some((_, earlier_path)) = &earlier {
                                show_frame(
                                    ui,
                                    loader,
                                    &mut self.earlier_texture,
                                    earlier_path,
                                    "earlier frame",
                                    half,
                                );
                            }
                        });
                    });
                }
                None => show_frame(ui, loader, &mut self.texture, &path, "frame", available),
            }
        }

        // Actions beside the frame.
        ui.horizontal(|ui| {
            let keys = row.driving_keys.clone();
            for (name, held) in [
                ("W", keys.as_ref().is_some_and(|k| k.w)),
                ("A", keys.as_ref().is_some_and(|k| k.a)),
                ("S", keys.as_ref().is_some_and(|k| k.s)),
                ("D", keys.as_ref().is_some_and(|k| k.d)),
            ] {
                key_cap(ui, name, held);
            }
            ui.separator();
            mouse_arrow(ui, row.mouse_dx, row.mouse_dy);
            match (row.mouse_dx, row.mouse_dy) {
                (Some(dx), Some(dy)) => ui.label(format!("mouse Δ {dx:+.0}, {dy:+.0}")),
                _ => ui.label("mouse: unknown"),
            };
            ui.separator();
            if let Some(view) = &self.segment {
                mini_map(ui, &view.data.frames, view.frame);
            }
            ui.separator();
            ui.vertical(|ui| {
                if let Some(pose) = &row.pose {
                    ui.label(format!(
                        "speed {:.1} · yaw {:.1}°",
                        pose.speed,
                        pose.yaw.to_degrees()
                    ));
                }
                if let Some(controls) = &row.controls {
                    let show =
                        |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
                    ui.label(format!("throttle {}", show(controls.throttle)));
                    ui.label(format!("brake {}", show(controls.brake)));
                    ui.label(format!("steer {}", show(controls.steer)));
                }
                if let Some(keys) = &row.keys_held {
                    if !keys.is_empty() {
                        ui.label(format!("held: {}", keys.join(" ")));
                    }
                }
            });
        });
        if let Some(clock) = clock {
            ui.label(format!(
                "clock run {}: offset {:.0} ms from {} (confidence {:.2})",
                clock.run, clock.offset_ms, clock.source, clock.confidence
            ));
        }
        self.timeline(ui, timeline_height);
        self.lanes(ui);
        // Why the picture-metric lanes are missing, when they are.
        if let Some(note) = self
            .segment
            .as_ref()
            .and_then(|v| v.data.metrics_note.clone())
        {
            ui.colored_label(Color32::from_rgb(230, 140, 90), note);
        }
    }

    /// One strip per lane under the timeline, on the same time axis, with the playhead; click or
    /// drag to seek.
    fn lanes(&mut self, ui: &mut egui::Ui) {
        let Some(view) = &mut self.segment else {
            return;
        };
        let count = lane_specs(view).len();
        let (rect, plot) = time_strip(ui, view, LANE_HEIGHT * count as f32, "lanes");
        let view = &*view;
        let specs = lane_specs(view);
        let painter = ui.painter_at(rect);
        let axis = Axis::new(plot, &view.times);
        for (i, spec) in specs.iter().enumerate() {
            let top = rect.top() + i as f32 * LANE_HEIGHT;
            let band = egui::Rect::from_min_max(
                egui::pos2(plot.left(), top + 1.0),
                egui::pos2(plot.right(), top + LANE_HEIGHT - 1.0),
            );
            painter.rect_filled(
                band,
                0.0,
                Color32::from_gray(if i % 2 == 0 { 28 } else { 34 }),
            );
            painter.text(
                egui::pos2(rect.left() + 4.0, top + LANE_HEIGHT / 2.0),
                egui::Align2::LEFT_CENTER,
                spec.name,
                egui::FontId::proportional(10.5),
                spec.name_color.unwrap_or(ui.visuals().text_color()),
            );
            match &spec.kind {
                LaneKind::Band(marks, color) => axis.bands(&painter, band, marks, *color),
                LaneKind::Line {
                    values,
                    thresholds,
                    log,
                } => axis.line(&painter, band, values, thresholds, *log),
            }
        }
        axis.playhead(&painter, rect, view.time());
    }

    /// Frame ticks at their real times: gaps and stalls show as space, repeated timestamps as
    /// orange ticks. Click or drag to seek.
    fn timeline(&mut self, ui: &mut egui::Ui, height: f32) {
        let Some(view) = &mut self.segment else {
            return;
        };
        let (rect, plot) = time_strip(ui, view, height - 20.0, "timeline");
        let view = &*view;
        let axis = Axis::new(plot, &view.times);
        let painter = ui.painter_at(rect);
        painter.text(
            egui::pos2(rect.left() + 4.0, rect.center().y),
            egui::Align2::LEFT_CENTER,
            "frames",
            egui::FontId::proportional(11.0),
            ui.visuals().text_color(),
        );
        painter.rect_filled(plot, 2.0, Color32::from_gray(30));
        let mut previous: Option<f64> = None;
        let mut last_x = f32::NEG_INFINITY;
        for t in &view.times {
            let x = axis.x_of(*t);
            let repeated = previous == Some(*t);
            // A long segment has more frames than pixels: one tick per column (repeats always).
            if !repeated && x - last_x < 1.0 {
                previous = Some(*t);
                continue;
            }
            last_x = x;
            let (color, top) = if repeated {
                (Color32::from_rgb(240, 160, 60), rect.top())
            } else {
                (Color32::from_gray(170), rect.center().y)
            };
            painter.line_segment(
                [egui::pos2(x, top), egui::pos2(x, rect.bottom())],
                Stroke::new(1.0, color),
            );
            previous = Some(*t);
        }
        axis.playhead(&painter, rect, view.time());
        ui.label(format!(
            "{:.3} s of {:.3} s · {} · speed {}× ([ and ] to change)",
            view.time() / 1000.0,
            axis.total / 1000.0,
            if view.is_playing() {
                "playing"
            } else {
                "paused"
            },
            view.speed(),
        ));
    }

    fn quality(&mut self, ui: &mut egui::Ui) {
        ui.heading("Quality");
        let Some(view) = &self.segment else {
            ui.label("no segment open");
            return;
        };
        let checks = view.data.checks.clone();
        let key = view.data.key.clone();
        egui::Grid::new("checks").striped(true).show(ui, |ui| {
            ui.strong("check");
            ui.strong("value");
            ui.strong("threshold");
            ui.strong("");
            ui.end_row();
            for check in &checks {
                ui.label(&check.check)
                    .on_hover_text(format!("{}\n{}", check.metric, check.reason));
                ui.monospace(format!("{:.3}", check.value));
                let bound = check.bound.as_str().unwrap_or("");
                ui.monospace(format!("{bound} {:.3}", check.threshold));
                if check.passed {
                    ui.colored_label(Color32::from_rgb(120, 200, 120), "pass");
                } else {
                    ui.colored_label(Color32::from_rgb(230, 140, 90), "FAIL");
                }
                ui.end_row();
            }
        });
        for check in checks.iter().filter(|c| !c.passed) {
            ui.label(format!("{}: {}", check.check, check.reason));
        }
        ui.separator();
        ui.heading("Override");
        egui::ComboBox::from_label("reason code")
            .selected_text(self.reason_code.unwrap_or("choose…"))
            .show_ui(ui, |ui| {
                for code in REASON_CODES {
                    ui.selectable_value(&mut self.reason_code, Some(*code), *code);
                }
            });
        ui.add(
            egui::TextEdit::multiline(&mut self.reason_text)
                .hint_text("why (required)")
                .desired_rows(2),
        )
        .widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, "reason"));
        ui.horizontal(|ui| {
            if ui.button("Pass (P)").clicked() {
                self.decide(Verdict::Pass);
            }
            if ui.button("Fail (F)").clicked() {
                self.decide(Verdict::Fail);
            }
        });
        ui.separator();
        ui.label(RichText::new("History").strong());
        let history = self
            .ledger
            .as_ref()
            .map(|ledger| ledger.override_history(&key));
        match history {
            Some(Ok(notes)) if notes.is_empty() => {
                ui.label("no override yet");
            }
            Some(Ok(notes)) => {
                for note in notes {
                    ui.label(format!(
                        "#{} {} -> {} by {} at {}: {}",
                        note.id, note.from, note.to, note.by, note.at, note.reason
                    ));
                }
            }
            Some(Err(err)) => {
                ui.colored_label(Color32::from_rgb(230, 90, 80), err.to_string());
            }
            None => {}
        }
    }

    fn payouts_tab(&mut self, ui: &mut egui::Ui) {
        ui.heading("Payouts");
        let awaiting = self.catalog.counts().awaiting_review;
        if awaiting > 0 {
            ui.label(format!(
                "{awaiting} failed segments have not been reviewed yet.{}",
                if self.require_review {
                    " A wallet with unreviewed segments cannot be approved (--require-review)."
                } else {
                    ""
                }
            ));
        }
        let mut approve = None;
        let mut paid = None;
        egui::Grid::new("payouts").striped(true).show(ui, |ui| {
            for heading in [
                "#",
                "wallet",
                "segments",
                "frames",
                "lamports",
                "SOL",
                "unreviewed",
                "state",
                "approved by",
                "",
            ] {
                ui.strong(heading);
            }
            ui.end_row();
            for payout in &self.payouts {
                ui.label(payout.id.to_string());
                ui.monospace(short_wallet(&payout.wallet));
                ui.label(payout.items.len().to_string());
                // The frames paid for (a take-back's frames count against them).
                let frames: i64 = payout
                    .items
                    .iter()
                    .map(|item| {
                        let frames = i64::try_from(item.frames).unwrap_or(i64::MAX);
                        if item.amount_lamports.0 < 0 {
                            -frames
                        } else {
                            frames
                        }
                    })
                    .sum();
                ui.label(frames.to_string());
                ui.monospace(payout.amount_lamports.0.to_string());
                ui.monospace(payout.amount_sol());
                let unreviewed = self.catalog.awaiting_review_of(&payout.wallet);
                if unreviewed > 0 {
                    ui.colored_label(Color32::from_rgb(230, 140, 90), unreviewed.to_string());
                } else {
                    ui.label("0");
                }
                ui.label(payout.state.as_str());
                ui.label(payout.approved_by.clone().unwrap_or_default());
                match payout.state.as_str() {
                    "pending" => {
                        if ui.button("Approve").clicked() {
                            approve = Some((payout.wallet.clone(), payout.amount_lamports));
                        }
                    }
                    "approved" => {
                        ui.horizontal(|ui| {
                            let signature = self.signatures.entry(payout.id).or_default();
                            ui.add(
                                egui::TextEdit::singleline(signature)
                                    .hint_text("transfer signature")
                                    .desired_width(180.0),
                            )
                            .widget_info(|| {
                                egui::WidgetInfo::labeled(
                                    egui::Role::TextInput,
                                    true,
                                    "transfer signature",
                                )
                            });
                            if ui.button("Mark paid").clicked() {
                                paid = Some(payout.id);
                            }
                        });
                    }
                    _ => {
                        ui.label(
                            payout
                                .signature
                                .clone()
                                .map_or_else(String::new, |s| short_wallet(&s)),
                        );
                    }
                }
                ui.end_row();
            }
        });
        if let Some((wallet, seen)) = approve {
            self.approve(&wallet, seen);
        }
        if let Some(id) = paid {
            self.mark_paid(id);
        }
    }
}

impl eframe::App for ReviewApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        ReviewApp::ui(self, ui);
    }
}

/// The frame at `path` in `slot` (a texture reused from frame to frame), at full resolution when
/// it fits `available`, scaled down otherwise. Until it is decoded, the slot's previous frame
/// stays on screen (no flicker while playing or scrubbing; the header names the new one).
fn show_frame(
    ui: &mut egui::Ui,
    loader: &mut FrameLoader,
    slot: &mut Option<(TextureHandle, PathBuf)>,
    path: &PathBuf,
    name: &str,
    available: egui::Vec2,
) {
    let show = |ui: &mut egui::Ui, texture: &TextureHandle| {
        let [w, h] = texture.size().map(|v| v as f32);
        let scale = (available.x / w).min(available.y / h).clamp(0.05, 1.0);
        ui.image((texture.id(), egui::vec2(w * scale, h * scale)));
    };
    match loader.get(path) {
        Some(Ok(frame)) => {
            let size = [frame.width, frame.height];
            match slot {
                Some((_, shown)) if shown == path => {}
                Some((texture, shown)) if texture.size() == size => {
                    let image = egui::ColorImage::from_rgba_unmultiplied(size, &frame.rgba);
                    texture.set_partial([0, 0], image, TextureOptions::LINEAR);
                    *shown = path.clone();
                }
                _ => {
                    let image = egui::ColorImage::from_rgba_unmultiplied(size, &frame.rgba);
                    let texture = ui.ctx().load_texture(name, image, TextureOptions::LINEAR);
                    *slot = Some((texture, path.clone()));
                }
            }
            if let Some((texture, _)) = slot {
                show(ui, texture);
            }
        }
        Some(Err(err)) => {
            ui.colored_label(Color32::from_rgb(230, 90, 80), err);
        }
        None => match slot {
            Some((texture, _)) => show(ui, texture),
            None => {
                ui.label("loading the frame…");
            }
        },
    }
}

fn key_cap(ui: &mut egui::Ui, name: &str, held: bool) {
    let (fill, text) = if held {
        (Color32::from_rgb(90, 170, 250), Color32::BLACK)
    } else {
        (Color32::from_gray(50), Color32::from_gray(160))
    };
    egui::Frame::new()
        .fill(fill)
        .corner_radius(4.0)
        .inner_margin(egui::Margin::symmetric(8, 4))
        .show(ui, |ui| {
            ui.label(RichText::new(name).monospace().strong().color(text));
        });
}

/// Now, as the ledger stamps decisions (RFC 3339 UTC with milliseconds).
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// A wallet or signature shortened for a list: the first and last characters.
fn short_wallet(text: &str) -> String {
    if text.chars().count() <= 12 {
        return text.to_owned();
    }
    let head: String = text.chars().take(6).collect();
    let tail: String = text
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head}…{tail}")
}

/// The height of one lane under the timeline.
const LANE_HEIGHT: f32 = 14.0;

/// How a lane draws its per-frame values.
enum LaneKind<'a> {
    /// Marked frames as filled spans until the next frame.
    Band(&'a [bool], Color32),
    /// A line, with horizontal lines at its thresholds; `log` plots log10(1 + v).
    Line {
        values: &'a [Option<f64>],
        thresholds: Vec<f64>,
        log: bool,
    },
}

struct LaneSpec<'a> {
    name: &'a str,
    name_color: Option<Color32>,
    kind: LaneKind<'a>,
}

/// The lanes of the open segment, top to bottom: the driving keys, what the logs say (speed, mouse,
/// yaw rate), what the video says (its measured motion, sharpness, brightness and change, with the
/// thresholds the picture checks hold each frame to), then one lane per check that flags frames.
fn lane_specs(view: &SegmentView) -> Vec<LaneSpec<'_>> {
    let lanes = &view.lanes;
    let blue = Color32::from_rgb(90, 170, 250);
    let mut specs: Vec<LaneSpec<'_>> = ["W", "A", "S", "D"]
        .into_iter()
        .zip(&lanes.keys)
        .map(|(name, marks)| LaneSpec {
            name,
            name_color: None,
            kind: LaneKind::Band(marks, blue),
        })
        .collect();
    let line = |name, values, thresholds, log| LaneSpec {
        name,
        name_color: None,
        kind: LaneKind::Line {
            values,
            thresholds,
            log,
        },
    };
    specs.push(line("speed", &lanes.speed, Vec::new(), false));
    specs.push(line("mouse dx", &lanes.mouse_dx, Vec::new(), false));
    specs.push(line("yaw rate", &lanes.yaw_rate, Vec::new(), false));
    if !lanes.motion.is_empty() {
        let t = view.data.thresholds;
        specs.push(line("video dx", &lanes.motion, Vec::new(), false));
        specs.push(line(
            "sharpness",
            &lanes.sharpness,
            t.map(|t| vec![t.min_sharpness]).unwrap_or_default(),
            true,
        ));
        specs.push(line(
            "brightness",
            &lanes.brightness,
            t.map(|t| vec![t.black_max_luma, t.washed_min_luma])
                .unwrap_or_default(),
            false,
        ));
        specs.push(line(
            "change",
            &lanes.change,
            t.map(|t| vec![t.still_max_change]).unwrap_or_default(),
            false,
        ));
    }
    let failing = Color32::from_rgb(230, 110, 80);
    for (name, marks) in &lanes.flagged {
        specs.push(LaneSpec {
            name,
            name_color: Some(failing),
            kind: LaneKind::Band(marks, failing),
        });
    }
    specs
}

/// Allocates a strip `height` high on the shared time axis, named `name` for accessibility (and
/// the tests); a click or drag right of the name gutter seeks there. Returns the strip and its
/// plot area.
fn time_strip(
    ui: &mut egui::Ui,
    view: &mut SegmentView,
    height: f32,
    name: &str,
) -> (egui::Rect, egui::Rect) {
    let width = ui.available_width().max(100.0);
    let (rect, response) =
        ui.allocate_exact_size(egui::vec2(width, height), Sense::click_and_drag());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Slider, true, name));
    let plot = egui::Rect::from_min_max(egui::pos2(rect.left() + GUTTER, rect.top()), rect.max);
    if let Some(pointer) = response.interact_pointer_pos() {
        if pointer.x >= plot.left() {
            let t = Axis::new(plot, &view.times).time_at(pointer.x);
            view.playing = None;
            view.seek_time(t);
        }
    }
    (rect, plot)
}

/// The shared time axis of the timeline and the lanes.
struct Axis<'a> {
    plot: egui::Rect,
    total: f64,
    times: &'a [f64],
}

impl<'a> Axis<'a> {
    /// The axis of a segment whose frames are at `times`, over `plot`.
    fn new(plot: egui::Rect, times: &'a [f64]) -> Self {
        Self {
            plot,
            total: times.last().copied().unwrap_or(0.0).max(1.0),
            times,
        }
    }

    fn x_of(&self, t: f64) -> f32 {
        self.plot.left() + (t / self.total) as f32 * self.plot.width()
    }

    fn time_at(&self, x: f32) -> f64 {
        f64::from((x - self.plot.left()) / self.plot.width()) * self.total
    }

    /// The playhead at `t`, across the whole strip.
    fn playhead(&self, painter: &egui::Painter, strip: egui::Rect, t: f64) {
        let x = self.x_of(t);
        painter.line_segment(
            [egui::pos2(x, strip.top()), egui::pos2(x, strip.bottom())],
            Stroke::new(2.0, Color32::from_rgb(90, 170, 250)),
        );
    }

    /// Marked frames, each lasting until the next frame's time; neighbouring marks merge into one
    /// span, so that a long segment draws a few rectangles, not one per frame.
    fn bands(&self, painter: &egui::Painter, band: egui::Rect, marks: &[bool], color: Color32) {
        let end_of = |frame: usize| self.times.get(frame + 1).copied().unwrap_or(self.total);
        let mut open: Option<f64> = None;
        for (frame, marked) in marks.iter().enumerate() {
            let t = self.times.get(frame).copied().unwrap_or(self.total);
            match (*marked, open) {
                (true, None) => open = Some(t),
                (false, Some(from)) => {
                    self.span(painter, band, from, t, color);
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(from) = open {
            self.span(
                painter,
                band,
                from,
                end_of(marks.len().saturating_sub(1)),
                color,
            );
        }
    }

    fn span(&self, painter: &egui::Painter, band: egui::Rect, from: f64, to: f64, color: Color32) {
        let left = self.x_of(from);
        let right = self.x_of(to).max(left + 1.5);
        painter.rect_filled(
            egui::Rect::from_min_max(
                egui::pos2(left, band.top()),
                egui::pos2(right, band.bottom()),
            ),
            0.0,
            color,
        );
    }

    /// The values as a line, reduced to their least and greatest per pixel column; the thresholds
    /// as dashed red lines on the same scale.
    fn line(
        &self,
        painter: &egui::Painter,
        band: egui::Rect,
        values: &[Option<f64>],
        thresholds: &[f64],
        log: bool,
    ) {
        let scale = |v: f64| if log { v.max(0.0).ln_1p() } else { v };
        let known = values
            .iter()
            .flatten()
            .chain(thresholds)
            .map(|v| scale(*v))
            .filter(|v| v.is_finite());
        let (low, high) = known.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let span = (high - low).max(1e-9);
        let y_of = |v: f64| band.bottom() - ((scale(v) - low) / span) as f32 * band.height();
        // Per pixel column: (x, least y, greatest y).
        let mut columns: Vec<(f32, f32, f32)> = Vec::new();
        for (value, t) in values.iter().zip(self.times) {
            let Some(v) = value.filter(|v| v.is_finite()) else {
                continue;
            };
            let (x, y) = (self.x_of(*t).round(), y_of(v));
            match columns.last_mut() {
                Some(last) if last.0 == x => {
                    last.1 = last.1.min(y);
                    last.2 = last.2.max(y);
                }
                _ => columns.push((x, y, y)),
            }
        }
        let points: Vec<egui::Pos2> = columns
            .iter()
            .flat_map(|(x, lo, hi)| [egui::pos2(*x, *lo), egui::pos2(*x, *hi)])
            .collect();
        if points.len() > 1 {
            painter.add(egui::Shape::line(
                points,
                Stroke::new(1.0, Color32::from_rgb(200, 200, 120)),
            ));
        }
        if low < 0.0 && high > 0.0 {
            let zero = y_of(0.0);
            painter.line_segment(
                [
                    egui::pos2(band.left(), zero),
                    egui::pos2(band.right(), zero),
                ],
                Stroke::new(0.5, Color32::from_gray(80)),
            );
        }
        for threshold in thresholds {
            let y = y_of(*threshold);
            painter.add(egui::Shape::dashed_line(
                &[egui::pos2(band.left(), y), egui::pos2(band.right(), y)],
                Stroke::new(1.0, Color32::from_rgb(230, 90, 80)),
                4.0,
                3.0,
            ));
        }
    }
}

/// The mouse movement since the previous frame as an arrow from the middle of a small square
/// (screen directions: right is +dx, down is +dy), its length growing with the movement and
/// saturating at the edge.
fn mouse_arrow(ui: &mut egui::Ui, dx: Option<f64>, dy: Option<f64>) {
    let (rect, response) = ui.allocate_exact_size(egui::vec2(56.0, 56.0), Sense::hover());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "mouse arrow"));
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 4.0, Color32::from_gray(30));
    let center = rect.center();
    painter.circle_filled(center, 2.0, Color32::from_gray(120));
    let (Some(dx), Some(dy)) = (dx, dy) else {
        return;
    };
    let length = dx.hypot(dy);
    if length < 0.5 {
        return;
    }
    let reach = 25.0 * (1.0 - (-length / 40.0).exp());
    let direction = egui::vec2((dx / length) as f32, (dy / length) as f32);
    painter.arrow(
        center,
        direction * reach as f32,
        Stroke::new(2.0, Color32::from_rgb(250, 200, 90)),
    );
}

/// The camera's path over the segment seen from above (x right, z down), the current position as
/// a dot with a line where the camera faces (yaw 0 faces -z).
fn mini_map(ui: &mut egui::Ui, frames: &[crate::segment::FrameRow], current: usize) {
    let (rect, response) = ui.allocate_exact_size(egui::vec2(96.0, 96.0), Sense::hover());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "camera path"));
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 4.0, Color32::from_gray(30));
    let positions: Vec<(f64, f64)> = frames
        .iter()
        .filter_map(|row| row.pose.as_ref())
        .map(|pose| (pose.pos[0], pose.pos[2]))
        .filter(|(x, z)| x.is_finite() && z.is_finite())
        .collect();
    if positions.is_empty() {
        painter.text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            "no pose",
            egui::FontId::proportional(10.0),
            Color32::from_gray(140),
        );
        return;
    }
    let (mut x0, mut x1, mut z0, mut z1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, z) in &positions {
        (x0, x1, z0, z1) = (x0.min(*x), x1.max(*x), z0.min(*z), z1.max(*z));
    }
    // One scale for both axes (a map, not a plot), with a margin, and at least 10 units across.
    let inner = rect.shrink(8.0);
    let across = (x1 - x0).max(z1 - z0).max(10.0);
    let (mx, mz) = ((x0 + x1) / 2.0, (z0 + z1) / 2.0);
    let to_screen = |x: f64, z: f64| {
        inner.center()
            + egui::vec2(
                ((x - mx) / across) as f32 * inner.width(),
                ((z - mz) / across) as f32 * inner.height(),
            )
    };
    let mut points: Vec<egui::Pos2> = Vec::new();
    for (x, z) in &positions {
        let p = to_screen(*x, *z);
        if points.last().is_none_or(|last| last.distance(p) >= 0.75) {
            points.push(p);
        }
    }
    if points.len() > 1 {
        painter.add(egui::Shape::line(
            points,
            Stroke::new(1.0, Color32::from_gray(150)),
        ));
    }
    if let Some(pose) = frames.get(current).and_then(|row| row.pose.as_ref()) {
        let at = to_screen(pose.pos[0], pose.pos[2]);
        let facing = egui::vec2(-pose.yaw.sin() as f32, -pose.yaw.cos() as f32);
        painter.line_segment(
            [at, at + facing * 12.0],
            Stroke::new(2.0, Color32::from_rgb(250, 200, 90)),
        );
        painter.circle_filled(at, 3.5, Color32::from_rgb(90, 170, 250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::test_data::{row, segment};

    fn view(times: &[f64]) -> SegmentView {
        let frames = times
            .iter()
            .enumerate()
            .map(|(i, t)| row(i, Some(*t)))
            .collect();
        SegmentView::new(segment(frames, Vec::new()))
    }

    #[test]
    fn a_speed_change_while_playing_keeps_the_playhead_where_it_is() {
        let ctx = egui::Context::default();
        let mut app = ReviewApp::open(
            Sources::embedded_default(std::path::Path::new("/nonexistent")),
            "qa".to_owned(),
            &ctx,
        );
        // A stall: 100 ms, then 2 s without a frame.
        app.segment = Some(view(&[0.0, 100.0, 2_100.0, 2_200.0]));
        app.act(Action::PlayPause, 10.0);
        // 1.5 s later at 1x the playhead is inside the stall, still on frame 1.
        app.act(Action::Faster, 11.5);
        let view = app.segment.as_ref().expect("open");
        assert_eq!(view.speed(), 2.0);
        assert_eq!(view.playing, Some((11.5, 1_500.0)));
        // Another 0.25 s at 2x: 2 s, still before frame 2.
        app.act(Action::Slower, 11.75);
        let view = app.segment.as_ref().expect("open");
        assert_eq!(view.speed(), 1.0);
        assert_eq!(view.playing, Some((11.75, 2_000.0)));
        // Paused, a change of speed moves nothing.
        app.act(Action::PlayPause, 12.0);
        app.act(Action::Slower, 13.0);
        let view = app.segment.as_ref().expect("open");
        assert_eq!((view.playing, view.frame, view.speed()), (None, 0, 0.5));
    }
}
