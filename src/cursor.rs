//! [`Cursor`]: the result stream of `find`. It reads the snapshot taken when the query
//! started (later commits are not seen), pulls documents in batches in `_id` order, and
//! applies filter, skip, limit and projection as it goes. A sorted query reads every match
//! first, sorts (stably), then streams.

use crate::document::{record, Document};
use crate::error::{Error, Result};
use crate::query::Plan;
use crate::storage::{Bytes, ReadView};
use bson::{Bson, Document as BsonDocument};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const BATCH: usize = 256;

/// A stream of query results over a consistent snapshot.
///
/// Not tied to the connection's lifetime in Rust terms, but once the connection is closed
/// every call returns an error. A `Cursor` is `Send`; use it from one thread at a time.
pub struct Cursor {
    snap: Arc<dyn ReadView>,
    table: String,
    plan: Plan,
    closed: Arc<AtomicBool>,
    after: Option<Bytes>,
    /// Matches read ahead, as stored records (decoded only when returned).
    ready: VecDeque<Bytes>,
    sorted: Option<std::vec::IntoIter<BsonDocument>>,
    to_skip: u64,
    left: Option<u64>,
    done: bool,
}

impl Cursor {
    pub(crate) fn new(
        snap: Arc<dyn ReadView>,
        table: String,
        plan: Plan,
        closed: Arc<AtomicBool>,
    ) -> Self {
        Self {
            snap,
            table,
            to_skip: plan.skip,
            left: plan.limit,
            plan,
            closed,
            after: None,
            ready: VecDeque::new(),
            sorted: None,
            done: false,
        }
    }

    /// The next document, `Ok(None)` at the end.
    ///
    /// Errors: [`Error::Closed`] once the connection that opened the cursor is closed.
    pub fn next_document(&mut self) -> Result<Option<Document>> {
        self.check_open()?;
        if self.left == Some(0) {
            return Ok(None);
        }
        let next = if self.plan.sort.is_some() {
            self.next_sorted()?
        } else {
            match self.next_in_order()? {
                Some(rec) => Some(record::decode_body(&rec)?.into_bson()),
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
        if self.plan.sort.is_some() || self.plan.projection.is_some() {
            return Ok(self.next_document()?.map(|d| d.to_json()));
        }
        self.check_open()?;
        if self.left == Some(0) {
            return Ok(None);
        }
        let Some(rec) = self.next_in_order()? else {
            return Ok(None);
        };
        if let Some(l) = self.left.as_mut() {
            *l -= 1;
        }
        match crate::document::json::raw_to_relaxed_json(record::body_bytes(&rec)?) {
            Some(text) => Ok(Some(text)),
            None => Ok(Some(record::decode_body(&rec)?.to_json())),
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed(
                "the database connection of this cursor was closed".into(),
            ));
        }
        Ok(())
    }

    /// Next matching record after skipping, in `_id` order.
    fn next_in_order(&mut self) -> Result<Option<Bytes>> {
        loop {
            if let Some(d) = self.ready.pop_front() {
                return Ok(Some(d));
            }
            if self.done {
                return Ok(None);
            }
            if self.after.is_none() {
                // A filter that pins one `_id`: look it up instead of scanning.
                if let Some(hit) =
                    crate::collection::point_lookup(&*self.snap, &self.table, &self.plan.filter)
                {
                    self.done = true;
                    if let Some((_, rec)) = hit {
                        if self.plan.filter.matches_bytes(record::body_bytes(&rec)?)? {
                            if self.to_skip > 0 {
                                self.to_skip -= 1;
                            } else {
                                self.ready.push_back(rec);
                            }
                        }
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
                if !record::is_live(&rec, now) {
                    continue;
                }
                if !self.plan.filter.matches_bytes(record::body_bytes(&rec)?)? {
                    continue;
                }
                if self.to_skip > 0 {
                    self.to_skip -= 1;
                    continue;
                }
                self.ready.push_back(rec);
            }
        }
    }

    fn next_sorted(&mut self) -> Result<Option<BsonDocument>> {
        if self.sorted.is_none() {
            let sort = self.plan.sort.clone().expect("checked by caller");
            let mut rows: Vec<(Vec<Option<Bson>>, BsonDocument)> = Vec::new();
            crate::collection::scan_matches(
                &*self.snap,
                &self.table,
                &self.plan.filter,
                |_, _, doc| {
                    rows.push((sort.key_of(doc), doc.clone()));
                    Ok(true)
                },
            )?;
            rows.sort_by(|a, b| sort.compare_keys(&a.0, &b.0));
            let skip = usize::try_from(self.plan.skip).unwrap_or(usize::MAX);
            let docs: Vec<BsonDocument> = rows.into_iter().skip(skip).map(|(_, d)| d).collect();
            self.sorted = Some(docs.into_iter());
        }
        Ok(self.sorted.as_mut().and_then(Iterator::next))
    }
}

impl Iterator for Cursor {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_document().transpose()
    }
}
