//! The clean layout as a LeRobot v3 dataset (codebase `v3.0`):
//!
//! ```text
//! meta/info.json          features (names of every vector component and mask bit), fps, paths
//! meta/stats.json         per feature min, max, mean, std, count (NaN left out)
//! meta/tasks.parquet      the prompts (pandas index `task`, column `task_index`)
//! meta/episodes/chunk-000/file-000.parquet   one row per episode: where its rows and frames are
//! data/chunk-CCC/file-FFF.parquet            one row per frame, one row group per episode
//! videos/observation.images.front/chunk-CCC/file-FFF.mp4   H.264, episodes one after another
//! .sd-export.json         this export's state (what each file holds), written last
//! ```
//!
//! Incremental: an episode keeps its data file and its place in a video while its content stays
//! the same. New episodes go to new files; an episode whose pictures changed is encoded again
//! into a new video file (its old frames stay in the old file, unreferenced); a data file is
//! written only when its bytes would change (episodes before it removed or resized shift the
//! global `index`). Video files no episode refers to are deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::episode::{mask_bits, ACTION_NAMES, STATE_NAMES};
use crate::parquet::{Table, Values};
use crate::video::{Mp4Writer, PixelSums, VideoSettings};
use crate::{
    collect, load_state, remove_unlisted, sha256_hex, temporary_beside, write_atomic, ExportError,
    ExportOptions, ExportSummary, Format, Found, LocalClean,
};

/// The LeRobot codebase version the layout follows.
pub const CODEBASE_VERSION: &str = "v3.0";
/// The camera's feature name.
pub const CAMERA: &str = "observation.images.front";
/// Files per chunk folder (LeRobot's default).
pub const CHUNKS_SIZE: u32 = 1000;
/// The state file, at the dataset's root.
pub const STATE_FILE: &str = ".sd-export.json";
const STATE_VERSION: u32 = 1;
/// The robot type `info.json` names.
const ROBOT_TYPE: &str = "scale_diffusion_car";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    version: u32,
    format: String,
    width: u32,
    height: u32,
    /// Settings the videos were encoded with.
    video: VideoSettingsState,
    episodes: Vec<EpisodeState>,
    /// Data file id -> SHA-256 of its bytes.
    data_files: BTreeMap<u32, String>,
    /// Video file ids episodes may refer to.
    video_files: BTreeSet<u32>,
    next_data_file: u32,
    next_video_file: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct VideoSettingsState {
    crf: u8,
    preset: String,
    keyframe_interval: u32,
}

impl From<&VideoSettings> for VideoSettingsState {
    fn from(v: &VideoSettings) -> Self {
        Self {
            crf: v.crf,
            preset: v.preset.clone(),
            keyframe_interval: v.keyframe_interval,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EpisodeState {
    key: String,
    /// `Found::video_digest` when its video was encoded.
    video_digest: String,
    /// SHA-256 of its rows and checks (`Episode::rows_digest`).
    rows_digest: String,
    frames: usize,
    data_file: u32,
    video_file: u32,
    from_s: f64,
    to_s: f64,
    pixels: PixelSums,
}

/// An episode in this run's plan.
#[derive(Debug)]
struct Planned<'a> {
    found: &'a Found,
    data_file: u32,
    /// `None` until encoded.
    video: Option<(u32, f64, f64, PixelSums)>,
    new: bool,
    changed: bool,
}

pub(crate) fn export(
    source: &LocalClean,
    out: &Path,
    options: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    let old: State = match load_state::<State>(out, STATE_FILE, Format::LeRobot)? {
        Some(old) => {
            if old.version != STATE_VERSION {
                return Err(ExportError::Target(format!(
                    "{}: written by another version of the export (state {}): export into a new folder",
                    out.display(),
                    old.version
                )));
            }
            old
        }
        None => {
            // Written before anything else: a first run killed midway leaves a folder the next
            // run recognises, and cleans.
            let empty = State {
                version: STATE_VERSION,
                format: Format::LeRobot.as_str().to_owned(),
                width: 0,
                height: 0,
                video: VideoSettingsState::from(&options.video),
                episodes: Vec::new(),
                data_files: BTreeMap::new(),
                video_files: BTreeSet::new(),
                next_data_file: 0,
                next_video_file: 0,
            };
            crate::save_state(out, STATE_FILE, &empty)?;
            empty
        }
    };
    // What an interrupted run wrote and never recorded goes first.
    let listed: BTreeSet<PathBuf> = old
        .data_files
        .keys()
        .map(|&id| relative_data_path(id))
        .chain(old.video_files.iter().map(|&id| relative_video_path(id)))
        .collect();
    remove_unlisted(out, &listed, |path| {
        path.starts_with("data") || path.starts_with("videos")
    })?;

    let mut summary = ExportSummary::default();
    let collected = collect(source, &mut summary.problems)?;
    if collected.found.is_empty() && collected.unreadable.is_empty() && old.episodes.is_empty() {
        return Err(crate::nothing_to_export(source, &summary.problems));
    }
    crate::refuse_emptying(source, out, &collected, old.episodes.len())?;
    // An episode already exported whose segment cannot be read now stays out of this run's
    // reach: its rows cannot be written again, and removing it would say it left the clean
    // layout. Nothing is changed; the run says which and why.
    let blocked: Vec<String> = old
        .episodes
        .iter()
        .filter_map(|ep| {
            collected
                .unreadable
                .get(&ep.key)
                .map(|why| format!("{}: {why}", ep.key))
        })
        .collect();
    if !blocked.is_empty() {
        return Err(ExportError::Source(format!(
            "exported episodes cannot be read now, so nothing was changed (run again once they are published whole, or process their sessions again): {}",
            blocked.join("; ")
        )));
    }

    // One picture size per dataset: the first export's, the one asked for, or the most common.
    let set = old.width != 0;
    if let (true, Some(size)) = (set, options.size) {
        if (old.width, old.height) != size {
            return Err(ExportError::Target(format!(
                "{} holds {}x{} pictures, not {}x{}: export into another folder",
                out.display(),
                old.width,
                old.height,
                size.0,
                size.1
            )));
        }
    }
    let (width, height) = match (set, options.size) {
        (true, _) => (old.width, old.height),
        (false, Some(size)) => size,
        (false, None) => {
            let mut sizes: BTreeMap<(u32, u32), usize> = BTreeMap::new();
            for f in collected.found.values() {
                *sizes
                    .entry((f.episode.width, f.episode.height))
                    .or_default() += 1;
            }
            sizes
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map_or((0, 0), |(size, _)| size)
        }
    };
    let found: BTreeMap<&String, &Found> = collected
        .found
        .iter()
        .filter(|(key, f)| {
            let fits = (f.episode.width, f.episode.height) == (width, height);
            if !fits {
                summary.problems.push(format!(
                    "{key}: {}x{}, the dataset's pictures are {width}x{height}: export it into another folder with --size {}x{}",
                    f.episode.width, f.episode.height, f.episode.width, f.episode.height
                ));
            }
            fits
        })
        .collect();

    // The plan: episodes still published keep their order and data file; new ones follow.
    let mut next_data_file = old.next_data_file;
    let mut next_video_file = old.next_video_file;
    let settings_state = VideoSettingsState::from(&options.video);
    if !old.episodes.is_empty() && old.video != settings_state {
        tracing::info!(
            "video settings changed: only episodes encoded from now on use the new ones"
        );
    }
    let mut plan: Vec<Planned> = Vec::new();
    let mut kept: BTreeSet<&str> = BTreeSet::new();
    for ep in &old.episodes {
        match found.get(&ep.key) {
            Some(f) => {
                let same_video = f.video_digest == ep.video_digest
                    && out.join(relative_video_path(ep.video_file)).is_file();
                let same_rows = f.episode.rows_digest() == ep.rows_digest;
                kept.insert(ep.key.as_str());
                plan.push(Planned {
                    found: f,
                    data_file: ep.data_file,
                    video: same_video
                        .then(|| (ep.video_file, ep.from_s, ep.to_s, ep.pixels.clone())),
                    new: false,
                    changed: !same_video || !same_rows,
                });
            }
            None => summary.removed += 1,
        }
    }
    let mut rows_in_new_file = 0usize;
    let mut opened_data_file = false;
    for (key, f) in &found {
        if kept.contains(key.as_str()) {
            continue;
        }
        let rows = f.episode.rows.len();
        if !opened_data_file || rows_in_new_file + rows > options.data_file_rows.max(1) {
            if opened_data_file {
                next_data_file += 1;
            }
            opened_data_file = true;
            rows_in_new_file = 0;
        }
        rows_in_new_file += rows;
        plan.push(Planned {
            found: f,
            data_file: next_data_file,
            video: None,
            new: true,
            changed: false,
        });
    }
    if opened_data_file {
        next_data_file += 1;
    }

    // Encode what has no video yet, into new files. An episode whose frames cannot be read is
    // named and left out before any of it is written.
    let nominal_fps = nominal_fps(plan.iter().map(|p| p.found.episode.median_step_s));
    let mut writer: Option<(u32, PathBuf, Mp4Writer)> = None;
    let mut written_videos: Vec<(u32, PathBuf)> = Vec::new();
    let mut frames_in_file = 0usize;
    let mut unreadable_frames: BTreeSet<usize> = BTreeSet::new();
    for (index, planned) in plan.iter_mut().enumerate() {
        if planned.video.is_some() {
            continue;
        }
        let episode = &planned.found.episode;
        let jpegs = match crate::read_frames(planned.found) {
            Ok(jpegs) => jpegs,
            Err(problem) => {
                summary.problems.push(problem);
                unreadable_frames.insert(index);
                continue;
            }
        };
        if writer.is_some() && frames_in_file + episode.rows.len() > options.video_file_frames {
            if let Some((id, path, w)) = writer.take() {
                finish_video(w, &path)?;
                written_videos.push((id, path));
            }
        }
        if writer.is_none() {
            let id = next_video_file;
            next_video_file += 1;
            let path = out.join(relative_video_path(id));
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(|err| ExportError::io(parent, err))?;
            }
            let w = Mp4Writer::create(
                &temporary_beside(&path),
                width,
                height,
                nominal_fps,
                &options.video,
            )
            .map_err(ExportError::Target)?;
            writer = Some((id, path, w));
            frames_in_file = 0;
        }
        let Some((id, path, w)) = writer.as_mut() else {
            continue;
        };
        let appended = w.append(episode, &jpegs);
        let (span, pixels) = match appended {
            Ok(done) => done,
            Err(err) => {
                // A JPEG that passed its checks and still would not decode: the file is
                // abandoned whole (the next run starts a new one), and the run stops.
                let _ = fs::remove_file(temporary_beside(path));
                return Err(ExportError::Target(format!("encoding {err}")));
            }
        };
        frames_in_file += episode.rows.len();
        summary.frames_written += episode.rows.len();
        planned.video = Some((*id, span.from_s, span.to_s, pixels));
    }
    if let Some((id, path, w)) = writer.take() {
        finish_video(w, &path)?;
        written_videos.push((id, path));
    }
    summary.files_written += written_videos.len();
    let mut index = 0;
    plan.retain(|p| {
        let keep = !unreadable_frames.contains(&index);
        index += 1;
        if !keep && !p.new {
            summary.removed += 1;
        }
        keep
    });

    // Data files: rows by file, written when their bytes change.
    let tasks = task_table(&plan);
    let mut by_file: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, p) in plan.iter().enumerate() {
        by_file.entry(p.data_file).or_default().push(i);
    }
    let mut data_files = BTreeMap::new();
    let mut first_index = 0i64;
    let mut first_rows = Vec::with_capacity(plan.len());
    for p in &plan {
        first_rows.push(first_index);
        first_index += p.found.episode.rows.len() as i64;
    }
    for (&file, members) in &by_file {
        let (table, groups) = data_table(&plan, members, &first_rows, &tasks);
        let mut bytes = Vec::new();
        table
            .write(&mut bytes, &groups, Vec::new())
            .map_err(|err| ExportError::Target(format!("writing data file {file}: {err}")))?;
        let digest = sha256_hex(&bytes);
        let path = out.join(relative_data_path(file));
        if old.data_files.get(&file) == Some(&digest) && path.is_file() {
            summary.files_kept += 1;
        } else {
            write_atomic(&path, &bytes)?;
            summary.files_written += 1;
        }
        data_files.insert(file, digest);
    }
    let video_files: BTreeSet<u32> = plan
        .iter()
        .filter_map(|p| p.video.as_ref().map(|v| v.0))
        .collect();
    summary.files_kept += old.video_files.intersection(&video_files).count();
    summary.changed = plan.iter().filter(|p| p.changed).count();
    summary.added = plan.iter().filter(|p| p.new).count();
    summary.episodes = plan.len();
    summary.frames = plan.iter().map(|p| p.found.episode.rows.len()).sum();

    // Metadata, then the state, then what no episode refers to any more: a run killed before
    // the state is written leaves every file the old state lists.
    write_meta(out, &plan, &first_rows, &tasks, width, height, nominal_fps)?;
    summary.files_written += 4;
    let state = State {
        version: STATE_VERSION,
        format: Format::LeRobot.as_str().to_owned(),
        width,
        height,
        video: settings_state,
        episodes: plan
            .iter()
            .filter_map(|p| {
                let (video_file, from_s, to_s, pixels) = p.video.clone()?;
                Some(EpisodeState {
                    key: crate::episode_key(&p.found.episode),
                    video_digest: p.found.video_digest.clone(),
                    rows_digest: p.found.episode.rows_digest(),
                    frames: p.found.episode.rows.len(),
                    data_file: p.data_file,
                    video_file,
                    from_s,
                    to_s,
                    pixels,
                })
            })
            .collect(),
        data_files: data_files.clone(),
        video_files: video_files.clone(),
        next_data_file,
        next_video_file,
    };
    crate::save_state(out, STATE_FILE, &state)?;
    for file in old
        .data_files
        .keys()
        .filter(|f| !data_files.contains_key(f))
    {
        crate::remove_if_there(&out.join(relative_data_path(*file)))?;
    }
    for file in old.video_files.difference(&video_files) {
        crate::remove_if_there(&out.join(relative_video_path(*file)))?;
    }
    Ok(summary)
}

fn finish_video(writer: Mp4Writer, path: &Path) -> Result<(), ExportError> {
    let tmp = temporary_beside(path);
    writer.finish().map_err(ExportError::Target)?;
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|err| ExportError::io(path, err))
}

fn chunk_file(id: u32) -> (u32, u32) {
    (id / CHUNKS_SIZE, id % CHUNKS_SIZE)
}

/// A data file's path in the dataset.
pub fn relative_data_path(id: u32) -> PathBuf {
    let (chunk, file) = chunk_file(id);
    PathBuf::from(format!("data/chunk-{chunk:03}/file-{file:03}.parquet"))
}

/// A video file's path in the dataset.
pub fn relative_video_path(id: u32) -> PathBuf {
    let (chunk, file) = chunk_file(id);
    PathBuf::from(format!(
        "videos/{CAMERA}/chunk-{chunk:03}/file-{file:03}.mp4"
    ))
}

/// The dataset's nominal frame rate: the median episode's, rounded (at least 1).
fn nominal_fps(steps: impl Iterator<Item = f64>) -> u32 {
    let mut steps: Vec<f64> = steps.filter(|s| *s > 0.0).collect();
    steps.sort_by(f64::total_cmp);
    let step = steps.get(steps.len() / 2).copied().unwrap_or(1.0 / 30.0);
    ((1.0 / step).round() as u32).max(1)
}

/// Prompts in order of first use: task index = position.
fn task_table(plan: &[Planned]) -> Vec<String> {
    let mut tasks: Vec<String> = Vec::new();
    for p in plan {
        if !tasks.contains(&p.found.episode.task) {
            tasks.push(p.found.episode.task.clone());
        }
    }
    tasks
}

fn task_index(tasks: &[String], task: &str) -> i64 {
    tasks.iter().position(|t| t == task).unwrap_or(0) as i64
}

/// One data file's table: the rows of `members` (plan indices), one row group each.
fn data_table(
    plan: &[Planned],
    members: &[usize],
    first_rows: &[i64],
    tasks: &[String],
) -> (Table, Vec<std::ops::Range<usize>>) {
    let mut action = Vec::new();
    let mut state = Vec::new();
    let mut timestamp = Vec::new();
    let mut frame_index = Vec::new();
    let mut episode_index = Vec::new();
    let mut index = Vec::new();
    let mut task = Vec::new();
    let mut mask = Vec::new();
    let mut frame = Vec::new();
    let mut pts = Vec::new();
    let mut page = Vec::new();
    let mut groups = Vec::new();
    for &i in members {
        let episode = &plan[i].found.episode;
        let start = timestamp.len();
        let t = task_index(tasks, &episode.task);
        for (n, row) in episode.rows.iter().enumerate() {
            action.push(row.action.to_vec());
            state.push(row.state.to_vec());
            timestamp.push(row.timestamp_s as f32);
            frame_index.push(n as i64);
            episode_index.push(i as i64);
            index.push(first_rows[i] + n as i64);
            task.push(t);
            mask.push(row.mask as i32);
            frame.push(row.frame as i64);
            pts.push(row.pts_ms);
            page.push(row.page_t_ms);
        }
        groups.push(start..timestamp.len());
    }
    let mut table = Table::default();
    table.push("action", Values::ListF32(action));
    table.push("observation.state", Values::ListF32(state));
    table.push("timestamp", Values::F32(timestamp));
    table.push("frame_index", Values::I64(frame_index));
    table.push("episode_index", Values::I64(episode_index));
    table.push("index", Values::I64(index));
    table.push("task_index", Values::I64(task));
    table.push("quality.mask", Values::I32(mask));
    table.push("source.frame", Values::I64(frame));
    table.push("source.pts_ms", Values::OptF64(pts));
    table.push("source.page_t_ms", Values::OptF64(page));
    (table, groups)
}

fn scalar(dtype: &str) -> Value {
    json!({"dtype": dtype, "shape": [1], "names": null})
}

/// `info.json`'s features.
fn features(width: u32, height: u32, fps: u32) -> Value {
    let bits: serde_json::Map<String, Value> = mask_bits()
        .into_iter()
        .map(|(bit, name)| (name.to_owned(), json!(bit)))
        .collect();
    json!({
        CAMERA: {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": height,
                "video.width": width,
                "video.codec": "h264",
                "video.pix_fmt": "yuv420p",
                "video.is_depth_map": false,
                "video.fps": fps,
                "video.channels": 3,
                "has_audio": false,
                "video.variable_frame_rate": true
            }
        },
        "action": {"dtype": "float32", "shape": [ACTION_NAMES.len()], "names": ACTION_NAMES},
        "observation.state": {"dtype": "float32", "shape": [STATE_NAMES.len()], "names": STATE_NAMES},
        "timestamp": {
            "dtype": "float32", "shape": [1], "names": null,
            "info": {
                "meaning": "the frame's own presentation time, seconds since the episode's first frame; the frame sits at exactly this time in the episode's video (from_timestamp + timestamp)",
                "variable_frame_rate": true,
                "nominal_fps": fps,
                "tolerance_s": 1e-4,
                "unknown_time": "a frame whose time is unknown (quality.mask bit 'bursts') keeps the last recorded time; its action is NaN; drop it",
                "video_backend": "pyav: torchcodec maps times to frame numbers with one frame rate, which a variable-rate video does not have"
            }
        },
        "frame_index": scalar("int64"),
        "episode_index": scalar("int64"),
        "index": scalar("int64"),
        "task_index": scalar("int64"),
        "quality.mask": {
            "dtype": "int32", "shape": [1], "names": null,
            "info": {"bits": bits, "usable": "a frame is usable when its mask is 0"}
        },
        "source.frame": scalar("int64"),
        "source.pts_ms": scalar("float64"),
        "source.page_t_ms": scalar("float64"),
    })
}

#[allow(clippy::too_many_arguments)]
fn write_meta(
    out: &Path,
    plan: &[Planned],
    first_rows: &[i64],
    tasks: &[String],
    width: u32,
    height: u32,
    fps: u32,
) -> Result<(), ExportError> {
    let total_frames: usize = plan.iter().map(|p| p.found.episode.rows.len()).sum();
    let info = json!({
        "codebase_version": CODEBASE_VERSION,
        "robot_type": ROBOT_TYPE,
        "total_episodes": plan.len(),
        "total_frames": total_frames,
        "total_tasks": tasks.len(),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": fps,
        "splits": {"train": format!("0:{}", plan.len())},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": features(width, height, fps),
    });
    write_json(&out.join("meta/info.json"), &info)?;
    write_json(
        &out.join("meta/stats.json"),
        &stats(plan, first_rows, tasks),
    )?;

    // tasks.parquet as pandas writes a frame indexed by `task`.
    let mut table = Table::default();
    table.push("task_index", Values::I64((0..tasks.len() as i64).collect()));
    table.push("task", Values::Str(tasks.to_vec()));
    let pandas = json!({
        "index_columns": ["task"],
        "column_indexes": [{"name": null, "field_name": null, "pandas_type": "unicode", "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": null},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": null}
        ],
        "creator": {"library": "scale-diffusion", "version": env!("CARGO_PKG_VERSION")},
        "pandas_version": "2.2.3"
    });
    write_table(
        &out.join("meta/tasks.parquet"),
        &table,
        vec![("pandas".to_owned(), pandas.to_string())],
    )?;

    // Episodes.
    let n = plan.len();
    let mut cols: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut from_ts = Vec::with_capacity(n);
    let mut to_ts = Vec::with_capacity(n);
    let mut tasks_col = Vec::with_capacity(n);
    let mut wallet = Vec::with_capacity(n);
    let mut session = Vec::with_capacity(n);
    let mut clean_passed = Vec::with_capacity(n);
    let mut override_note = Vec::with_capacity(n);
    let mut failed = Vec::with_capacity(n);
    let mut step = Vec::with_capacity(n);
    for (i, p) in plan.iter().enumerate() {
        let e = &p.found.episode;
        let (video_file, from, to) = p.video.as_ref().map_or((0, 0.0, 0.0), |v| (v.0, v.1, v.2));
        let (data_chunk, data_file) = chunk_file(p.data_file);
        let (video_chunk, video_file) = chunk_file(video_file);
        let mut push = |name: &'static str, v: i64| cols.entry(name).or_default().push(v);
        push("episode_index", i as i64);
        push("length", e.rows.len() as i64);
        push("data/chunk_index", i64::from(data_chunk));
        push("data/file_index", i64::from(data_file));
        push("dataset_from_index", first_rows[i]);
        push("dataset_to_index", first_rows[i] + e.rows.len() as i64);
        push("videos/chunk_index", i64::from(video_chunk));
        push("videos/file_index", i64::from(video_file));
        push("meta/episodes/chunk_index", 0);
        push("meta/episodes/file_index", 0);
        push("source/segment", e.key.segment as i64);
        push("quality/usable_frames", e.usable_frames() as i64);
        from_ts.push(from);
        to_ts.push(to);
        tasks_col.push(vec![e.task.clone()]);
        wallet.push(e.key.wallet.clone());
        session.push(e.key.session_id.clone());
        clean_passed.push(e.clean_passed);
        override_note.push(e.override_note.clone());
        failed.push(e.failed.clone());
        step.push(e.median_step_s);
    }
    let mut take = |name: &str| cols.remove(name).unwrap_or_else(|| vec![0; n]);
    let mut table = Table::default();
    table.push("episode_index", Values::I64(take("episode_index")));
    table.push("tasks", Values::ListStr(tasks_col));
    table.push("length", Values::I64(take("length")));
    table.push("data/chunk_index", Values::I64(take("data/chunk_index")));
    table.push("data/file_index", Values::I64(take("data/file_index")));
    table.push(
        "dataset_from_index",
        Values::I64(take("dataset_from_index")),
    );
    table.push("dataset_to_index", Values::I64(take("dataset_to_index")));
    table.push(
        &format!("videos/{CAMERA}/chunk_index"),
        Values::I64(take("videos/chunk_index")),
    );
    table.push(
        &format!("videos/{CAMERA}/file_index"),
        Values::I64(take("videos/file_index")),
    );
    table.push(
        &format!("videos/{CAMERA}/from_timestamp"),
        Values::F64(from_ts),
    );
    table.push(&format!("videos/{CAMERA}/to_timestamp"), Values::F64(to_ts));
    table.push(
        "meta/episodes/chunk_index",
        Values::I64(take("meta/episodes/chunk_index")),
    );
    table.push(
        "meta/episodes/file_index",
        Values::I64(take("meta/episodes/file_index")),
    );
    table.push("source/wallet", Values::Str(wallet));
    table.push("source/session_id", Values::Str(session));
    table.push("source/segment", Values::I64(take("source/segment")));
    table.push("quality/clean_passed", Values::Bool(clean_passed));
    table.push("quality/override", Values::OptStr(override_note));
    table.push("quality/failed", Values::ListStr(failed));
    table.push(
        "quality/usable_frames",
        Values::I64(take("quality/usable_frames")),
    );
    table.push("timing/median_step_s", Values::F64(step));
    write_table(
        &out.join("meta/episodes/chunk-000/file-000.parquet"),
        &table,
        Vec::new(),
    )
}

fn write_table(
    path: &Path,
    table: &Table,
    metadata: Vec<(String, String)>,
) -> Result<(), ExportError> {
    let mut bytes = Vec::new();
    table
        .write(&mut bytes, &[], metadata)
        .map_err(|err| ExportError::Target(format!("{}: {err}", path.display())))?;
    write_atomic(path, &bytes)
}

fn write_json(path: &Path, value: &Value) -> Result<(), ExportError> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|err| ExportError::Target(format!("{}: {err}", path.display())))?;
    write_atomic(path, &bytes)
}

/// Running statistics of a vector feature (NaN left out, per component).
#[derive(Debug, Clone)]
struct Running {
    count: Vec<u64>,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
}

impl Running {
    fn new(n: usize) -> Self {
        Self {
            count: vec![0; n],
            sum: vec![0.0; n],
            sum_sq: vec![0.0; n],
            min: vec![f64::INFINITY; n],
            max: vec![f64::NEG_INFINITY; n],
        }
    }

    fn add(&mut self, values: &[f64]) {
        for (i, &v) in values.iter().enumerate() {
            if v.is_nan() {
                continue;
            }
            self.count[i] += 1;
            self.sum[i] += v;
            self.sum_sq[i] += v * v;
            self.min[i] = self.min[i].min(v);
            self.max[i] = self.max[i].max(v);
        }
    }

    fn to_json(&self) -> Value {
        let mean: Vec<f64> = self
            .sum
            .iter()
            .zip(&self.count)
            .map(|(s, &c)| if c > 0 { s / c as f64 } else { 0.0 })
            .collect();
        let std: Vec<f64> = self
            .sum_sq
            .iter()
            .zip(&self.count)
            .zip(&mean)
            .map(|((sq, &c), m)| {
                if c > 0 {
                    (sq / c as f64 - m * m).max(0.0).sqrt()
                } else {
                    0.0
                }
            })
            .collect();
        let finite = |v: &Vec<f64>| -> Vec<f64> {
            v.iter()
                .map(|x| if x.is_finite() { *x } else { 0.0 })
                .collect()
        };
        json!({
            "min": finite(&self.min),
            "max": finite(&self.max),
            "mean": mean,
            "std": std,
            "count": [self.count.iter().copied().max().unwrap_or(0)],
        })
    }
}

fn stats(plan: &[Planned], first_rows: &[i64], tasks: &[String]) -> Value {
    let mut action = Running::new(ACTION_NAMES.len());
    let mut state = Running::new(STATE_NAMES.len());
    let mut scalars: BTreeMap<&str, Running> = [
        "timestamp",
        "frame_index",
        "episode_index",
        "index",
        "task_index",
        "quality.mask",
        "source.frame",
        "source.pts_ms",
        "source.page_t_ms",
    ]
    .into_iter()
    .map(|name| (name, Running::new(1)))
    .collect();
    let mut pixels = PixelSums::default();
    for (i, p) in plan.iter().enumerate() {
        let e = &p.found.episode;
        if let Some(v) = &p.video {
            pixels.merge(&v.3);
        }
        let t = task_index(tasks, &e.task) as f64;
        for (n, row) in e.rows.iter().enumerate() {
            action.add(&row.action.map(f64::from));
            state.add(&row.state.map(f64::from));
            let values = [
                ("timestamp", row.timestamp_s),
                ("frame_index", n as f64),
                ("episode_index", i as f64),
                ("index", (first_rows[i] + n as i64) as f64),
                ("task_index", t),
                ("quality.mask", f64::from(row.mask)),
                ("source.frame", row.frame as f64),
                ("source.pts_ms", row.pts_ms.unwrap_or(f64::NAN)),
                ("source.page_t_ms", row.page_t_ms.unwrap_or(f64::NAN)),
            ];
            for (name, v) in values {
                if let Some(r) = scalars.get_mut(name) {
                    r.add(&[v]);
                }
            }
        }
    }
    let mut out = serde_json::Map::new();
    out.insert("action".into(), action.to_json());
    out.insert("observation.state".into(), state.to_json());
    for (name, r) in scalars {
        out.insert(name.into(), r.to_json());
    }
    let n = pixels.count.max(1) as f64;
    let channel = |f: &dyn Fn(usize) -> f64| json!([[[f(0)]], [[f(1)]], [[f(2)]]]);
    let mean = |c: usize| pixels.sum[c] / n;
    out.insert(
        CAMERA.into(),
        json!({
            "min": channel(&|c| pixels.min[c]),
            "max": channel(&|c| pixels.max[c]),
            "mean": channel(&mean),
            "std": channel(&|c| (pixels.sum_sq[c] / n - mean(c) * mean(c)).max(0.0).sqrt()),
            "count": [pixels.count],
        }),
    );
    Value::Object(out)
}
