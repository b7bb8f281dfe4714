//! A vector index kept in step with its documents: the vector a stored record gives the
//! index ([`record_vector`], checked), the graph changes of one put or delete
//! ([`Pending`], computed and checked before anything is written, applied after the other
//! indexes' entries) and the build over existing documents ([`build`]).

use super::distance::prepare;
use super::graph::Graph;
use super::quant::{min_max, Quant};
use super::{vector_at, Found, VectorSpec};
use crate::document::record;
use crate::error::{Error, Result};
use crate::index::IndexDef;
use crate::storage::{Bytes, WriteTxn};

/// The vector (prepared for the kernels) a stored record has in vector index `def`:
/// `None` when the field is missing or the partial filter leaves the document out.
///
/// Errors: [`Error::InvalidArgument`] when the field is there but not a vector the index
/// takes.
pub(crate) fn record_vector(
    def: &IndexDef,
    spec: &VectorSpec,
    rec: &[u8],
) -> Result<Option<Vec<f32>>> {
    let body = record::body_bytes(rec)?;
    if let Some(f) = def.partial_filter()? {
        if !f.matches_bytes(body)? {
            return Ok(None);
        }
    }
    let doc = match crate::document::raw::decode_fields(body, def.key_parts()) {
        Ok(d) => d,
        Err(_) => record::decode_body(rec)?.into_bson(),
    };
    Ok(match vector_at(&doc, &def.fields[0].path, spec)? {
        Found::Missing => None,
        Found::Vector(v) => Some(prepare(spec.similarity, v)),
    })
}

/// The checked new vector of one document for one vector index, waiting to be applied.
pub(crate) struct Pending {
    vector: Option<Vec<f32>>,
}

impl Pending {
    /// Reads and checks the new record's vector (`None` record: a delete). Nothing is
    /// written, so a refusal leaves the transaction as it was.
    pub(crate) fn check(
        def: &IndexDef,
        spec: &VectorSpec,
        coll: &str,
        id_key: &[u8],
        new_rec: Option<&[u8]>,
    ) -> Result<Self> {
        let vector = match new_rec {
            Some(r) => record_vector(def, spec, r).map_err(|e| match e {
                Error::InvalidArgument(m) => {
                    Error::InvalidArgument(format!("vector index '{}' of '{coll}': {m}", def.name))
                }
                other => other,
            })?,
            None => None,
        };
        if vector.is_some() && id_key.len() > usize::from(u16::MAX) {
            return Err(Error::invalid(format!(
                "vector index '{}' of '{coll}': a document whose _id takes more than 65535 bytes cannot be indexed",
                def.name
            )));
        }
        Ok(Self { vector })
    }

    /// Updates the graph of `def` for the document `id_key` (record id `rid`; `absent`: the
    /// caller knows it had no record): its node removed, the new one inserted; nothing when
    /// the vector (as the graph keeps it) did not change.
    pub(crate) fn apply(
        self,
        t: &mut dyn WriteTxn,
        def: &IndexDef,
        spec: &VectorSpec,
        id_key: &[u8],
        rid: Option<u64>,
        absent: bool,
    ) -> Result<()> {
        let mut g = Graph::new(def.table(), spec).reading(&def.coll, &def.fields[0].path);
        {
            let view = t.as_read();
            let old = if absent {
                None
            } else {
                g.node_of(view, id_key)?
            };
            if let (Some(o), Some(v)) = (old, &self.vector) {
                let kept = g.stored_vec(view, v.clone())?;
                if g.node(view, o)?.vec == kept {
                    g.set_rid(view, o, rid)?;
                    return g.flush(t);
                }
            }
            if old.is_none() && self.vector.is_none() {
                return Ok(());
            }
            if let Some(o) = old {
                g.remove(view, o)?;
            }
            if let Some(v) = self.vector {
                g.insert(view, id_key, rid, v)?;
            }
        }
        g.flush(t)
    }
}

/// Bytes of nodes (estimated) a build keeps in memory before it writes them and forgets
/// them. A build that fits writes its nodes once, at the end, in id order: each put then
/// lands at the right end of the table's tree, which leaves full pages (flushing every few
/// thousand inserts rewrote nodes whose links had grown into pages already split, and left
/// the index's pages a little over half full).
const BUILD_BYTES: usize = 256 << 20;

/// Creates vector index `def`'s table and inserts every existing document's vector.
///
/// Errors: as [`record_vector`], naming the index ("cannot build index ...").
pub(crate) fn build(t: &mut dyn WriteTxn, def: &IndexDef, spec: &VectorSpec) -> Result<()> {
    let table = def.table().to_owned();
    t.expect_large();
    t.create_table(&table, "{}")?;
    let docs = t.snapshot();
    let mut g = Graph::new(&table, spec).reading(&def.coll, &def.fields[0].path);
    if spec.scalar {
        // The code range: every vector the build is about to insert.
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        let mut after: Option<Bytes> = None;
        loop {
            let batch = docs.scan(
                &def.coll,
                after.as_deref(),
                super::super::build::BUILD_BATCH,
            );
            super::graph::check_fault(&*docs)?;
            let Some((last, _)) = batch.last() else { break };
            for (_, rec) in &batch {
                if let Ok(Some(v)) = record_vector(def, spec, rec) {
                    let (l, h) = min_max(&v);
                    lo = lo.min(l);
                    hi = hi.max(h);
                }
            }
            after = Some(last.clone());
        }
        if lo <= hi {
            g.calibrate(t.as_read(), Quant::covering(lo, hi))?;
        }
    }
    // A node in memory: its vector and links both ways (u64), with the maps' overhead.
    let node_bytes = spec.dims as usize * 4 + spec.m as usize * 40 + 160;
    let most_nodes = (BUILD_BYTES / node_bytes).max(4096);
    let mut after: Option<Bytes> = None;
    loop {
        let batch = docs.scan_with_record_ids(
            &def.coll,
            after.as_deref(),
            super::super::build::BUILD_BATCH,
        );
        super::graph::check_fault(&*docs)?;
        if batch.is_empty() {
            break;
        }
        for (id_key, rec, rid) in &batch {
            let v = record_vector(def, spec, rec).map_err(|e| match e {
                Error::InvalidArgument(m) => {
                    Error::InvalidArgument(format!("cannot build index '{}': {m}", def.name))
                }
                other => other,
            })?;
            let Some(v) = v else { continue };
            g.insert(t.as_read(), id_key, *rid, v)?;
            if g.cached() >= most_nodes {
                g.flush(t)?;
                g.clear_cache();
            }
        }
        after = batch.last().map(|(k, _, _)| k.clone());
    }
    g.flush(t)
}
