//! The post-quantum keys of the feature `pqc` through the C ABI, the export / import / backup
//! options and the CLI, as for P-256 (tests/integration/crypto_openssl.rs): every algorithm name makes a
//! key pair, signature keys sign and verify bytes and files, hybrid ML-KEM keys are refused
//! where a signature key belongs. The keys are checked against `openssl asn1parse` (their DER
//! and OIDs); with OpenSSL 3.5 or later, which knows ML-DSA and SLH-DSA, also against
//! `openssl pkeyutl` signing and verifying. Built only with `--features pqc` (Cargo.toml).

mod common;

use common::ffi::{
    c, keygen, openssl, path_c, signed_import_refuses_a_change, take, CRYPTO, INVALID, OK,
};
use nexus::ffi::crypto::{
    nexus_public_key, nexus_sign, nexus_sign_file, nexus_verify, nexus_verify_file,
};
use std::path::Path;
use std::process::Command;

fn public_of(private: &str) -> (i32, Option<String>) {
    let mut out = std::ptr::null_mut();
    let k = c(private);
    // SAFETY: valid string, writable out-pointer.
    let rc = unsafe { nexus_public_key(k.as_ptr(), &mut out) };
    (rc, (rc == OK).then(|| take(out)))
}

fn sign(private: &str, data: &[u8]) -> (i32, Option<String>) {
    let mut out = std::ptr::null_mut();
    let k = c(private);
    // SAFETY: valid string and data, writable out-pointer.
    let rc = unsafe { nexus_sign(k.as_ptr(), data.as_ptr(), data.len(), &mut out) };
    (rc, (rc == OK).then(|| take(out)))
}

fn verify(public: &str, data: &[u8], sig_b64: &str) -> i32 {
    let (k, s) = (c(public), c(sig_b64));
    // SAFETY: valid strings and data.
    unsafe { nexus_verify(k.as_ptr(), data.as_ptr(), data.len(), s.as_ptr()) }
}

fn sign_file(path: &Path, private: &str) -> i32 {
    // SAFETY: valid strings.
    unsafe { nexus_sign_file(path_c(path).as_ptr(), c(private).as_ptr()) }
}

fn verify_file(path: &Path, public: &str) -> i32 {
    // SAFETY: valid strings.
    unsafe { nexus_verify_file(path_c(path).as_ptr(), c(public).as_ptr()) }
}

/// Whether the machine's OpenSSL knows ML-DSA and SLH-DSA (3.5 and later).
fn openssl_has_pqc() -> bool {
    let v = openssl(&["version"]);
    let text = String::from_utf8_lossy(&v.stdout);
    let mut parts = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("0.0")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (3, 5)
}

/// `openssl asn1parse` of a PEM file: its text, which names every OID it holds.
fn asn1parse(pem: &Path) -> String {
    let o = openssl(&["asn1parse", "-in", pem.to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");
    String::from_utf8(o.stdout).unwrap()
}

const SIGNATURE_ALGORITHMS: [(&str, &str, usize); 4] = [
    ("ml-dsa-65", "2.16.840.1.101.3.4.3.18", 3309),
    ("slh-dsa-sha2-128s", "2.16.840.1.101.3.4.3.20", 7856),
    ("slh-dsa-sha2-192s", "2.16.840.1.101.3.4.3.22", 16224),
    ("slh-dsa-sha2-256s", "2.16.840.1.101.3.4.3.24", 29792),
];

/// Every signature algorithm makes PKCS#8 / SPKI keys with its NIST OID that OpenSSL parses
/// (and, 3.5 and later, uses); ML-DSA-65 and SLH-DSA-SHA2-128s sign and verify through the C
/// ABI (the larger SLH-DSA sets, slow in the unoptimized test build, in src/crypto/tests.rs).
#[test]
fn signature_keys_are_standard_pem_and_sign_through_the_c_abi() {
    let dir = tempfile::tempdir().unwrap();
    let data = b"bytes signed with a post-quantum key";
    for (alg, oid, sig_len) in SIGNATURE_ALGORITHMS {
        let (private, public) = keygen(Some(alg));
        assert_eq!(public_of(&private), (OK, Some(public.clone())), "{alg}");
        let (priv_file, pub_file) = (dir.path().join("k.pem"), dir.path().join("p.pem"));
        std::fs::write(&priv_file, &*private).unwrap();
        std::fs::write(&pub_file, &public).unwrap();
        let openssl_name = oid_name(oid);
        for (file, what) in [(&priv_file, "private"), (&pub_file, "public")] {
            let text = asn1parse(file);
            assert!(
                text.contains(oid) || text.contains(openssl_name),
                "{alg} {what} key: {text}"
            );
        }
        // OpenSSL 3.0's asn1parse also shows the SPKI's BIT STRING, of the FIPS key length.
        let text = asn1parse(&pub_file);
        assert!(text.contains("BIT STRING"), "{text}");
        if alg == "ml-dsa-65" || alg == "slh-dsa-sha2-128s" {
            let (rc, sig) = sign(&private, data);
            assert_eq!(rc, OK, "{alg}");
            let sig = sig.unwrap();
            assert_eq!(verify(&public, data, &sig), OK, "{alg}");
            assert_eq!(verify(&public, b"other bytes", &sig), CRYPTO, "{alg}");
            let raw = base64_decode(&sig);
            assert_eq!(raw.len(), sig_len, "{alg}");
            if openssl_has_pqc() {
                openssl_checks(dir.path(), &priv_file, &pub_file, data, &raw);
            } else {
                eprintln!(
                    "{alg}: this OpenSSL predates ML-DSA/SLH-DSA (3.5); pkeyutl checks skipped"
                );
            }
        }
    }
}

/// OpenSSL's own name for the OID, as asn1parse prints it when it knows one.
fn oid_name(oid: &str) -> &'static str {
    match oid {
        "2.16.840.1.101.3.4.3.18" => "ML-DSA-65",
        "2.16.840.1.101.3.4.3.20" => "SLH-DSA-SHA2-128s",
        "2.16.840.1.101.3.4.3.22" => "SLH-DSA-SHA2-192s",
        _ => "SLH-DSA-SHA2-256s",
    }
}

/// With OpenSSL 3.5+: it verifies our signature, reads our private key, and we verify its.
fn openssl_checks(dir: &Path, priv_file: &Path, pub_file: &Path, data: &[u8], raw: &[u8]) {
    let (data_file, sig_file) = (dir.join("data"), dir.join("data.sig"));
    std::fs::write(&data_file, data).unwrap();
    std::fs::write(&sig_file, raw).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let v = openssl(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        &s(pub_file),
        "-rawin",
        "-in",
        &s(&data_file),
        "-sigfile",
        &s(&sig_file),
    ]);
    assert!(v.status.success(), "{v:?}");
    let theirs = dir.join("theirs.sig");
    let o = openssl(&[
        "pkeyutl",
        "-sign",
        "-inkey",
        &s(priv_file),
        "-rawin",
        "-in",
        &s(&data_file),
        "-out",
        &s(&theirs),
    ]);
    assert!(o.status.success(), "{o:?}");
    let public = std::fs::read_to_string(pub_file).unwrap();
    let b64 = base64_encode(&std::fs::read(&theirs).unwrap());
    assert_eq!(verify(&public, data, &b64), OK);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Files: `PATH.sig` is the raw signature; a changed file or another key is `NEXUS_CRYPTO`.
/// Hybrid ML-KEM keys are made by every ML-KEM name and refused as signature keys.
#[test]
fn files_sign_and_hybrid_keys_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.ndjson");
    std::fs::write(&file, b"{\"_id\": 1}\n").unwrap();
    let (private, public) = keygen(Some("ml-dsa-65"));
    assert_eq!(verify_file(&file, &public), CRYPTO, "no signature yet");
    assert_eq!(sign_file(&file, &private), OK);
    assert_eq!(
        std::fs::read(dir.path().join("export.ndjson.sig"))
            .unwrap()
            .len(),
        3309
    );
    assert_eq!(verify_file(&file, &public), OK);
    let (_, other) = keygen(Some("ml-dsa-65"));
    assert_eq!(verify_file(&file, &other), CRYPTO);
    std::fs::write(&file, b"{\"_id\": 2}\n").unwrap();
    assert_eq!(verify_file(&file, &public), CRYPTO);

    for (alg, ek_len) in [
        ("ml-kem-512", 800),
        ("ml-kem-768", 1184),
        ("ml-kem-1024", 1568),
    ] {
        let (private, public) = keygen(Some(alg));
        assert!(private.starts_with("-----BEGIN NEXUSLITE HYBRID PRIVATE KEY-----"));
        assert!(public.starts_with("-----BEGIN NEXUSLITE HYBRID PUBLIC KEY-----"));
        assert_eq!(public_of(&private), (OK, Some(public.clone())));
        // The public body: kind, compressed P-256 point, encapsulation key.
        let body: String = public.lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(base64_decode(&body).len(), 1 + 33 + ek_len, "{alg}");
        assert_eq!(sign(&private, b"x").0, INVALID, "{alg}");
        assert_eq!(sign_file(&file, &private), INVALID, "{alg}");
        assert_eq!(verify(&public, b"x", "AAAA"), INVALID, "{alg}");
    }
}

/// Export's `sign_key` and import's `verify_key` take post-quantum keys like P-256 ones.
#[test]
fn exports_signed_with_a_post_quantum_key() {
    use nexus::io::ExportOptions;
    use nexus::{Database, Document};
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keygen(Some("ml-dsa-65"));
    let db = Database::open(dir.path().join("src.db"), Default::default()).unwrap();
    let c = db.collection("users");
    for i in 0..20 {
        c.insert(Document::from_json(&format!(r#"{{"_id": {i}, "name": "u{i}"}}"#)).unwrap())
            .unwrap();
    }
    let file = dir.path().join("users.ndjson");
    let opts = ExportOptions {
        sign_key: Some(nexus::crypto::PrivatePem::new(private.clone())),
        ..ExportOptions::default()
    };
    c.export(&file, &opts).unwrap();
    assert_eq!(verify_file(&file, &public), OK);
    let dst = Database::open(dir.path().join("dst.db"), Default::default()).unwrap();
    signed_import_refuses_a_change(&dst.collection("users"), &file, &public, 20);
    // A hybrid key is not a signing key: refused before anything is written.
    let (hybrid, _) = keygen(Some("ml-kem-768"));
    let bad = ExportOptions {
        sign_key: Some(nexus::crypto::PrivatePem::new(hybrid.to_string())),
        ..ExportOptions::default()
    };
    let other = dir.path().join("other.ndjson");
    assert_eq!(c.export(&other, &bad).unwrap_err().code(), INVALID);
    assert!(!other.exists());
}

/// `nexus keygen --algorithm`, `sign` and `verify` with post-quantum keys.
#[test]
fn cli_keygen_sign_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nexus"))
            .args(args)
            .current_dir(d)
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| {
        let o = run(args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        o
    };
    ok(&["keygen", "me.key", "me.pub", "--algorithm", "ml-dsa-65"]);
    assert!(
        asn1parse(&d.join("me.pub")).contains("2.16.840.1.101.3.4.3.18")
            || asn1parse(&d.join("me.pub")).contains("ML-DSA-65")
    );
    std::fs::write(d.join("data.ndjson"), b"{\"a\": 1}\n").unwrap();
    ok(&["sign", "data.ndjson", "--key", "me.key"]);
    let o = ok(&["verify", "data.ndjson", "--key", "me.pub"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("signature verified"));
    std::fs::write(d.join("data.ndjson"), b"{\"a\": 2}\n").unwrap();
    let o = run(&["verify", "data.ndjson", "--key", "me.pub"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    ok(&["keygen", "h.key", "h.pub", "--algorithm", "ml-kem-1024"]);
    let text = std::fs::read_to_string(d.join("h.key")).unwrap();
    assert!(text.starts_with("-----BEGIN NEXUSLITE HYBRID PRIVATE KEY-----"));
    let o = run(&["sign", "data.ndjson", "--key", "h.key"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not sign"),
        "{o:?}"
    );
}
