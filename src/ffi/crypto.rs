//! Key pairs and signatures (`crate::crypto`): `nexus_keygen`, `nexus_public_key`,
//! `nexus_sign`, `nexus_verify`, `nexus_sign_file`, `nexus_verify_file`; and the encryption
//! recipients of an encrypted database (`nexus_add_key`, `nexus_remove_key`); signed backups
//! (`nexus_backup_with`: `sign_key`, `encrypt_to`, `decrypt`), `nexus_rekey`.

use super::db::nexus_db;
use super::handle::{alloc_string, handle_ref, opt_str_arg, out_arg, str_arg};
use super::panic::ffi_boundary;
use super::status::NEXUS_OK;
use crate::crypto;
use crate::error::Error;
use crate::options::OptionReader;
use std::ffi::{c_char, c_int};
use std::path::Path;

/// The bytes `data`/`len` (NULL with `len` 0 is the empty input).
///
/// # Safety
/// `data` NULL or readable for `len` bytes.
unsafe fn data_arg<'a>(data: *const u8, len: usize) -> Result<&'a [u8], Error> {
    if data.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Error::invalid("data is NULL but len is not 0"))
        };
    }
    // SAFETY: non-NULL and readable for `len` bytes per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// Makes a key pair of `algorithm` (NULL or `"p256"`): `*out_private_pem` the private key as
/// PKCS#8 PEM (`BEGIN PRIVATE KEY`), `*out_public_pem` the public key as SPKI PEM (`BEGIN
/// PUBLIC KEY`), both as OpenSSL reads them. Free both with `nexus_free` (which wipes them).
///
/// A library built with the cargo feature `pqc` also makes `"ml-dsa-65"`,
/// `"slh-dsa-sha2-128s"`, `"slh-dsa-sha2-192s"`, `"slh-dsa-sha2-256s"` signature keys (PKCS#8 /
/// SPKI with the NIST OIDs, as OpenSSL 3.5 reads them) and `"ml-kem-512"`, `"ml-kem-768"`,
/// `"ml-kem-1024"` hybrid P-256 + ML-KEM encryption keys (PEM `BEGIN NEXUSLITE HYBRID PRIVATE
/// KEY` / `PUBLIC KEY`, docs/FORMAT.md).
///
/// Errors: `NEXUS_INVALID_ARGUMENT` (unknown algorithm, NULL out-pointer),
/// `NEXUS_UNSUPPORTED` (a post-quantum algorithm in a library built without `pqc`).
///
/// # Safety
/// `algorithm` NULL or NUL-terminated; the out-pointers writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_keygen(
    algorithm: *const c_char,
    out_private_pem: *mut *mut c_char,
    out_public_pem: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        out_arg(out_private_pem, "out_private_pem")?;
        out_arg(out_public_pem, "out_public_pem")?;
        // SAFETY: caller contract.
        let algorithm = unsafe { opt_str_arg(algorithm, "algorithm") }?;
        let (private, public) = crypto::keygen(algorithm)?;
        let public = alloc_string(&public)?;
        let private = match alloc_string(&private) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: allocated just above and not handed out.
                unsafe { super::handle::free_bytes(public.cast()) };
                return Err(e);
            }
        };
        // SAFETY: both checked non-NULL; writable per the caller's contract.
        unsafe {
            out_private_pem.write(private);
            out_public_pem.write(public);
        }
        Ok(NEXUS_OK)
    })
}

/// Writes the public key (PEM) of `private_pem` to `*out_public_pem` (free with
/// `nexus_free`): SPKI for a P-256 / ML-DSA / SLH-DSA key, `BEGIN NEXUSLITE HYBRID PUBLIC KEY`
/// for a hybrid one.
///
/// Errors: `NEXUS_INVALID_ARGUMENT` (not a private key this build knows; the message says
/// what it is instead, never the key).
///
/// # Safety
/// `private_pem` NUL-terminated; `out_public_pem` writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_public_key(
    private_pem: *const c_char,
    out_public_pem: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        out_arg(out_public_pem, "out_public_pem")?;
        // SAFETY: caller contract.
        let private = unsafe { str_arg(private_pem, "private_pem") }?;
        let public = alloc_string(&crypto::public_key(private)?)?;
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe { out_public_pem.write(public) };
        Ok(NEXUS_OK)
    })
}

/// Signs the `len` bytes at `data` with `private_pem` and writes the signature,
/// base64-encoded, to `*out_signature_b64` (free with `nexus_free`). A P-256 key signs with
/// ECDSA-SHA256 and the signature is DER, the bytes `openssl dgst -sha256 -sign` writes; an
/// ML-DSA-65 or SLH-DSA key (feature `pqc`) makes the raw FIPS 204 / 205 signature of the
/// pure algorithm with an empty context, what `openssl pkeyutl -sign -rawin` writes.
///
/// Errors: `NEXUS_INVALID_ARGUMENT` (malformed key, a hybrid ML-KEM key, which does not
/// sign, NULL data with a length).
///
/// # Safety
/// `private_pem` NUL-terminated; `data` readable for `len` bytes (or NULL with `len` 0);
/// `out_signature_b64` writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_sign(
    private_pem: *const c_char,
    data: *const u8,
    len: usize,
    out_signature_b64: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        out_arg(out_signature_b64, "out_signature_b64")?;
        // SAFETY: caller contract (both lines).
        let private = unsafe { str_arg(private_pem, "private_pem") }?;
        let data = unsafe { data_arg(data, len) }?;
        let sig = alloc_string(&crypto::sign_base64(private, data)?)?;
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe { out_signature_b64.write(sig) };
        Ok(NEXUS_OK)
    })
}

/// Checks the base64 signature `signature_b64` of the `len` bytes at `data` against
/// `public_pem` (its algorithm read from the PEM; the signature in `nexus_sign`'s form):
/// `NEXUS_OK` when it matches.
///
/// Errors: `NEXUS_CRYPTO` (the signature does not match the data and key, or is not a
/// signature at all), `NEXUS_INVALID_ARGUMENT` (malformed key).
///
/// # Safety
/// Strings NUL-terminated; `data` readable for `len` bytes (or NULL with `len` 0).
#[no_mangle]
pub unsafe extern "C" fn nexus_verify(
    public_pem: *const c_char,
    data: *const u8,
    len: usize,
    signature_b64: *const c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all three lines).
        let public = unsafe { str_arg(public_pem, "public_pem") }?;
        let data = unsafe { data_arg(data, len) }?;
        let sig = unsafe { str_arg(signature_b64, "signature_b64") }?;
        crypto::verify_base64(public, data, sig)?;
        Ok(NEXUS_OK)
    })
}

/// Signs the file at `path` with `private_pem` and writes the signature to `PATH.sig`
/// (replacing it atomically). For a P-256 key it is DER, so that `openssl dgst -sha256
/// -verify pub.pem -signature PATH.sig PATH` verifies it, and the file is read in blocks; for
/// an ML-DSA / SLH-DSA key (feature `pqc`) it is the raw signature of the file's bytes
/// (`openssl pkeyutl -verify -rawin`), and the file is read into memory whole.
///
/// Errors: `NEXUS_INVALID_ARGUMENT` (malformed key), `NEXUS_IO` (the file cannot be read or
/// the signature written).
///
/// # Safety
/// Strings NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nexus_sign_file(path: *const c_char, private_pem: *const c_char) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (both lines).
        let path = unsafe { str_arg(path, "path") }?;
        let private = unsafe { str_arg(private_pem, "private_pem") }?;
        crate::io::sign_file(Path::new(path), private)?;
        Ok(NEXUS_OK)
    })
}

/// Checks `PATH.sig` against the file at `path` and `public_pem`.
///
/// Errors: `NEXUS_CRYPTO` (no `PATH.sig`, or it does not match the file and key),
/// `NEXUS_INVALID_ARGUMENT` (malformed key), `NEXUS_IO` (the file cannot be read).
///
/// # Safety
/// Strings NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nexus_verify_file(
    path: *const c_char,
    public_pem: *const c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (both lines).
        let path = unsafe { str_arg(path, "path") }?;
        let public = unsafe { str_arg(public_pem, "public_pem") }?;
        crypto::verify_file(Path::new(path), public)?;
        Ok(NEXUS_OK)
    })
}

/// Adds a recipient to an encrypted database: the holder of the private key of `public_pem`
/// (SPKI PEM, P-256) can open it from now on. Only the key slots are rewritten, crash-safely;
/// a key the database has already changes nothing.
///
/// Errors: `NEXUS_INVALID_ARGUMENT` (a plain database, a malformed key, no room for another
/// slot), `NEXUS_BUSY`, `NEXUS_READONLY` (a `read_only` connection), `NEXUS_TXN` (inside a
/// transaction of this connection).
///
/// # Safety
/// `db` a live handle or NULL; `public_pem` NUL-terminated or NULL.
#[no_mangle]
pub unsafe extern "C" fn nexus_add_key(db: *mut nexus_db, public_pem: *const c_char) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_ref(db, "db") }?;
        let public = unsafe { str_arg(public_pem, "public_pem") }?;
        h.db.add_key(public)?;
        Ok(NEXUS_OK)
    })
}

/// Removes a recipient of an encrypted database; refused for its last key. The data key is
/// unchanged (`nexus_rekey` replaces it).
///
/// Errors: `NEXUS_INVALID_ARGUMENT` (a plain database, a key that is not a recipient, the
/// last key), `NEXUS_BUSY`, `NEXUS_READONLY` (a `read_only` connection), `NEXUS_TXN`
/// (inside a transaction of this connection).
///
/// # Safety
/// `db` a live handle or NULL; `public_pem` NUL-terminated or NULL.
#[no_mangle]
pub unsafe extern "C" fn nexus_remove_key(db: *mut nexus_db, public_pem: *const c_char) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_ref(db, "db") }?;
        let public = unsafe { str_arg(public_pem, "public_pem") }?;
        h.db.remove_key(public)?;
        Ok(NEXUS_OK)
    })
}

/// Changes the data key of an encrypted database: every page is rewritten under a new
/// random data key and every recipient's key slot rewrapped (the recipients stay the same).
/// Crash-safe: a rekey that dies is rolled back at the next open, the file as it was under
/// its old key. It needs the database to this process alone (other processes: `NEXUS_BUSY`
/// after `busy_timeout_ms`); this process's other connections read on meanwhile.
///
/// Errors: `NEXUS_INVALID_ARGUMENT` (a plain database), `NEXUS_BUSY`, `NEXUS_READONLY` (a
/// `read_only` connection), `NEXUS_TXN` (inside a transaction of this connection),
/// `NEXUS_CORRUPT` (a page in use fails its check; the key is unchanged), `NEXUS_IO`.
///
/// # Safety
/// `db` a live handle or NULL.
#[no_mangle]
pub unsafe extern "C" fn nexus_rekey(db: *mut nexus_db) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_ref(db, "db") }?;
        h.db.rekey()?;
        Ok(NEXUS_OK)
    })
}

/// `nexus_backup` with options: `encrypt_to` (an array of public key PEMs: the copy is
/// encrypted to them under a fresh data key, whether the database is encrypted or not),
/// `decrypt` (true: a plain copy), `sign_key` (a private key PEM: `DEST.sig` is written once
/// the copy is complete, the key checked before anything is written). Without `encrypt_to`
/// or `decrypt`, a backup of an encrypted database is encrypted under the same keys (as
/// `nexus_backup`'s is). Every copy is one self-contained, checkpointed file, complete or
/// absent.
///
/// Errors: those of `nexus_backup`; `NEXUS_INVALID_ARGUMENT` for an unknown option, a
/// malformed or empty `encrypt_to`, `encrypt_to` with `decrypt`, a malformed key;
/// `NEXUS_UNSUPPORTED` for `encrypt_to` / `decrypt` on a database not on the wasp engine.
///
/// # Safety
/// `db` a live handle or NULL; strings NUL-terminated or NULL.
#[no_mangle]
pub unsafe extern "C" fn nexus_backup_with(
    db: *mut nexus_db,
    dest_path: *const c_char,
    options_json: *const c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all three lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let dest = unsafe { str_arg(dest_path, "dest_path") }?;
        let options = unsafe { opt_str_arg(options_json, "options_json") }?;
        let mut r = OptionReader::parse(options, "backup options")?;
        let sign_key = r.string("sign_key")?.map(crypto::PrivatePem::new);
        let encrypt_to = r.take("encrypt_to");
        let decrypt = r.bool("decrypt")?.unwrap_or(false);
        r.finish()?;
        let encrypt_to = match encrypt_to {
            None => None,
            Some(serde_json::Value::Array(keys)) => Some(
                keys.into_iter()
                    .map(|k| match k {
                        serde_json::Value::String(s) => Ok(s),
                        _ => Err(Error::invalid(
                            "backup option 'encrypt_to' must be an array of public key PEM strings",
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => {
                return Err(Error::invalid(
                    "backup option 'encrypt_to' must be an array of public key PEM strings",
                ))
            }
        };
        if encrypt_to.is_some() && decrypt {
            return Err(Error::invalid(
                "backup options 'encrypt_to' and 'decrypt' exclude each other (an encrypted copy, or a plain one)",
            ));
        }
        if let Some(k) = &sign_key {
            k.check()?;
        }
        let dest = Path::new(dest);
        match &encrypt_to {
            Some(keys) => h.db.backup_encrypted(dest, keys)?,
            None if decrypt => h.db.backup_decrypted(dest)?,
            None => h.db.backup(dest)?,
        }
        if let Some(k) = &sign_key {
            crate::io::sign_file(dest, k.as_str())?;
        }
        Ok(NEXUS_OK)
    })
}
