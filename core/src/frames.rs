//! Writing decoded frames out as JPEG files while the video is still decoding.
//!
//! The decoder hands each frame over as it comes; [`JpegWriter::push`] copies its Y, U and V
//! planes into a recycled buffer and queues it for a pool of named encoder threads, which
//! compress straight from the planes with libjpeg-turbo (no colour conversion, no resampling) and
//! write `{frame:06}.jpg` into one folder. The queue is bounded, so a slow disk slows the decoder
//! instead of filling memory: at most `queue + threads` frames (1.4 MB each at 1280x704) exist at
//! once, whatever the video's length.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::video::Yuv420Planes;

/// The file name of frame `index` (its position in decode order, counted over the session).
pub fn frame_file_name(index: usize) -> String {
    format!("{index:06}.jpg")
}

/// Why frames could not be written: a system problem (disk, memory), never a bundle's fault.
#[derive(Debug, thiserror::Error)]
pub enum FrameWriteError {
    #[error("cannot write frame {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode frame {frame} as JPEG: {detail}")]
    Encode { frame: usize, detail: String },
    #[error("cannot start a JPEG encoder thread: {0}")]
    Spawn(std::io::Error),
    #[error("a JPEG encoder thread stopped unexpectedly")]
    WorkerLost,
}

/// How frames are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegSettings {
    /// libjpeg quality, 1-100.
    pub quality: u8,
    /// Encoder threads; 0 means one per core.
    pub threads: usize,
}

/// What a [`JpegWriter`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramesWritten {
    pub frames: usize,
    pub bytes: u64,
}

/// One frame's planes, packed (`width`, `(width + 1) / 2`, `(width + 1) / 2` bytes per row).
#[derive(Debug)]
struct Job {
    frame: usize,
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

/// Frames in flight between the decoder and the encoders.
const QUEUE_PER_THREAD: usize = 2;

/// A pool of JPEG encoder threads writing into one folder.
#[derive(Debug)]
pub struct JpegWriter {
    jobs: Option<SyncSender<Job>>,
    spare: Receiver<Vec<u8>>,
    workers: Vec<JoinHandle<Result<FramesWritten, FrameWriteError>>>,
    /// Set by the first worker that fails, so the decoder stops feeding a broken pool.
    failed: Arc<Mutex<Option<FrameWriteError>>>,
}

impl JpegWriter {
    /// Starts the encoder threads; `folder` must exist.
    pub fn start(folder: &Path, settings: JpegSettings) -> Result<Self, FrameWriteError> {
        let threads = match settings.threads {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        };
        let (jobs, queue) = sync_channel::<Job>(threads * QUEUE_PER_THREAD);
        let (give_back, spare) = sync_channel::<Vec<u8>>(threads * (QUEUE_PER_THREAD + 1));
        let queue = Arc::new(Mutex::new(queue));
        let failed = Arc::new(Mutex::new(None));
        let quality = i32::from(settings.quality.clamp(1, 100));
        let mut workers = Vec::with_capacity(threads);
        for n in 0..threads {
            let queue = Arc::clone(&queue);
            let give_back = give_back.clone();
            let failed = Arc::clone(&failed);
            let folder = folder.to_path_buf();
            let worker = std::thread::Builder::new()
                .name(format!("jpeg-{n}"))
                .spawn(move || {
                    let result = encode_frames(&queue, &give_back, &folder, quality);
                    if let Err(err) = &result {
                        if let Ok(mut slot) = failed.lock() {
                            slot.get_or_insert_with(|| clone_error(err));
                        }
                    }
                    result
                })
                .map_err(FrameWriteError::Spawn)?;
            workers.push(worker);
        }
        Ok(Self {
            jobs: Some(jobs),
            spare,
            workers,
            failed,
        })
    }

    /// Queues frame `frame` (blocks while the queue is full). Fails once any encoder has failed.
    pub fn push(
        &mut self,
        frame: usize,
        picture: &Yuv420Planes<'_>,
    ) -> Result<(), FrameWriteError> {
        if let Some(err) = self.failed.lock().ok().and_then(|mut slot| slot.take()) {
            return Err(err);
        }
        let (width, height) = (picture.width, picture.height);
        // libjpeg-turbo wants the luma plane padded to whole chroma blocks (even width and
        // height for 4:2:0): an odd-sized picture repeats its last column and row.
        let (luma_width, luma_height) = (width + width % 2, height + height % 2);
        let (chroma_width, chroma_height) = (width.div_ceil(2), height.div_ceil(2));
        let len = luma_width * luma_height + 2 * chroma_width * chroma_height;
        let mut pixels = self.spare.try_recv().unwrap_or_default();
        pixels.clear();
        pixels.reserve(len);
        let sizes = [
            (width, height, luma_width, luma_height),
            (chroma_width, chroma_height, chroma_width, chroma_height),
            (chroma_width, chroma_height, chroma_width, chroma_height),
        ];
        for ((plane, stride), (plane_width, plane_height, padded_width, padded_height)) in
            picture.planes.iter().zip(picture.strides).zip(sizes)
        {
            let plane_start = pixels.len();
            for row in 0..plane_height {
                let start = row * stride;
                let Some(line) = plane.get(start..start + plane_width) else {
                    return Err(FrameWriteError::Encode {
                        frame,
                        detail: "the decoder's plane is smaller than its size says".to_owned(),
                    });
                };
                pixels.extend_from_slice(line);
                if padded_width > plane_width {
                    pixels.push(line[plane_width - 1]);
                }
            }
            if padded_height > plane_height {
                let last = pixels.len() - padded_width;
                pixels.extend_from_within(last..);
            }
            debug_assert_eq!(pixels.len() - plane_start, padded_width * padded_height);
        }
        let job = Job {
            frame,
            width,
            height,
            pixels,
        };
        let sender = self.jobs.as_ref().ok_or(FrameWriteError::WorkerLost)?;
        sender.send(job).map_err(|_| self.first_error())
    }

    /// Waits for every queued frame to be written.
    pub fn finish(mut self) -> Result<FramesWritten, FrameWriteError> {
        drop(self.jobs.take());
        let mut total = FramesWritten::default();
        let mut first_err = None;
        for worker in self.workers.drain(..) {
            match worker.join() {
                Ok(Ok(written)) => {
                    total.frames += written.frames;
                    total.bytes += written.bytes;
                }
                Ok(Err(err)) => {
                    first_err.get_or_insert(err);
                }
                Err(_) => {
                    first_err.get_or_insert(FrameWriteError::WorkerLost);
                }
            }
        }
        match first_err {
            Some(err) => Err(err),
            None => Ok(total),
        }
    }

    fn first_error(&self) -> FrameWriteError {
        self.failed
            .lock()
            .ok()
            .and_then(|mut slot| slot.take())
            .unwrap_or(FrameWriteError::WorkerLost)
    }
}

impl Drop for JpegWriter {
    fn drop(&mut self) {
        // Dropped without `finish` (an error upstream): stop the workers and wait for them, so
        // that no thread still writes into a folder the caller is about to remove.
        drop(self.jobs.take());
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn clone_error(err: &FrameWriteError) -> FrameWriteError {
    match err {
        FrameWriteError::Io { path, source } => FrameWriteError::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        FrameWriteError::Encode { frame, detail } => FrameWriteError::Encode {
            frame: *frame,
            detail: detail.clone(),
        },
        FrameWriteError::Spawn(source) => {
            FrameWriteError::Spawn(std::io::Error::new(source.kind(), source.to_string()))
        }
        FrameWriteError::WorkerLost => FrameWriteError::WorkerLost,
    }
}

/// One encoder thread: take frames until the queue closes.
fn encode_frames(
    queue: &Mutex<Receiver<Job>>,
    give_back: &SyncSender<Vec<u8>>,
    folder: &Path,
    quality: i32,
) -> Result<FramesWritten, FrameWriteError> {
    let encode_err = |frame: usize, err: turbojpeg::Error| FrameWriteError::Encode {
        frame,
        detail: err.to_string(),
    };
    let mut compressor = turbojpeg::Compressor::new().map_err(|err| encode_err(0, err))?;
    compressor
        .set_quality(quality)
        .map_err(|err| encode_err(0, err))?;
    let mut written = FramesWritten::default();
    loop {
        // The lock is held only while waiting for the next frame, never while encoding.
        let job = match queue.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return Err(FrameWriteError::WorkerLost),
        };
        let Ok(job) = job else {
            return Ok(written);
        };
        let (width, height) = (job.width, job.height);
        let luma_width = width + width % 2;
        let luma_len = luma_width * (height + height % 2);
        let chroma_width = width.div_ceil(2);
        let (y, chroma) = job.pixels.split_at(luma_len.min(job.pixels.len()));
        let (u, v) = chroma.split_at(chroma.len() / 2);
        let image = turbojpeg::YuvPlanesImage {
            y_plane: y,
            u_plane: u,
            v_plane: v,
            width,
            height,
            y_stride: luma_width,
            u_stride: chroma_width,
            v_stride: chroma_width,
            subsamp: turbojpeg::Subsamp::Sub2x2,
        };
        // The crate asserts its size rules; a picture that breaks them is an error for this
        // frame, never a lost thread.
        let compressed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            compressor.compress_yuv_planes_to_owned(&image)
        }));
        let jpeg = match compressed {
            Ok(result) => result.map_err(|err| encode_err(job.frame, err))?,
            Err(_) => {
                return Err(FrameWriteError::Encode {
                    frame: job.frame,
                    detail: format!("libjpeg-turbo refused a {width}x{height} picture"),
                })
            }
        };
        let path = folder.join(frame_file_name(job.frame));
        std::fs::File::create(&path)
            .and_then(|mut file| file.write_all(&jpeg))
            .map_err(|source| FrameWriteError::Io {
                path: path.clone(),
                source,
            })?;
        written.frames += 1;
        written.bytes += jpeg.len() as u64;
        match give_back.try_send(job.pixels) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// A small copy of a written frame for reports: decoded at 1/8 scale by libjpeg-turbo itself
/// (160x88 from 1280x704) and re-encoded at quality 70, a few KB each.
pub fn thumbnail_jpeg(jpeg: &[u8]) -> Result<Vec<u8>, FrameWriteError> {
    let failed = |err: turbojpeg::Error| FrameWriteError::Encode {
        frame: 0,
        detail: format!("thumbnail: {err}"),
    };
    let mut decompressor = turbojpeg::Decompressor::new().map_err(failed)?;
    decompressor
        .set_scaling_factor(turbojpeg::ScalingFactor::ONE_EIGHTH)
        .map_err(failed)?;
    let header = decompressor
        .read_header(jpeg)
        .map_err(failed)?
        .scaled(turbojpeg::ScalingFactor::ONE_EIGHTH);
    let format = turbojpeg::PixelFormat::RGB;
    let pitch = header.width * format.size();
    let mut pixels = vec![0u8; pitch * header.height];
    let image = turbojpeg::Image {
        pixels: pixels.as_mut_slice(),
        width: header.width,
        pitch,
        height: header.height,
        format,
    };
    decompressor.decompress(jpeg, image).map_err(failed)?;
    let image = turbojpeg::Image {
        pixels: pixels.as_slice(),
        width: header.width,
        pitch,
        height: header.height,
        format,
    };
    let small = turbojpeg::compress(image, 70, turbojpeg::Subsamp::Sub2x2).map_err(failed)?;
    Ok(small.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_pushed_frame_as_a_jpeg() {
        let dir = tempfile::tempdir().unwrap();
        let (width, height) = (33, 17); // odd: chroma planes round up
        let ch = 9; // chroma rows: (17 + 1) / 2
        let y: Vec<u8> = (0..40 * height).map(|i| (i % 251) as u8).collect();
        let u = vec![128u8; 20 * ch];
        let v = vec![90u8; 20 * ch];
        let picture = Yuv420Planes {
            width,
            height,
            planes: [&y, &u, &v],
            strides: [40, 20, 20],
        };
        let mut writer = JpegWriter::start(
            dir.path(),
            JpegSettings {
                quality: 90,
                threads: 2,
            },
        )
        .unwrap();
        for frame in 0..10 {
            writer.push(frame, &picture).unwrap();
        }
        let written = writer.finish().unwrap();
        assert_eq!(written.frames, 10);
        for frame in 0..10 {
            let bytes = std::fs::read(dir.path().join(frame_file_name(frame))).unwrap();
            assert_eq!(&bytes[..2], &[0xFF, 0xD8], "JPEG start marker");
            let header = turbojpeg::read_header(&bytes).unwrap();
            assert_eq!((header.width, header.height), (width, height));
        }
    }

    #[test]
    fn a_missing_folder_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let y = vec![0u8; 16 * 16];
        let c = vec![128u8; 8 * 8];
        let picture = Yuv420Planes {
            width: 16,
            height: 16,
            planes: [&y, &c, &c],
            strides: [16, 8, 8],
        };
        let mut writer = JpegWriter::start(
            &gone,
            JpegSettings {
                quality: 80,
                threads: 1,
            },
        )
        .unwrap();
        let mut pushed = Ok(());
        for frame in 0..20 {
            pushed = writer.push(frame, &picture);
            if pushed.is_err() {
                break;
            }
        }
        let finished = writer.finish();
        assert!(pushed.is_err() || finished.is_err());
    }
}
