//! Vector searches: the `$vectorSearch` specification ([`SearchSpec`], MongoDB Atlas's
//! fields plus `projection` and `scoreField`) and its run over a snapshot ([`run`]):
//! approximate through the HNSW graph, or exact over every node of the index. A `filter`
//! is applied during the search: the graph walk passes through documents it refuses but
//! collects only those it accepts, so `limit` results come back when enough match.

use super::distance::{distance, prepare};
use super::graph::{check_fault, Admit, Graph, Meta, Near, Node, SharedNodes, META, NODE};
use super::maintain::record_vector;
use super::{check_vector, parse_vector, VectorSpec};
use crate::document::record;
use crate::error::{Error, Result};
use crate::index::IndexDef;
use crate::query::filter::Filter;
use crate::storage::{Bytes, ReadView};
use bson::{Bson, Document as BsonDocument};
use std::collections::BinaryHeap;
use std::sync::Arc;

/// Most results and candidates a search takes (MongoDB Atlas's limit on numCandidates).
pub(crate) const MAX_CANDIDATES: usize = 10_000;

/// A parsed `$vectorSearch` specification.
#[derive(Debug)]
pub(crate) struct SearchSpec {
    pub path: String,
    pub query: Vec<f32>,
    pub limit: usize,
    /// Search breadth (HNSW's `ef`); at least `limit`.
    pub num_candidates: usize,
    pub filter: Option<Filter>,
    pub exact: bool,
    pub index: Option<String>,
    pub projection: Option<BsonDocument>,
    pub score_field: String,
}

impl SearchSpec {
    /// Reads a specification; unknown fields and wrong types are errors.
    pub(crate) fn parse(d: &BsonDocument) -> Result<Self> {
        let mut path = None;
        let mut query = None;
        let mut limit = None;
        let mut num_candidates = None;
        let mut filter = None;
        let mut exact = false;
        let mut index = None;
        let mut projection = None;
        let mut score_field = "_score".to_owned();
        let count = |k: &str, v: &Bson| -> Result<usize> {
            let n = match v {
                Bson::Int32(i) => i64::from(*i),
                Bson::Int64(i) => *i,
                #[allow(clippy::cast_possible_truncation)] // whole and small: checked
                Bson::Double(x) if x.fract() == 0.0 && x.abs() < 1e15 => *x as i64,
                _ => {
                    return Err(Error::invalid(format!(
                        "$vectorSearch '{k}' must be a whole number"
                    )))
                }
            };
            match usize::try_from(n) {
                Ok(n) if (1..=MAX_CANDIDATES).contains(&n) => Ok(n),
                _ => Err(Error::invalid(format!(
                    "$vectorSearch '{k}' must be from 1 to {MAX_CANDIDATES}, not {n}"
                ))),
            }
        };
        for (k, v) in d {
            match (k.as_str(), v) {
                ("path", Bson::String(s)) if !s.is_empty() => path = Some(s.clone()),
                ("queryVector", v) => query = Some(parse_vector(v, "queryVector")?),
                ("limit", v) => limit = Some(count("limit", v)?),
                ("numCandidates", v) => num_candidates = Some(count("numCandidates", v)?),
                ("filter", Bson::Document(f)) => filter = Some(Filter::parse(f)?),
                ("exact", Bson::Boolean(b)) => exact = *b,
                ("index", Bson::String(s)) => index = Some(s.clone()),
                ("projection", Bson::Document(p)) => projection = Some(p.clone()),
                ("scoreField", Bson::String(s))
                    if !s.is_empty()
                        && !s.starts_with('$')
                        && !s.contains('.')
                        && !s.contains('\0') =>
                {
                    score_field = s.clone()
                }
                ("path" | "filter" | "exact" | "index" | "projection" | "scoreField", _) => {
                    return Err(Error::invalid(format!(
                        "$vectorSearch field '{k}' has the wrong type or is empty"
                    )))
                }
                _ => return Err(Error::invalid(format!("unknown $vectorSearch field '{k}'"))),
            }
        }
        let path = path.ok_or_else(|| Error::invalid("$vectorSearch needs 'path'"))?;
        let query = query.ok_or_else(|| Error::invalid("$vectorSearch needs 'queryVector'"))?;
        let limit = limit.ok_or_else(|| Error::invalid("$vectorSearch needs 'limit'"))?;
        let num_candidates = match num_candidates {
            Some(n) if n < limit => {
                return Err(Error::invalid(format!(
                    "$vectorSearch 'numCandidates' ({n}) must be at least 'limit' ({limit})"
                )))
            }
            Some(n) => n,
            None => (limit * 10).clamp(100, MAX_CANDIDATES).max(limit),
        };
        Ok(Self {
            path,
            query,
            limit,
            num_candidates,
            filter,
            exact,
            index,
            projection,
            score_field,
        })
    }
}

/// The vector index `spec` searches among `defs` (those of its collection).
///
/// Errors: [`Error::InvalidArgument`] when no vector index covers the path (or the named
/// index is not a vector index on it).
pub(crate) fn choose<'d>(
    defs: &'d [Arc<IndexDef>],
    coll: &str,
    spec: &SearchSpec,
) -> Result<(&'d IndexDef, &'d VectorSpec)> {
    defs.iter()
        .filter(|d| spec.index.as_ref().is_none_or(|n| *n == d.name))
        .find_map(|d| match &d.vector {
            Some(v) if d.fields[0].path == spec.path => Some((&**d, v)),
            _ => None,
        })
        .ok_or_else(|| {
            Error::invalid(match &spec.index {
                Some(n) => format!("'{coll}' has no vector index '{n}' on '{}'", spec.path),
                None => format!("'{coll}' has no vector index on '{}'", spec.path),
            })
        })
}

/// Candidates a search of a scalar-quantized index takes from the graph for `limit`
/// results, re-ranked by the documents' own vectors (at most `ef`).
pub(crate) fn rerank_count(limit: usize, ef: usize) -> usize {
    (limit * 2).max(limit + 10).min(ef.max(limit))
}

/// Runs `spec` over `view`'s collection `coll` with vector index `def`: the matching live
/// documents' records with their scores, best first, at most `limit`. The documents are
/// read by the record ids the graph's nodes keep (without the `_id` map), all of one search
/// together. A scalar-quantized index walks its graph by the codes, takes
/// [`rerank_count`] candidates and orders them by the exact distance of the vectors their
/// documents hold.
pub(crate) fn run(
    view: &dyn ReadView,
    def: &IndexDef,
    vspec: &VectorSpec,
    spec: &SearchSpec,
) -> Result<Vec<(f64, Bytes)>> {
    check_vector(&spec.query, vspec, "queryVector")?;
    let q = prepare(vspec.similarity, spec.query.clone());
    let coll = def.coll.as_str();
    let now = crate::document::now_millis();
    // A document's live record when the filter accepts it.
    let accept_rec = |rec: Option<Bytes>| -> Result<Option<Bytes>> {
        let Some(rec) = rec else {
            return Ok(None);
        };
        if !record::is_live(&rec, now) {
            return Ok(None);
        }
        if let Some(f) = &spec.filter {
            if !f.matches_bytes(record::body_bytes(&rec)?)? {
                return Ok(None);
            }
        }
        Ok(Some(rec))
    };
    let accept = |id_key: &[u8]| accept_rec(view.get(coll, id_key));
    let found: Vec<(Near, Bytes)> = if spec.exact {
        exact(view, def, vspec, &q, spec.limit, &accept)?
    } else {
        // Committed snapshots share the decoded graph; a write transaction's view (its own
        // changes in it) decodes what its search reads.
        let shared = SharedNodes::of(view, def.table(), vspec)?;
        let mut g = Graph::new(def.table(), vspec);
        let mut checked = spec.filter.is_some();
        let (k, ef) = if vspec.scalar {
            (
                rerank_count(spec.limit, spec.num_candidates),
                spec.num_candidates,
            )
        } else {
            (spec.limit, spec.num_candidates)
        };
        let rows = loop {
            let mut accepts = |id_key: &[u8]| -> Result<bool> { Ok(accept(id_key)?.is_some()) };
            let admit: Admit<'_> = if checked { Some(&mut accepts) } else { None };
            let near = match &shared {
                Some(s) => s.knn(view, &q, k, ef, admit)?,
                None => g.knn(view, &q, k, ef, admit)?,
            };
            let mut refs: Vec<(Vec<u8>, Option<u64>)> = Vec::with_capacity(near.len());
            for n in &near {
                refs.push(match &shared {
                    #[allow(clippy::cast_possible_truncation)] // shared ids are u32
                    Some(s) => {
                        let (key, rid) = s.doc_ref(view, n.1 as u32)?;
                        (key.to_vec(), rid)
                    }
                    None => {
                        let node = g.node(view, n.1)?;
                        (node.id_key.clone(), node.rid)
                    }
                });
            }
            let wanted: Vec<(&[u8], Option<u64>)> =
                refs.iter().map(|(k, r)| (&k[..], *r)).collect();
            let recs = view.get_many_at(coll, &wanted);
            check_fault(view)?;
            let mut rows = Vec::with_capacity(near.len());
            for (n, rec) in near.iter().zip(recs) {
                if let Some(rec) = accept_rec(rec)? {
                    rows.push((*n, rec));
                }
            }
            // Without a filter the walk collects every node; when one of them turned out
            // expired (or gone), walk again collecting only live documents.
            if rows.len() == near.len() || checked {
                break rows;
            }
            checked = true;
        };
        if vspec.scalar {
            rerank(def, vspec, &q, rows, spec.limit)?
        } else {
            rows
        }
    };
    check_fault(view)?;
    Ok(found
        .into_iter()
        .map(|(n, rec)| (vspec.similarity.score(n.0), rec))
        .collect())
}

/// The `limit` rows nearest `q` by the vectors their documents hold (the graph's codes
/// only chose them).
fn rerank(
    def: &IndexDef,
    vspec: &VectorSpec,
    q: &[f32],
    rows: Vec<(Near, Bytes)>,
    limit: usize,
) -> Result<Vec<(Near, Bytes)>> {
    let mut exact = Vec::with_capacity(rows.len());
    for (n, rec) in rows {
        let v = match super::raw_vector(record::body_bytes(&rec)?, &def.fields[0].path, vspec) {
            Some(v) => Some(prepare(vspec.similarity, v)),
            None => record_vector(def, vspec, &rec)?,
        };
        let d = v.map_or(n.0, |v| distance(vspec.similarity, q, &v));
        exact.push((Near(d, n.1), rec));
    }
    exact.sort_unstable_by_key(|a| a.0);
    exact.truncate(limit);
    Ok(exact)
}

/// Exact search: every node of the index compared with `q`; the `limit` nearest accepted.
fn exact(
    view: &dyn ReadView,
    def: &IndexDef,
    vspec: &VectorSpec,
    q: &[f32],
    limit: usize,
    accept: &dyn Fn(&[u8]) -> Result<Option<Bytes>>,
) -> Result<Vec<(Near, Bytes)>> {
    let table = def.table();
    let codec = match view.get(table, META) {
        Some(b) => Meta::decode(&b)?,
        None => Meta::empty(),
    }
    .codec();
    check_fault(view)?;
    let mut best: BinaryHeap<(Near, Bytes)> = BinaryHeap::new();
    let mut after = vec![NODE];
    let mut seq = 0u64;
    loop {
        let batch = view.scan(table, Some(&after), 256);
        check_fault(view)?;
        let mut done = batch.is_empty();
        for (k, v) in &batch {
            if k.first() != Some(&NODE) {
                done = true;
                break;
            }
            let node = Node::decode(v, vspec.dims as usize, codec)?;
            seq += 1;
            // A quantized graph's vectors are approximate: its exact search compares the
            // documents' own vectors.
            let (near, rec) = if codec.quant.is_some() {
                let Some(rec) = accept(&node.id_key)? else {
                    continue;
                };
                let d = match record_vector(def, vspec, &rec)? {
                    Some(v) => distance(vspec.similarity, q, &v),
                    None => distance(vspec.similarity, q, &node.vec),
                };
                (Near(d, seq), Some(rec))
            } else {
                (Near(distance(vspec.similarity, q, &node.vec), seq), None)
            };
            if best.len() >= limit && best.peek().is_some_and(|(w, _)| near >= *w) {
                continue;
            }
            let rec = match rec {
                Some(r) => Some(r),
                None => accept(&node.id_key)?,
            };
            if let Some(rec) = rec {
                best.push((near, rec));
                if best.len() > limit {
                    best.pop();
                }
            }
        }
        if done {
            break;
        }
        after = batch.last().map(|(k, _)| k.to_vec()).unwrap_or(after);
    }
    Ok(best.into_sorted_vec())
}
