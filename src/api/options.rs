//! The option types of the Rust API: [`OpenOptions`] (the C ABI's `options_json` of
//! `nexus_open`), [`UpdateOptions`] / [`UpdateResult`] and [`FindOneAndOptions`].

use crate::cache::CacheConfig;
use crate::document::DocumentId;
use crate::engine::sweeper::SweeperConfig;
use crate::error::{Error, Result};
use crate::options::OptionReader;
use crate::storage::{LogRecovery, StorageEngine, SyncMode};
use bson::Document as BsonDocument;

/// Default time a writer waits for another connection's write lock.
pub(crate) const DEFAULT_BUSY_TIMEOUT_MS: u64 = 5_000;

/// Options for [`Database::open`](crate::Database::open); the C ABI's `options_json` maps onto this one to one.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Create the file when missing (default true).
    pub create: bool,
    /// Open for reading only (default false).
    pub read_only: bool,
    /// Durability of each commit (default [`SyncMode::Full`]).
    pub sync: SyncMode,
    /// How long a writer waits for the write lock held by another connection, and how long
    /// open waits for another process's file lock (default 5000 ms).
    pub busy_timeout_ms: u64,
    /// Document cache settings (`cache_capacity`, `cache_bytes`, `eviction`,
    /// `max_samples`, `batch_size`); engine-wide, so they apply to every connection of the
    /// database in this process. `None`: the defaults, or what the engine already has.
    pub cache: Option<CacheConfig>,
    /// Expiry sweeper settings (`sweeper_interval_ms` (0: paused), `sweeper_sample`,
    /// `sweeper_threshold_pct`, `sweeper_budget_ms`); engine-wide like `cache`.
    pub sweeper: Option<SweeperConfig>,
    /// Page cache budget in bytes of the `wasp` engine (default 32 MiB); dirty pages not yet
    /// checkpointed count against half of it. Engine-wide; the first connection sets it.
    pub page_cache_bytes: Option<u64>,
    /// Storage engine for a new file (`None`: [`StorageEngine::DEFAULT`], WASP). An existing
    /// file always opens with the engine that wrote it, whatever this says.
    pub storage: Option<StorageEngine>,
    /// Page size of a new `wasp` file: 8192 (default) or 16384. Fixed at creation.
    pub page_size: Option<u32>,
    /// `wasp`: checkpoint when the records logged since the last checkpoint pass this many
    /// bytes (default 64 MiB); the recycled log file keeps about the size this allows.
    pub checkpoint_log_bytes: Option<u64>,
    /// `wasp`: checkpoint at the next commit once the last one is this old (default 30000).
    pub checkpoint_interval_ms: Option<u64>,
    /// `wasp`: readers search pages through a memory map of the file (default false: every
    /// page is read with `pread`). Faster lookups on files larger than the page cache, at a
    /// price: the file shortened by another process, or a disk read error under a mapped
    /// page, stops the process with `SIGBUS` instead of returning an error.
    pub mmap: Option<bool>,
    /// `wasp`: the last connection's close compacts the file when its free pages (left by
    /// copy-on-write updates and deletes) are at least an eighth of it and between 1 and
    /// 64 MiB (default true; false: only `nexus_compact` gives space back).
    pub compact_on_close: Option<bool>,
    /// What open does with a log that is damaged (intact commits after a bad record), missing
    /// while the database file says commits may be in it, or written for another database:
    /// [`LogRecovery::Strict`] (default) refuses with [`Error::Corrupt`] and changes
    /// nothing; [`LogRecovery::DiscardDamaged`] (`"recover": "discard-damaged-log"`) keeps
    /// what the file and the intact start of the log hold and reports what it dropped in
    /// `nexus_stats` (`storage.recovery`). A torn tail (the residue of a crash during an
    /// append, never acknowledged) is cut either way.
    pub recover: LogRecovery,
    /// `wasp`: the private key (PKCS#8 PEM, P-256) of an encrypted database. A new file opened
    /// with it is created encrypted to its public key; an encrypted file opens only with the
    /// key of one of its recipients (`NEXUS_CRYPTO` otherwise), a plain one refuses a key
    /// (`NEXUS_INVALID_ARGUMENT`). See `docs/FORMAT.md`, "Encryption".
    pub encryption_key: Option<crate::crypto::PrivatePem>,
    /// `wasp`: the AEAD of a new encrypted file (`"encryption_cipher"`: `"aes-256-gcm"` or
    /// `"xchacha20-poly1305"`). `None`: AES-256-GCM where the processor has AES instructions,
    /// XChaCha20-Poly1305 elsewhere. An existing file keeps the cipher it was created with.
    pub encryption_cipher: Option<crate::crypto::Cipher>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            create: true,
            read_only: false,
            sync: SyncMode::Full,
            busy_timeout_ms: DEFAULT_BUSY_TIMEOUT_MS,
            cache: None,
            sweeper: None,
            page_cache_bytes: None,
            storage: None,
            page_size: None,
            checkpoint_log_bytes: None,
            checkpoint_interval_ms: None,
            mmap: None,
            compact_on_close: None,
            recover: LogRecovery::Strict,
            encryption_key: None,
            encryption_cipher: None,
        }
    }
}

impl OpenOptions {
    /// Parses the JSON options object of `nexus_open` (`None`/empty: defaults). Unknown keys
    /// are [`Error::InvalidArgument`] naming the key.
    pub fn from_json(text: Option<&str>) -> Result<Self> {
        let mut r = OptionReader::parse(text, "open options")?;
        let mut o = Self::default();
        if let Some(v) = r.bool("create")? {
            o.create = v;
        }
        if let Some(v) = r.bool("read_only")? {
            o.read_only = v;
        }
        if let Some(v) = r.string("sync")? {
            o.sync = SyncMode::parse(&v)?;
        }
        if let Some(v) = r.u64("busy_timeout_ms")? {
            o.busy_timeout_ms = v;
        }
        o.encryption_key = r
            .string("encryption_key")?
            .map(crate::crypto::PrivatePem::new);
        o.encryption_cipher = r
            .string("encryption_cipher")?
            .map(|c| crate::crypto::Cipher::parse(&c))
            .transpose()?;
        let mut cache = CacheConfig::default();
        if cache.read(&mut r)? {
            o.cache = Some(cache);
        }
        let mut sweeper = SweeperConfig::default();
        if sweeper.read(&mut r)? {
            o.sweeper = Some(sweeper);
        }
        o.page_cache_bytes = r.u64("page_cache_bytes")?;
        if let Some(b) = o.page_cache_bytes {
            if b < 64 * 1024 {
                return Err(Error::invalid(
                    "open options: 'page_cache_bytes' must be at least 65536",
                ));
            }
        }
        // Checked as the u64 given: a value past u32::MAX must not wrap into an accepted size.
        o.page_size = match r.u64("page_size")? {
            None => None,
            Some(v) => Some(
                u32::try_from(v)
                    .ok()
                    .filter(|&ps| ps == 8192 || ps == 16384)
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "open options: 'page_size' must be 8192 or 16384, not {v}"
                        ))
                    })?,
            ),
        };
        o.checkpoint_log_bytes = r.u64("checkpoint_log_bytes")?;
        o.checkpoint_interval_ms = r.u64("checkpoint_interval_ms")?;
        o.mmap = r.bool("mmap")?;
        o.compact_on_close = r.bool("compact_on_close")?;
        if let Some(v) = r.string("recover")? {
            o.recover = LogRecovery::parse(&v)?;
        }
        match r.string("storage")?.as_deref() {
            None => {}
            Some(name) => match StorageEngine::parse(name) {
                Some(engine) => o.storage = Some(engine),
                None => {
                    return Err(Error::invalid(format!(
                        "open options: 'storage' must be \"wasp\" or \"memlog\", not \"{name}\""
                    )))
                }
            },
        }
        r.finish()?;
        Ok(o)
    }
}

/// How `update` treats its matches.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpdateOptions {
    /// Update every match (else the first in the collection's order).
    pub multi: bool,
    /// Insert a document built from the filter's equalities and the update when nothing matches.
    pub upsert: bool,
}

/// What `update` did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateResult {
    /// Documents that matched the filter.
    pub matched: u64,
    /// Documents whose content changed.
    pub modified: u64,
    /// The `_id` of the upserted document, if one was inserted.
    pub upserted_id: Option<DocumentId>,
}

/// Options of `find_one_and_update` / `find_one_and_delete`.
#[derive(Debug, Clone, Default)]
pub struct FindOneAndOptions {
    /// Which match to take when several do.
    pub sort: Option<BsonDocument>,
    /// Projection of the returned document.
    pub projection: Option<BsonDocument>,
    /// Insert when nothing matches (update only).
    pub upsert: bool,
    /// Return the document after the update instead of before (update only).
    pub return_after: bool,
    /// The conditions of the update's `$[<identifier>]` paths (`arrayFilters`; update only).
    pub array_filters: Option<Vec<BsonDocument>>,
}

impl FindOneAndOptions {
    /// Parses `{"sort", "projection", "upsert", "return": "before"|"after", "arrayFilters"}`.
    pub fn from_json(text: Option<&str>) -> Result<Self> {
        let mut r = OptionReader::parse(text, "find_one_and options")?;
        let o = Self {
            sort: r.document("sort")?,
            projection: r.document("projection")?,
            upsert: r.bool("upsert")?.unwrap_or(false),
            return_after: match r.string("return")?.as_deref() {
                None | Some("before") => false,
                Some("after") => true,
                Some(other) => {
                    return Err(Error::invalid(format!(
                        "option 'return' must be \"before\" or \"after\", not \"{other}\""
                    )))
                }
            },
            array_filters: r
                .take("arrayFilters")
                .map(super::writes::array_filters_of)
                .transpose()?,
        };
        r.finish()?;
        Ok(o)
    }
}

/// A bound must be at least 1 when given.
pub(crate) fn positive(v: Option<u64>, key: &str) -> Result<Option<u64>> {
    match v {
        Some(0) => Err(Error::invalid(format!(
            "collection option '{key}' must be at least 1"
        ))),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_8192_or_16384_and_nothing_that_wraps_to_them() {
        let page_size = |v: u64| OpenOptions::from_json(Some(&format!(r#"{{"page_size": {v}}}"#)));
        assert_eq!(page_size(8192).unwrap().page_size, Some(8192));
        assert_eq!(page_size(16384).unwrap().page_size, Some(16384));
        // 2^32 + 8192 once became 8192 by truncation before the check.
        for bad in [4096, (1 << 32) + 8192, (1 << 32) + 16384, u64::MAX] {
            let e = page_size(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e}");
            assert!(e.to_string().contains("page_size"), "{e}");
        }
    }
}

/// Options of [`Collection::aggregate`](crate::Collection::aggregate) (the C ABI's
/// `options_json` of `nexus_aggregate`), with MongoDB's names.
///
/// ```
/// use nexus::AggregateOptions;
/// let o = AggregateOptions::from_json(Some(r#"{"let": {"min": 5}, "batchSize": 100}"#)).unwrap();
/// assert_eq!(o.let_vars.unwrap().get_i32("min").unwrap(), 5);
/// assert!(o.allow_disk_use);
/// assert!(AggregateOptions::from_json(Some(r#"{"bogus": 1}"#)).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct AggregateOptions {
    /// Variables every stage can read as `$$name` (MongoDB's `let`).
    pub let_vars: Option<BsonDocument>,
    /// Whether a blocking stage (`$sort`, `$group`, `$bucket`, `$sortByCount`, `$sample`,
    /// `$facet`'s input, the results) past the memory limit spills to temporary files
    /// (default true, as MongoDB 6.0+'s `allowDiskUseByDefault`); false: it fails with
    /// [`Error::InvalidArgument`] in MongoDB's words.
    pub allow_disk_use: bool,
    /// The memory limit of one blocking stage in bytes (estimated as BSON); `None`: 100 MiB,
    /// MongoDB's. A NexusLite extension (`maxMemoryBytes`), mostly for tests.
    pub max_memory_bytes: Option<u64>,
    /// Accepted for compatibility (the cursor holds all results already).
    pub batch_size: Option<u64>,
    /// Return the plan instead of the results: one document naming the stages served by the
    /// find planner (`$cursor`, with the find's explain) and those run in memory (`stages`).
    pub explain: bool,
}

impl Default for AggregateOptions {
    fn default() -> Self {
        Self {
            let_vars: None,
            allow_disk_use: true,
            max_memory_bytes: None,
            batch_size: None,
            explain: false,
        }
    }
}

impl AggregateOptions {
    /// Parses `{"let", "allowDiskUse", "maxMemoryBytes", "batchSize", "explain",
    /// "comment"}` (`None` or empty: the defaults). Unknown options are refused with
    /// [`Error::InvalidArgument`] naming them, as is a `maxMemoryBytes` of 0.
    pub fn from_json(text: Option<&str>) -> Result<Self> {
        let mut r = OptionReader::parse(text, "aggregate options")?;
        let o = Self {
            let_vars: r.document("let")?,
            allow_disk_use: r.bool("allowDiskUse")?.unwrap_or(true),
            max_memory_bytes: r.u64("maxMemoryBytes")?,
            batch_size: r.u64("batchSize")?,
            explain: r.bool("explain")?.unwrap_or(false),
        };
        if o.max_memory_bytes == Some(0) {
            return Err(Error::invalid(
                "aggregate options: maxMemoryBytes must be a positive number of bytes",
            ));
        }
        // MongoDB accepts a comment of any type; it has no effect here.
        let _ = r.take("comment");
        r.finish()?;
        Ok(o)
    }
}
