//! Evaluation with the paper's protocols: kNN classification over a visual memory (DINO's
//! `eval_knn.py`), retrieval between paired sets, NIGHTS-style 2AFC similarity, with raw pixels and a randomly initialised ViT as baselines computed by the
//! same code.

pub mod audit;
pub mod knn;
pub mod ood;
pub mod plot;
pub mod probe;
pub mod proxy;
pub mod results;
pub mod retrieval;
pub mod seg;
pub mod twoafc;
pub mod unlearning;
