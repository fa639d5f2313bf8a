//! Line/scatter plots as PNG without a window: the shapes (axes, ticks, series, legend, text)
//! are egui's own (`epaint`), tessellated into triangles with egui's fonts, and those triangles
//! are rasterised here on the CPU. The report's plots are thus drawn by procmem, reproducibly,
//! by the same command that computes their numbers.

use egui::epaint::{
    self, ClippedShape, Color32, FontId, Pos2, Rect, Shape, Stroke, TessellationOptions, Vec2,
    text::{FontDefinitions, Fonts, TextOptions},
};

pub struct Series {
    pub label: String,
    /// (x, y) in data units, drawn in this order and joined by a line.
    pub points: Vec<(f64, f64)>,
    /// A label per point (e.g. its k), drawn beside it; empty for none.
    pub point_labels: Vec<String>,
}

pub struct PlotSpec<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub width: u32,
    pub height: u32,
}

/// A palette readable on white, in series order.
pub(crate) fn series_colour(i: usize) -> Color32 {
    const P: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = P[i % P.len()];
    Color32::from_rgb(r, g, b)
}

fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / target as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= target as f64)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

fn fmt_tick(v: f64) -> String {
    if v == v.round() {
        format!("{v:.0}")
    } else if (v * 10.0) == (v * 10.0).round() {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Draws the plot; the axes span the data with a margin.
pub fn render(spec: &PlotSpec, series: &[Series]) -> image::RgbImage {
    let (w, h) = (spec.width as f32, spec.height as f32);
    let mut fonts = Fonts::new(TextOptions::default(), FontDefinitions::default());
    let mut view = fonts.with_pixels_per_point(1.0);
    let mut shapes: Vec<Shape> = Vec::new();
    let black = Color32::from_gray(20);
    let grey = Color32::from_gray(225);
    let text = |view: &mut epaint::text::FontsView<'_>, s: &str, size: f32, colour: Color32| {
        view.layout_no_wrap(s.to_string(), FontId::proportional(size), colour)
    };

    let plot = Rect::from_min_max(Pos2::new(70.0, 40.0), Pos2::new(w - 230.0, h - 55.0));
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let (mut x0, mut x1, mut y0, mut y1) = all.iter().fold(
        (f64::MAX, f64::MIN, f64::MAX, f64::MIN),
        |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    if all.is_empty() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let (mx, my) = (((x1 - x0) * 0.08).max(1e-3), ((y1 - y0) * 0.08).max(1e-3));
    let (x0, x1, y0, y1) = (x0 - mx, x1 + mx, y0 - my, y1 + my);
    let to_screen = |x: f64, y: f64| {
        Pos2::new(
            plot.left() + ((x - x0) / (x1 - x0)) as f32 * plot.width(),
            plot.bottom() - ((y - y0) / (y1 - y0)) as f32 * plot.height(),
        )
    };

    shapes.push(Shape::rect_filled(
        Rect::from_min_size(Pos2::ZERO, Vec2::new(w, h)),
        0.0,
        Color32::WHITE,
    ));
    for t in nice_ticks(x0, x1, 8) {
        let p = to_screen(t, y0);
        shapes.push(Shape::line_segment(
            [Pos2::new(p.x, plot.top()), Pos2::new(p.x, plot.bottom())],
            Stroke::new(1.0, grey),
        ));
        let g = text(&mut view, &fmt_tick(t), 13.0, black);
        shapes.push(Shape::galley(
            Pos2::new(p.x - g.size().x / 2.0, plot.bottom() + 6.0),
            g,
            black,
        ));
    }
    for t in nice_ticks(y0, y1, 8) {
        let p = to_screen(x0, t);
        shapes.push(Shape::line_segment(
            [Pos2::new(plot.left(), p.y), Pos2::new(plot.right(), p.y)],
            Stroke::new(1.0, grey),
        ));
        let g = text(&mut view, &fmt_tick(t), 13.0, black);
        shapes.push(Shape::galley(
            Pos2::new(plot.left() - g.size().x - 6.0, p.y - g.size().y / 2.0),
            g,
            black,
        ));
    }
    shapes.push(Shape::rect_stroke(
        plot,
        0.0,
        Stroke::new(1.0, black),
        epaint::StrokeKind::Middle,
    ));
    let title = text(&mut view, spec.title, 17.0, black);
    shapes.push(Shape::galley(
        Pos2::new(plot.center().x - title.size().x / 2.0, 10.0),
        title,
        black,
    ));
    let xl = text(&mut view, spec.x_label, 14.0, black);
    shapes.push(Shape::galley(
        Pos2::new(plot.center().x - xl.size().x / 2.0, h - 28.0),
        xl,
        black,
    ));
    let yl = text(&mut view, spec.y_label, 14.0, black);
    // The y label sits above the axis, unrotated (epaint rotates galleys, but upright reads better).
    shapes.push(Shape::galley(Pos2::new(8.0, plot.top() - 22.0), yl, black));

    for (i, s) in series.iter().enumerate() {
        let c = series_colour(i);
        let pts: Vec<Pos2> = s.points.iter().map(|&(x, y)| to_screen(x, y)).collect();
        if pts.len() > 1 {
            shapes.push(Shape::line(pts.clone(), Stroke::new(2.0, c)));
        }
        for (j, p) in pts.iter().enumerate() {
            shapes.push(Shape::circle_filled(*p, 4.5, c));
            if let Some(l) = s.point_labels.get(j).filter(|l| !l.is_empty()) {
                let g = text(&mut view, l, 11.0, c);
                shapes.push(Shape::galley(Pos2::new(p.x + 6.0, p.y - 14.0), g, c));
            }
        }
        let ly = plot.top() + 8.0 + i as f32 * 22.0;
        shapes.push(Shape::line_segment(
            [
                Pos2::new(plot.right() + 14.0, ly + 8.0),
                Pos2::new(plot.right() + 38.0, ly + 8.0),
            ],
            Stroke::new(2.5, c),
        ));
        shapes.push(Shape::circle_filled(
            Pos2::new(plot.right() + 26.0, ly + 8.0),
            4.0,
            c,
        ));
        let g = text(&mut view, &s.label, 13.0, black);
        shapes.push(Shape::galley(Pos2::new(plot.right() + 44.0, ly), g, black));
    }

    let atlas = view.image();
    let tex_size = view.font_image_size();
    let discs = fonts.texture_atlas().prepared_discs();
    let clip = Rect::from_min_size(Pos2::ZERO, Vec2::new(w, h));
    let clipped: Vec<ClippedShape> = shapes
        .into_iter()
        .map(|s| ClippedShape::new(clip, s))
        .collect();
    let primitives = epaint::Tessellator::new(1.0, TessellationOptions::default(), tex_size, discs)
        .tessellate_shapes(clipped);

    let mut canvas = vec![[0f32; 3]; (spec.width * spec.height) as usize];
    for p in primitives {
        if let epaint::Primitive::Mesh(mesh) = p.primitive {
            for tri in mesh.indices.chunks_exact(3) {
                let v = [
                    &mesh.vertices[tri[0] as usize],
                    &mesh.vertices[tri[1] as usize],
                    &mesh.vertices[tri[2] as usize],
                ];
                raster_triangle(&mut canvas, spec.width, spec.height, v, &atlas);
            }
        }
    }
    let mut out = image::RgbImage::new(spec.width, spec.height);
    for (px, c) in out.pixels_mut().zip(&canvas) {
        *px = image::Rgb([0, 1, 2].map(|i| (c[i].clamp(0.0, 1.0) * 255.0).round() as u8));
    }
    out
}

/// Fills one triangle: colour = vertex colour (premultiplied, interpolated) × atlas texel
/// (nearest), composited "over" in linear-free sRGB space as egui's own painters do.
fn raster_triangle(
    canvas: &mut [[f32; 3]],
    width: u32,
    height: u32,
    v: [&epaint::Vertex; 3],
    atlas: &epaint::ColorImage,
) {
    let (a, b, c) = (v[0].pos, v[1].pos, v[2].pos);
    let area = (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x);
    if area.abs() < 1e-9 {
        return;
    }
    let min_x = a.x.min(b.x).min(c.x).floor().max(0.0) as u32;
    let max_x = (a.x.max(b.x).max(c.x).ceil() as i64).clamp(0, width as i64 - 1) as u32;
    let min_y = a.y.min(b.y).min(c.y).floor().max(0.0) as u32;
    let max_y = (a.y.max(b.y).max(c.y).ceil() as i64).clamp(0, height as i64 - 1) as u32;
    let [aw, ah] = atlas.size;
    for y in min_y..=max_y {
        for x in min_x..=max_x {
            let p = Pos2::new(x as f32 + 0.5, y as f32 + 0.5);
            let w0 = ((b.x - p.x) * (c.y - p.y) - (b.y - p.y) * (c.x - p.x)) / area;
            let w1 = ((c.x - p.x) * (a.y - p.y) - (c.y - p.y) * (a.x - p.x)) / area;
            let w2 = 1.0 - w0 - w1;
            if w0 < -1e-6 || w1 < -1e-6 || w2 < -1e-6 {
                continue;
            }
            let interp =
                |f: &dyn Fn(&epaint::Vertex) -> f32| w0 * f(v[0]) + w1 * f(v[1]) + w2 * f(v[2]);
            let (u, t) = (interp(&|q| q.uv.x), interp(&|q| q.uv.y));
            let tx = ((u * aw as f32) as usize).min(aw - 1);
            let ty = ((t * ah as f32) as usize).min(ah - 1);
            let texel = atlas.pixels[ty * aw + tx]
                .to_array()
                .map(|c| c as f32 / 255.0);
            let col = [
                interp(&|q| q.color.r() as f32 / 255.0) * texel[0],
                interp(&|q| q.color.g() as f32 / 255.0) * texel[1],
                interp(&|q| q.color.b() as f32 / 255.0) * texel[2],
            ];
            let alpha = interp(&|q| q.color.a() as f32 / 255.0) * texel[3];
            let dst = &mut canvas[(y * width + x) as usize];
            for i in 0..3 {
                dst[i] = col[i] + dst[i] * (1.0 - alpha);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_series_colours_text_and_white_background() {
        let series = vec![
            Series {
                label: "model a".into(),
                points: vec![(0.1, 50.0), (0.3, 70.0)],
                point_labels: vec!["k=10".into(), "k=20".into()],
            },
            Series {
                label: "model b".into(),
                points: vec![(0.2, 60.0)],
                point_labels: vec![],
            },
        ];
        let img = render(
            &PlotSpec {
                title: "Privacy",
                x_label: "non-private fraction",
                y_label: "accuracy",
                width: 640,
                height: 400,
            },
            &series,
        );
        assert_eq!(img.dimensions(), (640, 400));
        assert_eq!(img.get_pixel(2, 2).0, [255, 255, 255], "white corner");
        let count = |c: Color32| {
            img.pixels()
                .filter(|p| p.0 == [c.r(), c.g(), c.b()])
                .count()
        };
        assert!(count(series_colour(0)) > 50, "series 0 drawn");
        assert!(count(series_colour(1)) > 30, "series 1 drawn");
        // Text is dark grey and anti-aliased: many dark pixels around the title.
        let dark = img.pixels().filter(|p| p.0.iter().all(|&c| c < 80)).count();
        assert!(dark > 500, "{dark} dark pixels: axes and text");
        let ticks = nice_ticks(0.0, 1.0, 5);
        assert_eq!(ticks.len(), 6);
        assert!((ticks[3] - 0.6).abs() < 1e-9 && ticks[5] == 1.0);
    }
}
