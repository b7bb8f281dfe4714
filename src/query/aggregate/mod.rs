//! The aggregation pipeline: [`Pipeline`] parses the stages (`$match`, `$project`,
//! `$addFields`/`$set`, `$unset`, `$replaceRoot`/`$replaceWith`, `$sort`, `$skip`,
//! `$limit`, `$count`, `$group`, `$unwind`, `$lookup`, `$facet`, `$bucket`,
//! `$sortByCount`, `$sample`, and a final `$out` / `$merge`); [`stream`] runs them,
//! documents streaming from stage to stage. Expressions are [`crate::query::expr`];
//! reshaping stages are [`shape`]; grouping is [`group`]; `$lookup` is [`lookup`]; the
//! memory limit and spilling are [`spill`]; the final `$out` / `$merge` is [`output`].
//!
//! This layer reads no collection itself: `$lookup` asks a [`Foreign`] (implemented by the
//! API layer over the same database), and the API layer feeds the pipeline's input (its
//! leading `$match` / `$sort` / `$skip` / `$limit` served by the find planner, see
//! [`Pipeline::take_leading_find`]) and performs `$out` / `$merge` ([`Output`]).
//!
//! Memory: documents stream from stage to stage; the blocking stages (`$sort`, `$group`,
//! `$bucket`, `$sortByCount`, `$sample`, `$facet`'s input) and the results hold
//! at most [`spill::Memory`]'s limit each (100 MiB by default, as MongoDB) and past it
//! spill to temporary files ([`spill`], MongoDB's `allowDiskUse`) or, without
//! `allowDiskUse`, fail. `$lookup` joins a batch of its input at a time, its joined
//! documents within [`MAX_BUFFERED_BYTES`] per batch ([`Budget`]).
//!
//! Pipeline-style updates use [`apply_update_pipeline`].

pub(crate) mod group;
mod lookup;
mod output;
pub(crate) mod shape;
pub(crate) mod spill;
mod stream;

#[cfg(test)]
mod spill_tests;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::query::expr::Expr;
use crate::query::filter::Filter;
use crate::query::sort::SortSpec;
use bson::{Bson, Document};
use group::{accumulators, Accumulator, Bucket};
pub(crate) use lookup::BytesJoin;
use lookup::Lookup;
pub(crate) use output::{Output, WhenMatched, WhenNotMatched};
use shape::{set_path, AddFields, Projection};
use spill::Spool;
pub(crate) use spill::{Memory, Spooled};

/// The most bytes of joined documents (estimated as BSON) `$lookup` holds for one batch of
/// its input.
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

/// The running count of the bytes `$lookup` joined for one batch of its input.
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
                "aggregate: $lookup would hold more than {} MiB of joined documents for one batch of its input; spilling $lookup results to disk is not supported by NexusLite",
                MAX_BUFFERED_BYTES >> 20
            )));
        }
        Ok(())
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

    /// Runs the stages over `docs`, with the pipeline variables `vars` (`let`), within the
    /// default [`Memory`] (100 MiB per blocking stage, spilling to the system's temporary
    /// directory).
    ///
    /// Errors: an expression's or stage's error; I/O while spilling.
    pub(crate) fn run(
        &self,
        docs: Vec<Document>,
        vars: &[(String, Bson)],
        foreign: &dyn Foreign,
    ) -> Result<Vec<Document>> {
        let mem = Memory::default();
        let out = stream::stream(
            &self.stages,
            Box::new(docs.into_iter().map(Ok)),
            vars,
            foreign,
            &mem,
        )?;
        out.collect()
    }

    /// Runs the pipeline over documents read one at a time from `source`, within `mem`:
    /// documents stream from stage to stage, the blocking stages hold at most `mem.limit`
    /// bytes each and spill past it, and the results are spooled (in memory up to the
    /// limit, in a temporary file past it) for the cursor to read.
    ///
    /// Errors: an expression's or stage's error; past a limit without `allowDiskUse`
    /// ([`Error::InvalidArgument`], MongoDB's words); I/O while spilling.
    pub(crate) fn run_source(
        &self,
        source: &mut dyn Iterator<Item = Result<Document>>,
        vars: &[(String, Bson)],
        foreign: &dyn Foreign,
        mem: &Memory,
    ) -> Result<Spooled> {
        let out = stream::stream(&self.stages, Box::new(source), vars, foreign, mem)?;
        let mut spool = Spool::new(mem, "the aggregate results");
        for d in out {
            spool.push(d?)?;
        }
        spool.finish()
    }

    /// Puts a `$sort` (and the `$skip` after it) taken by [`Pipeline::take_leading_find`]
    /// back at the front, for the pipeline's own sort to run (one that spills).
    pub(crate) fn put_back_sort(&mut self, sort: Document, skip: u64) -> Result<()> {
        let spec = SortSpec::parse(&sort)?;
        if skip > 0 {
            self.stages.insert(0, Stage::Skip(skip));
        }
        self.stages.insert(0, Stage::Sort(spec, sort));
        Ok(())
    }
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
