//! Grouping: `$group` (an `_id` expression and accumulators `$sum`, `$avg`, `$min`, `$max`,
//! `$first`, `$last`, `$push`, `$addToSet`, `$count`) and `$bucket`. Groups are found by
//! a canonical byte key of the `_id` value, in which numbers equal across types (`1`,
//! `1.0`, `NumberLong(1)`) are one key and missing is null; groups come out in the order
//! they were first seen.
//!
//! Past the memory limit ([`Memory`]) a [`Grouper`] writes its partial groups as a run
//! sorted by that key (each with the sequence number of its first document and its
//! accumulators' running state), starts afresh, and at the end merges the runs, combining
//! the partial states of one key in input order (`$first` from the earliest run, `$last`
//! from the latest, `$push` concatenated in order, `$addToSet` in first-seen order); the
//! finished groups are then put back in first-seen order by a [`Sorter`] on that sequence
//! number, so a spilled `$group` returns what the in-memory one does.

use super::spill::{approx_value, merge_rounds, Memory, Run, RunReader, RunWriter, Sorter};
use crate::error::{Error, Result};
use crate::query::expr::arith::{add, Num};
use crate::query::expr::{cmp_values, is_missing, is_nullish, or_null, Env, Expr};
use bson::{Bson, Document};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

/// The canonical key of a value: equal values (MongoDB's equality) give equal keys.
pub(crate) fn key_of(v: &Bson, out: &mut Vec<u8>) {
    let v = if is_missing(v) { &Bson::Null } else { v };
    out.push(crate::query::compare::type_rank(v));
    match v {
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) => {
            let n = Num::of(v).expect("a number");
            let as_int = match n {
                Num::I32(i) => Some(i64::from(i)),
                Num::I64(i) => Some(i),
                #[allow(clippy::cast_possible_truncation)] // whole and in range (checked)
                Num::F(d) if d.fract() == 0.0 && d.abs() < 9.0e18 => Some(d as i64),
                Num::F(_) => None,
            };
            match as_int {
                Some(i) => {
                    out.push(b'i');
                    out.extend_from_slice(&i.to_le_bytes());
                }
                None => {
                    let d = n.f64();
                    out.push(b'f');
                    let bits = if d.is_nan() {
                        f64::NAN.to_bits()
                    } else {
                        d.to_bits()
                    };
                    out.extend_from_slice(&bits.to_le_bytes());
                }
            }
        }
        Bson::String(s) | Bson::Symbol(s) => {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Bson::Document(d) => {
            out.extend_from_slice(&(d.len() as u64).to_le_bytes());
            for (k, x) in d {
                out.extend_from_slice(&(k.len() as u64).to_le_bytes());
                out.extend_from_slice(k.as_bytes());
                key_of(x, out);
            }
        }
        Bson::Array(items) => {
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for x in items {
                key_of(x, out);
            }
        }
        Bson::Null | Bson::Undefined | Bson::MinKey | Bson::MaxKey => {}
        other => {
            let text = crate::document::json::bson_to_json_text(other);
            out.extend_from_slice(&(text.len() as u64).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// An accumulator kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sum,
    Avg,
    Min,
    Max,
    First,
    Last,
    Push,
    AddToSet,
    Count,
}

/// A parsed accumulator: output field, kind, the expression it reads.
#[derive(Debug, Clone)]
pub(crate) struct Accumulator {
    field: String,
    kind: Kind,
    expr: Expr,
}

/// The running state of one accumulator in one group.
#[derive(Debug, Clone)]
enum State {
    Sum(Num),
    Avg(Num, u64),
    Best(Option<Bson>),
    First(Option<Bson>),
    Last(Bson),
    Push(Vec<Bson>),
    Set(Vec<Bson>, HashSet<Vec<u8>>),
}

impl Accumulator {
    /// The expression it reads from each document.
    pub(crate) fn input(&self) -> &Expr {
        &self.expr
    }

    /// Parses `field: {$op: expr}`.
    pub(crate) fn parse(field: &str, spec: &Bson, stage: &str) -> Result<Self> {
        if field.contains('.') {
            return Err(Error::parse(format!(
                "{stage}: the group aggregate field name '{field}' cannot be used because $group's field names cannot contain '.'"
            )));
        }
        if field.starts_with('$') {
            return Err(Error::parse(format!(
                "{stage}: the group aggregate field name '{field}' cannot be an operator name"
            )));
        }
        let Bson::Document(d) = spec else {
            return Err(Error::parse(format!(
                "{stage}: the group aggregate field '{field}' must be defined as an expression inside an object"
            )));
        };
        if d.len() != 1 {
            return Err(Error::parse(format!(
                "{stage}: the computed aggregate '{field}' must specify exactly one operator"
            )));
        }
        let (op, arg) = d.iter().next().expect("one field");
        let kind = match op.as_str() {
            "$sum" => Kind::Sum,
            "$avg" => Kind::Avg,
            "$min" => Kind::Min,
            "$max" => Kind::Max,
            "$first" => Kind::First,
            "$last" => Kind::Last,
            "$push" => Kind::Push,
            "$addToSet" => Kind::AddToSet,
            "$count" => {
                if !matches!(arg, Bson::Document(a) if a.is_empty()) {
                    return Err(Error::parse(format!(
                        "{stage}: $count takes no arguments, i.e. $count: {{}}"
                    )));
                }
                Kind::Count
            }
            other if other.starts_with('$') => {
                return Err(Error::unsupported(format!(
                    "{stage}: unknown group operator '{other}' (not supported by NexusLite)"
                )))
            }
            other => {
                return Err(Error::parse(format!(
                    "{stage}: the computed aggregate '{field}' must specify an operator, found '{other}'"
                )))
            }
        };
        if let (
            Bson::Array(_),
            Kind::Sum
            | Kind::Avg
            | Kind::Min
            | Kind::Max
            | Kind::First
            | Kind::Last
            | Kind::Push
            | Kind::AddToSet,
        ) = (arg, kind)
        {
            return Err(Error::parse(format!(
                "{stage}: the {op} accumulator is a unary operator"
            )));
        }
        Ok(Self {
            field: field.to_owned(),
            kind,
            expr: Expr::parse(arg)?,
        })
    }

    /// `count: {$sum: 1}`, the default output of `$bucket`.
    pub(crate) fn count(field: &str) -> Self {
        Self {
            field: field.to_owned(),
            kind: Kind::Count,
            expr: Expr::Lit(Bson::Int32(1)),
        }
    }

    fn start(&self) -> State {
        match self.kind {
            Kind::Sum | Kind::Count => State::Sum(Num::I32(0)),
            Kind::Avg => State::Avg(Num::I32(0), 0),
            Kind::Min | Kind::Max => State::Best(None),
            Kind::First => State::First(None),
            Kind::Last => State::Last(Bson::Null),
            Kind::Push => State::Push(Vec::new()),
            Kind::AddToSet => State::Set(Vec::new(), HashSet::new()),
        }
    }

    /// Adds one document to `state`; returns how many bytes the state grew (or shrank).
    fn step(&self, state: &mut State, env: &Env) -> Result<isize> {
        if self.kind == Kind::Count {
            if let State::Sum(n) = state {
                *n = add(*n, Num::I32(1));
            }
            return Ok(0);
        }
        let v = self.expr.eval(env)?;
        let size = |v: &Bson| isize::try_from(approx_value(v)).unwrap_or(isize::MAX);
        let mut delta = 0;
        match state {
            State::Sum(acc) => {
                if let Some(n) = Num::of(&v) {
                    *acc = add(*acc, n);
                }
            }
            State::Avg(acc, count) => {
                if let Some(n) = Num::of(&v) {
                    *acc = add(*acc, n);
                    *count += 1;
                }
            }
            State::Best(best) => {
                if !is_nullish(&v) {
                    let want = if self.kind == Kind::Min {
                        std::cmp::Ordering::Less
                    } else {
                        std::cmp::Ordering::Greater
                    };
                    let better = best.as_ref().is_none_or(|b| cmp_values(&v, b) == want);
                    if better {
                        delta = size(&v) - best.as_ref().map_or(0, size);
                        *best = Some(v);
                    }
                }
            }
            State::First(first) => {
                if first.is_none() {
                    delta = size(&v);
                    *first = Some(or_null(v));
                }
            }
            State::Last(last) => {
                delta = size(&v) - size(last);
                *last = or_null(v);
            }
            State::Push(items) => {
                if !is_missing(&v) {
                    delta = size(&v) + 4;
                    items.push(v);
                }
            }
            State::Set(items, seen) => {
                if !is_missing(&v) {
                    let mut k = Vec::new();
                    key_of(&v, &mut k);
                    let n = k.len();
                    if seen.insert(k) {
                        delta = size(&v) + isize::try_from(n).unwrap_or(0) + 40;
                        items.push(v);
                    }
                }
            }
        }
        Ok(delta)
    }

    /// Folds `later` (the state of the same group over later documents) into `state`.
    fn combine(&self, state: &mut State, later: State) {
        match (state, later) {
            (State::Sum(a), State::Sum(b)) => *a = add(*a, b),
            (State::Avg(a, c), State::Avg(b, d)) => {
                *a = add(*a, b);
                *c += d;
            }
            (State::Best(a), State::Best(Some(b))) => {
                let want = if self.kind == Kind::Min {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                if a.as_ref().is_none_or(|x| cmp_values(&b, x) == want) {
                    *a = Some(b);
                }
            }
            (State::First(a @ None), State::First(b)) => *a = b,
            (State::Last(a), State::Last(b)) => *a = b,
            (State::Push(a), State::Push(b)) => a.extend(b),
            (State::Set(a, seen), State::Set(b, _)) => {
                for v in b {
                    let mut k = Vec::new();
                    key_of(&v, &mut k);
                    if seen.insert(k) {
                        a.push(v);
                    }
                }
            }
            _ => {}
        }
    }

    /// A state as BSON, for a spilled partial group.
    fn state_bson(state: &State) -> Bson {
        match state {
            State::Sum(n) => n.bson(),
            State::Avg(n, c) => Bson::Array(vec![
                n.bson(),
                Bson::Int64(i64::try_from(*c).unwrap_or(i64::MAX)),
            ]),
            State::Best(v) | State::First(v) => Bson::Array(v.iter().cloned().collect()),
            State::Last(v) => Bson::Array(vec![v.clone()]),
            State::Push(items) | State::Set(items, _) => Bson::Array(items.clone()),
        }
    }

    /// The state [`Accumulator::state_bson`] wrote; `None` if it is not one.
    fn state_of(&self, v: Bson) -> Option<State> {
        Some(match (self.kind, v) {
            (Kind::Sum | Kind::Count, n) => State::Sum(Num::of(&n)?),
            (Kind::Avg, Bson::Array(a)) => {
                let (n, Bson::Int64(c)) = (a.first()?, a.get(1)?) else {
                    return None;
                };
                State::Avg(Num::of(n)?, u64::try_from(*c).ok()?)
            }
            (Kind::Min | Kind::Max, Bson::Array(a)) => State::Best(a.into_iter().next()),
            (Kind::First, Bson::Array(a)) => State::First(a.into_iter().next()),
            (Kind::Last, Bson::Array(a)) => State::Last(a.into_iter().next()?),
            (Kind::Push, Bson::Array(a)) => State::Push(a),
            (Kind::AddToSet, Bson::Array(a)) => {
                let mut seen = HashSet::new();
                for v in &a {
                    let mut k = Vec::new();
                    key_of(v, &mut k);
                    seen.insert(k);
                }
                State::Set(a, seen)
            }
            _ => return None,
        })
    }

    #[allow(clippy::cast_precision_loss)] // an average of counts, as MongoDB computes it
    fn finish(state: State) -> Bson {
        match state {
            State::Sum(n) => n.bson(),
            State::Avg(_, 0) => Bson::Null,
            State::Avg(n, c) => Bson::Double(n.f64() / c as f64),
            State::Best(b) => b.unwrap_or(Bson::Null),
            State::First(f) => f.unwrap_or(Bson::Null),
            State::Last(l) => l,
            State::Push(items) | State::Set(items, _) => Bson::Array(items),
        }
    }
}

/// Parses the accumulators of a `$group` (every field but `_id`) or a `$bucket`'s `output`.
pub(crate) fn accumulators(
    spec: &Document,
    skip_id: bool,
    stage: &str,
) -> Result<Vec<Accumulator>> {
    spec.iter()
        .filter(|(k, _)| !(skip_id && *k == "_id"))
        .map(|(k, v)| Accumulator::parse(k, v, stage))
        .collect()
}

/// Groups documents pushed one at a time ([`Grouper::push`]) by the value a key
/// function gives (the group's `_id`); [`Grouper::finish`] hands out one document per
/// group, in first-seen order. Only the groups are held, not the documents, and past the
/// memory limit they are spilled (see the module header).
pub(crate) struct Grouper<'a> {
    accs: &'a [Accumulator],
    vars: &'a [(String, Bson)],
    mem: &'a Memory,
    stage: &'static str,
    index: HashMap<Vec<u8>, usize>,
    groups: Vec<Group>,
    buf: Vec<u8>,
    /// The number of documents pushed so far.
    seq: u64,
    /// Estimated bytes of the groups held.
    used: usize,
    runs: Vec<Run>,
}

/// One group: its `_id`, the number of its first document, its accumulators' states.
struct Group {
    id: Bson,
    first: u64,
    states: Vec<State>,
}

/// A group read back from a run, with its canonical key.
struct Partial {
    key: Vec<u8>,
    group: Group,
}

impl<'a> Grouper<'a> {
    /// A grouper for `stage` (named in errors) under the budget `mem`.
    pub(crate) fn new(
        accs: &'a [Accumulator],
        vars: &'a [(String, Bson)],
        mem: &'a Memory,
        stage: &'static str,
    ) -> Self {
        Self {
            accs,
            vars,
            mem,
            stage,
            index: HashMap::new(),
            groups: Vec::new(),
            buf: Vec::new(),
            seq: 0,
            used: 0,
            runs: Vec::new(),
        }
    }

    /// Adds one document; `key` evaluates its group's `_id`.
    ///
    /// Errors: the key's or an accumulator's expression error; past the limit without
    /// `allowDiskUse` (see [`Memory::check_spill`]); I/O writing a run.
    pub(crate) fn push(
        &mut self,
        doc: Document,
        key: &mut impl FnMut(&Env) -> Result<Bson>,
    ) -> Result<()> {
        let root = Bson::Document(doc);
        let env = Env::new(&root, self.vars);
        let id = or_null(key(&env)?);
        self.buf.clear();
        key_of(&id, &mut self.buf);
        let seq = self.seq;
        self.seq += 1;
        let slot = match self.index.get(&self.buf) {
            Some(&i) => i,
            None => {
                self.used += 96 + 2 * self.buf.len() + approx_value(&id) + 48 * self.accs.len();
                self.index.insert(self.buf.clone(), self.groups.len());
                self.groups.push(Group {
                    id,
                    first: seq,
                    states: self.accs.iter().map(Accumulator::start).collect(),
                });
                self.groups.len() - 1
            }
        };
        let states = &mut self.groups[slot].states;
        for (acc, state) in self.accs.iter().zip(states.iter_mut()) {
            let delta = acc.step(state, &env)?;
            self.used = self.used.saturating_add_signed(delta);
        }
        if self.used > self.mem.limit {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes the groups held as a run in key order and forgets them.
    fn spill(&mut self) -> Result<()> {
        self.mem.check_spill(self.stage)?;
        let mut keyed: Vec<(Vec<u8>, usize)> = self.index.drain().collect();
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut groups: Vec<Option<Group>> = std::mem::take(&mut self.groups)
            .into_iter()
            .map(Some)
            .collect();
        let mut w = RunWriter::create(self.mem)?;
        for (_, i) in keyed {
            if let Some(g) = groups[i].take() {
                w.push(&self.partial_doc(&g))?;
            }
        }
        self.runs.push(w.finish()?);
        self.used = 0;
        Ok(())
    }

    fn partial_doc(&self, g: &Group) -> Document {
        let mut d = Document::new();
        d.insert("s", i64::try_from(g.first).unwrap_or(i64::MAX));
        d.insert("i", g.id.clone());
        d.insert(
            "a",
            g.states
                .iter()
                .map(Accumulator::state_bson)
                .collect::<Vec<_>>(),
        );
        d
    }

    fn finish_group(accs: &[Accumulator], g: Group) -> Document {
        let mut d = Document::new();
        d.insert("_id", g.id);
        for (acc, state) in accs.iter().zip(g.states) {
            d.insert(acc.field.clone(), Accumulator::finish(state));
        }
        d
    }

    /// The groups, in first-seen order.
    ///
    /// Errors: I/O or a damaged run while merging spilled groups; past the limit without
    /// `allowDiskUse`.
    pub(crate) fn finish(mut self) -> Result<Box<dyn Iterator<Item = Result<Document>> + 'a>> {
        let accs = self.accs;
        if self.runs.is_empty() {
            return Ok(Box::new(
                self.groups
                    .into_iter()
                    .map(move |g| Ok(Self::finish_group(accs, g))),
            ));
        }
        if !self.groups.is_empty() {
            self.spill()?;
        }
        let runs = merge_rounds(std::mem::take(&mut self.runs), self.mem, |chunk, w| {
            let mut m = GroupMerge::new(chunk, accs)?;
            while let Some(p) = m.next_partial()? {
                w.push(&self.partial_doc(&p.group))?;
            }
            Ok(())
        })?;
        let mut m = GroupMerge::new(runs, accs)?;
        let mut sorter = Sorter::new(self.mem, self.stage, Box::new(by_first_seen), None);
        while let Some(p) = m.next_partial()? {
            let first = i64::try_from(p.group.first).unwrap_or(i64::MAX);
            sorter.push(
                vec![Some(Bson::Int64(first))],
                Self::finish_group(accs, p.group),
            )?;
        }
        sorter.finish()
    }
}

/// Orders the finished groups of a spilled `$group` by their first document's number.
fn by_first_seen(a: &[Option<Bson>], b: &[Option<Bson>]) -> Ordering {
    let n = |k: &[Option<Bson>]| match k.first() {
        Some(Some(Bson::Int64(i))) => *i,
        _ => i64::MAX,
    };
    n(a).cmp(&n(b))
}

/// Merges runs of partial groups (each sorted by key, one partial per key), combining the
/// partials of one key in run order.
struct GroupMerge<'a> {
    accs: &'a [Accumulator],
    readers: Vec<RunReader>,
    heads: Vec<Option<Partial>>,
}

impl<'a> GroupMerge<'a> {
    fn new(runs: Vec<Run>, accs: &'a [Accumulator]) -> Result<Self> {
        let mut readers = Vec::with_capacity(runs.len());
        for r in runs {
            readers.push(r.into_reader()?);
        }
        let mut heads = Vec::with_capacity(readers.len());
        for r in &mut readers {
            heads.push(read_partial(r, accs)?);
        }
        Ok(Self {
            accs,
            readers,
            heads,
        })
    }

    fn next_partial(&mut self) -> Result<Option<Partial>> {
        let Some(min) = self.heads.iter().flatten().map(|p| &p.key).min().cloned() else {
            return Ok(None);
        };
        let mut out: Option<Partial> = None;
        for i in 0..self.heads.len() {
            if self.heads[i].as_ref().is_none_or(|p| p.key != min) {
                continue;
            }
            let p = self.heads[i].take().expect("checked");
            self.heads[i] = read_partial(&mut self.readers[i], self.accs)?;
            match &mut out {
                None => out = Some(p),
                Some(o) => {
                    o.group.first = o.group.first.min(p.group.first);
                    for ((acc, s), later) in self
                        .accs
                        .iter()
                        .zip(o.group.states.iter_mut())
                        .zip(p.group.states)
                    {
                        acc.combine(s, later);
                    }
                }
            }
        }
        Ok(out)
    }
}

fn read_partial(r: &mut RunReader, accs: &[Accumulator]) -> Result<Option<Partial>> {
    let Some(d) = r.next().transpose()? else {
        return Ok(None);
    };
    let damaged = || Error::Corrupt("aggregate: a spilled $group run is not readable".into());
    let mut d = d;
    let first = d
        .get_i64("s")
        .ok()
        .and_then(|s| u64::try_from(s).ok())
        .ok_or_else(damaged)?;
    let id = d.remove("i").ok_or_else(damaged)?;
    let Some(Bson::Array(states)) = d.remove("a") else {
        return Err(damaged());
    };
    if states.len() != accs.len() {
        return Err(damaged());
    }
    let states = accs
        .iter()
        .zip(states)
        .map(|(acc, v)| acc.state_of(v))
        .collect::<Option<Vec<State>>>()
        .ok_or_else(damaged)?;
    let mut key = Vec::new();
    key_of(&id, &mut key);
    Ok(Some(Partial {
        key,
        group: Group { id, first, states },
    }))
}

/// A parsed `$bucket`.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    group_by: Expr,
    boundaries: Vec<Bson>,
    default: Option<Bson>,
    output: Vec<Accumulator>,
}

impl Bucket {
    pub(crate) fn parse(spec: &Bson) -> Result<Self> {
        let Bson::Document(d) = spec else {
            return Err(Error::parse("$bucket: the argument must be an object"));
        };
        let mut group_by = None;
        let mut boundaries = None;
        let mut default = None;
        let mut output = None;
        for (k, v) in d {
            match k.as_str() {
                "groupBy" => {
                    if !matches!(v, Bson::String(s) if s.starts_with('$'))
                        && !matches!(v, Bson::Document(_))
                    {
                        return Err(Error::parse(
                            "$bucket: the $bucket 'groupBy' field must be defined as a $-prefixed path or an expression",
                        ));
                    }
                    group_by = Some(Expr::parse(v)?);
                }
                "boundaries" => {
                    let Bson::Array(b) = v else {
                        return Err(Error::parse("$bucket: 'boundaries' field must be an array"));
                    };
                    boundaries = Some(b.clone());
                }
                "default" => default = Some(v.clone()),
                "output" => {
                    let Bson::Document(o) = v else {
                        return Err(Error::parse("$bucket: 'output' field must be an object"));
                    };
                    output = Some(accumulators(o, false, "$bucket")?);
                }
                other => {
                    return Err(Error::parse(format!(
                        "$bucket: unrecognized option to $bucket: {other}"
                    )))
                }
            }
        }
        let (Some(group_by), Some(boundaries)) = (group_by, boundaries) else {
            return Err(Error::parse(
                "$bucket requires 'groupBy' and 'boundaries' to be specified",
            ));
        };
        if boundaries.len() < 2 {
            return Err(Error::parse(format!(
                "$bucket: the $bucket 'boundaries' field must have at least 2 values, but found {} value(s)",
                boundaries.len()
            )));
        }
        let rank = crate::query::compare::type_rank;
        for w in boundaries.windows(2) {
            if rank(&w[0]) != rank(&w[1]) {
                return Err(Error::parse(
                    "$bucket: all values in the the 'boundaries' option to $bucket must have the same type",
                ));
            }
            if cmp_values(&w[0], &w[1]) != std::cmp::Ordering::Less {
                return Err(Error::parse(
                    "$bucket: the 'boundaries' option to $bucket must be sorted in ascending order",
                ));
            }
        }
        if let Some(def) = &default {
            let first = &boundaries[0];
            let last = &boundaries[boundaries.len() - 1];
            if rank(def) == rank(first)
                && cmp_values(def, first).is_ge()
                && cmp_values(def, last).is_lt()
            {
                return Err(Error::parse(
                    "$bucket: the $bucket 'default' field must be less than the lowest boundary or greater than or equal to the highest boundary",
                ));
            }
        }
        Ok(Self {
            group_by,
            boundaries,
            default,
            output: output.unwrap_or_else(|| vec![Accumulator::count("count")]),
        })
    }

    /// Runs the stage over `docs` (the buckets are few: they are returned held).
    ///
    /// Errors: an input outside every bucket without a default; the expression's; the
    /// grouping's (see [`Grouper::push`]).
    pub(crate) fn run(
        &self,
        docs: &mut dyn Iterator<Item = Result<Document>>,
        vars: &[(String, Bson)],
        mem: &Memory,
    ) -> Result<Vec<Document>> {
        let mut g = Grouper::new(&self.output, vars, mem, "$bucket");
        let mut key = |env: &Env| {
            let v = self.group_by.eval(env)?;
            let b = &self.boundaries;
            let rank = crate::query::compare::type_rank;
            if !is_missing(&v) && rank(&v) == rank(&b[0]) {
                for w in b.windows(2) {
                    if cmp_values(&v, &w[0]).is_ge() && cmp_values(&v, &w[1]).is_lt() {
                        return Ok(w[0].clone());
                    }
                }
            }
            self.default.clone().ok_or_else(|| {
                Error::invalid(
                    "$bucket could not find a matching branch for an input, and no default was specified.",
                )
            })
        };
        for d in docs {
            g.push(d?, &mut key)?;
        }
        let mut out = g.finish()?.collect::<Result<Vec<_>>>()?;
        // Buckets in boundary order, the default bucket last.
        let pos = |d: &Document| {
            let id = d.get("_id").unwrap_or(&Bson::Null);
            self.boundaries
                .iter()
                .position(|b| {
                    cmp_values(b, id).is_eq()
                        && crate::query::compare::type_rank(b)
                            == crate::query::compare::type_rank(id)
                })
                .unwrap_or(usize::MAX)
        };
        out.sort_by_key(pos);
        Ok(out)
    }
}
