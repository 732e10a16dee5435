//! A session's parts in the raw bucket: which are there (by listing, never by event order), and
//! downloading them into a temporary folder, sizes checked against the caps before reading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sd_core::{BundleSource, Limits, PartFile, PartKind, PartName};
use tokio::io::AsyncWriteExt as _;

use sd_bucket::{describe, SessionRef};

/// One object of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPart {
    pub key: String,
    pub file_name: String,
    pub upload_epoch_ms: Option<u64>,
    pub bytes: u64,
    pub etag: String,
}

/// A session's parts as listed: the upload that counts for each kind, and the kinds missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParts {
    pub parts: BTreeMap<PartKind, ListedPart>,
    /// Older uploads of a part, replaced by a later one.
    pub superseded: BTreeMap<PartKind, Vec<String>>,
}

impl SessionParts {
    /// Picks the session's parts out of a listing of `{wallet}/` (both key forms; of two uploads
    /// of one part the later counts, as in local discovery).
    pub fn pick(session: &SessionRef, listing: &[ListedPart]) -> Self {
        let mut parts: BTreeMap<PartKind, ListedPart> = BTreeMap::new();
        let mut superseded: BTreeMap<PartKind, Vec<String>> = BTreeMap::new();
        for object in listing {
            let Some(name) = PartName::parse(&object.file_name) else {
                continue;
            };
            if name.session_id != session.session.as_str() {
                continue;
            }
            match parts.remove(&name.kind) {
                None => {
                    parts.insert(name.kind, object.clone());
                }
                Some(other) => {
                    let later = sd_core::upload_order(object.upload_epoch_ms, &object.file_name)
                        >= sd_core::upload_order(other.upload_epoch_ms, &other.file_name);
                    let (newer, older) = if later {
                        (object.clone(), other)
                    } else {
                        (other, object.clone())
                    };
                    superseded.entry(name.kind).or_default().push(older.key);
                    parts.insert(name.kind, newer);
                }
            }
        }
        Self { parts, superseded }
    }

    pub fn missing(&self) -> Vec<PartKind> {
        PartKind::ALL
            .into_iter()
            .filter(|kind| !self.parts.contains_key(kind))
            .collect()
    }

    /// The parts' contents as S3 knows them (ETag and size per part, not the key): two listings
    /// with the same fingerprint hold the same bundle, so a session whose fingerprint was
    /// processed already is not processed again, even when a retried upload put the same bytes
    /// under new `{epoch}_` keys.
    pub fn fingerprint(&self) -> String {
        self.parts
            .iter()
            .map(|(kind, part)| format!("{}={}:{}", kind.name(), part.etag, part.bytes))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Every object directly under `{wallet}/`.
pub async fn list_wallet(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    wallet: &str,
) -> anyhow::Result<Vec<ListedPart>> {
    let prefix = format!("{wallet}/");
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&prefix)
        .delimiter("/")
        .into_paginator()
        .send();
    let mut listing = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| {
            anyhow::anyhow!("cannot list s3://{bucket}/{prefix}: {}", describe(&err))
        })?;
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            let Some(file_name) = key.strip_prefix(&prefix) else {
                continue;
            };
            let file_name = file_name.to_owned();
            let upload_epoch_ms = PartName::parse(&file_name).and_then(|n| n.upload_epoch_ms);
            listing.push(ListedPart {
                key: key.to_owned(),
                file_name,
                upload_epoch_ms,
                bytes: object.size().unwrap_or(0).max(0) as u64,
                etag: object
                    .e_tag()
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_owned(),
            });
        }
    }
    Ok(listing)
}

/// The cap on a part's size (the same as local loading's).
pub fn cap(kind: PartKind, limits: &Limits) -> u64 {
    match kind {
        PartKind::Video => limits.max_video_bytes,
        _ => limits.max_json_part_bytes,
    }
}

/// Downloads the session's parts into `dir/{wallet}/` and describes them as local discovery
/// would. A part over its cap is not downloaded: it is listed with its size, and loading rejects
/// it before opening it (`part_too_large`), as it does locally. Each download asks for exactly
/// the listed version (`If-Match` on the ETag) and is cut off past the listed size.
pub async fn download(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    session: &SessionRef,
    parts: &SessionParts,
    limits: &Limits,
    dir: &Path,
) -> anyhow::Result<BundleSource> {
    let folder = dir.join(session.wallet.as_str());
    tokio::fs::create_dir_all(&folder).await?;
    let mut files = BTreeMap::new();
    for (&kind, part) in &parts.parts {
        // The local name is the part's canonical one, whatever the key's prefix looks like.
        let path = folder.join(format!("{}{}", session.session, kind.suffix()));
        if part.bytes <= cap(kind, limits) {
            fetch_object(s3, bucket, part, &path).await?;
        }
        files.insert(
            kind,
            PartFile {
                path,
                file_name: part.file_name.clone(),
                upload_epoch_ms: part.upload_epoch_ms,
                size_bytes: part.bytes,
                is_symlink: false,
                superseded: parts.superseded.get(&kind).cloned().unwrap_or_default(),
            },
        );
    }
    Ok(BundleSource {
        folder,
        key_wallet: Some(session.wallet.to_string()),
        session_id: session.session.to_string(),
        parts: files,
    })
}

async fn fetch_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    part: &ListedPart,
    path: &PathBuf,
) -> anyhow::Result<()> {
    let mut request = s3.get_object().bucket(bucket).key(&part.key);
    if !part.etag.is_empty() {
        request = request.if_match(format!("\"{}\"", part.etag));
    }
    let mut object = request.send().await.map_err(|err| {
        anyhow::anyhow!("cannot read s3://{bucket}/{}: {}", part.key, describe(&err))
    })?;
    let mut file = tokio::fs::File::create(path).await?;
    let mut written = 0u64;
    while let Some(chunk) = object
        .body
        .try_next()
        .await
        .map_err(|err| anyhow::anyhow!("cannot read s3://{bucket}/{}: {err}", part.key))?
    {
        written += chunk.len() as u64;
        anyhow::ensure!(
            written <= part.bytes,
            "s3://{bucket}/{} is longer than its listed {} bytes",
            part.key,
            part.bytes
        );
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALLET: &str = "Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR";

    fn listed(name: &str, etag: &str) -> ListedPart {
        ListedPart {
            key: format!("{WALLET}/{name}"),
            file_name: name.to_owned(),
            upload_epoch_ms: PartName::parse(name).and_then(|n| n.upload_epoch_ms),
            bytes: 10,
            etag: etag.to_owned(),
        }
    }

    fn session(id: &str) -> SessionRef {
        SessionRef {
            wallet: sd_core::WalletAddress::parse(WALLET).expect("wallet"),
            session: sd_core::SessionId::parse(id).expect("session"),
        }
    }

    #[test]
    fn parts_by_listing_both_forms_later_upload_wins() {
        let listing = [
            listed("1000_session_1_abc.webm", "v1"),
            listed("2000_session_1_abc.webm", "v2"),
            listed("session_1_abc_inputs.json", "i"),
            listed("1500_session_1_abc_meta.json", "m"),
            listed("session_2_zzz_camera.json", "other session"),
            listed("notes.txt", "not a part"),
        ];
        let parts = SessionParts::pick(&session("session_1_abc"), &listing);
        assert_eq!(parts.parts[&PartKind::Video].etag, "v2");
        assert_eq!(
            parts.superseded[&PartKind::Video],
            [format!("{WALLET}/1000_session_1_abc.webm")]
        );
        assert_eq!(parts.missing(), [PartKind::Camera, PartKind::Latency]);
        let again = SessionParts::pick(&session("session_1_abc"), &listing);
        assert_eq!(parts.fingerprint(), again.fingerprint());
        // The same bytes uploaded again under a new epoch key: the same bundle.
        let mut reuploaded = listing.to_vec();
        reuploaded.push(listed("3000_session_1_abc_inputs.json", "i"));
        assert_eq!(
            SessionParts::pick(&session("session_1_abc"), &reuploaded).fingerprint(),
            parts.fingerprint()
        );
        let mut changed = listing.to_vec();
        changed[2].etag = "i2".into();
        assert_ne!(
            SessionParts::pick(&session("session_1_abc"), &changed).fingerprint(),
            parts.fingerprint()
        );
    }
}
