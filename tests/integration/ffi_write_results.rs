//! The CRUD write calls through the C ABI: the result JSON is optional (`out_result_json`
//! may be NULL), a batch that fails part-way returns the first failure's status and still
//! writes its result, NULL arguments are `NEXUS_INVALID_ARGUMENT`, and a call refused before
//! it runs leaves the out-pointer untouched.

use nexus::ffi::db::{nexus_close, nexus_db, nexus_open};
use nexus::ffi::maintenance::nexus_free;
use nexus::ffi::status::*;
use nexus::ffi::writes::{
    nexus_bulk_write, nexus_insert_many_with, nexus_replace_one, nexus_update_many,
    nexus_update_one,
};
use std::ffi::{c_char, CStr, CString};

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn errmsg() -> String {
    // SAFETY: never NULL; valid until the next call on this thread.
    unsafe { CStr::from_ptr(nexus_errmsg()) }
        .to_string_lossy()
        .into_owned()
}

/// Takes a library-owned result string.
fn take(out: *mut c_char) -> Option<serde_json::Value> {
    if out.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string the library allocated.
    let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_owned();
    // SAFETY: allocated by the library, freed once.
    unsafe { nexus_free(out.cast()) };
    Some(serde_json::from_str(&text).unwrap())
}

fn open() -> *mut nexus_db {
    let mut db: *mut nexus_db = std::ptr::null_mut();
    // SAFETY: NULL path opens in memory; writable out-pointer.
    assert_eq!(
        unsafe { nexus_open(std::ptr::null(), std::ptr::null(), &mut db) },
        NEXUS_OK
    );
    db
}

#[test]
fn partial_failures_return_the_first_status_and_the_result() {
    let db = open();
    let coll = c("c");
    let mut out: *mut c_char = std::ptr::null_mut();
    let docs = c(r#"[{"_id": 1}, {"_id": 1}, {"_id": 2}, {"_id": [0]}]"#);
    let unordered = c(r#"{"ordered": false}"#);
    // SAFETY (all calls below): live handle, NUL-terminated strings, writable out-pointers.
    let rc = unsafe {
        nexus_insert_many_with(
            db,
            coll.as_ptr(),
            docs.as_ptr(),
            unordered.as_ptr(),
            &mut out,
        )
    };
    assert_eq!(rc, NEXUS_DUPLICATE_KEY, "the first failure's status");
    assert!(errmsg().contains("duplicate key"), "{}", errmsg());
    let r = take(out).expect("the result is written on a partial failure");
    assert_eq!(r["insertedCount"], 2);
    assert_eq!(r["writeErrors"][0]["code"], 11000);
    assert_eq!(r["writeErrors"][1]["index"], 3);
    assert_eq!(r["writeErrors"][1]["code"], 2);

    // A NULL out_result_json drops the result; the status is the same.
    let more = c(r#"[{"_id": 3}, {"_id": 3}]"#);
    let rc = unsafe {
        nexus_insert_many_with(
            db,
            coll.as_ptr(),
            more.as_ptr(),
            std::ptr::null(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, NEXUS_DUPLICATE_KEY);
    let ops = c(
        r#"[{"updateOne": {"filter": {"_id": 3}, "update": {"$bogus": {"a": 1}}}},
                    {"deleteOne": {"filter": {"_id": 1}}}]"#,
    );
    out = std::ptr::null_mut();
    let rc = unsafe {
        nexus_bulk_write(
            db,
            coll.as_ptr(),
            ops.as_ptr(),
            unordered.as_ptr(),
            &mut out,
        )
    };
    assert_eq!(rc, NEXUS_PARSE);
    assert!(
        errmsg().contains("Unknown modifier: $bogus"),
        "{}",
        errmsg()
    );
    let r = take(out).unwrap();
    assert_eq!(r["deletedCount"], 1);
    assert_eq!(r["writeErrors"][0]["code"], 9);
    // SAFETY: live handle, closed once.
    assert_eq!(unsafe { nexus_close(db) }, NEXUS_OK);
}

#[test]
fn updates_report_results_and_refuse_bad_arguments() {
    let db = open();
    let coll = c("c");
    let filter = c(r#"{"_id": 7}"#);
    let set = c(r#"{"$set": {"a": 1}}"#);
    let upsert = c(r#"{"upsert": true}"#);
    let mut out: *mut c_char = std::ptr::null_mut();
    // SAFETY (all calls below): live handle, NUL-terminated strings or NULL, writable
    // out-pointers or NULL.
    let rc = unsafe {
        nexus_update_one(
            db,
            coll.as_ptr(),
            filter.as_ptr(),
            set.as_ptr(),
            upsert.as_ptr(),
            &mut out,
        )
    };
    assert_eq!(rc, NEXUS_OK, "{}", errmsg());
    assert_eq!(
        take(out).unwrap(),
        serde_json::json!({"matchedCount": 0, "modifiedCount": 0, "upsertedCount": 1, "upsertedId": 7})
    );
    let rc = unsafe {
        nexus_update_many(
            db,
            coll.as_ptr(),
            std::ptr::null(),
            set.as_ptr(),
            std::ptr::null(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, NEXUS_OK, "NULL filter and options, result dropped");
    // Refused before anything runs: the out-pointer is left alone.
    out = std::ptr::null_mut();
    let replacement = c(r#"{"a": 2}"#);
    let rc = unsafe {
        nexus_update_one(
            db,
            coll.as_ptr(),
            filter.as_ptr(),
            replacement.as_ptr(),
            std::ptr::null(),
            &mut out,
        )
    };
    assert_eq!(rc, NEXUS_INVALID_ARGUMENT);
    assert_eq!(errmsg(), "update document requires atomic operators");
    assert!(out.is_null());
    let rc = unsafe {
        nexus_replace_one(
            db,
            coll.as_ptr(),
            filter.as_ptr(),
            set.as_ptr(),
            std::ptr::null(),
            &mut out,
        )
    };
    assert_eq!(rc, NEXUS_INVALID_ARGUMENT);
    assert_eq!(
        errmsg(),
        "replacement document must not contain atomic operators"
    );
    assert!(out.is_null());
    let rc = unsafe {
        nexus_update_one(
            db,
            coll.as_ptr(),
            filter.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            &mut out,
        )
    };
    assert_eq!(rc, NEXUS_INVALID_ARGUMENT);
    assert!(errmsg().contains("update_json is NULL"), "{}", errmsg());
    // A pipeline with a stage an update may not use: refused before anything is written.
    let pipeline = c(r#"[{"$set": {"a": 3}}, {"$sort": {"a": 1}}]"#);
    let rc = unsafe {
        nexus_update_one(
            db,
            coll.as_ptr(),
            filter.as_ptr(),
            pipeline.as_ptr(),
            std::ptr::null(),
            &mut out,
        )
    };
    assert_eq!(rc, NEXUS_PARSE);
    assert!(
        errmsg().contains("$sort is not allowed to be used within an update"),
        "{}",
        errmsg()
    );
    assert!(out.is_null());
    let rc = unsafe {
        nexus_update_one(
            std::ptr::null_mut(),
            coll.as_ptr(),
            filter.as_ptr(),
            set.as_ptr(),
            std::ptr::null(),
            &mut out,
        )
    };
    assert_eq!(rc, NEXUS_INVALID_ARGUMENT);
    assert!(out.is_null());
    // SAFETY: live handle, closed once.
    assert_eq!(unsafe { nexus_close(db) }, NEXUS_OK);
}
