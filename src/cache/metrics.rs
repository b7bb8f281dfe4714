//! Cache metrics: counters and a latency histogram of `get` (log2 buckets of nanoseconds),
//! from which percentiles are read. All lock-free.

use std::sync::atomic::{AtomicU64, Ordering};

const BUCKETS: usize = 32;

/// Counters of the document cache and the expiry machinery.
#[derive(Default)]
pub(crate) struct Metrics {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Reads that found an expired document (a miss; the document is not returned).
    pub expired_reads: AtomicU64,
    pub evictions_ttl: AtomicU64,
    pub evictions_lru: AtomicU64,
    /// Eviction batches run (each under the eviction lock).
    pub eviction_cycles: AtomicU64,
    /// Documents added to the cache after a miss.
    pub fills: AtomicU64,
    /// Cached documents dropped other than by eviction: a commit changed them or their
    /// collection, a newer fill replaced them, or a read found them expired. Every fill ends
    /// as an entry, an eviction or one of these.
    pub dropped: AtomicU64,
    /// Inserts into the cache refused because nothing could be evicted (`ttl-only`).
    pub admissions_refused: AtomicU64,
    /// Misses not admitted by the frequency rule: the document was read less often lately
    /// than the entry it would have displaced (`admission: "frequency"`).
    pub admissions_declined: AtomicU64,
    /// Documents deleted by the background sweeper.
    pub sweeper_deleted: AtomicU64,
    pub sweeper_cycles: AtomicU64,
    /// Documents deleted by `purge_expired`.
    pub purged: AtomicU64,
    /// Documents deleted to keep bounded collections within their bound.
    pub bounded_evictions: AtomicU64,
    latency: [AtomicU64; BUCKETS],
}

pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// Records one `get` that took `nanos`.
    pub(crate) fn record_get(&self, nanos: u64) {
        let b = (64 - nanos.max(1).leading_zeros() as usize).min(BUCKETS - 1);
        self.latency[b].fetch_add(1, Ordering::Relaxed);
    }

    /// The latency below which `p` (0..=1) of recorded gets fell, in nanoseconds (upper
    /// bound of the log2 bucket), or 0 with no data.
    pub(crate) fn percentile(&self, p: f64) -> u64 {
        let counts: Vec<u64> = self
            .latency
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        // A rank in 1..=total for p in [0, 1]; float-to-int `as` saturates, never wraps.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let want = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return 1u64 << i;
            }
        }
        1u64 << (BUCKETS - 1)
    }

    pub(crate) fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_buckets() {
        let m = Metrics::default();
        for _ in 0..90 {
            m.record_get(100); // bucket 2^7
        }
        for _ in 0..10 {
            m.record_get(10_000); // bucket 2^14
        }
        assert_eq!(m.percentile(0.5), 128);
        assert_eq!(m.percentile(0.9), 128);
        assert_eq!(m.percentile(0.99), 16384);
    }
}
