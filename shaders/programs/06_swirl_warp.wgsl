// name: Vortex swirl warp
// family: warp
// param: twist = 3.0 [0.0, 6.0] strength of the central vortex
// param: scale = 2.0 [1.0, 4.0] frequency of the warped noise
// param: warp = 0.8 [0.0, 2.0] amount of secondary noise warp
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let twist = param(0u);
    let scale = param(1u);
    let warp = param(2u);
    var p = (uv - 0.5) * 2.0;
    let r = length(p);
    let ang = twist * exp(-r * r * 1.5) * sin(t * 0.6) + t * 0.2;
    p = rot2(ang) * p;
    let w = vec2<f32>(fbm(p * scale + 0.1 * t, 4), fbm(p * scale + vec2<f32>(4.2, 7.7) - 0.1 * t, 4)) - 0.5;
    p += w * warp;
    let v = fbm(p * scale * 1.5 + 3.0, 5);
    let rings = 0.5 + 0.5 * sin(length(p) * 12.0 - t * 2.0 + v * 6.0);
    return hsv2rgb(vec3<f32>(v * 1.2 + t * 0.07 + r * 0.3, 0.55 + 0.35 * rings, 0.35 + 0.75 * v * (0.6 + 0.4 * rings)));
}
