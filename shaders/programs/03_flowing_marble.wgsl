// name: Flowing agate marble
// family: noise
// param: scale = 2.5 [0.8, 6.0] frequency of the turbulence
// param: veins = 6.0 [1.0, 16.0] band frequency
// param: turbulence = 5.0 [0.0, 10.0] how strongly the noise bends the bands
// param: octaves = 5 [1, 8] fbm octaves (rounded)
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let scale = param(0u);
    let veins = param(1u);
    let turbulence = param(2u);
    let octaves = i32(param(3u) + 0.5);
    let p = (uv - 0.5) * scale;
    let flow = vec2<f32>(t * 0.13, -t * 0.07);
    let n = fbm(p + flow, octaves);
    let n2 = fbm(p * 1.9 + vec2<f32>(5.3, 1.1) - flow, octaves);
    let dir = rot2(t * 0.15) * vec2<f32>(1.0, 0.35);
    let ph = dot(uv - 0.5, dir) * veins * PI + turbulence * (n + 0.5 * n2) + t * 0.9;
    let band = sin(ph);
    var col = palette(band * 0.22 + n * 1.2 + t * 0.05,
        vec3<f32>(0.55, 0.45, 0.5), vec3<f32>(0.45, 0.4, 0.45),
        vec3<f32>(1.0, 1.0, 1.0), vec3<f32>(0.0, 0.25, 0.55));
    let vein = smoothstep(0.0, 0.12, abs(sin(ph * 0.5 + n2 * 3.0)));
    col *= 0.45 + 0.55 * vein;
    col += vec3<f32>(0.9, 0.85, 0.7) * pow(max(band, 0.0), 12.0) * 0.25;
    return col;
}
