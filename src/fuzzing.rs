//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`, never in a shipped
//! build): the crate-private decoders behind narrow functions that take the fuzzer's bytes.
//! Each returns normally on any input it refuses; a panic is a finding. Where an oracle exists
//! (a reference reader, an encoder to round-trip through, an order to agree with) the
//! function asserts it. Not API, not covered by semver.

use crate::index::covered;
use crate::index::key::{encode_value, KeyField};
use crate::query::compare::compare;
use crate::storage::log;
use crate::storage::wasp::page::{self, Geometry, Node};
use crate::storage::Bytes;
use bson::Bson;

/// The JSON readers (the byte scanner, the `serde_json`-driven writer, the public reader)
/// against the reference `serde_json` reading: panics on a disagreement.
pub fn json_differential(text: &str) {
    crate::document::json::fuzz_differential(text);
}

/// A stored document record (`document::record`, every version: the first byte is the
/// version tag) through every decoder; asserts that the expiry read at its fixed offset (the
/// TTL checks) agrees with the decoded metadata whenever that decodes.
pub fn record(data: &[u8]) {
    crate::document::record::fuzz_record(data);
}

/// `data[0]` bit 0: give the page a valid checksum and page number, so the fuzzer reaches
/// the decoder behind them; bit 1: a 16 KiB page instead of 8 KiB. The rest is the page
/// (zero-padded). Decodes it as the pager does, then checks that the searches of a node with
/// sorted keys agree with a plain binary search, and that re-encoding the node decodes to
/// the same node.
pub fn page(data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let size = if flags & 2 != 0 { 16384 } else { 8192 };
    let mut buf = vec![0u8; size];
    let n = body.len().min(size);
    buf[..n].copy_from_slice(&body[..n]);
    let id = if flags & 1 != 0 {
        let id = page::u64_at(&buf, 8);
        let crc = crc32fast::hash(&buf[4..]);
        buf[0..4].copy_from_slice(&crc.to_le_bytes());
        id
    } else {
        3
    };
    let Ok(head) = page::open_page(&buf, id, "fuzz") else {
        return;
    };
    if !matches!(head.kind, page::KIND_LEAF | page::KIND_BRANCH) {
        return;
    }
    let bytes = Bytes::from(buf);
    if head.kind == page::KIND_LEAF {
        let Ok(offsets) = page::leaf_offsets(&bytes, head, id, "fuzz") else {
            return;
        };
        for at in offsets {
            let _ = page::leaf_entry_at(&bytes, usize::from(at));
        }
    }
    let Ok(node) = page::decode_node(&bytes, head, id, "fuzz") else {
        return;
    };
    check_searches(&node);
    let g = Geometry { page_size: size };
    if head.kind == page::KIND_LEAF {
        check_image(g, &bytes, head, id);
    }
    let mut again = vec![0u8; size];
    if page::encode_node(g, &node, id, &mut again).is_ok() {
        let again = Bytes::from(again);
        let head2 = page::open_page(&again, id, "fuzz").expect("a re-encoded page opens");
        let node2 =
            page::decode_node(&again, head2, id, "fuzz").expect("a re-encoded page decodes");
        assert_eq!(
            contents(&node),
            contents(&node2),
            "re-encoding changed the node"
        );
    }
}

/// A node's keys and values or children, without its search state (a search aid built by
/// the searches above is not part of what the page holds).
fn contents(node: &Node) -> String {
    match node {
        Node::Leaf { keys, vals, size } => format!("leaf {:?} {vals:?} {size}", &keys[..]),
        Node::Image(img) => format!("image {img:?}"),
        Node::Branch { keys, children } => {
            let children: Vec<_> = children.iter().collect();
            format!("branch {:?} {children:?}", &keys[..])
        }
    }
}

/// A leaf page as the writer's image ([`page::LeafImage`]): searched like the decoded leaf,
/// encoded like it, and again after a put of a key made from the page's own bytes.
fn check_image(g: Geometry, bytes: &Bytes, head: page::PageHead, id: u64) {
    let Ok(mut img) = page::LeafImage::from_page(Bytes::clone(bytes), head, id, "fuzz") else {
        return;
    };
    check_searches(&Node::Image(img.clone()));
    let encodes_alike = |img: &page::LeafImage| {
        let decoded = img.decode(g);
        if g.node_size(&decoded) != img.size() {
            return; // a value too large to be inline: a page no writer makes
        }
        let (mut a, mut b) = (vec![0u8; g.page_size], vec![0u8; g.page_size]);
        let ra = page::encode_node(g, &Node::Image(img.clone()), id, &mut a);
        let rb = page::encode_node(g, &decoded, id, &mut b);
        if ra.is_ok() && rb.is_ok() {
            assert_eq!(a, b, "an image encodes as its decoded leaf");
        }
    };
    encodes_alike(&img);
    let key = bytes[page::PAGE_HEADER..page::PAGE_HEADER + 12].to_vec();
    let val = page::Val::Data(bytes.slice(40..40 + usize::from(bytes[39] & 63)));
    if img.try_put(g, &key, &val).is_some() {
        encodes_alike(&img);
    }
}

/// The search aids of a node (shared prefix, next 8 bytes as integers) against a plain binary
/// search, for keys in strictly ascending order (any other order is damage the tree check
/// reports; the searches then need only not panic).
fn check_searches(node: &Node) {
    let keys: Vec<Bytes> = match node {
        Node::Leaf { keys, .. } => keys.iter().cloned().collect(),
        Node::Image(img) => (0..img.len()).map(|i| img.key_bytes(i)).collect(),
        Node::Branch { keys, .. } => keys.iter().cloned().collect(),
    };
    let sorted = keys.windows(2).all(|w| w[0] < w[1]);
    let mut probes: Vec<Vec<u8>> = Vec::new();
    for k in keys.iter().take(64) {
        probes.push(k.to_vec());
        let mut longer = k.to_vec();
        longer.push(0);
        probes.push(longer);
        if let Some((_, shorter)) = k.split_last() {
            probes.push(shorter.to_vec());
        }
        let mut bumped = k.to_vec();
        if let Some(last) = bumped.last_mut() {
            *last = last.wrapping_add(1);
        }
        probes.push(bumped);
    }
    probes.push(Vec::new());
    probes.push(vec![0xFF; 9]);
    for p in &probes {
        match node {
            Node::Leaf { keys: lk, .. } => {
                let got = lk.search(p);
                if sorted {
                    let want = keys.binary_search_by(|k| k.as_ref().cmp(p.as_slice()));
                    assert_eq!(got, want, "leaf search for {p:?} in {keys:?}");
                }
            }
            Node::Image(img) => {
                let got = img.search(p);
                if sorted {
                    let want = keys.binary_search_by(|k| k.as_ref().cmp(p.as_slice()));
                    assert_eq!(got, want, "leaf image search for {p:?} in {keys:?}");
                }
            }
            Node::Branch { keys: sk, .. } => {
                let got = sk.upper_bound(p);
                if sorted {
                    let want = keys.partition_point(|k| k.as_ref() <= p.as_slice());
                    assert_eq!(got, want, "branch upper bound for {p:?} in {keys:?}");
                }
            }
        }
    }
}

/// `data[0]` bit 0: fix the checksums (header slots and every record, walked by their
/// length prefixes) so the fuzzer reaches the record decoder; the rest is a log image.
/// Replays it as open does; a replay that succeeds must be consistent with the image.
pub fn log_replay(data: &[u8]) {
    let Some((&flags, image)) = data.split_first() else {
        return;
    };
    let mut image = image.to_vec();
    if flags & 1 != 0 {
        fix_log_checksums(&mut image);
    }
    let Ok(r) = log::replay(&image, "fuzz") else {
        return;
    };
    assert!(
        r.good_len <= image.len() as u64 || r.records.is_empty(),
        "replay reports {} good bytes of {}",
        r.good_len,
        image.len()
    );
    let mut prev = r.base_lsn;
    for (lsn, _) in &r.records {
        assert!(
            *lsn > prev,
            "replayed LSNs not ascending: {lsn} after {prev}"
        );
        prev = *lsn;
    }
}

fn fix_log_checksums(image: &mut [u8]) {
    for slot in [0usize, log::LOG_HEADER_LEN] {
        if let Some(s) = image.get_mut(slot..slot + log::LOG_HEADER_LEN) {
            if &s[0..8] == log::LOG_MAGIC {
                let crc = crc32fast::hash(&s[0..28]);
                s[28..32].copy_from_slice(&crc.to_le_bytes());
            }
        }
    }
    let Ok(h) = log::decode_header(image, "fuzz") else {
        return;
    };
    let lap = h.lap;
    let mut at = usize::try_from(h.start()).unwrap_or(usize::MAX);
    while let Some(head) = image.get(at..at + 8) {
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(payload) = image.get(at + 8..at + 8 + len) else {
            break;
        };
        if len == 0 {
            break;
        }
        let crc = crc32fast::hash(payload) ^ lap;
        image[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at += 8 + len;
    }
}

/// A catalog entry of the WASP catalog tree and an index definition of `_indexes`:
/// `data[0]` picks which, the rest is the stored value. A table entry that decodes must
/// encode back to the same bytes.
pub fn catalog(data: &[u8]) {
    use crate::storage::wasp::catalog::TableMeta;
    use crate::storage::wasp::page::Ptr;
    let Some((&which, value)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        let Ok(meta) = TableMeta::decode(value, "fuzz") else {
            return;
        };
        let disk = |p: Option<&Ptr>| match p {
            Some(Ptr::Disk(n)) => *n,
            _ => 0,
        };
        let ids = meta.clustered.as_ref().map_or(0, |c| disk(c.ids.as_ref()));
        let again = meta.encode(disk(meta.root.as_ref()), ids);
        // A clustered entry's key map root of 0 (none) and a kind-1 entry are exact; the
        // decoder accepts trailing bytes after an ordered entry's options, which the
        // encoder does not write.
        let n = again.len().min(value.len());
        assert_eq!(
            &again[..n],
            &value[..n],
            "catalog entry does not round-trip"
        );
    } else {
        let k = Bytes::copy_from_slice(b"fuzz");
        let v = Bytes::copy_from_slice(value);
        let _ = crate::index::catalog::parse_entry("fuzz", &k, &v);
    }
}

/// An index entry as the readers take it apart: `data[0]` gives the key fields (bits 0-1:
/// 1 to 4 fields; bits 2-5: descending), `data[1..3]` where the key ends and the value
/// begins; then the `_id` key, the record id and the covered values are read.
pub fn index_entry(data: &[u8]) {
    let [flags, a, b, rest @ ..] = data else {
        return;
    };
    let n = usize::from(flags & 3) + 1;
    let fields: Vec<KeyField> = (0..n)
        .map(|i| KeyField {
            path: ["a", "b.c", "d", "e.f.g"][i].to_owned(),
            descending: flags & (4 << i) != 0,
        })
        .collect();
    let split = usize::from(u16::from_le_bytes([*a, *b])).min(rest.len());
    let (key, value) = rest.split_at(split);
    let _ = covered::entry_id(key, value);
    let _ = covered::entry_record_id(key, value);
    if let Ok(Some(doc)) = covered::covered_values(&fields, key, value) {
        let _ = crate::document::raw::bson_decode(&doc);
    }
}

/// Index keys against the query language, for every value the input holds (`data` as BSON;
/// else as JSON text): for each pair, the byte order of their keys is the order of
/// `compare` (reversed for descending keys), equal values give equal keys; and each value a
/// compact index entry can carry comes back from its key exactly.
pub fn key_order(data: &[u8]) {
    let doc = match crate::document::raw::bson_decode(data) {
        Ok(d) => d,
        Err(_) => match std::str::from_utf8(data)
            .ok()
            .and_then(|t| crate::document::json::parse_document(t).ok())
        {
            Some(d) => d,
            None => return,
        },
    };
    let mut values: Vec<&Bson> = Vec::new();
    for (_, v) in &doc {
        values.push(v);
        if let Bson::Array(items) = v {
            values.extend(items.iter().take(8));
        }
        if values.len() >= 24 {
            break;
        }
    }
    let keys: Vec<(Vec<u8>, Vec<u8>)> = values
        .iter()
        .map(|v| {
            let (mut asc, mut desc) = (Vec::new(), Vec::new());
            encode_value(&mut asc, v, false);
            encode_value(&mut desc, v, true);
            (asc, desc)
        })
        .collect();
    for (i, a) in values.iter().enumerate() {
        for (j, b) in values.iter().enumerate().skip(i) {
            let want = compare(a, b);
            let got = keys[i].0.cmp(&keys[j].0);
            assert_eq!(
                got, want,
                "index keys order {a:?} and {b:?} as {got:?}, the query language as {want:?}"
            );
            let got_desc = keys[i].1.cmp(&keys[j].1);
            assert_eq!(
                got_desc,
                want.reverse(),
                "descending keys of {a:?} and {b:?}"
            );
        }
    }
    for (v, (asc, desc)) in values.iter().zip(&keys) {
        round_trip_entry(v, asc, false);
        round_trip_entry(v, desc, true);
    }
}

/// The entry an index on `a` makes for `{a: v}` gives back `{a: v}` as its covered values.
fn round_trip_entry(v: &Bson, key_values: &[u8], descending: bool) {
    if matches!(v, Bson::Array(_)) {
        return; // multikey: entries carry no covered values
    }
    let covered_doc = bson::doc! { "a": v.clone() };
    let Ok(covered_bytes) = covered_doc.to_vec() else {
        return;
    };
    let fields = [KeyField {
        path: "a".to_owned(),
        descending,
    }];
    let mut id_key = Vec::new();
    encode_value(&mut id_key, &Bson::Int32(7), false);
    let Ok(value) = covered::entry_value(&fields, key_values, &id_key, Some(&covered_bytes), None)
    else {
        return;
    };
    let mut key = key_values.to_vec();
    key.extend_from_slice(&id_key);
    assert_eq!(covered::entry_id(&key, &value), id_key.as_slice());
    let got = covered::covered_values(&fields, &key, &value)
        .expect("an entry just made reads back")
        .expect("an entry made with covered values has them");
    assert_eq!(
        got.as_ref(),
        covered_bytes.as_slice(),
        "covered value {v:?} (descending: {descending}) does not come back from its entry"
    );
}
