//! CSV cells and BSON values: [`infer`] turns a cell into a typed value (integers, floats,
//! booleans, empty -> null, ISO-8601 dates, Extended JSON), [`format_cell`] writes a value so
//! that inference reads it back as the same value, and the dotted-path helpers that map
//! nested documents to columns ([`flatten`]) and back ([`set_dotted`]).

use super::options::ExtJsonMode;
use crate::error::{Error, Result};
use bson::{Bson, Document as BsonDocument};

/// The typed value of a CSV cell under type inference: empty -> null, `true`/`false`,
/// integers (Int32, else Int64), floats, ISO-8601 dates, and cells holding JSON: a quoted
/// JSON string, an object or array of Extended JSON (`{"$numberDecimal": "1.5"}`).
pub(crate) fn infer(cell: &str) -> Bson {
    if cell.is_empty() {
        return Bson::Null;
    }
    match cell {
        "true" => return Bson::Boolean(true),
        "false" => return Bson::Boolean(false),
        _ => {}
    }
    let b = cell.as_bytes();
    let numeric_start = b[0].is_ascii_digit() || ((b[0] == b'-' || b[0] == b'+') && b.len() > 1);
    if numeric_start {
        if let Ok(i) = cell.parse::<i64>() {
            return match i32::try_from(i) {
                Ok(small) => Bson::Int32(small),
                Err(_) => Bson::Int64(i),
            };
        }
        if looks_float(b) {
            if let Ok(f) = cell.parse::<f64>() {
                if f.is_finite() {
                    return Bson::Double(f);
                }
            }
        }
        if let Some(d) = parse_date(cell) {
            return Bson::DateTime(d);
        }
    }
    if b[0] == b'"' && b.len() > 1 && b[b.len() - 1] == b'"' {
        if let Ok(s) = serde_json::from_str::<String>(cell) {
            return Bson::String(s);
        }
    }
    if (b[0] == b'{' || b[0] == b'[') && b.len() > 1 {
        // (Nesting is limited before parsing, and converted without recursion.)
        if let Some(x) = crate::document::json::json_text_to_bson(cell) {
            return x;
        }
    }
    Bson::String(cell.to_owned())
}

/// Digits with an optional sign, one optional fraction and an optional exponent: what a
/// float cell looks like (so "NaN", "inf" and "1_000" stay strings).
fn looks_float(b: &[u8]) -> bool {
    let mut i = usize::from(b[0] == b'-' || b[0] == b'+');
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    let mut n = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        n += digits(&mut i);
    }
    if n == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// ISO-8601 / RFC 3339 date-times (`2024-01-02T03:04:05Z`, with fraction or offset) and
/// plain dates (`2024-01-02`, midnight UTC).
fn parse_date(cell: &str) -> Option<bson::DateTime> {
    let b = cell.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    if b.len() == 10 {
        return bson::DateTime::parse_rfc3339_str(format!("{cell}T00:00:00Z")).ok();
    }
    if b[10] != b'T' && b[10] != b't' && b[10] != b' ' {
        return None;
    }
    let normal = if b[10] == b' ' {
        format!("{}T{}", &cell[..10], &cell[11..])
    } else {
        cell.to_owned()
    };
    bson::DateTime::parse_rfc3339_str(normal).ok()
}

/// A value as CSV cell text that [`infer`] reads back as the same value.
pub(crate) fn format_cell(v: &Bson, mode: ExtJsonMode) -> String {
    match v {
        Bson::Null => String::new(),
        // A string inference would read as something else ("", "42", "true", a date) is
        // written as a JSON string literal, which inference reads back as that string.
        Bson::String(s) => match infer(s) {
            Bson::String(same) if same == *s => same,
            _ => serde_json::Value::String(s.clone()).to_string(),
        },
        Bson::Boolean(b) => b.to_string(),
        Bson::Int32(i) => i.to_string(),
        Bson::Int64(i) if mode == ExtJsonMode::Canonical && i32::try_from(*i).is_ok() => {
            ext_json(v, mode)
        }
        Bson::Int64(i) => i.to_string(),
        Bson::Double(f) if f.is_finite() => {
            let s = format!("{f:?}");
            if looks_float(s.as_bytes()) && s.parse::<i64>().is_err() {
                s
            } else {
                format!("{f:.1}")
            }
        }
        Bson::DateTime(d) => match d.try_to_rfc3339_string() {
            Ok(s) if s.len() >= 20 && parse_date(&s) == Some(*d) => s,
            _ => ext_json(v, mode),
        },
        _ => ext_json(v, mode),
    }
}

/// A value as Extended JSON text in the given mode.
pub(crate) fn ext_json(v: &Bson, mode: ExtJsonMode) -> String {
    super::ndjson::value_to_ext_json(v.clone(), mode).to_string()
}

/// Calls `f(path, value)` for every leaf of `doc` in field order: nested non-empty
/// documents become dotted paths; arrays, empty documents and scalars are leaves.
pub(crate) fn flatten<'a>(
    doc: &'a BsonDocument,
    prefix: &str,
    f: &mut impl FnMut(String, &'a Bson),
) {
    for (k, v) in doc {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Bson::Document(d) if !d.is_empty() => flatten(d, &path, f),
            other => f(path, other),
        }
    }
}

/// The value at a dotted path (through nested documents only).
pub(crate) fn get_dotted<'a>(doc: &'a BsonDocument, path: &str) -> Option<&'a Bson> {
    let mut cur = doc;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        let v = cur.get(p)?;
        if parts.peek().is_none() {
            return Some(v);
        }
        match v {
            Bson::Document(d) => cur = d,
            _ => return None,
        }
    }
    None
}

/// Sets `value` at a dotted path, creating nested documents; fails when a prefix already
/// holds a non-document (e.g. columns `a` and `a.b`).
pub(crate) fn set_dotted(doc: &mut BsonDocument, path: &str, value: Bson) -> Result<()> {
    match path.split_once('.') {
        None => {
            doc.insert(path, value);
            Ok(())
        }
        Some((head, rest)) => {
            let entry = doc
                .entry(head.to_owned())
                .or_insert_with(|| Bson::Document(BsonDocument::new()));
            match entry {
                Bson::Document(d) => set_dotted(d, rest, value),
                _ => Err(Error::parse(format!(
                    "column '{path}' nests under '{head}', which already holds a value"
                ))),
            }
        }
    }
}

/// Checks a header: no empty names, no duplicates, no column that is both a value and a
/// parent (`a` and `a.b`).
pub(crate) fn check_header(names: &[String]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for n in names {
        // Before `set_dotted` recurses once per component of the name.
        crate::query::path::check_limits("CSV header", n)?;
        if n.is_empty() || n.split('.').any(str::is_empty) {
            return Err(Error::parse(format!(
                "CSV header has an empty column name in {names:?}"
            )));
        }
        if !seen.insert(n.as_str()) {
            return Err(Error::parse(format!("CSV header names column '{n}' twice")));
        }
    }
    for n in names {
        let mut prefix = String::new();
        for part in n.split('.') {
            if !prefix.is_empty() && seen.contains(prefix.as_str()) {
                return Err(Error::parse(format!(
                    "CSV header has both '{prefix}' and '{n}': a column cannot be a value and a parent"
                )));
            }
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(part);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference() {
        assert_eq!(infer(""), Bson::Null);
        assert_eq!(infer("42"), Bson::Int32(42));
        assert_eq!(infer("-9007199254740993"), Bson::Int64(-9007199254740993));
        assert_eq!(infer("1.5"), Bson::Double(1.5));
        assert_eq!(infer("1e3"), Bson::Double(1000.0));
        assert_eq!(infer("true"), Bson::Boolean(true));
        assert_eq!(infer("NaN"), Bson::String("NaN".into()));
        assert_eq!(infer("12abc"), Bson::String("12abc".into()));
        assert!(matches!(infer("2024-01-02T03:04:05Z"), Bson::DateTime(_)));
        assert!(matches!(
            infer("2024-01-02T03:04:05.123+02:00"),
            Bson::DateTime(_)
        ));
        assert!(matches!(infer("2024-01-02"), Bson::DateTime(_)));
        assert_eq!(infer("2024-13-45"), Bson::String("2024-13-45".into()));
        assert!(matches!(
            infer("{\"$numberDecimal\":\"1.10\"}"),
            Bson::Decimal128(_)
        ));
        assert_eq!(
            infer("[1,\"a\"]"),
            Bson::Array(vec![Bson::Int32(1), Bson::String("a".into())])
        );
        assert_eq!(infer("[not json"), Bson::String("[not json".into()));
    }

    #[test]
    fn cells_read_back_as_the_same_value() {
        let values = [
            Bson::Int32(-7),
            Bson::Int64(1 << 40),
            Bson::Double(1.0),
            Bson::Double(0.1),
            Bson::Double(1e300),
            Bson::Double(-2.5e-10),
            Bson::Double(f64::NAN),
            Bson::Boolean(false),
            Bson::Null,
            Bson::DateTime(bson::DateTime::from_millis(1_700_000_000_123)),
            Bson::DateTime(bson::DateTime::from_millis(-1)),
            Bson::DateTime(bson::DateTime::from_millis(300_000_000_000_000)),
            Bson::Decimal128("12.340".parse().unwrap()),
            Bson::Array(vec![Bson::Int32(1), Bson::Document(bson::doc! {"a": "b"})]),
            Bson::Document(BsonDocument::new()),
            Bson::ObjectId(bson::oid::ObjectId::new()),
            Bson::String("".into()),
            Bson::String("42".into()),
            Bson::String("true".into()),
            Bson::String("\"quoted\"".into()),
            Bson::String("2024-01-02".into()),
            Bson::String("plain, with comma".into()),
        ];
        for v in values {
            for mode in [ExtJsonMode::Relaxed, ExtJsonMode::Canonical] {
                let cell = format_cell(&v, mode);
                let back = infer(&cell);
                let same = match (&v, &back) {
                    (Bson::Double(a), Bson::Double(b)) if a.is_nan() => b.is_nan(),
                    _ => back == v,
                };
                assert!(same, "{v:?} -> {cell:?} -> {back:?}");
            }
        }
        assert_eq!(
            infer(&format_cell(&Bson::Int64(5), ExtJsonMode::Canonical)),
            Bson::Int64(5)
        );
    }

    #[test]
    fn dotted_paths() {
        let mut d = BsonDocument::new();
        set_dotted(&mut d, "a.b.c", Bson::Int32(1)).unwrap();
        set_dotted(&mut d, "a.d", Bson::Int32(2)).unwrap();
        assert_eq!(d, bson::doc! {"a": {"b": {"c": 1}, "d": 2}});
        assert!(set_dotted(&mut d, "a.d.e", Bson::Int32(3)).is_err());
        let mut cols = Vec::new();
        flatten(&d, "", &mut |p, _| cols.push(p));
        assert_eq!(cols, ["a.b.c", "a.d"]);
        assert_eq!(get_dotted(&d, "a.b.c"), Some(&Bson::Int32(1)));
        assert!(check_header(&["a".into(), "a.b".into()]).is_err());
        assert!(check_header(&["a".into(), "a".into()]).is_err());
        assert!(check_header(&["a.b".into(), "a.c".into(), "b".into()]).is_ok());
    }
}
