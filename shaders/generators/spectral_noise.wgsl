// name: Spectral noise
// family: baseline
// param: waves = 64 [8, 96] random plane waves summed per image
// param: alpha_min = 1.0 [0.5, 3.0] the per-image spectral exponent is drawn in [alpha_min, alpha_max]
// param: alpha_max = 2.5 [0.5, 3.0] (amplitude falls as 1/f^alpha; 2 is natural-image-like)
// param: fmax = 32 [4, 64] highest frequency, in cycles per image
// param: contrast = 0.22 [0.05, 0.5] standard deviation of each channel around its mean
//
// Random-phase noise with a power-law amplitude spectrum, after the "spectrum" baselines of
// Baradad et al. 2021. Deviation: instead of an inverse FFT over the full frequency grid, each
// image sums `waves` plane waves with log-uniform frequencies, uniform orientations and
// per-channel random phases, amplitude f^-alpha, normalised to unit variance. The spectrum
// envelope is the same; the spectrum is sparse.

fn sn_unit(seed: u32, i: u32, k: u32) -> f32 {
    return u32_to_unit(pcg_hash(seed ^ pcg_hash(i * 16u + k + 7u)));
}

fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {
    let seed = job_seed();
    let count = u32(param(0u) + 0.5);
    let a0 = min(param(1u), param(2u));
    let a1 = max(param(1u), param(2u));
    let alpha = mix(a0, a1, sn_unit(seed, 500u, 0u));
    let log_fmax = log(max(param(3u), 1.0));
    let contrast = param(4u);
    var sum = vec3<f32>(0.0);
    var power = 0.0;
    for (var i = 0u; i < 96u; i++) {
        if i >= count {
            break;
        }
        let f = exp(sn_unit(seed, i, 0u) * log_fmax);
        let theta = TAU * sn_unit(seed, i, 1u);
        let amp = pow(f, -alpha);
        let phase = TAU * vec3<f32>(sn_unit(seed, i, 2u), sn_unit(seed, i, 3u), sn_unit(seed, i, 4u));
        let x = TAU * f * dot(uv, vec2<f32>(cos(theta), sin(theta)));
        sum += amp * cos(vec3<f32>(x) + phase);
        power += amp * amp * 0.5;
    }
    let mean = vec3<f32>(sn_unit(seed, 501u, 0u), sn_unit(seed, 501u, 1u), sn_unit(seed, 501u, 2u)) * 0.5 + 0.25;
    return mean + contrast * sum / sqrt(max(power, 1e-12));
}
