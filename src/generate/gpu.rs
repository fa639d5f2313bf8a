//! Batched rendering of procedural programs with wgpu compute shaders.
//!
//! Every program is compiled once into a compute pipeline (program source + `shaders/prelude.wgsl`)
//! and renders many images per dispatch: one image per z-slice, each with its own time, seed and
//! parameters. On a machine without a GPU this runs on Mesa's lavapipe (software Vulkan).

use std::collections::HashMap;
use std::sync::Arc;

use wgpu::util::DeviceExt;

use super::programs::{Program, validate_wgsl};
use crate::error::{Error, Result};

/// Bytes of one job record in the shader (`struct Job`): 4 scalars + 2 × vec4.
const JOB_BYTES: u64 = 48;
/// Upper bound for one dispatch's output, so buffers stay well inside default binding limits.
const MAX_BATCH_BYTES: u64 = 96 << 20;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct JobRecord {
    time: f32,
    seed: u32,
    offset: u32,
    variant: u32,
    params: [f32; 8],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct DimsRecord {
    size: u32,
    job_count: u32,
    _pad: [u32; 2],
}

/// One image to render.
#[derive(Clone, Debug)]
pub struct RenderJob {
    /// Index of the program in the slice passed to [`GpuRenderer::render`].
    pub program: usize,
    pub time: f32,
    pub seed: u32,
    pub params: [f32; 8],
}

/// What the adapter is, for manifests and the UI.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}, {})",
            self.name, self.backend, self.device_type, self.driver
        )
    }
}

/// A headless wgpu device with the pipelines compiled so far.
pub struct GpuRenderer {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: AdapterSummary,
    layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    /// Compiled pipelines, keyed by the program's content hash.
    pipelines: HashMap<u64, Arc<wgpu::ComputePipeline>>,
}

impl GpuRenderer {
    /// Opens the best available adapter without a window (a real GPU, else lavapipe).
    pub fn new() -> Result<Self> {
        // Vulkan/Metal/DX12 first (lavapipe where there is no GPU); OpenGL only as a fallback,
        // because probing EGL without a display spams warnings. WGPU_BACKEND overrides both.
        let request = |backends: wgpu::Backends| {
            let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
            desc.backends = backends;
            let instance = wgpu::Instance::new(desc.with_env());
            pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            }))
        };
        let adapter = request(wgpu::Backends::PRIMARY)
            .or_else(|_| request(wgpu::Backends::GL))
            .map_err(|e| Error::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let summary = AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
        };
        let mut limits = wgpu::Limits::downlevel_defaults();
        let adapter_limits = adapter.limits();
        limits.max_storage_buffer_binding_size = adapter_limits
            .max_storage_buffer_binding_size
            .min(MAX_BATCH_BYTES * 2);
        limits.max_buffer_size = adapter_limits.max_buffer_size.min(MAX_BATCH_BYTES * 2);
        limits.max_compute_workgroups_per_dimension =
            adapter_limits.max_compute_workgroups_per_dimension;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("procmem generator"),
            required_features: wgpu::Features::empty(),
            required_limits: limits,
            ..Default::default()
        }))
        .map_err(|e| Error::NoAdapter(format!("{summary}: {e}")))?;

        let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("program bindings"),
            entries: &[
                storage(0, true),
                storage(1, false),
                wgpu::BindGroupLayoutEntry {
                    binding: 2,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("program pipeline layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        Ok(Self {
            device,
            queue,
            adapter: summary,
            layout,
            pipeline_layout,
            pipelines: HashMap::new(),
        })
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    /// Number of pipelines compiled so far.
    pub fn compiled_count(&self) -> usize {
        self.pipelines.len()
    }

    /// Compiles `program` (once; later calls hit the cache). A program that fails validation is
    /// an error naming it and carrying the compiler's message.
    pub fn pipeline(&mut self, program: &Program) -> Result<Arc<wgpu::ComputePipeline>> {
        if let Some(p) = self.pipelines.get(&program.hash) {
            return Ok(p.clone());
        }
        // Validate with naga first: its messages point at the program's own lines because the
        // program comes first in the module (WGSL declarations may appear in any order).
        let source = program.module_source();
        validate_wgsl(&program.name, &source)?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&program.name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&program.name),
                layout: Some(&self.pipeline_layout),
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(Error::ShaderCompile {
                program: program.name.clone(),
                message: err.to_string(),
            });
        }
        let pipeline = Arc::new(pipeline);
        self.pipelines.insert(program.hash, pipeline.clone());
        Ok(pipeline)
    }

    /// Renders `jobs` at `size`×`size`. Returns RGB images in job order.
    pub fn render(
        &mut self,
        programs: &[Program],
        size: u32,
        jobs: &[RenderJob],
    ) -> Result<Vec<image::RgbImage>> {
        if size == 0 {
            return Err(Error::InvalidConfig("image size must be positive".into()));
        }
        let image_bytes = size as u64 * size as u64 * 4;
        let per_batch = (MAX_BATCH_BYTES / image_bytes).clamp(1, 65_535) as usize;
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(per_batch) {
            out.extend(self.render_chunk(programs, size, chunk)?);
        }
        Ok(out)
    }

    fn render_chunk(
        &mut self,
        programs: &[Program],
        size: u32,
        jobs: &[RenderJob],
    ) -> Result<Vec<image::RgbImage>> {
        let pixels_per_image = size as usize * size as usize;
        // Group jobs by program: one dispatch per program, all in one submission.
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            if job.program >= programs.len() {
                return Err(Error::InvalidConfig(format!(
                    "job refers to program {} of {}",
                    job.program,
                    programs.len()
                )));
            }
            match groups.iter_mut().find(|(p, _)| *p == job.program) {
                Some((_, members)) => members.push(i),
                None => groups.push((job.program, vec![i])),
            }
        }
        let output_bytes = (pixels_per_image * jobs.len() * 4) as u64;
        let output = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pixels"),
            size: output_bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pixels readback"),
            size: output_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("render batch"),
            });
        for (program_index, members) in &groups {
            let pipeline = self.pipeline(&programs[*program_index])?;
            let records: Vec<JobRecord> = members
                .iter()
                .map(|&i| {
                    let job = &jobs[i];
                    JobRecord {
                        time: job.time,
                        seed: job.seed,
                        offset: (i * pixels_per_image) as u32,
                        variant: 0,
                        params: job.params,
                    }
                })
                .collect();
            debug_assert_eq!(std::mem::size_of::<JobRecord>() as u64, JOB_BYTES);
            let job_buffer = self
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("jobs"),
                    contents: bytemuck::cast_slice(&records),
                    usage: wgpu::BufferUsages::STORAGE,
                });
            let dims = DimsRecord {
                size,
                job_count: records.len() as u32,
                _pad: [0; 2],
            };
            let dims_buffer = self
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("dims"),
                    contents: bytemuck::bytes_of(&dims),
                    usage: wgpu::BufferUsages::UNIFORM,
                });
            let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("program batch"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: job_buffer.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: output.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: dims_buffer.as_entire_binding(),
                    },
                ],
            });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("render"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(size.div_ceil(8), size.div_ceil(8), records.len() as u32);
        }
        encoder.copy_buffer_to_buffer(&output, 0, &readback, 0, output_bytes);
        self.queue.submit([encoder.finish()]);
        let slice = readback.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the render: {e}")))?;
        rx.recv()
            .map_err(|_| Error::Gpu("the readback was dropped".into()))?
            .map_err(|e| Error::Gpu(format!("reading back pixels: {e}")))?;
        let images = {
            let data = slice
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("mapping pixels: {e}")))?;
            let words: &[u32] = bytemuck::cast_slice(&data);
            (0..jobs.len())
                .map(|i| {
                    let px = &words[i * pixels_per_image..(i + 1) * pixels_per_image];
                    let mut raw = Vec::with_capacity(pixels_per_image * 3);
                    for w in px {
                        raw.extend_from_slice(&w.to_le_bytes()[..3]);
                    }
                    image::RgbImage::from_raw(size, size, raw).expect("buffer has size² RGB pixels")
                })
                .collect()
        };
        readback.unmap();
        Ok(images)
    }
}
