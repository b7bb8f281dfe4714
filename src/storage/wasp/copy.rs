//! A logical copy of a database into a new WASP file under other encryption
//! (`nexus_backup_with`'s `encrypt_to` and `decrypt`): a plain copy of an encrypted database,
//! or an encrypted one (a fresh data key, for the recipients given) of any database.
//!
//! Pages cannot be copied as they are: an encrypted page carries 40 bytes of nonce and tag,
//! so its tree nodes hold less than a plain page's. The copy is made entry by entry instead,
//! from one snapshot of the source (writers go on meanwhile): every table created as it is
//! (clustered or in key order, with its options), every entry put with the record id it has
//! in the source (index entries carry record ids), in transactions of a few MiB, then a final
//! checkpoint. It is written under a temporary name and linked to `dest` only when complete
//! and synced, as `nexus_backup`'s copy is: `dest` holds a whole copy or nothing.

use super::keyslots::Unlock;
use super::{WaspConfig, WaspStorage};
use crate::error::Result;
use crate::storage::fault::Faults;
use crate::storage::{ReadView, Storage, SyncMode};
use std::path::Path;
use std::time::Duration;

/// What names the temporaries of [`copy_to`].
const COPY_TAG: &str = "nexus-copy";
/// Entries read from the source at a time.
const SCAN: usize = 1024;
/// A transaction of the copy is committed past this many bytes of entries.
const BATCH_BYTES: usize = 8 << 20;

/// Copies `src` to the new file `dest` (pages of `page_size` bytes), encrypted to
/// `recipients` (public key PEMs) or plain (`None`).
pub(crate) fn copy_to(
    src: &dyn ReadView,
    page_size: u32,
    dest: &Path,
    busy: Duration,
    recipients: Option<Vec<String>>,
) -> Result<()> {
    super::check::publish_copy(dest, COPY_TAG, |tmp| {
        let cfg = WaspConfig {
            page_size,
            encryption: recipients.map(Unlock::Recipients),
            // One checkpoint at the end: the copy is discarded if it fails before.
            checkpoint_log_bytes: u64::MAX,
            checkpoint_interval: Duration::MAX,
            ..WaspConfig::default()
        };
        let store = WaspStorage::open(tmp, true, false, busy, Faults::default(), cfg)?;
        let filled = fill(src, &store, busy);
        // The final checkpoint: the copy's manifest says its log is quiet.
        let closed = filled.and_then(|()| store.close());
        drop(store);
        closed?;
        match src.fault() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })
}

/// Every table and entry of `src` into `store`.
fn fill(src: &dyn ReadView, store: &WaspStorage, busy: Duration) -> Result<()> {
    let tables = src.tables();
    let mut txn = store.begin_write(busy)?;
    for t in &tables {
        if txn.has_table(&t.name) {
            continue;
        }
        if t.clustered {
            txn.create_clustered(&t.name, &t.options)?;
        } else {
            txn.create_table(&t.name, &t.options)?;
        }
    }
    let mut bytes = 0usize;
    for t in &tables {
        let mut after: Option<crate::storage::Bytes> = None;
        loop {
            let batch = src.scan_with_record_ids(&t.name, after.as_deref(), SCAN);
            let Some((last, _, _)) = batch.last() else {
                break;
            };
            after = Some(last.clone());
            for (key, value, rid) in batch {
                if let Some(rid) = rid {
                    txn.advance_record_id(&t.name, rid)?;
                }
                bytes += key.len() + value.len();
                txn.put(&t.name, key, value)?;
                if bytes >= BATCH_BYTES {
                    txn.commit(SyncMode::Off)?;
                    txn = store.begin_write(busy)?;
                    bytes = 0;
                }
            }
        }
        if let Some(e) = src.fault() {
            return Err(e);
        }
    }
    txn.commit(SyncMode::Off)
}
