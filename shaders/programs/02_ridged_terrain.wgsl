// name: Ridged terrain map
// family: noise
// param: scale = 1.2 [0.5, 3.0] terrain feature frequency
// param: contours = 8 [0, 24] number of contour lines per unit height (0 disables)
// param: sea = 0.45 [0.35, 0.55] mean sea level
// param: relief = 1.0 [0.3, 2.0] strength of the hill shading
fn rt_height(p: vec2<f32>) -> f32 {
    var sum = 0.0;
    var amp = 0.6;
    var q = p;
    var prev = 1.0;
    for (var i = 0; i < 5; i++) {
        let n = 1.0 - abs(gradient_noise(q));
        let n2 = n * n;
        sum += n2 * amp * prev;
        prev = clamp(n2 * 1.5, 0.0, 1.0);
        q = rot2(0.6) * q * 2.05 + vec2<f32>(3.1, 1.7);
        amp *= 0.5;
    }
    return sum * 0.9 - 0.08;
}

fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let scale = param(0u);
    let contours = param(1u);
    let sea = param(2u) + 0.06 * sin(t * 0.9);
    let relief = param(3u);
    let p = (uv - 0.5) * scale * 2.0 + vec2<f32>(t * 0.45, sin(t * 0.3) * 1.5);
    let e = 0.02;
    let h = rt_height(p);
    let hx = rt_height(p + vec2<f32>(e, 0.0));
    let hy = rt_height(p + vec2<f32>(0.0, e));
    let g = vec2<f32>(hx - h, hy - h) / e;
    let n = normalize(vec3<f32>(-g * relief * 0.35, 1.0));
    let l = normalize(vec3<f32>(cos(t * 0.5), sin(t * 0.5), 0.9));
    let diff = clamp(dot(n, l), 0.0, 1.0);
    var col: vec3<f32>;
    if h < sea {
        let depth = smoothstep(sea - 0.35, sea, h);
        col = mix(vec3<f32>(0.02, 0.1, 0.35), vec3<f32>(0.1, 0.55, 0.75), depth);
        col += vec3<f32>(0.05, 0.08, 0.1) * diff;
    } else {
        let el = clamp((h - sea) / max(1.05 - sea, 0.05), 0.0, 1.0);
        var land = mix(vec3<f32>(0.85, 0.8, 0.5), vec3<f32>(0.2, 0.6, 0.2), smoothstep(0.0, 0.12, el));
        land = mix(land, vec3<f32>(0.5, 0.38, 0.22), smoothstep(0.3, 0.6, el));
        land = mix(land, vec3<f32>(0.95, 0.95, 1.0), smoothstep(0.7, 0.85, el));
        col = land * (0.35 + 0.8 * diff);
    }
    if contours > 0.5 {
        let f = fract(h * contours);
        let line = smoothstep(0.0, 0.1, f) * smoothstep(0.0, 0.1, 1.0 - f);
        col *= 0.6 + 0.4 * line;
    }
    return col;
}
