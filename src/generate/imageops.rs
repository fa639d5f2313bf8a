//! Small, exact image operations used by the generators (K-means Leaves masks, mixup).
//!
//! Semantics follow the libraries the paper's code called, so masks match its data:
//! - [`box_blur`] is OpenCV's `cv2.blur` (normalised box filter, `BORDER_REFLECT_101`).
//! - [`resize_bilinear`] is torchvision's bilinear `Resize` with `antialias=True`: a triangle
//!   filter whose support widens by the scale factor when shrinking (PIL's algorithm), and
//!   plain half-pixel-centred bilinear interpolation when enlarging.

/// A single-channel f32 image, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Plane {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Plane {
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            data: vec![0.0; width * height],
        }
    }

    pub fn from_fn(width: usize, height: usize, f: impl Fn(usize, usize) -> f32) -> Self {
        let mut data = Vec::with_capacity(width * height);
        for y in 0..height {
            for x in 0..width {
                data.push(f(x, y));
            }
        }
        Self {
            width,
            height,
            data,
        }
    }

    pub fn get(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }
}

/// Index reflection without repeating the edge (`BORDER_REFLECT_101`: gfedcb|abcdefgh|gfedcba);
/// also the training augmentations' blur border (`train::augment`).
pub(crate) fn reflect101(i: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let mut j = i.rem_euclid(period);
    if j >= n {
        j = period - j;
    }
    j as usize
}

/// Normalised `size`×`size` box blur with reflect-101 borders (`cv2.blur`). `size` 1 is identity.
pub(crate) fn box_blur(src: &Plane, size: usize) -> Plane {
    if size <= 1 {
        return src.clone();
    }
    // cv2 anchors the kernel at its centre: for even sizes, at size/2.
    let before = (size / 2) as isize;
    let (w, h) = (src.width, src.height);
    let norm = 1.0 / size as f32;
    let mut horizontal = Plane::new(w, h);
    for y in 0..h {
        let row = &src.data[y * w..(y + 1) * w];
        for x in 0..w {
            let mut acc = 0.0f32;
            for k in 0..size as isize {
                acc += row[reflect101(x as isize + k - before, w)];
            }
            horizontal.data[y * w + x] = acc * norm;
        }
    }
    let mut out = Plane::new(w, h);
    for y in 0..h {
        for k in 0..size as isize {
            let sy = reflect101(y as isize + k - before, h);
            let src_row = &horizontal.data[sy * w..(sy + 1) * w];
            let dst_row = &mut out.data[y * w..(y + 1) * w];
            for (d, s) in dst_row.iter_mut().zip(src_row) {
                *d += *s;
            }
        }
        for d in &mut out.data[y * w..(y + 1) * w] {
            *d *= norm;
        }
    }
    out
}

/// Per-output-pixel taps of a 1-D resampling: (first source index, weights).
fn resample_taps(in_len: usize, out_len: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = in_len as f64 / out_len as f64;
    // Antialiasing only matters when shrinking; enlarging is plain bilinear.
    let support_scale = scale.max(1.0);
    let support = support_scale; // triangle filter of radius 1, stretched
    (0..out_len)
        .map(|o| {
            let centre = (o as f64 + 0.5) * scale;
            let lo = ((centre - support + 0.5).floor().max(0.0)) as usize;
            let hi = ((centre + support + 0.5).floor() as usize).min(in_len);
            let mut weights: Vec<f64> = (lo..hi)
                .map(|i| {
                    let d = (i as f64 + 0.5 - centre) / support_scale;
                    (1.0 - d.abs()).max(0.0)
                })
                .collect();
            let total: f64 = weights.iter().sum();
            if total > 0.0 {
                for w in &mut weights {
                    *w /= total;
                }
            }
            (lo, weights.into_iter().map(|w| w as f32).collect())
        })
        .collect()
}

/// Bilinear resize (torchvision `Resize(..., antialias=True)` semantics).
pub(crate) fn resize_bilinear(src: &Plane, out_w: usize, out_h: usize) -> Plane {
    if src.width == out_w && src.height == out_h {
        return src.clone();
    }
    let taps_x = resample_taps(src.width, out_w);
    let taps_y = resample_taps(src.height, out_h);
    // Horizontal pass.
    let mut tmp = Plane::new(out_w, src.height);
    for y in 0..src.height {
        let row = &src.data[y * src.width..(y + 1) * src.width];
        for (x, (lo, ws)) in taps_x.iter().enumerate() {
            tmp.data[y * out_w + x] = ws.iter().enumerate().map(|(k, w)| w * row[lo + k]).sum();
        }
    }
    // Vertical pass.
    let mut out = Plane::new(out_w, out_h);
    for (y, (lo, ws)) in taps_y.iter().enumerate() {
        for (k, w) in ws.iter().enumerate() {
            let src_row = &tmp.data[(lo + k) * out_w..(lo + k + 1) * out_w];
            let dst_row = &mut out.data[y * out_w..(y + 1) * out_w];
            for (d, s) in dst_row.iter_mut().zip(src_row) {
                *d += w * s;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect101_matches_opencv_convention() {
        // n = 4: ... 2 1 | 0 1 2 3 | 2 1 ...
        assert_eq!(reflect101(-1, 4), 1);
        assert_eq!(reflect101(-2, 4), 2);
        assert_eq!(reflect101(4, 4), 2);
        assert_eq!(reflect101(5, 4), 1);
        assert_eq!(reflect101(0, 1), 0);
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "got {got:?}, want {want:?}");
        }
    }

    // Reference values: tools/reference_kml.py (cv2.blur, PIL BILINEAR on mode 'F').
    #[test]
    fn box_blur_matches_cv2() {
        let corner = Plane::from_fn(3, 3, |x, y| if x == 0 && y == 0 { 9.0 } else { 0.0 });
        assert_close(
            &box_blur(&corner, 3).data,
            &[1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
        );
        let centre = Plane::from_fn(3, 3, |x, y| if x == 1 && y == 1 { 9.0 } else { 0.0 });
        assert_close(
            &box_blur(&centre, 3).data,
            &[4.0, 2.0, 4.0, 2.0, 1.0, 2.0, 4.0, 2.0, 4.0],
        );
        let c = box_blur(&Plane::from_fn(5, 4, |_, _| 0.25), 3);
        assert!(c.data.iter().all(|v| (v - 0.25).abs() < 1e-6));
    }

    #[test]
    fn antialiased_downsampling_matches_pil() {
        let p = Plane::from_fn(4, 1, |x, _| 2.0 * x as f32);
        assert_close(&resize_bilinear(&p, 2, 1).data, &[1.428_571, 4.571_429]);
        let ramp = Plane::from_fn(8, 8, |x, y| (y * 8 + x) as f32 / 63.0);
        assert_close(
            &resize_bilinear(&ramp, 3, 3).data,
            &[
                0.157_895, 0.195_906, 0.233_918, 0.461_988, 0.5, 0.538_012, 0.766_082, 0.804_094,
                0.842_105,
            ],
        );
    }

    #[test]
    fn bilinear_upsample_is_half_pixel_bilinear() {
        // cv2.resize(..., INTER_LINEAR) and PIL both give [0, 0.25, 0.75, 1].
        let p = Plane::from_fn(2, 1, |x, _| x as f32);
        let r = resize_bilinear(&p, 4, 1);
        let expected = [0.0, 0.25, 0.75, 1.0];
        for (a, b) in r.data.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{:?}", r.data);
        }
    }

    #[test]
    fn resizing_a_constant_keeps_it_constant() {
        let p = Plane::from_fn(256, 256, |_, _| 1.0);
        for size in [64, 100, 300] {
            let r = resize_bilinear(&p, size, size);
            assert!(r.data.iter().all(|v| (v - 1.0).abs() < 1e-5));
        }
    }
}
