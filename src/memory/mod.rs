//! Knowledge: the visual memory. An editable database of embeddings of real images with labels;
//! tasks are solved by nearest neighbours in it (Geirhos et al. 2024; the paper's §4).
//!
//! `store` (entries, the on-disk format, deletion that removes bytes, undo), `index` (exact
//! top-k search) with `int8` (its proved int8 candidate pass), `vote` (DINO's, plurality,
//! softmax and rank voting), `privacy` (which entries can change a prediction by their removal
//! alone).

pub mod bench;
pub mod embedding;
pub mod hnsw;
pub mod import;
pub mod index;
mod int8;
pub mod map;
pub mod npz;
pub mod privacy;
pub mod prune;
pub mod query;
pub mod store;
pub mod unlearn;
pub mod value;
pub mod vote;

pub use hnsw::{HnswIndex, HnswParams};
pub use index::{ExactIndex, Neighbour};
pub use query::{Answer, NeighbourRecord};
pub use store::{Entry, Memory};
pub use unlearn::{NEAR_DUPLICATE_COSINE, NearDuplicate, WatchList, WatchUpdate, near_duplicates};
pub use vote::{VoteResult, VoteRule};
