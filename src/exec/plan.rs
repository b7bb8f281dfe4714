//! The planner: which access path answers a query (the `_id` primary key, a secondary index
//! scan over computed bounds, or the collection scan), and `explain`.
//!
//! Bounds come from the top-level conjunction of the filter: equality and `$in` give points,
//! `$gt`/`$gte`/`$lt`/`$lte` give a range inside the operand's type bracket (as MongoDB
//! compares). A compound index uses points on a prefix of its fields, then at most one
//! range. On a multikey index the conditions on one field are not intersected (different
//! array elements may satisfy them); one of them bounds the scan. Index bounds only ever
//! narrow the candidates: every fetched document is still tested against the whole filter,
//! so a plan can be loose but never wrong.
//!
//! Choice: the hint when there is one; the `_id` point lookup; else, among the usable
//! indexes, the one whose bounds hold the fewest entries (counted up to a cap), preferring
//! one that also yields the sort order; else the collection scan.

use super::ixscan::{IndexAccess, IndexScan};
use crate::error::{Error, Result};
use crate::index::key::{encode_value, type_prefix};
use crate::index::{defs_for, IndexDef};
use crate::query::compare::type_rank;
use crate::query::filter::{Cond, Filter};
use crate::query::sort::SortSpec;
use crate::query::Plan;
use crate::storage::ReadView;
use bson::{Bson, Document as BsonDocument};
use std::cmp::Ordering;
use std::sync::Arc;

/// Entries counted per candidate when several indexes compete.
const ESTIMATE_CAP: u64 = 1024;
/// Most point combinations a compound index's bounds may expand to.
const MAX_POINTS: usize = 4096;

/// How a query reads the collection.
#[derive(Debug, Clone)]
pub(crate) enum Access {
    /// Every document in the collection's order (see `ReadView::scan`).
    Collection,
    /// The one document a filter pins by `_id`.
    Id,
    /// A secondary index.
    Index(IndexAccess),
}

/// The chosen access path and the index candidates that lost.
#[derive(Debug, Clone)]
pub(crate) struct Choice {
    pub access: Access,
    pub rejected: Vec<(IndexAccess, u64)>,
}

/// Bounds on one field, over its ascending encoding.
#[derive(Debug, Clone)]
pub(crate) enum FieldBounds {
    /// Exactly these encoded values (sorted, distinct).
    Points(Vec<Vec<u8>>),
    /// `[lo, hi)` byte ranges (`hi` empty: unbounded above).
    Ranges(Vec<(Vec<u8>, Vec<u8>)>),
    /// No constraint.
    All,
}

fn enc(v: &Bson) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(&mut out, v, false);
    out
}

/// The smallest byte string greater than every string that starts with `p` (empty: none).
fn prefix_end(p: &[u8]) -> Vec<u8> {
    let mut e = p.to_vec();
    while let Some(last) = e.pop() {
        if last != 0xFF {
            e.push(last + 1);
            return e;
        }
    }
    Vec::new()
}

fn null_points() -> FieldBounds {
    let mut ps = vec![enc(&Bson::Null), enc(&Bson::Undefined)];
    ps.sort();
    ps.dedup();
    FieldBounds::Points(ps)
}

/// Bounds of one condition, with a description for explain (empty unless `words`: planning
/// a query does not need it).
fn cond_bounds(c: &Cond, words: bool) -> (FieldBounds, String) {
    let text = |v: &Bson| text(v, words);
    // The words are formatted only for explain: planning every query need not pay for them.
    let say = |f: &dyn Fn() -> String| if words { f() } else { String::new() };
    match c {
        Cond::Eq(Bson::Null) => (null_points(), "[null, null]".into()),
        Cond::Eq(v @ (Bson::Array(_) | Bson::RegularExpression(_))) => (
            FieldBounds::All,
            say(&|| format!("{} (not indexable)", text(v))),
        ),
        Cond::Eq(v) => (
            FieldBounds::Points(vec![enc(v)]),
            say(&|| format!("[{0}, {0}]", text(v))),
        ),
        Cond::In(values, patterns) => {
            if !patterns.is_empty() || values.iter().any(|v| matches!(v, Bson::Array(_))) {
                return (FieldBounds::All, "$in with arrays or regexes".into());
            }
            let mut ps = Vec::new();
            for v in values {
                match v {
                    Bson::Null => {
                        if let FieldBounds::Points(n) = null_points() {
                            ps.extend(n);
                        }
                    }
                    other => ps.push(enc(other)),
                }
            }
            ps.sort();
            ps.dedup();
            let described = say(&|| {
                let words: Vec<String> = values
                    .iter()
                    .map(|v| format!("[{0}, {0}]", text(v)))
                    .collect();
                words.join(", ")
            });
            (FieldBounds::Points(ps), described)
        }
        Cond::Cmp(dir, or_equal, w) => {
            if matches!(w, Bson::MinKey | Bson::MaxKey | Bson::Array(_)) {
                return (
                    FieldBounds::All,
                    say(&|| format!("compared with {}", text(w))),
                );
            }
            if matches!(w, Bson::Null) {
                return if *or_equal {
                    (null_points(), "[null, null]".into())
                } else {
                    (FieldBounds::Ranges(Vec::new()), "empty".into())
                };
            }
            let rank = type_rank(w);
            let bracket_lo = vec![type_prefix(rank)];
            let bracket_hi = if rank >= 14 {
                Vec::new()
            } else {
                vec![type_prefix(rank + 1)]
            };
            let e = enc(w);
            let t = text(w);
            match dir {
                Ordering::Greater => {
                    let lo = if *or_equal { e } else { prefix_end(&e) };
                    let open = if *or_equal { '[' } else { '(' };
                    (
                        FieldBounds::Ranges(vec![(lo, bracket_hi)]),
                        say(&|| format!("{open}{t}, end of type]")),
                    )
                }
                _ => {
                    let hi = if *or_equal { prefix_end(&e) } else { e };
                    let close = if *or_equal { ']' } else { ')' };
                    (
                        FieldBounds::Ranges(vec![(bracket_lo, hi)]),
                        say(&|| format!("[start of type, {t}{close}")),
                    )
                }
            }
        }
        _ => (FieldBounds::All, String::new()),
    }
}

fn text(v: &Bson, words: bool) -> String {
    if words {
        crate::document::json::bson_to_json_text(v)
    } else {
        String::new()
    }
}

fn in_range(p: &[u8], lo: &[u8], hi: &[u8]) -> bool {
    p >= lo && (hi.is_empty() || p < hi)
}

fn max_lo<'a>(a: &'a [u8], b: &'a [u8]) -> &'a [u8] {
    if a >= b {
        a
    } else {
        b
    }
}

fn min_hi<'a>(a: &'a [u8], b: &'a [u8]) -> &'a [u8] {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b,
        (_, true) => a,
        _ if a <= b => a,
        _ => b,
    }
}

fn intersect(a: FieldBounds, b: FieldBounds) -> FieldBounds {
    use FieldBounds::*;
    match (a, b) {
        (All, x) | (x, All) => x,
        (Points(p), Points(q)) => Points(p.into_iter().filter(|x| q.contains(x)).collect()),
        (Points(p), Ranges(r)) | (Ranges(r), Points(p)) => Points(
            p.into_iter()
                .filter(|x| r.iter().any(|(lo, hi)| in_range(x, lo, hi)))
                .collect(),
        ),
        (Ranges(r), Ranges(s)) => {
            let mut out = Vec::new();
            for (alo, ahi) in &r {
                for (blo, bhi) in &s {
                    let lo = max_lo(alo, blo).to_vec();
                    let hi = min_hi(ahi, bhi).to_vec();
                    if hi.is_empty() || lo < hi {
                        out.push((lo, hi));
                    }
                }
            }
            Ranges(out)
        }
    }
}

/// Whether the filter's top-level conjunction has a condition on `path`.
fn constrains(f: &Filter, path: &str) -> bool {
    let mut conds = Vec::new();
    conds_on(f, path, &mut conds);
    !conds.is_empty()
}

/// The conditions on `path` in the filter's top-level conjunction.
fn conds_on<'a>(f: &'a Filter, path: &str, out: &mut Vec<&'a Cond>) {
    match f {
        Filter::All(fs) => fs.iter().for_each(|x| conds_on(x, path, out)),
        Filter::Field { path: p, conds, .. } if p == path => out.extend(conds.iter()),
        _ => {}
    }
}

/// Bounds on `path` (ascending encoding), and (when `describe`) the conditions in words.
pub(crate) fn field_bounds(
    filter: &Filter,
    path: &str,
    multikey: bool,
    describe: bool,
) -> (FieldBounds, Vec<String>) {
    let mut conds = Vec::new();
    conds_on(filter, path, &mut conds);
    let mut acc = FieldBounds::All;
    let mut words = Vec::new();
    for c in conds {
        let (b, w) = cond_bounds(c, describe);
        if matches!(b, FieldBounds::All) {
            continue;
        }
        if multikey {
            // Elements may satisfy different conditions: bound by one (points first).
            let better = matches!(
                (&acc, &b),
                (FieldBounds::All, _) | (FieldBounds::Ranges(_), FieldBounds::Points(_))
            );
            if better {
                acc = b;
                words = vec![w];
            }
        } else {
            acc = intersect(acc, b);
            words.push(w);
        }
    }
    (acc, words)
}

/// Whether bounds admit a document without the field (its key is null).
fn admits_null(b: &FieldBounds) -> bool {
    let n = enc(&Bson::Null);
    match b {
        FieldBounds::All => true,
        FieldBounds::Points(p) => p.contains(&n),
        FieldBounds::Ranges(r) => r.iter().any(|(lo, hi)| in_range(&n, lo, hi)),
    }
}

fn complement(b: &[u8]) -> Vec<u8> {
    b.iter().map(|x| !x).collect()
}

/// The bounds of a descending field: its bytes are complemented, so ranges turn around.
fn descending(b: FieldBounds) -> FieldBounds {
    match b {
        FieldBounds::All => FieldBounds::All,
        FieldBounds::Points(ps) => {
            let mut c: Vec<Vec<u8>> = ps.iter().map(|p| complement(p)).collect();
            c.sort();
            FieldBounds::Points(c)
        }
        FieldBounds::Ranges(rs) => {
            let mut out: Vec<(Vec<u8>, Vec<u8>)> = rs
                .iter()
                .map(|(lo, hi)| {
                    let new_lo = if hi.is_empty() {
                        Vec::new()
                    } else {
                        prefix_end(&complement(hi))
                    };
                    let new_hi = if lo.is_empty() {
                        Vec::new()
                    } else {
                        prefix_end(&complement(lo))
                    };
                    (new_lo, new_hi)
                })
                .collect();
            out.sort();
            FieldBounds::Ranges(out)
        }
    }
}

/// Sorts and merges overlapping intervals.
fn merge(mut iv: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    iv.sort();
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(iv.len());
    for (lo, hi) in iv {
        if let Some(last) = out.last_mut() {
            if last.1.is_empty() {
                continue;
            }
            if lo <= last.1 {
                if hi.is_empty() || hi > last.1 {
                    last.1 = hi;
                }
                continue;
            }
        }
        out.push((lo, hi));
    }
    out
}

/// Whether the filter contains every clause of a partial index's expression verbatim (a
/// safe, if narrow, test that the filter implies it).
fn implies_partial(filter: &Filter, partial: &BsonDocument) -> bool {
    let Ok(p) = Filter::parse(partial) else {
        return false;
    };
    let mut clauses = Vec::new();
    flatten(&p, &mut clauses);
    let mut have = Vec::new();
    flatten(filter, &mut have);
    clauses.iter().all(|c| {
        let want = format!("{c:?}");
        have.iter().any(|h| format!("{h:?}") == want)
    })
}

fn flatten<'a>(f: &'a Filter, out: &mut Vec<&'a Filter>) {
    match f {
        Filter::All(fs) => fs.iter().for_each(|x| flatten(x, out)),
        other => out.push(other),
    }
}

/// The access through `def` for this filter (and sort), or `None` when the index cannot
/// serve it. `forced`: a hint names this index, so an unbounded scan is fine.
pub(crate) fn candidate(
    def: &Arc<IndexDef>,
    filter: &Filter,
    sort: Option<&SortSpec>,
    forced: bool,
) -> Option<IndexAccess> {
    if let Some(p) = &def.partial {
        if !forced && !implies_partial(filter, p) {
            return None;
        }
    }
    let mut prefixes: Vec<Vec<u8>> = vec![Vec::new()];
    let mut intervals: Option<Vec<(Vec<u8>, Vec<u8>)>> = None;
    let mut bounded = 0;
    let mut single_points = 0;
    for (i, f) in def.fields.iter().enumerate() {
        let (b, _) = field_bounds(filter, &f.path, def.multikey, false);
        if i == 0 && def.sparse && admits_null(&b) && !forced {
            return None;
        }
        if intervals.is_some() {
            continue;
        }
        let b = if f.descending { descending(b) } else { b };
        match b {
            FieldBounds::Points(ps) => {
                if prefixes.len() * ps.len().max(1) > MAX_POINTS {
                    intervals = Some(
                        prefixes
                            .iter()
                            .map(|p| (p.clone(), prefix_end(p)))
                            .collect(),
                    );
                    continue;
                }
                if ps.len() == 1 && single_points == i {
                    single_points += 1;
                }
                prefixes = prefixes
                    .iter()
                    .flat_map(|p| {
                        ps.iter().map(move |x| {
                            let mut k = p.clone();
                            k.extend_from_slice(x);
                            k
                        })
                    })
                    .collect();
                bounded += 1;
            }
            FieldBounds::Ranges(rs) => {
                let mut iv = Vec::new();
                for p in &prefixes {
                    for (lo, hi) in &rs {
                        let mut l = p.clone();
                        l.extend_from_slice(lo);
                        let h = if hi.is_empty() {
                            prefix_end(p)
                        } else {
                            let mut h = p.clone();
                            h.extend_from_slice(hi);
                            h
                        };
                        iv.push((l, h));
                    }
                }
                intervals = Some(iv);
                bounded += 1;
            }
            FieldBounds::All => {
                intervals = Some(
                    prefixes
                        .iter()
                        .map(|p| (p.clone(), prefix_end(p)))
                        .collect(),
                );
            }
        }
    }
    let intervals = intervals.unwrap_or_else(|| {
        prefixes
            .iter()
            .map(|p| (p.clone(), prefix_end(p)))
            .collect()
    });
    let provides_sort = sort.is_some_and(|s| serves_sort(def, s, single_points, filter));
    if bounded == 0 && !provides_sort && !forced {
        return None;
    }
    Some(IndexAccess {
        def: Arc::clone(def),
        intervals: merge(intervals),
        bounded_fields: bounded,
        provides_sort,
        covered: false,
    })
}

/// Whether every document `ix` yields matches `filter`, so the documents it fetches need
/// not be tested again: the filter is one equality to a string or a number on the index's
/// first field, and the index is neither multikey, sparse nor partial (its entries hold each
/// document's value; a string's encoding equals another's exactly when the strings compare
/// equal, and a number's exactly when the numbers do: both are exact across int32, int64
/// and double, both read a decimal128 through the nearest double, both call NaN equal to
/// NaN and -0 to 0 (`index::key`, `query::compare`); no encoding is a prefix of another).
/// Any other filter is tested on every document.
pub(crate) fn bounds_are_exact(ix: &IndexAccess, filter: &Filter) -> bool {
    let def = &ix.def;
    if def.multikey || def.sparse || def.partial.is_some() || ix.covered {
        return false;
    }
    let f = match filter {
        Filter::All(fs) if fs.len() == 1 => &fs[0],
        other => other,
    };
    matches!(
        f,
        Filter::Field { path, conds, .. }
            if *path == def.fields[0].path
                && matches!(
                    conds.as_slice(),
                    [Cond::Eq(
                        Bson::String(_)
                            | Bson::Int32(_)
                            | Bson::Int64(_)
                            | Bson::Double(_)
                            | Bson::Decimal128(_)
                    )]
                )
    )
}

/// Whether scanning `def` in order yields the sort order: the sort's fields, with the same
/// directions, follow the index's leading fields that the filter pins to one value, up to
/// the index's last field. Entries with equal keys lie in `_id` order, the order a sort
/// gives ties; a field of the index after the sort's would order the ties by itself instead.
fn serves_sort(def: &IndexDef, sort: &SortSpec, pinned: usize, filter: &Filter) -> bool {
    if def.multikey || def.sparse {
        return false;
    }
    if let Some(p) = &def.partial {
        if !implies_partial(filter, p) {
            return false;
        }
    }
    let keys = sort.keys();
    (0..=pinned).any(|start| {
        keys.len() == def.fields.len().saturating_sub(start)
            && keys
                .iter()
                .zip(&def.fields[start..])
                .all(|((path, asc), f)| *path == f.path && *asc != f.descending)
    })
}

fn cond_coverable(c: &Cond) -> bool {
    match c {
        Cond::ElemMatchDoc(_) => false,
        Cond::Not(cs) | Cond::All(cs) | Cond::ElemMatchValue(cs) => cs.iter().all(cond_coverable),
        _ => true,
    }
}

/// The paths the filter reads, or `None` when it reads below a path in ways the covered
/// values cannot show (`$elemMatch` over documents).
fn filter_paths(f: &Filter, out: &mut Vec<String>) -> bool {
    match f {
        Filter::All(fs) | Filter::Any(fs) | Filter::NoneOf(fs) => {
            fs.iter().all(|x| filter_paths(x, out))
        }
        Filter::Field { path, conds, .. } => {
            out.push(path.clone());
            conds.iter().all(cond_coverable)
        }
    }
}

/// Whether `ix` answers the query from its entries alone (MongoDB's covered query): the
/// index is not multikey, the projection includes only index fields and excludes `_id`, the
/// filter and sort read only index fields, and no document of the database can expire
/// (expiry is read from the document).
fn is_covered(
    view: &dyn ReadView,
    ix: &IndexAccess,
    filter: &Filter,
    sort: Option<&SortSpec>,
    projection: Option<&BsonDocument>,
) -> bool {
    let Some(projection) = projection else {
        return false;
    };
    let def = &ix.def;
    let is_field = |p: &str| def.fields.iter().any(|f| f.path == p);
    if def.multikey
        || def
            .fields
            .iter()
            .any(|f| f.path == "_id" || f.path.split('.').any(|c| c.parse::<usize>().is_ok()))
    {
        return false;
    }
    let temp = crate::index::expiry::TEMP_TABLE;
    if view.has_table(temp) && view.count(temp) > 0 {
        return false;
    }
    let mut id_excluded = false;
    for (path, v) in projection {
        let on = match v {
            Bson::Int32(i) => *i != 0,
            Bson::Int64(i) => *i != 0,
            Bson::Double(d) => *d != 0.0,
            Bson::Boolean(b) => *b,
            _ => return false,
        };
        if path == "_id" {
            id_excluded = !on;
        } else if !on || !is_field(path) {
            return false;
        }
    }
    if !id_excluded || projection.len() < 2 {
        return false;
    }
    let mut paths = Vec::new();
    if !filter_paths(filter, &mut paths) || !paths.iter().all(|p| is_field(p)) {
        return false;
    }
    sort.is_none_or(|s| ix.provides_sort || s.keys().iter().all(|(p, _)| is_field(p)))
}

/// Resolves a `hint`: `{"$natural": 1}`, an index name, or a key pattern.
fn hinted<'a>(hint: &Bson, defs: &'a [Arc<IndexDef>]) -> Result<Option<&'a Arc<IndexDef>>> {
    let found = match hint {
        Bson::Document(d) if d.len() == 1 && d.contains_key("$natural") => return Ok(None),
        Bson::Document(d) if d.len() == 1 && d.get("_id").is_some() => return Ok(None),
        Bson::String(s) if s == "_id_" => return Ok(None),
        Bson::String(name) => defs.iter().find(|d| &d.name == name),
        Bson::Document(pattern) => defs.iter().find(|d| &d.key == pattern),
        _ => None,
    };
    match found {
        Some(d) => Ok(Some(d)),
        None => Err(Error::invalid(format!(
            "hint {} does not correspond to an existing index",
            text(hint, true)
        ))),
    }
}

/// Chooses how to read `coll` for `filter` (and `sort`, `limit`, `hint`).
pub(crate) fn choose(
    view: &dyn ReadView,
    coll: &str,
    filter: &Filter,
    sort: Option<&SortSpec>,
    limit: Option<u64>,
    hint: Option<&Bson>,
    projection: Option<&BsonDocument>,
) -> Result<Choice> {
    let mut choice = choose_access(view, coll, filter, sort, limit, hint)?;
    if let Access::Index(ix) = &mut choice.access {
        ix.covered = is_covered(view, ix, filter, sort, projection);
    }
    Ok(choice)
}

/// [`choose`] for a compiled `find` plan (its filter, sort, limit, hint and projection).
pub(crate) fn choose_for(view: &dyn ReadView, coll: &str, plan: &Plan) -> Result<Choice> {
    choose(
        view,
        coll,
        &plan.filter,
        plan.sort.as_ref(),
        plan.limit,
        plan.hint.as_ref(),
        plan.projection_doc.as_ref(),
    )
}

fn choose_access(
    view: &dyn ReadView,
    coll: &str,
    filter: &Filter,
    sort: Option<&SortSpec>,
    limit: Option<u64>,
    hint: Option<&Bson>,
) -> Result<Choice> {
    if hint.is_none() && super::scan::pinned_id(view, coll, filter).is_some() {
        return Ok(Choice {
            access: Access::Id,
            rejected: Vec::new(),
        });
    }
    let defs = defs_for(view, coll)?;
    let defs: Vec<Arc<IndexDef>> = defs
        .into_iter()
        // A vector index holds a graph, not key entries: only vector searches read it.
        .filter(|d| d.vector.is_none() && view.has_table(d.table()))
        .collect();
    if let Some(h) = hint {
        return Ok(Choice {
            access: match hinted(h, &defs)? {
                Some(def) => Access::Index(
                    candidate(def, filter, sort, true).expect("a forced candidate exists"),
                ),
                None if super::scan::pinned_id(view, coll, filter).is_some() => Access::Id,
                None => Access::Collection,
            },
            rejected: Vec::new(),
        });
    }
    let mut cands: Vec<IndexAccess> = defs
        .iter()
        // Without a condition on its first field, an index bounds nothing: it is a candidate
        // only for a limited, sorted query (see below; `candidate` refuses it otherwise), so
        // it is not built for the others (a `find_one` on one indexed field no longer builds
        // a candidate of every other index of the collection).
        .filter(|d| (limit.is_some() && sort.is_some()) || constrains(filter, &d.fields[0].path))
        .filter_map(|d| candidate(d, filter, sort, false))
        // An index that only serves the sort pays off when a limit stops the scan early.
        .filter(|c| c.bounded_fields > 0 || limit.is_some())
        .collect();
    if cands.is_empty() {
        return Ok(Choice {
            access: Access::Collection,
            rejected: Vec::new(),
        });
    }
    if cands.len() == 1 {
        return Ok(Choice {
            access: Access::Index(cands.remove(0)),
            rejected: Vec::new(),
        });
    }
    // Indexes with one entry per document (not sparse, partial or multikey) whose bounded
    // fields are the same paths hold the same number of entries within the filter's bounds
    // (`{a:1}` and `{a:1,b:-1}` for a filter on `a`): such a group is counted once.
    let mut counted: Vec<(Vec<String>, u64)> = Vec::new();
    let mut scored: Vec<(IndexAccess, u64)> = Vec::with_capacity(cands.len());
    for c in cands {
        let n = if c.bounded_fields == 0 {
            u64::MAX
        } else {
            let d = &c.def;
            let group = (!d.sparse && d.partial.is_none() && !d.multikey).then(|| {
                let paths = d.fields[..c.bounded_fields].iter();
                paths.map(|f| f.path.clone()).collect::<Vec<_>>()
            });
            match group
                .as_ref()
                .and_then(|g| counted.iter().find(|(p, _)| p == g))
            {
                Some((_, n)) => *n,
                None => {
                    let n = IndexScan::estimate(&c, view, ESTIMATE_CAP);
                    counted.extend(group.map(|g| (g, n)));
                    n
                }
            }
        };
        scored.push((c, n));
    }
    scored.sort_by(|(a, na), (b, nb)| {
        na.cmp(nb)
            .then(b.provides_sort.cmp(&a.provides_sort))
            .then(b.bounded_fields.cmp(&a.bounded_fields))
            .then(b.def.unique.cmp(&a.def.unique))
            .then(a.def.name.cmp(&b.def.name))
    });
    // With many matches everywhere, the index that yields the order wins (no sort in
    // memory, and a limit ends the scan early).
    if scored[0].1 >= ESTIMATE_CAP {
        if let Some(i) = scored.iter().position(|(c, _)| c.provides_sort) {
            let s = scored.remove(i);
            scored.insert(0, s);
        }
    }
    let (best, _) = scored.remove(0);
    Ok(Choice {
        access: Access::Index(best),
        rejected: scored,
    })
}
