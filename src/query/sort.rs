//! Sorting: a sort specification (`{a: 1, "b.c": -1}`) compared with MongoDB's cross-type
//! order. A missing field sorts as null; an array sorts by its smallest element ascending and
//! by its largest descending, and an empty array before null, as MongoDB does. The sort is
//! stable.

use super::compare::compare;
use super::path::{split, Source};
use crate::error::{Error, Result};
use bson::{Bson, Document, RawDocument};
use std::cmp::Ordering;

/// A parsed sort specification.
#[derive(Debug, Clone)]
pub(crate) struct SortSpec {
    keys: Vec<(String, bool)>,
    /// Each key's path split into its components (read once per document sorted).
    parts: Vec<Vec<String>>,
}

impl SortSpec {
    /// Parses `{path: 1 | -1, ...}`; each path is checked against the path limits
    /// ([`crate::query::path::check_limits`]) before anything walks it.
    pub(crate) fn parse(spec: &Document) -> Result<Self> {
        let mut keys = Vec::with_capacity(spec.len());
        for (path, dir) in spec {
            crate::query::path::check_limits("sort", path)?;
            let asc = match dir {
                Bson::Int32(1) | Bson::Int64(1) => true,
                Bson::Int32(-1) | Bson::Int64(-1) => false,
                Bson::Double(d) if *d == 1.0 => true,
                Bson::Double(d) if *d == -1.0 => false,
                _ => {
                    return Err(Error::parse(format!(
                        "sort direction for '{path}' must be 1 or -1"
                    )))
                }
            };
            if path.is_empty() || path.starts_with('$') || path.split('.').any(str::is_empty) {
                return Err(Error::parse(format!("invalid sort path '{path}'")));
            }
            keys.push((path.clone(), asc));
        }
        let parts = keys.iter().map(|(p, _)| split(p)).collect();
        Ok(Self { keys, parts })
    }

    /// The components: path and ascending.
    pub(crate) fn keys(&self) -> &[(String, bool)] {
        &self.keys
    }

    /// The specification as a document (`{"a": 1, "b": -1}`), for explain.
    pub(crate) fn pattern(&self) -> Document {
        self.keys
            .iter()
            .map(|(p, asc)| (p.clone(), Bson::Int32(if *asc { 1 } else { -1 })))
            .collect()
    }

    /// The sort key of one document: one value per sort component. `None` stands for an
    /// empty array, which sorts before `null` and missing fields (MongoDB's rule).
    pub(crate) fn key_of(&self, doc: &Document) -> Vec<Option<Bson>> {
        self.key_in(doc).unwrap_or_default()
    }

    /// [`SortSpec::key_of`] read from a stored document's BSON bytes, materializing only
    /// the values the sort paths reach (the same rules: both walk a [`Source`]). `None`
    /// when the bytes are not well-formed along those paths (the caller decodes the
    /// document to report it).
    pub(crate) fn key_of_bytes(&self, body: &[u8]) -> Option<Vec<Option<Bson>>> {
        self.key_in(RawDocument::from_bytes(body).ok()?)
    }

    fn key_in<S: Source + ?Sized>(&self, doc: &S) -> Option<Vec<Option<Bson>>> {
        let mut key = Vec::with_capacity(self.keys.len());
        for ((_, asc), parts) in self.keys.iter().zip(&self.parts) {
            let reached = doc.reach(parts);
            if reached.broken {
                return None;
            }
            let mut flat: Vec<&Bson> = Vec::new();
            let mut empty_array = false;
            for v in reached.values.iter() {
                match v.as_ref() {
                    Bson::Array(items) if items.is_empty() => empty_array = true,
                    Bson::Array(items) => flat.extend(items.iter()),
                    other => flat.push(other),
                }
            }
            let pick = if *asc {
                flat.into_iter().min_by(|a, b| compare(a, b))
            } else {
                flat.into_iter().max_by(|a, b| compare(a, b))
            };
            key.push(match pick {
                Some(v) => Some(v.clone()),
                None if empty_array => None,
                None => Some(Bson::Null),
            });
        }
        Some(key)
    }

    /// Compares two sort keys made by [`SortSpec::key_of`].
    pub(crate) fn compare_keys(&self, a: &[Option<Bson>], b: &[Option<Bson>]) -> Ordering {
        for ((x, y), (_, asc)) in a.iter().zip(b.iter()).zip(&self.keys) {
            let o = match (x, y) {
                (Some(x), Some(y)) => compare(x, y),
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
            };
            if o != Ordering::Equal {
                return if *asc { o } else { o.reverse() };
            }
        }
        Ordering::Equal
    }
}
