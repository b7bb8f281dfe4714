//! Copy-on-write B+tree operations over [`Ptr`] roots: lookup, ordered scans, insert with
//! splits, delete with merges and redistribution. The layer beneath is the [`Pager`] (disk
//! nodes, overflow values).
//!
//! Copy-on-write: a node is changed only through [`Tree::make_mut`]. A disk node is copied
//! into memory and its page number recorded as freed by this transaction; a memory node is
//! changed in place only when nothing else (a published snapshot, a reader) holds it
//! (`Arc::make_mut`), else copied. So a published snapshot never changes, and readers need
//! no locks. Separators: `children[i]` holds keys `k` with `keys[i-1] <= k < keys[i]`.

use super::page::{Children, Geometry, LeafKeys, Node, Ptr, SepKeys, Val};
use super::pager::{Pager, Probe};
use crate::error::Result;
use crate::storage::Bytes;
use std::sync::Arc;

/// Loads the node behind `ptr`.
pub(crate) fn load(pager: &Pager, ptr: &Ptr) -> Result<Arc<Node>> {
    match ptr {
        Ptr::Mem(n) => Ok(Arc::clone(n)),
        Ptr::Disk(id) => pager.node(*id),
    }
}

/// The value of `val` as bytes (reads an overflow chain).
pub(crate) fn resolve(pager: &Pager, val: &Val) -> Result<Bytes> {
    match val {
        Val::Data(b) => Ok(Bytes::clone(b)),
        Val::Overflow { page, len } => pager.read_overflow(*page, *len, None),
    }
}

/// Finds `key` below `root`. `cache_leaves`: see [`Pager::leaf_probe`].
pub(crate) fn get(
    pager: &Pager,
    root: Option<&Ptr>,
    key: &[u8],
    cache_leaves: bool,
) -> Result<Option<Val>> {
    let Some(root) = root else { return Ok(None) };
    // A disk page (the root too) is probed: a leaf is searched where it lies.
    let probe = |id: u64| -> Result<std::result::Result<Arc<Node>, Option<Val>>> {
        let mut found = None;
        Ok(
            match pager.leaf_probe(id, cache_leaves, |leaf| {
                found = leaf.get(key)?;
                Ok(())
            })? {
                Probe::Node(n) => Ok(n),
                Probe::Done => Err(found),
            },
        )
    };
    let mut node = match root {
        Ptr::Mem(n) => Arc::clone(n),
        Ptr::Disk(id) => match probe(*id)? {
            Ok(n) => n,
            Err(found) => return Ok(found),
        },
    };
    loop {
        let next = match &*node {
            Node::Leaf { keys, vals, .. } => {
                // A key past the last one (an append's existence check) needs no search.
                if keys.last().is_none_or(|last| &last[..] < key) {
                    return Ok(None);
                }
                return Ok(keys.search(key).ok().map(|i| vals[i].clone()));
            }
            Node::Image(img) => return Ok(img.search(key).ok().map(|i| img.val(i))),
            Node::Branch { keys, children } => match &children[keys.upper_bound(key)] {
                Ptr::Mem(n) => Arc::clone(n),
                Ptr::Disk(id) => match probe(*id)? {
                    Ok(n) => n,
                    Err(found) => return Ok(found),
                },
            },
        };
        node = next;
    }
}

/// Finds each of `keys` (sorted ascending) below `root`: `out[i]` becomes the value of
/// `keys[i]` (`None`: absent). Every node on the keys' paths is visited once, so keys that
/// share a leaf cost one descent and one probe of it, not one each. `cache_leaves`: see
/// [`Pager::leaf_probe`].
pub(crate) fn get_many(
    pager: &Pager,
    root: Option<&Ptr>,
    keys: &[&[u8]],
    cache_leaves: bool,
    out: &mut [Option<Val>],
) -> Result<()> {
    debug_assert_eq!(keys.len(), out.len());
    debug_assert!(keys.windows(2).all(|w| w[0] <= w[1]));
    match root {
        Some(root) if !keys.is_empty() => get_many_in(pager, root, keys, cache_leaves, out),
        _ => Ok(()),
    }
}

fn get_many_in(
    pager: &Pager,
    ptr: &Ptr,
    keys: &[&[u8]],
    cache_leaves: bool,
    out: &mut [Option<Val>],
) -> Result<()> {
    let node = match ptr {
        Ptr::Mem(n) => Arc::clone(n),
        Ptr::Disk(id) => {
            let probe = pager.leaf_probe(*id, cache_leaves, |leaf| leaf.get_sorted(keys, out))?;
            match probe {
                Probe::Node(n) => n,
                Probe::Done => return Ok(()),
            }
        }
    };
    match &*node {
        Node::Leaf {
            keys: held, vals, ..
        } => {
            for (key, slot) in keys.iter().zip(out.iter_mut()) {
                *slot = held.search(key).ok().map(|i| vals[i].clone());
            }
            Ok(())
        }
        Node::Image(img) => {
            for (key, slot) in keys.iter().zip(out.iter_mut()) {
                *slot = img.search(key).ok().map(|i| img.val(i));
            }
            Ok(())
        }
        Node::Branch {
            keys: seps,
            children,
        } => {
            // The keys of one child are a run of `keys`: those below the child's upper
            // separator.
            let mut start = 0;
            while start < keys.len() {
                let c = seps.upper_bound(keys[start]);
                let end = match seps.get(c) {
                    Some(sep) => start + keys[start..].partition_point(|k| *k < &sep[..]),
                    None => keys.len(),
                };
                let child = &children[c];
                get_many_in(
                    pager,
                    child,
                    &keys[start..end],
                    cache_leaves,
                    &mut out[start..end],
                )?;
                start = end;
            }
            Ok(())
        }
    }
}

/// Appends to `out` up to `limit` entries in key order strictly after `after`. Returns
/// whether `out` reached `limit`. `cache_leaves`: see [`Pager::leaf_probe`]. `entries`: the
/// values are a clustered table's entries ([`super::clustered`]); each in-page one is
/// handed out as its own key and value (an overflow value as stored, under the tree's key).
pub(crate) fn scan(
    pager: &Pager,
    ptr: &Ptr,
    after: Option<&[u8]>,
    limit: usize,
    out: &mut Vec<(Bytes, Val)>,
    cache_leaves: bool,
    entries: bool,
) -> Result<bool> {
    if out.len() >= limit {
        return Ok(true);
    }
    let node = match ptr {
        Ptr::Mem(n) => Arc::clone(n),
        Ptr::Disk(id) => {
            let probe = pager.leaf_probe(*id, cache_leaves, |leaf| {
                let max = limit - out.len();
                leaf.copy_run(after, max, out, entries)
            })?;
            match probe {
                Probe::Node(n) => n,
                Probe::Done => return Ok(out.len() >= limit),
            }
        }
    };
    match &*node {
        Node::Leaf { keys, vals, .. } => {
            let start = after.map_or(0, |a| keys.partition_point(|k| &k[..] <= a));
            for i in start..keys.len() {
                out.push(scanned(
                    pager,
                    entries,
                    || Bytes::clone(&keys[i]),
                    &vals[i],
                )?);
                if out.len() >= limit {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Node::Image(img) => {
            // How many keys are <= `after`: the entries after it start there.
            let start = after.map_or(0, |a| match img.search(a) {
                Ok(i) => i + 1,
                Err(i) => i,
            });
            for i in start..img.len() {
                out.push(scanned(pager, entries, || img.key_bytes(i), &img.val(i))?);
                if out.len() >= limit {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Node::Branch { keys, children } => {
            let start = after.map_or(0, |a| keys.upper_bound(a));
            for c in children.iter_from(start) {
                if scan(pager, c, after, limit, out, cache_leaves, entries)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
    }
}

/// An entry as [`scan`] hands it out: under its key, or (`entries`: a clustered table's
/// entry in the page) as the entry's own key and value.
fn scanned(
    pager: &Pager,
    entries: bool,
    key: impl FnOnce() -> Bytes,
    val: &Val,
) -> Result<(Bytes, Val)> {
    Ok(match val {
        Val::Data(e) if entries => {
            let (k, v) =
                super::clustered::entry_ranges(e).ok_or_else(|| corrupt_entry(pager.what()))?;
            (e.slice(k), Val::Data(e.slice(v)))
        }
        v => (key(), v.clone()),
    })
}

/// The error of a clustered table's entry too short for its key, in file `what`.
pub(crate) fn corrupt_entry(what: &str) -> crate::error::Error {
    crate::error::Error::Corrupt(format!(
        "{what}: clustered table: an entry shorter than its key"
    ))
}

/// Calls `f` for every page of the tree that is on disk (tree pages and overflow chains).
pub(crate) fn for_each_disk_page(pager: &Pager, ptr: &Ptr, f: &mut dyn FnMut(u64)) -> Result<()> {
    if let Ptr::Disk(id) = ptr {
        f(*id);
    }
    let node = load(pager, ptr)?;
    match &*node {
        Node::Leaf { vals, .. } => {
            for v in vals {
                overflow_pages(pager, v, f)?;
            }
        }
        Node::Image(img) => {
            for i in 0..img.len() {
                overflow_pages(pager, &img.val(i), f)?;
            }
        }
        Node::Branch { children, .. } => {
            for c in children.iter() {
                for_each_disk_page(pager, c, f)?;
            }
        }
    }
    Ok(())
}

/// Calls `f` for every page of `v`'s overflow chain (none for a value in the page).
fn overflow_pages(pager: &Pager, v: &Val, f: &mut dyn FnMut(u64)) -> Result<()> {
    if let Val::Overflow { page, len } = v {
        let mut pages = Vec::new();
        pager.read_overflow(*page, *len, Some(&mut pages))?;
        pages.into_iter().for_each(f);
    }
    Ok(())
}

/// A mutation context: the pager, and what the transaction frees and dirties.
pub(crate) struct Tree<'a> {
    pub pager: &'a Pager,
    /// Disk pages no longer referenced by the transaction's state.
    pub freed: &'a mut Vec<u64>,
    /// Nodes brought into memory from disk or created (an upper bound of how many in-memory
    /// nodes the tree gained; the dirty-memory estimate that triggers checkpoints).
    pub dirtied: &'a mut u64,
}

impl Tree<'_> {
    fn geo(&self) -> Geometry {
        self.pager.geo
    }

    fn too_big(&self, n: &Node) -> bool {
        self.geo().node_size(n) > self.geo().capacity()
    }

    fn underfull(&self, n: &Node) -> bool {
        self.geo().node_size(n) < self.geo().capacity() / 4
    }

    /// Makes the node behind `ptr` private to this transaction and returns it for change.
    pub(crate) fn make_mut<'p>(&mut self, ptr: &'p mut Ptr) -> Result<&'p mut Node> {
        if let Ptr::Disk(id) = *ptr {
            let node = self.pager.node_for_change(id)?;
            self.freed.push(id);
            *self.dirtied += 1;
            *ptr = Ptr::Mem(Arc::new(node));
        }
        match ptr {
            // Copying a node that is already in memory (shared with the published state)
            // replaces it in this tree: the number of in-memory nodes does not grow, so it
            // is not counted again.
            Ptr::Mem(arc) => {
                if Arc::get_mut(arc).is_none() {
                    *arc = Arc::new(arc.copy_for_change());
                }
                Ok(Arc::get_mut(arc).expect("just made unique"))
            }
            Ptr::Disk(_) => unreachable!("converted above"),
        }
    }

    /// Frees the overflow chain of a value that is being replaced or removed.
    pub(crate) fn free_val(&mut self, val: &Val) -> Result<()> {
        if let Val::Overflow { page, len } = val {
            let mut pages = Vec::new();
            self.pager.read_overflow(*page, *len, Some(&mut pages))?;
            self.freed.extend(pages);
        }
        Ok(())
    }

    /// Frees every disk page of a tree (drop table).
    pub(crate) fn free_tree(&mut self, root: &Ptr) -> Result<()> {
        let freed = &mut *self.freed;
        for_each_disk_page(self.pager, root, &mut |id| freed.push(id))
    }

    /// Inserts or replaces; returns the old value (its overflow pages already freed).
    pub(crate) fn put(
        &mut self,
        root: &mut Option<Ptr>,
        key: Bytes,
        val: Val,
    ) -> Result<Option<Val>> {
        let Some(r) = root.as_mut() else {
            *self.dirtied += 1;
            *root = Some(Ptr::Mem(Arc::new(Node::leaf(
                self.geo(),
                vec![key],
                vec![val],
            ))));
            return Ok(None);
        };
        let (old, split) = self.put_rec(r, key, val, true)?;
        if let Some((sep, right)) = split {
            let left = root.take().unwrap_or(Ptr::Disk(0));
            *self.dirtied += 1;
            *root = Some(Ptr::Mem(Arc::new(Node::Branch {
                keys: vec![sep].into(),
                children: vec![left, right].into(),
            })));
        }
        if let Some(o) = &old {
            self.free_val(o)?;
        }
        Ok(old)
    }

    /// `rightmost`: `ptr` is on the tree's right edge. A node there that overflows because
    /// of an append past its last key splits at the end rather than in the middle, so
    /// ascending inserts (sequential `_id`s, sorted index builds) leave full pages behind
    /// instead of half-full ones (SQLite's "quick balance" has the same aim).
    #[expect(clippy::type_complexity, reason = "old value and optional split")]
    fn put_rec(
        &mut self,
        ptr: &mut Ptr,
        key: Bytes,
        val: Val,
        rightmost: bool,
    ) -> Result<(Option<Val>, Option<(Bytes, Ptr)>)> {
        let geo = self.geo();
        let node = self.make_mut(ptr)?;
        if let Node::Image(img) = node {
            // The common change: one entry replaced or added where the page has room.
            if let Some(old) = img.try_put(geo, &key, &val) {
                return Ok((old, None));
            }
            node.decode_in_place(geo);
        }
        let mut appended = false;
        // A branch whose child did not split has the same keys, so its size is unchanged.
        let mut grew = true;
        let old = match node {
            Node::Leaf { keys, vals, size } => match append_or_search(keys, &key) {
                Ok(i) => {
                    *size = *size + geo.leaf_entry(&key, &val) - geo.leaf_entry(&keys[i], &vals[i]);
                    Some(std::mem::replace(&mut vals[i], val))
                }
                Err(i) => {
                    appended = rightmost && i == keys.len();
                    *size += geo.leaf_entry(&key, &val);
                    keys.insert(i, key);
                    vals.insert(i, val);
                    None
                }
            },
            Node::Image(_) => unreachable!("decoded above"),
            Node::Branch { keys, children } => {
                let i = keys.upper_bound(&key);
                let last = rightmost && i + 1 == children.len();
                let (old, split) = self.put_rec(&mut children[i], key, val, last)?;
                grew = split.is_some();
                if let Some((sep, right)) = split {
                    keys.insert(i, sep);
                    children.insert(i + 1, right);
                    appended = last;
                }
                old
            }
        };
        let split = if grew && geo.node_size(node) > geo.capacity() {
            *self.dirtied += 1;
            Some(if appended {
                split_at_end(geo, node)
            } else {
                split_node(geo, node)
            })
        } else {
            None
        };
        Ok((old, split))
    }

    /// Removes `key`; returns the removed value (its overflow pages already freed).
    pub(crate) fn delete(&mut self, root: &mut Option<Ptr>, key: &[u8]) -> Result<Option<Val>> {
        if get(self.pager, root.as_ref(), key, true)?.is_none() {
            return Ok(None);
        }
        let Some(r) = root.as_mut() else {
            return Ok(None);
        };
        let old = self.del_rec(r, key)?;
        // Shrink the root: an empty leaf means an empty tree; a one-child branch is replaced
        // by its child.
        let collapse = match &*load(self.pager, r)? {
            Node::Leaf { keys, .. } if keys.is_empty() => Some(None),
            Node::Image(img) if img.len() == 0 => Some(None),
            Node::Branch { children, .. } if children.len() == 1 => Some(Some(children[0].clone())),
            _ => None,
        };
        if let Some(new_root) = collapse {
            if let Ptr::Disk(id) = r {
                self.freed.push(*id);
            }
            *root = new_root;
        }
        if let Some(o) = &old {
            self.free_val(o)?;
        }
        Ok(old)
    }

    fn del_rec(&mut self, ptr: &mut Ptr, key: &[u8]) -> Result<Option<Val>> {
        let geo = self.geo();
        let node = self.make_mut(ptr)?;
        node.decode_in_place(geo);
        match node {
            Node::Image(_) => unreachable!("decoded above"),
            Node::Leaf { keys, vals, size } => Ok(match keys.search(key) {
                Ok(i) => {
                    *size -= geo.leaf_entry(&keys[i], &vals[i]);
                    keys.remove(i);
                    Some(vals.remove(i))
                }
                Err(_) => None,
            }),
            Node::Branch { keys, children } => {
                let i = keys.upper_bound(key);
                let old = self.del_rec(&mut children[i], key)?;
                let needs = {
                    let child = load(self.pager, &children[i])?;
                    children.len() > 1 && (self.underfull(&child) || is_empty(&child))
                };
                if needs {
                    self.rebalance(keys, children, i)?;
                }
                Ok(old)
            }
        }
    }

    /// Merges child `i` with a neighbour, or redistributes the two when they do not fit one
    /// page.
    fn rebalance(
        &mut self,
        keys: &mut Vec<Bytes>,
        children: &mut Children,
        i: usize,
    ) -> Result<()> {
        let l = if i + 1 < children.len() { i } else { i - 1 };
        let sep = keys.remove(l);
        let mut right_ptr = children.remove(l + 1);
        let geo = self.geo();
        let mut right = std::mem::replace(self.make_mut(&mut right_ptr)?, empty_leaf());
        right.decode_in_place(geo);
        let left = self.make_mut(&mut children[l])?;
        left.decode_in_place(geo);
        match (left, right) {
            (
                Node::Leaf {
                    keys: lk,
                    vals: lv,
                    size: ls,
                },
                Node::Leaf {
                    keys: rk,
                    vals: rv,
                    size: rs,
                },
            ) => {
                lk.extend(rk.into_vec());
                lv.extend(rv);
                *ls += rs;
            }
            (
                Node::Branch {
                    keys: lk,
                    children: lc,
                },
                Node::Branch {
                    keys: rk,
                    children: rc,
                },
            ) => {
                lk.push(sep);
                lk.extend(rk.iter().cloned());
                lc.append(rc);
            }
            _ => {
                return Err(crate::error::Error::Corrupt(format!(
                    "{}: sibling tree nodes of different kinds",
                    self.pager.what()
                )))
            }
        }
        let left = self.make_mut(&mut children[l])?;
        if self.too_big(left) {
            *self.dirtied += 1;
            let (sep, right) = split_node(geo, left);
            keys.insert(l, sep);
            children.insert(l + 1, right);
        }
        Ok(())
    }
}

fn empty_leaf() -> Node {
    Node::Leaf {
        keys: LeafKeys::default(),
        vals: Vec::new(),
        size: 0,
    }
}

fn is_empty(n: &Node) -> bool {
    match n {
        Node::Leaf { keys, .. } => keys.is_empty(),
        Node::Image(img) => img.len() == 0,
        Node::Branch { .. } => false,
    }
}

/// Moves the entries of `leaf` from `at` on into a new right sibling, with room for at least
/// `room` entries.
fn split_leaf(geo: Geometry, leaf: &mut Node, at: usize, room: usize) -> (Bytes, Ptr) {
    let Node::Leaf { keys, vals, size } = leaf else {
        unreachable!("split_leaf is called on leaves");
    };
    let n = keys.len() - at;
    let mut rk = Vec::with_capacity(room.max(n));
    rk.extend(keys.drain(at..));
    let mut rv = Vec::with_capacity(room.max(n));
    rv.extend(vals.drain(at..));
    let sep = Bytes::clone(&rk[0]);
    let right = Node::leaf(geo, rk, rv);
    *size -= geo.node_size(&right);
    (sep, Ptr::Mem(Arc::new(right)))
}

/// Moves the branch keys after `keys[m]` (the new separator) and their children into a new
/// right sibling.
fn split_branch(keys: &mut SepKeys, children: &mut Children, m: usize) -> (Bytes, Ptr) {
    let mut rk = keys.split_off(m);
    let sep = rk.remove(0);
    let rc = children.split_off(m + 1);
    (
        sep,
        Ptr::Mem(Arc::new(Node::Branch {
            keys: rk.into(),
            children: rc,
        })),
    )
}

/// Splits an over-full node that grew by an append at the tree's right edge: the new right
/// sibling takes only the last entry (a branch: the last two children), the left node stays
/// full.
fn split_at_end(geo: Geometry, node: &mut Node) -> (Bytes, Ptr) {
    node.decode_in_place(geo);
    match node {
        Node::Image(_) => unreachable!("decoded above"),
        Node::Leaf { keys, .. } => {
            // Appends go on into the new leaf: room for as many entries as the full one has.
            let at = keys.len().saturating_sub(1).max(1);
            let room = keys.len();
            split_leaf(geo, node, at, room)
        }
        Node::Branch { keys, children } => {
            let m = keys.len().saturating_sub(2).max(1);
            split_branch(keys, children, m)
        }
    }
}

/// Where `key` is in a leaf's sorted `keys` (`binary_search`'s answer), checking the end
/// first: keys arriving in ascending order (generated ids, sorted index builds) then cost
/// one comparison, not a search.
fn append_or_search(keys: &LeafKeys, key: &[u8]) -> std::result::Result<usize, usize> {
    match keys.last() {
        None => Err(0),
        Some(last) if &last[..] < key => Err(keys.len()),
        Some(_) => keys.search(key),
    }
}

/// Splits an over-full node near the middle of its bytes; returns the separator and the new
/// right sibling.
fn split_node(geo: Geometry, node: &mut Node) -> (Bytes, Ptr) {
    node.decode_in_place(geo);
    match node {
        Node::Image(_) => unreachable!("decoded above"),
        Node::Leaf { keys, vals, size } => {
            let total = *size;
            let mut acc = 0;
            let mut at = keys.len() - 1;
            for (i, (k, v)) in keys.iter().zip(vals.iter()).enumerate() {
                acc += geo.leaf_entry(k, v);
                if acc >= total / 2 {
                    at = (i + 1).clamp(1, keys.len() - 1);
                    break;
                }
            }
            split_leaf(geo, node, at, 0)
        }
        Node::Branch { keys, children } => {
            let total: usize = keys.iter().map(|k| 10 + k.len()).sum();
            let mut acc = 0;
            let mut m = keys.len() / 2;
            for (i, k) in keys.iter().enumerate() {
                acc += 10 + k.len();
                if acc >= total / 2 {
                    m = i.clamp(1, keys.len().saturating_sub(2).max(1));
                    break;
                }
            }
            split_branch(keys, children, m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fault::Faults;
    use crate::storage::file::PageFile;

    /// Runs `f` on an empty tree over a fresh file of `page_size` pages.
    fn with_tree<R>(page_size: usize, f: impl FnOnce(&Pager, &mut Tree<'_>) -> R) -> R {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let file = std::fs::File::create(&path).unwrap();
        let geo = Geometry { page_size };
        let pager = Pager::new(
            PageFile::new(file, &path, Faults::default()),
            geo.page_size,
            None,
            1 << 20,
        );
        let (mut freed, mut dirtied) = (Vec::new(), 0);
        let mut tree = Tree {
            pager: &pager,
            freed: &mut freed,
            dirtied: &mut dirtied,
        };
        f(&pager, &mut tree)
    }

    /// The leaves below `root`, in key order.
    fn leaves(pager: &Pager, root: Option<Ptr>) -> Vec<Arc<Node>> {
        let (mut out, mut stack) = (Vec::new(), Vec::from_iter(root));
        while let Some(p) = stack.pop() {
            let node = load(pager, &p).unwrap();
            match &*node {
                Node::Leaf { .. } => out.push(Arc::clone(&node)),
                Node::Image(img) => out.push(Arc::new(img.decode(pager.geo))),
                Node::Branch { children, .. } => stack.extend(children.iter().rev().cloned()),
            }
        }
        out
    }

    /// Fills a tree in memory; returns its leaves' fill (used bytes over capacity), in order.
    fn fill_after(keys: impl Iterator<Item = u64>) -> (Vec<f64>, Vec<u64>) {
        with_tree(8192, |pager, tree| {
            let mut root = None;
            for k in keys {
                let key: Bytes = Bytes::from(format!("key{k:012}").into_bytes());
                let val = Val::Data(Bytes::from(vec![7u8; 100]));
                tree.put(&mut root, key, val).unwrap();
            }
            let (mut fill, mut order) = (Vec::new(), Vec::new());
            let geo = pager.geo;
            for leaf in leaves(pager, root) {
                let Node::Leaf { keys, .. } = &*leaf else {
                    unreachable!()
                };
                fill.push(geo.node_size(&leaf) as f64 / geo.capacity() as f64);
                order.extend(keys.iter().map(|k| {
                    std::str::from_utf8(&k[3..])
                        .unwrap()
                        .parse::<u64>()
                        .unwrap()
                }));
            }
            (fill, order)
        })
    }

    #[test]
    fn ascending_inserts_leave_full_leaves() {
        let (fill, order) = fill_after(0..20_000);
        assert_eq!(order, (0..20_000).collect::<Vec<_>>());
        let full = fill[..fill.len() - 1].iter().filter(|f| **f > 0.9).count();
        assert_eq!(
            full,
            fill.len() - 1,
            "every leaf but the last is over 90% full"
        );
    }

    #[test]
    fn random_inserts_still_split_in_the_middle() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let keys: Vec<u64> = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % 1_000_000_000
            })
            .collect();
        let (fill, order) = fill_after(keys.iter().copied());
        let mut want = keys.clone();
        want.sort_unstable();
        want.dedup();
        assert_eq!(order, want);
        let mean = fill.iter().sum::<f64>() / fill.len() as f64;
        assert!((0.55..0.9).contains(&mean), "mean leaf fill {mean}");
        assert!(fill.iter().all(|f| *f <= 1.0));
    }

    /// A batched lookup finds what one lookup per key finds: keys present and absent,
    /// repeated, before the first and after the last, across many leaves.
    #[test]
    fn get_many_agrees_with_get() {
        with_tree(4096, |pager, tree| {
            let mut root = None;
            let key = |k: u32| Bytes::from(format!("k{k:06}").into_bytes());
            for k in (0..20_000u32).step_by(3) {
                let val = Val::Data(Bytes::from(k.to_le_bytes().to_vec()));
                tree.put(&mut root, key(k), val).unwrap();
            }
            assert!(leaves(pager, root.clone()).len() > 20);
            let mut rng = fastrand::Rng::with_seed(11);
            for n in [0, 1, 2, 17, 256, 5_000] {
                let mut wanted: Vec<Bytes> = (0..n).map(|_| key(rng.u32(0..20_010))).collect();
                wanted.push(Bytes::from_static(b"a"));
                wanted.push(Bytes::from_static(b"z"));
                wanted.sort_unstable();
                let keys: Vec<&[u8]> = wanted.iter().map(|k| &k[..]).collect();
                let mut out = vec![None; keys.len()];
                get_many(pager, root.as_ref(), &keys, false, &mut out).unwrap();
                for (k, got) in keys.iter().zip(&out) {
                    let want = get(pager, root.as_ref(), k, false).unwrap();
                    let bytes = |v: &Option<Val>| v.as_ref().map(|v| resolve(pager, v).unwrap());
                    assert_eq!(
                        bytes(got),
                        bytes(&want),
                        "key {:?}",
                        String::from_utf8_lossy(k)
                    );
                }
                let present = out.iter().filter(|v| v.is_some()).count();
                assert!(n < 17 || present > 0 && present < keys.len());
            }
        });
    }

    /// Every change keeps a leaf's size: after random puts (small, replaced and large
    /// values), deletes that merge and redistribute, each leaf's kept size is what its
    /// entries add up to.
    #[test]
    fn leaf_sizes_stay_exact_through_puts_replaces_and_deletes() {
        with_tree(4096, |pager, tree| {
            let mut root = None;
            let mut rng = fastrand::Rng::with_seed(7);
            for step in 0..30_000 {
                let key = Bytes::from(format!("k{:05}", rng.u32(0..3_000)).into_bytes());
                if step % 3 == 2 {
                    tree.delete(&mut root, &key).unwrap();
                } else {
                    let len = if rng.u8(0..20) == 0 {
                        2_000
                    } else {
                        rng.usize(0..200)
                    };
                    tree.put(&mut root, key, Val::Data(Bytes::from(vec![1u8; len])))
                        .unwrap();
                }
            }
            let geo = pager.geo;
            let leaves = leaves(pager, root);
            for leaf in &leaves {
                let Node::Leaf { keys, vals, size } = &**leaf else {
                    unreachable!()
                };
                let sum: usize = keys
                    .iter()
                    .zip(vals)
                    .map(|(k, v)| geo.leaf_entry(k, v))
                    .sum();
                assert_eq!(*size, sum);
                assert!(*size <= geo.capacity());
            }
            assert!(leaves.len() > 10, "{} leaves", leaves.len());
        });
    }

    /// One step of [`prop_tree_agrees_with_a_btreemap`]. Keys are numbers (see `prop_key`);
    /// a value is `len` bytes counting up from `fill`.
    #[derive(Debug, Clone)]
    enum TreeOp {
        Put {
            key: u16,
            len: usize,
            fill: u8,
        },
        Delete(u16),
        Get(u16),
        /// Entries strictly after `after` (from the start when `None`), at most `limit`.
        Scan {
            after: Option<u16>,
            limit: usize,
        },
        GetMany(Vec<u16>),
    }

    /// The key of number `k`: ordered like `k`, of varied lengths (long keys make branches
    /// split on fewer entries).
    fn prop_key(k: u16) -> Bytes {
        let mut key = format!("{k:04}").into_bytes();
        key.resize(4 + usize::from(k % 5) * 37, b'-');
        Bytes::from(key)
    }

    fn tree_op() -> impl proptest::strategy::Strategy<Value = TreeOp> {
        use proptest::prelude::*;
        // Keys from a range small enough that puts replace and deletes hit.
        let key = || 0u16..700;
        // Mostly small values, some a large part of a page, some past the inline limit (those
        // count 8 bytes in a leaf: an overflow chain once written).
        let len = prop_oneof![8 => 0usize..64, 3 => 64usize..900, 1 => 1_025usize..6_000];
        prop_oneof![
            10 => (key(), len, any::<u8>()).prop_map(|(key, len, fill)| TreeOp::Put { key, len, fill }),
            5 => key().prop_map(TreeOp::Delete),
            1 => key().prop_map(TreeOp::Get),
            2 => (proptest::option::of(key()), 1usize..60)
                .prop_map(|(after, limit)| TreeOp::Scan { after, limit }),
            1 => proptest::collection::vec(key(), 0..40).prop_map(TreeOp::GetMany),
        ]
    }

    /// The structure every change must keep: keys ascending within each node and within the
    /// separators' bounds, all leaves at one depth, no node over a page, no empty node but an
    /// empty tree's, each leaf's kept size what its entries add up to. Returns the entries in
    /// order.
    fn check_tree(pager: &Pager, root: Option<&Ptr>) -> Vec<(Bytes, Bytes)> {
        fn walk(
            pager: &Pager,
            ptr: &Ptr,
            lo: Option<&[u8]>,
            hi: Option<&[u8]>,
            depth: usize,
            leaf_depth: &mut Option<usize>,
            out: &mut Vec<(Bytes, Bytes)>,
        ) {
            let geo = pager.geo;
            let mut node = load(pager, ptr).unwrap();
            assert!(geo.node_size(&node) <= geo.capacity(), "node over a page");
            if let Node::Image(img) = &*node {
                // The image's own size is its encoded one: the decoded leaf must agree.
                let decoded = img.decode(geo);
                assert_eq!(geo.node_size(&decoded), img.size(), "an image's size");
                node = Arc::new(decoded);
            }
            let in_bounds = |k: &[u8]| lo.is_none_or(|lo| lo <= k) && hi.is_none_or(|hi| k < hi);
            match &*node {
                Node::Leaf { keys, vals, size } => {
                    assert_eq!(
                        *leaf_depth.get_or_insert(depth),
                        depth,
                        "leaves at one depth"
                    );
                    assert!(!keys.is_empty(), "an empty leaf in a tree");
                    assert!(keys.windows(2).all(|w| w[0] < w[1]), "leaf keys unordered");
                    let sum: usize = keys
                        .iter()
                        .zip(vals)
                        .map(|(k, v)| geo.leaf_entry(k, v))
                        .sum();
                    assert_eq!(*size, sum, "a leaf's kept size");
                    for (k, v) in keys.iter().zip(vals) {
                        assert!(in_bounds(k), "a leaf key outside its separators");
                        out.push((Bytes::clone(k), resolve(pager, v).unwrap()));
                    }
                }
                Node::Image(_) => unreachable!("decoded above"),
                Node::Branch { keys, children } => {
                    assert_eq!(children.len(), keys.len() + 1);
                    assert!(!keys.is_empty(), "a branch with one child");
                    assert!(keys.windows(2).all(|w| w[0] < w[1]), "separators unordered");
                    assert!(
                        keys.iter().all(|k| in_bounds(k)),
                        "a separator out of bounds"
                    );
                    for (i, c) in children.iter().enumerate() {
                        let clo = if i == 0 { lo } else { Some(&keys[i - 1][..]) };
                        let chi = keys.get(i).map(|k| &k[..]).or(hi);
                        walk(pager, c, clo, chi, depth + 1, leaf_depth, out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        if let Some(root) = root {
            walk(pager, root, None, None, 0, &mut None, &mut out);
        }
        out
    }

    /// The steps of [`prop_tree_agrees_with_a_btreemap`] against a model.
    fn run_tree_ops(ops: &[TreeOp]) {
        use std::collections::BTreeMap;
        use std::ops::Bound;
        with_tree(4096, |pager, tree| {
            let mut root: Option<Ptr> = None;
            let mut model: BTreeMap<Bytes, Bytes> = BTreeMap::new();
            let bytes = |v: Option<Val>| v.map(|v| resolve(pager, &v).unwrap());
            for (step, op) in ops.iter().enumerate() {
                match op {
                    TreeOp::Put { key, len, fill } => {
                        let val: Bytes = (0..*len)
                            .map(|i| fill.wrapping_add(i.to_le_bytes()[0]))
                            .collect::<Vec<u8>>()
                            .into();
                        let old = tree
                            .put(&mut root, prop_key(*key), Val::Data(val.clone()))
                            .unwrap();
                        assert_eq!(
                            bytes(old),
                            model.insert(prop_key(*key), val),
                            "step {step}: old value"
                        );
                    }
                    TreeOp::Delete(key) => {
                        let old = tree.delete(&mut root, &prop_key(*key)).unwrap();
                        assert_eq!(
                            bytes(old),
                            model.remove(&prop_key(*key)),
                            "step {step}: deleted value"
                        );
                    }
                    TreeOp::Get(key) => {
                        let got = get(pager, root.as_ref(), &prop_key(*key), false).unwrap();
                        assert_eq!(
                            bytes(got),
                            model.get(&prop_key(*key)).cloned(),
                            "step {step}"
                        );
                    }
                    TreeOp::Scan { after, limit } => {
                        let after = after.map(prop_key);
                        let mut out = Vec::new();
                        let full = match &root {
                            Some(r) => {
                                scan(pager, r, after.as_deref(), *limit, &mut out, false, false)
                                    .unwrap()
                            }
                            None => false,
                        };
                        let got: Vec<(Bytes, Bytes)> = out
                            .into_iter()
                            .map(|(k, v)| (k, bytes(Some(v)).unwrap()))
                            .collect();
                        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
                        let want: Vec<(Bytes, Bytes)> = model
                            .range((from, Bound::Unbounded))
                            .take(*limit)
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        assert_eq!(full, want.len() == *limit, "step {step}: reached the limit");
                        assert!(
                            got == want,
                            "step {step}: scan gave {} entries, the model {}",
                            got.len(),
                            want.len()
                        );
                    }
                    TreeOp::GetMany(keys) => {
                        let mut wanted: Vec<Bytes> = keys.iter().map(|k| prop_key(*k)).collect();
                        wanted.sort_unstable();
                        let refs: Vec<&[u8]> = wanted.iter().map(|k| &k[..]).collect();
                        let mut out = vec![None; refs.len()];
                        get_many(pager, root.as_ref(), &refs, false, &mut out).unwrap();
                        for (k, got) in wanted.iter().zip(out) {
                            assert_eq!(bytes(got), model.get(k).cloned(), "step {step}: get_many");
                        }
                    }
                }
                let entries = check_tree(pager, root.as_ref());
                assert!(
                    entries.iter().map(|(k, v)| (k, v)).eq(model.iter()),
                    "step {step}: the tree holds {} entries, the model {}",
                    entries.len(),
                    model.len()
                );
            }
        });
    }

    proptest::proptest! {
        #![proptest_config(crate::prop_support::config(96, 1))]

        /// Model-based: random puts (small, large and overflow-sized values, replacing ones
        /// included), deletes, lookups, range scans from keys present and absent, and batched
        /// lookups on a tree of 4 KiB pages must answer what a `BTreeMap` answers, and the
        /// tree must keep its structure after every step.
        #[test]
        fn prop_tree_agrees_with_a_btreemap(ops in proptest::collection::vec(tree_op(), 1..400)) {
            run_tree_ops(&ops);
        }
    }
}
