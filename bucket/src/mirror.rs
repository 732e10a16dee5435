//! One session's published objects copied from the clean bucket into a local folder laid out as
//! `process` writes (`{clean}/{wallet}/{sid}/` and `{review}/{wallet}/{sid}/`), so that whatever
//! reads the local layout (the review app) reads a bucket the same way.
//!
//! The bucket is read as hostile: a manifest must name this session and only distinct paths
//! inside its folder, and an object must have the size and SHA-256 its manifest lists or it is
//! not written (reads are capped at the listed size). Objects already here with the listed
//! checksum are not fetched again. Each file is written beside its place and renamed into it; the
//! manifest goes last, so a pass that fails leaves the previous manifest and files already
//! checked; what the bucket's manifests no longer list is removed (a segment a worker moved
//! between clean and `review/` moves here too).
//!
//! A worker may republish the session while it is read (after a reviewer's verdict it does):
//! objects then change under their manifest. Both manifests are read again after each pass, and
//! a pass that saw them change is run again (at most [`ATTEMPTS`] times); a mismatch under
//! manifests that did not change is the bucket's fault, and said so.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::TryStreamExt as _;
use sd_core::{Location, ManifestObject, SessionManifest, MANIFEST_FILE};

use crate::publish::{get_capped, session_prefix, BucketError};
use crate::session::SessionRef;

/// Downloads in flight at once.
const DOWNLOADS_IN_FLIGHT: usize = 16;

/// The largest object a manifest may list (frames are tens of kB; a report a few MB).
pub const MAX_OBJECT_BYTES: u64 = 256 * 1024 * 1024;

/// The largest manifest read (an 18,000-frame session's is about 2 MB).
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// The longest object path a manifest may list.
const MAX_PATH_CHARS: usize = 512;

/// Passes over a session whose manifests keep changing, before the last one's outcome stands.
pub const ATTEMPTS: u32 = 3;

/// Suffix of a file being written, before it is renamed into place.
const PARTIAL: &str = ".sd-partial";

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
    /// Passes run (more than one when a worker republished the session meanwhile).
    pub passes: u32,
}

const LOCATIONS: [Location; 2] = [Location::Clean, Location::Review];

/// Both manifests' bytes as the bucket serves them (clean, review), `None` where there is none.
type Manifests = [Option<Vec<u8>>; 2];

/// Brings the local copy of `session` in line with what the bucket's manifests list.
pub async fn mirror_session(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    session: &SessionRef,
    dirs: &MirrorDirs,
) -> Result<Mirrored, BucketError> {
    let mut passes = 0;
    loop {
        passes += 1;
        let manifests = read_manifests(s3, bucket, session).await?;
        let result = mirror_pass(s3, bucket, session, dirs, &manifests).await;
        let settled = read_manifests(s3, bucket, session).await? == manifests;
        if settled || passes >= ATTEMPTS {
            return result.map(|mirrored| Mirrored { passes, ..mirrored });
        }
        tracing::debug!("{session}: republished while mirrored; again ({passes})");
        tokio::time::sleep(Duration::from_millis(300) * passes).await;
    }
}

async fn read_manifests(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    session: &SessionRef,
) -> Result<Manifests, BucketError> {
    let mut manifests = Manifests::default();
    for (slot, location) in manifests.iter_mut().zip(LOCATIONS) {
        let prefix = session_prefix(location, session.wallet.as_str(), session.session.as_str());
        *slot = get_capped(
            s3,
            bucket,
            &format!("{prefix}{MANIFEST_FILE}"),
            MAX_MANIFEST_BYTES,
        )
        .await?;
    }
    Ok(manifests)
}

/// One pass over both places, with the manifests read just before.
async fn mirror_pass(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    session: &SessionRef,
    dirs: &MirrorDirs,
    manifests: &Manifests,
) -> Result<Mirrored, BucketError> {
    let mut mirrored = Mirrored::default();
    let (wallet, id) = (session.wallet.as_str(), session.session.as_str());
    for (bytes, location) in manifests.iter().zip(LOCATIONS) {
        let prefix = session_prefix(location, wallet, id);
        let local = dirs.root(location).join(wallet).join(id);
        let Some(bytes) = bytes else {
            // Nothing published here (any more).
            mirrored.removed += remove_tree(&local)?;
            continue;
        };
        let manifest_key = format!("{prefix}{MANIFEST_FILE}");
        let manifest =
            checked_manifest(bytes, session, location).map_err(|why| BucketError::Untrusted {
                bucket: bucket.to_owned(),
                key: manifest_key.clone(),
                why,
            })?;
        // The same manifest as the last complete pass: its files are trusted by their size (a
        // pass writes the manifest last); otherwise each is checked by its SHA-256.
        let same_manifest =
            std::fs::read(local.join(MANIFEST_FILE)).is_ok_and(|here| here == *bytes);
        let wanted: Vec<&ManifestObject> = manifest
            .objects()
            .filter(|object| {
                if same_manifest {
                    std::fs::metadata(local.join(&object.path))
                        .map_or(true, |meta| meta.len() != object.bytes)
                } else {
                    ManifestObject::of_file(&local, &object.path).ok().as_ref() != Some(*object)
                }
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
                    let body = get_capped(s3, bucket, &key, object.bytes)
                        .await?
                        .ok_or_else(|| {
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
        write_beside(&local.join(MANIFEST_FILE), bytes)?;
        match location {
            Location::Clean => mirrored.clean_segments = manifest.segments.len(),
            Location::Review => mirrored.review_segments = manifest.segments.len(),
        }
    }
    Ok(mirrored)
}

/// The manifest in `bytes`, if it is one of `session` at `location` listing distinct paths
/// inside the session's folder, none too big; else why not.
fn checked_manifest(
    bytes: &[u8],
    session: &SessionRef,
    location: Location,
) -> Result<SessionManifest, String> {
    let manifest: SessionManifest =
        serde_json::from_slice(bytes).map_err(|err| format!("not a manifest: {err}"))?;
    if manifest.wallet != session.wallet.as_str()
        || manifest.session_id != session.session.as_str()
        || manifest.location != location
    {
        return Err(format!(
            "the manifest is of {}/{} ({:?}), not of this place",
            shown(&manifest.wallet),
            shown(&manifest.session_id),
            manifest.location
        ));
    }
    let mut seen = HashSet::new();
    for object in manifest.objects() {
        let path = object.path.as_str();
        if !is_inside(path)
            || path == MANIFEST_FILE
            || path.ends_with(PARTIAL)
            || path.chars().count() > MAX_PATH_CHARS
        {
            return Err(format!("lists the path {:?}", shown(path)));
        }
        if !seen.insert(path) {
            return Err(format!("lists {:?} twice", shown(path)));
        }
        if object.bytes > MAX_OBJECT_BYTES {
            return Err(format!(
                "lists {} of {} bytes (at most {MAX_OBJECT_BYTES})",
                shown(path),
                object.bytes
            ));
        }
    }
    Ok(manifest)
}

/// At most 200 characters of a text from the bucket, for a message.
fn shown(text: &str) -> String {
    let mut shown: String = text.chars().take(200).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    shown
}

/// A relative, `/`-separated path that stays inside its folder.
fn is_inside(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty() && part != "." && part != ".." && !part.contains(['\\', '\0'])
        })
}

/// Writes `bytes` to `{path}.sd-partial`, then renames it into place.
fn write_beside(path: &Path, bytes: &[u8]) -> Result<(), BucketError> {
    let failed = |source| BucketError::Write {
        path: path.to_owned(),
        source,
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).map_err(failed)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(PARTIAL);
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

/// Every session the clean bucket publishes to consumers (`{wallet}/{sid}/`, not `review/`), by
/// listing folders (two levels, no object listing). A folder name that is not a valid wallet or
/// session id is not a session of ours: it comes back in the second list, said plainly.
pub async fn published_sessions(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<(Vec<SessionRef>, Vec<String>), BucketError> {
    let mut sessions = Vec::new();
    let mut strays = Vec::new();
    for wallet_prefix in folders(s3, bucket, "").await? {
        if format!("{wallet_prefix}/") == crate::publish::REVIEW_PREFIX {
            continue;
        }
        for session_prefix in folders(s3, bucket, &format!("{wallet_prefix}/")).await? {
            let session_name = session_prefix
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            match SessionRef::parse(&wallet_prefix, &session_name) {
                Ok(session) => sessions.push(session),
                Err(why) => strays.push(format!("s3://{bucket}/{session_prefix}/: {why}")),
            }
        }
    }
    sessions.sort_by(|a, b| {
        (a.wallet.as_str(), a.session.as_str()).cmp(&(b.wallet.as_str(), b.session.as_str()))
    });
    Ok((sessions, strays))
}

/// The "folders" directly under `prefix` (common prefixes, without their trailing `/`).
async fn folders(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, BucketError> {
    let pages: Vec<_> = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .delimiter("/")
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|err| BucketError::S3 {
            bucket: bucket.to_owned(),
            key: prefix.to_owned(),
            what: "list",
            detail: crate::describe(&err),
        })?;
    Ok(pages
        .iter()
        .flat_map(|page| page.common_prefixes())
        .filter_map(|p| p.prefix())
        .map(|p| p.trim_end_matches('/').to_owned())
        .collect())
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

    const WALLET: &str = "Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR";
    const SESSION: &str = "session_1769936388223_tp5owb";

    fn manifest(wallet: &str, location: &str, paths: &[&str], bytes: u64) -> Vec<u8> {
        let files: Vec<serde_json::Value> = paths
            .iter()
            .map(|path| serde_json::json!({"path": path, "bytes": bytes, "sha256": "00"}))
            .collect();
        serde_json::json!({
            "schema_version": 1, "wallet": wallet, "session_id": SESSION,
            "location": location, "status": "accepted",
            "run": {"run_id": "r", "processed_at": "2026-12-03T00:00:00Z"},
            "files": files, "segments": []
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_manifest_must_be_of_this_place_and_list_distinct_paths_inside_it() {
        let session = SessionRef::parse(WALLET, SESSION).expect("ids");
        let good = manifest(WALLET, "clean", &["session.json", "report.html"], 10);
        assert!(checked_manifest(&good, &session, Location::Clean).is_ok());
        let refused = [
            (
                manifest(WALLET, "review", &["session.json"], 10),
                "not of this place",
            ),
            (
                manifest("11111111111111111111111111111111", "clean", &[], 10),
                "not of this place",
            ),
            (manifest(WALLET, "clean", &["../x"], 10), "path"),
            (manifest(WALLET, "clean", &["manifest.json"], 10), "path"),
            (manifest(WALLET, "clean", &["a.jpg.sd-partial"], 10), "path"),
            (manifest(WALLET, "clean", &[&"a".repeat(600)], 10), "path"),
            (manifest(WALLET, "clean", &["a", "a"], 10), "twice"),
            (
                manifest(WALLET, "clean", &["a"], MAX_OBJECT_BYTES + 1),
                "at most",
            ),
            (b"{".to_vec(), "not a manifest"),
        ];
        for (bytes, why) in refused {
            let err = checked_manifest(&bytes, &session, Location::Clean).expect_err(why);
            assert!(err.contains(why), "{err}");
            assert!(err.len() < 400, "{err}");
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
