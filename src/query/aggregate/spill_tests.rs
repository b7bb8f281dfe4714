//! The spill path equals the in-memory path: each blocking stage run with a limit of a few
//! KiB (many runs, merged in more than one round) against the same stage with the default
//! limit, over thousands of documents with duplicate keys of mixed BSON types.

use super::spill::{Memory, FAN_IN};
use super::*;
use bson::oid::ObjectId;
use bson::{doc, Binary, DateTime, Decimal128, Regex, Timestamp};

const TINY: usize = 4 * 1024;

/// A value of one of many BSON types, a few of each (duplicates across types too: 1, 1.0
/// and NumberLong(1) are one group and sort as equals).
fn mixed(rng: &mut fastrand::Rng) -> Bson {
    match rng.u8(0..16) {
        0 => Bson::Int32(rng.i32(0..20)),
        1 => Bson::Int64(rng.i64(0..20)),
        2 => Bson::Double(f64::from(rng.i32(0..20)) / 2.0),
        3 => Bson::String(format!("s{}", rng.u8(0..15))),
        4 => Bson::Null,
        5 => Bson::Boolean(rng.bool()),
        6 => Bson::Array(vec![Bson::Int32(rng.i32(0..5)), Bson::String("x".into())]),
        7 => Bson::Document(doc! {"a": rng.i32(0..4)}),
        8 => Bson::DateTime(DateTime::from_millis(rng.i64(0..5) * 1000)),
        9 => Bson::ObjectId(ObjectId::from_bytes([rng.u8(0..3); 12])),
        10 => Bson::Decimal128(Decimal128::from_bytes([rng.u8(0..2); 16])),
        11 => Bson::Binary(Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: vec![rng.u8(0..3); 3],
        }),
        12 => Bson::RegularExpression(Regex {
            pattern: format!("p{}", rng.u8(0..3)).try_into().unwrap(),
            options: "i".try_into().unwrap(),
        }),
        13 => Bson::Timestamp(Timestamp {
            time: rng.u32(0..3),
            increment: 1,
        }),
        14 => Bson::MinKey,
        _ => Bson::MaxKey,
    }
}

/// `n` documents: `_id` in order, `k` a mixed key (sometimes missing), `v` a number of
/// mixed type (sometimes a string or missing), `pad` to make them weigh something.
fn dataset(n: usize) -> Vec<Document> {
    let mut rng = fastrand::Rng::with_seed(21);
    (0..n)
        .map(|i| {
            let mut d = doc! {"_id": i64::try_from(i).unwrap()};
            if rng.u8(0..20) != 0 {
                d.insert("k", mixed(&mut rng));
            }
            match rng.u8(0..10) {
                0 => {}
                1 => {
                    d.insert("v", "text");
                }
                2 => {
                    d.insert("v", rng.f64() * 100.0);
                }
                3 => {
                    d.insert("v", rng.i64(-1000..1000));
                }
                _ => {
                    d.insert("v", rng.i32(-1000..1000));
                }
            }
            d.insert("g", i32::from(rng.u8(0..7)));
            d.insert("pad", "p".repeat(rng.usize(0..40)));
            d
        })
        .collect()
}

fn run_mem(docs: &[Document], stages: &[Document], mem: &Memory) -> Result<Vec<Document>> {
    let (p, _) = Pipeline::parse(stages)?;
    let mut src = docs.iter().cloned().map(Ok);
    let out = p.run_source(&mut src, &[], &NoForeign, mem)?;
    out.into_iter_owned()?.collect()
}

/// Runs `stages` in memory and with the tiny limit; asserts equal results and that the
/// tiny run spilled (more than `min_runs` runs). Returns the results.
fn same_with_spill(docs: &[Document], stages: &[Document], min_runs: u64) -> Vec<Document> {
    let big = Memory::default();
    let want = run_mem(docs, stages, &big).unwrap();
    assert_eq!(big.runs_written(), 0, "{stages:?} spilled at 100 MiB");
    let tiny = Memory::new(TINY, true, None);
    let got = run_mem(docs, stages, &tiny).unwrap();
    assert!(
        tiny.runs_written() > min_runs,
        "{stages:?}: only {} runs",
        tiny.runs_written()
    );
    assert_eq!(got.len(), want.len(), "{stages:?}");
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!(
            same(&Bson::Document(a.clone()), &Bson::Document(b.clone())),
            "{stages:?}: row {i} differs:\n{a:?}\n{b:?}"
        );
    }
    want
}

/// Equal, but for doubles within a relative 1e-12: a spilled `$sum` / `$avg` adds partial
/// sums, and floating-point addition is not associative.
fn same(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => {
            x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
        }
        (Bson::Document(x), Bson::Document(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && same(v1, v2))
        }
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v1, v2)| same(v1, v2))
        }
        _ => a == b,
    }
}

#[test]
fn the_comparison_of_results_can_fail() {
    assert!(same(&Bson::Double(1.0), &Bson::Double(1.0 + 1e-15)));
    assert!(!same(&Bson::Double(1.0), &Bson::Double(1.0 + 1e-9)));
    assert!(!same(&Bson::Int32(1), &Bson::Double(1.0)));
    assert!(!same(
        &Bson::Document(doc! {"a": 1, "b": 2}),
        &Bson::Document(doc! {"b": 2, "a": 1})
    ));
}

#[test]
fn sort_spills_and_merges_in_rounds_stably() {
    let docs = dataset(4000);
    let r = same_with_spill(&docs, &[doc! {"$sort": {"k": 1}}], FAN_IN as u64 * 2);
    assert_eq!(r.len(), 4000);
    // Equal keys keep their input (`_id`) order, checked apart from the in-memory path.
    let spec = SortSpec::parse(&doc! {"k": 1}).unwrap();
    for w in r.windows(2) {
        let (a, b) = (spec.key_of(&w[0]), spec.key_of(&w[1]));
        let o = spec.compare_keys(&a, &b);
        assert_ne!(
            o,
            std::cmp::Ordering::Greater,
            "{:?} before {:?}",
            w[0],
            w[1]
        );
        if o == std::cmp::Ordering::Equal {
            assert!(w[0].get_i64("_id").unwrap() < w[1].get_i64("_id").unwrap());
        }
    }
    same_with_spill(&docs, &[doc! {"$sort": {"k": -1, "v": 1}}], FAN_IN as u64);
    same_with_spill(
        &docs,
        &[doc! {"$sort": {"v": -1}}, doc! {"$project": {"pad": 0}}],
        FAN_IN as u64,
    );
}

#[test]
fn sort_with_limit_keeps_the_first_rows() {
    let docs = dataset(3000);
    let stages = [
        doc! {"$sort": {"k": 1}},
        doc! {"$skip": 7},
        doc! {"$limit": 25},
    ];
    // A small top-k needs no spill even with the tiny limit.
    let tiny = Memory::new(64 * 1024, false, None);
    let got = run_mem(&docs, &stages, &tiny).unwrap();
    let want = run_mem(&docs, &stages, &Memory::default()).unwrap();
    assert_eq!(got, want);
    assert_eq!(got.len(), 25);
    let all = run_mem(&docs, &[doc! {"$sort": {"k": 1}}], &Memory::default()).unwrap();
    assert_eq!(got, all[7..32].to_vec());
    // A large one spills and cuts each run.
    let big_k = [doc! {"$sort": {"k": -1}}, doc! {"$limit": 1500}];
    let r = same_with_spill(&docs, &big_k, 2);
    assert_eq!(r.len(), 1500);
}

#[test]
fn group_accumulators_spill_and_combine() {
    let docs = dataset(5000);
    let group = doc! {"$group": {
        "_id": "$k",
        "sum": {"$sum": "$v"},
        "avg": {"$avg": "$v"},
        "min": {"$min": "$v"},
        "max": {"$max": "$v"},
        "first": {"$first": "$v"},
        "last": {"$last": "$v"},
        "push": {"$push": "$_id"},
        "set": {"$addToSet": "$g"},
        "c": {"$count": {}},
    }};
    let r = same_with_spill(&docs, std::slice::from_ref(&group), FAN_IN as u64);
    // 1, 1.0 and NumberLong(1) are one group.
    let ones: Vec<_> = r
        .iter()
        .filter(|d| {
            matches!(
                d.get("_id"),
                Some(Bson::Int32(1) | Bson::Int64(1) | Bson::Double(1.0))
            )
        })
        .collect();
    assert_eq!(ones.len(), 1, "{ones:?}");
    // Every document is pushed once, in input order within its group.
    let mut ids: Vec<i64> = Vec::new();
    for d in &r {
        let push = d.get_array("push").unwrap();
        let mine: Vec<i64> = push.iter().map(|v| v.as_i64().unwrap()).collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        ids.extend(mine);
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..5000).collect::<Vec<i64>>());
    // Few big groups (each spill holds some of every group).
    same_with_spill(
        &docs,
        &[
            doc! {"$group": {"_id": "$g", "p": {"$push": "$pad"}, "f": {"$first": "$k"}, "l": {"$last": "$k"}, "s": {"$addToSet": "$k"}}},
        ],
        4,
    );
    // One group.
    same_with_spill(
        &docs,
        &[doc! {"$group": {"_id": null, "p": {"$push": "$v"}, "n": {"$sum": 1}}}],
        4,
    );
}

#[test]
fn other_blocking_stages_spill() {
    let docs = dataset(3000);
    same_with_spill(&docs, &[doc! {"$sortByCount": "$k"}], 2);
    same_with_spill(
        &docs,
        &[doc! {"$bucket": {
            "groupBy": "$g",
            "boundaries": [0, 2, 4],
            "default": "rest",
            "output": {"ids": {"$push": "$_id"}, "n": {"$sum": 1}},
        }}],
        2,
    );
    same_with_spill(
        &docs,
        &[doc! {"$facet": {
            "byG": [{"$group": {"_id": "$g", "n": {"$sum": 1}}}],
            "top": [{"$sort": {"v": -1}}, {"$limit": 3}],
            "count": [{"$count": "n"}],
        }}],
        2,
    );
    same_with_spill(
        &docs,
        &[
            doc! {"$unwind": "$k"},
            doc! {"$group": {"_id": "$k", "n": {"$sum": 1}}},
            doc! {"$sort": {"n": -1, "_id": 1}},
        ],
        2,
    );
    // The results themselves past the limit are spooled to a run.
    same_with_spill(&docs, &[doc! {"$project": {"pad": 1}}], 0);
}

#[test]
fn sample_spills_and_returns_distinct_inputs() {
    let docs = dataset(3000);
    let tiny = Memory::new(TINY, true, None);
    let r = run_mem(&docs, &[doc! {"$sample": {"size": 2000}}], &tiny).unwrap();
    assert!(tiny.runs_written() > 2);
    assert_eq!(r.len(), 2000);
    let mut ids: Vec<i64> = r.iter().map(|d| d.get_i64("_id").unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2000);
}

#[test]
fn without_allow_disk_use_past_the_limit_fails() {
    let docs = dataset(2000);
    let no = Memory::new(TINY, false, None);
    for (stage, words) in [
        (
            doc! {"$sort": {"k": 1}},
            "Sort exceeded memory limit of 4096 bytes",
        ),
        (
            doc! {"$group": {"_id": "$_id"}},
            "Exceeded memory limit for $group",
        ),
        (
            doc! {"$sortByCount": "$_id"},
            "Exceeded memory limit for $sortByCount",
        ),
        (
            doc! {"$match": {}},
            "Exceeded memory limit for the aggregate results",
        ),
    ] {
        let e = run_mem(&docs, std::slice::from_ref(&stage), &no).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{stage:?}: {e:?}");
        let text = e.to_string();
        assert!(
            text.contains(words) && text.contains("allowDiskUse:true"),
            "{text}"
        );
    }
    assert_eq!(no.runs_written(), 0);
    // Within the limit it works.
    let r = run_mem(
        &docs,
        &[doc! {"$group": {"_id": "$g", "n": {"$sum": 1}}}],
        &no,
    )
    .unwrap();
    assert_eq!(r.len(), 7);
}

/// The open descriptors of this process on deleted files in `dir` (spill runs).
#[cfg(target_os = "linux")]
fn open_spills(dir: &std::path::Path) -> usize {
    let dir = std::fs::canonicalize(dir).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.starts_with(&dir))
        .count()
}

#[test]
fn runs_go_to_the_given_directory_and_are_gone_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dataset(3000);
    let mem = Memory::new(TINY, true, Some(dir.path().to_path_buf()));
    let (p, _) = Pipeline::parse(&[doc! {"$sort": {"v": 1}}]).unwrap();
    let mut src = docs.iter().cloned().map(Ok);
    let out = p.run_source(&mut src, &[], &NoForeign, &mem).unwrap();
    let mut it = out.into_iter_owned().unwrap();
    for _ in 0..100 {
        it.next().unwrap().unwrap();
    }
    // Unnamed files: nothing to see in the directory, even while one is read.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    #[cfg(target_os = "linux")]
    assert_eq!(open_spills(dir.path()), 1, "the results' run is open");
    drop(it);
    #[cfg(target_os = "linux")]
    assert_eq!(open_spills(dir.path()), 0);
    assert!(mem.runs_written() > FAN_IN as u64);
    // An error half-way (an expression failing) leaves nothing open either.
    let (p, _) = Pipeline::parse(&[
        doc! {"$sort": {"v": 1}},
        doc! {"$project": {"x": {"$divide": [1, {"$subtract": ["$_id", 2500]}]}}},
    ])
    .unwrap();
    let mut src = docs.iter().cloned().map(Ok);
    // The sort spills; $divide by zero fails on _id 2500 while the merge is open.
    let runs = mem.runs_written();
    let e = p
        .run_source(&mut src, &[], &NoForeign, &mem)
        .err()
        .expect("a division by zero");
    assert!(e.to_string().contains("divide by zero"), "{e}");
    assert!(mem.runs_written() > runs + 2);
    #[cfg(target_os = "linux")]
    assert_eq!(open_spills(dir.path()), 0);
}
