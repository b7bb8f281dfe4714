//! TTL indexes: rounds that delete the documents whose indexed date is older than the
//! index's `expireAfterSeconds`, run by the engine's sweeper. A round is a range scan of
//! the index (`{field: {$lte: cutoff}}`), hence here with the rest of execution.

use super::ixscan::{ExecStats, IndexScan};
use super::plan;
use crate::document::record;
use crate::error::Result;
use crate::index::all_defs;
use crate::query::filter::Filter;
use crate::storage::{ReadView, WriteTxn};

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
        let mut scan = IndexScan::new(&access);
        let mut stats = ExecStats::default();
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
