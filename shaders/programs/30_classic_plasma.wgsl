// name: Classic sine plasma
// family: palette
// param: scale = 9.0 [5.0, 16.0] spatial frequency of the plasma
// param: speed = 1.0 [0.5, 3.0] animation speed
// param: cycles = 1.0 [0.6, 2.5] colour cycles per plasma unit
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let scale = param(0u);
    let speed = param(1u);
    let cycles = param(2u);
    let tt = t * speed;
    let p = (uv - 0.5) * scale;
    var v = sin(p.x + tt);
    v += sin((p.y + tt) * 0.5);
    v += sin((p.x + p.y + tt) * 0.5);
    let c = p + vec2<f32>(0.5 * scale * sin(tt * 0.33), 0.5 * scale * cos(tt * 0.5));
    v += sin(sqrt(dot(c, c) + 1.0) + tt);
    v *= 0.5;
    let x = v * cycles;
    return vec3<f32>(0.5 + 0.5 * sin(PI * x + tt * 0.2),
                     0.5 + 0.5 * sin(PI * x + 2.0 * PI / 3.0 + tt * 0.13),
                     0.5 + 0.5 * sin(PI * x + 4.0 * PI / 3.0));
}
