//! DINO's multi-crop data augmentation (`DataAugmentationDINO` in facebookresearch/dino), on the
//! CPU, mirroring torchvision's PIL code path.
//!
//! Recipe (`docs/protocols.md` §4), applied to every training image:
//! - **2 global crops**: `RandomResizedCrop(global_size, scale = (0.4, 1.0), ratio = (3/4, 4/3),
//!   bicubic)`, horizontal flip (p 0.5), `ColorJitter(0.4, 0.4, 0.2, 0.1)` with p 0.8 (the four
//!   ops in a fresh random order), `RandomGrayscale` p 0.2. Crop 1 is then always Gaussian-blurred;
//!   crop 2 is blurred with p 0.1 and then solarized with p 0.2 (PIL threshold 128: v ≥ 128 → 255 − v).
//! - **n local crops** (default 6): the same with `scale = (0.05, 0.4)` at `local_size`, blur p 0.5.
//! - ImageNet mean/std normalisation; each crop comes out as f32 CHW (channel-major), 3·S·S values.
//!
//! Inference preprocessing lives in `embed::preprocess`; both use `crate::resample`, PIL's
//! resampler.
//!
//! Like PIL, every stage works on 8-bit RGB and rounds back to u8 after each op, with PIL's own
//! arithmetic: fixed-point bicubic resampling (a = −0.5, support widened by the scale factor when
//! shrinking, horizontal pass then vertical), `Image.blend` truncation for brightness/contrast/
//! saturation, PIL's `L = (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16` grayscale, and torchvision's
//! hue shift of PIL's 8-bit HSV (`h += int8(hue·255)` wrapping). The unit tests check these against
//! values produced by Pillow.
//!
//! Deviations from DINO:
//! - **Blur sigma is scaled to the crop size.** DINO draws sigma ~ U(0.1, 2.0) px for 224 px global
//!   and 96 px local crops. Our crops are much smaller, so the drawn sigma is multiplied by
//!   `global_size / 224` for global crops and `local_size / 96` for local crops, which keeps the
//!   blur the same fraction of the crop. A scaled sigma below 0.05 px is a no-op and is skipped.
//! - **The blur is a true separable Gaussian** (radius ⌈3σ⌉, reflect-101 borders, one rounding at
//!   the end), not PIL's three-box approximation.
//! - Default 6 local crops instead of DINO's 8 (configurable).
//! - Randomness comes from the project's [`Rng`], not torch/Python RNGs, so crops are reproducible
//!   from a seed but not bit-identical to a PyTorch run.

use serde::{Deserialize, Serialize};

use crate::resample::{Raster, Rect, View, normalise, resample};
use crate::rng::Rng;

/// DINO's crop sizes, the reference for the blur-sigma scaling.
const DINO_GLOBAL_SIZE: f32 = 224.0;
const DINO_LOCAL_SIZE: f32 = 96.0;
/// `RandomResizedCrop`'s default aspect-ratio range.
const RATIO: (f64, f64) = (3.0 / 4.0, 4.0 / 3.0);
/// `ColorJitter(0.4, 0.4, 0.2, 0.1)` as factor ranges.
const BRIGHTNESS: (f32, f32) = (0.6, 1.4);
const CONTRAST: (f32, f32) = (0.6, 1.4);
const SATURATION: (f32, f32) = (0.8, 1.2);
const HUE: (f32, f32) = (-0.1, 0.1);
/// Per-crop blur probabilities: global crop 1, global crop 2, local crops.
const BLUR_P_GLOBAL1: f64 = 1.0;
const BLUR_P_GLOBAL2: f64 = 0.1;
const BLUR_P_LOCAL: f64 = 0.5;
const FLIP_P: f64 = 0.5;
/// Scaled sigmas below this (px) change nothing visible and are skipped.
const MIN_SIGMA: f32 = 0.05;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AugmentConfig {
    /// Side of the two global (teacher and student) crops, in pixels. Default 64 (DINO: 224).
    /// Must match the model's input size.
    pub global_size: u32,
    /// Side of the local (student-only) crops, in pixels. Default 32 (DINO: 96). Keep it a
    /// multiple of the patch size.
    pub local_size: u32,
    /// Number of small local views to generate. Default 6 (DINO: 8). Set this parameter to 0 to
    /// disable multi-crop training; when disabling multi-crop, DINO recommends a wider
    /// `global_scale` such as (0.14, 1.0).
    pub local_crops: usize,
    /// Scale range of the cropped image before resizing, relatively to the original image. Used
    /// for large global view cropping. Default (0.4, 1.0). When disabling multi-crop
    /// (`local_crops` 0), a wider range of scale such as (0.14, 1.0) is recommended.
    pub global_scale: (f32, f32),
    /// Scale range of the cropped image before resizing, relatively to the original image. Used
    /// for small local view cropping of multi-crop. Default (0.05, 0.4).
    pub local_scale: (f32, f32),
    /// Probability of applying colour jitter (brightness 0.4, contrast 0.4, saturation 0.2,
    /// hue 0.1, in random order) to each crop. Default 0.8.
    pub jitter_probability: f64,
    /// Probability of converting each crop to grayscale. Default 0.2.
    pub grayscale_probability: f64,
    /// Probability of solarizing the second global crop (PIL threshold 128). Default 0.2.
    pub solarize_probability: f64,
    /// Range of the Gaussian-blur sigma in pixels at DINO's crop sizes (224 global, 96 local).
    /// Default (0.1, 2.0). The drawn value is multiplied by `global_size / 224` or
    /// `local_size / 96`, so the blur covers the same fraction of our smaller crops.
    pub blur_sigma: (f32, f32),
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            global_size: 64,
            local_size: 32,
            local_crops: 6,
            global_scale: (0.4, 1.0),
            local_scale: (0.05, 0.4),
            jitter_probability: 0.8,
            grayscale_probability: 0.2,
            solarize_probability: 0.2,
            blur_sigma: (0.1, 2.0),
        }
    }
}

/// One image's crops, normalised, CHW.
#[derive(Clone, Debug, PartialEq)]
pub struct Crops {
    pub global: Vec<Vec<f32>>,
    pub local: Vec<Vec<f32>>,
}

/// Produces DINO's 2 global and `cfg.local_crops` local crops of `img`.
pub(crate) fn multi_crop(img: &image::RgbImage, cfg: &AugmentConfig, rng: &mut Rng) -> Crops {
    let fallback;
    let src = if img.width() == 0 || img.height() == 0 {
        fallback = image::RgbImage::new(1, 1);
        View::of(&fallback)
    } else {
        View::of(img)
    };
    let global_sigma = sigma_range(cfg.blur_sigma, cfg.global_size as f32 / DINO_GLOBAL_SIZE);
    let local_sigma = sigma_range(cfg.blur_sigma, cfg.local_size as f32 / DINO_LOCAL_SIZE);
    let global = |blur_p, solarize_p| CropSpec {
        size: cfg.global_size as usize,
        scale: cfg.global_scale,
        blur_p,
        sigma: global_sigma,
        solarize_p,
    };
    let g1 = global(BLUR_P_GLOBAL1, 0.0);
    let g2 = global(BLUR_P_GLOBAL2, cfg.solarize_probability);
    let local = CropSpec {
        size: cfg.local_size as usize,
        scale: cfg.local_scale,
        blur_p: BLUR_P_LOCAL,
        sigma: local_sigma,
        solarize_p: 0.0,
    };
    let mut scratch = Vec::new();
    let global = vec![
        augment_crop(&src, &g1, cfg, rng, &mut scratch),
        augment_crop(&src, &g2, cfg, rng, &mut scratch),
    ];
    let local = (0..cfg.local_crops)
        .map(|_| augment_crop(&src, &local, cfg, rng, &mut scratch))
        .collect();
    Crops { global, local }
}

// ---------------------------------------------------------------------------------------------
// Crop pipeline
// ---------------------------------------------------------------------------------------------

struct CropSpec {
    size: usize,
    scale: (f32, f32),
    blur_p: f64,
    /// Blur sigma range already scaled to this crop kind.
    sigma: (f32, f32),
    solarize_p: f64,
}

fn sigma_range(base: (f32, f32), scale: f32) -> (f32, f32) {
    (base.0 * scale, base.1 * scale)
}

/// One crop through DINO's transform chain, in torchvision's order.
fn augment_crop(
    src: &View,
    spec: &CropSpec,
    cfg: &AugmentConfig,
    rng: &mut Rng,
    scratch: &mut Vec<f32>,
) -> Vec<f32> {
    let size = spec.size.max(1);
    let rect = random_resized_crop_params(src.w, src.h, spec.scale, rng);
    let mut r = resample(src, rect, size, size);
    if rng.bernoulli(FLIP_P) {
        flip_horizontal(&mut r);
    }
    if rng.bernoulli(cfg.jitter_probability) {
        color_jitter(&mut r.px, rng);
    }
    if rng.bernoulli(cfg.grayscale_probability) {
        grayscale(&mut r.px);
    }
    if rng.bernoulli(spec.blur_p) {
        let sigma = rng.range_f32(spec.sigma.0, spec.sigma.1);
        gaussian_blur(&mut r, sigma, scratch);
    }
    if spec.solarize_p > 0.0 && rng.bernoulli(spec.solarize_p) {
        solarize(&mut r.px);
    }
    let out = normalise(&r);
    if spec.size == 0 { Vec::new() } else { out }
}

/// torchvision `RandomResizedCrop.get_params`: up to 10 tries of (area fraction ~ U(scale),
/// log-uniform aspect ratio in (3/4, 4/3)) that fit, else a centre crop with the ratio clamped.
fn random_resized_crop_params(
    width: usize,
    height: usize,
    scale: (f32, f32),
    rng: &mut Rng,
) -> Rect {
    let area = (width * height) as f64;
    let (log_lo, log_hi) = (RATIO.0.ln(), RATIO.1.ln());
    for _ in 0..10 {
        let target_area =
            area * (scale.0 as f64 + (scale.1 as f64 - scale.0 as f64) * rng.uniform());
        let aspect = (log_lo + (log_hi - log_lo) * rng.uniform()).exp();
        // Python's round() is half-to-even.
        let w = (target_area * aspect).sqrt().round_ties_even() as usize;
        let h = (target_area / aspect).sqrt().round_ties_even() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let y = rng.below(height - h + 1);
            let x = rng.below(width - w + 1);
            return Rect { x, y, w, h };
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < RATIO.0 {
        (
            width,
            ((width as f64 / RATIO.0).round_ties_even() as usize).clamp(1, height),
        )
    } else if in_ratio > RATIO.1 {
        (
            ((height as f64 * RATIO.1).round_ties_even() as usize).clamp(1, width),
            height,
        )
    } else {
        (width, height)
    };
    Rect {
        x: (width - w) / 2,
        y: (height - h) / 2,
        w,
        h,
    }
}

fn flip_horizontal(r: &mut Raster) {
    let w = r.w;
    for row in r.px.chunks_exact_mut(w * 3) {
        for x in 0..w / 2 {
            let (a, b) = (x * 3, (w - 1 - x) * 3);
            for c in 0..3 {
                row.swap(a + c, b + c);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Colour ops (torchvision functional_pil on PIL 8-bit RGB)
// ---------------------------------------------------------------------------------------------

/// PIL's RGB → L (ITU-R 601-2 luma, fixed point, rounded).
#[inline]
fn luma(p: &[u8]) -> u8 {
    ((p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471 + 0x8000) >> 16) as u8
}

/// PIL `Image.blend(degenerate, img, alpha)` on one value: f32 arithmetic, clipped, truncated.
#[inline]
fn blend(degenerate: u8, value: u8, alpha: f32) -> u8 {
    // `as u8` saturates at 0 and 255 and truncates in between, exactly PIL's casts.
    (degenerate as f32 + alpha * (value as i32 - degenerate as i32) as f32) as u8
}

/// [`blend`] against a constant degenerate image, tabulated for all 256 input values.
fn blend_table(degenerate: u8, alpha: f32) -> [u8; 256] {
    std::array::from_fn(|v| blend(degenerate, v as u8, alpha))
}

/// `ImageEnhance.Brightness`: blend with black.
fn adjust_brightness(px: &mut [u8], factor: f32) {
    let table = blend_table(0, factor);
    for v in px.iter_mut() {
        *v = table[*v as usize];
    }
}

/// `ImageEnhance.Contrast`: blend with the rounded mean of the grayscale image.
fn adjust_contrast(px: &mut [u8], factor: f32) {
    let n = px.len() / 3;
    if n == 0 {
        return;
    }
    let sum: u64 = px.chunks_exact(3).map(|p| luma(p) as u64).sum();
    let mean = (sum as f64 / n as f64 + 0.5).trunc() as u8;
    let table = blend_table(mean, factor);
    for v in px.iter_mut() {
        *v = table[*v as usize];
    }
}

/// `ImageEnhance.Color`: blend each pixel with its own grayscale value.
fn adjust_saturation(px: &mut [u8], factor: f32) {
    for p in px.chunks_exact_mut(3) {
        let l = luma(p);
        for v in p.iter_mut() {
            *v = blend(l, *v, factor);
        }
    }
}

/// PIL `rgb2hsv_row` (8-bit H, S, V), bit-exact including its mix of float and double arithmetic.
///
/// PIL computes rc, gc, bc = (max − c)/cr and combines two of them. The max channel's ratio is 0
/// and the min channel's exactly 1, so only the middle channel's ratio needs a division, and
/// `h` is `base ± q` (exact in f64, then rounded to f32 as PIL's float `h` is).
#[inline]
fn rgb_to_hsv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    if maxc == minc {
        return (0, 0, maxc);
    }
    let cr = (maxc - minc) as f32;
    let s = cr / maxc as f32;
    // PIL's branches: r is max → h = bc − gc; else g is max → 2 + rc − bc; else 4 + gc − rc.
    let (base, sign, mid) = if r == maxc {
        if g == minc {
            (-1.0, 1.0, b)
        } else {
            (1.0, -1.0, g)
        }
    } else if g == maxc {
        if r == minc {
            (3.0, -1.0, b)
        } else {
            (1.0, 1.0, r)
        }
    } else if g == minc {
        (5.0, -1.0, r)
    } else {
        (3.0, 1.0, g)
    };
    let q = (maxc - mid) as f32 / cr;
    let h = (base + sign * q as f64) as f32;
    // fmod(h / 6 + 1, 1): the argument lies in [5/6, 11/6], where subtracting 1 is exact.
    let h = h as f64 / 6.0 + 1.0;
    let h = (if h >= 1.0 { h - 1.0 } else { h }) as f32;
    // Both products lie in [0, 255]; `as u8` truncates like PIL's (int) cast.
    ((h as f64 * 255.0) as u8, (s as f64 * 255.0) as u8, maxc)
}

/// C's `round` (half away from zero) for x in [0, 255]. `f64::round` is a libm call on baseline
/// x86-64; adding and removing 2⁵² rounds half-to-even, and the tie case is corrected.
#[inline]
fn round_half_away(x: f64) -> u8 {
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    let even = (x + TWO_52) - TWO_52;
    (if x - even == 0.5 { even + 1.0 } else { even }) as u8
}

/// PIL's `h·6/255` sector index and fractional part (as float) for every 8-bit hue.
const HUE_SECTOR: [(u8, f32); 256] = {
    let mut table = [(0u8, 0.0f32); 256];
    let mut h = 0;
    while h < 256 {
        let h6 = h as f64 * 6.0 / 255.0;
        // floor(h·6/255): the quotient is never within rounding distance of an integer it is not.
        let i = h * 6 / 255;
        table[h] = ((i % 6) as u8, (h6 - i as f64) as f32);
        h += 1;
    }
    table
};

/// PIL's `fs = s / 255.0` (stored as float) for every 8-bit saturation.
const SAT_FRACTION: [f32; 256] = {
    let mut table = [0.0f32; 256];
    let mut s = 0;
    while s < 256 {
        table[s] = (s as f64 / 255.0) as f32;
        s += 1;
    }
    table
};

/// PIL `hsv2rgb`, bit-exact.
#[inline]
fn hsv_to_rgb(h: u8, s: u8, v: u8) -> [u8; 3] {
    if s == 0 {
        return [v, v, v];
    }
    let (sector, f) = HUE_SECTOR[h as usize];
    let fs = SAT_FRACTION[s as usize];
    let vf = v as f64;
    let p = round_half_away(vf * (1.0 - fs as f64));
    let q = round_half_away(vf * (1.0 - (fs * f) as f64));
    let t = round_half_away(vf * (1.0 - fs as f64 * (1.0 - f as f64)));
    // PIL's switch on i % 6, as a lookup into [v, t, p, q].
    const ARRANGE: [[usize; 3]; 6] = [
        [0, 1, 2],
        [3, 0, 2],
        [2, 0, 1],
        [2, 3, 0],
        [1, 2, 0],
        [0, 2, 3],
    ];
    let values = [v, t, p, q];
    let a = ARRANGE[sector as usize];
    [values[a[0]], values[a[1]], values[a[2]]]
}

/// torchvision `adjust_hue` (PIL path): H += int8(hue·255), wrapping, in PIL's 8-bit HSV.
fn adjust_hue(px: &mut [u8], hue: f32) {
    // `np.int8(hue * 255)` truncates toward zero; `.astype(np.uint8)` and `+=` wrap mod 256.
    let shift = ((hue as f64 * 255.0).trunc() as i32).rem_euclid(256) as u8;
    if shift == 0 {
        return;
    }
    // Two passes (to HSV in place, then back): independent short loops pipeline better than one
    // long dependency chain per pixel.
    for p in px.chunks_exact_mut(3) {
        let (h, s, v) = rgb_to_hsv(p[0], p[1], p[2]);
        p.copy_from_slice(&[h.wrapping_add(shift), s, v]);
    }
    for p in px.chunks_exact_mut(3) {
        p.copy_from_slice(&hsv_to_rgb(p[0], p[1], p[2]));
    }
}

/// `ColorJitter(0.4, 0.4, 0.2, 0.1)`: a random permutation of the four ops, each with its factor.
fn color_jitter(px: &mut [u8], rng: &mut Rng) {
    let mut order = [0usize, 1, 2, 3];
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let b = rng.range_f32(BRIGHTNESS.0, BRIGHTNESS.1);
    let c = rng.range_f32(CONTRAST.0, CONTRAST.1);
    let s = rng.range_f32(SATURATION.0, SATURATION.1);
    let h = rng.range_f32(HUE.0, HUE.1);
    for op in order {
        match op {
            0 => adjust_brightness(px, b),
            1 => adjust_contrast(px, c),
            2 => adjust_saturation(px, s),
            _ => adjust_hue(px, h),
        }
    }
}

/// `RandomGrayscale`'s conversion: PIL L replicated to three channels.
fn grayscale(px: &mut [u8]) {
    for p in px.chunks_exact_mut(3) {
        let l = luma(p);
        p.fill(l);
    }
}

/// `ImageOps.solarize(img, threshold=128)`.
fn solarize(px: &mut [u8]) {
    for v in px.iter_mut() {
        if *v >= 128 {
            *v = 255 - *v;
        }
    }
}

use crate::generate::imageops::reflect101;

/// Separable Gaussian blur, radius ⌈3σ⌉, reflect-101 borders, rounded back to u8 at the end.
/// `scratch` is reused between calls to avoid reallocating the intermediate.
fn gaussian_blur(r: &mut Raster, sigma: f32, scratch: &mut Vec<f32>) {
    if sigma.is_nan() || sigma < MIN_SIGMA || r.w == 0 || r.h == 0 {
        return;
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let two_s2 = 2.0 * sigma * sigma;
    let mut kernel: Vec<f32> = (-radius..=radius)
        .map(|d| (-((d * d) as f32) / two_s2).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= total);
    let rad = radius as usize;
    let (w, h) = (r.w, r.h);
    let row_len = w * 3;
    scratch.clear();
    scratch.resize(w * h * 3 + row_len, 0.0);
    let (tmp, rowf) = scratch.split_at_mut(w * h * 3);
    // Columns whose taps all fall inside the row; the rest reflect.
    let interior = if w > 2 * rad { rad..w - rad } else { 0..0 };
    for y in 0..h {
        for (d, &v) in rowf.iter_mut().zip(&r.px[y * row_len..(y + 1) * row_len]) {
            *d = v as f32;
        }
        let out = &mut tmp[y * row_len..(y + 1) * row_len];
        if !interior.is_empty() {
            let len = interior.len() * 3;
            let dst = &mut out[interior.start * 3..interior.start * 3 + len];
            dst.fill(0.0);
            for (j, &k) in kernel.iter().enumerate() {
                for (d, &v) in dst.iter_mut().zip(&rowf[j * 3..j * 3 + len]) {
                    *d += k * v;
                }
            }
        }
        for x in (0..interior.start).chain(interior.end.max(interior.start)..w) {
            let mut acc = [0.0f32; 3];
            for (j, &k) in kernel.iter().enumerate() {
                let sx = reflect101(x as isize + j as isize - radius, w) * 3;
                for (a, &v) in acc.iter_mut().zip(&rowf[sx..sx + 3]) {
                    *a += k * v;
                }
            }
            out[x * 3..x * 3 + 3].copy_from_slice(&acc);
        }
    }
    let acc = rowf;
    for y in 0..h {
        acc.fill(0.0);
        for (j, &k) in kernel.iter().enumerate() {
            let sy = reflect101(y as isize + j as isize - radius, h);
            for (a, &v) in acc.iter_mut().zip(&tmp[sy * row_len..(sy + 1) * row_len]) {
                *a += k * v;
            }
        }
        for (o, &a) in r.px[y * row_len..(y + 1) * row_len]
            .iter_mut()
            .zip(acc.iter())
        {
            // Round half up; the saturating cast clamps to 0..=255.
            *o = (a + 0.5) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::{IMAGENET_MEAN, IMAGENET_STD, denormalise};

    fn raster(w: usize, h: usize, px: &[u8]) -> Raster {
        Raster {
            w,
            h,
            px: px.to_vec(),
        }
    }

    /// A smooth-ish but non-trivial test image.
    fn pattern(w: u32, h: u32) -> image::RgbImage {
        image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 4 % 256) as u8,
                (y * 4 % 256) as u8,
                ((x * y + 7 * x) % 256) as u8,
            ])
        })
    }

    // Pillow 13 reference, pixels px = [[200,30,90],[12,240,180],[128,128,128],[255,0,0],[90,91,255],[0,0,0]] (6×1):
    //   from PIL import ImageEnhance, ImageOps
    //   ImageEnhance.Brightness(im).enhance(1.3) / (0.65); ImageEnhance.Contrast(im).enhance(0.7) / (1.35)
    //   ImageEnhance.Color(im).enhance(1.15) / (0.85); im.convert("HSV"); im.convert("L"); ImageOps.solarize(im, 128)
    //   def hue(img, hf):  # torchvision.transforms.functional_pil.adjust_hue
    //       h, s, v = img.convert("HSV").split(); np_h = np.array(h, dtype=np.uint8)
    //       with np.errstate(over="ignore"): np_h += np.int8(hf * 255).astype(np.uint8)
    //       return Image.merge("HSV", (Image.fromarray(np_h, "L"), s, v)).convert("RGB")
    //   hue(im, 0.07); hue(im, -0.09)
    const PX: [u8; 18] = [
        200, 30, 90, 12, 240, 180, 128, 128, 128, 255, 0, 0, 90, 91, 255, 0, 0, 0,
    ];

    fn apply(f: impl Fn(&mut [u8])) -> Vec<u8> {
        let mut px = PX.to_vec();
        f(&mut px);
        px
    }

    #[test]
    fn jitter_ops_match_pil() {
        assert_eq!(
            apply(|p| adjust_brightness(p, 1.3)),
            [
                255, 39, 116, 15, 255, 233, 166, 166, 166, 255, 0, 0, 116, 118, 255, 0, 0, 0
            ]
        );
        assert_eq!(
            apply(|p| adjust_brightness(p, 0.65)),
            [
                130, 19, 58, 7, 156, 116, 83, 83, 83, 165, 0, 0, 58, 59, 165, 0, 0, 0
            ]
        );
        assert_eq!(
            apply(|p| adjust_contrast(p, 0.7)),
            [
                168, 49, 91, 36, 196, 154, 117, 117, 117, 206, 28, 28, 91, 91, 206, 28, 28, 28
            ]
        );
        assert_eq!(
            apply(|p| adjust_contrast(p, 1.35)),
            [
                237, 7, 88, 0, 255, 210, 139, 139, 139, 255, 0, 0, 88, 89, 255, 0, 0, 0
            ]
        );
        assert_eq!(
            apply(|p| adjust_saturation(p, 1.15)),
            [
                216, 21, 90, 0, 251, 182, 128, 128, 128, 255, 0, 0, 87, 88, 255, 0, 0, 0
            ]
        );
        assert_eq!(
            apply(|p| adjust_saturation(p, 0.85)),
            [
                183, 38, 89, 34, 228, 177, 128, 128, 128, 228, 11, 11, 92, 93, 233, 0, 0, 0
            ]
        );
        assert_eq!(
            apply(|p| adjust_hue(p, 0.07)),
            [
                200, 35, 31, 12, 211, 240, 128, 128, 128, 255, 102, 0, 152, 90, 255, 0, 0, 0
            ]
        );
        assert_eq!(
            apply(|p| adjust_hue(p, -0.09)),
            [
                200, 31, 178, 12, 240, 60, 128, 128, 128, 255, 0, 126, 90, 179, 255, 0, 0, 0
            ]
        );
        assert_eq!(apply(|p| adjust_hue(p, 0.0)), PX);
    }

    #[test]
    fn hsv_grayscale_and_solarize_match_pil() {
        let hsv: Vec<u8> = PX
            .chunks_exact(3)
            .flat_map(|p| {
                let (h, s, v) = rgb_to_hsv(p[0], p[1], p[2]);
                [h, s, v]
            })
            .collect();
        assert_eq!(
            hsv,
            [
                240, 216, 200, 116, 242, 240, 0, 0, 128, 0, 255, 255, 169, 165, 255, 0, 0, 0
            ]
        );
        let gray: Vec<u8> = apply(grayscale).chunks_exact(3).map(|p| p[0]).collect();
        assert_eq!(gray, [88, 165, 128, 76, 109, 0]);
        assert!(
            apply(grayscale)
                .chunks_exact(3)
                .all(|p| p[0] == p[1] && p[1] == p[2])
        );
        assert_eq!(
            apply(solarize),
            [
                55, 30, 90, 12, 15, 75, 127, 127, 127, 0, 0, 0, 90, 91, 0, 0, 0, 0
            ]
        );
        let mut edge = vec![0, 127, 128, 255, 1, 200];
        solarize(&mut edge);
        assert_eq!(edge, [0, 127, 127, 0, 1, 55]);
    }

    // Hand-computed: weights exp(−d²/2σ²)/Σ for d in −3..=3 at σ = 1 are
    // [0.00443, 0.05399, 0.24197, 0.39894, ...]; ×255 → 1.13, 13.77, 61.70, 101.73.
    #[test]
    fn gaussian_blur_hand_values_and_reflect_borders() {
        let gray_row = |vals: &[u8]| {
            raster(
                vals.len(),
                1,
                &vals.iter().flat_map(|&v| [v, v, v]).collect::<Vec<_>>(),
            )
        };
        let first = |r: &Raster| r.px.chunks_exact(3).map(|p| p[0]).collect::<Vec<_>>();
        let mut scratch = Vec::new();

        let mut r = gray_row(&[0, 0, 0, 0, 255, 0, 0, 0, 0]);
        gaussian_blur(&mut r, 1.0, &mut scratch);
        assert_eq!(first(&r), [0, 1, 14, 62, 102, 62, 14, 1, 0]);

        // Reflect-101 does not repeat the edge pixel, so an edge impulse is not doubled.
        let mut r = gray_row(&[255, 0, 0, 0, 0]);
        gaussian_blur(&mut r, 1.0, &mut scratch);
        assert_eq!(first(&r), [102, 62, 14, 1, 0]);

        // σ = 0.5: radius 2, weights [0.00027, 0.10650, 0.78646, ...] → 200·0.1065 = 21.3, 200·0.786 = 157.3.
        let mut r = gray_row(&[0, 0, 200, 0, 0, 0]);
        gaussian_blur(&mut r, 0.5, &mut scratch);
        assert_eq!(first(&r), [0, 21, 157, 21, 0, 0]);

        // Tiny sigma is skipped; a constant image is unchanged by any blur, in 2-D too.
        let mut r = gray_row(&[0, 0, 200, 0, 0, 0]);
        gaussian_blur(&mut r, 0.04, &mut scratch);
        assert_eq!(first(&r), [0, 0, 200, 0, 0, 0]);
        let mut c = raster(7, 5, &[42, 180, 7].repeat(35));
        gaussian_blur(&mut c, 1.7, &mut scratch);
        assert_eq!(c.px, [42, 180, 7].repeat(35));
    }

    #[test]
    fn blur_is_separable_in_two_dimensions() {
        // A 2-D impulse blurs to the outer product of the 1-D responses (before rounding).
        let mut r = Raster::new(9, 9);
        r.px[(4 * 9 + 4) * 3] = 255;
        gaussian_blur(&mut r, 1.0, &mut Vec::new());
        let at = |x: usize, y: usize| r.px[(y * 9 + x) * 3];
        let g = |d: f32| (-d * d / 2.0).exp() / (2.0 * std::f32::consts::PI).sqrt();
        assert_eq!(at(4, 4), (255.0 * g(0.0) * g(0.0)).round() as u8);
        assert_eq!(at(5, 3), (255.0 * g(1.0) * g(1.0)).round() as u8);
        assert_eq!(at(4, 3), at(3, 4));
        assert_eq!(r.px[(4 * 9 + 4) * 3 + 1], 0);
    }

    #[test]
    fn flip_mirrors_rows() {
        let mut r = raster(
            3,
            2,
            &[
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
            ],
        );
        flip_horizontal(&mut r);
        assert_eq!(
            r.px,
            [
                7, 8, 9, 4, 5, 6, 1, 2, 3, 16, 17, 18, 13, 14, 15, 10, 11, 12
            ]
        );
    }

    #[test]
    fn random_resized_crop_fits_and_falls_back_to_centre() {
        let mut rng = Rng::new(5);
        for _ in 0..2000 {
            let r = random_resized_crop_params(64, 48, (0.05, 0.4), &mut rng);
            assert!(
                r.w >= 1 && r.h >= 1 && r.x + r.w <= 64 && r.y + r.h <= 48,
                "{r:?}"
            );
            let frac = (r.w * r.h) as f64 / (64.0 * 48.0);
            assert!(frac > 0.03 && frac < 0.45, "{frac}");
            let ratio = r.w as f64 / r.h as f64;
            assert!(ratio > 0.6 && ratio < 1.6, "{ratio}");
        }
        // A 100×2 strip never fits a sampled box: centre crop, width round(2·4/3) = 3.
        let r = random_resized_crop_params(100, 2, (0.4, 1.0), &mut rng);
        assert_eq!(
            r,
            Rect {
                x: 48,
                y: 0,
                w: 3,
                h: 2
            }
        );
        let r = random_resized_crop_params(2, 100, (0.4, 1.0), &mut rng);
        assert_eq!(
            r,
            Rect {
                x: 0,
                y: 48,
                w: 2,
                h: 3
            }
        );
    }

    #[test]
    fn multi_crop_shapes_ranges_and_determinism() {
        let img = pattern(64, 64);
        let cfg = AugmentConfig::default();
        let a = multi_crop(&img, &cfg, &mut Rng::new(11));
        assert_eq!(a.global.len(), 2);
        assert_eq!(a.local.len(), 6);
        assert!(a.global.iter().all(|c| c.len() == 3 * 64 * 64));
        assert!(a.local.iter().all(|c| c.len() == 3 * 32 * 32));
        for crop in a.global.iter().chain(&a.local) {
            for (c, plane) in crop.chunks_exact(crop.len() / 3).enumerate() {
                let lo = (0.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c] - 1e-5;
                let hi = (1.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c] + 1e-5;
                assert!(plane.iter().all(|v| v.is_finite() && *v >= lo && *v <= hi));
            }
        }
        let b = multi_crop(&img, &cfg, &mut Rng::new(11));
        assert_eq!(a, b);
        let c = multi_crop(&img, &cfg, &mut Rng::new(12));
        assert_ne!(a.global[0], c.global[0]);
        assert_ne!(a.local[0], c.local[0]);
        // Crops within one call differ from each other.
        assert_ne!(a.global[0], a.global[1]);

        let none = AugmentConfig {
            local_crops: 0,
            global_size: 48,
            ..cfg
        };
        let d = multi_crop(&pattern(40, 70), &none, &mut Rng::new(1));
        assert!(d.local.is_empty());
        assert!(d.global.iter().all(|c| c.len() == 3 * 48 * 48));
    }

    #[test]
    fn constant_image_survives_geometry_and_blur() {
        // With colour ops off, crop/resize/flip/blur cannot change a constant image.
        let cfg = AugmentConfig {
            jitter_probability: 0.0,
            grayscale_probability: 0.0,
            solarize_probability: 0.0,
            ..Default::default()
        };
        let img = image::RgbImage::from_pixel(50, 37, image::Rgb([12, 200, 140]));
        let crops = multi_crop(&img, &cfg, &mut Rng::new(3));
        for (crop, size) in crops
            .global
            .iter()
            .map(|c| (c, 64))
            .chain(crops.local.iter().map(|c| (c, 32)))
        {
            assert!(
                denormalise(crop, size)
                    .pixels()
                    .all(|p| p.0 == [12, 200, 140])
            );
        }
        // Grayscale always on: every crop is gray.
        let gray = AugmentConfig {
            grayscale_probability: 1.0,
            ..Default::default()
        };
        let crops = multi_crop(&pattern(64, 64), &gray, &mut Rng::new(4));
        for crop in crops.global.iter().chain(&crops.local) {
            let size = ((crop.len() / 3) as f64).sqrt() as u32;
            // Solarize and blur keep R = G = B.
            assert!(
                denormalise(crop, size)
                    .pixels()
                    .all(|p| p[0] == p[1] && p[1] == p[2])
            );
        }
    }

    #[test]
    fn jitter_changes_pixels_and_stays_in_gamut() {
        let mut rng = Rng::new(9);
        let mut changed = 0;
        for _ in 0..50 {
            let mut px = PX.to_vec();
            color_jitter(&mut px, &mut rng);
            if px != PX {
                changed += 1;
            }
            // The gray pixels stay gray under every op (their saturation is 0).
            assert!(px[6] == px[7] && px[7] == px[8]);
            assert!(px[15] == px[16] && px[16] == px[17]);
        }
        assert!(changed >= 45, "{changed}");
    }

    #[test]
    fn config_round_trips_and_fills_defaults() {
        let cfg = AugmentConfig {
            local_crops: 8,
            blur_sigma: (0.2, 1.5),
            ..Default::default()
        };
        let json = serde_json::to_string(&cfg).expect("serialise");
        assert_eq!(
            serde_json::from_str::<AugmentConfig>(&json).expect("parse"),
            cfg
        );
        let partial: AugmentConfig =
            serde_json::from_str(r#"{"local_crops": 8, "blur_sigma": [0.2, 1.5]}"#).expect("parse");
        assert_eq!(partial, cfg);
    }

    /// Straight transcriptions of Pillow's `rgb2hsv_row` and `hsv2rgb` (libImaging/Convert.c), to
    /// check the optimised versions bit for bit.
    fn pil_rgb2hsv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
        let (maxc, minc) = (r.max(g).max(b), r.min(g).min(b));
        if maxc == minc {
            return (0, 0, maxc);
        }
        let cr = (maxc - minc) as f32;
        let s = cr / maxc as f32;
        let rc = (maxc - r) as f32 / cr;
        let gc = (maxc - g) as f32 / cr;
        let bc = (maxc - b) as f32 / cr;
        let h: f32 = if r == maxc {
            bc - gc
        } else if g == maxc {
            (2.0 + rc as f64 - bc as f64) as f32
        } else {
            (4.0 + gc as f64 - rc as f64) as f32
        };
        let h = ((h as f64 / 6.0 + 1.0) % 1.0) as f32;
        let clip8 = |v: i32| v.clamp(0, 255) as u8;
        (
            clip8((h as f64 * 255.0) as i32),
            clip8((s as f64 * 255.0) as i32),
            maxc,
        )
    }

    fn pil_hsv2rgb(h: u8, s: u8, v: u8) -> [u8; 3] {
        if s == 0 {
            return [v, v, v];
        }
        let i = (h as f32 as f64 * 6.0 / 255.0).floor() as i32;
        let f = (h as f32 as f64 * 6.0 / 255.0 - i as f32 as f64) as f32;
        let fs = (s as f32 as f64 / 255.0) as f32;
        let vf = v as f32 as f64;
        let clip8 = |x: f64| (x.round() as i32).clamp(0, 255) as u8;
        let p = clip8(vf * (1.0 - fs as f64));
        let q = clip8(vf * (1.0 - (fs * f) as f64));
        let t = clip8(vf * (1.0 - fs as f64 * (1.0 - f as f64)));
        match i % 6 {
            0 => [v, t, p],
            1 => [q, v, p],
            2 => [p, v, t],
            3 => [p, q, v],
            4 => [t, p, v],
            _ => [v, p, q],
        }
    }

    #[test]
    fn fast_hsv_conversions_equal_pils() {
        // Every (h, s, v) for the inverse; for the forward, all ties and a dense sample.
        for h in 0..=255u8 {
            for s in 0..=255u8 {
                for v in (0..=255u8).step_by(3).chain([254, 255]) {
                    assert_eq!(hsv_to_rgb(h, s, v), pil_hsv2rgb(h, s, v), "hsv {h} {s} {v}");
                }
            }
        }
        let mut rng = Rng::new(2);
        for _ in 0..300_000 {
            let [r, g, b] = [
                rng.below(256) as u8,
                rng.below(256) as u8,
                rng.below(256) as u8,
            ];
            assert_eq!(rgb_to_hsv(r, g, b), pil_rgb2hsv(r, g, b), "rgb {r} {g} {b}");
        }
        for a in 0..=255u8 {
            for b in (0..=255u8).step_by(5) {
                for (r, g, bb) in [
                    (a, a, b),
                    (a, b, a),
                    (b, a, a),
                    (a, b, 0),
                    (0, a, b),
                    (b, 255, a),
                ] {
                    assert_eq!(
                        rgb_to_hsv(r, g, bb),
                        pil_rgb2hsv(r, g, bb),
                        "rgb {r} {g} {bb}"
                    );
                }
            }
        }
    }

    /// Timing check: `cargo test --release -- --ignored --nocapture crop_timing`.
    #[test]
    #[ignore]
    fn crop_timing() {
        let img = pattern(64, 64);
        let cfg = AugmentConfig::default();
        let mut rng = Rng::new(0);
        let n = 2000;
        let start = std::time::Instant::now();
        let mut sink = 0.0f32;
        for _ in 0..n {
            let c = multi_crop(&img, &cfg, &mut rng);
            sink += c.global[0][0] + c.local[5][0];
        }
        let per = start.elapsed().as_secs_f64() / n as f64;
        println!(
            "multi_crop 64² → 2×64² + 6×32²: {:.1} µs/image ({sink})",
            per * 1e6
        );
        assert!(per < 1e-3 || cfg!(debug_assertions), "{per}");
    }
}
