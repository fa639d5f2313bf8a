// name: Chladni plate modes
// family: waves
// param: mode = 3.0 [1.0, 6.0] base mode number
// param: rate = 0.5 [0.1, 1.5] how fast the plate switches modes
// param: sharpness = 0.15 [0.05, 0.35] width of the sand lines
fn cp_mode(p: vec2<f32>, n: f32, m: f32, sgn: f32) -> f32 {
    return cos(n * PI * p.x) * cos(m * PI * p.y) + sgn * cos(m * PI * p.x) * cos(n * PI * p.y);
}

fn cp_modes(p: vec2<f32>, k: f32, base: f32) -> f32 {
    let n = floor(base + hash11(k + 0.5) * 3.0);
    let m = n + 1.0 + floor(hash11(k + 7.25) * 3.0);
    let sgn = select(1.0, -1.0, hash11(k + 3.5) < 0.5);
    return cp_mode(p, n, m, sgn);
}

fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let base = param(0u);
    let rate = param(1u);
    let sharp = param(2u);
    let p = rot2(t * 0.05) * (uv - 0.5) * 2.0;
    let s = t * rate;
    let k = floor(s);
    let f = smoothstep(0.25, 0.85, fract(s));
    let v = mix(cp_modes(p, k, base), cp_modes(p, k + 1.0, base), f);
    let sand = 1.0 - smoothstep(0.0, sharp, abs(v));
    let ca = palette(t * 0.04, vec3<f32>(0.5), vec3<f32>(0.45), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    let cb = palette(t * 0.04 + 0.45, vec3<f32>(0.5), vec3<f32>(0.45), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    let plate = mix(ca, cb, clamp(0.5 + 0.35 * v, 0.0, 1.0)) * (0.45 + 0.3 * abs(v));
    return mix(plate, vec3<f32>(1.0, 0.95, 0.8), sand);
}
