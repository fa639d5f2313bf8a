//! Procedural image generation: the paper's four data processes and the prior work's baselines.
//!
//! | process          | one sample                                                                 |
//! |------------------|-----------------------------------------------------------------------------|
//! | `shaders`        | a program drawn uniformly from the pool, rendered at a time t ~ U[0.1, 10] |
//! | `shaders-mixup`  | 6 shader images mixed with Dirichlet(1) weights, truncated to 8 bits      |
//! | `shaders-kml`    | K-means Leaves: s1's 2-means mask blends textures s2 and s3 ([`kml`])      |
//! | `kml-mixup`      | the plain mean of two KML images                                           |
//! | `dead-leaves`    | occluding random discs with power-law radii (Baradad et al. 2021)          |
//! | `spectral-noise` | random-phase noise with a 1/f^α amplitude spectrum (Baradad et al. 2021)   |
//!
//! Every sample is a pure function of (config, seed, index): the same seed gives the same
//! image on the same adapter. Rendering is batched on the GPU ([`gpu`]); mixing and k-means run
//! on CPU threads.
//!
//! Deviation from the paper's pipeline, for an on-the-fly stream: the paper's KML and KML Mixup
//! draw their components from a fixed, pre-rendered dataset (s2, s3 and the mixup partner are
//! random indices into it). Here every component is an independent fresh draw, which has the
//! same distribution without storing a dataset. s1 is rendered directly at the clustering
//! resolution instead of being rendered larger and resized to it.

pub mod bench;
pub mod gpu;
pub mod imageops;
pub mod kml;
pub mod manifest;
pub mod programs;
pub mod synth;

use std::collections::BTreeMap;
use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::{self, Rng};
use gpu::{GpuRenderer, RenderJob};
pub use kml::KmlConfig;
use programs::{DEAD_LEAVES_SOURCE, Program, ProgramLibrary, ProgramOrigin, SPECTRAL_NOISE_SOURCE};

/// A data process of the paper (and the two noise baselines of prior work).
#[derive(
    Clone,
    Copy,
    Debug,
    Serialize,
    Deserialize,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Process {
    Shaders,
    ShadersMixup,
    ShadersKml,
    KmlMixup,
    DeadLeaves,
    SpectralNoise,
}

impl Process {
    pub const ALL: [Process; 6] = [
        Process::Shaders,
        Process::ShadersMixup,
        Process::ShadersKml,
        Process::KmlMixup,
        Process::DeadLeaves,
        Process::SpectralNoise,
    ];

    /// The name used on the command line and in manifests.
    pub fn cli_name(self) -> &'static str {
        match self {
            Process::Shaders => "shaders",
            Process::ShadersMixup => "shaders-mixup",
            Process::ShadersKml => "shaders-kml",
            Process::KmlMixup => "kml-mixup",
            Process::DeadLeaves => "dead-leaves",
            Process::SpectralNoise => "spectral-noise",
        }
    }

    /// The name the paper uses.
    pub fn label(self) -> &'static str {
        match self {
            Process::Shaders => "Shaders",
            Process::ShadersMixup => "Shaders Mixup",
            Process::ShadersKml => "Shaders KML",
            Process::KmlMixup => "KML Mixup",
            Process::DeadLeaves => "Dead leaves",
            Process::SpectralNoise => "Spectral noise",
        }
    }
}

impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.cli_name())
    }
}

/// Everything that determines a generated set besides the seed. Shared by the CLI
/// (`--config file.toml`), the Generators panel and manifests.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct GeneratorConfig {
    /// Data process. Default `kml-mixup`, the paper's best.
    pub process: Process,
    /// Output side in pixels (square images). Default 64, the CPU-scale training resolution.
    pub size: u32,
    /// Shader times are drawn uniformly in [time_min, time_max]. Default [0.1, 10] as shaders21k.
    pub time_min: f32,
    pub time_max: f32,
    /// Added to every drawn time; the panel animates with it. Default 0.
    pub time_shift: f32,
    /// Synthesized expression-tree programs added to the sampling pool. Default 16.
    pub synthesized: usize,
    /// Seed of the first synthesized program (the others follow). Default 0.
    pub synth_seed: u64,
    /// Hand-written program ids left out of the pool. Default none.
    pub disabled_programs: Vec<String>,
    /// Parameter values per program id (the header's defaults where absent).
    pub program_params: BTreeMap<String, Vec<f32>>,
    /// Images per Shaders Mixup sample. Default 6 (shaders21k's `--n-samples-mix`).
    pub mixup_count: usize,
    /// Dirichlet concentration of the mixup weights. Default 1 (uniform on the simplex).
    pub mixup_alpha: f64,
    /// K-means Leaves parameters (the paper code's defaults).
    pub kml: KmlConfig,
    /// KML images averaged per KML Mixup sample. Default 2 (plain mean, as the paper).
    pub kml_mixup_count: usize,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            process: Process::KmlMixup,
            size: 64,
            time_min: 0.1,
            time_max: 10.0,
            time_shift: 0.0,
            synthesized: 16,
            synth_seed: 0,
            disabled_programs: Vec::new(),
            program_params: BTreeMap::new(),
            mixup_count: 6,
            mixup_alpha: 1.0,
            kml: KmlConfig::default(),
            kml_mixup_count: 2,
        }
    }
}

impl GeneratorConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if !(8..=1024).contains(&self.size) {
            return bad(format!("size {} must be in 8..=1024", self.size));
        }
        if !(self.time_min.is_finite()
            && self.time_max.is_finite()
            && self.time_min <= self.time_max)
        {
            return bad(format!(
                "time range [{}, {}] is empty",
                self.time_min, self.time_max
            ));
        }
        if !(1..=16).contains(&self.mixup_count) {
            return bad(format!(
                "mixup count {} must be in 1..=16",
                self.mixup_count
            ));
        }
        if !(self.mixup_alpha > 0.0 && self.mixup_alpha.is_finite()) {
            return bad(format!("mixup alpha {} must be positive", self.mixup_alpha));
        }
        if !(1..=16).contains(&self.kml.k) {
            return bad(format!("KML k {} must be in 1..=16", self.kml.k));
        }
        if !(1..=50).contains(&self.kml.iterations) {
            return bad(format!(
                "KML iterations {} must be in 1..=50",
                self.kml.iterations
            ));
        }
        if !(1..=15).contains(&self.kml.blur) {
            return bad(format!("KML blur {} must be in 1..=15", self.kml.blur));
        }
        if !(8..=1024).contains(&self.kml.resolution) {
            return bad(format!(
                "KML resolution {} must be in 8..=1024",
                self.kml.resolution
            ));
        }
        if !(1..=8).contains(&self.kml_mixup_count) {
            return bad(format!(
                "KML mixup count {} must be in 1..=8",
                self.kml_mixup_count
            ));
        }
        Ok(())
    }
}

/// How a sample was made: enough to explain it (the manifest records it per image).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Recipe {
    /// One program rendered at one time.
    Program { program: String, time: f32 },
    /// A convex combination of images.
    Mixup {
        components: Vec<Recipe>,
        weights: Vec<f32>,
    },
    /// K-means Leaves: s1 is clustered, its masks blend the textures.
    Kml {
        s1: Box<Recipe>,
        textures: Vec<Recipe>,
    },
    /// The plain mean of KML images.
    KmlMixup { components: Vec<Recipe> },
    /// A baseline generator with its per-image seed.
    Generator { generator: String, seed: u32 },
}

impl Recipe {
    /// Ids of every program this recipe used.
    pub(crate) fn program_ids(&self, out: &mut Vec<String>) {
        match self {
            Recipe::Program { program, .. } => out.push(program.clone()),
            Recipe::Generator { generator, .. } => out.push(generator.clone()),
            Recipe::Mixup { components, .. } | Recipe::KmlMixup { components } => {
                components.iter().for_each(|c| c.program_ids(out))
            }
            Recipe::Kml { s1, textures } => {
                s1.program_ids(out);
                textures.iter().for_each(|c| c.program_ids(out));
            }
        }
    }

    /// A one-line description for the UI.
    pub fn summary(&self) -> String {
        match self {
            Recipe::Program { program, time } => format!("{program} @ t={time:.2}"),
            Recipe::Generator { generator, seed } => format!("{generator} seed {seed}"),
            Recipe::Mixup { components, .. } => format!("mixup of {}", components.len()),
            Recipe::Kml { s1, .. } => format!("KML of {}", s1.summary()),
            Recipe::KmlMixup { components } => format!("mean of {} KML", components.len()),
        }
    }
}

/// An intermediate image of a sample, kept for the decomposition view.
#[derive(Clone, Debug)]
pub struct Part {
    pub label: String,
    pub image: image::RgbImage,
}

/// One generated image.
#[derive(Clone, Debug)]
pub struct Sample {
    pub index: u64,
    pub image: image::RgbImage,
    pub recipe: Recipe,
    /// The components (only when asked for).
    pub parts: Vec<Part>,
}

/// Where a planned render lands.
#[derive(Clone, Copy, Debug)]
enum Target {
    Output(usize),
    Cluster(usize),
}

#[derive(Clone, Debug)]
enum Plan {
    Render(Target, Recipe),
    Mixup(Vec<Plan>, Vec<f32>),
    Kml {
        s1: Target,
        s1_recipe: Recipe,
        textures: Vec<(usize, Recipe)>,
    },
    KmlMixup(Vec<Plan>),
}

/// Renders samples of one configuration.
pub struct Generator {
    renderer: GpuRenderer,
    library: ProgramLibrary,
    config: GeneratorConfig,
    pool: Vec<Program>,
    baselines: Vec<Program>,
}

/// The baseline generators' programs (dead leaves, spectral noise).
pub(crate) fn baseline_programs() -> Vec<Program> {
    [
        ("dead-leaves", DEAD_LEAVES_SOURCE),
        ("spectral-noise", SPECTRAL_NOISE_SOURCE),
    ]
    .into_iter()
    .map(|(id, src)| {
        Program::parse(id, src, ProgramOrigin::Generator)
            .expect("bundled generator headers are valid")
    })
    .collect()
}

impl Generator {
    pub fn new(
        renderer: GpuRenderer,
        library: ProgramLibrary,
        config: GeneratorConfig,
    ) -> Result<Self> {
        let mut g = Self {
            renderer,
            library,
            config: GeneratorConfig::default(),
            pool: Vec::new(),
            baselines: baseline_programs(),
        };
        g.set_config(config)?;
        Ok(g)
    }

    /// Opens a renderer and loads the program library from its default places.
    pub fn open_default(config: GeneratorConfig) -> Result<Self> {
        let library = ProgramLibrary::load(ProgramLibrary::default_user_dir().as_deref());
        for r in &library.rejected {
            log::warn!("skipping program {}: {}", r.id, r.message);
        }
        Self::new(GpuRenderer::new()?, library, config)
    }

    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    pub fn library(&self) -> &ProgramLibrary {
        &self.library
    }

    pub fn renderer(&self) -> &GpuRenderer {
        &self.renderer
    }

    /// Programs a Shaders sample is drawn from.
    pub fn pool(&self) -> &[Program] {
        &self.pool
    }

    /// Every program a recipe of this generator may name (pool and baselines).
    pub fn program(&self, id: &str) -> Option<&Program> {
        self.pool.iter().chain(&self.baselines).find(|p| p.id == id)
    }

    pub fn set_config(&mut self, config: GeneratorConfig) -> Result<()> {
        config.validate()?;
        let pool_changed = self.pool.is_empty()
            || config.synthesized != self.config.synthesized
            || config.synth_seed != self.config.synth_seed
            || config.disabled_programs != self.config.disabled_programs;
        if pool_changed {
            // Enabled hand-written programs, then `synthesized` ones (seeds synth_seed, synth_seed + 1, …).
            let mut pool = self.library.enabled(&config.disabled_programs);
            pool.extend((0..config.synthesized as u64).map(|i| {
                synth::SynthProgram::generate(config.synth_seed.wrapping_add(i)).to_program()
            }));
            if pool.is_empty()
                && !matches!(config.process, Process::DeadLeaves | Process::SpectralNoise)
            {
                return Err(Error::InvalidConfig(
                    "the program pool is empty: enable a program or add synthesized ones".into(),
                ));
            }
            self.pool = pool;
        }
        self.config = config;
        Ok(())
    }

    /// Replaces the program library (e.g. after a new file was dropped into `shaders/`).
    pub(crate) fn set_library(&mut self, library: ProgramLibrary) -> Result<()> {
        self.library = library;
        self.pool.clear();
        self.set_config(self.config.clone())
    }

    fn draw_program(&self, rng: &mut Rng, jobs: &mut Vec<RenderJob>) -> (usize, Recipe) {
        let program = rng.below(self.pool.len());
        let time =
            rng.range_f32(self.config.time_min, self.config.time_max) + self.config.time_shift;
        let p = &self.pool[program];
        jobs.push(RenderJob {
            program,
            time,
            seed: rng.next_u32(),
            params: p.resolve_params(self.config.program_params.get(&p.id)),
        });
        (
            jobs.len() - 1,
            Recipe::Program {
                program: p.id.clone(),
                time,
            },
        )
    }

    fn plan_kml(
        &self,
        rng: &mut Rng,
        out_jobs: &mut Vec<RenderJob>,
        cluster_jobs: &mut Vec<RenderJob>,
    ) -> Plan {
        let (s1, s1_recipe) = self.draw_program(rng, cluster_jobs);
        let textures = (0..self.config.kml.texture_count())
            .map(|_| self.draw_program(rng, out_jobs))
            .collect();
        Plan::Kml {
            s1: Target::Cluster(s1),
            s1_recipe,
            textures,
        }
    }

    fn plan(
        &self,
        seed: u64,
        index: u64,
        out_jobs: &mut Vec<RenderJob>,
        cluster_jobs: &mut Vec<RenderJob>,
    ) -> Plan {
        // The process is mixed into the stream so that different processes with the same seed
        // do not start from the same program draws.
        let process_seed = rng::derive(seed, 0x9_0000 + self.config.process as u64);
        let mut rng = Rng::for_sample(process_seed, index);
        match self.config.process {
            Process::Shaders => {
                let (j, r) = self.draw_program(&mut rng, out_jobs);
                Plan::Render(Target::Output(j), r)
            }
            Process::ShadersMixup => {
                let parts = (0..self.config.mixup_count)
                    .map(|_| {
                        let (j, r) = self.draw_program(&mut rng, out_jobs);
                        Plan::Render(Target::Output(j), r)
                    })
                    .collect();
                let weights = rng.dirichlet(self.config.mixup_count, self.config.mixup_alpha);
                Plan::Mixup(parts, weights)
            }
            Process::ShadersKml => self.plan_kml(&mut rng, out_jobs, cluster_jobs),
            Process::KmlMixup => Plan::KmlMixup(
                (0..self.config.kml_mixup_count)
                    .map(|_| self.plan_kml(&mut rng, out_jobs, cluster_jobs))
                    .collect(),
            ),
            Process::DeadLeaves | Process::SpectralNoise => {
                let which = if self.config.process == Process::DeadLeaves {
                    0
                } else {
                    1
                };
                let p = &self.baselines[which];
                let seed = rng.next_u32();
                // Baseline jobs index past the pool so the renderer can tell them apart.
                out_jobs.push(RenderJob {
                    program: self.pool.len() + which,
                    time: 0.0,
                    seed,
                    params: p.resolve_params(self.config.program_params.get(&p.id)),
                });
                Plan::Render(
                    Target::Output(out_jobs.len() - 1),
                    Recipe::Generator {
                        generator: p.id.clone(),
                        seed,
                    },
                )
            }
        }
    }

    /// Generates samples `range` of the set drawn with `seed`. With `keep_parts`, each sample
    /// carries its components for the decomposition view.
    pub fn generate(
        &mut self,
        seed: u64,
        range: Range<u64>,
        keep_parts: bool,
    ) -> Result<Vec<Sample>> {
        let mut out_jobs = Vec::new();
        let mut cluster_jobs = Vec::new();
        let plans: Vec<(u64, Plan)> = range
            .map(|i| (i, self.plan(seed, i, &mut out_jobs, &mut cluster_jobs)))
            .collect();
        let programs: Vec<Program> = self.pool.iter().chain(&self.baselines).cloned().collect();
        let outputs = self
            .renderer
            .render(&programs, self.config.size, &out_jobs)?;
        let clusters = if cluster_jobs.is_empty() {
            Vec::new()
        } else {
            self.renderer
                .render(&programs, self.config.kml.resolution, &cluster_jobs)?
        };
        let cfg = &self.config;
        Ok(plans
            .into_par_iter()
            .map(|(index, plan)| {
                let mut parts = Vec::new();
                let (image, recipe) =
                    assemble(&plan, &outputs, &clusters, cfg, keep_parts, &mut parts, "");
                Sample {
                    index,
                    image,
                    recipe,
                    parts,
                }
            })
            .collect())
    }
}

fn fetch<'a>(
    t: Target,
    outputs: &'a [image::RgbImage],
    clusters: &'a [image::RgbImage],
) -> &'a image::RgbImage {
    match t {
        Target::Output(i) => &outputs[i],
        Target::Cluster(i) => &clusters[i],
    }
}

/// Pixelwise Σ wᵢ·imgᵢ truncated to 8 bits (shaders21k's `ConvexSamplesMixer`).
pub(crate) fn convex_mix(images: &[&image::RgbImage], weights: &[f32]) -> image::RgbImage {
    let (w, h) = images[0].dimensions();
    let mut acc = vec![0.0f32; (w * h * 3) as usize];
    for (img, wt) in images.iter().zip(weights) {
        for (a, v) in acc.iter_mut().zip(img.as_raw()) {
            *a += wt * *v as f32;
        }
    }
    // A tiny epsilon keeps exact integers (e.g. 0.5·a + 0.5·a) from truncating one level down.
    image::RgbImage::from_raw(
        w,
        h,
        acc.iter()
            .map(|v| (v + 1e-3).clamp(0.0, 255.0) as u8)
            .collect(),
    )
    .expect("same dimensions")
}

fn gray_to_rgb(g: &image::GrayImage) -> image::RgbImage {
    image::RgbImage::from_fn(g.width(), g.height(), |x, y| {
        let v = g.get_pixel(x, y)[0];
        image::Rgb([v, v, v])
    })
}

fn assemble(
    plan: &Plan,
    outputs: &[image::RgbImage],
    clusters: &[image::RgbImage],
    cfg: &GeneratorConfig,
    keep: bool,
    parts: &mut Vec<Part>,
    prefix: &str,
) -> (image::RgbImage, Recipe) {
    match plan {
        Plan::Render(t, recipe) => (fetch(*t, outputs, clusters).clone(), recipe.clone()),
        Plan::Mixup(components, weights) => {
            let mut images = Vec::new();
            let mut recipes = Vec::new();
            for (i, c) in components.iter().enumerate() {
                let (img, r) = assemble(c, outputs, clusters, cfg, false, parts, prefix);
                if keep {
                    parts.push(Part {
                        label: format!(
                            "{prefix}component {} (w={:.3}): {}",
                            i + 1,
                            weights[i],
                            r.summary()
                        ),
                        image: img.clone(),
                    });
                }
                images.push(img);
                recipes.push(r);
            }
            let refs: Vec<&image::RgbImage> = images.iter().collect();
            (
                convex_mix(&refs, weights),
                Recipe::Mixup {
                    components: recipes,
                    weights: weights.clone(),
                },
            )
        }
        Plan::Kml {
            s1,
            s1_recipe,
            textures,
        } => {
            let s1_img = fetch(*s1, outputs, clusters);
            let texture_images: Vec<image::RgbImage> =
                textures.iter().map(|(j, _)| outputs[*j].clone()).collect();
            let (img, mask) = kml::compose(s1_img, &texture_images, &cfg.kml, cfg.size);
            if keep {
                parts.push(Part {
                    label: format!("{prefix}s1: {}", s1_recipe.summary()),
                    image: s1_img.clone(),
                });
                parts.push(Part {
                    label: format!("{prefix}k-means mask of texture 1 (white = s2)"),
                    image: gray_to_rgb(&mask),
                });
                for (i, (_, r)) in textures.iter().enumerate() {
                    parts.push(Part {
                        label: format!("{prefix}s{}: {}", i + 2, r.summary()),
                        image: texture_images[i].clone(),
                    });
                }
                parts.push(Part {
                    label: format!("{prefix}KML result"),
                    image: img.clone(),
                });
            }
            let recipe = Recipe::Kml {
                s1: Box::new(s1_recipe.clone()),
                textures: textures.iter().map(|(_, r)| r.clone()).collect(),
            };
            (img, recipe)
        }
        Plan::KmlMixup(components) => {
            let mut images = Vec::new();
            let mut recipes = Vec::new();
            for (i, c) in components.iter().enumerate() {
                let (img, r) = assemble(
                    c,
                    outputs,
                    clusters,
                    cfg,
                    keep,
                    parts,
                    &format!("KML {}: ", i + 1),
                );
                images.push(img);
                recipes.push(r);
            }
            let refs: Vec<&image::RgbImage> = images.iter().collect();
            let w = vec![1.0 / images.len() as f32; images.len()];
            (
                convex_mix(&refs, &w),
                Recipe::KmlMixup {
                    components: recipes,
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convex_mix_truncates_like_shaders21k() {
        let a = image::RgbImage::from_pixel(1, 1, image::Rgb([10, 200, 255]));
        let b = image::RgbImage::from_pixel(1, 1, image::Rgb([11, 100, 0]));
        let m = convex_mix(&[&a, &b], &[0.5, 0.5]);
        // (10+11)/2 = 10.5 → 10; (200+100)/2 = 150; 255/2 = 127.5 → 127
        assert_eq!(m.get_pixel(0, 0).0, [10, 150, 127]);
        let same = convex_mix(&[&a, &a], &[0.5, 0.5]);
        assert_eq!(same.get_pixel(0, 0).0, [10, 200, 255]);
    }

    #[test]
    fn config_validation_names_the_problem() {
        let mut c = GeneratorConfig::default();
        assert!(c.validate().is_ok());
        c.kml.k = 0;
        assert!(c.validate().unwrap_err().to_string().contains("KML k"));
    }

    #[test]
    fn config_round_trips_through_toml_and_fills_defaults() {
        let c: GeneratorConfig =
            toml::from_str("process = \"shaders-kml\"\n[kml]\nk = 3\n").unwrap();
        assert_eq!(c.process, Process::ShadersKml);
        assert_eq!(c.kml.k, 3);
        assert_eq!(c.kml.iterations, 3);
        assert_eq!(c.size, 64);
        let back: GeneratorConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
