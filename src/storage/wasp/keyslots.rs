//! The key slots of an encrypted file (format versions 4, 5, 7 and 8): the file identity, the
//! cipher, and the data key
//! wrapped for each recipient, in the clear in page 0 after the header. Two copies, each
//! with a generation and a checksum, as the manifest has: a change writes the copy the
//! current one is not in and syncs, so a torn write leaves the previous copy in force
//! (`docs/FORMAT.md`, "Encryption").
//!
//! ```text
//! copy c (c = generation mod 2) at HEADER_LEN + c * area, area = (page_size - 64) / 2
//!  0 "NXKEYS02" | 8 generation u64 | 16 file id [16] | 32 cipher u8 | 33 0 0 0
//!  (cipher 1: XChaCha20-Poly1305, format versions 4 and 7; 2: AES-256-GCM, 5 and 8)
//!  36 count u32 | 40 slots, each: length u16, kind u8, body
//!  | mac [32]: HMAC-SHA256 under a key derived from the data key, of everything before it
//!  | crc32 of everything before it
//! ```
//!
//! The mac lets a holder of the data key tell that nobody without it changed the slots: a
//! slot's recipient public key is what a rekey wraps the new data key for.

use crate::crypto::seal::{self, DataKey, Sealer, Slot, FILE_ID_LEN, SLOTS_MAC_LEN};
use crate::error::{Error, Result};
use crate::storage::file::PageFile;
use crate::storage::header::HEADER_LEN;

/// A plain database given a key (nothing is changed).
pub(crate) fn not_encrypted(what: &str) -> Error {
    Error::invalid(format!(
        "{what} is not encrypted, and an encryption key was given; it was left unchanged (make an encrypted copy with nexus_backup_with and the option encrypt_to)"
    ))
}

/// An encrypted database opened without a key.
pub(crate) fn key_needed(what: &str) -> Error {
    Error::Crypto(format!(
        "{what}: database is encrypted: open it with the option encryption_key (the private key of one of its recipients)"
    ))
}

const MAGIC: &[u8; 8] = b"NXKEYS02";
/// XChaCha20-Poly1305 pages and records (format versions 4 and 7).
const CIPHER_XCHACHA: u8 = 1;
/// AES-256-GCM pages and records (format versions 5 and 8).
const CIPHER_AES_GCM: u8 = 2;

fn cipher_id(c: seal::Cipher) -> u8 {
    match c {
        seal::Cipher::XChaCha20Poly1305 => CIPHER_XCHACHA,
        seal::Cipher::Aes256Gcm => CIPHER_AES_GCM,
    }
}
const FIXED: usize = 40;

/// The decoded key slots of a file.
#[derive(Clone)]
pub(crate) struct KeySlots {
    pub(crate) generation: u64,
    pub(crate) file_id: [u8; FILE_ID_LEN],
    /// The AEAD of the file's pages and records (covered by the mac).
    pub(crate) cipher: seal::Cipher,
    pub(crate) slots: Vec<Slot>,
    /// The mac read with these slots (zeros for slots made here, until written).
    mac: [u8; SLOTS_MAC_LEN],
}

/// Bytes of one copy in a page-0 of `page_size` bytes.
fn area(page_size: usize) -> usize {
    (page_size - HEADER_LEN) / 2
}

/// P-256 recipients a file of `page_size`-byte pages has room for.
pub(crate) fn max_slots(page_size: usize) -> usize {
    (area(page_size) - FIXED - SLOTS_MAC_LEN - 4) / (2 + seal::P256_SLOT_LEN)
}

impl KeySlots {
    /// The slots of a new encrypted file for the holder of `private_pem`, and the sealer of
    /// its new random data key.
    pub(crate) fn create(private_pem: &str, cipher: seal::Cipher) -> Result<(Self, Sealer)> {
        let public = crate::crypto::public_key(private_pem).map_err(|e| match e {
            Error::Crypto(m) => {
                Error::InvalidArgument(format!("open option 'encryption_key': {m}"))
            }
            other => other,
        })?;
        Self::create_for(&[public], cipher)
    }

    /// The slots of a new encrypted file for the holders of the private keys of
    /// `public_pems` (at least one), and the sealer of its new random data key.
    pub(crate) fn create_for(
        public_pems: &[String],
        cipher: seal::Cipher,
    ) -> Result<(Self, Sealer)> {
        if public_pems.is_empty() {
            return Err(Error::invalid(
                "an encrypted file needs at least one recipient's public key",
            ));
        }
        let key = DataKey::random();
        let file_id = seal::new_file_id();
        let mut slots: Vec<Slot> = Vec::with_capacity(public_pems.len());
        for p in public_pems {
            let slot = seal::wrap(&key, p, &file_id)?;
            if slots.iter().all(|s| s.key_id() != slot.key_id()) {
                slots.push(slot);
            }
        }
        let sealer = Sealer::new(&key, file_id, cipher);
        Ok((
            Self {
                generation: 1,
                file_id,
                cipher,
                slots,
                mac: [0; SLOTS_MAC_LEN],
            },
            sealer,
        ))
    }

    /// The sealer of this file for the holder of `private_pem` (`NEXUS_CRYPTO` when no slot
    /// is theirs).
    pub(crate) fn unlock(&self, private_pem: &str) -> Result<Sealer> {
        let key = seal::unwrap(&self.slots, private_pem, &self.file_id)?;
        let sealer = Sealer::new(&key, self.file_id, self.cipher);
        self.check(&sealer)?;
        Ok(sealer)
    }

    /// `NEXUS_CRYPTO` unless the slots' mac holds under the data key of `sealer`: nobody
    /// without the data key changed them.
    pub(crate) fn check(&self, sealer: &Sealer) -> Result<()> {
        let body = self.body()?;
        let want = sealer.slots_mac(&body);
        // Constant time: the comparison says nothing about where they differ.
        let diff = want
            .iter()
            .zip(self.mac.iter())
            .fold(0u8, |d, (a, b)| d | (a ^ b));
        if diff != 0 {
            return Err(Error::Crypto(
                "the key slots of this database were altered by someone without its data key (their authentication fails); it was left unchanged".into(),
            ));
        }
        Ok(())
    }

    /// What the mac covers: the copy's bytes up to the slots' end.
    fn body(&self) -> Result<Vec<u8>> {
        let mut b = Vec::with_capacity(FIXED + 200 * self.slots.len());
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.generation.to_le_bytes());
        b.extend_from_slice(&self.file_id);
        b.extend_from_slice(&[cipher_id(self.cipher), 0, 0, 0]);
        let count = u32::try_from(self.slots.len())
            .map_err(|_| Error::Internal("key slot count".into()))?;
        b.extend_from_slice(&count.to_le_bytes());
        for s in &self.slots {
            let bytes = s.as_bytes();
            let len =
                u16::try_from(bytes.len()).map_err(|_| Error::Internal("key slot size".into()))?;
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(bytes);
        }
        Ok(b)
    }

    /// Whether the holder of `private_pem` has a slot.
    pub(crate) fn admits(&self, private_pem: &str) -> Result<bool> {
        let id = seal::private_key_id(private_pem)?;
        Ok(self.slots.iter().any(|s| s.key_id() == id))
    }

    /// The copy as written, its mac made with `sealer` (the data key's).
    fn encode(&self, page_size: usize, sealer: &Sealer) -> Result<Vec<u8>> {
        let body = self.body()?;
        if body.len() + SLOTS_MAC_LEN + 4 > area(page_size) {
            return Err(Error::invalid(format!(
                "no room for this key: a file of {page_size}-byte pages has room for {} P-256 keys",
                max_slots(page_size)
            )));
        }
        let mut b = vec![0u8; area(page_size)];
        let at = body.len();
        b[..at].copy_from_slice(&body);
        b[at..at + SLOTS_MAC_LEN].copy_from_slice(&sealer.slots_mac(&body));
        let end = at + SLOTS_MAC_LEN;
        let crc = crc32fast::hash(&b[..end]);
        b[end..end + 4].copy_from_slice(&crc.to_le_bytes());
        Ok(b)
    }

    fn decode(b: &[u8]) -> Option<Self> {
        if &b[0..8] != MAGIC {
            return None;
        }
        let cipher = match b[32] {
            CIPHER_XCHACHA => seal::Cipher::XChaCha20Poly1305,
            CIPHER_AES_GCM => seal::Cipher::Aes256Gcm,
            _ => return None,
        };
        let count = u32::from_le_bytes(b[36..40].try_into().ok()?) as usize;
        let mut slots = Vec::with_capacity(count.min(256));
        let mut at = FIXED;
        for _ in 0..count {
            let len = usize::from(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?));
            slots.push(Slot::from_bytes(b.get(at + 2..at + 2 + len)?)?);
            at += 2 + len;
        }
        let mut mac = [0u8; SLOTS_MAC_LEN];
        mac.copy_from_slice(b.get(at..at + SLOTS_MAC_LEN)?);
        let end = at + SLOTS_MAC_LEN;
        if end + 4 > b.len() {
            return None;
        }
        let crc = u32::from_le_bytes(b[end..end + 4].try_into().ok()?);
        if crc != crc32fast::hash(&b[..end]) {
            return None;
        }
        let mut file_id = [0u8; FILE_ID_LEN];
        file_id.copy_from_slice(&b[16..32]);
        Some(Self {
            generation: u64::from_le_bytes(b[8..16].try_into().ok()?),
            file_id,
            cipher,
            slots,
            mac,
        })
    }

    /// The copy in force in `page0` (the file's first page): the valid one with the higher
    /// generation; `NEXUS_CORRUPT` when neither is valid.
    pub(crate) fn read(page0: &[u8], what: &str) -> Result<Self> {
        let a = area(page0.len());
        let copies = [0, 1].map(|c| {
            let at = HEADER_LEN + c * a;
            Self::decode(&page0[at..at + a])
        });
        copies
            .into_iter()
            .flatten()
            .max_by_key(|k| k.generation)
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "{what}: the key slots of this encrypted database are damaged (neither copy is valid)"
                ))
            })
    }

    /// These slots with one for `public_pem` added (`None`: it has one already).
    pub(crate) fn with_key(&self, public_pem: &str, sealer: &Sealer) -> Result<Option<Self>> {
        let id = seal::public_key_id(public_pem)?;
        if self.slots.iter().any(|s| s.key_id() == id) {
            return Ok(None);
        }
        let mut slots = self.slots.clone();
        slots.push(sealer.wrap_for(public_pem)?);
        Ok(Some(Self {
            generation: self.generation + 1,
            file_id: self.file_id,
            cipher: self.cipher,
            slots,
            mac: [0; SLOTS_MAC_LEN],
        }))
    }

    /// These slots without the one of `public_pem`: refused when it has none, or is the last.
    pub(crate) fn without_key(&self, public_pem: &str) -> Result<Self> {
        let id = seal::public_key_id(public_pem)?;
        let slots: Vec<_> = self
            .slots
            .iter()
            .filter(|s| s.key_id() != id)
            .cloned()
            .collect();
        if slots.len() == self.slots.len() {
            return Err(Error::invalid(
                "this key is not one of the database's recipients",
            ));
        }
        if slots.is_empty() {
            return Err(Error::invalid(
                "this is the database's last key: removing it would leave nobody able to open it (add another key first)",
            ));
        }
        Ok(Self {
            generation: self.generation + 1,
            file_id: self.file_id,
            cipher: self.cipher,
            slots,
            mac: [0; SLOTS_MAC_LEN],
        })
    }

    /// These slots with `key` wrapped anew for each of their recipients (a rekey), as two
    /// generations: both copies of the slots hold the new key once written.
    pub(crate) fn rekeyed(&self, key: &DataKey) -> Result<[Self; 2]> {
        let slots = self
            .slots
            .iter()
            .map(|s| seal::wrap(key, &s.recipient_pem()?, &self.file_id))
            .collect::<Result<Vec<_>>>()?;
        let next = |generation| Self {
            generation,
            file_id: self.file_id,
            cipher: self.cipher,
            slots: slots.clone(),
            mac: [0; SLOTS_MAC_LEN],
        };
        Ok([next(self.generation + 1), next(self.generation + 2)])
    }

    /// The copy in force in the file of `pager` now (another process may have changed it).
    pub(crate) fn of_file(pager: &super::pager::Pager) -> Result<Self> {
        Self::read(&pager.read_physical(0)?, pager.what())
    }

    /// Writes this generation's copy into page 0 of `file` (pages of `page_size` bytes), its
    /// mac made under the data key of `sealer`; the caller syncs.
    pub(crate) fn write(&self, file: &PageFile, page_size: usize, sealer: &Sealer) -> Result<()> {
        let a = area(page_size);
        let at = HEADER_LEN + (self.generation % 2) as usize * a;
        file.write_at(at as u64, &self.encode(page_size, sealer)?)
    }
}

/// What opens an encrypted file: a recipient's private key, or (a copy made by this process
/// of a file it has open) the sealer of the file already opened.
#[derive(Clone, Debug)]
pub(crate) enum Unlock {
    Key(crate::crypto::PrivatePem),
    Sealer(std::sync::Arc<Sealer>),
    /// A new file (an encrypted copy) for these recipients' public keys.
    Recipients(Vec<String>),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sealer under a data key of its own (what a forger without the file's key has).
    fn other_sealer_for_forgery() -> Sealer {
        Sealer::new(
            &DataKey::random(),
            [0; FILE_ID_LEN],
            seal::Cipher::preferred(),
        )
    }

    #[test]
    fn the_newer_valid_copy_is_in_force() {
        let (private, _) = crate::crypto::keygen(None).unwrap();
        let (k1, sealer) = KeySlots::create(&private, seal::Cipher::preferred()).unwrap();
        let mut page = vec![0u8; 4096];
        let put = |page: &mut Vec<u8>, k: &KeySlots, s: &Sealer| {
            let a = area(4096);
            let at = HEADER_LEN + (k.generation % 2) as usize * a;
            page[at..at + a].copy_from_slice(&k.encode(4096, s).unwrap());
        };
        put(&mut page, &k1, &sealer);
        assert_eq!(KeySlots::read(&page, "x").unwrap().generation, 1);
        let k2 = KeySlots {
            generation: 2,
            slots: vec![],
            ..k1.clone()
        };
        put(&mut page, &k2, &sealer);
        assert_eq!(KeySlots::read(&page, "x").unwrap().slots.len(), 0);
        // A torn copy 2: copy 1 is in force again.
        page[HEADER_LEN + 20] ^= 1;
        let k = KeySlots::read(&page, "x").unwrap();
        assert_eq!((k.generation, k.slots.len()), (1, 1));
        assert!(k.admits(&private).unwrap());
        assert!(k.unlock(&private).is_ok());
        assert_eq!((max_slots(8192), max_slots(16384)), (24, 48));
        // A slot added by someone without the data key (here: a valid slot of another data
        // key for an attacker, the copy's checksum made right): refused at unlock.
        let (_, attacker) = crate::crypto::keygen(None).unwrap();
        let (other, _) = KeySlots::create_for(&[attacker], seal::Cipher::preferred()).unwrap();
        let mut forged = k.clone();
        forged.generation = 3;
        forged.slots.push(other.slots[0].clone());
        put(&mut page, &forged, &other_sealer_for_forgery());
        let read = KeySlots::read(&page, "x").unwrap();
        assert_eq!(read.slots.len(), 2);
        assert!(matches!(read.unlock(&private), Err(Error::Crypto(_))));
        assert!(read.check(&sealer).is_err());
        let _ = other;
    }
}
