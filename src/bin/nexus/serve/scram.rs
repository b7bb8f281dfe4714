//! [`Conversation`]: the server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as MongoDB runs
//! it over `saslStart` / `saslContinue`:
//!
//! 1. client-first `n,,n=USER,r=CNONCE` -> server-first `r=CNONCE+SNONCE,s=SALT,i=ITER`
//!    ([`Conversation::start`]);
//! 2. client-final `c=biws,r=NONCE,p=PROOF` -> the proof is checked against the stored key
//!    (`ClientKey = PROOF xor HMAC(StoredKey, AuthMessage)`, `SHA-256(ClientKey) ==
//!    StoredKey`), server-final `v=HMAC(ServerKey, AuthMessage)` ([`Conversation::finish`]).
//!
//! An unknown user runs the same exchange against made-up credentials and fails at step 2,
//! so the answer does not tell which users exist.

use super::users::{digests_equal, hmac, random, sha256, User};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

/// A conversation between its two steps.
pub struct Conversation {
    user: User,
    known: bool,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

/// Why an exchange failed (reported to the client only as "Authentication failed.").
pub type Failure = String;

fn attr(part: &str, key: char) -> Option<&str> {
    part.strip_prefix(key)?.strip_prefix('=')
}

/// `=2C` and `=3D` in a SCRAM user name.
fn unescape(name: &str) -> String {
    name.replace("=2C", ",").replace("=3D", "=")
}

impl Conversation {
    /// Step 1: reads the client-first message; the server-first answer.
    pub fn start(payload: &[u8], users: &[User]) -> Result<(Self, String), Failure> {
        let text = std::str::from_utf8(payload).map_err(|_| "client-first is not UTF-8")?;
        // gs2 header: no channel binding ("n"), no authzid.
        let bare = text
            .strip_prefix("n,,")
            .ok_or("client-first must start with 'n,,' (no channel binding)")?;
        let mut parts = bare.split(',');
        let name = parts
            .next()
            .and_then(|p| attr(p, 'n'))
            .map(unescape)
            .ok_or("client-first has no user name")?;
        let cnonce = parts
            .next()
            .and_then(|p| attr(p, 'r'))
            .filter(|n| !n.is_empty())
            .ok_or("client-first has no nonce")?;
        let (user, known) = match users.iter().find(|u| u.name == name) {
            Some(u) => (u.clone(), true),
            None => (
                User {
                    name: name.clone(),
                    iterations: super::users::ITERATIONS,
                    salt: random(28),
                    stored_key: random(32),
                    server_key: random(32),
                },
                false,
            ),
        };
        let nonce = format!("{cnonce}{}", B64.encode(random(24)));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&user.salt),
            user.iterations
        );
        Ok((
            Self {
                user,
                known,
                client_first_bare: bare.to_owned(),
                server_first: server_first.clone(),
                nonce,
            },
            server_first,
        ))
    }

    /// Step 2: checks the client-final message; the user's name and the server-final
    /// answer.
    pub fn finish(self, payload: &[u8]) -> Result<(String, String), Failure> {
        let text = std::str::from_utf8(payload).map_err(|_| "client-final is not UTF-8")?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or("client-final has no proof")?;
        let mut parts = without_proof.split(',');
        let binding = parts.next().and_then(|p| attr(p, 'c'));
        if binding != Some("biws") {
            return Err("channel binding must be 'biws' (none)".into());
        }
        if parts.next().and_then(|p| attr(p, 'r')) != Some(self.nonce.as_str()) {
            return Err("the nonce does not match".into());
        }
        let proof = B64.decode(proof).map_err(|_| "the proof is not base64")?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = hmac(&self.user.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err("the proof has the wrong length".into());
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        // Constant-time comparison of the two digests.
        let stored = sha256(&client_key);
        if !digests_equal(&stored, &self.user.stored_key) || !self.known {
            return Err(format!(
                "wrong password or unknown user {:?}",
                self.user.name
            ));
        }
        let server_signature = hmac(&self.user.server_key, auth_message.as_bytes());
        Ok((
            self.user.name,
            format!("v={}", B64.encode(server_signature)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client computing its proof from the password, as a driver does.
    fn client_final(password: &str, client_first_bare: &str, server_first: &str) -> String {
        let mut parts = server_first.split(',');
        let nonce = attr(parts.next().unwrap(), 'r').unwrap();
        let salt = B64
            .decode(attr(parts.next().unwrap(), 's').unwrap())
            .unwrap();
        let iters: u32 = attr(parts.next().unwrap(), 'i').unwrap().parse().unwrap();
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, iters, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = hmac(&sha256(&client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    #[test]
    fn right_password_passes_and_wrong_or_unknown_fails() {
        let users = vec![User::new("ada", "secret")];
        let first = "n,,n=ada,r=abcdef";
        let (conv, server_first) = Conversation::start(first.as_bytes(), &users).unwrap();
        let fin = client_final("secret", &first[3..], &server_first);
        let (name, v) = conv.finish(fin.as_bytes()).unwrap();
        assert_eq!(name, "ada");
        assert!(v.starts_with("v="));

        let (conv, server_first) = Conversation::start(first.as_bytes(), &users).unwrap();
        let fin = client_final("wrong", &first[3..], &server_first);
        assert!(conv.finish(fin.as_bytes()).is_err());

        let first = "n,,n=bob,r=abcdef";
        let (conv, server_first) = Conversation::start(first.as_bytes(), &users).unwrap();
        let fin = client_final("secret", &first[3..], &server_first);
        assert!(conv.finish(fin.as_bytes()).is_err());

        assert!(Conversation::start(b"p=tls,,n=ada,r=x", &users).is_err());
        assert!(Conversation::start(b"n,,n=ada", &users).is_err());
    }
}
