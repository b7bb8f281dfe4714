//! The HNSW graph of one vector index ([`Graph`]), kept as entries of the index's table
//! (`_ix$COLL$NAME`) and read and changed through the storage traits beneath:
//!
//! | key                                   | value                                          |
//! |---------------------------------------|------------------------------------------------|
//! | `00`                                  | meta: layout, entry node, top level, next node id, version tag, code range |
//! | `01` node id (u32 BE)                 | the node: level, `_id` key, record id, vector (or codes), links |
//! | `02` `_id` key                        | the document's node id (u32 LE)                |
//! | `03` (255 - level) node id (u32 BE)   | empty: the nodes above level 0, highest first  |
//!
//! A node keeps, per level, its out-links (the neighbors a search follows) and its
//! in-links (the nodes linking to it), so a delete finds every node that links to the
//! deleted one and repairs it (see [`Graph::remove`]). Byte layouts: `docs/FORMAT.md`
//! (layout 3; layout 2, without record ids, is still read and written; layout 1, with
//! 8-byte node ids, is refused with a message asking for the index to be created again).
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
//! the changes into the transaction, with a fresh version tag in the meta record. Searches
//! of committed snapshots read the nodes through [`SharedNodes`]: one dense, lazily filled
//! table of decoded nodes per version tag, shared by every reader of that version of the
//! index (commits of other data leave it in place).

use super::distance::{code_sums, distance};
use super::quant::{code_sum, min_max, Quant};
use super::VectorSpec;
use crate::error::{Error, Result};
use crate::storage::{Bytes, ReadView, WriteTxn};
use parking_lot::Mutex;
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
/// The layout of the graph's entries this build writes for new indexes (`docs/FORMAT.md`):
/// 3 adds the document's record id to each node and the scalar quantization's range to the
/// meta record. Graphs of layout 2 are still read and written (in layout 2: their nodes
/// carry no record id).
pub(crate) const LAYOUT: u64 = 3;
/// A scalar-quantized graph of at most this many nodes (ever handed out) re-encodes all of
/// them to a wider range when a vector falls outside its range; a larger one clamps the
/// vector's components to the range.
const RECALIBRATE_NODES: u64 = 100_000;
/// A node's record id when it has none (layout 2, or a backend without record ids).
const NO_RID: u64 = u64::MAX;
/// Node ids are 4 bytes on disk: the most a graph hands out over its life (ids of deleted
/// nodes are not reused).
pub(crate) const MAX_NODE_ID: u64 = u32::MAX as u64 - 1;

/// A node id as stored (4 bytes; every id is at most [`MAX_NODE_ID`]).
fn id32(id: u64) -> u32 {
    u32::try_from(id).unwrap_or(u32::MAX)
}

pub(crate) fn node_key(id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(5);
    k.push(NODE);
    k.extend_from_slice(&id32(id).to_be_bytes());
    k
}

/// The node id of a node or level key's last four bytes.
pub(crate) fn key_id(k: &[u8]) -> Option<u64> {
    k.get(k.len().checked_sub(4)?..)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(|b| u64::from(u32::from_be_bytes(b)))
}

/// A document entry's node id.
pub(crate) fn doc_value_id(v: &[u8]) -> Option<u64> {
    <[u8; 4]>::try_from(v)
        .ok()
        .map(|b| u64::from(u32::from_le_bytes(b)))
}

pub(crate) fn doc_key(id_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id_key.len());
    k.push(DOC);
    k.extend_from_slice(id_key);
    k
}

pub(crate) fn level_key(level: usize, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(6);
    k.push(LEVEL);
    k.push(255 - u8::try_from(level).unwrap_or(255));
    k.extend_from_slice(&id32(id).to_be_bytes());
    k
}

/// Length of a level key.
pub(crate) const LEVEL_KEY_LEN: usize = 6;

/// The graph's meta record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Meta {
    /// The layout of the graph's entries (2 or [`LAYOUT`]).
    pub layout: u64,
    /// The entry node (`None`: the graph is empty).
    pub entry: Option<u64>,
    pub top: usize,
    pub next_id: u64,
    /// Names this version of the graph: drawn at random by every flush that changes it,
    /// so two views with the same tag hold the same graph (what [`SharedNodes`] relies on).
    pub tag: u64,
    /// A scalar-quantized index's code range, once calibrated (layout 3 only).
    pub quant: Option<Quant>,
}

/// How a graph's nodes are encoded (from its meta record).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Codec {
    /// Whether nodes carry their document's record id (layout 3).
    pub rid: bool,
    /// Whether nodes hold 8-bit codes (and their range) instead of float32.
    pub quant: Option<Quant>,
}

impl Meta {
    const LEN: usize = 48;
    /// The meta record of layout 2: the first five words.
    const LAYOUT2_LEN: usize = 40;
    /// The meta record of layout 1 (earlier builds): entry, top level, next node id.
    const LAYOUT1_LEN: usize = 24;

    /// The meta of a graph not written yet (this build's layout).
    pub(crate) fn empty() -> Self {
        Self {
            layout: LAYOUT,
            entry: None,
            top: 0,
            next_id: 0,
            tag: 0,
            quant: None,
        }
    }

    pub(crate) fn codec(&self) -> Codec {
        Codec {
            rid: self.layout >= 3,
            quant: self.quant,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        v.extend_from_slice(&self.layout.to_le_bytes());
        v.extend_from_slice(&self.entry.unwrap_or(NONE).to_le_bytes());
        v.extend_from_slice(&(self.top as u64).to_le_bytes());
        v.extend_from_slice(&self.next_id.to_le_bytes());
        v.extend_from_slice(&self.tag.to_le_bytes());
        if self.layout >= 3 {
            let (min, step) = self
                .quant
                .map_or((0, 0), |q| (q.min.to_bits(), q.step.to_bits()));
            v.extend_from_slice(&min.to_le_bytes());
            v.extend_from_slice(&step.to_le_bytes());
        }
        v
    }

    /// Errors: [`Error::Unsupported`] for a graph of layout 1 (written by earlier builds;
    /// the message says to create the index again), [`Error::Corrupt`] for anything else
    /// malformed.
    pub(crate) fn decode(b: &[u8]) -> Result<Self> {
        let word = |i: usize| {
            b.get(i * 8..i * 8 + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_le_bytes)
        };
        if b.len() == Self::LAYOUT1_LEN {
            return Err(Error::unsupported(
                "this vector index was built by an earlier release (graph layout 1, 8-byte node ids); \
                 this release reads layouts 2 and 3: drop the index and create it again to rebuild it",
            ));
        }
        let corrupt = || Error::Corrupt("vector index meta record is malformed".into());
        let quant = match (word(0), b.len()) {
            (Some(3), Self::LEN) => {
                let w = word(5).ok_or_else(corrupt)?;
                #[allow(clippy::cast_possible_truncation)] // the two halves of the word
                let (min, step) = (f32::from_bits(w as u32), f32::from_bits((w >> 32) as u32));
                if w == 0 {
                    None
                } else if min.is_finite() && step.is_finite() && step > 0.0 {
                    Some(Quant { min, step })
                } else {
                    return Err(corrupt());
                }
            }
            _ => None,
        };
        match (b.len(), word(0), word(1), word(2), word(3), word(4)) {
            (len, Some(layout), Some(entry), Some(top), Some(next_id), Some(tag))
                if ((len, layout) == (Self::LEN, 3) || (len, layout) == (Self::LAYOUT2_LEN, 2))
                    && top <= MAX_LEVEL as u64
                    && next_id <= MAX_NODE_ID + 1 =>
            {
                Ok(Self {
                    layout,
                    entry: (entry != NONE).then_some(entry),
                    top: usize::try_from(top).unwrap_or(0),
                    next_id,
                    tag,
                    quant,
                })
            }
            (_, Some(layout), ..) if layout > LAYOUT && b.len() >= Self::LAYOUT2_LEN => Err(Error::unsupported(format!(
                "this vector index was built by a later release (graph layout {layout}; this release reads layout {LAYOUT})"
            ))),
            _ => Err(corrupt()),
        }
    }
}

/// The vector part of a node: float32 LE, or one code per dimension.
fn encode_vec(v: &mut Vec<u8>, vec: &[f32], c: Codec) {
    match c.quant {
        Some(q) => v.extend(vec.iter().map(|x| q.code(*x))),
        None => {
            for x in vec {
                v.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
}

fn decode_vec(r: &mut Reader<'_>, dims: usize, c: Codec) -> Option<Vec<f32>> {
    Some(match c.quant {
        Some(q) => r.take(dims)?.iter().map(|x| q.value(*x)).collect(),
        None => r
            .take(dims * 4)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    })
}

fn decode_rid(r: &mut Reader<'_>, c: Codec) -> Option<Option<u64>> {
    if !c.rid {
        return Some(None);
    }
    let b = r.take(8)?;
    let rid = u64::from_le_bytes(b.try_into().ok()?);
    Some((rid != NO_RID).then_some(rid))
}

/// One node, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub level: usize,
    /// The document's `_id` key.
    pub id_key: Vec<u8>,
    /// The document's record id in its collection (layout 3; `None` when the storage
    /// gives none): results are read by it, without the `_id` map.
    pub rid: Option<u64>,
    /// The vector as the kernels take it (unit length for cosine; in a quantized graph the
    /// values its codes decode to).
    pub vec: Vec<f32>,
    /// Per level 0..=level: the neighbors a search follows.
    pub out: Vec<Vec<u64>>,
    /// Per level: the nodes whose `out` holds this one.
    pub inl: Vec<Vec<u64>>,
}

impl Node {
    /// Layout: level (u8), `_id` key length (u16 LE) and bytes, in layout 3 the record id
    /// (u64 LE, `u64::MAX`: none), the vector (float32 LE, or one code per dimension), then
    /// per level its out-links (count u16 LE, ids u32 LE) and in-links (count u32 LE, ids
    /// u32 LE).
    pub(crate) fn encode(&self, c: Codec) -> Vec<u8> {
        let links: usize = self.out.iter().chain(&self.inl).map(Vec::len).sum();
        let mut v = Vec::with_capacity(
            11 + self.id_key.len() + self.vec.len() * 4 + links * 4 + self.out.len() * 6,
        );
        v.push(u8::try_from(self.level).unwrap_or(u8::MAX));
        v.extend_from_slice(&u16::try_from(self.id_key.len()).unwrap_or(0).to_le_bytes());
        v.extend_from_slice(&self.id_key);
        if c.rid {
            v.extend_from_slice(&self.rid.unwrap_or(NO_RID).to_le_bytes());
        }
        encode_vec(&mut v, &self.vec, c);
        for (out, inl) in self.out.iter().zip(&self.inl) {
            v.extend_from_slice(&u16::try_from(out.len()).unwrap_or(0).to_le_bytes());
            for id in out {
                v.extend_from_slice(&id32(*id).to_le_bytes());
            }
            v.extend_from_slice(&u32::try_from(inl.len()).unwrap_or(0).to_le_bytes());
            for id in inl {
                v.extend_from_slice(&id32(*id).to_le_bytes());
            }
        }
        v
    }

    pub(crate) fn decode(b: &[u8], dims: usize, c: Codec) -> Result<Self> {
        let bad = || Error::Corrupt("vector index node is malformed".into());
        let mut r = Reader { b, at: 0 };
        let level = usize::from(r.take(1).ok_or_else(bad)?[0]);
        if level > MAX_LEVEL {
            return Err(bad());
        }
        let id_len = usize::from(r.u16().ok_or_else(bad)?);
        let id_key = r.take(id_len).ok_or_else(bad)?.to_vec();
        let rid = decode_rid(&mut r, c).ok_or_else(bad)?;
        let vec = decode_vec(&mut r, dims, c).ok_or_else(bad)?;
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
            rid,
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
        Some(self.ids32(n)?.map(u64::from).collect())
    }
    fn ids32(&mut self, n: usize) -> Option<impl Iterator<Item = u32> + 'a> {
        let s = self.take(n.checked_mul(4)?)?;
        Some(
            s.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
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
    meta: Option<Meta>,
    meta_dirty: bool,
    dirty: HashSet<u64, BuildHasherDefault<IdHasher>>,
    removed: Vec<(u64, usize)>,
    doc_puts: Vec<(Vec<u8>, Option<u64>)>,
    /// The collection and path of the indexed vectors: a quantized graph re-encoding its
    /// nodes to a wider range reads their exact vectors there.
    source: Option<(String, String)>,
}

impl Graph {
    pub(crate) fn new(table: &str, spec: &VectorSpec) -> Self {
        Self {
            table: table.to_owned(),
            spec: spec.clone(),
            nodes: HashMap::default(),
            meta: None,
            meta_dirty: false,
            dirty: HashSet::default(),
            removed: Vec::new(),
            doc_puts: Vec::new(),
            source: None,
        }
    }

    /// The graph of the vectors at `path` in collection `coll` (see `source`).
    pub(crate) fn reading(mut self, coll: &str, path: &str) -> Self {
        self.source = Some((coll.to_owned(), path.to_owned()));
        self
    }

    /// The exact (prepared) vector of node `id`'s document, read from the view.
    fn document_vector(&self, view: &dyn ReadView, id: u64) -> Option<Vec<f32>> {
        let (coll, path) = self.source.as_ref()?;
        let n = self.nodes.get(&id)?;
        let rec = view.get_at(coll, &n.id_key, n.rid)?;
        let body = crate::document::record::body_bytes(&rec).ok()?;
        let v = match super::raw_vector(body, path, &self.spec) {
            Some(v) => v,
            None => {
                let doc = crate::document::record::decode_body(&rec).ok()?.into_bson();
                match super::vector_at(&doc, path, &self.spec).ok()? {
                    super::Found::Vector(v) => v,
                    super::Found::Missing => return None,
                }
            }
        };
        Some(super::distance::prepare(self.spec.similarity, v))
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
            None => Meta::empty(),
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
            Some(b) => Some(doc_value_id(&b).ok_or_else(|| {
                Error::Corrupt("vector index document entry is malformed".into())
            })?),
            None => None,
        };
        check_fault(view)?;
        Ok(r)
    }

    /// Decodes node `id` into the cache.
    pub(crate) fn load(&mut self, view: &dyn ReadView, id: u64) -> Result<&Arc<Node>> {
        if !self.nodes.contains_key(&id) {
            let codec = self.meta(view)?.codec();
            let Some(b) = view.get(&self.table, &node_key(id)) else {
                check_fault(view)?;
                return Err(missing(&self.table, id));
            };
            let n = Arc::new(Node::decode(&b, self.spec.dims as usize, codec)?);
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
        mut admit: Admit<'_>,
    ) -> Result<Vec<Near>> {
        let mut visited: HashSet<u64, BuildHasherDefault<IdHasher>> =
            HashSet::with_capacity_and_hasher(ef * 8, BuildHasherDefault::default());
        let mut candidates: BinaryHeap<Reverse<Near>> = BinaryHeap::new();
        let mut found: BinaryHeap<Near> = BinaryHeap::new();
        for e in entries {
            if visited.insert(e.1) {
                candidates.push(Reverse(*e));
                if admitted(&mut admit, || Ok(&self.load(view, e.1)?.id_key))? {
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
                    if admitted(&mut admit, || Ok(&self.nodes[&n].id_key))? {
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

    /// Gives an empty scalar-quantized graph its code range (an index build, from every
    /// vector it is about to insert); nothing for other graphs.
    pub(crate) fn calibrate(&mut self, view: &dyn ReadView, q: Quant) -> Result<()> {
        let mut meta = self.meta(view)?;
        if self.spec.scalar && meta.layout >= 3 && meta.quant.is_none() && meta.entry.is_none() {
            meta.quant = Some(q);
            self.set_meta(meta);
        }
        Ok(())
    }

    /// A graph's vector as its nodes keep it: in a scalar-quantized graph the values of
    /// its codes (the graph's range set from `vec` itself when it has none yet).
    pub(crate) fn stored_vec(&mut self, view: &dyn ReadView, vec: Vec<f32>) -> Result<Vec<f32>> {
        if !self.spec.scalar {
            return Ok(vec);
        }
        let mut meta = self.meta(view)?;
        if meta.layout < 3 {
            return Ok(vec);
        }
        let q = match meta.quant {
            Some(q) if !q.holds(&vec) && meta.next_id <= RECALIBRATE_NODES => {
                let (lo, hi) = min_max(&vec);
                let wider = Quant::widened(lo.min(q.min), hi.max(q.value(255)));
                self.requantize(view, wider)?;
                wider
            }
            Some(q) => q,
            None => {
                let (lo, hi) = min_max(&vec);
                let q = Quant::widened(lo, hi);
                meta.quant = Some(q);
                self.set_meta(meta);
                q
            }
        };
        Ok(q.round_trip(&vec))
    }

    /// Gives a quantized graph the code range `q`: every node's vector re-encoded (all of
    /// them loaded under the old range first, then written under the new one), from its
    /// document's exact vector (from the values of its old codes when that cannot be read).
    fn requantize(&mut self, view: &dyn ReadView, q: Quant) -> Result<()> {
        let mut after = vec![NODE];
        loop {
            let batch = view.scan(&self.table, Some(&after), 256);
            check_fault(view)?;
            let Some((last, _)) = batch.last() else { break };
            let mut done = false;
            for (k, _) in &batch {
                if k.first() != Some(&NODE) {
                    done = true;
                    break;
                }
                if let Some(id) = key_id(k) {
                    if !self.removed.iter().any(|(r, _)| *r == id) {
                        self.load(view, id)?;
                    }
                }
            }
            if done {
                break;
            }
            after = last.to_vec();
        }
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            let exact = self.document_vector(view, id);
            let n = self.node_mut(view, id)?;
            n.vec = q.round_trip(exact.as_deref().unwrap_or(&n.vec));
        }
        let mut meta = self.meta(view)?;
        meta.quant = Some(q);
        self.set_meta(meta);
        Ok(())
    }

    /// Sets node `id`'s record id (its document got another one with the same vector).
    pub(crate) fn set_rid(&mut self, view: &dyn ReadView, id: u64, rid: Option<u64>) -> Result<()> {
        if self.load(view, id)?.rid != rid {
            self.node_mut(view, id)?.rid = rid;
        }
        Ok(())
    }

    /// Adds the document `id_key` (record id `rid`) with vector `vec` (prepared: see
    /// [`super::distance::prepare`]); returns its node id.
    pub(crate) fn insert(
        &mut self,
        view: &dyn ReadView,
        id_key: &[u8],
        rid: Option<u64>,
        vec: Vec<f32>,
    ) -> Result<u64> {
        if id_key.len() > usize::from(u16::MAX) {
            return Err(Error::invalid(
                "a document whose _id takes more than 65535 bytes cannot be in a vector index",
            ));
        }
        let vec = self.stored_vec(view, vec)?;
        let mut meta = self.meta(view)?;
        let id = meta.next_id;
        if id > MAX_NODE_ID {
            return Err(Error::unsupported(format!(
                "vector index '{}' has handed out all {MAX_NODE_ID} node ids (ids of deleted documents are not reused): drop the index and create it again",
                self.table
            )));
        }
        meta.next_id += 1;
        let level = level_of(id, self.spec.m);
        let q = vec.clone();
        self.nodes.insert(
            id,
            Arc::new(Node {
                level,
                id_key: id_key.to_vec(),
                rid,
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
            let found = self.search_level(view, &q, &entries, ef, l, None)?;
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
        let mut after = vec![LEVEL];
        loop {
            let batch = view.scan(&self.table, Some(&after), 16);
            check_fault(view)?;
            let Some((k, _)) = batch.first() else { break };
            if k.first() != Some(&LEVEL) || k.len() != LEVEL_KEY_LEN {
                break;
            }
            for (k, _) in &batch {
                if k.first() != Some(&LEVEL) || k.len() != LEVEL_KEY_LEN {
                    break;
                }
                let n = key_id(k).unwrap_or(id);
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
                let n = key_id(k).unwrap_or(id);
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
        admit: Admit<'_>,
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
        // Each kind of entry in key order, kind after kind: a build's puts then all land
        // at the right end of the table's tree, which splits there and leaves full pages
        // (a level entry put between two nodes made every later node split a page in half).
        let mut levels = Vec::new();
        let codec = self.meta.unwrap_or_else(Meta::empty).codec();
        for id in dirty {
            let n = &self.nodes[&id];
            let fresh = t.get(&table, &node_key(id)).is_none();
            if fresh && n.level > 0 {
                levels.push(level_key(n.level, id));
            }
            t.put(
                &table,
                Bytes::from(node_key(id)),
                Bytes::from(n.encode(codec)),
            )?;
        }
        // In key order (stable: a later change of one document still comes last).
        let mut doc_puts = std::mem::take(&mut self.doc_puts);
        doc_puts.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, n) in doc_puts {
            match n {
                Some(n) => t.put(
                    &table,
                    Bytes::from(doc_key(&k)),
                    Bytes::copy_from_slice(&id32(n).to_le_bytes()),
                )?,
                None => {
                    t.delete(&table, &doc_key(&k))?;
                }
            }
        }
        levels.sort_unstable();
        for k in levels {
            t.put(&table, Bytes::from(k), Bytes::new())?;
        }
        if self.meta_dirty {
            if let Some(m) = &mut self.meta {
                // A new version of the graph: a new tag (never 0, the empty graph's).
                m.tag = fastrand::u64(1..);
                t.put(&table, Bytes::from_static(META), Bytes::from(m.encode()))?;
            }
            self.meta_dirty = false;
        }
        Ok(())
    }
}

/// A node as searches of committed versions keep it: ids 4 bytes, no in-links.
pub(crate) struct ReadNode {
    level: u8,
    pub id_key: Box<[u8]>,
    pub rid: Option<u64>,
    vec: Box<[f32]>,
    /// Out-links of every level, level 0's first; `ends[l]` is where level `l`'s end.
    links: Box<[u32]>,
    ends: Box<[u16]>,
}

impl ReadNode {
    fn decode(b: &[u8], dims: usize, c: Codec) -> Result<Self> {
        let bad = || Error::Corrupt("vector index node is malformed".into());
        let mut r = Reader { b, at: 0 };
        let level = r.take(1).ok_or_else(bad)?[0];
        if usize::from(level) > MAX_LEVEL {
            return Err(bad());
        }
        let id_len = usize::from(r.u16().ok_or_else(bad)?);
        let id_key = r.take(id_len).ok_or_else(bad)?.into();
        let rid = decode_rid(&mut r, c).ok_or_else(bad)?;
        let vec = decode_vec(&mut r, dims, c).ok_or_else(bad)?.into();
        let mut links = Vec::new();
        let mut ends = Vec::with_capacity(usize::from(level) + 1);
        for _ in 0..=level {
            let n = usize::from(r.u16().ok_or_else(bad)?);
            links.extend(r.ids32(n).ok_or_else(bad)?);
            ends.push(u16::try_from(links.len()).map_err(|_| bad())?);
            let n = usize::try_from(r.u32().ok_or_else(bad)?).map_err(|_| bad())?;
            r.take(n.checked_mul(4).ok_or_else(bad)?).ok_or_else(bad)?;
        }
        if r.at != b.len() {
            return Err(bad());
        }
        Ok(Self {
            level,
            id_key,
            rid,
            vec,
            links: links.into(),
            ends: ends.into(),
        })
    }

    /// The out-links on `level` (none above the node's own level).
    #[inline]
    fn out(&self, level: usize) -> &[u32] {
        if level > usize::from(self.level) {
            return &[];
        }
        let start = if level == 0 {
            0
        } else {
            usize::from(self.ends[level - 1])
        };
        &self.links[start..usize::from(self.ends[level])]
    }
}

/// The error of a link to a node the table does not hold.
fn missing(table: &str, id: u64) -> Error {
    Error::Corrupt(format!(
        "vector index '{table}': node {id} is linked but missing"
    ))
}

/// One version of a vector index's graph (named by the meta's tag) as the searches of
/// committed snapshots read it, shared by all of them. First a dense table indexed by node
/// id (ids are handed out in order and never reused, so the meta's next id bounds them),
/// each slot filled once, when a search first reaches the node, from the index's pages.
/// Once the version has answered [`flat_after`] searches, its level 0 is copied into one
/// flat arena ([`Flat`]: the vectors back to back, the links at a fixed stride), which
/// the searches read from then on, as hnswlib reads its own. A commit that leaves the
/// index alone leaves its tag and so all this in place; one that changes it gives it a
/// new tag (and the readers of the new version a new table). A search's visited set is a
/// generation-stamped array over the same ids.
///
/// Graphs whose decoded nodes would take more than [`SHARED_BYTES`] are searched without
/// it (each search decoding what it reads, as a write transaction's searches do).
pub(crate) struct SharedNodes {
    table: String,
    meta: Meta,
    spec: VectorSpec,
    slots: Box<[std::sync::OnceLock<ReadNode>]>,
    searches: std::sync::atomic::AtomicUsize,
    /// `Some(None)`: the flat copy could not be made (a read failure, or damage the slots'
    /// searches will report); the slots serve.
    flat: std::sync::OnceLock<Option<Flat>>,
}

/// Level 0 of a graph version, flat: node `i`'s vector is `vecs[i * dims..][..dims]` (in a
/// quantized graph its codes `codes[i * dims..][..dims]`, their sum `sums[i]`), its link
/// count `links[i * stride]` and its links the ones after it; its `_id` key
/// `keys[key_ends[i - 1]..key_ends[i]]` and its record id `rids[i]`. Every link points at a
/// node of the version (checked when made).
struct Flat {
    dims: usize,
    stride: usize,
    sim: super::Similarity,
    quant: Option<Quant>,
    vecs: Box<[f32]>,
    codes: Box<[u8]>,
    sums: Box<[u32]>,
    links: Box<[u32]>,
    keys: Box<[u8]>,
    key_ends: Box<[usize]>,
    rids: Box<[u64]>,
}

/// A query as level 0's search compares it: the (prepared) vector, and in a quantized
/// graph's flat copy its codes and their sum.
pub(crate) struct Query<'q> {
    f: &'q [f32],
    codes: Vec<u8>,
    sum: u32,
}

/// Searches a graph version answers from its slots before its flat copy is made: the
/// copy reads every node once, about what a few dozen searches read.
fn flat_after(nodes: usize) -> usize {
    8 + nodes / 2000
}

/// What level 0's search reads: the slots or the flat copy.
trait Level0 {
    fn dist(&self, view: &dyn ReadView, q: &Query<'_>, id: u32) -> Result<f32>;
    fn links(&self, view: &dyn ReadView, id: u32) -> Result<&[u32]>;
    fn key(&self, view: &dyn ReadView, id: u32) -> Result<&[u8]>;
    /// Starts loading what [`Level0::dist`] of `id` reads (a hint; nothing when unknown).
    #[inline]
    fn prefetch_vec(&self, _id: u32) {}
    /// Starts loading what [`Level0::links`] of `id` reads.
    #[inline]
    fn prefetch_links(&self, _id: u32) {}
}

impl Level0 for SharedNodes {
    #[inline]
    fn dist(&self, view: &dyn ReadView, q: &Query<'_>, id: u32) -> Result<f32> {
        Ok(distance(
            self.spec.similarity,
            q.f,
            &self.node(view, id)?.vec,
        ))
    }
    #[inline]
    fn links(&self, view: &dyn ReadView, id: u32) -> Result<&[u32]> {
        Ok(self.node(view, id)?.out(0))
    }
    #[inline]
    fn key(&self, view: &dyn ReadView, id: u32) -> Result<&[u8]> {
        Ok(&self.node(view, id)?.id_key)
    }
}

impl Flat {
    fn bad(id: u32) -> Error {
        Error::Corrupt(format!("vector index: node {id} is linked but missing"))
    }

    fn rid(&self, id: u32) -> Option<u64> {
        self.rids.get(id as usize).copied().filter(|r| *r != NO_RID)
    }
}

/// Starts loading the cache lines of `bytes` (at most eight).
#[inline]
fn prefetch_lines(bytes: &[u8]) {
    for at in (0..bytes.len()).step_by(64).take(8) {
        crate::prefetch::prefetch(&bytes[at..]);
    }
}

impl Level0 for Flat {
    #[inline]
    fn dist(&self, _: &dyn ReadView, q: &Query<'_>, id: u32) -> Result<f32> {
        let at = id as usize * self.dims;
        match self.quant {
            Some(quant) => {
                let c = self
                    .codes
                    .get(at..at + self.dims)
                    .ok_or_else(|| Self::bad(id))?;
                let sb = self.sums[id as usize];
                Ok(quant.distance(
                    self.sim,
                    self.dims,
                    code_sums(self.sim, &q.codes, c, q.sum, sb),
                ))
            }
            None => {
                let v = self
                    .vecs
                    .get(at..at + self.dims)
                    .ok_or_else(|| Self::bad(id))?;
                Ok(distance(self.sim, q.f, v))
            }
        }
    }
    #[inline]
    fn links(&self, _: &dyn ReadView, id: u32) -> Result<&[u32]> {
        let at = id as usize * self.stride;
        let n = *self.links.get(at).ok_or_else(|| Self::bad(id))? as usize;
        self.links
            .get(at + 1..at + 1 + n)
            .ok_or_else(|| Self::bad(id))
    }
    #[inline]
    fn key(&self, _: &dyn ReadView, id: u32) -> Result<&[u8]> {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.key_ends[i - 1] };
        self.keys
            .get(start..*self.key_ends.get(i).ok_or_else(|| Self::bad(id))?)
            .ok_or_else(|| Self::bad(id))
    }
    #[inline]
    fn prefetch_vec(&self, id: u32) {
        let at = id as usize * self.dims;
        if self.quant.is_some() {
            if let Some(c) = self.codes.get(at..at + self.dims) {
                prefetch_lines(c);
            }
        } else if let Some(v) = self.vecs.get(at..at + self.dims) {
            prefetch_floats(v);
        }
    }
    #[inline]
    fn prefetch_links(&self, id: u32) {
        let at = id as usize * self.stride;
        if let Some(l) = self.links.get(at..at + self.stride) {
            for i in (0..l.len()).step_by(16) {
                crate::prefetch::prefetch_value(&l[i]);
            }
        }
    }
}

/// Starts loading the cache lines of a float vector (at most eight).
#[inline]
fn prefetch_floats(v: &[f32]) {
    for i in (0..v.len()).step_by(16).take(8) {
        crate::prefetch::prefetch_value(&v[i]);
    }
}

/// Versions of graphs whose nodes are kept (the newest used first).
const VERSIONS_KEPT: usize = 8;
/// Versions kept per index (a reader of the previous version and one of the newest).
const VERSIONS_PER_INDEX: usize = 2;
/// Most bytes of decoded nodes (estimated from the meta before the first is read) a graph
/// version may take to be shared.
const SHARED_BYTES: usize = 1 << 30;

static SHARED: Mutex<Vec<Arc<SharedNodes>>> = Mutex::new(Vec::new());

thread_local! {
    /// A search's visited marks: `marks[id] == stamp` when node `id` was visited. Two bytes
    /// a node (as hnswlib's), so that more of them stay in the caches; all reset once every
    /// 65,535 searches, when the stamp wraps.
    static VISITED: std::cell::RefCell<(Vec<u16>, u16)> = const { std::cell::RefCell::new((Vec::new(), 0)) };
}

impl SharedNodes {
    /// The shared nodes of the graph `view` (a committed snapshot) holds in `table`:
    /// `None` when `view` is not a committed snapshot or the graph is too large to share.
    pub(crate) fn of(
        view: &dyn ReadView,
        table: &str,
        spec: &VectorSpec,
    ) -> Result<Option<Arc<Self>>> {
        if view.snapshot_id().is_none() {
            return Ok(None);
        }
        let meta = match view.get(table, META) {
            Some(b) => Meta::decode(&b)?,
            None => Meta::empty(),
        };
        check_fault(view)?;
        let mut all = SHARED.lock();
        if let Some(at) = all
            .iter()
            .position(|s| s.meta.tag == meta.tag && s.table == table && s.spec == *spec)
        {
            let s = all.remove(at);
            all.push(Arc::clone(&s));
            return Ok(Some(s));
        }
        let n = usize::try_from(meta.next_id).unwrap_or(usize::MAX);
        // The slots' nodes, then the flat copy of level 0.
        let per_node = 2 * (96 + spec.dims as usize * 4 + spec.m as usize * 12);
        if n.saturating_mul(per_node) > SHARED_BYTES {
            return Ok(None);
        }
        if all.iter().filter(|s| s.table == table).count() >= VERSIONS_PER_INDEX {
            if let Some(at) = all.iter().position(|s| s.table == table) {
                all.remove(at);
            }
        }
        if all.len() >= VERSIONS_KEPT {
            all.remove(0);
        }
        let s = Arc::new(Self {
            table: table.to_owned(),
            meta,
            spec: spec.clone(),
            slots: (0..n).map(|_| std::sync::OnceLock::new()).collect(),
            searches: std::sync::atomic::AtomicUsize::new(0),
            flat: std::sync::OnceLock::new(),
        });
        all.push(Arc::clone(&s));
        Ok(Some(s))
    }

    /// Node `id`, decoded from `view` the first time.
    #[inline]
    pub(crate) fn node(&self, view: &dyn ReadView, id: u32) -> Result<&ReadNode> {
        let slot = self
            .slots
            .get(id as usize)
            .ok_or_else(|| missing(&self.table, u64::from(id)))?;
        if let Some(n) = slot.get() {
            return Ok(n);
        }
        self.fill(view, slot, id)
    }

    #[cold]
    fn fill<'s>(
        &'s self,
        view: &dyn ReadView,
        slot: &'s std::sync::OnceLock<ReadNode>,
        id: u32,
    ) -> Result<&'s ReadNode> {
        let Some(b) = view.get(&self.table, &node_key(u64::from(id))) else {
            check_fault(view)?;
            return Err(missing(&self.table, u64::from(id)));
        };
        check_fault(view)?;
        let n = ReadNode::decode(&b, self.spec.dims as usize, self.meta.codec())?;
        let _ = slot.set(n);
        Ok(slot.get().expect("set just above"))
    }

    /// The `_id` key and record id of node `id`'s document.
    pub(crate) fn doc_ref(&self, view: &dyn ReadView, id: u32) -> Result<(&[u8], Option<u64>)> {
        match self.flat.get() {
            Some(Some(f)) => Ok((f.key(view, id)?, f.rid(id))),
            _ => {
                let n = self.node(view, id)?;
                Ok((&n.id_key, n.rid))
            }
        }
    }

    /// Copies level 0 of this version into a [`Flat`] arena, reading every node of `view`
    /// (which holds this version: the same tag). `None` when a read fails or the nodes do
    /// not make a consistent graph (the searches through the slots then report it).
    fn make_flat(&self, view: &dyn ReadView) -> Option<Flat> {
        let dims = self.spec.dims as usize;
        let stride = 1 + self.spec.max_links(0);
        let n = self.slots.len();
        let mut vecs = vec![0f32; n * dims];
        let mut links = vec![0u32; n * stride];
        let mut keys = Vec::new();
        let mut key_ends = vec![0usize; n];
        let mut rids = vec![NO_RID; n];
        let mut present = vec![false; n];
        let codec = self.meta.codec();
        let mut next = 0usize;
        let mut after = vec![NODE];
        loop {
            let batch = view.scan(&self.table, Some(&after), 256);
            if view.fault().is_some() {
                return None;
            }
            let Some((last, _)) = batch.last() else { break };
            after = last.to_vec();
            for (k, v) in &batch {
                if k.first() != Some(&NODE) {
                    return self.finish_flat(
                        dims, stride, vecs, links, keys, key_ends, rids, &present, next,
                    );
                }
                let id = usize::try_from(key_id(k).filter(|_| k.len() == 5)?).ok()?;
                if id >= n || id < next {
                    return None;
                }
                let node = ReadNode::decode(v, dims, codec).ok()?;
                let out = node.out(0);
                if out.len() >= stride {
                    return None;
                }
                for e in &mut key_ends[next..id] {
                    *e = keys.len();
                }
                keys.extend_from_slice(&node.id_key);
                key_ends[id] = keys.len();
                rids[id] = node.rid.unwrap_or(NO_RID);
                next = id + 1;
                present[id] = true;
                vecs[id * dims..(id + 1) * dims].copy_from_slice(&node.vec);
                links[id * stride] = u32::try_from(out.len()).ok()?;
                links[id * stride + 1..id * stride + 1 + out.len()].copy_from_slice(out);
            }
        }
        self.finish_flat(
            dims, stride, vecs, links, keys, key_ends, rids, &present, next,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_flat(
        &self,
        dims: usize,
        stride: usize,
        vecs: Vec<f32>,
        links: Vec<u32>,
        keys: Vec<u8>,
        mut key_ends: Vec<usize>,
        rids: Vec<u64>,
        present: &[bool],
        next: usize,
    ) -> Option<Flat> {
        for e in &mut key_ends[next..] {
            *e = keys.len();
        }
        // Every link to a node of this version.
        for (i, chunk) in links.chunks_exact(stride).enumerate() {
            if !present[i] && chunk[0] != 0 {
                return None;
            }
            let count = chunk[0] as usize;
            if chunk[1..=count]
                .iter()
                .any(|t| !present.get(*t as usize).copied().unwrap_or(false))
            {
                return None;
            }
        }
        // A quantized graph's flat copy keeps the codes (a quarter of the vectors' bytes)
        // and their sums; the values the nodes decode to give them back exactly.
        let (vecs, codes, sums) = match self.meta.quant {
            Some(q) => {
                let codes = q.codes(&vecs);
                let sums = codes.chunks_exact(dims.max(1)).map(code_sum).collect();
                (Box::default(), codes.into(), sums)
            }
            None => (vecs.into(), Box::default(), Box::default()),
        };
        Some(Flat {
            dims,
            stride,
            sim: self.spec.similarity,
            quant: self.meta.quant,
            vecs,
            codes,
            sums,
            links: links.into(),
            keys: keys.into(),
            key_ends: key_ends.into(),
            rids: rids.into(),
        })
    }

    #[inline]
    fn dist_f(&self, view: &dyn ReadView, q: &[f32], id: u32) -> Result<f32> {
        Ok(distance(self.spec.similarity, q, &self.node(view, id)?.vec))
    }

    /// The `k` nodes nearest `q` that `admit` accepts, searching level 0 with `ef` (at
    /// least `k`), nearest first: the search of [`Graph::knn`] over the shared nodes.
    pub(crate) fn knn(
        &self,
        view: &dyn ReadView,
        q: &[f32],
        k: usize,
        ef: usize,
        admit: Admit<'_>,
    ) -> Result<Vec<Near>> {
        let Some(entry) = self.meta.entry else {
            return Ok(Vec::new());
        };
        let flat = match self.flat.get() {
            Some(f) => f.as_ref(),
            None => {
                let done = self
                    .searches
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if done >= flat_after(self.slots.len()) {
                    self.flat.get_or_init(|| self.make_flat(view)).as_ref()
                } else {
                    None
                }
            }
        };
        let entry = u32::try_from(entry).map_err(|_| missing(&self.table, entry))?;
        // Greedy descent to level 1 (through the slots: few nodes, the same each time).
        let mut cur = (self.dist_f(view, q, entry)?, entry);
        for level in (1..=self.meta.top).rev() {
            loop {
                let mut moved = false;
                for &n in self.node(view, cur.1)?.out(level) {
                    let d = self.dist_f(view, q, n)?;
                    if Near(d, u64::from(n)) < Near(cur.0, u64::from(cur.1)) {
                        cur = (d, n);
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        let ef = ef.max(k);
        let start = Near(cur.0, u64::from(cur.1));
        let query = match (flat, self.meta.quant) {
            (Some(_), Some(quant)) => {
                let codes = quant.codes(q);
                let sum = code_sum(&codes);
                Query { f: q, codes, sum }
            }
            _ => Query {
                f: q,
                codes: Vec::new(),
                sum: 0,
            },
        };
        // The start's distance as level 0's search compares (the flat copy's own).
        let start = match flat {
            Some(f) => Near(f.dist(view, &query, cur.1)?, start.1),
            None => start,
        };
        let mut found = VISITED.with(|v| {
            let mut v = v.borrow_mut();
            let (marks, stamp) = &mut *v;
            if marks.len() < self.slots.len() {
                marks.resize(self.slots.len(), 0);
            }
            *stamp = stamp.wrapping_add(1);
            if *stamp == 0 {
                marks.fill(0);
                *stamp = 1;
            }
            let marks = &mut marks[..self.slots.len()];
            match flat {
                Some(f) => search0(f, view, &query, start, ef, admit, marks, *stamp),
                None => search0(self, view, &query, start, ef, admit, marks, *stamp),
            }
        })?;
        found.truncate(k);
        check_fault(view)?;
        Ok(found)
    }
}

/// Which nodes a search may return: `None`, every node; `Some(f)`, those whose `_id` key
/// `f` accepts (a search's filter). Refused nodes are still walked through.
pub(crate) type Admit<'a> = Option<&'a mut dyn FnMut(&[u8]) -> Result<bool>>;

/// Whether `admit` accepts the node whose `_id` key `key` reads: without a filter, yes,
/// and the key is never read (each read would be a cache miss of its own).
#[inline]
fn admitted<'k>(admit: &mut Admit<'_>, key: impl FnOnce() -> Result<&'k [u8]>) -> Result<bool> {
    match admit.as_deref_mut() {
        None => Ok(true),
        Some(f) => f(key()?),
    }
}

/// Level 0's search from `start` over `g` (see [`Graph::search_level`]). The unvisited
/// neighbors of a candidate are gathered first and their vectors' loads started, then
/// compared (the comparisons wait on those loads, not one after another); a neighbor that
/// becomes a candidate has its link list's load started too.
#[allow(clippy::too_many_arguments)]
#[inline]
fn search0<L: Level0>(
    g: &L,
    view: &dyn ReadView,
    q: &Query<'_>,
    start: Near,
    ef: usize,
    mut admit: Admit<'_>,
    marks: &mut [u16],
    stamp: u16,
) -> Result<Vec<Near>> {
    let bad = |id: u64| Error::Corrupt(format!("vector index: node {id} is linked but missing"));
    let mut candidates: BinaryHeap<Reverse<Packed>> = BinaryHeap::with_capacity(ef * 4);
    let mut found: BinaryHeap<Packed> = BinaryHeap::with_capacity(ef + 1);
    let mut fresh: Vec<u32> = Vec::with_capacity(64);
    let sid = u32::try_from(start.1).map_err(|_| bad(start.1))?;
    *marks.get_mut(sid as usize).ok_or_else(|| bad(start.1))? = stamp;
    let start = Packed::new(start.0, sid);
    candidates.push(Reverse(start));
    if admitted(&mut admit, || g.key(view, sid))? {
        found.push(start);
    }
    while let Some(Reverse(c)) = candidates.pop() {
        if found.len() >= ef && found.peek().is_some_and(|w| c > *w) {
            break;
        }
        fresh.clear();
        for &n in g.links(view, c.id())? {
            let Some(m) = marks.get_mut(n as usize) else {
                return Err(bad(u64::from(n)));
            };
            if *m == stamp {
                continue;
            }
            *m = stamp;
            g.prefetch_vec(n);
            fresh.push(n);
        }
        for &n in &fresh {
            let d = Packed::new(g.dist(view, q, n)?, n);
            if found.len() < ef || found.peek().is_some_and(|w| d < *w) {
                // Most candidates are expanded later: their link lists start loading now.
                g.prefetch_links(n);
                candidates.push(Reverse(d));
                if admitted(&mut admit, || g.key(view, n))? {
                    found.push(d);
                    if found.len() > ef {
                        found.pop();
                    }
                }
            }
        }
    }
    Ok(found
        .into_sorted_vec()
        .into_iter()
        .map(Packed::near)
        .collect())
}

/// A distance and a node id in one integer that orders as [`Near`] does (the distance by
/// `f32::total_cmp`, then the id): level 0's search compares them in its heaps with one
/// integer comparison instead of a float's total order and a second one for ties.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Packed(u64);

impl Packed {
    #[inline]
    fn new(d: f32, id: u32) -> Self {
        let b = d.to_bits();
        // Negative floats (sign bit set) order backwards by their bits: all bits flipped;
        // the others after every negative one: sign bit set.
        let key = if b >> 31 == 1 { !b } else { b | 1 << 31 };
        Self(u64::from(key) << 32 | u64::from(id))
    }

    #[inline]
    fn id(self) -> u32 {
        #[allow(clippy::cast_possible_truncation)] // the low half
        let id = self.0 as u32;
        id
    }

    fn near(self) -> Near {
        #[allow(clippy::cast_possible_truncation)] // the high half
        let key = (self.0 >> 32) as u32;
        let b = if key >> 31 == 1 {
            key & !(1 << 31)
        } else {
            !key
        };
        Near(f32::from_bits(b), u64::from(self.id()))
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
    fn packed_orders_as_near_and_unpacks() {
        let ds = [
            f32::NEG_INFINITY,
            -3.5,
            -1e-30,
            -0.0,
            0.0,
            1e-30,
            0.25,
            2.0,
            7.5e12,
            f32::INFINITY,
        ];
        let mut all = Vec::new();
        for d in ds {
            for id in [0u32, 1, 77, u32::MAX] {
                all.push((Near(d, u64::from(id)), Packed::new(d, id)));
            }
        }
        for (a, pa) in &all {
            let back = pa.near();
            assert_eq!((back.0.to_bits(), back.1), (a.0.to_bits(), a.1));
            for (b, pb) in &all {
                assert_eq!(pa.cmp(pb), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn nodes_round_trip_and_damage_is_corrupt() {
        let n = Node {
            level: 2,
            id_key: b"\x02abc".to_vec(),
            rid: Some(77),
            vec: vec![1.5, -2.0, 0.25],
            out: vec![vec![1, 2, 3], vec![4], vec![]],
            inl: vec![vec![9], vec![], vec![7, 8]],
        };
        let c = Meta::empty().codec();
        let b = n.encode(c);
        assert_eq!(Node::decode(&b, 3, c).unwrap(), n);
        for cut in 0..b.len() {
            assert!(
                matches!(Node::decode(&b[..cut], 3, c), Err(Error::Corrupt(_))),
                "cut at {cut}"
            );
        }
        // Layout 2: no record id.
        let c2 = Codec {
            rid: false,
            quant: None,
        };
        let b2 = n.encode(c2);
        assert_eq!(b2.len() + 8, b.len());
        let n2 = Node::decode(&b2, 3, c2).unwrap();
        assert_eq!((n2.rid, &n2.vec, &n2.out), (None, &n.vec, &n.out));
        // Quantized: one byte per dimension, the values the codes decode to.
        let cq = Codec {
            rid: true,
            quant: Some(Quant::covering(-2.0, 2.0)),
        };
        let bq = n.encode(cq);
        assert_eq!(bq.len() + 9, b.len());
        let nq = Node::decode(&bq, 3, cq).unwrap();
        for (x, y) in nq.vec.iter().zip(&n.vec) {
            assert!((x - y).abs() <= 2.0 / 255.0, "{x} {y}");
        }
        assert_eq!(Node::decode(&nq.encode(cq), 3, cq).unwrap(), nq);
        let m = Meta {
            layout: LAYOUT,
            entry: Some(5),
            top: 3,
            next_id: 77,
            tag: 0xfeed,
            quant: None,
        };
        assert_eq!(Meta::decode(&m.encode()).unwrap(), m);
        let mq = Meta {
            quant: cq.quant,
            ..m
        };
        assert_eq!(Meta::decode(&mq.encode()).unwrap(), mq);
        let m2 = Meta { layout: 2, ..m };
        assert_eq!(m2.encode().len(), 40);
        assert_eq!(Meta::decode(&m2.encode()).unwrap(), m2);
        assert!(matches!(Meta::decode(&[0; 23]), Err(Error::Corrupt(_))));
        let mut later = m.encode();
        later[0] = 4;
        assert!(matches!(Meta::decode(&later), Err(Error::Unsupported(_))));
        // The shared reader's decoding agrees with the writer's.
        let r = ReadNode::decode(&b, 3, c).unwrap();
        assert_eq!(r.rid, Some(77));
        assert_eq!(&*r.id_key, &n.id_key[..]);
        assert_eq!(&*r.vec, &n.vec[..]);
        assert_eq!(r.out(0), &[1, 2, 3]);
        assert_eq!(r.out(1), &[4]);
        assert!(r.out(2).is_empty() && r.out(3).is_empty());
        for cut in 0..b.len() {
            assert!(ReadNode::decode(&b[..cut], 3, c).is_err(), "cut at {cut}");
        }
    }

    /// A database at `dir` whose collection `c` has a 2-dimensional HNSW index `vec` over
    /// `v` and the documents 0, 1 and 2 at (0, 0), (1, 1) and (5, 5).
    fn three_points_2d(dir: &std::path::Path) -> crate::Database {
        use crate::{Database, Document, OpenOptions};
        let db = Database::open(dir.join("a.db"), OpenOptions::default()).unwrap();
        let c = db.collection("c");
        c.create_index_json(
            r#"{"v": "hnsw"}"#,
            Some(r#"{"numDimensions": 2, "name": "vec"}"#),
        )
        .unwrap();
        for (i, v) in [[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]].iter().enumerate() {
            let json = format!(r#"{{"_id": {i}, "v": [{}, {}]}}"#, v[0], v[1]);
            c.insert(Document::from_json(&json).unwrap()).unwrap();
        }
        db
    }

    /// The `_id` (as text) of the document of `c` nearest to the query vector `q` (JSON).
    fn nearest_id(db: &crate::Database, q: &str) -> String {
        let spec = format!(r#"{{"path": "v", "queryVector": {q}, "limit": 1}}"#);
        let mut hits = db.collection("c").vector_search_json(&spec).unwrap();
        hits.next()
            .unwrap()
            .unwrap()
            .get("_id")
            .unwrap()
            .to_string()
    }

    /// An index of graph layout 1 (earlier builds: a 24-byte meta record, 8-byte node ids)
    /// is refused by searches, by writes that touch it and by the check, each saying to
    /// create it again; dropping and creating it again rebuilds it in layout 2.
    #[test]
    fn an_index_of_layout_1_is_refused_until_created_again() {
        use crate::{Database, Document};
        let dir = tempfile::tempdir().unwrap();
        let db = three_points_2d(dir.path());
        let c = db.collection("c");
        let spec = r#"{"path": "v", "queryVector": [0.9, 0.9], "limit": 1}"#;
        let best = |db: &Database| nearest_id(db, "[0.9, 0.9]");
        assert_eq!(best(&db), "1");
        // The meta record as layout 1 wrote it: entry 0, top level 0, next id 3.
        let mut old = Vec::new();
        for w in [0u64, 0, 3] {
            old.extend_from_slice(&w.to_le_bytes());
        }
        db.write(|t| t.put("_ix$c$vec", Bytes::from_static(META), Bytes::from(old)))
            .unwrap();
        let refused = |e: Error| match e {
            Error::Unsupported(m) => assert!(
                m.contains("layout 1") && m.contains("drop the index and create it again"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        };
        refused(c.vector_search_json(spec).err().unwrap());
        refused(
            c.insert(Document::from_json(r#"{"_id": 9, "v": [2, 2]}"#).unwrap())
                .unwrap_err(),
        );
        let report = db.check_report().unwrap();
        assert_eq!(report["ok"], false, "{report}");
        assert!(report.to_string().contains("layout 1"), "{report}");
        // The rebuild path.
        c.drop_index("vec").unwrap();
        c.create_index_json(
            r#"{"v": "hnsw"}"#,
            Some(r#"{"numDimensions": 2, "name": "vec"}"#),
        )
        .unwrap();
        assert_eq!(best(&db), "1");
        c.insert(Document::from_json(r#"{"_id": 9, "v": [0.95, 0.95]}"#).unwrap())
            .unwrap();
        assert_eq!(best(&db), "9");
        db.check().unwrap();
    }

    /// An index of graph layout 2 (the previous release: 40-byte meta record, nodes without
    /// record ids) is still searched, written (in layout 2) and checked.
    #[test]
    fn an_index_of_layout_2_is_still_read_and_written() {
        use crate::Document;
        let dir = tempfile::tempdir().unwrap();
        let db = three_points_2d(dir.path());
        let c = db.collection("c");
        let table = "_ix$c$vec";
        // Rewrite the graph as layout 2 wrote it.
        db.write(|t| {
            let meta = Meta::decode(&t.get(table, META).unwrap())?;
            let (c3, c2) = (
                meta.codec(),
                Codec {
                    rid: false,
                    quant: None,
                },
            );
            for (k, v) in t.scan(table, None, 1000) {
                if k.first() == Some(&NODE) {
                    let n = Node::decode(&v, 2, c3)?;
                    assert!(n.rid.is_some());
                    t.put(table, k, Bytes::from(n.encode(c2)))?;
                }
            }
            let old = Meta { layout: 2, ..meta };
            t.put(table, Bytes::from_static(META), Bytes::from(old.encode()))
        })
        .unwrap();
        let best = nearest_id;
        assert_eq!(best(&db, "[0.9, 0.9]"), "1");
        db.check().unwrap();
        c.insert(Document::from_json(r#"{"_id": 9, "v": [4.0, 4.0]}"#).unwrap())
            .unwrap();
        c.delete(&bson::doc! {"_id": 2}, false).unwrap();
        assert_eq!(best(&db, "[4.9, 4.9]"), "9");
        db.check().unwrap();
        let snap = db.snapshot().unwrap();
        let meta = Meta::decode(&snap.get(table, META).unwrap()).unwrap();
        assert_eq!(meta.layout, 2, "written in its own layout");
    }

    /// The shared searches of committed snapshots (first through the slots, then through
    /// the flat copy) find what a transaction's own search of the same graph finds; a
    /// commit of other data keeps the shared nodes, one that changes the index replaces
    /// them.
    #[test]
    fn shared_searches_agree_with_the_graph_and_follow_the_index_version() {
        use crate::{Database, Document, OpenOptions};
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path().join("a.db"), OpenOptions::default()).unwrap();
        let c = db.collection("c");
        c.create_index_json(
            r#"{"v": "hnsw"}"#,
            Some(r#"{"numDimensions": 8, "name": "vec", "m": 4}"#),
        )
        .unwrap();
        let mut rng = fastrand::Rng::with_seed(3);
        let mut vec8 = || -> Vec<f32> { (0..8).map(|_| rng.f32() * 2.0 - 1.0).collect() };
        db.begin().unwrap();
        for i in 0..400 {
            let v: Vec<String> = vec8().iter().map(f32::to_string).collect();
            let json = format!(r#"{{"_id": {i}, "v": [{}]}}"#, v.join(","));
            c.insert(Document::from_json(&json).unwrap()).unwrap();
        }
        db.commit().unwrap();
        let spec = VectorSpec {
            dims: 8,
            similarity: super::super::Similarity::Euclidean,
            m: 4,
            ef_construction: 200,
            scalar: false,
        };
        let table = "_ix$c$vec";
        let snap = db.snapshot().unwrap();
        let shared = SharedNodes::of(&*snap, table, &spec).unwrap().unwrap();
        let mut g = Graph::new(table, &spec);
        for i in 0..3 * flat_after(400) {
            let q = vec8();
            let want = g.knn(&*snap, &q, 5, 20, None).unwrap();
            let got = shared.knn(&*snap, &q, 5, 20, None).unwrap();
            assert_eq!(got, want, "query {i}");
            // Every other node refused: the walk passes through them.
            let mut even = |k: &[u8]| Ok(k.last().is_some_and(|b| b % 2 == 0));
            let want = g.knn(&*snap, &q, 5, 20, Some(&mut even)).unwrap();
            let got = shared.knn(&*snap, &q, 5, 20, Some(&mut even)).unwrap();
            assert_eq!(got, want, "filtered query {i}");
            for n in &got {
                assert_eq!(
                    shared
                        .doc_ref(&*snap, u32::try_from(n.1).unwrap())
                        .unwrap()
                        .0,
                    &g.node(&*snap, n.1).unwrap().id_key[..]
                );
            }
        }
        assert!(
            matches!(shared.flat.get(), Some(Some(_))),
            "the flat copy serves"
        );
        drop(snap);
        // Another collection's commit: the same version, the same shared nodes.
        db.collection("other")
            .insert(Document::from_json(r#"{"_id": 1}"#).unwrap())
            .unwrap();
        let snap = db.snapshot().unwrap();
        let again = SharedNodes::of(&*snap, table, &spec).unwrap().unwrap();
        assert!(Arc::ptr_eq(&shared, &again));
        drop(snap);
        // A change of the index: a new version.
        c.delete(&bson::doc! {"_id": 7}, false).unwrap();
        let snap = db.snapshot().unwrap();
        let newer = SharedNodes::of(&*snap, table, &spec).unwrap().unwrap();
        assert!(!Arc::ptr_eq(&shared, &newer));
        assert_ne!(shared.meta.tag, newer.meta.tag);
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
