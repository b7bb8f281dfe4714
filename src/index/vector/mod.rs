//! Vector indexes: the definition of an HNSW index over one document field
//! ([`VectorSpec`], parsed from `nexus_create_index`'s options), the vectors documents hold
//! there ([`vector_at`], refused when malformed), the distance kernels ([`distance`]), the
//! graph stored as entries of the index's own table ([`graph`]), its maintenance inside the
//! writing transaction and its build ([`maintain`]), the searches ([`search`]) and the
//! consistency check ([`check`]).
//!
//! Layer beneath: the storage traits (`ReadView` / `WriteTxn`); the graph is ordinary
//! entries of the table `_ix$COLL$NAME`, so it commits, rolls back, recovers, compacts,
//! backs up and encrypts with everything else (layout: `docs/FORMAT.md`, "Vector indexes").

pub(crate) mod check;
pub(crate) mod distance;
pub(crate) mod graph;
pub(crate) mod maintain;
pub(crate) mod quant;
pub(crate) mod search;

use crate::error::{Error, Result};
use bson::spec::BinarySubtype;
use bson::{Bson, Document as BsonDocument};

/// Most dimensions a vector index takes (MongoDB Atlas's limit is 8192; ours keeps a node
/// of the graph within a few pages).
pub(crate) const MAX_DIMENSIONS: u32 = 4096;
/// The key pattern's value naming a vector index: `{"embedding": "hnsw"}`.
pub(crate) const HNSW: &str = "hnsw";

/// How two vectors compare (MongoDB Atlas's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Similarity {
    /// Euclidean distance; score `1 / (1 + d²)`.
    Euclidean,
    /// The angle between the vectors; score `(1 + cos) / 2`.
    Cosine,
    /// The dot product (meant for normalized vectors); score `(1 + dot) / 2`.
    DotProduct,
}

impl Similarity {
    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "euclidean" => Ok(Self::Euclidean),
            "cosine" => Ok(Self::Cosine),
            "dotProduct" => Ok(Self::DotProduct),
            other => Err(Error::invalid(format!(
                "vector index similarity must be \"euclidean\", \"cosine\" or \"dotProduct\", not \"{other}\""
            ))),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Euclidean => "euclidean",
            Self::Cosine => "cosine",
            Self::DotProduct => "dotProduct",
        }
    }

    /// The score MongoDB Atlas reports for an internal distance ([`distance::distance`]:
    /// squared Euclidean distance, `1 - cos`, or `-dot`): higher is more similar.
    pub(crate) fn score(self, d: f32) -> f64 {
        let d = f64::from(d);
        match self {
            Self::Euclidean => 1.0 / (1.0 + d),
            Self::Cosine => (2.0 - d) / 2.0,
            Self::DotProduct => (1.0 - d) / 2.0,
        }
    }
}

/// The options of a vector index.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VectorSpec {
    pub dims: u32,
    pub similarity: Similarity,
    /// Links per node on the upper levels (level 0 keeps twice as many).
    pub m: u32,
    pub ef_construction: u32,
    /// `"quantization": "scalar"`: the graph keeps 8-bit codes of the vectors
    /// ([`quant::Quant`]) instead of float32, and searches re-rank their candidates with
    /// the documents' own vectors.
    pub scalar: bool,
}

impl VectorSpec {
    /// Reads the vector options out of `options` (taking them away; the rest are the
    /// options every index has).
    pub(crate) fn take_from(options: &mut BsonDocument) -> Result<Self> {
        let int = |k: &str, v: &Bson, lo: i64, hi: i64| -> Result<u32> {
            let n = match v {
                Bson::Int32(i) => i64::from(*i),
                Bson::Int64(i) => *i,
                #[allow(clippy::cast_possible_truncation)] // whole and in range: checked
                Bson::Double(d) if d.fract() == 0.0 && d.abs() < 1e15 => *d as i64,
                _ => {
                    return Err(Error::invalid(format!(
                        "vector index option '{k}' must be a whole number"
                    )))
                }
            };
            if !(lo..=hi).contains(&n) {
                return Err(Error::invalid(format!(
                    "vector index option '{k}' must be from {lo} to {hi}, not {n}"
                )));
            }
            u32::try_from(n).map_err(|_| Error::invalid(format!("'{k}' is out of range")))
        };
        let dims = match options.remove("numDimensions") {
            Some(v) => int("numDimensions", &v, 1, i64::from(MAX_DIMENSIONS))?,
            None => {
                return Err(Error::invalid(
                    "a vector index needs the option 'numDimensions' (1 to 4096)",
                ))
            }
        };
        let similarity = match options.remove("similarity") {
            Some(Bson::String(s)) => Similarity::parse(&s)?,
            None => Similarity::Euclidean,
            Some(_) => {
                return Err(Error::invalid(
                    "vector index option 'similarity' must be a string",
                ))
            }
        };
        let m = match options.remove("m") {
            Some(v) => int("m", &v, 2, 100)?,
            None => 16,
        };
        let ef_construction = match options.remove("efConstruction") {
            Some(v) => int("efConstruction", &v, 1, 10_000)?,
            None => 200,
        };
        let scalar = match options.remove("quantization") {
            None => false,
            Some(Bson::String(s)) if s == "none" => false,
            Some(Bson::String(s)) if s == "scalar" => true,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "vector index option 'quantization' must be \"none\" or \"scalar\", not {other}"
                )))
            }
        };
        Ok(Self {
            dims,
            similarity,
            m,
            ef_construction,
            scalar,
        })
    }

    /// The options as stored in the catalog and listed.
    pub(crate) fn to_bson(&self) -> BsonDocument {
        let mut d = bson::doc! {
            "numDimensions": i64::from(self.dims),
            "similarity": self.similarity.as_str(),
            "m": i64::from(self.m),
            "efConstruction": i64::from(self.ef_construction),
        };
        if self.scalar {
            d.insert("quantization", "scalar");
        }
        d
    }

    pub(crate) fn from_bson(d: &BsonDocument) -> Option<Self> {
        let n = |k: &str| {
            d.get_i64(k)
                .ok()
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
        };
        Some(Self {
            dims: n("numDimensions").filter(|d| *d <= MAX_DIMENSIONS)?,
            similarity: Similarity::parse(d.get_str("similarity").ok()?).ok()?,
            m: n("m").filter(|m| *m >= 2)?,
            ef_construction: n("efConstruction")?,
            scalar: match d.get("quantization") {
                None => false,
                Some(Bson::String(s)) if s == "scalar" => true,
                Some(_) => return None,
            },
        })
    }

    /// Most links a node keeps on `level`.
    pub(crate) fn max_links(&self, level: usize) -> usize {
        let m = self.m as usize;
        if level == 0 {
            2 * m
        } else {
            m
        }
    }
}

/// What a document holds at a vector index's path.
#[derive(Debug, PartialEq)]
pub(crate) enum Found {
    /// Nothing there: the document is not indexed.
    Missing,
    Vector(Vec<f32>),
}

/// The vector `doc` holds at `path` (through sub-documents), checked against the index:
/// `dims` numbers, each finite and within float32's range, given as an array of numbers or
/// as BSON binary subtype 9 (float32 or int8 vectors); for cosine not the zero vector.
/// Anything else there is an [`Error::InvalidArgument`] saying what is wrong.
pub(crate) fn vector_at(doc: &BsonDocument, path: &str, spec: &VectorSpec) -> Result<Found> {
    let mut cur = doc;
    let mut parts = path.split('.').peekable();
    let value = loop {
        let Some(part) = parts.next() else {
            return Ok(Found::Missing);
        };
        match cur.get(part) {
            None => return Ok(Found::Missing),
            Some(v) if parts.peek().is_none() => break v,
            Some(Bson::Document(d)) => cur = d,
            Some(_) => return Ok(Found::Missing),
        }
    };
    let v = parse_vector(value, &format!("field '{path}'"))?;
    check_vector(&v, spec, &format!("field '{path}'"))?;
    Ok(Found::Vector(v))
}

/// The vector a stored document body holds at `path`, read straight from its bytes when
/// it is an array of `spec.dims` finite numbers or a float32 / int8 binary vector of that
/// length; `None` otherwise (the caller then takes the checked path, [`vector_at`]).
pub(crate) fn raw_vector(body: &[u8], path: &str, spec: &VectorSpec) -> Option<Vec<f32>> {
    use crate::document::raw;
    let mut doc = body;
    let mut parts = path.split('.').peekable();
    let elem = loop {
        let e = raw::find(doc, parts.next()?).ok()??;
        if parts.peek().is_none() {
            break e;
        }
        if e.kind != 0x03 {
            return None;
        }
        doc = e.bytes;
    };
    let dims = spec.dims as usize;
    let v: Vec<f32> = match elem.kind {
        0x04 => array_numbers(elem.bytes, dims)?,
        0x05 => {
            // Length (i32), subtype, then the bytes.
            let (&subtype, bytes) = elem.bytes.get(4..)?.split_first()?;
            if subtype != 9 {
                return None;
            }
            binary_vector(bytes, "").ok()?
        }
        _ => return None,
    };
    (v.len() == dims).then_some(v)
}

/// The numbers of a BSON array (its bytes, length prefix included) of doubles and 32-bit
/// integers, each finite as a float32; `None` for anything else. One pass over the bytes
/// (a search re-ranking a quantized index reads a vector per candidate).
fn array_numbers(b: &[u8], dims: usize) -> Option<Vec<f32>> {
    let len = usize::try_from(i32::from_le_bytes(b.get(..4)?.try_into().ok()?)).ok()?;
    if len < 5 || len > b.len() || b[len - 1] != 0 {
        return None;
    }
    let end = len - 1;
    let mut v = Vec::with_capacity(dims);
    let mut at = 4;
    while at < end {
        let kind = b[at];
        let key_end = at + 1 + b.get(at + 1..end)?.iter().position(|&c| c == 0)?;
        let val = key_end + 1;
        let x = match kind {
            0x01 => {
                at = val + 8;
                f64::from_le_bytes(b.get(val..at)?.try_into().ok()?)
            }
            0x10 => {
                at = val + 4;
                f64::from(i32::from_le_bytes(b.get(val..at)?.try_into().ok()?))
            }
            _ => return None,
        };
        #[allow(clippy::cast_possible_truncation)] // checked finite just below
        let x = x as f32;
        if !x.is_finite() || at > end {
            return None;
        }
        v.push(x);
    }
    Some(v)
}

/// A vector given as an array of numbers or as BSON binary subtype 9; `what` names it in
/// errors.
pub(crate) fn parse_vector(value: &Bson, what: &str) -> Result<Vec<f32>> {
    match value {
        Bson::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let f = match x {
                    Bson::Double(d) => *d,
                    Bson::Int32(n) => f64::from(*n),
                    #[allow(clippy::cast_precision_loss)] // as any vector of doubles would
                    Bson::Int64(n) => *n as f64,
                    other => {
                        return Err(Error::invalid(format!(
                            "{what}: a vector holds numbers only; element {i} is {}",
                            type_name(other)
                        )))
                    }
                };
                to_f32(f, i, what)
            })
            .collect(),
        Bson::Binary(b) if b.subtype == BinarySubtype::Vector => binary_vector(&b.bytes, what),
        other => Err(Error::invalid(format!(
            "{what}: a vector is an array of numbers or BSON binary subtype 9, not {}",
            type_name(other)
        ))),
    }
}

fn to_f32(f: f64, i: usize, what: &str) -> Result<f32> {
    if !f.is_finite() {
        return Err(Error::invalid(format!(
            "{what}: element {i} of the vector is {f} (NaN and infinities are refused)"
        )));
    }
    #[allow(clippy::cast_possible_truncation)] // the range is checked just below
    let x = f as f32;
    if !x.is_finite() {
        return Err(Error::invalid(format!(
            "{what}: element {i} of the vector ({f}) is out of float32's range"
        )));
    }
    Ok(x)
}

/// BSON binary subtype 9: a dtype byte (0x27 float32, 0x03 int8, 0x10 packed bits), a
/// padding byte, then the elements (float32 little-endian).
fn binary_vector(bytes: &[u8], what: &str) -> Result<Vec<f32>> {
    let (dtype, data) = match bytes {
        [dtype, 0, data @ ..] => (*dtype, data),
        [_, _, ..] => {
            return Err(Error::invalid(format!(
                "{what}: a binary vector's padding byte must be 0 for float32 and int8 vectors"
            )))
        }
        _ => {
            return Err(Error::invalid(format!(
                "{what}: a binary vector is shorter than its 2-byte header"
            )))
        }
    };
    match dtype {
        0x27 => {
            if data.len() % 4 != 0 {
                return Err(Error::invalid(format!(
                    "{what}: a float32 binary vector's length is not a multiple of 4"
                )));
            }
            data.chunks_exact(4)
                .enumerate()
                .map(|(i, c)| {
                    let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    to_f32(f64::from(x), i, what)
                })
                .collect()
        }
        0x03 => Ok(data
            .iter()
            .map(|b| f32::from(i8::from_le_bytes([*b])))
            .collect()),
        0x10 => Err(Error::invalid(format!(
            "{what}: packed-bit binary vectors are not supported by vector indexes (use float32 or int8)"
        ))),
        other => Err(Error::invalid(format!(
            "{what}: unknown binary vector dtype 0x{other:02x}"
        ))),
    }
}

/// The vector has the index's dimension and, for cosine, a direction.
pub(crate) fn check_vector(v: &[f32], spec: &VectorSpec, what: &str) -> Result<()> {
    if v.len() != spec.dims as usize {
        return Err(Error::invalid(format!(
            "{what}: the vector has {} dimensions, the index {}",
            v.len(),
            spec.dims
        )));
    }
    if spec.similarity == Similarity::Cosine && v.iter().all(|x| *x == 0.0) {
        return Err(Error::invalid(format!(
            "{what}: a zero vector has no direction for cosine similarity"
        )));
    }
    Ok(())
}

fn type_name(v: &Bson) -> &'static str {
    match v {
        Bson::Double(_) => "a double",
        Bson::String(_) => "a string",
        Bson::Array(_) => "an array",
        Bson::Document(_) => "a document",
        Bson::Boolean(_) => "a boolean",
        Bson::Null => "null",
        Bson::Int32(_) | Bson::Int64(_) => "an integer",
        Bson::Decimal128(_) => "a decimal128",
        Bson::Binary(_) => "binary data",
        Bson::DateTime(_) => "a date",
        Bson::ObjectId(_) => "an ObjectId",
        _ => "a non-numeric value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte reader of a stored vector agrees with the checked path, and leaves
    /// whatever it does not read plainly to it.
    #[test]
    fn raw_vectors_agree_with_the_checked_path() {
        let spec = VectorSpec {
            dims: 3,
            similarity: Similarity::Euclidean,
            m: 16,
            ef_construction: 200,
            scalar: true,
        };
        let mut f32s = vec![0x27, 0];
        for x in [1.5f32, -2.0, 0.25] {
            f32s.extend_from_slice(&x.to_le_bytes());
        }
        let docs = [
            bson::doc! {"_id": 1, "v": [1.5, -2.0, 0.25]},
            bson::doc! {"_id": 1, "v": [1, -2, 3]},
            bson::doc! {"_id": 1, "a": {"v": [1.5, 2, 0.25]}},
            bson::doc! {"_id": 1, "v": Bson::Binary(bson::Binary { subtype: BinarySubtype::Vector, bytes: f32s })},
        ];
        for (i, d) in docs.iter().enumerate() {
            let path = if i == 2 { "a.v" } else { "v" };
            let bytes = d.to_vec().unwrap();
            let Found::Vector(want) = vector_at(d, path, &spec).unwrap() else {
                panic!("{d}")
            };
            assert_eq!(raw_vector(&bytes, path, &spec), Some(want), "{d}");
        }
        for d in [
            bson::doc! {"v": [1.5, "x", 0.25]},
            bson::doc! {"v": [1.5, 2.0]},
            bson::doc! {"v": [1.5, 2.0, 1e300]},
            bson::doc! {"v": {"a": 1}},
            bson::doc! {"w": [1, 2, 3]},
        ] {
            assert_eq!(raw_vector(&d.to_vec().unwrap(), "v", &spec), None, "{d}");
        }
    }
}
