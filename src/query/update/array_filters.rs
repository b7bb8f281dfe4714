//! `arrayFilters`: the conditions that the filtered positional operator `$[<identifier>]`
//! of an update path applies to array elements. [`ArrayFilters::parse`] reads the option's
//! documents (each names exactly one identifier, a lowercase letter then letters and
//! digits, as its top-level field: `{"x": 5}`, `{"x.a": {"$gt": 1}}`, `{"$or": [{"x.a": 1},
//! {"x.b": 2}]}`) with MongoDB's messages; [`ArrayFilters::check_used`] ties them to the
//! update's paths (every `$[id]` has its filter, every filter is used).
//! [`ArrayFilters::element_matches`] tests one element: the filter runs over the document
//! `{<identifier>: element}`, so the query language's own semantics (array traversal, `null`
//! for missing fields) apply to the element as they would to a field. The layer beneath is
//! [`crate::query::filter`].

use crate::error::{Error, Result};
use crate::query::filter::Filter;
use bson::{Bson, Document};

/// One array filter: its identifier and the parsed condition.
#[derive(Debug, Clone)]
struct ArrayFilter {
    id: String,
    filter: Filter,
}

/// The parsed `arrayFilters` of one update (empty when the option is absent).
#[derive(Debug, Clone, Default)]
pub(crate) struct ArrayFilters {
    filters: Vec<ArrayFilter>,
}

/// Whether `s` is a valid `$[<identifier>]` identifier: a lowercase ASCII letter followed by
/// ASCII letters and digits.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

fn parse_error(why: String) -> Error {
    Error::parse(format!("Error parsing array filter :: caused by :: {why}"))
}

/// Adds the top-level field names of a filter document to `out` (operators `$and`, `$or`
/// and `$nor` are looked through; other operators have no field name).
fn top_level_names(d: &Document, out: &mut Vec<String>, depth: usize) -> Result<()> {
    if depth > crate::query::filter::MAX_FILTER_DEPTH {
        return Err(Error::invalid(
            "an array filter nests $and/$or/$nor too deeply",
        ));
    }
    for (k, v) in d {
        match k.as_str() {
            "$and" | "$or" | "$nor" => {
                let Bson::Array(clauses) = v else {
                    return Err(parse_error(format!("{k} must be an array")));
                };
                for c in clauses {
                    let Bson::Document(c) = c else {
                        return Err(parse_error(format!(
                            "{k} argument's entries must be objects"
                        )));
                    };
                    top_level_names(c, out, depth + 1)?;
                }
            }
            op if op.starts_with('$') => {
                return Err(Error::parse(
                    "Cannot use an expression without a top-level field name in arrayFilters",
                ))
            }
            path => {
                let name = path.split('.').next().unwrap_or(path).to_owned();
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
    }
    Ok(())
}

impl ArrayFilters {
    /// No filters (an update without the option).
    pub(crate) fn none() -> Self {
        Self::default()
    }

    /// Parses the documents of the `arrayFilters` option.
    ///
    /// Errors ([`Error::Parse`], MongoDB's wording): a filter without a field name, one whose
    /// fields name several identifiers, an identifier that is not a lowercase letter followed
    /// by letters and digits, two filters for one identifier, and any error of the filter
    /// itself.
    pub(crate) fn parse(docs: &[Document]) -> Result<Self> {
        let mut filters: Vec<ArrayFilter> = Vec::with_capacity(docs.len());
        for d in docs {
            crate::document::check_nesting(
                d,
                crate::document::MAX_QUERY_NESTING,
                "an array filter",
            )?;
            let mut names = Vec::new();
            top_level_names(d, &mut names, 0)?;
            let id =
                match names.as_slice() {
                    [] => return Err(Error::parse(
                        "Cannot use an expression without a top-level field name in arrayFilters",
                    )),
                    [one] => one.clone(),
                    [a, b, ..] => {
                        return Err(parse_error(format!(
                            "Expected a single top-level field name, found '{a}' and '{b}'"
                        )))
                    }
                };
            if !is_identifier(&id) {
                return Err(parse_error(format!(
                    "The top-level field name must be an alphanumeric string beginning with a lowercase letter, found '{id}'"
                )));
            }
            if filters.iter().any(|f| f.id == id) {
                return Err(Error::parse(format!(
                    "Found multiple array filters with the same top-level field name {id}"
                )));
            }
            let filter = Filter::parse(d)?;
            filters.push(ArrayFilter { id, filter });
        }
        Ok(Self { filters })
    }

    /// Whether there is a filter for `id`.
    pub(crate) fn has(&self, id: &str) -> bool {
        self.filters.iter().any(|f| f.id == id)
    }

    /// Checks that every filter's identifier appears in some path of the update (`paths`);
    /// `update` is the update document, for the message.
    pub(crate) fn check_used(&self, paths: &[&str], update: &Document) -> Result<()> {
        for f in &self.filters {
            let token = format!("$[{}]", f.id);
            if !paths.iter().any(|p| p.split('.').any(|part| part == token)) {
                return Err(Error::parse(format!(
                    "The array filter for identifier '{}' was not used in the update {}",
                    f.id,
                    crate::document::json::bson_to_json_text(&Bson::Document(update.clone()))
                )));
            }
        }
        Ok(())
    }

    /// Whether the array element `e` satisfies the filter of `id` (`false` when there is no
    /// such filter; parsing made sure there is one for every identifier used).
    pub(crate) fn element_matches(&self, id: &str, e: &Bson) -> bool {
        let Some(f) = self.filters.iter().find(|f| f.id == id) else {
            return false;
        };
        let mut wrapper = Document::new();
        wrapper.insert(id, e.clone());
        f.filter.matches(&wrapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn identifiers_are_a_lowercase_letter_then_alphanumerics() {
        for ok in ["x", "elem", "a1", "iB2"] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in ["", "X", "1a", "a_b", "a-b", "é"] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn each_filter_names_one_identifier() {
        let f = ArrayFilters::parse(&[
            doc! {"x.a": {"$gt": 1}, "x.b": 2},
            doc! {"$or": [{"y": 1}, {"y": 2}]},
        ])
        .unwrap();
        assert!(f.has("x") && f.has("y") && !f.has("z"));
        assert!(f.element_matches("x", &Bson::Document(doc! {"a": 2, "b": 2})));
        assert!(!f.element_matches("x", &Bson::Document(doc! {"a": 0, "b": 2})));
        assert!(f.element_matches("y", &Bson::Int32(2)));
        let msg = |docs: &[Document]| ArrayFilters::parse(docs).unwrap_err().to_string();
        assert!(msg(&[doc! {"x": 1, "y": 2}]).contains("Expected a single top-level field name"));
        assert!(msg(&[doc! {"X": 1}]).contains("beginning with a lowercase letter"));
        assert!(msg(&[doc! {}]).contains("without a top-level field name"));
        assert!(msg(&[doc! {"$expr": 1}]).contains("without a top-level field name"));
        assert!(msg(&[doc! {"x": 1}, doc! {"x.a": 2}]).contains("multiple array filters"));
    }
}
