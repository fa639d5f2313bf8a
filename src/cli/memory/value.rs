//! `procmem memory value`: exact KNN-Shapley data values of every entry.

use super::*;

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
            memory: path,
            queries,
            k,
            show,
            csv,
            flip_labels,
            seed,
        } = self;
        use procmem::memory::value::knn_shapley;
        let (memory, labels, mut index, flat, truths) = memory_and_queries(&path, &queries)?;
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
}
