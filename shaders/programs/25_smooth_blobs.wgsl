// name: Smooth-union blobs
// family: sdf
// param: blobs = 6 [3, 8] number of moving circles (rounded)
// param: smoothness = 0.25 [0.02, 0.6] smooth-min radius of the union
// param: bands = 10.0 [0.0, 24.0] iso-line frequency outside the shape
fn sb_smin(a: f32, b: f32, k: f32) -> f32 {
    let h = clamp(0.5 + 0.5 * (b - a) / k, 0.0, 1.0);
    return mix(b, a, h) - k * h * (1.0 - h);
}

fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let n = i32(param(0u) + 0.5);
    let k = param(1u);
    let bands = param(2u);
    let p = (uv - 0.5) * 2.0;
    var d = 1e3;
    var csum = vec3<f32>(0.0);
    var wsum = 0.0;
    for (var i = 0; i < 8; i++) {
        if i >= n { break; }
        let fi = f32(i);
        let c = 0.6 * vec2<f32>(sin(t * (0.5 + 0.13 * fi) + fi * 2.3), cos(t * (0.4 + 0.11 * fi) + fi * 1.7));
        let r = 0.2 + 0.09 * sin(fi * 1.9 + t * 0.8);
        let di = length(p - c) - r;
        d = sb_smin(d, di, k);
        let w = exp(-max(di, 0.0) * 10.0);
        csum += w * palette(fi * 0.13 + t * 0.03, vec3<f32>(0.55), vec3<f32>(0.45), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
        wsum += w;
    }
    let inner = csum / max(wsum, 1e-4);
    var col: vec3<f32>;
    if d < 0.0 {
        col = inner * (0.7 + 0.6 * clamp(-d * 4.0, 0.0, 1.0));
        col += vec3<f32>(1.0) * 0.25 * (1.0 - smoothstep(0.0, 0.05, -d));
    } else {
        let bg = mix(vec3<f32>(0.16, 0.12, 0.3), vec3<f32>(0.3, 0.45, 0.6), uv.y);
        col = mix(bg, inner * 0.7, exp(-d * 5.0)) * (0.8 + 0.2 * cos(bands * TAU * d - t * 2.0));
    }
    col *= 0.5 + 0.5 * smoothstep(0.0, 0.02, abs(d));
    return col;
}
