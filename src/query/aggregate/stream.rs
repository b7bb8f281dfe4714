//! Running a parsed pipeline: [`stream`] chains the stages over an iterator of documents.
//! Runs of per-document stages (`$match`, `$project`, `$addFields`, `$replaceRoot`,
//! `$unwind`) with `$skip` and `$limit` are one [`Segment`] (a loop, not an iterator per
//! stage); `$lookup` joins [`Batches`] of its input; the blocking stages read their input
//! within the pipeline's [`Memory`] and go on with their output ([`Sorter`], [`Grouper`],
//! [`Spool`], which spill past the limit). Beneath: [`super::spill`], [`super::group`],
//! [`super::lookup`], [`super::shape`].

use super::group::{Accumulator, Grouper};
use super::spill::{Memory, Sorter, Spool};
use super::{approx_bytes, lookup, set_path, Foreign, Stage};
use crate::error::{Error, Result};
use crate::query::expr::{is_missing, Env};
use bson::{Bson, Document};

/// A stream of documents between stages; an error is its last item.
type Docs<'a> = Box<dyn Iterator<Item = Result<Document>> + 'a>;

/// How many rows a `$sort` followed by `stages` can return: `skip + limit` for a `$limit`
/// (after an optional `$skip`), else all.
fn top_k(stages: &[Stage]) -> Option<usize> {
    match stages {
        [Stage::Limit(l), ..] => usize::try_from(*l).ok(),
        [Stage::Skip(s), Stage::Limit(l), ..] => usize::try_from(s.saturating_add(*l)).ok(),
        _ => None,
    }
}

/// Chains the stages over `input`. Runs of per-document stages (with `$skip` and
/// `$limit`) are one [`Segment`] each, a loop over the stages rather than an iterator per
/// stage, so a long pipeline does not nest calls deeply; a blocking stage reads its whole
/// input here (within `mem`) and continues with its output.
pub(super) fn stream<'a>(
    stages: &'a [Stage],
    input: Docs<'a>,
    vars: &'a [(String, Bson)],
    foreign: &'a dyn Foreign,
    mem: &'a Memory,
) -> Result<Docs<'a>> {
    let mut docs = input;
    let mut ops: Vec<Op<'a>> = Vec::new();
    for (i, stage) in stages.iter().enumerate() {
        let op = match stage {
            Stage::Match { .. }
            | Stage::Project(_)
            | Stage::AddFields(_)
            | Stage::ReplaceRoot(..)
            | Stage::Unwind { .. } => Some(Op::Each(stage)),
            Stage::Skip(n) => Some(Op::Skip(*n)),
            Stage::Limit(n) => Some(Op::Limit(*n)),
            _ => None,
        };
        if let Some(op) = op {
            ops.push(op);
            continue;
        }
        if !ops.is_empty() {
            docs = Box::new(Segment::new(docs, std::mem::take(&mut ops), vars));
        }
        docs = match stage {
            Stage::Lookup(l) => {
                let batches = Batches {
                    inner: docs,
                    bytes: (mem.limit / 2).max(1),
                };
                Box::new(batches.flat_map(move |b| {
                    match b.and_then(|b| lookup::lookup(l, b, vars, foreign)) {
                        Ok(v) => v.into_iter().map(Ok).collect::<Vec<_>>(),
                        Err(e) => vec![Err(e)],
                    }
                }))
            }
            Stage::Count(name) => {
                let mut n: i64 = 0;
                for d in docs {
                    d?;
                    n += 1;
                }
                if n == 0 {
                    Box::new(std::iter::empty())
                } else {
                    let mut d = Document::new();
                    d.insert(
                        name.clone(),
                        i32::try_from(n).map_or(Bson::Int64(n), Bson::Int32),
                    );
                    Box::new(std::iter::once(Ok(d)))
                }
            }
            Stage::Sort(spec, _) => {
                let mut s = Sorter::new(
                    mem,
                    "$sort",
                    Box::new(move |a, b| spec.compare_keys(a, b)),
                    top_k(&stages[i + 1..]),
                );
                for d in docs {
                    let d = d?;
                    s.push(spec.key_of(&d), d)?;
                }
                s.finish()?
            }
            Stage::Group(id, accs) => {
                let mut g = Grouper::new(accs, vars, mem, "$group");
                let mut key = |env: &Env| id.eval(env);
                for d in docs {
                    g.push(d?, &mut key)?;
                }
                g.finish()?
            }
            Stage::Facet(facets) => {
                let mut spool = Spool::new(mem, "$facet");
                for d in docs {
                    spool.push(d?)?;
                }
                let input = spool.finish()?;
                let mut out = Document::new();
                for (name, p) in facets {
                    let r = stream(&p.stages, input.replay()?, vars, foreign, mem)?
                        .map(|d| d.map(Bson::Document))
                        .collect::<Result<Vec<_>>>()?;
                    out.insert(name.clone(), r);
                }
                Box::new(std::iter::once(Ok(out)))
            }
            Stage::Bucket(b) => Box::new(b.run(&mut *docs, vars, mem)?.into_iter().map(Ok)),
            Stage::SortByCount(e) => {
                let count = [Accumulator::count("count")];
                let mut g = Grouper::new(&count, vars, mem, "$sortByCount");
                let mut key = |env: &Env| e.eval(env);
                for d in docs {
                    g.push(d?, &mut key)?;
                }
                let by_count = |a: &[Option<Bson>], b: &[Option<Bson>]| {
                    let n = |k: &[Option<Bson>]| k.first().cloned().flatten().unwrap_or(Bson::Null);
                    crate::query::expr::cmp_values(&n(b), &n(a))
                };
                let mut s = Sorter::new(mem, "$sortByCount", Box::new(by_count), None);
                for d in g.finish()? {
                    let d = d?;
                    s.push(vec![d.get("count").cloned()], d)?;
                }
                s.finish()?
            }
            Stage::Sample(n) => {
                // A uniform sample: the first n in an order of random keys.
                let by_key = |a: &[Option<Bson>], b: &[Option<Bson>]| {
                    let n = |k: &[Option<Bson>]| match k.first() {
                        Some(Some(Bson::Int64(i))) => *i,
                        _ => 0,
                    };
                    n(a).cmp(&n(b))
                };
                let keep = usize::try_from(*n).unwrap_or(usize::MAX);
                let mut s = Sorter::new(mem, "$sample", Box::new(by_key), Some(keep));
                for d in docs {
                    s.push(vec![Some(Bson::Int64(fastrand::i64(..)))], d?)?;
                }
                s.finish()?
            }
            Stage::Match { .. }
            | Stage::Project(_)
            | Stage::AddFields(_)
            | Stage::ReplaceRoot(..)
            | Stage::Unwind { .. }
            | Stage::Skip(_)
            | Stage::Limit(_) => {
                return Err(Error::Internal(
                    "aggregate: a streaming stage taken as a blocking one".into(),
                ))
            }
        };
    }
    if !ops.is_empty() {
        docs = Box::new(Segment::new(docs, ops, vars));
    }
    Ok(docs)
}

/// A step of a [`Segment`].
enum Op<'a> {
    /// A per-document stage (see [`per_doc`]).
    Each(&'a Stage),
    /// `$skip`: how many are still to skip.
    Skip(u64),
    /// `$limit`: how many may still pass.
    Limit(u64),
}

/// Consecutive per-document stages, `$skip` and `$limit` run as one loop. Documents a stage
/// makes several of (`$unwind`) wait on a stack with the step they are at, so the output
/// keeps the order of running the stages one after another.
struct Segment<'a> {
    input: Docs<'a>,
    ops: Vec<Op<'a>>,
    vars: &'a [(String, Bson)],
    /// Documents waiting, with the index of the step they go to next (the last is next).
    pending: Vec<(Document, usize)>,
    /// A `$limit` is used up: no more input is read (waiting documents past it still go).
    input_done: bool,
    /// An error was returned: the stream is over.
    failed: bool,
}

impl<'a> Segment<'a> {
    fn new(input: Docs<'a>, ops: Vec<Op<'a>>, vars: &'a [(String, Bson)]) -> Self {
        Self {
            input,
            ops,
            vars,
            pending: Vec::new(),
            input_done: false,
            failed: false,
        }
    }

    /// Runs `d` from step `at`: `Some` once it passed every step.
    fn advance(&mut self, mut d: Document, at: usize) -> Result<Option<Document>> {
        let mut i = at;
        while i < self.ops.len() {
            match &mut self.ops[i] {
                Op::Each(stage) => {
                    let mut out = per_doc(stage, d, self.vars)?.into_iter();
                    let Some(first) = out.next() else {
                        return Ok(None);
                    };
                    let rest: Vec<Document> = out.collect();
                    for x in rest.into_iter().rev() {
                        self.pending.push((x, i + 1));
                    }
                    d = first;
                }
                Op::Skip(left) => {
                    if *left > 0 {
                        *left -= 1;
                        return Ok(None);
                    }
                }
                Op::Limit(left) => {
                    if *left == 0 {
                        return Ok(None);
                    }
                    *left -= 1;
                    if *left == 0 {
                        // Nothing more passes this step: stop reading, drop what waits before it.
                        self.input_done = true;
                        self.pending.retain(|(_, at)| *at > i);
                    }
                }
            }
            i += 1;
        }
        Ok(Some(d))
    }
}

impl Iterator for Segment<'_> {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed {
            let (d, at) = match self.pending.pop() {
                Some(x) => x,
                None if self.input_done => return None,
                None => match self.input.next()? {
                    Ok(d) => (d, 0),
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                },
            };
            match self.advance(d, at) {
                Ok(Some(d)) => return Some(Ok(d)),
                Ok(None) => {}
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// Groups a stream into batches of about `bytes` (at least one document each).
struct Batches<'a> {
    inner: Docs<'a>,
    bytes: usize,
}

impl Iterator for Batches<'_> {
    type Item = Result<Vec<Document>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut batch = Vec::new();
        let mut used = 0;
        while used < self.bytes {
            match self.inner.next() {
                None => break,
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(d)) => {
                    used += approx_bytes(&d);
                    batch.push(d);
                }
            }
        }
        (!batch.is_empty()).then_some(Ok(batch))
    }
}

/// Runs a per-document stage over one document.
fn per_doc(stage: &Stage, d: Document, vars: &[(String, Bson)]) -> Result<Vec<Document>> {
    let env_of = |d: &Document| Bson::Document(d.clone());
    Ok(match stage {
        Stage::Match { filter, expr, .. } => {
            if !filter.matches(&d) {
                return Ok(Vec::new());
            }
            if let Some(e) = expr {
                let root = Bson::Document(d);
                let keep = crate::query::expr::truthy(&e.eval(&Env::new(&root, vars))?);
                let Bson::Document(d) = root else {
                    unreachable!()
                };
                if keep {
                    vec![d]
                } else {
                    Vec::new()
                }
            } else {
                vec![d]
            }
        }
        Stage::Project(p) => {
            let root = env_of(&d);
            vec![p.apply(&d, &Env::new(&root, vars))?]
        }
        Stage::AddFields(a) => {
            let root = env_of(&d);
            vec![a.apply(&d, &Env::new(&root, vars))?]
        }
        Stage::ReplaceRoot(e, what) => {
            let root = Bson::Document(d);
            match e.eval(&Env::new(&root, vars))? {
                Bson::Document(nd) => vec![nd],
                other => return Err(Error::invalid(format!(
                    "'{what}' must evaluate to an object, but resulting value was: {}. Type of resulting value: '{}'",
                    if is_missing(&other) { "MISSING".to_owned() } else { crate::document::json::bson_to_json_text(&other) },
                    crate::query::expr::type_name(&other)
                ))),
            }
        }
        Stage::Unwind {
            path,
            index,
            preserve,
        } => unwind(vec![d], path, index.as_deref(), *preserve),
        _ => {
            return Err(Error::Internal(
                "aggregate: a blocking stage run as a per-document one".into(),
            ))
        }
    })
}

/// The value at a path following documents only.
fn get_path<'a>(doc: &'a Document, path: &[String]) -> Option<&'a Bson> {
    let (first, rest) = path.split_first()?;
    let mut cur = doc.get(first)?;
    for p in rest {
        cur = match cur {
            Bson::Document(d) => d.get(p)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn unwind(
    docs: Vec<Document>,
    path: &[String],
    index: Option<&str>,
    preserve: bool,
) -> Vec<Document> {
    let mut out = Vec::new();
    let index_path: Option<Vec<String>> = index.map(|i| i.split('.').map(str::to_owned).collect());
    for d in docs {
        let value = get_path(&d, path).cloned();
        match value {
            Some(Bson::Array(items)) if !items.is_empty() => {
                for (i, item) in items.into_iter().enumerate() {
                    let mut x = d.clone();
                    set_path(&mut x, path, item);
                    if let Some(ip) = &index_path {
                        set_path(
                            &mut x,
                            ip,
                            Bson::Int64(i64::try_from(i).unwrap_or(i64::MAX)),
                        );
                    }
                    out.push(x);
                }
            }
            Some(Bson::Array(_)) | None | Some(Bson::Null) => {
                if preserve {
                    let mut x = d;
                    if matches!(value, Some(Bson::Array(_))) {
                        set_path(&mut x, path, crate::query::expr::MISSING);
                    }
                    if let Some(ip) = &index_path {
                        set_path(&mut x, ip, Bson::Null);
                    }
                    out.push(x);
                }
            }
            Some(_) => {
                let mut x = d;
                if let Some(ip) = &index_path {
                    set_path(&mut x, ip, Bson::Null);
                }
                out.push(x);
            }
        }
    }
    out
}
