//! Dense perception: what the paper does with patch tokens (§4.3; figures 9–12 and 18–19;
//! docs/protocols.md §7). `features` extracts the last block's patch tokens (or RGB patches),
//! `pca` makes feature overlays and the zero-shot PCA R², `segment` does in-context, kNN and
//! K-means segmentation with their metrics, and `composite` builds the offline segmentation set
//! with exact masks they are evaluated on.

pub mod calibrate;
pub mod composite;
pub mod features;
pub mod pca;
pub mod segment;

pub use features::{DEFAULT_GRID, PatchGrid, extract, extract_one};
