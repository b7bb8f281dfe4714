//! Raw BSON through the C ABI's `nexus_insert_bson`: any bytes give a status code, never a
//! crash or a caught panic (NEXUS_INTERNAL); a document it accepts reads back by its id.
//! Inserts run in a transaction rolled back after each input, so the database stays small.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nexus::ffi::db::{nexus_db, nexus_open};
use nexus::ffi::document::{nexus_get, nexus_insert_bson};
use nexus::ffi::maintenance::nexus_free;
use nexus::ffi::status::{nexus_errmsg, NEXUS_INTERNAL, NEXUS_OK};
use nexus::ffi::txn::{nexus_begin, nexus_rollback};
use std::ffi::{c_char, CStr};
use std::sync::OnceLock;

struct Db(*mut nexus_db);
// The handle is used by the fuzzing thread only.
unsafe impl Send for Db {}
unsafe impl Sync for Db {}

fn db() -> *mut nexus_db {
    static DB: OnceLock<Db> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = std::ptr::null_mut();
        let rc = unsafe { nexus_open(c":memory:".as_ptr(), std::ptr::null(), &mut db) };
        assert_eq!(rc, NEXUS_OK);
        Db(db)
    })
    .0
}

fn errmsg() -> String {
    unsafe { CStr::from_ptr(nexus_errmsg()) }
        .to_string_lossy()
        .into_owned()
}

fuzz_target!(|data: &[u8]| {
    let db = db();
    assert_eq!(unsafe { nexus_begin(db) }, NEXUS_OK);
    let mut id: *mut c_char = std::ptr::null_mut();
    let rc = unsafe { nexus_insert_bson(db, c"c".as_ptr(), data.as_ptr(), data.len(), &mut id) };
    assert_ne!(rc, NEXUS_INTERNAL, "nexus_insert_bson: {}", errmsg());
    if rc == NEXUS_OK {
        assert!(!id.is_null());
        let mut json: *mut c_char = std::ptr::null_mut();
        let rc = unsafe { nexus_get(db, c"c".as_ptr(), id, &mut json) };
        assert_eq!(
            rc,
            NEXUS_OK,
            "the inserted document reads back: {}",
            errmsg()
        );
        unsafe {
            nexus_free(json.cast());
            nexus_free(id.cast());
        }
    }
    assert_eq!(unsafe { nexus_rollback(db) }, NEXUS_OK);
});
