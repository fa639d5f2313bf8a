// name: Boolean shapes distance field
// family: sdf
// param: rings = 12.0 [3.0, 24.0] iso-line density
// param: blend = 0.15 [0.0, 0.4] smooth boolean radius
// param: hue = 0.0 [0.0, 1.0] hue offset of the inside/outside colours
fn bd_smin(a: f32, b: f32, k: f32) -> f32 {
    let kk = max(k, 1e-4);
    let h = clamp(0.5 + 0.5 * (b - a) / kk, 0.0, 1.0);
    return mix(b, a, h) - kk * h * (1.0 - h);
}

fn bd_smax(a: f32, b: f32, k: f32) -> f32 {
    return -bd_smin(-a, -b, k);
}

fn bd_box(p: vec2<f32>, b: vec2<f32>) -> f32 {
    let d = abs(p) - b;
    return length(max(d, vec2<f32>(0.0))) + min(max(d.x, d.y), 0.0);
}

fn bd_segment(p: vec2<f32>, a: vec2<f32>, b: vec2<f32>) -> f32 {
    let pa = p - a;
    let ba = b - a;
    let h = clamp(dot(pa, ba) / dot(ba, ba), 0.0, 1.0);
    return length(pa - ba * h);
}

fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let rings = param(0u);
    let blend = param(1u);
    let hue = param(2u);
    let p = (uv - 0.5) * 2.0;
    let bx = bd_box(rot2(t * 0.4) * (p - vec2<f32>(-0.2, 0.1)), vec2<f32>(0.45, 0.3)) - 0.05;
    let hole = length(p - vec2<f32>(0.45 * sin(t * 0.9), 0.35 * cos(t * 0.7))) - 0.25;
    let ring_c = vec2<f32>(0.5 * cos(t * 0.5), -0.5 + 0.2 * sin(t * 1.1));
    let ring = abs(length(p - ring_c) - 0.25) - 0.06;
    let cap = bd_segment(p, vec2<f32>(-0.7, -0.6), vec2<f32>(-0.7 + 0.5 * cos(t * 0.8), 0.2 + 0.4 * sin(t * 0.8))) - 0.08;
    var d = bd_smax(bx, -hole, blend);
    d = bd_smin(d, ring, blend);
    d = bd_smin(d, cap, blend);
    let h = hue + t * 0.03;
    let outside = hsv2rgb(vec3<f32>(h + 0.08, 0.65, 0.95));
    let inside = hsv2rgb(vec3<f32>(h + 0.58, 0.6, 0.9));
    var col = select(outside, inside, d < 0.0);
    col *= 1.0 - exp(-5.0 * abs(d)) * 0.6;
    col *= 0.75 + 0.25 * cos(rings * TAU * d);
    col = mix(col, vec3<f32>(1.0), 1.0 - smoothstep(0.0, 0.015, abs(d)));
    return col;
}
