//! Finding bundles on disk: a folder of parts, or a raw-bucket-shaped tree of `{wallet}/` folders.
//!
//! Discovery only lists and groups; it reads no part and follows no symlink. A symlinked part is
//! listed with `is_symlink` so that loading rejects its bundle instead of reading through it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::ids::{PartKind, PartName, WalletAddress};

/// One part file found on disk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartFile {
    #[serde(serialize_with = "lossy_path")]
    pub path: PathBuf,
    pub file_name: String,
    /// `Date.now()` at upload, from the `{epoch}_` key prefix when present.
    pub upload_epoch_ms: Option<u64>,
    pub size_bytes: u64,
    pub is_symlink: bool,
    /// Older uploads of the same part that this one replaces (same session, earlier epoch).
    pub superseded: Vec<String>,
}

/// The files of one session, as found: nothing here has been read or validated yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BundleSource {
    /// The folder the parts are in.
    #[serde(serialize_with = "lossy_path")]
    pub folder: PathBuf,
    /// The wallet of the `{wallet}/` key prefix, as raw text (validated when loading).
    /// `None` for a plain local bundle folder whose name is not a wallet.
    pub key_wallet: Option<String>,
    /// The session id the part names carry, as raw text (validated when loading).
    pub session_id: String,
    pub parts: BTreeMap<PartKind, PartFile>,
}

/// Everything found under a root.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Discovery {
    pub bundles: Vec<BundleSource>,
    /// Files and folders that are not parts of any bundle, with why they were passed over.
    pub ignored: Vec<Ignored>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ignored {
    #[serde(serialize_with = "lossy_path")]
    pub path: PathBuf,
    pub why: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0} is not a folder (give a bundle folder, a wallet folder or a folder of wallet folders)"
    )]
    NotAFolder(PathBuf),
}

/// Serialises a path as text, replacing bytes that are not UTF-8 (a file name in a raw tree can
/// hold anything; a report about it must still be written).
pub fn lossy_path<S: serde::Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}

/// Lists the bundles under `root`.
///
/// - Parts directly in `root`: one folder of bundles. Its name is the key wallet when it is a valid
///   wallet (a `{wallet}/` folder of the raw bucket), otherwise the wallet comes from meta alone.
/// - Parts in sub-folders of `root`: a raw-bucket tree; each sub-folder's name is the key wallet
///   and is validated as one.
///
/// Bundles come out sorted by wallet folder, then session id.
pub fn discover(root: &Path) -> Result<Discovery, DiscoverError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DiscoverError::Io { path, source }
    };
    let metadata = std::fs::metadata(root).map_err(io(root))?;
    if !metadata.is_dir() {
        return Err(DiscoverError::NotAFolder(root.to_path_buf()));
    }

    let mut discovery = Discovery::default();
    let top = scan_folder(root, &mut discovery.ignored)?;
    if !top.parts.is_empty() {
        let key_wallet = root
            .canonicalize()
            .ok()
            .and_then(|path| {
                path.file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .filter(|name| WalletAddress::parse(name).is_ok());
        group(root, key_wallet, top.parts, &mut discovery.bundles);
    }
    for folder in top.subfolders {
        let scan = scan_folder(&folder, &mut discovery.ignored)?;
        for deeper in scan.subfolders {
            discovery.ignored.push(Ignored {
                path: deeper,
                why: "folder nested below a wallet folder".to_owned(),
            });
        }
        if scan.parts.is_empty() {
            continue;
        }
        let key_wallet = folder
            .file_name()
            .map(|name| name.to_string_lossy().into_owned());
        group(&folder, key_wallet, scan.parts, &mut discovery.bundles);
    }
    Ok(discovery)
}

/// What one folder holds: its part files and its sub-folders, in name order.
#[derive(Debug, Default)]
struct FolderScan {
    parts: Vec<(PartName, PartFile)>,
    subfolders: Vec<PathBuf>,
}

fn scan_folder(folder: &Path, ignored: &mut Vec<Ignored>) -> Result<FolderScan, DiscoverError> {
    let io = |source| DiscoverError::Io {
        path: folder.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(folder)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|entry| entry.file_name());

    let mut scan = FolderScan::default();
    for entry in entries {
        let path = entry.path();
        let file_type = entry.file_type().map_err(io)?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            ignored.push(Ignored {
                path,
                why: "file name is not UTF-8".to_owned(),
            });
            continue;
        };
        if file_type.is_dir() {
            scan.subfolders.push(path);
            continue;
        }
        let Some(name) = PartName::parse(&file_name) else {
            if file_type.is_symlink() {
                ignored.push(Ignored {
                    path,
                    why: "symlink, not followed".to_owned(),
                });
            } else if !file_name.starts_with('.') {
                ignored.push(Ignored {
                    path,
                    why: "not named like a bundle part".to_owned(),
                });
            }
            continue;
        };
        let is_symlink = file_type.is_symlink();
        if !is_symlink && !file_type.is_file() {
            ignored.push(Ignored {
                path,
                why: "not a regular file".to_owned(),
            });
            continue;
        }
        let size_bytes = if is_symlink {
            0
        } else {
            entry.metadata().map_err(io)?.len()
        };
        scan.parts.push((
            name.clone(),
            PartFile {
                path,
                file_name,
                upload_epoch_ms: name.upload_epoch_ms,
                size_bytes,
                is_symlink,
                superseded: Vec::new(),
            },
        ));
    }
    Ok(scan)
}

/// Which of two uploads of the same part counts: the greater of these keys (the later upload
/// epoch, then the name), as a second PUT of the same key would replace the first in S3. Local
/// discovery and the server's worker both pick a session's parts by it.
pub fn upload_order(upload_epoch_ms: Option<u64>, file_name: &str) -> (u64, &str) {
    (upload_epoch_ms.unwrap_or(0), file_name)
}

fn group(
    folder: &Path,
    key_wallet: Option<String>,
    parts: Vec<(PartName, PartFile)>,
    bundles: &mut Vec<BundleSource>,
) {
    let mut by_session: BTreeMap<String, BTreeMap<PartKind, PartFile>> = BTreeMap::new();
    for (name, file) in parts {
        let session = by_session.entry(name.session_id).or_default();
        match session.remove(&name.kind) {
            None => {
                session.insert(name.kind, file);
            }
            Some(other) => {
                // The later upload replaces the earlier one, as a second PUT would in S3.
                let later = upload_order(file.upload_epoch_ms, &file.file_name)
                    >= upload_order(other.upload_epoch_ms, &other.file_name);
                let (mut newer, older) = if later { (file, other) } else { (other, file) };
                newer.superseded.extend(older.superseded);
                newer.superseded.push(older.file_name);
                session.insert(name.kind, newer);
            }
        }
    }
    for (session_id, parts) in by_session {
        bundles.push(BundleSource {
            folder: folder.to_path_buf(),
            key_wallet: key_wallet.clone(),
            session_id,
            parts,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALLET: &str = "Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR";

    fn touch(dir: &Path, name: &str) {
        std::fs::write(dir.join(name), b"x").unwrap();
    }

    #[test]
    fn groups_sessions_in_both_key_forms() {
        let tmp = tempfile::tempdir().unwrap();
        let wallet = tmp.path().join(WALLET);
        std::fs::create_dir(&wallet).unwrap();
        touch(&wallet, "1769936467514_session_1_a.webm");
        touch(&wallet, "1769936474140_session_1_a_inputs.json");
        touch(&wallet, "session_2_b_meta.json");
        touch(&wallet, "session_2_b.webm");
        touch(&wallet, "README.txt");

        let found = discover(tmp.path()).unwrap();
        assert_eq!(found.bundles.len(), 2);
        let first = &found.bundles[0];
        assert_eq!(first.session_id, "session_1_a");
        assert_eq!(first.key_wallet.as_deref(), Some(WALLET));
        assert_eq!(
            first.parts[&PartKind::Video].upload_epoch_ms,
            Some(1_769_936_467_514)
        );
        assert_eq!(found.bundles[1].parts.len(), 2);
        assert_eq!(found.ignored.len(), 1);

        // Pointing at the wallet folder itself finds the same bundles, with the same key wallet.
        let direct = discover(&wallet).unwrap();
        assert_eq!(direct.bundles.len(), 2);
        assert_eq!(direct.bundles[0].key_wallet.as_deref(), Some(WALLET));
    }

    #[test]
    fn plain_bundle_folder_has_no_key_wallet() {
        let tmp = tempfile::tempdir().unwrap();
        touch(tmp.path(), "session_2_b_meta.json");
        let found = discover(tmp.path()).unwrap();
        assert_eq!(found.bundles[0].key_wallet, None);
    }

    #[test]
    fn later_upload_supersedes_earlier() {
        let tmp = tempfile::tempdir().unwrap();
        touch(tmp.path(), "200_session_1_a_meta.json");
        touch(tmp.path(), "100_session_1_a_meta.json");
        let found = discover(tmp.path()).unwrap();
        let meta = &found.bundles[0].parts[&PartKind::Meta];
        assert_eq!(meta.upload_epoch_ms, Some(200));
        assert_eq!(
            meta.superseded,
            vec!["100_session_1_a_meta.json".to_owned()]
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_part_is_flagged_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("session_1_a_meta.json"))
            .unwrap();
        std::os::unix::fs::symlink("/etc", tmp.path().join("elsewhere")).unwrap();
        let found = discover(tmp.path()).unwrap();
        assert!(found.bundles[0].parts[&PartKind::Meta].is_symlink);
        assert_eq!(found.ignored.len(), 1);
        assert_eq!(found.ignored[0].why, "symlink, not followed");
    }

    #[test]
    fn missing_root_is_an_error() {
        assert!(discover(Path::new("/definitely/not/here")).is_err());
    }
}
