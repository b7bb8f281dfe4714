//! `nexus_import` / `nexus_export` through the C ABI: JSON options in, a JSON report out
//! (freed with `nexus_free`), unknown option keys are `NEXUS_INVALID_ARGUMENT`, a bad row is
//! `NEXUS_PARSE` with the row in `nexus_errmsg`, and TTL options are `NEXUS_UNSUPPORTED`.

use crate::common;

use common::ffi::c;
use nexus::ffi::db::{nexus_close, nexus_db, nexus_open};
use nexus::ffi::io::{nexus_export, nexus_import};
use nexus::ffi::maintenance::nexus_free;
use nexus::ffi::status::*;
use std::ffi::{c_char, CStr};

fn errmsg() -> String {
    // SAFETY: never NULL; valid until the next call on this thread.
    unsafe { CStr::from_ptr(nexus_errmsg()) }
        .to_string_lossy()
        .into_owned()
}

/// Runs import or export; returns the code and the report (when one was written).
fn call(
    db: *mut nexus_db,
    export: bool,
    coll: &str,
    path: &str,
    opts: Option<&str>,
) -> (i32, Option<serde_json::Value>) {
    let (coll, path) = (c(coll), c(path));
    let opts = opts.map(c);
    let opts_ptr = opts.as_ref().map_or(std::ptr::null(), |o| o.as_ptr());
    let mut out: *mut c_char = std::ptr::null_mut();
    // SAFETY: live handle, NUL-terminated strings, writable out-pointer.
    let rc = unsafe {
        if export {
            nexus_export(db, coll.as_ptr(), path.as_ptr(), opts_ptr, &mut out)
        } else {
            nexus_import(db, coll.as_ptr(), path.as_ptr(), opts_ptr, &mut out)
        }
    };
    let report = (!out.is_null()).then(|| {
        // SAFETY: a NUL-terminated string owned by the library, freed right after.
        let v = serde_json::from_str(&unsafe { CStr::from_ptr(out) }.to_string_lossy()).unwrap();
        unsafe { nexus_free(out.cast()) };
        v
    });
    (rc, report)
}

#[test]
fn import_and_export_with_json_options_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let dbp = c(dir.path().join("f.db").to_str().unwrap());
    let open_opts = common::open_options_json().map(c);
    let open_opts_ptr = open_opts.as_ref().map_or(std::ptr::null(), |o| o.as_ptr());
    let mut db: *mut nexus_db = std::ptr::null_mut();
    // SAFETY: valid strings (or NULL options) and out-pointer.
    assert_eq!(
        unsafe { nexus_open(dbp.as_ptr(), open_opts_ptr, &mut db) },
        NEXUS_OK
    );
    let src = dir.path().join("in.csv");
    std::fs::write(&src, "a|b\n1|x\n2|y\n").unwrap();
    let src = src.to_str().unwrap();

    let (rc, rep) = call(
        db,
        false,
        "t",
        src,
        Some(r#"{"format":"csv","delimiter":"|","batch_size":1}"#),
    );
    assert_eq!(rc, NEXUS_OK, "{}", errmsg());
    let rep = rep.unwrap();
    assert_eq!(
        (
            rep["read"].as_u64(),
            rep["imported"].as_u64(),
            rep["failed"].as_u64()
        ),
        (Some(2), Some(2), Some(0))
    );
    assert_eq!(rep["batches"], 2);
    assert_eq!(rep["format"], "csv");

    let out = dir.path().join("out.json");
    let (rc, rep) = call(
        db,
        true,
        "t",
        out.to_str().unwrap(),
        Some(r#"{"filter":{"a":{"$gt":1}},"extended_json":"canonical"}"#),
    );
    assert_eq!(rc, NEXUS_OK, "{}", errmsg());
    assert_eq!(rep.unwrap()["exported"], 1);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with('[') && text.contains(r#""a":{"$numberInt":"2"}"#),
        "{text}"
    );

    let (rc, rep) = call(db, false, "t", src, Some(r#"{"bogus":1}"#));
    assert_eq!((rc, rep), (NEXUS_INVALID_ARGUMENT, None));
    assert!(errmsg().contains("unknown option 'bogus'"), "{}", errmsg());

    std::fs::write(dir.path().join("bad.ndjson"), "{\"a\":1}\n{oops}\n").unwrap();
    let (rc, _) = call(
        db,
        false,
        "t",
        dir.path().join("bad.ndjson").to_str().unwrap(),
        None,
    );
    assert_eq!(rc, NEXUS_PARSE);
    assert!(errmsg().contains("row 2 (line 2"), "{}", errmsg());

    let (rc, _) = call(db, false, "t", src, Some(r#"{"persistent":false}"#));
    assert_eq!(rc, NEXUS_INVALID_ARGUMENT);
    assert!(errmsg().contains("ttl_field"), "{}", errmsg());

    // NULL report pointer is allowed; NULL path is an invalid argument.
    let (coll, p) = (c("t2"), c(src));
    // SAFETY: valid arguments; a NULL out-pointer is documented as allowed.
    let rc = unsafe {
        nexus_import(
            db,
            coll.as_ptr(),
            p.as_ptr(),
            std::ptr::null(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, NEXUS_OK, "{}", errmsg());
    // SAFETY: as above, with a NULL path.
    let rc = unsafe {
        nexus_import(
            db,
            coll.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, NEXUS_INVALID_ARGUMENT);
    // SAFETY: the handle from nexus_open, closed once.
    assert_eq!(unsafe { nexus_close(db) }, NEXUS_OK);
}
