//! Publishing to local folders laid out like the clean bucket: a segment appears whole or not at
//! all, and a rerun converges.
//!
//! ```text
//! CLEAN/{wallet}/{session_id}/session.json, report.html every accepted session
//! CLEAN/{wallet}/{session_id}/segment_NNN/{frames/,aligned.json,quality.json}   passing segments
//! REVIEW/{wallet}/{session_id}/segment_NNN/...          failed segments, same layout
//! REVIEW/{wallet}/{session_id}/session.json, report.html rejected sessions (with the reason)
//! WORK/lock, WORK/staging/                              outside both: never seen by consumers
//! ```
//!
//! Everything is written under `WORK/staging/` first (same filesystem as both roots), flushed to
//! disk once with `syncfs`, then moved into place by `rename`. A segment that already exists is
//! swapped with its new version by one `renameat2(RENAME_EXCHANGE)`, so readers see the old
//! segment or the new one, never a mix and never a gap. A killed run leaves only staging behind,
//! which the next run clears.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::ids::{SessionId, WalletAddress};
use crate::ledger::{SegmentKey, SessionStatus};
use crate::manifest::{
    segment_objects, segment_objects_on_disk, ManifestObject, SessionManifest, MANIFEST_FILE,
    MANIFEST_SCHEMA_VERSION,
};
use crate::outputs::{Location, Placement, RunInfo};

/// A filesystem problem while publishing (never a bundle's fault).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another run holds {0}: wait for it to finish (only one run may write an output folder)"
    )]
    Locked(PathBuf),
    #[error(
        "{other} is on another filesystem than {clean}: segments move between the clean layout, \
         the review area and the work folder by rename, so all three must be on one filesystem"
    )]
    CrossDevice { clean: PathBuf, other: PathBuf },
    #[error(
        "the clean layout {clean} and the review area {review} overlap: they must be two separate \
         folders (failed segments must never sit where consumers read)"
    )]
    Overlap { clean: PathBuf, review: PathBuf },
    #[error(
        "the work folder {0} is inside the clean layout or the review area: consumers would see \
         half-written files there; choose a folder beside them"
    )]
    WorkInsideOutput(PathBuf),
    #[error("{path} is not what `process` writes ({detail}): run `process` again first")]
    Malformed { path: PathBuf, detail: String },
    #[error("no segment {0} in the clean layout or the review area")]
    NoSuchSegment(String),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PublishError {
    let path = path.to_path_buf();
    move |source| PublishError::Io { what, path, source }
}

/// The clean layout and the review area, opened for one run (holding the run lock).
#[derive(Debug)]
pub struct OutputLayout {
    clean: PathBuf,
    review: PathBuf,
    staging: PathBuf,
    /// Held for as long as the layout is open.
    _lock: File,
    /// Renames readers can see so far, and the test hook's limit (see [`ABORT_AFTER_RENAMES_ENV`]).
    visible_renames: std::cell::Cell<usize>,
    abort_after_renames: Option<usize>,
}

/// Test hook: with `SD_TEST_ABORT_AFTER_RENAMES=k` set, the process aborts right after the k-th
/// rename that changes what readers of the layout see, as a SIGKILL landing there would. The
/// end-to-end tests walk k over every step of a publish to check that no step leaves anything
/// partial where consumers read.
pub const ABORT_AFTER_RENAMES_ENV: &str = "SD_TEST_ABORT_AFTER_RENAMES";

/// A session's files being prepared in staging.
#[derive(Debug)]
pub struct StagedSession {
    root: PathBuf,
    frames: PathBuf,
}

/// The session's own files, beside its segments (in the clean layout for an accepted session, in
/// the review area for a rejected one).
pub const SESSION_FILES: [&str; 2] = ["session.json", "report.html"];

impl StagedSession {
    /// A fresh staging folder at `root` (cleared if it exists), with its `all-frames/` folder.
    /// A publish target makes one per session where it can move or read files from.
    pub fn create(root: PathBuf) -> Result<Self, PublishError> {
        if root.exists() {
            fs::remove_dir_all(&root).map_err(io("cannot clear", &root))?;
        }
        let frames = root.join("all-frames");
        fs::create_dir_all(&frames).map_err(io("cannot create", &frames))?;
        Ok(Self { root, frames })
    }

    /// Where the frame writer puts every decoded frame (`{frame:06}.jpg`).
    pub fn frames_dir(&self) -> &Path {
        &self.frames
    }

    /// Removes the staging folder and everything in it.
    pub fn remove(self) -> Result<(), PublishError> {
        remove_staging(&self.root)
    }

    /// Lays the session out in staging exactly as it will be published, and lists it in its
    /// manifests: each segment folder `segment_NNN/` gets its frames (moved out of `all-frames`)
    /// and its two JSON files; `session.json` and `report.html` sit at the top. Frames no segment
    /// uses stay in `all-frames/` and are never published.
    pub fn assemble(self, content: SessionContent<'_>) -> Result<AssembledSession, PublishError> {
        let root = &self.root;
        let mut clean = Vec::new();
        let mut review = Vec::new();
        let mut placed = Vec::with_capacity(content.segments.len());
        for files in content.segments {
            let folder = root.join(SegmentKey::folder_name(files.segment));
            let frames = folder.join("frames");
            fs::create_dir_all(&frames).map_err(io("cannot create", &frames))?;
            for &frame in &files.frames {
                let name = crate::frames::frame_file_name(frame);
                let from = self.frames.join(&name);
                fs::rename(&from, frames.join(&name)).map_err(io("cannot move frame", &from))?;
            }
            write_file(&folder.join("aligned.json"), &files.aligned_json)?;
            write_file(&folder.join("quality.json"), &files.quality_json)?;
            let listed = segment_objects(root, files.segment, &files.frames)
                .map_err(io("cannot read", &folder))?;
            match files.location {
                Location::Clean => clean.push(listed),
                Location::Review => review.push(listed),
            }
            placed.push((files.location, files.segment));
        }
        let mut session_files = Vec::with_capacity(SESSION_FILES.len());
        for (name, bytes) in SESSION_FILES
            .into_iter()
            .zip([content.session_json, content.report_html])
        {
            write_file(&root.join(name), bytes)?;
            session_files.push(ManifestObject::of_bytes(name, bytes));
        }
        let manifest = |location: Location, files: Vec<ManifestObject>, segments| SessionManifest {
            schema_version: MANIFEST_SCHEMA_VERSION,
            wallet: content.wallet.to_string(),
            session_id: content.session.to_string(),
            location,
            status: content.status,
            run: content.run.clone(),
            files,
            segments,
        };
        let (clean, review) = match content.status {
            SessionStatus::Accepted => (
                Some(manifest(Location::Clean, session_files, clean)),
                (!review.is_empty()).then(|| manifest(Location::Review, Vec::new(), review)),
            ),
            SessionStatus::Rejected => (
                None,
                Some(manifest(Location::Review, session_files, Vec::new())),
            ),
        };
        Ok(AssembledSession {
            wallet: content.wallet.clone(),
            session: content.session.clone(),
            status: content.status,
            root: self.root,
            placed,
            clean,
            review,
        })
    }
}

/// What to publish for one session, for [`StagedSession::assemble`]. A rejected session has no
/// segments; its `session.json` carries the reason.
#[derive(Debug, Clone, Copy)]
pub struct SessionContent<'a> {
    pub wallet: &'a WalletAddress,
    pub session: &'a SessionId,
    pub status: SessionStatus,
    pub run: &'a RunInfo,
    pub segments: &'a [SegmentFiles],
    pub session_json: &'a [u8],
    pub report_html: &'a [u8],
}

/// A session laid out in staging as it will be published, with its manifests: what a
/// [`PublishTarget`] puts in place (by rename on a local disk, by upload to a bucket).
#[derive(Debug)]
pub struct AssembledSession {
    pub wallet: WalletAddress,
    pub session: SessionId,
    pub status: SessionStatus,
    root: PathBuf,
    /// Every segment and where it goes, in segment order.
    pub placed: Vec<(Location, usize)>,
    /// What goes into the clean layout (`None`: nothing; the session leaves it).
    pub clean: Option<SessionManifest>,
    /// What goes into the review area (`None`: nothing).
    pub review: Option<SessionManifest>,
}

impl AssembledSession {
    /// The staging folder: every object a manifest lists is at `root/{object.path}`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn manifest(&self, location: Location) -> Option<&SessionManifest> {
        match location {
            Location::Clean => self.clean.as_ref(),
            Location::Review => self.review.as_ref(),
        }
    }

    /// Removes the staging folder (after publishing, or when giving up).
    pub fn remove(self) -> Result<(), PublishError> {
        remove_staging(&self.root)
    }
}

/// A manifest as it is written: pretty JSON.
pub fn manifest_json(manifest: &SessionManifest) -> Result<Vec<u8>, PublishError> {
    serde_json::to_vec_pretty(manifest).map_err(|err| PublishError::Malformed {
        path: PathBuf::from(MANIFEST_FILE),
        detail: err.to_string(),
    })
}

fn remove_staging(root: &Path) -> Result<(), PublishError> {
    match fs::remove_dir_all(root) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(io("cannot clear", root)(err))
        }
        _ => Ok(()),
    }
}

/// Where a session's outputs go: the local clean layout and review area ([`OutputLayout`]), or a
/// bucket (the server's). The pipeline stages and assembles a session on disk; a target only puts
/// an assembled session in place, so every target publishes the same objects and manifests.
pub trait PublishTarget {
    type Error: std::error::Error + Send + Sync + 'static;

    /// A fresh staging folder for one session; `label` is unique within the run.
    fn stage(&mut self, label: &str) -> Result<StagedSession, Self::Error>;

    /// Puts the session in place: objects first, each place's manifest last; then what the new
    /// manifests no longer list goes. Removes the staging folder.
    fn publish(&mut self, session: AssembledSession) -> Result<Published, Self::Error>;
}

impl PublishTarget for OutputLayout {
    type Error = PublishError;

    fn stage(&mut self, label: &str) -> Result<StagedSession, PublishError> {
        StagedSession::create(self.staging.join(label))
    }

    fn publish(&mut self, session: AssembledSession) -> Result<Published, PublishError> {
        self.place(session)
    }
}

/// One segment to publish: which frames, where, and its two JSON files.
#[derive(Debug, Clone)]
pub struct SegmentFiles {
    pub segment: usize,
    pub frames: Vec<usize>,
    pub location: Location,
    pub aligned_json: Vec<u8>,
    pub quality_json: Vec<u8>,
}

/// What one session's publish did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    pub clean_segments: usize,
    pub review_segments: usize,
    /// Segments of an earlier run that this run no longer produces, taken out of both layouts.
    pub withdrawn_segments: usize,
}

impl OutputLayout {
    /// Creates the roots if needed, takes the run lock (in `work`) and clears what a killed run
    /// left in staging. `work` holds only the lock and staging; it must be on the same filesystem
    /// as `clean` and `review`, and outside both.
    pub fn open(clean: &Path, review: &Path, work: &Path) -> Result<Self, PublishError> {
        use std::os::unix::fs::MetadataExt as _;
        // Checked on each folder's nearest existing ancestor, before creating anything: a refused
        // layout leaves no folder behind.
        let device = |path: &Path| -> Result<u64, PublishError> {
            let mut existing = path;
            loop {
                match fs::metadata(existing) {
                    Ok(metadata) => return Ok(metadata.dev()),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                        existing = match existing.parent() {
                            Some(parent) if !parent.as_os_str().is_empty() => parent,
                            _ => Path::new("."),
                        };
                    }
                    Err(err) => return Err(io("cannot read", existing)(err)),
                }
            }
        };
        let devices = [device(clean)?, device(review)?, device(work)?];
        for (other, device) in [(review, devices[1]), (work, devices[2])] {
            if device != devices[0] {
                return Err(PublishError::CrossDevice {
                    clean: clean.to_path_buf(),
                    other: other.to_path_buf(),
                });
            }
        }
        for root in [clean, review, work] {
            fs::create_dir_all(root).map_err(io("cannot create", root))?;
        }
        let within = |inner: &Path, outer: &Path| match (inner.canonicalize(), outer.canonicalize())
        {
            (Ok(inner), Ok(outer)) => inner.starts_with(&outer),
            _ => false,
        };
        if within(review, clean) || within(clean, review) {
            return Err(PublishError::Overlap {
                clean: clean.to_path_buf(),
                review: review.to_path_buf(),
            });
        }
        if within(work, clean) || within(work, review) {
            return Err(PublishError::WorkInsideOutput(work.to_path_buf()));
        }
        let state = work.to_path_buf();
        let lock_path = state.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("cannot open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(PublishError::Locked(lock_path)),
            Err(fs::TryLockError::Error(err)) => return Err(io("cannot lock", &lock_path)(err)),
        }
        let staging = state.join("staging");
        if staging.exists() {
            tracing::info!(path = %staging.display(), "clearing what an interrupted run left in staging");
            fs::remove_dir_all(&staging).map_err(io("cannot clear", &staging))?;
        }
        fs::create_dir_all(&staging).map_err(io("cannot create", &staging))?;
        Ok(Self {
            clean: clean.to_path_buf(),
            review: review.to_path_buf(),
            staging,
            _lock: lock,
            visible_renames: std::cell::Cell::new(0),
            abort_after_renames: std::env::var(ABORT_AFTER_RENAMES_ENV)
                .ok()
                .and_then(|k| k.parse().ok()),
        })
    }

    /// Counts one rename readers can see (and aborts there under the test hook).
    fn visible_step(&self) {
        let done = self.visible_renames.get() + 1;
        self.visible_renames.set(done);
        if self.abort_after_renames == Some(done) {
            tracing::warn!(
                renames = done,
                "{ABORT_AFTER_RENAMES_ENV}: aborting as asked"
            );
            std::process::abort();
        }
    }

    pub fn root(&self, location: Location) -> &Path {
        match location {
            Location::Clean => &self.clean,
            Location::Review => &self.review,
        }
    }

    /// `{root}/{wallet}/{session_id}`.
    pub fn session_dir(
        &self,
        location: Location,
        wallet: &WalletAddress,
        session: &SessionId,
    ) -> PathBuf {
        self.root(location)
            .join(wallet.as_str())
            .join(session.as_str())
    }

    /// Puts an assembled session in place: segments into the clean layout or the review area,
    /// the session's own files where its status says, and each place's `manifest.json` last.
    /// Segments an earlier run published that this one does not place there are withdrawn first,
    /// so a run killed in between leaves a segment missing until the next run, never a failed
    /// one where consumers read.
    fn place(&self, assembled: AssembledSession) -> Result<Published, PublishError> {
        let mut published = Published::default();
        let wallet = &assembled.wallet;
        let session = &assembled.session;
        let root = &assembled.root;
        let mut manifests = Vec::new();
        for location in [Location::Clean, Location::Review] {
            let staged = match assembled.manifest(location) {
                Some(manifest) => {
                    let staged = root.join(format!("manifest-{}.json", location.as_str()));
                    write_file(&staged, &manifest_json(manifest)?)?;
                    Some(staged)
                }
                None => None,
            };
            manifests.push((location, staged));
        }
        // 1. One flush of everything written, before anything becomes visible.
        sync_filesystem(root)?;

        // 2. Take out first what must leave a place.
        let clean_dir = self.session_dir(Location::Clean, wallet, session);
        let review_dir = self.session_dir(Location::Review, wallet, session);
        let trash = root.join("withdrawn");
        fs::create_dir_all(&trash).map_err(io("cannot create", &trash))?;
        let wanted: BTreeSet<(Location, String)> = assembled
            .placed
            .iter()
            .map(|&(location, segment)| (location, SegmentKey::folder_name(segment)))
            .collect();
        if assembled.status == SessionStatus::Rejected && clean_dir.exists() {
            // Nothing of a rejected session stays where consumers read.
            published.withdrawn_segments += segment_folders(&clean_dir)?.len();
            withdraw(&clean_dir, &trash.join("clean"))?;
            self.visible_step();
        }
        for (location, dir) in [
            (Location::Clean, &clean_dir),
            (Location::Review, &review_dir),
        ] {
            for name in segment_folders(dir)? {
                if wanted.contains(&(location, name.clone())) {
                    continue;
                }
                withdraw(
                    &dir.join(&name),
                    &trash.join(format!("{}-{name}", location.as_str())),
                )?;
                self.visible_step();
                let moved = wanted.iter().any(|(_, wanted_name)| *wanted_name == name);
                if !moved {
                    published.withdrawn_segments += 1;
                }
            }
        }

        // 3. The new versions go in.
        let home = match assembled.status {
            SessionStatus::Accepted => &clean_dir,
            SessionStatus::Rejected => &review_dir,
        };
        create_dir_durably(home)?;
        for &(location, segment) in &assembled.placed {
            let target_dir = match location {
                Location::Clean => &clean_dir,
                Location::Review => &review_dir,
            };
            create_dir_durably(target_dir)?;
            let name = SegmentKey::folder_name(segment);
            swap_into_place(&root.join(&name), &target_dir.join(&name))?;
            self.visible_step();
            match location {
                Location::Clean => published.clean_segments += 1,
                Location::Review => published.review_segments += 1,
            }
        }
        for name in SESSION_FILES {
            let target = home.join(name);
            fs::rename(root.join(name), &target).map_err(io("cannot publish", &target))?;
            self.visible_step();
        }
        // The session's record in the other place (an earlier run's other status) no longer holds.
        let away = if home == &clean_dir {
            &review_dir
        } else {
            &clean_dir
        };
        for name in SESSION_FILES {
            remove_file_if_exists(&away.join(name))?;
        }

        // 4. Each place's manifest last: what it lists is whole.
        for (location, staged) in manifests {
            let dir = match location {
                Location::Clean => &clean_dir,
                Location::Review => &review_dir,
            };
            let target = dir.join(MANIFEST_FILE);
            match staged {
                Some(staged) => {
                    create_dir_durably(dir)?;
                    fs::rename(&staged, &target).map_err(io("cannot publish", &target))?;
                    self.visible_step();
                }
                None => remove_file_if_exists(&target)?,
            }
        }
        for dir in [&clean_dir, &review_dir] {
            if dir.is_dir() {
                sync_dir(dir)?;
            }
        }
        remove_empty_dir(&review_dir);
        if let Some(parent) = clean_dir.parent().filter(|parent| parent.is_dir()) {
            sync_dir(parent)?;
        }
        fs::remove_dir_all(root).map_err(io("cannot clear", root))?;
        Ok(published)
    }

    /// Moves one published segment between the clean layout and the review area (a reviewer's
    /// override), rewriting its `quality.json` with `quality_json`. Whole or not at all.
    fn move_segment(
        &self,
        key: &SegmentKey,
        to: Location,
        quality_json: &[u8],
    ) -> Result<(), PublishError> {
        let name = SegmentKey::folder_name(key.segment);
        let from_location = match to {
            Location::Clean => Location::Review,
            Location::Review => Location::Clean,
        };
        let relative = Path::new(&key.wallet).join(&key.session_id).join(&name);
        let source = self.root(from_location).join(&relative);
        let target = self.root(to).join(&relative);
        let source = match (source.is_dir(), target.is_dir()) {
            (true, _) => source,
            // Already where it belongs (a repeated override): only quality.json changes.
            (false, true) => target.clone(),
            (false, false) => return Err(PublishError::NoSuchSegment(key.to_string())),
        };
        // The new version is assembled in staging from hard links to the same frames, so that
        // every folder a reader can see stays complete at every moment.
        let staged = self.staging.join(format!("move-{}-{name}", key.session_id));
        if staged.exists() {
            fs::remove_dir_all(&staged).map_err(io("cannot clear", &staged))?;
        }
        let next = staged.join(&name);
        let next_frames = next.join("frames");
        fs::create_dir_all(&next_frames).map_err(io("cannot create", &next_frames))?;
        let frames_from = source.join("frames");
        let entries = fs::read_dir(&frames_from).map_err(io("cannot list", &frames_from))?;
        for entry in entries {
            let entry = entry.map_err(io("cannot list", &frames_from))?;
            let from = entry.path();
            fs::hard_link(&from, next_frames.join(entry.file_name()))
                .map_err(io("cannot link frame", &from))?;
        }
        let aligned = source.join("aligned.json");
        fs::copy(&aligned, next.join("aligned.json")).map_err(io("cannot copy", &aligned))?;
        write_file(&next.join("quality.json"), quality_json)?;
        sync_filesystem(&staged)?;
        if let Some(parent) = target.parent() {
            create_dir_durably(parent)?;
        }
        swap_into_place(&next, &target)?;
        self.visible_step();
        if source != target {
            withdraw(&source, &staged.join("old"))?;
            self.visible_step();
        }
        for dir in [source.parent(), target.parent()].into_iter().flatten() {
            sync_dir(dir)?;
        }
        fs::remove_dir_all(&staged).map_err(io("cannot clear", &staged))?;
        Ok(())
    }

    /// The published segment `key` and its `quality.json`, checked to be what `process` writes
    /// (so that a reviewer's override is refused before it is recorded, not after).
    pub fn published_quality(
        &self,
        key: &SegmentKey,
    ) -> Result<(Location, serde_json::Value), PublishError> {
        let (location, folder) = self
            .find_segment(key)
            .ok_or_else(|| PublishError::NoSuchSegment(key.to_string()))?;
        let path = folder.join("quality.json");
        let text = fs::read_to_string(&path).map_err(io("cannot read", &path))?;
        let quality: serde_json::Value =
            serde_json::from_str(&text).map_err(|err| PublishError::Malformed {
                path: path.clone(),
                detail: err.to_string(),
            })?;
        if !quality
            .get("placement")
            .is_some_and(serde_json::Value::is_object)
        {
            return Err(PublishError::Malformed {
                path,
                detail: "no `placement` object".to_owned(),
            });
        }
        Ok((location, quality))
    }

    /// Carries out a reviewer's decision on disk: the segment's `quality.json` gets the new
    /// placement, the segment moves to `placement.location` (whole or not at all), and the
    /// session's `session.json` lists the new placement. The CLI and the desktop app both call
    /// this after `sd_ledger::Ledger::override_segment` recorded the decision.
    pub fn apply_placement(
        &self,
        key: &SegmentKey,
        placement: &Placement,
    ) -> Result<(), PublishError> {
        let (_, mut quality) = self.published_quality(key)?;
        let value = serde_json::to_value(placement).map_err(|err| PublishError::Malformed {
            path: PathBuf::from(key.to_string()),
            detail: err.to_string(),
        })?;
        if let Some(object) = quality.as_object_mut() {
            object.insert("placement".into(), value.clone());
        }
        let quality_json = to_json(&quality, key)?;
        self.move_segment(key, placement.location, &quality_json)?;

        let session_path = self
            .clean
            .join(&key.wallet)
            .join(&key.session_id)
            .join("session.json");
        let text = fs::read_to_string(&session_path).map_err(io("cannot read", &session_path))?;
        let mut session: serde_json::Value =
            serde_json::from_str(&text).map_err(|err| PublishError::Malformed {
                path: session_path.clone(),
                detail: err.to_string(),
            })?;
        let listed = session
            .get_mut("segments")
            .and_then(serde_json::Value::as_array_mut)
            .and_then(|segments| {
                segments.iter_mut().find(|s| {
                    s.get("segment").and_then(serde_json::Value::as_u64) == Some(key.segment as u64)
                })
            })
            .and_then(serde_json::Value::as_object_mut)
            .ok_or_else(|| PublishError::Malformed {
                path: session_path.clone(),
                detail: format!("segment {} is not listed", key.segment),
            })?;
        listed.insert("placement".into(), value);
        let session_json = to_json(&session, key)?;
        self.replace_session_json(&key.wallet, &key.session_id, &session_json)?;
        self.refresh_manifests(&key.wallet, &key.session_id)
    }

    /// Rewrites a session's manifests from what is on disk, after an override moved one of its
    /// segments: each place lists the segment folders it now holds (every folder is whole) and
    /// the session's files. The run stays the one that published the session.
    fn refresh_manifests(&self, wallet: &str, session_id: &str) -> Result<(), PublishError> {
        let dirs = [Location::Clean, Location::Review]
            .map(|location| (location, self.root(location).join(wallet).join(session_id)));
        let mut previous = None;
        for (_, dir) in &dirs {
            let path = dir.join(MANIFEST_FILE);
            if let Ok(text) = fs::read_to_string(&path) {
                let manifest: SessionManifest =
                    serde_json::from_str(&text).map_err(|err| PublishError::Malformed {
                        path: path.clone(),
                        detail: err.to_string(),
                    })?;
                previous = Some(manifest);
                break;
            }
        }
        // A session published before manifests existed: the next `process` run writes them.
        let Some(previous) = previous else {
            return Ok(());
        };
        for (location, dir) in &dirs {
            let mut segments = Vec::new();
            for name in segment_folders(dir)? {
                let Some(segment) = SegmentKey::parse_folder_name(&name) else {
                    continue;
                };
                segments
                    .push(segment_objects_on_disk(dir, segment).map_err(io("cannot read", dir))?);
            }
            let mut files = Vec::new();
            for name in SESSION_FILES {
                if dir.join(name).is_file() {
                    files.push(ManifestObject::of_file(dir, name).map_err(io("cannot read", dir))?);
                }
            }
            let target = dir.join(MANIFEST_FILE);
            if segments.is_empty() && files.is_empty() {
                remove_file_if_exists(&target)?;
                continue;
            }
            let manifest = SessionManifest {
                location: *location,
                files,
                segments,
                ..previous.clone()
            };
            let staged = self
                .staging
                .join(format!("manifest-{session_id}-{}.json", location.as_str()));
            write_file(&staged, &manifest_json(&manifest)?)?;
            File::open(&staged)
                .and_then(|file| file.sync_all())
                .map_err(io("cannot flush", &staged))?;
            fs::rename(&staged, &target).map_err(io("cannot publish", &target))?;
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// Replaces a published `session.json` (after an override changed a placement), through
    /// staging: readers see the old file or the new one.
    fn replace_session_json(
        &self,
        wallet: &str,
        session_id: &str,
        session_json: &[u8],
    ) -> Result<(), PublishError> {
        let target = self
            .clean
            .join(wallet)
            .join(session_id)
            .join("session.json");
        let staged = self.staging.join(format!("session-{session_id}.json"));
        File::create(&staged)
            .and_then(|mut file| {
                file.write_all(session_json)?;
                file.sync_all()
            })
            .map_err(io("cannot write", &staged))?;
        fs::rename(&staged, &target).map_err(io("cannot publish", &target))?;
        if let Some(parent) = target.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    /// Where a published segment is, if anywhere.
    pub fn find_segment(&self, key: &SegmentKey) -> Option<(Location, PathBuf)> {
        let relative = Path::new(&key.wallet)
            .join(&key.session_id)
            .join(SegmentKey::folder_name(key.segment));
        [Location::Clean, Location::Review]
            .into_iter()
            .map(|location| (location, self.root(location).join(&relative)))
            .find(|(_, path)| path.is_dir())
    }
}

fn to_json(value: &serde_json::Value, key: &SegmentKey) -> Result<Vec<u8>, PublishError> {
    serde_json::to_vec_pretty(value).map_err(|err| PublishError::Malformed {
        path: PathBuf::from(key.to_string()),
        detail: err.to_string(),
    })
}

/// `segment_NNN` folders in `dir` (none when it does not exist).
fn segment_folders(dir: &Path) -> Result<Vec<String>, PublishError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io("cannot list", dir)(err)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("cannot list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("segment_") && entry.path().is_dir() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    File::create(path)
        .and_then(|mut file| file.write_all(bytes))
        .map_err(io("cannot write", path))
}

fn remove_file_if_exists(path: &Path) -> Result<(), PublishError> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(io("cannot remove", path)(err))
        }
        _ => Ok(()),
    }
}

fn remove_empty_dir(path: &Path) {
    // Only succeeds when empty, which is exactly when it should go.
    let _ = fs::remove_dir(path);
}

/// Moves `path` (if it exists) to `trash`, out of the consumers' sight in one rename.
fn withdraw(path: &Path, trash: &Path) -> Result<(), PublishError> {
    match fs::rename(path, trash) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(io("cannot withdraw", path)(err))
        }
        _ => Ok(()),
    }
}

/// Puts the folder `staged` at `target`: a plain rename when `target` is free, else one atomic
/// exchange (the old version ends up at `staged`'s path, and is removed with staging).
fn swap_into_place(staged: &Path, target: &Path) -> Result<(), PublishError> {
    if !target.exists() {
        return fs::rename(staged, target).map_err(io("cannot publish", target));
    }
    let exchanged = rustix::fs::renameat_with(
        rustix::fs::CWD,
        staged,
        rustix::fs::CWD,
        target,
        rustix::fs::RenameFlags::EXCHANGE,
    );
    match exchanged {
        Ok(()) => Ok(()),
        Err(errno) if errno == rustix::io::Errno::INVAL || errno == rustix::io::Errno::NOSYS => {
            // A filesystem without RENAME_EXCHANGE: the old version goes first, then the new one
            // comes; readers may find the segment absent for a moment, never half-written.
            let aside = staged.with_extension("old");
            fs::rename(target, &aside).map_err(io("cannot withdraw", target))?;
            fs::rename(staged, target).map_err(io("cannot publish", target))?;
            fs::rename(&aside, staged).map_err(io("cannot clear", &aside))
        }
        Err(errno) => Err(io("cannot publish", target)(errno.into())),
    }
}

/// Flushes the filesystem holding `path` (every file written there) in one call.
fn sync_filesystem(path: &Path) -> Result<(), PublishError> {
    let dir = File::open(path).map_err(io("cannot open", path))?;
    rustix::fs::syncfs(&dir).map_err(|errno| io("cannot flush", path)(errno.into()))
}

/// Creates `dir` and its missing parents, fsyncing each new entry's parent so that the folders
/// survive a crash with the files renamed into them.
fn create_dir_durably(dir: &Path) -> Result<(), PublishError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(io("cannot create", dir)(err))
        }
        _ => {}
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Makes the renames inside `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), PublishError> {
    File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(io("cannot flush", dir))
}
