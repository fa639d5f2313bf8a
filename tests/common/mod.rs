//! Helpers shared by the memory tests: random unit vectors and random memories.

use procmem::memory::Memory;
use procmem::rng::Rng;

pub fn random_unit(rng: &mut Rng, dim: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// `n` entries with labels `class0..class{classes-1}`, model fingerprint "fp".
pub fn random_memory(rng: &mut Rng, n: usize, dim: usize, classes: usize) -> Memory {
    let mut m = Memory::new("fp", dim);
    for _ in 0..n {
        let label = format!("class{}", rng.below(classes));
        m.add("fp", &label, "", 0, vec![], random_unit(rng, dim))
            .unwrap();
    }
    m
}
