//! Recursion over user input is bounded before it starts, so NexusLite runs on the small
//! thread stacks that game engines and firmware hosts give (256 KiB here). Dotted paths with
//! more components than a document can nest (a `$set` of 12,000 components used to crash an
//! 8 MiB main thread in `set_in_doc`), filters nested past their limits, and JSON or BSON
//! nested past the document limit are refused with `InvalidArgument` naming the limit, before
//! anything recursive sees them; the database keeps working afterwards; and the legal worst
//! cases (100-level documents, 100-component paths, operators nested to their limit) run on
//! the same small stack.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // test arithmetic on small values

use crate::common;

use bson::{doc, Bson, Document as BsonDocument};
use nexus::{
    Database, Document, Error, FindOneAndOptions, FindOptions, InsertManyOptions, ModifyOptions,
    UpdateOptions, WriteModel, MAX_FILTER_DEPTH, MAX_NESTING, MAX_PATH_BYTES, MAX_PATH_COMPONENTS,
    MAX_QUERY_NESTING,
};

/// The stack a small host gives a thread. Unoptimized builds use several times more stack
/// per call than the optimized library the suites test (`cargo test --release`), so they get
/// more; the 256 KiB figure is the guarantee for optimized builds.
const STACK: usize = if cfg!(debug_assertions) {
    4 << 20
} else {
    256 << 10
};

/// Runs `f` on a thread with a [`STACK`]-byte stack (a stack overflow aborts the test run).
fn on_small_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("small-stack".into())
            .stack_size(STACK)
            .spawn_scoped(s, f)
            .expect("spawn a small-stack thread")
            .join()
            .expect("the small-stack thread panicked")
    })
}

/// A database in a fresh directory (a new file, so it gets the engine the test harness asks
/// for: `common::open_options`) holding `{_id: 1, n: 1, arr: [1, 2]}` in collection `c`.
fn open() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = common::open(dir.path().join("paths.db"));
    db.collection("c")
        .insert(Document::from(doc! {"_id": 1, "n": 1, "arr": [1, 2]}))
        .expect("insert");
    (dir, db)
}

/// The database still answers and still writes.
fn still_works(db: &Database) {
    let c = db.collection("c");
    let n = c.count(&doc! {}).expect("count");
    c.update(
        &doc! {"_id": 1},
        &doc! {"$inc": {"n": 1}},
        UpdateOptions::default(),
    )
    .expect("update");
    assert_eq!(c.count(&doc! {}).expect("count"), n);
    assert_eq!(c.count(&doc! {"_id": 1}).expect("count"), 1);
}

/// `Err(InvalidArgument)` whose message contains `needle` (the limit it names).
#[track_caller]
fn refused<T>(r: nexus::Result<T>, needle: &str) {
    match r {
        Err(Error::InvalidArgument(m)) => {
            assert!(m.contains(needle), "message {m:?} does not name {needle:?}")
        }
        Err(other) => panic!("expected InvalidArgument naming {needle:?}, got {other:?}"),
        Ok(_) => panic!("expected InvalidArgument naming {needle:?}, got Ok"),
    }
}

/// `x.x.x...` with `n` components.
fn dotted(n: usize) -> String {
    let mut s = String::with_capacity(2 * n);
    for i in 0..n {
        if i > 0 {
            s.push('.');
        }
        s.push('x');
    }
    s
}

/// `{"a": {"a": ... {"leaf": 1}}}`: `levels` documents.
fn deep_doc(levels: usize) -> BsonDocument {
    let mut d = doc! {"leaf": 1};
    for _ in 1..levels {
        d = doc! {"a": d};
    }
    d
}

/// `levels` objects as JSON text, `{"a": ... {"leaf": 1}}`.
fn deep_json(levels: usize) -> String {
    let mut s = "{\"a\":".repeat(levels - 1);
    s.push_str("{\"leaf\":1}");
    s.push_str(&"}".repeat(levels - 1));
    s
}

/// BSON bytes of `levels` documents nested in each other (built without recursion).
fn deep_bson(levels: usize) -> Vec<u8> {
    let mut inner: Vec<u8> = vec![5, 0, 0, 0, 0];
    for _ in 1..levels {
        inner = wrap_bson(0x03, &inner);
    }
    inner
}

/// The BSON document `{"a": <value of type kind with bytes value>}`.
fn wrap_bson(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut doc = Vec::with_capacity(value.len() + 8);
    doc.extend_from_slice(&[0, 0, 0, 0, kind, b'a', 0]);
    doc.extend_from_slice(value);
    doc.push(0);
    let len = doc.len() as i32;
    doc[0..4].copy_from_slice(&len.to_le_bytes());
    doc
}

/// Drops a deep document without recursion (the bson crate's drop recurses per level).
fn dispose(doc: BsonDocument) {
    let mut rest = vec![Bson::Document(doc)];
    while let Some(v) = rest.pop() {
        match v {
            Bson::Document(d) => rest.extend(d.into_iter().map(|(_, v)| v)),
            Bson::Array(a) => rest.extend(a),
            Bson::JavaScriptCodeWithScope(c) => rest.push(Bson::Document(c.scope)),
            _ => {}
        }
    }
}

/// `{op: {operand}}` nested `levels` times around `inner` (`{"$not": {"$not": ...}}`).
fn chain(op: &str, levels: usize, inner: BsonDocument) -> BsonDocument {
    let mut d = inner;
    for _ in 0..levels {
        let mut outer = BsonDocument::new();
        outer.insert(op, d);
        d = outer;
    }
    d
}

/// `{"$and": [{"$and": [... {"x": 1}]}]}` with `levels` operators (2 levels each).
fn and_chain(op: &str, levels: usize) -> BsonDocument {
    let mut d = doc! {"x": 1};
    for _ in 0..levels {
        let mut outer = BsonDocument::new();
        outer.insert(op, vec![Bson::Document(d)]);
        d = outer;
    }
    d
}

const PATH_LIMIT: &str = "a path may have at most 100";

#[test]
fn update_paths_longer_than_documents_nest_are_refused_at_parse() {
    let (_dir, db) = open();
    on_small_stack(|| {
        let c = db.collection("c");
        let id1 = doc! {"_id": 1};
        let long = dotted(20_000);
        let operand: [(&str, Bson); 13] = [
            ("$set", Bson::Int32(1)),
            ("$unset", Bson::String(String::new())),
            ("$inc", Bson::Int32(1)),
            ("$mul", Bson::Int32(2)),
            ("$min", Bson::Int32(0)),
            ("$max", Bson::Int32(9)),
            ("$currentDate", Bson::Boolean(true)),
            ("$setOnInsert", Bson::Int32(1)),
            ("$push", Bson::Int32(1)),
            ("$addToSet", Bson::Int32(1)),
            ("$pop", Bson::Int32(1)),
            ("$pull", Bson::Int32(1)),
            ("$pullAll", Bson::Array(vec![Bson::Int32(1)])),
        ];
        for (op, v) in &operand {
            for path in [long.as_str(), &dotted(MAX_PATH_COMPONENTS + 1)] {
                let mut fields = BsonDocument::new();
                fields.insert(path, v.clone());
                let mut u = BsonDocument::new();
                u.insert(*op, fields);
                refused(c.update(&id1, &u, UpdateOptions::default()), PATH_LIMIT);
                let upsert = UpdateOptions {
                    upsert: true,
                    ..Default::default()
                };
                refused(c.update(&doc! {"_id": 5}, &u, upsert), PATH_LIMIT);
            }
        }
        // $rename: a long source, a long target, and a target of 200,000 components, which
        // used to run for over 20 s before failing; refused at parse, it returns at once.
        let ren = |from: &str, to: &str| {
            let mut fields = BsonDocument::new();
            fields.insert(from, to);
            doc! {"$rename": fields}
        };
        let no = UpdateOptions::default();
        refused(c.update(&id1, &ren(&long, "b"), no), PATH_LIMIT);
        refused(c.update(&id1, &ren("n", &long), no), PATH_LIMIT);
        refused(c.update(&id1, &ren("n", &dotted(200_000)), no), PATH_LIMIT);
        refused(
            c.update(&id1, &ren("n", &dotted(MAX_PATH_COMPONENTS + 1)), no),
            PATH_LIMIT,
        );
        // Paths inside operands: $push's $sort, $pull's query.
        let mut sort = BsonDocument::new();
        sort.insert(long.as_str(), 1);
        let push = doc! {"$push": {"arr": {"$each": [3], "$sort": sort}}};
        refused(c.update(&id1, &push, no), PATH_LIMIT);
        let mut query = BsonDocument::new();
        query.insert(long.as_str(), 1);
        refused(
            c.update(&id1, &doc! {"$pull": {"arr": query}}, no),
            PATH_LIMIT,
        );
        // The byte limit: one component longer than the longest path.
        let wide = "w".repeat(MAX_PATH_BYTES + 1);
        let mut fields = BsonDocument::new();
        fields.insert(wide.as_str(), 1);
        refused(
            c.update(&id1, &doc! {"$set": fields}, no),
            &format!("at most {MAX_PATH_BYTES} bytes"),
        );
        // Upserts seed the new document from the filter's equalities: a long filter key is
        // refused when the filter is parsed.
        let mut filter = BsonDocument::new();
        filter.insert(long.as_str(), 1);
        let upsert = UpdateOptions {
            upsert: true,
            ..Default::default()
        };
        refused(
            c.update(&filter, &doc! {"$set": {"b": 1}}, upsert),
            PATH_LIMIT,
        );
        let opts = FindOneAndOptions {
            upsert: true,
            ..Default::default()
        };
        refused(
            c.find_one_and_update(&filter, &doc! {"$set": {"b": 1}}, opts),
            PATH_LIMIT,
        );
        // The same through JSON text.
        let text = format!(r#"{{"$set": {{"{long}": 1}}}}"#);
        let u = Document::from_json(&text)
            .expect("a flat document")
            .into_bson();
        refused(c.update(&id1, &u, no), PATH_LIMIT);
        still_works(&db);
        assert_eq!(c.count(&doc! {}).unwrap(), 1, "no upsert happened");
    });
}

#[test]
fn query_paths_longer_than_documents_nest_are_refused() {
    let (_dir, db) = open();
    on_small_stack(|| {
        let c = db.collection("c");
        let long = dotted(20_000);
        let mut by_long = BsonDocument::new();
        by_long.insert(long.as_str(), 1);
        refused(c.find(&by_long, FindOptions::default()), PATH_LIMIT);
        refused(c.count(&by_long), PATH_LIMIT);
        refused(c.delete(&by_long, true), PATH_LIMIT);
        refused(c.find_one(&by_long), PATH_LIMIT);
        refused(
            c.count(&doc! {"arr": {"$elemMatch": by_long.clone()}}),
            PATH_LIMIT,
        );
        refused(c.count(&doc! {"$or": [by_long.clone()]}), PATH_LIMIT);
        refused(c.count_json(&format!(r#"{{"{long}": 1}}"#)), PATH_LIMIT);
        refused(c.distinct(&long, &doc! {}), PATH_LIMIT);
        refused(c.distinct("n", &by_long), PATH_LIMIT);
        let sorted = FindOptions {
            sort: Some(by_long.clone()),
            ..Default::default()
        };
        refused(c.find(&doc! {}, sorted), PATH_LIMIT);
        let projected = FindOptions {
            projection: Some(by_long.clone()),
            ..Default::default()
        };
        refused(c.find(&doc! {}, projected), PATH_LIMIT);
        // A nested projection document flattens to a path as long as it is deep.
        let nested = FindOptions {
            projection: Some(chain("p", MAX_PATH_COMPONENTS, doc! {"q": 1})),
            ..Default::default()
        };
        refused(c.find(&doc! {}, nested), PATH_LIMIT);
        let opts = FindOneAndOptions {
            sort: Some(by_long.clone()),
            ..Default::default()
        };
        refused(c.find_one_and_delete(&doc! {}, opts), PATH_LIMIT);
        refused(c.explain(&by_long, FindOptions::default()), PATH_LIMIT);
        // Index keys: the report's 100,000-component key, and just over the limit.
        let mut key = BsonDocument::new();
        key.insert(dotted(100_000), 1);
        refused(c.create_index(&key, &doc! {}), PATH_LIMIT);
        let mut key = BsonDocument::new();
        key.insert(dotted(MAX_PATH_COMPONENTS + 1), 1);
        refused(c.create_index(&key, &doc! {}), PATH_LIMIT);
        refused(
            c.create_index_json(&format!(r#"{{"{long}": 1}}"#), None),
            PATH_LIMIT,
        );
        refused(
            c.create_index(&doc! {"n": 1}, &doc! {"partialFilterExpression": by_long}),
            PATH_LIMIT,
        );
        assert_eq!(c.list_indexes().unwrap().len(), 1, "no index was created");
        still_works(&db);
    });
}

#[test]
fn deep_filters_are_refused_before_parsing() {
    let (_dir, db) = open();
    on_small_stack(|| {
        let c = db.collection("c");
        let nesting = format!("nests deeper than {MAX_QUERY_NESTING} levels");
        let operators = format!("at most {MAX_FILTER_DEPTH} levels");
        // Nested past the query documents' limit: refused before the parser looks.
        for op in ["$and", "$or", "$nor"] {
            let f = and_chain(op, 10_000);
            refused(c.count(&f), &nesting);
            refused(c.find(&f, FindOptions::default()), &nesting);
            dispose(f);
            let text = format!(
                "{}{{\"x\":1}}{}",
                format!("{{\"{op}\":[").repeat(10_000),
                "]}".repeat(10_000)
            );
            refused(c.count_json(&text), &nesting);
            refused(c.find_json(&text, FindOptions::default()), &nesting);
        }
        for op in ["$not", "$elemMatch"] {
            let f = doc! {"arr": chain(op, 10_000, doc! {"$gt": 1})};
            refused(c.count(&f), &nesting);
            dispose(f);
            // Within the nesting limit, past the operators' own limit (MongoDB's 100).
            let f = doc! {"arr": chain(op, MAX_FILTER_DEPTH + 1, doc! {"$gt": 1})};
            refused(c.count(&f), &operators);
            refused(c.delete(&f, true), &operators);
        }
        // Elsewhere a filter is read: $pull's query, partial indexes, $elemMatch projections.
        // (Deep documents are built for each use and taken apart after: copying or dropping
        // them whole would recurse in the test itself.)
        let deep = || and_chain("$and", 10_000);
        let pull = doc! {"$pull": {"arr": deep()}};
        refused(
            c.update(&doc! {"_id": 1}, &pull, UpdateOptions::default()),
            &nesting,
        );
        dispose(pull);
        let options = doc! {"partialFilterExpression": deep()};
        refused(c.create_index(&doc! {"n": 1}, &options), &nesting);
        dispose(options);
        let projected = FindOptions {
            projection: Some(doc! {"arr": {"$elemMatch": deep()}}),
            ..Default::default()
        };
        refused(c.find(&doc! {}, projected), &nesting);
        // arrayFilters, and the filters, updates and options of update_one and bulk_write
        // models (the calls take them by value and drop them without recursion).
        let with_filters = || ModifyOptions {
            array_filters: Some(vec![and_chain("$and", 10_000)]),
            ..Default::default()
        };
        refused(
            c.update_one(&doc! {}, doc! {"$set": {"arr.$[x]": 0}}, with_filters()),
            &nesting,
        );
        refused(
            c.update_many(&doc! {}, doc! {"$set": {"arr.$[x]": 0}}, with_filters()),
            &nesting,
        );
        let deep_sort = ModifyOptions {
            sort: Some(chain("a", 10_000, doc! {"b": 1})),
            ..Default::default()
        };
        refused(c.replace_one(&doc! {}, &doc! {"z": 1}, deep_sort), &nesting);
        let replacement = chain("a", 10_000, doc! {"b": 1});
        refused(
            c.replace_one(&doc! {}, &replacement, ModifyOptions::default()),
            &nesting,
        );
        dispose(replacement);
        refused(
            c.update_one(
                &doc! {},
                doc! {"$pull": {"arr": deep()}},
                ModifyOptions::default(),
            ),
            &nesting,
        );
        let models = vec![
            WriteModel::UpdateOne {
                filter: deep(),
                update: doc! {"$set": {"n": 1}}.into(),
                options: ModifyOptions::default(),
            },
            WriteModel::DeleteMany {
                filter: deep(),
                hint: None,
            },
            WriteModel::UpdateMany {
                filter: doc! {},
                update: doc! {"$set": {"arr.$[x]": 0}}.into(),
                options: with_filters(),
            },
        ];
        let r = c
            .bulk_write(models, InsertManyOptions { ordered: false })
            .expect("per-operation failures are write errors");
        assert_eq!(r.write_errors.len(), 3);
        assert!(r
            .write_errors
            .iter()
            .all(|e| e.error.to_string().contains(&nesting)));
        still_works(&db);
    });
}

#[test]
fn deep_json_bson_and_documents_are_refused_before_recursion() {
    let (_dir, db) = open();
    on_small_stack(|| {
        let c = db.collection("c");
        let doc_limit = format!("nests deeper than {MAX_NESTING} levels");
        let query_limit = format!("nests deeper than {MAX_QUERY_NESTING} levels");
        // JSON text: refused before a parser sees it.
        for levels in [MAX_QUERY_NESTING + 1, 100_000] {
            refused(Document::from_json(&deep_json(levels)), &query_limit);
            let arrays = format!("{{\"a\":{}1{}}}", "[".repeat(levels), "]".repeat(levels));
            refused(Document::from_json(&arrays), &query_limit);
            refused(c.count_json(&deep_json(levels)), &query_limit);
            refused(c.create_index_json(&deep_json(levels), None), &query_limit);
            refused(
                FindOptions::from_json(&format!(r#"{{"sort": {}}}"#, deep_json(levels))),
                &query_limit,
            );
        }
        // A document within the JSON limit but deeper than a stored document may nest.
        let d = Document::from_json(&deep_json(MAX_NESTING + 1)).expect("within JSON's limit");
        refused(c.insert(d), &doc_limit);
        // BSON bytes: the nesting is checked on the bytes, before the recursive decoder.
        for levels in [MAX_NESTING + 1, 100_000] {
            refused(Document::from_bson_bytes(&deep_bson(levels)), &doc_limit);
        }
        // A JavaScript code's scope is a document too (the bson crate decodes it by
        // recursion): {"a": {"$code": "f", "$scope": <deep>}}.
        let scope = deep_bson(50_000);
        let mut cws = Vec::new();
        let total = (4 + 4 + 2 + scope.len()) as i32;
        cws.extend_from_slice(&total.to_le_bytes());
        cws.extend_from_slice(&2i32.to_le_bytes());
        cws.extend_from_slice(b"f\0");
        cws.extend_from_slice(&scope);
        refused(
            Document::from_bson_bytes(&wrap_bson(0x0F, &cws)),
            &doc_limit,
        );
        // Documents built in Rust, handed over whole (and dropped by the library when refused).
        refused(c.insert(Document::from(deep_doc(100_000))), &doc_limit);
        refused(
            c.insert_many(vec![
                Document::from(doc! {"_id": 7}),
                Document::from(deep_doc(100_000)),
            ]),
            &doc_limit,
        );
        refused(
            c.insert(Document::from(doc! {"_id": deep_doc(100_000)})),
            &format!("nests deeper than {} levels", MAX_NESTING - 1),
        );
        let id = nexus::DocumentId::new(Bson::Int32(1)).unwrap();
        refused(
            c.replace(&id, Document::from(deep_doc(100_000))),
            &doc_limit,
        );
        refused(
            nexus::DocumentId::new(Bson::Document(deep_doc(100_000))),
            "nests deeper",
        );
        // Update operands and replacement documents.
        let deep = || deep_doc(100_000);
        let no = UpdateOptions::default();
        let set = doc! {"$set": {"v": deep()}};
        refused(c.update(&doc! {"_id": 1}, &set, no), &query_limit);
        dispose(set);
        let replacement = chain("a", 10_000, doc! {"b": 1});
        refused(c.update(&doc! {"_id": 1}, &replacement, no), &query_limit);
        dispose(replacement);
        let replacement = deep_doc(MAX_NESTING + 1);
        refused(c.update(&doc! {"_id": 1}, &replacement, no), &doc_limit);
        // Option documents handed over whole.
        let opts = FindOptions {
            projection: Some(deep()),
            ..Default::default()
        };
        refused(c.find(&doc! {}, opts), &query_limit);
        let opts = FindOptions {
            hint: Some(Bson::Document(deep())),
            ..Default::default()
        };
        refused(c.find(&doc! {}, opts), &query_limit);
        let opts = FindOneAndOptions {
            sort: Some(deep()),
            ..Default::default()
        };
        refused(c.find_one_and_delete(&doc! {}, opts), &query_limit);
        let keys = deep();
        refused(c.create_index(&keys, &doc! {}), &query_limit);
        dispose(keys);
        // A document's own conversions: to JSON is iterative, to BSON checked first.
        let doc = Document::from(deep());
        assert!(doc.to_json().starts_with("{\"a\":{\"a\":"));
        refused(doc.to_bson_bytes(), &query_limit);
        dispose(doc.into_bson());
        assert_eq!(c.count(&doc! {}).unwrap(), 1, "nothing was inserted");
        still_works(&db);
    });
}

#[test]
fn the_legal_worst_cases_run_on_a_small_stack() {
    let (_dir, db) = open();
    on_small_stack(|| {
        let c = db.collection("c");
        // Documents at the nesting limit, from JSON, from BSON bytes and built in Rust.
        let json = deep_json(MAX_NESTING - 1);
        c.insert(Document::from_json(&format!(r#"{{"_id": "j", "a": {json}}}"#)).unwrap())
            .unwrap();
        let mut bytes = deep_bson(MAX_NESTING);
        bytes = {
            // {"_id": "b", "a": <MAX_NESTING - 1 levels>}: take the inner document out.
            let inner = &bytes[7..bytes.len() - 1];
            let mut d = doc! {"_id": "b"}.to_vec().unwrap();
            d.pop();
            d.extend_from_slice(&[0x03, b'a', 0]);
            d.extend_from_slice(inner);
            d.push(0);
            let len = d.len() as i32;
            d[0..4].copy_from_slice(&len.to_le_bytes());
            d
        };
        c.insert(Document::from_bson_bytes(&bytes).unwrap())
            .unwrap();
        let mut rust = deep_doc(MAX_NESTING);
        rust.insert("_id", "r");
        c.insert(Document::from(rust)).unwrap();
        // Read back every way.
        let all: Vec<Document> = c
            .find(&doc! {}, FindOptions::default())
            .unwrap()
            .map(|d| d.unwrap())
            .collect();
        assert_eq!(all.len(), 4);
        let mut cur = c.find(&doc! {}, FindOptions::default()).unwrap();
        while let Some(text) = cur.next_json().unwrap() {
            assert!(text.starts_with('{'));
        }
        let id = c.resolve_text_id("j").unwrap();
        assert!(c.get(&id).unwrap().unwrap().to_json().len() > 500);
        // Paths of the most components, on those documents.
        let to_leaf = format!("a.{}.leaf", vec!["a"; MAX_NESTING - 2].join("."));
        assert_eq!(to_leaf.split('.').count(), MAX_PATH_COMPONENTS);
        let mut by_leaf = BsonDocument::new();
        by_leaf.insert(to_leaf.as_str(), 1);
        assert_eq!(c.count(&by_leaf).unwrap(), 2); // "j" and "b" reach a leaf there
        let set = |path: &str, v: Bson| {
            let mut fields = BsonDocument::new();
            fields.insert(path, v);
            fields
        };
        let no = UpdateOptions::default();
        let r = c
            .update(
                &doc! {"_id": "j"},
                &doc! {"$inc": set(&to_leaf, Bson::Int32(1))},
                no,
            )
            .unwrap();
        assert_eq!(r.modified, 1);
        let longest = dotted(MAX_PATH_COMPONENTS);
        c.update(
            &doc! {"_id": 1},
            &doc! {"$set": set(&longest, Bson::Int32(1))},
            no,
        )
        .unwrap();
        let mut by_longest = BsonDocument::new();
        by_longest.insert(longest.as_str(), 1);
        assert_eq!(c.count(&by_longest).unwrap(), 1);
        let renamed = format!("y.{}", dotted(MAX_PATH_COMPONENTS - 1));
        c.update(
            &doc! {"_id": 1},
            &doc! {"$rename": {longest.as_str(): renamed.as_str()}},
            no,
        )
        .unwrap();
        c.update(
            &doc! {"_id": 1},
            &doc! {"$unset": set(&renamed, Bson::String(String::new()))},
            no,
        )
        .unwrap();
        let upsert = UpdateOptions {
            upsert: true,
            ..Default::default()
        };
        let r = c
            .update(&by_longest, &doc! {"$setOnInsert": {"u": 1}}, upsert)
            .unwrap();
        assert!(r.upserted_id.is_some());
        // Projection, sort, distinct and an index on the longest path.
        let mut proj = BsonDocument::new();
        proj.insert(to_leaf.as_str(), 1);
        let opts = FindOptions {
            projection: Some(proj),
            sort: Some(by_leaf.clone()),
            ..Default::default()
        };
        assert_eq!(c.find(&doc! {}, opts).unwrap().count(), 5);
        assert_eq!(c.distinct(&to_leaf, &doc! {}).unwrap().len(), 2);
        c.create_index(&by_leaf, &doc! {}).unwrap();
        assert_eq!(c.count(&by_leaf).unwrap(), 1); // "j" was incremented to 2
                                                   // Equality with a whole deep value, and the filter operators at their limit.
        let mut value = deep_doc(MAX_NESTING - 2);
        value.insert("x", 1);
        assert_eq!(c.count(&doc! {"a": value}).unwrap(), 0);
        for op in ["$not", "$elemMatch"] {
            let f = doc! {"arr": chain(op, MAX_FILTER_DEPTH, doc! {"$gt": 1})};
            c.count(&f).unwrap();
            c.find(&f, FindOptions::default()).unwrap().for_each(drop);
        }
        for op in ["$and", "$or", "$nor"] {
            let f = and_chain(op, (MAX_QUERY_NESTING - 1) / 2);
            c.count(&f).unwrap();
        }
        // JSON text at the query documents' limit, also where the reader falls back to its
        // reference path (a duplicate key replacing a bad wrapper; bson's conversion of the
        // whole tree, which it used to take, needs more than 256 KiB at this depth), and a
        // bad wrapper at that depth (a parse error, not a crash).
        assert_eq!(c.count_json(&deep_json(MAX_QUERY_NESTING)).unwrap(), 0);
        let around = |inner: &str| {
            let levels = MAX_QUERY_NESTING - 2;
            format!("{}{inner}{}", "{\"a\":".repeat(levels), "}".repeat(levels))
        };
        let replaced = around(r#"{"x":{"$oid":"bad"},"x":1}"#);
        assert_eq!(c.count_json(&replaced).unwrap(), 0);
        let bad = around(r#"{"x":{"$oid":"bad"}}"#);
        assert!(matches!(c.count_json(&bad), Err(Error::Parse(_))));
        still_works(&db);
    });
}

/// `levels` nested `{"$abs": ...}` around `"$n"`: one nesting level each.
fn abs_chain(levels: usize) -> Bson {
    let mut e = Bson::String("$n".into());
    for _ in 0..levels {
        e = Bson::Document(doc! {"$abs": e});
    }
    e
}

/// `levels` `$lookup` stages, each running the next in its `pipeline`: three nesting levels
/// each (the stage, its object, the pipeline array).
fn lookup_chain(levels: usize) -> BsonDocument {
    let mut stage = doc! {"$match": {}};
    for _ in 0..levels {
        stage = doc! {"$lookup": {"from": "c", "pipeline": [stage], "as": "x"}};
    }
    stage
}

#[test]
fn the_deepest_legal_aggregations_run_on_a_small_stack() {
    let (_dir, db) = open();
    on_small_stack(|| {
        let c = db.collection("c");
        let run = |stage: BsonDocument| {
            c.aggregate(&[stage], nexus::AggregateOptions::default())
                .map(|cur| cur.collect::<nexus::Result<Vec<_>>>().unwrap().len())
        };
        // {"$project": {"r": <chain>}}: the stage and $project's object are two levels.
        let legal = MAX_QUERY_NESTING - 2;
        assert_eq!(run(doc! {"$project": {"r": abs_chain(legal)}}).unwrap(), 1);
        refused(
            run(doc! {"$project": {"r": abs_chain(legal + 1)}}),
            "nests deeper than",
        );
        // A value as deep as a document may be, through $literal, $mergeObjects and $group.
        let value = Bson::Document(deep_doc(MAX_NESTING));
        assert_eq!(
            run(doc! {"$project": {"r": {"$mergeObjects": [{"$literal": value.clone()}]}}})
                .unwrap(),
            1
        );
        assert_eq!(
            run(doc! {"$group": {"_id": {"$literal": value}, "n": {"$sum": 1}}}).unwrap(),
            1
        );
        // Every other nesting operator, chained to the limit (two levels per link but
        // $switch's four), and object literals.
        let chain = |levels: usize, base: &str, wrap: &dyn Fn(Bson) -> Bson| {
            let mut e = Bson::String(base.into());
            for _ in 0..levels {
                e = wrap(e);
            }
            e
        };
        // Links of two levels; the innermost may hold one more (`vars: {}`, `[e, 1]`).
        let two = (MAX_QUERY_NESTING - 2) / 2 - 1;
        for (what, e) in [
            (
                "$let",
                chain(two, "$n", &|e| {
                    Bson::Document(doc! {"$let": {"vars": {}, "in": e}})
                }),
            ),
            (
                "$cond",
                chain(two, "$n", &|e| Bson::Document(doc! {"$cond": [e, 1, 2]})),
            ),
            (
                "$map",
                chain(two, "$arr", &|e| {
                    Bson::Document(doc! {"$map": {"input": e, "in": "$$this"}})
                }),
            ),
            (
                "$add",
                chain(two, "$n", &|e| Bson::Document(doc! {"$add": [e, 1]})),
            ),
            (
                "object",
                chain(legal, "$n", &|e| Bson::Document(doc! {"a": e})),
            ),
            (
                "$switch",
                chain((MAX_QUERY_NESTING - 2) / 4 - 1, "$n", &|e| {
                    Bson::Document(doc! {"$switch": {"branches": [{"case": e, "then": 1}]}})
                }),
            ),
        ] {
            let r = run(doc! {"$project": {"r": e}});
            assert!(r.is_ok(), "{what}: {r:?}");
        }
        // Inclusion projections and $addFields into paths as deep as documents nest.
        let mut nested = doc! {"leaf": 1};
        for _ in 0..legal - 1 {
            nested = doc! {"a": nested};
        }
        assert_eq!(run(doc! {"$project": nested.clone()}).unwrap(), 1);
        // $addFields writes its paths: at most MAX_PATH_COMPONENTS, nested or dotted.
        refused(run(doc! {"$addFields": nested}), "components");
        let mut nested = doc! {"leaf": 1};
        for _ in 0..MAX_PATH_COMPONENTS - 1 {
            nested = doc! {"a": nested};
        }
        assert_eq!(run(doc! {"$addFields": nested}).unwrap(), 1);
        let mut fields = BsonDocument::new();
        fields.insert(dotted(MAX_PATH_COMPONENTS), 1);
        assert_eq!(run(doc! {"$addFields": fields.clone()}).unwrap(), 1);
        assert_eq!(run(doc! {"$project": fields}).unwrap(), 1);
        // Paths longer than documents nest are refused before anything walks them.
        let long = dotted(MAX_PATH_COMPONENTS * 100);
        let mut fields = BsonDocument::new();
        fields.insert(long.as_str(), 1);
        refused(run(doc! {"$addFields": fields.clone()}), "components");
        refused(run(doc! {"$project": fields}), "components");
        refused(
            run(doc! {"$project": {"r": format!("${long}")}}),
            "components",
        );
        refused(run(doc! {"$unwind": format!("${long}")}), "components");
        refused(run(doc! {"$unset": long.as_str()}), "components");
        // $lookup pipelines nested as deep as the stage document allows.
        let levels = (MAX_QUERY_NESTING - 1) / 3;
        assert_eq!(run(lookup_chain(levels)).unwrap(), 1);
        refused(run(lookup_chain(levels + 1)), "nests deeper than");
    });
    still_works(&db);
}
