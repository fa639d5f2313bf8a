// name: Kaleidoscopic IFS folds
// family: ifs
// param: iterations = 8 [4, 10] fold iterations (rounded)
// param: scale = 1.9 [1.5, 2.2] scale factor per fold
// param: spin = 1.0 [0.0, 3.0] amplitude of the per-fold rotation drift
// param: glow = 10.0 [3.0, 20.0] sharpness of the orbit-trap glow
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let n = i32(param(0u) + 0.5);
    let scale = param(1u);
    let spin = param(2u);
    let glow = param(3u);
    let q = (uv - 0.5) * 2.6;
    var p = q;
    var s = 1.0;
    var trap = 1e9;
    var hue = 0.0;
    let ang = 0.3 + spin * 0.35 * sin(t * 0.4) + t * 0.06;
    let off = vec2<f32>(1.0, 0.55 + 0.3 * sin(t * 0.23));
    for (var i = 0; i < 12; i++) {
        if i >= n { break; }
        p = abs(p);
        if p.x < p.y {
            p = p.yx;
            hue += 0.13;
        }
        p = rot2(ang) * p;
        p = p * scale - off * (scale - 1.0);
        s *= scale;
        trap = min(trap, length(p) / s);
    }
    let d = (max(abs(p.x), abs(p.y)) - 1.0) / s;
    var col = palette(length(q) * 0.3 - t * 0.05, vec3<f32>(0.2, 0.15, 0.3), vec3<f32>(0.15), vec3<f32>(1.0), vec3<f32>(0.6, 0.7, 0.8));
    let c = palette(hue + t * 0.04, vec3<f32>(0.55), vec3<f32>(0.45), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    col += c * exp(-trap * glow) * 1.3;
    col = mix(col, c * 1.2, 1.0 - smoothstep(0.0, 0.01, d));
    return col;
}
