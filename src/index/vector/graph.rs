//! The HNSW graph of one vector index ([`Graph`]), kept as entries of the index's table
//! (`_ix$COLL$NAME`) and read and changed through the storage traits beneath:
//!
//! | key                                   | value                                        |
//! |---------------------------------------|----------------------------------------------|
//! | `00`                                  | meta: entry node, top level, next node id    |
//! | `01` node id (u64 BE)                 | the node: level, `_id` key, vector, links    |
//! | `02` `_id` key                        | the document's node id (u64 LE)              |
//! | `03` (255 - level) node id (u64 BE)   | empty: the nodes above level 0, highest first |
//!
//! A node keeps, per level, its out-links (the neighbors a search follows) and its
//! in-links (the nodes linking to it), so a delete finds every node that links to the
//! deleted one and repairs it (see [`Graph::remove`]). Byte layouts: `docs/FORMAT.md`.
//!
//! The algorithm is HNSW (Malkov and Yashunin, 2016): a node's level is drawn from an
//! exponential distribution (here from a hash of its id, so builds are reproducible),
//! insertion searches each level with `efConstruction` and links the neighbors the
//! heuristic selection keeps; a search descends greedily, then searches level 0 with `ef`.
//! Written here rather than taken from a crate because the graph has to live in the
//! storage engine's pages, inside its transactions (no HNSW crate keeps its graph in
//! storage it does not own).
//!
//! A `Graph` caches the nodes it decodes and the changes it makes; [`Graph::flush`] writes
//! the changes into the transaction.

use super::distance::distance;
use super::VectorSpec;
use crate::error::{Error, Result};
use crate::storage::{Bytes, ReadView, SnapshotId, WriteTxn};
use parking_lot::{Mutex, RwLock};
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

pub(crate) const META: &[u8] = &[0];
pub(crate) const NODE: u8 = 1;
pub(crate) const DOC: u8 = 2;
pub(crate) const LEVEL: u8 = 3;
/// Highest level a node may get.
const MAX_LEVEL: usize = 24;
const NONE: u64 = u64::MAX;

pub(crate) fn node_key(id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(NODE);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub(crate) fn doc_key(id_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id_key.len());
    k.push(DOC);
    k.extend_from_slice(id_key);
    k
}

pub(crate) fn level_key(level: usize, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(10);
    k.push(LEVEL);
    k.push(255 - u8::try_from(level).unwrap_or(255));
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The graph's meta record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Meta {
    /// The entry node (`None`: the graph is empty).
    pub entry: Option<u64>,
    pub top: usize,
    pub next_id: u64,
}

impl Meta {
    const LEN: usize = 24;

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        v.extend_from_slice(&self.entry.unwrap_or(NONE).to_le_bytes());
        v.extend_from_slice(&(self.top as u64).to_le_bytes());
        v.extend_from_slice(&self.next_id.to_le_bytes());
        v
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self> {
        let word = |i: usize| {
            b.get(i * 8..i * 8 + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_le_bytes)
        };
        match (b.len(), word(0), word(1), word(2)) {
            (Self::LEN, Some(entry), Some(top), Some(next_id)) if top <= MAX_LEVEL as u64 => {
                Ok(Self {
                    entry: (entry != NONE).then_some(entry),
                    top: usize::try_from(top).unwrap_or(0),
                    next_id,
                })
            }
            _ => Err(Error::Corrupt(
                "vector index meta record is malformed".into(),
            )),
        }
    }
}

/// One node, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub level: usize,
    /// The document's `_id` key.
    pub id_key: Vec<u8>,
    /// The vector as the kernels take it (unit length for cosine).
    pub vec: Vec<f32>,
    /// Per level 0..=level: the neighbors a search follows.
    pub out: Vec<Vec<u64>>,
    /// Per level: the nodes whose `out` holds this one.
    pub inl: Vec<Vec<u64>>,
}

impl Node {
    /// Layout: level (u8), `_id` key length (u16 LE) and bytes, the vector (float32 LE),
    /// then per level its out-links (count u16 LE, ids u64 LE) and in-links (count u32 LE,
    /// ids u64 LE).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let links: usize = self.out.iter().chain(&self.inl).map(Vec::len).sum();
        let mut v = Vec::with_capacity(
            3 + self.id_key.len() + self.vec.len() * 4 + links * 8 + self.out.len() * 6,
        );
        v.push(u8::try_from(self.level).unwrap_or(u8::MAX));
        v.extend_from_slice(&u16::try_from(self.id_key.len()).unwrap_or(0).to_le_bytes());
        v.extend_from_slice(&self.id_key);
        for x in &self.vec {
            v.extend_from_slice(&x.to_le_bytes());
        }
        for (out, inl) in self.out.iter().zip(&self.inl) {
            v.extend_from_slice(&u16::try_from(out.len()).unwrap_or(0).to_le_bytes());
            for id in out {
                v.extend_from_slice(&id.to_le_bytes());
            }
            v.extend_from_slice(&u32::try_from(inl.len()).unwrap_or(0).to_le_bytes());
            for id in inl {
                v.extend_from_slice(&id.to_le_bytes());
            }
        }
        v
    }

    pub(crate) fn decode(b: &[u8], dims: usize) -> Result<Self> {
        let bad = || Error::Corrupt("vector index node is malformed".into());
        let mut r = Reader { b, at: 0 };
        let level = usize::from(r.take(1).ok_or_else(bad)?[0]);
        if level > MAX_LEVEL {
            return Err(bad());
        }
        let id_len = usize::from(r.u16().ok_or_else(bad)?);
        let id_key = r.take(id_len).ok_or_else(bad)?.to_vec();
        let vec = r
            .take(dims * 4)
            .ok_or_else(bad)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mut out = Vec::with_capacity(level + 1);
        let mut inl = Vec::with_capacity(level + 1);
        for _ in 0..=level {
            let n = usize::from(r.u16().ok_or_else(bad)?);
            out.push(r.ids(n).ok_or_else(bad)?);
            let n = usize::try_from(r.u32().ok_or_else(bad)?).map_err(|_| bad())?;
            inl.push(r.ids(n).ok_or_else(bad)?);
        }
        if r.at != b.len() {
            return Err(bad());
        }
        Ok(Self {
            level,
            id_key,
            vec,
            out,
            inl,
        })
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn ids(&mut self, n: usize) -> Option<Vec<u64>> {
        let s = self.take(n.checked_mul(8)?)?;
        Some(
            s.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        )
    }
}

/// A hasher for node ids (SipHash's strength against chosen keys is not needed: the ids
/// are the engine's own counter; it was a tenth of a search's time).
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        let h = (self.0 ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
}

// (No type aliases for these maps: cbindgen, which reads the crate for include/nexus.h,
// fails on an alias of a two-parameter HashSet.)

/// A distance with the total order of `f32::total_cmp`, then the node id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Near(pub f32, pub u64);

impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// The level of node `id`: `floor(-ln(u) / ln(m))` for `u` uniform in (0, 1], drawn from a
/// hash of the id (splitmix64).
fn level_of(id: u64, m: u32) -> usize {
    let mut z = id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // 53 random bits as a double in (0, 1].
    #[allow(clippy::cast_precision_loss)] // exact: 53 bits
    let u = ((z >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let level = -u.ln() / f64::from(m).ln();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // small, >= 0
    let l = level.floor() as usize;
    l.min(MAX_LEVEL)
}

/// A vector index's graph as one transaction or snapshot sees it, with the nodes decoded so
/// far and the changes not yet written.
pub(crate) struct Graph {
    pub table: String,
    pub spec: VectorSpec,
    nodes: HashMap<u64, Arc<Node>, BuildHasherDefault<IdHasher>>,
    /// Decoded nodes of the committed snapshot this graph reads, shared by its searches.
    shared: Option<Arc<SnapshotNodes>>,
    meta: Option<Meta>,
    meta_dirty: bool,
    dirty: HashSet<u64, BuildHasherDefault<IdHasher>>,
    removed: Vec<(u64, usize)>,
    doc_puts: Vec<(Vec<u8>, Option<u64>)>,
}

impl Graph {
    pub(crate) fn new(table: &str, spec: &VectorSpec) -> Self {
        Self {
            table: table.to_owned(),
            spec: spec.clone(),
            nodes: HashMap::default(),
            shared: None,
            meta: None,
            meta_dirty: false,
            dirty: HashSet::default(),
            removed: Vec::new(),
            doc_puts: Vec::new(),
        }
    }

    /// A graph for searches of committed snapshot `view`: nodes decoded by earlier searches
    /// of the same snapshot are shared (see [`SnapshotNodes`]).
    pub(crate) fn for_search(view: &dyn ReadView, table: &str, spec: &VectorSpec) -> Self {
        let mut g = Self::new(table, spec);
        g.shared = view.snapshot_id().map(|id| SnapshotNodes::of(id, table));
        g
    }

    /// Whether any change waits for [`Graph::flush`].
    pub(crate) fn has_changes(&self) -> bool {
        self.meta_dirty || !self.dirty.is_empty() || !self.removed.is_empty()
    }

    /// Nodes decoded and held.
    pub(crate) fn cached(&self) -> usize {
        self.nodes.len()
    }

    /// Forgets the decoded nodes (after a flush: nothing is lost).
    pub(crate) fn clear_cache(&mut self) {
        debug_assert!(!self.has_changes());
        self.nodes.clear();
    }

    pub(crate) fn meta(&mut self, view: &dyn ReadView) -> Result<Meta> {
        if let Some(m) = self.meta {
            return Ok(m);
        }
        let m = match view.get(&self.table, META) {
            Some(b) => Meta::decode(&b)?,
            None => Meta {
                entry: None,
                top: 0,
                next_id: 0,
            },
        };
        check_fault(view)?;
        self.meta = Some(m);
        Ok(m)
    }

    fn set_meta(&mut self, m: Meta) {
        self.meta = Some(m);
        self.meta_dirty = true;
    }

    /// The node id of the document with `_id` key `id_key`, if it has one.
    pub(crate) fn node_of(&self, view: &dyn ReadView, id_key: &[u8]) -> Result<Option<u64>> {
        if let Some((_, n)) = self.doc_puts.iter().rev().find(|(k, _)| k == id_key) {
            return Ok(*n);
        }
        let r = match view.get(&self.table, &doc_key(id_key)) {
            Some(b) => Some(u64::from_le_bytes(b[..].try_into().map_err(|_| {
                Error::Corrupt("vector index document entry is malformed".into())
            })?)),
            None => None,
        };
        check_fault(view)?;
        Ok(r)
    }

    /// Decodes node `id` into the cache.
    pub(crate) fn load(&mut self, view: &dyn ReadView, id: u64) -> Result<&Arc<Node>> {
        if !self.nodes.contains_key(&id) {
            let shared = self.shared.as_ref().and_then(|s| s.get(id));
            let n = match shared {
                Some(n) => n,
                None => {
                    let Some(b) = view.get(&self.table, &node_key(id)) else {
                        check_fault(view)?;
                        return Err(Error::Corrupt(format!(
                            "vector index '{}': node {id} is linked but missing",
                            self.table
                        )));
                    };
                    let n = Arc::new(Node::decode(&b, self.spec.dims as usize)?);
                    if let Some(s) = &self.shared {
                        s.put(id, &n);
                    }
                    n
                }
            };
            self.nodes.insert(id, n);
        }
        Ok(&self.nodes[&id])
    }

    /// Node `id` to change on `level`, which a node below that level does not have (a link
    /// to it there is damage: [`Error::Corrupt`], never an out-of-bounds panic).
    fn at_level(&mut self, view: &dyn ReadView, id: u64, level: usize) -> Result<&mut Node> {
        self.check_level(view, id, level)?;
        self.node_mut(view, id)
    }

    /// Node `id`'s out-links on `level` (see [`Graph::at_level`]).
    fn links(&mut self, view: &dyn ReadView, id: u64, level: usize) -> Result<Vec<u64>> {
        self.check_level(view, id, level)?;
        Ok(self.load(view, id)?.out[level].clone())
    }

    fn check_level(&mut self, view: &dyn ReadView, id: u64, level: usize) -> Result<()> {
        if self.load(view, id)?.level < level {
            return Err(Error::Corrupt(format!(
                "vector index '{}': node {id} is linked on level {level}, above its own",
                self.table
            )));
        }
        Ok(())
    }

    fn node_mut(&mut self, view: &dyn ReadView, id: u64) -> Result<&mut Node> {
        self.load(view, id)?;
        self.dirty.insert(id);
        Ok(Arc::make_mut(
            self.nodes.get_mut(&id).expect("loaded just above"),
        ))
    }

    fn dist_to(&mut self, view: &dyn ReadView, q: &[f32], id: u64) -> Result<f32> {
        let sim = self.spec.similarity;
        let n = self.load(view, id)?;
        Ok(distance(sim, q, &n.vec))
    }

    fn dist_between(&mut self, view: &dyn ReadView, a: u64, b: u64) -> Result<f32> {
        self.load(view, a)?;
        self.load(view, b)?;
        Ok(distance(
            self.spec.similarity,
            &self.nodes[&a].vec,
            &self.nodes[&b].vec,
        ))
    }

    /// Greedy descent from the entry node to level `down_to`: the closest node found.
    fn descend(
        &mut self,
        view: &dyn ReadView,
        q: &[f32],
        meta: Meta,
        down_to: usize,
    ) -> Result<Option<Near>> {
        let Some(entry) = meta.entry else {
            return Ok(None);
        };
        let mut cur = Near(self.dist_to(view, q, entry)?, entry);
        let mut level = meta.top;
        while level > down_to {
            loop {
                let links = self
                    .load(view, cur.1)?
                    .out
                    .get(level)
                    .cloned()
                    .unwrap_or_default();
                let mut moved = false;
                for n in links {
                    let d = self.dist_to(view, q, n)?;
                    if Near(d, n) < cur {
                        cur = Near(d, n);
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
            level -= 1;
        }
        Ok(Some(cur))
    }

    /// The `ef` nodes closest to `q` on `level` that `admit` accepts, reached from
    /// `entries`, nearest first. Nodes `admit` refuses are still walked through.
    fn search_level(
        &mut self,
        view: &dyn ReadView,
        q: &[f32],
        entries: &[Near],
        ef: usize,
        level: usize,
        admit: &mut dyn FnMut(&Node) -> Result<bool>,
    ) -> Result<Vec<Near>> {
        let mut visited: HashSet<u64, BuildHasherDefault<IdHasher>> =
            HashSet::with_capacity_and_hasher(ef * 8, BuildHasherDefault::default());
        let mut candidates: BinaryHeap<Reverse<Near>> = BinaryHeap::new();
        let mut found: BinaryHeap<Near> = BinaryHeap::new();
        for e in entries {
            if visited.insert(e.1) {
                candidates.push(Reverse(*e));
                if admit(self.load(view, e.1)?)? {
                    found.push(*e);
                }
            }
        }
        while found.len() > ef {
            found.pop();
        }
        while let Some(Reverse(c)) = candidates.pop() {
            if found.len() >= ef && found.peek().is_some_and(|w| c > *w) {
                break;
            }
            let links = self
                .load(view, c.1)?
                .out
                .get(level)
                .cloned()
                .unwrap_or_default();
            for n in links {
                if !visited.insert(n) {
                    continue;
                }
                let d = Near(self.dist_to(view, q, n)?, n);
                if found.len() < ef || found.peek().is_some_and(|w| d < *w) {
                    candidates.push(Reverse(d));
                    if admit(&self.nodes[&n])? {
                        found.push(d);
                        if found.len() > ef {
                            found.pop();
                        }
                    }
                }
            }
        }
        Ok(found.into_sorted_vec())
    }

    /// HNSW's neighbor selection heuristic: from `cands` (sorted nearest first by their
    /// distance to the base node), keep a candidate only when it is closer to the base than
    /// to every candidate kept so far; at most `max`.
    fn select(&mut self, view: &dyn ReadView, cands: &[Near], max: usize) -> Result<Vec<u64>> {
        let mut kept: Vec<u64> = Vec::with_capacity(max);
        for c in cands {
            if kept.len() >= max {
                break;
            }
            let mut good = true;
            for &k in &kept {
                if self.dist_between(view, c.1, k)? < c.0 {
                    good = false;
                    break;
                }
            }
            if good {
                kept.push(c.1);
            }
        }
        Ok(kept)
    }

    /// Adds the document `id_key` with vector `vec` (prepared: see
    /// [`super::distance::prepare`]); returns its node id.
    pub(crate) fn insert(
        &mut self,
        view: &dyn ReadView,
        id_key: &[u8],
        vec: Vec<f32>,
    ) -> Result<u64> {
        if id_key.len() > usize::from(u16::MAX) {
            return Err(Error::invalid(
                "a document whose _id takes more than 65535 bytes cannot be in a vector index",
            ));
        }
        let mut meta = self.meta(view)?;
        let id = meta.next_id;
        meta.next_id += 1;
        let level = level_of(id, self.spec.m);
        let q = vec.clone();
        self.nodes.insert(
            id,
            Arc::new(Node {
                level,
                id_key: id_key.to_vec(),
                vec,
                out: vec![Vec::new(); level + 1],
                inl: vec![Vec::new(); level + 1],
            }),
        );
        self.dirty.insert(id);
        self.doc_puts.push((id_key.to_vec(), Some(id)));
        let Some(mut cur) = self.descend(view, &q, meta, level)? else {
            meta.entry = Some(id);
            meta.top = level;
            self.set_meta(meta);
            return Ok(id);
        };
        let ef = self.spec.ef_construction as usize;
        let m = self.spec.m as usize;
        let mut entries = vec![cur];
        for l in (0..=level.min(meta.top)).rev() {
            let found =
                self.search_level(view, &q, &entries, ef, l, &mut |n| Ok(n.level < usize::MAX))?;
            let found: Vec<Near> = found.into_iter().filter(|n| n.1 != id).collect();
            let chosen = self.select(view, &found, m)?;
            for &n in &chosen {
                self.link(view, n, id, l)?;
                self.link(view, id, n, l)?;
                self.shrink(view, n, l)?;
            }
            if let Some(first) = found.first() {
                cur = *first;
            }
            entries = if found.is_empty() { vec![cur] } else { found };
        }
        if level > meta.top {
            meta.entry = Some(id);
            meta.top = level;
        }
        self.set_meta(meta);
        Ok(id)
    }

    /// `from` links to `to` on `level` (both lists kept).
    fn link(&mut self, view: &dyn ReadView, from: u64, to: u64, level: usize) -> Result<()> {
        self.check_level(view, to, level)?;
        let f = self.at_level(view, from, level)?;
        if !f.out[level].contains(&to) {
            f.out[level].push(to);
            let t = self.at_level(view, to, level)?;
            t.inl[level].push(from);
        }
        Ok(())
    }

    /// `from` no longer links to `to` on `level`.
    fn unlink(&mut self, view: &dyn ReadView, from: u64, to: u64, level: usize) -> Result<()> {
        self.at_level(view, from, level)?.out[level].retain(|x| *x != to);
        self.at_level(view, to, level)?.inl[level].retain(|x| *x != from);
        Ok(())
    }

    /// Cuts node `id`'s out-links on `level` back to the most it may keep (the heuristic
    /// picks which stay).
    fn shrink(&mut self, view: &dyn ReadView, id: u64, level: usize) -> Result<()> {
        let max = self.spec.max_links(level);
        let links = self.links(view, id, level)?;
        if links.len() <= max {
            return Ok(());
        }
        self.relink(view, id, level, links)
    }

    /// Gives node `id` the out-links on `level` the heuristic selects from `cands`.
    fn relink(
        &mut self,
        view: &dyn ReadView,
        id: u64,
        level: usize,
        cands: Vec<u64>,
    ) -> Result<()> {
        let max = self.spec.max_links(level);
        let mut scored = Vec::with_capacity(cands.len());
        for c in cands {
            if c != id && !scored.iter().any(|n: &Near| n.1 == c) {
                scored.push(Near(self.dist_between(view, id, c)?, c));
            }
        }
        scored.sort_unstable();
        let keep = self.select(view, &scored, max)?;
        let old = self.links(view, id, level)?;
        for o in old.iter().filter(|o| !keep.contains(o)) {
            self.unlink(view, id, *o, level)?;
        }
        for k in keep.iter().filter(|k| !old.contains(k)) {
            self.link(view, id, *k, level)?;
        }
        // The heuristic's order (nearest first) for the searches.
        self.at_level(view, id, level)?.out[level] = keep;
        Ok(())
    }

    /// Removes node `id` and repairs the nodes that linked to it: each one's out-links on
    /// that level are chosen again, by the heuristic, from its remaining links and the
    /// removed node's links, so no node is left with a hole where the removed one was.
    pub(crate) fn remove(&mut self, view: &dyn ReadView, id: u64) -> Result<()> {
        let node = Arc::clone(self.load(view, id)?);
        for l in 0..=node.level {
            for &y in &node.out[l] {
                if y != id {
                    self.at_level(view, y, l)?.inl[l].retain(|x| *x != id);
                }
            }
            for &z in &node.inl[l] {
                if z == id {
                    continue;
                }
                let mut cands = self.links(view, z, l)?;
                cands.retain(|x| *x != id);
                self.at_level(view, z, l)?.out[l].retain(|x| *x != id);
                cands.extend(node.out[l].iter().copied().filter(|x| *x != id && *x != z));
                self.relink(view, z, l, cands)?;
            }
        }
        self.nodes.remove(&id);
        self.dirty.remove(&id);
        self.removed.push((id, node.level));
        self.doc_puts.push((node.id_key.clone(), None));
        let mut meta = self.meta(view)?;
        if meta.entry == Some(id) {
            // Another node of the highest level left: one the removed node linked to on its
            // top level, else the first of the level index, else any node.
            let top_link = node.out.get(node.level).and_then(|o| o.first().copied());
            let (entry, top) = match top_link {
                Some(n) => (Some(n), node.level),
                None => self.highest_other(view, id)?,
            };
            meta.entry = entry;
            meta.top = top;
        }
        self.set_meta(meta);
        Ok(())
    }

    /// The node of the highest level other than `id` (from the level index, else any node).
    fn highest_other(&mut self, view: &dyn ReadView, id: u64) -> Result<(Option<u64>, usize)> {
        let id_of = |k: &[u8]| {
            k.get(k.len().saturating_sub(8)..)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_be_bytes)
        };
        let mut after = vec![LEVEL];
        loop {
            let batch = view.scan(&self.table, Some(&after), 16);
            check_fault(view)?;
            let Some((k, _)) = batch.first() else { break };
            if k.first() != Some(&LEVEL) || k.len() != 10 {
                break;
            }
            for (k, _) in &batch {
                if k.first() != Some(&LEVEL) || k.len() != 10 {
                    break;
                }
                let n = id_of(k).unwrap_or(id);
                if n != id && !self.removed.iter().any(|(r, _)| *r == n) {
                    return Ok((Some(n), usize::from(255 - k[1])));
                }
            }
            after = batch.last().map(|(k, _)| k.to_vec()).unwrap_or(after);
        }
        // Level 0 only: any node.
        let mut after = vec![NODE];
        loop {
            let batch = view.scan(&self.table, Some(&after), 16);
            check_fault(view)?;
            if batch.is_empty() {
                break;
            }
            for (k, _) in &batch {
                if k.first() != Some(&NODE) {
                    return Ok((None, 0));
                }
                let n = id_of(k).unwrap_or(id);
                if n != id && !self.removed.iter().any(|(r, _)| *r == n) {
                    return Ok((Some(n), 0));
                }
            }
            after = batch.last().map(|(k, _)| k.to_vec()).unwrap_or(after);
        }
        Ok((None, 0))
    }

    /// The `k` nodes nearest `q` that `admit` accepts, searching level 0 with `ef`
    /// (at least `k`), nearest first.
    pub(crate) fn knn(
        &mut self,
        view: &dyn ReadView,
        q: &[f32],
        k: usize,
        ef: usize,
        admit: &mut dyn FnMut(&Node) -> Result<bool>,
    ) -> Result<Vec<Near>> {
        let meta = self.meta(view)?;
        let Some(start) = self.descend(view, q, meta, 0)? else {
            return Ok(Vec::new());
        };
        let mut found = self.search_level(view, q, &[start], ef.max(k), 0, admit)?;
        found.truncate(k);
        check_fault(view)?;
        Ok(found)
    }

    /// The decoded node `id` (loaded if need be).
    pub(crate) fn node(&mut self, view: &dyn ReadView, id: u64) -> Result<&Node> {
        Ok(&**self.load(view, id)?)
    }

    /// Writes the changes made since the last flush into `t`.
    pub(crate) fn flush(&mut self, t: &mut dyn WriteTxn) -> Result<()> {
        let table = self.table.clone();
        for (id, level) in std::mem::take(&mut self.removed) {
            t.delete(&table, &node_key(id))?;
            if level > 0 {
                t.delete(&table, &level_key(level, id))?;
            }
        }
        let mut dirty: Vec<u64> = std::mem::take(&mut self.dirty).into_iter().collect();
        dirty.sort_unstable();
        for id in dirty {
            let n = &self.nodes[&id];
            let fresh = t.get(&table, &node_key(id)).is_none();
            if fresh && n.level > 0 {
                t.put(&table, Bytes::from(level_key(n.level, id)), Bytes::new())?;
            }
            t.put(&table, Bytes::from(node_key(id)), Bytes::from(n.encode()))?;
        }
        for (k, n) in std::mem::take(&mut self.doc_puts) {
            match n {
                Some(n) => t.put(
                    &table,
                    Bytes::from(doc_key(&k)),
                    Bytes::copy_from_slice(&n.to_le_bytes()),
                )?,
                None => {
                    t.delete(&table, &doc_key(&k))?;
                }
            }
        }
        if self.meta_dirty {
            if let Some(m) = self.meta {
                t.put(&table, Bytes::from_static(META), Bytes::from(m.encode()))?;
            }
            self.meta_dirty = false;
        }
        Ok(())
    }
}

/// Decoded nodes of one vector index as one committed snapshot holds them, shared by the
/// searches of that snapshot (a search reads hundreds to thousands of nodes; decoding them
/// from their pages each time was most of a query's cost). Kept for the few newest
/// snapshots ([`SNAPSHOTS_KEPT`]); a commit makes a new snapshot and so a new, empty set
/// (nothing in it can be stale). At most [`SHARED_BYTES`] of nodes per set: past that,
/// nodes are decoded per search as without it.
pub(crate) struct SnapshotNodes {
    id: SnapshotId,
    table: String,
    nodes: RwLock<HashMap<u64, Arc<Node>, BuildHasherDefault<IdHasher>>>,
    bytes: std::sync::atomic::AtomicUsize,
}

/// Snapshots whose decoded nodes are kept.
const SNAPSHOTS_KEPT: usize = 2;
/// Most bytes of decoded nodes kept per snapshot and index.
const SHARED_BYTES: usize = 256 << 20;

static SHARED: Mutex<Vec<Arc<SnapshotNodes>>> = Mutex::new(Vec::new());

impl SnapshotNodes {
    /// The set of snapshot `id` and index table `table` (made empty when new).
    fn of(id: SnapshotId, table: &str) -> Arc<Self> {
        let mut all = SHARED.lock();
        if let Some(s) = all.iter().find(|s| s.id == id && s.table == table) {
            return Arc::clone(s);
        }
        // An older snapshot of the same store and index: newer readers will not ask for it.
        all.retain(|s| !(s.table == table && s.id.store == id.store && s.id.epoch < id.epoch));
        if all.len() >= SNAPSHOTS_KEPT {
            all.remove(0);
        }
        let s = Arc::new(Self {
            id,
            table: table.to_owned(),
            nodes: RwLock::new(HashMap::default()),
            bytes: std::sync::atomic::AtomicUsize::new(0),
        });
        all.push(Arc::clone(&s));
        s
    }

    fn get(&self, id: u64) -> Option<Arc<Node>> {
        self.nodes.read().get(&id).cloned()
    }

    fn put(&self, id: u64, n: &Arc<Node>) {
        use std::sync::atomic::Ordering::Relaxed;
        let size = 96
            + n.id_key.len()
            + n.vec.len() * 4
            + n.out
                .iter()
                .chain(&n.inl)
                .map(|l| 24 + l.len() * 8)
                .sum::<usize>();
        if self.bytes.load(Relaxed) + size > SHARED_BYTES {
            return;
        }
        self.bytes.fetch_add(size, Relaxed);
        self.nodes.write().insert(id, Arc::clone(n));
    }
}

/// Frees the shared decoded nodes (the last database of the process closed).
pub(crate) fn release_shared() {
    if let Some(mut all) = SHARED.try_lock() {
        *all = Vec::new();
    }
}

/// A read failure the view met (the view's reads cannot return errors themselves).
pub(crate) fn check_fault(view: &dyn ReadView) -> Result<()> {
    match view.fault() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_round_trip_and_damage_is_corrupt() {
        let n = Node {
            level: 2,
            id_key: b"\x02abc".to_vec(),
            vec: vec![1.5, -2.0, 0.25],
            out: vec![vec![1, 2, 3], vec![4], vec![]],
            inl: vec![vec![9], vec![], vec![7, 8]],
        };
        let b = n.encode();
        assert_eq!(Node::decode(&b, 3).unwrap(), n);
        for cut in 0..b.len() {
            assert!(
                matches!(Node::decode(&b[..cut], 3), Err(Error::Corrupt(_))),
                "cut at {cut}"
            );
        }
        let m = Meta {
            entry: Some(5),
            top: 3,
            next_id: 77,
        };
        assert_eq!(Meta::decode(&m.encode()).unwrap(), m);
        assert!(Meta::decode(&[0; 23]).is_err());
    }

    #[test]
    fn levels_fall_off_exponentially() {
        let mut counts = [0usize; 4];
        for id in 0..100_000 {
            let l = level_of(id, 16);
            counts[l.min(3)] += 1;
        }
        // P(level >= 1) = 1/16.
        let above = 100_000 - counts[0];
        assert!((5_500..7_000).contains(&above), "{counts:?}");
        assert!(counts[2] + counts[3] < 800, "{counts:?}");
    }
}
