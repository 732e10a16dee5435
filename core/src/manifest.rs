//! The per-session manifest (SPEC section 10): the last file written for a session in the clean
//! layout (and in the review area), listing every published object with its size and SHA-256.
//! Consumers read only what a manifest lists, so a session is never seen half-published, in a
//! local folder or in a bucket alike. Paths are relative to the session's folder (the folder that
//! holds the manifest), so one manifest reads the same wherever the session sits.

use std::io::Read as _;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::ledger::{SegmentKey, SessionStatus};
use crate::outputs::{Location, RunInfo};

/// The manifest's file name, in the session's folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Version of the manifest's shape.
pub const MANIFEST_SCHEMA_VERSION: u32 = 1;

/// What is published for one session in one place (the clean layout or the review area).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionManifest {
    pub schema_version: u32,
    pub wallet: String,
    pub session_id: String,
    /// `clean`: passing segments, for consumers; `review`: failed segments and rejected sessions.
    pub location: Location,
    pub status: SessionStatus,
    pub run: RunInfo,
    /// The session's own objects (`session.json`, `report.html`), when they sit here.
    pub files: Vec<ManifestObject>,
    /// Every segment published here, in segment order, with all its objects.
    pub segments: Vec<ManifestSegment>,
}

/// One segment's objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ManifestSegment {
    /// 1-based segment number.
    pub segment: usize,
    /// Frames in the segment (`frames/*.jpg` objects).
    pub frames: usize,
    /// `frames/{frame:06}.jpg` in frame order, then `aligned.json` and `quality.json`.
    pub objects: Vec<ManifestObject>,
}

/// One object: where, how big, and its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ManifestObject {
    /// Relative to the session's folder, `/`-separated (e.g. `segment_001/frames/000042.jpg`).
    pub path: String,
    pub bytes: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
}

impl ManifestObject {
    /// Size and checksum of the file `root/path`, read in one streaming pass.
    pub fn of_file(root: &Path, path: &str) -> std::io::Result<Self> {
        let mut file = std::fs::File::open(root.join(path))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 256 * 1024];
        let mut bytes = 0u64;
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            bytes += n as u64;
        }
        Ok(Self {
            path: path.to_owned(),
            bytes,
            sha256: hex(&hasher.finalize()),
        })
    }

    /// Size and checksum of bytes in memory.
    pub fn of_bytes(path: &str, content: &[u8]) -> Self {
        Self {
            path: path.to_owned(),
            bytes: content.len() as u64,
            sha256: hex(&Sha256::digest(content)),
        }
    }
}

impl SessionManifest {
    /// Every object the manifest lists (not the manifest itself), session files first.
    pub fn objects(&self) -> impl Iterator<Item = &ManifestObject> {
        self.files
            .iter()
            .chain(self.segments.iter().flat_map(|s| s.objects.iter()))
    }

    /// Total bytes of the objects listed.
    pub fn bytes(&self) -> u64 {
        self.objects().map(|o| o.bytes).sum()
    }

    /// Whether `path` (relative to the session folder) is one of the objects listed.
    pub fn lists(&self, path: &str) -> bool {
        self.objects().any(|o| o.path == path)
    }
}

/// The objects of one segment folder `root/segment_NNN` as the publish step laid it out:
/// `frames/{frame:06}.jpg` for `frames` (in that order), `aligned.json`, `quality.json`.
pub(crate) fn segment_objects(
    root: &Path,
    segment: usize,
    frames: &[usize],
) -> std::io::Result<ManifestSegment> {
    let folder = SegmentKey::folder_name(segment);
    let mut objects = Vec::with_capacity(frames.len() + 2);
    for &frame in frames {
        let path = format!("{folder}/frames/{}", crate::frames::frame_file_name(frame));
        objects.push(ManifestObject::of_file(root, &path)?);
    }
    for name in ["aligned.json", "quality.json"] {
        objects.push(ManifestObject::of_file(root, &format!("{folder}/{name}"))?);
    }
    Ok(ManifestSegment {
        segment,
        frames: frames.len(),
        objects,
    })
}

/// The objects of a published segment folder `session_dir/segment_NNN` as they are on disk
/// (frames in name order, which is frame order). For rewriting a manifest after a reviewer's
/// override moved a segment.
pub(crate) fn segment_objects_on_disk(
    session_dir: &Path,
    segment: usize,
) -> std::io::Result<ManifestSegment> {
    let folder = SegmentKey::folder_name(segment);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(session_dir.join(&folder).join("frames"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(frame) = name
            .strip_suffix(".jpg")
            .and_then(|n| n.parse::<usize>().ok())
        {
            names.push(frame);
        }
    }
    names.sort_unstable();
    segment_objects(session_dir, segment, &names)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_sha256_of_the_content() {
        let object = ManifestObject::of_bytes("a.json", b"abc");
        assert_eq!(
            object.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(object.bytes, 3);
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.json"), b"abc").expect("write");
        assert_eq!(
            ManifestObject::of_file(dir.path(), "a.json").expect("read"),
            object
        );
    }
}
