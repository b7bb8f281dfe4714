//! [`Collection`]'s vector search: `$vectorSearch` over a vector index (see
//! `crate::index::vector`), results as a [`Cursor`] with each row's score.

use super::Collection;
use crate::document::{check_nesting, record, MAX_QUERY_NESTING};
use crate::error::Result;
use crate::exec::Cursor;
use crate::index::defs_for;
use crate::index::vector::search::{choose, run, SearchSpec};
use crate::query::projection::Projection;
use bson::{Bson, Document as BsonDocument};

impl Collection<'_> {
    /// Runs a vector search: `spec` is the body of MongoDB Atlas's `$vectorSearch` stage
    /// (`path`, `queryVector`, `limit`, `numCandidates`, `filter`, `exact`, `index`) plus
    /// `projection` and `scoreField` (default `"_score"`). The cursor returns the matching
    /// documents best first, each with its similarity score in `scoreField` (after the
    /// projection); it reads the snapshot taken now (inside a transaction, the
    /// transaction's own writes). A missing collection gives an empty result.
    ///
    /// Errors: [`crate::Error::InvalidArgument`] for a malformed specification, a query
    /// vector of another dimension than the index's, or no vector index on `path`.
    ///
    /// ```
    /// use nexus::{Database, Document};
    /// let db = Database::open_in_memory().unwrap();
    /// let items = db.collection("items");
    /// items.create_index_json(r#"{"v": "hnsw"}"#, Some(r#"{"numDimensions": 2}"#)).unwrap();
    /// for (i, v) in [[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]].iter().enumerate() {
    ///     let json = format!(r#"{{"_id": {i}, "v": [{}, {}]}}"#, v[0], v[1]);
    ///     items.insert(Document::from_json(&json).unwrap()).unwrap();
    /// }
    /// let mut hits = items
    ///     .vector_search_json(r#"{"path": "v", "queryVector": [0.9, 0.9], "limit": 2}"#)
    ///     .unwrap();
    /// let best = hits.next().unwrap().unwrap();
    /// assert_eq!(best.get("_id").unwrap().to_string(), "1");
    /// ```
    pub fn vector_search(&self, spec: &BsonDocument) -> Result<Cursor> {
        check_nesting(spec, MAX_QUERY_NESTING, "$vectorSearch")?;
        let snap = self.db.snapshot()?;
        let docs = self.vector_rows(&*snap, SearchSpec::parse(spec)?)?;
        Cursor::from_documents(snap, docs, self.db.closed_flag())
    }

    /// The documents a vector search finds in `snap`, best first, projected, each with its
    /// score in the spec's `scoreField`.
    pub(crate) fn vector_rows(
        &self,
        snap: &dyn crate::storage::ReadView,
        spec: SearchSpec,
    ) -> Result<Vec<BsonDocument>> {
        let projection = match &spec.projection {
            Some(p) => Projection::parse(p)?,
            None => None,
        };
        let mut docs = Vec::new();
        if snap.has_table(&self.name) {
            let defs = defs_for(snap, &self.name)?;
            let (def, vspec) = choose(&defs, &self.name, &spec)?;
            for (score, rec) in run(snap, def, vspec, &spec)? {
                let doc = record::decode_body(&rec)?.into_bson();
                let mut doc = match &projection {
                    Some(p) => p.apply(&doc),
                    None => doc,
                };
                doc.insert(spec.score_field.clone(), Bson::Double(score));
                docs.push(doc);
            }
        }
        Ok(docs)
    }

    /// [`Collection::vector_search`] with the specification as JSON text.
    pub fn vector_search_json(&self, spec: &str) -> Result<Cursor> {
        self.vector_search(&crate::document::json::parse_json_document(
            spec,
            "$vectorSearch",
        )?)
    }
}
