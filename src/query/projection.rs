//! Projections: inclusion (`{a: 1, "b.c": 1}`) or exclusion (`{a: 0}`), never mixed except
//! for `_id`, which is included unless excluded explicitly (MongoDB's rule). Dotted paths
//! reach into nested documents and into arrays of documents.

use super::filter::truthy;
use crate::error::{Error, Result};
use bson::{Bson, Document};
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
struct Node {
    leaf: bool,
    children: HashMap<String, Node>,
}

/// A parsed projection.
#[derive(Debug, Clone)]
pub(crate) struct Projection {
    include: bool,
    keep_id: bool,
    tree: Node,
}

impl Projection {
    /// Parses a projection document; `None` when it projects nothing away.
    pub(crate) fn parse(spec: &Document) -> Result<Option<Self>> {
        let mut keep_id = true;
        let mut mode: Option<bool> = None;
        let mut tree = Node::default();
        for (path, v) in spec {
            if let Bson::Document(d) = v {
                let op = d.keys().next().map(String::as_str).unwrap_or("");
                return Err(Error::unsupported(format!(
                    "projection operator {op} on '{path}' is not supported by this version"
                )));
            }
            if path.starts_with('$') || path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(Error::parse(format!("invalid projection path '{path}'")));
            }
            let on = truthy(v);
            if path == "_id" {
                keep_id = on;
                continue;
            }
            match mode {
                Some(m) if m != on => {
                    return Err(Error::parse(format!(
                        "cannot do {} on field '{path}' in {} projection",
                        if on { "inclusion" } else { "exclusion" },
                        if m { "inclusion" } else { "exclusion" }
                    )))
                }
                _ => mode = Some(on),
            }
            let mut node = &mut tree;
            for part in path.split('.') {
                if node.leaf {
                    return Err(Error::parse(format!("path collision at '{path}'")));
                }
                node = node.children.entry(part.to_owned()).or_default();
            }
            if node.leaf || !node.children.is_empty() {
                return Err(Error::parse(format!("path collision at '{path}'")));
            }
            node.leaf = true;
        }
        Ok(match mode {
            None if keep_id => None,
            None => Some(Self {
                include: false,
                keep_id,
                tree,
            }),
            Some(include) => Some(Self {
                include,
                keep_id,
                tree,
            }),
        })
    }

    /// Applies the projection to a stored document.
    pub(crate) fn apply(&self, doc: &Document) -> Document {
        let mut out = if self.include {
            include(doc, &self.tree)
        } else {
            exclude(doc, &self.tree)
        };
        match (self.keep_id, doc.get("_id")) {
            (true, Some(id)) if self.include => {
                let mut with_id = Document::new();
                with_id.insert("_id", id.clone());
                with_id.extend(out);
                with_id
            }
            (false, _) => {
                out.remove("_id");
                out
            }
            _ => out,
        }
    }
}

fn include(doc: &Document, node: &Node) -> Document {
    let mut out = Document::new();
    for (k, v) in doc {
        if let Some(child) = node.children.get(k) {
            if child.leaf {
                out.insert(k.clone(), v.clone());
            } else if let Some(sub) = include_value(v, child) {
                out.insert(k.clone(), sub);
            }
        }
    }
    out
}

fn include_value(v: &Bson, node: &Node) -> Option<Bson> {
    match v {
        Bson::Document(d) => Some(Bson::Document(include(d, node))),
        Bson::Array(items) => Some(Bson::Array(
            items
                .iter()
                .filter_map(|i| include_value(i, node))
                .collect(),
        )),
        _ => None,
    }
}

fn exclude(doc: &Document, node: &Node) -> Document {
    let mut out = Document::new();
    for (k, v) in doc {
        match node.children.get(k) {
            Some(child) if child.leaf => {}
            Some(child) => {
                out.insert(k.clone(), exclude_value(v, child));
            }
            None => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

fn exclude_value(v: &Bson, node: &Node) -> Bson {
    match v {
        Bson::Document(d) => Bson::Document(exclude(d, node)),
        Bson::Array(items) => Bson::Array(items.iter().map(|i| exclude_value(i, node)).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn inclusion_keeps_id_first_and_nested_paths() {
        let p = Projection::parse(&doc! {"a.b": 1, "c": 1})
            .unwrap()
            .unwrap();
        let out = p.apply(&doc! {"c": 3, "_id": 1, "a": {"b": 2, "x": 0}, "z": 9});
        assert_eq!(out, doc! {"_id": 1, "c": 3, "a": {"b": 2}});
    }

    #[test]
    fn exclusion_and_id_rule() {
        let p = Projection::parse(&doc! {"_id": 0, "a.x": 0})
            .unwrap()
            .unwrap();
        let out = p.apply(&doc! {"_id": 1, "a": [{"b": 2, "x": 0}], "z": 9});
        assert_eq!(out, doc! {"a": [{"b": 2}], "z": 9});
        assert!(Projection::parse(&doc! {"a": 1, "b": 0}).is_err());
    }
}
