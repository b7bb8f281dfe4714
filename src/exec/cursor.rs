//! [`Cursor`]: the result stream of `find`. It reads the snapshot taken when the query
//! started (later commits are not seen), pulls documents in batches in the collection's
//! order, and applies filter, skip, limit and projection as it goes. A sorted query reads every match
//! first, sorts (stably), then streams.

use crate::document::raw::{decode_fields, FieldTree};
use crate::document::{record, Document};
use crate::error::{Error, Result};
use crate::exec::ixscan::{ExecStats, IndexScan};
use crate::exec::plan::Access;
use crate::query::Plan;
use crate::storage::{Bytes, ReadView};
use bson::{Bson, Document as BsonDocument};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const BATCH: usize = 256;

/// A match ready to return: a stored record, or (covered query) an index entry's values.
enum Row {
    Record(Bytes),
    Covered { id: Bytes, values: Vec<u8> },
}

/// A row on its way to JSON text.
enum JsonRow {
    Text(String),
    Stored(Bytes),
    /// A document's BSON bytes (an aggregation's result built as bytes).
    Bson(Bytes),
}

/// BSON documents one after another (each starts with its length), handed out in order as
/// slices of one buffer.
struct Packed {
    docs: Bytes,
    at: usize,
}

impl Packed {
    fn next(&mut self) -> Option<Result<Bytes>> {
        let rest = self.docs.get(self.at..).filter(|r| !r.is_empty())?;
        let len = rest
            .first_chunk::<4>()
            .and_then(|l| usize::try_from(i32::from_le_bytes(*l)).ok())
            .filter(|&l| l >= 5 && l <= rest.len());
        let Some(len) = len else {
            self.at = self.docs.len();
            return Some(Err(Error::Internal(
                "a buffered result is not a BSON document".into(),
            )));
        };
        let doc = self.docs.slice(self.at..self.at + len);
        self.at += len;
        Some(Ok(doc))
    }
}

impl Row {
    /// The BSON bytes of the row's document (a covered row's index values).
    fn body(&self) -> Result<&[u8]> {
        match self {
            Row::Record(rec) => record::body_bytes(rec),
            Row::Covered { values, .. } => Ok(values),
        }
    }

    fn document(&self) -> Result<BsonDocument> {
        self.document_with(None)
    }

    /// The row's document, with only the fields `only` names when given (a stored record;
    /// see [`Cursor::decode_only`]).
    fn document_with(&self, only: Option<&FieldTree>) -> Result<BsonDocument> {
        match self {
            Row::Record(rec) => match only {
                Some(fields) => match decode_fields(record::body_bytes(rec)?, fields) {
                    Ok(doc) => Ok(doc),
                    // Unreadable bytes: the whole decode reports them.
                    Err(_) => Ok(record::decode_body(rec)?.into_bson()),
                },
                None => Ok(record::decode_body(rec)?.into_bson()),
            },
            Row::Covered { values, .. } => crate::document::raw::bson_decode(values)
                .map_err(|e| Error::Corrupt(format!("index entry values: {e}"))),
        }
    }
}

/// A stream of query results over a consistent snapshot.
///
/// Not tied to the connection's lifetime in Rust terms, but once the connection is closed
/// every call returns an error. A `Cursor` is `Send`; use it from one thread at a time.
pub struct Cursor {
    snap: Arc<dyn ReadView>,
    table: String,
    plan: Plan,
    closed: Arc<AtomicBool>,
    /// The process generation it was made in ([`crate::process::generation`]).
    generation: u64,
    after: Option<Bytes>,
    /// Matches read ahead, as stored records (decoded only when returned) or covered rows.
    ready: VecDeque<Row>,
    sorted: Option<std::vec::IntoIter<BsonDocument>>,
    to_skip: u64,
    left: Option<u64>,
    done: bool,
    /// How the collection is read (chosen by the planner).
    access: Access,
    /// The position in the index when `access` is an index.
    iscan: Option<IndexScan>,
    /// The index yields the sort order: no sort in memory.
    sorted_by_index: bool,
    /// Every document the index yields matches the filter (see
    /// [`crate::exec::plan::bounds_are_exact`]): it is not tested again.
    index_exact: bool,
    stats: ExecStats,
    /// Results computed up front (an aggregation's, possibly read back from a temporary
    /// file the iterator owns), returned in order instead of reading.
    buffered: Option<Box<dyn Iterator<Item = Result<BsonDocument>> + Send>>,
    /// Results computed up front as BSON document bytes.
    buffered_bson: Option<Packed>,
    /// The only fields the reader needs (see [`Cursor::decode_only`]).
    only: Option<FieldTree>,
}

impl Cursor {
    /// A cursor over documents already computed (the results of an aggregation pipeline).
    /// Like any cursor it stops working once the connection is closed.
    pub(crate) fn from_documents(
        snap: Arc<dyn ReadView>,
        docs: Vec<BsonDocument>,
        closed: Arc<AtomicBool>,
    ) -> Result<Self> {
        Self::from_results(snap, Box::new(docs.into_iter().map(Ok)), closed)
    }

    /// A cursor over results computed up front and read from `results` (which may own a
    /// temporary file, removed when the cursor is dropped); an error ends the iteration.
    pub(crate) fn from_results(
        snap: Arc<dyn ReadView>,
        results: Box<dyn Iterator<Item = Result<BsonDocument>> + Send>,
        closed: Arc<AtomicBool>,
    ) -> Result<Self> {
        let plan = Plan::compile(&BsonDocument::new(), &crate::query::FindOptions::default())?;
        let mut c = Self::with_access(snap, String::new(), plan, Access::Collection, closed);
        c.buffered = Some(results);
        Ok(c)
    }

    /// A cursor over documents already computed as BSON bytes (well-formed: built by the
    /// library), returned in order.
    pub(crate) fn from_bson_documents(
        snap: Arc<dyn ReadView>,
        docs: Vec<u8>,
        closed: Arc<AtomicBool>,
    ) -> Result<Self> {
        let mut c = Self::from_documents(snap, Vec::new(), closed)?;
        c.buffered = None;
        c.buffered_bson = Some(Packed {
            docs: Bytes::from(docs),
            at: 0,
        });
        Ok(c)
    }

    /// The next document as its BSON bytes, `Ok(None)` at the end: the stored bytes when the
    /// rows come as stored (no sort in memory, no projection), else the document encoded.
    ///
    /// Errors: as [`Cursor::next_document`].
    pub(crate) fn next_bson(&mut self) -> Result<Option<Bytes>> {
        if self.buffered_bson.is_some() {
            self.check_open()?;
            return self
                .buffered_bson
                .as_mut()
                .and_then(Packed::next)
                .transpose();
        }
        if (self.plan.sort.is_some() && !self.sorted_by_index)
            || self.plan.projection.is_some()
            || self.buffered.is_some()
        {
            return self
                .next_document()?
                .map(|d| d.to_bson_bytes().map(Bytes::from))
                .transpose();
        }
        let Some(row) = self.next_stored_row()? else {
            return Ok(None);
        };
        Ok(Some(match row {
            Row::Record(rec) => rec.slice_ref(record::body_bytes(&rec)?),
            covered => Bytes::from(Document::from(covered.document()?).to_bson_bytes()?),
        }))
    }

    /// A cursor reading through `access` (see [`crate::exec::plan::choose`]).
    pub(crate) fn with_access(
        snap: Arc<dyn ReadView>,
        table: String,
        plan: Plan,
        access: Access,
        closed: Arc<AtomicBool>,
    ) -> Self {
        // A covered scan (no document read) yields the entries' values.
        let (iscan, sorted_by_index, index_exact) = match &access {
            Access::Index(ix) => (
                Some(IndexScan::new(ix)),
                ix.provides_sort,
                crate::exec::plan::bounds_are_exact(ix, &plan.filter),
            ),
            _ => (None, false, false),
        };
        Self {
            access,
            iscan,
            sorted_by_index,
            index_exact,
            stats: ExecStats::default(),
            snap,
            table,
            to_skip: plan.skip,
            left: plan.limit,
            plan,
            closed,
            generation: crate::process::generation(),
            after: None,
            ready: VecDeque::new(),
            sorted: None,
            done: false,
            buffered: None,
            buffered_bson: None,
            only: None,
        }
    }

    /// Documents returned from here on hold only these fields (top-level names; the
    /// filter and sort still read the whole stored document): for a reader that is known
    /// to read nothing else (an aggregation's `$group`, see
    /// `Pipeline::input_fields`), which then skips decoding the rest.
    pub(crate) fn decode_only(&mut self, fields: &[String]) {
        self.only = Some(FieldTree::of_paths(fields.iter().map(String::as_str)));
    }

    /// The next document, `Ok(None)` at the end.
    ///
    /// Errors: [`Error::Closed`] once the connection that opened the cursor is closed.
    pub fn next_document(&mut self) -> Result<Option<Document>> {
        self.check_open()?;
        if let Some(docs) = self.buffered.as_mut() {
            return Ok(docs.next().transpose()?.map(Document::from));
        }
        if let Some(docs) = self.buffered_bson.as_mut() {
            return docs
                .next()
                .transpose()?
                .map(|b| bson_of(&b).map(Document::from))
                .transpose();
        }
        if self.left == Some(0) {
            return Ok(None);
        }
        let next = if self.plan.sort.is_some() && !self.sorted_by_index {
            self.next_sorted()?
        } else {
            match self.next_in_order()? {
                Some(row) => Some(row.document_with(self.only.as_ref())?),
                None => None,
            }
        };
        Ok(next.map(|doc| {
            if let Some(l) = self.left.as_mut() {
                *l -= 1;
            }
            match &self.plan.projection {
                Some(p) => Document::from(p.apply(&doc)),
                None => Document::from(doc),
            }
        }))
    }

    /// The next document as relaxed Extended JSON text, `Ok(None)` at the end. Without a
    /// sort or projection the text is written straight from the stored bytes.
    ///
    /// Errors: as [`Cursor::next_document`].
    pub fn next_json(&mut self) -> Result<Option<String>> {
        Ok(match self.next_json_row()? {
            None => None,
            Some(JsonRow::Text(text)) => Some(text),
            Some(JsonRow::Bson(body)) => match crate::document::json::raw_to_relaxed_json(&body) {
                Some(text) => Some(text),
                None => Some(Document::from(bson_of(&body)?).to_json()),
            },
            Some(JsonRow::Stored(rec)) => Some(record::body_json(&rec)?),
        })
    }

    /// [`Cursor::next_json`] into `out` (cleared first; a buffer the caller reuses from row
    /// to row); false at the end.
    pub(crate) fn next_json_into(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        match self.next_json_row()? {
            None => return Ok(false),
            Some(JsonRow::Text(text)) => out.extend_from_slice(text.as_bytes()),
            Some(JsonRow::Bson(body)) => {
                if !crate::document::json::append_relaxed_json(out, &body) {
                    out.extend_from_slice(Document::from(bson_of(&body)?).to_json().as_bytes());
                }
            }
            Some(JsonRow::Stored(rec)) => {
                if !crate::document::json::append_relaxed_json(out, record::body_bytes(&rec)?) {
                    out.extend_from_slice(record::decode_body(&rec)?.to_json().as_bytes());
                }
            }
        }
        Ok(true)
    }

    /// The next row for the JSON readers: text already written (sorted, projected or
    /// covered rows) or a stored record to write from.
    fn next_json_row(&mut self) -> Result<Option<JsonRow>> {
        if self.buffered_bson.is_some() {
            self.check_open()?;
            return Ok(self
                .buffered_bson
                .as_mut()
                .and_then(Packed::next)
                .transpose()?
                .map(JsonRow::Bson));
        }
        if (self.plan.sort.is_some() && !self.sorted_by_index)
            || self.plan.projection.is_some()
            || self.buffered.is_some()
        {
            return Ok(self.next_document()?.map(|d| JsonRow::Text(d.to_json())));
        }
        let Some(row) = self.next_stored_row()? else {
            return Ok(None);
        };
        Ok(Some(match row {
            Row::Record(rec) => JsonRow::Stored(rec),
            covered => JsonRow::Text(Document::from(covered.document()?).to_json()),
        }))
    }

    /// The next row in the access path's order, counted against the limit (`None` past
    /// it): what [`Cursor::next_bson`] and the JSON readers return as stored.
    fn next_stored_row(&mut self) -> Result<Option<Row>> {
        self.check_open()?;
        if self.left == Some(0) {
            return Ok(None);
        }
        let row = self.next_in_order()?;
        if row.is_some() {
            if let Some(l) = self.left.as_mut() {
                *l -= 1;
            }
        }
        Ok(row)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed(
                "the database connection of this cursor was closed".into(),
            ));
        }
        if self.generation != crate::process::generation() {
            return Err(Error::Closed(
                "this cursor was opened before fork(): a child process cannot read through it"
                    .into(),
            ));
        }
        Ok(())
    }

    /// What the execution examined so far (for explain).
    pub(crate) fn exec_stats(&self) -> ExecStats {
        self.stats
    }

    /// Keeps `rec` when it is live, matches (`known_match`: the index guarantees it) and is
    /// past the skip.
    fn offer(&mut self, rec: Bytes, now: i64, known_match: bool) -> Result<()> {
        self.stats.docs_examined += 1;
        if !record::is_live(&rec, now) {
            return Ok(());
        }
        if !known_match && !self.plan.filter.matches_bytes(record::body_bytes(&rec)?)? {
            return Ok(());
        }
        if self.to_skip > 0 {
            self.to_skip -= 1;
            return Ok(());
        }
        self.ready.push_back(Row::Record(rec));
        Ok(())
    }

    /// Keeps a covered row (an index entry's values) when it matches and is past the skip.
    /// The planner allows covering only where no document can expire.
    fn offer_covered(&mut self, id: Bytes, values: Vec<u8>) -> Result<()> {
        if !self.plan.filter.matches_bytes(&values)? {
            return Ok(());
        }
        if self.to_skip > 0 {
            self.to_skip -= 1;
            return Ok(());
        }
        self.ready.push_back(Row::Covered { id, values });
        Ok(())
    }

    /// Next matching record after skipping, in the collection's order (or the index's order).
    fn next_in_order(&mut self) -> Result<Option<Row>> {
        loop {
            if let Some(d) = self.ready.pop_front() {
                return Ok(Some(d));
            }
            if self.done {
                return Ok(None);
            }
            if let Some(scan) = self.iscan.as_mut() {
                let entries = scan.next_entries(&*self.snap, BATCH, &mut self.stats)?;
                if let Some(e) = self.snap.fault() {
                    return Err(e);
                }
                if entries.is_empty() {
                    self.done = true;
                    continue;
                }
                let now = crate::document::now_millis();
                // The documents of the batch are read together (each page once), then
                // offered in the index's order.
                let wanted: Vec<(&[u8], Option<u64>)> = entries
                    .iter()
                    .filter(|row| row.covered.is_none())
                    .map(|row| (&row.id[..], row.rid))
                    .collect();
                let mut records = self.snap.get_many_at(&self.table, &wanted).into_iter();
                for row in entries {
                    if let Some(values) = row.covered {
                        self.offer_covered(row.id, values)?;
                    } else if let Some(rec) = records.next().flatten() {
                        self.offer(rec, now, self.index_exact)?;
                    }
                }
                // A document read that failed is missing from `ready`, not absent.
                if let Some(e) = self.snap.fault() {
                    return Err(e);
                }
                continue;
            }
            if self.after.is_none() && !matches!(self.access, Access::Collection) {
                // A filter that pins one `_id`: look it up instead of scanning.
                if let Some(hit) =
                    crate::exec::scan::point_lookup(&*self.snap, &self.table, &self.plan.filter)
                {
                    // A lookup that met a damaged page found nothing, which is not "absent".
                    if let Some(e) = self.snap.fault() {
                        return Err(e);
                    }
                    self.done = true;
                    if let Some((_, rec)) = hit {
                        self.offer(rec, crate::document::now_millis(), false)?;
                    }
                    continue;
                }
            }
            let batch = self.snap.scan(&self.table, self.after.as_deref(), BATCH);
            if let Some(e) = self.snap.fault() {
                return Err(e);
            }
            if batch.len() < BATCH {
                self.done = true;
            }
            self.after = batch.last().map(|(k, _)| k.clone());
            let now = crate::document::now_millis();
            for (_, rec) in batch {
                self.offer(rec, now, false)?;
            }
        }
    }

    fn next_sorted(&mut self) -> Result<Option<BsonDocument>> {
        if self.sorted.is_none() {
            let sort = self.plan.sort.clone().expect("checked by caller");
            // The skip applies after sorting.
            self.to_skip = 0;
            // Ties keep `_id` order whatever order the access path produced.
            let by_index = self.iscan.is_some();
            let order = |a: &(SortKey, Vec<u8>), b: &(SortKey, Vec<u8>)| {
                sort.compare_keys(&a.0, &b.0).then_with(|| a.1.cmp(&b.1))
            };
            // With a limit only the first `skip + limit` in sort order can be returned: the
            // rows are cut down to those whenever twice as many are held (a stable sort keeps
            // the earlier of equal rows, as sorting them all at the end would). Until the
            // end they are held as read (the sort key taken from the stored bytes), and a
            // row that sorts after the last one kept by a cut is dropped undecoded: it can
            // only sort after everything kept from then on.
            let keep = self
                .left
                .and_then(|l| usize::try_from(l.saturating_add(self.plan.skip)).ok());
            let mut rows: Vec<((SortKey, Vec<u8>), Held)> = Vec::new();
            let mut cutoff: Option<(SortKey, Vec<u8>)> = None;
            while let Some(row) = self.next_in_order()? {
                let (key, mut held) = match sort.key_of_bytes(row.body()?) {
                    Some(key) => (key, Held::Row(row)),
                    None => {
                        let doc = row.document()?;
                        (sort.key_of(&doc), Held::Doc(doc))
                    }
                };
                // Against the last row kept by a cut: after it, the row cannot be returned;
                // with an equal key the `_id` decides (by index), else the earlier row wins.
                let tie = match &cutoff {
                    None => false,
                    Some((ck, _)) => match sort.compare_keys(&key, ck) {
                        std::cmp::Ordering::Greater => continue,
                        std::cmp::Ordering::Equal if !by_index => continue,
                        std::cmp::Ordering::Equal => true,
                        std::cmp::Ordering::Less => false,
                    },
                };
                let id_key = if by_index { held.id_key()? } else { Vec::new() };
                if tie && cutoff.as_ref().is_some_and(|(_, cid)| id_key >= *cid) {
                    continue;
                }
                if keep.is_none() {
                    held = Held::Doc(held.into_document(self.only.as_ref())?);
                }
                rows.push(((key, id_key), held));
                if let Some(k) = keep {
                    if rows.len() >= k.max(64).saturating_mul(2) {
                        rows.sort_by(|a, b| order(&a.0, &b.0));
                        rows.truncate(k);
                        cutoff = rows.last().map(|(kid, _)| kid.clone());
                    }
                }
            }
            rows.sort_by(|a, b| order(&a.0, &b.0));
            let skip = usize::try_from(self.plan.skip).unwrap_or(usize::MAX);
            if let Some(k) = keep {
                rows.truncate(k);
            }
            let only = self.only.as_ref();
            let docs = rows
                .into_iter()
                .skip(skip)
                .map(|(_, held)| held.into_document(only))
                .collect::<Result<Vec<BsonDocument>>>()?;
            self.sorted = Some(docs.into_iter());
        }
        Ok(self.sorted.as_mut().and_then(Iterator::next))
    }
}

/// An aggregation result's bytes decoded (they were built by the library: a failure is a
/// bug, reported as such).
fn bson_of(body: &[u8]) -> Result<BsonDocument> {
    crate::document::raw::bson_decode(body)
        .map_err(|e| Error::Internal(format!("an aggregation result: {e}")))
}

/// A sort key (see [`crate::query::sort::SortSpec::key_of`]).
type SortKey = Vec<Option<Bson>>;

/// A row held by a sort: as read (decoded when returned) or already decoded.
enum Held {
    Row(Row),
    Doc(BsonDocument),
}

impl Held {
    fn into_document(self, only: Option<&FieldTree>) -> Result<BsonDocument> {
        match self {
            Held::Row(row) => row.document_with(only),
            Held::Doc(doc) => Ok(doc),
        }
    }

    /// The `_id` key that orders equal sort keys read through an index (empty without an
    /// `_id`).
    fn id_key(&self) -> Result<Vec<u8>> {
        let id = match self {
            Held::Row(Row::Covered { id, .. }) => return Ok(id.to_vec()),
            Held::Row(row @ Row::Record(_)) => {
                match crate::document::raw::find(row.body()?, "_id") {
                    Ok(Some(e)) => crate::document::raw::to_bson(e).ok(),
                    Ok(None) => None,
                    Err(_) => Some(row.document()?.get("_id").cloned().unwrap_or(Bson::Null)),
                }
            }
            Held::Doc(doc) => doc.get("_id").cloned(),
        };
        match id {
            Some(id) => Ok(crate::document::DocumentId::new(id)?.key().to_vec()),
            None => Ok(Vec::new()),
        }
    }
}

impl Iterator for Cursor {
    type Item = Result<Document>;

    /// An error ends the iteration (it is the last item): `count()`, `collect()` and `for`
    /// loops over a cursor that meets a damaged page stop there.
    fn next(&mut self) -> Option<Self::Item> {
        let item = self.next_document().transpose();
        if matches!(item, Some(Err(_))) {
            self.left = Some(0);
        }
        item
    }
}
