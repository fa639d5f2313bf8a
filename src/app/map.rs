//! The Map panel: the whole memory at a glance. Every entry on the memory's first two principal
//! axes ([`MemoryMap`], fitted on a worker), coloured by label, by its leave-one-out kNN
//! prediction (wrong ones marked) or by privacy influence; deleted entries stay greyed where
//! they were, and the current query is drawn where it lands. Hover shows the thumbnail, a click
//! selects an entry and draws lines to its neighbours, and a lasso selects a region to unlearn,
//! relabel or export (CSV/JSON of ids) — each one undoable edit of the shared knowledge.
//!
//! 100k points are one mesh of quads (not one circle each, which egui would tessellate point by
//! point): `examples/bench_map.rs` measures the frame.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use egui::{Color32, Mesh, Pos2, Rect, RichText, Shape, Stroke, vec2};
use egui_plot::{Plot, PlotBounds, PlotGeometry, PlotItem, PlotItemBase, PlotPoint, PlotTransform};

use super::jobs::Job;
use super::knowledge::Knowledge;
use crate::memory::Neighbour;
use crate::memory::map::MemoryMap;

/// What a point's colour shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColourBy {
    #[default]
    Label,
    /// The entry's leave-one-out kNN prediction; wrong ones are marked red.
    Prediction,
    /// How many watched queries the entry alone can flip (the Privacy panel's analysis).
    Influence,
}

/// Hover and click reach this far from a point, in screen points.
const PICK_RADIUS: f32 = 8.0;

/// The map's colour of a class ([`crate::palette::class_rgb`], shared with the CLI's PNG).
pub(crate) fn class_colour(class: u32) -> Color32 {
    let [r, g, b] = crate::palette::class_rgb(class);
    Color32::from_rgb(r, g, b)
}

const DELETED: Color32 = Color32::from_gray(70);
const WRONG: Color32 = Color32::from_rgb(255, 40, 40);
const LASSO: Color32 = Color32::from_rgb(255, 220, 0);

/// What point colours depend on: (memory generation, mode, predictions, influence).
type ColourKey = (u64, ColourBy, u64, usize);

/// What the map shows of the current memory, rebuilt once per memory edit.
struct Derived {
    generation: u64,
    /// Current class of each mapped entry, `None` once deleted; aligned with `map.ids`.
    class: Vec<Option<u32>>,
}

pub struct MapPanel {
    fit_job: Option<Job<MemoryMap>>,
    pub map: Option<MemoryMap>,
    derived: Option<Derived>,
    pub colour_by: ColourBy,
    predict_job: Option<Job<HashMap<u64, Option<u32>>>>,
    /// Leave-one-out predictions by id, and the memory generation they were computed at.
    pub predictions: Option<(u64, HashMap<u64, Option<u32>>)>,
    /// The memory generation the running prediction job sees.
    predictions_for: u64,
    /// Drag draws a lasso instead of panning.
    pub lasso_mode: bool,
    /// The lasso being drawn or last drawn, in map coordinates.
    pub lasso: Vec<[f32; 2]>,
    /// Entries selected by the lasso (live ones, ascending).
    pub selection: Vec<u64>,
    /// The clicked entry and its neighbours.
    pub selected: Option<(u64, Vec<Neighbour>)>,
    pub new_label: String,
    pub message: String,
    /// Ask the Query panel to query with this entry.
    /// Commands for the app, taken once per frame ([`super::Panel::show`]).
    outbox: Vec<super::AppCommand>,
    /// (wrong, live) leave-one-out predictions, counted with the colours.
    wrong: Option<(usize, usize)>,
    /// Where the plot was last drawn (map ↔ screen), for tests and tools that point at entries.
    pub transform: Option<PlotTransform>,
    /// Point colours and the (generation, mode, predictions, influence) they were made for.
    colours: Option<(ColourKey, Vec<Color32>)>,
}

impl Default for MapPanel {
    fn default() -> Self {
        Self {
            fit_job: None,
            map: None,
            derived: None,
            colour_by: ColourBy::Label,
            predict_job: None,
            predictions: None,
            predictions_for: 0,
            lasso_mode: false,
            lasso: Vec::new(),
            selection: Vec::new(),
            selected: None,
            new_label: String::new(),
            message: String::new(),
            outbox: Vec::new(),
            transform: None,
            wrong: None,
            colours: None,
        }
    }
}

impl MapPanel {
    pub fn is_busy(&self) -> bool {
        self.fit_job.is_some() || self.predict_job.is_some()
    }

    /// Fits the map to the current memory on a worker.
    pub(crate) fn start_fit(&mut self, ctx: &egui::Context, k: &Knowledge) {
        let index = Arc::new(k.index().clone());
        let labels = k.labels().to_vec();
        self.fit_job = Some(Job::spawn(ctx, "mapping the memory", move |h| {
            h.progress(0.1, format!("principal axes of {} embeddings", index.len()));
            MemoryMap::fit_rows(index.dim, labels, index.rows()).map_err(|e| e.to_string())
        }));
    }

    /// Computes every live entry's leave-one-out kNN prediction on a worker.
    pub fn start_predictions(&mut self, ctx: &egui::Context, k: &Knowledge) {
        let index = Arc::new(k.index().clone());
        let (kk, rule, classes) = (k.k(), k.watch().rule, k.labels().len());
        self.predictions = None;
        self.predict_job = Some(Job::spawn(ctx, "leave-one-out predictions", move |h| {
            crate::memory::map::loo_predictions(&index, kk, rule, classes, |f| {
                h.progress(f, format!("{:.0} %", f * 100.0));
                !h.cancelled()
            })
        }));
        self.colours = None;
        self.predictions_for = k.generation();
    }

    /// Where an entry was drawn on screen in the last frame.
    pub fn screen_position(&self, id: u64) -> Option<Pos2> {
        let (map, t) = (self.map.as_ref()?, self.transform.as_ref()?);
        let p = map.xy[map.position(id)?];
        Some(t.position_from_point(&PlotPoint::new(p[0], p[1])))
    }

    /// Selects the live entries inside `polygon` (map coordinates), replacing the selection.
    pub(crate) fn select_polygon(&mut self, polygon: &[[f32; 2]], k: &Knowledge) {
        let Some(map) = &self.map else { return };
        self.selection = map
            .inside(polygon)
            .into_iter()
            .filter(|&id| k.memory().position(id).is_some())
            .collect();
    }

    fn poll(&mut self) {
        if let Some(job) = &mut self.fit_job
            && let Some(r) = job.poll()
        {
            self.fit_job = None;
            match r {
                Ok(map) => {
                    self.map = Some(map);
                    self.derived = None;
                    self.colours = None;
                    self.message.clear();
                }
                Err(e) => self.message = format!("could not map the memory: {e}"),
            }
        }
        if let Some(job) = &mut self.predict_job
            && let Some(r) = job.poll()
        {
            self.predict_job = None;
            match r {
                Ok(p) => self.predictions = Some((self.predictions_for, p)),
                Err(e) => self.message = e,
            }
            self.colours = None;
        }
    }

    /// Brings the derived state up to the memory's generation: places added entries, marks
    /// deleted ones, follows relabelling.
    fn refresh(&mut self, k: &Knowledge) {
        let Some(map) = &mut self.map else { return };
        if self
            .derived
            .as_ref()
            .is_some_and(|d| d.generation == k.generation())
        {
            return;
        }
        let class_of: HashMap<&str, u32> = k
            .labels()
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i as u32))
            .collect();
        let cls = |label: &str| class_of.get(label).copied().unwrap_or(0);
        map.extend(
            k.memory()
                .entries()
                .iter()
                .map(|e| (e.id, cls(&e.label), e.embedding.as_slice())),
        );
        // Both id lists ascend: one merge pass.
        let mut class = vec![None; map.ids.len()];
        let mut entries = k.memory().entries().iter().peekable();
        for (i, &id) in map.ids.iter().enumerate() {
            while entries.peek().is_some_and(|e| e.id < id) {
                entries.next();
            }
            if let Some(e) = entries.peek().filter(|e| e.id == id) {
                class[i] = Some(cls(&e.label));
            }
        }
        self.derived = Some(Derived {
            generation: k.generation(),
            class,
        });
        self.selection
            .retain(|&id| k.memory().position(id).is_some());
        if let Some((id, _)) = &self.selected {
            let id = *id;
            self.selected = k
                .memory()
                .get(id)
                .map(|e| (id, k.index().search(&e.embedding, k.k() + 1).remove(0)));
        }
    }

    fn colours(&mut self, influence: Option<&BTreeMap<u64, usize>>) -> &[Color32] {
        let (Some(map), Some(derived)) = (&self.map, &self.derived) else {
            return &[];
        };
        let predictions_at = self.predictions.as_ref().map_or(u64::MAX, |p| p.0);
        // The influence map's address: another report (another k, a new analysis) is another map.
        let key = (
            derived.generation,
            self.colour_by,
            predictions_at,
            influence.map_or(0, |m| m as *const BTreeMap<u64, usize> as usize),
        );
        if self.colours.as_ref().is_none_or(|c| c.0 != key) {
            let max_influence = influence
                .and_then(|m| m.values().max().copied())
                .unwrap_or(1)
                .max(1) as f32;
            let colours: Vec<Color32> = map
                .ids
                .iter()
                .zip(&derived.class)
                .map(|(id, class)| match (class, self.colour_by) {
                    (None, _) => DELETED,
                    (Some(c), ColourBy::Label) => class_colour(*c),
                    (Some(c), ColourBy::Prediction) => {
                        match self.predictions.as_ref().and_then(|p| p.1.get(id)) {
                            Some(Some(p)) if p == c => class_colour(*p).gamma_multiply(0.55),
                            Some(_) => WRONG,
                            // Not predicted (added or restored since): recompute to see it.
                            None => Color32::from_gray(160),
                        }
                    }
                    (Some(_), ColourBy::Influence) => match influence.and_then(|m| m.get(id)) {
                        Some(&n) => Color32::from_rgb(150, 60, 200).lerp_to_gamma(
                            Color32::from_rgb(255, 220, 0),
                            n as f32 / max_influence,
                        ),
                        None => Color32::from_rgb(60, 80, 110),
                    },
                })
                .collect();
            self.wrong = (self.colour_by == ColourBy::Prediction && self.predictions.is_some())
                .then(|| {
                    let live = derived.class.iter().filter(|c| c.is_some()).count();
                    (colours.iter().filter(|&&c| c == WRONG).count(), live)
                });
            self.colours = Some((key, colours));
        }
        self.colours.as_ref().map_or(&[], |c| &c.1)
    }

    /// The panel. `query` is the Query panel's current embedding (drawn where it lands);
    /// `influence` the Privacy panel's counts at its shown k, when current.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        k: &mut Knowledge,
        query: Option<&[f32]>,
        influence: Option<&BTreeMap<u64, usize>>,
    ) {
        let ctx = ui.ctx().clone();
        self.poll();
        if self.map.is_none() && self.fit_job.is_none() && self.message.is_empty() {
            self.start_fit(&ctx, k);
        }
        self.refresh(k);
        egui::Panel::left("map controls")
            .resizable(true)
            .default_size(260.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .show(ui, |ui| self.controls(ui, k, influence.is_some()));
            });
        egui::CentralPanel::default().show(ui, |ui| {
            if let Some(job) = &self.fit_job {
                job.ui(ui);
            }
            if !self.message.is_empty() {
                ui.colored_label(Color32::LIGHT_RED, &self.message);
            }
            if self.map.is_some() {
                self.plot(ui, k, query, influence);
            }
        });
    }

    fn controls(&mut self, ui: &mut egui::Ui, k: &mut Knowledge, have_influence: bool) {
        let ctx = ui.ctx().clone();
        ui.set_max_width(300.0);
        ui.heading("Map");
        if let Some(map) = &self.map {
            let e = &map.projection.explained;
            ui.label(
                RichText::new(format!(
                    "{} entries on PC1/PC2 ({:.1} % + {:.1} % of the variance)",
                    map.ids.len(),
                    e[0] * 100.0,
                    e[1] * 100.0
                ))
                .small(),
            );
        }
        if ui
            .add_enabled(self.fit_job.is_none(), egui::Button::new("Re-fit the axes"))
            .on_hover_text("Fit the principal axes to the memory as it is now")
            .clicked()
        {
            self.message.clear();
            self.start_fit(&ctx, k);
        }
        ui.separator();
        ui.label("colour by");
        let colour_before = self.colour_by;
        ui.radio_value(&mut self.colour_by, ColourBy::Label, "label");
        ui.radio_value(&mut self.colour_by, ColourBy::Prediction, "leave-one-out prediction")
            .on_hover_text("Each entry queried against the rest of the memory with the app's k and vote rule; wrong ones in red");
        ui.add_enabled(
            have_influence,
            egui::RadioButton::new(self.colour_by == ColourBy::Influence, "privacy influence"),
        )
        .on_hover_text(
            "Run the Privacy panel's analysis first (the memory must not have changed since)",
        )
        .clicked()
        .then(|| self.colour_by = ColourBy::Influence);
        if self.colour_by == ColourBy::Influence && !have_influence {
            self.colour_by = ColourBy::Label;
        }
        if colour_before != ColourBy::Prediction
            && self.colour_by == ColourBy::Prediction
            && self.predictions.is_none()
            && self.predict_job.is_none()
        {
            self.start_predictions(&ctx, k);
        }
        if self.colour_by == ColourBy::Prediction {
            let stale = self
                .predictions
                .as_ref()
                .is_some_and(|p| p.0 != k.generation());
            match &self.predict_job {
                Some(job) => {
                    job.ui(ui);
                }
                None if self.predictions.is_none() || stale => {
                    if stale {
                        ui.label(
                            RichText::new("the memory changed since these predictions")
                                .color(Color32::YELLOW),
                        );
                    }
                    if ui.button("Compute predictions").clicked() {
                        self.start_predictions(&ctx, k);
                    }
                }
                None => {}
            }
            if let Some((wrong, total)) = self.wrong {
                ui.colored_label(
                    WRONG,
                    format!(
                        "{wrong} of {total} wrong ({:.1} % right)",
                        100.0 * (total - wrong) as f64 / total.max(1) as f64
                    ),
                );
            }
        }
        if self.colour_by != ColourBy::Influence {
            ui.horizontal_wrapped(|ui| {
                ui.set_max_width(240.0);
                for (i, l) in k.labels().iter().enumerate() {
                    swatch(ui, class_colour(i as u32), l);
                }
                swatch(ui, DELETED, "deleted");
            });
        }
        ui.separator();
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.lasso_mode, false, "Pan/zoom");
            ui.selectable_value(&mut self.lasso_mode, true, "Lasso")
                .on_hover_text("Drag around entries to select them");
        });
        ui.label(
            RichText::new("scroll to zoom, double-click to reset")
                .weak()
                .small(),
        );
        ui.separator();
        self.selection_ui(ui, k);
        ui.separator();
        self.selected_ui(ui, k);
    }

    fn selection_ui(&mut self, ui: &mut egui::Ui, k: &mut Knowledge) {
        if self.selection.is_empty() {
            ui.label(RichText::new("no selection: draw a lasso").weak());
        } else {
            self.selection_actions(ui, k);
        }
        if let Some(edit) = &k.last_edit() {
            ui.label(
                RichText::new(format!(
                    "{} — {} watched prediction(s) flipped",
                    edit.what,
                    edit.update.flipped.len()
                ))
                .small(),
            );
        }
        if ui
            .add_enabled(k.can_undo(), egui::Button::new("Undo"))
            .clicked()
        {
            k.undo();
        }
    }

    fn selection_actions(&mut self, ui: &mut egui::Ui, k: &mut Knowledge) {
        let mut by_label: BTreeMap<&str, usize> = BTreeMap::new();
        for e in self.selection.iter().filter_map(|&id| k.memory().get(id)) {
            *by_label.entry(e.label.as_str()).or_default() += 1;
        }
        ui.strong(format!("{} selected", self.selection.len()));
        let parts: Vec<String> = by_label.iter().map(|(l, n)| format!("{n} {l}")).collect();
        ui.label(RichText::new(parts.join(", ")).small());
        if ui
            .button(format!("Unlearn {} selected", self.selection.len()))
            .on_hover_text("One edit: Undo restores them all")
            .clicked()
        {
            let ids = std::mem::take(&mut self.selection);
            k.delete_many(&ids);
            self.lasso.clear();
        }
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.new_label)
                    .hint_text("new label")
                    .desired_width(110.0),
            );
            if ui
                .add_enabled(
                    !self.new_label.trim().is_empty(),
                    egui::Button::new("Relabel"),
                )
                .clicked()
            {
                let label = self.new_label.trim().to_string();
                if k.relabel(&self.selection, &label).is_none() {
                    self.message = format!("every selected entry is already labelled “{label}”");
                }
            }
        });
        ui.horizontal(|ui| {
            if ui
                .button("Export ids…")
                .on_hover_text("id, label, source and map position as CSV or JSON")
                .clicked()
                && let Some(path) = rfd::FileDialog::new()
                    .add_filter("CSV", &["csv"])
                    .add_filter("JSON", &["json"])
                    .set_file_name("selection.csv")
                    .save_file()
                && let Some(map) = &self.map
            {
                self.message = match map.export(k.memory(), Some(&self.selection), &path) {
                    Ok(n) => format!("wrote {n} rows to {}", path.display()),
                    Err(e) => format!("could not export: {e}"),
                };
            }
            if ui.button("Clear").clicked() {
                self.selection.clear();
                self.lasso.clear();
            }
        });
    }

    fn selected_ui(&mut self, ui: &mut egui::Ui, k: &mut Knowledge) {
        let ctx = ui.ctx().clone();
        let Some((id, neighbours)) = self.selected.clone() else {
            ui.label(RichText::new("click an entry to see its neighbours").weak());
            return;
        };
        let Some(entry) = k.memory().get(id).cloned() else {
            return;
        };
        ui.horizontal(|ui| {
            if let Some(t) = k.thumbnail(&ctx, id) {
                ui.add(egui::Image::new(&t).fit_to_exact_size(vec2(56.0, 56.0)));
            }
            ui.vertical(|ui| {
                ui.strong(format!("#{id} {}", entry.label));
                ui.label(RichText::new(&entry.source).small());
            });
        });
        ui.horizontal(|ui| {
            if ui.button("Query with it").clicked() {
                self.outbox.push(super::AppCommand::QueryEntry(id));
            }
            if ui.button("Unlearn it").clicked() {
                k.delete(id);
                self.selected = None;
            }
        });
        ui.label(RichText::new("its neighbours (cosine)").small());
        let shown: Vec<Neighbour> = neighbours
            .iter()
            .filter(|n| n.id != id)
            .take(k.k())
            .cloned()
            .collect();
        for row in shown.chunks(5) {
            ui.horizontal(|ui| {
                for n in row {
                    ui.vertical(|ui| {
                        if let Some(t) = k.thumbnail(&ctx, n.id) {
                            let resp = ui.add(egui::Button::image(
                                egui::Image::new(&t).fit_to_exact_size(vec2(40.0, 40.0)),
                            ));
                            if resp.clicked() {
                                self.selected = k.memory().get(n.id).map(|e| {
                                    (n.id, k.index().search(&e.embedding, k.k() + 1).remove(0))
                                });
                            }
                        }
                        ui.label(RichText::new(format!("{:.3}", n.similarity)).small());
                    });
                }
            });
        }
    }

    fn plot(
        &mut self,
        ui: &mut egui::Ui,
        k: &mut Knowledge,
        query: Option<&[f32]>,
        influence: Option<&BTreeMap<u64, usize>>,
    ) {
        let ctx = ui.ctx().clone();
        self.colours(influence);
        let (Some(map), Some((_, colours)), Some(derived)) =
            (&self.map, &self.colours, &self.derived)
        else {
            return;
        };
        let bounds = {
            let mut b = PlotBounds::NOTHING;
            map.xy
                .iter()
                .for_each(|p| b.extend_with(&PlotPoint::new(p[0], p[1])));
            b
        };
        let radius = if map.ids.len() > 20_000 { 1.5 } else { 2.5 };
        let marked: Vec<usize> = match self.colour_by {
            ColourBy::Prediction => colours
                .iter()
                .enumerate()
                .filter(|(_, c)| **c == WRONG)
                .map(|(i, _)| i)
                .collect(),
            _ => Vec::new(),
        };
        let selected_pos: Vec<usize> = self
            .selection
            .iter()
            .filter_map(|&id| map.position(id))
            .collect();
        let neighbour_lines = match &self.selected {
            Some((id, neighbours)) => match map.position(*id) {
                Some(i) => neighbours
                    .iter()
                    .filter(|n| n.id != *id)
                    .take(k.k())
                    .filter_map(|n| map.position(n.id))
                    .map(|j| (map.xy[i], map.xy[j]))
                    .collect(),
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        let cloud = Cloud {
            base: PlotItemBase::new("entries".into()),
            xy: &map.xy,
            colours,
            class: &derived.class,
            radius,
            marked: &marked,
            highlighted: &selected_pos,
            lasso: &self.lasso,
            neighbour_lines,
            selected: self
                .selected
                .as_ref()
                .and_then(|(id, _)| map.position(*id))
                .map(|i| map.xy[i]),
            query: query
                .filter(|q| q.len() == k.memory().dim())
                .map(|q| map.place(q)),
            bounds,
        };
        let lasso_mode = self.lasso_mode;
        let response = Plot::new("memory map")
            .data_aspect(1.0)
            .allow_drag(!lasso_mode)
            .allow_boxed_zoom(!lasso_mode)
            .show_grid(false)
            .x_axis_label("PC1")
            .y_axis_label("PC2")
            .label_formatter(|_| None)
            .show(ui, |p| p.add(cloud));
        let transform = response.transform;
        self.transform = Some(transform);
        let resp = response.response;
        // The entry under the pointer, in screen distance.
        let pick = |pos: Pos2| -> Option<usize> {
            let mut best = None;
            let mut best_d = PICK_RADIUS * PICK_RADIUS;
            for (i, (p, c)) in map.xy.iter().zip(&derived.class).enumerate() {
                if c.is_none() {
                    continue;
                }
                let s = transform.position_from_point(&PlotPoint::new(p[0], p[1]));
                let d = s.distance_sq(pos);
                if d <= best_d {
                    best_d = d;
                    best = Some(i);
                }
            }
            best
        };
        let hovered = resp.hover_pos().and_then(pick).map(|i| map.ids[i]);
        if lasso_mode {
            if resp.drag_started() {
                self.lasso.clear();
            }
            if resp.dragged()
                && let Some(pos) = resp.interact_pointer_pos()
            {
                let v = transform.value_from_position(pos);
                let far_enough = self.lasso.last().is_none_or(|l| {
                    transform
                        .position_from_point(&PlotPoint::new(l[0], l[1]))
                        .distance(pos)
                        >= 3.0
                });
                if far_enough {
                    self.lasso.push([v.x as f32, v.y as f32]);
                }
            }
            if resp.drag_stopped() {
                let polygon = self.lasso.clone();
                self.select_polygon(&polygon, k);
            }
        }
        if resp.clicked()
            && let Some(id) = hovered
        {
            self.selected = k
                .memory()
                .get(id)
                .map(|e| (id, k.index().search(&e.embedding, k.k() + 1).remove(0)));
        }
        if let Some(id) = hovered {
            let tex = k.thumbnail(&ctx, id);
            let label = k
                .memory()
                .get(id)
                .map(|e| format!("#{id} {}", e.label))
                .unwrap_or_default();
            let extra = match (
                self.colour_by,
                self.predictions.as_ref().and_then(|p| p.1.get(&id)),
            ) {
                (ColourBy::Prediction, Some(Some(p))) => format!(
                    "\npredicted {}",
                    k.labels().get(*p as usize).map_or("?", |s| s.as_str())
                ),
                _ => String::new(),
            };
            let influence_text = match influence.and_then(|m| m.get(&id)) {
                Some(n) if self.colour_by == ColourBy::Influence => {
                    format!("\ncan flip {n} watched queries")
                }
                _ => String::new(),
            };
            resp.on_hover_ui_at_pointer(|ui| {
                if let Some(t) = tex {
                    ui.add(egui::Image::new(&t).fit_to_exact_size(vec2(64.0, 64.0)));
                }
                ui.label(format!("{label}{extra}{influence_text}"));
            });
        }
    }
}

/// A legend entry: a colour square and its name.
fn swatch(ui: &mut egui::Ui, colour: Color32, text: &str) {
    ui.horizontal(|ui| {
        ui.spacing_mut().item_spacing.x = 3.0;
        let (rect, _) = ui.allocate_exact_size(vec2(9.0, 9.0), egui::Sense::hover());
        ui.painter().rect_filled(rect, 1.0, colour);
        ui.label(RichText::new(text).small());
    });
}

/// All entries as one mesh of small quads: deleted ones first (underneath), then the live ones,
/// then marked (wrong) ones again on top, then the selection outlined.
struct Cloud<'a> {
    base: PlotItemBase,
    xy: &'a [[f32; 2]],
    colours: &'a [Color32],
    class: &'a [Option<u32>],
    radius: f32,
    marked: &'a [usize],
    highlighted: &'a [usize],
    /// Overlays in map coordinates, drawn without moving the view: the lasso, lines from the
    /// clicked entry to its neighbours, and the current query.
    lasso: &'a [[f32; 2]],
    neighbour_lines: Vec<([f32; 2], [f32; 2])>,
    selected: Option<[f32; 2]>,
    query: Option<[f32; 2]>,
    bounds: PlotBounds,
}

impl PlotItem for Cloud<'_> {
    fn shapes(&self, _ui: &egui::Ui, transform: &PlotTransform, shapes: &mut Vec<Shape>) {
        let frame = transform.frame().expand(4.0);
        let mut mesh = Mesh::default();
        mesh.reserve_vertices(self.xy.len() * 4);
        mesh.reserve_triangles(self.xy.len() * 2);
        let mut quad = |i: usize, r: f32, c: Color32| {
            let p = self.xy[i];
            let s = transform.position_from_point(&PlotPoint::new(p[0], p[1]));
            if frame.contains(s) {
                mesh.add_colored_rect(Rect::from_center_size(s, vec2(2.0 * r, 2.0 * r)), c);
            }
        };
        for deleted_pass in [true, false] {
            for i in 0..self.xy.len() {
                if self.class[i].is_none() == deleted_pass {
                    quad(i, self.radius, self.colours[i]);
                }
            }
        }
        for &i in self.marked {
            quad(i, self.radius, self.colours[i]);
        }
        for &i in self.highlighted {
            quad(i, self.radius + 2.0, Color32::WHITE);
            quad(i, self.radius, self.colours[i]);
        }
        shapes.push(Shape::mesh(mesh));
        let screen = |p: [f32; 2]| transform.position_from_point(&PlotPoint::new(p[0], p[1]));
        for (a, b) in &self.neighbour_lines {
            shapes.push(Shape::line_segment(
                [screen(*a), screen(*b)],
                Stroke::new(1.0, Color32::WHITE),
            ));
        }
        if let Some(p) = self.selected {
            shapes.push(Shape::circle_stroke(
                screen(p),
                7.0,
                Stroke::new(1.5, Color32::WHITE),
            ));
        }
        if self.lasso.len() > 1 {
            let mut points: Vec<Pos2> = self.lasso.iter().map(|p| screen(*p)).collect();
            points.push(points[0]);
            shapes.push(Shape::line(points, Stroke::new(1.5, LASSO)));
        }
        if let Some(q) = self.query {
            let c = screen(q);
            shapes.push(Shape::circle_stroke(c, 11.0, Stroke::new(2.0, LASSO)));
            for (dx, dy) in [(1.0, 0.0), (0.0, 1.0), (0.7, 0.7), (0.7, -0.7)] {
                shapes.push(Shape::line_segment(
                    [c - vec2(dx, dy) * 8.0, c + vec2(dx, dy) * 8.0],
                    Stroke::new(2.0, Color32::WHITE),
                ));
            }
        }
    }

    fn initialize(&mut self, _x_range: std::ops::RangeInclusive<f64>) {}

    fn color(&self) -> Color32 {
        Color32::GRAY
    }

    fn geometry(&self) -> PlotGeometry<'_> {
        PlotGeometry::None
    }

    fn bounds(&self) -> PlotBounds {
        self.bounds
    }

    fn base(&self) -> &PlotItemBase {
        &self.base
    }

    fn base_mut(&mut self) -> &mut PlotItemBase {
        &mut self.base
    }
}

impl super::Panel for MapPanel {
    fn tab(&self) -> super::Tab {
        super::Tab::Map
    }
    fn title(&self) -> String {
        "Map".into()
    }
    fn show(&mut self, ui: &mut egui::Ui, cx: &mut super::PanelContext<'_>) {
        if let Some(k) = cx.knowledge.as_deref_mut() {
            self.ui(ui, k, cx.query, cx.influence.as_ref().map(|r| &r.influence));
        }
        cx.commands.append(&mut self.outbox);
    }
}
