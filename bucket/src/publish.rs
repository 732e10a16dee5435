//! The clean bucket as a publish target (SPEC section 10): the same objects and manifests as the
//! local layout, uploaded. Objects first, each place's `manifest.json` last, then what the new
//! manifests no longer list is deleted. Passing segments sit under `{wallet}/{sid}/`, failed ones
//! (and rejected sessions) under `review/{wallet}/{sid}/`.
//!
//! `PublishTarget` is synchronous (the pipeline runs on a blocking thread); uploads run on the
//! worker's tokio runtime through its handle.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use futures_util::TryStreamExt as _;
use sd_core::{
    AssembledSession, Location, PublishTarget, Published, SessionManifest, StagedSession,
    MANIFEST_FILE,
};

use crate::clients::describe;

/// Uploads in flight at once per session.
const UPLOADS_IN_FLIGHT: usize = 16;

/// The prefix of the review area in the clean bucket (no wallet is called `review`: wallets are
/// base58 keys of 32 bytes).
pub const REVIEW_PREFIX: &str = "review/";

#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("cannot stage in {path}: {source}")]
    Stage {
        path: PathBuf,
        source: sd_core::PublishError,
    },
    #[error("s3://{bucket}/{key}: cannot {what}: {detail}")]
    S3 {
        bucket: String,
        key: String,
        what: &'static str,
        detail: String,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Manifest(String),
    /// The session's lease was lost (another worker took it over): this run must not change what
    /// consumers read.
    #[error("not publishing: {0}")]
    Fenced(String),
    /// What the bucket served is not what its manifest promises (a checksum, a size, a path that
    /// would leave the session's folder): nothing of it is kept.
    #[error("s3://{bucket}/{key}: {why}")]
    Untrusted {
        bucket: String,
        key: String,
        why: String,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("queue {queue}: {detail}")]
    Queue { queue: String, detail: String },
}

/// Checks, right before each step that changes what consumers read (a manifest, a deletion),
/// that this worker still holds the session's lease (and extends it). A worker that stalled
/// past its lease and was taken over stops there.
pub type Fence = Box<dyn Fn() -> Result<(), String> + Send>;

/// The clean bucket, for one session's publish.
pub struct BucketTarget {
    s3: aws_sdk_s3::Client,
    bucket: String,
    runtime: tokio::runtime::Handle,
    /// This session's temporary folder: staging goes in it.
    work: PathBuf,
    fence: Fence,
}

impl std::fmt::Debug for BucketTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketTarget")
            .field("bucket", &self.bucket)
            .field("work", &self.work)
            .finish_non_exhaustive()
    }
}

impl BucketTarget {
    pub fn new(
        s3: aws_sdk_s3::Client,
        bucket: String,
        runtime: tokio::runtime::Handle,
        work: PathBuf,
        fence: Fence,
    ) -> Self {
        Self {
            s3,
            bucket,
            runtime,
            work,
            fence,
        }
    }
}

/// `{wallet}/{sid}/` or `review/{wallet}/{sid}/`.
pub fn session_prefix(location: Location, wallet: &str, session: &str) -> String {
    match location {
        Location::Clean => format!("{wallet}/{session}/"),
        Location::Review => format!("{REVIEW_PREFIX}{wallet}/{session}/"),
    }
}

impl PublishTarget for BucketTarget {
    type Error = BucketError;

    fn stage(&mut self, label: &str) -> Result<StagedSession, BucketError> {
        let path = self.work.join(label);
        StagedSession::create(path.clone()).map_err(|source| BucketError::Stage { path, source })
    }

    fn publish(&mut self, session: AssembledSession) -> Result<Published, BucketError> {
        let published = self.runtime.block_on(self.publish_async(&session));
        // Staging goes whatever happened; a failed publish is retried from the raw bundle.
        if let Err(err) = session.remove() {
            tracing::warn!("cannot remove staging: {err}");
        }
        published
    }
}

impl BucketTarget {
    async fn publish_async(&self, session: &AssembledSession) -> Result<Published, BucketError> {
        let wallet = session.wallet.as_str();
        let id = session.session.as_str();
        let mut published = Published::default();
        let mut before = BTreeSet::new();
        let mut after = BTreeSet::new();
        for location in [Location::Clean, Location::Review] {
            let prefix = session_prefix(location, wallet, id);
            let old = self.read_manifest(&prefix).await?;
            if let Some(old) = &old {
                before.extend(old.segments.iter().map(|s| s.segment));
            }
            match session.manifest(location) {
                Some(manifest) => {
                    // Every object is sent again, even one whose content the old manifest lists:
                    // a failed run may have left other bytes under that key.
                    self.upload_objects(session.root(), &prefix, manifest)
                        .await?;
                    let json = sd_core::manifest_json(manifest)
                        .map_err(|err| BucketError::Manifest(err.to_string()))?;
                    (self.fence)().map_err(BucketError::Fenced)?;
                    self.put(
                        &format!("{prefix}{MANIFEST_FILE}"),
                        json,
                        "application/json",
                    )
                    .await?;
                    after.extend(manifest.segments.iter().map(|s| s.segment));
                    let count = manifest.segments.len();
                    match location {
                        Location::Clean => published.clean_segments = count,
                        Location::Review => published.review_segments = count,
                    }
                }
                None => {
                    (self.fence)().map_err(BucketError::Fenced)?;
                    self.delete(&format!("{prefix}{MANIFEST_FILE}")).await?;
                }
            }
        }
        // Only now, with both manifests replaced, what they no longer list goes.
        (self.fence)().map_err(BucketError::Fenced)?;
        for location in [Location::Clean, Location::Review] {
            let prefix = session_prefix(location, wallet, id);
            let listed: HashSet<&str> = session
                .manifest(location)
                .iter()
                .flat_map(|m| m.objects())
                .map(|o| o.path.as_str())
                .collect();
            for key in self.list(&prefix).await? {
                let Some(relative) = key.strip_prefix(&prefix) else {
                    continue;
                };
                if relative != MANIFEST_FILE && !listed.contains(relative) {
                    self.delete(&key).await?;
                }
            }
        }
        published.withdrawn_segments = before.difference(&after).count();
        Ok(published)
    }

    async fn upload_objects(
        &self,
        root: &Path,
        prefix: &str,
        manifest: &SessionManifest,
    ) -> Result<(), BucketError> {
        futures_util::stream::iter(manifest.objects().map(Ok))
            .try_for_each_concurrent(UPLOADS_IN_FLIGHT, |object| async move {
                let path = root.join(&object.path);
                let body = ByteStream::from_path(&path)
                    .await
                    .map_err(|err| BucketError::Read {
                        path: path.clone(),
                        source: std::io::Error::other(err),
                    })?;
                let key = format!("{prefix}{}", object.path);
                // The manifest's SHA-256 goes along as the object's checksum: S3 checks the body
                // against it and keeps it, so the SDK need not hash the body again to sign it.
                let checksum = checksum_header(&object.sha256).ok_or_else(|| {
                    BucketError::Manifest(format!("bad checksum for {}", object.path))
                })?;
                self.s3
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .content_type(content_type(&object.path))
                    .content_length(object.bytes as i64)
                    .checksum_sha256(checksum)
                    .body(body)
                    .customize()
                    .disable_payload_signing()
                    .send()
                    .await
                    .map_err(|err| self.s3_error(&key, "upload", &describe(&err)))?;
                Ok(())
            })
            .await
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), BucketError> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|err| self.s3_error(key, "upload", &describe(&err)))?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), BucketError> {
        // Deleting a key that is not there succeeds in S3.
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| self.s3_error(key, "delete", &describe(&err)))?;
        Ok(())
    }

    /// Every key under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BucketError> {
        let pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let pages: Vec<_> = pages
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|err| self.s3_error(prefix, "list", &describe(&err)))?;
        Ok(pages
            .iter()
            .flat_map(|page| page.contents())
            .filter_map(|object| object.key().map(str::to_owned))
            .collect())
    }

    async fn read_manifest(&self, prefix: &str) -> Result<Option<SessionManifest>, BucketError> {
        let key = format!("{prefix}{MANIFEST_FILE}");
        let bytes = get_if_present(&self.s3, &self.bucket, &key).await?;
        // A manifest this worker cannot read is replaced; its objects are then swept by prefix.
        Ok(bytes.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    fn s3_error(&self, key: &str, what: &'static str, detail: &str) -> BucketError {
        BucketError::S3 {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            what,
            detail: detail.to_owned(),
        }
    }
}

/// The bytes of `s3://{bucket}/{key}`, or `None` when there is no such key.
pub async fn get_if_present(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, BucketError> {
    get_capped(s3, bucket, key, u64::MAX).await
}

/// [`get_if_present`] refusing an object over `max` bytes (by its length, then while reading:
/// a hostile server's body is not held past the cap).
pub async fn get_capped(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    max: u64,
) -> Result<Option<Vec<u8>>, BucketError> {
    let failed = |detail: String| BucketError::S3 {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        what: "read",
        detail,
    };
    let too_long = || BucketError::Untrusted {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        why: format!("longer than {max} bytes"),
    };
    let mut object = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(object) => object,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
        Err(err) => return Err(failed(describe(&err))),
    };
    let length = object
        .content_length()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0);
    if length > max {
        return Err(too_long());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
    while let Some(chunk) = object
        .body
        .try_next()
        .await
        .map_err(|err| failed(err.to_string()))?
    {
        if (bytes.len() + chunk.len()) as u64 > max {
            return Err(too_long());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

/// A lowercase hex SHA-256 as S3's `x-amz-checksum-sha256` (base64 of the 32 bytes).
fn checksum_header(hex: &str) -> Option<String> {
    use base64::Engine as _;
    if hex.len() != 64 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..32)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    Some(base64::engine::general_purpose::STANDARD.encode(bytes?))
}

fn content_type(path: &str) -> &'static str {
    if path.ends_with(".jpg") {
        "image/jpeg"
    } else if path.ends_with(".json") {
        "application/json"
    } else if path.ends_with(".html") {
        "text/html; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_go_as_base64() {
        // SHA-256 of "abc".
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(
            checksum_header(hex).as_deref(),
            Some("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=")
        );
        assert_eq!(checksum_header("zz"), None);
        assert_eq!(checksum_header(&"g".repeat(64)), None);
    }
}
