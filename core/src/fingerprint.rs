//! Perceptual fingerprints of frames, to catch one drive uploaded twice (under a new session id,
//! another wallet, re-encoded, trimmed, scaled). Pure: thumbnails and numbers in, verdicts out.
//!
//! - Every frame gets a 64-bit hash from the low spatial frequencies of its grey thumbnail (the
//!   one motion analysis already makes): the signs of 64 DCT coefficients against their median.
//!   Bit rate, resolution and small crops move the fine detail, not these; a flat picture (black,
//!   a fade) has no hash, since its bits would be noise that every flat picture shares.
//! - A segment's fingerprint is its frames' hashes with their video times ([`SegmentFingerprint`]).
//! - The ledger indexes a few anchor frames per segment under four 16-bit keys each
//!   ([`SegmentFingerprint::index_keys`]); a new segment asks with every frame's keys
//!   ([`SegmentFingerprint::lookup_keys`]), so a hash with up to 3 flipped bits always shares a key
//!   with its anchor, and most with more.
//! - [`find_duplicate`] then compares the new segment with the candidates' whole fingerprints:
//!   the same drive matches frame after frame at one time offset for seconds on end; a different
//!   drive through the same street matches, at best, where the two paths cross.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::clean::{Bound, CheckName, CheckResult};
use crate::motion::GrayThumb;

/// Hashes are made on this grid (the 128x64 thumbnail averaged 2x2).
const GRID_WIDTH: usize = 64;
const GRID_HEIGHT: usize = 32;
/// Which DCT coefficients (horizontal `u`, vertical `v`) make the 64 bits: the lowest ones but the
/// mean, in order of `u + v`.
const COEFFICIENTS: usize = 64;
/// Under this mean absolute AC coefficient (luma units) a picture is flat: no hash.
const MIN_ENERGY: f32 = 1.5;
/// An anchor frame (one indexed) at most this often, video time.
pub const ANCHOR_EVERY_MS: i64 = 500;
/// Most frames one fingerprint keeps (a 5 s segment at 60 fps).
pub const MAX_FRAMES: usize = 300;
/// Bytes of one frame in the stored form: `pts_ms` (i32) and the hash (u64), little-endian.
const FRAME_BYTES: usize = 12;
/// The stored form's first byte.
const FORMAT_VERSION: u8 = 1;

/// The perceptual hash of one frame's grey thumbnail; `None` for a flat picture.
pub fn frame_hash(thumb: &GrayThumb) -> Option<u64> {
    let grid = downsample(thumb)?;
    let coefficients = low_dct(&grid);
    let energy = coefficients.iter().map(|c| c.abs()).sum::<f32>() / COEFFICIENTS as f32;
    if !energy.is_finite() || energy < MIN_ENERGY {
        return None;
    }
    let mut sorted = coefficients;
    sorted.sort_by(f32::total_cmp);
    let median = (sorted[COEFFICIENTS / 2 - 1] + sorted[COEFFICIENTS / 2]) / 2.0;
    let mut hash = 0u64;
    for (k, &c) in coefficients.iter().enumerate() {
        if c > median {
            // Coefficient k goes to band k % 4: each 16-bit band mixes low and higher frequencies,
            // so that no band is only the coarse layout every street scene shares.
            hash |= 1 << ((k % 4) * 16 + k / 4);
        }
    }
    Some(hash)
}

/// The thumbnail averaged down to the hashing grid.
fn downsample(thumb: &GrayThumb) -> Option<Vec<f32>> {
    let (w, h) = (thumb.width, thumb.height);
    if w < GRID_WIDTH || h < GRID_HEIGHT || thumb.pixels.len() != w * h {
        return None;
    }
    let mut grid = vec![0f32; GRID_WIDTH * GRID_HEIGHT];
    let mut counts = vec![0f32; GRID_WIDTH * GRID_HEIGHT];
    for y in 0..h {
        let gy = y * GRID_HEIGHT / h;
        for x in 0..w {
            let cell = gy * GRID_WIDTH + x * GRID_WIDTH / w;
            grid[cell] += thumb.pixels[y * w + x];
            counts[cell] += 1.0;
        }
    }
    for (value, count) in grid.iter_mut().zip(&counts) {
        *value /= count.max(1.0);
    }
    Some(grid)
}

/// The (u, v) pairs of [`COEFFICIENTS`], lowest first.
fn coefficient_order() -> [(usize, usize); COEFFICIENTS] {
    let mut pairs: Vec<(usize, usize)> = (0..12)
        .flat_map(|v| (0..12).map(move |u| (u, v)))
        .filter(|&(u, v)| (u, v) != (0, 0))
        .collect();
    pairs.sort_by_key(|&(u, v)| (u + v, v, u));
    let mut order = [(0, 0); COEFFICIENTS];
    order.copy_from_slice(&pairs[..COEFFICIENTS]);
    order
}

/// The [`COEFFICIENTS`] lowest DCT-II coefficients of the grid (scaled to luma units).
fn low_dct(grid: &[f32]) -> [f32; COEFFICIENTS] {
    let order = coefficient_order();
    let max_u = order.iter().map(|p| p.0).max().unwrap_or(0) + 1;

    let basis = |n: usize, k: usize, x: usize| {
        (std::f32::consts::PI * (2 * x + 1) as f32 * k as f32 / (2 * n) as f32).cos()
    };
    // Rows first: for every grid row, the horizontal frequencies it needs.
    let mut rows = vec![0f32; GRID_HEIGHT * max_u];
    for y in 0..GRID_HEIGHT {
        let line = &grid[y * GRID_WIDTH..(y + 1) * GRID_WIDTH];
        for u in 0..max_u {
            rows[y * max_u + u] = line
                .iter()
                .enumerate()
                .map(|(x, &p)| p * basis(GRID_WIDTH, u, x))
                .sum::<f32>()
                / GRID_WIDTH as f32;
        }
    }
    let mut out = [0f32; COEFFICIENTS];
    for (slot, &(u, v)) in out.iter_mut().zip(&order) {
        *slot = (0..GRID_HEIGHT)
            .map(|y| rows[y * max_u + u] * basis(GRID_HEIGHT, v, y))
            .sum::<f32>()
            / GRID_HEIGHT as f32
            * 4.0;
    }
    out
}

/// Bits that differ between two hashes.
pub fn distance(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// One frame of a fingerprint: its video time and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FingerprintFrame {
    /// Presentation time, ms, on the session's video clock.
    pub pts_ms: i64,
    pub hash: u64,
}

/// The frames of one segment that have a hash (flat pictures have none), in decode order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentFingerprint {
    pub frames: Vec<FingerprintFrame>,
}

/// A stored fingerprint that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable fingerprint: {0}")]
pub struct FingerprintError(String);

impl SegmentFingerprint {
    /// A fingerprint of `frames` (in decode order), at most [`MAX_FRAMES`] of them: a segment
    /// holding more (a hostile frame rate) keeps frames spread evenly over it, so that comparing
    /// two segments stays bounded.
    pub fn new(frames: Vec<FingerprintFrame>) -> Self {
        if frames.len() <= MAX_FRAMES {
            return Self { frames };
        }
        let step = frames.len() as f64 / MAX_FRAMES as f64;
        let frames = (0..MAX_FRAMES)
            .filter_map(|i| frames.get((i as f64 * step) as usize).copied())
            .collect();
        Self { frames }
    }

    /// The stored form: a version byte, the first frame's time (i64), then 12 bytes per frame
    /// (its time after the first, i32, and its hash), little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let base = self.frames.first().map_or(0, |f| f.pts_ms);
        let mut bytes = Vec::with_capacity(9 + FRAME_BYTES * self.frames.len());
        bytes.push(FORMAT_VERSION);
        bytes.extend_from_slice(&base.to_le_bytes());
        for frame in &self.frames {
            // A segment spans seconds: its times after the first fit an i32 by far.
            let delta = frame
                .pts_ms
                .saturating_sub(base)
                .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
            bytes.extend_from_slice(&delta.to_le_bytes());
            bytes.extend_from_slice(&frame.hash.to_le_bytes());
        }
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FingerprintError> {
        let Some((&version, rest)) = bytes.split_first() else {
            return Err(FingerprintError("empty".to_owned()));
        };
        if version != FORMAT_VERSION {
            return Err(FingerprintError(format!("format version {version}")));
        }
        let Some((base, rest)) = rest.split_first_chunk::<8>() else {
            return Err(FingerprintError("no base time".to_owned()));
        };
        let base = i64::from_le_bytes(*base);
        if rest.len() % FRAME_BYTES != 0 {
            return Err(FingerprintError(format!(
                "{} bytes is not a whole number of frames",
                rest.len()
            )));
        }
        if rest.len() / FRAME_BYTES > MAX_FRAMES {
            return Err(FingerprintError(format!(
                "{} frames, more than {MAX_FRAMES}",
                rest.len() / FRAME_BYTES
            )));
        }
        let frames = rest
            .chunks_exact(FRAME_BYTES)
            .map(|chunk| {
                let (delta, hash) = chunk.split_at(4);
                let mut delta_bytes = [0u8; 4];
                delta_bytes.copy_from_slice(delta);
                let mut hash_bytes = [0u8; 8];
                hash_bytes.copy_from_slice(hash);
                FingerprintFrame {
                    pts_ms: base.saturating_add(i64::from(i32::from_le_bytes(delta_bytes))),
                    hash: u64::from_le_bytes(hash_bytes),
                }
            })
            .collect();
        Ok(Self { frames })
    }

    /// The keys the ledger indexes this segment under: four per anchor frame (one every
    /// [`ANCHOR_EVERY_MS`]), sorted, without repeats.
    pub fn index_keys(&self) -> Vec<i64> {
        let mut keys = Vec::new();
        let mut next_anchor = i64::MIN;
        for frame in &self.frames {
            if frame.pts_ms >= next_anchor {
                keys.extend(band_keys(frame.hash));
                next_anchor = frame.pts_ms + ANCHOR_EVERY_MS;
            }
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// The keys to look this segment up with: every frame's four, sorted, without repeats.
    pub fn lookup_keys(&self) -> Vec<i64> {
        let mut keys: Vec<i64> = self.frames.iter().flat_map(|f| band_keys(f.hash)).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// The four index keys of a hash: band `b` (0-3) and its 16 bits, as `b << 16 | bits`.
pub fn band_keys(hash: u64) -> [i64; 4] {
    std::array::from_fn(|band| ((band as i64) << 16) | ((hash >> (16 * band)) & 0xFFFF) as i64)
}

/// When two segments are one drive (`[duplicate]` in `config/pipeline.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DuplicateConfig {
    /// Two frames match when their hashes differ in at most this many of 64 bits.
    pub max_distance: u32,
    /// A frame is compared with the earlier frames within this of its time (after the offset).
    pub time_tolerance_ms: i64,
    /// Matched frames this far apart or less belong to one run.
    pub max_gap_ms: i64,
    /// A run of matched frames this long (video time) makes a duplicate...
    pub min_run_ms: i64,
    /// ...when it also covers this share of the segment's span (two drives through one street
    /// match, at best, for the stretch where their paths and speeds coincide: a shared start from
    /// the spawn point, a crossing)...
    pub min_run_share: f64,
    /// ...holds at least this many matched frames...
    pub min_run_frames: usize,
    /// ...and at least this share of the frames it spans match...
    pub min_matched_share: f64,
    /// ...and its pictures change: two of its frames differ in at least this many bits (a still
    /// picture, a lobby, is the same in every session).
    pub min_run_spread: u32,
}

impl Default for DuplicateConfig {
    fn default() -> Self {
        Self {
            max_distance: 10,
            time_tolerance_ms: 150,
            max_gap_ms: 600,
            min_run_ms: 2000,
            min_run_share: 0.7,
            min_run_frames: 10,
            min_matched_share: 0.9,
            min_run_spread: 8,
        }
    }
}

/// One earlier segment a new one is compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlierSegment {
    pub wallet: String,
    pub session_id: String,
    pub segment: usize,
    pub fingerprint: SegmentFingerprint,
}

/// What the ledger's index hands over for one segment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EarlierLookup {
    /// The earlier segments sharing the most keys with it (and their neighbours in their
    /// sessions), of any wallet, never of its own session.
    pub segments: Vec<EarlierSegment>,
    /// The ledger's content sequence at the lookup: what is recorded later was not seen.
    pub checked_through: i64,
}

/// The evidence that a segment repeats an earlier one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DuplicateMatch {
    /// The earlier segment (the one whose frames the run matches most).
    pub wallet: String,
    pub session_id: String,
    pub segment: usize,
    /// Earlier video time minus this segment's video time, ms.
    pub offset_ms: i64,
    /// Length of the longest run of matching frames, ms of this segment's video time.
    pub run_ms: i64,
    /// The first and last frame times of the run, ms, on this segment's video clock.
    pub run_from_ms: i64,
    pub run_to_ms: i64,
    /// How much of this segment could be compared at that offset (the earlier session has
    /// segment frames there), ms: the run is held to this span.
    pub comparable_ms: i64,
    /// Frames of this segment that match in the run, and frames the run spans.
    pub frames_matched: usize,
    pub frames_in_run: usize,
    /// Mean bits that differ over the matched frames (of 64).
    pub mean_distance: f64,
    /// Most bits between two of the run's pictures: how much the view changed during it.
    pub spread_bits: u32,
}

/// The longest run of `query`'s frames matching frames of one earlier session (its segments
/// given together, in any order) at one time offset, whether or not it is long enough.
fn best_run(
    query: &[FingerprintFrame],
    earlier: &[(usize, FingerprintFrame)],
    config: &DuplicateConfig,
) -> Option<DuplicateMatch> {
    // Offsets that close frame pairs vote for, in bins of 100 ms.
    const BIN_MS: i64 = 100;
    let mut votes: BTreeMap<i64, usize> = BTreeMap::new();
    for q in query {
        for (_, e) in earlier {
            if distance(q.hash, e.hash) <= config.max_distance {
                *votes
                    .entry((e.pts_ms - q.pts_ms).div_euclid(BIN_MS))
                    .or_default() += 1;
            }
        }
    }
    // The few most voted offsets (with their neighbours) are tried.
    let mut ranked: Vec<(i64, usize)> = votes
        .keys()
        .map(|&bin| {
            let around = (bin - 1..=bin + 1)
                .map(|b| votes.get(&b).copied().unwrap_or(0))
                .sum();
            (bin, around)
        })
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
        .iter()
        .take(3)
        .filter_map(|&(bin, _)| run_at(query, earlier, bin * BIN_MS + BIN_MS / 2, config))
        .max_by(|a, b| (a.run_ms, a.frames_matched).cmp(&(b.run_ms, b.frames_matched)))
}

/// The longest run at one offset.
fn run_at(
    query: &[FingerprintFrame],
    earlier: &[(usize, FingerprintFrame)],
    offset: i64,
    config: &DuplicateConfig,
) -> Option<DuplicateMatch> {
    let tolerance = config.time_tolerance_ms + 50;
    // For each query frame, the closest earlier hash within the window, if close enough.
    // (bits, earlier segment, earlier time - query time)
    let matches: Vec<Option<(u32, usize, i64)>> = query
        .iter()
        .map(|q| {
            let at = q.pts_ms + offset;
            earlier
                .iter()
                .filter(|(_, e)| (e.pts_ms - at).abs() <= tolerance)
                .map(|(segment, e)| {
                    (
                        distance(q.hash, e.hash),
                        (e.pts_ms - at).abs(),
                        *segment,
                        e.pts_ms - q.pts_ms,
                    )
                })
                .min()
                .filter(|m| m.0 <= config.max_distance)
                .map(|(d, _, segment, lag)| (d, segment, lag))
        })
        .collect();
    // The query frames the earlier session has frames near (its segments leave gaps).
    let comparable: Vec<i64> = query
        .iter()
        .map(|q| q.pts_ms + offset)
        .filter(|at| {
            earlier
                .iter()
                .any(|(_, e)| (e.pts_ms - at).abs() <= config.max_gap_ms)
        })
        .map(|at| at - offset)
        .collect();
    let comparable_ms = match (comparable.first(), comparable.last()) {
        (Some(first), Some(last)) => last - first,
        _ => 0,
    };
    let mut best: Option<DuplicateMatch> = None;
    let mut start = 0;
    while start < query.len() {
        if matches[start].is_none() {
            start += 1;
            continue;
        }
        // Extend the run while matched frames follow within the gap.
        let mut end = start;
        for next in start + 1..query.len() {
            if query[next].pts_ms - query[end].pts_ms > config.max_gap_ms {
                break;
            }
            if matches[next].is_some() {
                end = next;
            }
        }
        let matched: Vec<(usize, u32, usize)> = (start..=end)
            .filter_map(|i| matches[i].map(|(d, segment, _)| (i, d, segment)))
            .collect();
        // The offset the run's pairs say (their median), finer than the vote's bin.
        let mut lags: Vec<i64> = (start..=end)
            .filter_map(|i| matches[i].map(|m| m.2))
            .collect();
        lags.sort_unstable();
        let spread_bits = matched
            .iter()
            .flat_map(|&(i, _, _)| {
                matched
                    .iter()
                    .map(move |&(j, _, _)| distance(query[i].hash, query[j].hash))
            })
            .max()
            .unwrap_or(0);
        let mut per_segment: BTreeMap<usize, usize> = BTreeMap::new();
        for &(_, _, segment) in &matched {
            *per_segment.entry(segment).or_default() += 1;
        }
        let segment = per_segment
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map_or(0, |(&segment, _)| segment);
        let found = DuplicateMatch {
            wallet: String::new(),
            session_id: String::new(),
            segment,
            offset_ms: lags.get(lags.len() / 2).copied().unwrap_or(offset),
            run_ms: query[end].pts_ms - query[start].pts_ms,
            run_from_ms: query[start].pts_ms,
            run_to_ms: query[end].pts_ms,
            comparable_ms,
            frames_matched: matched.len(),
            frames_in_run: end - start + 1,
            mean_distance: matched.iter().map(|m| f64::from(m.1)).sum::<f64>()
                / matched.len().max(1) as f64,
            spread_bits,
        };
        if best
            .as_ref()
            .is_none_or(|b| (found.run_ms, found.frames_matched) > (b.run_ms, b.frames_matched))
        {
            best = Some(found);
        }
        start = end + 1;
    }
    best
}

/// Whether a run is a duplicate under `config`.
fn is_duplicate(run: &DuplicateMatch, config: &DuplicateConfig) -> bool {
    run.run_ms >= config.min_run_ms
        && run.run_ms as f64 >= config.min_run_share * run.comparable_ms as f64
        && run.frames_matched >= config.min_run_frames
        && run.frames_matched as f64 >= config.min_matched_share * run.frames_in_run as f64
        && run.spread_bits >= config.min_run_spread
}

/// What comparing a segment with the earlier ones found.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateFinding {
    /// The strongest run against any earlier session, duplicate or not (for the check's value).
    pub strongest: Option<DuplicateMatch>,
    /// Whether it is long, full and changing enough to be the same drive.
    pub duplicate: bool,
}

/// Compares `query` with earlier segments (of any sessions; each session's segments are taken
/// together, so a run may cross from one of its segments into the next).
pub fn find_duplicate(
    query: &SegmentFingerprint,
    earlier: &[EarlierSegment],
    config: &DuplicateConfig,
) -> DuplicateFinding {
    let mut sessions: BTreeMap<(&str, &str), Vec<(usize, FingerprintFrame)>> = BTreeMap::new();
    for segment in earlier {
        sessions
            .entry((&segment.wallet, &segment.session_id))
            .or_default()
            .extend(
                segment
                    .fingerprint
                    .frames
                    .iter()
                    .map(|f| (segment.segment, *f)),
            );
    }
    let mut strongest: Option<(DuplicateMatch, bool)> = None;
    for ((wallet, session_id), frames) in sessions {
        let Some(mut run) = best_run(&query.frames, &frames, config) else {
            continue;
        };
        run.wallet = wallet.to_owned();
        run.session_id = session_id.to_owned();
        let duplicate = is_duplicate(&run, config);
        if strongest.as_ref().is_none_or(|(b, b_dup)| {
            (duplicate, run.run_ms, run.frames_matched) > (*b_dup, b.run_ms, b.frames_matched)
        }) {
            strongest = Some((run, duplicate));
        }
    }
    DuplicateFinding {
        duplicate: strongest.as_ref().is_some_and(|(_, dup)| *dup),
        strongest: strongest.map(|(run, _)| run),
    }
}

/// The `duplicate` check of a segment from what [`find_duplicate`] found; `frames` are the
/// segment's frames with their times, to flag the ones in the matching run.
pub fn duplicate_check(
    finding: &DuplicateFinding,
    config: &DuplicateConfig,
    frames: &[(usize, i64)],
) -> CheckResult {
    let share = finding.strongest.as_ref().map_or(0.0, |run| {
        if run.comparable_ms > 0 {
            run.run_ms as f64 / run.comparable_ms as f64
        } else {
            0.0
        }
    });
    let seconds = |ms: i64| ms as f64 / 1000.0;
    let reason = match (&finding.strongest, finding.duplicate) {
        (Some(run), true) => format!(
            "the same drive as {} segment_{:03} of wallet {}: {:.1} s of frames ({} of {}) \
             match it, {:.1} of 64 bits apart on average; the earlier segment keeps its pay",
            run.session_id,
            run.segment,
            run.wallet,
            seconds(run.run_ms),
            run.frames_matched,
            run.frames_in_run,
            run.mean_distance,
        ),
        (Some(run), false) => format!(
            "no earlier drive repeated: the longest match, {:.1} s of {:.1} s (with {} \
             segment_{:03}), is where two drives look alike, not one drive again",
            seconds(run.run_ms),
            seconds(run.comparable_ms),
            run.session_id,
            run.segment,
        ),
        (None, _) => "no earlier segment shares a frame with this one".to_owned(),
    };
    let flagged = match (&finding.strongest, finding.duplicate) {
        (Some(run), true) => frames
            .iter()
            .filter(|(_, pts)| (run.run_from_ms..=run.run_to_ms).contains(pts))
            .map(|(frame, _)| *frame)
            .collect(),
        _ => Vec::new(),
    };
    CheckResult {
        check: CheckName::Duplicate,
        metric: "share of the comparable span matching an earlier segment".to_owned(),
        value: share,
        threshold: config.min_run_share,
        bound: Bound::AtMost,
        passed: !finding.duplicate,
        reason,
        frames: flagged,
        duplicate_of: finding.strongest.clone().filter(|_| finding.duplicate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thumb(f: impl Fn(usize, usize) -> f32) -> GrayThumb {
        GrayThumb {
            width: 128,
            height: 64,
            pixels: (0..64)
                .flat_map(|y| (0..128).map(move |x| (x, y)))
                .map(|(x, y)| f(x, y))
                .collect(),
        }
    }

    #[test]
    fn flat_pictures_have_no_hash() {
        assert_eq!(frame_hash(&thumb(|_, _| 16.0)), None);
        assert_eq!(frame_hash(&thumb(|x, _| 100.0 + (x % 2) as f32)), None);
    }

    #[test]
    fn a_brighter_or_noisier_copy_keeps_its_hash_and_another_picture_does_not() {
        let scene = |x: usize, y: usize| {
            let (x, y) = (x as f32, y as f32);
            100.0 + 60.0 * (x / 9.0).sin() * (y / 7.0).cos() + 40.0 * ((x + 2.0 * y) / 23.0).sin()
        };
        let a = frame_hash(&thumb(scene)).expect("a textured picture has a hash");
        let brighter = frame_hash(&thumb(|x, y| scene(x, y) * 1.1 + 5.0)).expect("hash");
        let noisy =
            frame_hash(&thumb(|x, y| scene(x, y) + ((x * 7 + y * 13) % 5) as f32)).expect("hash");
        let other = frame_hash(&thumb(|x, y| scene(127 - x, y))).expect("hash");
        assert!(distance(a, brighter) <= 2, "{}", distance(a, brighter));
        assert!(distance(a, noisy) <= 4, "{}", distance(a, noisy));
        assert!(distance(a, other) >= 16, "{}", distance(a, other));
    }

    #[test]
    fn stored_form_round_trips_and_refuses_garbage() {
        let fingerprint = SegmentFingerprint {
            frames: vec![
                FingerprintFrame {
                    pts_ms: 0,
                    hash: u64::MAX,
                },
                FingerprintFrame {
                    pts_ms: 66_000,
                    hash: 0x0123_4567_89ab_cdef,
                },
            ],
        };
        // Times far past an i32 of ms (a container clock that starts late) keep their spacing.
        let late = SegmentFingerprint {
            frames: vec![
                FingerprintFrame {
                    pts_ms: 3_000_000_000_000,
                    hash: 1,
                },
                FingerprintFrame {
                    pts_ms: 3_000_000_000_066,
                    hash: 2,
                },
            ],
        };
        assert_eq!(SegmentFingerprint::from_bytes(&late.to_bytes()), Ok(late));
        let many = SegmentFingerprint::new(
            (0..10_000)
                .map(|i| FingerprintFrame {
                    pts_ms: i,
                    hash: i as u64,
                })
                .collect(),
        );
        assert_eq!(many.frames.len(), MAX_FRAMES);
        assert_eq!(many.frames.first().map(|f| f.pts_ms), Some(0));
        let bytes = fingerprint.to_bytes();
        assert_eq!(SegmentFingerprint::from_bytes(&bytes), Ok(fingerprint));
        assert!(SegmentFingerprint::from_bytes(&[]).is_err());
        assert!(SegmentFingerprint::from_bytes(&[9, 0, 0]).is_err());
        assert!(SegmentFingerprint::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn a_hash_with_three_flipped_bits_shares_a_key_with_its_anchor() {
        let anchor = 0xdead_beef_0bad_f00d_u64;
        for flips in [[0, 17, 40], [1, 2, 3], [15, 31, 63]] {
            let copy = flips.iter().fold(anchor, |h, bit| h ^ (1 << bit));
            let shared = band_keys(anchor)
                .iter()
                .filter(|k| band_keys(copy).contains(k))
                .count();
            assert!(shared >= 1, "{flips:?}");
        }
    }

    /// A drive as hashes: frame `i` of a walk through hash space, changing a few bits per step.
    fn walk(seed: u64, frames: usize, step_ms: i64, start_ms: i64) -> SegmentFingerprint {
        let mut state = seed;
        let mut hash = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let frames = (0..frames)
            .map(|i| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                hash ^= 1 << (state >> 58);
                hash ^= 1 << ((state >> 52) & 63);
                FingerprintFrame {
                    pts_ms: start_ms + i as i64 * step_ms,
                    hash,
                }
            })
            .collect();
        SegmentFingerprint { frames }
    }

    fn earlier(fingerprint: SegmentFingerprint, segment: usize) -> EarlierSegment {
        EarlierSegment {
            wallet: "W".to_owned(),
            session_id: "S".to_owned(),
            segment,
            fingerprint,
        }
    }

    #[test]
    fn the_same_drive_shifted_in_time_matches_and_another_does_not() {
        let config = DuplicateConfig::default();
        let original = walk(7, 75, 66, 10_000);
        // The copy starts 2 s later on its own clock and lost every other frame.
        let copy = SegmentFingerprint {
            frames: original
                .frames
                .iter()
                .step_by(2)
                .map(|f| FingerprintFrame {
                    pts_ms: f.pts_ms - 8_000,
                    hash: f.hash ^ 0b101,
                })
                .collect(),
        };
        let found = find_duplicate(&copy, &[earlier(original.clone(), 3)], &config);
        assert!(found.duplicate, "{found:?}");
        let run = found.strongest.expect("a run");
        assert_eq!((run.segment, run.session_id.as_str()), (3, "S"));
        assert!((run.offset_ms - 8_000).abs() <= 100, "{}", run.offset_ms);
        let other = walk(8, 75, 66, 10_000);
        assert!(!find_duplicate(&other, &[earlier(original, 3)], &config).duplicate);
    }

    #[test]
    fn a_still_picture_never_makes_a_duplicate() {
        let config = DuplicateConfig::default();
        let still = SegmentFingerprint {
            frames: (0..75)
                .map(|i| FingerprintFrame {
                    pts_ms: i * 66,
                    hash: 0x00ff_00ff_1234_5678 ^ (i as u64 % 2),
                })
                .collect(),
        };
        let found = find_duplicate(&still, &[earlier(still.clone(), 1)], &config);
        assert!(!found.duplicate, "{found:?}");
        assert!(found.strongest.is_some_and(|run| run.run_ms >= 4_000));
    }

    #[test]
    fn a_run_crosses_from_one_earlier_segment_into_the_next() {
        let config = DuplicateConfig::default();
        let drive = walk(11, 150, 66, 0);
        let (first, second) = drive.frames.split_at(75);
        let query = SegmentFingerprint {
            frames: drive.frames[45..105].to_vec(),
        };
        let segments = [
            earlier(
                SegmentFingerprint {
                    frames: first.to_vec(),
                },
                1,
            ),
            earlier(
                SegmentFingerprint {
                    frames: second.to_vec(),
                },
                2,
            ),
        ];
        let found = find_duplicate(&query, &segments, &config);
        assert!(found.duplicate, "{found:?}");
        let run = found.strongest.expect("a run");
        assert!(run.run_ms >= 3_800, "{run:?}");
    }
}
