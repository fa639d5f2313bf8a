// name: Burning ship dive
// family: fractal
// param: iterations = 72 [32, 96] maximum iterations (rounded)
// param: zoom_rate = 0.2 [0.05, 0.3] exponential zoom speed towards the small ship
// param: heat = 1.0 [0.6, 1.6] colour gamma of the escape count
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let maxit = i32(param(0u) + 0.5);
    let rate = param(1u);
    let heat = param(2u);
    let zoom = 0.5 * exp(-t * rate);
    let target_pt = vec2<f32>(-1.762, -0.04);
    let v = rot2(0.3 * sin(t * 0.7)) * (uv - 0.5) * 2.0 * zoom;
    let c = target_pt + vec2<f32>(v.x, -v.y);
    var z = vec2<f32>(0.0);
    var it = 0.0;
    var escaped = false;
    var trap = 1e9;
    for (var i = 0; i < 96; i++) {
        if i >= maxit { break; }
        z = vec2<f32>(z.x * z.x - z.y * z.y, 2.0 * abs(z.x * z.y)) + c;
        trap = min(trap, abs(z.y));
        if dot(z, z) > 64.0 {
            escaped = true;
            break;
        }
        it += 1.0;
    }
    if escaped {
        let sm = max(it - log2(max(log2(dot(z, z)), 1e-3)) + 3.0, 1.0);
        let x = pow(clamp(log2(sm) / log2(f32(maxit)), 0.0, 1.0), 1.0 / heat);
        let fire = vec3<f32>(x * 1.3, x * x * 0.95, x * x * x * 0.55);
        let tint = palette(t * 0.06 + x * 0.6, vec3<f32>(0.5), vec3<f32>(0.5), vec3<f32>(1.0), vec3<f32>(0.0, 0.15, 0.3));
        return mix(fire, tint * (0.3 + x), 0.45) + vec3<f32>(0.05, 0.02, 0.1);
    }
    return mix(vec3<f32>(0.05, 0.02, 0.2), vec3<f32>(0.3, 0.1, 0.45), clamp(trap * 4.0, 0.0, 1.0));
}
