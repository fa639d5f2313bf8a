// name: Advected ink stripes
// family: warp
// param: scale = 2.0 [1.0, 3.0] size of the flow field
// param: steps = 6 [2, 10] advection steps (rounded)
// param: strength = 0.35 [0.1, 0.7] advection step size
// param: stripes = 6.0 [4.0, 10.0] stripe frequency
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let scale = param(0u);
    let steps = i32(param(1u) + 0.5);
    let strength = param(2u);
    let stripes = param(3u);
    var p = (uv - 0.5) * scale * 3.0;
    for (var i = 0; i < 10; i++) {
        if i >= steps { break; }
        let fi = f32(i);
        let v = vec2<f32>(gradient_noise(p * 0.7 + vec2<f32>(t * 0.15, fi * 1.3)),
                          gradient_noise(p * 0.7 + vec2<f32>(7.1 + fi * 0.7, -t * 0.15)));
        p += strength * 1.5 * vec2<f32>(v.y, -v.x);
    }
    let a = sin(p.x * stripes + t * 1.2);
    let b = sin(p.y * stripes * 0.5 - t * 0.7);
    var col = palette(0.12 * (p.x + p.y) + t * 0.05 + 0.15 * b,
        vec3<f32>(0.5), vec3<f32>(0.5), vec3<f32>(1.0, 0.9, 0.8), vec3<f32>(0.1, 0.3, 0.6));
    col *= 0.3 + 0.7 * smoothstep(-0.4, 0.4, a);
    col += vec3<f32>(1.0, 0.9, 0.8) * 0.25 * smoothstep(0.85, 1.0, b);
    return col;
}
