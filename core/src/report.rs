//! The visual session report: one self-contained HTML page (inline SVG, thumbnails as data URIs,
//! no script, no external file) drawn from the [`SessionFile`] the pipeline writes, so that no
//! metric is computed twice. Pure: data in, text out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;

use crate::clean::QualityConfig;
use crate::clock::RunClock;
use crate::outputs::{FrameMetrics, SessionFile};

/// Small JPEGs of some frames, by frame index, to show in the segment strips.
pub type Thumbnails = BTreeMap<usize, Vec<u8>>;

/// Frames shown per segment strip.
pub const THUMBNAILS_PER_SEGMENT: usize = 6;

/// Which frames of a session the report shows as thumbnails: a few spread over each segment.
pub fn thumbnail_frames(session: &SessionFile) -> Vec<usize> {
    let mut frames = Vec::new();
    for segment in &session.segments {
        let span = segment.last_frame.saturating_sub(segment.first_frame);
        let n = THUMBNAILS_PER_SEGMENT.min(span + 1);
        for i in 0..n {
            let step = if n > 1 { span * i / (n - 1) } else { 0 };
            frames.push(segment.first_frame + step);
        }
    }
    frames.dedup();
    frames
}

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 120.0;
const RIGHT: f64 = 20.0;
const TRACK: f64 = 26.0;

/// Text safe inside HTML (and SVG) elements and attributes.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn seconds(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}

/// Maps video time to x.
#[derive(Debug, Clone, Copy)]
struct Axis {
    start_ms: f64,
    end_ms: f64,
}

impl Axis {
    fn x(&self, ms: f64) -> f64 {
        let span = (self.end_ms - self.start_ms).max(1.0);
        LEFT + (ms - self.start_ms) / span * (WIDTH - LEFT - RIGHT)
    }
}

/// Renders the page.
pub fn render_report(
    session: &SessionFile,
    config: &QualityConfig,
    thumbnails: &Thumbnails,
) -> String {
    let mut html = String::new();
    let title = format!("{} · {}", session.session_id, session.status.as_str());
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(&title)
    );
    header(&mut html, session);
    if session.reject.is_none() {
        timeline(&mut html, session);
        clock(&mut html, session);
        segments(&mut html, session, thumbnails);
        metrics(&mut html, session, config);
    }
    html.push_str("</body></html>\n");
    html
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d232a;background:#fbfbfa}\
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:top}\
th{font-weight:600;color:#555}.pass{color:#1b7f3b;font-weight:600}.fail{color:#b42318;font-weight:600}\
.reject{background:#fdecea;border:1px solid #f5c2c0;padding:8px 12px;margin:12px 0}\
.strip img{height:72px;margin:0 4px 4px 0;border:1px solid #ccc}\
.segment{margin:14px 0;padding:8px 12px;background:#fff;border:1px solid #e3e3e3}\
svg{background:#fff;border:1px solid #e3e3e3;display:block;margin:6px 0}\
.muted{color:#777}code{font-size:12px}.checks{font-size:12px;margin-top:4px}";

fn header(html: &mut String, s: &SessionFile) {
    let _ = write!(
        html,
        "<header><h1>{}</h1><table><tr><th>wallet</th><td><code>{}</code></td></tr>\
         <tr><th>status</th><td class=\"{}\">{}</td></tr>",
        esc(&s.session_id),
        esc(&s.wallet),
        if s.reject.is_some() { "fail" } else { "pass" },
        s.status.as_str()
    );
    if let Some(prompt) = &s.prompt {
        let _ = write!(html, "<tr><th>prompt</th><td>{}</td></tr>", esc(prompt));
    }
    if let Some(scenario) = &s.scenario {
        let _ = write!(html, "<tr><th>scenario</th><td>{}</td></tr>", esc(scenario));
    }
    let parts: Vec<String> = s
        .parts
        .iter()
        .map(|p| format!("{} {}", p.part, human_bytes(p.size_bytes)))
        .collect();
    let _ = write!(
        html,
        "<tr><th>parts</th><td>{}</td></tr><tr><th>processed</th><td>{} ({})</td></tr>",
        esc(&parts.join(" · ")),
        esc(&s.run.processed_at),
        esc(&s.run.run_id)
    );
    if let Some(video) = &s.video {
        let h = &video.health;
        let _ = write!(
            html,
            "<tr><th>video</th><td>{} {}x{} · {} frames over {} · {} stalls, {} burst frames · {} \
             decode errors</td></tr>",
            esc(&video.codec),
            video.width,
            video.height,
            video.frames,
            seconds(h.span_ms),
            h.stalls.len(),
            h.burst_frames,
            video.decode_errors
        );
    }
    html.push_str("</table></header>\n");
    if let Some(reject) = &s.reject {
        let _ = write!(
            html,
            "<section id=\"reject\" class=\"reject\"><b>Rejected ({})</b>: {}",
            esc(&reject.code),
            esc(&reject.message)
        );
        for other in &reject.other_problems {
            let _ = write!(
                html,
                "<br><span class=\"muted\">also: {}</span>",
                esc(other)
            );
        }
        html.push_str("</section>\n");
    }
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        0..=999 => format!("{bytes} B"),
        1_000..=999_999 => format!("{:.1} KB", bytes as f64 / 1e3),
        _ => format!("{:.2} MB", bytes as f64 / 1e6),
    }
}

fn axis_of(frames: &[FrameMetrics]) -> Axis {
    let times = frames.iter().filter_map(|f| f.pts_ms);
    let start_ms = times.clone().fold(f64::INFINITY, f64::min);
    let end_ms = times.fold(f64::NEG_INFINITY, f64::max);
    if start_ms.is_finite() && end_ms.is_finite() {
        Axis { start_ms, end_ms }
    } else {
        Axis {
            start_ms: 0.0,
            end_ms: 1.0,
        }
    }
}

/// A polyline of `(ms, value)` scaled into a track at `top`.
fn line(points: &[(f64, f64)], axis: Axis, top: f64, height: f64, color: &str) -> String {
    let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max).max(1e-9);
    let coords: Vec<String> = points
        .iter()
        .map(|(ms, v)| format!("{:.1},{:.1}", axis.x(*ms), top + height - v / max * height))
        .collect();
    format!(
        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.2\" points=\"{}\"/>",
        coords.join(" ")
    )
}

fn timeline(html: &mut String, s: &SessionFile) {
    let frames = &s.frame_metrics;
    let axis = axis_of(frames);
    let tracks = [
        "frames",
        "W",
        "A",
        "S",
        "D",
        "mouse",
        "speed",
        "yaw rate",
        "video motion",
        "segments",
        "left out",
    ];
    let height = 30.0 + TRACK * tracks.len() as f64 + 24.0;
    let _ = write!(
        html,
        "<section id=\"timeline\"><h2>Timeline</h2><p class=\"muted\">Video time below; page time \
         (performance.now) above, from the clock join. Red ticks: frames whose time is unknown \
         (repeated timestamps). Segments: green pass, red fail (hover for the failing checks). Left \
         out: <span style=\"color:#667085\">■</span> stall, <span style=\"color:#f04438\">■</span> \
         repeated timestamps, <span style=\"color:#7cd4fd\">■</span> idle, \
         <span style=\"color:#d0d5dd\">■</span> too short (hover for the reason).</p><svg width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"timeline\">"
    );
    let track_top = |i: usize| 30.0 + TRACK * i as f64;
    for (i, name) in tracks.iter().enumerate() {
        let _ = write!(
            html,
            "<text x=\"8\" y=\"{:.1}\" font-size=\"11\">{name}</text>\
             <line x1=\"{LEFT}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>",
            track_top(i) + 16.0,
            WIDTH - RIGHT,
            track_top(i) + TRACK,
            track_top(i) + TRACK
        );
    }
    // Axes: video seconds below, page seconds above (at a few frames that have both).
    let bottom = track_top(tracks.len()) + 14.0;
    for k in 0..=10 {
        let ms = axis.start_ms + (axis.end_ms - axis.start_ms) * f64::from(k) / 10.0;
        let _ = write!(
            html,
            "<text x=\"{:.1}\" y=\"{bottom:.1}\" font-size=\"10\" text-anchor=\"middle\">{:.1}</text>",
            axis.x(ms),
            ms / 1000.0
        );
    }
    let mut last_label_x = f64::NEG_INFINITY;
    for f in frames {
        if let (Some(pts), Some(page)) = (f.pts_ms, f.page_t_ms) {
            // Labels at least 70 px apart, so that they never run into each other.
            if axis.x(pts) - last_label_x < 70.0 {
                continue;
            }
            last_label_x = axis.x(pts);
            let _ = write!(
                html,
                "<text x=\"{:.1}\" y=\"18\" font-size=\"10\" text-anchor=\"middle\" fill=\"#555\">{:.1}</text>",
                axis.x(pts),
                page / 1000.0
            );
        }
    }
    // Frame ticks.
    for f in frames {
        let Some(pts) = f.pts_ms else { continue };
        let color = if f.page_t_ms.is_some() {
            "#333"
        } else {
            "#d92d20"
        };
        let _ = write!(
            html,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"0.6\"/>",
            track_top(0) + 4.0,
            track_top(0) + TRACK - 4.0,
            x = axis.x(pts)
        );
    }
    // Keys held, as bars per key.
    for (k, key) in ['w', 'a', 's', 'd'].iter().enumerate() {
        let top = track_top(1 + k);
        for pair in frames.windows(2) {
            let (Some(a), Some(b)) = (pair[0].pts_ms, pair[1].pts_ms) else {
                continue;
            };
            if pair[0]
                .driving_keys
                .as_deref()
                .is_some_and(|keys| keys.contains(*key))
            {
                let _ = write!(
                    html,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#2e6fd8\"/>",
                    axis.x(a),
                    top + 6.0,
                    (axis.x(b) - axis.x(a)).max(0.5),
                    TRACK - 12.0
                );
            }
        }
    }
    let series = |f: &dyn Fn(&FrameMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        frames
            .iter()
            .filter_map(|m| Some((m.pts_ms?, f(m)?)))
            .collect()
    };
    let mouse = series(&|m| Some(m.mouse_dx?.abs() + m.mouse_dy?.abs()));
    let speed = series(&|m| m.speed.map(f64::abs));
    let yaw: Vec<(f64, f64)> = frames
        .windows(2)
        .filter_map(|w| {
            let (a, b) = (w[0].pts_ms?, w[1].pts_ms?);
            let rate = (w[1].yaw? - w[0].yaw?).abs() / ((b - a).max(1.0) / 1000.0);
            Some((b, rate))
        })
        .collect();
    let motion = series(&|m| Some((m.shift_dx_px?.powi(2) + m.shift_dy_px?.powi(2)).sqrt()));
    let inner = TRACK - 6.0;
    for (i, (points, color)) in [
        (&mouse, "#7a3fc4"),
        (&speed, "#1b7f3b"),
        (&yaw, "#b54708"),
        (&motion, "#0e7490"),
    ]
    .into_iter()
    .enumerate()
    {
        html.push_str(&line(points, axis, track_top(5 + i) + 3.0, inner, color));
    }
    // Segments and what was left out.
    for segment in &s.segments {
        let passed = segment.placement.verdict.passed();
        let (x0, x1) = (axis.x(segment.start_pts_ms), axis.x(segment.end_pts_ms));
        let failing: Vec<String> = segment
            .failed
            .iter()
            .map(|c| {
                serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect();
        let _ = write!(
            html,
            "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" opacity=\"0.8\">\
             <title>segment_{:03} {}{}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#fff\">{:03}</text>",
            track_top(9) + 4.0,
            (x1 - x0).max(1.0),
            TRACK - 8.0,
            if passed { "#1b7f3b" } else { "#b42318" },
            segment.segment,
            if passed { "pass" } else { "fail: " },
            esc(&failing.join(", ")),
            x0 + 2.0,
            track_top(9) + 17.0,
            segment.segment
        );
    }
    for skip in &s.skipped {
        let (x0, x1) = (axis.x(skip.start_pts_ms), axis.x(skip.end_pts_ms));
        let kind = serde_json::to_value(skip.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let fill = match skip.kind {
            crate::splice::SkipKind::Stall => "#667085",
            crate::splice::SkipKind::Burst => "#f04438",
            crate::splice::SkipKind::Idle => "#7cd4fd",
            crate::splice::SkipKind::ShortTail => "#d0d5dd",
        };
        let _ = write!(
            html,
            "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\">\
             <title>{}: {}</title></rect>",
            track_top(10) + 4.0,
            (x1 - x0).max(1.0),
            TRACK - 8.0,
            esc(&kind),
            esc(&skip.reason)
        );
    }
    html.push_str("</svg></section>\n");
}

fn clock(html: &mut String, s: &SessionFile) {
    let Some(clock) = &s.clock else { return };
    let prior = &clock.prior;
    let _ = write!(
        html,
        "<section id=\"clock\"><h2>Clock: why the pipeline believes its offset</h2>\
         <p>S is the page time whose input shows at video time 0. Latency model <b>{}</b> (mean \
         {:.1} ms){}. Prior from <b>{}</b>: S = {} ± {} (confidence {:.2}).<br>\
         <span class=\"muted\">{}</span></p>",
        esc(&name(&clock.latency.source)),
        clock.latency.mean_ms,
        clock
            .recording_start_t_ms
            .map_or(String::new(), |r| format!(
                ", recordingStartT {}",
                seconds(r)
            )),
        esc(&name(&prior.basis)),
        seconds(prior.offset_ms),
        seconds(prior.uncertainty_ms),
        prior.confidence,
        esc(&prior.detail)
    );
    for run in &clock.runs {
        run_chart(html, run, prior.offset_ms, prior.uncertainty_ms);
    }
    html.push_str("</section>\n");
}

fn run_chart(html: &mut String, run: &RunClock, prior_ms: f64, prior_pm_ms: f64) {
    let _ = write!(
        html,
        "<p>Run {} (frames {}-{}, video {} → {}): S = <b>{}</b> from <b>{}</b>, confidence \
         <b class=\"{}\">{:.2}</b>{}</p>",
        run.run,
        run.first_frame,
        run.last_frame,
        seconds(run.first_pts_ms),
        seconds(run.last_pts_ms),
        seconds(run.offset_ms),
        esc(&name(&run.source)),
        if run.confidence >= 0.2 {
            "pass"
        } else {
            "fail"
        },
        run.confidence,
        run.lag
            .as_ref()
            .map_or(String::new(), |lag| format!(" · {}", lag.describe()))
    );
    let Some(fit) = &run.motion else {
        html.push_str("<p class=\"muted\">Too little motion to fit an offset.</p>");
        return;
    };
    if fit.scores.is_empty() {
        return;
    }
    let height = 160.0;
    let start = fit.search_start_ms;
    let end = start + fit.search_step_ms * (fit.scores.len().saturating_sub(1)) as f64;
    let axis = Axis {
        start_ms: start,
        end_ms: end.max(start + 1.0),
    };
    let points: Vec<(f64, f64)> = fit
        .scores
        .iter()
        .enumerate()
        .map(|(i, score)| {
            (
                start + fit.search_step_ms * i as f64,
                f64::from(*score).max(0.0),
            )
        })
        .collect();
    let _ = write!(
        html,
        "<svg width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-label=\"offset scores of run {}\">",
        run.run
    );
    let (p0, p1) = (
        axis.x(prior_ms - prior_pm_ms).max(LEFT),
        axis.x(prior_ms + prior_pm_ms).min(WIDTH - RIGHT),
    );
    if p1 > p0 {
        let _ = write!(
            html,
            "<rect x=\"{p0:.1}\" y=\"10\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#fef0c7\"><title>prior ± uncertainty</title></rect>",
            p1 - p0,
            height - 40.0
        );
    }
    html.push_str(&line(&points, axis, 10.0, height - 40.0, "#0e7490"));
    for (ms, color, label, label_y) in [
        (fit.offset_ms, "#0e7490", "motion fit", 36.0),
        (run.offset_ms, "#b42318", "chosen", 22.0),
    ] {
        if (start..=end).contains(&ms) {
            let _ = write!(
                html,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"10\" y2=\"{:.1}\" stroke=\"{color}\" stroke-dasharray=\"4 3\"/>\
                 <text x=\"{:.1}\" y=\"{label_y}\" font-size=\"10\" fill=\"{color}\">{label}</text>",
                height - 30.0,
                axis.x(ms) + 3.0,
                x = axis.x(ms)
            );
        }
    }
    let _ = write!(
        html,
        "<text x=\"8\" y=\"20\" font-size=\"11\">score</text>\
         <text x=\"{LEFT}\" y=\"{:.1}\" font-size=\"10\">{}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{} (candidate S)</text></svg>",
        height - 10.0,
        seconds(start),
        WIDTH - RIGHT,
        height - 10.0,
        seconds(end)
    );
    let channels: Vec<String> = fit
        .channels
        .iter()
        .map(|c| format!("{} r={:.2}", c.channel, c.r))
        .collect();
    let _ = write!(
        html,
        "<p class=\"muted\">Peak score {:.3}, best elsewhere {:.3}, over {} frame pairs ({} moving); \
         {}</p>",
        fit.score,
        fit.second_score,
        fit.pairs,
        fit.moving_pairs,
        esc(&channels.join(", "))
    );
}

fn segments(html: &mut String, s: &SessionFile, thumbnails: &Thumbnails) {
    let _ = write!(
        html,
        "<section id=\"segments\"><h2>Segments ({} cut, {} pass)</h2>",
        s.segments.len(),
        s.segments
            .iter()
            .filter(|x| x.placement.verdict.passed())
            .count()
    );
    if s.segments.is_empty() {
        html.push_str(
            "<p class=\"muted\">No continuous stretch was long enough for a segment.</p>",
        );
    }
    let engine = base64::engine::general_purpose::STANDARD;
    for segment in &s.segments {
        let passed = segment.placement.verdict.passed();
        let _ = write!(
            html,
            "<div class=\"segment\" id=\"segment_{:03}\"><b>segment_{:03}</b> video {} → {} \
             ({} frames) <span class=\"{}\">{}</span> · in {}",
            segment.segment,
            segment.segment,
            seconds(segment.start_pts_ms),
            seconds(segment.end_pts_ms),
            segment.frames,
            if passed { "pass" } else { "fail" },
            if passed { "PASS" } else { "FAIL" },
            segment.placement.location.as_str()
        );
        if let Some(note) = &segment.placement.override_note {
            let _ = write!(
                html,
                " · override by {} at {}: {}",
                esc(&note.by),
                esc(&note.at),
                esc(&note.reason)
            );
        }
        html.push_str("<div class=\"strip\">");
        for (frame, jpeg) in thumbnails.range(segment.first_frame..=segment.last_frame) {
            let _ = write!(
                html,
                "<img alt=\"frame {frame}\" title=\"frame {frame}\" src=\"data:image/jpeg;base64,{}\">",
                engine.encode(jpeg)
            );
        }
        html.push_str(
            "</div><table class=\"checks\"><tr><th>check</th><th>value</th><th>threshold</th>\
             <th></th><th>reason</th></tr>",
        );
        for check in &segment.checks {
            let bound = match check.bound {
                crate::clean::Bound::AtMost => "≤",
                crate::clean::Bound::AtLeast => "≥",
            };
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{:.3}</td><td>{bound} {}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                esc(&name(&check.check)),
                check.value,
                check.threshold,
                if check.passed { "pass" } else { "fail" },
                if check.passed { "pass" } else { "FAIL" },
                esc(&check.reason)
            );
        }
        html.push_str("</table></div>");
    }
    html.push_str("</section>\n");
}

/// One per-frame plot: its title, the value it draws, and CLEAN's thresholds with their meaning.
type MetricPlot<'a> = (
    &'a str,
    &'a dyn Fn(&FrameMetrics) -> Option<f64>,
    Vec<(f64, &'a str)>,
);

/// Per-frame metric plots with the thresholds CLEAN holds them to.
fn metrics(html: &mut String, s: &SessionFile, config: &QualityConfig) {
    let frames = &s.frame_metrics;
    let axis = axis_of(frames);
    let a = &config.artifacts;
    let plots: [MetricPlot<'_>; 3] = [
        (
            "sharpness (Laplacian variance)",
            &|f| f.sharpness.map(f64::from),
            vec![(config.blur.min_sharpness, "blurred below")],
        ),
        (
            "brightness (mean luma)",
            &|f| f.mean_luma.map(f64::from),
            vec![
                (a.black_max_luma, "black below"),
                (a.washed_min_luma, "washed out above"),
            ],
        ),
        (
            "motion (change from the previous frame)",
            &|f| f.change.map(f64::from),
            vec![
                (a.frozen_still_max_change, "still below"),
                (a.frozen_moving_max_change, "still below while moving"),
            ],
        ),
    ];
    html.push_str("<section id=\"metrics\"><h2>Per-frame metrics</h2>");
    let height = 120.0;
    for (title, value, thresholds) in plots {
        let points: Vec<(f64, f64)> = frames
            .iter()
            .filter_map(|f| Some((f.pts_ms?, value(f)?)))
            .collect();
        let max = points
            .iter()
            .map(|p| p.1)
            .chain(thresholds.iter().map(|t| t.0))
            .fold(0.0_f64, f64::max)
            .max(1e-9);
        let _ = write!(
            html,
            "<svg width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
             aria-label=\"{}\"><text x=\"8\" y=\"16\" font-size=\"11\">{}</text>",
            esc(title),
            esc(title)
        );
        let (top, inner) = (20.0, height - 40.0);
        // Drawn against the common maximum so that thresholds sit where they belong.
        let coords: Vec<String> = points
            .iter()
            .map(|(ms, v)| format!("{:.1},{:.1}", axis.x(*ms), top + inner - v / max * inner))
            .collect();
        let _ = write!(
            html,
            "<polyline fill=\"none\" stroke=\"#1d4ed8\" stroke-width=\"1.2\" points=\"{}\"/>",
            coords.join(" ")
        );
        for (threshold, label) in thresholds {
            let y = top + inner - threshold / max * inner;
            let _ = write!(
                html,
                "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#b42318\" stroke-dasharray=\"5 3\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#b42318\" text-anchor=\"end\">{} {threshold}</text>",
                WIDTH - RIGHT,
                WIDTH - RIGHT,
                y - 3.0,
                esc(label)
            );
        }
        let _ = write!(
            html,
            "<text x=\"8\" y=\"{:.1}\" font-size=\"10\">max {:.1}</text></svg>",
            top + 12.0,
            max
        );
    }
    html.push_str("</section>\n");
}

fn name(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => "?".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::RunInfo;

    fn rejected() -> SessionFile {
        SessionFile {
            schema_version: 1,
            session_id: "session_1_abc".into(),
            wallet: "W".into(),
            status: crate::ledger::SessionStatus::Rejected,
            run: RunInfo {
                run_id: "run".into(),
                processed_at: "2026-12-01T00:00:00Z".into(),
            },
            prompt: Some("<script>alert(1)</script> & streets".into()),
            scenario: None,
            parts: vec![],
            reject: Some(crate::outputs::RejectNote {
                code: "empty_video".into(),
                message: "the video part is empty (0 bytes)".into(),
                reason: crate::reject::RejectReason::EmptyVideo,
                other_problems: vec![],
            }),
            video: None,
            clock: None,
            actions: None,
            segments: vec![],
            skipped: vec![],
            frame_metrics: vec![],
        }
    }

    #[test]
    fn text_from_a_bundle_is_escaped() {
        let html = render_report(&rejected(), &QualityConfig::default(), &Thumbnails::new());
        assert!(
            !html.contains("<script>"),
            "a prompt must not become markup"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; streets"));
        assert!(html.contains("id=\"reject\"") && html.contains("empty_video"));
        // Self-contained: nothing fetched from anywhere.
        for outside in ["http://", "https://", "<script", "<link"] {
            assert!(!html.contains(outside), "{outside}");
        }
    }

    #[test]
    fn escaping_covers_attribute_quotes() {
        assert_eq!(esc("a\"b'c<d>&"), "a&quot;b&#39;c&lt;d&gt;&amp;");
    }
}
