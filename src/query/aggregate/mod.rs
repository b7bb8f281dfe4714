//! The aggregation pipeline: [`Pipeline`] parses the stages (`$match`, `$project`,
//! `$addFields`/`$set`, `$unset`, `$replaceRoot`/`$replaceWith`, `$sort`, `$skip`,
//! `$limit`, `$count`, `$group`, `$unwind`, `$lookup`, `$facet`, `$bucket`,
//! `$sortByCount`, `$sample`, and a final `$out` / `$merge`) and runs them over documents
//! in memory. Expressions are [`crate::query::expr`]; reshaping stages are [`shape`];
//! grouping is [`group`]; `$lookup` is [`lookup`]; the final `$out` / `$merge` is
//! [`output`].
//!
//! This layer reads no collection itself: `$lookup` asks a [`Foreign`] (implemented by the
//! API layer over the same database), and the API layer feeds the pipeline's input (its
//! leading `$match` / `$sort` / `$skip` / `$limit` served by the find planner, see
//! [`Pipeline::take_leading_find`]) and performs `$out` / `$merge` ([`Output`]).
//!
//! Memory: stages hold their documents in memory. [`Budget`] refuses
//! (`NEXUS_UNSUPPORTED`) a pipeline whose buffered documents pass [`MAX_BUFFERED_BYTES`];
//! spilling to disk (MongoDB's `allowDiskUse`) is not built.
//!
//! Pipeline-style updates use [`apply_update_pipeline`].

pub(crate) mod group;
mod lookup;
mod output;
pub(crate) mod shape;

#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::query::expr::{is_missing, Env, Expr};
use crate::query::filter::Filter;
use crate::query::sort::SortSpec;
use bson::{Bson, Document};
use group::{accumulators, Accumulator, Bucket};
pub(crate) use lookup::BytesJoin;
use lookup::Lookup;
pub(crate) use output::{Output, WhenMatched, WhenNotMatched};
use shape::{set_path, AddFields, Projection};

/// The most bytes of documents (estimated as BSON) a pipeline may hold at once.
pub const MAX_BUFFERED_BYTES: usize = 100 * 1024 * 1024;

/// Reads other collections of the same database for `$lookup`.
pub(crate) trait Foreign {
    /// The documents of `coll` that match `filter` (every document for `{}`), in the
    /// collection's order; none for a missing collection.
    fn find(&self, coll: &str, filter: &Document) -> Result<Vec<Document>>;
}

/// A `Foreign` for pipelines that read no other collection (pipeline updates, tests).
#[allow(dead_code)] // used by apply_update_pipeline, which the CRUD side of #21 calls
pub(crate) struct NoForeign;

impl Foreign for NoForeign {
    fn find(&self, coll: &str, _filter: &Document) -> Result<Vec<Document>> {
        Err(Error::unsupported(format!(
            "$lookup from '{coll}' is not available here"
        )))
    }
}

/// The running count of buffered bytes.
pub(crate) struct Budget {
    used: usize,
}

impl Budget {
    pub(crate) fn new() -> Self {
        Self { used: 0 }
    }

    /// Counts `bytes` more; fails past [`MAX_BUFFERED_BYTES`].
    pub(crate) fn charge(&mut self, bytes: usize) -> Result<()> {
        self.used = self.used.saturating_add(bytes);
        if self.used > MAX_BUFFERED_BYTES {
            return Err(Error::unsupported(format!(
                "aggregate: the pipeline would hold more than {} MiB of documents in memory; spilling to disk (allowDiskUse) is not supported by NexusLite",
                MAX_BUFFERED_BYTES >> 20
            )));
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.used = 0;
    }
}

/// An estimate of a value's size as BSON (iterative).
pub(crate) fn approx_bytes(doc: &Document) -> usize {
    let mut total = 5;
    let mut stack: Vec<&Bson> = doc.values().collect();
    total += doc.keys().map(|k| k.len() + 2).sum::<usize>();
    while let Some(v) = stack.pop() {
        total += match v {
            Bson::Document(d) => {
                total += d.keys().map(|k| k.len() + 2).sum::<usize>();
                stack.extend(d.values());
                5
            }
            Bson::Array(a) => {
                total += a.len() * 4;
                stack.extend(a.iter());
                5
            }
            Bson::String(s) => s.len() + 5,
            Bson::Binary(b) => b.bytes.len() + 5,
            _ => 8,
        };
    }
    total
}

/// One parsed stage.
#[derive(Debug, Clone)]
enum Stage {
    Match {
        filter: Filter,
        expr: Option<Expr>,
        /// The filter as given without `$expr` (for pushing into find).
        doc: Document,
    },
    Project(Projection),
    AddFields(AddFields),
    ReplaceRoot(Expr, &'static str),
    Sort(SortSpec, Document),
    Skip(u64),
    Limit(u64),
    Count(String),
    Group(Box<Expr>, Vec<Accumulator>),
    Unwind {
        path: Vec<String>,
        index: Option<String>,
        preserve: bool,
    },
    Lookup(Box<Lookup>),
    Facet(Vec<(String, Pipeline)>),
    Bucket(Box<Bucket>),
    SortByCount(Expr),
    Sample(u64),
}

/// A parsed pipeline (without its final `$out` / `$merge`, see [`Pipeline::parse`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Pipeline {
    stages: Vec<Stage>,
}

/// What can read a stage's single argument.
fn stage_doc<'a>(name: &str, v: &'a Bson) -> Result<&'a Document> {
    match v {
        Bson::Document(d) => Ok(d),
        _ => Err(Error::parse(format!(
            "the {name} stage specification must be an object"
        ))),
    }
}

fn count_arg(name: &str, v: &Bson, positive: bool) -> Result<u64> {
    #[allow(clippy::cast_possible_truncation)] // integral (checked)
    let n = match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) if d.fract() == 0.0 && d.abs() < 9.0e18 => Some(*d as i64),
        _ => None,
    };
    match n {
        Some(n) if n > 0 || (n == 0 && !positive) => Ok(n.unsigned_abs()),
        Some(n) if positive => Err(Error::parse(format!(
            "invalid argument to {name} stage: the limit must be positive, found {n}"
        ))),
        Some(n) => Err(Error::parse(format!(
            "invalid argument to {name} stage: Expected a non-negative number in: {name}: {n}"
        ))),
        None => Err(Error::parse(format!(
            "invalid argument to {name} stage: Expected a number in: {name}: {}",
            crate::document::json::bson_to_json_text(v)
        ))),
    }
}

fn field_path(name: &str, v: &Bson, what: &str) -> Result<Vec<String>> {
    match v {
        Bson::String(s) if s.starts_with('$') && !s.starts_with("$$") && s.len() > 1 => {
            crate::query::path::check_limits(name, s)?;
            let parts: Vec<String> = s[1..].split('.').map(str::to_owned).collect();
            if parts.iter().any(String::is_empty) {
                return Err(Error::parse(format!("{name}: invalid field path '{s}'")));
            }
            Ok(parts)
        }
        _ => Err(Error::parse(format!(
            "{name}: {what} must be a field path starting with '$', found {}",
            crate::document::json::bson_to_json_text(v)
        ))),
    }
}

fn plain_path(name: &str, v: &Bson, what: &str) -> Result<Vec<String>> {
    match v {
        Bson::String(s)
            if !s.is_empty() && !s.starts_with('$') && !s.split('.').any(str::is_empty) =>
        {
            crate::query::path::check_limits(name, s)?;
            Ok(s.split('.').map(str::to_owned).collect())
        }
        _ => Err(Error::parse(format!(
            "{name}: '{what}' must be a non-empty field name not starting with '$', found {}",
            crate::document::json::bson_to_json_text(v)
        ))),
    }
}

impl Pipeline {
    /// Parses the stages of a pipeline. A final `$out` or `$merge` is returned apart;
    /// anywhere else they are refused.
    ///
    /// Errors: [`Error::Parse`] for a malformed stage, [`Error::Unsupported`] naming a
    /// stage or operator this build does not have.
    pub(crate) fn parse(stages: &[Document]) -> Result<(Self, Option<Output>)> {
        let mut out = None;
        let mut parsed = Vec::with_capacity(stages.len());
        for (i, s) in stages.iter().enumerate() {
            if s.len() != 1 {
                return Err(Error::parse(format!(
                    "A pipeline stage specification object must contain exactly one field, found {} in stage {i}",
                    s.len()
                )));
            }
            let (name, arg) = s.iter().next().expect("one field");
            if name == "$out" || name == "$merge" {
                if i + 1 != stages.len() {
                    return Err(Error::parse(format!(
                        "{name} can only be the final stage in the pipeline"
                    )));
                }
                out = Some(output::parse_output(name, arg)?);
                continue;
            }
            parsed.push(Self::parse_stage(name, arg)?);
        }
        Ok((Self { stages: parsed }, out))
    }

    /// Parses a pipeline nested in a stage (`$lookup`, `$facet`): no `$out` / `$merge`.
    fn parse_nested(v: &Bson, owner: &str) -> Result<Self> {
        let Bson::Array(items) = v else {
            return Err(Error::parse(format!(
                "{owner}: the pipeline must be an array"
            )));
        };
        let mut docs = Vec::with_capacity(items.len());
        for item in items {
            let Bson::Document(d) = item else {
                return Err(Error::parse(format!(
                    "{owner}: each pipeline stage must be an object"
                )));
            };
            docs.push(d.clone());
        }
        let (p, output) = Self::parse(&docs)?;
        if output.is_some() {
            return Err(Error::parse(format!(
                "{owner}: $out and $merge are not allowed inside {owner}"
            )));
        }
        Ok(p)
    }

    fn parse_stage(name: &str, arg: &Bson) -> Result<Stage> {
        Ok(match name {
            "$match" => {
                let d = stage_doc(name, arg)?;
                let mut doc = d.clone();
                let expr = doc.remove("$expr").map(|e| Expr::parse(&e)).transpose()?;
                Stage::Match {
                    filter: Filter::parse(&doc)?,
                    expr,
                    doc,
                }
            }
            "$project" => Stage::Project(Projection::parse(stage_doc(name, arg)?)?),
            "$addFields" | "$set" => {
                Stage::AddFields(AddFields::parse(stage_doc(name, arg)?, name)?)
            }
            "$unset" => Stage::Project(Projection::unset(arg)?),
            "$replaceRoot" => {
                let d = stage_doc(name, arg)?;
                let (Some(root), 1) = (d.get("newRoot"), d.len()) else {
                    return Err(Error::parse(
                        "$replaceRoot: expected exactly one field, 'newRoot'",
                    ));
                };
                Stage::ReplaceRoot(Expr::parse(root)?, "newRoot")
            }
            "$replaceWith" => Stage::ReplaceRoot(Expr::parse(arg)?, "replacement document"),
            "$sort" => {
                let d = stage_doc(name, arg)?;
                if d.is_empty() {
                    return Err(Error::parse("$sort stage must have at least one sort key"));
                }
                Stage::Sort(SortSpec::parse(d)?, d.clone())
            }
            "$skip" => Stage::Skip(count_arg(name, arg, false)?),
            "$limit" => Stage::Limit(count_arg(name, arg, true)?),
            "$count" => match arg {
                Bson::String(s) if s.is_empty() => {
                    return Err(Error::parse("the count field must be a non-empty string"))
                }
                Bson::String(s) if s.starts_with('$') => {
                    return Err(Error::parse("the count field cannot be a $-prefixed path"))
                }
                Bson::String(s) if s.contains('.') => {
                    return Err(Error::parse("the count field cannot contain '.'"))
                }
                Bson::String(s) => Stage::Count(s.clone()),
                _ => return Err(Error::parse("the count field must be a non-empty string")),
            },
            "$group" => {
                let d = stage_doc(name, arg)?;
                let Some(id) = d.get("_id") else {
                    return Err(Error::parse("a group specification must include an _id"));
                };
                Stage::Group(Box::new(Expr::parse(id)?), accumulators(d, true, "$group")?)
            }
            "$unwind" => Self::parse_unwind(arg)?,
            "$lookup" => Stage::Lookup(Box::new(lookup::parse(arg)?)),
            "$facet" => {
                let d = stage_doc(name, arg)?;
                if d.is_empty() {
                    return Err(Error::parse(
                        "the $facet specification must be a non-empty object",
                    ));
                }
                let mut facets = Vec::new();
                for (k, v) in d {
                    if k.is_empty() || k.starts_with('$') || k.contains('.') {
                        return Err(Error::parse(format!("$facet: invalid facet name '{k}'")));
                    }
                    if let Bson::Array(items) = v {
                        for s in items {
                            if let Some(n) = s.as_document().and_then(|s| s.keys().next()) {
                                if n == "$facet" {
                                    return Err(Error::parse(
                                        "$facet is not allowed to be used within a $facet stage",
                                    ));
                                }
                            }
                        }
                    }
                    facets.push((k.clone(), Self::parse_nested(v, "$facet")?));
                }
                Stage::Facet(facets)
            }
            "$bucket" => Stage::Bucket(Box::new(Bucket::parse(arg)?)),
            "$sortByCount" => {
                if !matches!(arg, Bson::String(s) if s.starts_with('$'))
                    && !matches!(arg, Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')))
                {
                    return Err(Error::parse(
                        "the sortKey specification for $sortByCount must be a $-prefixed path or an expression object",
                    ));
                }
                Stage::SortByCount(Expr::parse(arg)?)
            }
            "$sample" => {
                let d = stage_doc(name, arg)?;
                let (Some(size), 1) = (d.get("size"), d.len()) else {
                    return Err(Error::parse("$sample stage must specify a size"));
                };
                Stage::Sample(
                    count_arg("$sample", size, false).map_err(|_| {
                        Error::parse("size argument to $sample must not be negative")
                    })?,
                )
            }
            other if other.starts_with('$') => {
                return Err(Error::unsupported(format!(
                    "Unrecognized pipeline stage name: '{other}' (not supported by NexusLite)"
                )))
            }
            other => {
                return Err(Error::parse(format!(
                    "Unrecognized pipeline stage name: '{other}'"
                )))
            }
        })
    }

    fn parse_unwind(arg: &Bson) -> Result<Stage> {
        match arg {
            Bson::String(_) => Ok(Stage::Unwind {
                path: field_path("$unwind", arg, "path")?,
                index: None,
                preserve: false,
            }),
            Bson::Document(d) => {
                let mut path = None;
                let mut index = None;
                let mut preserve = false;
                for (k, v) in d {
                    match (k.as_str(), v) {
                        ("path", _) => path = Some(field_path("$unwind", v, "path")?),
                        ("includeArrayIndex", Bson::String(s))
                            if !s.is_empty() && !s.starts_with('$') =>
                        {
                            crate::query::path::check_limits("$unwind", s)?;
                            index = Some(s.clone());
                        }
                        ("includeArrayIndex", _) => {
                            return Err(Error::parse(
                                "$unwind: 'includeArrayIndex' must be a non-empty string not starting with '$'",
                            ))
                        }
                        ("preserveNullAndEmptyArrays", Bson::Boolean(b)) => preserve = *b,
                        ("preserveNullAndEmptyArrays", _) => {
                            return Err(Error::parse(
                                "$unwind: 'preserveNullAndEmptyArrays' must be a boolean",
                            ))
                        }
                        (other, _) => {
                            return Err(Error::parse(format!(
                                "unrecognized option to $unwind stage: {other}"
                            )))
                        }
                    }
                }
                let path = path.ok_or_else(|| Error::parse("$unwind: no path specified"))?;
                Ok(Stage::Unwind {
                    path,
                    index,
                    preserve,
                })
            }
            _ => Err(Error::parse(
                "expected either a string or an object as specification for $unwind stage",
            )),
        }
    }

    /// Takes the leading stages the find planner can serve: a `$match` without `$expr`,
    /// then a `$sort`, `$skip` and `$limit` in that order (each optional). Returns the
    /// filter, the sort, the skip and the limit (0: none), or `None` when the pipeline does
    /// not start with any of them.
    pub(crate) fn take_leading_find(&mut self) -> Option<(Document, Option<Document>, u64, u64)> {
        let mut filter = Document::new();
        let mut sort = None;
        let mut skip = 0;
        let mut limit = 0;
        let mut taken = 0;
        let mut it = self.stages.iter().peekable();
        if let Some(Stage::Match {
            expr: None, doc, ..
        }) = it.peek()
        {
            filter = doc.clone();
            taken += 1;
            it.next();
        }
        if let Some(Stage::Sort(_, d)) = it.peek() {
            sort = Some(d.clone());
            taken += 1;
            it.next();
        }
        if let Some(Stage::Skip(n)) = it.peek() {
            skip = *n;
            taken += 1;
            it.next();
        }
        if let Some(Stage::Limit(n)) = it.peek() {
            limit = *n;
            taken += 1;
        }
        if taken == 0 {
            return None;
        }
        self.stages.drain(..taken);
        Some((filter, sort, skip, limit))
    }

    /// The top-level fields of its input documents the pipeline reads, when it can tell:
    /// `$match` stages followed by a `$group` or `$count`, which replace the documents by
    /// what they compute (MongoDB's dependency analysis, in its simplest form). `None`: the
    /// whole documents (any other stage, or an expression reading `$$ROOT`). The input may
    /// then be decoded with only these fields: every other field is never read.
    pub(crate) fn input_fields(&self) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for stage in &self.stages {
            match stage {
                Stage::Match { filter, expr, .. } => {
                    filter_fields(filter, &mut out);
                    if !expr.as_ref().is_none_or(|e| e.top_fields(&mut out)) {
                        return None;
                    }
                }
                Stage::Group(id, accs) => {
                    let reads = id.top_fields(&mut out)
                        && accs.iter().all(|a| a.input().top_fields(&mut out));
                    return reads.then(|| {
                        out.sort();
                        out.dedup();
                        out
                    });
                }
                Stage::Count(_) => {
                    out.sort();
                    out.dedup();
                    return Some(out);
                }
                _ => return None,
            }
        }
        None
    }

    /// The pipeline as a [`BytesJoin`] over documents' BSON bytes, when every stage is a
    /// `$lookup` that can run so ([`Lookup::over_bytes`]); `None` otherwise (and for an
    /// empty pipeline).
    pub(crate) fn join_over_bytes<'a>(&'a self, foreign: &'a dyn Foreign) -> Option<BytesJoin<'a>> {
        let mut lookups = Vec::new();
        for s in &self.stages {
            match s {
                Stage::Lookup(l) if l.over_bytes() => lookups.push(&**l),
                _ => return None,
            }
        }
        (!lookups.is_empty()).then(|| BytesJoin::new(lookups, foreign))
    }

    /// The stage names, for explain.
    pub(crate) fn stage_names(&self) -> Vec<&'static str> {
        self.stages
            .iter()
            .map(|s| match s {
                Stage::Match { .. } => "$match",
                Stage::Project(_) => "$project",
                Stage::AddFields(_) => "$addFields",
                Stage::ReplaceRoot(..) => "$replaceRoot",
                Stage::Sort(..) => "$sort",
                Stage::Skip(_) => "$skip",
                Stage::Limit(_) => "$limit",
                Stage::Count(_) => "$count",
                Stage::Group(..) => "$group",
                Stage::Unwind { .. } => "$unwind",
                Stage::Lookup(_) => "$lookup",
                Stage::Facet(_) => "$facet",
                Stage::Bucket(_) => "$bucket",
                Stage::SortByCount(_) => "$sortByCount",
                Stage::Sample(_) => "$sample",
            })
            .collect()
    }

    /// Runs the stages over `docs`, with the pipeline variables `vars` (`let`).
    ///
    /// Errors: an expression's or stage's error; [`Error::Unsupported`] when the documents
    /// held pass [`MAX_BUFFERED_BYTES`].
    pub(crate) fn run(
        &self,
        docs: Vec<Document>,
        vars: &[(String, Bson)],
        foreign: &dyn Foreign,
    ) -> Result<Vec<Document>> {
        run_stages(&self.stages, docs, vars, foreign)
    }

    /// Runs the pipeline over documents read one at a time from `source`: the leading
    /// per-document stages (`$match`, `$project`, `$addFields`, `$unset`, `$replaceRoot`)
    /// and a `$group`, `$count` or `$limit` right after them stream, so a pipeline that
    /// groups a collection holds the groups, not the collection. From there on the
    /// documents are held (within [`MAX_BUFFERED_BYTES`]).
    pub(crate) fn run_source(
        &self,
        source: &mut dyn Iterator<Item = Result<Document>>,
        vars: &[(String, Bson)],
        foreign: &dyn Foreign,
    ) -> Result<Vec<Document>> {
        let k = self
            .stages
            .iter()
            .take_while(|s| {
                matches!(
                    s,
                    Stage::Match { .. }
                        | Stage::Project(_)
                        | Stage::AddFields(_)
                        | Stage::ReplaceRoot(..)
                )
            })
            .count();
        let per_doc = &self.stages[..k];
        let transform = |d: Document| -> Result<Option<Document>> {
            let mut d = d;
            for s in per_doc {
                match run_stage(s, vec![d], vars, foreign)?.pop() {
                    Some(x) => d = x,
                    None => return Ok(None),
                }
            }
            Ok(Some(d))
        };
        let mut next = k;
        let docs = match self.stages.get(k) {
            Some(Stage::Group(id, accs)) => {
                let mut g = group::Grouper::new(accs, vars);
                let mut key = |env: &Env| id.eval(env);
                for d in source {
                    if let Some(d) = transform(d?)? {
                        g.push(d, &mut key)?;
                    }
                }
                next += 1;
                let groups = g.finish();
                let mut budget = Budget::new();
                for d in &groups {
                    budget.charge(approx_bytes(d))?;
                }
                groups
            }
            Some(Stage::Count(name)) => {
                let mut n: i64 = 0;
                for d in source {
                    if transform(d?)?.is_some() {
                        n += 1;
                    }
                }
                next += 1;
                if n == 0 {
                    Vec::new()
                } else {
                    let mut d = Document::new();
                    d.insert(
                        name.clone(),
                        i32::try_from(n).map_or(Bson::Int64(n), Bson::Int32),
                    );
                    vec![d]
                }
            }
            other => {
                let limit = match other {
                    Some(Stage::Limit(n)) => usize::try_from(*n).unwrap_or(usize::MAX),
                    _ => usize::MAX,
                };
                let mut budget = Budget::new();
                let mut out = Vec::new();
                for d in source {
                    if out.len() >= limit {
                        break;
                    }
                    if let Some(d) = transform(d?)? {
                        budget.charge(approx_bytes(&d))?;
                        out.push(d);
                    }
                }
                out
            }
        };
        run_stages(&self.stages[next..], docs, vars, foreign)
    }
}

fn run_stages(
    stages: &[Stage],
    mut docs: Vec<Document>,
    vars: &[(String, Bson)],
    foreign: &dyn Foreign,
) -> Result<Vec<Document>> {
    let mut budget = Budget::new();
    for stage in stages {
        docs = run_stage(stage, docs, vars, foreign)?;
        if matches!(
            stage,
            Stage::Group(..)
                | Stage::Unwind { .. }
                | Stage::Lookup(_)
                | Stage::Facet(_)
                | Stage::AddFields(_)
                | Stage::Project(_)
                | Stage::ReplaceRoot(..)
                | Stage::Bucket(_)
        ) {
            budget.reset();
            for d in &docs {
                budget.charge(approx_bytes(d))?;
            }
        }
    }
    Ok(docs)
}

fn run_stage(
    stage: &Stage,
    docs: Vec<Document>,
    vars: &[(String, Bson)],
    foreign: &dyn Foreign,
) -> Result<Vec<Document>> {
    let each = |f: &dyn Fn(&Document, &Env) -> Result<Option<Document>>| -> Result<Vec<Document>> {
        let mut out = Vec::with_capacity(docs.len());
        for d in &docs {
            let root = Bson::Document(d.clone());
            let env = Env::new(&root, vars);
            if let Some(x) = f(d, &env)? {
                out.push(x);
            }
        }
        Ok(out)
    };
    Ok(match stage {
        Stage::Match { filter, expr, .. } => {
            let mut out = Vec::new();
            for d in docs {
                if !filter.matches(&d) {
                    continue;
                }
                if let Some(e) = expr {
                    let root = Bson::Document(d);
                    let keep = crate::query::expr::truthy(&e.eval(&Env::new(&root, vars))?);
                    let Bson::Document(d) = root else {
                        unreachable!()
                    };
                    if keep {
                        out.push(d);
                    }
                } else {
                    out.push(d);
                }
            }
            out
        }
        Stage::Project(p) => each(&|d, env| p.apply(d, env).map(Some))?,
        Stage::AddFields(a) => each(&|d, env| a.apply(d, env).map(Some))?,
        Stage::ReplaceRoot(e, what) => each(&|_, env| {
            match e.eval(env)? {
            Bson::Document(nd) => Ok(Some(nd)),
            other => Err(Error::invalid(format!(
                "'{what}' must evaluate to an object, but resulting value was: {}. Type of resulting value: '{}'",
                if is_missing(&other) { "MISSING".to_owned() } else { crate::document::json::bson_to_json_text(&other) },
                crate::query::expr::type_name(&other)
            ))),
        }
        })?,
        Stage::Sort(spec, _) => sort_docs(spec, docs),
        Stage::Skip(n) => docs
            .into_iter()
            .skip(usize::try_from(*n).unwrap_or(usize::MAX))
            .collect(),
        Stage::Limit(n) => docs
            .into_iter()
            .take(usize::try_from(*n).unwrap_or(usize::MAX))
            .collect(),
        Stage::Count(name) => {
            if docs.is_empty() {
                Vec::new()
            } else {
                let n = docs.len();
                let mut d = Document::new();
                d.insert(
                    name.clone(),
                    i32::try_from(n).map_or(Bson::Int64(n as i64), Bson::Int32),
                );
                vec![d]
            }
        }
        Stage::Group(id, accs) => group::group_by(docs, accs, vars, |env| id.eval(env))?,
        Stage::Unwind {
            path,
            index,
            preserve,
        } => unwind(docs, path, index.as_deref(), *preserve),
        Stage::Lookup(l) => lookup::lookup(l, docs, vars, foreign)?,
        Stage::Facet(facets) => {
            let mut out = Document::new();
            for (name, p) in facets {
                let r = p.run(docs.clone(), vars, foreign)?;
                out.insert(
                    name.clone(),
                    r.into_iter().map(Bson::Document).collect::<Vec<_>>(),
                );
            }
            vec![out]
        }
        Stage::Bucket(b) => b.run(docs, vars)?,
        Stage::SortByCount(e) => {
            let mut g = group::group_by(docs, &[Accumulator::count("count")], vars, |env| {
                e.eval(env)
            })?;
            let spec = SortSpec::parse(&bson::doc! {"count": -1}).expect("a valid sort");
            g = sort_docs(&spec, g);
            g
        }
        Stage::Sample(n) => {
            let mut docs = docs;
            let n = usize::try_from(*n).unwrap_or(usize::MAX).min(docs.len());
            // A partial Fisher-Yates shuffle: the first n are a uniform sample.
            for i in 0..n {
                let j = fastrand::usize(i..docs.len());
                docs.swap(i, j);
            }
            docs.truncate(n);
            docs
        }
    })
}

/// The top-level fields a filter reads.
fn filter_fields(f: &Filter, out: &mut Vec<String>) {
    match f {
        Filter::All(fs) | Filter::Any(fs) | Filter::NoneOf(fs) => {
            fs.iter().for_each(|x| filter_fields(x, out));
        }
        Filter::Field { parts, .. } => out.extend(parts.first().cloned()),
    }
}

/// A stable sort by `spec` (MongoDB's sort rules: arrays by their least / greatest element).
fn sort_docs(spec: &SortSpec, docs: Vec<Document>) -> Vec<Document> {
    let mut keyed: Vec<(Vec<Option<Bson>>, Document)> =
        docs.into_iter().map(|d| (spec.key_of(&d), d)).collect();
    keyed.sort_by(|a, b| spec.compare_keys(&a.0, &b.0));
    keyed.into_iter().map(|(_, d)| d).collect()
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

/// Applies a pipeline-style update (`update` given as an array of stages) to one
/// document: only `$addFields` / `$set`, `$unset`, `$project`, `$replaceRoot` and
/// `$replaceWith` are allowed, as in MongoDB. The caller checks that `_id` did not change.
///
/// Errors: [`Error::Parse`] for a stage not allowed in an update or a malformed one,
/// [`Error::Unsupported`] for an unknown operator, expression errors as in `aggregate`.
pub(crate) fn apply_update_pipeline(doc: &Document, stages: &[Document]) -> Result<Document> {
    check_update_pipeline(stages)?;
    let (p, _) = Pipeline::parse(stages)?;
    let mut out = p.run(vec![doc.clone()], &[], &NoForeign)?;
    out.pop()
        .ok_or_else(|| Error::Internal("an update pipeline produced no document".into()))
}

/// Checks a pipeline-style update before it runs: only `$addFields` / `$set`, `$unset`,
/// `$project`, `$replaceRoot` and `$replaceWith`, each well formed.
pub(crate) fn check_update_pipeline(stages: &[Document]) -> Result<()> {
    for s in stages {
        let name = s.keys().next().map(String::as_str).unwrap_or("");
        if !matches!(
            name,
            "$addFields" | "$set" | "$unset" | "$project" | "$replaceRoot" | "$replaceWith"
        ) {
            return Err(Error::parse(format!(
                "{name} is not allowed to be used within an update"
            )));
        }
    }
    Pipeline::parse(stages).map(drop)
}
