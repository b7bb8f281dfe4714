//! Checkpoint ([`run`]) and compaction ([`compact`]): fold the in-memory (dirty) tree nodes
//! into `NAME.db` and shorten the log. The caller holds the writer gate, so no commit runs
//! meanwhile; readers continue on their snapshots.
//!
//! Steps of [`run`], in fsync order (also in `docs/FORMAT.md`):
//! 1. Release pending frees that no durable tree and no reader needs into the free set.
//! 2. Write every dirty node (children first) and every large value (overflow chain) to pages
//!    taken from the free set, lowest first, or appended. No page of the durable tree is
//!    touched, so a crash here leaves the old manifest valid.
//! 3. Write a fresh catalog tree and the free list (free set + all pending frees + the old
//!    catalog and free-list pages).
//! 4. `fdatasync(NAME.db)`.
//! 5. Write the manifest (generation + 1, checkpoint LSN = last logged LSN) into the other
//!    slot; `fdatasync(NAME.db)`. This is the commit point of the checkpoint.
//! 6. Compaction only: `ftruncate` the file to the new page count.
//! 7. Reset the log: restart the recycled log in place (header slot of the next lap with
//!    `base_lsn` = checkpoint LSN, end mark, fdatasync; a version-1 log is replaced through
//!    `NAME.wasp.tmp` and a rename). A crash before this replays only records above the
//!    checkpoint LSN. Compaction alone: the log is also cut after the empty lap's end mark.
//! 8. Publish the state with on-disk roots (and the generation to other processes); pages
//!    freed up to now become releasable by the next checkpoint.
//!
//! Any failure poisons the engine (the in-memory free set no longer matches the disk).

use super::btree::{self, Tree};
use super::manifest::Manifest;
use super::page::{Node, Ptr, Val};
use super::{note_checkpoint, publish_generation, reset_log, Shared, Space, State};
use crate::error::{Error, Result};
use crate::storage::Bytes;
use std::sync::Arc;
use std::time::Instant;

/// Hands out page numbers during a checkpoint.
struct Alloc<'a> {
    space: &'a mut Space,
}

impl Alloc<'_> {
    fn page(&mut self) -> u64 {
        match self.space.free.pop_first() {
            Some(id) => id,
            None => {
                let id = self.space.page_count;
                self.space.page_count += 1;
                id
            }
        }
    }
}

/// Writes the dirty nodes below `ptr`; returns the on-disk pointer.
fn flush(shared: &Shared, alloc: &mut Alloc<'_>, ptr: &Ptr) -> Result<Ptr> {
    let Ptr::Mem(node) = ptr else {
        return Ok(ptr.clone());
    };
    let pager = &shared.pager;
    let geo = pager.geo;
    let written = match &**node {
        // The common leaf (every value inline) is written as it is, without a copy.
        Node::Leaf { keys, vals, .. }
            if keys
                .iter()
                .zip(vals)
                .all(|(k, v)| !matches!(v, Val::Data(b) if !geo.inline(k.len(), b.len()))) =>
        {
            None
        }
        Node::Leaf { keys, vals, size } => {
            let mut out = Vec::with_capacity(vals.len());
            for (k, v) in keys.iter().zip(vals) {
                out.push(match v {
                    Val::Data(b) if !geo.inline(k.len(), b.len()) => {
                        // The leaf keeps an overflow value's length as a u32.
                        let len = u32::try_from(b.len()).map_err(|_| {
                            Error::invalid(format!(
                                "a value of {} bytes is too large to store",
                                b.len()
                            ))
                        })?;
                        let pages: Vec<u64> = (0..pager.overflow_count(b.len()))
                            .map(|_| alloc.page())
                            .collect();
                        pages.iter().for_each(|&p| pager.forget(p));
                        pager.write_overflow(&pages, b)?;
                        Val::Overflow {
                            page: pages[0],
                            len,
                        }
                    }
                    other => other.clone(),
                });
            }
            // A large value takes 8 bytes in the leaf before and after it moves to its pages.
            Some(Node::Leaf {
                keys: keys.clone(),
                vals: out,
                size: *size,
            })
        }
        // Every value of an image is in its page already.
        Node::Image(_) => None,
        Node::Branch { keys, children } => {
            let mut out = Vec::with_capacity(children.len());
            for c in children.iter() {
                out.push(flush(shared, alloc, c)?);
            }
            Some(Node::Branch {
                keys: keys.clone(),
                children: out.into(),
            })
        }
    };
    let id = alloc.page();
    pager.write_node(id, written.as_ref().unwrap_or(node))?;
    Ok(Ptr::Disk(id))
}

fn disk_id(p: Option<&Ptr>) -> u64 {
    match p {
        Some(Ptr::Disk(id)) => *id,
        _ => 0,
    }
}

/// How far a checkpoint got, to decide what a failure means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Only free pages were written: the durable manifest is untouched.
    Pages,
    /// A sync was attempted or the manifest written: the disk state is unknown.
    Synced,
}

/// One checkpoint (see the module docs). `shrink` also gives free pages at the end of the
/// file back to the file system. The caller holds the writer gate.
///
/// A failed page write (step 2 or 3) changes nothing durable: the free-space bookkeeping is
/// restored and the engine keeps working on the old checkpoint and the log. A failed sync or
/// any failure from step 4 on poisons the engine (writes refused until reopen).
pub(crate) fn run(shared: &Shared, shrink: bool) -> Result<()> {
    run_with(shared, shrink, false)
}

/// The checkpoint of a clean close: like [`run`], and its manifest says the log is quiet (no
/// commit follows before another manifest says otherwise).
pub(crate) fn run_final(shared: &Shared) -> Result<()> {
    run_with(shared, false, true)
}

fn run_with(shared: &Shared, shrink: bool, quiet: bool) -> Result<()> {
    // The file is cut only while no other process has it open: another process's memory
    // map of the cut pages would fault (SIGBUS) there.
    let alone = shrink && shared.shm.try_alone();
    let r = run_guarded(shared, alone, quiet);
    if alone {
        shared.shm.share_open();
    }
    r
}

/// [`run_inner`], with the free-space bookkeeping restored when it fails before the manifest
/// (the engine poisoned when it fails after). `shrink`: the caller made sure no other process
/// has the file open.
fn run_guarded(shared: &Shared, shrink: bool, quiet: bool) -> Result<()> {
    let saved = {
        let s = shared.space.lock();
        (
            s.free.clone(),
            s.pending.clone(),
            s.page_count,
            s.meta_pages.clone(),
        )
    };
    let mut stage = Stage::Pages;
    let r = run_inner(shared, shrink, quiet, &mut stage);
    if let Err(e) = &r {
        if stage == Stage::Pages {
            let mut s = shared.space.lock();
            (s.free, s.pending, s.page_count, s.meta_pages) = saved;
            ::log::warn!("checkpoint failed before touching the manifest: {e}");
        } else {
            shared.poison(e);
        }
    }
    r
}

fn run_inner(shared: &Shared, shrink: bool, quiet: bool, stage: &mut Stage) -> Result<()> {
    let started = Instant::now();
    let pager = &shared.pager;
    let geo = pager.geo;
    let state = Arc::clone(&shared.state.read());
    let ckpt_lsn = reset_log(shared, true)?;
    let min_reader = shared.min_reader_anywhere();
    let mut space_guard = shared.space.lock();
    let space = &mut *space_guard;
    // 1. release
    space.release(min_reader);
    // 2. dirty nodes and large values
    let mut tables = state.tables.clone();
    {
        let mut alloc = Alloc { space: &mut *space };
        let names: Vec<String> = tables.keys().cloned().collect();
        for name in names {
            if let Some(t) = tables.get_mut(&name) {
                for tree in t.trees_mut() {
                    if let Some(root) = tree {
                        *tree = Some(flush(shared, &mut alloc, root)?);
                    }
                }
            }
        }
    }
    // 3. catalog tree (rebuilt) and free list
    // The old catalog and free-list pages leave the trees with the new generation (a backup
    // that pinned the current one is still copying them).
    let old_meta = std::mem::take(&mut space.meta_pages);
    let next_gen = space.manifest.generation + 1;
    space.queue(next_gen, old_meta);
    let mut catalog: Option<Ptr> = None;
    {
        let mut freed = Vec::new();
        let mut dirtied = 0;
        let mut tree = Tree {
            pager,
            freed: &mut freed,
            dirtied: &mut dirtied,
        };
        for (name, t) in tables.iter() {
            let value = t.encode(disk_id(t.root.as_ref()), disk_id(t.ids_root()));
            let value: Bytes = Bytes::from(value);
            tree.put(
                &mut catalog,
                Bytes::copy_from_slice(name.as_bytes()),
                Val::Data(value),
            )?;
        }
    }
    let mut meta_pages = Vec::new();
    let catalog_root = match &catalog {
        Some(c) => {
            let mut alloc = Alloc { space: &mut *space };
            let root = flush(shared, &mut alloc, c)?;
            btree::for_each_disk_page(pager, &root, &mut |id| meta_pages.push(id))?;
            disk_id(Some(&root))
        }
        None => 0,
    };
    let per = geo.freelist_per_page();
    let list_len = |s: &Space| {
        s.free.len().div_ceil(per)
            + s.pending
                .iter()
                .map(|(_, p)| p.len().div_ceil(per))
                .sum::<usize>()
    };
    let n_list_pages = list_len(space);
    let list_pages: Vec<u64> = {
        let mut alloc = Alloc { space: &mut *space };
        (0..n_list_pages).map(|_| alloc.page()).collect()
    };
    if shrink {
        while space.page_count > super::pager::FIRST_DATA_PAGE
            && space.free.remove(&(space.page_count - 1))
        {
            space.page_count -= 1;
        }
    }
    // Each list page holds pages of one tag: 0 (free for every reader) or the low 32 bits
    // of the generation from which on no tree reaches them.
    let mut groups: Vec<(u32, Vec<u64>)> = vec![(0, space.free.iter().copied().collect())];
    for (tag, p) in &space.pending {
        groups.push((super::pager::tag_of(*tag), p.clone()));
    }
    let listed: usize = groups.iter().map(|(_, p)| p.len()).sum();
    list_pages.iter().for_each(|&p| pager.forget(p));
    let freelist_head = pager.write_freelist(&list_pages, &groups)?;
    meta_pages.extend(&list_pages);
    // 4. sync pages
    *stage = Stage::Synced;
    pager.file.sync()?;
    // 5. manifest flip
    let m = Manifest {
        generation: space.manifest.generation + 1,
        ckpt_lsn,
        catalog_root,
        freelist_head,
        page_count: space.page_count,
        free_pages: listed as u64,
        page_size: u32::try_from(pager.phys())
            .map_err(|_| Error::Internal(format!("page size {} does not fit u32", pager.phys())))?,
        log_salt: space.manifest.log_salt,
        log_quiet: quiet,
    };
    pager.write_raw(m.slot(), &m.encode(geo.page_size))?;
    pager.file.sync()?;
    space.manifest = m;
    // 6. shrink
    if shrink {
        pager
            .file
            .truncate(space.page_count * pager.phys() as u64)?;
    }
    space.meta_pages = meta_pages;
    space.dirty_nodes = 0;
    // Nothing is released against the new manifest here: that happens at the start of the
    // next checkpoint, whose scan of the reader slots comes after this generation is
    // published (a reader of the old generation may be storing its pin right now, and
    // checks it against the published generation; see docs/FORMAT.md, "Page reuse").
    drop(space_guard);
    // 7. log reset, and other processes told
    reset_log(shared, false)?;
    if shrink {
        // Compaction, no other process open: the recycled log gives back the space of its
        // earlier laps too (cut after the new lap's end mark).
        shrink_log(shared)?;
    }
    publish_generation(shared, m.generation, Some(ckpt_lsn));
    // 8. publish on-disk roots (same content, same epoch)
    {
        let mut cur = shared.state.write();
        *cur = Arc::new(State {
            epoch: state.epoch,
            gen: m.generation,
            tables,
        });
        shared.visibility.lock().show_all();
    }
    note_checkpoint(shared, started);
    Ok(())
}

/// Cuts the log, whose current lap was just restarted (empty), after that lap's end mark:
/// compaction, and the last process's close. Nothing when the lap holds records.
pub(crate) fn shrink_log(shared: &Shared) -> Result<()> {
    let Some(log_mutex) = &shared.log else {
        return Ok(());
    };
    let mut log = log_mutex.lock();
    if log.header.lap == 0 || log.file.end() != log.base_len {
        return Ok(());
    }
    let keep = log.base_len + crate::storage::log::END_MARK as u64;
    log.file.truncate(keep)
}

/// Rewrites the file smaller: moves every page that lies above the live page count down by
/// copying the paths to it (copy-on-write), checkpoints until nothing moves, then truncates.
/// The caller holds the writer gate. Memory: the moved pages are held as dirty nodes until
/// the checkpoint writes them.
pub(crate) fn compact(shared: &Arc<Shared>) -> Result<()> {
    compact_with(shared, &|s| run(s, true))
}

/// Compaction by the last process's close ([`compact`]): the caller holds the writer gate and
/// the open lock exclusively, which it keeps throughout, and every manifest written says the
/// log is quiet (the relocations are not logged, and nothing else commits).
pub(crate) fn compact_alone(shared: &Arc<Shared>) -> Result<()> {
    compact_with(shared, &|s| run_guarded(s, true, true))
}

/// Whether the last close should compact: the free pages (free now, or once no snapshot
/// needs them) are at least an eighth of the file and at least 1 MiB, and at most
/// [`CLOSE_COMPACT_MAX_BYTES`] (the pages moved and the trees walked stay small enough for a
/// close; past that, `nexus_compact`).
pub(crate) fn worth_compacting_at_close(shared: &Shared) -> bool {
    let s = shared.space.lock();
    let spare = (s.free.len() + s.pending_pages()) as u64;
    let bytes = spare * shared.pager.phys() as u64;
    spare * 8 >= s.page_count && (1 << 20..=CLOSE_COMPACT_MAX_BYTES).contains(&bytes)
}

/// The most free space the last close gives back by compacting (see
/// [`worth_compacting_at_close`]).
pub(crate) const CLOSE_COMPACT_MAX_BYTES: u64 = 64 << 20;

fn compact_with(shared: &Arc<Shared>, checkpoint: &dyn Fn(&Shared) -> Result<()>) -> Result<()> {
    let r = compact_inner(shared, checkpoint);
    if let Err(e) = &r {
        shared.poison(e);
    }
    r
}

fn compact_inner(shared: &Arc<Shared>, checkpoint: &dyn Fn(&Shared) -> Result<()>) -> Result<()> {
    // Any failure below poisons: the relocation commits are not in the log.
    for _round in 0..6 {
        checkpoint(shared)?;
        checkpoint(shared)?;
        let (used, count) = {
            let s = shared.space.lock();
            let count = usize::try_from(s.page_count).unwrap_or(usize::MAX);
            (count - s.free.len() - s.pending_pages(), s.page_count)
        };
        // Target: live pages packed from the start, with a little slack for the free list.
        let limit = (used as u64 + 8).max(super::pager::FIRST_DATA_PAGE);
        if count <= limit {
            break;
        }
        let mut state = State::clone(&shared.state.read());
        let mut freed = Vec::new();
        let mut dirtied = 0;
        let mut moved = 0u64;
        let names: Vec<String> = state.tables.keys().cloned().collect();
        for name in names {
            let Some(t) = state.tables.get_mut(&name) else {
                continue;
            };
            for root in t.trees_mut().flatten() {
                let mut tree = Tree {
                    pager: &shared.pager,
                    freed: &mut freed,
                    dirtied: &mut dirtied,
                };
                moved += relocate(&mut tree, root, limit)?;
            }
        }
        if moved == 0 {
            break;
        }
        let mut space = shared.space.lock();
        let mut cur = shared.state.write();
        state.epoch = cur.epoch + 1;
        space.freed_by_commit(freed);
        space.dirty_nodes += dirtied;
        *cur = Arc::new(state);
        shared.visibility.lock().show_all();
    }
    checkpoint(shared)?;
    checkpoint(shared)
}

/// Copies into memory every node at or above page `limit` (and the path to it), and loads
/// large values whose chain starts there. Returns how many were moved.
fn relocate(tree: &mut Tree<'_>, ptr: &mut Ptr, limit: u64) -> Result<u64> {
    let below = btree::load(tree.pager, ptr)?;
    let mut moved = 0;
    let high_here = matches!(ptr, Ptr::Disk(id) if *id >= limit);
    let needs = high_here
        || match &*below {
            Node::Leaf { vals, .. } => vals.iter().any(|v| high_value(tree, v, limit)),
            Node::Image(img) => (0..img.len()).any(|i| high_value(tree, &img.val(i), limit)),
            Node::Branch { children, .. } => children.iter().any(|c| subtree_high(tree, c, limit)),
        };
    drop(below);
    if !needs {
        return Ok(0);
    }
    let geo = tree.pager.geo;
    let node = tree.make_mut(ptr)?;
    moved += 1;
    node.decode_in_place(geo);
    match node {
        Node::Image(_) => unreachable!("decoded above"),
        Node::Leaf { vals, .. } => {
            for v in vals.iter_mut() {
                if high_value(tree, v, limit) {
                    let data = btree::resolve(tree.pager, v)?;
                    tree.free_val(v)?;
                    *v = Val::Data(data);
                    moved += 1;
                }
            }
        }
        Node::Branch { children, .. } => {
            for c in children.iter_mut() {
                moved += relocate(tree, c, limit)?;
            }
        }
    }
    Ok(moved)
}

fn high_value(tree: &Tree<'_>, v: &Val, limit: u64) -> bool {
    match v {
        Val::Overflow { page, len } => {
            let mut pages = Vec::new();
            tree.pager
                .read_overflow(*page, *len, Some(&mut pages))
                .map(|_| pages.iter().any(|&p| p >= limit))
                .unwrap_or(true)
        }
        Val::Data(_) => false,
    }
}

fn subtree_high(tree: &Tree<'_>, ptr: &Ptr, limit: u64) -> bool {
    let mut high = false;
    let _ = btree::for_each_disk_page(tree.pager, ptr, &mut |id| high |= id >= limit);
    high
}
