//! Perception: the Vision Transformer, the DINO projection head, and weight I/O.
//!
//! Parameter names equal the DINO / timm checkpoint keys (`cls_token`, `pos_embed`,
//! `patch_embed.proj.weight`, `blocks.N.attn.qkv.weight`, …, `norm.weight`), so those weights load
//! without renaming tables.

pub mod block;
pub mod fused;
pub mod head;
pub mod init;
pub(crate) mod kernels;
pub mod layers;
pub mod pooling;
pub mod standardise;
pub mod vit;
pub mod weights;

pub use head::{DinoHead, HeadConfig};
pub use pooling::Pooling;
pub use vit::{VisionTransformer, VitConfig};
