// name: Raymarched blob garden
// family: raymarch
// param: blobs = 3 [1, 5] number of bouncing spheres (rounded)
// param: smoothness = 0.3 [0.0, 0.8] smooth-union radius between the spheres
// param: cam_speed = 0.4 [0.0, 1.0] camera orbit speed
fn bg_smin(a: f32, b: f32, k: f32) -> f32 {
    let kk = max(k, 1e-4);
    let h = clamp(0.5 + 0.5 * (b - a) / kk, 0.0, 1.0);
    return mix(b, a, h) - kk * h * (1.0 - h);
}

fn bg_blobs(p: vec3<f32>, t: f32, n: i32, k: f32) -> f32 {
    var d = 1e3;
    for (var i = 0; i < 5; i++) {
        if i >= n { break; }
        let fi = f32(i);
        let c = vec3<f32>(1.1 * cos(fi * 2.1 + t * 0.7), 0.55 + 0.6 * abs(sin(t * 1.5 + fi * 1.3)), 1.1 * sin(fi * 2.1 + t * 0.7));
        d = bg_smin(d, length(p - c) - 0.5, k);
    }
    return d;
}

fn bg_normal(p: vec3<f32>, t: f32, n: i32, k: f32) -> vec3<f32> {
    let e = vec2<f32>(1.0, -1.0) * 0.002;
    return normalize(e.xyy * bg_blobs(p + e.xyy, t, n, k) + e.yyx * bg_blobs(p + e.yyx, t, n, k)
        + e.yxy * bg_blobs(p + e.yxy, t, n, k) + e.xxx * bg_blobs(p + e.xxx, t, n, k));
}

fn bg_shadow(p: vec3<f32>, l: vec3<f32>, t: f32, n: i32, k: f32) -> f32 {
    var sh = 1.0;
    var st = 0.05;
    for (var j = 0; j < 12; j++) {
        let h = bg_blobs(p + l * st, t, n, k);
        sh = min(sh, 8.0 * h / st);
        st += clamp(h, 0.08, 0.6);
        if sh < 0.01 || st > 6.0 { break; }
    }
    return clamp(sh, 0.0, 1.0);
}

fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let n = i32(param(0u) + 0.5);
    let k = param(1u);
    let cam_speed = param(2u);
    let a = t * cam_speed + 0.5;
    let ro = vec3<f32>(4.0 * cos(a), 2.2 + 0.5 * sin(t * 0.3), 4.0 * sin(a));
    let ta = vec3<f32>(0.0, 0.6, 0.0);
    let fw = normalize(ta - ro);
    let rt = normalize(cross(fw, vec3<f32>(0.0, 1.0, 0.0)));
    let up = cross(rt, fw);
    let s = (uv - 0.5) * 2.0;
    let rd = normalize(fw * 1.6 + rt * s.x + up * s.y);
    let sky = mix(vec3<f32>(0.95, 0.7, 0.55), vec3<f32>(0.3, 0.5, 0.9), clamp(rd.y * 2.0 + 0.3, 0.0, 1.0));
    // The floor (y = 0) is intersected analytically; the blobs are sphere-traced inside their bounding sphere.
    let tp = select(1e9, -ro.y / rd.y, rd.y < -1e-4);
    let bc = vec3<f32>(0.0, 0.8, 0.0) - ro;
    let bb = dot(bc, rd);
    let disc = bb * bb - dot(bc, bc) + 2.6 * 2.6;
    var hit_blob = false;
    var dist = 0.0;
    if disc > 0.0 {
        let sq = sqrt(disc);
        dist = max(bb - sq, 0.0);
        let far = min(bb + sq, tp);
        for (var i = 0; i < 48; i++) {
            let d = bg_blobs(ro + rd * dist, t, n, k);
            if d < 0.002 {
                hit_blob = true;
                break;
            }
            dist += d;
            if dist > far { break; }
        }
    }
    let light = normalize(vec3<f32>(cos(t * 0.4), 1.2, sin(t * 0.4)));
    var pos: vec3<f32>;
    var nrm: vec3<f32>;
    var albedo: vec3<f32>;
    if hit_blob {
        pos = ro + rd * dist;
        nrm = bg_normal(pos, t, n, k);
        albedo = palette(pos.y * 0.4 + atan2(pos.z, pos.x) * 0.15 + t * 0.05, vec3<f32>(0.55), vec3<f32>(0.45), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    } else if tp < 1e8 {
        dist = tp;
        pos = ro + rd * tp;
        nrm = vec3<f32>(0.0, 1.0, 0.0);
        let c = (i32(floor(pos.x)) + i32(floor(pos.z))) & 1;
        albedo = select(vec3<f32>(0.78, 0.72, 0.65), vec3<f32>(0.3, 0.33, 0.5), c == 1);
    } else {
        return sky;
    }
    let sh = bg_shadow(pos + nrm * 0.01, light, t, n, k);
    let diff = clamp(dot(nrm, light), 0.0, 1.0) * sh;
    let amb = 0.35 + 0.25 * nrm.y;
    let spec = pow(clamp(dot(reflect(rd, nrm), light), 0.0, 1.0), 24.0) * sh;
    var col = albedo * (diff * vec3<f32>(1.0, 0.95, 0.85) + amb * vec3<f32>(0.45, 0.55, 0.75)) + spec * 0.5;
    col = mix(col, sky, 1.0 - exp(-0.004 * dist * dist));
    return col;
}
