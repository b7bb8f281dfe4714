//! Key pairs and signatures (#20): P-256 keys as the PEM OpenSSL reads and writes (PKCS#8
//! `BEGIN PRIVATE KEY`, SPKI `BEGIN PUBLIC KEY`) and ECDSA-SHA256 signatures in DER, the form
//! `openssl dgst -sha256 -sign` writes and `-verify` checks. With the feature `pqc`, the same
//! functions also make and use post-quantum keys: ML-DSA-65 and SLH-DSA-SHA2-128s/192s/256s
//! signature keys (`pqc_sign`, raw FIPS signatures) and hybrid P-256 + ML-KEM encryption
//! keys (`pqc`, which also wraps data keys for them). The algorithm of a key is read from
//! its PEM.
//!
//! Private keys are held in types that zeroize their memory when dropped (`p256`'s
//! `SigningKey`, [`Zeroizing`]); no key material goes into an error message.
//!
//! Files are signed by streaming them through SHA-256 (no file is read into memory whole);
//! `PATH.sig` holds the DER signature. Writing it (atomically) is `io::sign_file`'s job: this
//! module sits below the storage layer (which will encrypt pages with it) and writes no
//! files.

use crate::error::{Error, Result};
use base64::Engine as _;
use p256::ecdsa::signature::{DigestSigner, DigestVerifier};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
pub use seal::Cipher;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
pub use zeroize::Zeroizing;

/// A private key's PEM text in an option (export's `sign_key`): zeroized when dropped and
/// never shown by `Debug`.
#[derive(Clone)]
pub struct PrivatePem(Zeroizing<String>);

impl PrivatePem {
    /// Wraps PEM text (checked when it is used).
    pub fn new(pem: String) -> Self {
        Self(Zeroizing::new(pem))
    }
    /// The PEM text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Checks that this is a private key that signs (before work that would sign with it).
    pub fn check(&self) -> Result<()> {
        signing_key(&self.0).map(drop)
    }
}

impl std::fmt::Debug for PrivatePem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivatePem(..)")
    }
}

/// The algorithms [`keygen`] knows by name.
const P256: &str = "p256";
/// Post-quantum algorithms: built with the feature `pqc`.
const PQC: &[&str] = &[
    "ml-kem-512",
    "ml-kem-768",
    "ml-kem-1024",
    "slh-dsa-sha2-128s",
    "slh-dsa-sha2-192s",
    "slh-dsa-sha2-256s",
    "ml-dsa-65",
];

fn crypto(msg: impl Into<String>) -> Error {
    Error::Crypto(msg.into())
}

/// A new key pair of `algorithm` (`None` or `"p256"`; with the feature `pqc` also the
/// `PQC` names): the private key as PEM (held in memory that is zeroized when dropped) and
/// the public key as PEM. P-256 and the signature algorithms use PKCS#8 and SPKI; the hybrid
/// ML-KEM keys have PEM labels of their own (`pqc`).
pub fn keygen(algorithm: Option<&str>) -> Result<(Zeroizing<String>, String)> {
    match algorithm.unwrap_or(P256) {
        P256 => {}
        #[cfg(feature = "pqc")]
        a if PQC.contains(&a) => {
            if let Some(kind) = pqc::kind_of_algorithm(a) {
                return pqc::keygen(kind);
            }
            if let Some(alg) = pqc_sign::Alg::by_name(a) {
                return pqc_sign::keygen(alg);
            }
            return Err(Error::Internal(format!("algorithm \"{a}\" has no key generator")));
        }
        #[cfg(not(feature = "pqc"))]
        a if PQC.contains(&a) => {
            return Err(Error::unsupported(format!(
                "algorithm \"{a}\" needs the post-quantum feature `pqc`, which this build was compiled without"
            )))
        }
        a => {
            return Err(Error::invalid(format!(
                "unknown key algorithm \"{a}\" (known: \"p256\", {})",
                PQC.iter()
                    .map(|n| format!("\"{n}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }
    let key = SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| Error::Internal(format!("encoding a new private key: {e}")))?;
    let public = public_pem(key.verifying_key())?;
    Ok((Zeroizing::new(private.as_str().to_owned()), public))
}

fn public_pem(key: &VerifyingKey) -> Result<String> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| Error::Internal(format!("encoding a public key: {e}")))
}

/// The private key in `pem` (PKCS#8, P-256).
fn private_key(pem: &str) -> Result<SigningKey> {
    SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| {
        let hint = if pem.contains("BEGIN PUBLIC KEY") {
            " (this is a public key)"
        } else if pem.contains("BEGIN EC PRIVATE KEY") {
            " (this is a SEC1 key: convert it with `openssl pkcs8 -topk8 -nocrypt`)"
        } else {
            ""
        };
        Error::invalid(format!(
            "the private key is not a P-256 key in PKCS#8 PEM (\"BEGIN PRIVATE KEY\"){hint}: {e}"
        ))
    })
}

/// The public key in `pem` (SPKI, P-256).
pub(crate) fn public_key_of(pem: &str) -> Result<VerifyingKey> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
        let hint = if pem.contains("PRIVATE KEY") {
            " (this is a private key: pass its public key)"
        } else {
            ""
        };
        Error::invalid(format!(
            "the public key is not a P-256 key in SPKI PEM (\"BEGIN PUBLIC KEY\"){hint}: {e}"
        ))
    })
}

/// A private key that signs: P-256 (ECDSA) or, with the feature `pqc`, ML-DSA / SLH-DSA.
enum AnySigningKey {
    P256(SigningKey),
    #[cfg(feature = "pqc")]
    Pq(pqc_sign::SigningKey),
}

/// A public key that verifies signatures.
enum AnyVerifyingKey {
    P256(VerifyingKey),
    #[cfg(feature = "pqc")]
    Pq(pqc_sign::VerifyingKey),
}

/// The signing key in `pem`, its algorithm read from the PEM.
fn signing_key(pem: &str) -> Result<AnySigningKey> {
    #[cfg(feature = "pqc")]
    {
        if pqc::is_hybrid_private(pem) {
            return Err(Error::invalid(
                "this is a hybrid ML-KEM key, which encrypts (encryption_key, nexus_add_key) and does not sign: sign with a p256, ml-dsa-65 or slh-dsa key",
            ));
        }
        if let Some(key) = pqc_sign::private_key(pem)? {
            return Ok(AnySigningKey::Pq(key));
        }
    }
    private_key(pem).map(AnySigningKey::P256)
}

/// The verifying key in `pem`, its algorithm read from the PEM.
fn verifying_key(pem: &str) -> Result<AnyVerifyingKey> {
    #[cfg(feature = "pqc")]
    {
        if pqc::is_hybrid_public(pem) {
            return Err(Error::invalid(
                "this is a hybrid ML-KEM key, which encrypts and does not verify signatures",
            ));
        }
        if let Some(key) = pqc_sign::public_key(pem)? {
            return Ok(AnyVerifyingKey::Pq(key));
        }
    }
    public_key_of(pem).map(AnyVerifyingKey::P256)
}

/// The public key (PEM) of the private key `private_pem`, of any algorithm.
pub fn public_key(private_pem: &str) -> Result<String> {
    #[cfg(feature = "pqc")]
    if pqc::is_hybrid_private(private_pem) {
        return pqc::public_pem(private_pem);
    }
    match signing_key(private_pem)? {
        AnySigningKey::P256(k) => public_pem(k.verifying_key()),
        #[cfg(feature = "pqc")]
        AnySigningKey::Pq(k) => k.verifying_key().public_pem(),
    }
}

fn sign_digest(key: &SigningKey, digest: Sha256) -> Vec<u8> {
    let sig: Signature = key.sign_digest(digest);
    DerSignature::from(sig).as_bytes().to_vec()
}

fn verify_digest(key: &VerifyingKey, digest: Sha256, der: &[u8]) -> Result<()> {
    let sig = Signature::from_der(der)
        .map_err(|_| crypto("the signature is not a DER ECDSA P-256 signature"))?;
    key.verify_digest(digest, &sig)
        .map_err(|_| crypto("the signature does not match the data and this public key"))
}

/// The signature of `data` by `private_pem`: ECDSA-SHA256 in DER for P-256, the raw FIPS
/// signature for ML-DSA / SLH-DSA.
pub fn sign(private_pem: &str, data: &[u8]) -> Result<Vec<u8>> {
    match signing_key(private_pem)? {
        AnySigningKey::P256(k) => Ok(sign_digest(&k, Sha256::new_with_prefix(data))),
        #[cfg(feature = "pqc")]
        AnySigningKey::Pq(k) => k.sign(data),
    }
}

/// Checks the signature `sig` of `data` against `public_pem` (its algorithm read from the
/// PEM): `NEXUS_CRYPTO` when it does not match (or is not a signature),
/// `NEXUS_INVALID_ARGUMENT` for a malformed key.
pub fn verify(public_pem: &str, data: &[u8], sig: &[u8]) -> Result<()> {
    match verifying_key(public_pem)? {
        AnyVerifyingKey::P256(k) => verify_digest(&k, Sha256::new_with_prefix(data), sig),
        #[cfg(feature = "pqc")]
        AnyVerifyingKey::Pq(k) => k.verify(data, sig),
    }
}

/// [`sign`] with the signature as standard base64 (what `nexus_sign` returns).
pub fn sign_base64(private_pem: &str, data: &[u8]) -> Result<String> {
    Ok(base64::engine::general_purpose::STANDARD.encode(sign(private_pem, data)?))
}

/// [`verify`] of a base64 signature; one that is not base64 is a bad signature.
pub fn verify_base64(public_pem: &str, data: &[u8], signature_b64: &str) -> Result<()> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(signature_b64.trim())
        .map_err(|_| crypto("the signature is not base64"))?;
    verify(public_pem, data, &der)
}

/// Where the signature of `path` lives: `PATH.sig`.
pub fn signature_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".sig");
    PathBuf::from(p)
}

/// SHA-256 of the file at `path`, read in blocks.
fn file_digest(path: &Path) -> Result<Sha256> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut digest = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(digest);
        }
        digest.update(&buf[..n]);
    }
}

/// The whole file at `path` (the post-quantum algorithms sign the message itself, not a
/// digest of it).
#[cfg(feature = "pqc")]
fn file_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// The signature of the file at `path` by `private_pem` (what `io::sign_file` writes to
/// `PATH.sig`): DER ECDSA for P-256 (the file streamed through SHA-256), the raw signature
/// for ML-DSA / SLH-DSA (the file read whole).
pub fn file_signature(path: &Path, private_pem: &str) -> Result<Vec<u8>> {
    // The key is checked before the file is read.
    match signing_key(private_pem)? {
        AnySigningKey::P256(key) => Ok(sign_digest(&key, file_digest(path)?)),
        #[cfg(feature = "pqc")]
        AnySigningKey::Pq(key) => key.sign(&file_bytes(path)?),
    }
}

/// Checks `PATH.sig` against the file at `path` and `public_pem`: a missing or wrong
/// signature is `NEXUS_CRYPTO`.
pub fn verify_file(path: &Path, public_pem: &str) -> Result<()> {
    let key = verifying_key(public_pem)?;
    let sig_path = signature_path(path);
    let der = match std::fs::read(&sig_path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(crypto(format!(
                "{} has no signature ({} does not exist)",
                path.display(),
                sig_path.display()
            )))
        }
        Err(e) => return Err(Error::io(&sig_path, e)),
    };
    let checked = match key {
        AnyVerifyingKey::P256(key) => verify_digest(&key, file_digest(path)?, &der),
        #[cfg(feature = "pqc")]
        AnyVerifyingKey::Pq(key) => key.verify(&file_bytes(path)?, &der),
    };
    checked.map_err(|e| match e {
        Error::Crypto(m) => crypto(format!("{}: {m}", path.display())),
        other => other,
    })
}

#[cfg(feature = "pqc")]
pub mod pqc;
#[cfg(feature = "pqc")]
pub(crate) mod pqc_sign;
pub(crate) mod seal;

#[cfg(test)]
mod tests;
