//! Background jobs for the panels: a closure on its own thread that reports progress (and, for
//! jobs such as training, a stream of events) over a channel, wakes the UI with a repaint, and
//! can be cancelled. A panic in the closure is caught and becomes the job's error; a worker that
//! dies without a result is noticed. Every panel's background work, training included, is a [`Job`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};

enum Message<T, E> {
    Progress(f32, String),
    Event(E),
    Done(Result<T, String>),
}

/// What the job's closure sees.
pub struct JobHandle<T, E = ()> {
    tx: Sender<Message<T, E>>,
    ctx: egui::Context,
    cancel: Arc<AtomicBool>,
}

impl<T, E> JobHandle<T, E> {
    /// Reports progress in [0, 1] with a line of text.
    pub fn progress(&self, fraction: f32, text: impl Into<String>) {
        let _ = self.tx.send(Message::Progress(fraction, text.into()));
        self.ctx.request_repaint();
    }

    /// Sends an event to the panel (collected by [`Job::poll`], taken by [`Job::take_events`]).
    pub(crate) fn send(&self, event: E) {
        let _ = self.tx.send(Message::Event(event));
        self.ctx.request_repaint();
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The cancel flag itself, for code that takes one (the trainer checks it between steps).
    pub(crate) fn cancel_flag(&self) -> &AtomicBool {
        &self.cancel
    }
}

/// A running job; `E` is the type of the events it streams (none by default).
pub struct Job<T, E = ()> {
    pub label: String,
    pub progress: f32,
    pub text: String,
    rx: Receiver<Message<T, E>>,
    cancel: Arc<AtomicBool>,
    events: Vec<E>,
    started: std::time::Instant,
}

/// "45 s", "3 min 20 s", "2 h 5 min".
pub fn short_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// The time left at `fraction` done after `elapsed` seconds, assuming a steady rate; None
/// before there is enough progress to tell (under 2 %, or under a second in).
pub fn eta(fraction: f32, elapsed: f64) -> Option<f64> {
    ((0.02..1.0).contains(&fraction) && elapsed >= 1.0)
        .then(|| elapsed * (1.0 - fraction as f64) / fraction as f64)
}

/// The error of a job whose closure panicked.
pub const PANICKED: &str = "the job failed unexpectedly (a bug: please report it)";
/// The error of a job whose worker ended without a result.
pub const VANISHED: &str = "the job stopped without a result";

impl<T: Send + 'static, E: Send + 'static> Job<T, E> {
    pub fn spawn(
        ctx: &egui::Context,
        label: &str,
        work: impl FnOnce(&JobHandle<T, E>) -> Result<T, String> + Send + 'static,
    ) -> Self {
        let (tx, rx) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let handle = JobHandle {
            tx: tx.clone(),
            ctx: ctx.clone(),
            cancel: cancel.clone(),
        };
        let ctx = ctx.clone();
        std::thread::Builder::new()
            .name(format!("procmem {label}"))
            .spawn(move || {
                let result =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&handle)))
                        .unwrap_or_else(|_| Err(PANICKED.into()));
                let _ = tx.send(Message::Done(result));
                ctx.request_repaint();
            })
            .expect("spawn a job thread");
        Self {
            label: label.to_string(),
            progress: 0.0,
            text: String::new(),
            rx,
            cancel,
            events: Vec::new(),
            started: std::time::Instant::now(),
        }
    }

    /// Drains messages (events are kept for [`Job::take_events`]); returns the result once the
    /// job has finished, [`PANICKED`] if its closure panicked, [`VANISHED`] if its worker ended
    /// without a result.
    pub(crate) fn poll(&mut self) -> Option<Result<T, String>> {
        loop {
            match self.rx.try_recv() {
                Ok(Message::Progress(f, text)) => {
                    self.progress = f;
                    self.text = text;
                }
                Ok(Message::Event(e)) => self.events.push(e),
                Ok(Message::Done(r)) => return Some(r),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => return Some(Err(VANISHED.into())),
            }
        }
    }

    /// The events received since the last call, in order.
    pub(crate) fn take_events(&mut self) -> Vec<E> {
        std::mem::take(&mut self.events)
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// A progress bar with a Cancel button, and the time left once the rate is known.
    pub fn ui(&self, ui: &mut egui::Ui) -> bool {
        let mut cancel = false;
        let left = eta(self.progress, self.started.elapsed().as_secs_f64())
            .map(|s| format!(", about {} left", short_duration(s)))
            .unwrap_or_default();
        ui.horizontal(|ui| {
            ui.add(
                egui::ProgressBar::new(self.progress)
                    .show_percentage()
                    .desired_width(360.0)
                    .text(format!("{}: {}{left}", self.label, self.text)),
            );
            cancel = ui.button("Cancel").clicked();
        });
        if cancel {
            self.cancel();
        }
        cancel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finish<T: Send + 'static, E: Send + 'static>(job: &mut Job<T, E>) -> Result<T, String> {
        let start = std::time::Instant::now();
        loop {
            if let Some(r) = job.poll() {
                return r;
            }
            assert!(start.elapsed().as_secs() < 30, "the job did not finish");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn time_left_is_told_once_the_rate_is_known() {
        assert_eq!(eta(0.01, 10.0), None);
        assert_eq!(eta(0.5, 0.5), None);
        assert_eq!(eta(1.0, 30.0), None);
        assert_eq!(eta(0.25, 10.0), Some(30.0));
        assert_eq!(short_duration(eta(0.25, 10.0).unwrap()), "30 s");
        assert_eq!(short_duration(200.4), "3 min 20 s");
        assert_eq!(short_duration(7500.0), "2 h 5 min");
    }

    #[test]
    fn events_arrive_in_order_and_a_panic_becomes_the_jobs_error() {
        let ctx = egui::Context::default();
        let mut job: Job<u32, u32> = Job::spawn(&ctx, "count", |h| {
            for i in 0..5 {
                h.send(i);
            }
            Ok(7)
        });
        assert_eq!(finish(&mut job), Ok(7));
        assert_eq!(job.take_events(), vec![0, 1, 2, 3, 4]);
        assert!(job.take_events().is_empty());

        let mut job: Job<(), u32> = Job::spawn(&ctx, "panics", |h| {
            h.send(1);
            panic!("a bug in the worker");
        });
        assert_eq!(finish(&mut job), Err(PANICKED.to_string()));
        assert_eq!(
            job.take_events(),
            vec![1],
            "events sent before the panic still arrive"
        );
    }
}
