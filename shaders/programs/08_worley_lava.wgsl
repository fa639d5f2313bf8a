// name: Worley lava crackle
// family: cellular
// param: scale = 4.0 [1.5, 7.0] cell density
// param: glow = 8.0 [4.0, 16.0] sharpness of the glowing cracks
// param: speed = 0.6 [0.0, 2.0] flow speed of the crust
// param: heat = 1.0 [0.3, 2.0] brightness of the lava
fn wl_f12(p: vec2<f32>, t: f32) -> vec2<f32> {
    let n = floor(p);
    let f = fract(p);
    var f1 = 8.0;
    var f2 = 8.0;
    for (var j = -1; j <= 1; j++) {
        for (var i = -1; i <= 1; i++) {
            let g = vec2<f32>(f32(i), f32(j));
            let o = hash2i2(vec2<i32>(n + g));
            let pt = g + 0.5 + 0.4 * sin(t + TAU * o) - f;
            let d = dot(pt, pt);
            if d < f1 {
                f2 = f1;
                f1 = d;
            } else if d < f2 {
                f2 = d;
            }
        }
    }
    return vec2<f32>(sqrt(f1), sqrt(f2));
}

fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let scale = param(0u);
    let glow = param(1u);
    let speed = param(2u);
    let heat = param(3u);
    let p = (uv - 0.5) * scale;
    let flow = vec2<f32>(0.1 * t, t * (0.2 + speed * 0.3));
    let a = wl_f12(p + flow, t * (0.3 + speed));
    let b = wl_f12(p * 2.1 + vec2<f32>(3.3, 1.2) - flow * 0.5, t * (0.3 + speed) * 1.3);
    let crack = (a.y - a.x) + 0.45 * (b.y - b.x);
    let pulse = 0.75 + 0.35 * sin(t * 1.7 + p.x * 0.9 - p.y * 0.6);
    let g = exp(-crack * glow) * heat * pulse;
    let tex = value_noise(p * 6.0 + flow * 3.0);
    let cool = 0.5 + 0.5 * sin(t * 0.5);
    let rock = mix(vec3<f32>(0.22, 0.12, 0.16), vec3<f32>(0.3, 0.25, 0.32), cool) * (0.6 + 0.8 * a.x) * (0.7 + 0.6 * tex);
    let fire = mix(vec3<f32>(1.0, 0.25, 0.05), vec3<f32>(0.9, 0.1, 0.5), cool * 0.6);
    return rock + fire * g * 1.6 + vec3<f32>(1.0, 0.9, 0.45) * g * g * 0.8;
}
