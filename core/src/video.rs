//! Decoding the video part with FFmpeg: codec, size, and every frame's real presentation time.
//!
//! The real recordings have no container duration and no frame count, a variable frame rate and
//! repeated timestamps, so the only trustworthy timeline is the one read frame by frame here.
//! This is the one module that calls FFmpeg; everything it learns is handed on as plain data.

use std::path::Path;
use std::sync::Once;

use ffmpeg_next as ffmpeg;
use serde::Serialize;

use crate::motion::{GrayThumb, PhaseCorrelator, Shift, Spectrum, THUMB_HEIGHT, THUMB_WIDTH};
use crate::parse::Limits;
use crate::reject::RejectReason;

/// Consecutive demuxer errors after which the rest of a file is given up as garbage.
const MAX_CONSECUTIVE_READ_ERRORS: usize = 32;

/// What decoding the whole video found: its stream, and one entry per decoded frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoProbe {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Presentation time of each decoded frame, in decode output order, ms from the recorder's
    /// start. `None` for a frame that carried no timestamp at all.
    pub frame_pts_ms: Vec<Option<f64>>,
    /// Global shift from the previous decoded frame to this one (`None` for the first frame, or a
    /// frame too small to measure). Measured on a grey thumbnail, see [`crate::PhaseCorrelator`].
    pub frame_motion: Vec<Option<Shift>>,
    /// Mean luma of each frame, 0-255.
    pub frame_mean_luma: Vec<f32>,
    /// Mean absolute difference from the previous frame's thumbnail, 0-255 (`None` for the first).
    pub frame_change: Vec<Option<f32>>,
    /// Packets the demuxer or decoder refused (a healthy file has none).
    pub decode_errors: usize,
    /// Duration the container claims, if any (the real recordings claim none).
    pub container_duration_ms: Option<f64>,
}

/// A decoded frame as the callback of [`decode_video`] sees it (borrowed: copy what you keep).
pub struct DecodedFrame<'a> {
    /// 0-based position in decode output order.
    pub index: usize,
    pub pts_ms: Option<f64>,
    frame: &'a ffmpeg::frame::Video,
}

impl DecodedFrame<'_> {
    pub fn width(&self) -> u32 {
        self.frame.width()
    }

    pub fn height(&self) -> u32 {
        self.frame.height()
    }

    /// The luma (Y) plane and its row stride in bytes, for the planar YUV formats VP8 decodes to.
    pub fn luma(&self) -> (&[u8], usize) {
        (self.frame.data(0), self.frame.stride(0))
    }
}

impl std::fmt::Debug for DecodedFrame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedFrame")
            .field("index", &self.index)
            .field("pts_ms", &self.pts_ms)
            .field("width", &self.width())
            .field("height", &self.height())
            .finish()
    }
}

fn init_ffmpeg() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Errors are reported through our own types; FFmpeg's console chatter is not.
        if ffmpeg::init().is_ok() {
            ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Quiet);
        }
    });
}

/// Decodes every frame, handing each to `on_frame` as it comes out of the decoder (frames are never
/// all held in memory). Returns the probe with every frame's timestamp.
pub fn decode_video(
    path: &Path,
    limits: &Limits,
    mut on_frame: impl FnMut(DecodedFrame<'_>),
) -> Result<VideoProbe, RejectReason> {
    let size_bytes = std::fs::metadata(path)
        .map_err(|err| RejectReason::Unreadable {
            part: crate::PartKind::Video,
            detail: err.to_string(),
        })?
        .len();
    if size_bytes == 0 {
        return Err(RejectReason::EmptyVideo);
    }
    if size_bytes > limits.max_video_bytes {
        return Err(RejectReason::PartTooLarge {
            part: crate::PartKind::Video,
            size_bytes,
            limit_bytes: limits.max_video_bytes,
        });
    }
    init_ffmpeg();
    let undecodable = |detail: String| RejectReason::UndecodableVideo { detail };

    let mut input = ffmpeg::format::input(path)
        .map_err(|err| undecodable(format!("not a readable WebM/Matroska file ({err})")))?;
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or_else(|| undecodable("the file has no video stream".to_owned()))?;
    let stream_index = stream.index();
    let time_base = stream.time_base();
    let ms_per_tick = if time_base.denominator() > 0 {
        1000.0 * f64::from(time_base.numerator()) / f64::from(time_base.denominator())
    } else {
        0.0
    };
    let context = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
        .map_err(|err| undecodable(format!("unsupported codec parameters ({err})")))?;
    let mut decoder = context
        .decoder()
        .video()
        .map_err(|err| undecodable(format!("no decoder for this video ({err})")))?;
    let codec = decoder
        .codec()
        .map(|codec| codec.name().to_owned())
        .unwrap_or_else(|| format!("{:?}", decoder.id()).to_lowercase());
    let container_duration_ms = (input.duration() > 0)
        .then(|| input.duration() as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE) * 1000.0);

    let mut probe = VideoProbe {
        codec,
        width: decoder.width(),
        height: decoder.height(),
        frame_pts_ms: Vec::new(),
        frame_motion: Vec::new(),
        frame_mean_luma: Vec::new(),
        frame_change: Vec::new(),
        decode_errors: 0,
        container_duration_ms,
    };
    let mut frame = ffmpeg::frame::Video::empty();
    let mut drain = |decoder: &mut ffmpeg::decoder::Video,
                     probe: &mut VideoProbe|
     -> Result<(), RejectReason> {
        loop {
            match decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    if probe.frame_pts_ms.len() >= limits.max_video_frames {
                        return Err(undecodable(format!(
                            "more than {} frames, over the limit",
                            limits.max_video_frames
                        )));
                    }
                    let pts_ms = frame.timestamp().map(|ticks| ticks as f64 * ms_per_tick);
                    on_frame(DecodedFrame {
                        index: probe.frame_pts_ms.len(),
                        pts_ms,
                        frame: &frame,
                    });
                    probe.frame_pts_ms.push(pts_ms);
                }
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(())
                }
                Err(_) => {
                    probe.decode_errors += 1;
                    return Ok(());
                }
            }
        }
    };

    let mut consecutive_errors = 0;
    loop {
        let mut packet = ffmpeg::Packet::empty();
        match packet.read(&mut input) {
            Ok(()) => consecutive_errors = 0,
            Err(ffmpeg::Error::Eof) => break,
            Err(_) => {
                probe.decode_errors += 1;
                consecutive_errors += 1;
                if consecutive_errors >= MAX_CONSECUTIVE_READ_ERRORS {
                    break;
                }
                continue;
            }
        }
        if packet.stream() != stream_index {
            continue;
        }
        if decoder.send_packet(&packet).is_err() {
            probe.decode_errors += 1;
        }
        drain(&mut decoder, &mut probe)?;
    }
    if decoder.send_eof().is_ok() {
        drain(&mut decoder, &mut probe)?;
    }

    if probe.frame_pts_ms.is_empty() {
        return Err(undecodable(match probe.decode_errors {
            0 => "the file holds no video frame".to_owned(),
            errors => format!("no frame could be decoded ({errors} packets refused)"),
        }));
    }
    Ok(probe)
}

/// Decodes every frame, keeping its timestamp, its mean luma and its global motion.
pub fn probe_video(path: &Path, limits: &Limits) -> Result<VideoProbe, RejectReason> {
    let correlator = PhaseCorrelator::new(THUMB_WIDTH, THUMB_HEIGHT);
    let mut previous: Option<Spectrum> = None;
    let mut previous_thumb: Option<GrayThumb> = None;
    let mut motion = Vec::new();
    let mut mean_luma = Vec::new();
    let mut change = Vec::new();
    let mut probe = decode_video(path, limits, |frame| {
        let (plane, stride) = frame.luma();
        let thumb = GrayThumb::from_luma(
            plane,
            stride,
            frame.width() as usize,
            frame.height() as usize,
            THUMB_WIDTH,
            THUMB_HEIGHT,
        );
        mean_luma.push(thumb.as_ref().map_or(f32::NAN, GrayThumb::mean));
        change.push(match (&previous_thumb, &thumb) {
            (Some(a), Some(b)) => Some(a.mean_abs_diff(b)),
            _ => None,
        });
        let spectrum = thumb.as_ref().and_then(|thumb| correlator.spectrum(thumb));
        previous_thumb = thumb;
        motion.push(match (&previous, &spectrum) {
            (Some(a), Some(b)) => Some(correlator.shift(a, b)),
            _ => None,
        });
        previous = spectrum;
    })?;
    probe.frame_motion = motion;
    probe.frame_mean_luma = mean_luma;
    probe.frame_change = change;
    Ok(probe)
}
