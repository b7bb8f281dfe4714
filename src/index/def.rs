//! An index definition ([`IndexDef`]): its key pattern and options as given, parsed and
//! checked (`new_def`), its catalog encoding, and the entries it gives a document.

use super::covered::entry_value;
use super::key::{self, KeyField};
use super::maintain::body_of;
use super::vector::{VectorSpec, HNSW};
use super::{direct, ID_INDEX};
use crate::document::raw::FieldTree;
use crate::document::record;
use crate::error::{Error, Result};
use crate::query::filter::Filter;
use crate::storage::Bytes;
use bson::{Bson, Document as BsonDocument};
use std::sync::OnceLock;

/// A document's entries in one index: (encoded key values, entry value), sorted by key.
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// One secondary index.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndexDef {
    pub coll: String,
    pub name: String,
    /// The key pattern as given, e.g. `{"a": 1, "b": -1}`.
    pub key: BsonDocument,
    pub fields: Vec<KeyField>,
    pub unique: bool,
    pub sparse: bool,
    /// `partialFilterExpression`: only documents it matches have entries.
    pub partial: Option<BsonDocument>,
    pub expire_after_secs: Option<i64>,
    /// Whether some document ever produced more than one key (an array on a key path).
    /// Set, never cleared (as MongoDB does until the index is rebuilt).
    pub multikey: bool,
    /// Creation order within the collection (listings follow it, as MongoDB's do).
    pub seq: i64,
    /// A vector index (key pattern `{"path": "hnsw"}`): its options. Its table holds the
    /// HNSW graph ([`super::vector::graph`]), not key entries.
    pub vector: Option<VectorSpec>,
    /// The partial filter and the covered-values projection, compiled once per definition.
    compiled: Compiled,
}

/// Parsed forms of a definition's parts, built on first use.
#[derive(Debug, Default)]
pub(crate) struct Compiled {
    partial: OnceLock<Filter>,
    projection: OnceLock<Option<crate::query::projection::Projection>>,
    parts: OnceLock<FieldTree>,
    /// The entry table's name (of `coll` and `name`).
    table: OnceLock<String>,
    /// The key paths for reading an entry straight from a record's bytes (`None`: never).
    direct: OnceLock<Option<direct::KeyPaths>>,
}

impl Clone for Compiled {
    /// Keeps what the key pattern and filter determine; not the table name, since a copy of
    /// a definition may be given another collection or name (a rename).
    fn clone(&self) -> Self {
        Self {
            partial: self.partial.clone(),
            projection: self.projection.clone(),
            parts: self.parts.clone(),
            table: OnceLock::new(),
            direct: self.direct.clone(),
        }
    }
}

impl PartialEq for Compiled {
    /// Derived from the definition: never a difference of its own.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl IndexDef {
    /// The table holding the entries.
    pub(crate) fn table(&self) -> &str {
        self.compiled
            .table
            .get_or_init(|| entry_table(&self.coll, &self.name))
    }

    pub(crate) fn catalog_key(&self) -> Bytes {
        catalog_key(&self.coll, &self.name)
    }

    pub(crate) fn partial_filter(&self) -> Result<Option<&Filter>> {
        let Some(p) = &self.partial else {
            return Ok(None);
        };
        if let Some(f) = self.compiled.partial.get() {
            return Ok(Some(f));
        }
        let f = Filter::parse(p)?;
        Ok(Some(self.compiled.partial.get_or_init(|| f)))
    }

    pub(crate) fn to_bson(&self) -> BsonDocument {
        let mut d = BsonDocument::new();
        d.insert("key", self.key.clone());
        d.insert("name", self.name.clone());
        d.insert("unique", self.unique);
        d.insert("sparse", self.sparse);
        if let Some(p) = &self.partial {
            d.insert("partialFilterExpression", p.clone());
        }
        if let Some(s) = self.expire_after_secs {
            d.insert("expireAfterSeconds", s);
        }
        d.insert("multikey", self.multikey);
        d.insert("seq", self.seq);
        if let Some(v) = &self.vector {
            d.insert("vector", v.to_bson());
        }
        d
    }

    pub(crate) fn from_bson(coll: &str, d: &BsonDocument) -> Result<Self> {
        let bad = || Error::Corrupt(format!("index catalog entry of '{coll}' is malformed"));
        let key = d.get_document("key").map_err(|_| bad())?.clone();
        let vector = match d.get_document("vector") {
            Ok(v) => Some(VectorSpec::from_bson(v).ok_or_else(bad)?),
            Err(_) => None,
        };
        let fields = match &vector {
            Some(_) => vector_key_field(&key).map_err(|_| bad())?,
            None => parse_key_pattern(&key).map_err(|_| bad())?,
        };
        Ok(Self {
            coll: coll.to_owned(),
            name: d.get_str("name").map_err(|_| bad())?.to_owned(),
            key,
            fields,
            unique: d.get_bool("unique").unwrap_or(false),
            sparse: d.get_bool("sparse").unwrap_or(false),
            partial: d.get_document("partialFilterExpression").ok().cloned(),
            expire_after_secs: d.get_i64("expireAfterSeconds").ok(),
            multikey: d.get_bool("multikey").unwrap_or(false),
            seq: d.get_i64("seq").unwrap_or(0),
            vector,
            compiled: Compiled::default(),
        })
    }

    /// The listing MongoDB's `listIndexes` gives.
    pub(crate) fn listing(&self) -> BsonDocument {
        let mut d = BsonDocument::new();
        d.insert("v", 2);
        d.insert("key", self.key.clone());
        d.insert("name", self.name.clone());
        if self.unique {
            d.insert("unique", true);
        }
        if self.sparse {
            d.insert("sparse", true);
        }
        if let Some(p) = &self.partial {
            d.insert("partialFilterExpression", p.clone());
        }
        if let Some(s) = self.expire_after_secs {
            d.insert("expireAfterSeconds", s);
        }
        if let Some(v) = &self.vector {
            d.extend(v.to_bson());
        }
        d
    }

    /// The keys (encoded values, without the `_id` suffix) a stored document has in this
    /// index, and whether an array produced them.
    pub(crate) fn keys_of(&self, doc: &BsonDocument) -> Result<(Vec<Vec<u8>>, bool)> {
        if let Some(f) = self.partial_filter()? {
            if !f.matches(doc) {
                return Ok((Vec::new(), false));
            }
        }
        key::document_keys(doc, &self.fields, self.sparse)
    }

    /// The parts of a document the keys and the covered values read: what the key paths
    /// reach through sub-documents. A document cut down to them has the same entries (the
    /// key walk and the covered-values projection look up only these names in a
    /// sub-document, and arrays are kept whole).
    pub(crate) fn key_parts(&self) -> &FieldTree {
        self.compiled
            .parts
            .get_or_init(|| FieldTree::of_paths(self.fields.iter().map(|f| f.path.as_str())))
    }

    /// [`IndexDef::entries_of`] for a stored record, decoding only `parts` of it
    /// ([`IndexDef::key_parts`]) rather than the whole document: the partial filter (if
    /// any) reads the record's bytes, the keys and covered values come from the cut-down
    /// document through the same code as for a whole one.
    pub(crate) fn entries_of_record(
        &self,
        rec: &[u8],
        parts: &FieldTree,
        id_key: &[u8],
    ) -> Result<(Entries, bool)> {
        let body = record::body_bytes(rec)?;
        if let Some(f) = self.partial_filter()? {
            if !f.matches_bytes(body)? {
                return Ok((Vec::new(), false));
            }
        }
        let direct = self
            .compiled
            .direct
            .get_or_init(|| direct::KeyPaths::of(&self.fields));
        if let Some(e) = direct.as_ref().and_then(|d| d.entry(body, &self.fields)) {
            let covered = Some(&e.covered[..]);
            let value = entry_value(&self.fields, &e.key, id_key, covered, e.types.as_deref())?;
            return Ok((vec![(e.key, value)], false));
        }
        let doc = match crate::document::raw::decode_fields(body, parts) {
            Ok(d) => d,
            // The fast reader refused the bytes: the whole-document path decides.
            Err(_) => body_of(rec)?,
        };
        let (keys, multikey) = key::document_keys(&doc, &self.fields, self.sparse)?;
        self.entries_from_keys(&doc, keys, multikey, id_key)
    }

    /// The entries a stored document has in this index: per key, the entry value (the `_id`
    /// key, then, when the document has exactly one key and no array on the key paths, the
    /// indexed fields as the projection `{paths: 1, _id: 0}` gives them, so that covered
    /// queries can answer without the document). Sorted by key; and whether an array
    /// produced the keys.
    pub(crate) fn entries_of(&self, doc: &BsonDocument, id_key: &[u8]) -> Result<(Entries, bool)> {
        let (keys, multikey) = self.keys_of(doc)?;
        self.entries_from_keys(doc, keys, multikey, id_key)
    }

    /// The entries of `doc` given its keys (see [`IndexDef::entries_of`]).
    pub(crate) fn entries_from_keys(
        &self,
        doc: &BsonDocument,
        keys: Vec<Vec<u8>>,
        multikey: bool,
        id_key: &[u8],
    ) -> Result<(Entries, bool)> {
        let values = if keys.len() == 1 && !multikey {
            Some(self.covered_values(doc)?)
        } else {
            None
        };
        let entries = keys
            .into_iter()
            .map(|k| {
                let v = entry_value(&self.fields, &k, id_key, values.as_deref(), None)?;
                Ok((k, v))
            })
            .collect::<Result<_>>()?;
        Ok((entries, multikey))
    }

    /// The indexed fields of `doc` as BSON bytes, in the shape and order the projection
    /// `{paths: 1, _id: 0}` gives them.
    pub(crate) fn covered_values(&self, doc: &BsonDocument) -> Result<Vec<u8>> {
        let projection = match self.compiled.projection.get() {
            Some(p) => p,
            None => {
                let mut spec = BsonDocument::new();
                for f in &self.fields {
                    spec.insert(f.path.clone(), 1);
                }
                if !self.fields.iter().any(|f| f.path == "_id") {
                    spec.insert("_id", 0);
                }
                let p = crate::query::projection::Projection::parse(&spec)?;
                self.compiled.projection.get_or_init(|| p)
            }
        };
        let projected = match projection {
            Some(p) => p.apply(doc),
            None => doc.clone(),
        };
        projected
            .to_vec()
            .map_err(|e| Error::invalid(format!("index values: {e}")))
    }

    /// The same options (everything but the name and the multikey flag).
    pub(crate) fn same_spec(&self, other: &IndexDef) -> bool {
        self.key == other.key
            && self.unique == other.unique
            && self.sparse == other.sparse
            && self.partial == other.partial
            && self.expire_after_secs == other.expire_after_secs
            && self.vector == other.vector
    }
}

pub(crate) fn entry_table(coll: &str, name: &str) -> String {
    format!("_ix${coll}${name}")
}

pub(crate) fn catalog_key(coll: &str, name: &str) -> Bytes {
    let mut k = Vec::with_capacity(coll.len() + name.len() + 1);
    k.extend_from_slice(coll.as_bytes());
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    Bytes::from(k)
}

/// Parses a key pattern: non-empty, each value 1 or -1 (as any number type).
pub(crate) fn parse_key_pattern(keys: &BsonDocument) -> Result<Vec<KeyField>> {
    if keys.is_empty() {
        return Err(Error::invalid("index key pattern must not be empty"));
    }
    let mut fields = Vec::with_capacity(keys.len());
    for (path, dir) in keys {
        crate::query::path::check_limits("index key", path)?;
        if path.is_empty() || path.split('.').any(str::is_empty) || path.starts_with('$') {
            return Err(Error::invalid(format!("invalid index key path '{path}'")));
        }
        let descending = match dir {
            Bson::Int32(1) | Bson::Int64(1) => false,
            Bson::Int32(-1) | Bson::Int64(-1) => true,
            Bson::Double(d) if *d == 1.0 => false,
            Bson::Double(d) if *d == -1.0 => true,
            Bson::String(kind) => {
                return Err(Error::unsupported(format!(
                    "index type \"{kind}\" (on '{path}') is not supported; use 1 or -1"
                )))
            }
            other => {
                return Err(Error::invalid(format!(
                    "index key '{path}' must be 1 or -1, not {other}"
                )))
            }
        };
        if fields.iter().any(|f: &KeyField| f.path == path.as_str()) {
            return Err(Error::invalid(format!(
                "index key pattern names '{path}' twice"
            )));
        }
        fields.push(KeyField {
            path: path.clone(),
            descending,
        });
    }
    Ok(fields)
}

/// MongoDB's default name: `a_1_b_-1` (`embedding_hnsw` for a vector index).
pub(crate) fn default_name(keys: &BsonDocument) -> String {
    keys.iter()
        .map(|(k, v)| {
            let dir = match v {
                Bson::String(s) if s == HNSW => HNSW,
                Bson::Int32(-1) | Bson::Int64(-1) => "-1",
                Bson::Double(d) if *d == -1.0 => "-1",
                _ => "1",
            };
            format!("{k}_{dir}")
        })
        .collect::<Vec<_>>()
        .join("_")
}

/// Whether a key pattern asks for a vector index (a field given as `"hnsw"`).
fn is_vector_pattern(keys: &BsonDocument) -> bool {
    keys.values()
        .any(|v| matches!(v, Bson::String(s) if s == HNSW))
}

/// The one field of a vector index's key pattern `{"path": "hnsw"}`.
fn vector_key_field(keys: &BsonDocument) -> Result<Vec<KeyField>> {
    let mut it = keys.iter();
    match (it.next(), it.next()) {
        (Some((path, Bson::String(s))), None) if s == HNSW => {
            crate::query::path::check_limits("index key", path)?;
            if path.is_empty() || path.split('.').any(str::is_empty) || path.starts_with('$') {
                return Err(Error::invalid(format!("invalid index key path '{path}'")));
            }
            Ok(vec![KeyField {
                path: path.clone(),
                descending: false,
            }])
        }
        _ => Err(Error::invalid(
            "a vector index has exactly one field, given as {\"path\": \"hnsw\"}",
        )),
    }
}

/// Builds a definition from `create_index` arguments.
pub(crate) fn new_def(coll: &str, keys: &BsonDocument, options: &BsonDocument) -> Result<IndexDef> {
    let mut options = options.clone();
    let (fields, vector) = if is_vector_pattern(keys) {
        let fields = vector_key_field(keys)?;
        (fields, Some(VectorSpec::take_from(&mut options)?))
    } else {
        (parse_key_pattern(keys)?, None)
    };
    let options = &options;
    let mut def = IndexDef {
        coll: coll.to_owned(),
        name: default_name(keys),
        key: keys.clone(),
        fields,
        unique: false,
        sparse: false,
        partial: None,
        expire_after_secs: None,
        multikey: false,
        seq: 0,
        vector,
        compiled: Compiled::default(),
    };
    for (k, v) in options {
        match (k.as_str(), v) {
            ("unique", Bson::Boolean(b)) => def.unique = *b,
            ("sparse", Bson::Boolean(b)) => def.sparse = *b,
            ("name", Bson::String(s)) => def.name = s.clone(),
            ("partialFilterExpression", Bson::Document(d)) => {
                Filter::parse(d)?;
                def.partial = Some(d.clone());
            }
            ("expireAfterSeconds", v) => {
                // Float-to-int `as` saturates: an out-of-range double fails the range check.
                #[allow(clippy::cast_possible_truncation)]
                let secs = match v {
                    Bson::Int32(i) => i64::from(*i),
                    Bson::Int64(i) => *i,
                    Bson::Double(d) if d.fract() == 0.0 && d.is_finite() => *d as i64,
                    _ => -1,
                };
                if !(0..=i64::from(i32::MAX)).contains(&secs) {
                    return Err(Error::invalid(
                        "expireAfterSeconds must be a whole number of seconds from 0 to 2147483647",
                    ));
                }
                def.expire_after_secs = Some(secs);
            }
            ("v" | "background", _) => {}
            ("unique" | "sparse" | "name" | "partialFilterExpression", _) => {
                return Err(Error::invalid(format!(
                    "index option '{k}' has the wrong type"
                )))
            }
            _ => {
                return Err(Error::invalid(format!("unknown index option '{k}'")));
            }
        }
    }
    if def.name.is_empty() || def.name.contains('$') || def.name.contains('\0') {
        return Err(Error::invalid(format!(
            "index name '{}' must be non-empty without '$' or NUL",
            def.name
        )));
    }
    if def.name == ID_INDEX {
        return Err(Error::invalid("the name _id_ belongs to the primary key"));
    }
    if def.expire_after_secs.is_some() && def.fields.len() != 1 {
        return Err(Error::invalid(
            "expireAfterSeconds needs an index on a single field",
        ));
    }
    if def.vector.is_some() && (def.unique || def.sparse || def.expire_after_secs.is_some()) {
        return Err(Error::invalid(
            "a vector index takes no 'unique', 'sparse' or 'expireAfterSeconds'",
        ));
    }
    if def.sparse && def.partial.is_some() {
        return Err(Error::invalid(
            "cannot mix \"partialFilterExpression\" and \"sparse\" options",
        ));
    }
    Ok(def)
}
