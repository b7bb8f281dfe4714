//! Post-quantum signatures (#20, feature `pqc`): ML-DSA-65 (FIPS 204) and SLH-DSA-SHA2-128s,
//! -192s, -256s (FIPS 205), behind the same `keygen` / `public_key` / `sign` / `verify` of
//! [`super`] as P-256. [`SigningKey`] and [`VerifyingKey`] are the parsed keys.
//!
//! Keys are the standard PEM (docs/FORMAT.md, "Post-quantum keys"): PKCS#8 `BEGIN PRIVATE KEY`
//! and SPKI `BEGIN PUBLIC KEY` with the NIST algorithm OIDs (no parameters). An ML-DSA private
//! key is its 32-byte seed in the `seed [0]` form of RFC 9881's `ML-DSA-PrivateKey` (the
//! `both` form, seed and expanded key, is read too and checked); an SLH-DSA private key is
//! `SK.seed || SK.prf || PK.seed || PK.root` (RFC 9909). Public keys are the FIPS encodings in
//! the BIT STRING. OpenSSL 3.5 and later read these keys.
//!
//! Signatures are the raw FIPS encodings (3309 bytes for ML-DSA-65; 7856, 16224, 29792 for
//! SLH-DSA-SHA2-128s/192s/256s) of the pure algorithms with an empty context string over the
//! message itself (no pre-hash): what `openssl pkeyutl -sign -rawin` makes. Both are hedged
//! (fresh randomness per signature, FIPS 204's and FIPS 205's default).
//!
//! The parsed private keys zeroize themselves when dropped (the crates' `zeroize` feature);
//! the DER of a private key is held in zeroizing buffers.

use super::Zeroizing;
use crate::error::{Error, Result};
use ml_dsa::MlDsa65;
use p256::elliptic_curve::rand_core::{OsRng, RngCore};
use p256::pkcs8::der::asn1::{BitStringRef, OctetStringRef};
use p256::pkcs8::der::{self, Decode, Encode, Reader};
use p256::pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use p256::pkcs8::{LineEnding, ObjectIdentifier, PrivateKeyInfo};
use slh_dsa::{Sha2_128s, Sha2_192s, Sha2_256s};
use zeroize::Zeroize;

/// The post-quantum signature algorithms, by `nexus_keygen` name.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Alg {
    MlDsa65,
    SlhDsaSha2_128s,
    SlhDsaSha2_192s,
    SlhDsaSha2_256s,
}

const ALGS: [(Alg, &str, &str, ObjectIdentifier); 4] = [
    (
        Alg::MlDsa65,
        "ml-dsa-65",
        "ML-DSA-65",
        ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.18"),
    ),
    (
        Alg::SlhDsaSha2_128s,
        "slh-dsa-sha2-128s",
        "SLH-DSA-SHA2-128s",
        ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.20"),
    ),
    (
        Alg::SlhDsaSha2_192s,
        "slh-dsa-sha2-192s",
        "SLH-DSA-SHA2-192s",
        ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.22"),
    ),
    (
        Alg::SlhDsaSha2_256s,
        "slh-dsa-sha2-256s",
        "SLH-DSA-SHA2-256s",
        ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.24"),
    ),
];

impl Alg {
    /// The algorithm `nexus_keygen` calls `name`.
    pub(crate) fn by_name(name: &str) -> Option<Self> {
        ALGS.iter().find(|a| a.1 == name).map(|a| a.0)
    }

    fn by_oid(oid: ObjectIdentifier) -> Option<Self> {
        ALGS.iter().find(|a| a.3 == oid).map(|a| a.0)
    }

    fn entry(self) -> &'static (Alg, &'static str, &'static str, ObjectIdentifier) {
        ALGS.iter()
            .find(|a| a.0 == self)
            .expect("every algorithm is in ALGS")
    }

    /// The standard's name ("ML-DSA-65"), for messages.
    pub(crate) fn display(self) -> &'static str {
        self.entry().2
    }

    fn identifier(self) -> AlgorithmIdentifierRef<'static> {
        AlgorithmIdentifierRef {
            oid: self.entry().3,
            parameters: None,
        }
    }

    /// SLH-DSA's security parameter n (bytes of each seed), `None` for ML-DSA.
    fn slh_n(self) -> Option<usize> {
        match self {
            Alg::MlDsa65 => None,
            Alg::SlhDsaSha2_128s => Some(16),
            Alg::SlhDsaSha2_192s => Some(24),
            Alg::SlhDsaSha2_256s => Some(32),
        }
    }
}

/// A parsed post-quantum private key.
pub(crate) enum SigningKey {
    MlDsa65(Box<ml_dsa::SigningKey<MlDsa65>>),
    Slh128s(Box<slh_dsa::SigningKey<Sha2_128s>>),
    Slh192s(Box<slh_dsa::SigningKey<Sha2_192s>>),
    Slh256s(Box<slh_dsa::SigningKey<Sha2_256s>>),
}

/// A parsed post-quantum public key.
pub(crate) enum VerifyingKey {
    MlDsa65(Box<ml_dsa::VerifyingKey<MlDsa65>>),
    Slh128s(Box<slh_dsa::VerifyingKey<Sha2_128s>>),
    Slh192s(Box<slh_dsa::VerifyingKey<Sha2_192s>>),
    Slh256s(Box<slh_dsa::VerifyingKey<Sha2_256s>>),
}

fn internal(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("{what}: {e}"))
}

/// `n` fresh random bytes.
fn random(n: usize) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(vec![0u8; n]);
    OsRng.fill_bytes(&mut v[..]);
    v
}

/// The SLH-DSA key of seeds `sk_seed || sk_prf || pk_seed` (each n bytes).
fn slh_from_seeds(alg: Alg, seeds: &[u8]) -> SigningKey {
    let n = seeds.len() / 3;
    let (a, b, c) = (&seeds[..n], &seeds[n..2 * n], &seeds[2 * n..]);
    match alg {
        Alg::SlhDsaSha2_128s => {
            SigningKey::Slh128s(Box::new(slh_dsa::SigningKey::slh_keygen_internal(a, b, c)))
        }
        Alg::SlhDsaSha2_192s => {
            SigningKey::Slh192s(Box::new(slh_dsa::SigningKey::slh_keygen_internal(a, b, c)))
        }
        _ => SigningKey::Slh256s(Box::new(slh_dsa::SigningKey::slh_keygen_internal(a, b, c))),
    }
}

/// A new key pair of `alg`: (PKCS#8 PEM, SPKI PEM).
pub(crate) fn keygen(alg: Alg) -> Result<(Zeroizing<String>, String)> {
    let key = match alg.slh_n() {
        None => {
            let mut seed = ml_dsa::Seed::try_from(&random(32)[..]).expect("32 bytes");
            let key = ml_dsa::SigningKey::from_seed(&seed);
            seed.zeroize();
            SigningKey::MlDsa65(Box::new(key))
        }
        Some(n) => slh_from_seeds(alg, &random(3 * n)),
    };
    Ok((key.private_pem()?, key.verifying_key().public_pem()?))
}

impl SigningKey {
    fn alg(&self) -> Alg {
        match self {
            SigningKey::MlDsa65(_) => Alg::MlDsa65,
            SigningKey::Slh128s(_) => Alg::SlhDsaSha2_128s,
            SigningKey::Slh192s(_) => Alg::SlhDsaSha2_192s,
            SigningKey::Slh256s(_) => Alg::SlhDsaSha2_256s,
        }
    }

    /// The `privateKey` octets of the PKCS#8 form.
    fn private_octets(&self) -> Zeroizing<Vec<u8>> {
        match self {
            SigningKey::MlDsa65(k) => {
                // ML-DSA-PrivateKey, the `seed [0] IMPLICIT OCTET STRING (SIZE (32))` choice.
                let mut v = Zeroizing::new(vec![0x80, 0x20]);
                v.extend_from_slice(k.as_seed());
                v
            }
            SigningKey::Slh128s(k) => Zeroizing::new(k.to_vec()),
            SigningKey::Slh192s(k) => Zeroizing::new(k.to_vec()),
            SigningKey::Slh256s(k) => Zeroizing::new(k.to_vec()),
        }
    }

    pub(crate) fn private_pem(&self) -> Result<Zeroizing<String>> {
        let octets = self.private_octets();
        let info = PrivateKeyInfo::new(self.alg().identifier(), &octets);
        let der = Zeroizing::new(
            info.to_der()
                .map_err(|e| internal("encoding a private key", e))?,
        );
        der::pem::encode_string("PRIVATE KEY", LineEnding::LF, &der)
            .map(Zeroizing::new)
            .map_err(|e| internal("encoding a private key", e))
    }

    pub(crate) fn verifying_key(&self) -> VerifyingKey {
        match self {
            SigningKey::MlDsa65(k) => {
                VerifyingKey::MlDsa65(Box::new(k.expanded_key().verifying_key()))
            }
            SigningKey::Slh128s(k) => VerifyingKey::Slh128s(Box::new(
                AsRef::<slh_dsa::VerifyingKey<Sha2_128s>>::as_ref(&**k).clone(),
            )),
            SigningKey::Slh192s(k) => VerifyingKey::Slh192s(Box::new(
                AsRef::<slh_dsa::VerifyingKey<Sha2_192s>>::as_ref(&**k).clone(),
            )),
            SigningKey::Slh256s(k) => VerifyingKey::Slh256s(Box::new(
                AsRef::<slh_dsa::VerifyingKey<Sha2_256s>>::as_ref(&**k).clone(),
            )),
        }
    }

    /// The signature of `data` (pure algorithm, empty context, hedged).
    pub(crate) fn sign(&self, data: &[u8]) -> Result<Vec<u8>> {
        let failed = |e| internal("signing", e);
        Ok(match self {
            SigningKey::MlDsa65(k) => {
                let mut rnd = ml_dsa::B32::default();
                OsRng.fill_bytes(&mut rnd);
                // ML-DSA.Sign (FIPS 204 algorithm 2): M' = 0 || |ctx| || ctx || M, ctx empty.
                k.expanded_key()
                    .sign_internal(&[&[0], &[0], data], &rnd)
                    .encode()
                    .to_vec()
            }
            SigningKey::Slh128s(k) => k
                .try_sign_with_context(data, &[], Some(&random(16)))
                .map_err(failed)?
                .to_vec(),
            SigningKey::Slh192s(k) => k
                .try_sign_with_context(data, &[], Some(&random(24)))
                .map_err(failed)?
                .to_vec(),
            SigningKey::Slh256s(k) => k
                .try_sign_with_context(data, &[], Some(&random(32)))
                .map_err(failed)?
                .to_vec(),
        })
    }
}

impl VerifyingKey {
    fn alg(&self) -> Alg {
        match self {
            VerifyingKey::MlDsa65(_) => Alg::MlDsa65,
            VerifyingKey::Slh128s(_) => Alg::SlhDsaSha2_128s,
            VerifyingKey::Slh192s(_) => Alg::SlhDsaSha2_192s,
            VerifyingKey::Slh256s(_) => Alg::SlhDsaSha2_256s,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            VerifyingKey::MlDsa65(k) => k.encode().to_vec(),
            VerifyingKey::Slh128s(k) => k.to_vec(),
            VerifyingKey::Slh192s(k) => k.to_vec(),
            VerifyingKey::Slh256s(k) => k.to_vec(),
        }
    }

    pub(crate) fn public_pem(&self) -> Result<String> {
        let bytes = self.bytes();
        let spki = SubjectPublicKeyInfoRef {
            algorithm: self.alg().identifier(),
            subject_public_key: BitStringRef::new(0, &bytes)
                .map_err(|e| internal("encoding a public key", e))?,
        };
        let der = spki
            .to_der()
            .map_err(|e| internal("encoding a public key", e))?;
        der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &der)
            .map_err(|e| internal("encoding a public key", e))
    }

    /// Checks the raw signature `sig` of `data`: `NEXUS_CRYPTO` when it does not match.
    pub(crate) fn verify(&self, data: &[u8], sig: &[u8]) -> Result<()> {
        let name = self.alg().display();
        let not_sig = || {
            Error::Crypto(format!(
                "the signature is not an {name} signature (wrong length)"
            ))
        };
        let ok = match self {
            VerifyingKey::MlDsa65(k) => {
                let sig = ml_dsa::Signature::<MlDsa65>::try_from(sig).map_err(|_| not_sig())?;
                k.verify_with_context(data, &[], &sig)
            }
            VerifyingKey::Slh128s(k) => {
                let sig = slh_dsa::Signature::<Sha2_128s>::try_from(sig).map_err(|_| not_sig())?;
                k.try_verify_with_context(data, &[], &sig).is_ok()
            }
            VerifyingKey::Slh192s(k) => {
                let sig = slh_dsa::Signature::<Sha2_192s>::try_from(sig).map_err(|_| not_sig())?;
                k.try_verify_with_context(data, &[], &sig).is_ok()
            }
            VerifyingKey::Slh256s(k) => {
                let sig = slh_dsa::Signature::<Sha2_256s>::try_from(sig).map_err(|_| not_sig())?;
                k.try_verify_with_context(data, &[], &sig).is_ok()
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Crypto(
                "the signature does not match the data and this public key".into(),
            ))
        }
    }
}

/// The post-quantum private key in `pem` (PKCS#8), `None` when `pem` is not a PKCS#8 key of
/// one of these algorithms (the caller tries P-256 then).
pub(crate) fn private_key(pem: &str) -> Result<Option<SigningKey>> {
    let Ok((label, der)) = der::pem::decode_vec(pem.trim().as_bytes()) else {
        return Ok(None);
    };
    let der = Zeroizing::new(der);
    if label != "PRIVATE KEY" {
        return Ok(None);
    }
    let Ok(info) = PrivateKeyInfo::try_from(&der[..]) else {
        return Ok(None);
    };
    let Some(alg) = Alg::by_oid(info.algorithm.oid) else {
        return Ok(None);
    };
    let bad = |what: &str| {
        Error::invalid(format!(
            "the {} private key is malformed ({what})",
            alg.display()
        ))
    };
    let octets = info.private_key;
    match alg.slh_n() {
        None => {
            let mut seed = ml_dsa_seed(octets).map_err(|m| bad(&m))?;
            let key = ml_dsa::SigningKey::<MlDsa65>::from_seed(&seed);
            seed.zeroize();
            if let Some(expanded) = ml_dsa_expanded(octets) {
                #[expect(
                    deprecated,
                    reason = "the expanded form is only compared with the one the seed gives"
                )]
                let ours = key.expanded_key().to_expanded();
                if ours.as_slice() != expanded {
                    return Err(bad("its seed and expanded key disagree"));
                }
            }
            Ok(Some(SigningKey::MlDsa65(Box::new(key))))
        }
        Some(n) => {
            if octets.len() != 4 * n {
                return Err(bad(&format!("{} bytes, expected {}", octets.len(), 4 * n)));
            }
            let mut seeds = Zeroizing::new(Vec::with_capacity(3 * n));
            seeds.extend_from_slice(&octets[..3 * n]);
            let key = slh_from_seeds(alg, &seeds);
            // The public root is recomputed from the seeds: a key whose stored root differs
            // would make signatures nobody can verify.
            if key.verifying_key().bytes() != octets[2 * n..] {
                return Err(bad("its public root does not match its seeds"));
            }
            Ok(Some(key))
        }
    }
}

/// The seed of an ML-DSA-PrivateKey: `seed [0]` or `both SEQUENCE { seed, expandedKey }`.
fn ml_dsa_seed(octets: &[u8]) -> std::result::Result<ml_dsa::Seed, String> {
    if octets.len() == 34 && octets[..2] == [0x80, 0x20] {
        return Ok(ml_dsa::Seed::try_from(&octets[2..]).expect("32 bytes"));
    }
    if let Some((seed, _)) = ml_dsa_both(octets) {
        return ml_dsa::Seed::try_from(seed).map_err(|_| "seed length".to_string());
    }
    if octets.first() == Some(&0x04) {
        return Err(
            "an expanded key without its seed, which is not read: export the key with its seed"
                .into(),
        );
    }
    Err("not an ML-DSA-PrivateKey".into())
}

fn ml_dsa_expanded(octets: &[u8]) -> Option<&[u8]> {
    ml_dsa_both(octets).map(|(_, e)| e)
}

/// The `both` choice: SEQUENCE { seed OCTET STRING, expandedKey OCTET STRING }.
fn ml_dsa_both(octets: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut r = der::SliceReader::new(octets).ok()?;
    let (seed, expanded) = r
        .sequence(|r| {
            let seed = OctetStringRef::decode(r)?;
            let expanded = OctetStringRef::decode(r)?;
            Ok((seed.as_bytes(), expanded.as_bytes()))
        })
        .ok()?;
    r.finish(()).ok()?;
    Some((seed, expanded))
}

/// The post-quantum public key in `pem` (SPKI), `None` when it is not one of these algorithms.
pub(crate) fn public_key(pem: &str) -> Result<Option<VerifyingKey>> {
    let Ok((label, der)) = der::pem::decode_vec(pem.trim().as_bytes()) else {
        return Ok(None);
    };
    if label != "PUBLIC KEY" {
        return Ok(None);
    }
    let Ok(spki) = SubjectPublicKeyInfoRef::from_der(&der) else {
        return Ok(None);
    };
    let Some(alg) = Alg::by_oid(spki.algorithm.oid) else {
        return Ok(None);
    };
    let bad = || {
        Error::invalid(format!(
            "the {} public key is malformed (wrong length)",
            alg.display()
        ))
    };
    let bytes = spki.subject_public_key.as_bytes().ok_or_else(bad)?;
    Ok(Some(match alg {
        Alg::MlDsa65 => {
            let enc = ml_dsa::EncodedVerifyingKey::<MlDsa65>::try_from(bytes).map_err(|_| bad())?;
            VerifyingKey::MlDsa65(Box::new(ml_dsa::VerifyingKey::decode(&enc)))
        }
        Alg::SlhDsaSha2_128s => VerifyingKey::Slh128s(Box::new(
            slh_dsa::VerifyingKey::try_from(bytes).map_err(|_| bad())?,
        )),
        Alg::SlhDsaSha2_192s => VerifyingKey::Slh192s(Box::new(
            slh_dsa::VerifyingKey::try_from(bytes).map_err(|_| bad())?,
        )),
        Alg::SlhDsaSha2_256s => VerifyingKey::Slh256s(Box::new(
            slh_dsa::VerifyingKey::try_from(bytes).map_err(|_| bad())?,
        )),
    }))
}
