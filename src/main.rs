//! The `procmem` binary: the app (no arguments) and a headless CLI for every job.

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(
    name = "procmem",
    version,
    about = "A vision model that never saw a real photo, and an editable visual memory of real images."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the desktop app (the default without a command).
    App,
    /// Generate a set of procedural images (PNGs and a manifest.json that regenerates them).
    Generate(cli::generate::GenerateArgs),
    /// Regenerate a set exactly from its manifest.json.
    Regenerate(cli::regenerate::RegenerateArgs),
    /// List the procedural programs, compile every one, and report those that fail.
    Programs(cli::programs::ProgramsArgs),
    /// Build, inspect and edit visual memories.
    #[command(subcommand)]
    Memory(cli::memory::MemoryCommand),
    /// Evaluations with the paper's protocols.
    #[command(subcommand)]
    Eval(cli::eval::EvalCommand),
    /// Which memory entries would change a prediction if removed alone (a built-in set, train =
    /// memory and test = queries, or your own --memory/--memory-data and --queries), for each k,
    /// with the two baselines.
    Privacy(cli::eval::PrivacyArgs),
    /// Train a ViT with DINO on procedural images (or an image folder), headless.
    Train(cli::train::TrainArgs),
    /// Choose how a model's tokens are pooled into its embedding (CLS or a patch grid) and fit
    /// centring and whitening of that embedding on procedural images (no real image); write the
    /// model with both.
    Standardise(cli::standardise::StandardiseArgs),
    /// Write one backbone of a training checkpoint as a small model file (config, step, seed and
    /// provenance kept; head and optimiser state dropped), e.g. for models/.
    Export(cli::export::ExportArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
    /// Build evaluation datasets from the offline data.
    #[command(subcommand)]
    Data(cli::data::DataCommand),
    /// Dense tasks on image files: PCA overlays, in-context, kNN and K-means segmentation.
    #[command(subcommand)]
    Dense(cli::dense::DenseCommand),
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

/// A closed pipe (`procmem memory info M | head -1`) ends the process quietly, as it does for
/// other command-line tools, instead of `println!` panicking on EPIPE.
fn die_quietly_on_closed_pipe() {
    // SAFETY: restores the default disposition of one signal; called once before other threads.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() {
    keep_large_allocations();
    die_quietly_on_closed_pipe();
    if let Err(e) = run() {
        // One clear message with its causes; no backtrace for user errors.
        eprintln!("error: {}", with_causes(&e));
        std::process::exit(1);
    }
}

/// `e` and its causes joined by ": ", each cause left out when the text before it already ends
/// with it: procmem's typed errors print their source inline (`{path}: {source}`), and anyhow's
/// `{:#}` would then print it twice.
fn with_causes(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.is_empty() && out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out += ": ";
        }
        out += &text;
    }
    out
}

fn run() -> anyhow::Result<()> {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,procmem=info"),
    )
    .init();
    let cli = Cli::parse();
    match cli.command {
        None | Some(Command::App) => procmem::app::run(),
        Some(Command::Generate(args)) => args.run(),
        Some(Command::Regenerate(args)) => args.run(),
        Some(Command::Programs(args)) => args.run(),
        Some(Command::Train(args)) => args.run(),
        Some(Command::Memory(cmd)) => cmd.run(),
        Some(Command::Eval(cmd)) => cmd.run(),
        Some(Command::Data(cmd)) => cmd.run(),
        Some(Command::Dense(cmd)) => cmd.run(),
        Some(Command::Standardise(args)) => args.run(),
        Some(Command::Export(args)) => args.run(),
        Some(Command::Privacy(args)) => args.run(),
        Some(Command::Bench(cmd)) => cmd.run(),
    }
}
