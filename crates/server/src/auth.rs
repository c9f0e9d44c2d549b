//! Passwords (argon2id) and session tokens (random secrets, stored only as SHA-256 hashes).

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rand::RngExt;
use sha2::{Digest, Sha256};

/// A fresh token: the secret handed to the client and the hash the store keeps.
pub struct NewToken {
    pub secret: String,
    pub hash: String,
}

/// 256 random bits, hex-encoded, and their hash.
pub fn new_token() -> NewToken {
    let bytes: [u8; 32] = rand::rng().random();
    let secret = hex::encode(bytes);
    let hash = token_hash(&secret);
    NewToken { secret, hash }
}

/// The hash under which a token's secret is stored.
pub fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// An argon2id PHC string for `password` (slow on purpose: call off the async threads).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt: [u8; 16] = rand::rng().random();
    let hash: PasswordHash = Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| e.to_string())?;
    Ok(hash.to_string())
}

/// Whether `password` matches `phc`; with `None` it still does the work, so an unknown name
/// takes as long as a wrong password.
pub fn verify_password(phc: Option<&str>, password: &str) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("confab-dummy-password").unwrap_or_default());
    let Ok(parsed) = PasswordHash::new(phc.unwrap_or(dummy)) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && phc.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let h = hash_password("correct horse").expect("hashes");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(Some(&h), "correct horse"));
        assert!(!verify_password(Some(&h), "wrong horse"));
        assert!(!verify_password(None, "correct horse"));
    }

    #[test]
    fn tokens_are_long_random_and_stored_as_hashes() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.secret.len(), 64);
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.hash, token_hash(&a.secret));
        assert_ne!(a.hash, a.secret);
    }
}
