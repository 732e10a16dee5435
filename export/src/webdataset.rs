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
    collect, load_state, read_frame, temporary_beside, ExportError, ExportOptions, ExportSummary,
    Format, Found, LocalClean, SampleFrames,
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
    frames_digest: String,
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

pub fn shard_path(out: &Path, id: u32) -> PathBuf {
    out.join(format!("shard-{id:06}.tar"))
}

pub(crate) fn export(
    source: &LocalClean,
    out: &Path,
    options: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    let old: Option<State> = load_state(out, STATE_FILE, Format::WebDataset)?;
    let frames_mode = frames_name(options.sample_frames);
    if let Some(old) = &old {
        if old.version != STATE_VERSION || old.format != Format::WebDataset.as_str() {
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
    }
    let mut summary = ExportSummary::default();
    let found = collect(source, &mut summary.problems)?;
    if found.is_empty() && old.is_none() {
        return Err(crate::nothing_to_export(source, &summary.problems));
    }

    // Which old shards must be written again, and what each keeps.
    let mut samples: Vec<SampleState> = Vec::new();
    let mut dirty: BTreeSet<u32> = BTreeSet::new();
    let mut kept: BTreeSet<&str> = BTreeSet::new();
    let mut regenerate: BTreeSet<String> = BTreeSet::new();
    if let Some(old) = &old {
        for s in &old.samples {
            match found.get(&s.key) {
                Some(f) => {
                    kept.insert(s.key.as_str());
                    let rows_digest = f.episode.rows_digest();
                    if f.frames_digest != s.frames_digest || rows_digest != s.rows_digest {
                        dirty.insert(s.shard);
                        regenerate.insert(s.sample_key.clone());
                        summary.changed += 1;
                    }
                    samples.push(SampleState {
                        key: s.key.clone(),
                        sample_key: s.sample_key.clone(),
                        frames_digest: f.frames_digest.clone(),
                        rows_digest,
                        shard: s.shard,
                    });
                }
                None => {
                    dirty.insert(s.shard);
                    summary.removed += 1;
                }
            }
        }
    }
    let by_sample_key: BTreeMap<String, &Found> = found
        .values()
        .map(|f| (sample_key(&f.episode), f))
        .collect();

    // Old shards with a change: written again, unchanged samples copied over.
    let old_shards = old.as_ref().map(|s| s.shards.clone()).unwrap_or_default();
    let mut shards: BTreeSet<u32> = BTreeSet::new();
    for &shard in &old_shards {
        let live: BTreeSet<&str> = samples
            .iter()
            .filter(|s| s.shard == shard)
            .map(|s| s.sample_key.as_str())
            .collect();
        let path = shard_path(out, shard);
        if !dirty.contains(&shard) {
            if path.is_file() {
                shards.insert(shard);
                summary.files_kept += 1;
                continue;
            }
            // A shard missing from the folder: written again from the source.
            for key in &live {
                regenerate.insert((*key).to_owned());
            }
        }
        if live.is_empty() {
            remove_if_there(&path)?;
            continue;
        }
        rewrite_shard(
            &path,
            &live,
            &regenerate,
            &by_sample_key,
            options,
            &mut summary,
        )?;
        shards.insert(shard);
        summary.files_written += 1;
    }

    // New samples into new shards.
    let mut next_shard = old.as_ref().map_or(0, |s| s.next_shard);
    let mut current: Option<(u32, ShardWriter)> = None;
    for (key, f) in &found {
        if kept.contains(key.as_str()) {
            continue;
        }
        if current.is_none() {
            let id = next_shard;
            next_shard += 1;
            current = Some((id, ShardWriter::create(&shard_path(out, id))?));
        }
        let Some((id, writer)) = current.as_mut() else {
            continue;
        };
        write_sample(writer, f, options, &mut summary)?;
        samples.push(SampleState {
            key: key.clone(),
            sample_key: sample_key(&f.episode),
            frames_digest: f.frames_digest.clone(),
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
        writer.finish()?;
        shards.insert(id);
        summary.files_written += 1;
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
        shards,
        next_shard,
    };
    let bytes = serde_json::to_vec_pretty(&state)
        .map_err(|err| ExportError::Target(format!("the export's state: {err}")))?;
    crate::write_atomic(&out.join(STATE_FILE), &bytes)?;
    Ok(summary)
}

fn remove_if_there(path: &Path) -> Result<(), ExportError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(ExportError::io(path, err)),
    }
}

/// Writes `path` again with the samples in `live`: those in `regenerate` from the source, the
/// others copied from the shard as it is.
fn rewrite_shard(
    path: &Path,
    live: &BTreeSet<&str>,
    regenerate: &BTreeSet<String>,
    by_sample_key: &BTreeMap<String, &Found>,
    options: &ExportOptions,
    summary: &mut ExportSummary,
) -> Result<(), ExportError> {
    let mut writer = ShardWriter::create(path)?;
    let mut done: BTreeSet<String> = BTreeSet::new();
    if path.is_file() {
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
            if !live.contains(key.as_str()) {
                continue;
            }
            if regenerate.contains(&key) {
                if done.insert(key.clone()) {
                    if let Some(f) = by_sample_key.get(&key) {
                        write_sample(&mut writer, f, options, summary)?;
                    }
                }
                continue;
            }
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|err| ExportError::io(path, err))?;
            writer.append(&name, &data)?;
            done.insert(key);
        }
    }
    // Samples the old shard did not have (it was missing, or cut short): from the source.
    for key in live {
        if !done.contains(*key) {
            if let Some(f) = by_sample_key.get(*key) {
                write_sample(&mut writer, f, options, summary)?;
            }
        }
    }
    writer.finish()
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

/// A sample's members: its JSON, then its frames (JPEGs, or one MP4).
fn write_sample(
    writer: &mut ShardWriter,
    found: &Found,
    options: &ExportOptions,
    summary: &mut ExportSummary,
) -> Result<(), ExportError> {
    let key = sample_key(&found.episode);
    let episode = &found.episode;
    let doc = sample_json(found, options.sample_frames);
    let bytes =
        serde_json::to_vec(&doc).map_err(|err| ExportError::Target(format!("{key}: {err}")))?;
    writer.append(&format!("{key}.json"), &bytes)?;
    match options.sample_frames {
        SampleFrames::Jpg => {
            for (i, row) in episode.rows.iter().enumerate() {
                let jpeg = read_frame(found, i).map_err(ExportError::Target)?;
                writer.append(&format!("{key}.{:06}.jpg", row.frame), &jpeg)?;
            }
        }
        SampleFrames::Mp4 => {
            let tmp = writer.tmp.with_extension("sample.mp4");
            let encoded = (|| {
                let fps = (1.0 / episode.median_step_s).round().max(1.0) as u32;
                let mut mp4 =
                    Mp4Writer::create(&tmp, episode.width, episode.height, fps, &options.video)?;
                mp4.append(episode, |row| read_frame(found, row))?;
                mp4.finish()?;
                fs::read(&tmp).map_err(|err| format!("{}: {err}", tmp.display()))
            })();
            let _ = fs::remove_file(&tmp);
            let data = encoded.map_err(|err| ExportError::Target(format!("encoding {err}")))?;
            writer.append(&format!("{key}.mp4"), &data)?;
        }
    }
    summary.frames_written += episode.rows.len();
    Ok(())
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
