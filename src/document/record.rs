//! The stored form of a document: what the storage layer keeps under the `_id` key.
//!
//! ```text
//! version 4 (written into files of format version 6 and later)
//! +------+-------+--------------------------+----------------+------------------+---------+
//! | 0x04 | flags | expires_at: i64 LE       | varint         | varint           | varint  |
//! |      | u8    | (only when flags bit 2)  | created_at     | updated_at       | version |
//! +------+-------+--------------------------+----------------+------------------+---------+
//!   then, when flags bit 1 is set: varint count, count x (varint length, UTF-8 tag);
//!   then the body (BSON). flags: bit 0 ephemeral, bit 1 tags follow, bit 2 expiry follows,
//!   others zero.
//! version 3 (written into files of format versions 2 to 5)
//! +------+--------------------+-------+--------------------+------------------+---------+
//! | 0x03 | expires_at: i64 LE | flags | created_at: i64 LE | varint zigzag    | varint  |
//! |      | (i64::MIN: none)   | u8    |                    | (updated-created)| version |
//! +------+--------------------+-------+--------------------+------------------+---------+
//!   then tags and body as version 4 (flags bits 0 and 1 only).
//! version 2 (written into files of format version 1)
//! +------+----------------------+------------------+--------------------+----------------+
//! | 0x02 | expires_at: i64 LE   | meta_len: u32 LE | metadata (BSON)    | body (BSON)    |
//! |      | (i64::MIN: none)     |                  |                    |                |
//! +------+----------------------+------------------+--------------------+----------------+
//! version 1 (still read): 0x01, meta_len, metadata, body
//! ```
//!
//! The expiry time is found without decoding anything (at a fixed offset, or in version 4
//! right after the flags when they say there is one), so scans skip expired documents
//! cheaply. A new document's metadata takes 15 bytes in version 4 (no expiry: the tag, the
//! flags, six bytes each for the creation and update times, a byte for the version), 20 in
//! version 3 and 99 in version 2 (a BSON document with its field names). Version 4 keeps
//! the update time whole rather than as a difference so that updates do not grow records.

use super::{Document, Metadata};
use crate::error::{Error, Result};

const RECORD_V1: u8 = 1;
const RECORD_V2: u8 = 2;
const RECORD_V3: u8 = 3;
const RECORD_V4: u8 = 4;
const NO_EXPIRY: i64 = i64::MIN;
const EPHEMERAL: u8 = 1;
const TAGS: u8 = 2;
/// Version 4: the expiry follows the flags.
const EXPIRES: u8 = 4;

/// Which record version a database file takes: its format version decides, so that a file
/// an older build can open never holds a record that build cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordVersion {
    /// Version 2 (metadata as BSON), for files of format version 1.
    Bson,
    /// Version 3 (compact metadata), for files of format versions 2 to 5.
    Compact,
    /// Version 4 (compact metadata, no expiry field unless there is an expiry, both times as
    /// varints so that updates keep the size), for files of format version 6 and later.
    Lean,
}

/// Encodes metadata and an already BSON-encoded body into one stored record, allocated at
/// its exact size (a `Bytes` made from it then needs no second allocation).
pub(crate) fn encode(meta: &Metadata, body_bson: &[u8], version: RecordVersion) -> Result<Vec<u8>> {
    let mut head = Head {
        fixed: [0; 40],
        fixed_len: 0,
        rest: Vec::new(),
    };
    match version {
        RecordVersion::Compact => head.compact(meta),
        RecordVersion::Lean => head.lean(meta),
        RecordVersion::Bson => head.bson(meta)?,
    }
    let mut out = Vec::with_capacity(head.len() + body_bson.len());
    head.write(&mut out);
    out.extend_from_slice(body_bson);
    Ok(out)
}

/// Everything of a record before its body: the fixed bytes, then the metadata (or, for
/// version 2, its length and its BSON in a thread's reused buffer).
struct Head {
    /// Version 3 takes at most 1 + 8 + 1 + 8 + 10 + 10 bytes here, version 4 at most
    /// 1 + 1 + 8 + 10 + 10 + 10.
    fixed: [u8; 40],
    fixed_len: usize,
    /// Version 3 tags or version 2 BSON metadata.
    rest: Vec<u8>,
}

impl Head {
    fn len(&self) -> usize {
        self.fixed_len + self.rest.len()
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.fixed[..self.fixed_len]);
        out.extend_from_slice(&self.rest);
    }

    fn push(&mut self, bytes: &[u8]) {
        self.fixed[self.fixed_len..self.fixed_len + bytes.len()].copy_from_slice(bytes);
        self.fixed_len += bytes.len();
    }

    fn compact(&mut self, meta: &Metadata) {
        let flags = u8::from(meta.ephemeral) * EPHEMERAL + u8::from(!meta.tags.is_empty()) * TAGS;
        self.push(&[RECORD_V3]);
        self.push(&meta.expires_at.unwrap_or(NO_EXPIRY).to_le_bytes());
        self.push(&[flags]);
        self.push(&meta.created_at.to_le_bytes());
        let mut v = [0u8; 10];
        let delta = meta.updated_at.wrapping_sub(meta.created_at);
        let n = put_varint(&mut v, zigzag(delta));
        self.push(&v[..n]);
        let n = put_varint(&mut v, meta.version);
        self.push(&v[..n]);
        self.tags(meta);
    }

    fn lean(&mut self, meta: &Metadata) {
        let flags = u8::from(meta.ephemeral) * EPHEMERAL
            + u8::from(!meta.tags.is_empty()) * TAGS
            + u8::from(meta.expires_at.is_some()) * EXPIRES;
        self.push(&[RECORD_V4, flags]);
        if let Some(t) = meta.expires_at {
            self.push(&t.to_le_bytes());
        }
        let mut v = [0u8; 10];
        // The times as their two's-complement bits: six bytes each until 2109 (ten before
        // 1970), so that an update, which moves `updated_at` away from `created_at`, does not
        // grow the record (a difference's varint would grow at the first update that comes
        // later than 64 ms, and a full leaf would split for that byte).
        let n = put_varint(&mut v, meta.created_at.cast_unsigned());
        self.push(&v[..n]);
        let n = put_varint(&mut v, meta.updated_at.cast_unsigned());
        self.push(&v[..n]);
        let n = put_varint(&mut v, meta.version);
        self.push(&v[..n]);
        self.tags(meta);
    }

    /// The tags of versions 3 and 4 (flags bit 1 says they follow).
    fn tags(&mut self, meta: &Metadata) {
        if meta.tags.is_empty() {
            return;
        }
        let mut v = [0u8; 10];
        let n = put_varint(&mut v, meta.tags.len() as u64);
        self.rest.extend_from_slice(&v[..n]);
        for t in &meta.tags {
            let n = put_varint(&mut v, t.len() as u64);
            self.rest.extend_from_slice(&v[..n]);
            self.rest.extend_from_slice(t.as_bytes());
        }
    }

    fn bson(&mut self, meta: &Metadata) -> Result<()> {
        meta.encode_bson(&mut self.rest)?;
        let meta_len = u32::try_from(self.rest.len())
            .map_err(|_| Error::Internal("metadata larger than 4 GiB".into()))?;
        self.push(&[RECORD_V2]);
        self.push(&meta.expires_at.unwrap_or(NO_EXPIRY).to_le_bytes());
        self.push(&meta_len.to_le_bytes());
        Ok(())
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)).cast_unsigned()
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Writes `v` as LEB128 (seven bits a byte, low first) into `out`; returns the length.
// `v as u8` takes the low byte on purpose (the next seven bits of the varint).
#[allow(clippy::cast_possible_truncation)]
fn put_varint(out: &mut [u8; 10], mut v: u64) -> usize {
    let mut n = 0;
    while v >= 0x80 {
        out[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    out[n] = v as u8;
    n + 1
}

/// Reads a LEB128 number at `*at`, advancing it; `None` when cut short or over 64 bits.
fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        let bits = u64::from(b & 0x7f);
        if shift == 63 && bits > 1 {
            return None;
        }
        v |= bits << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn corrupt() -> Error {
    Error::Corrupt("stored document record is malformed".into())
}

/// A record's metadata, as stored.
enum StoredMeta<'a> {
    /// Versions 1 and 2: a BSON document.
    Bson(&'a [u8]),
    /// Versions 3 and 4.
    Compact(Metadata),
}

/// Splits a stored record into its metadata and body bytes; `decode` says whether to decode
/// version 3 metadata (finding the body reads its lengths either way).
fn split(record: &[u8], decode: bool) -> Result<(Option<StoredMeta<'_>>, &[u8])> {
    let len_at = match record.first() {
        Some(&RECORD_V1) => 1,
        Some(&RECORD_V2) => 9,
        Some(&RECORD_V3) => return split_compact(record, decode),
        Some(&RECORD_V4) => return split_lean(record, decode),
        _ => return Err(corrupt()),
    };
    let len_bytes = record.get(len_at..len_at + 4).ok_or_else(corrupt)?;
    let meta_len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    let meta_start = len_at + 4;
    let body_start = meta_start
        .checked_add(meta_len as usize)
        .filter(|&e| e <= record.len())
        .ok_or_else(corrupt)?;
    Ok((
        Some(StoredMeta::Bson(&record[meta_start..body_start])),
        &record[body_start..],
    ))
}

fn split_compact(record: &[u8], decode: bool) -> Result<(Option<StoredMeta<'_>>, &[u8])> {
    let i64_at = |at: usize| i64_le(record, at).ok_or_else(corrupt);
    let expires_at = i64_at(1)?;
    let flags = *record.get(9).ok_or_else(corrupt)?;
    if flags & !(EPHEMERAL | TAGS) != 0 {
        return Err(corrupt());
    }
    let created_at = i64_at(10)?;
    let expires_at = (expires_at != NO_EXPIRY).then_some(expires_at);
    let mut at = 18;
    let delta = unzigzag(get_varint(record, &mut at).ok_or_else(corrupt)?);
    let times = Times {
        created_at,
        updated_at: created_at.wrapping_add(delta),
        expires_at,
    };
    compact_rest(record, at, flags, times, decode)
}

fn split_lean(record: &[u8], decode: bool) -> Result<(Option<StoredMeta<'_>>, &[u8])> {
    let flags = *record.get(1).ok_or_else(corrupt)?;
    if flags & !(EPHEMERAL | TAGS | EXPIRES) != 0 {
        return Err(corrupt());
    }
    let (expires_at, mut at) = if flags & EXPIRES != 0 {
        (Some(i64_le(record, 2).ok_or_else(corrupt)?), 10)
    } else {
        (None, 2)
    };
    let mut time = || get_varint(record, &mut at).map(u64::cast_signed);
    let times = Times {
        created_at: time().ok_or_else(corrupt)?,
        updated_at: time().ok_or_else(corrupt)?,
        expires_at,
    };
    compact_rest(record, at, flags, times, decode)
}

/// The little-endian i64 at `at`; `None` when the record is too short.
fn i64_le(record: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_le_bytes(record.get(at..at + 8)?.try_into().ok()?))
}

/// The times of a version 3 or 4 record.
struct Times {
    created_at: i64,
    updated_at: i64,
    expires_at: Option<i64>,
}

/// The rest of a version 3 or 4 record from `at` (after its times: the varint of the
/// version, the tags, the body).
fn compact_rest(
    record: &[u8],
    mut at: usize,
    flags: u8,
    times: Times,
    decode: bool,
) -> Result<(Option<StoredMeta<'_>>, &[u8])> {
    let version = get_varint(record, &mut at).ok_or_else(corrupt)?;
    let mut tags = Vec::new();
    if flags & TAGS != 0 {
        let count = get_varint(record, &mut at).ok_or_else(corrupt)?;
        for _ in 0..count {
            let len = get_varint(record, &mut at).ok_or_else(corrupt)?;
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| at.checked_add(l))
                .filter(|&e| e <= record.len())
                .ok_or_else(corrupt)?;
            if decode {
                let tag = std::str::from_utf8(&record[at..end]).map_err(|_| corrupt())?;
                tags.push(tag.to_owned());
            }
            at = end;
        }
    }
    let meta = decode.then_some(StoredMeta::Compact(Metadata {
        created_at: times.created_at,
        updated_at: times.updated_at,
        version,
        expires_at: times.expires_at,
        ephemeral: flags & EPHEMERAL != 0,
        tags,
    }));
    Ok((meta, &record[at..]))
}

/// When the document expires (ms since the epoch), read without decoding the metadata: at
/// its fixed offset, or (version 4) after the flags when they say it is there.
pub(crate) fn expires_at(record: &[u8]) -> Option<i64> {
    match record.first() {
        Some(&(RECORD_V2 | RECORD_V3)) => i64_le(record, 1).filter(|&t| t != NO_EXPIRY),
        Some(&RECORD_V4) if record.get(1)? & EXPIRES == 0 => None,
        Some(&RECORD_V4) => i64_le(record, 2),
        _ => decode_meta(record).ok()?.expires_at,
    }
}

/// Whether the document is visible at `now`: not expired.
pub(crate) fn is_live(record: &[u8], now: i64) -> bool {
    expires_at(record).is_none_or(|t| t > now)
}

/// Decodes the metadata of a stored record.
pub(crate) fn decode_meta(record: &[u8]) -> Result<Metadata> {
    match split(record, true)?.0 {
        Some(StoredMeta::Compact(m)) => Ok(m),
        Some(StoredMeta::Bson(meta)) => {
            let d = crate::document::raw::bson_decode(meta)
                .map_err(|e| Error::Corrupt(format!("stored metadata is malformed: {e}")))?;
            let m = Metadata::from_bson(&d)
                .ok_or_else(|| Error::Corrupt("stored metadata lacks fields".into()))?;
            // Version 2 keeps the expiry twice: at its fixed offset, which the TTL checks read
            // (`expires_at`), and in the metadata document. Copies that disagree would make a
            // document visible to one and expired to the other.
            if record.first() == Some(&RECORD_V2) && expires_at(record) != m.expires_at {
                return Err(Error::Corrupt(
                    "stored record: its two copies of the expiry time disagree".into(),
                ));
            }
            Ok(m)
        }
        None => Err(corrupt()),
    }
}

/// The BSON bytes of the body of a stored record (borrowed, no copy).
pub(crate) fn body_bytes(record: &[u8]) -> Result<&[u8]> {
    Ok(split(record, false)?.1)
}

/// Decodes the body of a stored record.
pub(crate) fn decode_body(record: &[u8]) -> Result<Document> {
    let body = body_bytes(record)?;
    if let Ok(d) = crate::document::raw::decode_document(body) {
        return Ok(Document::from(d));
    }
    // The fast decoder refused the bytes; the bson crate says precisely what is wrong.
    crate::document::raw::bson_decode(body)
        .map(Document::from)
        .map_err(|e| Error::Corrupt(format!("stored document is malformed: {e}")))
}

/// The body of a stored record as relaxed Extended JSON: written straight from the stored
/// bytes, through the decoder only for what the direct writer declines (it then reports the
/// precise error or writes the general form).
pub(crate) fn body_json(record: &[u8]) -> Result<String> {
    match crate::document::json::raw_to_relaxed_json(body_bytes(record)?) {
        Some(json) => Ok(json),
        None => Ok(decode_body(record)?.to_json()),
    }
}

/// `nexus::fuzzing::record`: every decoder on `rec`; panics when the fixed-offset expiry and
/// the decoded metadata disagree.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn fuzz_record(rec: &[u8]) {
    if let Ok(m) = decode_meta(rec) {
        assert_eq!(expires_at(rec), m.expires_at, "record {rec:02x?}");
    }
    let _ = is_live(rec, 0);
    let _ = body_bytes(rec);
    let _ = decode_body(rec);
    let _ = body_json(rec);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [RecordVersion; 3] = [
        RecordVersion::Bson,
        RecordVersion::Compact,
        RecordVersion::Lean,
    ];

    fn tag_of(version: RecordVersion) -> u8 {
        match version {
            RecordVersion::Bson => 2,
            RecordVersion::Compact => 3,
            RecordVersion::Lean => 4,
        }
    }

    fn metas() -> Vec<Metadata> {
        vec![
            Metadata::new_at(1_764_000_000_000),
            Metadata {
                expires_at: Some(1234),
                ephemeral: true,
                ..Metadata::new_at(1)
            },
            Metadata {
                // Updated "before" creation (a clock stepped back), a large version.
                updated_at: -7,
                version: u64::MAX >> 1,
                tags: vec!["a".into(), "é€".into(), String::new(), "x".repeat(300)],
                ..Metadata::new_at(i64::MAX)
            },
            Metadata {
                updated_at: i64::MAX,
                expires_at: Some(i64::MIN + 1),
                ..Metadata::new_at(i64::MIN + 1)
            },
        ]
    }

    #[test]
    fn every_version_round_trips_and_expiry_is_read_without_decoding() {
        let body = bson::doc! {"_id": "a", "n": 1}.to_vec().unwrap();
        for version in ALL {
            for meta in metas() {
                let rec = encode(&meta, &body, version).unwrap();
                assert_eq!(rec[0], tag_of(version));
                assert_eq!(decode_meta(&rec).unwrap(), meta, "{version:?}");
                assert_eq!(body_bytes(&rec).unwrap(), &body[..]);
                assert_eq!(expires_at(&rec), meta.expires_at);
            }
            let meta = &metas()[1];
            let rec = encode(meta, &body, version).unwrap();
            assert!(is_live(&rec, 1233) && !is_live(&rec, 1234));
        }
        let fresh = encode(&metas()[0], &body, RecordVersion::Compact).unwrap();
        assert_eq!(
            fresh.len() - body.len(),
            20,
            "a new document's metadata is 20 bytes in version 3"
        );
        let lean = encode(&metas()[0], &body, RecordVersion::Lean).unwrap();
        assert_eq!(
            lean.len() - body.len(),
            15,
            "and 15 in version 4 (no expiry, times of 2025)"
        );
        let expiring = Metadata {
            expires_at: Some(1_764_000_000_000),
            ..metas()[0].clone()
        };
        let lean = encode(&expiring, &body, RecordVersion::Lean).unwrap();
        assert_eq!(lean.len() - body.len(), 23, "an expiry adds its 8 bytes");
        // An update (a later time, the next version) keeps a version 4 record's size.
        let updated = Metadata {
            updated_at: 1_764_000_000_000 + 86_400_000,
            version: 2,
            ..metas()[0].clone()
        };
        let fresh = encode(&metas()[0], &body, RecordVersion::Lean).unwrap();
        let later = encode(&updated, &body, RecordVersion::Lean).unwrap();
        assert_eq!(later.len(), fresh.len(), "an update keeps the size");
        let old = encode(&metas()[0], &body, RecordVersion::Bson).unwrap();
        assert_eq!(old.len() - body.len(), 99);
    }

    #[test]
    fn version_1_still_reads() {
        let body = bson::doc! {"_id": "a"}.to_vec().unwrap();
        let meta_bytes = Metadata::new_at(5).to_bson().to_vec().unwrap();
        let mut v1 = vec![RECORD_V1];
        v1.extend_from_slice(&u32::try_from(meta_bytes.len()).unwrap().to_le_bytes());
        v1.extend_from_slice(&meta_bytes);
        v1.extend_from_slice(&body);
        assert_eq!(decode_meta(&v1).unwrap().created_at, 5);
        assert_eq!(body_bytes(&v1).unwrap(), &body[..]);
    }

    #[test]
    fn damaged_records_are_corrupt_not_a_panic() {
        let body = bson::doc! {"_id": "a"}.to_vec().unwrap();
        assert!(split(&[2, 0, 0], true).is_err());
        for version in ALL {
            let rec = encode(&metas()[2], &body, version).unwrap();
            let head = rec.len() - body.len();
            // Every cut inside the metadata is refused; a cut in the body is the body's to find.
            for cut in 0..head {
                assert!(
                    decode_meta(&rec[..cut]).is_err(),
                    "{version:?} cut at {cut}"
                );
            }
        }
        let mut rec = encode(&metas()[0], &body, RecordVersion::Compact).unwrap();
        rec[9] = 0x80;
        assert!(matches!(decode_meta(&rec), Err(Error::Corrupt(_))));
        // Version 4: unknown flags, and an expiry flag on a record too short to hold it.
        let mut rec = encode(&metas()[0], &body, RecordVersion::Lean).unwrap();
        rec[1] = 0x08;
        assert!(matches!(decode_meta(&rec), Err(Error::Corrupt(_))));
        assert!(decode_meta(&[4, EXPIRES, 0, 0]).is_err());
        assert_eq!(expires_at(&[4, EXPIRES, 0, 0]), None);
        // An eleven-byte varint (more than 64 bits) is refused.
        let mut rec = encode(&metas()[0], &body, RecordVersion::Compact).unwrap();
        rec.splice(18..19, [0xff; 10]);
        assert!(decode_meta(&rec).is_err());
        // A tag that is not UTF-8.
        let tagged = Metadata {
            tags: vec!["ab".into()],
            ..Metadata::new_at(0)
        };
        let mut rec = encode(&tagged, &body, RecordVersion::Compact).unwrap();
        rec[23] = 0xff;
        assert!(decode_meta(&rec).is_err());
    }

    /// Records come from the file: whatever their bytes, every decoder answers (a value or
    /// `Corrupt`) and never panics, and the expiry read at its fixed offset agrees with the
    /// decoded metadata whenever that decodes (the TTL checks use the first, `get_meta` the
    /// second; [`fuzz_record`], also the fuzz target `record`). Inputs: arbitrary bytes
    /// behind each version tag, and valid records of every version with one byte changed or
    /// cut short. It found version 2 records whose two copies of the expiry disagreed
    /// decoding without complaint.
    mod prop_damaged_records {
        use super::*;
        use proptest::prelude::*;

        fn valid() -> impl Strategy<Value = Vec<u8>> {
            (0..ALL.len(), 0..4usize).prop_map(|(v, m)| {
                let body = bson::doc! {"_id": "a", "n": 1, "s": "text"}
                    .to_vec()
                    .unwrap();
                encode(&metas()[m], &body, ALL[v]).unwrap()
            })
        }

        proptest! {
            #![proptest_config(crate::prop_support::config(512, 0x5eed_4ec0))]

            #[test]
            fn arbitrary_bytes(tag in 1u8..6, rest in proptest::collection::vec(any::<u8>(), 0..64)) {
                let mut rec = vec![tag];
                rec.extend(rest);
                fuzz_record(&rec);
            }

            #[test]
            fn one_byte_changed(rec in valid(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
                let mut rec = rec;
                let i = at.index(rec.len());
                rec[i] = byte;
                fuzz_record(&rec);
            }

            #[test]
            fn cut_short(rec in valid(), at in any::<prop::sample::Index>()) {
                fuzz_record(&rec[..at.index(rec.len())]);
            }
        }
    }

    #[test]
    fn varints_round_trip() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut b = [0u8; 10];
            let n = put_varint(&mut b, v);
            let mut at = 0;
            assert_eq!(get_varint(&b[..n], &mut at), Some(v));
            assert_eq!(at, n);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }
}
