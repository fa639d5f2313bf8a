// name: Raindrop ripples over tiles
// family: waves
// param: drops = 3 [1, 6] number of simultaneous drops (rounded)
// param: wavelength = 0.22 [0.12, 0.4] ripple wavelength
// param: refraction = 0.5 [0.1, 0.9] how strongly the ripples bend the floor
fn rr_height(p: vec2<f32>, t: f32, n: i32, wl: f32) -> f32 {
    var h = 0.0;
    for (var i = 0; i < 6; i++) {
        if i >= n { break; }
        let fi = f32(i);
        let cyc = t * 0.35 + fi / f32(n);
        let k = floor(cyc);
        let age = fract(cyc);
        let centre = hash2i2(vec2<i32>(i32(k), i)) * 1.6 - 0.8;
        let x = length(p - centre) - age * 1.6;
        h += sin(x / wl * TAU) * exp(-x * x / (wl * wl * 3.0)) * (1.0 - age);
    }
    return h;
}

fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let n = i32(param(0u) + 0.5);
    let wl = param(1u);
    let refraction = param(2u);
    let p = (uv - 0.5) * 2.0;
    let e = 0.01;
    let h = rr_height(p, t, n, wl);
    let gx = (rr_height(p + vec2<f32>(e, 0.0), t, n, wl) - h) / e;
    let gy = (rr_height(p + vec2<f32>(0.0, e), t, n, wl) - h) / e;
    let g = vec2<f32>(gx, gy) * wl;
    let q = p + g * refraction * 0.08;
    let tile = floor(q * 4.0);
    let th = hash2i(vec2<i32>(tile));
    let f = fract(q * 4.0) - 0.5;
    var floor_col = palette(th + t * 0.03, vec3<f32>(0.55, 0.55, 0.6), vec3<f32>(0.4, 0.4, 0.4),
        vec3<f32>(1.0), vec3<f32>(0.0, 0.1, 0.2));
    let grout = smoothstep(0.44, 0.48, max(abs(f.x), abs(f.y)));
    floor_col = mix(floor_col, vec3<f32>(0.9, 0.92, 0.85), grout);
    let caustic = value_noise(q * 7.0 + vec2<f32>(t * 0.4, -t * 0.3));
    var col = floor_col * vec3<f32>(0.75, 0.92, 1.0) * (0.75 + 0.5 * caustic);
    let nrm = normalize(vec3<f32>(-g * 1.5, 1.0));
    let spec = pow(clamp(dot(nrm, normalize(vec3<f32>(0.5, 0.6, 1.0))), 0.0, 1.0), 12.0);
    col += vec3<f32>(1.0) * spec * 0.5;
    return col;
}
