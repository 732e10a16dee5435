//! Episodes' frames as H.264 in MP4 (libx264, FFmpeg), each frame at its own time.
//!
//! The published JPEGs are decoded straight to their YUV 4:2:0 planes (libjpeg-turbo, no colour
//! conversion) and given to the encoder as full-range YUV, as JPEG holds them. Times are in ticks
//! of 1/90000 s: a frame is stored at its episode's start plus its `timestamp`, so a reader that
//! seeks by time finds it exactly. A container cannot hold two frames at one time: a frame that
//! shares its time with the one before (a burst) is stored one tick after it (its row keeps the
//! recorded time and the `bursts` mask bit). No B-frames: packets leave in presentation order.

use std::path::Path;

use ffmpeg_next as ffmpeg;

use ffmpeg::util::color;
use ffmpeg::{codec, encoder, format, frame, Dictionary, Packet, Rational};
use turbojpeg::{Decompressor, Subsamp, YuvImage};

use crate::episode::Episode;

/// Stream and encoder time base.
pub const TICKS_PER_SECOND: i64 = 90_000;
const TIME_BASE: Rational = Rational(1, TICKS_PER_SECOND as i32);
const H264_ENCODER: &str = "libx264";

/// Encoder settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSettings {
    /// x264's constant rate factor (0-51; lower is better and bigger).
    pub crf: u8,
    /// x264's preset (`ultrafast` ... `veryslow`).
    pub preset: String,
    /// At most this many frames between keyframes (a reader seeks to a keyframe, then decodes).
    pub keyframe_interval: u32,
}

impl Default for VideoSettings {
    fn default() -> Self {
        Self {
            crf: 23,
            preset: "veryfast".to_owned(),
            keyframe_interval: 30,
        }
    }
}

/// Per-channel sums over sampled pixels (RGB in 0-1), for `stats.json`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PixelSums {
    pub count: u64,
    pub sum: [f64; 3],
    pub sum_sq: [f64; 3],
    pub min: [f64; 3],
    pub max: [f64; 3],
}

impl PixelSums {
    fn add(&mut self, rgb: [f64; 3]) {
        self.merge(&PixelSums {
            count: 1,
            sum: rgb,
            sum_sq: rgb.map(|v| v * v),
            min: rgb,
            max: rgb,
        });
    }

    pub fn merge(&mut self, other: &PixelSums) {
        if other.count == 0 {
            return;
        }
        for c in 0..3 {
            if self.count == 0 {
                self.min[c] = other.min[c];
                self.max[c] = other.max[c];
            }
            self.sum[c] += other.sum[c];
            self.sum_sq[c] += other.sum_sq[c];
            self.min[c] = self.min[c].min(other.min[c]);
            self.max[c] = self.max[c].max(other.max[c]);
        }
        self.count += other.count;
    }
}

/// Where an episode sits in a video file (seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodeSpan {
    pub from_s: f64,
    pub to_s: f64,
}

/// Writes one MP4, episode after episode.
pub struct Mp4Writer {
    output: format::context::Output,
    encoder: encoder::Video,
    stream_index: usize,
    stream_time_base: Rational,
    width: usize,
    height: usize,
    decompressor: Decompressor,
    yuv: Vec<u8>,
    /// The earliest tick the next episode may start at.
    next_start: i64,
    last_tick: Option<i64>,
    /// Tick -> how long the frame shows, for its packet.
    durations: std::collections::HashMap<i64, i64>,
    frames: usize,
}

impl std::fmt::Debug for Mp4Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp4Writer")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("frames", &self.frames)
            .finish()
    }
}

impl Mp4Writer {
    pub fn create(
        path: &Path,
        width: u32,
        height: u32,
        nominal_fps: u32,
        settings: &VideoSettings,
    ) -> Result<Self, String> {
        ffmpeg::init().map_err(|err| format!("initialising FFmpeg: {err}"))?;
        if !width.is_multiple_of(2) || !height.is_multiple_of(2) || width == 0 || height == 0 {
            return Err(format!("{width}x{height}: H.264 4:2:0 needs even sizes"));
        }
        let codec = encoder::find_by_name(H264_ENCODER).ok_or_else(|| {
            format!("FFmpeg has no {H264_ENCODER} encoder (build it with libx264)")
        })?;
        let mut output = format::output_as(path, "mp4")
            .map_err(|err| format!("opening {} for writing: {err}", path.display()))?;
        let global_header = output
            .format()
            .flags()
            .contains(format::Flags::GLOBAL_HEADER);
        let mut video = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|err| format!("creating the H.264 encoder: {err}"))?;
        video.set_width(width);
        video.set_height(height);
        video.set_format(format::Pixel::YUV420P);
        video.set_color_range(color::Range::JPEG);
        video.set_colorspace(color::Space::BT470BG);
        video.set_time_base(TIME_BASE);
        video.set_frame_rate(Some(Rational(nominal_fps.max(1) as i32, 1)));
        video.set_gop(settings.keyframe_interval.max(1));
        video.set_max_b_frames(0);
        if global_header {
            video.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let mut options = Dictionary::new();
        options.set("preset", &settings.preset);
        options.set("crf", &settings.crf.to_string());
        let encoder = video
            .open_with(options)
            .map_err(|err| format!("opening the H.264 encoder: {err}"))?;
        let mut stream = output
            .add_stream(codec)
            .map_err(|err| format!("adding the video stream: {err}"))?;
        stream.set_parameters(&encoder);
        stream.set_time_base(TIME_BASE);
        let stream_index = stream.index();
        let mut mux = Dictionary::new();
        mux.set("fflags", "+bitexact");
        output
            .write_header_with(mux)
            .map_err(|err| format!("writing the MP4 header: {err}"))?;
        let stream_time_base = output
            .stream(stream_index)
            .map(|s| s.time_base())
            .ok_or("the muxer lost the video stream")?;
        let decompressor =
            Decompressor::new().map_err(|err| format!("starting libjpeg-turbo: {err}"))?;
        Ok(Self {
            output,
            encoder,
            stream_index,
            stream_time_base,
            width: width as usize,
            height: height as usize,
            decompressor,
            yuv: Vec::new(),
            next_start: 0,
            last_tick: None,
            durations: std::collections::HashMap::new(),
            frames: 0,
        })
    }

    /// The file's length so far (s).
    pub fn end_s(&self) -> f64 {
        self.next_start as f64 / TICKS_PER_SECOND as f64
    }

    /// Appends an episode's frames (`jpegs[i]` is row `i`'s JPEG, read and checked by
    /// `read_frames`); returns where it sits, and the pixel sums of a sample of its frames.
    pub fn append(
        &mut self,
        episode: &Episode,
        jpegs: &[Vec<u8>],
    ) -> Result<(EpisodeSpan, PixelSums), String> {
        if jpegs.len() != episode.rows.len() {
            return Err(format!(
                "{}: {} frames for {} rows",
                episode.key,
                jpegs.len(),
                episode.rows.len()
            ));
        }
        if (episode.width as usize, episode.height as usize) != (self.width, self.height) {
            return Err(format!(
                "{}: {}x{}, the video is {}x{}",
                episode.key, episode.width, episode.height, self.width, self.height
            ));
        }
        let start = self.next_start;
        let rows = episode.rows.len();
        // About ten frames of each episode feed the image statistics.
        let sample_every = rows.div_ceil(10).max(1);
        let mut sums = PixelSums::default();
        // Every frame's tick first (from the times alone), so that each packet carries its
        // duration: up to the next frame, and one nominal step for the last (a sample without a
        // duration is dropped by some readers).
        let mut ticks = Vec::with_capacity(rows);
        let mut last = self.last_tick;
        for row in &episode.rows {
            let wanted = start.saturating_add(seconds_to_ticks(row.timestamp_s));
            let tick = match last {
                Some(prev) if wanted <= prev => prev.saturating_add(1),
                _ => wanted,
            };
            if row.time_known && tick != wanted {
                return Err(format!(
                    "{}: frame {} cannot sit at its own time in the video (frames too close after a burst)",
                    episode.key, row.frame
                ));
            }
            ticks.push(tick);
            last = Some(tick);
        }
        let step = seconds_to_ticks(episode.median_step_s).max(1);
        for (i, &tick) in ticks.iter().enumerate() {
            let next = ticks
                .get(i + 1)
                .copied()
                .unwrap_or(tick.saturating_add(step));
            self.durations.insert(tick, next.saturating_sub(tick));
        }
        for (i, (row, &tick)) in episode.rows.iter().zip(&ticks).enumerate() {
            self.decode(&jpegs[i])
                .map_err(|err| format!("{}: frame {}: {err}", episode.key, row.frame))?;
            if i % sample_every == 0 {
                self.sample_into(&mut sums);
            }
            self.send(tick)
                .map_err(|err| format!("{}: frame {}: {err}", episode.key, row.frame))?;
        }
        let end = last.unwrap_or(start);
        self.last_tick = last;
        self.next_start = end.saturating_add(step);
        Ok((
            EpisodeSpan {
                from_s: start as f64 / TICKS_PER_SECOND as f64,
                to_s: self.next_start as f64 / TICKS_PER_SECOND as f64,
            },
            sums,
        ))
    }

    /// Flushes the encoder and writes the trailer.
    pub fn finish(mut self) -> Result<usize, String> {
        self.encoder
            .send_eof()
            .map_err(|err| format!("flushing the H.264 encoder: {err}"))?;
        self.drain()?;
        self.output
            .write_trailer()
            .map_err(|err| format!("writing the MP4 trailer: {err}"))?;
        Ok(self.frames)
    }

    fn decode(&mut self, bytes: &[u8]) -> Result<(), String> {
        let header = self
            .decompressor
            .read_header(bytes)
            .map_err(|err| format!("not a JPEG: {err}"))?;
        if (header.width, header.height) != (self.width, self.height) {
            return Err(format!(
                "the JPEG is {}x{}, the video {}x{}",
                header.width, header.height, self.width, self.height
            ));
        }
        if header.subsamp != Subsamp::Sub2x2 {
            return Err(format!("the JPEG is {:?}, not 4:2:0", header.subsamp));
        }
        let chroma = (self.width / 2) * (self.height / 2);
        self.yuv.resize(self.width * self.height + 2 * chroma, 0);
        self.decompressor
            .decompress_to_yuv(
                bytes,
                YuvImage {
                    pixels: &mut self.yuv[..],
                    width: self.width,
                    align: 1,
                    height: self.height,
                    subsamp: Subsamp::Sub2x2,
                },
            )
            .map_err(|err| format!("decoding the JPEG: {err}"))
    }

    /// Every 16th pixel of every 16th row, as RGB in 0-1 (JPEG's full-range BT.601).
    fn sample_into(&self, sums: &mut PixelSums) {
        let (w, h) = (self.width, self.height);
        let (cw, luma) = (w / 2, w * h);
        let chroma = cw * (h / 2);
        for y in (0..h).step_by(16) {
            for x in (0..w).step_by(16) {
                let l = f64::from(self.yuv[y * w + x]);
                let at = (y / 2) * cw + x / 2;
                let cb = f64::from(self.yuv[luma + at]) - 128.0;
                let cr = f64::from(self.yuv[luma + chroma + at]) - 128.0;
                let rgb = [
                    l + 1.402 * cr,
                    l - 0.344_136 * cb - 0.714_136 * cr,
                    l + 1.772 * cb,
                ];
                sums.add(rgb.map(|v| v.clamp(0.0, 255.0) / 255.0));
            }
        }
    }

    fn send(&mut self, tick: i64) -> Result<(), String> {
        let mut frame = frame::Video::new(
            format::Pixel::YUV420P,
            self.width as u32,
            self.height as u32,
        );
        frame.set_color_range(color::Range::JPEG);
        let (w, h) = (self.width, self.height);
        let luma = w * h;
        let chroma = (w / 2) * (h / 2);
        let planes = [
            (0..luma, w, h),
            (luma..luma + chroma, w / 2, h / 2),
            (luma + chroma..luma + 2 * chroma, w / 2, h / 2),
        ];
        for (index, (range, width, height)) in planes.into_iter().enumerate() {
            let plane = &self.yuv[range];
            let stride = frame.stride(index);
            let data = frame.data_mut(index);
            for row in 0..height {
                data[row * stride..row * stride + width]
                    .copy_from_slice(&plane[row * width..(row + 1) * width]);
            }
        }
        frame.set_pts(Some(tick));
        self.encoder
            .send_frame(&frame)
            .map_err(|err| format!("encoding: {err}"))?;
        self.frames += 1;
        self.drain()
    }

    fn drain(&mut self) -> Result<(), String> {
        let mut packet = Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(self.stream_index);
            packet.set_position(-1);
            if let Some(duration) = packet.pts().and_then(|pts| self.durations.remove(&pts)) {
                packet.set_duration(duration);
            }
            packet.rescale_ts(TIME_BASE, self.stream_time_base);
            packet
                .write_interleaved(&mut self.output)
                .map_err(|err| format!("muxing: {err}"))?;
        }
        Ok(())
    }
}

/// Checks that `bytes` is a 4:2:0 JPEG of `width` x `height` (its header only).
pub fn check_jpeg(bytes: &[u8], width: u32, height: u32) -> Result<(), String> {
    let header = turbojpeg::read_header(bytes).map_err(|err| format!("not a JPEG: {err}"))?;
    if (header.width, header.height) != (width as usize, height as usize) {
        return Err(format!(
            "the JPEG is {}x{}, the segment {width}x{height}",
            header.width, header.height
        ));
    }
    if header.subsamp != Subsamp::Sub2x2 {
        return Err(format!("the JPEG is {:?}, not 4:2:0", header.subsamp));
    }
    Ok(())
}

pub fn seconds_to_ticks(seconds: f64) -> i64 {
    (seconds * TICKS_PER_SECOND as f64).round() as i64
}
