//! The library's error type: one enum, each variant a message a user can act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no GPU adapter is available for rendering ({0}).\n\
         procmem renders procedural images with wgpu. Without a GPU, install a software Vulkan driver:\n  \
         Debian/Ubuntu: sudo apt-get install mesa-vulkan-drivers libvulkan1\n\
         (or set WGPU_BACKEND=gl with Mesa's llvmpipe OpenGL)"
    )]
    NoAdapter(String),
    #[error("GPU error: {0}")]
    Gpu(String),
    #[error("program `{program}` does not compile:\n{message}")]
    ShaderCompile { program: String, message: String },
    #[error("program `{program}` has a bad header: {message}")]
    ProgramHeader { program: String, message: String },
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Sizes that must agree do not: a shape contract (embedding width, patch grid, mask size).
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        what: String,
        expected: String,
        got: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("model error: {0}")]
    Model(String),
    /// A tensor computation failed (shapes, dtypes, a kernel): candle's error, with its source.
    #[error("model computation: {0}")]
    Candle(#[from] candle_core::Error),
    /// Serialising procmem's own metadata (checkpoint JSON, configs) failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("memory: {0}")]
    Memory(String),
    /// Embeddings of one model met another model (a memory opened with, or added to by, a model
    /// whose fingerprint differs). The UI offers to re-embed on this variant.
    #[error(
        "the {what} holds embeddings of model {memory_model}, but the model is {model}: embeddings of different models never mix. {hint}"
    )]
    ModelMismatch {
        what: String,
        memory_model: String,
        model: String,
        hint: String,
    },
    /// An image deleted from this memory (its content hash is on the memory's deny-list) was
    /// added again without the override.
    #[error(
        "{name} was unlearned from this memory (its content is on the memory's deny-list); re-adding it needs the explicit override"
    )]
    Unlearned { name: String },
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Shape`] from anything printable.
    pub fn shape(
        what: impl Into<String>,
        expected: impl std::fmt::Display,
        got: impl std::fmt::Display,
    ) -> Self {
        Error::Shape {
            what: what.into(),
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
