// name: Op-art bent stripes
// family: palette
// param: stripes = 12.0 [4.0, 22.0] number of stripes across
// param: bend = 0.6 [0.0, 1.2] amplitude of the stripe bending
// param: hue_spread = 0.5 [0.0, 1.0] hue change from one stripe to the next
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let stripes = param(0u);
    let bend = param(1u);
    let spread = param(2u);
    let p = (uv - 0.5) * 2.0;
    let r = length(p);
    let dir = rot2(0.4 * sin(t * 0.3)) * vec2<f32>(0.0, 1.0);
    let d = dot(p, dir) + bend * 0.3 * sin(p.x * 3.0 + t) + bend * 0.2 * sin(r * 5.0 - t * 2.0);
    let x = d * stripes * 0.5 + t * 0.3;
    let k = floor(x);
    let f = fract(x);
    let col_a = palette(k * spread * 0.15 + t * 0.07, vec3<f32>(0.55), vec3<f32>(0.45), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    let col_b = palette(k * spread * 0.15 + t * 0.07 + 0.35, vec3<f32>(0.5), vec3<f32>(0.4), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    var col = mix(col_a, col_b, smoothstep(0.45, 0.55, f));
    col *= 0.65 + 0.35 * sin(PI * f);
    let sunset = mix(vec3<f32>(1.0, 0.6, 0.3), vec3<f32>(0.4, 0.5, 1.0), uv.y);
    col = mix(col, col * sunset * 1.4, 0.35);
    col *= 0.4 + 0.6 * smoothstep(0.0, 0.06, min(f, 1.0 - f));
    return col;
}
