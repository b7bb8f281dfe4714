//! A write transaction ([`WaspTxn`]): changes applied to private copies of the touched
//! trees, the log record encoded op by op as they are applied, and the commit that appends
//! it (or, for a transaction too large to log, checkpoints instead) and publishes the new
//! state.

use super::catalog::TableMeta;
use super::clustered;
use super::follow::WriteLock;
use super::page::Val;
use super::pager::Pager;
use super::shared::{Pin, Shared, State};
use super::view::{state_reads, View};
use super::{btree, checkpoint, set_log_quiet};
use crate::error::{Error, Result};
use crate::storage::log::{LoggedTxn, Op};
use crate::storage::{log, Bytes, ReadView, SyncMode, WriteTxn};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The largest log record a transaction builds before it switches to committing by
/// checkpoint (see [`WaspTxn::check_record_size`]).
const MAX_LOGGED_RECORD: u64 = 2 << 30;

/// The first format version whose files may hold clustered tables.
pub(super) const CLUSTERED_FORMAT: u32 = 3;

/// Largest log record buffer a commit hands on to the next write transaction.
pub(super) const KEPT_RECORD_BYTES: usize = 4 << 20;

/// Applies one logged change to `state` (commits and log replay share this). `arena` keeps
/// what a put into a clustered table stores.
pub(super) fn apply(
    pager: &Pager,
    state: &mut State,
    op: &Op,
    freed: &mut Vec<u64>,
    dirtied: &mut u64,
    arena: &mut Arena,
) -> Result<bool> {
    let mut tree = btree::Tree {
        pager,
        freed,
        dirtied,
    };
    match op {
        Op::Create {
            name,
            options,
            clustered,
        } => {
            if state.tables.contains_key(name) {
                return Err(Error::DuplicateKey(format!(
                    "collection '{name}' already exists"
                )));
            }
            state
                .tables
                .insert(name.clone(), TableMeta::new(options.clone(), *clustered));
        }
        Op::Drop { name } => {
            let t = state
                .tables
                .remove(name)
                .ok_or_else(|| Error::NoCollection(name.clone()))?;
            if let Some(root) = &t.root {
                tree.free_tree(root)?;
            }
            if let Some(ids) = t.ids_root() {
                tree.free_tree(ids)?;
            }
        }
        Op::Rename { from, to } => {
            if state.tables.contains_key(to) {
                return Err(Error::DuplicateKey(format!(
                    "collection '{to}' already exists"
                )));
            }
            let t = state
                .tables
                .remove(from)
                .ok_or_else(|| Error::NoCollection(from.clone()))?;
            state.tables.insert(to.clone(), t);
        }
        Op::Put { table, key, value } => {
            let put = Put::Share(key.clone(), value.clone());
            apply_put(&mut tree, arena, state, table, put, false)?;
        }
        Op::AdvanceRid { table, next_rid } => {
            let t = state
                .tables
                .get_mut(table)
                .ok_or_else(|| Error::NoCollection(table.clone()))?;
            match &mut t.clustered {
                Some(c) if c.next_rid < *next_rid => c.next_rid = *next_rid,
                _ => return Ok(false),
            }
        }
        Op::Delete { table, key } => {
            let t = state
                .tables
                .get_mut(table)
                .ok_or_else(|| Error::NoCollection(table.clone()))?;
            let old = if t.clustered.is_some() {
                clustered::delete(&mut tree, t, key)?
                    .map(|o| clustered::value_len(o.len(), key.len()))
            } else {
                tree.delete(&mut t.root, key)?.map(|o| o.len())
            };
            match old {
                Some(value_len) => {
                    // Saturating: totals read from a damaged (yet checksummed) catalog entry
                    // can be below what the tree holds; a statistic must not overflow (a panic
                    // in debug builds, a wrapped count in release). Found by the db_file fuzz
                    // target; `check` compares the totals with the tree.
                    t.bytes = t.bytes.saturating_sub((key.len() + value_len) as u64);
                    t.count = t.count.saturating_sub(1);
                }
                None => return Ok(false),
            }
        }
    }
    Ok(true)
}

/// Applies one logged transaction (replay at open, or another process's commits): an op
/// that does not apply makes the log `Corrupt`, naming `log_what` and the record.
pub(super) fn apply_logged(
    pager: &Pager,
    state: &mut State,
    (lsn, ops): &LoggedTxn,
    freed: &mut Vec<u64>,
    dirtied: &mut u64,
    log_what: &str,
) -> Result<()> {
    let mut arena = Arena::default();
    for op in ops {
        apply(pager, state, op, freed, dirtied, &mut arena).map_err(|e| match e {
            Error::Corrupt(m) => Error::Corrupt(m),
            other => Error::Corrupt(format!("{log_what}: record {lsn} does not apply: {other}")),
        })?;
    }
    Ok(())
}

/// The key and value of one put, and how a key-ordered table's tree keeps them (a
/// clustered table stores a copy of both in one entry, see [`clustered`]).
pub(super) enum Put<'a> {
    /// Borrowed: copied into the arena.
    Copy(&'a [u8], &'a [u8]),
    /// Owned: small ones copied into the arena ([`Arena::keep`]).
    Keep(Bytes, Bytes),
    /// Owned and kept as they are.
    Share(Bytes, Bytes),
}

impl Put<'_> {
    fn parts(&self) -> (&[u8], &[u8]) {
        match self {
            Put::Copy(k, v) => (k, v),
            Put::Keep(k, v) | Put::Share(k, v) => (k, v),
        }
    }
}

/// Applies a put (see [`apply`]). `absent`: the caller knows the key is not in the table.
pub(super) fn apply_put(
    tree: &mut btree::Tree<'_>,
    arena: &mut Arena,
    state: &mut State,
    table: &str,
    put: Put<'_>,
    absent: bool,
) -> Result<()> {
    let (key_len, value_len) = {
        let (k, v) = put.parts();
        (k.len(), v.len())
    };
    let max_key = tree.pager.geo.max_key();
    if key_len > max_key {
        return Err(Error::invalid(format!(
            "key of {key_len} bytes is longer than the {max_key} bytes this page size allows",
        )));
    }
    let t = state
        .tables
        .get_mut(table)
        .ok_or_else(|| Error::NoCollection(table.to_owned()))?;
    let old_value_len = if t.clustered.is_some() {
        let (k, v) = put.parts();
        let entry = clustered::entry(arena, k, v);
        let key = clustered::entry_key(&entry);
        clustered::put(tree, arena, t, key, entry, absent)?
            .map(|o| clustered::value_len(o.len(), key_len))
    } else {
        let (key, value) = match put {
            Put::Copy(k, v) => (arena.copy(k), arena.copy(v)),
            Put::Keep(k, v) => (arena.keep(k), arena.keep(v)),
            Put::Share(k, v) => (k, v),
        };
        tree.put(&mut t.root, key, Val::Data(value))?
            .map(|o| o.len())
    };
    t.bytes += (key_len + value_len) as u64;
    match old_value_len {
        Some(o) => t.bytes -= (key_len + o) as u64,
        None => t.count += 1,
    }
    Ok(())
}

/// Commits a transaction whose changes were not logged (see [`WaspTxn::check_record_size`])
/// by publishing its state and checkpointing it: once the manifest names the new pages
/// (synced), the transaction is durable; until then, recovery finds the database as it was
/// before it, as for a commit whose log record did not reach the disk. The caller holds the
/// writer gate. Any failure poisons the database: the state is visible to new readers but
/// not durable.
pub(super) fn commit_by_checkpoint(
    shared: &Shared,
    mut state: State,
    freed: Vec<u64>,
    dirtied: u64,
) -> Result<()> {
    {
        let mut space = shared.space.lock();
        let mut cur = shared.state.write();
        state.epoch = cur.epoch + 1;
        state.gen = cur.gen;
        space.freed_by_commit(freed);
        space.dirty_nodes += dirtied;
        *cur = Arc::new(state);
        shared.visibility.lock().show_all();
    }
    // The transaction takes an LSN of its own (no record carries it): the checkpoint's LSN
    // then differs from the last one, so its log is never mistaken for the previous log by
    // another process (see `follow`).
    if let Some(l) = &shared.log {
        l.lock().next_lsn += 1;
    }
    shared.commits.fetch_add(1, Ordering::Relaxed);
    checkpoint::run(shared, false).inspect_err(|e| shared.poison(e))
}

/// Keys and values put by write transactions, copied back to back into shared buffers of
/// [`ARENA_CHUNK`] bytes: the tree's entries are slices of them. The dirty tree a checkpoint
/// has written is then freed a buffer at a time instead of two allocations per entry (which
/// cost the writer about a tenth of an insert, and left the heap fragmented), and the
/// callers' own buffers are freed right away, while still in the allocator's caches.
#[derive(Default)]
pub(super) struct Arena(bytes::BytesMut);

/// Size of an [`Arena`] buffer; keys and values above an eighth of it keep their own
/// allocation.
pub(super) const ARENA_CHUNK: usize = 64 << 10;

impl Arena {
    /// A key or value: copied unless it is large. (A slice of a buffer the caller shares,
    /// which may be a page it read, is copied too: keeping the slice would keep the whole
    /// buffer; [`WriteTxn::put_shared`] is for buffers meant to be kept.)
    pub(super) fn keep(&mut self, b: Bytes) -> Bytes {
        if b.len() > ARENA_CHUNK / 8 {
            return b;
        }
        self.copy(&b)
    }

    /// Borrowed bytes: copied into the arena, or into their own buffer when large.
    pub(super) fn copy(&mut self, b: &[u8]) -> Bytes {
        self.concat(&[b])
    }

    /// The parts back to back, in the arena (in their own buffer when large).
    pub(super) fn concat(&mut self, parts: &[&[u8]]) -> Bytes {
        let len = parts.iter().map(|p| p.len()).sum::<usize>();
        if len > ARENA_CHUNK / 8 {
            return Bytes::from(parts.concat());
        }
        if self.0.capacity() - self.0.len() < len {
            self.0 = bytes::BytesMut::with_capacity(ARENA_CHUNK);
        }
        for p in parts {
            self.0.extend_from_slice(p);
        }
        self.0.split().freeze()
    }
}

/// The write transaction of WASP: a private state (copy-on-write nodes) plus its log record,
/// encoded op by op as they are applied.
pub(crate) struct WaspTxn {
    pub(super) shared: Arc<Shared>,
    pub(super) state: State,
    /// The commit record so far ([`log::begin_record`]), and how many ops it holds.
    pub(super) record: Vec<u8>,
    pub(super) n_ops: u32,
    /// The record outgrew the log's checkpoint trigger and is no longer kept: the commit
    /// writes the transaction's pages instead ([`commit_by_checkpoint`]).
    pub(super) unlogged: bool,
    /// Where the keys and values put by this transaction are kept.
    pub(super) arena: Arena,
    pub(super) freed: Vec<u64>,
    pub(super) dirtied: u64,
    pub(super) _pin: Pin,
    pub(super) _guard: WriteLock,
}

impl WaspTxn {
    pub(super) fn record(&mut self, op: Op) -> Result<bool> {
        if let Some(e) = self.shared.fault() {
            return Err(e);
        }
        let changed = apply(
            &self.shared.pager,
            &mut self.state,
            &op,
            &mut self.freed,
            &mut self.dirtied,
            &mut self.arena,
        )
        .inspect_err(|e| self.note(e))?;
        if changed {
            if !self.unlogged {
                log::encode_op(&mut self.record, &op);
            }
            self.n_ops += 1;
            self.check_record_size();
        }
        Ok(changed)
    }

    /// Logs a put (unless the transaction stopped logging); returns the record's length
    /// before it, for `apply_logged_put` to cut back to on failure.
    pub(super) fn log_put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<usize> {
        if let Some(e) = self.shared.fault() {
            return Err(e);
        }
        let logged = self.record.len();
        if !self.unlogged {
            log::encode_put(&mut self.record, table, key, value);
        }
        Ok(logged)
    }

    pub(super) fn apply_logged_put(
        &mut self,
        table: &str,
        put: Put<'_>,
        absent: bool,
        logged: usize,
    ) -> Result<()> {
        let mut tree = btree::Tree {
            pager: &self.shared.pager,
            freed: &mut self.freed,
            dirtied: &mut self.dirtied,
        };
        match apply_put(
            &mut tree,
            &mut self.arena,
            &mut self.state,
            table,
            put,
            absent,
        ) {
            Ok(()) => {
                self.n_ops += 1;
                self.check_record_size();
                Ok(())
            }
            Err(e) => {
                if !self.unlogged {
                    self.record.truncate(logged);
                }
                self.note(&e);
                Err(e)
            }
        }
    }

    /// Stops logging once the record is past the log size that triggers a checkpoint: the
    /// commit would be followed by a checkpoint anyway, so it checkpoints instead of first
    /// writing (and encoding) every change a second time into the log.
    pub(super) fn check_record_size(&mut self) {
        // Whatever `checkpoint_log_bytes` says, a record stays far below the 4 GiB its u32
        // length field can describe (one op adds at most a document, 16 MiB, and names).
        let limit = self.shared.cfg.checkpoint_log_bytes.min(MAX_LOGGED_RECORD);
        if !self.unlogged && u64::try_from(self.record.len()).unwrap_or(u64::MAX) > limit {
            self.stop_logging();
        }
    }

    /// From here on the transaction commits by checkpoint ([`commit_by_checkpoint`]).
    pub(super) fn stop_logging(&mut self) {
        self.unlogged = true;
        self.record = Vec::new();
    }

    /// A read error met while changing the tree is the engine's to report.
    pub(super) fn note(&self, e: &Error) {
        if matches!(e, Error::Corrupt(_) | Error::Io { .. }) {
            self.shared.note_read_error(e);
        }
    }
}

impl ReadView for WaspTxn {
    state_reads!(true);
    fn fault(&self) -> Option<Error> {
        self.shared.fault()
    }
}

impl WriteTxn for WaspTxn {
    fn create_table(&mut self, name: &str, options: &str) -> Result<()> {
        self.record(Op::Create {
            name: name.to_owned(),
            options: options.to_owned(),
            clustered: false,
        })
        .map(drop)
    }

    /// Clustered in files of format version 3 and later; key-ordered in older ones, which
    /// the builds that wrote them must still read.
    fn create_clustered(&mut self, name: &str, options: &str) -> Result<()> {
        self.record(Op::Create {
            name: name.to_owned(),
            options: options.to_owned(),
            clustered: self.shared.format_version >= CLUSTERED_FORMAT,
        })
        .map(drop)
    }

    fn advance_record_id(&mut self, table: &str, next_rid: u64) -> Result<()> {
        self.record(Op::AdvanceRid {
            table: table.to_owned(),
            next_rid,
        })
        .map(drop)
    }

    fn drop_table(&mut self, name: &str) -> Result<()> {
        self.record(Op::Drop {
            name: name.to_owned(),
        })
        .map(drop)
    }

    fn rename_table(&mut self, from: &str, to: &str) -> Result<()> {
        self.record(Op::Rename {
            from: from.to_owned(),
            to: to.to_owned(),
        })
        .map(drop)
    }

    /// A put is logged from the borrowed parts and its key and value move into the tree
    /// (no [`Op`] is built: that would copy the table name and share the two buffers).
    fn put(&mut self, table: &str, key: Bytes, value: Bytes) -> Result<()> {
        let logged = self.log_put(table, &key, &value)?;
        self.apply_logged_put(table, Put::Keep(key, value), false, logged)
    }

    /// As `put`, the tree's copies made straight from the caller's bytes.
    fn put_absent(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let logged = self.log_put(table, key, value)?;
        self.apply_logged_put(table, Put::Copy(key, value), true, logged)
    }

    /// As `put`, the key and value kept as the slices they are (no arena copy).
    fn put_shared(&mut self, table: &str, key: Bytes, value: Bytes) -> Result<()> {
        let logged = self.log_put(table, &key, &value)?;
        self.apply_logged_put(table, Put::Share(key, value), false, logged)
    }

    fn delete(&mut self, table: &str, key: &[u8]) -> Result<bool> {
        if !self.state.tables.contains_key(table) {
            return Err(Error::NoCollection(table.to_owned()));
        }
        self.record(Op::Delete {
            table: table.to_owned(),
            key: Bytes::copy_from_slice(key),
        })
    }

    fn expect_large(&mut self) {
        if self.shared.log.is_some() {
            self.stop_logging();
        }
    }

    fn commit(self: Box<Self>, sync: SyncMode) -> Result<()> {
        let WaspTxn {
            shared,
            mut state,
            mut record,
            n_ops,
            unlogged,
            arena,
            freed,
            dirtied,
            _pin,
            _guard,
        } = *self;
        drop(_pin);
        if n_ops == 0 {
            return Ok(());
        }
        shared.check_writable()?;
        let Some(log_mutex) = &shared.log else {
            return Err(Error::ReadOnly("the database is read-only".into()));
        };
        *shared.spare_arena.lock() = arena;
        if unlogged {
            return commit_by_checkpoint(&shared, state, freed, dirtied);
        }
        // The first commit after a quiet manifest: say durably that the log is in use before
        // it holds anything (still holding the writer gate).
        set_log_quiet(&shared, false)?;
        let (lsn, wants_checkpoint, held) = {
            let mut log = log_mutex.lock();
            let lsn = log.next_lsn;
            let lap = log.header.lap;
            if let Some(sealer) = shared.pager.sealer() {
                log::seal_ops(&mut record, lsn, n_ops, lap, sealer);
            }
            log::seal_record(&mut record, lsn, n_ops, lap);
            // A recycled log: the end mark goes out with the record, in the same write.
            let mark = if lap == 0 { 0 } else { log::END_MARK };
            record.resize(record.len() + mark, 0);
            if let Err(e) = log.file.append_marked(&record, mark) {
                shared.poison(&e);
                return Err(e);
            }
            log.next_lsn += 1;
            log.records_since += 1;
            shared.group.written(lsn);
            let mut space = shared.space.lock();
            let mut cur = shared.state.write();
            state.epoch = cur.epoch + 1;
            // The trees this transaction started from are the published ones; only a quiet
            // flip (same trees, next generation) can have moved the generation since.
            state.gen = cur.gen;
            space.freed_by_commit(freed);
            space.dirty_nodes += dirtied;
            let dirty_bytes = space.dirty_nodes * shared.pager.geo.page_size as u64;
            let new = Arc::new(state);
            // Under sync=full readers see the commit once it is durable (Visibility); the
            // next writer builds on it at once.
            let held = if sync == SyncMode::Full {
                Some((shared.visibility.lock().hold(&cur), Arc::clone(&new)))
            } else {
                shared.visibility.lock().show_all();
                None
            };
            *cur = new;
            drop(cur);
            drop(space);
            // Other processes may read the record from here on; this process has it.
            let end = log.file.end();
            shared.applied_end.store(end, Ordering::SeqCst);
            shared.shm.publish_commit(end, lsn);
            let grown = log.file.end() - log.base_len;
            let wants = grown > shared.cfg.checkpoint_log_bytes
                || dirty_bytes > (shared.cfg.cache_bytes / 2).max(1 << 20)
                || shared.last_checkpoint.lock().elapsed() > shared.cfg.checkpoint_interval;
            (lsn, wants, held)
        };
        if record.capacity() <= KEPT_RECORD_BYTES {
            *shared.spare_record.lock() = record;
        }
        shared.commits.fetch_add(1, Ordering::Relaxed);
        if wants_checkpoint {
            // Still holding the gate: no other writer can interleave. A failure poisons.
            if let Err(e) = checkpoint::run(&shared, false) {
                ::log::warn!("automatic checkpoint failed: {e}");
            }
        }
        drop(_guard);
        shared.group.finish_commit(
            lsn,
            sync,
            || Arc::clone(&log_mutex.lock().sync),
            |e| shared.poison(e),
        )?;
        if let Some((ticket, state)) = held {
            shared.visibility.lock().show(ticket, &state);
        }
        Ok(())
    }

    fn as_read(&self) -> &dyn ReadView {
        self
    }

    fn snapshot(&self) -> Arc<dyn ReadView> {
        Arc::new(View {
            state: Arc::new(self.state.clone()),
            shared: Arc::clone(&self.shared),
            committed: false,
            _pin: Some(Pin::new(&self.shared, self.state.gen)),
            refused: None,
        })
    }
}
