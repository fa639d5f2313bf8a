//! Inference preprocessing: the pixels a model embeds. DINO's k-NN evaluation preprocessing
//! ([`eval_preprocess`]: `Resize(256) → CenterCrop(224)` scaled to `size`: the shorter side
//! resized to round(size·256/224), bicubic and antialiased, then the centre size×size cut out and
//! normalised) for image embeddings, and [`resize_normalise`] (the whole image, no crop) for
//! patch features of dense tasks. Both on `crate::resample`, the resampler training used.

use crate::resample::{Raster, Rect, View, normalise, resample};

/// The dense-task preprocessing: the whole image resized (PIL bicubic, antialiased) to
/// `width`×`height`, then ToTensor + ImageNet Normalize, CHW. No crop, so patch tokens stay
/// aligned with the image and its masks.
pub(crate) fn resize_normalise(img: &image::RgbImage, width: u32, height: u32) -> Vec<f32> {
    let (w, h) = (width as usize, height as usize);
    if img.width() == 0 || img.height() == 0 || w == 0 || h == 0 {
        return normalise(&Raster::new(w, h));
    }
    let resized = resample(
        &View::of(img),
        Rect {
            x: 0,
            y: 0,
            w: img.width() as usize,
            h: img.height() as usize,
        },
        w,
        h,
    );
    normalise(&resized)
}

/// DINO's evaluation preprocessing at `size`: resize the shorter side to round(size·256/224)
/// (bicubic, antialiased), centre-crop size×size, normalise; f32 CHW of length 3·size·size.
pub fn eval_preprocess(img: &image::RgbImage, size: u32) -> Vec<f32> {
    let s = size as usize;
    if s == 0 {
        return Vec::new();
    }
    let (w, h) = (img.width() as u64, img.height() as u64);
    if w == 0 || h == 0 {
        return normalise(&Raster::new(s, s));
    }
    // torchvision `Resize(int)`: short side to the target, long side int(target·long/short).
    let short_target = ((size as f64 * 256.0 / 224.0).round() as u64).max(size as u64);
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    let long_target = (short_target * long / short).max(short_target);
    let (nw, nh) = if w <= h {
        (short_target, long_target)
    } else {
        (long_target, short_target)
    };
    let resized = resample(
        &View::of(img),
        Rect {
            x: 0,
            y: 0,
            w: img.width() as usize,
            h: img.height() as usize,
        },
        nw as usize,
        nh as usize,
    );
    // torchvision `CenterCrop`: offsets int(round((dim − size) / 2)), Python's half-to-even round.
    let top = ((resized.h - s) as f64 / 2.0).round_ties_even() as usize;
    let left = ((resized.w - s) as f64 / 2.0).round_ties_even() as usize;
    let mut crop = Raster::new(s, s);
    for y in 0..s {
        let from = ((top + y) * resized.w + left) * 3;
        crop.px[y * s * 3..(y + 1) * s * 3].copy_from_slice(&resized.px[from..from + s * 3]);
    }
    normalise(&crop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::{denormalise, resize_bicubic};

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

    #[test]
    fn eval_preprocess_crops_centre_and_round_trips() {
        // 146×73 at size 64: the short side is already round(64·256/224) = 73 and the long side
        // 73·146/73 = 146, so no resampling; the crop starts at (41, round(4.5) = 4).
        let img = pattern(146, 73);
        let v = eval_preprocess(&img, 64);
        assert_eq!(v.len(), 3 * 64 * 64);
        let back = denormalise(&v, 64);
        for (x, y, p) in back.enumerate_pixels() {
            assert_eq!(p, img.get_pixel(x + 41, y + 4), "({x}, {y})");
        }
        // A constant image of any shape comes back exactly.
        let c = image::RgbImage::from_pixel(300, 200, image::Rgb([3, 128, 254]));
        let v = eval_preprocess(&c, 32);
        assert_eq!(v.len(), 3 * 32 * 32);
        assert!(denormalise(&v, 32).pixels().all(|p| p.0 == [3, 128, 254]));
        // A smooth image resized down matches a direct bicubic resize of it.
        let big = pattern(256, 256);
        let small = resize_bicubic(&big, 73, 73);
        let centre = image::imageops::crop_imm(&small, 4, 4, 64, 64).to_image();
        assert_eq!(denormalise(&eval_preprocess(&big, 64), 64), centre);
    }

    // Pillow 13 reference for torchvision Resize(73, BICUBIC) → CenterCrop(64) on pattern(100, 80):
    //   a = np.array([[[x*4 % 256, y*4 % 256, (x*y + 7*x) % 256] for x in range(100)] for y in range(80)], dtype=np.uint8)
    //   r = Image.fromarray(a, "RGB").resize((int(73*100/80), 73), Image.BICUBIC)      # 91×73
    //   left, top = int(round((91-64)/2.0)), int(round((73-64)/2.0))                   # 14, 4
    //   c = np.array(r.crop((left, top, left+64, top+64))); c[y, x]; c.astype(np.int64).sum()
    #[test]
    fn eval_preprocess_matches_torchvision_pil() {
        let out = denormalise(&eval_preprocess(&pattern(100, 80), 64), 64);
        assert_eq!(out.get_pixel(0, 0).0, [62, 18, 176]);
        assert_eq!(out.get_pixel(63, 0).0, [83, 18, 219]);
        assert_eq!(out.get_pixel(10, 20).0, [106, 105, 113]);
        assert_eq!(out.get_pixel(31, 47).0, [198, 224, 35]);
        assert_eq!(out.get_pixel(63, 63).0, [83, 38, 164]);
        assert_eq!(
            out.as_raw().iter().map(|&v| v as u64).sum::<u64>(),
            1_495_832
        );
    }
}
