//! Embeds the hand-written procedural programs of `shaders/programs/` into the binary, so the
//! app runs from anywhere; files in a `shaders/programs/` folder on disk are loaded at run time
//! as well (and override embedded ones of the same file name).
use std::{env, fs, path::Path};

fn main() {
    let dir = Path::new("shaders/programs");
    println!("cargo:rerun-if-changed=shaders");
    let mut files: Vec<_> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut code = String::from(
        "/// (file name, source) of every program in shaders/programs at build time.\npub const EMBEDDED_PROGRAMS: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        let abs = fs::canonicalize(f).expect("program path");
        let name = f.file_name().unwrap().to_string_lossy();
        code.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            abs.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("embedded_programs.rs");
    fs::write(out, code).expect("write embedded_programs.rs");
}
