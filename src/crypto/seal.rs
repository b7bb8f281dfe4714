//! Encryption at rest (#20): the data key that seals a database's pages and log records, and
//! the key slots that wrap it for each recipient.
//!
//! - **Sealing** ([`Sealer`]): an AEAD, chosen per file when it is created ([`Cipher`]):
//!   AES-256-GCM where the processor has AES and carry-less multiply instructions (several
//!   times faster there), XChaCha20-Poly1305 elsewhere (constant time without AES hardware,
//!   which firmware hosts often lack). Every sealed unit (a page, the operations of a log
//!   record) carries a 24-byte nonce and a 16-byte tag ([`OVERHEAD`]). Nonces are a random
//!   128-bit prefix drawn when the database is opened followed by a 64-bit counter: they
//!   never repeat under one key, also after a restore from a backup or in several processes
//!   at once (192-bit nonces leave no practical chance of a prefix drawn twice). AES-GCM takes
//!   96-bit nonces, so under it the prefix selects a unit key of its own (HKDF-SHA256 of the
//!   data key, the file identity and the prefix) and the counter is the GCM nonce: a nonce
//!   never repeats under a unit key, and no limit on random 96-bit nonces applies. The
//!   associated data binds a unit to its place: the domain (page or log record), the file's
//!   random identity and the unit's numbers (page number; lap, LSN and operation count of a
//!   log record), so a unit moved to another position, another file or another kind of place
//!   fails its tag.
//! - **Key slots** ([`wrap`], [`unwrap`]): the data key sealed to one recipient's P-256 public
//!   key, ECIES-style: an ephemeral key pair, ECDH with the recipient, HKDF-SHA256 (salt: the
//!   file identity; info: the ephemeral public key and the recipient's key id) to a one-time
//!   key, XChaCha20-Poly1305 over the data key. A slot names its recipient by the first 16
//!   bytes of SHA-256 of the recipient's SPKI DER, so opening needs no trial decryption.
//!
//! Keys live in types that zeroize their memory when dropped; no key material goes into an
//! error message.

use super::Zeroizing;
use crate::error::{Error, Result};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use p256::elliptic_curve::rand_core::{OsRng, RngCore};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};
use p256::{PublicKey, SecretKey};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes a sealed unit carries beyond its data: the nonce, then the tag.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Bytes of a file identity.
pub const FILE_ID_LEN: usize = 16;
/// Bytes of a key id (the start of SHA-256 of the recipient's SPKI DER).
pub const KEY_ID_LEN: usize = 16;
/// Bytes of the body of a P-256 key slot: key id, the recipient's public key (SEC1
/// compressed, so a rekey can wrap a new data key for every recipient), the ephemeral public
/// key (SEC1 uncompressed), the wrapped data key and its tag.
const P256_BODY: usize = KEY_ID_LEN + 33 + 65 + 32 + TAG_LEN;
/// Kind of a P-256 slot (kinds 2 to 4: P-256 + ML-KEM hybrids, feature `pqc`).
const SLOT_P256: u8 = 1;
const SLOT_INFO: &[u8] = b"NexusLite key slot v1";
/// Bytes of a P-256 key slot (kind and body).
pub const P256_SLOT_LEN: usize = 1 + P256_BODY;

/// One key slot: its kind, then a body that starts with the recipient's key id.
#[derive(Clone, PartialEq, Eq)]
pub struct Slot(Vec<u8>);

impl Slot {
    /// A slot read from a file: `None` when too short to name a recipient.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() > KEY_ID_LEN).then(|| Self(bytes.to_vec()))
    }

    /// The slot as stored: kind, then body.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The slot's kind.
    pub fn kind(&self) -> u8 {
        self.0[0]
    }

    /// The key id of the recipient the slot is for.
    pub fn key_id(&self) -> [u8; KEY_ID_LEN] {
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&self.0[1..1 + KEY_ID_LEN]);
        id
    }

    /// The recipient's public key (SPKI PEM), as the slot records it.
    pub fn recipient_pem(&self) -> Result<String> {
        #[cfg(feature = "pqc")]
        if self.kind() != SLOT_P256 {
            return super::pqc::recipient_public_pem(self.kind(), &self.0[1..]);
        }
        if self.kind() != SLOT_P256 || self.0.len() != 1 + P256_BODY {
            return Err(crypto(format!("key slot of unknown kind {}", self.kind())));
        }
        let at = 1 + KEY_ID_LEN;
        let public = PublicKey::from_sec1_bytes(&self.0[at..at + 33])
            .map_err(|_| crypto("a key slot is damaged (no valid recipient key)"))?;
        public
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .map_err(|e| Error::Internal(format!("encoding a public key: {e}")))
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slot(kind {}, {} bytes)", self.kind(), self.0.len())
    }
}

/// What a sealed unit is (part of its associated data).
#[derive(Clone, Copy)]
#[repr(u8)]
pub enum Domain {
    /// A page of `NAME.db`; numbers: page number.
    Page = 1,
    /// The operations of a log record; numbers: lap, LSN, operation count.
    LogRecord = 2,
}

/// The AEAD that seals the pages and log records of one file, fixed when the file is created
/// (the header's format version records it, `docs/FORMAT.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    /// XChaCha20-Poly1305 (format versions 4 and 7).
    XChaCha20Poly1305,
    /// AES-256-GCM under a unit key per nonce prefix (format versions 5 and 8).
    Aes256Gcm,
}

impl Cipher {
    /// What a new file gets on this machine: AES-256-GCM where the processor has AES and
    /// carry-less multiply instructions, XChaCha20-Poly1305 where it has not (software AES
    /// is slower than ChaCha20 and hard to keep constant time).
    pub fn preferred() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
        {
            return Self::Aes256Gcm;
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
        {
            return Self::Aes256Gcm;
        }
        Self::XChaCha20Poly1305
    }

    /// The name in options and statistics.
    pub fn name(self) -> &'static str {
        match self {
            Self::XChaCha20Poly1305 => "xchacha20-poly1305",
            Self::Aes256Gcm => "aes-256-gcm",
        }
    }

    /// The cipher named `name` ([`Cipher::name`]).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "xchacha20-poly1305" => Ok(Self::XChaCha20Poly1305),
            "aes-256-gcm" => Ok(Self::Aes256Gcm),
            other => Err(Error::invalid(format!(
                "open option 'encryption_cipher': unknown cipher '{other}' (expected \"aes-256-gcm\" or \"xchacha20-poly1305\")"
            ))),
        }
    }
}

/// A random 256-bit data key, zeroized when dropped.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A new random data key.
    pub fn random() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut k[..]);
        Self(k)
    }
}

/// Bytes of [`slots_mac`].
pub const SLOTS_MAC_LEN: usize = 32;

/// The authentication of a file's key slots under its data key: HMAC-SHA256 keyed with a
/// key derived from the data key (HKDF, info `"NexusLite key slots mac v1"`) over `bytes`.
/// A slot's own tag only its recipient can check; this lets every holder of the data key
/// check that nobody without it changed, added or removed a slot (a rekey wraps the new
/// data key for the public keys the slots record: they must be the ones a key holder put
/// there).
pub fn slots_mac(key: &DataKey, bytes: &[u8]) -> [u8; SLOTS_MAC_LEN] {
    let mut mac_key = Zeroizing::new([0u8; 32]);
    hkdf::Hkdf::<Sha256>::new(None, &key.0[..])
        .expand(b"NexusLite key slots mac v1", &mut mac_key[..])
        .expect("HKDF-SHA256 gives 32 bytes");
    // HKDF-Extract with the MAC key as salt is HMAC-SHA256(mac_key, bytes) (RFC 5869).
    let (prk, _) = hkdf::Hkdf::<Sha256>::extract(Some(&mac_key[..]), bytes);
    let mut out = [0u8; SLOTS_MAC_LEN];
    out.copy_from_slice(&prk);
    out
}

/// A new random file identity.
pub fn new_file_id() -> [u8; FILE_ID_LEN] {
    let mut id = [0u8; FILE_ID_LEN];
    OsRng.fill_bytes(&mut id);
    id
}

/// Seals and opens the units of one database under its data key.
pub struct Sealer {
    keys: parking_lot::RwLock<Keys>,
    cipher: Cipher,
    file_id: [u8; FILE_ID_LEN],
    prefix: [u8; 16],
    counter: AtomicU64,
}

/// The data key a sealer seals with and, while a rekey rewrites the file, the one it replaces
/// (units under either open).
struct Keys {
    current: UnitKeys,
    previous: Option<UnitKeys>,
    /// Starts and ends of rekeys so far (see [`Sealer::key_changes`]).
    changes: u64,
}

/// A data key and what seals and opens units under it.
struct UnitKeys {
    data: DataKey,
    aead: Aead,
}

enum Aead {
    XChaCha(XChaCha20Poly1305),
    Aes {
        /// The unit key of this sealer's own nonce prefix (every unit it seals).
        own: AesKey,
        /// Unit keys of other prefixes (units sealed by earlier opens), derived on first use.
        others: parking_lot::Mutex<HashMap<[u8; 16], std::sync::Arc<AesKey>>>,
    },
}

/// Unit keys of other prefixes kept at most; past it the map starts again (a derivation costs
/// about one HKDF-SHA256).
const AES_KEYS_KEPT: usize = 64;
const AES_UNIT_INFO: &[u8] = b"NexusLite AES-256-GCM unit key v1";

/// An AES-256-GCM key (ring's, whose expanded key schedule has no zeroizing drop of its own:
/// this wrapper overwrites its bytes with zeros when dropped).
struct AesKey(Box<ManuallyDrop<ring::aead::LessSafeKey>>);

impl AesKey {
    /// The unit key of nonce prefix `prefix` in file `file_id` under `data`.
    fn derive(data: &DataKey, file_id: &[u8; FILE_ID_LEN], prefix: &[u8; 16]) -> Self {
        let mut info = [0u8; AES_UNIT_INFO.len() + 16];
        info[..AES_UNIT_INFO.len()].copy_from_slice(AES_UNIT_INFO);
        info[AES_UNIT_INFO.len()..].copy_from_slice(prefix);
        let mut k = Zeroizing::new([0u8; 32]);
        hkdf::Hkdf::<Sha256>::new(Some(file_id), &data.0[..])
            .expand(&info, &mut k[..])
            .expect("HKDF-SHA256 gives 32 bytes");
        let key = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &k[..])
            .expect("AES-256-GCM keys are 32 bytes");
        Self(Box::new(ManuallyDrop::new(ring::aead::LessSafeKey::new(
            key,
        ))))
    }
}

impl Drop for AesKey {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        let p: *mut ManuallyDrop<ring::aead::LessSafeKey> = &mut *self.0;
        // SAFETY: `p` points to memory this value owns, valid for writes of its size; the key
        // is never used (nor dropped: `ManuallyDrop`) after this. Volatile writes are not
        // elided although the memory is freed right after.
        unsafe {
            let bytes = p.cast::<u8>();
            for i in 0..std::mem::size_of::<ManuallyDrop<ring::aead::LessSafeKey>>() {
                std::ptr::write_volatile(bytes.add(i), 0);
            }
        }
    }
}

impl UnitKeys {
    fn new(data: &DataKey, cipher: Cipher, file_id: &[u8; FILE_ID_LEN], prefix: &[u8; 16]) -> Self {
        let data = DataKey(data.0.clone());
        let aead = match cipher {
            Cipher::XChaCha20Poly1305 => Aead::XChaCha(self::cipher(&data.0[..])),
            Cipher::Aes256Gcm => Aead::Aes {
                own: AesKey::derive(&data, file_id, prefix),
                others: parking_lot::Mutex::new(HashMap::new()),
            },
        };
        Self { data, aead }
    }

    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
        match &self.aead {
            Aead::XChaCha(c) => c
                .encrypt_in_place_detached(&XNonce::from(*nonce), aad, data)
                // Only a message past 256 GiB fails; units are pages and log records.
                .expect("XChaCha20-Poly1305 seals any unit smaller than 256 GiB")
                .into(),
            Aead::Aes { own, .. } => {
                let tag = own
                    .0
                    .seal_in_place_separate_tag(gcm_nonce(nonce), ring::aead::Aad::from(aad), data)
                    .expect("AES-256-GCM seals any unit smaller than 64 GiB");
                let mut t = [0u8; TAG_LEN];
                t.copy_from_slice(tag.as_ref());
                t
            }
        }
    }

    /// Whether `data` opens (decrypted in place); when it does not, `data` is unspecified.
    fn open(
        &self,
        file_id: &[u8; FILE_ID_LEN],
        own_prefix: &[u8; 16],
        nonce: &[u8; NONCE_LEN],
        tag: &[u8; TAG_LEN],
        aad: &[u8],
        data: &mut [u8],
    ) -> bool {
        match &self.aead {
            Aead::XChaCha(c) => c
                .decrypt_in_place_detached(&XNonce::from(*nonce), aad, data, &Tag::from(*tag))
                .is_ok(),
            Aead::Aes { own, others } => {
                let mut prefix = [0u8; 16];
                prefix.copy_from_slice(&nonce[..16]);
                let other;
                let key = if &prefix == own_prefix {
                    own
                } else {
                    let mut map = others.lock();
                    other = match map.get(&prefix) {
                        Some(k) => std::sync::Arc::clone(k),
                        None => {
                            if map.len() >= AES_KEYS_KEPT {
                                map.clear();
                            }
                            let k =
                                std::sync::Arc::new(AesKey::derive(&self.data, file_id, &prefix));
                            map.insert(prefix, std::sync::Arc::clone(&k));
                            k
                        }
                    };
                    drop(map);
                    &*other
                };
                key.0
                    .open_in_place_separate_tag(
                        gcm_nonce(nonce),
                        ring::aead::Aad::from(aad),
                        ring::aead::Tag::from(*tag),
                        data,
                        0..,
                    )
                    .is_ok()
            }
        }
    }
}

/// The AES-GCM nonce of a unit: the counter part of its 24-byte nonce (the prefix chose the
/// unit key).
fn gcm_nonce(nonce: &[u8; NONCE_LEN]) -> ring::aead::Nonce {
    let mut n = [0u8; ring::aead::NONCE_LEN];
    n[4..].copy_from_slice(&nonce[16..]);
    ring::aead::Nonce::assume_unique_for_key(n)
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer for the file `file_id` under `key` with `cipher`.
    pub fn new(key: &DataKey, file_id: [u8; FILE_ID_LEN], cipher: Cipher) -> Self {
        let mut prefix = [0u8; 16];
        OsRng.fill_bytes(&mut prefix);
        Self {
            keys: parking_lot::RwLock::new(Keys {
                current: UnitKeys::new(key, cipher, &file_id, &prefix),
                previous: None,
                changes: 0,
            }),
            cipher,
            file_id,
            prefix,
            counter: AtomicU64::new(0),
        }
    }

    /// The AEAD of this file.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// A key slot of this file's data key for the holder of `recipient_pem`'s private key.
    pub fn wrap_for(&self, recipient_pem: &str) -> Result<Slot> {
        wrap(&self.keys.read().current.data, recipient_pem, &self.file_id)
    }

    /// [`slots_mac`] under the data key this sealer seals with.
    pub fn slots_mac(&self, bytes: &[u8]) -> [u8; SLOTS_MAC_LEN] {
        slots_mac(&self.keys.read().current.data, bytes)
    }

    /// Starts a rekey: seals under `key` from now on; units sealed under the key it had
    /// still open until [`Sealer::end_rekey`].
    pub fn begin_rekey(&self, key: &DataKey) {
        let next = UnitKeys::new(key, self.cipher, &self.file_id, &self.prefix);
        let mut k = self.keys.write();
        let old = std::mem::replace(&mut k.current, next);
        k.previous = Some(old);
        k.changes += 1;
    }

    /// Ends a rekey: `done`, only the new key opens units; else the old key is back.
    pub fn end_rekey(&self, done: bool) {
        let mut k = self.keys.write();
        if let Some(old) = k.previous.take() {
            if !done {
                k.current = old;
            }
        }
        k.changes += 1;
    }

    /// How many times a rekey started or ended: a unit read before a change and checked
    /// after it (read under the old key, checked once only the new one opens) may fail
    /// without being damaged, so a reader that saw this number move reads it again.
    pub fn key_changes(&self) -> u64 {
        self.keys.read().changes
    }

    /// Whether a rekey is under way (a unit that fails may have been read while rewritten).
    pub fn rekeying(&self) -> bool {
        self.keys.read().previous.is_some()
    }

    /// The file identity bound into every unit.
    pub fn file_id(&self) -> [u8; FILE_ID_LEN] {
        self.file_id
    }

    fn aad(&self, domain: Domain, numbers: [u64; 3]) -> [u8; 1 + FILE_ID_LEN + 24] {
        let mut a = [0u8; 1 + FILE_ID_LEN + 24];
        a[0] = domain as u8;
        a[1..1 + FILE_ID_LEN].copy_from_slice(&self.file_id);
        for (i, n) in numbers.iter().enumerate() {
            let o = 1 + FILE_ID_LEN + 8 * i;
            a[o..o + 8].copy_from_slice(&n.to_le_bytes());
        }
        a
    }

    /// Encrypts `data` in place and writes its nonce and tag into `trailer`
    /// ([`OVERHEAD`] bytes).
    pub fn seal(&self, domain: Domain, numbers: [u64; 3], data: &mut [u8], trailer: &mut [u8]) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..16].copy_from_slice(&self.prefix);
        nonce[16..].copy_from_slice(&n.to_le_bytes());
        let tag = self
            .keys
            .read()
            .current
            .seal(&nonce, &self.aad(domain, numbers), data);
        trailer[..NONCE_LEN].copy_from_slice(&nonce);
        trailer[NONCE_LEN..OVERHEAD].copy_from_slice(&tag);
    }

    /// Decrypts `data` in place if `trailer` authenticates it at this place; `false` (and
    /// `data` unspecified) when it does not: damaged, altered, moved, or of another file.
    #[must_use]
    pub fn open(&self, domain: Domain, numbers: [u64; 3], data: &mut [u8], trailer: &[u8]) -> bool {
        let (Ok(nonce), Ok(tag)) = (
            <[u8; NONCE_LEN]>::try_from(&trailer[..NONCE_LEN.min(trailer.len())]),
            <[u8; TAG_LEN]>::try_from(&trailer[NONCE_LEN.min(trailer.len())..]),
        ) else {
            return false;
        };
        let aad = self.aad(domain, numbers);
        let keys = self.keys.read();
        let open = |k: &UnitKeys, data: &mut [u8]| {
            k.open(&self.file_id, &self.prefix, &nonce, &tag, &aad, data)
        };
        if let Some(old) = &keys.previous {
            // A rekey is rewriting the file: the unit is under either key. A failed attempt
            // may leave `data` altered (AES-GCM decrypts as it authenticates), so it works on
            // a copy.
            let mut copy = data.to_vec();
            if open(old, &mut copy) {
                data.copy_from_slice(&copy);
                return true;
            }
        }
        open(&keys.current, data)
    }
}

/// The cipher of a 32-byte key (every key here is 32 bytes).
fn cipher(key: &[u8]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new_from_slice(key).expect("XChaCha20-Poly1305 keys are 32 bytes")
}

fn crypto(msg: impl Into<String>) -> Error {
    Error::Crypto(msg.into())
}

/// The key id of a P-256 public key.
fn key_id(public: &PublicKey) -> Result<[u8; KEY_ID_LEN]> {
    let der = public
        .to_public_key_der()
        .map_err(|e| Error::Internal(format!("encoding a public key: {e}")))?;
    let digest = Sha256::digest(der.as_bytes());
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    Ok(id)
}

/// The public key in `pem` (SPKI, P-256), with the signatures' own parsing and messages.
fn parse_public(pem: &str) -> Result<PublicKey> {
    super::public_key_of(pem).map(|key| PublicKey::from(&key))
}

fn parse_private(pem: &str) -> Result<SecretKey> {
    SecretKey::from_pkcs8_pem(pem.trim()).map_err(|e| {
        let hint = if pem.contains("PUBLIC KEY") {
            " (this is a public key: a database opens with its private key)"
        } else {
            ""
        };
        Error::invalid(format!(
            "the encryption key is not a P-256 private key in PKCS#8 PEM (\"BEGIN PRIVATE KEY\"){hint}: {e}"
        ))
    })
}

/// The key id of the public key in `pem` (SPKI).
pub fn public_key_id(pem: &str) -> Result<[u8; KEY_ID_LEN]> {
    #[cfg(feature = "pqc")]
    if super::pqc::is_hybrid_public(pem) {
        return super::pqc::public_key_id(pem);
    }
    key_id(&parse_public(pem)?)
}

/// The public key (SPKI PEM) and key id of the private key `pem` (PKCS#8).
pub fn private_key_id(pem: &str) -> Result<[u8; KEY_ID_LEN]> {
    #[cfg(feature = "pqc")]
    if super::pqc::is_hybrid_private(pem) {
        return super::pqc::private_key_id(pem);
    }
    key_id(&parse_private(pem)?.public_key())
}

/// The one-time key that wraps the data key in a slot: HKDF-SHA256 of the ECDH secret.
fn slot_kek(
    shared: &p256::ecdh::SharedSecret,
    file_id: &[u8; FILE_ID_LEN],
    eph: &[u8],
    id: &[u8; KEY_ID_LEN],
) -> Result<XChaCha20Poly1305> {
    let hk = shared.extract::<Sha256>(Some(file_id));
    let mut kek = Zeroizing::new([0u8; 32]);
    let mut info = Vec::with_capacity(SLOT_INFO.len() + eph.len() + id.len());
    info.extend_from_slice(SLOT_INFO);
    info.extend_from_slice(eph);
    info.extend_from_slice(id);
    hk.expand(&info, &mut kek[..])
        .map_err(|_| Error::Internal("HKDF output length".into()))?;
    Ok(cipher(&kek[..]))
}

/// A key slot that lets the holder of `recipient_pem`'s private key recover `key`.
pub fn wrap(key: &DataKey, recipient_pem: &str, file_id: &[u8; FILE_ID_LEN]) -> Result<Slot> {
    #[cfg(feature = "pqc")]
    if super::pqc::is_hybrid_public(recipient_pem) {
        let (kind, body) = super::pqc::wrap(&key.0, recipient_pem, file_id)?;
        let mut slot = Vec::with_capacity(1 + body.len());
        slot.push(kind);
        slot.extend_from_slice(&body);
        return Ok(Slot(slot));
    }
    let recipient = parse_public(recipient_pem)?;
    let id = key_id(&recipient)?;
    let eph = p256::ecdh::EphemeralSecret::random(&mut OsRng);
    let eph_pub = eph.public_key().to_encoded_point(false);
    let shared = eph.diffie_hellman(&recipient);
    let kek = slot_kek(&shared, file_id, eph_pub.as_bytes(), &id)?;
    let mut wrapped = Zeroizing::new([0u8; 32]);
    wrapped.copy_from_slice(&key.0[..]);
    // The one-time key seals one message: a fixed nonce is safe.
    let tag = kek
        .encrypt_in_place_detached(&XNonce::default(), file_id, &mut wrapped[..])
        .map_err(|_| Error::Internal("wrapping the data key".into()))?;
    let mut slot = Vec::with_capacity(1 + P256_BODY);
    slot.push(SLOT_P256);
    slot.extend_from_slice(&id);
    slot.extend_from_slice(recipient.to_encoded_point(true).as_bytes());
    slot.extend_from_slice(eph_pub.as_bytes());
    slot.extend_from_slice(&wrapped[..]);
    slot.extend_from_slice(&tag);
    debug_assert_eq!(slot.len(), 1 + P256_BODY);
    Ok(Slot(slot))
}

/// The data key, recovered with the private key `private_pem` from whichever of `slots`
/// names it: `NEXUS_CRYPTO` when none does or the slot does not open.
pub fn unwrap(slots: &[Slot], private_pem: &str, file_id: &[u8; FILE_ID_LEN]) -> Result<DataKey> {
    #[cfg(feature = "pqc")]
    if super::pqc::is_hybrid_private(private_pem) {
        let id = super::pqc::private_key_id(private_pem)?;
        let slot = slots.iter().find(|s| s.key_id() == id).ok_or_else(|| {
            crypto("no key slot for this key: the database is encrypted to other keys")
        })?;
        let key = super::pqc::unwrap(slot.kind(), &slot.0[1..], private_pem, file_id)?;
        return Ok(DataKey(key));
    }
    let secret = parse_private(private_pem)?;
    let id = key_id(&secret.public_key())?;
    let slot = slots.iter().find(|s| s.key_id() == id).ok_or_else(|| {
        crypto("no key slot for this key: the database is encrypted to other keys")
    })?;
    if slot.kind() != SLOT_P256 || slot.0.len() != 1 + P256_BODY {
        return Err(crypto(format!("key slot of unknown kind {}", slot.kind())));
    }
    let body = &slot.0[1..];
    let eph_at = KEY_ID_LEN + 33;
    let eph_bytes = &body[eph_at..eph_at + 65];
    let eph = PublicKey::from_sec1_bytes(eph_bytes)
        .map_err(|_| crypto("the key slot for this key is damaged (no valid ephemeral key)"))?;
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), eph.as_affine());
    let kek = slot_kek(&shared, file_id, eph_bytes, &id)?;
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&body[eph_at + 65..eph_at + 97]);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&body[eph_at + 97..]);
    kek.decrypt_in_place_detached(&XNonce::default(), file_id, &mut key[..], &Tag::from(tag))
        .map_err(|_| crypto("the key slot for this key does not open (damaged or altered)"))?;
    Ok(DataKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_opens_only_at_its_place_under_its_key() {
        for cipher in [Cipher::XChaCha20Poly1305, Cipher::Aes256Gcm] {
            a_unit_opens_only_at_its_place_under_its_key_with(cipher);
        }
    }

    /// Units sealed by other opens (other nonce prefixes: other AES unit keys) open, under the
    /// old or the new key while a rekey runs, and never under the other cipher.
    #[test]
    fn units_of_other_opens_and_of_a_rekey_open() {
        for cipher in [Cipher::XChaCha20Poly1305, Cipher::Aes256Gcm] {
            let (key, file) = (DataKey::random(), new_file_id());
            let seal_one = |s: &Sealer, page: u64| {
                let mut d = format!("page {page} body").into_bytes();
                let mut t = [0u8; OVERHEAD];
                s.seal(Domain::Page, [page, 0, 0], &mut d, &mut t);
                (d, t)
            };
            // 100 earlier opens (more than the unit keys kept), each sealing a page.
            let sealed: Vec<_> = (0..100u64)
                .map(|p| seal_one(&Sealer::new(&key, file, cipher), p))
                .collect();
            let reader = Sealer::new(&key, file, cipher);
            for _ in 0..2 {
                for (p, (d, t)) in sealed.iter().enumerate() {
                    let mut d = d.clone();
                    assert!(reader.open(Domain::Page, [p as u64, 0, 0], &mut d, t));
                    assert_eq!(d, format!("page {p} body").into_bytes());
                }
            }
            let other = match cipher {
                Cipher::Aes256Gcm => Cipher::XChaCha20Poly1305,
                Cipher::XChaCha20Poly1305 => Cipher::Aes256Gcm,
            };
            let (d, t) = &sealed[0];
            let mut d = d.clone();
            assert!(!Sealer::new(&key, file, other).open(Domain::Page, [0, 0, 0], &mut d, t));
            // A rekey: units under the old key and under the new one open until it ends; a
            // failed attempt under the old key does not spoil the data for the new one.
            let before = seal_one(&reader, 7);
            let next = DataKey::random();
            reader.begin_rekey(&next);
            let after = seal_one(&reader, 8);
            for (p, (d, t)) in [(7u64, &before), (8, &after)] {
                let mut d = d.clone();
                assert!(
                    reader.open(Domain::Page, [p, 0, 0], &mut d, t),
                    "{cipher:?}"
                );
                assert_eq!(d, format!("page {p} body").into_bytes());
            }
            reader.end_rekey(true);
            let mut d = before.0.clone();
            assert!(!reader.open(Domain::Page, [7, 0, 0], &mut d, &before.1));
            let mut d = after.0.clone();
            assert!(Sealer::new(&next, file, cipher).open(
                Domain::Page,
                [8, 0, 0],
                &mut d,
                &after.1
            ));
        }
    }

    fn a_unit_opens_only_at_its_place_under_its_key_with(cipher: Cipher) {
        let key = DataKey::random();
        let file = new_file_id();
        let s = Sealer::new(&key, file, cipher);
        let mut data = b"marker-plaintext page body".to_vec();
        let mut trailer = [0u8; OVERHEAD];
        s.seal(Domain::Page, [7, 0, 0], &mut data, &mut trailer);
        assert_ne!(&data[..], b"marker-plaintext page body");
        let sealed = data.clone();
        // Another sealer of the same file and key (another open) opens it.
        let again = Sealer::new(&key, file, cipher);
        assert!(again.open(Domain::Page, [7, 0, 0], &mut data, &trailer));
        assert_eq!(&data[..], b"marker-plaintext page body");
        // Another page number, another domain, another file, another key, a flipped bit.
        for (dom, nums, s2) in [
            (Domain::Page, [8, 0, 0], Sealer::new(&key, file, cipher)),
            (
                Domain::LogRecord,
                [7, 0, 0],
                Sealer::new(&key, file, cipher),
            ),
            (
                Domain::Page,
                [7, 0, 0],
                Sealer::new(&key, new_file_id(), cipher),
            ),
            (
                Domain::Page,
                [7, 0, 0],
                Sealer::new(&DataKey::random(), file, cipher),
            ),
        ] {
            let mut d = sealed.clone();
            assert!(!s2.open(dom, nums, &mut d, &trailer));
        }
        let mut d = sealed.clone();
        d[3] ^= 1;
        assert!(!s.open(Domain::Page, [7, 0, 0], &mut d, &trailer));
        // Nonces do not repeat.
        let mut t2 = [0u8; OVERHEAD];
        let mut d2 = b"x".to_vec();
        s.seal(Domain::Page, [7, 0, 0], &mut d2, &mut t2);
        assert_ne!(trailer[..24], t2[..24]);
    }

    #[test]
    fn a_slot_opens_with_its_recipient_only() {
        let (priv_a, pub_a) = super::super::keygen(None).unwrap();
        let (priv_b, _) = super::super::keygen(None).unwrap();
        let file = new_file_id();
        let key = DataKey::random();
        let slot = wrap(&key, &pub_a, &file).unwrap();
        let back = unwrap(std::slice::from_ref(&slot), &priv_a, &file).unwrap();
        assert_eq!(&back.0[..], &key.0[..]);
        assert_eq!(slot.key_id(), public_key_id(&pub_a).unwrap());
        assert_eq!(
            public_key_id(&slot.recipient_pem().unwrap()).unwrap(),
            slot.key_id()
        );
        assert_eq!(
            private_key_id(&priv_a).unwrap(),
            public_key_id(&pub_a).unwrap()
        );
        let e = unwrap(std::slice::from_ref(&slot), &priv_b, &file)
            .err()
            .unwrap();
        assert!(matches!(e, Error::Crypto(_)), "{e:?}");
        // Another file's identity, or a damaged slot, does not open.
        assert!(matches!(
            unwrap(std::slice::from_ref(&slot), &priv_a, &new_file_id()),
            Err(Error::Crypto(_))
        ));
        let mut bad = slot.clone();
        let n = bad.0.len();
        bad.0[n - 20] ^= 1;
        assert!(matches!(
            unwrap(&[bad], &priv_a, &file),
            Err(Error::Crypto(_))
        ));
        // A public key where a private one belongs is a clear argument error.
        assert!(matches!(
            unwrap(std::slice::from_ref(&slot), &pub_a, &file),
            Err(Error::InvalidArgument(_))
        ));
    }
}
