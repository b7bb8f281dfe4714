//! [`Collection`]'s vector search: `$vectorSearch` over a vector index (see
//! `crate::index::vector`), results as a [`Cursor`] with each row's score.

use super::Collection;
use crate::document::{check_nesting, raw, record, MAX_QUERY_NESTING};
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
        let dropped = spec.projection.as_ref().and_then(dropped_fields);
        let mut docs = Vec::new();
        if snap.has_table(&self.name) {
            let defs = defs_for(snap, &self.name)?;
            let (def, vspec) = choose(&defs, &self.name, &spec)?;
            for (score, rec) in run(snap, def, vspec, &spec)? {
                let fast = match &dropped {
                    Some(names) => decode_without(record::body_bytes(&rec)?, names),
                    None => None,
                };
                let mut doc = match (fast, &projection) {
                    (Some(doc), _) => doc,
                    (None, Some(p)) => p.apply(&record::decode_body(&rec)?.into_bson()),
                    (None, None) => record::decode_body(&rec)?.into_bson(),
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

/// The fields a projection that only excludes top-level fields (`{"vector": 0}`, the usual
/// one for vector searches) leaves out; `None` for any other projection.
fn dropped_fields(p: &BsonDocument) -> Option<Vec<String>> {
    if p.is_empty() {
        return None;
    }
    p.iter()
        .map(|(k, v)| {
            let zero = match v {
                Bson::Int32(n) => *n == 0,
                Bson::Int64(n) => *n == 0,
                Bson::Double(d) => *d == 0.0,
                Bson::Boolean(b) => !*b,
                _ => false,
            };
            (zero && !k.is_empty() && !k.contains('.') && !k.starts_with('$')).then(|| k.clone())
        })
        .collect()
}

/// A stored body decoded without the fields `dropped` (what the exclusion projection of
/// [`dropped_fields`] gives, without decoding those fields first: a result's vector is most
/// of its bytes); `None` when the fast decoder refuses the bytes (the caller then decodes
/// the whole document, which says what is wrong).
fn decode_without(body: &[u8], dropped: &[String]) -> Option<BsonDocument> {
    let mut doc = BsonDocument::new();
    for item in raw::elements(body).ok()? {
        let (k, e) = item.ok()?;
        if dropped.iter().any(|d| d.as_bytes() == k) {
            continue;
        }
        doc.insert(std::str::from_utf8(k).ok()?, raw::to_bson(e).ok()?);
    }
    Some(doc)
}
