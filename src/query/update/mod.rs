//! Updates: [`Update::parse`] reads an update document (operators such as `$set`, or a
//! replacement document) and checks it completely (unknown operators, wrong operand types,
//! conflicting paths, `_id` changes) before anything is applied ([`parse`]);
//! [`Update::apply`] produces the new document ([`apply`]), resolving the positional `$`
//! against the filter that matched and `$[]` against the document, with the field helpers
//! of [`fields`]. Nothing is written by this module: the collection layer computes every
//! new document first and writes only when all of them succeeded.

mod apply;
pub(crate) mod array_filters;
pub(crate) mod fields;
mod parse;
pub(crate) mod patch;
pub(crate) mod pipeline;

use super::filter::{Cond, Filter};
use super::sort::SortSpec;
use crate::error::{Error, Result};
pub(crate) use array_filters::ArrayFilters;
use bson::{Bson, Document};

pub(crate) use fields::set_path;

/// How `$push` orders the array after inserting (`$sort`).
#[derive(Debug, Clone)]
pub(crate) enum PushSort {
    /// `1` / `-1`: by the elements themselves, ascending when true.
    Whole(bool),
    /// `{field: 1, ...}`: by fields of document elements.
    Fields(SortSpec),
}

/// `$push` with its modifiers (a plain value is `each: [value]`).
#[derive(Debug, Clone)]
pub(crate) struct PushSpec {
    pub each: Vec<Bson>,
    pub slice: Option<i64>,
    pub sort: Option<PushSort>,
    pub position: Option<i64>,
}

/// What `$pull` removes.
#[derive(Debug, Clone)]
pub(crate) enum PullCond {
    /// Elements equal to the value.
    Value(Bson),
    /// Elements satisfying operator conditions (`{$gte: 6}`, a regex).
    Conds(Vec<Cond>),
    /// Document elements matching a query (`{score: 8, item: "B"}`).
    Query(Filter),
}

/// What one update operator does to one path.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    Set(Bson),
    Unset,
    Inc(Bson),
    Mul(Bson),
    Min(Bson),
    Max(Bson),
    /// The target path.
    Rename(String),
    /// `true` for a timestamp, else a date.
    CurrentDate(bool),
    SetOnInsert(Bson),
    Push(PushSpec),
    AddToSet(Vec<Bson>),
    /// `true` removes the first element (`-1`), else the last (`1`).
    Pop(bool),
    Pull(PullCond),
    PullAll(Vec<Bson>),
}

/// One operator applied to one path, e.g. `$inc` on `stats.views`.
#[derive(Debug, Clone)]
pub(crate) struct FieldOp {
    /// The operator's name, for messages.
    pub op: &'static str,
    /// The path as written (may hold `$`, `$[]` or `$[<identifier>]`).
    pub path: String,
    pub action: Action,
}

/// A parsed update.
#[derive(Debug, Clone)]
pub(crate) enum Update {
    /// A whole new body (the `_id` is kept).
    Replace(Document),
    /// Field operators, in the order given, and the `arrayFilters` their `$[<identifier>]`
    /// paths use.
    Ops(Vec<FieldOp>, ArrayFilters),
    /// An aggregation pipeline (an update given as an array of stages), applied by
    /// [`pipeline::apply`].
    Pipeline(Vec<Document>),
}

/// An update as a caller gives it: an update or replacement document, or a pipeline (an
/// array of stages such as `$set` / `$unset`).
#[derive(Debug, Clone)]
pub enum UpdateModifications {
    /// Operators (`{"$set": ...}`) or a replacement document.
    Document(Document),
    /// An aggregation pipeline.
    Pipeline(Vec<Document>),
}

impl From<Document> for UpdateModifications {
    fn from(d: Document) -> Self {
        UpdateModifications::Document(d)
    }
}

impl From<&Document> for UpdateModifications {
    fn from(d: &Document) -> Self {
        UpdateModifications::Document(d.clone())
    }
}

impl From<Vec<Document>> for UpdateModifications {
    fn from(stages: Vec<Document>) -> Self {
        UpdateModifications::Pipeline(stages)
    }
}

impl Update {
    /// Parses and validates an update document (no `arrayFilters`).
    #[cfg(test)]
    pub(crate) fn parse(update: &Document) -> Result<Self> {
        parse::parse(update, &ArrayFilters::none())
    }

    /// Parses an update or replacement document with its `arrayFilters` (parsed first).
    pub(crate) fn parse_document(
        update: &Document,
        array_filters: Option<&[Document]>,
    ) -> Result<Self> {
        let filters = match array_filters {
            Some(docs) => ArrayFilters::parse(docs)?,
            None => ArrayFilters::none(),
        };
        parse::parse(update, &filters)
    }

    /// Parses an update (document or pipeline) with its `arrayFilters` (the option's
    /// documents, parsed first, as MongoDB does). A pipeline takes no `arrayFilters`.
    pub(crate) fn parse_with(
        update: &UpdateModifications,
        array_filters: Option<&[Document]>,
    ) -> Result<Self> {
        match update {
            UpdateModifications::Document(d) => Self::parse_document(d, array_filters),
            UpdateModifications::Pipeline(stages) => {
                if array_filters.is_some_and(|a| !a.is_empty()) {
                    return Err(Error::parse(
                        "arrayFilters may not be specified for pipeline-style updates",
                    ));
                }
                // Before the copy below (copying recurses).
                for stage in stages {
                    crate::document::check_nesting(
                        stage,
                        crate::document::MAX_QUERY_NESTING,
                        "a pipeline stage",
                    )?;
                }
                pipeline::check(stages)?;
                Ok(Update::Pipeline(stages.clone()))
            }
        }
    }

    /// Whether this is a replacement document.
    pub(crate) fn is_replacement(&self) -> bool {
        matches!(self, Update::Replace(_))
    }

    /// Applies the update to `doc` (which has its `_id`), returning the new body. `filter`
    /// is the query that matched `doc` (it resolves the positional `$`); `inserting` is true
    /// when `doc` is the seed of an upsert (then `$setOnInsert` applies).
    ///
    /// Errors: [`Error::Parse`] when an operator cannot apply to this document (`$inc` on a
    /// string, `$push` to a non-array, an `_id` change, a positional `$` without a match).
    pub(crate) fn apply(
        &self,
        doc: &Document,
        filter: &Filter,
        inserting: bool,
    ) -> Result<Document> {
        let id = doc.get("_id").cloned();
        match self {
            Update::Replace(body) => {
                if let (Some(new_id), Some(old_id)) = (body.get("_id"), &id) {
                    if !super::compare::equal(new_id, old_id) {
                        return Err(immutable_id());
                    }
                }
                let mut out = Document::new();
                if let Some(id) = id {
                    out.insert("_id", id);
                }
                for (k, v) in body {
                    if k != "_id" {
                        out.insert(k.clone(), v.clone());
                    }
                }
                Ok(out)
            }
            Update::Pipeline(stages) => pipeline::apply(doc, stages),
            Update::Ops(ops, array_filters) => {
                let mut out = doc.clone();
                let ctx = apply::Ctx {
                    filter,
                    inserting,
                    original: doc,
                    array_filters,
                };
                // Operators with positional paths may resolve to the same element: their
                // concrete paths are checked against each other (others were at parse).
                let positional = ops.iter().any(|op| op.path.contains('$'));
                let mut written = Vec::new();
                for op in ops {
                    let paths = apply::apply_op(&mut out, op, &ctx)?;
                    if positional {
                        written.push(paths);
                    }
                }
                if positional {
                    apply::check_resolved_conflicts(&written)?;
                }
                if !inserting {
                    match (out.get("_id"), &id) {
                        (Some(new), Some(old)) if super::compare::equal(new, old) => {
                            out.insert("_id", old.clone());
                        }
                        (None, None) => {}
                        _ => return Err(immutable_id()),
                    }
                }
                Ok(out)
            }
        }
    }
}

pub(crate) fn immutable_id() -> Error {
    Error::parse("Performing an update on the path '_id' would modify the immutable field '_id'")
}

/// The name of a value's BSON type, as MongoDB's messages write it.
pub(crate) fn type_name(v: &Bson) -> &'static str {
    match v {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Array(_) => "array",
        Bson::Document(_) => "object",
        Bson::Boolean(_) => "bool",
        Bson::Null => "null",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Decimal128(_) => "decimal",
        Bson::DateTime(_) => "date",
        Bson::ObjectId(_) => "objectId",
        Bson::Binary(_) => "binData",
        Bson::Timestamp(_) => "timestamp",
        Bson::RegularExpression(_) => "regex",
        Bson::MinKey => "minKey",
        Bson::MaxKey => "maxKey",
        Bson::Undefined => "undefined",
        Bson::Symbol(_) => "symbol",
        Bson::JavaScriptCode(_) => "javascript",
        Bson::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        Bson::DbPointer(_) => "dbPointer",
    }
}

#[cfg(test)]
mod tests;
