//! Keys and signatures against the `openssl` command line (installed by `make setup`): keys
//! NexusLite makes are keys OpenSSL reads, a signature NexusLite writes is one `openssl dgst
//! -sha256 -verify` accepts, and the other way round; through the C ABI as C callers use it.

use crate::common;

use common::ffi::{
    c, keygen, openssl, path_c, signed_import_refuses_a_change, take, CRYPTO, INVALID, OK,
};
use nexus::ffi::crypto::{
    nexus_public_key, nexus_sign, nexus_sign_file, nexus_verify, nexus_verify_file,
};
use std::path::Path;

/// `openssl dgst -sha256 -verify PUB -signature SIG FILE`.
fn openssl_verify(public: &Path, signature: &Path, file: &Path) -> std::process::Output {
    let arg = |p: &Path| p.to_str().unwrap().to_owned();
    let (public, signature, file) = (arg(public), arg(signature), arg(file));
    openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        &public,
        "-signature",
        &signature,
        &file,
    ])
}

#[test]
fn nexus_keys_and_signatures_are_what_openssl_reads_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keygen(None);
    let priv_file = dir.path().join("priv.pem");
    let pub_file = dir.path().join("pub.pem");
    std::fs::write(&priv_file, &private).unwrap();
    std::fs::write(&pub_file, &public).unwrap();
    // OpenSSL derives the same public key from NexusLite's private key.
    let derived = openssl(&["pkey", "-in", priv_file.to_str().unwrap(), "-pubout"]);
    assert!(derived.status.success(), "{derived:?}");
    assert_eq!(String::from_utf8(derived.stdout).unwrap(), public);

    // A file NexusLite signs verifies with openssl.
    let data_file = dir.path().join("export.ndjson");
    std::fs::write(&data_file, "{\"a\":1}\n{\"a\":2}\n").unwrap();
    // SAFETY: NUL-terminated strings.
    let rc = unsafe { nexus_sign_file(path_c(&data_file).as_ptr(), c(&private).as_ptr()) };
    assert_eq!(rc, OK);
    let sig_file = dir.path().join("export.ndjson.sig");
    let v = openssl_verify(&pub_file, &sig_file, &data_file);
    assert!(v.status.success(), "{v:?}");
    assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), "Verified OK");
    // SAFETY: NUL-terminated strings.
    let rc = unsafe { nexus_verify_file(path_c(&data_file).as_ptr(), c(&public).as_ptr()) };
    assert_eq!(rc, OK);
    // Changed data: both refuse it.
    std::fs::write(&data_file, "{\"a\":1}\n{\"a\":3}\n").unwrap();
    assert!(!openssl_verify(&pub_file, &sig_file, &data_file)
        .status
        .success());
    // SAFETY: as above.
    let rc = unsafe { nexus_verify_file(path_c(&data_file).as_ptr(), c(&public).as_ptr()) };
    assert_eq!(rc, CRYPTO);

    // nexus_sign's base64 is the DER openssl checks.
    let data = b"bytes in memory";
    let mut sig = std::ptr::null_mut();
    // SAFETY: `data` readable for its length; writable out-pointer.
    let rc = unsafe { nexus_sign(c(&private).as_ptr(), data.as_ptr(), data.len(), &mut sig) };
    assert_eq!(rc, OK);
    let sig = take(sig);
    let blob = dir.path().join("blob");
    std::fs::write(&blob, data).unwrap();
    let der = dir.path().join("blob.der");
    use base64::Engine as _;
    std::fs::write(
        &der,
        base64::engine::general_purpose::STANDARD
            .decode(&sig)
            .unwrap(),
    )
    .unwrap();
    let v = openssl_verify(&pub_file, &der, &blob);
    assert!(v.status.success(), "{v:?}");
    // SAFETY: as above.
    let rc = unsafe {
        nexus_verify(
            c(&public).as_ptr(),
            data.as_ptr(),
            data.len(),
            c(&sig).as_ptr(),
        )
    };
    assert_eq!(rc, OK);
    // SAFETY: as above.
    let rc = unsafe { nexus_verify(c(&public).as_ptr(), b"other".as_ptr(), 5, c(&sig).as_ptr()) };
    assert_eq!(rc, CRYPTO);
}

#[test]
fn openssl_keys_and_signatures_are_what_nexus_reads() {
    let dir = tempfile::tempdir().unwrap();
    let priv_file = dir.path().join("priv.pem");
    let pub_file = dir.path().join("pub.pem");
    let p = priv_file.to_str().unwrap();
    let g = openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        p,
    ]);
    assert!(g.status.success(), "{g:?}");
    let o = openssl(&[
        "pkey",
        "-in",
        p,
        "-pubout",
        "-out",
        pub_file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{o:?}");
    let private = std::fs::read_to_string(&priv_file).unwrap();
    let public = std::fs::read_to_string(&pub_file).unwrap();
    let mut derived = std::ptr::null_mut();
    // SAFETY: NUL-terminated key, writable out-pointer.
    assert_eq!(
        unsafe { nexus_public_key(c(&private).as_ptr(), &mut derived) },
        OK
    );
    assert_eq!(take(derived), public);
    // A file openssl signs verifies with NexusLite.
    let data_file = dir.path().join("backup.db");
    std::fs::write(&data_file, vec![7u8; 100_000]).unwrap();
    let sig_file = dir.path().join("backup.db.sig");
    let s = openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        p,
        "-out",
        sig_file.to_str().unwrap(),
        data_file.to_str().unwrap(),
    ]);
    assert!(s.status.success(), "{s:?}");
    // SAFETY: NUL-terminated strings.
    let rc = unsafe { nexus_verify_file(path_c(&data_file).as_ptr(), c(&public).as_ptr()) };
    assert_eq!(rc, OK);
    // A public key where a private one belongs, and a missing signature.
    let mut out = std::ptr::null_mut();
    // SAFETY: as above.
    assert_eq!(
        unsafe { nexus_public_key(c(&public).as_ptr(), &mut out) },
        INVALID
    );
    std::fs::remove_file(&sig_file).unwrap();
    // SAFETY: as above.
    let rc = unsafe { nexus_verify_file(path_c(&data_file).as_ptr(), c(&public).as_ptr()) };
    assert_eq!(rc, CRYPTO);
}

/// Export's `sign_key` writes `FILE.sig` that openssl verifies; import's `verify_key`
/// refuses a file whose signature is missing or does not match, inserting nothing.
#[test]
fn exports_are_signed_and_imports_check_the_signature_first() {
    use nexus::io::{ExportOptions, ImportOptions};
    use nexus::{Database, Document};
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keygen(None);
    let db = Database::open(dir.path().join("src.db"), Default::default()).unwrap();
    let c = db.collection("users");
    for i in 0..50 {
        c.insert(Document::from_json(&format!(r#"{{"_id": {i}, "name": "u{i}"}}"#)).unwrap())
            .unwrap();
    }
    let file = dir.path().join("users.ndjson");
    // A malformed key fails before anything is written.
    let bad = ExportOptions {
        sign_key: Some(nexus::crypto::PrivatePem::new(public.clone())),
        ..ExportOptions::default()
    };
    assert_eq!(c.export(&file, &bad).unwrap_err().code(), INVALID);
    assert!(!file.exists());
    let opts = ExportOptions {
        sign_key: Some(nexus::crypto::PrivatePem::new(private.clone())),
        ..ExportOptions::default()
    };
    assert!(
        !format!("{opts:?}").contains("PRIVATE"),
        "Debug hides the key"
    );
    c.export(&file, &opts).unwrap();
    let pub_file = dir.path().join("pub.pem");
    std::fs::write(&pub_file, &public).unwrap();
    let v = openssl_verify(&pub_file, &dir.path().join("users.ndjson.sig"), &file);
    assert!(v.status.success(), "{v:?}");

    let dst = Database::open(dir.path().join("dst.db"), Default::default()).unwrap();
    let into = dst.collection("users");
    // Changed after signing: refused, nothing inserted; as signed: imported.
    signed_import_refuses_a_change(&into, &file, &public, 50);
    let checked = ImportOptions {
        verify_key: Some(public.clone()),
        ..ImportOptions::default()
    };
    // No signature at all: refused.
    std::fs::remove_file(dir.path().join("users.ndjson.sig")).unwrap();
    let other = dst.collection("other");
    assert_eq!(other.import(&file, &checked).unwrap_err().code(), CRYPTO);
    assert_eq!(other.count(&Default::default()).unwrap(), 0);
}

/// `nexus_backup_with`'s `sign_key`: the copy is signed once complete (openssl verifies it);
/// a malformed key fails before anything is written; `encrypt_to` / `decrypt` are not built.
#[test]
fn backups_are_signed_with_backup_with() {
    use nexus::ffi::crypto::nexus_backup_with;
    use nexus::ffi::db::{nexus_close, nexus_db, nexus_open};
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keygen(None);
    let src = path_c(&dir.path().join("src.db"));
    let mut db: *mut nexus_db = std::ptr::null_mut();
    // SAFETY: valid strings and out-pointer.
    assert_eq!(
        unsafe { nexus_open(src.as_ptr(), std::ptr::null(), &mut db) },
        OK
    );
    let opts = |key: &str| c(&serde_json::json!({ "sign_key": key }).to_string());
    let dest = dir.path().join("copy.db");
    let dest_c = path_c(&dest);
    // A public key where the private one belongs: nothing written.
    let bad = opts(&public);
    // SAFETY: live handle, valid strings.
    assert_eq!(
        unsafe { nexus_backup_with(db, dest_c.as_ptr(), bad.as_ptr()) },
        INVALID
    );
    assert!(!dest.exists());
    for refused in [
        r#"{"encrypt_to": []}"#,
        r#"{"encrypt_to": "x"}"#,
        r#"{"encrypt_to": ["x"], "decrypt": true}"#,
    ] {
        let o = c(refused);
        // SAFETY: as above.
        assert_eq!(
            unsafe { nexus_backup_with(db, dest_c.as_ptr(), o.as_ptr()) },
            INVALID,
            "{refused}"
        );
        assert!(!dest.exists());
    }
    let unknown = c(r#"{"sign": "x"}"#);
    // SAFETY: as above.
    assert_eq!(
        unsafe { nexus_backup_with(db, dest_c.as_ptr(), unknown.as_ptr()) },
        INVALID
    );
    let good = opts(&private);
    // SAFETY: as above.
    assert_eq!(
        unsafe { nexus_backup_with(db, dest_c.as_ptr(), good.as_ptr()) },
        OK
    );
    // SAFETY: live handle, closed once.
    assert_eq!(unsafe { nexus_close(db) }, OK);
    let pub_file = dir.path().join("pub.pem");
    std::fs::write(&pub_file, &public).unwrap();
    let v = openssl_verify(&pub_file, &dir.path().join("copy.db.sig"), &dest);
    assert!(v.status.success(), "{v:?}");
    let pub_c = c(&public);
    // SAFETY: valid strings.
    assert_eq!(
        unsafe { nexus_verify_file(dest_c.as_ptr(), pub_c.as_ptr()) },
        OK
    );
}
