//! The clean layout as WebDataset tar shards: `shard-NNNNNN.tar`, one sample per published
//! segment, its members named `{key}.json` (the frame table with each frame's time, action, state
//! and mask, and the segment's checks) and either `{key}.{frame:06}.jpg` (the published JPEGs,
//! byte for byte) or `{key}.mp4` (H.264, each frame at its own time). `key` is
//! `{wallet}_{session_id}_segment_{NNN}` (no dots: WebDataset splits a member's name at the
//! first one). A shard is closed once it holds `shard_bytes`.
//!
//! Incremental: new samples go to new shards; a shard that holds a sample that changed or left
//! the clean layout is written again (its other samples copied from the old shard as they were);
//! every other shard is left alone. `.sd-export.json` records which sample is in which shard.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::episode::{mask_bits, mask_names, ACTION_NAMES, STATE_NAMES};
use crate::video::Mp4Writer;
use crate::{
    collect, load_state, remove_unlisted, temporary_beside, ExportError, ExportOptions,
    ExportSummary, Format, Found, LocalClean, SampleFrames,
};

/// The state file, beside the shards.
pub const STATE_FILE: &str = ".sd-export.json";
const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    version: u32,
    format: String,
    /// `jpg` or `mp4`: how samples carry their frames.
    frames: String,
    samples: Vec<SampleState>,
    shards: BTreeSet<u32>,
    next_shard: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SampleState {
    key: String,
    sample_key: String,
    /// `Found::video_digest`: its frames and their times.
    video_digest: String,
    rows_digest: String,
    shard: u32,
}

fn frames_name(frames: SampleFrames) -> &'static str {
    match frames {
        SampleFrames::Jpg => "jpg",
        SampleFrames::Mp4 => "mp4",
    }
}

/// The sample's key: the episode's name with `/` as `_`.
pub fn sample_key(episode: &crate::Episode) -> String {
    let k = &episode.key;
    format!("{}_{}_segment_{:03}", k.wallet, k.session_id, k.segment)
}

/// A shard's file name in the export folder.
pub fn shard_name(id: u32) -> PathBuf {
    PathBuf::from(format!("shard-{id:06}.tar"))
}

pub(crate) fn export(
    source: &LocalClean,
    out: &Path,
    options: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    let frames_mode = frames_name(options.sample_frames);
    let old: State = match load_state::<State>(out, STATE_FILE, Format::WebDataset)? {
        Some(old) => {
            if old.version != STATE_VERSION {
                return Err(ExportError::Target(format!(
                    "{}: written by another version of the export: export into a new folder",
                    out.display()
                )));
            }
            if old.frames != frames_mode {
                return Err(ExportError::Target(format!(
                    "{}: its samples carry {} frames, not {frames_mode}: export into a new folder",
                    out.display(),
                    old.frames
                )));
            }
            old
        }
        None => {
            // Written first: a first run killed midway leaves a folder the next run cleans.
            let empty = State {
                version: STATE_VERSION,
                format: Format::WebDataset.as_str().to_owned(),
                frames: frames_mode.to_owned(),
                samples: Vec::new(),
                shards: BTreeSet::new(),
                next_shard: 0,
            };
            crate::save_state(out, STATE_FILE, &empty)?;
            empty
        }
    };
    let listed: BTreeSet<PathBuf> = old.shards.iter().map(|&id| shard_name(id)).collect();
    remove_unlisted(out, &listed, |path| {
        path.components().count() == 1 && path.to_string_lossy().ends_with(".tar")
    })?;

    let mut summary = ExportSummary::default();
    let collected = collect(source, &mut summary.problems)?;
    if collected.found.is_empty() && collected.unreadable.is_empty() && old.samples.is_empty() {
        return Err(crate::nothing_to_export(source, &summary.problems));
    }
    crate::refuse_emptying(source, out, &collected, old.samples.len())?;
    let found = &collected.found;

    // Which old shards must be written again, and what each keeps. A sample whose segment is
    // listed but cannot be read now is kept as it was (its shard's copy is the last good one).
    let mut samples: Vec<SampleState> = Vec::new();
    let mut dirty: BTreeSet<u32> = BTreeSet::new();
    let mut kept: BTreeSet<&str> = BTreeSet::new();
    let mut regenerate: BTreeSet<String> = BTreeSet::new();
    for s in &old.samples {
        match found.get(&s.key) {
            Some(f) => {
                kept.insert(s.key.as_str());
                let rows_digest = f.episode.rows_digest();
                if f.video_digest != s.video_digest || rows_digest != s.rows_digest {
                    dirty.insert(s.shard);
                    regenerate.insert(s.sample_key.clone());
                }
                samples.push(SampleState {
                    key: s.key.clone(),
                    sample_key: s.sample_key.clone(),
                    video_digest: f.video_digest.clone(),
                    rows_digest,
                    shard: s.shard,
                });
            }
            None if collected.unreadable.contains_key(&s.key) => {
                kept.insert(s.key.as_str());
                samples.push(s.clone());
            }
            None => {
                dirty.insert(s.shard);
                summary.removed += 1;
            }
        }
    }
    let by_sample_key: BTreeMap<String, &Found> = found
        .values()
        .map(|f| (sample_key(&f.episode), f))
        .collect();

    // Old shards with a change: written again, unchanged samples copied over.
    let mut shards: BTreeSet<u32> = BTreeSet::new();
    let mut dropped: BTreeSet<String> = BTreeSet::new();
    for &shard in &old.shards {
        let live: BTreeSet<&str> = samples
            .iter()
            .filter(|s| s.shard == shard)
            .map(|s| s.sample_key.as_str())
            .collect();
        let path = out.join(shard_name(shard));
        if !dirty.contains(&shard) && path.is_file() {
            shards.insert(shard);
            summary.files_kept += 1;
            continue;
        }
        if live.is_empty() {
            continue;
        }
        let written = rewrite_shard(
            &path,
            &live,
            &regenerate,
            &by_sample_key,
            options,
            &mut summary,
        )?;
        summary.changed += written.regenerated;
        dropped.extend(written.dropped);
        shards.insert(shard);
        summary.files_written += 1;
    }
    // A changed sample whose frames cannot be read now left its shard: it is gone from the
    // export (named in the problems).
    samples.retain(|s| {
        let keep = !dropped.contains(&s.sample_key);
        if !keep {
            summary.removed += 1;
        }
        keep
    });

    // New samples into new shards.
    let mut next_shard = old.next_shard;
    let mut current: Option<(u32, ShardWriter)> = None;
    for (key, f) in found {
        if kept.contains(key.as_str()) {
            continue;
        }
        if current.is_none() {
            let id = next_shard;
            next_shard += 1;
            current = Some((id, ShardWriter::create(&out.join(shard_name(id)))?));
        }
        let Some((id, writer)) = current.as_mut() else {
            continue;
        };
        if let Err(problem) = write_sample(writer, f, options, &mut summary)? {
            summary.problems.push(problem);
            continue;
        }
        samples.push(SampleState {
            key: key.clone(),
            sample_key: sample_key(&f.episode),
            video_digest: f.video_digest.clone(),
            rows_digest: f.episode.rows_digest(),
            shard: *id,
        });
        summary.added += 1;
        if writer.bytes >= options.shard_bytes {
            if let Some((id, writer)) = current.take() {
                writer.finish()?;
                shards.insert(id);
                summary.files_written += 1;
            }
        }
    }
    if let Some((id, writer)) = current.take() {
        if writer.bytes > 0 {
            writer.finish()?;
            shards.insert(id);
            summary.files_written += 1;
        } else {
            writer.abandon();
        }
    }
    summary.episodes = samples.len();
    summary.frames = samples
        .iter()
        .filter_map(|s| found.get(&s.key))
        .map(|f| f.episode.rows.len())
        .sum();
    let state = State {
        version: STATE_VERSION,
        format: Format::WebDataset.as_str().to_owned(),
        frames: frames_mode.to_owned(),
        samples,
        shards: shards.clone(),
        next_shard,
    };
    crate::save_state(out, STATE_FILE, &state)?;
    // Only now, with the state saying so, what no sample is in any more goes.
    for shard in old.shards.difference(&shards) {
        crate::remove_if_there(&out.join(shard_name(*shard)))?;
    }
    Ok(summary)
}

/// What rewriting one shard did.
#[derive(Debug, Default)]
struct Rewritten {
    /// Samples written again from the source.
    regenerated: usize,
    /// Samples that were to be written again and whose frames cannot be read: left out.
    dropped: Vec<String>,
}

/// Writes `path` again with the samples in `live`: those in `regenerate` from the source, the
/// others copied from the shard as it is. An old shard that cannot be read whole is written
/// again from the source entirely.
fn rewrite_shard(
    path: &Path,
    live: &BTreeSet<&str>,
    regenerate: &BTreeSet<String>,
    by_sample_key: &BTreeMap<String, &Found>,
    options: &ExportOptions,
    summary: &mut ExportSummary,
) -> Result<Rewritten, ExportError> {
    let mut writer = ShardWriter::create(path)?;
    let mut result = Rewritten::default();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let copied = copy_members(path, live, regenerate, &mut writer);
    if let Err(err) = copied {
        tracing::warn!(
            "{}: cannot be read whole ({err}): written again from the clean layout",
            path.display()
        );
        writer.abandon();
        writer = ShardWriter::create(path)?;
    } else if let Ok(copied) = copied {
        done = copied;
    }
    for key in live {
        if done.contains(*key) {
            continue;
        }
        let Some(f) = by_sample_key.get(*key) else {
            // Kept as it was (its segment cannot be read now) but its old copy is gone too.
            summary.problems.push(format!(
                "{key}: neither its segment nor its old copy can be read"
            ));
            result.dropped.push((*key).to_owned());
            continue;
        };
        match write_sample(&mut writer, f, options, summary)? {
            Ok(()) => {
                if regenerate.contains(*key) {
                    result.regenerated += 1;
                }
            }
            Err(problem) => {
                summary.problems.push(problem);
                result.dropped.push((*key).to_owned());
            }
        }
    }
    writer.finish()?;
    Ok(result)
}

/// Copies the members of `live` samples not in `regenerate` from the shard at `path` into
/// `writer`; answers the keys copied.
fn copy_members(
    path: &Path,
    live: &BTreeSet<&str>,
    regenerate: &BTreeSet<String>,
    writer: &mut ShardWriter,
) -> Result<BTreeSet<String>, ExportError> {
    let mut copied = BTreeSet::new();
    if !path.is_file() {
        return Ok(copied);
    }
    let file = fs::File::open(path).map_err(|err| ExportError::io(path, err))?;
    let mut archive = tar::Archive::new(file);
    let entries = archive
        .entries()
        .map_err(|err| ExportError::io(path, err))?;
    for entry in entries {
        let mut entry = entry.map_err(|err| ExportError::io(path, err))?;
        let name = entry
            .path()
            .map_err(|err| ExportError::io(path, err))?
            .to_string_lossy()
            .into_owned();
        let key = name.split('.').next().unwrap_or_default().to_owned();
        if !live.contains(key.as_str()) || regenerate.contains(&key) {
            continue;
        }
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|err| ExportError::io(path, err))?;
        writer.append(&name, &data)?;
        copied.insert(key);
    }
    Ok(copied)
}

/// One tar shard, written under a temporary name and renamed into place by `finish`.
struct ShardWriter {
    path: PathBuf,
    tmp: PathBuf,
    builder: tar::Builder<fs::File>,
    bytes: u64,
}

impl std::fmt::Debug for ShardWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardWriter")
            .field("path", &self.path)
            .finish()
    }
}

impl ShardWriter {
    fn create(path: &Path) -> Result<Self, ExportError> {
        let tmp = temporary_beside(path);
        let file = fs::File::create(&tmp).map_err(|err| ExportError::io(&tmp, err))?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            builder: tar::Builder::new(file),
            bytes: 0,
        })
    }

    fn append(&mut self, name: &str, data: &[u8]) -> Result<(), ExportError> {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        self.builder
            .append_data(&mut header, name, data)
            .map_err(|err| ExportError::io(&self.tmp, err))?;
        self.bytes += 512 + (data.len() as u64).div_ceil(512) * 512;
        Ok(())
    }

    /// Drops the half-written shard.
    fn abandon(self) {
        drop(self.builder);
        let _ = fs::remove_file(&self.tmp);
    }

    fn finish(self) -> Result<(), ExportError> {
        let file = self
            .builder
            .into_inner()
            .map_err(|err| ExportError::io(&self.tmp, err))?;
        file.sync_all()
            .and_then(|()| fs::rename(&self.tmp, &self.path))
            .map_err(|err| ExportError::io(&self.path, err))
    }
}

/// A sample's members: its JSON, then its frames (JPEGs, or one MP4). Its frames are read and
/// checked before anything of it is written: `Ok(Err(why))` when they cannot be, and the shard
/// is as it was.
fn write_sample(
    writer: &mut ShardWriter,
    found: &Found,
    options: &ExportOptions,
    summary: &mut ExportSummary,
) -> Result<Result<(), String>, ExportError> {
    let key = sample_key(&found.episode);
    let episode = &found.episode;
    let jpegs = match crate::read_frames(found) {
        Ok(jpegs) => jpegs,
        Err(problem) => return Ok(Err(problem)),
    };
    let mp4 = match options.sample_frames {
        SampleFrames::Jpg => None,
        SampleFrames::Mp4 => {
            let tmp = writer.tmp.with_extension("sample.mp4.partial");
            let encoded = (|| {
                let fps = (1.0 / episode.median_step_s).round().max(1.0) as u32;
                let mut mp4 =
                    Mp4Writer::create(&tmp, episode.width, episode.height, fps, &options.video)?;
                mp4.append(episode, &jpegs)?;
                mp4.finish()?;
                fs::read(&tmp).map_err(|err| format!("{}: {err}", tmp.display()))
            })();
            let _ = fs::remove_file(&tmp);
            match encoded {
                Ok(data) => Some(data),
                Err(err) => return Ok(Err(format!("encoding {err}"))),
            }
        }
    };
    let doc = sample_json(found, options.sample_frames);
    let bytes =
        serde_json::to_vec(&doc).map_err(|err| ExportError::Target(format!("{key}: {err}")))?;
    writer.append(&format!("{key}.json"), &bytes)?;
    match mp4 {
        Some(data) => writer.append(&format!("{key}.mp4"), &data)?,
        None => {
            for (row, jpeg) in episode.rows.iter().zip(&jpegs) {
                writer.append(&format!("{key}.{:06}.jpg", row.frame), jpeg)?;
            }
        }
    }
    summary.frames_written += episode.rows.len();
    Ok(Ok(()))
}

fn number(v: f32) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

/// The sample's `.json`: the segment, its checks, and per frame its time, action, state, mask.
fn sample_json(found: &Found, frames: SampleFrames) -> Value {
    let e = &found.episode;
    let key = sample_key(&found.episode);
    let rows: Vec<Value> = e
        .rows
        .iter()
        .map(|row| {
            let action: serde_json::Map<String, Value> = ACTION_NAMES
                .iter()
                .zip(row.action)
                .map(|(name, v)| ((*name).to_owned(), number(v)))
                .collect();
            let state: serde_json::Map<String, Value> = STATE_NAMES
                .iter()
                .zip(row.state)
                .map(|(name, v)| ((*name).to_owned(), number(v)))
                .collect();
            let member = match frames {
                SampleFrames::Jpg => json!(format!("{:06}.jpg", row.frame)),
                SampleFrames::Mp4 => Value::Null,
            };
            json!({
                "frame": row.frame,
                "member": member,
                "timestamp": row.timestamp_s,
                "time_known": row.time_known,
                "pts_ms": row.pts_ms,
                "page_t_ms": row.page_t_ms,
                "action": action,
                "state": state,
                "mask": row.mask,
                "mask_names": mask_names(row.mask),
            })
        })
        .collect();
    let bits: serde_json::Map<String, Value> = mask_bits()
        .into_iter()
        .map(|(bit, name)| (name.to_owned(), json!(bit)))
        .collect();
    json!({
        "key": key,
        "episode": crate::episode_key(e),
        "wallet": e.key.wallet,
        "session_id": e.key.session_id,
        "segment": e.key.segment,
        "task": e.task,
        "width": e.width,
        "height": e.height,
        "frames_as": frames_name(frames),
        "median_step_s": e.median_step_s,
        "clean_passed": e.clean_passed,
        "override": e.override_note,
        "failed": e.failed,
        "checks": e.checks,
        "mask_bits": bits,
        "frames": rows,
    })
}
