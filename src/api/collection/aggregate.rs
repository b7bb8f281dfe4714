//! [`Collection::aggregate`]: runs an aggregation pipeline ([`crate::query::aggregate`]).
//! The leading `$match` / `$sort` / `$skip` / `$limit` go through `find`, so the planner
//! serves them from an index when one fits; the rest runs in memory over what `find`
//! returns, within the memory limit of `allowDiskUse` / `maxMemoryBytes` (blocking stages
//! spill to temporary files in the database's directory), and the results come back as a
//! [`Cursor`] over them. `$lookup` reads the same database through `find`, in the snapshot
//! the input is read from; a final `$out` / `$merge` writes in one transaction (or in the
//! caller's open transaction).

use super::Collection;
use crate::api::database::Database;
use crate::api::options::AggregateOptions;
use crate::document::{check_nesting, Document, DocumentId, MAX_QUERY_NESTING};
use crate::error::{Error, Result};
use crate::exec::Cursor;
use crate::query::aggregate::{Foreign, Memory, Output, Pipeline, WhenMatched, WhenNotMatched};
use crate::query::FindOptions;
use crate::storage::ReadView;
use bson::{Bson, Document as BsonDocument};
use std::sync::Arc;

/// `$lookup`'s view of the database: `find` on another collection, in the snapshot the
/// aggregation reads (so one run sees one state of every collection, and a `$lookup` may
/// remember what a filter found).
struct DbForeign<'a> {
    db: &'a Database,
    snap: Arc<dyn ReadView>,
}

impl Foreign for DbForeign<'_> {
    fn find(&self, coll: &str, filter: &BsonDocument) -> Result<Vec<BsonDocument>> {
        crate::api::collection::check_collection_name(coll)?;
        self.db
            .collection(coll)
            .find_in(Arc::clone(&self.snap), filter, FindOptions::default())?
            .map(|d| d.map(Document::into_bson))
            .collect()
    }
}

impl Collection<'_> {
    /// Runs an aggregation pipeline (MongoDB's stages and expressions; the list is in
    /// `docs/API.md`) over the collection; a missing collection is an empty input. The
    /// cursor holds the results, computed from the snapshot taken now (the open
    /// transaction's, inside one). With a final `$out` / `$merge` the results are written
    /// and the cursor is empty.
    ///
    /// Errors: [`Error::Parse`] for a malformed pipeline, [`Error::Unsupported`] naming a
    /// stage, operator or option not built, [`Error::InvalidArgument`] for an expression
    /// error at run time (MongoDB's wording) or a pipeline that is not an array of objects.
    pub fn aggregate(
        &self,
        pipeline: &[BsonDocument],
        options: AggregateOptions,
    ) -> Result<Cursor> {
        for stage in pipeline {
            check_nesting(stage, MAX_QUERY_NESTING, "pipeline stage")?;
        }
        if let Some(v) = &options.let_vars {
            check_nesting(v, MAX_QUERY_NESTING, "let")?;
        }
        if let Some(spec) = pipeline
            .first()
            .filter(|s| s.len() == 1)
            .and_then(|s| s.get_document("$vectorSearch").ok())
        {
            return self.aggregate_vector(spec, &pipeline[1..], options);
        }
        let (mut p, output) = Pipeline::parse(pipeline)?;
        let vars = let_vars(&options)?;
        let (filter, mut sort, mut skip, limit) =
            p.take_leading_find()
                .unwrap_or((BsonDocument::new(), None, 0, 0));
        // A leading $sort without a $limit goes to find only when an index gives its order:
        // find sorts in memory without a bound, the pipeline's own $sort spills.
        if let (Some(s), 0) = (&sort, limit) {
            if !self.index_sorts(&filter, s)? {
                p.put_back_sort(s.clone(), skip)?;
                sort = None;
                skip = 0;
            }
        }
        let mem = Memory::new(
            options.max_memory_bytes.map_or(
                crate::query::aggregate::spill::DEFAULT_MAX_MEMORY_BYTES,
                |n| usize::try_from(n).unwrap_or(usize::MAX),
            ),
            options.allow_disk_use,
            self.db
                .engine()
                .path
                .as_deref()
                .and_then(std::path::Path::parent)
                .map(|d| {
                    if d.as_os_str().is_empty() {
                        std::path::PathBuf::from(".")
                    } else {
                        d.to_path_buf()
                    }
                }),
        );
        let find_opts = FindOptions {
            sort,
            skip,
            limit,
            ..FindOptions::default()
        };
        if options.explain {
            let plan = self.explain(&filter, find_opts)?;
            let mut d = BsonDocument::new();
            d.insert("$cursor", plan);
            d.insert(
                "stages",
                p.stage_names()
                    .into_iter()
                    .map(Bson::from)
                    .collect::<Vec<_>>(),
            );
            if let Some(o) = &output {
                d.insert(
                    "output",
                    match o {
                        Output::Out(c) => bson::doc! {"$out": c},
                        Output::Merge { into, .. } => bson::doc! {"$merge": into},
                    },
                );
            }
            return Cursor::from_documents(self.db.snapshot()?, vec![d], self.db.closed_flag());
        }
        let snap = self.db.snapshot()?;
        let mut input = self.find_in(Arc::clone(&snap), &filter, find_opts)?;
        if let Some(fields) = p.input_fields() {
            input.decode_only(&fields);
        }
        let foreign = DbForeign {
            db: self.db,
            snap: Arc::clone(&snap),
        };
        if output.is_none() {
            // `$lookup`s alone after the find: joined over the stored bytes, the results
            // kept (and written as JSON) as bytes.
            if let Some(mut join) = p.join_over_bytes(&foreign) {
                let mut out = Vec::new();
                while let Some(body) = input.next_bson()? {
                    join.apply(&body, &mut out)?;
                }
                drop(input);
                return Cursor::from_bson_documents(snap, out, self.db.closed_flag());
            }
        }
        let mut source = input.map(|d| d.map(Document::into_bson));
        let results = p.run_source(&mut source, &vars, &foreign, &mem)?;
        drop(source);
        let results = results.into_iter_owned()?;
        match &output {
            None => Cursor::from_results(self.db.snapshot()?, results, self.db.closed_flag()),
            Some(o) => {
                self.write_output(o, results)?;
                Cursor::from_documents(self.db.snapshot()?, Vec::new(), self.db.closed_flag())
            }
        }
    }

    /// A pipeline whose first stage is `$vectorSearch`: the search's documents (each with
    /// its score in a hidden field, which `{"$meta": "vectorSearchScore"}` in later stages
    /// reads) are the input of the other stages.
    fn aggregate_vector(
        &self,
        spec: &BsonDocument,
        rest: &[BsonDocument],
        options: AggregateOptions,
    ) -> Result<Cursor> {
        const SCORE: &str = "__nexus_vectorSearchScore";
        let mut spec = crate::index::vector::search::SearchSpec::parse(spec)?;
        if spec.projection.is_some() || spec.score_field != "_score" {
            return Err(Error::invalid(
                "$vectorSearch as a pipeline stage takes no 'projection' or 'scoreField': use $project with {\"$meta\": \"vectorSearchScore\"}",
            ));
        }
        spec.score_field = SCORE.to_owned();
        if options.explain {
            return Err(Error::unsupported("explain of a $vectorSearch pipeline"));
        }
        let rest: Vec<BsonDocument> = rest
            .iter()
            .map(|s| match meta_to_field(Bson::Document(s.clone()), SCORE) {
                Bson::Document(d) => d,
                _ => unreachable!("a document stays a document"),
            })
            .collect();
        let (p, output) = Pipeline::parse(&rest)?;
        let vars = let_vars(&options)?;
        let snap = self.db.snapshot()?;
        let docs = self.vector_rows(&*snap, spec)?;
        let mem = Memory::new(
            options.max_memory_bytes.map_or(
                crate::query::aggregate::spill::DEFAULT_MAX_MEMORY_BYTES,
                |n| usize::try_from(n).unwrap_or(usize::MAX),
            ),
            false,
            None,
        );
        let foreign = DbForeign {
            db: self.db,
            snap: Arc::clone(&snap),
        };
        let mut source = docs.into_iter().map(Ok);
        let results = p.run_source(&mut source, &vars, &foreign, &mem)?;
        let results = results.into_iter_owned()?.map(|r| {
            r.map(|mut d| {
                d.remove(SCORE);
                d
            })
        });
        match &output {
            None => Cursor::from_results(snap, Box::new(results), self.db.closed_flag()),
            Some(o) => {
                self.write_output(o, Box::new(results))?;
                Cursor::from_documents(self.db.snapshot()?, Vec::new(), self.db.closed_flag())
            }
        }
    }

    /// Whether an index gives `find`'s order for `sort` with `filter` (no sort in memory).
    fn index_sorts(&self, filter: &BsonDocument, sort: &BsonDocument) -> Result<bool> {
        let opts = FindOptions {
            sort: Some(sort.clone()),
            ..FindOptions::default()
        };
        let plan = crate::query::Plan::compile(filter, &opts)?;
        let snap = self.db.snapshot()?;
        let choice = crate::exec::plan::choose_for(&*snap, &self.name, &plan)?;
        Ok(matches!(choice.access, crate::exec::plan::Access::Index(ix) if ix.provides_sort))
    }

    /// [`Collection::aggregate`] with the pipeline as a JSON array of stage objects.
    pub fn aggregate_json(&self, pipeline: &str, options: AggregateOptions) -> Result<Cursor> {
        let stages = parse_pipeline_json(pipeline)?;
        self.aggregate(&stages, options)
    }

    /// Performs `$out` / `$merge`, in the open transaction or in one of its own.
    fn write_output(
        &self,
        output: &Output,
        docs: Box<dyn Iterator<Item = Result<BsonDocument>> + Send>,
    ) -> Result<()> {
        let run = |db: &Database| -> Result<()> {
            match output {
                Output::Out(name) => {
                    let target = db.collection(name);
                    crate::api::collection::check_collection_name(name)?;
                    // Emptied, not dropped: the target keeps its indexes (as in MongoDB).
                    if db.list_collections()?.iter().any(|c| c == name) {
                        target.delete(&BsonDocument::new(), true)?;
                    } else {
                        db.create_collection(name, None)?;
                    }
                    // In batches: the results may be more than memory holds.
                    let mut batch = Vec::new();
                    for d in docs {
                        batch.push(Document::from(d?));
                        if batch.len() >= 1000 {
                            target.insert_many(std::mem::take(&mut batch))?;
                        }
                    }
                    if !batch.is_empty() {
                        target.insert_many(batch)?;
                    }
                    Ok(())
                }
                Output::Merge {
                    into,
                    when_matched,
                    when_not_matched,
                } => {
                    crate::api::collection::check_collection_name(into)?;
                    let target = db.collection(into);
                    if !db.list_collections()?.iter().any(|c| c == into) {
                        db.create_collection(into, None)?;
                    }
                    for d in docs {
                        merge_one(&target, d?, *when_matched, *when_not_matched)?;
                    }
                    Ok(())
                }
            }
        };
        if self.db.in_transaction() {
            run(self.db)
        } else {
            self.db.transaction(run)
        }
    }
}

fn merge_one(
    target: &Collection<'_>,
    doc: BsonDocument,
    when_matched: WhenMatched,
    when_not_matched: WhenNotMatched,
) -> Result<()> {
    let existing = match doc.get("_id") {
        Some(id) => {
            let id = DocumentId::new(id.clone())?;
            target.get(&id)?.map(|e| (id, e))
        }
        None => None,
    };
    match (existing, when_matched, when_not_matched) {
        (Some(_), WhenMatched::KeepExisting, _) => Ok(()),
        (Some((id, _)), WhenMatched::Fail, _) => Err(Error::DuplicateKey(format!(
            "$merge: a document with _id {} already exists in '{}' (whenMatched: \"fail\")",
            id.to_text(),
            target.name()
        ))),
        (Some((id, _)), WhenMatched::Replace, _) => target.replace(&id, Document::from(doc)),
        (Some((id, existing)), WhenMatched::Merge, _) => {
            let mut merged = existing.into_bson();
            for (k, v) in doc {
                merged.insert(k, v);
            }
            target.replace(&id, Document::from(merged))
        }
        (None, _, WhenNotMatched::Insert) => target.insert(Document::from(doc)).map(|_| ()),
        (None, _, WhenNotMatched::Discard) => Ok(()),
        (None, _, WhenNotMatched::Fail) => Err(Error::NotFound(format!(
            "$merge: no document in '{}' matches this result (whenNotMatched: \"fail\")",
            target.name()
        ))),
    }
}

/// A pipeline given as JSON text: an array of stage objects (the array counts as one level
/// of the text's nesting limit).
pub(crate) fn parse_pipeline_json(text: &str) -> Result<Vec<BsonDocument>> {
    let value = crate::document::json::parse_json(text.trim(), "pipeline")?;
    let serde_json::Value::Array(items) = value else {
        return Err(Error::invalid(
            "pipeline must be a JSON array of stage objects",
        ));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, s)| match crate::document::json::json_to_bson(s)? {
            Bson::Document(d) => Ok(d),
            _ => Err(Error::invalid(format!(
                "pipeline: stage {i} must be an object"
            ))),
        })
        .collect()
}

/// The `let` variables of `options`, evaluated.
fn let_vars(options: &AggregateOptions) -> Result<Vec<(String, Bson)>> {
    Ok(match &options.let_vars {
        None => Vec::new(),
        Some(d) => {
            let empty = Bson::Document(BsonDocument::new());
            let env = crate::query::expr::Env::new(&empty, &[]);
            let mut out = Vec::new();
            for (k, v) in d {
                let e = crate::query::expr::Expr::parse(v)?;
                out.push((k.clone(), e.eval(&env)?));
            }
            out
        }
    })
}

/// `v` with every `{"$meta": "vectorSearchScore"}` replaced by the field path of `field`
/// (the stages were checked for nesting depth before).
fn meta_to_field(v: Bson, field: &str) -> Bson {
    match v {
        Bson::Document(d) => {
            if d.len() == 1 && d.get_str("$meta").ok() == Some("vectorSearchScore") {
                return Bson::String(format!("${field}"));
            }
            Bson::Document(
                d.into_iter()
                    .map(|(k, x)| (k, meta_to_field(x, field)))
                    .collect(),
            )
        }
        Bson::Array(a) => Bson::Array(a.into_iter().map(|x| meta_to_field(x, field)).collect()),
        other => other,
    }
}
