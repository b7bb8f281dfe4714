//! The API keys of the HTTP and gRPC front ends of `nexus serve --auth`: the file
//! `DIR/nexus-apikeys.json` of a data directory, managed with `nexus apikey add|remove|list
//! DIR`. A key is 32 random bytes shown once, as `nxk_` and 43 base64url characters, when it
//! is added; the file keeps only its SHA-256 (a key has 256 bits of entropy, so a slow
//! password hash would add nothing), its name, its access (`read` or `readWrite`) and the
//! databases it may use (none listed: all).
//!
//! The file is JSON, `{"keys": [{"name", "sha256", "access", "databases"}]}` (the digest in
//! base64), written like the users file (`users.rs`): beside itself under a temporary name,
//! synced and renamed, readable by its owner only.

use super::users::{digests_equal, load_list, random, save_list, sha256};
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The keys file's name in the data directory.
pub const FILE: &str = "nexus-apikeys.json";
/// The prefix of every key's text (tells a NexusLite key apart in logs and secret scanners).
const PREFIX: &str = "nxk_";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

impl Access {
    fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::ReadWrite => "readWrite",
        }
    }
}

/// One API key as the file keeps it.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub name: String,
    digest: Vec<u8>,
    pub access: Access,
    /// The databases the key may use; empty: every database.
    pub databases: Vec<String>,
}

impl ApiKey {
    /// Whether the key may use the database `db` (for a write when `write`).
    pub fn allows(&self, db: &str, write: bool) -> bool {
        (!write || self.access == Access::ReadWrite)
            && (self.databases.is_empty() || self.databases.iter().any(|d| d == db))
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "sha256": B64.encode(&self.digest),
            "access": self.access.as_str(),
            "databases": self.databases,
        })
    }

    fn from_json(v: &Value) -> Result<Self, String> {
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("a key entry has no '{k}'"))
        };
        let digest = B64
            .decode(s("sha256")?)
            .ok()
            .filter(|d| d.len() == 32)
            .ok_or("a key entry's 'sha256' is not 32 bytes of base64")?;
        let access = match s("access")? {
            "read" => Access::Read,
            "readWrite" => Access::ReadWrite,
            other => return Err(format!("a key entry's access {other:?}: read or readWrite")),
        };
        let databases = match v.get("databases") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|d| d.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or("a key entry's 'databases' must be strings")?,
            Some(_) => return Err("a key entry's 'databases' must be an array".into()),
        };
        Ok(Self {
            name: s("name")?.to_owned(),
            digest,
            access,
            databases,
        })
    }
}

/// The key whose text is `presented`, if any. Every stored digest is compared, each in
/// constant time, so the time taken does not tell how much of a digest matched.
pub fn find<'a>(keys: &'a [ApiKey], presented: &str) -> Option<&'a ApiKey> {
    let digest = sha256(presented.as_bytes());
    let mut found = None;
    for k in keys {
        if digests_equal(&k.digest, &digest) {
            found = Some(k);
        }
    }
    found
}

/// The keys file of a data directory.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The keys of `dir` (none when the file does not exist).
pub fn load(dir: &Path) -> Result<Vec<ApiKey>, String> {
    load_list(dir, FILE, "keys", ApiKey::from_json)
}

fn save(dir: &Path, keys: &[ApiKey]) -> Result<(), String> {
    save_list(
        dir,
        FILE,
        "keys",
        keys.iter().map(ApiKey::to_json).collect(),
    )
}

/// `nexus apikey add DIR NAME [--read-only] [--database DB]...`: a new key (replacing the
/// key of that name, if any); its text, which is not stored.
pub fn add(
    dir: &Path,
    name: &str,
    read_only: bool,
    databases: &[String],
) -> Result<String, String> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(format!(
            "key name {name:?}: 1 to 128 characters, no control characters"
        ));
    }
    for d in databases {
        super::state::check_db_name(d).map_err(|e| e.msg)?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut keys = load(dir)?;
    let text = format!("{PREFIX}{}", B64URL.encode(random(32)));
    keys.retain(|k| k.name != name);
    let mut databases = databases.to_vec();
    databases.sort();
    databases.dedup();
    keys.push(ApiKey {
        name: name.to_owned(),
        digest: sha256(text.as_bytes()),
        access: if read_only {
            Access::Read
        } else {
            Access::ReadWrite
        },
        databases,
    });
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    save(dir, &keys)?;
    Ok(text)
}

/// `nexus apikey remove DIR NAME`.
pub fn remove(dir: &Path, name: &str) -> Result<(), String> {
    let mut keys = load(dir)?;
    let before = keys.len();
    keys.retain(|k| k.name != name);
    if keys.len() == before {
        return Err(format!("no key {name:?} in {}", path(dir).display()));
    }
    save(dir, &keys)
}

/// One line of `nexus apikey list DIR`: name, access, databases.
pub fn describe(k: &ApiKey) -> String {
    format!(
        "{}\t{}\t{}",
        k.name,
        k.access.as_str(),
        if k.databases.is_empty() {
            "*".to_owned()
        } else {
            k.databases.join(",")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stored_as_digests_and_found_by_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let writer = add(dir.path(), "writer", false, &[]).unwrap();
        let reader = add(dir.path(), "reader", true, &["shop".into(), "shop".into()]).unwrap();
        assert!(writer.starts_with(PREFIX) && writer.len() == PREFIX.len() + 43);
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(!text.contains(&writer) && !text.contains(&reader));
        let keys = load(dir.path()).unwrap();
        assert_eq!(
            keys.iter().map(describe).collect::<Vec<_>>(),
            ["reader\tread\tshop", "writer\treadWrite\t*"]
        );
        let w = find(&keys, &writer).unwrap();
        assert_eq!(w.name, "writer");
        assert!(w.allows("any", true));
        let r = find(&keys, &reader).unwrap();
        assert!(r.allows("shop", false) && !r.allows("shop", true) && !r.allows("other", false));
        assert!(find(&keys, "nxk_not-a-key").is_none());
        assert!(find(&keys, "").is_none());
        // A new key of the same name replaces the old one.
        let again = add(dir.path(), "writer", false, &[]).unwrap();
        let keys = load(dir.path()).unwrap();
        assert!(find(&keys, &writer).is_none() && find(&keys, &again).is_some());
        remove(dir.path(), "writer").unwrap();
        assert!(remove(dir.path(), "writer").unwrap_err().contains("no key"));
        assert!(add(dir.path(), "x", false, &["bad/name".into()]).is_err());
        assert!(add(dir.path(), "", false, &[]).is_err());
    }

    #[test]
    fn a_damaged_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            path(dir.path()),
            r#"{"keys": [{"name": "k", "sha256": "AAAA", "access": "read"}]}"#,
        )
        .unwrap();
        assert!(load(dir.path()).unwrap_err().contains("32 bytes"));
        std::fs::write(path(dir.path()), "not json").unwrap();
        assert!(load(dir.path()).is_err());
    }
}
