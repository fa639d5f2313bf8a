//! Background jobs for the panels: a closure on its own thread that reports progress over a
//! channel, wakes the UI with a repaint, and can be cancelled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};

enum Message<T> {
    Progress(f32, String),
    Done(Result<T, String>),
}

/// What the job's closure sees.
pub struct JobHandle<T> {
    tx: Sender<Message<T>>,
    ctx: egui::Context,
    cancel: Arc<AtomicBool>,
}

impl<T> JobHandle<T> {
    /// Reports progress in [0, 1] with a line of text.
    pub fn progress(&self, fraction: f32, text: impl Into<String>) {
        let _ = self.tx.send(Message::Progress(fraction, text.into()));
        self.ctx.request_repaint();
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// A running job.
pub struct Job<T> {
    pub label: String,
    pub progress: f32,
    pub text: String,
    rx: Receiver<Message<T>>,
    cancel: Arc<AtomicBool>,
}

impl<T: Send + 'static> Job<T> {
    pub fn spawn(ctx: &egui::Context, label: &str, work: impl FnOnce(&JobHandle<T>) -> Result<T, String> + Send + 'static) -> Self {
        let (tx, rx) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let handle = JobHandle { tx: tx.clone(), ctx: ctx.clone(), cancel: cancel.clone() };
        let ctx = ctx.clone();
        std::thread::Builder::new()
            .name(format!("procmem {label}"))
            .spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&handle)))
                    .unwrap_or_else(|_| Err("the job failed unexpectedly (a bug: please report it)".into()));
                let _ = tx.send(Message::Done(result));
                ctx.request_repaint();
            })
            .expect("spawn a job thread");
        Self { label: label.to_string(), progress: 0.0, text: String::new(), rx, cancel }
    }

    /// Drains messages; returns the result once the job has finished.
    pub fn poll(&mut self) -> Option<Result<T, String>> {
        loop {
            match self.rx.try_recv() {
                Ok(Message::Progress(f, text)) => {
                    self.progress = f;
                    self.text = text;
                }
                Ok(Message::Done(r)) => return Some(r),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => return Some(Err("the job stopped without a result".into())),
            }
        }
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// A progress bar with a Cancel button.
    pub fn ui(&self, ui: &mut egui::Ui) -> bool {
        let mut cancel = false;
        ui.horizontal(|ui| {
            ui.add(
                egui::ProgressBar::new(self.progress).show_percentage().desired_width(240.0).text(format!("{}: {}", self.label, self.text)),
            );
            cancel = ui.button("Cancel").clicked();
        });
        if cancel {
            self.cancel();
        }
        cancel
    }
}
