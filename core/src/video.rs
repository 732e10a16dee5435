//! Decoding the video part with FFmpeg: codec, size, and every frame's real presentation time.
//!
//! The real recordings have no container duration and no frame count, a variable frame rate and
//! repeated timestamps, so the only trustworthy timeline is the one read frame by frame here.
//! This is the one module that calls FFmpeg; everything it learns is handed on as plain data.

use std::path::Path;
use std::sync::Once;

use ffmpeg_next as ffmpeg;
use serde::Serialize;

use crate::image_stats::{
    blockiness, histogram, histogram_distance, laplacian_variance, std_dev, HISTOGRAM_BINS,
    SHARP_HEIGHT, SHARP_WIDTH,
};
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
    /// Picture measurements of each frame, in the same order (empty from [`decode_video`] alone).
    pub frame_stats: Vec<FrameStats>,
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

    /// The three planes of a 4:2:0 picture (Y, U, V) with their strides, or `None` when the frame
    /// is in another layout. VP8 decodes to YUV 4:2:0 (with an alpha plane after them when the
    /// stream carries one, which is ignored).
    pub fn yuv420(&self) -> Option<Yuv420Planes<'_>> {
        use ffmpeg::format::Pixel;
        if !matches!(self.frame.format(), Pixel::YUV420P | Pixel::YUVA420P) {
            return None;
        }
        Some(Yuv420Planes {
            width: self.width() as usize,
            height: self.height() as usize,
            planes: [self.frame.data(0), self.frame.data(1), self.frame.data(2)],
            strides: [
                self.frame.stride(0),
                self.frame.stride(1),
                self.frame.stride(2),
            ],
        })
    }
}

/// The Y, U and V planes of one decoded 4:2:0 frame, borrowed from the decoder.
#[derive(Debug, Clone, Copy)]
pub struct Yuv420Planes<'a> {
    pub width: usize,
    pub height: usize,
    pub planes: [&'a [u8]; 3],
    /// Bytes per row of each plane.
    pub strides: [usize; 3],
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

    // Only the WebM/Matroska demuxer reading this one local file: a "video" that is a playlist
    // (concat, HLS) could otherwise pull in another session's frames or any other file.
    let mut options = ffmpeg::Dictionary::new();
    options.set("format_whitelist", "matroska,webm");
    options.set("protocol_whitelist", "file");
    let mut input = ffmpeg::format::input_with_dictionary(path, options)
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
    let mut context = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
        .map_err(|err| undecodable(format!("unsupported codec parameters ({err})")))?;
    // Frame threads keep both cores busy while the analysis and the JPEG encoders wait on the
    // decoder; frames still come out in order, with their own timestamps.
    context.set_threading(ffmpeg::codec::threading::Config {
        kind: ffmpeg::codec::threading::Type::Frame,
        count: std::thread::available_parallelism().map_or(1, usize::from),
        ..ffmpeg::codec::threading::Config::default()
    });
    let mut decoder = context
        .decoder()
        .video()
        .map_err(|err| undecodable(format!("no decoder for this video ({err})")))?;
    let codec = decoder
        .codec()
        .map(|codec| codec.name().to_owned())
        .unwrap_or_else(|| format!("{:?}", decoder.id()).to_lowercase());
    if decoder.id() != ffmpeg::codec::Id::VP8 {
        return Err(RejectReason::UnsupportedVideo {
            detail: format!("codec {codec}, not VP8"),
        });
    }
    // The stream's own size, when it states one (every decoded frame is held to it too).
    let stated = (decoder.width(), decoder.height());
    if let Some(why) = (stated.0 > 0 && stated.1 > 0)
        .then(|| limits.frame_size_problem(stated.0, stated.1))
        .flatten()
    {
        return Err(RejectReason::UnusableFrameSize {
            width: decoder.width(),
            height: decoder.height(),
            why,
        });
    }
    let pixels = u64::from(decoder.width()) * u64::from(decoder.height());
    if pixels > limits.max_video_pixels {
        return Err(RejectReason::UnsupportedVideo {
            detail: format!(
                "frames of {}x{}, over the {}-pixel limit",
                decoder.width(),
                decoder.height(),
                limits.max_video_pixels
            ),
        });
    }
    let container_duration_ms = (input.duration() > 0)
        .then(|| input.duration() as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE) * 1000.0);

    let mut probe = VideoProbe {
        codec,
        width: decoder.width(),
        height: decoder.height(),
        frame_pts_ms: Vec::new(),
        frame_stats: Vec::new(),
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
                    // VP8 may change size at any key frame: every frame is held to the limits.
                    if let Some(why) = limits.frame_size_problem(frame.width(), frame.height()) {
                        return Err(RejectReason::UnusableFrameSize {
                            width: frame.width(),
                            height: frame.height(),
                            why,
                        });
                    }
                    if u64::from(frame.width()) * u64::from(frame.height())
                        > limits.max_video_pixels
                    {
                        return Err(RejectReason::UnsupportedVideo {
                            detail: format!(
                                "a frame of {}x{}, over the {}-pixel limit",
                                frame.width(),
                                frame.height(),
                                limits.max_video_pixels
                            ),
                        });
                    }
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

/// What one decoded frame looks like, measured on fixed-size grey images.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameStats {
    /// Mean luma, 0-255.
    pub mean_luma: f32,
    /// Standard deviation of luma (contrast), 0-255.
    pub luma_std: f32,
    /// Variance of the Laplacian on a 256x144 grey image (sharpness).
    pub sharpness: f32,
    /// Normalised 16-bin luma histogram.
    pub histogram: [f32; HISTOGRAM_BINS],
    /// Histogram distance to the previous frame, 0-1 (`None` for the first).
    pub histogram_jump: Option<f32>,
    /// Step across 16-px block edges over steps elsewhere (about 1 when healthy).
    pub blockiness: f32,
    /// Global shift from the previous frame (`None` for the first).
    pub shift: Option<Shift>,
    /// Mean absolute difference from the previous frame's thumbnail, 0-255 (`None` for the first).
    pub change: Option<f32>,
    /// The perceptual hash of the thumbnail (`fingerprint::frame_hash`; `None` for a flat
    /// picture). Not written out: the ledger keeps it per segment.
    #[serde(skip)]
    pub fingerprint: Option<u64>,
}

/// Decodes every frame, keeping its timestamp and its [`FrameStats`].
pub fn probe_video(path: &Path, limits: &Limits) -> Result<VideoProbe, RejectReason> {
    probe_video_with(path, limits, |_| {})
}

/// [`probe_video`], also handing every decoded frame to `on_frame` (after measuring it), so that
/// one decode serves both the analysis and whatever else needs the pictures.
pub fn probe_video_with(
    path: &Path,
    limits: &Limits,
    mut on_frame: impl FnMut(&DecodedFrame<'_>),
) -> Result<VideoProbe, RejectReason> {
    let mut analyzer = FrameAnalyzer::new();
    let mut probe = decode_video(path, limits, |frame| {
        analyzer.push(&frame);
        on_frame(&frame);
    })?;
    probe.frame_stats = analyzer.finish();
    Ok(probe)
}

/// Measures frames one after another: [`FrameStats`] of each, against the one before.
struct FrameAnalyzer {
    correlator: PhaseCorrelator,
    previous: Option<(GrayThumb, Spectrum, [f32; HISTOGRAM_BINS])>,
    stats: Vec<FrameStats>,
}

impl FrameAnalyzer {
    fn new() -> Self {
        Self {
            correlator: PhaseCorrelator::new(THUMB_WIDTH, THUMB_HEIGHT),
            previous: None,
            stats: Vec::new(),
        }
    }

    fn finish(self) -> Vec<FrameStats> {
        self.stats
    }

    fn push(&mut self, frame: &DecodedFrame<'_>) {
        let (plane, stride) = frame.luma();
        let (width, height) = (frame.width() as usize, frame.height() as usize);
        let thumb = GrayThumb::from_luma(plane, stride, width, height, THUMB_WIDTH, THUMB_HEIGHT);
        let sharp = GrayThumb::from_luma(plane, stride, width, height, SHARP_WIDTH, SHARP_HEIGHT);
        let (Some(thumb), Some(sharp)) = (thumb, sharp) else {
            // Smaller than 256x144: nothing to measure, but the frame still counts.
            self.stats.push(FrameStats {
                mean_luma: f32::NAN,
                luma_std: f32::NAN,
                sharpness: f32::NAN,
                histogram: [0.0; HISTOGRAM_BINS],
                histogram_jump: None,
                blockiness: f32::NAN,
                shift: None,
                change: None,
                fingerprint: None,
            });
            self.previous = None;
            return;
        };
        let correlator = &self.correlator;
        let spectrum = correlator.spectrum(&thumb);
        let hist = histogram(&sharp);
        let (shift, change, histogram_jump) = match (&self.previous, &spectrum) {
            (Some((prev_thumb, prev_spectrum, prev_hist)), Some(spectrum)) => (
                Some(correlator.shift(prev_spectrum, spectrum)),
                Some(prev_thumb.mean_abs_diff(&thumb)),
                Some(histogram_distance(prev_hist, &hist) as f32),
            ),
            _ => (None, None, None),
        };
        self.stats.push(FrameStats {
            mean_luma: sharp.mean(),
            luma_std: std_dev(&sharp) as f32,
            sharpness: laplacian_variance(&sharp) as f32,
            histogram: hist,
            histogram_jump,
            blockiness: blockiness(plane, stride, width, height) as f32,
            shift,
            change,
            fingerprint: crate::fingerprint::frame_hash(&thumb),
        });
        self.previous = spectrum.map(|spectrum| (thumb, spectrum, hist));
    }
}
