//! Loading a discovered bundle: read and parse every part, check every number and identity, and
//! decide whether the bundle can be used (and if not, the one reason why).

use std::fs::File;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::discover::{BundleSource, PartFile};
use crate::ids::{PartKind, SessionId, WalletAddress};
use crate::model::{CameraSample, InputEvent, LatencyLog, Meta};
use crate::parse::{parse_json_part, Limits};
use crate::reject::{RejectReason, WalletFoundIn};
use crate::video::{probe_video_with, DecodedFrame, VideoProbe};

/// `performance.now()` of a page open for 30 days; later page times are not believable.
const MAX_PAGE_TIME_MS: f64 = 30.0 * 24.0 * 3600.0 * 1000.0;
/// Round-trip times and latencies above a minute are not a live session.
const MAX_LATENCY_MS: f64 = 60_000.0;
/// A pointer-locked `movementX/Y` of more than this in one event is not a hand on a mouse.
const MAX_MOUSE_DELTA: f64 = 100_000.0;
/// World coordinates of the city are hundreds of units; this bound only catches garbage.
const MAX_POSITION: f64 = 1.0e7;
const MAX_SPEED: f64 = 1.0e4;
const MAX_YAW_RAD: f64 = 1.0e6;
const MAX_CONTROL: f64 = 1.0e6;
/// 2020-01-01 and 2100-01-01 in epoch ms: the range of believable `Date.now()` values.
const MIN_EPOCH_MS: f64 = 1_577_836_800_000.0;
const MAX_EPOCH_MS: f64 = 4_102_444_800_000.0;
const MAX_DURATION_MS: f64 = 24.0 * 3600.0 * 1000.0;

/// Everything read from a bundle, usable or not. Inspect shows all of it; the pipeline takes a
/// [`Bundle`] from [`LoadedBundle::into_bundle`].
#[derive(Debug, Clone)]
pub struct LoadedBundle {
    pub source: BundleSource,
    pub meta: Option<Meta>,
    pub inputs: Option<Vec<InputEvent>>,
    pub camera: Option<Vec<CameraSample>>,
    pub latency: Option<LatencyLog>,
    pub video: Option<VideoProbe>,
    /// Every problem found, most fundamental first; the first is the reject reason.
    pub problems: Vec<RejectReason>,
}

/// A bundle that passed validation: every part present, parsed and believable.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub source: BundleSource,
    pub session_id: SessionId,
    pub wallet: WalletAddress,
    pub meta: Meta,
    pub inputs: Vec<InputEvent>,
    pub camera: Vec<CameraSample>,
    pub latency: LatencyLog,
    pub video: VideoProbe,
}

impl LoadedBundle {
    /// The one reason this bundle cannot be used, if any.
    pub fn reject_reason(&self) -> Option<&RejectReason> {
        self.problems.first()
    }

    pub fn into_bundle(self) -> Result<Bundle, RejectReason> {
        if let Some(reason) = self.problems.into_iter().next() {
            return Err(reason);
        }
        let missing = |part| RejectReason::MissingPart { parts: vec![part] };
        let meta = self.meta.ok_or_else(|| missing(PartKind::Meta))?;
        let session_id = SessionId::parse(&self.source.session_id).map_err(|why| {
            RejectReason::InvalidSessionId {
                session_id: self.source.session_id.clone(),
                why,
            }
        })?;
        let wallet = WalletAddress::parse(&meta.wallet_address).map_err(|why| {
            RejectReason::InvalidWallet {
                wallet: meta.wallet_address.clone(),
                found_in: WalletFoundIn::Meta,
                why,
            }
        })?;
        Ok(Bundle {
            session_id,
            wallet,
            inputs: self.inputs.ok_or_else(|| missing(PartKind::Inputs))?,
            camera: self.camera.ok_or_else(|| missing(PartKind::Camera))?,
            latency: self.latency.ok_or_else(|| missing(PartKind::Latency))?,
            video: self.video.ok_or_else(|| missing(PartKind::Video))?,
            meta,
            source: self.source,
        })
    }
}

/// Reads, parses and checks every part of a discovered bundle. Never panics on input: every
/// problem becomes a [`RejectReason`] in `problems`. The video is decoded even when another part
/// is already broken, so that a report can say everything that is wrong.
pub fn load_bundle(source: &BundleSource, limits: &Limits) -> LoadedBundle {
    load(source, limits, VideoStep::Always, |_| {})
}

/// [`load_bundle`] for the pipeline: the video is decoded only when every other part is fine
/// (a rejected bundle costs no decode), and each decoded frame is handed to `on_frame` as it
/// comes, so that frames can be written out in the same single pass.
pub fn load_bundle_streaming(
    source: &BundleSource,
    limits: &Limits,
    on_frame: impl FnMut(&DecodedFrame<'_>),
) -> LoadedBundle {
    load(source, limits, VideoStep::WhenUsable, on_frame)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VideoStep {
    Always,
    WhenUsable,
}

fn load(
    source: &BundleSource,
    limits: &Limits,
    video_step: VideoStep,
    on_frame: impl FnMut(&DecodedFrame<'_>),
) -> LoadedBundle {
    let mut problems = Vec::new();

    if let Err(why) = SessionId::parse(&source.session_id) {
        problems.push(RejectReason::InvalidSessionId {
            session_id: source.session_id.clone(),
            why,
        });
    }
    if let Some(key_wallet) = &source.key_wallet {
        if let Err(why) = WalletAddress::parse(key_wallet) {
            problems.push(RejectReason::InvalidWallet {
                wallet: key_wallet.clone(),
                found_in: WalletFoundIn::Key,
                why,
            });
        }
    }
    // A part is readable only if present and not a symlink (which could point anywhere).
    // Every missing part goes into one reason (where the first was found), so that a bundle
    // rejected as incomplete names all it lacks.
    let mut missing_at: Option<usize> = None;
    let mut readable = |kind: PartKind| -> Option<&PartFile> {
        match source.parts.get(&kind) {
            None => {
                match missing_at.and_then(|at| problems.get_mut(at)) {
                    Some(RejectReason::MissingPart { parts }) => parts.push(kind),
                    _ => {
                        missing_at = Some(problems.len());
                        problems.push(RejectReason::MissingPart { parts: vec![kind] });
                    }
                }
                None
            }
            Some(file) if file.is_symlink => {
                problems.push(RejectReason::UnsafePath {
                    part: kind,
                    file: file.file_name.clone(),
                    why: "is a symlink; parts must be regular files inside the bundle folder"
                        .to_owned(),
                });
                None
            }
            Some(file) => Some(file),
        }
    };
    let files: Vec<(PartKind, Option<&PartFile>)> = PartKind::ALL
        .iter()
        .map(|&kind| (kind, readable(kind)))
        .collect();
    let file_of = |kind: PartKind| files.iter().find(|(k, _)| *k == kind).and_then(|(_, f)| *f);

    let meta: Option<Meta> = read_json(
        file_of(PartKind::Meta),
        PartKind::Meta,
        limits,
        &mut problems,
    );
    // Who the bundle belongs to matters more than a malformed log: checked before the others.
    if let Some(meta) = &meta {
        check_meta_identity(source, meta, &mut problems);
    }
    let inputs: Option<Vec<InputEvent>> = read_json(
        file_of(PartKind::Inputs),
        PartKind::Inputs,
        limits,
        &mut problems,
    );
    let camera: Option<Vec<CameraSample>> = read_json(
        file_of(PartKind::Camera),
        PartKind::Camera,
        limits,
        &mut problems,
    );
    let latency: Option<LatencyLog> = read_json(
        file_of(PartKind::Latency),
        PartKind::Latency,
        limits,
        &mut problems,
    );

    if let Some(meta) = &meta {
        push_err(&mut problems, check_meta_numbers(meta));
    }
    if let Some(inputs) = &inputs {
        push_err(&mut problems, check_inputs(inputs));
    }
    if let Some(camera) = &camera {
        push_err(&mut problems, check_camera(camera));
    }
    if let Some(latency) = &latency {
        push_err(&mut problems, check_latency(latency));
    }

    let decode = video_step == VideoStep::Always || problems.is_empty();
    let video = file_of(PartKind::Video)
        .filter(|_| decode)
        .and_then(|file| {
            probe_video_with(&file.path, limits, on_frame)
                .map_err(|reason| problems.push(reason))
                .ok()
        });

    LoadedBundle {
        source: source.clone(),
        meta,
        inputs,
        camera,
        latency,
        video,
        problems,
    }
}

fn push_err(problems: &mut Vec<RejectReason>, result: Result<(), RejectReason>) {
    if let Err(reason) = result {
        problems.push(reason);
    }
}

fn read_json<T: DeserializeOwned>(
    file: Option<&PartFile>,
    kind: PartKind,
    limits: &Limits,
    problems: &mut Vec<RejectReason>,
) -> Option<T> {
    let file = file?;
    let result = open_part(
        &file.path,
        kind,
        file.size_bytes,
        limits.max_json_part_bytes,
    )
    .and_then(|reader| parse_json_part(kind, reader, limits));
    result.map_err(|reason| problems.push(reason)).ok()
}

fn open_part(
    path: &Path,
    part: PartKind,
    size_bytes: u64,
    limit: u64,
) -> Result<File, RejectReason> {
    // Refuse by the listed size before reading; the capped reader still guards a growing file.
    if size_bytes > limit {
        return Err(RejectReason::PartTooLarge {
            part,
            size_bytes,
            limit_bytes: limit,
        });
    }
    File::open(path).map_err(|err| RejectReason::Unreadable {
        part,
        detail: err.to_string(),
    })
}

fn check_meta_identity(source: &BundleSource, meta: &Meta, problems: &mut Vec<RejectReason>) {
    match WalletAddress::parse(&meta.wallet_address) {
        Err(why) => problems.push(RejectReason::InvalidWallet {
            wallet: meta.wallet_address.clone(),
            found_in: WalletFoundIn::Meta,
            why,
        }),
        Ok(meta_wallet) => {
            if let Some(key_wallet) = &source.key_wallet {
                if key_wallet != meta_wallet.as_str() {
                    problems.push(RejectReason::WalletMismatch {
                        key_wallet: key_wallet.clone(),
                        meta_wallet: meta_wallet.to_string(),
                    });
                }
            }
        }
    }
    if meta.session_id != source.session_id {
        problems.push(RejectReason::SessionIdMismatch {
            key_session_id: source.session_id.clone(),
            meta_session_id: meta.session_id.clone(),
        });
    }
}

/// Checks that `value` lies in `[min, max]`, naming the field when it does not.
fn in_range(
    part: PartKind,
    path: impl FnOnce() -> String,
    value: f64,
    min: f64,
    max: f64,
    what: &str,
) -> Result<(), RejectReason> {
    if value.is_finite() && (min..=max).contains(&value) {
        return Ok(());
    }
    Err(RejectReason::AbsurdNumber {
        part,
        path: path(),
        value,
        why: format!("{what} must lie in [{min}, {max}]"),
    })
}

fn check_page_time(
    part: PartKind,
    path: impl FnOnce() -> String,
    t: f64,
) -> Result<(), RejectReason> {
    in_range(
        part,
        path,
        t,
        0.0,
        MAX_PAGE_TIME_MS,
        "a page time (performance.now, ms)",
    )
}

fn check_meta_numbers(meta: &Meta) -> Result<(), RejectReason> {
    let part = PartKind::Meta;
    if let Some(duration) = meta.duration {
        in_range(
            part,
            || "duration".into(),
            duration,
            0.0,
            MAX_DURATION_MS,
            "a duration (ms)",
        )?;
    }
    for (field, value) in [
        ("startTime", meta.start_time),
        ("endTime", meta.end_time),
        ("timeOrigin", meta.time_origin),
    ] {
        if let Some(value) = value {
            in_range(
                part,
                || field.into(),
                value,
                MIN_EPOCH_MS,
                MAX_EPOCH_MS,
                "an epoch time (ms)",
            )?;
        }
    }
    if let Some(count) = meta.event_count {
        in_range(part, || "eventCount".into(), count, 0.0, 1.0e9, "a count")?;
    }
    if let Some(t) = meta.recording_start_t {
        check_page_time(part, || "recordingStartT".into(), t)?;
    }
    Ok(())
}

fn check_inputs(inputs: &[InputEvent]) -> Result<(), RejectReason> {
    let part = PartKind::Inputs;
    for (i, event) in inputs.iter().enumerate() {
        check_page_time(part, || format!("[{i}].t"), event.t)?;
        for (field, value) in [("dx", event.dx), ("dy", event.dy)] {
            if let Some(value) = value {
                in_range(
                    part,
                    || format!("[{i}].{field}"),
                    value,
                    -MAX_MOUSE_DELTA,
                    MAX_MOUSE_DELTA,
                    "a mouse delta (px)",
                )?;
            }
        }
    }
    Ok(())
}

fn check_camera(camera: &[CameraSample]) -> Result<(), RejectReason> {
    let part = PartKind::Camera;
    for (i, sample) in camera.iter().enumerate() {
        check_page_time(part, || format!("[{i}].t"), sample.t)?;
        for (axis, value) in sample.pos.iter().enumerate() {
            in_range(
                part,
                || format!("[{i}].pos[{axis}]"),
                *value,
                -MAX_POSITION,
                MAX_POSITION,
                "a world coordinate",
            )?;
        }
        in_range(
            part,
            || format!("[{i}].yaw"),
            sample.yaw,
            -MAX_YAW_RAD,
            MAX_YAW_RAD,
            "a yaw (rad)",
        )?;
        in_range(
            part,
            || format!("[{i}].speed"),
            sample.speed,
            -MAX_SPEED,
            MAX_SPEED,
            "a speed",
        )?;
        let controls = [
            ("throttle", sample.throttle),
            ("brake", sample.brake),
            ("steer", sample.steer),
            ("command", sample.command),
        ];
        for (field, value) in controls {
            if let Some(value) = value {
                in_range(
                    part,
                    || format!("[{i}].{field}"),
                    value,
                    -MAX_CONTROL,
                    MAX_CONTROL,
                    "a control value",
                )?;
            }
        }
    }
    Ok(())
}

fn check_latency(latency: &LatencyLog) -> Result<(), RejectReason> {
    let part = PartKind::Latency;
    let fields = [
        ("initialLatency", latency.initial_latency),
        ("avgRtt", latency.avg_rtt),
    ];
    for (field, value) in fields {
        if let Some(value) = value {
            in_range(
                part,
                || field.into(),
                value,
                0.0,
                MAX_LATENCY_MS,
                "a latency (ms)",
            )?;
        }
    }
    for (i, sample) in latency.rtt_samples.iter().enumerate() {
        check_page_time(part, || format!("rttSamples[{i}].t"), sample.t)?;
        in_range(
            part,
            || format!("rttSamples[{i}].rtt"),
            sample.rtt,
            0.0,
            MAX_LATENCY_MS,
            "a round-trip time (ms)",
        )?;
    }
    Ok(())
}
