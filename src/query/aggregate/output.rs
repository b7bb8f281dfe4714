//! Where a pipeline's results go instead of the caller: a final `$out` or `$merge`
//! ([`Output`]), parsed here and performed by the API layer.

use crate::error::{Error, Result};
use bson::{Bson, Document};

/// Where a pipeline's results go instead of the caller.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    /// `$out`: replace the collection with the results.
    Out(String),
    /// `$merge` (matched on `_id`).
    Merge {
        into: String,
        when_matched: WhenMatched,
        when_not_matched: WhenNotMatched,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenMatched {
    Replace,
    KeepExisting,
    Merge,
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenNotMatched {
    Insert,
    Discard,
    Fail,
}

pub(crate) fn parse_output(name: &str, arg: &Bson) -> Result<Output> {
    if name == "$out" {
        return match arg {
            Bson::String(s) if !s.is_empty() => Ok(Output::Out(s.clone())),
            Bson::Document(d) => match (d.get("coll"), d.get("db")) {
                (Some(Bson::String(c)), None) => Ok(Output::Out(c.clone())),
                (_, Some(_)) => Err(Error::unsupported(
                    "$out to another database is not supported by NexusLite",
                )),
                _ => Err(Error::parse("$out: 'coll' must be a string")),
            },
            _ => Err(Error::parse(
                "$out stage requires a string or object argument naming the collection",
            )),
        };
    }
    let (into, d) = match arg {
        Bson::String(s) => (s.clone(), Document::new()),
        Bson::Document(d) => {
            let into = match d.get("into") {
                Some(Bson::String(s)) => s.clone(),
                Some(Bson::Document(_)) => {
                    return Err(Error::unsupported(
                        "$merge into another database is not supported by NexusLite",
                    ))
                }
                _ => return Err(Error::parse("$merge: 'into' must name a collection")),
            };
            (into, d.clone())
        }
        _ => {
            return Err(Error::parse(
                "$merge requires a string or an object argument",
            ))
        }
    };
    let mut when_matched = WhenMatched::Merge;
    let mut when_not_matched = WhenNotMatched::Insert;
    for (k, v) in &d {
        match (k.as_str(), v) {
            ("into", _) => {}
            ("on", Bson::String(s)) if s == "_id" => {}
            ("on", Bson::Array(a)) if a.len() == 1 && a[0] == Bson::String("_id".into()) => {}
            ("on", _) => {
                return Err(Error::unsupported(
                    "$merge: 'on' other than \"_id\" is not supported by NexusLite",
                ))
            }
            ("whenMatched", Bson::String(s)) => {
                when_matched = match s.as_str() {
                    "replace" => WhenMatched::Replace,
                    "keepExisting" => WhenMatched::KeepExisting,
                    "merge" => WhenMatched::Merge,
                    "fail" => WhenMatched::Fail,
                    other => {
                        return Err(Error::parse(format!(
                            "$merge: unknown whenMatched mode '{other}'"
                        )))
                    }
                }
            }
            ("whenMatched", Bson::Array(_)) => {
                return Err(Error::unsupported(
                    "$merge: a pipeline for whenMatched is not supported by NexusLite",
                ))
            }
            ("whenNotMatched", Bson::String(s)) => {
                when_not_matched = match s.as_str() {
                    "insert" => WhenNotMatched::Insert,
                    "discard" => WhenNotMatched::Discard,
                    "fail" => WhenNotMatched::Fail,
                    other => {
                        return Err(Error::parse(format!(
                            "$merge: unknown whenNotMatched mode '{other}'"
                        )))
                    }
                }
            }
            ("let", _) => {
                return Err(Error::unsupported(
                    "$merge: 'let' is not supported by NexusLite",
                ))
            }
            (other, _) => return Err(Error::parse(format!("$merge: unknown argument '{other}'"))),
        }
    }
    Ok(Output::Merge {
        into,
        when_matched,
        when_not_matched,
    })
}
