// name: Morphing Julia set
// family: fractal
// param: iterations = 64 [24, 96] maximum iterations (rounded)
// param: edge = 1.03 [0.9, 1.15] scale of the Julia constant relative to the cardioid boundary
// param: zoom = 1.4 [0.9, 2.0] half-width of the view
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let maxit = i32(param(0u) + 0.5);
    let edge = param(1u);
    let zoom = param(2u);
    let ang = t * 0.63 + 0.3;
    let e1 = vec2<f32>(cos(ang), sin(ang));
    let e2 = vec2<f32>(cos(2.0 * ang), sin(2.0 * ang));
    let c = (0.5 * e1 - 0.25 * e2) * edge;
    var z = rot2(-t * 0.15) * (uv - 0.5) * 2.0 * zoom;
    var it = 0.0;
    var escaped = false;
    var trap = 1e9;
    for (var i = 0; i < 96; i++) {
        if i >= maxit { break; }
        z = vec2<f32>(z.x * z.x - z.y * z.y, 2.0 * z.x * z.y) + c;
        trap = min(trap, length(z - vec2<f32>(0.3 * sin(t), 0.0)));
        if dot(z, z) > 64.0 {
            escaped = true;
            break;
        }
        it += 1.0;
    }
    if escaped {
        let sm = it - log2(max(log2(dot(z, z)), 1e-3)) + 3.0;
        let x = log2(max(sm, 1.0)) * 0.35 + t * 0.04;
        let base = palette(x, vec3<f32>(0.5), vec3<f32>(0.5), vec3<f32>(1.0, 0.7, 0.4), vec3<f32>(0.0, 0.15, 0.2));
        return base * (0.6 + 0.4 * clamp(sm / 10.0, 0.0, 1.0));
    }
    return palette(trap + t * 0.05, vec3<f32>(0.5), vec3<f32>(0.4), vec3<f32>(1.0), vec3<f32>(0.25, 0.4, 0.55)) * 0.8;
}
