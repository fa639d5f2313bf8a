// name: Infinite torus corridor
// family: raymarch
// param: spacing = 2.0 [1.2, 4.0] distance between successive rings
// param: thickness = 0.2 [0.08, 0.4] tube radius of the rings
// param: speed = 1.0 [0.2, 3.0] flight speed through the corridor
fn tc_map(p: vec3<f32>, spacing: f32, th: f32, t: f32) -> vec2<f32> {
    let cell = floor(p.z / spacing + 0.5);
    var q = p;
    q.z = p.z - spacing * cell;
    let xy = rot2(cell * 0.4 + t * 0.3) * q.xy;
    let torus = length(vec2<f32>(length(xy) - 1.4, q.z)) - th;
    let ang = atan2(xy.y, xy.x);
    let seg = TAU / 6.0;
    let a = ang - seg * floor(ang / seg + 0.5);
    let bp = vec2<f32>(cos(a), sin(a)) * length(xy) - vec2<f32>(1.4, 0.0);
    let ball = length(vec3<f32>(bp, q.z)) - th * 1.7;
    let tube = 2.6 - length(p.xy);
    let d = min(min(torus, ball), tube);
    var m = cell;
    if tube < min(torus, ball) {
        m = -1000.0;
    }
    return vec2<f32>(d, m);
}

fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let spacing = param(0u);
    let th = param(1u);
    let speed = param(2u);
    let z0 = t * speed * 2.0;
    let ro = vec3<f32>(0.4 * sin(t * 0.7), 0.4 * cos(t * 0.5), z0);
    let s = rot2(t * 0.25) * (uv - 0.5) * 2.0;
    let rd = normalize(vec3<f32>(s, 1.4));
    let fogc = palette(t * 0.05, vec3<f32>(0.3), vec3<f32>(0.25), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    var dist = 0.0;
    var m = 0.0;
    var hit = false;
    for (var i = 0; i < 48; i++) {
        let r = tc_map(ro + rd * dist, spacing, th, t);
        if r.x < 0.002 * (1.0 + dist) {
            hit = true;
            m = r.y;
            break;
        }
        dist += r.x;
        if dist > 16.0 { break; }
    }
    if !hit {
        return fogc;
    }
    let pos = ro + rd * dist;
    let e = vec2<f32>(1.0, -1.0) * 0.003;
    let nrm = normalize(e.xyy * tc_map(pos + e.xyy, spacing, th, t).x + e.yyx * tc_map(pos + e.yyx, spacing, th, t).x
        + e.yxy * tc_map(pos + e.yxy, spacing, th, t).x + e.xxx * tc_map(pos + e.xxx, spacing, th, t).x);
    var albedo: vec3<f32>;
    if m < -999.0 {
        let stripes = 0.5 + 0.5 * sin(pos.z * 3.0 + atan2(pos.y, pos.x) * 4.0);
        albedo = mix(vec3<f32>(0.15, 0.12, 0.2), vec3<f32>(0.3, 0.25, 0.4), stripes);
    } else {
        albedo = palette(m * 0.17 + t * 0.03, vec3<f32>(0.55), vec3<f32>(0.45), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    }
    let l = normalize(ro + vec3<f32>(0.0, 0.0, 1.5) - pos);
    let diff = clamp(dot(nrm, l), 0.0, 1.0);
    let spec = pow(clamp(dot(reflect(rd, nrm), l), 0.0, 1.0), 20.0);
    var col = albedo * (0.25 + 0.9 * diff) + vec3<f32>(0.6) * spec;
    col = mix(col, fogc, 1.0 - exp(-0.12 * dist));
    return col;
}
