// name: Dead leaves
// family: baseline
// param: leaves = 128 [8, 192] leaves per image, drawn front to back
// param: rmin = 0.02 [0.005, 0.2] smallest radius, as a fraction of the image side
// param: rmax = 0.4 [0.05, 1.0] largest radius
// param: alpha = 3.0 [1.5, 5.0] radii follow a density proportional to r^-alpha (3 is scale invariant)
// param: squares = 0.3 [0.0, 1.0] probability that a leaf is a rotated square instead of a disc
//
// The dead-leaves model of Baradad et al. 2021 ("Learning to See by Looking at Noise"):
// occluding shapes with uniformly random colours and power-law radii. Each image's leaves are a
// function of its seed. Scanning leaves from the top one down and stopping at the first hit is
// equivalent to painting them back to front.

fn dl_unit(seed: u32, i: u32, k: u32) -> f32 {
    return u32_to_unit(pcg_hash(seed ^ pcg_hash(i * 16u + k + 1u)));
}

fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let seed = job_seed();
    let count = u32(param(0u) + 0.5);
    let rmin = param(1u);
    let rmax = max(param(2u), rmin + 1e-4);
    let alpha = param(3u);
    let squares = param(4u);
    let e = 1.0 - alpha;
    let lo = pow(rmin, e);
    let hi = pow(rmax, e);
    for (var i = 0u; i < 192u; i++) {
        if i >= count {
            break;
        }
        let centre = vec2<f32>(dl_unit(seed, i, 0u), dl_unit(seed, i, 1u)) * 1.4 - 0.2;
        // Inverse CDF of the truncated power law.
        let r = pow(mix(lo, hi, dl_unit(seed, i, 2u)), 1.0 / e);
        let d = uv - centre;
        var inside = dot(d, d) < r * r;
        if dl_unit(seed, i, 3u) < squares {
            let q = abs(rot2(TAU * dl_unit(seed, i, 4u)) * d);
            inside = max(q.x, q.y) < r * 0.886;
        }
        if inside {
            return vec3<f32>(dl_unit(seed, i, 5u), dl_unit(seed, i, 6u), dl_unit(seed, i, 7u));
        }
    }
    return vec3<f32>(dl_unit(seed, 999u, 5u), dl_unit(seed, 999u, 6u), dl_unit(seed, 999u, 7u));
}
