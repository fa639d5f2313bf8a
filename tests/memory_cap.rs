//! The memory bound, measured: hostile inputs whose headers claim huge sizes are refused with a
//! clear error while the process runs under a capped address space (`ulimit -v`), so any
//! allocation sized from such a header would abort the process instead of passing quietly.
//! The cap is 2 GiB: a valid run fits in it with room to spare (checked first, so the cap is
//! not what fails), and the largest allocation a hostile file may cause is bounded below it by
//! the limits in docs/reliability.md (64 Mpixel images, IDX sizes checked against the file).

use std::path::Path;
use std::process::Command;

/// The address-space cap of every run here, in KiB.
const CAP_KIB: u64 = 2 * 1024 * 1024;

/// procmem under the cap: (exit code, or `None` when a signal ended it; stderr).
fn capped(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {CAP_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_procmem"))
        .args(args)
        .env("PROCMEM_DATA", dir)
        .env("XDG_DATA_HOME", dir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run procmem under sh");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A PNG whose header claims `width × height` pixels, with one tiny (valid) IDAT of 1×1.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = Vec::new();
    image::RgbImage::from_pixel(1, 1, image::Rgb([9, 9, 9]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    // IHDR's data starts at byte 16 (8 signature, 4 length, 4 type); its CRC follows 13 bytes.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&png[12..29]);
    png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    png
}

#[test]
fn hostile_sizes_are_refused_within_a_two_gib_address_space() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p);
    // A valid run fits under the cap: the cap is not what fails below.
    std::fs::create_dir_all(d("ok/grey")).unwrap();
    for i in 0..4u8 {
        image::RgbImage::from_pixel(16, 16, image::Rgb([40 * i; 3]))
            .save(d("ok/grey").join(format!("{i}.png")))
            .unwrap();
    }
    let out = d("ok.pmem");
    let (code, err) = capped(
        dir.path(),
        &[
            "memory",
            "build",
            "--features",
            "pixels",
            "--folder",
            d("ok").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "a valid build under the cap: {err}");

    // An image header claiming 100,000 × 100,000 pixels (30 GB of RGB): refused by name.
    std::fs::create_dir_all(d("huge/grey")).unwrap();
    std::fs::write(d("huge/grey/huge.png"), png_claiming(100_000, 100_000)).unwrap();
    let (code, err) = capped(
        dir.path(),
        &[
            "dense",
            "pca",
            d("huge/grey/huge.png").to_str().unwrap(),
            "--features",
            "pixels",
            "--out",
            d("pca").to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1), "a clean error, not an abort: {err}");
    assert!(err.contains("huge.png"), "{err}");
    // In an import it is skipped with its reason, and --strict makes the skip a failure.
    let strict = d("strict.pmem");
    let (code, err) = capped(
        dir.path(),
        &[
            "memory",
            "build",
            "--features",
            "pixels",
            "--folder",
            d("huge").to_str().unwrap(),
            "--out",
            strict.to_str().unwrap(),
            "--strict",
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("huge.png") && !strict.exists(), "{err}");

    // IDX headers claiming 4 × 10⁹ images of 60,000 × 60,000 pixels in a 32-byte file.
    let mut images = vec![0, 0, 8, 3];
    for v in [4_000_000_000u32, 60_000, 60_000] {
        images.extend_from_slice(&v.to_be_bytes());
    }
    images.extend([0u8; 16]);
    std::fs::write(d("huge-images-idx3-ubyte"), &images).unwrap();
    let mut labels = vec![0, 0, 8, 1];
    labels.extend_from_slice(&4_000_000_000u32.to_be_bytes());
    labels.extend([0u8; 8]);
    std::fs::write(d("huge-labels-idx1-ubyte"), &labels).unwrap();
    let idx_out = d("idx.pmem");
    let (code, err) = capped(
        dir.path(),
        &[
            "memory",
            "build",
            "--features",
            "pixels",
            "--idx-images",
            d("huge-images-idx3-ubyte").to_str().unwrap(),
            "--idx-labels",
            d("huge-labels-idx1-ubyte").to_str().unwrap(),
            "--out",
            idx_out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("huge-images-idx3-ubyte"), "{err}");

    // A memory file whose header's entry count is rewritten to 999…9 with a valid checksum, so
    // the reader meets the claimed count itself: refused by name (counts are checked against
    // the file's length before any allocation).
    let mut pmem = std::fs::read(&out).unwrap();
    let text = String::from_utf8_lossy(&pmem).into_owned();
    let at = text
        .find("\"count\":")
        .expect("the header names its entry count")
        + "\"count\":".len();
    let digits = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let huge = b"99999999999999"; // 10¹⁴ entries
    pmem.splice(at..at + digits, huge.iter().copied());
    // The header's length field (u64 after magic and version) grows with the count's digits.
    let header_len =
        u64::from_le_bytes(pmem[8..16].try_into().unwrap()) + (huge.len() - digits) as u64;
    pmem[8..16].copy_from_slice(&header_len.to_le_bytes());
    let body = pmem.len() - 8;
    let sum = procmem::hash::fnv1a(&pmem[..body]);
    pmem[body..].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(d("bad.pmem"), &pmem).unwrap();
    let (code, err) = capped(
        dir.path(),
        &["memory", "info", d("bad.pmem").to_str().unwrap()],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("bad.pmem") && !err.contains("checksum"),
        "{err}"
    );
}
