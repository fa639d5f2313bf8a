// name: Layered rose petals
// family: polar
// param: petals = 5 [3, 12] petals per layer (rounded)
// param: layers = 5 [3, 8] number of petal layers (rounded)
// param: depth = 0.35 [0.15, 0.8] how deep the petal lobes are
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let petals = f32(i32(param(0u) + 0.5));
    let layers = i32(param(1u) + 0.5);
    let depth = param(2u);
    let p = (uv - 0.5) * 2.0;
    let r = length(p);
    let a = atan2(p.y, p.x);
    var col = palette(r * 0.4 - t * 0.08, vec3<f32>(0.3, 0.25, 0.35), vec3<f32>(0.2), vec3<f32>(1.0), vec3<f32>(0.6, 0.7, 0.8));
    col *= 0.7 + 0.3 * sin(a * petals * 2.0 + r * 10.0 - t * 2.0);
    for (var i = 0; i < 8; i++) {
        if i >= layers { break; }
        let fi = f32(i);
        let li = fi / f32(layers);
        let dir = select(1.0, -1.0, (i & 1) == 1);
        let rot = t * (0.25 + 0.12 * fi) * dir + fi * 0.7;
        let lobe = pow(abs(cos(petals * 0.5 * (a + rot))), 0.7);
        let radius = 0.95 * (1.0 - li * 0.8) * (1.0 + 0.08 * sin(t * 1.3 + fi * 1.7));
        let shape = radius * (1.0 - depth + depth * lobe);
        if r < shape {
            let c = palette(li * 0.8 + t * 0.04, vec3<f32>(0.55, 0.45, 0.5), vec3<f32>(0.45, 0.4, 0.4),
                vec3<f32>(1.0), vec3<f32>(0.0, 0.2, 0.45));
            col = c * (0.5 + 0.5 * r / max(shape, 1e-3)) * (0.8 + 0.2 * lobe);
            col *= 0.55 + 0.45 * smoothstep(0.0, 0.03, shape - r);
        }
    }
    return col;
}
