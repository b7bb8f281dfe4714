//! Pipeline-style updates: an update given as an array of aggregation stages (`$set` /
//! `$addFields`, `$unset`, `$project`, `$replaceRoot` / `$replaceWith`), evaluated with the
//! aggregation expression language. That language is not part of this build, so both hooks
//! refuse with [`Error::Unsupported`]: [`check`] when the update is parsed (before anything
//! is read or written) and [`apply`] for one document. They are the only two places that
//! need filling in when the expression language arrives.

use crate::error::{Error, Result};
use bson::Document;

fn unsupported() -> Error {
    Error::Unsupported(
        "pipeline updates (an update given as an array) are not supported in this build".into(),
    )
}

/// Validates a pipeline's stages before the update runs.
pub(crate) fn check(stages: &[Document]) -> Result<()> {
    let _ = stages;
    Err(unsupported())
}

/// The document `stages` make of `doc` (which has its `_id`).
pub(crate) fn apply(doc: &Document, stages: &[Document]) -> Result<Document> {
    let _ = (doc, stages);
    Err(unsupported())
}
