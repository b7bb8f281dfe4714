//! [`Metadata`]: what NexusLite keeps beside each document body.

use crate::error::{Error, Result};
use bson::Document as BsonDocument;

/// Bookkeeping stored beside every document (not inside its body).
///
/// Times are milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metadata {
    /// When the document was first inserted.
    pub created_at: i64,
    /// When the document was last inserted, replaced or updated.
    pub updated_at: i64,
    /// 1 at insertion, bumped by every change.
    pub version: u64,
    /// When an ephemeral document expires; `None` for persistent documents.
    pub expires_at: Option<i64>,
    /// Whether the document was inserted with a TTL.
    pub ephemeral: bool,
    /// Optional user tags.
    pub tags: Vec<String>,
}

impl Metadata {
    /// Metadata of a document inserted at `now`.
    pub fn new_at(now: i64) -> Self {
        Self {
            created_at: now,
            updated_at: now,
            version: 1,
            ..Self::default()
        }
    }

    /// Metadata after a change at `now`: same creation time, bumped version.
    pub fn changed_at(&self, now: i64) -> Self {
        Self {
            updated_at: now,
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// The metadata as a BSON document: the reference [`Metadata::encode_bson`] is tested
    /// against.
    #[cfg(test)]
    pub(crate) fn to_bson(&self) -> BsonDocument {
        use bson::{doc, Bson};
        let mut d = doc! {
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "version": self.version as i64,
            "expires_at": self.expires_at.map_or(Bson::Null, Bson::Int64),
            "ephemeral": self.ephemeral,
        };
        if !self.tags.is_empty() {
            d.insert("tags", self.tags.clone());
        }
        d
    }

    /// Appends the BSON encoding of [`Metadata::to_bson`] to `out`, written directly (the
    /// same bytes, without building a document: this runs for every stored document).
    /// Fails when a tag or the whole document is 2 GiB or more (BSON lengths are i32).
    pub(crate) fn encode_bson(&self, out: &mut Vec<u8>) -> Result<()> {
        fn len_i32(n: usize) -> Result<i32> {
            i32::try_from(n)
                .map_err(|_| Error::invalid("document metadata (tags) larger than 2 GiB"))
        }
        fn key(out: &mut Vec<u8>, kind: u8, name: &str) {
            out.push(kind);
            out.extend_from_slice(name.as_bytes());
            out.push(0);
        }
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        for (name, v) in [
            ("created_at", self.created_at),
            ("updated_at", self.updated_at),
            ("version", self.version as i64),
        ] {
            key(out, 0x12, name);
            out.extend_from_slice(&v.to_le_bytes());
        }
        match self.expires_at {
            Some(t) => {
                key(out, 0x12, "expires_at");
                out.extend_from_slice(&t.to_le_bytes());
            }
            None => key(out, 0x0A, "expires_at"),
        }
        key(out, 0x08, "ephemeral");
        out.push(u8::from(self.ephemeral));
        if !self.tags.is_empty() {
            key(out, 0x04, "tags");
            let arr = out.len();
            out.extend_from_slice(&[0; 4]);
            for (i, t) in self.tags.iter().enumerate() {
                key(out, 0x02, &i.to_string());
                out.extend_from_slice(&len_i32(t.len() + 1)?.to_le_bytes());
                out.extend_from_slice(t.as_bytes());
                out.push(0);
            }
            out.push(0);
            let n = len_i32(out.len() - arr)?;
            out[arr..arr + 4].copy_from_slice(&n.to_le_bytes());
        }
        out.push(0);
        let n = len_i32(out.len() - start)?;
        out[start..start + 4].copy_from_slice(&n.to_le_bytes());
        Ok(())
    }

    pub(crate) fn from_bson(d: &BsonDocument) -> Option<Self> {
        Some(Self {
            created_at: d.get_i64("created_at").ok()?,
            updated_at: d.get_i64("updated_at").ok()?,
            version: u64::try_from(d.get_i64("version").ok()?).ok()?,
            expires_at: d.get_i64("expires_at").ok(),
            ephemeral: d.get_bool("ephemeral").ok()?,
            tags: d
                .get_array("tags")
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The metadata as the JSON object `nexus_get_meta` returns, times as ISO-8601 text is
    /// not used: milliseconds since the epoch keep it language-neutral.
    pub fn to_json(&self) -> String {
        let v = serde_json::json!({
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "version": self.version,
            "expires_at": self.expires_at,
            "ephemeral": self.ephemeral,
            "tags": self.tags,
        });
        v.to_string()
    }
}

/// Milliseconds since the Unix epoch now.
pub(crate) fn now_millis() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_encoding_equals_the_bson_crates() {
        let cases = [
            Metadata::new_at(1_700_000_000_000),
            Metadata {
                expires_at: Some(-5),
                ephemeral: true,
                version: 7,
                ..Metadata::new_at(0)
            },
            Metadata {
                tags: vec!["a".into(), "é€".into(), String::new()],
                ..Metadata::new_at(i64::MAX)
            },
        ];
        for m in cases {
            let mut direct = Vec::new();
            m.encode_bson(&mut direct).unwrap();
            assert_eq!(direct, m.to_bson().to_vec().unwrap(), "{m:?}");
        }
    }
}
