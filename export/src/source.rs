//! The clean layout as a consumer reads it: through each session's `manifest.json` only, every
//! object checked against the size and SHA-256 the manifest gives (docs/OUTPUTS.md). A segment
//! no manifest lists is never read; a path that would leave the session's folder is refused.

use std::fs;
use std::io::Read as _;
use std::path::{Component, Path, PathBuf};

use sd_core::{
    Location, ManifestObject, ManifestSegment, SegmentAlignedFile, SegmentKey, SegmentQualityFile,
    SessionManifest, MANIFEST_FILE, OUTPUT_SCHEMA_VERSION,
};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::ExportError;

/// A manifest larger than this is refused (a 60 s session's lists a few thousand objects).
const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// A JSON document or frame larger than this is refused, whatever its manifest says.
const MAX_OBJECT_BYTES: u64 = 256 << 20;

/// A local clean layout (`process --out`), read through its manifests.
#[derive(Debug, Clone)]
pub struct LocalClean {
    root: PathBuf,
}

/// One session the clean layout publishes.
#[derive(Debug, Clone)]
pub struct PublishedSession {
    pub folder: PathBuf,
    pub manifest: SessionManifest,
}

/// One published segment, read and checked: its two documents and where its frames are.
#[derive(Debug)]
pub struct PublishedSegment {
    pub key: SegmentKey,
    pub aligned: SegmentAlignedFile,
    pub quality: SegmentQualityFile,
    /// The frames' objects, in `aligned.json`'s row order.
    pub frame_objects: Vec<ManifestObject>,
}

#[derive(Debug, Deserialize)]
struct SessionPrompt {
    #[serde(default)]
    prompt: Option<String>,
}

impl LocalClean {
    pub fn new(root: &Path) -> Result<Self, ExportError> {
        if !root.is_dir() {
            return Err(ExportError::Source(format!(
                "{}: not a folder (the clean layout `process --out` writes)",
                root.display()
            )));
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every session with a clean manifest, sorted by wallet then session id. A manifest that
    /// cannot be read is an error for that session only: it comes back in `problems`.
    pub fn sessions(&self) -> Result<(Vec<PublishedSession>, Vec<String>), ExportError> {
        let mut sessions = Vec::new();
        let mut problems = Vec::new();
        for wallet in sorted_dirs(&self.root)? {
            for folder in sorted_dirs(&wallet)? {
                let path = folder.join(MANIFEST_FILE);
                if !path.is_file() {
                    continue;
                }
                match read_manifest(&path, &wallet, &folder) {
                    Ok(manifest) => sessions.push(PublishedSession { folder, manifest }),
                    Err(problem) => problems.push(problem),
                }
            }
        }
        Ok((sessions, problems))
    }

    /// Reads one listed segment: `aligned.json` and `quality.json`, checked against the manifest
    /// and against each other, and the frames' objects in row order.
    pub fn segment(
        &self,
        session: &PublishedSession,
        listed: &ManifestSegment,
    ) -> Result<PublishedSegment, String> {
        let manifest = &session.manifest;
        let key = SegmentKey {
            wallet: manifest.wallet.clone(),
            session_id: manifest.session_id.clone(),
            segment: listed.segment,
        };
        let folder = format!("segment_{:03}", listed.segment);
        let object = |name: &str| -> Result<&ManifestObject, String> {
            let path = format!("{folder}/{name}");
            listed
                .objects
                .iter()
                .find(|object| object.path == path)
                .ok_or_else(|| format!("{key}: the manifest does not list {path}"))
        };
        let aligned: SegmentAlignedFile = parse_json(
            &key,
            &read_listed(&session.folder, object("aligned.json")?)?,
        )?;
        let quality: SegmentQualityFile = parse_json(
            &key,
            &read_listed(&session.folder, object("quality.json")?)?,
        )?;
        for (name, version) in [
            ("aligned.json", aligned.schema_version),
            ("quality.json", quality.schema_version),
        ] {
            if version != OUTPUT_SCHEMA_VERSION {
                return Err(format!(
                    "{key}: {name} has schema version {version}, this export reads {OUTPUT_SCHEMA_VERSION}: process the session again"
                ));
            }
        }
        let same = |wallet: &str, session_id: &str, segment: usize| {
            wallet == key.wallet && session_id == key.session_id && segment == key.segment
        };
        if !same(&aligned.wallet, &aligned.session_id, aligned.segment)
            || !same(&quality.wallet, &quality.session_id, quality.segment)
        {
            return Err(format!(
                "{key}: aligned.json or quality.json names another segment"
            ));
        }
        if aligned.frames.is_empty() || aligned.frames.len() != quality.frames {
            return Err(format!(
                "{key}: aligned.json has {} frames, quality.json says {}",
                aligned.frames.len(),
                quality.frames
            ));
        }
        if quality.placement.location != Location::Clean {
            return Err(format!(
                "{key}: quality.json places it in the {} area, yet the clean manifest lists it",
                quality.placement.location.as_str()
            ));
        }
        let mut frame_objects = Vec::with_capacity(aligned.frames.len());
        for row in &aligned.frames {
            if !is_plain_relative(&row.file) {
                let shown: String = row.file.chars().take(120).collect();
                return Err(format!(
                    "{key}: aligned.json names a frame outside the segment: {shown:?}"
                ));
            }
            frame_objects.push(object(&row.file)?.clone());
        }
        Ok(PublishedSegment {
            key,
            aligned,
            quality,
            frame_objects,
        })
    }

    /// The session's prompt (`session.json`), when the manifest lists it and it has one.
    pub fn prompt(&self, session: &PublishedSession) -> Result<Option<String>, String> {
        let Some(object) = session
            .manifest
            .files
            .iter()
            .find(|file| file.path == "session.json")
        else {
            return Ok(None);
        };
        let bytes = read_listed(&session.folder, object)?;
        let doc: SessionPrompt = serde_json::from_slice(&bytes).map_err(|err| {
            format!(
                "{}/{}: session.json: {err}",
                session.manifest.wallet, session.manifest.session_id
            )
        })?;
        Ok(doc.prompt.filter(|prompt| !prompt.trim().is_empty()))
    }

    /// One frame's JPEG bytes, checked against the manifest.
    pub fn frame(
        &self,
        session: &PublishedSession,
        object: &ManifestObject,
    ) -> Result<Vec<u8>, String> {
        read_listed(&session.folder, object)
    }
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>, ExportError> {
    let entries = fs::read_dir(dir)
        .map_err(|err| ExportError::Source(format!("{}: {err}", dir.display())))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|err| ExportError::Source(format!("{}: {err}", dir.display())))?;
        let name = entry.file_name();
        // Dot folders (a work folder, an editor's) are not sessions.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn read_manifest(path: &Path, wallet: &Path, folder: &Path) -> Result<SessionManifest, String> {
    let bytes = read_capped(path, MAX_MANIFEST_BYTES)?;
    let manifest: SessionManifest = serde_json::from_slice(&bytes)
        .map_err(|err| format!("{}: not a manifest: {err}", path.display()))?;
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    if name(wallet).as_deref() != Some(manifest.wallet.as_str())
        || name(folder).as_deref() != Some(manifest.session_id.as_str())
    {
        return Err(format!(
            "{}: names {}/{}, which is not where it sits",
            path.display(),
            manifest.wallet,
            manifest.session_id
        ));
    }
    // The names become file names and sample keys: only valid ids (base58, `session_..._xxxxxx`).
    if let Err(why) = sd_core::WalletAddress::parse(&manifest.wallet)
        .map(|_| ())
        .and_then(|()| sd_core::SessionId::parse(&manifest.session_id).map(|_| ()))
    {
        return Err(format!("{}: {why}", path.display()));
    }
    if manifest.location != Location::Clean {
        return Err(format!(
            "{}: a {} manifest in the clean layout",
            path.display(),
            manifest.location.as_str()
        ));
    }
    Ok(manifest)
}

/// Reads one listed object and checks its size and SHA-256.
pub(crate) fn read_listed(folder: &Path, object: &ManifestObject) -> Result<Vec<u8>, String> {
    if !is_plain_relative(&object.path) {
        return Err(format!(
            "the manifest lists a path outside the session: {:?}",
            object.path
        ));
    }
    if object.bytes > MAX_OBJECT_BYTES {
        return Err(format!(
            "{}: {} bytes, more than an export reads",
            object.path, object.bytes
        ));
    }
    let path = folder.join(&object.path);
    let bytes = read_capped(&path, object.bytes + 1)?;
    if bytes.len() as u64 != object.bytes {
        return Err(format!(
            "{}: {} bytes, the manifest says {} (the session is being published again: export later)",
            path.display(),
            bytes.len(),
            object.bytes
        ));
    }
    let digest = hex(&Sha256::digest(&bytes));
    if digest != object.sha256 {
        return Err(format!(
            "{}: its SHA-256 is not the manifest's (the session is being published again: export later)",
            path.display()
        ));
    }
    Ok(bytes)
}

fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    let file = fs::File::open(path).map_err(|err| format!("{}: {err}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(cap)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("{}: {err}", path.display()))?;
    Ok(bytes)
}

fn parse_json<T: serde::de::DeserializeOwned>(key: &SegmentKey, bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|err| format!("{key}: {err}"))
}

/// `a/b/c`: relative, no `..`, no root, not empty.
fn is_plain_relative(path: &str) -> bool {
    let path = Path::new(path);
    path.components().next().is_some()
        && path
            .components()
            .all(|part| matches!(part, Component::Normal(_)))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
