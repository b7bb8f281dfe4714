//! [`ByName`]: hash maps keyed by collection name, hashed with FNV-1a.

use std::collections::HashMap;

/// Hashes collection names with FNV-1a instead of SipHash: maps keyed by collection are
/// looked up several times per write (options, indexes, touched keys), with few short keys
/// that the application, not an attacker, chooses.
#[derive(Default)]
pub(crate) struct NameHasher(u64);

impl std::hash::Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// A map keyed by collection name (see [`NameHasher`]).
pub(crate) type ByName<V> = HashMap<String, V, std::hash::BuildHasherDefault<NameHasher>>;
