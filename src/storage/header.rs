//! The 64-byte header at the start of `NAME.db`, shared by every backend. It names the file as
//! a NexusLite database, records the format version and which backend wrote it, and is
//! checksummed. See `docs/FORMAT.md`.
//!
//! ```text
//! offset size field
//!      0   16 magic  "NexusLite format" (ASCII, no NUL)
//!     16    4 format_version  u32 LE (see FORMAT_VERSION; older ones are still read and written)
//!     20    1 backend         u8 (1 = memlog, 2 = wasp)
//!     21    3 reserved, zero
//!     24    4 page_size       u32 LE (0 for wal)
//!     28    8 created_at      i64 LE, ms since the Unix epoch
//!     36   24 reserved, zero
//!     60    4 crc32 of bytes 0..60, u32 LE
//! ```

use super::StorageEngine;
use crate::error::{Error, Result};
use std::path::Path;

pub(crate) const MAGIC: &[u8; 16] = b"NexusLite format";
pub(crate) const HEADER_LEN: usize = 64;
/// The format version new plain WASP files get. Version 2 added compact document records
/// (version 3, see `document::record`); version 3 (WASP) added clustered collections
/// (`docs/FORMAT.md`); version 6 is version 3 with lean document records (version 4: no
/// expiry field without an expiry, the times as varints, no growth when updated). A file
/// keeps the version it was created with and keeps getting the records and collections of
/// that version, so that the builds that wrote it can still read it: files of versions 1
/// and 2 keep creating key-ordered collections, files of versions 2 to 5 keep writing
/// version 3 records.
pub(crate) const FORMAT_VERSION: u32 = 6;
/// The first format version whose document records are version 4.
pub(crate) const LEAN_RECORDS_FORMAT: u32 = 6;
/// The format version of an encrypted WASP file: version 3 with every page from 1 on and
/// every log record sealed, and the key slots in page 0 (`docs/FORMAT.md`, "Encryption").
/// Builds before it refuse such a file as newer instead of failing on its pages.
pub(crate) const ENCRYPTED_FORMAT: u32 = 4;
/// Version 4 with AES-256-GCM instead of XChaCha20-Poly1305 (`crypto::seal::Cipher`).
pub(crate) const ENCRYPTED_AES_FORMAT: u32 = 5;
/// Versions 4 and 5 with lean document records (as version 6 is version 3 with them): what
/// new encrypted files get, 8 where the processor has AES instructions.
pub(crate) const ENCRYPTED_LEAN_FORMAT: u32 = 7;
pub(crate) const ENCRYPTED_AES_LEAN_FORMAT: u32 = 8;
/// The newest format version this build reads.
pub(crate) const NEWEST_FORMAT: u32 = ENCRYPTED_AES_LEAN_FORMAT;

/// The format version of a new encrypted WASP file sealed with `cipher`.
pub(crate) fn encrypted_format(cipher: crate::crypto::seal::Cipher) -> u32 {
    match cipher {
        crate::crypto::seal::Cipher::XChaCha20Poly1305 => ENCRYPTED_LEAN_FORMAT,
        crate::crypto::seal::Cipher::Aes256Gcm => ENCRYPTED_AES_LEAN_FORMAT,
    }
}

/// The cipher of a WASP file of format version `version`: `None` for a plain file.
pub(crate) fn cipher_of_format(version: u32) -> Option<crate::crypto::seal::Cipher> {
    match version {
        ENCRYPTED_FORMAT | ENCRYPTED_LEAN_FORMAT => {
            Some(crate::crypto::seal::Cipher::XChaCha20Poly1305)
        }
        ENCRYPTED_AES_FORMAT | ENCRYPTED_AES_LEAN_FORMAT => {
            Some(crate::crypto::seal::Cipher::Aes256Gcm)
        }
        _ => None,
    }
}

/// The format version of new `memlog` files, which have no clustered collections: version
/// 3 would only keep earlier builds from opening them.
pub(crate) const MEMLOG_FORMAT_VERSION: u32 = 2;

/// The decoded header.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Header {
    pub format_version: u32,
    pub backend: StorageEngine,
    pub page_size: u32,
    pub created_at: i64,
}

impl Header {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..16].copy_from_slice(MAGIC);
        b[16..20].copy_from_slice(&self.format_version.to_le_bytes());
        b[20] = self.backend as u8;
        b[24..28].copy_from_slice(&self.page_size.to_le_bytes());
        b[28..36].copy_from_slice(&self.created_at.to_le_bytes());
        let crc = crc32fast::hash(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and validates a header read from `path`. A file that does not start with the
    /// magic is not a NexusLite database (`Corrupt`); a newer format version is `Unsupported`.
    pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<Self> {
        let shown = path.display();
        if bytes.len() < HEADER_LEN || &bytes[0..16] != MAGIC {
            return Err(Error::Corrupt(format!(
                "{shown} is not a NexusLite database (no NexusLite header); it was left unchanged"
            )));
        }
        let crc = u32::from_le_bytes([bytes[60], bytes[61], bytes[62], bytes[63]]);
        if crc != crc32fast::hash(&bytes[0..60]) {
            return Err(Error::Corrupt(format!(
                "{shown}: the database header fails its checksum"
            )));
        }
        let version = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        if version > NEWEST_FORMAT {
            return Err(Error::unsupported(format!(
                "{shown} was written by a newer NexusLite (format version {version}; this build reads up to {NEWEST_FORMAT}); it was left unchanged"
            )));
        }
        let backend = match bytes[20] {
            1 => StorageEngine::MemLog,
            2 => StorageEngine::Wasp,
            other => {
                return Err(Error::Corrupt(format!(
                    "{shown}: unknown storage backend id {other} in the header"
                )))
            }
        };
        if version == 0 {
            return Err(Error::Corrupt(format!(
                "{shown}: format version 0 in the header"
            )));
        }
        Ok(Self {
            format_version: version,
            backend,
            page_size: u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]),
            created_at: i64::from_le_bytes(bytes[28..36].try_into().unwrap_or_default()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_detects_damage() {
        let h = Header {
            format_version: FORMAT_VERSION,
            backend: StorageEngine::MemLog,
            page_size: 0,
            created_at: 1234,
        };
        let mut b = h.encode();
        assert_eq!(Header::decode(&b, Path::new("x")).unwrap(), h);
        b[30] ^= 1;
        assert!(matches!(
            Header::decode(&b, Path::new("x")),
            Err(Error::Corrupt(_))
        ));
    }
}
