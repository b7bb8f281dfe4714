//! Model-based property test of the WASP engine as the layers above use it: a plain table
//! (key order) and a clustered one (the order keys were first put), written in transactions
//! that commit or roll back, with checkpoints, compaction, snapshots held across commits and
//! checkpoints, clean and unclean reopens (log replay); every view must equal a model map.
//! `src/storage/tests.rs` runs a longer seeded model of the same kind; this one adds range
//! scans from random keys, batched lookups by record id, held snapshots, and shrinking.

use super::{WaspConfig, WaspStorage};
use crate::storage::fault::Faults;
use crate::storage::{Bytes, ReadView, Storage, SyncMode, WriteTxn};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);
const PLAIN: &str = "p";
const CLUSTERED: &str = "c";

/// One table's model: key -> (record id, value). The record id orders a clustered table's
/// scan (first put of a key; a replace keeps it, a put after a delete takes a new one).
#[derive(Clone, Default, Debug)]
struct Table {
    rows: BTreeMap<Vec<u8>, (u64, Vec<u8>)>,
    next_rid: u64,
}

impl Table {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let rid = match self.rows.get(&key) {
            Some((rid, _)) => *rid,
            None => {
                self.next_rid += 1;
                self.next_rid
            }
        };
        self.rows.insert(key, (rid, value));
    }

    /// The entries in the order a scan returns them.
    fn in_scan_order(&self, clustered: bool) -> Vec<(&Vec<u8>, &Vec<u8>)> {
        let mut rows: Vec<_> = self.rows.iter().map(|(k, (rid, v))| (*rid, k, v)).collect();
        if clustered {
            rows.sort_by_key(|(rid, _, _)| *rid);
        }
        rows.into_iter().map(|(_, k, v)| (k, v)).collect()
    }
}

#[derive(Clone, Default, Debug)]
struct Model {
    plain: Table,
    clustered: Table,
}

impl Model {
    fn table(&mut self, clustered: bool) -> &mut Table {
        if clustered {
            &mut self.clustered
        } else {
            &mut self.plain
        }
    }
}

/// A step. `clustered` picks the table; keys are numbers (see [`key`]).
#[derive(Debug, Clone)]
enum Op {
    Put {
        clustered: bool,
        key: u16,
        len: usize,
        fill: u8,
    },
    Delete {
        clustered: bool,
        key: u16,
    },
    /// In the open transaction's view (or the committed one): up to `limit` entries after
    /// `after`.
    Scan {
        clustered: bool,
        after: Option<u16>,
        limit: usize,
    },
    /// Batched lookups; each key with no record id, its own, or an arbitrary (stale) one.
    GetMany {
        clustered: bool,
        keys: Vec<(u16, RidHint)>,
    },
    Commit,
    Rollback,
    /// Keeps a read snapshot of the committed state; checked at every later step until the
    /// next reopen.
    Pin,
    /// Commits the open transaction, then checkpoints.
    Checkpoint,
    /// Commits the open transaction, then compacts and runs fsck.
    Compact,
    /// Drops the open transaction (rolls it back), then reopens: `clean` closes first
    /// (checkpoint), else the engine is dropped and the reopen replays the log.
    Reopen {
        clean: bool,
    },
}

#[derive(Debug, Clone, Copy)]
enum RidHint {
    None,
    Own,
    Other(u64),
}

fn key(k: u16) -> Vec<u8> {
    // Varied lengths, ordered like the numbers.
    let mut key = format!("k{k:04}").into_bytes();
    key.resize(5 + usize::from(k % 4) * 29, b'.');
    key
}

fn value(len: usize, fill: u8) -> Vec<u8> {
    (0..len)
        .map(|i| fill.wrapping_add(i.to_le_bytes()[0]))
        .collect()
}

fn op() -> impl Strategy<Value = Op> {
    let k = || 0u16..500;
    let len = prop_oneof![12 => 0usize..80, 4 => 80usize..1_200, 1 => 2_000usize..20_000];
    let hint = prop_oneof![
        Just(RidHint::None),
        Just(RidHint::Own),
        (0u64..600).prop_map(RidHint::Other)
    ];
    prop_oneof![
        40 => (any::<bool>(), k(), len, any::<u8>())
            .prop_map(|(clustered, key, len, fill)| Op::Put { clustered, key, len, fill }),
        15 => (any::<bool>(), k()).prop_map(|(clustered, key)| Op::Delete { clustered, key }),
        6 => (any::<bool>(), proptest::option::of(k()), 1usize..40)
            .prop_map(|(clustered, after, limit)| Op::Scan { clustered, after, limit }),
        4 => (any::<bool>(), proptest::collection::vec((k(), hint), 0..20))
            .prop_map(|(clustered, keys)| Op::GetMany { clustered, keys }),
        6 => Just(Op::Commit),
        2 => Just(Op::Rollback),
        1 => Just(Op::Pin),
        2 => Just(Op::Checkpoint),
        1 => Just(Op::Compact),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

fn open(path: &Path) -> WaspStorage {
    // Small pages, cache and log: splits, overflow chains, evictions and checkpoints by log
    // size all happen with a few hundred entries.
    let cfg = WaspConfig {
        page_size: 4096,
        cache_bytes: 128 * 1024,
        checkpoint_log_bytes: 128 * 1024,
        ..WaspConfig::default()
    };
    WaspStorage::open(path, true, false, T, Faults::default(), cfg).unwrap()
}

fn name(clustered: bool) -> &'static str {
    if clustered {
        CLUSTERED
    } else {
        PLAIN
    }
}

/// Every read of `view` must agree with `model`: counts, bytes, a full scan in pages, gets.
fn compare(view: &dyn ReadView, model: &Model, ctx: &str) {
    for clustered in [false, true] {
        let (t, name) = (
            if clustered {
                &model.clustered
            } else {
                &model.plain
            },
            name(clustered),
        );
        assert_eq!(view.count(name), t.rows.len() as u64, "{ctx}: count {name}");
        let bytes: usize = t.rows.iter().map(|(k, (_, v))| k.len() + v.len()).sum();
        assert_eq!(view.table_bytes(name), bytes as u64, "{ctx}: bytes {name}");
        let mut got = Vec::new();
        let mut after: Option<Bytes> = None;
        loop {
            let batch = view.scan(name, after.as_deref(), 13);
            let Some((last, _)) = batch.last() else { break };
            after = Some(last.clone());
            got.extend(batch.into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())));
            // A scan that hands out its `after` entry again would page forever.
            assert!(
                got.len() <= t.rows.len(),
                "{ctx}: a scan of {name} gave more entries than the table holds"
            );
        }
        let want = t.in_scan_order(clustered);
        let same = got.len() == want.len()
            && got
                .iter()
                .zip(&want)
                .all(|(g, w)| &g.0 == w.0 && &g.1 == w.1);
        let keys = |v: Vec<&Vec<u8>>| -> Vec<String> {
            v.into_iter()
                .map(|k| String::from_utf8_lossy(&k[..5]).into_owned())
                .collect()
        };
        assert!(
            same,
            "{ctx}: scan of {name}:\n got  {:?}\n want {:?}",
            keys(got.iter().map(|(k, _)| k).collect()),
            keys(want.iter().map(|(k, _)| *k).collect())
        );
    }
    assert!(view.fault().is_none(), "{ctx}: {:?}", view.fault());
}

fn run(ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prop.db");
    let mut s = open(&path);
    {
        let mut t = s.begin_write(T).unwrap();
        t.create_table(PLAIN, "{}").unwrap();
        t.create_clustered(CLUSTERED, "{}").unwrap();
        t.commit(SyncMode::Off).unwrap();
    }
    let mut committed = Model::default();
    // The open transaction and what it has staged.
    let mut txn: Option<(Box<dyn WriteTxn>, Model)> = None;
    let mut pins: Vec<(Arc<dyn ReadView>, Model, usize)> = Vec::new();
    let commit = |txn: &mut Option<(Box<dyn WriteTxn>, Model)>, committed: &mut Model| {
        if let Some((t, staged)) = txn.take() {
            t.commit(SyncMode::Off).unwrap();
            *committed = staged;
        }
    };
    for (step, op) in ops.iter().enumerate() {
        let ctx = format!("step {step} ({op:?})");
        match op {
            Op::Put { .. } | Op::Delete { .. } if txn.is_none() => {
                txn = Some((s.begin_write(T).unwrap(), committed.clone()));
            }
            _ => {}
        }
        match op {
            Op::Put {
                clustered,
                key: k,
                len,
                fill,
            } => {
                let (t, staged) = txn.as_mut().expect("begun above");
                let (k, v) = (key(*k), value(*len, *fill));
                t.put(
                    name(*clustered),
                    Bytes::from(k.clone()),
                    Bytes::from(v.clone()),
                )
                .unwrap();
                staged.table(*clustered).put(k, v);
            }
            Op::Delete { clustered, key: k } => {
                let (t, staged) = txn.as_mut().expect("begun above");
                let k = key(*k);
                let existed = staged.table(*clustered).rows.remove(&k).is_some();
                assert_eq!(t.delete(name(*clustered), &k).unwrap(), existed, "{ctx}");
            }
            Op::Scan {
                clustered,
                after,
                limit,
            } => {
                let held = s.read();
                let (view, model): (&dyn ReadView, &Model) = match &txn {
                    Some((t, staged)) => (t.as_read(), staged),
                    None => (&*held, &committed),
                };
                let table = if *clustered {
                    &model.clustered
                } else {
                    &model.plain
                };
                let after = after.map(key);
                let got: Vec<(Vec<u8>, Vec<u8>)> = view
                    .scan(name(*clustered), after.as_deref(), *limit)
                    .into_iter()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .collect();
                let want: Vec<(Vec<u8>, Vec<u8>)> = if *clustered {
                    // After a key the table does not hold, a clustered scan ends.
                    let order = table.in_scan_order(true);
                    let start = match &after {
                        None => Some(0),
                        Some(a) => order.iter().position(|(k, _)| *k == a).map(|i| i + 1),
                    };
                    start.map_or(Vec::new(), |s| {
                        order[s..]
                            .iter()
                            .take(*limit)
                            .map(|(k, v)| ((*k).clone(), (*v).clone()))
                            .collect()
                    })
                } else {
                    let from = after.map_or(Bound::Unbounded, Bound::Excluded);
                    table
                        .rows
                        .range((from, Bound::Unbounded))
                        .take(*limit)
                        .map(|(k, (_, v))| (k.clone(), v.clone()))
                        .collect()
                };
                assert!(
                    got == want,
                    "{ctx}: {} entries, the model {}",
                    got.len(),
                    want.len()
                );
            }
            Op::GetMany { clustered, keys } => {
                let held = s.read();
                let (view, model): (&dyn ReadView, &Model) = match &txn {
                    Some((t, staged)) => (t.as_read(), staged),
                    None => (&*held, &committed),
                };
                let table = if *clustered {
                    &model.clustered
                } else {
                    &model.plain
                };
                let n = name(*clustered);
                let owned: Vec<(Vec<u8>, Option<u64>)> = keys
                    .iter()
                    .map(|(k, hint)| {
                        let k = key(*k);
                        let rid = match hint {
                            RidHint::None => None,
                            RidHint::Own => view.record_id_for(n, &k),
                            RidHint::Other(r) => Some(*r),
                        };
                        (k, rid)
                    })
                    .collect();
                let wanted: Vec<(&[u8], Option<u64>)> =
                    owned.iter().map(|(k, r)| (&k[..], *r)).collect();
                let got = view.get_many_at(n, &wanted);
                for ((k, rid), got) in owned.iter().zip(got) {
                    let want = table.rows.get(k).map(|(_, v)| v.clone());
                    assert_eq!(
                        got.as_deref().map(<[u8]>::to_vec),
                        want,
                        "{ctx}: key {} rid {rid:?}",
                        String::from_utf8_lossy(&k[..5])
                    );
                    assert_eq!(
                        view.get_at(n, k, *rid).as_deref().map(<[u8]>::to_vec),
                        table.rows.get(k).map(|(_, v)| v.clone()),
                        "{ctx}: get_at"
                    );
                }
            }
            Op::Commit => commit(&mut txn, &mut committed),
            Op::Rollback => txn = None,
            Op::Pin => pins.push((s.read(), committed.clone(), step)),
            Op::Checkpoint => {
                commit(&mut txn, &mut committed);
                s.checkpoint(T).unwrap();
            }
            Op::Compact => {
                commit(&mut txn, &mut committed);
                s.compact(T).unwrap();
                let r = s.check(T).unwrap();
                assert_eq!(r["ok"], true, "{ctx}: {r}");
            }
            Op::Reopen { clean } => {
                txn = None;
                pins.clear();
                if *clean {
                    s.close().unwrap();
                }
                drop(s);
                s = open(&path);
            }
        }
        if let Some((t, staged)) = &txn {
            compare(t.as_read(), staged, &format!("{ctx}, in the transaction"));
        }
        compare(&*s.read(), &committed, &ctx);
        for (view, model, at) in &pins {
            compare(&**view, model, &format!("{ctx}, snapshot of step {at}"));
        }
    }
    commit(&mut txn, &mut committed);
    pins.clear();
    let r = s.check(T).unwrap();
    assert_eq!(r["ok"], true, "fsck at the end: {r}");
    s.close().unwrap();
    drop(s);
    compare(&*open(&path).read(), &committed, "reopened at the end");
}

proptest! {
    #![proptest_config(crate::prop_support::config(80, 2))]

    /// See the module's comment.
    #[test]
    fn prop_wasp_agrees_with_a_model(ops in proptest::collection::vec(op(), 1..250)) {
        run(&ops);
    }
}
