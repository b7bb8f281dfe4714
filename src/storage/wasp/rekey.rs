//! Rekey of an encrypted file (`nexus_rekey`): every page rewritten in place under a new
//! random data key, the key slots rewrapped for the same recipients, crash-safely through a
//! rollback journal (`docs/FORMAT.md`, "Rekey").
//!
//! 1. With the write lock of every process and the database to this process alone (no other
//!    process can open it until the rekey ends), a checkpoint folds the log into the pages.
//! 2. The journal `NAME.db-rekey`: a copy of the file as it is, written under a temporary
//!    name, synced, then renamed; from the rename on, the journal is complete.
//! 3. Every page is opened under the old key and sealed under the new one in place; the key
//!    slots (both copies) get the new key wrapped for each recipient; the file is synced.
//! 4. The journal is removed (the directory synced): the rekey is done. What the log held
//!    from before the checkpoint (sealed under the old key) is overwritten with zeros.
//!
//! An opener that finds a journal (the rekey died between 2 and 4) copies it back over the
//! file first ([`restore_interrupted`]): the file is then as it was before the rekey, under
//! its old key. While the pages are rewritten, this process's other connections read on: the
//! sealer opens pages under either key, and a read that meets a page half rewritten is read
//! again (`Pager::read_opened`).

use super::follow::WriteLock;
use super::keyslots::KeySlots;
use super::shared::Shared;
use crate::crypto::seal::{DataKey, Domain};
use crate::error::{Error, Result};
use crate::storage::fault::Faults;
use crate::storage::file::{self, DbFile, PageFile};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The rollback journal of a rekey of the database at `db`.
pub(crate) fn journal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-rekey");
    PathBuf::from(s)
}

const JOURNAL_TAG: &str = "nexus-rekey";
/// Bytes copied at a time between the file and its journal.
const CHUNK: usize = 1 << 20;

/// Rewrites the encrypted database of `shared` under a new data key (see the module).
pub(crate) fn run(shared: &Arc<Shared>, busy: Duration) -> Result<()> {
    let Some(sealer) = shared.pager.sealer().cloned() else {
        return Err(Error::invalid(format!(
            "{} is not encrypted: there is no data key to change",
            shared.pager.what()
        )));
    };
    shared.check_writable()?;
    let deadline = Instant::now() + busy;
    let _lock = WriteLock::acquire(shared, busy)?;
    while !shared.shm.try_alone() {
        if Instant::now() >= deadline {
            return Err(Error::Busy(format!(
                "{}: a rekey rewrites every page, so it needs the database to this process alone; other processes have it open (waited {} ms)",
                shared.pager.what(),
                busy.as_millis()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let r = {
        let _slots = shared.slots_change.write();
        rekey_alone(shared, &sealer)
    };
    shared.shm.share_open();
    r
}

fn rekey_alone(shared: &Arc<Shared>, sealer: &Arc<crate::crypto::seal::Sealer>) -> Result<()> {
    super::checkpoint::run(shared, false)?;
    if let Some(e) = shared.fault() {
        return Err(e);
    }
    let pager = &shared.pager;
    let db_path = pager.file.path().to_owned();
    let journal = journal_path(&db_path);
    write_journal(&pager.file, &db_path, &journal, &shared.faults)?;
    let slots = KeySlots::of_file(pager)?;
    // The recipients the new key is wrapped for are the ones a holder of the key put there.
    slots.check(sealer)?;
    let key = DataKey::random();
    let next = slots.rekeyed(&key)?;
    sealer.begin_rekey(&key);
    let r = rewrite(shared, sealer, &next);
    if let Err(e) = r {
        // The journal puts the file back as it was: now, or at the next open if this fails.
        let back = restore(&pager.file, &journal);
        sealer.end_rekey(false);
        return match back {
            Ok(()) => Err(e),
            Err(b) => {
                shared.poison(&b);
                Err(e)
            }
        };
    }
    std::fs::remove_file(&journal).map_err(|e| Error::io(&journal, e))?;
    file::sync_dir(&journal)?;
    sealer.end_rekey(true);
    // The log's records from before the checkpoint are sealed under the old key: gone. The
    // rekey is done whatever happens here (a failure leaves only bytes no replay reads).
    if let Some(log) = &shared.log {
        let mut log = log.lock();
        let end = log.file.end();
        if let Err(e) = log.file.erase(end, u64::MAX) {
            ::log::warn!("rekey: the log's old records were not erased: {e}");
        }
    }
    Ok(())
}

/// Copies the file to a temporary beside it, syncs it, and names it `journal`.
fn write_journal(db: &PageFile, db_path: &Path, journal: &Path, faults: &Faults) -> Result<()> {
    file::remove_stale_temps(db_path, JOURNAL_TAG);
    let tmp = file::temp_sibling(db_path, JOURNAL_TAG, "")?;
    let r = (|| {
        let out = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        let out = PageFile::new(out, &tmp, faults.clone());
        copy(db, &out)?;
        out.sync()?;
        drop(out);
        file::rename_durable(&tmp, journal)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Copies every byte of `from` over `to` (same offsets) and cuts `to` to its length.
fn copy(from: &PageFile, to: &PageFile) -> Result<()> {
    let len = from.len()?;
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    while at < len {
        let n = usize::try_from(len - at).unwrap_or(CHUNK).min(CHUNK);
        from.read_at(at, &mut buf[..n])?;
        to.write_at(at, &buf[..n])?;
        at += n as u64;
    }
    to.truncate(len)
}

/// Every page opened under the old key and sealed in place under the new one (the sealer
/// seals under the new key and opens under both), then the new key slots; synced.
fn rewrite(
    shared: &Shared,
    sealer: &crate::crypto::seal::Sealer,
    next: &[KeySlots; 2],
) -> Result<()> {
    let pager = &shared.pager;
    let phys = pager.phys();
    let size = pager.geo.page_size;
    let free = {
        let s = shared.space.lock();
        let mut free = s.free.clone();
        free.extend(s.pending.iter().flat_map(|(_, p)| p.iter().copied()));
        (free, s.page_count)
    };
    let pages = pager.file.len()? / phys as u64;
    for id in 1..pages {
        let mut buf = pager.read_physical(id)?;
        let (data, trailer) = buf.split_at_mut(size);
        if !sealer.open(Domain::Page, [id, 0, 0], data, trailer) {
            // Only a page no tree uses may fail: a manifest slot not in force, a free page
            // or one past the end a crash left half written. It is zeroed (nothing of the
            // old key stays in it).
            let unused = id <= 2 || id >= free.1 || free.0.contains(&id);
            if !unused {
                return Err(Error::Corrupt(format!(
                    "{}: page {id} fails its authentication; the key was not changed (run check)",
                    pager.what()
                )));
            }
            pager.file.write_at(id * phys as u64, &vec![0u8; phys])?;
            continue;
        }
        let sealed = super::pager::sealed_page(Some(sealer), id, &buf[..size], phys);
        pager.file.write_at(id * phys as u64, &sealed)?;
    }
    for k in next {
        // The sealer seals under the new key: the slots' mac is the new key's.
        k.write(&pager.file, phys, sealer)?;
    }
    pager.file.sync()
}

/// Copies the journal back over the file and syncs it.
fn restore(db: &PageFile, journal: &Path) -> Result<()> {
    let f = std::fs::File::open(journal).map_err(|e| Error::io(journal, e))?;
    let j = PageFile::new(f, journal, Faults::default());
    copy(&j, db)?;
    db.sync()
}

/// At open, before anything reads the file: a journal beside it means a rekey died before
/// it finished; the journal is copied back (the file is as before the rekey, under its old
/// key) and removed. Only the process that has the database alone gets here.
pub(crate) fn restore_interrupted(
    db: &DbFile,
    path: &Path,
    read_only: bool,
    faults: &Faults,
) -> Result<()> {
    file::remove_stale_temps(path, JOURNAL_TAG);
    let journal = journal_path(path);
    if journal.symlink_metadata().is_err() {
        return Ok(());
    }
    if read_only {
        return Err(Error::ReadOnly(format!(
            "{}: a change of its encryption key was interrupted; open it once read-write to restore it from {}",
            path.display(),
            journal.display()
        )));
    }
    restore(&db.page_file(faults.clone())?, &journal)?;
    std::fs::remove_file(&journal).map_err(|e| Error::io(&journal, e))?;
    file::sync_dir(&journal)?;
    ::log::warn!(
        "{}: an interrupted change of the encryption key was rolled back",
        path.display()
    );
    Ok(())
}
