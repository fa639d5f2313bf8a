//! The Memory panel: the visual memory as a virtualised thumbnail grid (only visible rows are
//! decoded, so 100k entries scroll smoothly), counts and a filter per class, selection, delete
//! (= unlearn) with undo, and adding images by drag-and-drop or the file dialog.

use egui::{Color32, RichText};

use super::jobs::Job;
use super::knowledge::{IMAGE_EXTENSIONS, Knowledge, NewEntry, dropped_files, embed_images};

type AddResult = (Vec<NewEntry>, Vec<String>);
/// What the grid's order depends on: (memory generation, class filter, by value, by harm).
type GridKey = (u64, Option<String>, bool, bool);

#[derive(Default)]
pub struct MemoryPanel {
    /// Show only this class.
    pub filter: Option<String>,
    pub selected: Option<u64>,
    /// Label given to added images.
    pub new_label: String,
    add_job: Option<Job<AddResult>>,
    pub message: String,
    /// Ask the Query panel to query with this entry.
    /// Commands for the app, taken once per frame ([`super::Panel::show`]).
    outbox: Vec<super::AppCommand>,
    /// The grid's entry ids for (memory generation, filter, sorted by value, sorted by harm):
    /// rebuilt only when one of them changes.
    shown: Option<(GridKey, Vec<u64>)>,
    /// KNN-Shapley values over the watch list (memory generation they were computed at, values).
    pub values: Option<(u64, std::collections::HashMap<u64, f64>)>,
    values_job: Option<Job<std::collections::HashMap<u64, f64>>>,
    audit_job: Option<Job<(crate::eval::audit::Certificate, std::path::PathBuf)>>,
    folder_eval_job: Option<Job<Vec<String>>>,
    /// The last "Evaluate on a labelled folder" report.
    pub folder_eval_report: Vec<String>,
    /// The last audit's verdict lines.
    pub audit_report: Vec<String>,
    /// Folders the audit scans instead of procmem's own (the user data folder and the
    /// evaluation cache) when set.
    pub audit_scan: Option<Vec<std::path::PathBuf>>,
    /// Order the grid by data value, lowest (most harmful) first.
    pub sort_by_value: bool,
    /// The last pruning experiment over the watch list (memory generation it ran at, plan).
    pub prune: Option<(u64, crate::memory::prune::PrunePlan)>,
    prune_job: Option<Job<(u64, crate::memory::prune::PrunePlan)>>,
    /// Order the grid by pruning evidence (hurt − helped), most harmful first.
    pub sort_by_harm: bool,
    /// Override the deny-list: images unlearned from this memory may be added again.
    pub allow_unlearned: bool,
    /// Near-duplicates left behind by the last deletion: (deleted id, memory generation after
    /// it, the duplicates).
    pub near_duplicates: Option<(u64, u64, Vec<crate::memory::NearDuplicate>)>,
}

const THUMB: f32 = 56.0;

/// The watched queries with a known class: embeddings (`n × dim`) and classes.
fn labelled_watched(k: &Knowledge) -> (Vec<f32>, Vec<u32>) {
    let labelled = k
        .watch()
        .queries
        .iter()
        .filter_map(|q| q.truth.map(|t| (q, t)));
    labelled.fold(
        (Vec::new(), Vec::new()),
        |(mut queries, mut truths), (q, t)| {
            queries.extend_from_slice(&q.embedding);
            truths.push(t);
            (queries, truths)
        },
    )
}

impl MemoryPanel {
    /// Unlearns an entry and looks for near-duplicates it leaves behind (offered below Undo).
    pub fn unlearn(&mut self, k: &mut Knowledge, id: u64) {
        let Some(entry) = k.memory().get(id).cloned() else {
            return;
        };
        k.delete(id);
        self.selected = None;
        let dups = crate::memory::near_duplicates(
            k.memory(),
            k.index(),
            &entry.embedding,
            entry.content_hash,
            id,
            crate::memory::NEAR_DUPLICATE_COSINE,
        );
        self.near_duplicates = (!dups.is_empty()).then_some((id, k.generation(), dups));
    }

    fn near_duplicates_ui(&mut self, ui: &mut egui::Ui, k: &mut Knowledge) {
        let Some((id, generation, dups)) = &self.near_duplicates else {
            return;
        };
        if *generation != k.generation() {
            self.near_duplicates = None;
            return;
        }
        let list: Vec<String> = dups
            .iter()
            .map(|d| {
                if d.same_content {
                    format!("#{} (same image)", d.id)
                } else {
                    format!("#{} (cosine {:.3})", d.id, d.similarity)
                }
            })
            .collect();
        ui.label(
            egui::RichText::new(format!(
                "#{id} left {} near-duplicate(s): {}",
                dups.len(),
                list.join(", ")
            ))
            .color(egui::Color32::YELLOW),
        );
        if ui
            .button("Unlearn them too")
            .on_hover_text("One edit; Undo restores them")
            .clicked()
        {
            let ids: Vec<u64> = dups.iter().map(|d| d.id).collect();
            k.delete_many(&ids);
            self.near_duplicates = None;
        }
    }

    pub fn is_busy(&self) -> bool {
        self.add_job.is_some()
    }

    fn start_add(&mut self, ctx: &egui::Context, k: &Knowledge, files: Vec<(String, Vec<u8>)>) {
        if files.is_empty() {
            return;
        }
        let label = if self.new_label.trim().is_empty() {
            "unlabelled".to_string()
        } else {
            self.new_label.trim().to_string()
        };
        let source = k.perception().source.clone();
        self.add_job = Some(Job::spawn(ctx, "embedding", move |h| {
            embed_images(
                &source,
                files,
                &label,
                || h.cancelled(),
                |f, t| h.progress(f, t),
            )
            .map_err(|e| e.to_string())
        }));
    }

    /// Computes the entries' KNN-Shapley values over the labelled watched queries on a worker.
    pub(crate) fn start_values(&mut self, ctx: &egui::Context, k: &Knowledge) {
        let (queries, truths) = labelled_watched(k);
        if truths.is_empty() {
            self.message =
                "data values need labelled watched queries (the watch list has none)".into();
            return;
        }
        let (index, kk, generation) = (k.index().clone(), k.k(), k.generation());
        self.values_job = Some(Job::spawn(ctx, "data values", move |_| {
            let values = crate::memory::value::knn_shapley(&index, &queries, &truths, kk);
            Ok(index.rows().map(|(id, _, _)| id).zip(values).collect())
        }));
        self.values = Some((generation, Default::default()));
    }

    /// The pruning experiment (`procmem memory prune`) over the labelled watched queries on a
    /// worker: every second query chooses the harmful entries, the others judge the accuracy
    /// without them. Nothing is deleted until "Unlearn the harmful entries".
    pub(crate) fn start_prune(&mut self, ctx: &egui::Context, k: &Knowledge) {
        let (queries, truths) = labelled_watched(k);
        if truths.len() < 2 {
            self.message = "pruning needs at least two labelled watched queries (one half chooses, the other judges)".into();
            return;
        }
        let (index, kk, generation, rule) =
            (k.index().clone(), k.k(), k.generation(), k.watch().rule);
        self.prune_job = Some(Job::spawn(ctx, "pruning", move |_| {
            Ok((
                generation,
                crate::memory::prune::plan(
                    &index,
                    &queries,
                    &truths,
                    kk,
                    crate::memory::prune::DEFAULT_MIN_HURT,
                    rule,
                ),
            ))
        }));
    }

    /// The pruning evidence of an entry (helped, hurt), when the plan is for the current memory.
    pub(crate) fn prune_evidence_of(&self, k: &Knowledge, id: u64) -> Option<(usize, usize)> {
        let (generation, plan) = self.prune.as_ref()?;
        if *generation != k.generation() {
            return None;
        }
        Some(
            plan.evidence
                .iter()
                .find(|e| e.id == id)
                .map_or((0, 0), |e| (e.helped, e.hurt)),
        )
    }

    fn prune_ui(&mut self, ui: &mut egui::Ui, k: &mut Knowledge) {
        if let Some(job) = &mut self.prune_job {
            match job.poll() {
                Some(Ok(plan)) => {
                    self.prune_job = None;
                    self.prune = Some(plan);
                }
                Some(Err(e)) => {
                    self.prune_job = None;
                    self.message = format!("pruning: {e}");
                }
                None => {
                    job.ui(ui);
                }
            }
        }
        let fresh = self
            .prune
            .as_ref()
            .is_some_and(|(g, _)| *g == k.generation());
        ui.horizontal(|ui| {
            if ui
                .add_enabled(self.prune_job.is_none(), egui::Button::new("Find harmful entries"))
                .on_hover_text(
                    "Pruning (Geirhos et al. 2024): entries that hurt more watched queries than they helped, chosen by half the labelled watch list and judged on the other half",
                )
                .clicked()
            {
                self.start_prune(ui.ctx(), k);
            }
            if ui.add_enabled(fresh, egui::Checkbox::new(&mut self.sort_by_harm, "most harmful first")).changed() && self.sort_by_harm {
                self.sort_by_value = false;
            }
        });
        let Some((generation, plan)) = &self.prune else {
            return;
        };
        if *generation != k.generation() {
            ui.label(
                RichText::new("the memory changed since the pruning run: run it again")
                    .small()
                    .weak(),
            );
            return;
        }
        let n = plan.harmful.len();
        ui.label(RichText::new(format!(
            "{n} harmful entr{} (hurt at least {} of {} choosing queries, and more than they helped); kNN top-1 on the {} judging queries: {:.1} % with them, {:.1} % without",
            if n == 1 { "y" } else { "ies" },
            crate::memory::prune::DEFAULT_MIN_HURT,
            plan.choosing,
            plan.judging,
            plan.accuracy_before * 100.0,
            plan.accuracy_after * 100.0
        )));
        if n > 0
            && ui
                .button(format!("Unlearn the {n} harmful entries"))
                .on_hover_text("One edit; Undo restores them")
                .clicked()
        {
            let ids = plan.harmful.clone();
            k.delete_many(&ids);
        }
    }

    /// kNN accuracy of the current model and memory on labelled images — an ImageFolder tree
    /// (one sub-folder per class), a CSV of `path,label`, an IDX image file or an `.npz`
    /// ([`crate::memory::import::LabelledSource`]) — on a worker: `procmem eval knn --memory …
    /// --queries PATH` for what is loaded, without the baselines.
    pub fn start_folder_eval(
        &mut self,
        ctx: &egui::Context,
        k: &Knowledge,
        folder: std::path::PathBuf,
    ) {
        let (index, kk, rule) = (k.index().clone(), k.k(), k.watch().rule);
        let source = k.perception().source.clone();
        let labels = k.labels().to_vec();
        self.folder_eval_report.clear();
        self.folder_eval_job = Some(Job::spawn(ctx, "evaluating on a folder", move |h| {
            use crate::memory::import;
            h.progress(0.0, "reading images");
            let (items, skipped) = import::LabelledSource::from_path(&folder)
                .and_then(|s| s.load())
                .map_err(|e| e.to_string())?;
            if items.is_empty() {
                return Err(format!(
                    "{}: no readable labelled image ({} skipped)",
                    folder.display(),
                    skipped.len()
                ));
            }
            let images: Vec<&image::RgbImage> = items.iter().map(|i| &i.image).collect();
            let n = images.len();
            let started = std::time::Instant::now();
            let (queries, _) = source
                .embed_rgb(&images, |done| {
                    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
                    h.progress(
                        done as f32 / n as f32,
                        format!("embedding {done}/{n}, {rate:.0} images/s"),
                    )
                })
                .map_err(|e| e.to_string())?;
            let found = index.search(&queries, kk);
            // Per class: (right, total); classes the memory lacks can only be wrong.
            let mut per_class: std::collections::BTreeMap<&str, (usize, usize)> =
                Default::default();
            for (item, neighbours) in items.iter().zip(&found) {
                let predicted =
                    crate::memory::vote::vote(neighbours, kk, labels.len(), rule).prediction;
                let right = predicted
                    .and_then(|p| labels.get(p as usize))
                    .is_some_and(|l| *l == item.label);
                let c = per_class.entry(item.label.as_str()).or_default();
                c.0 += usize::from(right);
                c.1 += 1;
            }
            let right: usize = per_class.values().map(|c| c.0).sum();
            let mut report = vec![format!(
                "top-1 {:.2} % on {n} images of {} classes from {} (k = {kk})",
                100.0 * right as f64 / n as f64,
                per_class.len(),
                folder.display()
            )];
            for (label, (r, t)) in &per_class {
                let unknown = if labels.iter().any(|l| l == label) {
                    ""
                } else {
                    " (not a class of the memory)"
                };
                report.push(format!(
                    "  {label}: {:.1} % of {t}{unknown}",
                    100.0 * *r as f64 / *t as f64
                ));
            }
            if !skipped.is_empty() {
                report.push(format!(
                    "skipped {}: {}",
                    skipped.len(),
                    skipped
                        .iter()
                        .map(|s| format!("{} ({})", s.source, s.reason))
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
            }
            Ok(report)
        }));
    }

    fn folder_eval_ui(&mut self, ui: &mut egui::Ui, k: &Knowledge) {
        if let Some(job) = &mut self.folder_eval_job {
            match job.poll() {
                Some(Ok(report)) => {
                    self.folder_eval_job = None;
                    self.folder_eval_report = report;
                }
                Some(Err(e)) => {
                    self.folder_eval_job = None;
                    self.folder_eval_report = vec![format!("evaluation: {e}")];
                }
                None => {
                    job.ui(ui);
                }
            }
        }
        if ui
            .add_enabled(
                self.folder_eval_job.is_none(),
                egui::Button::new("Evaluate on a labelled folder…"),
            )
            .on_hover_text(
                "kNN accuracy of this model and memory on a folder with one sub-folder per class",
            )
            .clicked()
            && let Some(folder) = rfd::FileDialog::new().pick_folder()
        {
            self.start_folder_eval(ui.ctx(), k, folder);
        }
        if ui
            .add_enabled(self.folder_eval_job.is_none(), egui::Button::new("…or a labelled file"))
            .on_hover_text("The same on a CSV of path,label lines, an IDX image file (its labels beside it) or a MedMNIST .npz")
            .clicked()
            && let Some(file) = rfd::FileDialog::new().pick_file()
        {
            self.start_folder_eval(ui.ctx(), k, file);
        }
        for line in &self.folder_eval_report {
            ui.label(RichText::new(line).small());
        }
    }

    /// Audits the deletions on the undo stack on a worker (`procmem memory audit`'s three
    /// checks): the memory as it was before them against the memory as it is now (both
    /// snapshots in the temporary folder while the audit runs), the watched queries as the
    /// never-added images; procmem's own folders and the file Save writes are scanned, so an
    /// unsaved deletion is reported as still on disk. The certificate is written to the user
    /// data folder's `audits/`.
    pub(crate) fn start_audit(&mut self, ctx: &egui::Context, k: &Knowledge) {
        // Copies here, serialised on the worker (to_bytes of a large memory takes seconds).
        let (before, now) = (k.memory_before_edits(), k.memory().clone());
        let saved_to = k.memory_path().map(std::path::Path::to_path_buf);
        let mut never =
            crate::memory::Memory::new(k.memory().model_fingerprint(), k.memory().dim());
        for q in &k.watch().queries {
            let _ = never.add(
                k.memory().model_fingerprint(),
                "watched",
                &q.name,
                0,
                Vec::new(),
                q.embedding.clone(),
            );
        }
        let k_vote = k.k();
        let mut scan = self.audit_scan.clone().unwrap_or_else(|| {
            let mut roots = vec![crate::paths::user_data_dir()];
            roots.extend(crate::paths::data_dir().map(|d| d.join("cache")));
            roots
        });
        scan.extend(saved_to);
        let out_dir = match &self.audit_scan {
            Some(roots) => roots.first().cloned().unwrap_or_else(std::env::temp_dir),
            None => crate::paths::user_data_dir().join("audits"),
        };
        self.audit_report.clear();
        self.audit_job = Some(Job::spawn(ctx, "unlearning audit", move |h| {
            let dir = out_dir;
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            // The snapshots live outside the scanned folders only while the audit runs.
            let temp = |what: &str| {
                std::env::temp_dir().join(format!(
                    "procmem-audit-{}-{stamp}-{what}.pmem",
                    std::process::id()
                ))
            };
            let (original, edited) = (temp("before"), temp("now"));
            before.save(&original).map_err(|e| e.to_string())?;
            now.save(&edited).map_err(|e| e.to_string())?;
            let input = crate::eval::audit::AuditInput {
                original: &original,
                edited: &edited,
                never_added: Some(&never),
                scan,
                k: k_vote,
                seed: 0,
            };
            let result = crate::eval::audit::audit(&input, |s| h.progress(0.5, s));
            let _ = std::fs::remove_file(&edited);
            let _ = std::fs::remove_file(&original);
            let cert = result.map_err(|e| e.to_string())?;
            let out = dir.join(format!("certificate-{stamp}.json"));
            let json = serde_json::to_vec_pretty(&cert).map_err(|e| e.to_string())?;
            crate::fsio::write_atomic(&out, &json).map_err(|e| e.to_string())?;
            Ok((cert, out))
        }));
    }

    fn audit_ui(&mut self, ui: &mut egui::Ui, k: &Knowledge) {
        if let Some(job) = &mut self.audit_job {
            match job.poll() {
                Some(Ok((cert, path))) => {
                    self.audit_job = None;
                    let verdict = |ok: bool| if ok { "passed" } else { "FAILED" };
                    let e = &cert.equivalence;
                    let b = &cert.byte_scan;
                    self.audit_report = vec![
                        format!(
                            "{} deleted entries: {}",
                            cert.deleted.len(),
                            verdict(cert.passed)
                        ),
                        format!(
                            "(a) equivalence {}: {} of {} probes differ",
                            verdict(e.passed),
                            e.mismatched_queries.len(),
                            e.probe_queries
                        ),
                        format!(
                            "(b) byte scan {}: {} files, {} finding(s)",
                            verdict(b.passed),
                            b.files,
                            b.findings.len()
                        ),
                    ];
                    self.audit_report.extend(b.findings.iter().take(5).map(|f| {
                        format!("    {} holds the {} of #{}", f.path.display(), f.what, f.id)
                    }));
                    self.audit_report.push(match &cert.membership {
                        Some(m) => format!(
                            "(c) membership {}: AUROC {:.3} ({:.3}–{:.3})",
                            verdict(m.passed),
                            m.auroc_deleted,
                            m.interval_deleted[0],
                            m.interval_deleted[1]
                        ),
                        None => "(c) membership: not run".into(),
                    });
                    self.audit_report
                        .push(format!("certificate: {}", path.display()));
                }
                Some(Err(e)) => {
                    self.audit_job = None;
                    self.audit_report = vec![format!("audit: {e}")];
                }
                None => {
                    job.ui(ui);
                }
            }
        }
        let deleted = k.can_undo();
        if ui
            .add_enabled(self.audit_job.is_none() && deleted, egui::Button::new("Audit the unlearning"))
            .on_hover_text(
                "Certify this session's deletions: equivalence with a rebuilt memory, a byte scan of procmem's files, a membership test",
            )
            .clicked()
        {
            self.start_audit(ui.ctx(), k);
        }
        for line in &self.audit_report {
            let colour = if line.contains("FAILED") {
                Color32::LIGHT_RED
            } else {
                ui.visuals().text_color()
            };
            ui.label(RichText::new(line).small().color(colour));
        }
    }

    fn values_ui(&mut self, ui: &mut egui::Ui, k: &Knowledge) {
        if let Some(job) = &mut self.values_job {
            if let Some(result) = job.poll() {
                self.values_job = None;
                match result {
                    Ok(values) => self.values = Some((k.generation(), values)),
                    Err(e) => {
                        self.values = None;
                        self.message = format!("data values: {e}");
                    }
                }
            } else {
                job.ui(ui);
            }
        }
        let fresh = self
            .values
            .as_ref()
            .is_some_and(|(g, v)| *g == k.generation() && !v.is_empty());
        ui.horizontal(|ui| {
            if ui
                .add_enabled(
                    self.values_job.is_none(),
                    egui::Button::new(if fresh { "Recompute data values" } else { "Compute data values" }),
                )
                .on_hover_text("Exact KNN-Shapley values (Jia et al. 2019) of every entry over the labelled watched queries")
                .clicked()
            {
                self.start_values(ui.ctx(), k);
            }
            if ui.add_enabled(fresh, egui::Checkbox::new(&mut self.sort_by_value, "lowest value first")).changed() && self.sort_by_value {
                self.sort_by_harm = false;
            }
        });
        if self
            .values
            .as_ref()
            .is_some_and(|(g, v)| *g != k.generation() && !v.is_empty())
        {
            ui.label(
                RichText::new("the memory changed since: recompute")
                    .small()
                    .weak(),
            );
        }
    }

    /// The grid's entry ids, in display order (as of the last frame).
    pub fn shown_ids(&self) -> &[u64] {
        self.shown.as_ref().map_or(&[], |(_, ids)| ids.as_slice())
    }

    /// An entry's data value, when computed for the current memory.
    pub fn value_of(&self, k: &Knowledge, id: u64) -> Option<f64> {
        self.values
            .as_ref()
            .filter(|(g, _)| *g == k.generation())
            .and_then(|(_, v)| v.get(&id).copied())
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, k: &mut Knowledge) {
        let ctx = ui.ctx().clone();
        // Finished additions.
        if let Some(job) = &mut self.add_job
            && let Some(result) = job.poll()
        {
            self.add_job = None;
            let allow = self.allow_unlearned;
            match result.and_then(|(entries, skipped)| {
                k.add(entries, allow)
                    .map(|(ids, refused)| (ids, skipped, refused))
            }) {
                Ok((ids, skipped, refused)) => {
                    self.message = format!("added {} image(s)", ids.len());
                    if !skipped.is_empty() {
                        self.message +=
                            &format!("; skipped {}: {}", skipped.len(), skipped.join("; "));
                    }
                    if !refused.is_empty() {
                        self.message += &format!(
                            "; refused {} unlearned earlier (on this memory's deny-list; tick “re-add unlearned images” to override): {}",
                            refused.len(),
                            refused.join("; ")
                        );
                    }
                    self.selected = ids.last().copied();
                }
                Err(e) => self.message = format!("nothing added: {e}"),
            }
        }
        let dropped = dropped_files(&ctx);
        if !dropped.is_empty() && self.add_job.is_none() {
            self.start_add(&ctx, k, dropped);
        }

        egui::Panel::left("memory classes").resizable(true).default_size(230.0).show(ui, |ui| {
            ui.heading("Memory");
            ui.label(format!("{} entries, dimension {}", k.memory().len(), k.memory().dim()));
            ui.label(RichText::new(format!("model {}", k.memory().model_fingerprint())).small().weak());
            ui.label(RichText::new(k.perception().description.clone()).small());
            ui.separator();
            if ui.selectable_label(self.filter.is_none(), format!("all classes ({})", k.memory().len())).clicked() {
                self.filter = None;
            }
            for (label, count) in k.counts() {
                let on = self.filter.as_deref() == Some(label.as_str());
                if ui.selectable_label(on, format!("{label} ({count})")).clicked() {
                    self.filter = if on { None } else { Some(label) };
                }
            }
            ui.separator();
            ui.horizontal(|ui| {
                if ui
                    .add_enabled(k.can_undo(), egui::Button::new("Undo"))
                    .on_hover_text("Restore the last unlearned entry (Ctrl+Z)")
                    .clicked()
                    || (k.can_undo() && ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Z)))
                {
                    k.undo();
                }
                let save = ui.add_enabled(k.is_dirty(), egui::Button::new("Save")).on_hover_text(
                    "Write the memory; deleted entries' bytes leave the file. A bundled memory is saved to your data folder.",
                );
                if save.clicked() {
                    self.message = match k.save() {
                        Ok(p) => format!("saved to {}", p.display()),
                        Err(e) => format!("not saved: {e}"),
                    };
                }
            });
            self.near_duplicates_ui(ui, k);
            self.audit_ui(ui, k);
            ui.separator();
            self.values_ui(ui, k);
            self.prune_ui(ui, k);
            self.folder_eval_ui(ui, k);
            ui.separator();
            ui.label("Add images (drop files here, or):");
            ui.horizontal(|ui| {
                let l = ui.label("label");
                ui.text_edit_singleline(&mut self.new_label).labelled_by(l.id);
            });
            let denied = k.memory().denied_count();
            if denied > 0 {
                ui.checkbox(&mut self.allow_unlearned, format!("re-add unlearned images ({denied} on the deny-list)"))
                    .on_hover_text("Images deleted from this memory are refused when added again, unless this is ticked");
            }
            if ui.add_enabled(self.add_job.is_none(), egui::Button::new("Choose images…")).clicked()
                && let Some(paths) = rfd::FileDialog::new().add_filter("images", &IMAGE_EXTENSIONS).pick_files()
            {
                let files = paths.into_iter().filter_map(|p| std::fs::read(&p).ok().map(|b| (p.display().to_string(), b))).collect();
                self.start_add(&ctx, k, files);
            }
            if let Some(job) = &self.add_job {
                job.ui(ui);
            }
            if !self.message.is_empty() {
                ui.label(RichText::new(&self.message).small());
            }
        });

        egui::CentralPanel::default().show(ui, |ui| {
            if let Some(id) = self.selected {
                match k.memory().get(id).cloned() {
                    Some(e) => {
                        ui.horizontal(|ui| {
                            if let Some(t) = k.thumbnail(&ctx, id) {
                                ui.add(egui::Image::new(&t).fit_to_exact_size(egui::vec2(64.0, 64.0)));
                            }
                            ui.vertical(|ui| {
                                ui.horizontal(|ui| {
                                    ui.strong(format!("#{id}  {}", e.label));
                                    if ui.button("Unlearn (delete)").on_hover_text("Remove it from the memory; Del key").clicked()
                                        || ui.input_mut(|i| i.consume_key(egui::Modifiers::NONE, egui::Key::Delete))
                                    {
                                        self.unlearn(k, id);
                                    }
                                    if ui.button("Query with it").clicked() {
                                        self.outbox.push(super::AppCommand::QueryEntry(id));
                                    }
                                });
                                ui.label(format!("source: {}", e.source));
                                if let Some(v) = self.value_of(k, id) {
                                    ui.label(format!("data value {v:.3e} (KNN-Shapley over the watch list; negative: it lowers accuracy)"));
                                }
                                if let Some((helped, hurt)) = self.prune_evidence_of(k, id) {
                                    ui.label(format!("pruning evidence: helped {helped}, hurt {hurt} choosing queries"));
                                }
                                ui.label(RichText::new(format!("content hash {:016x}", e.content_hash)).small().weak());
                            });
                        });
                    }
                    None => {
                        self.selected = None;
                    }
                }
                ui.separator();
            }

            if let Some(edit) = &k.last_edit() {
                ui.label(RichText::new(format!(
                    "{} — {} watched queries touched, {} flipped ({} µs)",
                    edit.what,
                    edit.update.touched.len(),
                    edit.update.flipped.len(),
                    edit.micros
                )));
            }
            let by_value = self.sort_by_value && self.value_of(k, k.memory().entries().first().map_or(0, |e| e.id)).is_some();
            let first = k.memory().entries().first().map_or(0, |e| e.id);
            let by_harm = !by_value && self.sort_by_harm && self.prune_evidence_of(k, first).is_some();
            let key = (k.generation(), self.filter.clone(), by_value, by_harm);
            if self.shown.as_ref().is_none_or(|(kk, _)| *kk != key) {
                let mut ids: Vec<u64> =
                    k.memory().entries().iter().filter(|e| self.filter.as_ref().is_none_or(|f| *f == e.label)).map(|e| e.id).collect();
                if by_value {
                    let value = |id: &u64| self.value_of(k, *id).unwrap_or(f64::INFINITY);
                    ids.sort_by(|a, b| value(a).total_cmp(&value(b)).then(a.cmp(b)));
                } else if let Some((_, plan)) = self.prune.as_ref().filter(|_| by_harm) {
                    // hurt − helped per entry, looked up once (entries no query saw count 0).
                    let net: std::collections::HashMap<u64, i64> =
                        plan.evidence.iter().map(|e| (e.id, e.hurt as i64 - e.helped as i64)).collect();
                    let net = |id: &u64| net.get(id).copied().unwrap_or(0);
                    ids.sort_by(|a, b| net(b).cmp(&net(a)).then(a.cmp(b)));
                }
                self.shown = Some((key, ids));
            }
            let ids: &[u64] = self.shown.as_ref().map_or(&[], |(_, ids)| ids.as_slice());
            // A cell is the thumbnail plus the button's frame padding and the spacing between
            // buttons: counting only the thumbnail put the last column off screen.
            let spacing = ui.spacing().clone();
            let cell = THUMB + 2.0 * spacing.button_padding.x + spacing.item_spacing.x;
            let row_height = THUMB + 2.0 * spacing.button_padding.y;
            let per_row = ((ui.available_width() + spacing.item_spacing.x) / cell).floor().max(1.0) as usize;
            let rows = ids.len().div_ceil(per_row);
            egui::ScrollArea::vertical().auto_shrink([false, false]).show_rows(ui, row_height, rows, |ui, range| {
                for r in range {
                    ui.horizontal(|ui| {
                        for &id in ids.iter().skip(r * per_row).take(per_row) {
                            let selected = self.selected == Some(id);
                            let resp = match k.thumbnail(&ctx, id) {
                                Some(t) => ui.add(
                                    egui::Button::image(egui::Image::new(&t).fit_to_exact_size(egui::vec2(THUMB, THUMB)))
                                        .selected(selected)
                                        .stroke(if selected { egui::Stroke::new(2.0, Color32::YELLOW) } else { egui::Stroke::NONE }),
                                ),
                                None => ui.add_sized([THUMB, THUMB], egui::Button::new(format!("#{id}"))),
                            };
                            let label = k.memory().get(id).map(|e| e.label.clone()).unwrap_or_default();
                            resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, format!("entry #{id}")));
                            if resp.on_hover_text(format!("#{id} {label}")).clicked() {
                                self.selected = if selected { None } else { Some(id) };
                            }
                        }
                    });
                }
            });
        });
    }
}

impl super::Panel for MemoryPanel {
    fn tab(&self) -> super::Tab {
        super::Tab::Memory
    }
    fn title(&self) -> String {
        "Memory".into()
    }
    fn show(&mut self, ui: &mut egui::Ui, cx: &mut super::PanelContext<'_>) {
        if let Some(k) = cx.knowledge.as_deref_mut() {
            self.ui(ui, k);
        }
        cx.commands.append(&mut self.outbox);
    }
}
