//! Filter evaluation on stored bytes versus on a decoded document (issue 4, point 5).
//!
//! `cargo bench --bench filter_eval [N]` builds N documents (default 200,000) shaped like
//! the scan benchmark's (`bench/scan_bench.c`), encodes each to BSON bytes as the store
//! keeps them, and times one pass over all of them with each filter two ways:
//! `matches_bytes` (what scans do now: walk the bytes, decode only the values the paths
//! reach) and `matches_decoded` (decode a full owned document first, what scans did
//! before). Prints a markdown table of nanoseconds per document (best of 5 passes).
use bson::doc;
use nexus::bench_hooks::CompiledFilter;
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let bodies: Vec<Vec<u8>> = (0..n as i64)
        .map(|i| {
            doc! {
                "_id": i, "name": format!("user{i}"),
                "user": {"age": (i * 7919) % 100, "city": format!("city{}", (i * 104_729) % 1000), "score": (i % 1000) as f64 / 7.0},
                "tags": [format!("t{}", i % 7), format!("t{}", i % 11)], "active": i % 3 != 0,
            }
            .to_vec()
            .expect("encodable")
        })
        .collect();
    let filters = [
        ("equality on a nested field", doc! {"user.city": "city42"}),
        (
            "range on a nested field",
            doc! {"user.age": {"$gte": 30, "$lt": 35}},
        ),
        ("equality on an array element", doc! {"tags": "t3"}),
        (
            "$in on a top-level field",
            doc! {"name": {"$in": ["user1", "user2"]}},
        ),
    ];
    println!("| filter ({n} docs) | matches | on bytes ns/doc | decoded ns/doc | speed-up |");
    println!("|---|---:|---:|---:|---:|");
    for (name, q) in filters {
        let f = CompiledFilter::new(&q).expect("valid filter");
        let time = |eval: &dyn Fn(&[u8]) -> bool| {
            let mut best = f64::MAX;
            let mut hits = 0;
            for _ in 0..5 {
                let t = Instant::now();
                hits = bodies.iter().filter(|b| eval(b)).count();
                best = best.min(t.elapsed().as_secs_f64());
            }
            (best * 1e9 / n as f64, hits)
        };
        let (raw, h1) = time(&|b| f.matches_bytes(b));
        let (dec, h2) = time(&|b| f.matches_decoded(b));
        assert_eq!(h1, h2, "{name}: both ways must agree");
        println!(
            "| {name} | {h1} | {raw:.0} | {dec:.0} | {:.1}x |",
            dec / raw
        );
    }
}
