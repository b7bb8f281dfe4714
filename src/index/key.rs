//! PLACEHOLDER (replaced by the real encoding from branch index-key): just enough to compile
//! and try equality on strings and numbers.
#![allow(dead_code)]

use crate::error::{Error, Result};
use crate::query::compare::type_rank;
use bson::{Bson, Document};

/// One index field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeyField {
    pub path: String,
    pub descending: bool,
}

pub(crate) fn type_prefix(rank: u8) -> u8 {
    0x10 + rank * 8
}

pub(crate) fn encode_value(out: &mut Vec<u8>, v: &Bson, descending: bool) {
    let start = out.len();
    out.push(type_prefix(type_rank(v)));
    match v {
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
            let f = match v {
                Bson::Int32(i) => f64::from(*i),
                Bson::Int64(i) => *i as f64,
                Bson::Double(d) => *d,
                _ => 0.0,
            };
            let bits = f.to_bits();
            let b = if f.is_sign_negative() {
                !bits
            } else {
                bits | (1 << 63)
            };
            out.extend_from_slice(&b.to_be_bytes());
        }
        Bson::String(s) => {
            for &c in s.as_bytes() {
                out.push(c);
                if c == 0 {
                    out.push(0xFF);
                }
            }
            out.extend_from_slice(&[0, 0]);
        }
        _ => {}
    }
    if descending {
        for b in &mut out[start..] {
            *b = !*b;
        }
    }
}

pub(crate) fn document_keys(
    doc: &Document,
    fields: &[KeyField],
    sparse: bool,
) -> Result<(Vec<Vec<u8>>, bool)> {
    let mut key = Vec::new();
    let mut any = false;
    for f in fields {
        let v = doc.get(&f.path);
        any |= v.is_some();
        if matches!(v, Some(Bson::Array(_))) {
            return Err(Error::unsupported("placeholder: arrays"));
        }
        encode_value(&mut key, v.unwrap_or(&Bson::Null), f.descending);
    }
    if sparse && !any {
        return Ok((Vec::new(), false));
    }
    Ok((vec![key], false))
}
