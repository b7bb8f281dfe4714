//! Hybrid post-quantum key slots (#20, feature `pqc`): key pairs that join a P-256 key and an
//! ML-KEM key (FIPS 203), and the key slots that wrap a database's data key for them. The
//! storage layer's key-slot container (`storage::wasp::keyslots`, beside the plain P-256 slots
//! of `crypto::seal`) calls [`wrap`] and [`unwrap`]; the slot kinds are `KIND_ML_KEM_512` (2),
//! `KIND_ML_KEM_768` (3) and `KIND_ML_KEM_1024` (4); kind 1 is a plain P-256 slot.
//!
//! - **Keys** are PEM with labels of their own (no standard names a P-256 + ML-KEM pair):
//!   `NEXUSLITE HYBRID PRIVATE KEY` holds the kind, the P-256 scalar and the 64-byte ML-KEM
//!   seed (`d || z`); `NEXUSLITE HYBRID PUBLIC KEY` the kind, the compressed P-256 point and
//!   the ML-KEM encapsulation key. A key's id is the first 16 bytes of SHA-256 of its public
//!   body (docs/FORMAT.md, "Post-quantum keys").
//! - **Wrapping**: an ephemeral P-256 ECDH with the recipient and an ML-KEM encapsulation to it
//!   give two 32-byte secrets; HKDF-SHA256 (salt: the file identity; input: both secrets;
//!   info: a label, the kind, the recipient key id, the ephemeral public key and the ML-KEM
//!   ciphertext) derives a one-time key, and XChaCha20-Poly1305 seals the data key under it
//!   with the rest of the slot body as associated data. The key is secret while either
//!   exchange is: an attacker must break both P-256 and ML-KEM (docs/FORMAT.md says why).
//!
//! Secrets (the P-256 scalar, the ML-KEM seed, both shared secrets, the derived key, the data
//! key) live in types that zeroize their memory when dropped; no key material goes into an
//! error message.

use super::Zeroizing;
use crate::error::{Error, Result};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use ml_kem::{Decapsulate, KeyExport};
use p256::elliptic_curve::rand_core::{OsRng, RngCore};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::der::pem::{self, LineEnding};
use p256::{PublicKey, SecretKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// Slot kind (and key kind) of a P-256 + ML-KEM-512 key.
pub(crate) const KIND_ML_KEM_512: u8 = 2;
/// Slot kind (and key kind) of a P-256 + ML-KEM-768 key.
pub(crate) const KIND_ML_KEM_768: u8 = 3;
/// Slot kind (and key kind) of a P-256 + ML-KEM-1024 key.
pub(crate) const KIND_ML_KEM_1024: u8 = 4;

const PRIVATE_LABEL: &str = "NEXUSLITE HYBRID PRIVATE KEY";
const PUBLIC_LABEL: &str = "NEXUSLITE HYBRID PUBLIC KEY";
const SLOT_INFO: &[u8] = b"NexusLite hybrid key slot v1";
const KEY_ID_LEN: usize = 16;
/// A compressed SEC1 P-256 point.
const POINT_LEN: usize = 33;
const SEED_LEN: usize = 64;
const TAG_LEN: usize = 16;
/// Bytes of a private key body: kind, P-256 scalar, ML-KEM seed.
const PRIVATE_LEN: usize = 1 + 32 + SEED_LEN;

/// The sizes of one ML-KEM parameter set.
#[derive(Clone, Copy)]
struct Params {
    kind: u8,
    name: &'static str,
    /// Encapsulation (public) key bytes.
    ek: usize,
    /// Ciphertext bytes.
    ct: usize,
}

const PARAMS: [Params; 3] = [
    Params {
        kind: KIND_ML_KEM_512,
        name: "ml-kem-512",
        ek: 800,
        ct: 768,
    },
    Params {
        kind: KIND_ML_KEM_768,
        name: "ml-kem-768",
        ek: 1184,
        ct: 1088,
    },
    Params {
        kind: KIND_ML_KEM_1024,
        name: "ml-kem-1024",
        ek: 1568,
        ct: 1568,
    },
];

fn params(kind: u8) -> Result<Params> {
    PARAMS
        .iter()
        .find(|p| p.kind == kind)
        .copied()
        .ok_or_else(|| crypto(format!("key slot of unknown kind {kind}")))
}

/// The kind of the algorithm name `name` (`"ml-kem-768"`), if it is a hybrid one.
pub(crate) fn kind_of_algorithm(name: &str) -> Option<u8> {
    PARAMS.iter().find(|p| p.name == name).map(|p| p.kind)
}

impl Params {
    /// Bytes of a slot body of this kind.
    fn body_len(&self) -> usize {
        KEY_ID_LEN + POINT_LEN + self.ek + POINT_LEN + self.ct + 32 + TAG_LEN
    }
}

/// Bytes of a slot body of `kind` (1698, 2402 or 3266), `None` for a kind that is not hybrid.
pub fn slot_body_len(kind: u8) -> Option<usize> {
    params(kind).ok().map(|p| p.body_len())
}

fn crypto(msg: impl Into<String>) -> Error {
    Error::Crypto(msg.into())
}

/// Runs `$body` with `$P` the ML-KEM parameter set type of `$kind` (one of the three kinds).
macro_rules! with_kem {
    ($kind:expr, $P:ident => $body:expr) => {
        match $kind {
            KIND_ML_KEM_512 => {
                type $P = ml_kem::MlKem512;
                $body
            }
            KIND_ML_KEM_768 => {
                type $P = ml_kem::MlKem768;
                $body
            }
            _ => {
                type $P = ml_kem::MlKem1024;
                $body
            }
        }
    };
}

/// The ML-KEM decapsulation key of a 64-byte seed (`d || z`, FIPS 203 keygen).
fn seed_array(seed: &[u8; SEED_LEN]) -> ml_kem::Seed {
    ml_kem::Seed::from(*seed)
}

/// The encapsulation key bytes of the ML-KEM key with `seed`.
fn kem_public(kind: u8, seed: &[u8; SEED_LEN]) -> Vec<u8> {
    with_kem!(kind, P => {
        let dk = ml_kem::DecapsulationKey::<P>::from_seed(seed_array(seed));
        dk.encapsulation_key().to_bytes().to_vec()
    })
}

/// Checks an encapsulation key (FIPS 203's modulus check).
fn kem_check_public(kind: u8, ek: &[u8]) -> bool {
    with_kem!(kind, P => {
        ml_kem::Key::<ml_kem::EncapsulationKey<P>>::try_from(ek)
            .ok()
            .and_then(|k| ml_kem::EncapsulationKey::<P>::new(&k).ok())
            .is_some()
    })
}

/// Encapsulates to `ek` with the 32 random bytes `m`: (ciphertext, shared secret).
fn kem_encapsulate(kind: u8, ek: &[u8], m: &[u8; 32]) -> Result<(Vec<u8>, Zeroizing<[u8; 32]>)> {
    with_kem!(kind, P => {
        let key = ml_kem::Key::<ml_kem::EncapsulationKey<P>>::try_from(ek)
            .ok()
            .and_then(|k| ml_kem::EncapsulationKey::<P>::new(&k).ok())
            .ok_or_else(|| Error::invalid("the ML-KEM public key of the recipient is not valid"))?;
        let (ct, mut ss) = key.encapsulate_deterministic(&ml_kem::B32::from(*m));
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&ss);
        ss.zeroize();
        Ok((ct.to_vec(), out))
    })
}

/// Decapsulates `ct` with the key of `seed`. A ciphertext that was not made for this key gives
/// an unrelated secret (FIPS 203's implicit rejection): the slot's tag then fails.
fn kem_decapsulate(kind: u8, seed: &[u8; SEED_LEN], ct: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    with_kem!(kind, P => {
        let dk = ml_kem::DecapsulationKey::<P>::from_seed(seed_array(seed));
        let ct = ml_kem::Ciphertext::<P>::try_from(ct)
            .map_err(|_| crypto("the key slot for this key is damaged (ciphertext length)"))?;
        let mut ss = dk.decapsulate(&ct);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&ss);
        ss.zeroize();
        Ok(out)
    })
}

/// A hybrid public key: P-256 point and ML-KEM encapsulation key.
struct HybridPublic {
    kind: u8,
    p256: PublicKey,
    ek: Vec<u8>,
}

impl HybridPublic {
    /// The PEM body: kind, compressed P-256 point, encapsulation key.
    fn body(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(1 + POINT_LEN + self.ek.len());
        b.push(self.kind);
        b.extend_from_slice(self.p256.to_encoded_point(true).as_bytes());
        b.extend_from_slice(&self.ek);
        b
    }

    fn key_id(&self) -> [u8; KEY_ID_LEN] {
        let digest = Sha256::digest(self.body());
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        id
    }

    fn pem(&self) -> Result<String> {
        pem::encode_string(PUBLIC_LABEL, LineEnding::LF, &self.body())
            .map_err(|e| Error::Internal(format!("encoding a public key: {e}")))
    }

    /// Parses a public body (kind, point, encapsulation key), checking every part.
    fn from_body(body: &[u8]) -> Result<Self> {
        let bad =
            |what: &str| Error::invalid(format!("the hybrid public key is malformed ({what})"));
        let (&kind, rest) = body.split_first().ok_or_else(|| bad("empty"))?;
        let p = params(kind).map_err(|_| bad("unknown kind"))?;
        if rest.len() != POINT_LEN + p.ek {
            return Err(bad("wrong length"));
        }
        let p256 =
            PublicKey::from_sec1_bytes(&rest[..POINT_LEN]).map_err(|_| bad("not a P-256 point"))?;
        let ek = rest[POINT_LEN..].to_vec();
        if !kem_check_public(kind, &ek) {
            return Err(bad("not an ML-KEM encapsulation key"));
        }
        Ok(Self { kind, p256, ek })
    }
}

/// A hybrid private key: P-256 scalar and ML-KEM seed.
struct HybridPrivate {
    kind: u8,
    p256: SecretKey,
    seed: Zeroizing<[u8; SEED_LEN]>,
}

impl HybridPrivate {
    fn random(kind: u8) -> Self {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        OsRng.fill_bytes(&mut seed[..]);
        Self {
            kind,
            p256: SecretKey::random(&mut OsRng),
            seed,
        }
    }

    fn public(&self) -> HybridPublic {
        HybridPublic {
            kind: self.kind,
            p256: self.p256.public_key(),
            ek: kem_public(self.kind, &self.seed),
        }
    }

    fn pem(&self) -> Result<Zeroizing<String>> {
        let mut body = Zeroizing::new([0u8; PRIVATE_LEN]);
        body[0] = self.kind;
        body[1..33].copy_from_slice(&self.p256.to_bytes());
        body[33..].copy_from_slice(&self.seed[..]);
        pem::encode_string(PRIVATE_LABEL, LineEnding::LF, &body[..])
            .map(Zeroizing::new)
            .map_err(|e| Error::Internal(format!("encoding a private key: {e}")))
    }
}

/// Whether `pem` is a hybrid public key (by its PEM label; [`wrap`] checks the rest).
pub fn is_hybrid_public(pem: &str) -> bool {
    pem.trim_start().starts_with(concat!(
        "-----BEGIN ",
        "NEXUSLITE HYBRID PUBLIC KEY",
        "-----"
    ))
}

/// Whether `pem` is a hybrid private key (by its PEM label; [`unwrap`] checks the rest).
pub fn is_hybrid_private(pem: &str) -> bool {
    pem.trim_start().starts_with(concat!(
        "-----BEGIN ",
        "NEXUSLITE HYBRID PRIVATE KEY",
        "-----"
    ))
}

/// The PEM body of `text` if its label is `label`.
fn decode_pem(text: &str, label: &str, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    let (found, body) = pem::decode_vec(text.trim().as_bytes())
        .map_err(|e| Error::invalid(format!("the {what} is not PEM (\"BEGIN {label}\"): {e}")))?;
    let body = Zeroizing::new(body);
    if found != label {
        return Err(Error::invalid(format!(
            "the {what} is a \"{found}\", not a \"{label}\""
        )));
    }
    Ok(body)
}

fn parse_public(text: &str) -> Result<HybridPublic> {
    HybridPublic::from_body(&decode_pem(text, PUBLIC_LABEL, "hybrid public key")?)
}

fn parse_private(text: &str) -> Result<HybridPrivate> {
    let hint = if text.contains("PUBLIC KEY") {
        " (this is a public key)"
    } else {
        ""
    };
    let bad = |what: &str| {
        Error::invalid(format!(
            "the hybrid private key is malformed ({what}){hint}"
        ))
    };
    let body = decode_pem(text, PRIVATE_LABEL, "hybrid private key").map_err(|e| match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{m}{hint}")),
        other => other,
    })?;
    if body.len() != PRIVATE_LEN {
        return Err(bad("wrong length"));
    }
    params(body[0]).map_err(|_| bad("unknown kind"))?;
    let p256 = SecretKey::from_slice(&body[1..33]).map_err(|_| bad("not a P-256 scalar"))?;
    let mut seed = Zeroizing::new([0u8; SEED_LEN]);
    seed.copy_from_slice(&body[33..]);
    Ok(HybridPrivate {
        kind: body[0],
        p256,
        seed,
    })
}

/// A new hybrid key pair of `kind`: (private PEM, public PEM).
pub(crate) fn keygen(kind: u8) -> Result<(Zeroizing<String>, String)> {
    params(kind)?;
    let key = HybridPrivate::random(kind);
    Ok((key.pem()?, key.public().pem()?))
}

/// The public key PEM of the hybrid private key `private_pem`.
pub(crate) fn public_pem(private_pem: &str) -> Result<String> {
    parse_private(private_pem)?.public().pem()
}

/// The key id of a hybrid public key: SHA-256 of its PEM body, first 16 bytes.
pub fn public_key_id(public_pem: &str) -> Result<[u8; 16]> {
    Ok(parse_public(public_pem)?.key_id())
}

/// The key id of the public half of a hybrid private key.
pub fn private_key_id(private_pem: &str) -> Result<[u8; 16]> {
    Ok(parse_private(private_pem)?.public().key_id())
}

/// Offsets of a slot body's parts (docs/FORMAT.md, "Hybrid key slots").
struct Layout {
    p: Params,
}

impl Layout {
    /// The layout of a slot body of `kind`, checked to be that kind's length.
    fn of(kind: u8, body: &[u8]) -> Result<Self> {
        let p = params(kind)?;
        if body.len() != p.body_len() {
            return Err(crypto(format!(
                "the key slot is damaged (a kind {kind} slot is {} bytes, this one {})",
                p.body_len(),
                body.len()
            )));
        }
        Ok(Self { p })
    }

    const ID: usize = 0;
    const POINT: usize = KEY_ID_LEN;
    fn ek(&self) -> usize {
        Self::POINT + POINT_LEN
    }
    fn eph(&self) -> usize {
        self.ek() + self.p.ek
    }
    fn ct(&self) -> usize {
        self.eph() + POINT_LEN
    }
    fn wrapped(&self) -> usize {
        self.ct() + self.p.ct
    }
    fn tag(&self) -> usize {
        self.wrapped() + 32
    }
}

/// The one-time key of a slot: HKDF-SHA256 over both shared secrets.
fn slot_kek(
    kind: u8,
    kem_secret: &[u8; 32],
    ecdh_secret: &[u8],
    file_id: &[u8; 16],
    key_id: &[u8],
    eph: &[u8],
    ct: &[u8],
) -> Result<XChaCha20Poly1305> {
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(kem_secret);
    ikm[32..].copy_from_slice(ecdh_secret);
    let hk = hkdf::Hkdf::<Sha256>::new(Some(file_id), &ikm[..]);
    let mut info = Vec::with_capacity(SLOT_INFO.len() + 1 + key_id.len() + eph.len() + ct.len());
    info.extend_from_slice(SLOT_INFO);
    info.push(kind);
    info.extend_from_slice(key_id);
    info.extend_from_slice(eph);
    info.extend_from_slice(ct);
    let mut kek = Zeroizing::new([0u8; 32]);
    hk.expand(&info, &mut kek[..])
        .map_err(|_| Error::Internal("HKDF output length".into()))?;
    Ok(XChaCha20Poly1305::new_from_slice(&kek[..]).expect("XChaCha20-Poly1305 keys are 32 bytes"))
}

/// Wraps the 32-byte `data_key` for the holder of the hybrid private key of
/// `recipient_public_pem`, bound to the file `file_id`: (slot kind, slot body). The body
/// starts with the recipient's 16-byte key id and holds the recipient's whole public key
/// (so a later rekey can wrap a new data key for it); its layout is in docs/FORMAT.md.
///
/// Errors: `NEXUS_INVALID_ARGUMENT` for a key that is not a hybrid public key.
pub fn wrap(
    data_key: &[u8; 32],
    recipient_public_pem: &str,
    file_id: &[u8; 16],
) -> Result<(u8, Vec<u8>)> {
    let recipient = parse_public(recipient_public_pem)?;
    let p = params(recipient.kind)?;
    let l = Layout { p };
    let id = recipient.key_id();
    let eph = p256::ecdh::EphemeralSecret::random(&mut OsRng);
    let eph_pub = eph.public_key().to_encoded_point(true);
    let ecdh = eph.diffie_hellman(&recipient.p256);
    let mut m = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut m[..]);
    let (ct, kem_secret) = kem_encapsulate(p.kind, &recipient.ek, &m)?;

    let mut body = vec![0u8; p.body_len()];
    body[Layout::ID..Layout::POINT].copy_from_slice(&id);
    body[Layout::POINT..l.ek()].copy_from_slice(recipient.p256.to_encoded_point(true).as_bytes());
    body[l.ek()..l.eph()].copy_from_slice(&recipient.ek);
    body[l.eph()..l.ct()].copy_from_slice(eph_pub.as_bytes());
    body[l.ct()..l.wrapped()].copy_from_slice(&ct);
    let kek = slot_kek(
        p.kind,
        &kem_secret,
        ecdh.raw_secret_bytes(),
        file_id,
        &id,
        eph_pub.as_bytes(),
        &ct,
    )?;
    let mut wrapped = Zeroizing::new(*data_key);
    let (head, tail) = body.split_at_mut(l.wrapped());
    // The one-time key seals one message: a fixed nonce is safe.
    let tag = kek
        .encrypt_in_place_detached(&XNonce::default(), head, &mut wrapped[..])
        .map_err(|_| Error::Internal("wrapping the data key".into()))?;
    tail[..32].copy_from_slice(&wrapped[..]);
    tail[32..].copy_from_slice(&tag);
    Ok((p.kind, body))
}

/// Recovers the data key from the slot of `kind` with `body` with the hybrid private key
/// `private_pem`, for the file `file_id`.
///
/// Errors: `NEXUS_CRYPTO` when the slot does not open (it is for another key, of another
/// kind, for another file, damaged or altered); `NEXUS_INVALID_ARGUMENT` for a key that is
/// not a hybrid private key.
pub fn unwrap(
    kind: u8,
    body: &[u8],
    private_pem: &str,
    file_id: &[u8; 16],
) -> Result<Zeroizing<[u8; 32]>> {
    let key = parse_private(private_pem)?;
    let l = Layout::of(kind, body)?;
    let public = key.public();
    let id = public.key_id();
    if body[Layout::ID..Layout::POINT] != id {
        return Err(crypto("the key slot is for another key"));
    }
    if kind != key.kind {
        return Err(crypto(format!(
            "the key slot is of kind {kind}, the key of kind {}",
            key.kind
        )));
    }
    let eph_bytes = &body[l.eph()..l.ct()];
    let eph = PublicKey::from_sec1_bytes(eph_bytes)
        .map_err(|_| crypto("the key slot for this key is damaged (no valid ephemeral key)"))?;
    let ecdh = p256::ecdh::diffie_hellman(key.p256.to_nonzero_scalar(), eph.as_affine());
    let ct = &body[l.ct()..l.wrapped()];
    let kem_secret = kem_decapsulate(kind, &key.seed, ct)?;
    let kek = slot_kek(
        kind,
        &kem_secret,
        ecdh.raw_secret_bytes(),
        file_id,
        &id,
        eph_bytes,
        ct,
    )?;
    let mut data_key = Zeroizing::new([0u8; 32]);
    data_key.copy_from_slice(&body[l.wrapped()..l.tag()]);
    let tag = Tag::from(<[u8; TAG_LEN]>::try_from(&body[l.tag()..]).expect("16 bytes"));
    kek.decrypt_in_place_detached(
        &XNonce::default(),
        &body[..l.wrapped()],
        &mut data_key[..],
        &tag,
    )
    .map_err(|_| crypto("the key slot for this key does not open (damaged or altered)"))?;
    Ok(data_key)
}

/// The recipient's public key PEM stored in a slot of `kind` with `body`. The stored key
/// must hash to the slot's key id (`NEXUS_CRYPTO` otherwise); that it is genuine is proven
/// only when its holder opens the slot (the tag covers it).
pub fn recipient_public_pem(kind: u8, body: &[u8]) -> Result<String> {
    let l = Layout::of(kind, body)?;
    let mut public_body = Vec::with_capacity(1 + POINT_LEN + l.p.ek);
    public_body.push(kind);
    public_body.extend_from_slice(&body[Layout::POINT..l.eph()]);
    let public = HybridPublic::from_body(&public_body)
        .map_err(|_| crypto("the key slot is damaged (its recipient key is not valid)"))?;
    if public.key_id()[..] != body[Layout::ID..Layout::POINT] {
        return Err(crypto(
            "the key slot is damaged (its recipient key does not match its key id)",
        ));
    }
    public.pem()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> [u8; 16] {
        super::super::seal::new_file_id()
    }

    #[test]
    fn every_kind_wraps_and_unwraps_with_its_recipient_only() {
        for p in PARAMS {
            let (private, public) = keygen(p.kind).unwrap();
            assert!(is_hybrid_private(&private) && !is_hybrid_public(&private));
            assert!(is_hybrid_public(&public) && !is_hybrid_private(&public));
            assert_eq!(public_pem(&private).unwrap(), public);
            let id = public_key_id(&public).unwrap();
            assert_eq!(private_key_id(&private).unwrap(), id);
            let f = file();
            let mut data_key = [0u8; 32];
            OsRng.fill_bytes(&mut data_key);
            let (kind, body) = wrap(&data_key, &public, &f).unwrap();
            assert_eq!(kind, p.kind);
            assert_eq!(body.len(), p.body_len());
            assert_eq!(slot_body_len(kind), Some(body.len()));
            assert_eq!(body[..16], id);
            assert_eq!(recipient_public_pem(kind, &body).unwrap(), public);
            assert_eq!(*unwrap(kind, &body, &private, &f).unwrap(), data_key);
            // Two wraps of one key differ (fresh ephemeral key and encapsulation).
            let (_, again) = wrap(&data_key, &public, &f).unwrap();
            assert_ne!(again, body);
            // Another key of the same kind, another file: refused.
            let (other, _) = keygen(p.kind).unwrap();
            assert!(matches!(
                unwrap(kind, &body, &other, &f),
                Err(Error::Crypto(_))
            ));
            assert!(matches!(
                unwrap(kind, &body, &private, &file()),
                Err(Error::Crypto(_))
            ));
        }
    }

    #[test]
    fn a_changed_byte_anywhere_in_a_slot_is_refused() {
        let (private, public) = keygen(KIND_ML_KEM_512).unwrap();
        let f = file();
        let (kind, body) = wrap(&[7u8; 32], &public, &f).unwrap();
        let l = Layout {
            p: params(kind).unwrap(),
        };
        // One byte in each part: key id, recipient point, encapsulation key, ephemeral point,
        // ciphertext, wrapped key, tag.
        for at in [
            3,
            Layout::POINT + 5,
            l.ek() + 100,
            l.eph() + 7,
            l.ct() + 300,
            l.wrapped() + 1,
            l.tag() + 2,
        ] {
            let mut bad = body.clone();
            bad[at] ^= 0x10;
            let r = unwrap(kind, &bad, &private, &f);
            assert!(matches!(r, Err(Error::Crypto(_))), "byte {at}: {r:?}");
        }
        // Truncated, extended, or read as another kind.
        assert!(unwrap(kind, &body[..body.len() - 1], &private, &f).is_err());
        let mut longer = body.clone();
        longer.push(0);
        assert!(unwrap(kind, &longer, &private, &f).is_err());
        assert!(matches!(
            unwrap(KIND_ML_KEM_768, &body, &private, &f),
            Err(Error::Crypto(_))
        ));
        assert!(matches!(
            unwrap(9, &body, &private, &f),
            Err(Error::Crypto(_))
        ));
        // A stored recipient key that does not match the key id is reported.
        let mut swapped = body.clone();
        swapped[l.ek() + 10] ^= 1;
        assert!(matches!(
            recipient_public_pem(kind, &swapped),
            Err(Error::Crypto(_))
        ));
    }

    #[test]
    fn keys_of_the_wrong_kind_or_shape_are_argument_errors_without_key_material() {
        let (private, public) = keygen(KIND_ML_KEM_768).unwrap();
        let (p256_private, p256_public) = super::super::keygen(None).unwrap();
        let f = file();
        for bad_public in [&private[..], &p256_public[..], "garbage"] {
            let e = wrap(&[0u8; 32], bad_public, &f).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
            assert!(!e.to_string().contains(&private[40..80]), "{e}");
        }
        let (kind, body) = wrap(&[0u8; 32], &public, &f).unwrap();
        for bad_private in [&public[..], &p256_private[..]] {
            let e = unwrap(kind, &body, bad_private, &f).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        }
        let msg = unwrap(kind, &body, &public, &f).unwrap_err().to_string();
        assert!(msg.contains("this is a public key"), "{msg}");
        // A private key whose body was cut short.
        let short =
            pem::encode_string(PRIVATE_LABEL, LineEnding::LF, &[KIND_ML_KEM_768; 40]).unwrap();
        assert!(matches!(
            private_key_id(&short),
            Err(Error::InvalidArgument(_))
        ));
        // An encapsulation key that fails FIPS 203's modulus check (all coefficients 0xFFF).
        let mut body = parse_public(&public).unwrap().body();
        for b in &mut body[1 + POINT_LEN..] {
            *b = 0xFF;
        }
        let forged = pem::encode_string(PUBLIC_LABEL, LineEnding::LF, &body).unwrap();
        assert!(matches!(
            public_key_id(&forged),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn slot_sizes_are_the_documented_ones() {
        assert_eq!(slot_body_len(KIND_ML_KEM_512), Some(1698));
        assert_eq!(slot_body_len(KIND_ML_KEM_768), Some(2402));
        assert_eq!(slot_body_len(KIND_ML_KEM_1024), Some(3266));
        assert_eq!(slot_body_len(1), None);
        assert_eq!(kind_of_algorithm("ml-kem-768"), Some(KIND_ML_KEM_768));
        assert_eq!(kind_of_algorithm("p256"), None);
    }
}
