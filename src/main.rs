//! The `procmem` binary: the app (no arguments) and a headless CLI for every job.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

mod cli;

use cli::progress_bar;
use procmem::generate::{Generator, GeneratorConfig, Process, bench, manifest, programs::ProgramLibrary};

#[derive(Parser)]
#[command(name = "procmem", version, about = "A vision model that never saw a real photo, and an editable visual memory of real images.")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the desktop app (the default without a command).
    App,
    /// Generate a set of procedural images (PNGs and a manifest.json that regenerates them).
    Generate(GenerateArgs),
    /// Regenerate a set exactly from its manifest.json.
    Regenerate {
        /// The manifest.json of the set.
        manifest: PathBuf,
        /// Folder to write the regenerated images to.
        #[arg(long)]
        out: PathBuf,
    },
    /// List the procedural programs, compile every one, and report those that fail.
    Programs {
        /// Also compile each program on the GPU adapter (not only validate it).
        #[arg(long)]
        compile: bool,
    },
    /// Build, inspect and edit visual memories.
    #[command(subcommand)]
    Memory(MemoryCommand),
    /// Evaluations with the paper's protocols.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Which memory entries would change a prediction if removed alone (Fashion-MNIST: train =
    /// memory, test = queries), for each k, with the two baselines.
    Privacy {
        #[command(flatten)]
        set: cli::eval::SetArgs,
        #[command(flatten)]
        sources: Sources,
        #[arg(long, value_delimiter = ',', default_value = "1,10,20,100")]
        k: Vec<usize>,
        #[arg(long)]
        limit_train: Option<usize>,
        #[arg(long)]
        limit_test: Option<usize>,
        /// List this many of the most influential entries.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Draw non-private fraction against kNN top-1 (one line per source, a point per k) as a PNG.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Train a ViT with DINO on procedural images (or an image folder), headless.
    Train(TrainArgs),
    /// Fit centring and whitening of a model's embedding on procedural images (no real image)
    /// and write the model with it.
    Standardise(cli::standardise::StandardiseArgs),
    /// Write one backbone of a training checkpoint as a small model file (config, step, seed and
    /// provenance kept; head and optimiser state dropped), e.g. for models/.
    Export {
        /// The checkpoint (.json or .safetensors of a step).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Export the student instead of the teacher.
        #[arg(long)]
        student: bool,
        /// Output path stem: writes <out>.safetensors and <out>.json.
        #[arg(long)]
        out: PathBuf,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Build evaluation datasets from the offline data.
    #[command(subcommand)]
    Data(DataCommand),
    /// Dense tasks on image files: PCA overlays, in-context, kNN and K-means segmentation.
    #[command(subcommand)]
    Dense(DenseCommand),
}

#[derive(Subcommand)]
enum DataCommand {
    /// A segmentation set with exact masks: emoji (with alpha) pasted onto procedural
    /// backgrounds, several per image; NNNNN.png + NNNNN.mask.png (class ids) + composite.json.
    Composite {
        /// An emoji-datasource-<style> package folder [default: $PROCMEM_DATA/emoji-google].
        #[arg(long)]
        emoji: Option<PathBuf>,
        /// Output folder (an existing set there is refused).
        #[arg(long)]
        out: PathBuf,
        /// Number of images (the first half serves as memory and prompts in `eval seg`).
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Image side in pixels.
        #[arg(long, default_value_t = 128)]
        size: u32,
        /// Objects per image, at most.
        #[arg(long, default_value_t = 3)]
        max_objects: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// Options shared by the dense commands.
#[derive(clap::Args)]
struct DenseArgs {
    /// Feature source (a model path, `random:<preset>` or `pixels`) [default: the bundled model].
    #[arg(long)]
    features: Option<String>,
    /// Patches per image side (the image is resized to grid × patch pixels).
    #[arg(long, default_value_t = procmem::dense::DEFAULT_GRID)]
    grid: usize,
    /// Output folder (file for `segment`).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Subcommand)]
enum DenseCommand {
    /// PCA of patch tokens → RGB overlays with one basis shared by all the images, and the first
    /// component thresholded as a foreground mask.
    Pca {
        images: Vec<PathBuf>,
        #[command(flatten)]
        args: DenseArgs,
        #[arg(long, default_value_t = 0.7)]
        opacity: f32,
        /// Foreground threshold on the first component (scaled to [0, 1]).
        #[arg(long, default_value_t = 0.5)]
        threshold: f32,
    },
    /// In-context segmentation: prompt image(s) with mask(s) → the query's soft mask (PNG).
    Segment {
        /// Prompt image; repeat with a --prompt-mask for each.
        #[arg(long, required = true)]
        prompt: Vec<PathBuf>,
        /// The prompt's mask (white = object).
        #[arg(long, required = true)]
        prompt_mask: Vec<PathBuf>,
        #[arg(long)]
        query: PathBuf,
        /// The query's true mask: prints soft and thresholded IoU.
        #[arg(long)]
        truth: Option<PathBuf>,
        #[arg(long, default_value_t = 0.2)]
        threshold: f32,
        /// Multiplies the attention logits ⟨z_prompt, z_query⟩ / C. 1 is the paper's scale, nearly
        /// uniform attention for the small CPU models; 10 focuses it (`eval seg` keeps 1).
        #[arg(long, default_value_t = 10.0)]
        sharpness: f32,
        #[command(flatten)]
        args: DenseArgs,
    },
    /// K-means clusters of each image's patch tokens, drawn over it.
    Kmeans {
        images: Vec<PathBuf>,
        #[command(flatten)]
        args: DenseArgs,
        #[arg(long, default_value_t = 4)]
        k: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// kNN segmentation: a patch memory from a composite set's first images labels each image's
    /// patches.
    Knn {
        images: Vec<PathBuf>,
        /// The composite set giving labelled patches.
        #[arg(long)]
        data: PathBuf,
        /// How many of its images make the memory.
        #[arg(long, default_value_t = 100)]
        memory_images: usize,
        /// Vote of the k most similar patches (softmax of cos/0.02) instead of the paper's
        /// attention over all memory patches.
        #[arg(long)]
        top_k: Option<usize>,
        #[command(flatten)]
        args: DenseArgs,
    },
}

#[derive(clap::Args)]
struct TrainArgs {
    /// A TOML training config (see docs/training.md); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output folder for checkpoints and metrics.jsonl.
    #[arg(long)]
    out: PathBuf,
    /// Resume from this checkpoint (its config is used; --steps may extend it).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Architecture preset (cpu-tiny, cpu-small, micro, vit-tiny, vit-small, vit-base).
    #[arg(long)]
    preset: Option<String>,
    /// Data process for the procedural stream.
    #[arg(long, value_enum)]
    process: Option<Process>,
    /// Train on real images under this folder instead (a baseline; not procedural).
    #[arg(long)]
    folder: Option<PathBuf>,
    #[arg(long)]
    steps: Option<u64>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Data process.
    #[arg(long, value_enum)]
    process: Option<Process>,
    /// Number of images.
    #[arg(long, default_value_t = 64)]
    count: u64,
    /// Image side in pixels [default: 64].
    #[arg(long)]
    size: Option<u32>,
    /// Seed: the same seed gives the same images.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// A TOML generator config (see docs/generators.md); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// K-means Leaves: clusters [default: 2].
    #[arg(long)]
    kml_k: Option<usize>,
    /// K-means Leaves: Lloyd iterations [default: 3].
    #[arg(long)]
    kml_iterations: Option<usize>,
    /// K-means Leaves: box-blur size [default: 3].
    #[arg(long)]
    kml_blur: Option<usize>,
    /// K-means Leaves: clustering resolution [default: 256].
    #[arg(long)]
    kml_resolution: Option<u32>,
    /// Synthesized programs in the pool [default: 16].
    #[arg(long)]
    synthesized: Option<usize>,
}

#[derive(Subcommand)]
enum MemoryCommand {
    /// Embed labelled images into a new memory file.
    Build {
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
    },
    /// Entries per class, model fingerprint, size.
    Info { memory: PathBuf },
    /// Neighbours and vote for query images; optionally export them as visual-memory JSON.
    Query {
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
    },
    /// Delete entries by id; their bytes leave the file.
    Delete {
        memory: PathBuf,
        #[arg(long = "id", required = true)]
        ids: Vec<u64>,
    },
}

/// The feature sources of an evaluation, and where its report goes.
#[derive(clap::Args)]
struct Sources {
    /// Feature sources: a checkpoint / model path (`student:PATH` for a checkpoint's student),
    /// `random:<preset>` (random-init ViT, seed 0) or `pixels`. Repeatable.
    #[arg(long = "features", required = true)]
    features: Vec<String>,
    /// Write the Markdown report here as well.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Leave out the raw-pixel and random-init baselines.
    #[arg(long)]
    no_baselines: bool,
}

#[derive(Subcommand)]
enum EvalCommand {
    /// kNN classification (train = memory, test = queries): top-1 for each k, with per-class
    /// accuracy and confusion under --details, for models and the two baselines. Embeddings are
    /// cached per model fingerprint in $PROCMEM_DATA/cache/embeddings.
    Knn {
        #[command(flatten)]
        set: cli::eval::SetArgs,
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
    },
    /// Linear probe beside kNN (the paper's Table 5): logistic regression on frozen embeddings.
    Probe {
        #[command(flatten)]
        set: cli::eval::SetArgs,
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
        set: cli::eval::SetArgs,
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

#[derive(Subcommand)]
enum BenchCommand {
    /// Images per second for every process at each size.
    Generate {
        /// Image sizes.
        #[arg(long, value_delimiter = ',', default_value = "64,128,224")]
        sizes: Vec<u32>,
        /// Seconds measured per cell (after a warm-up batch).
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Processes (default: all).
        #[arg(long, value_enum, value_delimiter = ',')]
        processes: Vec<Process>,
        /// Also measure KML processes with the clustering resolution equal to the image size.
        #[arg(long)]
        kml_at_output_resolution: bool,
    },
    /// Memory search, unlearning and privacy speed on clustered vectors (the same files
    /// tools/bench_memory_faiss.py gives faiss), and optionally a very large memory.
    Memory {
        /// Folder with base.npy and queries.npy (written on first use).
        #[arg(long, default_value = "target/bench-memory")]
        data: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        entries: usize,
        #[arg(long, default_value_t = 1_000)]
        queries: usize,
        #[arg(long, default_value_t = 384)]
        dim: usize,
        #[arg(long, default_value_t = 10)]
        k: usize,
        #[arg(long, default_value_t = 100)]
        ef_construction: usize,
        #[arg(long, default_value_t = 100)]
        ef_search: usize,
        /// Also build a memory of this many random entries (e.g. 1000000): add, search, delete, save, reopen.
        #[arg(long)]
        large: Option<usize>,
        /// Skip the search/unlearning/privacy part (only --large).
        #[arg(long)]
        only_large: bool,
        /// Skip the HNSW measurement (its deterministic one-thread build takes minutes).
        #[arg(long)]
        no_hnsw: bool,
    },
    /// Seconds per DINO training step and embedding images/s, on synthetic batches (no data
    /// loading), for a training config. Counterpart: tools/bench_train_torch.py.
    Train {
        /// A TOML training config; default: the built-in CPU config (cpu-tiny, batch 64).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Timed steps after one warm-up step.
        #[arg(long, default_value_t = 5)]
        steps: u64,
        /// Batch size of the embedding measurement.
        #[arg(long, default_value_t = 256)]
        embed_batch: usize,
    },
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<GeneratorConfig>(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => GeneratorConfig::default(),
    };
    if let Some(p) = args.process {
        config.process = p;
    }
    if let Some(s) = args.size {
        config.size = s;
    }
    if let Some(v) = args.kml_k {
        config.kml.k = v;
    }
    if let Some(v) = args.kml_iterations {
        config.kml.iterations = v;
    }
    if let Some(v) = args.kml_blur {
        config.kml.blur = v;
    }
    if let Some(v) = args.kml_resolution {
        config.kml.resolution = v;
    }
    if let Some(v) = args.synthesized {
        config.synthesized = v;
    }
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    let mut generator = Generator::open_default(config)?;
    eprintln!("rendering on {}", generator.renderer().adapter());
    let bar = progress_bar(args.count, generator.config().process.cli_name());
    let m = manifest::write_set(&mut generator, args.seed, args.count, &args.out, |done, _| {
        bar.set_position(done);
        true
    })?;
    bar.finish();
    eprintln!("wrote {} images and {}", m.count, args.out.join(manifest::MANIFEST_FILE).display());
    Ok(())
}

fn programs(compile: bool) -> anyhow::Result<()> {
    let library = ProgramLibrary::load(ProgramLibrary::default_user_dir().as_deref());
    let mut renderer = if compile { Some(procmem::generate::gpu::GpuRenderer::new()?) } else { None };
    let mut failures = library.rejected.len();
    for p in &library.programs {
        let status = match renderer.as_mut().map(|r| r.pipeline(p)) {
            Some(Err(e)) => {
                failures += 1;
                format!("FAILED: {e}")
            }
            _ => "ok".to_string(),
        };
        let params: Vec<&str> = p.params.iter().map(|q| q.name.as_str()).collect();
        println!("{:<28} {:<10} {:<34} [{}] {}", p.id, p.family, p.name, params.join(", "), status);
    }
    for r in &library.rejected {
        println!("{:<28} SKIPPED\n{}", r.id, r.message);
    }
    println!("{} programs, {} skipped", library.programs.len(), failures);
    Ok(())
}

fn bench_generate(sizes: Vec<u32>, seconds: f64, processes: Vec<Process>, kml_at_output: bool) -> anyhow::Result<()> {
    let processes = if processes.is_empty() { Process::ALL.to_vec() } else { processes };
    let mut generator = Generator::open_default(GeneratorConfig::default())?;
    println!("adapter: {}", generator.renderer().adapter());
    println!("threads: {}", rayon::current_num_threads());
    println!("| process | size | KML clustering res. | images | seconds | images/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    for &process in &processes {
        for &size in &sizes {
            let mut variants = vec![GeneratorConfig { process, size, ..Default::default() }];
            if kml_at_output && matches!(process, Process::ShadersKml | Process::KmlMixup) {
                let mut c = variants[0].clone();
                c.kml.resolution = size;
                variants.push(c);
            }
            for config in variants {
                let row = bench::measure(&mut generator, config, seconds)?;
                println!(
                    "| {} | {} | {} | {} | {:.1} | {:.0} |",
                    row.process.label(),
                    row.size,
                    row.kml_resolution.map_or("–".to_string(), |r| r.to_string()),
                    row.images,
                    row.seconds,
                    row.images_per_second
                );
            }
        }
    }
    for &size in &sizes {
        let row = bench::measure_kml_compose(256, size, seconds);
        println!(
            "| KML compose only (CPU, pre-rendered inputs) | {} | 256 | {} | {:.1} | {:.0} |",
            row.size, row.images, row.seconds, row.images_per_second
        );
    }
    Ok(())
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
    use procmem::train::{DataSource, TrainConfig, TrainEvent, Trainer};
    let mut trainer = match &args.resume {
        Some(ckpt) => {
            let mut t = Trainer::resume(ckpt, &args.out)?;
            if let Some(steps) = args.steps {
                t.cfg.steps = steps;
            }
            eprintln!("resuming at step {} of {}", t.step, t.cfg.steps);
            t
        }
        None => {
            let mut cfg = match &args.config {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                    toml::from_str::<TrainConfig>(&text).with_context(|| format!("parsing {}", path.display()))?
                }
                None => TrainConfig::default(),
            };
            if let Some(p) = &args.preset {
                cfg.preset = p.clone();
                cfg.vit = None;
            }
            if let Some(p) = args.process {
                let mut generator = match &cfg.data {
                    DataSource::Procedural { generator } => generator.clone(),
                    DataSource::Folder { .. } => GeneratorConfig::default(),
                };
                generator.process = p;
                cfg.data = DataSource::Procedural { generator };
            }
            if let Some(folder) = &args.folder {
                cfg.data = DataSource::Folder { path: folder.clone() };
            }
            if let Some(v) = args.steps {
                cfg.steps = v;
            }
            if let Some(v) = args.batch_size {
                cfg.batch_size = v;
            }
            if let Some(v) = args.seed {
                cfg.seed = v;
            }
            Trainer::new(cfg, &args.out)?
        }
    };
    std::fs::create_dir_all(&args.out)?;
    procmem::fsio::write_atomic(&args.out.join("config.toml"), toml::to_string(&trainer.cfg)?.as_bytes())?;
    let bar = progress_bar(trainer.cfg.steps, "train");
    bar.set_position(trainer.step);
    let cancel = std::sync::atomic::AtomicBool::new(false);
    trainer.run(&cancel, |event| match event {
        TrainEvent::Step(m) => {
            bar.set_position(m.step);
            bar.set_message(format!(
                "loss {:.4} lr {:.2e} H(teacher) {:.2} {:.1} img/s",
                m.loss, m.lr, m.teacher_entropy, m.images_per_second
            ));
        }
        TrainEvent::Checkpoint(p) => bar.println(format!("checkpoint {}", p.display())),
        TrainEvent::Crops(_) => {}
    })?;
    bar.finish();
    Ok(())
}

/// Training allocates and frees many large tensors per step. By default glibc serves each from
/// fresh mmap'd pages that the kernel must zero on first touch (measured: ~20% of a training
/// step in `clear_page`). Keeping large blocks on the heap lets them be reused.
fn keep_large_allocations() {
    if std::env::var_os("PROCMEM_DEFAULT_MALLOC").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables; called once before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn bench_train(config: Option<PathBuf>, steps: u64, embed_batch: usize) -> anyhow::Result<()> {
    use candle_core::{Device, Tensor};
    use procmem::train::augment::Crops;
    use procmem::train::data::PreparedBatch;
    use procmem::train::{TrainConfig, Trainer};
    let cfg = match config {
        Some(path) => toml::from_str::<TrainConfig>(&std::fs::read_to_string(&path)?)?,
        None => TrainConfig::default(),
    };
    let vit = cfg.vit_config()?;
    let dir = tempfile_dir()?;
    let mut trainer = Trainer::new(cfg.clone(), &dir)?;
    let b = cfg.batch_size;
    let (g, l) = (cfg.augment.global_size as usize, cfg.augment.local_size as usize);
    let randn = |n: usize, s: usize| Tensor::randn(0f32, 1.0, (n, 3, s, s), &Device::Cpu);
    let batch = PreparedBatch {
        step: 0,
        global: vec![randn(b, g)?, randn(b, g)?],
        local: (0..cfg.augment.local_crops).map(|_| randn(b, l)).collect::<candle_core::Result<Vec<_>>>()?,
        preview: Crops { global: vec![], local: vec![] },
        skipped: 0,
    };
    println!(
        "threads: {} (rayon), model {} (dim {}, depth {}, heads {}, patch {}), batch {b}, crops 2x{g}² + {}x{l}², out_dim {}",
        rayon::current_num_threads(),
        cfg.preset,
        vit.embed_dim,
        vit.depth,
        vit.num_heads,
        vit.patch_size,
        cfg.augment.local_crops,
        cfg.head.out_dim
    );
    trainer.train_step(&batch)?;
    let mut total = (0.0, 0.0, 0.0, 0.0);
    for _ in 0..steps {
        let m = trainer.train_step(&batch)?;
        total.0 += m.seconds;
        total.1 += m.forward_seconds;
        total.2 += m.backward_seconds;
        total.3 += m.update_seconds;
    }
    let n = steps as f64;
    println!(
        "train step: {:.3} s (forward {:.3} s, backward {:.3} s, update {:.3} s) = {:.1} images/s",
        total.0 / n,
        total.1 / n,
        total.2 / n,
        total.3 / n,
        b as f64 * n / total.0
    );
    let (model, _) = procmem::model::weights::new_backbone(&vit, 0)?;
    let x = randn(embed_batch, vit.img_size)?;
    let images_per_second = |f: &dyn Fn() -> candle_core::Result<()>| -> anyhow::Result<f64> {
        f()?;
        let start = std::time::Instant::now();
        let reps = 3;
        for _ in 0..reps {
            f()?;
        }
        Ok(embed_batch as f64 * reps as f64 / start.elapsed().as_secs_f64())
    };
    // The CLS embedding is what memories store; the patch tokens are for dense tasks only.
    let cls = images_per_second(&|| model.embedding(&x).map(drop))?;
    let all = images_per_second(&|| model.embed(&x).map(drop))?;
    println!("embedding: {cls:.1} images/s at {}² (batch {embed_batch}, forward only, CLS embedding)", vit.img_size);
    println!("embedding with patch tokens: {all:.1} images/s (every token through the last block)");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("procmem-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn memory_command(cmd: MemoryCommand) -> anyhow::Result<()> {
    use procmem::embed::FeatureSource;
    use procmem::memory::{Memory, import};
    match cmd {
        MemoryCommand::Build { features, folder, csv, idx_images, idx_labels, fashion_mnist_names, npz, split, limit, strict, out } => {
            let source = FeatureSource::from_spec(&features)?;
            let fingerprint = source.fingerprint();
            let mut memory: Option<Memory> = None;
            let mut skipped = Vec::new();
            let mut add = |items: Vec<import::ImportItem>| -> anyhow::Result<()> {
                let images: Vec<image::RgbImage> = items.iter().map(|i| i.image.clone()).collect();
                let (emb, dim) = source.embed_rgb(&images, |_| {})?;
                let m = memory.get_or_insert_with(|| Memory::new(&fingerprint, dim));
                for (item, e) in items.iter().zip(emb.chunks_exact(dim)) {
                    m.add(&fingerprint, &item.label, &item.source, item.content_hash, import::thumbnail_png(&item.image, 48), e.to_vec())?;
                }
                Ok(())
            };
            let limit = limit.unwrap_or(usize::MAX);
            let in_memory_items = match (&folder, &csv, &idx_images, &npz) {
                (Some(_), None, None, None) | (None, Some(_), None, None) => None,
                (None, None, Some(images), None) => {
                    let labels = idx_labels.as_deref().context("--idx-images needs --idx-labels")?;
                    let names: &[&str] = if fashion_mnist_names { &procmem::datasets::FASHION_MNIST_CLASSES } else { &[] };
                    Some(import::load_idx(images, labels, names)?)
                }
                (None, None, None, Some(npz)) => Some(import::load_npz(npz, &split)?),
                _ => bail!("give exactly one of --folder, --csv, --idx-images, --npz"),
            };
            match in_memory_items {
                Some(mut items) => {
                    items.truncate(limit);
                    let bar = progress_bar(items.len() as u64, "embed");
                    while !items.is_empty() {
                        let rest = items.split_off(items.len().min(512));
                        bar.inc(items.len() as u64);
                        add(std::mem::replace(&mut items, rest))?;
                    }
                    bar.finish_and_clear();
                }
                None => {
                    let (mut files, bad_lines) = match (&folder, &csv) {
                        (Some(dir), _) => (import::list_image_folder(dir)?, Vec::new()),
                        (_, Some(csv)) => import::list_csv(csv)?,
                        _ => unreachable!("checked above"),
                    };
                    files.truncate(limit);
                    skipped.extend(bad_lines);
                    let bar = progress_bar(files.len() as u64, "import");
                    for chunk in files.chunks(512) {
                        let (items, bad) = import::load(chunk);
                        skipped.extend(bad);
                        add(items)?;
                        bar.inc(chunk.len() as u64);
                    }
                    bar.finish_and_clear();
                }
            }
            for s in &skipped {
                eprintln!("  skipped {}: {}", s.source, s.reason);
            }
            if strict && !skipped.is_empty() {
                bail!("--strict: {} file(s) skipped (listed above); {} was not written", skipped.len(), out.display());
            }
            let memory = memory.context("no readable images to import")?;
            memory.save(&out)?;
            eprintln!("{} entries written to {} ({} skipped)", memory.len(), out.display(), skipped.len());
            Ok(())
        }
        MemoryCommand::Query { memory, features, images, k, json, hnsw } => {
            use procmem::memory::{Answer, ExactIndex, NeighbourRecord, VoteRule, query::write_records};
            if k == 0 {
                bail!("--k 0 asks for no neighbours: give k ≥ 1 (10 is the default)");
            }
            let m = Memory::open(&memory)?;
            if m.is_empty() {
                bail!("{} is empty (no entries): there is nothing to search (build one with `procmem memory build`)", memory.display());
            }
            if k > m.len() {
                eprintln!("note: k = {k} but {} holds {} entries: all of them are listed", memory.display(), m.len());
            }
            let source = FeatureSource::from_spec(&features)?;
            if source.fingerprint() != m.model_fingerprint {
                bail!(
                    "{} was embedded by model {}, but --features {features} is model {}: embeddings of different models never mix",
                    memory.display(),
                    m.model_fingerprint,
                    source.fingerprint()
                );
            }
            let labels = m.labels();
            let index = ExactIndex::build(&m, &labels);
            let graph = if hnsw { Some(procmem::memory::HnswIndex::build(&index, Default::default())?) } else { None };
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
                let predicted = answer.vote.prediction.map_or("-".to_string(), |c| labels[c as usize].clone());
                println!("{}: {predicted}", path.display());
                for n in &answer.neighbours {
                    let e = m.get(n.id).context("neighbour in memory")?;
                    println!("  #{:<6} {:<14} similarity {:.4}  {}", n.id, labels[n.label as usize], n.similarity, e.source);
                }
                records.push(NeighbourRecord::new(&source.name(), &path.display().to_string(), None, &answer.neighbours, &labels));
            }
            if let Some(json) = json {
                write_records(&json, &records)?;
                eprintln!("neighbour records written to {}", json.display());
            }
            Ok(())
        }
        MemoryCommand::Info { memory } => {
            let m = Memory::open(&memory)?;
            println!("{}: {} entries, dimension {}, model {}", memory.display(), m.len(), m.dim, m.model_fingerprint);
            for label in m.labels() {
                println!("  {label}: {}", m.entries.iter().filter(|e| e.label == label).count());
            }
            Ok(())
        }
        MemoryCommand::Delete { memory, ids } => {
            let mut m = Memory::open(&memory)?;
            for id in &ids {
                if m.delete(*id).is_none() {
                    bail!("no entry {id} in {} (nothing was changed)", memory.display());
                }
            }
            m.save(&memory)?;
            eprintln!("deleted {} entr{}; {} remain", ids.len(), if ids.len() == 1 { "y" } else { "ies" }, m.len());
            Ok(())
        }
    }
}

fn main() {
    keep_large_allocations();
    if let Err(e) = run() {
        // One clear message with its causes; no backtrace for user errors.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,procmem=info")).init();
    let cli = Cli::parse();
    match cli.command {
        None | Some(Command::App) => procmem::app::run(),
        Some(Command::Generate(args)) => generate(args),
        Some(Command::Regenerate { manifest: path, out }) => {
            let bar = progress_bar(0, "regenerate");
            let (m, written) = manifest::regenerate(&path, &out, |done, total| {
                bar.set_length(total);
                bar.set_position(done);
                true
            })?;
            bar.finish();
            eprintln!("regenerated {} images; manifest at {}", m.count, written.display());
            Ok(())
        }
        Some(Command::Programs { compile }) => programs(compile),
        Some(Command::Train(args)) => train(args),
        Some(Command::Memory(cmd)) => memory_command(cmd),
        Some(Command::Eval(EvalCommand::Knn {
            set,
            sources: Sources { features, report, no_baselines },
            k,
            limit_train,
            limit_test,
            results,
            details,
        })) => cli::eval::knn(cli::eval::KnnArgs {
            set,
            features,
            ks: k,
            limit_train,
            limit_test,
            report,
            results,
            baselines: !no_baselines,
            details,
        }),
        Some(Command::Eval(EvalCommand::Probe { set, sources: Sources { features, report, no_baselines }, k, results })) => {
            cli::eval::probe(cli::eval::ProbeArgs { set, features, ks: k, report, results, baselines: !no_baselines })
        }
        Some(Command::Eval(EvalCommand::Unlearn { set, features, k, class, report })) => {
            cli::eval::unlearn(set, features, k, class, report)
        }
        Some(Command::Eval(EvalCommand::Retrieval { queries, gallery, sources: Sources { features, report, no_baselines } })) => {
            cli::eval::retrieval(queries, gallery, features, report, !no_baselines)
        }
        Some(Command::Eval(EvalCommand::TwoAfc { csv, split, sources: Sources { features, report, no_baselines } })) => {
            cli::eval::two_afc(csv, split, features, report, !no_baselines)
        }
        Some(Command::Eval(EvalCommand::Seg { data, sources: Sources { features, report, no_baselines }, grid, limit })) => {
            cli::dense::eval_seg(data, features, report, !no_baselines, grid, limit)
        }
        Some(Command::Data(DataCommand::Composite { emoji, out, count, size, max_objects, seed })) => {
            let cfg = procmem::dense::composite::CompositeConfig { count, size, max_objects, seed, ..Default::default() };
            cli::dense::composite(emoji, out, cfg)
        }
        Some(Command::Dense(DenseCommand::Pca { images, args, opacity, threshold })) => {
            cli::dense::pca(images, args.features, args.out, args.grid, opacity, threshold)
        }
        Some(Command::Dense(DenseCommand::Segment { prompt, prompt_mask, query, truth, threshold, sharpness, args })) => {
            cli::dense::segment(prompt, prompt_mask, query, truth, args.features, args.out, args.grid, threshold, sharpness)
        }
        Some(Command::Dense(DenseCommand::Kmeans { images, args, k, seed })) => {
            cli::dense::kmeans_cmd(images, args.features, args.out, args.grid, k, seed)
        }
        Some(Command::Dense(DenseCommand::Knn { images, data, memory_images, top_k, args })) => {
            cli::dense::knn_cmd(data, memory_images, images, args.features, args.out, args.grid, top_k)
        }
        Some(Command::Standardise(args)) => args.run(),
        Some(Command::Export { checkpoint, student, out }) => {
            use procmem::model::weights::{Which, export_backbone};
            let which = if student { Which::Student } else { Which::Teacher };
            let fp = export_backbone(&checkpoint, which, &out)?;
            eprintln!(
                "exported the {} backbone of {} to {} (fingerprint {fp})",
                if student { "student" } else { "teacher" },
                checkpoint.display(),
                out.display()
            );
            Ok(())
        }
        Some(Command::Privacy { set, sources: Sources { features, report, no_baselines }, k, limit_train, limit_test, top, plot }) => {
            cli::eval::privacy(cli::eval::PrivacyArgs {
                set,
                features,
                ks: k,
                limit_train,
                limit_test,
                top,
                report,
                plot,
                baselines: !no_baselines,
            })
        }
        Some(Command::Bench(BenchCommand::Memory {
            data,
            entries,
            queries,
            dim,
            k,
            ef_construction,
            ef_search,
            large,
            only_large,
            no_hnsw,
        })) => {
            use procmem::memory::{HnswParams, bench};
            let mut log = |m: &str| eprintln!("{m}");
            let mut md = String::from("| measurement | time | result |\n|---|---|---|\n");
            if !only_large {
                let (base, q, d) = bench::bench_vectors(&data, entries, queries, dim)?;
                let params = HnswParams { ef_construction, ef_search, seed: 0 };
                md += &bench::run(&base, &q, d, k, (!no_hnsw).then_some(params), &mut log)?;
            }
            if let Some(n) = large {
                std::fs::create_dir_all(&data)?;
                md += &bench::large(n, dim, &data, &mut log)?;
            }
            println!("{md}");
            Ok(())
        }
        Some(Command::Bench(BenchCommand::Train { config, steps, embed_batch })) => bench_train(config, steps, embed_batch),
        Some(Command::Bench(BenchCommand::Generate { sizes, seconds, processes, kml_at_output_resolution })) => {
            bench_generate(sizes, seconds, processes, kml_at_output_resolution)
        }
    }
}
