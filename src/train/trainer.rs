//! The DINO training loop (facebookresearch/dino `train_one_epoch`, step by step), checkpoints
//! that resume the same curve, and metrics as JSON lines.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::config::{DataSource, TeacherCentering, TrainConfig};
use super::data::{BatchStream, PreparedBatch};
use super::dino::{
    DinoLossOutput, dino_loss_with_targets, ibot_masks, ibot_patch_loss, ibot_rows, koleo_loss,
    sinkhorn_knopp, update_center,
};
use super::optim::{AdamW, clip_per_tensor};
use super::schedule::cosine;
use crate::error::{Error, Result};
use crate::model::weights::{
    CHECKPOINT_FORMAT, CheckpointMeta, Provenance, fingerprint, init_params, read_checkpoint,
    save_checkpoint, sorted_vars,
};
use crate::model::{DinoHead, VisionTransformer};
use crate::rng::{Rng, derive};

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StepMetrics {
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub teacher_temp: f64,
    pub teacher_entropy: f64,
    /// The KoLeo term before weighting (summed over the two global views), when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub koleo: Option<f64>,
    /// The iBOT masked-patch term before weighting, when enabled (absent in a step that masked
    /// no patch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ibot: Option<f64>,
    pub images_per_second: f64,
    pub seconds: f64,
    /// Time split of the step: teacher and student forward, backward, optimiser + EMA.
    #[serde(default)]
    pub forward_seconds: f64,
    #[serde(default)]
    pub backward_seconds: f64,
    #[serde(default)]
    pub update_seconds: f64,
}

/// What the trainer reports while it runs.
pub enum TrainEvent {
    Step(StepMetrics),
    /// The first image's augmented crops (global, then local) of the latest batch.
    Crops(Vec<image::RgbImage>),
    Checkpoint(PathBuf),
}

/// A student/teacher pair of networks.
struct Network {
    varmap: VarMap,
    vit: VisionTransformer,
    head: DinoHead,
    /// iBOT's learned mask token [1, D] (`ibot.mask_token`, outside the backbone so exported
    /// models keep their keys), when the iBOT loss is on.
    mask_token: Option<Tensor>,
}

/// What [`Trainer::forward_loss`] computes.
struct Losses {
    out: DinoLossOutput,
    /// The teacher's logits of the global crops' CLS tokens (for the centre update).
    teacher_out: Tensor,
    koleo: Option<f64>,
    /// The unweighted iBOT term and the teacher's logits of the masked patches (for the patch
    /// centre's update), when some patch was masked.
    ibot: Option<(f64, Tensor)>,
}

impl Network {
    fn new(cfg: &TrainConfig) -> Result<Self> {
        let vit_cfg = cfg.vit_config()?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let vit = VisionTransformer::new(&vit_cfg, vb.pp("backbone"))?;
        let head = DinoHead::new(vit_cfg.embed_dim, &cfg.head, vb.pp("head"))?;
        let mask_token = if cfg.ibot_weight > 0.0 {
            Some(vb.pp("ibot").get_with_hints(
                (1, vit_cfg.embed_dim),
                "mask_token",
                candle_nn::Init::Const(0.0),
            )?)
        } else {
            None
        };
        Ok(Self {
            varmap,
            vit,
            head,
            mask_token,
        })
    }

    /// The CLS embeddings [Σ B_i, D] and logits [Σ B_i, K] for crops grouped by resolution
    /// (DINO's MultiCropWrapper). `track`: gradients will be asked for (the student); the
    /// teacher's backbone runs without.
    fn forward(
        &self,
        groups: &[Tensor],
        drop: Option<(&mut Rng, f64)>,
        track: bool,
    ) -> Result<(Tensor, Tensor)> {
        let mut drop = drop;
        let mut cls = Vec::with_capacity(groups.len());
        for g in groups {
            let out = if track {
                self.vit.forward_cls(g, reborrow(&mut drop))
            } else {
                self.vit.infer_cls(g)
            }?;
            cls.push(out);
        }
        let cls = Tensor::cat(&cls.iter().collect::<Vec<_>>(), 0)?;
        let logits = self.head.forward(&cls)?;
        Ok((cls, logits))
    }
}

pub struct Trainer {
    pub cfg: TrainConfig,
    pub out_dir: PathBuf,
    student: Network,
    teacher: Network,
    optim: AdamW,
    center: Tensor,
    /// iBOT's centre of the teacher's patch logits [1, K] (DINOv2 keeps one apart from the
    /// CLS token's).
    patch_center: Tensor,
    pub step: u64,
    images_seen: u64,
    /// Trainable student variables (name, var), sorted; excludes the frozen weight norm.
    params: Vec<(String, Var)>,
}

impl Trainer {
    /// A new run: the student initialised from `cfg.seed`, the teacher a copy of it.
    pub fn new(cfg: TrainConfig, out_dir: &Path) -> Result<Self> {
        cfg.validate()?;
        let student = Network::new(&cfg)?;
        let teacher = Network::new(&cfg)?;
        init_params(&student.varmap, cfg.seed)?;
        copy_vars(&student.varmap, &teacher.varmap)?;
        let norm_last = cfg.head.norm_last_layer;
        let params = sorted_vars(&student.varmap)?
            .into_iter()
            .filter(|(n, _)| !(norm_last && n.ends_with("last_layer.weight_g")))
            .collect();
        let center = Tensor::zeros((1, cfg.head.out_dim), DType::F32, &Device::Cpu)?;
        let patch_center = center.clone();
        Ok(Self {
            patch_center,
            cfg,
            out_dir: out_dir.to_path_buf(),
            student,
            teacher,
            optim: AdamW::default(),
            center,
            step: 0,
            images_seen: 0,
            params,
        })
    }

    /// The one resume policy, shared by `procmem train --resume` and the Training panel: the
    /// checkpoint's own config is used, and a requested length (`steps`) can only extend its
    /// run, never cut it short of the length it was started with.
    pub fn resume_to(checkpoint: &Path, out_dir: &Path, steps: Option<u64>) -> Result<Self> {
        let mut t = Self::resume(checkpoint, out_dir)?;
        if let Some(steps) = steps {
            t.cfg.steps = t.cfg.steps.max(steps);
        }
        Ok(t)
    }

    /// Resumes from a checkpoint written by [`Trainer::save`]: same config, weights, optimiser
    /// state, centre and step, so the curve continues.
    pub fn resume(checkpoint: &Path, out_dir: &Path) -> Result<Self> {
        let (meta, tensors) = read_checkpoint(checkpoint)?;
        let cfg: TrainConfig =
            serde_json::from_value(meta.train_config.clone()).map_err(|e| Error::BadFile {
                path: checkpoint.into(),
                message: format!("training config unreadable: {e}"),
            })?;
        let mut t = Self::new(cfg, out_dir)?;
        let get = |name: &str| {
            tensors.get(name).cloned().ok_or_else(|| Error::BadFile {
                path: checkpoint.into(),
                message: format!("missing tensor `{name}`"),
            })
        };
        for (net, prefix) in [(&t.student, "student."), (&t.teacher, "teacher.")] {
            for (name, var) in sorted_vars(&net.varmap)? {
                let value = get(&format!("{prefix}{name}"))?;
                if value.dims() != var.dims() {
                    return Err(Error::BadFile {
                        path: checkpoint.into(),
                        message: format!(
                            "`{prefix}{name}` has shape {:?}, the model needs {:?}",
                            value.dims(),
                            var.dims()
                        ),
                    });
                }
                var.set(&value)?;
            }
        }
        // Parameters not updated yet (the last layer while frozen) have no moments.
        for (name, _) in &t.params {
            let state = ["m", "v", "t"].map(|k| tensors.get(&format!("optimizer.{k}.{name}")));
            if let [Some(m), Some(v), Some(steps)] = state {
                t.optim.m.insert(name.clone(), m.clone());
                t.optim.v.insert(name.clone(), v.clone());
                let steps = steps.to_vec1::<f32>()?.first().copied().unwrap_or(0.0);
                t.optim.t.insert(name.clone(), steps as u64);
            }
        }
        t.center = get("dino_loss.center")?;
        if t.cfg.ibot_weight > 0.0 {
            t.patch_center = get("ibot_loss.center")?;
        }
        t.step = meta.step;
        t.images_seen = meta.provenance.images_seen;
        Ok(t)
    }

    fn provenance(&self) -> Provenance {
        let (sources, procedural_only) = match &self.cfg.data {
            DataSource::Procedural { generator } => (
                vec![format!(
                    "procedural:{} (seed {}, {}x{})",
                    generator.process, self.cfg.seed, generator.size, generator.size
                )],
                true,
            ),
            DataSource::Folder { path } => (vec![format!("folder:{}", path.display())], false),
        };
        Provenance {
            sources,
            procedural_only,
            images_seen: self.images_seen,
        }
    }

    /// Writes `step_<N>` and `last` checkpoints into the output folder; returns the step path.
    pub fn save(&self) -> Result<PathBuf> {
        let mut tensors = BTreeMap::new();
        for (net, prefix) in [(&self.student, "student."), (&self.teacher, "teacher.")] {
            for (name, var) in sorted_vars(&net.varmap)? {
                tensors.insert(format!("{prefix}{name}"), var.as_tensor().clone());
            }
        }
        for (name, m) in &self.optim.m {
            tensors.insert(format!("optimizer.m.{name}"), m.clone());
        }
        for (name, v) in &self.optim.v {
            tensors.insert(format!("optimizer.v.{name}"), v.clone());
        }
        for (name, t) in &self.optim.t {
            // f32 counts are exact up to 2^24 steps.
            tensors.insert(
                format!("optimizer.t.{name}"),
                Tensor::new(&[*t as f32], &Device::Cpu)?,
            );
        }
        tensors.insert("dino_loss.center".into(), self.center.clone());
        if self.cfg.ibot_weight > 0.0 {
            tensors.insert("ibot_loss.center".into(), self.patch_center.clone());
        }
        let teacher_backbone: BTreeMap<String, Tensor> = tensors
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("teacher.backbone.")
                    .map(|s| (s.to_string(), v.clone()))
            })
            .collect();
        let meta = CheckpointMeta {
            format: CHECKPOINT_FORMAT.into(),
            version: 1,
            vit: self.cfg.vit_config()?,
            train_config: serde_json::to_value(&self.cfg)?,
            step: self.step,
            seed: self.cfg.seed,
            provenance: self.provenance(),
            fingerprint: fingerprint(&teacher_backbone)?,
            procmem_version: env!("CARGO_PKG_VERSION").into(),
            exported_backbone: None,
            standardisation: None,
            patch_standardisation: None,
            pooling: crate::model::Pooling::Cls,
        };
        let path = self.out_dir.join(format!("step_{:06}", self.step));
        save_checkpoint(&path, &tensors, &meta)?;
        save_checkpoint(&self.out_dir.join("last"), &tensors, &meta)?;
        Ok(path)
    }

    /// The teacher's targets for `logits` [R, K]: the centred softmax with `center` (DINO) or
    /// Sinkhorn-Knopp (DINOv2), at `teacher_temp`.
    fn targets(&self, logits: &Tensor, center: &Tensor, teacher_temp: f64) -> Result<Tensor> {
        Ok(match self.cfg.teacher_centering {
            TeacherCentering::Centre => {
                crate::model::layers::softmax_last(&(logits.broadcast_sub(center)? / teacher_temp)?)
            }
            TeacherCentering::SinkhornKnopp => sinkhorn_knopp(logits, teacher_temp, 3),
        }?)
    }

    /// Teacher on the global crops, student on all crops (grouped by resolution), DINO loss.
    /// With `koleo_weight` > 0 the loss includes the weighted KoLeo term, also returned alone;
    /// with `ibot_weight` > 0 the student sees masked global crops and the loss includes the
    /// weighted iBOT term ([`ibot_patch_loss`]; masks drawn from the seed and the step).
    fn forward_loss(
        &self,
        batch: &PreparedBatch,
        teacher_temp: f64,
        drop: Option<(&mut Rng, f64)>,
    ) -> Result<Losses> {
        let cfg = &self.cfg;
        let b = cfg.batch_size;
        let globals = Tensor::cat(&batch.global.iter().collect::<Vec<_>>(), 0)?;
        let locals = if batch.local.is_empty() {
            None
        } else {
            Some(Tensor::cat(&batch.local.iter().collect::<Vec<_>>(), 0)?)
        };
        let mut ibot_parts = None;
        let (teacher_out, student_cls, student_out) = match &self.student.mask_token {
            None => {
                let teacher_out = self
                    .teacher
                    .forward(std::slice::from_ref(&globals), None, false)?
                    .1
                    .detach();
                let mut groups = vec![globals];
                groups.extend(locals);
                let (student_cls, student_out) = self.student.forward(&groups, drop, true)?;
                (teacher_out, student_cls, student_out)
            }
            Some(mask_token) => {
                let (crops, _, h, w) = globals.dims4()?;
                let p = cfg.vit_config()?.patch_size;
                let patches = (h / p) * (w / p);
                let mut rng = Rng::new(derive(cfg.seed ^ 0x1b07, self.step));
                let masks = ibot_masks(
                    &mut rng,
                    crops,
                    patches,
                    cfg.ibot_mask_probability,
                    cfg.ibot_mask_ratio,
                );
                let (flags, rows, weights) = ibot_rows(&masks, patches);
                let flags = Tensor::from_vec(flags, (crops, patches), &Device::Cpu)?;
                let teacher_tokens = self.teacher.vit.infer_tokens(&globals)?;
                let teacher_out = self
                    .teacher
                    .head
                    .forward(&teacher_tokens.narrow(1, 0, 1)?.squeeze(1)?)?
                    .detach();
                let mut drop = drop;
                let student_tokens = self.student.vit.forward_tokens_masked(
                    &globals,
                    &flags,
                    mask_token,
                    reborrow(&mut drop),
                )?;
                let mut cls = vec![student_tokens.narrow(1, 0, 1)?.squeeze(1)?];
                if let Some(locals) = &locals {
                    cls.push(self.student.vit.forward_cls(locals, reborrow(&mut drop))?);
                }
                let student_cls = Tensor::cat(&cls.iter().collect::<Vec<_>>(), 0)?;
                let student_out = self.student.head.forward(&student_cls)?;
                if !rows.is_empty() {
                    let n = rows.len();
                    let rows = Tensor::from_vec(rows, n, &Device::Cpu)?;
                    let weights = Tensor::from_vec(weights, n, &Device::Cpu)?;
                    let masked = |tokens: &Tensor| -> Result<Tensor> {
                        let d = tokens.dim(2)?;
                        Ok(tokens
                            .narrow(1, 1, patches)?
                            .reshape((crops * patches, d))?
                            .index_select(&rows, 0)?)
                    };
                    let teacher_patches = self
                        .teacher
                        .head
                        .forward(&masked(&teacher_tokens)?)?
                        .detach();
                    let student_patches = self.student.head.forward(&masked(&student_tokens)?)?;
                    let targets =
                        self.targets(&teacher_patches, &self.patch_center, teacher_temp)?;
                    let loss = ibot_patch_loss(
                        &student_patches,
                        &targets,
                        &weights,
                        cfg.student_temp,
                        crops,
                    )?;
                    ibot_parts = Some((loss, teacher_patches));
                }
                (teacher_out, student_cls, student_out)
            }
        };
        let targets = self.targets(&teacher_out, &self.center, teacher_temp)?;
        let mut out = dino_loss_with_targets(&student_out, &targets, cfg.student_temp, b)?;
        let mut koleo = None;
        if cfg.koleo_weight > 0.0 {
            // DINOv2: the sum of KoLeo over the global views, each a batch of its own.
            let k = (koleo_loss(&student_cls.narrow(0, 0, b)?)?
                + koleo_loss(&student_cls.narrow(0, b, b)?)?)?;
            koleo = Some(k.to_scalar::<f32>()? as f64);
            out.loss = (out.loss + (k * cfg.koleo_weight)?)?;
        }
        let mut ibot = None;
        if let Some((loss, teacher_patches)) = ibot_parts {
            ibot = Some((loss.to_scalar::<f32>()? as f64, teacher_patches));
            out.loss = (out.loss + (loss * cfg.ibot_weight)?)?;
        }
        Ok(Losses {
            out,
            teacher_out,
            koleo,
            ibot,
        })
    }

    /// One optimisation step on a prepared batch.
    pub fn train_step(&mut self, batch: &PreparedBatch) -> Result<StepMetrics> {
        let start = Instant::now();
        let cfg = &self.cfg;
        let s = self.step;
        let total = cfg.steps;
        let lr = cosine(s, total, cfg.peak_lr(), cfg.min_lr, cfg.warmup_steps, 0.0);
        let wd = cosine(s, total, cfg.weight_decay, cfg.weight_decay_end, 0, 0.0);
        let momentum = cosine(s, total, cfg.momentum_teacher, 1.0, 0, 0.0);
        let teacher_temp = if s < cfg.warmup_teacher_temp_steps {
            cfg.warmup_teacher_temp
                + (cfg.teacher_temp - cfg.warmup_teacher_temp) * s as f64
                    / cfg.warmup_teacher_temp_steps as f64
        } else {
            cfg.teacher_temp
        };
        let b = cfg.batch_size;

        let mut drop_rng = Rng::new(derive(cfg.seed ^ 0xd409, s));
        let Losses {
            out,
            teacher_out,
            koleo,
            ibot,
        } = self.forward_loss(
            batch,
            teacher_temp,
            Some((&mut drop_rng, cfg.drop_path_rate)),
        )?;
        let loss = out.loss.to_scalar::<f32>()? as f64;
        if !loss.is_finite() {
            return Err(Error::Model(format!(
                "loss is {loss} at step {s}: training diverged"
            )));
        }

        let forward_seconds = start.elapsed().as_secs_f64();
        // Candle leaves variables' gradients attached to the backward graph (which holds the
        // forward activations); they are detached below so that nothing — clipping, the AdamW
        // moments — keeps a step's graph alive into the next one (that leaked ~65 MB a step).
        let grads = out.loss.backward()?;
        let backward_seconds = start.elapsed().as_secs_f64() - forward_seconds;
        let freeze_last = s < cfg.freeze_last_layer_steps;
        let mut with_grads: Vec<(String, Var, Tensor)> = self
            .params
            .iter()
            .filter(|(name, _)| !(freeze_last && name.contains("last_layer")))
            .filter_map(|(name, var)| {
                grads
                    .get(var)
                    .map(|g| (name.clone(), var.clone(), g.detach()))
            })
            .collect();
        clip_per_tensor(&mut with_grads, cfg.clip_grad)?;
        // DINO regularises every parameter except biases and 1-D (norm) parameters.
        self.optim.step(&with_grads, lr, wd, |name, var| {
            !name.ends_with(".bias") && var.rank() > 1
        })?;

        // EMA update of the teacher.
        let teacher_vars: BTreeMap<String, Var> =
            sorted_vars(&self.teacher.varmap)?.into_iter().collect();
        for (name, sv) in sorted_vars(&self.student.varmap)? {
            let tv = &teacher_vars[&name];
            let updated = ((tv.as_tensor() * momentum)? + (sv.as_tensor() * (1.0 - momentum))?)?;
            tv.set(&updated)?;
        }
        self.center = update_center(&self.center, &teacher_out, cfg.center_momentum)?;
        if let Some((_, teacher_patches)) = &ibot {
            self.patch_center =
                update_center(&self.patch_center, teacher_patches, cfg.center_momentum)?;
        }
        self.step += 1;
        self.images_seen += b as u64;
        let seconds = start.elapsed().as_secs_f64();
        Ok(StepMetrics {
            step: self.step,
            loss,
            lr,
            weight_decay: wd,
            momentum,
            teacher_temp,
            teacher_entropy: out.teacher_entropy,
            koleo,
            ibot: ibot.map(|(loss, _)| loss),
            images_per_second: b as f64 / seconds,
            seconds,
            forward_seconds,
            backward_seconds,
            update_seconds: seconds - forward_seconds - backward_seconds,
        })
    }

    /// Names of student parameters that received no (or an all-zero) gradient in a step on
    /// `batch`. Used by tests: every trainable parameter must learn.
    pub fn parameters_without_gradient(&mut self, batch: &PreparedBatch) -> Result<Vec<String>> {
        let out = self.forward_loss(batch, self.cfg.teacher_temp, None)?.out;
        let grads = out.loss.backward()?;
        let mut missing = Vec::new();
        for (name, var) in &self.params {
            let nonzero = match grads.get(var) {
                Some(g) => {
                    g.abs()
                        .and_then(|a| a.sum_all())
                        .and_then(|s| s.to_scalar::<f32>())?
                        > 0.0
                }
                None => false,
            };
            if !nonzero {
                missing.push(name.clone());
            }
        }
        Ok(missing)
    }

    pub fn trainable_parameter_names(&self) -> Vec<String> {
        self.params.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Runs until `cfg.steps`, reporting to `on_event`; stops early (after saving) when `cancel`
    /// is set. Metrics are appended to `<out_dir>/metrics.jsonl`.
    pub fn run(&mut self, cancel: &AtomicBool, mut on_event: impl FnMut(TrainEvent)) -> Result<()> {
        std::fs::create_dir_all(&self.out_dir).map_err(|e| Error::io(&self.out_dir, e))?;
        let metrics_path = self.out_dir.join("metrics.jsonl");
        truncate_metrics_after(&metrics_path, self.step)?;
        let mut metrics = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .map_err(|e| Error::io(&metrics_path, e))?;
        let stream = BatchStream::start(&self.cfg, self.step)?;
        while self.step < self.cfg.steps {
            if cancel.load(Ordering::SeqCst) {
                break;
            }
            let batch = stream.next()?;
            debug_assert_eq!(batch.step, self.step);
            let m = self.train_step(&batch)?;
            let line = serde_json::to_string(&m)?;
            writeln!(metrics, "{line}").map_err(|e| Error::io(&metrics_path, e))?;
            if m.step % 10 == 1 || m.step == self.cfg.steps {
                let size_g = self.cfg.augment.global_size;
                let size_l = self.cfg.augment.local_size;
                let mut crops: Vec<image::RgbImage> = batch
                    .preview
                    .global
                    .iter()
                    .map(|c| crate::resample::denormalise(c, size_g))
                    .collect();
                crops.extend(
                    batch
                        .preview
                        .local
                        .iter()
                        .map(|c| crate::resample::denormalise(c, size_l)),
                );
                on_event(TrainEvent::Crops(crops));
            }
            on_event(TrainEvent::Step(m));
            if self.step.is_multiple_of(self.cfg.checkpoint_every) {
                on_event(TrainEvent::Checkpoint(self.save()?));
            }
        }
        if !self.step.is_multiple_of(self.cfg.checkpoint_every) {
            on_event(TrainEvent::Checkpoint(self.save()?));
        }
        Ok(())
    }
}

/// The stochastic-depth stream and rate for one more forward pass, without giving them up.
fn reborrow<'a>(drop: &'a mut Option<(&mut Rng, f64)>) -> Option<(&'a mut Rng, f64)> {
    drop.as_mut().map(|(rng, rate)| (&mut **rng, *rate))
}

/// Copies every variable's value from `src` into `dst` (same names).
fn copy_vars(src: &VarMap, dst: &VarMap) -> Result<()> {
    let dst_vars: BTreeMap<String, Var> = sorted_vars(dst)?.into_iter().collect();
    for (name, var) in sorted_vars(src)? {
        let d = dst_vars
            .get(&name)
            .ok_or_else(|| Error::Model(format!("no variable {name} in the teacher")))?;
        d.set(&var.as_tensor().copy()?)?;
    }
    Ok(())
}

/// Shared cancel flag for runs on worker threads.
pub type CancelFlag = Arc<AtomicBool>;

/// Drops metric lines after `step`: a run that stopped without a checkpoint (killed, crashed)
/// logged steps that a resume from an earlier checkpoint computes again, and the curve must not
/// show them twice.
fn truncate_metrics_after(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let keep: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .collect();
    if keep.len() != text.lines().count() {
        let mut out = keep.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        crate::fsio::write_atomic(path, out.as_bytes())?;
    }
    Ok(())
}
