// name: Stained-glass voronoi
// family: cellular
// param: scale = 5.0 [2.0, 10.0] number of cells across
// param: jitter = 0.8 [0.3, 1.0] how far the feature points wander
// param: border = 0.08 [0.0, 0.18] width of the lead borders
// param: speed = 1.0 [0.0, 3.0] feature point motion speed
fn sv_cell(p: vec2<f32>, t: f32, jitter: f32) -> vec3<f32> {
    let n = floor(p);
    let f = fract(p);
    var f1 = 8.0;
    var f2 = 8.0;
    var id = 0.0;
    for (var j = -1; j <= 1; j++) {
        for (var i = -1; i <= 1; i++) {
            let g = vec2<f32>(f32(i), f32(j));
            let cell = vec2<i32>(n + g);
            let o = hash2i2(cell);
            let pt = g + 0.5 + 0.5 * jitter * sin(t + TAU * o) - f;
            let d = dot(pt, pt);
            if d < f1 {
                f2 = f1;
                f1 = d;
                id = hash2i(cell + vec2<i32>(17, 31));
            } else if d < f2 {
                f2 = d;
            }
        }
    }
    return vec3<f32>(sqrt(f1), sqrt(f2), id);
}

fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let scale = param(0u);
    let jitter = param(1u);
    let border = param(2u);
    let speed = param(3u);
    let p = rot2(t * 0.07) * (uv - 0.5) * scale + vec2<f32>(t * 0.25, t * 0.1);
    let c = sv_cell(p, t * speed, jitter);
    let edge = c.y - c.x;
    let glass = palette(c.z + t * 0.05, vec3<f32>(0.55), vec3<f32>(0.45),
        vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    let sweep = 0.8 + 0.35 * sin(dot(uv, vec2<f32>(3.0, 2.0)) - t * 1.3);
    var col = glass * (0.55 + 0.55 * (1.0 - c.x)) * sweep;
    let lead = smoothstep(border, border + 0.06, edge);
    col = mix(vec3<f32>(0.06, 0.05, 0.07), col, lead);
    return col;
}
