//! Pipeline-style updates: an update given as an array of aggregation stages (`$set` /
//! `$addFields`, `$unset`, `$project`, `$replaceRoot` / `$replaceWith`), evaluated with the
//! aggregation expression language ([`crate::query::aggregate::apply_update_pipeline`]).
//! [`check`] runs when the update is parsed (before anything is read or written), [`apply`]
//! for each document.

use crate::error::Result;
use crate::query::aggregate;
use bson::Document;

/// Validates a pipeline's stages before the update runs: only the stages MongoDB allows in an
/// update, each well formed.
pub(crate) fn check(stages: &[Document]) -> Result<()> {
    aggregate::check_update_pipeline(stages)
}

/// The document `stages` make of `doc` (which has its `_id`): the `_id` may not change; a
/// result without one keeps the document's (as a replacement does).
pub(crate) fn apply(doc: &Document, stages: &[Document]) -> Result<Document> {
    let out = aggregate::apply_update_pipeline(doc, stages)?;
    let Some(id) = doc.get("_id") else {
        return Ok(out);
    };
    match out.get("_id") {
        Some(new_id) if !crate::query::compare::equal(new_id, id) => Err(super::immutable_id()),
        Some(_) => Ok(out),
        None => {
            let mut with_id = Document::new();
            with_id.insert("_id", id.clone());
            with_id.extend(out);
            Ok(with_id)
        }
    }
}
