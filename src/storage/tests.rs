//! Storage-level tests run against both backends: a model-based test that drives a backend
//! and a `BTreeMap` with the same random operations (puts of small and overflow-sized
//! values, deletes, table drops and renames, checkpoints, reopens) and compares every view;
//! snapshot isolation; rollback; and the WASP-only properties (steady file size, reader pins,
//! compaction, fsck).
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // test arithmetic on small values

use super::fault::Faults;
use super::memlog::MemLogStorage;
use super::wasp::{WaspConfig, WaspStorage};
use super::{Bytes, ReadView, Storage, SyncMode};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug)]
enum Kind {
    Wal,
    /// WASP with its readers' memory map (the default).
    Wasp,
    /// WASP reading every page with `pread`.
    WaspPread,
}

fn small_cfg() -> WaspConfig {
    WaspConfig {
        page_size: 4096,
        cache_bytes: 256 * 1024,
        checkpoint_log_bytes: 256 * 1024,
        ..WaspConfig::default()
    }
}

fn open(kind: Kind, path: &Path) -> Box<dyn Storage> {
    let faults = Faults::default();
    match kind {
        Kind::Wal => {
            Box::new(MemLogStorage::open(path, true, false, T, faults, Default::default()).unwrap())
        }
        Kind::Wasp => {
            Box::new(WaspStorage::open(path, true, false, T, faults, small_cfg()).unwrap())
        }
        Kind::WaspPread => {
            let cfg = WaspConfig {
                mmap: false,
                ..small_cfg()
            };
            Box::new(WaspStorage::open(path, true, false, T, faults, cfg).unwrap())
        }
    }
}

type Model = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

fn compare(view: &dyn ReadView, model: &Model, ctx: &str) {
    let names: Vec<String> = view.tables().into_iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        model.keys().cloned().collect::<Vec<_>>(),
        "{ctx}: tables"
    );
    for (name, rows) in model {
        assert_eq!(
            view.count(name),
            rows.len() as u64,
            "{ctx}: count of {name}"
        );
        let bytes: usize = rows.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert_eq!(
            view.table_bytes(name),
            bytes as u64,
            "{ctx}: bytes of {name}"
        );
        // full scan in pages of 7
        let mut got = Vec::new();
        let mut after: Option<Bytes> = None;
        loop {
            let batch = view.scan(name, after.as_deref(), 7);
            if batch.is_empty() {
                break;
            }
            after = batch.last().map(|(k, _)| k.clone());
            got.extend(batch.into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())));
        }
        let want: Vec<(Vec<u8>, Vec<u8>)> =
            rows.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert!(
            got == want,
            "{ctx}: scan of {name} differs ({} vs {} rows)",
            got.len(),
            want.len()
        );
        for (k, v) in rows.iter().take(20) {
            assert_eq!(view.get(name, k).as_deref(), Some(&v[..]), "{ctx}: get");
        }
        assert!(view.get(name, b"\xffnot there").is_none());
    }
    assert!(view.fault().is_none(), "{ctx}: {:?}", view.fault());
}

fn value(rng: &mut fastrand::Rng, big: bool) -> Vec<u8> {
    let n = if big {
        rng.usize(2000..40_000)
    } else {
        rng.usize(0..300)
    };
    let b = rng.u8(..);
    (0..n).map(|i| b.wrapping_add(i as u8)).collect()
}

fn model_run(kind: Kind, seed: u64, steps: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut model: Model = BTreeMap::new();
    let mut s = open(kind, &path);
    let tables = ["a", "b", "c"];
    for step in 0..steps {
        let ctx = format!("{kind:?} seed {seed} step {step}");
        let roll = rng.u32(0..1000);
        if roll < 5 {
            s.close().unwrap();
            drop(s);
            s = open(kind, &path);
            compare(&*s.read(), &model, &format!("{ctx} after reopen"));
            continue;
        }
        if roll < 12 {
            s.checkpoint(T).unwrap();
            continue;
        }
        if roll < 14 && matches!(kind, Kind::Wasp | Kind::WaspPread) {
            s.compact(T).unwrap();
            let r = s.check(T).unwrap();
            assert_eq!(r["ok"], true, "{ctx}: {r}");
            continue;
        }
        let mut t = s.begin_write(T).unwrap();
        let mut staged = model.clone();
        let ops = rng.usize(1..40);
        for _ in 0..ops {
            let name = tables[rng.usize(..tables.len())];
            let r = rng.u32(0..1000);
            if !staged.contains_key(name) {
                t.create_table(name, "{}").unwrap();
                staged.insert(name.into(), BTreeMap::new());
            } else if r < 4 {
                t.drop_table(name).unwrap();
                staged.remove(name);
            } else if r < 6 {
                let to = format!("{name}{}", rng.u8(0..3));
                if !staged.contains_key(&to) && to.len() < 3 {
                    t.rename_table(name, &to).unwrap();
                    let rows = staged.remove(name).unwrap();
                    staged.insert(to, rows);
                }
            } else if r < 350 {
                let k = format!("k{:05}", rng.u32(0..3000)).into_bytes();
                let existed = staged[name].contains_key(&k);
                assert_eq!(t.delete(name, &k).unwrap(), existed, "{ctx}");
                staged.get_mut(name).unwrap().remove(&k);
            } else {
                let k = format!("k{:05}", rng.u32(0..3000)).into_bytes();
                let v = value(&mut rng, r > 990);
                t.put(name, Bytes::copy_from_slice(&k), Bytes::copy_from_slice(&v))
                    .unwrap();
                staged.get_mut(name).unwrap().insert(k, v);
            }
        }
        if rng.u32(0..10) == 0 {
            drop(t); // rollback
            compare(&*s.read(), &model, &format!("{ctx} after rollback"));
        } else {
            compare(t.as_read(), &staged, &format!("{ctx} inside txn"));
            let before = s.read();
            t.commit(SyncMode::Off).unwrap();
            compare(&*before, &model, &format!("{ctx} old snapshot"));
            model = staged;
        }
        if step % 50 == 0 {
            compare(&*s.read(), &model, &ctx);
        }
    }
    compare(&*s.read(), &model, "end");
    if matches!(kind, Kind::Wasp | Kind::WaspPread) {
        let r = s.check(T).unwrap();
        assert_eq!(r["ok"], true, "{r}");
    }
    s.close().unwrap();
    drop(s);
    let s = open(kind, &path);
    compare(&*s.read(), &model, "final reopen");
}

#[test]
fn model_wal() {
    for seed in 0..3 {
        model_run(Kind::Wal, seed, 400);
    }
}

#[test]
fn model_wasp() {
    for seed in 0..6 {
        model_run(Kind::Wasp, seed, 600);
    }
}

#[test]
fn model_wasp_pread() {
    for seed in 0..3 {
        model_run(Kind::WaspPread, seed, 600);
    }
}

#[test]
fn snapshot_sees_its_epoch_across_checkpoints_wasp() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(Kind::Wasp, &dir.path().join("s.db"));
    let mut t = s.begin_write(T).unwrap();
    t.create_table("t", "{}").unwrap();
    for i in 0..2000u32 {
        t.put(
            "t",
            Bytes::copy_from_slice(&i.to_be_bytes()),
            Bytes::from(&b"old"[..]),
        )
        .unwrap();
    }
    t.commit(SyncMode::Off).unwrap();
    s.checkpoint(T).unwrap();
    let snap = s.read();
    for round in 0..5 {
        let mut t = s.begin_write(T).unwrap();
        for i in 0..2000u32 {
            t.put(
                "t",
                Bytes::copy_from_slice(&i.to_be_bytes()),
                Bytes::from(format!("new{round}").into_bytes()),
            )
            .unwrap();
        }
        t.commit(SyncMode::Off).unwrap();
        s.checkpoint(T).unwrap();
    }
    let all = snap.scan("t", None, usize::MAX);
    assert_eq!(all.len(), 2000);
    assert!(
        all.iter().all(|(_, v)| &v[..] == b"old"),
        "old snapshot changed"
    );
    assert!(snap.fault().is_none());
    drop(snap);
    s.checkpoint(T).unwrap();
    let r = s.check(T).unwrap();
    assert_eq!(r["ok"], true, "{r}");
}

/// Deletes every entry of table `t` but the first `keep`, commits, and compacts the file.
fn keep_first_and_compact(s: &dyn Storage, keep: usize) {
    let mut t = s.begin_write(T).unwrap();
    let keys: Vec<Bytes> = t
        .scan("t", None, usize::MAX)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for k in keys.iter().skip(keep) {
        t.delete("t", k).unwrap();
    }
    t.commit(SyncMode::Off).unwrap();
    s.compact(T).unwrap();
}

#[test]
fn churn_reaches_a_steady_file_size_wasp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("churn.db");
    let s = open(Kind::Wasp, &path);
    let mut rng = fastrand::Rng::with_seed(7);
    let mut t = s.begin_write(T).unwrap();
    t.create_table("t", "{}").unwrap();
    for i in (0..5000).step_by(2) {
        let k = format!("{i:06}").into_bytes();
        t.put(
            "t",
            Bytes::copy_from_slice(&k),
            Bytes::from(&[b'x'; 200][..]),
        )
        .unwrap();
    }
    t.commit(SyncMode::Off).unwrap();
    let mut sizes = Vec::new();
    // Each operation flips a random key between present and absent: the live data stays
    // near 2500 documents while every page keeps being rewritten.
    for round in 0..60 {
        let mut t = s.begin_write(T).unwrap();
        for _ in 0..500 {
            let k = format!("{:06}", rng.u32(0..5000)).into_bytes();
            if t.get("t", &k).is_none() {
                let v = vec![b'x'; rng.usize(10..400)];
                t.put("t", Bytes::copy_from_slice(&k), Bytes::copy_from_slice(&v))
                    .unwrap();
            } else {
                t.delete("t", &k).unwrap();
            }
        }
        t.commit(SyncMode::Off).unwrap();
        s.checkpoint(T).unwrap();
        if round >= 10 {
            sizes.push(std::fs::metadata(&path).unwrap().len());
        }
    }
    let first = sizes[0] as f64;
    let last = *sizes.last().unwrap() as f64;
    assert!(last < first * 1.25, "file keeps growing: {sizes:?}");
    let r = s.check(T).unwrap();
    assert_eq!(r["ok"], true, "{r}");
    // Delete everything: compaction gives the space back.
    keep_first_and_compact(&*s, 50);
    let small = std::fs::metadata(&path).unwrap().len();
    assert!(
        small < sizes[0] / 4,
        "compact left {small} bytes (was {})",
        sizes[0]
    );
    let r = s.check(T).unwrap();
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(s.read().count("t"), 50);
}

#[test]
fn pinned_reader_delays_reuse_wasp() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(Kind::Wasp, &dir.path().join("pin.db"));
    let mut t = s.begin_write(T).unwrap();
    t.create_table("t", "{}").unwrap();
    for i in 0..500u32 {
        t.put(
            "t",
            Bytes::copy_from_slice(&i.to_be_bytes()),
            Bytes::from(&[1u8; 100][..]),
        )
        .unwrap();
    }
    t.commit(SyncMode::Off).unwrap();
    s.checkpoint(T).unwrap();
    let pinned = s.read();
    for round in 0..4u8 {
        let mut t = s.begin_write(T).unwrap();
        for i in 0..500u32 {
            t.put(
                "t",
                Bytes::copy_from_slice(&i.to_be_bytes()),
                Bytes::copy_from_slice(&[round + 2; 100]),
            )
            .unwrap();
        }
        t.commit(SyncMode::Off).unwrap();
        s.checkpoint(T).unwrap();
        assert!(pinned
            .scan("t", None, usize::MAX)
            .iter()
            .all(|(_, v)| v[0] == 1));
    }
    let st = s.stats();
    assert!(st["pending_free_pages"].as_u64().unwrap() > 0, "{st}");
    assert_eq!(st["readers_holding_old_snapshots"], 1, "{st}");
    drop(pinned);
    s.checkpoint(T).unwrap();
    s.checkpoint(T).unwrap();
    let st = s.stats();
    assert_eq!(st["readers_holding_old_snapshots"], 0, "{st}");
}

#[test]
fn large_values_round_trip_wasp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    let s = open(Kind::Wasp, &path);
    let big: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut t = s.begin_write(T).unwrap();
    t.create_table("t", "{}").unwrap();
    t.put("t", Bytes::from(&b"big"[..]), Bytes::copy_from_slice(&big))
        .unwrap();
    t.commit(SyncMode::Off).unwrap();
    s.checkpoint(T).unwrap();
    assert_eq!(s.read().get("t", b"big").unwrap().len(), big.len());
    s.close().unwrap();
    drop(s);
    let s = open(Kind::Wasp, &path);
    assert!(s.read().get("t", b"big").as_deref() == Some(&big[..]));
    let r = s.check(T).unwrap();
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["pages_overflow"].as_u64().unwrap() >= 4096, "{r}");
    let _ = Arc::new(());
}

/// A transaction whose log record would pass the checkpoint trigger is committed by a
/// checkpoint instead: the log does not grow, and a crash at any I/O of that commit (then
/// power loss) leaves the earlier commit and either all of the transaction or none of it.
#[test]
fn large_transaction_commits_by_checkpoint_wasp() {
    use super::fault::FaultPlan;
    let key = |i: u32| Bytes::from(format!("k{i:06}"));
    let value = |i: u32| Bytes::from(vec![(i % 251) as u8; 200]);
    let big_txn = |s: &dyn Storage| {
        let mut t = s.begin_write(T)?;
        for i in 0..3000 {
            t.put("t", key(i), value(i))?;
        }
        t.commit(SyncMode::Off)
    };
    let setup = |path: &Path, faults: super::fault::Faults| {
        let s = WaspStorage::open(path, true, false, T, faults, small_cfg()).unwrap();
        let mut t = s.begin_write(T).unwrap();
        t.create_table("t", "{}").unwrap();
        t.put("t", Bytes::from_static(b"before"), Bytes::from_static(b"1"))
            .unwrap();
        t.commit(SyncMode::Full).unwrap();
        s
    };

    // Without faults: no log record, one more checkpoint, everything there after reopening.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let s = setup(&path, Faults::default());
    let checkpoints = s.stats()["checkpoints"].as_u64().unwrap();
    big_txn(&s).unwrap();
    assert_eq!(s.stats()["checkpoints"].as_u64().unwrap(), checkpoints + 1);
    // The log is recycled (not cut): its current lap ends right after its header.
    let log_end = s.stats()["log_bytes"].as_u64().unwrap();
    assert_eq!(
        log_end,
        crate::storage::log::LOG2_START as u64,
        "the log's current lap holds no record"
    );
    drop(s);
    let s = open(Kind::Wasp, &path);
    assert_eq!(s.read().count("t"), 3001);
    assert!(s.read().get("t", b"k002999").as_deref() == Some(&value(2999)[..]));
    drop(s);

    // A crash at the n-th I/O of the commit, for every n until the commit gets through.
    for n in 0.. {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let faults = Faults::default();
        let s = setup(&path, faults.clone());
        *faults.lock() = FaultPlan {
            crash_after_ios: Some(n),
            track_unsynced: true,
            ..FaultPlan::default()
        };
        let committed = big_txn(&s).is_ok();
        drop(s);
        faults.lock().simulate_power_loss().unwrap();
        let s = open(Kind::Wasp, &path);
        let view = s.read();
        assert!(view.get("t", b"before").is_some(), "crash at I/O {n}");
        let count = view.count("t");
        assert!(
            count == 1 || count == 3001,
            "crash at I/O {n}: {count} rows, the transaction was torn"
        );
        if committed {
            assert_eq!(
                count, 3001,
                "crash at I/O {n}: an acknowledged commit was lost"
            );
        }
        let r = s.check(T).unwrap();
        assert_eq!(r["ok"], true, "crash at I/O {n}: {r}");
        if committed {
            assert!(n > 3, "the commit took a few I/Os: {n}");
            break;
        }
    }
}

/// Readers searching pages through the memory map while the writer grows the file (remaps:
/// unit tests map 64 KiB at first), checkpoints, and compacts it (truncations): every view
/// stays consistent and nothing touches memory past the file's end (which would be a
/// `SIGBUS` and kill the test process).
#[test]
fn mapped_readers_survive_growth_and_compaction_wasp() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.db");
    let s: Arc<dyn Storage> = Arc::from(open(Kind::Wasp, &path));
    let len = || std::fs::metadata(&path).unwrap().len();
    let (mut shrinks, mut largest) = (0, 0);
    let value_of = |k: &[u8]| -> Vec<u8> { k.repeat(1 + (k[k.len() - 1] as usize % 40)) };
    let mut t = s.begin_write(T).unwrap();
    t.create_table("t", "{}").unwrap();
    t.commit(SyncMode::Off).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (s, stop) = (Arc::clone(&s), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(r);
                let mut views = 0;
                while !stop.load(Ordering::Relaxed) || views < 20 {
                    let v = s.read();
                    let rows = v.scan("t", None, usize::MAX);
                    assert_eq!(rows.len() as u64, v.count("t"));
                    for (k, val) in &rows {
                        assert_eq!(&val[..], &value_of(k)[..]);
                    }
                    for _ in 0..50 {
                        let k = format!("{:06}", rng.u32(0..20_000)).into_bytes();
                        if let Some(val) = v.get("t", &k) {
                            assert_eq!(&val[..], &value_of(&k)[..]);
                        }
                    }
                    assert!(v.fault().is_none(), "{:?}", v.fault());
                    views += 1;
                }
            })
        })
        .collect();
    // Until the file was cut at least three times (a compaction cannot shrink past pages an
    // older view still pins, so not every round does).
    for round in 0..60u32 {
        if round >= 6 && shrinks >= 3 {
            break;
        }
        // Grow: thousands of entries over several checkpoints.
        for batch in 0..4u32 {
            let mut t = s.begin_write(T).unwrap();
            for i in 0..1000 {
                let k = format!("{:06}", (round * 4 + batch) * 1000 % 20_000 + i).into_bytes();
                t.put("t", Bytes::from(k.clone()), Bytes::from(value_of(&k)))
                    .unwrap();
            }
            t.commit(SyncMode::Off).unwrap();
            s.checkpoint(T).unwrap();
        }
        let grown = len();
        largest = largest.max(grown);
        // Shrink: delete most of it and compact (the file is cut while readers read).
        keep_first_and_compact(&*s, 100);
        shrinks += usize::from(len() < grown);
    }
    stop.store(true, Ordering::Relaxed);
    // The file outgrew the first map many times over, and was cut while readers read.
    assert!(largest > 4 * 64 * 1024, "{largest}");
    assert!(shrinks >= 3, "{shrinks}");
    for r in readers {
        r.join().unwrap();
    }
    let r = s.check(T).unwrap();
    assert_eq!(r["ok"], true, "{r}");
}
