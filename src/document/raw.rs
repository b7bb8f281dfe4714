//! A minimal reader of BSON bytes for the filter's hot path: [`find`] locates one field of a
//! document by comparing key bytes (no UTF-8 validation of the keys it skips, no element
//! objects), [`elements`] walks an array, and [`to_bson`] materializes one value, decoding
//! the common scalars directly; [`decode_fields`] materializes only the fields an index
//! build reads. Malformed bytes give `None` / `Err(Malformed)`; the caller then decodes the
//! whole document with the `bson` crate to report the corruption.

use bson::{Bson, Document};

/// Deepest nesting the readers here follow: a stored document's ([`MAX_NESTING`]); deeper
/// bytes are reported as [`Malformed`] (they can only be damage). The decoder
/// ([`decode_document`], [`to_bson`]) is iterative; the readers that recurse
/// ([`decode_fields`], the JSON writer of stored bytes) count their depth against this, and
/// what is decoded nests no deeper than this, so whatever the bytes hold, the code that
/// walks the values later (comparison, index keys, projection) recurses a bounded number of
/// times.
///
/// [`MAX_NESTING`]: crate::document::MAX_NESTING
pub(crate) const MAX_DEPTH: usize = crate::document::MAX_NESTING;

/// The bytes are not well-formed BSON (or nest deeper than [`MAX_DEPTH`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Malformed;

/// One element: its BSON type byte and the bytes of its value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Elem<'a> {
    pub kind: u8,
    pub bytes: &'a [u8],
}

fn i32_at(b: &[u8], at: usize) -> Result<usize, Malformed> {
    let s = b.get(at..at + 4).ok_or(Malformed)?;
    let v = i32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    usize::try_from(v).map_err(|_| Malformed)
}

fn cstring_end(b: &[u8], at: usize) -> Result<usize, Malformed> {
    b.get(at..)
        .and_then(|rest| rest.iter().position(|&c| c == 0))
        .map(|p| at + p)
        .ok_or(Malformed)
}

/// The length of a value of type `kind` starting at `at`.
fn value_len(kind: u8, b: &[u8], at: usize) -> Result<usize, Malformed> {
    Ok(match kind {
        0x01 | 0x09 | 0x11 | 0x12 => 8,
        0x02 | 0x0D | 0x0E => 4 + i32_at(b, at)?,
        0x03 | 0x04 | 0x0F => i32_at(b, at)?,
        0x05 => 5 + i32_at(b, at)?,
        0x06 | 0x0A | 0xFF | 0x7F => 0,
        0x07 => 12,
        0x08 => 1,
        0x0B => {
            let p = cstring_end(b, at)?;
            cstring_end(b, p + 1)? + 1 - at
        }
        0x0C => 4 + i32_at(b, at)? + 12,
        0x10 => 4,
        0x13 => 16,
        _ => return Err(Malformed),
    })
}

/// Whether the document whose bytes are `doc` nests documents and arrays no deeper than
/// `max` levels (the top level is 1; a JavaScript code's scope counts as a document one
/// level below the code). Iterative, so hostile input cannot exhaust the stack.
pub(crate) fn depth_within(doc: &[u8], max: usize) -> Result<bool, Malformed> {
    let mut stack = vec![elements(doc)?];
    while let Some(top) = stack.last_mut() {
        match top.next() {
            None => {
                stack.pop();
            }
            Some(item) => {
                let (_, e) = item?;
                let inner = match e.kind {
                    0x03 | 0x04 => e.bytes,
                    0x0F => scope_of(e.bytes)?,
                    _ => continue,
                };
                if stack.len() >= max {
                    return Ok(false);
                }
                stack.push(elements(inner)?);
            }
        }
    }
    Ok(true)
}

/// The scope document's bytes of a code-with-scope value (`int32 total, string, document`).
fn scope_of(bytes: &[u8]) -> Result<&[u8], Malformed> {
    let code_len = i32_at(bytes, 4)?;
    bytes
        .get(8usize.checked_add(code_len).ok_or(Malformed)?..)
        .ok_or(Malformed)
}

/// Iterates the elements of a document (or array) body: `(key, element)`.
pub(crate) struct Elements<'a> {
    b: &'a [u8],
    at: usize,
    end: usize,
}

/// The elements of the document or array whose bytes (length prefix included) are `doc`.
pub(crate) fn elements(doc: &[u8]) -> Result<Elements<'_>, Malformed> {
    let len = i32_at(doc, 0)?;
    if len < 5 || len > doc.len() || doc[len - 1] != 0 {
        return Err(Malformed);
    }
    Ok(Elements {
        b: &doc[..len],
        at: 4,
        end: len - 1,
    })
}

impl<'a> Iterator for Elements<'a> {
    type Item = Result<(&'a [u8], Elem<'a>), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.end {
            return None;
        }
        let step = (|| {
            let kind = self.b[self.at];
            let key_end = cstring_end(self.b, self.at + 1)?;
            let start = key_end + 1;
            let len = value_len(kind, self.b, start)?;
            let stop = start
                .checked_add(len)
                .filter(|&s| s <= self.end)
                .ok_or(Malformed)?;
            let key = &self.b[self.at + 1..key_end];
            self.at = stop;
            Ok((
                key,
                Elem {
                    kind,
                    bytes: &self.b[start..stop],
                },
            ))
        })();
        if step.is_err() {
            self.at = self.end;
        }
        Some(step)
    }
}

/// The element `key` of the document `doc`, if present.
pub(crate) fn find<'a>(doc: &'a [u8], key: &str) -> Result<Option<Elem<'a>>, Malformed> {
    for item in elements(doc)? {
        let (k, e) = item?;
        if k == key.as_bytes() {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

fn str_of(bytes: &[u8]) -> Result<String, Malformed> {
    str_ref(bytes).map(str::to_owned)
}

/// The text of a string element's value bytes.
pub(crate) fn str_ref(bytes: &[u8]) -> Result<&str, Malformed> {
    std::str::from_utf8(str_bytes(bytes)?).map_err(|_| Malformed)
}

/// A string value's bytes (without its length and NUL), not checked to be UTF-8: for a
/// caller that checks the text it writes them into as a whole.
pub(crate) fn str_bytes(bytes: &[u8]) -> Result<&[u8], Malformed> {
    let len = i32_at(bytes, 0)?;
    bytes
        .get(4..4 + len.checked_sub(1).ok_or(Malformed)?)
        .ok_or(Malformed)
}

/// The first `N` bytes of a value (a fixed-size number's bytes).
pub(crate) fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], Malformed> {
    bytes
        .get(..N)
        .and_then(|s| s.try_into().ok())
        .ok_or(Malformed)
}

/// The value of an element as an owned [`Bson`].
pub(crate) fn to_bson(e: Elem<'_>) -> Result<Bson, Malformed> {
    match e.kind {
        0x03 => decode_tree(e.bytes, false),
        0x04 => decode_tree(e.bytes, true),
        _ => scalar(e),
    }
}

/// A value that is not a document or an array: the common scalars decoded directly, the
/// rare types through the `bson` crate.
fn scalar(e: Elem<'_>) -> Result<Bson, Malformed> {
    Ok(match e.kind {
        0x01 => Bson::Double(f64::from_le_bytes(fixed(e.bytes)?)),
        0x02 => Bson::String(str_of(e.bytes)?),
        0x08 => Bson::Boolean(e.bytes.first().ok_or(Malformed)? != &0),
        0x09 => Bson::DateTime(bson::DateTime::from_millis(i64::from_le_bytes(fixed(
            e.bytes,
        )?))),
        0x0A => Bson::Null,
        0x10 => Bson::Int32(i32::from_le_bytes(fixed(e.bytes)?)),
        0x12 => Bson::Int64(i64::from_le_bytes(fixed(e.bytes)?)),
        0x03 | 0x04 => return Err(Malformed),
        kind => {
            // The `bson` crate decodes a code-with-scope's scope recursively: not deeper
            // than a stored document may nest.
            if kind == 0x0F
                && depth_within(scope_of(e.bytes)?, crate::document::MAX_NESTING) != Ok(true)
            {
                return Err(Malformed);
            }
            // Rare types: wrap the value in a one-field document and let `bson` decode it.
            let total = 4 + 1 + 1 + e.bytes.len() + 1;
            let mut buf = Vec::with_capacity(total);
            buf.extend_from_slice(&i32::try_from(total).map_err(|_| Malformed)?.to_le_bytes());
            buf.push(kind);
            buf.push(0);
            buf.extend_from_slice(e.bytes);
            buf.push(0);
            let d = Document::from_reader(buf.as_slice()).map_err(|_| Malformed)?;
            d.into_iter().next().map(|(_, v)| v).ok_or(Malformed)?
        }
    })
}

/// A document or array being decoded: the elements still to read, what is built so far,
/// and the key it goes under in the one holding it.
struct Open<'a> {
    items: Elements<'a>,
    built: Built,
    key: &'a [u8],
}

enum Built {
    Doc(Document),
    Arr(Vec<Bson>),
}

impl Built {
    fn new(array: bool) -> Self {
        if array {
            Built::Arr(Vec::new())
        } else {
            Built::Doc(Document::new())
        }
    }

    fn add(&mut self, key: &[u8], v: Bson) -> Result<(), Malformed> {
        match self {
            Built::Doc(d) => {
                let key = std::str::from_utf8(key).map_err(|_| Malformed)?;
                d.insert(key, v);
            }
            Built::Arr(items) => items.push(v),
        }
        Ok(())
    }

    fn into_bson(self) -> Bson {
        match self {
            Built::Doc(d) => Bson::Document(d),
            Built::Arr(items) => Bson::Array(items),
        }
    }
}

/// Decodes the document (or array) whose bytes are `bytes`: iteratively, with the nested
/// documents and arrays being built on a heap stack of at most [`MAX_DEPTH`] levels.
fn decode_tree(bytes: &[u8], array: bool) -> Result<Bson, Malformed> {
    let mut stack = vec![Open {
        items: elements(bytes)?,
        built: Built::new(array),
        key: b"",
    }];
    while let Some(top) = stack.last_mut() {
        match top.items.next() {
            Some(item) => {
                let (k, e) = item?;
                if matches!(e.kind, 0x03 | 0x04) {
                    if stack.len() >= MAX_DEPTH {
                        return Err(Malformed);
                    }
                    stack.push(Open {
                        items: elements(e.bytes)?,
                        built: Built::new(e.kind == 0x04),
                        key: k,
                    });
                } else {
                    top.built.add(k, scalar(e)?)?;
                }
            }
            None => {
                let Some(done) = stack.pop() else { break };
                let value = done.built.into_bson();
                match stack.last_mut() {
                    Some(parent) => parent.built.add(done.key, value)?,
                    None => return Ok(value),
                }
            }
        }
    }
    Err(Malformed)
}

/// Decodes a whole document from its bytes (the common types directly, the rare ones
/// through the `bson` crate); the same result as `bson::Document::from_reader`, faster.
pub(crate) fn decode_document(bytes: &[u8]) -> Result<Document, Malformed> {
    match decode_tree(bytes, false)? {
        Bson::Document(d) => Ok(d),
        _ => Err(Malformed),
    }
}

/// What the `bson` crate makes of document bytes, for callers that want its precise message
/// about bytes [`decode_document`] refused. Its decoder recurses, so it only sees bytes that
/// nest no deeper than a stored document may; deeper or unreadable bytes get this module's
/// own words.
pub(crate) fn bson_decode(bytes: &[u8]) -> Result<Document, String> {
    let max = crate::document::MAX_NESTING;
    match depth_within(bytes, max) {
        Ok(true) => Document::from_reader(bytes).map_err(|e| e.to_string()),
        Ok(false) => Err(format!(
            "it nests deeper than {max} levels of documents and arrays"
        )),
        Err(Malformed) => Err("its elements cannot be read".into()),
    }
}

/// The parts of a document a reader needs: by field name, the whole value (`None`), or,
/// when the value is a document, only some of its fields (`Some`).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct FieldTree(Vec<(String, Option<FieldTree>)>);

impl FieldTree {
    /// The parts dotted `paths` reach when walked through documents: a path's last component
    /// takes the whole value, and a value some path ends at is taken whole.
    pub(crate) fn of_paths<'p>(paths: impl IntoIterator<Item = &'p str>) -> Self {
        let mut tree = FieldTree::default();
        for path in paths {
            let mut node = &mut tree;
            let mut parts = path.split('.').peekable();
            while let Some(part) = parts.next() {
                let at = match node.0.iter().position(|(n, _)| n == part) {
                    Some(at) => at,
                    None => {
                        node.0.push((part.to_owned(), Some(FieldTree::default())));
                        node.0.len() - 1
                    }
                };
                let slot = &mut node.0[at].1;
                if parts.peek().is_none() {
                    *slot = None;
                    break;
                }
                match slot {
                    Some(child) => node = child,
                    None => break, // a shorter path takes this value whole
                }
            }
        }
        tree
    }
}

/// Decodes only the parts of a document `want` names: the same result as
/// [`decode_document`] with every other field removed (of the document and of the
/// sub-documents `want` descends into). Arrays and other values are decoded whole; the
/// fields left out are stepped over, their bytes not checked beyond their lengths.
pub(crate) fn decode_fields(bytes: &[u8], want: &FieldTree) -> Result<Document, Malformed> {
    decode_fields_at(bytes, want, 0)
}

fn decode_fields_at(bytes: &[u8], want: &FieldTree, depth: usize) -> Result<Document, Malformed> {
    let mut doc = Document::new();
    for item in elements(bytes)? {
        let (k, e) = item?;
        let Some((name, sub)) = want.0.iter().find(|(n, _)| n.as_bytes() == k) else {
            continue;
        };
        let value = match sub {
            Some(sub) if e.kind == 0x03 => {
                if depth > MAX_DEPTH {
                    return Err(Malformed);
                }
                Bson::Document(decode_fields_at(e.bytes, sub, depth + 1)?)
            }
            _ => to_bson(e)?,
        };
        doc.insert(name.as_str(), value);
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn finds_fields_and_decodes_every_type() {
        let d = doc! {
            "d": 1.5, "s": "x", "o": {"a": 1}, "a": [1, "two"], "b": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1, 2] },
            "id": bson::oid::ObjectId::new(), "t": true, "dt": bson::DateTime::from_millis(5), "n": Bson::Null,
            "re": bson::Regex { pattern: "a+".try_into().unwrap(), options: "i".try_into().unwrap() },
            "i": 7, "ts": bson::Timestamp { time: 1, increment: 2 }, "l": 9_i64,
            "dec": Bson::Decimal128("1.5".parse().unwrap()), "min": Bson::MinKey, "max": Bson::MaxKey,
        };
        let bytes = d.to_vec().unwrap();
        for (k, v) in &d {
            let e = find(&bytes, k).unwrap().unwrap();
            assert_eq!(&to_bson(e).unwrap(), v, "{k}");
        }
        assert!(find(&bytes, "nope").unwrap().is_none());
        let nested =
            doc! {"a": [d.clone(), [d.clone(), 1]], "b": {"c": d.clone()}, "u": Bson::Undefined};
        let nb = nested.to_vec().unwrap();
        assert_eq!(
            decode_document(&nb).unwrap(),
            Document::from_reader(nb.as_slice()).unwrap()
        );
        assert!(find(&bytes[..bytes.len() - 3], "l").is_err());
        let mut deep = doc! {"x": 1};
        for _ in 0..MAX_DEPTH + 5 {
            deep = doc! {"a": deep};
        }
        assert_eq!(decode_document(&deep.to_vec().unwrap()), Err(Malformed));
        // Some of the fields, in the document's order, the others not decoded.
        let tree = FieldTree::of_paths(["u", "a.x", "zz", "b.c.s", "b.c.o.a", "b.c.o"]);
        let got = decode_fields(&nb, &tree).unwrap();
        let whole = Document::from_reader(nb.as_slice()).unwrap();
        let want = doc! {"a": whole.get("a").unwrap().clone(), "b": {"c": {"s": "x", "o": {"a": 1}}}, "u": Bson::Undefined};
        assert_eq!(got, want);
        assert_eq!(
            decode_fields(&nb, &FieldTree::of_paths(["b", "b.c"])).unwrap(),
            doc! {"b": whole.get("b").unwrap().clone()}
        );
        assert_eq!(
            decode_fields(&nb, &FieldTree::default()).unwrap(),
            Document::new()
        );
    }
}
