//! One session's published objects copied from the clean bucket into a local folder laid out as
//! `process` writes (`{clean}/{wallet}/{sid}/` and `{review}/{wallet}/{sid}/`), so that whatever
//! reads the local layout (the review app) reads a bucket the same way.
//!
//! The bucket is read as hostile: a manifest must name this session and only paths inside its
//! folder, and every object must have the size and SHA-256 its manifest lists, or nothing of it is
//! kept. Objects already here with the listed checksum are not fetched again. Each file is written
//! beside its place and renamed into it; the manifest goes last; what the bucket's manifests no
//! longer list is removed (a segment a worker moved between clean and `review/` moves here too).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt as _;
use sd_core::{Location, ManifestObject, SessionManifest, MANIFEST_FILE};

use crate::publish::{get_if_present, session_prefix, BucketError};
use crate::session::SessionRef;

/// Downloads in flight at once.
const DOWNLOADS_IN_FLIGHT: usize = 16;

/// The largest object a manifest may list (frames are tens of kB; a report a few MB).
pub const MAX_OBJECT_BYTES: u64 = 256 * 1024 * 1024;

/// The local folders a bucket is mirrored into, one per location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorDirs {
    pub clean: PathBuf,
    pub review: PathBuf,
}

impl MirrorDirs {
    /// `{root}/clean` and `{root}/review`.
    pub fn under(root: &Path) -> Self {
        Self {
            clean: root.join("clean"),
            review: root.join("review"),
        }
    }

    pub fn root(&self, location: Location) -> &Path {
        match location {
            Location::Clean => &self.clean,
            Location::Review => &self.review,
        }
    }
}

/// What one mirror pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirrored {
    /// Objects downloaded (missing here or different).
    pub fetched: usize,
    pub fetched_bytes: u64,
    /// Objects already here with the listed checksum.
    pub kept: usize,
    /// Local files the bucket no longer lists, removed.
    pub removed: usize,
    /// Segments the bucket lists, per location.
    pub clean_segments: usize,
    pub review_segments: usize,
}

/// Brings the local copy of `session` in line with what the bucket's manifests list.
pub async fn mirror_session(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    session: &SessionRef,
    dirs: &MirrorDirs,
) -> Result<Mirrored, BucketError> {
    let mut mirrored = Mirrored::default();
    let (wallet, id) = (session.wallet.as_str(), session.session.as_str());
    for location in [Location::Clean, Location::Review] {
        let prefix = session_prefix(location, wallet, id);
        let local = dirs.root(location).join(wallet).join(id);
        let manifest_key = format!("{prefix}{MANIFEST_FILE}");
        let Some(bytes) = get_if_present(s3, bucket, &manifest_key).await? else {
            // Nothing published here (any more).
            mirrored.removed += remove_tree(&local)?;
            continue;
        };
        let untrusted = |why: String| BucketError::Untrusted {
            bucket: bucket.to_owned(),
            key: manifest_key.clone(),
            why,
        };
        let manifest: SessionManifest = serde_json::from_slice(&bytes)
            .map_err(|err| untrusted(format!("not a manifest: {err}")))?;
        if manifest.wallet != wallet || manifest.session_id != id || manifest.location != location {
            return Err(untrusted(format!(
                "the manifest is of {}/{} ({:?}), not of this place",
                manifest.wallet, manifest.session_id, manifest.location
            )));
        }
        for object in manifest.objects() {
            if !is_inside(&object.path) || object.path == MANIFEST_FILE {
                return Err(untrusted(format!("lists {:?}", object.path)));
            }
            if object.bytes > MAX_OBJECT_BYTES {
                return Err(untrusted(format!(
                    "lists {} of {} bytes (at most {MAX_OBJECT_BYTES})",
                    object.path, object.bytes
                )));
            }
        }
        let wanted: Vec<&ManifestObject> = manifest
            .objects()
            .filter(|object| {
                ManifestObject::of_file(&local, &object.path).ok().as_ref() != Some(*object)
            })
            .collect();
        mirrored.kept += manifest.objects().count() - wanted.len();
        futures_util::stream::iter(wanted.iter().map(Ok))
            .try_for_each_concurrent(DOWNLOADS_IN_FLIGHT, |object| {
                let (local, prefix) = (&local, &prefix);
                async move {
                    let key = format!("{prefix}{}", object.path);
                    let untrusted = |why: String| BucketError::Untrusted {
                        bucket: bucket.to_owned(),
                        key: key.clone(),
                        why,
                    };
                    let body = get_if_present(s3, bucket, &key).await?.ok_or_else(|| {
                        untrusted("listed in the manifest, not in the bucket".into())
                    })?;
                    let got = ManifestObject::of_bytes(&object.path, &body);
                    if got != **object {
                        return Err(untrusted(format!(
                            "{} bytes with SHA-256 {}, the manifest lists {} bytes with {}",
                            got.bytes, got.sha256, object.bytes, object.sha256
                        )));
                    }
                    write_beside(&local.join(&object.path), &body)
                }
            })
            .await?;
        mirrored.fetched += wanted.len();
        mirrored.fetched_bytes += wanted.iter().map(|o| o.bytes).sum::<u64>();
        let listed: HashSet<&str> = manifest.objects().map(|o| o.path.as_str()).collect();
        mirrored.removed += remove_unlisted(&local, &listed)?;
        write_beside(&local.join(MANIFEST_FILE), &bytes)?;
        match location {
            Location::Clean => mirrored.clean_segments = manifest.segments.len(),
            Location::Review => mirrored.review_segments = manifest.segments.len(),
        }
    }
    Ok(mirrored)
}

/// A relative, `/`-separated path that stays inside its folder.
fn is_inside(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty() && part != "." && part != ".." && !part.contains(['\\', '\0'])
        })
}

/// Writes `bytes` to a hidden file beside `path`, then renames it into place.
fn write_beside(path: &Path, bytes: &[u8]) -> Result<(), BucketError> {
    let failed = |source| BucketError::Write {
        path: path.to_owned(),
        source,
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).map_err(failed)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".sd-partial");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, bytes).map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(|err| {
        let _ = std::fs::remove_file(&temporary);
        failed(err)
    })
}

/// Removes `folder` and everything in it; answers how many files went.
fn remove_tree(folder: &Path) -> Result<usize, BucketError> {
    if !folder.exists() {
        return Ok(0);
    }
    let removed = remove_unlisted(folder, &HashSet::new())?;
    std::fs::remove_dir_all(folder).map_err(|source| BucketError::Write {
        path: folder.to_owned(),
        source,
    })?;
    Ok(removed)
}

/// Removes every file under `folder` that `listed` does not name (relative, `/`-separated), and
/// the folders that leaves empty; the manifest stays (it is replaced last). Answers how many files
/// went.
fn remove_unlisted(folder: &Path, listed: &HashSet<&str>) -> Result<usize, BucketError> {
    fn walk(
        folder: &Path,
        relative: &str,
        listed: &HashSet<&str>,
        removed: &mut usize,
    ) -> Result<bool, BucketError> {
        let failed = |source| BucketError::Write {
            path: folder.to_owned(),
            source,
        };
        let entries = match std::fs::read_dir(folder) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(err) => return Err(failed(err)),
        };
        let mut empty = true;
        for entry in entries {
            let entry = entry.map_err(failed)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let inner = if relative.is_empty() {
                name.clone()
            } else {
                format!("{relative}/{name}")
            };
            if entry.file_type().map_err(failed)?.is_dir() {
                if walk(&path, &inner, listed, removed)? {
                    std::fs::remove_dir(&path).map_err(failed)?;
                } else {
                    empty = false;
                }
            } else if listed.contains(inner.as_str()) || inner == MANIFEST_FILE {
                empty = false;
            } else {
                std::fs::remove_file(&path).map_err(failed)?;
                *removed += 1;
            }
        }
        Ok(empty)
    }
    let mut removed = 0;
    walk(folder, "", listed, &mut removed)?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_the_session_folder_are_taken() {
        for good in ["session.json", "segment_001/frames/000001.jpg"] {
            assert!(is_inside(good), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "segment_001/../../x",
            "a//b",
            "./a",
            "a\\b",
            "a\0b",
            "segment_001/",
        ] {
            assert!(!is_inside(bad), "{bad:?}");
        }
    }

    #[test]
    fn unlisted_files_and_the_folders_they_leave_empty_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        for path in [
            "session.json",
            "manifest.json",
            "segment_001/aligned.json",
            "segment_002/aligned.json",
            "segment_002/frames/000001.jpg",
        ] {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, b"x").expect("write");
        }
        let listed: HashSet<&str> = ["session.json", "segment_001/aligned.json"].into();
        assert_eq!(remove_unlisted(root, &listed).expect("remove"), 2);
        assert!(!root.join("segment_002").exists());
        assert!(root.join("segment_001/aligned.json").is_file());
        assert!(root.join("manifest.json").is_file());
        assert_eq!(remove_tree(root).expect("remove"), 2);
        assert!(!root.exists());
    }
}
