//! The option and result types of MongoDB's CRUD write calls ([`Collection::update_one`],
//! `update_many`, `replace_one`, `insert_many_with`, `bulk_write`), with MongoDB's names on
//! the JSON side: [`ModifyOptions`] (`upsert`, `arrayFilters`, `sort`, `hint`),
//! [`InsertManyOptions`] (`ordered`), [`WriteModel`] (the drivers' bulk-write models),
//! [`InsertManyResult`], [`BulkWriteResult`] and [`WriteError`]. The layer beneath is the
//! query language (the update types) and the document layer (JSON).
//!
//! [`Collection::update_one`]: crate::Collection::update_one

use super::options::UpdateResult;
use crate::document::json::{json_to_bson, json_to_document};
use crate::document::{Document, DocumentId};
use crate::error::{Error, Result};
use crate::options::OptionReader;
use crate::query::update::UpdateModifications;
use bson::{Bson, Document as BsonDocument};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Options of `update_one`, `update_many` and `replace_one` (MongoDB's names in JSON).
#[derive(Debug, Clone, Default)]
pub struct ModifyOptions {
    /// Insert a document built from the filter's equalities and the update when nothing
    /// matches (`upsert`).
    pub upsert: bool,
    /// The conditions of the update's `$[<identifier>]` paths (`arrayFilters`); not for
    /// `replace_one`.
    pub array_filters: Option<Vec<BsonDocument>>,
    /// Which match `update_one` / `replace_one` change when several do: the first in this
    /// order (`sort`, MongoDB 8); refused by `update_many`.
    pub sort: Option<BsonDocument>,
    /// An index name, key pattern or `{"$natural": 1}` (`hint`): checked against the
    /// collection's indexes (an unknown one is [`Error::InvalidArgument`]).
    pub hint: Option<Bson>,
}

pub(super) fn array_filters_of(v: Value) -> Result<Vec<BsonDocument>> {
    let Value::Array(items) = v else {
        return Err(Error::invalid(
            "option 'arrayFilters' must be an array of objects",
        ));
    };
    items
        .into_iter()
        .map(|f| match f {
            Value::Object(_) => json_to_document(f, "arrayFilters"),
            _ => Err(Error::invalid(
                "option 'arrayFilters' must be an array of objects",
            )),
        })
        .collect()
}

impl ModifyOptions {
    /// Reads the options from a JSON object (`None`/empty: defaults). Unknown keys are
    /// [`Error::InvalidArgument`].
    pub fn from_json(text: Option<&str>) -> Result<Self> {
        let mut r = OptionReader::parse(text, "update options")?;
        let o = Self::read(&mut r)?;
        r.finish()?;
        Ok(o)
    }

    /// Drops the options without recursion (their documents may nest any depth when they
    /// are refused).
    pub(crate) fn dispose(self) {
        let Self {
            array_filters,
            sort,
            hint,
            ..
        } = self;
        array_filters
            .into_iter()
            .flatten()
            .chain(sort)
            .for_each(crate::document::dispose);
        hint.into_iter().for_each(crate::document::dispose_value);
    }

    pub(crate) fn read(r: &mut OptionReader) -> Result<Self> {
        Ok(Self {
            upsert: r.bool("upsert")?.unwrap_or(false),
            array_filters: r.take("arrayFilters").map(array_filters_of).transpose()?,
            sort: r.document("sort")?,
            hint: r.take("hint").map(json_to_bson).transpose()?,
        })
    }
}

/// Options of `insert_many_with`.
#[derive(Debug, Clone, Copy)]
pub struct InsertManyOptions {
    /// Stop at the first failing document (default true); `false` tries every document and
    /// reports each failure.
    pub ordered: bool,
}

impl Default for InsertManyOptions {
    fn default() -> Self {
        Self { ordered: true }
    }
}

impl InsertManyOptions {
    /// Reads `{"ordered": bool}` (`None`/empty: defaults).
    pub fn from_json(text: Option<&str>) -> Result<Self> {
        let mut r = OptionReader::parse(text, "insert_many options")?;
        let o = Self {
            ordered: r.bool("ordered")?.unwrap_or(true),
        };
        r.finish()?;
        Ok(o)
    }
}

/// One failed write of a batch: the position of the document or operation, MongoDB's error
/// code (11000 for a duplicate key) and the error.
#[derive(Debug)]
pub struct WriteError {
    /// Position in the batch (0-based).
    pub index: usize,
    /// MongoDB's code: 11000 duplicate key, 9 failed to parse, 2 bad value, 26 namespace
    /// not found, 238 not implemented, 1 anything else.
    pub code: i32,
    /// The error itself (its [`Error::code`] is the `NEXUS_*` status).
    pub error: Error,
}

impl WriteError {
    pub(crate) fn new(index: usize, error: Error) -> Self {
        let code = match &error {
            Error::DuplicateKey(_) => 11000,
            Error::Parse(_) => 9,
            Error::InvalidArgument(_) => 2,
            Error::NoCollection(_) => 26,
            Error::Unsupported(_) => 238,
            _ => 1,
        };
        Self { index, code, error }
    }

    /// Whether an error belongs to one document or operation (reported in `writeErrors`)
    /// rather than to the database (I/O, corruption, locks: those end the whole call).
    pub(crate) fn is_per_write(e: &Error) -> bool {
        matches!(
            e,
            Error::DuplicateKey(_)
                | Error::Parse(_)
                | Error::InvalidArgument(_)
                | Error::NoCollection(_)
                | Error::NotFound(_)
                | Error::Unsupported(_)
        )
    }

    fn to_json(&self) -> Value {
        json!({"index": self.index, "code": self.code, "errmsg": self.error.to_string()})
    }
}

fn id_json(id: &DocumentId) -> Value {
    id.as_bson().clone().into_relaxed_extjson()
}

fn ids_json(ids: &BTreeMap<usize, DocumentId>) -> Value {
    Value::Object(
        ids.iter()
            .map(|(i, id)| (i.to_string(), id_json(id)))
            .collect::<Map<_, _>>(),
    )
}

impl UpdateResult {
    /// MongoDB's UpdateResult as JSON: `matchedCount`, `modifiedCount`, `upsertedCount`, and
    /// `upsertedId` (relaxed Extended JSON) only when a document was upserted.
    pub fn to_json(&self) -> String {
        let mut m = Map::new();
        m.insert("matchedCount".into(), json!(self.matched));
        m.insert("modifiedCount".into(), json!(self.modified));
        m.insert(
            "upsertedCount".into(),
            json!(u64::from(self.upserted_id.is_some())),
        );
        if let Some(id) = &self.upserted_id {
            m.insert("upsertedId".into(), id_json(id));
        }
        Value::Object(m).to_string()
    }
}

/// What `insert_many_with` did.
#[derive(Debug, Default)]
pub struct InsertManyResult {
    /// The `_id` of every inserted document, by its position in the input.
    pub inserted_ids: BTreeMap<usize, DocumentId>,
    /// The documents that were not inserted, in input order (ordered: at most one).
    pub write_errors: Vec<WriteError>,
}

impl InsertManyResult {
    /// `{"insertedCount", "insertedIds": {"0": id, ...}, "writeErrors": [{"index", "code",
    /// "errmsg"}]}`.
    pub fn to_json(&self) -> String {
        json!({
            "insertedCount": self.inserted_ids.len(),
            "insertedIds": ids_json(&self.inserted_ids),
            "writeErrors": self.write_errors.iter().map(WriteError::to_json).collect::<Vec<_>>(),
        })
        .to_string()
    }
}

/// One operation of a bulk write (the drivers' write models).
#[derive(Debug, Clone)]
pub enum WriteModel {
    /// `{"insertOne": {"document": {...}}}`
    InsertOne {
        /// The document (an `_id` is generated when missing).
        document: Document,
    },
    /// `{"updateOne": {"filter", "update", "upsert", "arrayFilters", "sort", "hint"}}`
    UpdateOne {
        /// Which documents.
        filter: BsonDocument,
        /// Operators, or a pipeline.
        update: UpdateModifications,
        /// `upsert`, `arrayFilters`, `sort`, `hint`.
        options: ModifyOptions,
    },
    /// `{"updateMany": {"filter", "update", "upsert", "arrayFilters", "hint"}}`
    UpdateMany {
        /// Which documents.
        filter: BsonDocument,
        /// Operators, or a pipeline.
        update: UpdateModifications,
        /// `upsert`, `arrayFilters`, `hint`.
        options: ModifyOptions,
    },
    /// `{"replaceOne": {"filter", "replacement", "upsert", "sort", "hint"}}`
    ReplaceOne {
        /// Which document.
        filter: BsonDocument,
        /// The new body (no operators).
        replacement: BsonDocument,
        /// `upsert`, `sort`, `hint`.
        options: ModifyOptions,
    },
    /// `{"deleteOne": {"filter", "hint"}}`
    DeleteOne {
        /// Which document.
        filter: BsonDocument,
        /// An index to check (as for updates).
        hint: Option<Bson>,
    },
    /// `{"deleteMany": {"filter", "hint"}}`
    DeleteMany {
        /// Which documents.
        filter: BsonDocument,
        /// An index to check (as for updates).
        hint: Option<Bson>,
    },
}

/// Drops an update without recursion (it may nest any depth when it is refused).
pub(crate) fn dispose_update(u: UpdateModifications) {
    match u {
        UpdateModifications::Document(d) => crate::document::dispose(d),
        UpdateModifications::Pipeline(stages) => {
            stages.into_iter().for_each(crate::document::dispose);
        }
    }
}

impl WriteModel {
    /// Drops the model without recursion.
    pub(crate) fn dispose(self) {
        match self {
            WriteModel::InsertOne { document } => {
                crate::document::dispose(document.into_bson());
            }
            WriteModel::UpdateOne {
                filter,
                update,
                options,
            }
            | WriteModel::UpdateMany {
                filter,
                update,
                options,
            } => {
                crate::document::dispose(filter);
                dispose_update(update);
                options.dispose();
            }
            WriteModel::ReplaceOne {
                filter,
                replacement,
                options,
            } => {
                crate::document::dispose(filter);
                crate::document::dispose(replacement);
                options.dispose();
            }
            WriteModel::DeleteOne { filter, hint } | WriteModel::DeleteMany { filter, hint } => {
                crate::document::dispose(filter);
                hint.into_iter().for_each(crate::document::dispose_value);
            }
        }
    }
}

/// An update argument from JSON: an object, or an array of stage objects (a pipeline).
pub(crate) fn update_from_json(v: Value, what: &str) -> Result<UpdateModifications> {
    match v {
        Value::Object(_) => Ok(UpdateModifications::Document(json_to_document(v, what)?)),
        Value::Array(stages) => stages
            .into_iter()
            .map(|s| match s {
                Value::Object(_) => json_to_document(s, what),
                _ => Err(Error::parse(format!(
                    "{what}: a pipeline must be an array of stage objects"
                ))),
            })
            .collect::<Result<Vec<_>>>()
            .map(UpdateModifications::Pipeline),
        _ => Err(Error::parse(format!(
            "{what} must be a JSON object or an array (a pipeline)"
        ))),
    }
}

impl WriteModel {
    /// Parses a JSON array of write models. A malformed model (unknown name, missing or
    /// mistyped field, unknown option) is [`Error::InvalidArgument`] naming its index.
    pub fn list_from_json(text: &str) -> Result<Vec<Self>> {
        let v = crate::document::json::parse_json(text, "operations_json")?;
        let Value::Array(items) = v else {
            return Err(Error::invalid(
                "operations_json must be a JSON array of write models",
            ));
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                Self::from_value(m).map_err(|e| match e {
                    Error::InvalidArgument(msg) => {
                        Error::InvalidArgument(format!("operation {i}: {msg}"))
                    }
                    Error::Parse(msg) => Error::Parse(format!("operation {i}: {msg}")),
                    other => other,
                })
            })
            .collect()
    }

    fn from_value(v: Value) -> Result<Self> {
        let Value::Object(m) = v else {
            return Err(Error::invalid("a write model must be a JSON object"));
        };
        if m.len() != 1 {
            return Err(Error::invalid(
                "a write model has exactly one key (insertOne, updateOne, updateMany, replaceOne, deleteOne, deleteMany)",
            ));
        }
        let Some((name, body)) = m.into_iter().next() else {
            return Err(Error::invalid("a write model must not be empty"));
        };
        let what: &'static str = match name.as_str() {
            "insertOne" => "insertOne",
            "updateOne" => "updateOne",
            "updateMany" => "updateMany",
            "replaceOne" => "replaceOne",
            "deleteOne" => "deleteOne",
            "deleteMany" => "deleteMany",
            other => {
                return Err(Error::invalid(format!("unknown write model '{other}'")));
            }
        };
        let text = body.to_string();
        let mut r = OptionReader::parse(Some(&text), what)?;
        let filter = |r: &mut OptionReader| -> Result<BsonDocument> {
            r.document("filter")?
                .ok_or_else(|| Error::invalid(format!("{what} needs a 'filter'")))
        };
        let model = match what {
            "insertOne" => WriteModel::InsertOne {
                document: r
                    .document("document")?
                    .map(Document::from)
                    .ok_or_else(|| Error::invalid("insertOne needs a 'document'"))?,
            },
            "updateOne" | "updateMany" => {
                let filter = filter(&mut r)?;
                let update = r
                    .take("update")
                    .ok_or_else(|| Error::invalid(format!("{what} needs an 'update'")))?;
                let update = update_from_json(update, "update")?;
                let options = ModifyOptions::read(&mut r)?;
                if what == "updateOne" {
                    WriteModel::UpdateOne {
                        filter,
                        update,
                        options,
                    }
                } else {
                    WriteModel::UpdateMany {
                        filter,
                        update,
                        options,
                    }
                }
            }
            "replaceOne" => WriteModel::ReplaceOne {
                filter: filter(&mut r)?,
                replacement: r
                    .document("replacement")?
                    .ok_or_else(|| Error::invalid("replaceOne needs a 'replacement'"))?,
                options: ModifyOptions::read(&mut r)?,
            },
            _ => {
                let filter = filter(&mut r)?;
                let hint = r.take("hint").map(json_to_bson).transpose()?;
                if what == "deleteOne" {
                    WriteModel::DeleteOne { filter, hint }
                } else {
                    WriteModel::DeleteMany { filter, hint }
                }
            }
        };
        r.finish()?;
        Ok(model)
    }
}

/// What `bulk_write` did (MongoDB's BulkWriteResult).
#[derive(Debug, Default)]
pub struct BulkWriteResult {
    /// Documents inserted by `insertOne` models.
    pub inserted_count: u64,
    /// Documents matched by update and replace models.
    pub matched_count: u64,
    /// Documents changed by update and replace models.
    pub modified_count: u64,
    /// Documents deleted.
    pub deleted_count: u64,
    /// The `_id` of each inserted document, by the position of its model.
    pub inserted_ids: BTreeMap<usize, DocumentId>,
    /// The `_id` of each upserted document, by the position of its model.
    pub upserted_ids: BTreeMap<usize, DocumentId>,
    /// The operations that failed (ordered: at most one, and nothing after it ran).
    pub write_errors: Vec<WriteError>,
}

impl BulkWriteResult {
    /// `{"insertedCount", "matchedCount", "modifiedCount", "deletedCount", "upsertedCount",
    /// "upsertedIds": {index: id}, "insertedIds": {index: id}, "writeErrors": [...]}`.
    pub fn to_json(&self) -> String {
        json!({
            "insertedCount": self.inserted_count,
            "matchedCount": self.matched_count,
            "modifiedCount": self.modified_count,
            "deletedCount": self.deleted_count,
            "upsertedCount": self.upserted_ids.len(),
            "upsertedIds": ids_json(&self.upserted_ids),
            "insertedIds": ids_json(&self.inserted_ids),
            "writeErrors": self.write_errors.iter().map(WriteError::to_json).collect::<Vec<_>>(),
        })
        .to_string()
    }
}
