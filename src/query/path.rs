//! Dotted paths (`a.b.c`, `items.0.sku`) and how they reach into documents and arrays the way
//! MongoDB's query engine does: a component that meets an array applies to each element
//! (implicit traversal), and a numeric component may also index the array.

use bson::{Bson, Document};

/// Every value `path` reaches in `doc`, with arrays traversed implicitly. `out` receives the
/// values; none are pushed when the path is missing everywhere.
pub(crate) fn lookup<'a>(doc: &'a Document, path: &str, out: &mut Vec<&'a Bson>) {
    let parts: Vec<&str> = path.split('.').collect();
    if let Some(v) = doc.get(parts[0]) {
        walk(v, &parts[1..], out);
    }
}

fn walk<'a>(v: &'a Bson, rest: &[&str], out: &mut Vec<&'a Bson>) {
    let Some((head, tail)) = rest.split_first() else {
        out.push(v);
        return;
    };
    match v {
        Bson::Document(d) => {
            if let Some(next) = d.get(*head) {
                walk(next, tail, out);
            }
        }
        Bson::Array(items) => {
            if let Ok(i) = head.parse::<usize>() {
                if let Some(item) = items.get(i) {
                    walk(item, tail, out);
                }
            }
            for item in items {
                if let Bson::Document(d) = item {
                    if let Some(next) = d.get(*head) {
                        walk(next, tail, out);
                    }
                }
            }
        }
        _ => {}
    }
}

/// The single value at `path` following documents only (and numeric array indexes), as used
/// by updates and projections. `None` when missing.
pub(crate) fn get_exact<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut cur = doc.get(parts.next()?)?;
    for p in parts {
        cur = match cur {
            Bson::Document(d) => d.get(p)?,
            Bson::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}
