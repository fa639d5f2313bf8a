// name: Twisted Sierpinski triangle
// family: ifs
// param: iterations = 7 [3, 10] subdivision levels (rounded)
// param: twist = 0.15 [0.0, 0.6] amplitude of the per-level rotation
// param: zoom = 1.0 [0.7, 1.5] half-width of the view
fn ts_tri(p: vec2<f32>, r: f32) -> f32 {
    let k = sqrt(3.0);
    var q = vec2<f32>(abs(p.x) - r, p.y + r / k);
    if q.x + k * q.y > 0.0 {
        q = vec2<f32>(q.x - k * q.y, -k * q.x - q.y) / 2.0;
    }
    q.x -= clamp(q.x, -2.0 * r, 0.0);
    return -length(q) * sign(q.y);
}

fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let n = i32(param(0u) + 0.5);
    let twist = param(1u);
    let zoom = param(2u);
    var p = rot2(t * 0.15) * (uv - 0.5) * 2.0 * zoom;
    let v0 = vec2<f32>(0.0, 1.0);
    let v1 = vec2<f32>(-0.8660254, -0.5);
    let v2 = vec2<f32>(0.8660254, -0.5);
    var s = 1.0;
    var addr = 0.0;
    var w = 1.0;
    let ang = twist * sin(t * 0.5);
    for (var i = 0; i < 10; i++) {
        if i >= n { break; }
        let d0 = dot(p - v0, p - v0);
        let d1 = dot(p - v1, p - v1);
        let d2 = dot(p - v2, p - v2);
        var c = v0;
        var idx = 0.0;
        if d1 < d0 && d1 < d2 {
            c = v1;
            idx = 1.0;
        } else if d2 < d0 && d2 < d1 {
            c = v2;
            idx = 2.0;
        }
        p = rot2(ang) * (2.0 * p - c);
        s *= 2.0;
        w *= 0.45;
        addr += idx * w;
    }
    let d = ts_tri(p, 0.8660254) / s;
    let inside = palette(addr * 1.5 + t * 0.05, vec3<f32>(0.55), vec3<f32>(0.45), vec3<f32>(1.0), vec3<f32>(0.0, 0.33, 0.67));
    let r = length((uv - 0.5) * 2.0);
    let bg = palette(r * 0.4 - t * 0.05, vec3<f32>(0.3, 0.25, 0.35), vec3<f32>(0.2), vec3<f32>(1.0), vec3<f32>(0.6, 0.7, 0.8))
        * (0.75 + 0.25 * cos(d * 60.0 - t * 3.0));
    let edge = smoothstep(0.0, 0.008, d);
    return mix(inside, bg, edge);
}
