//! One bundle through ALIGN -> SPLICE -> CLEAN in a single decode: every part is read and
//! checked, then the video is decoded once, each frame measured (on small grey copies) and handed
//! to the JPEG writer as it comes. Frames are never all in memory.

use std::path::Path;

use crate::align::{align, AlignConfig, Alignment};
use crate::bundle::{load_bundle_streaming, Bundle, LoadedBundle};
use crate::clean::{clean_segment, SegmentQuality, SessionContext};
use crate::config::PipelineConfig;
use crate::discover::BundleSource;
use crate::frames::{FrameWriteError, FramesWritten, JpegSettings, JpegWriter};
use crate::parse::Limits;
use crate::reject::RejectReason;
use crate::splice::{splice, Splice};
use crate::timeline::TimelineConfig;
use crate::trace;

/// What the pipeline made of one bundle.
#[derive(Debug)]
pub enum Analysis {
    /// The bundle cannot be used: one reason (the first of `loaded.problems`).
    Rejected {
        loaded: Box<LoadedBundle>,
        reason: RejectReason,
    },
    Accepted(Box<AcceptedSession>),
}

/// A usable bundle, aligned, cut and scored; its frames are written as JPEG files.
#[derive(Debug)]
pub struct AcceptedSession {
    pub bundle: Bundle,
    pub alignment: Alignment,
    pub splice: Splice,
    /// CLEAN's verdict on each segment, in segment order.
    pub verdicts: Vec<SegmentQuality>,
    pub frames_written: FramesWritten,
}

/// The ALIGN knobs the pipeline uses: one stall limit for the timeline and for SPLICE.
pub fn align_config(config: &PipelineConfig) -> AlignConfig {
    AlignConfig {
        timeline: TimelineConfig {
            stall_ms: config.quality.splice.stall_ms,
        },
        ..AlignConfig::default()
    }
}

/// Runs the whole pipeline on one bundle, writing every decoded frame into `frames_dir` as
/// `{frame:06}.jpg`. `on_frame` is told the number of frames decoded so far (for progress).
///
/// A bundle that cannot be used is an [`Analysis::Rejected`], not an error: errors are system
/// problems (the frames could not be written).
pub fn analyse_bundle(
    source: &BundleSource,
    config: &PipelineConfig,
    limits: &Limits,
    frames_dir: &Path,
    mut on_frame: impl FnMut(usize),
) -> Result<Analysis, FrameWriteError> {
    let mut writer = JpegWriter::start(
        frames_dir,
        JpegSettings {
            quality: config.output.jpeg_quality,
            threads: config.output.encoder_threads,
        },
    )?;
    let mut write_error: Option<FrameWriteError> = None;
    let decode = trace::step_span("decode");
    let loaded = decode.in_scope(|| {
        load_bundle_streaming(source, limits, |frame| {
            on_frame(frame.index + 1);
            if write_error.is_some() {
                return;
            }
            let pushed = match frame.yuv420() {
                Some(planes) => writer.push(frame.index, &planes),
                None => Err(FrameWriteError::Encode {
                    frame: frame.index,
                    detail: "the decoder gave a picture that is not YUV 4:2:0".to_owned(),
                }),
            };
            if let Err(err) = pushed {
                write_error = Some(err);
            }
        })
    });
    let finished = decode.in_scope(|| writer.finish());
    if let Some(video) = &loaded.video {
        decode.record("frames", video.frame_pts_ms.len() as u64);
    }
    drop(decode);
    if let Some(err) = write_error {
        return Err(err);
    }
    let frames_written = finished?;

    let bundle = match loaded.clone().into_bundle() {
        Ok(bundle) => bundle,
        Err(reason) => {
            return Ok(Analysis::Rejected {
                loaded: Box::new(loaded),
                reason,
            })
        }
    };
    let alignment = {
        let span = trace::step_span("align");
        let alignment = span.in_scope(|| align(&bundle, &align_config(config)));
        span.record("frames", alignment.frames.len() as u64);
        trace::record_clock(&span, &alignment.clock);
        alignment
    };
    let spliced = {
        let span = trace::step_span("splice");
        let spliced = span.in_scope(|| splice(&alignment.frames, &config.quality.splice));
        span.record("segments", spliced.segments.len() as u64);
        spliced
    };
    let verdicts = trace::step_span("clean").in_scope(|| {
        let context = SessionContext::new(&bundle, &alignment);
        spliced
            .segments
            .iter()
            .map(|segment| clean_segment(segment, &context, &config.quality))
            .collect()
    });
    Ok(Analysis::Accepted(Box::new(AcceptedSession {
        bundle,
        alignment,
        splice: spliced,
        verdicts,
        frames_written,
    })))
}
