//! Updates: line 1 the filter, line 2 the update (operators, a replacement or a pipeline),
//! line 3 the update options (upsert, arrayFilters). Run with update_many, update_one and
//! find_one_and_update in a transaction rolled back after each input; any error is fine.
#![no_main]
#[path = "common/mod.rs"]
mod common;
use libfuzzer_sys::fuzz_target;
use nexus::{Document, FindOneAndOptions, ModifyOptions, UpdateModifications};

/// The update as the library's reader gives it: a document or an array of stages.
fn modifications(text: &str) -> Option<UpdateModifications> {
    let wrapped = Document::from_json(&format!("{{\"u\": {text}\n}}")).ok()?;
    match wrapped.into_bson().remove("u")? {
        bson::Bson::Document(d) => Some(UpdateModifications::Document(d)),
        bson::Bson::Array(items) => items
            .into_iter()
            .map(|s| match s {
                bson::Bson::Document(d) => Some(d),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(UpdateModifications::Pipeline),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some([filter, update, options]) = common::lines::<3>(data) else {
        return;
    };
    let (Some(f), Some(u)) = (common::doc(filter), modifications(update)) else {
        return;
    };
    let db = common::db();
    let c = db.collection(common::COLL);
    let opts = ModifyOptions::from_json(Some(options)).unwrap_or_default();
    db.begin().expect("begin");
    let _ = c.update_many(&f, clone(&u), opts.clone());
    let _ = c.update_one(&f, clone(&u), opts);
    if let (UpdateModifications::Document(d), Ok(fo)) =
        (&u, FindOneAndOptions::from_json(Some(options)))
    {
        let _ = c.find_one_and_update_with(&f, d, fo);
    }
    // Every document still reads after the updates.
    for d in c
        .find(&bson::Document::new(), Default::default())
        .expect("scan")
    {
        d.expect("a document after the update reads");
    }
    db.rollback().expect("rollback");
});

fn clone(u: &UpdateModifications) -> UpdateModifications {
    match u {
        UpdateModifications::Document(d) => UpdateModifications::Document(d.clone()),
        UpdateModifications::Pipeline(p) => UpdateModifications::Pipeline(p.clone()),
    }
}
