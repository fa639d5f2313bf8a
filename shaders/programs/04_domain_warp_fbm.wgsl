// name: Domain-warped fbm
// family: warp
// param: scale = 3.0 [1.0, 5.0] spatial frequency of the base noise
// param: octaves = 5 [2, 8] fbm octaves (rounded)
// param: warp = 2.0 [0.0, 3.0] strength of the domain warp
// param: hue = 0.0 [0.0, 1.0] palette hue offset
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let scale = param(0u);
    let octaves = i32(param(1u) + 0.5);
    let warp = param(2u);
    let hue = param(3u);
    let p = (uv - 0.5) * scale;
    let q = vec2<f32>(fbm(p + 0.12 * t, octaves), fbm(p + vec2<f32>(5.2, 1.3) - 0.1 * t, octaves));
    let r = vec2<f32>(fbm(p + warp * q + vec2<f32>(1.7, 9.2) + 0.15 * t, octaves),
                      fbm(p + warp * q + vec2<f32>(8.3, 2.8) - 0.126 * t, octaves));
    let f = fbm(p + warp * r + vec2<f32>(0.0, 0.2 * t), octaves);
    var col = palette(f * 1.5 + hue + 0.04 * t, vec3<f32>(0.5), vec3<f32>(0.5),
        vec3<f32>(1.0, 1.0, 1.0), vec3<f32>(0.0, 0.33, 0.67));
    col = mix(col, vec3<f32>(0.05, 0.03, 0.18), clamp(length(q - 0.5) * 2.0, 0.0, 1.0) * 0.6);
    col = mix(col, vec3<f32>(0.9, 0.95, 1.0), smoothstep(0.55, 0.8, r.x) * 0.5);
    return col * (0.6 + 0.8 * f);
}
