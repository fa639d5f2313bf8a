//! Benchmark of the Map panel at scale (issue: "smooth at 100k points, frame < 16 ms").
//!
//! Builds a memory of N clustered unit vectors with the bundled model's fingerprint and
//! dimension (the picture cost does not depend on what the vectors mean), fits the map, then
//! runs F frames of the panel in a 1280×800 egui context with the pointer sweeping across the
//! plot (so the hover pick and its tooltip run every frame), in each colour mode. A frame is
//! the CPU work egui does for it: the panel's UI code plus tessellation into triangles — what
//! runs on the UI thread. The GPU upload and rasterisation are not included (they depend on
//! the GPU; on this machine's lavapipe they are software too).
//!
//! Usage: `cargo run --release --example bench_map -- [POINTS] [FRAMES]` (100000, 200).

use std::path::PathBuf;
use std::time::Instant;

use procmem::app::knowledge::{Knowledge, KnowledgeState, Perception};
use procmem::app::map::{ColourBy, MapPanel};
use procmem::memory::Memory;
use procmem::memory::map::MemoryMap;
use procmem::rng::Rng;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let points: usize = args
        .get(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let frames: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(200);
    let state = KnowledgeState::default();
    let perception = Perception::load(&state.model)?;
    let fp = perception.source.fingerprint();
    let dim = perception.source.vit().map_or(0, |v| v.embedding_dim());
    // Ten classes around random centres, spread like real embeddings (cosine to centre ≈ 0.7).
    let mut rng = Rng::new(1);
    let centres: Vec<Vec<f32>> = (0..10)
        .map(|_| (0..dim).map(|_| rng.normal() as f32).collect())
        .collect();
    let mut memory = Memory::new(&fp, dim);
    for i in 0..points {
        let c = &centres[i % 10];
        let mut v: Vec<f32> = c.iter().map(|x| x + rng.normal() as f32).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        memory.add(
            &fp,
            &format!("class {}", i % 10),
            &format!("synthetic#{i}"),
            i as u64,
            Vec::new(),
            v,
        )?;
    }
    let start = Instant::now();
    let map = MemoryMap::fit(&memory)?;
    let fit_s = start.elapsed().as_secs_f64();
    println!(
        "memory: {points} entries × {dim} (bundled model's dimension); map fit (PCA on ≤ 20k + placing all): {fit_s:.2} s"
    );
    drop(map);

    let mut k = Knowledge::new(
        perception,
        memory,
        None,
        PathBuf::from("synthetic.pmem"),
        None,
        10,
    )?;
    let ctx = egui::Context::default();
    let size = egui::vec2(1280.0, 800.0);
    let input = |t: f64, pointer: Option<egui::Pos2>| egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, size)),
        time: Some(t),
        events: pointer.map(egui::Event::PointerMoved).into_iter().collect(),
        ..Default::default()
    };
    let mut panel = MapPanel::default();
    let mut t = 0.0;
    // Until the map is fitted (on the panel's worker).
    while panel.map.is_none() {
        let _ = ctx.run_ui(input(t, None), |ui| panel.ui(ui, &mut k, None, None));
        t += 0.016;
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for mode in [ColourBy::Label, ColourBy::Prediction] {
        panel.colour_by = mode;
        if mode == ColourBy::Prediction {
            let start = Instant::now();
            panel.start_predictions(&ctx, &k);
            while panel.predictions.is_none() {
                let _ = ctx.run_ui(input(t, None), |ui| panel.ui(ui, &mut k, None, None));
                t += 0.016;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            println!(
                "leave-one-out predictions of {points} entries (worker): {:.1} s",
                start.elapsed().as_secs_f64()
            );
        }
        let mut times = Vec::with_capacity(frames);
        for f in 0..frames + 10 {
            // Sweep the pointer over the plot area (right of the 300-point controls).
            let x = 320.0 + (f as f32 * 37.0) % 940.0;
            let y = 40.0 + (f as f32 * 23.0) % 740.0;
            let start = Instant::now();
            let out = ctx.run_ui(input(t, Some(egui::pos2(x, y))), |ui| {
                panel.ui(ui, &mut k, None, None)
            });
            let prims = ctx.tessellate(out.shapes, out.pixels_per_point);
            let ms = start.elapsed().as_secs_f64() * 1e3;
            std::hint::black_box(prims);
            t += 0.016;
            if f >= 10 {
                times.push(ms);
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "frame, colour by {mode:?}: median {:.2} ms, p95 {:.2} ms, max {:.2} ms over {frames} frames (budget 16.7 ms)",
            percentile(&times, 0.5),
            percentile(&times, 0.95),
            times[times.len() - 1]
        );
    }
    Ok(())
}
