//! procmem — perception learned from procedural data only, knowledge kept in an editable
//! visual memory of real images. After *Separating Knowledge and Perception with Procedural
//! Data* (Rodríguez-Muñoz, Baradad, Isola, Torralba; ICML 2025).
//!
//! Data flows one way, and the modules follow it:
//! `generate` (procedural images) → `train` (DINO) → `model` (ViT, checkpoints) → `memory`
//! (kNN over real-image embeddings, unlearning, privacy) → `dense` (patch-level tasks) →
//! `eval` (the paper's protocols) → `app` (the egui panels) and the CLI in `main.rs`.
//!
//! Status: `generate` and its panel are complete; `model` and `train` (DINO) are in progress;
//! the later stages are tracked as issues and not yet present (no placeholder pretends to work).

pub mod app;
pub mod dense;
pub mod error;
pub mod eval;
pub mod generate;
pub mod memory;
pub mod model;
pub mod train;

pub use error::{Error, Result};
