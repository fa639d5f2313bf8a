// name: Kaleidoscope mandala
// family: polar
// param: segments = 8 [3, 16] number of mirror segments (rounded)
// param: frequency = 9.0 [3.0, 20.0] frequency of the folded pattern
// param: noise = 0.5 [0.0, 1.5] amount of noise texture in the pattern
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let segs = f32(i32(param(0u) + 0.5));
    let freq = param(1u);
    let noise_amt = param(2u);
    let p = (uv - 0.5) * 2.0;
    let r = length(p);
    var a = atan2(p.y, p.x) + t * 0.2;
    let seg = TAU / segs;
    a = a - seg * floor(a / seg);
    a = abs(a - seg * 0.5);
    let q = vec2<f32>(cos(a), sin(a)) * r;
    let w = gradient_noise(q * 3.0 + vec2<f32>(t * 0.3, -t * 0.2));
    let v = sin(q.x * freq - t * 1.5) * cos(q.y * freq * 1.3 + t) + 0.5 * sin(r * freq * 0.7 - t * 2.0) + noise_amt * w;
    var col = palette(v * 0.3 + r * 0.6 + t * 0.05, vec3<f32>(0.5), vec3<f32>(0.5),
        vec3<f32>(1.0, 1.0, 0.5), vec3<f32>(0.8, 0.9, 0.3));
    col *= 0.55 + 0.45 * smoothstep(0.0, 0.25, abs(v));
    col += vec3<f32>(1.0, 0.9, 0.7) * (1.0 - smoothstep(0.0, 0.08, abs(v - 0.8))) * 0.5;
    return col * (1.15 - 0.35 * r);
}
