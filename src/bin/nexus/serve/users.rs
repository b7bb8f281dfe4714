//! The users of `nexus serve --auth`: the file `DIR/nexus-users.json` of a data directory,
//! managed with `nexus user add|remove|list DIR`. Each user keeps SCRAM-SHA-256 credentials
//! as MongoDB stores them, never the password: a random 28-byte salt, the iteration count
//! (15,000, MongoDB's default), `StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key"))`
//! and `ServerKey = HMAC(SaltedPassword, "Server Key")` with
//! `SaltedPassword = PBKDF2-HMAC-SHA256(password, salt, iterations)` (RFC 5802 / 7677).
//!
//! The file is JSON, `{"users": [{"user", "mechanism", "iterationCount", "salt",
//! "storedKey", "serverKey"}]}` (the keys in base64), written beside itself under a
//! temporary name, synced and renamed, readable by its owner only.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use p256::elliptic_curve::rand_core::{OsRng, RngCore};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The users file's name in the data directory.
pub const FILE: &str = "nexus-users.json";
/// PBKDF2 iterations of new credentials (MongoDB's default for SCRAM-SHA-256).
pub const ITERATIONS: u32 = 15_000;

/// A user's SCRAM-SHA-256 credentials.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

pub fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// Random bytes from the OS.
pub fn random(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    OsRng.fill_bytes(&mut b);
    b
}

impl User {
    /// New credentials for `password` with a fresh salt.
    pub fn new(name: &str, password: &str) -> Self {
        let salt = random(28);
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, ITERATIONS, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let user = Self {
            name: name.to_owned(),
            iterations: ITERATIONS,
            salt,
            stored_key: sha256(&client_key),
            server_key: hmac(&salted, b"Server Key"),
        };
        zeroize::Zeroize::zeroize(&mut salted);
        user
    }

    fn to_json(&self) -> Value {
        json!({
            "user": self.name,
            "mechanism": "SCRAM-SHA-256",
            "iterationCount": self.iterations,
            "salt": B64.encode(&self.salt),
            "storedKey": B64.encode(&self.stored_key),
            "serverKey": B64.encode(&self.server_key),
        })
    }

    fn from_json(v: &Value) -> Result<Self, String> {
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("a user entry has no '{k}'"))
        };
        let b = |k: &str| {
            B64.decode(s(k)?)
                .map_err(|_| format!("a user entry's '{k}' is not base64"))
        };
        if s("mechanism")? != "SCRAM-SHA-256" {
            return Err("only SCRAM-SHA-256 credentials are supported".into());
        }
        let iterations = v
            .get("iterationCount")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n >= 4096)
            .ok_or("a user entry's iterationCount must be at least 4096")?;
        Ok(Self {
            name: s("user")?.to_owned(),
            iterations,
            salt: b("salt")?,
            stored_key: b("storedKey")?,
            server_key: b("serverKey")?,
        })
    }
}

/// Whether two digests are equal, compared in constant time (every byte is looked at, so the
/// time taken does not tell how much of one matched).
pub(super) fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    diff == 0 && a.len() == b.len()
}

/// The users file of a data directory.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The users of `dir` (none when the file does not exist).
pub fn load(dir: &Path) -> Result<Vec<User>, String> {
    load_list(dir, FILE, "users", User::from_json)
}

fn save(dir: &Path, users: &[User]) -> Result<(), String> {
    save_list(
        dir,
        FILE,
        "users",
        users.iter().map(User::to_json).collect(),
    )
}

/// The entries of the JSON file `dir/file`, an object whose `field` is an array (none when
/// the file does not exist); each parsed by `parse`. The users and API-key files.
pub(super) fn load_list<T>(
    dir: &Path,
    file: &str,
    field: &str,
    parse: impl Fn(&Value) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let p = dir.join(file);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", p.display())),
    };
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
    v.get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{}: no '{field}' array", p.display()))?
        .iter()
        .map(|e| parse(e).map_err(|e| format!("{}: {e}", p.display())))
        .collect()
}

/// Replaces `dir/file` with `{field: entries}`, owner-only (0600), durably: written to a
/// temporary beside it, synced, renamed, the directory synced.
pub(super) fn save_list(
    dir: &Path,
    file: &str,
    field: &str,
    entries: Vec<Value>,
) -> Result<(), String> {
    let p = dir.join(file);
    let tmp = dir.join(format!(".{file}.tmp"));
    let text =
        serde_json::to_string_pretty(&json!({ field: entries })).map_err(|e| e.to_string())?;
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &p)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| format!("{}: {e}", p.display()))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 128
        || name.chars().any(|c| c.is_control() || c == ',' || c == '=')
    {
        return Err(format!(
            "user name {name:?}: 1 to 128 characters, no control characters, ',' or '='"
        ));
    }
    Ok(())
}

/// `nexus user add DIR NAME`: adds the user, or sets a new password.
pub fn add(dir: &Path, name: &str, password: &str) -> Result<bool, String> {
    check_name(name)?;
    if password.is_empty() {
        return Err("the password must not be empty".into());
    }
    if !password.is_ascii() {
        // Drivers SASLprep the password; for ASCII text that changes nothing.
        return Err("the password must be ASCII".into());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut users = load(dir)?;
    let existed = users.iter().any(|u| u.name == name);
    users.retain(|u| u.name != name);
    users.push(User::new(name, password));
    users.sort_by(|a, b| a.name.cmp(&b.name));
    save(dir, &users)?;
    Ok(existed)
}

/// `nexus user remove DIR NAME`.
pub fn remove(dir: &Path, name: &str) -> Result<(), String> {
    let mut users = load(dir)?;
    let before = users.len();
    users.retain(|u| u.name != name);
    if users.len() == before {
        return Err(format!("no user {name:?} in {}", path(dir).display()));
    }
    save(dir, &users)
}
