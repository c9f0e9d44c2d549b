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

/// A fixed pool of threads for password hashing. argon2 uses ~19 MiB per hash and the
/// allocator keeps that memory with the thread that used it, so hashing on a few threads of
/// our own (not tokio's up-to-512 blocking threads) bounds what logins can make the node hold.
pub struct Hasher {
    jobs: std::sync::mpsc::SyncSender<Box<dyn FnOnce() + Send>>,
}

impl Hasher {
    /// Starts `threads` hashing threads with a queue of `queue` jobs.
    pub fn new(threads: usize, queue: usize) -> std::io::Result<Hasher> {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Box<dyn FnOnce() + Send>>(queue);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("confab-hash-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job, not while running it.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Hasher { jobs })
    }

    /// Runs `f` on a hashing thread; `None` when the queue is full (a flood of logins).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send(Box::new(move || drop(tx.send(f()))))
            .ok()?;
        rx.await.ok()
    }
}

#[cfg(test)]
mod hasher_tests {
    use super::Hasher;

    #[tokio::test]
    async fn jobs_run_on_the_pool_and_a_full_queue_refuses() {
        let h = std::sync::Arc::new(Hasher::new(1, 1).expect("threads"));
        assert_eq!(h.run(|| 2 + 2).await, Some(4));
        let (block_tx, block_rx) = std::sync::mpsc::channel::<()>();
        let h1 = h.clone();
        let busy = tokio::spawn(async move { h1.run(move || block_rx.recv().is_ok()).await });
        // One job runs (blocked), one waits in the queue; a third finds the queue full.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let h2 = h.clone();
        let queued = tokio::spawn(async move { h2.run(|| 1).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(h.run(|| 0).await, None);
        block_tx.send(()).expect("unblock");
        assert_eq!(busy.await.expect("task"), Some(true));
        assert_eq!(queued.await.expect("task"), Some(1));
    }
}
