//! procmem — perception learned from procedural data only, knowledge kept in an editable
//! visual memory of real images. After *Separating Knowledge and Perception with Procedural
//! Data* (Rodríguez-Muñoz, Baradad, Isola, Torralba; ICML 2025).
//!
//! Data flows one way, and the modules follow it:
//! `generate` (procedural images) → `train` (DINO) → `model` (ViT, checkpoints) → `memory`
//! (kNN over real-image embeddings, unlearning, privacy) → `dense` (patch-level tasks) →
//! `eval` (the paper's protocols) → `app` (the egui panels) and the CLI in `main.rs`.
//!
//! Status: `generate` and its panel are implemented; the other stages are tracked as issues
//! and are not yet present in this crate (no placeholder pretends to work).

pub mod app;
pub mod error;
pub mod generate;

pub use error::{Error, Result};
