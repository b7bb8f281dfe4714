//! The MongoDB wire protocol's framing: [`Message`] (a decoded request) from the bytes of one
//! message, and the replies ([`op_msg_reply`], [`op_reply`]). No I/O here: `conn.rs` reads a
//! frame's length and bytes, this module checks and decodes them.
//!
//! Every message starts with a 16-byte header of little-endian int32s: `messageLength`
//! (the whole message, header included), `requestID`, `responseTo`, `opCode`. The op codes
//! handled: 2013 `OP_MSG` (`flagBits` u32; sections: kind 0 = one BSON body, kind 1 = int32
//! size, C-string identifier, BSON documents; then a CRC-32C of everything before it when
//! flag bit 0 `checksumPresent` is set; bit 1 `moreToCome`: no reply is wanted), 2004
//! `OP_QUERY` (the legacy handshake: int32 flags, C-string `db.$cmd`, int32 skip, int32
//! return, the command document) answered by 1 `OP_REPLY`, and 2012 `OP_COMPRESSED`
//! (int32 `originalOpcode`, int32 `uncompressedSize`, uint8 `compressorId`, the compressed
//! message after its header) with snappy (id 1, negotiated in `hello`'s `compression`) or
//! noop (id 0): the inner message is checked against the size limit before it is inflated,
//! then decoded as any other, and the reply is compressed the same way ([`compress`]).
//!
//! Every length is checked against the bytes present before it is used; a message that does
//! not decode is an error that closes the connection (the caller's policy).

use bson::{Bson, Document as BsonDocument};

/// `OP_REPLY`: the answer to an `OP_QUERY`.
pub const OP_REPLY: i32 = 1;
/// `OP_QUERY`: legacy queries; drivers use it for the first `hello`/`isMaster` only.
pub const OP_QUERY: i32 = 2004;
/// `OP_COMPRESSED`: a compressed message (not negotiated by this server).
pub const OP_COMPRESSED: i32 = 2012;
/// `OP_MSG`: every command of a current driver.
pub const OP_MSG: i32 = 2013;

/// `OP_MSG` flag: a CRC-32C of the message follows the sections.
pub const CHECKSUM_PRESENT: u32 = 1;
/// `OP_MSG` flag: the sender wants no reply (unacknowledged writes).
pub const MORE_TO_COME: u32 = 1 << 1;
/// `OP_MSG` flag: the client accepts exhaust replies (this server never sends them).
#[cfg(test)]
pub const EXHAUST_ALLOWED: u32 = 1 << 16;

/// The smallest message: the header.
pub const HEADER_LEN: usize = 16;

/// `OP_COMPRESSED` compressor ids.
pub const NOOP: u8 = 0;
pub const SNAPPY: u8 = 1;

/// A request, decoded.
#[derive(Debug)]
pub struct Message {
    /// The sender's `requestID`, echoed as the reply's `responseTo`.
    pub request_id: i32,
    /// What the request is.
    pub kind: Kind,
    /// The compressor of an `OP_COMPRESSED` request (its reply is compressed alike).
    pub compressor: Option<u8>,
}

/// The kinds of request this server answers.
#[derive(Debug)]
pub enum Kind {
    /// An `OP_MSG` command: its body with each document sequence appended as an array field
    /// named by the sequence's identifier; `more_to_come`: no reply wanted.
    Msg {
        body: BsonDocument,
        more_to_come: bool,
    },
    /// An `OP_QUERY` on `DB.$cmd`: a command in the legacy form.
    Query { db: String, command: BsonDocument },
    /// An `OP_QUERY` on a collection (pre-3.6 find): answered with an error.
    LegacyQuery { namespace: String },
}

/// Why a message was refused; the connection is closed after it.
#[derive(Debug)]
pub struct FrameError(pub String);

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(msg: impl Into<String>) -> FrameError {
    FrameError(msg.into())
}

/// The header's `messageLength`, checked: at least the header, at most `max`.
pub fn frame_len(header: &[u8; 4], max: usize) -> Result<usize, FrameError> {
    let len = i32::from_le_bytes(*header);
    let len = usize::try_from(len).map_err(|_| bad(format!("negative message length {len}")))?;
    if len < HEADER_LEN {
        return Err(bad(format!(
            "message length {len} is shorter than the header"
        )));
    }
    if len > max {
        return Err(bad(format!(
            "message length {len} exceeds the limit of {max} bytes"
        )));
    }
    Ok(len)
}

/// A little-endian reader over a byte slice that never reads past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn i32(&mut self, what: &str) -> Result<i32, FrameError> {
        let b = self
            .bytes
            .get(self.at..self.at + 4)
            .ok_or_else(|| bad(format!("message ends inside {what}")))?;
        self.at += 4;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u8(&mut self, what: &str) -> Result<u8, FrameError> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| bad(format!("message ends inside {what}")))?;
        self.at += 1;
        Ok(b)
    }

    fn cstring(&mut self, what: &str) -> Result<&'a str, FrameError> {
        let rest = &self.bytes[self.at.min(self.bytes.len())..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad(format!("{what} has no terminating NUL")))?;
        let s =
            std::str::from_utf8(&rest[..end]).map_err(|_| bad(format!("{what} is not UTF-8")))?;
        self.at += end + 1;
        Ok(s)
    }

    /// One BSON document: its length prefix checked against what is left, nesting checked
    /// on the bytes before the recursive decoder runs (`nexus::Document::from_bson_bytes`).
    fn document(&mut self, what: &str) -> Result<BsonDocument, FrameError> {
        let rest = &self.bytes[self.at.min(self.bytes.len())..];
        let len = rest
            .get(..4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| bad(format!("message ends inside {what}")))?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l >= 5 && l <= rest.len())
            .ok_or_else(|| {
                bad(format!(
                    "{what}: BSON length {len} does not fit the message"
                ))
            })?;
        let doc = nexus::Document::from_bson_bytes(&rest[..len])
            .map_err(|e| bad(format!("{what}: {e}")))?;
        self.at += len;
        Ok(doc.into_bson())
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }
}

/// Decodes a whole message (`bytes` holds exactly `messageLength` bytes, header included);
/// `max`: the largest message, also after decompression.
pub fn decode(bytes: &[u8], max: usize) -> Result<Message, FrameError> {
    let mut r = Reader { bytes, at: 0 };
    let len = r.i32("the header")?;
    if usize::try_from(len).ok() != Some(bytes.len()) {
        return Err(bad("message length does not match the bytes read"));
    }
    let request_id = r.i32("the header")?;
    let _response_to = r.i32("the header")?;
    let op = r.i32("the header")?;
    let kind = match op {
        OP_MSG => decode_msg(bytes)?,
        OP_QUERY => decode_query(&mut r)?,
        OP_COMPRESSED => {
            let original = r.i32("OP_COMPRESSED originalOpcode")?;
            let size = r.i32("OP_COMPRESSED uncompressedSize")?;
            let compressor = r.u8("OP_COMPRESSED compressorId")?;
            let data = &bytes[r.at.min(bytes.len())..];
            let size = usize::try_from(size)
                .ok()
                .filter(|s| s + HEADER_LEN <= max)
                .ok_or_else(|| {
                    bad(format!(
                        "OP_COMPRESSED uncompressedSize {size} is out of range"
                    ))
                })?;
            if original == OP_COMPRESSED {
                return Err(bad("OP_COMPRESSED inside OP_COMPRESSED"));
            }
            let inner = match compressor {
                NOOP => data.to_vec(),
                SNAPPY => {
                    let claimed = snap::raw::decompress_len(data)
                        .map_err(|e| bad(format!("OP_COMPRESSED snappy: {e}")))?;
                    if claimed != size {
                        return Err(bad(
                            "OP_COMPRESSED: snappy length differs from uncompressedSize",
                        ));
                    }
                    snap::raw::Decoder::new()
                        .decompress_vec(data)
                        .map_err(|e| bad(format!("OP_COMPRESSED snappy: {e}")))?
                }
                c => {
                    return Err(bad(format!(
                        "OP_COMPRESSED compressor {c} is not supported (snappy is)"
                    )))
                }
            };
            if inner.len() != size {
                return Err(bad(
                    "OP_COMPRESSED: the message differs from uncompressedSize",
                ));
            }
            let mut whole = Vec::with_capacity(HEADER_LEN + size);
            header(&mut whole, HEADER_LEN + size, request_id, 0, original);
            whole.extend_from_slice(&inner);
            let mut m = decode(&whole, max)?;
            m.compressor = Some(compressor);
            return Ok(m);
        }
        other => return Err(bad(format!("unsupported opCode {other}"))),
    };
    Ok(Message {
        request_id,
        kind,
        compressor: None,
    })
}

/// A reply frame as `OP_COMPRESSED` with `compressor` (the request's).
pub fn compress(frame: &[u8], compressor: u8) -> Vec<u8> {
    let body = &frame[HEADER_LEN..];
    let packed;
    let data = match compressor {
        SNAPPY => match snap::raw::Encoder::new().compress_vec(body) {
            Ok(p) => {
                packed = p;
                &packed[..]
            }
            // Cannot happen for a reply (snappy takes any input under 4 GiB): send it plain.
            Err(_) => return frame.to_vec(),
        },
        _ => body,
    };
    let id = i32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let to = i32::from_le_bytes([frame[8], frame[9], frame[10], frame[11]]);
    let op = i32::from_le_bytes([frame[12], frame[13], frame[14], frame[15]]);
    let len = HEADER_LEN + 9 + data.len();
    let mut out = Vec::with_capacity(len);
    header(&mut out, len, id, to, OP_COMPRESSED);
    out.extend_from_slice(&op.to_le_bytes());
    out.extend_from_slice(&i32::try_from(body.len()).unwrap_or(i32::MAX).to_le_bytes());
    out.push(compressor);
    out.extend_from_slice(data);
    out
}

fn decode_msg(bytes: &[u8]) -> Result<Kind, FrameError> {
    let flags = bytes
        .get(HEADER_LEN..HEADER_LEN + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| bad("OP_MSG ends inside flagBits"))?;
    // Bits 0-15 must be understood: only the two defined ones are.
    if flags & 0xffff & !(CHECKSUM_PRESENT | MORE_TO_COME) != 0 {
        return Err(bad(format!(
            "OP_MSG has unknown required flag bits {flags:#x}"
        )));
    }
    let mut end = bytes.len();
    if flags & CHECKSUM_PRESENT != 0 {
        end = end
            .checked_sub(4)
            .filter(|&e| e >= HEADER_LEN + 4)
            .ok_or_else(|| bad("OP_MSG too short for its checksum"))?;
        let stored =
            u32::from_le_bytes([bytes[end], bytes[end + 1], bytes[end + 2], bytes[end + 3]]);
        if crc32c(&bytes[..end]) != stored {
            return Err(bad("OP_MSG checksum does not match"));
        }
    }
    let mut r = Reader {
        bytes: &bytes[..end],
        at: HEADER_LEN + 4,
    };
    let mut body = None;
    let mut sequences: Vec<(String, Vec<Bson>)> = Vec::new();
    while !r.done() {
        match r.u8("a section kind")? {
            0 => {
                if body.is_some() {
                    return Err(bad("OP_MSG has two body sections"));
                }
                body = Some(r.document("the OP_MSG body")?);
            }
            1 => {
                let start = r.at;
                let size = r.i32("a document sequence size")?;
                let stop = usize::try_from(size)
                    .ok()
                    .and_then(|s| start.checked_add(s))
                    .filter(|&s| s <= end && s >= start + 5)
                    .ok_or_else(|| bad(format!("document sequence size {size} does not fit")))?;
                let mut seq = Reader {
                    bytes: &bytes[..stop],
                    at: r.at,
                };
                let id = seq.cstring("a document sequence identifier")?.to_owned();
                let mut docs = Vec::new();
                while !seq.done() {
                    docs.push(Bson::Document(seq.document("a sequence document")?));
                }
                r.at = stop;
                sequences.push((id, docs));
            }
            k => return Err(bad(format!("unknown OP_MSG section kind {k}"))),
        }
    }
    let mut body = body.ok_or_else(|| bad("OP_MSG has no body section"))?;
    for (id, docs) in sequences {
        if body.contains_key(&id) {
            return Err(bad(format!(
                "document sequence '{id}' repeats a field of the body"
            )));
        }
        body.insert(id, docs);
    }
    Ok(Kind::Msg {
        body,
        more_to_come: flags & MORE_TO_COME != 0,
    })
}

fn decode_query(r: &mut Reader) -> Result<Kind, FrameError> {
    let _flags = r.i32("OP_QUERY flags")?;
    let namespace = r.cstring("the OP_QUERY namespace")?.to_owned();
    let _skip = r.i32("numberToSkip")?;
    let _return = r.i32("numberToReturn")?;
    let mut query = r.document("the OP_QUERY document")?;
    // An optional field selector may follow; it is ignored.
    let Some(db) = namespace.strip_suffix(".$cmd") else {
        return Ok(Kind::LegacyQuery { namespace });
    };
    // Wrapped form: {$query: {...}, $readPreference: ...}.
    if let Some(Bson::Document(inner)) = query.remove("$query").or(query.remove("query")) {
        query = inner;
    }
    Ok(Kind::Query {
        db: db.to_owned(),
        command: query,
    })
}

/// An `OP_MSG` reply: header, flagBits 0, one body section.
pub fn op_msg_reply(response_to: i32, request_id: i32, body: &[u8]) -> Vec<u8> {
    let len = HEADER_LEN + 4 + 1 + body.len();
    let mut out = Vec::with_capacity(len);
    header(&mut out, len, request_id, response_to, OP_MSG);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(0);
    out.extend_from_slice(body);
    out
}

/// An `OP_REPLY` holding one document.
pub fn op_reply(response_to: i32, request_id: i32, doc: &[u8]) -> Vec<u8> {
    let len = HEADER_LEN + 20 + doc.len();
    let mut out = Vec::with_capacity(len);
    header(&mut out, len, request_id, response_to, OP_REPLY);
    out.extend_from_slice(&0i32.to_le_bytes()); // responseFlags
    out.extend_from_slice(&0i64.to_le_bytes()); // cursorID
    out.extend_from_slice(&0i32.to_le_bytes()); // startingFrom
    out.extend_from_slice(&1i32.to_le_bytes()); // numberReturned
    out.extend_from_slice(doc);
    out
}

fn header(out: &mut Vec<u8>, len: usize, request_id: i32, response_to: i32, op: i32) {
    // Replies are bounded by the batch limits far below 2 GiB.
    let len = i32::try_from(len).unwrap_or(i32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&op.to_le_bytes());
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of `OP_MSG`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0u32;
        while i < 256 {
            let mut c = i;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i as usize] = c;
            i += 1;
        }
        t
    };
    let mut crc = !0u32;
    for &b in bytes {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn msg(flags: u32, sections: &[u8], checksum: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let len = HEADER_LEN + 4 + sections.len() + if checksum { 4 } else { 0 };
        header(&mut out, len, 7, 0, OP_MSG);
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(sections);
        if checksum {
            let c = crc32c(&out);
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    fn body(d: &BsonDocument) -> Vec<u8> {
        let mut s = vec![0u8];
        s.extend(d.to_vec().unwrap());
        s
    }

    fn decode_all(b: &[u8]) -> Result<Message, FrameError> {
        decode(b, 1 << 30)
    }

    #[test]
    fn snappy_compressed_request_and_reply() {
        let plain = msg(0, &body(&doc! {"ping": 1, "$db": "admin"}), false);
        let packed = compress(&plain, SNAPPY);
        assert_eq!(
            i32::from_le_bytes(packed[12..16].try_into().unwrap()),
            OP_COMPRESSED
        );
        let m = decode_all(&packed).unwrap();
        assert_eq!(m.compressor, Some(SNAPPY));
        assert!(matches!(m.kind, Kind::Msg { ref body, .. } if body.get_i32("ping").unwrap() == 1));
        // A size over the limit is refused before anything is inflated.
        assert!(decode(&packed, 40).is_err());
        // uncompressedSize that disagrees with the data; an unknown compressor.
        let mut wrong = packed.clone();
        wrong[20] ^= 1;
        assert!(decode_all(&wrong).is_err());
        let mut zlib = packed.clone();
        zlib[24] = 2;
        assert!(decode_all(&zlib).is_err());
        // Noop carries the message as it is.
        let noop = compress(&plain, NOOP);
        assert!(decode_all(&noop).is_ok());
    }

    #[test]
    fn crc32c_of_the_standard_check_string() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn body_and_document_sequence_with_checksum() {
        let mut sections = body(&doc! {"insert": "c", "$db": "d"});
        let docs: Vec<u8> = [doc! {"a": 1}, doc! {"a": 2}]
            .iter()
            .flat_map(|d| d.to_vec().unwrap())
            .collect();
        sections.push(1);
        let size = 4 + "documents\0".len() + docs.len();
        sections.extend_from_slice(&i32::try_from(size).unwrap().to_le_bytes());
        sections.extend_from_slice(b"documents\0");
        sections.extend_from_slice(&docs);
        let m = decode_all(&msg(CHECKSUM_PRESENT, &sections, true)).unwrap();
        assert_eq!(m.request_id, 7);
        let Kind::Msg { body, more_to_come } = m.kind else {
            panic!("not a msg")
        };
        assert!(!more_to_come);
        assert_eq!(body.get_array("documents").unwrap().len(), 2);
        // A flipped byte fails the checksum.
        let mut bytes = msg(CHECKSUM_PRESENT, &sections, true);
        bytes[25] ^= 1;
        assert!(decode_all(&bytes).unwrap_err().0.contains("checksum"));
    }

    #[test]
    fn more_to_come_and_unknown_flags() {
        let sections = body(&doc! {"ping": 1});
        let Kind::Msg { more_to_come, .. } = decode_all(&msg(MORE_TO_COME, &sections, false))
            .unwrap()
            .kind
        else {
            panic!()
        };
        assert!(more_to_come);
        assert!(decode_all(&msg(1 << 4, &sections, false)).is_err());
        // exhaustAllowed is an optional bit: accepted.
        assert!(decode_all(&msg(EXHAUST_ALLOWED, &sections, false)).is_ok());
    }

    #[test]
    fn lengths_that_do_not_fit_are_refused() {
        let sections = body(&doc! {"ping": 1});
        let good = msg(0, &sections, false);
        for cut in 0..good.len() {
            let mut b = good[..cut].to_vec();
            if b.len() >= 4 {
                let l = i32::try_from(b.len()).unwrap();
                b[..4].copy_from_slice(&l.to_le_bytes());
            }
            assert!(decode_all(&b).is_err(), "cut at {cut}");
        }
        // A BSON length larger than the message.
        let mut b = good.clone();
        b[21..25].copy_from_slice(&1000i32.to_le_bytes());
        assert!(decode_all(&b).is_err());
        assert!(frame_len(&(-5i32).to_le_bytes(), 1000).is_err());
        assert!(frame_len(&2000i32.to_le_bytes(), 1000).is_err());
        assert!(frame_len(&3i32.to_le_bytes(), 1000).is_err());
        assert_eq!(frame_len(&100i32.to_le_bytes(), 1000).unwrap(), 100);
    }

    #[test]
    fn op_query_handshake() {
        let mut b = Vec::new();
        let q = doc! {"isMaster": 1, "client": {"driver": {"name": "x"}}};
        let qb = q.to_vec().unwrap();
        let ns = b"admin.$cmd\0";
        header(
            &mut b,
            HEADER_LEN + 4 + ns.len() + 8 + qb.len(),
            3,
            0,
            OP_QUERY,
        );
        b.extend_from_slice(&0i32.to_le_bytes());
        b.extend_from_slice(ns);
        b.extend_from_slice(&0i32.to_le_bytes());
        b.extend_from_slice(&(-1i32).to_le_bytes());
        b.extend_from_slice(&qb);
        let m = decode_all(&b).unwrap();
        match m.kind {
            Kind::Query { db, command } => {
                assert_eq!(db, "admin");
                assert_eq!(command.get_i32("isMaster").unwrap(), 1);
            }
            k => panic!("{k:?}"),
        }
    }
}
