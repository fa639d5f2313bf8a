//! The program synthesizer: random expression-tree programs, an unbounded family beside the
//! hand-written ones (shaders21k's 21k programs are no longer published).
//!
//! A tree maps a point p ∈ [-1,1]² and the time t to a scalar in about [-1,1]; three trees give
//! RGB, or one tree indexes a random cosine palette. Every node is continuous and bounded, so
//! the WGSL compiled from a tree and [`SynthProgram::eval_pixel`] on the CPU agree to within
//! float rounding (tested at 2/255 per channel).

use super::programs::{Program, ProgramOrigin};
use crate::rng::Rng;

/// One node of a synthesized program.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    X,
    Y,
    /// Distance from the centre, scaled to about [0,1].
    Radius,
    /// sin(n·atan2(y, x)): angular symmetry of order n, continuous across the branch cut.
    Angle {
        order: u32,
    },
    /// sin(speed·t + phase).
    Clock {
        speed: f32,
        phase: f32,
    },
    Const(f32),
    /// sin(freq·a + phase).
    Sin {
        a: Box<Expr>,
        freq: f32,
        phase: f32,
    },
    /// tanh(gain·a).
    Tanh {
        a: Box<Expr>,
        gain: f32,
    },
    Abs(Box<Expr>),
    Square(Box<Expr>),
    /// (a + b)/2.
    Avg(Box<Expr>, Box<Expr>),
    Mul(Box<Expr>, Box<Expr>),
    Max(Box<Expr>, Box<Expr>),
    Min(Box<Expr>, Box<Expr>),
    /// mix(a, b, 0.5 + 0.5·c).
    Mix(Box<Expr>, Box<Expr>, Box<Expr>),
    /// Evaluates `a` at p + amp·(sin(freq·p.y + speed·t), sin(freq·p.x − speed·t)).
    Warp {
        a: Box<Expr>,
        amp: f32,
        freq: f32,
        speed: f32,
    },
    /// Evaluates `a` at p rotated by angle + speed·t.
    Rotate {
        a: Box<Expr>,
        angle: f32,
        speed: f32,
    },
    /// Evaluates `a` at abs(p) (a mirror fold, continuous).
    Fold(Box<Expr>),
}

/// How the scalar trees become a colour.
#[derive(Clone, Debug, PartialEq)]
pub enum Colouring {
    /// rgb = 0.5 + 0.5·(r, g, b).
    Channels([Expr; 3]),
    /// a + b·cos(2π(c·v + d)) with random palette vectors.
    Palette {
        v: Expr,
        a: [f32; 3],
        b: [f32; 3],
        c: [f32; 3],
        d: [f32; 3],
    },
}

/// A synthesized program: a pure function of its seed.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthProgram {
    pub seed: u64,
    pub colouring: Colouring,
}

const MAX_DEPTH: u32 = 5;

fn round2(v: f32) -> f32 {
    // Constants are kept to 4 decimals so the WGSL literal and the CPU value are the same f32.
    (v * 10_000.0).round() / 10_000.0
}

impl SynthProgram {
    /// The program of `seed`. Trees whose images are nearly flat, or that do not change with
    /// time, are redrawn (deterministically), so every synthesized program is worth rendering.
    pub fn generate(seed: u64) -> Self {
        let mut attempt = 0u64;
        loop {
            let candidate = Self::draw(seed, attempt);
            if attempt >= 64 || candidate.is_lively() {
                return candidate;
            }
            attempt += 1;
        }
    }

    /// Spatial contrast at two times, and change between them, on a coarse CPU grid.
    fn is_lively(&self) -> bool {
        let grid = 12u32;
        let luma = |t: f32| -> Vec<f32> {
            (0..grid * grid)
                .map(|i| {
                    let c = self.eval_pixel(i % grid, i / grid, grid, t);
                    (0.299 * c[0] as f32 + 0.587 * c[1] as f32 + 0.114 * c[2] as f32) / 255.0
                })
                .collect()
        };
        let std = |v: &[f32]| {
            let m = v.iter().sum::<f32>() / v.len() as f32;
            (v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / v.len() as f32).sqrt()
        };
        let (a, b) = (luma(1.3), luma(6.7));
        let change = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
        std(&a) > 0.08 && std(&b) > 0.08 && change > 0.04
    }

    fn draw(seed: u64, attempt: u64) -> Self {
        let mut rng = Rng::new(crate::rng::derive(seed ^ 0x5eed_5f17_7a11_u64, attempt));
        let colouring = if rng.bernoulli(0.5) {
            Colouring::Channels([
                grow(&mut rng, MAX_DEPTH),
                grow(&mut rng, MAX_DEPTH),
                grow(&mut rng, MAX_DEPTH),
            ])
        } else {
            let mut v3 = |lo: f32, hi: f32| [0, 1, 2].map(|_| round2(rng.range_f32(lo, hi)));
            let a = v3(0.35, 0.65);
            let b = v3(0.25, 0.5);
            let c = v3(0.3, 1.5);
            let d = v3(0.0, 1.0);
            Colouring::Palette {
                v: grow(&mut rng, MAX_DEPTH),
                a,
                b,
                c,
                d,
            }
        };
        Self { seed, colouring }
    }

    pub fn id(&self) -> String {
        format!("synth-{}", self.seed)
    }

    pub(crate) fn node_count(&self) -> usize {
        match &self.colouring {
            Colouring::Channels(trees) => trees.iter().map(count).sum(),
            Colouring::Palette { v, .. } => count(v),
        }
    }

    /// The WGSL `shade` function of this program.
    pub fn to_wgsl(&self) -> String {
        let mut body = String::new();
        let mut counter = 0usize;
        body.push_str("    let p0 = uv * 2.0 - vec2<f32>(1.0);\n");
        let colour = match &self.colouring {
            Colouring::Channels(trees) => {
                let names: Vec<String> = trees
                    .iter()
                    .map(|e| emit(e, "p0", &mut body, &mut counter))
                    .collect();
                format!(
                    "vec3<f32>(0.5) + 0.5 * vec3<f32>({}, {}, {})",
                    names[0], names[1], names[2]
                )
            }
            Colouring::Palette { v, a, b, c, d } => {
                let n = emit(v, "p0", &mut body, &mut counter);
                format!(
                    "palette({n}, {}, {}, {}, {})",
                    vec3_lit(a),
                    vec3_lit(b),
                    vec3_lit(c),
                    vec3_lit(d)
                )
            }
        };
        format!(
            "// name: Synthesized #{seed}\n// family: synthesized\nfn shade(uv: vec2<f32>, t: f32) -> vec3<f32> {{\n{body}    return {colour};\n}}\n",
            seed = self.seed
        )
    }

    pub fn to_program(&self) -> Program {
        let mut p = Program::parse(
            &self.id(),
            &self.to_wgsl(),
            ProgramOrigin::Synthesized { seed: self.seed },
        )
        .expect("synthesized headers are well formed");
        p.name = format!("Synthesized #{} ({} nodes)", self.seed, self.node_count());
        p
    }

    /// The colour of pixel (x, y) of a `size`×`size` image at time t, as the GPU computes it
    /// (same uv convention as the prelude, same packing to 8 bits).
    pub fn eval_pixel(&self, x: u32, y: u32, size: u32, t: f32) -> [u8; 3] {
        let uv = [
            (x as f32 + 0.5) / size as f32,
            1.0 - (y as f32 + 0.5) / size as f32,
        ];
        let p = [uv[0] * 2.0 - 1.0, uv[1] * 2.0 - 1.0];
        let rgb = match &self.colouring {
            Colouring::Channels(trees) => [0, 1, 2].map(|i| 0.5 + 0.5 * eval(&trees[i], p, t)),
            Colouring::Palette { v, a, b, c, d } => {
                let v = eval(v, p, t);
                [0, 1, 2].map(|i| a[i] + b[i] * (std::f32::consts::TAU * (c[i] * v + d[i])).cos())
            }
        };
        rgb.map(|c| (c.clamp(0.0, 1.0) * 255.0 + 0.5) as u8)
    }
}

fn count(e: &Expr) -> usize {
    use Expr::*;
    1 + match e {
        X | Y | Radius | Angle { .. } | Clock { .. } | Const(_) => 0,
        Sin { a, .. }
        | Tanh { a, .. }
        | Abs(a)
        | Square(a)
        | Warp { a, .. }
        | Rotate { a, .. }
        | Fold(a) => count(a),
        Avg(a, b) | Mul(a, b) | Max(a, b) | Min(a, b) => count(a) + count(b),
        Mix(a, b, c) => count(a) + count(b) + count(c),
    }
}

// 6.28 is the sampled phase and angle range, not τ: the programs of every seed (and the
// datasets trained on them) depend on these exact draws.
#[allow(clippy::approx_constant)]
fn grow(rng: &mut Rng, depth: u32) -> Expr {
    use Expr::*;
    let leaf_probability = if depth == 0 {
        1.0
    } else if depth >= MAX_DEPTH - 1 {
        0.0
    } else {
        0.3
    };
    if rng.bernoulli(leaf_probability) {
        return match rng.below(6) {
            0 => X,
            1 => Y,
            2 => Radius,
            3 => Angle {
                order: 1 + rng.below(6) as u32,
            },
            4 => Clock {
                speed: round2(rng.range_f32(0.2, 2.0)),
                phase: round2(rng.range_f32(0.0, 6.28)),
            },
            _ => Const(round2(rng.range_f32(-1.0, 1.0))),
        };
    }
    let d = depth - 1;
    let child = |rng: &mut Rng| Box::new(grow(rng, d));
    match rng.below(13) {
        0..=2 => Sin {
            a: child(rng),
            freq: round2(rng.range_f32(1.0, 6.0)),
            phase: round2(rng.range_f32(0.0, 6.28)),
        },
        3 => Tanh {
            a: child(rng),
            gain: round2(rng.range_f32(1.0, 4.0)),
        },
        4 => Abs(child(rng)),
        5 => Square(child(rng)),
        6 => Avg(child(rng), child(rng)),
        7 => Mul(child(rng), child(rng)),
        8 => Max(child(rng), child(rng)),
        9 => Min(child(rng), child(rng)),
        10 => Mix(child(rng), child(rng), child(rng)),
        11 => Warp {
            a: child(rng),
            amp: round2(rng.range_f32(0.05, 0.5)),
            freq: round2(rng.range_f32(1.0, 5.0)),
            speed: round2(rng.range_f32(0.2, 1.5)),
        },
        _ => {
            if rng.bernoulli(0.5) {
                Rotate {
                    a: child(rng),
                    angle: round2(rng.range_f32(0.0, 6.28)),
                    speed: round2(rng.range_f32(-1.0, 1.0)),
                }
            } else {
                Fold(child(rng))
            }
        }
    }
}

fn lit(v: f32) -> String {
    let s = format!("{v:?}");
    if s.contains('.') || s.contains('e') {
        s
    } else {
        format!("{s}.0")
    }
}

fn vec3_lit(v: &[f32; 3]) -> String {
    format!("vec3<f32>({}, {}, {})", lit(v[0]), lit(v[1]), lit(v[2]))
}

/// Emits statements computing `e` at coordinates `p` into `out`; returns the variable name.
fn emit(e: &Expr, p: &str, out: &mut String, counter: &mut usize) -> String {
    use Expr::*;
    let value = match e {
        X => format!("{p}.x"),
        Y => format!("{p}.y"),
        Radius => format!("length({p}) * 0.7071"),
        Angle { order } => format!("sin({}.0 * atan2({p}.y, {p}.x))", order),
        Clock { speed, phase } => format!("sin({} * t + {})", lit(*speed), lit(*phase)),
        Const(c) => lit(*c),
        Sin { a, freq, phase } => {
            let a = emit(a, p, out, counter);
            format!("sin({} * {a} + {})", lit(*freq), lit(*phase))
        }
        Tanh { a, gain } => {
            let a = emit(a, p, out, counter);
            format!("tanh({} * {a})", lit(*gain))
        }
        Abs(a) => format!("abs({})", emit(a, p, out, counter)),
        Square(a) => {
            let a = emit(a, p, out, counter);
            format!("{a} * {a}")
        }
        Avg(a, b) => {
            let (a, b) = (emit(a, p, out, counter), emit(b, p, out, counter));
            format!("({a} + {b}) * 0.5")
        }
        Mul(a, b) => {
            let (a, b) = (emit(a, p, out, counter), emit(b, p, out, counter));
            format!("{a} * {b}")
        }
        Max(a, b) => {
            let (a, b) = (emit(a, p, out, counter), emit(b, p, out, counter));
            format!("max({a}, {b})")
        }
        Min(a, b) => {
            let (a, b) = (emit(a, p, out, counter), emit(b, p, out, counter));
            format!("min({a}, {b})")
        }
        Mix(a, b, c) => {
            let (a, b, c) = (
                emit(a, p, out, counter),
                emit(b, p, out, counter),
                emit(c, p, out, counter),
            );
            format!("mix({a}, {b}, 0.5 + 0.5 * {c})")
        }
        Warp {
            a,
            amp,
            freq,
            speed,
        } => {
            *counter += 1;
            let q = format!("q{counter}");
            out.push_str(&format!(
                "    let {q} = {p} + {amp} * vec2<f32>(sin({freq} * {p}.y + {speed} * t), sin({freq} * {p}.x - {speed} * t));\n",
                amp = lit(*amp),
                freq = lit(*freq),
                speed = lit(*speed)
            ));
            emit(a, &q, out, counter)
        }
        Rotate { a, angle, speed } => {
            *counter += 1;
            let q = format!("q{counter}");
            let ang = format!("r{counter}");
            out.push_str(&format!(
                "    let {ang} = {} + {} * t;\n",
                lit(*angle),
                lit(*speed)
            ));
            out.push_str(&format!(
                "    let {q} = vec2<f32>(cos({ang}) * {p}.x - sin({ang}) * {p}.y, sin({ang}) * {p}.x + cos({ang}) * {p}.y);\n"
            ));
            emit(a, &q, out, counter)
        }
        Fold(a) => {
            *counter += 1;
            let q = format!("q{counter}");
            out.push_str(&format!("    let {q} = abs({p});\n"));
            emit(a, &q, out, counter)
        }
    };
    *counter += 1;
    let name = format!("n{counter}");
    out.push_str(&format!("    let {name} = {value};\n"));
    name
}

/// CPU evaluation, operation for operation as in [`emit`].
// 0.7071 is the radius normalisation the emitted WGSL uses too (`emit`): CPU and GPU images
// agree only with the same literal.
#[allow(clippy::approx_constant)]
fn eval(e: &Expr, p: [f32; 2], t: f32) -> f32 {
    use Expr::*;
    match e {
        X => p[0],
        Y => p[1],
        Radius => (p[0] * p[0] + p[1] * p[1]).sqrt() * 0.7071,
        Angle { order } => (*order as f32 * p[1].atan2(p[0])).sin(),
        Clock { speed, phase } => (speed * t + phase).sin(),
        Const(c) => *c,
        Sin { a, freq, phase } => (freq * eval(a, p, t) + phase).sin(),
        Tanh { a, gain } => (gain * eval(a, p, t)).tanh(),
        Abs(a) => eval(a, p, t).abs(),
        Square(a) => {
            let v = eval(a, p, t);
            v * v
        }
        Avg(a, b) => (eval(a, p, t) + eval(b, p, t)) * 0.5,
        Mul(a, b) => eval(a, p, t) * eval(b, p, t),
        Max(a, b) => eval(a, p, t).max(eval(b, p, t)),
        Min(a, b) => eval(a, p, t).min(eval(b, p, t)),
        Mix(a, b, c) => {
            let (a, b, c) = (eval(a, p, t), eval(b, p, t), eval(c, p, t));
            let w = 0.5 + 0.5 * c;
            a * (1.0 - w) + b * w
        }
        Warp {
            a,
            amp,
            freq,
            speed,
        } => {
            let q = [
                p[0] + amp * (freq * p[1] + speed * t).sin(),
                p[1] + amp * (freq * p[0] - speed * t).sin(),
            ];
            eval(a, q, t)
        }
        Rotate { a, angle, speed } => {
            let r = angle + speed * t;
            let (s, c) = r.sin_cos();
            eval(a, [c * p[0] - s * p[1], s * p[0] + c * p[1]], t)
        }
        Fold(a) => eval(a, [p[0].abs(), p[1].abs()], t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthesis_is_deterministic_and_varied() {
        assert_eq!(SynthProgram::generate(5), SynthProgram::generate(5));
        let distinct: std::collections::HashSet<String> = (0..50)
            .map(|s| SynthProgram::generate(s).to_wgsl())
            .collect();
        assert_eq!(distinct.len(), 50);
    }

    #[test]
    fn synthesized_programs_have_contrast_and_move() {
        let lively = (0..40)
            .filter(|s| SynthProgram::generate(*s).is_lively())
            .count();
        assert!(lively >= 39, "only {lively}/40 lively programs");
    }

    #[test]
    fn synthesized_wgsl_validates() {
        for seed in 0..40 {
            let p = SynthProgram::generate(seed).to_program();
            crate::generate::programs::validate_wgsl(&p.id, &p.module_source())
                .unwrap_or_else(|e| panic!("{e}\n{}", p.source));
        }
    }

    #[test]
    fn synthesized_programs_stay_well_inside_the_size_limits() {
        use crate::generate::programs::{MAX_NESTING, MAX_PROGRAM_BYTES, bracket_depth};
        for seed in 0..300 {
            let src = SynthProgram::generate(seed).to_wgsl();
            assert!(
                bracket_depth(&src) <= MAX_NESTING / 2,
                "synthesized #{seed} nests {}",
                bracket_depth(&src)
            );
            assert!(
                src.len() <= MAX_PROGRAM_BYTES / 2,
                "synthesized #{seed} is {} bytes",
                src.len()
            );
        }
    }
}
