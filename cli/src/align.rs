//! `scale-diffusion align`: one bundle in, its frame table out.

use std::process::ExitCode;

use anyhow::Context as _;
use sd_core::{AlignConfig, AlignedFile, Limits};

use crate::args::AlignArgs;
use crate::inspect::{name, seconds};

pub fn run(args: &AlignArgs) -> anyhow::Result<ExitCode> {
    let discovery = sd_core::discover(&args.bundle)?;
    let source = select_session(&discovery, &args.bundle, args.session.as_deref())?;

    let bundle = match sd_core::load_bundle(source, &Limits::default()).into_bundle() {
        Ok(bundle) => bundle,
        Err(reason) => {
            eprintln!(
                "{}: REJECTED ({}): {reason}",
                source.session_id,
                reason.code()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let alignment = sd_core::align(&bundle, &AlignConfig::default());
    let file = AlignedFile::new(&bundle, alignment);
    let json = serde_json::to_vec_pretty(&file)?;
    crate::output::write_atomic(&args.out, &json)?;

    let clock = &file.alignment.clock;
    let summary = &file.alignment.summary;
    let mut text = format!(
        "{}: {} frames ({} timed) -> {}\n",
        file.session_id,
        summary.frames,
        summary.measured_frames,
        args.out.display()
    );
    for run in &clock.runs {
        text.push_str(&format!(
            "  run {} frames {}-{}: S = {} from {}, confidence {:.2}\n",
            run.run,
            run.first_frame,
            run.last_frame,
            seconds(run.offset_ms),
            name(&run.source),
            run.confidence
        ));
    }
    crate::output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// The one bundle of `discovery` a command works on: the only one, or the one `--session` names.
pub(crate) fn select_session<'a>(
    discovery: &'a sd_core::Discovery,
    path: &std::path::Path,
    session: Option<&str>,
) -> anyhow::Result<&'a sd_core::BundleSource> {
    let ids: Vec<&str> = discovery
        .bundles
        .iter()
        .map(|b| b.session_id.as_str())
        .collect();
    match (session, discovery.bundles.as_slice()) {
        (_, []) => anyhow::bail!("no bundle in {}", path.display()),
        (None, [only]) => Ok(only),
        (None, _) => anyhow::bail!(
            "{} holds {} sessions; choose one with --session: {}",
            path.display(),
            ids.len(),
            ids.join(", ")
        ),
        (Some(wanted), bundles) => bundles
            .iter()
            .find(|b| b.session_id == wanted)
            .with_context(|| {
                format!(
                    "no session {wanted} in {}: found {}",
                    path.display(),
                    ids.join(", ")
                )
            }),
    }
}
