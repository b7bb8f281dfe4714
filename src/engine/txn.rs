//! [`TrackedTxn`]: a storage write transaction that remembers which documents and
//! collections it touched, so that after it commits the engine can invalidate exactly those
//! entries of the document cache (and drop bounded-collection trackers it made stale).

use crate::cache::{KeyList, Touched};
use crate::error::Result;
use crate::hash::ByName;
use crate::index::IndexDef;
use crate::storage::{Bytes, ReadView, SyncMode, TableInfo, WriteTxn};
use std::sync::Arc;

/// A write transaction plus its [`Touched`] set. Implements [`WriteTxn`] by delegation, and
/// keeps every collection's secondary indexes in step with its documents
/// ([`crate::index::on_write`]) before each put or delete reaches the storage.
pub(crate) struct TrackedTxn {
    inner: Box<dyn WriteTxn>,
    pub(crate) touched: Touched,
    /// Index definitions per collection as this transaction sees them (loaded on first
    /// write to the collection; forgotten when the catalog or the tables change).
    indexes: ByName<Arc<Vec<Arc<IndexDef>>>>,
}

impl TrackedTxn {
    pub(crate) fn new(inner: Box<dyn WriteTxn>) -> Self {
        Self {
            inner,
            touched: Touched::default(),
            indexes: ByName::default(),
        }
    }

    /// The indexes of `table` when it is a collection that has some.
    fn indexes_of(&mut self, table: &str) -> Result<Option<Arc<Vec<Arc<IndexDef>>>>> {
        if table.starts_with('_') {
            if table == crate::index::CATALOG {
                self.indexes.clear();
            }
            return Ok(None);
        }
        if let Some(defs) = self.indexes.get(table) {
            return Ok((!defs.is_empty()).then(|| Arc::clone(defs)));
        }
        let defs = Arc::new(crate::index::defs_for(self.inner.as_read(), table)?);
        self.indexes.insert(table.to_owned(), Arc::clone(&defs));
        Ok((!defs.is_empty()).then_some(defs))
    }

    /// Index maintenance before a write of `key`; `absent`: the caller knows there is no
    /// old record under it.
    fn maintain(
        &mut self,
        table: &str,
        key: &[u8],
        value: Option<&[u8]>,
        absent: bool,
    ) -> Result<()> {
        if let Some(defs) = self.indexes_of(table)? {
            if crate::index::on_write(&mut *self.inner, &defs, table, key, value, absent)? {
                // A multikey flag changed in the catalog.
                self.indexes.remove(table);
            }
        }
        Ok(())
    }

    /// What every kind of put does before it reaches the storage: index maintenance
    /// (`absent`: see `maintain`) and cache tracking.
    fn before_put(&mut self, table: &str, key: &[u8], value: &[u8], absent: bool) -> Result<()> {
        self.maintain(table, key, Some(value), absent)?;
        self.touch(table, key);
        Ok(())
    }

    fn touch(&mut self, table: &str, key: &[u8]) {
        // A table this transaction created, dropped or renamed is forgotten as a whole after
        // the commit; its keys need no list (an index build puts every entry of a new table).
        if !self.touched.tables.is_empty() && self.touched.tables.contains(table) {
            return;
        }
        match self.touched.docs.get_mut(table) {
            Some(keys) => keys.push(key),
            None => {
                let mut keys = KeyList::default();
                keys.push(key);
                self.touched.docs.insert(table.to_owned(), keys);
            }
        }
    }

    /// Commits, handing back what was touched (for cache invalidation).
    pub(crate) fn commit_tracked(self, sync: SyncMode) -> Result<Touched> {
        self.inner.commit(sync)?;
        Ok(self.touched)
    }
}

impl ReadView for TrackedTxn {
    fn tables(&self) -> Vec<TableInfo> {
        self.inner.tables()
    }
    fn has_table(&self, name: &str) -> bool {
        self.inner.has_table(name)
    }
    fn get(&self, table: &str, key: &[u8]) -> Option<Bytes> {
        self.inner.get(table, key)
    }
    fn scan(&self, table: &str, after: Option<&[u8]>, limit: usize) -> Vec<(Bytes, Bytes)> {
        self.inner.scan(table, after, limit)
    }
    fn sort_in_scan_order(&self, table: &str, keys: &mut [Bytes]) {
        self.inner.sort_in_scan_order(table, keys);
    }
    fn next_key_after(&self, table: &str, after: &[u8]) -> Option<Option<Bytes>> {
        self.inner.next_key_after(table, after)
    }
    fn record_id_for(&self, table: &str, key: &[u8]) -> Option<u64> {
        self.inner.record_id_for(table, key)
    }
    fn scan_with_record_ids(
        &self,
        table: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Vec<(Bytes, Bytes, Option<u64>)> {
        self.inner.scan_with_record_ids(table, after, limit)
    }
    fn get_at(&self, table: &str, key: &[u8], rid: Option<u64>) -> Option<Bytes> {
        self.inner.get_at(table, key, rid)
    }
    fn get_many_at(&self, table: &str, wanted: &[(&[u8], Option<u64>)]) -> Vec<Option<Bytes>> {
        self.inner.get_many_at(table, wanted)
    }
    fn count(&self, table: &str) -> u64 {
        self.inner.count(table)
    }
    fn table_bytes(&self, table: &str) -> u64 {
        self.inner.table_bytes(table)
    }
}

impl TrackedTxn {
    /// Before a table is created, dropped or renamed: the cached index definitions no longer
    /// hold, and the tables count as touched.
    fn table_changes(&mut self, names: &[&str]) {
        self.indexes.clear();
        for name in names {
            self.touched.tables.insert((*name).to_owned());
        }
    }
}

impl WriteTxn for TrackedTxn {
    fn create_table(&mut self, name: &str, options: &str) -> Result<()> {
        self.table_changes(&[name]);
        self.inner.create_table(name, options)
    }
    fn create_clustered(&mut self, name: &str, options: &str) -> Result<()> {
        self.table_changes(&[name]);
        self.inner.create_clustered(name, options)
    }
    fn drop_table(&mut self, name: &str) -> Result<()> {
        self.table_changes(&[name]);
        self.inner.drop_table(name)
    }
    fn rename_table(&mut self, from: &str, to: &str) -> Result<()> {
        self.table_changes(&[from, to]);
        self.inner.rename_table(from, to)
    }
    fn put(&mut self, table: &str, key: Bytes, value: Bytes) -> Result<()> {
        self.before_put(table, &key, &value, false)?;
        self.inner.put(table, key, value)
    }
    fn put_absent(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.before_put(table, key, value, true)?;
        self.inner.put_absent(table, key, value)
    }
    fn put_shared(&mut self, table: &str, key: Bytes, value: Bytes) -> Result<()> {
        self.before_put(table, &key, &value, false)?;
        self.inner.put_shared(table, key, value)
    }
    fn delete(&mut self, table: &str, key: &[u8]) -> Result<bool> {
        self.maintain(table, key, None, false)?;
        self.touch(table, key);
        self.inner.delete(table, key)
    }
    fn expect_large(&mut self) {
        self.inner.expect_large();
    }
    fn commit(self: Box<Self>, sync: SyncMode) -> Result<()> {
        self.inner.commit(sync)
    }
    fn as_read(&self) -> &dyn ReadView {
        self
    }
    fn snapshot(&self) -> Arc<dyn ReadView> {
        self.inner.snapshot()
    }
}
