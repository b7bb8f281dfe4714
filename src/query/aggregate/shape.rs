//! The stages that reshape one document: `$project` (inclusion, exclusion, computed
//! fields, the `_id` rule), `$addFields` / `$set`, `$unset`, and [`set_path`], which
//! `$addFields` and `$unwind` use to write a dotted path.

use crate::error::{Error, Result};
use crate::query::expr::{is_missing, Env, Expr};
use bson::{Bson, Document};

/// One field of a projection tree.
#[derive(Debug, Clone)]
enum Node {
    Include,
    Exclude,
    Computed(Expr),
    Sub(Tree),
}

/// A projection level: its fields in the order written.
#[derive(Debug, Clone, Default)]
struct Tree {
    fields: Vec<(String, Node)>,
}

impl Tree {
    fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.fields
            .iter_mut()
            .find(|(k, _)| k == name)
            .map(|(_, n)| n)
    }

    fn node(&self, name: &str) -> Option<&Node> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, n)| n)
    }

    /// Adds `node` at a dotted path.
    fn add(&mut self, path: &str, node: Node, stage: &str) -> Result<()> {
        crate::query::path::check_limits(stage, path)?;
        let mut parts = path.split('.').peekable();
        let mut tree = self;
        while let Some(p) = parts.next() {
            if p.is_empty() || p.starts_with('$') {
                return Err(Error::parse(format!(
                    "Invalid {stage} :: caused by :: FieldPath field names may not be empty or start with '$': '{path}'"
                )));
            }
            if parts.peek().is_none() {
                if tree.node(p).is_some() {
                    return Err(Error::parse(format!(
                        "Invalid {stage} :: caused by :: Path collision at {path}"
                    )));
                }
                tree.fields.push((p.to_owned(), node));
                return Ok(());
            }
            if tree.node(p).is_none() {
                tree.fields.push((p.to_owned(), Node::Sub(Tree::default())));
            }
            tree = match tree.node_mut(p) {
                Some(Node::Sub(t)) => t,
                _ => {
                    return Err(Error::parse(format!(
                        "Invalid {stage} :: caused by :: Path collision at {path}"
                    )))
                }
            };
        }
        Ok(())
    }

    fn has_computed(&self) -> bool {
        self.fields.iter().any(|(_, n)| match n {
            Node::Computed(_) => true,
            Node::Sub(t) => t.has_computed(),
            _ => false,
        })
    }
}

/// A parsed `$project` or `$unset`.
#[derive(Debug, Clone)]
pub(crate) struct Projection {
    tree: Tree,
    inclusion: bool,
}

/// Whether a projection value means "include" (true), "exclude" (false) or neither.
fn flag(v: &Bson) -> Option<bool> {
    match v {
        Bson::Boolean(b) => Some(*b),
        Bson::Int32(i) => Some(*i != 0),
        Bson::Int64(i) => Some(*i != 0),
        Bson::Double(d) => Some(*d != 0.0),
        _ => None,
    }
}

impl Projection {
    /// Parses a `$project` specification.
    pub(crate) fn parse(spec: &Document) -> Result<Self> {
        if spec.is_empty() {
            return Err(Error::parse(
                "Invalid $project :: caused by :: projection specification must have at least one field",
            ));
        }
        let mut tree = Tree::default();
        let mut mode: Option<bool> = None;
        fill(&mut tree, spec, "", &mut mode)?;
        let inclusion = mode.unwrap_or(matches!(tree.node("_id"), Some(Node::Include)));
        if inclusion && tree.node("_id").is_none() {
            tree.fields.insert(0, ("_id".to_owned(), Node::Include));
        }
        Ok(Self { tree, inclusion })
    }

    /// `$unset`: one path or an array of paths.
    pub(crate) fn unset(spec: &Bson) -> Result<Self> {
        let paths: Vec<&Bson> = match spec {
            Bson::String(_) => vec![spec],
            Bson::Array(items) if !items.is_empty() => items.iter().collect(),
            _ => {
                return Err(Error::parse(
                    "$unset specification must be a string or an array with at least one field",
                ))
            }
        };
        let mut tree = Tree::default();
        for p in paths {
            let Bson::String(p) = p else {
                return Err(Error::parse("$unset specification must be a string or an array containing only string values"));
            };
            tree.add(p, Node::Exclude, "$unset")?;
        }
        Ok(Self {
            tree,
            inclusion: false,
        })
    }

    /// The projected document; computed fields see `env` (the input document).
    pub(crate) fn apply(&self, doc: &Document, env: &Env) -> Result<Document> {
        if self.inclusion {
            include(&self.tree, doc, env)
        } else {
            Ok(exclude(&self.tree, doc))
        }
    }
}

fn fill(tree: &mut Tree, spec: &Document, prefix: &str, mode: &mut Option<bool>) -> Result<()> {
    for (k, v) in spec {
        let full = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let node = match v {
            Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
                Node::Computed(Expr::parse(v)?)
            }
            Bson::Document(d) if d.is_empty() => {
                return Err(Error::parse(format!(
                    "Invalid $project :: caused by :: An empty sub-projection is not a valid value. Found empty object at path {full}"
                )))
            }
            Bson::Document(d) => {
                let mut sub = Tree::default();
                fill(&mut sub, d, &full, mode)?;
                tree.add(k, Node::Sub(sub), "$project")?;
                continue;
            }
            other => match flag(other) {
                Some(true) => Node::Include,
                Some(false) => Node::Exclude,
                None => Node::Computed(Expr::parse(other)?),
            },
        };
        let is_top_id = full == "_id";
        match (&node, *mode) {
            (Node::Include | Node::Exclude, _) if is_top_id => {}
            (Node::Exclude, Some(true)) => {
                return Err(Error::parse(format!(
                    "Invalid $project :: caused by :: Cannot do exclusion on field {full} in inclusion projection"
                )))
            }
            (Node::Include, Some(false)) => {
                return Err(Error::parse(format!(
                    "Invalid $project :: caused by :: Cannot do inclusion on field {full} in exclusion projection"
                )))
            }
            (Node::Computed(_), Some(false)) => {
                return Err(Error::parse(
                    "Invalid $project :: caused by :: Cannot use expression other than $meta in exclusion projection",
                ))
            }
            (Node::Exclude, _) => *mode = Some(false),
            _ => *mode = Some(true),
        }
        tree.add(k, node, "$project")?;
    }
    Ok(())
}

fn include(tree: &Tree, doc: &Document, env: &Env) -> Result<Document> {
    let mut out = Document::new();
    // A computed `_id` comes first, as MongoDB writes it.
    if let Some(Node::Computed(e)) = tree.node("_id") {
        let v = e.eval(env)?;
        if !is_missing(&v) {
            out.insert("_id", v);
        }
    }
    for (k, v) in doc {
        match (tree.node(k), v) {
            (Some(Node::Include), _) => {
                out.insert(k.clone(), v.clone());
            }
            (Some(Node::Sub(t)), Bson::Document(d)) => {
                out.insert(k.clone(), include(t, d, env)?);
            }
            (Some(Node::Sub(t)), Bson::Array(items)) => {
                out.insert(k.clone(), include_array(t, items, env)?);
            }
            _ => {}
        }
    }
    for (k, n) in &tree.fields {
        match n {
            Node::Computed(e) if k != "_id" => {
                let v = e.eval(env)?;
                if !is_missing(&v) {
                    out.insert(k.clone(), v);
                }
            }
            Node::Sub(t) if !out.contains_key(k) && t.has_computed() => {
                let d = include(t, &Document::new(), env)?;
                out.insert(k.clone(), d);
            }
            _ => {}
        }
    }
    Ok(out)
}

fn include_array(tree: &Tree, items: &[Bson], env: &Env) -> Result<Bson> {
    let mut out = Vec::new();
    for item in items {
        match item {
            Bson::Document(d) => out.push(Bson::Document(include(tree, d, env)?)),
            Bson::Array(inner) => out.push(include_array(tree, inner, env)?),
            _ if tree.has_computed() => {
                out.push(Bson::Document(include(tree, &Document::new(), env)?));
            }
            _ => {}
        }
    }
    Ok(Bson::Array(out))
}

fn exclude(tree: &Tree, doc: &Document) -> Document {
    let mut out = Document::new();
    for (k, v) in doc {
        match (tree.node(k), v) {
            (Some(Node::Exclude), _) => {}
            (Some(Node::Sub(t)), Bson::Document(d)) => {
                out.insert(k.clone(), exclude(t, d));
            }
            (Some(Node::Sub(t)), Bson::Array(items)) => {
                out.insert(k.clone(), exclude_array(t, items));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

fn exclude_array(tree: &Tree, items: &[Bson]) -> Bson {
    Bson::Array(
        items
            .iter()
            .map(|item| match item {
                Bson::Document(d) => Bson::Document(exclude(tree, d)),
                Bson::Array(inner) => exclude_array(tree, inner),
                other => other.clone(),
            })
            .collect(),
    )
}

/// A parsed `$addFields` / `$set`: dotted paths and their expressions, in order.
#[derive(Debug, Clone)]
pub(crate) struct AddFields {
    fields: Vec<(Vec<String>, Expr)>,
}

impl AddFields {
    pub(crate) fn parse(spec: &Document, stage: &str) -> Result<Self> {
        if spec.is_empty() {
            return Err(Error::parse(format!(
                "Invalid {stage} :: caused by :: specification must have at least one field"
            )));
        }
        let mut fields = Vec::new();
        flatten(spec, &[], &mut fields, stage)?;
        Ok(Self { fields })
    }

    /// The document with every field set (all expressions see the input document).
    pub(crate) fn apply(&self, doc: &Document, env: &Env) -> Result<Document> {
        let mut values = Vec::with_capacity(self.fields.len());
        for (_, e) in &self.fields {
            values.push(e.eval(env)?);
        }
        let mut out = doc.clone();
        for ((path, _), v) in self.fields.iter().zip(values) {
            set_path(&mut out, path, v);
        }
        Ok(out)
    }
}

fn flatten(
    spec: &Document,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, Expr)>,
    stage: &str,
) -> Result<()> {
    for (k, v) in spec {
        let mut path = prefix.to_vec();
        crate::query::path::check_limits(stage, k)?;
        if path.len() + k.split('.').count() > crate::query::MAX_PATH_COMPONENTS {
            return Err(Error::invalid(format!(
                "{stage}: a field path may have at most {} components",
                crate::query::MAX_PATH_COMPONENTS
            )));
        }
        for p in k.split('.') {
            if p.is_empty() || p.starts_with('$') {
                return Err(Error::parse(format!(
                    "Invalid {stage} :: caused by :: FieldPath field names may not be empty or start with '$': '{k}'"
                )));
            }
            path.push(p.to_owned());
        }
        match v {
            Bson::Document(d)
                if !d.is_empty() && !d.keys().next().is_some_and(|k| k.starts_with('$')) =>
            {
                flatten(d, &path, out, stage)?;
            }
            other => out.push((path, Expr::parse(other)?)),
        }
    }
    Ok(())
}

/// Writes `value` at a dotted path, creating documents on the way; into every document of
/// an array met on the way (other elements become documents holding the field). Missing
/// removes the field.
pub(crate) fn set_path(doc: &mut Document, path: &[String], value: Bson) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        if is_missing(&value) {
            doc.remove(first);
        } else {
            doc.insert(first.clone(), value);
        }
        return;
    }
    match doc.get_mut(first) {
        Some(Bson::Document(d)) => set_path(d, rest, value),
        Some(Bson::Array(items)) => set_in_array(items, rest, &value),
        _ => {
            if is_missing(&value) {
                return;
            }
            let mut d = Document::new();
            set_path(&mut d, rest, value);
            doc.insert(first.clone(), d);
        }
    }
}

fn set_in_array(items: &mut [Bson], path: &[String], value: &Bson) {
    for item in items.iter_mut() {
        match item {
            Bson::Document(d) => set_path(d, path, value.clone()),
            Bson::Array(inner) => set_in_array(inner, path, value),
            other => {
                let mut d = Document::new();
                set_path(&mut d, path, value.clone());
                *other = Bson::Document(d);
            }
        }
    }
}
