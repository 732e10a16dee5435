//! `scale-diffusion inspect`: load every bundle under a path and report it, for people or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use sd_core::{AlignConfig, Ignored, Limits, SessionReport, TimelineConfig};
use serde::Serialize;

use crate::args::InspectArgs;

/// The whole `inspect --json` document.
#[derive(Debug, Serialize)]
struct InspectOutput<'a> {
    root: &'a Path,
    summary: Summary,
    sessions: Vec<SessionReport>,
    ignored: Vec<Ignored>,
}

#[derive(Debug, Serialize)]
struct Summary {
    sessions: usize,
    usable: usize,
    rejected: usize,
    /// Rejected sessions per reject code.
    rejected_by_code: BTreeMap<String, usize>,
    segments: usize,
    segments_passed: usize,
    /// Failed segments per failing check (a segment can fail several).
    segments_failed_by_check: BTreeMap<String, usize>,
}

pub fn run(args: &InspectArgs) -> anyhow::Result<std::process::ExitCode> {
    let quality = crate::config::load(args.config.as_deref())?.quality;
    let discovery = sd_core::discover(&args.path)?;
    let limits = Limits::default();
    // One stall limit for the video report and for SPLICE.
    let config = AlignConfig {
        timeline: TimelineConfig {
            stall_ms: quality.splice.stall_ms,
        },
        ..AlignConfig::default()
    };
    let timeline = &config.timeline;
    let sessions: Vec<SessionReport> = discovery
        .bundles
        .iter()
        .map(|source| {
            tracing::info!(session = %source.session_id, "loading");
            sd_core::report(&sd_core::load_bundle(source, &limits), &config, &quality)
        })
        .collect();

    let mut rejected_by_code = BTreeMap::new();
    for reason in sessions.iter().filter_map(|s| s.reject_reason.as_ref()) {
        *rejected_by_code
            .entry(reason.code().to_owned())
            .or_default() += 1;
    }
    let usable = sessions.iter().filter(|s| s.usable).count();
    let verdicts: Vec<&sd_core::SegmentVerdict> =
        sessions.iter().flat_map(|s| &s.segments).collect();
    let mut segments_failed_by_check = BTreeMap::new();
    for check in verdicts.iter().flat_map(|v| &v.quality.failed) {
        *segments_failed_by_check.entry(name(check)).or_default() += 1;
    }
    let output = InspectOutput {
        root: &args.path,
        summary: Summary {
            sessions: sessions.len(),
            usable,
            rejected: sessions.len() - usable,
            rejected_by_code,
            segments: verdicts.len(),
            segments_passed: verdicts.iter().filter(|v| v.quality.passed).count(),
            segments_failed_by_check,
        },
        sessions,
        ignored: discovery.ignored,
    };

    let text = if args.json {
        serde_json::to_string_pretty(&output)? + "\n"
    } else {
        render(&output, timeline)
    };
    crate::output::print(&text)?;
    Ok(std::process::ExitCode::SUCCESS)
}

fn render(output: &InspectOutput<'_>, timeline: &TimelineConfig) -> String {
    let mut out = String::new();
    if output.sessions.is_empty() {
        let _ = writeln!(
            out,
            "no bundles under {} (parts are named {{sid}}.webm, {{sid}}_meta.json, ... optionally prefixed by {{upload_epoch_ms}}_)",
            output.root.display()
        );
    }
    for session in &output.sessions {
        render_session(&mut out, session, timeline);
        out.push('\n');
    }
    for ignored in &output.ignored {
        let _ = writeln!(out, "ignored  {} ({})", ignored.path.display(), ignored.why);
    }
    let summary = &output.summary;
    let _ = write!(
        out,
        "{} session{}: {} usable, {} rejected",
        summary.sessions,
        plural(summary.sessions),
        summary.usable,
        summary.rejected
    );
    if !summary.rejected_by_code.is_empty() {
        let codes: Vec<String> = summary
            .rejected_by_code
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        let _ = write!(out, " ({})", codes.join(", "));
    }
    let _ = write!(
        out,
        "; {} segment{}: {} pass",
        summary.segments,
        plural(summary.segments),
        summary.segments_passed
    );
    if !summary.segments_failed_by_check.is_empty() {
        let checks: Vec<String> = summary
            .segments_failed_by_check
            .iter()
            .map(|(check, n)| format!("{check}: {n}"))
            .collect();
        let _ = write!(out, ", failing checks {}", checks.join(", "));
    }
    out.push('\n');
    out
}

fn render_session(out: &mut String, s: &SessionReport, timeline: &TimelineConfig) {
    match &s.reject_message {
        None => {
            let _ = writeln!(out, "{}  usable", s.session_id);
        }
        Some(message) => {
            let _ = writeln!(out, "{}  REJECTED: {message}", s.session_id);
        }
    }
    for problem in &s.other_problems {
        let _ = writeln!(out, "  also     {problem}");
    }
    let _ = writeln!(
        out,
        "  wallet   {}",
        s.wallet.as_deref().unwrap_or("(unknown)")
    );

    let mut parts: Vec<String> = s
        .parts
        .iter()
        .map(|p| format!("{} {}", p.part, human_bytes(p.size_bytes)))
        .collect();
    parts.extend(s.missing_parts.iter().map(|p| format!("{p} MISSING")));
    let _ = write!(out, "  parts    {}", parts.join(" · "));
    let epochs: Vec<u64> = s.parts.iter().filter_map(|p| p.upload_epoch_ms).collect();
    if let (Some(first), Some(last)) = (epochs.iter().min(), epochs.iter().max()) {
        let _ = write!(
            out,
            "  (uploaded {} → {})",
            epoch(*first as f64),
            epoch(*last as f64)
        );
    }
    out.push('\n');
    for part in s.parts.iter().filter(|p| !p.superseded.is_empty()) {
        let _ = writeln!(
            out,
            "           {} replaces earlier upload(s): {}",
            part.file_name,
            part.superseded.join(", ")
        );
    }

    if let Some(meta) = &s.meta {
        let mut fields = Vec::new();
        if let Some(prompt) = &meta.prompt {
            fields.push(format!("{prompt:?}"));
        }
        if let Some(scenario) = &meta.scenario_id {
            fields.push(format!("scenario {scenario}"));
        }
        if let Some(duration) = meta.duration_ms {
            fields.push(format!("duration {}", seconds(duration)));
        }
        fields.push(match meta.start_time_epoch_ms {
            Some(start) => format!("started {}", epoch(start)),
            None => "startTime null".to_owned(),
        });
        if let Some(r) = meta.recording_start_t_ms {
            fields.push(format!("recordingStartT {}", seconds(r)));
        }
        let _ = writeln!(out, "  meta     {}", fields.join(" · "));
    }

    if let Some(video) = &s.video {
        let h = &video.health;
        let mut line = format!(
            "  video    {} {}x{} · {} frames",
            video.codec, video.width, video.height, h.frames
        );
        if h.distinct_timestamps < h.frames {
            let _ = write!(line, " ({} distinct timestamps)", h.distinct_timestamps);
        }
        let _ = write!(line, " over {}", seconds(h.span_ms));
        if let Some(fps) = h.effective_fps {
            let _ = write!(line, " · {fps:.1} fps effective");
        }
        if let Some(step) = h.median_frame_interval_ms {
            let _ = write!(
                line,
                " (median step {step:.0} ms between distinct timestamps)"
            );
        }
        if video.decode_errors > 0 {
            let _ = write!(line, " · {} decode errors", video.decode_errors);
        }
        let _ = writeln!(out, "{line}");
        match h.stalls.iter().max_by(|a, b| a.gap_ms.total_cmp(&b.gap_ms)) {
            Some(longest) => {
                let _ = writeln!(
                    out,
                    "           {} stall{} > {}, longest {} ({} → {})",
                    h.stalls.len(),
                    plural(h.stalls.len()),
                    seconds(timeline.stall_ms),
                    seconds(longest.gap_ms),
                    seconds(longest.from_pts_ms),
                    seconds(longest.to_pts_ms)
                );
            }
            None => {
                let _ = writeln!(out, "           no stall > {}", seconds(timeline.stall_ms));
            }
        }
        match h.bursts.iter().max_by_key(|b| b.frames) {
            Some(longest) => {
                let _ = writeln!(
                    out,
                    "           {} repeated-timestamp burst{}, {} frames in all, longest {} frames at {}",
                    h.bursts.len(),
                    plural(h.bursts.len()),
                    h.burst_frames,
                    longest.frames,
                    seconds(longest.pts_ms)
                );
            }
            None => {
                let _ = writeln!(out, "           no repeated timestamps");
            }
        }
        if h.frames_without_pts > 0 || h.backwards_steps > 0 {
            let _ = writeln!(
                out,
                "           {} frames without a timestamp, {} backwards steps",
                h.frames_without_pts, h.backwards_steps
            );
        }
    }

    if let Some(alignment) = &s.alignment {
        render_alignment(out, alignment);
        render_segments(out, s);
    }

    if s.inputs.is_some() || s.camera.is_some() || s.latency.is_some() {
        let _ = writeln!(out, "  page clock (performance.now)");
    }
    if let Some(inputs) = &s.inputs {
        let keys: Vec<&str> = inputs.keys.keys().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "    inputs   {}  {} events: {} keydown, {} keyup, {} mouse{} · keys {} · {} driving keydowns · {} keyup{} without keydown",
            span(&inputs.span),
            inputs.span.count,
            inputs.keydowns,
            inputs.keyups,
            inputs.mouse_events,
            if inputs.other_events > 0 { format!(", {} other", inputs.other_events) } else { String::new() },
            if keys.is_empty() { "none".to_owned() } else { keys.join(" ") },
            inputs.driving_keydowns,
            inputs.keyups_without_keydown,
            plural(inputs.keyups_without_keydown),
        );
    }
    if let Some(camera) = &s.camera {
        let _ = writeln!(
            out,
            "    camera   {}  {} samples, longest gap {}, {} moving, path {:.1} units",
            span(&camera.span),
            camera.span.count,
            camera.span.longest_gap_ms.map_or("-".to_owned(), seconds),
            camera.moving_samples,
            camera.path_length
        );
    }
    if let Some(latency) = &s.latency {
        let rtt = match (latency.min_rtt_ms, latency.max_rtt_ms) {
            (Some(min), Some(max)) => format!("RTT {min:.0}-{max:.0} ms"),
            _ => "no RTT".to_owned(),
        };
        let _ = writeln!(
            out,
            "    latency  {}  {} samples, {rtt}, avgRtt {}, initialLatency {}",
            span(&latency.span),
            latency.span.count,
            latency
                .avg_rtt_ms
                .map_or("null".to_owned(), |v| format!("{v:.1} ms")),
            latency
                .initial_latency_ms
                .map_or("null".to_owned(), |v| format!("{v:.1} ms")),
        );
    }
}

fn render_segments(out: &mut String, s: &SessionReport) {
    let passed = s.segments.iter().filter(|v| v.quality.passed).count();
    let _ = writeln!(
        out,
        "  segments {} cut, {passed} pass · {} stretch{} left out ({})",
        s.segments.len(),
        s.skipped.len(),
        if s.skipped.len() == 1 { "" } else { "es" },
        {
            let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
            for skip in &s.skipped {
                *kinds.entry(name(&skip.kind)).or_default() += 1;
            }
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            if kinds.is_empty() {
                "none".to_owned()
            } else {
                kinds.join(", ")
            }
        }
    );
    for v in &s.segments {
        let verdict = if v.quality.passed { "PASS" } else { "FAIL" };
        let _ = write!(
            out,
            "           segment_{:03} video {} → {} ({} frames) {verdict}",
            v.index,
            seconds(v.start_pts_ms),
            seconds(v.end_pts_ms),
            v.frames
        );
        let reasons: Vec<&str> = v
            .quality
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.reason.as_str())
            .collect();
        if !reasons.is_empty() {
            let _ = write!(out, ": {}", reasons.join("; "));
        }
        out.push('\n');
    }
}

fn render_alignment(out: &mut String, a: &sd_core::AlignmentOverview) {
    let _ = writeln!(
        out,
        "  clock    S = page time (performance.now) whose input shows at video time 0 · latency model {} (mean {:.1} ms){}",
        name(&a.latency_source),
        a.latency_mean_ms,
        a.recording_start_t_ms.map_or(String::new(), |r| format!(
            " · recordingStartT {}",
            seconds(r)
        ))
    );
    let _ = writeln!(
        out,
        "           prior from {} (confidence {:.2}): S = {} ± {}",
        name(&a.prior.basis),
        a.prior.confidence,
        seconds(a.prior.offset_ms),
        seconds(a.prior.uncertainty_ms),
    );
    for run in &a.runs {
        let mut line = format!(
            "           run {} (frames {}-{}, video {} → {}): S = {} from {}, confidence {:.2}",
            run.run,
            run.first_frame,
            run.last_frame,
            seconds(run.first_pts_ms),
            seconds(run.last_pts_ms),
            seconds(run.offset_ms),
            name(&run.source),
            run.confidence
        );
        match (
            run.motion_offset_ms,
            run.motion_confidence,
            run.motion_pairs,
        ) {
            (Some(offset), Some(confidence), Some(pairs)) => {
                let _ = write!(
                    line,
                    " (motion fit {} over {pairs} frame pairs, confidence {confidence:.2})",
                    seconds(offset)
                );
            }
            _ => line.push_str(" (too little motion to fit)"),
        }
        if let Some(lag) = &run.lag {
            let _ = write!(line, " · {}", lag.describe());
        }
        if run.confidence < 0.2 {
            line.push_str(" · LOW: labels not trusted");
        }
        let _ = writeln!(out, "{line}");
    }
    let x = &a.actions;
    let _ = writeln!(
        out,
        "  actions  {} of {} frames timed ({} in bursts{}) · frames with W {}, A {}, S {}, D {} held · with mouse movement {} · with a camera pose {} ({} across camera gaps) · moving {}",
        x.measured_frames,
        x.frames,
        x.burst_frames,
        if x.frames_without_pts > 0 { format!(", {} without PTS", x.frames_without_pts) } else { String::new() },
        x.frames_with_w,
        x.frames_with_a,
        x.frames_with_s,
        x.frames_with_d,
        x.frames_with_mouse,
        x.frames_with_pose,
        x.frames_with_pose_from_gap,
        x.frames_moving
    );
}

/// The name a value has in the JSON output (`rtt_samples`, `motion_correlation`...).
pub(crate) fn name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => "?".to_owned(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

pub(crate) fn seconds(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}

fn span(span: &sd_core::LogSpan) -> String {
    match (span.first_t_ms, span.last_t_ms) {
        (Some(first), Some(last)) => format!("{:>7.2} → {:>7.2} s", first / 1000.0, last / 1000.0),
        _ => format!("{:>19}", "(empty)"),
    }
}

fn epoch(ms: f64) -> String {
    if !(0.0..4.0e12).contains(&ms) {
        return format!("{ms} (epoch ms)");
    }
    let time = UNIX_EPOCH + Duration::from_millis(ms as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        0..=999 => format!("{bytes} B"),
        1_000..=999_999 => format!("{:.1} KB", bytes as f64 / 1e3),
        _ => format!("{:.2} MB", bytes as f64 / 1e6),
    }
}
