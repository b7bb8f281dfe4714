//! `explain`: the plan `find` would choose, in MongoDB's shape (`queryPlanner` with the
//! winning and rejected plans, `executionStats` from running it to the end).

use super::cursor::Cursor;
use super::ixscan::IndexAccess;
use super::plan::{choose_for, field_bounds, Access};
use crate::error::Result;
use crate::index::IndexDef;
use crate::query::filter::Filter;
use crate::query::{FindOptions, Plan};
use crate::storage::ReadView;
use bson::{doc, Bson, Document as BsonDocument};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn plan_stage(
    access: &Access,
    coll: &str,
    filter_doc: &BsonDocument,
    filter: &Filter,
) -> BsonDocument {
    match access {
        Access::Collection => doc! {
            "stage": "COLLSCAN", "filter": filter_doc.clone(), "direction": "forward",
        },
        Access::Id => doc! { "stage": "IDHACK", "namespace": coll },
        Access::Index(ix) if ix.covered => doc! {
            "stage": "PROJECTION_COVERED",
            "inputStage": ixscan_stage(ix, filter),
        },
        Access::Index(ix) => doc! {
            "stage": "FETCH",
            "inputStage": ixscan_stage(ix, filter),
            "filter": filter_doc.clone(),
        },
    }
}

/// Per key field, the bounds in words (MongoDB's `indexBounds`), described from `filter`.
fn bounds_text(def: &IndexDef, filter: &Filter) -> BsonDocument {
    let mut text = BsonDocument::new();
    for f in &def.fields {
        let (_, words) = field_bounds(filter, &f.path, def.multikey, true);
        text.insert(
            f.path.clone(),
            if words.is_empty() {
                "[MinKey, MaxKey]".to_string()
            } else {
                words.join(" AND ")
            },
        );
    }
    text
}

fn ixscan_stage(ix: &IndexAccess, filter: &Filter) -> BsonDocument {
    doc! {
        "stage": "IXSCAN",
        "keyPattern": ix.def.key.clone(),
        "indexName": ix.def.name.clone(),
        "isMultiKey": ix.def.multikey,
        "isUnique": ix.def.unique,
        "isSparse": ix.def.sparse,
        "isPartial": ix.def.partial.is_some(),
        "direction": "forward",
        "indexBounds": bounds_text(&ix.def, filter),
        "intervals": ix.intervals.len() as i64,
    }
}

fn wrap(stage: BsonDocument, plan: &Plan, access: &Access) -> BsonDocument {
    let mut s = stage;
    let sorted_by_index = matches!(access, Access::Index(ix) if ix.provides_sort);
    if let Some(sort) = &plan.sort {
        if !sorted_by_index {
            s = doc! { "stage": "SORT", "sortPattern": sort.pattern(), "inputStage": s };
        }
    }
    if plan.skip > 0 {
        s = doc! { "stage": "SKIP", "skipAmount": plan.skip as i64, "inputStage": s };
    }
    if let Some(l) = plan.limit {
        s = doc! { "stage": "LIMIT", "limitAmount": l as i64, "inputStage": s };
    }
    let covered = matches!(access, Access::Index(ix) if ix.covered);
    if plan.projection.is_some() && !covered {
        s = doc! { "stage": "PROJECTION", "inputStage": s };
    }
    s
}

/// `explain`: plans the query as `find` would, runs it to the end, and reports.
pub(crate) fn explain(
    snap: Arc<dyn ReadView>,
    coll: &str,
    filter: &BsonDocument,
    options: &FindOptions,
    closed: Arc<AtomicBool>,
) -> Result<BsonDocument> {
    let plan = Plan::compile(filter, options)?;
    let choice = choose_for(&*snap, coll, &plan)?;
    let winning = wrap(
        plan_stage(&choice.access, coll, filter, &plan.filter),
        &plan,
        &choice.access,
    );
    let rejected: Vec<Bson> = choice
        .rejected
        .iter()
        .map(|(c, n)| {
            let access = Access::Index(c.clone());
            let mut d = wrap(
                plan_stage(&access, coll, filter, &plan.filter),
                &plan,
                &access,
            );
            d.insert("keysEstimate", *n as i64);
            Bson::Document(d)
        })
        .collect();
    let started = std::time::Instant::now();
    let mut cursor =
        Cursor::with_access(snap, coll.to_owned(), plan, choice.access.clone(), closed);
    let mut returned = 0i64;
    while cursor.next_document()?.is_some() {
        returned += 1;
    }
    let stats = cursor.exec_stats();
    Ok(doc! {
        "queryPlanner": {
            "namespace": coll.to_owned(),
            "parsedQuery": filter.clone(),
            "indexFilterSet": false,
            "winningPlan": winning,
            "rejectedPlans": rejected,
        },
        "executionStats": {
            "executionSuccess": true,
            "nReturned": returned,
            "executionTimeMillis": i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
            "totalKeysExamined": stats.keys_examined as i64,
            "totalDocsExamined": stats.docs_examined as i64,
        },
    })
}
