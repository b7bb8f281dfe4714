//! The two manifest slots of `NAME.db` (pages 1 and 2), flipped atomically: a checkpoint
//! writes the slot not holding the newest manifest, syncs, and from then on that slot (with
//! the higher generation) is the truth. A torn or damaged slot fails its CRC and the other
//! one is used. The layer beneath is the pager's raw page I/O.
//!
//! ```text
//!  0  8 magic "NXMANIF1"          8 u64 generation (higher wins)
//! 16  8 u64 checkpoint LSN        24 u64 catalog root page (0 = no collections)
//! 32  8 u64 free-list head page   40 u64 page count (pages 0..count belong to the database)
//! 48  8 u64 free pages listed     56 u32 page size
//! 60  4 u32 crc32 of bytes 0..60
//! extension (bytes 64..84; builds before it wrote zeros here and ignore it):
//! 64  8 magic "NXMANEX1"          72 u32 log salt (ties NAME.wasp to this file)
//! 76  4 u32 flags (bit 0: the log is quiet)   80 u32 crc32 of bytes 64..80
//! (the rest of the page is zero)
//! ```
//!
//! The log is *quiet* when no commit lies in it beyond `ckpt_lsn` and none will be appended
//! before a manifest without the flag is durable: a new file, and every clean close, write
//! a quiet manifest; the first commit after it writes one that is not. Open uses the flag to
//! tell a missing log that held nothing (a database copied without its log after a clean
//! close) from one that held acknowledged commits (refused). A manifest without the
//! extension (from an earlier build) is never quiet and has no salt.

use super::page::u64_at;
use crate::error::{Error, Result};

pub(crate) const MANIFEST_MAGIC: &[u8; 8] = b"NXMANIF1";
pub(crate) const MANIFEST_LEN: usize = 64;
const EXT_MAGIC: &[u8; 8] = b"NXMANEX1";
const EXT_END: usize = 84;
const FLAG_LOG_QUIET: u32 = 1;

/// One decoded manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Manifest {
    pub generation: u64,
    pub ckpt_lsn: u64,
    pub catalog_root: u64,
    pub freelist_head: u64,
    pub page_count: u64,
    pub free_pages: u64,
    pub page_size: u32,
    /// The salt every log of this file carries in its header (0: not recorded yet).
    pub log_salt: u32,
    /// The log holds nothing past `ckpt_lsn` (see the module docs).
    pub log_quiet: bool,
}

/// Above any generation a real file reaches; the checkpoints and commit tags after it still
/// fit a u64.
const MAX_GENERATION: u64 = 1 << 62;

impl Manifest {
    /// The slot page (1 or 2) this manifest is written to.
    pub(crate) fn slot(&self) -> u64 {
        1 + (self.generation % 2)
    }

    pub(crate) fn encode(&self, page_size: usize) -> Vec<u8> {
        let mut b = vec![0u8; page_size];
        b[0..8].copy_from_slice(MANIFEST_MAGIC);
        b[8..16].copy_from_slice(&self.generation.to_le_bytes());
        b[16..24].copy_from_slice(&self.ckpt_lsn.to_le_bytes());
        b[24..32].copy_from_slice(&self.catalog_root.to_le_bytes());
        b[32..40].copy_from_slice(&self.freelist_head.to_le_bytes());
        b[40..48].copy_from_slice(&self.page_count.to_le_bytes());
        b[48..56].copy_from_slice(&self.free_pages.to_le_bytes());
        b[56..60].copy_from_slice(&self.page_size.to_le_bytes());
        let crc = crc32fast::hash(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b[64..72].copy_from_slice(EXT_MAGIC);
        b[72..76].copy_from_slice(&self.log_salt.to_le_bytes());
        let flags = if self.log_quiet { FLAG_LOG_QUIET } else { 0 };
        b[76..80].copy_from_slice(&flags.to_le_bytes());
        let crc = crc32fast::hash(&b[64..80]);
        b[80..84].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a slot; `None` when it is empty, torn or damaged.
    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < MANIFEST_LEN || &b[0..8] != MANIFEST_MAGIC {
            return None;
        }
        let crc = u32::from_le_bytes([b[60], b[61], b[62], b[63]]);
        if crc != crc32fast::hash(&b[0..60]) {
            return None;
        }
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let ext = b.len() >= EXT_END
            && &b[64..72] == EXT_MAGIC
            && u32_at(80) == crc32fast::hash(&b[64..80]);
        Some(Self {
            log_salt: if ext { u32_at(72) } else { 0 },
            log_quiet: ext && u32_at(76) & FLAG_LOG_QUIET != 0,
            generation: u64_at(b, 8),
            ckpt_lsn: u64_at(b, 16),
            catalog_root: u64_at(b, 24),
            freelist_head: u64_at(b, 32),
            page_count: u64_at(b, 40),
            free_pages: u64_at(b, 48),
            page_size: u32::from_le_bytes([b[56], b[57], b[58], b[59]]),
        })
    }

    /// Picks the valid slot with the highest generation whose fields are plausible: a
    /// generation near `u64::MAX` is damage (a database gains one per commit or checkpoint),
    /// and taking it would overflow the next generation; so is a page count whose pages
    /// would not fit a file offset (the next page allocated overflowed; fuzz target
    /// `db_file`).
    pub(crate) fn choose(a: &[u8], b: &[u8], page_size: u32, what: &str) -> Result<Self> {
        let ok = |m: &Manifest| {
            m.page_size == page_size
                && m.page_count >= 3
                && m.catalog_root < m.page_count
                && m.freelist_head < m.page_count
                && m.generation < MAX_GENERATION
                && u64::from(page_size)
                    .checked_mul(m.page_count)
                    .is_some_and(|b| b <= i64::MAX as u64)
        };
        let best = [Self::decode(a), Self::decode(b)]
            .into_iter()
            .flatten()
            .filter(ok)
            .max_by_key(|m| m.generation);
        best.ok_or_else(|| {
            Error::Corrupt(format!(
                "{what}: neither manifest slot is valid (both fail their checksum)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_valid_generation_wins() {
        let m1 = Manifest {
            generation: 4,
            page_count: 10,
            page_size: 8192,
            ..Manifest::default()
        };
        let m2 = Manifest {
            generation: 5,
            ..m1
        };
        let (a, mut b) = (m1.encode(8192), m2.encode(8192));
        assert_eq!(Manifest::choose(&a, &b, 8192, "t").unwrap(), m2);
        b[20] ^= 1;
        assert_eq!(Manifest::choose(&a, &b, 8192, "t").unwrap(), m1);
        let zero = vec![0u8; 8192];
        assert!(Manifest::choose(&zero, &b, 8192, "t").is_err());
    }

    #[test]
    fn the_extension_round_trips_and_an_old_slot_has_none() {
        let m = Manifest {
            generation: 3,
            page_count: 10,
            page_size: 8192,
            log_salt: 0xdead_beef,
            log_quiet: true,
            ..Manifest::default()
        };
        let mut page = m.encode(8192);
        assert_eq!(Manifest::decode(&page), Some(m));
        // A slot written by an earlier build: zeros after byte 64.
        page[64..].fill(0);
        let old = Manifest::decode(&page).unwrap();
        assert_eq!((old.log_salt, old.log_quiet), (0, false));
        // A damaged extension is ignored, never trusted.
        let mut page = m.encode(8192);
        page[76] ^= 1;
        let d = Manifest::decode(&page).unwrap();
        assert_eq!((d.log_salt, d.log_quiet), (0, false));
        assert_eq!(d.ckpt_lsn, m.ckpt_lsn);
    }
}
