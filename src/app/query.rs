//! The Query panel: drop an image (or pick one from the memory) and see its neighbours with
//! similarities and labels, the vote as a bar chart, and the prediction. Below, the watch list:
//! test queries whose predictions are recomputed after every deletion, flips highlighted —
//! click a neighbour to unlearn it and watch predictions change.

use egui::{Color32, RichText, TextureHandle, TextureOptions};

use super::jobs::Job;
use super::knowledge::{IMAGE_EXTENSIONS, Knowledge, dropped_files};
use crate::memory::Answer;

/// The current query: its image, its embedding and, if it came from the memory, its id.
pub struct Query {
    pub name: String,
    pub embedding: Vec<f32>,
    pub from_memory: Option<u64>,
    texture: Option<TextureHandle>,
}

impl Query {
    /// A query by embedding alone (no picture, not from the memory).
    pub fn new(name: String, embedding: Vec<f32>) -> Self {
        Self {
            name,
            embedding,
            from_memory: None,
            texture: None,
        }
    }
}

#[derive(Default)]
pub struct QueryPanel {
    pub query: Option<Query>,
    pub answer: Option<Answer>,
    answered_generation: u64,
    embed_job: Option<Job<(String, Vec<f32>, image::RgbImage)>>,
    pub message: String,
    /// Neighbour clicked in the grid.
    pub selected: Option<u64>,
    started: bool,
}

fn short_name(name: &str) -> String {
    std::path::Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(name)
        .to_string()
}

impl QueryPanel {
    /// The "not in memory" switch, its threshold, a suggested value, and the query's score.
    fn abstention_ui(&mut self, ui: &mut egui::Ui, k: &mut Knowledge) {
        ui.horizontal(|ui| {
            let mut on = k.abstain_below.is_some();
            let resp = ui
                .checkbox(&mut on, "say “not in memory” when the k-th neighbour's similarity is below")
                .on_hover_text("Abstain instead of forcing a label on a query unlike anything in the memory (Sun et al. 2022).");
            if resp.changed() {
                k.abstain_below = if on { Some(k.suggest_abstain_threshold().unwrap_or(0.5)) } else { None };
            }
            if let Some(mut t) = k.abstain_below {
                ui.add(egui::DragValue::new(&mut t).range(-1.0..=1.0).speed(0.002).fixed_decimals(3));
                if ui
                    .button("Suggest")
                    .on_hover_text("The threshold that 95 % of the memory's own entries pass, each queried against the rest")
                    .clicked()
                    && let Some(s) = k.suggest_abstain_threshold()
                {
                    t = s;
                }
                k.abstain_below = Some(t);
            }
            if let Some(score) = self.answer.as_ref().and_then(|a| a.in_memory) {
                ui.label(RichText::new(format!("this query: {score:.3}")).weak());
            }
        });
    }

    pub fn is_busy(&self) -> bool {
        self.embed_job.is_some()
    }

    /// Queries with a memory entry (its own match excluded).
    pub(crate) fn query_entry(&mut self, ctx: &egui::Context, k: &mut Knowledge, id: u64) {
        let Some(e) = k.memory().get(id) else { return };
        let (name, embedding) = (format!("memory #{id} ({})", e.label), e.embedding.clone());
        let texture = k.thumbnail(ctx, id);
        self.query = Some(Query {
            name,
            embedding,
            from_memory: Some(id),
            texture,
        });
        self.answer = None;
    }

    /// Queries with a watched test query.
    pub(crate) fn query_watched(&mut self, ctx: &egui::Context, k: &mut Knowledge, i: usize) {
        let Some(q) = k.watch().queries.get(i) else {
            return;
        };
        let (name, embedding) = (
            format!("test query {}", short_name(&q.name)),
            q.embedding.clone(),
        );
        let texture = k.watch_thumbnail(ctx, i);
        self.query = Some(Query {
            name,
            embedding,
            from_memory: None,
            texture,
        });
        self.answer = None;
    }

    /// Embeds an image file's bytes on a worker; the answer follows.
    pub(crate) fn query_bytes(
        &mut self,
        ctx: &egui::Context,
        k: &Knowledge,
        name: String,
        bytes: Vec<u8>,
    ) {
        let source = k.perception().source.clone();
        self.embed_job = Some(Job::spawn(ctx, "embedding the query", move |_| {
            let img = crate::imageio::decode_rgb(&bytes, std::path::Path::new(&name))
                .map_err(|e| e.to_string())?;
            let (emb, _) = source
                .embed_rgb(std::slice::from_ref(&img), |_| {})
                .map_err(|e| e.to_string())?;
            Ok((name, emb, img))
        }));
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, k: &mut Knowledge) {
        let ctx = ui.ctx().clone();
        if let Some(job) = &mut self.embed_job
            && let Some(r) = job.poll()
        {
            self.embed_job = None;
            match r {
                Ok((name, embedding, img)) => {
                    let thumb = image::imageops::thumbnail(&img, 128, 128);
                    let color = egui::ColorImage::from_rgb(
                        [thumb.width() as usize, thumb.height() as usize],
                        thumb.as_raw(),
                    );
                    let texture = Some(ctx.load_texture("query", color, TextureOptions::LINEAR));
                    self.query = Some(Query {
                        name,
                        embedding,
                        from_memory: None,
                        texture,
                    });
                    self.answer = None;
                    self.message.clear();
                }
                Err(e) => self.message = e,
            }
        }
        if let Some((name, bytes)) = dropped_files(&ctx).into_iter().next() {
            self.query_bytes(&ctx, k, name, bytes);
        }
        // A first query, so the panel shows something on first launch.
        if self.query.is_none()
            && self.embed_job.is_none()
            && !self.started
            && !k.watch().queries.is_empty()
        {
            self.query_watched(&ctx, k, 0);
        }
        self.started = true;
        // Answers follow every edit of the memory.
        if let Some(q) = &self.query
            && (self.answer.is_none() || self.answered_generation != k.generation())
        {
            self.answer = Some(k.answer(&q.embedding, q.from_memory));
            self.answered_generation = k.generation();
        }

        egui::Panel::bottom("watch list")
            .resizable(true)
            .default_size(260.0)
            .show(ui, |ui| self.watch_ui(ui, k));

        egui::CentralPanel::default().show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("Query");
                if ui.button("Open image…").clicked()
                    && let Some(p) = rfd::FileDialog::new().add_filter("images", &IMAGE_EXTENSIONS).pick_file()
                {
                    match std::fs::read(&p) {
                        Ok(b) => self.query_bytes(&ctx, k, p.display().to_string(), b),
                        Err(e) => self.message = format!("{}: {e}", p.display()),
                    }
                }
                ui.label(RichText::new("or drop an image anywhere in this window, or use “Query with it” in the Memory tab").weak());
            });
            let mut kk = k.k();
            ui.horizontal(|ui| {
                let l = ui.label("k (neighbours that vote)");
                if ui.add(egui::DragValue::new(&mut kk).range(1..=200)).labelled_by(l.id).changed() {
                    k.set_k(kk);
                }
            });
            self.abstention_ui(ui, k);
            if let Some(job) = &self.embed_job {
                job.ui(ui);
            }
            if !self.message.is_empty() {
                ui.colored_label(Color32::LIGHT_RED, &self.message);
            }
            let (Some(q), Some(answer)) = (&self.query, &self.answer) else {
                ui.label("No query yet.");
                return;
            };
            ui.horizontal(|ui| {
                if let Some(t) = &q.texture {
                    ui.add(egui::Image::new(t).fit_to_exact_size(egui::vec2(128.0, 128.0)));
                }
                ui.vertical(|ui| {
                    ui.label(&q.name);
                    let predicted = answer.vote.prediction.map(|c| k.labels()[c as usize].clone()).unwrap_or_else(|| "—".into());
                    if answer.abstains(k.abstain_below) {
                        ui.heading(RichText::new("not in memory").color(Color32::from_rgb(230, 160, 60)));
                        ui.label(
                            RichText::new(format!(
                                "neighbour {}'s similarity {:.3} is below the threshold {:.3}; the vote would say {predicted}",
                                k.k(),
                                answer.in_memory.unwrap_or(f32::NAN),
                                k.abstain_below.unwrap_or(f32::NAN)
                            ))
                            .weak(),
                        );
                    } else {
                        ui.heading(format!("prediction: {predicted}"));
                    }
                    // The vote as horizontal bars: each class's share of the total weight.
                    let total: f32 = answer.vote.scores.iter().sum::<f32>().max(f32::MIN_POSITIVE);
                    let mut classes: Vec<(usize, f32)> = answer.vote.scores.iter().copied().enumerate().filter(|(_, s)| *s > 0.0).collect();
                    classes.sort_by(|a, b| b.1.total_cmp(&a.1));
                    for (c, score) in classes {
                        ui.horizontal(|ui| {
                            ui.add_sized([110.0, 16.0], egui::Label::new(RichText::new(&k.labels()[c]).small()));
                            ui.add(
                                egui::ProgressBar::new(score / total)
                                    .desired_width(300.0)
                                    .text(format!("{:.1} % of the vote", 100.0 * score / total)),
                            );
                        });
                    }
                });
            });
            ui.separator();
            ui.label(format!("{} nearest neighbours (click one to select it, then unlearn it)", answer.neighbours.len()));
            let neighbours = answer.neighbours.clone();
            egui::ScrollArea::vertical().id_salt("neighbours").max_height(ui.available_height() - 40.0).show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    for n in &neighbours {
                        ui.vertical(|ui| {
                            let selected = self.selected == Some(n.id);
                            let resp = match k.thumbnail(&ctx, n.id) {
                                Some(t) => ui.add(
                                    egui::Button::image(egui::Image::new(&t).fit_to_exact_size(egui::vec2(72.0, 72.0)))
                                        .stroke(if selected { egui::Stroke::new(2.0, Color32::YELLOW) } else { egui::Stroke::NONE }),
                                ),
                                None => ui.button(format!("#{}", n.id)),
                            };
                            resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, format!("neighbour #{}", n.id)));
                            if resp.clicked() {
                                self.selected = if selected { None } else { Some(n.id) };
                            }
                            ui.label(RichText::new(format!("{}\ncos {:.4}", k.labels()[n.label as usize], n.similarity)).small());
                        });
                    }
                });
            });
            if let Some(id) = self.selected {
                ui.horizontal(|ui| {
                    ui.label(format!("selected neighbour #{id}"));
                    if ui.button("Unlearn neighbour").clicked() {
                        k.delete(id);
                        self.selected = None;
                    }
                });
            }
        });
    }

    fn watch_ui(&mut self, ui: &mut egui::Ui, k: &mut Knowledge) {
        ui.horizontal(|ui| {
            ui.heading("Watch list");
            let acc = k
                .watch()
                .accuracy()
                .map(|a| format!("accuracy {:.1} %", a * 100.0))
                .unwrap_or_default();
            ui.label(format!(
                "{} test queries, k = {}; {acc}",
                k.watch().queries.len(),
                k.k()
            ));
            if ui
                .add_enabled(k.can_undo(), egui::Button::new("Undo last unlearning"))
                .clicked()
            {
                k.undo();
            }
        });
        if let Some(edit) = &k.last_edit() {
            ui.label(format!(
                "last edit: {} — {} queries touched, {} prediction(s) flipped, updated in {} µs",
                edit.what,
                edit.update.touched.len(),
                edit.update.flipped.len(),
                edit.micros
            ));
        }
        if k.watch().queries.is_empty() {
            ui.label(RichText::new("No watched queries (load a memory with a watch list).").weak());
            return;
        }
        let flipped: Vec<usize> = k
            .last_edit()
            .as_ref()
            .map(|e| e.update.flipped.clone())
            .unwrap_or_default();
        // Changed queries first: those are the ones to look at.
        let mut order: Vec<usize> = (0..k.watch().queries.len()).collect();
        order.sort_by_key(|&i| {
            let q = &k.watch().queries[i];
            (
                !flipped.contains(&i),
                q.vote.prediction == q.initial_prediction,
                i,
            )
        });
        let labels = k.labels().to_vec();
        let name = |c: Option<u32>| {
            c.map(|c| labels[c as usize].clone())
                .unwrap_or_else(|| "—".into())
        };
        let ctx = ui.ctx().clone();
        let mut pick = None;
        egui::ScrollArea::vertical()
            .id_salt("watch")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                egui::Grid::new("watch grid")
                    .striped(true)
                    .num_columns(5)
                    .show(ui, |ui| {
                        ui.label("");
                        ui.strong("query");
                        ui.strong("true class");
                        ui.strong("at start");
                        ui.strong("now");
                        ui.end_row();
                        for i in order {
                            let resp = match k.watch_thumbnail(&ctx, i) {
                                Some(t) => ui.add(egui::Button::image(
                                    egui::Image::new(&t).fit_to_exact_size(egui::vec2(28.0, 28.0)),
                                )),
                                None => ui.small_button("query"),
                            };
                            resp.widget_info(|| {
                                egui::WidgetInfo::labeled(
                                    egui::Role::Button,
                                    true,
                                    format!("watched query {i}"),
                                )
                            });
                            if resp.on_hover_text("query with it").clicked() {
                                pick = Some(i);
                            }
                            let q = &k.watch().queries[i];
                            ui.label(short_name(&q.name));
                            ui.label(name(q.truth));
                            ui.label(name(q.initial_prediction));
                            let now = name(q.vote.prediction);
                            let color = if flipped.contains(&i) {
                                Color32::from_rgb(255, 140, 0)
                            } else if q.vote.prediction != q.initial_prediction {
                                Color32::YELLOW
                            } else {
                                ui.visuals().text_color()
                            };
                            let mark = if flipped.contains(&i) {
                                " (flipped by the last edit)"
                            } else {
                                ""
                            };
                            ui.colored_label(color, format!("{now}{mark}"));
                            ui.end_row();
                        }
                    });
            });
        if let Some(i) = pick {
            self.query_watched(&ctx, k, i);
        }
    }
}

impl super::Panel for QueryPanel {
    fn tab(&self) -> super::Tab {
        super::Tab::Query
    }
    fn title(&self) -> String {
        "Query".into()
    }
    fn show(&mut self, ui: &mut egui::Ui, cx: &mut super::PanelContext<'_>) {
        if let Some(k) = cx.knowledge.as_deref_mut() {
            self.ui(ui, k);
        }
    }
}
