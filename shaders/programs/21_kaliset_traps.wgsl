// name: Kaliset orbit traps
// family: ifs
// param: iterations = 5 [3, 9] fold iterations (rounded)
// param: zoom = 1.2 [0.5, 1.8] half-width of the view
// param: morph = 0.15 [0.0, 0.3] amplitude of the fold constant drift
// param: glow = 12.0 [6.0, 30.0] sharpness of the orbit traps
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let n = i32(param(0u) + 0.5);
    let zoom = param(1u);
    let morph = param(2u);
    let glow = param(3u);
    var p = rot2(t * 0.1) * (uv - 0.5) * 2.0 * zoom + vec2<f32>(0.3 * sin(t * 0.2), 0.2 * cos(t * 0.17));
    let c = vec2<f32>(1.05, 0.4) + morph * vec2<f32>(sin(t * 0.45), cos(t * 0.31));
    var mx = 1e9;
    var my = 1e9;
    var md = 1e9;
    for (var i = 0; i < 12; i++) {
        if i >= n { break; }
        p = abs(p) / max(dot(p, p), 1e-3) - c;
        mx = min(mx, abs(p.x));
        my = min(my, abs(p.y));
        md = min(md, length(p));
    }
    let ca = palette(t * 0.04, vec3<f32>(0.5), vec3<f32>(0.5), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    let cb = palette(t * 0.04 + 0.4, vec3<f32>(0.5), vec3<f32>(0.5), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    var col = palette(md * 0.6 + t * 0.05, vec3<f32>(0.25), vec3<f32>(0.2), vec3<f32>(1.0), vec3<f32>(0.5, 0.6, 0.7));
    col *= 0.5 + 0.5 * exp(-md * 0.7);
    col += ca * exp(-mx * glow) * 0.6 + cb * exp(-my * glow) * 0.6;
    return col;
}
