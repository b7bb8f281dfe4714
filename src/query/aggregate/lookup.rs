//! `$lookup`: the equality form (`localField` / `foreignField`, a find through [`Foreign`]
//! per distinct local value, so an index on the foreign field serves it) and the
//! `let` + `pipeline` form (the foreign collection read once, the sub-pipeline run per
//! input document with the variables bound).
//!
//! Within one run of the stage the equality form remembers what each foreign filter
//! found ([`Memo`]): the [`Foreign`] of one aggregate reads one snapshot, so the same
//! filter finds the same documents, and input documents that share a local value (the
//! usual join on a category, an owner, a parent) cost one find between them.

use super::shape::set_path;
use super::{approx_bytes, plain_path, stage_doc, Budget, Foreign, Pipeline};
use crate::document::raw;
use crate::error::{Error, Result};
use crate::query::expr::{is_nullish, walk, Env, Expr, MISSING};
use bson::{Bson, Document};
use std::collections::HashMap;

/// The most bytes (estimated as BSON) of foreign documents [`Memo`] keeps; past it, new
/// filters are run without being remembered.
const MEMO_BYTES: usize = 16 * 1024 * 1024;

/// What each foreign filter (by its BSON bytes: equal bytes, the same filter) found, within
/// one run of a `$lookup` stage.
struct Memo {
    found: HashMap<Vec<u8>, Vec<Document>>,
    bytes: usize,
}

impl Memo {
    fn new() -> Self {
        Self {
            found: HashMap::new(),
            bytes: 0,
        }
    }

    /// The documents of `from` matching `filter`: remembered, or found and remembered
    /// while the memo has room.
    fn find(
        &mut self,
        foreign: &dyn Foreign,
        from: &str,
        filter: &Document,
    ) -> Result<Vec<Document>> {
        let Ok(key) = filter.to_vec() else {
            return foreign.find(from, filter);
        };
        if let Some(docs) = self.found.get(&key) {
            return Ok(docs.clone());
        }
        let docs = foreign.find(from, filter)?;
        let size = key.len() + docs.iter().map(approx_bytes).sum::<usize>();
        if self.bytes.saturating_add(size) <= MEMO_BYTES {
            self.bytes += size;
            self.found.insert(key, docs.clone());
        }
        Ok(docs)
    }
}

/// A parsed `$lookup`.
#[derive(Debug, Clone)]
pub(super) struct Lookup {
    from: String,
    local: Option<Vec<String>>,
    foreign: Option<String>,
    vars: Vec<(String, Expr)>,
    pipeline: Option<Pipeline>,
    as_path: Vec<String>,
}

pub(super) fn parse(arg: &Bson) -> Result<Lookup> {
    let d = stage_doc("$lookup", arg)?;
    let mut l = Lookup {
        from: String::new(),
        local: None,
        foreign: None,
        vars: Vec::new(),
        pipeline: None,
        as_path: Vec::new(),
    };
    let mut has_from = false;
    for (k, v) in d {
        match k.as_str() {
            "from" => match v {
                Bson::String(s) => {
                    l.from = s.clone();
                    has_from = true;
                }
                Bson::Document(_) => {
                    return Err(Error::unsupported(
                        "$lookup: 'from' naming another database is not supported by NexusLite",
                    ))
                }
                _ => return Err(Error::parse("$lookup: 'from' must be a string")),
            },
            "localField" => l.local = Some(plain_path("$lookup", v, "localField")?),
            "foreignField" => {
                l.foreign = Some(plain_path("$lookup", v, "foreignField")?.join("."));
            }
            "as" => l.as_path = plain_path("$lookup", v, "as")?,
            "let" => {
                let Bson::Document(vars) = v else {
                    return Err(Error::parse("$lookup: 'let' must be an object"));
                };
                for (name, e) in vars {
                    l.vars.push((name.clone(), Expr::parse(e)?));
                }
            }
            "pipeline" => l.pipeline = Some(Pipeline::parse_nested(v, "$lookup")?),
            other => {
                return Err(Error::parse(format!(
                    "unknown argument to $lookup: {other}"
                )))
            }
        }
    }
    if !has_from {
        return Err(Error::parse(
            "$lookup: missing 'from' option to $lookup stage",
        ));
    }
    if l.as_path.is_empty() {
        return Err(Error::parse(
            "$lookup: must specify 'as' field for a $lookup",
        ));
    }
    if l.local.is_some() != l.foreign.is_some() {
        return Err(Error::parse(
            "$lookup: 'localField' and 'foreignField' must both be specified",
        ));
    }
    if l.local.is_none() && l.pipeline.is_none() {
        return Err(Error::parse(
            "$lookup: either 'pipeline' or 'localField' and 'foreignField' must be specified",
        ));
    }
    Ok(l)
}

pub(super) fn lookup(
    l: &Lookup,
    docs: Vec<Document>,
    vars: &[(String, Bson)],
    foreign: &dyn Foreign,
) -> Result<Vec<Document>> {
    // The pipeline form reads the foreign collection once.
    let all = match (&l.pipeline, &l.local) {
        (Some(_), None) => Some(foreign.find(&l.from, &Document::new())?),
        _ => None,
    };
    let mut budget = Budget::new();
    let mut memo = Memo::new();
    let mut out = Vec::with_capacity(docs.len());
    for mut d in docs {
        let matched = match (&l.local, &l.foreign) {
            (Some(local), Some(ff)) => {
                // `walk` of the whole document, without copying it into a `Bson` first.
                let v = match local.split_first() {
                    Some((first, rest)) => d.get(first).map_or(MISSING, |x| walk(x, rest)),
                    None => MISSING,
                };
                let filter = foreign_filter(ff, v);
                memo.find(foreign, &l.from, &filter)?
            }
            _ => all.clone().unwrap_or_default(),
        };
        let joined = match &l.pipeline {
            None => matched,
            Some(p) => {
                let root = Bson::Document(d.clone());
                let env = Env::new(&root, vars);
                let mut bound: Vec<(String, Bson)> = vars.to_vec();
                for (name, e) in &l.vars {
                    bound.push((name.clone(), e.eval(&env)?));
                }
                p.run(matched, &bound, foreign)?
            }
        };
        for j in &joined {
            budget.charge(approx_bytes(j))?;
        }
        set_path(
            &mut d,
            &l.as_path,
            Bson::Array(joined.into_iter().map(Bson::Document).collect()),
        );
        out.push(d);
    }
    Ok(out)
}

/// The filter on the foreign collection for a local value `v` (missing, null and an empty
/// array match null; an array matches any of its elements; a regex by equality).
fn foreign_filter(ff: &str, v: Bson) -> Document {
    let values: Vec<Bson> = match v {
        Bson::Array(items) if items.is_empty() => vec![Bson::Null],
        Bson::Array(items) => items,
        other if is_nullish(&other) => vec![Bson::Null],
        other => vec![other],
    };
    // Equality, not regex matching, for regex values.
    let values: Vec<Bson> = values
        .into_iter()
        .map(|v| match v {
            Bson::RegularExpression(_) => bson::bson!({"$eq": v}),
            other => other,
        })
        .collect();
    if values
        .iter()
        .any(|v| matches!(v, Bson::Document(d) if d.contains_key("$eq")))
    {
        let ors: Vec<Bson> = values
            .into_iter()
            .map(|v| {
                let mut c = Document::new();
                c.insert(ff.to_owned(), v);
                Bson::Document(c)
            })
            .collect();
        bson::doc! {"$or": ors}
    } else if values.len() == 1 && !matches!(values[0], Bson::Document(_)) {
        // One value (the common scalar localField): a plain equality, which the planner
        // serves as a point lookup on `_id` or through an index (a document value stays
        // inside `$in`, where its keys are never operators).
        let mut f = Document::new();
        f.insert(
            ff.to_owned(),
            values.into_iter().next().unwrap_or(Bson::Null),
        );
        f
    } else {
        let mut f = Document::new();
        f.insert(ff.to_owned(), bson::doc! {"$in": values});
        f
    }
}

impl Lookup {
    /// Whether the stage can run over BSON bytes ([`BytesJoin`]): the equality form
    /// without a sub-pipeline, `as` a top-level field.
    pub(super) fn over_bytes(&self) -> bool {
        self.local.is_some()
            && self.pipeline.is_none()
            && self.vars.is_empty()
            && self.as_path.len() == 1
            && !self.as_path[0].contains('\0')
    }
}

/// A [`BytesJoin`] stage's memo.
type BytesMemo = HashMap<Vec<u8>, Vec<u8>>;

/// Equality-form `$lookup` stages run over documents as BSON bytes (the input's stored
/// bytes): the local value is the only field decoded, the joined documents are encoded
/// once per distinct foreign filter, and the result is the input's bytes with the `as`
/// field written in (where the document has it, else last), as [`lookup`] builds it.
pub(crate) struct BytesJoin<'a> {
    /// Each stage with its memo: a key (see `apply_one`) to the joined array's bytes.
    stages: Vec<(&'a Lookup, BytesMemo)>,
    foreign: &'a dyn Foreign,
    /// Bytes of the encoded joins held by the memos.
    memo_bytes: usize,
    held: Budget,
    /// The memo key being looked up (kept to spare an allocation per document).
    key: Vec<u8>,
}

impl<'a> BytesJoin<'a> {
    pub(super) fn new(stages: Vec<&'a Lookup>, foreign: &'a dyn Foreign) -> Self {
        Self {
            stages: stages.into_iter().map(|l| (l, HashMap::new())).collect(),
            foreign,
            memo_bytes: 0,
            held: Budget::new(),
            key: Vec::new(),
        }
    }

    /// The stages applied to one document's bytes, the result appended to `out` (documents
    /// one after another, each starting with its length); the results are counted against
    /// [`super::MAX_BUFFERED_BYTES`] (the caller holds them).
    ///
    /// Errors: as [`lookup`]; [`Error::Corrupt`] for bytes that are not a document.
    pub(crate) fn apply(&mut self, doc: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        let last = self.stages.len().saturating_sub(1);
        let mut cur: Option<Vec<u8>> = None;
        for i in 0..self.stages.len() {
            let input = cur.take();
            let input = input.as_deref().unwrap_or(doc);
            if i == last {
                self.apply_one(i, input, out)?;
            } else {
                let mut next = Vec::new();
                self.apply_one(i, input, &mut next)?;
                cur = Some(next);
            }
        }
        if self.stages.is_empty() {
            out.extend_from_slice(doc);
        }
        self.held.charge(out.len() - start)?;
        Ok(())
    }

    fn apply_one(&mut self, i: usize, doc: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let corrupt = || Error::Corrupt("a document's bytes are malformed".into());
        let (l, memo) = &mut self.stages[i];
        let (Some(local), Some(ff)) = (&l.local, &l.foreign) else {
            return Err(Error::Internal(
                "$lookup over bytes without localField".into(),
            ));
        };
        // One walk of the document finds the local field and whether the `as` field is
        // there (when not, the result is the document with the array appended).
        let (mut elem, mut has_as) = (None, false);
        for item in raw::elements(doc).map_err(|_| corrupt())? {
            let (k, e) = item.map_err(|_| corrupt())?;
            if elem.is_none() && k == local[0].as_bytes() {
                elem = Some(e);
            }
            has_as |= k == l.as_path[0].as_bytes();
        }
        // The memo's key: a top-level scalar local value's type and bytes (equal bytes, the
        // same filter), else the filter's bytes; tagged so the two kinds never meet.
        let scalar = match elem {
            Some(e) if local.len() == 1 && !matches!(e.kind, 0x03 | 0x04) => Some(e),
            _ => None,
        };
        let put = |array: &[u8], out: &mut Vec<u8>| {
            if has_as {
                with_field(out, doc, &l.as_path[0], 0x04, array).map_err(|_| corrupt())
            } else {
                appended(out, doc, &l.as_path[0], 0x04, array).ok_or_else(corrupt)
            }
        };
        let mut filter = None;
        let key = match scalar {
            Some(e) => {
                let key = &mut self.key;
                key.clear();
                key.extend_from_slice(&[b'E', e.kind]);
                key.extend_from_slice(e.bytes);
                if let Some(array) = memo.get(&key[..]) {
                    return put(array, out);
                }
                key.clone()
            }
            None => {
                let v = match elem {
                    Some(e) => walk(&raw::to_bson(e).map_err(|_| corrupt())?, &local[1..]),
                    None => MISSING,
                };
                let f = foreign_filter(ff, v);
                let mut k = vec![b'F'];
                k.extend(f.to_vec().map_err(|e| Error::invalid(e.to_string()))?);
                filter = Some(f);
                k
            }
        };
        if !memo.contains_key(&key) {
            let filter = match (filter, scalar) {
                (Some(f), _) => f,
                (None, Some(e)) => foreign_filter(ff, raw::to_bson(e).map_err(|_| corrupt())?),
                (None, None) => return Err(Error::Internal("$lookup: no filter".into())),
            };
            let array = encode_array(self.foreign.find(&l.from, &filter)?)?;
            let size = key.len() + array.len();
            if self.memo_bytes.saturating_add(size) > MEMO_BYTES {
                return put(&array, out);
            }
            self.memo_bytes += size;
            memo.insert(key.clone(), array);
        }
        put(&memo[&key], out)
    }
}

/// The BSON bytes of an array of documents (its length, the elements `"0"`, `"1"`, ...,
/// the terminating zero).
fn encode_array(docs: Vec<Document>) -> Result<Vec<u8>> {
    let mut out = vec![0u8; 4];
    for (i, d) in docs.into_iter().enumerate() {
        out.push(0x03);
        out.extend_from_slice(i.to_string().as_bytes());
        out.push(0);
        out.extend(d.to_vec().map_err(|e| Error::invalid(e.to_string()))?);
    }
    out.push(0);
    let len = i32::try_from(out.len())
        .map_err(|_| Error::invalid("$lookup: a joined array is too large for BSON"))?;
    out[..4].copy_from_slice(&len.to_le_bytes());
    Ok(out)
}

/// Appends to `out` the document `doc` (checked by a walk of its elements) with field
/// `key`, which it does not have, added last with a value of BSON type `kind` whose bytes
/// are `value`.
fn appended(out: &mut Vec<u8>, doc: &[u8], key: &str, kind: u8, value: &[u8]) -> Option<()> {
    let body = doc.get(4..doc.len().checked_sub(1)?)?;
    let len = 4 + body.len() + 1 + key.len() + 1 + value.len() + 1;
    out.reserve(len);
    out.extend_from_slice(&i32::try_from(len).ok()?.to_le_bytes());
    out.extend_from_slice(body);
    out.push(kind);
    out.extend_from_slice(key.as_bytes());
    out.push(0);
    out.extend_from_slice(value);
    out.push(0);
    Some(())
}

/// Appends to `out` the document `doc` with field `key` set to a value of BSON type `kind`
/// whose bytes are `value`: in place of the field when the document has it, else last (the
/// order `bson::Document::insert` gives).
fn with_field(
    out: &mut Vec<u8>,
    doc: &[u8],
    key: &str,
    kind: u8,
    value: &[u8],
) -> std::result::Result<(), raw::Malformed> {
    let start = out.len();
    out.reserve(doc.len() + key.len() + value.len() + 2);
    out.extend_from_slice(&[0; 4]);
    let put = |out: &mut Vec<u8>, kind: u8, k: &[u8], v: &[u8]| {
        out.push(kind);
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
    };
    let mut replaced = false;
    for item in raw::elements(doc)? {
        let (k, e) = item?;
        if k == key.as_bytes() {
            put(out, kind, k, value);
            replaced = true;
        } else {
            put(out, e.kind, k, e.bytes);
        }
    }
    if !replaced {
        put(out, kind, key.as_bytes(), value);
    }
    out.push(0);
    let len = i32::try_from(out.len() - start).map_err(|_| raw::Malformed)?;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}
