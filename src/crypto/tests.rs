use super::*;
use crate::io::sign_file;

fn err_code(r: Result<impl std::fmt::Debug>) -> i32 {
    r.expect_err("an error").code()
}

#[test]
fn signatures_verify_and_every_wrong_input_is_refused() {
    let (private, public) = keygen(None).unwrap();
    assert!(
        private.starts_with("-----BEGIN PRIVATE KEY-----"),
        "{}",
        &private[..30]
    );
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
    assert_eq!(public_key(&private).unwrap(), public);
    let data = b"the bytes that are signed";
    let sig = sign_base64(&private, data).unwrap();
    verify_base64(&public, data, &sig).unwrap();
    // ECDSA signatures are randomized (or at least not required to repeat); both verify.
    verify_base64(&public, data, &sign_base64(&private, data).unwrap()).unwrap();
    let crypto = crate::error::code::NEXUS_CRYPTO;
    let invalid = crate::error::code::NEXUS_INVALID_ARGUMENT;
    assert_eq!(
        err_code(verify_base64(&public, b"other bytes", &sig)),
        crypto
    );
    let (_, other_public) = keygen(Some("p256")).unwrap();
    assert_eq!(err_code(verify_base64(&other_public, data, &sig)), crypto);
    assert_eq!(
        err_code(verify_base64(&public, data, "not base64 !")),
        crypto
    );
    assert_eq!(err_code(verify_base64(&public, data, "AAAA")), crypto);
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(&sig)
        .unwrap();
    let last = der.len() - 1;
    der[last] ^= 1;
    assert_eq!(err_code(verify(&public, data, &der)), crypto);
    // Keys of the wrong kind or shape: a clear argument error, no key material in it.
    assert_eq!(err_code(sign(&public, data)), invalid);
    let msg = sign(&public, data).unwrap_err().to_string();
    assert!(msg.contains("this is a public key"), "{msg}");
    assert_eq!(err_code(verify(&private, data, &der)), invalid);
    assert_eq!(
        err_code(public_key(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
        )),
        invalid
    );
    let msg = public_key("garbage").unwrap_err().to_string();
    assert!(!msg.contains(private.as_str()), "{msg}");
    assert_eq!(
        err_code(keygen(Some("ml-kem-768"))),
        crate::error::code::NEXUS_UNSUPPORTED
    );
    assert_eq!(err_code(keygen(Some("rsa"))), invalid);
}

#[test]
fn files_are_signed_beside_themselves_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.ndjson");
    // Larger than the read block, so the digest is fed in several parts.
    let body: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &body).unwrap();
    let (private, public) = keygen(None).unwrap();
    let crypto = crate::error::code::NEXUS_CRYPTO;
    assert_eq!(
        err_code(verify_file(&path, &public)),
        crypto,
        "no signature yet"
    );
    sign_file(&path, &private).unwrap();
    let sig = std::fs::read(signature_path(&path)).unwrap();
    verify(&public, &body, &sig).unwrap();
    verify_file(&path, &public).unwrap();
    // Signing again replaces the signature.
    sign_file(&path, &private).unwrap();
    verify_file(&path, &public).unwrap();
    let (_, other) = keygen(None).unwrap();
    assert_eq!(err_code(verify_file(&path, &other)), crypto);
    let mut changed = body.clone();
    changed[123_456] ^= 0x40;
    std::fs::write(&path, &changed).unwrap();
    let e = verify_file(&path, &public).unwrap_err();
    assert_eq!(e.code(), crypto);
    assert!(e.to_string().contains("export.ndjson"), "{e}");
    // A missing file is an I/O error, not a bad signature.
    let missing = dir.path().join("nope");
    assert_eq!(
        err_code(sign_file(&missing, &private)),
        crate::error::code::NEXUS_IO
    );
    // No temporary is left beside the signature.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}
