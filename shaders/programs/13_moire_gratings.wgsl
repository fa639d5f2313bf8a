// name: Moire gratings
// family: waves
// param: frequency = 36.0 [20.0, 50.0] line frequency of the gratings
// param: angle = 0.12 [0.05, 0.4] maximum relative rotation between gratings
// param: rings = 0.6 [0.0, 1.0] weight of the circular grating layer
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let freq = param(0u);
    let angle = param(1u);
    let rings = param(2u);
    let p = (uv - 0.5) * 2.0;
    let a1 = t * 0.15;
    let a2 = a1 + angle * sin(t * 0.7 + 0.3);
    let d1 = vec2<f32>(cos(a1), sin(a1));
    let d2 = vec2<f32>(cos(a2), sin(a2));
    let x1 = freq * dot(p, d1);
    let x2 = freq * 1.03 * dot(p, d2);
    let c = vec2<f32>(0.5 * sin(t * 0.45), 0.5 * cos(t * 0.3));
    let x3 = freq * length(p - c);
    let g1 = 0.5 + 0.5 * cos(x1);
    let g2 = 0.5 + 0.5 * cos(x2);
    let g3 = 0.5 + 0.5 * cos(x3);
    let beat = 0.5 + 0.5 * cos(x1 - x2);
    let beat_r = 0.5 + 0.5 * cos(x3 - x1);
    let hue = beat * 0.5 + rings * beat_r * 0.35 + t * 0.06;
    let col = palette(hue, vec3<f32>(0.5), vec3<f32>(0.5), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    let fine = g1 * g2 * mix(1.0, g3, rings * 0.5);
    return col * (0.45 + 0.55 * fine) + vec3<f32>(0.1) * beat;
}
