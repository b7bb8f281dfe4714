//! [`DocumentId`]: the `_id` of a stored document and its storage-key encoding.

use super::{check_value_nesting, dispose_value, MAX_NESTING};
use crate::error::{Error, Result};
use bson::Bson;

/// A new random UUID v4 in its canonical hyphenated text form, the default `_id`.
pub fn new_uuid_v4() -> String {
    let bytes = ID_ENTROPY.with(|e| e.borrow_mut().take());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Bytes of OS randomness drawn at a time for generated ids: 64 ids per `getrandom` call
/// (one call per id was 4.6% of an import of documents without `_id`).
const ENTROPY_BYTES: usize = 1024;

/// The OS randomness this thread has drawn for ids and not handed out yet. Refilled when
/// used up and in a `fork()` child (a new process generation), so a parent and its child
/// never hand out the same bytes.
struct IdEntropy {
    buf: [u8; ENTROPY_BYTES],
    used: usize,
    generation: u64,
}

impl IdEntropy {
    fn take(&mut self) -> [u8; 16] {
        let generation = crate::process::generation();
        if self.used + 16 > ENTROPY_BYTES || self.generation != generation {
            // As `uuid::Uuid::new_v4` did: an OS without randomness is not one ids can be
            // made on (the FFI boundary turns the panic into an error).
            getrandom::fill(&mut self.buf).expect("the OS random number generator failed");
            self.used = 0;
            self.generation = generation;
        }
        let mut out = [0; 16];
        out.copy_from_slice(&self.buf[self.used..self.used + 16]);
        self.used += 16;
        out
    }
}

thread_local! {
    static ID_ENTROPY: std::cell::RefCell<IdEntropy> = const {
        std::cell::RefCell::new(IdEntropy {
            buf: [0; ENTROPY_BYTES],
            // Used up: the first id fills it.
            used: ENTROPY_BYTES,
            generation: 0,
        })
    };
}

/// The `_id` of a document: any BSON value except an array (MongoDB's rule), plus its
/// storage key. Numbers that are equal compare equal as keys (`1`, `1.0` and `1i64` are one
/// `_id`), as MongoDB's unique `_id` index treats them.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentId {
    value: Bson,
    key: Vec<u8>,
}

impl DocumentId {
    /// Validates `value` as an `_id`.
    pub fn new(value: Bson) -> Result<Self> {
        match &value {
            Bson::Array(_) => {
                return Err(Error::invalid("_id cannot be an array"));
            }
            Bson::RegularExpression(_) => {
                return Err(Error::invalid("_id cannot be a regular expression"));
            }
            Bson::Undefined => return Err(Error::invalid("_id cannot be undefined")),
            _ => {}
        }
        // A field of a document: one level less than a document may nest. Checked before
        // the (recursive) encoding below; a refused value is dropped without recursion.
        if let Err(e) = check_value_nesting(&value, MAX_NESTING - 1, "_id") {
            dispose_value(value);
            return Err(e);
        }
        let key = encode_key(&value)?;
        Ok(Self { value, key })
    }

    /// The id as a string: `"abc"` is the `_id` `"abc"`.
    pub fn from_str_id(text: &str) -> Result<Self> {
        Self::new(Bson::String(text.to_owned()))
    }

    /// The readings of the text form used by the C ABI (`nexus_get(db, coll, text)`), in the
    /// order they are tried: the text as a string `_id`, then, when the text is JSON (`5`,
    /// `{"$oid": "..."}`), the value it denotes. [`DocumentId::to_text`] produces the text.
    pub fn text_candidates(text: &str) -> Vec<Self> {
        Self::text_readings(text).collect()
    }

    /// [`DocumentId::text_candidates`], the JSON reading computed only when asked for: a get
    /// that finds the string reading (the common case) never parses the text as JSON.
    pub(crate) fn text_readings(text: &str) -> impl Iterator<Item = Self> + '_ {
        let string = Self::from_str_id(text).ok();
        // (Nesting is limited before parsing, and converted without recursion.)
        let parsed = std::iter::once_with(move || {
            super::json::json_text_to_bson(text)
                .filter(|v| !matches!(v, Bson::String(_)))
                .and_then(|b| Self::new(b).ok())
        });
        string.into_iter().chain(parsed.flatten())
    }

    /// The `_id` value.
    pub fn as_bson(&self) -> &Bson {
        &self.value
    }

    /// The storage key: a one-byte type tag and a type-specific encoding.
    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    /// The id as text for messages and for `out_id`: strings as they are, other values as
    /// relaxed Extended JSON.
    pub fn to_text(&self) -> String {
        match &self.value {
            Bson::String(s) => s.clone(),
            other => crate::document::json::bson_to_json_text(other),
        }
    }
}

/// Keys of numeric `_id`s other than Decimal128 start with this byte (equal values share one
/// key, whatever their type).
pub(crate) const NUMBER_KEY_TAG: u8 = 0x01;
/// Keys of Decimal128 `_id`s start with this byte (their BSON element type): they are not
/// normalised with the other numbers, so a Decimal128 `_id` equal to a number has a key of
/// its own. Every key after `[DECIMAL_KEY_TAG - 1]` in key order and before the next tag is
/// one of them (no key starts with `0x12`: Int64 values take [`NUMBER_KEY_TAG`]).
pub(crate) const DECIMAL_KEY_TAG: u8 = 0x13;

/// Storage key of an `_id`. Strings get tag `0x02`, numbers are normalised so that equal
/// values share one key, everything else is its BSON element encoding under a type tag.
fn encode_key(value: &Bson) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(match value {
        Bson::String(s) => 1 + s.len(),
        _ => 16,
    });
    match value {
        Bson::String(s) => {
            out.push(0x02);
            out.extend_from_slice(s.as_bytes());
        }
        Bson::Int32(i) => push_number(&mut out, f64::from(*i), Some(i64::from(*i))),
        Bson::Int64(i) => push_number(&mut out, *i as f64, Some(*i)),
        Bson::Double(d) => {
            // Used only when whole and below 2^53 in magnitude (`as` saturates otherwise).
            #[allow(clippy::cast_possible_truncation)]
            let exact = (d.fract() == 0.0 && d.abs() < 9.0e15).then_some(*d as i64);
            push_number(&mut out, *d, exact)
        }
        other => {
            out.push(other.element_type() as u8);
            let mut wrapper = bson::Document::new();
            wrapper.insert("", other.clone());
            let bytes = wrapper
                .to_vec()
                .map_err(|e| Error::invalid(format!("_id cannot be encoded: {e}")))?;
            out.extend_from_slice(&bytes);
        }
    }
    Ok(out)
}

fn push_number(out: &mut Vec<u8>, as_f64: f64, exact: Option<i64>) {
    out.push(NUMBER_KEY_TAG);
    match exact {
        Some(i) => {
            out.push(0);
            out.extend_from_slice(&i.to_be_bytes());
        }
        None => {
            out.push(1);
            out.extend_from_slice(&as_f64.to_bits().to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_distinct_v4_across_refills() {
        let ids: Vec<String> = (0..3 * ENTROPY_BYTES / 16).map(|_| new_uuid_v4()).collect();
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids {
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 4, "{id}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(id, &u.hyphenated().to_string());
        }
    }

    #[test]
    fn equal_numbers_share_a_key() {
        let a = DocumentId::new(Bson::Int32(7)).unwrap();
        let b = DocumentId::new(Bson::Int64(7)).unwrap();
        let c = DocumentId::new(Bson::Double(7.0)).unwrap();
        assert_eq!(a.key(), b.key());
        assert_eq!(a.key(), c.key());
        assert_ne!(
            a.key(),
            DocumentId::new(Bson::String("7".into())).unwrap().key()
        );
    }

    #[test]
    fn arrays_are_refused() {
        assert!(DocumentId::new(Bson::Array(vec![])).is_err());
    }
}
