//! Frames off the UI thread: a named loader thread decodes JPEG files (libjpeg-turbo) into RGBA
//! images, fed through a bounded queue; the UI asks without waiting and shows what has arrived.
//! The most recent frames stay cached, so stepping back and forth never decodes twice. The UI
//! also says which frames it still wants (the playhead's and the next few): a request the
//! playhead has left behind (a scrub, fast playback) is skipped rather than decoded, so the
//! loader never falls behind the playhead by more than one decode.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// A decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    /// RGBA, row by row.
    pub rgba: Arc<Vec<u8>>,
}

/// A request's answer: the frame (or why not), or `None` when it was skipped, no longer wanted.
type Decoded = (PathBuf, Option<Result<Frame, String>>);

/// Asks for frames and collects them; see the module's documentation.
#[derive(Debug)]
pub struct FrameLoader {
    requests: SyncSender<PathBuf>,
    results: Receiver<Decoded>,
    cache: HashMap<PathBuf, Result<Frame, String>>,
    /// Cache order, oldest first.
    order: VecDeque<PathBuf>,
    pending: Vec<PathBuf>,
    capacity: usize,
    /// What the UI wants now; the thread skips requests not in it.
    wanted: Arc<Mutex<Vec<PathBuf>>>,
}

/// Frames asked for at once, at most; more are asked again later.
const QUEUE: usize = 8;

impl FrameLoader {
    /// Starts the loader thread; `wake` is called after each frame is decoded (the UI repaints).
    pub fn start(capacity: usize, wake: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let (requests, inbox) = mpsc::sync_channel::<PathBuf>(QUEUE);
        let (outbox, results) = mpsc::sync_channel::<Decoded>(QUEUE * 2);
        let wanted: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
        let still_wanted = Arc::clone(&wanted);
        std::thread::Builder::new()
            .name("sd-frame-loader".to_owned())
            .spawn(move || {
                for path in inbox {
                    // A poisoned lock only means the UI panicked: decode anyway.
                    let skip = still_wanted
                        .lock()
                        .map(|wanted| !wanted.is_empty() && !wanted.contains(&path))
                        .unwrap_or(false);
                    let decoded = (!skip).then(|| decode(&path));
                    if outbox.send((path, decoded)).is_err() {
                        return;
                    }
                    // A skip wakes the UI too: if it wants the frame again by now, it asks again.
                    wake();
                }
            })?;
        Ok(Self {
            requests,
            results,
            cache: HashMap::new(),
            order: VecDeque::new(),
            pending: Vec::new(),
            capacity: capacity.max(1),
            wanted,
        })
    }

    /// The frames the UI wants now, most wanted first: requests for others still queued are
    /// skipped. The first is asked for now, the rest ahead of time.
    pub fn want(&mut self, paths: &[PathBuf]) {
        if let Ok(mut wanted) = self.wanted.lock() {
            wanted.clear();
            wanted.extend_from_slice(paths);
        }
        for path in paths {
            self.prefetch(path);
        }
    }

    /// The frame at `path` if it is decoded (or why it cannot be); asks for it otherwise.
    pub fn get(&mut self, path: &PathBuf) -> Option<&Result<Frame, String>> {
        self.collect();
        if !self.cache.contains_key(path) {
            self.request(path);
            return None;
        }
        self.cache.get(path)
    }

    /// Asks for `path` ahead of time (the frames next to the playhead).
    pub fn prefetch(&mut self, path: &PathBuf) {
        self.collect();
        if !self.cache.contains_key(path) {
            self.request(path);
        }
    }

    fn request(&mut self, path: &PathBuf) {
        if self.pending.contains(path) {
            return;
        }
        match self.requests.try_send(path.clone()) {
            Ok(()) => self.pending.push(path.clone()),
            // Full: asked again on a later frame. Disconnected: the thread is gone, and every
            // frame stays "loading"; the caller shows that.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
        }
    }

    /// Takes what the thread decoded.
    fn collect(&mut self) {
        while let Ok((path, decoded)) = self.results.try_recv() {
            self.pending.retain(|p| *p != path);
            let Some(decoded) = decoded else {
                continue;
            };
            if self.cache.insert(path.clone(), decoded).is_none() {
                self.order.push_back(path);
            }
            while self.order.len() > self.capacity {
                if let Some(oldest) = self.order.pop_front() {
                    self.cache.remove(&oldest);
                }
            }
        }
    }

    pub fn is_loading(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// The largest frame decoded (8192 x 8192; 256 MB as RGBA): a larger header is refused before
/// any pixel memory is taken.
const MAX_FRAME_PIXELS: usize = 8192 * 8192;

fn decode(path: &PathBuf) -> Result<Frame, String> {
    let bytes =
        std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let header = turbojpeg::read_header(&bytes)
        .map_err(|err| format!("{} is not a JPEG we can decode: {err}", path.display()))?;
    if header.width.saturating_mul(header.height) > MAX_FRAME_PIXELS {
        return Err(format!(
            "{} is {}x{}, larger than any frame we decode",
            path.display(),
            header.width,
            header.height
        ));
    }
    let image: turbojpeg::Image<Vec<u8>> =
        turbojpeg::decompress(&bytes, turbojpeg::PixelFormat::RGBA)
            .map_err(|err| format!("{} is not a JPEG we can decode: {err}", path.display()))?;
    Ok(Frame {
        width: image.width,
        height: image.height,
        rgba: Arc::new(image.pixels),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_arrives_and_a_broken_file_says_why() {
        let dir = tempfile::tempdir().expect("temp dir");
        let good = dir.path().join("good.jpg");
        let image = turbojpeg::Image {
            pixels: vec![128u8; 16 * 8 * 3],
            width: 16,
            pitch: 16 * 3,
            height: 8,
            format: turbojpeg::PixelFormat::RGB,
        };
        let jpeg = turbojpeg::compress(image.as_deref(), 90, turbojpeg::Subsamp::Sub2x2)
            .expect("compress");
        std::fs::write(&good, &*jpeg).expect("write");
        let broken = dir.path().join("broken.jpg");
        std::fs::write(&broken, b"not a jpeg").expect("write");

        let mut loader = FrameLoader::start(4, || {}).expect("loader");
        let wait = |loader: &mut FrameLoader, path: &PathBuf| {
            for _ in 0..200 {
                if let Some(result) = loader.get(path) {
                    return result.clone();
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            panic!("{} never arrived", path.display());
        };
        let frame = wait(&mut loader, &good).expect("decoded");
        assert_eq!((frame.width, frame.height), (16, 8));
        assert_eq!(frame.rgba.len(), 16 * 8 * 4);
        let err = wait(&mut loader, &broken).expect_err("broken");
        assert!(err.contains("broken.jpg"), "{err}");
    }

    #[test]
    fn frames_the_playhead_left_behind_are_skipped_not_decoded() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Files that do not exist: a decoded one would come back as an error in the cache.
        let paths: Vec<PathBuf> = (0..6)
            .map(|i| dir.path().join(format!("{i}.jpg")))
            .collect();
        let mut loader = FrameLoader::start(16, || {}).expect("loader");
        // Only the last is wanted by the time the thread gets to the queue.
        if let Ok(mut wanted) = loader.wanted.lock() {
            wanted.push(paths[5].clone());
        }
        for path in &paths {
            loader.prefetch(path);
        }
        for _ in 0..200 {
            loader.collect();
            if !loader.is_loading() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!loader.is_loading());
        let decoded: Vec<&PathBuf> = paths
            .iter()
            .filter(|p| loader.cache.contains_key(*p))
            .collect();
        assert_eq!(decoded, [&paths[5]]);
        // Skipped is not cached: asked again, it is decoded.
        loader.want(std::slice::from_ref(&paths[1]));
        for _ in 0..200 {
            if loader.get(&paths[1]).is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("a skipped frame never arrived when wanted again");
    }
}
