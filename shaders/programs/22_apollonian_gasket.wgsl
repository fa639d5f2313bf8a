// name: Apollonian circle gasket
// family: ifs
// param: iterations = 8 [5, 12] inversion iterations (rounded)
// param: squeeze = 1.15 [1.0, 1.4] inversion radius of the packing
// param: zoom = 1.5 [0.8, 3.0] half-width of the view
// param: line = 0.01 [0.002, 0.04] thickness of the circle outlines
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let n = i32(param(0u) + 0.5);
    let squeeze = param(1u) + 0.08 * sin(t * 0.5);
    let zoom = param(2u) * (0.75 + 0.25 * cos(t * 0.3));
    let line = param(3u);
    var p = rot2(t * 0.12) * (uv - 0.5) * 2.0 * zoom + vec2<f32>(0.4 * t, 0.15 * t);
    var scale = 1.0;
    var trap = 1e9;
    var last = 0.0;
    for (var i = 0; i < 12; i++) {
        if i >= n { break; }
        p = -1.0 + 2.0 * fract(0.5 * p + 0.5);
        let r2 = dot(p, p);
        trap = min(trap, r2);
        last = r2;
        let k = squeeze / max(r2, 1e-4);
        p *= k;
        scale *= k;
    }
    let d = 0.25 * abs(p.y) / scale;
    let fill = palette(sqrt(trap) * 1.5 + t * 0.05, vec3<f32>(0.5), vec3<f32>(0.5), vec3<f32>(1.0), vec3<f32>(0.1, 0.35, 0.6));
    var col = fill * (0.45 + 0.55 * clamp(last, 0.0, 1.0));
    let edge = 1.0 - smoothstep(0.0, line, d);
    col = mix(col, vec3<f32>(1.0, 0.97, 0.9), edge * 0.85);
    return col;
}
