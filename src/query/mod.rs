//! The MongoDB query and update language (first version): filters ([`filter`]), updates
//! ([`update`]), projections ([`projection`]) and sorting ([`sort`]) over `bson` documents,
//! with MongoDB's value ordering ([`compare`]) and path semantics ([`path`]). The layer
//! above (`db`) compiles a [`FindOptions`] into a [`Plan`] and runs it over a storage snapshot.

pub(crate) mod aggregate;
pub(crate) mod compare;
pub(crate) mod expr;
pub(crate) mod filter;
pub(crate) mod path;
pub(crate) mod projection;
pub(crate) mod sort;
pub(crate) mod update;

pub use filter::MAX_FILTER_DEPTH;
pub use path::{MAX_PATH_BYTES, MAX_PATH_COMPONENTS};

use crate::document::{check_nesting, check_value_nesting, MAX_QUERY_NESTING};
use crate::error::{Error, Result};
use crate::options::OptionReader;
use bson::{Bson, Document};

/// Options of `find`: sort, projection, skip, limit, hint.
///
/// ```
/// use nexus::FindOptions;
/// let opts = FindOptions::from_json(r#"{"sort": {"age": -1}, "limit": 2}"#).unwrap();
/// assert_eq!(opts.limit, 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct FindOptions {
    /// Sort specification, e.g. `{"age": -1, "name": 1}`.
    pub sort: Option<Document>,
    /// Projection, e.g. `{"name": 1}` or `{"secret": 0}`.
    pub projection: Option<Document>,
    /// Matches to skip before the first returned.
    pub skip: u64,
    /// At most this many documents (0: no limit).
    pub limit: u64,
    /// An index to use: its name, its key pattern, or `{"$natural": 1}` for the collection
    /// scan.
    pub hint: Option<Bson>,
}

impl FindOptions {
    /// Parses the JSON options object of `nexus_find` (`NULL`/empty: defaults).
    pub fn from_json(text: &str) -> Result<Self> {
        let mut r = OptionReader::parse(Some(text), "find options")?;
        let opts = Self::read(&mut r)?;
        r.finish()?;
        Ok(opts)
    }

    /// Drops the options without recursion: their documents may nest any depth when a
    /// query refuses them ([`crate::document::dispose`]).
    pub(crate) fn dispose(self) {
        let Self {
            sort,
            projection,
            hint,
            ..
        } = self;
        sort.into_iter()
            .chain(projection)
            .for_each(crate::document::dispose);
        hint.into_iter().for_each(crate::document::dispose_value);
    }

    pub(crate) fn read(r: &mut OptionReader) -> Result<Self> {
        let limit = r.i64("limit")?.unwrap_or(0);
        let skip = r.i64("skip")?.unwrap_or(0);
        if skip < 0 {
            return Err(Error::invalid("find options: 'skip' must not be negative"));
        }
        let hint = r
            .take("hint")
            .map(crate::document::json::json_to_bson)
            .transpose()?;
        Ok(Self {
            sort: r.document("sort")?,
            projection: r.document("projection")?,
            skip: skip.unsigned_abs(), // not negative (checked above)
            limit: limit.unsigned_abs(),
            hint,
        })
    }
}

/// A compiled query: everything checked, ready to run over a snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub filter: filter::Filter,
    pub sort: Option<sort::SortSpec>,
    pub projection: Option<projection::Projection>,
    pub skip: u64,
    pub limit: Option<u64>,
    /// The index the caller asked for (checked against the collection's when planning).
    pub hint: Option<Bson>,
    /// The projection as given (the planner checks whether an index covers it).
    pub projection_doc: Option<Document>,
}

impl Plan {
    pub(crate) fn compile(filter: &Document, opts: &FindOptions) -> Result<Self> {
        // The option documents' nesting first: formatting and copying them recurse.
        for (doc, what) in [(&opts.sort, "sort"), (&opts.projection, "projection")] {
            if let Some(d) = doc {
                check_nesting(d, MAX_QUERY_NESTING, what)?;
            }
        }
        if let Some(h) = &opts.hint {
            check_value_nesting(h, MAX_QUERY_NESTING, "hint")?;
            if !matches!(h, Bson::String(_) | Bson::Document(_)) {
                return Err(Error::invalid(format!(
                    "hint must be an index name or a key pattern, not {}",
                    crate::document::json::bson_to_json_text(h)
                )));
            }
        }
        Ok(Self {
            filter: filter::Filter::parse(filter)?,
            sort: opts.sort.as_ref().map(sort::SortSpec::parse).transpose()?,
            projection: match &opts.projection {
                Some(p) => projection::Projection::parse(p)?,
                None => None,
            },
            skip: opts.skip,
            limit: (opts.limit > 0).then_some(opts.limit),
            hint: opts.hint.clone(),
            projection_doc: opts.projection.clone(),
        })
    }
}
