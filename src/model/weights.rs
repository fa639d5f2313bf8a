//! Weight I/O: deterministic initialisation, procmem checkpoints, and loading DINO (`.pth`) and
//! timm-style (`.safetensors`) ViT weights.
//!
//! Compartmentalisation: a load either gets exactly the weights it was asked for or fails with a
//! message naming what is missing or mis-shaped. There is no fallback to any other weights
//! (the paper's evaluation script silently loads ImageNet DINO weights when a path is missing).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::init::trunc_normal;
use super::pooling::Pooling;
use super::standardise::{Standardisation, StandardisationKeys};
use super::vit::{VisionTransformer, VitConfig};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Where the data that trained a model came from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    /// Every data source, e.g. `procedural:kml-mixup` or `folder:/data/places (12,345 images)`.
    pub sources: Vec<String>,
    /// True only if no real image entered training.
    pub procedural_only: bool,
    /// Images seen in training (crops counted once per source image).
    pub images_seen: u64,
}

/// The JSON half of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format: String,
    pub version: u32,
    pub vit: VitConfig,
    /// The full training config (kept as JSON so this module does not depend on the trainer).
    pub train_config: serde_json::Value,
    pub step: u64,
    pub seed: u64,
    pub provenance: Provenance,
    /// FNV-1a hash of the teacher backbone's bytes: memories record it to never mix models.
    pub fingerprint: String,
    pub procmem_version: String,
    /// Set on exported models (`procmem export`): the file holds only this backbone
    /// (`teacher` or `student`), no head, no optimiser state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_backbone: Option<String>,
    /// Set when the backbone carries a procedural standardisation of its embedding
    /// (`procmem standardise`): what it was fitted on. Its tensors sit beside the backbone's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standardisation: Option<StandardisationMeta>,
    /// Set when the backbone carries a procedural standardisation of its patch tokens, the dense
    /// tasks' features (`procmem standardise --patch-images`): what it was fitted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_standardisation: Option<StandardisationMeta>,
    /// How the backbone's tokens become the embedding (`procmem standardise --pooling`); the CLS
    /// token when absent. The fingerprint covers it.
    #[serde(default, skip_serializing_if = "is_cls")]
    pub pooling: Pooling,
}

impl CheckpointMeta {
    /// The network whose backbone a reader takes: an export holds one and says which (a role
    /// other than `student` reads as the teacher); a training checkpoint holds both, and `which`
    /// chooses. Its tensors are stored under `<role>.backbone.`.
    pub fn backbone_role(&self, which: Which) -> &'static str {
        match (which, self.exported_backbone.as_deref()) {
            (_, Some("student")) => "student",
            (_, Some(_)) => "teacher",
            (Which::Teacher, None) => "teacher",
            (Which::Student, None) => "student",
        }
    }

    /// Width of the model's embedding: the standardisation's kept axes when it keeps fewer,
    /// else the pooled width.
    pub fn embedding_dim(&self) -> usize {
        self.standardisation
            .as_ref()
            .and_then(|s| s.components)
            .unwrap_or_else(|| self.pooling.dim(self.vit.embed_dim))
    }
}

fn is_cls(pooling: &Pooling) -> bool {
    *pooling == Pooling::Cls
}

/// Provenance of a [`crate::model::standardise::Standardisation`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StandardisationMeta {
    /// The data source, e.g. `procedural:kml-mixup (seed 1, 64x64)`. Never a real image.
    pub source: String,
    /// Images the mean and covariance were computed from.
    pub images: usize,
    /// ε relative to the mean eigenvalue.
    pub shrinkage: f64,
    /// Leading axes kept (PCA whitening) when fewer than the pooled width; absent = all (ZCA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<usize>,
    /// For the patch tokens' standardisation: the block (1 = first) whose output tokens, through
    /// the final norm, were fitted and are what the dense tasks read; absent = the last block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<usize>,
    /// For the patch tokens' standardisation: the attention scale fitted on procedural
    /// in-context pairs and folded into the whitening (`dense::calibrate`); absent = unit
    /// variance per dimension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention: Option<AttentionCalibration>,
}

/// The patch tokens' attention scale and how it was fitted (`dense::calibrate`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AttentionCalibration {
    /// The multiplier s of the tokens' dot products (the tokens are scaled by √s) against unit
    /// variance per dimension.
    pub scale: f64,
    /// The procedural set it was fitted on. Never a real image.
    pub source: String,
    /// Prompt/query pairs scored.
    pub pairs: usize,
    /// [scale tried, mean in-context soft IoU, mean per-pixel log loss] per scale, against the
    /// tokens as they were before this fit; the kept scale is chosen by soft IoU (`dense::calibrate::TOLERANCE`).
    pub scores: Vec<[f64; 3]>,
}

impl StandardisationMeta {
    /// The source, the kept axes when fewer than all and the block the patch tokens are read
    /// after when it is recorded: e.g. `procedural:kml-mixup (seed 1, 64x64), 768 leading axes`
    /// or `procedural:kml-mixup (seed 1000004, 128x128), block 1, attention ×200`.
    pub fn describe(&self) -> String {
        let mut text = self.source.clone();
        if let Some(m) = self.components {
            text.push_str(&format!(", {m} leading axes"));
        }
        if let Some(k) = self.block {
            text.push_str(&format!(", block {k}"));
        }
        if let Some(a) = &self.attention {
            text.push_str(&format!(", attention ×{}", a.scale));
        }
        text
    }
}

pub const CHECKPOINT_FORMAT: &str = "procmem-checkpoint";

/// Initialises every variable of `varmap` deterministically from `seed`, by DINO's rules.
pub(crate) fn init_params(varmap: &VarMap, seed: u64) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::Model("variable map poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let shape = var.dims().to_vec();
        let mut rng = Rng::new(crate::rng::derive(
            seed,
            crate::hash::fnv1a(name.as_bytes()),
        ));
        let value = initial_value(name, &shape, &mut rng)?;
        var.set(&value)?;
    }
    Ok(())
}

fn uniform(shape: &[usize], bound: f64, rng: &mut Rng) -> candle_core::Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
}

fn initial_value(name: &str, shape: &[usize], rng: &mut Rng) -> candle_core::Result<Tensor> {
    let leaf = name.rsplit('.').next().unwrap_or(name);
    let is_norm = name.contains("norm") && !name.contains("last_layer");
    if name.ends_with("last_layer.weight_g") {
        return Tensor::ones(shape, DType::F32, &Device::Cpu);
    }
    if name.ends_with("last_layer.weight_v") {
        // nn.Linear's default init (the last layer is created after DINO's init pass).
        return uniform(shape, 1.0 / (shape[1] as f64).sqrt(), rng);
    }
    if name.contains("patch_embed.proj") {
        // Conv2d keeps PyTorch's default init: U(±1/sqrt(fan_in)).
        let fan_in = if shape.len() == 4 {
            shape[1] * shape[2] * shape[3]
        } else {
            1
        };
        let fan_in = if leaf == "bias" {
            fan_in.max(1)
        } else {
            fan_in
        };
        return uniform(shape, 1.0 / (fan_in as f64).sqrt(), rng);
    }
    match leaf {
        "cls_token" | "pos_embed" => trunc_normal(shape, 0.02, rng),
        // DINOv2 starts iBOT's mask token at zero.
        "mask_token" => Tensor::zeros(shape, DType::F32, &Device::Cpu),
        "bias" => Tensor::zeros(shape, DType::F32, &Device::Cpu),
        "weight" if is_norm => Tensor::ones(shape, DType::F32, &Device::Cpu),
        "weight" => trunc_normal(shape, 0.02, rng),
        _ => trunc_normal(shape, 0.02, rng),
    }
}

/// A fresh model with its variables: DINO's initialisation from `seed`.
pub fn new_backbone(cfg: &VitConfig, seed: u64) -> Result<(VisionTransformer, VarMap)> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let vit = VisionTransformer::new(cfg, vb)?;
    init_params(&varmap, seed)?;
    Ok((vit, varmap))
}

/// FNV-1a over the sorted names and f32 bytes of `tensors`: the fingerprint of a backbone that
/// embeds with its CLS token.
pub fn fingerprint(tensors: &BTreeMap<String, Tensor>) -> Result<String> {
    embedding_fingerprint(Pooling::Cls, tensors)
}

/// The fingerprint of a backbone that embeds with `pooling`: FNV-1a over the pooling's bytes
/// ([`Pooling::fingerprint_bytes`], none for the CLS token) and the sorted names and f32 bytes
/// of `tensors`, except the patch tokens' standardisation
/// ([`StandardisationKeys::PATCH_TOKENS`]): it is what a memory's entries depend on, and the
/// embedding never reads the patch statistics, so (re)fitting them leaves every memory valid.
pub(crate) fn embedding_fingerprint(
    pooling: Pooling,
    tensors: &BTreeMap<String, Tensor>,
) -> Result<String> {
    fingerprint_and_non_finite(pooling, tensors).map(|(fp, _)| fp)
}

/// [`embedding_fingerprint`] and, from the same pass over the values, the tensors holding NaN or
/// Inf (`name (value)`), so a load reads every weight once.
fn fingerprint_and_non_finite(
    pooling: Pooling,
    tensors: &BTreeMap<String, Tensor>,
) -> Result<(String, Vec<String>)> {
    let mut bytes = pooling.fingerprint_bytes();
    let mut non_finite = Vec::new();
    let dense_only = StandardisationKeys::PATCH_TOKENS.names();
    for (name, t) in tensors {
        let values: Vec<f32> = t
            .flatten_all()
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec1())?;
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            non_finite.push(format!("{name} ({bad})"));
        }
        if dense_only.contains(&name.as_str()) {
            continue;
        }
        bytes.extend_from_slice(name.as_bytes());
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok((format!("{:016x}", crate::hash::fnv1a(&bytes)), non_finite))
}

/// The tensors of variables, by name.
pub fn var_tensors(varmap: &VarMap) -> Result<BTreeMap<String, Tensor>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::Model("variable map poisoned".into()))?;
    Ok(data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect())
}

/// Paths of a checkpoint's two files from either one's path or the common stem.
pub(crate) fn checkpoint_paths(path: &Path) -> (PathBuf, PathBuf) {
    let stem = match path.extension().and_then(|e| e.to_str()) {
        Some("json") | Some("safetensors") => path.with_extension(""),
        _ => path.to_path_buf(),
    };
    (
        stem.with_extension("safetensors"),
        stem.with_extension("json"),
    )
}

/// Writes a checkpoint atomically: tensors first, then the JSON that makes it visible.
pub fn save_checkpoint(
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    meta: &CheckpointMeta,
) -> Result<()> {
    let (st, js) = checkpoint_paths(path);
    if let Some(dir) = st.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), None)
        .map_err(|e| Error::BadFile {
            path: st.clone(),
            message: format!("cannot serialise the tensors: {e}"),
        })?;
    crate::fsio::write_atomic(&st, &bytes)?;
    let json = serde_json::to_vec_pretty(meta)?;
    crate::fsio::write_atomic(&js, &json)
}

/// Reads a checkpoint's JSON and tensors, with clear errors for missing or corrupt files.
pub(crate) fn read_checkpoint(path: &Path) -> Result<(CheckpointMeta, HashMap<String, Tensor>)> {
    let (st, js) = checkpoint_paths(path);
    let text = std::fs::read_to_string(&js).map_err(|e| Error::io(&js, e))?;
    let meta: CheckpointMeta = serde_json::from_str(&text).map_err(|e| Error::BadFile {
        path: js.clone(),
        message: format!("not a procmem checkpoint: {e}"),
    })?;
    if meta.format != CHECKPOINT_FORMAT {
        return Err(Error::BadFile {
            path: js,
            message: format!("format `{}` is not {CHECKPOINT_FORMAT}", meta.format),
        });
    }
    if !st.exists() {
        return Err(Error::BadFile {
            path: st,
            message: "the checkpoint's tensors are missing".into(),
        });
    }
    let tensors =
        candle_core::safetensors::load(&st, &Device::Cpu).map_err(|e| Error::BadFile {
            path: st.clone(),
            message: format!("unreadable or truncated safetensors: {e}"),
        })?;
    Ok((meta, tensors))
}

/// The largest finite half-precision value.
const F16_MAX: f32 = 65_504.0;

/// How a model file stores its floating-point tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// 32-bit floats, as trained (`procmem export` without `--half`).
    F32,
    /// IEEE half precision: half the file (a grid8 standardised cpu-tiny model: 30 → 15 MB).
    /// Every value is rounded to 11 significant bits when written; the model computes in f32
    /// after loading, so only the rounding differs, and the fingerprint is of the rounded values.
    F16,
}

/// Writes one backbone of a checkpoint as a small model file (no head, no optimiser state, no
/// other backbone), keeping the config, step, seed, provenance and the backbone's
/// standardisations, its floats stored at `precision`. `checkpoint` may be a training checkpoint
/// (`which` picks the network) or an exported model (its one backbone, e.g. to store it in f16).
/// Returns the new file's fingerprint.
///
/// Errors: the checkpoint's, as [`read_checkpoint`] reports them; no such backbone; with
/// [`Precision::F16`], a value beyond half precision's range (±65,504), naming the tensor.
pub fn export_backbone(
    checkpoint: &Path,
    which: Which,
    precision: Precision,
    out: &Path,
) -> Result<String> {
    let (mut meta, tensors) = read_checkpoint(checkpoint)?;
    let role = meta.backbone_role(which);
    let prefix = format!("{role}.backbone.");
    let mut kept: BTreeMap<String, Tensor> = tensors
        .into_iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .collect();
    if kept.is_empty() {
        return Err(Error::BadFile {
            path: checkpoint.into(),
            message: format!("no `{prefix}*` tensors in the checkpoint"),
        });
    }
    if precision == Precision::F16 {
        for (name, t) in kept.iter_mut() {
            if !t.dtype().is_float() || t.dtype() == DType::F16 {
                continue;
            }
            let largest = t
                .abs()
                .and_then(|a| a.flatten_all())
                .and_then(|a| a.max(0))
                .and_then(|a| a.to_dtype(DType::F32))
                .and_then(|a| a.to_scalar::<f32>())?;
            if largest > F16_MAX {
                return Err(Error::BadFile {
                    path: checkpoint.into(),
                    message: format!(
                        "`{name}` holds {largest:e}, beyond half precision's ±65,504: keep this model in f32"
                    ),
                });
            }
            *t = t.to_dtype(DType::F16)?;
        }
    }
    let backbone: BTreeMap<String, Tensor> = kept
        .iter()
        .map(|(k, v)| (k[prefix.len()..].to_string(), v.clone()))
        .collect();
    meta.fingerprint = embedding_fingerprint(meta.pooling, &backbone)?;
    meta.exported_backbone = Some(role.to_string());
    save_checkpoint(out, &kept, &meta)?;
    Ok(meta.fingerprint)
}

/// Which network of a DINO checkpoint to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Which {
    Teacher,
    Student,
}

/// A backbone ready to embed, with what is known of where it came from.
pub struct LoadedBackbone {
    pub vit: VisionTransformer,
    pub source: PathBuf,
    pub meta: Option<CheckpointMeta>,
    pub fingerprint: String,
}

/// Builds a backbone from a name → tensor map, reporting missing keys and shapes by name.
///
/// Errors (each naming the tensors): a tensor the architecture does not use (LayerScale gammas,
/// register tokens: another architecture, which procmem does not implement), a tensor that is not
/// floating point (integer weights are not a ViT's), a NaN or Inf value, a missing tensor or a
/// wrong shape, a pooling the patch grid cannot take, a standardisation of another width.
pub(crate) fn backbone_from_tensors(
    cfg: &VitConfig,
    pooling: Pooling,
    tensors: HashMap<String, Tensor>,
    source: &Path,
) -> Result<(VisionTransformer, String)> {
    let refuse = |message: String| Error::BadFile {
        path: source.into(),
        message,
    };
    let known: std::collections::HashSet<String> = cfg
        .parameter_names()
        .into_iter()
        .chain(
            StandardisationKeys::EMBEDDING
                .names()
                .into_iter()
                .chain(StandardisationKeys::PATCH_TOKENS.names())
                .map(String::from),
        )
        .collect();
    let mut unused: Vec<&String> = tensors.keys().filter(|k| !known.contains(*k)).collect();
    if !unused.is_empty() {
        unused.sort();
        return Err(refuse(format!(
            "tensors the ViT does not use: {} (another architecture, e.g. LayerScale or register tokens, which procmem does not implement; nothing was loaded)",
            list_names(&unused)
        )));
    }
    let mut not_float: Vec<String> = tensors
        .iter()
        .filter(|(_, t)| {
            !matches!(
                t.dtype(),
                DType::F16 | DType::BF16 | DType::F32 | DType::F64
            )
        })
        .map(|(k, t)| format!("{k} ({:?})", t.dtype()))
        .collect();
    if !not_float.is_empty() {
        not_float.sort();
        return Err(refuse(format!(
            "tensors that are not floating point: {} (ViT weights are floats)",
            list_names(&not_float)
        )));
    }
    let sorted: BTreeMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (fp, non_finite) = fingerprint_and_non_finite(pooling, &sorted)?;
    if !non_finite.is_empty() {
        // Sorted already: the map iterates by name.
        return Err(refuse(format!(
            "non-finite weights (NaN or Inf) in {}",
            list_names(&non_finite)
        )));
    }
    let bad = |e: candle_core::Error| Error::BadFile {
        path: source.into(),
        message: format!("weights do not fit the model: {e}"),
    };
    let standardisation = Standardisation::from_tensors(
        &tensors,
        StandardisationKeys::EMBEDDING,
        pooling.dim(cfg.embed_dim),
        true,
    )
    .map_err(bad)?;
    let patch_standardisation = Standardisation::from_tensors(
        &tensors,
        StandardisationKeys::PATCH_TOKENS,
        cfg.embed_dim,
        false,
    )
    .map_err(bad)?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let vit = VisionTransformer::new(cfg, vb)
        .and_then(|v| v.with_pooling(pooling))
        .and_then(|v| v.with_standardisation(standardisation))
        .and_then(|v| v.with_patch_standardisation(patch_standardisation))
        .map_err(bad)?;
    Ok((vit, fp))
}

/// At most five names, then a count.
fn list_names(names: &[impl AsRef<str>]) -> String {
    let shown: Vec<&str> = names.iter().take(5).map(|n| n.as_ref()).collect();
    match names.len() {
        n if n > 5 => format!("{} and {} more", shown.join(", "), n - 5),
        _ => shown.join(", "),
    }
}

/// Strips DINO's wrappers (`module.`, `backbone.`) and drops the projection head.
fn dino_backbone_keys(raw: Vec<(String, Tensor)>) -> HashMap<String, Tensor> {
    raw.into_iter()
        .filter_map(|(k, v)| {
            let k = k.strip_prefix("module.").unwrap_or(&k);
            if k.starts_with("head.") {
                return None;
            }
            let k = k.strip_prefix("backbone.").unwrap_or(k);
            Some((k.to_string(), v))
        })
        .collect()
}

/// Infers the architecture from weight shapes; heads follow the 64-wide convention of DINO/timm
/// ViTs unless given.
pub fn infer_config(
    tensors: &HashMap<String, Tensor>,
    num_heads: Option<usize>,
    source: &Path,
) -> Result<VitConfig> {
    let bad = |m: String| Error::BadFile {
        path: source.into(),
        message: m,
    };
    let patch = tensors
        .get("patch_embed.proj.weight")
        .ok_or_else(|| bad("no `patch_embed.proj.weight`: not a ViT state dict".into()))?;
    let pos = tensors
        .get("pos_embed")
        .ok_or_else(|| bad("no `pos_embed`".into()))?;
    let (d, c, p, _) = patch.dims4().map_err(|e| bad(e.to_string()))?;
    let n = pos.dim(1).map_err(|e| bad(e.to_string()))? - 1;
    let grid = (n as f64).sqrt().round() as usize;
    let depth = tensors
        .keys()
        .filter_map(|k| {
            k.strip_prefix("blocks.")
                .and_then(|r| r.split('.').next())
                .and_then(|i| i.parse::<usize>().ok())
        })
        .max()
        .map_or(0, |m| m + 1);
    let hidden = tensors
        .get("blocks.0.mlp.fc1.weight")
        .map(|t| t.dim(0).unwrap_or(4 * d))
        .unwrap_or(4 * d);
    Ok(VitConfig {
        img_size: grid * p,
        patch_size: p,
        in_chans: c,
        embed_dim: d,
        depth,
        num_heads: num_heads.unwrap_or((d / 64).max(1)),
        mlp_ratio: hidden as f64 / d as f64,
        qkv_bias: tensors.contains_key("blocks.0.attn.qkv.bias"),
        layer_norm_eps: 1e-6,
    })
}

/// Loads a backbone: a procmem checkpoint (`.json`/`.safetensors` pair), a facebookresearch/dino
/// checkpoint (`.pth`, the `teacher` or `student` entry), or a timm-style `.safetensors` state dict.
pub fn load_backbone(
    path: &Path,
    which: Which,
    num_heads: Option<usize>,
) -> Result<LoadedBackbone> {
    if !path.exists() && !checkpoint_paths(path).1.exists() {
        return Err(Error::BadFile {
            path: path.into(),
            message: "no such weights file (procmem never substitutes other weights)".into(),
        });
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let (st, js) = checkpoint_paths(path);
    if js.exists() && (ext == "json" || ext == "safetensors" || ext.is_empty()) {
        let (meta, tensors) = read_checkpoint(path)?;
        let prefix = format!("{}.backbone.", meta.backbone_role(which));
        let backbone: HashMap<String, Tensor> = tensors
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|s| (s.to_string(), v)))
            .collect();
        if backbone.is_empty() {
            return Err(Error::BadFile {
                path: st,
                message: format!("no `{prefix}*` tensors in the checkpoint"),
            });
        }
        let (vit, fingerprint) = backbone_from_tensors(&meta.vit, meta.pooling, backbone, &st)?;
        let block = meta.patch_standardisation.as_ref().and_then(|s| s.block);
        let vit = vit.with_patch_block(block).map_err(|e| Error::BadFile {
            path: js.clone(),
            message: format!("patch_standardisation.block: {e}"),
        })?;
        return Ok(LoadedBackbone {
            vit,
            source: st,
            meta: Some(meta),
            fingerprint,
        });
    }
    let raw: Vec<(String, Tensor)> = match ext {
        "pth" | "pt" => {
            let key = match which {
                Which::Teacher => "teacher",
                Which::Student => "student",
            };
            match candle_core::pickle::read_all_with_key(path, Some(key)) {
                Ok(v) if !v.is_empty() => v,
                // A bare state dict (no teacher/student entries).
                _ => candle_core::pickle::read_all(path).map_err(|e| Error::BadFile {
                    path: path.into(),
                    message: format!("not a readable PyTorch checkpoint: {e}"),
                })?,
            }
        }
        "safetensors" => candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| Error::BadFile {
                path: path.into(),
                message: format!("unreadable safetensors: {e}"),
            })?
            .into_iter()
            .collect(),
        other => {
            return Err(Error::BadFile {
                path: path.into(),
                message: format!(
                    "unknown weights format `.{other}` (expected .json, .safetensors or .pth)"
                ),
            });
        }
    };
    let tensors = dino_backbone_keys(raw);
    let cfg = infer_config(&tensors, num_heads, path)?;
    let (vit, fingerprint) = backbone_from_tensors(&cfg, Pooling::Cls, tensors, path)?;
    Ok(LoadedBackbone {
        vit,
        source: path.into(),
        meta: None,
        fingerprint,
    })
}

/// Variables of a VarMap, for optimisers (sorted by name for determinism).
pub(crate) fn sorted_vars(varmap: &VarMap) -> Result<Vec<(String, Var)>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::Model("variable map poisoned".into()))?;
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}
