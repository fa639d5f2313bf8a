//! `procmem eval …` and `procmem privacy`: the paper's protocols, each table with the two
//! baselines computed by the same code — raw pixels and the same ViT at random init.

use std::path::PathBuf;

use anyhow::Context;
use procmem::eval::embed::FeatureSource;
use procmem::eval::{datasets, knn, retrieval, twoafc};
use procmem::memory::{ExactIndex, VoteRule};

use super::{data_dir, progress_bar};

/// The requested sources, then the baselines: raw pixels and a random-init ViT shaped like the
/// first model (cpu-tiny when there is none). A spec already present is not repeated.
pub fn sources_with_baselines(specs: &[String], baselines: bool) -> anyhow::Result<Vec<FeatureSource>> {
    let mut out = Vec::new();
    for spec in specs {
        out.push(FeatureSource::from_spec(spec).with_context(|| format!("feature source `{spec}`"))?);
    }
    if baselines {
        if !out.iter().any(|s| matches!(s, FeatureSource::Pixels)) {
            out.push(FeatureSource::Pixels);
        }
        let cfg = match out.iter().find_map(|s| s.vit()) {
            Some(vit) => vit.cfg.clone(),
            None => procmem::model::VitConfig::preset("cpu-tiny").context("the cpu-tiny preset")?,
        };
        let random = FeatureSource::random_like(&cfg)?;
        if !out.iter().any(|s| s.fingerprint() == random.fingerprint()) {
            out.push(random);
        }
    }
    Ok(out)
}

pub struct FashionSplit {
    pub train: datasets::LabelledImages,
    pub test: datasets::LabelledImages,
}

pub fn fashion_mnist(data: Option<PathBuf>, limit_train: Option<usize>, limit_test: Option<usize>) -> anyhow::Result<FashionSplit> {
    let dir = match data {
        Some(d) => d,
        None => data_dir()?.join("fashion-mnist"),
    };
    let (mut train, mut test) =
        datasets::fashion_mnist(&dir).with_context(|| format!("Fashion-MNIST in {} (run scripts/fetch-eval-data.sh)", dir.display()))?;
    if let Some(n) = limit_train {
        train.images.truncate(n);
        train.labels.truncate(n);
    }
    if let Some(n) = limit_test {
        test.images.truncate(n);
        test.labels.truncate(n);
    }
    Ok(FashionSplit { train, test })
}

fn embed_split(source: &FeatureSource, split: &FashionSplit) -> anyhow::Result<(ExactIndex, Vec<f32>)> {
    let total = (split.train.images.len() + split.test.images.len()) as u64;
    let bar = progress_bar(total, &format!("embed {}", source.name()));
    let (memory, dim) = source.embed_gray(&split.train.images, |d| bar.set_position(d as u64))?;
    let offset = split.train.images.len() as u64;
    let (queries, _) = source.embed_gray(&split.test.images, |d| bar.set_position(offset + d as u64))?;
    bar.finish_and_clear();
    Ok((ExactIndex::from_embeddings(dim, split.train.class_names.clone(), split.train.labels.clone(), memory), queries))
}

pub fn command_line() -> String {
    std::env::args().skip(1).collect::<Vec<_>>().join(" ")
}

pub fn write_report(report: Option<PathBuf>, markdown: &str) -> anyhow::Result<()> {
    print!("{markdown}");
    if let Some(path) = report {
        std::fs::write(&path, markdown).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    Ok(())
}

pub struct KnnArgs {
    pub data: Option<PathBuf>,
    pub features: Vec<String>,
    pub ks: Vec<usize>,
    pub limit_train: Option<usize>,
    pub limit_test: Option<usize>,
    pub report: Option<PathBuf>,
    pub baselines: bool,
}

pub fn knn(args: KnnArgs) -> anyhow::Result<()> {
    let sources = sources_with_baselines(&args.features, args.baselines)?;
    let split = fashion_mnist(args.data, args.limit_train, args.limit_test)?;
    let mut markdown = format!(
        "## kNN classification, Fashion-MNIST (memory: {} train images, queries: {} test images, DINO voting T = 0.07)\n\nCommand: `procmem {}`\n\n",
        split.train.images.len(),
        split.test.images.len(),
        command_line()
    );
    let mut summary = Vec::new();
    for source in &sources {
        let (index, queries) = embed_split(source, &split)?;
        let r = knn::evaluate(&source.name(), &index, &queries, &split.test.labels, &args.ks, VoteRule::default());
        eprintln!("{}: best top-1 {:.2} % at k = {}", r.source, r.best_top1 * 100.0, r.best_k);
        summary.push((r.source.clone(), r.best_top1, r.best_k));
        markdown += &r.markdown();
        markdown += "\n";
    }
    markdown += "| features | best top-1 | k |\n|---|---:|---:|\n";
    for (s, a, k) in summary {
        markdown += &format!("| {s} | {:.2} % | {k} |\n", a * 100.0);
    }
    write_report(args.report, &markdown)
}

pub fn privacy(
    data: Option<PathBuf>,
    features: Vec<String>,
    ks: Vec<usize>,
    limit_train: Option<usize>,
    limit_test: Option<usize>,
    top: usize,
    report: Option<PathBuf>,
    baselines: bool,
) -> anyhow::Result<()> {
    use procmem::memory::privacy::analyse;
    let sources = sources_with_baselines(&features, baselines)?;
    let split = fashion_mnist(data, limit_train, limit_test)?;
    let mut markdown = format!(
        "## Privacy analysis, Fashion-MNIST (memory: {} train images, queries: {} test images, DINO voting T = 0.07)\n\n\
         An entry is non-private when removing it alone changes at least one query's prediction.\n\nCommand: `procmem {}`\n\n",
        split.train.images.len(),
        split.test.images.len(),
        command_line()
    );
    markdown += &format!(
        "| features | {} |\n|---|{}\n",
        ks.iter().map(|k| format!("non-private, k = {k}")).collect::<Vec<_>>().join(" | "),
        "---:|".repeat(ks.len())
    );
    let mut details = String::new();
    for source in &sources {
        let (index, queries) = embed_split(source, &split)?;
        let mut cells = Vec::new();
        for &k in &ks {
            let t = std::time::Instant::now();
            let r = analyse(&index, &queries, k, VoteRule::default());
            eprintln!(
                "{} k = {k}: {:.2} % non-private ({:.2} s)",
                source.name(),
                r.non_private_fraction * 100.0,
                t.elapsed().as_secs_f64()
            );
            cells.push(format!("{:.2} %", r.non_private_fraction * 100.0));
            if k == ks[0] {
                let mut ranked: Vec<(u64, usize)> = r.influence.iter().map(|(&id, &c)| (id, c)).collect();
                ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                details += &format!("\nMost influential entries for {} (k = {k}): ", source.name());
                details += &ranked
                    .iter()
                    .take(top)
                    .map(|(id, c)| format!("#{id} ({}, {c} queries)", split.train.class_names[split.train.labels[*id as usize] as usize]))
                    .collect::<Vec<_>>()
                    .join(", ");
                details += "\n";
            }
        }
        markdown += &format!("| {} | {} |\n", source.name(), cells.join(" | "));
    }
    markdown += &details;
    write_report(report, &markdown)
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
        paths.into_iter().map(|p| retrieval::load_rgb_on_white(p).map_err(anyhow::Error::from)).collect()
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
        triplets.iter().map(|t| retrieval::load_rgb_on_white(f(t)).map_err(anyhow::Error::from)).collect()
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
