// name: Morphing shape grid
// family: sdf
// param: cells = 5.0 [2.0, 10.0] grid cells across
// param: roundness = 0.08 [0.0, 0.25] corner rounding of the shapes
// param: morph_speed = 1.0 [0.2, 3.0] speed of the shape morphing
fn sg_box(p: vec2<f32>, b: vec2<f32>) -> f32 {
    let d = abs(p) - b;
    return length(max(d, vec2<f32>(0.0))) + min(max(d.x, d.y), 0.0);
}

fn sg_star(p: vec2<f32>, r: f32) -> f32 {
    let a = atan2(p.y, p.x);
    let l = length(p);
    return l - r * (0.7 + 0.3 * cos(5.0 * a));
}

fn sg_shape(f: vec2<f32>, phase: f32, rnd: f32) -> f32 {
    let q = rot2(phase) * f;
    let m = 0.5 + 0.5 * sin(phase * 0.7);
    let m2 = 0.5 + 0.5 * sin(phase * 0.45 + 1.0);
    let box = sg_box(q, vec2<f32>(0.22)) - rnd;
    let circ = length(q) - 0.3;
    let star = sg_star(q, 0.36);
    return mix(mix(box, circ, m), star, m2 * 0.8);
}

fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let cells = param(0u);
    let rnd = param(1u);
    let speed = param(2u);
    let q = (uv - 0.5) * cells + vec2<f32>(t * 0.2, -t * 0.13);
    let id = floor(q);
    let f = fract(q) - 0.5;
    let h = hash2i(vec2<i32>(id));
    let phase = t * speed + h * TAU + length(id) * 0.5;
    let d = sg_shape(f, phase, rnd);
    let ds = sg_shape(f - vec2<f32>(0.06, -0.06), phase, rnd);
    let checker = (i32(id.x) + i32(id.y)) & 1;
    var bg = palette(h * 0.2 + t * 0.05 + 0.5, vec3<f32>(0.35), vec3<f32>(0.25), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    bg *= select(0.8, 1.0, checker == 0);
    bg *= 0.55 + 0.45 * smoothstep(0.0, 0.12, ds);
    let fill = palette(h + t * 0.05, vec3<f32>(0.6), vec3<f32>(0.4), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    let shaded = fill * (0.75 + 0.5 * clamp(-d * 4.0, 0.0, 1.0));
    var col = mix(shaded, bg, smoothstep(0.0, 0.02, d));
    col = mix(col, vec3<f32>(0.05), (1.0 - smoothstep(0.0, 0.02, abs(d))) * 0.7);
    return col;
}
