//! Secondary indexes.
//!
//! - [`key`]: the order-preserving key encoding of BSON values (`docs/FORMAT.md`, "Index
//!   keys").
//! - The catalog: one entry per index in the hidden collection `_indexes`, key
//!   `COLL \0 NAME`, value the definition as BSON ([`IndexDef`]). Each index's entries live in
//!   their own table `_ix$COLL$NAME` (`$` cannot appear in collection or index names): key
//!   `encoded values ++ the document's _id key`, value the `_id` key's length and, for a
//!   document with one key, its indexed fields ([`covered`]; covered queries read them).
//! - Maintenance ([`on_write`]): called by the engine's tracked transaction for every put
//!   and delete on a collection that has indexes, inside the same transaction, so documents
//!   and entries commit (or vanish) together. Unique checks run before anything is written.
//! - The planner and `explain` ([`plan`]), index scans ([`scan`]), the integrity check of
//!   entries against documents ([`check`]), and TTL indexes (swept by the engine's sweeper).

pub(crate) mod check;
pub(crate) mod covered;
mod direct;
pub(crate) mod key;
pub(crate) mod plan;
pub(crate) mod scan;
#[cfg(test)]
mod tests;

use crate::collection::Collection;
use crate::document::{check_nesting, record, MAX_QUERY_NESTING};
use crate::error::{Error, Result};
use crate::query::filter::Filter;
use crate::query::raw::FieldTree;
use crate::query::FindOptions;
use crate::storage::{Bytes, ReadView, SnapshotId, WriteTxn};
use bson::{Bson, Document as BsonDocument};
use covered::entry_value;
pub(crate) use covered::{covered_values, entry_id};
use key::KeyField;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The hidden catalog collection of index definitions.
pub(crate) const CATALOG: &str = "_indexes";
/// Name of the primary index MongoDB lists first.
const ID_INDEX: &str = "_id_";
/// Documents read per batch while an index is built.
const BUILD_BATCH: usize = 256;

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
    /// The partial filter and the covered-values projection, compiled once per definition.
    compiled: Compiled,
}

/// Parsed forms of a definition's parts, built on first use.
#[derive(Debug, Default)]
struct Compiled {
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

    fn catalog_key(&self) -> Bytes {
        catalog_key(&self.coll, &self.name)
    }

    fn partial_filter(&self) -> Result<Option<&Filter>> {
        let Some(p) = &self.partial else {
            return Ok(None);
        };
        if let Some(f) = self.compiled.partial.get() {
            return Ok(Some(f));
        }
        let f = Filter::parse(p)?;
        Ok(Some(self.compiled.partial.get_or_init(|| f)))
    }

    fn to_bson(&self) -> BsonDocument {
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
        d
    }

    fn from_bson(coll: &str, d: &BsonDocument) -> Result<Self> {
        let bad = || Error::Corrupt(format!("index catalog entry of '{coll}' is malformed"));
        let key = d.get_document("key").map_err(|_| bad())?.clone();
        let fields = parse_key_pattern(&key).map_err(|_| bad())?;
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
            compiled: Compiled::default(),
        })
    }

    /// The listing MongoDB's `listIndexes` gives.
    fn listing(&self) -> BsonDocument {
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
    fn key_parts(&self) -> &FieldTree {
        self.compiled
            .parts
            .get_or_init(|| FieldTree::of_paths(self.fields.iter().map(|f| f.path.as_str())))
    }

    /// [`IndexDef::entries_of`] for a stored record, decoding only `parts` of it
    /// ([`IndexDef::key_parts`]) rather than the whole document: the partial filter (if
    /// any) reads the record's bytes, the keys and covered values come from the cut-down
    /// document through the same code as for a whole one.
    fn entries_of_record(
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
        let doc = match crate::query::raw::decode_fields(body, parts) {
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
    fn entries_from_keys(
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
    fn covered_values(&self, doc: &BsonDocument) -> Result<Vec<u8>> {
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
    fn same_spec(&self, other: &IndexDef) -> bool {
        self.key == other.key
            && self.unique == other.unique
            && self.sparse == other.sparse
            && self.partial == other.partial
            && self.expire_after_secs == other.expire_after_secs
    }
}

pub(crate) fn entry_table(coll: &str, name: &str) -> String {
    format!("_ix${coll}${name}")
}

fn catalog_key(coll: &str, name: &str) -> Bytes {
    let mut k = Vec::with_capacity(coll.len() + name.len() + 1);
    k.extend_from_slice(coll.as_bytes());
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    Bytes::from(k)
}

/// Parses a key pattern: non-empty, each value 1 or -1 (as any number type).
fn parse_key_pattern(keys: &BsonDocument) -> Result<Vec<KeyField>> {
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

/// MongoDB's default name: `a_1_b_-1`.
fn default_name(keys: &BsonDocument) -> String {
    keys.iter()
        .map(|(k, v)| {
            let dir = match v {
                Bson::Int32(-1) | Bson::Int64(-1) => "-1",
                Bson::Double(d) if *d == -1.0 => "-1",
                _ => "1",
            };
            format!("{k}_{dir}")
        })
        .collect::<Vec<_>>()
        .join("_")
}

/// Builds a definition from `create_index` arguments.
fn new_def(coll: &str, keys: &BsonDocument, options: &BsonDocument) -> Result<IndexDef> {
    let fields = parse_key_pattern(keys)?;
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
    if def.sparse && def.partial.is_some() {
        return Err(Error::invalid(
            "cannot mix \"partialFilterExpression\" and \"sparse\" options",
        ));
    }
    Ok(def)
}

// ---- the catalog ------------------------------------------------------------------------

/// Parsed definitions by their catalog bytes, so a query does not parse BSON each time.
type ParsedCache = Mutex<HashMap<(Bytes, Bytes), Arc<IndexDef>>>;

fn parsed_cache() -> &'static ParsedCache {
    static CACHE: OnceLock<ParsedCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The index definitions of `coll` as `view` sees them (empty when it has none).
pub(crate) fn defs_for(view: &dyn ReadView, coll: &str) -> Result<Vec<Arc<IndexDef>>> {
    if !view.has_table(CATALOG) {
        return Ok(Vec::new());
    }
    let Some(id) = view.snapshot_id() else {
        return read_defs(view, coll);
    };
    // Queries on an unchanged database read the same definitions again and again: they are
    // kept per committed snapshot (with what they compile on first use).
    if let Some((_, _, defs)) = DEFS_SEEN
        .lock()
        .iter()
        .find(|(i, c, _)| *i == id && c == coll)
    {
        return Ok(defs.to_vec());
    }
    let defs = read_defs(view, coll)?;
    let mut seen = DEFS_SEEN.lock();
    if seen.len() >= DEFS_SEEN_MAX {
        seen.remove(0);
    }
    seen.push((id, coll.to_owned(), defs.clone().into()));
    Ok(defs)
}

/// The definitions [`defs_for`] read last, by snapshot and collection (newest last).
#[allow(clippy::type_complexity)]
static DEFS_SEEN: Mutex<Vec<(SnapshotId, String, Arc<[Arc<IndexDef>]>)>> = Mutex::new(Vec::new());
const DEFS_SEEN_MAX: usize = 16;

/// The definitions of `coll`'s indexes as stored in `view`'s catalog.
fn read_defs(view: &dyn ReadView, coll: &str) -> Result<Vec<Arc<IndexDef>>> {
    let mut prefix = coll.as_bytes().to_vec();
    prefix.push(0);
    let mut out = Vec::new();
    let mut after: Bytes = Bytes::copy_from_slice(prefix.as_slice());
    loop {
        let batch = view.scan(CATALOG, Some(&after), 64);
        if batch.is_empty() {
            return Ok(out);
        }
        for (k, v) in &batch {
            if !k.starts_with(&prefix) {
                return Ok(out);
            }
            out.push(parse_entry(coll, k, v)?);
        }
        after = batch.last().map(|(k, _)| k.clone()).unwrap_or(after);
    }
}

/// Every index definition in `view`.
pub(crate) fn all_defs(view: &dyn ReadView) -> Result<Vec<Arc<IndexDef>>> {
    if !view.has_table(CATALOG) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut after: Option<Bytes> = None;
    loop {
        let batch = view.scan(CATALOG, after.as_deref(), 64);
        if batch.is_empty() {
            return Ok(out);
        }
        for (k, v) in &batch {
            let coll = k
                .split(|b| *b == 0)
                .next()
                .and_then(|c| std::str::from_utf8(c).ok())
                .ok_or_else(|| Error::Corrupt("index catalog key is malformed".into()))?;
            out.push(parse_entry(coll, k, v)?);
        }
        after = batch.last().map(|(k, _)| k.clone());
    }
}

fn parse_entry(coll: &str, k: &Bytes, v: &Bytes) -> Result<Arc<IndexDef>> {
    let mut cache = parsed_cache().lock();
    if let Some(d) = cache.get(&(k.clone(), v.clone())) {
        return Ok(Arc::clone(d));
    }
    let doc = crate::query::raw::bson_decode(v)
        .map_err(|e| Error::Corrupt(format!("index catalog entry of '{coll}': {e}")))?;
    let def = Arc::new(IndexDef::from_bson(coll, &doc)?);
    if cache.len() >= 4096 {
        cache.clear();
    }
    cache.insert((k.clone(), v.clone()), Arc::clone(&def));
    Ok(def)
}

fn save_def(t: &mut dyn WriteTxn, def: &IndexDef) -> Result<()> {
    if !t.has_table(CATALOG) {
        t.create_table(CATALOG, "{}")?;
    }
    let mut bytes = Vec::new();
    def.to_bson()
        .to_writer(&mut bytes)
        .map_err(|e| Error::invalid(format!("index definition: {e}")))?;
    t.put(CATALOG, def.catalog_key(), Bytes::from(bytes))
}

// ---- maintenance ------------------------------------------------------------------------

fn body_of(rec: &[u8]) -> Result<BsonDocument> {
    Ok(record::decode_body(rec)?.into_bson())
}

/// Brings the indexes `defs` of collection `coll` up to date for a write of `new_rec` (a
/// stored record; `None` for a delete) under `id_key`, inside `t`, before the document itself
/// is written. Unique violations are found before any entry changes. Returns whether a
/// definition changed in the catalog (an index became multikey).
pub(crate) fn on_write(
    t: &mut dyn WriteTxn,
    defs: &[Arc<IndexDef>],
    coll: &str,
    id_key: &[u8],
    new_rec: Option<&[u8]>,
    absent: bool,
) -> Result<bool> {
    // Only the key paths of each record are decoded (see `entries_of_record`); the whole
    // new document only for a duplicate-key message. `absent`: the caller has just found
    // no record under `id_key`.
    let old_rec = if absent { None } else { t.get(coll, id_key) };
    let mut changes = Vec::with_capacity(defs.len());
    for def in defs {
        let parts = def.key_parts();
        let (old_entries, _) = match &old_rec {
            Some(r) => def.entries_of_record(r, parts, id_key)?,
            None => (Vec::new(), false),
        };
        let (new_entries, multikey) = match new_rec {
            Some(r) => def
                .entries_of_record(r, parts, id_key)
                .map_err(|e| match e {
                    Error::InvalidArgument(m) => {
                        Error::InvalidArgument(format!("index '{}' of '{coll}': {m}", def.name))
                    }
                    other => other,
                })?,
            None => (Vec::new(), false),
        };
        let old_has = |k: &[u8]| old_entries.binary_search_by(|(o, _)| o[..].cmp(k)).ok();
        let new_has = |k: &[u8]| new_entries.binary_search_by(|(n, _)| n[..].cmp(k)).is_ok();
        let removed: Vec<Vec<u8>> = old_entries
            .iter()
            .filter(|(k, _)| !new_has(k))
            .map(|(k, _)| k.clone())
            .collect();
        // New keys, and kept keys whose covered values changed (1 became 1.0).
        let mut written = Vec::new();
        for (k, v) in &new_entries {
            match old_has(k) {
                None => {
                    if def.unique && other_holder(&*t, coll, def.table(), k, id_key).is_some() {
                        let new_doc = new_rec.map(body_of).transpose()?;
                        return Err(duplicate(def, new_doc.as_ref()));
                    }
                    written.push((k.clone(), v.clone()));
                }
                Some(i) if old_entries[i].1 != *v => written.push((k.clone(), v.clone())),
                Some(_) => {}
            }
        }
        changes.push((def, removed, written, multikey && !def.multikey));
    }
    let mut catalog_changed = false;
    for (def, removed, written, flip) in changes {
        let table = def.table();
        for k in removed {
            t.delete(table, &entry_key(&k, id_key))?;
        }
        for (k, v) in written {
            t.put(table, Bytes::from(entry_key(&k, id_key)), Bytes::from(v))?;
        }
        if flip {
            let mut d = (**def).clone();
            d.multikey = true;
            save_def(t, &d)?;
            catalog_changed = true;
        }
    }
    Ok(catalog_changed)
}

/// Whether the document under `id_key` exists and has not expired (an expired ephemeral
/// document keeps its entries until it is purged, but no longer holds a unique key).
fn is_live_doc(view: &dyn ReadView, coll: &str, id_key: &[u8]) -> bool {
    view.get(coll, id_key)
        .is_some_and(|r| record::is_live(&r, crate::document::now_millis()))
}

/// The `_id` key of a live document other than `id_key` holding index key `k` in `table`
/// (expired documents keep their entries until purged, so there may be several).
fn other_holder(
    view: &dyn ReadView,
    coll: &str,
    table: &str,
    k: &[u8],
    id_key: &[u8],
) -> Option<Bytes> {
    let mut after: Bytes = Bytes::copy_from_slice(k);
    loop {
        let batch = view.scan(table, Some(&after), 8);
        if batch.is_empty() {
            return None;
        }
        for (ek, value) in &batch {
            if !ek.starts_with(k) {
                return None;
            }
            let holder = entry_id(ek, value);
            if holder != id_key && is_live_doc(view, coll, holder) {
                return Some(Bytes::copy_from_slice(holder));
            }
        }
        after = batch.last().map(|(ek, _)| ek.clone())?;
    }
}

pub(crate) fn entry_key(k: &[u8], id_key: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(k.len() + id_key.len());
    e.extend_from_slice(k);
    e.extend_from_slice(id_key);
    e
}

/// MongoDB's E11000 message, naming the index and the key.
fn duplicate(def: &IndexDef, doc: Option<&BsonDocument>) -> Error {
    let values: Vec<String> = def
        .fields
        .iter()
        .map(|f| {
            let mut reached = Vec::new();
            if let Some(d) = doc {
                crate::query::path::lookup(d, &f.path, &mut reached);
            }
            let v = reached.first().map_or(Bson::Null, |v| (*v).clone());
            format!(
                "{}: {}",
                f.path,
                crate::document::json::bson_to_json_text(&v)
            )
        })
        .collect();
    Error::DuplicateKey(format!(
        "E11000 duplicate key error collection: {} index: {} dup key: {{ {} }}",
        def.coll,
        def.name,
        values.join(", ")
    ))
}

/// Removes every index of `coll` (the collection is being dropped).
pub(crate) fn forget_collection(t: &mut dyn WriteTxn, coll: &str) -> Result<()> {
    for def in defs_for(t.as_read(), coll)? {
        drop_def(t, &def)?;
    }
    Ok(())
}

/// Moves every index of `from` to `to` (the collection is being renamed).
pub(crate) fn rename_collection(t: &mut dyn WriteTxn, from: &str, to: &str) -> Result<()> {
    for def in defs_for(t.as_read(), from)? {
        let mut moved = (*def).clone();
        moved.coll = to.to_owned();
        t.rename_table(def.table(), moved.table())?;
        t.delete(CATALOG, &def.catalog_key())?;
        save_def(t, &moved)?;
    }
    Ok(())
}

fn drop_def(t: &mut dyn WriteTxn, def: &IndexDef) -> Result<()> {
    t.delete(CATALOG, &def.catalog_key())?;
    if t.has_table(def.table()) {
        t.drop_table(def.table())?;
    }
    Ok(())
}

/// Memory a build's chunk of entries may take (their keys and values, and the sort items)
/// before it is sorted and written. Larger chunks mean fewer of them: the first is appended
/// at the tree's right end, which leaves full pages, while every later one inserts into
/// pages that are already full and splits them.
#[cfg(not(test))]
const BUILD_CHUNK_BYTES: usize = 128 << 20;
/// Small in unit tests, so that every test build spans several chunks.
#[cfg(test)]
const BUILD_CHUNK_BYTES: usize = 1 << 10;

/// Fills a new index's table from the documents already stored.
///
/// The documents are read in `_id` order, their entries gathered into chunks of about
/// [`BUILD_CHUNK_BYTES`], and each chunk is sorted and written in key order: consecutive
/// puts then land in the same leaf of the entry tree (the first chunk appends at its right
/// end) instead of each touching a random one. A unique index checks a chunk before writing
/// it ([`first_duplicate`]) and fails exactly as a build putting one document at a time
/// would, naming the same document; only keys that earlier chunks may have written
/// ([`KeyFilter`]) are looked up in the table.
fn build(t: &mut dyn WriteTxn, def: &mut IndexDef) -> Result<()> {
    let table = def.table().to_owned();
    // Every entry is new: logging each one only to write it again as pages is waste.
    t.expect_large();
    t.create_table(&table, "{}")?;
    // Owned: the build sets `def.multikey` as it goes.
    let parts = def.key_parts().clone();
    // The documents do not change during the build: read them from a snapshot, whose leaf
    // pages are walked in place rather than decoded into the writer's page cache.
    let docs = t.snapshot();
    let mut chunk = Chunk::default();
    let mut after: Option<Bytes> = None;
    loop {
        let batch = docs.scan(&def.coll, after.as_deref(), BUILD_BATCH);
        if batch.is_empty() {
            break;
        }
        for (id_key, rec) in &batch {
            let (entries, multikey) = match def.entries_of_record(rec, &parts, id_key) {
                Ok(r) => r,
                Err(e) => {
                    // A duplicate among the documents before this one fails first.
                    chunk.sort();
                    check_unique(&*t, def, &table, &chunk)?;
                    return Err(match e {
                        Error::InvalidArgument(m) => Error::InvalidArgument(format!(
                            "cannot build index '{}': {m}",
                            def.name
                        )),
                        other => other,
                    });
                }
            };
            def.multikey |= multikey;
            if entries.is_empty() {
                continue;
            }
            let expires = if def.unique {
                record::expires_at(rec).unwrap_or(i64::MAX)
            } else {
                i64::MAX
            };
            for (k, v) in &entries {
                chunk.push(k, id_key, v, expires);
            }
            if chunk.size() >= BUILD_CHUNK_BYTES {
                write_chunk(t, def, &table, &mut chunk, false)?;
            }
        }
        after = batch.last().map(|(k, _)| k.clone());
    }
    write_chunk(t, def, &table, &mut chunk, true)
}

/// Entries of a build waiting to be written: their bytes back to back in one buffer.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    items: Vec<ChunkEntry>,
    /// For a unique index, the keys of the chunks already written.
    written: KeyFilter,
}

/// One entry of a [`Chunk`]: at `at`, the index key (`key_len` bytes) and the `_id` key
/// (`id_len`), which together are the entry's key, then its value (`value_len`).
struct ChunkEntry {
    /// The index key's first 16 bytes (zero-padded) as a big-endian number: comparing these
    /// first orders most pairs without reaching into the buffer.
    prefix: u128,
    at: usize,
    key_len: usize,
    id_len: usize,
    value_len: usize,
    /// When the document expires (ms since the epoch; `i64::MAX`: never, or not needed
    /// because the index is not unique).
    expires: i64,
}

impl ChunkEntry {
    fn key<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        &bytes[self.at..self.at + self.key_len]
    }
    fn id<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        let from = self.at + self.key_len;
        &bytes[from..from + self.id_len]
    }
    fn entry_key<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        &bytes[self.at..self.at + self.key_len + self.id_len]
    }
    fn value<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        let from = self.at + self.key_len + self.id_len;
        &bytes[from..from + self.value_len]
    }
    /// As [`is_live_doc`] says of the document.
    fn live(&self, now: i64) -> bool {
        self.expires > now
    }
}

impl Chunk {
    /// Memory taken by the entries.
    fn size(&self) -> usize {
        self.bytes.len() + self.items.len() * std::mem::size_of::<ChunkEntry>()
    }

    fn push(&mut self, k: &[u8], id_key: &[u8], value: &[u8], expires: i64) {
        let mut head = [0u8; 16];
        let n = k.len().min(16);
        head[..n].copy_from_slice(&k[..n]);
        self.items.push(ChunkEntry {
            prefix: u128::from_be_bytes(head),
            at: self.bytes.len(),
            key_len: k.len(),
            id_len: id_key.len(),
            value_len: value.len(),
            expires,
        });
        self.bytes.extend_from_slice(k);
        self.bytes.extend_from_slice(id_key);
        self.bytes.extend_from_slice(value);
    }

    /// Sorts the entries by entry key (index key, then `_id` key). Entries were pushed in
    /// `_id` order (the order the build reads the documents) and one document has no index
    /// key twice, so the order they were pushed in (`at`) stands in for the `_id` key; and
    /// index keys are prefix-free, so two of at most 16 bytes with the same prefix are equal.
    fn sort(&mut self) {
        let bytes = &self.bytes;
        self.items.sort_unstable_by(|a, b| {
            a.prefix
                .cmp(&b.prefix)
                .then_with(|| {
                    if a.key_len <= 16 && b.key_len <= 16 {
                        std::cmp::Ordering::Equal
                    } else {
                        a.key(bytes).cmp(b.key(bytes))
                    }
                })
                .then(a.at.cmp(&b.at))
        });
    }
}

/// Sorts `chunk`, checks it (unique index), writes its entries in key order and empties it.
/// `last`: no chunk follows (its keys need not be remembered).
fn write_chunk(
    t: &mut dyn WriteTxn,
    def: &IndexDef,
    table: &str,
    chunk: &mut Chunk,
    last: bool,
) -> Result<()> {
    chunk.sort();
    check_unique(&*t, def, table, chunk)?;
    // The entries' keys and values are slices of the chunk's buffer (no copy each); the
    // next chunk gets a buffer of its own.
    let capacity = chunk.bytes.capacity();
    let bytes = Bytes::from(std::mem::replace(
        &mut chunk.bytes,
        Vec::with_capacity(if last { 0 } else { capacity }),
    ));
    // Sorted, the entries lie scattered in the buffer: each one's bytes are asked for a few
    // entries ahead, so that the waits for them overlap the writes of the ones before.
    const AHEAD: usize = 8;
    for (i, e) in chunk.items.iter().enumerate() {
        if let Some(next) = chunk.items.get(i + AHEAD) {
            crate::prefetch::prefetch(next.entry_key(&bytes));
        }
        t.put_shared(
            table,
            bytes.slice_ref(e.entry_key(&bytes)),
            bytes.slice_ref(e.value(&bytes)),
        )?;
    }
    if def.unique && !last {
        for e in &chunk.items {
            chunk.written.insert(e.key(&bytes));
        }
    }
    chunk.items.clear();
    Ok(())
}

/// For a unique index, the duplicate-key error for the first document of the (sorted)
/// `chunk` that holds a key an earlier document holds while live.
fn check_unique(view: &dyn ReadView, def: &IndexDef, table: &str, chunk: &Chunk) -> Result<()> {
    if !def.unique {
        return Ok(());
    }
    let Some(i) = first_duplicate(view, def, table, chunk) else {
        return Ok(());
    };
    let doc = view
        .get(&def.coll, chunk.items[i].id(&chunk.bytes))
        .map(|r| body_of(&r))
        .transpose()?;
    Err(duplicate(def, doc.as_ref()))
}

/// The entry, in a sorted chunk, of the document a build putting one document at a time (in
/// `_id` order, checking each new entry with [`other_holder`]) would refuse first: among
/// the documents holding a key that an earlier document holds while live (in the table,
/// from earlier chunks, or earlier in the chunk's run of that key), the one read first.
/// The table is asked only about keys earlier chunks may have written. Expired documents
/// keep their entries but hold no key, as in [`other_holder`].
fn first_duplicate(
    view: &dyn ReadView,
    def: &IndexDef,
    table: &str,
    chunk: &Chunk,
) -> Option<usize> {
    let (bytes, items) = (&chunk.bytes, &chunk.items);
    let now = crate::document::now_millis();
    let mut found: Option<usize> = None;
    let mut i = 0;
    while i < items.len() {
        let k = items[i].key(bytes);
        let mut end = i + 1;
        while end < items.len() && items[end].key(bytes) == k {
            end += 1;
        }
        // items[i..end] hold key k, in `_id` order.
        let refused = if chunk.written.may_contain(k)
            && other_holder(view, &def.coll, table, k, items[i].id(bytes)).is_some()
        {
            Some(i)
        } else {
            (i..end)
                .find(|&x| items[x].live(now))
                .map(|x| x + 1)
                .filter(|&x| x < end)
        };
        if let Some(r) = refused {
            if found.is_none_or(|f| items[r].id(bytes) < items[f].id(bytes)) {
                found = Some(r);
            }
        }
        i = end;
    }
    found
}

/// A Bloom filter of index keys (fixed size, allocated on first insert): no false
/// negatives, so a key it does not contain was never inserted.
#[derive(Default)]
struct KeyFilter {
    bits: Vec<u64>,
}

impl KeyFilter {
    /// 2^25 bits (4 MiB): about one false positive in 1,500 lookups after a million keys,
    /// one in 5 after ten million.
    const BITS: usize = 1 << 25;

    /// The three bit positions of `k`.
    fn probes(k: &[u8]) -> [usize; 3] {
        use std::hash::Hasher;
        let mut h = std::hash::DefaultHasher::new();
        h.write(k);
        let x = h.finish();
        let (a, b) = (x as usize, (x >> 32) as usize | 1);
        [a, a.wrapping_add(b), a.wrapping_add(b.wrapping_mul(2))].map(|p| p % Self::BITS)
    }

    fn insert(&mut self, k: &[u8]) {
        if self.bits.is_empty() {
            self.bits = vec![0; Self::BITS / 64];
        }
        for p in Self::probes(k) {
            self.bits[p / 64] |= 1 << (p % 64);
        }
    }

    fn may_contain(&self, k: &[u8]) -> bool {
        !self.bits.is_empty()
            && Self::probes(k)
                .iter()
                .all(|&p| self.bits[p / 64] & (1 << (p % 64)) != 0)
    }
}

// ---- the Rust API -----------------------------------------------------------------------

impl Collection<'_> {
    /// Creates a secondary index and builds it over the existing documents; returns its
    /// name. `keys` is a key pattern such as `{"user.email": 1}` or `{"a": 1, "b": -1}`;
    /// `options` may hold `unique`, `sparse`, `name`, `partialFilterExpression` and
    /// `expireAfterSeconds`. Creating an index that exists with the same keys and options
    /// returns its name and changes nothing. A missing collection is created.
    ///
    /// The build runs inside one write transaction: readers keep reading their snapshots,
    /// other writers wait for it as for any write.
    ///
    /// Errors: [`Error::DuplicateKey`] when a unique index meets duplicates in the existing
    /// data (nothing is created), [`Error::InvalidArgument`] for a bad key pattern or option
    /// or a name taken by a different index.
    ///
    /// ```
    /// use nexus::{Database, Document};
    /// let db = Database::open_in_memory().unwrap();
    /// let users = db.collection("users");
    /// users.insert(Document::from_json(r#"{"email": "ada@example.com"}"#).unwrap()).unwrap();
    /// let name = users.create_index_json(r#"{"email": 1}"#, Some(r#"{"unique": true}"#)).unwrap();
    /// assert_eq!(name, "email_1");
    /// let dup = Document::from_json(r#"{"email": "ada@example.com"}"#).unwrap();
    /// assert!(users.insert(dup).is_err());
    /// ```
    pub fn create_index(&self, keys: &BsonDocument, options: &BsonDocument) -> Result<String> {
        crate::db::check_collection_name(&self.name)?;
        // Before anything formats or copies them (both recurse).
        check_nesting(keys, MAX_QUERY_NESTING, "index keys")?;
        check_nesting(options, MAX_QUERY_NESTING, "index options")?;
        if keys.len() == 1 && keys.contains_key("_id") && options.is_empty() {
            // The primary key is the _id index; asking for it is a no-op (as in MongoDB).
            self.db.write(|t| {
                if !t.has_table(&self.name) {
                    t.create_table(&self.name, "{}")?;
                }
                Ok(())
            })?;
            return Ok(ID_INDEX.to_owned());
        }
        let mut def = new_def(&self.name, keys, options)?;
        self.db.write(|t| {
            let existing_defs = defs_for(t.as_read(), &self.name)?;
            def.seq = existing_defs.iter().map(|d| d.seq + 1).max().unwrap_or(1);
            for existing in existing_defs {
                if existing.name == def.name {
                    if existing.same_spec(&def) {
                        return Ok(existing.name.clone());
                    }
                    return Err(Error::invalid(format!(
                        "an index named '{}' exists on '{}' with different keys or options",
                        def.name, self.name
                    )));
                }
                if existing.key == def.key {
                    return Err(Error::invalid(format!(
                        "index {} already exists on '{}' with name '{}'",
                        crate::document::json::bson_to_json_text(&Bson::Document(def.key.clone())),
                        self.name,
                        existing.name
                    )));
                }
            }
            if !t.has_table(&self.name) {
                t.create_table(&self.name, "{}")?;
            }
            build(t, &mut def)?;
            save_def(t, &def)?;
            Ok(def.name.clone())
        })
    }

    /// [`Collection::create_index`] with JSON text (`options` `None` or empty: defaults).
    pub fn create_index_json(&self, keys: &str, options: Option<&str>) -> Result<String> {
        let keys = json_doc(keys, "index keys")?;
        let options = match options.map(str::trim) {
            None | Some("") => BsonDocument::new(),
            Some(text) => json_doc(text, "index options")?,
        };
        self.create_index(&keys, &options)
    }

    /// Drops the index called `name` (`"*"` drops every secondary index).
    ///
    /// Errors: [`Error::NotFound`] when there is no such index, [`Error::InvalidArgument`]
    /// for the `_id` index, [`Error::NoCollection`] when the collection does not exist.
    pub fn drop_index(&self, name: &str) -> Result<()> {
        if name == ID_INDEX {
            return Err(Error::invalid("cannot drop the _id index"));
        }
        self.db.write(|t| {
            if !t.has_table(&self.name) {
                return Err(Error::NoCollection(self.name.clone()));
            }
            let defs = defs_for(t.as_read(), &self.name)?;
            let mut found = false;
            for def in defs.iter().filter(|d| name == "*" || d.name == name) {
                drop_def(t, def)?;
                found = true;
            }
            if !found && name != "*" {
                return Err(Error::NotFound(format!(
                    "index '{name}' not found on '{}'",
                    self.name
                )));
            }
            Ok(())
        })
    }

    /// The collection's indexes as MongoDB lists them: `{"v": 2, "key": {...}, "name": ...}`
    /// plus the options that are set; the `_id` index first.
    ///
    /// Errors: [`Error::NoCollection`] when the collection does not exist.
    pub fn list_indexes(&self) -> Result<Vec<BsonDocument>> {
        self.db.read(|v| {
            if !v.has_table(&self.name) {
                return Err(Error::NoCollection(self.name.clone()));
            }
            let mut out = vec![bson::doc! {"v": 2, "key": {"_id": 1}, "name": ID_INDEX}];
            let mut defs = defs_for(v, &self.name)?;
            defs.sort_by_key(|d| d.seq);
            out.extend(defs.iter().map(|d| d.listing()));
            Ok(out)
        })
    }

    /// Runs the query the way `find` would and reports the plan: `queryPlanner`
    /// (`winningPlan`, `rejectedPlans`) and `executionStats` (`nReturned`,
    /// `totalKeysExamined`, `totalDocsExamined`), in MongoDB's explain shape.
    pub fn explain(&self, filter: &BsonDocument, options: FindOptions) -> Result<BsonDocument> {
        let r = plan::explain(self, filter, &options);
        options.dispose();
        r
    }
}

fn json_doc(text: &str, what: &str) -> Result<BsonDocument> {
    crate::document::json::parse_json_document(text, what)
}

// ---- TTL indexes ------------------------------------------------------------------------

/// Whether any index of `view` is a TTL index.
pub(crate) fn has_ttl_indexes(view: &dyn ReadView) -> bool {
    all_defs(view).is_ok_and(|defs| defs.iter().any(|d| d.expire_after_secs.is_some()))
}

/// One round of TTL-index expiry: deletes up to `max` documents whose indexed date (the
/// earliest, for an array) is more than `expireAfterSeconds` before `now`, inside `t`.
/// Returns how many were deleted (fewer than `max`: nothing more is due).
pub(crate) fn ttl_round(t: &mut dyn WriteTxn, now: i64, max: usize) -> Result<usize> {
    let mut deleted = 0;
    for def in all_defs(t.as_read())? {
        let Some(secs) = def.expire_after_secs else {
            continue;
        };
        let field = &def.fields[0].path;
        let cutoff = bson::DateTime::from_millis(now.saturating_sub(secs.saturating_mul(1000)));
        let due = Filter::parse(&bson::doc! { field.clone(): { "$lte": cutoff } })?;
        let Some(access) = plan::candidate(&def, &due, None, true) else {
            continue;
        };
        let mut scan = scan::IndexScan::new(&access);
        let mut stats = scan::ExecStats::default();
        let ids = scan.next_ids(t.as_read(), max - deleted, &mut stats);
        for id in ids {
            let Some(rec) = t.get(&def.coll, &id) else {
                continue;
            };
            if due.matches_bytes(record::body_bytes(&rec)?)? {
                t.delete(&def.coll, &id)?;
                deleted += 1;
            }
        }
        if deleted >= max {
            break;
        }
    }
    Ok(deleted)
}
