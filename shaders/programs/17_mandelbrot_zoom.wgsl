// name: Mandelbrot seahorse zoom
// family: fractal
// param: iterations = 80 [32, 96] maximum iterations (rounded)
// param: zoom_rate = 0.6 [0.2, 0.8] exponential zoom speed
// param: cycles = 3.0 [0.5, 8.0] colour cycles along the escape count
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let maxit = i32(param(0u) + 0.5);
    let rate = param(1u);
    let cycles = param(2u);
    let zoom = 1.6 * exp(-t * rate);
    let target_pt = vec2<f32>(-0.743643887, 0.131825904);
    let c = target_pt + rot2(t * 0.2) * (uv - 0.5) * 2.0 * zoom;
    var z = vec2<f32>(0.0);
    var it = 0.0;
    var escaped = false;
    var trap = 1e9;
    for (var i = 0; i < 96; i++) {
        if i >= maxit { break; }
        z = vec2<f32>(z.x * z.x - z.y * z.y, 2.0 * z.x * z.y) + c;
        trap = min(trap, abs(z.x) + abs(z.y) * 0.5);
        if dot(z, z) > 256.0 {
            escaped = true;
            break;
        }
        it += 1.0;
    }
    if escaped {
        let sm = it - log2(max(log2(dot(z, z)), 1e-3)) + 4.0;
        let x = sqrt(sm / f32(maxit)) * cycles + t * 0.05;
        return palette(x, vec3<f32>(0.5), vec3<f32>(0.5), vec3<f32>(1.0), vec3<f32>(0.0, 0.15, 0.3));
    }
    return palette(trap * 2.0 + t * 0.1, vec3<f32>(0.2, 0.15, 0.3), vec3<f32>(0.2), vec3<f32>(1.0), vec3<f32>(0.3, 0.5, 0.7));
}
