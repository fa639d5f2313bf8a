//! `procmem memory build | info | query | prune | value | map | audit | delete`: visual memories
//! on disk, one `clap::Args` struct with `run` per command.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

use procmem::embed::FeatureSource;
use procmem::memory::embedding::embed_pipelined;
use procmem::memory::{Memory, import};

use super::progress_bar;

#[derive(Subcommand)]
pub enum MemoryCommand {
    /// Embed labelled images into a new memory file.
    Build(BuildArgs),
    /// Entries per class, model fingerprint, size.
    Info(InfoArgs),
    /// Neighbours and vote for query images; optionally export them as visual-memory JSON.
    Query(QueryArgs),
    /// Find entries that hurt more than they help on labelled queries (Geirhos et al. 2024's
    /// pruning): a dry run by default that lists them with the evidence and the accuracy before
    /// and after on the half of the queries that did not choose; --apply deletes them (their
    /// bytes leave the file, as with `delete`).
    Prune(PruneArgs),
    /// Exact KNN-Shapley data values (Jia et al. 2019) of every entry over labelled queries:
    /// the lowest first (negative: the entry lowers the accuracy it takes part in — often a
    /// wrong label). Changes nothing.
    Value(ValueArgs),
    /// The memory map: every entry on the memory's first two principal axes, as the app's Map
    /// panel draws it. Writes id, label, source and (x, y) as CSV (or JSON for a .json path),
    /// and optionally a PNG picture coloured by label.
    Map(MapArgs),
    /// An unlearning certificate for a deletion: ORIGINAL is the memory before, EDITED after.
    /// Checks (a) equivalence with a memory rebuilt without the deleted entries, (b) that no
    /// file procmem wrote still holds their bytes, (c) that they look never-added to the edited
    /// memory (with --never-added). Writes the certificate as JSON; exits non-zero on failure.
    Audit(AuditArgs),
    /// Delete entries by id; their bytes leave the file and their content goes on the
    /// memory's deny-list. Near-duplicates left behind (same image bytes, or cosine ≥ --near)
    /// are listed, and deleted too with --with-near-duplicates.
    Delete(DeleteArgs),
}

impl MemoryCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            MemoryCommand::Build(args) => args.run(),
            MemoryCommand::Query(args) => args.run(),
            MemoryCommand::Info(args) => args.run(),
            MemoryCommand::Prune(args) => args.run(),
            MemoryCommand::Value(args) => args.run(),
            MemoryCommand::Map(args) => args.run(),
            MemoryCommand::Audit(args) => args.run(),
            MemoryCommand::Delete(args) => args.run(),
        }
    }
}

/// `procmem memory build`.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// Feature source: a weights path, `random:<preset>` or `pixels`.
    #[arg(long)]
    features: String,
    /// An ImageFolder tree: one sub-folder per class.
    #[arg(long, conflicts_with = "csv")]
    folder: Option<PathBuf>,
    /// A CSV of `path,label` lines.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// An IDX image file (MNIST / Fashion-MNIST layout, optionally .gz); needs --idx-labels.
    #[arg(long, requires = "idx_labels")]
    idx_images: Option<PathBuf>,
    #[arg(long)]
    idx_labels: Option<PathBuf>,
    /// Name Fashion-MNIST's classes instead of using label numbers (with --idx-images).
    #[arg(long)]
    fashion_mnist_names: bool,
    /// A MedMNIST .npz file; --split picks train, val or test.
    #[arg(long)]
    npz: Option<PathBuf>,
    #[arg(long, default_value = "train")]
    split: String,
    /// Import at most this many images (the first ones).
    #[arg(long)]
    limit: Option<usize>,
    /// Fail, writing nothing, if any file is skipped (unreadable, not an image, over limits).
    #[arg(long)]
    strict: bool,
    /// The memory file to write.
    #[arg(long)]
    out: PathBuf,
}

impl BuildArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let BuildArgs {
            features,
            folder,
            csv,
            idx_images,
            idx_labels,
            fashion_mnist_names,
            npz,
            split,
            limit,
            strict,
            out,
        } = self;
        let source = FeatureSource::from_spec(&features)?;
        let fingerprint = source.fingerprint();
        let mut memory: Option<Memory> = None;
        let mut skipped = Vec::new();
        let mut listing_skipped = Vec::new(); // bad CSV lines, reported first
        let limit = limit.unwrap_or(usize::MAX);
        let in_memory_items = match (&folder, &csv, &idx_images, &npz) {
            (Some(_), None, None, None) | (None, Some(_), None, None) => None,
            (None, None, Some(images), None) => {
                let labels = idx_labels
                    .as_deref()
                    .context("--idx-images needs --idx-labels")?;
                let names: &[&str] = if fashion_mnist_names {
                    &procmem::datasets::FASHION_MNIST_CLASSES
                } else {
                    &[]
                };
                Some(import::load_idx(images, labels, names)?)
            }
            (None, None, None, Some(npz)) => Some(import::load_npz(npz, &split)?),
            _ => bail!("give exactly one of --folder, --csv, --idx-images, --npz"),
        };
        // Decoding and thumbnails of the next batch overlap with embedding the current one.
        let mut add = |entries: Vec<procmem::memory::embedding::NewEntry>,
                       bad: Vec<import::Skipped>,
                       bar: &indicatif::ProgressBar| {
            bar.inc((entries.len() + bad.len()) as u64);
            skipped.extend(bad);
            let Some(first) = entries.first() else {
                return Ok(());
            };
            let m = memory.get_or_insert_with(|| Memory::new(&fingerprint, first.embedding.len()));
            for e in entries {
                m.add(
                    &fingerprint,
                    &e.label,
                    &e.source,
                    e.content_hash,
                    e.thumbnail,
                    e.embedding,
                )?;
            }
            Ok(())
        };
        // Images per batch; files may be multi-megapixel photos, so their batches are smaller
        // (two batches are in memory at once).
        const BATCH: usize = 256;
        const FILE_BATCH: usize = 32;
        match in_memory_items {
            Some(mut items) => {
                items.truncate(limit);
                let bar = progress_bar(items.len() as u64, "embed");
                let mut batches = Vec::new();
                while !items.is_empty() {
                    let rest = items.split_off(items.len().min(BATCH));
                    batches.push((std::mem::replace(&mut items, rest), Vec::new()));
                }
                embed_pipelined(&source, batches.into_iter(), |entries, bad| {
                    add(entries, bad, &bar)
                })?;
                bar.finish_and_clear();
            }
            None => {
                let (mut files, bad_lines) = match (&folder, &csv) {
                    (Some(dir), _) => (import::list_image_folder(dir)?, Vec::new()),
                    (_, Some(csv)) => import::list_csv(csv)?,
                    _ => unreachable!("checked above"),
                };
                files.truncate(limit);
                listing_skipped = bad_lines;
                let bar = progress_bar(files.len() as u64, "import");
                embed_pipelined(
                    &source,
                    files.chunks(FILE_BATCH).map(import::load),
                    |entries, bad| add(entries, bad, &bar),
                )?;
                bar.finish_and_clear();
            }
        }
        skipped.splice(0..0, listing_skipped);
        for s in &skipped {
            eprintln!("  skipped {}: {}", s.source, s.reason);
        }
        if strict && !skipped.is_empty() {
            bail!(
                "--strict: {} file(s) skipped (listed above); {} was not written",
                skipped.len(),
                out.display()
            );
        }
        let memory = memory.context("no readable images to import")?;
        memory.save(&out)?;
        eprintln!(
            "{} entries written to {} ({} skipped)",
            memory.len(),
            out.display(),
            skipped.len()
        );
        Ok(())
    }
}

/// `procmem memory info`.
#[derive(clap::Args)]
pub struct InfoArgs {
    memory: PathBuf,
}

impl InfoArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let InfoArgs { memory } = self;
        let m = Memory::open(&memory)?;
        println!(
            "{}: {} entries, dimension {}, model {}",
            memory.display(),
            m.len(),
            m.dim(),
            m.model_fingerprint()
        );
        for label in m.labels() {
            println!(
                "  {label}: {}",
                m.entries().iter().filter(|e| e.label == label).count()
            );
        }
        Ok(())
    }
}

/// `procmem memory query`.
#[derive(clap::Args)]
pub struct QueryArgs {
    memory: PathBuf,
    /// The model that built the memory (its fingerprint must match).
    #[arg(long)]
    features: String,
    /// Query images.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Write the neighbour records (image_id, neighbor_image_ids, …) here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Search with an HNSW graph instead of the exact index (large memories).
    #[arg(long)]
    hnsw: bool,
}

impl QueryArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let QueryArgs {
            memory,
            features,
            images,
            k,
            json,
            hnsw,
        } = self;
        use procmem::memory::{
            Answer, ExactIndex, NeighbourRecord, VoteRule, query::write_records,
        };
        if k == 0 {
            bail!("--k 0 asks for no neighbours: give k ≥ 1 (10 is the default)");
        }
        let m = Memory::open(&memory)?;
        if m.is_empty() {
            bail!(
                "{} is empty (no entries): there is nothing to search (build one with `procmem memory build`)",
                memory.display()
            );
        }
        if k > m.len() {
            eprintln!(
                "note: k = {k} but {} holds {} entries: all of them are listed",
                memory.display(),
                m.len()
            );
        }
        let source = FeatureSource::from_spec(&features)?;
        if source.fingerprint() != m.model_fingerprint() {
            bail!(
                "{} was embedded by model {}, but --features {features} is model {}: embeddings of different models never mix",
                memory.display(),
                m.model_fingerprint(),
                source.fingerprint()
            );
        }
        let labels = m.labels();
        let index = ExactIndex::build(&m, &labels);
        let graph = if hnsw {
            Some(procmem::memory::HnswIndex::build(
                &index,
                Default::default(),
            )?)
        } else {
            None
        };
        let mut records = Vec::new();
        for path in &images {
            let img = procmem::imageio::load_rgb(path)?;
            let (q, _) = source.embed_rgb(std::slice::from_ref(&img), |_| {})?;
            let neighbours = match &graph {
                Some(g) => g.search(&q, k),
                None => index.search(&q, k),
            }
            .pop()
            .unwrap_or_default();
            let answer = Answer::new(neighbours, k, labels.len(), VoteRule::default());
            let predicted = answer
                .vote
                .prediction
                .map_or("-".to_string(), |c| labels[c as usize].clone());
            println!("{}: {predicted}", path.display());
            for n in &answer.neighbours {
                let e = m.get(n.id).context("neighbour in memory")?;
                println!(
                    "  #{:<6} {:<14} similarity {:.4}  {}",
                    n.id, labels[n.label as usize], n.similarity, e.source
                );
            }
            records.push(NeighbourRecord::new(
                &source.name(),
                &path.display().to_string(),
                None,
                &answer.neighbours,
                &labels,
            ));
        }
        if let Some(json) = json {
            write_records(&json, &records)?;
            eprintln!("neighbour records written to {}", json.display());
        }
        Ok(())
    }
}

/// `procmem memory prune`.
#[derive(clap::Args)]
pub struct PruneArgs {
    memory: PathBuf,
    /// Labelled queries embedded by the same model: a memory file (e.g. built with
    /// `memory build` from a held-out folder). Every second one chooses, the others judge.
    #[arg(long)]
    queries: PathBuf,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// An entry is harmful when it hurt at least this many queries, and more than it helped.
    #[arg(long, default_value_t = procmem::memory::prune::DEFAULT_MIN_HURT)]
    min_hurt: usize,
    /// Delete the harmful entries and save (to --out, or in place).
    #[arg(long)]
    apply: bool,
    /// Where --apply writes [default: the memory file itself].
    #[arg(long, requires = "apply")]
    out: Option<PathBuf>,
    /// Write the evidence (id, label, helped, hurt, harmful) as CSV here.
    #[arg(long)]
    csv: Option<PathBuf>,
}

impl PruneArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let PruneArgs {
            memory,
            queries,
            k,
            min_hurt,
            apply,
            out,
            csv,
        } = self;
        prune(&memory, &queries, k, min_hurt, apply, out, csv)
    }
}

/// `procmem memory value`.
#[derive(clap::Args)]
pub struct ValueArgs {
    memory: PathBuf,
    /// Labelled queries embedded by the same model (a memory file).
    #[arg(long)]
    queries: PathBuf,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Entries listed.
    #[arg(long, default_value_t = 20)]
    show: usize,
    /// Write every entry's value (id, label, source, value) as CSV here.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Experiment: flip this fraction of the memory's labels (in memory only, seeded) and
    /// report how many of them the lowest values find (the paper's label-noise test).
    #[arg(long)]
    flip_labels: Option<f64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl ValueArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let ValueArgs {
            memory,
            queries,
            k,
            show,
            csv,
            flip_labels,
            seed,
        } = self;
        value(&memory, &queries, k, show, csv, flip_labels, seed)
    }
}

/// `procmem memory map`.
#[derive(clap::Args)]
pub struct MapArgs {
    memory: PathBuf,
    /// Coordinates file (.csv or .json).
    #[arg(long)]
    out: PathBuf,
    /// Also draw the map here (PNG).
    #[arg(long)]
    png: Option<PathBuf>,
    /// Width and height of the PNG, pixels.
    #[arg(long, default_value_t = 1024)]
    size: u32,
}

impl MapArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let MapArgs {
            memory,
            out,
            png,
            size,
        } = self;
        use procmem::memory::map::MemoryMap;
        use procmem::palette::class_rgb;
        let m = Memory::open(&memory)?;
        let map = MemoryMap::fit(&m)?;
        let rows = map.export(&m, None, &out)?;
        let e = &map.projection.explained;
        eprintln!(
            "{rows} entries of {} on PC1/PC2 ({:.1} % + {:.1} % of the variance) -> {}",
            memory.display(),
            e[0] * 100.0,
            e[1] * 100.0,
            out.display()
        );
        if let Some(png) = png {
            map.render(size)
                .save(&png)
                .map_err(|e| anyhow::anyhow!("{}: {e}", png.display()))?;
            eprintln!("map drawn to {}; colours:", png.display());
            for (i, label) in map.labels.iter().enumerate() {
                let [r, g, b] = class_rgb(i as u32);
                eprintln!("  #{r:02x}{g:02x}{b:02x} {label}");
            }
        }
        Ok(())
    }
}

/// `procmem memory delete`.
#[derive(clap::Args)]
pub struct DeleteArgs {
    memory: PathBuf,
    #[arg(long = "id", required = true)]
    ids: Vec<u64>,
    /// Also delete the near-duplicates of the deleted entries.
    #[arg(long)]
    with_near_duplicates: bool,
    /// Cosine similarity from which another entry counts as a near-duplicate.
    #[arg(long, default_value_t = procmem::memory::NEAR_DUPLICATE_COSINE)]
    near: f32,
}

impl DeleteArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let DeleteArgs {
            memory,
            ids,
            with_near_duplicates,
            near,
        } = self;
        use procmem::memory::{ExactIndex, near_duplicates};
        let mut m = Memory::open(&memory)?;
        for id in &ids {
            if m.get(*id).is_none() {
                bail!(
                    "no entry {id} in {} (nothing was changed)",
                    memory.display()
                );
            }
        }
        // Deleted in one pass; near-duplicates are then looked up among the entries that stay.
        let targets = m.delete_many(&ids.iter().copied().collect());
        let index = ExactIndex::build(&m, &m.labels());
        let mut extra: Vec<u64> = Vec::new();
        for t in &targets {
            for d in near_duplicates(&m, &index, &t.embedding, t.content_hash, t.id, near) {
                let how = if d.same_content {
                    "the same image bytes".to_string()
                } else {
                    format!("cosine {:.4}", d.similarity)
                };
                eprintln!("  #{} is a near-duplicate of #{} ({how})", d.id, t.id);
                if !extra.contains(&d.id) {
                    extra.push(d.id);
                }
            }
        }
        let mut all = ids.clone();
        if with_near_duplicates {
            m.delete_many(&extra.iter().copied().collect());
            all.extend(extra.iter().copied().filter(|id| !ids.contains(id)));
        }
        m.save(&memory)?;
        // Cached embeddings of user data (re-embedded memories, labelled sets given to
        // evaluations) may hold the deleted entries: they go, as when the app deletes.
        let purged = procmem::memory::embedding::purge_user_sets_everywhere();
        if purged > 0 {
            eprintln!(
                "purged {purged} cached embedding file(s) of user data (memories re-embedded, labelled sets)"
            );
        }
        eprintln!(
            "deleted {} entr{}; {} remain; {} content hash(es) on the memory's deny-list",
            all.len(),
            if all.len() == 1 { "y" } else { "ies" },
            m.len(),
            m.denied_count()
        );
        if !with_near_duplicates && !extra.is_empty() {
            eprintln!(
                "{} near-duplicate(s) remain; --with-near-duplicates deletes them too",
                extra.len()
            );
        }
        Ok(())
    }
}

/// A memory and labelled queries of the same model: the memory, the class names (the memory's,
/// then classes only queries have), the exact index, the queries (`nq × dim`) and their classes.
#[allow(clippy::type_complexity)]
fn memory_and_queries(
    path: &std::path::Path,
    queries: &std::path::Path,
) -> anyhow::Result<(
    procmem::memory::Memory,
    Vec<String>,
    procmem::memory::ExactIndex,
    Vec<f32>,
    Vec<u32>,
)> {
    use procmem::memory::{ExactIndex, Memory};
    let memory = Memory::open(path)?;
    let q = Memory::open(queries)?;
    if q.model_fingerprint() != memory.model_fingerprint() {
        bail!(
            "{} was embedded by model {}, the memory {} by model {}: embed the queries with the memory's model",
            queries.display(),
            q.model_fingerprint(),
            path.display(),
            memory.model_fingerprint()
        );
    }
    // Query classes outside the memory's labels count as a class no entry has.
    let mut labels = memory.labels();
    let truths: Vec<u32> = q
        .entries()
        .iter()
        .map(|e| super::eval::class_index(&mut labels, &e.label))
        .collect();
    let index = ExactIndex::build(&memory, &labels);
    let flat: Vec<f32> = q
        .entries()
        .iter()
        .flat_map(|e| e.embedding.iter().copied())
        .collect();
    Ok((memory, labels, index, flat, truths))
}

fn value(
    path: &std::path::Path,
    queries: &std::path::Path,
    k: usize,
    show: usize,
    csv: Option<PathBuf>,
    flip_labels: Option<f64>,
    seed: u64,
) -> anyhow::Result<()> {
    use procmem::memory::value::knn_shapley;
    let (memory, labels, mut index, flat, truths) = memory_and_queries(path, queries)?;
    let mut flipped = std::collections::HashSet::new();
    if let Some(fraction) = flip_labels {
        anyhow::ensure!(
            (0.0..=1.0).contains(&fraction) && labels.len() > 1,
            "--flip-labels takes a fraction in [0, 1] and needs two classes"
        );
        let mut rng = procmem::rng::Rng::new(seed);
        let rows: Vec<(u64, u32, Vec<f32>)> =
            index.rows().map(|(id, l, e)| (id, l, e.to_vec())).collect();
        index.retain(|_, _| false);
        for (id, label, e) in rows {
            let label = if rng.uniform() < fraction {
                flipped.insert(id);
                (label + 1 + rng.below(labels.len() - 1) as u32) % labels.len() as u32
            } else {
                label
            };
            index.insert(id, label, &e);
        }
    }
    let t = std::time::Instant::now();
    let values = knn_shapley(&index, &flat, &truths, k);
    let mut ranked: Vec<((u64, u32), f64)> =
        index.rows().map(|(id, l, _)| (id, l)).zip(values).collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.0.cmp(&b.0.0)));
    println!(
        "KNN-Shapley values (Jia et al. 2019) of {} entries over {} queries, k = {k}, in {:.1} s; {} negative",
        ranked.len(),
        truths.len(),
        t.elapsed().as_secs_f64(),
        ranked.iter().filter(|r| r.1 < 0.0).count()
    );
    println!("| id | label | source | value |\n|---:|---|---|---:|");
    for ((id, label), v) in ranked.iter().take(show) {
        let source = memory.get(*id).map_or("", |e| e.source.as_str());
        println!(
            "| {id} | {} | {source} | {v:.3e} |",
            labels[*label as usize]
        );
    }
    if !flipped.is_empty() {
        let lowest = &ranked[..flipped.len().min(ranked.len())];
        let found = lowest.iter().filter(|r| flipped.contains(&r.0.0)).count();
        println!(
            "label noise: {} of {} labels flipped (seed {seed}); the lowest-valued {} entries hold {found} of them ({:.1} %; chance {:.1} %)",
            flipped.len(),
            ranked.len(),
            lowest.len(),
            100.0 * found as f64 / flipped.len() as f64,
            100.0 * flipped.len() as f64 / ranked.len() as f64
        );
    }
    if let Some(csv) = csv {
        let mut text = String::from("id,label,source,value\n");
        for ((id, label), v) in &ranked {
            let source = memory.get(*id).map_or("", |e| e.source.as_str());
            text += &format!(
                "{id},{},\"{}\",{v:e}\n",
                labels[*label as usize],
                source.replace('"', "\"\"")
            );
        }
        procmem::fsio::write_atomic(&csv, text.as_bytes())?;
    }
    Ok(())
}

fn prune(
    path: &std::path::Path,
    queries: &std::path::Path,
    k: usize,
    min_hurt: usize,
    apply: bool,
    out: Option<PathBuf>,
    csv: Option<PathBuf>,
) -> anyhow::Result<()> {
    let (mut memory, labels, index, flat, truths) = memory_and_queries(path, queries)?;
    let plan = procmem::memory::prune::plan(
        &index,
        &flat,
        &truths,
        k,
        min_hurt,
        procmem::memory::VoteRule::default(),
    );
    println!(
        "{} of {} entries are harmful (hurt >= {min_hurt} and more than they helped, k = {k}, {} choosing queries)",
        plan.harmful.len(),
        memory.len(),
        plan.choosing
    );
    println!("| id | label | source | helped | hurt |\n|---:|---|---|---:|---:|");
    for e in plan
        .evidence
        .iter()
        .filter(|e| e.is_harmful(min_hurt))
        .take(50)
    {
        let entry = memory
            .get(e.id)
            .context("an indexed entry is in the memory")?;
        println!(
            "| {} | {} | {} | {} | {} |",
            e.id, labels[e.label as usize], entry.source, e.helped, e.hurt
        );
    }
    if plan.harmful.len() > 50 {
        println!(
            "… and {} more (all of them with --csv)",
            plan.harmful.len() - 50
        );
    }
    println!(
        "kNN accuracy on the {} judging queries (not used to choose): {:.2} % before, {:.2} % after pruning",
        plan.judging,
        100.0 * plan.accuracy_before,
        100.0 * plan.accuracy_after
    );
    if let Some(csv) = csv {
        let mut text = String::from("id,label,helped,hurt,harmful\n");
        for e in &plan.evidence {
            text += &format!(
                "{},{},{},{},{}\n",
                e.id,
                labels[e.label as usize],
                e.helped,
                e.hurt,
                e.is_harmful(min_hurt)
            );
        }
        procmem::fsio::write_atomic(&csv, text.as_bytes())?;
    }
    if apply {
        // The normal unlearning path: deny-listed, and cached embeddings of user data purged.
        memory.delete_many(&plan.harmful.iter().copied().collect());
        let target = out.unwrap_or_else(|| path.to_path_buf());
        memory.save(&target)?;
        procmem::memory::embedding::purge_user_sets_everywhere();
        eprintln!(
            "deleted {} entries; {} remain in {}",
            plan.harmful.len(),
            memory.len(),
            target.display()
        );
    } else if !plan.harmful.is_empty() {
        eprintln!("dry run: nothing was changed (add --apply to delete them)");
    }
    Ok(())
}

/// `procmem memory audit`.
#[derive(clap::Args)]
pub struct AuditArgs {
    original: PathBuf,
    edited: PathBuf,
    /// Certificate (JSON).
    #[arg(long)]
    out: PathBuf,
    /// A memory file of images never added (same model), for the membership test; e.g. the
    /// demo's `assets/demo/queries.pmem`.
    #[arg(long)]
    never_added: Option<PathBuf>,
    /// More files or folders to scan (exports, neighbour JSON, copies).
    #[arg(long)]
    scan: Vec<PathBuf>,
    /// Scan only EDITED and --scan paths, not procmem's own folders (the app's saved copies
    /// and re-embedding cache, the evaluation embedding cache).
    #[arg(long)]
    no_default_scan: bool,
    /// Delete the cache files (under procmem's cache folders only) in which deleted bytes were
    /// found, then audit again. Memory files and --scan paths are never deleted.
    #[arg(long)]
    purge_caches: bool,
    #[arg(long, default_value_t = 10)]
    k: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl AuditArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let AuditArgs {
            original,
            edited,
            out,
            never_added,
            mut scan,
            no_default_scan,
            purge_caches,
            k,
            seed,
        } = self;
        let (original, edited, out, never_added) = (
            original.as_path(),
            edited.as_path(),
            out.as_path(),
            never_added.as_deref(),
        );
        use procmem::eval::audit::{AuditInput, audit};
        use procmem::memory::Memory;
        let never = never_added.map(Memory::open).transpose()?;
        if !no_default_scan {
            scan.push(procmem::paths::user_data_dir());
            if let Some(d) = procmem::paths::data_dir() {
                scan.push(d.join("cache"));
            }
        }
        let caches: Vec<PathBuf> = std::iter::once(procmem::paths::user_data_dir().join("cache"))
            .chain(procmem::paths::data_dir().map(|d| d.join("cache")))
            .collect();
        let input = AuditInput {
            original,
            edited,
            never_added: never.as_ref(),
            scan,
            k,
            seed,
        };
        let mut cert = audit(&input, |s| eprintln!("{s}"))?;
        if purge_caches && !cert.byte_scan.findings.is_empty() {
            let mut purged = std::collections::BTreeSet::new();
            for f in &cert.byte_scan.findings {
                if caches.iter().any(|c| f.path.starts_with(c)) && purged.insert(f.path.clone()) {
                    std::fs::remove_file(&f.path)
                        .with_context(|| format!("could not delete {}", f.path.display()))?;
                    eprintln!(
                        "deleted cache file {} (it held deleted bytes; it is rebuilt on demand)",
                        f.path.display()
                    );
                }
            }
            if !purged.is_empty() {
                cert = audit(&input, |s| eprintln!("{s}"))?;
            }
        }
        procmem::fsio::write_atomic(out, &serde_json::to_vec_pretty(&cert)?)?;
        let verdict = |ok: bool| if ok { "passed" } else { "FAILED" };
        println!(
            "unlearning audit of {} deleted entr{} ({} -> {})",
            cert.deleted.len(),
            if cert.deleted.len() == 1 { "y" } else { "ies" },
            original.display(),
            edited.display()
        );
        let e = &cert.equivalence;
        println!(
            "  (a) equivalence: {} — entries byte-identical: {}, {} of {} probe queries differ from a rebuilt memory (k = {})",
            verdict(e.passed),
            e.entries_identical,
            e.mismatched_queries.len(),
            e.probe_queries,
            e.k
        );
        let b = &cert.byte_scan;
        println!(
            "  (b) byte scan: {} — {} files, {:.1} MB scanned for {} needles ({} shared with kept entries dropped), {} finding(s)",
            verdict(b.passed),
            b.files,
            b.bytes as f64 / 1e6,
            b.needles,
            b.shared_needles,
            b.findings.len()
        );
        if !b.unsearchable.is_empty() {
            println!(
                "      entries {:?} have exact duplicates still in the memory: nothing of theirs can be told apart",
                b.unsearchable
            );
        }
        for u in &b.unreadable {
            println!("      could not read {u}");
        }
        for f in b.findings.iter().take(20) {
            println!(
                "      {} at byte {}: the {} of deleted entry {}",
                f.path.display(),
                f.offset,
                f.what,
                f.id
            );
        }
        match &cert.membership {
            Some(m) => println!(
                "  (c) membership: {}{} — AUROC deleted vs never-added {:.3} (95 % interval {:.3}–{:.3}; 0.5 = indistinguishable), members vs never-added {:.3}",
                verdict(m.passed),
                if m.inconclusive {
                    " but inconclusive (fewer than 20 deleted or never-added images; not counted)"
                } else {
                    ""
                },
                m.auroc_deleted,
                m.interval_deleted[0],
                m.interval_deleted[1],
                m.auroc_members
            ),
            None => println!("  (c) membership: not run (give --never-added)"),
        }
        println!("certificate: {} — {}", out.display(), verdict(cert.passed));
        if !cert.passed {
            anyhow::bail!("the audit failed: see {}", out.display());
        }
        Ok(())
    }
}
