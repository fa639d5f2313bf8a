// name: Flowing truchet arcs
// family: palette
// param: tiles = 6.0 [3.0, 10.0] tiles across
// param: width = 0.16 [0.06, 0.22] half-width of the arcs
// param: flow = 1.0 [0.0, 3.0] speed of the stripes flowing along the arcs
fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let tiles = param(0u);
    let width = param(1u);
    let flow = param(2u);
    let q = rot2(t * 0.05) * (uv - 0.5) * tiles + vec2<f32>(t * 0.2, t * 0.1);
    let id = vec2<i32>(floor(q));
    var f = fract(q) - 0.5;
    let h = hash2i(id);
    let flip = h < 0.5;
    if flip {
        f.x = -f.x;
    }
    let c1 = vec2<f32>(0.5, 0.5);
    let c2 = vec2<f32>(-0.5, -0.5);
    let d1 = abs(length(f - c1) - 0.5);
    let d2 = abs(length(f - c2) - 0.5);
    var d = d1;
    var rel = f - c1;
    if d2 < d1 {
        d = d2;
        rel = f - c2;
    }
    let parity = select(1.0, -1.0, ((id.x + id.y) & 1) == 1);
    let dir = parity * select(1.0, -1.0, flip);
    let ang = atan2(rel.y, rel.x);
    let stripes = 0.5 + 0.5 * sin(ang * 8.0 * dir - t * flow * 4.0);
    let gp = vec2<f32>(id) + 0.5;
    let band = palette(dot(gp, vec2<f32>(0.05, 0.03)) + t * 0.05, vec3<f32>(0.55), vec3<f32>(0.45), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    let bg = palette(h * 0.2 + t * 0.03 + 0.5, vec3<f32>(0.4), vec3<f32>(0.25), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    let arc = 1.0 - smoothstep(width - 0.02, width, d);
    var col = mix(bg * (0.6 + 0.4 * smoothstep(0.0, 0.3, d)), band * (0.7 + 0.3 * stripes), arc);
    col *= 0.75 + 0.25 * smoothstep(0.0, width, width - d + 0.04);
    return col;
}
