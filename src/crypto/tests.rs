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
    #[cfg(not(feature = "pqc"))]
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

/// A post-quantum signature algorithm through the same functions as P-256. `thorough` adds
/// the checks that sign again (SLH-DSA signs slowly in the unoptimized test build).
#[cfg(feature = "pqc")]
fn post_quantum_signatures(alg: &str, sig_len: usize, thorough: bool) {
    let crypto = crate::error::code::NEXUS_CRYPTO;
    let invalid = crate::error::code::NEXUS_INVALID_ARGUMENT;
    let (private, public) = keygen(Some(alg)).unwrap();
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"), "{alg}");
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{alg}");
    assert_eq!(public_key(&private).unwrap(), public, "{alg}");
    let data = b"the bytes that are signed";
    let sig = sign(&private, data).unwrap();
    assert_eq!(sig.len(), sig_len, "{alg}");
    verify(&public, data, &sig).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&sig);
    verify_base64(&public, data, &b64).unwrap();
    assert_eq!(
        err_code(verify(&public, b"other bytes", &sig)),
        crypto,
        "{alg}"
    );
    let mut bad = sig.clone();
    bad[sig_len / 2] ^= 1;
    assert_eq!(err_code(verify(&public, data, &bad)), crypto, "{alg}");
    assert_eq!(err_code(verify(&public, data, &sig[1..])), crypto, "{alg}");
    // A P-256 signature under a post-quantum key and the other way round.
    let (p_private, p_public) = keygen(None).unwrap();
    let p_sig = sign(&p_private, data).unwrap();
    assert_eq!(err_code(verify(&public, data, &p_sig)), crypto, "{alg}");
    assert_eq!(err_code(verify(&p_public, data, &sig)), crypto, "{alg}");
    // Keys in the wrong place.
    assert_eq!(err_code(sign(&public, data)), invalid, "{alg}");
    assert_eq!(err_code(verify(&private, data, &sig)), invalid, "{alg}");
    if !thorough {
        return;
    }
    // Hedged: another signature of the same data differs, and verifies.
    let sig2 = sign_base64(&private, data).unwrap();
    assert_ne!(b64, sig2);
    verify_base64(&public, data, &sig2).unwrap();
    let (_, other_public) = keygen(Some(alg)).unwrap();
    assert_eq!(err_code(verify(&other_public, data, &sig)), crypto, "{alg}");
    // Files: PATH.sig is the raw signature of the file's bytes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.ndjson");
    std::fs::write(&path, b"{\"a\": 1}\n").unwrap();
    sign_file(&path, &private).unwrap();
    let file_sig = std::fs::read(signature_path(&path)).unwrap();
    assert_eq!(file_sig.len(), sig_len);
    verify(&public, b"{\"a\": 1}\n", &file_sig).unwrap();
    verify_file(&path, &public).unwrap();
    assert_eq!(err_code(verify_file(&path, &other_public)), crypto);
    std::fs::write(&path, b"{\"a\": 2}\n").unwrap();
    assert_eq!(err_code(verify_file(&path, &public)), crypto);
}

#[cfg(feature = "pqc")]
#[test]
fn ml_dsa_65_signatures() {
    post_quantum_signatures("ml-dsa-65", 3309, true);
}

#[cfg(feature = "pqc")]
#[test]
fn slh_dsa_sha2_128s_signatures() {
    post_quantum_signatures("slh-dsa-sha2-128s", 7856, true);
}

#[cfg(feature = "pqc")]
#[test]
fn slh_dsa_sha2_192s_signatures() {
    post_quantum_signatures("slh-dsa-sha2-192s", 16224, false);
}

#[cfg(feature = "pqc")]
#[test]
fn slh_dsa_sha2_256s_signatures() {
    post_quantum_signatures("slh-dsa-sha2-256s", 29792, false);
}

/// Hybrid keys encrypt; they neither sign nor verify.
#[cfg(feature = "pqc")]
#[test]
fn hybrid_keys_do_not_sign() {
    let invalid = crate::error::code::NEXUS_INVALID_ARGUMENT;
    let (h_private, h_public) = keygen(Some("ml-kem-512")).unwrap();
    assert!(h_private.starts_with("-----BEGIN NEXUSLITE HYBRID PRIVATE KEY-----"));
    assert!(h_public.starts_with("-----BEGIN NEXUSLITE HYBRID PUBLIC KEY-----"));
    assert_eq!(public_key(&h_private).unwrap(), h_public);
    let msg = sign(&h_private, b"x").unwrap_err().to_string();
    assert!(msg.contains("does not sign"), "{msg}");
    assert_eq!(err_code(verify(&h_public, b"x", b"sig")), invalid);
    assert_eq!(err_code(keygen(Some("ml-kem-2048"))), invalid);
}

/// The PKCS#8 forms of an ML-DSA private key other than seed-only: `both` is read (and its
/// halves checked against each other), expanded-only is refused with a message saying so.
#[cfg(feature = "pqc")]
#[test]
fn ml_dsa_private_key_forms() {
    use p256::pkcs8::der::{self, Encode};
    let (private, public) = keygen(Some("ml-dsa-65")).unwrap();
    let (_, der_bytes) = der::pem::decode_vec(private.as_bytes()).unwrap();
    let info = p256::pkcs8::PrivateKeyInfo::try_from(&der_bytes[..]).unwrap();
    assert_eq!(info.private_key.len(), 34);
    assert_eq!(info.private_key[..2], [0x80, 0x20]);
    let seed = info.private_key[2..].to_vec();
    let key = ml_dsa::SigningKey::<ml_dsa::MlDsa65>::from_seed(
        &ml_dsa::Seed::try_from(&seed[..]).unwrap(),
    );
    #[expect(deprecated, reason = "building the expanded form a test key needs")]
    let expanded = key.expanded_key().to_expanded().to_vec();
    let octets = |body: Vec<u8>| {
        let info = p256::pkcs8::PrivateKeyInfo::new(info.algorithm, &body);
        let der = info.to_der().unwrap();
        der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &der).unwrap()
    };
    let os = |b: &[u8]| der::asn1::OctetStringRef::new(b).unwrap().to_der().unwrap();
    let seq = |parts: Vec<u8>| {
        let mut v = vec![0x30, 0x82];
        v.extend_from_slice(&u16::try_from(parts.len()).unwrap().to_be_bytes());
        v.extend_from_slice(&parts);
        v
    };
    let both = octets(seq([os(&seed), os(&expanded)].concat()));
    assert_eq!(public_key(&both).unwrap(), public);
    let mut other = seed.clone();
    other[0] ^= 1;
    let mismatched = octets(seq([os(&other), os(&expanded)].concat()));
    let msg = public_key(&mismatched).unwrap_err().to_string();
    assert!(msg.contains("disagree"), "{msg}");
    let expanded_only = octets(os(&expanded));
    let msg = public_key(&expanded_only).unwrap_err().to_string();
    assert!(msg.contains("without its seed"), "{msg}");
}
