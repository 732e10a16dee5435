//! The training export (`scale-diffusion export`): the clean layout, read through its manifests,
//! as a LeRobot v3 dataset (`lerobot.rs`) or WebDataset tar shards (`webdataset.rs`), one episode
//! (sample) per published segment, with each frame's quality mask. Incremental: a rerun adds
//! what was published since, redoes what changed and drops what left the clean layout, and leaves
//! every other file as it was (`docs/EXPORT.md`).
//!
//! Pure parts: `episode.rs` (a segment's rows and masks) and the plans in each format's module;
//! I/O at the edges: `source.rs` reads, the writers write each file whole (temporary name, then
//! rename), and the export's state file is written last.

pub mod episode;
pub mod lerobot;
pub mod parquet;
pub mod source;
pub mod video;
pub mod webdataset;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

pub use episode::{mask_bits, mask_names, Episode, FrameRow, ACTION_NAMES, STATE_NAMES};
pub use source::LocalClean;
pub use video::VideoSettings;

/// What went wrong with an export as a whole (a single segment's problem is reported in
/// [`ExportSummary::problems`] and the rest goes on).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("reading the clean layout: {0}")]
    Source(String),
    #[error("{0}")]
    Target(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ExportError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    LeRobot,
    WebDataset,
}

impl Format {
    /// The names the command line takes.
    pub const NAMES: [&'static str; 2] = ["lerobot", "webdataset"];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::LeRobot => "lerobot",
            Format::WebDataset => "webdataset",
        }
    }

    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "lerobot" => Ok(Format::LeRobot),
            "webdataset" => Ok(Format::WebDataset),
            other => Err(format!("format {other:?}: lerobot or webdataset")),
        }
    }
}

/// x264's presets, fastest first.
pub const PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

/// What a command line asks of an export, as text: checked by [`ExportRequest::options`]. With
/// the `clap` feature it is the flags both binaries' `export` commands take (one definition).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ExportRequest {
    /// lerobot (LeRobot v3: parquet frame tables, H.264 MP4 videos, meta/) or webdataset (tar
    /// shards, a sample per segment: a JSON frame table with the JPEGs or an MP4).
    #[cfg_attr(feature = "clap", arg(long, value_parser = Format::NAMES))]
    pub format: String,
    /// WebDataset: carry each sample's frames as the published JPEGs or as one MP4.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value = "jpg", value_parser = ["jpg", "mp4"])
    )]
    pub frames: String,
    /// WebDataset: close a shard once it holds this many MB.
    #[cfg_attr(feature = "clap", arg(long, value_name = "MB", default_value_t = 1024))]
    pub shard_size_mb: u64,
    /// H.264 quality (x264 CRF, 0-51, lower is better and bigger).
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value_t = 23, value_parser = clap::value_parser!(u8).range(0..=51))
    )]
    pub crf: u8,
    /// x264 preset (ultrafast, superfast, veryfast, faster, fast, medium, slow...).
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value = "veryfast", value_parser = PRESETS)
    )]
    pub preset: String,
    /// LeRobot: the dataset's picture size, WIDTHxHEIGHT (default: an earlier export's, else the
    /// most common). Segments of another size are named and left out.
    #[cfg_attr(feature = "clap", arg(long, value_name = "WxH"))]
    pub size: Option<String>,
}

impl ExportRequest {
    pub fn options(&self) -> Result<ExportOptions, String> {
        if !PRESETS.contains(&self.preset.as_str()) {
            return Err(format!(
                "preset {:?}: one of {}",
                self.preset,
                PRESETS.join(", ")
            ));
        }
        if self.crf > 51 {
            return Err(format!("crf {}: 0 to 51", self.crf));
        }
        if self.shard_size_mb == 0 {
            return Err("the shard size must be at least 1 MB".into());
        }
        let sample_frames = match self.frames.as_str() {
            "jpg" => SampleFrames::Jpg,
            "mp4" => SampleFrames::Mp4,
            other => return Err(format!("frames {other:?}: jpg or mp4")),
        };
        let size = self.size.as_deref().map(parse_size).transpose()?;
        Ok(ExportOptions {
            format: Format::parse(&self.format)?,
            video: VideoSettings {
                crf: self.crf,
                preset: self.preset.clone(),
                ..VideoSettings::default()
            },
            shard_bytes: self.shard_size_mb.saturating_mul(1 << 20),
            sample_frames,
            size,
            ..ExportOptions::default()
        })
    }
}

/// `1280x704` -> (1280, 704): even positive numbers.
pub fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("size {text:?}: WIDTHxHEIGHT, e.g. 1280x704"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0 && n % 2 == 0)
            .ok_or_else(|| format!("size {text:?}: width and height are even positive numbers"))
    };
    Ok((parse(w)?, parse(h)?))
}

/// How a WebDataset sample carries its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFrames {
    /// The published JPEGs, byte for byte: `{key}.{frame:06}.jpg`.
    Jpg,
    /// One H.264 MP4 per sample: `{key}.mp4`.
    Mp4,
}

/// Export settings.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub format: Format,
    pub video: VideoSettings,
    /// LeRobot: at most this many frames per video file (a new file starts after).
    pub video_file_frames: usize,
    /// LeRobot: at most this many rows per data file.
    pub data_file_rows: usize,
    /// WebDataset: a shard is closed once it holds this many bytes.
    pub shard_bytes: u64,
    pub sample_frames: SampleFrames,
    /// LeRobot: the dataset's picture size (width, height). `None`: an earlier export's, else the
    /// most common one. Segments of another size are reported, not exported.
    pub size: Option<(u32, u32)>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            format: Format::LeRobot,
            video: VideoSettings::default(),
            video_file_frames: 6000,
            data_file_rows: 200_000,
            shard_bytes: 1 << 30,
            sample_frames: SampleFrames::Jpg,
            size: None,
        }
    }
}

/// What an export run did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ExportSummary {
    /// Episodes (samples) the export holds now.
    pub episodes: usize,
    pub frames: usize,
    /// Of those, new in this run.
    pub added: usize,
    /// Of those, already there but changed (a reprocess, an override).
    pub changed: usize,
    /// Episodes gone from the clean layout (or no longer exportable), removed.
    pub removed: usize,
    /// Frames encoded (LeRobot, or WebDataset with MP4 samples) or copied (WebDataset JPEGs).
    pub frames_written: usize,
    /// Files written, and files left as they were.
    pub files_written: usize,
    pub files_kept: usize,
    /// Segments or sessions not exported, each with why.
    pub problems: Vec<String>,
}

impl ExportSummary {
    /// What a person reads after a run: what the export holds, what changed, how fast.
    pub fn describe(&self, format: Format, out: &Path, seconds: f64) -> String {
        let mut text = String::new();
        for problem in &self.problems {
            text.push_str(&format!("not exported: {problem}\n"));
        }
        text.push_str(&format!(
            "{} export in {}: {} episodes, {} frames ({} added, {} changed, {} removed)\n",
            format.as_str(),
            out.display(),
            self.episodes,
            self.frames,
            self.added,
            self.changed,
            self.removed
        ));
        text.push_str(&format!(
            "{} frames written in {seconds:.1} s ({:.0} frames/s); {} files written, {} left as they were",
            self.frames_written,
            self.frames_written as f64 / seconds.max(1e-9),
            self.files_written,
            self.files_kept
        ));
        if !self.problems.is_empty() {
            text.push_str(&format!(
                "\n{} segments or sessions not exported (listed above)",
                self.problems.len()
            ));
        }
        text
    }
}

/// Runs one export of `source` into `out`.
pub fn export(
    source: &LocalClean,
    out: &Path,
    options: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    ffmpeg_quiet();
    fs::create_dir_all(out).map_err(|err| ExportError::io(out, err))?;
    let _lock = lock(out)?;
    match options.format {
        Format::LeRobot => lerobot::export(source, out, options),
        Format::WebDataset => webdataset::export(source, out, options),
    }
}

/// The lock file that keeps two exports out of one folder (released when the process ends, even
/// killed: an advisory `flock`).
const LOCK_FILE: &str = ".sd-export.lock";

fn lock(out: &Path) -> Result<fs::File, ExportError> {
    let path = out.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| ExportError::io(&path, err))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| {
            ExportError::Target(format!(
                "{}: another export is writing into this folder",
                out.display()
            ))
        },
    )?;
    Ok(file)
}

/// A published segment ready to export, with what identifies its content.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub episode: Episode,
    /// SHA-256 over what its video holds: each frame's checksum and the tick it sits at, and the
    /// episode's nominal step. Equal digests: the episode's video can be kept.
    pub video_digest: String,
    /// Where the frames are read from.
    pub session_folder: PathBuf,
}

/// What the clean layout publishes now.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub found: BTreeMap<String, Found>,
    /// Segments a manifest lists that cannot be read now (being published again, damaged), by
    /// key, with why: not "removed", only not readable.
    pub unreadable: BTreeMap<String, String>,
}

/// Every clean segment of `source` as an episode, by key; what could not be read goes to
/// `problems` (and, for a listed segment, to `unreadable`).
pub(crate) fn collect(
    source: &LocalClean,
    problems: &mut Vec<String>,
) -> Result<Collected, ExportError> {
    let (sessions, session_problems) = source.sessions()?;
    problems.extend(session_problems);
    let mut collected = Collected::default();
    for session in &sessions {
        let prompt = source.prompt(session);
        for listed in &session.manifest.segments {
            let key = format!(
                "{}/{}/segment_{:03}",
                session.manifest.wallet, session.manifest.session_id, listed.segment
            );
            let episode = prompt.clone().and_then(|prompt| {
                source
                    .segment(session, listed)
                    .and_then(|segment| Episode::from_segment(&segment, prompt.as_deref()))
            });
            match episode {
                Ok(episode) => {
                    collected.found.insert(
                        key,
                        Found {
                            video_digest: video_digest(&episode),
                            session_folder: session.folder.clone(),
                            episode,
                        },
                    );
                }
                Err(problem) => {
                    problems.push(problem.clone());
                    collected.unreadable.insert(key, problem);
                }
            }
        }
    }
    Ok(collected)
}

fn video_digest(episode: &Episode) -> String {
    let mut hash = Sha256::new();
    for (object, row) in episode.frame_objects.iter().zip(&episode.rows) {
        hash.update(object.sha256.as_bytes());
        hash.update(video::seconds_to_ticks(row.timestamp_s).to_le_bytes());
        hash.update([u8::from(row.time_known)]);
    }
    hash.update(video::seconds_to_ticks(episode.median_step_s).to_le_bytes());
    source::hex(&hash.finalize())
}

/// A first export of a layout that publishes nothing: said rather than written as an empty dataset.
pub(crate) fn nothing_to_export(source: &LocalClean, problems: &[String]) -> ExportError {
    let unreadable = if problems.is_empty() {
        String::new()
    } else {
        format!(" that could be read ({})", problems.join("; "))
    };
    ExportError::Source(format!(
        "{} publishes no segment{unreadable}: nothing to export (`process` publishes passing segments there; a reviewer's `review override --pass` others)",
        source.root().display()
    ))
}

/// Refuses what would take every episode out of an export: a SOURCE that publishes nothing is
/// far more often the wrong folder (or an empty bucket listing) than the end of a dataset.
pub(crate) fn refuse_emptying(
    source: &LocalClean,
    out: &Path,
    collected: &Collected,
    exported: usize,
) -> Result<(), ExportError> {
    if exported > 0 && collected.found.is_empty() && collected.unreadable.is_empty() {
        return Err(ExportError::Source(format!(
            "{} publishes no segment, and {} holds {exported} episodes: not removing them all (is SOURCE the clean layout, `process --out`?). To empty the export, delete its folder",
            source.root().display(),
            out.display()
        )));
    }
    Ok(())
}

/// Reads every frame of an episode (checked against the manifest) and checks that each is a
/// JPEG of the episode's size, before anything of it is written.
pub(crate) fn read_frames(found: &Found) -> Result<Vec<Vec<u8>>, String> {
    let episode = &found.episode;
    let mut frames = Vec::with_capacity(episode.rows.len());
    for (i, row) in episode.rows.iter().enumerate() {
        let bytes = read_frame(found, i)?;
        video::check_jpeg(&bytes, episode.width, episode.height)
            .map_err(|err| format!("{}: frame {}: {err}", episode.key, row.frame))?;
        frames.push(bytes);
    }
    Ok(frames)
}

/// Deletes what an earlier run that was killed may have left: files matching `ours` that the
/// state does not list (`listed`, relative to `out`), and any half-written `.partial` file.
pub(crate) fn remove_unlisted(
    out: &Path,
    listed: &std::collections::BTreeSet<PathBuf>,
    ours: impl Fn(&Path) -> bool,
) -> Result<usize, ExportError> {
    let mut removed = 0;
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(ExportError::io(&dir, err)),
        };
        for entry in entries {
            let entry = entry.map_err(|err| ExportError::io(&dir, err))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|err| ExportError::io(&path, err))?;
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(out).unwrap_or(&path).to_path_buf();
            let partial = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".partial"));
            if partial || (ours(&relative) && !listed.contains(&relative)) {
                fs::remove_file(&path).map_err(|err| ExportError::io(&path, err))?;
                tracing::info!("removed {} (left by an interrupted export)", path.display());
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// `{wallet}/{session_id}/segment_{NNN}`: an episode's name, stable across runs.
pub fn episode_key(episode: &Episode) -> String {
    format!(
        "{}/{}/segment_{:03}",
        episode.key.wallet, episode.key.session_id, episode.key.segment
    )
}

/// Reads a frame's JPEG from the session folder, checked against its manifest entry.
pub(crate) fn read_frame(found: &Found, row: usize) -> Result<Vec<u8>, String> {
    let object = found
        .episode
        .frame_objects
        .get(row)
        .ok_or_else(|| format!("{}: no frame {row}", found.episode.key))?;
    source::read_listed(&found.session_folder, object)
}

/// Writes `bytes` to `path` whole: a temporary file beside it, flushed, then renamed over it.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let parent = path
        .parent()
        .ok_or_else(|| ExportError::Target(format!("{}: no parent folder", path.display())))?;
    fs::create_dir_all(parent).map_err(|err| ExportError::io(parent, err))?;
    let tmp = temporary_beside(path);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(err) = result {
        let _ = fs::remove_file(&tmp);
        return Err(ExportError::io(path, err));
    }
    Ok(())
}

/// `dir/.name.partial`: where a file is written before it is renamed into place.
pub(crate) fn temporary_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

/// The export's state, read from `path`: `None` when the folder holds no export yet. Refuses a
/// folder that holds something else.
pub(crate) fn load_state<T: serde::de::DeserializeOwned>(
    out: &Path,
    state_file: &str,
    format: Format,
) -> Result<Option<T>, ExportError> {
    let path = out.join(state_file);
    match fs::read(&path) {
        Ok(bytes) => {
            let not_state = |err: String| {
                ExportError::Target(format!(
                    "{}: not a {} export's state ({err}); export into a new folder",
                    path.display(),
                    format.as_str()
                ))
            };
            let value: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|err| not_state(err.to_string()))?;
            match value.get("format").and_then(|f| f.as_str()) {
                Some(found) if found == format.as_str() => {}
                Some(found) => {
                    return Err(ExportError::Target(format!(
                        "{} holds a {found} export, not {}: export into another folder",
                        out.display(),
                        format.as_str()
                    )))
                }
                None => return Err(not_state("no format".into())),
            }
            serde_json::from_value(value)
                .map(Some)
                .map_err(|err| not_state(err.to_string()))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let occupied = fs::read_dir(out).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|entry| entry.file_name() != LOCK_FILE)
            });
            if occupied {
                return Err(ExportError::Target(format!(
                    "{} is not empty and holds no {} export ({} is missing): export into a new or empty folder",
                    out.display(),
                    format.as_str(),
                    state_file
                )));
            }
            Ok(None)
        }
        Err(err) => Err(ExportError::io(&path, err)),
    }
}

/// Writes the export's state whole.
pub(crate) fn save_state<T: serde::Serialize>(
    out: &Path,
    state_file: &str,
    state: &T,
) -> Result<(), ExportError> {
    let bytes = serde_json::to_vec_pretty(state)
        .map_err(|err| ExportError::Target(format!("the export's state: {err}")))?;
    write_atomic(&out.join(state_file), &bytes)
}

/// Deletes a file; one already gone is fine.
pub(crate) fn remove_if_there(path: &Path) -> Result<(), ExportError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(ExportError::io(path, err)),
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    source::hex(&Sha256::digest(bytes))
}

/// libx264 prints a banner per file; only errors are worth seeing.
fn ffmpeg_quiet() {
    use ffmpeg_next::util::log;
    if log::get_level() != Ok(log::Level::Quiet) {
        log::set_level(log::Level::Error);
    }
}
