//! Configuration: built-in defaults, then a TOML file, then `CONFAB_<KEY>` variables, then flags.
//!
//! `confab.example.toml` at the repository root lists every key with its default; a test checks
//! that it parses to exactly `Config::default()`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

/// The example configuration, shown by `confab serve --help`.
pub const EXAMPLE: &str = include_str!("../../../confab.example.toml");

/// Every setting of a node. Each field's default is in `Default` and in `confab.example.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Directory for the embedded SQLite store.
    pub data_dir: PathBuf,
    /// Store URL, or a list of PostgreSQL URLs (one per shard, the first is the directory);
    /// empty means SQLite at `<data_dir>/confab.db`. Kept as one comma-separated string.
    #[serde(deserialize_with = "joined")]
    pub store: String,
    /// Connections per PostgreSQL shard (each node), shared by the shard's writer and reads.
    pub store_pool: usize,
    /// Bus URL (`memory://`).
    pub bus: String,
    /// Cache URL (`memory://`).
    pub cache: String,
    /// Newest events the cache keeps per active room, for `sync` and history (0: none).
    pub recent_events: u32,
    /// Extra allowed WebSocket `Origin`s (`*` allows any); same-origin and none are always allowed.
    #[serde(deserialize_with = "list")]
    pub allowed_origins: Vec<String>,
    /// WebSocket ping interval; a connection silent for three is closed.
    pub heartbeat_ms: u64,
    /// Time a WebSocket has to send its `auth` frame.
    pub auth_timeout_ms: u64,
    /// Longest message body, in Unicode scalar values.
    pub max_body: usize,
    /// Largest WebSocket message or frame, in bytes.
    pub max_frame: usize,
    /// Largest HTTP request body, in bytes.
    pub max_http_body: usize,
    /// Writes (send, edit, delete, react) per second per user.
    pub rate_per_s: u32,
    /// Writes a user may make at once before the rate applies.
    pub burst: u32,
    /// `rate_limited` errors within `flood_window_ms` that close a connection (4008).
    pub flood_count: u32,
    /// The flood window.
    pub flood_window_ms: u64,
    /// Rooms with more members than this send no presence events (ask with `presence`).
    pub presence_max_members: u64,
    /// Frames a session may have queued before it is closed as too slow (4009).
    pub outbox: usize,
    /// Lifetime of a login token, in seconds.
    pub token_ttl_s: u64,
    /// On shutdown, how long sessions get to leave after `reconnect`.
    pub shutdown_grace_ms: u64,
    /// Upper bound of the jittered `after_ms` in `reconnect` frames.
    pub reconnect_max_ms: u64,
    /// How long a room's fan-out waits for a missing seq before reading it from the store.
    pub reorder_wait_ms: u64,
    /// How often a node checks its rooms' newest seqs against the store, to fill what the bus lost.
    pub repair_interval_ms: u64,
    /// SQLite `synchronous` mode: `full` (an ack survives power loss) or `normal`.
    pub sqlite_synchronous: String,
    /// Most writes group-committed in one transaction.
    pub max_batch: usize,
    /// Log filter (`RUST_LOG` syntax).
    pub log: String,
    /// `CONFAB_*` environment variables that name no key (not configuration; logged as a warning).
    #[serde(skip)]
    pub ignored_env: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./confab-data"),
            store: String::new(),
            store_pool: 8,
            bus: "memory://".into(),
            cache: "memory://".into(),
            recent_events: 200,
            allowed_origins: Vec::new(),
            heartbeat_ms: 25_000,
            auth_timeout_ms: 10_000,
            max_body: 4000,
            max_frame: 65_536,
            max_http_body: 65_536,
            rate_per_s: 10,
            burst: 20,
            flood_count: 50,
            flood_window_ms: 10_000,
            presence_max_members: 500,
            outbox: 1024,
            token_ttl_s: 30 * 24 * 3600,
            shutdown_grace_ms: 5_000,
            reconnect_max_ms: 2_000,
            reorder_wait_ms: 20,
            repair_interval_ms: 1000,
            sqlite_synchronous: "full".into(),
            max_batch: 1024,
            log: "info,sqlx=warn".into(),
            ignored_env: Vec::new(),
        }
    }
}

/// A configuration that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then the TOML file (if any), then `CONFAB_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::Read(path.to_owned(), e))?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        // Other programs (test harnesses, scripts) use CONFAB_* names too: only the names of
        // keys are configuration; the rest are listed in `ignored_env` for a warning.
        let keys = toml::Table::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let mut ignored_env = Vec::new();
        for (key, value) in env {
            let Some(name) = key.strip_prefix("CONFAB_") else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if !keys.contains_key(&name) {
                ignored_env.push(key);
                continue;
            }
            // Numbers and booleans are written bare in the environment; everything else is a string.
            let parsed = format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"));
            let value = match parsed {
                Some(
                    v @ (toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Array(_)),
                ) => v,
                _ => toml::Value::String(value),
            };
            table.insert(name, value);
        }
        let mut config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.check()?;
        config.ignored_env = ignored_env;
        Ok(config)
    }

    /// Rejects values no server can run with.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.into()));
        if self.heartbeat_ms == 0 || self.auth_timeout_ms == 0 || self.repair_interval_ms == 0 {
            return bad("heartbeat_ms, auth_timeout_ms and repair_interval_ms must be positive");
        }
        if self.max_body == 0 || self.max_frame < 256 || self.max_http_body < 256 {
            return bad("max_body must be positive; max_frame and max_http_body at least 256");
        }
        if self.outbox < 16 || self.max_batch == 0 || self.flood_count == 0 || self.store_pool == 0
        {
            return bad(
                "outbox must be at least 16; max_batch, flood_count and store_pool positive",
            );
        }
        if !matches!(self.sqlite_synchronous.as_str(), "full" | "normal") {
            return bad("sqlite_synchronous must be `full` or `normal`");
        }
        Ok(())
    }

    /// The store's options in effect.
    pub fn store_options(&self) -> confab_store::StoreOptions {
        confab_store::StoreOptions {
            max_batch: self.max_batch,
            sqlite_synchronous: self.sqlite_synchronous.clone(),
            pool_size: self.store_pool,
            ..confab_store::StoreOptions::default()
        }
    }

    /// The store URL in effect.
    pub fn store_url(&self) -> String {
        if self.store.is_empty() {
            format!("sqlite://{}", self.data_dir.join("confab.db").display())
        } else {
            self.store.clone()
        }
    }
}

/// Accepts one string or a list of strings, kept as one comma-separated string.
fn joined<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    list(d).map(|v| v.join(","))
}

/// Accepts a list as a TOML array or as one comma-separated string (for environment variables).
fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Either::deserialize(d)? {
        Either::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        Either::Many(v) => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_is_exactly_the_defaults() {
        let table: toml::Table = EXAMPLE.parse().expect("example parses");
        let parsed: Config = table.clone().try_into().expect("example fits the struct");
        assert_eq!(parsed, Config::default());
        let defaults = toml::Table::try_from(Config::default()).expect("defaults serialize");
        for key in defaults.keys() {
            assert!(table.contains_key(key), "confab.example.toml lacks `{key}`");
        }
    }

    #[test]
    fn environment_variables_override_the_file() {
        let env = vec![
            ("CONFAB_LISTEN".to_owned(), "0.0.0.0:9000".to_owned()),
            ("CONFAB_RATE_PER_S".to_owned(), "3".to_owned()),
            (
                "CONFAB_ALLOWED_ORIGINS".to_owned(),
                "http://a.test, http://b.test".to_owned(),
            ),
            ("OTHER".to_owned(), "x".to_owned()),
        ];
        let c = Config::load(None, env).expect("loads");
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.rate_per_s, 3);
        assert_eq!(
            c.allowed_origins,
            vec!["http://a.test".to_owned(), "http://b.test".to_owned()]
        );
    }

    #[test]
    fn an_unknown_environment_name_is_ignored_and_reported() {
        let c = Config::load(
            None,
            vec![("CONFAB_TEST_POSTGRES_URL".to_owned(), "x".to_owned())],
        )
        .expect("loads");
        assert_eq!(c.ignored_env, vec!["CONFAB_TEST_POSTGRES_URL".to_owned()]);
    }

    #[test]
    fn an_unknown_key_or_bad_value_is_refused() {
        assert!(Config::load(None, vec![]).is_ok());
        let file = tempfile::NamedTempFile::new().expect("file");
        std::fs::write(file.path(), "nope = 1\n").expect("write");
        assert!(Config::load(Some(file.path()), vec![]).is_err());
        assert!(
            Config::load(
                None,
                vec![("CONFAB_HEARTBEAT_MS".to_owned(), "soon".to_owned())]
            )
            .is_err()
        );
        assert!(
            Config::load(
                None,
                vec![("CONFAB_SQLITE_SYNCHRONOUS".to_owned(), "off".to_owned())]
            )
            .is_err()
        );
    }
}
