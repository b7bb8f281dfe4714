//! A list-append isolation checker in the manner of Jepsen's Elle (Kingsbury & Alvaro, "Elle:
//! Inferring Isolation Anomalies from Experimental Observations", VLDB 2020), written for
//! these tests.
//!
//! Transactions append unique values to lists and read whole lists. Because every value is
//! appended once, a read of a list names the exact version it saw and every version before it,
//! so the order of versions of each key can be read off the longest list observed (every
//! other read must be a prefix of it). From those version orders come the dependencies
//! between committed transactions: `ww` (T1 wrote a version, T2 the next one), `wr` (T2 read
//! the version T1 wrote) and `rw` (T1 read a version, T2 wrote the next one: the
//! anti-dependency).
//!
//! What snapshot isolation forbids, and what [`check`] reports as an [`Anomaly`]:
//! - G1a aborted read: a transaction sees a value whose append was rolled back;
//! - G1b intermediate read: it sees a value another transaction appended before that
//!   transaction's own later append to the same key (a state that never was committed);
//! - incompatible orders: two reads of a key that are not prefixes of one another (no single
//!   order of versions explains both: a dirty or a lost write);
//! - garbage / duplicate values: a value nobody appended, or a list holding a value twice;
//! - lost update: a committed append missing from the final state;
//! - internal inconsistency within a transaction, which a snapshot forbids: a read that
//!   misses the transaction's own earlier appends (read-your-writes), and two reads of a key
//!   that differ other than by the transaction's own appends (non-repeatable read);
//! - cycles of the dependency graph over committed transactions (Adya): G0 (`ww` only), G1c
//!   (`ww` and `wr`), G-single (exactly one `rw` edge: read skew, and the lost update P4 of
//!   two read-then-append transactions), and G-nonadjacent (two or more `rw` edges, no two of
//!   them consecutive). Every cycle a history under snapshot isolation can produce has two
//!   consecutive `rw` edges (Fekete et al., "Making Snapshot Isolation Serializable", 2005):
//!   that is write skew (G2), which snapshot isolation allows, so such cycles are only
//!   counted ([`Report::allowed_g2`]), never reported.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;

pub type Key = u32;
pub type Val = u64;

/// One micro-operation as executed, with its result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Appended the value to the key's list.
    Append(Key, Val),
    /// Read the key's whole list (a missing document reads as the empty list).
    Read(Key, Vec<Val>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    /// Rolled back on purpose, or failed (busy): none of its appends may be seen.
    Aborted,
}

/// A transaction of the history: the operations it executed, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Txn {
    /// Which worker (thread or process) ran it, for messages.
    pub worker: u32,
    pub outcome: Outcome,
    pub ops: Vec<Op>,
}

impl Txn {
    pub fn committed(worker: u32, ops: Vec<Op>) -> Txn {
        Txn {
            worker,
            outcome: Outcome::Committed,
            ops,
        }
    }

    pub fn aborted(worker: u32, ops: Vec<Op>) -> Txn {
        Txn {
            worker,
            outcome: Outcome::Aborted,
            ops,
        }
    }

    /// One line of text (what a child process prints): `c a:K:V r:K:V1,V2 ...`.
    pub fn encode(&self) -> String {
        let mut s = String::from(match self.outcome {
            Outcome::Committed => "c",
            Outcome::Aborted => "a",
        });
        s.push_str(&format!(" w{}", self.worker));
        for op in &self.ops {
            match op {
                Op::Append(k, v) => s.push_str(&format!(" a:{k}:{v}")),
                Op::Read(k, l) => {
                    let l: Vec<String> = l.iter().map(u64::to_string).collect();
                    s.push_str(&format!(" r:{k}:{}", l.join(",")));
                }
            }
        }
        s
    }

    /// The transaction [`Txn::encode`] wrote.
    pub fn decode(line: &str) -> Option<Txn> {
        let mut parts = line.split(' ');
        let outcome = match parts.next()? {
            "c" => Outcome::Committed,
            "a" => Outcome::Aborted,
            _ => return None,
        };
        let worker = parts.next()?.strip_prefix('w')?.parse().ok()?;
        let mut ops = Vec::new();
        for p in parts {
            let mut f = p.splitn(3, ':');
            let (kind, k, rest) = (f.next()?, f.next()?.parse().ok()?, f.next()?);
            ops.push(match kind {
                "a" => Op::Append(k, rest.parse().ok()?),
                "r" if rest.is_empty() => Op::Read(k, Vec::new()),
                "r" => Op::Read(
                    k,
                    rest.split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .ok()?,
                ),
                _ => return None,
            });
        }
        Some(Txn {
            worker,
            outcome,
            ops,
        })
    }
}

/// A dependency between two committed transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dep {
    WW,
    WR,
    RW,
}

/// A cycle: `(from, dependency)` steps, each to the next step's transaction (the last to the
/// first). Transactions are indices into the history (the final read is `history.len()`).
pub type Cycle = Vec<(usize, Dep)>;

/// Something snapshot isolation forbids, found in a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// Two appends of one value: a broken test, since values are unique.
    DuplicateAppend {
        value: Val,
    },
    /// A read list holds a value twice.
    DuplicateElements {
        txn: usize,
        key: Key,
        list: Vec<Val>,
    },
    /// A read saw a value nobody appended.
    GarbageRead {
        txn: usize,
        key: Key,
        value: Val,
    },
    /// G1a: `reader` saw `value`, appended by the aborted `writer`.
    AbortedRead {
        reader: usize,
        writer: usize,
        key: Key,
        value: Val,
    },
    /// G1b: `reader` saw `writer`'s append `value` but not `writer`'s later append to `key`.
    IntermediateRead {
        reader: usize,
        writer: usize,
        key: Key,
        value: Val,
    },
    /// Two reads of `key` that are not prefixes of one another.
    IncompatibleOrder {
        key: Key,
        a: (usize, Vec<Val>),
        b: (usize, Vec<Val>),
    },
    /// A committed append missing from the final state.
    LostUpdate {
        writer: usize,
        key: Key,
        value: Val,
    },
    /// A read in `txn` missing `txn`'s own earlier appends (`own`).
    ReadYourWrites {
        txn: usize,
        key: Key,
        own: Vec<Val>,
        read: Vec<Val>,
    },
    /// Two reads of `key` in `txn` that saw different states of the others' writes.
    NonRepeatableRead {
        txn: usize,
        key: Key,
        first: Vec<Val>,
        second: Vec<Val>,
    },
    G0(Cycle),
    G1c(Cycle),
    GSingle(Cycle),
    GNonadjacent(Cycle),
}

impl Anomaly {
    /// The anomaly's name, for counts.
    pub fn kind(&self) -> &'static str {
        match self {
            Anomaly::DuplicateAppend { .. } => "duplicate-append",
            Anomaly::DuplicateElements { .. } => "duplicate-elements",
            Anomaly::GarbageRead { .. } => "garbage-read",
            Anomaly::AbortedRead { .. } => "G1a",
            Anomaly::IntermediateRead { .. } => "G1b",
            Anomaly::IncompatibleOrder { .. } => "incompatible-order",
            Anomaly::LostUpdate { .. } => "lost-update",
            Anomaly::ReadYourWrites { .. } => "read-your-writes",
            Anomaly::NonRepeatableRead { .. } => "non-repeatable-read",
            Anomaly::G0(_) => "G0",
            Anomaly::G1c(_) => "G1c",
            Anomaly::GSingle(_) => "G-single",
            Anomaly::GNonadjacent(_) => "G-nonadjacent",
        }
    }
}

/// What [`check`] found, and how much history it looked at.
#[derive(Debug, Default)]
pub struct Report {
    pub txns: usize,
    pub committed: usize,
    pub aborted: usize,
    pub ops: usize,
    pub appends: usize,
    pub reads: usize,
    /// Dependency edges between committed transactions.
    pub edges: usize,
    pub anomalies: Vec<Anomaly>,
    /// Strongly connected groups of committed transactions whose every cycle has two
    /// consecutive `rw` edges: write skew (G2), which snapshot isolation allows.
    pub allowed_g2: usize,
}

impl Report {
    /// How many anomalies of each kind.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for a in &self.anomalies {
            *m.entry(a.kind()).or_insert(0) += 1;
        }
        m
    }

    pub fn has(&self, kind: &str) -> bool {
        self.anomalies.iter().any(|a| a.kind() == kind)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "transactions {} (committed {}, aborted {}), ops {} (appends {}, reads {}), \
             dependency edges {}, anomalies {} {:?}, allowed G2 groups {}",
            self.txns,
            self.committed,
            self.aborted,
            self.ops,
            self.appends,
            self.reads,
            self.edges,
            self.anomalies.len(),
            self.counts(),
            self.allowed_g2
        )?;
        for a in self.anomalies.iter().take(8) {
            // Lists run long: the start of each is enough to find it in the history.
            let s = format!("{a:?}");
            let cut = (400..s.len())
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(s.len());
            write!(
                f,
                "\n  {}{}",
                &s[..cut],
                if cut < s.len() { " ..." } else { "" }
            )?;
        }
        if self.anomalies.len() > 8 {
            write!(f, "\n  ... and {} more", self.anomalies.len() - 8)?;
        }
        Ok(())
    }
}

/// Checks `history` against snapshot isolation. `final_state` is every key's list read once
/// all transactions have ended (keys absent: empty); it takes part as a last committed
/// read-only transaction, index `history.len()`.
pub fn check(history: &[Txn], final_state: &BTreeMap<Key, Vec<Val>>) -> Report {
    let mut txns: Vec<Txn> = history.to_vec();
    txns.push(Txn::committed(
        u32::MAX,
        final_state
            .iter()
            .map(|(k, l)| Op::Read(*k, l.clone()))
            .collect(),
    ));
    let mut r = Report {
        txns: history.len(),
        committed: history
            .iter()
            .filter(|t| t.outcome == Outcome::Committed)
            .count(),
        ..Report::default()
    };
    r.aborted = r.txns - r.committed;
    for t in history {
        for op in &t.ops {
            r.ops += 1;
            match op {
                Op::Append(..) => r.appends += 1,
                Op::Read(..) => r.reads += 1,
            }
        }
    }
    let committed = |t: usize| txns[t].outcome == Outcome::Committed;

    // Who appended each value, and each transaction's appends per key in order.
    let mut writer: HashMap<Val, usize> = HashMap::new();
    let mut appends_of: HashMap<(usize, Key), Vec<Val>> = HashMap::new();
    for (i, t) in txns.iter().enumerate() {
        for op in &t.ops {
            if let Op::Append(k, v) = op {
                if writer.insert(*v, i).is_some() {
                    r.anomalies.push(Anomaly::DuplicateAppend { value: *v });
                }
                appends_of.entry((i, *k)).or_default().push(*v);
            }
        }
    }

    // Internal consistency, and what each transaction observed of the others' writes:
    // `external` is the first state of a key a transaction saw (its own appends taken off),
    // `orders` every list that tells an order of versions. A committed transaction's reads
    // with its own appends count there too: under snapshot isolation no other commit to the
    // key can come between its snapshot and its own commit (first committer wins).
    let mut external: Vec<(usize, Key, Vec<Val>)> = Vec::new();
    let mut orders: Vec<(usize, Key, Vec<Val>)> = Vec::new();
    for (i, t) in txns.iter().enumerate() {
        let mut own: HashMap<Key, Vec<Val>> = HashMap::new();
        let mut seen: HashMap<Key, Vec<Val>> = HashMap::new();
        for op in &t.ops {
            match op {
                Op::Append(k, v) => own.entry(*k).or_default().push(*v),
                Op::Read(k, list) => {
                    let distinct: BTreeSet<&Val> = list.iter().collect();
                    if distinct.len() != list.len() {
                        r.anomalies.push(Anomaly::DuplicateElements {
                            txn: i,
                            key: *k,
                            list: list.clone(),
                        });
                    }
                    let mine = own.get(k).map_or(&[][..], Vec::as_slice);
                    let consistent = list.ends_with(mine);
                    let snapshot: Vec<Val> = if consistent {
                        list[..list.len() - mine.len()].to_vec()
                    } else {
                        r.anomalies.push(Anomaly::ReadYourWrites {
                            txn: i,
                            key: *k,
                            own: mine.to_vec(),
                            read: list.clone(),
                        });
                        list.iter().filter(|v| !mine.contains(v)).copied().collect()
                    };
                    match seen.get(k) {
                        Some(first) if *first != snapshot => {
                            r.anomalies.push(Anomaly::NonRepeatableRead {
                                txn: i,
                                key: *k,
                                first: first.clone(),
                                second: snapshot,
                            });
                        }
                        Some(_) => {}
                        None => {
                            external.push((i, *k, snapshot.clone()));
                            orders.push((i, *k, snapshot.clone()));
                            seen.insert(*k, snapshot);
                        }
                    }
                    if committed(i) && !mine.is_empty() && consistent {
                        orders.push((i, *k, list.clone()));
                    }
                }
            }
        }
    }

    // What each read saw of other transactions' appends.
    let mut reported: BTreeSet<(usize, usize, Key)> = BTreeSet::new();
    for (reader, k, list) in &orders {
        for v in list {
            let Some(&w) = writer.get(v) else {
                r.anomalies.push(Anomaly::GarbageRead {
                    txn: *reader,
                    key: *k,
                    value: *v,
                });
                continue;
            };
            if w == *reader || !reported.insert((*reader, w, *k)) {
                continue;
            }
            if !committed(w) {
                r.anomalies.push(Anomaly::AbortedRead {
                    reader: *reader,
                    writer: w,
                    key: *k,
                    value: *v,
                });
            } else if let Some(last) = appends_of.get(&(w, *k)).and_then(|a| a.last()) {
                if !list.contains(last) {
                    r.anomalies.push(Anomaly::IntermediateRead {
                        reader: *reader,
                        writer: w,
                        key: *k,
                        value: *v,
                    });
                }
            }
        }
    }

    // The version order of each key: the longest list seen; every other must be its prefix.
    let mut longest: BTreeMap<Key, (usize, Vec<Val>)> = BTreeMap::new();
    for (i, k, list) in &orders {
        let e = longest.entry(*k).or_insert((*i, Vec::new()));
        if list.len() > e.1.len() {
            *e = (*i, list.clone());
        }
    }
    for (i, k, list) in &orders {
        let (j, l) = &longest[k];
        if !l.starts_with(list) {
            r.anomalies.push(Anomaly::IncompatibleOrder {
                key: *k,
                a: (*j, l.clone()),
                b: (*i, list.clone()),
            });
        }
    }

    // Every committed append is in the final state.
    for ((w, k), vals) in &appends_of {
        if !committed(*w) {
            continue;
        }
        let fin = final_state.get(k).map_or(&[][..], Vec::as_slice);
        for v in vals {
            if !fin.contains(v) {
                r.anomalies.push(Anomaly::LostUpdate {
                    writer: *w,
                    key: *k,
                    value: *v,
                });
            }
        }
    }

    // The dependency graph over committed transactions.
    let mut graph = Graph::new(txns.len());
    let committed_writer = |v: &Val| writer.get(v).copied().filter(|&w| committed(w));
    for (_, l) in longest.values() {
        for pair in l.windows(2) {
            if let (Some(a), Some(b)) = (committed_writer(&pair[0]), committed_writer(&pair[1])) {
                graph.add(a, b, Dep::WW);
            }
        }
    }
    for (reader, k, snapshot) in &external {
        if !committed(*reader) || !longest[k].1.starts_with(snapshot) {
            continue; // reported above; no sound edges from it
        }
        if let Some(w) = snapshot.last().and_then(committed_writer) {
            graph.add(w, *reader, Dep::WR);
        }
        if let Some(w) = longest[k].1.get(snapshot.len()).and_then(committed_writer) {
            graph.add(*reader, w, Dep::RW);
        }
    }
    r.edges = graph.edges.len();
    let (cycles, allowed) = graph.forbidden_cycles();
    r.anomalies.extend(cycles);
    r.allowed_g2 = allowed;
    r
}

/// Dependency edges; an edge may carry several kinds.
struct Graph {
    out: Vec<Vec<usize>>,
    edges: HashMap<(usize, usize), [bool; 3]>,
}

fn slot(d: Dep) -> usize {
    match d {
        Dep::WW => 0,
        Dep::WR => 1,
        Dep::RW => 2,
    }
}

impl Graph {
    fn new(n: usize) -> Graph {
        Graph {
            out: vec![Vec::new(); n],
            edges: HashMap::new(),
        }
    }

    fn add(&mut self, a: usize, b: usize, d: Dep) {
        if a == b {
            return;
        }
        let e = self.edges.entry((a, b)).or_insert_with(|| {
            self.out[a].push(b);
            [false; 3]
        });
        e[slot(d)] = true;
    }

    fn has(&self, a: usize, b: usize, d: Dep) -> bool {
        self.edges.get(&(a, b)).is_some_and(|e| e[slot(d)])
    }

    /// Strongly connected components (more than one transaction) of the edges of kinds
    /// `kinds` among `nodes`; iterative Tarjan, as histories run to many thousands.
    fn components(&self, nodes: &[usize], kinds: &[Dep]) -> Vec<Vec<usize>> {
        let inside: HashMap<usize, usize> =
            nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let succ = |n: usize| -> Vec<usize> {
            self.out[n]
                .iter()
                .copied()
                .filter(|m| inside.contains_key(m) && kinds.iter().any(|d| self.has(n, *m, *d)))
                .collect()
        };
        let len = nodes.len();
        let (mut index, mut low, mut on) = (vec![usize::MAX; len], vec![0; len], vec![false; len]);
        let (mut stack, mut out, mut next) = (Vec::new(), Vec::new(), 0);
        for root in 0..len {
            if index[root] != usize::MAX {
                continue;
            }
            let mut work: Vec<(usize, Vec<usize>, usize)> = vec![(root, succ(nodes[root]), 0)];
            index[root] = next;
            low[root] = next;
            next += 1;
            stack.push(root);
            on[root] = true;
            while let Some((v, succs, at)) = work.last_mut() {
                let v = *v;
                if *at < succs.len() {
                    let w = inside[&succs[*at]];
                    *at += 1;
                    if index[w] == usize::MAX {
                        index[w] = next;
                        low[w] = next;
                        next += 1;
                        stack.push(w);
                        on[w] = true;
                        let s = succ(nodes[w]);
                        work.push((w, s, 0));
                    } else if on[w] {
                        low[v] = low[v].min(index[w]);
                    }
                } else {
                    work.pop();
                    if let Some((p, _, _)) = work.last() {
                        low[*p] = low[*p].min(low[v]);
                    }
                    if low[v] == index[v] {
                        let mut comp = Vec::new();
                        loop {
                            let w = stack.pop().expect("on the stack");
                            on[w] = false;
                            comp.push(nodes[w]);
                            if w == v {
                                break;
                            }
                        }
                        if comp.len() > 1 {
                            out.push(comp);
                        }
                    }
                }
            }
        }
        out
    }

    /// A path `from` ⇝ `to` within `nodes` by breadth-first search over states (transaction,
    /// whether the edge into it was `rw`). With `single`, only `ww`/`wr` edges; else `rw`
    /// edges too, never two in a row, and the path starts as if after an `rw` edge and ends
    /// with a non-`rw` one (it closes a cycle with the `rw` edge `to -> from`).
    fn path(&self, nodes: &BTreeSet<usize>, from: usize, to: usize, single: bool) -> Option<Cycle> {
        let start = (from, true);
        let mut parent: HashMap<(usize, bool), ((usize, bool), Dep)> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some((n, after_rw)) = queue.pop_front() {
            if n == to && !after_rw {
                let mut steps = Vec::new();
                let mut at = (n, after_rw);
                while at != start {
                    let (p, d) = parent[&at];
                    steps.push((p.0, d));
                    at = p;
                }
                steps.reverse();
                return Some(steps);
            }
            for &m in &self.out[n] {
                if !nodes.contains(&m) {
                    continue;
                }
                let mut moves = Vec::new();
                if self.has(n, m, Dep::WW) {
                    moves.push(((m, false), Dep::WW));
                } else if self.has(n, m, Dep::WR) {
                    moves.push(((m, false), Dep::WR));
                }
                if !single && !after_rw && self.has(n, m, Dep::RW) {
                    moves.push(((m, true), Dep::RW));
                }
                for (state, d) in moves {
                    if state != start && !parent.contains_key(&state) {
                        parent.insert(state, ((n, after_rw), d));
                        queue.push_back(state);
                    }
                }
            }
        }
        None
    }

    /// One example of each kind of cycle snapshot isolation forbids in each strongly
    /// connected group, and how many groups hold only allowed (G2) cycles.
    fn forbidden_cycles(&self) -> (Vec<Anomaly>, usize) {
        let all: Vec<usize> = (0..self.out.len()).collect();
        let (mut found, mut allowed) = (Vec::new(), 0);
        for comp in self.components(&all, &[Dep::WW, Dep::WR, Dep::RW]) {
            let set: BTreeSet<usize> = comp.iter().copied().collect();
            let before = found.len();
            // A cycle of some kinds of edges lies within one component of those edges. One
            // example each: a G0 group may hide a G1c cycle too, reported with the G0.
            if let Some(c) = self.components(&comp, &[Dep::WW]).first() {
                found.push(Anomaly::G0(self.cycle_in(c, &[Dep::WW])));
            }
            if let Some(c) = self.components(&comp, &[Dep::WW, Dep::WR]).first() {
                let cycle = self.cycle_in(c, &[Dep::WW, Dep::WR]);
                if cycle.iter().any(|(_, d)| *d == Dep::WR) {
                    found.push(Anomaly::G1c(cycle));
                }
            }
            let rw: Vec<(usize, usize)> = self
                .edges
                .iter()
                .filter(|((a, b), e)| e[2] && set.contains(a) && set.contains(b))
                .map(|(ab, _)| *ab)
                .collect();
            let close = |single: bool| {
                rw.iter().find_map(|&(a, b)| {
                    self.path(&set, b, a, single).map(|mut p| {
                        p.insert(0, (a, Dep::RW));
                        p
                    })
                })
            };
            if let Some(c) = close(true) {
                found.push(Anomaly::GSingle(c));
            } else if let Some(c) = close(false) {
                found.push(Anomaly::GNonadjacent(c));
            }
            if found.len() == before {
                allowed += 1;
            }
        }
        (found, allowed)
    }

    /// A cycle through the component `comp` of the edges of kinds `kinds`.
    fn cycle_in(&self, comp: &[usize], kinds: &[Dep]) -> Cycle {
        let set: BTreeSet<usize> = comp.iter().copied().collect();
        let start = comp[0];
        let mut parent: HashMap<usize, (usize, Dep)> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            for &m in &self.out[n] {
                let Some(d) = kinds.iter().copied().find(|d| self.has(n, m, *d)) else {
                    continue;
                };
                if !set.contains(&m) {
                    continue;
                }
                if m == start {
                    let mut steps = vec![(n, d)];
                    let mut at = n;
                    while at != start {
                        let (p, pd) = parent[&at];
                        steps.push((p, pd));
                        at = p;
                    }
                    steps.reverse();
                    return steps;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(m) {
                    e.insert((n, d));
                    queue.push_back(m);
                }
            }
        }
        unreachable!("a strongly connected component holds a cycle through each member")
    }
}
