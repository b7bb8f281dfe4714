//! Dotted paths (`a.b.c`, `items.0.sku`) and how they reach into documents and arrays the way
//! MongoDB's query engine does: a component that meets an array applies to each document
//! element (implicit traversal), and a numeric component may also index the array.
//!
//! Two sources can be walked: an owned [`bson::Document`] (values are borrowed) and a stored
//! document's bytes as a [`bson::RawDocument`] (only the values a path reaches are
//! materialized, never the whole document). Both produce a [`Reached`]; the filter layer
//! above evaluates conditions over it without knowing which source it came from.
//!
//! Every dotted path that comes from the user (filter keys, update paths, projection and
//! sort paths, index keys, `distinct`'s field, CSV columns) passes [`check_limits`] when it
//! is parsed, before anything walks it: at most [`MAX_PATH_COMPONENTS`] components (one per
//! level a document may nest) and [`MAX_PATH_BYTES`] bytes. The walks here and in the
//! update, projection and index code recurse once per component, so that check is what
//! bounds their stack.

use crate::document::raw::{self, Elem};
use crate::document::MAX_NESTING;
use crate::error::{Error, Result};
use bson::{Bson, Document, RawDocument};
use std::borrow::Cow;

/// The most components a dotted path may have: one per level a document may nest
/// ([`MAX_NESTING`]), since a longer path could never reach a value.
pub const MAX_PATH_COMPONENTS: usize = MAX_NESTING;

/// The longest dotted path, in bytes (16 KiB: a hundred components of over 160 bytes each).
pub const MAX_PATH_BYTES: usize = 16 * 1024;

/// How much of a refused path a message quotes.
const QUOTED: usize = 40;

/// Refuses a dotted path from user input (named by `what`, e.g. `"$set"`, `"filter"`) with
/// more than [`MAX_PATH_COMPONENTS`] components or more than [`MAX_PATH_BYTES`] bytes, as
/// [`Error::InvalidArgument`] naming the limit. Linear in the path, no recursion.
pub(crate) fn check_limits(what: &str, path: &str) -> Result<()> {
    let components = path.bytes().filter(|&b| b == b'.').count() + 1;
    if components > MAX_PATH_COMPONENTS {
        return Err(Error::invalid(format!(
            "{what}: the path '{}' has {components} components; a path may have at most \
             {MAX_PATH_COMPONENTS} (documents nest at most {MAX_NESTING} levels)",
            quoted(path)
        )));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(Error::invalid(format!(
            "{what}: the path '{}' is {} bytes long; a path may be at most {MAX_PATH_BYTES} bytes",
            quoted(path),
            path.len()
        )));
    }
    Ok(())
}

/// The start of a long path, for a message.
fn quoted(path: &str) -> Cow<'_, str> {
    if path.len() <= QUOTED {
        return Cow::Borrowed(path);
    }
    let mut end = QUOTED;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}...", &path[..end]))
}

/// A list of values that holds one value without allocating (the common case).
#[derive(Debug, Default)]
pub(crate) enum Values<'a> {
    /// No value.
    #[default]
    Empty,
    /// Exactly one value.
    One(Cow<'a, Bson>),
    /// Several values.
    Many(Vec<Cow<'a, Bson>>),
}

impl<'a> Values<'a> {
    /// Adds a value.
    pub(crate) fn push(&mut self, v: Cow<'a, Bson>) {
        *self = match std::mem::take(self) {
            Values::Empty => Values::One(v),
            Values::One(first) => Values::Many(vec![first, v]),
            Values::Many(mut all) => {
                all.push(v);
                Values::Many(all)
            }
        };
    }

    /// The values as a slice.
    pub(crate) fn as_slice(&self) -> &[Cow<'a, Bson>] {
        match self {
            Values::Empty => &[],
            Values::One(v) => std::slice::from_ref(v),
            Values::Many(all) => all,
        }
    }

    /// Iterates the values.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Cow<'a, Bson>> {
        self.as_slice().iter()
    }

    /// Whether there is no value.
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Values::Empty)
    }
}

/// What one path reaches in one document.
#[derive(Debug, Default)]
pub(crate) struct Reached<'a> {
    /// Every value found, arrays traversed implicitly.
    pub values: Values<'a>,
    /// The path was missing somewhere: the top-level field is absent, an intermediate value
    /// is not a document, or a document element of a traversed array lacks the field. This
    /// is what lets `{a: null}` match a missing field.
    pub missing: bool,
    /// The stored bytes could not be read (raw source only); the caller decodes the
    /// document fully to report the corruption.
    pub broken: bool,
}

impl<'a> Reached<'a> {
    /// One value, as when a condition is applied to a single array element.
    pub(crate) fn single(v: &'a Bson) -> Self {
        Self {
            values: Values::One(Cow::Borrowed(v)),
            missing: false,
            broken: false,
        }
    }
}

/// Something a filter can be evaluated against.
pub(crate) trait Source {
    /// Every value `parts` (a split dotted path) reaches.
    fn reach(&self, parts: &[String]) -> Reached<'_>;
}

impl Source for Document {
    fn reach(&self, parts: &[String]) -> Reached<'_> {
        let mut out = Reached::default();
        match self.get(&parts[0]) {
            Some(v) => walk(v, &parts[1..], &mut out),
            None => out.missing = true,
        }
        out
    }
}

fn walk<'a>(v: &'a Bson, rest: &[String], out: &mut Reached<'a>) {
    let Some((head, tail)) = rest.split_first() else {
        out.values.push(Cow::Borrowed(v));
        return;
    };
    match v {
        Bson::Document(d) => match d.get(head) {
            Some(next) => walk(next, tail, out),
            None => out.missing = true,
        },
        Bson::Array(items) => {
            if let Some(item) = index_of(head).and_then(|i| items.get(i)) {
                walk(item, tail, out);
            }
            for item in items {
                if let Bson::Document(d) = item {
                    match d.get(head) {
                        Some(next) => walk(next, tail, out),
                        None => out.missing = true,
                    }
                }
            }
        }
        _ => out.missing = true,
    }
}

/// A path component read as an array index (`"0"`, `"12"`; not `"-1"` or `"+1"`).
pub(crate) fn index_of(part: &str) -> Option<usize> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

impl Source for RawDocument {
    fn reach(&self, parts: &[String]) -> Reached<'_> {
        let mut out = Reached::default();
        match raw::find(self.as_bytes(), &parts[0]) {
            Ok(Some(e)) => walk_raw(e, &parts[1..], &mut out),
            Ok(None) => out.missing = true,
            Err(_) => out.broken = true,
        }
        out
    }
}

const DOCUMENT: u8 = 0x03;
const ARRAY: u8 = 0x04;

fn walk_raw(e: Elem<'_>, rest: &[String], out: &mut Reached<'_>) {
    let Some((head, tail)) = rest.split_first() else {
        match raw::to_bson(e) {
            Ok(b) => out.values.push(Cow::Owned(b)),
            Err(_) => out.broken = true,
        }
        return;
    };
    match e.kind {
        DOCUMENT => match raw::find(e.bytes, head) {
            Ok(Some(next)) => walk_raw(next, tail, out),
            Ok(None) => out.missing = true,
            Err(_) => out.broken = true,
        },
        ARRAY => {
            let items = match raw::elements(e.bytes) {
                Ok(items) => items,
                Err(_) => {
                    out.broken = true;
                    return;
                }
            };
            let index = index_of(head);
            for (i, item) in items.enumerate() {
                let Ok((_, item)) = item else {
                    out.broken = true;
                    return;
                };
                if index == Some(i) {
                    walk_raw(item, tail, out);
                }
                if item.kind == DOCUMENT {
                    match raw::find(item.bytes, head) {
                        Ok(Some(next)) => walk_raw(next, tail, out),
                        Ok(None) => out.missing = true,
                        Err(_) => out.broken = true,
                    }
                }
            }
        }
        _ => out.missing = true,
    }
}

/// Splits a dotted path into its components.
pub(crate) fn split(path: &str) -> Vec<String> {
    path.split('.').map(str::to_owned).collect()
}

/// Every value `path` reaches in `doc` (borrowed), arrays traversed implicitly.
pub(crate) fn lookup<'a>(doc: &'a Document, path: &str, out: &mut Vec<&'a Bson>) {
    let parts = split(path);
    let r = doc.reach(&parts);
    for v in r.values.iter() {
        if let Cow::Borrowed(b) = v {
            out.push(*b);
        }
    }
}

/// The single value at `path` following documents only (and numeric array indexes), as used
/// by updates and projections. `None` when missing.
pub(crate) fn get_exact<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut cur = doc.get(parts.next()?)?;
    for p in parts {
        cur = match cur {
            Bson::Document(d) => d.get(p)?,
            Bson::Array(a) => a.get(index_of(p)?)?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn paths_beyond_the_limits_are_refused_with_the_limit_named() {
        let longest = vec!["a"; MAX_PATH_COMPONENTS].join(".");
        assert!(check_limits("$set", &longest).is_ok());
        let e = check_limits("$set", &format!("{longest}.a")).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        let m = e.to_string();
        assert!(
            m.contains("$set") && m.contains("101 components") && m.contains("100"),
            "{m}"
        );
        assert!(
            m.len() < 300,
            "the message quotes only the start of the path: {m}"
        );
        assert!(check_limits("f", &"é".repeat(MAX_PATH_BYTES / 2)).is_ok());
        let e = check_limits("f", &"é".repeat(MAX_PATH_BYTES / 2 + 1)).unwrap_err();
        assert!(e.to_string().contains("16384 bytes"), "{e}");
    }

    #[test]
    fn owned_and_raw_sources_reach_the_same_values() {
        let d = doc! {"a": [{"b": 1}, {"c": 2}, {"b": [3, 4]}], "x": {"y": "z"}, "n": 5};
        let raw = bson::RawDocumentBuf::from_bytes(d.to_vec().unwrap()).unwrap();
        for path in ["a.b", "a.0.b", "a.2.b", "x.y", "n.q", "missing", "a.1", "a"] {
            let parts = split(path);
            let o = d.reach(&parts);
            let r = raw.reach(&parts);
            let ov: Vec<Bson> = o.values.iter().map(|c| c.clone().into_owned()).collect();
            let rv: Vec<Bson> = r.values.iter().map(|c| c.clone().into_owned()).collect();
            assert_eq!(ov, rv, "{path}");
            assert_eq!(o.missing, r.missing, "{path}");
            assert!(!r.broken);
        }
        assert!(d.reach(&split("a.b")).missing);
        assert!(d.reach(&split("n.q")).missing);
    }
}
