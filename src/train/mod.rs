//! Perception training: DINO self-distillation (Caron et al. 2021) on a stream of procedural
//! images (or an image folder, for the real-data baselines the paper compares against).
//!
//! `augment` (multi-crop), `dino` (loss and centre), `schedule` (cosine schedules), `optim`
//! (AdamW with saved state, per-tensor clipping), `trainer` (the loop, data stream, checkpoints,
//! metrics as JSON lines).

pub mod augment;
pub mod config;
pub mod data;
pub mod dino;
pub mod optim;
pub mod schedule;
pub mod trainer;

pub use config::{DataSource, TeacherCentering, TrainConfig};
pub use trainer::{TrainEvent, Trainer};
