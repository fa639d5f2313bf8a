//! PIL's bicubic resampling on 8-bit RGB (fixed point, a = −0.5, antialiased when shrinking,
//! horizontal pass then vertical) and torchvision's ToTensor + ImageNet Normalize: the pixel
//! arithmetic shared by the training augmentations (`train::augment`) and inference
//! preprocessing (`embed::preprocess`), so a model sees at inference the pixels it trained on.
//! The unit tests check it against values produced by Pillow.

pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A crop box in source pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rect {
    pub(crate) x: usize,
    pub(crate) y: usize,
    pub(crate) w: usize,
    pub(crate) h: usize,
}

/// ToTensor (÷255) then Normalize(ImageNet mean, std), interleaved RGB u8 → CHW f32.
pub(crate) fn normalise(r: &Raster) -> Vec<f32> {
    let plane = r.w * r.h;
    let mut out = vec![0.0f32; 3 * plane];
    let (planes01, plane2) = out.split_at_mut(2 * plane);
    let (plane0, plane1) = planes01.split_at_mut(plane);
    for (i, px) in r.px.chunks_exact(3).enumerate() {
        plane0[i] = (px[0] as f32 / 255.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0];
        plane1[i] = (px[1] as f32 / 255.0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1];
        plane2[i] = (px[2] as f32 / 255.0 - IMAGENET_MEAN[2]) / IMAGENET_STD[2];
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 8-bit RGB rasters and PIL's bicubic resampling
// ---------------------------------------------------------------------------------------------

/// An owned interleaved 8-bit RGB image (PIL's "RGB" mode), row-major.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Raster {
    pub(crate) w: usize,
    pub(crate) h: usize,
    pub(crate) px: Vec<u8>,
}

impl Raster {
    pub(crate) fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            px: vec![0; w * h * 3],
        }
    }
}

/// A borrowed interleaved RGB image.
pub(crate) struct View<'a> {
    pub(crate) w: usize,
    pub(crate) h: usize,
    pub(crate) px: &'a [u8],
}

impl<'a> View<'a> {
    pub(crate) fn of(img: &'a image::RgbImage) -> Self {
        Self {
            w: img.width() as usize,
            h: img.height() as usize,
            px: img.as_raw(),
        }
    }
}

/// PIL's fixed-point precision for 8-bit resampling (`32 − 8 − 2`).
const PRECISION_BITS: u32 = 22;

/// PIL's bicubic kernel with a = −0.5.
fn bicubic_kernel(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Resampling taps along one axis (PIL `precompute_coeffs` + `normalize_coeffs_8bpc`): output
/// `i` reads `count[i]` inputs from `first[i]` with fixed-point weights `k[i·ksize ..]`.
struct Taps {
    ksize: usize,
    first: Vec<usize>,
    count: Vec<usize>,
    k: Vec<i32>,
}

impl Taps {
    fn new(in_size: usize, out_size: usize) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = 2.0 * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut taps = Self {
            ksize,
            first: vec![0; out_size],
            count: vec![0; out_size],
            k: vec![0; out_size * ksize],
        };
        let mut w = vec![0.0f64; ksize];
        let one = (1u32 << PRECISION_BITS) as f64;
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // C's (int) truncates toward zero.
            let xmin = ((center - support + 0.5).trunc() as i64).max(0) as usize;
            let xmax = ((center + support + 0.5).trunc() as i64)
                .min(in_size as i64)
                .max(0) as usize;
            let n = xmax.saturating_sub(xmin).min(ksize);
            let mut ww = 0.0;
            for (x, slot) in w.iter_mut().enumerate().take(n) {
                *slot = bicubic_kernel(((x + xmin) as f64 - center + 0.5) * ss);
                ww += *slot;
            }
            let row = &mut taps.k[xx * ksize..(xx + 1) * ksize];
            for (dst, &v) in row.iter_mut().zip(&w[..n]) {
                let v = if ww != 0.0 { v / ww } else { v };
                *dst = if v < 0.0 {
                    (-0.5 + v * one).trunc() as i32
                } else {
                    (0.5 + v * one).trunc() as i32
                };
            }
            taps.first[xx] = xmin;
            taps.count[xx] = n;
        }
        taps
    }

    fn weights(&self, i: usize) -> &[i32] {
        &self.k[i * self.ksize..i * self.ksize + self.count[i]]
    }
}

/// PIL `clip8`: fixed-point accumulator → u8.
#[inline]
fn clip8(acc: i32) -> u8 {
    if acc >= (1 << PRECISION_BITS << 8) {
        255
    } else if acc <= 0 {
        0
    } else {
        (acc >> PRECISION_BITS) as u8
    }
}

/// Crops `rect` out of `src` and resizes it to `out_w`×`out_h` exactly like PIL's
/// `img.crop(box).resize(size, BICUBIC)`: horizontal pass, u8, vertical pass, u8; an axis whose
/// size does not change is not resampled.
pub(crate) fn resample(src: &View, rect: Rect, out_w: usize, out_h: usize) -> Raster {
    if out_w == 0 || out_h == 0 || rect.w == 0 || rect.h == 0 {
        return Raster::new(out_w, out_h);
    }
    let stride = src.w * 3;
    // Horizontal pass (or a plain copy of the box) into a rect.h × out_w raster.
    let mut mid = Raster::new(out_w, rect.h);
    if out_w == rect.w {
        for y in 0..rect.h {
            let from = (rect.y + y) * stride + rect.x * 3;
            mid.px[y * out_w * 3..(y + 1) * out_w * 3]
                .copy_from_slice(&src.px[from..from + out_w * 3]);
        }
    } else {
        let taps = Taps::new(rect.w, out_w);
        let half = 1i32 << (PRECISION_BITS - 1);
        for y in 0..rect.h {
            let row = &src.px
                [(rect.y + y) * stride + rect.x * 3..(rect.y + y) * stride + (rect.x + rect.w) * 3];
            let out = &mut mid.px[y * out_w * 3..(y + 1) * out_w * 3];
            for (xx, o) in out.chunks_exact_mut(3).enumerate() {
                let weights = taps.weights(xx);
                let first = taps.first[xx];
                let (mut s0, mut s1, mut s2) = (half, half, half);
                for (p, &k) in row[first * 3..(first + weights.len()) * 3]
                    .chunks_exact(3)
                    .zip(weights)
                {
                    s0 += p[0] as i32 * k;
                    s1 += p[1] as i32 * k;
                    s2 += p[2] as i32 * k;
                }
                o[0] = clip8(s0);
                o[1] = clip8(s1);
                o[2] = clip8(s2);
            }
        }
    }
    if out_h == rect.h {
        return mid;
    }
    // Vertical pass.
    let taps = Taps::new(rect.h, out_h);
    let half = 1i32 << (PRECISION_BITS - 1);
    let row_len = out_w * 3;
    let mut out = Raster::new(out_w, out_h);
    let mut acc = vec![0i32; row_len];
    for yy in 0..out_h {
        acc.fill(half);
        let first = taps.first[yy];
        for (j, &k) in taps.weights(yy).iter().enumerate() {
            let row = &mid.px[(first + j) * row_len..(first + j + 1) * row_len];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += p as i32 * k;
            }
        }
        for (o, &a) in out.px[yy * row_len..(yy + 1) * row_len]
            .iter_mut()
            .zip(&acc)
        {
            *o = clip8(a);
        }
    }
    out
}

/// Undo normalisation for display (CHW f32 → RgbImage), used by the UI's crop strip.
pub(crate) fn denormalise(chw: &[f32], size: u32) -> image::RgbImage {
    let plane = size as usize * size as usize;
    image::RgbImage::from_fn(size, size, |x, y| {
        let i = y as usize * size as usize + x as usize;
        let channel = |c: usize| {
            let v = chw.get(c * plane + i).copied().unwrap_or(0.0);
            ((v * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255.0)
                .round()
                .clamp(0.0, 255.0) as u8
        };
        image::Rgb([channel(0), channel(1), channel(2)])
    })
}

/// Bicubic resize of an RGB image (PIL semantics, antialiased when shrinking), exposed for reuse.
pub fn resize_bicubic(img: &image::RgbImage, width: u32, height: u32) -> image::RgbImage {
    let out = if img.width() == 0 || img.height() == 0 {
        Raster::new(width as usize, height as usize)
    } else {
        let whole = Rect {
            x: 0,
            y: 0,
            w: img.width() as usize,
            h: img.height() as usize,
        };
        resample(&View::of(img), whole, width as usize, height as usize)
    };
    image::RgbImage::from_raw(width, height, out.px)
        .unwrap_or_else(|| image::RgbImage::new(width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raster(w: usize, h: usize, px: &[u8]) -> Raster {
        Raster {
            w,
            h,
            px: px.to_vec(),
        }
    }

    fn image_from(w: u32, h: u32, px: Vec<u8>) -> image::RgbImage {
        image::RgbImage::from_raw(w, h, px).expect("test image size")
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

    // Reference values from Pillow 13 (`pip install pillow numpy`):
    //   import numpy as np; from PIL import Image
    //   def rgb(px, w, h): return Image.fromarray(np.array(px, dtype=np.uint8).reshape(h, w, 3), "RGB")
    //   ramp = rgb([[v, v, v] for v in [0, 50, 100, 150, 200, 250]], 6, 1)
    //   np.array(ramp.resize((3, 1), Image.BICUBIC))[0, :, 0]          # [27, 125, 223]
    //   two = rgb([[0, 0, 0], [255, 255, 255]], 2, 1)
    //   np.array(two.resize((5, 1), Image.BICUBIC))[0, :, 0]           # [0, 17, 128, 238, 255]
    //   g = [[(x*37 + y*91) % 256, (x*x*13 + y*7) % 256, (255 - x*40 - y*30) % 256] for y in range(4) for x in range(5)]
    //   np.array(rgb(g, 5, 4).resize((3, 7), Image.BICUBIC)).reshape(-1)
    #[test]
    fn bicubic_matches_pil() {
        let ramp: Vec<u8> = [0u8, 50, 100, 150, 200, 250]
            .iter()
            .flat_map(|&v| [v, v, v])
            .collect();
        let down = resize_bicubic(&image_from(6, 1, ramp), 3, 1);
        assert_eq!(
            down.pixels().map(|p| p[0]).collect::<Vec<_>>(),
            vec![27, 125, 223]
        );

        let two = image_from(2, 1, vec![0, 0, 0, 255, 255, 255]);
        let up = resize_bicubic(&two, 5, 1);
        assert_eq!(
            up.pixels().map(|p| p[0]).collect::<Vec<_>>(),
            vec![0, 17, 128, 238, 255]
        );

        let mut g = Vec::new();
        for y in 0i32..4 {
            for x in 0i32..5 {
                g.extend(
                    [
                        (x * 37 + y * 91) % 256,
                        (x * x * 13 + y * 7) % 256,
                        (255 - x * 40 - y * 30).rem_euclid(256),
                    ]
                    .map(|v| v as u8),
                );
            }
        }
        let both = resize_bicubic(&image_from(5, 4, g), 3, 7);
        let expected: Vec<u8> = vec![
            6, 1, 243, 67, 54, 177, 128, 172, 111, 37, 4, 233, 106, 57, 167, 169, 175, 101, 97, 8,
            213, 164, 61, 147, 227, 179, 81, 170, 13, 196, 113, 66, 130, 139, 184, 64, 198, 17,
            179, 52, 70, 113, 52, 188, 47, 86, 21, 159, 76, 74, 93, 115, 192, 27, 16, 24, 149, 94,
            77, 83, 160, 195, 17,
        ];
        assert_eq!(both.into_raw(), expected);
    }

    #[test]
    fn resize_constant_stays_constant_and_identity_is_identity() {
        let c = image::RgbImage::from_pixel(13, 9, image::Rgb([200, 17, 99]));
        for (w, h) in [(64, 64), (5, 3), (1, 1), (13, 40), (100, 2)] {
            let r = resize_bicubic(&c, w, h);
            assert_eq!((r.width(), r.height()), (w, h));
            assert!(r.pixels().all(|p| p.0 == [200, 17, 99]), "{w}x{h}");
        }
        let p = pattern(23, 17);
        assert_eq!(resize_bicubic(&p, 23, 17), p);
    }

    #[test]
    fn resize_of_subrect_equals_crop_then_resize() {
        let p = pattern(30, 20);
        let rect = Rect {
            x: 7,
            y: 3,
            w: 11,
            h: 14,
        };
        let cropped = image::imageops::crop_imm(&p, 7, 3, 11, 14).to_image();
        let direct = resample(&View::of(&p), rect, 16, 9);
        assert_eq!(direct.px, resize_bicubic(&cropped, 16, 9).into_raw());
    }

    #[test]
    fn normalise_and_denormalise_are_inverse_on_u8() {
        let r = raster(2, 2, &[0, 1, 2, 100, 128, 200, 253, 254, 255, 7, 77, 177]);
        let chw = normalise(&r);
        assert!((chw[0] - (-IMAGENET_MEAN[0] / IMAGENET_STD[0])).abs() < 1e-6);
        assert_eq!(chw[4], (1.0 / 255.0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1]);
        assert_eq!(denormalise(&chw, 2).into_raw(), r.px);
    }
}
