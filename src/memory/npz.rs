//! Reading MedMNIST-style `.npz` files: a zip (stored or deflated) of `.npy` arrays such as
//! `train_images` (N×H×W or N×H×W×3, uint8) and `train_labels` (N×1 integers). Just enough of
//! both formats, with clear errors for anything else.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// One array: its shape and raw little-endian data with its dtype descriptor.
#[derive(Clone, Debug)]
pub struct NpyArray {
    pub descr: String,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl NpyArray {
    /// Values as i64, for integer label arrays (u1, i1, u2, i2, u4, i4, u8, i8).
    pub(crate) fn to_i64(&self) -> std::result::Result<Vec<i64>, String> {
        let d = self.descr.trim_start_matches(['<', '|', '=']);
        let size = match d {
            "u1" | "i1" | "b1" => 1,
            "u2" | "i2" => 2,
            "u4" | "i4" => 4,
            "u8" | "i8" => 8,
            _ => {
                return Err(format!(
                    "labels have dtype {}, not an integer type",
                    self.descr
                ));
            }
        };
        if self.descr.starts_with('>') {
            return Err("big-endian arrays are not supported".into());
        }
        Ok(self
            .data
            .chunks_exact(size)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..size].copy_from_slice(c);
                let v = u64::from_le_bytes(b);
                if d.starts_with('i') && size < 8 && (v >> (size * 8 - 1)) & 1 == 1 {
                    (v | (!0u64 << (size * 8))) as i64
                } else {
                    v as i64
                }
            })
            .collect())
    }
}

/// Parses one `.npy` file (format versions 1–3).
pub fn parse_npy(bytes: &[u8]) -> std::result::Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not an .npy array (bad magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "non-text .npy header")?;
    let field = |name: &str| -> std::result::Result<&str, String> {
        let at = header
            .find(&format!("'{name}'"))
            .ok_or(format!("no `{name}` in the .npy header"))?;
        Ok(header[at + name.len() + 2..]
            .trim_start()
            .trim_start_matches(':')
            .trim_start())
    };
    let descr = field("descr")?
        .trim_start_matches('\'')
        .split('\'')
        .next()
        .unwrap_or("")
        .to_string();
    if field("fortran_order")?.starts_with("True") {
        return Err("Fortran-ordered arrays are not supported".into());
    }
    let shape_text = field("shape")?;
    let shape_text = shape_text
        .trim_start_matches('(')
        .split(')')
        .next()
        .unwrap_or("");
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|e| format!("bad shape `{s}`: {e}"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let item: usize = match descr.trim_start_matches(['<', '|', '=', '>']) {
        "u1" | "i1" | "b1" => 1,
        "u2" | "i2" | "f2" => 2,
        "u4" | "i4" | "f4" => 4,
        "u8" | "i8" | "f8" => 8,
        other => return Err(format!("unsupported dtype {other}")),
    };
    let want = shape
        .iter()
        .try_fold(item, |acc: usize, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            format!("shape {shape:?} of {item}-byte items overflows the address space")
        })?;
    let data = bytes
        .get(start + header_len..)
        .ok_or("truncated .npy data")?;
    if data.len() < want {
        return Err(format!(
            "truncated .npy data: {} of {want} bytes",
            data.len()
        ));
    }
    Ok(NpyArray {
        descr,
        shape,
        data: data[..want].to_vec(),
    })
}

fn le16(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}
fn le32(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// Largest decompressed `.npz` member, in bytes (2 GiB).
pub const MAX_MEMBER_BYTES: u64 = 2 << 30;

/// Reads every member of an `.npz` archive as (name without `.npy`, array).
pub fn read_npz(path: &Path) -> Result<Vec<(String, NpyArray)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: String| Error::BadFile {
        path: path.into(),
        message: m,
    };
    // The end-of-central-directory record: the last "PK\5\6" within the final 64 KiB.
    let tail_start = bytes.len().saturating_sub(65_557);
    let eocd = (tail_start..bytes.len().saturating_sub(21))
        .rev()
        .find(|&i| &bytes[i..i + 4] == b"PK\x05\x06")
        .ok_or_else(|| {
            bad("not a zip/npz file (no end of central directory; truncated?)".into())
        })?;
    let count = le16(&bytes, eocd + 10);
    let mut at = le32(&bytes, eocd + 16);
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        if at + 46 > bytes.len() || &bytes[at..at + 4] != b"PK\x01\x02" {
            return Err(bad("corrupt zip central directory".into()));
        }
        let method = le16(&bytes, at + 10);
        let comp_size = le32(&bytes, at + 20);
        let name_len = le16(&bytes, at + 28);
        let extra_len = le16(&bytes, at + 30);
        let comment_len = le16(&bytes, at + 32);
        let local = le32(&bytes, at + 42);
        let name = String::from_utf8_lossy(
            bytes
                .get(at + 46..at + 46 + name_len)
                .ok_or_else(|| bad("truncated zip".into()))?,
        )
        .to_string();
        if comp_size == 0xFFFF_FFFF || local == 0xFFFF_FFFF {
            return Err(bad(format!("{name}: zip64 members are not supported")));
        }
        at += 46 + name_len + extra_len + comment_len;
        if local + 30 > bytes.len() || &bytes[local..local + 4] != b"PK\x03\x04" {
            return Err(bad(format!("{name}: corrupt local header")));
        }
        let data_at = local + 30 + le16(&bytes, local + 26) + le16(&bytes, local + 28);
        let raw = bytes
            .get(data_at..data_at + comp_size)
            .ok_or_else(|| bad(format!("{name}: truncated member")))?;
        let member = match method {
            0 => raw.to_vec(),
            8 => {
                // Bounded: a deflate bomb stops at the cap instead of filling memory.
                let mut v = Vec::new();
                flate2::read::DeflateDecoder::new(raw)
                    .take(MAX_MEMBER_BYTES + 1)
                    .read_to_end(&mut v)
                    .map_err(|e| bad(format!("{name}: bad deflate data: {e}")))?;
                if v.len() as u64 > MAX_MEMBER_BYTES {
                    return Err(bad(format!(
                        "{name}: decompresses to more than {} MiB, the limit for one array",
                        MAX_MEMBER_BYTES >> 20
                    )));
                }
                v
            }
            m => {
                return Err(bad(format!(
                    "{name}: unsupported zip compression method {m}"
                )));
            }
        };
        let array = parse_npy(&member).map_err(|m| bad(format!("{name}: {m}")))?;
        out.push((name.trim_end_matches(".npy").to_string(), array));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_numpy_written_npz() {
        // Written by numpy 2.4 (`tools/make_npz_fixture.py`):
        //   np.savez_compressed("t.npz", train_images=np.arange(8, dtype=np.uint8).reshape(2, 2, 2),
        //                       train_labels=np.array([[3], [-1]], dtype=np.int64))
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny.npz");
        let arrays = read_npz(&path).unwrap();
        let get = |n: &str| {
            arrays
                .iter()
                .find(|(name, _)| name == n)
                .map(|(_, a)| a.clone())
                .unwrap()
        };
        let images = get("train_images");
        assert_eq!(images.shape, vec![2, 2, 2]);
        assert_eq!(images.data, (0..8).collect::<Vec<u8>>());
        assert_eq!(get("train_labels").to_i64().unwrap(), vec![3, -1]);
    }

    #[test]
    fn truncated_npz_is_a_clear_error() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny.npz");
        let bytes = std::fs::read(&path).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cut = dir.path().join("cut.npz");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = read_npz(&cut).unwrap_err().to_string();
        assert!(err.contains("cut.npz"), "{err}");
    }
}
