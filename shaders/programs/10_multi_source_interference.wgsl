// name: Multi-source interference
// family: waves
// param: sources = 3 [2, 6] number of point sources (rounded)
// param: wavenumber = 30.0 [14.0, 40.0] spatial frequency of the waves
// param: radius = 0.45 [0.2, 0.9] distance of the sources from the centre
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let n = i32(param(0u) + 0.5);
    let k = param(1u);
    let radius = param(2u);
    let p = (uv - 0.5) * 2.0;
    var s = vec2<f32>(0.0);
    var norm = 0.0;
    for (var i = 0; i < 6; i++) {
        if i >= n { break; }
        let fi = f32(i);
        let a = TAU * fi / f32(n) + t * 0.35;
        let c = vec2<f32>(cos(a), sin(a)) * radius * (0.7 + 0.3 * sin(t * 0.5 + fi));
        let d = length(p - c);
        let ph = k * d - t * 4.0;
        let w = 1.0 / (1.0 + 1.5 * d);
        s += vec2<f32>(cos(ph), sin(ph)) * w;
        norm += w;
    }
    let amp = length(s) / max(norm, 1e-3);
    let phase = atan2(s.y, s.x) / TAU;
    let col = palette(phase + t * 0.05, vec3<f32>(0.5), vec3<f32>(0.5),
        vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    return col * (0.15 + 1.1 * sqrt(amp)) + vec3<f32>(0.05, 0.03, 0.1);
}
