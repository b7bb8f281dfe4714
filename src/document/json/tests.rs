#[test]
fn dates_outside_1970_to_9999_keep_their_value() {
    for ms in [-100i64, 253_402_300_800_000, 300_000_000_000_000] {
        let doc = bson::doc! {"d": bson::DateTime::from_millis(ms)};
        let text = to_relaxed_json(&doc);
        assert_eq!(
            text,
            format!(r#"{{"d":{{"$date":{{"$numberLong":"{ms}"}}}}}}"#)
        );
        assert_eq!(parse_document(&text).unwrap(), doc);
        let bytes = doc.to_vec().unwrap();
        assert_eq!(raw_to_relaxed_json(&bytes).unwrap(), text);
    }
}

use super::*;

#[test]
fn the_direct_writer_matches_serde_json_output() {
    let text = r#"{"_id":{"$oid":"507f1f77bcf86cd799439011"},"n":{"$numberLong":"5"},"i":-7,"big":{"$numberLong":"9007199254740993"},
        "d":{"$date":"2024-01-02T03:04:05Z"},"old":{"$date":{"$numberLong":"-5"}},"x":{"$numberDecimal":"1.5"},
        "b":{"$binary":{"base64":"AQI=","subType":"00"}},"f":[1.0,0.1,-0.0,1e300,2.5e-8,{"$numberDouble":"NaN"},{"$numberDouble":"-Infinity"}],
        "s":"a\"b\\c\n\u0001é😀</","t":true,"u":false,"z":null,"re":{"$regularExpression":{"pattern":"a+","options":"mi"}},
        "ts":{"$timestamp":{"t":1,"i":2}},"mn":{"$minKey":1},"mx":{"$maxKey":1},"nested":{"a":[{"b":[]},{}],"k\"ey":1},
        "cws":[{"$code":"f()","$scope":{"x":[1,{"y":{"$code":"g","$scope":{}}}]}},{"$code":"h"}]}"#;
    let doc = parse_document(text).unwrap();
    let old = Bson::Document(doc.clone())
        .into_relaxed_extjson()
        .to_string();
    assert_eq!(to_relaxed_json(&doc), old);
    assert_eq!(raw_to_relaxed_json(&doc.to_vec().unwrap()).unwrap(), old);
    for v in doc.values() {
        assert_eq!(
            bson_to_json_text(v),
            v.clone().into_relaxed_extjson().to_string()
        );
    }
}

#[test]
fn any_nesting_is_written_without_recursion() {
    let levels = 50_000;
    let mut v = Bson::Int32(1);
    for i in 0..levels {
        v = if i % 2 == 0 {
            Bson::Array(vec![v])
        } else {
            Bson::Document(bson::doc! {"a": v})
        };
    }
    let text = bson_to_json_text(&v);
    let want = format!(
        "{}1{}",
        r#"{"a":["#.repeat(levels / 2),
        "]}".repeat(levels / 2)
    );
    // Not assert_eq: a failure would drop `v` recursively; it is taken apart iteratively.
    let same = text == want;
    crate::document::dispose_value(v);
    assert!(same, "{}...", &text[..100]);
}

#[test]
fn strings_are_escaped_as_serde_json_escapes_them() {
    // Every ASCII byte, alone and inside runs of every length around the eight-byte
    // steps, in values and in keys; multi-byte characters pass through.
    let mut texts: Vec<String> = (0u8..0x80).map(|b| char::from(b).to_string()).collect();
    for len in 0..20 {
        for stop in ['"', '\\', '\n', '\u{1}', '\u{1f}', 'é', '😀'] {
            texts.push(format!("{}{stop}{}", "a".repeat(len), "b".repeat(len % 9)));
        }
    }
    for t in &texts {
        let mut doc = bson::doc! {"s": t.as_str()};
        if !t.contains('\0') {
            doc.insert(t.as_str(), 1); // a key cannot hold a NUL
        }
        let want = Bson::Document(doc.clone())
            .into_relaxed_extjson()
            .to_string();
        let bytes = doc.to_vec().unwrap();
        assert_eq!(raw_to_relaxed_json(&bytes).unwrap(), want, "{t:?}");
        let mut out = b"kept".to_vec();
        assert!(append_relaxed_json(&mut out, &bytes));
        assert_eq!(&out[4..], want.as_bytes());
    }
    // A string that is not UTF-8 is refused, and the buffer left as it was.
    let mut bytes = bson::doc! {"s": "abc"}.to_vec().unwrap();
    let at = bytes.windows(3).position(|w| w == b"abc").unwrap();
    bytes[at + 1] = 0xff;
    assert!(raw_to_relaxed_json(&bytes).is_none());
    let mut out = b"kept".to_vec();
    assert!(!append_relaxed_json(&mut out, &bytes));
    assert_eq!(out, b"kept");
}

#[test]
fn extended_json_wrappers_round_trip() {
    let text = r#"{"_id":{"$oid":"507f1f77bcf86cd799439011"},"n":{"$numberLong":"5"},"d":{"$date":"2024-01-02T03:04:05Z"},"x":{"$numberDecimal":"1.5"},"b":{"$binary":{"base64":"AQI=","subType":"00"}}}"#;
    let doc = parse_document(text).unwrap();
    assert!(matches!(doc.get("_id"), Some(Bson::ObjectId(_))));
    assert_eq!(doc.get("n"), Some(&Bson::Int64(5)));
    assert!(matches!(doc.get("d"), Some(Bson::DateTime(_))));
    assert!(matches!(doc.get("x"), Some(Bson::Decimal128(_))));
    assert!(matches!(doc.get("b"), Some(Bson::Binary(_))));
    // Relaxed output writes a small int64 as a plain number (MongoDB's relaxed format),
    // so it comes back as int32; every other wrapper round-trips exactly.
    let back = parse_document(&to_relaxed_json(&doc)).unwrap();
    assert_eq!(back.get("n"), Some(&Bson::Int32(5)));
    for k in ["_id", "d", "x", "b"] {
        assert_eq!(back.get(k), doc.get(k), "{k}");
    }
}

#[test]
fn non_objects_are_refused_by_kind() {
    let e = parse_document("[1,2]").unwrap_err();
    assert!(e.to_string().contains("an array"), "{e}");
    assert!(parse_document("{\"a\":").is_err());
}
