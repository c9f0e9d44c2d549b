//! The shard map: which database holds a room, written into the room's id when it is created,
//! and the list of shard URLs the configuration gives.

use rand::RngExt;

use crate::{StoreError, StoreResult, random_id};

/// Whether `url` names PostgreSQL (one URL or a comma-separated list).
pub fn is_postgres_url(url: &str) -> bool {
    let url = url.trim_start();
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Splits a comma-separated list of PostgreSQL URLs, shard 0 first. A comma not followed by a
/// new `postgres://` stays inside the URL it belongs to (a query parameter may contain one).
pub fn split_urls(list: &str) -> StoreResult<Vec<String>> {
    let mut urls: Vec<String> = Vec::new();
    for part in list.split(',') {
        match urls.last_mut() {
            Some(last) if !is_postgres_url(part) => {
                last.push(',');
                last.push_str(part);
            }
            _ => urls.push(part.trim().to_owned()),
        }
    }
    let urls: Vec<String> = urls.into_iter().map(|u| u.trim().to_owned()).collect();
    if urls.is_empty() || !urls.iter().all(|u| is_postgres_url(u)) {
        return Err(StoreError::Config(
            "a PostgreSQL store is a list of postgres:// URLs".into(),
        ));
    }
    Ok(urls)
}

/// A new room id on `shard`: `r<shard>_` and 16 random characters.
pub(super) fn new_room_id(shard: usize) -> String {
    random_id(&format!("r{shard}_"))
}

/// The shard a room id names: `r<digits>_…`, or `r_…` (the SQLite form) for shard 0.
/// `None` for an id no room of ours can have.
pub(super) fn shard_of(room_id: &str) -> Option<usize> {
    let rest = room_id.strip_prefix('r')?;
    let (digits, random) = rest.split_once('_')?;
    if random.is_empty() {
        return None;
    }
    if digits.is_empty() {
        return Some(0);
    }
    if digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // "r00_" is not the id of any room: one spelling per shard.
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

/// The shard of a new room: uniform over the configured shards, so each added shard takes its
/// share of new rooms at once.
pub(super) fn pick(shards: usize) -> usize {
    if shards <= 1 {
        0
    } else {
        rand::rng().random_range(0..shards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_id_names_its_shard_and_sqlite_ids_mean_shard_0() {
        assert_eq!(shard_of(&new_room_id(0)), Some(0));
        assert_eq!(shard_of(&new_room_id(7)), Some(7));
        assert_eq!(shard_of(&new_room_id(12)), Some(12));
        assert_eq!(shard_of("r_abcdefgh"), Some(0));
        assert_eq!(new_room_id(3).len(), 19);
    }

    #[test]
    fn an_id_of_no_shard_is_none() {
        for id in [
            "",
            "r",
            "r_",
            "u_abc",
            "rx_abc",
            "r01_abc",
            "r-1_abc",
            "r99999_abc",
        ] {
            assert_eq!(shard_of(id), None, "{id}");
        }
    }

    #[test]
    fn a_list_of_urls_splits_on_commas_before_a_scheme() {
        let urls =
            split_urls("postgres://a/x, postgresql://b/y?options=-c%20a=1,2").expect("valid");
        assert_eq!(
            urls,
            ["postgres://a/x", "postgresql://b/y?options=-c%20a=1,2"]
        );
        assert_eq!(
            split_urls("postgres://a/x").expect("valid"),
            ["postgres://a/x"]
        );
        assert!(split_urls("").is_err());
    }

    #[test]
    fn new_rooms_spread_over_every_shard() {
        let mut seen = [0u32; 3];
        for _ in 0..300 {
            seen[pick(3)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 30), "{seen:?}");
        assert_eq!(pick(1), 0);
    }
}
