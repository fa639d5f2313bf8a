// name: Relaxed Newton basins
// family: fractal
// param: iterations = 24 [8, 40] Newton iterations (rounded)
// param: relax = 0.5 [0.0, 0.8] amplitude of the complex relaxation wobble
// param: zoom = 1.5 [0.5, 2.5] half-width of the view
fn nb_mul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

fn nb_div(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let d = max(dot(b, b), 1e-9);
    return vec2<f32>(a.x * b.x + a.y * b.y, a.y * b.x - a.x * b.y) / d;
}

fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let maxit = i32(param(0u) + 0.5);
    let relax = param(1u);
    let zoom = param(2u);
    let a = vec2<f32>(1.0, 0.0) + relax * vec2<f32>(cos(t * 0.6), sin(t * 0.6));
    let b = 0.6 * vec2<f32>(sin(t * 0.37), cos(t * 0.29));
    var z = rot2(t * 0.1) * (uv - 0.5) * 2.0 * zoom;
    var steps = 0.0;
    for (var i = 0; i < 40; i++) {
        if i >= maxit { break; }
        let z2 = nb_mul(z, z);
        let f = nb_mul(z2, z) + nb_mul(b, z) - vec2<f32>(1.0, 0.0);
        let df = 3.0 * z2 + b;
        let dz = nb_mul(a, nb_div(f, df));
        z -= dz;
        if dot(dz, dz) < 1e-6 { break; }
        steps += 1.0;
    }
    let hue = atan2(z.y, z.x) / TAU + t * 0.03;
    let shade_v = clamp(1.0 - sqrt(steps / f32(maxit)) * 0.8, 0.0, 1.0);
    let col = hsv2rgb(vec3<f32>(hue, 0.7, 0.35 + 0.65 * shade_v));
    return col + vec3<f32>(0.08, 0.05, 0.12) * (1.0 - shade_v);
}
