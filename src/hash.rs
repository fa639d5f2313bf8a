//! Stable content hashes shared by every stage (model fingerprints, memory checksums and
//! content hashes, program ids). std's hashers may change between releases; these may not.

/// 64-bit FNV-1a (Fowler–Noll–Vo, offset basis 0xcbf29ce484222325, prime 0x100000001b3).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a::new();
    h.update(bytes);
    h.finish()
}

/// [`fnv1a`] fed in pieces: the same bytes in the same order give the same hash, without
/// gathering them in one buffer first.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(u64);

impl Fnv1a {
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    /// Reference values of FNV-1a 64 (the test vectors of the FNV authors' reference code).
    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(super::fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(super::fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn fed_in_pieces_it_is_the_one_shot_hash() {
        let mut h = super::Fnv1a::new();
        for piece in [&b"fo"[..], b"", b"ob", b"ar"] {
            h.update(piece);
        }
        assert_eq!(h.finish(), super::fnv1a(b"foobar"));
    }
}
