//! The memory map: every entry's embedding projected onto the memory's first two principal
//! axes, the TensorBoard projector's and FiftyOne Brain's "whole dataset at a glance", with the
//! lasso that selects entries on it. Shared by the app's Map panel and `procmem memory map`.
//!
//! The axes are fitted once (exact PCA, [`crate::linalg::Projection`]) on at most
//! [`FIT_ROWS`] evenly spaced entries, then every entry and any later query is placed with the
//! same axes, so the map does not move under edits: a deleted entry keeps its place (the app
//! greys it) and an added one or a query lands where its embedding says.

use std::path::Path;

use crate::error::{Error, Result};
use crate::linalg::Projection;

use super::store::Memory;
use super::{ExactIndex, VoteRule};
use std::collections::HashMap;

/// The most entries the axes are fitted on (evenly spaced; the covariance of 20k × 384 is
/// 0.2 s here and the axes of a sample this size match the full memory's to the eye).
pub const FIT_ROWS: usize = 20_000;

/// A 2-D map of a memory: `ids[i]` sits at `xy[i]`; ids ascending, as in the memory.
#[derive(Clone, Debug)]
pub struct MemoryMap {
    pub ids: Vec<u64>,
    /// Entry labels at fitting time, by position (class names in `labels`).
    pub classes: Vec<u32>,
    pub labels: Vec<String>,
    /// Coordinates on (PC1, PC2), unitless (cosine-embedding units along each axis).
    pub xy: Vec<[f32; 2]>,
    pub projection: Projection,
}

impl MemoryMap {
    /// Fits the axes to `memory` and places every entry.
    ///
    /// # Errors
    /// [`Error::Memory`] for a memory with fewer than two entries or embeddings of fewer than two
    /// dimensions (no plane to fit).
    pub fn fit(memory: &Memory) -> Result<Self> {
        let labels = memory.labels();
        let class = |l: &str| {
            labels
                .binary_search_by(|x| x.as_str().cmp(l))
                .map_or(0, |i| i as u32)
        };
        let rows = memory
            .entries()
            .iter()
            .map(|e| (e.id, class(&e.label), e.embedding.as_slice()));
        Self::fit_rows(memory.dim(), labels.clone(), rows)
    }

    /// Like [`fit`](Self::fit), from (id, class into `labels`, embedding) rows in any order
    /// (e.g. an [`ExactIndex`](super::ExactIndex)'s).
    pub(crate) fn fit_rows<'a>(
        dim: usize,
        labels: Vec<String>,
        rows: impl Iterator<Item = (u64, u32, &'a [f32])>,
    ) -> Result<Self> {
        let mut rows: Vec<(u64, u32, &[f32])> = rows.collect();
        rows.sort_by_key(|r| r.0);
        let n = rows.len();
        if n < 2 || dim < 2 {
            return Err(Error::Memory(format!(
                "a map needs at least 2 entries of at least 2 dimensions (this memory has {n} of {dim})"
            )));
        }
        let step = n.div_ceil(FIT_ROWS);
        let sample: Vec<f32> = rows
            .iter()
            .step_by(step)
            .flat_map(|r| r.2.iter().copied())
            .collect();
        let projection = Projection::fit_leading(&sample, dim, 2)?;
        let mut map = Self {
            ids: Vec::with_capacity(n),
            classes: Vec::with_capacity(n),
            labels,
            xy: Vec::with_capacity(n),
            projection,
        };
        for (id, class, embedding) in rows {
            map.ids.push(id);
            map.classes.push(class);
            map.xy.push(map.place(embedding));
        }
        Ok(map)
    }

    /// Places entries the map lacks (added since it was made, or restored after a re-fit),
    /// keeping the axes and the id order; ids already on the map are left where they are.
    pub fn extend<'a>(&mut self, rows: impl Iterator<Item = (u64, u32, &'a [f32])>) {
        let new: Vec<(u64, u32, [f32; 2])> = rows
            .filter(|r| self.position(r.0).is_none())
            .map(|(id, class, e)| (id, class, self.place(e)))
            .collect();
        if new.is_empty() {
            return;
        }
        if new
            .iter()
            .all(|r| self.ids.last().is_none_or(|&last| r.0 > last))
            && new.windows(2).all(|w| w[0].0 < w[1].0)
        {
            for (id, class, xy) in new {
                self.ids.push(id);
                self.classes.push(class);
                self.xy.push(xy);
            }
            return;
        }
        let mut all: Vec<(u64, u32, [f32; 2])> = self
            .ids
            .iter()
            .zip(&self.classes)
            .zip(&self.xy)
            .map(|((&id, &c), &xy)| (id, c, xy))
            .chain(new)
            .collect();
        all.sort_by_key(|r| r.0);
        all.dedup_by_key(|r| r.0);
        self.ids = all.iter().map(|r| r.0).collect();
        self.classes = all.iter().map(|r| r.1).collect();
        self.xy = all.iter().map(|r| r.2).collect();
    }

    /// Where an embedding (of the memory's model and dimension) lands on the map.
    pub fn place(&self, embedding: &[f32]) -> [f32; 2] {
        let p = &self.projection;
        let along = |c: &[f32]| {
            c.iter()
                .zip(embedding)
                .zip(&p.mean)
                .map(|((a, x), m)| a * (x - m))
                .sum::<f32>()
        };
        [along(&p.components[0]), along(&p.components[1])]
    }

    /// Position of an entry on the map (ids are ascending).
    pub fn position(&self, id: u64) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    /// Ids of the entries inside `polygon` (map coordinates, closed implicitly; even-odd rule),
    /// ascending. Fewer than three vertices select nothing.
    pub fn inside(&self, polygon: &[[f32; 2]]) -> Vec<u64> {
        if polygon.len() < 3 {
            return Vec::new();
        }
        let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
        for p in polygon {
            for a in 0..2 {
                lo[a] = lo[a].min(p[a]);
                hi[a] = hi[a].max(p[a]);
            }
        }
        self.ids
            .iter()
            .zip(&self.xy)
            .filter(|(_, p)| {
                p[0] >= lo[0]
                    && p[0] <= hi[0]
                    && p[1] >= lo[1]
                    && p[1] <= hi[1]
                    && in_polygon(**p, polygon)
            })
            .map(|(&id, _)| id)
            .collect()
    }

    /// Writes `id,label,source,x,y` rows (CSV, RFC 4180 quoting) for `ids` (all when `None`),
    /// or the same records as a JSON array when `path` ends in `.json`.
    ///
    /// # Errors
    /// [`Error::Io`] naming `path`.
    pub fn export(&self, memory: &Memory, ids: Option<&[u64]>, path: &Path) -> Result<usize> {
        let rows: Vec<ExportRow> = match ids {
            Some(ids) => ids.iter().filter_map(|&id| self.row(memory, id)).collect(),
            None => self
                .ids
                .iter()
                .filter_map(|&id| self.row(memory, id))
                .collect(),
        };
        let bytes = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            serde_json::to_vec_pretty(&rows)?
        } else {
            let mut w = csv::Writer::from_writer(Vec::new());
            for r in &rows {
                w.serialize(r).map_err(|e| Error::BadFile {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
            }
            w.into_inner().map_err(|e| Error::BadFile {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
        };
        crate::fsio::write_atomic(path, &bytes)?;
        Ok(rows.len())
    }

    fn row(&self, memory: &Memory, id: u64) -> Option<ExportRow> {
        let i = self.position(id)?;
        let e = memory.get(id);
        Some(ExportRow {
            id,
            label: e.map_or_else(
                || self.labels[self.classes[i] as usize].clone(),
                |e| e.label.clone(),
            ),
            source: e.map(|e| e.source.clone()).unwrap_or_default(),
            deleted: e.is_none(),
            x: self.xy[i][0],
            y: self.xy[i][1],
        })
    }
}

/// Leave-one-out kNN predictions of every entry of `index` (searched in blocks; `progress` gets
/// the fraction done and returns false to cancel).
///
/// # Errors
/// "cancelled" when `progress` returns false.
pub(crate) fn loo_predictions(
    index: &ExactIndex,
    k: usize,
    rule: VoteRule,
    classes: usize,
    progress: impl Fn(f32) -> bool,
) -> Result<HashMap<u64, Option<u32>>, String> {
    const BLOCK: usize = 1024;
    let rows: Vec<(u64, &[f32])> = index.rows().map(|(id, _, e)| (id, e)).collect();
    let mut out = HashMap::with_capacity(rows.len());
    for (b, block) in rows.chunks(BLOCK).enumerate() {
        if !progress(b as f32 * BLOCK as f32 / rows.len().max(1) as f32) {
            return Err("cancelled".into());
        }
        let flat: Vec<f32> = block.iter().flat_map(|r| r.1.iter().copied()).collect();
        for ((id, _), mut neighbours) in block.iter().zip(index.search(&flat, k + 1)) {
            neighbours.retain(|n| n.id != *id);
            out.insert(
                *id,
                super::vote::vote(&neighbours, k, classes, rule).prediction,
            );
        }
    }
    progress(1.0);
    Ok(out)
}

impl MemoryMap {
    /// A `size`×`size` picture of the map: each entry a 3×3 dot in its class colour on a dark
    /// background, the axes' range fitted with a 4 % margin (PC2 up).
    pub fn render(&self, size: u32) -> image::RgbImage {
        let mut img = image::RgbImage::from_pixel(size, size, image::Rgb([16, 16, 16]));
        let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
        for p in &self.xy {
            for a in 0..2 {
                lo[a] = lo[a].min(p[a]);
                hi[a] = hi[a].max(p[a]);
            }
        }
        // One scale for both axes, so distances look as they are.
        let span = (hi[0] - lo[0]).max(hi[1] - lo[1]).max(f32::EPSILON) * 1.08;
        let centre = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
        let s = size as f32;
        for (p, &class) in self.xy.iter().zip(&self.classes) {
            let x = ((p[0] - centre[0]) / span + 0.5) * s;
            let y = (0.5 - (p[1] - centre[1]) / span) * s;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (px, py) = (x as i64 + dx, y as i64 + dy);
                    if px >= 0 && py >= 0 && px < size as i64 && py < size as i64 {
                        img.put_pixel(
                            px as u32,
                            py as u32,
                            image::Rgb(crate::palette::class_rgb(class)),
                        );
                    }
                }
            }
        }
        img
    }
}

#[derive(serde::Serialize)]
struct ExportRow {
    id: u64,
    label: String,
    source: String,
    /// Deleted from the memory since the map was made (its label is the one it had then).
    deleted: bool,
    x: f32,
    y: f32,
}

/// Whether `p` is inside `polygon` by the even-odd rule (a ray to +x crosses an odd number of
/// edges); points exactly on an edge may fall either way.
pub(crate) fn in_polygon(p: [f32; 2], polygon: &[[f32; 2]]) -> bool {
    let mut inside = false;
    let mut j = polygon.len() - 1;
    for i in 0..polygon.len() {
        let (a, b) = (polygon[i], polygon[j]);
        if (a[1] > p[1]) != (b[1] > p[1])
            && p[0] < (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0]
        {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Two well-separated clusters along one direction and small noise elsewhere.
    fn two_clusters(n: usize, dim: usize) -> Memory {
        let mut m = Memory::new("fp", dim);
        let mut rng = Rng::new(7);
        for i in 0..n {
            let side = if i % 2 == 0 { 1.0 } else { -1.0 };
            let mut v: Vec<f32> = (0..dim).map(|_| 0.05 * rng.normal() as f32).collect();
            v[3] += side;
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            m.add(
                "fp",
                if side > 0.0 { "a" } else { "b" },
                &format!("s{i}"),
                i as u64,
                Vec::new(),
                v,
            )
            .unwrap();
        }
        m
    }

    #[test]
    fn first_axis_separates_the_clusters_and_places_are_stable() {
        let m = two_clusters(200, 16);
        let map = MemoryMap::fit(&m).unwrap();
        assert_eq!(map.ids.len(), 200);
        // PC1 is (±) the cluster direction: its sign splits the labels exactly.
        let s0 = map.xy[0][0] > 0.0;
        let split = map
            .xy
            .iter()
            .zip(&map.classes)
            .all(|(p, &c)| ((p[0] > 0.0) == s0) == (c == map.classes[0]));
        assert!(split, "PC1 does not separate the two clusters");
        assert!(map.projection.explained[0] > 0.8);
        // Placing an entry's embedding again gives its position, bit for bit.
        assert_eq!(map.place(&m.entries()[17].embedding), map.xy[17]);
    }

    #[test]
    fn lasso_selects_exactly_the_points_inside() {
        let m = two_clusters(100, 8);
        let map = MemoryMap::fit(&m).unwrap();
        let side = map.xy[0][0].signum();
        let (x0, x1) = if side > 0.0 {
            (0.0, 10.0)
        } else {
            (-10.0, 0.0)
        };
        // A box around the half plane of entry 0's cluster.
        let poly = [[x0, -10.0], [x1, -10.0], [x1, 10.0], [x0, 10.0]];
        let got = map.inside(&poly);
        let want: Vec<u64> = map
            .ids
            .iter()
            .zip(&map.xy)
            .filter(|(_, p)| p[0].signum() == side)
            .map(|(&id, _)| id)
            .collect();
        assert_eq!(got, want);
        assert_eq!(got.len(), 50);
        assert!(map.inside(&poly[..2]).is_empty());
        // Concave polygon: the notch of a "U" is outside.
        let u = [
            [0.0, 0.0],
            [3.0, 0.0],
            [3.0, 3.0],
            [2.0, 3.0],
            [2.0, 1.0],
            [1.0, 1.0],
            [1.0, 3.0],
            [0.0, 3.0],
        ];
        assert!(
            in_polygon([0.5, 2.0], &u) && in_polygon([2.5, 2.0], &u) && in_polygon([1.5, 0.5], &u)
        );
        assert!(!in_polygon([1.5, 2.0], &u) && !in_polygon([4.0, 1.0], &u));
    }

    #[test]
    fn export_writes_the_selected_rows_as_csv_and_json() {
        let m = two_clusters(10, 8);
        let map = MemoryMap::fit(&m).unwrap();
        let (fingerprint, dim) = (m.model_fingerprint().to_string(), m.dim());
        let mut entries = m.into_entries();
        entries[2].source = "dir/with,comma \"q\".png".into();
        let mut m = Memory::from_entries(&fingerprint, dim, entries).unwrap();
        m.delete(3).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let csv_path = dir.path().join("sel.csv");
        assert_eq!(map.export(&m, Some(&[2, 3]), &csv_path).unwrap(), 2);
        let text = std::fs::read_to_string(&csv_path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "id,label,source,deleted,x,y");
        assert!(
            lines[1].starts_with("2,a,\"dir/with,comma \"\"q\"\".png\",false,"),
            "{}",
            lines[1]
        );
        assert!(lines[2].starts_with("3,b,,true,"), "{}", lines[2]);
        let json_path = dir.path().join("all.json");
        assert_eq!(map.export(&m, None, &json_path).unwrap(), 10);
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 10);
        assert_eq!(v[3]["deleted"], true);
    }

    #[test]
    fn entries_added_or_restored_after_the_fit_are_placed_in_id_order() {
        let m = two_clusters(20, 8);
        let full = MemoryMap::fit(&m).unwrap();
        let mut partial = m.clone();
        for id in [3, 7] {
            partial.delete(id).unwrap();
        }
        let mut map = MemoryMap::fit(&partial).unwrap();
        assert_eq!(map.ids.len(), 18);
        // Restored entries (ids inside the range) and no duplicates for those already there.
        map.extend(
            m.entries()
                .iter()
                .map(|e| (e.id, 0, e.embedding.as_slice())),
        );
        assert_eq!(map.ids, full.ids);
        assert_eq!(
            map.position(7).map(|i| map.xy[i]),
            Some(map.place(&m.entries()[7].embedding))
        );
    }

    #[test]
    fn a_memory_of_one_entry_has_no_map() {
        let m = two_clusters(1, 8);
        assert!(matches!(MemoryMap::fit(&m), Err(Error::Memory(_))));
    }
}
