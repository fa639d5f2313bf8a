//! Memory entries and their file format.
//!
//! Format (little endian): magic `PMEM`, format version (u32), header length (u64), header JSON
//! (model fingerprint, dimension, labels, entry count), then per entry: id (u64), label index
//! (u32), source path (u32 length + UTF-8), content hash (u64), thumbnail (u32 length + PNG
//! bytes), embedding (dim × f32); finally an FNV-1a-64 checksum of everything before it.
//! Saving writes a temporary file, fsyncs it and renames it over the old one, so a crash keeps
//! either the old or the new memory. A deleted entry is simply not written: its bytes are gone.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hash::fnv1a;

const MAGIC: &[u8; 4] = b"PMEM";
const VERSION: u32 = 1;

/// One remembered image.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Stable id, never reused within a memory.
    pub id: u64,
    pub label: String,
    /// Where the image came from (a path, or `name#index` inside a dataset file).
    pub source: String,
    /// FNV-1a of the image's bytes as imported.
    pub content_hash: u64,
    /// A small PNG for the UI.
    pub thumbnail: Vec<u8>,
    /// L2-normalised embedding.
    pub embedding: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    model_fingerprint: String,
    dim: usize,
    next_id: u64,
    labels: Vec<String>,
    count: usize,
    /// Content hashes of unlearned images (absent when none, so older files read unchanged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    denied: Vec<u64>,
}

/// A visual memory: entries embedded by one model (never mixed with another model's).
#[derive(Clone, Debug, PartialEq)]
///
/// Invariants, kept by the methods (the fields are private so the compiler holds them): entries
/// are sorted by id, ids are unique and below the id counter (never reused), every embedding has
/// `dim` finite values, and a deleted image's content hash stays on the deny-list until
/// [`Memory::allow`]ed or restored by undo.
pub struct Memory {
    model_fingerprint: String,
    dim: usize,
    entries: Vec<Entry>,
    next_id: u64,
    /// The deny-list: content hashes of deleted images, refused by [`Memory::add`] until
    /// [`Memory::allow`]ed. Hash 0 ("unknown content") is never listed.
    denied: std::collections::BTreeSet<u64>,
}

impl Memory {
    pub fn new(model_fingerprint: &str, dim: usize) -> Self {
        Self {
            model_fingerprint: model_fingerprint.to_string(),
            dim,
            entries: Vec::new(),
            next_id: 0,
            denied: Default::default(),
        }
    }

    /// Builds a memory from entries (e.g. an edited or subsampled copy of another memory's),
    /// sorted by id; the id counter starts past the largest id and the deny-list is empty.
    /// Errors: a repeated id, an embedding of another size than `dim`, or a NaN/Inf value.
    ///
    /// For copies that are never saved (an evaluation's subset, a test's variant). A memory
    /// that will be saved must keep its original's bookkeeping: call
    /// [`inherit_bookkeeping`](Self::inherit_bookkeeping) with the original, or ids of deleted
    /// entries could be reused and unlearned images would be accepted again.
    pub fn from_entries(
        model_fingerprint: &str,
        dim: usize,
        mut entries: Vec<Entry>,
    ) -> Result<Self> {
        entries.sort_by_key(|e| e.id);
        if let Some(w) = entries.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(Error::InvalidConfig(format!(
                "entry id {} appears twice",
                w[0].id
            )));
        }
        if let Some(e) = entries.iter().find(|e| e.embedding.len() != dim) {
            return Err(Error::shape(
                format!("dimensions of entry {} (the memory's)", e.id),
                dim,
                e.embedding.len(),
            ));
        }
        if let Some(e) = entries
            .iter()
            .find(|e| e.embedding.iter().any(|v| !v.is_finite()))
        {
            return Err(Error::InvalidConfig(format!(
                "entry {} ({}) has a NaN or Inf embedding",
                e.id, e.source
            )));
        }
        let next_id = entries.last().map_or(0, |e| e.id + 1);
        Ok(Self {
            model_fingerprint: model_fingerprint.to_string(),
            dim,
            entries,
            next_id,
            denied: Default::default(),
        })
    }

    /// The fingerprint of the model that embedded every entry.
    pub fn model_fingerprint(&self) -> &str {
        &self.model_fingerprint
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The entries, sorted by id.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries, sorted by id, by value (the id counter and deny-list are dropped).
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    /// Changes an entry's label; returns the old label, or None when the id is absent or the
    /// label is already `label`.
    pub(crate) fn set_label(&mut self, id: u64, label: &str) -> Option<String> {
        let pos = self.position(id)?;
        let entry = &mut self.entries[pos];
        (entry.label != label).then(|| std::mem::replace(&mut entry.label, label.to_string()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds an entry embedded by `fingerprint`; refuses embeddings of another model or size.
    pub fn add(
        &mut self,
        fingerprint: &str,
        label: &str,
        source: &str,
        content_hash: u64,
        thumbnail: Vec<u8>,
        embedding: Vec<f32>,
    ) -> Result<u64> {
        if fingerprint != self.model_fingerprint {
            return Err(Error::ModelMismatch {
                what: "memory".into(),
                memory_model: self.model_fingerprint.clone(),
                model: fingerprint.into(),
                hint: "Re-embed the memory with this model instead.".into(),
            });
        }
        if embedding.len() != self.dim {
            return Err(Error::shape(
                format!("dimensions of the embedding of {source} (the memory's)"),
                self.dim,
                embedding.len(),
            ));
        }
        if embedding.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidConfig(format!(
                "the embedding of {source} holds NaN or Inf (are the model's weights finite?)"
            )));
        }
        if self.is_denied(content_hash) {
            return Err(Error::Unlearned {
                name: source.to_string(),
            });
        }
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push(Entry {
            id,
            label: label.to_string(),
            source: source.to_string(),
            content_hash,
            thumbnail,
            embedding,
        });
        Ok(id)
    }

    pub fn position(&self, id: u64) -> Option<usize> {
        self.entries.binary_search_by_key(&id, |e| e.id).ok()
    }

    pub fn get(&self, id: u64) -> Option<&Entry> {
        self.position(id).map(|i| &self.entries[i])
    }

    /// Removes an entry; returns it so the caller can undo. Its content hash goes on the
    /// deny-list.
    pub fn delete(&mut self, id: u64) -> Option<Entry> {
        let entry = self.position(id).map(|i| self.entries.remove(i))?;
        if entry.content_hash != 0 {
            self.denied.insert(entry.content_hash);
        }
        Some(entry)
    }

    /// Removes every entry whose id is in `ids` in one pass (deleting one by one moves the
    /// tail of the list each time); returns them in id order. Their content goes on the
    /// deny-list.
    pub fn delete_many(&mut self, ids: &std::collections::HashSet<u64>) -> Vec<Entry> {
        let (gone, kept): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|e| ids.contains(&e.id));
        self.entries = kept;
        self.denied
            .extend(gone.iter().map(|e| e.content_hash).filter(|&h| h != 0));
        gone
    }

    /// Puts deleted entries back (the undo of [`delete_many`](Self::delete_many)); refuses,
    /// changing nothing, if any id is already present.
    pub fn restore_many(&mut self, entries: Vec<Entry>) -> Result<()> {
        if let Some(e) = entries.iter().find(|e| self.position(e.id).is_some()) {
            return Err(Error::InvalidConfig(format!(
                "entry {} is already in the memory",
                e.id
            )));
        }
        for e in &entries {
            self.denied.remove(&e.content_hash);
            self.next_id = self.next_id.max(e.id + 1);
        }
        self.entries.extend(entries);
        self.entries.sort_by_key(|e| e.id);
        Ok(())
    }

    /// Whether images with this content hash were unlearned and are refused by [`add`](Self::add).
    pub fn is_denied(&self, content_hash: u64) -> bool {
        content_hash != 0 && self.denied.contains(&content_hash)
    }

    /// How many content hashes the deny-list holds.
    pub fn denied_count(&self) -> usize {
        self.denied.len()
    }

    /// The deny-list, ascending.
    pub fn denied(&self) -> impl Iterator<Item = u64> + '_ {
        self.denied.iter().copied()
    }

    /// Takes a content hash off the deny-list (the explicit override for re-adding an unlearned
    /// image); returns whether it was listed.
    pub fn allow(&mut self, content_hash: u64) -> bool {
        self.denied.remove(&content_hash)
    }

    /// Carries `from`'s id counter and deny-list over to this memory built from its entries
    /// (e.g. re-embedded by another model), so ids are never reused and unlearned images stay
    /// refused.
    pub(crate) fn inherit_bookkeeping(&mut self, from: &Memory) {
        self.next_id = self.next_id.max(from.next_id);
        self.denied.extend(from.denied.iter().copied());
    }

    /// Puts a deleted entry back where it was (entries stay sorted by id).
    pub fn restore(&mut self, entry: Entry) -> Result<()> {
        match self.entries.binary_search_by_key(&entry.id, |e| e.id) {
            Ok(_) => Err(Error::InvalidConfig(format!(
                "entry {} is already in the memory",
                entry.id
            ))),
            Err(i) => {
                self.denied.remove(&entry.content_hash);
                self.next_id = self.next_id.max(entry.id + 1);
                self.entries.insert(i, entry);
                Ok(())
            }
        }
    }

    /// Distinct labels, sorted.
    pub fn labels(&self) -> Vec<String> {
        let mut l: Vec<String> = self.entries.iter().map(|e| e.label.clone()).collect();
        l.sort();
        l.dedup();
        l
    }

    /// Serialises the memory (see the module docs for the layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        let labels = self.labels();
        let header = Header {
            model_fingerprint: self.model_fingerprint.clone(),
            dim: self.dim,
            next_id: self.next_id,
            labels: labels.clone(),
            count: self.entries.len(),
            denied: self.denied.iter().copied().collect(),
        };
        let header = serde_json::to_vec(&header).expect("header serialises");
        let mut out =
            Vec::with_capacity(64 + header.len() + self.entries.len() * (self.dim * 4 + 64));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        for e in &self.entries {
            let label = labels.binary_search(&e.label).expect("label listed") as u32;
            out.extend_from_slice(&e.id.to_le_bytes());
            out.extend_from_slice(&label.to_le_bytes());
            out.extend_from_slice(&(e.source.len() as u32).to_le_bytes());
            out.extend_from_slice(e.source.as_bytes());
            out.extend_from_slice(&e.content_hash.to_le_bytes());
            out.extend_from_slice(&(e.thumbnail.len() as u32).to_le_bytes());
            out.extend_from_slice(&e.thumbnail);
            for v in &e.embedding {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Whether `path` starts with a memory file's magic (`PMEM`); false for folders and
    /// unreadable files. Tells memory files from other inputs by content, not by name.
    pub fn is_memory_file(path: &Path) -> bool {
        use std::io::Read;
        let mut head = [0u8; 4];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok()
            && &head == MAGIC
    }

    /// Parses bytes written by [`Memory::to_bytes`]; any damage is an error, never a partial load.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |m: &str| Error::BadFile {
            path: path.to_path_buf(),
            message: m.to_string(),
        };
        if bytes.len() < 24 || &bytes[..4] != MAGIC {
            return Err(bad("not a procmem memory file"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 8);
        if fnv1a(body) != u64::from_le_bytes(sum.try_into().expect("8 bytes")) {
            return Err(bad("checksum mismatch: the file is truncated or corrupted"));
        }
        let mut r = Reader {
            bytes: body,
            pos: 4,
            path,
        };
        let version = r.u32()?;
        if version != VERSION {
            return Err(bad(&format!(
                "memory format version {version}, this procmem reads {VERSION}"
            )));
        }
        let header_len = r.u64()? as usize;
        let header_len = header_len.min(body.len());
        let header: Header = serde_json::from_slice(r.take(header_len)?)
            .map_err(|e| bad(&format!("bad header: {e}")))?;
        // Sizes read from the file are checked against the file's length before anything is
        // allocated: a damaged count or dimension is an error, never an abort.
        let min_entry = header
            .dim
            .checked_mul(4)
            .and_then(|d| d.checked_add(8 + 4 + 4 + 8 + 4))
            .ok_or_else(|| bad("dimension too large"))?;
        if header.dim == 0 {
            return Err(bad("dimension 0 in the header"));
        }
        if header
            .count
            .checked_mul(min_entry)
            .is_none_or(|need| need > body.len() - r.pos)
        {
            return Err(bad(&format!(
                "the header counts {} entries of dimension {}, more than the file's {} bytes can hold",
                header.count,
                header.dim,
                bytes.len()
            )));
        }
        let mut entries = Vec::with_capacity(header.count);
        for _ in 0..header.count {
            let id = r.u64()?;
            let label = r.u32()? as usize;
            let label = header
                .labels
                .get(label)
                .ok_or_else(|| bad("label index out of range"))?
                .clone();
            let source_len = r.u32()? as usize;
            let source = String::from_utf8(r.take(source_len)?.to_vec())
                .map_err(|_| bad("source path is not UTF-8"))?;
            let content_hash = r.u64()?;
            let thumb_len = r.u32()? as usize;
            let thumbnail = r.take(thumb_len)?.to_vec();
            let raw = r.take(header.dim * 4)?;
            let embedding: Vec<f32> = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if embedding.iter().any(|v| !v.is_finite()) {
                return Err(bad(&format!(
                    "entry {id} ({source}) has a NaN or Inf embedding"
                )));
            }
            entries.push(Entry {
                id,
                label,
                source,
                content_hash,
                thumbnail,
                embedding,
            });
        }
        if r.pos != body.len() {
            return Err(bad("trailing bytes after the last entry"));
        }
        if entries.windows(2).any(|w| w[0].id >= w[1].id) {
            return Err(bad("entry ids are not increasing"));
        }
        if entries.last().is_some_and(|e| e.id >= header.next_id) {
            return Err(bad(
                "an entry id is not below the header's next id (ids would be reused)",
            ));
        }
        Ok(Self {
            model_fingerprint: header.model_fingerprint,
            dim: header.dim,
            entries,
            next_id: header.next_id,
            denied: header.denied.into_iter().filter(|&h| h != 0).collect(),
        })
    }

    /// Saves atomically ([`crate::fsio::write_atomic`]: temporary file, fsync, rename, fsync of
    /// the folder).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::fsio::write_atomic(path, &self.to_bytes())
    }

    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.pos + n > self.bytes.len() {
            return Err(Error::BadFile {
                path: self.path.to_path_buf(),
                message: "unexpected end of file".into(),
            });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Memory {
        let mut m = Memory::new("fp", 3);
        m.add(
            "fp",
            "cat",
            "/data/cat/1.png",
            11,
            vec![1, 2, 3],
            vec![0.6, 0.8, 0.0],
        )
        .unwrap();
        m.add(
            "fp",
            "dog",
            "/data/dog/secret-dog-photo.png",
            22,
            b"THUMB-OF-DOG".to_vec(),
            vec![0.123_456_79, -0.5, 0.75],
        )
        .unwrap();
        m.add(
            "fp",
            "cat",
            "/data/cat/2.png",
            33,
            vec![4, 5],
            vec![0.0, 1.0, 0.0],
        )
        .unwrap();
        m
    }

    #[test]
    fn from_entries_sorts_and_refuses_what_would_break_the_invariants() {
        let m = sample();
        let mut reversed = m.entries().to_vec();
        reversed.reverse();
        let mut rebuilt = Memory::from_entries("fp", 3, reversed.clone()).unwrap();
        assert_eq!(rebuilt.entries(), m.entries());
        // The id counter starts past the largest id: a new entry never reuses one.
        let id = rebuilt
            .add("fp", "cow", "c.png", 44, vec![], vec![0.0, 0.0, 1.0])
            .unwrap();
        assert_eq!(id, 3);

        let mut twice = reversed.clone();
        twice.push(reversed[0].clone());
        let mut wrong_dim = reversed.clone();
        wrong_dim[1].embedding.push(0.0);
        assert!(matches!(
            Memory::from_entries("fp", 3, wrong_dim.clone()),
            Err(Error::Shape { .. })
        ));
        let mut nan = reversed;
        nan[2].embedding[0] = f32::NAN;
        for (entries, why) in [(twice, "twice"), (wrong_dim, "dimensions"), (nan, "NaN")] {
            let err = Memory::from_entries("fp", 3, entries)
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn set_label_returns_the_old_label_only_on_a_change() {
        let mut m = sample();
        assert_eq!(m.set_label(1, "cat").as_deref(), Some("dog"));
        assert_eq!(m.set_label(1, "cat"), None);
        assert_eq!(m.set_label(99, "cat"), None);
        assert_eq!(m.get(1).unwrap().label, "cat");
    }

    #[test]
    fn a_deleted_image_is_refused_until_allowed_and_the_deny_list_is_saved() {
        let mut m = Memory::new("fp", 2);
        let a = m
            .add("fp", "x", "a.png", 11, vec![], vec![1.0, 0.0])
            .unwrap();
        m.add("fp", "x", "unknown.png", 0, vec![], vec![0.0, 1.0])
            .unwrap();
        let entry = m.delete(a).unwrap();
        assert!(m.is_denied(11));
        assert!(
            matches!(m.add("fp", "x", "a-again.png", 11, vec![], vec![1.0, 0.0]), Err(Error::Unlearned { name }) if name == "a-again.png")
        );
        // Unknown content (hash 0) is never denied.
        m.delete(1).unwrap();
        assert!(!m.is_denied(0) && m.denied().collect::<Vec<_>>() == [11]);
        m.add("fp", "x", "other-unknown.png", 0, vec![], vec![0.0, 1.0])
            .unwrap();
        // The list survives a save; a file without one reads as before.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.pmem");
        m.save(&path).unwrap();
        assert!(Memory::open(&path).unwrap().is_denied(11));
        // Undo (restore) and the explicit override take it off the list.
        m.restore(entry).unwrap();
        assert!(!m.is_denied(11));
        m.delete(a).unwrap();
        assert!(m.allow(11));
        m.add("fp", "x", "a-again.png", 11, vec![], vec![1.0, 0.0])
            .unwrap();
        assert_eq!(
            Memory::new("fp", 2)
                .to_bytes()
                .windows(6)
                .filter(|w| w == b"denied")
                .count(),
            0
        );
    }

    #[test]
    fn round_trips_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.pmem");
        let m = sample();
        m.save(&path).unwrap();
        assert_eq!(Memory::open(&path).unwrap(), m);
    }

    #[test]
    fn deleting_an_entry_removes_its_bytes_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.pmem");
        let mut m = sample();
        let removed = m.delete(1).unwrap();
        m.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        let embedding: Vec<u8> = removed
            .embedding
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert!(!contains(&embedding), "embedding bytes survived");
        assert!(!contains(b"THUMB-OF-DOG"), "thumbnail survived");
        assert!(!contains(b"secret-dog-photo"), "source path survived");
        assert!(!contains(b"dog"), "the only dog's label survived");
        // Undo puts it back in place.
        m.restore(removed).unwrap();
        assert_eq!(m, sample());
    }

    #[test]
    fn damaged_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.pmem");
        let bytes = sample().to_bytes();
        for (name, damaged) in [
            ("truncated", bytes[..bytes.len() - 5].to_vec()),
            ("flipped", {
                let mut b = bytes.clone();
                b[40] ^= 0x55;
                b
            }),
        ] {
            std::fs::write(&path, &damaged).unwrap();
            let err = Memory::open(&path).unwrap_err().to_string();
            assert!(
                err.contains("checksum") || err.contains("end of file"),
                "{name}: {err}"
            );
        }
        std::fs::write(&path, b"hello").unwrap();
        assert!(
            Memory::open(&path)
                .unwrap_err()
                .to_string()
                .contains("not a procmem memory")
        );
    }

    /// The file of `sample()` with its header JSON edited by `edit` and the entries' bytes by
    /// `edit_rest`, checksum recomputed (damage the checksum cannot catch).
    fn crafted(edit: impl Fn(String) -> String, edit_rest: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
        let bytes = sample().to_bytes();
        let hl = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
        let header = edit(String::from_utf8(bytes[16..16 + hl].to_vec()).unwrap());
        let mut rest = bytes[16 + hl..bytes.len() - 8].to_vec();
        edit_rest(&mut rest);
        let mut out = bytes[..8].to_vec();
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&rest);
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    #[test]
    fn sizes_and_values_in_a_well_checksummed_file_are_checked_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.pmem");
        let unchanged = crafted(|h| h, |_| {});
        assert_eq!(
            Memory::from_bytes(&unchanged, &path).unwrap(),
            sample(),
            "the crafting itself is faithful"
        );
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "huge count",
                crafted(
                    |h| h.replace("\"count\":3", "\"count\":1000000000000000"),
                    |_| {},
                ),
                "more than the file",
            ),
            (
                "huge dim",
                crafted(
                    |h| h.replace("\"dim\":3", "\"dim\":4611686018427387904"),
                    |_| {},
                ),
                "dimension",
            ),
            (
                "dim 0",
                crafted(|h| h.replace("\"dim\":3", "\"dim\":0"), |_| {}),
                "dimension 0",
            ),
            (
                "reused ids",
                crafted(|h| h.replace("\"next_id\":3", "\"next_id\":1"), |_| {}),
                "next id",
            ),
            (
                "NaN embedding",
                crafted(
                    |h| h,
                    |rest| {
                        let at = rest.len() - 4 * 3;
                        rest[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
                    },
                ),
                "NaN",
            ),
        ];
        for (name, bytes, want) in cases {
            let err = Memory::from_bytes(&bytes, &path)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(want) && err.contains("m.pmem"),
                "{name}: {err}"
            );
        }
        let mut m = sample();
        assert!(
            m.add("fp", "cat", "nan.png", 0, vec![], vec![f32::NAN, 0.0, 0.0])
                .unwrap_err()
                .to_string()
                .contains("nan.png")
        );
    }

    #[test]
    fn embeddings_of_another_model_are_refused() {
        let mut m = sample();
        let err = m
            .add("other-model", "cat", "x", 0, vec![], vec![1.0, 0.0, 0.0])
            .unwrap_err();
        assert!(
            matches!(&err, Error::ModelMismatch { memory_model, model, .. } if memory_model == "fp" && model == "other-model"),
            "{err}"
        );
        assert!(m.add("fp", "cat", "x", 0, vec![], vec![1.0]).is_err());
    }
}
