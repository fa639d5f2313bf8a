//! The library of procedural programs: hand-written WGSL files (embedded at build time and
//! picked up from `shaders/programs/` at run time) and synthesized expression-tree programs.
//!
//! A program file starts with a header the UI reads to build its controls:
//! ```text
//! // name: Domain-warped fbm
//! // family: warp
//! // param: scale = 3.0 [0.5, 10.0] spatial frequency of the base noise
//! fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> { ... }
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

include!(concat!(env!("OUT_DIR"), "/embedded_programs.rs"));

/// Source of the dead-leaves baseline generator.
pub const DEAD_LEAVES_SOURCE: &str = include_str!("../../shaders/generators/dead_leaves.wgsl");
/// Source of the spectral-noise baseline generator.
pub const SPECTRAL_NOISE_SOURCE: &str =
    include_str!("../../shaders/generators/spectral_noise.wgsl");

/// The WGSL prelude prepended to every program (see the file for the program contract).
pub const PRELUDE: &str = include_str!("../../shaders/prelude.wgsl");

/// Maximum number of parameters a program may declare (two vec4 in the job record).
pub const MAX_PARAMS: usize = 8;
/// Largest program file, in bytes: checked before it is read or compiled.
pub const MAX_PROGRAM_BYTES: usize = 64 * 1024;
/// Deepest bracket nesting a program may have. The shader compiler parses recursively, so a
/// file of 100,000 nested parentheses could exhaust its thread's stack and abort the process;
/// it is refused before it reaches the compiler. The hand-written programs nest at most ~10 deep.
pub const MAX_NESTING: usize = 64;

/// The deepest nesting of `()`, `[]` and `{}` outside `//` comments.
pub(crate) fn bracket_depth(source: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        for c in code.chars() {
            match c {
                '(' | '[' | '{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    deepest
}

/// A tunable parameter declared in a program's header.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub default: f32,
    pub min: f32,
    pub max: f32,
    pub description: String,
}

/// Where a program came from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum ProgramOrigin {
    /// Embedded in the binary from `shaders/programs/<file>` at build time.
    Embedded { file: String },
    /// Loaded at run time from a file on disk.
    File { path: PathBuf },
    /// Synthesized from a random expression tree with this seed.
    Synthesized { seed: u64 },
    /// A built-in generator of a baseline process.
    Generator,
}

/// A compilable procedural program.
#[derive(Clone, Debug)]
pub struct Program {
    /// Stable identifier: the file stem (`07_voronoi_cells`), `synth-<seed>`, or the generator name.
    pub id: String,
    /// Human-readable name from the header.
    pub name: String,
    pub family: String,
    pub params: Vec<ParamSpec>,
    /// The program's own WGSL (without the prelude).
    pub source: String,
    /// FNV-1a hash of `source`, recorded in manifests so a changed program is detected.
    pub hash: u64,
    pub origin: ProgramOrigin,
}

impl Program {
    /// Parses a program file's header. The body is validated separately.
    pub fn parse(id: &str, source: &str, origin: ProgramOrigin) -> Result<Self> {
        let refuse = |message: String| {
            Err(Error::ProgramHeader {
                program: id.to_string(),
                message,
            })
        };
        if source.len() > MAX_PROGRAM_BYTES {
            return refuse(format!(
                "{} bytes, over the limit of {} KiB for a program",
                source.len(),
                MAX_PROGRAM_BYTES / 1024
            ));
        }
        let depth = bracket_depth(source);
        if depth > MAX_NESTING {
            return refuse(format!(
                "brackets nest {depth} deep, over the limit of {MAX_NESTING} (the compiler would risk its stack)"
            ));
        }
        let mut name = None;
        let mut family = String::from("misc");
        let mut params = Vec::new();
        for (line_no, line) in source.lines().enumerate() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("//") else {
                if line.is_empty() {
                    continue;
                }
                break;
            };
            let rest = rest.trim();
            if let Some(v) = rest.strip_prefix("name:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = rest.strip_prefix("family:") {
                family = v.trim().to_string();
            } else if let Some(v) = rest.strip_prefix("param:") {
                let spec = parse_param(v).ok_or_else(|| Error::ProgramHeader {
                    program: id.to_string(),
                    message: format!("line {}: expected `// param: NAME = DEFAULT [MIN, MAX] description`, got `{line}`", line_no + 1),
                })?;
                params.push(spec);
            }
        }
        if params.len() > MAX_PARAMS {
            return Err(Error::ProgramHeader {
                program: id.to_string(),
                message: format!("{} params declared, at most {MAX_PARAMS}", params.len()),
            });
        }
        Ok(Self {
            id: id.to_string(),
            name: name.unwrap_or_else(|| id.to_string()),
            family,
            params,
            source: source.to_string(),
            hash: crate::hash::fnv1a(source.as_bytes()),
            origin,
        })
    }

    /// Program first, prelude after, so compiler line numbers are the program file's own.
    pub fn module_source(&self) -> String {
        format!("{}\n{}", self.source, PRELUDE)
    }

    /// The parameter defaults, padded to the job record's 8 slots.
    pub fn default_params(&self) -> [f32; MAX_PARAMS] {
        let mut p = [0.0; MAX_PARAMS];
        for (slot, spec) in p.iter_mut().zip(&self.params) {
            *slot = spec.default;
        }
        p
    }

    /// Clamps user-provided values into the declared ranges; missing values take defaults.
    pub(crate) fn resolve_params(&self, overrides: Option<&Vec<f32>>) -> [f32; MAX_PARAMS] {
        let mut p = self.default_params();
        if let Some(values) = overrides {
            for ((slot, spec), v) in p.iter_mut().zip(&self.params).zip(values) {
                *slot = v.clamp(spec.min.min(spec.max), spec.max.max(spec.min));
            }
        }
        p
    }
}

fn parse_param(text: &str) -> Option<ParamSpec> {
    let (name, rest) = text.split_once('=')?;
    let (default, rest) = rest.split_once('[')?;
    let (range, description) = rest.split_once(']')?;
    let (min, max) = range.split_once(',')?;
    let spec = ParamSpec {
        name: name.trim().to_string(),
        default: default.trim().parse().ok()?,
        min: min.trim().parse().ok()?,
        max: max.trim().parse().ok()?,
        description: description.trim().to_string(),
    };
    (!spec.name.is_empty() && spec.min <= spec.default && spec.default <= spec.max).then_some(spec)
}

/// A program file that could not be used, with the reason (shown to the user, never fatal).
#[derive(Clone, Debug)]
pub struct RejectedProgram {
    pub id: String,
    pub message: String,
}

/// All programs available to the Shaders processes.
#[derive(Clone, Debug, Default)]
pub struct ProgramLibrary {
    /// Hand-written programs, sorted by id.
    pub programs: Vec<Program>,
    /// Files that failed to parse or validate, with the compiler's message.
    pub rejected: Vec<RejectedProgram>,
    /// The folder scanned at run time, if any.
    pub user_dir: Option<PathBuf>,
}

impl ProgramLibrary {
    /// The embedded programs plus any `.wgsl` files in `user_dir` (which override embedded
    /// programs with the same file name). Invalid files are listed in `rejected` and skipped.
    pub fn load(user_dir: Option<&Path>) -> Self {
        let mut lib = ProgramLibrary {
            user_dir: user_dir.map(Path::to_path_buf),
            ..Default::default()
        };
        let mut candidates: Vec<(String, String, ProgramOrigin)> = EMBEDDED_PROGRAMS
            .iter()
            .map(|(file, src)| {
                (
                    file_stem(file),
                    src.to_string(),
                    ProgramOrigin::Embedded {
                        file: file.to_string(),
                    },
                )
            })
            .collect();
        if let Some(dir) = user_dir {
            match std::fs::read_dir(dir) {
                Ok(entries) => {
                    let mut paths: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
                        .collect();
                    paths.sort();
                    for path in paths {
                        let id = file_stem(&path.to_string_lossy());
                        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                        if size > MAX_PROGRAM_BYTES as u64 {
                            lib.rejected.push(RejectedProgram {
                                id,
                                message: format!(
                                    "{}: {size} bytes, over the limit of {} KiB for a program",
                                    path.display(),
                                    MAX_PROGRAM_BYTES / 1024
                                ),
                            });
                            continue;
                        }
                        match std::fs::read_to_string(&path) {
                            Ok(src) => {
                                candidates.retain(|(cid, _, _)| *cid != id);
                                candidates.push((id, src, ProgramOrigin::File { path }));
                            }
                            Err(e) => lib.rejected.push(RejectedProgram {
                                id,
                                message: format!("{}: {e}", path.display()),
                            }),
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => lib.rejected.push(RejectedProgram {
                    id: dir.display().to_string(),
                    message: e.to_string(),
                }),
            }
        }
        for (id, src, origin) in candidates {
            match Program::parse(&id, &src, origin).and_then(|p| {
                validate_wgsl(&p.id, &p.module_source())?;
                Ok(p)
            }) {
                Ok(p) => lib.programs.push(p),
                Err(e) => lib.rejected.push(RejectedProgram {
                    id,
                    message: e.to_string(),
                }),
            }
        }
        lib.programs.sort_by(|a, b| a.id.cmp(&b.id));
        lib
    }

    /// The default run-time folder: `$PROCMEM_SHADERS`, else `./shaders/programs` if present.
    pub fn default_user_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("PROCMEM_SHADERS") {
            return Some(PathBuf::from(dir));
        }
        let local = PathBuf::from("shaders/programs");
        local.is_dir().then_some(local)
    }

    pub fn get(&self, id: &str) -> Option<&Program> {
        self.programs.iter().find(|p| p.id == id)
    }

    /// The enabled programs of the library (all but `disabled`); the generator adds the
    /// synthesized ones to make a Shaders process's sampling pool.
    pub(crate) fn enabled(&self, disabled: &[String]) -> Vec<Program> {
        self.programs
            .iter()
            .filter(|p| !disabled.contains(&p.id))
            .cloned()
            .collect()
    }
}

/// Parses and validates a WGSL module with naga, turning errors into readable messages.
pub fn validate_wgsl(name: &str, source: &str) -> Result<()> {
    use wgpu::naga;
    let module = naga::front::wgsl::parse_str(source).map_err(|e| Error::ShaderCompile {
        program: name.to_string(),
        message: e.emit_to_string_with_path(source, name),
    })?;
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .map_err(|e| Error::ShaderCompile {
        program: name.to_string(),
        message: e.emit_to_string_with_path(source, name),
    })?;
    Ok(())
}

fn file_stem(name: &str) -> String {
    Path::new(name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_and_deeply_nested_programs_are_refused_before_the_compiler() {
        let deep = format!(
            "fn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {{ return vec3<f32>({}uv.x{}); }}",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        let err = Program::parse("deep", &deep, ProgramOrigin::Synthesized { seed: 0 })
            .unwrap_err()
            .to_string();
        assert!(err.contains("deep") && err.contains("nest"), "{err}");
        let big = format!("// name: big\n{}", "// padding\n".repeat(10_000));
        let err = Program::parse("big", &big, ProgramOrigin::Synthesized { seed: 0 })
            .unwrap_err()
            .to_string();
        assert!(err.contains("KiB"), "{err}");
        // Every shipped program stays well inside the limits (synthesized ones: synth.rs's tests).
        for (file, src) in EMBEDDED_PROGRAMS {
            assert!(
                bracket_depth(src) <= MAX_NESTING / 2 && src.len() <= MAX_PROGRAM_BYTES / 2,
                "{file}"
            );
        }
    }

    #[test]
    fn header_is_parsed() {
        let src = "// name: Test\n// family: noise\n// param: scale = 3.0 [0.5, 10.0] spatial frequency\n// param: n = 2 [1, 8] octaves\nfn shade(uv: vec2<f32>, t: f32) -> vec3<f32> { return vec3<f32>(uv, t); }\n";
        let p = Program::parse("x", src, ProgramOrigin::Generator).unwrap();
        assert_eq!(p.name, "Test");
        assert_eq!(p.family, "noise");
        assert_eq!(p.params.len(), 2);
        assert_eq!(p.params[0].name, "scale");
        assert_eq!(p.params[0].default, 3.0);
        assert_eq!(p.params[1].max, 8.0);
        assert_eq!(p.params[0].description, "spatial frequency");
        assert_eq!(p.resolve_params(Some(&vec![100.0]))[0], 10.0);
    }

    #[test]
    fn bad_param_line_is_an_error_naming_the_line() {
        let src = "// name: T\n// param: scale = 3.0 (0.5, 10)\nfn shade(uv: vec2<f32>, t: f32) -> vec3<f32> { return vec3<f32>(0.0); }";
        let err = Program::parse("bad", src, ProgramOrigin::Generator)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn embedded_library_is_large_and_valid() {
        let lib = ProgramLibrary::load(None);
        assert!(lib.rejected.is_empty(), "{:?}", lib.rejected);
        assert!(
            lib.programs.len() >= 30,
            "only {} programs",
            lib.programs.len()
        );
        let families: std::collections::BTreeSet<_> =
            lib.programs.iter().map(|p| p.family.as_str()).collect();
        for f in [
            "noise", "warp", "cellular", "waves", "polar", "fractal", "ifs", "sdf", "raymarch",
            "palette",
        ] {
            assert!(families.contains(f), "no program of family {f}");
        }
    }

    #[test]
    fn a_broken_user_program_is_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("zz_broken.wgsl"),
            "// name: Broken\nfn shade(uv: vec2<f32>, t: f32) -> vec3<f32> { return undefined_thing; }\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("zz_ok.wgsl"),
            "// name: Fine\n// family: palette\nfn shade(uv: vec2<f32>, t: f32) -> vec3<f32> { return vec3<f32>(uv, 0.5); }\n",
        )
        .unwrap();
        let lib = ProgramLibrary::load(Some(dir.path()));
        assert!(lib.get("zz_ok").is_some());
        assert!(lib.get("zz_broken").is_none());
        let rejected = lib
            .rejected
            .iter()
            .find(|r| r.id == "zz_broken")
            .expect("broken program listed");
        assert!(
            rejected.message.contains("undefined_thing"),
            "{}",
            rejected.message
        );
        assert!(lib.programs.len() >= 31);
    }
}
