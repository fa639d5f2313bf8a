//! `procmem bench generate | memory | train`: the benchmark commands (docs/benchmarks.md), one
//! file each.

mod generate;
mod memory;
mod train;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Images per second for every process at each size.
    Generate(generate::BenchGenerateArgs),
    /// Memory search, unlearning and privacy speed on clustered vectors (the same files
    /// tools/bench_memory_faiss.py gives faiss), and optionally a very large memory.
    Memory(memory::BenchMemoryArgs),
    /// Seconds per DINO training step and embedding images/s, on synthetic batches (no data
    /// loading), for a training config. Counterpart: tools/bench_train_torch.py.
    Train(train::BenchTrainArgs),
}

impl BenchCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            BenchCommand::Generate(args) => args.run(),
            BenchCommand::Memory(args) => args.run(),
            BenchCommand::Train(args) => args.run(),
        }
    }
}
