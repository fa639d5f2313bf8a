// name: Drifting fbm clouds
// family: noise
// param: scale = 3.0 [1.0, 8.0] spatial frequency of the cloud noise
// param: octaves = 6 [2, 8] fbm octaves (rounded)
// param: coverage = 0.5 [0.35, 0.65] density threshold; lower gives more cloud
// param: wind = 1.0 [0.2, 3.0] drift speed of the clouds
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let scale = param(0u);
    let octaves = i32(param(1u) + 0.5);
    let coverage = param(2u);
    let wind = param(3u);
    let drift = vec2<f32>(0.35, 0.12) * t * wind;
    let p = uv * scale + drift;
    let base = fbm(p, octaves);
    let detail = fbm(p * 2.3 - vec2<f32>(0.2 * t * wind, 3.1), octaves);
    let d = base * 0.7 + detail * 0.3;
    let towards_sun = fbm(p + vec2<f32>(0.07, 0.05) * scale, octaves) * 0.7 + detail * 0.3;
    let dens = smoothstep(coverage - 0.18, coverage + 0.18, d);
    let day = 0.5 + 0.5 * sin(t * 0.8 + 1.0);
    let sky_top = mix(vec3<f32>(0.15, 0.1, 0.45), vec3<f32>(0.2, 0.45, 0.95), day);
    let sky_bot = mix(vec3<f32>(1.0, 0.45, 0.2), vec3<f32>(0.6, 0.82, 1.0), day);
    let sky = mix(sky_bot, sky_top, uv.y);
    let light = clamp(0.55 + (d - towards_sun) * 6.0, 0.0, 1.0);
    let cloud_dark = mix(vec3<f32>(0.35, 0.22, 0.42), vec3<f32>(0.5, 0.56, 0.68), day);
    let cloud_bright = mix(vec3<f32>(1.0, 0.72, 0.5), vec3<f32>(1.0, 1.0, 0.98), day);
    let cloud = mix(cloud_dark, cloud_bright, light);
    return mix(sky, cloud, dens * 0.95);
}
