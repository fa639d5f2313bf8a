//! Where procmem's files live: the bundled model and demo memory, the user's edited copies, and
//! the offline evaluation data. One place, so the CLI and the app agree.

use std::path::PathBuf;

/// The bundled model, relative to [`bundled_dir`].
pub const BUNDLED_MODEL: &str = "models/procmem-kml-mixup.json";
/// The demo memory (3,000 Fashion-MNIST training images), relative to [`bundled_dir`].
pub const DEMO_MEMORY: &str = "assets/demo/memory.pmem";
/// The demo watch list (200 Fashion-MNIST test images), relative to [`bundled_dir`].
pub const DEMO_WATCH: &str = "assets/demo/queries.pmem";

/// The repository's folder, where the bundled model (`models/`) and demo memory
/// (`assets/demo/`) live.
pub fn bundled_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where edited copies of bundled memories and re-embedded caches are saved (the bundled files
/// are never overwritten): `$XDG_DATA_HOME/procmem`, else `~/.local/share/procmem`, else the
/// temporary folder.
pub fn user_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir)
        .join("procmem")
}

/// The offline evaluation data: `$PROCMEM_DATA`, else `~/.cache/procmem/data` (where
/// `scripts/fetch-eval-data.sh` writes); `None` when neither variable is set.
pub fn data_dir() -> Option<PathBuf> {
    std::env::var_os("PROCMEM_DATA")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/procmem/data")))
}

/// Every folder of cached embeddings procmem writes: the app's (re-embedded memories, under
/// [`user_data_dir`]) and the evaluations' (under [`data_dir`]). A deletion purges user data
/// from all of them.
pub(crate) fn embedding_cache_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![user_data_dir().join("cache").join("embeddings")];
    dirs.extend(data_dir().map(|d| d.join("cache").join("embeddings")));
    dirs
}
