//! The generation worker: owns the GPU renderer on its own thread, so the UI never waits on it.
//!
//! Requests go in over a channel; when several previews are queued only the newest is rendered
//! (the user dragged a slider past the others). Every reply wakes the UI with a repaint.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::generate::gpu::AdapterSummary;
use crate::generate::programs::{ParamSpec, ProgramLibrary};
use crate::generate::{Generator, GeneratorConfig, Sample, baseline_programs, manifest};

/// What the UI shows about a program.
#[derive(Clone, Debug)]
pub struct ProgramInfo {
    pub id: String,
    pub name: String,
    pub family: String,
    pub params: Vec<ParamSpec>,
}

pub enum Request {
    /// Render `count` samples of each config (one grid row per config).
    Preview {
        id: u64,
        configs: Vec<GeneratorConfig>,
        seed: u64,
        count: u64,
    },
    /// Write samples 0..count of (config, seed) to `dir` with a manifest.
    Export {
        config: GeneratorConfig,
        seed: u64,
        count: u64,
        dir: PathBuf,
    },
    /// Re-scan `shaders/programs/` for new or edited programs.
    ReloadLibrary,
}

pub enum Reply {
    Ready {
        adapter: AdapterSummary,
        programs: Vec<ProgramInfo>,
        rejected: Vec<(String, String)>,
    },
    Preview {
        id: u64,
        rows: Vec<Vec<Sample>>,
        elapsed: Duration,
    },
    ExportProgress {
        done: u64,
        total: u64,
    },
    ExportDone(Result<PathBuf, String>),
    /// A request failed; the message is for the user.
    Failed {
        id: Option<u64>,
        message: String,
    },
    /// The worker could not start (no adapter): nothing will render.
    Fatal(String),
}

pub struct GeneratorWorker {
    tx: Option<Sender<Request>>,
    rx: Receiver<Reply>,
    cancel_export: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GeneratorWorker {
    /// Starts the worker; `wake` is called after every reply (the UI passes a repaint request).
    pub fn spawn(wake: impl Fn() + Send + 'static) -> Self {
        let (tx, requests) = channel::<Request>();
        let (replies, rx) = channel::<Reply>();
        let cancel_export = Arc::new(AtomicBool::new(false));
        let cancel = cancel_export.clone();
        let thread = std::thread::Builder::new()
            .name("procmem-generator".into())
            .spawn(move || run(requests, replies, cancel, wake))
            .expect("spawning a thread");
        Self {
            tx: Some(tx),
            rx,
            cancel_export,
            thread: Some(thread),
        }
    }

    pub(crate) fn send(&self, request: Request) {
        if let Some(tx) = &self.tx {
            // A closed channel means the worker died; its Fatal reply says why.
            let _ = tx.send(request);
        }
    }

    pub(crate) fn try_recv(&self) -> Option<Reply> {
        self.rx.try_recv().ok()
    }

    pub(crate) fn cancel_export(&self) {
        self.cancel_export.store(true, Ordering::SeqCst);
    }
}

impl Drop for GeneratorWorker {
    fn drop(&mut self) {
        self.cancel_export();
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn library_info(g: &Generator) -> (Vec<ProgramInfo>, Vec<(String, String)>) {
    let info = |p: &crate::generate::programs::Program| ProgramInfo {
        id: p.id.clone(),
        name: p.name.clone(),
        family: p.family.clone(),
        params: p.params.clone(),
    };
    let mut programs: Vec<ProgramInfo> = g.library().programs.iter().map(info).collect();
    programs.extend(baseline_programs().iter().map(info));
    let rejected = g
        .library()
        .rejected
        .iter()
        .map(|r| (r.id.clone(), r.message.clone()))
        .collect();
    (programs, rejected)
}

fn run(
    requests: Receiver<Request>,
    replies: Sender<Reply>,
    cancel: Arc<AtomicBool>,
    wake: impl Fn(),
) {
    let send = |r: Reply| {
        let _ = replies.send(r);
        wake();
    };
    let mut generator = match Generator::open_default(GeneratorConfig::default()) {
        Ok(g) => g,
        Err(e) => {
            send(Reply::Fatal(e.to_string()));
            return;
        }
    };
    let (programs, rejected) = library_info(&generator);
    send(Reply::Ready {
        adapter: generator.renderer().adapter().clone(),
        programs,
        rejected,
    });

    while let Ok(mut request) = requests.recv() {
        // Coalesce: skip previews that a newer preview already supersedes.
        loop {
            match requests.try_recv() {
                Ok(next) => {
                    if matches!(request, Request::Preview { .. })
                        && matches!(next, Request::Preview { .. })
                    {
                        request = next;
                    } else {
                        handle(&mut generator, request, &send, &cancel);
                        request = next;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        handle(&mut generator, request, &send, &cancel);
    }
}

fn handle(generator: &mut Generator, request: Request, send: &impl Fn(Reply), cancel: &AtomicBool) {
    match request {
        Request::Preview {
            id,
            configs,
            seed,
            count,
        } => {
            let start = Instant::now();
            let mut rows = Vec::with_capacity(configs.len());
            for config in configs {
                let result = generator
                    .set_config(config)
                    .and_then(|_| generator.generate(seed, 0..count, true));
                match result {
                    Ok(samples) => rows.push(samples),
                    Err(e) => {
                        send(Reply::Failed {
                            id: Some(id),
                            message: e.to_string(),
                        });
                        return;
                    }
                }
            }
            send(Reply::Preview {
                id,
                rows,
                elapsed: start.elapsed(),
            });
        }
        Request::Export {
            config,
            seed,
            count,
            dir,
        } => {
            cancel.store(false, Ordering::SeqCst);
            let result = generator.set_config(config).and_then(|_| {
                manifest::write_set(generator, seed, count, &dir, |done, total| {
                    send(Reply::ExportProgress { done, total });
                    !cancel.load(Ordering::SeqCst)
                })
            });
            send(Reply::ExportDone(
                result.map(|_| dir).map_err(|e| e.to_string()),
            ));
        }
        Request::ReloadLibrary => {
            let library = ProgramLibrary::load(ProgramLibrary::default_user_dir().as_deref());
            match generator.set_library(library) {
                Ok(()) => {
                    let (programs, rejected) = library_info(generator);
                    send(Reply::Ready {
                        adapter: generator.renderer().adapter().clone(),
                        programs,
                        rejected,
                    });
                }
                Err(e) => send(Reply::Failed {
                    id: None,
                    message: e.to_string(),
                }),
            }
        }
    }
}
