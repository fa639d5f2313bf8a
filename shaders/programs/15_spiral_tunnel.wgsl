// name: Spiral tunnel flight
// family: polar
// param: arms = 6 [2, 12] number of spiral arms (rounded)
// param: twist = 1.0 [-3.0, 3.0] spiral twist per unit depth
// param: speed = 1.0 [0.2, 3.0] flight speed
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let arms = f32(i32(param(0u) + 0.5));
    let twist = param(1u);
    let speed = param(2u);
    let p = (uv - 0.5) * 2.0 + 0.25 * vec2<f32>(sin(t * 0.5), cos(t * 0.4));
    let r = max(length(p), 1e-3);
    let a = atan2(p.y, p.x);
    let depth = 0.5 / r + t * speed;
    let u = a / TAU * arms + twist * depth + t * 0.1;
    let s1 = sin(TAU * u);
    let s2 = sin(TAU * depth * 1.5);
    let check = smoothstep(-0.25, 0.25, s1 * s2);
    var col = mix(palette(depth * 0.12, vec3<f32>(0.5), vec3<f32>(0.5), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67)),
                  palette(depth * 0.12 + 0.5, vec3<f32>(0.5), vec3<f32>(0.5), vec3<f32>(1.0), vec3<f32>(0.0, 0.1, 0.2)),
                  check);
    col *= 0.6 + 0.4 * abs(s1);
    col *= clamp(r * 1.6, 0.15, 1.0);
    col += vec3<f32>(1.0, 0.85, 0.6) * exp(-r * 7.0);
    return col;
}
