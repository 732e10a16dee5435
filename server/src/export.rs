//! `export`: the clean bucket as training data. Each session the bucket publishes is mirrored
//! into a local layout through its manifests (`sd_bucket::mirror_session`: objects checked, the
//! unchanged ones kept, what the bucket no longer lists removed), then the same export as
//! `scale-diffusion export` runs on that layout (`sd_export`). A session that cannot be mirrored
//! is named; the export reads its segments whose local copy no longer matches their manifest as
//! unreadable (kept as they were, or the run changes nothing: docs/EXPORT.md).

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use sd_bucket::{mirror_session, published_sessions, Clients, MirrorDirs, SessionRef};
use sd_export::LocalClean;

use crate::args::ExportArgs;

pub async fn run(clients: &Clients, args: &ExportArgs) -> anyhow::Result<()> {
    let options = args.request.options().map_err(anyhow::Error::msg)?;
    let bucket = &args.resources.clean_bucket;
    let dirs = MirrorDirs::under(&args.mirror);
    std::fs::create_dir_all(&dirs.clean)
        .with_context(|| format!("cannot create {}", dirs.clean.display()))?;

    let started = Instant::now();
    let (mut sessions, mut problems) = published_sessions(&clients.s3, bucket)
        .await
        .with_context(|| format!("listing s3://{bucket}"))?;
    // Sessions mirrored before that the bucket no longer publishes: mirroring them removes them.
    for session in local_sessions(&dirs.clean) {
        if !sessions.contains(&session) {
            sessions.push(session);
        }
    }
    let (mut fetched, mut fetched_bytes) = (0, 0);
    for session in &sessions {
        match mirror_session(&clients.s3, bucket, session, &dirs).await {
            Ok(mirrored) => {
                fetched += mirrored.fetched;
                fetched_bytes += mirrored.fetched_bytes;
            }
            Err(err) => problems.push(format!(
                "{session}: not mirrored ({err}); its last copy stays"
            )),
        }
    }
    tracing::info!(
        sessions = sessions.len(),
        fetched,
        fetched_bytes,
        "mirrored s3://{bucket} into {}",
        args.mirror.display()
    );
    let clean = dirs.clean.clone();
    let out = args.out.clone();
    let export_options = options.clone();
    let summary = tokio::task::spawn_blocking(move || {
        let source = LocalClean::new(&clean)?;
        sd_export::export(&source, &out, &export_options)
    })
    .await
    .context("the export's thread")?
    .with_context(|| format!("exporting into {}", args.out.display()))?;
    let mut summary = summary;
    problems.append(&mut summary.problems);
    summary.problems = problems;
    println!(
        "mirrored {} sessions from s3://{bucket} ({fetched} objects, {:.1} MB fetched)",
        sessions.len(),
        fetched_bytes as f64 / 1e6
    );
    println!(
        "{}",
        summary.describe(options.format, &args.out, started.elapsed().as_secs_f64())
    );
    anyhow::ensure!(
        summary.problems.is_empty(),
        "{} sessions or segments not exported",
        summary.problems.len()
    );
    Ok(())
}

/// `{clean}/{wallet}/{session}` folders already mirrored, as sessions.
fn local_sessions(clean: &Path) -> Vec<SessionRef> {
    let mut found = Vec::new();
    let Ok(wallets) = std::fs::read_dir(clean) else {
        return found;
    };
    for wallet in wallets.flatten() {
        let Ok(sessions) = std::fs::read_dir(wallet.path()) else {
            continue;
        };
        for session in sessions.flatten() {
            let (w, s) = (wallet.file_name(), session.file_name());
            if let Ok(session) = SessionRef::parse(&w.to_string_lossy(), &s.to_string_lossy()) {
                found.push(session);
            }
        }
    }
    found
}
