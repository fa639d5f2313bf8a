// name: Warped checkerboard
// family: palette
// param: squares = 8.0 [4.0, 14.0] checker squares across
// param: warp = 0.4 [0.0, 1.0] strength of the sinusoidal warp
// param: perspective = 0.5 [0.0, 0.8] strength of the tilted-plane projection
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let squares = param(0u);
    let warp = param(1u);
    let persp = param(2u);
    var p = rot2(t * 0.2) * (uv - 0.5) * 2.0;
    let z = max(1.0 + persp * 0.9 * p.y, 0.15);
    p = p / z;
    p += warp * 0.3 * vec2<f32>(sin(p.y * 3.0 + t), sin(p.x * 3.0 - t * 1.3));
    p += vec2<f32>(0.0, t * 0.15);
    let s = sin(PI * p.x * squares * 0.5) * sin(PI * p.y * squares * 0.5);
    let v = smoothstep(-0.15, 0.15, s);
    let ca = palette(t * 0.05 + p.x * 0.1, vec3<f32>(0.55), vec3<f32>(0.45), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    let cb = palette(t * 0.05 + 0.5 + p.y * 0.1, vec3<f32>(0.4), vec3<f32>(0.35), vec3<f32>(1.0), vec3<f32>(0.0, 0.1, 0.2));
    var col = mix(cb, ca, v);
    col *= 0.6 + 0.4 * clamp(z, 0.0, 1.5) / 1.5 + 0.1;
    let r = length(uv - 0.5);
    return col * (1.1 - 0.6 * r * r);
}
