use super::*;
use bson::{bson, doc};

fn ev(expr: Bson, d: &Document) -> Result<Bson> {
    let root = Bson::Document(d.clone());
    Expr::parse(&expr)?.eval(&Env::new(&root, &[]))
}

#[test]
fn field_paths_traverse_arrays() {
    let d = doc! {"a": [{"b": 1}, {"c": 2}, {"b": [3, 4]}, 5], "x": {"y": "z"}};
    assert_eq!(ev(bson!("$a.b"), &d).unwrap(), bson!([1, [3, 4]]));
    assert_eq!(ev(bson!("$x.y"), &d).unwrap(), bson!("z"));
    assert!(is_missing(&ev(bson!("$nope"), &d).unwrap()));
    assert_eq!(ev(bson!("$$ROOT.x"), &d).unwrap(), bson!({"y": "z"}));
}

#[test]
fn arithmetic_keeps_mongodb_types() {
    let d = doc! {};
    assert_eq!(ev(bson!({"$add": [1, 2]}), &d).unwrap(), Bson::Int32(3));
    assert_eq!(
        ev(bson!({"$add": [i32::MAX, 1]}), &d).unwrap(),
        Bson::Int64(i64::from(i32::MAX) + 1)
    );
    assert_eq!(
        ev(bson!({"$add": [1, 0.5]}), &d).unwrap(),
        Bson::Double(1.5)
    );
    assert_eq!(
        ev(bson!({"$multiply": [i64::MAX, 2]}), &d).unwrap(),
        Bson::Double(i64::MAX as f64 * 2.0)
    );
    assert_eq!(
        ev(bson!({"$round": [2.5, 0]}), &d).unwrap(),
        Bson::Double(2.0)
    );
    assert_eq!(
        ev(bson!({"$round": [1235, -1]}), &d).unwrap(),
        Bson::Int32(1240)
    );
    let e = ev(bson!({"$divide": [1, 0]}), &d).unwrap_err();
    assert!(e.to_string().contains("can't $divide by zero"), "{e}");
    assert_eq!(ev(bson!({"$add": [1, null]}), &d).unwrap(), Bson::Null);
}

#[test]
fn unknown_operator_is_unsupported_and_named() {
    let e = Expr::parse(&bson!({"$frobnicate": 1})).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)));
    assert!(e.to_string().contains("$frobnicate"));
}

#[test]
fn variables_map_filter_reduce() {
    let d = doc! {"xs": [1, 2, 3, 4]};
    assert_eq!(
        ev(
            bson!({"$map": {"input": "$xs", "as": "x", "in": {"$multiply": ["$$x", 10]}}}),
            &d
        )
        .unwrap(),
        bson!([10, 20, 30, 40])
    );
    assert_eq!(
        ev(
            bson!({"$filter": {"input": "$xs", "cond": {"$gt": ["$$this", 2]}}}),
            &d
        )
        .unwrap(),
        bson!([3, 4])
    );
    assert_eq!(
        ev(bson!({"$reduce": {"input": "$xs", "initialValue": 0, "in": {"$add": ["$$value", "$$this"]}}}), &d).unwrap(),
        bson!(10)
    );
    assert_eq!(
        ev(
            bson!({"$let": {"vars": {"n": 5}, "in": {"$add": ["$$n", 1]}}}),
            &d
        )
        .unwrap(),
        bson!(6)
    );
    assert!(ev(bson!("$$undefinedVar"), &d).is_err());
}

#[test]
fn dates_are_utc_civil_time() {
    // 2014-01-01T08:15:39.736Z, a Wednesday.
    let d = doc! {"d": bson::DateTime::from_millis(1_388_564_139_736)};
    assert_eq!(ev(bson!({"$year": "$d"}), &d).unwrap(), bson!(2014));
    assert_eq!(ev(bson!({"$dayOfWeek": "$d"}), &d).unwrap(), bson!(4));
    assert_eq!(ev(bson!({"$millisecond": "$d"}), &d).unwrap(), bson!(736));
    assert_eq!(
        ev(
            bson!({"$dateToString": {"date": "$d", "format": "%Y-%m-%d %H:%M:%S.%L %j"}}),
            &d
        )
        .unwrap(),
        bson!("2014-01-01 08:15:39.736 001")
    );
    assert_eq!(
        dates::parse_iso("2014-01-01T08:15:39.736Z"),
        Some(1_388_564_139_736)
    );
}

#[test]
fn conversions() {
    let d = doc! {};
    assert_eq!(ev(bson!({"$toInt": "42"}), &d).unwrap(), bson!(42));
    assert_eq!(ev(bson!({"$toString": 2.5}), &d).unwrap(), bson!("2.5"));
    assert_eq!(ev(bson!({"$toString": 2.0}), &d).unwrap(), bson!("2"));
    assert_eq!(
        ev(
            bson!({"$convert": {"input": "x", "to": "int", "onError": -1}}),
            &d
        )
        .unwrap(),
        bson!(-1)
    );
    assert!(ev(bson!({"$toInt": "x"}), &d).is_err());
    assert_eq!(ev(bson!({"$type": "$nope"}), &d).unwrap(), bson!("missing"));
}
