//! [`Reply`]: a command's answer, either a document or the encoded bytes of a cursor batch
//! (`{cursor: {firstBatch|nextBatch: [...], id, ns}, ok: 1}` written straight from the
//! documents' bytes, without decoding and encoding them again).

use bson::Document as BsonDocument;

/// A command's answer.
pub enum Reply {
    Doc(BsonDocument),
    Bytes(Vec<u8>),
}

impl Reply {
    /// The BSON bytes of the reply document.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Reply::Bytes(b) => b,
            Reply::Doc(d) => d.to_vec().unwrap_or_else(|e| {
                super::error::CmdError::new(1, "InternalError", format!("reply: {e}"))
                    .to_doc()
                    .to_vec()
                    .unwrap_or_default()
            }),
        }
    }
}

impl From<BsonDocument> for Reply {
    fn from(d: BsonDocument) -> Self {
        Reply::Doc(d)
    }
}

fn element_header(out: &mut Vec<u8>, kind: u8, key: &str) {
    out.push(kind);
    out.extend_from_slice(key.as_bytes());
    out.push(0);
}

fn finish_doc(out: &mut Vec<u8>, start: usize) {
    out.push(0);
    let len = i32::try_from(out.len() - start).unwrap_or(i32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// The reply of find / aggregate / getMore / list*: `field` is `firstBatch` or `nextBatch`.
pub fn cursor(field: &str, docs: &[Vec<u8>], id: i64, ns: &str) -> Reply {
    let size: usize = docs.iter().map(|d| d.len() + 8).sum();
    let mut out = Vec::with_capacity(size + ns.len() + 96);
    out.extend_from_slice(&[0; 4]);
    element_header(&mut out, 0x03, "cursor");
    let cursor = out.len();
    out.extend_from_slice(&[0; 4]);
    element_header(&mut out, 0x04, field);
    let array = out.len();
    out.extend_from_slice(&[0; 4]);
    for (i, d) in docs.iter().enumerate() {
        element_header(&mut out, 0x03, &i.to_string());
        out.extend_from_slice(d);
    }
    finish_doc(&mut out, array);
    element_header(&mut out, 0x12, "id");
    out.extend_from_slice(&id.to_le_bytes());
    element_header(&mut out, 0x02, "ns");
    let n = i32::try_from(ns.len() + 1).unwrap_or(i32::MAX);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(ns.as_bytes());
    out.push(0);
    finish_doc(&mut out, cursor);
    element_header(&mut out, 0x01, "ok");
    out.extend_from_slice(&1.0f64.to_le_bytes());
    finish_doc(&mut out, 0);
    Reply::Bytes(out)
}

#[cfg(test)]
mod tests {
    use bson::doc;

    #[test]
    fn cursor_reply_decodes_as_the_document_it_stands_for() {
        let docs = [doc! {"_id": 1, "a": "x"}, doc! {"_id": 2}];
        let bytes: Vec<Vec<u8>> = docs.iter().map(|d| d.to_vec().unwrap()).collect();
        let reply = super::cursor("firstBatch", &bytes, 42, "db.c").into_bytes();
        let got = bson::Document::from_reader(reply.as_slice()).unwrap();
        assert_eq!(
            got,
            doc! {"cursor": {"firstBatch": [docs[0].clone(), docs[1].clone()], "id": 42i64, "ns": "db.c"}, "ok": 1.0}
        );
    }
}
