//! Global motion measured in the video: the shift between consecutive frames, by phase
//! correlation of small grey thumbnails. Pure: thumbnails in, shifts out.
//!
//! A camera that yaws moves the whole picture sideways; one that drives forward moves the lower
//! half of it down. Both show as a global shift, which ALIGN correlates with the motion the logs
//! predict.

use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use serde::Serialize;

/// Thumbnail size: small enough to be cheap, large enough for sub-pixel shifts of a street scene.
pub const THUMB_WIDTH: usize = 128;
pub const THUMB_HEIGHT: usize = 64;

/// A small grey image, luma averaged over boxes of the source.
#[derive(Debug, Clone, PartialEq)]
pub struct GrayThumb {
    pub width: usize,
    pub height: usize,
    /// Row-major, 0-255.
    pub pixels: Vec<f32>,
}

impl GrayThumb {
    /// Box-averages a luma plane (`stride` bytes per row) down to `width` x `height`.
    pub fn from_luma(
        plane: &[u8],
        stride: usize,
        src_width: usize,
        src_height: usize,
        width: usize,
        height: usize,
    ) -> Option<Self> {
        if src_width < width || src_height < height || width == 0 || height == 0 {
            return None;
        }
        if stride < src_width || plane.len() < stride * (src_height - 1) + src_width {
            return None;
        }
        // Bin `b` of a row covers the columns `x` with `x * width / src_width == b`: a contiguous
        // run. The rows of one row bin are first added up column by column (a loop the compiler
        // vectorises), then each run of columns is summed once per row bin. This is the decoder
        // thread's hot loop: two thumbnails of every 1280x704 frame.
        let mut column_starts: Vec<usize> = (0..width)
            .map(|b| (b * src_width).div_ceil(width))
            .collect();
        column_starts.push(src_width);
        let mut sums = vec![0u64; width * height];
        let mut row_counts = vec![0u32; height];
        let mut columns = vec![0u32; src_width];
        let mut y = 0;
        while y < src_height {
            let row_bin = y * height / src_height;
            columns.iter_mut().for_each(|sum| *sum = 0);
            let mut rows = 0;
            while y < src_height && y * height / src_height == row_bin {
                let row = &plane[y * stride..y * stride + src_width];
                for (sum, &value) in columns.iter_mut().zip(row) {
                    *sum += u32::from(value);
                }
                rows += 1;
                y += 1;
            }
            row_counts[row_bin] += rows;
            let out = &mut sums[row_bin * width..(row_bin + 1) * width];
            for (bin, total) in out.iter_mut().enumerate() {
                let run = &columns[column_starts[bin]..column_starts[bin + 1]];
                *total += run.iter().map(|&v| u64::from(v)).sum::<u64>();
            }
        }
        let counts: Vec<u32> = (0..width * height)
            .map(|i| {
                let (row_bin, bin) = (i / width, i % width);
                row_counts[row_bin] * (column_starts[bin + 1] - column_starts[bin]) as u32
            })
            .collect();
        let pixels = sums
            .iter()
            .zip(&counts)
            .map(|(&sum, &count)| sum as f32 / count.max(1) as f32)
            .collect();
        Some(Self {
            width,
            height,
            pixels,
        })
    }

    pub fn mean(&self) -> f32 {
        self.pixels.iter().sum::<f32>() / self.pixels.len().max(1) as f32
    }

    /// Mean absolute difference to another thumbnail of the same size, each taken about its own
    /// mean so that a global brightness change does not count as motion.
    pub fn mean_abs_diff(&self, other: &GrayThumb) -> f32 {
        if self.pixels.len() != other.pixels.len() || self.pixels.is_empty() {
            return f32::NAN;
        }
        let (ma, mb) = (self.mean(), other.mean());
        let sum: f32 = self
            .pixels
            .iter()
            .zip(&other.pixels)
            .map(|(a, b)| ((a - ma) - (b - mb)).abs())
            .sum();
        sum / self.pixels.len() as f32
    }
}

/// The shift that takes one thumbnail to the next.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Shift {
    /// Content moved right by this many thumbnail pixels (negative: left).
    pub dx_px: f64,
    /// Content moved down by this many thumbnail pixels (negative: up).
    pub dy_px: f64,
    /// Height of the normalised correlation peak, 0-1: near 1 for a clean translation, near 0 when
    /// the frames share nothing (a cut, a blank screen).
    pub peak: f64,
}

/// Phase correlation with plans and a window made once for a thumbnail size.
pub struct PhaseCorrelator {
    width: usize,
    height: usize,
    window: Vec<f32>,
    row_fft: Arc<dyn Fft<f32>>,
    row_ifft: Arc<dyn Fft<f32>>,
    column_fft: Arc<dyn Fft<f32>>,
    column_ifft: Arc<dyn Fft<f32>>,
}

impl std::fmt::Debug for PhaseCorrelator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhaseCorrelator")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

/// The spectrum of one windowed thumbnail, kept so that each frame is transformed once.
#[derive(Debug, Clone)]
pub struct Spectrum(Vec<Complex32>);

impl PhaseCorrelator {
    pub fn new(width: usize, height: usize) -> Self {
        let mut planner = FftPlanner::new();
        let hann =
            |i: usize, n: usize| 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / n as f32).cos();
        let window = (0..height)
            .flat_map(|y| (0..width).map(move |x| hann(x, width) * hann(y, height)))
            .collect();
        Self {
            width,
            height,
            window,
            row_fft: planner.plan_fft_forward(width),
            row_ifft: planner.plan_fft_inverse(width),
            column_fft: planner.plan_fft_forward(height),
            column_ifft: planner.plan_fft_inverse(height),
        }
    }

    /// Windowed 2-D spectrum of a thumbnail (mean removed). `None` for a thumbnail of another size.
    pub fn spectrum(&self, thumb: &GrayThumb) -> Option<Spectrum> {
        if (thumb.width, thumb.height) != (self.width, self.height) {
            return None;
        }
        let mean = thumb.mean();
        let mut data: Vec<Complex32> = thumb
            .pixels
            .iter()
            .zip(&self.window)
            .map(|(&p, &w)| Complex32::new((p - mean) * w, 0.0))
            .collect();
        self.transform(&mut data, false);
        Some(Spectrum(data))
    }

    /// The shift from `previous` to `current`.
    pub fn shift(&self, previous: &Spectrum, current: &Spectrum) -> Shift {
        let mut cross: Vec<Complex32> = previous
            .0
            .iter()
            .zip(&current.0)
            .map(|(a, b)| {
                let product = b * a.conj();
                let norm = product.norm();
                if norm > 1e-6 {
                    product / norm
                } else {
                    Complex32::new(0.0, 0.0)
                }
            })
            .collect();
        self.transform(&mut cross, true);
        let n = (self.width * self.height) as f32;
        let surface: Vec<f32> = cross.iter().map(|c| c.re / n).collect();
        let (best, &peak) = surface
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap_or((0, &0.0));
        let (bx, by) = (best % self.width, best / self.width);
        let at = |x: isize, y: isize| {
            let x = x.rem_euclid(self.width as isize) as usize;
            let y = y.rem_euclid(self.height as isize) as usize;
            surface[y * self.width + x]
        };
        let (bxi, byi) = (bx as isize, by as isize);
        let sub_x = parabolic(at(bxi - 1, byi), peak, at(bxi + 1, byi));
        let sub_y = parabolic(at(bxi, byi - 1), peak, at(bxi, byi + 1));
        let signed = |v: usize, size: usize| {
            if v > size / 2 {
                v as f64 - size as f64
            } else {
                v as f64
            }
        };
        Shift {
            dx_px: signed(bx, self.width) + sub_x,
            dy_px: signed(by, self.height) + sub_y,
            peak: f64::from(peak.clamp(0.0, 1.0)),
        }
    }

    /// In-place 2-D FFT: rows, then columns.
    fn transform(&self, data: &mut [Complex32], inverse: bool) {
        let (row, column) = if inverse {
            (&self.row_ifft, &self.column_ifft)
        } else {
            (&self.row_fft, &self.column_fft)
        };
        for line in data.chunks_exact_mut(self.width) {
            row.process(line);
        }
        let mut buffer = vec![Complex32::new(0.0, 0.0); self.height];
        for x in 0..self.width {
            for y in 0..self.height {
                buffer[y] = data[y * self.width + x];
            }
            column.process(&mut buffer);
            for y in 0..self.height {
                data[y * self.width + x] = buffer[y];
            }
        }
    }
}

/// Offset of a parabola's vertex from the middle of three samples, in [-0.5, 0.5].
fn parabolic(left: f32, middle: f32, right: f32) -> f64 {
    let denominator = left - 2.0 * middle + right;
    if denominator.abs() < 1e-9 {
        return 0.0;
    }
    f64::from((0.5 * (left - right) / denominator).clamp(-0.5, 0.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blurred random field (broadband, like a street scene), sampled bilinearly at a
    /// real-valued offset so that sub-pixel shifts are known exactly.
    fn texture(width: usize, height: usize, dx: f64, dy: f64) -> GrayThumb {
        const FIELD: usize = 256;
        let mut state = 0x9E37_79B9u32;
        let mut noise = vec![0.0f64; FIELD * FIELD];
        for value in &mut noise {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *value = f64::from(state >> 24);
        }
        // Two box blurs make it smooth enough to interpolate, with detail left at every scale.
        let blur = |field: &[f64]| {
            let mut out = vec![0.0; FIELD * FIELD];
            for y in 0..FIELD {
                for x in 0..FIELD {
                    let mut sum = 0.0;
                    for (ox, oy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        sum += field[((y + oy) % FIELD) * FIELD + (x + ox) % FIELD];
                    }
                    out[y * FIELD + x] = sum / 4.0;
                }
            }
            out
        };
        let field = blur(&blur(&noise));
        let sample = |x: f64, y: f64| {
            let (x0, y0) = (x.floor(), y.floor());
            let (fx, fy) = (x - x0, y - y0);
            let at = |x: f64, y: f64| {
                let x = (x as isize).rem_euclid(FIELD as isize) as usize;
                let y = (y as isize).rem_euclid(FIELD as isize) as usize;
                field[y * FIELD + x]
            };
            let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
            let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
            (top * (1.0 - fy) + bottom * fy) as f32
        };
        let pixels = (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .map(|(x, y)| sample(x as f64 + 64.0 - dx, y as f64 + 64.0 - dy))
            .collect();
        GrayThumb {
            width,
            height,
            pixels,
        }
    }

    #[test]
    fn box_downscale_averages() {
        // 4x2 plane with stride 6 (padding ignored) down to 2x1.
        let plane = [10, 20, 30, 40, 99, 99, 30, 40, 50, 60, 99, 99];
        let thumb = GrayThumb::from_luma(&plane, 6, 4, 2, 2, 1).unwrap();
        assert_eq!(thumb.pixels, vec![25.0, 45.0]);
        assert!(GrayThumb::from_luma(&plane, 6, 4, 2, 8, 1).is_none());
        assert!(GrayThumb::from_luma(&plane[..5], 6, 4, 2, 2, 1).is_none());
    }

    #[test]
    fn box_downscale_matches_per_pixel_binning() {
        // Odd sizes and padding, so that bins differ in width and height.
        let (src_width, src_height, stride) = (101, 37, 107);
        let plane: Vec<u8> = (0..stride * src_height)
            .map(|i| (i * 7919 % 251) as u8)
            .collect();
        for (width, height) in [(10, 6), (13, 5), (101, 37), (1, 1)] {
            let fast =
                GrayThumb::from_luma(&plane, stride, src_width, src_height, width, height).unwrap();
            let mut sums = vec![0u64; width * height];
            let mut counts = vec![0u64; width * height];
            for y in 0..src_height {
                for x in 0..src_width {
                    let bin = (y * height / src_height) * width + x * width / src_width;
                    sums[bin] += u64::from(plane[y * stride + x]);
                    counts[bin] += 1;
                }
            }
            let slow: Vec<f32> = sums
                .iter()
                .zip(&counts)
                .map(|(&s, &c)| s as f32 / c as f32)
                .collect();
            assert_eq!(fast.pixels, slow, "{width}x{height}");
        }
    }

    #[test]
    fn finds_integer_and_subpixel_shifts() {
        let correlator = PhaseCorrelator::new(THUMB_WIDTH, THUMB_HEIGHT);
        let base = correlator
            .spectrum(&texture(THUMB_WIDTH, THUMB_HEIGHT, 0.0, 0.0))
            .unwrap();
        for (dx, dy) in [
            (5.0, 0.0),
            (-9.0, 3.0),
            (2.5, -1.25),
            (0.0, 0.0),
            (20.0, 10.0),
        ] {
            let moved = correlator
                .spectrum(&texture(THUMB_WIDTH, THUMB_HEIGHT, dx, dy))
                .unwrap();
            let shift = correlator.shift(&base, &moved);
            assert!((shift.dx_px - dx).abs() < 0.35, "dx {dx}: {shift:?}");
            assert!((shift.dy_px - dy).abs() < 0.35, "dy {dy}: {shift:?}");
            assert!(shift.peak > 0.2, "{shift:?}");
        }
    }

    #[test]
    fn unrelated_frames_have_a_low_peak() {
        let correlator = PhaseCorrelator::new(THUMB_WIDTH, THUMB_HEIGHT);
        let a = correlator
            .spectrum(&texture(THUMB_WIDTH, THUMB_HEIGHT, 0.0, 0.0))
            .unwrap();
        let mut noise = GrayThumb {
            width: THUMB_WIDTH,
            height: THUMB_HEIGHT,
            pixels: vec![0.0; THUMB_WIDTH * THUMB_HEIGHT],
        };
        let mut state = 12345u32;
        for p in &mut noise.pixels {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *p = (state >> 24) as f32;
        }
        let b = correlator.spectrum(&noise).unwrap();
        assert!(correlator.shift(&a, &b).peak < 0.15);
    }
}
