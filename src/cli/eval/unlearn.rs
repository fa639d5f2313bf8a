//! `procmem eval unlearn`: delete every memory entry of a class, compare all predictions before
//! and after.

use super::*;

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
