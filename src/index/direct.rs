//! An index's entry for a stored document, read straight from its BSON bytes.
//!
//! The common document has each key path leading through sub-documents to one scalar: one
//! key, no array, and covered values that are those scalars in their sub-documents. For it,
//! this module walks the bytes once, encodes the key from the scalars and copies their
//! elements into the covered-values document, without decoding the document into a
//! [`bson::Document`] or running the projection. Everything else (a missing field, an array
//! or a sub-document on a key path, a repeated field name, a rare or malformed value) is
//! declined, and the general path of [`super::IndexDef::entries_of_record`] decides; the
//! tests check that both paths give the same bytes.

use super::covered::decodes_exactly;
use super::key::{encode_value, KeyField};
use crate::document::raw::{elements, to_bson, Elem};

/// An index entry read straight from a document's bytes.
pub(crate) struct DirectEntry {
    /// The key fields' encoded values, in key order.
    pub key: Vec<u8>,
    /// The covered values: the document of the key paths, in the document's order.
    pub covered: Vec<u8>,
    /// The values' BSON types in key order, when `covered` is rebuilt exactly from them and
    /// the key (`covered::entry_value`'s compact form); `None`: let it check.
    pub types: Option<Vec<u8>>,
}

/// The key paths of an index as a tree of field names, each leaf naming its key field.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyPaths(Vec<(Box<[u8]>, Slot)>);

#[derive(Debug, Clone)]
enum Slot {
    /// The value at the end of key field `.0`'s path.
    Leaf(usize),
    /// A sub-document some paths go through.
    Inner(KeyPaths),
}

/// BSON element types whose bytes the general path writes back unchanged (so that a copy of
/// them equals what the projection produces): double, string, ObjectId, bool, date, null,
/// int32, timestamp, int64, decimal128.
fn copied_verbatim(e: &Elem<'_>) -> bool {
    match e.kind {
        0x01 | 0x07 | 0x09 | 0x0A | 0x10 | 0x11 | 0x12 | 0x13 => true,
        // A string's length prefix counts its trailing NUL, which must be there.
        0x02 => e.bytes.last() == Some(&0),
        0x08 => matches!(e.bytes, [0] | [1]),
        _ => false,
    }
}

impl KeyPaths {
    /// The tree of `fields`' paths; `None` when one path is a prefix of another (their
    /// covered values overlap, which only the general path handles).
    pub(crate) fn of(fields: &[KeyField]) -> Option<KeyPaths> {
        let mut root = KeyPaths::default();
        for (i, f) in fields.iter().enumerate() {
            let mut node = &mut root;
            let mut parts = f.path.split('.').peekable();
            while let Some(part) = parts.next() {
                let last = parts.peek().is_none();
                let at = node.0.iter().position(|(n, _)| &n[..] == part.as_bytes());
                match (at, last) {
                    (None, true) => {
                        node.0.push((part.as_bytes().into(), Slot::Leaf(i)));
                    }
                    (None, false) => {
                        node.0
                            .push((part.as_bytes().into(), Slot::Inner(KeyPaths::default())));
                        let Some((_, Slot::Inner(next))) = node.0.last_mut() else {
                            unreachable!("just pushed an inner slot")
                        };
                        node = next;
                    }
                    (Some(at), false) => match &mut node.0[at].1 {
                        Slot::Inner(next) => node = next,
                        Slot::Leaf(_) => return None,
                    },
                    (Some(_), true) => return None,
                }
            }
        }
        // A node with more children than the walk's bit mask holds is left to the general path.
        root.fits().then_some(root)
    }

    fn fits(&self) -> bool {
        self.0.len() <= 64
            && self.0.iter().all(|(_, s)| match s {
                Slot::Leaf(_) => true,
                Slot::Inner(t) => t.fits(),
            })
    }

    /// The one entry of the document whose bytes are `body`, or `None` when the general
    /// path must decide (see the module's documentation).
    pub(crate) fn entry(&self, body: &[u8], fields: &[KeyField]) -> Option<DirectEntry> {
        let mut leaves: Vec<Option<Elem<'_>>> = vec![None; fields.len()];
        let mut order = Vec::with_capacity(fields.len());
        let mut covered = Vec::with_capacity(64);
        self.copy(body, true, &mut covered, &mut leaves, &mut order)?;
        let mut key = Vec::with_capacity(32);
        for (f, leaf) in fields.iter().zip(&leaves) {
            let value = to_bson((*leaf)?).ok()?;
            encode_value(&mut key, &value, f.descending);
        }
        // The covered document holds exactly the key paths; when it lists them in key order
        // and each value comes back exactly from its key encoding, rebuilding it from the
        // types gives the same bytes (what `covered::entry_value` would otherwise check).
        let in_key_order = order.iter().enumerate().all(|(i, &f)| i == f);
        let types = in_key_order
            .then(|| {
                leaves.iter().map(|l| {
                    l.filter(|e| decodes_exactly(e.kind, e.bytes))
                        .map(|e| e.kind)
                })
            })
            .and_then(|kinds| kinds.collect::<Option<Vec<u8>>>());
        Some(DirectEntry {
            key,
            covered,
            types,
        })
    }

    /// Writes the document holding only this tree's fields of `doc` (in `doc`'s order) to
    /// `out`, noting each leaf's element and (in `order`) the order the leaves came in. A
    /// projection puts a top-level `_id` first; stored
    /// documents have it first already, and any other is declined.
    fn copy<'a>(
        &self,
        doc: &'a [u8],
        top: bool,
        out: &mut Vec<u8>,
        leaves: &mut [Option<Elem<'a>>],
        order: &mut Vec<usize>,
    ) -> Option<()> {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        let mut seen = 0u64;
        for (n, item) in elements(doc).ok()?.enumerate() {
            let (name, e) = item.ok()?;
            if top && n > 0 && name == b"_id" {
                return None;
            }
            let Some(at) = self.0.iter().position(|(n, _)| &n[..] == name) else {
                continue;
            };
            if seen & (1 << at) != 0 {
                return None; // a repeated name: which one counts is the general path's call
            }
            seen |= 1 << at;
            out.push(e.kind);
            out.extend_from_slice(name);
            out.push(0);
            match &self.0[at].1 {
                Slot::Leaf(i) if copied_verbatim(&e) => {
                    out.extend_from_slice(e.bytes);
                    leaves[*i] = Some(e);
                    order.push(*i);
                }
                Slot::Inner(sub) if e.kind == 0x03 => {
                    sub.copy(e.bytes, false, out, leaves, order)?;
                }
                _ => return None,
            }
        }
        if seen.count_ones() as usize != self.0.len() {
            return None; // a key field is missing
        }
        out.push(0);
        let len = u32::try_from(out.len() - start).ok()?;
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{new_def, IndexDef};
    use bson::spec::BinarySubtype;
    use bson::{doc, Binary, Bson, DateTime, Decimal128, Document, Regex, Timestamp};

    fn def(keys: Document) -> IndexDef {
        new_def("c", &keys, &doc! {}).unwrap()
    }

    /// The general path's entry for `doc` (one key, no array): (key, covered values, the
    /// entry's value).
    fn general(d: &IndexDef, doc: &Document) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        let (entries, multikey) = d.entries_of(doc, b"ID").ok()?;
        match &entries[..] {
            [(k, v)] if !multikey => {
                let key = [&k[..], b"ID"].concat();
                let covered = crate::index::covered_values(&d.fields, &key, v).ok()??;
                Some((k.clone(), covered.into_owned(), v.clone()))
            }
            _ => None,
        }
    }

    /// The direct path's entry, as [`general`] gives it.
    fn direct_entry(
        paths: &KeyPaths,
        d: &IndexDef,
        bytes: &[u8],
    ) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        let e = paths.entry(bytes, &d.fields)?;
        let types = e.types.as_deref();
        let value =
            crate::index::covered::entry_value(&d.fields, &e.key, b"ID", Some(&e.covered), types)
                .unwrap();
        Some((e.key, e.covered, value))
    }

    fn scalar(r: &mut fastrand::Rng) -> Bson {
        match r.u8(..20) {
            0 | 14..=19 => Bson::Int32(r.i32(-3..3)),
            1 => Bson::Int64(r.i64(..)),
            2 => Bson::Double(r.f64() * 10.0 - 5.0),
            3 => Bson::Double(f64::NAN),
            4 => Bson::String(["", "x", "y\0z", "é"][r.usize(..4)].to_owned()),
            5 => Bson::Boolean(r.bool()),
            6 => Bson::Null,
            7 => Bson::DateTime(DateTime::from_millis(r.i64(-5..5))),
            8 => Bson::Decimal128(Decimal128::from_bytes([r.u8(..); 16])),
            9 => Bson::Timestamp(Timestamp {
                time: r.u32(..3),
                increment: r.u32(..3),
            }),
            10 => Bson::ObjectId(bson::oid::ObjectId::from_bytes([r.u8(..); 12])),
            // Declined kinds: the general path decides.
            11 => Bson::RegularExpression(Regex {
                pattern: "a".try_into().unwrap(),
                options: "mi".try_into().unwrap(),
            }),
            12 => Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![1, 2],
            }),
            13 => Bson::Undefined,
            _ => unreachable!(),
        }
    }

    fn value(r: &mut fastrand::Rng, depth: usize) -> Bson {
        match r.u8(..10) {
            0 if depth < 3 => Bson::Array((0..r.usize(..3)).map(|_| value(r, depth + 1)).collect()),
            1..=3 if depth < 3 => Bson::Document(document(r, depth + 1)),
            _ => scalar(r),
        }
    }

    fn document(r: &mut fastrand::Rng, depth: usize) -> Document {
        // Each name mostly present, in a random order (the copy keeps the document's).
        // A stored document has `_id` first; a few here do not.
        let mut names = ["_id", "a", "b", "c"];
        if r.u8(..8) == 0 {
            r.shuffle(&mut names);
        } else {
            r.shuffle(&mut names[1..]);
        }
        let mut d = Document::new();
        for name in names {
            if r.u8(..6) != 0 {
                d.insert(name, value(r, depth));
            }
        }
        d
    }

    /// Wherever the direct reader answers, it gives the general path's bytes exactly; and it
    /// answers for a good share of the documents (the common shapes are not all declined).
    #[test]
    fn direct_entries_equal_the_general_path() {
        let patterns = [
            doc! {"a": 1},
            doc! {"a": -1},
            doc! {"_id": 1},
            doc! {"a.b": 1},
            doc! {"a.b": -1, "a.c": 1},
            doc! {"b": 1, "a.c": -1, "a.b": 1},
            doc! {"a.b.c": 1, "c": 1},
            doc! {"c": 1, "_id": -1},
            doc! {"a.c": 1, "a._id": 1},
        ];
        let mut r = fastrand::Rng::with_seed(0x5EED_0007);
        let (mut direct, mut declined, mut typed) = (0usize, 0usize, 0usize);
        for round in 0..20_000 {
            let doc = document(&mut r, 0);
            let bytes = doc.to_vec().unwrap();
            let d = def(patterns[round % patterns.len()].clone());
            let paths = KeyPaths::of(&d.fields).expect("no path is a prefix of another");
            match direct_entry(&paths, &d, &bytes) {
                Some(got) => {
                    direct += 1;
                    typed += usize::from(paths.entry(&bytes, &d.fields).unwrap().types.is_some());
                    assert_eq!(Some(got), general(&d, &doc), "{doc:?} under {:?}", d.key);
                }
                None => declined += 1,
            }
        }
        assert!(
            direct > 2_500 && declined > 2_500 && typed > 1_000 && direct - typed > 500,
            "{direct} direct ({typed} with types), {declined} declined"
        );
    }

    #[test]
    fn declines_what_only_the_general_path_decides() {
        let d = def(doc! {"a.b": 1, "c": 1});
        let paths = KeyPaths::of(&d.fields).unwrap();
        let entry = |doc: Document| {
            paths
                .entry(&doc.to_vec().unwrap(), &d.fields)
                .map(|e| (e.key, e.covered))
        };
        assert!(entry(doc! {"c": 1, "a": {"x": 0, "b": "v"}}).is_some());
        assert!(entry(doc! {"c": 1}).is_none(), "missing field");
        assert!(
            entry(doc! {"c": 1, "a": 5}).is_none(),
            "scalar where a path goes on"
        );
        assert!(entry(doc! {"c": [1], "a": {"b": 1}}).is_none(), "array");
        assert!(
            entry(doc! {"c": 1, "a": [{"b": 1}]}).is_none(),
            "array on the path"
        );
        assert!(
            entry(doc! {"c": {"x": 1}, "a": {"b": 1}}).is_none(),
            "sub-document key"
        );

        // Raw bytes no bson::Document can hold: a repeated name, a bool byte of 2, a string
        // without its NUL, and a truncated document.
        let raw = |fields: &[u8]| {
            let mut v = i32::try_from(fields.len() + 5)
                .unwrap()
                .to_le_bytes()
                .to_vec();
            v.extend_from_slice(fields);
            v.push(0);
            v
        };
        let one =
            |d: &IndexDef, bytes: &[u8]| KeyPaths::of(&d.fields).unwrap().entry(bytes, &d.fields);
        let c = def(doc! {"c": 1});
        let int_c = [0x10, b'c', 0, 1, 0, 0, 0];
        assert!(one(&c, &raw(&int_c)).is_some());
        assert!(
            one(&c, &raw(&[int_c, int_c].concat())).is_none(),
            "repeated name"
        );
        assert!(one(&c, &raw(&[0x08, b'c', 0, 2])).is_none(), "bool of 2");
        assert!(
            one(&c, &raw(&[0x02, b'c', 0, 2, 0, 0, 0, b'x', b'y'])).is_none(),
            "no NUL"
        );
        let whole = raw(&int_c);
        assert!(one(&c, &whole[..whole.len() - 2]).is_none(), "truncated");
    }

    #[test]
    fn overlapping_paths_are_left_to_the_general_path() {
        for keys in [doc! {"a": 1, "a.b": 1}, doc! {"a.b": 1, "a": 1}] {
            assert!(KeyPaths::of(&def(keys).fields).is_none());
        }
        let wide: Document = (0..65).map(|i| (format!("f{i}"), Bson::Int32(1))).collect();
        assert!(
            KeyPaths::of(&def(wide).fields).is_none(),
            "more than 64 names in one node"
        );
    }
}
