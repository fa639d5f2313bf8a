//! The Privacy panel: which memory entries would, if removed alone, change at least one of the
//! watched test queries' predictions (the paper's influence analysis, exact). Runs on a worker
//! with progress, plots the non-private fraction against k, and lists the most influential
//! entries — click one to inspect or unlearn it.

use std::sync::Arc;

use egui::RichText;
use egui_plot::{Line, Plot, PlotPoints, Points};

use super::jobs::Job;
use super::knowledge::Knowledge;
use crate::memory::privacy::{PrivacyReport, analyse};

pub struct PrivacyPanel {
    /// k values analysed.
    pub ks: Vec<usize>,
    job: Option<Job<Vec<PrivacyReport>>>,
    /// Shared with the Map panel, which colours entries by their influence.
    pub reports: Vec<Arc<PrivacyReport>>,
    /// The memory generation the reports describe (stale after an edit).
    pub generation: u64,
    pub shown_k: usize,
    pub selected: Option<u64>,
    pub message: String,
}

impl Default for PrivacyPanel {
    fn default() -> Self {
        Self {
            ks: vec![1, 3, 5, 10, 20, 50],
            job: None,
            reports: Vec::new(),
            generation: 0,
            shown_k: 10,
            selected: None,
            message: String::new(),
        }
    }
}

impl PrivacyPanel {
    /// The report at the shown k (else the first) while it describes memory `generation`.
    pub(crate) fn current_report(&self, generation: u64) -> Option<Arc<PrivacyReport>> {
        (self.generation == generation)
            .then(|| {
                self.reports
                    .iter()
                    .find(|r| r.k == self.shown_k)
                    .or(self.reports.first())
                    .cloned()
            })
            .flatten()
    }

    pub fn is_busy(&self) -> bool {
        self.job.is_some()
    }

    pub fn start(&mut self, ctx: &egui::Context, k: &Knowledge) {
        let index = Arc::new(k.index().clone());
        let queries: Vec<f32> = k
            .watch()
            .queries
            .iter()
            .flat_map(|q| q.embedding.iter().copied())
            .collect();
        let ks = self.ks.clone();
        let rule = k.watch().rule;
        self.generation = k.generation();
        self.job = Some(Job::spawn(ctx, "privacy analysis", move |h| {
            let mut out = Vec::new();
            for (i, &kk) in ks.iter().enumerate() {
                if h.cancelled() {
                    return Err("cancelled".into());
                }
                h.progress(i as f32 / ks.len() as f32, format!("k = {kk}"));
                out.push(analyse(&index, &queries, kk, rule));
            }
            h.progress(1.0, "done");
            Ok(out)
        }));
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, k: &mut Knowledge) {
        let ctx = ui.ctx().clone();
        if let Some(job) = &mut self.job
            && let Some(r) = job.poll()
        {
            self.job = None;
            match r {
                Ok(reports) => {
                    self.reports = reports.into_iter().map(Arc::new).collect();
                    self.message.clear();
                }
                Err(e) => self.message = e,
            }
        }
        ui.horizontal(|ui| {
            ui.heading("Privacy");
            ui.label(format!(
                "over the {} watched test queries and {} memory entries",
                k.watch().queries.len(),
                k.memory().len()
            ));
        });
        ui.label(
            RichText::new(
                "An entry is non-private when removing it alone changes at least one prediction (exact: one top-(k+1) search per query, \
                 every candidate removal re-voted).",
            )
            .weak(),
        );
        ui.horizontal(|ui| {
            if ui
                .add_enabled(
                    self.job.is_none() && !k.watch().queries.is_empty(),
                    egui::Button::new("Run analysis"),
                )
                .clicked()
            {
                self.start(&ctx, k);
            }
            if let Some(job) = &self.job {
                job.ui(ui);
            }
            if !self.reports.is_empty() && self.generation != k.generation() {
                ui.label(
                    RichText::new("the memory changed since: run again")
                        .color(egui::Color32::YELLOW),
                );
            }
        });
        if !self.message.is_empty() {
            ui.label(&self.message);
        }
        if self.reports.is_empty() {
            return;
        }
        let points: Vec<[f64; 2]> = self
            .reports
            .iter()
            .map(|r| [r.k as f64, r.non_private_fraction * 100.0])
            .collect();
        Plot::new("non-private vs k")
            .height(200.0)
            .x_axis_label("k")
            .y_axis_label("non-private entries (%)")
            .show(ui, |p| {
                p.line(Line::new("non-private %", PlotPoints::from(points.clone())));
                p.points(Points::new("", PlotPoints::from(points)).radius(4.0));
            });
        ui.horizontal(|ui| {
            ui.label("most influential entries at k =");
            for r in &self.reports {
                ui.selectable_value(&mut self.shown_k, r.k, r.k.to_string());
            }
        });
        let Some(report) = self
            .reports
            .iter()
            .find(|r| r.k == self.shown_k)
            .or(self.reports.first())
        else {
            return;
        };
        ui.label(format!(
            "k = {}: {:.2} % of the memory is non-private ({} entries)",
            report.k,
            report.non_private_fraction * 100.0,
            report.influence.len()
        ));
        let mut ranked: Vec<(u64, usize)> =
            report.influence.iter().map(|(&id, &c)| (id, c)).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        egui::ScrollArea::horizontal().show(ui, |ui| {
            ui.horizontal(|ui| {
                for (id, count) in ranked.iter().take(24) {
                    ui.vertical(|ui| {
                        let resp = match k.thumbnail(&ctx, *id) {
                            Some(t) => ui.add(egui::Button::image(
                                egui::Image::new(&t).fit_to_exact_size(egui::vec2(56.0, 56.0)),
                            )),
                            None => ui.button(format!("#{id}\n(gone)")),
                        };
                        resp.widget_info(|| {
                            egui::WidgetInfo::labeled(
                                egui::Role::Button,
                                true,
                                format!("influential #{id}"),
                            )
                        });
                        if resp.clicked() {
                            self.selected = Some(*id);
                        }
                        ui.label(RichText::new(format!("#{id}\n{count} queries")).small());
                    });
                }
            });
        });
        if let Some(id) = self.selected {
            match k.memory().get(id).cloned() {
                Some(e) => {
                    ui.horizontal(|ui| {
                        ui.label(format!("#{id} ({}) from {}", e.label, e.source));
                        if ui.button("Unlearn it").clicked() {
                            k.delete(id);
                            self.selected = None;
                        }
                    });
                }
                None => self.selected = None,
            }
        }
    }
}

impl super::Panel for PrivacyPanel {
    fn tab(&self) -> super::Tab {
        super::Tab::Privacy
    }
    fn title(&self) -> String {
        "Privacy".into()
    }
    fn show(&mut self, ui: &mut egui::Ui, cx: &mut super::PanelContext<'_>) {
        if let Some(k) = cx.knowledge.as_deref_mut() {
            self.ui(ui, k);
        }
    }
}
