//! The aggregation expression language: [`Expr`] is an expression parsed from its BSON
//! form (`"$a.b"`, `"$$var"`, `{"$add": ["$x", 1]}`, `{"$literal": ...}`, object and array
//! literals), evaluated with [`Expr::eval`] against a document and the variables of an
//! [`Env`]. Operators live by family: [`arith`], [`strings`], [`arrays`], [`dates`],
//! [`types`]; comparisons use MongoDB's value order ([`crate::query::compare`]). The layer
//! above is the aggregation pipeline ([`crate::query::aggregate`]).
//!
//! A missing value (a field path that reaches nothing, `$$REMOVE`) is represented as
//! `Bson::Undefined` while an expression is evaluated: MongoDB's "missing", which orders
//! before `null` and disappears from documents built by `$project` / `$addFields`. (The
//! deprecated BSON `undefined` type read from stored documents is treated as missing.)
//!
//! Expressions nest no deeper than their BSON form, whose nesting is checked
//! ([`crate::document::MAX_QUERY_NESTING`]) before parsing, so the recursive parser and
//! evaluator are bounded.

pub(crate) mod arith;
pub(crate) mod arrays;
pub(crate) mod dates;
pub(crate) mod strings;
pub(crate) mod types;

#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::query::compare::compare;
use bson::{Bson, Document};
use std::cmp::Ordering;

/// MongoDB's "missing" while expressions are evaluated (see the module docs).
pub(crate) const MISSING: Bson = Bson::Undefined;

/// Whether `v` is missing.
pub(crate) fn is_missing(v: &Bson) -> bool {
    matches!(v, Bson::Undefined)
}

/// Whether `v` is null or missing (the "nullish" inputs most operators answer with null).
pub(crate) fn is_nullish(v: &Bson) -> bool {
    matches!(v, Bson::Null | Bson::Undefined)
}

/// MongoDB's truthiness in expressions: false, 0, null and missing are false.
pub(crate) fn truthy(v: &Bson) -> bool {
    crate::query::filter::truthy(v)
}

/// The type name MongoDB's messages and `$type` use (`missing` for missing).
pub(crate) fn type_name(v: &Bson) -> &'static str {
    if is_missing(v) {
        "missing"
    } else {
        crate::query::update::type_name(v)
    }
}

/// MongoDB's order over expression values: missing before null, otherwise
/// [`crate::query::compare::compare`].
pub(crate) fn cmp_values(a: &Bson, b: &Bson) -> Ordering {
    match (is_missing(a), is_missing(b)) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => compare(a, b),
    }
}

/// An expression error with MongoDB's wording (`NEXUS_INVALID_ARGUMENT`).
pub(crate) fn fail(msg: impl Into<String>) -> Error {
    Error::invalid(msg)
}

/// Turns missing into null (array elements and accumulator inputs never hold missing).
pub(crate) fn or_null(v: Bson) -> Bson {
    if is_missing(&v) {
        Bson::Null
    } else {
        v
    }
}

/// The variables in scope: the document (`$$ROOT` / `$$CURRENT`) and the frames of
/// `let`, `$map`, `$filter` and `$reduce`, innermost first.
pub(crate) struct Env<'a> {
    root: &'a Bson,
    vars: &'a [(String, Bson)],
    parent: Option<&'a Env<'a>>,
}

impl<'a> Env<'a> {
    /// The environment of a document (`root` is a `Bson::Document`) with `vars` bound
    /// (a pipeline's `let`).
    pub(crate) fn new(root: &'a Bson, vars: &'a [(String, Bson)]) -> Self {
        Self {
            root,
            vars,
            parent: None,
        }
    }

    /// A frame binding `vars` inside `self`.
    pub(crate) fn with<'b>(&'b self, vars: &'b [(String, Bson)]) -> Env<'b> {
        Env {
            root: self.root,
            vars,
            parent: Some(self),
        }
    }

    fn var(&self, name: &str) -> Option<&Bson> {
        let mut env = Some(self);
        while let Some(e) = env {
            if let Some((_, v)) = e.vars.iter().rev().find(|(n, _)| n == name) {
                return Some(v);
            }
            env = e.parent;
        }
        None
    }
}

/// A parsed expression.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    /// A constant.
    Lit(Bson),
    /// `$a.b.c`: a path from `$$CURRENT`.
    Field(Vec<String>),
    /// `$$name.a.b`: a variable, then a path into it.
    Var(String, Vec<String>),
    /// An object literal whose values are expressions (missing values are left out).
    Object(Vec<(String, Expr)>),
    /// An array literal (missing elements become null).
    Array(Vec<Expr>),
    /// An operator whose arguments are evaluated first.
    Call(&'static str, Vec<Expr>),
    /// `$and` / `$or`, evaluated left to right and short-circuited.
    And(Vec<Expr>),
    Or(Vec<Expr>),
    /// `$cond`.
    Cond(Box<[Expr; 3]>),
    /// `$ifNull`: the first argument that is neither null nor missing, else the last.
    IfNull(Vec<Expr>),
    /// `$switch`.
    Switch {
        branches: Vec<(Expr, Expr)>,
        default: Option<Box<Expr>>,
    },
    /// `$let`.
    Let {
        vars: Vec<(String, Expr)>,
        body: Box<Expr>,
    },
    /// `$map`.
    Map {
        input: Box<Expr>,
        name: String,
        body: Box<Expr>,
    },
    /// `$filter`.
    Filter {
        input: Box<Expr>,
        name: String,
        cond: Box<Expr>,
        limit: Option<Box<Expr>>,
    },
    /// `$reduce`.
    Reduce {
        input: Box<Expr>,
        initial: Box<Expr>,
        body: Box<Expr>,
    },
    /// Operators whose arguments are named (`$trim`, `$regexMatch`, `$dateToString`,
    /// `$convert`, date parts in their object form): the name and the arguments by name.
    Named(&'static str, Vec<(&'static str, Expr)>),
}

/// Operators whose arguments are evaluated first: name, fewest and most arguments.
const CALLS: &[(&str, usize, usize)] = &[
    ("$add", 0, usize::MAX),
    ("$subtract", 2, 2),
    ("$multiply", 0, usize::MAX),
    ("$divide", 2, 2),
    ("$mod", 2, 2),
    ("$abs", 1, 1),
    ("$ceil", 1, 1),
    ("$floor", 1, 1),
    ("$round", 1, 2),
    ("$trunc", 1, 2),
    ("$sqrt", 1, 1),
    ("$pow", 2, 2),
    ("$exp", 1, 1),
    ("$ln", 1, 1),
    ("$log10", 1, 1),
    ("$log", 2, 2),
    ("$eq", 2, 2),
    ("$ne", 2, 2),
    ("$gt", 2, 2),
    ("$gte", 2, 2),
    ("$lt", 2, 2),
    ("$lte", 2, 2),
    ("$cmp", 2, 2),
    ("$not", 1, 1),
    ("$concat", 0, usize::MAX),
    ("$toLower", 1, 1),
    ("$toUpper", 1, 1),
    ("$substrCP", 3, 3),
    ("$substrBytes", 3, 3),
    ("$substr", 3, 3),
    ("$strLenCP", 1, 1),
    ("$strLenBytes", 1, 1),
    ("$split", 2, 2),
    ("$indexOfCP", 2, 4),
    ("$indexOfBytes", 2, 4),
    ("$strcasecmp", 2, 2),
    ("$size", 1, 1),
    ("$in", 2, 2),
    ("$arrayElemAt", 2, 2),
    ("$first", 1, 1),
    ("$last", 1, 1),
    ("$slice", 2, 3),
    ("$concatArrays", 0, usize::MAX),
    ("$isArray", 1, 1),
    ("$reverseArray", 1, 1),
    ("$range", 2, 3),
    ("$indexOfArray", 2, 4),
    ("$mergeObjects", 0, usize::MAX),
    ("$objectToArray", 1, 1),
    ("$arrayToObject", 1, 1),
    ("$year", 1, 1),
    ("$month", 1, 1),
    ("$dayOfMonth", 1, 1),
    ("$hour", 1, 1),
    ("$minute", 1, 1),
    ("$second", 1, 1),
    ("$millisecond", 1, 1),
    ("$dayOfWeek", 1, 1),
    ("$dayOfYear", 1, 1),
    ("$type", 1, 1),
    ("$isNumber", 1, 1),
    ("$toString", 1, 1),
    ("$toInt", 1, 1),
    ("$toLong", 1, 1),
    ("$toDouble", 1, 1),
    ("$toBool", 1, 1),
    ("$toDate", 1, 1),
    ("$toObjectId", 1, 1),
    ("$sum", 0, usize::MAX),
    ("$avg", 0, usize::MAX),
    ("$min", 0, usize::MAX),
    ("$max", 0, usize::MAX),
];

/// Operators with named arguments: name, the arguments it takes, those it requires.
const NAMED: &[(&str, &[&str], &[&str])] = &[
    ("$trim", &["input", "chars"], &["input"]),
    ("$ltrim", &["input", "chars"], &["input"]),
    ("$rtrim", &["input", "chars"], &["input"]),
    (
        "$regexMatch",
        &["input", "regex", "options"],
        &["input", "regex"],
    ),
    (
        "$dateToString",
        &["date", "format", "timezone", "onNull"],
        &["date"],
    ),
    (
        "$convert",
        &["input", "to", "onError", "onNull"],
        &["input", "to"],
    ),
];

/// MongoDB's message for a wrong number of arguments.
#[cold]
#[inline(never)]
fn arity_error(name: &str, min: usize, max: usize, got: usize) -> Error {
    let want = if min == max {
        format!("exactly {min}")
    } else if max == usize::MAX {
        format!("at least {min}")
    } else {
        format!("{min} to {max}")
    };
    Error::parse(format!(
        "Expression {name} takes {want} arguments. {got} were passed in."
    ))
}

#[cold]
#[inline(never)]
fn bad_spec(op: &str, why: &str) -> Error {
    Error::parse(format!("{op}: {why}"))
}

/// The arguments of an operator: an array's elements, or the one value.
fn args_of(v: &Bson) -> Vec<&Bson> {
    match v {
        Bson::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}

/// Checks a variable name a user binds (`let`, `as`).
fn check_var_name(name: &str, op: &str) -> Result<()> {
    let first = name.chars().next();
    let ok = first.is_some_and(|c| c.is_ascii_lowercase() || !c.is_ascii())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii());
    if ok {
        Ok(())
    } else {
        Err(bad_spec(
            op,
            &format!("'{name}' starts with an invalid character for a user variable name"),
        ))
    }
}

fn path_parts(path: &str, whole: &str) -> Result<Vec<String>> {
    crate::query::path::check_limits("expression", path)?;
    let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
    if parts.iter().any(String::is_empty) {
        return Err(Error::parse(format!(
            "invalid field path '{whole}': field names may not be empty"
        )));
    }
    Ok(parts)
}

impl Expr {
    /// Parses an expression from its BSON form.
    ///
    /// Errors: [`Error::Parse`] for a malformed expression (wrong argument count, bad
    /// field path), [`Error::Unsupported`] naming an operator this build does not have.
    pub(crate) fn parse(v: &Bson) -> Result<Self> {
        match v {
            Bson::String(s) if s.starts_with("$$") => {
                let mut it = s[2..].splitn(2, '.');
                let name = it.next().unwrap_or_default().to_owned();
                if name.is_empty() {
                    return Err(Error::parse(format!("invalid variable reference '{s}'")));
                }
                let rest = match it.next() {
                    Some(p) => path_parts(p, s)?,
                    None => Vec::new(),
                };
                Ok(Expr::Var(name, rest))
            }
            Bson::String(s) if s.starts_with('$') => {
                if s.len() == 1 {
                    return Err(Error::parse("'$' by itself is not a valid field path"));
                }
                Ok(Expr::Field(path_parts(&s[1..], s)?))
            }
            Bson::Array(items) => Ok(Expr::Array(
                items.iter().map(Expr::parse).collect::<Result<_>>()?,
            )),
            Bson::Document(d) => Self::parse_object(d),
            other => Ok(Expr::Lit(other.clone())),
        }
    }

    fn parse_object(d: &Document) -> Result<Self> {
        let Some((first, arg)) = d.iter().next() else {
            return Ok(Expr::Lit(Bson::Document(Document::new())));
        };
        if !first.starts_with('$') {
            let mut fields = Vec::with_capacity(d.len());
            for (k, v) in d {
                if k.starts_with('$') {
                    return Err(Error::parse(format!(
                        "an expression object may not mix field names and operators: '{k}'"
                    )));
                }
                if k.contains('.') {
                    return Err(Error::parse(format!(
                        "FieldPath field names may not contain '.': '{k}'"
                    )));
                }
                fields.push((k.clone(), Expr::parse(v)?));
            }
            return Ok(Expr::Object(fields));
        }
        if d.len() != 1 {
            return Err(Error::parse(format!(
                "an expression specification must contain exactly one field, the name of the expression. Found {} fields",
                d.len()
            )));
        }
        Self::parse_operator(first, arg)
    }

    fn parse_operator(op: &str, arg: &Bson) -> Result<Self> {
        let list = |arg: &Bson| -> Result<Vec<Expr>> {
            args_of(arg).into_iter().map(Expr::parse).collect()
        };
        match op {
            "$literal" => return Ok(Expr::Lit(arg.clone())),
            "$and" => return Ok(Expr::And(list(arg)?)),
            "$or" => return Ok(Expr::Or(list(arg)?)),
            "$ifNull" => {
                let a = list(arg)?;
                if a.len() < 2 {
                    return Err(bad_spec(op, "$ifNull needs at least two arguments"));
                }
                return Ok(Expr::IfNull(a));
            }
            "$cond" => return Self::parse_cond(arg),
            "$switch" => return Self::parse_switch(arg),
            "$let" => return Self::parse_let(arg),
            "$map" | "$filter" | "$reduce" => return Self::parse_iteration(op, arg),
            _ => {}
        }
        if let Some(&(name, min, max)) = CALLS.iter().find(|(n, _, _)| *n == op) {
            // The date operators also take `{date: <expr>, timezone: <tz>}`.
            if let (true, Bson::Document(d)) = (dates::is_part(name), arg) {
                if d.contains_key("date") {
                    return Self::parse_named(name, &["date", "timezone"], &["date"], d);
                }
            }
            let args = list(arg)?;
            if args.len() < min || args.len() > max {
                return Err(arity_error(name, min, max, args.len()));
            }
            return Ok(Expr::Call(name, args));
        }
        if let Some(&(name, allowed, required)) = NAMED.iter().find(|(n, _, _)| *n == op) {
            let Bson::Document(d) = arg else {
                return Err(bad_spec(name, "expects an object as its argument"));
            };
            return Self::parse_named(name, allowed, required, d);
        }
        Err(Error::unsupported(format!(
            "Unrecognized expression '{op}' (not supported by NexusLite)"
        )))
    }

    #[inline(never)] // keeps the recursive parse path's frames small
    fn parse_named(
        name: &'static str,
        allowed: &[&'static str],
        required: &[&str],
        d: &Document,
    ) -> Result<Self> {
        let mut out = Vec::new();
        for (k, v) in d {
            let Some(key) = allowed.iter().find(|a| **a == k) else {
                return Err(bad_spec(name, &format!("unrecognized argument '{k}'")));
            };
            out.push((*key, Expr::parse(v)?));
        }
        for r in required {
            if !out.iter().any(|(k, _)| k == r) {
                return Err(bad_spec(name, &format!("missing '{r}' argument")));
            }
        }
        Ok(Expr::Named(name, out))
    }

    #[inline(never)] // keeps the recursive parse path's frames small
    fn parse_cond(arg: &Bson) -> Result<Self> {
        let parts = match arg {
            Bson::Array(a) if a.len() == 3 => [&a[0], &a[1], &a[2]],
            Bson::Array(a) => {
                return Err(Error::parse(format!(
                    "Expression $cond takes exactly 3 arguments. {} were passed in.",
                    a.len()
                )))
            }
            Bson::Document(d) => {
                for k in d.keys() {
                    if !["if", "then", "else"].contains(&k.as_str()) {
                        return Err(bad_spec("$cond", &format!("unrecognized parameter '{k}'")));
                    }
                }
                let get = |k: &str| {
                    d.get(k)
                        .ok_or_else(|| bad_spec("$cond", &format!("missing '{k}' parameter")))
                };
                [get("if")?, get("then")?, get("else")?]
            }
            _ => return Err(bad_spec("$cond", "expects an array or an object")),
        };
        Ok(Expr::Cond(Box::new([
            Expr::parse(parts[0])?,
            Expr::parse(parts[1])?,
            Expr::parse(parts[2])?,
        ])))
    }

    #[inline(never)] // keeps the recursive parse path's frames small
    fn parse_switch(arg: &Bson) -> Result<Self> {
        let Bson::Document(d) = arg else {
            return Err(bad_spec("$switch", "requires an object as an argument"));
        };
        let mut branches = Vec::new();
        let mut default = None;
        for (k, v) in d {
            match (k.as_str(), v) {
                ("branches", Bson::Array(items)) => {
                    for b in items {
                        let Bson::Document(b) = b else {
                            return Err(bad_spec(
                                "$switch",
                                "expected each branch to be an object",
                            ));
                        };
                        let (Some(c), Some(t)) = (b.get("case"), b.get("then")) else {
                            return Err(bad_spec(
                                "$switch",
                                "each branch requires a 'case' and a 'then' expression",
                            ));
                        };
                        if b.len() != 2 {
                            return Err(bad_spec(
                                "$switch",
                                "found an unknown argument to a branch",
                            ));
                        }
                        branches.push((Expr::parse(c)?, Expr::parse(t)?));
                    }
                }
                ("branches", _) => {
                    return Err(bad_spec("$switch", "expected an array for 'branches'"))
                }
                ("default", v) => default = Some(Box::new(Expr::parse(v)?)),
                (other, _) => {
                    return Err(bad_spec(
                        "$switch",
                        &format!("found an unknown argument: {other}"),
                    ))
                }
            }
        }
        if branches.is_empty() {
            return Err(bad_spec("$switch", "requires at least one branch"));
        }
        Ok(Expr::Switch { branches, default })
    }

    #[inline(never)] // keeps the recursive parse path's frames small
    fn parse_let(arg: &Bson) -> Result<Self> {
        let Bson::Document(d) = arg else {
            return Err(bad_spec("$let", "only supports an object as its argument"));
        };
        let (Some(Bson::Document(vars)), Some(body)) = (d.get("vars"), d.get("in")) else {
            return Err(bad_spec("$let", "requires 'vars' (an object) and 'in'"));
        };
        if d.len() != 2 {
            return Err(bad_spec("$let", "only 'vars' and 'in' are allowed"));
        }
        let mut out = Vec::new();
        for (k, v) in vars {
            check_var_name(k, "$let")?;
            out.push((k.clone(), Expr::parse(v)?));
        }
        Ok(Expr::Let {
            vars: out,
            body: Box::new(Expr::parse(body)?),
        })
    }

    #[inline(never)] // keeps the recursive parse path's frames small
    fn parse_iteration(op: &str, arg: &Bson) -> Result<Self> {
        let Bson::Document(d) = arg else {
            return Err(bad_spec(op, "only supports an object as its argument"));
        };
        let allowed: &[&str] = match op {
            "$map" => &["input", "as", "in"],
            "$filter" => &["input", "as", "cond", "limit"],
            _ => &["input", "initialValue", "in"],
        };
        for k in d.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(bad_spec(op, &format!("unrecognized parameter '{k}'")));
            }
        }
        let need = |k: &str| -> Result<Box<Expr>> {
            d.get(k)
                .ok_or_else(|| bad_spec(op, &format!("missing '{k}' parameter")))
                .and_then(Expr::parse)
                .map(Box::new)
        };
        let name = match d.get("as") {
            None => "this".to_owned(),
            Some(Bson::String(s)) => {
                check_var_name(s, op)?;
                s.clone()
            }
            Some(_) => return Err(bad_spec(op, "'as' must be a string")),
        };
        Ok(match op {
            "$map" => Expr::Map {
                input: need("input")?,
                name,
                body: need("in")?,
            },
            "$filter" => Expr::Filter {
                input: need("input")?,
                name,
                cond: need("cond")?,
                limit: d.get("limit").map(Expr::parse).transpose()?.map(Box::new),
            },
            _ => Expr::Reduce {
                input: need("input")?,
                initial: need("initialValue")?,
                body: need("in")?,
            },
        })
    }

    /// The top-level fields of the current document the expression reads, added to `out`;
    /// false when it reads the whole document (`$$ROOT` / `$$CURRENT` without a path).
    pub(crate) fn top_fields(&self, out: &mut Vec<String>) -> bool {
        fn all<'e>(es: impl IntoIterator<Item = &'e Expr>, out: &mut Vec<String>) -> bool {
            es.into_iter().all(|e| e.top_fields(out))
        }
        match self {
            Expr::Lit(_) => true,
            Expr::Field(path) => {
                out.extend(path.first().cloned());
                true
            }
            Expr::Var(name, path) => match name.as_str() {
                "ROOT" | "CURRENT" => match path.first() {
                    Some(first) => {
                        out.push(first.clone());
                        true
                    }
                    None => false,
                },
                _ => true,
            },
            Expr::Object(fields) => all(fields.iter().map(|(_, e)| e), out),
            Expr::Named(_, args) => all(args.iter().map(|(_, e)| e), out),
            Expr::Array(es)
            | Expr::Call(_, es)
            | Expr::And(es)
            | Expr::Or(es)
            | Expr::IfNull(es) => all(es, out),
            Expr::Cond(parts) => all(parts.iter(), out),
            Expr::Switch { branches, default } => {
                all(branches.iter().flat_map(|(c, v)| [c, v]), out)
                    && default.as_ref().is_none_or(|d| d.top_fields(out))
            }
            Expr::Let { vars, body } => {
                all(vars.iter().map(|(_, e)| e), out) && body.top_fields(out)
            }
            Expr::Map { input, body, .. } => input.top_fields(out) && body.top_fields(out),
            Expr::Filter {
                input, cond, limit, ..
            } => {
                input.top_fields(out)
                    && cond.top_fields(out)
                    && limit.as_ref().is_none_or(|l| l.top_fields(out))
            }
            Expr::Reduce {
                input,
                initial,
                body,
            } => input.top_fields(out) && initial.top_fields(out) && body.top_fields(out),
        }
    }

    /// Evaluates against the document and variables of `env`; missing is `Bson::Undefined`.
    ///
    /// Errors: [`Error::InvalidArgument`] with MongoDB's wording where an operator refuses
    /// its input (`can't $divide by zero`, `$size` of a non-array, ...).
    pub(crate) fn eval(&self, env: &Env) -> Result<Bson> {
        match self {
            Expr::Lit(v) => Ok(v.clone()),
            Expr::Field(path) => Ok(walk(env.root, path)),
            Expr::Var(name, path) => {
                let v = match name.as_str() {
                    "ROOT" | "CURRENT" => env.root,
                    "REMOVE" => return Ok(MISSING),
                    "NOW" => return Ok(Bson::DateTime(bson::DateTime::now())),
                    _ => env.var(name).ok_or_else(|| {
                        Error::invalid(format!("Use of undefined variable: {name}"))
                    })?,
                };
                Ok(if path.is_empty() {
                    v.clone()
                } else {
                    walk(v, path)
                })
            }
            Expr::Object(fields) => {
                let mut d = Document::new();
                for (k, e) in fields {
                    let v = e.eval(env)?;
                    if !is_missing(&v) {
                        d.insert(k.clone(), v);
                    }
                }
                Ok(Bson::Document(d))
            }
            Expr::Array(items) => Ok(Bson::Array(
                items
                    .iter()
                    .map(|e| e.eval(env).map(or_null))
                    .collect::<Result<_>>()?,
            )),
            Expr::And(items) => {
                for e in items {
                    if !truthy(&e.eval(env)?) {
                        return Ok(Bson::Boolean(false));
                    }
                }
                Ok(Bson::Boolean(true))
            }
            Expr::Or(items) => {
                for e in items {
                    if truthy(&e.eval(env)?) {
                        return Ok(Bson::Boolean(true));
                    }
                }
                Ok(Bson::Boolean(false))
            }
            Expr::Cond(parts) => {
                if truthy(&parts[0].eval(env)?) {
                    parts[1].eval(env)
                } else {
                    parts[2].eval(env)
                }
            }
            Expr::IfNull(items) => {
                let (last, rest) = items.split_last().expect("checked when parsed");
                for e in rest {
                    let v = e.eval(env)?;
                    if !is_nullish(&v) {
                        return Ok(v);
                    }
                }
                last.eval(env)
            }
            Expr::Switch { branches, default } => {
                for (c, t) in branches {
                    if truthy(&c.eval(env)?) {
                        return t.eval(env);
                    }
                }
                match default {
                    Some(d) => d.eval(env),
                    None => Err(fail(
                        "$switch could not find a matching branch for an input, and no default was specified.",
                    )),
                }
            }
            Expr::Let { vars, body } => {
                let mut bound = Vec::with_capacity(vars.len());
                for (k, e) in vars {
                    bound.push((k.clone(), e.eval(env)?));
                }
                body.eval(&env.with(&bound))
            }
            Expr::Map { .. } | Expr::Filter { .. } | Expr::Reduce { .. } => {
                arrays::iterate(self, env)
            }
            Expr::Call(name, args) => {
                let vals = args
                    .iter()
                    .map(|e| e.eval(env))
                    .collect::<Result<Vec<_>>>()?;
                call(name, vals)
            }
            Expr::Named(name, args) => {
                let mut vals: Vec<(&str, Bson)> = Vec::with_capacity(args.len());
                for (k, e) in args {
                    vals.push((k, e.eval(env)?));
                }
                named(name, &vals)
            }
        }
    }
}

/// The argument `key` of a named operator (missing when not given).
pub(crate) fn arg<'v>(args: &'v [(&str, Bson)], key: &str) -> Option<&'v Bson> {
    args.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

fn named(name: &str, args: &[(&str, Bson)]) -> Result<Bson> {
    match name {
        "$trim" | "$ltrim" | "$rtrim" => strings::trim(name, args),
        "$regexMatch" => strings::regex_match(args),
        "$dateToString" => dates::date_to_string(args),
        "$convert" => types::convert(args),
        _ if dates::is_part(name) => {
            if let Some(tz) = arg(args, "timezone") {
                dates::check_timezone(tz)?;
            }
            dates::part(name, arg(args, "date").unwrap_or(&MISSING))
        }
        _ => Err(Error::Internal(format!(
            "named operator {name} has no implementation"
        ))),
    }
}

fn call(name: &str, a: Vec<Bson>) -> Result<Bson> {
    if let Some(r) = arith::call(name, &a) {
        return r;
    }
    if let Some(r) = strings::call(name, &a) {
        return r;
    }
    if let Some(r) = arrays::call(name, &a) {
        return r;
    }
    if dates::is_part(name) {
        return dates::part(name, &a[0]);
    }
    if let Some(r) = types::call(name, &a) {
        return r;
    }
    let cmp = |op: fn(Ordering) -> bool| Ok(Bson::Boolean(op(cmp_values(&a[0], &a[1]))));
    match name {
        "$eq" => cmp(Ordering::is_eq),
        "$ne" => cmp(Ordering::is_ne),
        "$gt" => cmp(Ordering::is_gt),
        "$gte" => cmp(Ordering::is_ge),
        "$lt" => cmp(Ordering::is_lt),
        "$lte" => cmp(Ordering::is_le),
        "$cmp" => Ok(Bson::Int32(match cmp_values(&a[0], &a[1]) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        })),
        "$not" => Ok(Bson::Boolean(!truthy(&a[0]))),
        _ => Err(Error::Internal(format!(
            "operator {name} has no implementation"
        ))),
    }
}

/// A path from a value: documents by field, arrays element by element (each element that
/// is a document or an array; the results gathered into an array), anything else missing.
pub(crate) fn walk(v: &Bson, path: &[String]) -> Bson {
    let Some((first, rest)) = path.split_first() else {
        return v.clone();
    };
    match v {
        Bson::Document(d) => match d.get(first) {
            Some(x) => walk(x, rest),
            None => MISSING,
        },
        Bson::Array(items) => Bson::Array(
            items
                .iter()
                .filter(|x| matches!(x, Bson::Document(_) | Bson::Array(_)))
                .map(|x| walk(x, path))
                .filter(|x| !is_missing(x))
                .collect(),
        ),
        _ => MISSING,
    }
}
