//! The document cache: stored records keyed by (collection, `_id`), in front of storage,
//! with Redis's eviction behaviour and TinyLFU's admission. Main type: [`DocCache`];
//! configuration: [`CacheConfig`]; counters: [`metrics`]. The layer beneath is the storage
//! snapshot a miss is served from; the layer above is `Collection::get` (and `nexus_get`).
//!
//! - Entries are the record as stored (copied once at admission so that a record never
//!   keeps a whole page of the pager alive; a hit shares it). `nexus_get` writes JSON from
//!   those bytes; a Rust reader decodes them, and the first Rust hit leaves the decoded
//!   document beside the record ([`DocCache::keep_decoded`]) for later hits to clone.
//! - Admission ([`Admission`]): every lookup is counted in a frequency sketch
//!   (`sketch.rs`). With `frequency` (default) a miss is admitted while the cache has room
//!   that no eviction made ([`Room`]); once full, only if its estimate is at least 2 and
//!   beats the estimate of the entry eviction would take next by more than one. The lookup
//!   decides under its own lock and hands an admitted miss a [`Ticket`]; a declined miss
//!   costs that one lock and no allocation (counted in `admissions_declined`).
//! - Capacity in documents and/or bytes, globally and per collection.
//! - Eviction modes ([`EvictionMode`]): `ttl-first` evicts expired entries, then
//!   approximates LRU by sampling `max_samples` entries into a 16-entry eviction pool
//!   (Redis's method); `lru-only` samples LRU over everything; `ttl-only` evicts only entries
//!   that have a TTL, soonest expiry first (Redis `volatile-ttl`), and refuses new entries
//!   when none has.
//! - Evictions run in batches of `batch_size` under one eviction lock taken with `try_lock`:
//!   when several writers overflow the cache at once, one evicts and the others go on.
//! - Coherence: every commit invalidates what it touched ([`DocCache::invalidate`]) and
//!   bumps an epoch; a reader admits what it read only if no commit touched that document
//!   since the read started ([`DocCache::admit`] with the miss's ticket, checked against
//!   the last 4096 invalidations, remembered by hash: a collision only refuses a fresh
//!   fill), so a stale record never enters the cache. An entry past its expiry is never
//!   returned: the lookup drops it and counts an expired read.
//! - Evicting from the cache never deletes data (bounded collections are `engine::bounded`).

pub(crate) mod metrics;
mod sketch;
mod touched;

pub(crate) use touched::{KeyList, Touched};
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::options::OptionReader;
use crate::storage::Bytes;
use metrics::{bump, Metrics};
use parking_lot::Mutex;
use sketch::{key_hash, Frequency, Seeded};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

const POOL_SIZE: usize = 16;
/// Invalidations remembered so that fills racing with a commit can be checked per key.
const RECENT: usize = 4096;
/// A commit touching more documents of one collection than this invalidates the whole
/// collection in the cache.
const BULK_INVALIDATION: usize = 1024;
/// Above this many keys of one collection in a commit, the invalidation is remembered for the
/// collection rather than key by key (remembering costs a hash-map insert per key).
const REMEMBER_KEYS: usize = 64;

/// How the cache chooses what to evict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictionMode {
    /// Expired entries first, then sampled LRU over all entries (default).
    TtlFirst,
    /// Sampled LRU over all entries.
    LruOnly,
    /// Only entries with a TTL, soonest expiry first.
    TtlOnly,
}

impl EvictionMode {
    fn parse(s: &str) -> Result<Self> {
        match s {
            "ttl-first" => Ok(Self::TtlFirst),
            "lru-only" => Ok(Self::LruOnly),
            "ttl-only" => Ok(Self::TtlOnly),
            other => Err(Error::invalid(format!(
                "option 'eviction' must be \"ttl-first\", \"lru-only\" or \"ttl-only\", not \"{other}\""
            ))),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::TtlFirst => "ttl-first",
            Self::LruOnly => "lru-only",
            Self::TtlOnly => "ttl-only",
        }
    }
}

/// How the cache decides whether a document read from storage (a miss) enters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// While the cache has room no eviction made, every miss enters; once full, a newcomer
    /// enters only if it was read more often lately than the entry it would displace (TinyLFU),
    /// so a working set larger than the cache does not churn it (default).
    Frequency,
    /// Every miss enters, evicting when full (Redis's behaviour).
    Always,
}

impl Admission {
    fn parse(s: &str) -> Result<Self> {
        match s {
            "frequency" => Ok(Self::Frequency),
            "always" => Ok(Self::Always),
            other => Err(Error::invalid(format!(
                "option 'admission' must be \"frequency\" or \"always\", not \"{other}\""
            ))),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Frequency => "frequency",
            Self::Always => "always",
        }
    }
}

/// Cache settings (engine-wide; per-collection capacities come from collection options).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// Most documents held (0: the cache is off).
    pub capacity: u64,
    /// Most bytes held (None: no byte bound).
    pub bytes: Option<u64>,
    /// Eviction policy.
    pub mode: EvictionMode,
    /// Entries sampled per eviction (Redis's `maxmemory-samples`).
    pub max_samples: usize,
    /// Entries evicted per batch under the eviction lock.
    pub batch_size: usize,
    /// Which misses enter the cache.
    pub admission: Admission,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            bytes: None,
            mode: EvictionMode::TtlFirst,
            max_samples: 5,
            batch_size: 32,
            admission: Admission::Frequency,
        }
    }
}

impl CacheConfig {
    /// Reads the cache keys of an options object (`cache_capacity`, `cache_bytes`,
    /// `eviction`, `max_samples`, `batch_size`, `admission`), leaving others. Returns whether any was set.
    pub(crate) fn read(&mut self, r: &mut OptionReader) -> Result<bool> {
        let mut any = false;
        if let Some(v) = r.u64("cache_capacity")? {
            self.capacity = v;
            any = true;
        }
        if let Some(v) = r.u64("cache_bytes")? {
            self.bytes = (v > 0).then_some(v);
            any = true;
        }
        if let Some(v) = r.string("eviction")? {
            self.mode = EvictionMode::parse(&v)?;
            any = true;
        }
        if let Some(v) = r.string("admission")? {
            self.admission = Admission::parse(&v)?;
            any = true;
        }
        if let Some(v) = r.u64("max_samples")? {
            self.max_samples = usize::try_from(v)
                .ok()
                .filter(|v| (1..=64).contains(v))
                .ok_or_else(|| Error::invalid("option 'max_samples' must be between 1 and 64"))?;
            any = true;
        }
        if let Some(v) = r.u64("batch_size")? {
            self.batch_size = usize::try_from(v)
                .ok()
                .filter(|v| (1..=100_000).contains(v))
                .ok_or_else(|| {
                    Error::invalid("option 'batch_size' must be between 1 and 100000")
                })?;
            any = true;
        }
        Ok(any)
    }
}

/// Per-collection capacity (from `nexus_create_collection` options).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct CollLimits {
    pub capacity: Option<u64>,
    pub bytes: Option<u64>,
}

struct Entry {
    /// The stored record (a hit shares it, never copies it).
    rec: Bytes,
    /// The decoded document, kept once a Rust caller decoded it (charged the record's length
    /// again): cloning it is cheaper than decoding again (`Collection::get`).
    doc: Option<Arc<bson::Document>>,
    /// [`key_hash`] of (collection, key): the entry's place in the frequency sketch.
    hash: u64,
    size: u64,
    access: u64,
    expires_at: Option<i64>,
    slot: usize,
}

/// Room an eviction batch made below a bound: admission treats it as still taken, so that
/// the entries a batch evicts are replaced only by newcomers that win against a victim, not by
/// whichever misses come next.
#[derive(Default, Clone, Copy)]
struct Room {
    entries: u64,
    bytes: u64,
}

impl Room {
    /// Whether `entries`/`bytes` plus this room leave space under the bounds.
    fn free(self, entries: u64, bytes: u64, capacity: Option<u64>, bound: Option<u64>) -> bool {
        capacity.is_none_or(|c| entries + self.entries < c)
            && bound.is_none_or(|b| bytes + self.bytes < b)
    }

    fn take(&mut self, size: u64) {
        self.entries = self.entries.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(size);
    }
}

#[derive(Default)]
struct Coll {
    map: HashMap<Bytes, Entry, Seeded>,
    /// Every key with its last access, for sampling without a map lookup.
    keys: Vec<(Bytes, u64)>,
    bytes: u64,
    limits: CollLimits,
    room: Room,
}

struct Candidate {
    idle: u64,
    coll: Arc<str>,
    key: Bytes,
    access: u64,
}

#[derive(Default)]
struct State {
    cfg: CacheConfig,
    colls: HashMap<Arc<str>, Coll, Seeded>,
    limits: HashMap<String, CollLimits>,
    entries: u64,
    bytes: u64,
    clock: u64,
    epoch: u64,
    pool: Vec<Candidate>,
    ttl: BTreeSet<(i64, Arc<str>, Bytes)>,
    /// Recent invalidations, newest last: (epoch, what: see [`recent_id`]).
    recent: VecDeque<(u64, (u64, bool))>,
    /// Latest invalidation epoch per [`recent_id`] in `recent`. Hashed, so that checking a
    /// fill allocates nothing; two ids sharing a hash only refuse a fill that was fresh.
    recent_index: HashMap<(u64, bool), u64>,
    /// Recent access frequencies, for [`Admission::Frequency`].
    freq: Frequency,
    /// Room the last global eviction batch made (see [`Room`]).
    room: Room,
    /// Reads that started before this epoch cannot be checked against `recent` any more.
    floor: u64,
}

/// The entry count a batch evicts down to: the capacity less `min(batch, capacity / 4)`.
fn low_mark(capacity: Option<u64>, batch: u64) -> Option<u64> {
    capacity.map(|c| c - batch.min(c / 4))
}

/// The byte count a batch evicts down to: the byte bound less the same share.
fn low_bytes(bound: u64, capacity: Option<u64>, batch: u64) -> u64 {
    let share = match capacity {
        Some(c) if c > 0 => batch.min(c / 4) as f64 / c as f64,
        _ => 0.0,
    };
    // At most a quarter of `bound`, non-negative; float-to-int `as` saturates, never wraps.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let cut = (bound as f64 * share.min(0.25)) as u64;
    bound - cut
}

/// What [`State::recent_index`] remembers: (hash of collection and key, false) for a
/// document, (hash of the collection alone, true) for a whole collection.
fn recent_id(coll: &str, key: Option<&[u8]>) -> (u64, bool) {
    match key {
        Some(k) => (key_hash(coll, k), false),
        None => (key_hash(coll, &[]), true),
    }
}

/// A record read from storage after a miss whose [`Ticket`] said to admit it.
pub(crate) struct Fill<'a> {
    pub coll: &'a str,
    pub key: Bytes,
    /// The stored record as storage handed it out (charged its length against `cache_bytes`).
    pub rec: Bytes,
    pub expires_at: Option<i64>,
}

/// Permission, given by a miss, to offer what the read finds to [`DocCache::admit`].
#[derive(Clone, Copy)]
pub(crate) struct Ticket {
    /// The epoch the read started at: a commit after it makes the fill stale.
    epoch: u64,
    hash: u64,
}

/// What a cache lookup found.
pub(crate) enum Lookup {
    /// The stored record (shared with the cache).
    Hit(Bytes),
    /// The decoded document kept beside the record (only when asked for).
    Decoded(Arc<bson::Document>),
    /// The cached document has expired: the read is a miss and returns nothing.
    Expired,
    /// Not cached; with a ticket when what the read finds should be admitted.
    Miss(Option<Ticket>),
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Ttl,
    Lru,
}

/// The document cache. Thread-safe; shared by every connection of an engine.
pub(crate) struct DocCache {
    state: Mutex<State>,
    evict_lock: Mutex<()>,
    pub(crate) metrics: Metrics,
}

impl State {
    /// Whether a read of (coll, key) that started at `epoch` may have missed a commit.
    fn stale(&self, coll: &str, key: &[u8], epoch: u64) -> bool {
        if epoch == self.epoch {
            return false;
        }
        if epoch < self.floor {
            return true;
        }
        let hit = |id| self.recent_index.get(&id).is_some_and(|&e| e > epoch);
        hit(recent_id(coll, Some(key))) || hit(recent_id(coll, None))
    }

    fn remember(&mut self, coll: &str, key: Option<&[u8]>) {
        let epoch = self.epoch;
        let id = recent_id(coll, key);
        self.recent_index.insert(id, epoch);
        self.recent.push_back((epoch, id));
        while self.recent.len() > RECENT {
            if let Some((e, id)) = self.recent.pop_front() {
                self.floor = self.floor.max(e);
                if self.recent_index.get(&id) == Some(&e) {
                    self.recent_index.remove(&id);
                }
            }
        }
    }

    /// Whether a miss of the key hashed to `h` in `coll` should be admitted (see
    /// [`Admission`]): always while there is room no eviction made; otherwise only if the key
    /// was read more often lately than the entry eviction would take in its place.
    fn admits(&mut self, coll: &str, h: u64, now: i64) -> bool {
        if self.cfg.admission == Admission::Always {
            return true;
        }
        let (coll_free, scope) = match self.colls.get_key_value(coll) {
            Some((name, c)) => {
                let free = c.room.free(
                    c.map.len() as u64,
                    c.bytes,
                    c.limits.capacity,
                    c.limits.bytes,
                );
                (free, (!free).then(|| Arc::clone(name)))
            }
            None => {
                let l = self.limits.get(coll).copied().unwrap_or_default();
                let free = Room::default().free(0, 0, l.capacity, l.bytes);
                if !free {
                    return false; // a collection limit of 0: never cached
                }
                (true, None)
            }
        };
        let free = self.room.free(
            self.entries,
            self.bytes,
            Some(self.cfg.capacity),
            self.cfg.bytes,
        );
        if coll_free && free {
            return true;
        }
        if self.cfg.mode != EvictionMode::LruOnly && self.expired_in(now, scope.as_ref()) {
            return true; // an expired entry's place is free
        }
        // Evidence of reuse (read before in this period), and clearly more than the victim:
        // a margin of one halved the admissions of a uniform working set 10x the cache
        // (estimates there differ by noise) and did not cost hits on Zipf.
        let e = self.freq.estimate(h);
        let nothing_evictable = self.cfg.mode == EvictionMode::TtlOnly && self.ttl.is_empty();
        if e < 2 && !nothing_evictable {
            return false; // declined without looking for a victim: most misses of a churn
        }
        match self.peek_victim(scope.as_ref()) {
            Some(vh) => e >= 2 && e > self.freq.estimate(vh) + 1,
            // Nothing to compare with (an empty scope, or `ttl-only` without TTL entries):
            // `admit` and eviction decide as they would without admission.
            None => true,
        }
    }

    /// Whether an entry of `scope` (or any) has expired: eviction takes those first.
    fn expired_in(&self, now: i64, scope: Option<&Arc<str>>) -> bool {
        self.ttl
            .iter()
            .take_while(|(t, _, _)| *t <= now)
            .any(|(_, c, _)| scope.is_none_or(|s| s == c))
    }

    /// The hash of the entry eviction would take next in `scope` (or globally) once nothing
    /// has expired, without taking it; `None` when there is none.
    fn peek_victim(&mut self, scope: Option<&Arc<str>>) -> Option<u64> {
        let in_scope = |c: &Arc<str>| scope.is_none_or(|s| s == c);
        let hash_of = |s: &Self, c: &Arc<str>, k: &Bytes| {
            s.colls
                .get(c)
                .and_then(|col| col.map.get(k))
                .map(|e| e.hash)
        };
        if self.cfg.mode == EvictionMode::TtlOnly {
            let (_, c, k) = self.ttl.iter().find(|(_, c, _)| in_scope(c))?;
            return hash_of(self, c, k);
        }
        if scope.is_some() {
            let (c, k, _) = self.sample_scoped(scope)?;
            return hash_of(self, &c, &k);
        }
        for _attempt in 0..4 {
            while let Some(c) = self.pool.last() {
                let current = self.colls.get(&c.coll).and_then(|col| col.map.get(&c.key));
                match current {
                    Some(e) if e.access == c.access => return Some(e.hash),
                    _ => {
                        self.pool.pop();
                    }
                }
            }
            self.sample_into_pool();
        }
        None
    }

    /// The most idle of `max_samples` random entries of `scope`.
    fn sample_scoped(&self, scope: Option<&Arc<str>>) -> Option<(Arc<str>, Bytes, u64)> {
        let mut best: Option<(&Arc<str>, &Bytes, u64)> = None;
        for _ in 0..self.cfg.max_samples {
            if let Some((c, k, access)) = self.random_entry(scope) {
                if best.is_none_or(|b| access < b.2) {
                    best = Some((c, k, access));
                }
            }
        }
        best.map(|(c, k, a)| (Arc::clone(c), k.clone(), a))
    }

    /// Samples `max_samples` entries into the eviction pool (Redis's method): the pool keeps
    /// the 16 most idle candidates seen, most idle last.
    fn sample_into_pool(&mut self) {
        let mut pool = std::mem::take(&mut self.pool);
        for _ in 0..self.cfg.max_samples {
            let Some((coll, key, access)) = self.random_entry(None) else {
                break;
            };
            let idle = self.clock - access;
            // The same entry is the same shared key: compare addresses, not bytes.
            if pool
                .iter()
                .any(|p| p.key.as_ptr() == key.as_ptr() && Arc::ptr_eq(&p.coll, coll))
            {
                continue;
            }
            if pool.len() < POOL_SIZE || idle > pool[0].idle {
                let at = pool.partition_point(|p| p.idle <= idle);
                pool.insert(
                    at,
                    Candidate {
                        idle,
                        coll: Arc::clone(coll),
                        key: key.clone(),
                        access,
                    },
                );
                if pool.len() > POOL_SIZE {
                    pool.remove(0);
                }
            }
        }
        self.pool = pool;
    }

    fn over(&self) -> bool {
        (self.entries > self.cfg.capacity) || self.cfg.bytes.is_some_and(|b| self.bytes > b)
    }

    fn coll_over(c: &Coll) -> bool {
        c.limits.capacity.is_some_and(|n| c.map.len() as u64 > n)
            || c.limits.bytes.is_some_and(|b| c.bytes > b)
    }

    fn remove(&mut self, coll: &Arc<str>, key: &[u8]) -> bool {
        let Some(c) = self.colls.get_mut(coll) else {
            return false;
        };
        let Some(e) = c.map.remove(key) else {
            return false;
        };
        let last = c.keys.len() - 1;
        c.keys.swap(e.slot, last);
        c.keys.pop();
        if let Some((moved, _)) = c.keys.get(e.slot) {
            if let Some(m) = c.map.get_mut(moved) {
                m.slot = e.slot;
            }
        }
        c.bytes -= e.size;
        self.entries -= 1;
        self.bytes -= e.size;
        if let Some(t) = e.expires_at {
            self.ttl
                .remove(&(t, Arc::clone(coll), Bytes::copy_from_slice(key)));
        }
        true
    }

    /// Drops every cached document of `name`; returns how many there were.
    fn remove_coll(&mut self, name: &str) -> u64 {
        let Some((k, c)) = self.colls.remove_entry(name) else {
            return 0;
        };
        let n = c.map.len() as u64;
        self.entries -= n;
        self.bytes -= c.bytes;
        for (key, e) in c.map {
            if let Some(t) = e.expires_at {
                self.ttl.remove(&(t, Arc::clone(&k), key));
            }
        }
        n
    }

    /// A random entry of `scope` (or of the whole cache): its collection, key and last access.
    fn random_entry(&self, scope: Option<&Arc<str>>) -> Option<(&Arc<str>, &Bytes, u64)> {
        let (name, c) = match scope {
            Some(s) => self.colls.get_key_value(s)?,
            None => {
                let mut r = fastrand::u64(0..self.entries.max(1));
                let mut found = None;
                for (name, c) in &self.colls {
                    let n = c.keys.len() as u64;
                    if r < n {
                        found = Some((name, c));
                        break;
                    }
                    r -= n;
                }
                found?
            }
        };
        if c.keys.is_empty() {
            return None;
        }
        let (key, access) = &c.keys[fastrand::usize(0..c.keys.len())];
        Some((name, key, *access))
    }

    /// Chooses the next entry to evict (and why), following the mode.
    fn victim(&mut self, now: i64, scope: Option<&Arc<str>>) -> Option<(Arc<str>, Bytes, Kind)> {
        let in_scope = |c: &Arc<str>| scope.is_none_or(|s| s == c);
        if self.cfg.mode != EvictionMode::LruOnly {
            let due = self
                .ttl
                .iter()
                .take_while(|(t, _, _)| *t <= now)
                .find(|(_, c, _)| in_scope(c));
            if let Some((_, c, k)) = due {
                return Some((Arc::clone(c), k.clone(), Kind::Ttl));
            }
        }
        if self.cfg.mode == EvictionMode::TtlOnly {
            let (_, c, k) = self.ttl.iter().find(|(_, c, _)| in_scope(c))?;
            return Some((Arc::clone(c), k.clone(), Kind::Ttl));
        }
        if scope.is_some() {
            // Per-collection overflow: plain sampling within the collection.
            return self.sample_scoped(scope).map(|(c, k, _)| (c, k, Kind::Lru));
        }
        for _attempt in 0..4 {
            self.sample_into_pool();
            while let Some(c) = self.pool.pop() {
                let current = self
                    .colls
                    .get(&c.coll)
                    .and_then(|col| col.map.get(&c.key))
                    .map(|e| e.access);
                if current == Some(c.access) {
                    return Some((c.coll, c.key, Kind::Lru));
                }
            }
        }
        None
    }
}

impl DocCache {
    pub(crate) fn new(cfg: CacheConfig) -> Self {
        Self {
            state: Mutex::new(State {
                freq: Frequency::new(cfg.capacity),
                cfg,
                ..State::default()
            }),
            evict_lock: Mutex::new(()),
            metrics: Metrics::default(),
        }
    }

    /// The current settings.
    pub(crate) fn config(&self) -> CacheConfig {
        self.state.lock().cfg.clone()
    }

    /// Replaces the settings; shrinking evicts at once.
    pub(crate) fn configure(&self, cfg: CacheConfig, now: i64) {
        {
            let mut s = self.state.lock();
            if s.cfg.capacity != cfg.capacity {
                s.freq = Frequency::new(cfg.capacity);
            }
            s.cfg = cfg;
            s.pool.clear();
            s.room = Room::default();
            for c in s.colls.values_mut() {
                c.room = Room::default();
            }
        }
        self.evict_if_needed(now);
    }

    /// Sets a collection's own capacity (from its options).
    pub(crate) fn set_limits(&self, coll: &str, limits: CollLimits) {
        let mut s = self.state.lock();
        s.limits.insert(coll.to_owned(), limits);
        if let Some(c) = s.colls.get_mut(coll) {
            c.limits = limits;
        }
    }

    /// Looks a document up, counting a hit or a miss and the access (for admission). A miss
    /// whose record should enter the cache carries a [`Ticket`] for [`DocCache::admit`]; one
    /// that should not costs this one lock and no allocation.
    /// `decoded`: the caller prefers the decoded document when one is kept.
    pub(crate) fn get(&self, coll: &str, key: &[u8], now: i64, decoded: bool) -> Lookup {
        let h = key_hash(coll, key);
        let mut s = self.state.lock();
        if s.cfg.capacity == 0 {
            drop(s);
            bump(&self.metrics.misses, 1);
            return Lookup::Miss(None);
        }
        s.clock += 1;
        // The sketch's line and the map's are both likely cold: load them together (`perf`
        // showed the miss path waiting on each in turn).
        s.freq.prefetch(h);
        let clock = s.clock;
        let found = s.colls.get_mut(coll).and_then(|c| {
            let e = c.map.get_mut(key)?;
            e.access = clock;
            c.keys[e.slot].1 = clock;
            let doc = if decoded { e.doc.clone() } else { None };
            Some(((e.rec.clone(), doc), e.expires_at))
        });
        s.freq.record(h);
        match found {
            Some((_, Some(t))) if t <= now => {
                let name: Arc<str> = Arc::from(coll);
                s.remove(&name, key);
                bump(&self.metrics.dropped, 1);
                bump(&self.metrics.expired_reads, 1);
                bump(&self.metrics.misses, 1);
                Lookup::Expired
            }
            Some(((rec, doc), _)) => {
                drop(s);
                bump(&self.metrics.hits, 1);
                match doc {
                    Some(doc) => Lookup::Decoded(doc),
                    None => Lookup::Hit(rec),
                }
            }
            None => {
                let admit = s.admits(coll, h, now);
                let epoch = s.epoch;
                drop(s);
                bump(&self.metrics.misses, 1);
                if admit {
                    Lookup::Miss(Some(Ticket { epoch, hash: h }))
                } else {
                    bump(&self.metrics.admissions_declined, 1);
                    Lookup::Miss(None)
                }
            }
        }
    }

    /// Adds a record read from storage after a miss that gave `ticket`, unless a commit
    /// touched it since the miss (the read may be stale) or the cache is off. May trigger an
    /// eviction batch.
    pub(crate) fn admit(&self, fill: Fill<'_>, ticket: Ticket, now: i64) {
        let Fill {
            coll,
            key,
            rec,
            expires_at,
        } = fill;
        let size = rec.len() as u64;
        let over = {
            let mut s = self.state.lock();
            if s.cfg.capacity == 0 || s.stale(coll, &key, ticket.epoch) {
                return;
            }
            if s.cfg.mode == EvictionMode::TtlOnly
                && expires_at.is_none()
                && s.entries >= s.cfg.capacity
                && s.ttl.is_empty()
            {
                bump(&self.metrics.admissions_refused, 1);
                return;
            }
            let name: Arc<str> = match s.colls.get_key_value(coll) {
                Some((k, _)) => Arc::clone(k),
                None => Arc::from(coll),
            };
            if s.remove(&name, &key) {
                bump(&self.metrics.dropped, 1);
            }
            s.clock += 1;
            let access = s.clock;
            let limits = s.limits.get(coll).copied().unwrap_or_default();
            s.room.take(size);
            let c = s.colls.entry(Arc::clone(&name)).or_default();
            c.limits = limits;
            c.room.take(size);
            let slot = c.keys.len();
            c.keys.push((key.clone(), access));
            c.bytes += size;
            c.map.insert(
                key.clone(),
                Entry {
                    rec,
                    doc: None,
                    hash: ticket.hash,
                    size,
                    access,
                    expires_at,
                    slot,
                },
            );
            let coll_over = State::coll_over(c);
            s.entries += 1;
            s.bytes += size;
            bump(&self.metrics.fills, 1);
            if let Some(t) = expires_at {
                s.ttl.insert((t, name, key));
            }
            coll_over || s.over()
        };
        if over {
            self.evict_if_needed(now);
        }
    }

    /// Keeps `doc`, decoded from `rec` after a hit, beside the cached record, if the entry
    /// still holds that same record (no commit replaced it meanwhile). Charged `rec`'s length
    /// again against the byte bounds; may trigger an eviction batch.
    pub(crate) fn keep_decoded(
        &self,
        coll: &str,
        key: &[u8],
        rec: &Bytes,
        doc: Arc<bson::Document>,
        now: i64,
    ) {
        let over = {
            let mut s = self.state.lock();
            let Some(c) = s.colls.get_mut(coll) else {
                return;
            };
            let Some(e) = c.map.get_mut(key) else {
                return;
            };
            if e.doc.is_some() || e.rec.as_ptr() != rec.as_ptr() {
                return;
            }
            let extra = e.rec.len() as u64;
            e.doc = Some(doc);
            e.size += extra;
            c.bytes += extra;
            let coll_over = State::coll_over(c);
            s.bytes += extra;
            coll_over || s.over()
        };
        if over {
            self.evict_if_needed(now);
        }
    }

    /// Drops what a commit touched and bumps the epoch.
    pub(crate) fn invalidate(&self, touched: &Touched) {
        let mut s = self.state.lock();
        s.epoch += 1;
        let mut dropped = 0;
        for t in &touched.tables {
            dropped += s.remove_coll(t);
            s.remember(t, None);
        }
        for (coll, keys) in &touched.docs {
            if keys.len() > BULK_INVALIDATION {
                // A bulk write: forget the whole collection rather than thousands of keys.
                dropped += s.remove_coll(coll);
                s.remember(coll, None);
                continue;
            }
            if let Some((name, _)) = s.colls.get_key_value(coll.as_str()) {
                let name = Arc::clone(name);
                for key in keys.iter() {
                    dropped += u64::from(s.remove(&name, key));
                }
            }
            if keys.len() > REMEMBER_KEYS {
                // Many keys: remember the collection once instead (fills of it that raced
                // with this commit are refused, a little more than needed but never stale).
                s.remember(coll, None);
                continue;
            }
            for key in keys.iter() {
                s.remember(coll, Some(key));
            }
        }
        bump(&self.metrics.dropped, dropped);
    }

    /// Drops every entry and refuses fills read before now: another process changed an
    /// unknown set of documents.
    pub(crate) fn invalidate_all(&self) {
        let mut s = self.state.lock();
        s.epoch += 1;
        s.floor = s.epoch;
        let names: Vec<Arc<str>> = s.colls.keys().cloned().collect();
        let mut dropped = 0;
        for name in names {
            dropped += s.remove_coll(&name);
        }
        bump(&self.metrics.dropped, dropped);
    }

    /// Evicts in batches until within every bound. A batch (one "eviction cycle") runs under
    /// the eviction lock and frees room beyond the bound, `min(batch_size, capacity / 4)`
    /// entries' worth (and proportionally of `cache_bytes`), so that the next inserts do not
    /// each trigger eviction again. Only one thread evicts at a time; others that overflow the
    /// cache meanwhile return at once instead of queueing (no thundering evictions).
    pub(crate) fn evict_if_needed(&self, now: i64) {
        // After the evictor lets go of the lock it looks again: a writer that overflowed the
        // cache while the lock was held (and went on without waiting) is covered by it.
        while self.needs_eviction() {
            let Some(evicting) = self.evict_lock.try_lock() else {
                return;
            };
            let stuck = !self.evict_batches(now);
            drop(evicting);
            if stuck {
                return;
            }
        }
    }

    fn needs_eviction(&self) -> bool {
        let s = self.state.lock();
        s.over() || s.colls.values().any(State::coll_over)
    }

    /// Runs eviction batches until within every bound; `false` when nothing more can be
    /// evicted (`ttl-only` with no TTL entries left).
    fn evict_batches(&self, now: i64) -> bool {
        loop {
            let mut s = self.state.lock();
            let scope = s
                .colls
                .iter()
                .find(|(_, c)| State::coll_over(c))
                .map(|(k, _)| Arc::clone(k));
            if scope.is_none() && !s.over() {
                return true;
            }
            bump(&self.metrics.eviction_cycles, 1);
            let batch = s.cfg.batch_size as u64;
            let (low_entries, low_bytes) = match &scope {
                Some(n) => {
                    let l = s.colls.get(n).map(|c| c.limits).unwrap_or_default();
                    (
                        low_mark(l.capacity, batch),
                        l.bytes.map(|b| low_bytes(b, l.capacity, batch)),
                    )
                }
                None => (
                    low_mark(Some(s.cfg.capacity), batch),
                    s.cfg
                        .bytes
                        .map(|b| low_bytes(b, Some(s.cfg.capacity), batch)),
                ),
            };
            let mut evicted = 0;
            let mut lru = 0;
            while evicted < batch {
                let (n, bytes) = match &scope {
                    Some(name) => s
                        .colls
                        .get(name)
                        .map_or((0, 0), |c| (c.map.len() as u64, c.bytes)),
                    None => (s.entries, s.bytes),
                };
                let above =
                    low_entries.is_some_and(|l| n > l) || low_bytes.is_some_and(|l| bytes > l);
                if !above || n == 0 {
                    break;
                }
                let Some((coll, key, kind)) = s.victim(now, scope.as_ref()) else {
                    return false; // nothing evictable (ttl-only with no TTL entries)
                };
                s.remove(&coll, &key);
                evicted += 1;
                match kind {
                    Kind::Ttl => bump(&self.metrics.evictions_ttl, 1),
                    Kind::Lru => {
                        lru += 1;
                        bump(&self.metrics.evictions_lru, 1);
                    }
                }
            }
            if evicted == 0 {
                return false;
            }
            if lru > 0 {
                // The room this batch made below the bounds goes to newcomers that win
                // admission, not to whatever is read next (see `Room`).
                let (n, bytes, cap, bound) = match &scope {
                    Some(name) => s.colls.get(name).map_or((0, 0, None, None), |c| {
                        (
                            c.map.len() as u64,
                            c.bytes,
                            c.limits.capacity,
                            c.limits.bytes,
                        )
                    }),
                    None => (s.entries, s.bytes, Some(s.cfg.capacity), s.cfg.bytes),
                };
                let room = Room {
                    entries: cap.map_or(0, |c| c.saturating_sub(n)),
                    bytes: bound.map_or(0, |b| b.saturating_sub(bytes)),
                };
                match &scope {
                    Some(name) => {
                        if let Some(c) = s.colls.get_mut(name) {
                            c.room = room;
                        }
                    }
                    None => s.room = room,
                }
            }
        }
    }

    /// Entries and bytes held.
    pub(crate) fn size(&self) -> (u64, u64) {
        let s = self.state.lock();
        (s.entries, s.bytes)
    }

    /// The `cache` object of `nexus_stats`.
    pub(crate) fn stats(&self) -> serde_json::Value {
        let m = &self.metrics;
        let (entries, bytes) = self.size();
        let cfg = self.config();
        let g = Metrics::get;
        serde_json::json!({
            "enabled": cfg.capacity > 0,
            "capacity": cfg.capacity,
            "capacity_bytes": cfg.bytes,
            "eviction": cfg.mode.as_str(),
            "max_samples": cfg.max_samples,
            "batch_size": cfg.batch_size,
            "admission": cfg.admission.as_str(),
            "entries": entries,
            "bytes": bytes,
            "hits": g(&m.hits),
            "misses": g(&m.misses),
            "expired_reads": g(&m.expired_reads),
            "evictions": {"ttl": g(&m.evictions_ttl), "lru": g(&m.evictions_lru)},
            "eviction_cycles": g(&m.eviction_cycles),
            "admissions_refused": g(&m.admissions_refused),
            "admissions_declined": g(&m.admissions_declined),
            "fills": g(&m.fills),
            "dropped": g(&m.dropped),
            "get_latency_ns": {
                "p50": m.percentile(0.50),
                "p90": m.percentile(0.90),
                "p99": m.percentile(0.99),
            },
        })
    }
}
