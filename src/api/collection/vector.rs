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
        let spec = SearchSpec::parse(spec)?;
        let shape = RowShape::of(&spec)?;
        // The rows as BSON one after another, the cursor's packed form.
        let mut packed = Vec::new();
        for (score, rec) in self.vector_hits(&*snap, &spec)? {
            shape.append(&mut packed, &rec, score)?;
        }
        Cursor::from_bson_documents(snap, packed, self.db.closed_flag())
    }

    /// The documents a vector search finds in `snap`, best first, projected, each with its
    /// score in the spec's `scoreField`.
    pub(crate) fn vector_rows(
        &self,
        snap: &dyn crate::storage::ReadView,
        spec: SearchSpec,
    ) -> Result<Vec<BsonDocument>> {
        let shape = RowShape::of(&spec)?;
        self.vector_hits(snap, &spec)?
            .into_iter()
            .map(|(score, rec)| shape.document(&rec, score))
            .collect()
    }

    /// The records a vector search finds in `snap`, best first, with their scores.
    fn vector_hits(
        &self,
        snap: &dyn crate::storage::ReadView,
        spec: &SearchSpec,
    ) -> Result<Vec<(f64, crate::storage::Bytes)>> {
        if !snap.has_table(&self.name) {
            return Ok(Vec::new());
        }
        let defs = defs_for(snap, &self.name)?;
        let (def, vspec) = choose(&defs, &self.name, spec)?;
        run(snap, def, vspec, spec)
    }

    /// [`Collection::vector_search`] with the specification as JSON text.
    pub fn vector_search_json(&self, spec: &str) -> Result<Cursor> {
        self.vector_search(&crate::document::json::parse_json_document(
            spec,
            "$vectorSearch",
        )?)
    }
}

/// How a vector search's rows are made from the records it finds: its projection, the
/// fields that projection drops when it only excludes top-level fields, and the field the
/// score goes in.
struct RowShape {
    projection: Option<Projection>,
    dropped: Option<Vec<String>>,
    score_field: String,
}

impl RowShape {
    fn of(spec: &SearchSpec) -> Result<Self> {
        Ok(Self {
            projection: match &spec.projection {
                Some(p) => Projection::parse(p)?,
                None => None,
            },
            dropped: spec.projection.as_ref().and_then(dropped_fields),
            score_field: spec.score_field.clone(),
        })
    }

    /// Appends the row of the record `rec` to `out` as BSON: with an exclusion projection
    /// (`{"vector": 0}`, the usual one) copied from the stored bytes element by element
    /// ([`append_without`]), otherwise [`RowShape::document`] encoded.
    fn append(&self, out: &mut Vec<u8>, rec: &crate::storage::Bytes, score: f64) -> Result<()> {
        if let Some(names) = &self.dropped {
            if append_without(
                out,
                record::body_bytes(rec)?,
                names,
                &self.score_field,
                score,
            ) {
                return Ok(());
            }
        }
        let doc = crate::document::Document::from(self.document(rec, score)?);
        out.extend_from_slice(&doc.to_bson_bytes()?);
        Ok(())
    }

    /// The row of the record `rec`: projected, with `score` in the score field.
    fn document(&self, rec: &crate::storage::Bytes, score: f64) -> Result<BsonDocument> {
        let fast = match &self.dropped {
            Some(names) => decode_without(record::body_bytes(rec)?, names),
            None => None,
        };
        let mut doc = match (fast, &self.projection) {
            (Some(doc), _) => doc,
            (None, Some(p)) => p.apply(&record::decode_body(rec)?.into_bson()),
            (None, None) => record::decode_body(rec)?.into_bson(),
        };
        doc.insert(self.score_field.clone(), Bson::Double(score));
        Ok(doc)
    }
}

/// Most top-level fields [`append_without`] copies (the check for a repeated key compares
/// each with the ones before it); a document with more takes the decoding path.
const COPY_MAX_FIELDS: usize = 64;

/// Appends to `out` the BSON of what [`decode_without`] and the score's insert make of the
/// stored body `body` (the fields `dropped` left out, `score` as a double in `score_field`:
/// in that field's place when the body has it, else last), copying the other elements'
/// bytes as they are. False, with `out` as it was, when the bytes are not well-formed, a key
/// repeats or is not UTF-8, or the document has more than [`COPY_MAX_FIELDS`] fields: the
/// caller then decodes the document, which says what is wrong or does what a repeated key
/// needs.
fn append_without(
    out: &mut Vec<u8>,
    body: &[u8],
    dropped: &[String],
    score_field: &str,
    score: f64,
) -> bool {
    let start = out.len();
    let copied = copy_without(out, body, dropped, score_field, score);
    if copied.is_none() {
        out.truncate(start);
    }
    copied.is_some()
}

fn copy_without(
    out: &mut Vec<u8>,
    body: &[u8],
    dropped: &[String],
    score_field: &str,
    score: f64,
) -> Option<()> {
    if score_field.as_bytes().contains(&0) {
        return None;
    }
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let put_score = |out: &mut Vec<u8>| {
        out.push(0x01);
        out.extend_from_slice(score_field.as_bytes());
        out.push(0);
        out.extend_from_slice(&score.to_le_bytes());
    };
    let mut keys: Vec<&[u8]> = Vec::new();
    let mut scored = false;
    for item in raw::elements(body).ok()? {
        let (k, e) = item.ok()?;
        std::str::from_utf8(k).ok()?;
        if keys.len() == COPY_MAX_FIELDS || keys.contains(&k) {
            return None;
        }
        keys.push(k);
        if dropped.iter().any(|d| d.as_bytes() == k) {
            continue;
        }
        if k == score_field.as_bytes() {
            put_score(out);
            scored = true;
            continue;
        }
        out.push(e.kind);
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(e.bytes);
    }
    if !scored {
        put_score(out);
    }
    out.push(0);
    let len = i32::try_from(out.len() - start).ok()?;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Some(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn bytes(d: &BsonDocument) -> Vec<u8> {
        let mut v = Vec::new();
        d.to_writer(&mut v).unwrap();
        v
    }

    /// What the decoding path makes of `body` (decode_without, then the score's insert).
    fn decoded(body: &[u8], dropped: &[String], field: &str, score: f64) -> BsonDocument {
        let mut d = decode_without(body, dropped).unwrap();
        d.insert(field, Bson::Double(score));
        d
    }

    #[test]
    fn copied_rows_are_the_decoded_rows() {
        let body = bytes(&doc! {
            "_id": 7, "v": [1.0, 2.0], "name": "x", "_score": "old", "n": {"a": [1, {"b": null}]},
        });
        let cases: [(&[&str], &str); 5] = [
            (&["v"], "_score"),
            (&["v"], "s"),
            (&["v", "name"], "n"),
            (&["_score"], "_score"),
            (&["absent"], "name"),
        ];
        for (drop, field) in cases {
            let drop: Vec<String> = drop.iter().map(|s| (*s).to_owned()).collect();
            let mut out = vec![9u8];
            assert!(append_without(&mut out, &body, &drop, field, 0.25));
            assert_eq!(out[0], 9);
            let got = BsonDocument::from_reader(&out[1..]).unwrap();
            let want = decoded(&body, &drop, field, 0.25);
            assert_eq!(got, want, "{drop:?} {field}");
            // Same keys in the same order (a document compares as a map).
            assert!(got.keys().eq(want.keys()), "{drop:?} {field}");
        }
    }

    #[test]
    fn rows_not_copied_leave_the_buffer_as_it_was() {
        let good = bytes(&doc! {"_id": 1, "v": [0.5]});
        let drop = vec!["v".to_owned()];
        // Damaged bytes, a repeated key, a score field with NUL: the caller decodes instead.
        let mut damaged = good.clone();
        damaged[4] = 0x77;
        let mut repeated = Vec::new();
        repeated.extend_from_slice(&0i32.to_le_bytes());
        for _ in 0..2 {
            repeated.extend_from_slice(b"\x10a\0");
            repeated.extend_from_slice(&1i32.to_le_bytes());
        }
        repeated.push(0);
        let n = i32::try_from(repeated.len()).unwrap();
        repeated[..4].copy_from_slice(&n.to_le_bytes());
        for (body, field) in [(&damaged, "_score"), (&repeated, "_score"), (&good, "a\0b")] {
            let mut out = vec![1, 2, 3];
            assert!(!append_without(&mut out, body, &drop, field, 1.0));
            assert_eq!(out, [1, 2, 3]);
        }
        let mut out = Vec::new();
        assert!(append_without(&mut out, &good, &drop, "_score", 1.0));
    }
}
