//! `$lookup`: the equality form (`localField` / `foreignField`, one find per input
//! document through [`Foreign`], so an index on the foreign field serves it) and the
//! `let` + `pipeline` form (the foreign collection read once, the sub-pipeline run per
//! input document with the variables bound).

use super::shape::set_path;
use super::{approx_bytes, plain_path, stage_doc, Budget, Foreign, Pipeline};
use crate::error::{Error, Result};
use crate::query::expr::{is_nullish, Env, Expr};
use bson::{Bson, Document};

/// A parsed `$lookup`.
#[derive(Debug, Clone)]
pub(super) struct Lookup {
    from: String,
    local: Option<Vec<String>>,
    foreign: Option<String>,
    vars: Vec<(String, Expr)>,
    pipeline: Option<Pipeline>,
    as_path: Vec<String>,
}

pub(super) fn parse(arg: &Bson) -> Result<Lookup> {
    let d = stage_doc("$lookup", arg)?;
    let mut l = Lookup {
        from: String::new(),
        local: None,
        foreign: None,
        vars: Vec::new(),
        pipeline: None,
        as_path: Vec::new(),
    };
    let mut has_from = false;
    for (k, v) in d {
        match k.as_str() {
            "from" => match v {
                Bson::String(s) => {
                    l.from = s.clone();
                    has_from = true;
                }
                Bson::Document(_) => {
                    return Err(Error::unsupported(
                        "$lookup: 'from' naming another database is not supported by NexusLite",
                    ))
                }
                _ => return Err(Error::parse("$lookup: 'from' must be a string")),
            },
            "localField" => l.local = Some(plain_path("$lookup", v, "localField")?),
            "foreignField" => {
                l.foreign = Some(plain_path("$lookup", v, "foreignField")?.join("."));
            }
            "as" => l.as_path = plain_path("$lookup", v, "as")?,
            "let" => {
                let Bson::Document(vars) = v else {
                    return Err(Error::parse("$lookup: 'let' must be an object"));
                };
                for (name, e) in vars {
                    l.vars.push((name.clone(), Expr::parse(e)?));
                }
            }
            "pipeline" => l.pipeline = Some(Pipeline::parse_nested(v, "$lookup")?),
            other => {
                return Err(Error::parse(format!(
                    "unknown argument to $lookup: {other}"
                )))
            }
        }
    }
    if !has_from {
        return Err(Error::parse(
            "$lookup: missing 'from' option to $lookup stage",
        ));
    }
    if l.as_path.is_empty() {
        return Err(Error::parse(
            "$lookup: must specify 'as' field for a $lookup",
        ));
    }
    if l.local.is_some() != l.foreign.is_some() {
        return Err(Error::parse(
            "$lookup: 'localField' and 'foreignField' must both be specified",
        ));
    }
    if l.local.is_none() && l.pipeline.is_none() {
        return Err(Error::parse(
            "$lookup: either 'pipeline' or 'localField' and 'foreignField' must be specified",
        ));
    }
    Ok(l)
}

pub(super) fn lookup(
    l: &Lookup,
    docs: Vec<Document>,
    vars: &[(String, Bson)],
    foreign: &dyn Foreign,
) -> Result<Vec<Document>> {
    // The pipeline form reads the foreign collection once.
    let all = match (&l.pipeline, &l.local) {
        (Some(_), None) => Some(foreign.find(&l.from, &Document::new())?),
        _ => None,
    };
    let mut budget = Budget::new();
    let mut out = Vec::with_capacity(docs.len());
    for mut d in docs {
        let root = Bson::Document(d.clone());
        let env = Env::new(&root, vars);
        let matched = match (&l.local, &l.foreign) {
            (Some(local), Some(ff)) => {
                let v = crate::query::expr::walk(&root, local);
                let values: Vec<Bson> = match v {
                    Bson::Array(items) if items.is_empty() => vec![Bson::Null],
                    Bson::Array(items) => items,
                    other if is_nullish(&other) => vec![Bson::Null],
                    other => vec![other],
                };
                // Equality, not regex matching, for regex values.
                let values: Vec<Bson> = values
                    .into_iter()
                    .map(|v| match v {
                        Bson::RegularExpression(_) => bson::bson!({"$eq": v}),
                        other => other,
                    })
                    .collect();
                let filter = if values
                    .iter()
                    .any(|v| matches!(v, Bson::Document(d) if d.contains_key("$eq")))
                {
                    let ors: Vec<Bson> = values
                        .into_iter()
                        .map(|v| {
                            let mut c = Document::new();
                            c.insert(ff.clone(), v);
                            Bson::Document(c)
                        })
                        .collect();
                    bson::doc! {"$or": ors}
                } else if values.len() == 1 && !matches!(values[0], Bson::Document(_)) {
                    // One value (the common scalar localField): a plain equality, which the
                    // planner serves as a point lookup on `_id` or through an index (a
                    // document value stays inside `$in`, where its keys are never operators).
                    let mut f = Document::new();
                    f.insert(ff.clone(), values.into_iter().next().unwrap_or(Bson::Null));
                    f
                } else {
                    let mut f = Document::new();
                    f.insert(ff.clone(), bson::doc! {"$in": values});
                    f
                };
                foreign.find(&l.from, &filter)?
            }
            _ => all.clone().unwrap_or_default(),
        };
        let joined = match &l.pipeline {
            None => matched,
            Some(p) => {
                let mut bound: Vec<(String, Bson)> = vars.to_vec();
                for (name, e) in &l.vars {
                    bound.push((name.clone(), e.eval(&env)?));
                }
                p.run(matched, &bound, foreign)?
            }
        };
        for j in &joined {
            budget.charge(approx_bytes(j))?;
        }
        set_path(
            &mut d,
            &l.as_path,
            Bson::Array(joined.into_iter().map(Bson::Document).collect()),
        );
        out.push(d);
    }
    Ok(out)
}
