//! Maintenance on a live WASP database: the integrity check ([`fsck`]) and the consistent
//! online copy ([`backup`]). Both read pages straight from the file (not the page cache),
//! through the pager beneath.
//!
//! fsck verifies, for the durable manifest: every reachable page's checksum and page number;
//! key order inside each node and the fences its parent's separators impose; every overflow
//! chain's length; the catalog's document counts and byte totals against the trees; and the
//! free-space accounting: every page from 3 to the page count is used exactly once (tree,
//! overflow, catalog, free list) or listed free exactly once; none is lost.
//!
//! Backup: under the writer gate, checkpoint and pin the current epoch (so no page of that
//! checkpoint can be reused), release the gate, then copy pages `0..page_count` while writers
//! continue, write the manifest into the copy, sync it, and give it an empty log.

use super::follow::WriteLock;
use super::manifest::Manifest;
use super::page::{Node, Ptr, Val};
use super::pager::FIRST_DATA_PAGE;
use super::{Pin, Shared, TableMeta};
use crate::error::{Error, Result};
use crate::storage::file::{self, PageFile};
use crate::storage::log::{log_path_for, write_new_log};
use crate::storage::Bytes;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

struct Fsck<'a> {
    shared: &'a Shared,
    owner: Vec<u8>,
    errors: Vec<String>,
    pages_tree: u64,
    pages_overflow: u64,
}

const OWN_TREE: u8 = 1;
const OWN_OVERFLOW: u8 = 2;
const OWN_FREELIST: u8 = 3;
const OWN_FREE: u8 = 4;

impl Fsck<'_> {
    fn mark(&mut self, id: u64, what: u8, context: &str) -> bool {
        let slot = usize::try_from(id).ok().filter(|_| id >= FIRST_DATA_PAGE);
        let Some(o) = slot.and_then(|i| self.owner.get_mut(i)) else {
            self.errors
                .push(format!("{context}: page {id} is outside the data pages"));
            return false;
        };
        if *o != 0 {
            self.errors.push(format!(
                "{context}: page {id} is used twice (kinds {} and {what})",
                *o
            ));
            return false;
        }
        *o = what;
        true
    }

    /// Walks a tree: returns (entries, key+value bytes); keys must lie in `[lo, hi)`.
    fn tree(
        &mut self,
        id: u64,
        lo: Option<&Bytes>,
        hi: Option<&Bytes>,
        ctx: &str,
        entries: &mut Vec<(Bytes, Bytes)>,
        keep: bool,
    ) -> (u64, u64) {
        if !self.mark(id, OWN_TREE, ctx) {
            return (0, 0);
        }
        self.pages_tree += 1;
        let node = match self.shared.pager.read_node_uncached(id) {
            Ok(mut n) => {
                n.decode_in_place(self.shared.pager.geo);
                n
            }
            Err(e) => {
                self.errors.push(format!("{ctx}: {e}"));
                return (0, 0);
            }
        };
        let keys = match &node {
            Node::Leaf { keys, .. } => keys,
            Node::Branch { keys, .. } => &**keys,
            Node::Image(_) => unreachable!("decoded above"),
        };
        for w in keys.windows(2) {
            if w[0] >= w[1] {
                self.errors
                    .push(format!("{ctx}: page {id}: keys out of order"));
                break;
            }
        }
        if let (Some(first), Some(lo)) = (keys.first(), lo) {
            if first < lo {
                self.errors
                    .push(format!("{ctx}: page {id}: key below its lower fence"));
            }
        }
        if let (Some(last), Some(hi)) = (keys.last(), hi) {
            if last >= hi {
                self.errors
                    .push(format!("{ctx}: page {id}: key at or above its upper fence"));
            }
        }
        match node {
            Node::Image(_) => unreachable!("decoded above"),
            Node::Leaf { keys, vals, .. } => {
                let mut bytes = 0;
                for (k, v) in keys.iter().zip(&vals) {
                    bytes += (k.len() + v.len()) as u64;
                    let data = match v {
                        Val::Data(b) => Some(Bytes::clone(b)),
                        Val::Overflow { page, len } => {
                            let mut pages = Vec::new();
                            match self
                                .shared
                                .pager
                                .read_overflow(*page, *len, Some(&mut pages))
                            {
                                Ok(b) => {
                                    for p in pages {
                                        self.pages_overflow += 1;
                                        self.mark(p, OWN_OVERFLOW, ctx);
                                    }
                                    Some(b)
                                }
                                Err(e) => {
                                    self.errors.push(format!("{ctx}: {e}"));
                                    None
                                }
                            }
                        }
                    };
                    if keep {
                        if let Some(d) = data {
                            entries.push((Bytes::clone(k), d));
                        }
                    }
                }
                (keys.len() as u64, bytes)
            }
            Node::Branch { keys, children } => {
                let (mut n, mut b) = (0, 0);
                for (i, c) in children.iter().enumerate() {
                    let Ptr::Disk(cid) = c else { continue };
                    let clo = if i == 0 { lo } else { Some(&keys[i - 1]) };
                    let chi = if i == keys.len() { hi } else { Some(&keys[i]) };
                    let (cn, cb) = self.tree(*cid, clo, chi, ctx, entries, keep);
                    n += cn;
                    b += cb;
                }
                (n, b)
            }
        }
    }
}

/// Checks the durable image of the database (the caller checkpointed it and holds the
/// writer gate). Returns the report; `"ok": false` lists what is damaged.
pub(crate) fn fsck(shared: &Shared) -> Result<serde_json::Value> {
    let m: Manifest = shared.space.lock().manifest;
    let file_len = shared.pager.file.len().unwrap_or(0);
    // The walk keeps a byte per page the manifest claims: a claim the file cannot hold is
    // reported without walking, before allocating for it (a damaged page count of 2^60 was a
    // capacity-overflow panic; fuzz target `db_file`).
    let phys = shared.pager.phys() as u64;
    if m.page_count.checked_mul(phys).is_none_or(|b| b > file_len) {
        return Ok(serde_json::json!({
            "ok": false,
            "backend": "wasp",
            "manifest_generation": m.generation,
            "page_size": shared.pager.phys(),
            "pages_total": m.page_count,
            "pages_tree": 0,
            "pages_overflow": 0,
            "pages_free": 0,
            "pages_lost": 0,
            "collections": {},
            "errors": [format!(
                "the file is {file_len} bytes, shorter than its {} pages",
                m.page_count
            )],
        }));
    }
    let mut f = Fsck {
        shared,
        owner: vec![
            0u8;
            usize::try_from(m.page_count).map_err(|_| Error::Corrupt(format!(
                "manifest page count {} does not fit this host's address space",
                m.page_count
            )))?
        ],
        errors: Vec::new(),
        pages_tree: 0,
        pages_overflow: 0,
    };
    let mut collections = serde_json::Map::new();
    if m.catalog_root != 0 {
        let mut entries = Vec::new();
        f.tree(m.catalog_root, None, None, "catalog", &mut entries, true);
        for (name, value) in entries {
            let name = String::from_utf8_lossy(&name).into_owned();
            let meta = match TableMeta::decode(&value, "catalog") {
                Ok(t) => t,
                Err(e) => {
                    f.errors.push(format!("catalog entry '{name}': {e}"));
                    continue;
                }
            };
            let mut walk = |root: Option<&Ptr>, what: &str| match root {
                Some(Ptr::Disk(id)) => f.tree(*id, None, None, what, &mut Vec::new(), false),
                _ => (0, 0),
            };
            let (n, mut b) = walk(meta.root.as_ref(), &format!("collection '{name}'"));
            if let Some(c) = &meta.clustered {
                // Entries are a record id (8 bytes) and the key's length (2), key and value.
                b = b.saturating_sub(10 * n);
                let what = format!("collection '{name}' (key map)");
                let (ids, _) = walk(c.ids.as_ref(), &what);
                if ids != n {
                    f.errors.push(format!(
                        "collection '{name}': the key map holds {ids} keys, the table {n} entries"
                    ));
                } else {
                    // Every entry's key maps to it (with equal counts, a bijection).
                    match super::clustered::check_map(&shared.pager, &meta, c, 8) {
                        Ok(problems) => f.errors.extend(
                            problems
                                .into_iter()
                                .map(|p| format!("collection '{name}': {p}")),
                        ),
                        Err(e) => f.errors.push(format!("collection '{name}': {e}")),
                    }
                }
            }
            if n != meta.count || b != meta.bytes {
                f.errors.push(format!(
                    "collection '{name}': catalog says {} documents / {} bytes, the tree holds {n} / {b}",
                    meta.count, meta.bytes
                ));
            }
            collections.insert(name, serde_json::json!({"documents": n, "bytes": b}));
        }
    }
    let mut free = 0u64;
    match shared.pager.read_freelist(m.freelist_head, m.page_count) {
        Ok((ids, own)) => {
            for p in own {
                f.mark(p, OWN_FREELIST, "free list");
            }
            for (_, p) in ids {
                free += 1;
                f.mark(p, OWN_FREE, "free list entry");
            }
        }
        Err(e) => f.errors.push(format!("free list: {e}")),
    }
    let lost: Vec<u64> = (FIRST_DATA_PAGE..m.page_count)
        .filter(|&p| usize::try_from(p).is_ok_and(|i| f.owner[i] == 0))
        .collect();
    if !lost.is_empty() {
        f.errors.push(format!(
            "{} pages are neither used nor free (lost), first {}",
            lost.len(),
            lost[0]
        ));
    }
    Ok(serde_json::json!({
        "ok": f.errors.is_empty(),
        "backend": "wasp",
        "manifest_generation": m.generation,
        "page_size": shared.pager.phys(),
        "pages_total": m.page_count,
        "pages_tree": f.pages_tree,
        "pages_overflow": f.pages_overflow,
        "pages_free": free,
        "pages_lost": lost.len(),
        "collections": collections,
        "errors": f.errors,
    }))
}

/// Consistent online copy of the database to `dest` (`dest` and its `.wasp` log must not
/// exist). Writers are held off only for the checkpoint at the start.
///
/// The copy is written under a temporary name beside `dest` ([`file::temp_sibling`]),
/// complete with its pages folded (a read-only source's log records are replayed into the
/// copy and checkpointed there), synced, and only then linked to `dest` (never replacing a
/// file that appeared meanwhile) with the directory synced: `dest` holds a complete copy or
/// nothing. The copy's manifest says its log is quiet, so it opens even if the killed run
/// never wrote `dest`'s log; its empty log is put in place last. Temporaries of runs that
/// were killed are removed by the next backup to the same name.
pub(crate) fn backup(shared: &Arc<Shared>, dest: &Path, busy: Duration) -> Result<()> {
    publish_copy(dest, BACKUP_TAG, |tmp| write_copy(shared, tmp, busy))
}

/// Has `write` make a complete, synced copy (with its log) under a temporary name beside
/// `dest` (`tag` names the temporaries), then gives it the name `dest` (refused when `dest`
/// or its log exists, before anything is written) and its log `dest`'s log; the
/// temporaries are removed whatever happens. Used by [`backup`] and `copy::copy_to`.
pub(crate) fn publish_copy(
    dest: &Path,
    tag: &str,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let dest_log = log_path_for(dest);
    for p in [dest, dest_log.as_path()] {
        if p.symlink_metadata().is_ok() {
            return Err(Error::invalid(format!(
                "backup destination {} already exists",
                p.display()
            )));
        }
    }
    file::remove_stale_temps(dest, tag);
    let tmp = file::temp_sibling(dest, tag, ".db")?;
    let tmp_log = log_path_for(&tmp);
    let r = write(&tmp).and_then(|()| {
        file::link_new(&tmp, dest)?;
        // `dest` is complete from here; a quiet copy opens without its log, so a failure to
        // place the log loses nothing.
        if let Err(e) = file::link_new(&tmp_log, &dest_log) {
            ::log::warn!(
                "backup {}: its log was not put in place: {e}",
                dest.display()
            );
        }
        Ok(())
    });
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_file(&tmp_log);
    let _ = std::fs::remove_file(crate::storage::log::tmp_path(&tmp_log));
    let _ = std::fs::remove_file(super::shm::shm_path_for(&tmp_log));
    r // link_new synced the directory
}

/// What names the temporaries of [`backup`].
const BACKUP_TAG: &str = "nexus-backup";

/// Writes the complete copy to `tmp` (a new file) with a quiet manifest, and its empty log.
fn write_copy(shared: &Arc<Shared>, tmp: &Path, busy: Duration) -> Result<()> {
    let (m, _pin, checkpointed, _held) = {
        let lock = WriteLock::acquire(shared, busy)?;
        let writable = shared.check_writable().is_ok();
        if writable {
            super::checkpoint::run(shared, false)?;
        }
        let gen = shared.state.read().gen;
        let pin = Pin::new(shared, gen);
        // A read-only source cannot checkpoint: it copies the log too, so no other process
        // may append to it or replace it until the copy is done.
        let held = (!writable).then_some(lock);
        (shared.space.lock().manifest, pin, writable, held)
    };
    if let Some(e) = shared.fault() {
        return Err(e);
    }
    // Pages are copied as the file holds them (sealed, when encrypted: the copy has the same
    // identity, key slots and data key); only the manifest is written anew.
    let ps = shared.pager.phys();
    let faults = crate::storage::fault::Faults::default();
    let out = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| Error::io(tmp, e))?;
    let out = PageFile::new(out, tmp, faults.clone());
    // After a checkpoint the copy's log is empty; a read-only source's log may hold commits
    // past the checkpoint, which are copied and replayed below.
    let copy_manifest = Manifest {
        log_quiet: checkpointed,
        ..m
    };
    for id in 0..m.page_count {
        let buf = if id == 1 || id == 2 {
            if id == m.slot() {
                let page = copy_manifest.encode(shared.pager.geo.page_size);
                shared.pager.physical(id, &page)
            } else {
                vec![0u8; ps]
            }
        } else {
            shared.pager.read_physical(id)?
        };
        out.write_at(id * ps as u64, &buf)?;
    }
    out.sync()?;
    drop(out);
    let tmp_log = log_path_for(tmp);
    if !checkpointed {
        // Read-only: nobody appends to the source log; its records above the checkpoint
        // LSN are part of the database. Copy it beside the copy, open the pair (replaying
        // it) and close it (a final checkpoint folds it into the pages, quiet manifest).
        let src = log_path_for(shared.pager.file.path());
        let mut bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
        // What lies past the published end is no commit of the current lap (a writer died
        // writing it, or an earlier lap of a recycled log).
        bytes.truncate(usize::try_from(shared.shm.log_end()).unwrap_or(usize::MAX));
        std::fs::write(&tmp_log, &bytes).map_err(|e| Error::io(&tmp_log, e))?;
        let cfg = super::WaspConfig {
            encryption: shared
                .pager
                .sealer()
                .map(|s| super::keyslots::Unlock::Sealer(Arc::clone(s))),
            ..Default::default()
        };
        let copy = super::WaspStorage::open(tmp, false, false, busy, faults, cfg)?;
        let r = crate::storage::Storage::close(&copy);
        drop(copy);
        let _ = std::fs::remove_file(super::shm::shm_path_for(&tmp_log));
        r
    } else {
        let header = crate::storage::log::LogHeader::new(m.ckpt_lsn, m.log_salt, 1);
        write_new_log(&tmp_log, header, std::iter::empty(), &faults).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::super::shared::State;
    use super::super::WaspStorage;
    use crate::storage::{Bytes, Storage, SyncMode};
    use std::sync::Arc;
    use std::time::Duration;

    /// fsck checks a clustered collection's map against its entries: two collections of
    /// the same size whose maps are swapped (counts agree, every page is sound) are reported.
    #[test]
    fn a_map_that_does_not_match_its_entries_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let wait = Duration::from_secs(5);
        let s = WaspStorage::open(
            &dir.path().join("m.db"),
            true,
            false,
            wait,
            Default::default(),
            Default::default(),
        )
        .unwrap();
        let mut t = s.begin_write(wait).unwrap();
        for (name, prefix) in [("a", "k"), ("b", "x")] {
            t.create_clustered(name, "{}").unwrap();
            for i in 0..300 {
                let key = Bytes::from(format!("{prefix}{i:04}"));
                t.put(name, key, Bytes::from(vec![1u8; 40])).unwrap();
            }
        }
        t.commit(SyncMode::Off).unwrap();
        let report = s.check(wait).unwrap();
        assert_eq!(report["ok"], serde_json::Value::Bool(true), "{report}");
        {
            let mut state = State::clone(&s.shared.state.read());
            let a = state.tables.get("a").unwrap().clustered.clone().unwrap();
            let b = state.tables.get("b").unwrap().clustered.clone().unwrap();
            state.tables.get_mut("a").unwrap().clustered = Some(b);
            state.tables.get_mut("b").unwrap().clustered = Some(a);
            *s.shared.state.write() = Arc::new(state);
            s.shared.visibility.lock().show_all();
        }
        let report = s.check(wait).unwrap();
        assert_eq!(report["ok"], serde_json::Value::Bool(false), "{report}");
        let errors = report["errors"].to_string();
        assert!(errors.contains("has no key in the map"), "{errors}");
        assert!(
            errors.contains("collection 'a'") && errors.contains("collection 'b'"),
            "{errors}"
        );
    }
}
