//! Clustered tables (`docs/FORMAT.md`, "Clustered tables"): the entries of a document
//! collection kept in the order their keys were first put, under increasing record ids, and
//! a map from key to record id beside them. Inserts then append to the entries' tree whatever
//! the keys (random UUIDs included); only the map, whose entries are a key and 8 bytes, takes
//! them at random places.
//!
//! - entries tree: key = record id (u64 big-endian, so byte order is numeric order), value =
//!   the entry: key length u16 LE, key, value (the value as the layer above gave it).
//! - map tree: key = the table's key, value = its record id (u64 big-endian).
//!
//! A record id is never reused: `next_rid` only grows (a replaced value keeps its id, a
//! deleted key's id is gone, a key put again gets a new one).

use super::btree::{self, Tree};
use super::catalog::{Clustered, TableMeta};
use super::page::Val;
use super::pager::Pager;
use super::txn::Arena;
use crate::error::{Error, Result};
use crate::storage::Bytes;

/// Bytes of the key length in front of an entry.
const KEY_LEN: usize = 2;

/// The stored entry for `key` and `value`, in the arena.
pub(super) fn entry(arena: &mut Arena, key: &[u8], value: &[u8]) -> Bytes {
    // Keys are at most a page's `max_key` (checked before), far below 64 KiB.
    let len = u16::try_from(key.len()).unwrap_or(u16::MAX).to_le_bytes();
    arena.concat(&[&len, key, value])
}

/// Where the key and the value lie inside an entry built by [`entry`] (`None`: the bytes are
/// too short to be one).
pub(super) fn entry_ranges(
    entry: &[u8],
) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let head: [u8; KEY_LEN] = entry.get(..KEY_LEN)?.try_into().ok()?;
    let k = KEY_LEN + usize::from(u16::from_le_bytes(head));
    (k <= entry.len()).then_some((KEY_LEN..k, k..entry.len()))
}

/// The key inside an entry just built by [`entry`] (a slice of it).
pub(super) fn entry_key(entry: &Bytes) -> Bytes {
    let (key, _) = entry_ranges(entry).expect("an entry built by `entry`");
    entry.slice(key)
}

/// The length of the value inside an entry of `len` bytes holding a key of `key_len`.
pub(super) fn value_len(entry_len: usize, key_len: usize) -> usize {
    entry_len - KEY_LEN - key_len
}

/// Splits a stored entry into its key and value (slices of it).
pub(super) fn split(pager: &Pager, entry: Bytes) -> Result<(Bytes, Bytes)> {
    let (key, value) = entry_ranges(&entry).ok_or_else(|| btree::corrupt_entry(pager.what()))?;
    Ok((entry.slice(key), entry.slice(value)))
}

fn bad(pager: &Pager, what: &str) -> Error {
    Error::Corrupt(format!("{}: clustered table: {what}", pager.what()))
}

/// The damage of a map naming a record id the entries tree does not hold.
fn missing_entry(pager: &Pager) -> Error {
    bad(
        pager,
        "the key map names a record id the table does not hold",
    )
}

/// The record id an entries-tree key holds.
fn rid_key_of(pager: &Pager, key: &[u8]) -> Result<[u8; 8]> {
    key.try_into()
        .map_err(|_| bad(pager, "an entry key that is not a record id"))
}

/// The record id a map value holds.
fn rid_of(pager: &Pager, v: &Val) -> Result<[u8; 8]> {
    match v {
        Val::Data(b) if b.len() == 8 => Ok(b[..].try_into().expect("8 bytes")),
        _ => Err(bad(pager, "a key map value that is not a record id")),
    }
}

/// The record id of `key`, if the map holds it. The map's leaves are always cached (see
/// [`Pager::leaf_probe`]): every read by `_id` passes through them.
pub(super) fn find(pager: &Pager, c: &Clustered, key: &[u8]) -> Result<Option<[u8; 8]>> {
    btree::get(pager, c.ids.as_ref(), key, true)?
        .map(|v| rid_of(pager, &v))
        .transpose()
}

/// The value of `key` in clustered table `t`.
pub(super) fn get(
    pager: &Pager,
    t: &TableMeta,
    c: &Clustered,
    key: &[u8],
    cache_leaves: bool,
) -> Result<Option<Bytes>> {
    let Some(rid) = find(pager, c, key)? else {
        return Ok(None);
    };
    let Some(v) = btree::get(pager, t.root.as_ref(), &rid, cache_leaves)? else {
        return Err(missing_entry(pager));
    };
    let (k, value) = split(pager, btree::resolve(pager, &v)?)?;
    if k != key {
        return Err(bad(pager, "a record id mapped from another key"));
    }
    Ok(Some(value))
}

/// The value of the entry with record id `rid` in clustered table `t`, if that entry's key
/// is `key` (`None` otherwise).
pub(super) fn get_by_rid(
    pager: &Pager,
    t: &TableMeta,
    rid: u64,
    key: &[u8],
    cache_leaves: bool,
) -> Result<Option<Bytes>> {
    match btree::get(pager, t.root.as_ref(), &rid.to_be_bytes(), cache_leaves)? {
        Some(v) => value_if_key(pager, v, key),
        None => Ok(None),
    }
}

/// The value of the stored entry `v` if the entry's key is `key`. The entry is taken as
/// found (no copy of its reference); only the value is sliced out of it, the key compared
/// in place.
fn value_if_key(pager: &Pager, v: Val, key: &[u8]) -> Result<Option<Bytes>> {
    let entry = match v {
        Val::Data(entry) => entry,
        v => btree::resolve(pager, &v)?,
    };
    let (k, value) = entry_ranges(&entry).ok_or_else(|| btree::corrupt_entry(pager.what()))?;
    Ok((entry[k] == *key).then(|| entry.slice(value)))
}

/// [`get_by_rid`] of many entries: `out[i]` is the value of the entry with record id
/// `wanted[i].0` if that entry's key is `wanted[i].1` (`None` otherwise). The record ids are
/// looked up in their order, each leaf of the table probed once for all those it holds.
pub(super) fn get_many_by_rid(
    pager: &Pager,
    t: &TableMeta,
    wanted: &[(u64, &[u8])],
    cache_leaves: bool,
) -> Result<Vec<Option<Bytes>>> {
    let mut order: Vec<usize> = (0..wanted.len()).collect();
    order.sort_unstable_by_key(|&i| wanted[i].0);
    let rids: Vec<[u8; 8]> = order.iter().map(|&i| wanted[i].0.to_be_bytes()).collect();
    let keys: Vec<&[u8]> = rids.iter().map(|r| &r[..]).collect();
    let mut found = vec![None; keys.len()];
    btree::get_many(pager, t.root.as_ref(), &keys, cache_leaves, &mut found)?;
    let mut out = vec![None; wanted.len()];
    for (&i, v) in order.iter().zip(found) {
        if let Some(v) = v {
            out[i] = value_if_key(pager, v, wanted[i].1)?;
        }
    }
    Ok(out)
}

/// Up to `limit` entries of clustered table `t` in record-id order after the entry of key
/// `after` (none when the table does not hold `after`); their record ids go to `rids` when
/// asked for.
pub(super) fn scan(
    pager: &Pager,
    t: &TableMeta,
    c: &Clustered,
    after: Option<&[u8]>,
    limit: usize,
    cache_leaves: bool,
    mut rids: Option<&mut Vec<u64>>,
) -> Result<Vec<(Bytes, Bytes)>> {
    let Some(root) = t.root.as_ref() else {
        return Ok(Vec::new());
    };
    let start = match after {
        None => None,
        Some(a) => match find(pager, c, a)? {
            Some(rid) => Some(rid),
            None => return Ok(Vec::new()),
        },
    };
    let mut raw = Vec::new();
    // Without record ids asked for, the scan hands out each entry's key and value already
    // (entries in the page: no entry to build and split again).
    let entries = rids.is_none();
    btree::scan(
        pager,
        root,
        start.as_ref().map(|r| &r[..]),
        limit,
        &mut raw,
        cache_leaves,
        entries,
    )?;
    raw.into_iter()
        .map(|(k, v)| match (entries, v) {
            (true, Val::Data(value)) => Ok((k, value)),
            (_, v) => {
                if let Some(rids) = rids.as_deref_mut() {
                    rids.push(u64::from_be_bytes(rid_key_of(pager, &k)?));
                }
                split(pager, btree::resolve(pager, &v)?)
            }
        })
        .collect()
}

/// Checks that every entry's key maps to that entry's record id (fsck; the caller has
/// checked that the map holds as many keys as the table entries, so the two then agree
/// exactly). Returns at most `max` problems.
pub(super) fn check_map(
    pager: &Pager,
    t: &TableMeta,
    c: &Clustered,
    max: usize,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let Some(root) = t.root.as_ref() else {
        return Ok(problems);
    };
    // Resumed by record id (not through the map, which is what is being checked).
    let mut after: Option<[u8; 8]> = None;
    loop {
        let mut raw = Vec::new();
        let from = after.as_ref().map(|r| &r[..]);
        btree::scan(pager, root, from, 1024, &mut raw, false, false)?;
        if raw.is_empty() {
            return Ok(problems);
        }
        for (rid_key, v) in &raw {
            let rid = rid_key_of(pager, rid_key)?;
            let (key, _) = split(pager, btree::resolve(pager, v)?)?;
            let mapped = find(pager, c, &key)?;
            if mapped != Some(rid) {
                let rid = u64::from_be_bytes(rid);
                problems.push(match mapped {
                    Some(m) => format!(
                        "the entry of record id {rid} is mapped to record id {}",
                        u64::from_be_bytes(m)
                    ),
                    None => format!("the entry of record id {rid} has no key in the map"),
                });
                if problems.len() >= max {
                    return Ok(problems);
                }
            }
            after = Some(rid);
        }
    }
}

/// Puts `entry` (built by [`entry`]; `key` is its key) into clustered table `t`: under the
/// key's record id, or a new one. `absent`: the caller knows the key is not in the table,
/// so the map is not searched first. Returns the replaced entry.
pub(super) fn put(
    tree: &mut Tree<'_>,
    arena: &mut Arena,
    t: &mut TableMeta,
    key: Bytes,
    entry: Bytes,
    absent: bool,
) -> Result<Option<Val>> {
    let TableMeta {
        root, clustered, ..
    } = t;
    let c = clustered.as_mut().expect("a clustered table");
    let known = if absent {
        None
    } else {
        find(tree.pager, c, &key)?
    };
    let rid_key = match known {
        Some(rid) => arena.copy(&rid),
        None => {
            // One buffer is both the map's value and the entries tree's key.
            let rid = arena.copy(&c.next_rid.to_be_bytes());
            if let Some(old) = tree.put(&mut c.ids, key.clone(), Val::Data(rid.clone()))? {
                // The caller's `absent` was wrong: the key keeps its record id.
                let old_rid = rid_of(tree.pager, &old)?;
                tree.put(&mut c.ids, key, old)?;
                return tree.put(root, arena.copy(&old_rid), Val::Data(entry));
            }
            c.next_rid += 1;
            rid
        }
    };
    tree.put(root, rid_key, Val::Data(entry))
}

/// Removes `key` from clustered table `t`; returns the removed entry.
pub(super) fn delete(tree: &mut Tree<'_>, t: &mut TableMeta, key: &[u8]) -> Result<Option<Val>> {
    let TableMeta {
        root, clustered, ..
    } = t;
    let c = clustered.as_mut().expect("a clustered table");
    let Some(rid) = tree.delete(&mut c.ids, key)? else {
        return Ok(None);
    };
    let rid = rid_of(tree.pager, &rid)?;
    match tree.delete(root, &rid)? {
        Some(old) => Ok(Some(old)),
        None => Err(missing_entry(tree.pager)),
    }
}
