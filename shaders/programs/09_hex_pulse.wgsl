// name: Hexagon pulse grid
// family: cellular
// param: scale = 6.0 [2.5, 10.0] hexagons across
// param: wave = 0.6 [0.1, 2.0] spatial frequency of the pulse wave
// param: gap = 0.06 [0.0, 0.14] gap between hexagons
fn hp_mod(x: vec2<f32>, y: vec2<f32>) -> vec2<f32> {
    return x - y * floor(x / y);
}

fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let scale = param(0u);
    let wave = param(1u);
    let gap = param(2u);
    let p = rot2(t * 0.1) * (uv - 0.5) * scale + vec2<f32>(t * 0.3, 0.0);
    let s = vec2<f32>(1.0, 1.7320508);
    let a = hp_mod(p, s) - 0.5 * s;
    let b = hp_mod(p - 0.5 * s, s) - 0.5 * s;
    let gv = select(b, a, dot(a, a) < dot(b, b));
    let id = p - gv;
    let hexd = max(dot(abs(gv), normalize(s)), abs(gv).x);
    let h = hash2i(vec2<i32>(floor(id * 2.0 + 0.5)));
    let centre = vec2<f32>(t * 0.3 + 2.0 * sin(t * 0.4), 1.5 * cos(t * 0.3));
    let wv = 0.5 + 0.5 * sin(length(id - centre) * wave * 2.0 - t * 2.5 + h * 1.5);
    let hue = h * 0.15 + length(id - centre) * 0.04 + t * 0.06;
    var col = hsv2rgb(vec3<f32>(hue, 0.75, 0.3 + 0.7 * wv));
    let ring = abs(hexd - 0.42 * wv);
    col += vec3<f32>(1.0, 0.95, 0.85) * (1.0 - smoothstep(0.0, 0.04, ring)) * 0.5;
    let bevel = smoothstep(0.5 - gap - 0.05, 0.5 - gap, hexd);
    return mix(col, vec3<f32>(0.04, 0.03, 0.08), bevel);
}
