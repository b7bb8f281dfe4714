//! Grouping: `$group` (an `_id` expression and accumulators `$sum`, `$avg`, `$min`, `$max`,
//! `$first`, `$last`, `$push`, `$addToSet`, `$count`) and `$bucket`. Groups are found by
//! a canonical byte key of the `_id` value, in which numbers equal across types (`1`,
//! `1.0`, `NumberLong(1)`) are one key and missing is null; groups come out in the order
//! they were first seen.

use crate::error::{Error, Result};
use crate::query::expr::arith::{add, Num};
use crate::query::expr::{cmp_values, is_missing, is_nullish, or_null, Env, Expr};
use bson::{Bson, Document};
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

    fn step(&self, state: &mut State, env: &Env) -> Result<()> {
        if self.kind == Kind::Count {
            if let State::Sum(n) = state {
                *n = add(*n, Num::I32(1));
            }
            return Ok(());
        }
        let v = self.expr.eval(env)?;
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
                        *best = Some(v);
                    }
                }
            }
            State::First(first) => {
                if first.is_none() {
                    *first = Some(or_null(v));
                }
            }
            State::Last(last) => *last = or_null(v),
            State::Push(items) => {
                if !is_missing(&v) {
                    items.push(v);
                }
            }
            State::Set(items, seen) => {
                if !is_missing(&v) {
                    let mut k = Vec::new();
                    key_of(&v, &mut k);
                    if seen.insert(k) {
                        items.push(v);
                    }
                }
            }
        }
        Ok(())
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
/// group, in first-seen order. Only the groups are held, not the documents.
pub(crate) struct Grouper<'a> {
    accs: &'a [Accumulator],
    vars: &'a [(String, Bson)],
    index: HashMap<Vec<u8>, usize>,
    groups: Vec<(Bson, Vec<State>)>,
    buf: Vec<u8>,
}

impl<'a> Grouper<'a> {
    pub(crate) fn new(accs: &'a [Accumulator], vars: &'a [(String, Bson)]) -> Self {
        Self {
            accs,
            vars,
            index: HashMap::new(),
            groups: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// Adds one document; `key` evaluates its group's `_id`.
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
        let slot = match self.index.get(&self.buf) {
            Some(&i) => i,
            None => {
                self.index.insert(self.buf.clone(), self.groups.len());
                self.groups
                    .push((id, self.accs.iter().map(Accumulator::start).collect()));
                self.groups.len() - 1
            }
        };
        let states = &mut self.groups[slot].1;
        for (acc, state) in self.accs.iter().zip(states.iter_mut()) {
            acc.step(state, &env)?;
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<Document> {
        let accs = self.accs;
        self.groups
            .into_iter()
            .map(|(id, states)| {
                let mut d = Document::new();
                d.insert("_id", id);
                for (acc, state) in accs.iter().zip(states) {
                    d.insert(acc.field.clone(), Accumulator::finish(state));
                }
                d
            })
            .collect()
    }
}

/// Groups `docs` (see [`Grouper`]).
pub(crate) fn group_by(
    docs: Vec<Document>,
    accs: &[Accumulator],
    vars: &[(String, Bson)],
    mut key: impl FnMut(&Env) -> Result<Bson>,
) -> Result<Vec<Document>> {
    let mut g = Grouper::new(accs, vars);
    for d in docs {
        g.push(d, &mut key)?;
    }
    Ok(g.finish())
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

    pub(crate) fn run(
        &self,
        docs: Vec<Document>,
        vars: &[(String, Bson)],
    ) -> Result<Vec<Document>> {
        let mut out = group_by(docs, &self.output, vars, |env| {
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
        })?;
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
