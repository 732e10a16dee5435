//! Per-frame picture measurements for CLEAN, on fixed-size grey images so that the numbers do not
//! depend on the video's resolution. Pure: pixels in, numbers out.

use crate::motion::GrayThumb;

/// Size of the grey image sharpness is measured on (16:9).
pub const SHARP_WIDTH: usize = 256;
pub const SHARP_HEIGHT: usize = 144;
/// Bins of the luma histogram.
pub const HISTOGRAM_BINS: usize = 16;
/// VP8 macroblocks are 16x16: corruption shows as edges on that grid.
const BLOCK: usize = 16;

/// Variance of the 4-neighbour Laplacian: high for a sharp picture, low for a blurred one.
pub fn laplacian_variance(image: &GrayThumb) -> f64 {
    let (w, h) = (image.width, image.height);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let p = &image.pixels;
    let (mut sum, mut sum_sq, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let i = y * w + x;
            let value = f64::from(p[i - 1] + p[i + 1] + p[i - w] + p[i + w] - 4.0 * p[i]);
            sum += value;
            sum_sq += value * value;
            n += 1.0;
        }
    }
    let mean = sum / n;
    (sum_sq / n - mean * mean).max(0.0)
}

/// Standard deviation of the pixels (contrast).
pub fn std_dev(image: &GrayThumb) -> f64 {
    let n = image.pixels.len().max(1) as f64;
    let mean = f64::from(image.mean());
    let var = image
        .pixels
        .iter()
        .map(|&p| (f64::from(p) - mean).powi(2))
        .sum::<f64>()
        / n;
    var.sqrt()
}

/// Normalised luma histogram (sums to 1).
pub fn histogram(image: &GrayThumb) -> [f32; HISTOGRAM_BINS] {
    let mut bins = [0f32; HISTOGRAM_BINS];
    for &p in &image.pixels {
        let bin = ((p.clamp(0.0, 255.0) as usize) * HISTOGRAM_BINS / 256).min(HISTOGRAM_BINS - 1);
        bins[bin] += 1.0;
    }
    let n = image.pixels.len().max(1) as f32;
    bins.iter_mut().for_each(|b| *b /= n);
    bins
}

/// Half the L1 distance between two normalised histograms: 0 same, 1 disjoint.
pub fn histogram_distance(a: &[f32; HISTOGRAM_BINS], b: &[f32; HISTOGRAM_BINS]) -> f64 {
    0.5 * a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .sum::<f64>()
}

/// Blockiness of a full-resolution luma plane: mean horizontal step across 16-pixel block
/// boundaries over the mean step elsewhere. About 1 for a natural picture; well above 1 when
/// macroblocks are corrupted. Every 4th row is read.
pub fn blockiness(plane: &[u8], stride: usize, width: usize, height: usize) -> f64 {
    if width < 2 * BLOCK
        || stride < width
        || plane.len() < stride * height.saturating_sub(1) + width
    {
        return 1.0;
    }
    let (mut edge, mut edge_n, mut inner, mut inner_n) = (0u64, 0u64, 0u64, 0u64);
    for y in (0..height).step_by(4) {
        let row = &plane[y * stride..y * stride + width];
        for x in 1..width {
            let step = u64::from(row[x].abs_diff(row[x - 1]));
            if x % BLOCK == 0 {
                edge += step;
                edge_n += 1;
            } else {
                inner += step;
                inner_n += 1;
            }
        }
    }
    let edge = edge as f64 / edge_n.max(1) as f64;
    let inner = inner as f64 / inner_n.max(1) as f64;
    // A flat picture (black, frozen grey) has no steps at all: not blocky.
    if inner < 0.5 {
        return 1.0;
    }
    edge / inner
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(width: usize, height: usize, f: impl Fn(usize, usize) -> f32) -> GrayThumb {
        GrayThumb {
            width,
            height,
            pixels: (0..height)
                .flat_map(|y| (0..width).map(move |x| (x, y)))
                .map(|(x, y)| f(x, y))
                .collect(),
        }
    }

    #[test]
    fn laplacian_of_flat_and_checkerboard() {
        assert_eq!(laplacian_variance(&image(8, 8, |_, _| 100.0)), 0.0);
        // A checkerboard of 0/255: every interior Laplacian is +-1020, mean 0.
        let checker = image(8, 8, |x, y| if (x + y) % 2 == 0 { 0.0 } else { 255.0 });
        assert!((laplacian_variance(&checker) - 1020.0f64.powi(2)).abs() < 1e-6);
        // A linear ramp has zero second derivative.
        assert_eq!(
            laplacian_variance(&image(8, 8, |x, _| x as f32 * 10.0)),
            0.0
        );
    }

    #[test]
    fn contrast_and_histogram() {
        let half = image(4, 2, |x, _| if x < 2 { 0.0 } else { 200.0 });
        assert_eq!(std_dev(&half), 100.0);
        let h = histogram(&half);
        assert_eq!(h[0], 0.5);
        assert_eq!(h[12], 0.5);
        let black = histogram(&image(4, 2, |_, _| 0.0));
        assert_eq!(histogram_distance(&h, &h), 0.0);
        assert_eq!(histogram_distance(&h, &black), 0.5);
    }

    #[test]
    fn blockiness_sees_macroblock_edges() {
        let (w, h) = (64, 32);
        // Smooth texture: steps everywhere alike.
        let smooth: Vec<u8> = (0..w * h).map(|i| ((i % w) * 3 + (i / w)) as u8).collect();
        let b = blockiness(&smooth, w, w, h);
        assert!((0.8..1.2).contains(&b), "{b}");
        // Flat 16x16 blocks with different values: all steps are on the grid.
        let blocks: Vec<u8> = (0..w * h)
            .map(|i| (((i % w) / 16 * 53 + (i / w) / 16 * 97) % 256) as u8 + ((i % 3) as u8))
            .collect();
        assert!(blockiness(&blocks, w, w, h) > 3.0);
        assert_eq!(blockiness(&vec![0; w * h], w, w, h), 1.0);
    }
}
