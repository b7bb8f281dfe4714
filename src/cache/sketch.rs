//! [`Frequency`]: how often each key was read lately, estimated in fixed memory, for the
//! cache's admission rule (TinyLFU: a newcomer displaces the eviction victim only when it is
//! read more often). Two parts, both sized from the cache capacity when the cache is
//! configured, so recording an access never allocates:
//!
//! - a doorkeeper, a Bloom filter (two probes) of keys seen once in the current period: the
//!   first access of a key only sets its bits, so the many keys read once never reach the
//!   counters;
//! - a count-min sketch of 4-bit counters (saturating at 15), four per key; the estimate is
//!   the smallest of the four, plus one when the doorkeeper knows the key.
//!
//! A key's counters and doorkeeper bits share one 64-byte block chosen by its hash, so
//! recording an access touches one cache line (`perf` showed the sketch's memory misses on
//! the miss path when they were apart).
//!
//! After `10 × capacity` recorded accesses (a period) every counter is halved and the
//! doorkeeper cleared, so the estimate follows recent use rather than all history.

const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// Folds 8-byte words into `h` (multiply-rotate).
fn fold(mut h: u64, bytes: &[u8]) -> u64 {
    for chunk in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
    }
    h
}

/// The final avalanche of MurmurHash3: every output bit depends on every input bit.
fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Hashes (collection, key) to 64 bits for the sketch and the invalidation log; the sketch
/// and the doorkeeper take their indexes from different bits.
pub(crate) fn key_hash(coll: &str, key: &[u8]) -> u64 {
    let h = (coll.len() as u64).wrapping_mul(K) ^ (key.len() as u64);
    avalanche(fold(fold(h, coll.as_bytes()), key))
}

/// The hasher of the cache's maps: the same folding as [`key_hash`] from a seed chosen per
/// cache, so a few short keys hash in a few multiplications (SipHash was a visible share of
/// a cache miss in `perf`) while the layout of the table still differs between caches.
#[derive(Clone)]
pub(crate) struct Seeded(u64);

impl Default for Seeded {
    fn default() -> Self {
        Self(fastrand::u64(..))
    }
}

impl std::hash::BuildHasher for Seeded {
    type Hasher = FoldHasher;
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(self.0)
    }
}

/// See [`Seeded`].
pub(crate) struct FoldHasher(u64);

impl std::hash::Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        avalanche(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fold(self.0 ^ (bytes.len() as u64), bytes);
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0 ^ u64::from(i)).wrapping_mul(K).rotate_left(29);
    }
    fn write_usize(&mut self, i: usize) {
        self.0 = (self.0 ^ i as u64).wrapping_mul(K).rotate_left(29);
    }
}

/// One cache line of the sketch: four words of counters (one row each, 16 four-bit counters
/// per word) and four words of doorkeeper bits. A key maps to one block, so recording it
/// touches one line.
#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct Block {
    counters: [u64; 4],
    door: [u64; 4],
}

/// Access frequencies over the recent past (see the module documentation). The default is
/// the empty sketch of a cache that is off.
#[derive(Default)]
pub(crate) struct Frequency {
    blocks: Vec<Block>,
    /// Accesses recorded in this period.
    added: u64,
    /// Accesses per period.
    period: u64,
}

const LOW_BITS: u64 = 0x7777_7777_7777_7777;

impl Frequency {
    /// A sketch for a cache of `capacity` entries (empty, recording nothing, for 0).
    pub(crate) fn new(capacity: u64) -> Self {
        if capacity == 0 {
            return Self::default();
        }
        // Two words of counters per entry (32 counters, 8 per row), in blocks of 64 bytes
        // rounded up to a power of two: 32 bytes per entry, 512 KiB for the default 10,000
        // (four times that was a visible share of a miss in `perf`: L2 misses). Up to
        // 10 × capacity keys per period: about 20 per block, 16 counters per row. The
        // doorkeeper: 256 bits per block, two bits per key. Capped at 2^20 blocks (64 MiB).
        let c = (capacity / 2).clamp(16, 1 << 20);
        let n = usize::try_from(c.next_power_of_two()).unwrap_or(1 << 20);
        Self {
            blocks: vec![Block::default(); n],
            added: 0,
            period: capacity.saturating_mul(10),
        }
    }

    fn block(&self, h: u64) -> usize {
        // Truncation is the intent: the low bits pick the block (a power of two of them).
        #[allow(clippy::cast_possible_truncation)]
        let b = (h as usize) & (self.blocks.len() - 1);
        b
    }

    /// The counter of row `i` (0..4) within its word: 4 bits of the hash per row.
    fn shift(h: u64, i: usize) -> u32 {
        // At most 15 × 4 = 60: fits.
        #[allow(clippy::cast_possible_truncation)]
        let nibble = ((h >> (32 + 4 * i)) & 15) as u32;
        nibble * 4
    }

    /// The doorkeeper word of `h` in its block and the two bits (probes) in it.
    fn door_bits(h: u64) -> (usize, u64) {
        // Truncation is the intent: two bits of the hash pick the word.
        #[allow(clippy::cast_possible_truncation)]
        let w = ((h >> 48) & 3) as usize;
        let bit = |x: u64| 1u64 << (x & 63);
        (w, bit(h >> 52) | bit(h >> 58))
    }

    /// Starts loading the block of `h` (before a lookup whose own memory miss it can then
    /// overlap; [`Frequency::record`] after it finds the line arriving).
    pub(crate) fn prefetch(&self, h: u64) {
        if let Some(b) = self.blocks.get(self.block(h)) {
            crate::prefetch::prefetch_value(b);
        }
    }

    /// Records one access of the key hashed to `h`.
    pub(crate) fn record(&mut self, h: u64) {
        if self.blocks.is_empty() {
            return;
        }
        let at = self.block(h);
        let block = &mut self.blocks[at];
        let (w, bits) = Self::door_bits(h);
        if block.door[w] & bits == bits {
            for (i, word) in block.counters.iter_mut().enumerate() {
                let s = Self::shift(h, i);
                if (*word >> s) & 15 < 15 {
                    *word += 1 << s;
                }
            }
        } else {
            block.door[w] |= bits;
        }
        self.added += 1;
        if self.added >= self.period {
            self.age();
        }
    }

    /// How often the key hashed to `h` was read lately (0..=16).
    pub(crate) fn estimate(&self, h: u64) -> u8 {
        if self.blocks.is_empty() {
            return 0;
        }
        let block = &self.blocks[self.block(h)];
        let (w, bits) = Self::door_bits(h);
        let door = u8::from(block.door[w] & bits == bits);
        let min = (0..4)
            .map(|i| (block.counters[i] >> Self::shift(h, i)) & 15)
            .min()
            .unwrap_or(0);
        // At most 15.
        #[allow(clippy::cast_possible_truncation)]
        let counted = min as u8;
        counted + door
    }

    /// Ends a period: halves every counter and clears the doorkeeper.
    fn age(&mut self) {
        for b in &mut self.blocks {
            for w in &mut b.counters {
                *w = (*w >> 1) & LOW_BITS;
            }
            b.door = [0; 4];
        }
        self.added = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_accesses_and_age() {
        let mut f = Frequency::new(1000);
        let hot = key_hash("c", b"hot");
        let cold = key_hash("c", b"cold");
        assert_eq!(f.estimate(hot), 0);
        f.record(cold);
        assert_eq!(
            f.estimate(cold),
            1,
            "the doorkeeper counts the first access"
        );
        for _ in 0..9 {
            f.record(hot);
        }
        assert_eq!(f.estimate(hot), 9);
        for _ in 0..20 {
            f.record(hot);
        }
        assert_eq!(
            f.estimate(hot),
            16,
            "counters saturate at 15 (+1 doorkeeper)"
        );
        // A period of other keys halves the counters and clears the doorkeeper.
        for i in 0..10_000u32 {
            f.record(key_hash("c", &i.to_be_bytes()));
        }
        let aged = f.estimate(hot);
        assert!((4..=8).contains(&aged), "after a period, halved: {aged}");
        assert_eq!(
            f.estimate(key_hash("other", b"hot")),
            0,
            "collections differ"
        );
    }

    #[test]
    fn one_off_keys_rarely_look_frequent() {
        // 5,000 keys read once each (half a period of a 1,000-entry sketch): the doorkeeper
        // and counters may collide, but a key read once must seldom estimate above 1.
        let mut f = Frequency::new(1000);
        for i in 0..5_000u32 {
            f.record(key_hash("c", &i.to_be_bytes()));
        }
        let above = (0..5_000u32)
            .filter(|i| f.estimate(key_hash("c", &i.to_be_bytes())) > 1)
            .count();
        assert!(
            above < 250,
            "{above} of 5000 one-off keys estimated above 1"
        );
    }
}
