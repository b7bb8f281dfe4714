//! The reference reading of Extended JSON: a `serde_json::Value` to BSON exactly as the bson
//! crate's `Bson::try_from(Value)` (and `Document::try_from(Map)` for a top-level object)
//! reads it, without that conversion's recursion, which costs over a kilobyte of stack per
//! level. Documents and arrays are built on a heap stack here; only wrapper objects (those
//! holding a key bson looks for, [`super::direct::WRAPPER_KEYS`]) go to bson, which reads
//! each as one value, and those are first checked to nest no deeper than
//! [`MAX_WRAPPER_NESTING`] (bson recurses into a `$scope`). Values, and the first error met
//! in document order, are the ones bson's conversion gives.

use super::direct::is_wrapper_key;
use bson::{Bson, Document as BsonDocument};
use serde_json::{Map, Value};

/// The deepest nesting of one Extended JSON wrapper object, itself included. The canonical
/// wrappers nest at most 3 (`{"$dbPointer": {"$ref": ..., "$id": {"$oid": ...}}}`); the
/// scope of `{"$code": ..., "$scope": {...}}` (a deprecated BSON type) is a document that
/// bson's conversion reads recursively, so its nesting is limited here.
pub(crate) const MAX_WRAPPER_NESTING: usize = 20;

/// Why a value could not be converted.
#[derive(Debug)]
pub(super) enum Refused {
    /// bson's own conversion refused a wrapper (its message).
    Bson(bson::error::Error),
    /// A wrapper object nests deeper than [`MAX_WRAPPER_NESTING`].
    TooDeep,
}

impl From<bson::error::Error> for Refused {
    fn from(e: bson::error::Error) -> Self {
        Refused::Bson(e)
    }
}

/// `Bson::try_from(value)`.
pub(super) fn to_bson(value: Value) -> Result<Bson, Refused> {
    match step(None, value)? {
        Step::Value(_, v) => Ok(v),
        Step::Open(open) => convert(open),
    }
}

/// `Document::try_from(map)`: the top level's keys are read literally (never a wrapper),
/// each value as [`to_bson`] reads it.
pub(super) fn to_document(map: Map<String, Value>) -> Result<BsonDocument, Refused> {
    let mut doc = BsonDocument::new();
    for (k, v) in map {
        doc.insert(k, to_bson(v)?);
    }
    Ok(doc)
}

/// Whether a wrapper object should go to bson: it holds a key bson's conversion looks for.
fn is_wrapper(map: &Map<String, Value>) -> bool {
    map.keys().any(|k| is_wrapper_key(k))
}

/// Whether `v` nests objects and arrays no deeper than `max` levels (`v` itself is level 1
/// when it is one). Iterative.
pub(super) fn nesting_within(v: &Value, max: usize) -> bool {
    fn children(v: &Value) -> Option<Box<dyn Iterator<Item = &Value> + '_>> {
        match v {
            Value::Object(m) => Some(Box::new(m.values())),
            Value::Array(a) => Some(Box::new(a.iter())),
            _ => None,
        }
    }
    let Some(top) = children(v) else {
        return true;
    };
    max > 0 && crate::document::nests_within(top, max, children)
}

/// A document or array being built: what is built so far, the values still to convert, and
/// the key it goes under in the document holding it.
struct Open {
    built: Built,
    rest: Rest,
    key: Option<String>,
}

enum Built {
    Doc(BsonDocument),
    Arr(Vec<Bson>),
}

enum Rest {
    Map(serde_json::map::IntoIter),
    Arr(std::vec::IntoIter<Value>),
}

impl Rest {
    fn next(&mut self) -> Option<(Option<String>, Value)> {
        match self {
            Rest::Map(m) => m.next().map(|(k, v)| (Some(k), v)),
            Rest::Arr(a) => a.next().map(|v| (None, v)),
        }
    }
}

impl Built {
    fn add(&mut self, key: Option<String>, v: Bson) {
        match self {
            Built::Doc(d) => {
                d.insert(key.unwrap_or_default(), v);
            }
            Built::Arr(items) => items.push(v),
        }
    }

    fn into_bson(self) -> Bson {
        match self {
            Built::Doc(d) => Bson::Document(d),
            Built::Arr(items) => Bson::Array(items),
        }
    }
}

/// What one value becomes: a document or array to fill, or a value converted whole (a
/// scalar, or a wrapper read by bson), with the key it goes under.
enum Step {
    Open(Open),
    Value(Option<String>, Bson),
}

fn step(key: Option<String>, value: Value) -> Result<Step, Refused> {
    Ok(match value {
        Value::Object(map) if is_wrapper(&map) => {
            let map = Value::Object(map);
            if !nesting_within(&map, MAX_WRAPPER_NESTING) {
                return Err(Refused::TooDeep);
            }
            Step::Value(key, Bson::try_from(map)?)
        }
        Value::Object(map) => Step::Open(Open {
            built: Built::Doc(BsonDocument::new()),
            rest: Rest::Map(map.into_iter()),
            key,
        }),
        Value::Array(items) => Step::Open(Open {
            built: Built::Arr(Vec::with_capacity(items.len())),
            rest: Rest::Arr(items.into_iter()),
            key,
        }),
        scalar => Step::Value(key, Bson::try_from(scalar)?),
    })
}

/// Fills `bottom` and everything below it, depth first in document order, on a heap stack.
fn convert(mut bottom: Open) -> Result<Bson, Refused> {
    let mut above: Vec<Open> = Vec::new();
    loop {
        let top = above.last_mut().unwrap_or(&mut bottom);
        let Some((key, value)) = top.rest.next() else {
            match above.pop() {
                None => return Ok(bottom.built.into_bson()),
                Some(done) => {
                    let value = done.built.into_bson();
                    above
                        .last_mut()
                        .unwrap_or(&mut bottom)
                        .built
                        .add(done.key, value);
                    continue;
                }
            }
        };
        match step(key, value)? {
            Step::Open(open) => above.push(open),
            Step::Value(key, v) => above.last_mut().unwrap_or(&mut bottom).built.add(key, v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compared as debug text (NaN is not equal to itself), which shows the types too.
    fn same(text: &str) {
        let v: Value = serde_json::from_str(text).unwrap();
        let want = Bson::try_from(v.clone()).map_err(|e| e.to_string());
        let got = to_bson(v.clone()).map_err(|e| match e {
            Refused::Bson(e) => e.to_string(),
            Refused::TooDeep => "too deep".into(),
        });
        assert_eq!(format!("{got:?}"), format!("{want:?}"), "{text}");
        if let Value::Object(m) = v {
            let want = BsonDocument::try_from(m.clone()).map_err(|e| e.to_string());
            let got = to_document(m).map_err(|e| match e {
                Refused::Bson(e) => e.to_string(),
                Refused::TooDeep => "too deep".into(),
            });
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{text}");
        }
    }

    #[test]
    fn converts_as_the_bson_crate_does() {
        for text in [
            r#"{}"#,
            r#"[]"#,
            r#"1"#,
            r#""s""#,
            r#"null"#,
            r#"{"a": 1, "b": [1, 2.5, "x", null, true, {"c": []}], "d": {"e": {"f": {}}}}"#,
            r#"{"_id": {"$oid": "507f1f77bcf86cd799439011"}, "n": {"$numberLong": "5"}}"#,
            r#"{"$oid": "507f1f77bcf86cd799439011"}"#,
            r#"{"a": [{"$date": {"$numberLong": "-5"}}, {"$minKey": 1}, 9007199254740993]}"#,
            r#"{"a": {"$oid": "xyz"}, "b": {"$numberLong": "q"}}"#,
            r#"{"a": {"x": 1, "$numberInt": "3"}}"#,
            r#"{"a": {"$code": "f()", "$scope": {"x": {"y": [1]}}}}"#,
            r#"{"a": {"$scope": {"x": 1}}}"#,
            r#"{"a": {"$dbPointer": {"$ref": "c", "$id": {"$oid": "507f1f77bcf86cd799439011"}}}}"#,
            r#"[{"a": 1}, [[{"$numberDouble": "NaN"}]], {"$undefined": true}]"#,
            r#"{"$date": "2024-01-02T03:04:05Z", "extra": 1}"#,
            r#"18446744073709551615"#,
            r#"-1.5e300"#,
        ] {
            same(text);
        }
    }

    #[test]
    fn deep_values_convert_without_recursion_and_deep_wrappers_are_refused() {
        let depth = 5_000;
        let mut v = Value::from(1);
        for _ in 0..depth {
            let mut m = Map::new();
            m.insert("a".into(), Value::Array(vec![v]));
            v = Value::Object(m);
        }
        let b = to_bson(v).unwrap();
        let mut levels = 0;
        let mut cur = &b;
        loop {
            match cur {
                Bson::Document(d) => cur = d.get("a").unwrap(),
                Bson::Array(a) => cur = &a[0],
                _ => break,
            }
            levels += 1;
        }
        assert_eq!(levels, 2 * depth);
        // Taken apart iteratively: dropping it whole would recurse.
        crate::document::dispose_value(b);
        let mut scope = serde_json::json!({"x": 1});
        for _ in 0..MAX_WRAPPER_NESTING {
            scope = serde_json::json!({ "s": scope });
        }
        let deep = serde_json::json!({"a": {"$code": "f()", "$scope": scope}});
        assert!(matches!(to_bson(deep), Err(Refused::TooDeep)));
    }
}
