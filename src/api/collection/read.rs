//! [`Collection`]'s reads: by `_id` (through the document cache outside transactions),
//! `find` (a [`Cursor`] over the plan the execution layer chooses), count and distinct.

use super::Collection;
use crate::document::{now_millis, record, Document, DocumentId, Metadata};
use crate::error::{Error, Result};
use crate::exec::plan::choose_for;
use crate::exec::scan::{count_matches, live, scan_matches};
use crate::exec::Cursor;
use crate::query::{filter::Filter, FindOptions, Plan};
use crate::storage::{Bytes, ReadView};
use bson::{Bson, Document as BsonDocument};
use std::sync::Arc;

/// What a read by `_id` found: the stored record, or the decoded document the cache keeps
/// beside it (asked for by Rust callers, who need a decoded document anyway).
enum Found {
    Rec(Bytes),
    Doc(Arc<BsonDocument>),
}

/// One get in this many (per thread) is timed for the latency percentiles of `stats`: two
/// clock reads cost about 40 ns, a tenth of a get the document cache answers, and a uniform
/// sample leaves the percentiles what they were.
const LATENCY_SAMPLE: u32 = 8;

thread_local! {
    static GETS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Whether this get is one of the timed ones (the first of every [`LATENCY_SAMPLE`]).
fn latency_sampled() -> bool {
    GETS.with(|n| {
        let next = n.get().wrapping_add(1);
        n.set(next);
        next % LATENCY_SAMPLE == 1
    })
}

impl Collection<'_> {
    /// Resolves the text form of an `_id` (see [`DocumentId::text_candidates`]) to the id of an
    /// existing document, or to the string reading when none exists.
    pub fn resolve_text_id(&self, text: &str) -> Result<DocumentId> {
        let candidates = DocumentId::text_candidates(text);
        let now = now_millis();
        let found = self.db.read(|v| {
            Ok(candidates
                .iter()
                .find(|id| live(v.get(&self.name, id.key()), now).is_some())
                .cloned())
        })?;
        match found {
            Some(id) => Ok(id),
            None => DocumentId::from_str_id(text),
        }
    }

    /// [`Collection::get`] by the text form of an `_id` (see
    /// [`DocumentId::text_candidates`]): the string reading first, then the JSON one.
    pub fn get_by_text(&self, text: &str) -> Result<Option<Document>> {
        for id in DocumentId::text_readings(text) {
            if let Some(doc) = self.get(&id)? {
                return Ok(Some(doc));
            }
        }
        Ok(None)
    }

    /// Like [`Collection::get_by_text`], handing out the stored record (shared with the
    /// cache and storage) for the caller to decode or write as JSON.
    pub(crate) fn get_record_by_text(&self, text: &str) -> Result<Option<Bytes>> {
        for id in DocumentId::text_readings(text) {
            if let Some(Found::Rec(rec)) = self.find_by_key(id.key(), false)? {
                return Ok(Some(rec));
            }
        }
        Ok(None)
    }

    /// The document with this `_id`, or `None` (also once it has expired). Outside a
    /// transaction the document cache serves it when it can; hits, misses and latency are
    /// counted in `stats`.
    pub fn get(&self, id: &DocumentId) -> Result<Option<Document>> {
        Ok(match self.find_by_key(id.key(), true)? {
            None => None,
            Some(Found::Rec(rec)) => Some(record::decode_body(&rec)?),
            Some(Found::Doc(doc)) => Some(Document::from_shared(doc)),
        })
    }

    /// The live stored record of `_id` key `key` (or, when `decoded` and the cache has it,
    /// the decoded document): from the cache outside a transaction, else from the
    /// transaction's view.
    fn find_by_key(&self, key: &[u8], decoded: bool) -> Result<Option<Found>> {
        let started = latency_sampled().then(std::time::Instant::now);
        let now = now_millis();
        // Before the cache: an inherited (fork) or closed connection reads nothing.
        self.db.check_open()?;
        let engine = self.db.engine();
        let r = if self.db.txn_open() {
            self.db.read(|v| {
                self.require_table(v)?;
                Ok(live(v.get(&self.name, key), now).map(Found::Rec))
            })
        } else {
            self.get_cached(key, now, decoded)
        };
        if matches!(r, Ok(Some(_))) {
            engine.touch(&self.name, key);
        }
        if let Some(started) = started {
            engine
                .cache
                .metrics
                .record_get(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        r
    }

    fn get_cached(&self, key: &[u8], now: i64, decoded: bool) -> Result<Option<Found>> {
        use crate::cache::Lookup;
        let cache = &self.db.engine().cache;
        let ticket = match cache.get(&self.name, key, now, decoded) {
            Lookup::Hit(rec) if decoded => {
                // Decoding costs more than cloning a decoded document (measured: 415k vs 729k
                // cached gets/s): keep the decoded form for the next Rust reader.
                let doc = Arc::new(record::decode_body(&rec)?.into_bson());
                cache.keep_decoded(&self.name, key, &rec, Arc::clone(&doc), now);
                return Ok(Some(Found::Doc(doc)));
            }
            Lookup::Hit(rec) => return Ok(Some(Found::Rec(rec))),
            Lookup::Decoded(doc) => return Ok(Some(Found::Doc(doc))),
            Lookup::Expired => return Ok(None),
            Lookup::Miss(ticket) => ticket,
        };
        self.db.read(|v| {
            self.require_table(v)?;
            let Some(rec) = v.get(&self.name, key) else {
                return Ok(None);
            };
            if !record::is_live(&rec, now) {
                crate::cache::metrics::bump(&cache.metrics.expired_reads, 1);
                return Ok(None);
            }
            if let Some(ticket) = ticket {
                // A copy, once, for the cache: the record storage hands out may be a slice of
                // a whole page, which sharing would keep alive beyond `cache_bytes`.
                let fill = crate::cache::Fill {
                    coll: &self.name,
                    key: Bytes::copy_from_slice(key),
                    rec: Bytes::copy_from_slice(&rec),
                    expires_at: record::expires_at(&rec),
                };
                cache.admit(fill, ticket, now);
            }
            Ok(Some(Found::Rec(rec)))
        })
    }

    /// The metadata of the document with this `_id`, or `None` (also once it has expired).
    pub fn get_meta(&self, id: &DocumentId) -> Result<Option<Metadata>> {
        let now = now_millis();
        self.db.read(|v| {
            self.require_table(v)?;
            live(v.get(&self.name, id.key()), now)
                .map(|r| record::decode_meta(&r))
                .transpose()
        })
    }

    /// Runs a query; the cursor reads the snapshot taken now.
    pub fn find(&self, filter: &BsonDocument, options: FindOptions) -> Result<Cursor> {
        let r = self.find_with(filter, &options);
        options.dispose();
        r
    }

    /// [`Collection::find`] reading `snap` (a snapshot of this connection's database, see
    /// `Database::snapshot`) instead of one taken now: an aggregation reads its input and
    /// every `$lookup` from one snapshot.
    pub(crate) fn find_in(
        &self,
        snap: Arc<dyn ReadView>,
        filter: &BsonDocument,
        options: FindOptions,
    ) -> Result<Cursor> {
        let r = Plan::compile(filter, &options).and_then(|plan| self.find_on(snap, plan));
        options.dispose();
        r
    }

    fn find_with(&self, filter: &BsonDocument, options: &FindOptions) -> Result<Cursor> {
        let plan = Plan::compile(filter, options)?;
        self.find_on(self.db.snapshot()?, plan)
    }

    fn find_on(&self, snap: Arc<dyn ReadView>, plan: Plan) -> Result<Cursor> {
        let choice = choose_for(&*snap, &self.name, &plan)?;
        Ok(Cursor::with_access(
            snap,
            self.name.clone(),
            plan,
            choice.access,
            self.db.closed_flag(),
        ))
    }

    /// [`Collection::find`] with the filter as JSON text.
    pub fn find_json(&self, filter: &str, options: FindOptions) -> Result<Cursor> {
        self.find(&parse_filter_json(filter)?, options)
    }

    /// The first match, in the collection's order (insertion order; `_id` order in files of
    /// format versions 1-2 and with memlog).
    pub fn find_one(&self, filter: &BsonDocument) -> Result<Option<Document>> {
        let opts = FindOptions {
            limit: 1,
            ..FindOptions::default()
        };
        self.find(filter, opts)?.next().transpose()
    }

    /// [`Collection::find_one`] as relaxed Extended JSON, written from the stored bytes
    /// without decoding the document (what the C ABI returns).
    pub(crate) fn find_one_json(&self, filter: &BsonDocument) -> Result<Option<String>> {
        if let Some(id) = plain_id_equality(filter) {
            // `{_id: "..."}`: one read by key in the current view (the transaction's inside
            // one), without compiling a plan and opening a cursor for one record. Like every
            // query, it leaves the document cache alone.
            let now = now_millis();
            return self.db.read(|v| {
                if !v.has_table(&self.name) {
                    return Ok(None);
                }
                live(v.get(&self.name, id.key()), now)
                    .map(|rec| record::body_json(&rec))
                    .transpose()
            });
        }
        let opts = FindOptions {
            limit: 1,
            ..FindOptions::default()
        };
        self.find(filter, opts)?.next_json()
    }

    /// Number of matching documents (0 for a missing collection).
    pub fn count(&self, filter: &BsonDocument) -> Result<u64> {
        let f = Filter::parse(filter)?;
        if filter.is_empty() {
            // Without ephemeral documents every stored document is live: count in O(1).
            let fast = self.db.read(|v| {
                Ok((!v.has_table(crate::index::expiry::TEMP_TABLE)
                    || v.count(crate::index::expiry::TEMP_TABLE) == 0)
                    .then(|| v.count(&self.name)))
            })?;
            if let Some(n) = fast {
                return Ok(n);
            }
        }
        self.db.read(|v| count_matches(v, &self.name, &f))
    }

    /// [`Collection::count`] with the filter as JSON text.
    pub fn count_json(&self, filter: &str) -> Result<u64> {
        self.count(&parse_filter_json(filter)?)
    }

    /// Distinct values of `field` (dotted path) among matching documents, array values
    /// flattened, sorted in MongoDB's order.
    pub fn distinct(&self, field: &str, filter: &BsonDocument) -> Result<Vec<Bson>> {
        crate::query::path::check_limits("distinct", field)?;
        if field.is_empty() || field.starts_with('$') {
            return Err(Error::invalid(format!(
                "invalid field path '{field}' for distinct"
            )));
        }
        let f = Filter::parse(filter)?;
        let mut out: Vec<Bson> = Vec::new();
        self.db.read(|v| {
            scan_matches(v, &self.name, &f, |_, _, doc| {
                let mut values = Vec::new();
                crate::query::path::lookup(doc, field, &mut values);
                for val in values {
                    let items: Vec<&Bson> = match val {
                        Bson::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    for item in items {
                        if !out.iter().any(|o| crate::query::compare::equal(o, item)) {
                            out.push(item.clone());
                        }
                    }
                }
                Ok(true)
            })
        })?;
        out.sort_by(crate::query::compare::compare);
        Ok(out)
    }
}

/// A filter given as JSON text; empty text is the empty filter (every document).
pub(crate) fn parse_filter_json(text: &str) -> Result<BsonDocument> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(BsonDocument::new());
    }
    crate::document::json::parse_json_document(t, "filter")
}

/// The `_id` of a filter that is exactly `{_id: v}` with `v` a string or an ObjectId: the
/// one document it can match is the one stored under that `_id`'s key. (Numbers are left to
/// the planner, which knows when equal numbers of other types can share the key.)
fn plain_id_equality(filter: &BsonDocument) -> Option<DocumentId> {
    if filter.len() != 1 {
        return None;
    }
    match filter.get("_id")? {
        v @ (Bson::String(_) | Bson::ObjectId(_)) => DocumentId::new(v.clone()).ok(),
        _ => None,
    }
}
