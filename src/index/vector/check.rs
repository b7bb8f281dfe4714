//! The vector-index part of `nexus_check`: the graph against the documents (every indexed
//! document has exactly one node holding its vector, every node a document) and against
//! itself (links point at nodes of high enough level, out-links and in-links mirror each
//! other, no node over its link budget, the entry node on the top level).

use super::graph::{
    check_fault, doc_value_id, key_id, Meta, Node, DOC, LEVEL, LEVEL_KEY_LEN, META, NODE,
};
use super::maintain::record_vector;
use super::VectorSpec;
use crate::error::{Error, Result};
use crate::index::IndexDef;
use crate::storage::{Bytes, ReadView};
use std::collections::HashMap;

/// Checks vector index `def`: the number of nodes and the problems found.
pub(crate) fn check_one(
    view: &dyn ReadView,
    def: &IndexDef,
    spec: &VectorSpec,
) -> Result<(u64, Vec<String>)> {
    let table = def.table();
    let mut problems = Vec::new();
    let mut say = |m: String| {
        problems.push(format!(
            "vector index '{}' of '{}': {m}",
            def.name, def.coll
        ))
    };
    // Every entry of the table, by kind.
    let mut nodes: HashMap<u64, Node> = HashMap::new();
    let mut docs: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut levels: Vec<(usize, u64)> = Vec::new();
    let mut meta = None;
    let mut after: Option<Bytes> = None;
    loop {
        let batch = view.scan(table, after.as_deref(), 256);
        check_fault(view)?;
        if batch.is_empty() {
            break;
        }
        for (k, v) in &batch {
            match k.first() {
                Some(0) if &k[..] == META => match Meta::decode(v) {
                    Ok(m) => meta = Some(m),
                    // Another release's layout: its nodes are not this release's to judge.
                    Err(e @ Error::Unsupported(_)) => {
                        say(format!("{e}"));
                        return Ok((0, problems));
                    }
                    Err(e) => say(format!("{e}")),
                },
                Some(&NODE) => match (
                    key_id(k).filter(|_| k.len() == 5),
                    Node::decode(
                        v,
                        spec.dims as usize,
                        meta.unwrap_or_else(Meta::empty).codec(),
                    ),
                ) {
                    (Some(id), Ok(n)) => {
                        nodes.insert(id, n);
                    }
                    (_, Err(e)) => say(format!("{e}")),
                    (None, _) => say("a node key is malformed".into()),
                },
                Some(&DOC) => match doc_value_id(v) {
                    Some(n) => {
                        docs.insert(k[1..].to_vec(), n);
                    }
                    None => say("a document entry is malformed".into()),
                },
                Some(&LEVEL) if k.len() == LEVEL_KEY_LEN => {
                    levels.push((usize::from(255 - k[1]), key_id(k).unwrap_or(u64::MAX)));
                }
                _ => say("an entry of unknown kind".into()),
            }
        }
        after = batch.last().map(|(k, _)| k.clone());
    }
    // Documents against nodes.
    let mut indexed = 0u64;
    let mut after: Option<Bytes> = None;
    loop {
        let batch = view.scan_with_record_ids(&def.coll, after.as_deref(), 256);
        check_fault(view)?;
        if batch.is_empty() {
            break;
        }
        for (id_key, rec, rid) in &batch {
            let want = match record_vector(def, spec, rec) {
                Ok(v) => v,
                Err(e) => {
                    say(format!("a document cannot be indexed: {e}"));
                    continue;
                }
            };
            let node = docs
                .get(&id_key[..])
                .and_then(|n| nodes.get(n).map(|x| (n, x)));
            match (want, node) {
                (None, None) => {}
                (None, Some(_)) => say("a document without a vector has a node".into()),
                (Some(_), None) => say("a document is missing its node".into()),
                (Some(v), Some((_, n))) => {
                    indexed += 1;
                    // A quantized graph keeps the values of the vector's codes.
                    let v = match meta.and_then(|m| m.quant) {
                        Some(q) => q.round_trip(&v),
                        None => v,
                    };
                    if n.vec != v {
                        say("a node's vector differs from its document's".into());
                    }
                    if let (Some(a), Some(b)) = (n.rid, rid) {
                        if a != *b {
                            say("a node's record id differs from its document's".into());
                        }
                    }
                    if n.id_key != id_key[..] {
                        say("a node names another document".into());
                    }
                }
            }
        }
        after = batch.last().map(|(k, _, _)| k.clone());
    }
    if indexed != nodes.len() as u64 || docs.len() != nodes.len() {
        say(format!(
            "{} nodes and {} document entries for {indexed} indexed documents",
            nodes.len(),
            docs.len()
        ));
    }
    for (id_key, n) in &docs {
        if nodes.get(n).is_none_or(|node| node.id_key != *id_key) {
            say("a document entry points at a missing or other node".into());
        }
        if view.get(&def.coll, id_key).is_none() {
            say("a node's document is missing".into());
        }
    }
    // Node ids below the meta's counter (searches index a table by them).
    let next_id = meta.map_or(0, |m| m.next_id);
    if let Some(id) = nodes.keys().find(|id| **id >= next_id) {
        say(format!(
            "node {id} is not below the meta's next node id {next_id}"
        ));
    }
    // The links.
    for (&id, n) in &nodes {
        for l in 0..=n.level {
            if n.out[l].len() > spec.max_links(l) {
                say(format!(
                    "node {id} has {} links on level {l}",
                    n.out[l].len()
                ));
            }
            for t in &n.out[l] {
                match nodes.get(t) {
                    Some(tn) if tn.level >= l && tn.inl[l].contains(&id) => {}
                    Some(_) => say(format!(
                        "node {id} links to node {t} on level {l}, which does not record it"
                    )),
                    None => say(format!("node {id} links to a missing node {t}")),
                }
            }
            for s in &n.inl[l] {
                if !nodes
                    .get(s)
                    .is_some_and(|sn| sn.level >= l && sn.out[l].contains(&id))
                {
                    say(format!(
                        "node {id} records a link from node {s} on level {l} that is not there"
                    ));
                }
            }
        }
    }
    let mut want_levels: Vec<(usize, u64)> = nodes
        .iter()
        .filter(|(_, n)| n.level > 0)
        .map(|(id, n)| (n.level, *id))
        .collect();
    want_levels.sort_unstable();
    levels.sort_unstable();
    if want_levels != levels {
        say("the level entries do not match the nodes' levels".into());
    }
    let top = nodes.values().map(|n| n.level).max();
    match (meta, top) {
        (None, None) => {}
        (Some(m), None) if m.entry.is_none() => {}
        (
            Some(Meta {
                entry: Some(e),
                top: t,
                ..
            }),
            Some(max),
        ) if t == max && nodes.get(&e).is_some_and(|n| n.level == t) => {}
        _ => say("the entry node is missing or not on the top level".into()),
    }
    Ok((nodes.len() as u64, problems))
}
