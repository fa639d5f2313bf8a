//! Generator tests on the real wgpu path (lavapipe in CI: no GPU needed).

use procmem::generate::gpu::{GpuRenderer, RenderJob};
use procmem::generate::programs::ProgramLibrary;
use procmem::generate::synth::SynthProgram;
use procmem::generate::{Generator, GeneratorConfig, KmlConfig, Process, Recipe, manifest};

fn generator(config: GeneratorConfig) -> Generator {
    Generator::new(
        GpuRenderer::new().expect("a wgpu adapter (install mesa-vulkan-drivers)"),
        ProgramLibrary::load(None),
        config,
    )
    .expect("valid config")
}

#[test]
fn synthesized_programs_agree_between_gpu_and_cpu() {
    let mut renderer = GpuRenderer::new().expect("adapter");
    let programs: Vec<_> = (1000..1024)
        .map(|s| SynthProgram::generate(s).to_program())
        .collect();
    let size = 32;
    let jobs: Vec<RenderJob> = (0..programs.len())
        .map(|i| RenderJob {
            program: i,
            time: 0.1 + 0.41 * i as f32,
            seed: 0,
            params: [0.0; 8],
        })
        .collect();
    let images = renderer.render(&programs, size, &jobs).expect("render");
    let mut worst = 0i32;
    for (i, img) in images.iter().enumerate() {
        let synth = SynthProgram::generate(1000 + i as u64);
        for y in 0..size {
            for x in 0..size {
                let cpu = synth.eval_pixel(x, y, size, jobs[i].time);
                let gpu = img.get_pixel(x, y).0;
                for c in 0..3 {
                    let d = (cpu[c] as i32 - gpu[c] as i32).abs();
                    worst = worst.max(d);
                    assert!(
                        d <= 2,
                        "program {} pixel ({x},{y}) channel {c}: cpu {cpu:?} gpu {gpu:?}\n{}",
                        i,
                        synth.to_wgsl()
                    );
                }
            }
        }
    }
    eprintln!("worst CPU/GPU difference: {worst}/255");
}

#[test]
fn every_process_renders_distinct_non_constant_images() {
    let mut g = generator(GeneratorConfig::default());
    for process in Process::ALL {
        let mut c = GeneratorConfig {
            process,
            size: 32,
            ..Default::default()
        };
        c.kml.resolution = 64;
        g.set_config(c).unwrap();
        let samples = g.generate(7, 0..6, true).unwrap();
        assert_eq!(samples.len(), 6);
        let mut distinct = std::collections::HashSet::new();
        for s in &samples {
            assert_eq!(s.image.dimensions(), (32, 32));
            let first = s.image.get_pixel(0, 0);
            let varied = s.image.pixels().filter(|p| *p != first).count();
            // A rare sample can be nearly flat; most must not be.
            distinct.insert(s.image.as_raw().clone());
            let _ = varied;
        }
        assert_eq!(distinct.len(), 6, "{process}: duplicate images");
        let varied = samples
            .iter()
            .filter(|s| s.image.pixels().any(|p| p != s.image.get_pixel(0, 0)))
            .count();
        assert!(varied >= 5, "{process}: {varied}/6 images vary");
        match (process, &samples[0].recipe) {
            (Process::Shaders, Recipe::Program { time, .. }) => {
                assert!((0.1..=10.0).contains(time))
            }
            (
                Process::ShadersMixup,
                Recipe::Mixup {
                    components,
                    weights,
                },
            ) => {
                assert_eq!(components.len(), 6);
                assert!((weights.iter().sum::<f32>() - 1.0).abs() < 1e-4);
                assert_eq!(samples[0].parts.len(), 6);
            }
            (Process::ShadersKml, Recipe::Kml { textures, .. }) => {
                assert_eq!(textures.len(), 2);
                // s1, mask, s2, s3, result
                assert_eq!(samples[0].parts.len(), 5);
            }
            (Process::KmlMixup, Recipe::KmlMixup { components }) => assert_eq!(components.len(), 2),
            (Process::DeadLeaves | Process::SpectralNoise, Recipe::Generator { .. }) => {}
            (p, r) => panic!("{p}: unexpected recipe {r:?}"),
        }
    }
}

#[test]
fn same_seed_same_images_and_indices_are_independent_of_batching() {
    let mut c = GeneratorConfig {
        process: Process::KmlMixup,
        size: 32,
        ..Default::default()
    };
    c.kml.resolution = 64;
    let mut g = generator(c);
    let all = g.generate(11, 0..6, false).unwrap();
    let again = g.generate(11, 0..6, false).unwrap();
    let tail = g.generate(11, 3..6, false).unwrap();
    let other = g.generate(12, 0..6, false).unwrap();
    for i in 0..6 {
        assert_eq!(all[i].image, again[i].image);
        assert_eq!(all[i].recipe, again[i].recipe);
    }
    for i in 0..3 {
        assert_eq!(
            all[3 + i].image,
            tail[i].image,
            "sample {} depends on its batch",
            3 + i
        );
    }
    assert_ne!(all[0].image, other[0].image);
}

#[test]
fn kml_handles_many_clusters_custom_assignment_and_empty_clusters() {
    for (k, assignment) in [(5, vec![]), (4, vec![0, 1, 0, 1]), (16, vec![])] {
        let c = GeneratorConfig {
            process: Process::ShadersKml,
            size: 24,
            kml: KmlConfig {
                k,
                assignment: assignment.clone(),
                resolution: 32,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut g = generator(c.clone());
        let s = g.generate(3, 0..4, true).unwrap();
        if let Recipe::Kml { textures, .. } = &s[0].recipe {
            assert_eq!(textures.len(), c.kml.texture_count());
        } else {
            panic!("not a KML recipe");
        }
    }
}

#[test]
fn a_set_regenerates_exactly_from_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let mut c = GeneratorConfig {
        process: Process::ShadersKml,
        size: 32,
        ..Default::default()
    };
    c.kml.resolution = 64;
    let mut g = generator(c);
    let m = manifest::write_set(&mut g, 99, 10, &a, |_, _| true).unwrap();
    assert_eq!(m.images.len(), 10);
    assert!(!m.programs.is_empty());
    let (m2, _) = manifest::regenerate(&a.join(manifest::MANIFEST_FILE), &b, |_, _| true).unwrap();
    assert_eq!(m2.images, m.images);
    for img in &m.images {
        let x = std::fs::read(a.join(&img.file)).unwrap();
        let y = std::fs::read(b.join(&img.file)).unwrap();
        assert_eq!(x, y, "{} differs", img.file);
    }
}

#[test]
fn a_corrupt_manifest_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.json");
    std::fs::write(&path, "{\"format\": \"procmem-generated-set\", \"vers").unwrap();
    let err = manifest::regenerate(&path, &dir.path().join("out"), |_, _| true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a procmem manifest"), "{err}");
}

#[test]
fn cancelling_a_write_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = generator(GeneratorConfig {
        process: Process::Shaders,
        size: 16,
        ..Default::default()
    });
    let err = manifest::write_set(&mut g, 1, 100_000, dir.path(), |_, _| false).unwrap_err();
    assert!(matches!(err, procmem::Error::Cancelled));
    assert!(!dir.path().join(manifest::MANIFEST_FILE).exists());
}

#[test]
fn every_hand_written_program_compiles_on_the_adapter_and_varies_with_time() {
    let lib = ProgramLibrary::load(None);
    let mut renderer = GpuRenderer::new().unwrap();
    let programs = lib.programs.clone();
    let jobs: Vec<RenderJob> = (0..programs.len())
        .flat_map(|i| {
            let params = programs[i].default_params();
            [1.0f32, 6.0].map(|time| RenderJob {
                program: i,
                time,
                seed: 0,
                params,
            })
        })
        .collect();
    let images = renderer
        .render(&programs, 32, &jobs)
        .expect("all programs compile and render");
    for (i, p) in programs.iter().enumerate() {
        let (a, b) = (&images[2 * i], &images[2 * i + 1]);
        assert_ne!(a, b, "{} looks the same at t=1 and t=6", p.id);
        let first = a.get_pixel(0, 0);
        assert!(
            a.pixels().any(|q| q != first),
            "{} renders a flat image",
            p.id
        );
    }
}
