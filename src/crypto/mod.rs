//! Key pairs and signatures (#20, its first part): P-256 keys as the PEM OpenSSL reads and
//! writes (PKCS#8 `BEGIN PRIVATE KEY`, SPKI `BEGIN PUBLIC KEY`) and ECDSA-SHA256 signatures in
//! DER, the form `openssl dgst -sha256 -sign` writes and `-verify` checks. Encryption at rest
//! (the open option `encryption_key`, key slots, `nexus_add_key`, `nexus_rekey`, encrypted
//! backups) is not built yet: those functions return `NEXUS_UNSUPPORTED`.
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
    /// Checks that this is a P-256 private key (before work that would sign with it).
    pub fn check(&self) -> Result<()> {
        private_key(&self.0).map(drop)
    }
}

impl std::fmt::Debug for PrivatePem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivatePem(..)")
    }
}

/// The algorithms [`keygen`] knows by name.
const P256: &str = "p256";
/// Post-quantum algorithms the API reserves for the `pqc` feature (not built yet).
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

/// A new key pair of `algorithm` (`None` or `"p256"`): the private key as PKCS#8 PEM (held
/// in memory that is zeroized when dropped) and the public key as SPKI PEM.
pub fn keygen(algorithm: Option<&str>) -> Result<(Zeroizing<String>, String)> {
    match algorithm.unwrap_or(P256) {
        P256 => {}
        a if PQC.contains(&a) => {
            return Err(Error::unsupported(format!(
                "algorithm \"{a}\" needs the post-quantum feature `pqc`, which is not built yet"
            )))
        }
        a => {
            return Err(Error::invalid(format!(
                "unknown key algorithm \"{a}\" (\"p256\" is supported)"
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

/// The public key (SPKI PEM) of the private key `private_pem`.
pub fn public_key(private_pem: &str) -> Result<String> {
    public_pem(private_key(private_pem)?.verifying_key())
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

/// The ECDSA-SHA256 signature of `data` by `private_pem`, in DER.
pub fn sign(private_pem: &str, data: &[u8]) -> Result<Vec<u8>> {
    Ok(sign_digest(
        &private_key(private_pem)?,
        Sha256::new_with_prefix(data),
    ))
}

/// Checks the DER signature `der` of `data` against `public_pem`: `NEXUS_CRYPTO` when it
/// does not match (or is not a signature), `NEXUS_INVALID_ARGUMENT` for a malformed key.
pub fn verify(public_pem: &str, data: &[u8], der: &[u8]) -> Result<()> {
    verify_digest(
        &public_key_of(public_pem)?,
        Sha256::new_with_prefix(data),
        der,
    )
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

/// The DER signature of the file at `path` by `private_pem` (what `io::sign_file` writes to
/// `PATH.sig`).
pub fn file_signature(path: &Path, private_pem: &str) -> Result<Vec<u8>> {
    // The key is checked before the file is read.
    let key = private_key(private_pem)?;
    Ok(sign_digest(&key, file_digest(path)?))
}

/// Checks `PATH.sig` against the file at `path` and `public_pem`: a missing or wrong
/// signature is `NEXUS_CRYPTO`.
pub fn verify_file(path: &Path, public_pem: &str) -> Result<()> {
    let key = public_key_of(public_pem)?;
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
    verify_digest(&key, file_digest(path)?, &der).map_err(|e| match e {
        Error::Crypto(m) => crypto(format!("{}: {m}", path.display())),
        other => other,
    })
}

pub(crate) mod seal;

#[cfg(test)]
mod tests;
