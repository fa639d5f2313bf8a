//! `procmem eval ood`: "not in memory" as out-of-distribution detection, on a built-in set's
//! memory or your own.

use procmem::eval::ood;

use super::*;

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
        if self.memory.is_some() {
            self.own_data()
        } else {
            self.builtin()
        }
    }

    /// `procmem eval ood`: a memory of one set's training images, queried with its test images
    /// (in distribution) and with other sets' test images (out of distribution); AUROC and FPR@95
    /// of the k-th-neighbour score (`eval::ood`).
    fn builtin(self) -> anyhow::Result<()> {
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
            ..
        } = self;
        let baselines = !no_baselines;
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
            let (test, _) = embed_part_common_space(
                source,
                &format!("{id}-test"),
                &inside.test,
                &bar,
                n_train,
            )?;
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
                let r =
                    ood::evaluate(&in_scores, &out_scores).context("no queries, or a NaN score")?;
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

    /// `procmem eval ood --memory M.pmem --in-queries Q --out-queries O…`: "not in memory" on the
    /// user's own data.
    fn own_data(self) -> anyhow::Result<()> {
        let OodArgs {
            sources:
                Sources {
                    features,
                    report,
                    no_baselines,
                },
            k,
            memory,
            in_queries,
            out_queries: outside,
            ..
        } = self;
        let baselines = !no_baselines;
        let (Some(memory_path), Some(inside)) = (memory, in_queries) else {
            anyhow::bail!("--memory needs --in-queries and --out-queries");
        };
        let (memory_path, inside) = (memory_path.as_path(), inside.as_path());
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
