//! The hasher of the hub's index from entity id to entry: a few instructions
//! a byte where the standard `HashMap`'s SipHash took a few hundred an id,
//! which was most of what a `Hub::set` cost (issue 19).
//!
//! SipHash is keyed so that whoever chooses a map's keys cannot make them
//! collide. The hub's keys are the entity ids, all registered at start from
//! the config and the sources; what comes from outside (an HTTP path, an
//! MQTT topic) is only ever looked up, and a lookup walks at most the
//! entries that are there. So an unkeyed hash is safe here.
//!
//! The bytes are mixed as FNV-1a mixes them (an xor and a multiply each:
//! the least code, and ids are short), and `finish` applies MurmurHash3's
//! 64-bit finaliser so that every bit of the result depends on every byte:
//! hashbrown picks the bucket from the low bits and a tag from the top
//! seven, and FNV's low bits depend only on the bytes' low bits.

use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` hasher builder for entity ids.
pub(crate) type IdHash = BuildHasherDefault<IdHasher>;

/// FNV-1a's 64-bit offset basis and prime.
const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

#[derive(Debug, Clone, Copy)]
pub(crate) struct IdHasher {
    hash: u64,
}

impl Default for IdHasher {
    fn default() -> IdHasher {
        IdHasher { hash: OFFSET_BASIS }
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // `str`'s `Hash` follows the bytes with 0xff, so "a" and "a\0"
        // differ without a length.
        for &byte in bytes {
            self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(PRIME);
        }
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
