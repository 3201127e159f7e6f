//! The hasher of the hub's map from entity id to entry: a few instructions
//! a word where the standard `HashMap`'s SipHash took a few hundred an id,
//! which was most of what a `Hub::set` cost (issue 19).
//!
//! SipHash is keyed so that whoever chooses a map's keys cannot make them
//! collide. The hub's keys are the entity ids, all registered at start from
//! the config and the sources; what comes from outside (an HTTP path, an
//! MQTT topic) is only ever looked up, and a lookup walks at most the
//! entries that are there. So an unkeyed hash is safe here.
//!
//! The words are mixed as FxHash (rustc's) mixes them, and `finish` applies
//! MurmurHash3's 64-bit finaliser so that every bit of the result depends
//! on every bit of the id: hashbrown picks the bucket from the low bits
//! and a tag from the top seven, and ids often differ only in their last
//! bytes (`load_1m`, `load_5m`).

use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` hasher builder for entity ids.
pub(crate) type IdHash = BuildHasherDefault<IdHasher>;

/// FxHash's multiplier.
const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher {
    hash: u64,
}

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut offset = 0;
        // A range of constant length converts to an array without a check
        // or a copy: one load a step.
        while let Some(Ok(word)) = bytes.get(offset..offset + 8).map(<[u8; 8]>::try_from) {
            self.add(u64::from_le_bytes(word));
            offset += 8;
        }
        let rest = bytes.get(offset..).unwrap_or_default();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    fn hash(id: &str) -> u64 {
        IdHash::default().hash_one(id)
    }

    #[test]
    fn ids_that_differ_in_one_byte_should_differ_in_the_bits_hashbrown_uses() {
        let ids = [
            "load_1m",
            "load_5m",
            "load_15m",
            "network_rx",
            "network_tx",
            "input_0",
            "input_1",
            "input_2",
            "output_0",
            "output_1",
            "a",
            "a\0",
            "",
            "memory_used",
            "swap_used",
        ];
        let hashes: Vec<u64> = ids.iter().map(|id| hash(id)).collect();
        let distinct: HashSet<u64> = hashes.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len(), "every id hashes apart");
        // The low bits pick the bucket in a small table: 15 ids in 64
        // buckets should not pile up.
        let buckets: HashSet<u64> = hashes.iter().map(|h| h & 63).collect();
        assert!(buckets.len() >= 10, "{buckets:?}");
        let tags: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert!(tags.len() >= 12, "{tags:?}");
        assert_eq!(
            hash("load_1m"),
            hash(&String::from("load_1m")),
            "a String hashes as its str"
        );
    }
}
