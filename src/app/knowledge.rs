//! The app's knowledge side, shared by the Memory, Query and Privacy panels: the perception
//! model, the visual memory with its exact index, a watch list of test queries kept up to date
//! under every edit, and the undo stack. Panels change it only through these methods, so every
//! deletion updates index, watch list and counts together.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use egui::{TextureHandle, TextureOptions};
use serde::{Deserialize, Serialize};

use crate::embed::FeatureSource;
use crate::memory::{Answer, Entry, ExactIndex, Memory, VoteRule, WatchList, WatchUpdate};
use crate::model::weights::{Which, load_backbone};

/// Where the app finds its model and memory; persisted.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct KnowledgeState {
    /// The perception model (a procmem model or checkpoint). Default: the bundled model.
    pub model: PathBuf,
    /// The memory file. Default: the bundled demo memory.
    pub memory: PathBuf,
    /// Test queries to watch (a memory file of embedded, labelled images). Default: the demo's.
    pub watch: Option<PathBuf>,
    /// Neighbours that vote. Default 10 (DINO's kNN uses 10–200; small memories want small k).
    pub k: usize,
    /// Answer "not in memory" when the k-th neighbour's similarity is below this. Default: off
    /// (every query gets a label). "Suggest" in the Query panel picks the value that 95 % of
    /// the memory's own entries pass.
    pub abstain_below: Option<f32>,
}

pub use crate::memory::embedding::{
    MEMORY_SET_PREFIX, NewEntry, embed_images, reembed_memory, reembed_memory_cached,
};
pub use crate::paths::{BUNDLED_MODEL, DEMO_MEMORY, DEMO_WATCH, bundled_dir, user_data_dir};

/// File types the image dialogs offer.
pub const IMAGE_EXTENSIONS: [&str; 8] = crate::imageio::EXTENSIONS;

impl Default for KnowledgeState {
    fn default() -> Self {
        let dir = bundled_dir();
        Self {
            model: dir.join(BUNDLED_MODEL),
            memory: dir.join(DEMO_MEMORY),
            watch: Some(dir.join(DEMO_WATCH)),
            k: 10,
            abstain_below: None,
        }
    }
}

/// The embedding model with what the UI says about it.
pub struct Perception {
    pub source: Arc<FeatureSource>,
    pub path: PathBuf,
    pub description: String,
}

impl Perception {
    /// Loads a model file; never substitutes other weights.
    pub fn load(path: &Path) -> Result<Self, crate::Error> {
        let loaded = load_backbone(path, Which::Teacher, None)?;
        let description = match &loaded.meta {
            Some(m) => format!(
                "{} ({}, step {}, {}, {} pooling{}; {})",
                path.file_name().and_then(|n| n.to_str()).unwrap_or("model"),
                m.exported_backbone.as_deref().unwrap_or("teacher"),
                m.step,
                m.provenance.sources.join(", "),
                m.pooling.name(),
                m.standardisation
                    .as_ref()
                    .map(|s| format!(", standardised on {}", s.describe()))
                    .into_iter()
                    .chain(
                        m.patch_standardisation
                            .as_ref()
                            .map(|s| format!(", patch tokens on {}", s.describe()))
                    )
                    .collect::<String>(),
                if m.provenance.procedural_only {
                    "procedural data only"
                } else {
                    "trained on real images"
                }
            ),
            None => format!("{} (no procmem provenance)", path.display()),
        };
        let source = FeatureSource::Model {
            vit: loaded.vit,
            name: description.clone(),
            fingerprint: loaded.fingerprint,
        };
        Ok(Self {
            source: Arc::new(source),
            path: path.to_path_buf(),
            description,
        })
    }
}

/// What the last edit did, for the UI.
#[derive(Clone, Debug)]
pub struct EditReport {
    pub what: String,
    pub update: WatchUpdate,
    pub micros: u128,
}

/// One undoable edit.
enum Edit {
    /// Entries unlearned together, in deletion order.
    Deleted(Vec<Entry>),
    /// (id, label before) of relabelled entries.
    Relabelled(Vec<(u64, String)>),
}

/// Folds one edit step's touched queries into an edit's (each listed once); which flipped is
/// decided for the whole edit by [`Knowledge::flipped_since`], since a query flipped by one step
/// of a batch may be flipped back by the next.
fn merge(into: &mut WatchUpdate, step: WatchUpdate) {
    for q in step.touched {
        if !into.touched.contains(&q) {
            into.touched.push(q);
        }
    }
}

/// The loaded model, memory, exact index and watched queries, kept consistent with each other:
/// every edit goes through the methods below (the fields are private so the compiler holds
/// that), updates memory, index and watch list together, and is undoable.
pub struct Knowledge {
    perception: Perception,
    memory: Memory,
    /// Where Save writes. None for bundled memories until the first save picks a user path.
    memory_path: Option<PathBuf>,
    loaded_from: PathBuf,
    /// Class names; indices are stable for the session (new labels are appended).
    labels: Vec<String>,
    index: ExactIndex,
    watch: WatchList,
    undo: Vec<Edit>,
    dirty: bool,
    last_edit: Option<EditReport>,
    /// Bumped by every edit, so panels know to refresh what they derived.
    generation: u64,
    /// Whether this session has already purged cached re-embeddings (none are written until the
    /// next load, so once is enough; the purge is file I/O on the UI thread).
    reembed_cache_purged: bool,
    thumbs: HashMap<u64, TextureHandle>,
    /// Thumbnails (PNG) of the watched queries, in watch-list order.
    watch_pngs: Vec<Vec<u8>>,
    watch_thumbs: HashMap<usize, TextureHandle>,
    counts_cache: Option<(u64, Vec<(String, usize)>)>,
    /// See [`KnowledgeState::abstain_below`].
    pub abstain_below: Option<f32>,
}

impl Knowledge {
    /// The perception model the memory was embedded with.
    pub fn perception(&self) -> &Perception {
        &self.perception
    }

    /// The visual memory, as edited so far.
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// Where Save writes; None for bundled memories until the first save picks a user path.
    pub fn memory_path(&self) -> Option<&Path> {
        self.memory_path.as_deref()
    }

    /// Directs the next saves to `path`.
    pub fn set_memory_path(&mut self, path: PathBuf) {
        self.memory_path = Some(path);
    }

    /// The memory file this knowledge was loaded from.
    pub(crate) fn loaded_from(&self) -> &Path {
        &self.loaded_from
    }

    /// Class names; indices are stable for the session (new labels are appended).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The exact index over the memory's embeddings.
    pub fn index(&self) -> &ExactIndex {
        &self.index
    }

    /// The watched queries and their current votes.
    pub fn watch(&self) -> &WatchList {
        &self.watch
    }

    /// Whether there are edits not yet saved.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// What the last edit did.
    pub fn last_edit(&self) -> Option<&EditReport> {
        self.last_edit.as_ref()
    }

    /// Bumped by every edit, so panels know to refresh what they derived.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Loads model, memory and watch queries, refusing a memory embedded by another model.
    pub fn load(
        state: &KnowledgeState,
        progress: impl Fn(f32, &str),
    ) -> Result<Self, crate::Error> {
        Self::load_with(state, false, progress)
    }

    /// Like `load`; with `reembed`, a memory (and watch list) embedded by another model is
    /// embedded again from its stored thumbnails by the loaded model — exact for images no
    /// larger than the thumbnails (the demo's 28×28 Fashion-MNIST), approximate otherwise. The
    /// result is a new memory: Save writes it to the user data folder, never over the original.
    pub(crate) fn load_with(
        state: &KnowledgeState,
        reembed: bool,
        progress: impl Fn(f32, &str),
    ) -> Result<Self, crate::Error> {
        progress(0.05, "loading the model");
        let perception = Perception::load(&state.model)?;
        progress(0.1, "opening the memory");
        let mut memory = Memory::open(&state.memory)?;
        let mut watch = match &state.watch {
            Some(p) if p.exists() => Some(Memory::open(p)?),
            _ => None,
        };
        let fp = perception.source.fingerprint();
        let mut reembedded = false;
        if reembed {
            if memory.model_fingerprint() != fp {
                memory =
                    reembed_memory_cached(&memory, &perception.source, &reembed_cache(), |f| {
                        progress(0.1 + 0.75 * f, "re-embedding the memory")
                    })?;
                reembedded = true;
            }
            if let Some(w) = watch.as_mut().filter(|w| w.model_fingerprint() != fp) {
                *w = reembed_memory_cached(w, &perception.source, &reembed_cache(), |f| {
                    progress(0.85 + 0.1 * f, "re-embedding the watch list")
                })?;
            }
        }
        progress(0.95, "indexing");
        let in_bundle = state.memory.starts_with(bundled_dir().join("assets"));
        let memory_path = (!in_bundle && !reembedded).then(|| state.memory.clone());
        let mut k = Self::new(
            perception,
            memory,
            memory_path,
            state.memory.clone(),
            watch,
            state.k,
        )?;
        k.dirty = reembedded;
        k.abstain_below = state.abstain_below;
        Ok(k)
    }

    pub fn new(
        perception: Perception,
        memory: Memory,
        memory_path: Option<PathBuf>,
        loaded_from: PathBuf,
        watch_queries: Option<Memory>,
        k: usize,
    ) -> Result<Self, crate::Error> {
        let fp = perception.source.fingerprint();
        for (what, m) in std::iter::once(("memory", &memory))
            .chain(watch_queries.as_ref().map(|w| ("watch list", w)))
        {
            if m.model_fingerprint() != fp {
                return Err(crate::Error::ModelMismatch {
                    what: what.into(),
                    memory_model: m.model_fingerprint().to_string(),
                    model: format!("{fp} ({})", perception.description),
                    hint: format!(
                        "Re-embed it here, rebuild it with this model (procmem memory build --features {}) or load its model.",
                        perception.path.display()
                    ),
                });
            }
        }
        let mut labels = memory.labels();
        let mut queries = Vec::new();
        let mut watch_pngs = Vec::new();
        if let Some(w) = &watch_queries {
            for e in w.entries() {
                watch_pngs.push(e.thumbnail.clone());
                let truth = match labels.iter().position(|l| *l == e.label) {
                    Some(i) => i as u32,
                    None => {
                        labels.push(e.label.clone());
                        (labels.len() - 1) as u32
                    }
                };
                queries.push((e.source.clone(), Some(truth), e.embedding.clone()));
            }
        }
        // Watch-list classes the memory lacks were appended above; the index knows them all.
        let index = ExactIndex::build(&memory, &labels);
        let mut watch = WatchList::new(k.max(1), VoteRule::default(), labels.len());
        watch.add(&index, queries);
        Ok(Self {
            perception,
            memory,
            memory_path,
            loaded_from,
            labels,
            index,
            watch,
            undo: Vec::new(),
            dirty: false,
            last_edit: None,
            generation: 0,
            reembed_cache_purged: false,
            thumbs: HashMap::new(),
            watch_pngs,
            watch_thumbs: HashMap::new(),
            counts_cache: None,
            abstain_below: None,
        })
    }

    pub fn k(&self) -> usize {
        self.watch.k
    }

    /// Changes k: the watch list is searched again.
    pub(crate) fn set_k(&mut self, k: usize) {
        let queries: Vec<(String, Option<u32>, Vec<f32>)> = self
            .watch
            .queries
            .drain(..)
            .map(|q| (q.name, q.truth, q.embedding))
            .collect();
        self.watch = WatchList::new(k.max(1), self.watch.rule, self.labels.len());
        self.watch.add(&self.index, queries);
        self.generation += 1;
    }

    fn class_of(&mut self, label: &str) -> u32 {
        match self.labels.iter().position(|l| l == label) {
            Some(i) => i as u32,
            None => {
                self.labels.push(label.to_string());
                self.index.labels.push(label.to_string());
                self.watch.set_classes(self.labels.len());
                (self.labels.len() - 1) as u32
            }
        }
    }

    /// Entries per class, in label order (classes with no entries left included); cached per
    /// edit, so a 100k-entry memory costs nothing per frame.
    pub fn counts(&mut self) -> Vec<(String, usize)> {
        if let Some((generation, counts)) = &self.counts_cache
            && *generation == self.generation
            && counts.len() == self.labels.len()
        {
            return counts.clone();
        }
        let mut by_label: HashMap<&str, usize> = HashMap::new();
        for e in self.memory.entries() {
            *by_label.entry(e.label.as_str()).or_default() += 1;
        }
        let counts: Vec<(String, usize)> = self
            .labels
            .iter()
            .map(|l| (l.clone(), by_label.get(l.as_str()).copied().unwrap_or(0)))
            .collect();
        self.counts_cache = Some((self.generation, counts.clone()));
        counts
    }

    /// Deletes an entry (unlearns it): the index and every watched prediction follow at once.
    pub fn delete(&mut self, id: u64) -> Option<&EditReport> {
        self.delete_many(&[id])
    }

    /// Deletes entries as one edit (one undo restores them all); ids not in the memory are
    /// skipped. `None` when none was.
    pub fn delete_many(&mut self, ids: &[u64]) -> Option<&EditReport> {
        let start = std::time::Instant::now();
        let predictions = self.predictions();
        let set: std::collections::HashSet<u64> = ids.iter().copied().collect();
        // One pass each through the memory, the index and the watch list, however many.
        let deleted = self.memory.delete_many(&set);
        let set: std::collections::HashSet<u64> = deleted.iter().map(|e| e.id).collect();
        self.index.retain(|id, _| !set.contains(&id));
        let mut update = self.watch.on_delete_many(&self.index, &set);
        for id in &set {
            self.thumbs.remove(id);
        }
        let what = match deleted.as_slice() {
            [] => return None,
            [e] => format!("unlearned #{} ({})", e.id, e.label),
            many => format!("unlearned {} entries", many.len()),
        };
        update.flipped = self.flipped_since(&predictions);
        self.last_edit = Some(EditReport {
            what,
            update,
            micros: start.elapsed().as_micros(),
        });
        self.undo.push(Edit::Deleted(deleted));
        self.dirty = true;
        // Cached embeddings of user data that held the entry go with it: deleting unlearns.
        if !self.reembed_cache_purged {
            crate::memory::embedding::purge_user_sets_everywhere();
            self.reembed_cache_purged = true;
        }
        self.generation += 1;
        self.last_edit.as_ref()
    }

    /// Gives entries a new label as one undoable edit (the watch list follows: an entry that
    /// votes for another class can flip predictions). Ids not in the memory or already so
    /// labelled are skipped; `None` when nothing changed.
    pub(crate) fn relabel(&mut self, ids: &[u64], label: &str) -> Option<&EditReport> {
        let start = std::time::Instant::now();
        let label = label.trim();
        if label.is_empty() {
            return None;
        }
        let predictions = self.predictions();
        let mut update = WatchUpdate::default();
        let mut before = Vec::new();
        for &id in ids {
            if let Some(old) = self.set_label(id, label, &mut update) {
                before.push((id, old));
            }
        }
        if before.is_empty() {
            return None;
        }
        update.flipped = self.flipped_since(&predictions);
        let what = format!(
            "relabelled {} entr{} as “{label}”",
            before.len(),
            if before.len() == 1 { "y" } else { "ies" }
        );
        self.last_edit = Some(EditReport {
            what,
            update,
            micros: start.elapsed().as_micros(),
        });
        self.undo.push(Edit::Relabelled(before));
        self.dirty = true;
        self.generation += 1;
        self.last_edit.as_ref()
    }

    /// Relabels one entry in memory, index and watch list; returns its old label if it changed.
    fn set_label(&mut self, id: u64, label: &str, update: &mut WatchUpdate) -> Option<String> {
        let old = self.memory.set_label(id, label)?;
        let class = self.class_of(label);
        let embedding = self.memory.get(id)?.embedding.clone();
        self.index.remove(id);
        merge(update, self.watch.on_delete(&self.index, id));
        self.index.insert(id, class, &embedding);
        merge(update, self.watch.on_insert(id, class, &embedding));
        Some(old)
    }

    /// The watched queries' current predictions, in watch-list order.
    fn predictions(&self) -> Vec<Option<u32>> {
        self.watch
            .queries
            .iter()
            .map(|q| q.vote.prediction)
            .collect()
    }

    /// Watched queries whose prediction differs from `before`.
    fn flipped_since(&self, before: &[Option<u32>]) -> Vec<usize> {
        self.watch
            .queries
            .iter()
            .zip(before)
            .enumerate()
            .filter(|(_, (q, b))| q.vote.prediction != **b)
            .map(|(i, _)| i)
            .collect()
    }

    /// The memory as it was before every edit still on the undo stack (deletions restored,
    /// relabellings reverted; images added since stay): what an unlearning audit compares the
    /// current memory with. Entries that cannot be put back (never the case for the stack's own
    /// edits) are left out.
    pub fn memory_before_edits(&self) -> Memory {
        let mut before = self.memory.clone();
        for edit in self.undo.iter().rev() {
            match edit {
                Edit::Deleted(entries) => {
                    let _ = before.restore_many(entries.clone());
                }
                Edit::Relabelled(list) => {
                    for (id, old) in list {
                        before.set_label(*id, old);
                    }
                }
            }
        }
        before
    }

    pub(crate) fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Reverts the last edit (a deletion of one or many entries, or a relabelling).
    pub fn undo(&mut self) -> Option<&EditReport> {
        let start = std::time::Instant::now();
        let edit = self.undo.pop()?;
        let predictions = self.predictions();
        let mut update = WatchUpdate::default();
        let what = match edit {
            Edit::Deleted(entries) => {
                if let Some(e) = entries.iter().find(|e| self.memory.get(e.id).is_some()) {
                    // Nothing lost: the edit goes back on the stack.
                    let what = format!(
                        "could not restore: entry #{} is already in the memory",
                        e.id
                    );
                    self.undo.push(Edit::Deleted(entries));
                    self.last_edit = Some(EditReport {
                        what,
                        update,
                        micros: 0,
                    });
                    return self.last_edit.as_ref();
                }
                let n = entries.len();
                let first = entries
                    .first()
                    .map(|e| format!("#{} ({})", e.id, e.label))
                    .unwrap_or_default();
                let classes: Vec<u32> = entries
                    .iter()
                    .map(|e| self.class_of(&e.label.clone()))
                    .collect();
                {
                    let rows: Vec<(u64, u32, &[f32])> = entries
                        .iter()
                        .zip(&classes)
                        .map(|(e, &c)| (e.id, c, e.embedding.as_slice()))
                        .collect();
                    for &(id, class, embedding) in &rows {
                        self.index.insert(id, class, embedding);
                    }
                    merge(&mut update, self.watch.on_insert_many(&rows));
                }
                if let Err(e) = self.memory.restore_many(entries) {
                    log::error!("restoring entries checked absent failed: {e}");
                }
                if n == 1 {
                    format!("restored {first}")
                } else {
                    format!("restored {n} entries")
                }
            }
            Edit::Relabelled(before) => {
                let n = before.len();
                for (id, old) in before.into_iter().rev() {
                    self.set_label(id, &old, &mut update);
                }
                format!(
                    "undid the relabelling of {n} entr{}",
                    if n == 1 { "y" } else { "ies" }
                )
            }
        };
        update.flipped = self.flipped_since(&predictions);
        self.last_edit = Some(EditReport {
            what,
            update,
            micros: start.elapsed().as_micros(),
        });
        self.dirty = true;
        self.generation += 1;
        self.last_edit.as_ref()
    }

    /// Adds embedded images; returns their ids and the sources refused because they were
    /// unlearned from this memory (its deny-list), unless `allow_unlearned` overrides it.
    pub fn add(
        &mut self,
        entries: Vec<NewEntry>,
        allow_unlearned: bool,
    ) -> Result<(Vec<u64>, Vec<String>), String> {
        let fp = self.memory.model_fingerprint().to_string();
        let mut ids = Vec::new();
        let mut refused = Vec::new();
        let mut touched = WatchUpdate::default();
        let (accuracy_before, classes_before) = (self.watch.accuracy(), self.labels.len());
        for e in entries {
            if self.memory.is_denied(e.content_hash) {
                if !allow_unlearned {
                    refused.push(e.source);
                    continue;
                }
                self.memory.allow(e.content_hash);
            }
            let id = self
                .memory
                .add(
                    &fp,
                    &e.label,
                    &e.source,
                    e.content_hash,
                    e.thumbnail,
                    e.embedding.clone(),
                )
                .map_err(|e| e.to_string())?;
            let class = self.class_of(&e.label);
            self.index.insert(id, class, &e.embedding);
            let u = self.watch.on_insert(id, class, &e.embedding);
            touched.touched.extend(u.touched);
            touched.flipped.extend(u.flipped);
            ids.push(id);
        }
        if ids.is_empty() {
            return Ok((ids, refused));
        }
        // Adding a class (visual-memory's flexible perception, in the app): name the new
        // classes and what the addition did to the labelled watched queries.
        let mut what = format!("added {} image(s)", ids.len());
        if self.labels.len() > classes_before {
            what += &format!(
                " with new class(es) {}",
                self.labels[classes_before..].join(", ")
            );
        }
        if let (Some(before), Some(after)) = (accuracy_before, self.watch.accuracy()) {
            what += &format!(
                "; watched top-1 {:.1} % before, {:.1} % after",
                before * 100.0,
                after * 100.0
            );
        }
        self.last_edit = Some(EditReport {
            what,
            update: touched,
            micros: 0,
        });
        self.dirty = true;
        self.generation += 1;
        Ok((ids, refused))
    }

    /// Neighbours and vote for an embedding, optionally leaving one entry out (a query picked
    /// from the memory is not its own neighbour).
    /// The "not in memory" threshold that 95 % of the memory's own entries pass, each queried
    /// against the rest (up to 200 entries, evenly spread); `None` for memories of ≤ k entries.
    pub fn suggest_abstain_threshold(&self) -> Option<f32> {
        let n = self.memory.entries().len();
        if n <= self.k() {
            return None;
        }
        let picked: Vec<&Entry> = (0..n.min(200))
            .map(|i| &self.memory.entries()[i * n / n.min(200)])
            .collect();
        let queries: Vec<f32> = picked
            .iter()
            .flat_map(|e| e.embedding.iter().copied())
            .collect();
        let mut scores: Vec<f32> = self
            .index
            .search(&queries, self.k() + 1)
            .into_iter()
            .zip(&picked)
            .filter_map(|(mut found, e)| {
                found.retain(|nb| nb.id != e.id);
                crate::memory::query::in_memory_score(&found, self.k())
            })
            .collect();
        scores.sort_by(|a, b| b.total_cmp(a));
        let m = ((0.95 * scores.len() as f64).ceil() as usize).clamp(1, scores.len());
        scores.get(m - 1).copied()
    }

    pub fn answer(&self, embedding: &[f32], exclude: Option<u64>) -> Answer {
        let k = self.k();
        let mut neighbours = self
            .index
            .search(embedding, k + 1)
            .pop()
            .unwrap_or_default();
        neighbours.retain(|n| Some(n.id) != exclude);
        neighbours.truncate(k);
        Answer::new(neighbours, k, self.labels.len(), self.watch.rule)
    }

    /// Saves to the memory's own path, or for a bundled memory to the user data folder.
    pub fn save(&mut self) -> Result<PathBuf, String> {
        let path = match &self.memory_path {
            Some(p) => p.clone(),
            None => user_data_dir().join("memory.pmem"),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        self.memory.save(&path).map_err(|e| e.to_string())?;
        self.memory_path = Some(path.clone());
        self.dirty = false;
        Ok(path)
    }

    /// The entry's thumbnail as a texture, decoded on first use.
    pub fn thumbnail(&mut self, ctx: &egui::Context, id: u64) -> Option<TextureHandle> {
        if let Some(t) = self.thumbs.get(&id) {
            return Some(t.clone());
        }
        if self.thumbs.len() > 20_000 {
            // Scrolling through a huge memory: drop the cache rather than grow without bound.
            self.thumbs.clear();
        }
        let tex = texture(ctx, &format!("entry-{id}"), &self.memory.get(id)?.thumbnail)?;
        self.thumbs.insert(id, tex.clone());
        Some(tex)
    }

    /// Thumbnails decoded so far (the grid decodes only what it shows).
    pub fn cached_thumbnails(&self) -> usize {
        self.thumbs.len()
    }

    /// A watched query's thumbnail.
    pub(crate) fn watch_thumbnail(
        &mut self,
        ctx: &egui::Context,
        i: usize,
    ) -> Option<TextureHandle> {
        if let Some(t) = self.watch_thumbs.get(&i) {
            return Some(t.clone());
        }
        let tex = texture(ctx, &format!("watch-{i}"), self.watch_pngs.get(i)?)?;
        self.watch_thumbs.insert(i, tex.clone());
        Some(tex)
    }
}

/// Where re-embedded memories are cached per model fingerprint.
pub(crate) fn reembed_cache() -> crate::embed::cache::EmbeddingCache {
    crate::embed::cache::EmbeddingCache::new(user_data_dir().join("cache").join("embeddings"))
}

fn texture(ctx: &egui::Context, name: &str, png: &[u8]) -> Option<TextureHandle> {
    let img = image::load_from_memory(png).ok()?.to_rgba8();
    let color = egui::ColorImage::from_rgba_unmultiplied(
        [img.width() as usize, img.height() as usize],
        img.as_raw(),
    );
    Some(ctx.load_texture(name, color, TextureOptions::NEAREST))
}

/// Reads dropped files (their bytes, or their path when only that is given).
pub fn dropped_files(ctx: &egui::Context) -> Vec<(String, Vec<u8>)> {
    let files = ctx.input(|i| i.raw.dropped_files.clone());
    files
        .iter()
        .filter_map(|f| {
            let name = f.path().display().to_string();
            match f.bytes() {
                Ok(b) if !b.is_empty() => Some((name, b)),
                _ => std::fs::read(f.path()).ok().map(|b| (name, b)),
            }
        })
        .collect()
}
