//! `scale-diffusion-server export` against a real S3 emulator: the clean bucket, read through its
//! manifests, exported as WebDataset gives the same shards as `sd_export` on the local layout the
//! bucket was published from; a session whose object does not match its manifest is named and
//! not exported; a session taken out of the bucket leaves the export on the next run.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use sd_core::{SessionManifest, MANIFEST_FILE};

/// Publishes every session of a local clean layout into the clean bucket, manifest last; `edit`
/// may change an object's bytes on the way (what a broken or hostile bucket would serve).
fn publish(
    emulator: &Emulator,
    clean: &Path,
    edit: impl Fn(&str, Vec<u8>) -> Vec<u8>,
) -> Vec<String> {
    let mut sessions = Vec::new();
    for wallet in std::fs::read_dir(clean).expect("clean layout").flatten() {
        for session in std::fs::read_dir(wallet.path()).expect("wallet").flatten() {
            let folder = session.path();
            let bytes = std::fs::read(folder.join(MANIFEST_FILE)).expect("manifest");
            let manifest: SessionManifest = serde_json::from_slice(&bytes).expect("manifest");
            let prefix = format!("{}/{}/", manifest.wallet, manifest.session_id);
            for object in manifest.objects() {
                let key = format!("{prefix}{}", object.path);
                let body = edit(
                    &key,
                    std::fs::read(folder.join(&object.path)).expect("object"),
                );
                emulator.put("sd-clean", &key, &body, "application/octet-stream");
            }
            emulator.put(
                "sd-clean",
                &format!("{prefix}{MANIFEST_FILE}"),
                &bytes,
                "application/json",
            );
            sessions.push(prefix);
        }
    }
    sessions.sort();
    sessions
}

/// Every member of every shard in `out`: name -> bytes.
fn members(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(out).expect("export folder").flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "tar") {
            continue;
        }
        let file = std::fs::File::open(&path).expect("shard");
        for member in tar::Archive::new(file).entries().expect("tar") {
            let mut member = member.expect("member");
            let name = member.path().expect("name").to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut member, &mut bytes).expect("read member");
            assert!(found.insert(name.clone(), bytes).is_none(), "{name} twice");
        }
    }
    found
}

fn export(emulator: &Emulator, mirror: &Path, out: &Path) -> std::process::Output {
    emulator
        .server(&[
            "export",
            "--format",
            "webdataset",
            "--mirror",
            mirror.to_str().expect("utf-8"),
            out.to_str().expect("utf-8"),
        ])
        .output()
        .expect("run export")
}

#[test]
fn the_clean_bucket_exports_as_its_local_layout_does_and_a_bad_object_is_named() {
    let test = "the_clean_bucket_exports_as_its_local_layout_does";
    let dir = test_dir("export_bucket");
    let Some(emulator) = Emulator::start(test, &dir) else {
        return;
    };
    emulator.setup(&[]);
    let wallet_dir = synthetic_bundles(&dir, 3, 12.0, 10.0, 41);
    let (clean, _review, _ledger) = process_locally(&wallet_dir, &dir.join("local"));

    // The same layout exported locally, in process.
    let local_out = dir.join("local-export");
    let options = sd_export::ExportOptions {
        format: sd_export::Format::WebDataset,
        ..sd_export::ExportOptions::default()
    };
    let local = sd_export::export(
        &sd_export::LocalClean::new(&clean).expect("clean layout"),
        &local_out,
        &options,
    )
    .expect("local export");
    assert!(local.episodes > 0 && local.problems.is_empty(), "{local:?}");

    // One session's first frame is served with other bytes than its manifest lists.
    let first = std::sync::Mutex::new(None::<String>);
    let sessions = publish(&emulator, &clean, |key, mut body| {
        let mut first = first.lock().expect("lock");
        if key.ends_with(".jpg") && first.as_deref().is_none_or(|f| key.starts_with(f)) {
            let session_prefix: String = key.split('/').take(2).collect::<Vec<_>>().join("/");
            if first.is_none() {
                *first = Some(session_prefix);
                let middle = body.len() / 2;
                body[middle] ^= 0xff;
            }
        }
        body
    });
    assert_eq!(sessions.len(), 3);
    let mirror = dir.join("mirror");
    let out = dir.join("bucket-export");
    let output = export(&emulator, &mirror, &out);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a bad object must fail the run\n{stdout}\n{stderr}"
    );
    let bad = first
        .lock()
        .expect("lock")
        .clone()
        .and_then(|prefix| prefix.rsplit('/').next().map(str::to_owned))
        .expect("a frame was corrupted");
    assert!(
        stdout.contains(&format!("{bad}: not mirrored")) && stdout.contains("SHA-256"),
        "the session with the bad object is named with why\n{stdout}\n{stderr}"
    );

    // The bucket served right: the same shards, byte for byte, as the local export.
    publish(&emulator, &clean, |_, body| body);
    let output = export(&emulator, &mirror, &out);
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Shards differ in how samples fell into them (the first run left one out); every member's
    // name and bytes are the same.
    let (from_bucket, from_local) = (members(&out), members(&local_out));
    assert_eq!(
        from_bucket.keys().filter(|k| k.ends_with(".json")).count(),
        local.episodes
    );
    assert!(
        from_bucket == from_local,
        "the bucket's export differs from the local layout's"
    );

    // A session taken out of the bucket leaves the export.
    let gone = &sessions[1];
    for key in emulator.list_keys("sd-clean", gone) {
        emulator.delete("sd-clean", &key);
    }
    let output = export(&emulator, &mirror, &out);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("0 added, 0 changed,") && !stdout.contains(" 0 removed"),
        "{stdout}"
    );
    report_figure(&format!(
        "export from the clean bucket: {}",
        stdout.trim().replace('\n', "; ")
    ));
}
