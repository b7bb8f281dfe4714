//! Documents: [`Document`] (a BSON body whose first field is `_id`), its [`Metadata`]
//! (timestamps, version, TTL) kept beside the body, the builder, and the conversion to and
//! from relaxed MongoDB Extended JSON (`json`). The layer beneath is the `bson` crate; the
//! layers above (query, engine, FFI) only see `Document`.

pub(crate) mod body;
pub(crate) mod id;
pub(crate) mod json;
mod meta;
pub(crate) mod raw;
pub(crate) mod record;

pub use id::{new_uuid_v4, DocumentId};
pub(crate) use meta::now_millis;
pub use meta::Metadata;

use crate::error::{Error, Result};
use bson::{Bson, Document as BsonDocument};
use std::sync::Arc;

/// The largest document NexusLite stores, in BSON bytes (MongoDB's limit: 16 MiB).
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// The deepest nesting of documents and arrays NexusLite stores (MongoDB's limit: 100).
pub const MAX_NESTING: usize = 100;

/// The deepest nesting of documents and arrays in any other document the library reads:
/// filters, updates, projections, sorts, index keys, options, and any JSON text (a JSON
/// text deeper than this is refused before it is parsed). It is above [`MAX_NESTING`] so
/// that a stored document can still appear whole inside a query or an update (`{"$set":
/// {"a": ...}}` adds two levels). Like every limit on nesting, it bounds the recursion of
/// the code that reads such documents, so that NexusLite runs on small thread stacks.
pub const MAX_QUERY_NESTING: usize = 120;

pub(crate) fn too_deep() -> Error {
    Error::invalid(format!(
        "document nests deeper than {MAX_NESTING} levels of documents and arrays"
    ))
}

/// Refuses `doc` (named `what` in the message) when it nests documents and arrays deeper
/// than `max` levels (the document itself is level 1). Iterative, and run before any
/// recursive code (parsing, cloning, encoding) sees the document.
pub(crate) fn check_nesting(doc: &BsonDocument, max: usize, what: &str) -> Result<()> {
    if depth_within(doc, max) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what} nests deeper than {max} levels of documents and arrays"
        )))
    }
}

fn too_large(len: usize) -> Error {
    Error::invalid(format!(
        "document is {len} bytes as BSON; the limit is {MAX_DOCUMENT_BYTES} bytes (16 MiB)"
    ))
}

/// The checks [`Document::from_bson_bytes`] makes on raw BSON before decoding it: the length
/// prefix matches `bytes`, and the nesting is within [`MAX_NESTING`].
fn check_bson_frame(bytes: &[u8]) -> Result<()> {
    let declared = bytes
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| Error::parse("BSON document shorter than its 4-byte length prefix"))?;
    if declared != bytes.len() {
        return Err(Error::parse(format!(
            "BSON length prefix says {declared} bytes but {} were given",
            bytes.len()
        )));
    }
    // Checked on the bytes, before the (recursive) decoder sees them.
    match crate::document::raw::depth_within(bytes, MAX_NESTING) {
        Ok(true) => Ok(()),
        Ok(false) => Err(too_deep()),
        Err(_) => Err(Error::parse("malformed BSON document")),
    }
}

/// [`check_nesting`] of any value: a document or an array is level 1, what it holds below.
pub(crate) fn check_value_nesting(value: &Bson, max: usize, what: &str) -> Result<()> {
    let ok = match children(value) {
        Some(c) => max > 0 && within(c, max),
        None => true,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what} nests deeper than {max} levels of documents and arrays"
        )))
    }
}

/// The values a document, an array or a JavaScript code's scope holds (a scope is a
/// document one level below the value holding the code); `None` for any other value.
fn children(v: &Bson) -> Option<Box<dyn Iterator<Item = &Bson> + '_>> {
    match v {
        Bson::Document(d) => Some(Box::new(d.values())),
        Bson::Array(a) => Some(Box::new(a.iter())),
        Bson::JavaScriptCodeWithScope(c) => Some(Box::new(c.scope.values())),
        _ => None,
    }
}

/// Whether the values of a level-1 container (`top`) nest no deeper than `max` levels in
/// all. Iterative, so hostile input cannot exhaust the stack.
fn within<'a>(top: Box<dyn Iterator<Item = &'a Bson> + 'a>, max: usize) -> bool {
    nests_within(top, max, children)
}

/// Whether the values of a level-1 container (`top`) nest no deeper than `max` levels in
/// all, `children` giving the values a container holds (`None` for a leaf). Iterative, so
/// hostile input cannot exhaust the stack; shared by BSON values and JSON text values.
pub(crate) fn nests_within<'a, T: 'a>(
    top: Box<dyn Iterator<Item = &'a T> + 'a>,
    max: usize,
    children: impl Fn(&'a T) -> Option<Box<dyn Iterator<Item = &'a T> + 'a>>,
) -> bool {
    let mut stack = vec![top];
    while let Some(level) = stack.last_mut() {
        match level.next() {
            None => {
                stack.pop();
            }
            Some(v) => {
                if let Some(c) = children(v) {
                    if stack.len() >= max {
                        return false;
                    }
                    stack.push(c);
                }
            }
        }
    }
    true
}

/// Drops a document without recursion. The bson crate's drop recurses once per level, so a
/// document the caller handed over (which may nest any depth until it is checked) is taken
/// apart here instead: values that hold others go on a heap stack, the rest are dropped.
pub(crate) fn dispose(doc: BsonDocument) {
    dispose_value(Bson::Document(doc));
}

/// [`dispose`] of any value.
pub(crate) fn dispose_value(value: Bson) {
    let mut rest = vec![value];
    while let Some(v) = rest.pop() {
        match v {
            Bson::Document(d) => rest.extend(d.into_iter().map(|(_, v)| v).filter(holds_values)),
            Bson::Array(items) => rest.extend(items.into_iter().filter(holds_values)),
            Bson::JavaScriptCodeWithScope(c) => rest.push(Bson::Document(c.scope)),
            _ => {}
        }
    }
}

fn holds_values(v: &Bson) -> bool {
    matches!(
        v,
        Bson::Document(_) | Bson::Array(_) | Bson::JavaScriptCodeWithScope(_)
    )
}

/// Whether an owned document nests no deeper than `max` levels: documents nesting at most
/// [`SHALLOW_LEVELS`] deep (nearly all) are checked by a recursion that deep at most and
/// allocates nothing; deeper ones by the iterative [`within`].
fn depth_within(doc: &BsonDocument, max: usize) -> bool {
    if max == 0 {
        return false;
    }
    let levels = max - 1;
    nests_at_most(doc.values(), levels.min(SHALLOW_LEVELS))
        || (levels > SHALLOW_LEVELS && within(Box::new(doc.values()), max))
}

/// How deep [`nests_at_most`] may recurse.
const SHALLOW_LEVELS: usize = 8;

/// Whether `values` hold containers nesting at most `levels` levels below them. Recurses
/// once per level, so callers bound `levels` ([`SHALLOW_LEVELS`]).
fn nests_at_most<'a>(mut values: impl Iterator<Item = &'a Bson>, levels: usize) -> bool {
    values.all(|v| match v {
        Bson::Document(d) => levels > 0 && nests_at_most(d.values(), levels - 1),
        Bson::Array(a) => levels > 0 && nests_at_most(a.iter(), levels - 1),
        Bson::JavaScriptCodeWithScope(c) => {
            levels > 0 && nests_at_most(c.scope.values(), levels - 1)
        }
        _ => true,
    })
}

/// A document: an ordered set of fields whose first field, once stored, is `_id`.
///
/// `Document` is a plain value (`Clone`, `Send`, `Sync`); it is not tied to a database. Its
/// body is shared copy-on-write: a clone (and a document read from the document cache) shares
/// the fields until one side changes them, so cloning costs a reference count.
///
/// ```
/// use nexus::Document;
/// let doc = Document::builder().field("name", "ada").field("age", 36).build();
/// assert_eq!(doc.to_json(), r#"{"name":"ada","age":36}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Document {
    body: Arc<BsonDocument>,
}

impl Document {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a [`DocumentBuilder`].
    pub fn builder() -> DocumentBuilder {
        DocumentBuilder::default()
    }

    /// Parses relaxed or canonical MongoDB Extended JSON text that must be one JSON object.
    ///
    /// Errors: [`Error::Parse`] for malformed JSON, a non-object, or a bad `$`-wrapper such as
    /// `{"$oid": "xyz"}`.
    pub fn from_json(text: &str) -> Result<Self> {
        Ok(Self::from_bson(json::parse_document(text)?))
    }

    /// Decodes one BSON document from `bytes`, which must hold exactly that document.
    pub fn from_bson_bytes(bytes: &[u8]) -> Result<Self> {
        check_bson_frame(bytes)?;
        let body = BsonDocument::from_reader(bytes)
            .map_err(|e| Error::parse(format!("malformed BSON: {e}")))?;
        Ok(Self::from_bson(body))
    }

    /// Wraps an existing `bson::Document`.
    pub fn from_bson(body: BsonDocument) -> Self {
        Self {
            body: Arc::new(body),
        }
    }

    /// A document sharing `body` (the decoded form the document cache keeps).
    pub(crate) fn from_shared(body: Arc<BsonDocument>) -> Self {
        Self { body }
    }

    /// The document as relaxed Extended JSON text (field order preserved).
    pub fn to_json(&self) -> String {
        json::to_relaxed_json(&self.body)
    }

    /// The document encoded as BSON bytes.
    ///
    /// Errors: [`Error::InvalidArgument`] for a document that nests deeper than
    /// [`MAX_QUERY_NESTING`] levels (refused before the recursive encoder sees it) or that
    /// BSON cannot hold (a key with a NUL).
    pub fn to_bson_bytes(&self) -> Result<Vec<u8>> {
        check_nesting(&self.body, MAX_QUERY_NESTING, "document")?;
        self.encode()
    }

    /// The BSON encoding, nesting not checked (the callers check it first).
    fn encode(&self) -> Result<Vec<u8>> {
        self.body
            .to_vec()
            .map_err(|e| Error::invalid(format!("document cannot be encoded as BSON: {e}")))
    }

    /// The `_id` field, if present.
    pub fn id(&self) -> Option<&Bson> {
        self.body.get("_id")
    }

    /// A top-level field.
    pub fn get(&self, key: &str) -> Option<&Bson> {
        self.body.get(key)
    }

    /// Sets a top-level field, replacing an existing value in place.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Bson>) {
        self.as_bson_mut().insert(key, value);
    }

    /// The underlying BSON document.
    pub fn as_bson(&self) -> &BsonDocument {
        &self.body
    }

    /// Mutable access to the underlying BSON document (its own copy first, if the body is
    /// shared with a clone).
    pub fn as_bson_mut(&mut self) -> &mut BsonDocument {
        Arc::make_mut(&mut self.body)
    }

    /// Unwraps into the underlying BSON document (a copy if the body is shared).
    pub fn into_bson(self) -> BsonDocument {
        Arc::try_unwrap(self.body).unwrap_or_else(|shared| BsonDocument::clone(&shared))
    }

    /// Makes sure the document has a valid `_id` as its first field, assigning a UUID v4
    /// string when it has none, and returns it.
    pub(crate) fn ensure_id(&mut self) -> Result<DocumentId> {
        self.ensure_id_with(new_uuid_v4)
    }

    /// As [`Document::ensure_id`], with `new_id` giving the `_id` when there is none.
    pub(crate) fn ensure_id_with(&mut self, new_id: impl FnOnce() -> String) -> Result<DocumentId> {
        if let Some((k, v)) = self.body.iter().next() {
            if k == "_id" {
                // Before the copy: `DocumentId::new` checks it too, but only once it is made.
                check_value_nesting(v, MAX_NESTING - 1, "_id")?;
                return DocumentId::new(v.clone());
            }
        }
        let fields = self.as_bson_mut();
        let id = match fields.remove("_id") {
            Some(v) => DocumentId::new(v)?,
            None => DocumentId::new(Bson::String(new_id()))?,
        };
        let mut body = BsonDocument::new();
        body.insert("_id", id.as_bson().clone());
        body.extend(std::mem::take(fields));
        *fields = body;
        Ok(id)
    }

    /// Refuses a document nested deeper than [`MAX_NESTING`] (iterative; callers run it
    /// before anything recursive touches the document).
    pub(crate) fn check_depth(&self) -> Result<()> {
        if depth_within(&self.body, MAX_NESTING) {
            Ok(())
        } else {
            Err(too_deep())
        }
    }

    /// Checks the nesting and size limits and returns the BSON encoding.
    pub(crate) fn encode_checked(&self) -> Result<Vec<u8>> {
        self.check_depth()?;
        let bytes = self.encode()?;
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large(bytes.len()));
        }
        Ok(bytes)
    }
}

impl From<BsonDocument> for Document {
    fn from(body: BsonDocument) -> Self {
        Self::from_bson(body)
    }
}

/// Builds a [`Document`] field by field, in order.
///
/// ```
/// use nexus::Document;
/// let doc = Document::builder()
///     .field("_id", "user-1")
///     .field("tags", vec!["a", "b"])
///     .build();
/// assert_eq!(doc.id().and_then(|v| v.as_str()), Some("user-1"));
/// ```
#[derive(Debug, Default)]
pub struct DocumentBuilder {
    body: BsonDocument,
}

impl DocumentBuilder {
    /// Appends (or replaces) a field.
    pub fn field(mut self, key: impl Into<String>, value: impl Into<Bson>) -> Self {
        self.body.insert(key, value);
        self
    }

    /// Finishes the document.
    pub fn build(self) -> Document {
        Document::from_bson(self.body)
    }
}

#[cfg(test)]
mod nesting_tests {
    use crate::document::{depth_within, within};
    use bson::{doc, Bson, Document as BsonDocument};

    /// `{"a": {"a": ... {"a": 1}}}` with `levels` documents in all; `arrays` alternates
    /// documents and arrays below the top.
    fn nested(levels: usize, arrays: bool) -> BsonDocument {
        let mut v = Bson::Int32(1);
        for i in 1..levels {
            v = if arrays && i % 2 == 0 {
                Bson::Array(vec![Bson::Null, v])
            } else {
                Bson::Document(doc! {"a": v})
            };
        }
        doc! {"x": 1, "a": v}
    }

    #[test]
    fn the_shallow_check_agrees_with_the_iterative_one_at_every_depth_and_limit() {
        for levels in 1..30 {
            for arrays in [false, true] {
                let d = nested(levels, arrays);
                for max in 0..30 {
                    let iterative = max > 0 && within(Box::new(d.values()), max);
                    assert_eq!(
                        depth_within(&d, max),
                        iterative,
                        "{levels} levels (arrays {arrays}), limit {max}"
                    );
                    assert_eq!(iterative, levels <= max, "{levels} levels, limit {max}");
                }
            }
        }
    }
}
