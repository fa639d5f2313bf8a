// procmem shader prelude — prepended to every procedural program before compilation.
//
// A program is a Shadertoy-style fragment program in the spirit of shaders21k: a pure function
// from (uv, time) to an RGB colour. In procmem a program is a WGSL function
//
//     fn shade(uv: vec2<f32>, t: f32) -> vec3<f32>
//
// where uv is in [0,1]² with (0,0) at the bottom-left (Shadertoy convention, the image is
// flipped on readback like shaders21k does) and t is the time, drawn uniformly in [0.1, 10].
// Colours outside [0,1] are clamped. Programs read their tunable parameters with `param(i)`.
//
// The compute entry point `main` below renders a batch of images, one image per z-slice of the
// dispatch, each with its own time, seed and parameters, into packed RGBA8 words.

struct Job {
    time: f32,
    seed: u32,
    // Offset of this image's first pixel in `pixels` (in u32 words).
    offset: u32,
    // Which synthesized sub-program to run (0 for hand-written programs).
    variant: u32,
    params: array<vec4<f32>, 2>,
};

struct Dims {
    size: u32,
    job_count: u32,
    _pad0: u32,
    _pad1: u32,
};

@group(0) @binding(0) var<storage, read> jobs: array<Job>;
@group(0) @binding(1) var<storage, read_write> pixels: array<u32>;
@group(0) @binding(2) var<uniform> dims: Dims;

var<private> current_job: u32;

const PI: f32 = 3.14159265358979;
const TAU: f32 = 6.28318530717959;

/// Parameter `i` (0..8) of the current image, as set in the program's `// param:` header.
fn param(i: u32) -> f32 {
    let v = jobs[current_job].params[i / 4u];
    let j = i % 4u;
    if j == 0u { return v.x; }
    if j == 1u { return v.y; }
    if j == 2u { return v.z; }
    return v.w;
}

/// The per-image seed. Hand-written programs are functions of (uv, t) only and should not use
/// it; the dead-leaves and spectral-noise generators draw their random structure from it.
fn job_seed() -> u32 {
    return jobs[current_job].seed;
}

// ---- hashing and noise (integer hashes: identical on every adapter) ----

fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

/// Uniform float in [0,1) from a u32.
fn u32_to_unit(v: u32) -> f32 {
    return f32(v >> 8u) * (1.0 / 16777216.0);
}

fn hash11(p: f32) -> f32 {
    return u32_to_unit(pcg_hash(bitcast<u32>(p)));
}

/// Hash of an integer lattice point to [0,1).
fn hash2i(p: vec2<i32>) -> f32 {
    return u32_to_unit(pcg_hash(bitcast<u32>(p.x) ^ pcg_hash(bitcast<u32>(p.y) + 0x9e3779b9u)));
}

/// Hash of an integer lattice point to [0,1)².
fn hash2i2(p: vec2<i32>) -> vec2<f32> {
    let h = pcg_hash(bitcast<u32>(p.x) ^ pcg_hash(bitcast<u32>(p.y) + 0x9e3779b9u));
    return vec2<f32>(u32_to_unit(h), u32_to_unit(pcg_hash(h)));
}

/// Value noise in [0,1], smooth (quintic fade).
fn value_noise(p: vec2<f32>) -> f32 {
    let i = vec2<i32>(floor(p));
    let f = fract(p);
    let u = f * f * f * (f * (f * 6.0 - 15.0) + 10.0);
    let a = hash2i(i);
    let b = hash2i(i + vec2<i32>(1, 0));
    let c = hash2i(i + vec2<i32>(0, 1));
    let d = hash2i(i + vec2<i32>(1, 1));
    return mix(mix(a, b, u.x), mix(c, d, u.x), u.y);
}

/// Gradient (Perlin-style) noise in about [-1,1].
fn gradient_noise(p: vec2<f32>) -> f32 {
    let i = vec2<i32>(floor(p));
    let f = fract(p);
    let u = f * f * f * (f * (f * 6.0 - 15.0) + 10.0);
    let ga = hash2i2(i) * 2.0 - 1.0;
    let gb = hash2i2(i + vec2<i32>(1, 0)) * 2.0 - 1.0;
    let gc = hash2i2(i + vec2<i32>(0, 1)) * 2.0 - 1.0;
    let gd = hash2i2(i + vec2<i32>(1, 1)) * 2.0 - 1.0;
    let va = dot(ga, f);
    let vb = dot(gb, f - vec2<f32>(1.0, 0.0));
    let vc = dot(gc, f - vec2<f32>(0.0, 1.0));
    let vd = dot(gd, f - vec2<f32>(1.0, 1.0));
    return 1.4 * mix(mix(va, vb, u.x), mix(vc, vd, u.x), u.y);
}

/// Fractional Brownian motion of value noise, `octaves` in 1..=8, result in about [0,1].
fn fbm(p: vec2<f32>, octaves: i32) -> f32 {
    var sum = 0.0;
    var amp = 0.5;
    var q = p;
    var norm = 0.0;
    for (var o = 0; o < 8; o++) {
        if o >= octaves { break; }
        sum += amp * value_noise(q);
        norm += amp;
        q = rot2(0.5) * q * 2.03 + vec2<f32>(1.7, 9.2);
        amp *= 0.5;
    }
    return sum / max(norm, 1e-6);
}

/// 2D rotation matrix.
fn rot2(a: f32) -> mat2x2<f32> {
    let c = cos(a);
    let s = sin(a);
    return mat2x2<f32>(c, s, -s, c);
}

/// Inigo Quilez's cosine palette: a + b·cos(2π(c·x + d)).
fn palette(x: f32, a: vec3<f32>, b: vec3<f32>, c: vec3<f32>, d: vec3<f32>) -> vec3<f32> {
    return a + b * cos(TAU * (c * x + d));
}

fn hsv2rgb(c: vec3<f32>) -> vec3<f32> {
    let k = vec3<f32>(1.0, 2.0 / 3.0, 1.0 / 3.0);
    let p = abs(fract(c.xxx + k) * 6.0 - 3.0);
    return c.z * mix(vec3<f32>(1.0), clamp(p - 1.0, vec3<f32>(0.0), vec3<f32>(1.0)), c.y);
}

// ---- the batched entry point ----

fn pack_rgba8(c: vec3<f32>) -> u32 {
    let v = vec3<u32>(clamp(c, vec3<f32>(0.0), vec3<f32>(1.0)) * 255.0 + 0.5);
    return v.x | (v.y << 8u) | (v.z << 16u) | (255u << 24u);
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let size = dims.size;
    if gid.x >= size || gid.y >= size || gid.z >= dims.job_count {
        return;
    }
    current_job = gid.z;
    // Row 0 of the stored image is the top; uv.y grows upwards as in Shadertoy.
    let uv = vec2<f32>((f32(gid.x) + 0.5) / f32(size), 1.0 - (f32(gid.y) + 0.5) / f32(size));
    let colour = shade(uv, jobs[gid.z].time);
    pixels[jobs[gid.z].offset + gid.y * size + gid.x] = pack_rgba8(colour);
}
