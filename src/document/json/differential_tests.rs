//! Differential tests: the direct JSON-to-BSON reader against the `serde_json::Value` path it
//! replaces (`serde_json` parse, then bson's `TryFrom<serde_json::Value>`). For every input
//! both give the same document, compared field by field with exact types and `f64` bits and as
//! encoded BSON bytes, or both fail with the same message; and the direct reader never
//! accepts text the `Value` path refuses.

use super::*;

/// The reference: the path every caller took before the direct reader.
fn via_value(text: &str) -> Result<BsonDocument> {
    json_to_document(parse_json(text, "document")?, "document")
}

/// Equal values of equal types; doubles compared by bits (so NaN, -0.0 count).
fn same_bson(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => x.to_bits() == y.to_bits(),
        (Bson::Document(x), Bson::Document(y)) => same_doc(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_bson(p, q))
        }
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => {
            x.code == y.code && same_doc(&x.scope, &y.scope)
        }
        _ => std::mem::discriminant(a) == std::mem::discriminant(b) && a == b,
    }
}

/// Same keys in the same order with [`same_bson`] values.
fn same_doc(a: &BsonDocument, b: &BsonDocument) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && same_bson(va, vb))
}

fn assert_same(text: &str, want: &BsonDocument, got: &BsonDocument) {
    assert!(
        same_doc(want, got),
        "different documents for {text:?}:\n want {want:?}\n  got {got:?}"
    );
    assert_eq!(
        want.to_vec().ok(),
        got.to_vec().ok(),
        "different BSON bytes for {text:?}"
    );
}

#[derive(Default, Debug)]
struct Tally {
    direct: usize,
    declined_valid: usize,
    errors: usize,
}

/// Checks one text. `may_decline_valid`: the text may be valid for the `Value` path yet
/// declined by the direct reader (only when an invalid value is replaced by a later duplicate
/// key); otherwise the direct reader must accept exactly what the reference accepts.
fn check(text: &str, may_decline_valid: bool, tally: &mut Tally) {
    let want = via_value(text);
    let public = parse_document(text);
    match (&want, &public) {
        (Ok(w), Ok(p)) => assert_same(text, w, p),
        (Err(w), Err(p)) => assert_eq!(w.to_string(), p.to_string(), "{text:?}"),
        _ => panic!("{text:?}: reference {want:?}, parse_document {public:?}"),
    }
    match direct::document(text) {
        Ok(got) => {
            let w = want
                .as_ref()
                .unwrap_or_else(|e| panic!("direct accepted {text:?}, reference: {e}"));
            assert_same(text, w, &got);
            tally.direct += 1;
        }
        Err(e) => match &want {
            Ok(_) => {
                assert!(may_decline_valid, "direct declined valid {text:?}: {e}");
                tally.declined_valid += 1;
            }
            Err(_) => tally.errors += 1,
        },
    }
}

/// The reference reading of a JSON array of documents (as `nexus_insert_many` had it).
fn array_via_value(text: &str) -> Option<Vec<BsonDocument>> {
    let serde_json::Value::Array(items) = parse_json(text, "json_array").ok()? else {
        return None;
    };
    items
        .into_iter()
        .map(|v| json_to_document(v, "json_array element").ok())
        .collect()
}

fn check_array(text: &str, may_decline_valid: bool) {
    let want = array_via_value(text);
    match (want, parse_document_array(text)) {
        (Some(w), Some(g)) => {
            assert_eq!(w.len(), g.len(), "{text:?}");
            for (a, b) in w.iter().zip(&g) {
                assert_same(text, a, b);
            }
        }
        (None, None) => {}
        (Some(_), None) => assert!(may_decline_valid, "direct declined valid array {text:?}"),
        (None, Some(g)) => panic!("direct accepted array {text:?}: {g:?}"),
    }
}

const OID: &str = r#"{"$oid":"507f1f77bcf86cd799439011"}"#;

/// Values placed under a key of a document (and, when objects, also used as the whole text).
pub(crate) fn hand_written_values() -> Vec<String> {
    let mut v: Vec<String> = [
        // $oid
        OID,
        r#"{"$oid":"507F1F77BCF86CD799439011"}"#,
        r#"{"$oid":"507f1f77bcf86cd79943901"}"#,
        r#"{"$oid":"zz7f1f77bcf86cd799439011"}"#,
        r#"{"$oid":5}"#,
        r#"{"$oid":null}"#,
        r#"{"$oid":"507f1f77bcf86cd799439011","x":1}"#,
        r#"{"a":1,"$oid":"507f1f77bcf86cd799439011"}"#,
        r#"{"$foo":1,"$oid":"507f1f77bcf86cd799439011"}"#,
        r#"{"$oid":"507f1f77bcf86cd799439011","$oid":"507f1f77bcf86cd799439012"}"#,
        r#"{"$oid":"bad","$oid":"507f1f77bcf86cd799439012"}"#,
        // $date: relaxed, canonical, legacy number
        r#"{"$date":"2024-01-02T03:04:05Z"}"#,
        r#"{"$date":"2024-01-02T03:04:05.123Z"}"#,
        r#"{"$date":"2024-01-02T03:04:05.123456789+02:00"}"#,
        r#"{"$date":"1969-12-31T23:59:59.999Z"}"#,
        r#"{"$date":"9999-12-31T23:59:59.999Z"}"#,
        r#"{"$date":"2024-01-02"}"#,
        r#"{"$date":"not a date"}"#,
        r#"{"$date":{"$numberLong":"1704164645000"}}"#,
        r#"{"$date":{"$numberLong":"-5"}}"#,
        r#"{"$date":{"$numberLong":"300000000000000"}}"#,
        r#"{"$date":{"$numberLong":"9223372036854775807"}}"#,
        r#"{"$date":{"$numberLong":"x"}}"#,
        r#"{"$date":{"$numberLong":5}}"#,
        r#"{"$date":{"$numberLong":"5","x":1}}"#,
        r#"{"$date":1704164645000}"#,
        r#"{"$date":-1}"#,
        r#"{"$date":0}"#,
        r#"{"$date":9223372036854775807}"#,
        r#"{"$date":18446744073709551615}"#,
        r#"{"$date":1.5}"#,
        r#"{"$date":true}"#,
        r#"{"$date":null}"#,
        r#"{"$date":[]}"#,
        r#"{"$date":"2024-01-02T03:04:05Z","x":1}"#,
        r#"{"$date":{"$numberLong":"5"},"$date":"2024-01-02T03:04:05Z"}"#,
        // $numberLong, $numberInt
        r#"{"$numberLong":"5"}"#,
        r#"{"$numberLong":"-9223372036854775808"}"#,
        r#"{"$numberLong":"9223372036854775807"}"#,
        r#"{"$numberLong":"9223372036854775808"}"#,
        r#"{"$numberLong":"+5"}"#,
        r#"{"$numberLong":" 5"}"#,
        r#"{"$numberLong":"5.0"}"#,
        r#"{"$numberLong":5}"#,
        r#"{"$numberLong":"5","$numberInt":"5"}"#,
        r#"{"$numberInt":"42"}"#,
        r#"{"$numberInt":"-0"}"#,
        r#"{"$numberInt":"2147483647"}"#,
        r#"{"$numberInt":"2147483648"}"#,
        r#"{"$numberInt":"-2147483648"}"#,
        r#"{"$numberInt":42}"#,
        r#"{"$numberInt":""}"#,
        // $numberDouble
        r#"{"$numberDouble":"1.5"}"#,
        r#"{"$numberDouble":"Infinity"}"#,
        r#"{"$numberDouble":"-Infinity"}"#,
        r#"{"$numberDouble":"NaN"}"#,
        r#"{"$numberDouble":"-0.0"}"#,
        r#"{"$numberDouble":"1e400"}"#,
        r#"{"$numberDouble":"inf"}"#,
        r#"{"$numberDouble":"nan"}"#,
        r#"{"$numberDouble":"1.7976931348623157e308"}"#,
        r#"{"$numberDouble":"5e-324"}"#,
        r#"{"$numberDouble":"abc"}"#,
        r#"{"$numberDouble":1.5}"#,
        // $numberDecimal
        r#"{"$numberDecimal":"1.5"}"#,
        r#"{"$numberDecimal":"-0"}"#,
        r#"{"$numberDecimal":"NaN"}"#,
        r#"{"$numberDecimal":"-Infinity"}"#,
        r#"{"$numberDecimal":"Infinity"}"#,
        r#"{"$numberDecimal":"1E+6144"}"#,
        r#"{"$numberDecimal":"1.234567890123456789012345678901234567890"}"#,
        r#"{"$numberDecimal":"bad"}"#,
        r#"{"$numberDecimal":1.5}"#,
        // $binary (v2 and the legacy form), $uuid
        r#"{"$binary":{"base64":"AQI=","subType":"00"}}"#,
        r#"{"$binary":{"base64":"","subType":"00"}}"#,
        r#"{"$binary":{"base64":"AQI=","subType":"80"}}"#,
        r#"{"$binary":{"base64":"AQI=","subType":"ff"}}"#,
        r#"{"$binary":{"base64":"AQI=","subType":"FF"}}"#,
        r#"{"$binary":{"base64":"AQI=","subType":"02"}}"#,
        r#"{"$binary":{"base64":"c//SZESzTGmQ6OfR38A11A==","subType":"04"}}"#,
        r#"{"$binary":{"base64":"c//SZESzTGmQ6OfR38A11A==","subType":"03"}}"#,
        r#"{"$binary":{"base64":"AQI=","subType":"4"}}"#,
        r#"{"$binary":{"base64":"AQI=","subType":"0004"}}"#,
        r#"{"$binary":{"base64":"AQI=","subType":"zz"}}"#,
        r#"{"$binary":{"base64":"!!","subType":"00"}}"#,
        r#"{"$binary":{"base64":"AQI","subType":"00"}}"#,
        r#"{"$binary":{"base64":"AQI=","subType":0}}"#,
        r#"{"$binary":{"base64":"AQI="}}"#,
        r#"{"$binary":{"base64":"AQI=","subType":"00","x":1}}"#,
        r#"{"$binary":{"subType":"00","base64":"AQI="}}"#,
        r#"{"$binary":"AQI=","$type":"00"}"#,
        r#"{"$binary":"AQI="}"#,
        r#"{"$uuid":"73ffd264-44b3-4c69-90e8-e7d1dfc035d4"}"#,
        r#"{"$uuid":"73FFD264-44B3-4C69-90E8-E7D1DFC035D4"}"#,
        r#"{"$uuid":"73ffd26444b34c6990e8e7d1dfc035d4"}"#,
        r#"{"$uuid":"{73ffd264-44b3-4c69-90e8-e7d1dfc035d4}"}"#,
        r#"{"$uuid":"urn:uuid:73ffd264-44b3-4c69-90e8-e7d1dfc035d4"}"#,
        r#"{"$uuid":"73ffd264-44b3-4c69-90e8-e7d1dfc035d"}"#,
        r#"{"$uuid":5}"#,
        // regular expressions: v2, legacy $regex/$options
        r#"{"$regularExpression":{"pattern":"a+","options":"mi"}}"#,
        r#"{"$regularExpression":{"pattern":"a+","options":"im"}}"#,
        r#"{"$regularExpression":{"pattern":"a+","options":""}}"#,
        r#"{"$regularExpression":{"pattern":"a+","options":"xz"}}"#,
        r#"{"$regularExpression":{"pattern":"a\u0000","options":""}}"#,
        r#"{"$regularExpression":{"pattern":"a+"}}"#,
        r#"{"$regularExpression":{"options":"i","pattern":"a+"}}"#,
        r#"{"$regularExpression":"a+"}"#,
        r#"{"$regex":"a+","$options":"i"}"#,
        r#"{"$regex":"a+"}"#,
        r#"{"$options":"i","$regex":"a+"}"#,
        // $timestamp
        r#"{"$timestamp":{"t":1,"i":2}}"#,
        r#"{"$timestamp":{"i":2,"t":1}}"#,
        r#"{"$timestamp":{"t":4294967295,"i":4294967295}}"#,
        r#"{"$timestamp":{"t":4294967296,"i":0}}"#,
        r#"{"$timestamp":{"t":-1,"i":0}}"#,
        r#"{"$timestamp":{"t":1.0,"i":0}}"#,
        r#"{"$timestamp":{"t":1}}"#,
        r#"{"$timestamp":{"t":1,"i":2,"x":3}}"#,
        r#"{"$timestamp":5}"#,
        // $symbol, $code, $code + $scope
        r#"{"$symbol":"sym"}"#,
        r#"{"$symbol":1}"#,
        r#"{"$code":"function(){}"}"#,
        r#"{"$code":"x","$scope":{"a":1}}"#,
        r#"{"$scope":{"a":1},"$code":"x"}"#,
        r#"{"$code":"x","$scope":{"a":{"$numberLong":"5"},"b":[1.5,{"$oid":"507f1f77bcf86cd799439011"}]}}"#,
        r#"{"$code":"x","$scope":{"a":{"$numberLong":"bad"}}}"#,
        r#"{"$code":"x","$scope":{}}"#,
        r#"{"$code":"x","$scope":1}"#,
        r#"{"$code":"x","$scope":null}"#,
        r#"{"$code":1}"#,
        r#"{"$code":"x","a":1}"#,
        r#"{"$scope":{"a":1}}"#,
        r#"{"$scope":{"a":1},"b":2}"#,
        r#"{"$scope":{"a":{"$numberLong":"5"}},"b":{"$oid":"507f1f77bcf86cd799439011"}}"#,
        r#"{"$scope":1,"$code":"x"}"#,
        // $minKey, $maxKey, $undefined
        r#"{"$minKey":1}"#,
        r#"{"$minKey":0}"#,
        r#"{"$minKey":256}"#,
        r#"{"$minKey":-1}"#,
        r#"{"$minKey":1.0}"#,
        r#"{"$minKey":"1"}"#,
        r#"{"$maxKey":1}"#,
        r#"{"$maxKey":2}"#,
        r#"{"$maxKey":true}"#,
        r#"{"$undefined":true}"#,
        r#"{"$undefined":false}"#,
        r#"{"$undefined":1}"#,
        // $dbPointer; DBRef-looking documents stay documents
        r#"{"$dbPointer":{"$ref":"coll","$id":{"$oid":"507f1f77bcf86cd799439011"}}}"#,
        r#"{"$dbPointer":{"$id":{"$oid":"507f1f77bcf86cd799439011"},"$ref":"coll"}}"#,
        r#"{"$dbPointer":{"$ref":"coll","$id":"507f1f77bcf86cd799439011"}}"#,
        r#"{"$dbPointer":{"$ref":"coll","$id":{"$oid":"bad"}}}"#,
        r#"{"$dbPointer":{"$ref":"coll"}}"#,
        r#"{"$ref":"coll","$id":{"$oid":"507f1f77bcf86cd799439011"}}"#,
        r#"{"$ref":"coll","$id":1,"$db":"x"}"#,
        // operators and other $ keys are plain documents
        r#"{"$gt":5}"#,
        r#"{"$in":[1,{"$numberLong":"2"}]}"#,
        r#"{"$and":[{"a":{"$gte":{"$date":"2024-01-02T03:04:05Z"}}},{"b":{"$ne":null}}]}"#,
        r#"{"$":1}"#,
        r#"{"$numberlong":"5"}"#,
        r#"{"$OID":"507f1f77bcf86cd799439011"}"#,
        r#"{"$gt":5,"$numberLong":"5"}"#,
        r#"{"$gt":5,"$scope":{}}"#,
        // wrappers nested in arrays and documents
        r#"[[{"$numberLong":"5"}],{"a":[{"$date":0}]}]"#,
        r#"{"a":{"b":{"c":{"$numberDecimal":"0.1"}}}}"#,
        // duplicate keys
        r#"{"a":1,"b":2,"a":3}"#,
        r#"{"a":1,"a":[1,2],"a":{"x":1}}"#,
        r#"{"a":1,"a":{"$oid":"bad"}}"#,
        r#"{"b":1,"a":2,"b":{"$numberLong":"5"}}"#,
        // numbers
        "0",
        "-0",
        "0.0",
        "-0.0",
        "-0e0",
        "0e-5",
        "1e400",
        "-1e400",
        "1e-400",
        "-1e-400",
        "2147483647",
        "2147483648",
        "-2147483648",
        "-2147483649",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "123456789012345678901234567890",
        "-123456789012345678901234567890",
        "1E5",
        "1e+5",
        "1.5e-8",
        "2.5E-08",
        "1.0",
        "1e0",
        "0.1",
        "0.30000000000000004",
        "5e-324",
        "2e-324",
        "1.7976931348623157e308",
        "1.7976931348623159e308",
        "9007199254740993",
        "9007199254740993.0",
        "00",
        "01",
        ".5",
        "1.",
        "+1",
        "1e",
        "-",
        "NaN",
        "Infinity",
        "-Infinity",
        // strings
        r#""""#,
        r#""\u00e9""#,
        r#""\u00E9t\u00e9""#,
        r#""\ud83d\ude00""#,
        r#""\uD83D\uDE00x""#,
        r#""\ud800""#,
        r#""\udc00""#,
        r#""\ud800\u0041""#,
        r#""\u0000""#,
        r#""a\"b\\c\/\b\f\n\r\t""#,
        "\"é😀 ünïcödé\"",
        "\"a\tb\"",
        r#""\x""#,
        r#""\u12""#,
        r#""unterminated"#,
        // other scalars and containers
        "null",
        "true",
        "false",
        "nul",
        "True",
        "{}",
        "[]",
        "[[]]",
        "[{}]",
        r#"{"a":{}}"#,
        r#"[1,"2",3.5,null,true,[{}],{"x":[]}]"#,
        "[1,]",
        "[1 2]",
        r#"{"a":1,}"#,
        r#"{"a" 1}"#,
        r#"{a:1}"#,
        r#"{"a":1"#,
        " \n\t[ 1 , { \"a\" : [ ] } ]\r\n",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Keys with escapes, empty and NUL keys, long keys.
    v.push(r#"{"k\u00e9y":1,"":2,"\ud83d\ude00":3,"a.b":4}"#.into());
    v.push(r#"{"\u0000":1}"#.into());
    v.push(format!(r#"{{"{}":1}}"#, "k".repeat(10_000)));
    v
}

#[test]
fn hand_written_inputs_agree_with_the_value_path() {
    let mut t = Tally::default();
    for value in hand_written_values() {
        // `a` before the value; a key after it; in an array; as the whole text.
        for text in [
            format!(r#"{{"v":{value}}}"#),
            format!(r#"{{"a":1,"v":{value},"z":[{value}]}}"#),
            format!(r#"{{"v":[{value},{value}]}}"#),
            format!(r#"{{"v":{{"w":{value}}}}}"#),
            value.clone(),
        ] {
            check(&text, false, &mut t);
        }
        check_array(&format!("[{{\"v\":{value}}},{{}}]"), false);
        check_array(&format!("[{value}]"), false);
    }
    // An invalid value replaced by a later duplicate key: valid for the `Value` path, which
    // never converts the replaced value; the direct reader declines it and the public
    // function falls back, with the same result. (Inside a wrapper object the duplicate is
    // resolved before conversion, as before: `{"$oid":"bad","$oid":"<good>"}` is read
    // directly.)
    check(r#"{"a":{"$oid":"bad"},"a":1}"#, true, &mut t);
    check(r#"{"x":{"a":{"$numberLong":"x"},"a":1}}"#, true, &mut t);
    eprintln!("hand-written: {t:?}");
    assert!(t.direct > 700 && t.errors > 400, "{t:?}");
    assert_eq!(t.declined_valid, 2, "{t:?}");
}

#[test]
fn error_messages_keep_their_form() {
    let e = parse_document(r#"{"a": [1, 2}"#).unwrap_err().to_string();
    assert!(
        e.contains("malformed JSON in document") && e.contains("line 1 column"),
        "{e}"
    );
    let e = parse_document("{\"a\":\n{\"$oid\": \"xyz\"}")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("malformed JSON in document") && e.contains("line 2"),
        "{e}"
    );
    let e = parse_document(r#"{"a": {"$oid": "xyz"}}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid Extended JSON in document"), "{e}");
    let e = parse_json_document("[1]", "filter")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("filter must be a JSON object, found an array"),
        "{e}"
    );
    let e = parse_json_document("", "filter").unwrap_err().to_string();
    assert!(e.contains("malformed JSON in filter"), "{e}");
    // A syntax error after an invalid wrapper is still reported as the syntax error.
    let e = parse_document(r#"{"a": {"$oid": "xyz"}, "b": }"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("malformed JSON in document"), "{e}");
}

pub(crate) fn nested(depth: usize, open: &str, close: &str, leaf: &str) -> String {
    let mut s = String::with_capacity(depth * (open.len() + close.len()) + leaf.len());
    for _ in 0..depth {
        s.push_str(open);
    }
    s.push_str(leaf);
    for _ in 0..depth {
        s.push_str(close);
    }
    s
}

pub(crate) const NESTING_SHAPES: [(&str, &str, &str); 8] = [
    ("{\"a\":", "}", "1"),
    ("{\"a\":", "}", OID),
    ("{\"a\":", "}", "{}"),
    ("[", "]", "1"),
    ("{\"a\":[", "]}", "[]"),
    ("{\"$scope\":", "}", "1"),
    ("{\"$code\":\"c\",\"$scope\":", "}", "{}"),
    ("[{\"$numberLong\":\"5\"},", "]", "2"),
];

#[test]
fn nesting_limit_is_the_value_paths() {
    // The reference path (bson's recursive conversion) needs more than a test thread's
    // stack for 128 levels in debug builds, so the comparison runs on a large stack.
    let run = || {
        let mut t = Tally::default();
        for depth in [1, 2, 100, 125, 126, 127, 128, 129, 130, 1_000, 200_000] {
            for (open, close, leaf) in NESTING_SHAPES {
                let inner = nested(depth, open, close, leaf);
                check(&format!("{{\"v\":{inner}}}"), false, &mut t);
                check(&inner, false, &mut t);
            }
        }
        t
    };
    let t = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
    assert!(t.direct > 10 && t.errors > 10, "{t:?}");
}

#[test]
fn direct_reader_stays_within_a_small_stack_at_the_nesting_limit() {
    // Text nested deeper than MAX_QUERY_NESTING is refused before parsing; up to that the
    // direct reader recurses once per level with small frames (2 MiB is plenty even in debug
    // builds). `$scope` chains are left out: they go through the reference reading.
    let run = || {
        for (open, close, leaf) in &NESTING_SHAPES[..5] {
            let (mut ok, mut refused) = (0, 0);
            for depth in 50..=130 {
                let text = format!("{{\"v\":{}}}", nested(depth, open, close, leaf));
                let direct = direct::document(&text).is_ok();
                assert_eq!(direct, parse_json(&text, "x").is_ok(), "{depth} {open}");
                if direct {
                    ok += 1;
                } else {
                    refused += 1;
                }
            }
            assert!(ok > 0 && refused > 0, "{open}");
            assert!(direct::document(&nested(1_000_000, open, close, leaf)).is_err());
            let many = format!("[{}]", nested(1_000, open, close, leaf));
            assert!(parse_document_array(&many).is_none());
        }
    };
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}

// ---- random documents ------------------------------------------------------------------

/// A deterministic generator of JSON text that tends to hit the interesting cases.
pub(crate) struct Gen {
    pub(crate) rng: fastrand::Rng,
    /// Whether the text so far has an object with a repeated key (which may replace an
    /// invalid value, the one case the direct reader declines valid text).
    pub(crate) dup: bool,
}

const KEYS: &[&str] = &[
    "a",
    "b",
    "c",
    "_id",
    "name",
    "x.y",
    "",
    "k\\u00e9",
    "\\ud83d\\ude00",
    "$gt",
    "$in",
    "$scope",
    "$ref",
    "$id",
    "$regex",
    "$options",
    "$type",
];

impl Gen {
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.usize(..items.len())]
    }

    fn number(&mut self) -> String {
        let r = &mut self.rng;
        match r.u32(..12) {
            0 => r.i32(..).to_string(),
            1 => r.i64(..).to_string(),
            2 => r.u64(..).to_string(),
            3 => {
                let edges = [
                    i64::from(i32::MAX),
                    i64::from(i32::MIN),
                    i64::MAX,
                    i64::MIN,
                    0,
                    -1,
                    1,
                ];
                (i128::from(edges[r.usize(..edges.len())]) + i128::from(r.i64(-1..=1))).to_string()
            }
            4 => (i64::MAX as u64 + r.u64(..1000)).to_string(),
            5 => {
                let f = f64::from_bits(r.u64(..));
                if f.is_finite() {
                    format!("{f:?}")
                } else {
                    "1.5".into()
                }
            }
            6 => format!("{:e}", r.f64() * 10f64.powi(r.i32(-300..300))),
            7 => {
                // Hand-rolled digits, fraction, exponent (sometimes out of range).
                let mut s = String::new();
                if r.bool() {
                    s.push('-');
                }
                s.push(char::from(b'1' + r.u8(..9)));
                for _ in 0..r.usize(..25) {
                    s.push(char::from(b'0' + r.u8(..10)));
                }
                if r.bool() {
                    s.push('.');
                    for _ in 0..r.usize(1..20) {
                        s.push(char::from(b'0' + r.u8(..10)));
                    }
                }
                if r.bool() {
                    s.push_str(self.pick(&["e", "E", "e+", "e-", "E-"]));
                    s.push_str(&self.rng.u32(..450).to_string());
                }
                s
            }
            8 => self
                .pick(&["-0", "-0.0", "0.0", "-0e10", "0", "1e308", "1e-320"])
                .into(),
            9 => format!("{}.{}", r.i32(..), r.u32(..)),
            10 => r.i8(..).to_string(),
            _ => r.u16(..).to_string(),
        }
    }

    fn string(&mut self) -> String {
        let mut s = String::from("\"");
        for _ in 0..self.rng.usize(..12) {
            let piece = self.pick(&[
                "a",
                "Z",
                " ",
                "0",
                "é",
                "😀",
                "中",
                "\\n",
                "\\t",
                "\\\"",
                "\\\\",
                "\\/",
                "\\u00e9",
                "\\u0000",
                "\\u001f",
                "\\ud83d\\ude00",
                "\\uFFFF",
                "$",
                "\\b",
                "\\f",
                "\\r",
            ]);
            s.push_str(piece);
        }
        s.push('"');
        s
    }

    fn wrapper(&mut self) -> String {
        let r = &mut self.rng;
        let hex = |r: &mut fastrand::Rng, n: usize| -> String {
            (0..n)
                .map(|_| char::from_digit(r.u32(..16), 16).unwrap())
                .collect()
        };
        match r.u32(..22) {
            0 => {
                let n = if r.u32(..8) == 0 { 23 } else { 24 };
                format!(r#"{{"$oid":"{}"}}"#, hex(r, n))
            }
            1 => format!(r#"{{"$numberLong":"{}"}}"#, r.i64(..)),
            2 => format!(
                r#"{{"$numberInt":"{}"}}"#,
                r.i64(-3_000_000_000..3_000_000_000)
            ),
            3 => {
                let d = self.pick(&["1.5", "-0.0", "Infinity", "-Infinity", "NaN", "x", "1e400"]);
                format!(r#"{{"$numberDouble":"{d}"}}"#)
            }
            4 => format!(r#"{{"$numberDecimal":"{}.{}"}}"#, r.i64(..), r.u32(..)),
            5 => format!(r#"{{"$date":{{"$numberLong":"{}"}}}}"#, r.i64(..)),
            6 => format!(r#"{{"$date":{}}}"#, r.i64(..)),
            7 => format!(
                r#"{{"$date":"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z"}}"#,
                r.u32(1..10000),
                r.u32(1..13),
                r.u32(1..29),
                r.u32(..24),
                r.u32(..60),
                r.u32(..61),
                r.u32(..1000)
            ),
            8 => {
                let n = if r.u32(..8) == 0 { 1 } else { 2 };
                let st = hex(r, n);
                let b64 = self.pick(&["AQI=", "", "AAAA", "c//SZESzTGmQ6OfR38A11A==", "!"]);
                format!(r#"{{"$binary":{{"base64":"{b64}","subType":"{st}"}}}}"#)
            }
            9 => format!(
                r#"{{"$uuid":"{}-{}-{}-{}-{}"}}"#,
                hex(r, 8),
                hex(r, 4),
                hex(r, 4),
                hex(r, 4),
                hex(r, 12)
            ),
            10 => {
                let o = self.pick(&["", "i", "mi", "im", "xsmil", "q"]);
                format!(r#"{{"$regularExpression":{{"pattern":"a+","options":"{o}"}}}}"#)
            }
            11 => format!(
                r#"{{"$timestamp":{{"t":{},"i":{}}}}}"#,
                r.u64(..1 << 33),
                r.u32(..)
            ),
            12 => format!(r#"{{"$symbol":{}}}"#, self.string()),
            13 => format!(r#"{{"$code":{}}}"#, self.string()),
            14 => {
                let scope = self.object(2);
                format!(r#"{{"$code":"f()","$scope":{scope}}}"#)
            }
            15 => self
                .pick(&[r#"{"$minKey":1}"#, r#"{"$maxKey":1}"#, r#"{"$minKey":2}"#])
                .into(),
            16 => self
                .pick(&[r#"{"$undefined":true}"#, r#"{"$undefined":false}"#])
                .into(),
            17 => format!(
                r#"{{"$dbPointer":{{"$ref":"c","$id":{{"$oid":"{}"}}}}}}"#,
                hex(r, 24)
            ),
            18 => format!(r#"{{"$regex":"a","$options":"i","{}":1}}"#, self.pick(KEYS)),
            19 => {
                // A wrapper key after other keys, or a wrapper with an extra key.
                let k = self.pick(&["$oid", "$date", "$numberLong", "$code", "$binary"]);
                if self.rng.bool() {
                    format!(r#"{{"a":1,"{k}":"5"}}"#)
                } else {
                    format!(r#"{{"{k}":"5","a":1}}"#)
                }
            }
            20 => {
                let v = self.value(1);
                let k = self.pick(&["$numberLong", "$oid", "$date", "$minKey", "$undefined"]);
                format!(r#"{{"{k}":{v}}}"#)
            }
            _ => format!(r#"{{"$scope":{}}}"#, self.value(2)),
        }
    }

    pub(crate) fn object(&mut self, depth: u32) -> String {
        let n = self.rng.usize(..6);
        let mut seen = Vec::new();
        let mut s = String::from("{");
        for i in 0..n {
            if i > 0 {
                s.push(',');
            }
            let key = self.pick(KEYS);
            if seen.contains(&key) {
                self.dup = true;
            }
            seen.push(key);
            let value = self.value(depth);
            s.push_str(&format!("\"{key}\":{value}"));
        }
        s.push('}');
        s
    }

    fn value(&mut self, depth: u32) -> String {
        let leaf = depth == 0 || self.rng.u32(..3) == 0;
        match self.rng.u32(..if leaf { 6 } else { 9 }) {
            0 => self.pick(&["null", "true", "false"]).into(),
            1 | 2 => self.number(),
            3 | 4 => self.string(),
            5 => self.wrapper(),
            6 => {
                let n = self.rng.usize(..5);
                let items: Vec<String> = (0..n).map(|_| self.value(depth - 1)).collect();
                format!("[{}]", items.join(","))
            }
            _ => self.object(depth - 1),
        }
    }

    /// Whitespace between tokens, and now and then a broken text.
    pub(crate) fn mangle(&mut self, text: String) -> String {
        match self.rng.u32(..20) {
            0 => {
                let cut = (0..=self.rng.usize(..=text.len()))
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                text[..cut].to_string()
            }
            1 => {
                let at = (0..=self.rng.usize(..=text.len()))
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                let junk = self.pick(&[",", "}", "]", "\"", ":", "x", "1", " ", "{", "\\"]);
                format!("{}{junk}{}", &text[..at], &text[at..])
            }
            2 => text.replace(',', " ,\n\t").replace(':', " : "),
            3 => format!(" \r\n{text}\n "),
            _ => text,
        }
    }
}

#[test]
fn random_documents_agree_with_the_value_path() {
    let mut g = Gen {
        rng: fastrand::Rng::with_seed(0x6e65_7875_736c),
        dup: false,
    };
    let mut t = Tally::default();
    let mut batch = Vec::new();
    let mut batch_dup = false;
    for _ in 0..5_000 {
        g.dup = false;
        let depth = g.rng.u32(1..6);
        let text = g.object(depth);
        let text = g.mangle(text);
        check(&text, g.dup, &mut t);
        batch.push(text);
        batch_dup |= g.dup;
        if batch.len() == 4 {
            check_array(&format!("[{}]", batch.join(",")), batch_dup);
            batch.clear();
            batch_dup = false;
        }
    }
    eprintln!("random: {t:?}");
    // The generator hits both sides often.
    assert!(t.direct > 2_000 && t.errors > 500, "{t:?}");
}
