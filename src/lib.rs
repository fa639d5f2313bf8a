//! procmem — perception learned from procedural data only, knowledge kept in an editable
//! visual memory of real images. After *Separating Knowledge and Perception with Procedural
//! Data* (Rodríguez-Muñoz, Baradad, Isola, Torralba; ICML 2025).
//!
//! Data flows one way, and the modules follow it (checked by `tests/layering.rs`):
//! `generate` (procedural images) → `model` (ViT, pooling, standardisation, checkpoints) →
//! `train` (DINO) → `embed` (images to memory embeddings) → `memory` (kNN over real-image
//! embeddings, unlearning, privacy) → `dense` (patch-level tasks) → `eval` (the paper's
//! protocols) → `app` (the egui panels); the CLI in `main.rs` and `cli/` uses the stages, never
//! the app. Shared utilities sit below every stage: `error`, `rng`, `hash`, `fsio`, `linalg`,
//! `paths`, `imageio`, `palette`, `resample`, `datasets` (and `test_support` for unit tests).
//! ARCHITECTURE.md gives each module's room; the README gives the project's status.

pub mod app;
pub mod datasets;
pub mod dense;
pub mod embed;
pub mod error;
pub mod eval;
pub mod fsio;
pub mod generate;
pub mod hash;
pub mod imageio;
pub mod linalg;
pub mod memory;
pub mod model;
pub mod palette;
pub mod paths;
pub mod resample;
pub mod rng;
#[cfg(test)]
pub(crate) mod test_support;
pub mod train;

pub use error::{Error, Result};
