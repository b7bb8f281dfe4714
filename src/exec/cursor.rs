//! [`Cursor`]: the result stream of `find`. It reads the snapshot taken when the query
//! started (later commits are not seen), pulls documents in batches in the collection's
//! order, and applies filter, skip, limit and projection as it goes. A sorted query reads every match
//! first, sorts (stably), then streams.

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
}

impl Row {
    fn document(&self) -> Result<BsonDocument> {
        match self {
            Row::Record(rec) => Ok(record::decode_body(rec)?.into_bson()),
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
    stats: ExecStats,
    /// Results computed up front (an aggregation's, possibly read back from a temporary
    /// file the iterator owns), returned in order instead of reading.
    buffered: Option<Box<dyn Iterator<Item = Result<BsonDocument>> + Send>>,
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

    /// A cursor reading through `access` (see [`crate::exec::plan::choose`]).
    pub(crate) fn with_access(
        snap: Arc<dyn ReadView>,
        table: String,
        plan: Plan,
        access: Access,
        closed: Arc<AtomicBool>,
    ) -> Self {
        // A covered scan (no document read) yields the entries' values.
        let (iscan, sorted_by_index) = match &access {
            Access::Index(ix) => (Some(IndexScan::new(ix)), ix.provides_sort),
            _ => (None, false),
        };
        Self {
            access,
            iscan,
            sorted_by_index,
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
        }
    }

    /// The next document, `Ok(None)` at the end.
    ///
    /// Errors: [`Error::Closed`] once the connection that opened the cursor is closed.
    pub fn next_document(&mut self) -> Result<Option<Document>> {
        self.check_open()?;
        if let Some(docs) = self.buffered.as_mut() {
            return Ok(docs.next().transpose()?.map(Document::from));
        }
        if self.left == Some(0) {
            return Ok(None);
        }
        let next = if self.plan.sort.is_some() && !self.sorted_by_index {
            self.next_sorted()?
        } else {
            match self.next_in_order()? {
                Some(row) => Some(row.document()?),
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
            Some(JsonRow::Stored(rec)) => {
                match crate::document::json::raw_to_relaxed_json(record::body_bytes(&rec)?) {
                    Some(text) => Some(text),
                    None => Some(record::decode_body(&rec)?.to_json()),
                }
            }
        })
    }

    /// [`Cursor::next_json`] into `out` (cleared first; a buffer the caller reuses from row
    /// to row); false at the end.
    pub(crate) fn next_json_into(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        match self.next_json_row()? {
            None => return Ok(false),
            Some(JsonRow::Text(text)) => out.extend_from_slice(text.as_bytes()),
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
        if (self.plan.sort.is_some() && !self.sorted_by_index)
            || self.plan.projection.is_some()
            || self.buffered.is_some()
        {
            return Ok(self.next_document()?.map(|d| JsonRow::Text(d.to_json())));
        }
        self.check_open()?;
        if self.left == Some(0) {
            return Ok(None);
        }
        let Some(row) = self.next_in_order()? else {
            return Ok(None);
        };
        if let Some(l) = self.left.as_mut() {
            *l -= 1;
        }
        Ok(Some(match row {
            Row::Record(rec) => JsonRow::Stored(rec),
            covered => JsonRow::Text(Document::from(covered.document()?).to_json()),
        }))
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

    /// Keeps `rec` when it is live, matches and is past the skip.
    fn offer(&mut self, rec: Bytes, now: i64) -> Result<()> {
        self.stats.docs_examined += 1;
        if !record::is_live(&rec, now) {
            return Ok(());
        }
        if !self.plan.filter.matches_bytes(record::body_bytes(&rec)?)? {
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
                for row in entries {
                    if let Some(values) = row.covered {
                        self.offer_covered(row.id, values)?;
                    } else if let Some(rec) = self.snap.get_at(&self.table, &row.id, row.rid) {
                        self.offer(rec, now)?;
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
                        self.offer(rec, crate::document::now_millis())?;
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
                self.offer(rec, now)?;
            }
        }
    }

    fn next_sorted(&mut self) -> Result<Option<BsonDocument>> {
        if self.sorted.is_none() {
            let sort = self.plan.sort.clone().expect("checked by caller");
            let mut rows: Vec<(Vec<Option<Bson>>, Vec<u8>, BsonDocument)> = Vec::new();
            // The skip applies after sorting.
            self.to_skip = 0;
            // Ties keep `_id` order whatever order the access path produced.
            let by_index = self.iscan.is_some();
            let order = |a: &(Vec<Option<Bson>>, Vec<u8>, BsonDocument),
                         b: &(Vec<Option<Bson>>, Vec<u8>, BsonDocument)| {
                sort.compare_keys(&a.0, &b.0).then_with(|| a.1.cmp(&b.1))
            };
            // With a limit only the first `skip + limit` in sort order can be returned: the
            // rows are cut down to those whenever twice as many are held (a stable sort keeps
            // the earlier of equal rows, as sorting them all at the end would).
            let keep = self
                .left
                .and_then(|l| usize::try_from(l.saturating_add(self.plan.skip)).ok());
            while let Some(row) = self.next_in_order()? {
                let doc = row.document()?;
                let id_key = match (&row, by_index, doc.get("_id")) {
                    (Row::Covered { id, .. }, _, _) => id.to_vec(),
                    (_, true, Some(id)) => {
                        crate::document::DocumentId::new(id.clone())?.key().to_vec()
                    }
                    _ => Vec::new(),
                };
                rows.push((sort.key_of(&doc), id_key, doc));
                if let Some(k) = keep {
                    if rows.len() >= k.max(64).saturating_mul(2) {
                        rows.sort_by(order);
                        rows.truncate(k);
                    }
                }
            }
            rows.sort_by(order);
            let skip = usize::try_from(self.plan.skip).unwrap_or(usize::MAX);
            let docs: Vec<BsonDocument> = rows.into_iter().skip(skip).map(|(_, _, d)| d).collect();
            self.sorted = Some(docs.into_iter());
        }
        Ok(self.sorted.as_mut().and_then(Iterator::next))
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
