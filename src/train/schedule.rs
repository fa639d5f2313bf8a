//! DINO's schedules (`utils.cosine_scheduler`): linear warm-up, then a half cosine.

/// Value at `step` of a schedule that warms up linearly from `warmup_start` to `base` over
/// `warmup_steps`, then follows a cosine from `base` to `end` until `total_steps`.
pub fn cosine(
    step: u64,
    total_steps: u64,
    base: f64,
    end: f64,
    warmup_steps: u64,
    warmup_start: f64,
) -> f64 {
    if step < warmup_steps {
        return warmup_start + (base - warmup_start) * step as f64 / warmup_steps as f64;
    }
    let span = total_steps.saturating_sub(warmup_steps).max(1);
    let t = ((step - warmup_steps) as f64 / span as f64).min(1.0);
    end + 0.5 * (base - end) * (1.0 + (std::f64::consts::PI * t).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_dino_cosine_scheduler() {
        // DINO: warmup linspace(start, base, warmup) then end + 0.5(base-end)(1+cos(pi*i/len)).
        assert!((cosine(0, 100, 1.0, 0.0, 10, 0.0) - 0.0).abs() < 1e-12);
        assert!((cosine(5, 100, 1.0, 0.0, 10, 0.0) - 0.5).abs() < 1e-12);
        assert!((cosine(10, 100, 1.0, 0.0, 10, 0.0) - 1.0).abs() < 1e-12);
        assert!((cosine(55, 100, 1.0, 0.0, 10, 0.0) - 0.5).abs() < 1e-12);
        assert!((cosine(100, 100, 1.0, 0.0, 10, 0.0) - 0.0).abs() < 1e-12);
        // Teacher momentum 0.996 -> 1 without warm-up.
        assert!((cosine(0, 50, 0.996, 1.0, 0, 0.0) - 0.996).abs() < 1e-12);
        assert!((cosine(50, 50, 0.996, 1.0, 0, 0.0) - 1.0).abs() < 1e-12);
    }
}
